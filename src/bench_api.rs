//! The pure parts of negotiate, for `benches/pure.rs` only (cargo feature `bench`, never enabled
//! in a build that ships): the modules are private, and a micro-benchmark shows a regression in
//! envelope parsing, JWT verification or token re-issue without a load generator
//! (BENCHMARKS.md, "Negotiate against the floor"). Nothing here skips a check: each function
//! runs the handler's own code path.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::identity::jwt::{JwtSettings, JwtVerifier};
use crate::invocation::InvocationRequest;
use crate::settings::Env;
use crate::signalr::access_token::{ConnectionInfo, ServiceTokenSigner};
use crate::signalr::connection_string::ConnectionString;
use crate::signalr::service_auth::SigningKey;

/// Parses a host envelope as negotiate does: the envelope, the `req` trigger and the
/// `connectionInfo` binding. Returns the binding token's length, so nothing is optimised away.
pub fn parse_negotiate(body: &[u8]) -> usize {
    let Ok(invocation) = InvocationRequest::parse(body, "req") else {
        return 0;
    };
    let headers = invocation
        .http_request()
        .map_or(0, |request| request.header_values("Authorization").len());
    let token = invocation
        .input_as::<ConnectionInfo>("connectionInfo")
        .and_then(Result::ok)
        .map_or(0, |info| info.access_token.len());
    headers + token
}

/// A settings lookup over `variables` (exact names), as the environment would answer it.
fn lookup_in(variables: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let variables: Vec<(String, String)> = variables
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    move |name: &str| {
        variables
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }
}

/// An HS256 app-token verifier and a service-token signer, built as start-up builds them.
pub struct Negotiate {
    verifier: JwtVerifier,
    connection: ConnectionString,
    key: Arc<SigningKey>,
}

impl Negotiate {
    /// From the app's issuer, audience and HS256 secret, and the service's connection string.
    pub fn hs256(
        issuer: &str,
        audience: &str,
        secret: &str,
        connection_string: &str,
    ) -> anyhow::Result<Self> {
        let lookup = lookup_in(&[
            ("AUTH_ISSUER", issuer),
            ("AUTH_AUDIENCE", audience),
            ("AUTH_HS256_SECRET", secret),
        ]);
        let settings = JwtSettings::from_env(&Env::new(&lookup), Duration::from_secs(60))
            .map_err(|error| anyhow::anyhow!("{}: {}", error.setting(), error.message()))?;
        let connection = ConnectionString::parse(connection_string)?;
        let verifier = JwtVerifier::new(&settings, &connection.service_audience())?;
        let access_key = connection
            .access_key()
            .ok_or_else(|| anyhow::anyhow!("the bench needs an AccessKey connection string"))?;
        let key = Arc::new(SigningKey::access_key_for_tests(access_key.expose_secret()));
        Ok(Self {
            verifier,
            connection,
            key,
        })
    }

    /// Verifies `app_token` (HS256 verify, no await happens). True when accepted.
    pub fn verify(&self, app_token: &str) -> bool {
        futures_util::FutureExt::now_or_never(self.verifier.verify(app_token))
            .is_some_and(|result| result.is_ok())
    }

    /// Verifies the binding's token and re-issues it for the user of `app_token`, as negotiate
    /// does; `None` if either is refused.
    pub fn reissue(&self, app_token: &str, binding_token: &str) -> Option<String> {
        let user = futures_util::FutureExt::now_or_never(self.verifier.verify(app_token))?.ok()?;
        let signer = ServiceTokenSigner::new(&self.connection, self.key.clone());
        let base = signer.verify_binding_token(binding_token).ok()?;
        signer
            .reissue(&base, &user, &[], None)
            .ok()
            .map(|issued| issued.token)
    }
}

/// The handler's whole work for one invocation, in-process: the host's body in, the envelope's
/// bytes out, through the same state and code `POST /{function}` uses (no HTTP, no socket).
/// The difference between this and the load-generator figures is the HTTP server's share.
pub struct Invoker {
    state: crate::functions::AppState,
}

impl Invoker {
    /// The state start-up builds, from `variables` (exact names) and the app root's
    /// `function.json` files.
    pub fn new(variables: &[(&str, &str)], app_root: &std::path::Path) -> anyhow::Result<Self> {
        let settings = crate::config::Settings::from_lookup(&lookup_in(variables), Some(app_root))
            .map_err(|error| anyhow::anyhow!("{}: {}", error.setting(), error.message()))?;
        Ok(Self {
            state: crate::startup::app_state(settings)?,
        })
    }

    /// Invokes `function` with the host's `body` and returns the envelope's JSON. `None` if the
    /// invocation had to wait (it never does for negotiate with an AccessKey and HS256).
    pub fn invoke(&self, function: &str, body: &[u8]) -> Option<Vec<u8>> {
        let envelope = futures_util::FutureExt::now_or_never(crate::functions::invoke(
            &self.state,
            function,
            Ok(body.to_vec()),
            "bench",
        ))?;
        Some(crate::startup::envelope_json(&envelope))
    }
}

/// Makes jsonwebtoken check RSA and ECDSA signatures with ring, as start-up does; true when it
/// took. Call it before anything verifies a token.
pub fn install_signatures() -> bool {
    crate::identity::signatures::install()
}
