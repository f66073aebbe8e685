//! The SignalR upstream (`upstream`): the service authenticated by `X-ASRS-Signature`, the hub
//! checked, the connection's verified user, `onConnect` joins, and client invocations decided
//! by the `invoke` rules and then by each method's own operation, answered as Completion frames.

use serde_json::{Value, json};

use crate::helpers::*;

/// `invoke` allows the four built-ins plus `echo` (which no built-in serves); the per-operation
/// rules allow rooms only, and `sendToUser` to `bob` only; `leaveGroup` is not invokable.
fn policy(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("policy.json");
    std::fs::write(
        &path,
        json!({
            "rules": [
                {"operations": ["join", "leave", "sendToGroup"], "groups": ["room-*"]},
                {"operations": ["sendToUser"], "users": ["bob"]},
                {"operations": ["join"], "groups": ["admins"], "require": {"roles": ["admin"]}}
            ],
            "invoke": [
                {"targets": ["joinGroup", "sendToGroup", "sendToUser", "echo"]}
            ],
            "onConnect": {"groups": ["user.{userId}", "lobby"]}
        })
        .to_string(),
    )
    .expect("write policy");
    path.to_string_lossy().into_owned()
}

async fn app(dir: &tempfile::TempDir) -> TestApp {
    let mut config = AppConfig::hs256();
    config.set("POLICY_FILE", &policy(dir));
    spawn_app(config).await
}

/// Asserts a 200 whose body is exactly `expected` followed by the record separator.
fn assert_completion(outcome: &Outcome, expected: &str) {
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(
        outcome.body_text,
        format!("{expected}\u{1e}"),
        "{outcome:#?}"
    );
    assert_eq!(outcome.header("Content-Type"), Some("application/json"));
}

/// `target(arguments)` invoked by alice on `conn-1`; with no `invocation_id` it is a send,
/// answered with no Completion.
fn by_alice(invocation_id: Option<&str>, target: &str, arguments: Value) -> UpstreamCall {
    UpstreamCall::invocation("conn-1", Some("alice"), invocation_id, target, arguments)
}

/// alice's `joinGroup("room-1")`, invocation `1`: allowed by [`policy`].
fn alice_joins_room_1() -> UpstreamCall {
    by_alice(Some("1"), "joinGroup", json!(["room-1"]))
}

fn completion(outcome: &Outcome) -> Value {
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let text = outcome
        .body_text
        .strip_suffix('\u{1e}')
        .unwrap_or_else(|| panic!("no record separator: {outcome:#?}"));
    serde_json::from_str(text).expect("a JSON Completion")
}

#[tokio::test]
async fn a_missing_or_bad_signature_is_401_and_emits_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let other_connection = wps_signature(&[ACCESS_KEY], "conn-2");
    let wrong_key = wps_signature(&["INSECURE-NOT-THE-KEY"], "conn-1");
    let cases = [
        (None, "no signature"),
        (Some(""), "empty signature"),
        (
            Some(other_connection.as_str()),
            "another connection's signature",
        ),
        (Some(wrong_key.as_str()), "another key's signature"),
        (Some("sha256=zz"), "not hex"),
        (Some("sha1=00"), "another algorithm"),
    ];
    for (signature, description) in cases {
        let outcome = app
            .upstream(&alice_joins_room_1().with_header("X-ASRS-Signature", signature))
            .await;
        assert_eq!(outcome.status, 401, "{description}: {outcome:#?}");
        assert_eq!(outcome.body["error"], "invalid_signature", "{description}");
        assert!(outcome.signalr_items().is_empty(), "{description}");
    }
    // The connected event too: nobody joins anything without the service's signature.
    let outcome = app
        .upstream(
            &UpstreamCall::connected("conn-1", Some("alice")).with_header("X-ASRS-Signature", None),
        )
        .await;
    assert_eq!(outcome.status, 401, "{outcome:#?}");
    assert!(outcome.signalr_items().is_empty());
}

#[tokio::test]
async fn the_signature_is_accepted_in_upper_case_and_among_other_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let good = wps_signature(&[ACCESS_KEY], "conn-1");
    let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
    let rotated = format!("{},{good}", wps_signature(&["INSECURE-OLD-KEY"], "conn-1"));
    for signature in [upper, rotated] {
        let call = alice_joins_room_1().with_header("X-ASRS-Signature", Some(&signature));
        let outcome = app.upstream(&call).await;
        assert!(
            completion(&outcome).get("result").is_some(),
            "{signature}: {outcome:#?}"
        );
    }
}

#[tokio::test]
async fn the_secondary_key_authenticates_during_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = AppConfig::hs256();
    config.set("POLICY_FILE", &policy(&dir)).set(
        "SIGNALR_SECONDARY_ACCESS_KEY",
        "INSECURE-TEST-SECONDARY-SIGNALR-KEY",
    );
    let app = spawn_app(config).await;
    let signature = wps_signature(&["INSECURE-TEST-SECONDARY-SIGNALR-KEY"], "conn-1");
    let outcome = app
        .upstream(
            &UpstreamCall::connected("conn-1", Some("alice"))
                .with_header("X-ASRS-Signature", Some(&signature)),
        )
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
}

#[tokio::test]
async fn a_foreign_hub_is_refused_and_emits_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let call = alice_joins_room_1().with_header("X-ASRS-Hub", Some("admin"));
    let outcome = app.upstream(&call).await;
    assert_eq!(outcome.status, 403, "{outcome:#?}");
    assert_eq!(outcome.body["error"], "foreign_hub");
    assert!(outcome.signalr_items().is_empty());
    // The SDKs lowercase hub names; the service's casing of our own hub is accepted.
    let call =
        UpstreamCall::connected("conn-1", Some("alice")).with_header("X-ASRS-Hub", Some("CHAT"));
    assert_eq!(app.upstream(&call).await.status, 200);
}

#[tokio::test]
async fn upstream_is_off_without_a_way_to_authenticate_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = AppConfig::hs256();
    config
        .set("POLICY_FILE", &policy(&dir))
        .set("SIGNALR_UPSTREAM_AUTH", "off");
    let app = spawn_app(config).await;
    let outcome = app
        .upstream(&UpstreamCall::connected("conn-1", Some("alice")))
        .await;
    assert_eq!(outcome.status, 404, "{outcome:#?}");
    assert!(outcome.signalr_items().is_empty());
}

#[tokio::test]
async fn an_allowed_invocation_emits_the_group_action_and_completes_with_its_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let outcome = app.upstream(&alice_joins_room_1()).await;
    assert_completion(
        &outcome,
        r#"{"type":3,"invocationId":"1","result":{"action":"add","group":"room-1","userId":"alice"}}"#,
    );
    assert_eq!(
        outcome.signalr_items(),
        vec![json!({"action": "add", "userId": "alice", "groupName": "room-1"})]
    );
}

#[tokio::test]
async fn send_to_group_stamps_the_verified_sender_before_the_callers_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let outcome = app
        .upstream(&by_alice(
            Some("2"),
            "sendToGroup",
            json!(["room-1", "newMessage", {"text": "hi", "sender": "mallory"}]),
        ))
        .await;
    assert_eq!(completion(&outcome)["result"]["sent"], true, "{outcome:#?}");
    assert_eq!(
        outcome.signalr_items(),
        vec![json!({
            "target": "newMessage",
            "arguments": [{"sender": "alice", "source": "signalr-connection"}, {"text": "hi", "sender": "mallory"}],
            "groupName": "room-1"
        })]
    );
}

#[tokio::test]
async fn a_target_without_an_invoke_rule_is_a_forbidden_completion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let outcome = app
        .upstream(&by_alice(Some("3"), "leaveGroup", json!(["room-1"])))
        .await;
    assert_completion(
        &outcome,
        r#"{"type":3,"invocationId":"3","error":"forbidden: invoke"}"#,
    );
    assert!(outcome.signalr_items().is_empty());
    assert!(
        outcome.logs_text().contains("no `invoke` rule"),
        "{outcome:#?}"
    );
}

#[tokio::test]
async fn an_invokable_method_is_still_decided_by_its_operation_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let cases = [
        ("joinGroup", json!(["admins"]), "forbidden: join"),
        (
            "sendToGroup",
            json!(["team.red", "newMessage", "x"]),
            "forbidden: sendToGroup",
        ),
        (
            "sendToUser",
            json!(["carol", "newMessage", "x"]),
            "forbidden: sendToUser",
        ),
    ];
    for (target, arguments, error) in cases {
        let outcome = app.upstream(&by_alice(Some("4"), target, arguments)).await;
        assert_eq!(
            completion(&outcome),
            json!({"type": 3, "invocationId": "4", "error": error}),
            "{target}"
        );
        assert!(outcome.signalr_items().is_empty(), "{target}");
    }
    let outcome = app
        .upstream(&by_alice(
            Some("5"),
            "sendToUser",
            json!(["bob", "newMessage", "hi"]),
        ))
        .await;
    assert_eq!(
        completion(&outcome)["result"]["userId"],
        "bob",
        "{outcome:#?}"
    );
    assert_eq!(outcome.signalr_items()[0]["userId"], "bob");
}

#[tokio::test]
async fn an_unknown_target_is_refused_even_when_invoke_allows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let outcome = app
        .upstream(&by_alice(Some("6"), "echo", json!(["x"])))
        .await;
    let error = completion(&outcome)["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        error.starts_with("bad request: `target` is not a hub method"),
        "{error}"
    );
    assert!(outcome.signalr_items().is_empty());
}

#[tokio::test]
async fn a_denied_send_without_an_invocation_id_is_200_with_no_body_and_nothing_emitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let outcome = app
        .upstream(&by_alice(None, "joinGroup", json!(["admins"])))
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(outcome.body_text, "");
    assert!(outcome.signalr_items().is_empty());
    let outcome = app
        .upstream(&by_alice(None, "joinGroup", json!(["room-1"])))
        .await;
    assert_eq!(outcome.body_text, "");
    assert_eq!(outcome.signalr_items().len(), 1, "{outcome:#?}");
}

#[tokio::test]
async fn a_connection_without_a_user_may_invoke_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let outcome = app
        .upstream(&UpstreamCall::invocation(
            "conn-1",
            None,
            Some("7"),
            "joinGroup",
            json!(["room-1"]),
        ))
        .await;
    assert_completion(
        &outcome,
        r#"{"type":3,"invocationId":"7","error":"forbidden: invoke"}"#,
    );
    assert!(outcome.signalr_items().is_empty());
}

#[tokio::test]
async fn connected_joins_the_verified_user_to_the_on_connect_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let outcome = app
        .upstream(&UpstreamCall::connected("conn-1", Some("alice")))
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(outcome.body_text, "");
    assert_eq!(
        outcome.signalr_items(),
        vec![
            json!({"action": "add", "userId": "alice", "groupName": "user.alice"}),
            json!({"action": "add", "userId": "alice", "groupName": "lobby"}),
        ]
    );
}

#[tokio::test]
async fn connected_without_a_user_or_for_a_visitor_joins_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    for user in [None, Some("anon:visitor-1")] {
        let outcome = app.upstream(&UpstreamCall::connected("conn-1", user)).await;
        assert_eq!(outcome.status, 200, "{user:?}: {outcome:#?}");
        assert!(outcome.signalr_items().is_empty(), "{user:?}");
    }
    let outcome = app
        .upstream(&UpstreamCall::disconnected("conn-1", Some("alice")))
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert!(outcome.signalr_items().is_empty());
    assert!(outcome.logs_text().contains("disconnected"));
}

#[tokio::test]
async fn user_claims_with_commas_and_duplicate_types_do_not_change_the_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    // This app forwards no claims (no AUTH_FORWARD_CLAIMS), so the upstream reads none: every
    // type below is ignored.
    let app = app(&dir).await;
    // `join admins` needs the admin role. A claim value smuggling `, roles: admin`, and a
    // duplicated roles claim, would grant it to a naive parser of this header.
    let forged = [
        "asrs.s.uid: alice, name: x, roles: admin",
        "asrs.s.uid: alice, roles: reader, roles: admin",
        "roles: admin",
    ];
    for claims in forged {
        let call = by_alice(Some("8"), "joinGroup", json!(["admins"]))
            .with_header("X-ASRS-User-Claims", Some(claims));
        let outcome = app.upstream(&call).await;
        assert_eq!(
            completion(&outcome)["error"],
            "forbidden: join",
            "{claims}: {outcome:#?}"
        );
        assert!(outcome.signalr_items().is_empty(), "{claims}");
        // Nor does a claim name another user: the id is X-ASRS-User-Id.
        let call = by_alice(Some("9"), "joinGroup", json!(["room-1"])).with_header(
            "X-ASRS-User-Claims",
            Some(&format!("{claims}, asrs.s.uid: bob")),
        );
        let outcome = app.upstream(&call).await;
        assert_eq!(outcome.signalr_items()[0]["userId"], "alice", "{claims}");
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_before_anything_is_emitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let mut msgpack = alice_joins_room_1();
    msgpack.content_type = "application/x-msgpack".into();
    let mut stream = alice_joins_room_1();
    stream.body =
        r#"{"type":4,"invocationId":"1","target":"joinGroup","arguments":["room-1"]}"#.into();
    let cases = [
        (
            alice_joins_room_1().with_header("X-ASRS-Event", Some("sendToGroup")),
            400,
            "event is not the target",
        ),
        (
            alice_joins_room_1().with_header("X-ASRS-Category", Some("admin")),
            400,
            "unknown category",
        ),
        (
            alice_joins_room_1().with_header("X-ASRS-Hub", None),
            400,
            "no hub",
        ),
        (msgpack, 415, "MessagePack"),
        (stream, 400, "a stream invocation"),
    ];
    for (call, status, description) in cases {
        let outcome = app.upstream(&call).await;
        assert_eq!(outcome.status, status, "{description}: {outcome:#?}");
        assert!(outcome.signalr_items().is_empty(), "{description}");
    }
}

#[tokio::test]
async fn a_malformed_user_id_header_is_refused_with_its_exact_reason_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let cases = [
        ("..", "`userId` must not be made only of dots"),
        ("a/b", "`userId` must not contain `/`"),
        ("100%", "`userId` must not contain `/`, `\\` or `%`"),
    ];
    for (user, rule) in cases {
        for call in [
            UpstreamCall::connected("conn-1", Some(user)),
            UpstreamCall::invocation(
                "conn-1",
                Some(user),
                Some("1"),
                "joinGroup",
                json!(["room-1"]),
            ),
        ] {
            let outcome = app.upstream(&call).await;
            // The caller sees the refusal it always got, nothing internal.
            assert_eq!(outcome.status, 401, "{user:?}: {outcome:#?}");
            assert_error_body(&outcome.body);
            assert_eq!(outcome.body["error"], "invalid_token", "{user:?}");
            assert_eq!(outcome.body["message"], "The access token is invalid.");
            assert_eq!(
                outcome.header("WWW-Authenticate"),
                Some("Bearer error=\"invalid_token\"")
            );
            assert!(outcome.signalr_items().is_empty(), "{user:?}");
            // The operator sees which header and which rule.
            let logs = outcome.logs_text();
            assert!(
                logs.contains(&format!(
                    "the X-ASRS-User-Id header is not a valid user id: {rule}"
                )),
                "{user:?}: {logs}"
            );
        }
    }
}

/// Forwards `team` and `roles`: `onConnect` joins `team.{claim:team}`, `invoke` needs the
/// `member` role for `joinGroup`, and the per-operation rules read `team` and `roles`.
async fn claims_app(dir: &tempfile::TempDir) -> TestApp {
    let path = dir.path().join("claims-policy.json");
    std::fs::write(
        &path,
        json!({
            "rules": [
                {"operations": ["join"], "groups": ["room-*", "team.{claim:team}"]},
                {"operations": ["join"], "groups": ["admins"], "require": {"roles": ["admin"]}}
            ],
            "invoke": [
                {"targets": ["joinGroup"], "require": {"roles": ["member"]}}
            ],
            "onConnect": {"groups": ["user.{userId}", "team.{claim:team}"]}
        })
        .to_string(),
    )
    .expect("write policy");
    let mut config = AppConfig::hs256();
    config
        .set("POLICY_FILE", &path.to_string_lossy())
        .set("AUTH_FORWARD_CLAIMS", "team, roles");
    spawn_app(config).await
}

/// `joinGroup(group)` by alice, with `claims` as `X-ASRS-User-Claims`.
fn join_with_claims(group: &str, claims: &str) -> UpstreamCall {
    by_alice(Some("1"), "joinGroup", json!([group])).with_header("X-ASRS-User-Claims", Some(claims))
}

/// `X-ASRS-User-Claims` as the service builds it from a connection token's claims: each
/// claim (one per array item) as `Claim.ToString()`, `type: value`, joined with `, `
/// (docs/protocol/signalr-service.md §6).
fn header_the_service_would_send(token: &str) -> String {
    let (_, payload) = decode_service_token(token);
    let mut pairs = Vec::new();
    for (claim_type, value) in &payload {
        let items = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for item in items {
            let text = item
                .as_str()
                .map_or_else(|| item.to_string(), str::to_owned);
            pairs.push(format!("{claim_type}: {text}"));
        }
    }
    pairs.join(", ")
}

#[tokio::test]
async fn connected_joins_the_team_from_the_forwarded_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = claims_app(&dir).await;
    let call = UpstreamCall::connected("conn-1", Some("alice")).with_header(
        "X-ASRS-User-Claims",
        Some("asrs.s.uid: alice, team: red, aud: http://localhost:8888/client/?hub=chat, exp: 1"),
    );
    let outcome = app.upstream(&call).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(
        outcome.signalr_items(),
        vec![
            json!({"action": "add", "userId": "alice", "groupName": "user.alice"}),
            json!({"action": "add", "userId": "alice", "groupName": "team.red"}),
        ]
    );
    // No team claim, or an untrusted header: the user's own group only.
    for claims in [None, Some("team: red,roles: admin")] {
        let call = UpstreamCall::connected("conn-1", Some("alice"))
            .with_header("X-ASRS-User-Claims", claims);
        let outcome = app.upstream(&call).await;
        assert_eq!(
            outcome.signalr_items(),
            vec![json!({"action": "add", "userId": "alice", "groupName": "user.alice"})],
            "{claims:?}"
        );
    }
}

#[tokio::test]
async fn connected_logs_each_on_connect_template_it_cannot_fill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = claims_app(&dir).await;
    let skipped = |template: &str| format!("onConnect group {template:?} skipped");
    // No team claim, several teams, or a team that is not a valid group name: the team group
    // is skipped, and the log says which template.
    for claims in [
        "asrs.s.uid: alice",
        "team: red, team: blue",
        "team: red/admins",
    ] {
        let call = UpstreamCall::connected("conn-1", Some("alice"))
            .with_header("X-ASRS-User-Claims", Some(claims));
        let outcome = app.upstream(&call).await;
        assert_eq!(
            outcome.signalr_items(),
            vec![json!({"action": "add", "userId": "alice", "groupName": "user.alice"})],
            "{claims}"
        );
        let logs = outcome.logs_text();
        assert!(
            logs.contains(&skipped("team.{claim:team}")),
            "{claims}: {logs}"
        );
        assert!(
            !logs.contains(&skipped("user.{userId}")),
            "{claims}: {logs}"
        );
        assert!(!logs.contains("red/admins"), "never the value: {logs}");
    }
    // A user id with a dot is a valid id but not one group-name segment: its own group is
    // skipped; the team group still joins.
    let call = UpstreamCall::connected("conn-1", Some("alice.smith"))
        .with_header("X-ASRS-User-Claims", Some("team: red"));
    let outcome = app.upstream(&call).await;
    assert_eq!(
        outcome.signalr_items(),
        vec![json!({"action": "add", "userId": "alice.smith", "groupName": "team.red"})]
    );
    let logs = outcome.logs_text();
    assert!(logs.contains(&skipped("user.{userId}")), "{logs}");
    assert!(!logs.contains(&skipped("team.{claim:team}")), "{logs}");
    // Every template filled: nothing logged as skipped.
    let call = UpstreamCall::connected("conn-1", Some("alice"))
        .with_header("X-ASRS-User-Claims", Some("team: red"));
    let outcome = app.upstream(&call).await;
    assert_eq!(outcome.signalr_items().len(), 2, "{outcome:#?}");
    assert!(!outcome.logs_text().contains("skipped"), "{outcome:#?}");
}

#[tokio::test]
async fn duplicate_types_are_arrays_and_invoke_requires_the_forwarded_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = claims_app(&dir).await;
    let allowed = [
        ("room-1", "asrs.s.uid: alice, roles: reader, roles: member"),
        ("admins", "roles: member, roles: admin"),
        ("team.red", "roles: member, team: red"),
    ];
    for (group, claims) in allowed {
        let outcome = app.upstream(&join_with_claims(group, claims)).await;
        assert_eq!(
            completion(&outcome)["result"]["group"],
            group,
            "{claims}: {outcome:#?}"
        );
    }
    let denied = [
        ("room-1", "roles: reader", "forbidden: invoke"),
        ("room-1", "", "forbidden: invoke"),
        ("admins", "roles: member", "forbidden: join"),
        ("team.red", "roles: member, team: blue", "forbidden: join"),
        // Types not in AUTH_FORWARD_CLAIMS are ignored, whatever they say.
        (
            "room-1",
            "role: member, groups: member, asrs.u.roles: member, \
             http://schemas.microsoft.com/ws/2008/06/identity/claims/role: member",
            "forbidden: invoke",
        ),
    ];
    for (group, claims, error) in denied {
        let outcome = app.upstream(&join_with_claims(group, claims)).await;
        assert_eq!(
            completion(&outcome)["error"],
            error,
            "{claims}: {outcome:#?}"
        );
        assert!(outcome.signalr_items().is_empty(), "{claims}");
    }
}

#[tokio::test]
async fn a_value_with_a_comma_never_reaches_the_header_and_a_malformed_header_grants_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = claims_app(&dir).await;
    // A verified team whose value smuggles `, roles: admin`: negotiate leaves it out of the
    // token (logging the type, not the value), so the header the service builds from that
    // token carries no such pair, and `join admins` stays forbidden.
    let mut user_claims = claims("alice");
    user_claims.insert("team".into(), json!("red, roles: admin"));
    user_claims.insert("roles".into(), json!(["member"]));
    let negotiated = app.negotiate(&hs256_token(&user_claims)).await;
    assert_eq!(negotiated.status, 200, "{negotiated:#?}");
    let token = negotiated.body["accessToken"].as_str().expect("token");
    let (_, payload) = decode_service_token(token);
    assert!(!payload.contains_key("team"), "{payload:?}");
    assert_eq!(payload["roles"], json!(["member"]));
    let logs = negotiated.logs_text();
    assert!(logs.contains(r#"["team"]"#), "{logs}");
    assert!(
        !logs.contains("roles: admin"),
        "never logs the value: {logs}"
    );
    let header = header_the_service_would_send(token);
    assert!(!header.contains("admin"), "{header}");
    let outcome = app.upstream(&join_with_claims("admins", &header)).await;
    assert_eq!(
        completion(&outcome)["error"],
        "forbidden: join",
        "{outcome:#?}"
    );

    // Headers that cannot come from a token negotiate signed are not trusted at all: even the
    // genuine-looking `roles: member` beside them is dropped, so `invoke` is refused.
    for claims in [
        "roles: member, team: red,roles: admin",
        "roles: member, team: red, roles, roles: admin",
        "roles: member, team: ",
        "roles: member, team:  red",
    ] {
        let outcome = app.upstream(&join_with_claims("admins", claims)).await;
        assert_eq!(
            completion(&outcome)["error"],
            "forbidden: invoke",
            "{claims}: {outcome:#?}"
        );
        assert!(outcome.signalr_items().is_empty(), "{claims}");
        assert!(
            outcome
                .logs_text()
                .contains("X-ASRS-User-Claims not trusted"),
            "{claims}: {:?}",
            outcome.logs
        );
    }
}

#[tokio::test]
async fn a_user_id_with_a_comma_cannot_smuggle_a_role_through_its_own_claim_item() {
    // An outside review's finding: with `AUTH_USER_ID_CLAIM` on a claim users partly choose, an
    // id `mallory, roles: admin` is signed as `asrs.s.uid`, and the service writes it into
    // `X-ASRS-User-Claims` as `asrs.s.uid: mallory, roles: admin`, which reads as a role.
    let dir = tempfile::tempdir().expect("tempdir");
    let app = claims_app(&dir).await;
    let smuggler = "mallory, roles: admin";
    let mut user_claims = claims(smuggler);
    user_claims.insert("roles".into(), json!(["member"]));
    let negotiated = app.negotiate(&hs256_token(&user_claims)).await;
    assert_eq!(negotiated.status, 200, "{negotiated:#?}");
    let token = negotiated.body["accessToken"].as_str().expect("token");
    let header = header_the_service_would_send(token);
    assert!(
        header.contains("asrs.s.uid: mallory, roles: admin"),
        "{header}"
    );
    let call = UpstreamCall::invocation(
        "conn-1",
        Some(smuggler),
        Some("1"),
        "joinGroup",
        json!(["admins"]),
    )
    .with_header("X-ASRS-User-Claims", Some(&header));
    let outcome = app.upstream(&call).await;
    assert!(
        completion(&outcome)["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("forbidden")),
        "{outcome:#?}"
    );
    assert!(outcome.signalr_items().is_empty());
}
