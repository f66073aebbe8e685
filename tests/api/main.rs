//! Integration tests: the real `handler` binary, host-shaped invocations, real HTTP.

mod connect;
mod cross_site;
mod groups;
mod helpers;
mod identity_sources;
mod index;
mod jwks;
mod log_injection;
mod messages;
mod names;
mod negotiate;
mod protocol;
mod providers;
mod refusals;
