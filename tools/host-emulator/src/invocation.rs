//! The custom-handler wire format, host side (docs/protocol/functions-host.md §1 and §3.1): the
//! `{"Data","Metadata"}`
//! request and the `{"Outputs","Logs","ReturnValue"}` response.
//!
//! These types are written from `docs/protocol/functions-host.md`, not shared with the handler
//! crate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::binding_data::{BindingData, body_property_value};
use crate::routes::RouteValues;

/// The caller's HTTP request, as the host sees it.
#[derive(Debug, Clone)]
pub struct IncomingRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// `{scheme}://{Host}{Path}{QueryString}`.
    pub url: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// Header names as Kestrel would store them, values in order (one entry per value).
    pub headers: Vec<(String, String)>,
    /// Route values of the matched template.
    pub route_values: RouteValues,
    /// The body bytes.
    pub body: bytes::Bytes,
    /// The `Content-Length` header, when sent.
    pub content_length: Option<u64>,
}

/// What the handler answered, read case-insensitively as Newtonsoft does.
#[derive(Debug, Clone, Default)]
pub struct HandlerResult {
    /// `Outputs` (keys compared case-sensitively with binding names later).
    pub outputs: Map<String, Value>,
    /// `Logs`.
    pub logs: Vec<String>,
    /// `ReturnValue`.
    pub return_value: Value,
}

impl IncomingRequest {
    /// The first value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn has_body(&self) -> bool {
        self.content_length.is_some_and(|length| length > 0)
    }

    /// `Query` as a `{name: "v1,v2"}` object (ASP.NET's query collection is case-insensitive).
    fn query_object(&self) -> Map<String, Value> {
        joined(&self.query)
    }

    /// `Headers` as `{name: ["v1","v2"]}`.
    fn headers_arrays(&self) -> Map<String, Value> {
        let mut grouped: Vec<(String, Vec<Value>)> = Vec::new();
        for (name, value) in &self.headers {
            match grouped
                .iter_mut()
                .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
            {
                Some((_, values)) => values.push(Value::String(value.clone())),
                None => grouped.push((name.clone(), vec![Value::String(value.clone())])),
            }
        }
        grouped
            .into_iter()
            .map(|(name, values)| (name, Value::Array(values)))
            .collect()
    }
}

fn joined(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut map: Map<String, Value> = Map::new();
    for (name, value) in pairs {
        match map
            .iter_mut()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
        {
            Some((_, Value::String(existing))) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                map.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    map
}

/// Builds the HTTP trigger's binding data ([EXT-HTTP] `GetRequestBindingData`,
/// docs/protocol/functions-host.md §1.2).
pub fn binding_data(
    function_name: &str,
    request: &IncomingRequest,
    now: std::time::SystemTime,
) -> BindingData {
    let mut data = BindingData::default();
    if request.has_body() {
        let text = decode_text(&request.body);
        let trimmed = text.trim();
        if trimmed.starts_with('{')
            && trimmed.ends_with('}')
            && let Ok(Value::Object(properties)) = serde_json::from_str::<Value>(trimmed)
        {
            for (name, value) in &properties {
                if let Some(value) = body_property_value(value) {
                    data.set(name, value);
                }
            }
        }
    }
    for (name, value) in joined(&request.query) {
        if !name.eq_ignore_ascii_case("code") {
            data.set(&name, value);
        }
    }
    for (name, value) in &request.route_values {
        if let Some(value) = value {
            data.set(name, Value::String(value.clone()));
        }
    }
    data.add_if_absent("Query", Value::Object(request.query_object()));
    data.add_if_absent("Headers", Value::Object(joined(&request.headers)));
    data.set(
        "sys",
        json!({
            "MethodName": function_name,
            "UtcNow": format_utc(now),
            "RandGuid": new_guid(),
        }),
    );
    data
}

/// The invocation body: `Data` (the trigger's request object, then inputs) and `Metadata`
/// (binding data), with every string value JSON-encoded once more (docs/protocol/functions-host.md
/// §0.1).
pub fn request_envelope(
    trigger_name: &str,
    request: &IncomingRequest,
    data: &BindingData,
    string_inputs: &[(String, String)],
) -> Value {
    let mut req = Map::new();
    req.insert("Url".into(), json!(request.url));
    req.insert("Method".into(), json!(request.method));
    req.insert("Query".into(), Value::Object(request.query_object()));
    req.insert("Headers".into(), Value::Object(request.headers_arrays()));
    let params: Map<String, Value> = request
        .route_values
        .iter()
        .map(|(name, value)| (name.clone(), json!(value)))
        .collect();
    req.insert("Params".into(), Value::Object(params));
    req.insert("Identities".into(), json!([]));
    if request.has_body() {
        let body = if is_octet_or_multipart(request.header("Content-Type")) {
            STANDARD.encode(&request.body)
        } else {
            decode_text(&request.body)
        };
        req.insert("Body".into(), json!(body));
    }
    let mut data_map = Map::new();
    data_map.insert(trigger_name.to_owned(), Value::Object(req));
    for (name, value) in string_inputs {
        data_map.insert(name.clone(), double_encode(value));
    }
    let metadata: Map<String, Value> = data
        .entries()
        .iter()
        .map(|(name, value)| {
            let wire = match value {
                Value::String(text) => double_encode(text),
                other => other.clone(),
            };
            (name.clone(), wire)
        })
        .collect();
    json!({ "Data": data_map, "Metadata": metadata })
}

/// `Utility.IsMediaTypeOctetOrMultipart` (docs/protocol/functions-host.md §1.3, errata): the parsed
/// media type, parameters
/// ignored, equals `application/octet-stream` or contains `multipart/` (both case-insensitive).
/// So `application/octet-stream-v2` and `application/json; boundary=multipart` are text.
pub fn is_octet_or_multipart(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type == "application/octet-stream" || media_type.contains("multipart/")
}

/// A text body as the host reads it (docs/protocol/functions-host.md §1.3, errata): UTF-8 with BOM
/// detection, so a UTF-8
/// BOM is stripped and UTF-16 / UTF-32 BOMs select that encoding (invalid sequences become
/// U+FFFD, as .NET's decoders do).
pub fn decode_text(bytes: &[u8]) -> String {
    fn units<const N: usize>(bytes: &[u8], read: fn([u8; N]) -> u32) -> impl Iterator<Item = u32> {
        bytes
            .chunks(N)
            .map(move |chunk| match <[u8; N]>::try_from(chunk) {
                Ok(array) => read(array),
                Err(_) => 0xFFFD,
            })
    }
    let utf16 = |code_units: Vec<u16>| String::from_utf16_lossy(&code_units);
    let utf32 = |code_points: Vec<u32>| {
        code_points
            .into_iter()
            .map(|point| char::from_u32(point).unwrap_or('\u{FFFD}'))
            .collect::<String>()
    };
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        String::from_utf8_lossy(rest).into_owned()
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE, 0x00, 0x00]) {
        utf32(units(rest, u32::from_le_bytes).collect())
    } else if let Some(rest) = bytes.strip_prefix(&[0x00, 0x00, 0xFE, 0xFF]) {
        utf32(units(rest, u32::from_be_bytes).collect())
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        utf16(
            units(rest, |pair: [u8; 2]| u32::from(u16::from_le_bytes(pair)))
                .map(|unit| u16::try_from(unit).unwrap_or(0xFFFD))
                .collect(),
        )
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        utf16(
            units(rest, |pair: [u8; 2]| u32::from(u16::from_be_bytes(pair)))
                .map(|unit| u16::try_from(unit).unwrap_or(0xFFFD))
                .collect(),
        )
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// `JsonConvert.SerializeObject(string)`: the JSON text of the string, carried as a string.
pub fn double_encode(text: &str) -> Value {
    Value::String(Value::String(text.to_owned()).to_string())
}

/// Reads the handler's answer by the host's rules (docs/protocol/functions-host.md §3.1): a 2xx
/// status, a JSON content
/// type, and a JSON object. Anything else fails the invocation.
pub fn parse_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<HandlerResult, String> {
    if !(200..300).contains(&status) {
        return Err(format!(
            "Response status code does not indicate success: {status} (the handler must answer 2xx)"
        ));
    }
    let media_type = content_type
        .unwrap_or("application/octet-stream")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type != "application/json" && media_type != "text/json" {
        return Err(format!(
            "Invalid HttpResponseMessage: no MediaTypeFormatter is available to read an object of type \
             'HttpScriptInvocationResult' from content with media type '{media_type}'"
        ));
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() || text.trim() == "null" {
        return Err(
            "the handler answered an empty/null body; the real host would wait until functionTimeout, \
             the emulator fails the invocation instead"
                .into(),
        );
    }
    let value: Value = serde_json::from_str(&text).map_err(|error| {
        format!("Invalid HttpResponseMessage: the body is not valid JSON ({error})")
    })?;
    let Value::Object(envelope) = value else {
        return Err("Invalid HttpResponseMessage: the body is not a JSON object".into());
    };
    let field = |name: &str| {
        envelope
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let outputs = match field("Outputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(outputs)) => outputs,
        Some(_) => return Err("Invalid HttpResponseMessage: `Outputs` is not an object".into()),
    };
    let logs = match field("Logs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => text,
                other => other.to_string(),
            })
            .collect(),
        Some(_) => return Err("Invalid HttpResponseMessage: `Logs` is not an array".into()),
    };
    Ok(HandlerResult {
        outputs,
        logs,
        return_value: field("ReturnValue").unwrap_or(Value::Null),
    })
}

/// A random version-4 GUID in .NET's `D` format.
pub fn new_guid() -> String {
    let mut bytes = [0u8; 16];
    // Without an OS random source the host could not run anyway; zeros keep it going.
    let _ = getrandom::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `DateTime.UtcNow` as JSON.NET writes it: `2025-05-01T10:00:00.1234567Z`.
pub fn format_utc(time: std::time::SystemTime) -> String {
    let elapsed = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = elapsed.as_secs();
    let ticks = elapsed.subsec_nanos() / 100;
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ticks:07}Z",
        second_of_day / 3600,
        (second_of_day / 60) % 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str, content_type: &str, query: &[(&str, &str)]) -> IncomingRequest {
        let mut headers = vec![("Authorization".to_owned(), "Bearer real".to_owned())];
        if !content_type.is_empty() {
            headers.push(("Content-Type".into(), content_type.into()));
        }
        IncomingRequest {
            method: "POST".into(),
            url: "http://localhost:7071/api/negotiate?negotiateVersion=1".into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            headers,
            route_values: vec![("group".into(), Some("room-1".into()))],
            body: bytes::Bytes::from(body.to_owned()),
            content_length: Some(body.len() as u64),
        }
    }

    #[test]
    fn only_an_exact_octet_stream_or_a_multipart_media_type_is_sent_as_base64() {
        for binary in [
            "application/octet-stream",
            "APPLICATION/OCTET-STREAM; foo=bar",
            "multipart/form-data; boundary=x",
        ] {
            assert!(is_octet_or_multipart(Some(binary)), "{binary}");
        }
        for text in [
            "application/octet-stream-v2",
            "application/json; boundary=multipart",
            "application/json; boundary=multipart/x",
            "text/plain",
        ] {
            assert!(!is_octet_or_multipart(Some(text)), "{text}");
        }
        assert!(!is_octet_or_multipart(None));
        let envelope = request_envelope(
            "req",
            &request("{\"a\":1}", "application/octet-stream-v2", &[]),
            &BindingData::default(),
            &[],
        );
        assert_eq!(envelope["Data"]["req"]["Body"], "{\"a\":1}");
    }

    #[test]
    fn text_bodies_lose_a_utf8_bom_and_honour_utf16_and_utf32_boms() {
        assert_eq!(decode_text(b"\xEF\xBB\xBF{\"a\":1}"), "{\"a\":1}");
        assert_eq!(decode_text(b"\xFF\xFEh\0i\0"), "hi");
        assert_eq!(decode_text(b"\xFE\xFF\0h\0i"), "hi");
        assert_eq!(decode_text(b"\xFF\xFE\0\0h\0\0\0"), "h");
        assert_eq!(decode_text(b"\0\0\xFE\xFF\0\0\0h"), "h");
        assert_eq!(decode_text(b"plain"), "plain");
        let mut with_bom = request("", "application/json", &[]);
        with_bom.body = bytes::Bytes::from_static(b"\xEF\xBB\xBF{\"name\":\"g\"}");
        with_bom.content_length = Some(with_bom.body.len() as u64);
        let data = binding_data("f", &with_bom, std::time::SystemTime::now());
        let envelope = request_envelope("req", &with_bom, &data, &[]);
        assert_eq!(envelope["Data"]["req"]["Body"], "{\"name\":\"g\"}");
        assert_eq!(envelope["Metadata"]["name"], "\"g\"");
    }

    #[test]
    fn absent_optional_route_values_are_null_in_params() {
        let mut absent = request("", "", &[]);
        absent.route_values = vec![("group".into(), Some("g".into())), ("path".into(), None)];
        let envelope = request_envelope("req", &absent, &BindingData::default(), &[]);
        assert_eq!(
            envelope["Data"]["req"]["Params"],
            json!({"group": "g", "path": null})
        );
    }

    #[test]
    fn metadata_double_encodes_strings_and_lets_the_body_override_headers() {
        let request = request(
            r#"{"headers":{"authorization":"Bearer forged"},"n":1,"list":[1]}"#,
            "application/json",
            &[("negotiateVersion", "1"), ("code", "secret")],
        );
        let data = binding_data("negotiate", &request, std::time::SystemTime::now());
        let envelope = request_envelope(
            "req",
            &request,
            &data,
            &[("connectionInfo".into(), "{\n}".into())],
        );
        let metadata = &envelope["Metadata"];
        let keys: Vec<&str> = metadata
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["headers", "n", "negotiateVersion", "group", "Query", "sys"]
        );
        assert_eq!(
            metadata["headers"],
            json!({"authorization": "Bearer forged"})
        );
        assert_eq!(metadata["n"], json!("\"1\""));
        assert_eq!(metadata["negotiateVersion"], json!("\"1\""));
        assert_eq!(
            metadata["Query"],
            json!({"negotiateVersion": "1", "code": "secret"})
        );
        assert_eq!(metadata["sys"]["MethodName"], json!("negotiate"));
        let req = &envelope["Data"]["req"];
        assert_eq!(req["Headers"]["Authorization"], json!(["Bearer real"]));
        assert_eq!(req["Params"], json!({"group": "room-1"}));
        assert_eq!(
            req["Body"],
            json!(r#"{"headers":{"authorization":"Bearer forged"},"n":1,"list":[1]}"#)
        );
        assert_eq!(envelope["Data"]["connectionInfo"], json!("\"{\\n}\""));
    }

    #[test]
    fn bodies_are_absent_without_length_and_base64_for_binary() {
        let mut chunked = request("{}", "application/json", &[]);
        chunked.content_length = None;
        let data = binding_data("f", &chunked, std::time::SystemTime::now());
        assert!(
            request_envelope("req", &chunked, &data, &[])["Data"]["req"]
                .get("Body")
                .is_none()
        );
        let binary = request("\u{1}\u{2}", "application/octet-stream", &[]);
        let data = binding_data("f", &binary, std::time::SystemTime::now());
        assert_eq!(
            request_envelope("req", &binary, &data, &[])["Data"]["req"]["Body"],
            json!("AQI=")
        );
    }

    #[test]
    fn responses_must_be_2xx_json_objects() {
        assert!(parse_response(500, Some("application/json"), b"{}").is_err());
        assert!(parse_response(200, Some("text/plain"), b"{}").is_err());
        assert!(parse_response(200, None, b"{}").is_err());
        assert!(parse_response(200, Some("application/json"), b"null").is_err());
        assert!(parse_response(200, Some("application/json"), b"[1]").is_err());
        assert!(parse_response(200, Some("application/json"), b"{oops").is_err());
        let result = parse_response(
            200,
            Some("application/json; charset=utf-8"),
            br#"{"outputs":{"res":{}},"logs":["a",1],"returnValue":null}"#,
        )
        .expect("valid");
        assert!(result.outputs.contains_key("res"));
        assert_eq!(result.logs, ["a", "1"]);
    }

    #[test]
    fn utc_times_are_formatted_like_json_net() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::new(1_746_093_600, 123_456_700);
        assert_eq!(format_utc(time), "2025-05-01T10:00:00.1234567Z");
        assert_eq!(new_guid().len(), 36);
    }
}
