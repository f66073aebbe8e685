//! `upstream`: the SignalR Service's upstream URL (docs/protocol/signalr-service.md §6), a plain
//! HTTP function rather than `signalRTrigger` (no storage account, no runtime webhook, and a
//! signature check the trigger skips in identity mode).
//!
//! Every request is first authenticated as the service's (`signalr::upstream::authenticate`,
//! fail closed: the signature, or in keyless mode the service's managed-identity token) and its hub checked against the `signalR` output's. The caller is then the
//! connection's user, `X-ASRS-User-Id`, with the forwarded claims its token carried, read from
//! `X-ASRS-User-Claims` (see `identity::service_connection` for exactly which and why they can
//! be trusted); a connection without a user is anonymous for the policy.
//!
//! - `connections/connected`: the user joins the policy's `onConnect` groups (group actions in
//!   the output binding); 200.
//! - `connections/disconnected`: logged; 200.
//! - `messages/<target>`: the policy's `invoke` rules decide whether the connection may call
//!   `target` at all; then the built-in method runs, checked by the same policy operation as
//!   its HTTP function and emitting the same items: `joinGroup(group)` (join),
//!   `leaveGroup(group)` (leave), `sendToGroup(group, target, ...args)` (sendToGroup, the
//!   verified sender stamped), `sendToUser(userId, target, ...args)` (sendToUser). Any other
//!   target is refused. With an `invocationId` the answer is a Completion frame the service
//!   forwards raw to the client; a refusal is an error Completion, never a silent drop.
//!
//! Refusals of the request itself (signature, hub, headers, media type) are HTTP statuses the
//! service turns into its own error Completion; MessagePack clients get such a 415.

use serde_json::{Value, json};

use crate::bindings::{FunctionBindings, SignalRBinding};
use crate::error::{BadRequest, ConfigurationError, HandlerError, NotFound};
use crate::functions::messages::parse_target;
use crate::functions::{AppState, FunctionOutcome, InvocationLog, authorize, signalr_output};
use crate::identity::VerifiedUser;
use crate::identity::service_connection::ConnectionClaims;
use crate::invocation::{CallerResponse, HttpRequestData, InvocationRequest};
use crate::names::{GroupName, HubName, TargetUser};
use crate::policy::{Denial, Operation, Request};
use crate::signalr::access_token::upstream_readable_claims;
use crate::signalr::output::{GroupAction, Message, Recipient, Sender};
use crate::signalr::upstream::{
    self, HubInvocation, UpstreamEvent, completion_error, completion_result,
};

/// The hub methods this handler serves, as a refusal names them.
const METHODS_RULE: &str =
    "is not a hub method this app serves (joinGroup, leaveGroup, sendToGroup, sendToUser)";

/// Runs upstream.
pub async fn run(
    state: &AppState,
    bindings: &FunctionBindings,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
) -> Result<FunctionOutcome, HandlerError> {
    let settings = state
        .upstream
        .as_ref()
        .ok_or(HandlerError::NotFound(NotFound::UpstreamOff))?;
    let request = invocation.http_request()?;
    let output = signalr_output(bindings)?;
    // Checked at start-up (`bindings::check_signalr_outputs`); parsed again for the type.
    let hub = HubName::parse(output.hub_name.as_deref().unwrap_or_default())
        .map_err(ConfigurationError::OutputHubName)?;
    let authenticated = upstream::authenticate(
        &settings.auth,
        state.upstream_service.as_ref(),
        request,
        &hub,
    )
    .await?;
    let caller = match upstream::user_id_header(request)? {
        Some(user_id) => Some(VerifiedUser::of_service_connection(
            user_id,
            connection_claims(state, request, user_id, log),
        )?),
        None => None,
    };
    let who = caller.as_ref().map_or_else(
        || "no user".to_owned(),
        |user| format!("{:?}", user.user_id()),
    );
    match authenticated.event {
        UpstreamEvent::Connected => {
            let joins = caller
                .as_ref()
                .map(|user| state.policy.on_connect_groups(user))
                .unwrap_or_default();
            log.info(&format!(
                "connection {:?} ({who}) connected; joins {} onConnect group(s)",
                authenticated.connection_id,
                joins.groups.len()
            ));
            // Skipped is safe (default deny) but otherwise invisible: the operator sees which
            // template, never the user's value that broke it (`who` above is quoted).
            for template in &joins.skipped {
                log.warn(&format!(
                    "onConnect group {template:?} skipped for connection {:?} ({who}): the template yields no valid group name (a claim it reads is missing or has several values, or a value is not one plain group-name segment)",
                    authenticated.connection_id
                ));
            }
            let items: Vec<Value> = match &caller {
                Some(user) => joins
                    .groups
                    .into_iter()
                    .map(|group| GroupAction::Add(user.as_target(), group).to_item())
                    .collect(),
                None => Vec::new(),
            };
            Ok(with_items(CallerResponse::empty(200), output, items))
        }
        UpstreamEvent::Disconnected => {
            log.info(&format!(
                "connection {:?} ({who}) disconnected",
                authenticated.connection_id
            ));
            Ok(with_items(CallerResponse::empty(200), output, Vec::new()))
        }
        UpstreamEvent::Message(event) => {
            let message = HubInvocation::parse(request, &event)?;
            let outcome = call(state, output, caller.as_ref(), &message, log).await;
            let response = match (&message.invocation_id, &outcome) {
                (Some(id), Ok((result, _))) => {
                    CallerResponse::hub_record(completion_result(id, result))
                }
                (Some(id), Err(error)) => {
                    CallerResponse::hub_record(completion_error(id, &error.completion_error()))
                }
                (None, _) => CallerResponse::empty(200),
            };
            match outcome {
                Ok((_, items)) => {
                    log.info(&format!(
                        "{:?} by {who} on connection {:?}",
                        message.target, authenticated.connection_id
                    ));
                    Ok(with_items(response, output, items))
                }
                Err(error) => {
                    // Answered in the hub protocol (the service's status stays 200), but
                    // logged with its exact reason like any other refusal.
                    log.refusal(&error);
                    Ok(with_items(response, output, Vec::new()))
                }
            }
        }
    }
}

/// The connection's forwarded claims from `X-ASRS-User-Claims` (see
/// `identity::service_connection` for which are read and why they can be trusted); a header
/// that does not parse exactly gives no claims, logged.
fn connection_claims(
    state: &AppState,
    request: &HttpRequestData,
    user_id: &str,
    log: &mut InvocationLog,
) -> ConnectionClaims {
    let readable = upstream_readable_claims(&state.auth.forward_claims);
    ConnectionClaims::parse_for(user_id, &upstream::user_claims_headers(request), &readable)
        .unwrap_or_else(|reason| {
            log.warn(&format!(
                "X-ASRS-User-Claims not trusted, the connection is read without claims: {reason}"
            ));
            ConnectionClaims::none()
        })
}

/// Runs one hub method for `caller`: the `invoke` rules, then the method's own operation.
/// Returns the Completion's result and the output items.
async fn call(
    state: &AppState,
    output: &SignalRBinding,
    caller: Option<&VerifiedUser>,
    message: &HubInvocation,
    log: &mut InvocationLog,
) -> Result<(Value, Vec<Value>), HandlerError> {
    state
        .policy
        .decide_invoke(caller, &message.target)
        .map_err(|reason| HandlerError::Forbidden {
            operation: "invoke",
            caller: caller.map_or_else(
                || "(a connection without a user)".to_owned(),
                |user| user.user_id().to_owned(),
            ),
            target: format!(" of method {:?}", message.target),
            reason,
        })?;
    let method = Method::parse(&message.target, &message.arguments)?;
    let Some(user) = caller else {
        return Err(HandlerError::Forbidden {
            operation: method.operation().name(),
            caller: "(a connection without a user)".to_owned(),
            target: format!(" by method {:?}", message.target),
            reason: Denial::NoConnectionUser,
        });
    };
    let me = user.as_target();
    let operation = method.operation();
    match method {
        Method::JoinGroup(group) | Method::LeaveGroup(group) => {
            authorize(
                state,
                user,
                &Request {
                    operation,
                    group: Some(&group),
                    user: Some(&me),
                },
                output,
                log,
            )
            .await?;
            let (action, verb) = if operation == Operation::Join {
                (GroupAction::Add(me.clone(), group.clone()), "add")
            } else {
                (GroupAction::Remove(me.clone(), group.clone()), "remove")
            };
            Ok((
                json!({"action": verb, "group": group.as_str(), "userId": me.as_str()}),
                vec![action.to_item()],
            ))
        }
        Method::Send {
            recipient,
            target,
            arguments,
        } => {
            let request = match &recipient {
                Recipient::Group(group) => Request {
                    operation: Operation::SendToGroup,
                    group: Some(group),
                    user: Some(&me),
                },
                Recipient::User(target_user) => Request {
                    operation: Operation::SendToUser,
                    group: None,
                    user: Some(target_user),
                },
            };
            authorize(state, user, &request, output, log).await?;
            let mut result = json!({"sent": true, "target": target});
            match &recipient {
                Recipient::Group(group) => result["group"] = json!(group.as_str()),
                Recipient::User(target_user) => result["userId"] = json!(target_user.as_str()),
            }
            let message = Message {
                sender: Sender::of(user),
                target,
                arguments,
                recipient,
            };
            Ok((result, vec![message.to_item(state.sender_stamp)]))
        }
    }
}

/// A built-in hub method with its arguments parsed.
enum Method {
    /// `joinGroup(group)`.
    JoinGroup(GroupName),
    /// `leaveGroup(group)`.
    LeaveGroup(GroupName),
    /// `sendToGroup(group, target, ...args)` or `sendToUser(userId, target, ...args)`.
    Send {
        recipient: Recipient,
        target: String,
        arguments: Vec<Value>,
    },
}

impl Method {
    /// The method named `name`, with `arguments` checked; unknown names and wrong arguments are
    /// bad requests (the client gets their text in the error Completion).
    fn parse(name: &str, arguments: &[Value]) -> Result<Self, HandlerError> {
        let text = |index: usize, rule: &'static str| -> Result<&str, HandlerError> {
            arguments.get(index).and_then(Value::as_str).ok_or_else(|| {
                BadRequest::Field {
                    field: "arguments",
                    rule,
                }
                .into()
            })
        };
        match name {
            "joinGroup" | "leaveGroup" => {
                const RULE: &str = "must be (group): one string";
                if arguments.len() != 1 {
                    return Err(BadRequest::Field {
                        field: "arguments",
                        rule: RULE,
                    }
                    .into());
                }
                let group = GroupName::parse(text(0, RULE)?)?;
                Ok(if name == "joinGroup" {
                    Self::JoinGroup(group)
                } else {
                    Self::LeaveGroup(group)
                })
            }
            "sendToGroup" | "sendToUser" => {
                const RULE: &str = "must be (recipient, target, ...arguments): two strings first";
                let recipient = if name == "sendToGroup" {
                    Recipient::Group(GroupName::parse(text(0, RULE)?)?)
                } else {
                    Recipient::User(TargetUser::parse(text(0, RULE)?)?)
                };
                let target = parse_target(text(1, RULE)?)?;
                Ok(Self::Send {
                    recipient,
                    target,
                    arguments: arguments.get(2..).unwrap_or_default().to_vec(),
                })
            }
            _ => Err(BadRequest::Field {
                field: "target",
                rule: METHODS_RULE,
            }
            .into()),
        }
    }

    /// The policy operation that checks the method.
    fn operation(&self) -> Operation {
        match self {
            Self::JoinGroup(_) => Operation::Join,
            Self::LeaveGroup(_) => Operation::Leave,
            Self::Send {
                recipient: Recipient::Group(_),
                ..
            } => Operation::SendToGroup,
            Self::Send {
                recipient: Recipient::User(_),
                ..
            } => Operation::SendToUser,
        }
    }
}

fn with_items(
    response: CallerResponse,
    output: &SignalRBinding,
    items: Vec<Value>,
) -> FunctionOutcome {
    FunctionOutcome {
        response,
        outputs: if items.is_empty() {
            Vec::new()
        } else {
            vec![(output.name.clone(), Value::Array(items))]
        },
    }
}
