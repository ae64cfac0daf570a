//! Dynamic filters into remote SQL: a hash join that has built its side first knows which
//! join keys can match (their range, and for a small build side the keys themselves), and
//! DataFusion hands that filter to the scan on the other side. For a remote query, this module
//! writes the filter into the statement, so that only rows that can match leave the source.
//!
//! The filter is read when the statement is about to be sent (the join has finished building
//! by then), and is written conservatively: only comparisons and `IN` lists of integer columns
//! with integer constants, which every source compares exactly as DataFusion does. Any part
//! that cannot be written is left out, in a way that only lets more rows through (an unknown
//! conjunct of an `AND` is dropped; an `OR` or `CASE` with an unknown branch is dropped
//! whole), and DataFusion still evaluates the join itself, so the answer never changes.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, Literal,
};
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
use datafusion::physical_plan::PhysicalExpr;

/// The name of the wrapped statement's derived table.
const TABLE: &str = "weft_dynamic_filter";

/// What a source is sent of a filter.
struct Context<'a> {
    /// The remote query's result.
    schema: &'a Schema,
    /// Past this many values an `IN` list is left out (its range is still written).
    max_list: usize,
}

/// `query` narrowed by `filters` (the dynamic filters DataFusion pushed to this remote
/// query, in terms of its result `schema`), or `None` when no part of them can be written.
///
/// The statement becomes `WITH weft_dynamic_filter(weft_c0, ...) AS (<query>) SELECT * FROM
/// weft_dynamic_filter WHERE <filter>`: the result's columns are named by position, so the
/// query's own column names (which may repeat) do not matter; PostgreSQL (12 and later) and
/// SQLite inline such a common table expression and push the filter into it.
pub(crate) fn narrowed(
    query: &str,
    schema: &Schema,
    filters: &[Arc<dyn PhysicalExpr>],
    max_list: usize,
) -> Option<String> {
    let cx = Context { schema, max_list };
    let predicates: Vec<String> = filters
        .iter()
        .filter_map(|filter| snapshot_physical_expr(Arc::clone(filter)).ok())
        .filter_map(|filter| predicate(&filter, &cx))
        .collect();
    if predicates.is_empty() {
        return None;
    }
    let columns: Vec<String> = (0..schema.fields().len()).map(column).collect();
    Some(format!(
        "WITH {TABLE}({}) AS ({query}) SELECT * FROM {TABLE} WHERE {}",
        columns.join(", "),
        predicates.join(" AND ")
    ))
}

/// The name of the result's `index`th column in the wrapped statement.
fn column(index: usize) -> String {
    format!("weft_c{index}")
}

/// `expr` as SQL that is true for at least every row for which `expr` is true, or `None`
/// when nothing narrower than "every row" can be written.
fn predicate(expr: &Arc<dyn PhysicalExpr>, cx: &Context<'_>) -> Option<String> {
    let schema = cx.schema;
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let (left, right) = (binary.left(), binary.right());
        return match binary.op() {
            Operator::And => match (predicate(left, cx), predicate(right, cx)) {
                (Some(l), Some(r)) => Some(format!("({l} AND {r})")),
                (Some(one), None) | (None, Some(one)) => Some(one),
                (None, None) => None,
            },
            Operator::Or => any_of(vec![predicate(left, cx)?, predicate(right, cx)?]),
            op => comparison(left, *op, right, schema),
        };
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        if list.negated() || list.len() > cx.max_list {
            return None;
        }
        let column = integer_column(list.expr(), schema)?;
        // Sorted and without repeats; a NULL is left out (`x IN (.., NULL)` is never true
        // for a row that no value matches).
        let mut values = BTreeSet::new();
        for item in list.list() {
            if let Some(value) = integer_literal(item)? {
                values.insert(value.parse::<i128>().ok()?);
            }
        }
        if values.is_empty() {
            return Some(never());
        }
        let values: Vec<String> = values.iter().map(i128::to_string).collect();
        return Some(format!("{column} IN ({})", values.join(", ")));
    }
    if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
        return Some(format!("{} IS NULL", any_column(is_null.arg(), schema)?));
    }
    if let Some(is_not_null) = expr.downcast_ref::<IsNotNullExpr>() {
        return Some(format!(
            "{} IS NOT NULL",
            any_column(is_not_null.arg(), schema)?
        ));
    }
    if let Some(case) = expr.downcast_ref::<CaseExpr>() {
        // Whichever branch a row takes, it passes only if that branch's result is true: the
        // disjunction of all results lets through every row the CASE does.
        let mut branches = Vec::new();
        for (_, then) in case.when_then_expr() {
            branches.push(predicate(then, cx)?);
        }
        if let Some(otherwise) = case.else_expr() {
            branches.push(predicate(otherwise, cx)?);
        }
        return any_of(branches);
    }
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        return match literal.value() {
            ScalarValue::Boolean(Some(true)) => None,
            ScalarValue::Boolean(_) => Some(never()),
            _ => None,
        };
    }
    None
}

/// A predicate no row satisfies.
fn never() -> String {
    "1 = 0".to_string()
}

/// The disjunction of `predicates`, leaving out those no row satisfies.
fn any_of(mut predicates: Vec<String>) -> Option<String> {
    predicates.retain(|p| *p != never());
    Some(match predicates.len() {
        0 => never(),
        1 => predicates.remove(0),
        _ => format!("({})", predicates.join(" OR ")),
    })
}

/// `left op right` where one side is an integer column and the other an integer constant.
fn comparison(
    left: &Arc<dyn PhysicalExpr>,
    op: Operator,
    right: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Option<String> {
    let symbol = |op: Operator| match op {
        Operator::Eq => Some("="),
        Operator::Lt => Some("<"),
        Operator::LtEq => Some("<="),
        Operator::Gt => Some(">"),
        Operator::GtEq => Some(">="),
        _ => None,
    };
    if let (Some(column), Some(value)) = (integer_column(left, schema), integer_literal(right)) {
        // A comparison with NULL is never true.
        return Some(match value {
            Some(value) => format!("{column} {} {value}", symbol(op)?),
            None => never(),
        });
    }
    if let (Some(value), Some(column)) = (integer_literal(left), integer_column(right, schema)) {
        return Some(match value {
            Some(value) => format!("{column} {} {value}", symbol(op.swap()?)?),
            None => never(),
        });
    }
    None
}

/// The wrapped statement's name for `expr` if it is a column of the result.
fn any_column(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<String> {
    let col = expr.downcast_ref::<Column>()?;
    let field = schema.fields().get(col.index())?;
    (field.name() == col.name()).then(|| column(col.index()))
}

/// The wrapped statement's name for `expr` if it is an integer column of the result.
fn integer_column(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<String> {
    let col = expr.downcast_ref::<Column>()?;
    schema
        .fields()
        .get(col.index())?
        .data_type()
        .is_integer()
        .then(|| any_column(expr, schema))?
}

/// `Some(Some(digits))` for an integer constant, `Some(None)` for a NULL one, `None` for
/// anything else.
fn integer_literal(expr: &Arc<dyn PhysicalExpr>) -> Option<Option<String>> {
    let value = expr.downcast_ref::<Literal>()?.value();
    if !value.data_type().is_integer() {
        return None;
    }
    Some((!value.is_null()).then(|| value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::physical_expr::expressions::{col, in_list, lit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("k", DataType::Int32, true),
        ])
    }

    fn binary(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    fn cx(schema: &Schema) -> Context<'_> {
        Context {
            schema,
            max_list: 2,
        }
    }

    fn key() -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new("k", 0))
    }

    #[test]
    fn a_join_filter_becomes_a_range_and_a_list() {
        let schema = schema();
        let range = binary(
            binary(key(), Operator::GtEq, lit(3i64)),
            Operator::And,
            binary(key(), Operator::LtEq, lit(9i64)),
        );
        let list = Arc::new(
            InListExpr::try_new_from_array(
                key(),
                Arc::new(Int64Array::from(vec![Some(9), None, Some(3), Some(9)])),
                false,
                &schema,
            )
            .unwrap(),
        );
        let filter = binary(range, Operator::And, list);
        assert_eq!(
            narrowed("SELECT k, name, k FROM t", &schema, &[filter], 10).unwrap(),
            "WITH weft_dynamic_filter(weft_c0, weft_c1, weft_c2) AS (SELECT k, name, k FROM t) \
             SELECT * FROM weft_dynamic_filter \
             WHERE ((weft_c0 >= 3 AND weft_c0 <= 9) AND weft_c0 IN (3, 9))"
        );
    }

    #[test]
    fn what_cannot_be_written_only_widens_the_filter() {
        let schema = schema();
        let name = col("name", &schema).unwrap();
        let on_name = binary(Arc::clone(&name), Operator::GtEq, lit("m"));
        // Dropped from an AND ...
        let and = binary(
            Arc::clone(&on_name),
            Operator::And,
            binary(lit(5i64), Operator::Lt, key()),
        );
        assert_eq!(predicate(&and, &cx(&schema)).unwrap(), "weft_c0 > 5");
        // ... but an OR with an unknown side, or a negated list, cannot be narrowed at all.
        let or = binary(
            on_name,
            Operator::Or,
            binary(key(), Operator::Eq, lit(1i64)),
        );
        assert_eq!(predicate(&or, &cx(&schema)), None);
        let too_long = in_list(
            key(),
            vec![lit(1i64), lit(2i64), lit(3i64)],
            &false,
            &schema,
        );
        assert_eq!(predicate(&too_long.unwrap(), &cx(&schema)), None);
        let not_in = in_list(key(), vec![lit(1i64)], &true, &schema).unwrap();
        assert_eq!(predicate(&not_in, &cx(&schema)), None);
        // A column of another type, or whose name does not match its position, is not used.
        let strings = in_list(name, vec![lit("a")], &false, &schema).unwrap();
        assert_eq!(predicate(&strings, &cx(&schema)), None);
        let misplaced = binary(Arc::new(Column::new("k", 1)), Operator::Eq, lit(1i64));
        assert_eq!(predicate(&misplaced, &cx(&schema)), None);
        assert_eq!(narrowed("SELECT 1", &schema, &[lit(true)], 10), None);
    }

    #[test]
    fn a_case_lets_through_what_any_branch_does() {
        let schema = schema();
        let other = Arc::new(Column::new("k", 2)) as Arc<dyn PhysicalExpr>;
        let case = Arc::new(
            CaseExpr::try_new(
                Some(Arc::clone(&other)),
                vec![
                    (lit(0i32), binary(key(), Operator::Eq, lit(1i64))),
                    (lit(1i32), lit(false)),
                ],
                Some(binary(other, Operator::IsNotDistinctFrom, lit(2i32))),
            )
            .unwrap(),
        ) as Arc<dyn PhysicalExpr>;
        // The ELSE branch cannot be written: no narrowing.
        assert_eq!(predicate(&case, &cx(&schema)), None);
        let case = Arc::new(
            CaseExpr::try_new(
                Some(key()),
                vec![
                    (lit(0i64), binary(key(), Operator::Eq, lit(1i64))),
                    (lit(1i64), lit(false)),
                ],
                None,
            )
            .unwrap(),
        ) as Arc<dyn PhysicalExpr>;
        assert_eq!(predicate(&case, &cx(&schema)).unwrap(), "weft_c0 = 1");
    }
}
