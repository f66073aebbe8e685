//! **INSECURE, development only.** A stand-in for the managed-identity endpoint a Function app
//! gets as `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` (`docs/protocol/signalr-identity-2026.md` §2.4),
//! and for the Microsoft Entra tenant that signs its tokens.
//!
//! `GET /msi/token?resource=…&api-version=2019-08-01[&client_id=…|principal_id=…|object_id=…]`
//! with `X-IDENTITY-HEADER` answers `{"access_token", "expires_on", "resource", "token_type",
//! "client_id"}` like App Service does. The token is shaped like an Entra v1 app token: `iss` is
//! this issuer's tenant URL (`{base}/{tenant}/`, standing in for `https://sts.windows.net/{tenant}/`),
//! `aud` the requested resource, `oid`/`sub`/`appid` the configured identity and `roles` the
//! SignalR data-plane roles the identity is meant to hold. Azure checks role assignments on its
//! side; the stand-in carries them in the token so the emulator can check them without a control
//! plane. Keys are the issuer's RS256 key, listed in `/jwks` and in the tenant discovery document
//! `GET /{tenant}/.well-known/openid-configuration`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, json};

use crate::routes::IdpState;

/// The resource a SignalR app server asks for (the scope `https://signalr.azure.com/.default`
/// minus `/.default`, docs/protocol/signalr-identity-2026.md §2.4), and the `aud` the emulator
/// requires.
pub const SIGNALR_RESOURCE: &str = "https://signalr.azure.com";

/// The only api-version the endpoint speaks; the 2017-09-01 variant used a `secret` header.
pub const MANAGED_IDENTITY_API_VERSION: &str = "2019-08-01";

/// The header that proves the caller runs inside the app (it blocks server-side request forgery).
pub const IDENTITY_HEADER_NAME: &str = "x-identity-header";

/// The role that allows both the temporary access key and every REST call, granted by default so
/// the keyless local stack works with no flags.
pub const SIGNALR_SERVICE_OWNER: &str = "SignalR Service Owner";

/// The made-up tenant of the stand-in issuer; a fixed value so local settings can name it.
pub const DEV_TENANT_ID: &str = "11111111-1111-4111-8111-111111111111";

/// The made-up client (application) id of the development managed identity.
pub const DEV_MI_CLIENT_ID: &str = "22222222-2222-4222-8222-222222222222";

/// The made-up object (principal) id of the development managed identity.
pub const DEV_MI_OBJECT_ID: &str = "33333333-3333-4333-8333-333333333333";

/// Managed-identity tokens live a day, as Azure's do; at most this much either way.
pub const MAX_MI_LIFETIME_SECONDS: i64 = 86_400;

const MAX_TEXT: usize = 256;

/// The development managed identity and its endpoint's secret header.
#[derive(Clone)]
pub struct ManagedIdentityOptions {
    /// The `X-IDENTITY-HEADER` value callers must send; `None` generates a random one at start.
    pub identity_header: Option<String>,
    /// The tenant in the stand-in issuer URL and in `tid`.
    pub tenant_id: String,
    /// `appid` and `client_id` of the identity; a request's `client_id` must match it.
    pub client_id: String,
    /// `oid` and `sub` of the identity; a request's `principal_id`/`object_id` must match it.
    pub object_id: String,
    /// The `roles` claim: the SignalR data-plane roles the identity stands in as holding.
    pub roles: Vec<String>,
    /// Token lifetime in seconds; negative gives already-expired tokens, for refusal tests.
    pub lifetime_seconds: i64,
}

impl std::fmt::Debug for ManagedIdentityOptions {
    /// Everything but the identity header, which is a secret of the app.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ManagedIdentityOptions")
            .field(
                "identity_header",
                &self.identity_header.as_ref().map(|_| "[REDACTED]"),
            )
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("object_id", &self.object_id)
            .field("roles", &self.roles)
            .field("lifetime_seconds", &self.lifetime_seconds)
            .finish()
    }
}

impl Default for ManagedIdentityOptions {
    /// The development identity holding "SignalR Service Owner", so the keyless stack works out of
    /// the box.
    fn default() -> Self {
        Self {
            identity_header: None,
            tenant_id: DEV_TENANT_ID.to_owned(),
            client_id: DEV_MI_CLIENT_ID.to_owned(),
            object_id: DEV_MI_OBJECT_ID.to_owned(),
            roles: vec![SIGNALR_SERVICE_OWNER.to_owned()],
            lifetime_seconds: MAX_MI_LIFETIME_SECONDS,
        }
    }
}

impl ManagedIdentityOptions {
    /// Checks the options once at start so a typo fails loudly instead of minting odd tokens.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(header) = &self.identity_header
            && (header.is_empty()
                || header.len() > MAX_TEXT
                || !header.bytes().all(|byte| byte.is_ascii_graphic()))
        {
            return Err(format!(
                "the identity header must be 1 to {MAX_TEXT} visible ASCII characters"
            ));
        }
        for (name, value) in [
            ("tenant id", &self.tenant_id),
            ("client id", &self.client_id),
            ("object id", &self.object_id),
        ] {
            if value.is_empty()
                || value.len() > MAX_TEXT
                || !value
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            {
                return Err(format!(
                    "the managed identity's {name} must be 1 to {MAX_TEXT} letters, digits or '-'"
                ));
            }
        }
        if self
            .roles
            .iter()
            .any(|role| role.trim().is_empty() || role.len() > MAX_TEXT)
        {
            return Err(format!("each role must be 1 to {MAX_TEXT} characters"));
        }
        if self.lifetime_seconds == 0
            || !(-MAX_MI_LIFETIME_SECONDS..=MAX_MI_LIFETIME_SECONDS)
                .contains(&self.lifetime_seconds)
        {
            return Err(format!(
                "the managed-identity token lifetime must be non-zero and within ±{MAX_MI_LIFETIME_SECONDS} s"
            ));
        }
        Ok(())
    }
}

/// The identity as the routes use it, with the header fixed.
pub(crate) struct ManagedIdentity {
    pub(crate) identity_header: String,
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) object_id: String,
    pub(crate) roles: Vec<String>,
    pub(crate) lifetime_seconds: i64,
}

impl ManagedIdentity {
    /// Fixes the header: the configured one, or 32 random bytes as hex.
    pub(crate) fn new(options: ManagedIdentityOptions) -> anyhow::Result<Self> {
        let identity_header = match options.identity_header {
            Some(header) => header,
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|error| anyhow::anyhow!("no OS randomness: {error}"))?;
                bytes.iter().map(|byte| format!("{byte:02x}")).collect()
            }
        };
        Ok(Self {
            identity_header,
            tenant_id: options.tenant_id,
            client_id: options.client_id,
            object_id: options.object_id,
            roles: options.roles,
            lifetime_seconds: options.lifetime_seconds,
        })
    }
}

/// The stand-in for `https://sts.windows.net/{tenant}/`: the issuer base URL, the tenant, a slash.
pub(crate) fn tenant_issuer(state: &IdpState) -> String {
    format!("{}/{}/", state.issuer, state.managed_identity.tenant_id)
}

/// `GET /{tenant}/.well-known/openid-configuration`: where verifiers of managed-identity tokens
/// find the issuer and the keys, as Entra's per-tenant discovery does.
pub(crate) async fn tenant_discovery(
    State(state): State<Arc<IdpState>>,
    Path(tenant): Path<String>,
) -> Response {
    if tenant != state.managed_identity.tenant_id {
        return error(StatusCode::NOT_FOUND, "invalid_tenant", "No such tenant.");
    }
    Json(json!({
        "issuer": tenant_issuer(&state),
        "jwks_uri": format!("{}/jwks", state.issuer),
        "token_endpoint": format!("{}/msi/token", state.issuer),
        "id_token_signing_alg_values_supported": ["RS256"],
        "x-insecure-development-only": true,
    }))
    .into_response()
}

/// A refusal in the `{"error", "error_description"}` shape of the identity endpoint.
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn bad_request(description: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Compares without stopping at the first difference, so timing says nothing about the header.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// `GET /msi/token`: the managed-identity token request of App Service and Functions
/// (docs/protocol/signalr-identity-2026.md §2.4).
pub(crate) async fn token(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let identity = &state.managed_identity;
    let mut given = headers.get_all(IDENTITY_HEADER_NAME).iter();
    let header_ok = match (given.next(), given.next()) {
        (Some(value), None) => same_secret(value.as_bytes(), identity.identity_header.as_bytes()),
        _ => false,
    };
    if !header_ok {
        // Never echo what was sent: it might be a real secret sent to the wrong place.
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The X-IDENTITY-HEADER header is missing or wrong; send the IDENTITY_HEADER value this dev-idp printed (the 2017-09-01 `secret` header is not supported).",
        );
    }
    let resource = match requested_resource(identity, query.as_deref().unwrap_or_default()) {
        Ok(resource) => resource,
        Err(description) => return bad_request(&description),
    };
    match issue(&state, &resource) {
        Ok((token, expires_on)) => Json(json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }))
        .into_response(),
        Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &message),
    }
}

/// Checks the query of a token request and returns the resource; the error is the 400's text.
fn requested_resource(identity: &ManagedIdentity, query: &str) -> Result<String, String> {
    let parameters: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let single = |name: &str| -> Result<Option<&str>, String> {
        let mut values = parameters.iter().filter(|(key, _)| key == name);
        let first = values.next().map(|(_, value)| value.as_str());
        if values.next().is_some() {
            return Err(format!(
                "The query parameter '{name}' must not be repeated."
            ));
        }
        Ok(first)
    };
    match single("api-version")? {
        Some(MANAGED_IDENTITY_API_VERSION) => {}
        Some(_) => {
            return Err(format!(
                "Unsupported api-version; this endpoint speaks {MANAGED_IDENTITY_API_VERSION}."
            ));
        }
        None => {
            return Err(format!(
                "The query parameter 'api-version' is required ({MANAGED_IDENTITY_API_VERSION})."
            ));
        }
    }
    let resource = single("resource")?.unwrap_or_default().trim();
    if resource.is_empty() {
        return Err(
            "The query parameter 'resource' is required (e.g. https://signalr.azure.com).".into(),
        );
    }
    if resource.len() > MAX_TEXT || resource.chars().any(char::is_control) {
        return Err(format!(
            "'resource' must be at most {MAX_TEXT} characters without control characters."
        ));
    }
    if resource.ends_with("/.default") {
        return Err("'resource' is a resource URI, not a scope: drop '/.default'.".into());
    }
    let mut selectors = Vec::new();
    for name in ["client_id", "principal_id", "object_id", "mi_res_id"] {
        if let Some(value) = single(name)? {
            selectors.push((name, value));
        }
    }
    match selectors.as_slice() {
        [] => {}
        [("client_id", id)] if id.eq_ignore_ascii_case(&identity.client_id) => {}
        [("principal_id" | "object_id", id)] if id.eq_ignore_ascii_case(&identity.object_id) => {}
        [("mi_res_id", _)] => {
            return Err("'mi_res_id' is not supported here; use client_id or principal_id.".into());
        }
        [(name, _)] => {
            return Err(format!(
                "No managed identity with this {name} is assigned to the app."
            ));
        }
        _ => {
            return Err(
                "Give at most one of client_id, principal_id, object_id and mi_res_id.".into(),
            );
        }
    }
    Ok(resource.to_owned())
}

/// Mints the v1-shaped app token for `resource`; returns it and its `exp`.
fn issue(state: &IdpState, resource: &str) -> Result<(String, i64), String> {
    let identity = &state.managed_identity;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0);
    let expires = now + identity.lifetime_seconds;
    // An expired token is issued entirely in the past, so it is refused for `exp` alone.
    let issued = now.min(expires - 60);
    let issuer = tenant_issuer(state);
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(resource));
    claims.insert("iss".into(), json!(issuer));
    claims.insert("iat".into(), json!(issued));
    claims.insert("nbf".into(), json!(issued));
    claims.insert("exp".into(), json!(expires));
    claims.insert("appid".into(), json!(identity.client_id));
    claims.insert("appidacr".into(), json!("2"));
    claims.insert("idp".into(), json!(issuer));
    claims.insert("idtyp".into(), json!("app"));
    claims.insert("oid".into(), json!(identity.object_id));
    if !identity.roles.is_empty() {
        claims.insert("roles".into(), json!(identity.roles));
    }
    claims.insert("sub".into(), json!(identity.object_id));
    claims.insert("tid".into(), json!(identity.tenant_id));
    claims.insert("ver".into(), json!("1.0"));
    let token = state
        .key
        .sign(&claims)
        .map_err(|error| format!("signing failed: {error}"))?;
    Ok((token, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn options_refuse_bad_values() {
        let good = ManagedIdentityOptions::default();
        assert!(good.validate().is_ok());
        let cases = [
            ManagedIdentityOptions {
                identity_header: Some("has space".into()),
                ..good.clone()
            },
            ManagedIdentityOptions {
                identity_header: Some(String::new()),
                ..good.clone()
            },
            ManagedIdentityOptions {
                tenant_id: "a/b".into(),
                ..good.clone()
            },
            ManagedIdentityOptions {
                roles: vec![" ".into()],
                ..good.clone()
            },
            ManagedIdentityOptions {
                lifetime_seconds: 0,
                ..good.clone()
            },
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?}");
        }
    }
}
