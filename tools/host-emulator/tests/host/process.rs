//! The handler process and the binary: port 0, CORS, restarts after a crash, and the host
//! stopping after three crashes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use host_emulator::HandlerLaunch;
use serde_json::json;

use crate::helpers::{AppRoot, TestHost, app_token, connection_string, hs256_values};

/// The `host-emulator` binary with its output lines on a channel; killed on drop.
struct HostProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl HostProcess {
    fn start(app: &AppRoot) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_host-emulator"))
            .arg(app.path())
            .args(["--port", "0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the host-emulator binary starts");
        let (sender, lines) = std::sync::mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the next line containing `needle` (the process's own pace; 60 s cap).
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no line with {needle:?}; output so far:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }
}

impl Drop for HostProcess {
    /// SIGTERM, so the host stops its handler (a SIGKILL would leave the handler running).
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !terminated {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn number_after(line: &str, marker: &str) -> u32 {
    let start = line.find(marker).expect("marker present") + marker.len();
    line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn the_binary_reports_its_real_port_and_restarts_a_crashed_handler() {
    let app = AppRoot::repository_app(hs256_values(&connection_string(8888)));
    let mut host = HostProcess::start(&app);
    let first_ready = host.wait_for("handler ready (pid ");
    let listening = host.wait_for("host-emulator listening on http://localhost:");
    let port = number_after(&listening, "http://localhost:");
    assert_ne!(port, 0);
    let http = reqwest::Client::new();
    let negotiate = || {
        http.post(format!("http://127.0.0.1:{port}/api/negotiate"))
            .bearer_auth(app_token("alice", 600))
            .send()
    };
    assert_eq!(negotiate().await.expect("reachable").status(), 200);

    let pid = number_after(&first_ready, "handler ready (pid ");
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    host.wait_for("restarting the handler (error 1 of 3");
    let second_ready = host.wait_for("handler ready (pid ");
    assert_ne!(number_after(&second_ready, "handler ready (pid "), pid);
    assert_eq!(negotiate().await.expect("reachable").status(), 200);
}

#[tokio::test]
async fn the_host_stops_after_three_handler_crashes() {
    let app = AppRoot::with_handler("/bin/sh", &["-c", "exit 3"]);
    let host = TestHost::start(&app, HandlerLaunch::Spawn).await;
    let error = host.ended().await.expect_err("the host gives up");
    assert!(
        error
            .to_string()
            .contains("Exceeded http worker restart retry count"),
        "{error:#}"
    );
}

#[tokio::test]
async fn a_missing_handler_executable_stops_the_host_with_a_hint() {
    let app = AppRoot::with_handler("no-such-handler-binary", &[]);
    let host = TestHost::start(&app, HandlerLaunch::Spawn).await;
    let error = host.ended().await.expect_err("the host gives up");
    assert!(
        error.to_string().contains("cannot start the handler"),
        "{error:#}"
    );
}

#[tokio::test]
async fn cors_follows_local_settings() {
    let app = AppRoot::repository_app(hs256_values(&connection_string(8888)));
    app.settings(json!({
        "Values": hs256_values(&connection_string(8888)),
        "Host": {"CORS": "http://allowed.test", "CORSCredentials": true}
    }));
    let host = TestHost::start(&app, HandlerLaunch::Spawn).await;
    let preflight = |origin: &'static str| {
        host.http
            .request(reqwest::Method::OPTIONS, host.url("/api/negotiate"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let allowed = preflight("http://allowed.test").await.expect("reachable");
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://allowed.test"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-headers"],
        "authorization"
    );
    let refused = preflight("http://evil.test").await.expect("reachable");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let actual = host
        .http
        .post(host.url("/api/negotiate"))
        .header("Origin", "http://allowed.test")
        .send()
        .await
        .expect("reachable");
    assert_eq!(actual.status(), 401);
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "http://allowed.test"
    );
}
