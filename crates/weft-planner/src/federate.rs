//! Weft's federation rule: cuts out the largest sub-plans that one source can run *exactly*
//! and hands each to datafusion-federation, which turns it into remote SQL.
//!
//! It differs from datafusion-federation's own `FederationOptimizerRule` in two ways:
//!
//! - It runs after all of DataFusion's logical optimizer rules, so filters, projections,
//!   join keys and decorrelated subqueries are already in place when sub-plans are cut: a
//!   `WHERE` on one side of a cross-source join and only the needed columns reach the source.
//! - A sub-plan is cut only as far as every node and expression in it is pushable to that
//!   source ([`crate::pushdown`]); the rest stays in DataFusion. A filter that is partly
//!   pushable is split, and the pushable conjuncts go to the source.

use std::collections::HashMap;
use std::sync::Arc;

use std::ops::ControlFlow;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Column;
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    Aggregate, Expr, Extension, Filter, JoinType, LogicalPlan, Projection, Subquery, SubqueryAlias,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Query, SelectItem, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::unparser::dialect::Dialect;
use datafusion::sql::unparser::Unparser;
use datafusion_federation::FederationProvider;
use weft_core::remote::{remote_table_info, Capabilities};

use crate::avg::{finish_decimal_avg, split_decimal_avg};
use crate::pushdown::{expr_pushable, limits, node_pushable};
use crate::unparse::{cast_literals, float_casts_by_mantissa, restore_names, use_remote_names};

/// A sub-plan that one source can run as a whole.
#[derive(Clone)]
struct Remote {
    provider: Arc<dyn FederationProvider>,
    capabilities: Arc<Capabilities>,
    dialect: Arc<dyn Dialect>,
    /// The sub-plan's result is cut by a LIMIT somewhere inside it.
    limited: bool,
}

impl Remote {
    fn same_database(&self, other: &Remote) -> bool {
        *self.provider == *other.provider
    }
}

/// The optimizer rule; add it after DataFusion's default rules (see
/// [`crate::federated_session_state`]).
#[derive(Debug)]
pub struct FederationRule {
    /// Whether anything above a table scan may run in the source.
    pushdown: bool,
}

impl Default for FederationRule {
    fn default() -> Self {
        Self::new()
    }
}

/// The federation rule runs on a stack of its own when less than [`RULE_RED_ZONE`] is left:
/// it walks the plan and its subqueries and unparses every candidate sub-plan, and
/// DataFusion's unparser recurses once per node and expression level (TPC-H Q20's nested
/// subqueries took more than a test thread's 2 MiB in a debug build). Only address space
/// is reserved; pages are touched as they are used.
const RULE_STACK: usize = 32 * 1024 * 1024;
const RULE_RED_ZONE: usize = 4 * 1024 * 1024;

impl FederationRule {
    /// A new rule.
    pub fn new() -> Self {
        Self { pushdown: true }
    }

    /// A rule that sends each source only table scans (of the columns the query reads) and
    /// leaves every filter, join and aggregate to DataFusion: the naive baseline the
    /// benchmark measures federation against.
    pub fn scans_only() -> Self {
        Self { pushdown: false }
    }
}

impl OptimizerRule for FederationRule {
    fn name(&self) -> &str {
        "weft_federation"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let (plan, remote) = stacker::maybe_grow(RULE_RED_ZONE, RULE_STACK, || {
            visit(plan, config, self.pushdown)
        })?;
        let plan = match remote {
            Some(remote) => federate(plan, &remote, config)?,
            None => plan,
        };
        Ok(Transformed::yes(plan))
    }
}

fn is_federated(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Extension(Extension { node }) if node.name() == "Federated")
}

/// Rewrites `plan` bottom-up. Returns the new plan and, when the whole of it can run in one
/// source, that source (the plan is then returned unchanged, for the caller to cut higher).
fn visit(
    plan: LogicalPlan,
    config: &dyn OptimizerConfig,
    pushdown: bool,
) -> Result<(LogicalPlan, Option<Remote>)> {
    if is_federated(&plan) {
        return Ok((plan, None));
    }
    if let LogicalPlan::TableScan(scan) = &plan {
        let remote = remote_table_info(&scan.source)?.map(|(info, provider)| Remote {
            provider,
            capabilities: info.capabilities,
            dialect: info.dialect,
            limited: scan.fetch.is_some(),
        });
        return Ok((plan, remote));
    }

    // A semi or anti join whose kept side is filtered by a subquery (TPC-H Q22) can run in
    // its source with the filter above it: the join keeps rows of that side only.
    if let Some(filter) = pushdown
        .then(|| filter_over_semi_join(&plan))
        .transpose()?
        .flatten()
    {
        let (join, remote) = visit(filter.input.as_ref().clone(), config, pushdown)?;
        if remote.is_some() {
            let lifted = Filter::try_new(filter.predicate, Arc::new(join))?;
            return visit(LogicalPlan::Filter(lifted), config, pushdown);
        }
    }

    // Subqueries left in expressions are planned on their own; the node that holds them
    // stays in DataFusion, unless they are scalar subqueries that run whole in the source
    // its inputs run in (`with_subqueries`: the node with them not yet cut out).
    let (plan, has_subqueries, with_subqueries) = federate_subqueries(plan, config, pushdown)?;

    let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
    if inputs.is_empty() {
        return Ok((plan, None));
    }
    let mut new_inputs = Vec::with_capacity(inputs.len());
    let mut remotes = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (input, remote) = visit(input, config, pushdown)?;
        new_inputs.push(input);
        remotes.push(remote);
    }

    // The whole node can run remotely when all inputs (and subqueries) run in the same
    // database and the node itself is pushable there.
    if pushdown {
        if let Some(Some(first)) = remotes.first() {
            let same = remotes
                .iter()
                .all(|r| r.as_ref().is_some_and(|r| r.same_database(first)));
            let input_limited = remotes.iter().flatten().any(|r| r.limited);
            let whole = match &with_subqueries {
                _ if !has_subqueries => Some(&plan),
                Some((node, remote)) if remote.same_database(first) => Some(node),
                _ => None,
            };
            if let Some(whole) = whole.filter(|whole| {
                same && node_pushable(whole, &first.capabilities, input_limited)
                    && unparses_cleanly(whole, first.dialect.as_ref())
            }) {
                let remote = Remote {
                    limited: limits(whole)
                        || (input_limited && matches!(whole, LogicalPlan::Projection(_))),
                    ..first.clone()
                };
                return Ok((whole.clone(), Some(remote)));
            }
            // An aggregate held back only by a decimal `avg`: its sum and count go to the
            // source, the average is finished here by DataFusion's rule.
            if let (LogicalPlan::Aggregate(aggregate), true) = (&plan, same && !has_subqueries) {
                if let Some((parts, finish)) = split_decimal_avg(aggregate)? {
                    if node_pushable(&parts, &first.capabilities, input_limited)
                        && unparses_cleanly(&parts, first.dialect.as_ref())
                    {
                        let parts = federate(parts, first, config)?;
                        return Ok((finish_decimal_avg(parts, finish)?, None));
                    }
                }
            }
            // A filter over one remote input: push the conjuncts the source can evaluate.
            if let (LogicalPlan::Filter(filter), [Some(remote)]) = (&plan, remotes.as_slice()) {
                if !remote.limited {
                    if let Some(split) = split_filter(filter, &remote.capabilities)? {
                        let (pushed, kept) = split;
                        let input = LogicalPlan::Filter(Filter::try_new(
                            pushed,
                            Arc::new(new_inputs.remove(0)),
                        )?);
                        let input = federate(input, remote, config)?;
                        let plan = LogicalPlan::Filter(Filter::try_new(kept, Arc::new(input))?);
                        return Ok((plan, None));
                    }
                }
            }
        }
    }

    // Otherwise every input that runs in one source is cut out here.
    let new_inputs = new_inputs
        .into_iter()
        .zip(remotes)
        .map(|(input, remote)| match remote {
            Some(remote) => federate(input, &remote, config),
            None => Ok(input),
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = plan.with_new_exprs(plan.expressions(), new_inputs)?;
    Ok((plan, None))
}

/// Splits a filter into the conjuncts the source can evaluate and the rest; `None` when
/// nothing (or everything) is pushable. A conjunct with a subquery stays: its subquery has
/// been planned (and cut out) on its own.
fn split_filter(filter: &Filter, caps: &Capabilities) -> Result<Option<(Expr, Expr)>> {
    let schema = filter.input.schema();
    let (pushed, kept): (Vec<&Expr>, Vec<&Expr>) = split_conjunction(&filter.predicate)
        .into_iter()
        .partition(|e| expr_pushable(e, schema, caps) && !has_subquery(e));
    if pushed.is_empty() || kept.is_empty() {
        return Ok(None);
    }
    let join = |exprs: Vec<&Expr>| conjunction(exprs.into_iter().cloned());
    match (join(pushed), join(kept)) {
        (Some(pushed), Some(kept)) => Ok(Some((pushed, kept))),
        _ => Ok(None),
    }
}

/// `Filter(p, L) ⋉ R` as `Filter(p, L ⋉ R)` (and the same for anti joins, and for the right
/// side of right semi and anti joins) when `p` holds a subquery, which keeps the join out
/// of the source. The join's result is rows of the filtered side only, so the two are the
/// same rows; `p` is then evaluated on fewer of them.
fn filter_over_semi_join(plan: &LogicalPlan) -> Result<Option<Filter>> {
    let LogicalPlan::Join(join) = plan else {
        return Ok(None);
    };
    let kept = match join.join_type {
        JoinType::LeftSemi | JoinType::LeftAnti => &join.left,
        JoinType::RightSemi | JoinType::RightAnti => &join.right,
        _ => return Ok(None),
    };
    let LogicalPlan::Filter(filter) = kept.as_ref() else {
        return Ok(None);
    };
    if !has_subquery(&filter.predicate) || filter.predicate.is_volatile() {
        return Ok(None);
    }
    let mut lifted = join.clone();
    match join.join_type {
        JoinType::LeftSemi | JoinType::LeftAnti => lifted.left = Arc::clone(&filter.input),
        _ => lifted.right = Arc::clone(&filter.input),
    }
    Filter::try_new(
        filter.predicate.clone(),
        Arc::new(LogicalPlan::Join(lifted)),
    )
    .map(Some)
}

fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}

/// The node with what [`federate_subqueries`] found in its expressions.
type NodeWithSubqueries = (LogicalPlan, bool, Option<(LogicalPlan, Remote)>);

/// Plans the subqueries inside the node's expressions on their own: the node with each
/// subquery cut out where it runs in a source, whether it has any, and, when all of them
/// are uncorrelated scalar subqueries that run whole in one database, the node with them
/// uncut and that database (the node may then run there with them, as `(SELECT ...)`).
fn federate_subqueries(
    plan: LogicalPlan,
    config: &dyn OptimizerConfig,
    pushdown: bool,
) -> Result<NodeWithSubqueries> {
    if !plan.expressions().iter().any(has_subquery) {
        return Ok((plan, false, None));
    }
    // Each subquery's plan, visited, with the source it runs in whole.
    let mut visited: Vec<(LogicalPlan, Option<Remote>)> = Vec::new();
    let mut uncorrelated_scalars = true;
    let uncut = map_subqueries(plan, |subquery, uncorrelated_scalar| {
        uncorrelated_scalars &= uncorrelated_scalar;
        let (inner, remote) = visit(subquery.subquery.as_ref().clone(), config, pushdown)?;
        visited.push((inner.clone(), remote));
        Ok(subquery.with_plan(Arc::new(inner)))
    })?;
    let one_database = match visited.first() {
        Some((_, Some(first))) if uncorrelated_scalars => visited
            .iter()
            .all(|(_, r)| r.as_ref().is_some_and(|r| r.same_database(first)))
            .then(|| first.clone()),
        _ => None,
    };
    // The node with each subquery cut out where it runs in one source, in the same order.
    let mut visited = visited.into_iter();
    let cut = map_subqueries(uncut.clone(), |subquery, _| {
        let (inner, remote) = visited.next().expect("one visit per subquery");
        let inner = match remote {
            Some(remote) => federate(inner, &remote, config)?,
            None => inner,
        };
        Ok(subquery.with_plan(Arc::new(inner)))
    })?;
    Ok((cut, true, one_database.map(|remote| (uncut, remote))))
}

/// The node with `f` applied to each subquery in its expressions, in order; `f` also hears
/// whether the subquery is an uncorrelated scalar one.
fn map_subqueries(
    plan: LogicalPlan,
    mut f: impl FnMut(&Subquery, bool) -> Result<Subquery>,
) -> Result<LogicalPlan> {
    Ok(plan
        .map_expressions(|expr| {
            expr.transform(|e| {
                Ok(match e {
                    Expr::ScalarSubquery(s) => {
                        let uncorrelated = s.outer_ref_columns.is_empty();
                        Transformed::yes(Expr::ScalarSubquery(f(&s, uncorrelated)?))
                    }
                    Expr::Exists(mut x) => {
                        x.subquery = f(&x.subquery, false)?;
                        Transformed::yes(Expr::Exists(x))
                    }
                    Expr::InSubquery(mut x) => {
                        x.subquery = f(&x.subquery, false)?;
                        Transformed::yes(Expr::InSubquery(x))
                    }
                    other => Transformed::no(other),
                })
            })
        })?
        .data)
}

/// Hands a sub-plan to its source's federation optimizer, which replaces it with a
/// `Federated` node that runs it as SQL.
fn federate(
    plan: LogicalPlan,
    remote: &Remote,
    config: &dyn OptimizerConfig,
) -> Result<LogicalPlan> {
    let Some(optimizer) = remote.provider.optimizer() else {
        return Ok(plan);
    };
    // A plan that yields rows but no columns (the input of `count(*)`) selects a constant
    // remotely, and drops it here: `SELECT FROM t` is not SQL.
    if plan.schema().fields().is_empty() {
        let inner = match plan {
            LogicalPlan::Projection(p) => Arc::unwrap_or_clone(p.input),
            other => other,
        };
        let one = Expr::Literal(ScalarValue::Int64(Some(1)), None).alias("__weft_one");
        let inner = LogicalPlan::Projection(Projection::try_new(vec![one], Arc::new(inner))?);
        let remote_plan = optimizer.optimize(prepare_for_unparse(inner)?, config, |_, _| {})?;
        return Ok(LogicalPlan::Projection(Projection::try_new(
            vec![],
            Arc::new(remote_plan),
        )?));
    }
    let original = Arc::clone(plan.schema());
    let remote_plan = optimizer.optimize(prepare_for_unparse(plan)?, config, |_, _| {})?;
    restore_names(remote_plan, &original)
}

/// Reshapes a sub-plan, without changing what it computes, into forms DataFusion's unparser
/// writes correctly:
///
/// - A join input that is a filtered table scan gets a projection on top. The unparser
///   would otherwise fold the input's filter into the join: into `ON` for outer joins, which
///   stops filtering the preserved side, and with the table's name where the query uses an
///   alias.
/// - An aggregate over an empty projection (`count(*)` over a filter) gets a constant column
///   to select: `SELECT FROM t` is not SQL.
/// - The root gets an explicit SELECT list unless it is a projection, sort or limit (a
///   projection over a limit would be written as an unaliased derived table).
/// - A sort by an unaliased computed column sorts by the expression (`sorts_by_computed_column`).
/// - Projections that compute, and common subexpressions, fold into their parent
///   (`inline_common_exprs`); an aggregate over an aggregate reads a named derived table
///   (`name_derived_aggregate`); a filter under a table alias moves above it
///   (`lift_filter_over_alias`); an outer join without a condition gets `ON true`.
/// - Names become the source's, literals are cast where SQL reads them differently, and a
///   decimal cast to double is spelled as Arrow computes it ([`crate::unparse`]). The result has the plan's columns, possibly under other names:
///   `federate` restores them above the federated node.
fn prepare_for_unparse(plan: LogicalPlan) -> Result<LogicalPlan> {
    let original_schema = Arc::clone(plan.schema());
    // A root the loop below cannot see as a parent (an aliased table) gets a projection
    // first; the end makes sure the root is still a SELECT.
    let mut plan = match plan {
        LogicalPlan::SubqueryAlias(_) => project_all(plan)?,
        other => other,
    };
    // Each pass moves column-only projections one step up; a few passes settle any plan
    // the optimizer produces.
    for _ in 0..8 {
        let transformed = plan.transform_up(reshape_node)?;
        plan = transformed.data;
        if !transformed.transformed {
            break;
        }
    }
    let plan = match plan {
        LogicalPlan::Projection(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::TableScan(_) => plan,
        other => project_all(other)?,
    };
    let plan = float_casts_by_mantissa(cast_literals(use_remote_names(plan)?)?)?;
    let same_columns = plan.schema().fields().len() == original_schema.fields().len()
        && plan
            .schema()
            .fields()
            .iter()
            .zip(original_schema.fields())
            .all(|(a, b)| a.data_type() == b.data_type() && a.is_nullable() == b.is_nullable());
    if !same_columns {
        return plan_err!(
            "weft: reshaping a remote sub-plan changed its schema from {original_schema} to {}",
            plan.schema()
        );
    }
    Ok(plan)
}

fn reshape_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let node = node.recompute_schema()?;
    // Without a projection on top, the unparser lists an aggregate's results before its
    // group columns, the reverse of the plan's schema.
    let node = if matches!(node, LogicalPlan::Projection(_)) {
        Transformed::no(node)
    } else {
        node.map_children(|child| match child {
            LogicalPlan::Aggregate(_) => Ok(Transformed::yes(project_all(child)?)),
            other => Ok(Transformed::no(other)),
        })?
    };
    if node.transformed {
        return Ok(Transformed::yes(node.data.recompute_schema()?));
    }
    let node = node.data;
    // Joins put their inputs' filters in derived tables instead (`project_filtered_scan`).
    if matches!(
        node,
        LogicalPlan::Projection(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Distinct(_)
    ) {
        let lifted = node.map_children(lift_filter_over_alias)?;
        if lifted.transformed {
            return Ok(Transformed::yes(lifted.data.recompute_schema()?));
        }
        return reshape_own(lifted.data);
    }
    reshape_own(node)
}

fn reshape_own(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if let Some(inlined) = inline_common_exprs(&node)? {
        return Ok(Transformed::yes(inlined));
    }
    if let Some(named) = name_derived_aggregate(&node)? {
        return Ok(Transformed::yes(named));
    }
    Ok(match node {
        // A derived table over an aggregate names its columns in its SELECT list: the
        // unparser writes `min(t.c)` unnamed where the dialect has no column list after a
        // table alias (SQLite), and the outer query reads `alias."min(t.c)"`.
        LogicalPlan::SubqueryAlias(mut alias) if unnamed_aggregate_columns(&alias.input) => {
            let LogicalPlan::Projection(p) = Arc::unwrap_or_clone(alias.input) else {
                unreachable!("checked by unnamed_aggregate_columns")
            };
            let fields = p.schema.columns();
            let named = p
                .expr
                .into_iter()
                .zip(fields)
                .map(|(e, c)| match e {
                    Expr::Alias(_) => e,
                    e => e.alias(c.name),
                })
                .collect();
            alias.input = Arc::new(LogicalPlan::Projection(Projection::try_new(
                named, p.input,
            )?));
            Transformed::yes(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                alias.input,
                alias.alias,
            )?))
        }
        // A sort by a group column of an aggregate that reads a named derived table
        // (`name_derived_aggregate`) sorts by the derived table's column: the unparser would
        // write the column's old qualifier, a table the FROM clause no longer has.
        LogicalPlan::Sort(sort) if sorts_by_derived_group_column(&sort) => {
            let groups = derived_group_columns(&sort.input).expect("checked above");
            Transformed::yes(sort_replacing_columns(&sort, |c| groups.get(c))?)
        }
        // A sort over a projection that names unaliased computed columns (`ORDER BY 2` of
        // `SELECT c, d - e`) sorts by the expressions themselves: the unparser would write
        // the column's internal name (`ORDER BY "t1.d - t1.e"`), which no source knows.
        LogicalPlan::Sort(sort) if sorts_by_computed_column(&sort) => {
            let LogicalPlan::Projection(projection) = sort.input.as_ref() else {
                unreachable!("checked by sorts_by_computed_column")
            };
            Transformed::yes(sort_replacing_columns(&sort, |c| {
                computed_expr(projection, c)
            })?)
        }
        // An aggregate over a projection of no columns (`count(*)` over a join) reads the
        // projection's input: `SELECT count(1) FROM a JOIN b`, not an unaliased derived table.
        LogicalPlan::Aggregate(aggregate) if no_columns(&aggregate.input).is_some() => {
            let input = Arc::clone(no_columns(&aggregate.input).expect("checked above"));
            Transformed::yes(LogicalPlan::Aggregate(Aggregate::try_new(
                input,
                aggregate.group_expr,
                aggregate.aggr_expr,
            )?))
        }
        // `SELECT FROM t` is not SQL: select a constant instead.
        LogicalPlan::Projection(p) if p.expr.is_empty() => {
            let one = Expr::Literal(ScalarValue::Int64(Some(1)), None).alias("__weft_one");
            Transformed::yes(LogicalPlan::Projection(Projection::try_new(
                vec![one],
                p.input,
            )?))
        }
        // A projection over a column-only projection reads the columns directly.
        LogicalPlan::Projection(outer) if column_only(&outer.input).is_some() => {
            let inner = column_only(&outer.input).expect("checked above");
            Transformed::yes(LogicalPlan::Projection(Projection::try_new(
                outer.expr,
                Arc::clone(inner),
            )?))
        }
        // An aggregate reads the columns of a column-only projection directly: one SELECT
        // block instead of an unaliased derived table.
        LogicalPlan::Aggregate(aggregate) if column_only(&aggregate.input).is_some() => {
            let input = Arc::clone(column_only(&aggregate.input).expect("checked above"));
            Transformed::yes(LogicalPlan::Aggregate(Aggregate::try_new(
                input,
                aggregate.group_expr,
                aggregate.aggr_expr,
            )?))
        }
        // A filter moves below a column-only projection, which the unparser would otherwise
        // turn into an unaliased derived table that the filter cannot name.
        LogicalPlan::Filter(filter) if column_only(&filter.input).is_some() => {
            let LogicalPlan::Projection(p) = Arc::unwrap_or_clone(filter.input) else {
                unreachable!("checked above")
            };
            let moved = LogicalPlan::Filter(Filter::try_new(filter.predicate, p.input)?);
            Transformed::yes(LogicalPlan::Projection(Projection::try_new(
                p.expr,
                Arc::new(moved),
            )?))
        }
        LogicalPlan::Join(mut join) => {
            let left = project_filtered_scan(Arc::unwrap_or_clone(join.left))?;
            let right = project_filtered_scan(Arc::unwrap_or_clone(join.right))?;
            let (left, right) = match join.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti => (
                    left.transform_data(derive_filtered_relation)?,
                    right
                        .transform_data(derive_filtered_relation)?
                        .transform_data(name_once)?,
                ),
                JoinType::RightSemi | JoinType::RightAnti => (
                    left.transform_data(derive_filtered_relation)?
                        .transform_data(name_once)?,
                    right.transform_data(derive_filtered_relation)?,
                ),
                _ => (left, right),
            };
            let mut changed = left.transformed || right.transformed;
            join.left = Arc::new(left.data);
            join.right = Arc::new(right.data);
            // An outer join whose condition the optimizer reduced to nothing (`ON NOT NULL
            // IS NOT NULL`) still needs one: `LEFT JOIN t` is not PostgreSQL.
            if join.on.is_empty()
                && join.filter.is_none()
                && !matches!(join.join_type, JoinType::Inner)
            {
                join.filter = Some(Expr::Literal(ScalarValue::Boolean(Some(true)), None));
                changed = true;
            }
            Transformed::new_transformed(LogicalPlan::Join(join), changed)
        }
        other => Transformed::no(other),
    })
}

/// `sort` with every column its expressions name that `replace` maps replaced.
fn sort_replacing_columns<'a>(
    sort: &datafusion::logical_expr::Sort,
    replace: impl Fn(&Column) -> Option<&'a Expr>,
) -> Result<LogicalPlan> {
    let exprs = sort
        .expr
        .iter()
        .map(|s| {
            let expr = s.expr.clone().transform(|e| match &e {
                Expr::Column(c) => match replace(c) {
                    Some(inner) => Ok(Transformed::yes(inner.clone())),
                    None => Ok(Transformed::no(e)),
                },
                _ => Ok(Transformed::no(e)),
            })?;
            Ok(s.with_expr(expr.data))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogicalPlan::Sort(datafusion::logical_expr::Sort {
        expr: exprs,
        input: Arc::clone(&sort.input),
        fetch: sort.fetch,
    }))
}

/// A chain of filters and aliases over a table scan, with a filter anywhere in it, becomes
/// an aliased derived table. The unparser takes the filters of such a chain out of a join's
/// input and, for a semi or anti join, never writes them back.
fn derive_filtered_relation(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let mut node = &plan;
    let mut filtered = false;
    let mut name = None;
    loop {
        match node {
            LogicalPlan::Filter(f) => {
                filtered = true;
                node = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => {
                name.get_or_insert_with(|| a.alias.clone());
                node = a.input.as_ref();
            }
            LogicalPlan::TableScan(scan) => {
                filtered |= !scan.filters.is_empty();
                name.get_or_insert_with(|| scan.table_name.clone());
                break;
            }
            _ => return Ok(Transformed::no(plan)),
        }
    }
    match name {
        Some(name) if filtered => Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
            SubqueryAlias::try_new(Arc::new(project_all(plan)?), name)?,
        ))),
        _ => Ok(Transformed::no(plan)),
    }
}

/// `alias -> alias -> x` becomes `alias -> projection -> alias -> x`. The unparser writes
/// only the inner alias (`FROM t AS l2`), while the expressions around it name the outer
/// one; a semi join's subquery side (`EXISTS (SELECT 1 FROM ... WHERE outer = inner)`) is
/// where the optimizer leaves two.
fn name_once(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    match plan {
        LogicalPlan::SubqueryAlias(mut alias)
            if matches!(alias.input.as_ref(), LogicalPlan::SubqueryAlias(_)) =>
        {
            alias.input = Arc::new(project_all(Arc::unwrap_or_clone(alias.input))?);
            Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(alias.input, alias.alias)?,
            )))
        }
        plan => Ok(Transformed::no(plan)),
    }
}

/// The group columns of an aggregate over `name_derived_aggregate`'s derived table, as the
/// nodes above it (through column-passing projections) name them, mapped to the derived
/// table's column they read.
fn derived_group_columns(plan: &LogicalPlan) -> Option<HashMap<Column, Expr>> {
    match plan {
        LogicalPlan::Projection(p) => {
            let inner = derived_group_columns(&p.input)?;
            Some(
                p.expr
                    .iter()
                    .filter_map(|e| match e {
                        Expr::Column(c) => inner.get(c).map(|i| (c.clone(), i.clone())),
                        _ => None,
                    })
                    .collect(),
            )
        }
        LogicalPlan::Aggregate(a) => {
            let LogicalPlan::SubqueryAlias(alias) = a.input.as_ref() else {
                return None;
            };
            if alias.alias.table() != DERIVED {
                return None;
            }
            Some(
                a.schema
                    .columns()
                    .into_iter()
                    .zip(&a.group_expr)
                    .map(|(c, g)| (c, g.clone().unalias()))
                    .collect(),
            )
        }
        _ => None,
    }
}

fn sorts_by_derived_group_column(sort: &datafusion::logical_expr::Sort) -> bool {
    let Some(groups) = derived_group_columns(&sort.input) else {
        return false;
    };
    sort.expr
        .iter()
        .any(|s| s.expr.column_refs().iter().any(|c| groups.contains_key(c)))
}

/// A projection over an aggregate with a column it does not name with an alias.
fn unnamed_aggregate_columns(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => {
            matches!(p.input.as_ref(), LogicalPlan::Aggregate(_))
                && p.expr.iter().any(|e| !matches!(e, Expr::Alias(_)))
        }
        _ => false,
    }
}

/// The alias of the derived table `name_derived_aggregate` makes.
const DERIVED: &str = "__weft_derived";

/// An aggregate over an aggregate (`SELECT DISTINCT count(*) * 2 FROM t`) reads it as a
/// derived table; the unparser would leave that table's columns unnamed and the outer
/// SELECT naming them by their internal names (`"count(Int64(1))"`). The inner result gets
/// a SELECT list that names every column and a table alias, which the outer aggregate
/// reads, under its own output names as before.
fn name_derived_aggregate(node: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Aggregate(outer) = node else {
        return Ok(None);
    };
    let exprs: Vec<Expr> = match outer.input.as_ref() {
        LogicalPlan::Aggregate(_) => outer
            .input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect(),
        LogicalPlan::Projection(p) if matches!(p.input.as_ref(), LogicalPlan::Aggregate(_)) => {
            p.expr.clone()
        }
        _ => return Ok(None),
    };
    let inner = match outer.input.as_ref() {
        LogicalPlan::Projection(p) => Arc::clone(&p.input),
        _ => Arc::clone(&outer.input),
    };
    let fields = outer.input.schema().columns();
    let mut names = std::collections::HashSet::new();
    if !fields.iter().all(|c| names.insert(c.name.clone())) {
        return Ok(None);
    }
    let naming = exprs
        .into_iter()
        .zip(&fields)
        .map(|(e, c)| e.unalias().alias(c.name.clone()))
        .collect();
    let derived = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
        Arc::new(LogicalPlan::Projection(Projection::try_new(naming, inner)?)),
        DERIVED,
    )?);
    let read = |e: &Expr| -> Result<Expr> {
        let (qualifier, name) = e.qualified_name();
        let rewritten = e
            .clone()
            .transform(|e| match &e {
                Expr::Column(c) if fields.contains(c) => Ok(Transformed::yes(Expr::Column(
                    Column::new(Some(DERIVED), c.name.clone()),
                ))),
                _ => Ok(Transformed::no(e)),
            })?
            .data;
        Ok(rewritten.unalias().alias_qualified(qualifier, name))
    };
    let group = outer
        .group_expr
        .iter()
        .map(read)
        .collect::<Result<Vec<_>>>()?;
    let aggr = outer
        .aggr_expr
        .iter()
        .map(read)
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(derived),
        group,
        aggr,
    )?)))
}

/// `alias -> filter -> x` becomes `filter -> alias -> x`, the predicate naming the alias:
/// the unparser writes the former as `FROM t AS a WHERE t.c ...`, naming a table the FROM
/// clause has renamed.
fn lift_filter_over_alias(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::SubqueryAlias(alias) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let LogicalPlan::Filter(filter) = alias.input.as_ref() else {
        return Ok(Transformed::no(plan));
    };
    if filter.predicate.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })? {
        return Ok(Transformed::no(plan));
    }
    let inner = Arc::clone(filter.input.schema());
    let renamed = SubqueryAlias::try_new(Arc::clone(&filter.input), alias.alias.clone())?;
    let predicate = filter
        .predicate
        .clone()
        .transform(|e| match &e {
            Expr::Column(c) => match inner.index_of_column(c) {
                Ok(i) => {
                    let (qualifier, field) = renamed.schema.qualified_field(i);
                    Ok(Transformed::yes(Expr::Column(Column::new(
                        qualifier.cloned(),
                        field.name(),
                    ))))
                }
                Err(_) => Ok(Transformed::no(e)),
            },
            _ => Ok(Transformed::no(e)),
        })?
        .data;
    Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
        predicate,
        Arc::new(LogicalPlan::SubqueryAlias(renamed)),
    )?)))
}

/// Folds a computing projection into its parent where the unparser would write it as a
/// derived table whose computed columns have no names the parent could use: a projection
/// or aggregate over any such projection (`SELECT DISTINCT a+1`), a filter or sort over
/// one of DataFusion's common subexpression projections (`__common_expr_1`, which the
/// outer SELECT list would read through a derived table while still naming the table's
/// columns). The parent's expressions compute the expressions instead, under their old
/// names, so the plan's schema stays as it was.
fn inline_common_exprs(node: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    fn computes_common_expr(plan: &LogicalPlan) -> Option<&Projection> {
        match plan {
            LogicalPlan::Projection(p)
                if p.expr.iter().any(
                    |e| matches!(e, Expr::Alias(a) if a.name.starts_with("__common_expr")),
                ) =>
            {
                Some(p)
            }
            _ => None,
        }
    }
    /// `expr` with every column of `inner`'s output replaced by the expression computing
    /// it, named as `expr` was.
    fn inline(expr: &Expr, inner: &Projection) -> Result<Expr> {
        let replaced = expr
            .clone()
            .transform(|e| match &e {
                Expr::Column(c) => match inner.schema.index_of_column(c) {
                    Ok(i) => Ok(Transformed::yes(inner.expr[i].clone().unalias())),
                    Err(_) => Ok(Transformed::no(e)),
                },
                _ => Ok(Transformed::no(e)),
            })?
            .data;
        let (qualifier, name) = expr.qualified_name();
        Ok(
            if replaced.qualified_name() == (qualifier.clone(), name.clone()) {
                replaced
            } else {
                replaced.unalias().alias_qualified(qualifier, name)
            },
        )
    }
    /// A projection that computes something, which its parent can compute instead.
    fn computes(plan: &LogicalPlan) -> Option<&Projection> {
        match plan {
            LogicalPlan::Projection(p)
                if p.expr.iter().any(|e| !matches!(e, Expr::Column(_)))
                    && p.expr.iter().all(|e| {
                        !e.is_volatile()
                            && !e
                                .exists(|e| {
                                    Ok(matches!(
                                        e,
                                        Expr::ScalarSubquery(_)
                                            | Expr::InSubquery(_)
                                            | Expr::Exists(_)
                                    ))
                                })
                                .unwrap_or(true)
                    }) =>
            {
                Some(p)
            }
            _ => None,
        }
    }
    Ok(match node {
        LogicalPlan::Projection(outer) => match computes(&outer.input) {
            Some(inner) => {
                let exprs = outer
                    .expr
                    .iter()
                    .map(|e| inline(e, inner))
                    .collect::<Result<Vec<_>>>()?;
                Some(LogicalPlan::Projection(Projection::try_new(
                    exprs,
                    Arc::clone(&inner.input),
                )?))
            }
            None => None,
        },
        LogicalPlan::Aggregate(aggregate) => match computes(&aggregate.input) {
            Some(inner) => {
                let group = aggregate
                    .group_expr
                    .iter()
                    .map(|e| inline(e, inner))
                    .collect::<Result<Vec<_>>>()?;
                let aggr = aggregate
                    .aggr_expr
                    .iter()
                    .map(|e| inline(e, inner))
                    .collect::<Result<Vec<_>>>()?;
                Some(LogicalPlan::Aggregate(Aggregate::try_new(
                    Arc::clone(&inner.input),
                    group,
                    aggr,
                )?))
            }
            None => None,
        },
        // The filter moves below the projection; the projection then meets its own parent.
        LogicalPlan::Filter(filter) => match computes_common_expr(&filter.input) {
            Some(inner) => {
                let predicate = inline(&filter.predicate, inner)?.unalias();
                let moved =
                    LogicalPlan::Filter(Filter::try_new(predicate, Arc::clone(&inner.input))?);
                Some(LogicalPlan::Projection(Projection::try_new(
                    inner.expr.clone(),
                    Arc::new(moved),
                )?))
            }
            None => None,
        },
        LogicalPlan::Sort(sort) => match computes_common_expr(&sort.input) {
            Some(inner) => {
                let exprs = sort
                    .expr
                    .iter()
                    .map(|s| Ok(s.with_expr(inline(&s.expr, inner)?.unalias())))
                    .collect::<Result<Vec<_>>>()?;
                let moved = LogicalPlan::Sort(datafusion::logical_expr::Sort {
                    expr: exprs,
                    input: Arc::clone(&inner.input),
                    fetch: sort.fetch,
                });
                Some(LogicalPlan::Projection(Projection::try_new(
                    inner.expr.clone(),
                    Arc::new(moved),
                )?))
            }
            None => None,
        },
        _ => None,
    })
}

/// The projection's expression for output column `column` when it is computed and unaliased.
fn computed_expr<'a>(
    projection: &'a Projection,
    column: &datafusion::common::Column,
) -> Option<&'a Expr> {
    let index = projection.schema.index_of_column(column).ok()?;
    let expr = projection.expr.get(index)?;
    (!matches!(expr, Expr::Column(_) | Expr::Alias(_))).then_some(expr)
}

fn sorts_by_computed_column(sort: &datafusion::logical_expr::Sort) -> bool {
    let LogicalPlan::Projection(projection) = sort.input.as_ref() else {
        return false;
    };
    sort.expr.iter().any(|s| {
        s.expr
            .column_refs()
            .iter()
            .any(|c| computed_expr(projection, c).is_some())
    })
}

/// The input of a projection that selects no column: nothing, or only Weft's `__weft_one`.
fn no_columns(plan: &LogicalPlan) -> Option<&Arc<LogicalPlan>> {
    match plan {
        LogicalPlan::Projection(p)
            if p.expr.iter().all(|e| {
                matches!(e, Expr::Alias(a) if a.name == "__weft_one"
                    && matches!(a.expr.as_ref(), Expr::Literal(..)))
            }) =>
        {
            Some(&p.input)
        }
        _ => None,
    }
}

/// The input of `plan` when `plan` is a non-empty projection of plain columns.
fn column_only(plan: &LogicalPlan) -> Option<&Arc<LogicalPlan>> {
    match plan {
        LogicalPlan::Projection(p)
            if !p.expr.is_empty() && p.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            Some(&p.input)
        }
        _ => None,
    }
}

/// Whether the SQL the unparser writes for `plan` is well-formed: every derived table has
/// an alias (outer clauses must be able to name its columns) and no SELECT list is empty.
/// Where it is not, the plan is cut lower.
fn unparses_cleanly(plan: &LogicalPlan, dialect: &dyn Dialect) -> bool {
    struct Check {
        clean: bool,
    }
    impl Visitor for Check {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Derived { alias: None, .. } = factor {
                self.clean = false;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let SetExpr::Select(select) = query.body.as_ref() {
                if select.projection.is_empty() {
                    self.clean = false;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    if plan.schema().fields().is_empty() {
        // Planned as a constant column remotely; see `federate`.
        return true;
    }
    let Ok(prepared) = prepare_for_unparse(plan.clone()) else {
        return false;
    };
    let Ok(statement) = Unparser::new(dialect).plan_to_sql(&prepared) else {
        return false;
    };
    let mut check = Check { clean: true };
    let _ = statement.visit(&mut check);
    if check.clean && !select_list_matches(&statement, &prepared) {
        check.clean = false;
    }
    if !check.clean {
        tracing::debug!(sql = %statement, "not pushed: the unparsed SQL is malformed");
    }
    check.clean
}

/// Whether the statement's result columns are the plan's, in order: the source's rows are
/// read by position.
fn select_list_matches(statement: &Statement, plan: &LogicalPlan) -> bool {
    let Statement::Query(query) = statement else {
        return false;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return true;
    };
    if select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    }) {
        // One `*` stands for the plan's columns; `*, *` (written for a projection over a
        // join of derived tables) repeats them.
        return select.projection.len() == 1;
    }
    let fields = plan.schema().fields();
    if select.projection.len() != fields.len() {
        return false;
    }
    select
        .projection
        .iter()
        .zip(fields.iter())
        .all(|(item, field)| {
            let name = match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.as_str()),
                SelectItem::UnnamedExpr(SqlExpr::Identifier(ident)) => Some(ident.value.as_str()),
                SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(parts)) => {
                    parts.last().map(|p| p.value.as_str())
                }
                _ => None,
            };
            name.is_none_or(|name| name == field.name())
        })
}

/// `[alias] -> filter+ -> scan` becomes `alias -> projection -> filter+ -> scan`. Without
/// an alias of its own, the derived table is named after the scanned table, which is what
/// the join's other expressions call its columns: the unparser would name every such table
/// `derived_projection`.
fn project_filtered_scan(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    fn is_filtered_scan(plan: &LogicalPlan) -> bool {
        match plan {
            LogicalPlan::Filter(f) => match f.input.as_ref() {
                LogicalPlan::TableScan(_) => true,
                other => matches!(other, LogicalPlan::Filter(_)) && is_filtered_scan(other),
            },
            _ => false,
        }
    }
    match plan {
        LogicalPlan::SubqueryAlias(mut alias) if is_filtered_scan(&alias.input) => {
            alias.input = Arc::new(project_all(Arc::unwrap_or_clone(alias.input))?);
            Ok(Transformed::yes(LogicalPlan::SubqueryAlias(alias)))
        }
        plan if is_filtered_scan(&plan) => {
            let mut scan = &plan;
            while let LogicalPlan::Filter(f) = scan {
                scan = f.input.as_ref();
            }
            let LogicalPlan::TableScan(scan) = scan else {
                unreachable!("checked by is_filtered_scan")
            };
            let name = scan.table_name.clone();
            Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(Arc::new(project_all(plan)?), name)?,
            )))
        }
        // A projection of a table's own columns is named after the table too.
        LogicalPlan::Projection(p)
            if is_filtered_scan(&p.input)
                || matches!(p.input.as_ref(), LogicalPlan::TableScan(_)) =>
        {
            let mut scan = p.input.as_ref();
            while let LogicalPlan::Filter(f) = scan {
                scan = f.input.as_ref();
            }
            let LogicalPlan::TableScan(scan) = scan else {
                unreachable!("checked above")
            };
            let name = scan.table_name.clone();
            let own_columns = p
                .schema
                .iter()
                .all(|(qualifier, _)| qualifier == Some(&name));
            let plan = LogicalPlan::Projection(p);
            if !own_columns {
                return Ok(Transformed::no(plan));
            }
            Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(Arc::new(plan), name)?,
            )))
        }
        plan => Ok(Transformed::no(plan)),
    }
}

/// A projection of every column of `plan`, which leaves its schema as it is.
fn project_all(plan: LogicalPlan) -> Result<LogicalPlan> {
    let columns = plan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}
