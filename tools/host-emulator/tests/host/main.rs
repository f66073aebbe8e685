//! Integration tests: the host emulator on port 0 with a fake handler (envelope edge cases,
//! binding data), a recording SignalR REST stand-in (outputs), and the `host-emulator` binary
//! itself (port 0, the 3-crashes rule). Nothing here runs the real handler: that is the root
//! package's `tests/stack`, which runs the binary cargo built for the test run.

mod binding_data;
mod envelope;
mod helpers;
mod outputs;
mod process;
