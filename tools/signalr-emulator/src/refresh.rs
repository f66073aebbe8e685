//! The 2026-07-01 authentication-refresh routes (docs/protocol/signalr-identity-2026.md §1.3):
//! `POST /api/hubs/{hub}/connections/:refreshAuth` and `POST|QUERY /api/hubs/{hub}/connections/claims`.
//!
//! Both name the connection by its negotiate v1 connection token, in the body (never the URL), and are
//! authorised by a REST token like every other route. The token is never logged.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::app::{AppState, QueryParams};
use crate::error::ApiError;
use crate::lifetime::{Claim, NewExpiry, RefreshError};
use crate::names::HubName;
use crate::rest::read_json_object;
use crate::unix_now;

/// The only api-version these routes exist in.
const API_VERSION: &str = "2026-07-01";

/// Longest connection token accepted; the emulator's are 43 characters.
const MAX_CONNECTION_TOKEN_CHARS: usize = 1024;

/// `DateTimeOffset.MaxValue` (9999-12-31T23:59:59.9999999Z) in unix seconds: "keep the current deadline".
const MAX_VALUE_UNIX_SECONDS: i64 = 253_402_300_799;

/// `POST /api/hubs/{hub}/connections/:refreshAuth?api-version=2026-07-01`.
pub(crate) async fn refresh_auth(
    app: &AppState,
    hub: &HubName,
    query: &QueryParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_api_version(query)?;
    let request = read_json_object(headers, body).await?;
    let connection_token = connection_token(&request)?;
    let expire = match find(&request, "expireTime") {
        Some(Value::String(text)) => parse_expire_time(text).map_err(ApiError::BadRequest)?,
        Some(_) => {
            return Err(bad(
                "'expireTime' must be an ISO 8601 date and time string.",
            ));
        }
        None => return Err(bad("The body needs 'expireTime'.")),
    };
    let claims = match find(&request, "claims") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(parse_claims(items)?),
        Some(_) => return Err(bad("'claims' must be an array of {\"type\", \"value\"}.")),
    };
    let replaced = claims.is_some();
    let claims = app
        .live
        .refresh(hub, connection_token, claims, expire, unix_now())
        .map_err(refresh_error)?;
    tracing::debug!(
        hub = hub.as_str(),
        replaced_claims = replaced,
        "connection authentication refreshed"
    );
    Ok(axum::Json(json!({ "claims": claims })).into_response())
}

/// `POST` (or `QUERY`) `/api/hubs/{hub}/connections/claims?api-version=2026-07-01`.
pub(crate) async fn connection_claims(
    app: &AppState,
    hub: &HubName,
    query: &QueryParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_api_version(query)?;
    let request = read_json_object(headers, body).await?;
    let connection_token = connection_token(&request)?;
    let claims = app
        .live
        .claims(hub, connection_token)
        .map_err(refresh_error)?;
    Ok(axum::Json(json!({ "claims": claims })).into_response())
}

fn bad(message: &str) -> ApiError {
    ApiError::BadRequest(message.to_owned())
}

fn require_api_version(query: &QueryParams) -> Result<(), ApiError> {
    match query.single("api-version")? {
        Some(API_VERSION) => Ok(()),
        _ => Err(ApiError::BadRequest(format!(
            "This operation needs api-version={API_VERSION}."
        ))),
    }
}

fn refresh_error(error: RefreshError) -> ApiError {
    match error {
        RefreshError::NotFound => ApiError::NotFound {
            error_code: Some("ConnectionNotFound"),
            message: "No live connection in this hub has that connection token.",
        },
        RefreshError::UserMismatch => ApiError::ConnectionUserMismatch,
        RefreshError::Invalid(message) => ApiError::BadRequest(message),
    }
}

/// A body property, matched case-insensitively as the service's JSON binding does (docs/protocol/signalr-service.md §4.2).
fn find<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn connection_token(request: &Map<String, Value>) -> Result<&str, ApiError> {
    match find(request, "connectionToken") {
        Some(Value::String(token))
            if !token.is_empty() && token.len() <= MAX_CONNECTION_TOKEN_CHARS =>
        {
            Ok(token)
        }
        _ => Err(bad("The body needs a non-empty string 'connectionToken'.")),
    }
}

fn parse_claims(items: &[Value]) -> Result<Vec<Claim>, ApiError> {
    items
        .iter()
        .map(|item| {
            let invalid =
                || bad("Each claim must be {\"type\": non-empty string, \"value\": string}.");
            let Value::Object(item) = item else {
                return Err(invalid());
            };
            match (find(item, "type"), find(item, "value")) {
                (Some(Value::String(kind)), Some(Value::String(value))) if !kind.is_empty() => {
                    Ok(Claim::new(kind.as_str(), value.as_str()))
                }
                _ => Err(invalid()),
            }
        })
        .collect()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, the way .NET writes a `DateTimeOffset`, to unix
/// seconds (the fraction is dropped). A time without an offset is ambiguous and refused.
/// `DateTimeOffset.MaxValue` means "keep the current deadline".
fn parse_expire_time(text: &str) -> Result<NewExpiry, String> {
    let invalid = || {
        "'expireTime' must be an ISO 8601 date and time with an offset, like 2026-07-01T12:00:00Z."
            .to_owned()
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(invalid());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &bytes[range];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(invalid());
        }
        Ok(part
            .iter()
            .fold(0_i64, |total, digit| total * 10 + i64::from(digit - b'0')))
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return Err(invalid());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(invalid());
            }
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 14 || minutes > 59 {
                return Err(invalid());
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return Err(invalid()),
    };
    let valid = year >= 1
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    if !valid {
        return Err(invalid());
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    if seconds >= MAX_VALUE_UNIX_SECONDS {
        return Ok(NewExpiry::Keep);
    }
    Ok(NewExpiry::At(seconds))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_times_in_the_dotnet_shapes_parse_to_unix_seconds() {
        for (text, expected) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-07-01T12:00:00Z", 1_782_907_200),
            ("2026-07-01T12:00:00.1234567+00:00", 1_782_907_200),
            ("2026-07-01T14:00:00+02:00", 1_782_907_200),
            ("2026-07-01T10:30:00-01:30", 1_782_907_200),
            ("2024-02-29T00:00:00z", 1_709_164_800),
        ] {
            assert_eq!(
                parse_expire_time(text),
                Ok(NewExpiry::At(expected)),
                "{text}"
            );
        }
        assert_eq!(
            parse_expire_time("9999-12-31T23:59:59.9999999+00:00"),
            Ok(NewExpiry::Keep)
        );
    }

    #[test]
    fn malformed_expire_times_are_refused() {
        for text in [
            "",
            "2026-07-01",
            "2026-07-01T12:00:00",
            "2026-07-01 12:00:00Z",
            "2026-13-01T12:00:00Z",
            "2026-02-29T12:00:00Z",
            "2026-07-01T24:00:00Z",
            "2026-07-01T12:60:00Z",
            "2026-07-01T12:00:60Z",
            "2026-07-01T12:00:00.Z",
            "2026-07-01T12:00:00+15:00",
            "2026-07-01T12:00:00+0200",
            "0000-01-01T00:00:00Z",
            "+026-07-01T12:00:00Z",
            "2026-07-01T12:00:00Zjunk",
            "２０２６-07-01T12:00:00Z",
            "1782907200",
        ] {
            assert!(parse_expire_time(text).is_err(), "accepted {text:?}");
        }
    }
}
