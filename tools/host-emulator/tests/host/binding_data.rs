//! What the host emulator hands a handler: binding data resolved as on the real host, including
//! its weaknesses (the tests that run the real handler behind it are in the root package's
//! `tests/stack`).

use host_emulator::HandlerLaunch;
use serde_json::{Value, json};

use crate::helpers::{
    AppRoot, FakeHandler, HandlerAnswer, TestHost, claims, connection_string, http_function,
};

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
    // Decoded three times: the body, the outer string, the inner string
    // (docs/protocol/functions-host.md §0.1).
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
