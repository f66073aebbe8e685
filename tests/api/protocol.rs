//! The custom-handler protocol itself: readiness, envelopes for every outcome, start-up checks.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn get_root_answers_for_readiness_without_credentials() {
    let app = spawn_app(AppConfig::hs256()).await;
    let response = app.http.get(app.url("/")).send().await.expect("answers");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_unknown_function_gets_a_404_in_the_envelope() {
    let app = spawn_app(AppConfig::hs256()).await;
    let outcome = app
        .invoke("deleteEverything", &json!({"Data": {}, "Metadata": {}}))
        .await;
    assert_eq!(outcome.status, 404);
    assert_eq!(outcome.body["error"], "unknown_function");
    assert!(outcome.logs_text().contains("deleteEverything"));
}

#[tokio::test]
async fn malformed_payloads_get_400_in_the_envelope() {
    let app = spawn_app(AppConfig::hs256()).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not JSON"),
        (b"[1,2]".to_vec(), "not an object"),
        (br#"{"Data": 5}"#.to_vec(), "Data not an object"),
        (br#"{"Data": {}}"#.to_vec(), "no request"),
        (br#"{"Data": {"req": 5}}"#.to_vec(), "request not an object"),
        (
            br#"{"Data": {"req": {"Headers": ["x"]}}}"#.to_vec(),
            "headers not an object",
        ),
    ];
    for (body, description) in cases {
        let outcome = app.invoke_raw("negotiate", body).await;
        assert_eq!(outcome.status, 400, "{description}: {outcome:#?}");
        assert_eq!(outcome.body["error"], "bad_request", "{description}");
    }
}

#[tokio::test]
async fn an_oversized_invocation_gets_413_in_the_envelope() {
    let app = spawn_app(AppConfig::hs256()).await;
    let body = format!(
        r#"{{"Data": {{"pad": "{}"}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let outcome = app.invoke_raw("negotiate", body.into_bytes()).await;
    assert_eq!(outcome.status, 413, "{outcome:#?}");
}

#[tokio::test]
async fn a_binding_declared_but_not_sent_is_a_configuration_error() {
    let app = spawn_app(AppConfig::hs256()).await;
    let mut request = payload(
        "negotiate-binding.json",
        &[
            ("APP_TOKEN", &hs256_token(&claims("alice"))),
            ("BINDING_TOKEN", "x"),
        ],
    );
    request["Data"]
        .as_object_mut()
        .expect("data")
        .remove("connectionInfo");
    let outcome = app.invoke("negotiate", &request).await;
    assert_eq!(outcome.status, 500, "{outcome:#?}");
    assert_eq!(outcome.body["error"], "configuration_error");
}

#[test]
fn the_handler_refuses_to_start_with_a_bad_setting_and_names_it() {
    let cases = [
        ("AUTH_ISSUER", None, "AUTH_ISSUER"),
        ("AUTH_HS256_SECRET", Some("short"), "AUTH_HS256_SECRET"),
        (
            "AzureSignalRConnectionString",
            Some("Endpoint=https://x;Version=9"),
            "AzureSignalRConnectionString",
        ),
        ("AUTH_ALGORITHMS", Some("none"), "AUTH_ALGORITHMS"),
    ];
    for (name, value, expected) in cases {
        let mut config = AppConfig::hs256();
        match value {
            Some(value) => config.set(name, value),
            None => config.unset(name),
        };
        let stderr = start_expecting_failure(&config);
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains(ACCESS_KEY), "no secret in the message");
    }
}

#[tokio::test]
async fn a_json_body_with_a_multipart_boundary_parameter_is_read_as_text_not_base64() {
    let app = spawn_app(AppConfig::hs256()).await;
    let token = token_with("alice", json!({}));
    let mut payload = function_payload("addToGroup", Some(&token), &json!({"group": "room-1"}));
    payload["Data"]["req"]["Headers"]["Content-Type"] =
        json!(["application/json; boundary=multipart"]);
    let outcome = app.invoke("addToGroup", &payload).await;
    assert_eq!(outcome.status, 202, "{outcome:#?}");
}

#[tokio::test]
async fn an_absent_optional_route_parameter_sent_as_null_serves_the_index_page() {
    let mut config = AppConfig::hs256();
    config.set("DEMO_PAGE_ENABLED", "true");
    let app = spawn_app(config).await;
    let mut payload = function_payload("index", None, &json!({}));
    let request = &mut payload["Data"]["req"];
    request["Method"] = json!("GET");
    request.as_object_mut().expect("req").remove("Body");
    request["Params"] = json!({"path": null});
    let outcome = app.invoke("index", &payload).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    assert_eq!(
        outcome.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn a_configuration_error_prints_its_chain_and_no_backtrace_even_with_rust_backtrace_set() {
    let mut config = AppConfig::hs256();
    config.unset("AUTH_AUDIENCE").set("RUST_BACKTRACE", "1");
    let stderr = start_expecting_failure(&config);
    assert!(
        stderr.contains(
            "error: the handler cannot start: configuration error in `AUTH_AUDIENCE`: is not set"
        ),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert!(!stderr.contains("Caused by"), "{stderr}");
}

#[test]
fn function_json_files_that_name_different_hubs_stop_start_up_naming_the_files() {
    let root = tempfile::tempdir().expect("temp dir");
    for (function, hub) in [("negotiate", "chat"), ("sendToGroup", "lobby")] {
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(function)
            .join("function.json");
        let text = std::fs::read_to_string(source)
            .expect("function.json")
            .replace("\"chat\"", &format!("{hub:?}"));
        std::fs::create_dir(root.path().join(function)).expect("mkdir");
        std::fs::write(root.path().join(function).join("function.json"), text).expect("write");
    }
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    let stderr = start_expecting_failure(&config);
    assert!(
        stderr.contains("`chat` in negotiate/function.json"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`lobby` in sendToGroup/function.json"),
        "{stderr}"
    );
}
