//! Calls to the SignalR Service REST API that a policy decision or a refresh needs.
//!
//! Every call goes through [`ServiceClient::send`], which builds the URL from encoded segments
//! and applies the service credential (`signalr::service_auth`: an AccessKey REST token, or the
//! managed identity's Entra token). Reads: membership checks for "sender must be a member" and
//! for re-authorization on refresh, and a connection's claims (`connections/claims`). The one
//! write is `:refreshAuth`, which no output binding offers
//! (docs/protocol/signalr-identity-2026.md §1.3). Other writes (adds, removes, sends) are
//! output-binding items that the host applies. When the service cannot answer, the caller gets
//! 503: a check that cannot be made never turns into an allow.
//!
//! Paths are built from [`crate::names`] types only, and each segment is percent-encoded here
//! (everything but RFC 3986 unreserved characters, as the SDK's `Uri.EscapeDataString` does), so
//! a name is always exactly one segment: `names` refuses what encoding cannot make safe (`.`,
//! `..`), and encoding keeps `?`, `#` and the rest from being read as anything but text.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use secrecy::ExposeSecret;
use url::Url;

use crate::names::{GroupName, HubName, TargetUser};
use crate::signalr::connection_string::ConnectionString;
use crate::signalr::service_auth::{REST_ROLE, ServiceAuth, ServiceAuthError};

const API_VERSION: &str = "2022-06-01";
/// The api-version of `:refreshAuth` and `connections/claims` (ASR#2281).
const REFRESH_API_VERSION: &str = "2026-07-01";
/// Longest connection token accepted from a client. The service's tokens are short; the cap
/// keeps a hostile `id` from growing the request to the service.
pub const MAX_CONNECTION_TOKEN_CHARS: usize = 1024;
/// Largest claims answer read: a connection's claims fit a 4 KB token many times over.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why the service gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The request failed before an answer came back (connection, TLS or timeout).
    #[error("the SignalR Service could not be reached: {0}")]
    Unreachable(String),
    /// The service answered with a status the call does not expect.
    #[error("the SignalR Service answered {0}")]
    UnexpectedStatus(u16),
    /// The service answered 200 with a body that is not the documented shape.
    #[error("the SignalR Service answered {0} with an unreadable body")]
    UnexpectedAnswer(u16),
    /// The request could not be built (bad URL or token); a configuration fault.
    #[error("cannot build the REST request: {0}")]
    Request(String),
    /// No credential for the call (the managed identity gave no token).
    #[error(transparent)]
    Auth(#[from] ServiceAuthError),
    /// The service refused the credential: with a managed identity, a missing role.
    #[error(
        "the SignalR Service answered {0} to a REST call: with a managed identity, assign it the `{REST_ROLE}` role (or `SignalR Service Owner`) on the SignalR resource"
    )]
    Refused(u16),
}

/// A negotiate-v1 connection token from a client's `refresh?id=`: it names (and grants access
/// to) one connection, so it is a secret: `Debug` redacts it and nothing logs it. It travels
/// only in a request body, never in a URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionToken(String);

impl ConnectionToken {
    /// 1 to [`MAX_CONNECTION_TOKEN_CHARS`] printable ASCII characters without spaces: what the
    /// service hands out. Anything else cannot name a connection.
    pub fn parse(value: &str) -> Option<Self> {
        let valid = !value.is_empty()
            && value.len() <= MAX_CONNECTION_TOKEN_CHARS
            && value.bytes().all(|byte| byte.is_ascii_graphic());
        valid.then(|| Self(value.to_owned()))
    }
}

impl std::fmt::Debug for ConnectionToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ConnectionToken(<redacted>)")
    }
}

/// One claim as the 2026 routes carry it (`{"type", "value"}`): an API boundary with the
/// service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceClaim {
    /// The claim type.
    #[serde(rename = "type")]
    pub claim_type: String,
    /// Its value, as text.
    pub value: String,
}

#[derive(serde::Deserialize)]
struct ClaimsBody {
    claims: Vec<ServiceClaim>,
}

/// What `connections/claims` or `:refreshAuth` answered, in the terms the refresh function maps
/// to its client's error codes.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectionAnswer {
    /// 200: the connection's claims (after the refresh, for `:refreshAuth`).
    Claims(Vec<ServiceClaim>),
    /// 404: no such connection (unknown token, gone, negotiate v0, another hub).
    NotFound,
    /// 403 `ConnectionUserMismatch`: the claims name another user; nothing changed.
    UserMismatch,
    /// 400: the service refused the input (e.g. a token it cannot read).
    Rejected,
}

/// A REST client for one service.
pub struct ServiceClient {
    http: reqwest::Client,
    connection: ConnectionString,
    auth: ServiceAuth,
}

impl ServiceClient {
    /// A client for the service `connection` names, authenticated by `auth`.
    pub fn new(connection: &ConnectionString, auth: ServiceAuth) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            connection: connection.clone(),
            auth,
        })
    }

    /// One authenticated REST call: `{ServerEndpoint}/{segments, each percent-encoded}?api-version=…`
    /// with the service credential as the bearer, and `body` as JSON if given. Answers 401/403
    /// become [`RestError::Refused`]; every other status is the caller's to judge. Callers build
    /// `segments` from `names` types and literals only.
    pub async fn request(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, RestError> {
        let response = self
            .send(method, &encode_segments(segments), API_VERSION, body)
            .await?;
        match response.status().as_u16() {
            status @ (401 | 403) => Err(RestError::Refused(status)),
            _ => Ok(response),
        }
    }

    /// The call itself: `{ServerEndpoint}/{path}?api-version={version}` with the service
    /// credential, every status returned as is. `path` is already encoded (segments from
    /// [`encode_segments`] and this module's literals only).
    async fn send(
        &self,
        method: Method,
        path: &str,
        version: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, RestError> {
        let url = with_version(&self.connection.server_base(), path, version)?;
        // The audience is the same path on the Endpoint host without port, as the SDK builds it.
        let audience = with_version(&self.connection.audience_base(), path, version)?;
        let bearer = self.auth.rest_bearer(audience.as_str()).await?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(bearer.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|error| RestError::Unreachable(error.to_string()))
    }

    /// `HEAD /api/hubs/{hub}/users/{user}/groups/{group}`: 200 is a member, 404 is not.
    pub async fn is_user_in_group(
        &self,
        hub: &HubName,
        user: &TargetUser,
        group: &GroupName,
    ) -> Result<bool, RestError> {
        let hub = hub.as_str().to_lowercase();
        let segments = membership_segments(&hub, user, group);
        let response = self.request(Method::HEAD, &segments, None).await?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            other => Err(RestError::UnexpectedStatus(other)),
        }
    }
}

impl ServiceClient {
    /// `POST /api/hubs/{hub}/connections/claims?api-version=2026-07-01`: the connection's
    /// current claims, read before a refresh replaces them (re-authorization needs the old
    /// ones). The token rides in the body, never in the URL.
    pub async fn connection_claims(
        &self,
        hub: &HubName,
        token: &ConnectionToken,
    ) -> Result<ConnectionAnswer, RestError> {
        let body = serde_json::json!({"connectionToken": token.0});
        self.connection_call(hub, "claims", &body).await
    }

    /// `POST /api/hubs/{hub}/connections/:refreshAuth?api-version=2026-07-01` with `claims`
    /// (always: without them the service keeps the old ones and checks no user) and
    /// `expireTime` (ISO 8601 UTC).
    pub async fn refresh_auth(
        &self,
        hub: &HubName,
        token: &ConnectionToken,
        expire_time: &str,
        claims: &[ServiceClaim],
    ) -> Result<ConnectionAnswer, RestError> {
        let body = serde_json::json!({
            "connectionToken": token.0,
            "expireTime": expire_time,
            "claims": claims,
        });
        self.connection_call(hub, ":refreshAuth", &body).await
    }

    /// POSTs `body` to `api/hubs/{hub}/connections/{action}` and reads the answer. `action` is
    /// one of this module's literals, never caller text.
    async fn connection_call(
        &self,
        hub: &HubName,
        action: &'static str,
        body: &serde_json::Value,
    ) -> Result<ConnectionAnswer, RestError> {
        let hub = hub.as_str().to_lowercase();
        // The action is a literal and stays as the service routes it (`:refreshAuth`, not
        // `%3ArefreshAuth`); the hub is encoded like every name.
        let path = format!(
            "{}/connections/{action}",
            encode_segments(&["api", "hubs", &hub])
        );
        let response = self
            .send(Method::POST, &path, REFRESH_API_VERSION, Some(body))
            .await?;
        let status = response.status().as_u16();
        let error_code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        match status {
            200 => {
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|error| RestError::Unreachable(error.to_string()))?;
                if bytes.len() > MAX_ANSWER_BYTES {
                    return Err(RestError::UnexpectedAnswer(status));
                }
                let body: ClaimsBody = serde_json::from_slice(&bytes)
                    .map_err(|_| RestError::UnexpectedAnswer(status))?;
                Ok(ConnectionAnswer::Claims(body.claims))
            }
            404 => Ok(ConnectionAnswer::NotFound),
            400 => Ok(ConnectionAnswer::Rejected),
            // A 403 is the user check only with its error code; without it (a missing role on
            // an Entra token) it is the deployment's fault, as is a 401.
            403 if error_code.as_deref() == Some("ConnectionUserMismatch") => {
                Ok(ConnectionAnswer::UserMismatch)
            }
            status @ (401 | 403) => Err(RestError::Refused(status)),
            other => Err(RestError::UnexpectedStatus(other)),
        }
    }
}

/// `api/hubs/{hub}/users/{user}/groups/{group}`; `hub` already lower-cased, as the SDK sends it.
fn membership_segments<'a>(
    hub: &'a str,
    user: &'a TargetUser,
    group: &'a GroupName,
) -> [&'a str; 7] {
    [
        "api",
        "hubs",
        hub,
        "users",
        user.as_str(),
        "groups",
        group.as_str(),
    ]
}

/// The segments joined by `/`, each percent-encoded, so each stays exactly one segment.
fn encode_segments(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The membership path for `hub`, `user` and `group` (tests).
#[cfg(test)]
fn membership_path(hub: &HubName, user: &TargetUser, group: &GroupName) -> String {
    let hub = hub.as_str().to_lowercase();
    encode_segments(&membership_segments(&hub, user, group))
}

/// `{base}/{path}?api-version=…`, parsed so that a base that cannot take a path fails here.
#[cfg(test)]
fn with_path(base: &str, path: &str) -> Result<Url, RestError> {
    with_version(base, path, API_VERSION)
}

/// `{base}/{path}?api-version={version}`, parsed so that a base that cannot take a path fails
/// here.
fn with_version(base: &str, path: &str, version: &str) -> Result<Url, RestError> {
    let text = format!(
        "{}/{path}?api-version={version}",
        base.trim_end_matches('/')
    );
    Url::parse(&text).map_err(|error| RestError::Request(error.to_string()))
}

#[cfg(test)]
mod tests {
    use percent_encoding::percent_decode_str;
    use proptest::prelude::*;

    use super::*;

    fn membership_url(hub: &str, user: &str, group: &str) -> Url {
        let path = membership_path(
            &HubName::parse(hub).expect("valid hub"),
            &TargetUser::parse(user).expect("valid user"),
            &GroupName::parse(group).expect("valid group"),
        );
        with_path("https://x.service.signalr.net", &path).expect("url")
    }

    fn decoded_segments(url: &Url) -> Vec<String> {
        url.path_segments()
            .expect("a path")
            .map(|segment| {
                percent_decode_str(segment)
                    .decode_utf8()
                    .expect("UTF-8")
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn the_membership_path_keeps_every_name_as_one_segment() {
        let url = membership_url("Chat", "anon:v-1", "room.1 ?#;x");
        assert_eq!(
            url.as_str(),
            "https://x.service.signalr.net/api/hubs/chat/users/anon%3Av-1/groups/room.1%20%3F%23%3Bx?api-version=2022-06-01"
        );
        assert_eq!(
            decoded_segments(&url),
            [
                "api",
                "hubs",
                "chat",
                "users",
                "anon:v-1",
                "groups",
                "room.1 ?#;x"
            ]
        );
    }

    #[test]
    fn connection_tokens_are_printable_ascii_within_the_cap_and_never_shown() {
        assert!(ConnectionToken::parse("abc-DEF_123.~+/=").is_some());
        for bad in [
            "",
            " ",
            "a b",
            "a\n",
            "é",
            &"x".repeat(MAX_CONNECTION_TOKEN_CHARS + 1),
        ] {
            assert!(ConnectionToken::parse(bad).is_none(), "{bad:?}");
        }
        let token = ConnectionToken::parse("secret-token").expect("valid");
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn the_refresh_path_is_the_lower_cased_hub_and_a_literal_action() {
        let hub = utf8_percent_encode("chat", SEGMENT).to_string();
        let url = with_version(
            "https://x.service.signalr.net",
            &format!("api/hubs/{hub}/connections/:refreshAuth"),
            REFRESH_API_VERSION,
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "https://x.service.signalr.net/api/hubs/chat/connections/:refreshAuth?api-version=2026-07-01"
        );
    }

    #[test]
    fn dot_segments_cannot_reach_the_membership_path() {
        // The old client extended the path with `..` and asked about
        // `/api/hubs/chat/groups/room-1` instead; such names no longer parse.
        assert!(TargetUser::parse("..").is_err());
        assert!(GroupName::parse(".").is_err());
        let url = membership_url("chat", "a..", ".b");
        assert_eq!(url.path(), "/api/hubs/chat/users/a../groups/.b");
    }

    /// Names from a mix of ordinary text and the characters URL parsers treat specially.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9._~ :;?#@!$&'()*+,=%/\\\\\u{200b}é\u{FF0E}\\[\\]-]{1,12}",
            "\\PC{1,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn accepted_names_survive_url_normalisation_as_one_segment_each(
            hub in "[A-Za-z][A-Za-z0-9_`,.\\[\\]]{0,20}",
            user in name(),
            group in name(),
        ) {
            let (Ok(hub), Ok(user), Ok(group)) =
                (HubName::parse(&hub), TargetUser::parse(&user), GroupName::parse(&group))
            else {
                return Ok(());
            };
            let path = membership_path(&hub, &user, &group);
            let url = with_path("https://x.service.signalr.net", &path).expect("url");
            let normalised = Url::parse(url.as_str()).expect("reparse");
            let expected = [
                "api".to_owned(),
                "hubs".to_owned(),
                hub.as_str().to_lowercase(),
                "users".to_owned(),
                user.as_str().to_owned(),
                "groups".to_owned(),
                group.as_str().to_owned(),
            ];
            prop_assert_eq!(decoded_segments(&url), expected.clone());
            prop_assert_eq!(decoded_segments(&normalised), expected);
            prop_assert_eq!(url.query(), Some("api-version=2022-06-01"));
        }
    }
}
