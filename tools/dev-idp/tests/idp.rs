//! The issuer over real HTTP on a free port: discovery, JWKS, tokens that verify, refusals.

use dev_idp::managed_identity::{
    DEV_MI_CLIENT_ID, DEV_MI_OBJECT_ID, DEV_TENANT_ID, SIGNALR_RESOURCE,
};
use dev_idp::{DEFAULT_AUDIENCE, DevIdp, DevIdpOptions, ManagedIdentityOptions};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

struct TestIdp {
    base: String,
    http: reqwest::Client,
    identity_header: String,
    tenant_issuer: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_idp() -> TestIdp {
    spawn_idp_with(ManagedIdentityOptions::default()).await
}

async fn spawn_idp_with(managed_identity: ManagedIdentityOptions) -> TestIdp {
    let idp = DevIdp::bind(DevIdpOptions {
        port: 0,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
        managed_identity,
        key_file: None,
    })
    .await
    .expect("the issuer binds");
    let identity_header = idp.identity_header().to_owned();
    let tenant_issuer = idp.tenant_issuer();
    assert_eq!(
        idp.identity_endpoint(),
        format!("http://localhost:{}/msi/token", idp.port())
    );
    let base = idp.issuer().to_owned();
    assert_eq!(base, format!("http://localhost:{}", idp.port()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(idp.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestIdp {
        base: base.replace("localhost", "127.0.0.1"),
        http: reqwest::Client::new(),
        identity_header,
        tenant_issuer,
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

impl TestIdp {
    /// `GET /msi/token?{query}` with the given `X-IDENTITY-HEADER` (or none).
    async fn msi(&self, query: &str, identity_header: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}/msi/token?{query}", self.base));
        if let Some(header) = identity_header {
            request = request.header("X-IDENTITY-HEADER", header);
        }
        request.send().await.expect("reachable")
    }

    /// A successful managed-identity answer for `query`.
    async fn msi_ok(&self, query: &str) -> Value {
        let response = self.msi(query, Some(&self.identity_header)).await;
        assert_eq!(response.status(), 200, "{query}");
        response.json().await.expect("JSON")
    }
}

const SIGNALR_QUERY: &str = "resource=https://signalr.azure.com&api-version=2019-08-01";

#[tokio::test]
async fn the_managed_identity_endpoint_answers_like_app_service_with_a_v1_entra_token() {
    let idp = spawn_idp().await;
    let body = idp.msi_ok(SIGNALR_QUERY).await;
    let fields: Vec<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "access_token",
            "expires_on",
            "resource",
            "token_type",
            "client_id"
        ]
    );
    assert_eq!(body["resource"], SIGNALR_RESOURCE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], DEV_MI_CLIENT_ID);
    let expires_on: i64 = body["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .expect("of unix seconds");

    // The tenant discovery names the tenant issuer and the same JWKS.
    let tenant_path = format!("/{DEV_TENANT_ID}/.well-known/openid-configuration");
    let discovery = idp.get_json(&tenant_path).await;
    assert_eq!(discovery["issuer"], json!(idp.tenant_issuer));
    let (key, root_issuer) = idp.decoding_key().await;
    assert_eq!(idp.tenant_issuer, format!("{root_issuer}/{DEV_TENANT_ID}/"));
    assert_eq!(
        discovery["jwks_uri"],
        json!(format!("{root_issuer}/jwks")),
        "one JWKS for both issuers"
    );
    let token = body["access_token"].as_str().expect("a token");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, Algorithm::RS256);
    assert!(header.kid.is_some());
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &key,
        &validation(&idp.tenant_issuer, SIGNALR_RESOURCE),
    )
    .expect("verifies against the JWKS with the tenant issuer")
    .claims;
    assert_eq!(claims["exp"], json!(expires_on));
    assert_eq!(claims["oid"], DEV_MI_OBJECT_ID);
    assert_eq!(claims["sub"], DEV_MI_OBJECT_ID);
    assert_eq!(claims["appid"], DEV_MI_CLIENT_ID);
    assert_eq!(claims["tid"], DEV_TENANT_ID);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["roles"], json!(["SignalR Service Owner"]));

    // The user-assigned form with the identity's client id, or its principal id, works too.
    for selector in [
        format!("client_id={DEV_MI_CLIENT_ID}"),
        format!("principal_id={DEV_MI_OBJECT_ID}"),
        format!("object_id={DEV_MI_OBJECT_ID}"),
    ] {
        idp.msi_ok(&format!("{SIGNALR_QUERY}&{selector}")).await;
    }
    // Another resource gets its own audience.
    let other = idp
        .msi_ok("resource=api%3A%2F%2Fother&api-version=2019-08-01")
        .await;
    assert_eq!(other["resource"], "api://other");
}

#[tokio::test]
async fn configured_roles_identity_and_header_are_used() {
    let idp = spawn_idp_with(ManagedIdentityOptions {
        identity_header: Some("local-identity-header".into()),
        roles: vec![
            "SignalR App Server".into(),
            "SignalR REST API Reader".into(),
        ],
        client_id: "client-1".into(),
        object_id: "object-1".into(),
        tenant_id: "tenant-1".into(),
        lifetime_seconds: 600,
    })
    .await;
    assert_eq!(idp.identity_header, "local-identity-header");
    assert!(idp.tenant_issuer.ends_with("/tenant-1/"));
    let body = idp
        .msi_ok(&format!("{SIGNALR_QUERY}&client_id=client-1"))
        .await;
    assert_eq!(body["client_id"], "client-1");
    let (key, _) = idp.decoding_key().await;
    let claims = jsonwebtoken::decode::<Value>(
        body["access_token"].as_str().expect("token"),
        &key,
        &validation(&idp.tenant_issuer, SIGNALR_RESOURCE),
    )
    .expect("verifies")
    .claims;
    assert_eq!(
        claims["roles"],
        json!(["SignalR App Server", "SignalR REST API Reader"])
    );
    assert_eq!(claims["oid"], "object-1");
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 600);

    let no_roles = spawn_idp_with(ManagedIdentityOptions {
        roles: Vec::new(),
        ..ManagedIdentityOptions::default()
    })
    .await;
    let body = no_roles.msi_ok(SIGNALR_QUERY).await;
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(
        body["access_token"].as_str().expect("token"),
    )
    .expect("decodes")
    .claims;
    assert!(claims.get("roles").is_none(), "no roles claim at all");
}

#[tokio::test]
async fn the_managed_identity_endpoint_refuses_without_the_right_header() {
    let idp = spawn_idp().await;
    let wrong = format!("{}x", idp.identity_header);
    for (header, case) in [
        (None, "no header"),
        (Some(""), "an empty header"),
        (Some(wrong.as_str()), "a wrong header"),
    ] {
        let response = idp.msi(SIGNALR_QUERY, header).await;
        assert_eq!(response.status(), 401, "{case}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"], "unauthorized", "{case}");
        assert!(
            !body.to_string().contains(&idp.identity_header),
            "{case}: the answer must not reveal the header"
        );
    }
    // The header twice is refused even when one copy is right.
    let response = idp
        .http
        .get(format!("{}/msi/token?{SIGNALR_QUERY}", idp.base))
        .header("X-IDENTITY-HEADER", &idp.identity_header)
        .header("X-IDENTITY-HEADER", "other")
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 401, "a repeated header");
}

#[tokio::test]
async fn bad_managed_identity_requests_get_400_with_a_reason() {
    let idp = spawn_idp().await;
    let cases = [
        ("api-version=2019-08-01", "resource", "no resource"),
        (
            "resource=&api-version=2019-08-01",
            "resource",
            "an empty resource",
        ),
        (
            "resource=https://signalr.azure.com",
            "api-version",
            "no api-version",
        ),
        (
            "resource=https://signalr.azure.com&api-version=2017-09-01",
            "api-version",
            "the old api-version",
        ),
        (
            "resource=https://signalr.azure.com/.default&api-version=2019-08-01",
            "scope",
            "a scope instead of a resource",
        ),
        (
            "resource=https://signalr.azure.com&resource=https://other&api-version=2019-08-01",
            "repeated",
            "two resources",
        ),
        (
            "resource=https://signalr.azure.com&api-version=2019-08-01&client_id=someone-else",
            "client_id",
            "another client id",
        ),
        (
            "resource=https://signalr.azure.com&api-version=2019-08-01&principal_id=someone-else",
            "principal_id",
            "another principal id",
        ),
        (
            "resource=https://signalr.azure.com&api-version=2019-08-01&mi_res_id=/subscriptions/x",
            "mi_res_id",
            "a resource id",
        ),
        (
            "resource=https://signalr.azure.com&api-version=2019-08-01&client_id=22222222-2222-4222-8222-222222222222&object_id=33333333-3333-4333-8333-333333333333",
            "at most one",
            "two selectors",
        ),
    ];
    let long = format!("resource={}&api-version=2019-08-01", "a".repeat(300));
    for (query, needle, case) in cases
        .iter()
        .map(|(query, needle, case)| (query.to_string(), *needle, *case))
        .chain([(long, "at most", "a 300-character resource")])
    {
        let response = idp.msi(&query, Some(&idp.identity_header)).await;
        assert_eq!(response.status(), 400, "{case}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"], "invalid_request", "{case}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|text| text.contains(needle)),
            "{case}: {body}"
        );
    }
    let response = idp
        .http
        .get(format!(
            "{}/other-tenant/.well-known/openid-configuration",
            idp.base
        ))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 404, "an unknown tenant has no discovery");
}

#[tokio::test]
async fn a_negative_managed_identity_lifetime_gives_an_expired_token_and_bad_options_do_not_start()
{
    let idp = spawn_idp_with(ManagedIdentityOptions {
        lifetime_seconds: -600,
        ..ManagedIdentityOptions::default()
    })
    .await;
    let body = idp.msi_ok(SIGNALR_QUERY).await;
    let (key, _) = idp.decoding_key().await;
    let error = jsonwebtoken::decode::<Value>(
        body["access_token"].as_str().expect("token"),
        &key,
        &validation(&idp.tenant_issuer, SIGNALR_RESOURCE),
    )
    .expect_err("an expired token is refused");
    assert_eq!(
        *error.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );

    let refused = DevIdp::bind(DevIdpOptions {
        port: 0,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
        key_file: None,
        managed_identity: ManagedIdentityOptions {
            identity_header: Some("two words".into()),
            ..ManagedIdentityOptions::default()
        },
    })
    .await;
    assert!(
        refused.is_err(),
        "a header with a space is refused at start"
    );
}

async fn jwks_of(options: DevIdpOptions) -> (Value, String) {
    let idp = DevIdp::bind(options).await.expect("the issuer binds");
    let base = format!("http://127.0.0.1:{}", idp.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(idp.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let jwks: Value = http
        .get(format!("{base}/jwks"))
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    let token: Value = http
        .post(format!("{base}/token"))
        .json(&json!({"sub": "alice"}))
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    let _ = stop.send(());
    let _ = server.await;
    (
        jwks,
        token["access_token"].as_str().expect("token").to_owned(),
    )
}

fn options_with_key_file(key_file: Option<std::path::PathBuf>) -> DevIdpOptions {
    DevIdpOptions {
        port: 0,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
        managed_identity: ManagedIdentityOptions::default(),
        key_file,
    }
}

#[tokio::test]
async fn a_restarted_issuer_with_the_same_key_file_still_verifies_the_tokens_it_issued() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("nested/insecure-dev-signing-key.json");
    let (first_jwks, token) = jwks_of(options_with_key_file(Some(key_file.clone()))).await;
    assert!(key_file.exists(), "the first start writes the key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the key file is the owner's only: {mode:o}"
        );
    }
    let (second_jwks, _) = jwks_of(options_with_key_file(Some(key_file.clone()))).await;
    assert_eq!(first_jwks, second_jwks);

    // The first run's token verifies with the restarted issuer's published key.
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(second_jwks["keys"][0].clone()).expect("jwk");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[DEFAULT_AUDIENCE]);
    jsonwebtoken::decode::<Value>(
        &token,
        &DecodingKey::from_jwk(&jwk).expect("key"),
        &validation,
    )
    .expect("the token survives the restart");
}

#[tokio::test]
async fn without_a_key_file_each_start_has_a_new_key() {
    let (first, _) = jwks_of(options_with_key_file(None)).await;
    let (second, _) = jwks_of(options_with_key_file(None)).await;
    assert_ne!(first["keys"][0]["kid"], second["keys"][0]["kid"]);
}

#[tokio::test]
async fn a_key_file_that_is_not_a_key_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("insecure-dev-signing-key.json");
    std::fs::write(&key_file, "not json").expect("write");
    let error = match DevIdp::bind(options_with_key_file(Some(key_file.clone()))).await {
        Ok(_) => panic!("a broken key file must not be replaced silently"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains(&key_file.display().to_string()), "{error}");
    assert_eq!(
        std::fs::read_to_string(&key_file).expect("read"),
        "not json"
    );
}
