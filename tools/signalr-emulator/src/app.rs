//! The HTTP application: shared state, the router, CORS, and request helpers used by both sides.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{TokenError, TokenValidator};
use crate::config::Config;
use crate::entra::EntraVerifier;
use crate::error::ApiError;
use crate::hub::Registry;
use crate::keys::TemporaryKeys;
use crate::lifetime::LiveConnections;
use crate::names::{HubName, UserId};
use crate::upstream::Upstream;

/// State shared by every request and connection.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) registry: Arc<Registry>,
    pub(crate) validator: TokenValidator,
    /// Handshaken connections with their claims and deadlines, by connection token (refresh, coae).
    pub(crate) live: Arc<LiveConnections>,
    /// Where connection events and client invocations are sent, when configured.
    pub(crate) upstream: Option<Arc<Upstream>>,
    /// Entra token checks, when an issuer is configured.
    pub(crate) entra: Option<EntraVerifier>,
    /// Temporary access keys issued by `/api/v1/auth/accessKey`.
    pub(crate) temporary_keys: Arc<TemporaryKeys>,
    /// Negotiated connections waiting for their WebSocket, by the `id` the client will send.
    pub(crate) pending: Mutex<HashMap<String, PendingConnection>>,
    /// Cancelled when the emulator stops; sockets send a close message and end.
    pub(crate) shutdown: CancellationToken,
    /// Tracks socket tasks so that stopping waits for their close messages.
    pub(crate) tasks: TaskTracker,
}

/// A negotiate result not yet used by a WebSocket connect.
pub(crate) struct PendingConnection {
    pub(crate) connection_id: Arc<str>,
    pub(crate) hub: HubName,
    pub(crate) user: Option<UserId>,
    pub(crate) negotiated_at: Instant,
}

impl AppState {
    /// Fails only when the upstream's HTTP client cannot be built.
    pub(crate) fn new(config: Config) -> std::io::Result<Self> {
        let temporary_keys = Arc::new(TemporaryKeys::new(config.temporary_key_lifetime));
        Ok(Self {
            upstream: Upstream::from_config(&config)?,
            registry: Arc::new(Registry::new(config.max_connections)),
            validator: TokenValidator::new(&config, Arc::clone(&temporary_keys)),
            live: Arc::new(LiveConnections::default()),
            entra: config
                .entra
                .clone()
                .map(|entra| EntraVerifier::new(entra, config.timings.token_clock_skew)),
            temporary_keys,
            pending: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config,
        })
    }

    /// Drops negotiations older than the connection-token lifetime.
    pub(crate) fn expire_pending(&self, now: Instant) {
        let lifetime = self.config.timings.connection_token_lifetime;
        self.pending
            .lock()
            .retain(|_, pending| now.duration_since(pending.negotiated_at) <= lifetime);
    }
}

/// Builds the router: the client endpoints, and everything under `/api` through the REST dispatcher.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/client/negotiate", post(crate::client::negotiate))
        .route("/client", get(crate::client::connect))
        .route("/client/", get(crate::client::connect))
        .route("/api/v1/auth/accessKey", get(crate::keys::access_key))
        .route("/api/auth/accessKey", get(crate::keys::access_key))
        .route(
            "/emulator/temporary-keys/expire",
            post(crate::keys::expire_all),
        )
        .fallback(crate::rest::handle)
        .layer(axum::middleware::from_fn(cors))
        .with_state(state)
}

/// Lets browser apps on any origin call the emulator with credentials, as Microsoft's emulator does
/// (docs/protocol/signalr-service.md §7): the demo page is served by the function app on another port.
async fn cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if is_preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE, HEAD, OPTIONS"),
        );
        if let Some(requested) = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        response
    } else {
        let mut response = next.run(request).await;
        response.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-ms-error-code, WWW-Authenticate"),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// Query parameters in order, with repeats kept (`excluded` repeats; a repeated `hub` is an error).
pub(crate) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The last value of `name`.
    pub(crate) fn last(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, refusing a repeat.
    pub(crate) fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(key, _)| key == name);
        let first = values.next().map(|(_, value)| value.as_str());
        if values.next().is_some() {
            return Err(ApiError::BadRequest(format!(
                "The query parameter '{name}' must not be repeated."
            )));
        }
        Ok(first)
    }
}

/// The token from `Authorization: Bearer …`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `Host` header, used as the request's host for audience checks.
pub(crate) fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST)?.to_str().ok()
}

/// Maps a token failure to the 401 reply.
pub(crate) fn unauthorized(error: TokenError) -> ApiError {
    tracing::debug!(reason = %error, "refused a token");
    ApiError::Unauthorized(error)
}

/// A random URL-safe id of `bytes` random bytes: connection ids (16) and connection tokens (32).
pub(crate) fn random_id(bytes: usize) -> String {
    let mut buffer = vec![0_u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system's random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}
