//! Output binding values, read by the host's rules.
//!
//! - `http` (docs/protocol/functions-host.md §3.3): the value is an object or a string holding a
//!   JSON object, bound into an Expando that always has `StatusCode`, `Status`, `Body` and
//!   `Headers`, so only `statusCode` sets the status; string bodies are sent as is, object bodies
//!   as indented JSON.
//! - `signalR` (docs/protocol/functions-host.md §3.5): an array of objects, one object, or a string
//!   of JSON; each item is a message (has `target`) or a group action (has `action`).

use base64::Engine;
use serde_json::{Map, Value};

/// The caller's HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponseSpec {
    /// Status code (default 200).
    pub status: u16,
    /// `Content-Type`, when a header set it.
    pub content_type: Option<String>,
    /// Other headers, values as strings.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Reads a named `http` output's value; `None` when the handler left the key out.
pub fn http_output(value: Option<&Value>) -> Result<HttpResponseSpec, String> {
    let Some(value) = value else {
        // An empty Expando is bound and serialized as `{}` (docs/protocol/functions-host.md §3.3,
        // "Key missing"), written
        // as `text/plain`, not JSON (docs/protocol/functions-host.md §3.3, errata).
        return Ok(HttpResponseSpec {
            status: 200,
            content_type: Some("text/plain".into()),
            headers: Vec::new(),
            body: b"{}".to_vec(),
        });
    };
    let object = match value {
        Value::Object(object) => object.clone(),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            _ => return Err(deserialize_failure()),
        },
        _ => return Err(deserialize_failure()),
    };
    let field = |name: &str| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let status = match field("statusCode") {
        None | Some(Value::Null) => 200,
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|code| u16::try_from(code).ok())
            .filter(|code| (100..=999).contains(code))
            .ok_or_else(|| format!("statusCode {number} is not a valid HTTP status"))?,
        Some(Value::String(text)) => text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|code| (100..=999).contains(code))
            .ok_or_else(|| format!("statusCode {text:?} is not a valid HTTP status"))?,
        Some(other) => return Err(format!("statusCode {other} is not a valid HTTP status")),
    };
    let body = match field("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text.as_bytes().to_vec(),
        Some(other) => dotnet_to_string(other).into_bytes(),
    };
    let mut content_type = None;
    let mut headers = Vec::new();
    match field("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            let mut seen: Vec<&str> = Vec::new();
            for (name, value) in map {
                if value.is_null() {
                    continue;
                }
                // A header name repeated (in another case) is dropped; the first one stays
                // (docs/protocol/functions-host.md §3.3, errata).
                if seen
                    .iter()
                    .any(|earlier| earlier.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                seen.push(name);
                let text = dotnet_to_string(value);
                if name.eq_ignore_ascii_case("content-type") {
                    content_type = Some(with_utf8_charset(&text));
                } else {
                    headers.push((name.clone(), text));
                }
            }
        }
        Some(_) => return Err(deserialize_failure()),
    }
    Ok(HttpResponseSpec {
        status,
        content_type,
        headers,
        body,
    })
}

/// The handler's `Content-Type` as the host writes it: `; charset=utf-8` appended (
/// docs/protocol/functions-host.md §3.3, errata). A value that already names a charset is left as
/// it is (the errata does not say what
/// the host does then; appending a second one would make an invalid header).
fn with_utf8_charset(content_type: &str) -> String {
    let has_charset = content_type.split(';').skip(1).any(|parameter| {
        parameter
            .trim()
            .to_ascii_lowercase()
            .starts_with("charset=")
    });
    if has_charset {
        content_type.to_owned()
    } else {
        format!("{}; charset=utf-8", content_type.trim_end())
    }
}

fn deserialize_failure() -> String {
    "Failed while trying to Deserialize to httpOutputBindingResponse: the http output must be an \
     object (or a string holding one) with statusCode, headers and body"
        .into()
}

/// `JToken.ToString()`: strings bare, booleans `True`/`False`, objects and arrays indented.
fn dotnet_to_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        Value::Number(number) => number.to_string(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// One item of a `signalR` output.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalRItem {
    /// A hub method invocation sent to clients.
    Message {
        /// Routing, by the extension's precedence.
        to: MessageTarget,
        /// Client method name.
        target: String,
        /// Arguments, as written.
        arguments: Vec<Value>,
    },
    /// A group membership change.
    GroupAction {
        /// Connection or user.
        subject: GroupSubject,
        /// `add`, `remove` or `removeAll`.
        action: GroupActionKind,
        /// The group (required for add/remove).
        group: Option<String>,
    },
}

/// Where a message goes: the first non-empty of `connectionId`, `userId`, `groupName`, else all.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageTarget {
    /// One connection.
    Connection(String),
    /// Every connection of a user.
    User(String),
    /// Every connection in a group.
    Group(String),
    /// Every connection of the hub.
    Broadcast,
}

/// Who a group action applies to (`connectionId` has precedence).
#[derive(Debug, Clone, PartialEq)]
pub enum GroupSubject {
    /// One connection.
    Connection(String),
    /// A user (all of their connections, now and later).
    User(String),
}

/// The group action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupActionKind {
    /// Add to the group.
    Add,
    /// Remove from the group.
    Remove,
    /// Remove from every group.
    RemoveAll,
}

/// Reads a `signalR` output value into items, in order. `None` (key absent) gives no items.
pub fn signalr_items(value: Option<&Value>) -> Result<Vec<SignalRItem>, String> {
    let objects = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Object(_)) => vec![value.cloned().unwrap_or(Value::Null)],
        Some(Value::String(text)) => {
            // The host first offers non-binary string outputs to the base64 decoder; a string
            // that decodes becomes bytes, which the JObject collector cannot take
            // (docs/protocol/functions-host.md §0.4).
            if looks_like_base64(text) {
                return Err(format!(
                    "Value cannot be null (the string output {text:?} is valid base64, so the host \
                     turned it into bytes)"
                ));
            }
            let trimmed = text.trim();
            let json_like = (trimmed.starts_with('{') && trimmed.ends_with('}'))
                || (trimmed.starts_with('[') && trimmed.ends_with(']'));
            if !json_like {
                return Err("Value cannot be null (a string output must hold JSON)".into());
            }
            match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Array(items)) => items,
                Ok(object @ Value::Object(_)) => vec![object],
                _ => return Err("the string output is not valid JSON".into()),
            }
        }
        Some(other) => {
            return Err(format!(
                "Value cannot be null (unsupported output value {other})"
            ));
        }
    };
    objects.iter().map(parse_item).collect()
}

fn parse_item(value: &Value) -> Result<SignalRItem, String> {
    let invalid =
        || "Unable to convert JObject to valid output binding type, check parameters.".to_owned();
    let Value::Object(object) = value else {
        return Err(invalid());
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match field(object, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(Value::Bool(flag)) => Ok(Some(if *flag { "True" } else { "False" }.to_owned())),
            Some(_) => Err(format!("`{name}` must be a string")),
        }
    };
    let non_empty = |value: Option<String>| value.filter(|text| !text.is_empty());
    if let Some(target) = text("target")? {
        let arguments = match field(object, "arguments") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(arguments)) => arguments.clone(),
            Some(_) => return Err("`arguments` must be an array".into()),
        };
        let to = if let Some(connection) = non_empty(text("connectionId")?) {
            MessageTarget::Connection(connection)
        } else if let Some(user) = non_empty(text("userId")?) {
            MessageTarget::User(user)
        } else if let Some(group) = non_empty(text("groupName")?) {
            MessageTarget::Group(group)
        } else {
            MessageTarget::Broadcast
        };
        return Ok(SignalRItem::Message {
            to,
            target,
            arguments,
        });
    }
    let action = match field(object, "action") {
        Some(Value::String(name)) if name.eq_ignore_ascii_case("add") => GroupActionKind::Add,
        Some(Value::String(name)) if name.eq_ignore_ascii_case("remove") => GroupActionKind::Remove,
        Some(Value::String(name)) if name.eq_ignore_ascii_case("removeAll") => {
            GroupActionKind::RemoveAll
        }
        Some(Value::Number(number)) if number.as_u64() == Some(0) => GroupActionKind::Add,
        Some(Value::Number(number)) if number.as_u64() == Some(1) => GroupActionKind::Remove,
        Some(Value::Number(number)) if number.as_u64() == Some(2) => GroupActionKind::RemoveAll,
        _ => return Err(invalid()),
    };
    let subject = if let Some(connection) = non_empty(text("connectionId")?) {
        GroupSubject::Connection(connection)
    } else if let Some(user) = non_empty(text("userId")?) {
        GroupSubject::User(user)
    } else {
        return Err("ConnectionId and UserId cannot be null or empty together".into());
    };
    let group = non_empty(text("groupName")?);
    if group.is_none() && action != GroupActionKind::RemoveAll {
        return Err("groupName cannot be null or empty".into());
    }
    Ok(SignalRItem::GroupAction {
        subject,
        action,
        group,
    })
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// `Convert.FromBase64String` would accept this string (whitespace ignored).
fn looks_like_base64(text: &str) -> bool {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    compact.len().is_multiple_of(4)
        && base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_code_sets_the_status_and_status_is_ignored() {
        let response = http_output(Some(&json!({"status": 404, "body": "x"}))).expect("valid");
        assert_eq!(response.status, 200);
        let response = http_output(Some(&json!({"statusCode": "201"}))).expect("valid");
        assert_eq!(response.status, 201);
        let response = http_output(Some(&json!({"StatusCode": 403}))).expect("valid");
        assert_eq!(response.status, 403);
        assert!(http_output(Some(&json!({"statusCode": "abc"}))).is_err());
    }

    #[test]
    fn the_handlers_content_type_gets_a_utf8_charset_and_a_missing_res_is_text_plain() {
        let typed = |content_type: &str| {
            http_output(Some(&json!({"headers": {"Content-Type": content_type}})))
                .expect("valid")
                .content_type
        };
        assert_eq!(
            typed("text/html").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            typed("application/json; charset=utf-16").as_deref(),
            Some("application/json; charset=utf-16")
        );
        let untyped = http_output(Some(&json!({"body": "x"}))).expect("valid");
        assert_eq!(untyped.content_type, None, "the writer's default applies");
        let missing = http_output(None).expect("valid");
        assert_eq!(missing.content_type.as_deref(), Some("text/plain"));
        assert_eq!(missing.body, b"{}");
    }

    #[test]
    fn a_repeated_header_name_keeps_only_its_first_value() {
        let response = http_output(Some(&json!({
            "headers": {"X-One": "1", "x-one": "2", "Content-Type": "text/html",
                        "content-type": "application/json"}
        })))
        .expect("valid");
        assert_eq!(response.headers, vec![("X-One".to_owned(), "1".to_owned())]);
        assert_eq!(
            response.content_type.as_deref(),
            Some("text/html; charset=utf-8")
        );
    }

    #[test]
    fn bodies_and_headers_follow_the_expando_rules() {
        let response = http_output(Some(&json!({
            "body": {"a": [1]},
            "headers": {"Content-Type": "application/json", "X-Count": 2, "X-Flag": true}
        })))
        .expect("valid");
        assert_eq!(
            String::from_utf8_lossy(&response.body),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(
            response.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            response.headers,
            [
                ("X-Count".to_owned(), "2".to_owned()),
                ("X-Flag".to_owned(), "True".to_owned())
            ]
        );
        let from_string =
            http_output(Some(&json!(r#"{"statusCode":202,"body":"ok"}"#))).expect("valid");
        assert_eq!(
            (from_string.status, from_string.body),
            (202, b"ok".to_vec())
        );
        assert!(http_output(Some(&json!("hello"))).is_err());
        assert!(http_output(Some(&json!(42))).is_err());
        let missing = http_output(None).expect("an empty Expando");
        assert_eq!((missing.status, missing.body), (200, b"{}".to_vec()));
    }

    #[test]
    fn messages_route_by_the_extension_precedence() {
        let items = signalr_items(Some(&json!([
            {"target": "t", "connectionId": "c", "userId": "u", "groupName": "g"},
            {"target": "t", "connectionId": "", "userId": "u", "groupName": "g"},
            {"target": "t", "groupName": "g", "arguments": [1]},
            {"target": "t"},
        ])))
        .expect("valid");
        let targets: Vec<MessageTarget> = items
            .into_iter()
            .map(|item| match item {
                SignalRItem::Message { to, .. } => to,
                SignalRItem::GroupAction { .. } => MessageTarget::Broadcast,
            })
            .collect();
        assert_eq!(
            targets,
            [
                MessageTarget::Connection("c".into()),
                MessageTarget::User("u".into()),
                MessageTarget::Group("g".into()),
                MessageTarget::Broadcast
            ]
        );
    }

    #[test]
    fn group_actions_parse_and_invalid_items_fail() {
        let items = signalr_items(Some(&json!(
            r#"{"userId":"alice","groupName":"room-1","action":"add"}"#
        )))
        .expect("a JSON string holding one object");
        assert_eq!(
            items,
            [SignalRItem::GroupAction {
                subject: GroupSubject::User("alice".into()),
                action: GroupActionKind::Add,
                group: Some("room-1".into())
            }]
        );
        for (value, reason) in [
            (json!([{"groupName": "g", "action": "add"}]), "no subject"),
            (json!([{"userId": "u", "action": "add"}]), "no group"),
            (json!([{"userId": "u", "action": "join"}]), "unknown action"),
            (json!([{"userId": "u"}]), "neither message nor action"),
            (json!([1]), "not an object"),
            (json!("abcd"), "base64 string"),
            (json!("hello there"), "not JSON"),
            (json!(42), "a number"),
        ] {
            assert!(signalr_items(Some(&value)).is_err(), "{reason}");
        }
        assert_eq!(signalr_items(None), Ok(Vec::new()));
    }
}
