//! `X-MS-CLIENT-PRINCIPAL` (base64 JSON) with the platform's authentication on. The first byte
//! picks the shape (even: App Service, odd: Static Web Apps); the rest is the header value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((shape, rest)) = data.split_first() else {
        return;
    };
    let header = String::from_utf8_lossy(rest);
    let _ = handler::fuzzing::app_service_principal(&header, shape % 2 == 1);
});
