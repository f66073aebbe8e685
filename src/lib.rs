//! An Azure Functions custom handler that gives Azure SignalR Service verified user identities.
//!
//! The Functions host POSTs each invocation to this process; the modules follow that flow. Only
//! what `src/main.rs` needs is public ([`config`], [`startup`], [`telemetry`]); everything else is
//! private, so an unused item is a warning.
//!
//! - [`config`]: on top; reads the environment once and assembles [`config::Settings`] from the
//!   settings types that live beside their code, then checks what spans several of them.
//! - `settings`: the environment view (`Env`) and `ConfigError`, imported by every settings type.
//! - `function`: the `Function` table, one variant per function folder, with what each needs;
//!   `bindings`: what each `function.json` binds, resolved to a `Function` at start-up.
//! - [`startup`]: the HTTP server the host talks to; [`telemetry`]: process logging.
//! - `invocation`: the host's wire format (`Data`/`Metadata` in, `Outputs`/`Logs` out).
//! - `identity`: credential → `VerifiedUser`, the only way to get one.
//! - `names`: hub names, group names and user ids, refused when a URL parser could reinterpret them.
//! - `policy`: who may join, leave or send to which group (default deny).
//! - `signalr`: connection strings, client tokens that carry the verified user, output items;
//!   `webpubsub`: the Web PubSub event-handler protocol.
//! - `functions`: one module per function folder, dispatched by `Function`; `error`: errors →
//!   caller responses.
//! - `bench_api` (cargo feature `bench`, hidden): the pure parts of negotiate for `benches/pure.rs`.

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench_api;
mod bindings;
pub mod config;
mod error;
mod function;
mod functions;
// The fuzz targets' entry points (fuzz/, RELIABILITY.md): thin wrappers over the private
// decoders, absent from every normal build.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod invocation;
mod names;
mod policy;
mod settings;
mod signalr;
pub mod startup;
pub mod telemetry;
mod webpubsub;
