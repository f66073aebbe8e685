//! Access tokens shaped exactly like those of real identity providers (docs/providers.md),
//! verified against a local JWKS server: the settings each recipe documents accept them, and the
//! pairings people get wrong are refused with a log line naming the check that failed.
//!
//! The claim sets copy the providers' documented access-token claims (Microsoft identity
//! platform "Access token claims reference" for v1.0 and v2.0, Auth0 "Access Tokens", Keycloak's
//! default access token), with made-up tenant ids, client ids and key ids. What differs between
//! the forms is what breaks deployments: Entra v1 has `iss = https://sts.windows.net/<tenant>/`
//! and `aud = api://<client-id>`, v2 has `iss = …/<tenant>/v2.0` and `aud = <client-id>`; Auth0's
//! issuer ends with `/` and its `aud` is an array when `openid` was requested; Keycloak's `aud`
//! is `account` unless an audience mapper adds the API's client.

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};

use crate::helpers::*;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const API_CLIENT_ID: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const SPA_CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const ENTRA_V1_ISSUER: &str = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/";
const ENTRA_V2_ISSUER: &str =
    "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
const ENTRA_API_URI: &str = "api://6e74172b-be56-4843-9ff4-e66a39bb12e3";
/// Entra key ids are the base64url SHA-1 thumbprint of the signing certificate (= `x5t`).
const ENTRA_KID: &str = "nOo3ZDrODXEK1jKWhXslHR_KXEg";
const USER_OID: &str = "00000000-0000-0000-66f3-3332eca7ea81";

const AUTH0_ISSUER: &str = "https://chat-example.eu.auth0.com/";
const AUTH0_API: &str = "https://chat.example.com/api";
const AUTH0_KID: &str = "Xk2vD0mV8f1nqL0YH3aTz";
const AUTH0_SUB: &str = "auth0|64f1c2d3e4b5a6978899aabb";

const KEYCLOAK_ISSUER: &str = "https://sso.example.com/realms/chat";
const KEYCLOAK_KID: &str = "3nAeN8lWq0cUu3dXbDjK6VwX5zI1YpQr7oTgHsMfE2k";
const KEYCLOAK_SUB: &str = "f3c1a9d2-7b4e-4c8a-9e21-5d6f7a8b9c0d";

/// The provider's key set: one RSA key under the provider's `kid`, as its JWKS publishes it.
fn key_set(kid: &str) -> Value {
    json!({"keys": [TestKeys::jwk(&TestKeys::rsa_a(), Algorithm::RS256, kid)]})
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("claims are an object").clone()
}

/// An Entra ID v1.0 access token (the default of an app registration whose manifest has
/// `requestedAccessTokenVersion` null or 1), requested by the SPA for the API's scope.
fn entra_v1_claims() -> Map<String, Value> {
    let now = now();
    object(json!({
        "aud": ENTRA_API_URI,
        "iss": ENTRA_V1_ISSUER,
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "acr": "1",
        "aio": "AVQAq/8TAAAA",
        "amr": ["pwd", "mfa"],
        "appid": SPA_CLIENT_ID,
        "appidacr": "0",
        "family_name": "Example",
        "given_name": "Alice",
        "ipaddr": "203.0.113.7",
        "name": "Alice Example",
        "oid": USER_OID,
        "rh": "0.AXEAv4j5cvGGr0GRqy180BHbRw.",
        "scp": "Chat.ReadWrite",
        "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
        "tid": TENANT,
        "unique_name": "alice@contoso.example",
        "upn": "alice@contoso.example",
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "1.0",
    }))
}

/// The same user's Entra ID v2.0 access token (`requestedAccessTokenVersion: 2`).
fn entra_v2_claims() -> Map<String, Value> {
    let now = now();
    object(json!({
        "aud": API_CLIENT_ID,
        "iss": ENTRA_V2_ISSUER,
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "aio": "AWQAm/8TAAAA",
        "azp": SPA_CLIENT_ID,
        "azpacr": "0",
        "name": "Alice Example",
        "oid": USER_OID,
        "preferred_username": "alice@contoso.example",
        "rh": "0.AXEAv4j5cvGGr0GRqy180BHbRw.",
        "scp": "Chat.ReadWrite",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": TENANT,
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
    }))
}

/// An Auth0 access token for the API identifier, requested with `openid profile email`: the
/// `aud` array then also names the tenant's `/userinfo`. Auth0 writes no `nbf`.
fn auth0_claims() -> Map<String, Value> {
    let now = now();
    object(json!({
        "iss": AUTH0_ISSUER,
        "sub": AUTH0_SUB,
        "aud": [AUTH0_API, "https://chat-example.eu.auth0.com/userinfo"],
        "iat": now - 60, "exp": now + 86_400,
        "scope": "openid profile email",
        "azp": "kR4n0mSpaCl1entIdXyZ0123456789ab",
    }))
}

/// A Keycloak access token from realm `chat`, with an audience mapper adding `chat-api`.
fn keycloak_claims(audience: Value) -> Map<String, Value> {
    let now = now();
    object(json!({
        "exp": now + 300, "iat": now - 5,
        "jti": "onrtac:5b1c4c7e-2f0a-4c47-9d61-7d5b1a0f3e21",
        "iss": KEYCLOAK_ISSUER,
        "aud": audience,
        "sub": KEYCLOAK_SUB,
        "typ": "Bearer",
        "azp": "chat-spa",
        "sid": "0c7e3f5a-1b2d-4e6f-8a9b-0c1d2e3f4a5b",
        "acr": "1",
        "allowed-origins": ["http://localhost:5173"],
        "realm_access": {"roles": ["default-roles-chat", "offline_access", "uma_authorization"]},
        "scope": "openid profile email",
        "email_verified": true,
        "name": "Alice Example",
        "preferred_username": "alice",
        "email": "alice@contoso.example",
    }))
}

/// Entra's header: RS256 with `kid` and the same thumbprint as `x5t`.
fn entra_token(claims: &Map<String, Value>) -> String {
    let mut header = header_with_kid(Algorithm::RS256, ENTRA_KID);
    header.typ = Some("JWT".into());
    header.x5t = Some(ENTRA_KID.into());
    sign(header, claims, &TestKeys::rsa_a())
}

fn rs256_token(kid: &str, claims: &Map<String, Value>) -> String {
    let mut header = header_with_kid(Algorithm::RS256, kid);
    header.typ = Some("JWT".into());
    sign(header, claims, &TestKeys::rsa_a())
}

/// The Entra ID v1.0 recipe of docs/providers.md.
const ENTRA_V1_RECIPE: &[(&str, &str)] = &[
    ("AUTH_ISSUER", ENTRA_V1_ISSUER),
    ("AUTH_AUDIENCE", ENTRA_API_URI),
    ("AUTH_USER_ID_CLAIM", "oid"),
];

/// The Entra ID v2.0 recipe of docs/providers.md.
const ENTRA_V2_RECIPE: &[(&str, &str)] = &[
    ("AUTH_ISSUER", ENTRA_V2_ISSUER),
    ("AUTH_AUDIENCE", API_CLIENT_ID),
    ("AUTH_USER_ID_CLAIM", "oid"),
];

/// The Keycloak recipe of docs/providers.md, its issuer and audience (an audience mapper adds
/// `chat-api`).
const KEYCLOAK_RECIPE: &[(&str, &str)] = &[
    ("AUTH_ISSUER", KEYCLOAK_ISSUER),
    ("AUTH_AUDIENCE", "chat-api"),
];

/// The handler configured as a recipe of docs/providers.md says, with keys from `idp`.
fn recipe(idp: &IdentityProvider, settings: &[(&str, &str)]) -> AppConfig {
    let mut config = AppConfig::jwks(&idp.jwks_url(), "RS256");
    for (name, value) in settings {
        config.set(name, value);
    }
    config
}

/// A provider publishing one key under `kid`, and the handler configured with `settings`
/// against it. Keep the provider alive as long as the app.
async fn provider_and_app(kid: &str, settings: &[(&str, &str)]) -> (IdentityProvider, TestApp) {
    let idp = IdentityProvider::start(key_set(kid)).await;
    let app = spawn_app(recipe(&idp, settings)).await;
    (idp, app)
}

fn issued_user(outcome: &Outcome) -> String {
    assert_eq!(outcome.status, 200, "{outcome:#?}");
    let (_, service_claims) =
        decode_service_token(outcome.body["accessToken"].as_str().expect("token"));
    service_claims["asrs.s.uid"]
        .as_str()
        .expect("user id")
        .to_owned()
}

#[tokio::test]
async fn entra_v2_tokens_are_accepted_with_the_v2_recipe_and_v1_tokens_are_refused_by_issuer() {
    let (_idp, app) = provider_and_app(ENTRA_KID, ENTRA_V2_RECIPE).await;
    let outcome = app.negotiate(&entra_token(&entra_v2_claims())).await;
    assert_eq!(issued_user(&outcome), USER_OID);

    app.negotiate(&entra_token(&entra_v1_claims()))
        .await
        .assert_unauthorized(&format!(
            "issuer {ENTRA_V1_ISSUER:?} is not the configured {ENTRA_V2_ISSUER:?}"
        ));
}

#[tokio::test]
async fn entra_v1_tokens_are_accepted_with_the_v1_recipe_and_v2_tokens_are_refused_by_issuer() {
    let (_idp, app) = provider_and_app(ENTRA_KID, ENTRA_V1_RECIPE).await;
    let outcome = app.negotiate(&entra_token(&entra_v1_claims())).await;
    assert_eq!(issued_user(&outcome), USER_OID);

    app.negotiate(&entra_token(&entra_v2_claims()))
        .await
        .assert_unauthorized(&format!(
            "issuer {ENTRA_V2_ISSUER:?} is not the configured {ENTRA_V1_ISSUER:?}"
        ));
}

#[tokio::test]
async fn the_old_entra_example_pairing_the_v2_issuer_with_an_api_uri_refuses_by_audience() {
    // docs/deploy.md used to pair the v2.0 issuer with `api://<client-id>`: a v2 token's `aud`
    // is the bare client id, so every caller got 401 with only `InvalidAudience` in the log.
    let (_idp, app) = provider_and_app(
        ENTRA_KID,
        &[
            ("AUTH_ISSUER", ENTRA_V2_ISSUER),
            ("AUTH_AUDIENCE", ENTRA_API_URI),
            ("AUTH_USER_ID_CLAIM", "oid"),
        ],
    )
    .await;
    app.negotiate(&entra_token(&entra_v2_claims()))
        .await
        .assert_unauthorized(&format!(
            "audience {API_CLIENT_ID:?} not among [{ENTRA_API_URI:?}] (AUTH_AUDIENCE)"
        ));
}

#[tokio::test]
async fn listing_both_entra_forms_accepts_v1_and_v2_tokens_of_the_same_app() {
    let (_idp, app) = provider_and_app(
        ENTRA_KID,
        &[
            (
                "AUTH_ISSUER",
                &format!("{ENTRA_V1_ISSUER},{ENTRA_V2_ISSUER}"),
            ),
            (
                "AUTH_AUDIENCE",
                &format!("{ENTRA_API_URI}, {API_CLIENT_ID}"),
            ),
            ("AUTH_USER_ID_CLAIM", "oid"),
        ],
    )
    .await;
    for (version, claims) in [("v1", entra_v1_claims()), ("v2", entra_v2_claims())] {
        let outcome = app.negotiate(&entra_token(&claims)).await;
        assert_eq!(issued_user(&outcome), USER_OID, "{version}");
    }
    // Another tenant's token is still refused: its issuer is in neither form.
    let mut foreign = entra_v2_claims();
    foreign.insert(
        "iss".into(),
        json!("https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/v2.0"),
    );
    app.negotiate(&entra_token(&foreign))
        .await
        .assert_unauthorized(&format!(
            "is not the configured {ENTRA_V1_ISSUER:?}, {ENTRA_V2_ISSUER:?}"
        ));
}

#[tokio::test]
async fn a_token_signed_by_another_tenants_key_names_the_unknown_key_id_and_the_known_ones() {
    let (_idp, app) = provider_and_app(ENTRA_KID, ENTRA_V2_RECIPE).await;
    app.negotiate(&rs256_token("k1-other-tenant", &entra_v2_claims()))
        .await
        .assert_unauthorized(&format!(
            "unknown key id \"k1-other-tenant\" (the JWKS has {ENTRA_KID:?})"
        ));
}

#[tokio::test]
async fn auth0_access_tokens_are_accepted_with_the_trailing_slash_issuer_and_the_api_identifier() {
    let (_idp, app) = provider_and_app(
        AUTH0_KID,
        &[("AUTH_ISSUER", AUTH0_ISSUER), ("AUTH_AUDIENCE", AUTH0_API)],
    )
    .await;
    let outcome = app
        .negotiate(&rs256_token(AUTH0_KID, &auth0_claims()))
        .await;
    assert_eq!(issued_user(&outcome), AUTH0_SUB);

    // An ID token (or an access token requested without `audience`) is for the SPA's client id.
    let mut id_token = auth0_claims();
    id_token.insert("aud".into(), json!("kR4n0mSpaCl1entIdXyZ0123456789ab"));
    app.negotiate(&rs256_token(AUTH0_KID, &id_token))
        .await
        .assert_unauthorized(&format!(
            "audience \"kR4n0mSpaCl1entIdXyZ0123456789ab\" not among [{AUTH0_API:?}]"
        ));
}

#[tokio::test]
async fn auth0_without_the_issuers_trailing_slash_refuses_by_issuer() {
    let (_idp, app) = provider_and_app(
        AUTH0_KID,
        &[
            ("AUTH_ISSUER", "https://chat-example.eu.auth0.com"),
            ("AUTH_AUDIENCE", AUTH0_API),
        ],
    )
    .await;
    app.negotiate(&rs256_token(AUTH0_KID, &auth0_claims()))
        .await
        .assert_unauthorized(&format!(
            "issuer {AUTH0_ISSUER:?} is not the configured \"https://chat-example.eu.auth0.com\""
        ));
}

#[tokio::test]
async fn keycloak_tokens_are_accepted_with_an_audience_mapper_and_refused_with_the_default_account_audience()
 {
    let (_idp, app) = provider_and_app(KEYCLOAK_KID, KEYCLOAK_RECIPE).await;
    let mapped = keycloak_claims(json!(["chat-api", "account"]));
    let outcome = app.negotiate(&rs256_token(KEYCLOAK_KID, &mapped)).await;
    assert_eq!(issued_user(&outcome), KEYCLOAK_SUB);

    let unmapped = keycloak_claims(json!("account"));
    app.negotiate(&rs256_token(KEYCLOAK_KID, &unmapped))
        .await
        .assert_unauthorized("audience \"account\" not among [\"chat-api\"] (AUTH_AUDIENCE)");
}

#[tokio::test]
async fn an_expired_provider_token_names_how_long_ago_and_the_skew() {
    let (_idp, app) = provider_and_app(KEYCLOAK_KID, KEYCLOAK_RECIPE).await;
    let mut expired = keycloak_claims(json!("chat-api"));
    expired.insert("exp".into(), json!(now() - 93));
    let outcome = app.negotiate(&rs256_token(KEYCLOAK_KID, &expired)).await;
    outcome.assert_unauthorized("s ago (skew 60 s)");
    // The handler reads the clock after the test did, so it counts at least 93 seconds.
    let logs = outcome.logs_text();
    let seconds: u64 = logs
        .split("token rejected: expired ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no `expired N s ago` in {logs:?}"));
    assert!(seconds >= 93, "{logs}");
}

#[tokio::test]
async fn no_refusal_log_line_contains_the_token_or_its_signature() {
    let (_idp, app) = provider_and_app(
        ENTRA_KID,
        &[
            ("AUTH_ISSUER", ENTRA_V2_ISSUER),
            ("AUTH_AUDIENCE", ENTRA_API_URI),
        ],
    )
    .await;
    let token = entra_token(&entra_v2_claims());
    let outcome = app.negotiate(&token).await;
    assert_eq!(outcome.status, 401);
    let signature = segment(&token, 2);
    let payload = segment(&token, 1);
    for text in [outcome.logs_text(), app.stderr()] {
        assert!(!text.contains(signature), "{text}");
        assert!(!text.contains(payload), "{text}");
    }
}
