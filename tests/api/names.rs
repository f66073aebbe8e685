//! Names that a URL parser could normalise (`.`, `..`, `/`, `\`, `%`-escapes, surrounding
//! whitespace) are refused before they reach an output item or a REST path: the SignalR SDK
//! puts user ids and group names into URL paths, and `..` there becomes a hub-wide broadcast.

use serde_json::json;

use crate::helpers::*;

fn alice() -> String {
    token_with("alice", json!({}))
}

fn admin() -> String {
    token_with("root", json!({"roles": ["admin"]}))
}

/// Asserts a 400 that emits no SignalR item.
fn assert_refused_name(outcome: &Outcome, what: &str) {
    assert_eq!(outcome.status, 400, "{what}: {outcome:#?}");
    assert_eq!(outcome.body["error"], "bad_request", "{what}");
    outcome.assert_no_signalr_output();
}

#[tokio::test]
async fn send_to_user_refuses_dot_segment_user_ids() {
    let app = spawn_app(AppConfig::hs256()).await;
    for user_id in ["..", ".", "...", "a/b", "a\\b", "%2e%2e", " bob", "bob "] {
        let outcome = app
            .call(
                "sendToUser",
                &alice(),
                json!({"userId": user_id, "target": "newMessage", "arguments": ["spoof"]}),
            )
            .await;
        assert_refused_name(&outcome, user_id);
    }
}

#[tokio::test]
async fn send_to_group_refuses_a_dot_segment_group() {
    let app = spawn_app(AppConfig::hs256()).await;
    for group in ["..", ".", "room-1/..", "room-%2F"] {
        let outcome = app
            .call(
                "sendToGroup",
                &admin(),
                json!({"group": group, "target": "newMessage", "arguments": ["spoof"]}),
            )
            .await;
        assert_refused_name(&outcome, group);
    }
}

#[tokio::test]
async fn group_changes_refuse_dot_segment_groups_and_users() {
    let app = spawn_app(AppConfig::hs256()).await;
    let cases = [
        ("addToGroup", json!({"group": ".."}), "own join of .."),
        ("addToGroup", json!({"group": "."}), "own join of ."),
        (
            "addToGroup",
            json!({"group": "..", "userId": "bob"}),
            "admin add to ..",
        ),
        (
            "addToGroup",
            json!({"group": "room-1", "userId": ".."}),
            "admin add of user ..",
        ),
        (
            "removeFromGroup",
            json!({"group": ".", "userId": "bob"}),
            "admin remove from .",
        ),
        (
            "removeFromGroup",
            json!({"group": "room-1", "userId": "."}),
            "admin remove of user .",
        ),
        ("removeFromGroup", json!({"group": ".."}), "own leave of .."),
    ];
    for (function, body, what) in cases {
        let outcome = app.call(function, &admin(), body).await;
        assert_refused_name(&outcome, what);
    }
}

#[tokio::test]
async fn remove_from_all_groups_refuses_a_dot_segment_user() {
    let app = spawn_app(AppConfig::hs256()).await;
    for user_id in ["..", "."] {
        let outcome = app
            .call("removeFromAllGroups", &admin(), json!({"userId": user_id}))
            .await;
        assert_refused_name(&outcome, user_id);
    }
}

#[tokio::test]
async fn negotiate_refuses_a_verified_dot_segment_user_id() {
    let app = spawn_app(AppConfig::hs256()).await;
    for user_id in ["..", ".", "a/b", "a\\b", "a%2Fb"] {
        app.negotiate(&token_with(user_id, json!({})))
            .await
            .assert_unauthorized("the user id");
    }
}

#[tokio::test]
async fn negotiate_refuses_verified_ids_with_invisible_or_surrounding_whitespace() {
    let app = spawn_app(AppConfig::hs256()).await;
    let cases = [
        " anon:v-1",
        "\u{200b}anon:v-1",
        "an\u{200b}on:v-1",
        "\u{200b}",
        "\u{2060}\u{feff}",
        "\u{00a0}",
        " alice",
        "alice ",
        "alice\u{3000}",
        // An outside review's look-alikes: invisible at either end, and full-width or accented
        // spellings of the visitor prefix.
        "alice\u{200b}",
        "\u{200b}alice",
        "\u{ff41}\u{ff4e}\u{ff4f}\u{ff4e}:x",
        "anon\u{ff1a}x",
        "anon\u{301}:x",
        "\u{fe30}",
        "\u{2100}",
    ];
    for user_id in cases {
        let outcome = app.negotiate(&token_with(user_id, json!({}))).await;
        assert_eq!(outcome.status, 401, "{user_id:?}: {outcome:#?}");
        assert!(!outcome.body_text.contains("accessToken"), "{user_id:?}");
    }
}

#[tokio::test]
async fn a_dot_segment_caller_never_reaches_the_membership_check() {
    let service = RestStandIn::start().await;
    // With `..` as the user segment the old client asked about
    // `/api/hubs/chat/groups/team.red.chat`, a different resource.
    service.add_member("..", "team.red.chat");
    let mut config = AppConfig::hs256();
    config.set("POLICY_FILE", "tests/fixtures/policy-domain-and-teams.json");
    config.set("AzureSignalRConnectionString", &service.connection_string());
    let app = spawn_app(config).await;
    let dots = token_with("..", json!({"team": "red"}));
    let outcome = app
        .call(
            "sendToGroup",
            &dots,
            json!({"group": "team.red.chat", "target": "newMessage"}),
        )
        .await;
    assert_eq!(outcome.status, 401, "{outcome:#?}");
    outcome.assert_no_signalr_output();
    assert_eq!(service.requests(), Vec::<String>::new());
}
