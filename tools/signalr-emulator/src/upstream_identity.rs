//! Managed-identity upstream auth: the service's upstream setting `auth: ManagedIdentity` with a
//! resource makes it send `Authorization: Bearer <token>` on every upstream request, a token its
//! own managed identity got for that resource. The emulator gets its token the way an Azure
//! process does, from an identity endpoint (`IDENTITY_ENDPOINT` shape: `GET ?resource=…&api-version=2019-08-01`
//! with `X-IDENTITY-HEADER`; tools/dev-idp's `/msi/token` locally), and caches it until five minutes
//! before it expires. The token and the identity header are secrets: never logged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The identity endpoint's API version (App Service / Functions).
const API_VERSION: &str = "2019-08-01";
/// A token this close to its end is replaced before it is sent.
const REFRESH_MARGIN_SECONDS: u64 = 300;
/// Largest identity-endpoint answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where the emulator gets its managed-identity token for upstream requests.
#[derive(Clone)]
pub struct UpstreamIdentity {
    endpoint: url::Url,
    header: SecretString,
    resource: String,
}

/// Why upstream identity settings were refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamIdentityError {
    /// The endpoint is not an absolute http(s) URL.
    #[error("the identity endpoint is not an absolute http:// or https:// URL")]
    Endpoint,
    /// The header value is empty or not sendable.
    #[error("the identity header is empty or holds control characters")]
    Header,
    /// The resource is empty or not a plain value.
    #[error(
        "the token resource is empty, holds whitespace or control characters, or ends with /.default"
    )]
    Resource,
}

impl UpstreamIdentity {
    /// Checks the endpoint, the `X-IDENTITY-HEADER` value and the resource (the upstream
    /// setting's `auth.resource`: the audience of the token the app will check).
    pub fn new(
        endpoint: &str,
        header: &str,
        resource: &str,
    ) -> Result<Self, UpstreamIdentityError> {
        let endpoint = url::Url::parse(endpoint)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or(UpstreamIdentityError::Endpoint)?;
        if header.is_empty() || header.chars().any(char::is_control) {
            return Err(UpstreamIdentityError::Header);
        }
        if resource.is_empty()
            || resource.len() > 512
            || resource
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            || resource.ends_with("/.default")
        {
            return Err(UpstreamIdentityError::Resource);
        }
        Ok(Self {
            endpoint,
            header: SecretString::from(header.to_owned()),
            resource: resource.to_owned(),
        })
    }

    /// The resource tokens are requested for.
    pub fn resource(&self) -> &str {
        &self.resource
    }
}

impl std::fmt::Debug for UpstreamIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UpstreamIdentity")
            .field("endpoint", &self.endpoint.origin().ascii_serialization())
            .field("header", &"[REDACTED]")
            .field("resource", &self.resource)
            .finish()
    }
}

/// The identity endpoint's answer (`expires_on` is seconds since the epoch, as a string).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_on: String,
}

/// The cached token and when it ends.
struct Cached {
    token: SecretString,
    expires_on: u64,
}

/// Gets and caches the emulator's upstream token.
pub(crate) struct IdentityTokens {
    identity: UpstreamIdentity,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl IdentityTokens {
    /// Tokens from `identity`, fetched with `http`.
    pub(crate) fn new(identity: UpstreamIdentity, http: reqwest::Client) -> Self {
        Self {
            identity,
            http,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid for at least the refresh margin, fetched when the cached one is not. The
    /// error is a fixed text (no URL, no header, no token).
    pub(crate) async fn token(&self) -> Result<SecretString, &'static str> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if let Some(current) = cached
            .as_ref()
            .filter(|current| current.expires_on > now + REFRESH_MARGIN_SECONDS)
        {
            return Ok(current.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn fetch(&self) -> Result<Cached, &'static str> {
        let mut url = self.identity.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("resource", &self.identity.resource)
            .append_pair("api-version", API_VERSION);
        let response = self
            .http
            .get(url)
            .header("X-IDENTITY-HEADER", self.identity.header.expose_secret())
            .send()
            .await
            .map_err(|_| "the identity endpoint could not be reached")?;
        if !response.status().is_success() {
            return Err("the identity endpoint refused the token request");
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
        {
            return Err("the identity endpoint's answer is too large");
        }
        let body = response
            .bytes()
            .await
            .map_err(|_| "the identity endpoint's answer could not be read")?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err("the identity endpoint's answer is too large");
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| "the identity endpoint's answer is not a token")?;
        let expires_on = answer
            .expires_on
            .trim()
            .parse::<u64>()
            .map_err(|_| "the identity endpoint's expires_on is not a number")?;
        if answer.access_token.is_empty()
            || answer
                .access_token
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("the identity endpoint's access_token is not a token");
        }
        Ok(Cached {
            token: SecretString::from(answer.access_token),
            expires_on,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_the_header_never_shows() {
        let identity = UpstreamIdentity::new(
            "http://localhost:7072/msi/token",
            "insecure-header",
            "api://upstream",
        )
        .expect("valid");
        assert!(!format!("{identity:?}").contains("insecure-header"));
        assert_eq!(
            UpstreamIdentity::new("not a url", "h", "r").err(),
            Some(UpstreamIdentityError::Endpoint)
        );
        assert_eq!(
            UpstreamIdentity::new("http://h/", "", "r").err(),
            Some(UpstreamIdentityError::Header)
        );
        for resource in ["", "a b", "https://x/.default"] {
            assert_eq!(
                UpstreamIdentity::new("http://h/", "h", resource).err(),
                Some(UpstreamIdentityError::Resource),
                "{resource:?}"
            );
        }
    }
}
