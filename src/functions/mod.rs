//! One module per function folder. Each runs parse → verify → (authorize) → outputs, and
//! returns a [`FunctionOutcome`] or a [`HandlerError`]; [`invoke`] turns either into the host
//! envelope, so errors become responses in exactly one place.

pub mod browser;
pub mod connect;
pub mod groups;
pub mod index;
pub mod messages;
pub mod negotiate;
pub mod refresh;
pub mod upstream;

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::{FunctionBindings, SignalRBinding};
use crate::error::{BadRequest, ConfigurationError, HandlerError, JsonFault};
use crate::function::Function;
use crate::identity::credential::QueryToken;
use crate::identity::service_identity::ServiceTokenVerifier;
use crate::identity::sources::AuthSettings;
use crate::identity::{Authenticator, VerifiedUser};
use crate::invocation::{CallerResponse, HttpRequestData, InvocationRequest, InvocationResponse};
use crate::names::HubName;
use crate::policy::{Decision, Denial, Policy, Request};
use crate::signalr::connection_string::ConnectionString;
use crate::signalr::expiry::AuthExpiry;
use crate::signalr::output::SenderStamp;
use crate::signalr::rest::ServiceClient;
use crate::signalr::service_auth::ServiceAuth;
use crate::signalr::upstream::UpstreamSettings;
use crate::telemetry::escape_controls;
use crate::webpubsub::WebPubSubSettings;

/// Largest caller body accepted by the group and message functions.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared, read-only state of the handler process: the validated settings the functions use,
/// handed over by `startup` (functions do not import `config`). Nothing here changes per
/// request, so any number of handler instances behave as one.
pub struct AppState {
    /// The functions found in the app root, with their bindings.
    pub functions: Vec<FunctionBindings>,
    /// The SignalR Service the app's bindings name.
    pub signalr: ConnectionString,
    /// Name of the setting `signalr` was read from (for messages).
    pub signalr_setting: String,
    /// Hub for tokens the handler mints itself (negotiate without a `signalRConnectionInfo` input).
    pub mint_hub: Option<HubName>,
    /// How callers are authenticated.
    pub auth: AuthSettings,
    /// The Web PubSub event handler (`connect`), when enabled.
    pub web_pubsub: Option<WebPubSubSettings>,
    /// The SignalR upstream (`upstream`), when the app has it and it is not off.
    pub upstream: Option<UpstreamSettings>,
    /// Keyless Web PubSub: the verifier of the service's bearer token on event requests.
    pub web_pubsub_events: Option<ServiceTokenVerifier>,
    /// Keyless SignalR upstream (`SIGNALR_UPSTREAM_AUTH=managedIdentity`): the verifier of the
    /// service's bearer token on upstream requests.
    pub upstream_service: Option<ServiceTokenVerifier>,
    /// Who may do what to which group.
    pub policy: Policy,
    /// Whether messages carry their verified sender.
    pub sender_stamp: SenderStamp,
    /// When connections close: the login's end in every issued token, unless turned off.
    pub auth_expiry: AuthExpiry,
    /// The function app root (static files of the `index` function live under `www/`).
    pub app_root: PathBuf,
    /// `DEMO_PAGE_ENABLED`: whether `index` serves the demo page; off, it answers 404.
    pub demo_page: bool,
    /// Caller verification.
    pub authenticator: Authenticator,
    /// REST reads against the SignalR Service (membership checks).
    pub service: ServiceClient,
    /// The key that signs client tokens (AccessKey or managed identity); shared with `service`.
    pub service_auth: ServiceAuth,
}

impl AppState {
    /// The bindings of `function`, if the app has that function.
    pub fn function(&self, function: Function) -> Option<&FunctionBindings> {
        self.functions
            .iter()
            .find(|bindings| bindings.function == function)
    }
}

/// What a function produced: the caller's response and any other output bindings.
pub struct FunctionOutcome {
    /// The caller's response (the `http` output).
    pub response: CallerResponse,
    /// Other outputs, by binding name.
    pub outputs: Vec<(String, Value)>,
}

/// Log lines of one invocation, sent back in `Logs`: the host records them with the function
/// name and invocation id (Application Insights in Azure, one terminal line per invocation in
/// the host emulator), so the lines carry neither. They are mirrored to the process log only at
/// `debug` (`RUST_LOG=handler=debug`), except server faults, which stay errors there: a host
/// also captures the handler's output, and mirroring every line would print each one twice.
/// Nothing passed here may contain a token or a secret.
///
/// Callers should quote caller text with `{:?}`; as a second line of defence every line is
/// passed through [`escape_controls`] before it is stored or logged, so no caller text can end a
/// line or forge another one, whatever the message was built from.
pub struct InvocationLog {
    function: String,
    invocation_id: String,
    lines: Vec<String>,
}

impl InvocationLog {
    /// A log for one invocation.
    pub fn new(function: &str, invocation_id: &str) -> Self {
        Self {
            function: escape_controls(function).into_owned(),
            invocation_id: escape_controls(invocation_id).into_owned(),
            lines: Vec::new(),
        }
    }

    /// An informational line.
    pub fn info(&mut self, message: &str) {
        let message = escape_controls(message);
        tracing::debug!(function = %self.function, invocation_id = %self.invocation_id, "{message}");
        self.lines.push(message.into_owned());
    }

    /// A warning: something was left out or not trusted, and the invocation went on.
    pub fn warn(&mut self, message: &str) {
        let message = escape_controls(message);
        tracing::warn!(function = %self.function, invocation_id = %self.invocation_id, "{message}");
        self.lines.push(format!("{}: {message}", self.function));
    }

    /// Logs the forwarded claim types left out of a token (never their values), on one line.
    pub fn dropped_claims(&mut self, dropped: &[String]) {
        if !dropped.is_empty() {
            self.warn(&format!(
                "claims {dropped:?} not forwarded into the SignalR token: only strings (or arrays of strings) without `,`, control characters or surrounding whitespace travel unambiguously in X-ASRS-User-Claims"
            ));
        }
    }

    /// A refusal or failure, with its exact reason.
    pub fn refusal(&mut self, error: &HandlerError) {
        let reason = error.to_string();
        let reason = escape_controls(&reason);
        if matches!(error, HandlerError::ServiceAuthUnavailable(_)) {
            // `service_auth` logs an outage once when it starts and once when it ends; one
            // process-log line per refused request would bury that.
            tracing::debug!(function = %self.function, invocation_id = %self.invocation_id, "refused: {reason}");
        } else if error.is_server_fault() {
            tracing::error!(function = %self.function, invocation_id = %self.invocation_id, "refused: {reason}");
        } else {
            tracing::debug!(function = %self.function, invocation_id = %self.invocation_id, "refused: {reason}");
        }
        self.lines.push(format!("refused: {reason}"));
    }
}

/// Runs the function served at `function_name` (the route) on the host's `body` and builds the
/// envelope for the host. A name that is not a [`Function`] of this app is a 404.
pub async fn invoke(
    state: &AppState,
    function_name: &str,
    body: Result<Vec<u8>, HandlerError>,
    invocation_id: &str,
) -> InvocationResponse {
    let mut log = InvocationLog::new(function_name, invocation_id);
    let Some(bindings) =
        Function::from_name(function_name).and_then(|function| state.function(function))
    else {
        let error = HandlerError::UnknownFunction(function_name.to_owned());
        log.refusal(&error);
        return InvocationResponse::new("res", error.caller_response(), log.lines);
    };
    let parsed = body.and_then(|body| Ok(InvocationRequest::parse(&body, &bindings.trigger)?));
    let result = match parsed {
        Ok(request) => match bindings.function {
            Function::Negotiate => negotiate::run(state, bindings, &request, &mut log).await,
            Function::AddToGroup => {
                groups::change_membership(state, bindings, &request, &mut log, groups::Change::Add)
                    .await
            }
            Function::RemoveFromGroup => {
                groups::change_membership(
                    state,
                    bindings,
                    &request,
                    &mut log,
                    groups::Change::Remove,
                )
                .await
            }
            Function::RemoveFromAllGroups => {
                groups::remove_from_all_groups(state, bindings, &request, &mut log).await
            }
            Function::SendToGroup => {
                messages::send(state, bindings, &request, &mut log, messages::To::Group).await
            }
            Function::SendToUser => {
                messages::send(state, bindings, &request, &mut log, messages::To::User).await
            }
            Function::Index => index::run(state, &request).await,
            Function::Connect => connect::run(state, &request, &mut log).await,
            Function::Refresh => refresh::run(state, bindings, &request, &mut log).await,
            Function::Upstream => upstream::run(state, bindings, &request, &mut log).await,
        },
        Err(error) => Err(error),
    };
    match result {
        Ok(outcome) => {
            let mut envelope =
                InvocationResponse::new(&bindings.http_output, outcome.response, log.lines);
            for (name, value) in outcome.outputs {
                envelope = envelope.with_output(&name, value);
            }
            envelope
        }
        Err(error) => {
            log.refusal(&error);
            InvocationResponse::new(&bindings.http_output, error.caller_response(), log.lines)
        }
    }
}

/// Whether the function may take its bearer token from the `access_token` query
/// ([`Function::needs`]: only negotiate).
fn query_token(function: Function) -> QueryToken {
    if function.needs().access_token_query {
        QueryToken::Accepted
    } else {
        QueryToken::Refused
    }
}

/// The HTTP request of an invocation and its verified caller: the first step of every function
/// that acts for a user and takes no JSON body.
pub async fn verified_request<'a>(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &'a InvocationRequest,
) -> Result<(&'a HttpRequestData, VerifiedUser), HandlerError> {
    debug_assert!(
        !bindings.function.needs().json_body,
        "use verified_json_request"
    );
    let request = invocation.http_request()?;
    let query_token = query_token(bindings.function);
    let user = state
        .authenticator
        .authenticate(request, query_token)
        .await?;
    Ok((request, user))
}

/// The verified caller and JSON body of a function a browser calls with a body (the group and
/// message functions, and any later one of that kind): the content-type rule for every source,
/// then the caller, then the cross-site rule for ambient credentials (see [`browser`]), then
/// the body. Calling this is how a function declares itself a JSON-body function.
pub async fn verified_json_request<'a, T: DeserializeOwned>(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &'a InvocationRequest,
) -> Result<(&'a HttpRequestData, VerifiedUser, T), HandlerError> {
    debug_assert!(bindings.function.needs().json_body, "use verified_request");
    let request = invocation.http_request()?;
    browser::require_json_content_type(request)?;
    let query_token = query_token(bindings.function);
    let user = state
        .authenticator
        .authenticate(request, query_token)
        .await?;
    browser::refuse_cross_site(&state.auth, request, &user)?;
    let body = parse_json_body(request)?;
    Ok((request, user, body))
}

/// The caller's JSON body as `T`: required, capped, unknown fields refused (by `T`).
pub fn parse_json_body<T: DeserializeOwned>(request: &HttpRequestData) -> Result<T, HandlerError> {
    let body = request.body.as_deref().ok_or(BadRequest::BodyMissing)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(BadRequest::BodyTooLarge(MAX_BODY_BYTES).into());
    }
    serde_json::from_slice(body)
        .map_err(|error| BadRequest::InvalidJson(JsonFault::of(&error)).into())
}

/// The function's `signalR` output binding (validated at start-up for these functions).
pub fn signalr_output(bindings: &FunctionBindings) -> Result<&SignalRBinding, HandlerError> {
    bindings.signalr_output.as_ref().ok_or_else(|| {
        ConfigurationError::NoSignalROutput(bindings.function.name().to_owned()).into()
    })
}

/// Applies the policy to `request`, asking the service about membership when a rule needs it.
/// A check that cannot be made is a 503, never an allow.
pub async fn authorize(
    state: &AppState,
    user: &VerifiedUser,
    request: &Request<'_>,
    output: &SignalRBinding,
    log: &mut InvocationLog,
) -> Result<(), HandlerError> {
    let mut target = String::new();
    if let Some(group) = request.group {
        target.push_str(&format!(" on group {:?}", group.as_str()));
    }
    // The caller's own id is already named; a target is worth naming only when it is another user.
    if let Some(other) = request
        .user
        .filter(|other| other.as_str() != user.user_id())
    {
        target.push_str(&format!(" to user {:?}", other.as_str()));
    }
    let forbidden = |reason: Denial| HandlerError::Forbidden {
        operation: request.operation.name(),
        caller: user.user_id().to_owned(),
        target: target.clone(),
        reason,
    };
    match state.policy.decide(user, request) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => Err(forbidden(reason)),
        Decision::AllowIfMember => {
            let (Some(group), Some(hub)) = (request.group, output.hub_name.as_deref()) else {
                return Err(forbidden(Denial::MembershipUncheckable));
            };
            // Checked at start-up (`bindings::check_signalr_outputs`); parsed again for the type.
            let hub = HubName::parse(hub).map_err(ConfigurationError::OutputHubName)?;
            match state
                .service
                .is_user_in_group(&hub, &user.as_target(), group)
                .await
            {
                Ok(true) => {
                    log.info(&format!(
                        "{:?} is a member of {:?}",
                        user.user_id(),
                        group.as_str()
                    ));
                    Ok(())
                }
                Ok(false) => Err(forbidden(Denial::NotAMember(group.as_str().to_owned()))),
                Err(error) => Err(HandlerError::ServiceUnavailable(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invocation_log_keeps_every_line_on_one_line_whatever_it_is_given() {
        let mut log = InvocationLog::new("addToGroup\r\n", "id\u{2028}");
        log.info("x\r\n2026-01-01T00:00:00Z  INFO token issued for user \"root\"");
        log.info("esc\u{1b}[2J nul\0 nel\u{85} sep\u{2029}");
        log.refusal(&HandlerError::CrossSite(
            crate::error::CrossSiteRefusal::ForeignOrigin("raw\ncaller text".into()),
        ));
        assert_eq!(log.lines.len(), 3);
        for line in &log.lines {
            assert!(
                !line.chars().any(crate::telemetry::is_unsafe_in_log),
                "{line:?}"
            );
        }
        assert_eq!(
            log.lines[0],
            "x\\u{d}\\u{a}2026-01-01T00:00:00Z  INFO token issued for user \"root\""
        );
    }
}
