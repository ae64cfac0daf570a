//! Source faults through a TCP proxy between Weft and Postgres: a slow source holds up only
//! the queries that read it, and a connection cut mid-stream fails its query at once, naming
//! the source, never passing a partial result off as complete; the next query reconnects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use integration_tests::proxy::{Mode, Proxy};
use integration_tests::{pg, rows, shop};
use weft_planner::WeftContext;
use weft_postgres::{PostgresOptions, PostgresSource};

/// `pg` (Postgres, reached through a proxy) with `t(n, pad)` of `rows` rows, and `shop`
/// (SQLite).
async fn behind_a_proxy(rows: u32) -> (Proxy, WeftContext) {
    let server = pg::server();
    let database = server.create_database("faults").await;
    server
        .execute(
            &database,
            &format!(
                "CREATE TABLE t AS SELECT g AS n, repeat('x', 40) AS pad FROM generate_series(1, {rows}) g"
            ),
        )
        .await
        .unwrap();
    let target = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await.unwrap();
    let mut options = PostgresOptions::from_url(&server.url(&database)).unwrap();
    options.host = "127.0.0.1".to_string();
    options.port = proxy.address().port();
    let source = Arc::new(PostgresSource::open("pg", options).await.unwrap());
    let mut weft = WeftContext::new();
    weft.register(source).unwrap();
    weft.register(shop().await).unwrap();
    (proxy, weft)
}

async fn answer(weft: &WeftContext, sql: &str) -> Vec<Vec<String>> {
    rows(&weft.sql(sql).await.unwrap().collect().await.unwrap())
}

#[tokio::test]
async fn a_slow_source_holds_up_only_its_own_queries() {
    let (proxy, weft) = behind_a_proxy(1000).await;
    assert_eq!(
        answer(&weft, "SELECT count(*) FROM pg.public.t").await,
        [["1000"]]
    );

    proxy.set(Mode::Slow(Duration::from_secs(3)));
    let slow = {
        let weft = weft.clone();
        tokio::spawn(async move { answer(&weft, "SELECT max(n) FROM pg.public.t").await })
    };
    // Meanwhile a query on SQLite is answered, without waiting for Postgres.
    let started = Instant::now();
    assert_eq!(
        answer(&weft, "SELECT count(*) FROM shop.main.customers").await,
        [["2000"]]
    );
    assert!(
        !slow.is_finished(),
        "the slow source answered in {:?}",
        started.elapsed()
    );
    proxy.set(Mode::Pass);
    assert_eq!(slow.await.unwrap(), [["1000"]]);
}

#[tokio::test]
async fn a_connection_cut_mid_stream_fails_the_query_at_once_and_the_next_one_reconnects() {
    let (proxy, weft) = behind_a_proxy(2_000_000).await;
    let mut stream = weft
        .sql("SELECT n, pad FROM pg.public.t")
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let mut received = stream.next().await.unwrap().unwrap().num_rows();

    proxy.set(Mode::Cut);
    let cut = Instant::now();
    let error = loop {
        match stream.next().await {
            Some(Ok(batch)) => received += batch.num_rows(),
            Some(Err(e)) => break e.to_string(),
            None => panic!("the stream ended as if complete after {received} of 2000000 rows"),
        }
    };
    let waited = cut.elapsed();
    assert!(error.contains("source `pg` (postgres)"), "{error}");
    assert!(waited < Duration::from_secs(5), "the error took {waited:?}");
    drop(stream);

    proxy.set(Mode::Pass);
    let mut last = None;
    for _ in 0..20 {
        match weft
            .sql("SELECT count(*) FROM pg.public.t")
            .await
            .unwrap()
            .collect()
            .await
        {
            Ok(batches) => {
                last = Some(rows(&batches));
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    assert_eq!(last, Some(vec![vec!["2000000".to_string()]]));
}
