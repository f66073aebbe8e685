//! Test harness: spawns the real `handler` binary on a free port, sends it host-shaped
//! invocations, mints test tokens, and serves JWKS from a real local HTTP server.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ISSUER: &str = "https://issuer.test.example/";
pub const AUDIENCE: &str = "api://signalr-test-app";
pub const HS256_SECRET: &str = "insecure-test-app-secret-0123456789-abcdefghij";
pub const ACCESS_KEY: &str = "INSECURE-TEST-ACCESS-KEY-ABCDEFGHIJKLMNOPQRSTUV0123456789";
pub const WEBPUBSUB_HOST: &str = "insecure-test.webpubsub.azure.com";
pub const WEBPUBSUB_PRIMARY_KEY: &str = "INSECURE-TEST-WPS-PRIMARY-KEY-0123456789ABCDEFGH";
pub const WEBPUBSUB_SECONDARY_KEY: &str = "INSECURE-TEST-WPS-SECONDARY-KEY-0123456789ABCDEF";
pub const WEBPUBSUB_CONNECTION_STRING: &str = "Endpoint=https://insecure-test.webpubsub.azure.com;AccessKey=INSECURE-TEST-WPS-PRIMARY-KEY-0123456789ABCDEFGH;Version=1.0;";
pub const CONNECTION_STRING: &str = "Endpoint=http://localhost;Port=8888;AccessKey=INSECURE-TEST-ACCESS-KEY-ABCDEFGHIJKLMNOPQRSTUV0123456789;Version=1.0;";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture exists")
}

/// Loads a payload fixture, substituting `{{NAME}}` placeholders as text so every level of the
/// host's JSON encoding receives the value.
pub fn payload(name: &str, substitutions: &[(&str, &str)]) -> Value {
    let mut text = fixture_text(name);
    for (placeholder, value) in substitutions {
        text = text.replace(&format!("{{{{{placeholder}}}}}"), value);
    }
    serde_json::from_str(&text).expect("fixture is JSON after substitution")
}

/// Settings for a spawned handler.
pub struct AppConfig {
    pub env: Vec<(String, String)>,
    pub app_root: PathBuf,
}

impl AppConfig {
    /// The repository's own function app with an HS256 issuer.
    pub fn hs256() -> Self {
        Self {
            env: vec![
                (
                    "AzureSignalRConnectionString".into(),
                    CONNECTION_STRING.into(),
                ),
                ("AUTH_ISSUER".into(), ISSUER.into()),
                ("AUTH_AUDIENCE".into(), AUDIENCE.into()),
                ("AUTH_HS256_SECRET".into(), HS256_SECRET.into()),
                (
                    "WEBPUBSUB_CONNECTION_STRING".into(),
                    WEBPUBSUB_CONNECTION_STRING.into(),
                ),
                ("WEBPUBSUB_REQUIRE_CLIENT_CERT".into(), "false".into()),
                ("WEBPUBSUB_CONNECT_JWT".into(), "required".into()),
            ],
            app_root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        }
    }

    /// The repository's app with keys from `jwks_url`.
    pub fn jwks(jwks_url: &str, algorithms: &str) -> Self {
        let mut config = Self::hs256();
        config.unset("AUTH_HS256_SECRET");
        config.set("AUTH_JWKS_URL", jwks_url);
        config.set("AUTH_ALGORITHMS", algorithms);
        config
    }

    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        self.unset(name);
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn unset(&mut self, name: &str) -> &mut Self {
        self.env.retain(|(key, _)| key != name);
        self
    }
}

/// A running handler process, killed on drop.
pub struct TestApp {
    pub port: u16,
    pub http: reqwest::Client,
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn handler_command(config: &AppConfig) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
    // A clean environment: inherited AUTH_* or connection strings must not change the test.
    command.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
        .env("FUNCTIONS_APP_ROOT_PATH", &config.app_root)
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
    for (name, value) in &config.env {
        command.env(name, value);
    }
    command
}

/// Starts the handler and waits until `GET /` answers.
pub async fn spawn_app(config: AppConfig) -> TestApp {
    let mut child = handler_command(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the handler binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr = Arc::new(Mutex::new(String::new()));
    let stderr_sink = stderr.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr_pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if std::env::var("TEST_LOG").is_ok() {
                eprint!("[handler] {line}");
            }
            stderr_sink.lock().expect("lock").push_str(&line);
            line.clear();
        }
    });
    let (port_sender, port_receiver) = std::sync::mpsc::channel();
    let stdout_text = Arc::new(Mutex::new(String::new()));
    let stdout_sink = stdout_text.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut sent = false;
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            stdout_sink.lock().expect("lock").push_str(&line);
            if !sent
                && let Some(port) = line
                    .trim()
                    .strip_prefix("handler listening on http://127.0.0.1:")
            {
                let _ = port_sender.send(port.parse::<u16>().expect("numeric port"));
                sent = true;
            }
            line.clear();
        }
    });
    let port = match port_receiver.recv_timeout(Duration::from_secs(30)) {
        Ok(port) => port,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "the handler did not report its port; stderr:\n{}",
                stderr.lock().expect("lock")
            );
        }
    };
    let app = TestApp {
        port,
        http: reqwest::Client::new(),
        child,
        stderr,
        stdout: stdout_text,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = app.http.get(app.url("/")).send().await
            && response.status().is_success()
        {
            return app;
        }
        assert!(Instant::now() < deadline, "the handler never became ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs the handler with `config` and expects it to refuse to start; returns its stderr.
pub fn start_expecting_failure(config: &AppConfig) -> String {
    let mut child = handler_command(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the handler binary starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "the handler exited successfully");
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .expect("piped")
                .read_to_string(&mut stderr)
                .expect("read");
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the handler kept running with a bad configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The caller-visible part of an invocation: the envelope's `res` output, plus `Logs`.
#[derive(Debug)]
pub struct Outcome {
    pub status: u64,
    pub headers: Map<String, Value>,
    pub body: Value,
    pub body_text: String,
    pub logs: Vec<String>,
    pub envelope: Value,
}

impl Outcome {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_str())
    }

    pub fn logs_text(&self) -> String {
        self.logs.join("\n")
    }

    /// Asserts a 401 refusal that hands out no token and logs `reason`.
    pub fn assert_unauthorized(&self, reason: &str) {
        assert_eq!(self.status, 401, "{self:#?}");
        assert_eq!(
            self.header("WWW-Authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert!(!self.body_text.contains("accessToken"), "{self:#?}");
        assert!(self.body["error"].is_string(), "{self:#?}");
        assert!(
            self.logs_text().contains(reason),
            "expected the log to name {reason:?}; logs: {:?}",
            self.logs
        );
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Everything the handler wrote to stdout so far (its informational log lines).
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    /// POSTs raw bytes as the host would and returns the handler's raw answer.
    pub async fn post_raw(&self, function: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/{function}")))
            .header("Content-Type", "application/json; charset=utf-8")
            .header(
                "X-Azure-Functions-InvocationId",
                "5f0d3a55-2f4e-4a1f-9a55-8f1e2d9c0b11",
            )
            .header("X-Azure-Functions-HostVersion", "4.1036.1.23224")
            .header("User-Agent", "Azure-Functions-Host/4.1036.1.23224")
            .body(body)
            .send()
            .await
            .expect("the handler answers")
    }

    /// Sends an invocation and checks the host-level contract (200, JSON, an envelope).
    pub async fn invoke_raw(&self, function: &str, body: Vec<u8>) -> Outcome {
        let response = self.post_raw(function, body).await;
        assert_eq!(response.status(), 200, "the host must always get 200");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "content type {content_type}"
        );
        let envelope: Value = response.json().await.expect("envelope is JSON");
        assert!(envelope["Outputs"].is_object(), "{envelope}");
        assert!(envelope["Logs"].is_array(), "{envelope}");
        assert_eq!(envelope["ReturnValue"], Value::Null);
        let res = &envelope["Outputs"]["res"];
        let body_text = res["body"].as_str().expect("string body").to_owned();
        Outcome {
            status: res["statusCode"].as_u64().expect("numeric statusCode"),
            headers: res["headers"].as_object().cloned().unwrap_or_default(),
            body: serde_json::from_str(&body_text).unwrap_or(Value::Null),
            body_text,
            logs: envelope["Logs"]
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|line| line.as_str().map(str::to_owned))
                .collect(),
            envelope,
        }
    }

    pub async fn invoke(&self, function: &str, payload: &Value) -> Outcome {
        self.invoke_raw(function, serde_json::to_vec(payload).expect("json"))
            .await
    }

    /// negotiate with the binding fixture, `app_token` as the caller's credential.
    pub async fn negotiate(&self, app_token: &str) -> Outcome {
        let binding = binding_token(now(), now() + 3600);
        let payload = payload(
            "negotiate-binding.json",
            &[("APP_TOKEN", app_token), ("BINDING_TOKEN", &binding)],
        );
        self.invoke("negotiate", &payload).await
    }
}

/// Standard claims for the test issuer.
pub fn claims(user: &str) -> Map<String, Value> {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "name": format!("User {user}"),
        "email": format!("{user}@contoso.example"),
    })
    .as_object()
    .expect("object")
    .clone()
}

pub fn hs256_token(claims: &Map<String, Value>) -> String {
    sign(
        Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
}

pub fn sign(header: Header, claims: &Map<String, Value>, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("signs")
}

/// A token from raw header and payload JSON, signed with HS256 over `secret` (or unsigned).
pub fn raw_token(header: &Value, payload: &Value, secret: Option<&[u8]>) -> String {
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signature = match secret {
        Some(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
            mac.update(format!("{header}.{payload}").as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{header}.{payload}.{signature}")
}

/// A binding token shaped like the one the extension mints (docs/protocol/functions-host.md §6).
pub fn binding_token(issued_at: u64, expires_at: u64) -> String {
    binding_token_with_key(issued_at, expires_at, ACCESS_KEY)
}

pub fn binding_token_with_key(issued_at: u64, expires_at: u64, key: &str) -> String {
    raw_token(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "-1419827734"}),
        &json!({
            "asrs.s.uid": "spoofed-by-binding-expression",
            "name": "unverified claim from idToken",
            "nbf": issued_at, "exp": expires_at, "iat": issued_at,
            "aud": "http://localhost/client/?hub=chat"
        }),
        Some(key.as_bytes()),
    )
}

/// Decodes a service token, checking its HS256 signature over the AccessKey.
pub fn decode_service_token(token: &str) -> (Value, Map<String, Value>) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "three segments");
    let mut mac = Hmac::<Sha256>::new_from_slice(ACCESS_KEY.as_bytes()).expect("any key length");
    mac.update(format!("{}.{}", segments[0], segments[1]).as_bytes());
    mac.verify_slice(
        &URL_SAFE_NO_PAD
            .decode(segments[2])
            .expect("base64url signature"),
    )
    .expect("signed with the AccessKey");
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[0]).expect("b64")).expect("json");
    let payload =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[1]).expect("b64")).expect("json");
    (header, payload)
}

/// The claims of a service token if its HS256 signature over the AccessKey is valid.
pub fn checked_service_claims(token: &str) -> Option<Map<String, Value>> {
    let segments: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = segments.as_slice() else {
        return None;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(ACCESS_KEY.as_bytes()).ok()?;
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

pub fn segment(token: &str, index: usize) -> &str {
    token.split('.').nth(index).expect("segment")
}

/// Test signing keys (insecure, generated for these tests).
pub struct TestKeys;

impl TestKeys {
    pub fn rsa_a() -> EncodingKey {
        EncodingKey::from_rsa_pem(fixture_text("insecure-test-rsa-a.pem").as_bytes())
            .expect("rsa pem")
    }
    pub fn rsa_b() -> EncodingKey {
        EncodingKey::from_rsa_pem(fixture_text("insecure-test-rsa-b.pem").as_bytes())
            .expect("rsa pem")
    }
    pub fn ec() -> EncodingKey {
        EncodingKey::from_ec_pem(fixture_text("insecure-test-ec-p256.pem").as_bytes())
            .expect("ec pem")
    }
    pub fn ed25519() -> EncodingKey {
        EncodingKey::from_ed_pem(fixture_text("insecure-test-ed25519.pem").as_bytes())
            .expect("ed pem")
    }

    /// The public JWK of `key` for `alg`, with `kid`.
    pub fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
        let mut jwk =
            serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(key, alg).expect("jwk"))
                .expect("json");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// The Ed25519 public JWK (jsonwebtoken cannot derive it): x = the last 32 bytes of the SPKI.
    pub fn ed25519_jwk(kid: &str) -> Value {
        let pem = fixture_text("insecure-test-ed25519.pub.pem");
        let base64: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(base64)
            .expect("der");
        let x = URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
    }
}

pub fn header_with_kid(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    header
}

/// Reads an HTTP request's head (request line and headers) from a stand-in server's socket.
async fn read_request_head(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    Some(String::from_utf8_lossy(&request).into_owned())
}

/// A real HTTP server on loopback serving a JWKS and an OIDC discovery document, counting
/// requests, and able to go down.
pub struct IdentityProvider {
    pub base_url: String,
    state: Arc<Mutex<ProviderState>>,
    task: tokio::task::JoinHandle<()>,
}

struct ProviderState {
    jwks: Value,
    jwks_hits: usize,
    /// The discovery document's `jwks_uri`, when not this server's own `/keys`.
    discovered_jwks_uri: Option<String>,
}

impl IdentityProvider {
    pub async fn start(jwks: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let state = Arc::new(Mutex::new(ProviderState {
            jwks,
            jwks_hits: 0,
            discovered_jwks_uri: None,
        }));
        let shared = state.clone();
        let issuer = base_url.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                let issuer = issuer.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request_head(&mut socket).await else {
                        return;
                    };
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, body) = match path.as_str() {
                        "/keys" => {
                            let mut state = shared.lock().expect("lock");
                            state.jwks_hits += 1;
                            ("200 OK", state.jwks.to_string())
                        }
                        "/.well-known/openid-configuration" => {
                            let jwks_uri = shared
                                .lock()
                                .expect("lock")
                                .discovered_jwks_uri
                                .clone()
                                .unwrap_or_else(|| format!("{issuer}/keys"));
                            (
                                "200 OK",
                                json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string(),
                            )
                        }
                        _ => ("404 Not Found", "{}".to_owned()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            base_url,
            state,
            task,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/keys", self.base_url)
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.lock().expect("lock").jwks_hits
    }

    /// Makes the discovery document name `jwks_uri` instead of this server's `/keys`.
    pub fn set_discovered_jwks_uri(&self, jwks_uri: &str) {
        self.state.lock().expect("lock").discovered_jwks_uri = Some(jwks_uri.to_owned());
    }

    pub fn set_jwks(&self, jwks: Value) {
        self.state.lock().expect("lock").jwks = jwks;
    }

    /// Stops listening: later connections are refused.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A host-shaped invocation of `function` with `body` as the caller's JSON body, built as the
/// host builds it: `Body` as text with its length, and every top-level body property copied into
/// `Metadata` (objects as objects, other values double-encoded).
pub fn function_payload(function: &str, app_token: Option<&str>, body: &Value) -> Value {
    let mut payload = payload(
        "function-invocation.json",
        &[
            ("FUNCTION", function),
            ("APP_TOKEN", app_token.unwrap_or("unused")),
        ],
    );
    let text = body.to_string();
    let request = &mut payload["Data"]["req"];
    request["Body"] = json!(text);
    request["Headers"]["Content-Length"] = json!([text.len().to_string()]);
    if app_token.is_none() {
        request["Headers"]
            .as_object_mut()
            .expect("headers")
            .remove("Authorization");
        payload["Metadata"]["Headers"]
            .as_object_mut()
            .expect("headers")
            .remove("Authorization");
    }
    if let Value::Object(properties) = body {
        for (name, value) in properties {
            let metadata_value = match value {
                Value::Array(_) => continue,
                Value::Object(_) => value.clone(),
                Value::String(text) => json!(json!(text).to_string()),
                other => json!(json!(other.to_string()).to_string()),
            };
            payload["Metadata"][name] = metadata_value;
        }
    }
    payload
}

impl TestApp {
    /// Invokes `function` as the caller holding `app_token` with `body`.
    pub async fn call(&self, function: &str, app_token: &str, body: Value) -> Outcome {
        self.invoke(
            function,
            &function_payload(function, Some(app_token), &body),
        )
        .await
    }
}

impl Outcome {
    /// The envelope's output binding `name`.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.envelope["Outputs"].get(name)
    }

    /// Asserts a 403 naming `operation` that emits no SignalR item.
    pub fn assert_forbidden(&self, operation: &str) {
        assert_eq!(self.status, 403, "{self:#?}");
        assert_eq!(self.body["error"], "forbidden");
        assert_eq!(self.body["operation"], operation);
        self.assert_no_signalr_output();
    }

    /// Asserts the envelope carries no output other than `res`.
    pub fn assert_no_signalr_output(&self) {
        let outputs = self.envelope["Outputs"].as_object().expect("outputs");
        assert!(
            outputs.keys().all(|key| key == "res"),
            "unexpected outputs: {outputs:?}"
        );
    }
}

/// A user token with extra claims.
pub fn token_with(user: &str, extra: Value) -> String {
    let mut claims = claims(user);
    if let Value::Object(extra) = extra {
        claims.extend(extra);
    }
    hs256_token(&claims)
}

/// A real HTTP server standing in for the SignalR REST API's membership check: answers
/// `HEAD /api/hubs/{hub}/users/{user}/groups/{group}` with 200 for listed members, else 404,
/// after checking the bearer token's signature against the AccessKey.
pub struct RestStandIn {
    pub port: u16,
    members: Arc<Mutex<Vec<(String, String)>>>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RestStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let members: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (shared_members, shared_requests) = (members.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (members, requests) = (shared_members.clone(), shared_requests.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request_head(&mut socket).await else {
                        return;
                    };
                    let mut lines = request.lines();
                    let request_line = lines.next().unwrap_or_default().to_owned();
                    let authorization = lines
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("authorization")
                                .then(|| value.trim().to_owned())
                        })
                        .unwrap_or_default();
                    requests.lock().expect("lock").push(request_line.clone());
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
                    let path = path.split('?').next().unwrap_or_default();
                    // The REST token must be signed with the AccessKey and name this path.
                    let token_ok = authorization
                        .strip_prefix("Bearer ")
                        .and_then(checked_service_claims)
                        .and_then(|claims| {
                            claims.get("aud").and_then(Value::as_str).map(str::to_owned)
                        })
                        .is_some_and(|aud| {
                            aud.split('?').next().is_some_and(|aud| aud.ends_with(path))
                        });
                    let segments: Vec<&str> = path.split('/').collect();
                    let status = match (token_ok, segments.as_slice()) {
                        (false, _) => "401 Unauthorized",
                        (true, ["", "api", "hubs", "chat", "users", user, "groups", group]) => {
                            let member = members
                                .lock()
                                .expect("lock")
                                .iter()
                                .any(|(u, g)| u == user && g == group);
                            if member { "200 OK" } else { "404 Not Found" }
                        }
                        _ => "400 Bad Request",
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            port,
            members,
            requests,
            task,
        }
    }

    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={ACCESS_KEY};Version=1.0;",
            self.port
        )
    }

    pub fn add_member(&self, user: &str, group: &str) {
        self.members
            .lock()
            .expect("lock")
            .push((user.into(), group.into()));
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

// ---- Identity sources and the Web PubSub connect handler ----

pub const VISITOR_SECRET: &str = "insecure-test-visitor-secret-0123456789-abcdef";
pub const VISITOR_ISSUER: &str = "cdp.insecure-test.example";
pub const VISITOR_AUDIENCE: &str = "signalr-anonymous-visitor";
pub const NAME_ID_CLAIM: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
pub const ROLE_CLAIM: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

/// `"Name": ["value"],` members for a `{{HEADERS}}` placeholder (host headers are arrays).
pub fn header_members(headers: &[(&str, &str)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{}: [{}],", json!(name), json!(value)))
        .collect()
}

/// `"name": "value",` members for a `{{QUERY}}` placeholder.
pub fn query_members(query: &[(&str, &str)]) -> String {
    query
        .iter()
        .map(|(name, value)| format!("{}: {},", json!(name), json!(value)))
        .collect()
}

/// Base64 of a principal, as App Service writes `X-MS-CLIENT-PRINCIPAL`.
pub fn principal_header(principal: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(principal.to_string())
}

/// An App Service principal for `user_id` with `roles`.
pub fn app_service_principal(user_id: &str, roles: &[&str]) -> Value {
    let mut claims = vec![
        json!({"typ": NAME_ID_CLAIM, "val": user_id}),
        json!({"typ": "name", "val": format!("User {user_id}")}),
    ];
    claims.extend(
        roles
            .iter()
            .map(|role| json!({"typ": ROLE_CLAIM, "val": role})),
    );
    json!({"auth_typ": "aad", "claims": claims,
           "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
           "role_typ": ROLE_CLAIM})
}

/// A visitor token as the CDP would sign it.
pub fn visitor_token(visitor_id: &str, secret: &str, issued_at: u64, expires_at: u64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": VISITOR_ISSUER, "aud": VISITOR_AUDIENCE, "sub": visitor_id,
                "iat": issued_at, "exp": expires_at}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

/// A self-signed certificate generated for one test (never checked in).
pub struct TestCertificate {
    pub der_base64: String,
    pub pem: String,
    pub thumbprint: String,
}

pub fn test_certificate(common_name: &str, not_before: i64, not_after: i64) -> TestCertificate {
    use sha1::Digest;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).expect("time");
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("time");
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = params.self_signed(&key).expect("signs");
    let der = certificate.der().to_vec();
    TestCertificate {
        der_base64: base64::engine::general_purpose::STANDARD.encode(&der),
        pem: certificate.pem(),
        thumbprint: sha1::Sha1::digest(&der)
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect(),
    }
}

pub fn unix_now() -> i64 {
    i64::try_from(now()).expect("fits")
}

/// `sha256=<hex>` entries for `connection_id` under each key, as the service sends them.
pub fn wps_signature(keys: &[&str], connection_id: &str) -> String {
    keys.iter()
        .map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
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

/// One Web PubSub event as the service would POST it.
pub struct WpsEvent {
    pub event_type: String,
    pub connection_id: String,
    pub origin: Option<String>,
    pub signature: Option<String>,
    pub body: Value,
}

impl WpsEvent {
    /// A connect event for `connection_id`, signed with the primary and secondary keys.
    pub fn connect(connection_id: &str, body: Value) -> Self {
        Self::system("connect", connection_id, body)
    }

    pub fn system(name: &str, connection_id: &str, body: Value) -> Self {
        Self {
            event_type: format!("azure.webpubsub.sys.{name}"),
            connection_id: connection_id.into(),
            origin: Some(WEBPUBSUB_HOST.into()),
            signature: Some(wps_signature(
                &[WEBPUBSUB_PRIMARY_KEY, WEBPUBSUB_SECONDARY_KEY],
                connection_id,
            )),
            body,
        }
    }
}

/// A connect event body with an app token in the query and the given certificates.
pub fn connect_body(app_token: Option<&str>, certificates: Value) -> Value {
    let mut query = json!({"hub": ["chat"]});
    if let Some(token) = app_token {
        query["app_token"] = json!([token]);
    }
    json!({"claims": {}, "query": query,
           "headers": {"User-Agent": ["insecure-test-client/1.0"]},
           "subprotocols": [], "clientCertificates": certificates})
}

impl TestApp {
    /// negotiate with the given credential headers and query parameters.
    pub async fn negotiate_with(
        &self,
        headers: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> Outcome {
        let binding = binding_token(now(), now() + 3600);
        let payload = payload(
            "negotiate-credentials.json",
            &[
                ("HEADERS", &header_members(headers)),
                ("QUERY", &query_members(query)),
                ("BINDING_TOKEN", &binding),
            ],
        );
        self.invoke("negotiate", &payload).await
    }

    /// The abuse-protection OPTIONS request with the given headers.
    pub async fn connect_handshake(&self, headers: &[(&str, &str)]) -> Outcome {
        let payload = payload(
            "connect-validate.json",
            &[("HEADERS", &header_members(headers))],
        );
        self.invoke("connect", &payload).await
    }

    /// A Web PubSub event POSTed to connect.
    pub async fn connect_event(&self, event: &WpsEvent) -> Outcome {
        let mut headers = vec![
            ("ce-type", event.event_type.as_str()),
            ("ce-connectionId", event.connection_id.as_str()),
        ];
        if let Some(origin) = &event.origin {
            headers.push(("WebHook-Request-Origin", origin));
        }
        if let Some(signature) = &event.signature {
            headers.push(("ce-signature", signature));
        }
        let name = event
            .event_type
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        // Inside JSON strings of the fixture: escaped, so any id or name stays a string.
        let in_string = |text: &str| {
            let quoted = json!(text).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        };
        let mut payload = payload(
            "connect-event.json",
            &[
                ("HEADERS", &header_members(&headers)),
                ("CONNECTION_ID", &in_string(&event.connection_id)),
                ("EVENT_NAME", &in_string(&name)),
            ],
        );
        payload["Data"]["req"]["Body"] = json!(event.body.to_string());
        self.invoke("connect", &payload).await
    }

    /// Waits until the handler's stderr contains `text` (it is written before readiness, but
    /// read by another thread).
    pub async fn wait_for_stderr(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stderr = self.stderr();
            if stderr.contains(text) {
                return stderr;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never contained {text:?}: {stderr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Outcome {
    /// The user id (`asrs.s.uid`) of the SignalR token negotiate issued.
    pub fn issued_user(&self) -> String {
        assert_eq!(self.status, 200, "{self:#?}");
        let token = self.body["accessToken"].as_str().expect("token");
        let (_, claims) = decode_service_token(token);
        claims["asrs.s.uid"].as_str().expect("uid").to_owned()
    }
}
