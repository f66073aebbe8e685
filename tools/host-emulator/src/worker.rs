//! The handler process (docs/protocol/functions-host.md §5.3): started with the app settings and
//! the `FUNCTIONS_*`
//! variables, polled with `GET /` every 25 ms for up to 30 s, restarted when it exits, and given
//! up on (stopping the host) after 3 errors within 30 minutes, as
//! `HttpFunctionInvocationDispatcher` does. Invocations wait while it (re)starts.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::app::HandlerDescription;
use crate::invocation::new_guid;

/// Readiness polling interval (`IsWorkerReady`).
pub const READINESS_INTERVAL: Duration = Duration::from_millis(25);
/// `customHandler.initializationTimeout` default.
pub const INITIALIZATION_TIMEOUT: Duration = Duration::from_secs(30);
/// What App Service and Functions set for a managed identity
/// (`docs/protocol/signalr-identity-2026.md` §2.4). On the platform they are in the host's
/// environment, which the handler inherits (docs/protocol/functions-host.md §5.3; UNVERIFIED for
/// custom handlers, but likely).
/// Locally they come from the host emulator's own environment (first, as for every setting) or
/// from `Values`; either way they are handed to the handler explicitly, as a pair.
pub const MANAGED_IDENTITY_VARIABLES: [&str; 2] = ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"];

/// `ErrorEventsThreshold`.
pub const MAX_ERRORS: usize = 3;
/// Errors further apart than this from the oldest counted one empty the bucket.
pub const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);

/// Where the handler is.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerState {
    /// Starting or restarting; invocations wait.
    Starting,
    /// Answering on `127.0.0.1:{port}`.
    Ready {
        /// The handler's port.
        port: u16,
    },
    /// Gone for good (host shutting down, or too many crashes).
    Stopped {
        /// Why.
        reason: String,
    },
}

/// What the supervisor needs to start the handler.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `customHandler.description`.
    pub description: HandlerDescription,
    /// App settings for the process, beyond the inherited environment.
    pub environment: Vec<(String, String)>,
    /// `FUNCTIONS_APP_ROOT_PATH`.
    pub app_root: PathBuf,
}

/// Waits until the handler is ready and returns its port, or the reason it never will be.
pub async fn ready_port(state: &mut watch::Receiver<WorkerState>) -> Result<u16, String> {
    loop {
        match &*state.borrow_and_update() {
            WorkerState::Ready { port } => return Ok(*port),
            WorkerState::Stopped { reason } => {
                return Err(format!("the handler is not running: {reason}"));
            }
            WorkerState::Starting => {}
        }
        if state.changed().await.is_err() {
            return Err("the host is shutting down".into());
        }
    }
}

/// Runs the handler until `shutdown` fires (Ok) or it has failed [`MAX_ERRORS`] times within
/// [`ERROR_WINDOW`] (Err). Publishes its state on `state`.
pub async fn supervise(
    config: WorkerConfig,
    state: watch::Sender<WorkerState>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let probe = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    describe_managed_identity(&managed_identity_environment(&config.environment));
    let mut errors: Vec<Instant> = Vec::new();
    loop {
        let failure = match run_once(&config, &probe, &state, &mut shutdown).await {
            Ok(()) => {
                state.send_replace(WorkerState::Stopped {
                    reason: "the host stopped".into(),
                });
                return Ok(());
            }
            Err(failure) => failure,
        };
        state.send_replace(WorkerState::Starting);
        let now = Instant::now();
        if errors
            .first()
            .is_some_and(|oldest| now.duration_since(*oldest) > ERROR_WINDOW)
        {
            errors.clear();
        }
        errors.push(now);
        if errors.len() >= MAX_ERRORS {
            let reason = format!(
                "Exceeded http worker restart retry count. Shutting down Functions Host (last error: {failure})"
            );
            tracing::error!("{reason}");
            state.send_replace(WorkerState::Stopped {
                reason: reason.clone(),
            });
            anyhow::bail!(reason);
        }
        tracing::warn!(
            "{failure}; restarting the handler (error {} of {MAX_ERRORS} within 30 minutes)",
            errors.len()
        );
    }
}

/// The managed-identity variables the handler gets: each from the environment, else from the
/// app settings (`Values`).
pub fn managed_identity_environment(settings: &[(String, String)]) -> Vec<(&'static str, String)> {
    MANAGED_IDENTITY_VARIABLES
        .iter()
        .filter_map(|name| {
            let value = std::env::var(name).ok().or_else(|| {
                settings
                    .iter()
                    .find(|(setting, _)| setting == name)
                    .map(|(_, value)| value.clone())
            })?;
            Some((*name, value))
        })
        .collect()
}

/// Says at start whether the handler has a managed identity. `IDENTITY_HEADER` is a secret, so
/// only its presence is logged; the endpoint is a URL and is shown.
fn describe_managed_identity(variables: &[(&'static str, String)]) {
    let endpoint = variables
        .iter()
        .find(|(name, _)| *name == "IDENTITY_ENDPOINT")
        .map(|(_, value)| value.as_str());
    let has_header = variables.iter().any(|(name, _)| *name == "IDENTITY_HEADER");
    match (endpoint, has_header) {
        (Some(endpoint), true) => tracing::info!(
            "the handler gets a managed identity: IDENTITY_ENDPOINT={endpoint}, IDENTITY_HEADER set (not shown)"
        ),
        (None, false) => {}
        (Some(_), false) => tracing::warn!(
            "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not: the handler's managed-identity requests will be refused"
        ),
        (None, true) => tracing::warn!(
            "IDENTITY_HEADER is set but IDENTITY_ENDPOINT is not: the handler has no managed-identity endpoint"
        ),
    }
}

/// One handler process: Ok when the host shuts down, Err(reason) when the process failed.
async fn run_once(
    config: &WorkerConfig,
    probe: &reqwest::Client,
    state: &watch::Sender<WorkerState>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let port = free_port().map_err(|error| format!("no free port for the handler: {error}"))?;
    let worker_id = new_guid();
    let mut command = Command::new(&config.description.executable);
    command
        .args(&config.description.arguments)
        .current_dir(&config.description.working_directory)
        .envs(config.environment.iter().map(|(name, value)| (name, value)))
        .envs(managed_identity_environment(&config.environment))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &worker_id)
        .env("FUNCTIONS_HTTPWORKER_ID", &worker_id)
        .env("FUNCTIONS_APP_ROOT_PATH", &config.app_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|error| {
        format!(
            "cannot start the handler `{}`: {error} (run `cargo build` and copy target/debug/handler to the app root, or use scripts/dev)",
            config.description.executable.display()
        )
    })?;
    let pid = child.id().unwrap_or(0);
    forward_output(&mut child);
    // Disarmed on every path below before the handler is reaped, so it can never kill a reused pid.
    let watchdog = Watchdog::start(pid).map_err(|error| {
        format!("cannot start the watchdog that stops the handler if the host dies: {error}")
    });
    let watchdog = match watchdog {
        Ok(watchdog) => watchdog,
        Err(reason) => {
            stop(&mut child).await;
            return Err(reason);
        }
    };
    tracing::info!("handler started (pid {pid}, port {port})");
    let deadline = Instant::now() + INITIALIZATION_TIMEOUT;
    // `child.wait()` reaps the handler, so the select arms that see it exit leave the watchdog
    // armed only for as long as it takes to disarm it (no await in between).
    let ready = tokio::select! {
        ready = wait_ready(probe, port, deadline) => ready,
        status = child.wait() => Err(format!("the handler exited during start-up ({})", describe(status))),
        _ = shutdown.changed() => {
            watchdog.disarm().await;
            stop(&mut child).await;
            return Ok(());
        }
    };
    if let Err(reason) = ready {
        watchdog.disarm().await;
        stop(&mut child).await;
        return Err(reason);
    }
    state.send_replace(WorkerState::Ready { port });
    tracing::info!("handler ready (pid {pid}) on 127.0.0.1:{port}");
    tokio::select! {
        status = child.wait() => {
            watchdog.disarm().await;
            Err(format!("the handler (pid {pid}) exited ({})", describe(status)))
        }
        _ = shutdown.changed() => {
            state.send_replace(WorkerState::Stopped { reason: "the host stopped".into() });
            watchdog.disarm().await;
            stop(&mut child).await;
            Ok(())
        }
    }
}

/// Stops the handler when the host emulator dies without stopping it (SIGKILL, the OOM killer):
/// the real host's handler never outlives it, and a handler left running keeps its port and
/// answers a stale configuration to whoever connects next.
///
/// It is a `/bin/sh` that waits for end-of-file on its stdin, a pipe whose only writer is this
/// process, and then sends SIGKILL to the handler's pid. The kernel closes the pipe however this
/// process ends, so the shell wakes up exactly when nobody is left to stop the handler.
/// Alternatives and why not: `PR_SET_PDEATHSIG` must be set in the child between fork and exec
/// (`pre_exec`, which is `unsafe`, forbidden by the workspace lints); a process group does not
/// help, because a SIGKILL sent to the host's pid does not reach its group; and `kill_on_drop`
/// runs only when the host unwinds normally.
struct Watchdog {
    // Declared before `pipe`: fields drop in order, so on drop the shell is killed (by
    // `kill_on_drop`) before its stdin closes, and a dropped watchdog never fires.
    shell: Child,
    pipe: Option<tokio::process::ChildStdin>,
}

impl Watchdog {
    fn start(handler_pid: u32) -> std::io::Result<Self> {
        let mut shell = Command::new("/bin/sh")
            .args([
                "-c",
                // `read` returns only at end-of-file: nothing is ever written to the pipe.
                "read -r _; kill -KILL \"$1\" 2>/dev/null",
                "host-emulator-watchdog",
                &handler_pid.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pipe = shell.stdin.take();
        Ok(Self { shell, pipe })
    }

    /// Ends the watchdog without letting it fire: SIGKILL first, then the pipe closes.
    async fn disarm(mut self) {
        let _ = self.shell.start_kill();
        let _ = self.shell.wait().await;
        drop(self.pipe.take());
    }
}

async fn wait_ready(probe: &reqwest::Client, port: u16, deadline: Instant) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}/");
    loop {
        // Any HTTP answer counts, 404 included; only a failed connection means "not yet".
        if probe.get(&url).send().await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err("Initializing HttpWorker timed out.".into());
        }
        tokio::time::sleep(READINESS_INTERVAL).await;
    }
}

async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => error.to_string(),
    }
}

/// Logs the handler's stdout (info) and stderr (warn) line by line, as the host captures them.
fn forward_output(child: &mut Child) {
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!("[handler] {line}");
            }
        });
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!("[handler] {line}");
            }
        });
    }
}

/// A free loopback port (`WorkerUtilities.GetUnusedTcpPort`: bind 0, read, release).
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
