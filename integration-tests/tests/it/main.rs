//! End-to-end tests across Weft's crates on the demo data: real SQLite and Parquet files.

mod differential;
mod errors;
mod faults;
mod fuzz;
mod hostile;
mod pg_types;
mod postgres;
mod pushdown;
mod semantic;
mod serve;
mod tpch;
