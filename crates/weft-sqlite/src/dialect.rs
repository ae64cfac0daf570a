//! What SQLite computes as DataFusion does, and the fixes to the unparsed SQL that make it so.

use std::ops::ControlFlow;

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{
    self, DataType, Expr, Statement, Value, VisitMut, VisitorMut,
};
use weft_core::remote::Capabilities;

/// SQLite's capabilities.
///
/// Kept out: `/` and `%` (SQLite returns NULL on division by zero where DataFusion fails),
/// `LIKE` (case-insensitive for ASCII in SQLite), timestamps (stored as text in more than one
/// format, so text comparison is not time comparison), decimals (SQLite has none), `upper`,
/// `lower` (ASCII-only in SQLite) and `substr` but from the start (SQLite counts a negative
/// start from the end).
pub(crate) fn capabilities() -> Capabilities {
    let mut caps = Capabilities::scan_only("sqlite");
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
    caps.date_comparisons = true;
    caps.numeric_casts = true;
    caps.binary_text_order = true;
    // From the start only: SQLite counts a negative start from the end.
    caps.substr = true;
    caps
}

/// Fixes the unparsed statement for SQLite.
///
/// DataFusion's unparser writes a date literal as `CAST('1995-03-15' AS DATE)`, which SQLite
/// evaluates to the integer 1995 (`DATE` has NUMERIC affinity), so a pushed date filter
/// would silently match nothing. Dates are ISO-8601 text in SQLite, so the literal is written
/// as that text.
pub(crate) fn rewrite_statement(mut statement: Statement) -> Result<Statement> {
    let _ = statement.visit(&mut DateLiterals);
    Ok(statement)
}

struct DateLiterals;

impl VisitorMut for DateLiterals {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Date,
            ..
        } = expr
        {
            if let Expr::Value(v) = inner.as_ref() {
                if let Value::SingleQuotedString(s) = &v.value {
                    *expr = Expr::value(ast::Value::SingleQuotedString(s.clone()));
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::SQLiteDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    #[test]
    fn date_literal_casts_become_iso_text() {
        let sql = "SELECT a FROM t WHERE d > CAST('1995-03-15' AS DATE) AND e = CAST(x AS DATE)";
        let statement = Parser::parse_sql(&SQLiteDialect {}, sql).unwrap().remove(0);
        let fixed = rewrite_statement(statement).unwrap().to_string();
        assert_eq!(
            fixed,
            "SELECT a FROM t WHERE d > '1995-03-15' AND e = CAST(x AS DATE)"
        );
    }
}
