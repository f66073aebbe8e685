//! `sendToGroup` and `sendToUser`: messages from a verified caller, to a recipient the policy
//! allows. The recipient is a typed [`Recipient`], so a message can never broadcast, and the
//! sender is the verified caller, written by the handler as the first argument (see
//! [`crate::signalr::output`]), so a caller cannot pose as someone else.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::bindings::FunctionBindings;
use crate::error::{BadRequest, HandlerError};
use crate::functions::{
    AppState, FunctionOutcome, InvocationLog, authorize, signalr_output, verified_json_request,
};
use crate::invocation::{CallerResponse, InvocationRequest};
use crate::names::{GroupName, TargetUser};
use crate::policy::{Operation, Request};
use crate::signalr::output::{Message, Recipient, Sender};

/// Longest client method name accepted.
const MAX_TARGET_CHARS: usize = 128;
/// The rule [`parse_target`] applies, as the caller reads it.
const TARGET_RULE: &str =
    "must be a method name: 1-128 characters, a letter or _ first, then letters, digits, _ . -";

/// Which kind of recipient a function sends to.
#[derive(Clone, Copy)]
pub enum To {
    /// `sendToGroup`: body `{"group", "target", "arguments"}`.
    Group,
    /// `sendToUser`: body `{"userId", "target", "arguments"}`.
    User,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    #[serde(default)]
    group: Option<String>,
    #[serde(rename = "userId", default)]
    user_id: Option<String>,
    target: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Runs `sendToGroup` or `sendToUser`.
pub async fn send(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
    to: To,
) -> Result<FunctionOutcome, HandlerError> {
    let (_request, user, body): (_, _, MessageBody) =
        verified_json_request(state, bindings, invocation).await?;
    let recipient = match (to, body.group, body.user_id) {
        (To::Group, Some(group), None) => Recipient::Group(GroupName::parse(&group)?),
        (To::User, None, Some(user_id)) => Recipient::User(TargetUser::parse(&user_id)?),
        (To::Group, _, _) => {
            return Err(BadRequest::Recipient {
                needed: "group",
                refused: "userId",
            }
            .into());
        }
        (To::User, _, _) => {
            return Err(BadRequest::Recipient {
                needed: "userId",
                refused: "group",
            }
            .into());
        }
    };
    let target = parse_target(&body.target)?;
    let arguments = parse_arguments(body.arguments)?;
    let output = signalr_output(bindings)?;
    let caller = user.as_target();
    let policy_request = match &recipient {
        Recipient::Group(group) => Request {
            operation: Operation::SendToGroup,
            group: Some(group),
            user: Some(&caller),
        },
        Recipient::User(recipient) => Request {
            operation: Operation::SendToUser,
            group: None,
            user: Some(recipient),
        },
    };
    authorize(state, &user, &policy_request, output, log).await?;

    let mut response = json!({"sent": true, "target": target});
    match &recipient {
        Recipient::Group(group) => response["group"] = json!(group.as_str()),
        Recipient::User(recipient) => response["userId"] = json!(recipient.as_str()),
    }
    let to = match &recipient {
        Recipient::Group(group) => format!("group {:?}", group.as_str()),
        Recipient::User(recipient) => format!("user {:?}", recipient.as_str()),
    };
    log.info(&format!(
        "{} by {:?} to {to}: {target:?}",
        policy_request.operation.name(),
        user.user_id()
    ));
    let message = Message {
        sender: Sender::of(&user),
        target,
        arguments,
        recipient,
    };
    Ok(FunctionOutcome {
        response: CallerResponse::json(202, &response),
        outputs: vec![(
            output.name.clone(),
            json!([message.to_item(state.sender_stamp)]),
        )],
    })
}

/// A client method name: a letter or `_` first, then letters, digits, `_`, `.` or `-`.
pub fn parse_target(target: &str) -> Result<String, HandlerError> {
    let mut chars = target.chars();
    let valid = target.len() <= MAX_TARGET_CHARS
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(target.to_owned())
    } else {
        Err(BadRequest::Field {
            field: "target",
            rule: TARGET_RULE,
        }
        .into())
    }
}

/// The caller's `arguments`: absent or a JSON array.
fn parse_arguments(arguments: Option<Value>) -> Result<Vec<Value>, HandlerError> {
    match arguments {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(BadRequest::Field {
            field: "arguments",
            rule: "must be a JSON array",
        }
        .into()),
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
    fn the_target_rule_states_the_limit() {
        assert!(TARGET_RULE.contains(&format!("1-{MAX_TARGET_CHARS} characters")));
    }

    #[test]
    fn arguments_must_be_an_array() {
        assert_eq!(parse_arguments(None).expect("ok"), Vec::<Value>::new());
        assert!(parse_arguments(Some(json!([1, "a"]))).is_ok());
        assert!(parse_arguments(Some(json!({"a": 1}))).is_err());
        assert!(parse_arguments(Some(json!("x"))).is_err());
    }
}
