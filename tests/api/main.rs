//! Integration tests: the real `handler` binary, host-shaped invocations, real HTTP.

mod groups;
mod helpers;
mod index;
mod jwks;
mod negotiate;
mod protocol;
mod refusals;
