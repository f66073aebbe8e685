//! Integration tests: the real `handler` binary, host-shaped invocations, real HTTP.

mod auth_expiry;
mod connect;
mod cross_site;
mod groups;
mod helpers;
mod identity_sources;
mod index;
mod jwks;
mod keyless;
mod log_injection;
mod messages;
mod names;
mod negotiate;
mod protocol;
mod providers;
mod refresh;
mod refusals;
mod upstream;
