//! TPC-H for the correctness tests and the benchmark: the eight tables generated in Rust
//! (`tpchgen`), written to Parquet and SQLite and copied into PostgreSQL; the five
//! placements of the tables over those sources; the 22 queries, written once with
//! unqualified table names and qualified for a placement; and the answers at scale factor
//! 0.01, checked in and compared with a tolerance that only forgives representation.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::sql::sqlparser::ast::{visit_relations_mut, Ident, ObjectName, ObjectNamePart};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// A TPC-H table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    Region,
    Nation,
    Supplier,
    Customer,
    Part,
    PartSupp,
    Orders,
    Lineitem,
}

/// Batches of one table, as generated.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

impl Table {
    /// The eight tables, smallest first.
    pub const ALL: [Table; 8] = [
        Table::Region,
        Table::Nation,
        Table::Supplier,
        Table::Customer,
        Table::Part,
        Table::PartSupp,
        Table::Orders,
        Table::Lineitem,
    ];

    /// The table's name in the queries.
    pub fn name(self) -> &'static str {
        match self {
            Table::Region => "region",
            Table::Nation => "nation",
            Table::Supplier => "supplier",
            Table::Customer => "customer",
            Table::Part => "part",
            Table::PartSupp => "partsupp",
            Table::Orders => "orders",
            Table::Lineitem => "lineitem",
        }
    }

    /// The table named `name`.
    pub fn named(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table's primary key, as TPC-H defines it.
    pub fn primary_key(self) -> &'static [&'static str] {
        match self {
            Table::Region => &["r_regionkey"],
            Table::Nation => &["n_nationkey"],
            Table::Supplier => &["s_suppkey"],
            Table::Customer => &["c_custkey"],
            Table::Part => &["p_partkey"],
            Table::PartSupp => &["ps_partkey", "ps_suppkey"],
            Table::Orders => &["o_orderkey"],
            Table::Lineitem => &["l_orderkey", "l_linenumber"],
        }
    }

    /// The schema the table is stored with: the generator's, with text as `Utf8` (the
    /// generator makes `Utf8View`, which every source would turn back into text anyway).
    pub fn schema(self) -> SchemaRef {
        let generated = match self {
            Table::Region => RegionArrow::schema_ref(),
            Table::Nation => NationArrow::schema_ref(),
            Table::Supplier => SupplierArrow::schema_ref(),
            Table::Customer => CustomerArrow::schema_ref(),
            Table::Part => PartArrow::schema_ref(),
            Table::PartSupp => PartSuppArrow::schema_ref(),
            Table::Orders => OrderArrow::schema_ref(),
            Table::Lineitem => LineItemArrow::schema_ref(),
        };
        let fields: Vec<Field> = generated
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Utf8View => DataType::Utf8,
                    t => t.clone(),
                };
                Field::new(f.name(), t, f.is_nullable())
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Generates the table at scale factor `sf`, in batches of the stored schema.
    pub fn generate(self, sf: f64) -> Batches {
        let generated: Batches = match self {
            Table::Region => Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1))),
            Table::Nation => Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1))),
            Table::Supplier => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))),
            Table::Customer => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))),
            Table::Part => Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1))),
            Table::PartSupp => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))),
            Table::Orders => Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1))),
            Table::Lineitem => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))),
        };
        let schema = self.schema();
        Box::new(generated.map(move |batch| {
            let batch = batch?;
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| cast(c, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(Arc::clone(&schema), columns)
        }))
    }
}

/// Any failure while generating or loading the data, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct LoadError {
    context: String,
    message: String,
}

fn failed(context: impl Into<String>) -> impl FnOnce(Box<dyn std::error::Error>) -> LoadError {
    let context = context.into();
    move |e| LoadError {
        context,
        message: e.to_string(),
    }
}

/// Writes each table to `<dir>/<table>.parquet`. `progress` hears about each table.
pub fn write_parquet(
    sf: f64,
    dir: &Path,
    mut progress: impl FnMut(Table, usize),
) -> Result<(), LoadError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| failed(format!("create {}", dir.display()))(e.into()))?;
    for table in Table::ALL {
        let path = dir.join(format!("{}.parquet", table.name()));
        let context = format!("write {}", path.display());
        let rows = (|| -> Result<usize, Box<dyn std::error::Error>> {
            let partial = path.with_extension("parquet.partial");
            let file = std::fs::File::create(&partial)?;
            let mut writer = ArrowWriter::try_new(file, table.schema(), None)?;
            let mut rows = 0;
            for batch in table.generate(sf) {
                let batch = batch?;
                rows += batch.num_rows();
                writer.write(&batch)?;
            }
            writer.close()?;
            std::fs::rename(&partial, &path)?;
            Ok(rows)
        })()
        .map_err(failed(context))?;
        progress(table, rows);
    }
    Ok(())
}

/// How a column is declared in SQLite and PostgreSQL.
fn sql_type(t: &DataType, sqlite: bool) -> String {
    match t {
        DataType::Int32 | DataType::Int64 => "bigint".to_string(),
        // SQLite has no decimal: money is a double there, as it would be in a real SQLite
        // database (Weft reads it as Float64).
        DataType::Decimal128(p, s) if !sqlite => format!("numeric({p},{s})"),
        DataType::Decimal128(..) => "double".to_string(),
        DataType::Date32 => "date".to_string(),
        _ => "text".to_string(),
    }
}

fn create_table(table: Table, schema_name: &str, sqlite: bool) -> String {
    let columns: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{} {} NOT NULL", f.name(), sql_type(f.data_type(), sqlite)))
        .collect();
    // SQLite gets its keys at creation (it cannot add them later); Postgres after the copy.
    let key = if sqlite {
        format!(", PRIMARY KEY ({})", table.primary_key().join(", "))
    } else {
        String::new()
    };
    format!(
        "CREATE TABLE {schema_name}.{} ({}{key})",
        table.name(),
        columns.join(", ")
    )
}

/// Indexes beyond the primary key: what Q17 and Q20's correlated subqueries look up.
fn indexes(table: Table, schema_name: &str, sqlite: bool) -> String {
    // SQLite qualifies the index's name, Postgres the table's.
    let (index, on) = if sqlite {
        (
            format!("{schema_name}.lineitem_part_supp"),
            "lineitem".to_string(),
        )
    } else {
        (
            "lineitem_part_supp".to_string(),
            format!("{schema_name}.lineitem"),
        )
    };
    match table {
        Table::Lineitem => format!("CREATE INDEX {index} ON {on} (l_partkey, l_suppkey);"),
        _ => String::new(),
    }
}

/// Writes the tables into a new SQLite file at `path` (replacing one that is there), dates
/// as ISO text and money as doubles, with TPC-H's primary keys, analyzed.
pub fn write_sqlite(
    sf: f64,
    path: &Path,
    tables: &[Table],
    mut progress: impl FnMut(Table, usize),
) -> Result<(), LoadError> {
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let context = format!("write {}", path.display());
    let mut conn = rusqlite::Connection::open(&partial).map_err(|e| failed(&context)(e.into()))?;
    for &table in tables {
        let rows = (|| -> Result<usize, Box<dyn std::error::Error>> {
            conn.execute_batch(&create_table(table, "main", true))?;
            let tx = conn.transaction()?;
            let schema = table.schema();
            let placeholders = vec!["?"; schema.fields().len()].join(", ");
            let mut rows = 0;
            {
                let mut insert = tx.prepare(&format!(
                    "INSERT INTO {} VALUES ({placeholders})",
                    table.name()
                ))?;
                for batch in table.generate(sf) {
                    let batch = batch?;
                    let texts = text_columns(&batch)?;
                    for row in 0..batch.num_rows() {
                        let values: Vec<rusqlite::types::Value> = batch
                            .columns()
                            .iter()
                            .zip(&texts)
                            .map(|(c, text)| sqlite_value(c.as_ref(), text, row))
                            .collect();
                        insert.execute(rusqlite::params_from_iter(values))?;
                    }
                    rows += batch.num_rows();
                }
            }
            tx.commit()?;
            conn.execute_batch(&format!(
                "{} ANALYZE {};",
                indexes(table, "main", true),
                table.name()
            ))?;
            Ok(rows)
        })()
        .map_err(failed(format!("{context}: table {}", table.name())))?;
        progress(table, rows);
    }
    drop(conn);
    std::fs::rename(&partial, path).map_err(|e| failed(&context)(e.into()))?;
    Ok(())
}

/// Each column of the batch formatted as text, for the columns stored as text.
fn text_columns(batch: &RecordBatch) -> Result<Vec<Vec<String>>, ArrowError> {
    let options = FormatOptions::default();
    batch
        .columns()
        .iter()
        .map(|c| {
            let f = ArrayFormatter::try_new(c.as_ref(), &options)?;
            Ok((0..c.len()).map(|i| f.value(i).to_string()).collect())
        })
        .collect()
}

fn sqlite_value(column: &dyn Array, text: &[String], row: usize) -> rusqlite::types::Value {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int32Type, Int64Type};
    use rusqlite::types::Value;
    match column.data_type() {
        DataType::Int32 => Value::Integer(column.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Value::Integer(column.as_primitive::<Int64Type>().value(row)),
        DataType::Decimal128(..) => Value::Real(text[row].parse().unwrap_or(f64::NAN)),
        _ => Value::Text(text[row].clone()),
    }
}

/// Creates the tables in `schema_name` of the database `client` is connected to, copies
/// the data in with `COPY ... FROM STDIN`, adds TPC-H's primary keys (and an index on
/// lineitem's part and supplier) and analyzes them.
pub async fn load_postgres(
    client: &tokio_postgres::Client,
    sf: f64,
    schema_name: &str,
    tables: &[Table],
    mut progress: impl FnMut(Table, usize),
) -> Result<(), LoadError> {
    use futures::SinkExt as _;
    for &table in tables {
        let context = format!("load {schema_name}.{} into PostgreSQL", table.name());
        let rows = async {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema_name}; DROP TABLE IF EXISTS {schema_name}.{name}; {create}",
                    name = table.name(),
                    create = create_table(table, schema_name, false)
                ))
                .await?;
            let sink = client
                .copy_in::<_, bytes::Bytes>(&format!(
                    "COPY {schema_name}.{} FROM STDIN",
                    table.name()
                ))
                .await?;
            futures::pin_mut!(sink);
            let mut rows = 0;
            for batch in table.generate(sf) {
                let batch = batch?;
                let texts = text_columns(&batch)?;
                let mut out = String::new();
                for row in 0..batch.num_rows() {
                    for (i, column) in texts.iter().enumerate() {
                        if i > 0 {
                            out.push('\t');
                        }
                        copy_escape(&column[row], &mut out);
                    }
                    out.push('\n');
                }
                rows += batch.num_rows();
                sink.send(bytes::Bytes::from(out)).await?;
            }
            sink.finish().await?;
            let ddl = format!(
                "ALTER TABLE {schema_name}.{name} ADD PRIMARY KEY ({}); {} ANALYZE {schema_name}.{name};",
                table.primary_key().join(", "),
                indexes(table, schema_name, false),
                name = table.name()
            );
            client.batch_execute(&ddl).await?;
            Ok::<_, Box<dyn std::error::Error>>(rows)
        }
        .await
        .map_err(failed(context))?;
        progress(table, rows);
    }
    Ok(())
}

/// A value in COPY's text format.
fn copy_escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Where a table is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Parquet,
    Postgres,
    Sqlite,
}

impl Store {
    /// The source's name in Weft: its catalog.
    pub fn source(self) -> &'static str {
        match self {
            Store::Parquet => "lake",
            Store::Postgres => "pg",
            Store::Sqlite => "lite",
        }
    }

    /// The schema the tables are in.
    pub fn schema(self) -> &'static str {
        match self {
            Store::Parquet => "public",
            Store::Postgres => "public",
            Store::Sqlite => "main",
        }
    }
}

/// Where each of the eight tables is, across Parquet, PostgreSQL and SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// All in Parquet: the lower bound.
    Local,
    /// All in one PostgreSQL database.
    Postgres,
    /// All in one SQLite file.
    Sqlite,
    /// lineitem and orders in Parquet, customer, nation and region in PostgreSQL, part,
    /// partsupp and supplier in SQLite.
    Mixed,
    /// orders in PostgreSQL, lineitem in Parquet, the rest in SQLite.
    MixedRemoteFacts,
}

impl Placement {
    /// The five placements.
    pub const ALL: [Placement; 5] = [
        Placement::Local,
        Placement::Postgres,
        Placement::Sqlite,
        Placement::Mixed,
        Placement::MixedRemoteFacts,
    ];

    /// The placement's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Local => "local",
            Placement::Postgres => "postgres",
            Placement::Sqlite => "sqlite",
            Placement::Mixed => "mixed",
            Placement::MixedRemoteFacts => "mixed-remote-facts",
        }
    }

    /// The placement named `name`.
    pub fn named(name: &str) -> Option<Placement> {
        Placement::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Where `table` is stored.
    pub fn store(self, table: Table) -> Store {
        use Table::*;
        match self {
            Placement::Local => Store::Parquet,
            Placement::Postgres => Store::Postgres,
            Placement::Sqlite => Store::Sqlite,
            Placement::Mixed => match table {
                Lineitem | Orders => Store::Parquet,
                Customer | Nation | Region => Store::Postgres,
                Part | PartSupp | Supplier => Store::Sqlite,
            },
            Placement::MixedRemoteFacts => match table {
                Orders => Store::Postgres,
                Lineitem => Store::Parquet,
                _ => Store::Sqlite,
            },
        }
    }

    /// The stores this placement uses.
    pub fn stores(self) -> Vec<Store> {
        let mut stores = Vec::new();
        for table in Table::ALL {
            let store = self.store(table);
            if !stores.contains(&store) {
                stores.push(store);
            }
        }
        stores
    }

    /// The tables this placement keeps in `store`.
    pub fn tables_in(self, store: Store) -> Vec<Table> {
        Table::ALL
            .into_iter()
            .filter(|t| self.store(*t) == store)
            .collect()
    }

    /// `sql` with every TPC-H table name replaced by its fully qualified name in this
    /// placement (`lake.public.lineitem`). Names are replaced in the parsed query, so a
    /// column or alias that happens to share a table's name is left alone.
    pub fn qualify(self, sql: &str) -> Result<String, String> {
        let mut statements =
            Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| format!("parse: {e}"))?;
        let _ = visit_relations_mut(&mut statements, |name: &mut ObjectName| {
            // A CTE's name is a relation too; it is not a table's and is left as it is.
            let table = match name.0.as_slice() {
                [ObjectNamePart::Identifier(ident)] => {
                    Table::named(&ident.value.to_ascii_lowercase())
                }
                _ => None,
            };
            if let Some(table) = table {
                let store = self.store(table);
                *name = ObjectName(
                    [store.source(), store.schema(), table.name()]
                        .into_iter()
                        .map(|p| ObjectNamePart::Identifier(Ident::new(p)))
                        .collect(),
                );
            }
            ControlFlow::<()>::Continue(())
        });
        let mut out = String::new();
        for statement in statements {
            let _ = write!(out, "{statement}");
        }
        Ok(out)
    }
}

/// The 22 queries, numbered from 1: TPC-H's validation parameters, unqualified table names.
pub fn queries() -> [(u32, &'static str); 22] {
    macro_rules! q {
        ($($n:literal => $file:literal),* $(,)?) => {
            [$(($n, include_str!(concat!("../tpch/queries/", $file)))),*]
        };
    }
    q![
        1 => "q01.sql", 2 => "q02.sql", 3 => "q03.sql", 4 => "q04.sql", 5 => "q05.sql",
        6 => "q06.sql", 7 => "q07.sql", 8 => "q08.sql", 9 => "q09.sql", 10 => "q10.sql",
        11 => "q11.sql", 12 => "q12.sql", 13 => "q13.sql", 14 => "q14.sql", 15 => "q15.sql",
        16 => "q16.sql", 17 => "q17.sql", 18 => "q18.sql", 19 => "q19.sql", 20 => "q20.sql",
        21 => "q21.sql", 22 => "q22.sql",
    ]
}

/// The checked-in answer to query `n` at scale factor 0.01: a header line, then one line a
/// row, values separated by tabs.
pub fn answer_sf001(n: u32) -> &'static str {
    macro_rules! a {
        ($($n:literal => $file:literal),* $(,)?) => {
            match n {
                $($n => include_str!(concat!("../tpch/answers/", $file)),)*
                _ => panic!("TPC-H has 22 queries, not {n}"),
            }
        };
    }
    a![
        1 => "q01.tsv", 2 => "q02.tsv", 3 => "q03.tsv", 4 => "q04.tsv", 5 => "q05.tsv",
        6 => "q06.tsv", 7 => "q07.tsv", 8 => "q08.tsv", 9 => "q09.tsv", 10 => "q10.tsv",
        11 => "q11.tsv", 12 => "q12.tsv", 13 => "q13.tsv", 14 => "q14.tsv", 15 => "q15.tsv",
        16 => "q16.tsv", 17 => "q17.tsv", 18 => "q18.tsv", 19 => "q19.tsv", 20 => "q20.tsv",
        21 => "q21.tsv", 22 => "q22.tsv",
    ]
}

/// Every value of the batches as text, one row a line, NULL as `NULL`.
pub fn cells(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Compares an answer with the expected one (tab-separated, header first), in order.
///
/// Strings, dates and integers must be equal. Two numbers with a fraction are equal when
/// they differ by a relative 1e-9 (sums of doubles added in another order) or, written to
/// different numbers of places, by less than one unit in the last place of the shorter one
/// (a decimal average cut to 6 places against a double). Returns the first difference.
pub fn compare(expected: &str, actual: &[Vec<String>]) -> Result<(), String> {
    let mut lines = expected.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    compare_rows(&header, &rows, actual)
}

/// [`compare`] with the expected rows already split; `header` names the columns in errors.
pub fn compare_rows(
    header: &[&str],
    rows: &[Vec<String>],
    actual: &[Vec<String>],
) -> Result<(), String> {
    if rows.len() != actual.len() {
        return Err(format!(
            "{} rows, expected {}{}",
            actual.len(),
            rows.len(),
            actual
                .first()
                .map(|r| format!(" (first row: {})", r.join(" | ")))
                .unwrap_or_default()
        ));
    }
    for (i, (want, got)) in rows.iter().zip(actual).enumerate() {
        if want.len() != got.len() {
            return Err(format!(
                "row {}: {} columns, expected {}",
                i + 1,
                got.len(),
                want.len()
            ));
        }
        for (c, (w, g)) in want.iter().zip(got).enumerate() {
            if !same_value(w, g) {
                return Err(format!(
                    "row {}, column {}: {g}, expected {w} (row: {}; expected: {})",
                    i + 1,
                    header.get(c).copied().unwrap_or("?"),
                    got.join(" | "),
                    want.join(" | ")
                ));
            }
        }
    }
    Ok(())
}

fn same_value(want: &str, got: &str) -> bool {
    if want == got {
        return true;
    }
    let (Ok(w), Ok(g)) = (want.parse::<f64>(), got.parse::<f64>()) else {
        return false;
    };
    let places = |s: &str| s.split_once('.').map(|(_, f)| f.len() as i32);
    let (Some(pw), Some(pg)) = (places(want), places(got)) else {
        // An integer on either side: only the same integer will do.
        return w == g;
    };
    let diff = (w - g).abs();
    // A shorter value may be the longer one cut (truncated or rounded) to its places.
    (pw != pg && diff < 10f64.powi(-pw.min(pg))) || diff <= 1e-9 * w.abs().max(g.abs())
}

/// Where the generated data of one scale factor is kept.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The scale factor.
    pub sf: f64,
    /// `<cache>/sf<sf>`.
    pub dir: PathBuf,
}

impl DataDir {
    /// The data of scale factor `sf` under `cache`.
    pub fn new(cache: &Path, sf: f64) -> Self {
        DataDir {
            sf,
            dir: cache.join(format!("sf{sf}")),
        }
    }

    /// The folder of the Parquet files.
    pub fn parquet(&self) -> PathBuf {
        self.dir.join("parquet")
    }

    /// The SQLite file.
    pub fn sqlite(&self) -> PathBuf {
        self.dir.join("tpch.sqlite")
    }

    /// Writes the Parquet files and the SQLite file unless an earlier run finished them.
    pub fn ensure_files(&self, mut progress: impl FnMut(&str)) -> Result<(), LoadError> {
        let parquet_done = self.dir.join(".parquet-complete");
        if !parquet_done.exists() {
            write_parquet(self.sf, &self.parquet(), |t, rows| {
                progress(&format!("parquet: {} ({rows} rows)", t.name()))
            })?;
            std::fs::write(&parquet_done, b"").map_err(|e| failed("mark parquet")(e.into()))?;
        }
        let sqlite_done = self.dir.join(".sqlite-complete");
        if !sqlite_done.exists() {
            write_sqlite(self.sf, &self.sqlite(), &Table::ALL, |t, rows| {
                progress(&format!("sqlite: {} ({rows} rows)", t.name()))
            })?;
            std::fs::write(&sqlite_done, b"").map_err(|e| failed("mark sqlite")(e.into()))?;
        }
        Ok(())
    }
}

/// A Weft context with the three sources of `data` registered: `lake` (the Parquet
/// folder), `lite` (the SQLite file) and `pg` (schema `public` of the database at
/// `postgres_url`). Every placement reads the same three, only under other names. Without
/// `pushdown`, the sources only scan tables ([`weft_planner::WeftContext::without_pushdown`]).
pub async fn context(
    data: &DataDir,
    postgres_url: &str,
    pushdown: bool,
) -> Result<weft_planner::WeftContext, weft_core::Error> {
    context_with(data, postgres_url, pushdown, None).await
}

/// [`context`] with the PostgreSQL source's `read_ranges` (its default when `None`).
pub async fn context_with(
    data: &DataDir,
    postgres_url: &str,
    pushdown: bool,
    read_ranges: Option<usize>,
) -> Result<weft_planner::WeftContext, weft_core::Error> {
    let files: Vec<(String, String)> = Table::ALL
        .iter()
        .map(|t| (t.name().to_string(), format!("{}.parquet", t.name())))
        .collect();
    let tables: Vec<(&str, &str)> = files
        .iter()
        .map(|(t, f)| (t.as_str(), f.as_str()))
        .collect();
    let lake = weft_parquet::ParquetSource::open(
        Store::Parquet.source(),
        &data.parquet().display().to_string(),
        &tables,
    )
    .await?;
    let lite = weft_sqlite::SqliteSource::open(Store::Sqlite.source(), &data.sqlite()).await?;
    let mut options = weft_postgres::PostgresOptions::from_url(postgres_url)
        .map_err(|e| weft_core::Error::source("pg", "postgres", e))?;
    options.schemas = Some(vec![Store::Postgres.schema().to_string()]);
    options.read_ranges = read_ranges;
    let pg = weft_postgres::PostgresSource::open(Store::Postgres.source(), options).await?;
    let mut weft = if pushdown {
        weft_planner::WeftContext::new()
    } else {
        weft_planner::WeftContext::without_pushdown()
    };
    weft.register(Arc::new(lake))?;
    weft.register(Arc::new(lite))?;
    weft.register(Arc::new(pg))?;
    Ok(weft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualify_names_tables_not_columns_or_ctes() {
        let sql = "WITH revenue AS (SELECT l_suppkey FROM lineitem) \
                   SELECT s_name FROM supplier, revenue WHERE s_suppkey = l_suppkey";
        let q = Placement::Mixed.qualify(sql).unwrap();
        assert!(q.contains("FROM lake.public.lineitem"), "{q}");
        assert!(q.contains("FROM lite.main.supplier, revenue"), "{q}");
    }

    #[test]
    fn values_compare_by_representation_not_by_luck() {
        assert!(same_value("25.522005853257337", "25.522006"));
        assert!(same_value("38.25", "38.250000"));
        assert!(!same_value("38.25", "38.26"));
        assert!(!same_value("25.52", "25.5301"));
        assert!(!same_value("12", "12.5"));
        assert!(!same_value("12", "13"));
        assert!(same_value("1234567.1234567891", "1234567.1234567893"));
        assert!(!same_value("BRAZIL", "brazil"));
        assert!(compare("a\tb\n1\tx\n", &[vec!["1".into(), "x".into()]]).is_ok());
        assert!(compare("a\tb\n1\tx\n", &[]).is_err());
    }
}
