//! The handler's error type and the one place where errors become caller responses.
//!
//! Every failure is logged with its exact reason (to `Logs` and stderr) and answered with a
//! stable error code and nothing internal. The host itself always gets 200 + JSON; the status
//! below is the caller's, carried in the `http` output (docs/protocol/functions-host.md §0.2).

use serde_json::json;

use crate::identity::IdentityError;
use crate::identity::client_cert::CertificateError;
use crate::invocation::CallerResponse;
use crate::names::NameError;
use crate::telemetry::escape_controls;
use crate::webpubsub::WebPubSubError;

/// Everything that can stop an invocation.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The host's payload could not be read (400).
    #[error("malformed invocation: {0}")]
    BadInvocation(String),
    /// The caller's input is invalid (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The caller is not authenticated (401), or keys to check it are unavailable (503).
    #[error("authentication failed: {0}")]
    Unauthenticated(#[from] IdentityError),
    /// The deployment is misconfigured (500). The message is for the operator's log only.
    #[error("configuration error: {0}")]
    Configuration(String),
    /// The host invoked a function this handler does not serve (404).
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    /// The invocation body exceeds the cap (413).
    #[error("the invocation body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// The policy does not allow the operation (403). The reason is for the log only.
    #[error("`{operation}` denied: {reason}")]
    Forbidden {
        /// The operation's policy name.
        operation: &'static str,
        /// Why, for the log.
        reason: String,
    },
    /// The SignalR Service could not answer a check the decision needs (503).
    #[error("SignalR Service unavailable: {0}")]
    ServiceUnavailable(String),
    /// A Web PubSub handshake or event was refused (400, 401 or 405).
    #[error("Web PubSub request refused: {0}")]
    WebPubSub(#[from] WebPubSubError),
    /// A Web PubSub client presented a certificate that is not allowed (403).
    #[error("client certificate refused: {0}")]
    CertificateRefused(CertificateError),
    /// The caller's body is not declared `application/json` (415).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A cross-site browser request carrying an ambient credential (403).
    #[error("cross-site request refused: {0}")]
    CrossSite(String),
    /// No such resource (404), e.g. a static file.
    #[error("not found: {0}")]
    NotFound(String),
}

/// A name from the caller's request (a group or a target user id) breaks the name rules: 400.
/// Ids from identity sources never take this path; they become `IdentityError`s (401).
impl From<NameError> for HandlerError {
    fn from(error: NameError) -> Self {
        Self::BadRequest(error.to_string())
    }
}

impl HandlerError {
    /// The caller's response for this error.
    pub fn caller_response(&self) -> CallerResponse {
        match self {
            Self::BadInvocation(_) => {
                error_body(400, "bad_request", "The request could not be read.")
            }
            // The message is ours, but may quote caller text: escaped, like every log line.
            Self::BadRequest(message) => error_body(400, "bad_request", &escape_controls(message)),
            Self::Unauthenticated(IdentityError::KeysUnavailable(_)) => error_body(
                503,
                "auth_unavailable",
                "The identity provider's keys could not be loaded; try again later.",
            )
            .with_header("Retry-After", "5"),
            Self::Unauthenticated(error) => {
                let (code, description) = match error {
                    IdentityError::MissingCredential => {
                        ("missing_token", "No credential was presented.")
                    }
                    IdentityError::Rejected(jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                        ("invalid_token", "The access token expired.")
                    }
                    _ => ("invalid_token", "The access token is invalid."),
                };
                CallerResponse::json(
                    401,
                    &json!({"error": code, "error_description": description}),
                )
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
                .with_header("Cache-Control", "no-store")
            }
            Self::Configuration(_) => {
                error_body(500, "configuration_error", "The service is misconfigured.")
            }
            Self::UnknownFunction(_) => error_body(404, "unknown_function", "No such function."),
            Self::PayloadTooLarge(_) => {
                error_body(413, "payload_too_large", "The request is too large.")
            }
            Self::Forbidden { operation, .. } => CallerResponse::json(
                403,
                &json!({
                    "error": "forbidden",
                    "operation": operation,
                    "message": "The policy does not allow this operation.",
                }),
            )
            .with_header("Cache-Control", "no-store"),
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
            Self::CertificateRefused(_) => error_body(
                403,
                "certificate_refused",
                "The client certificate is not allowed.",
            ),
        }
    }

    /// True for errors caused by the deployment rather than the caller, which are logged as
    /// errors; the rest are logged as warnings (a bad token is not our fault).
    pub fn is_server_fault(&self) -> bool {
        matches!(self, Self::Configuration(_) | Self::ServiceUnavailable(_))
            || matches!(
                self,
                Self::Unauthenticated(IdentityError::KeysUnavailable(_))
            )
    }
}

/// A serde_json error as its category, line and column only: serde's message can quote the
/// input (a field name, a token), and caller text must not reach a log line or a response
/// unescaped.
pub fn json_error(error: &serde_json::Error) -> String {
    let category = match error.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "end-of-input",
    };
    format!(
        "{category} error at line {} column {}",
        error.line(),
        error.column()
    )
}

fn error_body(status: u16, code: &str, message: &str) -> CallerResponse {
    CallerResponse::json(status, &json!({"error": code, "message": message}))
        .with_header("Cache-Control", "no-store")
}
