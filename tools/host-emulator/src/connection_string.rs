//! Azure SignalR connection strings, parsed with the SDK's rules
//! (`docs/protocol/signalr-service.md` §1).

use url::Url;

/// A parsed connection string: an AccessKey, or `AuthType=azure.msi` (the host's managed
/// identity calls the REST API with its Microsoft Entra token, as the extension does).
#[derive(Clone)]
pub struct ServiceEndpoint {
    /// `{scheme}://{host}/` of `Endpoint`, never with a port: the base of every token `aud`.
    pub audience_base: String,
    /// Where clients connect: `ClientEndpoint`, or `Endpoint` with `Port` applied, no trailing `/`.
    pub client_endpoint: String,
    /// Where REST calls go: `ServerEndpoint`, or `Endpoint` with `Port` applied, no trailing `/`.
    pub server_endpoint: String,
    /// `None` with `AuthType=azure.msi`.
    access_key: Option<String>,
}

impl std::fmt::Debug for ServiceEndpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceEndpoint")
            .field("audience_base", &self.audience_base)
            .field("client_endpoint", &self.client_endpoint)
            .field("server_endpoint", &self.server_endpoint)
            .field("access_key", &"[redacted]")
            .finish()
    }
}

impl ServiceEndpoint {
    /// Parses `Endpoint=…;AccessKey=…;Version=1.0;[Port=…;][ClientEndpoint=…;][ServerEndpoint=…;]`.
    /// Errors never contain the access key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text
            .split(';')
            .filter(|part| !part.trim().is_empty())
            .collect();
        if parts.len() < 2 {
            return Err("Connection string missing required properties endpoint".into());
        }
        let mut properties: Vec<(String, String)> = Vec::new();
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            if properties.iter().any(|(existing, _)| *existing == key) {
                return Err("Duplicate properties found in connection string".into());
            }
            properties.push((key, value.trim().to_owned()));
        }
        let get = |name: &str| {
            properties
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let managed_identity = match get("authtype") {
            None => false,
            Some(auth_type) if auth_type.eq_ignore_ascii_case("azure.msi") => true,
            Some(auth_type) => {
                return Err(format!(
                    "AuthType={auth_type}: only AuthType=azure.msi (managed identity) is emulated; or use an AccessKey"
                ));
            }
        };
        let endpoint = parse_http_url(
            get("endpoint").ok_or("Connection string missing required properties endpoint")?,
            "endpoint",
        )?;
        if let Some(version) = get("version") {
            let valid = version
                .strip_prefix("1.")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            if !valid {
                return Err(format!("Version {version} is not supported."));
            }
        }
        let access_key = if managed_identity {
            None
        } else {
            Some(
                get("accesskey")
                    .filter(|key| !key.is_empty())
                    .ok_or("Connection string missing required properties accesskey")?
                    .to_owned(),
            )
        };
        let mut endpoint_with_port = endpoint.clone();
        if let Some(port) = get("port") {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| format!("Invalid port value: {port}"))?;
            endpoint_with_port
                .set_port(Some(port))
                .map_err(|_| "Invalid value for endpoint property".to_owned())?;
        }
        let host = endpoint
            .host_str()
            .ok_or("Invalid value for endpoint property, it must be a valid URI.")?;
        let audience_base = format!("{}://{}/", endpoint.scheme(), host);
        let trim = |url: &Url| url.as_str().trim_end_matches('/').to_owned();
        let client_endpoint = match get("clientendpoint") {
            Some(value) => trim(&parse_http_url(value, "clientEndpoint")?),
            None => trim(&endpoint_with_port),
        };
        let server_endpoint = match get("serverendpoint") {
            Some(value) => trim(&parse_http_url(value, "serverEndpoint")?),
            None => trim(&endpoint_with_port),
        };
        Ok(Self {
            audience_base,
            client_endpoint,
            server_endpoint,
            access_key,
        })
    }

    /// The HMAC key: the UTF-8 bytes of the AccessKey as written (not base64-decoded); `None`
    /// with a managed identity.
    pub fn signing_key(&self) -> Option<&[u8]> {
        self.access_key.as_deref().map(str::as_bytes)
    }
}

fn parse_http_url(value: &str, name: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim_end_matches('/'))
        .map_err(|_| format!("Invalid value for {name} property, it must be a valid URI."))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "Invalid value for {name} property, it must be a valid URI."
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_string_gives_a_portless_audience_and_a_client_url_with_port() {
        let endpoint = ServiceEndpoint::parse(
            "Endpoint=http://localhost;Port=8888;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;",
        )
        .expect("valid");
        assert_eq!(endpoint.audience_base, "http://localhost/");
        assert_eq!(endpoint.client_endpoint, "http://localhost:8888");
        assert_eq!(endpoint.server_endpoint, "http://localhost:8888");
        assert_eq!(
            endpoint.signing_key(),
            Some(&b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"[..])
        );
        assert!(!format!("{endpoint:?}").contains("ABCDEF"));
    }

    #[test]
    fn client_and_server_endpoints_do_not_change_the_audience() {
        let endpoint = ServiceEndpoint::parse(
            "endpoint=https://contoso.service.signalr.net;accesskey=k=;ClientEndpoint=https://client.example;ServerEndpoint=http://127.0.0.1:9000/",
        )
        .expect("valid");
        assert_eq!(
            endpoint.audience_base,
            "https://contoso.service.signalr.net/"
        );
        assert_eq!(endpoint.client_endpoint, "https://client.example");
        assert_eq!(endpoint.server_endpoint, "http://127.0.0.1:9000");
        assert_eq!(endpoint.signing_key(), Some(&b"k="[..]));
    }

    #[test]
    fn invalid_strings_are_refused_without_echoing_the_key() {
        for (text, reason) in [
            ("Endpoint=http://x", "one part"),
            ("AccessKey=secret-key;Version=1.0", "no endpoint"),
            ("Endpoint=ftp://x;AccessKey=secret-key", "bad scheme"),
            (
                "Endpoint=http://x;AccessKey=secret-key;Version=2.0",
                "bad version",
            ),
            ("Endpoint=http://x;AccessKey=secret-key;Port=0", "bad port"),
            (
                "Endpoint=http://x;endpoint=http://y;AccessKey=secret-key",
                "duplicate",
            ),
            (
                "Endpoint=http://x;AuthType=azure.app",
                "unsupported identity type",
            ),
        ] {
            let error = ServiceEndpoint::parse(text).expect_err(reason);
            assert!(!error.contains("secret-key"), "{reason}: {error}");
        }
    }
}
