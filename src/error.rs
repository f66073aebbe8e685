//! The handler's error type and the one place where errors become caller responses.
//!
//! Every failure is logged with its exact reason (to `Logs` and stderr) and answered with a
//! stable error code and nothing internal. The host itself always gets 200 + JSON; the status
//! below is the caller's, carried in the `http` output (docs/protocol/functions-host.md §0.2).
//!
//! Each variant carries a typed kind, not a sentence: the kinds' `Display` texts are ours, and
//! no library's error message (serde, jsonwebtoken, reqwest) reaches a caller's body. Only
//! [`BadRequest`] texts are shown to the caller, escaped like every log line.

use serde_json::json;

use crate::identity::IdentityError;
use crate::identity::client_cert::CertificateError;
use crate::invocation::{CallerResponse, InvocationError};
use crate::names::NameError;
use crate::policy::Denial;
use crate::signalr::access_token::ServiceTokenError;
use crate::signalr::rest::RestError;
use crate::signalr::service_auth::ServiceAuthError;
use crate::signalr::upstream::UpstreamError;
pub use crate::telemetry::JsonFault;
use crate::telemetry::escape_controls;
use crate::webpubsub::WebPubSubError;

/// Everything that can stop an invocation.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The host's payload could not be read (400).
    #[error("malformed invocation: {0}")]
    BadInvocation(#[from] InvocationError),
    /// The caller's input is invalid (400).
    #[error("bad request: {0}")]
    BadRequest(#[from] BadRequest),
    /// The caller is not authenticated (401), or keys to check it are unavailable (503).
    #[error("authentication failed: {0}")]
    Unauthenticated(#[from] IdentityError),
    /// The deployment is misconfigured (500). The reason is for the operator's log only.
    #[error("configuration error: {0}")]
    Configuration(#[from] ConfigurationError),
    /// The host invoked a function this handler does not serve (404).
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    /// The invocation body exceeds the cap (413).
    #[error("the invocation body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// The policy does not allow the operation (403). The reason is for the log only: it names
    /// the caller, the operation and its group or user, so an operator can find the rule to add.
    #[error("`{operation}` by {caller:?}{target} denied: {reason}")]
    Forbidden {
        /// The operation's policy name.
        operation: &'static str,
        /// The verified caller's id.
        caller: String,
        /// ` on group "g"`, ` to user "u"`, both, or empty (names quoted with `{:?}`).
        target: String,
        /// Why, for the log.
        reason: Denial,
    },
    /// The SignalR Service could not answer a check the decision needs (503).
    #[error("SignalR Service unavailable: {0}")]
    ServiceUnavailable(#[from] RestError),
    /// The handler cannot authenticate to the SignalR Service: no usable temporary key, or no
    /// managed-identity token (503 `service_auth_unavailable`).
    #[error("SignalR Service authentication unavailable: {0}")]
    ServiceAuthUnavailable(#[from] ServiceAuthError),
    /// A Web PubSub handshake or event was refused (400, 401 or 405).
    #[error("Web PubSub request refused: {0}")]
    WebPubSub(#[from] WebPubSubError),
    /// A Web PubSub client presented a certificate that is not allowed (403).
    #[error("client certificate refused: {0}")]
    CertificateRefused(CertificateError),
    /// The caller's body is not declared `application/json` (415).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(MediaTypeRefusal),
    /// A cross-site browser request carrying an ambient credential (403).
    #[error("cross-site request refused: {0}")]
    CrossSite(CrossSiteRefusal),
    /// No such resource (404), e.g. a static file.
    #[error("not found: {0}")]
    NotFound(NotFound),
    /// A SignalR upstream request was refused (400, 401, 403, 405 or 415).
    #[error("upstream request refused: {0}")]
    Upstream(#[from] UpstreamError),
    /// A `refresh` the client contract refuses with one of its codes (ASR#2282).
    #[error("refresh refused: {0}")]
    Refresh(#[from] RefreshRefusal),
}

/// Why `refresh` refused, in the terms of the client contract (ASP.NET Core 11 /
/// ASR#2282): each kind has its status and `{"error": code}` body, which clients act on.
/// The texts are for the log: they never hold the connection token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshRefusal {
    /// Not POST (405, no body).
    #[error("method {0:?} is not POST")]
    Method(String),
    /// `SIGNALR_CLOSE_ON_AUTH_EXPIRY=false`: there is no deadline to move (404
    /// `refresh_disabled`).
    #[error("SIGNALR_CLOSE_ON_AUTH_EXPIRY=false turns refresh off")]
    Disabled,
    /// No usable `id` (400 `missing_connection_token`): absent, repeated, or not a token's
    /// shape.
    #[error("the `id` query is missing, repeated or not a connection token")]
    MissingConnectionToken,
    /// The fresh credential does not verify, or has already ended (401 `invalid_token`).
    #[error("the credential is not valid: {0}")]
    InvalidToken(IdentityError),
    /// The credential verifies but its login ends now or earlier (inside the JWT leeway).
    #[error("the credential's login has already ended")]
    CredentialEnded,
    /// The connection belongs to another user (403 `permission_change_rejected`); nothing
    /// changed.
    #[error("the connection belongs to another user")]
    PermissionChangeRejected,
    /// No such connection (404 `connection_not_found`): unknown, gone, negotiate v0, another hub.
    #[error("the service knows no such connection")]
    ConnectionNotFound,
    /// The service refused the request as malformed (400 `bad_request`).
    #[error("the service refused the refresh as malformed")]
    ServiceRejected,
}

/// Why the caller's input is invalid. The text is shown to the caller (escaped), so it is ours
/// alone: a JSON error by position, a name rule, or a field rule.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// No body where a JSON body is required.
    #[error("a JSON body is required")]
    BodyMissing,
    /// The body exceeds the cap for caller bodies.
    #[error("the body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The body is not valid JSON for the function, reported by position only.
    #[error("invalid body: {0}")]
    InvalidJson(JsonFault),
    /// A field breaks its rule.
    #[error("`{field}` {rule}")]
    Field {
        /// The body field.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// The body names the wrong recipient fields for the function.
    #[error("the body needs `{needed}` (and no `{refused}`)")]
    Recipient {
        /// The field the function needs.
        needed: &'static str,
        /// The field it refuses.
        refused: &'static str,
    },
    /// A name from the request (a group or a target user id) breaks the name rules. Ids from
    /// identity sources never take this path; they become `IdentityError`s (401).
    #[error(transparent)]
    Name(#[from] NameError),
}

/// A name from the caller's request breaks the name rules: 400.
impl From<NameError> for HandlerError {
    fn from(error: NameError) -> Self {
        Self::BadRequest(BadRequest::Name(error))
    }
}

/// How the deployment is misconfigured, found while serving an invocation (500).
#[derive(Debug, thiserror::Error)]
pub enum ConfigurationError {
    /// `function.json` declares a connection-info input the host did not send.
    #[error("function.json declares input `{0}` but the host sent no value for it")]
    InputMissing(String),
    /// The connection-info input is not JSON.
    #[error("input `{0}` is not connection-info JSON")]
    InputNotJson(String),
    /// The connection-info input lacks `url` or `accessToken`.
    #[error("input `{0}` lacks `url` or `accessToken`")]
    InputIncomplete(String),
    /// The binding's token does not verify, or a token cannot be issued.
    #[error("{error}; the handler reads `{setting}`")]
    BindingToken {
        /// Why.
        error: ServiceTokenError,
        /// The connection-string setting the handler reads.
        setting: String,
    },
    /// The binding's token is for another audience than the handler's service and hub.
    #[error(
        "the binding's token is for audience {actual:?}, not {expected:?} (hub `{hub}` of `{setting}`)"
    )]
    BindingAudience {
        /// The token's audience.
        actual: Option<String>,
        /// The audience the handler expects.
        expected: String,
        /// The binding's hub.
        hub: String,
        /// The connection-string setting the handler reads.
        setting: String,
    },
    /// A token could not be issued.
    #[error("{0}")]
    Token(#[from] ServiceTokenError),
    /// Minting needs `SIGNALR_HUB_NAME`.
    #[error("SIGNALR_HUB_NAME is not set")]
    HubNameNotSet,
    /// A function that sends needs a `signalR` output binding.
    #[error("`{0}/function.json` has no signalR output binding")]
    NoSignalROutput(String),
    /// The `signalR` output's hub name breaks the name rules.
    #[error("the signalR output's hubName: {0}")]
    OutputHubName(NameError),
}

/// Why a caller's body media type is refused (415).
#[derive(Debug, thiserror::Error)]
pub enum MediaTypeRefusal {
    /// Declared as something else (the declared media type, lower-cased).
    #[error("the body is declared {0:?}, not application/json")]
    Declared(String),
    /// No `Content-Type`.
    #[error("the body has no Content-Type; send application/json")]
    Missing,
}

/// Why a request with an ambient credential is taken as cross-site (403).
#[derive(Debug, thiserror::Error)]
pub enum CrossSiteRefusal {
    /// `Sec-Fetch-Site: cross-site`.
    #[error("Sec-Fetch-Site is cross-site")]
    FetchSite,
    /// Two `Origin` headers.
    #[error("more than one Origin header")]
    RepeatedOrigin,
    /// An origin that is neither the request's own nor allowed.
    #[error("Origin {0:?} is neither the request's own nor on AUTH_ALLOWED_ORIGINS")]
    ForeignOrigin(String),
}

/// What was not found (404).
#[derive(Debug, thiserror::Error)]
pub enum NotFound {
    /// A path the static-file function never serves.
    #[error("{0:?} is not a servable path")]
    NotServable(String),
    /// A servable path with no file (or one too large).
    #[error("{0:?}")]
    NoFile(String),
    /// `connect` without Web PubSub configured.
    #[error("the Web PubSub connect handler is off (WEBPUBSUB_CONNECTION_STRING is not set)")]
    ConnectOff,
    /// `index` while the demo page is off (the default, for deployments).
    #[error("the demo page is off (DEMO_PAGE_ENABLED is not true)")]
    DemoPageOff,
    /// `upstream` with no way to authenticate the service configured.
    #[error(
        "the SignalR upstream is off (SIGNALR_UPSTREAM_AUTH is `off`, or keyless without `managedIdentity`)"
    )]
    UpstreamOff,
}

impl HandlerError {
    /// The caller's response for this error.
    pub fn caller_response(&self) -> CallerResponse {
        match self {
            Self::BadInvocation(_) => {
                error_body(400, "bad_request", "The request could not be read.")
            }
            // The message is ours, but may quote caller text: escaped, like every log line.
            Self::BadRequest(reason) => error_body(
                400,
                "bad_request",
                &escape_controls(&format!("The request is invalid: {reason}.")),
            ),
            Self::Unauthenticated(IdentityError::KeysUnavailable(_)) => error_body(
                503,
                "auth_unavailable",
                "The identity provider's keys could not be loaded; try again later.",
            )
            .with_header("Retry-After", "5"),
            Self::Unauthenticated(error) => {
                let (code, message) = match error {
                    IdentityError::MissingCredential => {
                        ("missing_token", "No credential was presented.")
                    }
                    IdentityError::Expired { .. } => ("invalid_token", "The access token expired."),
                    _ => ("invalid_token", "The access token is invalid."),
                };
                error_body(401, code, message)
                    .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
            }
            Self::Configuration(_) => {
                error_body(500, "configuration_error", "The service is misconfigured.")
            }
            Self::UnknownFunction(_) => error_body(404, "unknown_function", "No such function."),
            Self::PayloadTooLarge(_) => {
                error_body(413, "payload_too_large", "The request is too large.")
            }
            // The operation is a fixed policy name, so naming it in the message leaks nothing.
            Self::Forbidden { operation, .. } => error_body(
                403,
                "forbidden",
                &format!("The policy does not allow `{operation}`."),
            ),
            Self::ServiceAuthUnavailable(_)
            | Self::ServiceUnavailable(RestError::Auth(_) | RestError::Refused(_)) => error_body(
                503,
                "service_auth_unavailable",
                "The SignalR Service cannot be authenticated to right now; try again later.",
            )
            .with_header("Retry-After", "5"),
            Self::ServiceUnavailable(_) => error_body(
                503,
                "signalr_unavailable",
                "The SignalR Service could not be reached; try again later.",
            )
            .with_header("Retry-After", "5"),
            Self::NotFound(_) => error_body(404, "not_found", "Not found."),
            Self::UnsupportedMediaType(_) => error_body(
                415,
                "unsupported_media_type",
                "Send the body as application/json.",
            ),
            Self::CrossSite(_) => error_body(
                403,
                "cross_site_request",
                "Cross-site requests with ambient credentials are not allowed.",
            ),
            Self::WebPubSub(error) => match error {
                WebPubSubError::NotAuthenticated(_) => error_body(
                    401,
                    "invalid_signature",
                    "The event could not be authenticated.",
                ),
                WebPubSubError::Method(_) => {
                    error_body(405, "method_not_allowed", "Use OPTIONS or POST.")
                }
                WebPubSubError::MissingOrigin | WebPubSubError::OriginNotAllowed(_) => error_body(
                    400,
                    "abuse_protection_failed",
                    "Abuse Protection validation failed.",
                ),
                WebPubSubError::UnsupportedEvent(_) | WebPubSubError::MalformedBody(_) => {
                    error_body(400, "bad_request", "The event could not be handled.")
                }
            },
            Self::Refresh(refusal) => refresh_response(refusal),
            Self::CertificateRefused(_) => error_body(
                403,
                "certificate_refused",
                "The client certificate is not allowed.",
            ),
            Self::Upstream(error) => match error {
                UpstreamError::NotAuthenticated(_) => error_body(
                    401,
                    "invalid_signature",
                    "The upstream request could not be authenticated.",
                ),
                UpstreamError::ForeignHub(_) => {
                    error_body(403, "foreign_hub", "This app does not serve that hub.")
                }
                UpstreamError::Method(_) => error_body(405, "method_not_allowed", "Use POST."),
                UpstreamError::MediaType(_) => error_body(
                    415,
                    "unsupported_media_type",
                    "Only the JSON hub protocol is served.",
                ),
                UpstreamError::Header(_)
                | UpstreamError::UnsupportedEvent { .. }
                | UpstreamError::Message(_) => error_body(
                    400,
                    "bad_request",
                    "The upstream request could not be handled.",
                ),
            },
        }
    }

    /// The `error` of the hub-protocol Completion a client gets when its invocation failed on
    /// the upstream path: `forbidden: <operation>` for a policy denial, the caller's own
    /// [`BadRequest`] text, or a fixed phrase; never an internal reason.
    pub fn completion_error(&self) -> String {
        match self {
            Self::Forbidden { operation, .. } => format!("forbidden: {operation}"),
            Self::BadRequest(reason) => format!("bad request: {reason}"),
            Self::ServiceUnavailable(_) => {
                "unavailable: the SignalR Service could not be reached; try again later".to_owned()
            }
            _ => "failed: the invocation could not be handled".to_owned(),
        }
    }

    /// True for errors caused by the deployment rather than the caller, which are logged as
    /// errors; the rest are logged as warnings (a bad token is not our fault).
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Self::Configuration(_) | Self::ServiceUnavailable(_) | Self::ServiceAuthUnavailable(_)
        ) || matches!(
            self,
            Self::Unauthenticated(IdentityError::KeysUnavailable(_))
        )
    }
}

/// The client contract's answers: `{"error": code}` and nothing else, as ASP.NET Core writes
/// them (clients match on the code).
fn refresh_response(refusal: &RefreshRefusal) -> CallerResponse {
    // The client contract's codes, in the one body shape every status has (`message` added;
    // clients act on `error`). A 405 has no body, as the contract says.
    let (status, code, message) = match refusal {
        RefreshRefusal::Method(_) => {
            return CallerResponse::empty(405)
                .with_header("Allow", "POST")
                .with_header("Cache-Control", "no-store");
        }
        RefreshRefusal::Disabled => (
            404,
            "refresh_disabled",
            "Refreshing a connection's login is turned off.",
        ),
        RefreshRefusal::MissingConnectionToken => (
            400,
            "missing_connection_token",
            "The `id` query parameter must name one connection.",
        ),
        RefreshRefusal::InvalidToken(_) | RefreshRefusal::CredentialEnded => {
            return error_body(
                401,
                "invalid_token",
                "The access token is invalid or expired.",
            )
            .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        }
        RefreshRefusal::PermissionChangeRejected => (
            403,
            "permission_change_rejected",
            "The connection belongs to another user.",
        ),
        RefreshRefusal::ConnectionNotFound => (
            404,
            "connection_not_found",
            "The SignalR Service knows no such connection.",
        ),
        RefreshRefusal::ServiceRejected => (
            400,
            "bad_request",
            "The SignalR Service refused the refresh as malformed.",
        ),
    };
    error_body(status, code, message)
}

fn error_body(status: u16, code: &str, message: &str) -> CallerResponse {
    CallerResponse::json(status, &json!({"error": code, "message": message}))
        .with_header("Cache-Control", "no-store")
}
