//! `weft serve` end to end: real server processes on loopback, reached with `arrow-flight`'s
//! Rust client, the Python ADBC driver, and another Weft.

mod adbc;
mod common;
mod federation;
mod flight_client;
mod wire;
