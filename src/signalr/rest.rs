//! Calls to the SignalR Service REST API that a policy decision needs.
//!
//! Only reads happen here: membership checks for "sender must be a member". Writes (adds,
//! removes, sends) are output-binding items that the host applies. When the service cannot
//! answer, the caller gets 503: a check that cannot be made never turns into an allow.

use std::time::Duration;

use url::Url;

use crate::signalr::access_token::ServiceTokenSigner;
use crate::signalr::connection_string::ConnectionString;

const API_VERSION: &str = "2022-06-01";
const TIMEOUT: Duration = Duration::from_secs(5);
const REST_TOKEN_LIFETIME_SECONDS: u64 = 300;

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
}

/// A REST client for one service.
pub struct ServiceClient {
    http: reqwest::Client,
    connection: ConnectionString,
}

impl ServiceClient {
    /// A client for the service `connection` names.
    pub fn new(connection: &ConnectionString) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            connection: connection.clone(),
        })
    }

    /// `HEAD /api/hubs/{hub}/users/{user}/groups/{group}`: 200 is a member, 404 is not.
    pub async fn is_user_in_group(
        &self,
        hub: &str,
        user: &str,
        group: &str,
    ) -> Result<bool, RestError> {
        let hub = hub.to_lowercase();
        let segments = ["api", "hubs", hub.as_str(), "users", user, "groups", group];
        let mut url = Url::parse(&self.connection.server_base())
            .map_err(|error| RestError::Request(error.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| RestError::Request("the server endpoint cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        // The audience is the same path on the Endpoint host without port, as the SDK builds it.
        let mut audience = Url::parse(&self.connection.audience_base())
            .map_err(|error| RestError::Request(error.to_string()))?;
        audience
            .path_segments_mut()
            .map_err(|()| RestError::Request("the endpoint cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        audience.set_query(Some(&format!("api-version={API_VERSION}")));
        url.set_query(Some(&format!("api-version={API_VERSION}")));

        let now = jsonwebtoken::get_current_timestamp();
        let token = ServiceTokenSigner::new(&self.connection)
            .rest_token(audience.as_str(), now, REST_TOKEN_LIFETIME_SECONDS)
            .map_err(|error| RestError::Request(error.to_string()))?;
        let response = self
            .http
            .head(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|error| RestError::Unreachable(error.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            other => Err(RestError::UnexpectedStatus(other)),
        }
    }
}
