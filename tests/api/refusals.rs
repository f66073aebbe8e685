//! One named test per class of hostile credential. Each must get 401, no SignalR token, and a
//! log line naming the exact reason.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn negotiate_returns_401_for_alg_none() {
    let app = spawn_app(AppConfig::hs256()).await;
    let token = raw_token(
        &json!({"alg": "none", "typ": "JWT"}),
        &serde_json::Value::Object(claims("mallory")),
        None,
    );
    // jsonwebtoken has no `none` algorithm: the header itself is refused.
    app.negotiate(&token)
        .await
        .assert_unauthorized("unknown variant `none`");
}

#[tokio::test]
async fn negotiate_returns_401_for_a_token_signed_with_the_wrong_key() {
    let app = spawn_app(AppConfig::hs256()).await;
    let token = sign(
        Header::new(Algorithm::HS256),
        &claims("mallory"),
        &EncodingKey::from_secret(b"insecure-attacker-secret-0123456789-abcdefghij"),
    );
    app.negotiate(&token)
        .await
        .assert_unauthorized("InvalidSignature");
}

#[tokio::test]
async fn negotiate_returns_401_for_an_expired_token() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut expired = claims("alice");
    expired.insert("exp".into(), json!(now() - 120));
    let outcome = app.negotiate(&hs256_token(&expired)).await;
    outcome.assert_unauthorized("token rejected: expired ");
    outcome.assert_unauthorized("s ago (skew 60 s)");
    // One body shape for every refusal: `message`, not OAuth's `error_description`.
    assert_eq!(outcome.body["message"], "The access token expired.");
    assert!(
        outcome.body.get("error_description").is_none(),
        "{outcome:#?}"
    );
}

#[tokio::test]
async fn negotiate_returns_401_for_a_token_not_yet_valid() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut future = claims("alice");
    future.insert("nbf".into(), json!(now() + 600));
    app.negotiate(&hs256_token(&future))
        .await
        .assert_unauthorized("not valid for another");
}

#[tokio::test]
async fn negotiate_returns_401_for_a_wrong_issuer() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut wrong = claims("alice");
    wrong.insert("iss".into(), json!("https://evil.example/"));
    app.negotiate(&hs256_token(&wrong))
        .await
        .assert_unauthorized(
            "issuer \"https://evil.example/\" is not the configured \"https://issuer.test.example/\"",
        );
}

#[tokio::test]
async fn negotiate_returns_401_for_a_wrong_audience() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut wrong = claims("alice");
    wrong.insert("aud".into(), json!("api://some-other-app"));
    app.negotiate(&hs256_token(&wrong))
        .await
        .assert_unauthorized(
            "audience \"api://some-other-app\" not among [\"api://signalr-test-app\"]",
        );
}

/// A client token the SignalR Service would accept (its audience is the service's client URL),
/// replayed at negotiate: refused with its own reason, whether it was signed with the AccessKey
/// (as the service's tokens are) or, by a misconfigured issuer, with the app's own secret.
#[tokio::test]
async fn negotiate_returns_401_for_a_service_token_replayed_at_the_app() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut replayed = claims("mallory");
    replayed.insert(
        "aud".into(),
        json!("http://localhost:8888/client/?hub=chat"),
    );
    for secret in [ACCESS_KEY, HS256_SECRET] {
        let token = sign(
            Header::new(Algorithm::HS256),
            &replayed,
            &EncodingKey::from_secret(secret.as_bytes()),
        );
        app.negotiate(&token).await.assert_unauthorized(
            "its audience is the SignalR Service (a service token replayed at the app)",
        );
    }
}

/// A token signed by the app's own key whose `aud` array names this app *and* the SignalR
/// Service (found by an outside review: the signature and the app audience both check out, so
/// only the verified claims can refuse it).
#[tokio::test]
async fn negotiate_returns_401_when_an_audience_array_also_names_the_service() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut both = claims("mallory");
    both.insert(
        "aud".into(),
        json!(["http://localhost:8888/client/?hub=chat", AUDIENCE]),
    );
    app.negotiate(&hs256_token(&both))
        .await
        .assert_unauthorized(
            "its audience is the SignalR Service (a service token replayed at the app)",
        );
    // Extra audiences that are not the service stay accepted (Auth0 issues `[api, userinfo]`).
    let mut extra = claims("alice");
    extra.insert(
        "aud".into(),
        json!([AUDIENCE, "https://tenant.example/userinfo"]),
    );
    assert_eq!(app.negotiate(&hs256_token(&extra)).await.status, 200);
}

#[tokio::test]
async fn negotiate_returns_401_when_exp_iss_or_aud_is_missing() {
    let app = spawn_app(AppConfig::hs256()).await;
    for claim in ["exp", "iss", "aud"] {
        let mut partial = claims("alice");
        partial.remove(claim);
        app.negotiate(&hs256_token(&partial))
            .await
            .assert_unauthorized(&format!("MissingRequiredClaim(\"{claim}\")"));
    }
}

#[tokio::test]
async fn negotiate_returns_401_for_malformed_base64_or_json() {
    let app = spawn_app(AppConfig::hs256()).await;
    let good = hs256_token(&claims("alice"));
    let parts: Vec<&str> = good.split('.').collect();
    let not_json = URL_SAFE_NO_PAD.encode("{not json");
    let cases = [
        (
            format!("{}.{}.{}", "%%%", parts[1], parts[2]),
            "bad header base64",
            "Base64",
        ),
        (
            format!("{}.{}.{}", not_json, parts[1], parts[2]),
            "bad header JSON",
            "Json",
        ),
        (
            format!("{}.{}", parts[0], parts[1]),
            "two segments",
            "InvalidToken",
        ),
        ("not-a-jwt".to_owned(), "one segment", "InvalidToken"),
    ];
    for (token, description, reason) in cases {
        let outcome = app.negotiate(&token).await;
        assert_eq!(outcome.status, 401, "{description}: {outcome:#?}");
        outcome.assert_unauthorized(reason);
    }
    // A payload that is not base64: the signature is valid over the bytes, decoding fails.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let token = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET.as_bytes()).expect("key");
        mac.update(format!("{header}.@@@").as_bytes());
        format!(
            "{header}.@@@.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    app.negotiate(&token).await.assert_unauthorized("Base64");
}

#[tokio::test]
async fn negotiate_returns_401_for_an_oversized_header() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k".repeat(16 * 1024));
    let token = sign(
        header,
        &claims("alice"),
        &EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    );
    app.negotiate(&token)
        .await
        .assert_unauthorized("exceeds the limit");
}

#[tokio::test]
async fn negotiate_returns_401_when_the_user_id_claim_is_missing() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut anonymous = claims("alice");
    anonymous.remove("sub");
    app.negotiate(&hs256_token(&anonymous))
        .await
        .assert_unauthorized("claim `sub`");
    let mut numeric = claims("alice");
    numeric.insert("sub".into(), json!(42));
    app.negotiate(&hs256_token(&numeric))
        .await
        .assert_unauthorized("claim `sub`");
}

#[tokio::test]
async fn negotiate_returns_401_for_the_service_token_replayed() {
    let app = spawn_app(AppConfig::hs256()).await;
    // What a reconnecting client holds: the service token, signed with the AccessKey.
    let service_token = raw_token(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"asrs.s.uid": "alice", "exp": now() + 600, "aud": "http://localhost/client/?hub=chat"}),
        Some(ACCESS_KEY.as_bytes()),
    );
    app.negotiate(&service_token)
        .await
        .assert_unauthorized("SignalR Service");
}

#[tokio::test]
async fn negotiate_returns_401_without_any_credential() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut request = payload(
        "negotiate-binding.json",
        &[
            ("APP_TOKEN", "x"),
            ("BINDING_TOKEN", &binding_token(now(), now() + 60)),
        ],
    );
    request["Data"]["req"]["Headers"]
        .as_object_mut()
        .expect("headers")
        .remove("Authorization");
    let outcome = app.invoke("negotiate", &request).await;
    outcome.assert_unauthorized("no bearer token");
    assert_eq!(outcome.body["error"], "missing_token");
}

#[tokio::test]
async fn a_forged_principal_header_never_changes_the_user() {
    let app = spawn_app(AppConfig::hs256()).await;
    let alice = hs256_token(&claims("alice"));
    let other = hs256_token(&claims("admin"));
    let binding = binding_token(now(), now() + 3600);
    // Real headers carry x-ms-client-principal-id: admin; the body's "headers" object (which
    // the real host copies into Metadata) carries admin's token. Neither may count.
    let spoofed = payload(
        "negotiate-spoofed-body.json",
        &[
            ("APP_TOKEN", &alice),
            ("OTHER_TOKEN", &other),
            ("BINDING_TOKEN", &binding),
        ],
    );
    let outcome = app.invoke("negotiate", &spoofed).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let (_, claims) = decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
    assert_eq!(claims["asrs.s.uid"], "alice");

    // Without a real credential the principal header alone is refused.
    let mut no_token = spoofed.clone();
    no_token["Data"]["req"]["Headers"]
        .as_object_mut()
        .expect("headers")
        .remove("Authorization");
    app.invoke("negotiate", &no_token)
        .await
        .assert_unauthorized("no bearer token");
}

#[tokio::test]
async fn refusals_never_log_the_token() {
    // Refusals reach the process log at debug only (the host records `Logs`); turn it on.
    let mut config = AppConfig::hs256();
    config.set("RUST_LOG", "info,handler=debug");
    let app = spawn_app(config).await;
    let mut expired = claims("alice");
    expired.insert("exp".into(), json!(now() - 3600));
    let token = hs256_token(&expired);
    let outcome = app.negotiate(&token).await;
    outcome.assert_unauthorized("token rejected: expired ");
    let signature = segment(&token, 2);
    assert!(!outcome.logs_text().contains(signature));
    // The process log is written asynchronously: wait for the refusal line (debug, on stdout)
    // before looking at both streams.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !app.stdout().contains("refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "stdout: {}",
            app.stdout()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let output = format!("{}{}", app.stdout(), app.stderr());
    assert!(output.contains("token rejected: expired "), "{output}");
    assert!(!output.contains(signature));
    assert!(!output.contains(HS256_SECRET));
}

#[tokio::test]
async fn negotiate_returns_401_for_an_issuer_array_that_contains_the_issuer() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut claims = claims("alice");
    claims.insert("iss".into(), json!([ISSUER, "https://evil.example/"]));
    app.negotiate(&hs256_token(&claims))
        .await
        .assert_unauthorized("`iss` must be a single string");
}

#[tokio::test]
async fn negotiate_returns_401_for_a_critical_header_extension() {
    let app = spawn_app(AppConfig::hs256()).await;
    let payload = serde_json::Value::Object(claims("alice"));
    for crit in [
        json!(["exp"]),
        json!(["urn:example:must-understand"]),
        json!([]),
    ] {
        let token = raw_token(
            &json!({"alg": "HS256", "typ": "JWT", "crit": crit}),
            &payload,
            Some(HS256_SECRET.as_bytes()),
        );
        app.negotiate(&token)
            .await
            .assert_unauthorized("its header has `crit`");
    }
}

#[tokio::test]
async fn the_access_token_query_parameter_is_refused_outside_negotiate() {
    let app = spawn_app(AppConfig::hs256()).await;
    let token = token_with("alice", json!({}));
    for (function, body) in [
        (
            "sendToGroup",
            json!({"group": "room-1", "target": "newMessage", "arguments": ["hi"]}),
        ),
        ("addToGroup", json!({"group": "room-1"})),
    ] {
        let mut payload = function_payload(function, None, &body);
        payload["Data"]["req"]["Query"] = json!({"access_token": token});
        let outcome = app.invoke(function, &payload).await;
        outcome.assert_unauthorized("accepted only by negotiate");
        outcome.assert_no_signalr_output();
    }
}

#[tokio::test]
async fn every_refusal_status_answers_the_same_error_and_message_body() {
    let app = spawn_app(AppConfig::hs256()).await;
    let alice = token_with("alice", json!({}));
    let bad_request = app
        .call("addToGroup", &alice, json!({"group": "../etc"}))
        .await;
    let unauthenticated = app.negotiate("not-a-token").await;
    let forbidden = app
        .call("addToGroup", &alice, json!({"group": "lobby"}))
        .await;
    let unknown = app
        .invoke(
            "noSuchFunction",
            &function_payload("noSuchFunction", None, &json!({})),
        )
        .await;
    for (status, outcome) in [
        (400, bad_request),
        (401, unauthenticated),
        (403, forbidden),
        (404, unknown),
    ] {
        assert_eq!(outcome.status, status, "{outcome:#?}");
        assert_error_body(&outcome.body);
    }
}
