//! Parentheses the unparser leaves out where a source would read the SQL differently.
//!
//! DataFusion's unparser puts every binary operation in parentheses, but not `NOT`, unary
//! minus or the postfix `IS` tests. `(NOT vip) IS NULL` is written `NOT vip IS NULL`, which
//! PostgreSQL and SQLite both read as `NOT (vip IS NULL)` (their `NOT` binds more loosely
//! than `IS`): the opposite rows. Likewise `(NOT a) < b` and `(a IS NULL) = b`, and a minus
//! before a negative number prints `--1`, a comment. Operands that are themselves operations
//! get parentheses here before the statement is sent.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Statement, UnaryOperator, Value, VisitMut, VisitorMut,
};

/// `statement` with every operand that is itself an unparenthesized operation (other than
/// under `AND`, `OR` and `NOT`, which bind more loosely than everything they hold) put in
/// parentheses.
pub(crate) fn explicit_precedence(mut statement: Statement) -> Statement {
    let _ = statement.visit(&mut Parenthesize);
    statement
}

struct Parenthesize;

impl VisitorMut for Parenthesize {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp { left, op, right }
                if !matches!(op, BinaryOperator::And | BinaryOperator::Or) =>
            {
                wrap(left);
                wrap(right);
            }
            Expr::UnaryOp { op, expr } if !matches!(op, UnaryOperator::Not) => {
                if is_negative_number(expr) {
                    nest(expr);
                } else {
                    wrap(expr);
                }
            }
            Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::IsTrue(e)
            | Expr::IsNotTrue(e)
            | Expr::IsFalse(e)
            | Expr::IsNotFalse(e)
            | Expr::IsUnknown(e)
            | Expr::IsNotUnknown(e) => wrap(e),
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                wrap(a);
                wrap(b);
            }
            Expr::Like { expr, pattern, .. }
            | Expr::ILike { expr, pattern, .. }
            | Expr::SimilarTo { expr, pattern, .. } => {
                wrap(expr);
                wrap(pattern);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                wrap(expr);
                wrap(low);
                wrap(high);
            }
            Expr::InList { expr, .. } | Expr::InSubquery { expr, .. } => wrap(expr),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// An operation printed without parentheses of its own, whose operands a neighbouring
/// operator could take.
fn is_operation(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::BinaryOp { .. }
            | Expr::UnaryOp { .. }
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotUnknown(_)
            | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
            | Expr::Like { .. }
            | Expr::ILike { .. }
            | Expr::SimilarTo { .. }
            | Expr::Between { .. }
            | Expr::InList { .. }
            | Expr::InSubquery { .. }
    )
}

fn is_negative_number(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.starts_with('-')))
}

fn wrap(expr: &mut Box<Expr>) {
    if is_operation(expr) {
        nest(expr);
    }
}

fn nest(expr: &mut Box<Expr>) {
    let inner = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
    **expr = Expr::Nested(Box::new(inner));
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Ident;

    fn column(name: &str) -> Box<Expr> {
        Box::new(Expr::Identifier(Ident::new(name)))
    }

    fn not(expr: Box<Expr>) -> Box<Expr> {
        Box::new(Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        })
    }

    /// The expression as a source reads it, in a `SELECT`.
    fn sql(expr: Box<Expr>) -> String {
        let mut statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
            "SELECT 1 WHERE x",
        )
        .unwrap()
        .remove(0);
        let _ = statement.visit(&mut Replace(Some(*expr)));
        explicit_precedence(statement)
            .to_string()
            .trim_start_matches("SELECT 1 WHERE ")
            .to_string()
    }

    struct Replace(Option<Expr>);

    impl VisitorMut for Replace {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if matches!(expr, Expr::Identifier(i) if i.value == "x") {
                *expr = self.0.take().expect("one x");
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }

    #[test]
    fn a_test_of_a_negation_keeps_the_negation_inside() {
        assert_eq!(
            sql(Box::new(Expr::IsNull(not(column("vip"))))),
            "(NOT vip) IS NULL"
        );
        assert_eq!(
            sql(not(Box::new(Expr::IsNull(column("vip"))))),
            "NOT vip IS NULL"
        );
    }

    #[test]
    fn operands_of_comparisons_and_lists_keep_their_operations() {
        let compared = Expr::BinaryOp {
            left: not(column("a")),
            op: BinaryOperator::Lt,
            right: Box::new(Expr::IsNull(column("b"))),
        };
        assert_eq!(sql(Box::new(compared)), "(NOT a) < (b IS NULL)");
        let listed = Expr::InList {
            expr: Box::new(Expr::IsNotNull(column("a"))),
            list: vec![Expr::value(Value::Boolean(true))],
            negated: false,
        };
        assert_eq!(sql(Box::new(listed)), "(a IS NOT NULL) IN (true)");
    }

    #[test]
    fn and_or_and_not_need_nothing() {
        let both = Expr::BinaryOp {
            left: Box::new(Expr::IsNull(column("a"))),
            op: BinaryOperator::And,
            right: not(column("b")),
        };
        assert_eq!(sql(Box::new(both)), "a IS NULL AND NOT b");
    }

    #[test]
    fn a_minus_before_a_minus_is_no_comment() {
        let twice = Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: Box::new(Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: column("a"),
            }),
        };
        assert_eq!(sql(Box::new(twice)), "-(-a)");
        let number = Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: Box::new(Expr::value(Value::Number("-1".into(), false))),
        };
        assert_eq!(sql(Box::new(number)), "-(-1)");
    }
}
