//! Test harness: spawns the real `handler` binary on a free port, sends it host-shaped
//! invocations, mints test tokens, and serves JWKS from a real local HTTP server.
//!
//! - [`spawn`]: the spawned handler process and its captured output.
//! - [`invocation`]: fixtures, host-shaped payloads (SignalR upstream requests included), and
//!   readers of the handler's envelope.
//! - [`tokens`]: app and service JWTs, signing keys, visitor tokens, principals, certificates.
//! - [`stand_ins`]: real loopback servers for the identity provider (JWKS) and the SignalR REST API.

mod invocation;
mod spawn;
mod stand_ins;
mod tokens;

pub use invocation::*;
pub use spawn::*;
pub use stand_ins::*;
pub use tokens::*;

pub const ISSUER: &str = "https://issuer.test.example/";
pub const AUDIENCE: &str = "api://signalr-test-app";
pub const HS256_SECRET: &str = "insecure-test-app-secret-0123456789-abcdefghij";
pub const ACCESS_KEY: &str = "INSECURE-TEST-ACCESS-KEY-ABCDEFGHIJKLMNOPQRSTUV0123456789";
pub const WEBPUBSUB_HOST: &str = "insecure-test.webpubsub.azure.com";
pub const WEBPUBSUB_PRIMARY_KEY: &str = "INSECURE-TEST-WPS-PRIMARY-KEY-0123456789ABCDEFGH";
pub const WEBPUBSUB_SECONDARY_KEY: &str = "INSECURE-TEST-WPS-SECONDARY-KEY-0123456789ABCDEF";
pub const WEBPUBSUB_CONNECTION_STRING: &str = "Endpoint=https://insecure-test.webpubsub.azure.com;AccessKey=INSECURE-TEST-WPS-PRIMARY-KEY-0123456789ABCDEFGH;Version=1.0;";
pub const CONNECTION_STRING: &str = "Endpoint=http://localhost;Port=8888;AccessKey=INSECURE-TEST-ACCESS-KEY-ABCDEFGHIJKLMNOPQRSTUV0123456789;Version=1.0;";
