//! Weft's shared federation core: the config model, the contract a connector fulfils, the
//! wiring of sources into DataFusion catalogs, and the remote-SQL plumbing every SQL
//! connector shares (capabilities, query log, executor wrapper).
//!
//! Every other Weft crate depends on this one. It knows DataFusion and
//! datafusion-federation; it knows no concrete connector, no driver, and nothing of the
//! planner or the server.

mod batch;
pub mod config;
mod dynamic;
mod error;
mod estimate;
mod instants;
mod precedence;
pub mod remote;
mod source;

pub use batch::cast_columns;
pub use error::{Error, Result};
pub use source::{register_source, source_catalog, Source, SourceTable};
