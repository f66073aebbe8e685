//! A local stand-in for the Azure Functions host (v4) running a *custom handler* app.
//!
//! `func start` cannot be installed here, so this crate runs the function app the way the real
//! host does, as described in `docs/protocol/functions-host.md`: it reads `host.json`,
//! every `*/function.json` and `local.settings.json`, starts the handler process, turns each HTTP
//! request into a `{"Data", "Metadata"}` invocation, and applies the handler's `Outputs` (the
//! caller's HTTP response, SignalR messages and group actions sent to the SignalR Service REST
//! API named by the connection string).
//!
//! Where things are, in the order a request meets them:
//! - [`app`]: the app root on disk → [`app::AppDefinition`] (functions, routes, settings, CORS).
//! - [`routes`]: ASP.NET-style route templates (`{name}`, `{name?}`, `{*rest}`).
//! - [`server`]: the public HTTP listener, CORS, one invocation per request.
//! - [`binding_data`]: the trigger's binding data and `{headers.x}`-style binding expressions.
//! - [`invocation`]: the wire format: request envelope out, response envelope in.
//! - [`connection_info`]: the `signalRConnectionInfo` input, minted as the extension does.
//! - [`outputs`]: `http` and `signalR` output values, parsed by the host's rules.
//! - [`signalr_rest`]: the SignalR Service REST client (2022-06-01 routes).
//! - [`connection_string`], [`jwt`]: the connection string and HS256 tokens.
//! - [`worker`]: the handler process: start, readiness, restart, the 3-crashes rule.
//!
//! This crate never imports the handler crate: both sides implement
//! `docs/protocol/functions-host.md` on their own, so a
//! wrong field name fails a test instead of passing silently.

pub mod app;
pub mod binding_data;
pub mod connection_info;
pub mod connection_string;
pub mod invocation;
pub mod jwt;
pub mod outputs;
pub mod routes;
pub mod server;
pub mod signalr_rest;
pub mod worker;

pub use server::{HandlerLaunch, HostEmulator, HostOptions};
