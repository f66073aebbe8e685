//! Upstream events (docs/protocol/signalr-service.md §6) against a real local HTTP server: headers, signature, bodies, and the
//! completion contract for client invocations.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use signalr_emulator::{AccessKey, INSECURE_DEV_ACCESS_KEY, UpstreamTemplate};
use tokio::sync::{Mutex, mpsc};

use crate::helpers::{HANG_GUARD, TestApp, TestClient, spawn_app_with};

const SECOND_KEY: &str = "a-secondary-key-for-rotation";

/// One request the fake upstream received.
#[derive(Debug)]
pub(crate) struct Received {
    path: String,
    query: String,
    pub(crate) headers: HeaderMap,
    body: String,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A function app stand-in: records every request and answers by the invocation target.
pub(crate) struct FakeUpstream {
    pub(crate) port: u16,
    received: Mutex<mpsc::UnboundedReceiver<Received>>,
}

impl FakeUpstream {
    pub(crate) async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port works");
        let port = listener.local_addr().expect("a bound address").port();
        let (sender, received) = mpsc::unbounded_channel();
        let router = axum::Router::new().fallback(answer).with_state(sender);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Arc::new(Self {
            port,
            received: Mutex::new(received),
        })
    }

    pub(crate) async fn next(&self) -> Received {
        tokio::time::timeout(HANG_GUARD, self.received.lock().await.recv())
            .await
            .expect("hang guard: no upstream request")
            .expect("the fake upstream runs")
    }
}

/// Answers like a function app would: `echo` with a completion it wrote itself (with a field the emulator
/// never writes, to prove it is forwarded raw), `nothing` with 204, `broken` with 500, the rest with 200.
async fn answer(
    State(sender): State<mpsc::UnboundedSender<Received>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let event = headers
        .get("x-asrs-event")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let invocation: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let _ = sender.send(Received {
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body,
    });
    match event.as_str() {
        "echo" => {
            let completion = json!({
                "type": 3,
                "invocationId": invocation["invocationId"],
                "result": invocation["arguments"][0],
                "writtenBy": "upstream",
            });
            (StatusCode::OK, format!("{completion}\u{1e}")).into_response()
        }
        "nothing" => StatusCode::NO_CONTENT.into_response(),
        "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => StatusCode::OK.into_response(),
    }
}

/// An emulator with two access keys whose upstream template points at `port`.
async fn app_with_upstream(port: u16) -> TestApp {
    let template =
        format!("http://127.0.0.1:{port}/hooks/{{hub}}/{{category}}/{{event}}?code=fn-key");
    spawn_app_with(move |config| {
        config
            .access_keys
            .push(AccessKey::parse(SECOND_KEY).expect("a valid key"));
        config.upstream = Some(UpstreamTemplate::parse(&template).expect("a valid template"));
    })
    .await
}

/// `sha256=<hex>` for both keys, computed here independently of the emulator.
fn expected_signature(connection_id: &str) -> String {
    [INSECURE_DEV_ACCESS_KEY, SECOND_KEY]
        .iter()
        .map(|key| {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
            mac.update(connection_id.as_bytes());
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            format!("sha256={hex}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn connect_alice(app: &TestApp) -> (TestClient, String) {
    let token = app.client_token_with("chat", &json!({"asrs.s.uid": "alice", "role": "admin"}));
    app.connect_with_token("chat", &token).await
}

/// Checks the headers every upstream request of `client` carries.
fn assert_common_headers(request: &Received, client: &TestClient, category: &str, event: &str) {
    assert_eq!(request.path, format!("/hooks/chat/{category}/{event}"));
    assert_eq!(request.query, "code=fn-key");
    assert_eq!(
        request.header("x-asrs-connection-id"),
        Some(client.connection_id.as_str())
    );
    assert_eq!(request.header("x-asrs-hub"), Some("chat"));
    assert_eq!(request.header("x-asrs-category"), Some(category));
    assert_eq!(request.header("x-asrs-event"), Some(event));
    assert_eq!(
        request.header("x-asrs-signature"),
        Some(expected_signature(&client.connection_id).as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn connected_and_disconnected_are_sent_signed_with_the_users_identity() {
    let upstream = FakeUpstream::start().await;
    let app = app_with_upstream(upstream.port).await;
    let (mut alice, _) = connect_alice(&app).await;

    let connected = upstream.next().await;
    assert_common_headers(&connected, &alice, "connections", "connected");
    assert_eq!(connected.body, "{\"type\":10}");
    assert_eq!(connected.header("x-asrs-user-id"), Some("alice"));
    let claims = connected.header("x-asrs-user-claims").unwrap_or_default();
    assert!(claims.contains("asrs.s.uid: alice"), "{claims}");
    assert!(claims.contains("role: admin"), "{claims}");
    // The connect query goes along without the connection token and the access token.
    assert_eq!(connected.header("x-asrs-client-query"), Some("?hub=chat"));

    alice.send_text("{\"type\":7}\u{1e}").await;
    let disconnected = upstream.next().await;
    assert_common_headers(&disconnected, &alice, "connections", "disconnected");
    assert_eq!(
        serde_json::from_str::<Value>(&disconnected.body).ok(),
        Some(json!({"type": 11}))
    );

    // An anonymous connection closed by the server: no user id, and the reason in the event.
    let mut anonymous = app.connect("chat", None).await;
    let connected = upstream.next().await;
    assert_eq!(connected.header("x-asrs-user-id"), None);
    let path = format!(
        "/api/v1/hubs/chat/connections/{}?reason=bye",
        anonymous.connection_id
    );
    assert_eq!(
        app.rest(Method::DELETE, &path, None).await.status(),
        StatusCode::ACCEPTED
    );
    anonymous.expect_close_message().await;
    let disconnected = upstream.next().await;
    assert_common_headers(&disconnected, &anonymous, "connections", "disconnected");
    assert_eq!(
        serde_json::from_str::<Value>(&disconnected.body).ok(),
        Some(json!({"type": 11, "error": "bye"}))
    );
}

#[tokio::test]
async fn an_invocation_with_an_id_gets_the_upstreams_completion_forwarded_raw() {
    let upstream = FakeUpstream::start().await;
    let app = app_with_upstream(upstream.port).await;
    let (mut alice, _) = connect_alice(&app).await;
    upstream.next().await; // connected

    let record = "{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"hi\"]}";
    alice.send_text(&format!("{record}\u{1e}")).await;
    let request = upstream.next().await;
    assert_common_headers(&request, &alice, "messages", "echo");
    assert_eq!(
        request.body, record,
        "the invocation goes upstream as the client sent it"
    );
    assert_eq!(request.header("x-asrs-user-id"), Some("alice"));
    assert_eq!(
        alice.next_message().await,
        Some(json!({"type": 3, "invocationId": "1", "result": "hi", "writtenBy": "upstream"}))
    );
}

#[tokio::test]
async fn other_answers_become_the_documented_completions() {
    let upstream = FakeUpstream::start().await;
    let app = app_with_upstream(upstream.port).await;
    let (mut alice, _) = connect_alice(&app).await;
    upstream.next().await; // connected

    alice
        .send_text(
            "{\"type\":1,\"invocationId\":\"2\",\"target\":\"broken\",\"arguments\":[]}\u{1e}",
        )
        .await;
    assert_eq!(
        alice.next_message().await,
        Some(
            json!({"type": 3, "invocationId": "2", "error": "Invocation failed, status code 500"})
        )
    );
    alice
        .send_text(
            "{\"type\":1,\"invocationId\":\"3\",\"target\":\"nothing\",\"arguments\":[]}\u{1e}",
        )
        .await;
    assert_eq!(
        alice.next_message().await,
        Some(json!({"type": 3, "invocationId": "3"}))
    );
    alice
        .send_text(
            "{\"type\":1,\"invocationId\":\"4\",\"target\":\"plain\",\"arguments\":[]}\u{1e}",
        )
        .await;
    assert_eq!(
        alice.next_message().await,
        Some(json!({"type": 3, "invocationId": "4"})),
        "an empty 200 is an empty completion"
    );
}

#[tokio::test]
async fn an_invocation_without_an_id_is_fire_and_forget() {
    let upstream = FakeUpstream::start().await;
    let app = app_with_upstream(upstream.port).await;
    let (mut alice, _) = connect_alice(&app).await;
    upstream.next().await; // connected

    // Both are delivered in order; neither answer (200 with a body, 500) reaches the client.
    alice
        .send_text("{\"type\":1,\"target\":\"echo\",\"arguments\":[1]}\u{1e}{\"type\":1,\"target\":\"broken\",\"arguments\":[2]}\u{1e}")
        .await;
    assert_eq!(upstream.next().await.header("x-asrs-event"), Some("echo"));
    assert_eq!(upstream.next().await.header("x-asrs-event"), Some("broken"));
    // The worker answers invocations one at a time; a later one with an id proves the earlier two are done.
    alice
        .send_text(
            "{\"type\":1,\"invocationId\":\"5\",\"target\":\"nothing\",\"arguments\":[]}\u{1e}",
        )
        .await;
    upstream.next().await;
    assert_eq!(
        alice.next_message().await,
        Some(json!({"type": 3, "invocationId": "5"})),
        "nothing came before the completion of the invocation with an id"
    );
}

#[tokio::test]
async fn a_refresh_changes_the_claims_of_later_upstream_requests() {
    let upstream = FakeUpstream::start().await;
    let app = app_with_upstream(upstream.port).await;
    let (mut alice, connection_token) = connect_alice(&app).await;
    upstream.next().await; // connected

    let response = app
        .rest(
            Method::POST,
            "/api/hubs/chat/connections/:refreshAuth?api-version=2026-07-01",
            Some(json!({
                "connectionToken": connection_token,
                "expireTime": "9999-12-31T23:59:59.9999999+00:00",
                "claims": [{"type": "asrs.s.uid", "value": "alice"}, {"type": "role", "value": "reader"}],
            })),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    alice
        .send_text("{\"type\":1,\"target\":\"fire\",\"arguments\":[]}\u{1e}")
        .await;
    let request = upstream.next().await;
    assert_eq!(
        request.header("x-asrs-user-claims"),
        Some("asrs.s.uid: alice, role: reader")
    );
}

#[tokio::test]
async fn an_unreachable_upstream_fails_the_invocation_and_keeps_the_connection() {
    // A port that was free a moment ago and has nobody listening now.
    let closed_port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port works");
        listener.local_addr().expect("a bound address").port()
    };
    let app = app_with_upstream(closed_port).await;
    let (mut alice, _) = connect_alice(&app).await;
    alice
        .send_text("{\"type\":1,\"invocationId\":\"6\",\"target\":\"echo\",\"arguments\":[]}\u{1e}")
        .await;
    let completion = alice.next_message().await.expect("a completion");
    assert_eq!(completion["invocationId"], "6");
    assert_eq!(
        completion["error"],
        "Invocation failed, the upstream could not be reached."
    );
    let path = format!("/api/v1/hubs/chat/connections/{}", alice.connection_id);
    app.rest(Method::POST, &path, Some(json!({"target": "still-here"})))
        .await;
    assert_eq!(alice.next_invocation().await.0, "still-here");
}
