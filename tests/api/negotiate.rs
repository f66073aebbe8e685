//! negotiate hands out a SignalR token that carries the verified user.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn negotiate_returns_a_service_token_carrying_the_verified_user() {
    let mut config = AppConfig::hs256();
    config.set("AUTH_FORWARD_CLAIMS", "name, email, nonce, missing_claim");
    let app = spawn_app(config).await;
    let mut user_claims = claims("alice");
    user_claims.insert("nonce".into(), json!("n-123"));
    user_claims.insert("role".into(), json!("admin"));
    let issued_at = now() - 10;
    let binding = binding_token(issued_at, issued_at + 3600);
    let outcome = app
        .invoke(
            "negotiate",
            &payload(
                "negotiate-binding.json",
                &[
                    ("APP_TOKEN", &hs256_token(&user_claims)),
                    ("BINDING_TOKEN", &binding),
                ],
            ),
        )
        .await;

    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(outcome.header("Content-Type"), Some("application/json"));
    assert_eq!(outcome.header("Cache-Control"), Some("no-store"));
    assert!(
        !outcome.body_text.contains('\n') && !outcome.body_text.contains(": "),
        "compact JSON"
    );
    assert_eq!(
        outcome.body["url"],
        "http://localhost:8888/client/?hub=chat"
    );
    let token = outcome.body["accessToken"].as_str().expect("token");
    assert_eq!(
        segment(token, 0),
        segment(&binding, 0),
        "the binding's header is kept byte for byte"
    );

    let (header, payload) = decode_service_token(token);
    assert_eq!(
        header,
        json!({"alg": "HS256", "typ": "JWT", "kid": "-1419827734"})
    );
    let expected = json!({
        "asrs.s.uid": "alice",
        "name": "User alice",
        "email": "alice@contoso.example",
        "asrs.u.nonce": "n-123",
        "asrs.s.coae": "true",
        "asrs.s.aeo": user_claims["exp"].to_string(),
        "nbf": issued_at,
        "exp": user_claims["exp"],
        "iat": issued_at,
        "aud": "http://localhost/client/?hub=chat",
    });
    assert_eq!(
        Value::Object(payload),
        expected,
        "every claim, and nothing the binding added unverified"
    );
    assert!(
        outcome
            .logs_text()
            .contains("token issued for user \"alice\""),
        "{:?}",
        outcome.logs
    );
}

#[tokio::test]
async fn the_token_expires_with_the_binding_when_the_binding_expires_first() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut user_claims = claims("bob");
    user_claims.insert("exp".into(), json!(now() + 7200));
    let binding = binding_token(now(), now() + 600);
    let outcome = app
        .invoke(
            "negotiate",
            &payload(
                "negotiate-binding.json",
                &[
                    ("APP_TOKEN", &hs256_token(&user_claims)),
                    ("BINDING_TOKEN", &binding),
                ],
            ),
        )
        .await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let (_, payload) = decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
    let (_, binding_payload) = decode_service_token(&binding);
    assert_eq!(payload["exp"], binding_payload["exp"]);
}

#[tokio::test]
async fn the_binding_value_is_accepted_as_an_object_or_once_or_twice_encoded() {
    let app = spawn_app(AppConfig::hs256()).await;
    let token = hs256_token(&claims("carol"));
    let binding = binding_token(now(), now() + 3600);
    let info = json!({"url": "http://localhost:8888/client/?hub=chat", "accessToken": binding, "tokenLifetimeSeconds": 3600});
    let once = Value::String(serde_json::to_string_pretty(&info).expect("json"));
    let twice = Value::String(once.to_string());
    for (shape, value) in [("object", info.clone()), ("once", once), ("twice", twice)] {
        let mut request = payload(
            "negotiate-binding.json",
            &[("APP_TOKEN", &token), ("BINDING_TOKEN", &binding)],
        );
        request["Data"]["connectionInfo"] = value;
        let outcome = app.invoke("negotiate", &request).await;
        assert_eq!(outcome.status, 200, "{shape}: {outcome:#?}");
        let (_, claims) =
            decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
        assert_eq!(claims["asrs.s.uid"], "carol", "{shape}");
    }
}

#[tokio::test]
async fn the_access_token_query_parameter_is_accepted_for_browsers() {
    let app = spawn_app(AppConfig::hs256()).await;
    let token = hs256_token(&claims("dave"));
    let mut request = payload(
        "negotiate-binding.json",
        &[
            ("APP_TOKEN", "unused"),
            ("BINDING_TOKEN", &binding_token(now(), now() + 3600)),
        ],
    );
    request["Data"]["req"]["Headers"]
        .as_object_mut()
        .expect("headers")
        .remove("Authorization");
    request["Data"]["req"]["Query"] = json!({"negotiateVersion": "1", "access_token": token});
    let outcome = app.invoke("negotiate", &request).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let (_, claims) = decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
    assert_eq!(claims["asrs.s.uid"], "dave");
}

#[tokio::test]
async fn the_user_id_comes_from_the_configured_claim() {
    let mut config = AppConfig::hs256();
    config.set("AUTH_USER_ID_CLAIM", "email");
    let app = spawn_app(config).await;
    let outcome = app.negotiate(&hs256_token(&claims("erin"))).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let (_, claims) = decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
    assert_eq!(claims["asrs.s.uid"], "erin@contoso.example");
}

#[tokio::test]
async fn without_a_binding_the_handler_mints_the_token_as_the_extension_would() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(root.path().join("negotiate")).expect("mkdir");
    std::fs::write(
        root.path().join("negotiate/function.json"),
        r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"]},{"type":"http","direction":"out","name":"res"}]}"#,
    )
    .expect("write");
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    config.set("SIGNALR_HUB_NAME", "Chat");
    let app = spawn_app(config).await;
    let mut user_claims = claims("frank");
    user_claims.insert("exp".into(), json!(now() + 7200));
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
    let after = now();
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(
        outcome.body["url"], "http://localhost:8888/client/?hub=chat",
        "port kept in the URL, hub lower-cased"
    );
    let (header, claims) =
        decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(claims["asrs.s.uid"], "frank");
    assert_eq!(
        claims["aud"], "http://localhost/client/?hub=chat",
        "no port in aud"
    );
    let iat = claims["iat"].as_u64().expect("iat");
    assert!((before..=after).contains(&iat));
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(
        claims["exp"].as_u64(),
        Some(iat + 3600),
        "one hour, as the extension"
    );
}

#[tokio::test]
async fn a_binding_token_signed_with_another_key_is_a_configuration_error() {
    let app = spawn_app(AppConfig::hs256()).await;
    let binding = binding_token_with_key(
        now(),
        now() + 3600,
        "INSECURE-SOME-OTHER-ACCESS-KEY-0000000000000000",
    );
    let outcome = app
        .invoke(
            "negotiate",
            &payload(
                "negotiate-binding.json",
                &[
                    ("APP_TOKEN", &hs256_token(&claims("gina"))),
                    ("BINDING_TOKEN", &binding),
                ],
            ),
        )
        .await;
    assert_eq!(outcome.status, 500, "{outcome:#?}");
    assert_eq!(outcome.body["error"], "configuration_error");
    assert!(!outcome.body_text.contains("accessToken"));
    assert!(
        outcome
            .logs_text()
            .contains("not signed with this AccessKey"),
        "{:?}",
        outcome.logs
    );
    assert!(
        outcome.logs_text().contains("AzureSignalRConnectionString"),
        "names the setting"
    );
    assert!(
        !outcome.logs_text().contains(ACCESS_KEY),
        "never logs the key"
    );
}

#[tokio::test]
async fn a_token_over_4_kb_is_never_issued() {
    let mut config = AppConfig::hs256();
    config.set("AUTH_FORWARD_CLAIMS", "bio");
    let app = spawn_app(config).await;
    let mut user_claims = claims("hank");
    user_claims.insert("bio".into(), json!("x".repeat(3500)));
    let outcome = app.negotiate(&hs256_token(&user_claims)).await;
    assert_eq!(outcome.status, 500, "{outcome:#?}");
    assert!(!outcome.body_text.contains("accessToken"));
    assert!(outcome.logs_text().contains("4096"), "{:?}", outcome.logs);
}

#[tokio::test]
async fn a_binding_token_for_another_hub_is_a_configuration_error() {
    let app = spawn_app(AppConfig::hs256()).await;
    let other_hub = raw_token(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"nbf": now(), "exp": now() + 3600, "iat": now(), "aud": "http://localhost/client/?hub=admin"}),
        Some(ACCESS_KEY.as_bytes()),
    );
    let outcome = app
        .invoke(
            "negotiate",
            &payload(
                "negotiate-binding.json",
                &[
                    ("APP_TOKEN", &hs256_token(&claims("alice"))),
                    ("BINDING_TOKEN", &other_hub),
                ],
            ),
        )
        .await;
    assert_eq!(outcome.status, 500, "{outcome:#?}");
    assert!(!outcome.body_text.contains("accessToken"));
    assert!(
        outcome.logs_text().contains("hub=admin"),
        "{:?}",
        outcome.logs
    );
}

#[test]
fn a_negotiate_binding_whose_hub_is_an_expression_stops_start_up() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(root.path().join("negotiate")).expect("mkdir");
    std::fs::write(
        root.path().join("negotiate/function.json"),
        r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},
            {"type":"signalRConnectionInfo","direction":"in","name":"connectionInfo","hubName":"{query.hub}"},
            {"type":"http","direction":"out","name":"res"}]}"#,
    )
    .expect("write");
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    let stderr = start_expecting_failure(&config);
    assert!(
        stderr.contains("{query.hub}") && stderr.contains("function.json"),
        "{stderr}"
    );
}
