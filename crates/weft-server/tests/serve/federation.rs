//! Weft federating Weft: server B has server A as a `flightsql` source; a query in B over A's
//! tables reaches A as one SQL statement.

use crate::common::{self, login, query, rows, Server};

#[tokio::test(flavor = "multi_thread")]
async fn weft_b_sends_whole_queries_to_weft_a() {
    let a = Server::demo();
    let b_config = format!(
        "[[sources]]\nname = \"a\"\nkind = \"flightsql\"\nurl = \"{}\"\nuser = \"demo\"\n\
         password_env = \"WEFT_TEST_A_PASSWORD\"\n\n\
         [[users]]\nname = \"bea\"\npassword_hash = \"{}\"\n",
        a.url(),
        common::hash_password("b-secret")
    );
    let b = Server::with_config(&b_config, &[("WEFT_TEST_A_PASSWORD", "demo")]);
    let mut on_a = login(&a.url(), "demo", "demo").await;
    let mut on_b = login(&b.url(), "bea", "b-secret").await;

    // A's catalogs appear in B as schemas `<catalog>_<schema>`.
    let join = "SELECT c.country, count(*) AS orders, round(sum(o.amount), 2) AS total \
                FROM {shop}.customers c JOIN {shop}.orders o ON o.customer_id = c.id \
                WHERE c.vip AND o.status = 'shipped' \
                GROUP BY c.country ORDER BY total DESC, c.country LIMIT 4";
    let expected = rows(
        &query(&mut on_a, &join.replace("{shop}", "shop.main"))
            .await
            .unwrap(),
    );
    assert_eq!(expected.len(), 4, "{expected:?}");
    let before = a.wait_for_log("query done", 1).len();

    let answer = rows(
        &query(&mut on_b, &join.replace("{shop}", "a.shop_main"))
            .await
            .unwrap(),
    );
    assert_eq!(answer, expected);

    // A saw exactly one statement for B's query: the join, filter, aggregate, sort and limit.
    let done = a.wait_for_log("query done", before + 1);
    assert_eq!(done.len(), before + 1, "{done:#?}");
    let sent = done.last().unwrap();
    for part in [
        "JOIN",
        "'shipped'",
        "GROUP BY",
        "ORDER BY",
        "LIMIT 4",
        "user=demo",
    ] {
        assert!(
            sent.contains(part),
            "`{part}` is not in A's statement: {sent}"
        );
    }

    // Tables of two of A's catalogs are in one compute context too: A federates them itself.
    let cross = "SELECT count(*) FROM a.shop_main.customers c \
                 JOIN a.lake_public.events e ON e.customer_id = c.id WHERE e.kind = 'purchase'";
    let direct = "SELECT count(*) FROM shop.main.customers c \
                  JOIN lake.public.events e ON e.customer_id = c.id WHERE e.kind = 'purchase'";
    let expected = rows(&query(&mut on_a, direct).await.unwrap());
    let before = a.wait_for_log("query done", 3).len();
    assert_eq!(rows(&query(&mut on_b, cross).await.unwrap()), expected);
    let done = a.wait_for_log("query done", before + 1);
    assert_eq!(done.len(), before + 1, "{done:#?}");
    assert!(
        done.last().unwrap().contains("sources=lake,shop"),
        "{done:#?}"
    );

    // B's log names the Flight SQL source it used.
    let on_b_log = b.wait_for_log("query done", 2);
    assert!(
        on_b_log.iter().all(|l| l.contains("sources=a")),
        "{on_b_log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_for_the_remote_is_a_clear_start_up_error() {
    let a = Server::demo();
    let config = format!(
        "[[sources]]\nname = \"a\"\nkind = \"flightsql\"\nurl = \"{}\"\nuser = \"demo\"\n\
         password_env = \"WEFT_TEST_A_PASSWORD\"\n",
        a.url()
    );
    let dir = common::scratch();
    let path = dir.path().join("weft.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--config")
        .arg(&path)
        .arg("sources")
        .env("WEFT_TEST_A_PASSWORD", "not-demo")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("source `a` (flightsql)") && stderr.contains("invalid user or password"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timestamp_filter_on_a_remote_column_outside_utc_means_the_same_instant() {
    // A serves a Parquet file whose `at` is zoned `Europe/Berlin` (UTC+1 in January).
    let files = common::scratch();
    let ctx = datafusion::prelude::SessionContext::new();
    let path = files.path().join("visits.parquet");
    let copy = format!(
        "COPY (SELECT id, arrow_cast(CAST(at AS TIMESTAMP), \
                'Timestamp(Microsecond, Some(\"Europe/Berlin\"))') AS at \
              FROM (VALUES (1, '2024-01-01T01:30:00Z'), (2, '2024-01-01T02:30:00Z'), \
                           (3, '2024-01-01T03:30:00Z')) AS v(id, at)) \
         TO '{}' STORED AS PARQUET",
        path.display()
    );
    ctx.sql(&copy).await.unwrap().collect().await.unwrap();
    let a_config = format!(
        "[[sources]]\nname = \"lake\"\nkind = \"parquet\"\nurl = \"{}\"\n\
         [sources.tables]\nvisits = \"visits.parquet\"\n\n\
         [[users]]\nname = \"ann\"\npassword_hash = \"{}\"\n",
        files.path().display(),
        common::hash_password("a-secret")
    );
    let a = Server::with_config(&a_config, &[]);
    let b_config = format!(
        "[[sources]]\nname = \"a\"\nkind = \"flightsql\"\nurl = \"{}\"\nuser = \"ann\"\n\
         password_env = \"WEFT_TEST_A_PASSWORD\"\n\n\
         [[users]]\nname = \"bea\"\npassword_hash = \"{}\"\n",
        a.url(),
        common::hash_password("b-secret")
    );
    let b = Server::with_config(&b_config, &[("WEFT_TEST_A_PASSWORD", "a-secret")]);
    let mut on_a = login(&a.url(), "ann", "a-secret").await;
    let mut on_b = login(&b.url(), "bea", "b-secret").await;
    for filter in [
        "at >= TIMESTAMP '2024-01-01 02:00:00'",
        "at < '2024-01-01T03:00:00+01:00'",
        "at BETWEEN '2024-01-01T02:00:00Z' AND '2024-01-01T04:00:00+01:00'",
    ] {
        let sql = "SELECT id FROM {t} WHERE {filter} ORDER BY id".replace("{filter}", filter);
        let expected = rows(
            &query(&mut on_a, &sql.replace("{t}", "lake.public.visits"))
                .await
                .unwrap(),
        );
        let got = rows(
            &query(&mut on_b, &sql.replace("{t}", "a.lake_public.visits"))
                .await
                .unwrap(),
        );
        assert_eq!(got, expected, "{filter}: A ran {:#?}", a.log());
    }
    // And the filters ran in A.
    let done = a.wait_for_log("query done", 6);
    let sent = done.iter().filter(|l| l.contains("arrow_cast")).count();
    assert_eq!(sent, 3, "{done:#?}");
}
