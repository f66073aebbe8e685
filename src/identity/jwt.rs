//! Verification of the caller's JWT.
//!
//! jsonwebtoken's defaults are not enough (only `exp` is required, `nbf` is not checked, `iss`
//! and `aud` only when set), so [`JwtVerifier::new`] builds the `Validation` explicitly: the
//! algorithms come from configuration and never from the token header; `exp`, `iss` and `aud`
//! are required; `nbf` is checked when present.
//!
//! jsonwebtoken reports a failed claim check as a bare kind (`InvalidIssuer`, `InvalidAudience`,
//! `ExpiredSignature`), which tells an operator nothing about *which* issuer or audience came in.
//! [`JwtVerifier::explain`] turns those kinds into refusals that name the token's value and the
//! configured ones (quoted with `{:?}`, since the token is caller text), so a 401 in the log can be
//! diagnosed without decoding the token by hand. The token itself is never logged.

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use url::Url;

use crate::identity::jwks::{HostClass, JwksCache};
use crate::identity::{Claims, IdentityError, IdentitySource, VerifiedUser};
use crate::names::UserId;
use crate::settings::{ConfigError, Env, MIN_HS256_SECRET_BYTES, comma_list};

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
    /// The shared checks (the refusals read its leeway).
    validation: Validation,
    /// One `Validation` per allowed algorithm, built here once: jsonwebtoken wants one key
    /// family per `Validation`, and cloning one per request (its issuer, audience and
    /// required-claim sets) was a measurable share of negotiate's allocations (BENCHMARKS.md).
    per_algorithm: Vec<(Algorithm, Validation)>,
    user_id_claim: String,
    service: ServiceAudience,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl JwtVerifier {
    /// Builds the verifier from validated settings.
    pub fn new(settings: &JwtSettings, service: &ServiceAudience) -> anyhow::Result<Self> {
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
        validation.set_issuer(&settings.issuers);
        validation.set_audience(&settings.audiences);
        let per_algorithm = validation
            .algorithms
            .iter()
            .map(|&algorithm| {
                let mut only = validation.clone();
                only.algorithms = vec![algorithm];
                (algorithm, only)
            })
            .collect();
        Ok(Self {
            keys,
            validation,
            per_algorithm,
            user_id_claim: settings.user_id_claim.clone(),
            service: service.clone(),
            issuers: settings.issuers.clone(),
            audiences: settings.audiences.clone(),
        })
    }

    /// Verifies `token` and returns its user.
    pub async fn verify(&self, token: &str) -> Result<VerifiedUser, IdentityError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(IdentityError::TooLarge(token.len()));
        }
        let header = JoseHeader::read(token).map_err(IdentityError::Rejected)?;
        // jsonwebtoken's `Header` reads `crit` but does not act on it; RFC 7515 §4.1.11 says a
        // recipient that does not understand a critical extension must refuse the token, and
        // this handler understands none.
        if header.critical {
            return Err(IdentityError::CriticalHeader);
        }
        // Checked before any key lookup, so a token with a foreign algorithm cannot make the
        // JWKS cache refetch.
        let Some(validation) = self
            .per_algorithm
            .iter()
            .find_map(|(algorithm, validation)| (*algorithm == header.alg).then_some(validation))
        else {
            return Err(IdentityError::Rejected(
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm,
            ));
        };
        // jsonwebtoken wants one key family per `Validation`; the header's algorithm is already
        // known to be allowed, so validate against exactly that one.
        let data = match &self.keys {
            Keys::Secret(key) => jsonwebtoken::decode::<Claims>(token, key, validation),
            Keys::Jwks(cache) => {
                let key = cache
                    .key_for(header.kid.as_deref(), header.alg)
                    .await
                    .map_err(|error| self.replayed_or(token, error))?;
                jsonwebtoken::decode::<Claims>(token, &key, validation)
            }
        }
        .map_err(|error| self.replayed_or(token, self.explain(error.into_kind(), token)))?;
        let claims = data.claims;
        if self.verified_audience_names_the_service(&claims) {
            return Err(IdentityError::ServiceTokenReplayed);
        }
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

    /// The refusal for a failed `decode`: claim checks become refusals naming the token's value
    /// and the configured ones; other kinds stay jsonwebtoken's. Claim checks run after the
    /// signature check, so the values named here were signed by a trusted key.
    fn explain(&self, kind: jsonwebtoken::errors::ErrorKind, token: &str) -> IdentityError {
        use jsonwebtoken::errors::ErrorKind;
        let claims = unverified_claims(token).unwrap_or_default();
        let skew = self.validation.leeway;
        let now = jsonwebtoken::get_current_timestamp();
        let number = |name: &str| claims.get(name).and_then(Value::as_f64).map(|n| n as u64);
        match kind {
            ErrorKind::InvalidIssuer => IdentityError::WrongIssuer {
                actual: claims.get("iss").and_then(Value::as_str).map(str::to_owned),
                expected: self.issuers.clone(),
            },
            ErrorKind::InvalidAudience => IdentityError::WrongAudience {
                actual: audiences(claims.get("aud")).map(str::to_owned).collect(),
                expected: self.audiences.clone(),
            },
            ErrorKind::ExpiredSignature => IdentityError::Expired {
                seconds_ago: number("exp").map_or(0, |exp| now.saturating_sub(exp)),
                skew,
            },
            ErrorKind::ImmatureSignature => IdentityError::NotYetValid {
                seconds_ahead: number("nbf").map_or(0, |nbf| nbf.saturating_sub(now)),
                skew,
            },
            other => IdentityError::Rejected(other),
        }
    }

    /// `error`, unless the refused token's (unverified) `aud` names the SignalR Service: then
    /// the precise reason, a service token replayed at negotiate. A verified token is checked
    /// on its verified claims instead ([`Self::verified_audience_names_the_service`]), so the
    /// accepted path does not decode the payload a second time (BENCHMARKS.md, "Negotiate
    /// against the floor").
    fn replayed_or(&self, token: &str, error: IdentityError) -> IdentityError {
        if self.names_the_signalr_service(token) {
            IdentityError::ServiceTokenReplayed
        } else {
            error
        }
    }

    /// True when a verified token's `aud` also names the SignalR Service. One of its audiences
    /// is in `AUTH_AUDIENCE`, which may not name the service (start-up check), but an `aud` array
    /// may carry others beside it; only those are parsed, so a token whose audiences are all
    /// configured ones (the usual case) costs no URL parse.
    fn verified_audience_names_the_service(&self, claims: &Claims) -> bool {
        audiences(claims.get("aud"))
            .any(|aud| !self.audiences.iter().any(|ours| ours == aud) && self.service.contains(aud))
    }

    /// True when the (unverified) payload's `aud` names the SignalR Service.
    fn names_the_signalr_service(&self, token: &str) -> bool {
        unverified_claims(token).is_some_and(|claims| {
            audiences(claims.get("aud")).any(|aud| self.service.contains(aud))
        })
    }
}

/// The SignalR Service's own audience (its endpoint, any path): the service issues client tokens
/// for itself with it, and no app token may carry it. Built by `config` from the connection string.
#[derive(Debug, Clone)]
pub struct ServiceAudience {
    scheme: String,
    host: String,
}

impl ServiceAudience {
    /// The audience of the service at `endpoint`.
    pub fn new(endpoint: &Url) -> Self {
        Self {
            scheme: endpoint.scheme().to_owned(),
            host: endpoint.host_str().unwrap_or_default().to_ascii_lowercase(),
        }
    }

    /// True when `audience` names this service (any path), whatever its port or case.
    pub fn contains(&self, audience: &str) -> bool {
        let Ok(url) = Url::parse(audience) else {
            return false;
        };
        url.scheme() == self.scheme
            && url.host_str().map(str::to_ascii_lowercase).as_deref() == Some(self.host.as_str())
    }
}

/// The token's payload, decoded but not verified: only for naming values in a refusal.
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A token's audiences: its `aud` string, or the strings of its `aud` array (RFC 7519 §4.1.3
/// allows both).
fn audiences(aud: Option<&Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match aud {
        Some(Value::String(aud)) => (Some(aud.as_str()), None),
        Some(Value::Array(auds)) => (None, Some(auds.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// What the handler reads from an app token's header before verifying it, in one pass: the
/// algorithm (which `Validation`, so which key family), the key id (which JWKS key) and whether
/// a `crit` member is present, whatever its value. `jsonwebtoken::decode` reads the whole
/// header again, so anything else wrong with it is still refused there; this pass replaced a
/// `decode_header` and a separate `crit` scan (two base64 decodes and two parses, one of them
/// serde's buffered `flatten` of jsonwebtoken's `Header`). One consequence: a header only
/// `decode` refuses (a private member that is not a string, a malformed `jwk`) gets as far as
/// the JWKS key lookup first, so its refusal may name the key (an unknown `kid`, keys
/// unavailable) rather than the header; the lookup's fetch is rate-limited, and any unknown
/// `kid` could already cause one.
struct JoseHeader {
    alg: Algorithm,
    kid: Option<String>,
    critical: bool,
}

impl JoseHeader {
    /// The header segment as jsonwebtoken finds it (before the last two dots), decoded and read;
    /// its errors are jsonwebtoken's kinds, so a refusal reads as before. A repeated `alg` or
    /// `kid` is refused (RFC 7515 §4: names must be unique, or only the last one used).
    fn read(token: &str) -> Result<Self, jsonwebtoken::errors::ErrorKind> {
        use jsonwebtoken::errors::ErrorKind;
        let segment = token
            .rsplit_once('.')
            .and_then(|(message, _signature)| message.rsplit_once('.'))
            .map(|(header, _payload)| header)
            .ok_or(ErrorKind::InvalidToken)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(ErrorKind::Base64)?;
        serde_json::from_slice(&bytes).map_err(|error| ErrorKind::Json(std::sync::Arc::new(error)))
    }
}

impl<'de> serde::Deserialize<'de> for JoseHeader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JoseHeader;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JOSE header object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JoseHeader, A::Error> {
                use serde::de::Error;
                let (mut alg, mut kid, mut critical) = (None, None, false);
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*key {
                        "alg" if alg.is_some() => return Err(A::Error::duplicate_field("alg")),
                        "alg" => alg = Some(map.next_value::<Algorithm>()?),
                        "kid" if kid.is_some() => return Err(A::Error::duplicate_field("kid")),
                        "kid" => kid = Some(map.next_value::<Option<String>>()?),
                        other => {
                            critical |= other == "crit";
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(JoseHeader {
                    alg: alg.ok_or_else(|| A::Error::missing_field("alg"))?,
                    kid: kid.flatten(),
                    critical,
                })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// True when the token's (unverified) header has a `crit` member, whatever its value. For
/// visitor tokens, which get the same header hardening as app tokens ([`JoseHeader`]).
pub(super) fn names_critical_extensions(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<HasCrit>(&bytes).is_ok_and(|HasCrit(found)| found)
}

/// Whether a JSON object has a `crit` member (escaped spellings included; any number of
/// them), read without building the object: the answer `Map::contains_key("crit")` gave, for
/// every input, at a fraction of the cost. Not an object, or not JSON: an error.
struct HasCrit(bool);

impl<'de> serde::Deserialize<'de> for HasCrit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HasCrit;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JOSE header object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HasCrit, A::Error> {
                let mut found = false;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    found |= key == "crit";
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(HasCrit(found))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// How the caller's JWT is verified.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Accepted `iss` values (`AUTH_ISSUER`, a comma list): a token's `iss` must be one of them.
    /// Several are for a provider that issues two forms for one app (Entra v1 and v2 tokens).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (`AUTH_AUDIENCE`, a comma list): one of the token's audiences must be
    /// among them. Entra apps commonly see both `api://<client-id>` and the bare client id.
    pub audiences: Vec<String>,
    /// Where verification keys come from.
    pub key_source: KeySource,
    /// Allowed algorithms; the token header's `alg` must be one of them.
    pub algorithms: Vec<Algorithm>,
    /// Claim that holds the user id.
    pub user_id_claim: String,
    /// Leeway for `exp` and `nbf`.
    pub clock_skew: Duration,
    /// Minimum time between two JWKS fetches triggered by unknown `kid`s.
    pub jwks_refresh_interval: Duration,
}

/// Where the keys that verify caller tokens come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A shared secret (HS256/384/512).
    SharedSecret(SecretString),
    /// A JWKS document at a fixed URL.
    Jwks(Url),
    /// OIDC discovery: `{issuer}/.well-known/openid-configuration` names the JWKS.
    OidcDiscovery(Url),
}

impl JwtSettings {
    /// `AUTH_ISSUER`, `AUTH_AUDIENCE`, the key source (`AUTH_HS256_SECRET`, `AUTH_JWKS_URL` or
    /// discovery from the issuer), `AUTH_ALGORITHMS`, `AUTH_USER_ID_CLAIM`,
    /// `AUTH_JWKS_REFRESH_SECONDS`. That the audience and secret are not the SignalR Service's
    /// is checked by `config`, which knows the service.
    pub fn from_env(env: &Env, clock_skew: Duration) -> Result<Self, ConfigError> {
        let issuers = required_list(
            env,
            "AUTH_ISSUER",
            "set it to the `iss` your identity provider writes into access tokens, e.g. https://login.microsoftonline.com/<tenant>/v2.0 (docs/providers.md)",
        )?;
        let audiences = required_list(
            env,
            "AUTH_AUDIENCE",
            "set it to the `aud` your identity provider writes into access tokens for this app (its client id or API URI; docs/providers.md)",
        )?;
        let key_source = match (env.get("AUTH_HS256_SECRET"), env.get("AUTH_JWKS_URL")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "AUTH_HS256_SECRET",
                    "and AUTH_JWKS_URL are both set; set exactly one key source (or neither, for OIDC discovery from AUTH_ISSUER)",
                ));
            }
            (Some(secret), None) => {
                if secret.len() < MIN_HS256_SECRET_BYTES {
                    return Err(ConfigError::new(
                        "AUTH_HS256_SECRET",
                        format!("is {} bytes; use a random secret of at least {MIN_HS256_SECRET_BYTES} bytes", secret.len()),
                    ));
                }
                KeySource::SharedSecret(SecretString::from(secret))
            }
            (None, Some(url)) => KeySource::Jwks(parse_fetch_url("AUTH_JWKS_URL", &url)?),
            (None, None) if issuers.len() > 1 => {
                return Err(ConfigError::new(
                    "AUTH_ISSUER",
                    "lists several issuers, so keys cannot be discovered from one of them; set AUTH_JWKS_URL (the key set every listed issuer signs with)",
                ));
            }
            (None, None) => KeySource::OidcDiscovery(
                parse_fetch_url("AUTH_ISSUER", &issuers[0]).map_err(|error| {
                    ConfigError::new(
                        "AUTH_ISSUER",
                        format!("{}; with neither AUTH_HS256_SECRET nor AUTH_JWKS_URL set, keys are discovered from the issuer URL", error.message()),
                    )
                })?,
            ),
        };

        let algorithms = parse_algorithms(env.get("AUTH_ALGORITHMS"), &key_source)?;
        let user_id_claim = env
            .get("AUTH_USER_ID_CLAIM")
            .unwrap_or_else(|| "sub".to_owned());
        // At least one second: with no floor, every token with a random `kid` would cost one fetch.
        let jwks_refresh_interval = env.seconds("AUTH_JWKS_REFRESH_SECONDS", 30, 86_400)?;
        if jwks_refresh_interval.is_zero() {
            return Err(ConfigError::new(
                "AUTH_JWKS_REFRESH_SECONDS",
                "must be at least 1: it limits how often tokens with unknown key ids make the handler fetch the JWKS",
            ));
        }
        Ok(Self {
            issuers,
            audiences,
            key_source,
            algorithms,
            user_id_claim,
            clock_skew,
            jwks_refresh_interval,
        })
    }
}

/// A required comma list: at least one value, each trimmed, duplicates dropped.
fn required_list(env: &Env, setting: &str, fix: &str) -> Result<Vec<String>, ConfigError> {
    let value = env.require(setting, fix)?;
    let mut values: Vec<String> = Vec::new();
    for item in comma_list(&value) {
        if !values.iter().any(|known| known == item) {
            values.push(item.to_owned());
        }
    }
    if values.is_empty() {
        return Err(ConfigError::new(setting, format!("lists no value; {fix}")));
    }
    Ok(values)
}

/// A URL the handler fetches keys from: https, or http only to a loopback host (local dev).
fn parse_fetch_url(setting: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|_| ConfigError::new(setting, format!("`{value}` is not an absolute URL")))?;
    let loopback = HostClass::of(&url) == HostClass::Loopback;
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(ConfigError::new(
            setting,
            format!("`{value}` must be an https URL (plain http is accepted only for localhost)"),
        )),
    }
}

fn parse_algorithms(
    value: Option<String>,
    key_source: &KeySource,
) -> Result<Vec<Algorithm>, ConfigError> {
    let symmetric = matches!(key_source, KeySource::SharedSecret(_));
    let Some(value) = value else {
        return Ok(vec![if symmetric {
            Algorithm::HS256
        } else {
            Algorithm::RS256
        }]);
    };
    let mut algorithms = Vec::new();
    for name in comma_list(&value) {
        let algorithm: Algorithm = name.parse().map_err(|_| {
            ConfigError::new(
                "AUTH_ALGORITHMS",
                format!("`{name}` is not a supported algorithm (use HS256/HS384/HS512 with a secret; RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA with JWKS)"),
            )
        })?;
        let is_hmac = matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        if is_hmac != symmetric {
            return Err(ConfigError::new(
                "AUTH_ALGORITHMS",
                if symmetric {
                    format!(
                        "`{name}` needs public keys, but the key source is AUTH_HS256_SECRET; list only HS256/HS384/HS512"
                    )
                } else {
                    format!(
                        "`{name}` is an HMAC algorithm, but keys come from JWKS; mixing them allows algorithm confusion"
                    )
                },
            ));
        }
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    if algorithms.is_empty() {
        return Err(ConfigError::new(
            "AUTH_ALGORITHMS",
            "lists no algorithm; remove it for the default or list at least one",
        ));
    }
    Ok(algorithms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass header read agrees with jsonwebtoken's `decode_header` (the algorithm and key
    /// id it finds, or that the header is refused) and with the `crit` check, except that a
    /// repeated `alg` or `kid` is refused outright.
    #[test]
    fn the_one_pass_header_read_agrees_with_jsonwebtoken() {
        let headers = [
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"typ":"JWT","kid":"k1","alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":null}"#,
            r#"{"alg":"ES256","kid":"esc"}"#,
            r#"{"alg":"HS256","crit":["b64"]}"#,
            r#"{"alg":"HS256","crit":["b64"]}"#,
            r#"{"alg":"HS256","crit":null}"#,
            r#"{"alg":"none"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":1}"#,
            r#"{"kid":"k1"}"#,
            r#"{"alg":"HS256","kid":7}"#,
            r#"["HS256"]"#,
            r#"{"alg":"HS256""#,
            r#"{"alg":"HS256"} trailing"#,
            "not json",
        ];
        for header in headers {
            let token = format!(
                "{}.e30.sig",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header)
            );
            let ours = JoseHeader::read(&token);
            match jsonwebtoken::decode_header(&token) {
                Ok(theirs) => {
                    let ours = ours.unwrap_or_else(|error| panic!("{header}: {error:?}"));
                    assert_eq!(ours.alg, theirs.alg, "{header}");
                    assert_eq!(ours.kid, theirs.kid, "{header}");
                    assert_eq!(ours.critical, names_critical_extensions(&token), "{header}");
                }
                Err(_) => assert!(ours.is_err(), "{header} is refused by jsonwebtoken"),
            }
        }
        // jsonwebtoken's `Header` keeps unknown members as strings only, so it refuses this one;
        // the one-pass read does not need to, because `decode` reads the header again.
        let nested = r#"{"alg":"HS256","x":{"alg":"RS256","crit":true}}"#;
        let secret = b"insecure-unit-test-secret-0123456789";
        let token = {
            let message = format!(
                "{}.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nested),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"a"}"#)
            );
            let signature = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &jsonwebtoken::EncodingKey::from_secret(secret),
                Algorithm::HS256,
            )
            .expect("signs");
            format!("{message}.{signature}")
        };
        let read = JoseHeader::read(&token).expect("read in one pass");
        assert!(read.alg == Algorithm::HS256 && !read.critical);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        assert!(
            jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_secret(secret), &validation)
                .is_err(),
            "decode refuses the header it cannot hold"
        );
        for repeated in [
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"b"}"#,
        ] {
            let token = format!(
                "{}.e30.sig",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(repeated)
            );
            assert!(JoseHeader::read(&token).is_err(), "{repeated}");
        }
        for malformed in ["", "abc", "a.b", "!!.e30.sig", "a.b.c.d"] {
            assert!(JoseHeader::read(malformed).is_err(), "{malformed:?}");
        }
    }

    /// The streaming `crit` check answers exactly what building the header as a map did.
    #[test]
    fn the_crit_check_agrees_with_a_full_parse() {
        let headers = [
            r#"{"alg":"HS256","crit":["b64"]}"#,
            r#"{"alg":"HS256","cr\u0069t":["b64"]}"#,
            r#"{"crit":1,"crit":2}"#,
            r#"{"alg":"HS256","x":{"crit":true}}"#,
            r#"{"alg":"HS256"}"#,
            r#"["crit"]"#,
            r#"{"crit":["b64"]"#,
            r#"{"alg":"HS256","crit":["b64"]} trailing"#,
            "not json",
        ];
        for header in headers {
            let token = format!(
                "{}.e30.sig",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header)
            );
            let full = serde_json::from_str::<Map<String, Value>>(header)
                .is_ok_and(|map| map.contains_key("crit"));
            assert_eq!(names_critical_extensions(&token), full, "{header}");
        }
    }
}
