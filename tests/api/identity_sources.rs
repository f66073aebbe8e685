//! Each identity source accepted, and refused for each way its credential can be forged or
//! stale; and the order rule: the first source that presents a credential decides.

use serde_json::json;

use crate::helpers::*;

fn easy_auth_config() -> AppConfig {
    let mut config = AppConfig::hs256();
    config
        .set("AUTH_SOURCES", "appservice,jwt")
        .set("WEBSITE_AUTH_ENABLED", "true");
    config
}

fn visitor_config() -> AppConfig {
    let mut config = AppConfig::hs256();
    config
        .set("AUTH_SOURCES", "jwt,anonymous")
        .set("AUTH_ANONYMOUS_SECRET", VISITOR_SECRET)
        .set("AUTH_ANONYMOUS_ISSUER", VISITOR_ISSUER);
    config
}

fn cert_config(thumbprints: &str) -> AppConfig {
    let mut config = AppConfig::hs256();
    config
        .set("AUTH_SOURCES", "clientcert")
        .set("CLIENT_CERT_THUMBPRINTS", thumbprints);
    config
}

const DAY: i64 = 86_400;

// ---- App Service Authentication ----

#[tokio::test]
async fn an_app_service_principal_is_accepted_when_the_platform_enables_it() {
    let app = spawn_app(easy_auth_config()).await;
    let principal = principal_header(&app_service_principal("aad-user-1", &["admin"]));
    let outcome = app
        .negotiate_with(
            &[
                ("X-MS-CLIENT-PRINCIPAL", &principal),
                ("X-MS-CLIENT-PRINCIPAL-ID", "aad-user-1"),
                ("X-MS-CLIENT-PRINCIPAL-IDP", "aad"),
            ],
            &[],
        )
        .await;
    assert_eq!(outcome.issued_user(), "aad-user-1");
}

#[tokio::test]
async fn the_static_web_apps_shape_is_accepted_only_when_configured() {
    let swa = json!({"identityProvider": "github", "userId": "d75b260a64504067bfc5b2905e3b8182",
                     "userDetails": "alice", "userRoles": ["anonymous", "authenticated"]});
    let header = principal_header(&swa);

    let mut config = easy_auth_config();
    config.set("AUTH_APPSERVICE_FORMAT", "staticwebapps");
    let app = spawn_app(config).await;
    let outcome = app
        .negotiate_with(&[("x-ms-client-principal", &header)], &[])
        .await;
    assert_eq!(outcome.issued_user(), "d75b260a64504067bfc5b2905e3b8182");

    let app_service = spawn_app(easy_auth_config()).await;
    app_service
        .negotiate_with(&[("x-ms-client-principal", &header)], &[])
        .await
        .assert_unauthorized("has the Static Web Apps shape");
}

#[tokio::test]
async fn a_forged_principal_is_ignored_when_app_service_auth_is_off_and_a_warning_is_logged_once() {
    let mut config = easy_auth_config();
    config.unset("WEBSITE_AUTH_ENABLED");
    let app = spawn_app(config).await;
    let forged = principal_header(&app_service_principal("admin", &["admin"]));

    // Only the forged header: nothing presented, so 401 and no token.
    app.negotiate_with(&[("X-MS-CLIENT-PRINCIPAL", &forged)], &[])
        .await
        .assert_unauthorized("no credential presented");
    // With a real JWT, the JWT decides; the forged principal changes nothing.
    let token = hs256_token(&claims("alice"));
    let bearer = format!("Bearer {token}");
    let outcome = app
        .negotiate_with(
            &[
                ("X-MS-CLIENT-PRINCIPAL", &forged),
                ("X-MS-CLIENT-PRINCIPAL-ID", "admin"),
                ("Authorization", &bearer),
            ],
            &[],
        )
        .await;
    assert_eq!(outcome.issued_user(), "alice");

    let stderr = app
        .wait_for_stderr("WEBSITE_AUTH_ENABLED is not `true`")
        .await;
    assert_eq!(
        stderr.matches("WEBSITE_AUTH_ENABLED is not `true`").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test]
async fn tampered_principals_are_refused_and_not_passed_on_to_the_jwt_source() {
    let app = spawn_app(easy_auth_config()).await;
    let token = hs256_token(&claims("alice"));
    let bearer = format!("Bearer {token}");
    let numeric_val = principal_header(
        &json!({"auth_typ": "aad", "claims": [{"typ": NAME_ID_CLAIM, "val": 42}]}),
    );
    let mixed = principal_header(&json!({"auth_typ": "aad", "userId": "admin",
        "claims": [{"typ": NAME_ID_CLAIM, "val": "u1"}], "userRoles": ["admin"]}));
    let no_user_id =
        principal_header(&json!({"auth_typ": "aad", "claims": [{"typ": "name", "val": "Admin"}]}));
    let mut flipped = principal_header(&app_service_principal("u1", &[])).into_bytes();
    flipped[10] ^= 0x01;
    let flipped = String::from_utf8(flipped).expect("ascii");
    let cases = [
        (numeric_val.as_str(), "malformed"),
        (
            mixed.as_str(),
            "mixes the App Service and Static Web Apps shapes",
        ),
        (no_user_id.as_str(), "the user id claim"),
        ("not base64 at all!", "not base64"),
        (flipped.as_str(), "X-MS-CLIENT-PRINCIPAL rejected"),
    ];
    for (header, reason) in cases {
        app.negotiate_with(
            &[
                ("X-MS-CLIENT-PRINCIPAL", header),
                ("Authorization", &bearer),
            ],
            &[],
        )
        .await
        .assert_unauthorized(reason);
    }
}

#[tokio::test]
async fn the_principal_id_header_alone_is_never_trusted() {
    let app = spawn_app(easy_auth_config()).await;
    app.negotiate_with(&[("X-MS-CLIENT-PRINCIPAL-ID", "admin")], &[])
        .await
        .assert_unauthorized("the id alone is never trusted");
}

#[tokio::test]
async fn a_signed_in_principal_in_the_anonymous_namespace_is_refused() {
    let app = spawn_app(easy_auth_config()).await;
    let principal = principal_header(&app_service_principal("anon:v-1", &[]));
    app.negotiate_with(&[("X-MS-CLIENT-PRINCIPAL", &principal)], &[])
        .await
        .assert_unauthorized("reserved for anonymous visitors");
}

// ---- Client certificates (X-ARR-ClientCert) ----

#[tokio::test]
async fn a_listed_client_certificate_is_accepted_with_its_mapped_user_id() {
    let current = test_certificate("device-7", unix_now() - DAY, unix_now() + DAY);
    let next = test_certificate("device-7", unix_now() - DAY, unix_now() + 30 * DAY);
    let app = spawn_app(cert_config(&format!(
        "{}=device-7,{}=device-7",
        current.thumbprint,
        next.thumbprint.to_ascii_lowercase()
    )))
    .await;
    for certificate in [&current, &next] {
        let outcome = app
            .negotiate_with(&[("X-ARR-ClientCert", &certificate.der_base64)], &[])
            .await;
        assert_eq!(outcome.issued_user(), "device-7");
    }
}

#[tokio::test]
async fn the_subject_common_name_can_be_the_user_id() {
    let certificate = test_certificate("sensor-12", unix_now() - DAY, unix_now() + DAY);
    let mut config = cert_config(&certificate.thumbprint);
    config.set("CLIENT_CERT_USER_ID_FROM", "subject-cn");
    let app = spawn_app(config).await;
    let outcome = app
        .negotiate_with(&[("X-ARR-ClientCert", &certificate.der_base64)], &[])
        .await;
    assert_eq!(outcome.issued_user(), "sensor-12");
}

#[tokio::test]
async fn expired_not_yet_valid_unlisted_and_malformed_certificates_are_refused() {
    let expired = test_certificate("old", unix_now() - 30 * DAY, unix_now() - DAY);
    let future = test_certificate("new", unix_now() + DAY, unix_now() + 30 * DAY);
    let unlisted = test_certificate("stranger", unix_now() - DAY, unix_now() + DAY);
    let app = spawn_app(cert_config(&format!(
        "{}=old,{}=new",
        expired.thumbprint, future.thumbprint
    )))
    .await;
    let cases = [
        (expired.der_base64.as_str(), "has expired"),
        (future.der_base64.as_str(), "is not valid yet"),
        (
            unlisted.der_base64.as_str(),
            "is not on CLIENT_CERT_THUMBPRINTS",
        ),
        ("%%%", "not base64"),
        ("AAAA", "not a DER X.509 certificate"),
    ];
    for (header, reason) in cases {
        app.negotiate_with(&[("X-ARR-ClientCert", header)], &[])
            .await
            .assert_unauthorized(reason);
    }
}

#[tokio::test]
async fn a_rotated_out_thumbprint_is_refused() {
    let old = test_certificate("device-7", unix_now() - DAY, unix_now() + DAY);
    let new = test_certificate("device-7", unix_now() - DAY, unix_now() + DAY);
    let app = spawn_app(cert_config(&format!("{}=device-7", new.thumbprint))).await;
    app.negotiate_with(&[("X-ARR-ClientCert", &old.der_base64)], &[])
        .await
        .assert_unauthorized("is not on CLIENT_CERT_THUMBPRINTS");
    let outcome = app
        .negotiate_with(&[("X-ARR-ClientCert", &new.der_base64)], &[])
        .await;
    assert_eq!(outcome.issued_user(), "device-7");
}

#[tokio::test]
async fn a_missing_certificate_is_refused_never_treated_as_anonymous() {
    let certificate = test_certificate("device-7", unix_now() - DAY, unix_now() + DAY);
    let app = spawn_app(cert_config(&format!("{}=device-7", certificate.thumbprint))).await;
    let outcome = app.negotiate_with(&[], &[]).await;
    outcome.assert_unauthorized("no credential presented");
    assert_eq!(outcome.body["error"], "missing_token");
}

// ---- Signed anonymous visitors ----

#[tokio::test]
async fn a_signed_visitor_gets_a_namespaced_id_and_may_not_join_groups() {
    let app = spawn_app(visitor_config()).await;
    let token = visitor_token("v-8f3a", VISITOR_SECRET, now(), now() + 600);
    let from_header = app
        .negotiate_with(&[("X-Visitor-Token", &token)], &[])
        .await;
    assert_eq!(from_header.issued_user(), "anon:v-8f3a");
    let from_query = app.negotiate_with(&[], &[("visitor_token", &token)]).await;
    assert_eq!(from_query.issued_user(), "anon:v-8f3a");

    // The default policy is for signed-in users: a visitor cannot join even its own group.
    let mut payload = function_payload("addToGroup", None, &json!({"group": "room-1"}));
    payload["Data"]["req"]["Headers"]["X-Visitor-Token"] = json!([token]);
    let outcome = app.invoke("addToGroup", &payload).await;
    assert_eq!(outcome.status, 403, "{outcome:#?}");
}

#[tokio::test]
async fn the_visitor_token_query_parameter_is_refused_outside_negotiate() {
    let app = spawn_app(visitor_config()).await;
    let token = visitor_token("v-8f3a", VISITOR_SECRET, now(), now() + 600);
    let mut payload =
        function_payload("sendToUser", None, &json!({"userId": "bob", "target": "t"}));
    payload["Data"]["req"]["Query"]["visitor_token"] = json!(token);
    let outcome = app.invoke("sendToUser", &payload).await;
    assert_eq!(outcome.status, 401, "{outcome:#?}");
    outcome.assert_no_signalr_output();
}

#[tokio::test]
async fn visitor_tokens_signed_with_the_wrong_key_or_stale_are_refused() {
    let app = spawn_app(visitor_config()).await;
    let cases = [
        (
            visitor_token(
                "v-1",
                "insecure-attacker-secret-0123456789-abcdefghij",
                now(),
                now() + 600,
            ),
            "InvalidSignature",
        ),
        (
            visitor_token("v-1", VISITOR_SECRET, now() - 4000, now() - 120),
            "ExpiredSignature",
        ),
        (
            visitor_token("v-1", VISITOR_SECRET, now(), now() + 90_000),
            "exceeds AUTH_ANONYMOUS_MAX_LIFETIME_SECONDS",
        ),
    ];
    for (token, reason) in cases {
        app.negotiate_with(&[("X-Visitor-Token", &token)], &[])
            .await
            .assert_unauthorized(reason);
    }
}

#[tokio::test]
async fn a_visitor_token_issued_a_year_ahead_is_refused_although_exp_minus_iat_is_short() {
    let app = spawn_app(visitor_config()).await;
    let year = 365 * 86_400;
    let token = visitor_token("v-1", VISITOR_SECRET, now() + year, now() + year + 600);
    let outcome = app
        .negotiate_with(&[("X-Visitor-Token", &token)], &[])
        .await;
    outcome.assert_unauthorized("`iat` is in the future");
}

#[tokio::test]
async fn a_visitor_cannot_pass_as_a_signed_in_user() {
    let app = spawn_app(visitor_config()).await;
    // A visitor id that names a signed-in user is namespaced, so it is a different user.
    let token = visitor_token("alice", VISITOR_SECRET, now(), now() + 600);
    let outcome = app
        .negotiate_with(&[("X-Visitor-Token", &token)], &[])
        .await;
    assert_eq!(outcome.issued_user(), "anon:alice");
    // One that already carries the prefix, or a colon, is refused.
    let prefixed = visitor_token("anon:alice", VISITOR_SECRET, now(), now() + 600);
    app.negotiate_with(&[("X-Visitor-Token", &prefixed)], &[])
        .await
        .assert_unauthorized("`sub` must be");
    // A visitor token sent as a sign-in token fails JWT verification.
    let bearer = format!("Bearer {token}");
    app.negotiate_with(&[("Authorization", &bearer)], &[])
        .await
        .assert_unauthorized("token rejected");
}

#[tokio::test]
async fn a_signed_in_jwt_whose_user_id_starts_with_anon_is_refused() {
    let app = spawn_app(visitor_config()).await;
    for sub in ["anon:v-8f3a", "ANON:v-8f3a"] {
        let token = hs256_token(&claims(sub));
        app.negotiate(&token)
            .await
            .assert_unauthorized("reserved for anonymous visitors");
    }
}

// ---- Order ----

#[tokio::test]
async fn the_first_source_that_presents_a_credential_decides() {
    let app = spawn_app(visitor_config()).await;
    let visitor = visitor_token("v-1", VISITOR_SECRET, now(), now() + 600);
    let good = format!("Bearer {}", hs256_token(&claims("alice")));
    let outcome = app
        .negotiate_with(
            &[("Authorization", &good), ("X-Visitor-Token", &visitor)],
            &[],
        )
        .await;
    assert_eq!(outcome.issued_user(), "alice");

    // An invalid JWT is refused, not passed on to the valid visitor token behind it.
    let mut expired = claims("alice");
    expired.insert("exp".into(), json!(now() - 120));
    let bad = format!("Bearer {}", hs256_token(&expired));
    app.negotiate_with(
        &[("Authorization", &bad), ("X-Visitor-Token", &visitor)],
        &[],
    )
    .await
    .assert_unauthorized("token rejected: expired ");
}

#[tokio::test]
async fn a_bad_source_list_stops_start_up_naming_the_setting() {
    let mut config = AppConfig::hs256();
    config.set("AUTH_SOURCES", "jwt,kerberos");
    let stderr = start_expecting_failure(&config);
    assert!(stderr.contains("AUTH_SOURCES"), "{stderr}");
    let mut config = AppConfig::hs256();
    config.set("AUTH_SOURCES", "anonymous");
    let stderr = start_expecting_failure(&config);
    assert!(stderr.contains("AUTH_ANONYMOUS_SECRET"), "{stderr}");
}
