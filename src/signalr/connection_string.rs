//! Azure SignalR connection strings, parsed the way the service SDK parses them
//! (`docs/protocol/signalr-service.md` §1), so that a string the SDK accepts is accepted here and
//! one it rejects fails at start-up with the same reason.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::identity::jwt::ServiceAudience;
use crate::settings::{ConfigError, Env};

/// A parsed connection string: an access-key string, or an identity-based one
/// (`AuthType=azure.msi`, or the `<name>__serviceUri` settings) whose keys come from the
/// service at run time (`signalr::service_auth`).
#[derive(Debug, Clone)]
pub struct ConnectionString {
    endpoint: Url,
    client_endpoint: Url,
    server_endpoint: Url,
    credential: Credential,
}

/// How the handler proves itself to the service.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The AccessKey from the connection string signs client and REST tokens.
    AccessKey(SecretString),
    /// The app's managed identity: REST calls carry its Microsoft Entra token, and client tokens
    /// are signed with temporary keys fetched with it. `client_id` names a user-assigned identity.
    ManagedIdentity {
        /// The user-assigned identity's client id; `None` for the system-assigned identity.
        client_id: Option<String>,
    },
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
    /// There is neither an `AccessKey` nor `AuthType=azure.msi`.
    #[error(
        "`AccessKey` is missing; add `AccessKey=<key>`, or use a managed identity with `AuthType=azure.msi`"
    )]
    MissingAccessKey,
    /// An `AuthType` other than managed identity: the others need a secret or certificate in
    /// settings, which is what keyless deployments avoid.
    #[error(
        "`AuthType={0}` is not supported; use `AuthType=azure.msi` (managed identity, optionally with `ClientId=`) or an AccessKey"
    )]
    UnsupportedAuthType(String),
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
        let access_key = properties.get("accesskey").filter(|key| !key.is_empty());
        let auth_type = properties
            .get("authtype")
            .filter(|value| !value.is_empty())
            .map(|value| value.to_ascii_lowercase());
        let credential = match (access_key, auth_type.as_deref()) {
            // The SDK uses the key whenever AuthType is absent; with AuthType=azure.msi the key,
            // if any, is ignored, as there.
            (_, Some("azure.msi")) => Credential::ManagedIdentity {
                client_id: properties
                    .get("clientid")
                    .filter(|id| !id.is_empty())
                    .cloned(),
            },
            (_, Some(other)) => {
                return Err(ConnectionStringError::UnsupportedAuthType(other.to_owned()));
            }
            (Some(key), None) => Credential::AccessKey(SecretString::from(key.clone())),
            (None, None) => return Err(ConnectionStringError::MissingAccessKey),
        };

        Ok(Self {
            endpoint,
            client_endpoint,
            server_endpoint,
            credential,
        })
    }

    /// The identity-based form `<name>__serviceUri` (+ `__clientId`): the service URI alone.
    pub fn managed_identity(
        service_uri: &str,
        client_id: Option<String>,
    ) -> Result<Self, ConnectionStringError> {
        let endpoint = parse_http_uri(service_uri.trim_end_matches('/'), "serviceUri")?;
        Ok(Self {
            client_endpoint: endpoint.clone(),
            server_endpoint: endpoint.clone(),
            endpoint,
            credential: Credential::ManagedIdentity { client_id },
        })
    }

    /// How the handler authenticates to the service.
    pub fn credential(&self) -> &Credential {
        &self.credential
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
    /// `None` for identity-based strings.
    pub fn access_key(&self) -> Option<&SecretString> {
        match &self.credential {
            Credential::AccessKey(key) => Some(key),
            Credential::ManagedIdentity { .. } => None,
        }
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
        self.access_key()
            .is_some_and(|key| key.expose_secret() == secret)
    }
}

/// The connection string the setting `setting` names, and the name it was found under.
///
/// Read the way the SignalR extension reads it (`IConfiguration`, names case-insensitive, see
/// `Settings::from_env`): `ConnectionStrings:<name>` first (in the environment
/// `ConnectionStrings__<name>`, or the portal's "Connection strings" entry
/// `CUSTOMCONNSTR_<name>`), then `<name>`; if none is set, the identity-based section
/// `<name>__serviceUri` (+ `__clientId`, `__credential`).
pub fn from_env(env: &Env, setting: &str) -> Result<(ConnectionString, String), ConfigError> {
    let candidates = [
        format!("ConnectionStrings:{setting}"),
        format!("ConnectionStrings__{setting}"),
        format!("CUSTOMCONNSTR_{setting}"),
        setting.to_owned(),
    ];
    for name in candidates {
        if let Some(value) = env.get(&name) {
            let parsed = ConnectionString::parse(&value)
                .map_err(|error| ConfigError::new(name.as_str(), error.to_string()))?;
            return Ok((parsed, name));
        }
    }
    let uri_setting = format!("{setting}__serviceUri");
    let Some(service_uri) = env
        .get(&uri_setting)
        .or_else(|| env.get(&format!("{setting}:serviceUri")))
    else {
        return Err(ConfigError::new(
            setting,
            format!(
                "is not set; set it to the SignalR Service connection string \
                 (`Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;`, or \
                 `Endpoint=…;AuthType=azure.msi;Version=1.0;` for a managed identity), or set \
                 `{uri_setting}` to the service URI for a managed identity"
            ),
        ));
    };
    let credential_setting = format!("{setting}__credential");
    if let Some(credential) = env.get(&credential_setting)
        && !credential.eq_ignore_ascii_case("managedidentity")
    {
        return Err(ConfigError::new(
            credential_setting,
            format!("`{credential}` is not supported; use `managedidentity` or leave it unset"),
        ));
    }
    let client_id = env.get(&format!("{setting}__clientId"));
    let parsed = ConnectionString::managed_identity(&service_uri, client_id)
        .map_err(|error| ConfigError::new(uri_setting.as_str(), error.to_string()))?;
    Ok((parsed, uri_setting))
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
                "Endpoint=https://x.net;Version=1.0",
                ConnectionStringError::MissingAccessKey,
            ),
            (
                "Endpoint=https://x.net;AuthType=azure.app;ClientSecret=s;Version=1.0",
                ConnectionStringError::UnsupportedAuthType("azure.app".into()),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(ConnectionString::parse(raw).err(), Some(expected), "{raw}");
        }
    }

    #[test]
    fn managed_identity_strings_parse_with_an_optional_client_id() {
        let cs = ConnectionString::parse(
            "Endpoint=https://x.service.signalr.net;AuthType=azure.msi;ClientId=abc;Version=1.0;",
        )
        .expect("valid");
        assert!(matches!(
            cs.credential(),
            Credential::ManagedIdentity { client_id: Some(id) } if id == "abc"
        ));
        assert!(cs.access_key().is_none());
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let cs = ConnectionString::parse(&format!("Endpoint=https://x.net;AccessKey={KEY}"))
            .expect("valid");
        assert!(!format!("{cs:?}").contains(KEY));
    }
}
