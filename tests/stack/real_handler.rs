//! The real handler behind the host emulator: the binding token the emulator mints is accepted
//! by the handler's AccessKey check, and the handler's verified identity wins over everything a
//! caller can set in binding data.

use serde_json::{Value, json};

use crate::helpers::{
    ACCESS_KEY, AppRoot, TestHost, app_token, claims, connection_string, hs256_values,
    signature_is_valid,
};

#[tokio::test]
async fn negotiate_through_the_real_handler_issues_a_token_for_the_verified_user() {
    let app = AppRoot::repository_app(hs256_values(&connection_string(8888)));
    let host = TestHost::start(&app).await;
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
    let host = TestHost::start(&app).await;
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
