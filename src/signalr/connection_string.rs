//! Azure SignalR connection strings, parsed the way the service SDK parses them
//! (`docs/protocol/signalr-service.md` §1), so that a string the SDK accepts is accepted here and
//! one it rejects fails at start-up with the same reason.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::identity::jwt::ServiceAudience;
use crate::settings::{ConfigError, Env};

/// A parsed access-key connection string.
///
/// Identity-based strings (`AuthType=azure…`) are refused: the handler signs client tokens itself
/// and needs the AccessKey to do so.
#[derive(Debug, Clone)]
pub struct ConnectionString {
    endpoint: Url,
    client_endpoint: Url,
    server_endpoint: Url,
    access_key: SecretString,
}

/// Why a connection string was refused. Messages never contain the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionStringError {
    /// The string has fewer properties than an Endpoint and a key need.
    #[error(
        "missing required properties endpoint (expected `Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;`)"
    )]
    TooFewParts,
    /// A property appears twice; the SDK refuses that too.
    #[error("duplicate properties found in connection string: `{0}`")]
    Duplicate(String),
    /// There is no `Endpoint` property.
    #[error("`Endpoint` is missing")]
    MissingEndpoint,
    /// The named URI property is not an absolute http(s) URI.
    #[error("invalid value for `{0}`: it must be an absolute http or https URI")]
    InvalidUri(&'static str),
    /// `Port` is not a TCP port number.
    #[error("invalid value for `Port`: it must be a number from 1 to 65535")]
    InvalidPort,
    /// `Version` names a version other than 1.0.
    #[error("version `{0}` is not supported (use 1.0)")]
    UnsupportedVersion(String),
    /// There is no `AccessKey` (identity-based string); the handler needs the key to sign.
    #[error(
        "`AccessKey` is missing; identity-based (AuthType=…) connection strings cannot be used because the handler signs client tokens with the AccessKey"
    )]
    MissingAccessKey,
}

impl ConnectionString {
    /// Parses `Key=Value;…` following the SDK's rules: keys case-insensitive, values split on the
    /// first `=`, unknown keys ignored, duplicates refused.
    pub fn parse(raw: &str) -> Result<Self, ConnectionStringError> {
        let parts: Vec<&str> = raw
            .split(';')
            .filter(|part| !part.trim().is_empty())
            .collect();
        if parts.len() < 2 {
            return Err(ConnectionStringError::TooFewParts);
        }
        let mut properties: HashMap<String, String> = HashMap::new();
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            if properties
                .insert(key.clone(), value.trim().to_owned())
                .is_some()
            {
                return Err(ConnectionStringError::Duplicate(key));
            }
        }

        let endpoint = properties
            .get("endpoint")
            .ok_or(ConnectionStringError::MissingEndpoint)?;
        let mut endpoint = parse_http_uri(endpoint.trim_end_matches('/'), "Endpoint")?;
        if let Some(port) = properties.get("port") {
            let port: u16 = port
                .parse()
                .map_err(|_| ConnectionStringError::InvalidPort)?;
            if port == 0 {
                return Err(ConnectionStringError::InvalidPort);
            }
            endpoint
                .set_port(Some(port))
                .map_err(|()| ConnectionStringError::InvalidPort)?;
        }
        if let Some(version) = properties.get("version")
            && !is_supported_version(version)
        {
            return Err(ConnectionStringError::UnsupportedVersion(version.clone()));
        }
        let client_endpoint = match properties.get("clientendpoint") {
            Some(value) => parse_http_uri(value.trim_end_matches('/'), "ClientEndpoint")?,
            None => endpoint.clone(),
        };
        let server_endpoint = match properties.get("serverendpoint") {
            Some(value) => parse_http_uri(value.trim_end_matches('/'), "ServerEndpoint")?,
            None => endpoint.clone(),
        };
        let access_key = properties
            .get("accesskey")
            .filter(|key| !key.is_empty())
            .ok_or(ConnectionStringError::MissingAccessKey)?;

        Ok(Self {
            endpoint,
            client_endpoint,
            server_endpoint,
            access_key: SecretString::from(access_key.clone()),
        })
    }

    /// `{scheme}://{host}/`: the audience base the service compares tokens against. Built from
    /// `Endpoint` without its port, never from `ClientEndpoint` (docs/protocol/signalr-service.md
    /// §2.1).
    pub fn audience_base(&self) -> String {
        format!(
            "{}://{}/",
            self.endpoint.scheme(),
            self.endpoint.host_str().unwrap_or_default()
        )
    }

    /// The audience of a client token for `hub`: `{audience_base}client/?hub={hub lower-cased}`.
    pub fn client_audience(&self, hub: &str) -> String {
        format!("{}client/?hub={}", self.audience_base(), hub.to_lowercase())
    }

    /// The URL a client is redirected to: ClientEndpoint (or Endpoint with its port).
    pub fn client_url(&self, hub: &str) -> String {
        format!(
            "{}/client/?hub={}",
            origin(&self.client_endpoint),
            hub.to_lowercase()
        )
    }

    /// Base URL for REST calls: ServerEndpoint (or Endpoint with its port), no trailing slash.
    pub fn server_base(&self) -> String {
        origin(&self.server_endpoint)
    }

    /// The AccessKey as the HMAC key: its UTF-8 bytes, never base64-decoded
    /// (docs/protocol/signalr-service.md §1).
    pub fn access_key(&self) -> &SecretString {
        &self.access_key
    }

    /// The audience this service issues its own tokens for (its endpoint, any path).
    pub fn service_audience(&self) -> ServiceAudience {
        ServiceAudience::new(&self.endpoint)
    }

    /// The endpoint's host, lower-cased (for Web PubSub, the `WebHook-Request-Origin` the service
    /// sends).
    pub fn host(&self) -> String {
        self.endpoint
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    /// True when `secret` equals the AccessKey (used to refuse configurations that share it).
    pub fn access_key_equals(&self, secret: &str) -> bool {
        self.access_key.expose_secret() == secret
    }
}

/// Reads the connection string from the setting `setting` (the one the app's SignalR bindings
/// name).
pub fn from_env(env: &Env, setting: &str) -> Result<ConnectionString, ConfigError> {
    let value = env.require(
        setting,
        "set it to the SignalR Service connection string, `Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;`",
    )?;
    ConnectionString::parse(&value).map_err(|error| ConfigError::new(setting, error.to_string()))
}

fn parse_http_uri(value: &str, name: &'static str) -> Result<Url, ConnectionStringError> {
    let url = Url::parse(value).map_err(|_| ConnectionStringError::InvalidUri(name))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConnectionStringError::InvalidUri(name));
    }
    Ok(url)
}

/// `{scheme}://{host}[:{port}]{path}` without a trailing slash.
fn origin(url: &Url) -> String {
    let mut text = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        text.push_str(&format!(":{port}"));
    }
    text.push_str(url.path().trim_end_matches('/'));
    text
}

/// The SDK's `^1\.\d+(?:[\w-.]+)?$`.
fn is_supported_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix("1.") else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0
        && rest[digits..]
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "INSECURE-TEST-KEY-0123456789abcdefghijklmnop=";

    #[test]
    fn parses_the_emulator_string_with_port_applied_to_urls_but_not_audience() {
        let cs = ConnectionString::parse(&format!(
            "Endpoint=http://localhost;Port=8888;AccessKey={KEY};Version=1.0;"
        ))
        .expect("valid");
        assert_eq!(
            cs.client_url("Chat"),
            "http://localhost:8888/client/?hub=chat"
        );
        assert_eq!(
            cs.client_audience("Chat"),
            "http://localhost/client/?hub=chat"
        );
        assert_eq!(cs.server_base(), "http://localhost:8888");
        assert!(cs.access_key_equals(KEY), "value keeps its trailing '='");
    }

    #[test]
    fn keys_are_case_insensitive_and_client_endpoint_changes_only_the_url() {
        let cs = ConnectionString::parse(&format!(
            "endpoint=https://x.service.signalr.net/;accesskey={KEY};ClientEndpoint=https://edge.example.com;version=1.0"
        ))
        .expect("valid");
        assert_eq!(
            cs.client_url("hub"),
            "https://edge.example.com/client/?hub=hub"
        );
        assert_eq!(
            cs.client_audience("hub"),
            "https://x.service.signalr.net/client/?hub=hub"
        );
        assert!(
            cs.service_audience()
                .contains("https://X.service.signalr.net:443/client/?hub=a")
        );
        assert!(
            !cs.service_audience()
                .contains("https://evil.example.com/client/?hub=a")
        );
    }

    #[test]
    fn refuses_what_the_sdk_refuses() {
        let cases = [
            ("Endpoint=https://x.net", ConnectionStringError::TooFewParts),
            (
                "Endpoint=https://x.net;endpoint=https://y.net;AccessKey=k",
                ConnectionStringError::Duplicate("endpoint".into()),
            ),
            (
                "AccessKey=k;Version=1.0",
                ConnectionStringError::MissingEndpoint,
            ),
            (
                "Endpoint=ftp://x.net;AccessKey=k",
                ConnectionStringError::InvalidUri("Endpoint"),
            ),
            (
                "Endpoint=https://x.net;AccessKey=k;Port=0",
                ConnectionStringError::InvalidPort,
            ),
            (
                "Endpoint=https://x.net;AccessKey=k;Port=70000",
                ConnectionStringError::InvalidPort,
            ),
            (
                "Endpoint=https://x.net;AccessKey=k;Version=2.0",
                ConnectionStringError::UnsupportedVersion("2.0".into()),
            ),
            (
                "Endpoint=https://x.net;AuthType=azure.msi;Version=1.0",
                ConnectionStringError::MissingAccessKey,
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(ConnectionString::parse(raw).err(), Some(expected), "{raw}");
        }
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let cs = ConnectionString::parse(&format!("Endpoint=https://x.net;AccessKey={KEY}"))
            .expect("valid");
        assert!(!format!("{cs:?}").contains(KEY));
    }
}
