//! Calls to the SignalR Service REST API.
//!
//! Every call goes through [`ServiceClient::request`], which builds the URL from encoded
//! segments and applies the service credential (`signalr::service_auth`: an AccessKey REST
//! token, or the managed identity's Entra token). Today the calls are membership checks for
//! "sender must be a member"; writes (adds, removes, sends) are output-binding items that the
//! host applies. When the service cannot answer, the caller gets 503: a check that cannot be
//! made never turns into an allow.
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
    /// The service answered with a status the membership check does not expect.
    #[error("the SignalR Service answered {0} to a membership check")]
    UnexpectedStatus(u16),
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
        let path = encode_segments(segments);
        let url = with_path(&self.connection.server_base(), &path)?;
        // The audience is the same path on the Endpoint host without port, as the SDK builds it.
        let audience = with_path(&self.connection.audience_base(), &path)?;
        let bearer = self.auth.rest_bearer(audience.as_str()).await?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(bearer.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| RestError::Unreachable(error.to_string()))?;
        match response.status().as_u16() {
            status @ (401 | 403) => Err(RestError::Refused(status)),
            _ => Ok(response),
        }
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
fn with_path(base: &str, path: &str) -> Result<Url, RestError> {
    let text = format!(
        "{}/{path}?api-version={API_VERSION}",
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
