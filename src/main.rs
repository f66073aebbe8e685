//! The `handler` binary: read configuration, bind, serve. The work is in the library.

use anyhow::Context;
use handler::{config::Settings, startup::Application, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
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
