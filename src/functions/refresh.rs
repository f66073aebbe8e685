//! `refresh`: a live connection's login is renewed without reconnecting (the 2026 protocol,
//! docs/protocol/signalr-identity-2026.md §1.3).
//!
//! The client (ASP.NET Core 11's `withAuthenticationRefresh`) POSTs `{app}/refresh?id=<its
//! connection token>` with fresh credentials. The handler verifies them exactly as negotiate
//! does, then asks the service to move the connection's deadline with
//! `POST …/connections/:refreshAuth`, **always** sending the new claims (`asrs.s.uid` = the
//! verified user, and the new `asrs.s.aeo`): without `claims` the service keeps the old ones and
//! checks no user, so a leaked connection token plus anyone's login would extend someone else's
//! connection. The service refuses claims naming another user (403), which the client gets as
//! `permission_change_rejected`.
//!
//! Re-authorization: the connection's claims before the refresh are read first
//! (`connections/claims`); every group a `join` rule names for those claims
//! (`Policy::groups_joined_by_rule`) that the fresh credential may no longer join, and that the
//! service reports the user is in (`HEAD …/users/{user}/groups/{group}`), is left through the
//! `signalR` output binding (a `remove` group action, applied by the host like every other
//! write). All checks run before `:refreshAuth`, so a check that cannot be made (503) changes
//! nothing.
//!
//! The connection token names a connection: it is never logged, and the request URL (which
//! carries it) is never logged either.

use serde_json::{Value, json};

use crate::bindings::FunctionBindings;
use crate::error::{ConfigurationError, HandlerError, RefreshRefusal};
use crate::functions::{AppState, FunctionOutcome, InvocationLog, browser, signalr_output};
use crate::identity::credential::QueryToken;
use crate::identity::{IdentityError, VerifiedUser};
use crate::invocation::{CallerResponse, HttpRequestData, InvocationRequest};
use crate::names::{GroupName, HubName};
use crate::policy::{Decision, Operation, Request};
use crate::signalr::access_token::{USER_ID_CLAIM, refresh_claims};
use crate::signalr::expiry::iso8601_utc;
use crate::signalr::output::GroupAction;
use crate::signalr::rest::{ConnectionAnswer, ConnectionToken, RestError, ServiceClaim};

/// Runs refresh.
pub async fn run(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
) -> Result<FunctionOutcome, HandlerError> {
    let request = invocation.http_request()?;
    if request.method != "POST" {
        return Err(RefreshRefusal::Method(request.method.clone()).into());
    }
    let now = jsonwebtoken::get_current_timestamp();
    // Checked before anything else the caller sent: with the claims off there is no deadline.
    if state.auth_expiry.session_on().is_none() {
        return Err(RefreshRefusal::Disabled.into());
    }
    let token = connection_token(request)?;
    let user = state
        .authenticator
        .authenticate(request, QueryToken::Refused)
        .await
        .map_err(|error| match error {
            IdentityError::KeysUnavailable(_) => HandlerError::Unauthenticated(error),
            other => RefreshRefusal::InvalidToken(other).into(),
        })?;
    browser::refuse_cross_site(&state.auth, request, &user)?;
    let deadline = state
        .auth_expiry
        .deadline(&user, now)
        .ok_or(RefreshRefusal::Disabled)?;
    if deadline <= now {
        return Err(RefreshRefusal::CredentialEnded.into());
    }
    let output = signalr_output(bindings)?;
    // Checked at start-up (`bindings::check_signalr_outputs`); parsed again for the type.
    let hub = HubName::parse(output.hub_name.as_deref().unwrap_or_default())
        .map_err(ConfigurationError::OutputHubName)?;

    let old_claims = match state.service.connection_claims(&hub, &token).await? {
        ConnectionAnswer::Claims(claims) => claims,
        other => return Err(refusal(other)),
    };
    // The service's own check on `:refreshAuth` is what protects the connection; refusing here
    // as well keeps the re-authorization below from ever reading another user's groups.
    if connection_user(&old_claims) != Some(user.user_id()) {
        return Err(RefreshRefusal::PermissionChangeRejected.into());
    }
    let removals = groups_to_leave(state, &hub, &user, &old_claims).await?;

    let (claims, dropped) = refresh_claims(&user, &state.auth.forward_claims, deadline);
    log.dropped_claims(&dropped);
    let sent: Vec<ServiceClaim> = claims
        .iter()
        .map(|(claim_type, value)| ServiceClaim {
            claim_type: claim_type.clone(),
            value: value.clone(),
        })
        .collect();
    let refreshed = match state
        .service
        .refresh_auth(&hub, &token, &iso8601_utc(deadline), &sent)
        .await?
    {
        ConnectionAnswer::Claims(claims) => claims,
        other => return Err(refusal(other)),
    };
    // A service answer naming anyone else (or anyone besides) is not one to accept.
    let uids: Vec<&str> = refreshed
        .iter()
        .filter(|claim| claim.claim_type == USER_ID_CLAIM)
        .map(|claim| claim.value.as_str())
        .collect();
    if uids != [user.user_id()] {
        return Err(RestError::UnexpectedAnswer(200).into());
    }
    // The connection now holds exactly the claims sent (`claims` replaces them all), so the new
    // client token is minted from those, the verified ones: nothing an answer adds (a role, a
    // second user) can reach a token this handler signs.
    let pairs = claims;
    // Never waits: the key is the AccessKey or the cached temporary key (503 when there is none).
    let issued = state
        .service_auth
        .token_signer(&state.signalr)?
        .mint_refreshed(hub.as_str(), &pairs, deadline.min(user.expires_at()), now)
        .map_err(ConfigurationError::Token)?;

    log.info(&format!(
        "connection of {:?} refreshed until {deadline}",
        user.user_id()
    ));
    let mut items = Vec::new();
    for group in &removals {
        log.info(&format!(
            "re-authorization: {:?} may no longer join {:?}; removed from the group",
            user.user_id(),
            group.as_str()
        ));
        items.push(GroupAction::Remove(user.as_target(), group.clone()).to_item());
    }
    let outputs = if items.is_empty() {
        Vec::new()
    } else {
        vec![(output.name.clone(), Value::Array(items))]
    };
    Ok(FunctionOutcome {
        response: CallerResponse::json(
            200,
            &json!({
                "accessToken": issued.token,
                "tokenLifetimeSeconds": issued.lifetime_seconds(now),
            }),
        )
        .with_header("Cache-Control", "no-store"),
        outputs,
    })
}

/// The one `id` query value, shaped like a connection token.
fn connection_token(request: &HttpRequestData) -> Result<ConnectionToken, RefreshRefusal> {
    match request.query_values("id").as_slice() {
        // A repeated parameter arrives comma-joined; a token never holds a comma.
        [value] if !value.contains(',') => {
            ConnectionToken::parse(value).ok_or(RefreshRefusal::MissingConnectionToken)
        }
        _ => Err(RefreshRefusal::MissingConnectionToken),
    }
}

/// The user a claim list names, by the service's precedence (`asrs.s.uid`, `nameid`, `sub`).
fn connection_user(claims: &[ServiceClaim]) -> Option<&str> {
    [USER_ID_CLAIM, "nameid", "sub"]
        .into_iter()
        .find_map(|name| {
            claims
                .iter()
                .find(|claim| claim.claim_type == name)
                .map(|claim| claim.value.as_str())
        })
}

/// The groups a `join` rule admitted the user to under the connection's old claims that the
/// fresh credential may no longer join and the service says the user is in.
async fn groups_to_leave(
    state: &AppState,
    hub: &HubName,
    user: &VerifiedUser,
    old_claims: &[ServiceClaim],
) -> Result<Vec<GroupName>, HandlerError> {
    let old = |name: &str| -> Vec<&str> {
        old_claims
            .iter()
            .filter(|claim| claim.claim_type == name)
            .map(|claim| claim.value.as_str())
            .collect()
    };
    let mut leave = Vec::new();
    for group in state.policy.groups_joined_by_rule(user.user_id(), &old) {
        let request = Request {
            operation: Operation::Join,
            group: Some(&group),
            user: None,
        };
        // A rule that still admits the user outright keeps the group; a membership rule is met
        // by the membership itself.
        if matches!(
            state.policy.decide(user, &request),
            Decision::Allow | Decision::AllowIfMember
        ) {
            continue;
        }
        if state
            .service
            .is_user_in_group(hub, &user.as_target(), &group)
            .await?
        {
            leave.push(group);
        }
    }
    Ok(leave)
}

/// A `connections/claims` or `:refreshAuth` answer other than claims, as the client's code.
fn refusal(answer: ConnectionAnswer) -> HandlerError {
    match answer {
        ConnectionAnswer::NotFound => RefreshRefusal::ConnectionNotFound.into(),
        ConnectionAnswer::UserMismatch => RefreshRefusal::PermissionChangeRejected.into(),
        ConnectionAnswer::Rejected => RefreshRefusal::ServiceRejected.into(),
        ConnectionAnswer::Claims(_) => RestError::UnexpectedAnswer(200).into(),
    }
}
