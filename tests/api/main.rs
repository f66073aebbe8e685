//! Integration tests: the real `handler` binary, host-shaped invocations, real HTTP.

mod helpers;
mod jwks;
mod negotiate;
mod protocol;
mod refusals;
