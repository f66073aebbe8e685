//! `X-ARR-ClientCert` (base64 DER) and a Web PubSub reported certificate (thumbprint, PEM), with
//! `handler::fuzzing::FUZZ_CERT_THUMBPRINT` (the seed certificate) on the allow-list so accepted paths are reachable. Input:
//! `header \0 thumbprint \0 PEM`.
#![no_main]

use handler::fuzzing;
use libfuzzer_sys::fuzz_target;

/// A fixed "now" within the seed certificate's dates (2027-01-15).
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let header = parts.next().unwrap_or_default();
    let reported = parts.next().unwrap_or_default();
    let pem = parts.next().unwrap_or_default();
    let _ = fuzzing::client_cert(header, reported, pem, NOW);
});
