//! Credential extraction: the bearer token of a host envelope's trigger request (query accepted
//! and refused), then the one-token rule on raw values. Input: an envelope; for the raw rule, the
//! same bytes split at NUL into header values and query values (`headers \0\0 queries`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = handler::fuzzing::bearer(data);
    let text = String::from_utf8_lossy(data);
    let (headers, queries) = text.split_once("\0\0").unwrap_or((&text, ""));
    let split = |values: &str| -> Vec<String> {
        if values.is_empty() {
            Vec::new()
        } else {
            values.split('\0').map(str::to_owned).collect()
        }
    };
    let (headers, queries) = (split(headers), split(queries));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
    let _ = handler::fuzzing::one_token(&headers, &queries);
});
