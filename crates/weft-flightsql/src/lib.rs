//! Flight SQL connector: the tables of a remote Arrow Flight SQL server (another Weft, or any
//! DataFusion-based Flight SQL server) as federated DataFusion tables, so that whole sub-plans
//! over that server are sent to it as one SQL query and the answer streams back as Arrow.
//!
//! Built on `arrow-flight`'s Flight SQL client. Knows nothing of the planner, the server or
//! other connectors.
//!
//! Tables are discovered with GetTables (schemas included; the remote's `information_schema`
//! is left out). A remote table
//! `<catalog>.<schema>.<table>` is registered as `<source>.<schema>.<table>` when the config
//! names the remote `catalog`, and as `<source>.<catalog>_<schema>.<table>` otherwise.
//!
//! The remote is assumed to compute SQL as DataFusion does (it is sent DataFusion's own
//! dialect), which holds for a Weft server of the same version.

mod executor;

use std::sync::Arc;

use arrow_flight::sql::CommandGetTables;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;
use datafusion::common::TableReference;
use datafusion::execution::SessionStateBuilder;
use datafusion::sql::unparser::dialect::DefaultDialect;
use futures::TryStreamExt as _;
use weft_core::config::{Config, FlightSqlConfig};
use weft_core::remote::{Capabilities, QueryLog, RemoteDatabase, RemoteExecutor};
use weft_core::{Error, Result, Source, SourceTable};

pub use executor::{Credentials, FlightSqlConnection};

const KIND: &str = "flightsql";

/// A remote Flight SQL server as a Weft source.
#[derive(Debug)]
pub struct FlightSqlSource {
    name: String,
    tables: Vec<SourceTable>,
    executor: Arc<RemoteExecutor>,
}

impl FlightSqlSource {
    /// Connects to the server a config entry describes, logs in and discovers its tables.
    pub async fn from_config(source: &FlightSqlConfig, _config: &Config) -> Result<Self> {
        let fail = |message: String| Error::source(&source.name, KIND, message);
        let env = |var: &str, what: &str| {
            std::env::var(var).map_err(|_| {
                fail(format!(
                    "the {what} is read from the environment variable `{var}`, which is not set"
                ))
            })
        };
        let credentials = match (&source.token_env, &source.user, &source.password_env) {
            (Some(_), Some(_), _) => {
                return Err(fail(
                    "give either `token_env` or `user` (with `password_env`), not both".into(),
                ))
            }
            (Some(var), None, _) => Credentials::Bearer(env(var, "token")?),
            (None, Some(user), Some(var)) => Credentials::Basic {
                user: user.clone(),
                password: env(var, "password")?,
            },
            (None, Some(_), None) => {
                return Err(fail(
                    "`user` is set but `password_env` is not: name the environment variable \
                     that holds the password"
                        .into(),
                ))
            }
            (None, None, _) => Credentials::None,
        };
        Self::connect(
            &source.name,
            &source.url,
            credentials,
            source.catalog.as_deref(),
        )
        .await
    }

    /// Connects to the Flight SQL server at `url` (`grpc://host:port` or
    /// `grpc+tls://host:port`) and discovers its tables, of every catalog or of `catalog`.
    pub async fn connect(
        name: &str,
        url: &str,
        credentials: Credentials,
        catalog: Option<&str>,
    ) -> Result<Self> {
        let fail = |message: String| Error::source(name, KIND, message);
        let connection = FlightSqlConnection::connect(url, credentials)
            .await
            .map_err(fail)?;
        let remote_tables = discover(&connection, catalog)
            .await
            .map_err(|e| fail(format!("listing the tables of {url}: {e}")))?;

        let executor = Arc::new(
            RemoteExecutor::new(
                name,
                KIND,
                connection.compute_context(),
                Arc::new(connection),
                Arc::new(DefaultDialect {}),
            )
            .with_ast_rewrite(weft_core::remote::arrow_cast_instants),
        );
        let database = RemoteDatabase::new(Arc::clone(&executor), capabilities());
        let tables = remote_tables
            .into_iter()
            .map(|t| SourceTable {
                schema: match catalog {
                    Some(_) => t.schema.clone(),
                    None => format!("{}_{}", t.catalog, t.schema),
                },
                name: t.name.clone(),
                provider: database.table(
                    TableReference::full(t.catalog.as_str(), t.schema.as_str(), t.name.as_str()),
                    t.arrow_schema,
                    None,
                ),
            })
            .collect::<Vec<_>>();
        tracing::debug!(
            source = name,
            url,
            tables = tables.len(),
            "opened Flight SQL source"
        );
        Ok(Self {
            name: name.to_string(),
            tables,
            executor,
        })
    }
}

impl Source for FlightSqlSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn tables(&self) -> &[SourceTable] {
        &self.tables
    }

    fn query_log(&self) -> Option<&QueryLog> {
        Some(self.executor.log())
    }
}

/// A table the remote server lists.
struct RemoteTable {
    catalog: String,
    schema: String,
    name: String,
    arrow_schema: SchemaRef,
}

/// Lists the remote tables with GetTables, schemas included.
async fn discover(
    connection: &FlightSqlConnection,
    catalog: Option<&str>,
) -> std::result::Result<Vec<RemoteTable>, String> {
    let mut client = connection.client().await?;
    let request = CommandGetTables {
        catalog: catalog.map(str::to_string),
        db_schema_filter_pattern: None,
        table_name_filter_pattern: None,
        table_types: vec![],
        include_schema: true,
    };
    let info = client
        .get_tables(request)
        .await
        .map_err(|e| executor::describe(&e))?;
    let mut tables = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint
            .ticket
            .ok_or_else(|| "the server answered GetTables without a ticket".to_string())?;
        let batches: Vec<_> = client
            .do_get(ticket)
            .await
            .map_err(|e| executor::describe(&e))?
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        for batch in batches {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| {
                        c.as_any()
                            .downcast_ref::<datafusion::arrow::array::StringArray>()
                    })
                    .cloned()
                    .ok_or_else(|| format!("the GetTables answer has no text column `{name}`"))
            };
            let catalogs = column("catalog_name")?;
            let schemas = column("db_schema_name")?;
            let names = column("table_name")?;
            let table_schemas = batch
                .column_by_name("table_schema")
                .and_then(|c| {
                    c.as_any()
                        .downcast_ref::<datafusion::arrow::array::BinaryArray>()
                })
                .cloned()
                .ok_or_else(|| "the GetTables answer has no table schemas".to_string())?;
            for row in 0..batch.num_rows() {
                // The remote's own metadata views: Weft has its own information_schema.
                if schemas
                    .value(row)
                    .eq_ignore_ascii_case("information_schema")
                {
                    continue;
                }
                let name = names.value(row).to_string();
                let arrow_schema = try_schema_from_ipc_buffer(table_schemas.value(row))
                    .map_err(|e| format!("the schema of table `{name}` is unreadable: {e}"))?;
                tables.push(RemoteTable {
                    catalog: catalogs.value(row).to_string(),
                    schema: schemas.value(row).to_string(),
                    name,
                    arrow_schema: Arc::new(arrow_schema),
                });
            }
        }
    }
    Ok(tables)
}

/// What a DataFusion-based server computes as Weft's own DataFusion does: everything.
fn capabilities() -> Capabilities {
    let state = SessionStateBuilder::new().with_default_features().build();
    let mut caps = Capabilities::scan_only("datafusion");
    caps.scalar_functions = state.scalar_functions().keys().cloned().collect();
    caps.aggregate_functions = state.aggregate_functions().keys().cloned().collect();
    caps.joins = true;
    caps.semi_joins = true;
    caps.aggregates = true;
    caps.sort_and_limit = true;
    caps.division = true;
    caps.case_sensitive_like = true;
    caps.date_comparisons = true;
    caps.timestamp_comparisons = true;
    caps.decimals = true;
    caps.numeric_casts = true;
    caps.binary_text_order = true;
    caps
}
