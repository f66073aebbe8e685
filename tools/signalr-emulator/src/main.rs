//! `signalr-emulator`: parses flags, prints the connection string, and runs the library until Ctrl-C or
//! SIGTERM.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use signalr_emulator::{
    AccessKey, Config, DEFAULT_PORT, Emulator, EntraConfig, UpstreamIdentity, UpstreamTemplate,
};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
signalr-emulator: a local Azure SignalR Service emulator (serverless mode)

USAGE:
    signalr-emulator [--port PORT] [--bind ADDRESS] [--access-key KEY]... [--upstream URL_TEMPLATE]
                     [--entra-issuer URL [--entra-jwks-url URL]] [--temporary-key-lifetime-seconds N]
                     [--disable-local-auth]
                     [--upstream-identity-endpoint URL --upstream-identity-header H --upstream-token-resource R]

OPTIONS:
    --port PORT         Port to listen on (default 8888; 0 picks a free port, printed on start)
    --bind ADDRESS      Address to listen on (default 127.0.0.1)
    --access-key KEY    Access key that signs tokens; give it twice for a primary and a secondary key.
                        Default: the well-known, insecure development key of Microsoft's emulator.
    --upstream URL_TEMPLATE
                        Send connection events and client invocations to this URL (placeholders
                        {hub}, {category}, {event}), e.g. http://localhost:7071/runtime/webhooks/signalr.
                        Default: the SIGNALR_EMULATOR_UPSTREAM environment variable, else no upstream.
    --entra-issuer URL  Accept Microsoft Entra ID tokens (aud https://signalr.azure.com, RS256) whose iss is
                        exactly URL: on the REST API by role, and on GET /api/v1/auth/accessKey for a
                        temporary key. Keys come from URL/.well-known/openid-configuration unless
                        --entra-jwks-url is given. For tools/dev-idp: http://localhost:7072/<tenant>/.
    --entra-jwks-url URL  The issuer's JWKS, fetched directly (no discovery)
    --temporary-key-lifetime-seconds N
                        How long a temporary access key verifies client tokens (default 7200, the SDK's)
    --disable-local-auth  Like disableLocalAuth=true: access-key tokens get 401 and the connection string
                        printed is identity-based (AuthType=azure.msi). Needs --entra-issuer.
    --upstream-identity-endpoint URL, --upstream-identity-header H, --upstream-token-resource R
                        The upstream setting's auth: ManagedIdentity. Upstream requests carry
                        Authorization: Bearer with this emulator's managed-identity token for resource R,
                        got from URL (IDENTITY_ENDPOINT shape, e.g. dev-idp's http://localhost:7072/msi/token)
                        with X-IDENTITY-HEADER: H. All three together, and only with an upstream. With
                        --disable-local-auth, requests carry no X-ASRS-Signature.
    -h, --help          Show this help

On start, the connection string is printed as the only line on stdout. Logs go to stderr; set
RUST_LOG=signalr_emulator=debug to see every connection, REST call and delivery.";

/// What the user typed, before it is checked.
struct Flags {
    port: u16,
    bind: IpAddr,
    access_keys: Vec<String>,
    upstream: Option<String>,
    entra_issuer: Option<String>,
    entra_jwks_url: Option<String>,
    temporary_key_lifetime_seconds: Option<u64>,
    disable_local_auth: bool,
    upstream_identity_endpoint: Option<String>,
    upstream_identity_header: Option<String>,
    upstream_token_resource: Option<String>,
}

fn parse_flags(arguments: impl Iterator<Item = String>) -> anyhow::Result<Option<Flags>> {
    let mut flags = Flags {
        port: DEFAULT_PORT,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        access_keys: Vec::new(),
        upstream: None,
        entra_issuer: None,
        entra_jwks_url: None,
        temporary_key_lifetime_seconds: None,
        disable_local_auth: false,
        upstream_identity_endpoint: None,
        upstream_identity_header: None,
        upstream_token_resource: None,
    };
    let mut arguments = arguments.peekable();
    while let Some(argument) = arguments.next() {
        let (name, inline_value) = match argument.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (argument.clone(), None),
        };
        let mut value = |flag: &str| {
            inline_value
                .clone()
                .or_else(|| arguments.next())
                .with_context(|| format!("{flag} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                let text = value("--port")?;
                flags.port = text
                    .parse()
                    .with_context(|| format!("--port {text}: not a port number (0-65535)"))?;
            }
            "--bind" => {
                let text = value("--bind")?;
                flags.bind = text
                    .parse()
                    .with_context(|| format!("--bind {text}: not an IP address"))?;
            }
            "--access-key" => flags.access_keys.push(value("--access-key")?),
            "--upstream" => {
                let template = value("--upstream")?;
                if flags.upstream.replace(template).is_some() {
                    bail!("--upstream may be given only once");
                }
            }
            "--entra-issuer" => flags.entra_issuer = Some(value("--entra-issuer")?),
            "--entra-jwks-url" => flags.entra_jwks_url = Some(value("--entra-jwks-url")?),
            "--temporary-key-lifetime-seconds" => {
                let text = value("--temporary-key-lifetime-seconds")?;
                flags.temporary_key_lifetime_seconds = Some(text.parse().with_context(|| {
                    format!(
                        "--temporary-key-lifetime-seconds {text}: not a whole number of seconds"
                    )
                })?);
            }
            "--disable-local-auth" if inline_value.is_none() => flags.disable_local_auth = true,
            "--upstream-identity-endpoint" => {
                flags.upstream_identity_endpoint = Some(value("--upstream-identity-endpoint")?);
            }
            "--upstream-identity-header" => {
                flags.upstream_identity_header = Some(value("--upstream-identity-header")?);
            }
            "--upstream-token-resource" => {
                flags.upstream_token_resource = Some(value("--upstream-token-resource")?);
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }
    Ok(Some(flags))
}

/// The environment variable read when `--upstream` is not given.
const UPSTREAM_ENV: &str = "SIGNALR_EMULATOR_UPSTREAM";

/// `--upstream` wins over the environment variable; an empty variable counts as unset.
fn upstream_template(
    flag: Option<&str>,
    environment: Option<&str>,
) -> anyhow::Result<Option<UpstreamTemplate>> {
    let (text, source) = match (flag, environment) {
        (Some(text), _) => (text, "--upstream"),
        (None, Some(text)) if !text.is_empty() => (text, UPSTREAM_ENV),
        _ => return Ok(None),
    };
    UpstreamTemplate::parse(text)
        .map(Some)
        .with_context(|| format!("{source}: not a usable upstream URL template"))
}

fn config_from(flags: &Flags) -> anyhow::Result<Config> {
    if flags.access_keys.len() > 2 {
        bail!("--access-key may be given at most twice (primary and secondary)");
    }
    let keys = flags
        .access_keys
        .iter()
        .map(|key| AccessKey::parse(key).context("--access-key"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut config = Config::new(AccessKey::insecure_dev());
    if !keys.is_empty() {
        config.access_keys = keys;
    }
    if flags.entra_jwks_url.is_some() && flags.entra_issuer.is_none() {
        bail!("--entra-jwks-url needs --entra-issuer");
    }
    if let Some(issuer) = &flags.entra_issuer {
        config.entra = Some(
            EntraConfig::new(issuer, flags.entra_jwks_url.as_deref())
                .context("--entra-issuer / --entra-jwks-url")?,
        );
    }
    if let Some(seconds) = flags.temporary_key_lifetime_seconds {
        if seconds == 0 || seconds > 7 * 24 * 3600 {
            bail!("--temporary-key-lifetime-seconds must be between 1 and 604800");
        }
        config.temporary_key_lifetime = Duration::from_secs(seconds);
    }
    if flags.disable_local_auth {
        if config.entra.is_none() {
            bail!(
                "--disable-local-auth needs --entra-issuer: without access keys only Microsoft Entra ID tokens work"
            );
        }
        if !flags.access_keys.is_empty() {
            bail!("--disable-local-auth and --access-key contradict each other");
        }
        config.local_auth_disabled = true;
    }
    config.upstream_identity = match (
        &flags.upstream_identity_endpoint,
        &flags.upstream_identity_header,
        &flags.upstream_token_resource,
    ) {
        (None, None, None) => None,
        (Some(endpoint), Some(header), Some(resource)) => Some(
            UpstreamIdentity::new(endpoint, header, resource)
                .context("--upstream-identity-endpoint / --upstream-identity-header / --upstream-token-resource")?,
        ),
        _ => bail!(
            "--upstream-identity-endpoint, --upstream-identity-header and --upstream-token-resource go together"
        ),
    };
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let Some(flags) = parse_flags(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let mut config = config_from(&flags)?;
    let environment = std::env::var(UPSTREAM_ENV).ok();
    config.upstream = upstream_template(flags.upstream.as_deref(), environment.as_deref())?;
    if config.upstream_identity.is_some() && config.upstream.is_none() {
        bail!("--upstream-identity-endpoint needs an upstream (--upstream or {UPSTREAM_ENV})");
    }
    let upstream_resource = config
        .upstream_identity
        .as_ref()
        .map(|identity| identity.resource().to_owned());
    let config_summary = config.entra.as_ref().map(|entra| entra.issuer().to_owned());
    let address = SocketAddr::new(flags.bind, flags.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}; is another emulator running?"))?;
    // Only the origin: the template's path or query may carry a function key.
    let config_upstream_origin = config.upstream.as_ref().map(UpstreamTemplate::origin);
    let emulator = Emulator::start(listener, config, shutdown_signal())?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", emulator.connection_string())?;
    stdout.flush()?;
    drop(stdout);
    if let Some(entra) = &config_summary {
        tracing::info!(issuer = %entra, "accepting Microsoft Entra ID tokens");
    }
    if flags.access_keys.is_empty() && !flags.disable_local_auth {
        tracing::warn!(
            "using the well-known insecure development access key; pass --access-key for anything else"
        );
    }
    if let Some(upstream) = &config_upstream_origin {
        tracing::info!(origin = upstream.as_str(), "sending upstream events");
        if let Some(resource) = &upstream_resource {
            tracing::info!(resource = %resource, "upstream requests carry the managed-identity token");
        }
    }
    tracing::info!(port = emulator.port(), "SignalR emulator listening");
    emulator
        .wait()
        .await
        .context("the emulator stopped with an error")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> anyhow::Result<Option<Flags>> {
        parse_flags(arguments.iter().map(|argument| (*argument).to_owned()))
    }

    #[test]
    fn defaults_are_port_8888_on_loopback_with_the_dev_key() {
        let flags = parse(&[]).ok().flatten().expect("no flags parse");
        assert_eq!(flags.port, 8888);
        assert_eq!(flags.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(config_from(&flags).is_ok());
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let flags = parse(&[
            "--port",
            "0",
            "--bind=0.0.0.0",
            "--access-key",
            "k1",
            "--access-key=k2",
        ])
        .ok()
        .flatten()
        .expect("valid flags parse");
        assert_eq!(flags.port, 0);
        assert_eq!(flags.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(flags.access_keys, ["k1", "k2"]);
        assert_eq!(
            config_from(&flags)
                .map(|config| config.access_keys.len())
                .ok(),
            Some(2)
        );
    }

    #[test]
    fn bad_flags_are_refused_with_a_reason() {
        for (arguments, case) in [
            (&["--port", "70000"][..], "a port out of range"),
            (&["--port"][..], "a missing value"),
            (
                &["--bind", "localhost"][..],
                "a host name instead of an address",
            ),
            (&["--verbose"][..], "an unknown flag"),
        ] {
            assert!(parse(arguments).is_err(), "accepted {case}");
        }
        let three_keys = parse(&[
            "--access-key",
            "a",
            "--access-key",
            "b",
            "--access-key",
            "c",
        ])
        .ok()
        .flatten()
        .expect("three keys parse");
        assert!(config_from(&three_keys).is_err(), "accepted three keys");
        let bad_key = parse(&["--access-key", "a;b"])
            .ok()
            .flatten()
            .expect("parses");
        assert!(config_from(&bad_key).is_err(), "accepted a key with ';'");
        assert!(matches!(parse(&["--help"]), Ok(None)));
        assert!(
            parse(&["--upstream", "http://a", "--upstream", "http://b"]).is_err(),
            "accepted two upstreams"
        );
    }

    #[test]
    fn the_upstream_flag_wins_over_the_environment() {
        let origin = |flag: Option<&str>, environment: Option<&str>| {
            upstream_template(flag, environment)
                .ok()
                .flatten()
                .map(|template| template.origin())
        };
        assert_eq!(origin(None, None), None);
        assert_eq!(origin(None, Some("")), None);
        assert_eq!(
            origin(None, Some("http://localhost:7071/runtime/webhooks/signalr")),
            Some("http://localhost:7071".to_owned())
        );
        assert_eq!(
            origin(
                Some("http://127.0.0.1:9/{hub}"),
                Some("http://localhost:7071/x")
            ),
            Some("http://127.0.0.1:9".to_owned())
        );
        let flags = parse(&["--upstream=http://localhost:7071/api/{hub}/{category}/{event}"])
            .ok()
            .flatten()
            .expect("parses");
        assert!(upstream_template(flags.upstream.as_deref(), None).is_ok());
        assert!(upstream_template(Some("http://h/{nope}"), None).is_err());
        assert!(upstream_template(None, Some("not a url")).is_err());
    }

    #[test]
    fn keyless_flag_refusals() {
        for (arguments, case) in [
            (&["--disable-local-auth"][..], "no Entra issuer"),
            (
                &["--entra-jwks-url", "http://localhost/jwks"][..],
                "a JWKS without an issuer",
            ),
            (&["--entra-issuer", "not a url"][..], "a bad issuer"),
            (
                &[
                    "--entra-issuer",
                    "http://localhost:7072/t/",
                    "--disable-local-auth",
                    "--access-key",
                    "k",
                ][..],
                "an access key without local auth",
            ),
            (
                &[
                    "--entra-issuer",
                    "http://localhost:7072/t/",
                    "--temporary-key-lifetime-seconds",
                    "0",
                ][..],
                "a zero lifetime",
            ),
        ] {
            let flags = parse(arguments).ok().flatten().expect("parses");
            assert!(config_from(&flags).is_err(), "accepted {case}");
        }
        assert!(parse(&["--temporary-key-lifetime-seconds", "soon"]).is_err());
        assert!(parse(&["--disable-local-auth=yes"]).is_err());
    }

    #[test]
    fn keyless_flags_build_an_identity_only_config() {
        let flags = parse(&[
            "--entra-issuer",
            "http://localhost:7072/11111111-1111-4111-8111-111111111111/",
            "--entra-jwks-url=http://localhost:7072/jwks",
            "--temporary-key-lifetime-seconds",
            "60",
            "--disable-local-auth",
        ])
        .ok()
        .flatten()
        .expect("valid flags parse");
        let config = config_from(&flags).expect("a valid configuration");
        assert!(config.local_auth_disabled);
        assert_eq!(config.temporary_key_lifetime, Duration::from_secs(60));
        assert_eq!(
            config.entra.as_ref().map(EntraConfig::issuer),
            Some("http://localhost:7072/11111111-1111-4111-8111-111111111111/")
        );
        assert_eq!(
            config.connection_string(8888),
            "Endpoint=http://localhost:8888;AuthType=azure.msi;Version=1.0;"
        );
    }
}
