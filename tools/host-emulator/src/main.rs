//! `host-emulator APP_ROOT [--port N] [--attach-handler PORT]`: runs a custom-handler function
//! app locally as the Functions host would. The work is in the library.

use std::path::PathBuf;

use anyhow::{Context, bail};
use host_emulator::{HandlerLaunch, HostEmulator, HostOptions};

const USAGE: &str = "usage: host-emulator APP_ROOT [--port N] [--attach-handler PORT]

  APP_ROOT                the function app root (the folder with host.json)
  --port N                public port (default: local.settings.json Host.LocalHttpPort, else 7071; 0 = any free port)
  --attach-handler PORT   use a handler already listening on 127.0.0.1:PORT (e.g. under a debugger)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let options = parse_arguments(std::env::args().skip(1))?;
    let host = HostEmulator::start(options)
        .await
        .context("the host emulator cannot start")?;
    host.run_until_stopped(shutdown_signal()).await
}

fn parse_arguments(arguments: impl Iterator<Item = String>) -> anyhow::Result<HostOptions> {
    let mut app_root = None;
    let mut port = None;
    let mut handler = HandlerLaunch::Spawn;
    let mut arguments = arguments;
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--port" => {
                let value = arguments.next().context("--port needs a value")?;
                port = Some(
                    value
                        .parse::<u16>()
                        .with_context(|| format!("--port {value}: not a port"))?,
                );
            }
            "--attach-handler" => {
                let value = arguments.next().context("--attach-handler needs a port")?;
                let port = value
                    .parse::<u16>()
                    .with_context(|| format!("--attach-handler {value}: not a port"))?;
                handler = HandlerLaunch::Attach { port };
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other if other.starts_with('-') => bail!("unknown option {other}\n{USAGE}"),
            other if app_root.is_none() => app_root = Some(PathBuf::from(other)),
            other => bail!("unexpected argument {other}\n{USAGE}"),
        }
    }
    Ok(HostOptions {
        app_root: app_root.with_context(|| format!("APP_ROOT is required\n{USAGE}"))?,
        port,
        handler,
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
