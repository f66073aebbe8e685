//! Every refusal the emulator sends over HTTP, mapped to a status, headers and a small body in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::TokenError;
use crate::names::NameError;

/// A refused HTTP request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`
    /// (docs/protocol/signalr-service.md §2.3).
    #[error("unauthorized: {0}")]
    Unauthorized(TokenError),
    /// 403: the token's user is not the one that negotiated the connection.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 403 `ConnectionUserMismatch`: a refresh's claims name another user than the connection's.
    #[error("the claims name another user than the connection's")]
    ConnectionUserMismatch,
    /// 400 with the reason.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404, with `x-ms-error-code` when the service sets one (docs/protocol/signalr-service.md §4.3).
    #[error("not found: {message}")]
    NotFound {
        error_code: Option<&'static str>,
        message: &'static str,
    },
    /// 405 for a known path with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: a REST body over 1 MB (docs/protocol/signalr-service.md §4.2).
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: the emulator reads JSON bodies only.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 429: the connection quota is used up (docs/protocol/signalr-service.md §5.8).
    #[error("too many connections")]
    TooManyConnections,
}

impl From<NameError> for ApiError {
    fn from(error: NameError) -> Self {
        Self::BadRequest(error.to_string())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::ConnectionUserMismatch => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Unauthorized(reason) => reason.to_string(),
            Self::Forbidden(message) => (*message).to_owned(),
            Self::ConnectionUserMismatch => {
                "The claims name another user than the connection's.".to_owned()
            }
            Self::BadRequest(message) => message.clone(),
            Self::NotFound { message, .. } => (*message).to_owned(),
            Self::MethodNotAllowed => "The method is not allowed on this path.".to_owned(),
            Self::PayloadTooLarge => "The request body is larger than 1 MB.".to_owned(),
            Self::UnsupportedMediaType => "Only JSON bodies are supported.".to_owned(),
            Self::TooManyConnections => "The connection quota is used up.".to_owned(),
        };
        let code = match &self {
            Self::NotFound {
                error_code: Some(code),
                ..
            } => Some(*code),
            Self::ConnectionUserMismatch => Some("ConnectionUserMismatch"),
            _ => None,
        };
        let body = serde_json::json!({"code": code.unwrap_or(status.canonical_reason().unwrap_or("Error")), "message": message});
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(code) = code {
            response
                .headers_mut()
                .insert("x-ms-error-code", HeaderValue::from_static(code));
        }
        if let Self::Unauthorized(reason) = self {
            let challenge = if reason.is_invalid_token() {
                format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"")
            } else {
                "Bearer".to_owned()
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
