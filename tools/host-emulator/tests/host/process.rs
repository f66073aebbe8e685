//! The handler process and the binary: port 0, the host stopping after three crashes, and the
//! managed-identity variables the handler gets.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use host_emulator::HandlerLaunch;
use serde_json::json;

use crate::helpers::{AppRoot, FakeHandler, HandlerAnswer, TestHost, http_function};

/// A handler that writes the managed-identity variables it got to `identity-env` in the app
/// root, then exits (the host gives up after three exits, which ends the test without waiting).
fn identity_recording_app() -> AppRoot {
    AppRoot::with_handler(
        "/bin/sh",
        &[
            "-c",
            // No `%` here: the host expands `%VAR%` in arguments.
            "echo \"${IDENTITY_ENDPOINT-unset}|${IDENTITY_HEADER-unset}\" >> \"$FUNCTIONS_APP_ROOT_PATH/identity-env\"; exit 3",
        ],
    )
}

fn recorded_identity(app: &AppRoot) -> String {
    let written = std::fs::read_to_string(app.path().join("identity-env"))
        .expect("the handler wrote its environment");
    written.lines().next().unwrap_or_default().to_owned()
}

/// The `host-emulator` binary with its output lines on a channel; killed on drop.
struct HostProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl HostProcess {
    /// Starts the binary with extra environment variables, as the platform would set them.
    fn start_with_env(app: &AppRoot, environment: &[(&str, &str)]) -> Self {
        Self::start_with_arguments(app, &[], environment)
    }

    /// Starts the binary with extra arguments after `APP_ROOT --port 0`.
    fn start_with_arguments(
        app: &AppRoot,
        arguments: &[&str],
        environment: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_host-emulator"))
            .arg(app.path())
            .args(["--port", "0"])
            .args(arguments)
            .env("RUST_LOG", "info")
            .envs(environment.iter().copied())
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

/// True while `pid` is a live process (a zombie waiting for its reaper counts as ended).
fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may itself contain spaces.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
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

/// The binary with `--port 0` attached to an in-process handler: it reports the port it bound
/// and serves on it. (A crashed handler's restart is tested with the real handler in the root
/// package's `tests/stack`.)
#[tokio::test]
async fn the_binary_reports_its_real_port() {
    let handler = FakeHandler::start(HandlerAnswer::outputs(
        json!({"res": {"statusCode": 200, "body": "{}"}}),
    ))
    .await;
    let app = AppRoot::with_handler("handler", &[]);
    app.function(
        "negotiate",
        &http_function("negotiate", &["post"], json!([])),
    );
    let mut host = HostProcess::start_with_arguments(
        &app,
        &["--attach-handler", &handler.port.to_string()],
        &[],
    );
    let listening = host.wait_for("host-emulator listening on http://localhost:");
    let port = number_after(&listening, "http://localhost:");
    assert_ne!(port, 0);
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/negotiate"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    assert_eq!(handler.last().path, "/negotiate");
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
async fn the_handler_gets_the_managed_identity_variables_from_local_settings() {
    let app = identity_recording_app();
    app.settings(json!({"IsEncrypted": false, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "custom",
        "IDENTITY_ENDPOINT": "http://localhost:7072/msi/token",
        "IDENTITY_HEADER": "header-from-values",
    }}));
    let host = TestHost::start(&app, HandlerLaunch::Spawn).await;
    host.ended().await.expect_err("the recording handler exits");
    assert_eq!(
        recorded_identity(&app),
        "http://localhost:7072/msi/token|header-from-values"
    );
}

#[test]
fn the_handler_gets_the_managed_identity_variables_from_the_host_environment_first() {
    let app = identity_recording_app();
    app.settings(json!({"IsEncrypted": false, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "custom",
        "IDENTITY_HEADER": "header-from-values",
    }}));
    let mut host = HostProcess::start_with_env(
        &app,
        &[
            ("IDENTITY_ENDPOINT", "http://localhost:7072/msi/token"),
            ("IDENTITY_HEADER", "header-from-the-platform"),
        ],
    );
    let announced = host.wait_for("the handler gets a managed identity");
    assert!(announced.contains("IDENTITY_ENDPOINT=http://localhost:7072/msi/token"));
    host.wait_for("Exceeded http worker restart retry count");
    assert_eq!(
        recorded_identity(&app),
        "http://localhost:7072/msi/token|header-from-the-platform"
    );
    assert!(
        host.seen
            .iter()
            .all(|line| !line.contains("header-from-the-platform")),
        "the identity header is never logged"
    );
}

#[tokio::test]
async fn without_managed_identity_variables_the_handler_gets_none() {
    let app = identity_recording_app();
    app.settings(json!({"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}));
    let host = TestHost::start(&app, HandlerLaunch::Spawn).await;
    host.ended().await.expect_err("the recording handler exits");
    assert_eq!(recorded_identity(&app), "unset|unset");
}

/// A host killed with SIGKILL cannot stop its handler itself; its watchdog does, so no handler
/// outlives the host (RELIABILITY.md, drill "host emulator killed").
#[test]
fn a_host_killed_with_sigkill_leaves_no_handler_running() {
    // Never ready (it serves nothing), so the host keeps it in start-up until it is killed.
    let app = AppRoot::with_handler("/bin/sleep", &["300"]);
    let mut host = HostProcess::start_with_env(&app, &[]);
    let started = host.wait_for("handler started (pid ");
    let handler_pid = number_after(&started, "handler started (pid ");
    assert!(
        process_running(handler_pid),
        "the handler runs under the host"
    );

    let killed = Command::new("kill")
        .args(["-KILL", &host.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let _ = host.child.wait();

    // Polled at the watchdog's pace, with a cap so a regression fails instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(30);
    while process_running(handler_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !process_running(handler_pid),
        "the handler (pid {handler_pid}) outlived its SIGKILLed host"
    );
}
