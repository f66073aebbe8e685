//! The `index` function serves the SPA's files from `www/`, and nothing else.

use serde_json::json;

use crate::helpers::*;

/// An app root with the `negotiate` and `index` folders and a small `www/`, plus a file beside
/// `www/` that must never be served.
fn demo_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    for function in ["negotiate", "index"] {
        std::fs::create_dir(root.path().join(function)).expect("mkdir");
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(function)
            .join("function.json");
        std::fs::copy(source, root.path().join(function).join("function.json")).expect("copy");
    }
    std::fs::create_dir_all(root.path().join("www/lib")).expect("mkdir");
    std::fs::write(
        root.path().join("www/index.html"),
        "<!doctype html><title>demo</title>",
    )
    .expect("write");
    std::fs::write(root.path().join("www/lib/app.js"), "console.log(1)").expect("write");
    std::fs::write(root.path().join("secret.txt"), "do not serve").expect("write");
    root
}

/// The host's invocation of `index` for a GET of `/api/app/<path>`.
fn get(path: &str) -> serde_json::Value {
    let mut payload = function_payload("index", None, &json!({}));
    let request = &mut payload["Data"]["req"];
    request["Method"] = json!("GET");
    request.as_object_mut().expect("req").remove("Body");
    request["Params"] = if path.is_empty() {
        json!({})
    } else {
        json!({"path": path})
    };
    payload
}

#[tokio::test]
async fn the_demo_page_is_off_unless_demo_page_enabled_is_true() {
    let root = demo_root();
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    let app = spawn_app(config).await;
    for path in ["", "index.html", "lib/app.js"] {
        let response = app.invoke("index", &get(path)).await;
        assert_eq!(response.status, 404, "{path:?}: {response:#?}");
        assert!(!response.body_text.contains("demo"), "{response:#?}");
    }
    let logged = app.invoke("index", &get("")).await;
    assert!(
        logged.logs_text().contains("DEMO_PAGE_ENABLED"),
        "the log names the setting: {:?}",
        logged.logs
    );
}

#[tokio::test]
async fn index_serves_files_from_www_and_refuses_everything_else() {
    let root = demo_root();
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    config.set("DEMO_PAGE_ENABLED", "true");
    let app = spawn_app(config).await;

    let page = app.invoke("index", &get("")).await;
    assert_eq!(page.status, 200, "{page:#?}");
    assert_eq!(page.body_text, "<!doctype html><title>demo</title>");
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("Content-Security-Policy")
            .is_some_and(|csp| csp.contains("script-src 'self'"))
    );
    let script = app.invoke("index", &get("lib/app.js")).await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    for bad in [
        "../secret.txt",
        "lib/../../secret.txt",
        "missing.html",
        "../negotiate/function.json",
        ".hidden.js",
    ] {
        assert_eq!(app.invoke("index", &get(bad)).await.status, 404, "{bad}");
    }
}
