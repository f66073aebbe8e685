//! Client access tokens for the SignalR Service: checking the binding's token, and issuing one
//! that carries the verified user.
//!
//! The service verifies HS256 over the UTF-8 bytes of the AccessKey
//! (`docs/protocol/signalr-service.md`
//! §2). Tokens are signed here with `hmac`/`sha2` on the raw segments rather than through a JWT
//! library so that the binding's header segment is kept byte for byte, as the issue asks, and
//! so that verification of the binding token is a constant-time comparison on exactly the bytes
//! the host sent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use std::sync::Arc;

use crate::identity::VerifiedUser;
use crate::identity::service_connection::carries_unambiguously;
use crate::signalr::connection_string::ConnectionString;
use crate::signalr::expiry::{AEO_CLAIM, COAE_CLAIM};
use crate::signalr::service_auth::SigningKey;

/// The service SDK refuses tokens longer than this ("AccessToken must not be longer than 4K").
pub const MAX_SERVICE_TOKEN_CHARS: usize = 4096;
/// Lifetime of tokens the handler mints itself, as the extension's default (1 hour).
pub const MINTED_TOKEN_LIFETIME_SECONDS: u64 = 3600;
/// Claim names the SDK renames to `asrs.u.<name>` when they come from user claims.
const RESERVED_CLAIMS: &[&str] = &[
    "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash", "jti", "nonce",
];
/// The user-id claim the service reads first.
pub const USER_ID_CLAIM: &str = "asrs.s.uid";
/// Claims the service's answer to `:refreshAuth` carries that describe the old token, not the
/// connection; a token minted from that answer sets its own.
const TOKEN_ONLY_CLAIMS: &[&str] = &["aud", "exp", "iat", "iss", "nbf"];

/// A client token and when it expires, so negotiate and refresh can tell the client its
/// lifetime (`tokenLifetimeSeconds`) from the very `exp` it carries.
#[derive(Debug)]
pub struct IssuedToken {
    /// The signed token.
    pub token: String,
    /// Its `exp` (unix seconds).
    pub expires_at: u64,
    /// Forwarded claim types the user had but the token does not carry, because a value could
    /// not travel in `X-ASRS-User-Claims` unambiguously (see [`forwarded_claims`]); for the log.
    pub dropped_claims: Vec<String>,
}

impl IssuedToken {
    /// Seconds from `now` until the token expires (0 once it has).
    pub fn lifetime_seconds(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// Why a service token could not be checked or issued. These are configuration or server
/// faults, not the caller's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceTokenError {
    /// The binding token does not parse as a JWT.
    #[error("the binding's access token is not a JWT")]
    Malformed,
    /// The binding token's `alg` is not HS256.
    #[error("the binding's access token uses {0:?}, expected HS256")]
    UnexpectedAlgorithm(String),
    /// The binding token's signature does not verify with the configured AccessKey.
    #[error(
        "the binding's access token is not signed with this AccessKey (does connectionStringSetting name the same setting as the handler reads?)"
    )]
    SignatureMismatch,
    /// The binding token lacks a numeric claim the issued token needs.
    #[error("the binding's access token lacks a numeric `{0}`")]
    MissingClaim(&'static str),
    /// The issued token would exceed the service's 4096-character limit.
    #[error(
        "the issued token would be {0} characters, over the service's 4096 limit (forward fewer claims)"
    )]
    TooLarge(usize),
}

/// A binding token whose signature was checked against the AccessKey.
#[derive(Debug)]
pub struct BindingToken {
    header_segment: String,
    claims: BindingClaims,
}

/// The claims of a binding token that a reissued token copies or checks; the others are never
/// read, so they are skipped rather than kept (BENCHMARKS.md, "Negotiate against the floor").
#[derive(Debug, serde::Deserialize)]
struct BindingClaims {
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    iss: Option<Value>,
}

/// The binding token's header: only `alg` is read.
#[derive(serde::Deserialize)]
struct BindingHeader {
    alg: Option<Value>,
}

impl BindingToken {
    /// The token's `aud`, when it is a string.
    pub fn audience(&self) -> Option<&str> {
        self.claims.aud.as_ref().and_then(Value::as_str)
    }
}

/// Signs and checks client tokens with one key: the AccessKey, or a temporary key whose
/// `KeyId` goes into the header as `kid` (`signalr::service_auth`).
pub struct ServiceTokenSigner<'a> {
    connection: &'a ConnectionString,
    key: Arc<SigningKey>,
}

impl<'a> ServiceTokenSigner<'a> {
    /// A signer for the service `connection` names, with `key` (from
    /// `ServiceAuth::signing_key`).
    pub fn new(connection: &'a ConnectionString, key: Arc<SigningKey>) -> Self {
        Self { connection, key }
    }

    /// Checks that `token` was signed by this AccessKey with HS256 and returns its parts.
    pub fn verify_binding_token(&self, token: &str) -> Result<BindingToken, ServiceTokenError> {
        let mut segments = token.split('.');
        let (Some(header_segment), Some(payload_segment), Some(signature_segment), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(ServiceTokenError::Malformed);
        };
        let header: BindingHeader = decode_segment(header_segment)?;
        match header.alg.as_ref().and_then(Value::as_str) {
            Some("HS256") => {}
            other => {
                return Err(ServiceTokenError::UnexpectedAlgorithm(
                    other.unwrap_or("none").to_owned(),
                ));
            }
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature_segment)
            .map_err(|_| ServiceTokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header_segment.as_bytes());
        mac.update(b".");
        mac.update(payload_segment.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| ServiceTokenError::SignatureMismatch)?;
        Ok(BindingToken {
            header_segment: header_segment.to_owned(),
            claims: decode_segment(payload_segment)?,
        })
    }

    /// The binding's token re-issued for `user`: same header, `aud`, `iat`, `nbf` (and `iss` if
    /// present); `asrs.s.uid` set to the verified id; forwarded claims added; `exp` the earliest
    /// of the binding's, the user credential's and the login's end (`deadline`, which also
    /// becomes `asrs.s.coae`/`asrs.s.aeo`). Every other binding claim is dropped, because it
    /// may come from an unverified `userId`/`idToken` binding expression.
    pub fn reissue(
        &self,
        binding: &BindingToken,
        user: &VerifiedUser,
        forward_claims: &[String],
        deadline: Option<u64>,
    ) -> Result<IssuedToken, ServiceTokenError> {
        let kept = &binding.claims;
        let exp = kept
            .exp
            .as_ref()
            .and_then(Value::as_u64)
            .ok_or(ServiceTokenError::MissingClaim("exp"))?
            .min(user.expires_at())
            .min(deadline.unwrap_or(u64::MAX));
        let aud = kept
            .aud
            .clone()
            .ok_or(ServiceTokenError::MissingClaim("aud"))?;
        let (mut claims, dropped_claims) = user_claims(user, forward_claims);
        insert_deadline(&mut claims, deadline);
        if let Some(nbf) = &kept.nbf {
            claims.insert("nbf".into(), nbf.clone());
        }
        claims.insert("exp".into(), exp.into());
        for (name, value) in [("iat", &kept.iat), ("iss", &kept.iss)] {
            if let Some(value) = value {
                claims.insert(name.into(), value.clone());
            }
        }
        claims.insert("aud".into(), aud);
        Ok(IssuedToken {
            token: self.sign(&binding.header_segment, &claims)?,
            expires_at: exp,
            dropped_claims,
        })
    }

    /// A token minted from the connection string alone, as the extension would mint it: header
    /// `{"alg":"HS256","typ":"JWT"}` (plus `"kid"` for a temporary key, which is how the
    /// service finds it), `aud` without port, hub lower-cased, one hour (capped by the user
    /// credential's expiry and the login's end, `deadline`, which also becomes
    /// `asrs.s.coae`/`asrs.s.aeo`).
    pub fn mint(
        &self,
        hub: &str,
        user: &VerifiedUser,
        forward_claims: &[String],
        deadline: Option<u64>,
        now: u64,
    ) -> Result<IssuedToken, ServiceTokenError> {
        let (mut claims, dropped_claims) = user_claims(user, forward_claims);
        insert_deadline(&mut claims, deadline);
        let exp = user.expires_at().min(deadline.unwrap_or(u64::MAX));
        let mut issued = self.mint_claims(hub, claims, exp, now)?;
        issued.dropped_claims = dropped_claims;
        Ok(issued)
    }

    /// The client token after a refresh, minted from the claims the service answered
    /// `:refreshAuth` with (the connection's claims after the refresh), minus the old token's
    /// `aud`/`exp`/`iat`/`iss`/`nbf`. A claim type given several times becomes an array, as
    /// the service reads arrays. `exp` is no later than `not_after` (the refreshed credential's
    /// end) nor the answer's own `asrs.s.aeo`, so the token never outlives the connection it is
    /// for. A value that could not travel in `X-ASRS-User-Claims` unambiguously is left out
    /// (outside `asrs.*`, which the upstream never reads): the answer should only echo what
    /// [`refresh_claims`] sent, but this token becomes a connection's token on reconnect.
    pub fn mint_refreshed(
        &self,
        hub: &str,
        refreshed: &[(String, String)],
        not_after: u64,
        now: u64,
    ) -> Result<IssuedToken, ServiceTokenError> {
        let mut claims = Map::new();
        for (name, value) in refreshed {
            if TOKEN_ONLY_CLAIMS.contains(&name.as_str()) {
                continue;
            }
            if !name.starts_with("asrs.") && !carries_unambiguously(value) {
                continue;
            }
            match claims.get_mut(name) {
                None => {
                    claims.insert(name.clone(), Value::String(value.clone()));
                }
                Some(Value::Array(items)) => items.push(Value::String(value.clone())),
                Some(first) => {
                    let first = first.take();
                    claims.insert(
                        name.clone(),
                        Value::Array(vec![first, Value::String(value.clone())]),
                    );
                }
            }
        }
        let answered_end = claims
            .get(AEO_CLAIM)
            .and_then(Value::as_str)
            .and_then(|aeo| aeo.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        self.mint_claims(hub, claims, not_after.min(answered_end), now)
    }

    /// Adds `nbf`, `iat`, `aud` and `exp` (one hour, capped by `not_after`) and signs.
    fn mint_claims(
        &self,
        hub: &str,
        mut claims: Map<String, Value>,
        not_after: u64,
        now: u64,
    ) -> Result<IssuedToken, ServiceTokenError> {
        let exp = (now + MINTED_TOKEN_LIFETIME_SECONDS).min(not_after);
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), exp.into());
        claims.insert("iat".into(), now.into());
        claims.insert("aud".into(), self.connection.client_audience(hub).into());
        let header = match self.key.kid() {
            None => URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            Some(kid) => URL_SAFE_NO_PAD
                .encode(serde_json::json!({"alg": "HS256", "kid": kid, "typ": "JWT"}).to_string()),
        };
        Ok(IssuedToken {
            token: self.sign(&header, &claims)?,
            expires_at: exp,
            dropped_claims: Vec::new(),
        })
    }

    fn sign(
        &self,
        header_segment: &str,
        claims: &Map<String, Value>,
    ) -> Result<String, ServiceTokenError> {
        sign_with(&self.key, header_segment, claims)
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.key.mac()
    }
}

/// `asrs.s.coae` and `asrs.s.aeo` (a decimal string, as the SDK writes it), together or not at
/// all.
fn insert_deadline(claims: &mut Map<String, Value>, deadline: Option<u64>) {
    if let Some(deadline) = deadline {
        claims.insert(COAE_CLAIM.into(), "true".into());
        claims.insert(AEO_CLAIM.into(), deadline.to_string().into());
    }
}

/// The claims a refresh sends to the service: `asrs.s.uid`, the forwarded claims (an array as
/// one claim per item, as the service keeps claims as text; the same values negotiate forwards,
/// see [`forwarded_claims`]) and the new deadline, with the forwarded types left out. Always all
/// of them: `:refreshAuth` without `claims` keeps the old ones, so the user check would not run.
pub fn refresh_claims(
    user: &VerifiedUser,
    forward_claims: &[String],
    deadline: u64,
) -> (Vec<(String, String)>, Vec<String>) {
    let (mut claims, dropped) = user_claims(user, forward_claims);
    insert_deadline(&mut claims, Some(deadline));
    let mut pairs = Vec::new();
    for (name, value) in claims {
        match value {
            Value::String(text) => pairs.push((name, text)),
            Value::Array(items) => pairs.extend(items.into_iter().map(|item| match item {
                Value::String(text) => (name.clone(), text),
                other => (name.clone(), other.to_string()),
            })),
            other => pairs.push((name, other.to_string())),
        }
    }
    (pairs, dropped)
}

/// A REST API token for `audience`, valid for `lifetime_seconds`, signed with the AccessKey
/// (docs/protocol/signalr-service.md §3). With a managed identity REST calls carry its Entra
/// token instead (`signalr::service_auth`).
pub fn rest_token(
    key: &SigningKey,
    audience: &str,
    now: u64,
    lifetime_seconds: u64,
) -> Result<String, ServiceTokenError> {
    let mut claims = Map::new();
    claims.insert("nameid".into(), "signalr-identity-handler".into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), (now + lifetime_seconds).into());
    claims.insert("iat".into(), now.into());
    claims.insert("aud".into(), audience.into());
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    sign_with(key, &header, &claims)
}

fn sign_with(
    key: &SigningKey,
    header_segment: &str,
    claims: &Map<String, Value>,
) -> Result<String, ServiceTokenError> {
    // Written once into a buffer of the final size: the signing input is the token's own first
    // two segments, so nothing is encoded or copied twice.
    let payload = serde_json::to_vec(claims).expect("a JSON object always serializes");
    let base64_len = |bytes: usize| bytes.div_ceil(3) * 4;
    let mut token = String::with_capacity(
        header_segment.len() + base64_len(payload.len()) + base64_len(32) + 2,
    );
    token.push_str(header_segment);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let mut mac = key.mac();
    mac.update(token.as_bytes());
    let signature = mac.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    if token.len() > MAX_SERVICE_TOKEN_CHARS {
        return Err(ServiceTokenError::TooLarge(token.len()));
    }
    Ok(token)
}

/// Whether a verified claim value is forwarded into a SignalR token: a string, or a non-empty
/// array of strings (one claim per item on the service), every string one that
/// [`carries_unambiguously`] in `X-ASRS-User-Claims` (no `,`, no control character, not empty,
/// no surrounding whitespace).
///
/// Why: the service echoes the token's claims to the upstream joined with `, `, and the upstream
/// policy reads forwarded types from that header. A value with a comma could smuggle a second
/// claim (`red, roles: admin`); a number, boolean or object has no one text form the service is
/// known to write. Such a claim is left out whole (never a partial array, so the token holds a
/// claim exactly as verified or not at all), the request still succeeds, and the caller of
/// this function logs the type. A policy rule needing it is then unmet on the upstream path:
/// fail closed.
pub fn forwarded_value(value: &Value) -> bool {
    match value {
        Value::String(text) => carries_unambiguously(text),
        Value::Array(items) => {
            !items.is_empty()
                && items
                    .iter()
                    .all(|item| item.as_str().is_some_and(carries_unambiguously))
        }
        _ => false,
    }
}

/// The forwarded claim types the upstream reads back from `X-ASRS-User-Claims`: those written
/// under their own name (a reserved name travels as `asrs.u.<name>`, and `asrs.*` is never read).
pub fn upstream_readable_claims(forward_claims: &[String]) -> Vec<String> {
    forward_claims
        .iter()
        .filter(|name| !RESERVED_CLAIMS.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// Whether a forwarded claim type travels renamed (`asrs.u.<name>`), so the upstream cannot read it.
pub fn is_renamed_claim(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name)
}

/// `asrs.s.uid` plus the forwarded claims (only [`forwarded_value`]s), reserved names renamed
/// `asrs.u.<name>` as the SDK does; and the forwarded types the user had but whose value was
/// left out.
fn user_claims(
    user: &VerifiedUser,
    forward_claims: &[String],
) -> (Map<String, Value>, Vec<String>) {
    let mut claims = Map::new();
    let mut dropped = Vec::new();
    claims.insert(USER_ID_CLAIM.into(), user.user_id().into());
    for name in forward_claims {
        if let Some(value) = user.claim(name) {
            if !forwarded_value(value) {
                dropped.push(name.clone());
                continue;
            }
            let key = if RESERVED_CLAIMS.contains(&name.as_str()) {
                format!("asrs.u.{name}")
            } else {
                name.clone()
            };
            claims.insert(key, value.clone());
        }
    }
    (claims, dropped)
}

/// A token segment: base64url of a JSON object (an array, which serde would also read into a
/// struct, is refused).
fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, ServiceTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ServiceTokenError::Malformed)?;
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ServiceTokenError::Malformed);
    }
    serde_json::from_slice(&bytes).map_err(|_| ServiceTokenError::Malformed)
}

/// The `{url, accessToken}` value of a `signalRConnectionInfo` input (extra fields tolerated).
#[derive(Debug, serde::Deserialize)]
pub struct ConnectionInfo {
    /// Where the client connects.
    pub url: String,
    /// The binding's token.
    #[serde(rename = "accessToken")]
    pub access_token: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload(token: &str) -> Map<String, Value> {
        let segment = token.split('.').nth(1).expect("payload");
        decode_segment(segment).expect("JSON")
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn a_refreshed_token_drops_the_old_token_claims_and_ends_with_the_connection() {
        let connection = ConnectionString::parse(
            "Endpoint=https://x.service.signalr.net;AccessKey=INSECURE-UNIT-TEST-KEY-0123456789;Version=1.0;",
        )
        .expect("valid");
        let signer = ServiceTokenSigner::new(
            &connection,
            Arc::new(SigningKey::access_key_for_tests(
                "INSECURE-UNIT-TEST-KEY-0123456789",
            )),
        );
        let answer = [
            pair("asrs.s.uid", "alice"),
            pair("roles", "a"),
            pair("roles", "b"),
            pair("asrs.s.coae", "true"),
            pair("asrs.s.aeo", "1500"),
            pair("aud", "https://elsewhere/client/?hub=other"),
            pair("exp", "99999999999"),
            pair("iat", "1"),
            pair("iss", "someone"),
            pair("nbf", "1"),
        ];
        let issued = signer
            .mint_refreshed("Chat", &answer, 2000, 1000)
            .expect("minted");
        assert_eq!(issued.expires_at, 1500, "no later than the answer's aeo");
        assert_eq!(issued.lifetime_seconds(1000), 500);
        let claims = payload(&issued.token);
        assert_eq!(
            Value::Object(claims),
            json!({
                "asrs.s.uid": "alice",
                "roles": ["a", "b"],
                "asrs.s.coae": "true",
                "asrs.s.aeo": "1500",
                "nbf": 1000,
                "exp": 1500,
                "iat": 1000,
                "aud": "https://x.service.signalr.net/client/?hub=chat",
            })
        );
        // The credential's own end wins when it is earlier.
        let earlier = signer
            .mint_refreshed("chat", &answer, 1200, 1000)
            .expect("minted");
        assert_eq!(earlier.expires_at, 1200);
    }

    #[test]
    fn refresh_claims_always_name_the_user_and_the_deadline_as_text() {
        let user = VerifiedUser::for_tests(
            "alice",
            json!({"roles": ["a", "b"], "level": 3, "team": "red", "bio": "red, roles: admin"}),
        );
        let forward = [
            "roles".to_owned(),
            "level".to_owned(),
            "team".to_owned(),
            "bio".to_owned(),
        ];
        let (claims, dropped) = refresh_claims(&user, &forward, 1700);
        assert_eq!(
            claims,
            [
                pair("asrs.s.uid", "alice"),
                pair("roles", "a"),
                pair("roles", "b"),
                pair("team", "red"),
                pair("asrs.s.coae", "true"),
                pair("asrs.s.aeo", "1700"),
            ]
        );
        assert_eq!(dropped, ["level", "bio"]);
        assert_eq!(refresh_claims(&user, &[], 1700).0.len(), 3);
    }

    #[test]
    fn only_values_the_upstream_header_carries_unambiguously_are_forwarded() {
        for good in [json!("red"), json!(["a", "b c"]), json!("a: b")] {
            assert!(forwarded_value(&good), "{good}");
        }
        for bad in [
            json!("red, roles: admin"),
            json!("a,b"),
            json!(["a", "b, roles: admin"]),
            json!(["a", 1]),
            json!([]),
            json!(""),
            json!(" red"),
            json!("r\ned"),
            json!(3),
            json!(true),
            json!({"a": "b"}),
        ] {
            assert!(!forwarded_value(&bad), "{bad}");
        }
        let connection = ConnectionString::parse(
            "Endpoint=https://x.service.signalr.net;AccessKey=INSECURE-UNIT-TEST-KEY-0123456789;Version=1.0;",
        )
        .expect("valid");
        let user = VerifiedUser::for_tests(
            "alice",
            json!({"team": "red, roles: admin", "roles": ["reader", "x,y"], "name": "Alice"}),
        );
        let forward = ["team".to_owned(), "roles".to_owned(), "name".to_owned()];
        let key = Arc::new(SigningKey::access_key_for_tests(
            "INSECURE-UNIT-TEST-KEY-0123456789",
        ));
        let issued = ServiceTokenSigner::new(&connection, Arc::clone(&key))
            .mint("chat", &user, &forward, None, 1000)
            .expect("minted");
        assert_eq!(issued.dropped_claims, ["team", "roles"]);
        let claims = payload(&issued.token);
        assert_eq!(claims.get("name"), Some(&json!("Alice")));
        assert!(!claims.contains_key("team") && !claims.contains_key("roles"));
        // A refreshed token leaves such a value out as well.
        let refreshed = ServiceTokenSigner::new(&connection, key)
            .mint_refreshed(
                "chat",
                &[
                    pair("asrs.s.uid", "alice"),
                    pair("team", "red, roles: admin"),
                ],
                2000,
                1000,
            )
            .expect("minted");
        assert!(!payload(&refreshed.token).contains_key("team"));
    }

    #[test]
    fn reserved_names_are_not_read_back_by_the_upstream() {
        let forward = ["team".to_owned(), "nonce".to_owned(), "aud".to_owned()];
        assert_eq!(upstream_readable_claims(&forward), ["team"]);
        assert!(is_renamed_claim("nonce") && !is_renamed_claim("team"));
    }
}
