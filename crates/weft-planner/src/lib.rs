//! Weft's federated planner: a DataFusion session in which the largest sub-plans that one
//! source can run exactly are cut out and sent to it as SQL in its own dialect, and
//! everything that crosses sources runs in DataFusion.
//!
//! Knows DataFusion, datafusion-federation and what `weft-core` defines; never names a
//! concrete connector.
//!
//! # Example
//!
//! A federated session over a SQLite file and a folder of Parquet files, built from the
//! library crates alone, with no server and no config file (the same code is
//! `examples/federate.rs`):
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let demo = weft_demo::ensure(dir.path())?;
//! use std::sync::Arc;
//! use weft_parquet::ParquetSource;
//! use weft_planner::WeftContext;
//! use weft_sqlite::SqliteSource;
//!
//! let mut weft = WeftContext::new();
//! weft.register(Arc::new(SqliteSource::open("shop", &demo.sqlite).await?))?;
//! let lake = demo.lake.display().to_string();
//! weft.register(Arc::new(ParquetSource::open("lake", &lake, &[("events", "events/")]).await?))?;
//!
//! let batches = weft.sql(weft_demo::EXAMPLE_QUERY).await?.collect().await?;
//! println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&batches)?);
//! # assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
//!
//! // What each source was asked:
//! for remote in weft.explain(weft_demo::EXAMPLE_QUERY).await?.remote {
//!     println!("{}: {}", remote.source, remote.sql);
//! #   assert!(remote.sql.contains("WHERE `customers`.`vip`"));
//! }
//! # Ok(())
//! # }
//! ```

mod avg;
mod federate;
mod join_filters;
mod pushdown;
mod unparse;

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::dataframe::DataFrame;
use datafusion::error::Result;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::optimizer::Optimizer;
use datafusion::physical_plan::{displayable, DisplayFormatType, ExecutionPlan};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion_federation::FederatedQueryPlanner;
use weft_core::{register_source, Source};

pub use federate::FederationRule;
pub use join_filters::JoinFiltersForRemoteScans;

/// The session config Weft plans with.
pub fn session_config() -> SessionConfig {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(true);
    // Parquet filters prune row groups and pages but are not evaluated inside the decoder
    // (`pushdown_filters`, off by default): with it on, the TPC-H queries ran 23 % slower.
    // Tenant sessions turn it on ([`with_filters_in_the_decoder`]).
    let mut config = config;
    // A hash join hands the other side its keys as an `IN` list up to this many keys per
    // partition (DataFusion's default: 150), past it as a hash table that only DataFusion can
    // read: a remote query gets only the list (weft-core's `dynamic`), and a list of many
    // thousand integers still costs a source less than sending every row.
    let join = &mut config.options_mut().optimizer;
    join.hash_join_inlist_pushdown_max_distinct_values = 50_000;
    join.hash_join_inlist_pushdown_max_size = 1024 * 1024;
    config
}

/// `config` with filters evaluated inside the Parquet decoder, one conjunct after another.
///
/// The semantic layer's tenant sessions use it: a tenant's row filter then removes other
/// tenants' rows before a user predicate that could fail on them runs
/// (`semantic::a_failing_predicate_does_not_reveal_other_tenants_rows`). DataFusion's
/// `FilterExec` evaluates `a AND b` on whole batches and would let such a predicate's error
/// reveal a row. This holds for the Parquet decoder's order only; a filter kept in
/// DataFusion or sent to a SQL source has no such order (see ARCHITECTURE.md).
pub fn with_filters_in_the_decoder(mut config: SessionConfig) -> SessionConfig {
    config.options_mut().execution.parquet.pushdown_filters = true;
    config.options_mut().execution.parquet.reorder_filters = true;
    config
}

/// A DataFusion session state that federates: DataFusion's own optimizer rules first, then
/// [`FederationRule`], and datafusion-federation's query planner for the remote parts; after
/// DataFusion's physical optimizer rules, [`JoinFiltersForRemoteScans`].
pub fn federated_session_state(config: SessionConfig) -> SessionState {
    session_state_with(config, FederationRule::new())
}

fn session_state_with(config: SessionConfig, rule: FederationRule) -> SessionState {
    let mut rules = Optimizer::new().rules;
    rules.push(Arc::new(rule));
    SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(rules)
        .with_query_planner(Arc::new(FederatedQueryPlanner::new()))
        .with_physical_optimizer_rule(Arc::new(JoinFiltersForRemoteScans))
        .build()
}

/// One statement a plan sends to a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSql {
    /// The source's name.
    pub source: String,
    /// The database and credentials it runs in.
    pub compute_context: String,
    /// The SQL exactly as it will be sent.
    pub sql: String,
}

/// What a query will do: the physical plan and the SQL each source is sent.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The physical plan, indented.
    pub plan: String,
    /// Every remote statement, in plan order.
    pub remote: Vec<RemoteSql>,
}

/// A federated session over a set of sources.
#[derive(Clone)]
pub struct WeftContext {
    ctx: SessionContext,
    sources: Vec<Arc<dyn Source>>,
}

impl std::fmt::Debug for WeftContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeftContext")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Default for WeftContext {
    fn default() -> Self {
        Self::new()
    }
}

impl WeftContext {
    /// A session with no sources yet.
    pub fn new() -> Self {
        Self::with_config(session_config())
    }

    /// A session with a custom DataFusion config.
    pub fn with_config(config: SessionConfig) -> Self {
        let state = federated_session_state(config);
        Self {
            ctx: SessionContext::new_with_state(state),
            sources: Vec::new(),
        }
    }

    /// A session that sends each source only scans of the columns a query reads and runs
    /// every filter, join and aggregate in DataFusion ([`FederationRule::scans_only`]):
    /// the naive baseline of `cargo xtask bench`. No dynamic filters either: a join's keys
    /// reach neither a source's SQL nor a Parquet scan.
    pub fn without_pushdown() -> Self {
        let mut config = session_config();
        config
            .options_mut()
            .optimizer
            .enable_dynamic_filter_pushdown = false;
        config
            .options_mut()
            .optimizer
            .enable_join_dynamic_filter_pushdown = false;
        config
            .options_mut()
            .optimizer
            .enable_topk_dynamic_filter_pushdown = false;
        config
            .options_mut()
            .optimizer
            .enable_aggregate_dynamic_filter_pushdown = false;
        Self {
            ctx: SessionContext::new_with_state(session_state_with(
                config,
                FederationRule::scans_only(),
            )),
            sources: Vec::new(),
        }
    }

    /// A session that knows `sources` (for `explain` and the query logs) without showing
    /// their catalogs: the semantic layer's tenant sessions, which see only their model
    /// tables, whose plans already read the sources' tables.
    pub fn without_catalogs(config: SessionConfig, sources: Vec<Arc<dyn Source>>) -> Self {
        let mut weft = Self::with_config(config);
        weft.sources = sources;
        weft
    }

    /// Adds a source: its tables become `<source>.<schema>.<table>`.
    pub fn register(&mut self, source: Arc<dyn Source>) -> weft_core::Result<()> {
        if self
            .sources
            .iter()
            .any(|s| s.name().eq_ignore_ascii_case(source.name()))
        {
            return Err(weft_core::Error::InvalidConfig(format!(
                "a source named `{}` is already registered",
                source.name()
            )));
        }
        register_source(&self.ctx, source.as_ref())?;
        self.sources.push(source);
        Ok(())
    }

    /// The registered sources.
    pub fn sources(&self) -> &[Arc<dyn Source>] {
        &self.sources
    }

    /// The underlying DataFusion session.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans a read-only query: DDL, DML and `SET` are refused.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        self.ctx.sql_with_options(sql, options).await
    }

    /// Plans a query and describes it: the physical plan and the SQL each source is sent.
    pub async fn explain(&self, sql: &str) -> Result<Explanation> {
        let plan = self.sql(sql).await?.create_physical_plan().await?;
        let text = displayable(plan.as_ref()).indent(true).to_string();
        Ok(Explanation {
            plan: text,
            remote: remote_sql(&plan)?,
        })
    }
}

/// The SQL every remote part of a physical plan sends, in plan order.
pub fn remote_sql(plan: &Arc<dyn ExecutionPlan>) -> Result<Vec<RemoteSql>> {
    let mut out = Vec::new();
    plan.apply(|node| {
        if let Some(virtual_plan) =
            node.downcast_ref::<datafusion_federation::sql::VirtualExecutionPlan>()
        {
            let executor = virtual_plan.executor();
            let text = DisplayedPlan(virtual_plan).to_string();
            out.push(RemoteSql {
                source: executor.name().to_string(),
                compute_context: executor.compute_context().unwrap_or_default(),
                sql: final_sql(&text),
            });
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(out)
}

struct DisplayedPlan<'a>(&'a datafusion_federation::sql::VirtualExecutionPlan);

impl std::fmt::Display for DisplayedPlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use datafusion::physical_plan::DisplayAs;
        self.0.fmt_as(DisplayFormatType::Default, f)
    }
}

/// The statement a `VirtualExecutionPlan` sends: datafusion-federation displays the
/// unparsed SQL and then each rewrite of it that changed something; the last one is sent.
fn final_sql(displayed: &str) -> String {
    const STAGES: [&str; 5] = [
        " rewritten_sql_query=",
        " rewritten_ast_analyzer=",
        " rewritten_executor_sql=",
        " rewritten_logical_sql=",
        " base_sql=",
    ];
    for stage in STAGES {
        if let Some(pos) = displayed.find(stage) {
            let rest = &displayed[pos + stage.len()..];
            let end = STAGES
                .iter()
                .filter_map(|s| rest.find(s))
                .min()
                .unwrap_or(rest.len());
            return rest[..end].to_string();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::final_sql;

    #[test]
    fn final_sql_is_the_last_rewrite() {
        assert_eq!(
            final_sql("VirtualExecutionPlan name=a compute_context=b base_sql=SELECT 1 rewritten_executor_sql=SELECT 2"),
            "SELECT 2"
        );
        assert_eq!(
            final_sql("VirtualExecutionPlan name=a compute_context=b base_sql=SELECT 1"),
            "SELECT 1"
        );
    }
}
