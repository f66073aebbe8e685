//! Integration tests of the stack: the host emulator in-process on port 0, the `handler` binary
//! cargo built for this test run (`CARGO_BIN_EXE_handler`) as its worker process, real HTTP between
//! the two. They live in the root package because cargo sets `CARGO_BIN_EXE_handler` only here.

mod helpers;
mod process;
mod real_handler;
