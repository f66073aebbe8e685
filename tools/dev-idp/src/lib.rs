//! **INSECURE, development only.** A tiny OpenID Connect issuer for local runs and tests:
//! anyone who can reach it gets a signed token for any user, roles and claims they ask for.
//! Never expose it beyond localhost and never trust its issuer in a deployed app.
//!
//! What it serves:
//! - `GET /.well-known/openid-configuration`: discovery (`issuer` = its own base URL, `jwks_uri`).
//! - `GET /jwks`: the RS256 public key, generated fresh at every start (nothing is stored).
//! - `POST /token` with JSON `{"sub", "roles"?, "claims"?, "audience"?, "lifetimeSeconds"?}` →
//!   `{"access_token", "token_type", "expires_in"}`. A negative lifetime gives an already-expired
//!   token, for tests of refusals.
//! - `GET /`: a form that does the same for a person, showing the token.
//!
//! Layout: [`DevIdp`] (bind, run), [`keys`] (key generation and signing), `routes` (handlers).

pub mod keys;
mod routes;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

/// The audience tokens get when a request names none; `scripts/dev` sets `AUTH_AUDIENCE` to it.
pub const DEFAULT_AUDIENCE: &str = "api://signalr-chat-dev";

/// Options of one issuer.
#[derive(Debug, Clone)]
pub struct DevIdpOptions {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Default `aud` of issued tokens.
    pub audience: String,
    /// The `iss` value; `None` uses `http://localhost:{port}`.
    pub issuer: Option<String>,
}

/// A bound issuer.
pub struct DevIdp {
    listener: tokio::net::TcpListener,
    port: u16,
    state: Arc<routes::IdpState>,
}

impl DevIdp {
    /// Generates the signing key and binds the port.
    pub async fn bind(options: DevIdpOptions) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", options.port))?;
        let port = listener.local_addr()?.port();
        let issuer = options
            .issuer
            .unwrap_or_else(|| format!("http://localhost:{port}"))
            .trim_end_matches('/')
            .to_owned();
        let key = keys::InsecureDevSigningKey::generate()?;
        Ok(Self {
            listener,
            port,
            state: Arc::new(routes::IdpState {
                issuer,
                default_audience: options.audience,
                key,
            }),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The issuer (`iss`) of its tokens, which is also its base URL.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = routes::router(self.state);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}
