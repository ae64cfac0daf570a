//! Which statements can be read as several concurrent ranges of one table.
//!
//! A statement that only filters and projects the rows of one table (no join, grouping,
//! aggregate, window, `DISTINCT`, order or limit) gives the same rows, as a multiset, when it
//! is run once per range of the table's physical row positions (`ctid`) and the results are
//! put together. That is what this module recognises and rewrites; the executor runs the
//! ranges in one snapshot (see [`crate::executor`]). A statement the dynamic filters wrapped
//! (`WITH weft_dynamic_filter(...) AS (<scan>) SELECT * FROM weft_dynamic_filter WHERE ...`)
//! counts as its scan: the range goes into the scan, the wrapper stays as it was.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, Statement, TableFactor,
    Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// How weft-core's dynamic filters wrap a statement: `WITH weft_dynamic_filter(weft_c0, ...)
/// AS (<statement>) SELECT * FROM weft_dynamic_filter WHERE <filter>`, where the filter only
/// compares integer columns with integer constants. Recognised as text, so that a long `IN`
/// list is never parsed here.
const WRAPPER_HEAD: &str = "WITH weft_dynamic_filter(";
const WRAPPER_AS: &str = ") AS (";
const WRAPPER_TAIL: &str = ") SELECT * FROM weft_dynamic_filter WHERE ";

/// A statement that reads one table's rows, ready to be cut into ranges.
#[derive(Debug)]
pub(crate) struct Splittable {
    /// The scan (the wrapped statement, under the dynamic filters).
    scan: Statement,
    /// The text around the scan: the dynamic filters' wrapper, or nothing.
    head: String,
    tail: String,
    /// The table, as written in the statement (quoted as there): what `to_regclass` reads.
    pub(crate) table: String,
}

impl Splittable {
    /// The statement restricted to the rows whose `ctid` lies in pages `[from, to)` of the
    /// table (`None`: unbounded on that side).
    pub(crate) fn range(&self, from: Option<u64>, to: Option<u64>) -> String {
        let mut scan = self.scan.clone();
        let bound = match (from, to) {
            (Some(f), Some(t)) => format!("ctid >= '({f},0)'::tid AND ctid < '({t},0)'::tid"),
            (Some(f), None) => format!("ctid >= '({f},0)'::tid"),
            (None, Some(t)) => format!("ctid < '({t},0)'::tid"),
            (None, None) => String::new(),
        };
        if !bound.is_empty() {
            let bound = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&bound)
                .and_then(|mut p| p.parse_expr())
                .expect("a ctid range parses");
            if let Some(select) = select_mut(&mut scan) {
                select.selection = Some(match select.selection.take() {
                    Some(filter) => Expr::BinaryOp {
                        left: Box::new(match filter {
                            Expr::Nested(_) => filter,
                            other => Expr::Nested(Box::new(other)),
                        }),
                        op: BinaryOperator::And,
                        right: Box::new(bound),
                    },
                    None => bound,
                });
            }
        }
        format!("{}{scan}{}", self.head, self.tail)
    }
}

/// `sql` as a [`Splittable`], or `None` when it is anything but a filter and projection of
/// one table (or does not parse as PostgreSQL).
pub(crate) fn splittable(sql: &str) -> Option<Splittable> {
    let (head, scan, tail) = match sql.strip_prefix(WRAPPER_HEAD) {
        Some(rest) => {
            let columns = rest.find(WRAPPER_AS)?;
            let start = WRAPPER_HEAD.len() + columns + WRAPPER_AS.len();
            let end = sql.rfind(WRAPPER_TAIL).filter(|end| *end >= start)?;
            (&sql[..start], &sql[start..end], &sql[end..])
        }
        None => ("", sql, ""),
    };
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, scan).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let mut scan = statements.pop()?;
    let Statement::Query(query) = &scan else {
        return None;
    };
    if query.with.is_some() {
        return None;
    }
    let table = plain_scan(query)?;
    select_mut(&mut scan)?;
    Some(Splittable {
        scan,
        head: head.to_string(),
        tail: tail.to_string(),
        table,
    })
}

/// The table `query` reads, if it is `SELECT <columns and row expressions> FROM <table>
/// [WHERE <row condition>]` and nothing more.
fn plain_scan(query: &Query) -> Option<String> {
    if query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || !query.locks.is_empty()
        || query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let no_grouping = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => exprs.is_empty() && modifiers.is_empty(),
        GroupByExpr::All(_) => false,
    };
    if select.distinct.is_some()
        || select.top.is_some()
        || select.into.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.connect_by.is_empty()
        || !no_grouping
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || select.having.is_some()
        || !select.named_window.is_empty()
        || select.qualify.is_some()
        || select.exclude.is_some()
    {
        return None;
    }
    let [from] = select.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    let table = match &from.relation {
        TableFactor::Table {
            name,
            args: None,
            with_hints,
            version: None,
            partitions,
            sample: None,
            json_path: None,
            index_hints,
            ..
        } if with_hints.is_empty() && partitions.is_empty() && index_hints.is_empty() => {
            name.to_string()
        }
        // How the unparser writes an aliased, filtered table: `SELECT "c"."id" FROM (SELECT
        // ... FROM "customers" WHERE ...) AS "c"`. The range goes into the innermost scan.
        TableFactor::Derived {
            lateral: false,
            subquery,
            ..
        } if subquery.with.is_none() => plain_scan(subquery)?,
        _ => return None,
    };
    // The columns: no function (an aggregate, a window, a set-returning function), no
    // subquery; the filter: no subquery (it would run once per range) and no function whose
    // value depends on the transaction (each range has its own).
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                if !row_expression(e, false) {
                    return None;
                }
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {}
            _ => return None,
        }
    }
    if let Some(filter) = &select.selection {
        if !row_expression(filter, true) {
            return None;
        }
    }
    Some(table)
}

/// Functions whose value is the transaction's or the moment's, or that change state: each
/// range runs in its own transaction.
const PER_TRANSACTION: [&str; 13] = [
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "transaction_timestamp",
    "statement_timestamp",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setval",
    "currval",
];

/// Whether `expr` is computed from one row alone: no subquery, and no function at all
/// (`functions: false`) or none whose value is per transaction (`functions: true`).
fn row_expression(expr: &Expr, functions: bool) -> bool {
    struct Check {
        functions: bool,
    }
    impl Visitor for Check {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    ControlFlow::Break(())
                }
                Expr::Function(f) => {
                    let name = f.name.to_string().to_ascii_lowercase();
                    let name = name.rsplit('.').next().unwrap_or(&name).trim_matches('"');
                    if !self.functions || f.over.is_some() || PER_TRANSACTION.contains(&name) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    expr.visit(&mut Check { functions }).is_continue()
}

/// The innermost `SELECT` of a statement that is one (through derived tables): the one
/// that reads the table.
fn select_mut(statement: &mut Statement) -> Option<&mut Select> {
    let Statement::Query(query) = statement else {
        return None;
    };
    innermost(query)
}

fn innermost(query: &mut Query) -> Option<&mut Select> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let derived = matches!(
        select.from.first().map(|f| &f.relation),
        Some(TableFactor::Derived { .. })
    );
    if !derived {
        return Some(select.as_mut());
    }
    match &mut select.from.first_mut()?.relation {
        TableFactor::Derived { subquery, .. } => innermost(subquery),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::splittable;

    #[test]
    fn a_filter_and_projection_of_one_table_is_cut_into_ctid_ranges() {
        let scan = splittable(
            r#"SELECT "t"."a", ("t"."b" + 1) AS "b1" FROM "public"."t" WHERE ("t"."a" > 3 OR "t"."b" IS NULL)"#,
        )
        .expect("splittable");
        assert_eq!(scan.table, r#""public"."t""#);
        assert_eq!(
            scan.range(Some(10), Some(20)),
            r#"SELECT "t"."a", ("t"."b" + 1) AS "b1" FROM "public"."t" WHERE ("t"."a" > 3 OR "t"."b" IS NULL) AND ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid"#
        );
        let no_filter = splittable(r#"SELECT * FROM "t""#).expect("splittable");
        assert_eq!(
            no_filter.range(None, Some(5)),
            r#"SELECT * FROM "t" WHERE ctid < '(5,0)'::tid"#
        );
        assert_eq!(
            no_filter.range(Some(5), None),
            r#"SELECT * FROM "t" WHERE ctid >= '(5,0)'::tid"#
        );
    }

    #[test]
    fn the_dynamic_filters_wrapper_gets_the_range_in_its_scan() {
        let scan = splittable(
            r#"WITH weft_dynamic_filter(weft_c0) AS (SELECT "t"."a" FROM "t") SELECT * FROM weft_dynamic_filter WHERE weft_c0 IN (1, 2)"#,
        )
        .expect("splittable");
        assert_eq!(
            scan.range(Some(0), Some(8)),
            r#"WITH weft_dynamic_filter(weft_c0) AS (SELECT "t"."a" FROM "t" WHERE ctid >= '(0,0)'::tid AND ctid < '(8,0)'::tid) SELECT * FROM weft_dynamic_filter WHERE weft_c0 IN (1, 2)"#
        );
    }

    #[test]
    fn anything_more_than_a_scan_is_read_whole() {
        for sql in [
            r#"SELECT count(*) FROM "t""#,
            r#"SELECT "a", sum("b") FROM "t" GROUP BY "a""#,
            r#"SELECT DISTINCT "a" FROM "t""#,
            r#"SELECT "a" FROM "t" ORDER BY "a""#,
            r#"SELECT "a" FROM "t" LIMIT 5"#,
            r#"SELECT "a" FROM "t" OFFSET 5"#,
            r#"SELECT "t"."a" FROM "t" JOIN "u" ON "t"."a" = "u"."a""#,
            r#"SELECT "a" FROM "t", "u""#,
            r#"SELECT "a" FROM (SELECT "a" FROM "t" LIMIT 3) AS s"#,
            r#"SELECT "a" FROM (SELECT count(*) AS "a" FROM "t") AS s"#,
            r#"SELECT count(*) FROM (SELECT "a" FROM "t") AS s"#,
            r#"SELECT "a" FROM LATERAL (SELECT "a" FROM "t") AS s"#,
            r#"SELECT "a" FROM "t" WHERE "a" IN (SELECT "a" FROM "u")"#,
            r#"SELECT "a" FROM "t" WHERE EXISTS (SELECT 1 FROM "u")"#,
            r#"SELECT "a" FROM "t" WHERE "b" < now()"#,
            r#"SELECT "a" FROM "t" WHERE "b" < CURRENT_TIMESTAMP"#,
            r#"SELECT row_number() OVER () FROM "t""#,
            r#"SELECT generate_series(1, "a") FROM "t""#,
            r#"SELECT "a" FROM "t" UNION ALL SELECT "a" FROM "u""#,
            r#"WITH c AS (SELECT "a" FROM "t") SELECT * FROM c"#,
            r#"WITH weft_dynamic_filter(weft_c0) AS (SELECT count(*) FROM "t") SELECT * FROM weft_dynamic_filter WHERE weft_c0 > 1"#,
            r#"SELECT "a" FROM "t" FOR UPDATE"#,
            "not sql at all",
        ] {
            assert!(splittable(sql).is_none(), "{sql}");
        }
        // An aliased, filtered table as the unparser writes it.
        let scan = splittable(
            r#"SELECT "c"."id" FROM (SELECT "customers"."id" FROM "main"."customers" WHERE ("customers"."country" = 'NL')) AS "c" WHERE ("c"."id" > 1)"#,
        )
        .expect("splittable");
        assert_eq!(scan.table, r#""main"."customers""#);
        assert_eq!(
            scan.range(Some(4), None),
            r#"SELECT "c"."id" FROM (SELECT "customers"."id" FROM "main"."customers" WHERE ("customers"."country" = 'NL') AND ctid >= '(4,0)'::tid) AS "c" WHERE ("c"."id" > 1)"#
        );
        // Row functions in the filter are per row: fine.
        assert!(splittable(r#"SELECT "a" FROM "t" WHERE lower("b") = 'x'"#).is_some());
    }
}
