//! Every issued token carries the end of the verified login (`asrs.s.coae`/`asrs.s.aeo`, which
//! the service closes the connection at), and negotiate tells the client its token's lifetime.

use serde_json::{Map, Value, json};

use crate::helpers::*;

const SESSION: u64 = 900;

/// The token's claims, after checking the close-on-expiry pair and `tokenLifetimeSeconds`
/// against a clock read `before` and `after` the call.
fn checked_claims(outcome: &Outcome, before: u64, after: u64) -> Map<String, Value> {
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let token = outcome.body["accessToken"].as_str().expect("token");
    let (_, claims) = decode_service_token(token);
    assert_eq!(claims["asrs.s.coae"], json!("true"), "{claims:?}");
    let aeo: u64 = claims["asrs.s.aeo"]
        .as_str()
        .expect("aeo is a decimal string, as the SDK writes it")
        .parse()
        .expect("decimal");
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(exp <= aeo, "the token never outlives the login: {claims:?}");
    let lifetime = outcome.body["tokenLifetimeSeconds"]
        .as_u64()
        .expect("tokenLifetimeSeconds");
    assert!(
        exp - after <= lifetime && lifetime <= exp - before,
        "tokenLifetimeSeconds {lifetime} is the token's exp - now (exp {exp}, now {before}..{after})"
    );
    claims
}

fn aeo(claims: &Map<String, Value>) -> u64 {
    claims["asrs.s.aeo"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("aeo")
}

fn with_session(mut config: AppConfig) -> AppConfig {
    config.set("SIGNALR_SESSION_LIFETIME_SECONDS", &SESSION.to_string());
    config
}

#[tokio::test]
async fn a_jwt_users_connection_ends_at_the_app_tokens_exp() {
    let app = spawn_app(with_session(AppConfig::hs256())).await;
    let mut user_claims = claims("alice");
    let app_exp = now() + 1234;
    user_claims.insert("exp".into(), json!(app_exp));
    let before = now();
    let outcome = app
        .negotiate_with(
            &[(
                "Authorization",
                &format!("Bearer {}", hs256_token(&user_claims)),
            )],
            &[],
        )
        .await;
    let claims = checked_claims(&outcome, before, now());
    assert_eq!(aeo(&claims), app_exp, "not the session length: {claims:?}");
    assert_eq!(claims["exp"], json!(app_exp));
}

#[tokio::test]
async fn a_minted_token_carries_the_same_deadline() {
    let root = tempfile::tempdir().expect("tempdir");
    let negotiate = root.path().join("negotiate");
    std::fs::create_dir(&negotiate).expect("mkdir");
    std::fs::write(
        negotiate.join("function.json"),
        r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"route":"negotiate"},{"type":"http","direction":"out","name":"res"}]}"#,
    )
    .expect("write");
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    config.set("SIGNALR_HUB_NAME", "Chat");
    let app = spawn_app(config).await;
    let mut user_claims = claims("frank");
    let app_exp = now() + 600;
    user_claims.insert("exp".into(), json!(app_exp));
    let before = now();
    let outcome = app
        .invoke(
            "negotiate",
            &payload(
                "negotiate-minted.json",
                &[("APP_TOKEN", &hs256_token(&user_claims))],
            ),
        )
        .await;
    let claims = checked_claims(&outcome, before, now());
    assert_eq!(aeo(&claims), app_exp);
}

#[tokio::test]
async fn a_visitors_connection_ends_at_the_visitor_tokens_exp() {
    let mut config = with_session(AppConfig::hs256());
    config
        .set("AUTH_SOURCES", "jwt,anonymous")
        .set("AUTH_ANONYMOUS_SECRET", VISITOR_SECRET)
        .set("AUTH_ANONYMOUS_ISSUER", VISITOR_ISSUER);
    let app = spawn_app(config).await;
    let visitor_exp = now() + 500;
    let token = visitor_token("v-1", VISITOR_SECRET, now(), visitor_exp);
    let before = now();
    let outcome = app
        .negotiate_with(&[("X-Visitor-Token", &token)], &[])
        .await;
    let claims = checked_claims(&outcome, before, now());
    assert_eq!(aeo(&claims), visitor_exp);
}

#[tokio::test]
async fn an_app_service_users_connection_ends_after_the_session_length() {
    let mut config = with_session(AppConfig::hs256());
    config
        .set("AUTH_SOURCES", "appservice,jwt")
        .set("WEBSITE_AUTH_ENABLED", "true");
    let app = spawn_app(config).await;
    let principal = principal_header(&app_service_principal("aad-user-1", &[]));
    let before = now();
    let outcome = app
        .negotiate_with(&[("X-MS-CLIENT-PRINCIPAL", &principal)], &[])
        .await;
    let after = now();
    let claims = checked_claims(&outcome, before, after);
    let end = aeo(&claims);
    assert!(
        before + SESSION <= end && end <= after + SESSION,
        "{end} is now + SIGNALR_SESSION_LIFETIME_SECONDS"
    );
}

#[tokio::test]
async fn a_certificate_users_connection_ends_after_the_session_length_not_at_not_after() {
    let certificate = test_certificate("device-7", unix_now() - 86_400, unix_now() + 86_400);
    let mut config = with_session(AppConfig::hs256());
    config
        .set("AUTH_SOURCES", "clientcert")
        .set("CLIENT_CERT_THUMBPRINTS", &certificate.thumbprint)
        .set("CLIENT_CERT_USER_ID_FROM", "subject-cn");
    let app = spawn_app(config).await;
    let before = now();
    let outcome = app
        .negotiate_with(&[("X-ARR-ClientCert", &certificate.der_base64)], &[])
        .await;
    let after = now();
    let claims = checked_claims(&outcome, before, after);
    let end = aeo(&claims);
    assert!(before + SESSION <= end && end <= after + SESSION, "{end}");
}

#[tokio::test]
async fn the_session_length_defaults_to_the_token_lifetime() {
    let mut config = AppConfig::hs256();
    config
        .set("AUTH_SOURCES", "appservice,jwt")
        .set("WEBSITE_AUTH_ENABLED", "true");
    let app = spawn_app(config).await;
    let principal = principal_header(&app_service_principal("aad-user-2", &[]));
    let before = now();
    let outcome = app
        .negotiate_with(&[("X-MS-CLIENT-PRINCIPAL", &principal)], &[])
        .await;
    let after = now();
    let end = aeo(&checked_claims(&outcome, before, after));
    assert!(before + 3600 <= end && end <= after + 3600, "{end}");
}

#[tokio::test]
async fn turning_the_claims_off_issues_tokens_without_them() {
    let mut config = AppConfig::hs256();
    config.set("SIGNALR_CLOSE_ON_AUTH_EXPIRY", "false");
    let app = spawn_app(config).await;
    let outcome = app
        .negotiate_with(
            &[(
                "Authorization",
                &format!("Bearer {}", hs256_token(&claims("alice"))),
            )],
            &[],
        )
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let (_, claims) = decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
    assert!(!claims.contains_key("asrs.s.coae"), "{claims:?}");
    assert!(!claims.contains_key("asrs.s.aeo"), "{claims:?}");
    assert!(outcome.body["tokenLifetimeSeconds"].is_u64());
}

#[test]
fn bad_expiry_settings_stop_start_up_naming_the_setting() {
    for (name, value) in [
        ("SIGNALR_CLOSE_ON_AUTH_EXPIRY", "sometimes"),
        ("SIGNALR_SESSION_LIFETIME_SECONDS", "0"),
        ("SIGNALR_SESSION_LIFETIME_SECONDS", "1h"),
    ] {
        let mut config = AppConfig::hs256();
        config.set(name, value);
        let stderr = start_expecting_failure(&config);
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}
