//! `addToGroup`, `removeFromGroup`, `removeFromAllGroups`: group membership of the verified
//! caller, or of another user when the policy allows the admin operation.
//!
//! A `userId` in the body never replaces the caller silently: naming another user turns the
//! request into an admin operation that the policy must allow on its own.

use serde::Deserialize;
use serde_json::json;

use crate::bindings::FunctionBindings;
use crate::error::HandlerError;
use crate::functions::{
    AppState, FunctionOutcome, InvocationLog, authorize, signalr_output, verified_json_request,
};
use crate::identity::VerifiedUser;
use crate::invocation::{CallerResponse, InvocationRequest};
use crate::names::{GroupName, TargetUser};
use crate::policy::{Operation, Request};
use crate::signalr::output::GroupAction;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    group: String,
    #[serde(rename = "userId", default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    #[serde(rename = "userId", default)]
    user_id: Option<String>,
}

/// Which way a membership change goes.
#[derive(Clone, Copy)]
pub enum Change {
    /// `addToGroup`.
    Add,
    /// `removeFromGroup`.
    Remove,
}

/// Runs `addToGroup` or `removeFromGroup`.
pub async fn change_membership(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
    change: Change,
) -> Result<FunctionOutcome, HandlerError> {
    let (_request, user, body): (_, _, GroupBody) =
        verified_json_request(state, bindings, invocation).await?;
    let group = GroupName::parse(&body.group)?;
    let (target, for_someone_else) = target_user(&user, body.user_id.as_deref())?;
    let operation = match (change, for_someone_else) {
        (Change::Add, false) => Operation::Join,
        (Change::Remove, false) => Operation::Leave,
        (Change::Add, true) => Operation::AddUserToGroup,
        (Change::Remove, true) => Operation::RemoveUserFromGroup,
    };
    let output = signalr_output(bindings)?;
    authorize(
        state,
        &user,
        &Request {
            operation,
            group: Some(&group),
            user: Some(&target),
        },
        output,
        log,
    )
    .await?;

    let (action, verb) = match change {
        Change::Add => (GroupAction::Add(target.clone(), group.clone()), "add"),
        Change::Remove => (GroupAction::Remove(target.clone(), group.clone()), "remove"),
    };
    log.info(&format!(
        "{} by {:?}: {verb} {:?} to/from group {:?}",
        operation.name(),
        user.user_id(),
        target.as_str(),
        group.as_str()
    ));
    Ok(FunctionOutcome {
        response: CallerResponse::json(
            202,
            &json!({"action": verb, "group": group.as_str(), "userId": target.as_str()}),
        ),
        outputs: vec![(output.name.clone(), json!([action.to_item()]))],
    })
}

/// Runs `removeFromAllGroups` (the "ban" case): always the admin operation, even for oneself,
/// so a policy grants it explicitly.
pub async fn remove_from_all_groups(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
) -> Result<FunctionOutcome, HandlerError> {
    let (_request, user, body): (_, _, UserBody) =
        verified_json_request(state, bindings, invocation).await?;
    let (target, _) = target_user(&user, body.user_id.as_deref())?;
    let output = signalr_output(bindings)?;
    authorize(
        state,
        &user,
        &Request {
            operation: Operation::RemoveUserFromAllGroups,
            group: None,
            user: Some(&target),
        },
        output,
        log,
    )
    .await?;
    log.info(&format!(
        "removeUserFromAllGroups by {:?}: {:?}",
        user.user_id(),
        target.as_str()
    ));
    Ok(FunctionOutcome {
        response: CallerResponse::json(
            202,
            &json!({"action": "removeAll", "userId": target.as_str()}),
        ),
        outputs: vec![(
            output.name.clone(),
            json!([GroupAction::RemoveAll(target).to_item()]),
        )],
    })
}

/// The user acted on: the caller, unless the body names someone else.
fn target_user(
    user: &VerifiedUser,
    named: Option<&str>,
) -> Result<(TargetUser, bool), HandlerError> {
    match named {
        None => Ok((user.as_target(), false)),
        Some(id) if id == user.user_id() => Ok((user.as_target(), false)),
        Some(id) => Ok((TargetUser::parse(id)?, true)),
    }
}
