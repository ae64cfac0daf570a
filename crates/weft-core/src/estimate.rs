//! Row estimates for a remote query, so that DataFusion can choose a join's build side
//! across sources: the smaller side is built first, and the larger one, read second, gets
//! the built keys as a dynamic filter ([`crate::dynamic`]).
//!
//! A rough model over the sub-plan sent to the source: each table's row count from the
//! source's own metadata (PostgreSQL's `reltuples`, SQLite's largest rowid), a fixed
//! fraction per filter, a join as large as its larger input (a key joined to a foreign key),
//! a semi or anti join as its outer side. The estimates are only ever `Inexact`: DataFusion
//! compares them to order a join, never to answer a query.

use datafusion::common::stats::Precision;
use datafusion::common::Statistics;
use datafusion::logical_expr::{JoinType, LogicalPlan};

/// The fraction of rows a filter is taken to keep (DataFusion's own default selectivity).
const FILTER: f64 = 0.2;

/// The fraction of rows a grouping is taken to keep.
const GROUPS: f64 = 0.1;

/// Statistics for the result of `plan` with an estimated row count, when every table it
/// reads has one.
pub(crate) fn statistics(plan: &LogicalPlan) -> Statistics {
    let mut statistics = Statistics::new_unknown(plan.schema().as_arrow());
    if let Some(rows) = rows(plan) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rows = rows.max(1.0).round() as usize;
        statistics.num_rows = Precision::Inexact(rows);
    }
    statistics
}

fn rows(plan: &LogicalPlan) -> Option<f64> {
    let input = |i: usize| plan.inputs().get(i).and_then(|p| rows(p));
    Some(match plan {
        LogicalPlan::TableScan(scan) => {
            #[allow(clippy::cast_precision_loss)]
            let table = crate::remote::estimated_rows(&scan.source)? as f64;
            let filtered = table * FILTER.powi(i32::try_from(scan.filters.len()).ok()?);
            match scan.fetch {
                #[allow(clippy::cast_precision_loss)]
                Some(fetch) => filtered.min(fetch as f64),
                None => filtered,
            }
        }
        LogicalPlan::Filter(_) => input(0)? * FILTER,
        LogicalPlan::Projection(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Window(_)
        | LogicalPlan::Limit(_) => input(0)?,
        LogicalPlan::Distinct(_) => input(0)? * GROUPS,
        LogicalPlan::Aggregate(aggregate) if aggregate.group_expr.is_empty() => 1.0,
        LogicalPlan::Aggregate(_) => input(0)? * GROUPS,
        LogicalPlan::Join(join) => {
            let (left, right) = (input(0)?, input(1)?);
            match join.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left,
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => right,
                _ if join.on.is_empty() && join.filter.is_none() => left * right,
                _ => left.max(right),
            }
        }
        LogicalPlan::Union(_) => {
            let mut sum = 0.0;
            for child in plan.inputs() {
                sum += rows(child)?;
            }
            sum
        }
        _ => return None,
    })
}
