//! An Azure Functions custom handler that gives Azure SignalR Service verified user identities.
//!
//! The Functions host POSTs each invocation to this process; the modules follow that flow:
//!
//! - [`config`] and [`bindings`]: settings and `function.json`, read and validated once at start.
//! - [`startup`]: the HTTP server the host talks to; [`telemetry`]: process logging.
//! - [`invocation`]: the host's wire format (`Data`/`Metadata` in, `Outputs`/`Logs` out).
//! - [`identity`]: credential → [`identity::VerifiedUser`], the only way to get one.
//! - [`names`]: hub names, group names and user ids, refused when a URL parser could reinterpret them.
//! - [`policy`]: who may join, leave or send to which group (default deny).
//! - [`signalr`]: connection strings, client tokens that carry the verified user, output items.
//! - [`functions`]: one module per function folder; [`error`]: errors → caller responses.

pub mod bindings;
pub mod config;
pub mod error;
pub mod function;
pub mod functions;
pub mod identity;
pub mod invocation;
pub mod names;
pub mod policy;
pub mod settings;
pub mod signalr;
pub mod startup;
pub mod telemetry;
pub mod webpubsub;
