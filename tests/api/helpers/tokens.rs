//! Tokens and credentials the tests present: app JWTs, binding and service tokens, signing keys,
//! visitor tokens, App Service principals, and generated certificates.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::*;

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Standard claims for the test issuer.
pub fn claims(user: &str) -> Map<String, Value> {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "name": format!("User {user}"),
        "email": format!("{user}@contoso.example"),
    })
    .as_object()
    .expect("object")
    .clone()
}

pub fn hs256_token(claims: &Map<String, Value>) -> String {
    sign(
        Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
}

pub fn sign(header: Header, claims: &Map<String, Value>, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("signs")
}

/// A token from raw header and payload JSON, signed with HS256 over `secret` (or unsigned).
pub fn raw_token(header: &Value, payload: &Value, secret: Option<&[u8]>) -> String {
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signature = match secret {
        Some(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
            mac.update(format!("{header}.{payload}").as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{header}.{payload}.{signature}")
}

/// A binding token shaped like the one the extension mints (docs/protocol/functions-host.md §6).
pub fn binding_token(issued_at: u64, expires_at: u64) -> String {
    binding_token_with_key(issued_at, expires_at, ACCESS_KEY)
}

pub fn binding_token_with_key(issued_at: u64, expires_at: u64, key: &str) -> String {
    raw_token(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "-1419827734"}),
        &json!({
            "asrs.s.uid": "spoofed-by-binding-expression",
            "name": "unverified claim from idToken",
            "nbf": issued_at, "exp": expires_at, "iat": issued_at,
            "aud": "http://localhost/client/?hub=chat"
        }),
        Some(key.as_bytes()),
    )
}

/// Decodes a service token, checking its HS256 signature over the AccessKey.
pub fn decode_service_token(token: &str) -> (Value, Map<String, Value>) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "three segments");
    let mut mac = Hmac::<Sha256>::new_from_slice(ACCESS_KEY.as_bytes()).expect("any key length");
    mac.update(format!("{}.{}", segments[0], segments[1]).as_bytes());
    mac.verify_slice(
        &URL_SAFE_NO_PAD
            .decode(segments[2])
            .expect("base64url signature"),
    )
    .expect("signed with the AccessKey");
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[0]).expect("b64")).expect("json");
    let payload =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[1]).expect("b64")).expect("json");
    (header, payload)
}

/// The claims of a service token if its HS256 signature over the AccessKey is valid.
pub fn checked_service_claims(token: &str) -> Option<Map<String, Value>> {
    let segments: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = segments.as_slice() else {
        return None;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(ACCESS_KEY.as_bytes()).ok()?;
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

pub fn segment(token: &str, index: usize) -> &str {
    token.split('.').nth(index).expect("segment")
}

/// Test signing keys (insecure, generated for these tests).
pub struct TestKeys;

impl TestKeys {
    pub fn rsa_a() -> EncodingKey {
        EncodingKey::from_rsa_pem(fixture_text("insecure-test-rsa-a.pem").as_bytes())
            .expect("rsa pem")
    }
    pub fn rsa_b() -> EncodingKey {
        EncodingKey::from_rsa_pem(fixture_text("insecure-test-rsa-b.pem").as_bytes())
            .expect("rsa pem")
    }
    pub fn ec() -> EncodingKey {
        EncodingKey::from_ec_pem(fixture_text("insecure-test-ec-p256.pem").as_bytes())
            .expect("ec pem")
    }
    pub fn ed25519() -> EncodingKey {
        EncodingKey::from_ed_pem(fixture_text("insecure-test-ed25519.pem").as_bytes())
            .expect("ed pem")
    }

    /// The public JWK of `key` for `alg`, with `kid`.
    pub fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
        let mut jwk =
            serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(key, alg).expect("jwk"))
                .expect("json");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// The Ed25519 public JWK (jsonwebtoken cannot derive it): x = the last 32 bytes of the SPKI.
    pub fn ed25519_jwk(kid: &str) -> Value {
        let pem = fixture_text("insecure-test-ed25519.pub.pem");
        let base64: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(base64)
            .expect("der");
        let x = URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
    }
}

pub fn header_with_kid(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    header
}

/// A user token with extra claims.
pub fn token_with(user: &str, extra: Value) -> String {
    let mut claims = claims(user);
    if let Value::Object(extra) = extra {
        claims.extend(extra);
    }
    hs256_token(&claims)
}

pub const VISITOR_SECRET: &str = "insecure-test-visitor-secret-0123456789-abcdef";
pub const VISITOR_ISSUER: &str = "cdp.insecure-test.example";
pub const VISITOR_AUDIENCE: &str = "signalr-anonymous-visitor";
pub const NAME_ID_CLAIM: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
pub const ROLE_CLAIM: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

/// Base64 of a principal, as App Service writes `X-MS-CLIENT-PRINCIPAL`.
pub fn principal_header(principal: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(principal.to_string())
}

/// An App Service principal for `user_id` with `roles`.
pub fn app_service_principal(user_id: &str, roles: &[&str]) -> Value {
    let mut claims = vec![
        json!({"typ": NAME_ID_CLAIM, "val": user_id}),
        json!({"typ": "name", "val": format!("User {user_id}")}),
    ];
    claims.extend(
        roles
            .iter()
            .map(|role| json!({"typ": ROLE_CLAIM, "val": role})),
    );
    json!({"auth_typ": "aad", "claims": claims,
           "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
           "role_typ": ROLE_CLAIM})
}

/// A visitor token as the CDP would sign it.
pub fn visitor_token(visitor_id: &str, secret: &str, issued_at: u64, expires_at: u64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": VISITOR_ISSUER, "aud": VISITOR_AUDIENCE, "sub": visitor_id,
                "iat": issued_at, "exp": expires_at}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

/// A self-signed certificate generated for one test (never checked in).
pub struct TestCertificate {
    pub der_base64: String,
    pub pem: String,
    pub thumbprint: String,
}

pub fn test_certificate(common_name: &str, not_before: i64, not_after: i64) -> TestCertificate {
    use sha1::Digest;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).expect("time");
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("time");
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = params.self_signed(&key).expect("signs");
    let der = certificate.der().to_vec();
    TestCertificate {
        der_base64: base64::engine::general_purpose::STANDARD.encode(&der),
        pem: certificate.pem(),
        thumbprint: sha1::Sha1::digest(&der)
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect(),
    }
}

pub fn unix_now() -> i64 {
    i64::try_from(now()).expect("fits")
}
