//! `sendToGroup` and `sendToUser`: messages from a verified caller, to a recipient the policy
//! allows. The recipient is a typed [`Recipient`], so a message can never broadcast.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::bindings::FunctionBindings;
use crate::error::HandlerError;
use crate::functions::{
    AppState, FunctionOutcome, InvocationLog, authorize, parse_json_body, signalr_output,
};
use crate::invocation::{CallerResponse, InvocationRequest};
use crate::policy::{GroupName, Operation, Request, TargetUser};
use crate::signalr::output::{Message, Recipient};

/// Longest client method name accepted.
const MAX_TARGET_CHARS: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupMessageBody {
    group: String,
    target: String,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserMessageBody {
    #[serde(rename = "userId")]
    user_id: String,
    target: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Runs `sendToGroup`.
pub async fn send_to_group(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
) -> Result<FunctionOutcome, HandlerError> {
    let request = invocation.http_request(&bindings.trigger)?;
    let user = state.authenticator.authenticate(&request).await?;
    let body: GroupMessageBody = parse_json_body(&request)?;
    let group = GroupName::parse(&body.group).map_err(HandlerError::BadRequest)?;
    let target = parse_target(&body.target)?;
    let arguments = parse_arguments(body.arguments)?;
    let output = signalr_output(bindings)?;
    let caller = TargetUser::caller(&user);
    authorize(
        state,
        &user,
        &Request {
            operation: Operation::SendToGroup,
            group: Some(&group),
            user: Some(&caller),
        },
        output,
        log,
    )
    .await?;
    log.info(&format!(
        "sendToGroup by {:?} to group {:?}: {target}",
        user.user_id(),
        group.as_str()
    ));
    send(
        output.name.clone(),
        target,
        arguments,
        Recipient::Group(group),
    )
}

/// Runs `sendToUser`.
pub async fn send_to_user(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
) -> Result<FunctionOutcome, HandlerError> {
    let request = invocation.http_request(&bindings.trigger)?;
    let user = state.authenticator.authenticate(&request).await?;
    let body: UserMessageBody = parse_json_body(&request)?;
    let recipient = TargetUser::parse(&body.user_id).map_err(HandlerError::BadRequest)?;
    let target = parse_target(&body.target)?;
    let arguments = parse_arguments(body.arguments)?;
    let output = signalr_output(bindings)?;
    authorize(
        state,
        &user,
        &Request {
            operation: Operation::SendToUser,
            group: None,
            user: Some(&recipient),
        },
        output,
        log,
    )
    .await?;
    log.info(&format!(
        "sendToUser by {:?} to user {:?}: {target}",
        user.user_id(),
        recipient.as_str()
    ));
    send(
        output.name.clone(),
        target,
        arguments,
        Recipient::User(recipient),
    )
}

fn send(
    binding: String,
    target: String,
    arguments: Vec<Value>,
    recipient: Recipient,
) -> Result<FunctionOutcome, HandlerError> {
    let mut response = json!({"sent": true, "target": target});
    match &recipient {
        Recipient::Group(group) => response["group"] = json!(group.as_str()),
        Recipient::User(user) => response["userId"] = json!(user.as_str()),
    }
    let message = Message {
        target,
        arguments,
        recipient,
    };
    Ok(FunctionOutcome {
        response: CallerResponse::json(202, &response),
        outputs: vec![(binding, json!([message.to_item()]))],
    })
}

/// A client method name: a letter or `_` first, then letters, digits, `_`, `.` or `-`.
fn parse_target(target: &str) -> Result<String, HandlerError> {
    let mut chars = target.chars();
    let valid = target.len() <= MAX_TARGET_CHARS
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(target.to_owned())
    } else {
        Err(HandlerError::BadRequest(format!(
            "`target` must be a method name: 1-{MAX_TARGET_CHARS} characters, a letter or _ first, then letters, digits, _ . -"
        )))
    }
}

fn parse_arguments(arguments: Option<Value>) -> Result<Vec<Value>, HandlerError> {
    match arguments {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(HandlerError::BadRequest(
            "`arguments` must be a JSON array".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_method_names() {
        for good in ["newMessage", "_x", "chat.message", "a-b", &"a".repeat(128)] {
            assert!(parse_target(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "new message", "a/b", "a\nb", &"a".repeat(129)] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arguments_must_be_an_array() {
        assert_eq!(parse_arguments(None).expect("ok"), Vec::<Value>::new());
        assert!(parse_arguments(Some(json!([1, "a"]))).is_ok());
        assert!(parse_arguments(Some(json!({"a": 1}))).is_err());
        assert!(parse_arguments(Some(json!("x"))).is_err());
    }
}
