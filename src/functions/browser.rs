//! Rules for functions a browser calls with a body, against cross-site request forgery.
//!
//! A page on another site can make a signed-in victim's browser send a CORS *simple* request (no
//! preflight): a POST with `Content-Type: text/plain`, carrying whatever credential the browser
//! attaches on its own, the App Service session cookie (which becomes `X-MS-CLIENT-PRINCIPAL`)
//! or the TLS client certificate (`X-ARR-ClientCert`). Two rules close that:
//!
//! - **Content type, every source**: the body must be declared `application/json` (parameters
//!   allowed, compared case-insensitively), which a cross-site page can only send after a CORS
//!   preflight the app does not grant. Otherwise 415 `unsupported_media_type`.
//! - **Origin, ambient credentials only**: for a caller verified by the App Service / Static Web
//!   Apps principal or a client certificate, `Sec-Fetch-Site: cross-site` is refused, and so is an
//!   `Origin` other than the request's own (`https://` + its `Host`; also `http://` when that host
//!   is `localhost`, `127.0.0.1` or `[::1]`) or one listed in `AUTH_ALLOWED_ORIGINS`. 403
//!   `cross_site_request`. A request with neither `Origin` nor `Sec-Fetch-Site` is not from a
//!   browser's cross-site request and stays allowed (native clients, scripts).
//!
//! Bearer tokens (`jwt`, anonymous visitor tokens) are not attached by the browser on its own, so
//! the origin rule does not apply to them.
//!
//! Only `Host` is trusted for the request's own origin: a browser sets it and a cross-site page
//! cannot change it. `X-Forwarded-Host` is ignored, because any non-browser client can set it; an
//! app behind a proxy or on a custom domain the `Host` does not show lists its public origin in
//! `AUTH_ALLOWED_ORIGINS`.

use crate::error::{CrossSiteRefusal, HandlerError, MediaTypeRefusal};
use crate::identity::sources::AuthSettings;
use crate::identity::{IdentitySource, VerifiedUser};
use crate::invocation::HttpRequestData;

/// The only media type accepted for a caller's body.
pub const JSON_MEDIA_TYPE: &str = "application/json";

/// Refuses a body not declared as `application/json` (415).
pub fn require_json_content_type(request: &HttpRequestData) -> Result<(), HandlerError> {
    match request.media_type() {
        Some(media_type) if media_type == JSON_MEDIA_TYPE => Ok(()),
        Some(media_type) => Err(HandlerError::UnsupportedMediaType(
            MediaTypeRefusal::Declared(media_type),
        )),
        None => Err(HandlerError::UnsupportedMediaType(
            MediaTypeRefusal::Missing,
        )),
    }
}

/// True for credentials a browser attaches on its own, which a cross-site page can make it send.
pub fn is_ambient(source: IdentitySource) -> bool {
    match source {
        IdentitySource::AppService
        | IdentitySource::StaticWebApps
        | IdentitySource::ClientCertificate => true,
        IdentitySource::Jwt
        | IdentitySource::AnonymousVisitor
        | IdentitySource::ServiceConnection => false,
    }
}

/// Refuses a cross-site browser request made with an ambient credential (403).
pub fn refuse_cross_site(
    settings: &AuthSettings,
    request: &HttpRequestData,
    user: &VerifiedUser,
) -> Result<(), HandlerError> {
    if !is_ambient(user.source()) {
        return Ok(());
    }
    let fetch_sites = request.header_values("Sec-Fetch-Site");
    if fetch_sites
        .iter()
        .any(|site| site.trim().eq_ignore_ascii_case("cross-site"))
    {
        return Err(HandlerError::CrossSite(CrossSiteRefusal::FetchSite));
    }
    let origins = request.header_values("Origin");
    let origin = match origins.as_slice() {
        [] => return Ok(()),
        [origin] => origin.trim(),
        _ => {
            return Err(HandlerError::CrossSite(CrossSiteRefusal::RepeatedOrigin));
        }
    };
    if settings
        .allowed_origins
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        || own_origins(request)
            .iter()
            .any(|own| own.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    Err(HandlerError::CrossSite(CrossSiteRefusal::ForeignOrigin(
        origin.to_owned(),
    )))
}

/// The request's own origins, from its single `Host` header.
fn own_origins(request: &HttpRequestData) -> Vec<String> {
    let hosts = request.header_values("Host");
    let [host] = hosts.as_slice() else {
        return Vec::new();
    };
    let host = host.trim().to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Vec::new();
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host.as_str(),
    };
    let mut origins = vec![format!("https://{host}")];
    if matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
        origins.push(format!("http://{host}"));
    }
    origins
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(headers: serde_json::Value) -> HttpRequestData {
        HttpRequestData::from_value(&json!({"Method": "POST", "Headers": headers})).expect("valid")
    }

    #[test]
    fn json_with_parameters_in_any_case_is_the_only_accepted_content_type() {
        for good in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ;charset=UTF-8",
        ] {
            let request = request(json!({"Content-Type": [good]}));
            assert!(require_json_content_type(&request).is_ok(), "{good}");
        }
        for bad in [
            "text/plain",
            "text/plain; charset=application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json-patch+json",
            "",
        ] {
            let request = request(json!({"Content-Type": [bad]}));
            assert!(require_json_content_type(&request).is_err(), "{bad:?}");
        }
        assert!(require_json_content_type(&request(json!({}))).is_err());
    }

    #[test]
    fn the_own_origin_is_https_on_the_host_and_http_only_on_loopback() {
        let own = |host: &str| own_origins(&request(json!({"Host": [host]})));
        assert_eq!(own("app.example.com"), vec!["https://app.example.com"]);
        assert_eq!(
            own("localhost:7071"),
            vec!["https://localhost:7071", "http://localhost:7071"]
        );
        assert_eq!(
            own("[::1]:7071"),
            vec!["https://[::1]:7071", "http://[::1]:7071"]
        );
        assert!(own("evil.example/x").is_empty());
        assert!(own("").is_empty());
    }
}
