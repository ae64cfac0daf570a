//! The error type of the core: config loading and source wiring.

use std::path::PathBuf;

/// What can go wrong while loading a config or wiring sources into a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or does not have Weft's shape.
    #[error("invalid config file `{path}`: {message}")]
    ParseConfig {
        /// The file (or `<inline>` for a config given as a string).
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// The config is well-formed but says something Weft cannot do.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A source could not be opened or queried; the message names the source.
    #[error("source `{source_name}` ({kind}): {message}")]
    Source {
        /// The source's name from the config.
        source_name: String,
        /// The source's kind (`sqlite`, `parquet`, ...).
        kind: String,
        /// What went wrong, naming the table or column where there is one.
        message: String,
    },
    /// An error from DataFusion.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl Error {
    /// A source error: `source `name` (kind): message`.
    pub fn source(name: &str, kind: &str, message: impl Into<String>) -> Self {
        Error::Source {
            source_name: name.to_string(),
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => datafusion::error::DataFusionError::External(Box::new(other)),
        }
    }
}

/// The result type of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
