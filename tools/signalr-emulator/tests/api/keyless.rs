//! No access key anywhere (`docs/protocol/signalr-identity-2026.md` §2.3–2.4): Microsoft Entra ID
//! tokens from `dev-idp`'s managed-identity endpoint (run in-process, over real HTTP) fetch
//! temporary keys, sign client tokens by `kid`, and call the REST API by role.

use jsonwebtoken::{Algorithm, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use dev_idp::managed_identity::{DEV_TENANT_ID, ManagedIdentityOptions, SIGNALR_RESOURCE};
use dev_idp::{DEFAULT_AUDIENCE, DevIdp, DevIdpOptions};
use signalr_emulator::{
    EntraConfig, ROLE_APP_SERVER, ROLE_REST_API_OWNER, ROLE_REST_API_READER, ROLE_SERVICE_OWNER,
};

use crate::helpers::{TestApp, mint, mint_with, now, spawn_app, spawn_app_with};

/// A dev-idp on a free port, stopped when dropped.
struct TestIdp {
    tenant_issuer: String,
    identity_endpoint: String,
    identity_header: String,
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_idp(roles: &[&str], lifetime_seconds: i64) -> TestIdp {
    let idp = DevIdp::bind(DevIdpOptions {
        port: 0,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
        key_file: None,
        managed_identity: ManagedIdentityOptions {
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            lifetime_seconds,
            ..ManagedIdentityOptions::default()
        },
    })
    .await
    .expect("dev-idp binds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let test_idp = TestIdp {
        tenant_issuer: idp.tenant_issuer(),
        identity_endpoint: idp.identity_endpoint(),
        identity_header: idp.identity_header().to_owned(),
        base: idp.issuer().to_owned(),
        http: reqwest::Client::new(),
        _stop: stop,
    };
    tokio::spawn(idp.run_until_stopped(async {
        let _ = stopped.await;
    }));
    test_idp
}

impl TestIdp {
    /// A managed-identity token for `resource`, fetched the way the handler will: `IDENTITY_ENDPOINT`
    /// with `X-IDENTITY-HEADER`.
    async fn mi_token(&self, resource: &str) -> String {
        let body: Value = self
            .http
            .get(&self.identity_endpoint)
            .query(&[("resource", resource), ("api-version", "2019-08-01")])
            .header("X-IDENTITY-HEADER", &self.identity_header)
            .send()
            .await
            .expect("dev-idp answers")
            .json()
            .await
            .expect("JSON");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// A user token from the root issuer (not the tenant), with the SignalR audience.
    async fn user_token_for_signalr(&self) -> String {
        let body: Value = self
            .http
            .post(format!("{}/token", self.base))
            .json(&json!({"sub": "mallory", "roles": [ROLE_SERVICE_OWNER], "audience": SIGNALR_RESOURCE}))
            .send()
            .await
            .expect("dev-idp answers")
            .json()
            .await
            .expect("JSON");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }
}

/// An emulator trusting `idp`'s tenant issuer (keys by OpenID Connect discovery).
async fn spawn_keyless_app(idp: &TestIdp, local_auth_disabled: bool) -> TestApp {
    let issuer = idp.tenant_issuer.clone();
    spawn_app_with(move |config| {
        config.entra = Some(EntraConfig::new(&issuer, None).expect("a valid issuer"));
        config.local_auth_disabled = local_auth_disabled;
    })
    .await
}

/// An identity with `roles` and an emulator that trusts its issuer.
async fn stack(roles: &[&str]) -> (TestIdp, TestApp) {
    let idp = spawn_idp(roles, 3600).await;
    let app = spawn_keyless_app(&idp, false).await;
    (idp, app)
}

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn fetch_key(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .get(format!("{}/api/v1/auth/accessKey", app.base()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the emulator answers")
}

/// `(KeyId, AccessKey)` from a 200 answer, checking its exact shape.
async fn temporary_key(app: &TestApp, token: &str) -> (String, String) {
    let response = fetch_key(app, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let fields: Vec<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["KeyId", "AccessKey"], "PascalCase, both present");
    let key_id = body["KeyId"].as_str().expect("a KeyId").to_owned();
    let access_key = body["AccessKey"].as_str().expect("an AccessKey").to_owned();
    assert!(key_id.starts_with("t-"), "{key_id}");
    assert!(access_key.len() >= 32);
    (key_id, access_key)
}

/// A client token for `hub` and `user`, HS256 over the temporary key with `kid` = its KeyId.
fn temporary_client_token(hub: &str, user: &str, key_id: &str, access_key: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key_id.to_owned());
    mint_with(
        header,
        &json!({"asrs.s.uid": user, "aud": format!("http://localhost/client/?hub={hub}"), "exp": now() + 3600}),
        access_key,
    )
}

/// Negotiates and connects a client with `token`; the connection's id.
async fn connect_with(app: &TestApp, hub: &str, token: &str) -> crate::helpers::TestClient {
    let response = app.negotiate(hub, token, Some(1)).await;
    assert_eq!(response.status(), StatusCode::OK, "negotiate");
    let negotiated: Value = response.json().await.expect("JSON");
    let id = negotiated["connectionToken"]
        .as_str()
        .expect("a connection token");
    let url = format!("ws://127.0.0.1:{}/client/?hub={hub}&id={id}", app.port);
    let mut client = app
        .open_websocket(&url, Some(token))
        .await
        .expect("the upgrade succeeds");
    client.handshake().await;
    client
}

async fn rest_with(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    let body = (method == Method::POST).then(|| json!({"target": "hello", "arguments": ["hi"]}));
    app.rest_with_token(method, path, body, Some(token)).await
}

#[tokio::test]
async fn app_server_and_service_owner_get_a_temporary_key_that_signs_client_tokens() {
    for role in [ROLE_APP_SERVER, ROLE_SERVICE_OWNER] {
        let (idp, app) = stack(&[role]).await;
        let token = idp.mi_token(SIGNALR_RESOURCE).await;
        let (key_id, access_key) = temporary_key(&app, &token).await;
        // The api-version route of the 2023-07-01+ swagger answers the same way.
        let response = app
            .http
            .get(format!(
                "{}/api/auth/accessKey?api-version=2024-12-01",
                app.base()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("the emulator answers");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{role}: api-version route"
        );

        let client_token = temporary_client_token("chat", "alice", &key_id, &access_key);
        let mut client = connect_with(&app, "chat", &client_token).await;
        // A REST send with the access key still reaches the client signed in by temporary key.
        let response = app
            .rest(
                Method::POST,
                "/api/v1/hubs/chat/users/alice",
                Some(json!({"target": "hello", "arguments": [role]})),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{role}");
        assert_eq!(
            client.next_invocation().await,
            ("hello".to_owned(), json!([role]))
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn identities_without_the_app_server_or_owner_role_get_403_for_the_key() {
    for roles in [
        &[ROLE_REST_API_OWNER][..],
        &[ROLE_REST_API_READER][..],
        &["Contributor"][..],
        &[][..],
    ] {
        let (idp, app) = stack(roles).await;
        let token = idp.mi_token(SIGNALR_RESOURCE).await;
        let response = fetch_key(&app, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{roles:?}");
        let body: Value = response.json().await.expect("JSON");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|message| message.contains("SignalR App Server")),
            "{body}"
        );
        assert!(
            !body.to_string().contains("AccessKey"),
            "no key leaks in a refusal"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn the_key_route_refuses_missing_and_bad_tokens_with_401() {
    let (idp, app) = stack(&[ROLE_SERVICE_OWNER]).await;
    let response = fetch_key(&app, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no token");
    assert_eq!(challenge(&response), "Bearer");

    // A token signed by a key the issuer never published, with otherwise perfect claims.
    let stranger = dev_idp::keys::InsecureDevSigningKey::generate().expect("a key");
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(SIGNALR_RESOURCE));
    claims.insert("iss".into(), json!(idp.tenant_issuer));
    claims.insert("exp".into(), json!(now() + 3600));
    claims.insert("roles".into(), json!([ROLE_SERVICE_OWNER]));
    let unpublished = stranger.sign(&claims).expect("signs");

    let expired_idp = spawn_idp(&[ROLE_SERVICE_OWNER], -600).await;
    // The same issuer URL and keys as `idp` are needed for an expiry refusal, so the expired token
    // is checked against an emulator that trusts its own issuer.
    let expired_app = spawn_keyless_app(&expired_idp, false).await;
    let expired = expired_idp.mi_token(SIGNALR_RESOURCE).await;
    let response = fetch_key(&expired_app, Some(&expired)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "expired");
    assert!(
        challenge(&response).contains("The token is expired"),
        "{}",
        challenge(&response)
    );
    expired_app.stop().await;

    let cases = [
        (
            idp.mi_token("api://another-resource").await,
            "The audience is invalid",
            "another resource's token",
        ),
        (
            idp.user_token_for_signalr().await,
            "The issuer is invalid",
            "a user token from the root issuer",
        ),
        (
            unpublished,
            "The signature key was not found",
            "an unpublished key",
        ),
        (
            mint(
                &json!({"aud": SIGNALR_RESOURCE, "exp": now() + 3600}),
                &app.key,
            ),
            "The signature algorithm is not supported",
            "an access-key token",
        ),
        ("garbage".to_owned(), "The token is malformed", "garbage"),
    ];
    for (token, description, case) in cases {
        let response = fetch_key(&app, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(
            challenge(&response),
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
            "{case}"
        );
    }
    app.stop().await;

    // An emulator with no Entra issuer says so instead of pretending to check.
    let plain = spawn_app().await;
    let token = idp.mi_token(SIGNALR_RESOURCE).await;
    let response = fetch_key(&plain, Some(&token)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.expect("JSON");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("--entra-issuer"))
    );
    plain.stop().await;
}

#[tokio::test]
async fn an_unreachable_issuer_fails_closed_with_401() {
    // A port nobody listens on: bind, read, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let app = spawn_app_with(move |config| {
        config.entra = Some(
            EntraConfig::new(&format!("http://127.0.0.1:{port}/{DEV_TENANT_ID}/"), None)
                .expect("a valid issuer"),
        );
    })
    .await;
    let idp = spawn_idp(&[ROLE_SERVICE_OWNER], 3600).await;
    let token = idp.mi_token(SIGNALR_RESOURCE).await;
    // The second call finds the failure remembered (or retries and fails again): the same reason.
    for attempt in ["first", "second"] {
        let response = fetch_key(&app, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{attempt}");
        assert!(
            challenge(&response).contains("The signing keys of the issuer are unavailable"),
            "{attempt}: {}",
            challenge(&response)
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn client_tokens_with_an_unknown_or_expired_kid_get_401() {
    let (idp, app) = stack(&[ROLE_SERVICE_OWNER]).await;
    let token = idp.mi_token(SIGNALR_RESOURCE).await;
    let (key_id, access_key) = temporary_key(&app, &token).await;
    let cases = [
        (
            temporary_client_token("chat", "alice", "t-unknown", &access_key),
            "an unknown KeyId",
        ),
        (
            temporary_client_token("chat", "alice", &key_id, "not-the-temporary-key"),
            "the right KeyId with another key",
        ),
        (
            temporary_client_token("chat", "alice", &key_id, &app.key),
            "the right KeyId signed with the access key",
        ),
    ];
    for (client_token, case) in cases {
        let response = app.negotiate("chat", &client_token, Some(1)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert!(
            challenge(&response).contains("The signature key was not found"),
            "{case}: {}",
            challenge(&response)
        );
    }
    // A temporary key signs client tokens, not REST tokens: REST takes the Entra token itself.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key_id.clone());
    let rest_token = mint_with(
        header,
        &json!({"aud": "http://localhost/api/v1/hubs/chat", "exp": now() + 3600}),
        &access_key,
    );
    let response = rest_with(&app, Method::POST, "/api/v1/hubs/chat", &rest_token).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a REST token signed with a temporary key"
    );
    // A WebSocket upgrade with an unknown kid is refused too.
    let unknown = temporary_client_token("chat", "alice", "t-unknown", &access_key);
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat", app.port);
    let error = app.open_websocket(&url, Some(&unknown)).await.err();
    assert!(
        matches!(error, Some(tokio_tungstenite::tungstenite::Error::Http(ref response)) if response.status() == 401),
        "{error:?}"
    );
    app.stop().await;

    // A key past its lifetime (zero here, so no waiting) no longer verifies.
    let issuer = idp.tenant_issuer.clone();
    let short = spawn_app_with(move |config| {
        config.entra = Some(EntraConfig::new(&issuer, None).expect("a valid issuer"));
        config.temporary_key_lifetime = std::time::Duration::ZERO;
    })
    .await;
    let (key_id, access_key) = temporary_key(&short, &token).await;
    let response = short
        .negotiate(
            "chat",
            &temporary_client_token("chat", "alice", &key_id, &access_key),
            Some(1),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "an expired temporary key"
    );
    short.stop().await;
}

#[tokio::test]
async fn keys_rotate_old_ones_stay_valid_until_expired_and_the_admin_route_expires_them() {
    let (idp, app) = stack(&[ROLE_SERVICE_OWNER]).await;
    let token = idp.mi_token(SIGNALR_RESOURCE).await;
    let first = temporary_key(&app, &token).await;
    let second = temporary_key(&app, &token).await;
    assert_ne!(first.0, second.0, "every fetch gives a new KeyId");
    assert_ne!(first.1, second.1, "and a new key");
    for (key_id, access_key) in [&first, &second] {
        let response = app
            .negotiate(
                "chat",
                &temporary_client_token("chat", "bob", key_id, access_key),
                Some(1),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{key_id} is live");
    }

    let expire = |token: Option<String>| {
        let mut request = app
            .http
            .post(format!("{}/emulator/temporary-keys/expire", app.base()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        expire(None).await.expect("answers").status(),
        StatusCode::UNAUTHORIZED,
        "no token"
    );
    let app_server_idp = spawn_idp(&[ROLE_APP_SERVER], 3600).await;
    let other_issuer = app_server_idp.mi_token(SIGNALR_RESOURCE).await;
    assert_eq!(
        expire(Some(other_issuer)).await.expect("answers").status(),
        StatusCode::UNAUTHORIZED,
        "another issuer's token"
    );
    let response = expire(Some(token.clone())).await.expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.expect("JSON"),
        json!({"expired": 2})
    );

    for (key_id, access_key) in [&first, &second] {
        let response = app
            .negotiate(
                "chat",
                &temporary_client_token("chat", "bob", key_id, access_key),
                Some(1),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{key_id} expired"
        );
    }
    let third = temporary_key(&app, &token).await;
    let response = app
        .negotiate(
            "chat",
            &temporary_client_token("chat", "bob", &third.0, &third.1),
            Some(1),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a fresh key works after the rotation"
    );
    app.stop().await;

    // Only a Service Owner may expire keys.
    let app = spawn_keyless_app(&app_server_idp, false).await;
    let token = app_server_idp.mi_token(SIGNALR_RESOURCE).await;
    let response = app
        .http
        .post(format!("{}/emulator/temporary-keys/expire", app.base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "App Server may not expire keys"
    );
    app.stop().await;
}

#[tokio::test]
async fn rest_calls_take_an_entra_bearer_by_role() {
    // (role, may read, may write)
    let table = [
        (ROLE_SERVICE_OWNER, true, true),
        (ROLE_REST_API_OWNER, true, true),
        (ROLE_REST_API_READER, true, false),
        (ROLE_APP_SERVER, false, false),
    ];
    for (role, may_read, may_write) in table {
        let (idp, app) = stack(&[role]).await;
        let token = idp.mi_token(SIGNALR_RESOURCE).await;
        let mut client = app.connect("chat", Some("carol")).await;
        for (method, path, allowed, success) in [
            (
                Method::GET,
                "/api/v1/hubs/chat/users/carol",
                may_read,
                StatusCode::OK,
            ),
            (
                Method::HEAD,
                "/api/hubs/chat/users/carol?api-version=2022-06-01",
                may_read,
                StatusCode::OK,
            ),
            (
                Method::POST,
                "/api/v1/hubs/chat/users/carol",
                may_write,
                StatusCode::ACCEPTED,
            ),
            (
                Method::PUT,
                "/api/v1/hubs/chat/groups/room/connections/missing",
                may_write,
                StatusCode::NOT_FOUND,
            ),
        ] {
            let response = rest_with(&app, method.clone(), path, &token).await;
            let expected = if allowed {
                success
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(response.status(), expected, "{role}: {method} {path}");
        }
        if may_write {
            assert_eq!(
                client.next_invocation().await,
                ("hello".to_owned(), json!(["hi"]))
            );
        }
        // Another resource's token is refused whatever the role.
        let other = idp.mi_token("api://another-resource").await;
        let response = rest_with(&app, Method::GET, "/api/v1/hubs/chat/users/carol", &other).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{role}: wrong audience"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn without_local_auth_access_key_tokens_get_401_and_identity_works() {
    let idp = spawn_idp(&[ROLE_SERVICE_OWNER], 3600).await;
    let app = spawn_keyless_app(&idp, true).await;
    let response = app
        .rest(
            Method::POST,
            "/api/v1/hubs/chat",
            Some(json!({"target": "t"})),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "an access-key REST token"
    );
    assert!(
        challenge(&response).contains("Local authentication is disabled"),
        "{}",
        challenge(&response)
    );
    let response = app
        .negotiate("chat", &app.client_token("chat", Some("dave")), Some(1))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "an access-key client token"
    );
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("-1419827734".to_owned());
    let sdk_shaped = mint_with(
        header,
        &json!({"aud": "http://localhost/client/?hub=chat", "exp": now() + 3600}),
        &app.key,
    );
    assert_eq!(
        app.negotiate("chat", &sdk_shaped, Some(1)).await.status(),
        StatusCode::UNAUTHORIZED,
        "an access-key token with the SDK's hash kid"
    );

    // The identity path works end to end.
    let token = idp.mi_token(SIGNALR_RESOURCE).await;
    let (key_id, access_key) = temporary_key(&app, &token).await;
    let mut client = connect_with(
        &app,
        "chat",
        &temporary_client_token("chat", "dave", &key_id, &access_key),
    )
    .await;
    let response = rest_with(&app, Method::POST, "/api/v1/hubs/chat/users/dave", &token).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        client.next_invocation().await,
        ("hello".to_owned(), json!(["hi"]))
    );
    app.stop().await;
}

#[tokio::test]
async fn without_local_auth_the_connection_string_is_identity_based() {
    let idp = spawn_idp(&[ROLE_SERVICE_OWNER], 3600).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let mut config = signalr_emulator::Config::new(signalr_emulator::AccessKey::insecure_dev());
    config.entra = Some(EntraConfig::new(&idp.tenant_issuer, None).expect("valid"));
    config.local_auth_disabled = true;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let emulator = signalr_emulator::Emulator::start(listener, config, async {
        let _ = stopped.await;
    })
    .expect("starts");
    assert_eq!(
        emulator.connection_string(),
        format!(
            "Endpoint=http://localhost:{};AuthType=azure.msi;Version=1.0;",
            emulator.port()
        )
    );
    assert!(!emulator.connection_string().contains("AccessKey"));
    let _ = stop.send(());
    emulator.wait().await.expect("stops");
}

#[tokio::test]
async fn an_explicit_jwks_url_is_used_without_discovery() {
    let idp = spawn_idp(&[ROLE_APP_SERVER], 3600).await;
    let issuer = idp.tenant_issuer.clone();
    let jwks = format!("{}/jwks", idp.base);
    let app = spawn_app_with(move |config| {
        config.entra = Some(EntraConfig::new(&issuer, Some(&jwks)).expect("valid"));
    })
    .await;
    let token = idp.mi_token(SIGNALR_RESOURCE).await;
    temporary_key(&app, &token).await;
    app.stop().await;
}

/// The upstream setting's `auth: ManagedIdentity`, keyless: every upstream request carries the
/// emulator's own managed-identity token for the configured resource (issuer, audience and
/// identity as dev-idp issued it), the same cached token on later requests, and no signature.
#[tokio::test]
async fn keyless_upstream_requests_carry_the_managed_identity_bearer_and_no_signature() {
    const RESOURCE: &str = "api://insecure-test-upstream";
    let idp = spawn_idp(&[ROLE_SERVICE_OWNER], 3600).await;
    let upstream = crate::upstream::FakeUpstream::start().await;
    let issuer = idp.tenant_issuer.clone();
    let template = format!(
        "http://127.0.0.1:{}/hooks/{{hub}}/{{category}}/{{event}}",
        upstream.port
    );
    let identity = signalr_emulator::UpstreamIdentity::new(
        &idp.identity_endpoint,
        &idp.identity_header,
        RESOURCE,
    )
    .expect("valid identity settings");
    let app = spawn_app_with(move |config| {
        config.entra = Some(EntraConfig::new(&issuer, None).expect("a valid issuer"));
        config.local_auth_disabled = true;
        config.upstream =
            Some(signalr_emulator::UpstreamTemplate::parse(&template).expect("a valid template"));
        config.upstream_identity = Some(identity);
    })
    .await;
    let owner = idp.mi_token(SIGNALR_RESOURCE).await;
    let (key_id, access_key) = temporary_key(&app, &owner).await;
    let token = temporary_client_token("chat", "alice", &key_id, &access_key);
    let mut client = connect_with(&app, "chat", &token).await;

    let connected = upstream.next().await;
    assert_eq!(connected.header("x-asrs-event"), Some("connected"));
    assert_eq!(
        connected.header("x-asrs-signature"),
        None,
        "no key, no signature"
    );
    let bearer = connected
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .expect("a bearer token")
        .to_owned();
    let claims = payload(&bearer);
    let defaults = ManagedIdentityOptions::default();
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["iss"], idp.tenant_issuer.as_str());
    assert_eq!(claims["appid"], defaults.client_id.as_str());
    assert_eq!(claims["oid"], defaults.object_id.as_str());
    assert_eq!(claims["tid"], DEV_TENANT_ID);

    client
        .send_text("{\"type\":1,\"target\":\"hello\",\"arguments\":[]}\u{1e}")
        .await;
    let message = upstream.next().await;
    assert_eq!(message.header("x-asrs-event"), Some("hello"));
    assert_eq!(
        message.header("authorization"),
        Some(format!("Bearer {bearer}").as_str()),
        "the cached token is reused"
    );
}

/// The claims of a JWT, unverified (the app verifies it; here only what was sent is read).
fn payload(token: &str) -> Value {
    use base64::Engine;
    let segment = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}
