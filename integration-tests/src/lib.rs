//! Shared fixtures for Weft's end-to-end tests: the demo data placed in its real sources
//! (SQLite file and Parquet folder) and the same data held locally in DataFusion, so that
//! every answer can be compared across placements.

pub mod pg;
pub mod proxy;
pub mod serve;
pub mod tpch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use weft_core::{Source, SourceTable};
use weft_parquet::ParquetSource;
use weft_planner::WeftContext;
use weft_sqlite::SqliteSource;

/// The demo data, written once per test run into the target folder.
pub fn demo() -> &'static weft_demo::Demo {
    static DEMO: OnceLock<weft_demo::Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = std::env::var_os("WEFT_TEST_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("weft-integration-tests"));
        weft_demo::ensure(&dir).expect("write the demo data")
    })
}

/// The demo's SQLite source.
pub async fn shop() -> Arc<SqliteSource> {
    Arc::new(
        SqliteSource::open("shop", &demo().sqlite)
            .await
            .expect("open shop"),
    )
}

/// The demo's Parquet source.
pub async fn lake() -> Arc<ParquetSource> {
    let lake = demo().lake.display().to_string();
    Arc::new(
        ParquetSource::open("lake", &lake, &[("events", "events/")])
            .await
            .expect("open lake"),
    )
}

/// The demo as users see it: `shop` in SQLite, `lake` in Parquet.
pub async fn federated() -> (WeftContext, Arc<SqliteSource>) {
    let shop = shop().await;
    let mut weft = WeftContext::new();
    weft.register(shop.clone()).expect("register shop");
    weft.register(lake().await).expect("register lake");
    (weft, shop)
}

/// The same data with `shop` held in DataFusion's memory: nothing is pushed anywhere.
pub async fn local() -> WeftContext {
    let mut weft = WeftContext::new();
    weft.register(Arc::new(
        MemorySource::copy_of_sqlite("shop", &demo().sqlite).expect("copy shop"),
    ))
    .expect("register local shop");
    weft.register(lake().await).expect("register lake");
    weft
}

/// Tables held in memory, under the same names a SQLite source would give them.
#[derive(Debug)]
pub struct MemorySource {
    name: String,
    tables: Vec<SourceTable>,
    batches: Vec<(String, RecordBatch)>,
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn tables(&self) -> &[SourceTable] {
        &self.tables
    }
}

impl MemorySource {
    /// Reads every table of a SQLite file with plain `rusqlite` (not through Weft) into
    /// memory, typed as the SQLite connector types them.
    pub fn copy_of_sqlite(name: &str, path: &Path) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut tables = Vec::new();
        let mut batches = Vec::new();
        for table in names {
            let columns: Vec<(String, DataType)> = conn
                .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?
                .query_map([&table], |r| {
                    let declared: String = r.get(1)?;
                    Ok((r.get(0)?, weft_sqlite::arrow_type(&declared)))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut builders: Vec<Column> = columns.iter().map(|(_, t)| Column::new(t)).collect();
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\""))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                for (i, builder) in builders.iter_mut().enumerate() {
                    builder.push(row, i)?;
                }
            }
            let fields: Vec<Field> = columns
                .iter()
                .map(|(n, t)| Field::new(n, t.clone(), true))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let arrays: Vec<ArrayRef> = builders
                .into_iter()
                .zip(&columns)
                .map(|(b, (_, t))| b.finish(t))
                .collect();
            let batch = RecordBatch::try_new(Arc::clone(&schema), arrays).expect("batch");
            batches.push((table.clone(), batch.clone()));
            let mem = MemTable::try_new(schema, vec![vec![batch]]).expect("memtable");
            tables.push(SourceTable {
                schema: weft_sqlite::SCHEMA.to_string(),
                name: table,
                provider: Arc::new(mem),
            });
        }
        Ok(Self {
            name: name.to_string(),
            tables,
            batches,
        })
    }

    /// The data of every table.
    pub fn batches(&self) -> &[(String, RecordBatch)] {
        &self.batches
    }
}

/// The demo's `shop` tables copied into a new Postgres database, in schema `main` so that
/// the same queries name them `shop.main.<table>`. Returns the database's name.
pub async fn load_shop_into_postgres() -> String {
    static DATABASE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DATABASE.get_or_init(load_shop).await.clone()
}

async fn load_shop() -> String {
    let server = pg::server();
    let database = server.create_database("weft_shop").await;
    let local = MemorySource::copy_of_sqlite("shop", &demo().sqlite).expect("copy shop");
    let mut sql = String::from("CREATE SCHEMA main;\n");
    for (table, batch) in local.batches() {
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Int64 => "bigint",
                    DataType::Float64 => "double precision",
                    DataType::Boolean => "boolean",
                    DataType::Date32 => "date",
                    DataType::Timestamp(..) => "timestamp",
                    _ => "text",
                };
                format!("\"{}\" {t}", f.name())
            })
            .collect();
        sql.push_str(&format!(
            "CREATE TABLE main.\"{table}\" ({});\n",
            columns.join(", ")
        ));
        let values = sql_values(batch);
        for chunk in values.chunks(1000) {
            sql.push_str(&format!(
                "INSERT INTO main.\"{table}\" VALUES {};\n",
                chunk.join(", ")
            ));
        }
        sql.push_str(&format!("ANALYZE main.\"{table}\";\n"));
    }
    server
        .execute(&database, &sql)
        .await
        .unwrap_or_else(|e| panic!("load the demo into Postgres: {e}"));
    database
}

/// Each row of the batch as a SQL `(v1, v2, ...)` tuple.
fn sql_values(batch: &RecordBatch) -> Vec<String> {
    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default();
    let formatters: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let values: Vec<String> = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, f)| {
                    if column.is_null(row) {
                        return "NULL".to_string();
                    }
                    let text = f.value(row).to_string();
                    match column.data_type() {
                        DataType::Int64 | DataType::Float64 | DataType::Boolean => text,
                        _ => format!("'{}'", text.replace('\'', "''")),
                    }
                })
                .collect();
            format!("({})", values.join(", "))
        })
        .collect()
}

/// The demo with `shop` in Postgres (a fresh database) and `lake` in Parquet.
pub async fn postgres_placement() -> (WeftContext, Arc<weft_postgres::PostgresSource>) {
    let database = load_shop_into_postgres().await;
    let mut options =
        weft_postgres::PostgresOptions::from_url(&pg::server().url(&database)).expect("url");
    options.schemas = Some(vec!["main".to_string()]);
    let shop = Arc::new(
        weft_postgres::PostgresSource::open("shop", options)
            .await
            .expect("open shop in Postgres"),
    );
    let mut weft = WeftContext::new();
    weft.register(shop.clone()).expect("register shop");
    weft.register(lake().await).expect("register lake");
    (weft, shop)
}

enum Column {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    /// Text, and dates and timestamps read as ISO text then cast.
    Text(StringBuilder),
}

impl Column {
    fn new(t: &DataType) -> Self {
        match t {
            DataType::Int64 => Column::Int(Int64Builder::new()),
            DataType::Float64 => Column::Float(Float64Builder::new()),
            DataType::Boolean => Column::Bool(BooleanBuilder::new()),
            _ => Column::Text(StringBuilder::new()),
        }
    }

    fn push(&mut self, row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<()> {
        match self {
            Column::Int(b) => b.append_option(row.get::<_, Option<i64>>(i)?),
            Column::Float(b) => b.append_option(row.get::<_, Option<f64>>(i)?),
            Column::Bool(b) => b.append_option(row.get::<_, Option<bool>>(i)?),
            Column::Text(b) => b.append_option(row.get::<_, Option<String>>(i)?),
        }
        Ok(())
    }

    fn finish(self, t: &DataType) -> ArrayRef {
        match self {
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Float(mut b) => Arc::new(b.finish()),
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Text(mut b) => {
                let text: ArrayRef = Arc::new(b.finish());
                cast(&text, t).expect("ISO text casts to its declared type")
            }
        }
    }
}

/// The error a sqllogictest database reports: Weft's or the source's message.
#[derive(Debug)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

/// The queries of `sqls` whose answer with pushdown (`weft`) is not the one without
/// (`scans`, every source scanned whole), or that fail there: one line each, for an assert.
pub async fn differences(weft: &WeftContext, scans: &WeftContext, sqls: &[&str]) -> Vec<String> {
    let mut wrong = Vec::new();
    for &sql in sqls {
        let want = answer(scans, sql).await;
        let got = match weft.sql(sql).await {
            Ok(df) => df.collect().await.map(|b| rows(&b)),
            Err(e) => Err(e),
        };
        match got {
            Ok(got) if got == want => {}
            Ok(got) => wrong.push(format!("{sql}: {got:?}, not {want:?}")),
            Err(e) => wrong.push(format!("{sql}: {e}")),
        }
    }
    wrong
}

/// Asserts that `sql` answers the same rows (in any order) with pushdown and without, and
/// that the source of `log` got it as one statement containing one of `words` (what shows
/// that the part that matters was pushed).
pub async fn pushed_whole(
    weft: &WeftContext,
    scans: &WeftContext,
    log: &weft_core::remote::QueryLog,
    sql: &str,
    words: &[&str],
) {
    log.clear();
    let mut got = answer(weft, sql).await;
    let mut want = answer(scans, sql).await;
    got.sort();
    want.sort();
    assert_eq!(got, want, "{sql}");
    let sent = log.statements();
    assert_eq!(sent.len(), 1, "{sql}: {sent:#?}");
    assert!(
        words.iter().any(|w| sent[0].contains(w)),
        "{sql}: not pushed: {}",
        sent[0]
    );
}

/// The rows `sql` answers, panicking with the query on an error.
pub async fn answer(weft: &WeftContext, sql: &str) -> Vec<Vec<String>> {
    let df = weft.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows(&df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// Every value of the batches as text, one row a line: NULL as `NULL`, floats rounded to
/// 10 significant digits (sums computed in another order differ in the last bits).
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, f)| {
                        if column.is_null(row) {
                            return "NULL".to_string();
                        }
                        match column.data_type() {
                            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                                let v: f64 = f.value(row).to_string().parse().unwrap_or(f64::NAN);
                                round_float(v)
                            }
                            _ => f.value(row).to_string(),
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

fn round_float(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = 10 - (v.abs().log10().floor() as i32 + 1);
    let scale = 10f64.powi(digits.max(0));
    let rounded = (v * scale).round() / scale;
    let text = format!("{rounded}");
    if text.contains('.') || text.contains('e') {
        text
    } else {
        format!("{text}.0")
    }
}

/// Polls `condition` every 100 ms until it holds, for up to `seconds`; whether it held.
pub async fn eventually(seconds: u64, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < until {
        if condition().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}
