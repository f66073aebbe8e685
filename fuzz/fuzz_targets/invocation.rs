//! The host's invocation envelope (`{"Data", "Metadata"}`), as the handler reads it: the trigger
//! request with its headers, query and (base64) body, and input bindings in their object, once- or
//! twice-encoded JSON forms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = handler::fuzzing::invocation(data);
});
