//! How the handler authenticates to the SignalR Service, in one place: the AccessKey of the
//! connection string, or the app's managed identity (no key in any setting).
//!
//! Everything that signs a client token or calls the REST API asks [`ServiceAuth`]: for the key
//! that signs client tokens ([`ServiceAuth::signing_key`]) and for the bearer of a REST call
//! ([`ServiceAuth::rest_bearer`]). With a managed identity (`docs/protocol/signalr-identity-2026.md`
//! §2):
//!
//! - the identity's Microsoft Entra token comes from `IDENTITY_ENDPOINT` with
//!   `X-IDENTITY-HEADER`, cached until a few minutes before its `expires_on`;
//! - client tokens are signed with a temporary key from `GET {endpoint}/api/v1/auth/accessKey`
//!   (bearer: that token), with header `kid` = the key's `KeyId`, as `Microsoft.Azure.SignalR`'s
//!   `MicrosoftEntraAccessKey` does. A background task fetches it at start and every 55 minutes,
//!   retrying sooner after a failure; requests only read the cached key, so none waits on a
//!   refresh. A key is used for at most 120 minutes after it was fetched (the SDK's rule), and
//!   not at all once the service refused the identity (401/403): after that, callers get 503
//!   rather than a token the service will refuse;
//! - REST calls carry the Entra token itself as the bearer.
//!
//! Nothing here logs a key or a token: both are [`SecretString`]s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use tokio::time::Instant;
use url::Url;

use crate::settings::{ConfigError, Env};
use crate::signalr::access_token::ServiceTokenSigner;
use crate::signalr::connection_string::{ConnectionString, Credential};

/// The resource a managed-identity token for the SignalR Service is requested for.
pub const SIGNALR_RESOURCE: &str = "https://signalr.azure.com";
/// The role that allows temporary keys (client tokens); "SignalR Service Owner" allows it too.
pub const KEY_ROLE: &str = "SignalR App Server";
/// The role that allows REST reads (membership checks); "SignalR Service Owner" allows it too.
pub const REST_ROLE: &str = "SignalR REST API Reader";
/// The SDK refreshes the temporary key this often.
const DEFAULT_KEY_REFRESH_SECONDS: u64 = 55 * 60;
/// The SDK treats a key as unusable this long after it was fetched.
const KEY_USABLE_FOR: Duration = Duration::from_secs(120 * 60);
/// A managed-identity token is refreshed this long before it expires.
const TOKEN_REFRESH_MARGIN_SECONDS: u64 = 5 * 60;
/// Longest answer read from the identity or key endpoint.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest accepted `KeyId` and `AccessKey` (the service's are about 34 and 84 characters).
const MAX_KEY_ID_CHARS: usize = 256;
const MAX_ACCESS_KEY_CHARS: usize = 1024;
/// Each call to the identity or key endpoint gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Retry delays after failures: doubling from 1 s, at most this long.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// The managed-identity settings (identity mode only).
#[derive(Debug, Clone)]
pub struct ManagedIdentitySettings {
    /// `IDENTITY_ENDPOINT`, set by the platform when the app has a managed identity.
    pub endpoint: Url,
    /// `IDENTITY_HEADER`, the secret the identity endpoint checks.
    pub header: SecretString,
    /// `SIGNALR_KEY_REFRESH_SECONDS`: how often the temporary key is refreshed (default 55 min).
    pub key_refresh: Duration,
}

impl ManagedIdentitySettings {
    /// `None` for an AccessKey connection string; for an identity-based one, the platform's
    /// identity variables, which must be set.
    pub fn from_env(env: &Env, connection: &ConnectionString) -> Result<Option<Self>, ConfigError> {
        if matches!(connection.credential(), Credential::AccessKey(_)) {
            return Ok(None);
        }
        const HINT: &str = "the SignalR connection setting names a managed identity, and the platform sets this variable only when the app has one: enable the function app's system-assigned identity (az functionapp identity assign), or use an AccessKey connection string";
        let endpoint = env.require("IDENTITY_ENDPOINT", HINT)?;
        let endpoint = Url::parse(&endpoint)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
            .ok_or_else(|| {
                ConfigError::new(
                    "IDENTITY_ENDPOINT",
                    format!(
                        "`{endpoint}` is not an absolute http(s) URL; leave it to the platform"
                    ),
                )
            })?;
        let header = SecretString::from(env.require("IDENTITY_HEADER", HINT)?);
        let key_refresh = env.seconds(
            "SIGNALR_KEY_REFRESH_SECONDS",
            DEFAULT_KEY_REFRESH_SECONDS,
            DEFAULT_KEY_REFRESH_SECONDS,
        )?;
        if key_refresh.is_zero() {
            return Err(ConfigError::new(
                "SIGNALR_KEY_REFRESH_SECONDS",
                "must be at least 1 second (default 3300, the SDK's 55 minutes)",
            ));
        }
        Ok(Some(Self {
            endpoint,
            header,
            key_refresh,
        }))
    }
}

/// The key that signs client tokens: the AccessKey, or a temporary key and its `KeyId`.
///
/// Holds the HMAC with the key already absorbed rather than the key text: every token signed or
/// checked clones it instead of hashing the key's pads again (BENCHMARKS.md, "Negotiate against
/// the floor"). Its `Debug` names the `kid` only.
pub struct SigningKey {
    /// `KeyId` of a temporary key; the token header's `kid`. `None` for the AccessKey.
    kid: Option<String>,
    /// HMAC-SHA256 keyed with the UTF-8 bytes of the key as the service gave it.
    mac: Hmac<Sha256>,
}

impl SigningKey {
    /// A signing key from the key text the service (or the connection string) gave.
    pub fn new(kid: Option<String>, secret: &SecretString) -> Self {
        Self {
            kid,
            // HMAC accepts keys of any length, so this cannot fail.
            mac: Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC takes keys of any length"),
        }
    }

    /// An AccessKey as a signing key, for unit tests elsewhere in the crate and `bench_api`.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn access_key_for_tests(secret: &str) -> Self {
        Self::new(None, &SecretString::from(secret))
    }

    /// The token header's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A fresh HMAC-SHA256 under this key, ready for the signing input.
    pub fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why the handler cannot authenticate to the service right now. No variant carries a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceAuthError {
    /// No temporary key is cached, or the cached one is past its use (503 to callers).
    #[error(
        "no usable SignalR temporary key (the managed identity needs the `{KEY_ROLE}` or `SignalR Service Owner` role on the SignalR resource; see the start-up log)"
    )]
    NoUsableKey,
    /// The identity endpoint could not be reached or answered an error.
    #[error(
        "the managed identity endpoint (IDENTITY_ENDPOINT) gave no token: {0}; check that the app's identity is enabled (and `ClientId` names it, for a user-assigned one), and assign it the `{KEY_ROLE}` role (or `SignalR Service Owner`) on the SignalR resource"
    )]
    IdentityEndpoint(String),
    /// The key endpoint refused the identity's token: a missing role.
    #[error(
        "the SignalR Service answered {0} to GET /api/v1/auth/accessKey: assign the app's managed identity the `{KEY_ROLE}` role (or `SignalR Service Owner`) on the SignalR resource"
    )]
    KeyRefused(u16),
    /// The key endpoint could not be reached or gave an unusable answer.
    #[error("the SignalR Service gave no temporary key: {0}")]
    KeyEndpoint(String),
    /// An AccessKey REST token could not be signed.
    #[error("cannot sign a REST token: {0}")]
    RestToken(String),
}

/// The service credential shared by token minting and every REST call. Cloning shares the
/// cache.
#[derive(Clone)]
pub struct ServiceAuth {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    AccessKey(Arc<SigningKey>),
    ManagedIdentity(Arc<Keyless>),
}

struct Keyless {
    http: reqwest::Client,
    identity_url: Url,
    identity_header: SecretString,
    key_url: Url,
    key_refresh: Duration,
    key: RwLock<Option<CachedKey>>,
    token: tokio::sync::Mutex<TokenCache>,
    /// True while requests are being refused for want of a key, so the refusal is logged once
    /// per outage rather than once per request.
    refusing: AtomicBool,
}

struct CachedKey {
    key: Arc<SigningKey>,
    usable_until: Instant,
}

/// The managed identity's token and the last failed fetch.
#[derive(Default)]
struct TokenCache {
    token: Option<CachedToken>,
    /// When the last fetch failed and why. Callers that were waiting while it ran get this
    /// answer instead of each fetching in turn: with the endpoint hanging, a queue of REST calls
    /// would otherwise wait one timeout each, one after another.
    failed: Option<(Instant, ServiceAuthError)>,
}

struct CachedToken {
    token: SecretString,
    /// When to fetch a new one: a few minutes before `expires_on`.
    refresh_after: u64,
    /// When it stops being valid; until then it stands in if a refresh fails.
    expires_on: u64,
}

/// The identity endpoint's answer (`expires_on` is a string of Unix seconds; a number is
/// tolerated).
#[derive(Deserialize)]
struct IdentityAnswer {
    access_token: String,
    expires_on: serde_json::Value,
}

/// The key endpoint's answer; PascalCase, both required.
#[derive(Deserialize)]
struct KeyAnswer {
    #[serde(rename = "KeyId")]
    key_id: String,
    #[serde(rename = "AccessKey")]
    access_key: String,
}

impl ServiceAuth {
    /// The credential for `connection`; `identity` must be `Some` exactly for an identity-based
    /// connection string (`ManagedIdentitySettings::from_env` guarantees it).
    pub fn new(
        connection: &ConnectionString,
        identity: Option<&ManagedIdentitySettings>,
    ) -> anyhow::Result<Self> {
        let mode = match (connection.credential(), identity) {
            (Credential::AccessKey(key), _) => {
                Mode::AccessKey(Arc::new(SigningKey::new(None, key)))
            }
            (Credential::ManagedIdentity { client_id }, Some(settings)) => {
                let mut identity_url = settings.endpoint.clone();
                identity_url
                    .query_pairs_mut()
                    .append_pair("resource", SIGNALR_RESOURCE)
                    .append_pair("api-version", "2019-08-01");
                if let Some(client_id) = client_id {
                    identity_url
                        .query_pairs_mut()
                        .append_pair("client_id", client_id);
                }
                let key_url = Url::parse(&format!(
                    "{}/api/v1/auth/accessKey",
                    connection.server_base()
                ))?;
                Mode::ManagedIdentity(Arc::new(Keyless {
                    http: reqwest::Client::builder()
                        .timeout(TIMEOUT)
                        .connect_timeout(TIMEOUT)
                        .redirect(reqwest::redirect::Policy::none())
                        .build()?,
                    identity_url,
                    identity_header: settings.header.clone(),
                    key_url,
                    key_refresh: settings.key_refresh,
                    key: RwLock::new(None),
                    token: tokio::sync::Mutex::new(TokenCache::default()),
                    refusing: AtomicBool::new(false),
                }))
            }
            (Credential::ManagedIdentity { .. }, None) => {
                anyhow::bail!(
                    "an identity-based connection string needs the managed-identity settings"
                )
            }
        };
        Ok(Self { mode })
    }

    /// True with a managed identity (no AccessKey).
    pub fn is_keyless(&self) -> bool {
        matches!(self.mode, Mode::ManagedIdentity(_))
    }

    /// Starts the background key refresh (identity mode; nothing to do with an AccessKey). Its
    /// first round is the start-up check: it tries the identity token and the key once and logs
    /// the outcome, naming the role to assign on failure. It never stops start-up: a role
    /// assignment takes minutes to reach the service, and a handler that exits at start is
    /// restarted by the host and, after three failures, stops the whole app
    /// (docs/protocol/functions-host.md §5.2-§5.3); running, it recovers by itself once the role
    /// arrives and answers 503 until then. Must be called inside a Tokio runtime.
    pub fn start_refresh(&self) {
        if let Mode::ManagedIdentity(keyless) = &self.mode {
            tokio::spawn(Arc::clone(keyless).refresh_forever());
        }
    }

    /// The key to sign a client token with, without waiting: the AccessKey, or the cached
    /// temporary key while it is usable.
    pub fn signing_key(&self) -> Result<Arc<SigningKey>, ServiceAuthError> {
        match &self.mode {
            Mode::AccessKey(key) => Ok(Arc::clone(key)),
            Mode::ManagedIdentity(keyless) => keyless.cached_key(),
        }
    }

    /// A signer for client tokens with the current key.
    pub fn token_signer<'a>(
        &self,
        connection: &'a ConnectionString,
    ) -> Result<ServiceTokenSigner<'a>, ServiceAuthError> {
        Ok(ServiceTokenSigner::new(connection, self.signing_key()?))
    }

    /// The bearer of a REST call to `audience` (the request URL on the Endpoint host without
    /// port): a short-lived HS256 token with the AccessKey, or the managed identity's token.
    pub async fn rest_bearer(&self, audience: &str) -> Result<SecretString, ServiceAuthError> {
        const REST_TOKEN_LIFETIME_SECONDS: u64 = 300;
        match &self.mode {
            Mode::AccessKey(key) => {
                let now = jsonwebtoken::get_current_timestamp();
                crate::signalr::access_token::rest_token(
                    key,
                    audience,
                    now,
                    REST_TOKEN_LIFETIME_SECONDS,
                )
                .map(SecretString::from)
                .map_err(|error| ServiceAuthError::RestToken(error.to_string()))
            }
            Mode::ManagedIdentity(keyless) => keyless.identity_token().await,
        }
    }
}

impl Keyless {
    fn cached_key(&self) -> Result<Arc<SigningKey>, ServiceAuthError> {
        let cached = self.key.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = cached.as_ref()
            && Instant::now() < cached.usable_until
        {
            return Ok(Arc::clone(&cached.key));
        }
        drop(cached);
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "refusing SignalR tokens (503 service_auth_unavailable) until a temporary key is fetched: {}",
                ServiceAuthError::NoUsableKey
            );
        }
        Err(ServiceAuthError::NoUsableKey)
    }

    fn store_key(&self, key: Option<SigningKey>) {
        let mut cached = self.key.write().unwrap_or_else(PoisonError::into_inner);
        *cached = key.map(|key| CachedKey {
            key: Arc::new(key),
            usable_until: Instant::now() + KEY_USABLE_FOR,
        });
        if cached.is_some() {
            self.refusing.store(false, Ordering::Relaxed);
        }
    }

    /// Fetches a key at start, then every `key_refresh`, retrying sooner after failures. Logs
    /// the first failure of an outage and the recovery, not every retry.
    async fn refresh_forever(self: Arc<Self>) {
        let mut failures: u32 = 0;
        loop {
            let wait = match self.fetch_key().await {
                Ok(key) => {
                    tracing::info!(
                        kid = key.kid().unwrap_or_default(),
                        "SignalR temporary key fetched with the managed identity; client tokens are signed with it"
                    );
                    self.store_key(Some(key));
                    failures = 0;
                    self.key_refresh
                }
                Err(error) => {
                    if let ServiceAuthError::KeyRefused(_) = error {
                        // The service no longer accepts this identity: a key it gave earlier
                        // would sign tokens it is about to refuse, so stop using it now. The
                        // identity token goes too: it may be the wrong one (another resource),
                        // and a fresh one is the only way to find out.
                        self.store_key(None);
                        self.token.lock().await.token = None;
                    }
                    if failures == 0 {
                        tracing::error!("managed identity: {error}; retrying in the background");
                    } else {
                        tracing::debug!("managed identity: still failing: {error}");
                    }
                    failures = failures.saturating_add(1);
                    retry_delay(failures).min(self.key_refresh)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn fetch_key(&self) -> Result<SigningKey, ServiceAuthError> {
        let token = self.identity_token().await?;
        let response = self
            .http
            .get(self.key_url.clone())
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|error| ServiceAuthError::KeyEndpoint(describe(&error)))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(ServiceAuthError::KeyRefused(status));
        }
        if status != 200 {
            return Err(ServiceAuthError::KeyEndpoint(format!("status {status}")));
        }
        let body = read_capped(response)
            .await
            .map_err(ServiceAuthError::KeyEndpoint)?;
        let answer: KeyAnswer = serde_json::from_slice(&body).map_err(|_| {
            ServiceAuthError::KeyEndpoint("the answer is not {\"KeyId\", \"AccessKey\"}".into())
        })?;
        let key_id_ok = !answer.key_id.is_empty()
            && answer.key_id.len() <= MAX_KEY_ID_CHARS
            && answer.key_id.chars().all(|c| c.is_ascii_graphic());
        if !key_id_ok {
            return Err(ServiceAuthError::KeyEndpoint(
                "KeyId is empty, too long or not printable ASCII".into(),
            ));
        }
        if answer.access_key.is_empty() || answer.access_key.len() > MAX_ACCESS_KEY_CHARS {
            return Err(ServiceAuthError::KeyEndpoint(
                "AccessKey is empty or too long".into(),
            ));
        }
        Ok(SigningKey::new(
            Some(answer.key_id),
            &SecretString::from(answer.access_key),
        ))
    }

    /// The managed identity's token for the SignalR resource, cached until a few minutes before
    /// it expires. One fetch at a time: concurrent callers wait for it and share its answer, a
    /// failure included. When a refresh fails, the cached token serves until it expires.
    async fn identity_token(&self) -> Result<SecretString, ServiceAuthError> {
        let asked = Instant::now();
        let mut cache = self.token.lock().await;
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(token) = cache.token.as_ref()
            && now < token.refresh_after
        {
            return Ok(token.token.clone());
        }
        // A fetch that failed while this caller waited for the lock is its answer too.
        let error = match &cache.failed {
            Some((failed_at, error)) if *failed_at >= asked => error.clone(),
            _ => match self.fetch_identity_token(now).await {
                Ok(fresh) => {
                    let token = fresh.token.clone();
                    *cache = TokenCache {
                        token: Some(fresh),
                        failed: None,
                    };
                    return Ok(token);
                }
                Err(error) => {
                    cache.failed = Some((Instant::now(), error.clone()));
                    error
                }
            },
        };
        match cache.token.as_ref() {
            Some(token) if now < token.expires_on => Ok(token.token.clone()),
            _ => Err(error),
        }
    }

    async fn fetch_identity_token(&self, now: u64) -> Result<CachedToken, ServiceAuthError> {
        let response = self
            .http
            .get(self.identity_url.clone())
            .header("X-IDENTITY-HEADER", self.identity_header.expose_secret())
            .send()
            .await
            .map_err(|error| ServiceAuthError::IdentityEndpoint(describe(&error)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ServiceAuthError::IdentityEndpoint(format!(
                "status {status}"
            )));
        }
        let body = read_capped(response)
            .await
            .map_err(ServiceAuthError::IdentityEndpoint)?;
        let answer: IdentityAnswer = serde_json::from_slice(&body).map_err(|_| {
            ServiceAuthError::IdentityEndpoint(
                "the answer is not {\"access_token\", \"expires_on\", …}".into(),
            )
        })?;
        let expires_on = match &answer.expires_on {
            serde_json::Value::String(text) => text.parse::<u64>().ok(),
            serde_json::Value::Number(number) => number.as_u64(),
            _ => None,
        }
        .filter(|expires_on| *expires_on > now)
        .ok_or_else(|| {
            ServiceAuthError::IdentityEndpoint(
                "expires_on is not a future time in Unix seconds".into(),
            )
        })?;
        if answer.access_token.is_empty() {
            return Err(ServiceAuthError::IdentityEndpoint(
                "access_token is empty".into(),
            ));
        }
        // Entra's tokens live hours, not years: an absurd `expires_on` must not pin one token
        // (and whatever is wrong with it) in the cache for good.
        let expires_on = expires_on.min(now.saturating_add(MAX_IDENTITY_TOKEN_SECONDS));
        // A few minutes before expiry, or halfway for tokens shorter than that.
        let margin = TOKEN_REFRESH_MARGIN_SECONDS.min((expires_on - now) / 2);
        Ok(CachedToken {
            token: SecretString::from(answer.access_token),
            refresh_after: expires_on - margin,
            expires_on,
        })
    }
}

/// Longest a managed-identity token is cached, whatever its `expires_on` says.
const MAX_IDENTITY_TOKEN_SECONDS: u64 = 24 * 3600;

/// 1 s, 2 s, 4 s, … at most [`MAX_RETRY_DELAY`].
fn retry_delay(failures: u32) -> Duration {
    let seconds = 1u64 << failures.saturating_sub(1).min(8);
    Duration::from_secs(seconds).min(MAX_RETRY_DELAY)
}

/// A reqwest error by kind only: its text may carry the URL, whose query is harmless, but its
/// source chain is a library's message we do not need.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err("the answer is too large".into());
    }
    let body = response
        .bytes()
        .await
        .map_err(|_| "the answer could not be read".to_owned())?;
    if body.len() > MAX_ANSWER_BYTES {
        return Err("the answer is too large".into());
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU16;

    use serde_json::{Value, json};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const IDENTITY_HEADER: &str = "insecure-test-identity-header";
    const IDENTITY_PATH: &str = "/identity";
    const KEY_PATH: &str = "/api/v1/auth/accessKey";

    /// One request the stand-in answered, in arrival order.
    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        /// The `Authorization: Bearer` value, if any.
        bearer: Option<String>,
        status: u16,
    }

    #[derive(Default)]
    struct StandInState {
        seen: Mutex<Vec<Seen>>,
        /// The identity endpoint's body; `None`: `mi-token-<n>` (the n-th identity request),
        /// expiring in an hour.
        identity_answer: Mutex<Option<Value>>,
        /// The key endpoint's status: 200 with a key, or anything else with no body.
        key_status: AtomicU16,
        /// The identity endpoint's status when not 0 (then with no body).
        identity_status: AtomicU16,
        /// How long the identity endpoint takes to answer, in milliseconds.
        identity_delay_ms: std::sync::atomic::AtomicU64,
    }

    /// The identity endpoint and the service's key endpoint over real HTTP on 127.0.0.1, one
    /// request per connection. Its tasks end with the test's runtime.
    struct StandIn {
        base: String,
        state: Arc<StandInState>,
    }

    impl StandIn {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let base = format!("http://{}", listener.local_addr().expect("an address"));
            let state = Arc::new(StandInState {
                key_status: AtomicU16::new(200),
                ..StandInState::default()
            });
            let serving = Arc::clone(&state);
            tokio::spawn(async move {
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(answer(stream, Arc::clone(&serving)));
                    }
                }
            });
            Self { base, state }
        }

        /// The handler's credential for an identity-based connection string to this stand-in,
        /// built as start-up builds it.
        fn service_auth(&self, key_refresh: Duration) -> ServiceAuth {
            let connection =
                ConnectionString::managed_identity(&self.base, None).expect("a service URI");
            let settings = ManagedIdentitySettings {
                endpoint: Url::parse(&format!("{}{IDENTITY_PATH}", self.base)).expect("a URL"),
                header: SecretString::from(IDENTITY_HEADER),
                key_refresh,
            };
            ServiceAuth::new(&connection, Some(&settings)).expect("a keyless credential")
        }

        fn answer_identity_with(&self, body: Value) {
            *self.state.identity_answer.lock().expect("not poisoned") = Some(body);
        }

        /// The identity endpoint answers `status` (0: a token again) after `delay`.
        fn fail_identity_with(&self, status: u16, delay: Duration) {
            self.state.identity_status.store(status, Ordering::SeqCst);
            let delay = u64::try_from(delay.as_millis()).expect("a short delay");
            self.state.identity_delay_ms.store(delay, Ordering::SeqCst);
        }

        fn answer_keys_with(&self, status: u16) {
            self.state.key_status.store(status, Ordering::SeqCst);
        }

        fn seen(&self) -> Vec<Seen> {
            self.state.seen.lock().expect("not poisoned").clone()
        }
    }

    /// The managed-identity state behind `auth`, to read its caches.
    fn keyless(auth: &ServiceAuth) -> &Keyless {
        match &auth.mode {
            Mode::ManagedIdentity(keyless) => keyless,
            Mode::AccessKey(_) => panic!("an identity-based connection string"),
        }
    }

    /// When the cached identity token is due for refresh, if one is cached.
    async fn cached_refresh_after(keyless: &Keyless) -> Option<u64> {
        keyless
            .token
            .lock()
            .await
            .token
            .as_ref()
            .map(|cached| cached.refresh_after)
    }

    /// Answers one request as the endpoint its path names and logs it. The identity endpoint
    /// answers 401 without the right `X-IDENTITY-HEADER`, as the platform's does.
    async fn answer(stream: TcpStream, state: Arc<StandInState>) {
        let Some(head) = read_head(&stream).await else {
            return;
        };
        let mut lines = head.split("\r\n");
        let target = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default().to_owned();
        let (mut identity_header, mut bearer) = (None, None);
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim().to_owned();
                match name.trim().to_ascii_lowercase().as_str() {
                    "x-identity-header" => identity_header = Some(value),
                    "authorization" => bearer = value.strip_prefix("Bearer ").map(str::to_owned),
                    _ => {}
                }
            }
        }
        let path_is_identity = path == IDENTITY_PATH;
        let (status, body) = {
            let mut seen = state.seen.lock().expect("not poisoned");
            let (status, body) = match path.as_str() {
                IDENTITY_PATH
                    if identity_header.as_deref() == Some(IDENTITY_HEADER)
                        && state.identity_status.load(Ordering::SeqCst) != 0 =>
                {
                    (state.identity_status.load(Ordering::SeqCst), String::new())
                }
                IDENTITY_PATH if identity_header.as_deref() == Some(IDENTITY_HEADER) => {
                    let n = 1 + seen.iter().filter(|s| s.path == IDENTITY_PATH).count();
                    let body = state
                        .identity_answer
                        .lock()
                        .expect("not poisoned")
                        .clone()
                        .unwrap_or_else(|| {
                            let expires_on = jsonwebtoken::get_current_timestamp() + 3600;
                            json!({
                                "access_token": format!("mi-token-{n}"),
                                "expires_on": expires_on.to_string(),
                            })
                        });
                    (200, body.to_string())
                }
                IDENTITY_PATH => (401, String::new()),
                KEY_PATH => match state.key_status.load(Ordering::SeqCst) {
                    200 => {
                        let n = 1 + seen.iter().filter(|s| s.path == KEY_PATH).count();
                        let key = json!({
                            "KeyId": format!("t-{n}"),
                            "AccessKey": format!("INSECURE-TEST-KEY-{n}"),
                        });
                        (200, key.to_string())
                    }
                    status => (status, String::new()),
                },
                _ => (404, String::new()),
            };
            seen.push(Seen {
                path,
                bearer,
                status,
            });
            (status, body)
        };
        if path_is_identity {
            let delay = state.identity_delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let response = format!(
            "HTTP/1.1 {status} Stand-in\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        write_all(&stream, response.as_bytes()).await;
    }

    /// The request line and headers (the requests here have no body).
    async fn read_head(stream: &TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            stream.readable().await.ok()?;
            match stream.try_read(&mut buffer) {
                Ok(0) => return None,
                Ok(n) => {
                    head.extend_from_slice(&buffer[..n]);
                    if head.windows(4).any(|window| window == b"\r\n\r\n") {
                        return String::from_utf8(head).ok();
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
    }

    async fn write_all(stream: &TcpStream, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Waits for the background refresh to reach a state, every 20 ms; the 10 s deadline is a
    /// hang guard, not a timing assertion.
    async fn eventually(what: &str, mut reached: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reached() {
            assert!(Instant::now() < deadline, "never reached: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Entra's tokens live hours: an identity endpoint answering an absurd `expires_on` (a bug,
    /// a proxy, a wrong clock) must not pin one token, and whatever is wrong with it, in the
    /// cache for years. Both forms the endpoint may write are capped; an ordinary lifetime is
    /// left alone.
    #[tokio::test]
    async fn an_absurd_expires_on_is_cached_for_at_most_24_hours() {
        let stand_in = StandIn::start().await;
        let ten_years_on = jsonwebtoken::get_current_timestamp() + 10 * 365 * 24 * 3600;
        let cases = [
            ("a string", json!(ten_years_on.to_string())),
            ("a number", json!(ten_years_on)),
        ];
        for (case, expires_on) in cases {
            let auth = stand_in.service_auth(Duration::from_secs(DEFAULT_KEY_REFRESH_SECONDS));
            let keyless = keyless(&auth);
            stand_in.answer_identity_with(
                json!({"access_token": "mi-token", "expires_on": expires_on}),
            );
            let before = jsonwebtoken::get_current_timestamp();
            let token = keyless.identity_token().await.expect("a token");
            let after = jsonwebtoken::get_current_timestamp();
            assert_eq!(token.expose_secret(), "mi-token", "{case}");
            let refresh_after = cached_refresh_after(keyless)
                .await
                .expect("the token is cached");
            assert!(
                refresh_after <= after + MAX_IDENTITY_TOKEN_SECONDS,
                "{case}: refreshed at {refresh_after}, more than 24 h after {after}"
            );
            // Still a day's use (so more than now), not a fetch per call.
            assert!(
                refresh_after >= before + MAX_IDENTITY_TOKEN_SECONDS - TOKEN_REFRESH_MARGIN_SECONDS,
                "{case}: refreshed at {refresh_after}, before {before} + 24 h - the margin"
            );
        }

        let auth = stand_in.service_auth(Duration::from_secs(DEFAULT_KEY_REFRESH_SECONDS));
        let keyless = keyless(&auth);
        let in_an_hour = jsonwebtoken::get_current_timestamp() + 3600;
        stand_in.answer_identity_with(
            json!({"access_token": "mi-token", "expires_on": in_an_hour.to_string()}),
        );
        keyless.identity_token().await.expect("a token");
        let refresh_after = cached_refresh_after(keyless).await;
        assert_eq!(
            refresh_after,
            Some(in_an_hour - TOKEN_REFRESH_MARGIN_SECONDS)
        );
    }

    /// An identity answer whose `expires_on` is past, or no Unix time at all, or whose token is
    /// empty, would be cached as a token that cannot work (or panic the lifetime arithmetic): it
    /// is refused as an identity-endpoint error and nothing is cached. A valid answer on the same
    /// stand-in shows each refusal is of the answer, not of the request.
    #[tokio::test]
    async fn an_identity_answer_expired_not_a_time_or_without_a_token_is_refused() {
        let stand_in = StandIn::start().await;
        let now = jsonwebtoken::get_current_timestamp();
        let in_an_hour = (now + 3600).to_string();
        let cases = [
            (
                "past, as a string",
                json!({"access_token": "mi-token", "expires_on": "1000"}),
            ),
            (
                "past, as a number",
                json!({"access_token": "mi-token", "expires_on": now - 60}),
            ),
            (
                "not a number",
                json!({"access_token": "mi-token", "expires_on": "soon"}),
            ),
            (
                "negative",
                json!({"access_token": "mi-token", "expires_on": -5}),
            ),
            (
                "fractional",
                json!({"access_token": "mi-token", "expires_on": 1.5e10}),
            ),
            (
                "null",
                json!({"access_token": "mi-token", "expires_on": null}),
            ),
            (
                "empty access_token",
                json!({"access_token": "", "expires_on": in_an_hour}),
            ),
        ];
        let refused = cases.len();
        for (case, answer) in cases {
            let auth = stand_in.service_auth(Duration::from_secs(DEFAULT_KEY_REFRESH_SECONDS));
            let keyless = keyless(&auth);
            stand_in.answer_identity_with(answer);
            let field = if case.contains("access_token") {
                "access_token"
            } else {
                "expires_on"
            };
            match keyless.identity_token().await {
                Err(ServiceAuthError::IdentityEndpoint(reason)) => {
                    assert!(reason.contains(field), "{case}: {reason}");
                }
                other => panic!("{case}: {:?}", other.map(|_| "a token")),
            }
            assert!(keyless.token.lock().await.token.is_none(), "{case}: cached");
        }
        assert_eq!(
            stand_in.seen().len(),
            refused,
            "every case reached the identity endpoint"
        );

        let auth = stand_in.service_auth(Duration::from_secs(DEFAULT_KEY_REFRESH_SECONDS));
        stand_in
            .answer_identity_with(json!({"access_token": "mi-token", "expires_on": in_an_hour}));
        let token = keyless(&auth)
            .identity_token()
            .await
            .expect("a valid answer");
        assert_eq!(token.expose_secret(), "mi-token");
    }

    /// A 401 or 403 from the key endpoint means the service no longer accepts the identity: the
    /// cached key would sign tokens it is about to refuse (so negotiate must answer 503 at
    /// once), and the cached identity token may be the wrong one (so the next attempt must get
    /// a fresh one rather than be refused again for as long as it is cached). While keys are
    /// given, the identity token is reused, which shows the fetches after a refusal are due to
    /// the refusal.
    #[tokio::test]
    async fn a_refused_key_drops_the_cached_key_and_the_identity_token() {
        let stand_in = StandIn::start().await;
        // Short refreshes and retries (a retry waits at most `key_refresh`), so the background
        // loop goes round many times within the test.
        let auth = stand_in.service_auth(Duration::from_millis(20));
        auth.start_refresh();
        let key_requests = |stand_in: &StandIn, since: usize, status: u16| {
            stand_in.seen()[since..]
                .iter()
                .filter(|seen| seen.path == KEY_PATH && seen.status == status)
                .count()
        };
        for refusal in [403, 401] {
            let since = stand_in.seen().len();
            stand_in.answer_keys_with(200);
            eventually("a key fetched twice", || {
                auth.signing_key().is_ok() && key_requests(&stand_in, since, 200) >= 2
            })
            .await;

            let since = stand_in.seen().len();
            stand_in.answer_keys_with(refusal);
            eventually(&format!("no key after {refusal}"), || {
                matches!(auth.signing_key(), Err(ServiceAuthError::NoUsableKey))
            })
            .await;
            // Three refusals: two of them followed by another key request.
            eventually(&format!("three {refusal}s"), || {
                key_requests(&stand_in, since, refusal) >= 3
            })
            .await;
        }

        let seen = stand_in.seen();
        let keys: Vec<usize> = (0..seen.len())
            .filter(|&i| seen[i].path == KEY_PATH)
            .collect();
        let mut checked = [0usize; 3];
        for pair in keys.windows(2) {
            let (previous, next) = (&seen[pair[0]], &seen[pair[1]]);
            let identity_requests = seen[pair[0] + 1..pair[1]]
                .iter()
                .filter(|seen| seen.path == IDENTITY_PATH)
                .count();
            let context = || format!("after key request {}: {seen:#?}", pair[0]);
            assert!(next.bearer.is_some(), "{}", context());
            match previous.status {
                200 => {
                    assert_eq!(identity_requests, 0, "{}", context());
                    assert_eq!(next.bearer, previous.bearer, "{}", context());
                    checked[0] += 1;
                }
                401 | 403 => {
                    assert_eq!(identity_requests, 1, "{}", context());
                    assert_ne!(next.bearer, previous.bearer, "{}", context());
                    checked[if previous.status == 401 { 1 } else { 2 }] += 1;
                }
                other => panic!("key endpoint answered {other}"),
            }
        }
        assert!(
            checked.iter().all(|&count| count >= 2),
            "too few of (200, 401, 403) followed by a key request: {checked:?}"
        );
    }

    /// Callers that queue behind a fetch of the identity token share its failure: one request
    /// reaches the (slow, failing) endpoint, not one per caller, one timeout after another.
    #[tokio::test]
    async fn callers_waiting_for_a_failing_identity_fetch_share_its_failure() {
        let stand_in = StandIn::start().await;
        let auth = stand_in.service_auth(Duration::from_secs(DEFAULT_KEY_REFRESH_SECONDS));
        let keyless = keyless(&auth);
        stand_in.fail_identity_with(500, Duration::from_millis(300));
        let answers = tokio::join!(
            keyless.identity_token(),
            keyless.identity_token(),
            keyless.identity_token(),
            keyless.identity_token(),
            keyless.identity_token(),
        );
        for answer in [answers.0, answers.1, answers.2, answers.3, answers.4] {
            assert!(
                matches!(answer, Err(ServiceAuthError::IdentityEndpoint(ref reason)) if reason.contains("500")),
                "{:?}",
                answer.map(|_| "a token")
            );
        }
        let fetches = stand_in
            .seen()
            .iter()
            .filter(|s| s.path == IDENTITY_PATH)
            .count();
        assert_eq!(fetches, 1, "one fetch for five waiting callers");
        // A caller that comes after the failure tries again.
        stand_in.fail_identity_with(0, Duration::ZERO);
        keyless
            .identity_token()
            .await
            .expect("a token once the endpoint answers");
    }

    /// A refresh that fails while the cached token is still valid keeps serving that token; once
    /// it has expired, the failure is the answer.
    #[tokio::test]
    async fn a_failed_refresh_serves_the_cached_token_until_it_expires() {
        let stand_in = StandIn::start().await;
        let auth = stand_in.service_auth(Duration::from_secs(DEFAULT_KEY_REFRESH_SECONDS));
        let keyless = keyless(&auth);
        let first = keyless.identity_token().await.expect("a token");
        let now = jsonwebtoken::get_current_timestamp();
        // Due for refresh, still valid for a minute.
        let due = |expires_on: u64| async move {
            let mut cache = keyless.token.lock().await;
            let cached = cache.token.as_mut().expect("cached");
            cached.refresh_after = now - 1;
            cached.expires_on = expires_on;
        };
        due(now + 60).await;
        stand_in.fail_identity_with(503, Duration::ZERO);
        let served = keyless.identity_token().await.expect("the cached token");
        assert_eq!(served.expose_secret(), first.expose_secret());
        due(now - 1).await;
        assert!(matches!(
            keyless.identity_token().await,
            Err(ServiceAuthError::IdentityEndpoint(_))
        ));
        let fetches = stand_in
            .seen()
            .iter()
            .filter(|s| s.path == IDENTITY_PATH)
            .count();
        assert_eq!(
            fetches, 3,
            "the first fetch, then one refresh attempt per call"
        );
    }

    #[test]
    fn retries_back_off_and_stay_bounded() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(50), MAX_RETRY_DELAY);
    }

    #[test]
    fn the_signing_key_debug_shows_no_secret() {
        let key = SigningKey::new(
            Some("t-1".into()),
            &SecretString::from("INSECURE-TEST-TEMPORARY-KEY"),
        );
        let debug = format!("{key:?}");
        assert!(debug.contains("t-1"), "{debug}");
        assert!(!debug.contains("INSECURE"), "{debug}");
    }
}
