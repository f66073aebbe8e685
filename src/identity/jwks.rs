//! Public keys from a JWKS endpoint (fixed URL or OIDC discovery), cached in memory.
//!
//! Rules, in the order they matter:
//! - Keys are fetched lazily and kept; a token whose `kid` is unknown triggers a refetch (key
//!   rotation), but at most once per `refresh_interval`, so random `kid`s cannot turn the
//!   handler into a traffic amplifier against the identity provider.
//! - Keys older than [`MAX_KEY_AGE`] are refetched on the next request; if that fails, the old
//!   keys keep serving (an outage of the IdP does not log everyone out).
//! - With no keys at all, verification fails closed ([`IdentityError::KeysUnavailable`], 503).
//! - One fetch at a time: concurrent requests wait for the fetch in flight instead of
//!   starting their own.
//!
//! The cache is per process; each scaled-out instance fetches on its own, which keeps the
//! handler stateless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::identity::IdentityError;

/// Keys are refetched when older than this, even if every `kid` is known.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the key set is.
#[derive(Debug, Clone)]
pub enum JwksLocation {
    /// A fixed JWKS URL.
    Url(Url),
    /// An issuer whose discovery document names the JWKS URL.
    Discovery(Url),
}

/// A verification key and the algorithm its JWK pins, if any.
pub struct CachedKey {
    key: DecodingKey,
    algorithm: Option<Algorithm>,
}

impl std::ops::Deref for CachedKey {
    type Target = DecodingKey;
    fn deref(&self) -> &DecodingKey {
        &self.key
    }
}

#[derive(Default)]
struct State {
    keys: HashMap<Option<String>, Arc<CachedKey>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    jwks_url: Option<Url>,
}

/// The key cache.
pub struct JwksCache {
    location: JwksLocation,
    refresh_interval: Duration,
    client: reqwest::Client,
    state: RwLock<State>,
    fetch_lock: Mutex<()>,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl JwksCache {
    /// A cache for `location`; nothing is fetched until the first token arrives.
    pub fn new(location: JwksLocation, refresh_interval: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // No redirects: the https checks on AUTH_JWKS_URL and jwks_uri must hold for the
            // URL actually fetched, and a redirect could lead to plain http or another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "signalr-identity-handler/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            location,
            refresh_interval,
            client,
            state: RwLock::new(State::default()),
            fetch_lock: Mutex::new(()),
        })
    }

    /// The key for a token with header `kid` and `alg`.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<CachedKey>, IdentityError> {
        let kid = kid.map(str::to_owned);
        {
            let state = self.state.read().await;
            let fresh = state
                .fetched_at
                .is_some_and(|at| at.elapsed() < MAX_KEY_AGE);
            if let (true, Some(key)) = (fresh, lookup(&state, &kid)) {
                return check_algorithm(key, alg);
            }
        }
        self.refresh_if_allowed().await;
        let state = self.state.read().await;
        if state.keys.is_empty() {
            return Err(IdentityError::KeysUnavailable(
                "the key set could not be fetched and none is cached".into(),
            ));
        }
        match lookup(&state, &kid) {
            Some(key) => check_algorithm(key, alg),
            None => {
                let mut known: Vec<String> = state
                    .keys
                    .keys()
                    .map(|known| known.clone().unwrap_or_else(|| "(no kid)".to_owned()))
                    .collect();
                known.sort();
                Err(IdentityError::UnknownKeyId { kid, known })
            }
        }
    }

    /// Fetches the key set unless another fetch ran within `refresh_interval` (or is running).
    async fn refresh_if_allowed(&self) {
        let observed_attempt = self.state.read().await.last_attempt;
        let _guard = self.fetch_lock.lock().await;
        let (last_attempt, cached_url) = {
            let state = self.state.read().await;
            (state.last_attempt, state.jwks_url.clone())
        };
        if last_attempt != observed_attempt {
            // Another request fetched while this one waited; use its result.
            return;
        }
        if last_attempt.is_some_and(|at| at.elapsed() < self.refresh_interval) {
            return;
        }
        let result = self.fetch(cached_url).await;
        let mut state = self.state.write().await;
        state.last_attempt = Some(Instant::now());
        match result {
            Ok((url, keys)) => {
                tracing::info!(keys = keys.len(), jwks = %url, "fetched the JWKS");
                state.keys = keys;
                state.jwks_url = Some(url);
                state.fetched_at = Some(Instant::now());
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), cached_keys = state.keys.len(), "JWKS fetch failed; keeping cached keys");
            }
        }
    }

    async fn fetch(
        &self,
        cached_url: Option<Url>,
    ) -> anyhow::Result<(Url, HashMap<Option<String>, Arc<CachedKey>>)> {
        use anyhow::Context;
        let url = match (&self.location, cached_url) {
            (JwksLocation::Url(url), _) => url.clone(),
            (JwksLocation::Discovery(_), Some(url)) => url,
            (JwksLocation::Discovery(issuer), None) => self.discover(issuer).await?,
        };
        let body = self
            .get(&url)
            .await
            .with_context(|| format!("fetching the JWKS at {url}"))?;
        let set: RawKeySet =
            serde_json::from_slice(&body).context("the JWKS is not a JSON key set")?;
        let mut keys = HashMap::new();
        for raw in set.keys {
            let jwk: Jwk = match serde_json::from_value(raw) {
                Ok(jwk) => jwk,
                Err(error) => {
                    tracing::debug!(%error, "skipping a JWK of an unsupported shape");
                    continue;
                }
            };
            if matches!(jwk.common.public_key_use, Some(ref usage) if *usage != PublicKeyUse::Signature)
            {
                continue;
            }
            let algorithm = jwk
                .common
                .key_algorithm
                .and_then(|alg| alg.to_string().parse::<Algorithm>().ok());
            match DecodingKey::from_jwk(&jwk) {
                Ok(key) => {
                    keys.insert(
                        jwk.common.key_id.clone(),
                        Arc::new(CachedKey { key, algorithm }),
                    );
                }
                Err(error) => {
                    tracing::debug!(?error, "skipping a JWK that is not a usable public key")
                }
            }
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "the JWKS at {url} holds no usable signing key"
        );
        Ok((url, keys))
    }

    async fn discover(&self, issuer: &Url) -> anyhow::Result<Url> {
        use anyhow::Context;
        let base = issuer.as_str().trim_end_matches('/');
        let discovery_url = Url::parse(&format!("{base}/.well-known/openid-configuration"))?;
        let body = self
            .get(&discovery_url)
            .await
            .with_context(|| format!("fetching the OIDC discovery document at {discovery_url}"))?;
        let document: Discovery =
            serde_json::from_slice(&body).context("the discovery document is not valid")?;
        anyhow::ensure!(
            document.issuer.trim_end_matches('/') == base,
            "the discovery document names issuer {:?}, not the configured AUTH_ISSUER",
            document.issuer
        );
        let jwks = Url::parse(&document.jwks_uri).context("jwks_uri is not a URL")?;
        check_jwks_uri(issuer, &jwks)?;
        Ok(jwks)
    }

    async fn get(&self, url: &Url) -> anyhow::Result<Vec<u8>> {
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            anyhow::ensure!(
                body.len() + chunk.len() <= MAX_DOCUMENT_BYTES,
                "the document exceeds {MAX_DOCUMENT_BYTES} bytes"
            );
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Where a URL points: this machine, or anywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostClass {
    /// This machine: `localhost` (also with a trailing dot, and `*.localhost`, which resolvers
    /// send to loopback), `127.0.0.0/8`, `::1`, IPv4-mapped loopback (`::ffff:127.0.0.1`) and
    /// the unspecified addresses (`0.0.0.0`, `::`, which connect to this machine). Local
    /// development only; plain http allowed.
    Loopback,
    /// Any other host: https required.
    Remote,
}

impl HostClass {
    /// The class of `url`'s host.
    pub fn of(url: &Url) -> Self {
        let loopback = match url.host() {
            Some(url::Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                domain == "localhost" || domain.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(address)) => address.is_loopback() || address.is_unspecified(),
            Some(url::Host::Ipv6(address)) => {
                address.is_loopback()
                    || address.is_unspecified()
                    || address
                        .to_ipv4_mapped()
                        .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
            }
            None => false,
        };
        if loopback {
            Self::Loopback
        } else {
            Self::Remote
        }
    }
}

/// A discovered `jwks_uri` must be in the issuer's host class, and https unless on loopback:
/// a remote issuer's discovery document (or whoever can change it) must not point the handler at
/// a plain-http or loopback key set, and a local development issuer must not reach out.
fn check_jwks_uri(issuer: &Url, jwks: &Url) -> anyhow::Result<()> {
    let (issuer_class, jwks_class) = (HostClass::of(issuer), HostClass::of(jwks));
    anyhow::ensure!(
        issuer_class == jwks_class,
        "jwks_uri {jwks} is on another host class ({jwks_class:?}) than the issuer ({issuer_class:?}); a discovered key set must stay on the issuer's side of loopback"
    );
    anyhow::ensure!(
        jwks.scheme() == "https" || (jwks.scheme() == "http" && jwks_class == HostClass::Loopback),
        "jwks_uri {jwks} is not https (plain http is accepted only on loopback)"
    );
    Ok(())
}

/// A token without `kid` may use the only key of a one-key set, never a guess among several.
fn lookup(state: &State, kid: &Option<String>) -> Option<Arc<CachedKey>> {
    if let Some(key) = state.keys.get(kid) {
        return Some(key.clone());
    }
    match (kid, state.keys.len()) {
        (None, 1) => state.keys.values().next().cloned(),
        _ => None,
    }
}

fn check_algorithm(key: Arc<CachedKey>, alg: Algorithm) -> Result<Arc<CachedKey>, IdentityError> {
    match key.algorithm {
        Some(pinned) if pinned != alg => Err(IdentityError::Rejected(
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm,
        )),
        _ => Ok(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    #[test]
    fn a_discovered_jwks_uri_stays_in_the_issuers_host_class_and_on_https() {
        let allowed = [
            (
                "https://login.example.com/t/v2.0",
                "https://keys.example.net/keys",
            ),
            ("http://127.0.0.1:7072", "http://127.0.0.1:7072/keys"),
            ("http://localhost:7072", "https://localhost:7443/keys"),
            ("http://[::1]:7072", "http://127.0.0.2/keys"),
        ];
        for (issuer, jwks) in allowed {
            assert!(
                check_jwks_uri(&url(issuer), &url(jwks)).is_ok(),
                "{issuer} -> {jwks}"
            );
        }
        let refused = [
            (
                "https://login.example.com/t/v2.0",
                "http://127.0.0.1:8080/keys",
            ),
            ("https://login.example.com/t/v2.0", "https://localhost/keys"),
            ("https://login.example.com/t/v2.0", "http://[::1]/keys"),
            // Other spellings of this machine (an outside review's finding).
            (
                "https://login.example.com/t/v2.0",
                "https://localhost./keys",
            ),
            (
                "https://login.example.com/t/v2.0",
                "https://keys.localhost/keys",
            ),
            (
                "https://login.example.com/t/v2.0",
                "https://[::ffff:127.0.0.1]/keys",
            ),
            ("https://login.example.com/t/v2.0", "https://0.0.0.0/keys"),
            ("https://login.example.com/t/v2.0", "https://[::]/keys"),
            (
                "https://login.example.com/t/v2.0",
                "http://keys.example.net/keys",
            ),
            ("http://127.0.0.1:7072", "https://keys.example.net/keys"),
            (
                "https://login.example.com/t/v2.0",
                "ftp://keys.example.net/keys",
            ),
        ];
        for (issuer, jwks) in refused {
            assert!(
                check_jwks_uri(&url(issuer), &url(jwks)).is_err(),
                "{issuer} -> {jwks}"
            );
        }
    }
}
