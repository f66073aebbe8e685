//! `dev-idp [--port N] [--audience AUD] [--issuer URL]`: an INSECURE, development-only OpenID
//! Connect issuer. The work is in the library.

use anyhow::{Context, bail};
use dev_idp::{DEFAULT_AUDIENCE, DevIdp, DevIdpOptions};

const USAGE: &str = "usage: dev-idp [--port N] [--audience AUD] [--issuer URL]

INSECURE, development only: anyone who can reach it gets a token for any user.
  --port N        port on 127.0.0.1 (default 7072; 0 = any free port)
  --audience AUD  default aud of issued tokens (default api://signalr-chat-dev)
  --issuer URL    iss of issued tokens (default http://localhost:PORT)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = DevIdpOptions {
        port: 7072,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = |name: &str| {
            arguments
                .next()
                .with_context(|| format!("{name} needs a value"))
        };
        match argument.as_str() {
            "--port" => {
                let text = value("--port")?;
                options.port = text
                    .parse()
                    .with_context(|| format!("--port {text}: not a port"))?;
            }
            "--audience" => options.audience = value("--audience")?,
            "--issuer" => options.issuer = Some(value("--issuer")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let idp = DevIdp::bind(options)
        .await
        .context("dev-idp cannot start")?;
    eprintln!(
        "WARNING: dev-idp is INSECURE and for development only: it signs a token for anyone who asks."
    );
    // Scripts and tests read this line to learn the port.
    println!(
        "dev-idp listening on http://localhost:{} (issuer {})",
        idp.port(),
        idp.issuer()
    );
    idp.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
