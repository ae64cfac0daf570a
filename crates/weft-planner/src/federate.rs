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

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Extension, Filter, LogicalPlan, Projection};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion_federation::FederationProvider;
use weft_core::remote::{remote_table_info, Capabilities};

use crate::pushdown::{expr_pushable, limits, node_pushable};

/// A sub-plan that one source can run as a whole.
#[derive(Clone)]
struct Remote {
    provider: Arc<dyn FederationProvider>,
    capabilities: Arc<Capabilities>,
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
#[derive(Debug, Default)]
pub struct FederationRule;

impl FederationRule {
    /// A new rule.
    pub fn new() -> Self {
        Self
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
        let (plan, remote) = visit(plan, config)?;
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
fn visit(plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<(LogicalPlan, Option<Remote>)> {
    if is_federated(&plan) {
        return Ok((plan, None));
    }
    if let LogicalPlan::TableScan(scan) = &plan {
        let remote = remote_table_info(&scan.source)?.map(|(info, provider)| Remote {
            provider,
            capabilities: info.capabilities,
            limited: scan.fetch.is_some(),
        });
        return Ok((plan, remote));
    }

    // Subqueries left in expressions are planned on their own; the node that holds them
    // stays in DataFusion.
    let (plan, has_subqueries) = federate_subqueries(plan, config)?;

    let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
    if inputs.is_empty() {
        return Ok((plan, None));
    }
    let mut new_inputs = Vec::with_capacity(inputs.len());
    let mut remotes = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (input, remote) = visit(input, config)?;
        new_inputs.push(input);
        remotes.push(remote);
    }

    // The whole node can run remotely when all inputs run in the same database and the
    // node itself is pushable there.
    if !has_subqueries {
        if let Some(Some(first)) = remotes.first() {
            let same = remotes
                .iter()
                .all(|r| r.as_ref().is_some_and(|r| r.same_database(first)));
            let input_limited = remotes.iter().flatten().any(|r| r.limited);
            if same && node_pushable(&plan, &first.capabilities, input_limited) {
                let remote = Remote {
                    limited: limits(&plan)
                        || (input_limited && matches!(plan, LogicalPlan::Projection(_))),
                    ..first.clone()
                };
                return Ok((plan, Some(remote)));
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
/// nothing (or everything) is pushable.
fn split_filter(filter: &Filter, caps: &Capabilities) -> Result<Option<(Expr, Expr)>> {
    let schema = filter.input.schema();
    let (pushed, kept): (Vec<&Expr>, Vec<&Expr>) = split_conjunction(&filter.predicate)
        .into_iter()
        .partition(|e| expr_pushable(e, schema, caps));
    if pushed.is_empty() || kept.is_empty() {
        return Ok(None);
    }
    let join = |exprs: Vec<&Expr>| conjunction(exprs.into_iter().cloned());
    match (join(pushed), join(kept)) {
        (Some(pushed), Some(kept)) => Ok(Some((pushed, kept))),
        _ => Ok(None),
    }
}

/// Plans the subqueries inside the node's expressions on their own.
fn federate_subqueries(
    plan: LogicalPlan,
    config: &dyn OptimizerConfig,
) -> Result<(LogicalPlan, bool)> {
    let has_subqueries = plan.expressions().iter().any(|e| {
        e.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ))
        })
        .unwrap_or(true)
    });
    if !has_subqueries {
        return Ok((plan, false));
    }
    let plan = plan
        .map_expressions(|expr| {
            expr.transform(|e| {
                let rewrite = |subquery: &datafusion::logical_expr::Subquery| -> Result<_> {
                    let inner = subquery.subquery.as_ref().clone();
                    let (inner, remote) = visit(inner, config)?;
                    let inner = match remote {
                        Some(remote) => federate(inner, &remote, config)?,
                        None => inner,
                    };
                    Ok(subquery.with_plan(Arc::new(inner)))
                };
                Ok(match e {
                    Expr::ScalarSubquery(s) => Transformed::yes(Expr::ScalarSubquery(rewrite(&s)?)),
                    Expr::Exists(mut x) => {
                        x.subquery = rewrite(&x.subquery)?;
                        Transformed::yes(Expr::Exists(x))
                    }
                    Expr::InSubquery(mut x) => {
                        x.subquery = rewrite(&x.subquery)?;
                        Transformed::yes(Expr::InSubquery(x))
                    }
                    other => Transformed::no(other),
                })
            })
        })?
        .data;
    Ok((plan, true))
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
    // An explicit SELECT list: the unparser writes every column the plan's schema has.
    let plan = match plan {
        LogicalPlan::Projection(_) => plan,
        other => {
            let columns = other
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            LogicalPlan::Projection(Projection::try_new(columns, Arc::new(other))?)
        }
    };
    optimizer.optimize(plan, config, |_, _| {})
}
