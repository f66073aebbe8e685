//! Signed anonymous visitors: sites whose visitors never sign in, but whose CDP or decision
//! engine knows a visitor id and wants to message that browser.
//!
//! The engine signs the visitor id with a secret it shares with the operator
//! (`AUTH_ANONYMOUS_SECRET`) as a short-lived HS256 JWT (the format is in the README):
//! `iss` = `AUTH_ANONYMOUS_ISSUER`, `aud` = [`VISITOR_AUDIENCE`], `sub` = the visitor id,
//! `iat` and `exp` with `exp - iat` at most `AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS`. The browser
//! sends it in the `X-Visitor-Token` header or the `visitor_token` query parameter, never in
//! `Authorization`, so it cannot be mistaken for a sign-in token.
//!
//! The user id is `anon:<visitor id>`: signed-in sources refuse ids with that prefix, so a
//! visitor can never share a signed-in user's id, and [`VerifiedUser::is_signed_in`] is false.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::identity::credential::{QueryToken, Scheme, TokenPlace};
use crate::identity::{ANONYMOUS_PREFIX, IdentityError, IdentitySource, VerifiedUser};
use crate::invocation::HttpRequestData;
use crate::names::UserId;
use crate::settings::{ConfigError, Env, MIN_HS256_SECRET_BYTES};

/// The `aud` every visitor token carries: it marks the token's purpose, so no other token
/// signed with the same algorithm can pass for one.
pub const VISITOR_AUDIENCE: &str = "signalr-anonymous-visitor";
/// The header a visitor token may come in.
pub const VISITOR_HEADER: &str = "X-Visitor-Token";
/// The query parameter a visitor token may come in (WebSocket and SSE requests cannot set
/// headers).
pub const VISITOR_QUERY: &str = "visitor_token";
/// Where a visitor token may come from: the bare token in its header, or the query where the
/// function accepts query tokens (negotiate only, as for `access_token`: a token in a URL ends
/// up in access logs, and only the WebSocket negotiate needs it there).
fn visitor_place(query_token: QueryToken) -> TokenPlace {
    TokenPlace {
        header: VISITOR_HEADER,
        scheme: Scheme::Bare,
        query: VISITOR_QUERY,
        query_token,
    }
}
/// Longest visitor token accepted.
const MAX_VISITOR_TOKEN_BYTES: usize = 2 * 1024;
/// Longest visitor id accepted.
const MAX_VISITOR_ID_CHARS: usize = 128;

/// True when the request carries a visitor token: the source then decides.
pub fn presented(request: &HttpRequestData) -> bool {
    visitor_place(QueryToken::Accepted).presented(request)
}

/// A visitor id is 1-128 characters of `A-Z a-z 0-9 . _ ~ -`: no `:`, so no namespace tricks,
/// and nothing a group template or log could misread.
pub fn is_valid_visitor_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_VISITOR_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

/// Verifies visitor tokens.
pub struct VisitorVerifier {
    key: DecodingKey,
    validation: Validation,
    max_lifetime: u64,
    clock_skew: u64,
}

impl VisitorVerifier {
    /// A verifier for the shared secret and issuer.
    pub fn new(settings: &AnonymousSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = settings.clock_skew.as_secs();
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[VISITOR_AUDIENCE]);
        Self {
            key: DecodingKey::from_secret(settings.secret.expose_secret().as_bytes()),
            validation,
            max_lifetime: settings.max_lifetime.as_secs(),
            clock_skew: settings.clock_skew.as_secs(),
        }
    }

    /// Verifies the visitor token of `request`; `query_token` says whether this function
    /// accepts it in the query.
    pub fn verify(
        &self,
        request: &HttpRequestData,
        query_token: QueryToken,
    ) -> Result<VerifiedUser, IdentityError> {
        let token = visitor_token(request, query_token)?;
        self.verify_token(token)
    }

    fn verify_token(&self, token: &str) -> Result<VerifiedUser, IdentityError> {
        let now = jsonwebtoken::get_current_timestamp();
        if token.len() > MAX_VISITOR_TOKEN_BYTES {
            return Err(IdentityError::TooLarge(token.len()));
        }
        // The same header and issuer hardening as app tokens (`jwt.rs`): no critical extension
        // is understood, and an issuer is one string, not an array that merely contains it.
        if super::jwt::names_critical_extensions(token) {
            return Err(IdentityError::VisitorUnusable(
                "its header names critical extensions (`crit`), which are not supported",
            ));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|error| IdentityError::VisitorRejected(error.into_kind()))?;
        let claims = data.claims;
        if !matches!(claims.get("iss"), Some(Value::String(_))) {
            return Err(IdentityError::VisitorUnusable("`iss` must be a string"));
        }
        let number = |name: &str| claims.get(name).and_then(Value::as_u64);
        let (Some(issued_at), Some(expires_at)) = (number("iat"), number("exp")) else {
            return Err(IdentityError::VisitorUnusable(
                "`iat` and `exp` must be whole numbers",
            ));
        };
        if expires_at.saturating_sub(issued_at) > self.max_lifetime {
            return Err(IdentityError::VisitorUnusable(
                "its lifetime (exp - iat) exceeds AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS",
            ));
        }
        // `exp - iat` alone can be satisfied by a token issued far in the future: it would then
        // stay valid until long after its claimed lifetime. Both ends are anchored to now (the
        // second check follows from the first two; it is kept so the bound reads as stated).
        if issued_at > now.saturating_add(self.clock_skew) {
            return Err(IdentityError::VisitorUnusable(
                "`iat` is in the future (beyond AUTH_CLOCK_SKEW_SECONDS)",
            ));
        }
        if expires_at.saturating_sub(now) > self.max_lifetime.saturating_add(self.clock_skew) {
            return Err(IdentityError::VisitorUnusable(
                "it expires later than AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS from now",
            ));
        }
        let visitor_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|id| is_valid_visitor_id(id))
            .ok_or(IdentityError::VisitorUnusable(
                "`sub` must be 1-128 characters of A-Z a-z 0-9 . _ ~ -",
            ))?;
        // The visitor id's alphabet has no `/`, `\` or `%`, and the prefix rules out a dot
        // segment, so the parse only restates the name rules.
        let user_id = UserId::parse(&format!("{ANONYMOUS_PREFIX}{visitor_id}"))
            .map_err(|_| IdentityError::VisitorUnusable("`sub` is not a usable user id"))?;
        // Only the namespaced id and expiry: nothing else the engine wrote is treated as verified
        // identity data.
        let mut verified = Map::new();
        verified.insert("sub".into(), Value::from(user_id.as_str()));
        verified.insert("exp".into(), Value::from(expires_at));
        Ok(VerifiedUser::new(
            user_id,
            verified,
            expires_at,
            IdentitySource::AnonymousVisitor,
        ))
    }
}

/// The one visitor token of the request, by the rule every token follows
/// ([`credential::one_token`](crate::identity::credential::one_token)).
fn visitor_token(
    request: &HttpRequestData,
    query_token: QueryToken,
) -> Result<&str, IdentityError> {
    visitor_place(query_token)
        .token(request)?
        .ok_or(IdentityError::VisitorUnusable("the visitor token is empty"))
}

/// Longest accepted lifetime (`exp - iat`) of a visitor token: they are meant to be short-lived.
const MAX_VISITOR_LIFETIME_SECONDS: u64 = 86_400;

/// Signed anonymous visitors.
#[derive(Debug, Clone)]
pub struct AnonymousSettings {
    /// The secret shared with the engine that signs visitor tokens.
    pub secret: SecretString,
    /// Required `iss` of visitor tokens.
    pub issuer: String,
    /// Longest accepted `exp - iat`.
    pub max_lifetime: Duration,
    /// Leeway for `exp`/`nbf`.
    pub clock_skew: Duration,
}

impl AnonymousSettings {
    /// `AUTH_ANONYMOUS_SECRET`, `AUTH_ANONYMOUS_ISSUER`, `AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS`.
    /// That the secret is no other service's key is checked by `config`.
    pub fn from_env(env: &Env, clock_skew: Duration) -> Result<Self, ConfigError> {
        let secret = env.require(
            "AUTH_ANONYMOUS_SECRET",
            "set it to a random secret of at least 32 bytes shared with the engine that signs visitor tokens",
        )?;
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(ConfigError::new(
                "AUTH_ANONYMOUS_SECRET",
                format!(
                    "is {} bytes; use a random secret of at least {MIN_HS256_SECRET_BYTES} bytes",
                    secret.len()
                ),
            ));
        }
        let issuer = env.require(
            "AUTH_ANONYMOUS_ISSUER",
            "set it to the `iss` the visitor-token engine writes (e.g. `cdp.contoso.example`)",
        )?;
        let max_lifetime = env.seconds(
            "AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS",
            3600,
            MAX_VISITOR_LIFETIME_SECONDS,
        )?;
        if max_lifetime.is_zero() {
            return Err(ConfigError::new(
                "AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS",
                "is 0; visitor tokens need a positive lifetime",
            ));
        }
        Ok(Self {
            secret: SecretString::from(secret),
            issuer,
            max_lifetime,
            clock_skew,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header};
    use secrecy::SecretString;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "insecure-test-visitor-secret-0123456789-abcdef";

    fn verifier() -> VisitorVerifier {
        VisitorVerifier::new(&AnonymousSettings {
            secret: SecretString::from(SECRET),
            issuer: "cdp.test".into(),
            max_lifetime: Duration::from_secs(3600),
            clock_skew: Duration::from_secs(0),
        })
    }

    fn token(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("signs")
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims(sub: &str) -> Value {
        json!({"iss": "cdp.test", "aud": VISITOR_AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 600})
    }

    #[test]
    fn accepts_a_visitor_and_namespaces_the_id() {
        let user = verifier()
            .verify_token(&token(claims("v-123"), SECRET))
            .expect("valid");
        assert_eq!(user.user_id(), "anon:v-123");
        assert!(!user.is_signed_in());
        assert_eq!(user.source(), IdentitySource::AnonymousVisitor);
    }

    #[test]
    fn refuses_a_visitor_token_issued_in_the_future_even_with_a_short_lifetime() {
        let mut future = claims("v");
        future["iat"] = json!(now() + 365 * 86_400);
        future["exp"] = json!(now() + 365 * 86_400 + 600);
        assert!(verifier().verify_token(&token(future, SECRET)).is_err());
        let mut slightly_ahead = claims("v");
        slightly_ahead["iat"] = json!(now() + 30);
        slightly_ahead["exp"] = json!(now() + 630);
        assert!(
            verifier()
                .verify_token(&token(slightly_ahead, SECRET))
                .is_err(),
            "beyond a zero clock skew"
        );
    }

    /// A token with a raw header, signed with `secret` (jsonwebtoken's `Header` cannot carry `crit`).
    fn raw_token(header: Value, claims: Value, secret: &str) -> String {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let encode = |value: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
        };
        let input = format!("{}.{}", encode(&header), encode(&claims));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(input.as_bytes());
        let signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{input}.{signature}")
    }

    #[test]
    fn visitor_tokens_get_the_app_tokens_header_and_issuer_hardening() {
        let plain = json!({"alg": "HS256", "typ": "JWT"});
        assert!(
            verifier()
                .verify_token(&raw_token(plain.clone(), claims("v"), SECRET))
                .is_ok(),
            "the raw helper signs a valid token"
        );
        let critical = json!({"alg": "HS256", "crit": ["x"]});
        assert!(matches!(
            verifier().verify_token(&raw_token(critical, claims("v"), SECRET)),
            Err(IdentityError::VisitorUnusable(_))
        ));
        let mut issuer_array = claims("v");
        issuer_array["iss"] = json!(["cdp.test"]);
        assert!(
            verifier()
                .verify_token(&raw_token(plain, issuer_array, SECRET))
                .is_err()
        );
    }

    #[test]
    fn refuses_forged_stale_and_disguised_visitor_tokens() {
        let mut expired = claims("v");
        expired["iat"] = json!(now() - 4000);
        expired["exp"] = json!(now() - 100);
        let mut too_long = claims("v");
        too_long["exp"] = json!(now() + 7200);
        let mut wrong_aud = claims("v");
        wrong_aud["aud"] = json!("api://chat");
        let mut no_iat = claims("v");
        no_iat.as_object_mut().expect("object").remove("iat");
        let cases = [
            (
                token(claims("v"), "insecure-wrong-secret-0123456789-abcdefghij"),
                "wrong key",
            ),
            (token(expired, SECRET), "expired"),
            (token(too_long, SECRET), "lifetime too long"),
            (token(wrong_aud, SECRET), "wrong audience"),
            (token(no_iat, SECRET), "no iat"),
            (token(claims("anon:alice"), SECRET), "prefixed id"),
            (
                token(claims("alice@contoso.example"), SECRET),
                "email-shaped id",
            ),
            (token(claims(""), SECRET), "empty id"),
        ];
        for (token, description) in cases {
            assert!(verifier().verify_token(&token).is_err(), "{description}");
        }
    }
}
