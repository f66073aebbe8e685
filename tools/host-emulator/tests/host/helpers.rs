//! Test harness: temporary app roots, the host emulator in-process on port 0, an in-process fake
//! handler (attach mode) for envelope edge cases, and a recording stand-in for the SignalR Service
//! REST API. (The real handler runs behind the host in the root package's `tests/stack`.)

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use host_emulator::{HandlerLaunch, HostEmulator, HostOptions};
use serde_json::{Value, json};

pub const ACCESS_KEY: &str = "INSECURE-HOST-EMULATOR-TEST-KEY-0123456789ABCDEFGH";

/// A temporary app root.
pub struct AppRoot {
    pub dir: tempfile::TempDir,
}

impl AppRoot {
    pub fn new(host_json: Value) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("host.json"), host_json.to_string())
            .expect("write host.json");
        Self { dir }
    }

    /// host.json pointing at `executable` (relative to the app root or absolute).
    pub fn with_handler(executable: &str, arguments: &[&str]) -> Self {
        Self::new(json!({
            "version": "2.0",
            "customHandler": {
                "description": {"defaultExecutablePath": executable, "workingDirectory": "", "arguments": arguments},
                "enableForwardingHttpRequest": false
            },
            "extensions": {"http": {"routePrefix": "api"}}
        }))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn function(&self, name: &str, function_json: &str) -> &Self {
        let folder = self.path().join(name);
        std::fs::create_dir_all(&folder).expect("create the function folder");
        std::fs::write(folder.join("function.json"), function_json).expect("write function.json");
        self
    }

    pub fn settings(&self, settings: Value) -> &Self {
        std::fs::write(
            self.path().join("local.settings.json"),
            settings.to_string(),
        )
        .expect("write settings");
        self
    }
}

/// A connection string whose REST calls go to `port`.
pub fn connection_string(port: u16) -> String {
    format!("Endpoint=http://localhost;Port={port};AccessKey={ACCESS_KEY};Version=1.0;")
}

/// A running host emulator, stopped on drop.
pub struct TestHost {
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestHost {
    pub async fn start(app: &AppRoot, handler: HandlerLaunch) -> Self {
        let host = HostEmulator::start(HostOptions {
            app_root: app.path().to_path_buf(),
            port: Some(0),
            handler,
        })
        .await
        .expect("the host emulator starts");
        let base = format!("http://127.0.0.1:{}", host.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(host.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            base,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for the host to stop by itself and returns how it ended.
    pub async fn ended(mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(task) => task.await.expect("the host task joins"),
            None => Ok(()),
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the fake handler received.
#[derive(Debug, Clone)]
pub struct ReceivedInvocation {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// The fake handler's answer.
#[derive(Debug, Clone)]
pub struct HandlerAnswer {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: String,
}

impl HandlerAnswer {
    pub fn outputs(outputs: Value) -> Self {
        Self {
            status: 200,
            content_type: Some("application/json"),
            body: json!({"Outputs": outputs, "Logs": ["fake handler ran"], "ReturnValue": null})
                .to_string(),
        }
    }
}

#[derive(Clone)]
struct FakeHandlerState {
    received: Arc<Mutex<Vec<ReceivedInvocation>>>,
    answer: Arc<Mutex<HandlerAnswer>>,
}

/// An in-process handler the host attaches to.
pub struct FakeHandler {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedInvocation>>>,
    answer: Arc<Mutex<HandlerAnswer>>,
}

impl FakeHandler {
    pub async fn start(answer: HandlerAnswer) -> Self {
        let state = FakeHandlerState {
            received: Arc::default(),
            answer: Arc::new(Mutex::new(answer)),
        };
        let router = axum::Router::new()
            .fallback(fake_handler_route)
            .with_state(state.clone());
        let port = serve_on_free_port(router).await;
        Self {
            port,
            received: state.received,
            answer: state.answer,
        }
    }

    pub fn answer(&self, answer: HandlerAnswer) {
        *self.answer.lock().expect("lock") = answer;
    }

    pub fn received(&self) -> Vec<ReceivedInvocation> {
        self.received.lock().expect("lock").clone()
    }

    pub fn last(&self) -> ReceivedInvocation {
        self.received().pop().expect("the handler was invoked")
    }
}

async fn fake_handler_route(State(state): State<FakeHandlerState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == axum::http::Method::GET && parts.uri.path() == "/" {
        return "ok".into_response();
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    state
        .received
        .lock()
        .expect("lock")
        .push(ReceivedInvocation {
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
    let answer = state.answer.lock().expect("lock").clone();
    let mut response = Response::new(axum::body::Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("valid status");
    if let Some(content_type) = answer.content_type {
        response
            .headers_mut()
            .insert("content-type", content_type.parse().expect("valid header"));
    }
    response
}

/// One REST call the fake service received.
#[derive(Debug, Clone)]
pub struct RestCall {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: String,
    pub body: Option<Value>,
}

/// A stand-in for the SignalR Service REST API: records calls, answers `status`.
pub struct FakeService {
    pub port: u16,
    calls: Arc<Mutex<Vec<RestCall>>>,
    status: Arc<Mutex<u16>>,
}

#[derive(Clone)]
struct FakeServiceState {
    calls: Arc<Mutex<Vec<RestCall>>>,
    status: Arc<Mutex<u16>>,
}

impl FakeService {
    pub async fn start() -> Self {
        let state = FakeServiceState {
            calls: Arc::default(),
            status: Arc::new(Mutex::new(202)),
        };
        let router = axum::Router::new()
            .fallback(fake_service_route)
            .with_state(state.clone());
        let port = serve_on_free_port(router).await;
        Self {
            port,
            calls: state.calls,
            status: state.status,
        }
    }

    pub fn calls(&self) -> Vec<RestCall> {
        self.calls.lock().expect("lock").clone()
    }

    pub fn answer_status(&self, status: u16) {
        *self.status.lock().expect("lock") = status;
    }
}

async fn fake_service_route(State(state): State<FakeServiceState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    state.calls.lock().expect("lock").push(RestCall {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        authorization: parts
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_slice(&bytes).ok(),
    });
    let status = *state.status.lock().expect("lock");
    StatusCode::from_u16(status)
        .expect("valid status")
        .into_response()
}

/// Decodes a JWT's payload without verification (assertions only).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// Checks an HS256 signature with `key`.
pub fn signature_is_valid(token: &str, key: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature).is_ok()
}

/// A function.json with an HTTP trigger, optional extra bindings, and `res`.
pub fn http_function(route: &str, methods: &[&str], extra: Value) -> String {
    let mut bindings = vec![json!({
        "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous",
        "methods": methods, "route": route
    })];
    if let Value::Array(extra) = extra {
        bindings.extend(extra);
    }
    bindings.push(json!({"type": "http", "direction": "out", "name": "res"}));
    json!({ "bindings": bindings }).to_string()
}

/// Serves `router` on a free loopback port in the background and returns the port.
async fn serve_on_free_port(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}
