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
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sha2::Sha256;

use std::sync::Arc;

use crate::identity::VerifiedUser;
use crate::signalr::connection_string::ConnectionString;
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
    claims: Map<String, Value>,
}

impl BindingToken {
    /// The token's `aud`, when it is a string.
    pub fn audience(&self) -> Option<&str> {
        self.claims.get("aud").and_then(Value::as_str)
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
        let header: Map<String, Value> = decode_segment(header_segment)?;
        match header.get("alg").and_then(Value::as_str) {
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
    /// present); `asrs.s.uid` set to the verified id; forwarded claims added; `exp` the earlier of
    /// the binding's and the user credential's. Every other binding claim is dropped, because it
    /// may come from an unverified `userId`/`idToken` binding expression.
    pub fn reissue(
        &self,
        binding: &BindingToken,
        user: &VerifiedUser,
        forward_claims: &[String],
    ) -> Result<String, ServiceTokenError> {
        let numeric = |name: &'static str| {
            binding
                .claims
                .get(name)
                .and_then(Value::as_u64)
                .ok_or(ServiceTokenError::MissingClaim(name))
        };
        let exp = numeric("exp")?.min(user.expires_at());
        let mut claims = user_claims(user, forward_claims);
        for name in ["nbf"] {
            if let Some(value) = binding.claims.get(name) {
                claims.insert(name.to_owned(), value.clone());
            }
        }
        claims.insert("exp".into(), exp.into());
        for name in ["iat", "iss"] {
            if let Some(value) = binding.claims.get(name) {
                claims.insert(name.to_owned(), value.clone());
            }
        }
        let aud = binding
            .claims
            .get("aud")
            .cloned()
            .ok_or(ServiceTokenError::MissingClaim("aud"))?;
        claims.insert("aud".into(), aud);
        self.sign(&binding.header_segment, &claims)
    }

    /// A token minted from the connection string alone, as the extension would mint it: header
    /// `{"alg":"HS256","typ":"JWT"}` (plus `"kid"` for a temporary key, which is how the
    /// service finds it), `aud` without port, hub lower-cased, one hour (capped by the user
    /// credential's expiry).
    pub fn mint(
        &self,
        hub: &str,
        user: &VerifiedUser,
        forward_claims: &[String],
        now: u64,
    ) -> Result<String, ServiceTokenError> {
        let mut claims = user_claims(user, forward_claims);
        claims.insert("nbf".into(), now.into());
        claims.insert(
            "exp".into(),
            (now + MINTED_TOKEN_LIFETIME_SECONDS)
                .min(user.expires_at())
                .into(),
        );
        claims.insert("iat".into(), now.into());
        claims.insert("aud".into(), self.connection.client_audience(hub).into());
        let header = match self.key.kid() {
            None => URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            Some(kid) => URL_SAFE_NO_PAD
                .encode(serde_json::json!({"alg": "HS256", "kid": kid, "typ": "JWT"}).to_string()),
        };
        self.sign(&header, &claims)
    }

    fn sign(
        &self,
        header_segment: &str,
        claims: &Map<String, Value>,
    ) -> Result<String, ServiceTokenError> {
        sign_with(&self.key, header_segment, claims)
    }

    fn mac(&self) -> Hmac<Sha256> {
        mac(&self.key)
    }
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
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let mut mac = mac(key);
    mac.update(header_segment.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let token = format!("{header_segment}.{payload}.{signature}");
    if token.len() > MAX_SERVICE_TOKEN_CHARS {
        return Err(ServiceTokenError::TooLarge(token.len()));
    }
    Ok(token)
}

fn mac(key: &SigningKey) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    Hmac::<Sha256>::new_from_slice(key.secret().expose_secret().as_bytes())
        .expect("HMAC takes keys of any length")
}

/// `asrs.s.uid` plus the forwarded claims, reserved names renamed `asrs.u.<name>` as the SDK does.
fn user_claims(user: &VerifiedUser, forward_claims: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert(USER_ID_CLAIM.into(), user.user_id().into());
    for name in forward_claims {
        if let Some(value) = user.claim(name) {
            let key = if RESERVED_CLAIMS.contains(&name.as_str()) {
                format!("asrs.u.{name}")
            } else {
                name.clone()
            };
            claims.insert(key, value.clone());
        }
    }
    claims
}

fn decode_segment(segment: &str) -> Result<Map<String, Value>, ServiceTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ServiceTokenError::Malformed)?;
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
