//! `refresh`: the client contract (`POST refresh?id=<connection token>` → `{accessToken,
//! tokenLifetimeSeconds}` or `{"error": code}`) on top of the service's `:refreshAuth`, with a
//! stand-in service that checks the user as the service does.

use serde_json::{Value, json};

use crate::helpers::*;

const CONNECTION: &str = "conn-token-AAAA";

fn token_with(user: &str, extra: Value, exp: u64) -> String {
    let mut claims = claims(user);
    claims.insert("exp".into(), json!(exp));
    if let Value::Object(extra) = extra {
        claims.extend(extra);
    }
    hs256_token(&claims)
}

/// A host-shaped refresh invocation: `method`, the `id` query (if any), the bearer token.
fn refresh_payload(method: &str, id: Option<&str>, app_token: Option<&str>) -> Value {
    let mut payload = function_payload("refresh", app_token, &json!({}));
    let request = &mut payload["Data"]["req"];
    request["Method"] = json!(method);
    request.as_object_mut().expect("req").remove("Body");
    for place in ["Data", "Metadata"] {
        let headers = if place == "Data" {
            &mut payload["Data"]["req"]["Headers"]
        } else {
            &mut payload["Metadata"]["Headers"]
        };
        let headers = headers.as_object_mut().expect("headers");
        headers.remove("Content-Type");
        headers.remove("Content-Length");
    }
    let query = match id {
        Some(id) => json!({"id": id}),
        None => json!({}),
    };
    payload["Data"]["req"]["Query"] = query.clone();
    payload["Metadata"]["Query"] = query;
    payload
}

async fn app_with(service: &RefreshStandIn) -> TestApp {
    let mut config = AppConfig::hs256();
    config
        .set("AzureSignalRConnectionString", &service.connection_string())
        .set("AUTH_FORWARD_CLAIMS", "team");
    spawn_app(config).await
}

async fn refresh(app: &TestApp, id: Option<&str>, app_token: Option<&str>) -> Outcome {
    app.invoke("refresh", &refresh_payload("POST", id, app_token))
        .await
}

fn assert_error(outcome: &Outcome, status: u64, code: &str) {
    assert_eq!(outcome.status, status, "{outcome:#?}");
    // The contract's code in the one body shape every status has.
    assert_eq!(outcome.body["error"], json!(code), "{outcome:#?}");
    assert_error_body(&outcome.body);
    assert!(outcome.output("signalRGroupActions").is_none());
}

/// The connection token never reaches a log line.
fn assert_id_not_logged(app: &TestApp, outcome: &Outcome, id: &str) {
    assert!(!outcome.logs_text().contains(id), "{:?}", outcome.logs);
    assert!(!app.stdout().contains(id) && !app.stderr().contains(id));
}

fn claim_values<'a>(body: &'a Value, name: &str) -> Vec<&'a str> {
    body["claims"]
        .as_array()
        .expect("claims")
        .iter()
        .filter(|claim| claim["type"] == name)
        .filter_map(|claim| claim["value"].as_str())
        .collect()
}

#[tokio::test]
async fn a_refresh_moves_the_deadline_and_returns_a_token_minted_from_the_answer() {
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[("team", "red")]);
    let app = app_with(&service).await;
    let new_exp = now() + 1800;
    let fresh = token_with("alice", json!({"team": "red"}), new_exp);
    let before = now();
    let outcome = refresh(&app, Some(CONNECTION), Some(&fresh)).await;
    let after = now();
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(outcome.header("Cache-Control"), Some("no-store"));

    let bodies = service.refresh_bodies();
    assert_eq!(bodies.len(), 1);
    let sent = &bodies[0];
    assert_eq!(sent["connectionToken"], CONNECTION);
    assert_eq!(claim_values(sent, "asrs.s.uid"), ["alice"]);
    assert_eq!(claim_values(sent, "asrs.s.coae"), ["true"]);
    assert_eq!(claim_values(sent, "asrs.s.aeo"), [new_exp.to_string()]);
    assert_eq!(claim_values(sent, "team"), ["red"]);
    let expected = time::OffsetDateTime::from_unix_timestamp(new_exp as i64)
        .expect("valid")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatted");
    assert_eq!(
        sent["expireTime"],
        json!(expected),
        "the new end, ISO 8601 UTC"
    );

    let token = outcome.body["accessToken"].as_str().expect("accessToken");
    let (_, claims) = decode_service_token(token);
    assert_eq!(claims["asrs.s.uid"], "alice");
    assert_eq!(claims["asrs.s.aeo"], json!(new_exp.to_string()));
    assert_eq!(claims["aud"], json!("http://127.0.0.1/client/?hub=chat"));
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(exp <= new_exp);
    let lifetime = outcome.body["tokenLifetimeSeconds"]
        .as_u64()
        .expect("lifetime");
    assert!(exp - after <= lifetime && lifetime <= exp - before);
    assert_id_not_logged(&app, &outcome, CONNECTION);
}

#[tokio::test]
async fn another_users_app_token_is_permission_change_rejected() {
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[]);
    let app = app_with(&service).await;
    let mallory = token_with("mallory", json!({}), now() + 600);
    let outcome = refresh(&app, Some(CONNECTION), Some(&mallory)).await;
    assert_error(&outcome, 403, "permission_change_rejected");
    assert!(
        service.refresh_bodies().is_empty(),
        "refused before any change"
    );
    assert_id_not_logged(&app, &outcome, CONNECTION);
}

#[tokio::test]
async fn the_services_own_user_check_is_permission_change_rejected() {
    // The claims read before the refresh still named the caller (another refresh raced it):
    // the service's 403 on `:refreshAuth` is the client's 403, and nothing is removed.
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[("team", "red")]);
    service.add_member("alice", "team.red");
    service.refuse_refreshes_as_another_user();
    let app = app_with(&service).await;
    let alice = token_with("alice", json!({"team": "blue"}), now() + 600);
    let outcome = refresh(&app, Some(CONNECTION), Some(&alice)).await;
    assert_error(&outcome, 403, "permission_change_rejected");
}

#[tokio::test]
async fn the_request_sent_to_the_service_always_carries_the_verified_user() {
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[]);
    let app = app_with(&service).await;
    // Even with nothing else to forward, the claims are sent, with the user.
    let alice = token_with("alice", json!({}), now() + 600);
    for _ in 0..2 {
        let outcome = refresh(&app, Some(CONNECTION), Some(&alice)).await;
        assert_eq!(outcome.status, 200, "{outcome:#?}");
    }
    let bodies = service.refresh_bodies();
    assert_eq!(bodies.len(), 2);
    for body in bodies {
        assert_eq!(claim_values(&body, "asrs.s.uid"), ["alice"], "{body}");
    }
}

#[tokio::test]
async fn an_expired_or_invalid_app_token_is_invalid_token() {
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[]);
    let app = app_with(&service).await;
    let expired = token_with("alice", json!({}), now() - 3600);
    let mut forged = token_with("alice", json!({}), now() + 600);
    forged.push('x');
    for token in [Some(expired.as_str()), Some(forged.as_str()), None] {
        let outcome = refresh(&app, Some(CONNECTION), token).await;
        assert_error(&outcome, 401, "invalid_token");
    }
    assert!(service.requests().is_empty(), "{:?}", service.requests());
}

#[tokio::test]
async fn an_unknown_connection_is_connection_not_found() {
    let service = RefreshStandIn::start().await;
    let app = app_with(&service).await;
    let alice = token_with("alice", json!({}), now() + 600);
    let outcome = refresh(&app, Some("no-such-connection"), Some(&alice)).await;
    assert_error(&outcome, 404, "connection_not_found");
    assert_id_not_logged(&app, &outcome, "no-such-connection");
}

#[tokio::test]
async fn get_is_method_not_allowed_without_a_body() {
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[]);
    let app = app_with(&service).await;
    let alice = token_with("alice", json!({}), now() + 600);
    let outcome = app
        .invoke(
            "refresh",
            &refresh_payload("GET", Some(CONNECTION), Some(&alice)),
        )
        .await;
    assert_eq!(outcome.status, 405, "{outcome:#?}");
    assert_eq!(outcome.body_text, "");
    assert_eq!(outcome.header("Allow"), Some("POST"));
    assert!(service.requests().is_empty());
}

#[tokio::test]
async fn a_missing_or_malformed_id_is_missing_connection_token() {
    let service = RefreshStandIn::start().await;
    let app = app_with(&service).await;
    let alice = token_with("alice", json!({}), now() + 600);
    for id in [None, Some(""), Some("a,b"), Some("has space"), Some("x\ny")] {
        let outcome = refresh(&app, id, Some(&alice)).await;
        assert_error(&outcome, 400, "missing_connection_token");
    }
    assert!(service.requests().is_empty());
}

#[tokio::test]
async fn a_service_that_is_down_is_503_never_a_refresh() {
    let service = RefreshStandIn::start().await;
    let app = app_with(&service).await;
    service.stop().await;
    let alice = token_with("alice", json!({}), now() + 600);
    let outcome = refresh(&app, Some(CONNECTION), Some(&alice)).await;
    assert_eq!(outcome.status, 503, "{outcome:#?}");
    assert_eq!(outcome.body["error"], "signalr_unavailable");
    assert!(outcome.body.get("accessToken").is_none());
    assert_id_not_logged(&app, &outcome, CONNECTION);
}

#[tokio::test]
async fn refresh_is_disabled_with_the_close_on_expiry_claims() {
    let service = RefreshStandIn::start().await;
    let mut config = AppConfig::hs256();
    config
        .set("AzureSignalRConnectionString", &service.connection_string())
        .set("SIGNALR_CLOSE_ON_AUTH_EXPIRY", "false");
    let app = spawn_app(config).await;
    let alice = token_with("alice", json!({}), now() + 600);
    let outcome = refresh(&app, Some(CONNECTION), Some(&alice)).await;
    assert_error(&outcome, 404, "refresh_disabled");
    assert!(service.requests().is_empty());
}

#[tokio::test]
async fn a_user_whose_team_changes_is_removed_from_the_old_teams_groups() {
    // The repository's policy.json: `join` on `team.{claim:team}` (and `team.{claim:team}.**`,
    // which names no group it could enumerate).
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[("team", "red")]);
    service.add_member("alice", "team.red");
    service.add_member("alice", "room-1");
    let app = app_with(&service).await;
    let moved = token_with("alice", json!({"team": "blue"}), now() + 600);
    let outcome = refresh(&app, Some(CONNECTION), Some(&moved)).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let actions = outcome
        .output("signalRGroupActions")
        .expect("a group action");
    assert_eq!(
        actions,
        &json!([{"userId": "alice", "groupName": "team.red", "action": "remove"}])
    );
    assert!(
        outcome
            .logs_text()
            .contains("may no longer join \"team.red\""),
        "{:?}",
        outcome.logs
    );
    // Checked: the old team's group (and the user's own group, still allowed, not asked).
    let requests = service.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("HEAD /api/hubs/chat/users/alice/groups/team.red?")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("groups/team.blue")),
        "{requests:?}"
    );

    // Same team: nothing to leave.
    let same = token_with("alice", json!({"team": "blue"}), now() + 600);
    let again = refresh(&app, Some(CONNECTION), Some(&same)).await;
    assert_eq!(again.status, 200, "{again:#?}");
    assert!(again.output("signalRGroupActions").is_none());
}

#[tokio::test]
async fn a_membership_check_that_cannot_be_made_changes_nothing() {
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[("team", "red")]);
    let app = app_with(&service).await;
    let moved = token_with("alice", json!({"team": "blue"}), now() + 600);
    // Only the claims read answers; the HEAD gets a status the check does not expect.
    service.fail_membership_checks();
    let outcome = refresh(&app, Some(CONNECTION), Some(&moved)).await;
    assert_eq!(outcome.status, 503, "{outcome:#?}");
    assert!(
        service.refresh_bodies().is_empty(),
        "no refresh without the check"
    );
}

#[tokio::test]
async fn claims_a_service_answer_adds_never_reach_the_refreshed_token() {
    // An outside review's finding: the token was minted from whatever `:refreshAuth` answered.
    // It is minted from the verified claims the handler sent; an answer naming a second user is
    // refused.
    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[("team", "red")]);
    service.answer_refreshes_with_extra(&[("roles", "admin")]);
    let app = app_with(&service).await;
    let fresh = token_with("alice", json!({"team": "red"}), now() + 1800);
    let outcome = refresh(&app, Some(CONNECTION), Some(&fresh)).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let token = outcome.body["accessToken"].as_str().expect("accessToken");
    let (_, claims) = decode_service_token(token);
    assert!(claims.get("roles").is_none(), "{claims:?}");
    assert_eq!(claims["team"], "red");

    let service = RefreshStandIn::start().await;
    service.add_connection(CONNECTION, "alice", &[]);
    service.answer_refreshes_with_extra(&[("asrs.s.uid", "mallory")]);
    let app = app_with(&service).await;
    let fresh = token_with("alice", json!({}), now() + 1800);
    let outcome = refresh(&app, Some(CONNECTION), Some(&fresh)).await;
    assert_eq!(outcome.status, 503, "{outcome:#?}");
    assert!(outcome.body.get("accessToken").is_none());
}
