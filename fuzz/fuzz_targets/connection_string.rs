//! SignalR / Web PubSub connection strings and the URLs built from them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = handler::fuzzing::connection_string(text);
    }
});
