//! Azure SignalR Service: connection strings, client access tokens, output-binding items, and
//! the REST reads a policy decision needs, and the upstream protocol (`upstream`).

pub mod access_token;
pub mod connection_string;
pub mod output;
pub mod rest;
pub mod upstream;
