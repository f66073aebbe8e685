//! Criterion micro-benchmarks of negotiate's pure parts: envelope parsing, HS256 app-token
//! verification, the binding token's verify-and-re-issue, the RSA-2048 check an RS256 app
//! token costs (jsonwebtoken's own `decode`, which the handler's JWKS path calls with a cached
//! key), and the whole invocation in-process (the body `scripts/bench-negotiate` sends, through
//! the handler's own state and `invoke`, to the envelope's bytes: everything but HTTP). They
//! show a regression without a load generator (`cargo bench --features bench --bench pure`);
//! they assert nothing about time.

use criterion::{Criterion, criterion_group, criterion_main};
use handler::bench_api::{Invoker, Negotiate, install_signatures, parse_negotiate};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use std::hint::black_box;

/// The allocator the `handler` binary uses (src/main.rs), so the figures are the shipped code's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ISSUER: &str = "https://issuer.test.example/";
const AUDIENCE: &str = "api://signalr-test-app";
const SECRET: &str = "insecure-test-app-secret-0123456789-abcdefghij";
const ACCESS_KEY: &str = "INSECURE-TEST-ACCESS-KEY-ABCDEFGHIJKLMNOPQRSTUV0123456789";

fn sign(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

fn pure(c: &mut Criterion) {
    assert!(
        install_signatures(),
        "ring checks RSA and ECDSA, as in the handler"
    );
    let now = jsonwebtoken::get_current_timestamp();
    let app_token = sign(
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 7200}),
        SECRET,
    );
    let binding_token = sign(
        &json!({"aud": "http://localhost:8888/client/?hub=chat", "iat": now, "nbf": now, "exp": now + 3600}),
        ACCESS_KEY,
    );
    let connection_info =
        json!({"url": "http://localhost:8888/client/?hub=chat", "accessToken": binding_token});
    let body = json!({
        "Data": {
            "req": {
                "Url": "http://localhost:7071/api/negotiate", "Method": "POST", "Query": {},
                "Headers": {"Authorization": [format!("Bearer {app_token}")], "Content-Type": ["application/json"]},
                "Params": {}, "Identities": []
            },
            // The host's double encoding of a binding value.
            "connectionInfo": serde_json::Value::String(connection_info.to_string()).to_string()
        },
        "Metadata": {"Query": {}, "Headers": {"Accept": "*/*"}, "sys": {"MethodName": "negotiate"}}
    })
    .to_string()
    .into_bytes();
    let negotiate = Negotiate::hs256(
        ISSUER,
        AUDIENCE,
        SECRET,
        &format!("Endpoint=http://localhost;Port=8888;AccessKey={ACCESS_KEY};Version=1.0;"),
    )
    .expect("settings");
    assert!(parse_negotiate(&body) > 0, "the envelope parses");
    assert!(negotiate.verify(&app_token), "the app token verifies");
    assert!(
        negotiate.reissue(&app_token, &binding_token).is_some(),
        "the binding token re-issues"
    );

    let rs256_token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 7200}),
        &EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/insecure-test-rsa-a.pem"))
            .expect("RSA key"),
    )
    .expect("signs");
    let rsa_public = DecodingKey::from_rsa_pem(include_bytes!(
        "../tests/fixtures/insecure-test-rsa-a.pub.pem"
    ))
    .expect("RSA public key");
    let mut rs256 = Validation::new(Algorithm::RS256);
    rs256.set_issuer(&[ISSUER]);
    rs256.set_audience(&[AUDIENCE]);
    assert!(
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            &rs256_token,
            &rsa_public,
            &rs256
        )
        .is_ok(),
        "the RS256 token verifies"
    );

    // The wrk scenario's body: the fixture with an app token carrying the kit's claims and the
    // binding token the extension would mint (tools/negotiate-bench, `bodies`).
    let kit_app_token = sign(
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user-1", "iat": now, "nbf": now - 5,
                "exp": now + 7200, "name": "User bench-user-1", "email": "bench-user-1@contoso.example"}),
        SECRET,
    );
    let kit_binding_token = jsonwebtoken::encode(
        &Header {
            kid: Some("-1419827734".into()),
            ..Header::default()
        },
        &json!({"asrs.s.uid": "spoofed-by-binding-expression", "name": "unverified claim from idToken",
                "nbf": now, "exp": now + 7200, "iat": now, "aud": "http://localhost/client/?hub=chat"}),
        &EncodingKey::from_secret(ACCESS_KEY.as_bytes()),
    )
    .expect("signs");
    let kit_body = include_str!("../tests/fixtures/negotiate-binding.json")
        .replace("{{APP_TOKEN}}", &kit_app_token)
        .replace("{{BINDING_TOKEN}}", &kit_binding_token);
    let kit_body = serde_json::from_str::<serde_json::Value>(&kit_body)
        .expect("the fixture is JSON")
        .to_string()
        .into_bytes();
    let invoker = Invoker::new(
        &[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "0"),
            ("AUTH_ISSUER", ISSUER),
            ("AUTH_AUDIENCE", AUDIENCE),
            ("AUTH_HS256_SECRET", SECRET),
            (
                "AzureSignalRConnectionString",
                &format!("Endpoint=http://localhost;Port=8888;AccessKey={ACCESS_KEY};Version=1.0;"),
            ),
        ],
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    )
    .expect("the handler's state");
    let answer = invoker.invoke("negotiate", &kit_body).expect("never waits");
    assert!(
        String::from_utf8_lossy(&answer).contains(r#""statusCode":200"#),
        "negotiate answers 200: {}",
        String::from_utf8_lossy(&answer)
    );

    c.bench_function("invoke negotiate (whole, in-process, HS256)", |b| {
        b.iter(|| invoker.invoke("negotiate", black_box(&kit_body)))
    });
    c.bench_function("envelope parse (negotiate)", |b| {
        b.iter(|| parse_negotiate(black_box(&body)))
    });
    c.bench_function("JWT verify (HS256)", |b| {
        b.iter(|| negotiate.verify(black_box(&app_token)))
    });
    c.bench_function("verify + re-issue (binding token)", |b| {
        b.iter(|| negotiate.reissue(black_box(&app_token), black_box(&binding_token)))
    });
    c.bench_function("JWT verify (RS256, RSA-2048)", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                black_box(&rs256_token),
                &rsa_public,
                &rs256,
            )
        })
    });

    // The signature check alone, by the backend the handler uses (ring) and by jsonwebtoken's
    // RustCrypto backend, which it used before (BENCHMARKS.md).
    let ec = EncodingKey::from_ec_pem(include_bytes!(
        "../tests/fixtures/insecure-test-ec-p256.pem"
    ))
    .expect("EC key");
    let ec_public = DecodingKey::from_jwk(
        &jsonwebtoken::jwk::Jwk::from_encoding_key(&ec, Algorithm::ES256).expect("EC JWK"),
    )
    .expect("EC public key");
    let rsa =
        EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/insecure-test-rsa-a.pem"))
            .expect("RSA key");
    let message = rs256_token.rsplit_once('.').expect("a token").0.as_bytes();
    for (name, algorithm, signing, public) in [
        ("RS256, RSA-2048", Algorithm::RS256, &rsa, &rsa_public),
        ("ES256, P-256", Algorithm::ES256, &ec, &ec_public),
    ] {
        let signature = jsonwebtoken::crypto::sign(message, signing, algorithm).expect("signs");
        for (backend, provider) in [
            ("ring, the handler's", None),
            (
                "RustCrypto",
                Some(&jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER),
            ),
        ] {
            let check = || match provider {
                None => jsonwebtoken::crypto::verify(&signature, message, public, algorithm),
                Some(provider) => {
                    let verifier = (provider.verifier_factory)(&algorithm, public)?;
                    let bytes = base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        &signature,
                    )
                    .expect("base64url");
                    Ok(verifier.verify(message, &bytes).is_ok())
                }
            };
            assert!(check().expect("verifies"), "{name} by {backend}");
            c.bench_function(&format!("signature check ({name}, {backend})"), |b| {
                b.iter(check)
            });
        }
    }
}

criterion_group!(benches, pure);
criterion_main!(benches);
