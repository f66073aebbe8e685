//! Emulator configuration: the access keys that sign tokens and the protocol timings.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::entra::EntraConfig;
use crate::keys::DEFAULT_TEMPORARY_KEY_LIFETIME;
use crate::upstream::UpstreamTemplate;
use crate::upstream_identity::UpstreamIdentity;

/// The access key Microsoft's emulator prints, reused so that existing local connection strings keep working.
///
/// It is public knowledge and therefore worthless as a secret: it exists so a developer can start the emulator
/// with no flags. Anything that must not be forged locally needs `--access-key`.
pub const INSECURE_DEV_ACCESS_KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

/// The port Microsoft's emulator listens on, so connection strings written for it work unchanged.
pub const DEFAULT_PORT: u16 = 8888;

/// An access key, used verbatim: the HMAC key is its UTF-8 bytes (docs/protocol/signalr-service.md §1), never
/// base64-decoded.
///
/// Wrapped in a secret so `Debug` output and logs never show it.
#[derive(Clone)]
pub struct AccessKey(SecretString);

/// Why an access key was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessKeyError {
    /// An empty key would make every token forgeable.
    #[error("the access key is empty")]
    Empty,
    /// `;` and `=` would break the printed connection string, and whitespace is trimmed by its parser
    /// (docs/protocol/signalr-service.md §1).
    #[error("the access key must not contain ';', whitespace or control characters")]
    BreaksConnectionString,
}

impl AccessKey {
    /// Accepts a key that can be printed inside a connection string and read back unchanged.
    pub fn parse(key: &str) -> Result<Self, AccessKeyError> {
        if key.is_empty() {
            return Err(AccessKeyError::Empty);
        }
        if key
            .chars()
            .any(|c| c == ';' || c.is_whitespace() || c.is_control())
        {
            return Err(AccessKeyError::BreaksConnectionString);
        }
        Ok(Self(SecretString::from(key.to_owned())))
    }

    /// The well-known development key; the name says it is insecure so that it can be grepped for.
    pub fn insecure_dev() -> Self {
        Self(SecretString::from(INSECURE_DEV_ACCESS_KEY.to_owned()))
    }

    /// The key bytes for HMAC; the only place the secret is exposed.
    pub(crate) fn hmac_key(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AccessKey([REDACTED])")
    }
}

/// How long things may take; the service's values by default, shorter in tests that check the behaviour.
#[derive(Clone, Debug)]
pub struct Timings {
    /// A ping is sent after this long without any other message to the client
    /// (docs/protocol/signalr-service.md §5.6: 15 s).
    pub keep_alive_interval: Duration,
    /// A client that sends nothing (not even a ping) for this long is disconnected
    /// (docs/protocol/signalr-service.md §5.6: 30 s); a write to a client that takes this long also ends the
    /// connection.
    pub client_timeout: Duration,
    /// The client must complete the handshake within this time (docs/protocol/signalr-service.md §5.4: 15 s).
    pub handshake_timeout: Duration,
    /// A connection token from negotiate must be used within this time, otherwise 404
    /// (docs/protocol/signalr-service.md §5.3: 5 s).
    pub connection_token_lifetime: Duration,
    /// Clock skew allowed on `exp` (docs/protocol/signalr-service.md §2.3: JwtBearer's default, 5 minutes).
    pub token_clock_skew: Duration,
    /// How long a REST send waits for a client whose outgoing queue is full before that client is disconnected.
    pub slow_client_grace: Duration,
    /// How long an upstream request may take before it counts as failed (.NET `HttpClient`'s default, 100 s).
    pub upstream_timeout: Duration,
}

impl Timings {
    /// The service's timings (docs/protocol/signalr-service.md §2.3, §5).
    pub fn service_defaults() -> Self {
        Self {
            keep_alive_interval: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            connection_token_lifetime: Duration::from_secs(5),
            token_clock_skew: Duration::from_secs(300),
            slow_client_grace: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(100),
        }
    }
}

/// Everything the emulator needs to run; built by the binary from its flags or by tests in-process.
#[derive(Clone, Debug)]
pub struct Config {
    /// The keys a token may be signed with: the first is printed, any of them verifies (primary and secondary).
    pub access_keys: Vec<AccessKey>,
    /// Protocol timings.
    pub timings: Timings,
    /// Most client connections at once; more get 429, as a unit's quota does (docs/protocol/signalr-service.md §5.8).
    pub max_connections: usize,
    /// Messages queued for one client before REST sends start waiting for it.
    pub outbound_queue_capacity: usize,
    /// Where connection events and client invocations go (docs/protocol/signalr-service.md §6); `None` keeps the emulator without an
    /// upstream: invocations with an id get an error completion, the rest are dropped.
    pub upstream: Option<UpstreamTemplate>,
    /// The upstream setting's `auth: ManagedIdentity`: upstream requests carry the emulator's own
    /// managed-identity token for this resource as `Authorization: Bearer`. With local auth
    /// disabled they carry no `X-ASRS-Signature` (there is no key the app could check it with).
    pub upstream_identity: Option<UpstreamIdentity>,
    /// The Microsoft Entra ID stand-in whose tokens the REST API and `/api/v1/auth/accessKey` take;
    /// `None` refuses Entra tokens, as a resource without identity access would.
    pub entra: Option<EntraConfig>,
    /// `disableLocalAuth=true`: access-key tokens get 401 and the printed connection string names no key.
    pub local_auth_disabled: bool,
    /// How long a temporary access key verifies client tokens (the SDK's 120 minutes by default).
    pub temporary_key_lifetime: Duration,
}

impl Config {
    /// A configuration with one access key and the service's timings and limits.
    pub fn new(access_key: AccessKey) -> Self {
        Self {
            access_keys: vec![access_key],
            timings: Timings::service_defaults(),
            max_connections: 100_000,
            outbound_queue_capacity: 1024,
            upstream: None,
            upstream_identity: None,
            entra: None,
            local_auth_disabled: false,
            temporary_key_lifetime: DEFAULT_TEMPORARY_KEY_LIFETIME,
        }
    }

    /// The connection string an app server uses to reach this emulator on `port`, in the format of
    /// docs/protocol/signalr-service.md §1.
    ///
    /// It names `localhost`, as Microsoft's emulator does, so the token audiences it leads to are the same.
    /// With local auth disabled it carries no key, only `AuthType=azure.msi`: the app server must use its
    /// managed identity.
    pub fn connection_string(&self, port: u16) -> String {
        if self.local_auth_disabled {
            return format!("Endpoint=http://localhost:{port};AuthType=azure.msi;Version=1.0;");
        }
        let key = self
            .access_keys
            .first()
            .map(|key| String::from_utf8_lossy(key.hmac_key()).into_owned())
            .unwrap_or_default();
        format!("Endpoint=http://localhost;Port={port};AccessKey={key};Version=1.0;")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_parse_refuses_keys_that_break_the_connection_string() {
        for (key, description) in [
            ("", "empty"),
            ("a;b", "semicolon"),
            ("a b", "space"),
            ("a\nb", "newline"),
        ] {
            assert!(
                AccessKey::parse(key).is_err(),
                "accepted a key with {description}"
            );
        }
        assert!(AccessKey::parse("abc=").is_ok());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let text = format!("{:?}", Config::new(AccessKey::insecure_dev()));
        assert!(!text.contains(INSECURE_DEV_ACCESS_KEY));
    }

    #[test]
    fn without_local_auth_the_connection_string_is_identity_based() {
        let mut config = Config::new(AccessKey::insecure_dev());
        config.local_auth_disabled = true;
        assert_eq!(
            config.connection_string(8888),
            "Endpoint=http://localhost:8888;AuthType=azure.msi;Version=1.0;"
        );
    }

    #[test]
    fn connection_string_has_the_microsoft_emulator_shape() {
        let config = Config::new(AccessKey::insecure_dev());
        assert_eq!(
            config.connection_string(8888),
            "Endpoint=http://localhost;Port=8888;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
        );
    }
}
