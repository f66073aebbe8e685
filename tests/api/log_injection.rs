//! Finding 2: caller text never splits a log line or puts a raw control character in a response.
//! One table-driven test per function: hostile text (CR/LF with a forged log line, ESC, U+2028,
//! NUL, NEL) in body field names and values, header names and values, and query keys. Each
//! checks `Logs` and the response of every invocation, and then every line the spawned handler
//! wrote to stderr and stdout.

use serde_json::{Value, json};

use crate::helpers::*;

/// A caller-made log line: if it ever starts a line of output, a forgery succeeded.
const FORGED_LINE: &str = "2026-01-01T00:00:00Z  INFO token issued for user \"root\"";

fn hostile() -> Vec<String> {
    vec![
        format!("x\r\n{FORGED_LINE}"),
        format!("x\n{FORGED_LINE}"),
        "esc\u{1b}[2Jcleared".into(),
        format!("sep\u{2028}{FORGED_LINE}\u{2029}"),
        "nul\0byte".into(),
        format!("nel\u{85}{FORGED_LINE}"),
    ]
}

fn is_unsafe(character: char) -> bool {
    character.is_control() || matches!(character, '\u{2028}' | '\u{2029}')
}

fn alice() -> String {
    token_with("alice", json!({}))
}

/// `Logs` lines and the caller's response of one invocation carry no raw control character.
fn assert_outcome_clean(outcome: &Outcome, description: &str) {
    for line in &outcome.logs {
        assert!(
            !line.chars().any(is_unsafe),
            "{description}: a Logs line is not one clean line: {line:?}"
        );
    }
    // A served static file (index) is ours, not caller text, and may have newlines.
    let served_file = outcome.status == 200
        && outcome
            .header("Content-Type")
            .is_some_and(|value| value.starts_with("text/"));
    assert!(
        served_file || !outcome.body_text.chars().any(is_unsafe),
        "{description}: raw control character in the body {:?}",
        outcome.body_text
    );
    assert!(
        !outcome.body_text.contains(FORGED_LINE),
        "{description}: caller text echoed in the body {:?}",
        outcome.body_text
    );
    for (name, value) in &outcome.headers {
        let value = value.as_str().unwrap_or_default();
        assert!(
            !name.chars().chain(value.chars()).any(is_unsafe),
            "{description}: header {name:?}: {value:?}"
        );
    }
}

/// The handler with every invocation line mirrored to its process log (debug), so the checks
/// below see each line a caller can influence, not just the default warnings.
fn mirroring_every_line() -> AppConfig {
    let mut config = AppConfig::hs256();
    config.set("RUST_LOG", "info,handler=debug");
    config
}

/// Every line the handler wrote to stderr and stdout is one clean line, and none is forged.
/// A successful negotiate for `log-marker` and a refusal of `logMarker` are made last, so their
/// lines show the output was read to the end.
async fn assert_process_output_clean(app: &TestApp) {
    assert_eq!(
        app.negotiate(&token_with("log-marker", json!({})))
            .await
            .status,
        200
    );
    let marker = app.invoke("logMarker", &json!({"Data": {}})).await;
    assert_eq!(marker.status, 404);
    // Both are mirrored at debug, which goes to stdout; warnings and errors go to stderr.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(app.stdout().contains("log-marker") && app.stdout().contains("logMarker")) {
        assert!(
            std::time::Instant::now() < deadline,
            "stdout: {}",
            app.stdout()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (stream, text) in [("stderr", app.stderr()), ("stdout", app.stdout())] {
        for line in text.split_terminator('\n') {
            assert!(
                !line.chars().any(is_unsafe),
                "{stream}: not one clean line: {line:?}"
            );
            assert!(
                !line.starts_with(FORGED_LINE),
                "{stream}: forged line: {line:?}"
            );
        }
    }
}

/// Hostile variants of a host invocation of a body function: field names and values, header
/// names and values (credential and content type included), query keys and values.
fn body_function_cases(function: &str, valid: &Value) -> Vec<(Value, String)> {
    let mut cases = Vec::new();
    for text in hostile() {
        let mut named = valid.clone();
        named[text.as_str()] = json!(1);
        cases.push((
            function_payload(function, Some(&alice()), &named),
            format!("field name {text:?}"),
        ));
        for field in valid.as_object().expect("object").keys() {
            let mut changed = valid.clone();
            changed[field.as_str()] = json!(text);
            cases.push((
                function_payload(function, Some(&alice()), &changed),
                format!("field {field} = {text:?}"),
            ));
        }
        let mut arguments = valid.clone();
        arguments["arguments"] = json!([text]);
        cases.push((
            function_payload(function, Some(&alice()), &arguments),
            format!("arguments {text:?}"),
        ));
        for (name, value) in [
            ("Authorization", format!("Bearer {text}")),
            ("Content-Type", text.clone()),
            ("Origin", text.clone()),
            ("Sec-Fetch-Site", text.clone()),
            (text.as_str(), text.clone()),
        ] {
            let mut payload = function_payload(function, Some(&alice()), valid);
            payload["Data"]["req"]["Headers"][name] = json!([value]);
            cases.push((payload, format!("header {name:?}: {value:?}")));
        }
        let mut payload = function_payload(function, Some(&alice()), valid);
        payload["Data"]["req"]["Query"] = json!({text.as_str(): text, "access_token": text});
        cases.push((payload, format!("query key {text:?}")));
    }
    cases
}

async fn run_body_function(function: &str, valid: Value) {
    let app = spawn_app(mirroring_every_line()).await;
    for (payload, description) in body_function_cases(function, &valid) {
        let outcome = app.invoke(function, &payload).await;
        assert_outcome_clean(&outcome, &format!("{function}, {description}"));
    }
    assert_process_output_clean(&app).await;
}

#[tokio::test]
async fn add_to_group_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    run_body_function("addToGroup", json!({"group": "room-1", "userId": "alice"})).await;
}

#[tokio::test]
async fn remove_from_group_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    run_body_function(
        "removeFromGroup",
        json!({"group": "room-1", "userId": "alice"}),
    )
    .await;
}

#[tokio::test]
async fn remove_from_all_groups_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    run_body_function("removeFromAllGroups", json!({"userId": "alice"})).await;
}

#[tokio::test]
async fn send_to_group_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    run_body_function(
        "sendToGroup",
        json!({"group": "room-1", "target": "newMessage", "arguments": []}),
    )
    .await;
}

#[tokio::test]
async fn send_to_user_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    run_body_function(
        "sendToUser",
        json!({"userId": "bob", "target": "newMessage", "arguments": []}),
    )
    .await;
}

#[tokio::test]
async fn negotiate_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    let app = spawn_app(mirroring_every_line()).await;
    for text in hostile() {
        let bearer = format!("Bearer {text}");
        let hostile_kid = raw_token(
            &json!({"alg": "HS256", "typ": "JWT", "kid": text}),
            &Value::Object(claims("alice")),
            Some(HS256_SECRET.as_bytes()),
        );
        let kid_bearer = format!("Bearer {hostile_kid}");
        let user_bearer = format!("Bearer {}", token_with(&text, json!({})));
        let header_cases: [&[(&str, &str)]; 5] = [
            &[("Authorization", &bearer)],
            &[("Authorization", &kid_bearer)],
            &[("Authorization", &user_bearer)],
            &[(text.as_str(), text.as_str())],
            &[("X-MS-CLIENT-PRINCIPAL", text.as_str())],
        ];
        for headers in header_cases {
            let outcome = app.negotiate_with(headers, &[]).await;
            assert_outcome_clean(&outcome, &format!("negotiate, headers {headers:?}"));
        }
        let query_cases: [&[(&str, &str)]; 2] = [
            &[("access_token", text.as_str())],
            &[(text.as_str(), text.as_str())],
        ];
        for query in query_cases {
            let outcome = app.negotiate_with(&[], query).await;
            assert_outcome_clean(&outcome, &format!("negotiate, query {query:?}"));
        }
    }
    // A user id with line separators is a valid id: the success line quotes it escaped.
    let outcome = app
        .negotiate(&token_with(&format!("u\u{2028}{FORGED_LINE}"), json!({})))
        .await;
    assert_outcome_clean(&outcome, "negotiate, user id with U+2028");
    assert_process_output_clean(&app).await;
}

#[tokio::test]
async fn index_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    let app = spawn_app(mirroring_every_line()).await;
    for text in hostile() {
        let mut cases = Vec::new();
        let mut base = function_payload("index", None, &json!({}));
        base["Data"]["req"]["Method"] = json!("GET");
        base["Data"]["req"]
            .as_object_mut()
            .expect("req")
            .remove("Body");
        for path in [
            text.clone(),
            format!("lib/{text}.js"),
            format!("{text}/index.html"),
        ] {
            let mut payload = base.clone();
            payload["Data"]["req"]["Params"] = json!({"path": path});
            cases.push((payload, format!("path {path:?}")));
        }
        let mut payload = base.clone();
        payload["Data"]["req"]["Headers"][text.as_str()] = json!([text]);
        payload["Data"]["req"]["Query"] = json!({text.as_str(): text});
        cases.push((payload, format!("header and query {text:?}")));
        for (payload, description) in cases {
            let outcome = app.invoke("index", &payload).await;
            assert_outcome_clean(&outcome, &format!("index, {description}"));
        }
    }
    assert_process_output_clean(&app).await;
}

#[tokio::test]
async fn connect_keeps_hostile_caller_text_out_of_log_lines_and_responses() {
    let app = spawn_app(mirroring_every_line()).await;
    for text in hostile() {
        for headers in [
            vec![("WebHook-Request-Origin", text.as_str())],
            vec![(text.as_str(), text.as_str())],
        ] {
            let outcome = app.connect_handshake(&headers).await;
            assert_outcome_clean(&outcome, &format!("connect handshake, {headers:?}"));
        }
        let mut events = vec![
            WpsEvent::connect(&text, connect_body(Some(&alice()), json!([]))),
            WpsEvent::connect("conn-1", connect_body(Some(&text), json!([]))),
            WpsEvent::system("connected", &text, json!({})),
        ];
        let mut user_event = WpsEvent::connect("conn-1", json!({}));
        user_event.event_type = format!("azure.webpubsub.user.{text}");
        events.push(user_event);
        let mut origin = WpsEvent::connect("conn-1", json!({}));
        origin.origin = Some(text.clone());
        events.push(origin);
        let mut body_keys = connect_body(Some(&alice()), json!([]));
        body_keys["query"][text.as_str()] = json!([text]);
        body_keys["headers"][text.as_str()] = json!([text]);
        body_keys[text.as_str()] = json!(text);
        events.push(WpsEvent::connect("conn-1", body_keys));
        let mut certificate = WpsEvent::connect(
            "conn-1",
            connect_body(
                Some(&alice()),
                json!([{"thumbprint": text, "content": text}]),
            ),
        );
        certificate.body["claims"] = json!({text.as_str(): [text]});
        events.push(certificate);
        let mut malformed = WpsEvent::connect("conn-1", json!({}));
        malformed.body = json!({"query": text});
        events.push(malformed);
        for event in &events {
            let outcome = app.connect_event(event).await;
            assert_outcome_clean(
                &outcome,
                &format!(
                    "connect event {:?} {:?}",
                    event.event_type, event.connection_id
                ),
            );
        }
    }
    assert_process_output_clean(&app).await;
}

#[tokio::test]
async fn an_unknown_field_named_as_a_forged_log_line_is_reported_by_position_only() {
    let app = spawn_app(mirroring_every_line()).await;
    let body = json!({"group": "room-1", format!("x\r\n{FORGED_LINE}"): 1});
    let outcome = app.call("addToGroup", &alice(), body).await;
    assert_eq!(outcome.status, 400, "{outcome:#?}");
    assert!(
        !outcome.body_text.contains("token issued"),
        "{}",
        outcome.body_text
    );
    assert!(
        !outcome.logs_text().contains("token issued"),
        "{:?}",
        outcome.logs
    );
    assert!(
        outcome.logs_text().contains("data error at line 1 column"),
        "{:?}",
        outcome.logs
    );
    assert_process_output_clean(&app).await;
}
