//! Integration tests: an emulator on port 0, real HTTP and WebSocket clients over loopback.

mod auth;
mod client;
mod helpers;
mod keyless;
mod lifetime;
mod rest;
mod upstream;
