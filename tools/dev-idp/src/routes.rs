//! HTTP routes. Every answer carries `Access-Control-Allow-Origin: *`: the demo page on the
//! function app's origin asks for tokens from the browser.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::keys::InsecureDevSigningKey;
use crate::managed_identity::{self, ManagedIdentity};

/// Shared state of the routes.
pub struct IdpState {
    pub issuer: String,
    pub default_audience: String,
    pub key: InsecureDevSigningKey,
    pub managed_identity: ManagedIdentity,
}

/// Longest lifetime (either sign) a token may ask for: one day.
const MAX_LIFETIME_SECONDS: i64 = 86_400;
const DEFAULT_LIFETIME_SECONDS: i64 = 3600;
/// Claims the issuer sets itself and a request may not override.
const RESERVED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "iat", "nbf", "roles", "jti"];
const MAX_TEXT: usize = 256;

/// `POST /token` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenRequest {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    claims: Map<String, Value>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    lifetime_seconds: Option<i64>,
}

/// The form on `GET /`.
#[derive(Debug, Deserialize)]
struct TokenForm {
    sub: String,
    #[serde(default)]
    roles: String,
    #[serde(default)]
    audience: String,
}

pub fn router(state: Arc<IdpState>) -> Router {
    Router::new()
        .route("/", get(form_page).post(form_token))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", axum::routing::post(json_token).options(preflight))
        .route("/msi/token", get(managed_identity::token))
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(managed_identity::tenant_discovery),
        )
        .layer(axum::middleware::map_response(allow_any_origin))
        .with_state(state)
}

async fn allow_any_origin(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Json<Value> {
    Json(json!({
        "issuer": state.issuer,
        "jwks_uri": format!("{}/jwks", state.issuer),
        "token_endpoint": format!("{}/token", state.issuer),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "x-insecure-development-only": true,
    }))
}

async fn jwks(State(state): State<Arc<IdpState>>) -> Json<Value> {
    Json(json!({ "keys": [state.key.jwk()] }))
}

async fn json_token(State(state): State<Arc<IdpState>>, body: axum::body::Bytes) -> Response {
    // Parsed through `Value` because serde would also accept a JSON array for a struct.
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(value @ Value::Object(_)) => serde_json::from_value::<TokenRequest>(value),
        Ok(_) => return bad_request("the token request must be a JSON object"),
        Err(error) => Err(error),
    };
    let request = match request {
        Ok(request) => request,
        Err(error) => return bad_request(&format!("invalid token request: {error}")),
    };
    match issue(&state, request) {
        Ok((token, lifetime)) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }))
        .into_response(),
        Err(message) => bad_request(&message),
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_request", "error_description": message})),
    )
        .into_response()
}

/// Mints a token. Claims in order: `iss`, `sub`, `aud`, `iat`, `nbf`, `exp`, `roles`, extras.
fn issue(state: &IdpState, request: TokenRequest) -> Result<(String, i64), String> {
    let sub = request.sub.trim();
    if sub.is_empty() || sub.len() > MAX_TEXT {
        return Err(format!("`sub` must be 1 to {MAX_TEXT} characters"));
    }
    let lifetime = request.lifetime_seconds.unwrap_or(DEFAULT_LIFETIME_SECONDS);
    if !(-MAX_LIFETIME_SECONDS..=MAX_LIFETIME_SECONDS).contains(&lifetime) || lifetime == 0 {
        return Err(format!(
            "`lifetimeSeconds` must be non-zero and within ±{MAX_LIFETIME_SECONDS}"
        ));
    }
    let audience = request
        .audience
        .filter(|audience| !audience.trim().is_empty())
        .unwrap_or_else(|| state.default_audience.clone());
    if audience.len() > MAX_TEXT
        || request
            .roles
            .iter()
            .any(|role| role.is_empty() || role.len() > MAX_TEXT)
    {
        return Err("`audience` and each role must be 1 to 256 characters".into());
    }
    if let Some(reserved) = request
        .claims
        .keys()
        .find(|name| RESERVED_CLAIMS.contains(&name.as_str()))
    {
        return Err(format!(
            "`claims` may not set `{reserved}`; use the request fields"
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0);
    let expires = now + lifetime;
    // An expired token is issued entirely in the past, so it is refused for `exp` alone.
    let issued = now.min(expires - 60);
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(state.issuer));
    claims.insert("sub".into(), json!(sub));
    claims.insert("aud".into(), json!(audience));
    claims.insert("iat".into(), json!(issued));
    claims.insert("nbf".into(), json!(issued));
    claims.insert("exp".into(), json!(expires));
    if !request.roles.is_empty() {
        claims.insert("roles".into(), json!(request.roles));
    }
    claims.extend(request.claims);
    let token = state
        .key
        .sign(&claims)
        .map_err(|error| format!("signing failed: {error}"))?;
    Ok((token, lifetime))
}

const PAGE_HEAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dev-idp (INSECURE)</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2733}
.warn{background:#fff3cd;border:1px solid #e0b400;padding:.6rem .9rem;border-radius:6px}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}
input,textarea{width:100%;box-sizing:border-box;padding:.45rem;border:1px solid #b8c2cc;border-radius:4px;font:inherit}
textarea{font-family:ui-monospace,monospace;font-size:12px;height:9rem}
button{margin-top:.9rem;padding:.5rem 1.1rem;border:0;border-radius:4px;background:#2657c5;color:#fff;font:inherit;cursor:pointer}
code{background:#eef1f5;padding:0 .25rem;border-radius:3px}
</style></head><body>
<h1>dev-idp</h1>
<p class="warn"><strong>INSECURE — development only.</strong> This issuer signs a token for any user who asks.
Never use it outside your own machine.</p>
"#;

async fn form_page(State(state): State<Arc<IdpState>>) -> Html<String> {
    Html(format!(
        r#"{PAGE_HEAD}<p>Issuer <code>{issuer}</code>, default audience <code>{audience}</code>.</p>
<form method="post" action="/">
<label for="sub">User (sub)</label><input id="sub" name="sub" required maxlength="256" value="alice">
<label for="roles">Roles (comma-separated)</label><input id="roles" name="roles">
<label for="audience">Audience</label><input id="audience" name="audience" value="{audience}">
<button type="submit">Get a token</button>
</form></body></html>"#,
        issuer = escape_html(&state.issuer),
        audience = escape_html(&state.default_audience),
    ))
}

async fn form_token(State(state): State<Arc<IdpState>>, Form(form): Form<TokenForm>) -> Response {
    let request = TokenRequest {
        sub: form.sub,
        roles: form
            .roles
            .split(',')
            .map(str::trim)
            .filter(|role| !role.is_empty())
            .map(str::to_owned)
            .collect(),
        claims: Map::new(),
        audience: Some(form.audience),
        lifetime_seconds: None,
    };
    match issue(&state, request) {
        Ok((token, lifetime)) => Html(format!(
            r#"{PAGE_HEAD}<p>Token valid for {lifetime} s. Send it as <code>Authorization: Bearer …</code>.</p>
<label for="token">access_token</label><textarea id="token" readonly>{token}</textarea>
<p><a href="/">Another token</a></p></body></html>"#,
            token = escape_html(&token),
        ))
        .into_response(),
        Err(message) => (
            StatusCode::BAD_REQUEST,
            Html(format!(
                r#"{PAGE_HEAD}<p>{}</p><p><a href="/">Back</a></p></body></html>"#,
                escape_html(&message)
            )),
        )
            .into_response(),
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
