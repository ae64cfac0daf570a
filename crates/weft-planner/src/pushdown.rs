//! Which parts of a plan a source computes exactly as DataFusion does.
//!
//! A node or expression is pushable only when the source's [`Capabilities`] cover it and
//! DataFusion's unparser is known to write it faithfully. Anything else stays in DataFusion:
//! a missed pushdown costs rows on the wire, a wrong one costs a wrong answer.

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::NullEquality;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::{
    Between, BinaryExpr, Case, Cast, Distinct, Expr, ExprSchemable, JoinType, Like, LogicalPlan,
    Operator,
};
use weft_core::remote::{Capabilities, ComparesAs, COLLATION};

/// Whether `plan` itself (not its inputs, which the caller has checked) may run in the
/// source. `input_limited` says whether an input's result is cut by a LIMIT: the unparser
/// flattens a filter, join or aggregate over a limited input into one SELECT, which changes
/// the result, so only a projection may sit on top of one.
pub(crate) fn node_pushable(plan: &LogicalPlan, caps: &Capabilities, input_limited: bool) -> bool {
    match plan {
        LogicalPlan::Projection(p) => p
            .expr
            .iter()
            .all(|e| expr_pushable(e, p.input.schema(), caps)),
        _ if input_limited => false,
        LogicalPlan::Filter(f) => expr_pushable(&f.predicate, f.input.schema(), caps),
        LogicalPlan::Join(j) => {
            let join_type_ok = match j.join_type {
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => true,
                JoinType::LeftSemi
                | JoinType::RightSemi
                | JoinType::LeftAnti
                | JoinType::RightAnti => caps.semi_joins && semi_join_unparsable(j),
                _ => false,
            };
            let schema = j.left.schema().join(j.right.schema());
            let Ok(schema) = schema else { return false };
            caps.joins
                && join_type_ok
                && j.null_equality == NullEquality::NullEqualsNothing
                && j.on.iter().all(|(l, r)| {
                    comparable(l, r, &schema, caps, Operator::Eq)
                        && equal_as_text(l, r, &schema)
                        && expr_pushable(l, &schema, caps)
                        && expr_pushable(r, &schema, caps)
                })
                && j.filter
                    .as_ref()
                    .is_none_or(|f| expr_pushable(f, &schema, caps))
        }
        LogicalPlan::Aggregate(a) => {
            let schema = a.input.schema();
            caps.aggregates
                && a.group_expr.iter().all(|e| {
                    !matches!(e, Expr::GroupingSet(_) | Expr::Literal(..))
                        && compares_as(e, schema) != Some(ComparesAs::Opaque)
                        && expr_pushable(e, schema, caps)
                })
                && a.aggr_expr.iter().all(|e| expr_pushable(e, schema, caps))
        }
        LogicalPlan::Sort(s) => {
            caps.sort_and_limit
                && s.expr.iter().all(|e| {
                    expr_pushable(&e.expr, s.input.schema(), caps)
                        && orderable(&e.expr, s.input.schema(), caps)
                })
        }
        LogicalPlan::Limit(l) => {
            // `OFFSET n` without `LIMIT` is not SQL everywhere (SQLite requires LIMIT).
            caps.sort_and_limit
                && matches!(
                    (l.get_skip_type(), l.get_fetch_type()),
                    (Ok(SkipType::Literal(0)), Ok(FetchType::Literal(_)))
                        | (Ok(SkipType::Literal(_)), Ok(FetchType::Literal(Some(_))))
                )
        }
        LogicalPlan::SubqueryAlias(_) => true,
        LogicalPlan::Distinct(Distinct::All(input)) => {
            // SELECT DISTINCT compares like GROUP BY does.
            caps.aggregates
                && input.schema().fields().iter().all(|f| {
                    groupable(f.data_type(), caps) && ComparesAs::of(f) != Some(ComparesAs::Opaque)
                })
        }
        _ => false,
    }
}

/// Whether the unparser writes this semi or anti join as the `[NOT] EXISTS` it means.
///
/// The subquery side becomes `EXISTS (SELECT 1 FROM <side> WHERE <on> AND <filter>)`, so:
/// - it must be one relation (a table or an aliased derived table): a bare join or filter
///   would be written into the outer SELECT;
/// - no table name may be visible on both sides, or the correlated `outer.c = inner.c` would
///   read the inner table twice;
/// - `NOT IN` (a null-aware anti join) is not `NOT EXISTS` when the subquery has a NULL.
fn semi_join_unparsable(j: &datafusion::logical_expr::Join) -> bool {
    let subquery_side = match j.join_type {
        JoinType::RightSemi | JoinType::RightAnti => &j.left,
        _ => &j.right,
    };
    let one_relation = matches!(
        subquery_side.as_ref(),
        LogicalPlan::SubqueryAlias(_) | LogicalPlan::TableScan(_)
    );
    let qualifiers = |plan: &LogicalPlan| {
        plan.schema()
            .iter()
            .filter_map(|(q, _)| q.cloned())
            .collect::<std::collections::HashSet<_>>()
    };
    !j.null_aware && one_relation && qualifiers(&j.left).is_disjoint(&qualifiers(&j.right))
}

/// Whether the node cuts its result to a number of rows.
pub(crate) fn limits(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Limit(_) => true,
        LogicalPlan::Sort(s) => s.fetch.is_some(),
        LogicalPlan::TableScan(t) => t.fetch.is_some(),
        _ => false,
    }
}

/// Whether `expr` computes the same value in the source as in DataFusion.
pub(crate) fn expr_pushable(expr: &Expr, schema: &DFSchema, caps: &Capabilities) -> bool {
    let pushable = |e: &Expr| expr_pushable(e, schema, caps);
    if !operands_compare_as_text(expr, schema) {
        return false;
    }
    match expr {
        Expr::Column(_) => true,
        // `(SELECT ...)`, when the federation rule has found that its plan runs whole in the
        // same source.
        Expr::ScalarSubquery(s) => s.outer_ref_columns.is_empty(),
        Expr::Alias(a) => pushable(&a.expr),
        Expr::Literal(value, _) => literal_pushable(value, caps),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if !pushable(left) || !pushable(right) {
                return false;
            }
            match op {
                Operator::And | Operator::Or => true,
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom => comparable(left, right, schema, caps, *op),
                Operator::Plus | Operator::Minus | Operator::Multiply => {
                    arithmetic(left, right, schema, caps)
                        && exact_decimal_arithmetic(expr, left, *op, right, schema)
                }
                // A decimal quotient is truncated to DataFusion's scale for the types;
                // a source rounds it, or keeps more places.
                Operator::Divide | Operator::Modulo => {
                    caps.division
                        && arithmetic(left, right, schema, caps)
                        && !is_decimal(&type_of(left, schema))
                        && !is_decimal(&type_of(right, schema))
                }
                Operator::StringConcat => {
                    is_string_like(&type_of(left, schema))
                        && is_string_like(&type_of(right, schema))
                }
                _ => false,
            }
        }
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => pushable(e),
        Expr::Negative(e) => pushable(e) && is_numeric(&type_of(e, schema), caps),
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            pushable(expr)
                && pushable(low)
                && pushable(high)
                && comparable(expr, low, schema, caps, Operator::LtEq)
                && comparable(expr, high, schema, caps, Operator::LtEq)
        }
        Expr::InList(list) => {
            pushable(&list.expr)
                && list.list.iter().all(|item| {
                    pushable(item) && comparable(&list.expr, item, schema, caps, Operator::Eq)
                })
        }
        Expr::Like(Like {
            expr,
            pattern,
            escape_char,
            case_insensitive,
            ..
        }) => {
            caps.case_sensitive_like
                && !case_insensitive
                && escape_char.is_none()
                && pushable(expr)
                && pushable(pattern)
                && is_string_like(&type_of(expr, schema))
        }
        Expr::Case(Case {
            expr,
            when_then_expr,
            else_expr,
        }) => {
            expr.as_deref().is_none_or(pushable)
                && when_then_expr
                    .iter()
                    .all(|(w, t)| pushable(w) && pushable(t))
                && else_expr.as_deref().is_none_or(pushable)
        }
        Expr::Cast(Cast { expr, field }) => {
            let data_type = field.data_type();
            let from = type_of(expr, schema);
            pushable(expr)
                && (from == *data_type
                    || (caps.numeric_casts
                        && is_integer(&from)
                        && matches!(data_type, DataType::Int64 | DataType::Float64))
                    || (caps.decimals && exact_decimal_cast(&from, data_type))
                    || (caps.decimals
                        && caps.numeric_casts
                        && decimal_to_float_by_mantissa(&from, data_type)))
        }
        Expr::ScalarFunction(ScalarFunction { func, args }) => {
            (caps.scalar_functions.contains(func.name())
                || (caps.date_parts
                    && func.name() == "date_part"
                    && date_part_of_date(args, schema))
                || (caps.substr && func.name() == "substr" && substr_from_start(args, schema)))
                && args.iter().all(pushable)
        }
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            caps.aggregate_functions.contains(func.name())
                && params.filter.is_none()
                && params.order_by.is_empty()
                && params.null_treatment.is_none()
                && params.args.iter().all(pushable)
                && params
                    .args
                    .iter()
                    .all(|a| aggregable(func.name(), &type_of(a, schema), caps))
        }
        _ => false,
    }
}

/// Whether `expr`'s own operation gives DataFusion's answer for the operands it has. A
/// column the source compares otherwise than as text (see [`ComparesAs`]) may only be
/// selected, tested for NULL, counted, or compared for equality with a column of the same
/// source type; anything else over it stays in DataFusion.
fn operands_compare_as_text(expr: &Expr, schema: &DFSchema) -> bool {
    match expr {
        Expr::Column(_) | Expr::Alias(_) | Expr::IsNull(_) | Expr::IsNotNull(_) => true,
        Expr::BinaryExpr(BinaryExpr {
            left,
            op:
                Operator::Eq | Operator::NotEq | Operator::IsDistinctFrom | Operator::IsNotDistinctFrom,
            right,
        }) => equal_as_text(left, right, schema) || uuid_against_literal(left, right, schema),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq,
            right,
        }) if compares_as(left, schema).is_some() || compares_as(right, schema).is_some() => {
            uuid_against_literal(left, right, schema)
        }
        Expr::InList(list) if compares_as(&list.expr, schema).is_some() => {
            is_uuid(&list.expr, schema) && list.list.iter().all(is_canonical_uuid)
        }
        Expr::AggregateFunction(AggregateFunction { func, params }) if func.name() == "count" => {
            params.args.iter().all(|a| match compares_as(a, schema) {
                None | Some(ComparesAs::Keys) => true,
                // `count(DISTINCT ...)` compares the values.
                Some(ComparesAs::Opaque) => !params.distinct,
            })
        }
        _ => {
            let mut text = true;
            let _ = expr.apply_children(|child| {
                text = compares_as(child, schema).is_none();
                Ok(if text {
                    TreeNodeRecursion::Continue
                } else {
                    TreeNodeRecursion::Stop
                })
            });
            text
        }
    }
}

/// Whether `l = r` is text equality in the source: neither is a column compared otherwise,
/// or both are key-like columns of the same source type and collation (two `uuid`s, two
/// `char(5)`s, two values of one enum, two `text COLLATE "de-x-icu"`).
fn equal_as_text(l: &Expr, r: &Expr, schema: &DFSchema) -> bool {
    let (lf, rf) = (source_column(l, schema), source_column(r, schema));
    let (lk, rk) = (lf.and_then(ComparesAs::of), rf.and_then(ComparesAs::of));
    match (lk, rk) {
        (None, None) => true,
        (Some(ComparesAs::Keys), Some(ComparesAs::Keys)) => {
            let source_type = |f: &'_ Field| f.metadata().get("source_type").cloned();
            let collation = |f: &'_ Field| f.metadata().get(COLLATION).cloned();
            let l = lf.and_then(source_type);
            l.is_some()
                && l == rf.and_then(source_type)
                && lf.and_then(collation) == rf.and_then(collation)
        }
        _ => false,
    }
}

/// A Postgres `uuid` column compared with a literal in the form Postgres prints (lowercase,
/// hyphenated): its equality and order are then those of the text, since `uuid` orders by
/// its bytes. Any other literal would be read in any case, or fail, in Postgres.
fn uuid_against_literal(l: &Expr, r: &Expr, schema: &DFSchema) -> bool {
    (is_uuid(l, schema) && is_canonical_uuid(r)) || (is_uuid(r, schema) && is_canonical_uuid(l))
}

fn is_uuid(e: &Expr, schema: &DFSchema) -> bool {
    source_column(e, schema).is_some_and(|f| {
        ComparesAs::of(f) == Some(ComparesAs::Keys)
            && f.metadata().get("source_type").map(String::as_str) == Some("uuid")
    })
}

/// A text literal such as `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`.
fn is_canonical_uuid(e: &Expr) -> bool {
    let Expr::Literal(
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)),
        _,
    ) = e
    else {
        return false;
    };
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The field of a column, through any aliases.
fn source_column<'a>(e: &Expr, schema: &'a DFSchema) -> Option<&'a Field> {
    match e {
        Expr::Column(c) => schema
            .qualified_field_from_column(c)
            .ok()
            .map(|(_, f)| f.as_ref()),
        Expr::Alias(a) => source_column(&a.expr, schema),
        _ => None,
    }
}

/// How the source compares `e`'s values, when `e` is a column it does not compare as text.
fn compares_as(e: &Expr, schema: &DFSchema) -> Option<ComparesAs> {
    source_column(e, schema).and_then(ComparesAs::of)
}

fn literal_pushable(value: &ScalarValue, caps: &Capabilities) -> bool {
    match value {
        ScalarValue::Null
        | ScalarValue::Boolean(_)
        | ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_) => true,
        ScalarValue::Float32(v) => v.is_none_or(f32::is_finite),
        ScalarValue::Float64(v) => v.is_none_or(f64::is_finite),
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
            // A NUL cannot be written in a SQL string literal.
            v.as_deref().is_none_or(|s| !s.contains('\0'))
        }
        ScalarValue::Date32(_) => caps.date_comparisons,
        // Written as ISO text (with its offset when zoned, which the connectors' SQL reads
        // as that instant: `weft-core`'s `instants`); only years 1 to 9999, which every
        // source reads back the same.
        ScalarValue::TimestampSecond(v, _) => timestamp_pushable(*v, 1, caps),
        ScalarValue::TimestampMillisecond(v, _) => timestamp_pushable(*v, 1_000, caps),
        ScalarValue::TimestampMicrosecond(v, _) => timestamp_pushable(*v, 1_000_000, caps),
        ScalarValue::TimestampNanosecond(v, _) => timestamp_pushable(*v, 1_000_000_000, caps),
        // A negative scale is written as a cast to a scale of 0.
        ScalarValue::Decimal128(_, _, scale) | ScalarValue::Decimal256(_, _, scale) => {
            caps.decimals && *scale >= 0
        }
        _ => false,
    }
}

fn timestamp_pushable(value: Option<i64>, per_second: i64, caps: &Capabilities) -> bool {
    // 0001-01-01T00:00:00 and 9999-12-31T23:59:59 in seconds from 1970.
    const FIRST: i64 = -62_135_596_800;
    const LAST: i64 = 253_402_300_799;
    caps.timestamp_comparisons
        && value.is_none_or(|v| (FIRST..=LAST).contains(&v.div_euclid(per_second)))
}

/// The precision and scale of a decimal type.
fn decimal_digits(t: &DataType) -> Option<(u8, i8)> {
    match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => Some((*p, *s)),
        _ => None,
    }
}

/// Decimal `+`, `-` and `*` are exact in a SQL `numeric` as in DataFusion, which gives the
/// result the scale of the exact value: the larger scale for a sum or difference, the sum of
/// the scales for a product. Where DataFusion's result type would round (or the operands are
/// not both decimals), the expression stays in DataFusion. A value too large for the result's
/// precision is an error in the connector's decoder, never a rounded value.
fn exact_decimal_arithmetic(
    expr: &Expr,
    left: &Expr,
    op: Operator,
    right: &Expr,
    schema: &DFSchema,
) -> bool {
    let (lt, rt) = (type_of(left, schema), type_of(right, schema));
    if !is_decimal(&lt) && !is_decimal(&rt) {
        return true;
    }
    let (Some((_, ls)), Some((_, rs)), Some((_, scale))) = (
        decimal_digits(&lt),
        decimal_digits(&rt),
        decimal_digits(&type_of(expr, schema)),
    ) else {
        return false;
    };
    if ls < 0 || rs < 0 {
        return false;
    }
    let exact_scale = match op {
        Operator::Multiply => i16::from(ls) + i16::from(rs),
        _ => i16::from(ls.max(rs)),
    };
    i16::from(scale) == exact_scale
}

/// A cast that keeps every value exactly: an integer into a decimal with room for all its
/// digits, or a decimal into one with at least its scale and its integer digits.
fn exact_decimal_cast(from: &DataType, to: &DataType) -> bool {
    let Some((p, s)) = decimal_digits(to) else {
        return false;
    };
    if s < 0 {
        return false;
    }
    let integer_digits = i16::from(p) - i16::from(s);
    let needed = match from {
        DataType::Int8 | DataType::UInt8 => 3,
        DataType::Int16 | DataType::UInt16 => 5,
        DataType::Int32 | DataType::UInt32 => 10,
        DataType::Int64 => 19,
        DataType::UInt64 => 20,
        _ => match decimal_digits(from) {
            Some((fp, fs)) if fs >= 0 && fs <= s => i16::from(fp) - i16::from(fs),
            _ => return false,
        },
    };
    integer_digits >= needed
}

/// A decimal cast to `double` that the source computes as Arrow does once
/// [`crate::unparse::float_casts_by_mantissa`] has written it as
/// `CAST(CAST(x * 10^s AS decimal(p, 0)) AS double) / 10^s`.
///
/// Arrow converts the mantissa to the nearest double and divides it by 10^s (a double for
/// s <= 22, where every power of ten is exact); a plain `CAST(x AS double precision)` in
/// Postgres is the nearest double to the decimal value, which differs where the mantissa
/// has more than 53 bits. The rewritten form converts an integer (the nearest double in
/// both) and divides in IEEE doubles (the same quotient in both). 256-bit decimals and
/// casts to `float` (Arrow rounds twice there) stay in DataFusion.
pub(crate) fn decimal_to_float_by_mantissa(from: &DataType, to: &DataType) -> bool {
    matches!((from, to), (DataType::Decimal128(_, s), DataType::Float64) if (0..=22).contains(s))
}

/// `date_part('year' | 'month' | 'day', d)` of a `DATE` `d`: what
/// [`Capabilities::date_parts`] covers. The part must be a `Utf8` literal, which the
/// connector's rewrite can read; Arrow and SQL agree on these parts of a date but for the
/// years before 1 AD, which the connector corrects.
fn date_part_of_date(args: &[Expr], schema: &DFSchema) -> bool {
    let [Expr::Literal(ScalarValue::Utf8(Some(part)), _), date] = args else {
        return false;
    };
    matches!(part.to_ascii_lowercase().as_str(), "year" | "month" | "day")
        && type_of(date, schema) == DataType::Date32
}

/// `substr(s, start[, count])` of text with literal positions counted from the start: what
/// [`Capabilities::substr`] covers. A negative or zero start, a negative count or a position
/// past `integer` is where SQL engines part ways (SQLite counts from the end, Postgres has no
/// `substr(text, bigint)`).
fn substr_from_start(args: &[Expr], schema: &DFSchema) -> bool {
    let position = |e: &Expr, least: i64| match e {
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => (least..=i64::from(i32::MAX)).contains(n),
        _ => false,
    };
    match args {
        [text, start] => is_string_like(&type_of(text, schema)) && position(start, 1),
        [text, start, count] => {
            is_string_like(&type_of(text, schema)) && position(start, 1) && position(count, 0)
        }
        _ => false,
    }
}

fn type_of(expr: &Expr, schema: &DFSchema) -> DataType {
    expr.get_type(schema).unwrap_or(DataType::Null)
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

fn is_numeric(t: &DataType, caps: &Capabilities) -> bool {
    is_integer(t)
        || is_float(t)
        || (caps.decimals && matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)))
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

fn is_string_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

fn is_timestamp(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(..))
}

/// `l op r` compares the same way in the source.
fn comparable(l: &Expr, r: &Expr, schema: &DFSchema, caps: &Capabilities, op: Operator) -> bool {
    let (lt, rt) = (type_of(l, schema), type_of(r, schema));
    let equality = matches!(
        op,
        Operator::Eq | Operator::NotEq | Operator::IsDistinctFrom | Operator::IsNotDistinctFrom
    );
    match (&lt, &rt) {
        (DataType::Null, _) | (_, DataType::Null) => true,
        (DataType::Boolean, DataType::Boolean) => true,
        _ if is_numeric(&lt, caps) && is_numeric(&rt, caps) => true,
        _ if is_string_like(&lt) && is_string_like(&rt) => equality || caps.binary_text_order,
        (DataType::Date32, DataType::Date32) => caps.date_comparisons,
        _ if is_timestamp(&lt) && lt == rt => caps.timestamp_comparisons,
        _ => false,
    }
}

/// Arithmetic on numbers only: no date or interval arithmetic, whose syntax and semantics
/// differ everywhere.
fn arithmetic(l: &Expr, r: &Expr, schema: &DFSchema, caps: &Capabilities) -> bool {
    is_numeric(&type_of(l, schema), caps) && is_numeric(&type_of(r, schema), caps)
}

/// Values of this type are grouped (and made DISTINCT) the same way in the source.
fn groupable(t: &DataType, caps: &Capabilities) -> bool {
    match t {
        DataType::Boolean | DataType::Null => true,
        _ if is_numeric(t, caps) => true,
        _ if is_string_like(t) => true,
        DataType::Date32 => caps.date_comparisons,
        _ if is_timestamp(t) => caps.timestamp_comparisons,
        _ => false,
    }
}

/// Ordering by this expression gives DataFusion's order.
fn orderable(e: &Expr, schema: &DFSchema, caps: &Capabilities) -> bool {
    // A `uuid` orders by its bytes, which is the order of its lowercase text.
    if compares_as(e, schema).is_some() && !is_uuid(e, schema) {
        return false;
    }
    let t = type_of(e, schema);
    match &t {
        _ if is_string_like(&t) => caps.binary_text_order,
        _ => groupable(&t, caps),
    }
}

/// `func(arg)` gives DataFusion's answer for an argument of this type.
fn aggregable(func: &str, t: &DataType, caps: &Capabilities) -> bool {
    match func {
        "count" => true,
        "min" | "max" => {
            if is_string_like(t) {
                caps.binary_text_order
            } else {
                groupable(t, caps)
            }
        }
        // DataFusion truncates a decimal average to the argument's scale + 4; a source
        // rounds it, or keeps more places.
        "avg" if is_decimal(t) => false,
        // Sums and averages of numbers only (integer sums stay integers in both).
        _ => is_numeric(t, caps),
    }
}
