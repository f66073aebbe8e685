//! Azure SignalR Service: connection strings, client access tokens, output-binding items, and
//! the REST reads a policy decision needs.

pub mod access_token;
pub mod connection_string;
pub mod output;
pub mod rest;
