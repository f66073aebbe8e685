//! Credential → [`VerifiedUser`].
//!
//! This module is the only place a `VerifiedUser` can be built: its fields are private and its
//! constructor is private to `identity`. Everything that acts for a user takes `&VerifiedUser`,
//! so a user id taken from a header, a query or a body cannot reach the SignalR token.
//!
//! Several sources can prove who the caller is; `AUTH_SOURCES` enables them and orders them.
//! [`Authenticator::authenticate`] asks each enabled source in turn whether the request
//! *presents* its credential; the first that does decides, and a presented but invalid
//! credential is refused rather than passed on to the next source.
//!
//! - [`credential`]: where a bearer token may come from (`Authorization`, `access_token`).
//! - [`jwt`]: signature and claim checks with algorithms from configuration only.
//! - [`jwks`]: fetching, caching and refreshing public keys.
//! - [`easy_auth`]: the App Service Authentication principal (`X-MS-CLIENT-PRINCIPAL`).
//! - [`client_cert`]: client certificates (`X-ARR-ClientCert`, Web PubSub `clientCertificates`).
//! - [`anonymous`]: signed anonymous visitor ids, namespaced `anon:`.
//! - [`service_connection`]: the user id of a SignalR connection on an upstream request.
//! - [`sources`]: `AUTH_SOURCES` and the identity settings (each source's own beside its verifier).

pub mod anonymous;
mod claims;
pub mod client_cert;
pub mod credential;
pub mod easy_auth;
pub mod jwks;
pub mod jwt;
pub mod service_connection;
pub mod service_identity;
pub mod signatures;
pub mod sources;

use serde_json::Value;

use claims::Claims;

use crate::invocation::HttpRequestData;
pub use crate::names::ANONYMOUS_PREFIX;
use crate::names::{NameError, TargetUser, UserId};
use jwt::ServiceAudience;
use sources::{AuthSettings, SourceKind};

/// Which kind of credential proved the caller's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// A JWT from the app's identity provider.
    Jwt,
    /// The App Service Authentication principal (App Service / Functions shape).
    AppService,
    /// The Static Web Apps shape of the same principal header.
    StaticWebApps,
    /// A client certificate on the allow-list (App Service mTLS or Web PubSub).
    ClientCertificate,
    /// A visitor id signed with the shared visitor secret; not a signed-in user.
    AnonymousVisitor,
    /// The user id the SignalR Service names on an authenticated upstream request (the
    /// `asrs.s.uid` negotiate signed after verifying the caller with one of the above).
    ServiceConnection,
}

impl IdentitySource {
    /// The stable name receivers see in a message's sender stamp.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::AppService => "appservice",
            Self::StaticWebApps => "staticwebapps",
            Self::ClientCertificate => "clientcert",
            Self::AnonymousVisitor => "anonymous",
            Self::ServiceConnection => "signalr-connection",
        }
    }
}

/// A caller whose credential was verified. Only `identity` constructs it.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    user_id: UserId,
    claims: Claims,
    expires_at: u64,
    source: IdentitySource,
}

impl VerifiedUser {
    /// Builds a user from verified claims. Private to `identity` and its submodules.
    fn new(
        user_id: UserId,
        claims: impl Into<Claims>,
        expires_at: u64,
        source: IdentitySource,
    ) -> Self {
        Self {
            user_id,
            claims: claims.into(),
            expires_at,
            source,
        }
    }

    /// The user id, from the configured claim of a verified credential.
    pub fn user_id(&self) -> &str {
        self.user_id.as_str()
    }

    /// The user id as a checked name, for anything that puts it into a URL path.
    pub fn id(&self) -> &UserId {
        &self.user_id
    }

    /// The verified caller as the target of an operation on its own groups or messages.
    pub fn as_target(&self) -> TargetUser {
        TargetUser::from_id(self.user_id.clone())
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
    /// require: anonymous visitors may be messaged, but should not join groups.
    pub fn is_signed_in(&self) -> bool {
        !matches!(self.source, IdentitySource::AnonymousVisitor)
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

// Also for the fuzz targets' pattern wrapper (`fuzzing`), which needs a user to fill `{claim:X}`
// with fuzzed values; the `fuzzing` feature is never enabled in the handler's own builds.
#[cfg(any(test, feature = "fuzzing"))]
impl VerifiedUser {
    /// A user for unit tests of code that consumes `VerifiedUser` (never compiled into the
    /// handler itself).
    pub(crate) fn for_tests(user_id: &str, claims: Value) -> Self {
        let claims = match claims {
            Value::Object(claims) => claims,
            _ => serde_json::Map::new(),
        };
        let user_id = UserId::parse(user_id).expect("test user ids follow the name rules");
        Self::new(user_id, claims, u64::MAX, IdentitySource::Jwt)
    }
}

/// Why a caller was not authenticated. The `Display` text is for logs: it names the reason, and
/// never includes the token.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No enabled source found its credential in the request.
    #[error(
        "no credential presented (no bearer token in the Authorization header or access_token query parameter, nor any other enabled source's credential)"
    )]
    MissingCredential,
    /// The credential is ambiguous, or not written as its header requires.
    #[error("unusable credential: {0}")]
    Credential(#[from] credential::CredentialError),
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
    /// The token's header lists critical extensions (`crit`, RFC 7515 §4.1.11), none of which
    /// this handler implements, so it must refuse the token.
    #[error(
        "token rejected: its header has `crit` (critical extensions this handler does not understand)"
    )]
    CriticalHeader,
    /// The verified token's `iss` is not a single string (jsonwebtoken also accepts an array
    /// that contains the expected issuer).
    #[error("token rejected: `iss` must be a single string")]
    IssuerNotAString,
    /// A bearer token in the `access_token` query parameter of a function other than negotiate.
    #[error(
        "unusable credential: the access_token query parameter is accepted only by negotiate; send the token in the Authorization header"
    )]
    QueryTokenNotAllowed,
    /// The token's `kid` is not in the key set, even after a refresh. The key set's ids are
    /// named so an operator sees at once whether the token comes from another tenant or key set.
    #[error(
        "token rejected: unknown key id {} (the JWKS has {})",
        quoted_option(kid),
        quoted_list(known)
    )]
    UnknownKeyId {
        /// The token's `kid` (caller text, quoted with `{:?}`).
        kid: Option<String>,
        /// The key ids the cached key set holds, sorted.
        known: Vec<String>,
    },
    /// The verified token's `iss` is not a configured issuer.
    #[error(
        "token rejected: issuer {} is not the configured {} (AUTH_ISSUER)",
        quoted_option(actual),
        quoted_list(expected)
    )]
    WrongIssuer {
        /// The token's `iss`, if it is a string.
        actual: Option<String>,
        /// `AUTH_ISSUER`'s values.
        expected: Vec<String>,
    },
    /// None of the verified token's audiences is a configured one.
    #[error(
        "token rejected: audience {} not among [{}] (AUTH_AUDIENCE)",
        quoted_list(actual),
        quoted_list(expected)
    )]
    WrongAudience {
        /// The token's `aud` values (a string or an array of strings).
        actual: Vec<String>,
        /// `AUTH_AUDIENCE`'s values.
        expected: Vec<String>,
    },
    /// The token's `exp` is further in the past than the clock skew allows.
    #[error("token rejected: expired {seconds_ago} s ago (skew {skew} s)")]
    Expired {
        /// Seconds since `exp`.
        seconds_ago: u64,
        /// `AUTH_CLOCK_SKEW_SECONDS`.
        skew: u64,
    },
    /// The token's `nbf` is further in the future than the clock skew allows.
    #[error("token rejected: not valid for another {seconds_ahead} s (`nbf`; skew {skew} s)")]
    NotYetValid {
        /// Seconds until `nbf`.
        seconds_ahead: u64,
        /// `AUTH_CLOCK_SKEW_SECONDS`.
        skew: u64,
    },
    /// The verified token lacks a usable user id.
    #[error(
        "token rejected: claim `{0}` (the user id) is missing, not a string, empty or malformed"
    )]
    BadUserId(String),
    /// An upstream request's `X-ASRS-User-Id` breaks the user-id rules. Not [`Self::BadUserId`],
    /// which names a token claim: the header is the service's, so the operator needs to know it
    /// was the header, and which rule.
    #[error("the X-ASRS-User-Id header is not a valid user id: {0}")]
    ConnectionUserId(NameError),
    /// No keys could be loaded to verify with (fail closed).
    #[error("no verification keys available: {0}")]
    KeysUnavailable(String),
    /// The App Service principal header is malformed, of the wrong shape, or unusable.
    #[error("X-MS-CLIENT-PRINCIPAL rejected: {0}")]
    Principal(&'static str),
    /// The client certificate was refused.
    #[error("client certificate rejected: {0}")]
    Certificate(#[from] client_cert::CertificateError),
    /// The visitor token failed verification; the kind is jsonwebtoken's.
    #[error("visitor token rejected: {0:?}")]
    VisitorRejected(jsonwebtoken::errors::ErrorKind),
    /// The visitor token verified but is unusable.
    #[error("visitor token rejected: {0}")]
    VisitorUnusable(&'static str),
    /// A signed-in source produced a user id in the anonymous namespace.
    #[error(
        "user id {0:?} starts with `anon:`, which is reserved for anonymous visitors; refused from a signed-in source"
    )]
    ReservedUserId(String),
    /// A source the request needs is not configured.
    #[error("{0} verification is not configured")]
    NotConfigured(&'static str),
}

/// Refuses a signed-in user whose id lies in the anonymous namespace (checked by
/// [`UserId::is_anonymous`], after invisible characters are dropped).
fn refuse_reserved(user: VerifiedUser) -> Result<VerifiedUser, IdentityError> {
    if user.is_signed_in() && user.user_id.is_anonymous() {
        return Err(IdentityError::ReservedUserId(
            user.user_id.as_str().to_owned(),
        ));
    }
    Ok(user)
}

/// One enabled source, ready to verify.
enum Source {
    Jwt,
    AppService(easy_auth::PrincipalVerifier),
    ClientCert,
    Anonymous(Box<anonymous::VisitorVerifier>),
}

/// Turns an HTTP request into a [`VerifiedUser`] with the enabled sources, in order.
pub struct Authenticator {
    sources: Vec<Source>,
    jwt: Option<jwt::JwtVerifier>,
    certificates: Option<client_cert::CertificateVerifier>,
}

impl Authenticator {
    /// Builds the authenticator; `service` recognises the SignalR Service's own tokens.
    ///
    /// An `appservice` source without `WEBSITE_AUTH_ENABLED=true` is left out, with a warning
    /// logged here, once: without the platform, the principal header is whatever the client sent.
    pub fn new(settings: &AuthSettings, service: &ServiceAudience) -> anyhow::Result<Self> {
        let jwt = settings
            .jwt
            .as_ref()
            .map(|jwt| jwt::JwtVerifier::new(jwt, service))
            .transpose()?;
        let certificates = settings
            .client_cert
            .as_ref()
            .map(client_cert::CertificateVerifier::new);
        let mut sources = Vec::new();
        for kind in &settings.sources {
            let source = match kind {
                SourceKind::Jwt => Source::Jwt,
                SourceKind::ClientCert => Source::ClientCert,
                SourceKind::AppService => match &settings.app_service {
                    Some(app_service) if app_service.platform_enabled => {
                        Source::AppService(easy_auth::PrincipalVerifier::new(app_service))
                    }
                    _ => {
                        tracing::warn!(
                            "AUTH_SOURCES lists `appservice`, but WEBSITE_AUTH_ENABLED is not `true`: \
                             App Service Authentication is off, so X-MS-CLIENT-PRINCIPAL headers are \
                             client input and are ignored"
                        );
                        continue;
                    }
                },
                SourceKind::Anonymous => match &settings.anonymous {
                    Some(anonymous) => {
                        Source::Anonymous(Box::new(anonymous::VisitorVerifier::new(anonymous)))
                    }
                    None => anyhow::bail!("the anonymous source has no settings"),
                },
            };
            sources.push(source);
        }
        Ok(Self {
            sources,
            jwt,
            certificates,
        })
    }

    /// Verifies the caller of `request` with the first enabled source whose credential it
    /// presents; `query_token` says whether a bearer token may come in the query.
    // At `debug`: a span at the default `info` filter cost ≈1.5 % of a negotiate (created, entered
    // and dropped on every request) and no event inside needs it there.
    #[tracing::instrument(name = "authenticate", level = "debug", skip_all)]
    pub async fn authenticate(
        &self,
        request: &HttpRequestData,
        query_token: credential::QueryToken,
    ) -> Result<VerifiedUser, IdentityError> {
        for source in &self.sources {
            let user = match source {
                Source::Jwt if credential::bearer_presented(request) => {
                    let token = credential::bearer_token(request, query_token)?;
                    self.verify_jwt(token).await
                }
                Source::AppService(verifier) if easy_auth::presented(request) => {
                    verifier.verify(request)
                }
                Source::ClientCert if client_cert::presented(request) => {
                    let verifier = self
                        .certificates
                        .as_ref()
                        .ok_or(IdentityError::NotConfigured("client certificate"))?;
                    verifier
                        .verify_header(request, now())
                        .map_err(IdentityError::from)
                }
                Source::Anonymous(verifier) if anonymous::presented(request) => {
                    verifier.verify(request, query_token)
                }
                _ => continue,
            };
            return user.and_then(refuse_reserved);
        }
        Err(IdentityError::MissingCredential)
    }

    /// Verifies an app JWT (for callers that find the token elsewhere, like the Web PubSub
    /// connect event).
    pub async fn verify_jwt(&self, token: &str) -> Result<VerifiedUser, IdentityError> {
        let verifier = self
            .jwt
            .as_ref()
            .ok_or(IdentityError::NotConfigured("JWT"))?;
        verifier.verify(token).await.and_then(refuse_reserved)
    }

    /// Verifies a certificate known by its thumbprint and, when given, its PEM content (the
    /// Web PubSub connect event's `clientCertificates`).
    pub fn verify_certificate(
        &self,
        thumbprint: &str,
        pem: Option<&str>,
    ) -> Result<VerifiedUser, client_cert::CertificateError> {
        let verifier = self
            .certificates
            .as_ref()
            .ok_or(client_cert::CertificateError::NoAllowList)?;
        let user = verifier.verify_reported(thumbprint, pem, now())?;
        if user.user_id.is_anonymous() {
            return Err(client_cert::CertificateError::ReservedUserId);
        }
        Ok(user)
    }
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}

/// `"a"`, or `(none)` when the token has no such value.
fn quoted_option(value: &Option<String>) -> String {
    value
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), |value| format!("{value:?}"))
}

/// `"a", "b"`: values quoted with `{:?}` (so caller text cannot forge a log line) and joined,
/// for refusal messages that list what was expected.
fn quoted_list(values: &[String]) -> String {
    if values.is_empty() {
        return "none".to_owned();
    }
    values
        .iter()
        .map(|value| format!("{value:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
