//! PostgreSQL connector: every table and view of the configured schemas as a federated
//! DataFusion table in the catalog `<source>.<schema>.<table>`, so that whole sub-plans over
//! one database (filters, projections, joins, aggregates, sort, limit) run inside Postgres as
//! one statement.
//!
//! Built on datafusion-table-providers' Postgres pool, type mapping and executor. Knows
//! `tokio-postgres` and the Postgres dialect; knows nothing of the planner, the server or
//! other connectors.

mod decode;
mod dialect;
mod executor;
mod split;
mod types;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::TableReference;
use datafusion::sql::unparser::dialect::PostgreSqlDialect;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use secrecy::SecretString;
use url::Url;
use weft_core::config::{Config, PostgresConfig, UnsupportedTypes};
use weft_core::remote::{QueryLog, RemoteDatabase, RemoteExecutor};
use weft_core::{Error, Result, Source, SourceTable};

use crate::types::PgColumn;

const KIND: &str = "postgres";

/// How to reach a Postgres database.
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Host name or address.
    pub host: String,
    /// Port, 5432 by default.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Database name.
    pub dbname: String,
    /// Password, if the server asks for one.
    pub password: Option<String>,
    /// `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub sslmode: String,
    /// Schemas to expose; all but the system ones when `None`.
    pub schemas: Option<Vec<String>>,
    /// The largest number of pooled connections (10 when `None`).
    pub pool_size: Option<u32>,
    /// The most concurrent `ctid` ranges a statement that only filters and projects one large
    /// table is read in, each on its own connection (1: every statement is read whole). The
    /// cores of this machine, at most 8, when `None`.
    pub read_ranges: Option<usize>,
    /// What to do with a column whose type has no Arrow mapping.
    pub unsupported_types: UnsupportedTypes,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("address", &self.address())
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("schemas", &self.schemas)
            .field("pool_size", &self.pool_size)
            .field("read_ranges", &self.read_ranges)
            .field("unsupported_types", &self.unsupported_types)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// Options from a libpq-style URL, `postgres://user[:password]@host[:port]/db?sslmode=...`.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let parsed = Url::parse(url).map_err(|e| format!("invalid url `{url}`: {e}"))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "invalid url `{url}`: the scheme must be `postgres://`"
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .to_string();
        let user = match parsed.username() {
            "" => "postgres".to_string(),
            user => decode(user),
        };
        let dbname = match parsed.path().trim_start_matches('/') {
            "" => user.clone(),
            db => decode(db),
        };
        let sslmode = parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map_or_else(|| "prefer".to_string(), |(_, v)| v.to_string());
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(5432),
            user,
            dbname,
            password: parsed.password().map(decode),
            sslmode,
            schemas: None,
            pool_size: None,
            read_ranges: None,
            unsupported_types: UnsupportedTypes::Error,
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map_or_else(|| s.to_string(), |(_, v)| v.to_string())
}

/// A Postgres database as a Weft source.
#[derive(Debug)]
pub struct PostgresSource {
    name: String,
    tables: Vec<SourceTable>,
    executor: Arc<RemoteExecutor>,
    pool: Arc<PostgresConnectionPool>,
    address: String,
    ranges_sent: Arc<AtomicU64>,
}

impl PostgresSource {
    /// Opens the source a config entry describes; the password comes from the environment
    /// variable named by `password_env`.
    pub async fn from_config(source: &PostgresConfig, _config: &Config) -> Result<Self> {
        let fail = |message: String| Error::source(&source.name, KIND, message);
        let mut options = PostgresOptions::from_url(&source.url).map_err(fail)?;
        if let Some(var) = &source.password_env {
            let password = std::env::var(var).map_err(|_| {
                fail(format!(
                    "the environment variable `{var}` named by `password_env` is not set"
                ))
            })?;
            options.password = Some(password);
        }
        if let Some(sslmode) = &source.sslmode {
            options.sslmode = sslmode.clone();
        }
        options.schemas = source.schemas.clone();
        options.pool_size = source.pool_size;
        options.read_ranges = source.read_ranges;
        options.unsupported_types = source.unsupported_types;
        Self::open(&source.name, options).await
    }

    /// Connects and discovers every table and view of the options' schemas.
    pub async fn open(name: &str, options: PostgresOptions) -> Result<Self> {
        let address = options.address();
        let fail = |message: String| Error::source(name, KIND, message);

        let mut params: HashMap<String, SecretString> = HashMap::new();
        let mut set = |k: &str, v: &str| {
            params.insert(k.to_string(), SecretString::from(v.to_string()));
        };
        set("host", &options.host);
        set("port", &options.port.to_string());
        set("user", &options.user);
        set("db", &options.dbname);
        set("sslmode", &options.sslmode);
        if let Some(password) = &options.password {
            set("pass", password);
        }
        if let Some(size) = options.pool_size {
            set("connection_pool_size", &size.to_string());
        }
        let pool = PostgresConnectionPool::new(params).await.map_err(|e| {
            fail(format!(
                "cannot connect to {address} (database `{}`, user `{}`): {e}",
                options.dbname, options.user
            ))
        })?;
        let pool = Arc::new(pool);

        let discovered = discover(&pool, &options).await.map_err(|e| {
            fail(format!(
                "cannot list the tables of database `{}` at {address}: {e}",
                options.dbname
            ))
        })?;

        let mut schemas = Vec::with_capacity(discovered.tables.len());
        for ((schema, table), columns) in discovered.tables {
            let rows = discovered
                .estimates
                .get(&(schema.clone(), table.clone()))
                .copied();
            let mut fields = Vec::with_capacity(columns.len());
            for column in &columns {
                match column.field() {
                    Ok(field) => fields.push(field),
                    Err(why) if options.unsupported_types == UnsupportedTypes::Skip => {
                        tracing::warn!(
                            "source `{name}` ({KIND}): table `{schema}.{table}`: {why}; \
                             it is left out (unsupported_types = \"skip\")"
                        );
                    }
                    Err(why) => {
                        return Err(fail(format!(
                            "table `{schema}.{table}`: {why}. Cast the column to a supported \
                             type (text, for instance) in a view and query the view, or set \
                             `unsupported_types = \"skip\"` on the source to leave such columns out"
                        )))
                    }
                }
            }
            let reference = TableReference::partial(schema.as_str(), table.as_str());
            schemas.push((
                schema,
                table,
                reference,
                Arc::new(Schema::new(fields)),
                rows,
            ));
        }

        let compute_context = format!("postgres://{}@{}/{}", options.user, address, options.dbname);
        let ranges_sent = Arc::new(AtomicU64::new(0));
        let executor = Arc::new(
            RemoteExecutor::new(
                name,
                KIND,
                compute_context.clone(),
                Arc::new(executor::PgExecutor::new(
                    Arc::clone(&pool),
                    address.clone(),
                    compute_context,
                    options.sslmode.clone(),
                    options.read_ranges,
                    Arc::clone(&ranges_sent),
                )),
                Arc::new(PostgreSqlDialect {}),
            )
            .with_ast_rewrite(dialect::rewrite_statement)
            // PostgreSQL hashes a long `IN` list: 30 000 keys cut TPC-H Q12's orders from
            // 1.5 M rows to 29 000 (SF 1).
            .with_dynamic_filters(100_000),
        );
        let database = RemoteDatabase::new(
            Arc::clone(&executor),
            dialect::capabilities(discovered.binary_collation, discovered.utf8),
        );
        let tables = schemas
            .into_iter()
            .map(
                |(schema, table, reference, arrow_schema, rows)| SourceTable {
                    schema,
                    name: table,
                    provider: database.table(reference, arrow_schema, rows),
                },
            )
            .collect();
        Ok(Self {
            name: name.to_string(),
            tables,
            executor,
            pool,
            address,
            ranges_sent,
        })
    }

    /// Statements sent as ranges of split reads so far: a large scan read as `n` concurrent
    /// `ctid` ranges counts `n` (the query log has it once, as the statement Weft planned).
    pub fn ranges_sent(&self) -> u64 {
        self.ranges_sent.load(Ordering::Relaxed)
    }
}

impl Source for PostgresSource {
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

    /// A pooled connection answers `SELECT 1` (a new one is made if the pool has none).
    fn check(&self) -> futures::future::BoxFuture<'_, std::result::Result<bool, String>> {
        Box::pin(async move {
            let conn = self
                .pool
                .connect_direct()
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
            conn.conn
                .simple_query("SELECT 1")
                .await
                .map_err(|e| format!("{}: {e}", self.address))?;
            Ok(true)
        })
    }
}

struct Discovered {
    /// (schema, table) → columns in order, tables in name order.
    tables: Vec<((String, String), Vec<PgColumn>)>,
    /// (schema, table) → PostgreSQL's estimate of its rows, for tables analyzed.
    estimates: HashMap<(String, String), u64>,
    /// The database's collation orders text by code point, as DataFusion does.
    binary_collation: bool,
    /// The database's encoding is UTF-8, so its text functions count characters as
    /// DataFusion does (`SQL_ASCII` counts bytes).
    utf8: bool,
}

async fn discover(
    pool: &PostgresConnectionPool,
    options: &PostgresOptions,
) -> Result<Discovered, String> {
    let conn = pool.connect_direct().await.map_err(|e| e.to_string())?;
    let client = &*conn.conn;
    // Every column of every table, view, materialized view, partitioned and foreign table;
    // a domain is read as its base type, an array by its element type.
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, \
                    pg_catalog.format_type(a.atttypid, a.atttypmod), \
                    bt.oid, bt.typtype::text, \
                    CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
                    et.oid, et.typtype::text, NOT a.attnotnull, c.reltuples::float8, \
                    CASE WHEN a.attcollation NOT IN (0, 100) THEN co.collname::text END, \
                    coalesce((to_jsonb(co) ->> 'collisdeterministic')::bool, true) \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A' \
             LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
             WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
               AND ($1::text[] IS NULL OR n.nspname = ANY($1)) \
             ORDER BY 1, 2, a.attnum",
            &[&options.schemas],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut tables: Vec<((String, String), Vec<PgColumn>)> = Vec::new();
    let mut estimates = HashMap::new();
    for row in &rows {
        let key: (String, String) = (row.get(0), row.get(1));
        // `reltuples` is -1 (0 before PostgreSQL 14) until the table is first analyzed.
        let reltuples: f64 = row.get(10);
        if reltuples > 0.0 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            estimates.insert(key.clone(), reltuples as u64);
        }
        let typtype = |i: usize| {
            row.get::<_, Option<String>>(i)
                .and_then(|t| t.bytes().next())
                .unwrap_or(b'b')
        };
        let column = PgColumn {
            name: row.get(2),
            type_name: row.get(3),
            oid: row.get(4),
            typtype: typtype(5),
            typmod: row.get(6),
            element: row.get::<_, Option<u32>>(7).map(|oid| (oid, typtype(8))),
            nullable: row.get(9),
            collation: row
                .get::<_, Option<String>>(11)
                .map(|name| types::Collation {
                    name,
                    deterministic: row.get(12),
                }),
        };
        match tables.last_mut() {
            Some((last, columns)) if *last == key => columns.push(column),
            _ => tables.push((key, vec![column])),
        }
    }
    // The database's default collation: libc's `datcollate`, unless (PostgreSQL 15 and
    // later) the default comes from ICU, which never orders by code point, or from the
    // built-in provider (17 and later), which always does.
    let database = client
        .query_one(
            "SELECT datcollate::text, to_jsonb(d) ->> 'datlocprovider', \
                    pg_catalog.pg_encoding_to_char(encoding) \
             FROM pg_catalog.pg_database d WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (collation, provider): (String, Option<String>) = (database.get(0), database.get(1));
    let utf8 = database.get::<_, String>(2) == "UTF8";
    let binary_collation = match provider.as_deref() {
        Some("i") => false,
        Some("b") => true,
        _ => matches!(collation.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8"),
    };
    Ok(Discovered {
        tables,
        estimates,
        binary_collation,
        utf8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_like_libpq() {
        let o = PostgresOptions::from_url(
            "postgres://alice:s%40cret@db.local:6543/shop?sslmode=disable",
        )
        .unwrap();
        assert_eq!(o.address(), "db.local:6543");
        assert_eq!(o.user, "alice");
        assert_eq!(o.password.as_deref(), Some("s@cret"));
        assert_eq!(o.dbname, "shop");
        assert_eq!(o.sslmode, "disable");
        let o = PostgresOptions::from_url("postgresql://bob@localhost").unwrap();
        assert_eq!(
            (o.port, o.dbname.as_str(), o.sslmode.as_str()),
            (5432, "bob", "prefer")
        );
        assert!(PostgresOptions::from_url("mysql://x@y/z").is_err());
    }
}
