//! The real handler behind the host emulator: the binding token the emulator mints is accepted
//! by the handler's AccessKey check, and the handler's verified identity wins over everything a
//! caller can set in binding data.

use host_emulator::HandlerLaunch;
use serde_json::{Value, json};

use crate::helpers::{
    ACCESS_KEY, AppRoot, FakeHandler, HandlerAnswer, TestHost, app_token, claims,
    connection_string, hs256_values, http_function, signature_is_valid,
};

#[tokio::test]
async fn negotiate_through_the_real_handler_issues_a_token_for_the_verified_user() {
    let app = AppRoot::repository_app(hs256_values(&connection_string(8888)));
    let host = TestHost::start(&app, HandlerLaunch::Spawn).await;
    let response = host
        .http
        .post(host.url("/api/negotiate?negotiateVersion=1"))
        .bearer_auth(app_token("alice", 600))
        .header("x-ms-client-principal-id", "mallory")
        .header("Content-Type", "application/json")
        .body(
            r#"{"headers":{"x-ms-client-principal-id":"mallory","authorization":"Bearer forged"}}"#,
        )
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["url"], json!("http://localhost:8888/client/?hub=chat"));
    let token = body["accessToken"].as_str().expect("a token");
    assert!(signature_is_valid(token, ACCESS_KEY.as_bytes()));
    let claims = claims(token);
    assert_eq!(claims["asrs.s.uid"], json!("alice"));
    assert_eq!(claims["aud"], json!("http://localhost/client/?hub=chat"));
    host.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn an_expired_app_token_gets_401_from_the_real_handler() {
    let app = AppRoot::repository_app(hs256_values(&connection_string(8888)));
    let host = TestHost::start(&app, HandlerLaunch::Spawn).await;
    let response = host
        .http
        .post(host.url("/api/negotiate?negotiateVersion=1"))
        .bearer_auth(app_token("alice", -3600))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}

/// The binding as the docs write it: `userId` from a header expression. The emulator resolves it
/// as the real extension does, so a body-level `headers` object sets the binding's user id.
/// This is the attack the handler defends against by ignoring the binding's identity.
#[tokio::test]
async fn a_body_headers_object_sets_the_bindings_user_id_as_on_the_real_host() {
    let app = AppRoot::with_handler("handler", &[]);
    app.function(
        "negotiate",
        &http_function(
            "negotiate",
            &["post"],
            json!([{"type": "signalRConnectionInfo", "direction": "in", "name": "connectionInfo",
                    "hubName": "chat", "userId": "{headers.x-ms-client-principal-id}",
                    "idToken": "{headers.x-ms-token-aad-id-token}", "claimTypeList": ["name"]}]),
        ),
    );
    app.settings(json!({"Values": {"AzureSignalRConnectionString": connection_string(8888)}}));
    let handler = FakeHandler::start(HandlerAnswer::outputs(json!({"res": {"body": "{}"}}))).await;
    let host = TestHost::start(&app, HandlerLaunch::Attach { port: handler.port }).await;
    let forged_id_token = format!(
        "e30.{}.not-signed",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"name":"Mallory"}"#
        )
    );
    let response = host
        .http
        .post(host.url("/api/negotiate"))
        .header("x-ms-client-principal-id", "alice")
        .header("x-ms-token-aad-id-token", "e30.e30.x")
        .header("Content-Type", "application/json")
        .body(
            json!({"headers": {"x-ms-client-principal-id": "mallory", "x-ms-token-aad-id-token": forged_id_token}})
                .to_string(),
        )
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    let wire = handler.last().body["Data"]["connectionInfo"].clone();
    // Decoded three times: the body, the outer string, the inner string (spec §0.1).
    let once: String = serde_json::from_value(wire).expect("a string");
    let twice: String = serde_json::from_str(&once).expect("a JSON string");
    assert!(
        twice.starts_with("{\n  \"url\""),
        "indented JObject.ToString(): {twice}"
    );
    let info: Value = serde_json::from_str(&twice).expect("a JSON object");
    let claims = claims(info["accessToken"].as_str().expect("a token"));
    assert_eq!(
        claims["asrs.s.uid"],
        json!("mallory"),
        "the body overrode the real header"
    );
    assert_eq!(
        claims["name"],
        json!("Mallory"),
        "idToken claims are copied unverified"
    );
}

#[tokio::test]
async fn a_binding_expression_naming_a_missing_header_fails_the_invocation() {
    let app = AppRoot::with_handler("handler", &[]);
    app.function(
        "negotiate",
        &http_function(
            "negotiate",
            &["post"],
            json!([{"type": "signalRConnectionInfo", "direction": "in", "name": "connectionInfo",
                    "hubName": "chat", "userId": "{headers.x-ms-client-principal-id}"}]),
        ),
    );
    app.settings(json!({"Values": {"AzureSignalRConnectionString": connection_string(8888)}}));
    let handler = FakeHandler::start(HandlerAnswer::outputs(json!({}))).await;
    let host = TestHost::start(&app, HandlerLaunch::Attach { port: handler.port }).await;
    let response = host
        .http
        .post(host.url("/api/negotiate"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 500);
    assert!(
        handler.received().is_empty(),
        "the handler is not called when binding fails"
    );
}
