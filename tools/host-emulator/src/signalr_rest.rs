//! Applies `signalR` output items through the SignalR Service REST API, 2022-06-01 routes, one
//! call per item in order, as the extension's transient (REST) transport does
//! (`docs/protocol/signalr-service.md` §3–§4). Pointed at the local emulator by the connection
//! string; the same
//! calls would go to Azure.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::connection_string::ServiceEndpoint;
use crate::jwt::{process_kid, sign_hs256, unix_now};
use crate::outputs::{GroupActionKind, GroupSubject, MessageTarget, SignalRItem};

/// The REST API version of every call.
pub const API_VERSION: &str = "2022-06-01";
/// Lifetime of REST tokens (`DefaultAccessTokenLifetime`).
const REST_TOKEN_LIFETIME_SECONDS: u64 = 3600;

/// `Uri.EscapeDataString`: everything but RFC 3986 unreserved characters is escaped.
const DATA_STRING: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One REST call derived from an item (method, path after `/api/hubs/{hub}`, body).
#[derive(Debug, Clone, PartialEq)]
pub struct RestCall {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path after the hub, starting with `/`, segments escaped.
    pub path_after_hub: String,
    /// JSON body for sends.
    pub body: Option<Value>,
}

/// Maps an item to its REST call; `None` when the extension does nothing (`removeAll` with a
/// connection id).
pub fn rest_call(item: &SignalRItem) -> Option<RestCall> {
    let escape = |text: &str| utf8_percent_encode(text, DATA_STRING).to_string();
    match item {
        SignalRItem::Message {
            to,
            target,
            arguments,
        } => {
            let path = match to {
                MessageTarget::Connection(id) => format!("/connections/{}/:send", escape(id)),
                MessageTarget::User(id) => format!("/users/{}/:send", escape(id)),
                MessageTarget::Group(name) => format!("/groups/{}/:send", escape(name)),
                MessageTarget::Broadcast => "/:send".to_owned(),
            };
            // The .NET SDK writes PascalCase names (`JsonPayloadMessageContent`); the service
            // matches them case-insensitively.
            Some(RestCall {
                method: reqwest::Method::POST,
                path_after_hub: path,
                body: Some(json!({"Target": target, "Arguments": arguments})),
            })
        }
        SignalRItem::GroupAction {
            subject,
            action,
            group,
        } => {
            let group = group.as_deref().map(escape).unwrap_or_default();
            let (method, path) = match (subject, action) {
                (GroupSubject::Connection(_), GroupActionKind::RemoveAll) => return None,
                (GroupSubject::Connection(id), GroupActionKind::Add) => (
                    reqwest::Method::PUT,
                    format!("/groups/{group}/connections/{}", escape(id)),
                ),
                (GroupSubject::Connection(id), GroupActionKind::Remove) => (
                    reqwest::Method::DELETE,
                    format!("/groups/{group}/connections/{}", escape(id)),
                ),
                (GroupSubject::User(id), GroupActionKind::Add) => (
                    reqwest::Method::PUT,
                    format!("/users/{}/groups/{group}", escape(id)),
                ),
                (GroupSubject::User(id), GroupActionKind::Remove) => (
                    reqwest::Method::DELETE,
                    format!("/users/{}/groups/{group}", escape(id)),
                ),
                (GroupSubject::User(id), GroupActionKind::RemoveAll) => (
                    reqwest::Method::DELETE,
                    format!("/users/{}/groups", escape(id)),
                ),
            };
            Some(RestCall {
                method,
                path_after_hub: path,
                body: None,
            })
        }
    }
}

/// A REST client for one service endpoint.
pub struct ServiceClient<'a> {
    http: &'a reqwest::Client,
    endpoint: &'a ServiceEndpoint,
    server_name: &'a str,
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, for a managed-identity endpoint.
    identity: Option<(String, String)>,
}

impl<'a> ServiceClient<'a> {
    /// `server_name` goes into the `nameid` claim (`{MachineName}_{Guid:N}` in the SDK).
    pub fn new(
        http: &'a reqwest::Client,
        endpoint: &'a ServiceEndpoint,
        server_name: &'a str,
    ) -> Self {
        Self {
            http,
            endpoint,
            server_name,
            identity: None,
        }
    }

    /// The managed identity (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) used when the endpoint has
    /// no AccessKey.
    pub fn with_identity(mut self, identity: Option<(String, String)>) -> Self {
        self.identity = identity;
        self
    }

    /// The bearer: an HS256 REST token with the AccessKey, or the managed identity's Entra token
    /// for `https://signalr.azure.com` (fetched per call: the emulator favours simplicity).
    async fn bearer(&self, audience: &str) -> Result<String, String> {
        if let Some(key) = self.endpoint.signing_key() {
            return Ok(self.rest_token(audience, key));
        }
        let (endpoint, header) = self.identity.as_ref().ok_or(
            "the connection names a managed identity, but IDENTITY_ENDPOINT/IDENTITY_HEADER are not set",
        )?;
        let response = self
            .http
            .get(endpoint)
            .query(&[
                ("resource", "https://signalr.azure.com"),
                ("api-version", "2019-08-01"),
            ])
            .header("X-IDENTITY-HEADER", header)
            .send()
            .await
            .map_err(|error| format!("managed identity endpoint: {error}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "managed identity endpoint answered {}",
                response.status()
            ));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|_| "managed identity endpoint: not JSON".to_owned())?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "managed identity endpoint: no access_token".to_owned())
    }

    /// Sends one item; a non-2xx answer or a transport error fails it.
    pub async fn apply(&self, hub: &str, item: &SignalRItem) -> Result<(), String> {
        let Some(call) = rest_call(item) else {
            return Ok(());
        };
        let hub_path = format!(
            "api/hubs/{}{}?api-version={API_VERSION}",
            utf8_percent_encode(&hub.to_lowercase(), DATA_STRING),
            call.path_after_hub
        );
        let url = format!("{}/{hub_path}", self.endpoint.server_endpoint);
        let token = self
            .bearer(&format!("{}{hub_path}", self.endpoint.audience_base))
            .await?;
        let mut request = self
            .http
            .request(call.method.clone(), &url)
            .bearer_auth(token);
        if let Some(body) = &call.body {
            request = request
                .header("Content-Type", "application/json; charset=utf-8")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("{} {url}: {error}", call.method))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        Err(format!(
            "{} {url} answered {status} {code} {}",
            call.method,
            text.chars().take(300).collect::<String>()
        ))
    }

    /// The REST token: `nameid`, `nbf`, `exp`, `iat`, `aud` = the call's URL on the portless
    /// audience base, query included (`RestApiAccessTokenGenerator`).
    fn rest_token(&self, audience: &str, key: &[u8]) -> String {
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("nameid".into(), json!(self.server_name));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now + REST_TOKEN_LIFETIME_SECONDS));
        claims.insert("iat".into(), json!(now));
        claims.insert("aud".into(), json!(audience));
        sign_hs256(&claims, key, process_kid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_map_to_the_2022_06_01_routes() {
        let call = |item: SignalRItem| {
            rest_call(&item).map(|call| (call.method.to_string(), call.path_after_hub))
        };
        assert_eq!(
            call(SignalRItem::Message {
                to: MessageTarget::Group("room 1/x".into()),
                target: "t".into(),
                arguments: vec![]
            }),
            Some(("POST".into(), "/groups/room%201%2Fx/:send".into()))
        );
        assert_eq!(
            call(SignalRItem::GroupAction {
                subject: GroupSubject::User("alice".into()),
                action: GroupActionKind::Add,
                group: Some("room-1".into())
            }),
            Some(("PUT".into(), "/users/alice/groups/room-1".into()))
        );
        assert_eq!(
            call(SignalRItem::GroupAction {
                subject: GroupSubject::User("alice".into()),
                action: GroupActionKind::RemoveAll,
                group: None
            }),
            Some(("DELETE".into(), "/users/alice/groups".into()))
        );
        assert_eq!(
            call(SignalRItem::GroupAction {
                subject: GroupSubject::Connection("c".into()),
                action: GroupActionKind::RemoveAll,
                group: None
            }),
            None
        );
    }
}
