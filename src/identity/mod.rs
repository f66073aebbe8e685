//! Credential → [`VerifiedUser`].
//!
//! This module is the only place a `VerifiedUser` can be built: its fields are private and its
//! constructor is private to `identity`. Everything that acts for a user takes `&VerifiedUser`,
//! so a user id taken from a header, a query or a body cannot reach the SignalR token.
//!
//! - [`credential`]: where a bearer token may come from (`Authorization`, `access_token`).
//! - [`jwt`]: signature and claim checks with algorithms from configuration only.
//! - [`jwks`]: fetching, caching and refreshing public keys.

pub mod credential;
pub mod jwks;
pub mod jwt;

use serde_json::{Map, Value};

use crate::config::AuthSettings;
use crate::invocation::HttpRequestData;
use crate::signalr::connection_string::ConnectionString;

/// Which kind of credential proved the caller's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// A JWT from the app's identity provider.
    Jwt,
}

/// A caller whose credential was verified. Only `identity` constructs it.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    user_id: String,
    claims: Map<String, Value>,
    expires_at: u64,
    source: IdentitySource,
}

impl VerifiedUser {
    /// Builds a user from verified claims. Private to `identity` and its submodules.
    fn new(
        user_id: String,
        claims: Map<String, Value>,
        expires_at: u64,
        source: IdentitySource,
    ) -> Self {
        Self {
            user_id,
            claims,
            expires_at,
            source,
        }
    }

    /// The user id, from the configured claim of a verified credential.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// A claim of the verified credential.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// When the credential expires (unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The kind of credential that proved this identity.
    pub fn source(&self) -> IdentitySource {
        self.source
    }

    /// True for a signed-in user (as opposed to an anonymous visitor), which policies may
    /// require.
    pub fn is_signed_in(&self) -> bool {
        matches!(self.source, IdentitySource::Jwt)
    }

    /// The claim's values as strings: an array's string items, or a single string (roles come in
    /// both shapes depending on the identity provider).
    pub fn claim_strings(&self, name: &str) -> Vec<&str> {
        match self.claims.get(name) {
            Some(Value::String(value)) => vec![value.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
impl VerifiedUser {
    /// A user for unit tests of code that consumes `VerifiedUser` (never compiled into the
    /// handler itself).
    pub(crate) fn for_tests(user_id: &str, claims: Value) -> Self {
        let claims = match claims {
            Value::Object(claims) => claims,
            _ => Map::new(),
        };
        Self::new(user_id.to_owned(), claims, u64::MAX, IdentitySource::Jwt)
    }
}

/// Why a caller was not authenticated. The `Display` text is for logs: it names the reason, and
/// never includes the token.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No credential was presented.
    #[error("no bearer token in the Authorization header or access_token query parameter")]
    MissingCredential,
    /// The credential is ambiguous or not a bearer token.
    #[error("unusable credential: {0}")]
    Unusable(&'static str),
    /// The token is longer than any legitimate one.
    #[error("token of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The token failed verification; the kind is jsonwebtoken's.
    #[error("token rejected: {0:?}")]
    Rejected(jsonwebtoken::errors::ErrorKind),
    /// The token was issued by the SignalR Service for itself (a client replaying its
    /// connection token at negotiate).
    #[error(
        "token rejected: its audience is the SignalR Service (a service token replayed at the app)"
    )]
    ServiceTokenReplayed,
    /// The token's `kid` is not in the key set, even after a refresh.
    #[error("token rejected: unknown key id {0:?}")]
    UnknownKeyId(Option<String>),
    /// The verified token lacks a usable user id.
    #[error(
        "token rejected: claim `{0}` (the user id) is missing, not a string, empty or malformed"
    )]
    BadUserId(String),
    /// No keys could be loaded to verify with (fail closed).
    #[error("no verification keys available: {0}")]
    KeysUnavailable(String),
}

/// Turns an HTTP request into a [`VerifiedUser`] with the configured key source.
pub struct Authenticator {
    verifier: jwt::JwtVerifier,
}

impl Authenticator {
    /// Builds the authenticator; `signalr` is used to recognise the service's own tokens.
    pub fn new(settings: &AuthSettings, signalr: &ConnectionString) -> anyhow::Result<Self> {
        Ok(Self {
            verifier: jwt::JwtVerifier::new(settings, signalr)?,
        })
    }

    /// Verifies the caller of `request`.
    #[tracing::instrument(name = "authenticate", skip_all)]
    pub async fn authenticate(
        &self,
        request: &HttpRequestData,
    ) -> Result<VerifiedUser, IdentityError> {
        let token = credential::bearer_token(request)?;
        self.verifier.verify(token).await
    }
}
