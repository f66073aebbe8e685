//! The handler process under the host: restarts after a crash, and CORS from local settings.

use std::process::Command;

use serde_json::json;

use crate::helpers::{AppRoot, HostLog, TestHost, app_token, connection_string, hs256_values};

fn number_after(line: &str, marker: &str) -> u32 {
    let start = line.find(marker).expect("marker present") + marker.len();
    line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a number")
}

/// `#[tokio::test]` runs on a current-thread runtime, so the host's tasks log to `log`.
#[tokio::test]
async fn the_host_reports_its_real_port_and_restarts_a_crashed_handler() {
    let log = HostLog::default();
    let _capture = log.capture();
    let app = AppRoot::repository_app(hs256_values(&connection_string(8888)));
    let _host = TestHost::start(&app).await;
    let first_ready = log.wait_for("handler ready (pid ").await;
    let listening = log
        .wait_for("host-emulator listening on http://localhost:")
        .await;
    let port = number_after(&listening, "http://localhost:");
    assert_ne!(port, 0);
    let http = reqwest::Client::new();
    let negotiate = || {
        http.post(format!("http://127.0.0.1:{port}/api/negotiate"))
            .bearer_auth(app_token("alice", 600))
            .send()
    };
    assert_eq!(negotiate().await.expect("reachable").status(), 200);

    let pid = number_after(&first_ready, "handler ready (pid ");
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    log.wait_for("restarting the handler (error 1 of 3").await;
    let second_ready = log.wait_for("handler ready (pid ").await;
    assert_ne!(number_after(&second_ready, "handler ready (pid "), pid);
    assert_eq!(negotiate().await.expect("reachable").status(), 200);
}

#[tokio::test]
async fn cors_follows_local_settings() {
    let app = AppRoot::repository_app(hs256_values(&connection_string(8888)));
    app.settings(json!({
        "Values": hs256_values(&connection_string(8888)),
        "Host": {"CORS": "http://allowed.test", "CORSCredentials": true}
    }));
    let host = TestHost::start(&app).await;
    let preflight = |origin: &'static str| {
        host.http
            .request(reqwest::Method::OPTIONS, host.url("/api/negotiate"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let allowed = preflight("http://allowed.test").await.expect("reachable");
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://allowed.test"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-headers"],
        "authorization"
    );
    let refused = preflight("http://evil.test").await.expect("reachable");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let actual = host
        .http
        .post(host.url("/api/negotiate"))
        .header("Origin", "http://allowed.test")
        .send()
        .await
        .expect("reachable");
    assert_eq!(actual.status(), 401);
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "http://allowed.test"
    );
}
