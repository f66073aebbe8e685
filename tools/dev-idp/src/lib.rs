//! **INSECURE, development only.** A tiny OpenID Connect issuer for local runs and tests:
//! anyone who can reach it gets a signed token for any user, roles and claims they ask for.
//! Never expose it beyond localhost and never trust its issuer in a deployed app.
//!
//! What it serves:
//! - `GET /.well-known/openid-configuration`: discovery (`issuer` = its own base URL, `jwks_uri`).
//! - `GET /jwks`: the RS256 public key, generated at the first start and kept in the key file
//!   ([`DevIdpOptions::key_file`]), so restarts keep signed-in tabs valid.
//! - `POST /token` with JSON `{"sub", "roles"?, "claims"?, "audience"?, "lifetimeSeconds"?}` →
//!   `{"access_token", "token_type", "expires_in"}`. A negative lifetime gives an already-expired
//!   token, for tests of refusals.
//! - `GET /`: a form that does the same for a person, showing the token.
//! - `GET /msi/token?resource=…&api-version=2019-08-01` with `X-IDENTITY-HEADER`: a stand-in for
//!   the managed-identity endpoint of a Function app (`IDENTITY_ENDPOINT`), whose tokens come from a
//!   stand-in Entra tenant issuer `{base}/{tenant}/` with `roles` granted by configuration; its
//!   discovery is `GET /{tenant}/.well-known/openid-configuration` (see [`managed_identity`]).
//!
//! Layout: [`DevIdp`] (bind, run), [`keys`] (key generation and signing), `routes` (handlers),
//! [`managed_identity`] (the identity endpoint and tenant).

pub mod keys;
pub mod managed_identity;
mod routes;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

pub use crate::managed_identity::ManagedIdentityOptions;

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
    /// The development managed identity served at `/msi/token`.
    pub managed_identity: ManagedIdentityOptions,
    /// Where the signing key is kept across restarts (created on first use); `None` keeps a
    /// fresh key in memory only, as tests that want isolation do.
    pub key_file: Option<std::path::PathBuf>,
}

/// The default key file: in the repository's git-ignored `target/`, found from this crate's
/// source location rather than the working directory, so `scripts/dev` and a bare
/// `cargo run -p dev-idp` from any folder share one key.
pub fn default_key_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/dev-idp/insecure-dev-signing-key.json")
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
        options
            .managed_identity
            .validate()
            .map_err(|reason| anyhow::anyhow!("managed identity: {reason}"))?;
        let port = listener.local_addr()?.port();
        let issuer = options
            .issuer
            .unwrap_or_else(|| format!("http://localhost:{port}"))
            .trim_end_matches('/')
            .to_owned();
        let key = match &options.key_file {
            Some(path) => keys::InsecureDevSigningKey::load_or_generate(path)?,
            None => keys::InsecureDevSigningKey::generate()?,
        };
        Ok(Self {
            listener,
            port,
            state: Arc::new(routes::IdpState {
                issuer,
                default_audience: options.audience,
                key,
                managed_identity: managed_identity::ManagedIdentity::new(options.managed_identity)?,
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

    /// `IDENTITY_ENDPOINT` for the handler: the managed-identity token URL.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.state.issuer)
    }

    /// `IDENTITY_HEADER` for the handler: the value `/msi/token` requires in `X-IDENTITY-HEADER`.
    /// The caller prints it once for the developer; it must not go into logs.
    pub fn identity_header(&self) -> &str {
        &self.state.managed_identity.identity_header
    }

    /// The stand-in Entra issuer of managed-identity tokens, `{issuer}/{tenant}/`: what the
    /// SignalR emulator's `--entra-issuer` takes.
    pub fn tenant_issuer(&self) -> String {
        managed_identity::tenant_issuer(&self.state)
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
