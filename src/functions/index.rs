//! `index`: the demo SPA's static files from the app root's `www/` folder, so the page and the
//! functions share an origin (no CORS needed) both locally and on Azure.
//!
//! Only text files are served (the `http` output carries a string body, written as is), from a
//! fixed list of extensions, with paths checked segment by segment so nothing outside `www/`
//! can be named.
//!
//! Off unless `DEMO_PAGE_ENABLED=true`: the page signs in at whatever issuer its URL names and is
//! a teaching aid, not part of a deployed app, so a deployment that forgets about it serves 404.

use crate::error::{HandlerError, NotFound};
use crate::functions::{AppState, FunctionOutcome};
use crate::invocation::{CallerResponse, InvocationRequest};

/// Largest file served.
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
const MAX_PATH_CHARS: usize = 256;

/// Scripts and styles only from this origin; connections to any http(s)/ws(s) endpoint,
/// because the SignalR Service lives on another host.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' http: https: ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Runs `index`.
pub async fn run(
    state: &AppState,
    invocation: &InvocationRequest,
) -> Result<FunctionOutcome, HandlerError> {
    if !state.demo_page {
        return Err(HandlerError::NotFound(NotFound::DemoPageOff));
    }
    let request = invocation.http_request()?;
    let requested = request
        .params
        .get("path")
        .and_then(|value| value.as_str())
        .unwrap_or_default();
    let relative = if requested.is_empty() {
        "index.html"
    } else {
        requested
    };
    let content_type = safe_content_type(relative)
        .ok_or_else(|| HandlerError::NotFound(NotFound::NotServable(relative.to_owned())))?;
    let path = state.app_root.join("www").join(relative);
    let metadata = std::fs::metadata(&path)
        .map_err(|_| HandlerError::NotFound(NotFound::NoFile(relative.to_owned())))?;
    if !metadata.is_file() || metadata.len() > MAX_FILE_BYTES {
        return Err(HandlerError::NotFound(NotFound::NoFile(
            relative.to_owned(),
        )));
    }
    let body = std::fs::read_to_string(&path)
        .map_err(|_| HandlerError::NotFound(NotFound::NoFile(relative.to_owned())))?;
    Ok(FunctionOutcome {
        response: CallerResponse {
            status: 200,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                ("Cache-Control".into(), "no-cache".into()),
                ("X-Content-Type-Options".into(), "nosniff".into()),
                ("Referrer-Policy".into(), "no-referrer".into()),
                (
                    "Content-Security-Policy".into(),
                    CONTENT_SECURITY_POLICY.into(),
                ),
            ],
            body,
        },
        outputs: Vec::new(),
    })
}

/// The content type of `relative` if it is a safe path to a servable file: segments of
/// letters, digits, `-`, `_` and `.`, none empty or starting with `.`, and a known extension.
fn safe_content_type(relative: &str) -> Option<&'static str> {
    if relative.chars().count() > MAX_PATH_CHARS {
        return None;
    }
    let segments_ok = relative.split('/').all(|segment| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    });
    if !segments_ok {
        return None;
    }
    let extension = relative.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_with_known_extensions_are_servable() {
        assert_eq!(
            safe_content_type("index.html"),
            Some("text/html; charset=utf-8")
        );
        assert!(safe_content_type("lib/signalr.min.js").is_some());
        for bad in [
            "../host.json",
            "lib/../../local.settings.json",
            "/etc/passwd",
            ".env",
            "lib/.hidden.js",
            "a//b.js",
            "a\\b.js",
            "index.html\0",
            "app.exe",
            "noextension",
            "a%2e%2e/b.js",
        ] {
            assert_eq!(safe_content_type(bad), None, "{bad:?}");
        }
    }
}
