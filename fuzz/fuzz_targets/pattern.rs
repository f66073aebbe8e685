//! Policy patterns: parsed (from the operator's policy file), filled with a claim value (from the
//! caller's credential) and matched against a name (from the caller). Input:
//! `pattern \0 claim value \0 subject`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let pattern = parts.next().unwrap_or_default();
    let claim = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let _ = handler::fuzzing::pattern(pattern, claim, subject);
});
