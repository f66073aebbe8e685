//! The Web PubSub event handler `connect`: the abuse-protection handshake, `ce-signature`
//! (primary and secondary key), client certificates and the app JWT at connect, and the
//! policy's grants in the answer.

use serde_json::{Value, json};

use crate::helpers::*;

const DAY: i64 = 86_400;

/// A policy whose `webPubSubConnect` templates are filled from the verified user.
fn policy_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("policy.json");
    std::fs::write(
        &path,
        json!({
            "rules": [{"operations": ["join", "leave"], "groups": ["user.{userId}"]}],
            "webPubSubConnect": {
                "groups": ["user.{userId}"],
                "roles": ["webpubsub.sendToGroup.user.{userId}"]
            }
        })
        .to_string(),
    )
    .expect("write policy");
    path.to_string_lossy().into_owned()
}

/// JWT required at connect, certificates optional.
fn jwt_config(dir: &tempfile::TempDir) -> AppConfig {
    let mut config = AppConfig::hs256();
    config.set("POLICY_FILE", &policy_file(dir));
    config.set("WEBPUBSUB_SECONDARY_ACCESS_KEY", WEBPUBSUB_SECONDARY_KEY);
    config
}

/// Certificates required at connect, no JWT.
fn cert_config(dir: &tempfile::TempDir, thumbprints: &str) -> AppConfig {
    let mut config = jwt_config(dir);
    config
        .set("WEBPUBSUB_REQUIRE_CLIENT_CERT", "true")
        .set("WEBPUBSUB_CONNECT_JWT", "off")
        .set("CLIENT_CERT_THUMBPRINTS", thumbprints);
    config
}

fn certificate_entry(certificate: &TestCertificate) -> Value {
    json!([{"thumbprint": certificate.thumbprint, "content": certificate.pem}])
}

#[tokio::test]
async fn the_abuse_protection_handshake_is_answered_only_for_the_configured_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(jwt_config(&dir)).await;
    let outcome = app
        .connect_handshake(&[("WebHook-Request-Origin", WEBPUBSUB_HOST)])
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(
        outcome.header("WebHook-Allowed-Origin"),
        Some(WEBPUBSUB_HOST)
    );

    let other = app
        .connect_handshake(&[("WebHook-Request-Origin", "attacker.webpubsub.azure.com")])
        .await;
    assert_eq!(other.status, 400, "{other:#?}");
    assert_eq!(other.header("WebHook-Allowed-Origin"), None);
    assert!(other.logs_text().contains("attacker.webpubsub.azure.com"));

    let missing = app.connect_handshake(&[]).await;
    assert_eq!(missing.status, 400, "{missing:#?}");
    assert_eq!(missing.header("WebHook-Allowed-Origin"), None);
}

#[tokio::test]
async fn a_signed_connect_with_a_valid_jwt_gets_the_policy_grants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(jwt_config(&dir)).await;
    let token = hs256_token(&claims("alice"));
    let outcome = app
        .connect_event(&WpsEvent::connect(
            "conn-1",
            connect_body(Some(&token), json!([])),
        ))
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(
        outcome.body,
        json!({"userId": "alice", "groups": ["user.alice"],
               "roles": ["webpubsub.sendToGroup.user.alice"]})
    );
}

#[tokio::test]
async fn either_access_key_signs_and_a_rotated_out_key_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(jwt_config(&dir)).await;
    let token = hs256_token(&claims("alice"));
    for keys in [
        vec![WEBPUBSUB_PRIMARY_KEY],
        vec![WEBPUBSUB_SECONDARY_KEY],
        vec![
            "INSECURE-TEST-RETIRED-KEY-0123456789ABCDEFGH",
            WEBPUBSUB_SECONDARY_KEY,
        ],
    ] {
        let mut event = WpsEvent::connect("conn-2", connect_body(Some(&token), json!([])));
        event.signature = Some(wps_signature(&keys, "conn-2"));
        let outcome = app.connect_event(&event).await;
        assert_eq!(outcome.status, 200, "{keys:?}: {outcome:#?}");
    }
    let mut retired = WpsEvent::connect("conn-2", connect_body(Some(&token), json!([])));
    retired.signature = Some(wps_signature(
        &["INSECURE-TEST-RETIRED-KEY-0123456789ABCDEFGH"],
        "conn-2",
    ));
    let outcome = app.connect_event(&retired).await;
    assert_eq!(outcome.status, 401, "{outcome:#?}");
}

#[tokio::test]
async fn bad_missing_and_replayed_signatures_are_refused_with_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(jwt_config(&dir)).await;
    let token = hs256_token(&claims("alice"));
    let body = || connect_body(Some(&token), json!([]));

    let mut missing = WpsEvent::connect("conn-3", body());
    missing.signature = None;
    let mut garbage = WpsEvent::connect("conn-3", body());
    garbage.signature = Some("sha256=not-hex".into());
    let mut replayed = WpsEvent::connect("conn-4", body());
    replayed.signature = Some(wps_signature(
        &[WEBPUBSUB_PRIMARY_KEY, WEBPUBSUB_SECONDARY_KEY],
        "conn-3",
    ));
    let mut wrong_origin = WpsEvent::connect("conn-3", body());
    wrong_origin.origin = Some("attacker.webpubsub.azure.com".into());
    let mut no_origin = WpsEvent::connect("conn-3", body());
    no_origin.origin = None;
    let cases = [
        (missing, "no single ce-signature header"),
        (garbage, "matches no access key"),
        (replayed, "matches no access key"),
        (wrong_origin, "not the configured Web PubSub host"),
        (no_origin, "no single WebHook-Request-Origin header"),
    ];
    for (event, reason) in cases {
        let outcome = app.connect_event(&event).await;
        assert_eq!(outcome.status, 401, "{reason}: {outcome:#?}");
        assert!(!outcome.body_text.contains("userId"), "{outcome:#?}");
        assert!(
            outcome.logs_text().contains(reason),
            "{reason}: {:?}",
            outcome.logs
        );
    }
}

#[tokio::test]
async fn connect_without_the_required_jwt_or_with_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(jwt_config(&dir)).await;
    let mut expired = claims("alice");
    expired.insert("exp".into(), json!(now() - 120));
    let reserved = hs256_token(&claims("anon:alice"));
    let cases = [
        (None, "no credential presented"),
        (Some(hs256_token(&expired)), "token rejected: expired "),
        (Some(reserved), "reserved for anonymous visitors"),
    ];
    for (token, reason) in cases {
        let outcome = app
            .connect_event(&WpsEvent::connect(
                "conn-5",
                connect_body(token.as_deref(), json!([])),
            ))
            .await;
        outcome.assert_unauthorized(reason);
    }
}

#[tokio::test]
async fn a_listed_certificate_identifies_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let current = test_certificate("device-7", unix_now() - DAY, unix_now() + DAY);
    let next = test_certificate("device-7", unix_now() - DAY, unix_now() + 30 * DAY);
    let app = spawn_app(cert_config(
        &dir,
        &format!(
            "{}=device-7,{}=device-7",
            current.thumbprint, next.thumbprint
        ),
    ))
    .await;
    for certificate in [&current, &next] {
        let outcome = app
            .connect_event(&WpsEvent::connect(
                "conn-6",
                connect_body(None, certificate_entry(certificate)),
            ))
            .await;
        assert_eq!(outcome.status, 200, "{outcome:#?}");
        assert_eq!(outcome.body["userId"], "device-7");
        assert_eq!(outcome.body["groups"], json!(["user.device-7"]));
    }
    // The service may send only the thumbprint (content is optional on some versions).
    let outcome = app
        .connect_event(&WpsEvent::connect(
            "conn-6",
            connect_body(
                None,
                json!([{"thumbprint": current.thumbprint.to_ascii_lowercase()}]),
            ),
        ))
        .await;
    assert_eq!(outcome.body["userId"], "device-7", "{outcome:#?}");
}

#[tokio::test]
async fn a_missing_certificate_gets_401_and_a_refused_one_403() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = test_certificate("device-7", unix_now() - DAY, unix_now() + DAY);
    let expired = test_certificate("old", unix_now() - 30 * DAY, unix_now() - DAY);
    let future = test_certificate("new", unix_now() + DAY, unix_now() + 30 * DAY);
    let unlisted = test_certificate("stranger", unix_now() - DAY, unix_now() + DAY);
    let app = spawn_app(cert_config(
        &dir,
        &format!(
            "{}=device-7,{}=old,{}=new",
            listed.thumbprint, expired.thumbprint, future.thumbprint
        ),
    ))
    .await;

    let missing = app
        .connect_event(&WpsEvent::connect("conn-7", connect_body(None, json!([]))))
        .await;
    missing.assert_unauthorized("no client certificate was presented");

    let mismatched = json!([{"thumbprint": listed.thumbprint, "content": unlisted.pem}]);
    let cases = [
        (certificate_entry(&expired), "has expired"),
        (certificate_entry(&future), "is not valid yet"),
        (
            certificate_entry(&unlisted),
            "is not on CLIENT_CERT_THUMBPRINTS",
        ),
        (mismatched, "does not match the certificate"),
        (json!([{"thumbprint": "zz"}]), "not a SHA-1 thumbprint"),
    ];
    for (certificates, reason) in cases {
        let outcome = app
            .connect_event(&WpsEvent::connect(
                "conn-7",
                connect_body(None, certificates),
            ))
            .await;
        assert_eq!(outcome.status, 403, "{reason}: {outcome:#?}");
        assert_eq!(outcome.body["error"], "certificate_refused");
        assert!(
            outcome.logs_text().contains(reason),
            "{reason}: {:?}",
            outcome.logs
        );
    }
}

#[tokio::test]
async fn with_both_required_the_certificate_must_be_listed_and_the_jwt_names_the_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = test_certificate("device-7", unix_now() - DAY, unix_now() + DAY);
    let unlisted = test_certificate("stranger", unix_now() - DAY, unix_now() + DAY);
    let mut config = cert_config(&dir, &format!("{}=device-7", listed.thumbprint));
    config.set("WEBPUBSUB_CONNECT_JWT", "required");
    let app = spawn_app(config).await;
    let token = hs256_token(&claims("alice"));
    let outcome = app
        .connect_event(&WpsEvent::connect(
            "conn-8",
            connect_body(Some(&token), certificate_entry(&listed)),
        ))
        .await;
    assert_eq!(outcome.body["userId"], "alice", "{outcome:#?}");
    let refused = app
        .connect_event(&WpsEvent::connect(
            "conn-8",
            connect_body(Some(&token), certificate_entry(&unlisted)),
        ))
        .await;
    assert_eq!(refused.status, 403, "{refused:#?}");
}

#[tokio::test]
async fn other_system_events_get_204_and_user_events_are_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(jwt_config(&dir)).await;
    for name in ["connected", "disconnected"] {
        let outcome = app
            .connect_event(&WpsEvent::system(
                name,
                "conn-9",
                json!({"reason": "closed"}),
            ))
            .await;
        assert_eq!(outcome.status, 204, "{name}: {outcome:#?}");
        assert_eq!(outcome.body_text, "");
    }
    // Unsigned, a system event is still refused.
    let mut unsigned = WpsEvent::system("disconnected", "conn-9", json!({}));
    unsigned.signature = None;
    assert_eq!(app.connect_event(&unsigned).await.status, 401);

    let mut user_event = WpsEvent::system("x", "conn-9", json!({}));
    user_event.event_type = "azure.webpubsub.user.message".into();
    let outcome = app.connect_event(&user_event).await;
    assert_eq!(outcome.status, 400, "{outcome:#?}");
}

#[tokio::test]
async fn a_malformed_connect_body_is_refused_with_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(jwt_config(&dir)).await;
    let outcome = app
        .connect_event(&WpsEvent::connect(
            "conn-10",
            json!({"query": {"app_token": "insecure-secret-looking-token"}}),
        ))
        .await;
    assert_eq!(outcome.status, 400, "{outcome:#?}");
    assert!(outcome.logs_text().contains("malformed connect event body"));
    assert!(
        !outcome
            .logs_text()
            .contains("insecure-secret-looking-token"),
        "the body's values must not reach the log: {:?}",
        outcome.logs
    );
}

#[tokio::test]
async fn connect_needs_its_connection_string_at_start_up() {
    let mut config = AppConfig::hs256();
    config.unset("WEBPUBSUB_CONNECTION_STRING");
    let stderr = start_expecting_failure(&config);
    assert!(stderr.contains("WEBPUBSUB_CONNECTION_STRING"), "{stderr}");
}

#[tokio::test]
async fn the_connect_handler_is_off_without_its_connection_string() {
    let mut config = AppConfig::hs256();
    config
        .unset("WEBPUBSUB_CONNECTION_STRING")
        .unset("WEBPUBSUB_REQUIRE_CLIENT_CERT")
        .unset("WEBPUBSUB_CONNECT_JWT");
    let app = spawn_app(config).await;
    let outcome = app
        .invoke(
            "connect",
            &serde_json::json!({"Data": {"req": {"Method": "OPTIONS", "Headers": {}}}}),
        )
        .await;
    assert_eq!(outcome.status, 404, "{outcome:#?}");
    assert!(
        outcome.logs_text().contains("connect handler is off"),
        "{:?}",
        outcome.logs
    );
    assert_eq!(
        app.negotiate(&hs256_token(&claims("alice"))).await.status,
        200,
        "the rest of the app works"
    );

    let mut half_configured = AppConfig::hs256();
    half_configured.unset("WEBPUBSUB_CONNECTION_STRING");
    let stderr = start_expecting_failure(&half_configured);
    assert!(stderr.contains("WEBPUBSUB_"), "{stderr}");
}
