//! Starts an emulator in-process on port 0 and gives tests typed ways to call it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use signalr_emulator::{AccessKey, Config, Emulator, INSECURE_DEV_ACCESS_KEY};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Guards against a hang when a message never comes: the test fails with a clear message instead of
/// blocking the suite. It is not a timing assertion; a healthy run is far below it.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// The record separator that ends every hub-protocol message.
pub const RS: char = '\u{1e}';

/// A running emulator and an HTTP client for it.
pub struct TestApp {
    pub port: u16,
    pub http: reqwest::Client,
    pub key: String,
    shutdown: Option<oneshot::Sender<()>>,
    emulator: Option<Emulator>,
}

/// Starts an emulator with the default (insecure dev) key and the service's timings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an emulator after `adjust` has changed its configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::new(AccessKey::insecure_dev());
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port works");
    let (shutdown, stopped) = oneshot::channel::<()>();
    let emulator = Emulator::start(listener, config, async {
        let _ = stopped.await;
    })
    .expect("the listener has an address");
    TestApp {
        port: emulator.port(),
        http: reqwest::Client::new(),
        key: INSECURE_DEV_ACCESS_KEY.to_owned(),
        shutdown: Some(shutdown),
        emulator: Some(emulator),
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(elapsed.as_secs()).expect("seconds fit in i64")
}

/// Signs `claims` with HS256 over `key`'s UTF-8 bytes, as the SDKs do.
pub fn mint(claims: &Value, key: &str) -> String {
    mint_with(Header::new(Algorithm::HS256), claims, key)
}

/// Signs `claims` with a chosen header.
pub fn mint_with(header: Header, claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key.as_bytes()))
        .expect("encoding a JSON object works")
}

impl TestApp {
    /// Base URL by IP, as tests dial it; tokens name `localhost`, as the connection string does.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A REST token whose audience is `path` on `localhost` (no port, as the SDK writes it).
    pub fn rest_token(&self, path: &str) -> String {
        mint(
            &json!({"aud": format!("http://localhost{path}"), "exp": now() + 3600, "nameid": "server"}),
            &self.key,
        )
    }

    /// A client token for `hub` and, optionally, a user id in `asrs.s.uid`.
    pub fn client_token(&self, hub: &str, user: Option<&str>) -> String {
        let mut claims = json!({"aud": format!("http://localhost/client/?hub={}", hub.to_lowercase()), "exp": now() + 3600});
        if let Some(user) = user {
            claims["asrs.s.uid"] = Value::from(user);
        }
        mint(&claims, &self.key)
    }

    /// Calls the REST API with a valid token for the path (query excluded from the audience).
    pub async fn rest(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let token = self.rest_token(path);
        self.rest_with_token(method, path_and_query, body, Some(&token))
            .await
    }

    /// Calls the REST API with the given token (or none).
    pub async fn rest_with_token(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, format!("{}{path_and_query}", self.base()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("the emulator answers")
    }

    /// `POST /client/negotiate?hub=…[&negotiateVersion=…]` with a bearer token.
    pub async fn negotiate(
        &self,
        hub: &str,
        token: &str,
        version: Option<u8>,
    ) -> reqwest::Response {
        let mut url = format!("{}/client/negotiate?hub={hub}", self.base());
        if let Some(version) = version {
            url.push_str(&format!("&negotiateVersion={version}"));
        }
        self.http
            .post(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("the emulator answers")
    }

    /// Negotiates (v1), connects over WebSocket with the token in the header, and completes the handshake.
    pub async fn connect(&self, hub: &str, user: Option<&str>) -> TestClient {
        let token = self.client_token(hub, user);
        self.connect_with_token(hub, &token).await.0
    }

    /// Like [`TestApp::connect`] with a given client token; also returns the negotiate v1 connection token.
    pub async fn connect_with_token(&self, hub: &str, token: &str) -> (TestClient, String) {
        let negotiated: Value = self
            .negotiate(hub, token, Some(1))
            .await
            .json()
            .await
            .expect("negotiate returns JSON");
        let connection_token = negotiated["connectionToken"]
            .as_str()
            .expect("v1 has a connectionToken");
        let url = format!(
            "ws://127.0.0.1:{}/client/?hub={hub}&id={connection_token}",
            self.port
        );
        let mut client = self
            .open_websocket(&url, Some(token))
            .await
            .expect("the upgrade succeeds");
        client.connection_id = negotiated["connectionId"]
            .as_str()
            .expect("v1 has a connectionId")
            .to_owned();
        client.handshake().await;
        (client, connection_token.to_owned())
    }

    /// A client token for `hub` with `extra` claims added to `aud` and `exp`.
    pub fn client_token_with(&self, hub: &str, extra: &Value) -> String {
        let mut claims = json!({"aud": format!("http://localhost/client/?hub={}", hub.to_lowercase()), "exp": now() + 3600});
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        mint(&claims, &self.key)
    }

    /// Opens a WebSocket to `url`, with `token` in the `Authorization` header when given.
    pub async fn open_websocket(
        &self,
        url: &str,
        token: Option<&str>,
    ) -> Result<TestClient, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        if let Some(token) = token {
            let value = format!("Bearer {token}")
                .parse()
                .expect("a token is a valid header value");
            request.headers_mut().insert("authorization", value);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(TestClient {
            ws,
            connection_id: String::new(),
            buffer: String::new(),
        })
    }

    /// Stops the emulator and waits until it has.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(emulator) = self.emulator.take() {
            emulator.wait().await.expect("the emulator stops cleanly");
        }
    }
}

/// A WebSocket client speaking the JSON hub protocol.
pub struct TestClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub connection_id: String,
    buffer: String,
}

impl TestClient {
    /// Sends raw text in one WebSocket message.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("the socket is open");
    }

    /// Sends the JSON handshake and expects `{}`.
    pub async fn handshake(&mut self) {
        self.send_text("{\"protocol\":\"json\",\"version\":1}\u{1e}")
            .await;
        let reply = self.next_record().await.expect("a handshake reply");
        assert_eq!(reply, json!({}), "handshake reply");
    }

    /// The next record, or `None` when the socket closed.
    pub async fn next_record(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find(RS) {
                let record: String = self.buffer.drain(..=end).collect();
                let record = record.trim_end_matches(RS);
                return Some(serde_json::from_str(record).expect("records are JSON"));
            }
            let message = tokio::time::timeout(HANG_GUARD, self.ws.next())
                .await
                .expect("hang guard: no message from the emulator");
            match message {
                Some(Ok(Message::Text(text))) => self.buffer.push_str(text.as_str()),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(_))) => panic!("the JSON protocol sends text only"),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            }
        }
    }

    /// The next record that is not a ping.
    pub async fn next_message(&mut self) -> Option<Value> {
        loop {
            let record = self.next_record().await?;
            if record["type"] != 6 {
                return Some(record);
            }
        }
    }

    /// The next invocation as `(target, arguments)`; fails on anything else.
    pub async fn next_invocation(&mut self) -> (String, Value) {
        let record = self
            .next_message()
            .await
            .expect("an invocation, not a closed socket");
        assert_eq!(record["type"], 1, "expected an invocation, got {record}");
        assert!(
            record.get("invocationId").is_none(),
            "REST sends carry no invocationId"
        );
        (
            record["target"].as_str().expect("a target").to_owned(),
            record["arguments"].clone(),
        )
    }

    /// Expects a close message (type 7) and returns it.
    pub async fn expect_close_message(&mut self) -> Value {
        let record = self
            .next_message()
            .await
            .expect("a close message before the socket closes");
        assert_eq!(record["type"], 7, "expected a close message, got {record}");
        record
    }
}
