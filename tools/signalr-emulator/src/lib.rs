//! A local Azure SignalR Service emulator (serverless mode) that real `@microsoft/signalr` clients and REST
//! callers can use, checking tokens as strictly as the service does (`shared/spec/signalr-service.md`).
//!
//! Layout:
//! - `config`: access keys (with the well-known [`INSECURE_DEV_ACCESS_KEY`]), timings, the connection string.
//! - `names`: hub, group and user names parsed at the boundary (spec §4.4).
//! - `auth`: token signature, expiry and audience checks (spec §2.3, §3).
//! - `protocol`: the JSON hub protocol frames (spec §5.4–5.7).
//! - `hub`: in-memory connections, users and groups, and the fan-out of sends.
//! - `client`: negotiate, the WebSocket endpoint and each connection's socket task (spec §5).
//! - `rest`: the REST API, v1 and 2022-06-01 (spec §4).
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
mod error;
mod hub;
mod names;
mod protocol;
mod rest;

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
pub use crate::names::{GroupName, HubName, NameError, UserId};

/// How long stopping waits for open WebSockets to receive their close message.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often expired user-group memberships and unused negotiations are swept, as Microsoft's emulator does.
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

    /// The connection string an app server uses for this emulator (spec §1).
    pub fn connection_string(&self) -> &str {
        &self.connection_string
    }

    /// Waits until the emulator has stopped (after `shutdown` completed and sockets were closed).
    pub async fn wait(self) -> io::Result<()> {
        self.task.await.map_err(io::Error::other)?
    }
}

/// Serves the emulator on `listener` until `shutdown` completes, then tells every client the server is
/// shutting down and waits (at most a few seconds) for those messages to go out.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let state = Arc::new(app::AppState::new(config));
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
