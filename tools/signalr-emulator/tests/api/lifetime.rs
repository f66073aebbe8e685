//! Close on authentication expiration (`asrs.s.coae` / `asrs.s.aeo`) and the 2026-07-01 refresh routes
//! (docs/protocol/signalr-identity-2026.md §1.1, §1.3).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalr_emulator::AUTH_EXPIRED_CLOSE_REASON;

use crate::helpers::{TestApp, TestClient, now, spawn_app};

const REFRESH: &str = "/api/hubs/chat/connections/:refreshAuth?api-version=2026-07-01";
const CLAIMS: &str = "/api/hubs/chat/connections/claims?api-version=2026-07-01";

/// Claims that close the connection at `deadline` (unix seconds), as the SDK writes them.
fn closing_at(user: &str, deadline: i64) -> Value {
    json!({"asrs.s.uid": user, "asrs.s.coae": "true", "asrs.s.aeo": deadline.to_string()})
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's civil-from-days), written independently of
/// the emulator's parser.
fn iso(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let seconds = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app.rest(Method::POST, path, Some(body)).await;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn claim(kind: &str, value: &str) -> Value {
    json!({"type": kind, "value": value})
}

fn claims_of(body: &Value) -> Vec<Value> {
    body["claims"].as_array().cloned().unwrap_or_default()
}

/// Expects the close message of an expired authentication, then the end of the socket.
async fn expect_auth_expired_close(client: &mut TestClient) {
    let close = client.expect_close_message().await;
    assert_eq!(
        close,
        json!({"type": 7, "error": AUTH_EXPIRED_CLOSE_REASON, "allowReconnect": true})
    );
    assert!(client.next_record().await.is_none(), "the socket closes");
}

/// Sends a marker to `client` alone and checks it is the next thing it gets (not a close message).
async fn assert_still_open(app: &TestApp, client: &mut TestClient) {
    let path = format!("/api/v1/hubs/chat/connections/{}", client.connection_id);
    let response = app
        .rest(Method::POST, &path, Some(json!({"target": "marker"})))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(client.next_invocation().await.0, "marker");
}

#[tokio::test]
async fn a_connection_is_closed_with_reconnect_allowed_once_its_aeo_has_passed() {
    let app = spawn_app().await;
    let token = app.client_token_with("chat", &closing_at("alice", now() + 1));
    let (mut client, _) = app.connect_with_token("chat", &token).await;
    expect_auth_expired_close(&mut client).await;
}

#[tokio::test]
async fn malformed_close_on_expiry_claims_are_refused_at_negotiate_and_connect() {
    let app = spawn_app().await;
    let deadline = (now() + 3600).to_string();
    for (extra, case) in [
        (json!({"asrs.s.coae": "true"}), "coae without aeo"),
        (json!({"asrs.s.aeo": deadline}), "aeo without coae"),
        (
            json!({"asrs.s.coae": "yes", "asrs.s.aeo": deadline}),
            "coae not a boolean",
        ),
        (
            json!({"asrs.s.coae": true, "asrs.s.aeo": deadline}),
            "coae a JSON boolean",
        ),
        (
            json!({"asrs.s.coae": "true", "asrs.s.aeo": now() + 3600}),
            "aeo a JSON number",
        ),
        (
            json!({"asrs.s.coae": "true", "asrs.s.aeo": "soon"}),
            "aeo not digits",
        ),
        (
            json!({"asrs.s.coae": "true", "asrs.s.aeo": [deadline]}),
            "aeo an array",
        ),
    ] {
        let token = app.client_token_with("chat", &extra);
        let response = app.negotiate("chat", &token, Some(1)).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "negotiate, {case}"
        );
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            challenge.contains("close-on-authentication-expiration"),
            "{case}: {challenge}"
        );
        let url = format!("ws://127.0.0.1:{}/client/?hub=chat", app.port);
        match app.open_websocket(&url, Some(&token)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "connect, {case}");
            }
            Err(other) => panic!("connect, {case}: {other}"),
            Ok(_) => panic!("connect, {case}: accepted"),
        }
    }
}

#[tokio::test]
async fn refresh_replaces_the_claims_and_moves_the_deadline_later() {
    let app = spawn_app().await;
    let original = now() + 3;
    let token = app.client_token_with("chat", &closing_at("alice", original));
    let (mut refreshed, connection_token) = app.connect_with_token("chat", &token).await;
    // Same deadline, not refreshed: its close shows the scan has run past the original deadline.
    let (mut control, _) = app.connect_with_token("chat", &token).await;

    let later = now() + 3600;
    let (status, body) = post_json(
        &app,
        REFRESH,
        json!({
            "connectionToken": connection_token,
            "expireTime": iso(later),
            "claims": [claim("asrs.s.uid", "alice"), claim("role", "admin")],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({"claims": [
        claim("asrs.s.uid", "alice"),
        claim("role", "admin"),
        claim("asrs.s.coae", "true"),
        claim("asrs.s.aeo", &later.to_string()),
    ]});
    assert_eq!(body, expected);

    let (status, claims) =
        post_json(&app, CLAIMS, json!({"connectionToken": connection_token})).await;
    assert_eq!((status, &claims), (StatusCode::OK, &expected));

    expect_auth_expired_close(&mut control).await;
    assert_still_open(&app, &mut refreshed).await;
}

#[tokio::test]
async fn aeo_in_the_new_claims_wins_over_expire_time() {
    let app = spawn_app().await;
    let token = app.client_token_with("chat", &json!({"asrs.s.uid": "alice"}));
    let (mut client, connection_token) = app.connect_with_token("chat", &token).await;
    let soon = now() + 1;
    let (status, body) = post_json(
        &app,
        REFRESH,
        json!({
            "connectionToken": connection_token,
            "expireTime": iso(now() + 3600),
            "claims": [
                claim("asrs.s.uid", "alice"),
                claim("asrs.s.coae", "true"),
                claim("asrs.s.aeo", &soon.to_string()),
            ],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        claims_of(&body).contains(&claim("asrs.s.aeo", &soon.to_string())),
        "{body}"
    );
    expect_auth_expired_close(&mut client).await;
}

#[tokio::test]
async fn refresh_without_claims_keeps_them_and_takes_the_deadline_from_expire_time() {
    let app = spawn_app().await;
    let token = app.client_token_with("chat", &json!({"asrs.s.uid": "alice", "role": ["a", "b"]}));
    let (mut client, connection_token) = app.connect_with_token("chat", &token).await;

    let (status, before) =
        post_json(&app, CLAIMS, json!({"connectionToken": connection_token})).await;
    assert_eq!(status, StatusCode::OK);
    let before = claims_of(&before);
    for expected in [
        claim("asrs.s.uid", "alice"),
        claim("role", "a"),
        claim("role", "b"),
    ] {
        assert!(
            before.contains(&expected),
            "{expected} missing from {before:?}"
        );
    }
    assert!(
        before
            .iter()
            .any(|claim| claim["type"] == "aud" && claim["value"].is_string())
    );

    // The keys are matched case-insensitively, as in the other REST bodies.
    let soon = now() + 1;
    let (status, after) = post_json(
        &app,
        REFRESH,
        json!({"ConnectionToken": connection_token, "ExpireTime": iso(soon)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    let mut expected = before.clone();
    expected.push(claim("asrs.s.coae", "true"));
    expected.push(claim("asrs.s.aeo", &soon.to_string()));
    assert_eq!(claims_of(&after), expected);
    expect_auth_expired_close(&mut client).await;
}

#[tokio::test]
async fn refresh_as_another_user_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.client_token_with("chat", &json!({"asrs.s.uid": "alice", "role": "user"}));
    let (mut client, connection_token) = app.connect_with_token("chat", &token).await;
    let (_, before) = post_json(&app, CLAIMS, json!({"connectionToken": connection_token})).await;

    for (claims, case) in [
        (json!([claim("asrs.s.uid", "mallory")]), "another user id"),
        (
            json!([claim("nameid", "mallory")]),
            "another user through nameid",
        ),
        (json!([claim("role", "admin")]), "no user at all"),
    ] {
        let response = app
            .rest(
                Method::POST,
                REFRESH,
                Some(json!({
                    "connectionToken": connection_token,
                    "expireTime": iso(now() + 3600),
                    "claims": claims,
                })),
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{case}");
        assert_eq!(
            response
                .headers()
                .get("x-ms-error-code")
                .and_then(|value| value.to_str().ok()),
            Some("ConnectionUserMismatch"),
            "{case}"
        );
    }
    let (_, after) = post_json(&app, CLAIMS, json!({"connectionToken": connection_token})).await;
    assert_eq!(before, after, "a refused refresh changes nothing");
    assert_still_open(&app, &mut client).await;

    // An anonymous connection cannot gain a user either.
    let (_anonymous, anonymous_token) = app
        .connect_with_token("chat", &app.client_token("chat", None))
        .await;
    let (status, _) = post_json(
        &app,
        REFRESH,
        json!({
            "connectionToken": anonymous_token,
            "expireTime": iso(now() + 3600),
            "claims": [claim("asrs.s.uid", "alice")],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unknown_gone_v0_and_other_hub_connections_are_not_found() {
    let app = spawn_app().await;
    let token = app.client_token("chat", Some("alice"));
    let (client, connection_token) = app.connect_with_token("chat", &token).await;

    // A negotiate v0 connection is named by its id; it cannot be refreshed (docs/protocol/signalr-identity-2026.md §1.3).
    let v0: Value = app
        .negotiate("chat", &token, None)
        .await
        .json()
        .await
        .expect("negotiate returns JSON");
    let v0_id = v0["connectionId"]
        .as_str()
        .expect("a connection id")
        .to_owned();
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat&id={v0_id}", app.port);
    let mut v0_client = app
        .open_websocket(&url, Some(&token))
        .await
        .expect("connects");
    v0_client.handshake().await;

    let other_hub = "/api/hubs/other/connections/:refreshAuth?api-version=2026-07-01";
    for (path, connection_token, case) in [
        (REFRESH, "made-up", "an unknown token"),
        (REFRESH, client.connection_id.as_str(), "a connection id"),
        (REFRESH, v0_id.as_str(), "a v0 connection"),
        (other_hub, connection_token.as_str(), "another hub"),
    ] {
        let response = app
            .rest(
                Method::POST,
                path,
                Some(json!({"connectionToken": connection_token, "expireTime": iso(now() + 60)})),
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{case}");
        assert_eq!(
            response
                .headers()
                .get("x-ms-error-code")
                .and_then(|value| value.to_str().ok()),
            Some("ConnectionNotFound"),
            "{case}"
        );
    }

    // After the client leaves, its token names nothing; the index is updated when the socket task ends.
    drop(client);
    let body = json!({"connectionToken": connection_token});
    let mut status = StatusCode::OK;
    for _ in 0..1000 {
        status = app
            .rest(Method::POST, CLAIMS, Some(body.clone()))
            .await
            .status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, StatusCode::NOT_FOUND, "a disconnected connection");
}

#[tokio::test]
async fn bad_refresh_requests_get_400() {
    let app = spawn_app().await;
    let token = app.client_token("chat", Some("alice"));
    let (mut client, connection_token) = app.connect_with_token("chat", &token).await;
    let later = iso(now() + 3600);
    let alice = claim("asrs.s.uid", "alice");
    for (body, case) in [
        (json!({"expireTime": later}), "no connectionToken"),
        (
            json!({"connectionToken": "", "expireTime": later}),
            "an empty connectionToken",
        ),
        (
            json!({"connectionToken": 5, "expireTime": later}),
            "a numeric connectionToken",
        ),
        (
            json!({"connectionToken": connection_token}),
            "no expireTime",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": "tomorrow"}),
            "a malformed expireTime",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": "2026-07-01T12:00:00"}),
            "an expireTime without offset",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": now() + 3600}),
            "a numeric expireTime",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": iso(now() - 60)}),
            "an expireTime in the past",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": later, "claims": {"asrs.s.uid": "alice"}}),
            "claims as an object",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": later, "claims": [alice, {"type": "n", "value": 5}]}),
            "a numeric claim value",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": later, "claims": [alice, {"type": "", "value": "x"}]}),
            "an empty claim type",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": later, "claims": [alice, claim("asrs.s.uid", "bob")]}),
            "two user ids",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": later, "claims": [alice, claim("asrs.s.coae", "true")]}),
            "coae without aeo",
        ),
        (
            json!({"connectionToken": connection_token, "expireTime": later, "claims": [alice, claim("asrs.s.coae", "true"), claim("asrs.s.aeo", "x")]}),
            "a malformed aeo",
        ),
        (json!([connection_token]), "an array body"),
    ] {
        let (status, error) = post_json(&app, REFRESH, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        assert!(error["message"].is_string(), "{case}: {error}");
    }

    let body = json!({"connectionToken": connection_token, "expireTime": later});
    for (path, case) in [
        ("/api/hubs/chat/connections/:refreshAuth", "no api-version"),
        (
            "/api/hubs/chat/connections/:refreshAuth?api-version=2024-12-01",
            "an older api-version",
        ),
        (
            "/api/hubs/chat/connections/claims?api-version=2022-06-01",
            "claims, an older api-version",
        ),
    ] {
        let (status, _) = post_json(&app, path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
    }
    let response = app
        .http
        .post(format!("{}{REFRESH}", app.base()))
        .bearer_auth(app.rest_token("/api/hubs/chat/connections/:refreshAuth"))
        .body("not json")
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "a body that is not JSON"
    );
    assert_still_open(&app, &mut client).await;
}

#[tokio::test]
async fn the_refresh_routes_need_a_rest_token_and_the_right_method() {
    let app = spawn_app().await;
    let body = json!({"connectionToken": "x", "expireTime": iso(now() + 60)});
    for path in [REFRESH, CLAIMS] {
        let response = app
            .rest_with_token(Method::POST, path, Some(body.clone()), None)
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        // A REST token for another path is refused too.
        let wrong = app.rest_token("/api/hubs/chat/:send");
        let response = app
            .rest_with_token(Method::POST, path, Some(body.clone()), Some(&wrong))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        // A client token is not a REST token.
        let client = app.client_token("chat", Some("alice"));
        let response = app
            .rest_with_token(Method::POST, path, Some(body.clone()), Some(&client))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let response = app.rest(Method::GET, REFRESH, None).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_claims_route_answers_post_and_query() {
    let app = spawn_app().await;
    let token = app.client_token_with("chat", &json!({"asrs.s.uid": "alice", "team": "red"}));
    let (_client, connection_token) = app.connect_with_token("chat", &token).await;
    let query = Method::from_bytes(b"QUERY").expect("QUERY is a valid method token");
    for method in [Method::POST, query] {
        let response = app
            .rest(
                method.clone(),
                CLAIMS,
                Some(json!({"connectionToken": connection_token})),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        let body: Value = response.json().await.expect("JSON");
        let claims = claims_of(&body);
        assert!(
            claims.contains(&claim("asrs.s.uid", "alice")),
            "{method}: {body}"
        );
        assert!(claims.contains(&claim("team", "red")), "{method}: {body}");
    }
    let (status, _) = post_json(&app, CLAIMS, json!({"connectionToken": "made-up"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post_json(&app, CLAIMS, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
