//! Timestamp literals written as the instant they are.
//!
//! DataFusion's unparser writes a literal of a zoned timestamp type (a Postgres
//! `timestamptz` column's, a Parquet column's in `Europe/Berlin`) as
//! `CAST('2024-01-01T03:00:00+01:00' AS TIMESTAMP)`: a local time. Postgres drops the offset
//! and reads the time in the session's `TimeZone` when it compares it with the column;
//! DataFusion turns it into UTC and then reads that in the column's zone. Either way a pushed
//! filter was off by hours: on a Postgres server not set to UTC, and on a remote DataFusion
//! for a column not in UTC. Such literals are cast to `TIMESTAMP WITH TIME ZONE` instead,
//! which both read as the instant written.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Statement, TimezoneInfo, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `statement` with every string literal cast to `TIMESTAMP` that carries an offset cast to
/// `TIMESTAMP WITH TIME ZONE`.
pub(crate) fn zoned_literals(mut statement: Statement) -> Statement {
    let _ = statement.visit(&mut ZonedLiterals { arrow_cast: false });
    statement
}

/// For a DataFusion-based source: such literals as `arrow_cast('...+01:00',
/// 'Timestamp(Nanosecond, Some("+01:00"))')`, since DataFusion (without a session time
/// zone) plans `TIMESTAMP WITH TIME ZONE` as a local time too. A connector's
/// [`crate::remote::AstRewrite`]; runs before [`zoned_literals`], which then finds nothing.
pub fn arrow_cast_instants(mut statement: Statement) -> datafusion::error::Result<Statement> {
    let _ = statement.visit(&mut ZonedLiterals { arrow_cast: true });
    Ok(statement)
}

struct ZonedLiterals {
    arrow_cast: bool,
}

impl VisitorMut for ZonedLiterals {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Timestamp(_, zone @ TimezoneInfo::None),
            ..
        } = expr
        {
            let Expr::Value(v) = inner.as_ref() else {
                return ControlFlow::Continue(());
            };
            let Value::SingleQuotedString(s) = &v.value else {
                return ControlFlow::Continue(());
            };
            if !has_offset(s) {
                return ControlFlow::Continue(());
            }
            if !self.arrow_cast {
                *zone = TimezoneInfo::WithTimeZone;
                return ControlFlow::Continue(());
            }
            let offset = if s.ends_with('Z') {
                "+00:00"
            } else {
                &s[s.len() - 6..]
            };
            // Both strings are made of digits, `-`, `+`, `:`, `.`, `T` and `Z` only.
            let sql = format!("arrow_cast('{s}', 'Timestamp(Nanosecond, Some(\"{offset}\"))')");
            if let Ok(cast) = Parser::new(&GenericDialect {})
                .try_with_sql(&sql)
                .and_then(|mut p| p.parse_expr())
            {
                *expr = cast;
            }
        }
        ControlFlow::Continue(())
    }
}

/// An RFC 3339 timestamp with its offset (`...T00:00:00+02:00`, `...Z`), as the unparser
/// writes an instant; a local date and time is written `2024-01-01 00:00:00`.
fn has_offset(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20
        || b[10] != b'T'
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || b"-+:.TZ".contains(c))
    {
        return false;
    }
    if b[b.len() - 1] == b'Z' {
        return true;
    }
    let tail = &b[b.len() - 6..];
    matches!(tail[0], b'+' | b'-')
        && tail[1].is_ascii_digit()
        && tail[2].is_ascii_digit()
        && tail[3] == b':'
        && tail[4].is_ascii_digit()
        && tail[5].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    #[test]
    fn instants_are_cast_to_timestamptz_and_local_times_are_left_alone() {
        let sql = "SELECT a FROM t WHERE at >= CAST('2024-01-01T00:00:00+00:00' AS TIMESTAMP) \
                   AND at < CAST('2024-01-01T10:30:00.5-05:30' AS TIMESTAMP) \
                   AND local > CAST('2024-01-01 00:00:00' AS TIMESTAMP) AND x = CAST(y AS TIMESTAMP)";
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        assert_eq!(
            zoned_literals(statement).to_string(),
            "SELECT a FROM t WHERE at >= CAST('2024-01-01T00:00:00+00:00' AS TIMESTAMP WITH TIME ZONE) \
             AND at < CAST('2024-01-01T10:30:00.5-05:30' AS TIMESTAMP WITH TIME ZONE) \
             AND local > CAST('2024-01-01 00:00:00' AS TIMESTAMP) AND x = CAST(y AS TIMESTAMP)"
        );
    }

    #[test]
    fn for_datafusion_instants_are_arrow_casts() {
        let sql = "SELECT a FROM t WHERE at >= CAST('2024-01-01T00:00:00Z' AS TIMESTAMP) \
                   AND at < CAST('2024-01-01T10:30:00+01:00' AS TIMESTAMP) \
                   AND local > CAST('2024-01-01 00:00:00' AS TIMESTAMP)";
        let statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        assert_eq!(
            arrow_cast_instants(statement).unwrap().to_string(),
            "SELECT a FROM t \
             WHERE at >= arrow_cast('2024-01-01T00:00:00Z', 'Timestamp(Nanosecond, Some(\"+00:00\"))') \
             AND at < arrow_cast('2024-01-01T10:30:00+01:00', 'Timestamp(Nanosecond, Some(\"+01:00\"))') \
             AND local > CAST('2024-01-01 00:00:00' AS TIMESTAMP)"
        );
    }
}
