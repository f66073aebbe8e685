//! `negotiate`: verify the caller, then hand out a SignalR client token that carries the
//! verified user id.
//!
//! Two styles are supported. With a `signalRConnectionInfo` input the host mints a base token;
//! the handler checks it was signed with the AccessKey it knows (a mismatch means two settings
//! disagree: a configuration fault) and re-signs it with the verified user. Without the input,
//! the handler mints the token itself from the connection string; with a managed identity this
//! is the only style (config refuses the input), and the key is the cached temporary key.

use serde::Serialize;

use crate::bindings::FunctionBindings;
use crate::error::{ConfigurationError, HandlerError};
use crate::functions::{AppState, FunctionOutcome, InvocationLog, verified_request};
use crate::invocation::{CallerResponse, InputFault, InvocationRequest};
use crate::signalr::access_token::ConnectionInfo;

/// Runs negotiate.
pub async fn run(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
) -> Result<FunctionOutcome, HandlerError> {
    let (_request, user) = verified_request(state, bindings, invocation).await?;
    // Never waits: the key is the AccessKey or the cached temporary key (503 when there is none).
    let signer = state.service_auth.token_signer(&state.signalr)?;
    let forward = &state.auth.forward_claims;
    let now = jsonwebtoken::get_current_timestamp();
    let deadline = state.auth_expiry.deadline(&user, now);

    let (url, access_token) = match &bindings.connection_info {
        Some(binding) => {
            let info = invocation
                .input_as::<ConnectionInfo>(&binding.name)
                .ok_or_else(|| ConfigurationError::InputMissing(binding.name.clone()))?
                .map_err(|fault| match fault {
                    InputFault::NotJson => ConfigurationError::InputNotJson(binding.name.clone()),
                    InputFault::WrongShape => {
                        ConfigurationError::InputIncomplete(binding.name.clone())
                    }
                })?;
            let base = signer
                .verify_binding_token(&info.access_token)
                .map_err(|error| ConfigurationError::BindingToken {
                    error,
                    setting: state.signalr_setting.clone(),
                })?;
            // The host minted the base token for the binding's hub; a different audience means
            // the binding and the handler disagree about the service or hub.
            if let Some(hub) = binding.hub_name.as_deref() {
                let expected = state.signalr.client_audience(hub);
                if base.audience() != Some(expected.as_str()) {
                    return Err(ConfigurationError::BindingAudience {
                        actual: base.audience().map(str::to_owned),
                        expected,
                        hub: hub.to_owned(),
                        setting: state.signalr_setting.clone(),
                    }
                    .into());
                }
            }
            let token = signer
                .reissue(&base, &user, forward, deadline)
                .map_err(ConfigurationError::Token)?;
            (info.url, token)
        }
        None => {
            let hub = state
                .mint_hub
                .as_ref()
                .ok_or(ConfigurationError::HubNameNotSet)?;
            let token = signer
                .mint(hub.as_str(), &user, forward, deadline, now)
                .map_err(ConfigurationError::Token)?;
            (state.signalr.client_url(hub.as_str()), token)
        }
    };
    log.dropped_claims(&access_token.dropped_claims);
    log.info(&format!("token issued for user {:?}", user.user_id()));
    // `tokenLifetimeSeconds` is ASP.NET Core 11's negotiate field: newer clients schedule their
    // refresh from it, older ones ignore it. It is the issued token's own `exp - now`.
    let body = NegotiateAnswer {
        url: &url,
        access_token: &access_token.token,
        token_lifetime_seconds: access_token.lifetime_seconds(now),
    };
    Ok(FunctionOutcome {
        response: CallerResponse::json(200, &body).with_header("Cache-Control", "no-store"),
        outputs: Vec::new(),
    })
}

/// The negotiate answer the SignalR client reads, in this key order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NegotiateAnswer<'a> {
    url: &'a str,
    access_token: &'a str,
    token_lifetime_seconds: u64,
}
