//! The last rewrites of a remote sub-plan before datafusion-federation unparses it: names
//! the source knows, and literals that mean in SQL what they mean in the plan.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, ScalarValue, TableReference};
use datafusion::error::Result;
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    binary_expr, cast, Aggregate, Expr, ExprSchemable, LogicalPlan, Operator, Projection,
};
use weft_core::remote::remote_table_name;

type Renames = [(TableReference, TableReference)];

/// Gives every table the name its source knows it by (`public.tab1` for the query's
/// `tab1`), together with every column qualified by it and every derived column name that
/// contains it (`count(public.tab1.a)`), the root's output columns included: see
/// [`restore_names`].
///
/// datafusion-federation renames too when it unparses, but not the names of aliases (the
/// optimizer's `count(a) AS "count(- - tab1.a)"`, read above by that name) nor table scan
/// filters, which then name a table the SQL does not have. After this rewrite its renaming
/// has nothing left to do.
pub(crate) fn use_remote_names(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut renames: Vec<(TableReference, TableReference)> = Vec::new();
    let mut ambiguous = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Some(remote) = remote_table_name(&scan.source)? {
                match renames.iter().find(|(local, _)| local == &scan.table_name) {
                    Some((_, known)) => ambiguous |= known != &remote,
                    None => {
                        ambiguous |= renames.iter().any(|(_, r)| r == &remote);
                        renames.push((scan.table_name.clone(), remote));
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    renames.retain(|(local, remote)| local != remote);
    // Two names for one remote table would meet in one namespace: leave the plan alone.
    if renames.is_empty() || ambiguous {
        return Ok(plan);
    }
    Ok(plan
        .transform_up_with_subqueries(|node| rename_node(node, &renames))?
        .data)
}

fn rename_node(node: LogicalPlan, renames: &Renames) -> Result<Transformed<LogicalPlan>> {
    if let LogicalPlan::TableScan(mut scan) = node {
        let Some((_, remote)) = renames.iter().find(|(local, _)| local == &scan.table_name) else {
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        };
        let scope = DFSchema::try_from_qualified_schema(remote.clone(), &scan.source.schema())?;
        scan.filters = scan
            .filters
            .into_iter()
            .map(|f| rename_expr(f, &scope, renames))
            .collect::<Result<_>>()?;
        scan.projected_schema = Arc::new(
            scan.projected_schema
                .as_ref()
                .clone()
                .replace_qualifier(remote.clone()),
        );
        scan.table_name = remote.clone();
        return Ok(Transformed::yes(LogicalPlan::TableScan(scan)));
    }
    if node.inputs().is_empty() {
        return Ok(Transformed::no(node));
    }
    let scope = inputs_scope(&node);
    let node = node
        .map_expressions(|e| Ok(Transformed::yes(rename_expr(e, &scope, renames)?)))?
        .data;
    Ok(Transformed::yes(node.recompute_schema()?))
}

/// The columns a node's expressions can name: those of all its inputs.
fn inputs_scope(node: &LogicalPlan) -> DFSchema {
    let mut scope = DFSchema::empty();
    for input in node.inputs() {
        scope.merge(input.schema());
    }
    scope
}

/// `expr` with its columns renamed to what the (renamed) inputs in `scope` call them.
fn rename_expr(expr: Expr, scope: &DFSchema, renames: &Renames) -> Result<Expr> {
    Ok(expr
        .transform(|e| match e {
            Expr::Column(c) => Ok(match rename_column(&c, scope, renames) {
                Some(renamed) => Transformed::yes(Expr::Column(renamed)),
                None => Transformed::no(Expr::Column(c)),
            }),
            Expr::OuterReferenceColumn(field, c) => Ok(match renamed_table(&c, renames) {
                Some(table) => Transformed::yes(Expr::OuterReferenceColumn(
                    field,
                    Column::new(Some(table), c.name),
                )),
                None => Transformed::no(Expr::OuterReferenceColumn(field, c)),
            }),
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

fn renamed_table(column: &Column, renames: &Renames) -> Option<TableReference> {
    let relation = column.relation.as_ref()?;
    renames
        .iter()
        .find(|(local, _)| local == relation)
        .map(|(_, remote)| remote.clone())
}

/// The first of the column's possible new names that its inputs have; a column they do not
/// have (an expression over a projection's input, kept in a sort) gets its new table.
fn rename_column(column: &Column, scope: &DFSchema, renames: &Renames) -> Option<Column> {
    if scope.has_column(column) {
        return None;
    }
    let table = renamed_table(column, renames);
    let name = rename_in_name(&column.name, renames);
    let candidates = [
        Column::new(table.clone().or(column.relation.clone()), &name),
        Column::new(table.clone(), &column.name),
        Column::new(column.relation.clone(), &name),
    ];
    // A qualified column stays qualified: `c.id` read as a bare `id` would be ambiguous, or
    // another table's, where the SQL names two tables' `id` (a sort over a join's projection).
    candidates
        .into_iter()
        .filter(|c| c.relation.is_some() || column.relation.is_none())
        .find(|c| c != column && scope.has_column(c))
        .or_else(|| table.map(|t| Column::new(Some(t), &column.name)))
}

/// Replaces each whole occurrence of a local table name in a derived column name, as
/// datafusion-federation does: `count(tab1.a)` → `count(public.tab1.a)`, but not in `xtab1`.
fn rename_in_name(name: &str, renames: &Renames) -> String {
    let mut name = name.to_string();
    for (local, remote) in renames {
        let (local, remote) = (local.to_string(), remote.to_string());
        let mut out = String::with_capacity(name.len());
        let mut rest = name.as_str();
        let mut prev: Option<char> = None;
        while let Some(at) = rest.find(&local) {
            let before = rest[..at]
                .chars()
                .last()
                .or(if at == 0 { prev } else { None });
            let after = rest[at + local.len()..].chars().next();
            let word = |c: char| c.is_alphanumeric() || c == '_';
            let whole = !before.is_some_and(|c| word(c) || c == '.') && !after.is_some_and(word);
            out.push_str(&rest[..at]);
            out.push_str(if whole { &remote } else { &local });
            prev = local.chars().last();
            rest = &rest[at + local.len()..];
        }
        out.push_str(rest);
        name = out;
    }
    name
}

/// A projection over `plan` (the federated node) that gives its columns the qualifiers and
/// names of `original` again, where [`use_remote_names`] changed them. Renaming happens here
/// in DataFusion, so the SQL sent stays one plain SELECT.
pub(crate) fn restore_names(plan: LogicalPlan, original: &DFSchemaRef) -> Result<LogicalPlan> {
    let renamed = plan.schema().columns();
    let originals = original.columns();
    if renamed == originals || renamed.len() != originals.len() {
        return Ok(plan);
    }
    let exprs = renamed
        .into_iter()
        .zip(originals)
        .map(|(r, c)| {
            if r == c {
                Expr::Column(r)
            } else {
                Expr::Column(r).alias_qualified(c.relation, c.name)
            }
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(plan),
    )?))
}

/// Writes literals so that the source reads them as the plan does:
///
/// - A typed NULL becomes `CAST(NULL AS type)`: PostgreSQL cannot pick `sum(NULL)`.
/// - A constant in GROUP BY or ORDER BY is cast: SQLite and PostgreSQL read `GROUP BY 7`
///   as the seventh SELECT column.
pub(crate) fn cast_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::Aggregate(aggregate)
                    if aggregate.group_expr.iter().any(is_constant) =>
                {
                    let group = aggregate
                        .group_expr
                        .into_iter()
                        .map(cast_constant)
                        .collect();
                    LogicalPlan::Aggregate(Aggregate::try_new(
                        aggregate.input,
                        group,
                        aggregate.aggr_expr,
                    )?)
                }
                LogicalPlan::Sort(mut sort) if sort.expr.iter().any(|s| is_constant(&s.expr)) => {
                    sort.expr = sort
                        .expr
                        .into_iter()
                        .map(|s| {
                            let e = cast_constant(s.expr.clone());
                            s.with_expr(e)
                        })
                        .collect();
                    LogicalPlan::Sort(sort)
                }
                other => other,
            };
            node.map_expressions(cast_typed_nulls)
        })?
        .data)
}

/// Writes each pushed `CAST(x AS double)` of a decimal `x` with scale `s > 0` as
/// `CAST(CAST(x * 10^s AS decimal(p, 0)) AS double) / CAST(10^s AS double)`, which is how
/// Arrow computes the cast: the nearest double to the mantissa, divided by 10^s. Any SQL
/// source with exact decimals and IEEE doubles computes this form as Arrow does (and
/// DataFusion computes it as the plain cast); see
/// [`crate::pushdown::decimal_to_float_by_mantissa`], which lets only such casts through.
pub(crate) fn float_casts_by_mantissa(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up_with_subqueries(|node| {
            let scope = match &node {
                LogicalPlan::TableScan(scan) => DFSchema::try_from_qualified_schema(
                    scan.table_name.clone(),
                    &scan.source.schema(),
                )?,
                _ => inputs_scope(&node),
            };
            // Only these nodes' expressions name their output columns.
            let names = matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_))
                .then(|| NamePreserver::new(&node));
            node.map_expressions(|expr| {
                let saved = names.as_ref().map(|n| n.save(&expr));
                let rewritten = expr.transform_up(|e| mantissa_cast(e, &scope))?;
                Ok(match saved {
                    Some(saved) if rewritten.transformed => {
                        rewritten.update_data(|e| saved.restore(e))
                    }
                    _ => rewritten,
                })
            })
        })?
        .data)
}

fn mantissa_cast(expr: Expr, scope: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr: inner, field }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    if field.data_type() != &DataType::Float64 {
        return Ok(Transformed::no(expr));
    }
    let DataType::Decimal128(precision, scale @ 1..=22) = inner.get_type(scope)? else {
        return Ok(Transformed::no(expr));
    };
    let power = 10_i128.pow(u32::from(scale.unsigned_abs()));
    let shift = Expr::Literal(
        ScalarValue::Decimal128(Some(power), scale.unsigned_abs() + 1, 0),
        None,
    );
    let mantissa = cast(
        binary_expr(inner.as_ref().clone(), Operator::Multiply, shift),
        DataType::Decimal128(precision, 0),
    );
    let divisor = cast(
        Expr::Literal(ScalarValue::Float64(Some(power as f64)), None),
        DataType::Float64,
    );
    Ok(Transformed::yes(binary_expr(
        cast(mantissa, DataType::Float64),
        Operator::Divide,
        divisor,
    )))
}

fn is_constant(expr: &Expr) -> bool {
    matches!(expr.clone().unalias(), Expr::Literal(..))
}

fn cast_constant(expr: Expr) -> Expr {
    match expr {
        Expr::Alias(mut alias) if is_constant(&alias.expr) => {
            alias.expr = Box::new(cast_constant(*alias.expr));
            Expr::Alias(alias)
        }
        Expr::Literal(value, metadata) => {
            let field = Field::new("", value.data_type(), value.is_null());
            Expr::Cast(Cast::new_from_field(
                Box::new(Expr::Literal(value, metadata)),
                Arc::new(field),
            ))
        }
        other => other,
    }
}

fn cast_typed_nulls(expr: Expr) -> Result<Transformed<Expr>> {
    expr.transform_down(|e| match e {
        Expr::Cast(_) | Expr::TryCast(_) => Ok(Transformed::new(e, false, TreeNodeRecursion::Jump)),
        Expr::Literal(value, metadata)
            if value.is_null() && value.data_type() != DataType::Null =>
        {
            let field = Field::new("", value.data_type(), true);
            let cast = Expr::Cast(Cast::new_from_field(
                Box::new(Expr::Literal(value, metadata)),
                Arc::new(field),
            ));
            Ok(Transformed::new(cast, true, TreeNodeRecursion::Jump))
        }
        other => Ok(Transformed::no(other)),
    })
}
