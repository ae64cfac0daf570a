//! `weft-corpus`: runs SQLite's sqllogictest corpus through Weft with the data placed in
//! DataFusion memory (`local`), in a SQLite file (`sqlite`) or in a PostgreSQL database
//! (`postgres`), and checks the invariant that federation must keep: every query that the
//! `local` placement answers correctly gets the same answer in the other placements.
//!
//! Each file's `statement` records run directly in the placement's database; each `query`
//! record runs through Weft's planner and federation, as a user's query would. Parsing,
//! sorting, hashing and `skipif`/`onlyif` come from the `sqllogictest` crate.
//!
//! `cargo xtask corpus [--placements local,sqlite,postgres] [--json FILE] PATH...`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use clap::{Parser, ValueEnum};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use integration_tests::{pg, DbError};
use sqllogictest::{DBOutput, DefaultColumnType, Record, Runner, TestErrorKind};
use weft_core::Source;
use weft_planner::{session_config, WeftContext};

/// Runs sqllogictest `.test` files through Weft in several placements.
#[derive(Debug, Parser)]
#[command(name = "weft-corpus")]
struct Args {
    /// Where the tables live.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "local,sqlite,postgres"
    )]
    placements: Vec<Placement>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// How many differences to print per file and placement.
    #[arg(long, default_value_t = 3)]
    show: usize,
    /// `.test` files, or folders searched for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Placement {
    Local,
    Sqlite,
    Postgres,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::Local => "local",
            Placement::Sqlite => "sqlite",
            Placement::Postgres => "postgres",
        }
    }
}

/// Where a placement's tables are, and how statements reach them.
enum Store {
    /// The Weft session's own default catalog.
    Local,
    /// A SQLite file written with rusqlite.
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    /// A fresh database on the test PostgreSQL server.
    Postgres { database: String },
}

/// One placement of one file: statements go to the store, queries through Weft.
struct CorpusDb {
    placement: Placement,
    store: Store,
    weft: Option<WeftContext>,
    /// A statement ran since the sources were last discovered.
    dirty: bool,
    /// The statements the last query sent to the source, for the report.
    last_remote: Arc<std::sync::Mutex<Vec<String>>>,
}

const SOURCE: &str = "corpus";

impl CorpusDb {
    async fn new(
        placement: Placement,
        last_remote: Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Result<Self, DbError> {
        let store = match placement {
            Placement::Local => Store::Local,
            Placement::Sqlite => {
                let dir = tempfile::tempdir().map_err(|e| DbError(e.to_string()))?;
                let path = dir.path().join("corpus.db");
                rusqlite::Connection::open(&path).map_err(|e| DbError(e.to_string()))?;
                Store::Sqlite { path, _dir: dir }
            }
            Placement::Postgres => Store::Postgres {
                database: pg::server().create_database("corpus").await,
            },
        };
        let weft = match placement {
            Placement::Local => Some(WeftContext::new()),
            _ => None,
        };
        Ok(Self {
            placement,
            store,
            weft,
            dirty: true,
            last_remote,
        })
    }

    /// Runs a statement in the placement's database itself.
    async fn statement(&mut self, sql: &str) -> Result<(), DbError> {
        self.dirty = true;
        match &self.store {
            // DataFusion's memory tables have no indexes: creating one changes nothing.
            Store::Local if is_index_statement(sql) => {}
            Store::Local => {
                let weft = self.weft.as_ref().expect("local has a session");
                weft.session()
                    .sql(sql)
                    .await
                    .map_err(|e| DbError(e.to_string()))?
                    .collect()
                    .await
                    .map_err(|e| DbError(e.to_string()))?;
            }
            Store::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).map_err(|e| DbError(e.to_string()))?;
                conn.execute_batch(sql)
                    .map_err(|e| DbError(e.to_string()))?;
            }
            Store::Postgres { database } => {
                pg::server()
                    .execute(database, sql)
                    .await
                    .map_err(|e| DbError(format!("{e:?}")))?;
            }
        }
        Ok(())
    }

    /// The Weft session, with the sources discovered again after statements changed them.
    async fn session(&mut self) -> Result<&WeftContext, DbError> {
        if self.dirty && self.placement != Placement::Local {
            let config = session_config().with_default_catalog_and_schema(
                SOURCE,
                if self.placement == Placement::Sqlite {
                    "main"
                } else {
                    "public"
                },
            );
            let mut weft = WeftContext::with_config(config);
            let source: Arc<dyn Source> = match &self.store {
                Store::Sqlite { path, .. } => Arc::new(
                    weft_sqlite::SqliteSource::open(SOURCE, path)
                        .await
                        .map_err(|e| DbError(e.to_string()))?,
                ),
                Store::Postgres { database } => {
                    let mut options =
                        weft_postgres::PostgresOptions::from_url(&pg::server().url(database))
                            .map_err(|e| DbError(e.to_string()))?;
                    options.schemas = Some(vec!["public".to_string()]);
                    Arc::new(
                        weft_postgres::PostgresSource::open(SOURCE, options)
                            .await
                            .map_err(|e| DbError(e.to_string()))?,
                    )
                }
                Store::Local => unreachable!("local is never rediscovered"),
            };
            weft.register(source).map_err(|e| DbError(e.to_string()))?;
            self.weft = Some(weft);
        }
        self.dirty = false;
        Ok(self.weft.as_ref().expect("a session was made above"))
    }

    /// The statements the last query sent to the source.
    fn remote_sql(&self) -> Vec<String> {
        self.weft
            .as_ref()
            .map(|w| {
                w.sources()
                    .iter()
                    .filter_map(|s| s.query_log())
                    .flat_map(|log| log.statements())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn clear_log(&self) {
        if let Some(weft) = &self.weft {
            for log in weft.sources().iter().filter_map(|s| s.query_log()) {
                log.clear();
            }
        }
    }
}

fn is_index_statement(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    matches!(
        words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["CREATE", "INDEX", ..] | ["CREATE", "UNIQUE", "INDEX"] | ["DROP", "INDEX", ..]
    )
}

fn is_query(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .trim_start_matches('(')
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(first.as_str(), "SELECT" | "WITH" | "VALUES")
}

#[async_trait]
impl sqllogictest::AsyncDB for CorpusDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        if !is_query(sql) {
            self.statement(sql).await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        self.clear_log();
        self.last_remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let result = self.query(sql).await;
        *self.last_remote.lock().unwrap_or_else(|e| e.into_inner()) = self.remote_sql();
        result
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        // Not an engine the corpus names: `skipif <engine>` records run, `onlyif` are skipped.
        "weft"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

impl CorpusDb {
    async fn query(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let weft = self.session().await?;
        let df = weft.sql(sql).await.map_err(|e| DbError(e.to_string()))?;
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches = df.collect().await.map_err(|e| DbError(e.to_string()))?;
        Ok(DBOutput::Rows {
            types,
            rows: values(&batches).map_err(DbError)?,
        })
    }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        t if t.is_integer() || t == &DataType::Boolean => DefaultColumnType::Integer,
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
        {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

/// Values as sqllogictest prints them: integers in decimal, reals with three decimals,
/// `NULL`, `(empty)` for an empty string, and control characters as `@`.
fn values(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    for batch in batches {
        let mut columns = Vec::new();
        for column in batch.columns() {
            columns.push(format_column(column).map_err(|e| e.to_string())?);
        }
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[row].clone()).collect());
        }
    }
    Ok(rows)
}

fn format_column(column: &Arc<dyn Array>) -> datafusion::error::Result<Vec<String>> {
    let data_type = column.data_type();
    let mut out = Vec::with_capacity(column.len());
    if data_type.is_integer() {
        let column = cast(column, &DataType::Utf8)?;
        let text = column.as_string::<i32>();
        for i in 0..text.len() {
            out.push(if text.is_null(i) {
                "NULL".into()
            } else {
                text.value(i).to_string()
            });
        }
    } else if data_type == &DataType::Boolean {
        let column = column.as_boolean();
        for i in 0..column.len() {
            out.push(match column.is_null(i) {
                true => "NULL".into(),
                false => u8::from(column.value(i)).to_string(),
            });
        }
    } else if data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        let column = cast(column, &DataType::Float64)?;
        let column = column.as_primitive::<Float64Type>();
        for i in 0..column.len() {
            out.push(match column.is_null(i) {
                true => "NULL".into(),
                false => format!("{:.3}", column.value(i)),
            });
        }
    } else {
        let column = cast(column, &DataType::Utf8)?;
        let text = column.as_string::<i32>();
        for i in 0..text.len() {
            out.push(if text.is_null(i) {
                "NULL".into()
            } else if text.value(i).is_empty() {
                "(empty)".into()
            } else {
                text.value(i)
                    .chars()
                    .map(|c| if (' '..='~').contains(&c) { c } else { '@' })
                    .collect()
            });
        }
    }
    Ok(out)
}

/// Compares values one per line (the corpus's layout) or rows one per line.
fn validator(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    let flat: Vec<String> = actual.iter().flatten().map(normalizer).collect();
    if flat == expected {
        return true;
    }
    let rows: Vec<String> = actual
        .iter()
        .map(|row| row.iter().map(normalizer).collect::<Vec<_>>().join(" "))
        .collect();
    rows == expected
}

/// What happened to one query in one placement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Passed,
    /// Ran, with another answer.
    Failed(String),
    /// Did not run.
    Errored(String),
}

#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
    errored: usize,
    statements_failed: usize,
}

/// A query record's outcome per placement, by line.
type Outcomes = BTreeMap<u32, (String, BTreeMap<Placement, (Outcome, Vec<String>)>)>;

/// One placement's outcomes of a file's queries, by line: SQL, outcome, SQL sent.
type PlacementOutcomes = Vec<(u32, String, Outcome, Vec<String>)>;

async fn run_file(
    path: PathBuf,
    placement: Placement,
) -> Result<(Tally, PlacementOutcomes), String> {
    let path = path.as_path();
    let mut outcomes = PlacementOutcomes::new();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let records = sqllogictest::parse_with_name::<DefaultColumnType>(
        &strip_comments(&text),
        path.display().to_string(),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let last_remote = Arc::new(std::sync::Mutex::new(Vec::new()));
    let db = CorpusDb::new(placement, Arc::clone(&last_remote))
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut db = Some(db);
    let mut runner = Runner::new(move || {
        let db = db.take();
        async move { db.ok_or_else(|| DbError("one connection per file".into())) }
    });
    runner.with_validator(validator);
    // The corpus's expected results were made with sqllogictest's `-ht 8`: more than eight
    // values are compared by their MD5. A file's own `hash-threshold` record still wins.
    runner.with_hash_threshold(8);
    let mut tally = Tally::default();
    for record in records {
        let (is_query, line, sql) = match &record {
            Record::Query { loc, sql, .. } => (true, loc.line(), sql.clone()),
            Record::Statement { loc, sql, .. } => (false, loc.line(), sql.clone()),
            _ => (false, 0, String::new()),
        };
        let result = runner.run_async(record).await;
        if !is_query {
            if let Err(e) = result {
                tally.statements_failed += 1;
                if tally.statements_failed <= 3 {
                    eprintln!(
                        "  {}:{line} [{}] statement failed: {}",
                        path.display(),
                        placement.name(),
                        one_line(&e.kind().to_string())
                    );
                }
            }
            continue;
        }
        if let (Err(e), Ok(_)) = (&result, std::env::var("WEFT_CORPUS_DEBUG")) {
            eprintln!(
                "--- {}:{line} [{}]\n{}",
                path.display(),
                placement.name(),
                e.kind()
            );
        }
        let outcome = match result {
            Ok(sqllogictest::RecordOutput::Nothing) => continue, // skipped by a condition
            Ok(_) => Outcome::Passed,
            Err(e) => match e.kind() {
                TestErrorKind::QueryResultMismatch { actual, .. } => {
                    Outcome::Failed(one_line(&actual))
                }
                other => Outcome::Errored(one_line(&other.to_string())),
            },
        };
        match &outcome {
            Outcome::Passed => tally.passed += 1,
            Outcome::Failed(_) => tally.failed += 1,
            Outcome::Errored(_) => tally.errored += 1,
        }
        let remote = last_remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        outcomes.push((line, sql, outcome, remote));
    }
    Ok((tally, outcomes))
}

/// The corpus puts comments after conditions (`onlyif sqlite # empty RHS`), which the
/// `sqllogictest` parser does not take; they are dropped, keeping every line in its place.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let condition = ["onlyif ", "skipif "].iter().any(|p| line.starts_with(p));
            match line.find(" #") {
                Some(at) if condition => line[..at].trim_end(),
                _ => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_line(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir)
                    .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
                for entry in entries {
                    let entry = entry.map_err(|e| e.to_string())?.path();
                    if entry.is_dir() {
                        stack.push(entry);
                    } else if entry.extension().is_some_and(|e| e == "test") {
                        files.push(entry);
                    }
                }
            }
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(format!(
                "{} is neither a .test file nor a folder",
                path.display()
            ));
        }
    }
    files.sort();
    Ok(files)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let files = match test_files(&args.paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut placements = args.placements.clone();
    placements.sort();
    placements.dedup();
    let started = Instant::now();
    let mut report = Vec::new();
    let mut violations = 0usize;
    for (n, file) in files.iter().enumerate() {
        let mut outcomes = Outcomes::new();
        let mut tallies = BTreeMap::new();
        // The placements of a file run side by side, each in its own database.
        let t0 = Instant::now();
        let runs: Vec<_> = placements
            .iter()
            .map(|&placement| (placement, tokio::spawn(run_file(file.clone(), placement))))
            .collect();
        for (placement, run) in runs {
            let result = run
                .await
                .unwrap_or_else(|e| Err(format!("{}: {e}", file.display())));
            match result {
                Ok((tally, placement_outcomes)) => {
                    eprintln!(
                        "[{}/{}] {} {:<8} passed {:>5}  failed {:>4}  errored {:>4}  ({:.1} s)",
                        n + 1,
                        files.len(),
                        file.display(),
                        placement.name(),
                        tally.passed,
                        tally.failed,
                        tally.errored,
                        t0.elapsed().as_secs_f64()
                    );
                    tallies.insert(placement, tally);
                    for (line, sql, outcome, remote) in placement_outcomes {
                        outcomes
                            .entry(line)
                            .or_insert_with(|| (sql, BTreeMap::new()))
                            .1
                            .insert(placement, (outcome, remote));
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        // The invariant: where local is right, every other placement is right too.
        let mut file_violations = Vec::new();
        let mut local_wrong = Vec::new();
        for (line, (sql, by_placement)) in &outcomes {
            // Without a local placement, each placement is held to the expected results.
            match by_placement.get(&Placement::Local) {
                Some((Outcome::Passed, _)) | None => {}
                Some((outcome, _)) => {
                    local_wrong.push(serde_json::json!({
                        "line": line,
                        "sql": sql,
                        "outcome": format!("{outcome:?}"),
                    }));
                    continue;
                }
            }
            for (placement, (outcome, remote)) in by_placement {
                if *outcome != Outcome::Passed {
                    file_violations.push(serde_json::json!({
                        "line": line,
                        "placement": placement.name(),
                        "sql": sql,
                        "outcome": format!("{outcome:?}"),
                        "remote_sql": remote,
                    }));
                }
            }
        }
        for v in file_violations.iter().take(args.show) {
            let sent: Vec<String> = v["remote_sql"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str()).map(one_line).collect())
                .unwrap_or_default();
            eprintln!(
                "  DIFFERENCE {}:{} [{}] (local is right)\n    sql:  {}\n    got:  {}\n    sent: {}",
                file.display(),
                v["line"],
                v["placement"].as_str().unwrap_or_default(),
                one_line(v["sql"].as_str().unwrap_or_default()),
                v["outcome"].as_str().unwrap_or_default(),
                sent.join(" | ")
            );
        }
        if !local_wrong.is_empty() {
            eprintln!(
                "  {} queries that local DataFusion itself gets wrong or cannot run (listed in --json)",
                local_wrong.len()
            );
        }
        violations += file_violations.len();
        report.push(serde_json::json!({
            "file": file.display().to_string(),
            "placements": tallies.iter().map(|(p, t)| (p.name().to_string(), serde_json::json!({
                "passed": t.passed,
                "failed": t.failed,
                "errored": t.errored,
                "statements_failed": t.statements_failed,
            }))).collect::<serde_json::Map<_, _>>(),
            "local_wrong": local_wrong.len(),
            "local_wrong_queries": local_wrong,
            "violations": file_violations,
        }));
    }
    eprintln!(
        "\n{} files in {:.1} s: {violations} queries where local is right and another placement is not",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "files": report }))
            .expect("the report is JSON");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
