//! `dev-idp [--port N] [--audience AUD] [--issuer URL] [managed-identity flags]`: an INSECURE,
//! development-only OpenID Connect issuer and managed-identity endpoint. The work is in the library.

use anyhow::{Context, bail};
use dev_idp::{DEFAULT_AUDIENCE, DevIdp, DevIdpOptions, ManagedIdentityOptions, default_key_file};

const USAGE: &str = "usage: dev-idp [--port N] [--audience AUD] [--issuer URL]
               [--key-file PATH | --ephemeral-key]
               [--identity-header VALUE] [--mi-roles ROLES] [--tenant-id ID]
               [--mi-client-id ID] [--mi-object-id ID] [--mi-lifetime-seconds N]

INSECURE, development only: anyone who can reach it gets a token for any user.
  --port N        port on 127.0.0.1 (default 7072; 0 = any free port)
  --audience AUD  default aud of issued tokens (default api://signalr-chat-dev)
  --issuer URL    iss of issued tokens (default http://localhost:PORT)
  --key-file PATH signing key kept across restarts, created if absent
                  (default target/dev-idp/insecure-dev-signing-key.json in this repository)
  --ephemeral-key a new key in memory only (every restart invalidates issued tokens)

Managed identity (GET /msi/token, the IDENTITY_ENDPOINT of a Function app):
  --identity-header VALUE  X-IDENTITY-HEADER callers must send (default: random, printed on start)
  --mi-roles ROLES         comma-separated roles claim (default \"SignalR Service Owner\"; \"\" = none)
  --tenant-id ID           tenant of the stand-in issuer http://localhost:PORT/ID/
                           (default 11111111-1111-4111-8111-111111111111)
  --mi-client-id ID        appid / client_id (default 22222222-2222-4222-8222-222222222222)
  --mi-object-id ID        oid / sub (default 33333333-3333-4333-8333-333333333333)
  --mi-lifetime-seconds N  token lifetime (default 86400; negative = already expired)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = DevIdpOptions {
        port: 7072,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
        managed_identity: ManagedIdentityOptions::default(),
        key_file: Some(default_key_file()),
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
            "--key-file" => options.key_file = Some(value("--key-file")?.into()),
            "--ephemeral-key" => options.key_file = None,
            "--identity-header" => {
                options.managed_identity.identity_header = Some(value("--identity-header")?);
            }
            "--mi-roles" => {
                options.managed_identity.roles = value("--mi-roles")?
                    .split(',')
                    .map(str::trim)
                    .filter(|role| !role.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--tenant-id" => options.managed_identity.tenant_id = value("--tenant-id")?,
            "--mi-client-id" => options.managed_identity.client_id = value("--mi-client-id")?,
            "--mi-object-id" => options.managed_identity.object_id = value("--mi-object-id")?,
            "--mi-lifetime-seconds" => {
                let text = value("--mi-lifetime-seconds")?;
                options.managed_identity.lifetime_seconds = text
                    .parse()
                    .with_context(|| format!("--mi-lifetime-seconds {text}: not a number"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let roles = options.managed_identity.roles.join(", ");
    let key_file = options.key_file.clone();
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
    match &key_file {
        Some(path) => println!("dev-idp signing key: {}", path.display()),
        None => println!("dev-idp signing key: in memory only (--ephemeral-key)"),
    }
    // For the handler's environment, as the platform sets them in a Function app. The header is
    // printed here, once, for the developer to copy; it is never logged.
    println!("IDENTITY_ENDPOINT={}", idp.identity_endpoint());
    println!("IDENTITY_HEADER={}", idp.identity_header());
    println!(
        "managed identity: issuer {} (signalr-emulator --entra-issuer), roles [{roles}]",
        idp.tenant_issuer()
    );
    idp.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
