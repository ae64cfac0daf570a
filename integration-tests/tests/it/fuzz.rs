//! A differential query fuzzer: random queries over the demo's `shop` tables, placed in SQLite
//! and in Postgres, must answer as the same tables held locally in DataFusion; and each
//! random predicate `p` must split the rows exactly (ternary logic partitioning, as SQLancer's
//! TLP oracle: `count(p) + count(NOT p) + count(p IS NULL)` is the count without a filter),
//! which holds whatever the source computes for `p` only if Weft keeps its semantics.
//!
//! Seeds are deterministic (1, 2, 3, ...): `WEFT_FUZZ_CASES` of them (default 120) per
//! placement, so CI checks the same queries on any machine, however fast, and a longer run by
//! hand (`WEFT_FUZZ_CASES=2000 cargo test -p integration-tests --test it fuzz`) goes further;
//! `WEFT_FUZZ_SEED=N` starts at seed N. A failure prints its seed, SQL and plan (with the SQL
//! each source was sent): each one found becomes a test of its own.

use integration_tests::{federated, local, postgres_placement, rows};
use weft_planner::WeftContext;

/// A seeded generator: a seed gives the same queries everywhere.
struct Rng(fastrand::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.usize(..n)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Int,
    Float,
    Text,
    Date,
    Timestamp,
    Bool,
}

/// The columns a query over `from` may use.
fn columns(joined: bool, customers: bool) -> Vec<(&'static str, Ty)> {
    let mut out = Vec::new();
    if customers || joined {
        out.extend([
            ("c.id", Ty::Int),
            ("c.name", Ty::Text),
            ("c.email", Ty::Text),
            ("c.country", Ty::Text),
            ("c.signup_date", Ty::Date),
            ("c.vip", Ty::Bool),
        ]);
    }
    if !customers || joined {
        out.extend([
            ("o.id", Ty::Int),
            ("o.customer_id", Ty::Int),
            ("o.ordered_at", Ty::Timestamp),
            ("o.status", Ty::Text),
            ("o.amount", Ty::Float),
        ]);
    }
    out
}

struct Gen<'a> {
    rng: &'a mut Rng,
    columns: Vec<(&'static str, Ty)>,
}

impl Gen<'_> {
    fn column(&mut self, ty: Ty) -> Option<&'static str> {
        let matching: Vec<&'static str> = self
            .columns
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(c, _)| *c)
            .collect();
        (!matching.is_empty()).then(|| *self.rng.pick(&matching))
    }

    fn expr(&mut self, ty: Ty, depth: usize) -> String {
        if depth == 0 || self.rng.chance(40) {
            return self.leaf(ty);
        }
        let d = depth - 1;
        match ty {
            Ty::Int => match self.rng.below(7) {
                0 => format!("({} + {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                1 => format!("({} - {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                2 => format!("({} * {})", self.expr(Ty::Int, d), self.leaf(Ty::Int)),
                3 => format!("({} / {})", self.expr(Ty::Int, d), self.divisor()),
                4 => format!("({} % {})", self.expr(Ty::Int, d), self.divisor()),
                5 => format!("abs({})", self.expr(Ty::Int, d)),
                _ => format!("length({})", self.expr(Ty::Text, d)),
            },
            Ty::Float => match self.rng.below(4) {
                0 => format!(
                    "({} + {})",
                    self.expr(Ty::Float, d),
                    self.expr(Ty::Float, d)
                ),
                1 => format!("({} * 2.5)", self.expr(Ty::Float, d)),
                2 => format!("abs({})", self.expr(Ty::Float, d)),
                _ => format!("({} - {})", self.expr(Ty::Float, d), self.expr(Ty::Int, d)),
            },
            Ty::Text => match self.rng.below(6) {
                0 => format!("lower({})", self.expr(Ty::Text, d)),
                1 => format!("upper({})", self.expr(Ty::Text, d)),
                2 => format!(
                    "substr({}, {}, {})",
                    self.expr(Ty::Text, d),
                    self.rng.below(4),
                    self.rng.below(5)
                ),
                3 => format!("({} || {})", self.expr(Ty::Text, d), self.leaf(Ty::Text)),
                4 => format!(
                    "coalesce({}, {})",
                    self.expr(Ty::Text, d),
                    self.leaf(Ty::Text)
                ),
                _ => format!(
                    "CASE WHEN {} THEN {} ELSE {} END",
                    self.expr(Ty::Bool, d),
                    self.expr(Ty::Text, d),
                    self.leaf(Ty::Text)
                ),
            },
            Ty::Bool => self.predicate(d),
            Ty::Date | Ty::Timestamp => self.leaf(ty),
        }
    }

    fn divisor(&mut self) -> String {
        match self.rng.below(4) {
            0 => self.column(Ty::Int).unwrap_or("7").to_string(),
            _ => self.rng.pick(&["3", "7", "-2", "100"]).to_string(),
        }
    }

    fn leaf(&mut self, ty: Ty) -> String {
        if self.rng.chance(60) {
            if let Some(c) = self.column(ty) {
                return c.to_string();
            }
        }
        match ty {
            Ty::Int => self
                .rng
                .pick(&["0", "1", "-1", "7", "42", "1000", "1999", "NULL"])
                .to_string(),
            Ty::Float => self
                .rng
                .pick(&["0.0", "12.5", "250", "-3.25", "499.99", "NULL"])
                .to_string(),
            Ty::Text => self
                .rng
                .pick(&[
                    "'NL'",
                    "'DE'",
                    "'paid'",
                    "'returned'",
                    "''",
                    "'Zoë'",
                    "'a'",
                    "'O''x'",
                    "NULL",
                ])
                .to_string(),
            Ty::Date => self
                .rng
                .pick(&[
                    "DATE '2023-03-01'",
                    "DATE '2023-12-31'",
                    "DATE '2024-06-15'",
                ])
                .to_string(),
            Ty::Timestamp => self
                .rng
                .pick(&[
                    "TIMESTAMP '2024-01-01 00:00:00'",
                    "TIMESTAMP '2024-06-01 12:30:00'",
                ])
                .to_string(),
            Ty::Bool => self.rng.pick(&["TRUE", "FALSE", "NULL"]).to_string(),
        }
    }

    fn comparable(&mut self) -> Ty {
        *self.rng.pick(&[
            Ty::Int,
            Ty::Int,
            Ty::Float,
            Ty::Text,
            Ty::Text,
            Ty::Date,
            Ty::Timestamp,
        ])
    }

    fn predicate(&mut self, depth: usize) -> String {
        let choice = if depth == 0 {
            self.rng.below(6)
        } else {
            self.rng.below(10)
        };
        let d = depth.saturating_sub(1);
        match choice {
            0 | 1 => {
                let ty = self.comparable();
                let op = self.rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
                format!("{} {op} {}", self.expr(ty, d), self.leaf(ty))
            }
            2 => {
                let ty = self.comparable();
                let not = if self.rng.chance(50) { " NOT" } else { "" };
                format!("{} IS{not} NULL", self.expr(ty, d))
            }
            3 => {
                let ty = *self.rng.pick(&[Ty::Int, Ty::Float, Ty::Date, Ty::Text]);
                format!(
                    "{} BETWEEN {} AND {}",
                    self.expr(ty, d),
                    self.leaf(ty),
                    self.leaf(ty)
                )
            }
            4 => {
                let ty = *self.rng.pick(&[Ty::Int, Ty::Text]);
                let not = if self.rng.chance(30) { "NOT " } else { "" };
                format!(
                    "{} {not}IN ({}, {}, {})",
                    self.expr(ty, d),
                    self.leaf(ty),
                    self.leaf(ty),
                    self.leaf(ty)
                )
            }
            5 => {
                let pattern = self
                    .rng
                    .pick(&["'%a%'", "'A%'", "'%l'", "'_e%'", "'%NL%'", "'%\\%%'"]);
                let op = self.rng.pick(&["LIKE", "NOT LIKE", "ILIKE"]);
                format!("{} {op} {pattern}", self.expr(Ty::Text, d))
            }
            6 => format!("NOT ({})", self.predicate(d)),
            7 => format!("({} AND {})", self.predicate(d), self.predicate(d)),
            8 => format!("({} OR {})", self.predicate(d), self.predicate(d)),
            _ => match self.column(Ty::Bool) {
                Some(c) => c.to_string(),
                None => format!("{} > {}", self.expr(Ty::Int, d), self.leaf(Ty::Int)),
            },
        }
    }
}

/// One random query: its FROM clause, predicate, and the full statement.
struct Case {
    from: String,
    predicate: String,
    sql: String,
}

fn case(seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let (from, joined, customers) = match rng.below(4) {
        0 => ("shop.main.customers c".to_string(), false, true),
        1 => ("shop.main.orders o".to_string(), false, false),
        2 => (
            "shop.main.customers c JOIN shop.main.orders o ON o.customer_id = c.id".to_string(),
            true,
            true,
        ),
        _ => (
            "shop.main.customers c LEFT JOIN shop.main.orders o ON o.customer_id = c.id"
                .to_string(),
            true,
            true,
        ),
    };
    let mut g = Gen {
        rng: &mut rng,
        columns: columns(joined, customers),
    };
    let predicate = g.predicate(3);
    let sql = if g.rng.chance(50) {
        let outputs: Vec<String> = (0..1 + g.rng.below(3))
            .map(|_| {
                let ty = *g
                    .rng
                    .pick(&[Ty::Int, Ty::Float, Ty::Text, Ty::Bool, Ty::Date]);
                g.expr(ty, 2)
            })
            .collect();
        let order: Vec<String> = (1..=outputs.len()).map(|i| i.to_string()).collect();
        let limit = if g.rng.chance(50) { " LIMIT 30" } else { "" };
        format!(
            "SELECT {} FROM {from} WHERE {predicate} ORDER BY {}{limit}",
            outputs.join(", "),
            order.join(", ")
        )
    } else {
        let key = {
            let ty = *g.rng.pick(&[Ty::Text, Ty::Bool, Ty::Int, Ty::Date]);
            g.expr(ty, 1)
        };
        let int = g.column(Ty::Int).unwrap_or("1");
        let any = {
            let ty = *g.rng.pick(&[Ty::Int, Ty::Float, Ty::Text, Ty::Date]);
            g.expr(ty, 1)
        };
        format!(
            "SELECT {key}, count(*), count({any}), min({any}), max({any}), sum({int}) \
             FROM {from} WHERE {predicate} GROUP BY 1 ORDER BY 1 NULLS FIRST LIMIT 50"
        )
    };
    Case {
        from,
        predicate,
        sql,
    }
}

async fn answer(weft: &WeftContext, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let frame = weft.sql(sql).await.map_err(|e| e.to_string())?;
    let batches = frame.collect().await.map_err(|e| e.to_string())?;
    Ok(rows(&batches))
}

/// The physical plan, with the SQL each source was sent, for a failure's message.
async fn plan(weft: &WeftContext, sql: &str) -> String {
    match answer(weft, &format!("EXPLAIN {sql}")).await {
        Ok(rows) => rows
            .into_iter()
            .map(|row| row.join("  "))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("(EXPLAIN failed: {e})"),
    }
}

async fn count(weft: &WeftContext, sql: &str) -> Result<i64, String> {
    let rows = answer(weft, sql).await?;
    rows[0][0].parse().map_err(|e| format!("{e}"))
}

/// Runs `WEFT_FUZZ_CASES` seeds from `WEFT_FUZZ_SEED` (default 1); fails on what went wrong.
async fn fuzz(placement: &str, weft: &WeftContext, reference: &WeftContext) {
    let cases: u64 = std::env::var("WEFT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let first: u64 = std::env::var("WEFT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut failures = Vec::new();
    let (mut checked, mut skipped) = (0, 0);
    let mut seed = first;
    while seed < first + cases && failures.len() < 5 {
        let case = case(seed);
        seed += 1;
        // Differential: the federated answer is the local one. A query DataFusion itself
        // refuses (a type it cannot coerce, a division by zero) proves nothing.
        let want = match answer(reference, &case.sql).await {
            Ok(want) => want,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        match answer(weft, &case.sql).await {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!(
                "seed {}: {}\n  {placement}: {got:?}\n  local: {want:?}",
                seed - 1,
                case.sql
            )),
            Err(e) => failures.push(format!(
                "seed {}: {}\n  {placement} failed: {e}\n  plan:\n{}",
                seed - 1,
                case.sql,
                plan(weft, &case.sql).await
            )),
        }
        // Ternary logic partitioning of the predicate, in the federated placement.
        let all = format!("SELECT count(*) FROM {}", case.from);
        let parts = [
            format!(
                "SELECT count(*) FROM {} WHERE {}",
                case.from, case.predicate
            ),
            format!(
                "SELECT count(*) FROM {} WHERE NOT ({})",
                case.from, case.predicate
            ),
            format!(
                "SELECT count(*) FROM {} WHERE ({}) IS NULL",
                case.from, case.predicate
            ),
        ];
        let mut sum = 0;
        let mut broken = None;
        for part in &parts {
            match count(weft, part).await {
                Ok(n) => sum += n,
                Err(e) => broken = Some(format!("{part}: {e}")),
            }
        }
        let total = count(weft, &all).await.unwrap();
        match broken {
            Some(e) => failures.push(format!("seed {}: TLP part failed: {e}", seed - 1)),
            None if sum != total => failures.push(format!(
                "seed {}: TLP in {placement}: p, NOT p and p IS NULL count {sum} rows of {total}: {}",
                seed - 1,
                case.predicate
            )),
            None => {}
        }
        checked += 1;
    }
    eprintln!(
        "fuzz {placement}: seeds {first}..{seed}: {checked} queries checked, {skipped} refused by DataFusion itself"
    );
    assert!(checked > 0, "no query was checked");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn random_queries_in_sqlite_answer_as_local() {
    let (weft, _) = federated().await;
    fuzz("sqlite", &weft, &local().await).await;
}

#[tokio::test]
async fn random_queries_in_postgres_answer_as_local() {
    let (weft, _) = postgres_placement().await;
    fuzz("postgres", &weft, &local().await).await;
}
