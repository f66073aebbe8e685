//! The issuer over real HTTP on a free port: discovery, JWKS, tokens that verify, refusals.

use dev_idp::{DEFAULT_AUDIENCE, DevIdp, DevIdpOptions};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

struct TestIdp {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_idp() -> TestIdp {
    let idp = DevIdp::bind(DevIdpOptions {
        port: 0,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
    })
    .await
    .expect("the issuer binds");
    let base = idp.issuer().to_owned();
    assert_eq!(base, format!("http://localhost:{}", idp.port()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(idp.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestIdp {
        base: base.replace("localhost", "127.0.0.1"),
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl TestIdp {
    async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("reachable")
            .json()
            .await
            .expect("JSON")
    }

    async fn token(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/token", self.base))
            .json(&body)
            .send()
            .await
            .expect("reachable")
    }

    async fn decoding_key(&self) -> (DecodingKey, String) {
        let discovery = self.get_json("/.well-known/openid-configuration").await;
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .expect("jwks_uri")
            .replace("localhost", "127.0.0.1");
        let jwks: Value = self
            .http
            .get(jwks_uri)
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("JSON");
        let key = &jwks["keys"][0];
        assert_eq!(key["alg"], "RS256");
        (
            DecodingKey::from_rsa_components(
                key["n"].as_str().expect("n"),
                key["e"].as_str().expect("e"),
            )
            .expect("an RSA key"),
            discovery["issuer"].as_str().expect("issuer").to_owned(),
        )
    }
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = 0;
    validation
}

#[tokio::test]
async fn discovery_names_its_own_issuer_and_jwks() {
    let idp = spawn_idp().await;
    let discovery = idp.get_json("/.well-known/openid-configuration").await;
    let issuer = discovery["issuer"].as_str().expect("issuer");
    assert!(issuer.starts_with("http://localhost:"), "{issuer}");
    assert_eq!(discovery["jwks_uri"], json!(format!("{issuer}/jwks")));
    let jwks = idp.get_json("/jwks").await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "the JWKS must not carry the private exponent"
    );
}

#[tokio::test]
async fn issued_tokens_verify_against_the_jwks_with_the_requested_claims() {
    let idp = spawn_idp().await;
    let response = idp
        .token(json!({"sub": "alice", "roles": ["admin"], "claims": {"name": "Alice"}}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["expires_in"], 3600);
    let (key, issuer) = idp.decoding_key().await;
    let token = body["access_token"].as_str().expect("token");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert!(header.kid.is_some_and(|kid| kid.starts_with("dev-")));
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation(&issuer, DEFAULT_AUDIENCE))
        .expect("verifies")
        .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["name"], "Alice");
}

#[tokio::test]
async fn a_requested_audience_is_used() {
    let idp = spawn_idp().await;
    let body: Value = idp
        .token(json!({"sub": "bob", "audience": "api://other"}))
        .await
        .json()
        .await
        .expect("JSON");
    let (key, issuer) = idp.decoding_key().await;
    let token = body["access_token"].as_str().expect("token");
    assert!(
        jsonwebtoken::decode::<Value>(token, &key, &validation(&issuer, "api://other")).is_ok()
    );
    assert!(
        jsonwebtoken::decode::<Value>(token, &key, &validation(&issuer, DEFAULT_AUDIENCE)).is_err()
    );
}

#[tokio::test]
async fn a_negative_lifetime_gives_an_expired_token() {
    let idp = spawn_idp().await;
    let body: Value = idp
        .token(json!({"sub": "alice", "lifetimeSeconds": -600}))
        .await
        .json()
        .await
        .expect("JSON");
    let (key, issuer) = idp.decoding_key().await;
    let error = jsonwebtoken::decode::<Value>(
        body["access_token"].as_str().expect("token"),
        &key,
        &validation(&issuer, DEFAULT_AUDIENCE),
    )
    .expect_err("expired");
    assert_eq!(
        error.kind(),
        &jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
}

#[tokio::test]
async fn malformed_token_requests_get_400() {
    let idp = spawn_idp().await;
    for (body, reason) in [
        (json!({}), "no sub"),
        (json!({"sub": ""}), "empty sub"),
        (json!({"sub": "a".repeat(300)}), "long sub"),
        (json!({"sub": "a", "extra": 1}), "unknown field"),
        (
            json!({"sub": "a", "claims": {"iss": "x"}}),
            "reserved claim",
        ),
        (json!({"sub": "a", "lifetimeSeconds": 0}), "zero lifetime"),
        (
            json!({"sub": "a", "lifetimeSeconds": 999999}),
            "long lifetime",
        ),
        (json!({"sub": "a", "roles": [""]}), "empty role"),
        (json!(["sub"]), "not an object"),
    ] {
        let response = idp.token(body).await;
        assert_eq!(response.status(), 400, "{reason}");
    }
}

#[tokio::test]
async fn the_form_page_is_marked_insecure_and_issues_a_token() {
    let idp = spawn_idp().await;
    let page = idp
        .http
        .get(format!("{}/", idp.base))
        .send()
        .await
        .expect("reachable")
        .text()
        .await
        .expect("text");
    assert!(page.contains("INSECURE"));
    let response = idp
        .http
        .post(format!("{}/", idp.base))
        .form(&[("sub", "carol"), ("roles", "a, b"), ("audience", "")])
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("text");
    assert!(
        page.contains("<textarea id=\"token\" readonly>eyJ"),
        "{page}"
    );
}

#[tokio::test]
async fn the_token_endpoint_answers_cors_preflights() {
    let idp = spawn_idp().await;
    let response = idp
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/token", idp.base))
        .header("Origin", "http://localhost:7071")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        response.headers()["access-control-allow-headers"],
        "content-type"
    );
}
