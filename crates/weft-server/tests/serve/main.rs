//! `weft serve` end to end: real server processes on loopback, reached with `arrow-flight`'s
//! Rust client, the Python ADBC driver, and another Weft. They serve the demo, so they need
//! the SQLite and Parquet connectors as well as the server.
#![cfg(all(feature = "server", feature = "sqlite", feature = "parquet"))]

mod adbc;
mod common;
#[cfg(feature = "flightsql")]
mod federation;
mod flight_client;
mod limits;
mod malformed;
#[cfg(feature = "semantic")]
mod tenants;
mod wire;
