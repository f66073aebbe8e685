//! The HTTP server the host talks to: `GET /` for readiness and health, `POST /{function}` for
//! invocations. Every invocation is answered 200 + JSON, whatever happens inside, because any
//! other answer makes the host fail the invocation without reading `Outputs`
//! (docs/protocol/functions-host.md §0.2).

use std::net::TcpListener;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::Server, web};
use futures_util::StreamExt;

use crate::config::Settings;
use crate::error::HandlerError;
use crate::function::Function;
use crate::functions::{self, AppState};
use crate::identity::Authenticator;
use crate::identity::service_identity::ServiceTokenVerifier;
use crate::invocation::{InvocationError, InvocationResponse};
use crate::signalr::output::SenderStamp;
use crate::signalr::rest::ServiceClient;
use crate::signalr::service_auth::ServiceAuth;
use crate::signalr::upstream::ServiceAuth as UpstreamAuth;
use crate::webpubsub::EventAuth;

/// Largest invocation payload read from the host. The caller's body travels inside it; our
/// functions take small JSON bodies, so a few MiB leaves ample room for the envelope.
pub const MAX_INVOCATION_BYTES: usize = 4 * 1024 * 1024;
/// An oversized body is read and discarded up to this size, so the host (which writes the whole
/// body before reading the answer) gets the 413 envelope instead of a broken pipe.
const MAX_DRAINED_BYTES: usize = 64 * 1024 * 1024;

/// A built, bound server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `127.0.0.1:{settings.port}` (0 picks a free port) and prepares the server.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let bind_port = settings.port;
        let state = web::Data::new(app_state(settings)?);
        let listener = TcpListener::bind(("127.0.0.1", bind_port))?;
        let port = listener.local_addr()?.port();
        state.service_auth.start_refresh();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/", web::get().to(health))
                .route("/", web::head().to(health))
                .route("/{function}", web::post().to(invoke))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self { port, server })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then drains for up to 10 s.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The functions' shared state from validated settings: the verifiers, the REST client and the
/// signing key built once, the start-up notes logged. Shared by [`Application::build`] and the
/// in-process benchmark (`bench_api`), so both serve invocations from the same state.
pub(crate) fn app_state(settings: Settings) -> anyhow::Result<AppState> {
    anyhow::ensure!(
        crate::identity::signatures::install(),
        "jsonwebtoken verified a token before start-up chose its signature backend; build the state before any verification"
    );
    let authenticator = Authenticator::new(&settings.auth, &settings.signalr.service_audience())?;
    let service_auth = ServiceAuth::new(&settings.signalr, settings.managed_identity.as_ref())?;
    let service = ServiceClient::new(&settings.signalr, service_auth.clone())?;
    let web_pubsub_events = match settings.web_pubsub.as_ref().map(|wps| &wps.event_auth) {
        Some(EventAuth::ManagedIdentity(identity)) => Some(ServiceTokenVerifier::new(
            identity,
            &settings.signalr.service_audience(),
        )?),
        _ => None,
    };
    let upstream_service = match settings.upstream.as_ref().map(|upstream| &upstream.auth) {
        Some(UpstreamAuth::ManagedIdentity(identity)) => Some(ServiceTokenVerifier::new(
            identity,
            &settings.signalr.service_audience(),
        )?),
        _ => None,
    };
    if service_auth.is_keyless() {
        tracing::info!(
            setting = %settings.signalr_setting,
            "SignalR Service: managed identity, no AccessKey. negotiate mints client tokens itself with temporary keys \
             (negotiate/function.json without a signalRConnectionInfo input, hub from SIGNALR_HUB_NAME); \
             the identity needs the `SignalR App Server` role for tokens and `SignalR REST API Reader` for membership \
             checks (or `SignalR Service Owner` for both)"
        );
    }
    tracing::info!(policy = %settings.policy.origin, "authorization policy loaded");
    if settings.function(Function::Connect).is_some() && settings.web_pubsub.is_none() {
        tracing::info!(
            "the Web PubSub connect handler is off: WEBPUBSUB_CONNECTION_STRING is not set"
        );
    }
    if settings.function(Function::Upstream).is_some() && settings.upstream.is_none() {
        tracing::info!(
            "the SignalR upstream is off (404): SIGNALR_UPSTREAM_AUTH is `off`, or the connection is keyless and \
                 SIGNALR_UPSTREAM_AUTH is not `managedIdentity`"
        );
    }
    if settings.sender_stamp == SenderStamp::Off {
        tracing::warn!(
            "MESSAGE_SENDER_STAMP=false: messages carry only the caller's arguments, so receivers cannot tell who sent them"
        );
    }
    if settings.function(Function::Index).is_some() && !settings.demo_page {
        tracing::info!(
            "the demo page (index) is off: DEMO_PAGE_ENABLED is not true, so /api/app/ answers 404"
        );
    }
    let Settings {
        port: _,
        functions,
        signalr,
        signalr_setting,
        managed_identity: _,
        mint_hub,
        auth,
        web_pubsub,
        upstream,
        policy,
        sender_stamp,
        auth_expiry,
        app_root,
        demo_page,
    } = settings;
    Ok(AppState {
        functions,
        signalr,
        signalr_setting,
        mint_hub,
        auth,
        web_pubsub,
        upstream,
        web_pubsub_events,
        upstream_service,
        policy,
        sender_stamp,
        auth_expiry,
        app_root,
        demo_page,
        authenticator,
        service,
        service_auth,
    })
}

/// Readiness and health: cheap and unauthenticated, as the host polls it every 25 ms at start.
async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn invoke(
    state: web::Data<AppState>,
    function: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let invocation_id = request
        .headers()
        .get("X-Azure-Functions-InvocationId")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .chars()
        .take(64)
        .collect::<String>();
    let declared_length = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let body = read_capped(payload, declared_length).await;
    let envelope = functions::invoke(&state, &function, body, &invocation_id).await;
    HttpResponse::Ok()
        .content_type("application/json")
        .body(envelope_json(&envelope))
}

/// The envelope as the host reads it.
pub(crate) fn envelope_json(envelope: &InvocationResponse) -> Vec<u8> {
    // Sized for a typical answer (negotiate's is ≈550 bytes) so the buffer is not regrown.
    let mut json = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut json, envelope) {
        Ok(()) => json,
        // Serializing a map of JSON values cannot fail; answer an empty envelope regardless.
        Err(_) => br#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#.to_vec(),
    }
}

/// Reads the invocation body up to [`MAX_INVOCATION_BYTES`].
///
/// A body whose `Content-Length` is over the cap is drained without being kept, and a body that
/// turns out larger than the cap is dropped as soon as it does: keeping up to 4 MiB per oversized
/// invocation until the refusal made the allocator hold on to those blocks, and the soak saw RSS
/// climb without bound under 1 % oversized traffic (RELIABILITY.md). A body within the cap is
/// allocated once, at its declared length.
async fn read_capped(
    mut payload: web::Payload,
    declared_length: Option<usize>,
) -> Result<Vec<u8>, HandlerError> {
    let declared_too_large = declared_length.is_some_and(|length| length > MAX_INVOCATION_BYTES);
    let mut body = match declared_length {
        Some(length) if !declared_too_large => Vec::with_capacity(length),
        _ => Vec::new(),
    };
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| InvocationError::Unreadable(Box::new(error)))?;
        total += chunk.len();
        if total > MAX_DRAINED_BYTES {
            break;
        }
        if total <= MAX_INVOCATION_BYTES && !declared_too_large {
            body.extend_from_slice(&chunk);
        } else if body.capacity() > 0 {
            body = Vec::new();
        }
    }
    if declared_too_large {
        return Err(HandlerError::PayloadTooLarge(MAX_INVOCATION_BYTES));
    }
    if total > MAX_INVOCATION_BYTES {
        return Err(HandlerError::PayloadTooLarge(MAX_INVOCATION_BYTES));
    }
    Ok(body)
}
