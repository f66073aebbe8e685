//! Finding 3: cross-site requests with ambient credentials. The body must be declared
//! `application/json` for every source; App Service principals and client certificates are also
//! refused from a cross-site browser context.

use serde_json::{Value, json};

use crate::helpers::*;

const BODY_FUNCTIONS: [(&str, &str); 5] = [
    ("addToGroup", r#"{"group":"room-1"}"#),
    ("removeFromGroup", r#"{"group":"room-1"}"#),
    ("removeFromAllGroups", r#"{}"#),
    (
        "sendToGroup",
        r#"{"group":"room-1","target":"newMessage","arguments":[]}"#,
    ),
    (
        "sendToUser",
        r#"{"userId":"bob","target":"newMessage","arguments":[]}"#,
    ),
];

/// A caller credential and the configuration that accepts it.
struct Source {
    name: &'static str,
    config: AppConfig,
    headers: Vec<(String, String)>,
}

fn sources() -> Vec<Source> {
    let certificate = test_certificate("device-7", unix_now() - 86_400, unix_now() + 86_400);
    let principal = principal_header(&app_service_principal("aad-user-1", &[]));
    let mut app_service = AppConfig::hs256();
    app_service
        .set("AUTH_SOURCES", "appservice,jwt")
        .set("WEBSITE_AUTH_ENABLED", "true");
    let mut client_cert = AppConfig::hs256();
    client_cert.set("AUTH_SOURCES", "clientcert").set(
        "CLIENT_CERT_THUMBPRINTS",
        &format!("{}=device-7", certificate.thumbprint),
    );
    let mut visitor = AppConfig::hs256();
    visitor
        .set("AUTH_SOURCES", "jwt,anonymous")
        .set("AUTH_ANONYMOUS_SECRET", VISITOR_SECRET)
        .set("AUTH_ANONYMOUS_ISSUER", VISITOR_ISSUER);
    vec![
        Source {
            name: "jwt",
            config: AppConfig::hs256(),
            headers: vec![(
                "Authorization".into(),
                format!("Bearer {}", token_with("alice", json!({}))),
            )],
        },
        Source {
            name: "appservice",
            config: app_service,
            headers: vec![("X-MS-CLIENT-PRINCIPAL".into(), principal)],
        },
        Source {
            name: "clientcert",
            config: client_cert,
            headers: vec![("X-ARR-ClientCert".into(), certificate.der_base64)],
        },
        Source {
            name: "anonymous",
            config: visitor,
            headers: vec![(
                "X-Visitor-Token".into(),
                visitor_token("v-1", VISITOR_SECRET, now(), now() + 600),
            )],
        },
    ]
}

fn source(name: &str) -> Source {
    sources()
        .into_iter()
        .find(|source| source.name == name)
        .expect("known source")
}

/// Invokes `function` with the raw body text `body`, the credential of `source` and `headers`
/// (which replace the fixture's headers of the same name, `Content-Type` included).
async fn call(
    app: &TestApp,
    source: &Source,
    function: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Outcome {
    let mut payload = function_payload(function, None, &json!({}));
    let request = &mut payload["Data"]["req"];
    request["Body"] = json!(body);
    request["Headers"]["Content-Length"] = json!([body.len().to_string()]);
    let all = source
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(headers.iter().copied());
    for (name, value) in all {
        request["Headers"][name] = json!([value]);
    }
    app.invoke(function, &payload).await
}

fn assert_refused(outcome: &Outcome, status: u64, code: &str, description: &str) {
    assert_eq!(outcome.status, status, "{description}: {outcome:#?}");
    assert_eq!(outcome.body["error"], code, "{description}");
    assert_error_body(&outcome.body);
    outcome.assert_no_signalr_output();
}

#[tokio::test]
async fn a_text_plain_body_is_refused_with_415_for_every_source_and_body_function() {
    for source in sources() {
        let app = spawn_app(AppConfig {
            env: source.config.env.clone(),
            app_root: source.config.app_root.clone(),
        })
        .await;
        for (function, body) in BODY_FUNCTIONS {
            for content_type in [
                "text/plain",
                "text/plain;charset=UTF-8",
                "application/x-www-form-urlencoded",
                "application/xml",
            ] {
                let outcome = call(
                    &app,
                    &source,
                    function,
                    body,
                    &[("Content-Type", content_type)],
                )
                .await;
                assert_refused(
                    &outcome,
                    415,
                    "unsupported_media_type",
                    &format!("{} {function} {content_type}", source.name),
                );
            }
            let mut payload = function_payload(function, None, &json!({}));
            payload["Data"]["req"]["Headers"]
                .as_object_mut()
                .expect("headers")
                .remove("Content-Type");
            payload["Data"]["req"]["Body"] = json!(body);
            let outcome = app.invoke(function, &payload).await;
            assert_refused(&outcome, 415, "unsupported_media_type", "no Content-Type");
        }
    }
}

#[tokio::test]
async fn json_with_parameters_in_any_case_is_accepted() {
    let source = source("jwt");
    let app = spawn_app(AppConfig::hs256()).await;
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let outcome = call(
            &app,
            &source,
            "addToGroup",
            r#"{"group":"room-1"}"#,
            &[("Content-Type", content_type)],
        )
        .await;
        assert_eq!(outcome.status, 202, "{content_type}: {outcome:#?}");
    }
}

#[tokio::test]
async fn a_cross_site_request_is_refused_for_app_service_and_client_certificate_callers() {
    for name in ["appservice", "clientcert"] {
        let source = source(name);
        let app = spawn_app(AppConfig {
            env: source.config.env.clone(),
            app_root: source.config.app_root.clone(),
        })
        .await;
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("Origin", "https://evil.example")], "foreign Origin"),
            (
                &[
                    ("Origin", "https://evil.example"),
                    ("Sec-Fetch-Site", "cross-site"),
                ],
                "foreign Origin, cross-site",
            ),
            (
                &[("Sec-Fetch-Site", "cross-site")],
                "cross-site without Origin",
            ),
            (&[("Origin", "null")], "opaque Origin"),
            (
                &[("Origin", "http://localhost.evil.example:7071")],
                "look-alike host",
            ),
        ];
        for (function, body) in BODY_FUNCTIONS {
            for (headers, description) in cases {
                let outcome = call(&app, &source, function, body, headers).await;
                assert_refused(
                    &outcome,
                    403,
                    "cross_site_request",
                    &format!("{name} {function} {description}"),
                );
                assert!(outcome.logs_text().contains("cross-site request refused"));
            }
        }
    }
}

#[tokio::test]
async fn same_origin_listed_origins_and_non_browser_requests_are_accepted_for_ambient_credentials()
{
    for name in ["appservice", "clientcert"] {
        let mut source = source(name);
        source
            .config
            .set("AUTH_ALLOWED_ORIGINS", "https://chat.example.com");
        let app = spawn_app(AppConfig {
            env: source.config.env.clone(),
            app_root: source.config.app_root.clone(),
        })
        .await;
        // The fixture's Host is localhost:7071.
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[], "no Origin, no Sec-Fetch-Site (not a browser)"),
            (
                &[
                    ("Origin", "http://localhost:7071"),
                    ("Sec-Fetch-Site", "same-origin"),
                ],
                "own origin on loopback",
            ),
            (
                &[("Origin", "https://localhost:7071")],
                "own origin over https",
            ),
            (&[("Origin", "https://chat.example.com")], "listed origin"),
            (
                &[
                    ("Origin", "https://app.example.net"),
                    ("Host", "app.example.net"),
                ],
                "own origin on another host",
            ),
        ];
        for (headers, description) in cases {
            let outcome = call(
                &app,
                &source,
                "addToGroup",
                r#"{"group":"room-1"}"#,
                headers,
            )
            .await;
            assert_eq!(outcome.status, 202, "{name} {description}: {outcome:#?}");
        }
        let plain_http = call(
            &app,
            &source,
            "addToGroup",
            r#"{"group":"room-1"}"#,
            &[
                ("Origin", "http://app.example.net"),
                ("Host", "app.example.net"),
            ],
        )
        .await;
        assert_refused(
            &plain_http,
            403,
            "cross_site_request",
            "http origin off loopback",
        );
    }
}

#[tokio::test]
async fn a_bearer_token_caller_from_a_foreign_origin_is_accepted() {
    let source = source("jwt");
    let app = spawn_app(AppConfig::hs256()).await;
    let outcome = call(
        &app,
        &source,
        "addToGroup",
        r#"{"group":"room-1"}"#,
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(outcome.status, 202, "{outcome:#?}");
    assert_eq!(outcome.body["userId"], Value::from("alice"));
}

#[tokio::test]
async fn a_malformed_allowed_origin_stops_start_up_naming_the_setting_and_the_fix() {
    for bad in [
        "https://chat.example.com/",
        "*",
        "chat.example.com",
        "https://*.example.com",
    ] {
        let mut config = source("appservice").config;
        config.set("AUTH_ALLOWED_ORIGINS", bad);
        let stderr = start_expecting_failure(&config);
        assert!(stderr.contains("AUTH_ALLOWED_ORIGINS"), "{bad}: {stderr}");
        assert!(
            stderr.contains("https://app.example.com"),
            "{bad}: {stderr}"
        );
    }
}
