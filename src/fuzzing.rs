//! Entry points for the fuzz targets in `fuzz/` (RELIABILITY.md), compiled only with the
//! `fuzzing` feature and hidden from the docs.
//!
//! The decoders are private modules, so the fuzz crate cannot call them directly. Each function
//! here is a thin wrapper that calls the real decoder with fixed settings (built through the same
//! `from_env` code the handler uses) and returns only whether it accepted the input: no decoder
//! logic is copied here, so what the fuzzer exercises is what the handler runs. The wrappers
//! check the few properties a decoder must keep on every input (an accepted name survives
//! unchanged, a token is never empty, a concrete pattern matches its own value) with `assert!`,
//! so a violation is a crash the fuzzer reports.

use std::sync::LazyLock;

use futures_util::FutureExt;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::identity::VerifiedUser;
use crate::identity::client_cert::{CertificateVerifier, ClientCertSettings};
use crate::identity::credential::{self, QueryToken, Scheme, TokenPlace};
use crate::identity::easy_auth::{AppServiceSettings, PrincipalVerifier};
use crate::identity::jwt::{JwtSettings, JwtVerifier, ServiceAudience};
use crate::invocation::{HttpRequestData, InvocationRequest, decode_embedded_json};
use crate::names::{GroupName, HubName, TargetUser, UserId};
use crate::policy::pattern::Pattern;
use crate::settings::Env;
use crate::signalr::connection_string::ConnectionString;
use crate::webpubsub::{self, ConnectEvent, WebPubSubSettings};

/// The HS256 secret of the JWT target's verifier, so the fuzz target can sign the tokens it
/// builds and reach the claim checks behind the signature. Test-only; never a real secret.
pub const INSECURE_FUZZ_JWT_SECRET: &str = "insecure-fuzz-secret-0123456789abcdef-0123456789";
/// The issuer the JWT target's verifier requires.
pub const FUZZ_JWT_ISSUER: &str = "https://issuer.fuzz.invalid/";
/// The audience the JWT target's verifier requires.
pub const FUZZ_JWT_AUDIENCE: &str = "api://fuzz-app";
/// The SignalR endpoint the JWT target's verifier knows (tokens for it are refused).
pub const FUZZ_SIGNALR_ENDPOINT: &str = "https://fuzz.service.signalr.net";
/// The Web PubSub connection string of the event target: its host is the one accepted origin.
pub const INSECURE_FUZZ_WEBPUBSUB_CONNECTION_STRING: &str =
    "Endpoint=https://fuzz.webpubsub.azure.com;AccessKey=insecure-fuzz-webpubsub-key;Version=1.0;";

/// The host's envelope: parse, then everything the functions read from it (the HTTP trigger,
/// headers, query, body, media type, and an input binding decoded from its once- or
/// twice-encoded form). True when the trigger request was read.
pub fn invocation(body: &[u8]) -> bool {
    let Ok(envelope) = InvocationRequest::parse(body, "req") else {
        return false;
    };
    if let Some(Ok(value)) = envelope.input("connectionInfo") {
        let _ = decode_embedded_json(&value);
    }
    let Ok(request) = envelope.http_request() else {
        return false;
    };
    let _ = request.header_values("authorization");
    let _ = request.query_values("access_token");
    let _ = request.media_type();
    true
}

/// Bearer extraction from a host envelope's trigger request, with the `access_token` query
/// accepted (negotiate) and refused (every other function). True when a token was found.
pub fn bearer(body: &[u8]) -> bool {
    let Ok(envelope) = InvocationRequest::parse(body, "req") else {
        return false;
    };
    let Ok(request) = envelope.http_request() else {
        return false;
    };
    let _ = credential::bearer_presented(request);
    let refused = credential::bearer_token(request, QueryToken::Refused).map(str::to_owned);
    let accepted = credential::bearer_token(request, QueryToken::Accepted);
    for token in [refused.as_deref().ok(), accepted.as_ref().ok().copied()]
        .into_iter()
        .flatten()
    {
        assert!(!token.is_empty(), "a bearer token is never empty");
        assert_eq!(token, token.trim(), "a bearer token is trimmed");
    }
    accepted.is_ok()
}

/// The one-token rule on raw header and query values, for each scheme rule. True when some
/// place yielded a token.
pub fn one_token(headers: &[&str], queries: &[&str]) -> bool {
    let places = [
        TokenPlace::bearer(QueryToken::Accepted),
        TokenPlace::bearer(QueryToken::Refused),
        TokenPlace {
            header: "X-Visitor-Token",
            scheme: Scheme::Bare,
            query: "visitor_token",
            query_token: QueryToken::Accepted,
        },
        TokenPlace {
            header: "Authorization",
            scheme: Scheme::Optional("Bearer"),
            query: "access_token",
            query_token: QueryToken::Accepted,
        },
    ];
    let mut found = false;
    for place in &places {
        if let Ok(Some(token)) = credential::one_token(place, headers, queries) {
            assert!(!token.is_empty(), "one_token never yields an empty token");
            assert!(
                !token.contains(','),
                "one_token never yields a joined value"
            );
            found = true;
        }
    }
    found
}

/// Built once per fuzzing process: the verifier holds no state a token can change.
static JWT_VERIFIER: LazyLock<JwtVerifier> = LazyLock::new(jwt_verifier);

/// A verifier with the fixed HS256 settings above; building it reads only constants.
fn jwt_verifier() -> JwtVerifier {
    let lookup = |name: &str| match name {
        "AUTH_ISSUER" => Some(FUZZ_JWT_ISSUER.to_owned()),
        "AUTH_AUDIENCE" => Some(FUZZ_JWT_AUDIENCE.to_owned()),
        "AUTH_HS256_SECRET" => Some(INSECURE_FUZZ_JWT_SECRET.to_owned()),
        _ => None,
    };
    let settings = JwtSettings::from_env(&Env::new(&lookup), std::time::Duration::from_secs(60))
        .expect("the fuzz JWT settings are valid constants");
    let endpoint = url::Url::parse(FUZZ_SIGNALR_ENDPOINT).expect("a constant URL");
    JwtVerifier::new(&settings, &ServiceAudience::new(&endpoint))
        .expect("an HS256 verifier needs no network")
}

/// `JwtVerifier::verify` on `token`: header, `crit`, algorithm, service-audience replay check,
/// signature and claims. True when the token was accepted.
pub fn jwt(token: &str) -> bool {
    // With a shared secret, verification never awaits anything (no JWKS fetch), so the future is
    // ready on its first poll.
    let outcome = JWT_VERIFIER
        .verify(token)
        .now_or_never()
        .expect("HS256 verification completes without waiting");
    match outcome {
        Ok(user) => {
            assert!(!user.user_id().is_empty(), "a verified user has an id");
            true
        }
        Err(_) => false,
    }
}

fn request_with_headers(headers: &[(&str, &str)]) -> Option<HttpRequestData> {
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!([value])))
        .collect();
    HttpRequestData::from_value(&json!({"Method": "GET", "Headers": headers})).ok()
}

/// `X-MS-CLIENT-PRINCIPAL` in the App Service (`static_web_apps` false) or Static Web Apps
/// shape, with the platform's authentication on. True when the principal was accepted.
pub fn app_service_principal(header: &str, static_web_apps: bool) -> bool {
    let lookup = |name: &str| match name {
        "WEBSITE_AUTH_ENABLED" => Some("true".to_owned()),
        "AUTH_APPSERVICE_FORMAT" if static_web_apps => Some("staticwebapps".to_owned()),
        _ => None,
    };
    let settings = AppServiceSettings::from_env(&Env::new(&lookup))
        .expect("the fuzz App Service settings are valid constants");
    let Some(request) = request_with_headers(&[("X-MS-CLIENT-PRINCIPAL", header)]) else {
        return false;
    };
    PrincipalVerifier::new(&settings).verify(&request).is_ok()
}

/// SHA-1 thumbprint of the client-certificate target's seed (fuzz/corpus/client_cert: a
/// self-signed test certificate, CN=fuzz-user, made with openssl), so accepted paths are reachable.
pub const FUZZ_CERT_THUMBPRINT: &str = "798FC2AD4D9BCC355EF0B45E69ADCE6F63D71933";

/// The allow-list holds only [`FUZZ_CERT_THUMBPRINT`]; built once per fuzzing process.
static CERT_VERIFIER: LazyLock<CertificateVerifier> =
    LazyLock::new(|| certificate_verifier(FUZZ_CERT_THUMBPRINT));

/// A certificate verifier whose allow-list holds `thumbprint` (40 hex digits), user ids from the
/// subject's common name.
fn certificate_verifier(thumbprint: &str) -> CertificateVerifier {
    let lookup = |name: &str| match name {
        "CLIENT_CERT_THUMBPRINTS" => Some(thumbprint.to_owned()),
        "CLIENT_CERT_USER_ID_FROM" => Some("subject-cn".to_owned()),
        _ => None,
    };
    let settings = ClientCertSettings::from_env(&Env::new(&lookup))
        .expect("the fuzz allow-list is a valid thumbprint");
    CertificateVerifier::new(&settings)
}

/// `X-ARR-ClientCert` (base64 DER) and a Web PubSub reported certificate (thumbprint and PEM) at
/// `now`. True when either was accepted.
pub fn client_cert(header: &str, reported: &str, pem: &str, now: i64) -> bool {
    let from_header = request_with_headers(&[("X-ARR-ClientCert", header)])
        .is_some_and(|request| CERT_VERIFIER.verify_header(&request, now).is_ok());
    let from_report = CERT_VERIFIER
        .verify_reported(reported, Some(pem), now)
        .is_ok();
    from_header || from_report
}

/// A policy pattern (from the operator) filled for a user whose `claim` is `claim_value` (from
/// the caller's credential) and matched against `subject` (from the caller). True on a match.
pub fn pattern(pattern: &str, claim_value: &str, subject: &str) -> bool {
    let Ok(parsed) = Pattern::parse(pattern) else {
        return false;
    };
    let user = VerifiedUser::for_tests("fuzz-user", json!({ "claim": claim_value }));
    let Some(filled) = parsed.fill(&user) else {
        return false;
    };
    if let Some(value) = filled.concrete_value() {
        assert!(
            filled.matches(&value) || value.chars().count() > 1024,
            "a concrete pattern matches its own value"
        );
    }
    filled.matches(subject)
}

/// Every name rule on `value`: hub, group, user id, target user. An accepted name is kept
/// exactly as sent. True when any rule accepted it.
pub fn names(value: &str) -> bool {
    let hub = HubName::parse(value).map(|name| name.as_str() == value);
    let group = GroupName::parse(value).map(|name| name.as_str() == value);
    let user = UserId::parse(value).map(|name| name.as_str() == value);
    let target = TargetUser::parse(value).map(|name| name.as_str() == value);
    for kept in [&hub, &group, &user, &target].into_iter().flatten() {
        assert!(*kept, "an accepted name is not rewritten");
    }
    if let Ok(id) = UserId::parse(value) {
        let _ = id.is_anonymous();
    }
    hub.is_ok() || group.is_ok() || user.is_ok() || target.is_ok()
}

/// A SignalR / Web PubSub connection string, and the URLs built from an accepted one. True when
/// accepted.
pub fn connection_string(raw: &str) -> bool {
    let Ok(parsed) = ConnectionString::parse(raw) else {
        return false;
    };
    let _ = parsed.audience_base();
    let _ = parsed.client_url("hub");
    let _ = parsed.server_base();
    let _ = parsed.host();
    let _ = parsed.service_audience();
    true
}

/// Built once per fuzzing process.
static WEBPUBSUB_SETTINGS: LazyLock<WebPubSubSettings> = LazyLock::new(webpubsub_settings);

/// The Web PubSub settings of the event target.
fn webpubsub_settings() -> WebPubSubSettings {
    let lookup = |name: &str| match name {
        "WEBPUBSUB_CONNECTION_STRING" => Some(INSECURE_FUZZ_WEBPUBSUB_CONNECTION_STRING.to_owned()),
        _ => None,
    };
    WebPubSubSettings::from_env(&Env::new(&lookup))
        .expect("the fuzz Web PubSub settings are valid constants")
        .expect("the connection string is set")
}

/// A Web PubSub event: the connect body, then origin, connection id and `ce-signature` as
/// headers of the event request, and the signature rule on its own. True when the event was
/// authenticated.
pub fn webpubsub_event(body: &[u8], origin: &str, connection_id: &str, signature: &str) -> bool {
    if let Ok(event) = ConnectEvent::parse(Some(body)) {
        let _ = event.header_values("authorization");
        let _ = event.query_values("access_token");
    }
    let settings = &*WEBPUBSUB_SETTINGS;
    let secondary = SecretString::from("insecure-fuzz-secondary-key");
    if let Some(primary) = settings.connection.access_key() {
        let _ = webpubsub::signature_matches(signature, connection_id, &[primary, &secondary]);
    }
    let Some(request) = request_with_headers(&[
        ("WebHook-Request-Origin", origin),
        ("ce-connectionId", connection_id),
        ("ce-signature", signature),
        ("ce-type", "azure.webpubsub.sys.connect"),
    ]) else {
        return false;
    };
    let _ = webpubsub::allowed_origin(settings, &request);
    // The AccessKey path needs no key fetch, so the future completes without waiting.
    FUZZ_RUNTIME
        .block_on(webpubsub::authenticate_event(settings, None, &request))
        .is_ok()
}

/// A current-thread runtime for the decoders that are `async` (built once per fuzzing process).
static FUZZ_RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
});
