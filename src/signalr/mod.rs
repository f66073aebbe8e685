//! Azure SignalR Service: connection strings, client access tokens, and output-binding items.

pub mod access_token;
pub mod connection_string;
