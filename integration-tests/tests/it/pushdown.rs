//! What each source is asked: filters and only the needed columns reach the source, and a
//! sub-plan over one database runs there as one statement.

use integration_tests::{differences, federated, local, pushed_whole, rows};
use weft_core::Source;

async fn answers(sql: &str) -> Vec<Vec<String>> {
    let weft = local().await;
    rows(&weft.sql(sql).await.unwrap().collect().await.unwrap())
}

#[tokio::test]
async fn cross_source_join_sends_each_side_only_its_filter_and_columns() {
    let sql = "SELECT c.name, e.event_id, e.value
               FROM shop.main.customers c
               JOIN lake.public.events e ON e.customer_id = c.id
               WHERE c.country = 'NL' AND c.signup_date >= DATE '2023-06-01'
                 AND e.kind = 'purchase' AND e.month = '2024-03' AND e.value > 150
               ORDER BY e.event_id";
    let (weft, shop) = federated().await;
    let got = rows(&weft.sql(sql).await.unwrap().collect().await.unwrap());
    assert!(!got.is_empty(), "the query should match some rows");
    assert_eq!(got, answers(sql).await);

    let sent = shop.query_log().unwrap().statements();
    assert_eq!(
        sent,
        [
            "SELECT `c`.`id`, `c`.`name` FROM (SELECT `customers`.`id`, `customers`.`name` \
          FROM `customers` WHERE ((`customers`.`country` = 'NL') \
          AND (`customers`.`signup_date` >= '2023-06-01'))) AS `c`"
        ],
    );
}

#[tokio::test]
async fn join_within_one_sqlite_file_is_one_remote_query() {
    let sql = "SELECT c.country, count(*) AS orders, sum(o.amount) AS total
               FROM shop.main.customers c
               JOIN shop.main.orders o ON o.customer_id = c.id
               WHERE o.status = 'paid' AND c.vip
               GROUP BY c.country
               ORDER BY total DESC
               LIMIT 3";
    let (weft, shop) = federated().await;
    let explanation = weft.explain(sql).await.unwrap();
    assert_eq!(explanation.remote.len(), 1, "{explanation:#?}");
    let remote = &explanation.remote[0];
    assert_eq!(remote.source, "shop");
    assert!(remote.compute_context.starts_with("sqlite:"), "{remote:?}");
    assert_eq!(
        remote.sql,
        "SELECT `c`.`country`, count(1) AS `orders`, sum(`o`.`amount`) AS `total` \
         FROM (SELECT `customers`.`id`, `customers`.`country` FROM `customers` WHERE `customers`.`vip`) AS `c` \
         INNER JOIN (SELECT `orders`.`customer_id`, `orders`.`amount` FROM `orders` \
         WHERE (`orders`.`status` = 'paid')) AS `o` ON `c`.`id` = `o`.`customer_id` \
         GROUP BY `c`.`country` ORDER BY `total` DESC NULLS FIRST LIMIT 3"
    );

    let got = rows(&weft.sql(sql).await.unwrap().collect().await.unwrap());
    assert_eq!(got.len(), 3);
    assert_eq!(got, answers(sql).await);
    assert_eq!(
        shop.query_log().unwrap().statements(),
        vec![remote.sql.clone()]
    );
}

#[tokio::test]
async fn date_filters_reach_sqlite_as_iso_text() {
    // DataFusion's unparser writes CAST('2023-01-01' AS DATE), which SQLite evaluates to the
    // integer 2023 and so matches nothing: the literal must arrive as ISO text.
    let sql = "SELECT count(*) FROM shop.main.customers WHERE signup_date < DATE '2023-01-01'";
    let (weft, shop) = federated().await;
    let got = rows(&weft.sql(sql).await.unwrap().collect().await.unwrap());
    assert_eq!(got, answers(sql).await);
    assert_ne!(got, [["0"]], "some customers signed up in 2022");
    let sent = shop.query_log().unwrap().statements();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("< '2023-01-01'"), "{sent:?}");
    assert!(!sent[0].contains("CAST"), "{sent:?}");
}

#[tokio::test]
async fn what_sqlite_computes_differently_stays_in_datafusion() {
    // LIKE is case-insensitive in SQLite, and integer division by zero is NULL there: both
    // must be evaluated by DataFusion, while the rest of the filter still goes to SQLite.
    let sql = "SELECT id, name FROM shop.main.customers
               WHERE name LIKE 'z%' AND country = 'NL' ORDER BY id";
    let (weft, shop) = federated().await;
    let got = rows(&weft.sql(sql).await.unwrap().collect().await.unwrap());
    assert_eq!(got, answers(sql).await);
    assert!(
        got.is_empty(),
        "no name starts with a lower-case z: {got:?}"
    );
    let sent = shop.query_log().unwrap().statements();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("`country` = 'NL'"), "{sent:?}");
    assert!(!sent[0].contains("LIKE"), "{sent:?}");

    let sql = "SELECT count(*) FROM shop.main.orders WHERE id / (id % 2) > 100";
    let err = weft.sql(sql).await.unwrap().collect().await.unwrap_err();
    assert!(err.to_string().contains("Divide by zero"), "{err}");
}

/// The SQLite file at `path` opened as the source `lite`, with and without pushdown: the
/// latter scans the tables and computes everything in DataFusion.
async fn pushdown_and_scans(
    path: &std::path::Path,
) -> (
    weft_planner::WeftContext,
    weft_planner::WeftContext,
    std::sync::Arc<weft_sqlite::SqliteSource>,
) {
    let open = || async {
        std::sync::Arc::new(weft_sqlite::SqliteSource::open("lite", path).await.unwrap())
    };
    let lite = open().await;
    let mut weft = weft_planner::WeftContext::new();
    weft.register(lite.clone()).unwrap();
    let mut scans = weft_planner::WeftContext::without_pushdown();
    scans.register(open().await).unwrap();
    (weft, scans, lite)
}

#[tokio::test]
async fn sqlite_columns_with_a_collation_give_datafusions_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collated.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, ci TEXT COLLATE NOCASE,
                             rt TEXT COLLATE RTRIM, plain TEXT);
             INSERT INTO t VALUES (1, 'abc', 'x', 'abc'), (2, 'ABC', 'x  ', 'ABC'),
                                  (3, 'Abd', 'y', 'abd'), (4, NULL, NULL, NULL);
             CREATE VIEW v AS SELECT id, ci, plain COLLATE NOCASE AS pci, upper(plain) AS up
                              FROM t;",
        )
        .unwrap();
    let (weft, scans, lite) = pushdown_and_scans(&path).await;
    // Each of these answers otherwise in SQLite, which compares by the column's collation.
    let wrong = differences(&weft, &scans, &[
        "SELECT id FROM lite.main.t WHERE ci = 'abc' ORDER BY id",
        "SELECT id FROM lite.main.t WHERE rt = 'x' ORDER BY id",
        "SELECT id FROM lite.main.t WHERE ci IN ('abc', 'abd') ORDER BY id",
        "SELECT id FROM lite.main.t WHERE ci < 'b' AND ci > 'a' ORDER BY id",
        "SELECT ci, count(*) AS n FROM lite.main.t GROUP BY ci ORDER BY ci",
        "SELECT count(DISTINCT rt) AS n FROM lite.main.t",
        "SELECT DISTINCT ci FROM lite.main.t ORDER BY ci",
        "SELECT min(ci) AS lo, max(rt) AS hi FROM lite.main.t",
        "SELECT id FROM lite.main.t ORDER BY ci DESC, id LIMIT 2",
        "SELECT a.id, b.id FROM lite.main.t a JOIN lite.main.t b ON a.ci = b.ci ORDER BY 1, 2",
        "SELECT a.id, b.id FROM lite.main.t a JOIN lite.main.t b ON a.plain = b.ci ORDER BY 1, 2",
        "SELECT id FROM lite.main.v WHERE pci = 'abc' ORDER BY id",
        "SELECT id FROM lite.main.v WHERE ci = 'abc' ORDER BY id",
    ])
    .await;
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Byte-compared columns, in the table and in the view (a function's result has no
    // collation), are still filtered in SQLite; a collated one is still selected there.
    for sql in [
        "SELECT id, ci, rt FROM lite.main.t WHERE plain = 'abc' AND ci IS NOT NULL",
        "SELECT id, up FROM lite.main.v WHERE up = 'ABC'",
        "SELECT count(ci) AS n FROM lite.main.t WHERE plain < 'b'",
    ] {
        pushed_whole(&weft, &scans, lite.query_log().unwrap(), sql, &["WHERE"]).await;
    }
}

#[tokio::test]
async fn substr_from_the_start_runs_in_sqlite_and_from_the_end_stays_in_datafusion() {
    // SQLite counts a negative start from the end of the text; DataFusion, as Postgres, from
    // before its first character.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texts.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, n INTEGER NOT NULL);
             INSERT INTO t VALUES (1, 'alphabet', 2), (2, 'ĳsselmeer', 3), (3, NULL, 1),
                                  (4, '日本語テキスト', 4), (5, '', 0), (6, '13-555', 1);",
        )
        .unwrap();
    let (weft, scans, lite) = pushdown_and_scans(&path).await;
    let wrong = differences(
        &weft,
        &scans,
        &[
            "SELECT id, substr(s, -2, 4) AS a, substr(s, 0, 3) AS b, substr(s, -3) AS c
         FROM lite.main.t ORDER BY id",
            "SELECT id, substr(s, n) AS a, substr(s, 2, n) AS b FROM lite.main.t ORDER BY id",
        ],
    )
    .await;
    assert!(wrong.is_empty(), "{wrong:#?}");
    for sql in [
        "SELECT id, substr(s, 2, 3) AS a, substr(s, 4) AS b, substr(s, 1, 0) AS c
         FROM lite.main.t WHERE substring(s FROM 1 FOR 2) IN ('al', 'ĳs', '日本', '13')",
        "SELECT substr(s, 1, 1) AS first, count(*) AS n FROM lite.main.t GROUP BY substr(s, 1, 1)",
    ] {
        pushed_whole(&weft, &scans, lite.query_log().unwrap(), sql, &["substr("]).await;
    }
}

#[tokio::test]
async fn explain_shows_the_sql_per_source() {
    let weft = federated().await.0;
    let batches = weft
        .sql("EXPLAIN SELECT name FROM shop.main.customers WHERE id = 7")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("VirtualExecutionPlan name=shop"), "{text}");
    assert!(text.contains("WHERE (`customers`.`id` = 7)"), "{text}");
}

#[tokio::test]
async fn the_query_log_counts_the_rows_and_bytes_each_statement_returned() {
    let (weft, shop) = federated().await;
    let sql = "SELECT id, name FROM shop.main.customers WHERE country = 'NL'";
    let got = weft.sql(sql).await.unwrap().collect().await.unwrap();
    let rows: usize = got.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 0, "the query should match some rows");

    let logged = shop.query_log().unwrap().queries();
    assert_eq!(logged.len(), 1, "{logged:?}");
    let received = &logged[0];
    assert_eq!(received.source, "shop");
    let counted = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted(&received.rows), rows as u64);
    // The data itself: the 8-byte ids and the names' offsets and text, not the capacity
    // the connector allocated.
    let names: usize = got
        .iter()
        .map(|b| {
            let text = datafusion::arrow::compute::cast(
                b.column(1),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            text.to_data().buffers()[1].len()
        })
        .sum();
    let bytes = counted(&received.bytes);
    assert!(
        bytes >= (8 * rows + names) as u64,
        "{bytes} bytes for {rows} rows with {names} bytes of names"
    );
    assert!(
        bytes <= (8 * rows + names + 16 * rows + 64) as u64,
        "{bytes} bytes for {rows} rows with {names} bytes of names"
    );
}

#[tokio::test]
async fn a_join_sends_the_other_side_only_the_keys_that_can_match() {
    // The events of one month are fewer than the orders (by SQLite's largest rowid), so they
    // are read first; SQLite is then asked only for the orders of their customers.
    let sql = "SELECT e.event_id, o.id, o.customer_id
               FROM lake.public.events e
               JOIN shop.main.orders o ON o.customer_id = e.customer_id
               WHERE e.kind = 'purchase' AND e.month = '2024-03' AND e.value > 150
                 AND e.customer_id % 20 = 0
               ORDER BY e.event_id, o.id";
    let (weft, shop) = federated().await;
    let got = rows(&weft.sql(sql).await.unwrap().collect().await.unwrap());
    assert!(!got.is_empty(), "the query should match some rows");
    assert_eq!(got, answers(sql).await);

    // The customers of those events, whether or not they have orders.
    let keys = answers(
        "SELECT DISTINCT customer_id FROM lake.public.events
         WHERE kind = 'purchase' AND month = '2024-03' AND value > 150 AND customer_id % 20 = 0",
    )
    .await;
    let customers: std::collections::BTreeSet<i64> =
        keys.iter().map(|r| r[0].parse().unwrap()).collect();
    let orders: std::collections::BTreeSet<&str> = got.iter().map(|r| r[1].as_str()).collect();
    let sent = shop.query_log().unwrap().queries();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let (min, max) = (customers.first().unwrap(), customers.last().unwrap());
    let list = customers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        sent[0].sql,
        format!(
            "WITH weft_dynamic_filter(weft_c0, weft_c1) AS \
             (SELECT `orders`.`id`, `orders`.`customer_id` FROM `orders`) \
             SELECT * FROM weft_dynamic_filter \
             WHERE ((weft_c1 >= {min} AND weft_c1 <= {max}) AND weft_c1 IN ({list}))"
        )
    );
    // Exactly the orders of those customers crossed.
    let received = sent[0].rows.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(received, orders.len() as u64);
}

/// The hash joins in `sql`'s physical plan, and for each whether it fills a dynamic filter.
async fn joins_with_dynamic_filters(weft: &weft_planner::WeftContext, sql: &str) -> Vec<bool> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::physical_plan::joins::HashJoinExec;
    use datafusion::physical_plan::ExecutionPlan;
    let plan = weft
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut joins = Vec::new();
    plan.apply(|node| {
        if let Some(join) = node.downcast_ref::<HashJoinExec>() {
            joins.push(!join.dynamic_expressions_produced().is_empty());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    joins
}

#[tokio::test]
async fn only_a_join_whose_other_side_is_a_remote_query_fills_a_dynamic_filter() {
    let (weft, _shop) = federated().await;
    // Parquet on both sides: the filter could only prune row groups, and costs more.
    let parquet = "SELECT a.event_id FROM lake.public.events a
                   JOIN lake.public.events b ON b.event_id = a.event_id
                   WHERE a.kind = 'purchase'";
    assert_eq!(joins_with_dynamic_filters(&weft, parquet).await, [false]);
    // SQLite read second: its statement gets the keys.
    let remote = "SELECT e.event_id, o.id FROM lake.public.events e
                  JOIN shop.main.orders o ON o.customer_id = e.customer_id
                  WHERE e.kind = 'purchase' AND e.month = '2024-03' AND e.value > 150";
    assert_eq!(joins_with_dynamic_filters(&weft, remote).await, [true]);
}
