//! Integration tests: the host emulator on port 0 with a fake handler (envelope edge cases), a
//! recording SignalR REST stand-in (outputs), the real handler binary (negotiate, spoofing), and
//! the `host-emulator` binary itself (port 0, crash restarts).

mod envelope;
mod helpers;
mod outputs;
mod process;
mod real_handler;
