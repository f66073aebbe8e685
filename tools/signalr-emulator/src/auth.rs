//! Access-token checks for clients and REST callers, as the service does them
//! (docs/protocol/signalr-service.md §2.3, §3).
//!
//! Tokens are HMAC-signed with an access key's UTF-8 bytes; `kid` is ignored because the SDKs fill it with a
//! per-process hash (docs/protocol/signalr-service.md §2.1), except a `kid` starting `t-`: that
//! names a temporary access key
//! (`crate::keys`), which alone may verify it, and only for client tokens. With local auth disabled only
//! temporary keys verify. `exp` is required, `nbf`, `iat` and `iss` are ignored, and `aud` is compared
//! after normalisation: scheme and host (port ignored), path without trailing slash, and for clients the hub.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::keys::{TEMPORARY_KEY_ID_PREFIX, TemporaryKeys};
use crate::names::HubName;

/// Longest token accepted; beyond the SDK's 4 KB limit, within the service's 16 KB header limit
/// (docs/protocol/signalr-service.md §2.1).
pub(crate) const MAX_TOKEN_CHARS: usize = 16 * 1024;

/// What the token must be for.
pub(crate) enum Audience<'a> {
    /// A client token: `{scheme}://{host}/client/?hub={hub}`.
    Client { hub: &'a HubName },
    /// A REST token: the request URL without query (`path` is the raw request path).
    Rest { path: &'a str },
}

/// The parts of a verified token the emulator uses.
#[derive(Debug)]
pub(crate) struct VerifiedToken {
    /// `asrs.s.uid`, else `nameid`, else `sub` (docs/protocol/signalr-service.md §2.2).
    pub(crate) user_id: Option<String>,
    /// Every claim of the payload: the connection keeps them for refresh and for upstream headers.
    pub(crate) claims: Map<String, Value>,
}

/// Why a token was refused. The description goes into `WWW-Authenticate`; it never contains the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header and no `access_token` query parameter.
    #[error("No access token was given")]
    Missing,
    /// Longer than any real token.
    #[error("The token is too long")]
    TooLong,
    /// Not a JWT, or its JSON is broken.
    #[error("The token is malformed")]
    Malformed,
    /// Signed with a key the emulator does not have.
    #[error("The signature key was not found")]
    SignatureKeyNotFound,
    /// Not an HMAC algorithm.
    #[error("The signature algorithm is not supported")]
    UnsupportedAlgorithm,
    /// `exp` is in the past beyond the allowed skew.
    #[error("The token is expired")]
    Expired,
    /// No `exp` claim, or not a number.
    #[error("The token has no expiration time")]
    MissingExpiry,
    /// No `aud` claim, or more than one.
    #[error("The audience is empty")]
    MissingAudience,
    /// `aud` names another URL.
    #[error("The audience is invalid")]
    InvalidAudience,
    /// `asrs.s.coae` / `asrs.s.aeo` are not the SDK's shape: both or neither, `coae` the string `"true"`
    /// or `"false"`, `aeo` unix seconds as a decimal string (docs/protocol/signalr-identity-2026.md
    /// §1.1).
    #[error("The close-on-authentication-expiration claims are malformed")]
    MalformedAuthExpiry,
    /// An access-key token while local auth is disabled (`--disable-local-auth`, `disableLocalAuth`).
    #[error("Local authentication is disabled; use Microsoft Entra ID")]
    LocalAuthDisabled,
    /// An Entra token from another issuer, or with no `iss`.
    #[error("The issuer is invalid")]
    InvalidIssuer,
    /// An Entra token whose `nbf` is still in the future beyond the allowed skew.
    #[error("The token is not yet valid")]
    NotYetValid,
    /// The Entra issuer's keys could not be fetched, so no Entra token can be verified.
    #[error("The signing keys of the issuer are unavailable")]
    KeysUnavailable,
}

impl TokenError {
    /// Whether the header should carry `error="invalid_token"`: not when no token was sent (RFC 6750 §3.1).
    pub(crate) fn is_invalid_token(self) -> bool {
        self != Self::Missing
    }
}

/// Verifies tokens against the configured keys.
pub(crate) struct TokenValidator {
    keys: Vec<DecodingKey>,
    /// False with `--disable-local-auth`: the access keys verify nothing.
    local_auth: bool,
    temporary_keys: Arc<TemporaryKeys>,
    validation: Validation,
}

impl TokenValidator {
    /// Builds the validation once: HMAC algorithms only, `exp` required with the configured skew.
    pub(crate) fn new(config: &Config, temporary_keys: Arc<TemporaryKeys>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // The algorithm list comes from here, never from the token header; all three share the HMAC key family.
        validation.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        validation.leeway = config.timings.token_clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = false;
        // The audience rules are the service's, not a string comparison, so they are checked below.
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
        let keys = config
            .access_keys
            .iter()
            .map(|key| DecodingKey::from_secret(key.hmac_key()))
            .collect();
        Self {
            keys,
            local_auth: !config.local_auth_disabled,
            temporary_keys,
            validation,
        }
    }

    /// Verifies `token` for `audience` on a request whose `Host` header was `request_host`.
    pub(crate) fn verify(
        &self,
        token: &str,
        request_host: Option<&str>,
        audience: Audience<'_>,
    ) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::TooLong);
        }
        let for_client = matches!(audience, Audience::Client { .. });
        let claims = self.verify_signature_and_expiry(token, for_client)?;
        let audience_claim = single_audience(&claims)?;
        if !audience_matches(audience_claim, request_host, &audience) {
            return Err(TokenError::InvalidAudience);
        }
        Ok(VerifiedToken {
            user_id: user_id(&claims),
            claims,
        })
    }

    fn verify_signature_and_expiry(
        &self,
        token: &str,
        for_client: bool,
    ) -> Result<Map<String, Value>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| map_error(error.kind()))?;
        if let Some(kid) = header
            .kid
            .filter(|kid| kid.starts_with(TEMPORARY_KEY_ID_PREFIX))
        {
            // Temporary keys sign client tokens only: REST calls take the Entra token itself
            // (docs/protocol/signalr-identity-2026.md §2.3),
            // and "SignalR App Server", which may fetch the key, may not call REST.
            let key = for_client
                .then(|| self.temporary_keys.decoding_key(&kid))
                .flatten()
                .ok_or(TokenError::SignatureKeyNotFound)?;
            return jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
                .map(|data| data.claims)
                .map_err(|error| map_error(error.kind()));
        }
        if !self.local_auth {
            return Err(TokenError::LocalAuthDisabled);
        }
        let mut last_error = TokenError::SignatureKeyNotFound;
        for key in &self.keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => {
                    let mapped = map_error(error.kind());
                    tracing::debug!(kind = ?error.kind(), "token refused by one key");
                    // Only a signature mismatch means another key might still match.
                    if mapped != TokenError::SignatureKeyNotFound {
                        return Err(mapped);
                    }
                    last_error = mapped;
                }
            }
        }
        Err(last_error)
    }
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::SignatureKeyNotFound,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::UnsupportedAlgorithm
        }
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::MissingRequiredClaim(_) => TokenError::MissingExpiry,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => TokenError::Malformed,
        // ErrorKind is non-exhaustive and may grow: anything unknown refuses the token.
        _ => TokenError::Malformed,
    }
}

fn single_audience(claims: &Map<String, Value>) -> Result<&str, TokenError> {
    match claims.get("aud") {
        Some(Value::String(audience)) => Ok(audience),
        Some(Value::Array(values)) => match values.as_slice() {
            [Value::String(audience)] => Ok(audience),
            // Two audiences broke negotiate against the real service
            // (docs/protocol/signalr-service.md §2.2), so they
            // are refused here too.
            _ => Err(TokenError::MissingAudience),
        },
        _ => Err(TokenError::MissingAudience),
    }
}

/// The user id claims in the order the SDK and Microsoft's emulator read them
/// (docs/protocol/signalr-service.md §2.2).
fn user_id(claims: &Map<String, Value>) -> Option<String> {
    ["asrs.s.uid", "nameid", "sub"].iter().find_map(|name| {
        let value: &str = match claims.get(*name)? {
            Value::String(value) => value,
            Value::Array(values) => values.first()?.as_str()?,
            _ => return None,
        };
        (!value.is_empty()).then(|| value.to_owned())
    })
}

fn audience_matches(audience: &str, request_host: Option<&str>, expected: &Audience<'_>) -> bool {
    let Ok(url) = url::Url::parse(audience) else {
        return false;
    };
    // The emulator speaks plain HTTP; an https audience was minted for some other service.
    if url.scheme() != "http" {
        return false;
    }
    let request_host = request_host.map(host_without_port).unwrap_or("localhost");
    if !same_host(url.host_str().unwrap_or_default(), request_host) {
        return false;
    }
    match expected {
        Audience::Client { hub } => {
            if normalised_segments(url.path()) != ["client"] {
                return false;
            }
            url.query_pairs()
                .find(|(key, _)| key == "hub")
                .is_some_and(|(_, value)| value.eq_ignore_ascii_case(hub.as_str()))
        }
        Audience::Rest { path } => normalised_segments(url.path()) == normalised_segments(path),
    }
}

/// Path segments, percent-decoded, without empty ones, and with the hub (the segment after `hubs`)
/// lowercased, because the SDK lowercases the hub in the audience (docs/protocol/signalr-service.md
/// §3).
fn normalised_segments(path: &str) -> Vec<String> {
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    if let Some(index) = segments.iter().position(|segment| segment == "hubs")
        && let Some(hub) = segments.get_mut(index + 1)
    {
        *hub = hub.to_ascii_lowercase();
    }
    segments
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.split(':').next().unwrap_or_default()
}

/// Compares hosts ignoring case, treating the loopback names as one: the emulator only runs on loopback, and
/// a token minted for `localhost` (from the printed connection string) is used by clients that dial 127.0.0.1.
fn same_host(audience_host: &str, request_host: &str) -> bool {
    fn canonical(host: &str) -> String {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        let host = host.to_ascii_lowercase();
        match host.as_str() {
            "127.0.0.1" | "::1" | "localhost" => "localhost".to_owned(),
            _ => host,
        }
    }
    canonical(audience_host) == canonical(request_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(name: &str) -> HubName {
        HubName::parse(name, None).expect("test hub names are valid")
    }

    #[test]
    fn client_audience_ignores_port_trailing_slash_extra_query_and_hub_case() {
        let chat = hub("Chat");
        for audience in [
            "http://localhost/client/?hub=chat",
            "http://localhost:8888/client/?hub=chat",
            "http://LOCALHOST/client?hub=Chat",
            "http://localhost/client/?hub=chat&asrs.op=x",
            "http://127.0.0.1/client/?hub=chat",
        ] {
            assert!(
                audience_matches(
                    audience,
                    Some("localhost:8888"),
                    &Audience::Client { hub: &chat }
                ),
                "refused {audience}"
            );
        }
    }

    #[test]
    fn client_audience_refuses_other_hubs_paths_hosts_and_schemes() {
        let chat = hub("chat");
        for audience in [
            "http://localhost/client/?hub=other",
            "http://localhost/client/",
            "http://localhost/server/?hub=chat",
            "http://localhost/api/v1/hubs/chat",
            "https://localhost/client/?hub=chat",
            "http://contoso.service.signalr.net/client/?hub=chat",
            "not a url",
        ] {
            assert!(
                !audience_matches(
                    audience,
                    Some("localhost:8888"),
                    &Audience::Client { hub: &chat }
                ),
                "accepted {audience}"
            );
        }
    }

    #[test]
    fn rest_audience_ignores_query_port_and_hub_case_but_not_the_rest_of_the_path() {
        let path = "/api/hubs/chat/groups/room%201/:send";
        let good = [
            "http://localhost/api/hubs/chat/groups/room%201/:send?api-version=2022-06-01",
            "http://localhost:8888/api/hubs/Chat/groups/room 1/:send/",
        ];
        for audience in good {
            assert!(
                audience_matches(audience, Some("127.0.0.1:1234"), &Audience::Rest { path }),
                "refused {audience}"
            );
        }
        let bad = [
            "http://localhost/api/hubs/chat/groups/room%202/:send",
            "http://localhost/api/hubs/chat/groups/Room%201/:send",
            "http://localhost/api/hubs/chat/:send",
            "http://example.com/api/hubs/chat/groups/room%201/:send",
        ];
        for audience in bad {
            assert!(
                !audience_matches(audience, Some("127.0.0.1:1234"), &Audience::Rest { path }),
                "accepted {audience}"
            );
        }
    }

    #[test]
    fn user_id_prefers_asrs_uid_then_nameid_then_sub() {
        let claims = |value: Value| value.as_object().cloned().unwrap_or_default();
        let all = claims(serde_json::json!({"asrs.s.uid": "a", "nameid": "b", "sub": "c"}));
        assert_eq!(user_id(&all).as_deref(), Some("a"));
        let two = claims(serde_json::json!({"nameid": "b", "sub": "c"}));
        assert_eq!(user_id(&two).as_deref(), Some("b"));
        let one = claims(serde_json::json!({"sub": "c"}));
        assert_eq!(user_id(&one).as_deref(), Some("c"));
        let none = claims(serde_json::json!({"sub": 3}));
        assert_eq!(user_id(&none), None);
    }

    #[test]
    fn hosts_lose_their_ports() {
        assert_eq!(host_without_port("localhost:8888"), "localhost");
        assert_eq!(host_without_port("[::1]:8888"), "::1");
        assert_eq!(host_without_port("example.com"), "example.com");
    }
}
