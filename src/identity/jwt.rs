//! Verification of the caller's JWT.
//!
//! jsonwebtoken's defaults are not enough (only `exp` is required, `nbf` is not checked, `iss`
//! and `aud` only when set), so [`JwtVerifier::new`] builds the `Validation` explicitly: the
//! algorithms come from configuration and never from the token header; `exp`, `iss` and `aud`
//! are required; `nbf` is checked when present.

use base64::Engine;
use jsonwebtoken::{DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::config::{JwtSettings, KeySource};
use crate::identity::jwks::JwksCache;
use crate::identity::{IdentityError, IdentitySource, VerifiedUser};
use crate::names::UserId;
use crate::signalr::connection_string::ConnectionString;

/// Longest token accepted. Real ID/access tokens are 1-3 KB; anything far beyond is an attack on
/// the decoder (huge headers) or a mistake.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

enum Keys {
    Secret(DecodingKey),
    Jwks(Box<JwksCache>),
}

/// Verifies tokens from one issuer with one key source.
pub struct JwtVerifier {
    keys: Keys,
    validation: Validation,
    user_id_claim: String,
    signalr: ConnectionString,
}

impl JwtVerifier {
    /// Builds the verifier from validated settings.
    pub fn new(settings: &JwtSettings, signalr: &ConnectionString) -> anyhow::Result<Self> {
        let keys = match &settings.key_source {
            KeySource::SharedSecret(secret) => {
                Keys::Secret(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
            }
            KeySource::Jwks(url) => Keys::Jwks(Box::new(JwksCache::new(
                crate::identity::jwks::JwksLocation::Url(url.clone()),
                settings.jwks_refresh_interval,
            )?)),
            KeySource::OidcDiscovery(issuer) => Keys::Jwks(Box::new(JwksCache::new(
                crate::identity::jwks::JwksLocation::Discovery(issuer.clone()),
                settings.jwks_refresh_interval,
            )?)),
        };
        let mut validation = Validation::new(settings.algorithms[0]);
        validation.algorithms = settings.algorithms.clone();
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = settings.clock_skew.as_secs();
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        Ok(Self {
            keys,
            validation,
            user_id_claim: settings.user_id_claim.clone(),
            signalr: signalr.clone(),
        })
    }

    /// Verifies `token` and returns its user.
    pub async fn verify(&self, token: &str) -> Result<VerifiedUser, IdentityError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(IdentityError::TooLarge(token.len()));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| IdentityError::Rejected(error.into_kind()))?;
        // jsonwebtoken's `Header` has no `crit` field and ignores it; RFC 7515 §4.1.11 says a
        // recipient that does not understand a critical extension must refuse the token, and
        // this handler understands none.
        if names_critical_extensions(token) {
            return Err(IdentityError::CriticalHeader);
        }
        // Checked before any key lookup, so a token with a foreign algorithm cannot make the
        // JWKS cache refetch.
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(IdentityError::Rejected(
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm,
            ));
        }
        if self.names_the_signalr_service(token) {
            return Err(IdentityError::ServiceTokenReplayed);
        }
        // jsonwebtoken wants one key family per `Validation`; the header's algorithm is already
        // known to be allowed, so validate against exactly that one.
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = match &self.keys {
            Keys::Secret(key) => {
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            }
            Keys::Jwks(cache) => {
                let key = cache.key_for(header.kid.as_deref(), header.alg).await?;
                jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            }
        }
        .map_err(|error| IdentityError::Rejected(error.into_kind()))?;
        let claims = data.claims;
        // jsonwebtoken accepts an `iss` array that contains the expected issuer; an issuer is one
        // string (RFC 7519 §4.1.1), so anything else is refused.
        if !matches!(claims.get("iss"), Some(Value::String(_))) {
            return Err(IdentityError::IssuerNotAString);
        }

        let user_id = claims
            .get(&self.user_id_claim)
            .and_then(Value::as_str)
            .and_then(|id| UserId::parse(id).ok())
            .ok_or_else(|| IdentityError::BadUserId(self.user_id_claim.clone()))?;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map_or(0, |exp| exp as u64);
        Ok(VerifiedUser::new(
            user_id,
            claims,
            expires_at,
            IdentitySource::Jwt,
        ))
    }

    /// True when the (unverified) payload's `aud` names the SignalR Service. Used only to refuse
    /// with a precise reason: a verified token could never carry that audience anyway, since
    /// `AUTH_AUDIENCE` may not name the service.
    fn names_the_signalr_service(&self, token: &str) -> bool {
        let Some(payload) = token.split('.').nth(1) else {
            return false;
        };
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
            return false;
        };
        let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(&bytes) else {
            return false;
        };
        match claims.get("aud") {
            Some(Value::String(aud)) => self.signalr.is_service_audience(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| self.signalr.is_service_audience(aud)),
            _ => false,
        }
    }
}

/// True when the token's (unverified) header has a `crit` member, whatever its value.
fn names_critical_extensions(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<Map<String, Value>>(&bytes)
        .is_ok_and(|header| header.contains_key("crit"))
}
