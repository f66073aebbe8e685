//! Web PubSub events: the connect body, the origin, connection id and `ce-signature` headers, and
//! the signature rule. Input: `body \0 origin \0 connection id \0 signature`.
#![no_main]

use handler::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |byte| *byte == 0);
    let body = parts.next().unwrap_or_default();
    let rest: Vec<String> = parts
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    let field = |index: usize| rest.get(index).map(String::as_str).unwrap_or_default();
    let _ = fuzzing::webpubsub_event(body, field(0), field(1), field(2));
});
