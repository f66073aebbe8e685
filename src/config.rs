//! Configuration: the environment (app settings) and the app's `function.json` files, read once
//! at start-up into typed structs.
//!
//! Parsing happens in two stages: [`RawSettings`] holds what the operator typed, [`Settings`]
//! what the handler uses (a parsed connection string, algorithms, a key source). Every failure
//! is a [`ConfigError`] that names the setting and says how to fix it, so a bad deployment
//! stops at start-up instead of on the first request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::bindings::{self, FunctionBindings};
use crate::identity::jwks::HostClass;
use crate::names::{HubName, UserId};
use crate::policy::Policy;
use crate::signalr::connection_string::ConnectionString;
use crate::signalr::output::SenderStamp;

/// Functions this handler implements. Each has a folder with a `function.json` at the app root.
pub const KNOWN_FUNCTIONS: &[&str] = &[
    "negotiate",
    "addToGroup",
    "removeFromGroup",
    "removeFromAllGroups",
    "sendToGroup",
    "sendToUser",
    "index",
    "connect",
];

/// Functions that emit SignalR items and so need a `signalR` output binding with a `hubName`.
const FUNCTIONS_WITH_SIGNALR_OUTPUT: &[&str] = &[
    "addToGroup",
    "removeFromGroup",
    "removeFromAllGroups",
    "sendToGroup",
    "sendToUser",
];

/// Shortest accepted `AUTH_HS256_SECRET`, in bytes: RFC 7518 §3.2 asks for a key at least as
/// long as the hash output.
const MIN_HS256_SECRET_BYTES: usize = 32;
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
const MAX_FORWARDED_CLAIMS: usize = 32;
/// Longest accepted lifetime (`exp - iat`) of a visitor token: they are meant to be short-lived.
const MAX_VISITOR_LIFETIME_SECONDS: u64 = 86_400;
/// Most thumbprints on the client-certificate allow-list.
const MAX_THUMBPRINTS: usize = 64;

/// A configuration problem, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in `{setting}`: {message}")]
pub struct ConfigError {
    setting: String,
    message: String,
}

impl ConfigError {
    /// A problem with `setting`; `message` says what is wrong and how to fix it.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// The setting at fault.
    pub fn setting(&self) -> &str {
        &self.setting
    }
}

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
    /// Hub for tokens the handler mints itself (negotiate without a `signalRConnectionInfo` input).
    pub mint_hub: Option<HubName>,
    /// How callers are authenticated.
    pub auth: AuthSettings,
    /// The Web PubSub event handler (`connect`), when the app has that function.
    pub web_pubsub: Option<WebPubSubSettings>,
    /// Who may do what to which group.
    pub policy: Policy,
    /// `MESSAGE_SENDER_STAMP`: whether messages carry their verified sender (default: yes).
    pub sender_stamp: SenderStamp,
    /// The function app root (static files of the `index` function live under `www/`).
    pub app_root: PathBuf,
}

/// How callers are authenticated: the enabled identity sources in order, and each source's
/// settings. A source's settings are present only when something uses it.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `AUTH_SOURCES`: the enabled sources, in the order they are tried.
    pub sources: Vec<SourceKind>,
    /// JWT verification, when `jwt` is a source or the connect handler verifies JWTs.
    pub jwt: Option<JwtSettings>,
    /// App Service Authentication, when `appservice` is a source.
    pub app_service: Option<AppServiceSettings>,
    /// The client-certificate allow-list, when `clientcert` is a source or `connect` checks
    /// certificates.
    pub client_cert: Option<ClientCertSettings>,
    /// Signed anonymous visitors, when `anonymous` is a source.
    pub anonymous: Option<AnonymousSettings>,
    /// Claims copied from the verified credential into the SignalR token.
    pub forward_claims: Vec<String>,
    /// `AUTH_ALLOWED_ORIGINS`: origins (normalized `scheme://host[:port]`) besides the request's
    /// own from which a browser may call with an ambient credential (App Service principal,
    /// client certificate). See `functions::browser`.
    pub allowed_origins: Vec<String>,
}

/// One identity source, as named in `AUTH_SOURCES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `jwt`: a bearer JWT from the app's identity provider.
    Jwt,
    /// `appservice`: the `X-MS-CLIENT-PRINCIPAL` header of App Service Authentication.
    AppService,
    /// `clientcert`: the `X-ARR-ClientCert` header of App Service mutual TLS.
    ClientCert,
    /// `anonymous`: a visitor token signed with the shared visitor secret.
    Anonymous,
}

impl SourceKind {
    /// The name used in `AUTH_SOURCES`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::AppService => "appservice",
            Self::ClientCert => "clientcert",
            Self::Anonymous => "anonymous",
        }
    }
}

/// Which of the two shapes of `X-MS-CLIENT-PRINCIPAL` the app expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalFormat {
    /// App Service / Functions: `auth_typ`, `claims[{typ,val}]`, `name_typ`, `role_typ`.
    AppService,
    /// Static Web Apps: `identityProvider`, `userId`, `userDetails`, `userRoles`.
    StaticWebApps,
}

/// App Service Authentication ("EasyAuth").
#[derive(Debug, Clone)]
pub struct AppServiceSettings {
    /// False when `appservice` is listed but `WEBSITE_AUTH_ENABLED` is not `true`: the header is
    /// then client input and is ignored (a warning is logged once at start-up).
    pub platform_enabled: bool,
    /// The expected principal shape.
    pub format: PrincipalFormat,
    /// Claim type holding the user id (App Service shape).
    pub user_id_claim: String,
    /// Claim type holding roles; `None` uses the principal's own `role_typ`.
    pub role_claim: Option<String>,
}

/// How a certificate's user id is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertUserId {
    /// From the `THUMBPRINT=user-id` entries of `CLIENT_CERT_THUMBPRINTS`.
    Mapped,
    /// The certificate subject's common name.
    SubjectCommonName,
}

/// The client-certificate allow-list.
#[derive(Debug, Clone)]
pub struct ClientCertSettings {
    /// Allowed SHA-1 thumbprints (40 upper-case hex digits), each with its mapped user id.
    pub allowed: Vec<(String, Option<String>)>,
    /// Where the user id comes from.
    pub user_id_from: CertUserId,
}

/// Signed anonymous visitors.
#[derive(Debug, Clone)]
pub struct AnonymousSettings {
    /// The secret shared with the engine that signs visitor tokens.
    pub secret: SecretString,
    /// Required `iss` of visitor tokens.
    pub issuer: String,
    /// Longest accepted `exp - iat`.
    pub max_lifetime: Duration,
    /// Leeway for `exp`/`nbf`.
    pub clock_skew: Duration,
}

/// When the connect handler verifies an app JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectJwt {
    /// Never: the client certificate alone identifies the caller.
    Off,
    /// When the client sent one.
    Optional,
    /// Always: a connect without a valid JWT is refused.
    Required,
}

/// The Web PubSub event handler.
#[derive(Debug, Clone)]
pub struct WebPubSubSettings {
    /// The Web PubSub connection string: its host is the only accepted
    /// `WebHook-Request-Origin`, its AccessKey the primary signature key.
    pub connection: ConnectionString,
    /// `WEBPUBSUB_SECONDARY_ACCESS_KEY`, for key rotation.
    pub secondary_key: Option<SecretString>,
    /// Refuse a connect without a client certificate.
    pub require_client_cert: bool,
    /// When a JWT is verified at connect.
    pub jwt: ConnectJwt,
}

/// How the caller's JWT is verified.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Where verification keys come from.
    pub key_source: KeySource,
    /// Allowed algorithms; the token header's `alg` must be one of them.
    pub algorithms: Vec<Algorithm>,
    /// Claim that holds the user id.
    pub user_id_claim: String,
    /// Leeway for `exp` and `nbf`.
    pub clock_skew: Duration,
    /// Minimum time between two JWKS fetches triggered by unknown `kid`s.
    pub jwks_refresh_interval: Duration,
}

/// Where the keys that verify caller tokens come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A shared secret (HS256/384/512).
    SharedSecret(SecretString),
    /// A JWKS document at a fixed URL.
    Jwks(Url),
    /// OIDC discovery: `{issuer}/.well-known/openid-configuration` names the JWKS.
    OidcDiscovery(Url),
}

/// The settings as typed, before validation.
pub struct RawSettings<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> RawSettings<'a> {
    /// Wraps a lookup function (the process environment, or a map in tests).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// A setting's value, trimmed; empty counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    fn require(&self, name: &str, hint: &str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, format!("is not set; {hint}")))
    }
}

impl Settings {
    /// Reads the process environment and the app root's `function.json` files.
    pub fn from_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        Self::from_lookup(&lookup, None)
    }

    /// Reads settings through `lookup`. `app_root` overrides `FUNCTIONS_APP_ROOT_PATH`.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        app_root: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let raw = RawSettings::new(lookup);
        let port = parse_port(&raw)?;
        let app_root = match app_root {
            Some(root) => root.to_path_buf(),
            None => default_app_root(&raw)?,
        };
        let functions = bindings::read_app(&app_root, KNOWN_FUNCTIONS, lookup)?;
        if functions.is_empty() {
            return Err(ConfigError::new(
                "FUNCTIONS_APP_ROOT_PATH",
                format!(
                    "no function folders with a function.json under `{}`; point it at the function app root",
                    app_root.display()
                ),
            ));
        }

        let signalr_setting = connection_string_setting(&functions)?;
        let signalr_raw = raw.require(
            &signalr_setting,
            "set it to the SignalR Service connection string, `Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;`",
        )?;
        let signalr = ConnectionString::parse(&signalr_raw)
            .map_err(|error| ConfigError::new(&signalr_setting, error.to_string()))?;

        check_signalr_outputs(&functions)?;
        let mint_hub = mint_hub(&raw, &functions)?;
        let web_pubsub = web_pubsub_if_configured(&raw, &functions, &signalr)?;
        let auth = parse_auth(&raw, &signalr, web_pubsub.as_ref())?;
        let policy = load_policy(&raw, &app_root)?;
        let sender_stamp = parse_sender_stamp(&raw)?;
        Ok(Self {
            port,
            functions,
            signalr,
            signalr_setting,
            mint_hub,
            auth,
            web_pubsub,
            policy,
            sender_stamp,
            app_root,
        })
    }

    /// The bindings of `function_name`, if the app has that function.
    pub fn function(&self, function_name: &str) -> Option<&FunctionBindings> {
        self.functions
            .iter()
            .find(|function| function.function_name == function_name)
    }
}

fn parse_port(raw: &RawSettings) -> Result<u16, ConfigError> {
    let (name, value) = match raw.get("FUNCTIONS_CUSTOMHANDLER_PORT") {
        Some(value) => ("FUNCTIONS_CUSTOMHANDLER_PORT", value),
        None => (
            "FUNCTIONS_CUSTOMHANDLER_PORT",
            raw.get("FUNCTIONS_HTTPWORKER_PORT").ok_or_else(|| {
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
fn default_app_root(raw: &RawSettings) -> Result<PathBuf, ConfigError> {
    if let Some(root) = raw.get("FUNCTIONS_APP_ROOT_PATH") {
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

/// Functions that emit SignalR items must declare where they go, and every hub a binding names
/// must be a literal, valid hub name: an expression such as `{query.hub}` would let callers pick
/// the hub their token is for.
fn check_signalr_outputs(functions: &[FunctionBindings]) -> Result<(), ConfigError> {
    for function in functions {
        if let Some(hub) = function
            .connection_info
            .as_ref()
            .and_then(|info| info.hub_name.as_deref())
            && HubName::parse(hub).is_err()
        {
            return Err(ConfigError::new(
                "function.json",
                format!(
                    "`{}/function.json`: the signalRConnectionInfo hubName `{hub}` is not a literal hub name \
                     (1-128 characters, a letter first; no binding expressions)",
                    function.function_name
                ),
            ));
        }
        if !FUNCTIONS_WITH_SIGNALR_OUTPUT.contains(&function.function_name.as_str()) {
            continue;
        }
        let hub = function
            .signalr_output
            .as_ref()
            .and_then(|output| output.hub_name.as_deref());
        match hub {
            Some(hub) if HubName::parse(hub).is_ok() => {}
            Some(hub) => {
                return Err(ConfigError::new(
                    "function.json",
                    format!(
                        "`{}/function.json`: hubName `{hub}` is not a valid hub name",
                        function.function_name
                    ),
                ));
            }
            None => {
                return Err(ConfigError::new(
                    "function.json",
                    format!(
                        "`{}/function.json` needs a `signalR` output binding with a `hubName` \
                         (`{{\"type\": \"signalR\", \"direction\": \"out\", \"name\": \"signalRMessages\", \"hubName\": \"chat\"}}`)",
                        function.function_name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `POLICY_FILE` (relative to the app root) must exist when set; when unset, `policy.json` is
/// used if present, else the built-in default, which allows only the caller's own groups.
fn load_policy(raw: &RawSettings, app_root: &Path) -> Result<Policy, ConfigError> {
    match raw.get("POLICY_FILE") {
        Some(file) => Policy::load(&app_root.join(file), "POLICY_FILE"),
        None => {
            let path = app_root.join("policy.json");
            if path.is_file() {
                Policy::load(&path, "policy.json")
            } else {
                Ok(Policy::default_policy())
            }
        }
    }
}

/// All SignalR bindings must name one connection-string setting: the handler verifies and signs
/// with one AccessKey.
fn connection_string_setting(functions: &[FunctionBindings]) -> Result<String, ConfigError> {
    let mut names: Vec<&str> = functions
        .iter()
        .flat_map(|f| [f.connection_info.as_ref(), f.signalr_output.as_ref()])
        .flatten()
        .map(|binding| binding.connection_string_setting.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [] => Ok(bindings::DEFAULT_CONNECTION_STRING_SETTING.to_owned()),
        [one] => Ok((*one).to_owned()),
        several => Err(ConfigError::new(
            "function.json",
            format!(
                "SignalR bindings name several connection-string settings ({}); use one `connectionStringSetting` for all",
                several.join(", ")
            ),
        )),
    }
}

/// `SIGNALR_HUB_NAME` is needed only when negotiate has no `signalRConnectionInfo` input.
fn mint_hub(
    raw: &RawSettings,
    functions: &[FunctionBindings],
) -> Result<Option<HubName>, ConfigError> {
    let needs_hub = functions
        .iter()
        .any(|f| f.function_name == "negotiate" && f.connection_info.is_none());
    let hub = raw.get("SIGNALR_HUB_NAME");
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

fn parse_auth(
    raw: &RawSettings,
    signalr: &ConnectionString,
    web_pubsub: Option<&WebPubSubSettings>,
) -> Result<AuthSettings, ConfigError> {
    let sources = parse_sources(raw.get("AUTH_SOURCES"))?;
    let clock_skew = parse_seconds(raw, "AUTH_CLOCK_SKEW_SECONDS", 60, MAX_CLOCK_SKEW_SECONDS)?;
    let forward_claims = parse_forward_claims(raw.get("AUTH_FORWARD_CLAIMS"))?;

    let connect_jwt = web_pubsub.is_some_and(|wps| wps.jwt != ConnectJwt::Off);
    let jwt = if sources.contains(&SourceKind::Jwt) || connect_jwt {
        Some(parse_jwt(raw, signalr, clock_skew)?)
    } else {
        None
    };
    if let Some(jwt) = &jwt
        && let KeySource::SharedSecret(secret) = &jwt.key_source
        && web_pubsub.is_some_and(|wps| wps.signs_with(secret.expose_secret()))
    {
        return Err(ConfigError::new(
            "AUTH_HS256_SECRET",
            "equals a Web PubSub access key (WEBPUBSUB_CONNECTION_STRING or WEBPUBSUB_SECONDARY_ACCESS_KEY); use a separate secret, or anyone holding a Web PubSub key could sign app tokens",
        ));
    }
    let app_service = if sources.contains(&SourceKind::AppService) {
        Some(parse_app_service(raw)?)
    } else {
        None
    };
    let connect_certs = web_pubsub.is_some_and(|wps| wps.require_client_cert);
    let client_cert = if sources.contains(&SourceKind::ClientCert) || connect_certs {
        Some(parse_client_cert(raw)?)
    } else {
        // An allow-list that nothing reads would suggest a protection that is not there.
        if raw.get("CLIENT_CERT_THUMBPRINTS").is_some() && web_pubsub.is_none() {
            return Err(ConfigError::new(
                "CLIENT_CERT_THUMBPRINTS",
                "is set, but `clientcert` is not in AUTH_SOURCES; add it there, or remove the setting",
            ));
        }
        match raw.get("CLIENT_CERT_THUMBPRINTS") {
            Some(_) => Some(parse_client_cert(raw)?),
            None => None,
        }
    };
    let anonymous = if sources.contains(&SourceKind::Anonymous) {
        let anonymous = parse_anonymous(raw, signalr, clock_skew)?;
        if let Some(jwt) = &jwt
            && let KeySource::SharedSecret(secret) = &jwt.key_source
            && secret.expose_secret() == anonymous.secret.expose_secret()
        {
            return Err(ConfigError::new(
                "AUTH_ANONYMOUS_SECRET",
                "equals AUTH_HS256_SECRET; use a separate secret, or a visitor token would pass as a signed-in user's token",
            ));
        }
        if web_pubsub.is_some_and(|wps| wps.signs_with(anonymous.secret.expose_secret())) {
            return Err(ConfigError::new(
                "AUTH_ANONYMOUS_SECRET",
                "equals a Web PubSub access key; use a separate secret",
            ));
        }
        Some(anonymous)
    } else {
        None
    };
    let allowed_origins = parse_allowed_origins(raw.get("AUTH_ALLOWED_ORIGINS"))?;
    let ambient =
        sources.contains(&SourceKind::AppService) || sources.contains(&SourceKind::ClientCert);
    if !allowed_origins.is_empty() && !ambient {
        // Bearer-token sources ignore the origin; a list nothing reads would suggest a protection
        // that is not there.
        return Err(ConfigError::new(
            "AUTH_ALLOWED_ORIGINS",
            "is set, but neither `appservice` nor `clientcert` is in AUTH_SOURCES (bearer tokens are not sent by browsers on their own, so no origin check applies); remove the setting",
        ));
    }
    Ok(AuthSettings {
        sources,
        jwt,
        app_service,
        client_cert,
        anonymous,
        forward_claims,
        allowed_origins,
    })
}

/// Most origins on `AUTH_ALLOWED_ORIGINS`.
const MAX_ALLOWED_ORIGINS: usize = 32;

/// `AUTH_ALLOWED_ORIGINS`: a comma list of exact origins, `scheme://host[:port]` with an `http`
/// or `https` scheme and nothing after the authority; stored in the form browsers send
/// (`Url::origin`'s serialization: lower-case host, default port left out).
fn parse_allowed_origins(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let refuse = |item: &str, why: &str| {
        ConfigError::new(
            "AUTH_ALLOWED_ORIGINS",
            format!(
                "{item:?} is not an origin ({why}); list exact origins such as https://app.example.com or http://localhost:4280, comma-separated, with no path, wildcard or trailing slash"
            ),
        )
    };
    let mut origins = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let url = url::Url::parse(item).map_err(|_| refuse(item, "not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(item, "the scheme must be http or https"));
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || url.path() != "/"
            || item.ends_with('/')
            || item.contains('*')
        {
            return Err(refuse(item, "it has more than scheme, host and port"));
        }
        let origin = url.origin();
        if !origin.is_tuple() {
            return Err(refuse(item, "it has no host"));
        }
        let origin = origin.ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    if origins.len() > MAX_ALLOWED_ORIGINS {
        return Err(ConfigError::new(
            "AUTH_ALLOWED_ORIGINS",
            format!(
                "lists more than {MAX_ALLOWED_ORIGINS} origins; list only the sites that call the functions"
            ),
        ));
    }
    Ok(origins)
}

/// `AUTH_SOURCES`: a comma list of `jwt`, `appservice`, `clientcert`, `anonymous`; default `jwt`.
fn parse_sources(value: Option<String>) -> Result<Vec<SourceKind>, ConfigError> {
    let Some(value) = value else {
        return Ok(vec![SourceKind::Jwt]);
    };
    let mut sources = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = match name.to_ascii_lowercase().as_str() {
            "jwt" => SourceKind::Jwt,
            "appservice" => SourceKind::AppService,
            "clientcert" => SourceKind::ClientCert,
            "anonymous" => SourceKind::Anonymous,
            _ => {
                return Err(ConfigError::new(
                    "AUTH_SOURCES",
                    format!(
                        "`{name}` is not an identity source; use jwt, appservice, clientcert or anonymous"
                    ),
                ));
            }
        };
        if sources.contains(&kind) {
            return Err(ConfigError::new(
                "AUTH_SOURCES",
                format!("lists `{name}` twice; list each source once, in the order to try them"),
            ));
        }
        sources.push(kind);
    }
    if sources.is_empty() {
        return Err(ConfigError::new(
            "AUTH_SOURCES",
            "lists no source; remove it for the default (`jwt`) or list at least one",
        ));
    }
    Ok(sources)
}

fn parse_app_service(raw: &RawSettings) -> Result<AppServiceSettings, ConfigError> {
    // Only the platform sets WEBSITE_AUTH_ENABLED; without it the principal header is whatever
    // the client sent (spec §3.3), so the source stays off.
    let platform_enabled = raw
        .get("WEBSITE_AUTH_ENABLED")
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let format = match raw.get("AUTH_APPSERVICE_FORMAT").as_deref() {
        None | Some("appservice") => PrincipalFormat::AppService,
        Some("staticwebapps") => PrincipalFormat::StaticWebApps,
        Some(other) => {
            return Err(ConfigError::new(
                "AUTH_APPSERVICE_FORMAT",
                format!(
                    "`{other}` is not a principal format; use appservice (App Service / Functions) or staticwebapps"
                ),
            ));
        }
    };
    let user_id_claim = raw.get("AUTH_APPSERVICE_USER_ID_CLAIM").unwrap_or_else(|| {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier".to_owned()
    });
    if format == PrincipalFormat::StaticWebApps
        && (raw.get("AUTH_APPSERVICE_USER_ID_CLAIM").is_some()
            || raw.get("AUTH_APPSERVICE_ROLE_CLAIM").is_some())
    {
        return Err(ConfigError::new(
            "AUTH_APPSERVICE_FORMAT",
            "is staticwebapps, whose principal has fixed `userId` and `userRoles` fields; remove AUTH_APPSERVICE_USER_ID_CLAIM and AUTH_APPSERVICE_ROLE_CLAIM",
        ));
    }
    Ok(AppServiceSettings {
        platform_enabled,
        format,
        user_id_claim,
        role_claim: raw.get("AUTH_APPSERVICE_ROLE_CLAIM"),
    })
}

/// `CLIENT_CERT_THUMBPRINTS`: `THUMBPRINT[=user-id]` entries, comma separated.
fn parse_client_cert(raw: &RawSettings) -> Result<ClientCertSettings, ConfigError> {
    const SETTING: &str = "CLIENT_CERT_THUMBPRINTS";
    let value = raw.require(
        SETTING,
        "list the SHA-1 thumbprints of the allowed client certificates, `THUMBPRINT=user-id,…` (several for rotation)",
    )?;
    let user_id_from = match raw.get("CLIENT_CERT_USER_ID_FROM").as_deref() {
        None | Some("map") => CertUserId::Mapped,
        Some("subject-cn") => CertUserId::SubjectCommonName,
        Some(other) => {
            return Err(ConfigError::new(
                "CLIENT_CERT_USER_ID_FROM",
                format!(
                    "`{other}` is not a user id source; use map (THUMBPRINT=user-id entries) or subject-cn"
                ),
            ));
        }
    };
    let mut allowed: Vec<(String, Option<String>)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (thumbprint, user_id) = match entry.split_once('=') {
            Some((thumbprint, user_id)) => (thumbprint, Some(user_id.trim().to_owned())),
            None => (entry, None),
        };
        let thumbprint = crate::identity::client_cert::normalize_thumbprint(thumbprint)
            .ok_or_else(|| {
                ConfigError::new(
                    SETTING,
                    format!("`{thumbprint}` is not a SHA-1 thumbprint (40 hex digits)"),
                )
            })?;
        match (&user_id_from, &user_id) {
            (CertUserId::Mapped, None) => {
                return Err(ConfigError::new(
                    SETTING,
                    format!(
                        "`{thumbprint}` has no user id; write `{thumbprint}=<user-id>`, or set CLIENT_CERT_USER_ID_FROM=subject-cn"
                    ),
                ));
            }
            (CertUserId::Mapped, Some(id)) => match UserId::parse(id) {
                Err(error) => {
                    return Err(ConfigError::new(
                        SETTING,
                        format!("the user id of `{thumbprint}`: {error} (see README, Name rules)"),
                    ));
                }
                Ok(id) if id.is_anonymous() => {
                    return Err(ConfigError::new(
                        SETTING,
                        format!(
                            "the user id of `{thumbprint}` starts with `anon:`, which is reserved for anonymous visitors"
                        ),
                    ));
                }
                Ok(_) => {}
            },
            (CertUserId::SubjectCommonName, Some(_)) => {
                return Err(ConfigError::new(
                    SETTING,
                    format!(
                        "`{thumbprint}` maps a user id, but CLIENT_CERT_USER_ID_FROM=subject-cn; use one or the other"
                    ),
                ));
            }
            _ => {}
        }
        if allowed.iter().any(|(known, _)| *known == thumbprint) {
            return Err(ConfigError::new(
                SETTING,
                format!("lists `{thumbprint}` twice"),
            ));
        }
        allowed.push((thumbprint, user_id));
    }
    if allowed.is_empty() || allowed.len() > MAX_THUMBPRINTS {
        return Err(ConfigError::new(
            SETTING,
            format!("must list from 1 to {MAX_THUMBPRINTS} thumbprints"),
        ));
    }
    Ok(ClientCertSettings {
        allowed,
        user_id_from,
    })
}

fn parse_anonymous(
    raw: &RawSettings,
    signalr: &ConnectionString,
    clock_skew: Duration,
) -> Result<AnonymousSettings, ConfigError> {
    let secret = raw.require(
        "AUTH_ANONYMOUS_SECRET",
        "set it to a random secret of at least 32 bytes shared with the engine that signs visitor tokens",
    )?;
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(ConfigError::new(
            "AUTH_ANONYMOUS_SECRET",
            format!(
                "is {} bytes; use a random secret of at least {MIN_HS256_SECRET_BYTES} bytes",
                secret.len()
            ),
        ));
    }
    if signalr.access_key_equals(&secret) {
        return Err(ConfigError::new(
            "AUTH_ANONYMOUS_SECRET",
            "equals the SignalR AccessKey; use a separate secret",
        ));
    }
    let issuer = raw.require(
        "AUTH_ANONYMOUS_ISSUER",
        "set it to the `iss` the visitor-token engine writes (e.g. `cdp.contoso.example`)",
    )?;
    let max_lifetime = parse_seconds(
        raw,
        "AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS",
        3600,
        MAX_VISITOR_LIFETIME_SECONDS,
    )?;
    if max_lifetime.is_zero() {
        return Err(ConfigError::new(
            "AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS",
            "is 0; visitor tokens need a positive lifetime",
        ));
    }
    Ok(AnonymousSettings {
        secret: SecretString::from(secret),
        issuer,
        max_lifetime,
        clock_skew,
    })
}

/// The Web PubSub connect handler is an optional feature: off (the function answers 404) unless
/// `WEBPUBSUB_CONNECTION_STRING` is set, so an app that ships the `connect` folder but does not use
/// Web PubSub starts normally. Its other settings without the connection string are a mistake.
fn web_pubsub_if_configured(
    raw: &RawSettings,
    functions: &[FunctionBindings],
    signalr: &ConnectionString,
) -> Result<Option<WebPubSubSettings>, ConfigError> {
    if !functions.iter().any(|f| f.function_name == "connect") {
        return Ok(None);
    }
    if raw.get("WEBPUBSUB_CONNECTION_STRING").is_some() {
        return parse_web_pubsub(raw, signalr).map(Some);
    }
    for name in [
        "WEBPUBSUB_SECONDARY_ACCESS_KEY",
        "WEBPUBSUB_REQUIRE_CLIENT_CERT",
        "WEBPUBSUB_CONNECT_JWT",
    ] {
        if raw.get(name).is_some() {
            return Err(ConfigError::new(
                name,
                "is set, but the connect handler is off because WEBPUBSUB_CONNECTION_STRING is not set; set it to enable the handler, or remove this setting",
            ));
        }
    }
    Ok(None)
}

fn parse_web_pubsub(
    raw: &RawSettings,
    signalr: &ConnectionString,
) -> Result<WebPubSubSettings, ConfigError> {
    const SETTING: &str = "WEBPUBSUB_CONNECTION_STRING";
    let value = raw.require(
        SETTING,
        "set it to the Web PubSub connection string, `Endpoint=https://<name>.webpubsub.azure.com;AccessKey=<key>;Version=1.0;`",
    )?;
    let connection = ConnectionString::parse(&value)
        .map_err(|error| ConfigError::new(SETTING, error.to_string()))?;
    let secondary_key = raw
        .get("WEBPUBSUB_SECONDARY_ACCESS_KEY")
        .map(SecretString::from);
    if signalr.access_key_equals(connection.access_key().expose_secret()) {
        return Err(ConfigError::new(
            SETTING,
            "has the same AccessKey as the SignalR connection string; each service needs its own key",
        ));
    }
    let require_client_cert = parse_bool(raw, "WEBPUBSUB_REQUIRE_CLIENT_CERT", true)?;
    let jwt = match raw.get("WEBPUBSUB_CONNECT_JWT").as_deref() {
        None | Some("off") => ConnectJwt::Off,
        Some("optional") => ConnectJwt::Optional,
        Some("required") => ConnectJwt::Required,
        Some(other) => {
            return Err(ConfigError::new(
                "WEBPUBSUB_CONNECT_JWT",
                format!("`{other}` is not a mode; use off, optional or required"),
            ));
        }
    };
    if !require_client_cert && jwt != ConnectJwt::Required {
        return Err(ConfigError::new(
            "WEBPUBSUB_REQUIRE_CLIENT_CERT",
            "is false and WEBPUBSUB_CONNECT_JWT is not `required`, so connect could accept callers nobody verified; require a client certificate, a JWT, or both",
        ));
    }
    Ok(WebPubSubSettings {
        connection,
        secondary_key,
        require_client_cert,
        jwt,
    })
}

impl WebPubSubSettings {
    /// True when `secret` is one of the access keys.
    fn signs_with(&self, secret: &str) -> bool {
        self.connection.access_key_equals(secret)
            || self
                .secondary_key
                .as_ref()
                .is_some_and(|key| key.expose_secret() == secret)
    }
}

/// `MESSAGE_SENDER_STAMP`: `true` (default) or `false`; anything else stops start-up, since a
/// typo must not silently switch off the sender receivers rely on.
fn parse_sender_stamp(raw: &RawSettings) -> Result<SenderStamp, ConfigError> {
    const SETTING: &str = "MESSAGE_SENDER_STAMP";
    match raw
        .get(SETTING)
        .map(|value| value.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("true") => Ok(SenderStamp::FirstArgument),
        Some("false") => Ok(SenderStamp::Off),
        Some(other) => Err(ConfigError::new(
            SETTING,
            format!(
                "`{other}` must be true (messages start with the verified sender, the default) or false (the caller's arguments only; receivers cannot tell who sent a message)"
            ),
        )),
    }
}

fn parse_bool(raw: &RawSettings, name: &str, default: bool) -> Result<bool, ConfigError> {
    match raw
        .get(name)
        .map(|value| value.to_ascii_lowercase())
        .as_deref()
    {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ConfigError::new(
            name,
            format!("`{other}` must be true or false"),
        )),
    }
}

fn parse_jwt(
    raw: &RawSettings,
    signalr: &ConnectionString,
    clock_skew: Duration,
) -> Result<JwtSettings, ConfigError> {
    let issuer = raw.require(
        "AUTH_ISSUER",
        "set it to the `iss` your identity provider writes into tokens, e.g. https://login.microsoftonline.com/<tenant>/v2.0",
    )?;
    let audience = raw.require(
        "AUTH_AUDIENCE",
        "set it to the `aud` your identity provider writes into tokens for this app (its client id or API URI)",
    )?;
    if signalr.is_service_audience(&audience) {
        return Err(ConfigError::new(
            "AUTH_AUDIENCE",
            "names the SignalR Service itself; it must be this app's own audience, or the service's tokens would be accepted at negotiate",
        ));
    }

    let secret = raw.get("AUTH_HS256_SECRET");
    let jwks_url = raw.get("AUTH_JWKS_URL");
    let key_source = match (secret, jwks_url) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "AUTH_HS256_SECRET",
                "and AUTH_JWKS_URL are both set; set exactly one key source (or neither, for OIDC discovery from AUTH_ISSUER)",
            ));
        }
        (Some(secret), None) => {
            if secret.len() < MIN_HS256_SECRET_BYTES {
                return Err(ConfigError::new(
                    "AUTH_HS256_SECRET",
                    format!("is {} bytes; use a random secret of at least {MIN_HS256_SECRET_BYTES} bytes", secret.len()),
                ));
            }
            if signalr.access_key_equals(&secret) {
                return Err(ConfigError::new(
                    "AUTH_HS256_SECRET",
                    "equals the SignalR AccessKey; use a separate secret, or anyone holding a service token could sign app tokens",
                ));
            }
            KeySource::SharedSecret(SecretString::from(secret))
        }
        (None, Some(url)) => KeySource::Jwks(parse_fetch_url("AUTH_JWKS_URL", &url)?),
        (None, None) => {
            KeySource::OidcDiscovery(parse_fetch_url("AUTH_ISSUER", &issuer).map_err(|error| {
                ConfigError::new(
                    "AUTH_ISSUER",
                    format!("{}; with neither AUTH_HS256_SECRET nor AUTH_JWKS_URL set, keys are discovered from the issuer URL", error.message),
                )
            })?)
        }
    };

    let algorithms = parse_algorithms(raw.get("AUTH_ALGORITHMS"), &key_source)?;
    let user_id_claim = raw
        .get("AUTH_USER_ID_CLAIM")
        .unwrap_or_else(|| "sub".to_owned());
    // At least one second: with no floor, every token with a random `kid` would cost one fetch.
    let jwks_refresh_interval = parse_seconds(raw, "AUTH_JWKS_REFRESH_SECONDS", 30, 86_400)?;
    if jwks_refresh_interval.is_zero() {
        return Err(ConfigError::new(
            "AUTH_JWKS_REFRESH_SECONDS",
            "must be at least 1: it limits how often tokens with unknown key ids make the handler fetch the JWKS",
        ));
    }
    Ok(JwtSettings {
        issuer,
        audience,
        key_source,
        algorithms,
        user_id_claim,
        clock_skew,
        jwks_refresh_interval,
    })
}

/// A URL the handler fetches keys from: https, or http only to a loopback host (local dev).
fn parse_fetch_url(setting: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|_| ConfigError::new(setting, format!("`{value}` is not an absolute URL")))?;
    let loopback = HostClass::of(&url) == HostClass::Loopback;
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(ConfigError::new(
            setting,
            format!("`{value}` must be an https URL (plain http is accepted only for localhost)"),
        )),
    }
}

fn parse_algorithms(
    value: Option<String>,
    key_source: &KeySource,
) -> Result<Vec<Algorithm>, ConfigError> {
    let symmetric = matches!(key_source, KeySource::SharedSecret(_));
    let Some(value) = value else {
        return Ok(vec![if symmetric {
            Algorithm::HS256
        } else {
            Algorithm::RS256
        }]);
    };
    let mut algorithms = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let algorithm: Algorithm = name.parse().map_err(|_| {
            ConfigError::new(
                "AUTH_ALGORITHMS",
                format!("`{name}` is not a supported algorithm (use HS256/HS384/HS512 with a secret; RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA with JWKS)"),
            )
        })?;
        let is_hmac = matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        if is_hmac != symmetric {
            return Err(ConfigError::new(
                "AUTH_ALGORITHMS",
                if symmetric {
                    format!(
                        "`{name}` needs public keys, but the key source is AUTH_HS256_SECRET; list only HS256/HS384/HS512"
                    )
                } else {
                    format!(
                        "`{name}` is an HMAC algorithm, but keys come from JWKS; mixing them allows algorithm confusion"
                    )
                },
            ));
        }
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    if algorithms.is_empty() {
        return Err(ConfigError::new(
            "AUTH_ALGORITHMS",
            "lists no algorithm; remove it for the default or list at least one",
        ));
    }
    Ok(algorithms)
}

fn parse_forward_claims(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut claims: Vec<String> = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        // Refused in any case: whether the service compares system claim names without regard
        // to case is not ours to rely on, and `ASRS.S.UID` beside `asrs.s.uid` is never meant.
        if name
            .get(..5)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("asrs."))
        {
            return Err(ConfigError::new(
                "AUTH_FORWARD_CLAIMS",
                format!(
                    "`{name}` is a SignalR system claim (prefix `asrs.`, in any case); the handler sets those itself, remove it from the list"
                ),
            ));
        }
        if !claims.iter().any(|claim| claim == name) {
            claims.push(name.to_owned());
        }
    }
    if claims.len() > MAX_FORWARDED_CLAIMS {
        return Err(ConfigError::new(
            "AUTH_FORWARD_CLAIMS",
            format!(
                "lists {} claims; at most {MAX_FORWARDED_CLAIMS} (the SignalR token must stay under 4 KB)",
                claims.len()
            ),
        ));
    }
    Ok(claims)
}

fn parse_seconds(
    raw: &RawSettings,
    name: &str,
    default: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let Some(value) = raw.get(name) else {
        return Ok(Duration::from_secs(default));
    };
    match value.parse::<u64>() {
        Ok(seconds) if seconds <= max => Ok(Duration::from_secs(seconds)),
        _ => Err(ConfigError::new(
            name,
            format!("`{value}` must be a whole number of seconds from 0 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "insecure-test-secret-that-is-long-enough-0123";
    const CONNECTION_STRING: &str = "Endpoint=http://localhost;Port=8888;AccessKey=INSECURE-TEST-ACCESS-KEY-0123456789ABCDEFGH;Version=1.0;";
    const WEBPUBSUB: &str = "Endpoint=https://insecure-test.webpubsub.azure.com;AccessKey=INSECURE-TEST-WPS-KEY-0123456789ABCDEFGH;Version=1.0;";
    const THUMBPRINT: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01";
    const VISITOR_SECRET: &str = "insecure-test-visitor-secret-0123456789-abcdef";

    fn app_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn settings(overrides: &[(&str, Option<&str>)]) -> Result<Settings, ConfigError> {
        let mut values: HashMap<String, String> = [
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "0"),
            ("AzureSignalRConnectionString", CONNECTION_STRING),
            ("AUTH_ISSUER", "https://issuer.example.com/"),
            ("AUTH_AUDIENCE", "api://chat"),
            ("AUTH_HS256_SECRET", SECRET),
            ("WEBPUBSUB_CONNECTION_STRING", WEBPUBSUB),
            ("WEBPUBSUB_REQUIRE_CLIENT_CERT", "false"),
            ("WEBPUBSUB_CONNECT_JWT", "required"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (name, value) in overrides {
            match value {
                Some(value) => values.insert((*name).to_owned(), (*value).to_owned()),
                None => values.remove(*name),
            };
        }
        let lookup = move |name: &str| values.get(name).cloned();
        Settings::from_lookup(&lookup, Some(&app_root()))
    }

    fn error_setting(overrides: &[(&str, Option<&str>)]) -> String {
        settings(overrides)
            .expect_err("should be refused")
            .setting()
            .to_owned()
    }

    #[test]
    fn allowed_origins_are_exact_origins_normalized_as_browsers_send_them() {
        let settings = settings(&[
            ("AUTH_SOURCES", Some("appservice,jwt")),
            (
                "AUTH_ALLOWED_ORIGINS",
                Some("https://App.Example.com, http://localhost:4280,https://a.example:443"),
            ),
        ])
        .expect("valid");
        assert_eq!(
            settings.auth.allowed_origins,
            vec![
                "https://app.example.com",
                "http://localhost:4280",
                "https://a.example"
            ]
        );
        for bad in [
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://*.example.com",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com?x=1",
        ] {
            let error = settings_error(&[
                ("AUTH_SOURCES", Some("appservice")),
                ("AUTH_ALLOWED_ORIGINS", Some(bad)),
            ]);
            assert_eq!(error.setting(), "AUTH_ALLOWED_ORIGINS", "{bad}");
            assert!(
                error.to_string().contains("https://app.example.com"),
                "{error}"
            );
        }
        assert_eq!(
            error_setting(&[("AUTH_ALLOWED_ORIGINS", Some("https://app.example.com"))]),
            "AUTH_ALLOWED_ORIGINS",
            "jwt only: nothing would read the list"
        );
    }

    fn settings_error(overrides: &[(&str, Option<&str>)]) -> ConfigError {
        settings(overrides).expect_err("should be refused")
    }

    #[test]
    fn the_repository_app_is_valid_with_defaults() {
        let settings = settings(&[]).expect("valid");
        assert_eq!(
            settings.auth.jwt.as_ref().expect("jwt").algorithms,
            vec![Algorithm::HS256]
        );
        assert_eq!(
            settings.auth.jwt.as_ref().expect("jwt").user_id_claim,
            "sub"
        );
        assert!(settings.function("negotiate").is_some());
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];
        let cases: &[(Overrides, &str)] = &[
            (
                &[("FUNCTIONS_CUSTOMHANDLER_PORT", None)],
                "FUNCTIONS_CUSTOMHANDLER_PORT",
            ),
            (
                &[("FUNCTIONS_CUSTOMHANDLER_PORT", Some("http"))],
                "FUNCTIONS_CUSTOMHANDLER_PORT",
            ),
            (
                &[("AzureSignalRConnectionString", None)],
                "AzureSignalRConnectionString",
            ),
            (
                &[("AzureSignalRConnectionString", Some("Endpoint=x"))],
                "AzureSignalRConnectionString",
            ),
            (&[("AUTH_ISSUER", None)], "AUTH_ISSUER"),
            (&[("AUTH_AUDIENCE", None)], "AUTH_AUDIENCE"),
            (
                &[("AUTH_AUDIENCE", Some("http://localhost/client/?hub=chat"))],
                "AUTH_AUDIENCE",
            ),
            (&[("AUTH_HS256_SECRET", Some("short"))], "AUTH_HS256_SECRET"),
            (
                &[(
                    "AUTH_HS256_SECRET",
                    Some("INSECURE-TEST-ACCESS-KEY-0123456789ABCDEFGH"),
                )],
                "AUTH_HS256_SECRET",
            ),
            (
                &[("AUTH_JWKS_URL", Some("https://idp.example.com/keys"))],
                "AUTH_HS256_SECRET",
            ),
            (
                &[
                    ("AUTH_HS256_SECRET", None),
                    ("AUTH_JWKS_URL", Some("http://idp.example.com/keys")),
                ],
                "AUTH_JWKS_URL",
            ),
            (
                &[
                    ("AUTH_HS256_SECRET", None),
                    ("AUTH_ISSUER", Some("not a url")),
                ],
                "AUTH_ISSUER",
            ),
            (&[("AUTH_ALGORITHMS", Some("RS256"))], "AUTH_ALGORITHMS"),
            (&[("AUTH_ALGORITHMS", Some("none"))], "AUTH_ALGORITHMS"),
            (
                &[
                    ("AUTH_HS256_SECRET", None),
                    ("AUTH_JWKS_URL", Some("https://idp.example.com/k")),
                    ("AUTH_ALGORITHMS", Some("RS256,HS256")),
                ],
                "AUTH_ALGORITHMS",
            ),
            (
                &[("AUTH_FORWARD_CLAIMS", Some("name,asrs.s.uid"))],
                "AUTH_FORWARD_CLAIMS",
            ),
            (
                &[("AUTH_FORWARD_CLAIMS", Some("name,ASRS.S.UID"))],
                "AUTH_FORWARD_CLAIMS",
            ),
            (
                &[("AUTH_FORWARD_CLAIMS", Some("Asrs.s.authn"))],
                "AUTH_FORWARD_CLAIMS",
            ),
            (
                &[(
                    "AUTH_HS256_SECRET",
                    Some("INSECURE-TEST-WPS-KEY-0123456789ABCDEFGH"),
                )],
                "AUTH_HS256_SECRET",
            ),
            (
                &[
                    ("AUTH_HS256_SECRET", Some(VISITOR_SECRET)),
                    ("WEBPUBSUB_SECONDARY_ACCESS_KEY", Some(VISITOR_SECRET)),
                ],
                "AUTH_HS256_SECRET",
            ),
            (
                &[("MESSAGE_SENDER_STAMP", Some("off"))],
                "MESSAGE_SENDER_STAMP",
            ),
            (
                &[("AUTH_CLOCK_SKEW_SECONDS", Some("-1"))],
                "AUTH_CLOCK_SKEW_SECONDS",
            ),
            (
                &[("AUTH_CLOCK_SKEW_SECONDS", Some("3600"))],
                "AUTH_CLOCK_SKEW_SECONDS",
            ),
            (
                &[("POLICY_FILE", Some("no-such-policy.json"))],
                "POLICY_FILE",
            ),
            (&[("POLICY_FILE", Some("host.json"))], "POLICY_FILE"),
            (
                &[
                    ("AUTH_HS256_SECRET", None),
                    ("AUTH_JWKS_URL", Some("https://idp.example.com/k")),
                    ("AUTH_JWKS_REFRESH_SECONDS", Some("0")),
                ],
                "AUTH_JWKS_REFRESH_SECONDS",
            ),
        ];
        for (overrides, expected) in cases {
            assert_eq!(&error_setting(overrides), expected, "{overrides:?}");
        }
    }

    #[test]
    fn identity_sources_are_ordered_and_each_needs_its_settings() {
        let all = settings(&[
            ("AUTH_SOURCES", Some("clientcert, appservice,anonymous,jwt")),
            (
                "CLIENT_CERT_THUMBPRINTS",
                Some(&format!("{THUMBPRINT}=device-1")),
            ),
            ("AUTH_ANONYMOUS_SECRET", Some(VISITOR_SECRET)),
            ("AUTH_ANONYMOUS_ISSUER", Some("cdp.test")),
            ("WEBSITE_AUTH_ENABLED", Some("True")),
        ])
        .expect("valid");
        assert_eq!(
            all.auth.sources,
            vec![
                SourceKind::ClientCert,
                SourceKind::AppService,
                SourceKind::Anonymous,
                SourceKind::Jwt
            ]
        );
        let certs = all.auth.client_cert.expect("certs");
        assert_eq!(certs.allowed[0].0, THUMBPRINT.replace(':', ""));
        assert!(all.auth.app_service.expect("app service").platform_enabled);

        // Without the platform variable the source is configured but not trusted.
        let off = settings(&[("AUTH_SOURCES", Some("appservice,jwt"))]).expect("valid");
        assert!(!off.auth.app_service.expect("app service").platform_enabled);

        // Without `jwt` among the sources nor at connect, the JWT settings are not needed.
        let no_jwt = settings(&[
            ("AUTH_SOURCES", Some("anonymous")),
            ("AUTH_ANONYMOUS_SECRET", Some(VISITOR_SECRET)),
            ("AUTH_ANONYMOUS_ISSUER", Some("cdp.test")),
            ("AUTH_ISSUER", None),
            ("AUTH_AUDIENCE", None),
            ("AUTH_HS256_SECRET", None),
            ("WEBPUBSUB_CONNECT_JWT", Some("off")),
            ("WEBPUBSUB_REQUIRE_CLIENT_CERT", Some("true")),
            (
                "CLIENT_CERT_THUMBPRINTS",
                Some(&format!("{THUMBPRINT}=device-1")),
            ),
        ])
        .expect("valid");
        assert!(no_jwt.auth.jwt.is_none());
        let web_pubsub = no_jwt.web_pubsub.expect("connect is configured");
        assert_eq!(web_pubsub.jwt, ConnectJwt::Off);
        assert!(web_pubsub.require_client_cert);
    }

    #[test]
    fn each_bad_identity_source_setting_is_named() {
        let thumbprint_with_user = format!("{THUMBPRINT}=device-1");
        type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];
        let cases: &[(Overrides, &str)] = &[
            (&[("AUTH_SOURCES", Some("jwt,ldap"))], "AUTH_SOURCES"),
            (&[("AUTH_SOURCES", Some("jwt,jwt"))], "AUTH_SOURCES"),
            (&[("AUTH_SOURCES", Some(" , "))], "AUTH_SOURCES"),
            (
                &[("AUTH_SOURCES", Some("clientcert"))],
                "CLIENT_CERT_THUMBPRINTS",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("clientcert")),
                    ("CLIENT_CERT_THUMBPRINTS", Some(THUMBPRINT)),
                ],
                "CLIENT_CERT_THUMBPRINTS",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("clientcert")),
                    ("CLIENT_CERT_THUMBPRINTS", Some("ABC=device")),
                ],
                "CLIENT_CERT_THUMBPRINTS",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("clientcert")),
                    (
                        "CLIENT_CERT_THUMBPRINTS",
                        Some(&format!("{THUMBPRINT}=anon:device")),
                    ),
                ],
                "CLIENT_CERT_THUMBPRINTS",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("clientcert")),
                    ("CLIENT_CERT_THUMBPRINTS", Some(&format!("{THUMBPRINT}=.."))),
                ],
                "CLIENT_CERT_THUMBPRINTS",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("clientcert")),
                    ("CLIENT_CERT_THUMBPRINTS", Some(&thumbprint_with_user)),
                    ("CLIENT_CERT_USER_ID_FROM", Some("subject-cn")),
                ],
                "CLIENT_CERT_THUMBPRINTS",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("clientcert")),
                    ("CLIENT_CERT_THUMBPRINTS", Some(&thumbprint_with_user)),
                    ("CLIENT_CERT_USER_ID_FROM", Some("email")),
                ],
                "CLIENT_CERT_USER_ID_FROM",
            ),
            (
                &[("AUTH_SOURCES", Some("anonymous"))],
                "AUTH_ANONYMOUS_SECRET",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("jwt,anonymous")),
                    ("AUTH_ANONYMOUS_SECRET", Some(SECRET)),
                    ("AUTH_ANONYMOUS_ISSUER", Some("cdp.test")),
                ],
                "AUTH_ANONYMOUS_SECRET",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("anonymous")),
                    ("AUTH_ANONYMOUS_SECRET", Some("short")),
                ],
                "AUTH_ANONYMOUS_SECRET",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("anonymous")),
                    ("AUTH_ANONYMOUS_SECRET", Some(VISITOR_SECRET)),
                ],
                "AUTH_ANONYMOUS_ISSUER",
            ),
            (
                &[
                    ("AUTH_SOURCES", Some("appservice")),
                    ("AUTH_APPSERVICE_FORMAT", Some("swa")),
                ],
                "AUTH_APPSERVICE_FORMAT",
            ),
            (
                // Without the connection string the handler is off, so its other settings are stray.
                &[("WEBPUBSUB_CONNECTION_STRING", None)],
                "WEBPUBSUB_REQUIRE_CLIENT_CERT",
            ),
            (
                &[("WEBPUBSUB_CONNECTION_STRING", Some(CONNECTION_STRING))],
                "WEBPUBSUB_CONNECTION_STRING",
            ),
            (
                &[("WEBPUBSUB_CONNECT_JWT", Some("optional"))],
                "WEBPUBSUB_REQUIRE_CLIENT_CERT",
            ),
            (
                &[("WEBPUBSUB_CONNECT_JWT", Some("sometimes"))],
                "WEBPUBSUB_CONNECT_JWT",
            ),
            (
                &[("WEBPUBSUB_REQUIRE_CLIENT_CERT", Some("yes"))],
                "WEBPUBSUB_REQUIRE_CLIENT_CERT",
            ),
            (
                &[("WEBPUBSUB_REQUIRE_CLIENT_CERT", Some("true"))],
                "CLIENT_CERT_THUMBPRINTS",
            ),
        ];
        for (overrides, expected) in cases {
            assert_eq!(&error_setting(overrides), expected, "{overrides:?}");
        }
    }

    #[test]
    fn jwks_and_discovery_default_to_rs256() {
        let jwks = settings(&[
            ("AUTH_HS256_SECRET", None),
            ("AUTH_JWKS_URL", Some("http://127.0.0.1:9/keys")),
        ])
        .expect("valid");
        assert!(matches!(
            jwks.auth.jwt.as_ref().expect("jwt").key_source,
            KeySource::Jwks(_)
        ));
        assert_eq!(
            jwks.auth.jwt.as_ref().expect("jwt").algorithms,
            vec![Algorithm::RS256]
        );
        let discovery = settings(&[
            ("AUTH_HS256_SECRET", None),
            ("AUTH_ALGORITHMS", Some("ES256, EdDSA")),
        ])
        .expect("valid");
        assert!(matches!(
            discovery.auth.jwt.as_ref().expect("jwt").key_source,
            KeySource::OidcDiscovery(_)
        ));
        assert_eq!(
            discovery.auth.jwt.as_ref().expect("jwt").algorithms,
            vec![Algorithm::ES256, Algorithm::EdDSA]
        );
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let settings = settings(&[]).expect("valid");
        let debug = format!("{settings:?}");
        assert!(!debug.contains(SECRET));
        assert!(!debug.contains("INSECURE-TEST-ACCESS-KEY"));
    }
}
