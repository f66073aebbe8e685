//! A local Azure SignalR Service emulator (serverless mode) that real `@microsoft/signalr` clients and REST
//! callers can use, checking tokens as strictly as the service does (`docs/protocol/signalr-service.md`).
//!
//! Layout:
//! - `config`: access keys (with the well-known [`INSECURE_DEV_ACCESS_KEY`]), timings, the connection string.
//! - `names`: hub, group and user names parsed at the boundary (docs/protocol/signalr-service.md §4.4).
//! - `auth`: token signature, expiry and audience checks (docs/protocol/signalr-service.md §2.3, §3).
//! - `protocol`: the JSON hub protocol frames (docs/protocol/signalr-service.md §5.4–5.7).
//! - `entra`: Microsoft Entra ID bearer tokens from a configured stand-in issuer, and their roles.
//! - `keys`: temporary access keys (`GET /api/v1/auth/accessKey`) that sign client tokens by `kid`.
//! - `hub`: in-memory connections, users and groups, and the fan-out of sends.
//! - `client`: negotiate, the WebSocket endpoint and each connection's socket task
//!   (docs/protocol/signalr-service.md §5).
//! - `rest`: the REST API, v1 and 2022-06-01 (docs/protocol/signalr-service.md §4).
//! - `upstream`: connection events and client invocations sent to a function app
//!   (docs/protocol/signalr-service.md §6).
//! - `lifetime`, `refresh`: close on authentication expiration and the 2026-07-01 refresh routes
//!   (docs/protocol/signalr-identity-2026.md §1).
//! - `app`, `error`: the router, CORS, and the mapping of refusals to HTTP.
//!
//! Server stack: axum on tokio, with axum's WebSocket support (tungstenite underneath). It runs on any tokio
//! runtime, including the one of a `#[tokio::test]` or an actix system, so other crates' tests can start the
//! emulator in-process with [`Emulator::start`]; its WebSocket messages hold reference-counted bytes, so one
//! serialised frame is shared by every connection it is sent to.

mod app;
mod auth;
mod client;
mod config;
mod entra;
mod error;
mod hub;
mod keys;
mod lifetime;
mod names;
mod protocol;
mod refresh;
mod rest;
mod upstream;
mod upstream_identity;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::auth::TokenError;
pub use crate::config::{
    AccessKey, AccessKeyError, Config, DEFAULT_PORT, INSECURE_DEV_ACCESS_KEY, Timings,
};
pub use crate::entra::{
    EntraConfig, EntraConfigError, ROLE_APP_SERVER, ROLE_REST_API_OWNER, ROLE_REST_API_READER,
    ROLE_SERVICE_OWNER, SIGNALR_RESOURCE,
};
pub use crate::keys::DEFAULT_TEMPORARY_KEY_LIFETIME;
pub use crate::lifetime::AUTH_EXPIRED_CLOSE_REASON;
pub use crate::names::{GroupName, HubName, NameError, UserId};
pub use crate::upstream::{UpstreamTemplate, UpstreamTemplateError};
pub use crate::upstream_identity::{UpstreamIdentity, UpstreamIdentityError};

/// How long stopping waits for open WebSockets to receive their close message.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often expired user-group memberships, unused negotiations and connections whose authentication expired
/// (`asrs.s.aeo`) are swept, as Microsoft's emulator and the service do.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A running emulator started with [`Emulator::start`].
pub struct Emulator {
    port: u16,
    connection_string: String,
    task: JoinHandle<io::Result<()>>,
}

impl Emulator {
    /// Starts serving on `listener` in a background task of the current tokio runtime, until `shutdown`
    /// completes. The listener is already bound, so the emulator is ready when this returns.
    pub fn start(
        listener: TcpListener,
        config: Config,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<Self> {
        let port = listener.local_addr()?.port();
        let connection_string = config.connection_string(port);
        let task = tokio::spawn(run(listener, config, shutdown));
        Ok(Self {
            port,
            connection_string,
            task,
        })
    }

    /// The port the emulator listens on (the real one when it was started on port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection string an app server uses for this emulator (docs/protocol/signalr-service.md §1).
    pub fn connection_string(&self) -> &str {
        &self.connection_string
    }

    /// Waits until the emulator has stopped (after `shutdown` completed and sockets were closed).
    pub async fn wait(self) -> io::Result<()> {
        self.task.await.map_err(io::Error::other)?
    }
}

/// Seconds since the Unix epoch, the clock `asrs.s.aeo` is read against.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Serves the emulator on `listener` until `shutdown` completes, then tells every client the server is
/// shutting down and waits (at most a few seconds) for those messages to go out.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let state = Arc::new(app::AppState::new(config)?);
    let router = app::router(Arc::clone(&state));

    let sweeper_state = Arc::clone(&state);
    let sweeper = tokio::spawn(async move {
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                () = sweeper_state.shutdown.cancelled() => break,
                _ = interval.tick() => {
                    let now = Instant::now();
                    sweeper_state.registry.expire(now);
                    sweeper_state.expire_pending(now);
                    sweeper_state.live.expire(unix_now());
                }
            }
        }
    });

    let shutdown_token = state.shutdown.clone();
    // Small frames must leave at once, not wait for an acknowledgement as Nagle's algorithm would make them.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            shutdown_token.cancel();
        })
        .await;
    state.shutdown.cancel();
    state.tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some WebSockets did not close in time");
    }
    let _ = sweeper.await;
    tracing::debug!("emulator stopped");
    served
}
