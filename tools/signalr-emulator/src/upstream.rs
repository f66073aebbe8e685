//! Upstream (serverless hub) events (docs/protocol/signalr-service.md §6): `connections/connected`, `connections/disconnected` and client
//! invocations (`messages/<target>`) POSTed to a function app, signed with the access keys.
//!
//! Each connection gets one worker task that sends its events in order: `connected` first, then every
//! invocation as the client sent it (one at a time, as a hub runs one invocation per client by default),
//! then `disconnected`. An invocation with an `invocationId` gets the upstream's 200 body forwarded raw as
//! its completion, or an error completion for any other outcome; one without is fire and forget. The URL
//! template may hold a function key (`?code=…`), so no URL is ever logged, not even inside an HTTP error.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::config::{AccessKey, Config};
use crate::hub::{Excluded, Frame, Hub, Target};
use crate::lifetime::{Claim, ConnectionAuth};
use crate::names::{HubName, UserId};
use crate::protocol::{self, RECORD_SEPARATOR};
use crate::upstream_identity::IdentityTokens;
use secrecy::ExposeSecret;

/// What `Uri.EscapeDataString` leaves alone: the unreserved characters of RFC 3986.
const ESCAPE_DATA: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Invocations waiting for the upstream per connection; a client that sends more gets them refused.
const MAX_PENDING_INVOCATIONS: usize = 128;

/// Largest upstream answer forwarded to a client (docs/protocol/signalr-service.md §6: "Invocation failed, response too large.").
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The body of a `connected` event: an OpenConnection message (docs/protocol/signalr-service.md §6).
const OPEN_CONNECTION_BODY: &str = "{\"type\":10}";

/// An upstream URL template (docs/protocol/signalr-service.md §6) with the `{hub}`, `{category}` and `{event}` placeholders, each
/// replaced by its URL-escaped value. One template serves every hub, category and event.
#[derive(Clone)]
pub struct UpstreamTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Hub,
    Category,
    Event,
}

/// Why an upstream URL template was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamTemplateError {
    /// A `{…}` other than `{hub}`, `{category}` and `{event}` (Key Vault references are not supported).
    #[error("unknown placeholder {{{0}}}: only {{hub}}, {{category}} and {{event}} are supported")]
    UnknownPlaceholder(String),
    /// A `{` without its `}`, or a `}` without its `{`.
    #[error("unbalanced '{{' or '}}'")]
    UnbalancedBrace,
    /// With its placeholders filled, the template is not an absolute http or https URL with a host.
    #[error("not an absolute http:// or https:// URL with a host")]
    NotHttpUrl,
}

impl UpstreamTemplate {
    /// Parses a template such as `http://localhost:7071/runtime/webhooks/signalr` or
    /// `http://localhost:7071/api/{hub}/{category}/{event}?code=…`.
    pub fn parse(template: &str) -> Result<Self, UpstreamTemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(UpstreamTemplateError::UnbalancedBrace);
            }
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find(['{', '}'])
                .filter(|index| after[*index..].starts_with('}'))
                .ok_or(UpstreamTemplateError::UnbalancedBrace)?;
            parts.push(match &after[..close] {
                "hub" => Part::Hub,
                "category" => Part::Category,
                "event" => Part::Event,
                other => return Err(UpstreamTemplateError::UnknownPlaceholder(other.to_owned())),
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        let parsed = Self { parts };
        parsed
            .url("hub", "connections", "connected")
            .ok_or(UpstreamTemplateError::NotHttpUrl)?;
        Ok(parsed)
    }

    /// The URL for one event, or `None` if the filled template is not an http(s) URL.
    fn url(&self, hub: &str, category: &str, event: &str) -> Option<url::Url> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => text.push_str(literal),
                Part::Hub => text.extend(utf8_percent_encode(hub, ESCAPE_DATA)),
                Part::Category => text.extend(utf8_percent_encode(category, ESCAPE_DATA)),
                Part::Event => text.extend(utf8_percent_encode(event, ESCAPE_DATA)),
            }
        }
        let url = url::Url::parse(&text).ok()?;
        (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then_some(url)
    }

    /// Scheme, host and port only: what may be logged (the path or query may carry a function key).
    pub fn origin(&self) -> String {
        self.url("hub", "connections", "connected")
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for UpstreamTemplate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "UpstreamTemplate({}/[REDACTED])", self.origin())
    }
}

/// The configured upstream: its template, the HTTP client and the keys that sign requests.
pub(crate) struct Upstream {
    template: UpstreamTemplate,
    http: reqwest::Client,
    keys: Vec<AccessKey>,
    /// Whether requests carry `X-ASRS-Signature` (not with local auth disabled).
    sign: bool,
    /// `auth: ManagedIdentity`: the bearer token every request carries.
    identity: Option<IdentityTokens>,
    /// How long a full queue of this connection's completions is waited for (as REST sends do).
    delivery_grace: Duration,
}

/// Who a connection is, as its upstream requests say.
pub(crate) struct ConnectionInfo {
    pub(crate) hub_name: HubName,
    pub(crate) connection_id: Arc<str>,
    pub(crate) user: Option<UserId>,
    /// Read at each request, so a refresh's claims show in later requests.
    pub(crate) auth: Arc<ConnectionAuth>,
    /// `X-ASRS-Client-Query`: the connect query without `access_token` and `id`.
    pub(crate) client_query: String,
}

/// A connection's handle on its upstream worker.
pub(crate) struct UpstreamConnection {
    invocations: mpsc::Sender<Invocation>,
    /// The close message's error, sent in the `disconnected` event.
    ending: Arc<Mutex<Option<String>>>,
}

struct Invocation {
    record: String,
    invocation_id: Option<String>,
    target: String,
}

/// Why an upstream request got no usable answer.
enum Failure {
    /// Not sent: a value cannot be written into a header or the URL.
    Unsendable(&'static str),
    /// Sent, but no answer (connection refused, timeout…); the error has no URL in it.
    Unreachable(reqwest::Error),
    /// The answer was over [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

impl Upstream {
    /// The upstream of `config`, if one is configured.
    pub(crate) fn from_config(config: &Config) -> std::io::Result<Option<Arc<Self>>> {
        let Some(template) = config.upstream.clone() else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(config.timings.upstream_timeout)
            // A redirect would turn the POST into a GET elsewhere; the service answers it as a failure.
            .redirect(reqwest::redirect::Policy::none())
            // The upstream is usually on this machine; a proxy from the environment must not capture it.
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let identity = config
            .upstream_identity
            .clone()
            .map(|identity| IdentityTokens::new(identity, http.clone()));
        Ok(Some(Arc::new(Self {
            template,
            http,
            keys: config.access_keys.clone(),
            sign: !config.local_auth_disabled,
            identity,
            delivery_grace: config.timings.slow_client_grace,
        })))
    }

    /// Starts the connection's worker, which sends `connected` at once.
    pub(crate) fn open(
        self: &Arc<Self>,
        info: ConnectionInfo,
        hub: Arc<Hub>,
        tasks: &TaskTracker,
    ) -> UpstreamConnection {
        let (invocations, queue) = mpsc::channel(MAX_PENDING_INVOCATIONS);
        let ending = Arc::new(Mutex::new(None));
        tasks.spawn(Arc::clone(self).run(info, hub, queue, Arc::clone(&ending)));
        UpstreamConnection {
            invocations,
            ending,
        }
    }

    async fn run(
        self: Arc<Self>,
        info: ConnectionInfo,
        hub: Arc<Hub>,
        mut queue: mpsc::Receiver<Invocation>,
        ending: Arc<Mutex<Option<String>>>,
    ) {
        self.connection_event(&info, "connected", OPEN_CONNECTION_BODY.to_owned())
            .await;
        while let Some(invocation) = queue.recv().await {
            self.invoke(&info, &hub, invocation).await;
        }
        let error = ending.lock().take();
        let mut body = serde_json::json!({"type": 11});
        if let Some(error) = error {
            body["error"] = serde_json::Value::from(error);
        }
        self.connection_event(&info, "disconnected", body.to_string())
            .await;
    }

    /// Sends `connected` or `disconnected`; only the outcome is logged (docs/protocol/signalr-service.md §6).
    async fn connection_event(&self, info: &ConnectionInfo, event: &str, body: String) {
        match self.post(info, "connections", event, body, false).await {
            Ok((status, _)) if status.is_success() => {
                tracing::debug!(connection_id = %info.connection_id, event, status = status.as_u16(), "upstream event delivered");
            }
            Ok((status, _)) => {
                tracing::warn!(connection_id = %info.connection_id, event, status = status.as_u16(), "the upstream refused a connection event");
            }
            Err(failure) => {
                tracing::warn!(connection_id = %info.connection_id, event, reason = %failure.describe(), "a connection event could not be delivered upstream");
            }
        }
    }

    /// Sends one invocation and, when it has an id, delivers its completion to the client.
    async fn invoke(&self, info: &ConnectionInfo, hub: &Hub, invocation: Invocation) {
        let Invocation {
            record,
            invocation_id,
            target,
        } = invocation;
        let outcome = self
            .post(info, "messages", &target, record, invocation_id.is_some())
            .await;
        let Some(invocation_id) = invocation_id else {
            match outcome {
                Ok((status, _)) if status.is_success() => {}
                Ok((status, _)) => {
                    tracing::warn!(connection_id = %info.connection_id, target, status = status.as_u16(), "the upstream refused an invocation");
                }
                Err(failure) => {
                    tracing::warn!(connection_id = %info.connection_id, target, reason = %failure.describe(), "an invocation could not be delivered upstream");
                }
            }
            return;
        };
        let frame = match outcome {
            Ok((StatusCode::OK, body)) if body.is_empty() => {
                protocol::completion_empty(&invocation_id)
            }
            Ok((StatusCode::OK, body)) => match String::from_utf8(body) {
                Ok(text) => {
                    if !text.ends_with(RECORD_SEPARATOR) {
                        tracing::warn!(
                            connection_id = %info.connection_id,
                            target,
                            "the upstream's completion does not end with the record separator 0x1E; forwarded as it is"
                        );
                    }
                    text
                }
                Err(_) => {
                    tracing::warn!(connection_id = %info.connection_id, target, "the upstream's completion is not UTF-8 text");
                    protocol::completion_error(
                        &invocation_id,
                        "Invocation failed, the response is not a JSON hub protocol message.",
                    )
                }
            },
            Ok((StatusCode::NO_CONTENT, _)) => protocol::completion_empty(&invocation_id),
            Ok((status, _)) => {
                tracing::debug!(connection_id = %info.connection_id, target, status = status.as_u16(), "the upstream refused an invocation");
                protocol::completion_error(
                    &invocation_id,
                    &format!("Invocation failed, status code {}", status.as_u16()),
                )
            }
            Err(Failure::TooLarge) => {
                protocol::completion_error(&invocation_id, "Invocation failed, response too large.")
            }
            Err(Failure::Unsendable(what)) => protocol::completion_error(
                &invocation_id,
                &format!("Invocation failed, {what} cannot be sent upstream."),
            ),
            Err(failure) => {
                tracing::warn!(connection_id = %info.connection_id, target, reason = %failure.describe(), "an invocation could not be delivered upstream");
                protocol::completion_error(
                    &invocation_id,
                    "Invocation failed, the upstream could not be reached.",
                )
            }
        };
        let delivery = hub.deliver(
            Target::Connection(&info.connection_id),
            &Excluded::new(Vec::new()),
            Frame::from(frame),
        );
        delivery.finish(self.delivery_grace).await;
    }

    /// POSTs one event; reads the answer's body only when it is wanted (an invocation with an id).
    async fn post(
        &self,
        info: &ConnectionInfo,
        category: &str,
        event: &str,
        body: String,
        read_body: bool,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        let url = self
            .template
            .url(info.hub_name.as_str(), category, event)
            .ok_or(Failure::Unsendable(
                "the event name does not fit into the URL",
            ))?;
        let mut headers = self.headers(info, category, event)?;
        if let Some(identity) = &self.identity {
            let token = identity.token().await.map_err(|reason| {
                tracing::warn!(reason, "no managed-identity token for the upstream");
                Failure::Unsendable("the managed-identity token")
            })?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| Failure::Unsendable("the managed-identity token"))?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let mut response = self
            .http
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|error| Failure::Unreachable(error.without_url()))?;
        let status = response.status();
        if !read_body {
            return Ok((status, Vec::new()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
        {
            return Err(Failure::TooLarge);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| Failure::Unreachable(error.without_url()))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failure::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }

    /// The `X-ASRS-*` headers of docs/protocol/signalr-service.md §6 and the JSON content type.
    fn headers(
        &self,
        info: &ConnectionInfo,
        category: &str,
        event: &str,
    ) -> Result<HeaderMap, Failure> {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str, what: &'static str| {
            let value =
                HeaderValue::from_bytes(value.as_bytes()).map_err(|_| Failure::Unsendable(what))?;
            headers.insert(HeaderName::from_static(name), value);
            Ok::<(), Failure>(())
        };
        put(
            "x-asrs-connection-id",
            &info.connection_id,
            "the connection id",
        )?;
        put("x-asrs-hub", info.hub_name.as_str(), "the hub")?;
        put("x-asrs-category", category, "the category")?;
        put("x-asrs-event", event, "the event (invocation target)")?;
        if let Some(user) = &info.user {
            // A user id that cannot be sent is not silently dropped: the request would look anonymous.
            put("x-asrs-user-id", user.as_str(), "the user id")?;
        }
        put(
            "x-asrs-user-claims",
            &claims_header(&info.auth.claims()),
            "the claims",
        )?;
        put(
            "x-asrs-client-query",
            &info.client_query,
            "the client query",
        )?;
        if self.sign {
            put(
                "x-asrs-signature",
                &self.signature(&info.connection_id),
                "the signature",
            )?;
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(headers)
    }

    /// `sha256=<hex>` per access key, comma-joined: HMAC-SHA256 of the connection id (docs/protocol/signalr-service.md §6).
    fn signature(&self, connection_id: &str) -> String {
        self.keys
            .iter()
            .map(|key| format!("sha256={}", hmac_sha256_hex(key.hmac_key(), connection_id)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl UpstreamConnection {
    /// Queues an invocation (its record as the client sent it, without the separator). Returns a completion
    /// to send to the client at once when the queue is full and the invocation has an id.
    pub(crate) fn invoke(
        &self,
        record: &str,
        invocation_id: Option<String>,
        target: String,
    ) -> Option<String> {
        let invocation = Invocation {
            record: record.to_owned(),
            invocation_id,
            target,
        };
        match self.invocations.try_send(invocation) {
            Ok(()) => None,
            Err(
                mpsc::error::TrySendError::Full(invocation)
                | mpsc::error::TrySendError::Closed(invocation),
            ) => {
                tracing::warn!(
                    target = invocation.target,
                    "too many invocations waiting for the upstream; one was refused"
                );
                invocation.invocation_id.map(|id| {
                    protocol::completion_error(
                        &id,
                        "Invocation failed, too many invocations are waiting for the upstream.",
                    )
                })
            }
        }
    }

    /// Ends the connection's events: `disconnected` follows the invocations already queued, with `error`.
    pub(crate) fn close(self, error: Option<String>) {
        *self.ending.lock() = error;
    }
}

/// `type: value` pairs joined by `, `, as `Claim.ToString()` and the service write them (docs/protocol/signalr-service.md §6). A claim
/// whose text cannot go into a header (control characters) is left out and logged by type only.
fn claims_header(claims: &[Claim]) -> String {
    let fits = |text: &str| !text.chars().any(|c| c.is_control() && c != '\t');
    claims
        .iter()
        .filter(|claim| {
            let ok = fits(&claim.kind) && fits(&claim.value);
            if !ok {
                tracing::warn!(
                    claim_type = claim.kind.escape_debug().to_string(),
                    "a claim with control characters is left out of X-ASRS-User-Claims"
                );
            }
            ok
        })
        .map(|claim| format!("{}: {}", claim.kind, claim.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The connect query for `X-ASRS-Client-Query`, without the secrets in it: the access token and the
/// connection token (`id`), which name and authorise the connection.
pub(crate) fn client_query(query: Option<&str>) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key != "access_token" && key != "id")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    format!("?{encoded}")
}

fn hmac_sha256_hex(key: &[u8], data: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty string would only fail verification.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Self::Unsendable(what) => format!("{what} cannot be sent in an HTTP request"),
            Self::Unreachable(error) => error.to_string(),
            Self::TooLarge => "the answer is larger than 16 MB".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_escaped_placeholders() {
        let template =
            UpstreamTemplate::parse("http://localhost:7071/api/{hub}/{category}/{event}?code=k")
                .expect("a valid template");
        let url = template
            .url("chat", "messages", "send it/now?")
            .expect("an http URL");
        assert_eq!(
            url.as_str(),
            "http://localhost:7071/api/chat/messages/send%20it%2Fnow%3F?code=k"
        );
        assert_eq!(template.origin(), "http://localhost:7071");
        assert!(!format!("{template:?}").contains("code"));
        let plain = UpstreamTemplate::parse("https://app.example/runtime/webhooks/signalr")
            .expect("a template without placeholders");
        assert_eq!(
            plain
                .url("chat", "connections", "connected")
                .map(String::from),
            Some("https://app.example/runtime/webhooks/signalr".to_owned())
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        for (template, expected) in [
            ("http://h/{hub", UpstreamTemplateError::UnbalancedBrace),
            ("http://h/hub}", UpstreamTemplateError::UnbalancedBrace),
            ("http://h/{{hub}}", UpstreamTemplateError::UnbalancedBrace),
            (
                "http://h/{Hub}",
                UpstreamTemplateError::UnknownPlaceholder("Hub".to_owned()),
            ),
            (
                "http://h/{@Microsoft.KeyVault(SecretUri=x)}",
                UpstreamTemplateError::UnknownPlaceholder(
                    "@Microsoft.KeyVault(SecretUri=x)".to_owned(),
                ),
            ),
            ("ftp://h/x", UpstreamTemplateError::NotHttpUrl),
            ("/relative/{hub}", UpstreamTemplateError::NotHttpUrl),
            ("", UpstreamTemplateError::NotHttpUrl),
        ] {
            assert_eq!(
                UpstreamTemplate::parse(template).err(),
                Some(expected),
                "{template}"
            );
        }
    }

    #[test]
    fn the_signature_is_the_lowercase_hex_hmac_of_the_connection_id() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_client_query_loses_its_secrets() {
        assert_eq!(
            client_query(Some("hub=chat&id=secret&access_token=jwt&x=a%20b")),
            "?hub=chat&x=a+b"
        );
        assert_eq!(client_query(None), "?");
    }

    #[test]
    fn claims_join_as_type_colon_value_and_drop_control_characters() {
        let claims = [
            Claim::new("asrs.s.uid", "alice"),
            Claim::new("role", "admin"),
            Claim::new("bad", "a\r\nX-Injected: 1"),
        ];
        assert_eq!(claims_header(&claims), "asrs.s.uid: alice, role: admin");
    }
}
