//! Process logging with `tracing`.
//!
//! The host logs a custom handler's stderr as errors (`UseStdErrorStreamForErrorsOnly`, spec
//! §5.3), so warnings and errors go to stderr and everything else to stdout. No ANSI colours:
//! the output lands in host logs, not a terminal.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` filter.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let writer = std::io::stderr
        .with_max_level(tracing::Level::WARN)
        .or_else(std::io::stdout);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false)
        .init();
}
