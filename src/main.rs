//! The `handler` binary: read configuration, bind, serve. The work is in the library.

use std::process::ExitCode;

use anyhow::Context;
use handler::{config::Settings, startup::Application, telemetry};

/// mimalloc instead of glibc's allocator: an invocation allocates a few dozen short-lived
/// strings, and with glibc `malloc`/`free` were the largest cost left in a profile of negotiate
/// after the parsing work was cut. Measured: HS256 negotiate 38,000 → 44,000 requests/s, user CPU
/// 18.3 → 15.6 µs per request; idle RSS 6.6 → 7.9 MB (BENCHMARKS.md, "Negotiate against the
/// floor"). `no_thp`: with transparent huge pages on, its eagerly committed arena made idle RSS
/// 17 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the chain on one line ("the handler cannot start: AUTH_ISSUER is not
            // set; …"). Returning the error from `main` would print its `Debug` form instead,
            // which under RUST_BACKTRACE=1 buries the setting's name under a backtrace that says
            // nothing about a configuration mistake.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("the handler cannot start")?;
    let application = Application::build(settings).context("the handler cannot start")?;
    // Tests and tools read this line to learn the port when FUNCTIONS_CUSTOMHANDLER_PORT=0.
    println!(
        "handler listening on http://127.0.0.1:{}",
        application.port()
    );
    application.run_until_stopped().await?;
    Ok(())
}
