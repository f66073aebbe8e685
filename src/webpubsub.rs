//! The Azure Web PubSub event-handler protocol (CloudEvents over HTTP, binary mode):
//! the abuse-protection handshake, `ce-signature`, and the connect event's body
//! (`docs/protocol/webpubsub.md` §1).
//!
//! The signature binds only the connection id (docs/protocol/webpubsub.md §1.5), so it proves the
//! request came from a
//! holder of the access key for *that* connection; the event body is trusted no further than
//! that. The `WebHook-Request-Origin` must be the host of the configured connection string.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use crate::identity::service_identity::{
    ServiceIdentitySettingNames, ServiceIdentitySettings, ServiceTokenVerifier,
};
use crate::invocation::{HttpRequestData, header_values_in};
use crate::settings::{ConfigError, Env};
use crate::signalr::connection_string::ConnectionString;
use crate::telemetry::JsonFault;

/// `ce-type` of the blocking connect event.
pub const CONNECT_EVENT: &str = "azure.webpubsub.sys.connect";
/// Prefix of every system event.
pub const SYSTEM_EVENT_PREFIX: &str = "azure.webpubsub.sys.";
/// The abuse-protection request and answer headers.
pub const REQUEST_ORIGIN_HEADER: &str = "WebHook-Request-Origin";
/// The header that answers the abuse-protection handshake.
pub const ALLOWED_ORIGIN_HEADER: &str = "WebHook-Allowed-Origin";
/// Longest accepted `ce-signature` value (two entries are ~150 characters).
const MAX_SIGNATURE_CHARS: usize = 1024;
/// Most `sha256=` entries considered.
const MAX_SIGNATURE_ENTRIES: usize = 8;
/// Longest accepted connection id.
const MAX_CONNECTION_ID_CHARS: usize = 256;

/// Why a Web PubSub request was refused. Messages never contain a key or a signature.
#[derive(Debug, thiserror::Error)]
pub enum WebPubSubError {
    /// The handshake or event came without `WebHook-Request-Origin` (400).
    #[error("no single WebHook-Request-Origin header")]
    MissingOrigin,
    /// The handshake names a host other than the configured service (400).
    #[error("WebHook-Request-Origin {0:?} is not the configured Web PubSub host")]
    OriginNotAllowed(String),
    /// The event's signature, connection id or origin does not check out (401).
    #[error("event not authenticated: {0}")]
    NotAuthenticated(&'static str),
    /// The event type is not one this handler serves (400).
    #[error("unsupported event type {0:?}")]
    UnsupportedEvent(String),
    /// The connect body is not the documented shape (400).
    #[error("malformed connect event body: {0}")]
    MalformedBody(JsonFault),
    /// The method is neither OPTIONS nor POST (405).
    #[error("method {0:?} is not OPTIONS or POST")]
    Method(String),
}

/// The connect event's body (docs/protocol/webpubsub.md §1.6). Maps are string → array of strings;
/// unknown fields are
/// tolerated because the service may add some.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectEvent {
    /// Query parameters of the client's connect request.
    #[serde(default)]
    pub query: HashMap<String, Vec<String>>,
    /// Headers of the client's connect request.
    #[serde(default)]
    pub headers: HashMap<String, Vec<String>>,
    /// Client certificates the service received in the TLS handshake.
    #[serde(default)]
    pub client_certificates: Vec<ReportedCertificate>,
}

/// One entry of `clientCertificates`.
#[derive(Debug, Deserialize)]
pub struct ReportedCertificate {
    /// SHA-1 thumbprint as the service reports it.
    pub thumbprint: String,
    /// The PEM of the certificate, when the service sends it.
    #[serde(default)]
    pub content: Option<String>,
}

impl ConnectEvent {
    /// Parses the body; an absent or empty body is an event with nothing in it.
    pub fn parse(body: Option<&[u8]>) -> Result<Self, WebPubSubError> {
        match body {
            None => Ok(Self::default()),
            Some(body) if body.iter().all(u8::is_ascii_whitespace) => Ok(Self::default()),
            // serde's message can quote the input (a token, say), so only its category and
            // position are kept.
            Some(body) => serde_json::from_slice(body)
                .map_err(|error| WebPubSubError::MalformedBody(JsonFault::of(&error))),
        }
    }

    /// All values of a header of the client's request, looked up case-insensitively.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        header_values_in(self.headers.iter(), name)
    }

    /// All values of a query parameter of the client's request.
    pub fn query_values(&self, name: &str) -> Vec<&str> {
        self.query
            .get(name)
            .map(|values| values.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// The abuse-protection answer: the allowed host when the request names it.
pub fn allowed_origin(
    settings: &WebPubSubSettings,
    request: &HttpRequestData,
) -> Result<String, WebPubSubError> {
    let origin =
        single_header(request, REQUEST_ORIGIN_HEADER).ok_or(WebPubSubError::MissingOrigin)?;
    let host = settings.connection.host();
    if origin.eq_ignore_ascii_case(&host) {
        Ok(host)
    } else {
        Err(WebPubSubError::OriginNotAllowed(
            origin.chars().take(256).collect(),
        ))
    }
}

/// An authenticated event: its type and connection id, after the origin and `ce-signature`
/// were checked against the primary and secondary access keys.
#[derive(Debug)]
pub struct AuthenticatedEvent {
    /// `ce-type`.
    pub event_type: String,
    /// `ce-connectionId`, the value the signature covers.
    pub connection_id: String,
}

/// Checks origin, connection id and signature of an event request.
///
/// With `EventAuth::ManagedIdentity` the bearer token is checked by `verifier` instead of
/// `ce-signature`; a missing verifier refuses (fail closed).
pub async fn authenticate_event(
    settings: &WebPubSubSettings,
    verifier: Option<&ServiceTokenVerifier>,
    request: &HttpRequestData,
) -> Result<AuthenticatedEvent, WebPubSubError> {
    let origin = single_header(request, REQUEST_ORIGIN_HEADER).ok_or(
        WebPubSubError::NotAuthenticated("no single WebHook-Request-Origin header"),
    )?;
    if !origin.eq_ignore_ascii_case(&settings.connection.host()) {
        return Err(WebPubSubError::NotAuthenticated(
            "WebHook-Request-Origin is not the configured Web PubSub host",
        ));
    }
    let connection_id = single_header(request, "ce-connectionId")
        .filter(|id| !id.is_empty() && id.len() <= MAX_CONNECTION_ID_CHARS)
        .ok_or(WebPubSubError::NotAuthenticated(
            "no single, bounded ce-connectionId header",
        ))?;
    match &settings.event_auth {
        EventAuth::Signature => {
            let signature = single_header(request, "ce-signature").ok_or(
                WebPubSubError::NotAuthenticated("no single ce-signature header"),
            )?;
            let mut keys: Vec<&SecretString> =
                settings.connection.access_key().into_iter().collect();
            keys.extend(settings.secondary_key.as_ref());
            if keys.is_empty() || !signature_matches(signature, connection_id, &keys) {
                return Err(WebPubSubError::NotAuthenticated(
                    "ce-signature matches no access key for this connection id",
                ));
            }
        }
        EventAuth::ManagedIdentity(_) => {
            verifier
                .ok_or(WebPubSubError::NotAuthenticated(
                    "no verifier for the service's token",
                ))?
                .verify(request)
                .await
                .map_err(|refused| WebPubSubError::NotAuthenticated(refused.0))?;
        }
    }
    let event_type = single_header(request, "ce-type")
        .filter(|event_type| !event_type.is_empty())
        .ok_or_else(|| WebPubSubError::UnsupportedEvent(String::new()))?;
    Ok(AuthenticatedEvent {
        event_type: event_type.to_owned(),
        connection_id: connection_id.to_owned(),
    })
}

/// True when some `sha256=<hex>` entry of `header` is HMAC-SHA256(key, connection id) for one
/// of `keys`. The key is the AccessKey string's UTF-8 bytes (docs/protocol/webpubsub.md §1.5); hex
/// is compared
/// case-insensitively by decoding it, and the MAC comparison is constant-time.
pub fn signature_matches(header: &str, connection_id: &str, keys: &[&SecretString]) -> bool {
    if header.len() > MAX_SIGNATURE_CHARS {
        return false;
    }
    let mut matched = false;
    for entry in header
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .take(MAX_SIGNATURE_ENTRIES)
    {
        let Some(hex) = entry
            .get(..7)
            .filter(|prefix| prefix.eq_ignore_ascii_case("sha256="))
            .and_then(|_| entry.get(7..))
        else {
            continue;
        };
        let Some(digest) = decode_hex(hex) else {
            continue;
        };
        for key in keys {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes()) else {
                continue;
            };
            mac.update(connection_id.as_bytes());
            // Every entry and key is tried, so the time taken does not tell which one matched.
            matched |= mac.verify_slice(&digest).is_ok();
        }
    }
    matched
}

/// The signature a key produces for a connection id, lower-case hex (for tests).
#[cfg(test)]
fn sign(key: &str, connection_id: &str) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(connection_id.as_bytes());
    Some(
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
    )
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(hex.get(index..index + 2)?, 16).ok())
        .collect()
}

/// The one value of a header; absent or repeated gives `None`.
fn single_header<'a>(request: &'a HttpRequestData, name: &str) -> Option<&'a str> {
    match request.header_values(name).as_slice() {
        [value] => Some(value.trim()),
        _ => None,
    }
}

/// When the connect handler verifies an app JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectJwt {
    /// Never: the client certificate alone identifies the caller.
    Off,
    /// When the client sent one.
    Optional,
    /// Always: a connect without a valid JWT is refused.
    Required,
}

/// The Web PubSub event handler.
#[derive(Debug, Clone)]
pub struct WebPubSubSettings {
    /// The Web PubSub connection string: its host is the only accepted
    /// `WebHook-Request-Origin`, its AccessKey the primary signature key.
    pub connection: ConnectionString,
    /// `WEBPUBSUB_SECONDARY_ACCESS_KEY`, for key rotation.
    pub secondary_key: Option<SecretString>,
    /// Refuse a connect without a client certificate.
    pub require_client_cert: bool,
    /// When a JWT is verified at connect.
    pub jwt: ConnectJwt,
    /// How event requests prove they come from the service: `ce-signature` with the access
    /// keys, or (keyless) the service's managed-identity bearer token.
    pub event_auth: EventAuth,
}

/// How the handler knows an event request comes from the Web PubSub service.
#[derive(Debug, Clone)]
pub enum EventAuth {
    /// `ce-signature`: HMAC of the connection id with the primary or secondary access key.
    Signature,
    /// No key (`AuthType=azure.msi`, local auth disabled): the request's `Authorization: Bearer`
    /// is the service's managed-identity token, a v1 Entra token checked with the tenant's
    /// OpenID metadata keys, for a configured audience, from a configured identity.
    ManagedIdentity(Box<ServiceIdentitySettings>),
}

impl WebPubSubSettings {
    /// The connect handler is an optional feature: off (the function answers 404) unless
    /// `WEBPUBSUB_CONNECTION_STRING` is set, so an app that ships the `connect` folder but does
    /// not use Web PubSub starts normally. Its other settings without the connection string are
    /// a mistake. That its key is not the SignalR key is checked by `config`.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        if env.get("WEBPUBSUB_CONNECTION_STRING").is_some() {
            return Self::parse(env).map(Some);
        }
        for name in [
            "WEBPUBSUB_SECONDARY_ACCESS_KEY",
            "WEBPUBSUB_REQUIRE_CLIENT_CERT",
            "WEBPUBSUB_CONNECT_JWT",
        ]
        .into_iter()
        .chain(EVENT_HANDLER_SETTINGS.all())
        {
            if env.get(name).is_some() {
                return Err(ConfigError::new(
                    name,
                    "is set, but the connect handler is off because WEBPUBSUB_CONNECTION_STRING is not set; set it to enable the handler, or remove this setting",
                ));
            }
        }
        Ok(None)
    }

    fn parse(env: &Env) -> Result<Self, ConfigError> {
        const SETTING: &str = "WEBPUBSUB_CONNECTION_STRING";
        let value = env.require(
            SETTING,
            "set it to the Web PubSub connection string, `Endpoint=https://<name>.webpubsub.azure.com;AccessKey=<key>;Version=1.0;`",
        )?;
        let connection = ConnectionString::parse(&value)
            .map_err(|error| ConfigError::new(SETTING, error.to_string()))?;
        let event_auth = event_auth(env, &connection)?;
        let secondary_key = env
            .get("WEBPUBSUB_SECONDARY_ACCESS_KEY")
            .map(SecretString::from);
        let require_client_cert = env.bool("WEBPUBSUB_REQUIRE_CLIENT_CERT", true)?;
        let jwt = match env.get("WEBPUBSUB_CONNECT_JWT").as_deref() {
            None | Some("off") => ConnectJwt::Off,
            Some("optional") => ConnectJwt::Optional,
            Some("required") => ConnectJwt::Required,
            Some(other) => {
                return Err(ConfigError::new(
                    "WEBPUBSUB_CONNECT_JWT",
                    format!("`{other}` is not a mode; use off, optional or required"),
                ));
            }
        };
        if !require_client_cert && jwt != ConnectJwt::Required {
            return Err(ConfigError::new(
                "WEBPUBSUB_REQUIRE_CLIENT_CERT",
                "is false and WEBPUBSUB_CONNECT_JWT is not `required`, so connect could accept callers nobody verified; require a client certificate, a JWT, or both",
            ));
        }
        if matches!(event_auth, EventAuth::ManagedIdentity(_)) && secondary_key.is_some() {
            return Err(ConfigError::new(
                "WEBPUBSUB_SECONDARY_ACCESS_KEY",
                "is set, but WEBPUBSUB_CONNECTION_STRING is identity-based (no keys); remove it",
            ));
        }
        Ok(Self {
            connection,
            secondary_key,
            require_client_cert,
            jwt,
            event_auth,
        })
    }

    /// True when `secret` is one of the access keys.
    pub fn signs_with(&self, secret: &str) -> bool {
        self.connection.access_key_equals(secret)
            || self
                .secondary_key
                .as_ref()
                .is_some_and(|key| key.expose_secret() == secret)
    }
}

/// The `WEBPUBSUB_EVENT_HANDLER_*` settings.
const EVENT_HANDLER_SETTINGS: ServiceIdentitySettingNames = ServiceIdentitySettingNames {
    tenant_id: "WEBPUBSUB_EVENT_HANDLER_TENANT_ID",
    issuer: "WEBPUBSUB_EVENT_HANDLER_ISSUER",
    audience: "WEBPUBSUB_EVENT_HANDLER_AUDIENCE",
    identity: "WEBPUBSUB_EVENT_HANDLER_IDENTITY",
    service: "the Web PubSub identity",
    resource_hint: "the event handler's auth setting",
};

/// The `WEBPUBSUB_EVENT_HANDLER_*` settings: required with an identity-based connection string,
/// refused with an access key (they would be ignored, which hides a mistake).
fn event_auth(env: &Env, connection: &ConnectionString) -> Result<EventAuth, ConfigError> {
    if connection.access_key().is_some() {
        if let Some(name) = EVENT_HANDLER_SETTINGS.first_set(env) {
            return Err(ConfigError::new(
                name,
                "is set, but WEBPUBSUB_CONNECTION_STRING has an AccessKey, so events are checked by ce-signature; remove it, or use `AuthType=azure.msi`",
            ));
        }
        return Ok(EventAuth::Signature);
    }
    ServiceIdentitySettings::from_env(
        env,
        &EVENT_HANDLER_SETTINGS,
        "WEBPUBSUB_CONNECTION_STRING is identity-based",
    )
    .map(|settings| EventAuth::ManagedIdentity(Box::new(settings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMULATOR_KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

    #[test]
    fn matches_the_spec_test_vector() {
        assert_eq!(
            sign(EMULATOR_KEY, "conn1").as_deref(),
            Some("8de7281e588e23b0a30a7180ffa240257b8176e983004c240c9f3f7a7233c993")
        );
    }

    #[test]
    fn accepts_either_key_and_either_hex_case() {
        let primary = SecretString::from("insecure-primary");
        let secondary = SecretString::from(EMULATOR_KEY);
        let keys = [&primary, &secondary];
        let good = sign(EMULATOR_KEY, "conn1").expect("signs");
        let other = sign("insecure-other", "conn1").expect("signs");
        for header in [
            format!("sha256={good}"),
            format!("sha256={}", good.to_ascii_uppercase()),
            format!("sha256={other}, sha256={good}"),
            format!("SHA256={good}"),
        ] {
            assert!(signature_matches(&header, "conn1", &keys), "{header}");
        }
        for header in [
            String::new(),
            format!("sha256={other}"),
            format!("sha1={good}"),
            format!("sha256={}", &good[..62]),
            format!("sha256={}zz", &good[..62]),
            good.clone(),
        ] {
            assert!(!signature_matches(&header, "conn1", &keys), "{header}");
        }
        assert!(!signature_matches(
            &format!("sha256={good}"),
            "conn2",
            &keys
        ));
    }
}
