//! Join dynamic filters only where a remote query reads them.
//!
//! A hash join that builds its side first can hand the other side's scan a filter of the
//! keys it saw (DataFusion's dynamic filters). Into a remote query, weft-core writes that
//! filter as SQL, and only the rows that can match leave the source: that is what it is for
//! here. Into a Parquet scan that does not evaluate filters in its decoder (Weft's default,
//! see [`crate::session_config`]), it can only prune row groups, and computing it costs the
//! join more than it saves: the 22 TPC-H queries on Parquet alone ran about 20 % slower with
//! it (`cargo xtask bench --placements local`, SF 1, 2 cores).
//!
//! [`JoinFiltersForRemoteScans`] runs after DataFusion's physical optimizer rules and drops
//! the dynamic filter of every hash join whose probe side reads no remote query. The scan
//! keeps the filter's placeholder, which stays `true`; the join no longer fills it. A session
//! that evaluates filters in the Parquet decoder (the semantic layer's tenant sessions,
//! [`crate::with_filters_in_the_decoder`]) keeps DataFusion's behaviour: there the filter
//! removes rows before they are decoded.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_federation::sql::VirtualExecutionPlan;

/// The physical optimizer rule; add it after DataFusion's own (see
/// [`crate::federated_session_state`]).
#[derive(Debug, Default)]
pub struct JoinFiltersForRemoteScans;

impl PhysicalOptimizerRule for JoinFiltersForRemoteScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if config.execution.parquet.pushdown_filters {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if join.dynamic_expressions_produced().is_empty() || reads_remote(join.right())? {
                return Ok(Transformed::no(node));
            }
            let join = join.builder().reset_state().build_exec()?;
            Ok(Transformed::yes(join))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "weft_join_filters_for_remote_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `plan` sends a query to a remote source.
fn reads_remote(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    let mut found = false;
    plan.apply(|node| {
        found = node.downcast_ref::<VirtualExecutionPlan>().is_some();
        Ok(match found {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    })?;
    Ok(found)
}
