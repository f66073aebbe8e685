//! Start-up refuses to run when jsonwebtoken already chose its own signature backend: then RSA,
//! ECDSA and EdDSA would be checked by RustCrypto instead of ring, which accepts RSA keys ring
//! refuses (src/identity/signatures.rs). Its own test binary, because the choice is made once
//! per process.

use std::path::Path;

#[test]
fn start_up_refuses_to_run_after_jsonwebtoken_chose_its_default_backend() {
    let key = jsonwebtoken::DecodingKey::from_secret(b"insecure-test-secret-0123456789");
    // Any check makes jsonwebtoken settle on its default provider for the process.
    let checked = jsonwebtoken::crypto::verify("AA", b"x", &key, jsonwebtoken::Algorithm::HS256);
    assert!(matches!(checked, Ok(false)));

    let variables = [
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "0"),
        ("AUTH_ISSUER", "https://issuer.test.example/"),
        ("AUTH_AUDIENCE", "api://signalr-test-app"),
        (
            "AUTH_HS256_SECRET",
            "insecure-test-app-secret-0123456789-abcdefghij",
        ),
        (
            "AzureSignalRConnectionString",
            "Endpoint=http://localhost;Port=8888;AccessKey=INSECURE-TEST-ACCESS-KEY-ABCDEFGHIJKLMNOPQRSTUV0123456789;Version=1.0;",
        ),
    ];
    let lookup = |name: &str| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    };
    let settings = handler::config::Settings::from_lookup(
        &lookup,
        Some(Path::new(env!("CARGO_MANIFEST_DIR"))),
    )
    .expect("valid settings");
    let error = match handler::startup::Application::build(settings) {
        Ok(_) => panic!("the handler started with jsonwebtoken's default backend"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("signature backend"), "{error}");
}
