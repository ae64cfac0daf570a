//! The 22 TPC-H queries at scale factor 0.01 in each of the five placements of the tables
//! over Parquet, PostgreSQL and SQLite, against the answers checked in under
//! `integration-tests/tpch/answers` (made by DuckDB and checked against its own TPC-H
//! answers; see `tpch/make_answers.py`). A wrong answer or a query Weft cannot run, in any
//! placement, fails: there is no skip list.

use integration_tests::pg;
use integration_tests::tpch::{self, DataDir, Placement, Table};

const SF: f64 = 0.01;

/// The data, generated into a fresh folder and a fresh Postgres database.
async fn data() -> (tempfile::TempDir, DataDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("weft-tpch-")
        .tempdir()
        .unwrap();
    let data = DataDir::new(dir.path(), SF);
    data.ensure_files(|_| {}).unwrap();
    let server = pg::server();
    let database = server.create_database("weft_tpch").await;
    let url = server.url(&database);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    tpch::load_postgres(&client, SF, "public", &Table::ALL, |_, _| {})
        .await
        .unwrap();
    drop(client);
    let _ = connection.await;
    (dir, data, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_22_queries_answer_right_in_every_placement() {
    let (_dir, data, url) = data().await;
    let weft = tpch::context(&data, &url, true).await.unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for placement in Placement::ALL {
        for (n, sql) in tpch::queries() {
            let sql = placement.qualify(sql).unwrap();
            let outcome = match weft.sql(&sql).await {
                Ok(frame) => match frame.collect().await {
                    Ok(batches) => {
                        tpch::compare(tpch::answer_sf001(n), &tpch::cells(&batches).unwrap())
                    }
                    Err(e) => Err(format!("failed: {e}")),
                },
                Err(e) => Err(format!("cannot plan: {e}")),
            };
            checked += 1;

            if let Err(why) = outcome {
                let sent = match weft.explain(&sql).await {
                    Ok(e) => e
                        .remote
                        .iter()
                        .map(|r| format!("\n    {}: {}", r.source, r.sql))
                        .collect::<String>(),
                    Err(_) => String::new(),
                };
                failures.push(format!("{} q{n:02}: {why}{sent}", placement.name()));
            }
        }
    }
    assert_eq!(checked, 22 * 5);
    assert!(
        failures.is_empty(),
        "{} of {checked} wrong or failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_wrong_answer_is_caught() {
    // The comparison the test above relies on rejects a changed value, a missing row and
    // a row out of order.
    let expected = tpch::answer_sf001(3);
    let rows: Vec<Vec<String>> = expected
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert!(tpch::compare(expected, &rows).is_ok());
    let mut changed = rows.clone();
    let orderkey: i64 = changed[0][0].parse().unwrap();
    changed[0][0] = (orderkey + 1).to_string();
    assert!(tpch::compare(expected, &changed).is_err());
    assert!(tpch::compare(expected, &rows[1..]).is_err());
    let mut swapped = rows.clone();
    swapped.swap(0, 1);
    assert!(tpch::compare(expected, &swapped).is_err());
}

#[tokio::test]
async fn without_pushdown_sources_only_scan_tables() {
    // The benchmark's naive baseline: the same answer, each table read by its own plain
    // SELECT and the join, filters and aggregate done in DataFusion.
    let (_dir, data, url) = data().await;
    let weft = tpch::context(&data, &url, false).await.unwrap();
    let (n, sql) = tpch::queries()[2];
    let sql = Placement::Postgres.qualify(sql).unwrap();
    let batches = weft.sql(&sql).await.unwrap().collect().await.unwrap();
    tpch::compare(tpch::answer_sf001(n), &tpch::cells(&batches).unwrap()).unwrap();
    let sent = weft.explain(&sql).await.unwrap().remote;
    assert_eq!(sent.len(), 3, "{sent:#?}");
    for statement in &sent {
        assert!(
            !statement.sql.contains("JOIN") && !statement.sql.contains("WHERE"),
            "{}",
            statement.sql
        );
    }
}
