//! Test harness: a temporary copy of this repository's function app with the handler binary cargo
//! built for this test run, the host emulator in-process on port 0, the host's log lines, and
//! HS256 tokens.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use host_emulator::{HandlerLaunch, HostEmulator, HostOptions};
use serde_json::{Value, json};

pub const ACCESS_KEY: &str = "INSECURE-HOST-EMULATOR-TEST-KEY-0123456789ABCDEFGH";
pub const HS256_SECRET: &str = "insecure-host-emulator-test-secret-0123456789";
pub const ISSUER: &str = "https://issuer.host-emulator.test/";
pub const AUDIENCE: &str = "api://host-emulator-test";

/// The handler binary cargo built for this test run; never a binary left on disk by another build.
pub fn handler_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_handler"))
}

/// A temporary app root.
pub struct AppRoot {
    pub dir: tempfile::TempDir,
}

impl AppRoot {
    /// A copy of this repository's app (host.json, every function folder, policy.json) with
    /// the handler linked in, and `values` as local settings.
    pub fn repository_app(values: Value) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::copy(root.join("host.json"), dir.path().join("host.json"))
            .expect("copy host.json");
        let app = Self { dir };
        for entry in std::fs::read_dir(&root)
            .expect("list the repository")
            .flatten()
        {
            let function_json = entry.path().join("function.json");
            if function_json.is_file() {
                let folder = app.path().join(entry.file_name());
                std::fs::create_dir_all(&folder).expect("create the function folder");
                std::fs::copy(function_json, folder.join("function.json"))
                    .expect("copy function.json");
            }
        }
        if root.join("policy.json").is_file() {
            std::fs::copy(root.join("policy.json"), app.path().join("policy.json"))
                .expect("copy policy");
        }
        std::os::unix::fs::symlink(handler_binary(), app.path().join("handler"))
            .expect("link the handler");
        app.settings(json!({"IsEncrypted": false, "Values": values}));
        app
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
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

/// Values for the real handler with an HS256 issuer and the given SignalR connection string.
pub fn hs256_values(connection_string: &str) -> Value {
    json!({
        "FUNCTIONS_WORKER_RUNTIME": "custom",
        "AzureSignalRConnectionString": connection_string,
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "AUTH_HS256_SECRET": HS256_SECRET,
    })
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
    /// Starts the host emulator in-process on port 0; it spawns the app's handler.
    pub async fn start(app: &AppRoot) -> Self {
        let host = HostEmulator::start(HostOptions {
            app_root: app.path().to_path_buf(),
            port: Some(0),
            handler: HandlerLaunch::Spawn,
        })
        .await
        .expect("the host emulator starts");
        let port = host.port();
        assert_ne!(port, 0, "the host reports the port it bound");
        let base = format!("http://127.0.0.1:{port}");
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

    /// Stops the host and returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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

/// The host's log lines, as its binary would print them. One global subscriber (always
/// interested, so tracing never caches a callsite as disabled) writes each event into the
/// `HostLog` captured by the current thread, or nowhere. The test must run on a current-thread
/// runtime (where the host's tasks run on that same thread), so parallel tests do not mix their
/// lines. A thread-local `set_default` subscriber per test lost events when another test hit a
/// callsite first with no subscriber (tracing caches the callsite's interest globally).
#[derive(Clone, Default)]
pub struct HostLog {
    text: Arc<Mutex<String>>,
    seen: Arc<Mutex<usize>>,
}

thread_local! {
    static CAPTURING: std::cell::RefCell<Option<HostLog>> = const { std::cell::RefCell::new(None) };
}

/// Stops this thread's capture when dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURING.with(|current| current.borrow_mut().take());
    }
}

/// Writes into the current thread's capture, if any.
struct CurrentThreadLog;

impl std::io::Write for CurrentThreadLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURING.with(|current| match current.borrow_mut().as_mut() {
            Some(log) => log.write(bytes),
            None => Ok(bytes.len()),
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl HostLog {
    /// Captures this thread's `info` events until the guard drops.
    pub fn capture(&self) -> CaptureGuard {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_target(false)
                .with_ansi(false)
                .with_writer(|| CurrentThreadLog)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        });
        CAPTURING.with(|current| *current.borrow_mut() = Some(self.clone()));
        CaptureGuard(())
    }

    /// Waits for the next line, after those already returned, containing `needle` (the host's
    /// own pace; 60 s cap).
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let text = self.text.lock().expect("lock");
                let mut seen = self.seen.lock().expect("lock");
                let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
                let mut offset = *seen;
                for line in complete[*seen..].split_inclusive('\n') {
                    offset += line.len();
                    if line.contains(needle) {
                        *seen = offset;
                        return line.trim_end().to_owned();
                    }
                }
                *seen = offset;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?}; output so far:\n{}",
                self.text.lock().expect("lock")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl std::io::Write for HostLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.text
            .lock()
            .expect("lock")
            .push_str(&String::from_utf8_lossy(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

/// An HS256 app token for the real handler.
pub fn app_token(sub: &str, lifetime: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + lifetime})
            .to_string(),
    );
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET.as_bytes()).expect("any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}
