//! Microsoft Entra ID bearer tokens, as the service takes them from app servers with no access key
//! (`docs/protocol/signalr-identity-2026.md` §2.3, `docs/protocol/signalr-service.md` §3).
//!
//! The issuer is a configured stand-in (for local runs, `tools/dev-idp`'s tenant issuer): its keys
//! come from its JWKS over HTTP, found directly or through OpenID Connect discovery. A token must be
//! RS256 with a `kid` from that JWKS, carry exactly the configured `iss`, `aud` =
//! `https://signalr.azure.com` (what the SDK's scope `https://signalr.azure.com/.default` gives) and
//! a live `exp`. Azure decides permissions from role assignments; the stand-in reads them from the
//! token's `roles` claim, so "SignalR App Server" in `roles` plays the assignment of that role.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::app::{AppState, bearer_token, request_host, unauthorized};
use crate::auth::{Audience, MAX_TOKEN_CHARS, TokenError};
use crate::error::ApiError;

/// The audience of Entra tokens for Azure SignalR: the SDK's default scope without `/.default`.
pub const SIGNALR_RESOURCE: &str = "https://signalr.azure.com";

/// Allows the temporary access key (and server connections) but no REST call.
pub const ROLE_APP_SERVER: &str = "SignalR App Server";
/// Allows every REST call and `:generateToken`, but not the temporary access key.
pub const ROLE_REST_API_OWNER: &str = "SignalR REST API Owner";
/// Allows the REST existence checks (GET and HEAD) only.
pub const ROLE_REST_API_READER: &str = "SignalR REST API Reader";
/// Allows everything.
pub const ROLE_SERVICE_OWNER: &str = "SignalR Service Owner";

/// A refetch of the JWKS for an unknown `kid` waits at least this long after the last fetch, so
/// tokens with made-up `kid`s cannot make the emulator hammer the issuer.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one discovery or JWKS request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Where the emulator finds the Entra stand-in: the exact `iss` its tokens carry and, optionally,
/// the JWKS URL (otherwise `{issuer}/.well-known/openid-configuration` names it).
#[derive(Clone, Debug)]
pub struct EntraConfig {
    issuer: String,
    jwks_url: Option<url::Url>,
}

/// Why an Entra configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntraConfigError {
    /// The issuer or JWKS URL is not an absolute `http`/`https` URL.
    #[error("{0} must be an absolute http or https URL")]
    NotAnHttpUrl(&'static str),
}

impl EntraConfig {
    /// Accepts an issuer and an optional JWKS URL that are absolute `http`/`https` URLs; the issuer
    /// is kept verbatim because `iss` is compared exactly, as Entra's verifiers do.
    pub fn new(issuer: &str, jwks_url: Option<&str>) -> Result<Self, EntraConfigError> {
        let is_http = |text: &str| {
            url::Url::parse(text)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        };
        is_http(issuer).ok_or(EntraConfigError::NotAnHttpUrl("the Entra issuer"))?;
        let jwks_url = jwks_url
            .map(|text| is_http(text).ok_or(EntraConfigError::NotAnHttpUrl("the JWKS URL")))
            .transpose()?;
        Ok(Self {
            issuer: issuer.to_owned(),
            jwks_url,
        })
    }

    /// The exact `iss` accepted.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// What an Entra token may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permission {
    /// `GET /api/v1/auth/accessKey`.
    TemporaryKey,
    /// REST GET and HEAD: the existence checks.
    RestRead,
    /// Every other REST call.
    RestWrite,
    /// The emulator-only route that expires every temporary key.
    ExpireTemporaryKeys,
}

impl Permission {
    /// The roles that grant it (built-in roles table, docs/protocol/signalr-identity-2026.md §2.3).
    fn roles(self) -> &'static [&'static str] {
        match self {
            Self::TemporaryKey => &[ROLE_APP_SERVER, ROLE_SERVICE_OWNER],
            Self::RestRead => &[
                ROLE_REST_API_OWNER,
                ROLE_REST_API_READER,
                ROLE_SERVICE_OWNER,
            ],
            Self::RestWrite => &[ROLE_REST_API_OWNER, ROLE_SERVICE_OWNER],
            Self::ExpireTemporaryKeys => &[ROLE_SERVICE_OWNER],
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Self::TemporaryKey => {
                "The identity has no role that allows auth/accessKey/action (SignalR App Server or SignalR Service Owner)."
            }
            Self::RestRead => {
                "The identity has no role that allows this read (SignalR REST API Reader, SignalR REST API Owner or SignalR Service Owner)."
            }
            Self::RestWrite => {
                "The identity has no role that allows this REST call (SignalR REST API Owner or SignalR Service Owner)."
            }
            Self::ExpireTemporaryKeys => {
                "Only SignalR Service Owner may expire the temporary access keys."
            }
        }
    }
}

/// A verified Entra token: who, and the roles it stands in as holding.
#[derive(Debug)]
pub(crate) struct EntraPrincipal {
    /// `oid`, for logs: an object id, not a secret.
    pub(crate) object_id: Option<String>,
    roles: Vec<String>,
}

impl EntraPrincipal {
    /// 403 unless one of the roles grants `permission`.
    pub(crate) fn require(&self, permission: Permission) -> Result<(), ApiError> {
        let granted = self.roles.iter().any(|role| {
            permission
                .roles()
                .iter()
                .any(|allowed| role.eq_ignore_ascii_case(allowed))
        });
        if granted {
            Ok(())
        } else {
            tracing::debug!(object_id = ?self.object_id, ?permission, "refused an identity without the role");
            Err(ApiError::Forbidden(permission.refusal()))
        }
    }
}

/// The issuer's keys as last fetched.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    /// Whether the last fetch failed, so refusals until the next one say why.
    last_fetch_failed: bool,
}

/// Verifies Entra tokens against the configured issuer, fetching its keys over HTTP.
pub(crate) struct EntraVerifier {
    config: EntraConfig,
    validation: Validation,
    /// A Tokio mutex: one fetch at a time, and waiters then find the fresh keys.
    cache: tokio::sync::Mutex<KeyCache>,
}

impl EntraVerifier {
    /// RS256 only, exact issuer, the SignalR audience (with or without a trailing slash), `exp`
    /// and `nbf` checked with the service's clock skew.
    pub(crate) fn new(config: EntraConfig, clock_skew: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[config.issuer.as_str()]);
        let with_slash = format!("{SIGNALR_RESOURCE}/");
        validation.set_audience(&[SIGNALR_RESOURCE, with_slash.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Self {
            config,
            validation,
            cache: tokio::sync::Mutex::new(KeyCache::default()),
        }
    }

    /// Verifies `token` and returns its principal; every failure is a [`TokenError`] (401).
    pub(crate) async fn verify(&self, token: &str) -> Result<EntraPrincipal, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::SignatureKeyNotFound)?;
        let key = self.key(&kid).await?;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(|error| map_error(error.kind()))?
            .claims;
        let roles = match claims.get("roles") {
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(role)) => vec![role.clone()],
            _ => Vec::new(),
        };
        Ok(EntraPrincipal {
            object_id: claims.get("oid").and_then(Value::as_str).map(str::to_owned),
            roles,
        })
    }

    /// The key for `kid`, refetching the JWKS when it is unknown and the last fetch is not recent.
    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        let recent = cache
            .fetched_at
            .is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL);
        if recent {
            return Err(if cache.last_fetch_failed {
                TokenError::KeysUnavailable
            } else {
                TokenError::SignatureKeyNotFound
            });
        }
        let fetched = self.fetch_keys().await;
        cache.fetched_at = Some(Instant::now());
        cache.last_fetch_failed = fetched.is_err();
        match fetched {
            Ok(keys) => cache.keys = keys,
            Err(error) => {
                // Counted as a fetch too, so a dead issuer is not asked on every request; the keys
                // fetched before (if any) stay usable.
                tracing::warn!(issuer = %self.config.issuer, "cannot fetch the Entra issuer's keys: {error:#}");
                return Err(TokenError::KeysUnavailable);
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or(TokenError::SignatureKeyNotFound)
    }

    /// Discovery (when no JWKS URL is configured), then the JWKS; RSA signing keys with a `kid`.
    async fn fetch_keys(&self) -> anyhow::Result<HashMap<String, DecodingKey>> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let jwks_url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery_url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let discovery: Value =
                    serde_json::from_slice(&fetch(&http, &discovery_url).await?)?;
                let named = discovery.get("issuer").and_then(Value::as_str);
                if named != Some(self.config.issuer.as_str()) {
                    anyhow::bail!(
                        "{discovery_url} names the issuer {named:?}, not the configured {:?}",
                        self.config.issuer
                    );
                }
                let jwks_uri = discovery
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow::anyhow!("{discovery_url} has no jwks_uri"))?;
                url::Url::parse(jwks_uri)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        anyhow::anyhow!("{discovery_url}: jwks_uri is not an http(s) URL")
                    })?
            }
        };
        let set: JwkSet = serde_json::from_slice(&fetch(&http, jwks_url.as_str()).await?)?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter(|jwk| {
                matches!(
                    jwk.algorithm,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
                )
            })
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
            })
            .collect();
        tracing::debug!(url = %jwks_url, keys = keys.len(), "fetched the Entra issuer's keys");
        Ok(keys)
    }
}

/// GETs `url` and returns at most [`MAX_DOCUMENT_BYTES`] of a 200 answer.
async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let mut response = http.get(url).send().await?;
    if !response.status().is_success() {
        anyhow::bail!("{url} answered {}", response.status());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            anyhow::bail!("{url} sent more than {MAX_DOCUMENT_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::SignatureKeyNotFound,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::UnsupportedAlgorithm
        }
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::InvalidIssuer,
        ErrorKind::InvalidAudience => TokenError::InvalidAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => TokenError::InvalidIssuer,
            "aud" => TokenError::MissingAudience,
            _ => TokenError::MissingExpiry,
        },
        // Anything else (broken JSON, base64, unknown future kinds) refuses the token as malformed.
        _ => TokenError::Malformed,
    }
}

/// Whether `token` is meant for the Entra path: an RSA-signed JWT. HMAC tokens (access keys and
/// temporary keys) and garbage go to the access-key validator, which explains their refusal.
fn is_entra_token(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|header| {
        matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        )
    })
}

/// Authorizes a REST call: an Entra token (when an issuer is configured) must hold a role for the
/// method (GET and HEAD read, everything else writes; 403 otherwise); any other token is an
/// access-key token for the request URL (docs/protocol/signalr-service.md §3).
pub(crate) async fn authorize_rest(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let token = bearer_token(headers).ok_or_else(|| unauthorized(TokenError::Missing))?;
    if let Some(entra) = &app.entra
        && is_entra_token(token)
    {
        let principal = entra.verify(token).await.map_err(unauthorized)?;
        let permission = if matches!(*method, Method::GET | Method::HEAD) {
            Permission::RestRead
        } else {
            Permission::RestWrite
        };
        return principal.require(permission);
    }
    app.validator
        .verify(
            token,
            request_host(headers),
            Audience::Rest { path: uri.path() },
        )
        .map(|_| ())
        .map_err(unauthorized)
}

/// The verified principal of an Entra bearer token on an emulator-level route (the temporary key
/// and its admin route); 404 when no issuer is configured, so a plain emulator says so clearly.
pub(crate) async fn entra_principal(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<EntraPrincipal, ApiError> {
    let Some(entra) = &app.entra else {
        return Err(ApiError::NotFound {
            error_code: None,
            message: "Microsoft Entra ID is not configured on this emulator; start it with --entra-issuer.",
        });
    };
    let token = bearer_token(headers).ok_or_else(|| unauthorized(TokenError::Missing))?;
    entra.verify(token).await.map_err(unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_built_in_roles_table_says() {
        let principal = |roles: &[&str]| EntraPrincipal {
            object_id: None,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        };
        let table = [
            (ROLE_APP_SERVER, [true, false, false, false]),
            (ROLE_REST_API_OWNER, [false, true, true, false]),
            (ROLE_REST_API_READER, [false, true, false, false]),
            (ROLE_SERVICE_OWNER, [true, true, true, true]),
            ("Contributor", [false, false, false, false]),
        ];
        let permissions = [
            Permission::TemporaryKey,
            Permission::RestRead,
            Permission::RestWrite,
            Permission::ExpireTemporaryKeys,
        ];
        for (role, expected) in table {
            for (permission, allowed) in permissions.iter().zip(expected) {
                assert_eq!(
                    principal(&[role]).require(*permission).is_ok(),
                    allowed,
                    "{role} / {permission:?}"
                );
            }
        }
        assert!(principal(&[]).require(Permission::RestRead).is_err());
        assert!(
            principal(&["signalr service owner"])
                .require(Permission::RestWrite)
                .is_ok(),
            "role names compare ignoring case"
        );
    }

    #[test]
    fn configuration_takes_http_urls_only() {
        assert!(EntraConfig::new("http://localhost:7072/tenant/", None).is_ok());
        assert!(EntraConfig::new("https://sts.windows.net/t/", Some("https://x/keys")).is_ok());
        for (issuer, jwks) in [
            ("localhost:7072", None),
            ("file:///etc/passwd", None),
            ("", None),
            ("http://localhost/", Some("ftp://x/keys")),
        ] {
            assert!(EntraConfig::new(issuer, jwks).is_err(), "{issuer} {jwks:?}");
        }
    }
}
