//! Token refusals and acceptances (docs/protocol/signalr-service.md §2.3, §3), on REST calls, negotiate and the
//! WebSocket upgrade.

use jsonwebtoken::{Algorithm, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalr_emulator::AccessKey;

use crate::helpers::{TestApp, mint, mint_with, now, spawn_app, spawn_app_with};

const REST_PATH: &str = "/api/v1/hubs/chat";

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn broadcast_with(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    app.rest_with_token(Method::POST, REST_PATH, Some(json!({"target": "t"})), token)
        .await
}

/// Tokens every endpoint must refuse, with the `error_description` each gets.
fn refused_tokens(app: &TestApp, audience: &str) -> Vec<(String, &'static str, &'static str)> {
    let exp = now() + 3600;
    let unsigned = {
        // alg "none" cannot be produced by jsonwebtoken, so build it by hand.
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = engine.encode(json!({"aud": audience, "exp": exp}).to_string());
        format!("{header}.{payload}.")
    };
    vec![
        (
            mint(&json!({"aud": audience, "exp": exp}), "another-key"),
            "The signature key was not found",
            "a bad signature",
        ),
        (
            mint(&json!({"aud": audience, "exp": now() - 3600}), &app.key),
            "The token is expired",
            "an expired token",
        ),
        (
            mint(&json!({"aud": audience}), &app.key),
            "The token has no expiration time",
            "no exp",
        ),
        (
            mint(&json!({"exp": exp}), &app.key),
            "The audience is empty",
            "no aud",
        ),
        (
            mint(&json!({"aud": [audience, audience], "exp": exp}), &app.key),
            "The audience is empty",
            "two audiences",
        ),
        (
            mint(
                &json!({"aud": "http://localhost/api/v1/hubs/other", "exp": exp}),
                &app.key,
            ),
            "The audience is invalid",
            "another hub's REST audience",
        ),
        (
            mint(
                &json!({"aud": "http://localhost/client/?hub=other", "exp": exp}),
                &app.key,
            ),
            "The audience is invalid",
            "another hub's client audience",
        ),
        (
            mint(
                &json!({"aud": audience.replace("localhost", "contoso.service.signalr.net"), "exp": exp}),
                &app.key,
            ),
            "The audience is invalid",
            "another host",
        ),
        (unsigned, "The token is malformed", "alg none"),
        ("not.a.jwt".to_owned(), "The token is malformed", "garbage"),
    ]
}

#[tokio::test]
async fn rest_calls_with_bad_tokens_get_401_with_the_reason_in_www_authenticate() {
    let app = spawn_app().await;
    let response = broadcast_with(&app, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no token");
    assert_eq!(challenge(&response), "Bearer");

    for (token, description, case) in refused_tokens(&app, &format!("http://localhost{REST_PATH}"))
    {
        let response = broadcast_with(&app, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(
            challenge(&response),
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
            "{case}"
        );
    }
}

#[tokio::test]
async fn negotiate_with_bad_tokens_gets_401() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/client/negotiate?hub=chat", app.base()))
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no token");

    for (token, description, case) in refused_tokens(&app, "http://localhost/client/?hub=chat") {
        let response = app.negotiate("chat", &token, Some(1)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert!(
            challenge(&response).contains(description),
            "{case}: {}",
            challenge(&response)
        );
    }
    let rest_token = app.rest_token(REST_PATH);
    let response = app.negotiate("chat", &rest_token, Some(1)).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a REST token is not a client token"
    );
}

#[tokio::test]
async fn a_websocket_upgrade_with_a_bad_token_gets_401() {
    let app = spawn_app().await;
    let good = app.client_token("chat", Some("alice"));
    let negotiated: Value = app
        .negotiate("chat", &good, Some(1))
        .await
        .json()
        .await
        .expect("JSON");
    let id = negotiated["connectionToken"]
        .as_str()
        .expect("a connection token")
        .to_owned();
    let url = format!("ws://127.0.0.1:{}/client/?hub=chat&id={id}", app.port);
    for (token, _, case) in refused_tokens(&app, "http://localhost/client/?hub=chat") {
        let error = app.open_websocket(&url, Some(&token)).await.err();
        let status = match error {
            Some(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            other => panic!("{case}: expected an HTTP refusal, got {other:?}"),
        };
        assert_eq!(status, 401, "{case}");
    }
    let error = app.open_websocket(&url, None).await.err();
    assert!(
        matches!(error, Some(tokio_tungstenite::tungstenite::Error::Http(ref response)) if response.status() == 401),
        "no token: {error:?}"
    );
}

#[tokio::test]
async fn tokens_shaped_like_the_sdks_are_accepted() {
    let app = spawn_app().await;
    let exp = now() + 3600;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("-1419827734".to_owned());
    let cases = [
        (
            mint_with(
                header.clone(),
                &json!({"aud": "http://localhost/api/v1/hubs/chat?api-version=2022-06-01", "exp": exp, "nameid": "host_1"}),
                &app.key,
            ),
            "a kid and a query in the audience",
        ),
        (
            mint(
                &json!({"aud": "http://localhost:8888/api/v1/hubs/Chat/", "exp": exp}),
                &app.key,
            ),
            "a port, a capitalised hub and a trailing slash",
        ),
        (
            mint(
                &json!({"aud": "http://localhost/api/v1/hubs/chat", "exp": now() - 60}),
                &app.key,
            ),
            "expired by a minute, within the clock skew",
        ),
        (
            mint(
                &json!({"aud": ["http://localhost/api/v1/hubs/chat"], "exp": exp}),
                &app.key,
            ),
            "a one-element audience array",
        ),
        (
            mint_with(
                Header::new(Algorithm::HS512),
                &json!({"aud": "http://localhost/api/v1/hubs/chat", "exp": exp}),
                &app.key,
            ),
            "HS512",
        ),
    ];
    for (token, case) in cases {
        let response = broadcast_with(&app, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{case}");
    }
}

#[tokio::test]
async fn a_secondary_key_also_verifies_and_the_dev_key_then_does_not() {
    let app = spawn_app_with(|config| {
        config.access_keys = vec![
            AccessKey::parse("primary-key-for-tests").expect("valid"),
            AccessKey::parse("secondary-key-for-tests").expect("valid"),
        ];
    })
    .await;
    let exp = now() + 3600;
    let audience = format!("http://localhost{REST_PATH}");
    for key in ["primary-key-for-tests", "secondary-key-for-tests"] {
        let token = mint(&json!({"aud": audience, "exp": exp}), key);
        assert_eq!(
            broadcast_with(&app, Some(&token)).await.status(),
            StatusCode::ACCEPTED,
            "{key}"
        );
    }
    let token = mint(
        &json!({"aud": audience, "exp": exp}),
        signalr_emulator::INSECURE_DEV_ACCESS_KEY,
    );
    assert_eq!(
        broadcast_with(&app, Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_user_id_comes_from_asrs_uid_then_nameid_then_sub() {
    let app = spawn_app().await;
    let exp = now() + 3600;
    let aud = "http://localhost/client/?hub=chat";
    let cases = [
        (
            json!({"aud": aud, "exp": exp, "asrs.s.uid": "u1", "nameid": "n1", "sub": "s1"}),
            "u1",
        ),
        (
            json!({"aud": aud, "exp": exp, "nameid": "n2", "sub": "s2"}),
            "n2",
        ),
        (json!({"aud": aud, "exp": exp, "sub": "s3"}), "s3"),
    ];
    for (claims, user) in cases {
        let token = mint(&claims, &app.key);
        let negotiated: Value = app
            .negotiate("chat", &token, Some(1))
            .await
            .json()
            .await
            .expect("JSON");
        let id = negotiated["connectionToken"]
            .as_str()
            .expect("a connection token")
            .to_owned();
        let url = format!("ws://127.0.0.1:{}/client/?hub=chat&id={id}", app.port);
        let mut client = app
            .open_websocket(&url, Some(&token))
            .await
            .expect("connects");
        client.handshake().await;
        let response = app
            .rest(
                Method::POST,
                &format!("/api/v1/hubs/chat/users/{user}"),
                Some(json!({"target": "who", "arguments": [user]})),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(client.next_invocation().await.1, json!([user]), "{claims}");
    }
}
