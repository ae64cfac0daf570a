//! What Postgres computes as DataFusion does, and the fixes to the unparsed SQL that make it so.

use std::ops::ControlFlow;

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use weft_core::remote::Capabilities;

/// Postgres's capabilities.
///
/// Decimals are in: `numeric` compares, adds, subtracts, multiplies and sums exactly, as
/// Decimal128 does; the planner keeps out what would round (division, `avg`, narrowing
/// casts), and the decoder fails on a value that does not fit the plan's type.
///
/// Kept out: `/` and `%` (Postgres fails on a float division by zero, DataFusion returns
/// infinity), `upper`/`lower` (locale-dependent case mapping), and text ordering unless the
/// database's collation orders by code point. `substr` is pushed only from the start and in a
/// UTF-8 database (one in `SQL_ASCII` counts bytes).
pub(crate) fn capabilities(binary_collation: bool, utf8: bool) -> Capabilities {
    let mut caps = Capabilities::scan_only("postgres");
    caps.scalar_functions = ["abs", "coalesce", "nullif", "character_length", "length"]
        .into_iter()
        .map(String::from)
        .collect();
    caps.aggregate_functions = ["count", "sum", "min", "max", "avg"]
        .into_iter()
        .map(String::from)
        .collect();
    caps.joins = true;
    caps.semi_joins = true;
    caps.aggregates = true;
    caps.sort_and_limit = true;
    caps.case_sensitive_like = true;
    caps.date_comparisons = true;
    caps.timestamp_comparisons = true;
    caps.numeric_casts = true;
    caps.decimals = true;
    caps.binary_text_order = binary_collation;
    caps.date_parts = true;
    caps.substr = utf8;
    caps
}

/// Fixes the unparsed statement for Postgres.
///
/// `date_part('YEAR' | 'MONTH' | 'DAY', d)` (a pushed `date_part` of a date, see
/// [`Capabilities::date_parts`]) becomes an `integer`, DataFusion's type, rather than
/// Postgres's `double precision`; and a year before 1 AD gets 1 added: Postgres counts 1 BC
/// as -1, Arrow (chrono's proleptic calendar) as 0.
pub(crate) fn rewrite_statement(mut statement: Statement) -> Result<Statement> {
    let _ = statement.visit(&mut DateParts);
    Ok(statement)
}

struct DateParts;

impl VisitorMut for DateParts {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Some((part, date)) = date_part(expr) else {
            return ControlFlow::Continue(());
        };
        let integer = cast(expr.clone(), DataType::Integer(None));
        *expr = if part == "year" {
            let first_ad = cast(
                Expr::value(Value::SingleQuotedString("0001-01-01".to_string())),
                DataType::Date,
            );
            let before_christ = Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![ast::CaseWhen {
                    condition: Expr::BinaryOp {
                        left: Box::new(date),
                        op: BinaryOperator::Lt,
                        right: Box::new(first_ad),
                    },
                    result: Expr::value(Value::Number("1".to_string(), false)),
                }],
                else_result: Some(Box::new(Expr::value(Value::Number("0".to_string(), false)))),
            };
            Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(integer),
                op: BinaryOperator::Plus,
                right: Box::new(before_christ),
            }))
        } else {
            integer
        };
        ControlFlow::Continue(())
    }
}

/// The part (lowercase) and the date of `date_part('year' | 'month' | 'day', d)`.
fn date_part(expr: &Expr) -> Option<(String, Expr)> {
    let Expr::Function(f) = expr else { return None };
    if !f.name.to_string().eq_ignore_ascii_case("date_part") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(part)), FunctionArg::Unnamed(FunctionArgExpr::Expr(date))] =
        list.args.as_slice()
    else {
        return None;
    };
    let Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(part),
        ..
    }) = part
    else {
        return None;
    };
    let part = part.to_ascii_lowercase();
    matches!(part.as_str(), "year" | "month" | "day").then(|| (part, date.clone()))
}

fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn fixed(sql: &str) -> String {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite_statement(statement).unwrap().to_string()
    }

    #[test]
    fn a_year_is_an_integer_without_year_zero() {
        assert_eq!(
            fixed("SELECT date_part('YEAR', t.d) FROM t"),
            "SELECT (CAST(date_part('YEAR', t.d) AS INTEGER) + \
             CASE WHEN t.d < CAST('0001-01-01' AS DATE) THEN 1 ELSE 0 END) FROM t"
        );
    }

    #[test]
    fn months_and_days_are_integers_and_other_parts_stay() {
        assert_eq!(
            fixed("SELECT date_part('month', d), date_part('DAY', d), date_part('hour', d) FROM t"),
            "SELECT CAST(date_part('month', d) AS INTEGER), CAST(date_part('DAY', d) AS INTEGER), \
             date_part('hour', d) FROM t"
        );
    }
}
