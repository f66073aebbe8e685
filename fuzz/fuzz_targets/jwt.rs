//! JWT verification with an HS256 verifier. The first byte picks the mode: even, the rest is the
//! token as a caller sends it (header, `crit`, algorithm and replay checks, then the signature);
//! odd, the rest is `header JSON \0 claims JSON`, which this target signs with the verifier's
//! secret so the claim checks behind the signature (issuer, audience, dates, user id) are reached.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use handler::fuzzing;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = match rest.iter().position(|byte| *byte == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(fuzzing::INSECURE_FUZZ_JWT_SECRET.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    };
    let _ = fuzzing::jwt(&token);
});
