//! Azure SignalR Service: connection strings, how the handler authenticates to the service
//! (`service_auth`: AccessKey or managed identity), client access tokens, output-binding items,
//! and REST calls.

pub mod access_token;
pub mod connection_string;
pub mod output;
pub mod rest;
pub mod service_auth;
