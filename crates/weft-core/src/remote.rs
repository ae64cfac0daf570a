//! What every SQL connector shares: the [`Capabilities`] that say which parts of a plan a
//! source computes exactly as DataFusion does, the [`RemoteExecutor`] that wraps a connector's
//! datafusion-federation `SQLExecutor` (naming the source in errors, applying the dialect's
//! AST fixes, and logging every statement), and [`remote_table`], which turns a remote table
//! into a federated DataFusion table.
//!
//! The planner finds a scan's capabilities through [`remote_table_info`]; it never needs to
//! know which connector made the table.

use std::any::Any;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{Statistics, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{LogicalPlan, TableSource};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{
    AstAnalyzer, LogicalOptimizer, SQLExecutor, SQLFederationProvider, SQLTable, SQLTableSource,
};
use datafusion_federation::{get_table_source, FederatedTableProviderAdaptor, FederationProvider};
use futures::{StreamExt, TryStreamExt};

/// What a SQL source computes exactly as DataFusion does, and so may be sent to it.
///
/// The planner sends a part of a plan to a source only when every node and expression in it
/// is covered here; the rest runs in DataFusion. Anything not listed is kept local: a missing
/// capability costs speed, a wrong one costs correct answers.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// The dialect's name, for EXPLAIN and errors (`sqlite`, `postgres`).
    pub dialect: &'static str,
    /// Scalar functions (DataFusion names) the source computes identically for every input.
    pub scalar_functions: HashSet<String>,
    /// Aggregate functions (DataFusion names) the source computes identically.
    pub aggregate_functions: HashSet<String>,
    /// Joins of two tables of the source (inner and outer equi-joins).
    pub joins: bool,
    /// Semi and anti joins (what `EXISTS`, `IN (subquery)` become).
    pub semi_joins: bool,
    /// `GROUP BY` and aggregates.
    pub aggregates: bool,
    /// `ORDER BY` with explicit `NULLS FIRST/LAST`, and `LIMIT`/`OFFSET`.
    pub sort_and_limit: bool,
    /// `/` and `%` give DataFusion's answer, division by zero included.
    pub division: bool,
    /// `LIKE` is case-sensitive, as in DataFusion.
    pub case_sensitive_like: bool,
    /// Comparisons between `DATE` values (and date literals) are exact.
    pub date_comparisons: bool,
    /// Comparisons between timestamps are exact.
    pub timestamp_comparisons: bool,
    /// Decimal arithmetic and comparisons are exact.
    pub decimals: bool,
    /// Casts between numeric types (integer widening, integer to float) agree.
    pub numeric_casts: bool,
    /// Text comparisons and ordering follow byte (code point) order, as DataFusion's do.
    pub binary_text_order: bool,
    /// `date_part('year' | 'month' | 'day', d)` of a `DATE` gives DataFusion's answer once
    /// the connector's AST rewrite has fixed the SQL up (Postgres returns a double, and its
    /// years before 1 AD have no year 0).
    pub date_parts: bool,
    /// `substr(s, start[, count])` of text, with integer literals `start >= 1` and
    /// `count >= 0`, counts characters as DataFusion does (and takes `integer` positions).
    pub substr: bool,
}

impl Capabilities {
    /// A source that gets nothing but scans with projections.
    pub fn scan_only(dialect: &'static str) -> Self {
        Self {
            dialect,
            ..Self::default()
        }
    }
}

/// Arrow field metadata a connector sets on a text column whose values the source compares
/// otherwise than as text (see [`ComparesAs`]). Absent: the source compares them as text.
pub const COMPARES_AS: &str = "weft.compares_as";

/// Arrow field metadata a connector sets on a text column with a collation of its own (not
/// the database's default): its name. Two such columns compare for equality in the source
/// only when their collations are the same.
pub const COLLATION: &str = "weft.collation";

/// How a source compares the values of a column that reaches DataFusion as text but is not
/// text in the source (Postgres's `char(n)`, `uuid`, enums, `json`), or is text compared by
/// a collation (SQLite's `COLLATE NOCASE`). Pushing a comparison,
/// an ordering or a function of such a column would answer by the source's rule instead of
/// DataFusion's, so the planner sends only what both answer alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparesAs {
    /// Two values of the column's type are equal exactly when their texts are, but literals,
    /// ordering and functions follow other rules (`uuid`: any case; an enum: declaration
    /// order; `char(n)`: trailing spaces ignored). The source may group them, count distinct
    /// values and compare them for equality with a column of the same source type.
    Keys,
    /// Not even equality is text equality (`jsonb` compares parsed values, `json` has none,
    /// a `NOCASE` column ignores case):
    /// only the column itself, NULL tests and counts.
    Opaque,
}

impl ComparesAs {
    /// The value of [`COMPARES_AS`] for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keys => "keys",
            Self::Opaque => "opaque",
        }
    }

    /// The kind a field's metadata names, if any.
    pub fn of(field: &datafusion::arrow::datatypes::Field) -> Option<Self> {
        match field.metadata().get(COMPARES_AS).map(String::as_str) {
            Some("keys") => Some(Self::Keys),
            // An unknown value is read as the strictest kind.
            Some(_) => Some(Self::Opaque),
            None => None,
        }
    }
}

/// One statement a source was sent.
#[derive(Debug, Clone)]
pub struct RemoteQuery {
    /// The source's name.
    pub source: String,
    /// The SQL exactly as sent.
    pub sql: String,
    /// Rows received so far.
    pub rows: Arc<AtomicU64>,
    /// Bytes of Arrow data received so far (the buffers of the batches the connector made).
    pub bytes: Arc<AtomicU64>,
}

/// The last statements a source was sent, newest last, and running totals over all of them.
/// Bounded, so a long-running server does not grow it forever.
#[derive(Debug, Clone, Default)]
pub struct QueryLog {
    entries: Arc<Mutex<VecDeque<RemoteQuery>>>,
    totals: Arc<Totals>,
}

/// What a source was sent and returned since start-up (for metrics).
#[derive(Debug, Default)]
struct Totals {
    statements: AtomicU64,
    failed: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
    micros: AtomicU64,
}

/// A snapshot of a source's totals since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceTotals {
    /// Statements sent.
    pub statements: u64,
    /// Statements that ended in an error (cancelled ones are not counted).
    pub failed: u64,
    /// Rows received.
    pub rows: u64,
    /// Bytes of Arrow data received.
    pub bytes: u64,
    /// Time from sending each statement to the end of its result, summed, in microseconds.
    pub micros: u64,
}

const QUERY_LOG_CAPACITY: usize = 1024;

impl QueryLog {
    fn record(&self, query: RemoteQuery) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == QUERY_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(query);
    }

    /// The statements logged so far, oldest first.
    pub fn queries(&self) -> Vec<RemoteQuery> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }

    /// The SQL of the statements logged so far, oldest first.
    pub fn statements(&self) -> Vec<String> {
        self.queries().into_iter().map(|q| q.sql).collect()
    }

    /// What the source was sent and returned since start-up; not reset by [`QueryLog::clear`].
    pub fn totals(&self) -> SourceTotals {
        let t = &self.totals;
        SourceTotals {
            statements: t.statements.load(Ordering::Relaxed),
            failed: t.failed.load(Ordering::Relaxed),
            rows: t.rows.load(Ordering::Relaxed),
            bytes: t.bytes.load(Ordering::Relaxed),
            micros: t.micros.load(Ordering::Relaxed),
        }
    }

    /// Forgets everything logged so far.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

pub use crate::instants::arrow_cast_instants;

/// A post-unparse fix of the statement for one dialect.
pub type AstRewrite = fn(Statement) -> Result<Statement>;

/// Wraps a connector's `SQLExecutor`: the unparse uses Weft's dialect and AST fixes, every
/// statement is logged and traced, and errors name the source.
#[derive(Clone)]
pub struct RemoteExecutor {
    source_name: String,
    kind: &'static str,
    compute_context: String,
    inner: Arc<dyn SQLExecutor>,
    dialect: Arc<dyn Dialect>,
    ast_rewrite: Option<AstRewrite>,
    /// Write the dynamic filters of joins into the statement ([`crate::dynamic`]), with
    /// `IN` lists of at most this many values.
    dynamic_filters: Option<usize>,
    log: QueryLog,
}

impl std::fmt::Debug for RemoteExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteExecutor")
            .field("source", &self.source_name)
            .field("kind", &self.kind)
            .field("compute_context", &self.compute_context)
            .finish()
    }
}

impl RemoteExecutor {
    /// Wraps `inner` for the source `source_name`.
    ///
    /// `compute_context` must identify the database *and* the credentials used to reach it
    /// (for example `sqlite:/abs/path.db` or `postgres://user@host:5432/db`): two tables are
    /// merged into one remote query exactly when their contexts are equal.
    pub fn new(
        source_name: impl Into<String>,
        kind: &'static str,
        compute_context: impl Into<String>,
        inner: Arc<dyn SQLExecutor>,
        dialect: Arc<dyn Dialect>,
    ) -> Self {
        Self {
            source_name: source_name.into(),
            kind,
            compute_context: compute_context.into(),
            inner,
            dialect,
            ast_rewrite: None,
            dynamic_filters: None,
            log: QueryLog::default(),
        }
    }

    /// Sets a rewrite applied to every statement after unparsing.
    pub fn with_ast_rewrite(mut self, rewrite: AstRewrite) -> Self {
        self.ast_rewrite = Some(rewrite);
        self
    }

    /// Writes the dynamic filters DataFusion pushes to a remote query (a hash join's keys)
    /// into its statement, which is then sent when its result is first asked for, once the
    /// join has built its side. For sources that read `WITH t(c0, ...) AS (...)` and compare
    /// integers exactly as DataFusion does. A join's keys are sent as an `IN` list of at
    /// most `max_list` values (past that, only their range): a long list can cost a source
    /// more than the rows it saves.
    pub fn with_dynamic_filters(mut self, max_list: usize) -> Self {
        self.dynamic_filters = Some(max_list);
        self
    }

    /// The statements sent through this executor.
    pub fn log(&self) -> &QueryLog {
        &self.log
    }

    /// Sends `query` and streams its result, logging and counting it.
    fn start(&self, query: String, schema: SchemaRef) -> Result<SendableRecordBatchStream> {
        tracing::debug!(source = %self.source_name, sql = %query, "remote query");
        let rows = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        self.log.record(RemoteQuery {
            source: self.source_name.clone(),
            sql: query.clone(),
            rows: Arc::clone(&rows),
            bytes: Arc::clone(&bytes),
        });
        let context = format!("source `{}` ({})", self.source_name, self.kind);
        let mut running = Running {
            source: self.source_name.clone(),
            sql: query.clone(),
            totals: Arc::clone(&self.log.totals),
            started: std::time::Instant::now(),
            rows: Arc::clone(&rows),
            bytes: Arc::clone(&bytes),
            outcome: None,
        };
        running.totals.statements.fetch_add(1, Ordering::Relaxed);
        let stream = match self.inner.execute(&query, Arc::clone(&schema), &[]) {
            Ok(stream) => stream,
            Err(e) => {
                running.ended(false);
                return Err(e.context(context));
            }
        };
        let stream = stream
            .map(Some)
            .chain(futures::stream::once(async { None }))
            .filter_map(move |batch| {
                let item = match batch {
                    Some(Ok(batch)) => {
                        let size = data_size(&batch);
                        rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        bytes.fetch_add(size, Ordering::Relaxed);
                        Some(Ok(batch))
                    }
                    Some(Err(e)) => {
                        running.ended(false);
                        Some(Err(e.context(context.clone())))
                    }
                    None => {
                        running.ended(true);
                        None
                    }
                };
                std::future::ready(item)
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[async_trait]
impl SQLExecutor for RemoteExecutor {
    fn name(&self) -> &str {
        &self.source_name
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.compute_context.clone())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::clone(&self.dialect)
    }

    fn logical_optimizer(&self) -> Option<LogicalOptimizer> {
        self.inner.logical_optimizer()
    }

    fn ast_analyzer(&self) -> Option<AstAnalyzer> {
        let mut inner = self.inner.ast_analyzer();
        let rewrite = self.ast_rewrite;
        let kind = self.kind;
        Some(Box::new(move |statement| {
            let statement = match inner.as_mut() {
                Some(analyzer) => analyzer(statement)?,
                None => statement,
            };
            let statement = match rewrite {
                Some(rewrite) => rewrite(statement)?,
                None => statement,
            };
            let statement = crate::instants::zoned_literals(statement);
            exact_strings(crate::precedence::explicit_precedence(statement), kind)
        }))
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream> {
        let Some(max_list) = self.dynamic_filters.filter(|_| !filters.is_empty()) else {
            return self.start(query.to_string(), schema);
        };
        // The filters are read when the result is first asked for: a hash join asks for its
        // probe side only once it has built the other side and set the filter.
        let (this, query, filters) = (self.clone(), query.to_string(), filters.to_vec());
        let result_schema = Arc::clone(&schema);
        let stream = futures::stream::once(async move {
            let query =
                crate::dynamic::narrowed(&query, &schema, &filters, max_list).unwrap_or(query);
            this.start(query, schema)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_schema,
            stream,
        )))
    }

    async fn statistics(&self, plan: &LogicalPlan) -> Result<Statistics> {
        Ok(crate::estimate::statistics(plan))
    }

    async fn table_names(&self) -> Result<Vec<String>> {
        self.inner.table_names().await
    }

    async fn get_table_schema(&self, table_name: &str) -> Result<SchemaRef> {
        self.inner.get_table_schema(table_name).await
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.inner.metrics()
    }
}

/// One statement's result while it streams: adds to the source's totals and logs a line with
/// its rows, bytes and time when it ends or is dropped.
struct Running {
    source: String,
    sql: String,
    totals: Arc<Totals>,
    started: std::time::Instant,
    /// The statement's counts, which its [`RemoteQuery`] in the log shares.
    rows: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    /// `Some(true)` once the result ended, `Some(false)` on an error, `None` if abandoned.
    outcome: Option<bool>,
}

impl Running {
    /// The first end counts: an error, or the end of the result.
    fn ended(&mut self, ok: bool) {
        self.outcome.get_or_insert(ok);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let t = &self.totals;
        let (rows, bytes) = (
            self.rows.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        );
        t.rows.fetch_add(rows, Ordering::Relaxed);
        t.bytes.fetch_add(bytes, Ordering::Relaxed);
        t.micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if self.outcome == Some(false) {
            t.failed.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = match self.outcome {
            Some(true) => "done",
            Some(false) => "failed",
            None => "abandoned",
        };
        tracing::debug!(
            source = %self.source, rows, bytes,
            seconds = elapsed.as_secs_f64(), outcome, sql = %self.sql, "remote query ended"
        );
    }
}

/// Writes every string literal so that the source reads back exactly its value.
///
/// sqlparser prints a string literal's value between quotes doubling only the quotes that
/// are not already next to another quote or after a backslash, so a value holding `''` or
/// `\'` would be read back as another value, or end the literal early and let the rest of
/// the value be read as SQL. Such values (and, for Postgres, any with a quote or backslash,
/// whatever `standard_conforming_strings` says) are written in a form that has no such
/// ambiguity: `E'...'` for Postgres, `CAST(X'<utf-8 hex>' AS TEXT)` for SQLite; a source
/// with neither gets an error rather than a statement that may mean something else.
fn exact_strings(mut statement: Statement, kind: &'static str) -> Result<Statement> {
    use datafusion::sql::sqlparser::ast::{
        Expr, Ident, ObjectName, Query, Select, SelectItem, TableAlias, TableFactor, Value,
        VisitMut, VisitorMut,
    };
    use std::ops::ControlFlow;

    struct Strings {
        kind: &'static str,
        refused: Option<String>,
    }

    impl Strings {
        /// Refuses a name that, printed, would end its quotes early: sqlparser leaves a quote
        /// after a backslash as it is, so an alias such as ``a\` , (SELECT ...) AS x --``
        /// would add a column and comment out the rest of the statement. (A pair of quotes
        /// inside a name is printed as it is too, which reads back as one quote: the name
        /// changes, the same way wherever it is printed, but stays one name.)
        fn identifier(&mut self, ident: &Ident) -> ControlFlow<()> {
            let value = &ident.value;
            let safe = match ident.quote_style {
                Some(q @ ('"' | '`' | '\'')) => !value
                    .chars()
                    .zip(value.chars().skip(1))
                    .any(|pair| pair == ('\\', q)),
                Some('[') => !value.contains(']'),
                Some(_) => false,
                None => {
                    value
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                        && !value.starts_with(|c: char| c.is_ascii_digit() || c == '$')
                }
            };
            if safe {
                return ControlFlow::Continue(());
            }
            self.refused = Some(format!(
                "the name {value:?} cannot be written unambiguously in {} SQL",
                self.kind
            ));
            ControlFlow::Break(())
        }

        fn alias(&mut self, alias: Option<&TableAlias>) -> ControlFlow<()> {
            if let Some(alias) = alias {
                self.identifier(&alias.name)?;
                for column in &alias.columns {
                    self.identifier(&column.name)?;
                }
            }
            ControlFlow::Continue(())
        }
    }

    impl VisitorMut for Strings {
        type Break = ();

        fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
            for part in &relation.0 {
                if let Some(ident) = part.as_ident() {
                    self.identifier(ident)?;
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.alias(Some(&cte.alias))?;
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
            for item in &select.projection {
                if let SelectItem::ExprWithAlias { alias, .. } = item {
                    self.identifier(alias)?;
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            match factor {
                TableFactor::Table { alias, .. }
                | TableFactor::Derived { alias, .. }
                | TableFactor::TableFunction { alias, .. }
                | TableFactor::Function { alias, .. }
                | TableFactor::UNNEST { alias, .. }
                | TableFactor::NestedJoin { alias, .. } => self.alias(alias.as_ref()),
                _ => ControlFlow::Continue(()),
            }
        }

        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(ident) => self.identifier(ident),
                Expr::CompoundIdentifier(idents) => {
                    idents.iter().try_for_each(|ident| self.identifier(ident))
                }
                _ => ControlFlow::Continue(()),
            }
        }

        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let Expr::Value(value) = expr else {
                return ControlFlow::Continue(());
            };
            let Value::SingleQuotedString(s) = &value.value else {
                return ControlFlow::Continue(());
            };
            let ambiguous = s.contains("''") || s.contains("\\'");
            match self.kind {
                "postgres" if s.contains('\'') || s.contains('\\') => {
                    value.value = Value::EscapedStringLiteral(s.clone());
                }
                "sqlite" if ambiguous => {
                    let hex: String = s.bytes().map(|b| format!("{b:02X}")).collect();
                    let sql = format!("CAST(X'{hex}' AS TEXT)");
                    let dialect = datafusion::sql::sqlparser::dialect::SQLiteDialect {};
                    match datafusion::sql::sqlparser::parser::Parser::new(&dialect)
                        .try_with_sql(&sql)
                        .and_then(|mut p| p.parse_expr())
                    {
                        Ok(cast) => *expr = cast,
                        Err(e) => {
                            self.refused = Some(e.to_string());
                            return ControlFlow::Break(());
                        }
                    }
                }
                _ if ambiguous => {
                    self.refused = Some(format!(
                        "the string {s:?} cannot be written unambiguously in {} SQL",
                        self.kind
                    ));
                    return ControlFlow::Break(());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }

    let mut strings = Strings {
        kind,
        refused: None,
    };
    let _ = statement.visit(&mut strings);
    match strings.refused {
        Some(why) => Err(DataFusionError::NotImplemented(why)),
        None => Ok(statement),
    }
}

/// The bytes of data a batch holds: its arrays' used buffer slices, not the capacity
/// allocated for them.
fn data_size(batch: &datafusion::arrow::array::RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size()) as u64
        })
        .sum()
}

/// A table of a SQL source as datafusion-federation sees it, carrying what the planner needs
/// to decide how much of a plan the source may run.
#[derive(Debug)]
struct SourceSqlTable {
    remote_name: TableReference,
    schema: SchemaRef,
    info: RemoteTableInfo,
    /// About how many rows the table holds, by the source's metadata.
    rows: Option<u64>,
}

impl SQLTable for SourceSqlTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_reference(&self) -> TableReference {
        self.remote_name.clone()
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// What the planner learns about a scan of a remote table.
#[derive(Clone)]
pub struct RemoteTableInfo {
    /// The source's name.
    pub source: String,
    /// What the source may be sent.
    pub capabilities: Arc<Capabilities>,
    /// The dialect the source's SQL is written in.
    pub dialect: Arc<dyn Dialect>,
}

impl std::fmt::Debug for RemoteTableInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTableInfo")
            .field("source", &self.source)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// One federation provider per source, shared by its tables.
#[derive(Debug, Clone)]
pub struct RemoteDatabase {
    provider: Arc<SQLFederationProvider>,
    info: RemoteTableInfo,
}

impl RemoteDatabase {
    /// A database reached through `executor`, able to run what `capabilities` says.
    pub fn new(executor: Arc<RemoteExecutor>, capabilities: Capabilities) -> Self {
        let info = RemoteTableInfo {
            source: executor.source_name.clone(),
            capabilities: Arc::new(capabilities),
            dialect: executor.dialect(),
        };
        let executor: Arc<dyn SQLExecutor> = executor;
        Self {
            provider: Arc::new(SQLFederationProvider::new(executor)),
            info,
        }
    }

    /// A federated table: `remote_name` is how the source itself names the table; `rows`,
    /// about how many rows it holds (the source's estimate, for ordering joins).
    pub fn table(
        &self,
        remote_name: TableReference,
        schema: SchemaRef,
        rows: Option<u64>,
    ) -> Arc<dyn TableProvider> {
        let table = Arc::new(SourceSqlTable {
            remote_name,
            schema,
            info: self.info.clone(),
            rows,
        });
        let source = SQLTableSource::new_with_table(Arc::clone(&self.provider), table);
        Arc::new(FederatedTableProviderAdaptor::new(Arc::new(source)))
    }
}

/// For a scan of a Weft remote table: which source it belongs to and what it may be sent,
/// with the federation provider that runs it. `None` for every other table.
pub fn remote_table_info(
    source: &Arc<dyn TableSource>,
) -> Result<Option<(RemoteTableInfo, Arc<dyn FederationProvider>)>> {
    source_table(source, |table, federated| {
        (table.info.clone(), federated.federation_provider())
    })
}

/// About how many rows a scanned remote table holds, if its source said.
pub(crate) fn estimated_rows(source: &Arc<dyn TableSource>) -> Option<u64> {
    source_table(source, |table, _| table.rows).ok()??
}

/// `f` of the Weft remote table a scan reads, `None` for every other table.
fn source_table<R>(
    source: &Arc<dyn TableSource>,
    f: impl FnOnce(&SourceSqlTable, &Arc<dyn datafusion_federation::FederatedTableSource>) -> R,
) -> Result<Option<R>> {
    let Some(federated) = get_table_source(source)? else {
        return Ok(None);
    };
    let Some(sql_source) = (federated.as_ref() as &dyn Any).downcast_ref::<SQLTableSource>() else {
        return Ok(None);
    };
    let Some(table) = sql_source.table.as_any().downcast_ref::<SourceSqlTable>() else {
        return Ok(None);
    };
    Ok(Some(f(table, &federated)))
}

/// For a scan of a federated SQL table: the name its source knows it by (`public.orders`
/// where the query says `pg.public.orders`). `None` for every other table.
pub fn remote_table_name(source: &Arc<dyn TableSource>) -> Result<Option<TableReference>> {
    let Some(federated) = get_table_source(source)? else {
        return Ok(None);
    };
    Ok((federated.as_ref() as &dyn Any)
        .downcast_ref::<SQLTableSource>()
        .map(|s| s.table_reference()))
}

/// Turns a connector's error into DataFusion's, naming the source.
pub fn source_error(source: &str, kind: &str, message: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(Box::new(crate::Error::source(
        source,
        kind,
        message.to_string(),
    )))
}
