//! The client side (docs/protocol/signalr-service.md §5): negotiate v0 and v1, the WebSocket connect, handshake, ping,
//! close.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn negotiate_json(
    app: &TestApp,
    hub: &str,
    user: Option<&str>,
    version: Option<u8>,
) -> (String, Value) {
    let token = app.client_token(hub, user);
    let response = app.negotiate(hub, &token, version).await;
    assert_eq!(response.status(), StatusCode::OK);
    (
        token,
        response.json().await.expect("negotiate returns JSON"),
    )
}

fn ws_status(error: Option<tokio_tungstenite::tungstenite::Error>) -> u16 {
    match error {
        Some(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal of the upgrade, got {other:?}"),
    }
}

#[tokio::test]
async fn negotiate_v1_returns_a_connection_id_a_token_and_only_websockets() {
    let app = spawn_app().await;
    let (_, body) = negotiate_json(&app, "chat", Some("alice"), Some(1)).await;
    assert_eq!(body["negotiateVersion"], 1);
    let connection_id = body["connectionId"].as_str().expect("connectionId");
    let connection_token = body["connectionToken"].as_str().expect("connectionToken");
    assert!(!connection_id.is_empty());
    assert_ne!(connection_id, connection_token);
    assert_eq!(
        body["availableTransports"],
        json!([{"transport": "WebSockets", "transferFormats": ["Text"]}])
    );
}

#[tokio::test]
async fn negotiate_v0_returns_a_connection_id_that_is_used_as_the_id() {
    let app = spawn_app().await;
    let (token, body) = negotiate_json(&app, "chat", None, None).await;
    assert!(
        body.get("connectionToken").is_none(),
        "v0 has no connection token: {body}"
    );
    let connection_id = body["connectionId"].as_str().expect("connectionId");
    let url = format!(
        "ws://127.0.0.1:{}/client/?hub=chat&id={connection_id}",
        app.port
    );
    let mut client = app
        .open_websocket(&url, Some(&token))
        .await
        .expect("connects");
    client.handshake().await;
    let path = format!("/api/v1/hubs/chat/connections/{connection_id}");
    assert_eq!(
        app.rest(Method::HEAD, &path, None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_token_may_come_in_the_access_token_query_as_browsers_send_it() {
    let app = spawn_app().await;
    let (token, body) = negotiate_json(&app, "chat", Some("alice"), Some(1)).await;
    let id = body["connectionToken"].as_str().expect("connectionToken");
    let url = format!(
        "ws://127.0.0.1:{}/client/?hub=chat&id={id}&access_token={token}",
        app.port
    );
    let mut client = app.open_websocket(&url, None).await.expect("connects");
    client.handshake().await;
    app.rest(
        Method::POST,
        "/api/v1/hubs/chat/users/alice",
        Some(json!({"target": "hi"})),
    )
    .await;
    assert_eq!(client.next_invocation().await.0, "hi");
}

#[tokio::test]
async fn a_client_may_skip_negotiation() {
    let app = spawn_app().await;
    let token = app.client_token("chat", None);
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat", app.port);
    let mut client = app
        .open_websocket(&url, Some(&token))
        .await
        .expect("connects");
    client.handshake().await;
    app.rest(
        Method::POST,
        "/api/v1/hubs/chat",
        Some(json!({"target": "hi"})),
    )
    .await;
    assert_eq!(client.next_invocation().await.0, "hi");
}

#[tokio::test]
async fn a_connection_token_is_good_for_one_connect_only() {
    let app = spawn_app().await;
    let (token, body) = negotiate_json(&app, "chat", None, Some(1)).await;
    let id = body["connectionToken"].as_str().expect("connectionToken");
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat&id={id}", app.port);
    let _first = app
        .open_websocket(&url, Some(&token))
        .await
        .expect("connects");
    assert_eq!(
        ws_status(app.open_websocket(&url, Some(&token)).await.err()),
        404
    );
    let unknown = format!("ws://127.0.0.1:{}/client/?hub=chat&id=made-up", app.port);
    assert_eq!(
        ws_status(app.open_websocket(&unknown, Some(&token)).await.err()),
        404
    );
}

#[tokio::test]
async fn a_connection_token_not_used_in_time_gets_404() {
    // A zero lifetime makes every connect late, with no waiting.
    let app =
        spawn_app_with(|config| config.timings.connection_token_lifetime = Duration::ZERO).await;
    let (token, body) = negotiate_json(&app, "chat", None, Some(1)).await;
    let id = body["connectionToken"].as_str().expect("connectionToken");
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat&id={id}", app.port);
    assert_eq!(
        ws_status(app.open_websocket(&url, Some(&token)).await.err()),
        404
    );
}

#[tokio::test]
async fn connecting_as_another_user_or_to_another_hub_is_refused() {
    let app = spawn_app().await;
    let (_, body) = negotiate_json(&app, "chat", Some("alice"), Some(1)).await;
    let id = body["connectionToken"].as_str().expect("connectionToken");
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat&id={id}", app.port);
    let mallory = app.client_token("chat", Some("mallory"));
    assert_eq!(
        ws_status(app.open_websocket(&url, Some(&mallory)).await.err()),
        403
    );

    let (_, body) = negotiate_json(&app, "chat", None, Some(1)).await;
    let id = body["connectionToken"].as_str().expect("connectionToken");
    let url = format!("ws://127.0.0.1:{}/client/?hub=other&id={id}", app.port);
    let other = app.client_token("other", None);
    assert_eq!(
        ws_status(app.open_websocket(&url, Some(&other)).await.err()),
        404
    );
}

#[tokio::test]
async fn bad_hub_queries_get_400() {
    let app = spawn_app().await;
    let token = app.client_token("chat", None);
    for (query, case) in [
        ("hub=chat&hub=chat", "a repeated hub"),
        ("hub=my-hub", "a hyphen"),
        ("", "no hub"),
    ] {
        let response = app
            .http
            .post(format!("{}/client/negotiate?{query}", app.base()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("the emulator answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
    }
}

#[tokio::test]
async fn plain_http_to_the_websocket_endpoint_is_refused() {
    let app = spawn_app().await;
    let token = app.client_token("chat", None);
    let response = app
        .http
        .get(format!("{}/client/?hub=chat", app.base()))
        .header("accept", "text/event-stream")
        .bearer_auth(&token)
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_unsupported_protocol_gets_a_handshake_error() {
    let app = spawn_app().await;
    let token = app.client_token("chat", None);
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat", app.port);
    let mut client = app
        .open_websocket(&url, Some(&token))
        .await
        .expect("connects");
    client
        .send_text("{\"protocol\":\"messagepack\",\"version\":1}\u{1e}")
        .await;
    let reply = client.next_record().await.expect("a handshake reply");
    assert_eq!(
        reply,
        json!({"error": "The protocol 'messagepack' is not supported."})
    );
    assert!(client.next_record().await.is_none(), "the socket closes");
}

#[tokio::test]
async fn the_server_pings_when_it_has_nothing_else_to_send() {
    let app =
        spawn_app_with(|config| config.timings.keep_alive_interval = Duration::from_millis(20))
            .await;
    let mut client = app.connect("chat", None).await;
    assert_eq!(client.next_record().await, Some(json!({"type": 6})));
    assert_eq!(client.next_record().await, Some(json!({"type": 6})));
}

#[tokio::test]
async fn a_silent_client_is_closed_with_an_error() {
    let app =
        spawn_app_with(|config| config.timings.client_timeout = Duration::from_millis(50)).await;
    let mut client = app.connect("chat", None).await;
    let close = client.expect_close_message().await;
    assert!(
        close["error"]
            .as_str()
            .is_some_and(|error| error.contains("timeout")),
        "{close}"
    );
}

#[tokio::test]
async fn a_client_invocation_gets_a_completion_error_since_there_is_no_upstream() {
    let app = spawn_app().await;
    let mut client = app.connect("chat", None).await;
    // A ping and a fire-and-forget invocation first, in the same message: neither gets an answer.
    client
        .send_text("{\"type\":6}\u{1e}{\"type\":1,\"target\":\"fire\",\"arguments\":[]}\u{1e}{\"type\":1,\"invocationId\":\"7\",\"target\":\"send\",\"arguments\":[1]}\u{1e}")
        .await;
    let completion = client.next_message().await.expect("a completion");
    assert_eq!(completion["type"], 3);
    assert_eq!(completion["invocationId"], "7");
    assert!(
        completion["error"]
            .as_str()
            .is_some_and(|error| error.contains("send")),
        "{completion}"
    );
}

#[tokio::test]
async fn a_malformed_message_closes_the_connection_with_an_error() {
    let app = spawn_app().await;
    let mut client = app.connect("chat", None).await;
    client.send_text("{\"type\":\"nope\"}\u{1e}").await;
    let close = client.expect_close_message().await;
    assert_eq!(close["error"], "Connection closed with an error.");
    assert!(client.next_record().await.is_none());
    let path = format!("/api/v1/hubs/chat/connections/{}", client.connection_id);
    // The disconnect happens right after the close message; poll until the REST view agrees.
    let mut status = StatusCode::OK;
    for _ in 0..1000 {
        status = app.rest(Method::HEAD, &path, None).await.status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_close_message_ends_the_connection() {
    let app = spawn_app().await;
    let mut client = app.connect("chat", None).await;
    client.send_text("{\"type\":7}\u{1e}").await;
    assert!(
        client.next_record().await.is_none(),
        "the server closes the socket"
    );
}

#[tokio::test]
async fn stopping_the_emulator_tells_clients_it_is_shutting_down() {
    let app = spawn_app().await;
    let mut client = app.connect("chat", None).await;
    let stopping = tokio::spawn(app.stop());
    let close = client.expect_close_message().await;
    assert_eq!(close["error"], "Server is shutting down.");
    assert!(client.next_record().await.is_none());
    stopping.await.expect("stop completes");
}

#[tokio::test]
async fn connections_beyond_the_quota_get_429() {
    let app = spawn_app_with(|config| config.max_connections = 1).await;
    let _first = app.connect("chat", None).await;
    let token = app.client_token("chat", None);
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat", app.port);
    assert_eq!(
        ws_status(app.open_websocket(&url, Some(&token)).await.err()),
        429
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_instead_of_stalling_senders() {
    let app = spawn_app_with(|config| {
        config.outbound_queue_capacity = 1;
        config.timings.slow_client_grace = Duration::from_millis(10);
        // Long enough that only the slow-client rule, not the write timeout, can end the connection here.
        config.timings.client_timeout = Duration::from_secs(3600);
    })
    .await;
    // This client never reads: once the kernel's socket buffers and its queue are full, sends wait for
    // it only for the grace period, then it is dropped.
    let stuck = app.connect("chat", None).await;
    let path = format!("/api/v1/hubs/chat/connections/{}", stuck.connection_id);
    let large = json!({"target": "big", "arguments": ["x".repeat(900 * 1024)]});
    let mut gone = false;
    for _ in 0..500 {
        let response = app
            .rest(Method::POST, "/api/v1/hubs/chat", Some(large.clone()))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "sends keep being accepted"
        );
        if app.rest(Method::HEAD, &path, None).await.status() == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
    }
    assert!(gone, "the stuck client was never disconnected");
    let mut reader = app.connect("chat", None).await;
    app.rest(
        Method::POST,
        "/api/v1/hubs/chat",
        Some(json!({"target": "after"})),
    )
    .await;
    assert_eq!(
        reader.next_invocation().await.0,
        "after",
        "other clients still get messages"
    );
    drop(stuck);
}
