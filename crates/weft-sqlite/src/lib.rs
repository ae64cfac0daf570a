//! SQLite connector: every table and view of a SQLite file as a federated, read-only
//! DataFusion table in the catalog `<source>.main.<table>`, so that whole sub-plans over one
//! file run inside SQLite.
//!
//! Built on datafusion-table-providers' SQLite pool and table, with Weft's own reader
//! ([`read`]: every SQLite error reported, rows in batches) and a statement runner that
//! interrupts statements nobody waits for ([`executor`]). Knows `rusqlite` and the SQLite
//! dialect; knows nothing of the planner, the server or other connectors.
//!
//! The file is never modified: it is opened with `mode=ro`, and the pool's usual switch to
//! WAL mode (which writes `-wal`/`-shm` files beside the database) is never made.
//!
//! Column types come from the declared types, following SQLite's affinity rules, with `DATE`,
//! `DATETIME`/`TIMESTAMP` and `BOOLEAN` read as Arrow dates, timestamps and booleans. Dates
//! and timestamps must be stored as ISO-8601 text, the form SQLite's own date functions use.

mod dialect;
mod executor;
mod read;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::TableReference;
use datafusion::sql::unparser::dialect::SqliteDialect;
use datafusion_federation::sql::SQLExecutor;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::sqliteconn::SqliteConnection;
use datafusion_table_providers::sql::db_connection_pool::{
    sqlitepool::SqliteConnectionPool, DbConnectionPool, JoinPushDown, Mode,
};
use datafusion_table_providers::sqlite::sql_table::SQLiteTable;
use rusqlite::OpenFlags;
use weft_core::config::{Config, SqliteConfig};
use weft_core::remote::{ComparesAs, QueryLog, RemoteDatabase, RemoteExecutor, COMPARES_AS};
use weft_core::{Error, Result, Source, SourceTable};

const KIND: &str = "sqlite";

/// The schema every SQLite table is registered in.
pub const SCHEMA: &str = "main";

/// A SQLite file as a Weft source.
#[derive(Debug)]
pub struct SqliteSource {
    name: String,
    path: PathBuf,
    tables: Vec<SourceTable>,
    executor: Arc<RemoteExecutor>,
}

/// A discovered table: its name and Arrow schema.
struct TableDef {
    name: String,
    schema: SchemaRef,
    rows: Option<u64>,
}

impl SqliteSource {
    /// Opens the source a config entry describes; relative paths are relative to the config.
    pub async fn from_config(source: &SqliteConfig, config: &Config) -> Result<Self> {
        Self::open_with_timeout(
            &source.name,
            &config.resolve(&source.path),
            Duration::from_millis(source.busy_timeout_ms),
        )
        .await
    }

    /// Opens the SQLite file at `path`, read-only, and discovers its tables and views.
    pub async fn open(name: &str, path: &Path) -> Result<Self> {
        Self::open_with_timeout(name, path, Duration::from_secs(5)).await
    }

    async fn open_with_timeout(name: &str, path: &Path, busy_timeout: Duration) -> Result<Self> {
        let fail = |message: String| Error::source(name, KIND, message);
        if !path.is_file() {
            return Err(fail(format!(
                "database file `{}` does not exist or is not a file",
                path.display()
            )));
        }
        let path = path
            .canonicalize()
            .map_err(|e| fail(format!("cannot resolve `{}`: {e}", path.display())))?;
        let defs = discover(&path).map_err(|e| fail(format!("`{}`: {e}", path.display())))?;

        let uri = read_only_uri(&path);
        let pool = SqliteConnectionPool::new(
            &uri,
            Mode::File,
            JoinPushDown::AllowedFor(path.display().to_string()),
            vec![],
            busy_timeout,
        )
        .await
        .map_err(|e| fail(format!("cannot open `{}`: {e}", path.display())))?;
        let pool: Arc<
            dyn DbConnectionPool<
                    tokio_rusqlite::Connection,
                    &'static (dyn tokio_rusqlite::ToSql + Sync),
                > + Send
                + Sync,
        > = Arc::new(pool);

        // The executor runs any statement against the file; the table it is built for is
        // only a placeholder that datafusion-table-providers requires.
        let placeholder = Arc::new(Schema::empty());
        let sqlite =
            SQLiteTable::new_with_schema(&pool, placeholder, TableReference::bare("sqlite_master"));
        // Statements run on the pool's one connection, stopped when their query is dropped.
        let connection = pool
            .connect()
            .await
            .map_err(|e| fail(format!("cannot open `{}`: {e}", path.display())))?;
        let connection = connection
            .as_any()
            .downcast_ref::<SqliteConnection>()
            .ok_or_else(|| fail("the pool's connection is not a SQLite connection".to_string()))?
            .conn
            .clone();
        let inner: Arc<dyn SQLExecutor> = Arc::new(
            executor::Interruptible::new(Arc::new(sqlite), connection)
                .await
                .map_err(|e| fail(format!("cannot open `{}`: {e}", path.display())))?,
        );
        let executor = Arc::new(
            RemoteExecutor::new(
                name,
                KIND,
                format!("sqlite:{}", path.display()),
                inner,
                Arc::new(SqliteDialect {}),
            )
            .with_ast_rewrite(dialect::rewrite_statement)
            // SQLite parses every value and sorts the list into a temporary index: TPC-H
            // Q14's 63 000 part keys made its scan of `part` (200 000 rows) twice as slow.
            .with_dynamic_filters(10_000),
        );
        let database = RemoteDatabase::new(Arc::clone(&executor), dialect::capabilities());
        let tables = defs
            .into_iter()
            .map(|def| SourceTable {
                schema: SCHEMA.to_string(),
                provider: database.table(
                    TableReference::bare(def.name.as_str()),
                    def.schema,
                    def.rows,
                ),
                name: def.name,
            })
            .collect();
        tracing::debug!(source = name, path = %path.display(), "opened SQLite source");
        Ok(Self {
            name: name.to_string(),
            path,
            tables,
            executor,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Source for SqliteSource {
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

    /// The file is still there and still a SQLite database.
    fn check(&self) -> futures::future::BoxFuture<'_, std::result::Result<bool, String>> {
        Box::pin(async move {
            let path = self.path.clone();
            let header = tokio::task::spawn_blocking(move || {
                use std::io::Read as _;
                let mut header = [0u8; 16];
                std::fs::File::open(&path)?.read_exact(&mut header)?;
                Ok::<_, std::io::Error>(header)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read `{}`: {e}", self.path.display()))?;
            if &header != b"SQLite format 3\0" {
                return Err(format!(
                    "`{}` is no longer a SQLite database",
                    self.path.display()
                ));
            }
            Ok(true)
        })
    }
}

/// `file:<path>?mode=ro`: SQLite refuses every write, and never creates the file.
fn read_only_uri(path: &Path) -> String {
    let mut encoded = String::new();
    for c in path.display().to_string().chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3f"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    format!("file:{encoded}?mode=ro")
}

/// Lists the tables and views of the file with their declared column types.
fn discover(path: &Path) -> rusqlite::Result<Vec<TableDef>> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn.prepare(
        "SELECT name, type = 'table' FROM sqlite_master \
         WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut defs = Vec::with_capacity(names.len());
    for (name, is_table) in names {
        // About how many rows: the largest rowid, found without reading the table (none for
        // a view or a table without rowids).
        let rows = is_table
            .then(|| {
                let sql = format!("SELECT max(rowid) FROM \"{}\"", name.replace('"', "\"\""));
                conn.query_row(&sql, [], |row| row.get::<_, Option<i64>>(0))
                    .ok()
                    .flatten()
                    .and_then(|max| u64::try_from(max).ok())
            })
            .flatten();
        let mut info = conn.prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?;
        let mut fields = info
            .query_map([&name], |row| {
                let column: String = row.get(0)?;
                let declared: String = row.get(1)?;
                Ok(Field::new(column, arrow_type(&declared), true))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        mark_collated_text(&conn, &name, &mut fields);
        defs.push(TableDef {
            name,
            schema: Arc::new(Schema::new(fields)),
            rows,
        });
    }
    Ok(defs)
}

/// Marks the text columns of `table` that SQLite does not compare by their bytes as
/// DataFusion does (a `COLLATE NOCASE` or `RTRIM` column, or one of a view over such a
/// column or with its own `COLLATE`) as [`ComparesAs::Opaque`], so that no comparison, order
/// or grouping of them is pushed.
///
/// Found by how the column compares rather than by reading its declaration, which is
/// what covers views and collations Weft does not know: each text column of `table` is
/// compared with `'a'` for the values `'A'` and `'a '` under the column's own collation
/// (the leftmost select of a compound gives the result's collation). By bytes, neither is
/// equal to `'a'` and only `'A'` is less. When the probe cannot run (a collation this
/// connection lacks), every text column of the table is marked.
fn mark_collated_text(conn: &rusqlite::Connection, table: &str, fields: &mut [Field]) {
    let text: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i].data_type() == &DataType::Utf8)
        .collect();
    if text.is_empty() {
        return;
    }
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let columns = text
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("{} AS x{n}", quote(fields[i].name())))
        .collect::<Vec<_>>()
        .join(", ");
    let values = |v: &str| vec![v; text.len()].join(", ");
    let tests = (0..text.len())
        .map(|n| format!("coalesce(sum(x{n} = 'a'), 0), coalesce(sum(x{n} < 'a'), 0)"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {tests} FROM (SELECT {columns} FROM {} WHERE 0 \
         UNION ALL SELECT {} UNION ALL SELECT {})",
        quote(table),
        values("'A'"),
        values("'a '"),
    );
    let bytewise = conn.query_row(&sql, [], |row| {
        (0..text.len())
            .map(|n| Ok(row.get::<_, i64>(2 * n)? == 0 && row.get::<_, i64>(2 * n + 1)? == 1))
            .collect::<rusqlite::Result<Vec<bool>>>()
    });
    let bytewise = bytewise.unwrap_or_else(|e| {
        tracing::warn!(
            table,
            error = %e,
            "cannot tell how SQLite compares the table's text columns; none of their \
             comparisons will be pushed"
        );
        vec![false; text.len()]
    });
    for (&i, bytewise) in text.iter().zip(bytewise) {
        if !bytewise {
            let field = fields[i].clone();
            let mut metadata = field.metadata().clone();
            metadata.insert(
                COMPARES_AS.to_string(),
                ComparesAs::Opaque.as_str().to_string(),
            );
            fields[i] = field.with_metadata(metadata);
        }
    }
}

/// The Arrow type of a column with this declared type: SQLite's affinity rules
/// (<https://www.sqlite.org/datatype3.html#determination_of_column_affinity>), with the
/// NUMERIC-affinity names for dates, timestamps and booleans read as such.
pub fn arrow_type(declared: &str) -> DataType {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        DataType::Int64
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        DataType::Utf8
    } else if t.contains("BLOB") {
        DataType::Binary
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        DataType::Float64
    } else if t.starts_with("BOOL") {
        DataType::Boolean
    } else if t.starts_with("DATETIME") || t.starts_with("TIMESTAMP") {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    } else if t == "DATE" {
        DataType::Date32
    } else if t.is_empty() {
        // No declared type: values keep whatever type they were stored with. Text is the
        // one reading that works for what such columns usually hold.
        DataType::Utf8
    } else {
        DataType::Float64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_sqlite_affinity() {
        assert_eq!(arrow_type("INTEGER"), DataType::Int64);
        assert_eq!(arrow_type("bigint"), DataType::Int64);
        assert_eq!(arrow_type("VARCHAR(30)"), DataType::Utf8);
        assert_eq!(arrow_type("REAL"), DataType::Float64);
        assert_eq!(arrow_type("DECIMAL(10,2)"), DataType::Float64);
        assert_eq!(arrow_type("DATE"), DataType::Date32);
        assert_eq!(
            arrow_type("TIMESTAMP"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(arrow_type("BOOLEAN"), DataType::Boolean);
        assert_eq!(arrow_type("BLOB"), DataType::Binary);
    }

    #[test]
    fn uri_is_read_only_and_escapes_query_characters() {
        assert_eq!(
            read_only_uri(Path::new("/tmp/a?b#c%d.db")),
            "file:/tmp/a%3fb%23c%25d.db?mode=ro"
        );
    }

    #[tokio::test]
    async fn missing_file_names_the_source_and_path() {
        let err = SqliteSource::open("shop", Path::new("/nonexistent/shop.db"))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "source `shop` (sqlite): database file `/nonexistent/shop.db` does not exist or is not a file"
        );
    }

    #[test]
    fn text_columns_compared_by_a_collation_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t (a TEXT COLLATE NOCASE, b TEXT, r VARCHAR(5) COLLATE RTRIM,
                                 n INTEGER COLLATE NOCASE, \"odd \"\"name\" TEXT);
                 CREATE VIEW v AS SELECT a, b COLLATE NOCASE AS bn, upper(a) AS ua, b FROM t;",
            )
            .unwrap();
        let defs = discover(&path).unwrap();
        let marked = |table: usize| -> Vec<(String, bool)> {
            defs[table]
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), ComparesAs::of(f).is_some()))
                .collect()
        };
        let owned = |v: &[(&str, bool)]| -> Vec<(String, bool)> {
            v.iter().map(|(n, m)| (n.to_string(), *m)).collect()
        };
        assert_eq!(
            marked(0),
            owned(&[
                ("a", true),
                ("b", false),
                ("r", true),
                ("n", false),
                ("odd \"name", false)
            ])
        );
        assert_eq!(
            marked(1),
            owned(&[("a", true), ("bn", true), ("ua", false), ("b", false)])
        );
    }

    #[tokio::test]
    async fn discovers_tables_and_leaves_the_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE orders (id INTEGER, placed DATE, note TEXT);
                 CREATE VIEW big AS SELECT id FROM orders WHERE id > 10;",
            )
            .unwrap();
        }
        let before: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let source = SqliteSource::open("s", &path).await.unwrap();
        let names: Vec<_> = source.tables().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["big", "orders"]);
        let orders = &source.tables()[1].provider.schema();
        assert_eq!(orders.field(1).data_type(), &DataType::Date32);
        let after: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            before, after,
            "opening must not create files beside the database"
        );
    }
}
