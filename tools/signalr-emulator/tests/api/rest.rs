//! Every REST route of docs/protocol/signalr-service.md §4.1, on both API versions, with their status codes and error
//! codes.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestClient, spawn_app};

fn message(target: &str, argument: &str) -> Option<Value> {
    Some(json!({"target": target, "arguments": [argument]}))
}

/// Sends a marker to `client` alone and checks it is the next thing it gets: proof that nothing sent
/// before the marker reached it (one connection's messages arrive in order).
async fn assert_got_nothing_before_marker(
    app: &crate::helpers::TestApp,
    hub: &str,
    client: &mut TestClient,
) {
    let path = format!("/api/v1/hubs/{hub}/connections/{}", client.connection_id);
    let response = app.rest(Method::POST, &path, message("marker", "m")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let (target, _) = client.next_invocation().await;
    assert_eq!(
        target, "marker",
        "the client received something it should not have"
    );
}

#[tokio::test]
async fn health_answers_200_on_both_api_versions() {
    let app = spawn_app().await;
    for path in ["/api/v1/health", "/api/health?api-version=2022-06-01"] {
        let response = app.rest_with_token(Method::HEAD, path, None, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn broadcast_reaches_every_connection_except_the_excluded_ones() {
    let app = spawn_app().await;
    let mut alice = app.connect("chat", Some("alice")).await;
    let mut bob = app.connect("chat", Some("bob")).await;
    let mut other_hub = app.connect("other", Some("carol")).await;

    let response = app
        .rest(Method::POST, "/api/v1/hubs/chat", message("news", "one"))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        alice.next_invocation().await,
        ("news".to_owned(), json!(["one"]))
    );
    assert_eq!(
        bob.next_invocation().await,
        ("news".to_owned(), json!(["one"]))
    );

    let path = format!(
        "/api/hubs/chat/:send?api-version=2022-06-01&excluded={}",
        bob.connection_id
    );
    let response = app.rest(Method::POST, &path, message("news", "two")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        alice.next_invocation().await,
        ("news".to_owned(), json!(["two"]))
    );
    assert_got_nothing_before_marker(&app, "chat", &mut bob).await;
    assert_got_nothing_before_marker(&app, "other", &mut other_hub).await;
}

#[tokio::test]
async fn hub_names_are_case_insensitive() {
    let app = spawn_app().await;
    let mut client = app.connect("Chat", None).await;
    let response = app
        .rest(Method::POST, "/api/v1/hubs/CHAT", message("m", "x"))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(client.next_invocation().await.0, "m");
}

#[tokio::test]
async fn send_to_user_reaches_all_of_that_users_connections_and_nobody_else() {
    let app = spawn_app().await;
    let mut alice_tab_1 = app.connect("chat", Some("alice")).await;
    let mut alice_tab_2 = app.connect("chat", Some("alice")).await;
    let mut bob = app.connect("chat", Some("bob")).await;

    for path in [
        "/api/v1/hubs/chat/users/alice",
        "/api/hubs/chat/users/alice/:send?api-version=2022-06-01",
    ] {
        let response = app.rest(Method::POST, path, message("direct", path)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{path}");
        assert_eq!(
            alice_tab_1.next_invocation().await,
            ("direct".to_owned(), json!([path]))
        );
        assert_eq!(
            alice_tab_2.next_invocation().await,
            ("direct".to_owned(), json!([path]))
        );
    }
    assert_got_nothing_before_marker(&app, "chat", &mut bob).await;
}

#[tokio::test]
async fn send_to_connection_reaches_only_that_connection() {
    let app = spawn_app().await;
    let mut first = app.connect("chat", Some("alice")).await;
    let mut second = app.connect("chat", Some("alice")).await;
    let v1 = format!("/api/v1/hubs/chat/connections/{}", first.connection_id);
    let v2022 = format!(
        "/api/hubs/chat/connections/{}/:send?api-version=2022-06-01",
        first.connection_id
    );
    for path in [v1, v2022] {
        let response = app
            .rest(Method::POST, &path, message("only-you", "x"))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{path}");
        assert_eq!(first.next_invocation().await.0, "only-you");
    }
    assert_got_nothing_before_marker(&app, "chat", &mut second).await;

    let response = app
        .rest(
            Method::POST,
            "/api/v1/hubs/chat/connections/nobody",
            message("m", "x"),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "sends to unknown connections are accepted"
    );
}

#[tokio::test]
async fn send_to_group_reaches_its_members_except_the_excluded_ones() {
    let app = spawn_app().await;
    let mut alice = app.connect("chat", Some("alice")).await;
    let mut bob = app.connect("chat", Some("bob")).await;
    let mut carol = app.connect("chat", Some("carol")).await;
    for client in [&alice, &bob] {
        let path = format!(
            "/api/v1/hubs/chat/groups/room 1/connections/{}",
            client.connection_id
        );
        let response = app.rest(Method::PUT, &path, None).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    let response = app
        .rest(
            Method::POST,
            "/api/v1/hubs/chat/groups/room 1",
            message("room", "a"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        alice.next_invocation().await,
        ("room".to_owned(), json!(["a"]))
    );
    assert_eq!(
        bob.next_invocation().await,
        ("room".to_owned(), json!(["a"]))
    );

    let path = format!(
        "/api/hubs/chat/groups/room%201/:send?api-version=2022-06-01&excluded={}",
        alice.connection_id
    );
    let response = app.rest(Method::POST, &path, message("room", "b")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        bob.next_invocation().await,
        ("room".to_owned(), json!(["b"]))
    );
    assert_got_nothing_before_marker(&app, "chat", &mut alice).await;
    assert_got_nothing_before_marker(&app, "chat", &mut carol).await;
}

#[tokio::test]
async fn excluded_may_be_repeated() {
    let app = spawn_app().await;
    let mut a = app.connect("chat", None).await;
    let mut b = app.connect("chat", None).await;
    let mut c = app.connect("chat", None).await;
    let path = format!(
        "/api/v1/hubs/chat?excluded={}&excluded={}",
        a.connection_id, b.connection_id
    );
    let response = app.rest(Method::POST, &path, message("m", "x")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(c.next_invocation().await.0, "m");
    assert_got_nothing_before_marker(&app, "chat", &mut a).await;
    assert_got_nothing_before_marker(&app, "chat", &mut b).await;
}

#[tokio::test]
async fn body_property_names_are_case_insensitive_and_arguments_optional() {
    let app = spawn_app().await;
    let mut client = app.connect("chat", None).await;
    let bodies = [
        json!({"Target": "pascal", "Arguments": [1, {"a": true}]}),
        json!({"TARGET": "upper"}),
        json!({"target": "nulls", "arguments": null}),
    ];
    for body in bodies {
        let response = app
            .rest(Method::POST, "/api/v1/hubs/chat", Some(body.clone()))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(
        client.next_invocation().await,
        ("pascal".to_owned(), json!([1, {"a": true}]))
    );
    assert_eq!(
        client.next_invocation().await,
        ("upper".to_owned(), json!([]))
    );
    assert_eq!(
        client.next_invocation().await,
        ("nulls".to_owned(), json!([]))
    );
}

#[tokio::test]
async fn bad_send_bodies_are_refused() {
    let app = spawn_app().await;
    let cases = [
        (None, StatusCode::BAD_REQUEST, "no body"),
        (Some(json!([1])), StatusCode::BAD_REQUEST, "an array"),
        (
            Some(json!({"arguments": []})),
            StatusCode::BAD_REQUEST,
            "no target",
        ),
        (
            Some(json!({"target": ""})),
            StatusCode::BAD_REQUEST,
            "an empty target",
        ),
        (
            Some(json!({"target": 3})),
            StatusCode::BAD_REQUEST,
            "a numeric target",
        ),
        (
            Some(json!({"target": "t", "arguments": "x"})),
            StatusCode::BAD_REQUEST,
            "non-array arguments",
        ),
    ];
    for (body, status, description) in cases {
        let response = app.rest(Method::POST, "/api/v1/hubs/chat", body).await;
        assert_eq!(response.status(), status, "a body with {description}");
    }

    let token = app.rest_token("/api/v1/hubs/chat");
    let response = app
        .http
        .post(format!("{}/api/v1/hubs/chat", app.base()))
        .bearer_auth(&token)
        .header("content-type", "application/x-msgpack")
        .body(vec![0x81_u8])
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = app
        .http
        .post(format!("{}/api/v1/hubs/chat", app.base()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bodies_over_1_mb_get_413_and_1_mb_is_accepted() {
    let app = spawn_app().await;
    let overhead = r#"{"target":"t","arguments":[""]}"#.len();
    let fits = json!({"target": "t", "arguments": ["x".repeat(1024 * 1024 - overhead)]});
    assert_eq!(
        serde_json::to_vec(&fits).map(|body| body.len()).ok(),
        Some(1024 * 1024)
    );
    let response = app
        .rest(Method::POST, "/api/v1/hubs/chat", Some(fits))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let too_big = json!({"target": "t", "arguments": ["x".repeat(1024 * 1024)]});
    let response = app
        .rest(Method::POST, "/api/v1/hubs/chat", Some(too_big))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Without a Content-Length (chunked), the limit still holds while the body streams in.
    let token = app.rest_token("/api/v1/hubs/chat");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    let head = format!(
        "POST /api/v1/hubs/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    let chunk = vec![b' '; 256 * 1024];
    for _ in 0..5 {
        // The server may answer 413 and stop reading before the last chunk; that is the point.
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut reply = vec![0_u8; 12];
    stream.read_exact(&mut reply).await.expect("a status line");
    assert_eq!(&reply, b"HTTP/1.1 413");
}

#[tokio::test]
async fn invalid_names_are_refused_with_400() {
    let app = spawn_app().await;
    let long_group = "g".repeat(1025);
    let long_user = "u".repeat(1025);
    let cases = [
        (
            Method::POST,
            "/api/v1/hubs/1chat".to_owned(),
            "a hub starting with a digit",
        ),
        (
            Method::POST,
            "/api/v1/hubs/my-hub".to_owned(),
            "a hub with a hyphen",
        ),
        (
            Method::POST,
            "/api/hubs/chat/:send?application=my-app".to_owned(),
            "a bad application",
        ),
        (
            Method::POST,
            "/api/v1/hubs/chat/groups/%20%20".to_owned(),
            "a whitespace group",
        ),
        (
            Method::POST,
            format!("/api/v1/hubs/chat/groups/{long_group}"),
            "a 1025-character group",
        ),
        (
            Method::POST,
            format!("/api/v1/hubs/chat/users/{long_user}"),
            "a 1025-character user",
        ),
        (
            Method::PUT,
            "/api/hubs/chat/users/u/groups/%09?ttl=5".to_owned(),
            "a tab group",
        ),
        (
            Method::PUT,
            "/api/hubs/chat/users/u/groups/g?ttl=-1".to_owned(),
            "a negative ttl",
        ),
        (
            Method::PUT,
            "/api/hubs/chat/users/u/groups/g?ttl=soon".to_owned(),
            "a non-numeric ttl",
        ),
    ];
    for (method, path, description) in cases {
        let response = app.rest(method, &path, message("t", "x")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{description}");
    }
}

#[tokio::test]
async fn unknown_routes_get_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    let response = app
        .rest(Method::POST, "/api/v1/hubs/chat/somewhere", None)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.rest(Method::GET, "/nothing-here", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.rest(Method::PUT, "/api/v1/hubs/chat", None).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn add_and_remove_connection_to_and_from_a_group_in_either_path_order() {
    let app = spawn_app().await;
    let mut client = app.connect("chat", None).await;
    let id = client.connection_id.clone();

    let response = app
        .rest(
            Method::PUT,
            &format!("/api/hubs/chat/groups/g/connections/{id}?api-version=2022-06-01"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .rest(Method::HEAD, "/api/v1/hubs/chat/groups/g", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.rest(
        Method::POST,
        "/api/v1/hubs/chat/groups/g",
        message("in-group", "x"),
    )
    .await;
    assert_eq!(client.next_invocation().await.0, "in-group");

    let response = app
        .rest(
            Method::DELETE,
            &format!("/api/v1/hubs/chat/connections/{id}/groups/g"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .rest(Method::HEAD, "/api/v1/hubs/chat/groups/g", None)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.rest(
        Method::POST,
        "/api/v1/hubs/chat/groups/g",
        message("in-group", "y"),
    )
    .await;
    assert_got_nothing_before_marker(&app, "chat", &mut client).await;
}

#[tokio::test]
async fn group_operations_on_an_unknown_connection_get_404_with_the_error_code() {
    let app = spawn_app().await;
    let _someone = app.connect("chat", None).await;
    for method in [Method::PUT, Method::DELETE] {
        let response = app
            .rest(
                method.clone(),
                "/api/v1/hubs/chat/groups/g/connections/nobody",
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method}");
        assert_eq!(
            response.headers()["x-ms-error-code"],
            "Error.Connection.NotExisted",
            "{method}"
        );
    }
    let response = app
        .rest(
            Method::PUT,
            "/api/v1/hubs/never-used/groups/g/connections/nobody",
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "the hub name is checked first"
    );
}

#[tokio::test]
async fn remove_connection_from_all_groups() {
    let app = spawn_app().await;
    let mut client = app.connect("chat", None).await;
    let id = client.connection_id.clone();
    for group in ["a", "b"] {
        let response = app
            .rest(
                Method::PUT,
                &format!("/api/v1/hubs/chat/groups/{group}/connections/{id}"),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = app
        .rest(
            Method::DELETE,
            &format!("/api/hubs/chat/connections/{id}/groups?api-version=2022-06-01"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    for group in ["a", "b"] {
        let response = app
            .rest(
                Method::GET,
                &format!("/api/v1/hubs/chat/groups/{group}"),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "group {group}");
        app.rest(
            Method::POST,
            &format!("/api/v1/hubs/chat/groups/{group}"),
            message("g", group),
        )
        .await;
    }
    assert_got_nothing_before_marker(&app, "chat", &mut client).await;
}

#[tokio::test]
async fn a_user_added_to_a_group_before_connecting_gets_the_groups_messages() {
    let app = spawn_app().await;
    let response = app
        .rest(
            Method::PUT,
            "/api/hubs/chat/users/alice/groups/room?api-version=2022-06-01",
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "2022-06-01 add user to group"
    );
    let response = app
        .rest(
            Method::PUT,
            "/api/v1/hubs/chat/groups/lobby/users/alice",
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "v1 add user to group"
    );
    let response = app
        .rest(
            Method::HEAD,
            "/api/v1/hubs/chat/groups/room/users/alice",
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a remembered membership counts before connecting"
    );

    let mut alice = app.connect("chat", Some("alice")).await;
    let mut bob = app.connect("chat", Some("bob")).await;
    for group in ["room", "lobby"] {
        let response = app
            .rest(
                Method::POST,
                &format!("/api/v1/hubs/chat/groups/{group}"),
                message("g", group),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            alice.next_invocation().await,
            ("g".to_owned(), json!([group]))
        );
    }
    assert_got_nothing_before_marker(&app, "chat", &mut bob).await;
}

#[tokio::test]
async fn ttl_zero_adds_only_the_users_current_connections() {
    let app = spawn_app().await;
    let mut first = app.connect("chat", Some("alice")).await;
    let response = app
        .rest(
            Method::PUT,
            "/api/hubs/chat/users/alice/groups/room?ttl=0",
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut second = app.connect("chat", Some("alice")).await;
    app.rest(
        Method::POST,
        "/api/v1/hubs/chat/groups/room",
        message("g", "x"),
    )
    .await;
    assert_eq!(first.next_invocation().await.0, "g");
    assert_got_nothing_before_marker(&app, "chat", &mut second).await;

    let response = app
        .rest(
            Method::PUT,
            "/api/hubs/chat/users/alice/groups/timed?ttl=3600",
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut third = app.connect("chat", Some("alice")).await;
    app.rest(
        Method::POST,
        "/api/v1/hubs/chat/groups/timed",
        message("t", "x"),
    )
    .await;
    assert_eq!(
        third.next_invocation().await.0,
        "t",
        "a ttl membership applies to later connections"
    );
}

#[tokio::test]
async fn remove_user_from_a_group_and_from_all_groups_with_each_versions_status_codes() {
    let app = spawn_app().await;
    let mut alice = app.connect("chat", Some("alice")).await;
    for group in ["a", "b", "c"] {
        app.rest(
            Method::PUT,
            &format!("/api/hubs/chat/users/alice/groups/{group}"),
            None,
        )
        .await;
    }
    let response = app
        .rest(
            Method::DELETE,
            "/api/v1/hubs/chat/groups/a/users/alice",
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "v1 remove user from group"
    );
    let response = app
        .rest(
            Method::DELETE,
            "/api/hubs/chat/users/alice/groups/b?api-version=2022-06-01",
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "2022-06-01 remove user from group"
    );
    let response = app
        .rest(Method::GET, "/api/hubs/chat/users/alice/groups/c", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "still in c");
    let response = app
        .rest(Method::DELETE, "/api/hubs/chat/users/alice/groups", None)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "2022-06-01 remove user from all groups"
    );
    let response = app
        .rest(Method::DELETE, "/api/v1/hubs/chat/users/alice/groups", None)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "v1 remove user from all groups"
    );

    for group in ["a", "b", "c"] {
        let response = app
            .rest(
                Method::HEAD,
                &format!("/api/hubs/chat/users/alice/groups/{group}"),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "group {group}");
        assert_eq!(
            response.headers()["x-ms-error-code"],
            "Info.User.NotInGroup"
        );
        app.rest(
            Method::POST,
            &format!("/api/v1/hubs/chat/groups/{group}"),
            message("g", group),
        )
        .await;
    }
    assert_got_nothing_before_marker(&app, "chat", &mut alice).await;
}

#[tokio::test]
async fn existence_checks_answer_200_or_404_with_the_services_error_codes() {
    let app = spawn_app().await;
    let client = app.connect("chat", Some("alice")).await;
    let id = client.connection_id.clone();
    app.rest(
        Method::PUT,
        &format!("/api/v1/hubs/chat/groups/g/connections/{id}"),
        None,
    )
    .await;

    let present = [
        format!("/api/v1/hubs/chat/connections/{id}"),
        format!("/api/hubs/chat/connections/{id}?api-version=2022-06-01"),
        "/api/v1/hubs/chat/users/alice".to_owned(),
        "/api/hubs/chat/users/alice".to_owned(),
        "/api/v1/hubs/chat/groups/g".to_owned(),
        "/api/hubs/chat/groups/g".to_owned(),
        "/api/v1/hubs/chat/groups/g/users/alice".to_owned(),
        "/api/hubs/chat/users/alice/groups/g".to_owned(),
    ];
    for path in &present {
        for method in [Method::GET, Method::HEAD] {
            let response = app.rest(method.clone(), path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        }
    }
    let absent = [
        (
            "/api/v1/hubs/chat/connections/nobody",
            "Warning.Connection.NotExisted",
        ),
        (
            "/api/hubs/chat/connections/nobody",
            "Warning.Connection.NotExisted",
        ),
        ("/api/v1/hubs/chat/users/bob", "Warning.User.NotExisted"),
        ("/api/hubs/empty/users/bob", "Warning.User.NotExisted"),
        ("/api/v1/hubs/chat/groups/none", "Warning.Group.NotExisted"),
        ("/api/hubs/chat/groups/none", "Warning.Group.NotExisted"),
        (
            "/api/v1/hubs/chat/groups/none/users/alice",
            "Info.User.NotInGroup",
        ),
        ("/api/hubs/chat/users/bob/groups/g", "Info.User.NotInGroup"),
    ];
    for (path, code) in absent {
        for method in [Method::GET, Method::HEAD] {
            let response = app.rest(method.clone(), path, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(
                response.headers()["x-ms-error-code"],
                code,
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn close_connection_sends_the_reason_and_answers_per_version() {
    let app = spawn_app().await;
    let mut first = app.connect("chat", None).await;
    let mut second = app.connect("chat", None).await;

    let path = format!(
        "/api/v1/hubs/chat/connections/{}?reason=bye%20now",
        first.connection_id
    );
    let response = app.rest(Method::DELETE, &path, None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "v1 close");
    let close = first.expect_close_message().await;
    assert_eq!(close["error"], "bye now");
    assert_eq!(close["allowReconnect"], true);
    assert!(
        first.next_record().await.is_none(),
        "the socket closes after the close message"
    );

    let path = format!(
        "/api/hubs/chat/connections/{}?api-version=2022-06-01",
        second.connection_id
    );
    let response = app.rest(Method::DELETE, &path, None).await;
    assert_eq!(response.status(), StatusCode::OK, "2022-06-01 close");
    let close = second.expect_close_message().await;
    assert!(close.get("error").is_none(), "no reason, no error: {close}");

    let response = app
        .rest(Method::DELETE, "/api/v1/hubs/chat/connections/nobody", None)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()["x-ms-error-code"],
        "Warning.Connection.NotExisted"
    );
}

#[tokio::test]
async fn close_connections_of_all_a_group_or_a_user_honours_excluded() {
    let app = spawn_app().await;
    let mut alice = app.connect("chat", Some("alice")).await;
    let mut alice_kept = app.connect("chat", Some("alice")).await;
    let mut bob = app.connect("chat", Some("bob")).await;
    let mut carol = app.connect("chat", Some("carol")).await;
    let mut dave = app.connect("chat", Some("dave")).await;
    app.rest(
        Method::PUT,
        &format!("/api/hubs/chat/groups/g/connections/{}", bob.connection_id),
        None,
    )
    .await;

    let path = format!(
        "/api/hubs/chat/users/alice/:closeConnections?reason=user&excluded={}",
        alice_kept.connection_id
    );
    assert_eq!(
        app.rest(Method::POST, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(alice.expect_close_message().await["error"], "user");

    let path = "/api/hubs/chat/groups/g/:closeConnections?reason=group";
    assert_eq!(
        app.rest(Method::POST, path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(bob.expect_close_message().await["error"], "group");

    let path = format!(
        "/api/hubs/chat/:closeConnections?reason=all&excluded={}&excluded={}",
        alice_kept.connection_id, dave.connection_id
    );
    assert_eq!(
        app.rest(Method::POST, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(carol.expect_close_message().await["error"], "all");

    assert_got_nothing_before_marker(&app, "chat", &mut alice_kept).await;
    assert_got_nothing_before_marker(&app, "chat", &mut dave).await;
}

#[tokio::test]
async fn browsers_get_cors_answers_for_any_origin_with_credentials() {
    let app = spawn_app().await;
    let response = app
        .http
        .request(
            Method::OPTIONS,
            format!("{}/client/negotiate?hub=chat", app.base()),
        )
        .header("origin", "http://localhost:7071")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, x-requested-with",
        )
        .send()
        .await
        .expect("the emulator answers");
    assert!(
        response.status().is_success(),
        "preflight: {}",
        response.status()
    );
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:7071"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(
        headers["access-control-allow-headers"],
        "authorization, x-requested-with"
    );

    let response = app
        .http
        .post(format!("{}/client/negotiate?hub=chat", app.base()))
        .header("origin", "http://example.test")
        .bearer_auth(app.client_token("chat", None))
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://example.test"
    );
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
}
