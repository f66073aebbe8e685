//! Azure SignalR Service: connection strings, how the handler authenticates to the service
//! (`service_auth`: AccessKey or managed identity), client access tokens and when their login
//! ends, output-binding items, the REST calls (membership reads, `:refreshAuth`), and the upstream
//! protocol (`upstream`).

pub mod access_token;
pub mod connection_string;
pub mod expiry;
pub mod output;
pub mod rest;
pub mod service_auth;
pub mod upstream;
