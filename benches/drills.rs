//! Fault drills: what the release `handler` does when what it depends on fails (RELIABILITY.md).
//!
//! `scripts/drills` runs `cargo bench --bench drills` (the release binary, real processes, real
//! HTTP on loopback), then the drills that need the host emulator. Each drill prints one
//! `PASS drill: …` or `FAIL drill: …` line with what it measured; the process exits non-zero if
//! any failed. Bounds on waiting are caps on polling, never timed assertions about speed,
//! except where bounding the wait is the point of the drill (timeouts bound the request); those
//! compare with the handler's own timeout (5 s for JWKS and REST) plus a margin.
//!
//! The JWKS and REST stand-ins here are [`Flaky`] servers: a port that can go down (connection
//! refused), come back on the same port, answer slowly, or answer garbage.

#[path = "../tests/api/helpers/mod.rs"]
#[expect(
    dead_code,
    unused_imports,
    reason = "the drills use part of the shared test harness, not its stand-ins"
)]
mod helpers;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helpers::*;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The handler's JWKS and REST request timeout (src/identity/jwks.rs, src/signalr/rest.rs).
const HANDLER_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack over a timeout for scheduling on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(3);
/// How long a slow stand-in stalls: far beyond any timeout of the handler.
const STALL: Duration = Duration::from_secs(60);
/// Cap on polling for a recovery.
const RECOVERY_CAP: Duration = Duration::from_secs(60);

/// What a stand-in answers for a request path: status line and body.
type Answer = Arc<dyn Fn(&str) -> (&'static str, String) + Send + Sync>;

#[derive(Clone)]
enum Mode {
    Normal,
    Slow,
    Garbage,
}

/// A loopback HTTP server on a fixed port that can be taken down and brought back.
struct Flaky {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    answer: Answer,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Flaky {
    async fn start(answer: Answer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut server = Self {
            port,
            mode: Arc::new(Mutex::new(Mode::Normal)),
            answer,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (mode, answer) = (self.mode.clone(), self.answer.clone());
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (mode, answer) = (mode.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let head = String::from_utf8_lossy(&request).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let current = mode.lock().expect("mode lock").clone();
                    let (status, body) = match current {
                        Mode::Normal => answer(&path),
                        Mode::Slow => {
                            tokio::time::sleep(STALL).await;
                            answer(&path)
                        }
                        Mode::Garbage => ("200 OK", "\u{0}<html>not a JWKS{".to_owned()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        }));
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode lock") = mode;
    }

    /// Connections are refused from now on.
    async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the port is free again");
        self.serve(listener);
    }
}

fn jwks_answer() -> Answer {
    let jwks = json!({"keys": [TestKeys::jwk(&TestKeys::rsa_a(), Algorithm::RS256, "rsa-a")]});
    Arc::new(move |_path: &str| ("200 OK", jwks.to_string()))
}

/// Every membership check answers "member".
fn member_answer() -> Answer {
    Arc::new(|_path: &str| ("200 OK", String::new()))
}

fn rs256_token(user: &str) -> String {
    sign(
        header_with_kid(Algorithm::RS256, "rsa-a"),
        &claims(user),
        &TestKeys::rsa_a(),
    )
}

async fn jwks_app(jwks: &Flaky) -> TestApp {
    let mut config = AppConfig::jwks(&format!("http://127.0.0.1:{}/keys", jwks.port), "RS256");
    // The floor, so recovery is not held back by the refresh rate limit.
    config.set("AUTH_JWKS_REFRESH_SECONDS", "1");
    spawn_app(config).await
}

/// The caller's status and how long the invocation took.
async fn timed_negotiate(app: &TestApp, token: &str) -> (u64, Duration) {
    let started = Instant::now();
    let outcome = app.negotiate(token).await;
    (outcome.status, started.elapsed())
}

struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, pass: bool, drill: &str, measured: String) {
        if !pass {
            self.failed += 1;
        }
        println!(
            "{} drill: {drill}: {measured}",
            if pass { "PASS" } else { "FAIL" }
        );
    }
}

async fn jwks_down_at_start(report: &mut Report) {
    let mut jwks = Flaky::start(jwks_answer()).await;
    jwks.down().await;
    let app = jwks_app(&jwks).await;
    let (cold, cold_took) = timed_negotiate(&app, &rs256_token("alice")).await;
    jwks.up().await;
    let deadline = Instant::now() + RECOVERY_CAP;
    let back_up = Instant::now();
    let mut recovered = None;
    while Instant::now() < deadline {
        let (status, _) = timed_negotiate(&app, &rs256_token("alice")).await;
        if status == 200 {
            recovered = Some(back_up.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report.line(
        cold == 503 && recovered.is_some(),
        "JWKS down at start",
        format!(
            "while down {cold} in {:.0} ms; back up: {}",
            cold_took.as_secs_f64() * 1e3,
            recovered.map_or("never recovered".to_owned(), |took| format!(
                "200 after {:.1} s, no restart",
                took.as_secs_f64()
            ))
        ),
    );
}

async fn jwks_down_later_with_warm_keys(report: &mut Report) {
    let mut jwks = Flaky::start(jwks_answer()).await;
    let app = jwks_app(&jwks).await;
    let (warm, _) = timed_negotiate(&app, &rs256_token("alice")).await;
    jwks.down().await;
    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(
            timed_negotiate(&app, &rs256_token(&format!("user-{i}")))
                .await
                .0,
        );
    }
    let served = statuses.iter().filter(|status| **status == 200).count();
    report.line(
        warm == 200 && served == statuses.len(),
        "JWKS down later, warm keys",
        format!(
            "warm {warm}; with the JWKS down, {served}/{} negotiates with the known kid answered 200",
            statuses.len()
        ),
    );
}

async fn jwks_slow(report: &mut Report) {
    let jwks = Flaky::start(jwks_answer()).await;
    jwks.set(Mode::Slow);
    let app = jwks_app(&jwks).await;
    let (status, took) = timed_negotiate(&app, &rs256_token("alice")).await;
    let bound = HANDLER_TIMEOUT + MARGIN;
    report.line(
        status == 503 && took <= bound,
        "JWKS slow",
        format!(
            "stand-in stalls {} s; answered {status} in {:.2} s (bound: the 5 s fetch timeout + {} s)",
            STALL.as_secs(),
            took.as_secs_f64(),
            MARGIN.as_secs()
        ),
    );
}

async fn jwks_garbage(report: &mut Report) {
    let jwks = Flaky::start(jwks_answer()).await;
    jwks.set(Mode::Garbage);
    let app = jwks_app(&jwks).await;
    let (status, took) = timed_negotiate(&app, &rs256_token("alice")).await;
    jwks.set(Mode::Normal);
    let deadline = Instant::now() + RECOVERY_CAP;
    let mut recovered = false;
    while Instant::now() < deadline && !recovered {
        recovered = timed_negotiate(&app, &rs256_token("alice")).await.0 == 200;
        if !recovered {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    report.line(
        status == 503 && recovered,
        "JWKS serving garbage",
        format!(
            "answered {status} in {:.0} ms; {} once the JWKS was valid again",
            took.as_secs_f64() * 1e3,
            if recovered { "200" } else { "never 200" }
        ),
    );
}

/// `sendToGroup` to the caller's team group needs `senderIsMember` (policy.json); accepted is 202.
async fn send_to_team(app: &TestApp) -> (u64, Duration, bool) {
    let started = Instant::now();
    let outcome = app
        .call(
            "sendToGroup",
            &token_with("alice", json!({"team": "red"})),
            json!({"group": "team.red", "target": "newMessage", "arguments": ["hi"]}),
        )
        .await;
    let emitted = outcome
        .envelope
        .get("Outputs")
        .and_then(Value::as_object)
        .is_some_and(|outputs| outputs.keys().any(|name| name != "res"));
    (outcome.status, started.elapsed(), emitted)
}

async fn rest_app(rest: &Flaky) -> TestApp {
    let mut config = AppConfig::hs256();
    config.set(
        "AzureSignalRConnectionString",
        &format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={ACCESS_KEY};Version=1.0;",
            rest.port
        ),
    );
    spawn_app(config).await
}

async fn rest_down_and_slow(report: &mut Report) {
    let mut rest = Flaky::start(member_answer()).await;
    let app = rest_app(&rest).await;
    let (up, _, up_emitted) = send_to_team(&app).await;
    rest.down().await;
    let (down, down_took, down_emitted) = send_to_team(&app).await;
    report.line(
        up == 202 && up_emitted && down == 503 && !down_emitted,
        "SignalR REST down during senderIsMember",
        format!(
            "up: {up}; down: {down} in {:.0} ms, message emitted: {down_emitted}",
            down_took.as_secs_f64() * 1e3
        ),
    );
    rest.up().await;
    rest.set(Mode::Slow);
    let calls: Vec<_> = (0..8).map(|_| send_to_team(&app)).collect();
    let results = futures_util::future::join_all(calls).await;
    let slowest = results
        .iter()
        .map(|(_, took, _)| *took)
        .max()
        .unwrap_or_default();
    let all_503 = results
        .iter()
        .all(|(status, _, emitted)| *status == 503 && !emitted);
    report.line(
        all_503 && slowest <= HANDLER_TIMEOUT + MARGIN,
        "SignalR REST slow during senderIsMember",
        format!(
            "{} concurrent sends: statuses {:?}, slowest {:.2} s (bound: the 5 s REST timeout + {} s), none emitted a message: {}",
            results.len(),
            results.iter().map(|(status, _, _)| *status).collect::<Vec<_>>(),
            slowest.as_secs_f64(),
            MARGIN.as_secs(),
            results.iter().all(|(_, _, emitted)| !emitted)
        ),
    );
}

/// SIGTERM with invocations in flight (held by a slow membership check that answers after
/// 1.5 s): they complete; a connection opened after the signal is refused.
async fn sigterm_during_load(report: &mut Report) {
    let rest_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let rest_port = rest_listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = rest_listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    let mut config = AppConfig::hs256();
    config.set(
        "AzureSignalRConnectionString",
        &format!("Endpoint=http://127.0.0.1;Port={rest_port};AccessKey={ACCESS_KEY};Version=1.0;"),
    );
    let app = Arc::new(spawn_app(config).await);
    let in_flight: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let body = function_payload(
                    "sendToGroup",
                    Some(&token_with("alice", json!({"team": "red"}))),
                    &json!({"group": "team.red", "target": "newMessage", "arguments": ["hi"]}),
                );
                app.http
                    .post(app.url("/sendToGroup"))
                    .header("Content-Type", "application/json")
                    .body(serde_json::to_vec(&body).expect("json"))
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
            })
        })
        .collect();
    // The invocations are waiting on the stand-in (1.5 s); signal well inside that window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .is_ok_and(|status| status.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = reqwest::Client::new()
        .post(app.url("/negotiate"))
        .body("{}")
        .send()
        .await;
    let mut statuses = Vec::new();
    for call in in_flight {
        statuses.push(call.await.expect("a sender task"));
    }
    let completed = statuses
        .iter()
        .filter(|status| matches!(status, Ok(200)))
        .count();
    let late_refused = match &late {
        Err(error) => error.is_connect(),
        Ok(_) => false,
    };
    report.line(
        signalled && completed == statuses.len() && late_refused,
        "SIGTERM during load",
        format!(
            "{completed}/{} in-flight invocations answered 200 after SIGTERM; a new request after it: {}",
            statuses.len(),
            match late {
                Err(error) if error.is_connect() => "connection refused".to_owned(),
                Err(error) => format!("error {error}"),
                Ok(response) => format!("answered {}", response.status()),
            }
        ),
    );
}

#[tokio::main]
async fn main() {
    let only = std::env::args().find_map(|arg| arg.strip_prefix("--only=").map(str::to_owned));
    let mut report = Report { failed: 0 };
    let wanted = |name: &str| only.as_deref().is_none_or(|only| name.contains(only));
    if wanted("jwks-down-at-start") {
        jwks_down_at_start(&mut report).await;
    }
    if wanted("jwks-down-later") {
        jwks_down_later_with_warm_keys(&mut report).await;
    }
    if wanted("jwks-slow") {
        jwks_slow(&mut report).await;
    }
    if wanted("jwks-garbage") {
        jwks_garbage(&mut report).await;
    }
    if wanted("rest") {
        rest_down_and_slow(&mut report).await;
    }
    if wanted("sigterm") {
        sigterm_during_load(&mut report).await;
    }
    println!("drills (handler): {} failed", report.failed);
    std::process::exit(if report.failed == 0 { 0 } else { 1 });
}
