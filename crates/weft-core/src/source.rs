//! The contract a connector fulfils, and how a source becomes a DataFusion catalog.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use crate::remote::QueryLog;
use crate::Result;

/// One table of a source, ready to be registered.
#[derive(Debug, Clone)]
pub struct SourceTable {
    /// The schema it lives in inside the source's catalog (`main` for SQLite, `public` for
    /// Parquet).
    pub schema: String,
    /// The table's name as users write it.
    pub name: String,
    /// The provider DataFusion scans. For SQL sources it takes part in datafusion-federation
    /// (see [`crate::remote`]); for file sources it is a plain DataFusion table.
    pub provider: Arc<dyn TableProvider>,
}

/// A data source: what a connector hands to the planner.
///
/// An implementor is built by its connector from its config (`weft_sqlite::SqliteSource::open`,
/// `weft_parquet::ParquetSource::open`, ...), with its tables discovered up front. It
/// supplies:
///
/// - its [`name`](Source::name), which becomes the catalog name (`<name>.<schema>.<table>`);
/// - its [`tables`](Source::tables), each with a [`TableProvider`]. A SQL source's providers
///   are federated: their scans carry a compute context that identifies the database and the
///   credentials, so that two tables are merged into one remote query only when they are in
///   the same database;
/// - for SQL sources, the [`QueryLog`] of the statements it was sent.
///
/// The defaults register nothing in the runtime and keep no log.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use datafusion::arrow::array::Int64Array;
/// use datafusion::arrow::datatypes::{DataType, Field, Schema};
/// use datafusion::arrow::record_batch::RecordBatch;
/// use datafusion::datasource::MemTable;
/// use datafusion::prelude::SessionContext;
/// use weft_core::{register_source, Source, SourceTable};
///
/// #[derive(Debug)]
/// struct Numbers(Vec<SourceTable>);
///
/// impl Source for Numbers {
///     fn name(&self) -> &str { "numbers" }
///     fn kind(&self) -> &'static str { "memory" }
///     fn tables(&self) -> &[SourceTable] { &self.0 }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::error::Result<()> {
/// let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
/// let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])?;
/// let table = MemTable::try_new(schema, vec![vec![batch]])?;
/// let source = Numbers(vec![SourceTable {
///     schema: "public".into(),
///     name: "small".into(),
///     provider: Arc::new(table),
/// }]);
///
/// let ctx = SessionContext::new();
/// register_source(&ctx, &source)?;
/// let rows = ctx.sql("SELECT sum(n) FROM numbers.public.small").await?.collect().await?;
/// assert_eq!(rows[0].num_rows(), 1);
/// # Ok(())
/// # }
/// ```
pub trait Source: Send + Sync + Debug {
    /// The source's name from the config: the catalog name.
    fn name(&self) -> &str;

    /// The source's kind as written in the config (`sqlite`, `parquet`, ...).
    fn kind(&self) -> &'static str;

    /// Every table of the source.
    fn tables(&self) -> &[SourceTable];

    /// The statements this source was sent, for SQL sources.
    fn query_log(&self) -> Option<&QueryLog> {
        None
    }

    /// Registers what the source needs in a session's runtime (object stores, ...).
    fn register_runtime(&self, _runtime: &RuntimeEnv) -> Result<()> {
        Ok(())
    }

    /// Checks with a cheap round trip that the source answers now, for health reports:
    /// `Ok(true)` when it does, `Ok(false)` when the connector has no probe, an error saying
    /// what failed otherwise. The caller bounds how long it waits.
    fn check(&self) -> BoxFuture<'_, std::result::Result<bool, String>> {
        Box::pin(async { Ok(false) })
    }
}

/// Builds the catalog `<source>` with one schema per schema of the source.
pub fn source_catalog(source: &dyn Source) -> Result<Arc<dyn CatalogProvider>> {
    let catalog = MemoryCatalogProvider::new();
    for table in source.tables() {
        let schema = match catalog.schema(&table.schema) {
            Some(schema) => schema,
            None => {
                let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                catalog.register_schema(&table.schema, Arc::clone(&schema))?;
                schema
            }
        };
        schema.register_table(table.name.clone(), Arc::clone(&table.provider))?;
    }
    Ok(Arc::new(catalog))
}

/// Registers a source in a session: its catalog, and what it needs in the runtime.
pub fn register_source(ctx: &SessionContext, source: &dyn Source) -> Result<()> {
    source.register_runtime(ctx.runtime_env().as_ref())?;
    ctx.register_catalog(source.name(), source_catalog(source)?);
    Ok(())
}
