//! Criterion micro-benchmarks of negotiate's pure parts: envelope parsing, HS256 app-token
//! verification, and the binding token's verify-and-re-issue. They show a regression without a
//! load generator (`cargo bench --features bench --bench pure`); they assert nothing about time.

use criterion::{Criterion, criterion_group, criterion_main};
use handler::bench_api::{Negotiate, parse_negotiate};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use std::hint::black_box;

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

    c.bench_function("envelope parse (negotiate)", |b| {
        b.iter(|| parse_negotiate(black_box(&body)))
    });
    c.bench_function("JWT verify (HS256)", |b| {
        b.iter(|| negotiate.verify(black_box(&app_token)))
    });
    c.bench_function("verify + re-issue (binding token)", |b| {
        b.iter(|| negotiate.reissue(black_box(&app_token), black_box(&binding_token)))
    });
}

criterion_group!(benches, pure);
criterion_main!(benches);
