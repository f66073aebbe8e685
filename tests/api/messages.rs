//! Messages carry their verified sender (finding 4): the handler writes it as the first argument,
//! where no caller can write, and `MESSAGE_SENDER_STAMP=false` is the only way to turn it off.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_caller_supplied_sender_or_from_cannot_replace_the_verified_sender() {
    let app = spawn_app(AppConfig::hs256()).await;
    let forged = json!({"sender": "root", "source": "jwt", "from": "root", "text": "hi"});
    for (function, body) in [
        (
            "sendToGroup",
            json!({"group": "room-1", "target": "newMessage", "arguments": [forged.clone()]}),
        ),
        (
            "sendToUser",
            json!({"userId": "bob", "target": "newMessage", "arguments": [forged.clone()]}),
        ),
    ] {
        let outcome = app
            .call(function, &token_with("alice", json!({})), body)
            .await;
        assert_eq!(outcome.status, 202, "{function}: {outcome:#?}");
        let arguments = &outcome.output("signalRMessages").expect("a message")[0]["arguments"];
        assert_eq!(
            arguments,
            &json!([{"sender": "alice", "source": "jwt"}, forged]),
            "{function}: the handler's stamp comes first, the caller's claim only after it"
        );
    }
}

#[tokio::test]
async fn message_sender_stamp_false_sends_the_callers_arguments_only() {
    let mut config = AppConfig::hs256();
    config.set("MESSAGE_SENDER_STAMP", "false");
    let app = spawn_app(config).await;
    let outcome = app
        .call(
            "sendToGroup",
            &token_with("alice", json!({})),
            json!({"group": "room-1", "target": "newMessage", "arguments": ["hi"]}),
        )
        .await;
    assert_eq!(
        outcome.output("signalRMessages"),
        Some(&json!([{"target": "newMessage", "arguments": ["hi"], "groupName": "room-1"}]))
    );
    assert!(app.stderr().contains("MESSAGE_SENDER_STAMP=false"));
}

#[test]
fn a_misspelt_message_sender_stamp_stops_start_up_naming_the_setting() {
    let mut config = AppConfig::hs256();
    config.set("MESSAGE_SENDER_STAMP", "no");
    let stderr = start_expecting_failure(&config);
    assert!(stderr.contains("MESSAGE_SENDER_STAMP"), "{stderr}");
}

#[tokio::test]
async fn each_invocation_logs_plain_sentences_without_the_function_name_or_debug_text() {
    let app = spawn_app(AppConfig::hs256()).await;
    let alice = token_with("alice", json!({}));
    let negotiate = app.negotiate(&alice).await;
    // The host prefixes the function name itself; the handler's line does not repeat it.
    assert_eq!(negotiate.logs, ["token issued for user \"alice\""]);
    let to_group = app
        .call(
            "sendToGroup",
            &alice,
            json!({"group": "room-1", "target": "newMessage", "arguments": []}),
        )
        .await;
    assert_eq!(
        to_group.logs,
        ["sendToGroup by \"alice\" to group \"room-1\": \"newMessage\""]
    );
    let to_user = app
        .call(
            "sendToUser",
            &alice,
            json!({"userId": "bob", "target": "newMessage", "arguments": []}),
        )
        .await;
    assert_eq!(
        to_user.logs,
        ["sendToUser by \"alice\" to user \"bob\": \"newMessage\""]
    );
}
