//! Hostile names and values, in Postgres and SQLite, queried with filters that are pushed
//! down: the right rows come back, and nothing but a SELECT ever reaches the source (the
//! `canary` table survives).

use std::sync::Arc;

use integration_tests::{pg, rows};
use weft_core::Source;
use weft_planner::WeftContext;
use weft_postgres::{PostgresOptions, PostgresSource};
use weft_sqlite::SqliteSource;

/// The table, as the source names it.
const TABLE: &str = "\"; DROP TABLE canary; --";

/// The same table and columns, created in the source's own SQL (both quote identifiers with
/// `"` and strings with `'`, and read backslashes literally).
const SETUP: &str = r#"
CREATE TABLE canary (alive int);
INSERT INTO canary VALUES (1);
CREATE TABLE """; DROP TABLE canary; --" (
    "Mixed Case" int,
    "qu""ote" text,
    "naïve ü 名前" text,
    "sp ace; --" text
);
INSERT INTO """; DROP TABLE canary; --" VALUES
    (1, 'O''Brien', 'back\slash', '''; DROP TABLE canary; --'),
    (2, '"double"', 'ünïcødé 名前', 'percent % and _under'),
    (3, 'plain', NULL, 'x'),
    (4, 'O''Brien', 'tab	and newline
here', '\''');
"#;

/// Each query with its answer: every filter is pushed to the source.
fn cases(catalog: &str, schema: &str) -> Vec<(String, Vec<Vec<&'static str>>)> {
    let table = format!(r#"{catalog}.{schema}."""; DROP TABLE canary; --""#);
    vec![
        (
            format!(r#"SELECT "Mixed Case" FROM {table} WHERE "qu""ote" = 'O''Brien' ORDER BY 1"#),
            vec![vec!["1"], vec!["4"]],
        ),
        (
            format!(r#"SELECT "Mixed Case" FROM {table} WHERE "naïve ü 名前" = 'back\slash'"#),
            vec![vec!["1"]],
        ),
        (
            format!(
                r#"SELECT "Mixed Case" FROM {table} WHERE "sp ace; --" = '''; DROP TABLE canary; --'"#
            ),
            vec![vec!["1"]],
        ),
        (
            format!(r#"SELECT "qu""ote" FROM {table} WHERE "naïve ü 名前" = 'ünïcødé 名前'"#),
            vec![vec!["\"double\""]],
        ),
        (
            format!(r#"SELECT "Mixed Case" FROM {table} WHERE "sp ace; --" = '\'''"#),
            vec![vec!["4"]],
        ),
        (
            format!(
                r#"SELECT "Mixed Case" FROM {table} WHERE "sp ace; --" LIKE 'percent %' AND "Mixed Case" > 1"#
            ),
            vec![vec!["2"]],
        ),
        (
            format!(r#"SELECT count(*) FROM {table} WHERE "naïve ü 名前" IS NULL"#),
            vec![vec!["1"]],
        ),
    ]
}

async fn check(weft: &WeftContext, source: &dyn Source, catalog: &str, schema: &str) {
    for (sql, want) in cases(catalog, schema) {
        let got = weft
            .sql(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(rows(&got), want, "{sql}");
    }
    // Aliases (the user's own names) that would end their quotes early if printed as they
    // are, and add a column read by a subquery: refused, or answered exactly (a break-out
    // gives two columns or a syntax error from the source).
    let table = format!(r#"{catalog}.{schema}."""; DROP TABLE canary; --""#);
    for alias in [
        // Printed as they are, these end their quotes and comment out the rest of the line:
        // `AS "a\", (SELECT 7) AS x --"` makes a valid statement that reads no table.
        r#""a\` , (SELECT 7) AS x --""#,
        r#""a\"" , (SELECT 7) AS x --""#,
        r#""a\` , (SELECT 7) AS `b""#,
        r#""a"""" , (SELECT 7) AS """"b""#,
    ] {
        let sql = format!(r#"SELECT "Mixed Case" AS {alias} FROM {table} WHERE "Mixed Case" = 1"#);
        let answer = match weft.sql(&sql).await {
            Ok(frame) => frame.collect().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(batches) => {
                assert_eq!(rows(&batches), [["1"]], "{sql}");
                assert_eq!(batches[0].num_columns(), 1, "{sql}");
            }
            Err(e) => assert!(
                e.to_string().contains("cannot be written unambiguously"),
                "{sql}: {e}"
            ),
        }
    }
    let sent = source.query_log().unwrap().statements();
    assert!(!sent.is_empty());

    for statement in &sent {
        assert!(statement.starts_with("SELECT "), "{statement}");
        assert!(
            statement.contains("WHERE"),
            "a filter was not pushed: {statement}"
        );
    }
    let canary = weft
        .sql(&format!("SELECT alive FROM {catalog}.{schema}.canary"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(rows(&canary), [["1"]], "the canary table is gone");
    assert!(source.tables().iter().any(|t| t.name == TABLE));
}

#[tokio::test]
async fn hostile_names_and_values_in_postgres() {
    let server = pg::server();
    let database = server.create_database("hostile").await;
    server.execute(&database, SETUP).await.unwrap();
    let options = PostgresOptions::from_url(&server.url(&database)).unwrap();
    let source = Arc::new(PostgresSource::open("pg", options).await.unwrap());
    let mut weft = WeftContext::new();
    weft.register(source.clone()).unwrap();
    check(&weft, source.as_ref(), "pg", "public").await;
}

#[tokio::test]
async fn hostile_names_and_values_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile 'file'.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SETUP)
        .unwrap();
    let source = Arc::new(SqliteSource::open("lite", &path).await.unwrap());
    let mut weft = WeftContext::new();
    weft.register(source.clone()).unwrap();
    check(&weft, source.as_ref(), "lite", "main").await;
}
