//! From a config entry to an open source: the one place that names every connector, each
//! behind its cargo feature.

use std::sync::Arc;

use weft_core::config::{Config, SourceConfig};
use weft_core::Source;

/// Why a source could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// This binary was built without the source's connector.
    #[error("{0}")]
    NotBuilt(String),
    /// The connector failed to open the source.
    #[error(transparent)]
    Open(#[from] weft_core::Error),
}

fn not_built(source: &SourceConfig, feature: &str) -> OpenError {
    OpenError::NotBuilt(format!(
        "source `{}` is of kind `{}`, but this weft was built without the `{feature}` feature \
         (rebuild with `--features {feature}`)",
        source.name(),
        source.kind()
    ))
}

/// Opens the source a config entry describes.
// Built without any connector, nothing reads `config`.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "parquet",
        feature = "postgres",
        feature = "flightsql"
    )),
    allow(unused_variables)
)]
pub(crate) async fn open_source(
    source: &SourceConfig,
    config: &Config,
) -> Result<Arc<dyn Source>, OpenError> {
    #[allow(unreachable_patterns)]
    match source {
        #[cfg(feature = "sqlite")]
        SourceConfig::Sqlite(c) => Ok(Arc::new(
            weft_sqlite::SqliteSource::from_config(c, config).await?,
        )),
        #[cfg(feature = "parquet")]
        SourceConfig::Parquet(c) => Ok(Arc::new(
            weft_parquet::ParquetSource::from_config(c, config).await?,
        )),
        #[cfg(feature = "postgres")]
        SourceConfig::Postgres(c) => Ok(Arc::new(
            weft_postgres::PostgresSource::from_config(c, config).await?,
        )),
        #[cfg(feature = "flightsql")]
        SourceConfig::Flightsql(c) => Ok(Arc::new(
            weft_flightsql::FlightSqlSource::from_config(c, config).await?,
        )),
        SourceConfig::Sqlite(_) => Err(not_built(source, "sqlite")),
        SourceConfig::Parquet(_) => Err(not_built(source, "parquet")),
        SourceConfig::Postgres(_) => Err(not_built(source, "postgres")),
        SourceConfig::Flightsql(_) => Err(not_built(source, "flightsql")),
        _ => Err(OpenError::NotBuilt(format!(
            "source `{}` is of kind `{}`, which this weft does not know",
            source.name(),
            source.kind()
        ))),
    }
}
