//! The JSON hub protocol on the wire: handshake, the frames the emulator writes, and the messages it reads
//! (docs/protocol/signalr-service.md §5.4–5.7). Every record ends with the record separator `0x1E`.

use serde::Deserialize;
use serde_json::Value;

/// Ends every JSON hub-protocol record.
pub(crate) const RECORD_SEPARATOR: char = '\u{1e}';

/// The handshake success reply.
pub(crate) const HANDSHAKE_OK: &str = "{}\u{1e}";

/// The keep-alive ping (type 6).
pub(crate) const PING: &str = "{\"type\":6}\u{1e}";

/// An invocation without an invocation id, as the service delivers REST sends (docs/protocol/signalr-service.md §4.2).
pub(crate) fn invocation(target: &str, arguments: &[Value]) -> String {
    #[derive(serde::Serialize)]
    struct Invocation<'a> {
        r#type: u8,
        target: &'a str,
        arguments: &'a [Value],
    }
    let mut frame = serde_json::to_string(&Invocation {
        r#type: 1,
        target,
        arguments,
    })
    .expect("serialising strings and JSON values cannot fail");
    frame.push(RECORD_SEPARATOR);
    frame
}

/// A close message (type 7); `error` is what the client reports as the reason.
pub(crate) fn close(error: Option<&str>, allow_reconnect: bool) -> String {
    let mut message = serde_json::Map::new();
    message.insert("type".to_owned(), Value::from(7));
    if let Some(error) = error {
        message.insert("error".to_owned(), Value::from(error));
    }
    if allow_reconnect {
        message.insert("allowReconnect".to_owned(), Value::from(true));
    }
    let mut frame = Value::Object(message).to_string();
    frame.push(RECORD_SEPARATOR);
    frame
}

/// A completion (type 3) carrying an error, so a client's `invoke` fails instead of waiting forever.
pub(crate) fn completion_error(invocation_id: &str, error: &str) -> String {
    let mut frame =
        serde_json::json!({"type": 3, "invocationId": invocation_id, "error": error}).to_string();
    frame.push(RECORD_SEPARATOR);
    frame
}

/// A completion (type 3) with neither result nor error, for an upstream that answered 204 or an empty 200.
pub(crate) fn completion_empty(invocation_id: &str) -> String {
    let mut frame = serde_json::json!({"type": 3, "invocationId": invocation_id}).to_string();
    frame.push(RECORD_SEPARATOR);
    frame
}

/// A handshake reply that refuses the connection.
pub(crate) fn handshake_error(error: &str) -> String {
    let mut frame = serde_json::json!({ "error": error }).to_string();
    frame.push(RECORD_SEPARATOR);
    frame
}

/// Why a handshake was refused; the text is sent to the client as ASP.NET Core words it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("Handshake request is not valid JSON.")]
    Malformed,
    #[error("The protocol '{0}' is not supported.")]
    UnsupportedProtocol(String),
    #[error("The server does not support version {0} of the 'json' protocol.")]
    UnsupportedVersion(i64),
}

/// Parses the handshake request (without its separator). Only `json` version 1 is supported.
pub(crate) fn parse_handshake(record: &str) -> Result<(), HandshakeError> {
    #[derive(Deserialize)]
    struct Request {
        protocol: String,
        version: i64,
    }
    let request: Request = serde_json::from_str(record).map_err(|_| HandshakeError::Malformed)?;
    if request.protocol != "json" {
        return Err(HandshakeError::UnsupportedProtocol(request.protocol));
    }
    if request.version != 1 {
        return Err(HandshakeError::UnsupportedVersion(request.version));
    }
    Ok(())
}

/// A message from a connected client, reduced to what the emulator acts on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClientMessage {
    /// Type 1, or type 4 (stream invocation). Without an upstream there is nobody to run it.
    Invocation {
        invocation_id: Option<String>,
        target: String,
    },
    /// Type 6.
    Ping,
    /// Type 7: the client is leaving.
    Close,
    /// Types the emulator has no use for in serverless mode (stream items, completions, cancels, acks) and
    /// unknown types, which the protocol says to ignore.
    Ignored(i64),
}

/// Why a client message could not be read; the connection is closed with an error.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MessageError {
    #[error("the message is not a JSON object with a numeric 'type'")]
    Malformed,
    #[error("an invocation has no 'target'")]
    MissingTarget,
}

/// Parses one record (without its separator).
pub(crate) fn parse_client_message(record: &str) -> Result<ClientMessage, MessageError> {
    #[derive(Deserialize)]
    struct Envelope {
        r#type: i64,
        #[serde(rename = "invocationId")]
        invocation_id: Option<String>,
        target: Option<String>,
    }
    let envelope: Envelope = serde_json::from_str(record).map_err(|_| MessageError::Malformed)?;
    Ok(match envelope.r#type {
        1 | 4 => ClientMessage::Invocation {
            invocation_id: envelope.invocation_id,
            target: envelope.target.ok_or(MessageError::MissingTarget)?,
        },
        6 => ClientMessage::Ping,
        7 => ClientMessage::Close,
        other => ClientMessage::Ignored(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_frames_have_no_invocation_id_and_end_with_the_separator() {
        let frame = invocation(
            "newMessage",
            &[Value::from("hi"), serde_json::json!({"a": 1})],
        );
        assert_eq!(
            frame,
            "{\"type\":1,\"target\":\"newMessage\",\"arguments\":[\"hi\",{\"a\":1}]}\u{1e}"
        );
    }

    #[test]
    fn close_frames_carry_the_error_and_reconnect_flag() {
        assert_eq!(close(None, false), "{\"type\":7}\u{1e}");
        assert_eq!(
            close(Some("bye"), true),
            "{\"type\":7,\"error\":\"bye\",\"allowReconnect\":true}\u{1e}"
        );
    }

    #[test]
    fn handshake_accepts_only_json_version_1() {
        assert_eq!(
            parse_handshake("{\"protocol\":\"json\",\"version\":1}"),
            Ok(())
        );
        assert_eq!(
            parse_handshake("{\"protocol\":\"messagepack\",\"version\":1}"),
            Err(HandshakeError::UnsupportedProtocol(
                "messagepack".to_owned()
            ))
        );
        assert_eq!(
            parse_handshake("{\"protocol\":\"json\",\"version\":2}"),
            Err(HandshakeError::UnsupportedVersion(2))
        );
        assert_eq!(parse_handshake("{"), Err(HandshakeError::Malformed));
    }

    #[test]
    fn client_messages_are_parsed_into_what_the_emulator_acts_on() {
        assert_eq!(
            parse_client_message("{\"type\":6}"),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse_client_message("{\"type\":7,\"error\":null}"),
            Ok(ClientMessage::Close)
        );
        assert_eq!(
            parse_client_message(
                "{\"type\":1,\"invocationId\":\"0\",\"target\":\"send\",\"arguments\":[]}"
            ),
            Ok(ClientMessage::Invocation {
                invocation_id: Some("0".to_owned()),
                target: "send".to_owned()
            })
        );
        assert_eq!(
            parse_client_message("{\"type\":42}"),
            Ok(ClientMessage::Ignored(42))
        );
        assert_eq!(
            parse_client_message("{\"type\":1}"),
            Err(MessageError::MissingTarget)
        );
        assert_eq!(parse_client_message("[1]"), Err(MessageError::Malformed));
        assert_eq!(
            parse_client_message("{\"type\":\"1\"}"),
            Err(MessageError::Malformed)
        );
    }
}
