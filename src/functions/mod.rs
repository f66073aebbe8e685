//! One module per function folder. Each runs parse → verify → (authorize) → outputs, and
//! returns a [`FunctionOutcome`] or a [`HandlerError`]; [`invoke`] turns either into the host
//! envelope, so errors become responses in exactly one place.

pub mod negotiate;

use serde_json::Value;

use crate::config::Settings;
use crate::error::HandlerError;
use crate::identity::Authenticator;
use crate::invocation::{CallerResponse, InvocationRequest, InvocationResponse};

/// Shared, read-only state of the handler process. Nothing here changes per request, so any
/// number of handler instances behave as one.
pub struct AppState {
    /// Validated configuration.
    pub settings: Settings,
    /// Caller verification.
    pub authenticator: Authenticator,
}

/// What a function produced: the caller's response and any other output bindings.
pub struct FunctionOutcome {
    /// The caller's response (the `http` output).
    pub response: CallerResponse,
    /// Other outputs, by binding name.
    pub outputs: Vec<(String, Value)>,
}

/// Log lines of one invocation, sent back in `Logs` and mirrored to the process log.
/// Nothing passed here may contain a token or a secret.
pub struct InvocationLog {
    function: String,
    invocation_id: String,
    lines: Vec<String>,
}

impl InvocationLog {
    /// A log for one invocation.
    pub fn new(function: &str, invocation_id: &str) -> Self {
        Self {
            function: function.to_owned(),
            invocation_id: invocation_id.to_owned(),
            lines: Vec::new(),
        }
    }

    /// An informational line.
    pub fn info(&mut self, message: &str) {
        tracing::info!(function = %self.function, invocation_id = %self.invocation_id, "{message}");
        self.lines.push(format!("{}: {message}", self.function));
    }

    /// A refusal or failure, with its exact reason.
    pub fn refusal(&mut self, error: &HandlerError) {
        if error.is_server_fault() {
            tracing::error!(function = %self.function, invocation_id = %self.invocation_id, "refused: {error}");
        } else {
            tracing::warn!(function = %self.function, invocation_id = %self.invocation_id, "refused: {error}");
        }
        self.lines
            .push(format!("{}: refused ({error})", self.function));
    }
}

/// Runs `function_name` on the host's `body` and builds the envelope for the host.
pub async fn invoke(
    state: &AppState,
    function_name: &str,
    body: Result<Vec<u8>, HandlerError>,
    invocation_id: &str,
) -> InvocationResponse {
    let mut log = InvocationLog::new(function_name, invocation_id);
    let Some(bindings) = state.settings.function(function_name) else {
        let error = HandlerError::UnknownFunction(function_name.to_owned());
        log.refusal(&error);
        return InvocationResponse::new("res", &error.caller_response(), log.lines);
    };
    let result = match body.and_then(|body| InvocationRequest::parse(&body)) {
        Ok(request) => match function_name {
            "negotiate" => negotiate::run(state, bindings, &request, &mut log).await,
            other => Err(HandlerError::UnknownFunction(other.to_owned())),
        },
        Err(error) => Err(error),
    };
    match result {
        Ok(outcome) => {
            let mut envelope =
                InvocationResponse::new(&bindings.http_output, &outcome.response, log.lines);
            for (name, value) in outcome.outputs {
                envelope = envelope.with_output(&name, value);
            }
            envelope
        }
        Err(error) => {
            log.refusal(&error);
            InvocationResponse::new(&bindings.http_output, &error.caller_response(), log.lines)
        }
    }
}
