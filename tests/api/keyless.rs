//! No access key anywhere (issue 13): the spawned handler with only
//! `AzureSignalRConnectionString__serviceUri` and the platform's `IDENTITY_ENDPOINT` /
//! `IDENTITY_HEADER`, against a real local identity endpoint (`dev-idp`, in-process over real
//! HTTP) and a real service stand-in (the SignalR emulator, in-process, trusting dev-idp's tenant
//! issuer). Tokens the handler mints are checked by the emulator itself, at its
//! `POST /client/negotiate`. Also: connection settings read the way the extension reads them.

use std::time::{Duration, Instant};

use serde_json::Value;

use dev_idp::managed_identity::{DEV_TENANT_ID, ManagedIdentityOptions, SIGNALR_RESOURCE};
use dev_idp::{DEFAULT_AUDIENCE, DevIdp, DevIdpOptions};
use signalr_emulator::{
    AccessKey, Config, Emulator, EntraConfig, ROLE_APP_SERVER, ROLE_REST_API_READER,
    ROLE_SERVICE_OWNER,
};

use crate::helpers::*;

const IDENTITY_HEADER: &str = "insecure-test-identity-header-0123456789";

/// A dev-idp on `port` (0: any), stopped when dropped.
struct Idp {
    identity_endpoint: String,
    tenant_issuer: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_idp(port: u16, roles: &[&str]) -> Idp {
    start_idp(
        port,
        ManagedIdentityOptions {
            identity_header: Some(IDENTITY_HEADER.to_owned()),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            ..ManagedIdentityOptions::default()
        },
    )
    .await
}

/// A dev-idp on `port` (0: any) whose identity endpoint answers as `managed_identity` says.
async fn start_idp(port: u16, managed_identity: ManagedIdentityOptions) -> Idp {
    let idp = DevIdp::bind(DevIdpOptions {
        port,
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuer: None,
        key_file: None,
        managed_identity,
    })
    .await
    .expect("dev-idp binds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let spawned = Idp {
        identity_endpoint: idp.identity_endpoint(),
        tenant_issuer: idp.tenant_issuer(),
        _stop: stop,
    };
    tokio::spawn(idp.run_until_stopped(async {
        let _ = stopped.await;
    }));
    spawned
}

/// A SignalR emulator trusting `entra_issuer` (keys by OpenID Connect discovery), with local
/// auth disabled: only temporary keys and Entra tokens work. Stopped when dropped.
struct Service {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_service(entra_issuer: &str) -> Service {
    let mut config = Config::new(AccessKey::insecure_dev());
    config.entra = Some(EntraConfig::new(entra_issuer, None).expect("a valid issuer"));
    config.local_auth_disabled = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let emulator = Emulator::start(listener, config, async {
        let _ = stopped.await;
    })
    .expect("the emulator starts");
    Service {
        base: format!("http://localhost:{}", emulator.port()),
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Service {
    /// Whether the service accepts `token` for a client connection (its own check: `kid`,
    /// signature, audience, expiry).
    async fn accepts(&self, token: &str) -> bool {
        let response = self
            .http
            .post(format!("{}/client/negotiate?hub=chat", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the emulator answers");
        response.status().is_success()
    }

    /// Expires every temporary key the service has issued (a forced rotation).
    async fn expire_keys(&self, idp: &Idp) {
        let token = mi_token(idp, SIGNALR_RESOURCE).await;
        let response = self
            .http
            .post(format!("{}/emulator/temporary-keys/expire", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the emulator answers");
        assert!(response.status().is_success(), "{response:?}");
    }
}

/// An app root whose negotiate has no `signalRConnectionInfo` input: the handler mints.
fn minting_app_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(root.path().join("negotiate")).expect("mkdir");
    std::fs::write(
        root.path().join("negotiate/function.json"),
        r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"]},{"type":"http","direction":"out","name":"res"}]}"#,
    )
    .expect("write");
    root
}

/// The handler with no key anywhere: the service URI, the identity variables, a hub.
fn keyless_config(
    root: &tempfile::TempDir,
    service: &Service,
    identity_endpoint: &str,
) -> AppConfig {
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    config.unset("AzureSignalRConnectionString");
    config.set("AzureSignalRConnectionString__serviceUri", &service.base);
    config.set("IDENTITY_ENDPOINT", identity_endpoint);
    config.set("IDENTITY_HEADER", IDENTITY_HEADER);
    config.set("SIGNALR_HUB_NAME", "chat");
    config
}

/// The handler in `root` with a connection string of `AuthType=azure.msi` and a hub, and no
/// identity variables: start-up checks what else keyless needs.
fn managed_identity_connection_string_config(root: &tempfile::TempDir) -> AppConfig {
    let mut config = AppConfig::hs256();
    config.app_root = root.path().to_path_buf();
    config.unset("AzureSignalRConnectionString");
    config.set(
        "AzureSignalRConnectionString",
        "Endpoint=https://x.service.signalr.net;AuthType=azure.msi;Version=1.0;",
    );
    config.set("SIGNALR_HUB_NAME", "chat");
    config
}

async fn negotiate(app: &TestApp, user: &str) -> Outcome {
    app.invoke(
        "negotiate",
        &payload(
            "negotiate-minted.json",
            &[("APP_TOKEN", &hs256_token(&claims(user)))],
        ),
    )
    .await
}

/// The header and claims of a token, without checking its signature (the service checks it).
fn parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let decode = |segment: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let segments: Vec<&str> = token.split('.').collect();
    (decode(segments[0]), decode(segments[1]))
}

fn access_token(outcome: &Outcome) -> String {
    outcome.body["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {outcome:#?}"))
        .to_owned()
}

/// Negotiates until the handler answers 200 (its background refresh has a key), up to a
/// generous deadline that is a hang guard, not a timing assertion.
async fn negotiate_until_ready(app: &TestApp, user: &str) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let outcome = negotiate(app, user).await;
        if outcome.status == 200 {
            return outcome;
        }
        assert_eq!(outcome.status, 503, "{outcome:#?}");
        assert!(
            Instant::now() < deadline,
            "never got a key; stderr: {}",
            app.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_service_auth_unavailable(outcome: &Outcome) {
    assert_eq!(outcome.status, 503, "{outcome:#?}");
    assert_eq!(outcome.body["error"], "service_auth_unavailable");
    assert!(
        !outcome.body.to_string().contains("SignalR App Server"),
        "the role is for the operator's log, not the caller"
    );
}

#[tokio::test]
async fn keyless_negotiate_mints_a_token_with_kid_of_the_temporary_key_that_the_service_accepts() {
    let idp = spawn_idp(0, &[ROLE_APP_SERVER]).await;
    let service = spawn_service(&idp.tenant_issuer).await;
    let root = minting_app_root();
    let mut config = keyless_config(&root, &service, &idp.identity_endpoint);
    // Everything the libraries log too, so the secret check below covers them.
    config.set("RUST_LOG", "debug");
    let app = spawn_app(config).await;

    let outcome = negotiate_until_ready(&app, "alice").await;
    assert_eq!(
        outcome.body["url"],
        format!("{}/client/?hub=chat", service.base)
    );
    let token = access_token(&outcome);
    let (header, claims) = parts(&token);
    let kid = header["kid"].as_str().expect("a kid");
    assert!(kid.starts_with("t-"), "a temporary key's KeyId: {header}");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(claims["asrs.s.uid"], "alice");
    // dev-idp answered only with the right X-IDENTITY-HEADER, and the emulator gave a key
    // only for dev-idp's token with the App Server role: the service accepting the token proves
    // both requests were made correctly.
    assert!(
        service.accepts(&token).await,
        "the service accepts {header}"
    );

    let logs = format!("{}{}", app.stdout(), app.stderr());
    assert!(logs.contains("SignalR temporary key fetched"), "{logs}");
    assert!(
        !logs.contains("eyJ"),
        "no JWT (MI token or client token) in any log line"
    );
    assert!(
        !logs.contains(IDENTITY_HEADER),
        "no identity header in any log line"
    );
}

#[tokio::test]
async fn keyless_rotation_new_tokens_use_the_new_key_and_none_the_expired_one() {
    let idp = spawn_idp(0, &[ROLE_SERVICE_OWNER]).await;
    let service = spawn_service(&idp.tenant_issuer).await;
    let root = minting_app_root();
    let mut config = keyless_config(&root, &service, &idp.identity_endpoint);
    config.set("SIGNALR_KEY_REFRESH_SECONDS", "1");
    let app = spawn_app(config).await;

    let first = access_token(&negotiate_until_ready(&app, "alice").await);
    let old_kid = parts(&first).0["kid"].clone();
    assert!(service.accepts(&first).await);

    service.expire_keys(&idp).await;
    assert!(!service.accepts(&first).await, "the old key is refused now");

    // The handler picks up a new key in the background; poll until it does.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let token = access_token(&negotiate(&app, "alice").await);
        if parts(&token).0["kid"] != old_kid {
            assert!(service.accepts(&token).await, "the new key works");
            break;
        }
        assert!(Instant::now() < deadline, "the handler never rotated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // From then on, no token carries the refused key.
    for _ in 0..5 {
        let token = access_token(&negotiate(&app, "alice").await);
        assert_ne!(parts(&token).0["kid"], old_kid);
        assert!(service.accepts(&token).await);
    }
}

#[tokio::test]
async fn keyless_identity_endpoint_down_at_start_answers_503_then_recovers_when_it_is_up() {
    // A free port nobody listens on yet: the identity endpoint is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("an address")
        .port();
    let issuer = format!("http://localhost:{port}/{DEV_TENANT_ID}/");
    let service = spawn_service(&issuer).await;
    let root = minting_app_root();
    let endpoint = format!("http://localhost:{port}/msi/token");
    let app = spawn_app(keyless_config(&root, &service, &endpoint)).await;

    assert_service_auth_unavailable(&negotiate(&app, "alice").await);
    let stderr = app.wait_for_stderr("IDENTITY_ENDPOINT").await;
    assert!(
        stderr.contains("SignalR App Server"),
        "the role is named: {stderr}"
    );

    let _idp = spawn_idp(port, &[ROLE_APP_SERVER]).await;
    let token = access_token(&negotiate_until_ready(&app, "alice").await);
    assert!(service.accepts(&token).await);
}

#[tokio::test]
async fn keyless_refusal_by_the_key_endpoint_answers_503_and_names_the_role_once() {
    // 403: the identity has a role, but not one that allows keys. 401: the service does not
    // trust the identity's issuer at all.
    for (roles, trust_the_idp, status) in [
        (&[ROLE_REST_API_READER][..], true, "403"),
        (&[ROLE_APP_SERVER][..], false, "401"),
    ] {
        let idp = spawn_idp(0, roles).await;
        let issuer = if trust_the_idp {
            idp.tenant_issuer.clone()
        } else {
            "http://localhost:9/another-tenant/".to_owned()
        };
        let service = spawn_service(&issuer).await;
        let root = minting_app_root();
        let app = spawn_app(keyless_config(&root, &service, &idp.identity_endpoint)).await;

        let stderr = app
            .wait_for_stderr(&format!("answered {status} to GET /api/v1/auth/accessKey"))
            .await;
        assert!(stderr.contains("`SignalR App Server` role"), "{stderr}");
        for _ in 0..3 {
            assert_service_auth_unavailable(&negotiate(&app, "alice").await);
        }
        // The line is read from the handler's stderr pipe by another thread: wait until it has
        // arrived before counting.
        let stderr = app.wait_for_stderr("refusing SignalR tokens").await;
        assert_eq!(
            stderr.matches("refusing SignalR tokens").count(),
            1,
            "logged once per outage, not per request: {stderr}"
        );
    }
}

#[tokio::test]
async fn keyless_settings_without_the_identity_variables_stop_start_up_naming_them() {
    let root = minting_app_root();
    let config = managed_identity_connection_string_config(&root);
    let stderr = start_expecting_failure(&config);
    assert!(stderr.contains("IDENTITY_ENDPOINT"), "{stderr}");
    assert!(stderr.contains("system-assigned identity"), "{stderr}");
}

#[tokio::test]
async fn keyless_settings_with_a_connection_info_binding_stop_start_up_naming_negotiate() {
    // The repository's negotiate has a signalRConnectionInfo input.
    let mut config = AppConfig::hs256();
    config.unset("AzureSignalRConnectionString");
    config.set(
        "AzureSignalRConnectionString__serviceUri",
        "https://x.service.signalr.net",
    );
    config.set("IDENTITY_ENDPOINT", "http://localhost:9/msi/token");
    config.set("IDENTITY_HEADER", IDENTITY_HEADER);
    let stderr = start_expecting_failure(&config);
    assert!(
        stderr.contains("AzureSignalRConnectionString__serviceUri"),
        "{stderr}"
    );
    assert!(stderr.contains("negotiate/function.json"), "{stderr}");
    assert!(stderr.contains("SIGNALR_HUB_NAME"), "{stderr}");
}

#[tokio::test]
async fn connection_strings_are_read_from_customconnstr_entries_in_any_case() {
    let mut config = AppConfig::hs256();
    config.unset("AzureSignalRConnectionString");
    config.set(
        "CUSTOMCONNSTR_azuresignalrconnectionstring",
        CONNECTION_STRING,
    );
    let app = spawn_app(config).await;
    // The binding token is signed with ACCESS_KEY: it verifies only if that key was read.
    let outcome = app.negotiate(&hs256_token(&claims("alice"))).await;
    assert_eq!(outcome.status, 200, "{outcome:#?}");
}

#[tokio::test]
async fn connection_strings_entries_win_over_the_plain_setting() {
    let mut config = AppConfig::hs256();
    config.set(
        "AzureSignalRConnectionString",
        "Endpoint=http://localhost;Port=8888;AccessKey=INSECURE-TEST-WRONG-KEY-0123456789abcdefghijkl;Version=1.0;",
    );
    config.set(
        "ConnectionStrings__AzureSignalRConnectionString",
        CONNECTION_STRING,
    );
    let app = spawn_app(config).await;
    let outcome = app.negotiate(&hs256_token(&claims("alice"))).await;
    assert_eq!(
        outcome.status, 200,
        "the ConnectionStrings entry (right key) is used, not the plain setting: {outcome:#?}"
    );
}

/// The minting app root plus `sendToGroup` and the repository's policy, whose `team.*` rule
/// requires the sender to be a member (a REST read).
fn membership_app_root() -> tempfile::TempDir {
    let root = minting_app_root();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir(root.path().join("sendToGroup")).expect("mkdir");
    std::fs::copy(
        repo.join("sendToGroup/function.json"),
        root.path().join("sendToGroup/function.json"),
    )
    .expect("copy function.json");
    std::fs::copy(repo.join("policy.json"), root.path().join("policy.json")).expect("copy policy");
    root
}

#[tokio::test]
async fn keyless_membership_checks_call_the_rest_api_with_the_managed_identity_token() {
    // With a REST role the service answers the membership question (404: not a member, so
    // 403 to the caller); with only App Server it refuses the token (503, role logged).
    for (role, status, error) in [
        (ROLE_SERVICE_OWNER, 403, "forbidden"),
        (ROLE_APP_SERVER, 503, "service_auth_unavailable"),
    ] {
        let idp = spawn_idp(0, &[role]).await;
        let service = spawn_service(&idp.tenant_issuer).await;
        let root = membership_app_root();
        let app = spawn_app(keyless_config(&root, &service, &idp.identity_endpoint)).await;
        let ann = token_with("ann", serde_json::json!({"team": "red"}));
        let body = serde_json::json!({"group": "team.red.chat", "target": "t", "arguments": []});
        let outcome = app.call("sendToGroup", &ann, body).await;
        assert_eq!(outcome.status, status, "{role}: {outcome:#?}");
        assert_eq!(outcome.body["error"], error, "{role}");
        if status == 503 {
            let stderr = app.wait_for_stderr("SignalR REST API Reader").await;
            assert!(!stderr.contains("eyJ"), "{stderr}");
        }
    }
}

const WPS_HANDLER_RESOURCE: &str = "api://insecure-test-wps-event-handler";

/// A managed-identity token from `idp` for `resource`, as the Web PubSub service would get one.
async fn mi_token(idp: &Idp, resource: &str) -> String {
    let body: Value = reqwest::Client::new()
        .get(&idp.identity_endpoint)
        .query(&[("resource", resource), ("api-version", "2019-08-01")])
        .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
        .send()
        .await
        .expect("dev-idp answers")
        .json()
        .await
        .expect("JSON");
    body["access_token"].as_str().expect("a token").to_owned()
}

/// Web PubSub with no key: events are authenticated by the service's managed-identity token.
fn keyless_web_pubsub_config(idp: &Idp, identity: &str) -> AppConfig {
    let mut config = AppConfig::hs256();
    config.set(
        "WEBPUBSUB_CONNECTION_STRING",
        &format!("Endpoint=https://{WEBPUBSUB_HOST};AuthType=azure.msi;Version=1.0;"),
    );
    config.set("WEBPUBSUB_EVENT_HANDLER_ISSUER", &idp.tenant_issuer);
    config.set("WEBPUBSUB_EVENT_HANDLER_AUDIENCE", WPS_HANDLER_RESOURCE);
    config.set("WEBPUBSUB_EVENT_HANDLER_IDENTITY", identity);
    config
}

fn keyless_connect_event(authorization: Option<String>) -> WpsEvent {
    let app_token = hs256_token(&claims("alice"));
    let mut event = WpsEvent::connect(
        "conn-keyless-1",
        serde_json::json!({"query": {"app_token": [app_token]}}),
    );
    event.signature = None;
    event.authorization = authorization;
    event
}

#[tokio::test]
async fn keyless_web_pubsub_connect_accepts_only_the_configured_service_identitys_token() {
    let idp = spawn_idp(0, &[]).await;
    let service_identity = ManagedIdentityOptions::default().client_id;
    let app = spawn_app(keyless_web_pubsub_config(&idp, &service_identity)).await;
    let token = mi_token(&idp, WPS_HANDLER_RESOURCE).await;

    let accepted = app
        .connect_event(&keyless_connect_event(Some(format!("Bearer {token}"))))
        .await;
    assert_eq!(accepted.status, 200, "{accepted:#?}");
    assert_eq!(accepted.body["userId"], "alice");

    let other_audience = mi_token(&idp, "api://another-app").await;
    let mut signed_with_old_keys = keyless_connect_event(None);
    signed_with_old_keys.signature = WpsEvent::connect("conn-keyless-1", Value::Null).signature;
    for (event, case) in [
        (keyless_connect_event(None), "no token"),
        (
            keyless_connect_event(Some(format!("Bearer {other_audience}"))),
            "a token for another audience",
        ),
        (
            keyless_connect_event(Some(format!("Basic {token}"))),
            "not a bearer token",
        ),
        (signed_with_old_keys, "a ce-signature instead of the token"),
    ] {
        let refused = app.connect_event(&event).await;
        assert_eq!(refused.status, 401, "{case}: {refused:#?}");
    }

    // The same token, but the handler expects another identity.
    let strict = spawn_app(keyless_web_pubsub_config(
        &idp,
        "99999999-9999-4999-8999-999999999999",
    ))
    .await;
    let refused = strict
        .connect_event(&keyless_connect_event(Some(format!("Bearer {token}"))))
        .await;
    assert_eq!(refused.status, 401, "{refused:#?}");
    let logs = format!("{}{}", strict.stdout(), strict.stderr());
    assert!(!logs.contains(&token), "no token in any log line");
}

#[tokio::test]
async fn keyless_web_pubsub_without_the_event_handler_settings_stops_start_up() {
    let mut config = AppConfig::hs256();
    config.set(
        "WEBPUBSUB_CONNECTION_STRING",
        &format!("Endpoint=https://{WEBPUBSUB_HOST};AuthType=azure.msi;Version=1.0;"),
    );
    let stderr = start_expecting_failure(&config);
    assert!(
        stderr.contains("WEBPUBSUB_EVENT_HANDLER_TENANT_ID"),
        "{stderr}"
    );
}

// ---- The SignalR upstream in keyless mode: the service's managed-identity bearer token ----

const UPSTREAM_RESOURCE: &str = "api://insecure-test-signalr-upstream";

/// A dev-idp whose managed-identity tokens live `lifetime_seconds` (negative: already expired).
async fn spawn_idp_with_lifetime(lifetime_seconds: i64) -> Idp {
    start_idp(
        0,
        ManagedIdentityOptions {
            identity_header: Some(IDENTITY_HEADER.to_owned()),
            lifetime_seconds,
            ..ManagedIdentityOptions::default()
        },
    )
    .await
}

/// An app root with a minting negotiate and the repository's `upstream` function.
fn upstream_app_root() -> tempfile::TempDir {
    let root = minting_app_root();
    std::fs::create_dir(root.path().join("upstream")).expect("mkdir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/upstream/function.json"),
        root.path().join("upstream/function.json"),
    )
    .expect("copy upstream/function.json");
    std::fs::write(
        root.path().join("upstream-policy.json"),
        serde_json::json!({
            "rules": [{"operations": ["join"], "groups": ["room-*"]}],
            "invoke": [{"targets": ["joinGroup"]}]
        })
        .to_string(),
    )
    .expect("write policy");
    root
}

/// The keyless handler with `SIGNALR_UPSTREAM_AUTH=managedIdentity` trusting `idp`'s tenant
/// for `UPSTREAM_RESOURCE` from `identity`.
fn keyless_upstream_config(
    root: &tempfile::TempDir,
    service: &Service,
    idp: &Idp,
    identity: &str,
) -> AppConfig {
    let mut config = keyless_config(root, service, &idp.identity_endpoint);
    config.set("SIGNALR_UPSTREAM_AUTH", "managedIdentity");
    config.set("SIGNALR_UPSTREAM_ISSUER", &idp.tenant_issuer);
    config.set("SIGNALR_UPSTREAM_AUDIENCE", UPSTREAM_RESOURCE);
    config.set("SIGNALR_UPSTREAM_IDENTITY", identity);
    config.set(
        "POLICY_FILE",
        &root.path().join("upstream-policy.json").to_string_lossy(),
    );
    config
}

/// `alice` joins `room-1` over the upstream, with `authorization` instead of a signature.
fn keyless_join(authorization: Option<&str>) -> UpstreamCall {
    UpstreamCall::invocation(
        "conn-keyless-1",
        Some("alice"),
        Some("1"),
        "joinGroup",
        serde_json::json!(["room-1"]),
    )
    .with_header("X-ASRS-Signature", None)
    .with_header("Authorization", authorization)
}

#[tokio::test]
async fn keyless_upstream_accepts_the_service_identitys_token_and_refuses_every_other_with_401() {
    let idp = spawn_idp(0, &[ROLE_APP_SERVER]).await;
    let other_idp = spawn_idp(0, &[]).await;
    let expiring_idp = spawn_idp_with_lifetime(-3600).await;
    let service = spawn_service(&idp.tenant_issuer).await;
    let root = upstream_app_root();
    let service_identity = ManagedIdentityOptions::default().client_id;
    let app = spawn_app(keyless_upstream_config(
        &root,
        &service,
        &idp,
        &service_identity,
    ))
    .await;
    let token = mi_token(&idp, UPSTREAM_RESOURCE).await;

    let accepted = app
        .upstream(&keyless_join(Some(&format!("Bearer {token}"))))
        .await;
    assert_eq!(accepted.status, 200, "{accepted:#?}");
    let completion: Value = serde_json::from_str(
        accepted
            .body_text
            .strip_suffix('\u{1e}')
            .unwrap_or_else(|| panic!("a Completion frame: {accepted:#?}")),
    )
    .expect("JSON");
    assert_eq!(completion["invocationId"], "1", "{completion}");
    assert!(completion.get("error").is_none(), "{completion}");
    assert_eq!(accepted.signalr_items().len(), 1, "{accepted:#?}");

    let other_audience = mi_token(&idp, "api://another-app").await;
    let other_issuer = mi_token(&other_idp, UPSTREAM_RESOURCE).await;
    let expired = mi_token(&expiring_idp, UPSTREAM_RESOURCE).await;
    let signed = UpstreamCall::invocation(
        "conn-keyless-1",
        Some("alice"),
        Some("1"),
        "joinGroup",
        serde_json::json!(["room-1"]),
    );
    let cases = [
        (keyless_join(None), "no token"),
        (signed, "a signature with the test key instead of the token"),
        (
            keyless_join(Some(&format!("Bearer {other_audience}"))),
            "a token for another audience",
        ),
        (
            keyless_join(Some(&format!("Bearer {other_issuer}"))),
            "a token from another issuer",
        ),
        (
            keyless_join(Some(&format!("Bearer {expired}"))),
            "an expired token",
        ),
        (
            keyless_join(Some(&format!("Basic {token}"))),
            "not a bearer token",
        ),
        (keyless_join(Some("Bearer ")), "an empty bearer token"),
        (
            keyless_join(Some(&format!("Bearer {token}")))
                .with_header("X-ASRS-Connection-Id", None),
            "no connection id",
        ),
    ];
    for (call, case) in cases {
        let refused = app.upstream(&call).await;
        assert_eq!(refused.status, 401, "{case}: {refused:#?}");
        assert!(
            refused.body["error"].is_string() && refused.body["message"].is_string(),
            "{case}: {refused:#?}"
        );
        assert!(
            refused.signalr_items().is_empty(),
            "{case}: nothing emitted"
        );
    }
    // The same token, but the handler expects another identity.
    let strict = spawn_app(keyless_upstream_config(
        &root,
        &service,
        &idp,
        "99999999-9999-4999-8999-999999999999",
    ))
    .await;
    let refused = strict
        .upstream(&keyless_join(Some(&format!("Bearer {token}"))))
        .await;
    assert_eq!(refused.status, 401, "{refused:#?}");
    assert!(refused.signalr_items().is_empty());
    for app in [&app, &strict] {
        let logs = format!("{}{}", app.stdout(), app.stderr());
        assert!(!logs.contains(&token), "no token in any log line");
    }
}

#[tokio::test]
async fn keyless_upstream_without_managed_identity_settings_is_off() {
    let idp = spawn_idp(0, &[ROLE_APP_SERVER]).await;
    let service = spawn_service(&idp.tenant_issuer).await;
    let root = upstream_app_root();
    let app = spawn_app(keyless_config(&root, &service, &idp.identity_endpoint)).await;
    let token = mi_token(&idp, UPSTREAM_RESOURCE).await;
    let outcome = app
        .upstream(&keyless_join(Some(&format!("Bearer {token}"))))
        .await;
    assert_eq!(outcome.status, 404, "{outcome:#?}");
    assert!(outcome.signalr_items().is_empty());
}

#[test]
fn keyless_upstream_configuration_errors_name_the_setting() {
    let root = upstream_app_root();
    let base = || {
        let mut config = managed_identity_connection_string_config(&root);
        config.set("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token");
        config.set("IDENTITY_HEADER", IDENTITY_HEADER);
        config
    };
    let tenant = "11111111-1111-4111-8111-111111111111";
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[("SIGNALR_UPSTREAM_AUTH", "managedIdentity")],
            "SIGNALR_UPSTREAM_TENANT_ID",
        ),
        (
            &[
                ("SIGNALR_UPSTREAM_AUTH", "managedIdentity"),
                ("SIGNALR_UPSTREAM_TENANT_ID", tenant),
            ],
            "SIGNALR_UPSTREAM_AUDIENCE",
        ),
        (
            &[
                ("SIGNALR_UPSTREAM_AUTH", "managedIdentity"),
                ("SIGNALR_UPSTREAM_TENANT_ID", tenant),
                ("SIGNALR_UPSTREAM_AUDIENCE", UPSTREAM_RESOURCE),
            ],
            "SIGNALR_UPSTREAM_IDENTITY",
        ),
        (
            &[
                ("SIGNALR_UPSTREAM_AUTH", "managedIdentity"),
                ("SIGNALR_UPSTREAM_TENANT_ID", "https://evil.example/"),
            ],
            "SIGNALR_UPSTREAM_TENANT_ID",
        ),
        (
            &[
                ("SIGNALR_UPSTREAM_AUTH", "managedIdentity"),
                ("SIGNALR_UPSTREAM_TENANT_ID", tenant),
                ("SIGNALR_UPSTREAM_ISSUER", "http://localhost:9/x/"),
            ],
            "SIGNALR_UPSTREAM_ISSUER",
        ),
        (
            &[("SIGNALR_UPSTREAM_AUDIENCE", UPSTREAM_RESOURCE)],
            "SIGNALR_UPSTREAM_AUDIENCE",
        ),
        (
            &[("SIGNALR_UPSTREAM_AUTH", "signature")],
            "SIGNALR_UPSTREAM_AUTH",
        ),
    ];
    for (settings, named) in cases {
        let mut config = base();
        for (name, value) in settings {
            config.set(name, value);
        }
        let stderr = start_expecting_failure(&config);
        assert!(stderr.contains(named), "{settings:?} → {stderr}");
    }
}
