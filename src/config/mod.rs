//! Configuration, on top of everything else: the environment (app settings) and the app's
//! `function.json` files, read once at start-up into [`Settings`].
//!
//! Each settings type lives beside the code that uses it and parses itself from the
//! `settings::Env` this module hands it (`identity::jwt::JwtSettings::from_env`,
//! `webpubsub::WebPubSubSettings::from_env`, …). This module assembles them, then runs the
//! checks that span several settings (`checks`). Nothing below imports `config`. Every
//! failure is a [`ConfigError`] that names the setting and says how to fix it, so a bad
//! deployment stops at start-up instead of on the first request.

mod checks;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::bindings::{self, FunctionBindings};
use crate::function::Function;
use crate::identity::sources::{AuthSettings, ConnectUse};
use crate::names::HubName;
use crate::policy::Policy;
pub use crate::settings::ConfigError;
use crate::settings::Env;
use crate::signalr::connection_string::{self, ConnectionString};
use crate::signalr::expiry::AuthExpiry;
use crate::signalr::output::SenderStamp;
use crate::signalr::service_auth::ManagedIdentitySettings;
use crate::signalr::upstream::UpstreamSettings;
use crate::webpubsub::{ConnectJwt, WebPubSubSettings};

/// Everything the handler needs, validated.
#[derive(Debug)]
pub struct Settings {
    /// Port to listen on (127.0.0.1). 0 picks a free port (tests).
    pub port: u16,
    /// The functions found in the app root.
    pub functions: Vec<FunctionBindings>,
    /// The SignalR Service the app's bindings name.
    pub signalr: ConnectionString,
    /// Name of the setting `signalr` was read from (for messages).
    pub signalr_setting: String,
    /// The platform's managed identity, when `signalr` is identity-based (no AccessKey).
    pub managed_identity: Option<ManagedIdentitySettings>,
    /// Hub for tokens the handler mints itself (negotiate without a `signalRConnectionInfo` input).
    pub mint_hub: Option<HubName>,
    /// How callers are authenticated.
    pub auth: AuthSettings,
    /// The Web PubSub event handler (`connect`), when the app has that function.
    pub web_pubsub: Option<WebPubSubSettings>,
    /// The SignalR upstream (`upstream`), when the app has that function and it is not off.
    pub upstream: Option<UpstreamSettings>,
    /// Who may do what to which group.
    pub policy: Policy,
    /// `MESSAGE_SENDER_STAMP`: whether messages carry their verified sender (default: yes).
    pub sender_stamp: SenderStamp,
    /// `SIGNALR_CLOSE_ON_AUTH_EXPIRY`, `SIGNALR_SESSION_LIFETIME_SECONDS`: when connections
    /// close (and whether `refresh` may move that moment).
    pub auth_expiry: AuthExpiry,
    /// The function app root (static files of the `index` function live under `www/`).
    pub app_root: PathBuf,
    /// `DEMO_PAGE_ENABLED`: whether the `index` function serves the demo page (default: no).
    /// Off unless asked for, because a deployed app should not hand every visitor a page that
    /// signs in at a development issuer; `scripts/dev` and the sample settings turn it on.
    pub demo_page: bool,
}

impl Settings {
    /// Reads the process environment and the app root's `function.json` files.
    ///
    /// Names are case-insensitive, as the Functions host's configuration (`IConfiguration`)
    /// treats them: the exact name first, else the first match in any case (in sorted order, so
    /// the choice does not depend on the environment's order). Azure writes portal entries such
    /// as `CUSTOMCONNSTR_<name>` with the case the operator typed.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut variables: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        variables.sort();
        let lookup = move |name: &str| {
            variables
                .iter()
                .find(|(key, _)| key == name)
                .or_else(|| {
                    variables
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                })
                .map(|(_, value)| value.clone())
        };
        Self::from_lookup(&lookup, None)
    }

    /// Reads settings through `lookup`. `app_root` overrides `FUNCTIONS_APP_ROOT_PATH`.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        app_root: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let port = parse_port(&env)?;
        let app_root = match app_root {
            Some(root) => root.to_path_buf(),
            None => default_app_root(&env)?,
        };
        let functions = bindings::read_app(&app_root, &env)?;
        if functions.is_empty() {
            return Err(ConfigError::new(
                "FUNCTIONS_APP_ROOT_PATH",
                format!(
                    "no function folders with a function.json under `{}`; point it at the function app root",
                    app_root.display()
                ),
            ));
        }

        let binding_setting = bindings::connection_string_setting(&functions)?;
        let (signalr, signalr_setting) = connection_string::from_env(&env, &binding_setting)?;
        let managed_identity = ManagedIdentitySettings::from_env(&env, &signalr)?;
        if managed_identity.is_some() {
            checks::keyless_negotiate(&functions, &signalr_setting)?;
        }
        bindings::check_signalr_outputs(&functions)?;
        bindings::check_one_hub(&functions)?;
        let mint_hub = mint_hub(&env, &functions)?;
        let has_connect = functions.iter().any(|f| f.function == Function::Connect);
        let web_pubsub = if has_connect {
            WebPubSubSettings::from_env(&env)?
        } else {
            None
        };
        checks::web_pubsub_key(web_pubsub.as_ref(), &signalr)?;
        let connect = web_pubsub
            .as_ref()
            .map_or_else(ConnectUse::default, |wps| ConnectUse {
                enabled: true,
                jwt: wps.jwt != ConnectJwt::Off,
                client_cert: wps.require_client_cert,
            });
        let auth = AuthSettings::from_env(&env, connect)?;
        checks::identity_secrets(&auth, &signalr, web_pubsub.as_ref())?;
        let has_upstream = functions.iter().any(|f| f.function == Function::Upstream);
        let upstream = if has_upstream {
            UpstreamSettings::from_env(&env, &signalr)?
        } else {
            checks::upstream_settings_unused(&env)?;
            None
        };
        let policy = Policy::from_env(&env, &app_root)?;
        if upstream.is_some() {
            checks::upstream_policy_claims(&policy, &auth.forward_claims)?;
        }
        let sender_stamp = SenderStamp::from_env(&env)?;
        let auth_expiry = AuthExpiry::from_env(&env)?;
        let demo_page = env.bool("DEMO_PAGE_ENABLED", false)?;
        Ok(Self {
            port,
            functions,
            signalr,
            signalr_setting,
            managed_identity,
            mint_hub,
            auth,
            web_pubsub,
            upstream,
            policy,
            sender_stamp,
            auth_expiry,
            app_root,
            demo_page,
        })
    }

    /// The bindings of `function`, if the app has that function.
    pub fn function(&self, function: Function) -> Option<&FunctionBindings> {
        self.functions
            .iter()
            .find(|bindings| bindings.function == function)
    }
}

fn parse_port(env: &Env) -> Result<u16, ConfigError> {
    let (name, value) = match env.get("FUNCTIONS_CUSTOMHANDLER_PORT") {
        Some(value) => ("FUNCTIONS_CUSTOMHANDLER_PORT", value),
        None => (
            "FUNCTIONS_CUSTOMHANDLER_PORT",
            env.get("FUNCTIONS_HTTPWORKER_PORT").ok_or_else(|| {
                ConfigError::new(
                    "FUNCTIONS_CUSTOMHANDLER_PORT",
                    "is not set; the Functions host sets it when it starts the handler (run `func start`, or set it by hand)",
                )
            })?,
        ),
    };
    value
        .parse()
        .map_err(|_| ConfigError::new(name, format!("`{value}` is not a port number (0-65535)")))
}

/// The app root: `FUNCTIONS_APP_ROOT_PATH` (set by the host), else the folder of the executable,
/// which `host.json` places at the app root. Never the working directory.
fn default_app_root(env: &Env) -> Result<PathBuf, ConfigError> {
    if let Some(root) = env.get("FUNCTIONS_APP_ROOT_PATH") {
        return Ok(PathBuf::from(root));
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .ok_or_else(|| {
            ConfigError::new(
                "FUNCTIONS_APP_ROOT_PATH",
                "is not set and the executable's folder is unknown; set it to the folder that holds host.json",
            )
        })
}

/// `SIGNALR_HUB_NAME` is needed only when a function that reads the `signalRConnectionInfo`
/// input (negotiate) has none, so the handler mints tokens itself.
fn mint_hub(env: &Env, functions: &[FunctionBindings]) -> Result<Option<HubName>, ConfigError> {
    let needs_hub = functions
        .iter()
        .any(|f| f.function.needs().connection_info && f.connection_info.is_none());
    let hub = env.get("SIGNALR_HUB_NAME");
    match (needs_hub, hub) {
        (false, _) => Ok(None),
        (true, None) => Err(ConfigError::new(
            "SIGNALR_HUB_NAME",
            "is not set; negotiate/function.json has no signalRConnectionInfo binding, so the handler mints \
             tokens itself and needs the hub name (or add the binding with `hubName`)",
        )),
        (true, Some(hub)) => HubName::parse(&hub).map(Some).map_err(|error| {
            ConfigError::new(
                "SIGNALR_HUB_NAME",
                format!("`{hub}` is not a valid hub name: {error}"),
            )
        }),
    }
}
