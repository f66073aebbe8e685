//! The spawned handler process: its settings, start-up, and captured stdout/stderr.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// Settings for a spawned handler.
pub struct AppConfig {
    pub env: Vec<(String, String)>,
    pub app_root: PathBuf,
}

impl AppConfig {
    /// The repository's own function app with an HS256 issuer and the chat policy of
    /// `tests/fixtures/policy-chat.json` (rooms, the caller's own `user.{userId}` and team groups,
    /// admin operations), not the repository's `policy.json`, which allows only what the demo
    /// needs.
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
                // Absolute, so tests that use another app root keep it.
                (
                    "POLICY_FILE".into(),
                    concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/tests/fixtures/policy-chat.json"
                    )
                    .into(),
                ),
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

impl TestApp {
    /// The handler's process id, for `/proc` samples and signals (the soak and drill benches,
    /// RELIABILITY.md).
    // `allow`, not `expect`: the benches use it and the api tests do not, so an `expect` would be
    // unfulfilled in one of the two binaries that include these helpers.
    #[allow(
        dead_code,
        reason = "used by benches/soak.rs and benches/drills.rs only"
    )]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

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
