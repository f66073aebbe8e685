//! The SignalR Service's upstream protocol as the `upstream` function receives it
//! (docs/protocol/signalr-service.md §6): who sent the request (`X-ASRS-Signature`), for which
//! hub, connection and event, the client's invocation message, and the hub-protocol Completion
//! the service forwards raw to the client (§5.5). **API boundary** with the service.
//!
//! With a managed identity instead of a key, the service sends its identity's bearer token
//! (`identity::service_identity`), which binds nothing of the request at all; either way the
//! hub, event and body are trusted only as far as the service is.
//!
//! The signature binds only the connection id (no body, no timestamp), so it proves the request
//! came from a holder of the access key about *that* connection; the hub, event and body are
//! trusted no further, and the hub is checked against the app's own.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::service_identity::{
    ServiceIdentitySettingNames, ServiceIdentitySettings, ServiceTokenVerifier,
};
use crate::invocation::HttpRequestData;
use crate::names::HubName;
use crate::settings::{ConfigError, Env};
use crate::signalr::connection_string::ConnectionString;
use crate::telemetry::JsonFault;
use crate::webpubsub::signature_matches;

/// The header with the HMAC of the connection id, one `sha256=<hex>` entry per access key.
pub const SIGNATURE_HEADER: &str = "X-ASRS-Signature";
/// The connection's user id; present only when its token had one.
pub const USER_ID_HEADER: &str = "X-ASRS-User-Id";
/// Longest accepted connection id.
const MAX_CONNECTION_ID_CHARS: usize = 256;
/// Longest accepted event name (a hub method name for messages).
const MAX_EVENT_CHARS: usize = 128;
/// Longest accepted invocation id (the client's counter; echoed back in the Completion).
const MAX_INVOCATION_ID_CHARS: usize = 128;
/// Largest invocation message accepted (the service's default client message cap is 32 KB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// How the handler knows an upstream request comes from the SignalR Service.
#[derive(Debug, Clone)]
pub enum ServiceAuth {
    /// `X-ASRS-Signature` with the connection string's AccessKey (and the secondary key, for
    /// rotation).
    Signature {
        /// The connection string's AccessKey.
        primary: SecretString,
        /// `SIGNALR_SECONDARY_ACCESS_KEY`.
        secondary: Option<SecretString>,
    },
    /// Keyless: the service's upstream setting has `auth: ManagedIdentity` with a resource, so
    /// each request carries `Authorization: Bearer` with the service identity's v1 token for
    /// that resource, checked by the shared `ServiceTokenVerifier` (the signature is not read:
    /// without a key there is nothing to check it with).
    ManagedIdentity(Box<ServiceIdentitySettings>),
}

/// The `SIGNALR_UPSTREAM_*` settings of `managedIdentity` mode.
pub const MANAGED_IDENTITY_SETTINGS: ServiceIdentitySettingNames = ServiceIdentitySettingNames {
    tenant_id: "SIGNALR_UPSTREAM_TENANT_ID",
    issuer: "SIGNALR_UPSTREAM_ISSUER",
    audience: "SIGNALR_UPSTREAM_AUDIENCE",
    identity: "SIGNALR_UPSTREAM_IDENTITY",
    service: "the SignalR Service's managed identity",
    resource_hint: "the resource of the upstream setting's `auth: ManagedIdentity`",
};

/// The `upstream` function's settings.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// How the service is authenticated.
    pub auth: ServiceAuth,
}

impl UpstreamSettings {
    /// `SIGNALR_UPSTREAM_AUTH`: `signature` (the default with an AccessKey; plus
    /// `SIGNALR_SECONDARY_ACCESS_KEY` when set), `managedIdentity` (the service's bearer token;
    /// `SIGNALR_UPSTREAM_TENANT_ID` or `_ISSUER`, `_AUDIENCE`, `_IDENTITY`), or `off` (the function
    /// answers 404). Keyless without a mode is off: there is no key for a signature, and the
    /// handler cannot guess which identity and resource the service uses. Settings that the
    /// chosen mode would not read stop start-up, so no deployment believes in a check it lacks.
    pub fn from_env(env: &Env, connection: &ConnectionString) -> Result<Option<Self>, ConfigError> {
        const SETTING: &str = "SIGNALR_UPSTREAM_AUTH";
        let secondary = env
            .get("SIGNALR_SECONDARY_ACCESS_KEY")
            .map(SecretString::from);
        let mode = env.get(SETTING);
        if let Some(name) = MANAGED_IDENTITY_SETTINGS
            .first_set(env)
            .filter(|_| mode.as_deref() != Some("managedIdentity"))
        {
            return Err(ConfigError::new(
                name,
                "is set, but SIGNALR_UPSTREAM_AUTH is not `managedIdentity`, so nothing reads it; set SIGNALR_UPSTREAM_AUTH=managedIdentity or remove this setting",
            ));
        }
        match (mode.as_deref(), connection.access_key()) {
            // Keyless without a mode: off (see above).
            (None, None) => Ok(None),
            (Some("signature"), None) => Err(ConfigError::new(
                SETTING,
                "is `signature`, but the SignalR connection has no AccessKey (managed identity), so there is no key to check X-ASRS-Signature with; use `managedIdentity` (with SIGNALR_UPSTREAM_TENANT_ID, SIGNALR_UPSTREAM_AUDIENCE, SIGNALR_UPSTREAM_IDENTITY) or `off`",
            )),
            (None | Some("signature"), Some(primary)) => Ok(Some(Self {
                auth: ServiceAuth::Signature {
                    primary: primary.clone(),
                    secondary,
                },
            })),
            _ => Self::other_mode(env, mode.as_deref(), secondary.is_some()),
        }
    }

    /// The modes other than `signature`.
    fn other_mode(
        env: &Env,
        mode: Option<&str>,
        secondary: bool,
    ) -> Result<Option<Self>, ConfigError> {
        const SETTING: &str = "SIGNALR_UPSTREAM_AUTH";
        match mode {
            Some("off" | "managedIdentity") if secondary => Err(ConfigError::new(
                "SIGNALR_SECONDARY_ACCESS_KEY",
                "is set, but SIGNALR_UPSTREAM_AUTH is not `signature`, so nothing reads it; remove it or use `signature`",
            )),
            Some("off") => Ok(None),
            Some("managedIdentity") => {
                let identity = ServiceIdentitySettings::from_env(
                    env,
                    &MANAGED_IDENTITY_SETTINGS,
                    "SIGNALR_UPSTREAM_AUTH is `managedIdentity`",
                )?;
                Ok(Some(Self {
                    auth: ServiceAuth::ManagedIdentity(Box::new(identity)),
                }))
            }
            Some(other) => Err(ConfigError::new(
                SETTING,
                format!(
                    "`{}` is not a mode; use signature, managedIdentity or off",
                    other.chars().take(64).collect::<String>()
                ),
            )),
            None => Ok(None),
        }
    }
}

/// Why an upstream request was refused. Messages never contain a key or a signature.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The request does not prove it comes from the service (401).
    #[error("upstream request not authenticated: {0}")]
    NotAuthenticated(&'static str),
    /// The request is for a hub this app does not serve (403).
    #[error("hub {0:?} is not this app's hub")]
    ForeignHub(String),
    /// A routing header is missing, repeated or unusable (400).
    #[error("unusable upstream header: {0}")]
    Header(&'static str),
    /// A category or event this handler does not serve (400).
    #[error("unsupported upstream event {category:?}/{event:?}")]
    UnsupportedEvent {
        /// `X-ASRS-Category`, truncated.
        category: String,
        /// `X-ASRS-Event`, truncated.
        event: String,
    },
    /// The message is not a JSON hub-protocol body (415); MessagePack is not served.
    #[error("upstream message declared {0:?}; only application/json is served")]
    MediaType(String),
    /// The message is not a single hub-protocol Invocation (400).
    #[error("malformed invocation message: {0}")]
    Message(MessageFault),
    /// Not a POST (405).
    #[error("method {0:?} is not POST")]
    Method(String),
}

/// What is wrong with an invocation message.
#[derive(Debug, thiserror::Error)]
pub enum MessageFault {
    /// No body.
    #[error("no body")]
    Missing,
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("over {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// Not the Invocation shape, reported by position only.
    #[error("{0}")]
    Json(JsonFault),
    /// A message type other than 1 (Invocation); streaming is not served.
    #[error("message type {0} is not an Invocation (1)")]
    Type(u64),
    /// The invocation id is empty or too long.
    #[error("the invocationId is empty or longer than {MAX_INVOCATION_ID_CHARS} characters")]
    InvocationId,
    /// `X-ASRS-Event` is not the message's `target`.
    #[error("the message's target is not X-ASRS-Event")]
    TargetMismatch,
    /// Stream ids: client-to-server streaming is not served.
    #[error("streamIds are not supported")]
    Streams,
}

/// What an authenticated upstream request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEvent {
    /// `connections/connected`.
    Connected,
    /// `connections/disconnected`.
    Disconnected,
    /// `messages/<target>`: the client invoked hub method `target`.
    Message(String),
}

/// An upstream request whose signature and hub checked out.
#[derive(Debug)]
pub struct AuthenticatedUpstream {
    /// `X-ASRS-Connection-Id`, the value the signature covers.
    pub connection_id: String,
    /// The event.
    pub event: UpstreamEvent,
}

/// Authenticates `request` as coming from the service (fail closed), then checks its hub
/// against `hub` (case-insensitively: the SDKs lowercase hub names) and reads its event.
/// `ServiceAuth::ManagedIdentity` needs `verifier` (built at start-up from the same settings);
/// without one the request is refused.
pub async fn authenticate(
    auth: &ServiceAuth,
    verifier: Option<&ServiceTokenVerifier>,
    request: &HttpRequestData,
    hub: &HubName,
) -> Result<AuthenticatedUpstream, UpstreamError> {
    if request.method != "POST" {
        return Err(UpstreamError::Method(
            request.method.chars().take(16).collect(),
        ));
    }
    let connection_id = single_header(request, "X-ASRS-Connection-Id")
        .filter(|id| !id.is_empty() && id.len() <= MAX_CONNECTION_ID_CHARS)
        .ok_or(UpstreamError::NotAuthenticated(
            "no single, bounded X-ASRS-Connection-Id header",
        ))?;
    match auth {
        ServiceAuth::Signature { primary, secondary } => {
            // Repeated headers arrive as several values; each may hold several entries.
            let signature = request.header_values(SIGNATURE_HEADER).join(",");
            if signature.is_empty() {
                return Err(UpstreamError::NotAuthenticated(
                    "no X-ASRS-Signature header",
                ));
            }
            let mut keys = vec![primary];
            keys.extend(secondary.as_ref());
            if !signature_matches(&signature, connection_id, &keys) {
                return Err(UpstreamError::NotAuthenticated(
                    "X-ASRS-Signature matches no access key for this connection id",
                ));
            }
        }
        ServiceAuth::ManagedIdentity(_) => {
            verifier
                .ok_or(UpstreamError::NotAuthenticated(
                    "no verifier for the service's token",
                ))?
                .verify(request)
                .await
                .map_err(|refused| UpstreamError::NotAuthenticated(refused.0))?;
        }
    }
    let request_hub = single_header(request, "X-ASRS-Hub")
        .ok_or(UpstreamError::Header("no single X-ASRS-Hub header"))?;
    if !request_hub.eq_ignore_ascii_case(hub.as_str()) {
        return Err(UpstreamError::ForeignHub(
            request_hub.chars().take(128).collect(),
        ));
    }
    let category = single_header(request, "X-ASRS-Category")
        .ok_or(UpstreamError::Header("no single X-ASRS-Category header"))?;
    let event = single_header(request, "X-ASRS-Event")
        .filter(|event| !event.is_empty() && event.len() <= MAX_EVENT_CHARS)
        .ok_or(UpstreamError::Header(
            "no single, bounded X-ASRS-Event header",
        ))?;
    let event = match (category, event) {
        ("connections", "connected") => UpstreamEvent::Connected,
        ("connections", "disconnected") => UpstreamEvent::Disconnected,
        ("messages", target) => UpstreamEvent::Message(target.to_owned()),
        (category, event) => {
            return Err(UpstreamError::UnsupportedEvent {
                category: category.chars().take(64).collect(),
                event: event.chars().take(64).collect(),
            });
        }
    };
    Ok(AuthenticatedUpstream {
        connection_id: connection_id.to_owned(),
        event,
    })
}

/// The connection's user id header: `None` without one (an anonymous connection), an error
/// when it is repeated.
pub fn user_id_header(request: &HttpRequestData) -> Result<Option<&str>, UpstreamError> {
    match request.header_values(USER_ID_HEADER).as_slice() {
        [] => Ok(None),
        [""] => Ok(None),
        [value] => Ok(Some(value)),
        _ => Err(UpstreamError::Header("repeated X-ASRS-User-Id header")),
    }
}

/// Every `X-ASRS-User-Claims` header of the request, for
/// `identity::service_connection::ConnectionClaims::parse` (which trusts exactly one).
pub fn user_claims_headers(request: &HttpRequestData) -> Vec<&str> {
    request.header_values("X-ASRS-User-Claims")
}

/// A client's hub-method call (hub protocol type 1).
#[derive(Debug, Clone, PartialEq)]
pub struct HubInvocation {
    /// Present when the client waits for a Completion (`invoke`), absent for `send`.
    pub invocation_id: Option<String>,
    /// The hub method.
    pub target: String,
    /// The client's arguments.
    pub arguments: Vec<Value>,
}

/// The invocation message as the client sent it. Unknown fields (`headers`, future ones) are
/// tolerated: they are the hub protocol's, not ours.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationMessage {
    #[serde(rename = "type")]
    kind: u64,
    #[serde(default)]
    invocation_id: Option<String>,
    target: String,
    #[serde(default)]
    arguments: Vec<Value>,
    #[serde(default)]
    stream_ids: Option<Vec<Value>>,
}

impl HubInvocation {
    /// Parses a `messages` body: JSON protocol only (`application/json`, the message without
    /// its `0x1E`), one Invocation whose target is `event`.
    pub fn parse(request: &HttpRequestData, event: &str) -> Result<Self, UpstreamError> {
        match request.media_type().as_deref() {
            Some("application/json") => {}
            Some(other) => {
                return Err(UpstreamError::MediaType(other.chars().take(64).collect()));
            }
            None => return Err(UpstreamError::MediaType(String::new())),
        }
        let fault = UpstreamError::Message;
        let body = request
            .body
            .as_deref()
            .ok_or(fault(MessageFault::Missing))?;
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(fault(MessageFault::TooLarge));
        }
        // Tolerate a trailing record separator, in case a service version keeps it.
        let body = body.strip_suffix(&[0x1e]).unwrap_or(body);
        let message: InvocationMessage = serde_json::from_slice(body)
            .map_err(|error| fault(MessageFault::Json(JsonFault::of(&error))))?;
        if message.kind != 1 {
            return Err(fault(MessageFault::Type(message.kind)));
        }
        if message
            .invocation_id
            .as_ref()
            .is_some_and(|id| id.is_empty() || id.chars().count() > MAX_INVOCATION_ID_CHARS)
        {
            return Err(fault(MessageFault::InvocationId));
        }
        if message.target != event {
            return Err(fault(MessageFault::TargetMismatch));
        }
        if message.stream_ids.is_some_and(|ids| !ids.is_empty()) {
            return Err(fault(MessageFault::Streams));
        }
        Ok(Self {
            invocation_id: message.invocation_id,
            target: message.target,
            arguments: message.arguments,
        })
    }
}

/// A hub-protocol Completion (type 3), fields in the protocol's order.
#[derive(Serialize)]
struct Completion<'a> {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(rename = "invocationId")]
    invocation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// `{"type":3,"invocationId":…,"result":…}` (JSON protocol, without the record separator).
pub fn completion_result(invocation_id: &str, result: &Value) -> String {
    completion(invocation_id, Some(result), None)
}

/// `{"type":3,"invocationId":…,"error":…}` (JSON protocol, without the record separator).
pub fn completion_error(invocation_id: &str, error: &str) -> String {
    completion(invocation_id, None, Some(error))
}

fn completion(invocation_id: &str, result: Option<&Value>, error: Option<&str>) -> String {
    let completion = Completion {
        kind: 3,
        invocation_id,
        result,
        error,
    };
    // Strings and `Value`s always serialise.
    serde_json::to_string(&completion).unwrap_or_default()
}

/// The one value of a header, trimmed; absent or repeated gives `None`.
fn single_header<'a>(request: &'a HttpRequestData, name: &str) -> Option<&'a str> {
    match request.header_values(name).as_slice() {
        [value] => Some(value.trim()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn completions_keep_the_protocol_field_order() {
        assert_eq!(
            completion_result("7", &json!({"ok": true})),
            r#"{"type":3,"invocationId":"7","result":{"ok":true}}"#
        );
        assert_eq!(
            completion_error("7", "forbidden: join"),
            r#"{"type":3,"invocationId":"7","error":"forbidden: join"}"#
        );
    }

    fn message(body: &str, content_type: &str) -> HttpRequestData {
        HttpRequestData::from_value(&json!({
            "Method": "POST",
            "Headers": {"Content-Type": [content_type]},
            "Body": body,
        }))
        .expect("request")
    }

    #[test]
    fn invocations_are_parsed_and_checked_against_the_event() {
        let request = message(
            r#"{"type":1,"invocationId":"0","target":"joinGroup","arguments":["room-1"]}"#,
            "application/json",
        );
        let invocation = HubInvocation::parse(&request, "joinGroup").expect("valid");
        assert_eq!(invocation.invocation_id.as_deref(), Some("0"));
        assert_eq!(invocation.arguments, vec![json!("room-1")]);
        assert!(HubInvocation::parse(&request, "leaveGroup").is_err());
    }

    #[test]
    fn other_messages_are_refused() {
        let cases = [
            (
                r#"{"type":4,"invocationId":"0","target":"x"}"#,
                "application/json",
            ),
            (
                r#"{"type":1,"invocationId":"","target":"x"}"#,
                "application/json",
            ),
            (
                r#"{"type":1,"target":"x","streamIds":["1"]}"#,
                "application/json",
            ),
            (r#"{"type":1,"target":"x"}"#, "application/x-msgpack"),
            (r#"{"type":1,"target":"x""#, "application/json"),
        ];
        for (body, content_type) in cases {
            assert!(
                HubInvocation::parse(&message(body, content_type), "x").is_err(),
                "{body} {content_type}"
            );
        }
    }
}
