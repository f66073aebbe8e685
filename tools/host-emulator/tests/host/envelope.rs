//! What the handler receives, and how the host reads its answer.

use host_emulator::HandlerLaunch;
use serde_json::{Value, json};

use crate::helpers::{AppRoot, FakeHandler, HandlerAnswer, TestHost, http_function};

/// An app with `sendToGroup` (POST `groups/{group}/send`) and, with `files`, the catch-all
/// `files` (GET `app/{*path}`).
fn app_root(files: bool) -> AppRoot {
    let app = AppRoot::with_handler("handler", &[]);
    app.function(
        "sendToGroup",
        &http_function("groups/{group}/send", &["post"], json!([])),
    );
    if files {
        app.function("files", &http_function("app/{*path}", &["get"], json!([])));
    }
    app
}

/// A fake handler answering `answer`, and a host serving `app` attached to it.
async fn attach(app: &AppRoot, answer: HandlerAnswer) -> (FakeHandler, TestHost) {
    let handler = FakeHandler::start(answer).await;
    let host = TestHost::start(app, HandlerLaunch::Attach { port: handler.port }).await;
    (handler, host)
}

async fn fixture(answer: HandlerAnswer) -> (AppRoot, FakeHandler, TestHost) {
    let app = app_root(true);
    let (handler, host) = attach(&app, answer).await;
    (app, handler, host)
}

/// Sends `request` to the host, which is up and answers.
async fn reachable(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("reachable")
}

/// POSTs `body` as `content_type` to `sendToGroup` for group `g`.
async fn send_to_g(
    host: &TestHost,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    reachable(
        host.http
            .post(host.url("/api/groups/g/send"))
            .header("Content-Type", content_type)
            .body(body),
    )
    .await
}

#[tokio::test]
async fn the_invocation_carries_data_metadata_and_host_headers() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(
        json!({"res": {"statusCode": 202, "body": "ok"}}),
    ))
    .await;
    let response = reachable(
        host.http
            .post(host.url("/api/groups/room%201/send?code=k&x=1&x=2"))
            .header("Authorization", "Bearer real")
            .header("Content-Type", "application/json")
            .body(r#"{"text":"hi","n":2,"flag":true,"nested":{"a":1},"list":[1]}"#),
    )
    .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.expect("text"), "ok");
    let invocation = handler.last();
    assert_eq!(invocation.path, "/sendToGroup");
    assert!(
        invocation
            .headers
            .contains_key("x-azure-functions-invocationid")
    );
    assert!(
        invocation
            .headers
            .contains_key("x-azure-functions-hostversion")
    );
    assert_eq!(
        invocation.headers["transfer-encoding"], "chunked",
        "the host's ObjectContent has no length"
    );
    let req = &invocation.body["Data"]["req"];
    assert_eq!(req["Method"], "POST");
    assert!(
        req["Url"]
            .as_str()
            .expect("url")
            .ends_with("/api/groups/room%201/send?code=k&x=1&x=2")
    );
    assert_eq!(req["Query"], json!({"code": "k", "x": "1,2"}));
    assert_eq!(req["Params"], json!({"group": "room 1"}));
    assert_eq!(req["Headers"]["Authorization"], json!(["Bearer real"]));
    assert_eq!(req["Identities"], json!([]));
    assert_eq!(
        req["Body"],
        json!(r#"{"text":"hi","n":2,"flag":true,"nested":{"a":1},"list":[1]}"#)
    );
    let metadata = &invocation.body["Metadata"];
    assert_eq!(metadata["text"], json!("\"hi\""));
    assert_eq!(metadata["n"], json!("\"2\""));
    assert_eq!(metadata["flag"], json!("\"True\""));
    assert_eq!(metadata["nested"], json!({"a": 1}));
    assert!(
        metadata.get("list").is_none(),
        "arrays are not binding data"
    );
    assert!(metadata.get("code").is_none(), "`code` is not binding data");
    assert_eq!(metadata["x"], json!("\"1,2\""));
    assert_eq!(metadata["group"], json!("\"room 1\""));
    assert_eq!(metadata["Headers"]["Authorization"], json!("Bearer real"));
    assert_eq!(metadata["sys"]["MethodName"], json!("sendToGroup"));
}

#[tokio::test]
async fn a_body_headers_object_replaces_the_headers_in_metadata_only() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    reachable(
        host.http
            .post(host.url("/api/groups/g/send"))
            .header("Authorization", "Bearer real")
            .header("Content-Type", "application/json")
            .body(r#"{"headers":{"Authorization":"Bearer forged"},"query":{"q":"forged"}}"#),
    )
    .await;
    let invocation = handler.last();
    let metadata = &invocation.body["Metadata"];
    assert_eq!(
        metadata["headers"],
        json!({"Authorization": "Bearer forged"})
    );
    assert!(metadata.get("Headers").is_none());
    assert_eq!(metadata["query"], json!({"q": "forged"}));
    assert_eq!(
        invocation.body["Data"]["req"]["Headers"]["Authorization"],
        json!(["Bearer real"]),
        "Data.req.Headers always holds the real headers"
    );
}

#[tokio::test]
async fn catch_all_routes_methods_and_empty_bodies() {
    let (_app, handler, host) =
        fixture(HandlerAnswer::outputs(json!({"res": {"body": "x"}}))).await;
    let response = reachable(host.http.get(host.url("/api/app/css/site.css"))).await;
    assert_eq!(response.status(), 200);
    let req = handler.last().body["Data"]["req"].clone();
    assert_eq!(req["Params"], json!({"path": "css/site.css"}));
    assert!(
        req.get("Body").is_none(),
        "no Body without Content-Length > 0"
    );
    let wrong_method = reachable(host.http.post(host.url("/api/app/x"))).await;
    assert_eq!(wrong_method.status(), 404);
    let unknown = reachable(host.http.get(host.url("/api/nothing"))).await;
    assert_eq!(unknown.status(), 404);
    let no_prefix = reachable(host.http.get(host.url("/app/x"))).await;
    assert_eq!(no_prefix.status(), 404);
}

#[tokio::test]
async fn binary_bodies_are_sent_as_base64() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    send_to_g(&host, "application/octet-stream", vec![0u8, 1, 2, 255]).await;
    assert_eq!(
        handler.last().body["Data"]["req"]["Body"],
        json!("AAEC/w==")
    );
}

#[tokio::test]
async fn octet_stream_v2_and_json_with_a_multipart_boundary_arrive_as_text() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    for content_type in [
        "application/octet-stream-v2",
        "application/json; boundary=multipart",
    ] {
        send_to_g(&host, content_type, r#"{"a":1}"#).await;
        assert_eq!(
            handler.last().body["Data"]["req"]["Body"],
            json!(r#"{"a":1}"#),
            "{content_type}"
        );
    }
    send_to_g(&host, "multipart/form-data; boundary=x", "hi").await;
    assert_eq!(handler.last().body["Data"]["req"]["Body"], json!("aGk="));
}

#[tokio::test]
async fn a_utf8_bom_is_stripped_from_text_bodies() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice(br#"{"text":"hi"}"#);
    send_to_g(&host, "application/json", body).await;
    let invocation = handler.last();
    assert_eq!(
        invocation.body["Data"]["req"]["Body"],
        json!(r#"{"text":"hi"}"#)
    );
    assert_eq!(invocation.body["Metadata"]["text"], json!("\"hi\""));
}

#[tokio::test]
async fn an_absent_catch_all_route_parameter_arrives_as_null() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    for (path, expected) in [
        ("/api/app/", json!({"path": null})),
        ("/api/app/css/site.css", json!({"path": "css/site.css"})),
    ] {
        reachable(host.http.get(host.url(path))).await;
        assert_eq!(
            handler.last().body["Data"]["req"]["Params"],
            expected,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_caller_gets_a_utf8_charset_text_plain_by_default_and_the_first_of_repeated_headers() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    let send = || async {
        let response = reachable(host.http.post(host.url("/api/groups/g/send"))).await;
        response.headers().clone()
    };
    handler.answer(HandlerAnswer::outputs(json!({"res": {
        "statusCode": 200, "body": "<p>",
        "headers": {"Content-Type": "text/html", "X-Id": "first", "x-id": "second"}
    }})));
    let headers = send().await;
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let ids: Vec<_> = headers.get_all("x-id").iter().collect();
    assert_eq!(ids, ["first"], "a repeated header name is dropped");

    handler.answer(HandlerAnswer::outputs(
        json!({"res": {"statusCode": 200, "body": "plain"}}),
    ));
    assert_eq!(send().await["content-type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn invalid_handler_answers_give_the_caller_500() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    let cases = [
        (
            HandlerAnswer {
                status: 500,
                content_type: Some("application/json"),
                body: "{}".into(),
            },
            "non-2xx",
        ),
        (
            HandlerAnswer {
                status: 200,
                content_type: Some("text/plain"),
                body: "{}".into(),
            },
            "text/plain",
        ),
        (
            HandlerAnswer {
                status: 200,
                content_type: None,
                body: "{}".into(),
            },
            "no content type",
        ),
        (
            HandlerAnswer {
                status: 200,
                content_type: Some("application/json"),
                body: "{not json".into(),
            },
            "invalid JSON",
        ),
        (
            HandlerAnswer {
                status: 200,
                content_type: Some("application/json"),
                body: "null".into(),
            },
            "null",
        ),
        (
            HandlerAnswer {
                status: 200,
                content_type: Some("application/json"),
                body: "[]".into(),
            },
            "an array",
        ),
        (
            HandlerAnswer::outputs(json!({"res": "hello"})),
            "res not an object",
        ),
        (
            HandlerAnswer::outputs(json!({"res": {"statusCode": "abc"}})),
            "bad statusCode",
        ),
        (
            HandlerAnswer::outputs(json!({"res": {"headers": {"X-Bad\n": "v"}}})),
            "bad header name",
        ),
    ];
    for (answer, reason) in cases {
        handler.answer(answer);
        let response = reachable(host.http.post(host.url("/api/groups/g/send"))).await;
        assert_eq!(response.status(), 500, "{reason}");
    }
}

#[tokio::test]
async fn http_outputs_follow_the_expando_rules() {
    let (_app, handler, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    let send = || async {
        let response = reachable(host.http.post(host.url("/api/groups/g/send"))).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.expect("text"))
    };

    handler.answer(HandlerAnswer::outputs(
        json!({"res": {"status": 404, "body": "s"}}),
    ));
    assert_eq!(
        send().await.0,
        200,
        "`status` is ignored in a named http output"
    );

    handler.answer(HandlerAnswer::outputs(
        json!({"res": {"statusCode": "201", "body": {"a": 1}}}),
    ));
    let (status, _, body) = send().await;
    assert_eq!(
        (status, body.as_str()),
        (201, "{\n  \"a\": 1\n}"),
        "object bodies are indented"
    );

    handler.answer(HandlerAnswer::outputs(json!({"res": r#"{"statusCode":403,"headers":{"Content-Type":"application/json","X-N":2},"body":"{\"error\":\"forbidden\"}"}"#})));
    let (status, headers, body) = send().await;
    assert_eq!(status, 403);
    assert_eq!(
        headers["content-type"], "application/json; charset=utf-8",
        "the host appends a charset (docs/protocol/functions-host.md §3.3, errata)"
    );
    assert_eq!(headers["x-n"], "2");
    assert_eq!(body, r#"{"error":"forbidden"}"#);

    handler.answer(HandlerAnswer::outputs(json!({})));
    let (status, headers, body) = send().await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{}"),
        "a missing res binds an empty Expando"
    );
    assert_eq!(
        headers["content-type"], "text/plain",
        "a missing res is text/plain, not JSON (docs/protocol/functions-host.md §3.3, errata)"
    );

    handler.answer(HandlerAnswer {
        status: 200,
        content_type: Some("application/json"),
        body: json!({"Outputs": {}, "ReturnValue": {"res": {"statusCode": 202, "body": "from return"}}}).to_string(),
    });
    let (status, _, body) = send().await;
    assert_eq!(
        (status, body.as_str()),
        (202, "from return"),
        "ReturnValue properties become outputs"
    );
    let _: Value = json!(null);
}

/// The [`fixture`] app with `DEMO_PAGE_ENABLED` set to `value` (absent for `None`) in
/// local.settings.json.
async fn demo_page_fixture(value: Option<&str>) -> (AppRoot, FakeHandler, TestHost) {
    let app = app_root(true);
    let values = match value {
        Some(value) => json!({"DEMO_PAGE_ENABLED": value}),
        None => json!({}),
    };
    app.settings(json!({"IsEncrypted": false, "Values": values}));
    let (handler, host) = attach(
        &app,
        HandlerAnswer::outputs(json!({"res": {"statusCode": 200}})),
    )
    .await;
    (app, handler, host)
}

#[tokio::test]
async fn the_root_redirects_to_the_demo_page_and_nothing_else_does() {
    let (_app, handler, host) = demo_page_fixture(Some(" True ")).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let root = reachable(no_redirects.get(host.url("/"))).await;
    assert_eq!(root.status(), 302);
    assert_eq!(
        root.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/api/app/")
    );
    // Only a person's GET of `/` is redirected: a POST, or another unknown path, stays 404.
    let post = reachable(no_redirects.post(host.url("/"))).await;
    assert_eq!(post.status(), 404);
    let other = reachable(no_redirects.get(host.url("/nothing"))).await;
    assert_eq!(other.status(), 404);
    assert!(
        handler.received().is_empty(),
        "no invocation for a redirect"
    );
}

#[tokio::test]
async fn the_root_is_not_redirected_when_the_handler_turns_the_demo_page_off() {
    // `false`, or unset (the handler's default): `/api/app/` would be the handler's 404, so a
    // redirect there would lead nowhere.
    for value in [Some("false"), Some("FALSE"), None] {
        let (_app, handler, host) = demo_page_fixture(value).await;
        let root = reachable(host.http.get(host.url("/"))).await;
        assert_eq!(root.status(), 404, "{value:?}");
        assert!(handler.received().is_empty(), "{value:?}");
    }
}

#[tokio::test]
async fn the_root_is_not_redirected_when_the_app_has_no_demo_page() {
    let app = app_root(false);
    let (_handler, host) = attach(&app, HandlerAnswer::outputs(json!({}))).await;
    let root = reachable(host.http.get(host.url("/"))).await;
    assert_eq!(root.status(), 404);
}
