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

/// A SQLite file with `t(n)` of 2 000 rows.
async fn sqlite_with_rows() -> (tempfile::TempDir, WeftContext) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(n INTEGER);
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000)
             INSERT INTO t SELECT n FROM g;
             CREATE TABLE big(n INTEGER);
             INSERT INTO big VALUES (9223372036854775807), (1);",
        )
        .unwrap();
    let source = Arc::new(
        weft_sqlite::SqliteSource::open("lite", &path)
            .await
            .unwrap(),
    );
    let mut weft = WeftContext::new();
    weft.register(source).unwrap();
    (dir, weft)
}

#[tokio::test]
async fn a_dropped_sqlite_query_is_interrupted_and_the_file_serves_the_next_one() {
    let (_dir, weft) = sqlite_with_rows().await;
    // 2000^3 = 8e9 row combinations counted inside SQLite: hours, unless interrupted.
    let endless = "SELECT count(*) FROM lite.main.t a, lite.main.t b, lite.main.t c \
                   WHERE a.n + b.n + c.n < 0";
    let explained = weft.explain(endless).await.unwrap();
    assert_eq!(explained.remote.len(), 1, "{:#?}", explained.remote);
    assert!(
        explained.remote[0].sql.contains("count("),
        "the query is not run by SQLite: {:#?}",
        explained.remote
    );
    let mut stream = weft
        .sql(endless)
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let polled = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(polled.is_err(), "the endless query ended: {polled:?}");
    drop(stream);

    // The file's one connection is free again at once: the statement was interrupted.
    let started = Instant::now();
    let batches = tokio::time::timeout(Duration::from_secs(10), async {
        weft.sql("SELECT count(*) FROM lite.main.t")
            .await
            .unwrap()
            .collect()
            .await
    })
    .await
    .expect("the next query waited for the dropped one")
    .unwrap();
    assert_eq!(rows(&batches), [["2000"]]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_error_sqlite_raises_mid_result_fails_the_query_never_a_short_result() {
    let (_dir, weft) = sqlite_with_rows().await;
    for sql in [
        // The error comes with the only row.
        "SELECT sum(n) FROM lite.main.big",
        // The first row is fine, the second overflows.
        "SELECT abs(n - 9223372036854775807 - 2) FROM lite.main.big ORDER BY n DESC",
    ] {
        let error = weft
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .expect_err(sql)
            .to_string();
        assert!(error.contains("integer overflow"), "{sql}: {error}");
        assert!(error.contains("source `lite` (sqlite)"), "{sql}: {error}");
    }
}
