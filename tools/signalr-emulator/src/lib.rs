//! A local Azure SignalR Service emulator (work in progress).
