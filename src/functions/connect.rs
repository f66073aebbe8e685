//! `connect`: the Azure Web PubSub event handler.
//!
//! - `OPTIONS`: the abuse-protection handshake; `WebHook-Allowed-Origin` is answered only for
//!   the host of `WEBPUBSUB_CONNECTION_STRING`.
//! - `POST`: the origin and `ce-signature` are checked first (primary and secondary key), for
//!   every event; with an identity-based `WEBPUBSUB_CONNECTION_STRING` (no key), the service's
//!   managed-identity bearer token instead (`identity::service_identity::ServiceTokenVerifier`). `azure.webpubsub.sys.connect` then identifies the caller: the client
//!   certificate from `clientCertificates` against `CLIENT_CERT_THUMBPRINTS` (required unless
//!   `WEBPUBSUB_REQUIRE_CLIENT_CERT=false`) and, per `WEBPUBSUB_CONNECT_JWT`, an app JWT from the
//!   `app_token` query parameter or the `X-App-Token` header. The answer is
//!   `{userId, groups, roles}`, the groups and roles from the same policy as the SignalR
//!   functions. Other system events get 204.
//!
//! Refusals follow the semantics of docs/protocol/webpubsub.md §1.6: 401 when the caller is not
//! authenticated (bad signature, no credential, bad JWT), 403 when a certificate was presented but
//! is not allowed.

use serde_json::json;

use crate::error::{HandlerError, NotFound};
use crate::functions::{AppState, FunctionOutcome, InvocationLog};
use crate::identity::client_cert::CertificateError;
use crate::identity::credential::{QueryToken, Scheme, TokenPlace, one_token};
use crate::identity::{IdentityError, VerifiedUser};
use crate::invocation::{CallerResponse, InvocationRequest};
use crate::policy::WebPubSubGrants;
use crate::webpubsub::{self, ConnectEvent, ConnectJwt, WebPubSubError, WebPubSubSettings};

/// The query parameter that may carry the app JWT. Not `access_token`: that is the client's
/// Web PubSub token, which the service consumes itself.
pub const APP_TOKEN_QUERY: &str = "app_token";
/// The header that may carry the app JWT (native clients).
pub const APP_TOKEN_HEADER: &str = "X-App-Token";

/// Runs connect.
pub async fn run(
    state: &AppState,
    invocation: &InvocationRequest,
    log: &mut InvocationLog,
) -> Result<FunctionOutcome, HandlerError> {
    let settings = state
        .web_pubsub
        .as_ref()
        .ok_or_else(|| HandlerError::NotFound(NotFound::ConnectOff))?;
    let request = invocation.http_request()?;
    match request.method.as_str() {
        "OPTIONS" => {
            let host = webpubsub::allowed_origin(settings, request)?;
            log.info(&format!("abuse-protection handshake answered for {host}"));
            Ok(outcome(
                CallerResponse::empty(200).with_header(webpubsub::ALLOWED_ORIGIN_HEADER, &host),
            ))
        }
        "POST" => {
            let event =
                webpubsub::authenticate_event(settings, state.web_pubsub_events.as_ref(), request)
                    .await?;
            if event.event_type == webpubsub::CONNECT_EVENT {
                let body = ConnectEvent::parse(request.body.as_deref())?;
                let user = identify(state, settings, &body).await?;
                let grants = grants(state, &user);
                log.info(&format!(
                    "connection {:?} accepted for user {:?} ({:?}), {} group(s), {} role(s)",
                    event.connection_id,
                    user.user_id(),
                    user.source(),
                    grants.groups.len(),
                    grants.roles.len()
                ));
                Ok(outcome(CallerResponse::json(
                    200,
                    &json!({"userId": user.user_id(), "groups": grants.groups, "roles": grants.roles}),
                )))
            } else if event.event_type.starts_with(webpubsub::SYSTEM_EVENT_PREFIX) {
                log.info(&format!(
                    "{} for connection {:?} acknowledged",
                    event.event_type, event.connection_id
                ));
                Ok(outcome(CallerResponse::empty(204)))
            } else {
                Err(
                    WebPubSubError::UnsupportedEvent(event.event_type.chars().take(128).collect())
                        .into(),
                )
            }
        }
        other => Err(WebPubSubError::Method(other.chars().take(16).collect()).into()),
    }
}

/// The verified caller of a connect event: certificate and JWT as configured; with both, the
/// certificate must be allowed and the JWT names the user.
async fn identify(
    state: &AppState,
    settings: &WebPubSubSettings,
    event: &ConnectEvent,
) -> Result<VerifiedUser, HandlerError> {
    // Only the first entry is the client's own certificate; later ones (if the service ever
    // sends a chain) are not credentials.
    let certificate_user = match event.client_certificates.first() {
        Some(certificate) => Some(
            state
                .authenticator
                .verify_certificate(&certificate.thumbprint, certificate.content.as_deref())
                .map_err(HandlerError::CertificateRefused)?,
        ),
        None if settings.require_client_cert => {
            return Err(IdentityError::Certificate(CertificateError::Missing).into());
        }
        None => None,
    };
    let jwt_user = match settings.jwt {
        ConnectJwt::Off => None,
        mode => match app_token(event)? {
            Some(token) => Some(state.authenticator.verify_jwt(token).await?),
            None if mode == ConnectJwt::Required => {
                return Err(IdentityError::MissingCredential.into());
            }
            None => None,
        },
    };
    jwt_user
        .or(certificate_user)
        .ok_or_else(|| IdentityError::MissingCredential.into())
}

/// Where the app JWT may come from: `Bearer` in the header is optional.
const APP_TOKEN_PLACE: TokenPlace = TokenPlace {
    header: APP_TOKEN_HEADER,
    scheme: Scheme::Optional("Bearer"),
    query: APP_TOKEN_QUERY,
    query_token: QueryToken::Accepted,
};

/// The app JWT of the connect request: one value, from the query or the header, by the rule
/// every token follows ([`one_token`]).
fn app_token(event: &ConnectEvent) -> Result<Option<&str>, IdentityError> {
    Ok(one_token(
        &APP_TOKEN_PLACE,
        &event.header_values(APP_TOKEN_HEADER),
        &event.query_values(APP_TOKEN_QUERY),
    )?)
}

/// Groups and roles for the connection, from the policy's `webPubSubConnect` templates.
fn grants(state: &AppState, user: &VerifiedUser) -> WebPubSubGrants {
    state.policy.web_pubsub_connect(user)
}

fn outcome(response: CallerResponse) -> FunctionOutcome {
    FunctionOutcome {
        response,
        outputs: Vec::new(),
    }
}
