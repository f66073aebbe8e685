//! Group membership and messages: the verified caller, the policy, and the SignalR outputs.

use serde_json::json;

use crate::helpers::*;

fn alice() -> String {
    token_with("alice", json!({}))
}

#[tokio::test]
async fn add_to_group_adds_the_verified_caller() {
    let app = spawn_app(AppConfig::hs256()).await;
    let outcome = app
        .invoke(
            "addToGroup",
            &payload("add-to-group.json", &[("APP_TOKEN", &alice())]),
        )
        .await;
    assert_eq!(outcome.status, 202, "{outcome:#?}");
    assert_eq!(
        outcome.output("signalRGroupActions"),
        Some(&json!([{"action": "add", "userId": "alice", "groupName": "room-42"}]))
    );
    assert_eq!(
        outcome.body,
        json!({"action": "add", "group": "room-42", "userId": "alice"})
    );
}

#[tokio::test]
async fn remove_from_group_removes_the_verified_caller() {
    let app = spawn_app(AppConfig::hs256()).await;
    let outcome = app
        .call("removeFromGroup", &alice(), json!({"group": "room-1"}))
        .await;
    assert_eq!(outcome.status, 202, "{outcome:#?}");
    assert_eq!(
        outcome.output("signalRGroupActions"),
        Some(&json!([{"action": "remove", "userId": "alice", "groupName": "room-1"}]))
    );
}

#[tokio::test]
async fn naming_another_user_without_the_admin_role_is_forbidden() {
    let app = spawn_app(AppConfig::hs256()).await;
    app.call(
        "addToGroup",
        &alice(),
        json!({"group": "room-1", "userId": "bob"}),
    )
    .await
    .assert_forbidden("addUserToGroup");
    app.call(
        "removeFromGroup",
        &alice(),
        json!({"group": "room-1", "userId": "bob"}),
    )
    .await
    .assert_forbidden("removeUserFromGroup");
    // Naming oneself is the ordinary join.
    let own = app
        .call(
            "addToGroup",
            &alice(),
            json!({"group": "room-1", "userId": "alice"}),
        )
        .await;
    assert_eq!(own.status, 202, "{own:#?}");
}

#[tokio::test]
async fn an_admin_may_add_and_remove_other_users() {
    let app = spawn_app(AppConfig::hs256()).await;
    for roles in [json!(["reader", "admin"]), json!("admin")] {
        let admin = token_with("root", json!({"roles": roles}));
        let added = app
            .call(
                "addToGroup",
                &admin,
                json!({"group": "room-7", "userId": "bob"}),
            )
            .await;
        assert_eq!(added.status, 202, "roles {roles}: {added:#?}");
        assert_eq!(
            added.output("signalRGroupActions"),
            Some(&json!([{"action": "add", "userId": "bob", "groupName": "room-7"}]))
        );
    }
    let admin = token_with("root", json!({"roles": ["admin"]}));
    let removed = app
        .call(
            "removeFromGroup",
            &admin,
            json!({"group": "room-7", "userId": "bob"}),
        )
        .await;
    assert_eq!(
        removed.output("signalRGroupActions"),
        Some(&json!([{"action": "remove", "userId": "bob", "groupName": "room-7"}]))
    );
}

#[tokio::test]
async fn removing_a_user_from_all_groups_needs_the_admin_role() {
    let app = spawn_app(AppConfig::hs256()).await;
    let admin = token_with("root", json!({"roles": ["admin"]}));
    let banned = app
        .call("removeFromAllGroups", &admin, json!({"userId": "mallory"}))
        .await;
    assert_eq!(banned.status, 202, "{banned:#?}");
    assert_eq!(
        banned.output("signalRGroupActions"),
        Some(&json!([{"action": "removeAll", "userId": "mallory"}])),
        "by user, never by connectionId"
    );
    app.call("removeFromAllGroups", &alice(), json!({"userId": "bob"}))
        .await
        .assert_forbidden("removeUserFromAllGroups");
    app.call("removeFromAllGroups", &alice(), json!({}))
        .await
        .assert_forbidden("removeUserFromAllGroups");
}

#[tokio::test]
async fn a_group_outside_the_callers_patterns_is_forbidden() {
    let app = spawn_app(AppConfig::hs256()).await;
    app.call("addToGroup", &alice(), json!({"group": "admins"}))
        .await
        .assert_forbidden("join");
    app.call("addToGroup", &alice(), json!({"group": "user.bob.inbox"}))
        .await
        .assert_forbidden("join");
    let own = app
        .call("addToGroup", &alice(), json!({"group": "user.alice.inbox"}))
        .await;
    assert_eq!(own.status, 202, "{own:#?}");
    // A user id made of wildcards gets no templated group at all, not even a literal one.
    let star = token_with("*", json!({}));
    for group in ["user.bob", "user.*", "user.x.y"] {
        app.call("addToGroup", &star, json!({"group": group}))
            .await
            .assert_forbidden("join");
    }
}

#[tokio::test]
async fn send_to_group_emits_a_message_for_that_group_only() {
    let app = spawn_app(AppConfig::hs256()).await;
    let outcome = app
        .call(
            "sendToGroup",
            &token_with("bob", json!({})),
            json!({"group": "room-1", "target": "newMessage", "arguments": [{"text": "hi"}]}),
        )
        .await;
    assert_eq!(outcome.status, 202, "{outcome:#?}");
    assert_eq!(
        outcome.output("signalRMessages"),
        Some(
            &json!([{"target": "newMessage", "arguments": [{"sender": "bob", "source": "jwt"}, {"text": "hi"}], "groupName": "room-1"}])
        )
    );
    let no_arguments = app
        .call(
            "sendToGroup",
            &alice(),
            json!({"group": "room-1", "target": "ping"}),
        )
        .await;
    assert_eq!(
        no_arguments.output("signalRMessages"),
        Some(
            &json!([{"target": "ping", "arguments": [{"sender": "alice", "source": "jwt"}], "groupName": "room-1"}])
        )
    );
    app.call(
        "sendToGroup",
        &alice(),
        json!({"group": "staff", "target": "x"}),
    )
    .await
    .assert_forbidden("sendToGroup");
}

#[tokio::test]
async fn send_to_user_emits_a_message_for_that_user_only() {
    let app = spawn_app(AppConfig::hs256()).await;
    let outcome = app
        .call(
            "sendToUser",
            &alice(),
            json!({"userId": "bob", "target": "direct", "arguments": ["psst"]}),
        )
        .await;
    assert_eq!(outcome.status, 202, "{outcome:#?}");
    assert_eq!(
        outcome.output("signalRMessages"),
        Some(
            &json!([{"target": "direct", "arguments": [{"sender": "alice", "source": "jwt"}, "psst"], "userId": "bob"}])
        )
    );
}

#[tokio::test]
async fn group_calls_without_a_valid_token_are_401_with_no_output() {
    let app = spawn_app(AppConfig::hs256()).await;
    let unsigned = app
        .invoke(
            "addToGroup",
            &function_payload("addToGroup", None, &json!({"group": "room-1"})),
        )
        .await;
    unsigned.assert_unauthorized("no bearer token");
    unsigned.assert_no_signalr_output();
    let mut expired = claims("alice");
    expired.insert("exp".into(), json!(now() - 300));
    let outcome = app
        .call(
            "sendToGroup",
            &hs256_token(&expired),
            json!({"group": "room-1", "target": "t"}),
        )
        .await;
    outcome.assert_unauthorized("token rejected: expired ");
    outcome.assert_no_signalr_output();
}

#[tokio::test]
async fn invalid_names_and_payloads_get_400_with_no_output() {
    let app = spawn_app(AppConfig::hs256()).await;
    let long_group = "g".repeat(1025);
    let cases = [
        ("addToGroup", json!({"group": ""}), "empty group"),
        ("addToGroup", json!({"group": "   "}), "whitespace group"),
        (
            "addToGroup",
            json!({"group": "room\u{0}1"}),
            "control character",
        ),
        (
            "addToGroup",
            json!({"group": long_group}),
            "group over 1024",
        ),
        ("addToGroup", json!({"group": 5}), "group not a string"),
        (
            "addToGroup",
            json!({"group": "room-1", "connectionId": "abc"}),
            "unknown field",
        ),
        ("addToGroup", json!({}), "missing group"),
        (
            "sendToGroup",
            json!({"group": "room-1", "target": "bad target"}),
            "bad target",
        ),
        (
            "sendToGroup",
            json!({"group": "room-1", "target": "t", "arguments": {"a": 1}}),
            "arguments not array",
        ),
        (
            "sendToGroup",
            json!({"target": "t"}),
            "no group: never a broadcast",
        ),
        (
            "sendToUser",
            json!({"userId": "", "target": "t"}),
            "empty user",
        ),
        (
            "sendToUser",
            json!({"target": "t"}),
            "no user: never a broadcast",
        ),
        (
            "removeFromAllGroups",
            json!({"userId": "bob", "connectionId": "c"}),
            "connectionId refused",
        ),
    ];
    for (function, body, description) in cases {
        let outcome = app.call(function, &alice(), body).await;
        assert_eq!(outcome.status, 400, "{description}: {outcome:#?}");
        assert_eq!(outcome.body["error"], "bad_request", "{description}");
        outcome.assert_no_signalr_output();
    }
    let mut no_body = function_payload("addToGroup", Some(&alice()), &json!({}));
    no_body["Data"]["req"]
        .as_object_mut()
        .expect("req")
        .remove("Body");
    assert_eq!(app.invoke("addToGroup", &no_body).await.status, 400);
    let mut not_json = function_payload("addToGroup", Some(&alice()), &json!({}));
    not_json["Data"]["req"]["Body"] = json!("group=room-1");
    assert_eq!(app.invoke("addToGroup", &not_json).await.status, 400);
    let huge = json!({"group": "room-1", "target": "t", "arguments": ["x".repeat(70 * 1024)]});
    assert_eq!(app.call("sendToGroup", &alice(), huge).await.status, 400);
}

#[tokio::test]
async fn a_body_level_headers_object_does_not_change_the_caller() {
    let app = spawn_app(AppConfig::hs256()).await;
    // The real host lets a body's "headers" replace Metadata.Headers; the handler ignores both.
    let body = json!({"group": "user.alice.inbox"});
    let mut payload = function_payload("addToGroup", Some(&alice()), &body);
    payload["Metadata"]["headers"] =
        json!({"Authorization": format!("Bearer {}", token_with("bob", json!({})))});
    payload["Data"]["req"]["Headers"]["x-ms-client-principal-id"] = json!(["bob"]);
    let outcome = app.invoke("addToGroup", &payload).await;
    assert_eq!(outcome.status, 202, "{outcome:#?}");
    assert_eq!(
        outcome.output("signalRGroupActions").expect("output")[0]["userId"],
        "alice"
    );
}

fn custom_policy_config() -> AppConfig {
    let mut config = AppConfig::hs256();
    config.set("POLICY_FILE", "tests/fixtures/policy-domain-and-teams.json");
    config
}

#[tokio::test]
async fn a_claim_rule_on_the_email_domain_passes_and_fails() {
    let app = spawn_app(custom_policy_config()).await;
    let inside = token_with("ann", json!({"email": "ann@CONTOSO.example"}));
    assert_eq!(
        app.call("addToGroup", &inside, json!({"group": "staff.general"}))
            .await
            .status,
        202
    );
    let outside = token_with("eve", json!({"email": "eve@contoso.example.evil.test"}));
    app.call("addToGroup", &outside, json!({"group": "staff.general"}))
        .await
        .assert_forbidden("join");
    let no_email = {
        let mut claims = claims("nobody");
        claims.remove("email");
        hs256_token(&claims)
    };
    app.call("addToGroup", &no_email, json!({"group": "staff.general"}))
        .await
        .assert_forbidden("join");
}

#[tokio::test]
async fn roles_come_from_the_configured_claim_as_array_or_string() {
    let app = spawn_app(custom_policy_config()).await;
    let body = json!({"group": "announcements", "target": "news"});
    for role in [
        json!(["moderator"]),
        json!("moderator"),
        json!(["x", "admin"]),
    ] {
        let token = token_with("mod", json!({"role": role}));
        assert_eq!(
            app.call("sendToGroup", &token, body.clone()).await.status,
            202,
            "{role}"
        );
    }
    for role in [json!(["reader"]), json!("moderators"), json!(7)] {
        let token = token_with("reader", json!({"role": role}));
        app.call("sendToGroup", &token, body.clone())
            .await
            .assert_forbidden("sendToGroup");
    }
    // The configured claim is `role`; a `roles` claim does not count.
    let wrong_claim = token_with("x", json!({"roles": ["admin"]}));
    app.call("sendToGroup", &wrong_claim, body)
        .await
        .assert_forbidden("sendToGroup");
}

#[tokio::test]
async fn sender_must_be_a_member_is_checked_against_the_service() {
    let service = RestStandIn::start().await;
    service.add_member("ann", "team.red.chat");
    let mut config = custom_policy_config();
    config.set("AzureSignalRConnectionString", &service.connection_string());
    let app = spawn_app(config).await;
    let ann = token_with("ann", json!({"team": "red"}));
    let ben = token_with("ben", json!({"team": "red"}));
    let body = json!({"group": "team.red.chat", "target": "newMessage", "arguments": ["hello"]});

    let member = app.call("sendToGroup", &ann, body.clone()).await;
    assert_eq!(member.status, 202, "{member:#?}");
    assert_eq!(
        member.output("signalRMessages").expect("output")[0]["groupName"],
        "team.red.chat"
    );
    app.call("sendToGroup", &ben, body.clone())
        .await
        .assert_forbidden("sendToGroup");
    // Another team's group is refused by the pattern before any service call.
    let before = service.requests().len();
    app.call(
        "sendToGroup",
        &ann,
        json!({"group": "team.blue.chat", "target": "t"}),
    )
    .await
    .assert_forbidden("sendToGroup");
    assert_eq!(service.requests().len(), before);
    let requests = service.requests();
    assert!(
        requests[0].starts_with(
            "HEAD /api/hubs/chat/users/ann/groups/team.red.chat?api-version=2022-06-01"
        ),
        "{requests:?}"
    );

    service.stop().await;
    let down = app.call("sendToGroup", &ann, body).await;
    assert_eq!(down.status, 503, "{down:#?}");
    assert_eq!(down.body["error"], "signalr_unavailable");
    down.assert_no_signalr_output();
}

#[tokio::test]
async fn without_a_policy_file_only_the_callers_own_groups_are_allowed() {
    let root = tempfile::tempdir().expect("temp dir");
    for function in ["negotiate", "addToGroup"] {
        std::fs::create_dir(root.path().join(function)).expect("mkdir");
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(function)
            .join("function.json");
        std::fs::copy(source, root.path().join(function).join("function.json")).expect("copy");
    }
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    config.unset("POLICY_FILE");
    let app = spawn_app(config).await;
    assert_eq!(
        app.call("addToGroup", &alice(), json!({"group": "user.alice"}))
            .await
            .status,
        202
    );
    app.call("addToGroup", &alice(), json!({"group": "room-1"}))
        .await
        .assert_forbidden("join");
}

#[tokio::test]
async fn a_dotted_user_id_cannot_reach_another_users_groups() {
    let app = spawn_app(AppConfig::hs256()).await;
    // `alice` may use her own subgroups, but `user.alice.smith` could be `alice.smith`'s group.
    assert_eq!(
        app.call("addToGroup", &alice(), json!({"group": "user.alice.notes"}))
            .await
            .status,
        202
    );
    let dotted = token_with("alice.smith", json!({}));
    app.call("addToGroup", &dotted, json!({"group": "user.alice.smith"}))
        .await
        .assert_forbidden("join");
    app.call(
        "sendToGroup",
        &dotted,
        json!({"group": "user.alice.smith.inbox", "target": "t"}),
    )
    .await
    .assert_forbidden("sendToGroup");
}

#[tokio::test]
async fn a_policy_denial_is_logged_with_the_operation_the_caller_the_target_and_the_reason() {
    let app = spawn_app(AppConfig::hs256()).await;
    let no_rule = app
        .call("addToGroup", &alice(), json!({"group": "lobby"}))
        .await;
    no_rule.assert_forbidden("join");
    let line = "`join` by \"alice\" on group \"lobby\" denied: no policy rule names `join` for this target (default deny)";
    assert!(no_rule.logs_text().contains(line), "{:?}", no_rule.logs);

    let requirement = app
        .call(
            "addToGroup",
            &alice(),
            json!({"group": "room-1", "userId": "bob"}),
        )
        .await;
    requirement.assert_forbidden("addUserToGroup");
    let line = "`addUserToGroup` by \"alice\" on group \"room-1\" to user \"bob\" denied: the caller has none of the roles [\"admin\"]";
    assert!(
        requirement.logs_text().contains(line),
        "{:?}",
        requirement.logs
    );
}
