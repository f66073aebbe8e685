//! Checks that span several settings: no secret is shared between services or sources, and no
//! app token can carry the SignalR Service's own audience. Each settings type checks itself on
//! its own; these need two at once, so they run here, after assembly.

use secrecy::ExposeSecret;

use crate::bindings::FunctionBindings;
use crate::identity::jwt::KeySource;
use crate::identity::sources::AuthSettings;
use crate::policy::Policy;
use crate::settings::{ConfigError, Env};
use crate::signalr::access_token::{is_renamed_claim, upstream_readable_claims};
use crate::signalr::connection_string::ConnectionString;
use crate::webpubsub::WebPubSubSettings;

/// The Web PubSub key is not the SignalR key.
pub(super) fn web_pubsub_key(
    web_pubsub: Option<&WebPubSubSettings>,
    signalr: &ConnectionString,
) -> Result<(), ConfigError> {
    if let Some(wps) = web_pubsub
        && let Some(key) = wps.connection.access_key()
        && signalr.access_key_equals(key.expose_secret())
    {
        return Err(ConfigError::new(
            "WEBPUBSUB_CONNECTION_STRING",
            "has the same AccessKey as the SignalR connection string; each service needs its own key",
        ));
    }
    Ok(())
}

/// The JWT audience is the app's own, and the JWT and visitor secrets are neither the other's
/// nor any service's key.
pub(super) fn identity_secrets(
    auth: &AuthSettings,
    signalr: &ConnectionString,
    web_pubsub: Option<&WebPubSubSettings>,
) -> Result<(), ConfigError> {
    let mut jwt_secret = None;
    if let Some(jwt) = &auth.jwt {
        if jwt
            .audiences
            .iter()
            .any(|audience| signalr.service_audience().contains(audience))
        {
            return Err(ConfigError::new(
                "AUTH_AUDIENCE",
                "names the SignalR Service itself; it must be this app's own audience, or the service's tokens would be accepted at negotiate",
            ));
        }
        if let KeySource::SharedSecret(secret) = &jwt.key_source {
            let secret = secret.expose_secret();
            if signalr.access_key_equals(secret) {
                return Err(ConfigError::new(
                    "AUTH_HS256_SECRET",
                    "equals the SignalR AccessKey; use a separate secret, or anyone holding a service token could sign app tokens",
                ));
            }
            if web_pubsub.is_some_and(|wps| wps.signs_with(secret)) {
                return Err(ConfigError::new(
                    "AUTH_HS256_SECRET",
                    "equals a Web PubSub access key (WEBPUBSUB_CONNECTION_STRING or WEBPUBSUB_SECONDARY_ACCESS_KEY); use a separate secret, or anyone holding a Web PubSub key could sign app tokens",
                ));
            }
            jwt_secret = Some(secret);
        }
    }
    if let Some(anonymous) = &auth.anonymous {
        let secret = anonymous.secret.expose_secret();
        if signalr.access_key_equals(secret) {
            return Err(ConfigError::new(
                "AUTH_ANONYMOUS_SECRET",
                "equals the SignalR AccessKey; use a separate secret",
            ));
        }
        if jwt_secret == Some(secret) {
            return Err(ConfigError::new(
                "AUTH_ANONYMOUS_SECRET",
                "equals AUTH_HS256_SECRET; use a separate secret, or a visitor token would pass as a signed-in user's token",
            ));
        }
        if web_pubsub.is_some_and(|wps| wps.signs_with(secret)) {
            return Err(ConfigError::new(
                "AUTH_ANONYMOUS_SECRET",
                "equals a Web PubSub access key; use a separate secret",
            ));
        }
    }
    Ok(())
}

/// The upstream's settings without the `upstream` function are a mistake (nothing reads them).
pub(super) fn upstream_settings_unused(env: &Env) -> Result<(), ConfigError> {
    for name in ["SIGNALR_UPSTREAM_AUTH", "SIGNALR_SECONDARY_ACCESS_KEY"]
        .into_iter()
        .chain(crate::signalr::upstream::MANAGED_IDENTITY_SETTINGS.all())
    {
        if env.get(name).is_some() {
            return Err(ConfigError::new(
                name,
                "is set, but the app has no `upstream` function folder; add upstream/function.json or remove this setting",
            ));
        }
    }
    Ok(())
}

/// With a managed identity negotiate must mint tokens itself: a `signalRConnectionInfo` input
/// would hand over a token signed with the host's own temporary key, which the handler cannot
/// check (and which the host emulator cannot mint at all).
pub(super) fn keyless_negotiate(
    functions: &[FunctionBindings],
    signalr_setting: &str,
) -> Result<(), ConfigError> {
    if let Some(function) = functions
        .iter()
        .find(|f| f.function.needs().connection_info && f.connection_info.is_some())
    {
        return Err(ConfigError::new(
            signalr_setting,
            format!(
                "names a managed identity (no AccessKey), so the handler mints client tokens itself with a temporary key; \
                 remove the signalRConnectionInfo input from {}/function.json and set SIGNALR_HUB_NAME to the hub \
                 (README, \"Keyless: managed identity\")",
                function.function.name()
            ),
        ));
    }
    Ok(())
}

/// Every claim the policy's upstream sections read (`onConnect` templates, `invoke`
/// requirements, the `rolesClaim` for `invoke` roles) is one an upstream caller can carry: a
/// type in `AUTH_FORWARD_CLAIMS` that travels under its own name. Otherwise the section could
/// never be met on that path, and is refused rather than silently deny.
pub(super) fn upstream_policy_claims(
    policy: &Policy,
    forward_claims: &[String],
) -> Result<(), ConfigError> {
    let readable = upstream_readable_claims(forward_claims);
    for (place, claim) in policy.upstream_claims() {
        if readable.contains(&claim) {
            continue;
        }
        let why = if is_renamed_claim(&claim) {
            format!(
                "is a reserved JWT claim name, which the SignalR token carries renamed as `asrs.u.{claim}` and the upstream does not read back; use another claim"
            )
        } else {
            format!(
                "is not forwarded into the SignalR token, so a connection's upstream requests never carry it; add `{claim}` to AUTH_FORWARD_CLAIMS or remove it from the policy"
            )
        };
        return Err(ConfigError::new(
            "AUTH_FORWARD_CLAIMS",
            format!(
                "the policy {} reads claim {claim:?} in {place}, which {why}",
                policy.origin
            ),
        ));
    }
    Ok(())
}
