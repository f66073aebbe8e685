//! The REST data-plane API (docs/protocol/signalr-service.md §4): both `/api/v1/hubs/{hub}/…` and `/api/hubs/{hub}/…`
//! (2022-06-01).
//!
//! The path is parsed into an [`Operation`] first (404 or 405 when it is none), then the token is checked
//! against the request URL (401), then names (400), then the body (413, 415, 400).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::Value;
use tokio::time::Instant;

use crate::app::{AppState, QueryParams};
use crate::error::ApiError;
use crate::hub::{Excluded, Frame, Target};
use crate::names::{GroupName, HubName, UserId, check_connection_id};
use crate::protocol;

/// Largest REST body (docs/protocol/signalr-service.md §4.2).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Which API a path belongs to; a few status codes differ (docs/protocol/signalr-service.md §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApiVersion {
    V1,
    V20220601,
}

/// A REST call, parsed from method and path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Health,
    Hub {
        version: ApiVersion,
        hub: String,
        operation: Operation,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Operation {
    Broadcast,
    SendToUser(String),
    SendToGroup(String),
    SendToConnection(String),
    CloseAll,
    CloseUser(String),
    CloseGroup(String),
    CloseConnection(String),
    ConnectionExists(String),
    UserExists(String),
    GroupExists(String),
    AddConnectionToGroup {
        group: String,
        connection: String,
    },
    RemoveConnectionFromGroup {
        group: String,
        connection: String,
    },
    RemoveConnectionFromAllGroups(String),
    UserInGroup {
        user: String,
        group: String,
    },
    AddUserToGroup {
        user: String,
        group: String,
    },
    RemoveUserFromGroup {
        user: String,
        group: String,
    },
    RemoveUserFromAllGroups(String),
    /// 2026-07-01 `POST connections/:refreshAuth` (docs/protocol/signalr-identity-2026.md §1.3), handled in `refresh`.
    RefreshAuth,
    /// 2026-07-01 `POST` or `QUERY` `connections/claims`, handled in `refresh`.
    ConnectionClaims,
}

fn not_found_route() -> ApiError {
    ApiError::NotFound {
        error_code: None,
        message: "No such REST route.",
    }
}

fn parse_route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (version, hub, rest) = match segments.as_slice() {
        ["api", "v1", "health"] | ["api", "health"] => {
            return match *method {
                Method::HEAD | Method::GET => Ok(Route::Health),
                _ => Err(ApiError::MethodNotAllowed),
            };
        }
        ["api", "v1", "hubs", hub, rest @ ..] => (ApiVersion::V1, *hub, rest),
        ["api", "hubs", hub, rest @ ..] => (ApiVersion::V20220601, *hub, rest),
        _ => return Err(not_found_route()),
    };
    let is = |allowed: &[Method]| allowed.contains(method);
    let exists = [Method::GET, Method::HEAD];
    let owned = |value: &str| value.to_owned();
    let operation = match rest {
        [] | [":send"] if is(&[Method::POST]) => Operation::Broadcast,
        [":closeConnections"] if is(&[Method::POST]) => Operation::CloseAll,
        ["users", user] | ["users", user, ":send"] if is(&[Method::POST]) => {
            Operation::SendToUser(owned(user))
        }
        ["users", user] if is(&exists) => Operation::UserExists(owned(user)),
        ["users", user, ":closeConnections"] if is(&[Method::POST]) => {
            Operation::CloseUser(owned(user))
        }
        ["users", user, "groups"] if is(&[Method::DELETE]) => {
            Operation::RemoveUserFromAllGroups(owned(user))
        }
        ["users", user, "groups", group] | ["groups", group, "users", user] => {
            let (user, group) = (owned(user), owned(group));
            match *method {
                Method::PUT => Operation::AddUserToGroup { user, group },
                Method::DELETE => Operation::RemoveUserFromGroup { user, group },
                Method::GET | Method::HEAD => Operation::UserInGroup { user, group },
                _ => return Err(ApiError::MethodNotAllowed),
            }
        }
        ["groups", group] | ["groups", group, ":send"] if is(&[Method::POST]) => {
            Operation::SendToGroup(owned(group))
        }
        ["groups", group] if is(&exists) => Operation::GroupExists(owned(group)),
        ["groups", group, ":closeConnections"] if is(&[Method::POST]) => {
            Operation::CloseGroup(owned(group))
        }
        ["groups", group, "connections", connection]
        | ["connections", connection, "groups", group] => {
            let (group, connection) = (owned(group), owned(connection));
            match *method {
                Method::PUT => Operation::AddConnectionToGroup { group, connection },
                Method::DELETE => Operation::RemoveConnectionFromGroup { group, connection },
                _ => return Err(ApiError::MethodNotAllowed),
            }
        }
        ["connections", ":refreshAuth"] if version == ApiVersion::V20220601 => {
            if !is(&[Method::POST]) {
                return Err(ApiError::MethodNotAllowed);
            }
            Operation::RefreshAuth
        }
        // The design says POST, the SDK's newest test QUERY (docs/protocol/signalr-identity-2026.md §1.3): both are accepted.
        ["connections", "claims"]
            if version == ApiVersion::V20220601
                && (*method == Method::POST || method.as_str() == "QUERY") =>
        {
            Operation::ConnectionClaims
        }
        ["connections", connection] | ["connections", connection, ":send"]
            if is(&[Method::POST]) =>
        {
            Operation::SendToConnection(owned(connection))
        }
        ["connections", connection] if is(&exists) => {
            Operation::ConnectionExists(owned(connection))
        }
        ["connections", connection] if is(&[Method::DELETE]) => {
            Operation::CloseConnection(owned(connection))
        }
        ["connections", connection, "groups"] if is(&[Method::DELETE]) => {
            Operation::RemoveConnectionFromAllGroups(owned(connection))
        }
        // A known shape with another method.
        []
        | [":send" | ":closeConnections"]
        | ["users" | "groups" | "connections", _]
        | [
            "users" | "groups" | "connections",
            _,
            ":send" | ":closeConnections",
        ]
        | ["users" | "connections", _, "groups"] => return Err(ApiError::MethodNotAllowed),
        _ => return Err(not_found_route()),
    };
    Ok(Route::Hub {
        version,
        hub: hub.to_owned(),
        operation,
    })
}

/// Every request no other route took: the REST API, or 404.
pub(crate) async fn handle(
    State(app): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = handle_route(&app, &method, &uri, &headers, body).await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    tracing::debug!(%method, path = uri.path(), status = response.status().as_u16(), "REST call");
    response
}

async fn handle_route(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (version, hub, operation) = match parse_route(method, uri.path())? {
        Route::Health => return Ok(StatusCode::OK.into_response()),
        Route::Hub {
            version,
            hub,
            operation,
        } => (version, hub, operation),
    };
    crate::entra::authorize_rest(app, method, uri, headers).await?;
    let query = QueryParams::parse(uri.query());
    let hub = HubName::parse(&hub, query.single("application")?)?;
    let excluded = Excluded::new(query.all("excluded"));
    let reason = query.last("reason");
    let now = Instant::now();
    let v1_or = |v1: StatusCode, v2022: StatusCode| {
        if version == ApiVersion::V1 { v1 } else { v2022 }
    };

    let status = match operation {
        Operation::Broadcast => send(app, &hub, Target::All, &excluded, headers, body).await?,
        Operation::SendToUser(user) => {
            let user = UserId::parse(&user)?;
            send(app, &hub, Target::User(&user), &excluded, headers, body).await?
        }
        Operation::SendToGroup(group) => {
            let group = GroupName::parse(&group)?;
            send(app, &hub, Target::Group(&group), &excluded, headers, body).await?
        }
        Operation::SendToConnection(connection) => {
            let connection = check_connection_id(&connection)?;
            send(
                app,
                &hub,
                Target::Connection(connection),
                &excluded,
                headers,
                body,
            )
            .await?
        }
        Operation::CloseAll => close(app, &hub, Target::All, &excluded, reason),
        Operation::CloseUser(user) => {
            let user = UserId::parse(&user)?;
            close(app, &hub, Target::User(&user), &excluded, reason)
        }
        Operation::CloseGroup(group) => {
            let group = GroupName::parse(&group)?;
            close(app, &hub, Target::Group(&group), &excluded, reason)
        }
        Operation::CloseConnection(connection) => {
            let connection = check_connection_id(&connection)?;
            let closed = app
                .registry
                .existing_hub(&hub)
                .map(|hub| {
                    hub.close(
                        Target::Connection(connection),
                        &Excluded::new(Vec::new()),
                        reason,
                    )
                })
                .unwrap_or(0);
            if closed == 0 {
                return Err(connection_not_existed("Warning.Connection.NotExisted"));
            }
            v1_or(StatusCode::ACCEPTED, StatusCode::OK)
        }
        Operation::ConnectionExists(connection) => {
            let connection = check_connection_id(&connection)?;
            let exists = app
                .registry
                .existing_hub(&hub)
                .is_some_and(|hub| hub.connection_exists(connection));
            if !exists {
                return Err(connection_not_existed("Warning.Connection.NotExisted"));
            }
            StatusCode::OK
        }
        Operation::UserExists(user) => {
            let user = UserId::parse(&user)?;
            if !app
                .registry
                .existing_hub(&hub)
                .is_some_and(|hub| hub.user_exists(&user))
            {
                return Err(ApiError::NotFound {
                    error_code: Some("Warning.User.NotExisted"),
                    message: "The user has no connection.",
                });
            }
            StatusCode::OK
        }
        Operation::GroupExists(group) => {
            let group = GroupName::parse(&group)?;
            if !app
                .registry
                .existing_hub(&hub)
                .is_some_and(|hub| hub.group_exists(&group))
            {
                return Err(ApiError::NotFound {
                    error_code: Some("Warning.Group.NotExisted"),
                    message: "The group has no connection.",
                });
            }
            StatusCode::OK
        }
        Operation::AddConnectionToGroup { group, connection } => {
            let group = GroupName::parse(&group)?;
            let connection = check_connection_id(&connection)?;
            let added = app
                .registry
                .existing_hub(&hub)
                .is_some_and(|hub| hub.add_connection_to_group(connection, &group));
            if !added {
                return Err(connection_not_existed("Error.Connection.NotExisted"));
            }
            tracing::debug!(
                hub = hub.as_str(),
                connection,
                group = group.as_str(),
                "connection added to group"
            );
            StatusCode::OK
        }
        Operation::RemoveConnectionFromGroup { group, connection } => {
            let group = GroupName::parse(&group)?;
            let connection = check_connection_id(&connection)?;
            let removed = app
                .registry
                .existing_hub(&hub)
                .is_some_and(|hub| hub.remove_connection_from_group(connection, &group));
            if !removed {
                return Err(connection_not_existed("Error.Connection.NotExisted"));
            }
            StatusCode::OK
        }
        Operation::RemoveConnectionFromAllGroups(connection) => {
            let connection = check_connection_id(&connection)?;
            if let Some(hub) = app.registry.existing_hub(&hub) {
                hub.remove_connection_from_all_groups(connection);
            }
            StatusCode::OK
        }
        Operation::UserInGroup { user, group } => {
            let user = UserId::parse(&user)?;
            let group = GroupName::parse(&group)?;
            let member = app
                .registry
                .existing_hub(&hub)
                .is_some_and(|hub| hub.is_user_in_group(&user, &group, now));
            if !member {
                return Err(ApiError::NotFound {
                    error_code: Some("Info.User.NotInGroup"),
                    message: "The user is not in the group.",
                });
            }
            StatusCode::OK
        }
        Operation::AddUserToGroup { user, group } => {
            let user = UserId::parse(&user)?;
            let group = GroupName::parse(&group)?;
            let ttl = parse_ttl(query.single("ttl")?)?;
            app.registry
                .hub(&hub)
                .add_user_to_group(&user, &group, ttl, now);
            tracing::debug!(
                hub = hub.as_str(),
                user = user.as_str(),
                group = group.as_str(),
                ?ttl,
                "user added to group"
            );
            v1_or(StatusCode::ACCEPTED, StatusCode::OK)
        }
        Operation::RemoveUserFromGroup { user, group } => {
            let user = UserId::parse(&user)?;
            let group = GroupName::parse(&group)?;
            if let Some(hub) = app.registry.existing_hub(&hub) {
                hub.remove_user_from_group(&user, &group);
            }
            v1_or(StatusCode::ACCEPTED, StatusCode::NO_CONTENT)
        }
        Operation::RefreshAuth => {
            return crate::refresh::refresh_auth(app, &hub, &query, headers, body).await;
        }
        Operation::ConnectionClaims => {
            return crate::refresh::connection_claims(app, &hub, &query, headers, body).await;
        }
        Operation::RemoveUserFromAllGroups(user) => {
            let user = UserId::parse(&user)?;
            if let Some(hub) = app.registry.existing_hub(&hub) {
                hub.remove_user_from_all_groups(&user);
            }
            v1_or(StatusCode::OK, StatusCode::NO_CONTENT)
        }
    };
    Ok(status.into_response())
}

fn connection_not_existed(code: &'static str) -> ApiError {
    ApiError::NotFound {
        error_code: Some(code),
        message: "The connection does not exist.",
    }
}

/// `ttl` is a non-negative number of seconds (int32 in the swagger).
fn parse_ttl(ttl: Option<&str>) -> Result<Option<u32>, ApiError> {
    ttl.map(|value| {
        value
            .parse::<i32>()
            .ok()
            .and_then(|seconds| u32::try_from(seconds).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "The query parameter 'ttl' must be a non-negative integer.".to_owned(),
                )
            })
    })
    .transpose()
}

async fn send(
    app: &AppState,
    hub: &HubName,
    target: Target<'_>,
    excluded: &Excluded,
    headers: &HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let (target_method, arguments) = read_payload(headers, body).await?;
    let frame = Frame::from(protocol::invocation(&target_method, &arguments));
    // A hub nobody has connected to has nobody to deliver to; it is not created just for this.
    let Some(hub_state) = app.registry.existing_hub(hub) else {
        tracing::info!(
            "delivered `{target_method}` to {target} of hub {:?}: 0 connections",
            hub.as_str()
        );
        return Ok(StatusCode::ACCEPTED);
    };
    let delivery = hub_state.deliver(target, excluded, frame);
    let delivered = delivery.finish(app.config.timings.slow_client_grace).await;
    // Info, not debug: a developer watching the terminal wants to see each message arrive.
    tracing::info!(
        "delivered `{target_method}` to {target} of hub {:?}: {delivered} connection(s)",
        hub.as_str()
    );
    Ok(StatusCode::ACCEPTED)
}

fn close(
    app: &AppState,
    hub: &HubName,
    target: Target<'_>,
    excluded: &Excluded,
    reason: Option<&str>,
) -> StatusCode {
    let closed = app
        .registry
        .existing_hub(hub)
        .map(|hub| hub.close(target, excluded, reason))
        .unwrap_or(0);
    tracing::debug!(hub = hub.as_str(), ?target, closed, "REST close");
    StatusCode::NO_CONTENT
}

/// Reads a JSON object body: JSON content type (or none), at most 1 MB, not empty (docs/protocol/signalr-service.md §4.2).
pub(crate) async fn read_json_object(
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type
            .to_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !content_type.contains("json") && !content_type.starts_with("text/plain") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    // The only way reading a bounded body fails for a client still listening is the size limit.
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(
            "The request needs a JSON body.".to_owned(),
        ));
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(ApiError::BadRequest(
            "The body must be a JSON object.".to_owned(),
        ));
    };
    Ok(object)
}

/// Reads `{"target": …, "arguments": […]}` with property names matched case-insensitively (docs/protocol/signalr-service.md §4.2).
async fn read_payload(headers: &HeaderMap, body: Body) -> Result<(String, Vec<Value>), ApiError> {
    let payload = read_json_object(headers, body).await?;
    let find = |name: &str| {
        payload
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let target = match find("target") {
        Some(Value::String(target)) if !target.is_empty() => target.clone(),
        _ => {
            return Err(ApiError::BadRequest(
                "The body needs a non-empty string 'target'.".to_owned(),
            ));
        }
    };
    let arguments = match find("arguments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(arguments)) => arguments.clone(),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "'arguments' must be an array.".to_owned(),
            ));
        }
    };
    Ok((target, arguments))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(method: Method, path: &str) -> Result<Operation, String> {
        match parse_route(&method, path) {
            Ok(Route::Hub { operation, .. }) => Ok(operation),
            Ok(Route::Health) => Err("health".to_owned()),
            Err(error) => Err(error.to_string()),
        }
    }

    #[test]
    fn both_path_orders_and_both_api_versions_parse() {
        let expected = Operation::AddUserToGroup {
            user: "alice".to_owned(),
            group: "room 1".to_owned(),
        };
        for path in [
            "/api/v1/hubs/chat/groups/room%201/users/alice",
            "/api/v1/hubs/chat/users/alice/groups/room%201",
            "/api/hubs/chat/users/alice/groups/room%201",
        ] {
            assert_eq!(operation(Method::PUT, path), Ok(expected.clone()), "{path}");
        }
    }

    #[test]
    fn percent_encoded_slashes_stay_inside_a_name() {
        assert_eq!(
            operation(Method::POST, "/api/hubs/chat/groups/a%2Fb/:send"),
            Ok(Operation::SendToGroup("a/b".to_owned()))
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert!(matches!(
            parse_route(&Method::POST, "/api/hubs/chat/nothing"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            parse_route(&Method::GET, "/"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            parse_route(&Method::PUT, "/api/hubs/chat/:send"),
            Err(ApiError::MethodNotAllowed)
        ));
        assert!(matches!(
            parse_route(&Method::PATCH, "/api/hubs/chat/users/u/groups/g"),
            Err(ApiError::MethodNotAllowed)
        ));
        assert_eq!(
            parse_route(&Method::HEAD, "/api/v1/health").ok(),
            Some(Route::Health)
        );
    }

    #[test]
    fn ttl_must_be_a_non_negative_int32() {
        assert_eq!(parse_ttl(None).ok(), Some(None));
        assert_eq!(parse_ttl(Some("0")).ok(), Some(Some(0)));
        assert_eq!(parse_ttl(Some("60")).ok(), Some(Some(60)));
        for bad in ["-1", "x", "2147483648", ""] {
            assert!(parse_ttl(Some(bad)).is_err(), "accepted ttl {bad:?}");
        }
    }
}
