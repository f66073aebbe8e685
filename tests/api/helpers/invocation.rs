//! Host-shaped invocations: fixtures, payloads built as the host builds them, and readers of the
//! envelope the handler answers with.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::*;

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture exists")
}

/// Loads a payload fixture, substituting `{{NAME}}` placeholders as text so every level of the
/// host's JSON encoding receives the value.
pub fn payload(name: &str, substitutions: &[(&str, &str)]) -> Value {
    let mut text = fixture_text(name);
    for (placeholder, value) in substitutions {
        text = text.replace(&format!("{{{{{placeholder}}}}}"), value);
    }
    serde_json::from_str(&text).expect("fixture is JSON after substitution")
}

/// The caller-visible part of an invocation: the envelope's `res` output, plus `Logs`.
#[derive(Debug)]
pub struct Outcome {
    pub status: u64,
    pub headers: Map<String, Value>,
    pub body: Value,
    pub body_text: String,
    pub logs: Vec<String>,
    pub envelope: Value,
}

/// Asserts the one caller error body shape: exactly `{"error": code, "message": sentence}`.
pub fn assert_error_body(body: &Value) {
    let object = body.as_object().expect("an error body is a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "message"], "{body}");
    assert!(
        body["error"].as_str().is_some_and(|code| !code.is_empty()),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|text| text.ends_with('.')),
        "{body}"
    );
}

impl Outcome {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_str())
    }

    pub fn logs_text(&self) -> String {
        self.logs.join("\n")
    }

    /// Asserts a 401 refusal that hands out no token and logs `reason`.
    pub fn assert_unauthorized(&self, reason: &str) {
        assert_eq!(self.status, 401, "{self:#?}");
        assert_eq!(
            self.header("WWW-Authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert!(!self.body_text.contains("accessToken"), "{self:#?}");
        assert_error_body(&self.body);
        assert!(
            self.logs_text().contains(reason),
            "expected the log to name {reason:?}; logs: {:?}",
            self.logs
        );
    }
}

impl TestApp {
    /// POSTs raw bytes as the host would and returns the handler's raw answer.
    pub async fn post_raw(&self, function: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/{function}")))
            .header("Content-Type", "application/json; charset=utf-8")
            .header(
                "X-Azure-Functions-InvocationId",
                "5f0d3a55-2f4e-4a1f-9a55-8f1e2d9c0b11",
            )
            .header("X-Azure-Functions-HostVersion", "4.1036.1.23224")
            .header("User-Agent", "Azure-Functions-Host/4.1036.1.23224")
            .body(body)
            .send()
            .await
            .expect("the handler answers")
    }

    /// Sends an invocation and checks the host-level contract (200, JSON, an envelope).
    pub async fn invoke_raw(&self, function: &str, body: Vec<u8>) -> Outcome {
        let response = self.post_raw(function, body).await;
        assert_eq!(response.status(), 200, "the host must always get 200");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "content type {content_type}"
        );
        let envelope: Value = response.json().await.expect("envelope is JSON");
        assert!(envelope["Outputs"].is_object(), "{envelope}");
        assert!(envelope["Logs"].is_array(), "{envelope}");
        assert_eq!(envelope["ReturnValue"], Value::Null);
        let res = &envelope["Outputs"]["res"];
        let body_text = res["body"].as_str().expect("string body").to_owned();
        Outcome {
            status: res["statusCode"].as_u64().expect("numeric statusCode"),
            headers: res["headers"].as_object().cloned().unwrap_or_default(),
            body: serde_json::from_str(&body_text).unwrap_or(Value::Null),
            body_text,
            logs: envelope["Logs"]
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|line| line.as_str().map(str::to_owned))
                .collect(),
            envelope,
        }
    }

    pub async fn invoke(&self, function: &str, payload: &Value) -> Outcome {
        self.invoke_raw(function, serde_json::to_vec(payload).expect("json"))
            .await
    }

    /// negotiate with the binding fixture, `app_token` as the caller's credential.
    pub async fn negotiate(&self, app_token: &str) -> Outcome {
        let binding = binding_token(now(), now() + 3600);
        let payload = payload(
            "negotiate-binding.json",
            &[("APP_TOKEN", app_token), ("BINDING_TOKEN", &binding)],
        );
        self.invoke("negotiate", &payload).await
    }
}

/// A host-shaped invocation of `function` with `body` as the caller's JSON body, built as the
/// host builds it: `Body` as text with its length, and every top-level body property copied into
/// `Metadata` (objects as objects, other values double-encoded).
pub fn function_payload(function: &str, app_token: Option<&str>, body: &Value) -> Value {
    let mut payload = payload(
        "function-invocation.json",
        &[
            ("FUNCTION", function),
            ("APP_TOKEN", app_token.unwrap_or("unused")),
        ],
    );
    let text = body.to_string();
    let request = &mut payload["Data"]["req"];
    request["Body"] = json!(text);
    request["Headers"]["Content-Length"] = json!([text.len().to_string()]);
    if app_token.is_none() {
        request["Headers"]
            .as_object_mut()
            .expect("headers")
            .remove("Authorization");
        payload["Metadata"]["Headers"]
            .as_object_mut()
            .expect("headers")
            .remove("Authorization");
    }
    if let Value::Object(properties) = body {
        for (name, value) in properties {
            let metadata_value = match value {
                Value::Array(_) => continue,
                Value::Object(_) => value.clone(),
                Value::String(text) => json!(json!(text).to_string()),
                other => json!(json!(other.to_string()).to_string()),
            };
            payload["Metadata"][name] = metadata_value;
        }
    }
    payload
}

impl TestApp {
    /// Invokes `function` as the caller holding `app_token` with `body`.
    pub async fn call(&self, function: &str, app_token: &str, body: Value) -> Outcome {
        self.invoke(
            function,
            &function_payload(function, Some(app_token), &body),
        )
        .await
    }
}

impl Outcome {
    /// The envelope's output binding `name`.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.envelope["Outputs"].get(name)
    }

    /// Asserts a 403 naming `operation` that emits no SignalR item.
    pub fn assert_forbidden(&self, operation: &str) {
        assert_eq!(self.status, 403, "{self:#?}");
        assert_error_body(&self.body);
        assert_eq!(self.body["error"], "forbidden");
        let message = self.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("`{operation}`")), "{self:#?}");
        self.assert_no_signalr_output();
    }

    /// Asserts the envelope carries no output other than `res`.
    pub fn assert_no_signalr_output(&self) {
        let outputs = self.envelope["Outputs"].as_object().expect("outputs");
        assert!(
            outputs.keys().all(|key| key == "res"),
            "unexpected outputs: {outputs:?}"
        );
    }
}

/// `"Name": ["value"],` members for a `{{HEADERS}}` placeholder (host headers are arrays).
pub fn header_members(headers: &[(&str, &str)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{}: [{}],", json!(name), json!(value)))
        .collect()
}

/// `"name": "value",` members for a `{{QUERY}}` placeholder.
pub fn query_members(query: &[(&str, &str)]) -> String {
    query
        .iter()
        .map(|(name, value)| format!("{}: {},", json!(name), json!(value)))
        .collect()
}

/// `sha256=<hex>` entries for `connection_id` under each key, as the service sends them.
pub fn wps_signature(keys: &[&str], connection_id: &str) -> String {
    keys.iter()
        .map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
            mac.update(connection_id.as_bytes());
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            format!("sha256={hex}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One Web PubSub event as the service would POST it.
pub struct WpsEvent {
    pub event_type: String,
    pub connection_id: String,
    pub origin: Option<String>,
    pub signature: Option<String>,
    /// `Authorization` of the event request (keyless Web PubSub: the service's token).
    pub authorization: Option<String>,
    pub body: Value,
}

impl WpsEvent {
    /// A connect event for `connection_id`, signed with the primary and secondary keys.
    pub fn connect(connection_id: &str, body: Value) -> Self {
        Self::system("connect", connection_id, body)
    }

    pub fn system(name: &str, connection_id: &str, body: Value) -> Self {
        Self {
            event_type: format!("azure.webpubsub.sys.{name}"),
            connection_id: connection_id.into(),
            origin: Some(WEBPUBSUB_HOST.into()),
            signature: Some(wps_signature(
                &[WEBPUBSUB_PRIMARY_KEY, WEBPUBSUB_SECONDARY_KEY],
                connection_id,
            )),
            authorization: None,
            body,
        }
    }
}

/// A connect event body with an app token in the query and the given certificates.
pub fn connect_body(app_token: Option<&str>, certificates: Value) -> Value {
    let mut query = json!({"hub": ["chat"]});
    if let Some(token) = app_token {
        query["app_token"] = json!([token]);
    }
    json!({"claims": {}, "query": query,
           "headers": {"User-Agent": ["insecure-test-client/1.0"]},
           "subprotocols": [], "clientCertificates": certificates})
}

impl TestApp {
    /// negotiate with the given credential headers and query parameters.
    pub async fn negotiate_with(
        &self,
        headers: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> Outcome {
        let binding = binding_token(now(), now() + 3600);
        let payload = payload(
            "negotiate-credentials.json",
            &[
                ("HEADERS", &header_members(headers)),
                ("QUERY", &query_members(query)),
                ("BINDING_TOKEN", &binding),
            ],
        );
        self.invoke("negotiate", &payload).await
    }

    /// The abuse-protection OPTIONS request with the given headers.
    pub async fn connect_handshake(&self, headers: &[(&str, &str)]) -> Outcome {
        let payload = payload(
            "connect-validate.json",
            &[("HEADERS", &header_members(headers))],
        );
        self.invoke("connect", &payload).await
    }

    /// A Web PubSub event POSTed to connect.
    pub async fn connect_event(&self, event: &WpsEvent) -> Outcome {
        let mut headers = vec![
            ("ce-type", event.event_type.as_str()),
            ("ce-connectionId", event.connection_id.as_str()),
        ];
        if let Some(origin) = &event.origin {
            headers.push(("WebHook-Request-Origin", origin));
        }
        if let Some(signature) = &event.signature {
            headers.push(("ce-signature", signature));
        }
        if let Some(authorization) = &event.authorization {
            headers.push(("Authorization", authorization));
        }
        let name = event
            .event_type
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        // Inside JSON strings of the fixture: escaped, so any id or name stays a string.
        let in_string = |text: &str| {
            let quoted = json!(text).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        };
        let mut payload = payload(
            "connect-event.json",
            &[
                ("HEADERS", &header_members(&headers)),
                ("CONNECTION_ID", &in_string(&event.connection_id)),
                ("EVENT_NAME", &in_string(&name)),
            ],
        );
        payload["Data"]["req"]["Body"] = json!(event.body.to_string());
        self.invoke("connect", &payload).await
    }
}

impl Outcome {
    /// The user id (`asrs.s.uid`) of the SignalR token negotiate issued.
    pub fn issued_user(&self) -> String {
        assert_eq!(self.status, 200, "{self:#?}");
        let token = self.body["accessToken"].as_str().expect("token");
        let (_, claims) = decode_service_token(token);
        claims["asrs.s.uid"].as_str().expect("uid").to_owned()
    }
}

// SignalR upstream requests (docs/protocol/signalr-service.md §6) as the service sends them,
// wrapped the way the host wraps any HTTP request.

/// The test app's hub (`upstream/function.json`'s `signalR` output).
pub const HUB: &str = "chat";

/// One upstream request: headers as the emulator sends them, signed with the test AccessKey.
pub struct UpstreamCall {
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: String,
}

impl UpstreamCall {
    fn new(
        connection_id: &str,
        user: Option<&str>,
        category: &str,
        event: &str,
        body: String,
    ) -> Self {
        let mut headers = vec![
            ("X-ASRS-Connection-Id".to_owned(), connection_id.to_owned()),
            ("X-ASRS-Hub".to_owned(), HUB.to_owned()),
            ("X-ASRS-Category".to_owned(), category.to_owned()),
            ("X-ASRS-Event".to_owned(), event.to_owned()),
            (
                "X-ASRS-Signature".to_owned(),
                wps_signature(&[ACCESS_KEY], connection_id),
            ),
        ];
        if let Some(user) = user {
            headers.push(("X-ASRS-User-Id".to_owned(), user.to_owned()));
            headers.push((
                "X-ASRS-User-Claims".to_owned(),
                format!("asrs.s.uid: {user}"),
            ));
        }
        Self {
            headers,
            content_type: "application/json".to_owned(),
            body,
        }
    }

    /// `connections/connected` with body `{"type":10}`.
    pub fn connected(connection_id: &str, user: Option<&str>) -> Self {
        Self::new(
            connection_id,
            user,
            "connections",
            "connected",
            r#"{"type":10}"#.to_owned(),
        )
    }

    /// `connections/disconnected` with body `{"type":11}`.
    pub fn disconnected(connection_id: &str, user: Option<&str>) -> Self {
        Self::new(
            connection_id,
            user,
            "connections",
            "disconnected",
            r#"{"type":11}"#.to_owned(),
        )
    }

    /// `messages/<target>`: an invocation (with `invocation_id` when the client waits).
    pub fn invocation(
        connection_id: &str,
        user: Option<&str>,
        invocation_id: Option<&str>,
        target: &str,
        arguments: Value,
    ) -> Self {
        let mut message = json!({"type": 1});
        if let Some(id) = invocation_id {
            message["invocationId"] = json!(id);
        }
        message["target"] = json!(target);
        message["arguments"] = arguments;
        Self::new(connection_id, user, "messages", target, message.to_string())
    }

    /// Replaces (or, with `None`, removes) header `name`.
    pub fn with_header(mut self, name: &str, value: Option<&str>) -> Self {
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

impl TestApp {
    /// POSTs `call` to the upstream function as the host would.
    pub async fn upstream(&self, call: &UpstreamCall) -> Outcome {
        let mut headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        headers.push(("Content-Type", &call.content_type));
        let mut payload = payload("upstream.json", &[("HEADERS", &header_members(&headers))]);
        payload["Data"]["req"]["Body"] = json!(call.body);
        self.invoke("upstream", &payload).await
    }
}

impl Outcome {
    /// The SignalR items the invocation emitted (empty when there is no `signalRMessages`).
    pub fn signalr_items(&self) -> Vec<Value> {
        match self.output("signalRMessages") {
            Some(Value::Array(items)) => items.clone(),
            None => Vec::new(),
            Some(other) => panic!("signalRMessages is not an array: {other}"),
        }
    }
}
