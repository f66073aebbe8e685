//! `AUTH_SOURCES` and the settings every identity source shares: which sources are enabled and
//! in which order, each source's own settings (parsed beside its verifier), the claims forwarded
//! into the SignalR token, and the origins allowed to call with an ambient credential.

use crate::identity::anonymous::AnonymousSettings;
use crate::identity::client_cert::ClientCertSettings;
use crate::identity::easy_auth::AppServiceSettings;
use crate::identity::jwt::JwtSettings;
use crate::settings::{ConfigError, Env, comma_list};

const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
const MAX_FORWARDED_CLAIMS: usize = 32;
/// Most origins on `AUTH_ALLOWED_ORIGINS`.
const MAX_ALLOWED_ORIGINS: usize = 32;

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

/// What the Web PubSub connect handler, when enabled, verifies with identity's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectUse {
    /// The connect handler is enabled.
    pub enabled: bool,
    /// It verifies app JWTs (`WEBPUBSUB_CONNECT_JWT` is not `off`).
    pub jwt: bool,
    /// It requires client certificates.
    pub client_cert: bool,
}

impl AuthSettings {
    /// Reads `AUTH_SOURCES` and the settings of every source that is enabled or that `connect`
    /// uses. Secrets that must differ from other services' keys are checked by `config`.
    pub fn from_env(env: &Env, connect: ConnectUse) -> Result<Self, ConfigError> {
        let sources = parse_sources(env.get("AUTH_SOURCES"))?;
        let clock_skew = env.seconds("AUTH_CLOCK_SKEW_SECONDS", 60, MAX_CLOCK_SKEW_SECONDS)?;
        let forward_claims = parse_forward_claims(env.get("AUTH_FORWARD_CLAIMS"))?;

        let jwt = if sources.contains(&SourceKind::Jwt) || connect.jwt {
            Some(JwtSettings::from_env(env, clock_skew)?)
        } else {
            None
        };
        let app_service = if sources.contains(&SourceKind::AppService) {
            Some(AppServiceSettings::from_env(env)?)
        } else {
            None
        };
        let client_cert = if sources.contains(&SourceKind::ClientCert) || connect.client_cert {
            Some(ClientCertSettings::from_env(env)?)
        } else {
            // An allow-list that nothing reads would suggest a protection that is not there.
            if env.get("CLIENT_CERT_THUMBPRINTS").is_some() && !connect.enabled {
                return Err(ConfigError::new(
                    "CLIENT_CERT_THUMBPRINTS",
                    "is set, but `clientcert` is not in AUTH_SOURCES; add it there, or remove the setting",
                ));
            }
            match env.get("CLIENT_CERT_THUMBPRINTS") {
                Some(_) => Some(ClientCertSettings::from_env(env)?),
                None => None,
            }
        };
        let anonymous = if sources.contains(&SourceKind::Anonymous) {
            Some(AnonymousSettings::from_env(env, clock_skew)?)
        } else {
            None
        };
        let allowed_origins = parse_allowed_origins(env.get("AUTH_ALLOWED_ORIGINS"))?;
        let ambient =
            sources.contains(&SourceKind::AppService) || sources.contains(&SourceKind::ClientCert);
        if !allowed_origins.is_empty() && !ambient {
            // Bearer-token sources ignore the origin; a list nothing reads would suggest a
            // protection that is not there.
            return Err(ConfigError::new(
                "AUTH_ALLOWED_ORIGINS",
                "is set, but neither `appservice` nor `clientcert` is in AUTH_SOURCES (bearer tokens are not sent by browsers on their own, so no origin check applies); remove the setting",
            ));
        }
        Ok(Self {
            sources,
            jwt,
            app_service,
            client_cert,
            anonymous,
            forward_claims,
            allowed_origins,
        })
    }
}

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
    for item in comma_list(&value) {
        let url = url::Url::parse(item).map_err(|_| refuse(item, "not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(item, "the scheme must be http or https"));
        }
        // A plain-http page elsewhere can be rewritten by anyone on its network path, so it is
        // no safer than a cross-site page: http only for this machine.
        if url.scheme() == "http"
            && super::jwks::HostClass::of(&url) != super::jwks::HostClass::Loopback
        {
            return Err(refuse(
                item,
                "plain http is allowed only for localhost; use https",
            ));
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
    for name in comma_list(&value) {
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

fn parse_forward_claims(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut claims: Vec<String> = Vec::new();
    for name in comma_list(&value) {
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
        // Types are what precedes the first `: ` of an `X-ASRS-User-Claims` item, which the
        // upstream splits on `, `: a type with `,`, `:` or whitespace could not be read back
        // exactly, and control characters cannot travel in a header.
        if name
            .chars()
            .any(|c| c == ',' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::new(
                "AUTH_FORWARD_CLAIMS",
                format!(
                    "{name:?} contains `,`, `:`, whitespace or a control character; claim types must not, because X-ASRS-User-Claims joins `type: value` pairs with `, ` (rename the claim at the identity provider, or remove it)"
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
