//! `signalR` outputs become SignalR Service REST calls.

use host_emulator::HandlerLaunch;
use serde_json::json;

use crate::helpers::{
    ACCESS_KEY, AppRoot, FakeHandler, FakeService, HandlerAnswer, TestHost, claims,
    connection_string, http_function, signature_is_valid,
};

async fn fixture(answer: HandlerAnswer) -> (AppRoot, FakeHandler, FakeService, TestHost) {
    let service = FakeService::start().await;
    let app = AppRoot::with_handler("handler", &[]);
    app.function(
        "send",
        &http_function(
            "send",
            &["post"],
            json!([{"type": "signalR", "direction": "out", "name": "signalRMessages", "hubName": "Chat",
                    "connectionStringSetting": "AzureSignalRConnectionString"}]),
        ),
    );
    app.settings(
        json!({"Values": {"AzureSignalRConnectionString": connection_string(service.port)}}),
    );
    let handler = FakeHandler::start(answer).await;
    let host = TestHost::start(&app, HandlerLaunch::Attach { port: handler.port }).await;
    (app, handler, service, host)
}

async fn post(host: &TestHost) -> u16 {
    host.http
        .post(host.url("/api/send"))
        .send()
        .await
        .expect("reachable")
        .status()
        .as_u16()
}

#[tokio::test]
async fn messages_and_group_actions_call_the_2022_06_01_routes_in_order() {
    let (_app, _handler, service, host) = fixture(HandlerAnswer::outputs(json!({
        "signalRMessages": [
            {"userId": "alice", "groupName": "room 1", "action": "add"},
            {"connectionId": "c1", "groupName": "room-1", "action": "add"},
            {"connectionId": "c1", "groupName": "room-1", "action": "remove"},
            {"userId": "alice", "action": "removeAll"},
            {"connectionId": "c1", "action": "removeAll"},
            {"groupName": "room-1", "target": "newMessage", "arguments": [{"text": "hi"}]},
            {"userId": "bob", "groupName": "room-1", "target": "newMessage", "arguments": []},
            {"connectionId": "c2", "userId": "bob", "target": "t"},
            {"target": "announce"}
        ],
        "res": {"statusCode": 202}
    })))
    .await;
    assert_eq!(post(&host).await, 202);
    let calls = service.calls();
    let summary: Vec<(String, String)> = calls
        .iter()
        .map(|call| (call.method.clone(), call.path.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("PUT", "/api/hubs/chat/users/alice/groups/room%201"),
            ("PUT", "/api/hubs/chat/groups/room-1/connections/c1"),
            ("DELETE", "/api/hubs/chat/groups/room-1/connections/c1"),
            ("DELETE", "/api/hubs/chat/users/alice/groups"),
            ("POST", "/api/hubs/chat/groups/room-1/:send"),
            ("POST", "/api/hubs/chat/users/bob/:send"),
            ("POST", "/api/hubs/chat/connections/c2/:send"),
            ("POST", "/api/hubs/chat/:send"),
        ]
        .map(|(method, path)| (method.to_owned(), path.to_owned())),
        "removeAll with a connectionId does nothing, as in the extension"
    );
    assert!(
        calls
            .iter()
            .all(|call| call.query == "api-version=2022-06-01")
    );
    assert_eq!(
        calls[4].body,
        Some(json!({"Target": "newMessage", "Arguments": [{"text": "hi"}]}))
    );
    let token = calls[4]
        .authorization
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    assert!(signature_is_valid(token, ACCESS_KEY.as_bytes()));
    let claims = claims(token);
    assert_eq!(
        claims["aud"],
        json!("http://localhost/api/hubs/chat/groups/room-1/:send?api-version=2022-06-01"),
        "the REST aud is the portless call URL, query included"
    );
    assert!(claims["nameid"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_single_object_or_a_json_string_is_accepted() {
    let (_app, handler, service, host) = fixture(HandlerAnswer::outputs(json!({
        "signalRMessages": {"groupName": "g", "target": "t"}
    })))
    .await;
    assert_eq!(post(&host).await, 200);
    handler.answer(HandlerAnswer::outputs(json!({
        "signalRMessages": r#"[{"userId":"u","target":"t"}]"#
    })));
    assert_eq!(post(&host).await, 200);
    let paths: Vec<String> = service.calls().into_iter().map(|call| call.path).collect();
    assert_eq!(
        paths,
        [
            "/api/hubs/chat/groups/g/:send",
            "/api/hubs/chat/users/u/:send"
        ]
    );
}

#[tokio::test]
async fn invalid_items_or_a_failing_service_give_the_caller_500() {
    let (_app, handler, service, host) = fixture(HandlerAnswer::outputs(json!({}))).await;
    for (value, reason) in [
        (
            json!([{"groupName": "g", "action": "add"}]),
            "group action without a subject",
        ),
        (json!([{"userId": "u"}]), "neither message nor action"),
        (json!("abcd"), "a base64-looking string"),
        (json!(7), "a number"),
    ] {
        handler.answer(HandlerAnswer::outputs(
            json!({"signalRMessages": value, "res": {"statusCode": 202}}),
        ));
        assert_eq!(post(&host).await, 500, "{reason}");
    }
    assert!(service.calls().is_empty());
    service.answer_status(500);
    handler.answer(HandlerAnswer::outputs(json!({
        "signalRMessages": [{"groupName": "g", "target": "t"}], "res": {"statusCode": 202}
    })));
    assert_eq!(
        post(&host).await,
        500,
        "a failing REST call fails the invocation"
    );
}

#[tokio::test]
async fn a_missing_connection_string_fails_the_invocation() {
    let (app, _handler, _service, host) = fixture(HandlerAnswer::outputs(json!({
        "signalRMessages": [{"groupName": "g", "target": "t"}]
    })))
    .await;
    drop(host);
    app.settings(json!({"Values": {}}));
    let handler = FakeHandler::start(HandlerAnswer::outputs(json!({
        "signalRMessages": [{"groupName": "g", "target": "t"}]
    })))
    .await;
    let host = TestHost::start(&app, HandlerLaunch::Attach { port: handler.port }).await;
    assert_eq!(post(&host).await, 500);
}
