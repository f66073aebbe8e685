//! A service proving itself with its managed-identity token (keyless mode): Web PubSub event
//! requests (`connect`) and SignalR upstream requests (`upstream`) carry
//! `Authorization: Bearer <token>`, a v1 Entra token the service's identity requested for a
//! resource the operator configured on the service. One implementation for both, so the two
//! functions cannot drift apart in what they accept.
//!
//! Accepted: RS256 only, keys from the issuer's OpenID metadata, the exact issuer
//! (`https://sts.windows.net/<tenant>/`), the configured audience, unexpired (5 min skew), and
//! `appid` or `oid` equal to the configured identity (so another app of the same tenant that asks
//! for the same resource is refused). The token is never logged or echoed.

use crate::identity::jwt::{JwtSettings, JwtVerifier, KeySource, ServiceAudience};
use crate::invocation::HttpRequestData;
use crate::settings::{ConfigError, Env};

/// Who may call a function as the service, when there is no key.
#[derive(Debug, Clone)]
pub struct ServiceIdentitySettings {
    /// Issuer, audience and keys (OpenID discovery from the issuer), RS256 only.
    pub jwt: JwtSettings,
    /// The service identity's `appid` or `oid`.
    pub identity: String,
}

/// The names of one function's settings, and what they are for (for start-up messages).
#[derive(Debug, Clone, Copy)]
pub struct ServiceIdentitySettingNames {
    /// The tenant id (`https://sts.windows.net/<tenant>/` is the issuer).
    pub tenant_id: &'static str,
    /// The exact issuer, for local stand-ins; exclusive with `tenant_id`.
    pub issuer: &'static str,
    /// The resource the service requests its token for.
    pub audience: &'static str,
    /// The service identity's client or object id.
    pub identity: &'static str,
    /// Which service this is, e.g. "the Web PubSub identity".
    pub service: &'static str,
    /// Where the resource is configured on the service, e.g. "the event handler's auth setting".
    pub resource_hint: &'static str,
}

impl ServiceIdentitySettingNames {
    /// All four setting names.
    pub fn all(&self) -> [&'static str; 4] {
        [self.tenant_id, self.issuer, self.audience, self.identity]
    }

    /// The first of the settings that is set, if any.
    pub fn first_set(&self, env: &Env) -> Option<&'static str> {
        self.all().into_iter().find(|name| env.get(name).is_some())
    }
}

impl ServiceIdentitySettings {
    /// Reads the settings named by `names`; all are required (the tenant id or the issuer), and
    /// every error names the setting to fix. `why` says why the token is expected, for the
    /// message when the tenant is missing.
    pub fn from_env(
        env: &Env,
        names: &ServiceIdentitySettingNames,
        why: &str,
    ) -> Result<Self, ConfigError> {
        let issuer = match (env.get(names.issuer), env.get(names.tenant_id)) {
            (Some(issuer), None) => issuer,
            (None, Some(tenant)) if is_tenant_id(&tenant) => {
                format!("https://sts.windows.net/{tenant}/")
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    names.tenant_id,
                    "must be a tenant id (a GUID), not a URL",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    names.issuer,
                    format!(
                        "and {} are both set; set only the tenant id (the issuer is for local stand-ins)",
                        names.tenant_id
                    ),
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    names.tenant_id,
                    format!(
                        "is not set; {why}, so requests carry the service's managed-identity token, and the handler needs the tenant whose keys sign it"
                    ),
                ));
            }
        };
        let issuer_url = url::Url::parse(&issuer)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                ConfigError::new(
                    names.issuer,
                    format!("`{issuer}` is not an absolute http(s) URL"),
                )
            })?;
        let audience = env.require(
            names.audience,
            &format!(
                "set it to the resource {} requests tokens for ({})",
                names.service, names.resource_hint
            ),
        )?;
        let identity = env.require(
            names.identity,
            &format!(
                "set it to {}'s client (appid) or object (oid) id",
                names.service
            ),
        )?;
        Ok(Self {
            jwt: JwtSettings {
                issuers: vec![issuer],
                audiences: vec![audience],
                key_source: KeySource::OidcDiscovery(issuer_url),
                algorithms: vec![jsonwebtoken::Algorithm::RS256],
                user_id_claim: "oid".to_owned(),
                clock_skew: std::time::Duration::from_secs(300),
                jwks_refresh_interval: std::time::Duration::from_secs(30),
            },
            identity,
        })
    }
}

/// A tenant id is a path segment of the issuer: nothing that could change the URL's shape.
fn is_tenant_id(tenant: &str) -> bool {
    tenant.starts_with(|c: char| c.is_ascii_alphanumeric())
        && tenant.len() <= 64
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
}

/// Why a request did not prove it comes from the service. Reasons are fixed texts: never the
/// token or any part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServiceTokenRefused(pub &'static str);

/// Verifies a service's managed-identity token on its requests (keyless mode).
pub struct ServiceTokenVerifier {
    jwt: JwtVerifier,
    identity: String,
}

impl ServiceTokenVerifier {
    /// Builds the verifier (its JWKS cache) for `settings`.
    pub fn new(
        settings: &ServiceIdentitySettings,
        service: &ServiceAudience,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            jwt: JwtVerifier::new(&settings.jwt, service)?,
            identity: settings.identity.clone(),
        })
    }

    /// Checks the request's single `Authorization: Bearer` token: signature, issuer, audience,
    /// expiry, and `appid` or `oid` equal to the configured identity.
    pub async fn verify(&self, request: &HttpRequestData) -> Result<(), ServiceTokenRefused> {
        let header = match request.header_values("Authorization").as_slice() {
            [value] => value.trim(),
            _ => {
                return Err(ServiceTokenRefused(
                    "no single Authorization header (keyless mode)",
                ));
            }
        };
        let token = header
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("Bearer "))
            .and_then(|_| header.get(7..))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(ServiceTokenRefused("Authorization is not a Bearer token"))?;
        let caller =
            self.jwt.verify(token).await.map_err(|_| {
                ServiceTokenRefused("the bearer token is not a valid service token")
            })?;
        let is_identity = |claim: &str| {
            caller
                .claim(claim)
                .and_then(serde_json::Value::as_str)
                .is_some_and(|value| value.eq_ignore_ascii_case(&self.identity))
        };
        if !(is_identity("appid") || is_identity("oid")) {
            return Err(ServiceTokenRefused(
                "the bearer token is not the configured service identity's",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_cannot_reshape_the_issuer() {
        assert!(is_tenant_id("11111111-1111-4111-8111-111111111111"));
        assert!(is_tenant_id("contoso.onmicrosoft.com"));
        for bad in [
            "",
            "..",
            "a/b",
            "x?y",
            "x#y",
            "https://evil",
            "a b",
            "..%2f",
        ] {
            assert!(!is_tenant_id(bad), "{bad}");
        }
    }
}
