//! The semantic layer in `weft serve`: users of two tenants share the demo's customers table
//! and each sees only its model catalog, its rows, and the columns its roles allow.

use std::process::{Command, Stdio};

use arrow_flight::sql::CommandGetTables;
use datafusion::arrow::array::AsArray;

use crate::common::{self, demo_config, fetch, login, query, rows, Server};

/// Tenant `vip` reads the VIP customers, tenant `rest` the others; `email` is masked
/// without the `support` role.
fn model(extra_column: &str) -> String {
    format!("{}\n{}", tenants(extra_column, "vip"), users())
}

/// The two tenants' `[[tenants]]`, `vip` reading the customers where `vip_filter` holds.
fn tenants(extra_column: &str, vip_filter: &str) -> String {
    let tenant = |name: &str, filter: &str| {
        format!(
            "[[tenants]]\nname = \"{name}\"\n\
             [[tenants.tables]]\nname = \"customers\"\nfrom = \"shop.main.customers\"\nfilter = \"{filter}\"\n\
             [[tenants.tables.columns]]\nname = \"customer_id\"\nexpr = \"id\"\n\
             [[tenants.tables.columns]]\nname = \"country\"\n\
             [[tenants.tables.columns]]\nname = \"email\"\nroles = [\"support\"]\nmask = \"'hidden'\"\n\
             {extra_column}"
        )
    };
    format!(
        "{}\n{}\n",
        tenant("vip", vip_filter),
        tenant("rest", "NOT vip")
    )
}

/// `ann` in tenant `vip`, `bob` in `rest` with role `support`, `root` an operator.
fn users() -> String {
    format!(
        "[[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\ntenant = \"vip\"\n\n\
         [[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\ntenant = \"rest\"\nroles = [\"support\"]\n\n\
         [[users]]\nname = \"root\"\npassword_hash = \"{hash}\"\n",
        hash = common::hash_password("pw"),
    )
}

/// The single value of a one-row, one-column answer, or the error's text.
async fn scalar(client: &mut Client, sql: &str) -> Result<String, String> {
    match query(client, sql).await {
        Ok(batches) => {
            let rows = rows(&batches);
            assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
            Ok(rows[0].clone())
        }
        Err(e) => Err(e.to_string()),
    }
}

type Client = arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>;

#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_sees_its_model_rows_and_columns() {
    let server = Server::with_config(&demo_config(&model("")), &[]);
    let mut root = login(&server.url(), "root", "pw").await;
    let mut ann = login(&server.url(), "ann", "pw").await;
    let mut bob = login(&server.url(), "bob", "pw").await;

    let vip = rows(
        &query(
            &mut root,
            "SELECT count(*) FROM shop.main.customers WHERE vip",
        )
        .await
        .unwrap(),
    );
    let rest = rows(
        &query(
            &mut root,
            "SELECT count(*) FROM shop.main.customers WHERE NOT vip",
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        rows(
            &query(&mut ann, "SELECT count(*) FROM customers")
                .await
                .unwrap()
        ),
        vip
    );
    assert_eq!(
        rows(
            &query(&mut bob, "SELECT count(*) FROM customers")
                .await
                .unwrap()
        ),
        rest
    );
    assert_eq!(
        rows(
            &query(&mut ann, "SELECT count(*) FROM vip.public.customers")
                .await
                .unwrap()
        ),
        vip
    );

    // Storage and the other tenant are out of reach.
    for sql in [
        "SELECT count(*) FROM shop.main.customers",
        "SELECT count(*) FROM rest.public.customers",
        "SELECT count(*) FROM lake.public.events",
    ] {
        assert!(
            query(&mut ann, sql).await.is_err(),
            "{sql} must fail for ann"
        );
    }

    // Masked without the role, plain with it.
    assert_eq!(
        rows(
            &query(&mut ann, "SELECT DISTINCT email FROM customers")
                .await
                .unwrap()
        ),
        ["hidden"]
    );
    let emails = rows(
        &query(&mut bob, "SELECT count(DISTINCT email) FROM customers")
            .await
            .unwrap(),
    );
    assert_ne!(emails, ["1"], "bob has the support role");

    // GetTables lists the tenant's catalog only.
    let info = ann
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: false,
        })
        .await
        .unwrap();
    let batches = fetch(&mut ann, info).await.unwrap();
    let mut catalogs: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|c| c.unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    catalogs.sort();
    catalogs.dedup();
    assert_eq!(catalogs, ["vip"]);
    server.stop();
}

#[test]
fn a_model_that_does_not_fit_stops_start_up_naming_the_column() {
    let dir = common::scratch();
    let path = dir.path().join("weft.toml");
    let broken = "[[tenants.tables.columns]]\nname = \"phone\"\n";
    std::fs::write(&path, demo_config(&model(broken))).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--config".as_ref(), path.as_os_str()])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("WEFT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tenant `rest`, model table `customers`, column `phone`")
            || stderr.contains("tenant `vip`, model table `customers`, column `phone`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_file_reloads_on_change_and_sighup_and_a_broken_one_is_kept_out() {
    let config = format!("model = \"model.toml\"\n{}", demo_config(&users()));
    let server = Server::with_files(&config, &[("model.toml", &tenants("", "vip"))], &[]);
    let model = server.dir().join("model.toml");
    let mut root = login(&server.url(), "root", "pw").await;
    let mut ann = login(&server.url(), "ann", "pw").await;
    let count = "SELECT count(*) FROM customers";
    let vip = scalar(
        &mut root,
        "SELECT count(*) FROM shop.main.customers WHERE vip",
    )
    .await;
    let rest = scalar(
        &mut root,
        "SELECT count(*) FROM shop.main.customers WHERE NOT vip",
    )
    .await;
    assert_ne!(vip, rest);
    assert_eq!(scalar(&mut ann, count).await, vip);

    // A changed file is picked up for new sessions; ann's connection and token stay good.
    std::fs::write(&model, tenants("", "NOT vip")).unwrap();
    let reloaded = server.wait_for_log("Model reloaded (a model file changed)", 1);
    assert_eq!(reloaded.len(), 1, "{:?}", server.log());
    assert_eq!(scalar(&mut ann, count).await, rest);

    // A model that does not fit the sources is reported, naming the column; the last good
    // one stays.
    let broken = "[[tenants.tables.columns]]\nname = \"phone\"\n";
    std::fs::write(&model, tenants(broken, "vip")).unwrap();
    let refused = server.wait_for_log("Model not reloaded (a model file changed)", 1);
    assert_eq!(refused.len(), 1, "{:?}", server.log());
    assert!(
        refused[0].contains("model table `customers`, column `phone`"),
        "{}",
        refused[0]
    );
    assert_eq!(scalar(&mut ann, count).await, rest);

    // So does a file that is not TOML, or whose users' tenant is gone.
    std::fs::write(&model, "[[tenants]\n").unwrap();
    let refused = server.wait_for_log("Model not reloaded", 2);
    assert_eq!(refused.len(), 2, "{:?}", server.log());
    assert!(refused[1].contains("model.toml"), "{}", refused[1]);
    std::fs::write(&model, "[[tenants]]\nname = \"vip\"\n").unwrap();
    let refused = server.wait_for_log("Model not reloaded", 3);
    assert_eq!(refused.len(), 3, "{:?}", server.log());
    assert!(refused[2].contains("tenant `rest`"), "{}", refused[2]);
    assert_eq!(scalar(&mut ann, count).await, rest);

    // SIGHUP reloads the file as it is.
    std::fs::write(&model, tenants("", "vip")).unwrap();
    server.wait_for_log("Model reloaded", 2);
    std::fs::write(&model, tenants("", "NOT vip")).unwrap();
    server.wait_for_log("Model reloaded", 3);
    server.signal("HUP");
    let by_signal = server.wait_for_log("Model reloaded (SIGHUP)", 1);
    assert_eq!(by_signal.len(), 1, "{:?}", server.log());
    assert_eq!(scalar(&mut ann, count).await, rest);
    server.stop();
}

/// Tenant `vip`'s user tries to reach tenant `rest`'s rows, the storage tables and the
/// hidden or masked values; each attempt is refused or sees only what `vip` may see.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_reach_other_tenants_storage_or_hidden_columns() {
    // `signup_date` is for the `sales` role only, with no mask: hidden from ann.
    let hidden = "[[tenants.tables.columns]]\nname = \"signup_date\"\nroles = [\"sales\"]\n";
    let server = Server::with_config(&demo_config(&model(hidden)), &[]);
    let mut root = login(&server.url(), "root", "pw").await;
    let mut ann = login(&server.url(), "ann", "pw").await;
    let vip = scalar(
        &mut root,
        "SELECT count(*) FROM shop.main.customers WHERE vip",
    )
    .await
    .unwrap();
    let lake = common::demo().lake.join("events");
    let parquet = lake.join("month=2024-01").join("part-0.parquet");
    assert!(parquet.exists(), "{}", parquet.display());
    let scratch = common::scratch();
    let copy_to = scratch.path().join("stolen.csv");

    // Refused: every name outside the tenant's catalog, however spelled or wrapped.
    let refused = [
        "SELECT count(*) FROM shop.main.customers".to_string(),
        "SELECT count(*) FROM \"shop\".\"main\".\"customers\"".into(),
        "SELECT count(*) FROM SHOP.MAIN.CUSTOMERS".into(),
        "SELECT count(*) FROM main.customers".into(),
        "SELECT count(*) FROM orders".into(),
        "SELECT count(*) FROM lake.public.events".into(),
        "SELECT count(*) FROM rest.public.customers".into(),
        "SELECT count(*) FROM \"rest\".\"public\".\"customers\"".into(),
        "SELECT count(*) FROM REST.PUBLIC.CUSTOMERS".into(),
        "SELECT count(*) FROM datafusion.public.customers".into(),
        "WITH c AS (SELECT * FROM rest.public.customers) SELECT count(*) FROM c".into(),
        "SELECT count(*) FROM (SELECT customer_id FROM customers UNION ALL \
         SELECT customer_id FROM rest.public.customers) u"
            .into(),
        "SELECT count(*) FROM customers WHERE customer_id IN \
         (SELECT id FROM shop.main.customers)"
            .into(),
        "SELECT count(*) FROM customers a JOIN rest.public.customers b \
         ON a.customer_id = b.customer_id"
            .into(),
        "SELECT count(*) FROM customers WHERE EXISTS \
         (SELECT 1 FROM shop.main.orders o WHERE o.customer_id = customers.customer_id)"
            .into(),
        // Table functions and files.
        format!("SELECT count(*) FROM '{}'", parquet.display()),
        format!("SELECT count(*) FROM read_parquet('{}')", parquet.display()),
        format!(
            "CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{}'",
            lake.display()
        ),
        format!(
            "COPY (SELECT * FROM customers) TO '{}' STORED AS CSV",
            copy_to.display()
        ),
        "CREATE VIEW everyone AS SELECT * FROM customers".into(),
        "SET datafusion.catalog.default_catalog = 'shop'".into(),
        // The storage plan under the model is the operators' to see.
        "EXPLAIN SELECT count(*) FROM customers".into(),
        "EXPLAIN ANALYZE SELECT count(*) FROM customers".into(),
        // Hidden columns, by name, by storage name, in any clause.
        "SELECT signup_date FROM customers".into(),
        "SELECT count(*) FROM customers WHERE signup_date > DATE '2000-01-01'".into(),
        "SELECT max(\"signup_date\") FROM customers".into(),
        "SELECT customer_id FROM customers ORDER BY SIGNUP_DATE".into(),
        "SELECT id FROM customers".into(),
        "SELECT count(*) FROM customers WHERE vip".into(),
        "SELECT name FROM customers".into(),
    ];
    for sql in &refused {
        let answer = scalar(&mut ann, sql).await;
        let error = answer.expect_err(sql);
        // Refused for the right reason: the name is unknown, or the statement not a query.
        assert!(
            [
                "not found",
                "No field named",
                "queries only",
                "for operators"
            ]
            .iter()
            .any(|reason| error.contains(reason)),
            "{sql}: {error}"
        );
    }
    assert!(!copy_to.exists(), "COPY wrote {}", copy_to.display());

    // Answered with vip's rows only, however the tenant spells its own table or widens the
    // predicate.
    for sql in [
        "SELECT count(*) FROM customers",
        "SELECT count(*) FROM \"customers\"",
        "SELECT count(*) FROM VIP.PUBLIC.CUSTOMERS",
        "SELECT count(*) FROM vip.public.customers WHERE true OR customer_id IS NULL",
        "WITH c AS (SELECT * FROM customers) SELECT count(*) FROM c",
        "SELECT count(*) FROM (SELECT customer_id FROM customers UNION \
         SELECT customer_id FROM customers) u",
        "SELECT count(*) FROM customers WHERE customer_id IN (SELECT customer_id FROM customers)",
    ] {
        assert_eq!(
            scalar(&mut ann, sql).await.as_ref(),
            Ok(&vip),
            "{sql} must count vip's rows"
        );
    }

    // The catalog shows vip's model and nothing else; the hidden column is not in it.
    let listed = |batches: Vec<datafusion::arrow::array::RecordBatch>| {
        let mut rows = rows(&batches);
        rows.sort();
        rows
    };
    assert_eq!(
        listed(
            query(
                &mut ann,
                "SELECT DISTINCT table_catalog FROM information_schema.tables"
            )
            .await
            .unwrap()
        ),
        ["vip"]
    );
    let tables = listed(query(&mut ann, "SHOW TABLES").await.unwrap());
    assert!(
        tables.iter().all(|t| t.starts_with("vip|")),
        "SHOW TABLES: {tables:?}"
    );
    assert!(
        tables
            .iter()
            .any(|t| t.starts_with("vip|public|customers|")),
        "SHOW TABLES: {tables:?}"
    );
    let columns: Vec<String> = rows(&query(&mut ann, "DESCRIBE customers").await.unwrap())
        .iter()
        .map(|r| r.split('|').next().unwrap().to_string())
        .collect();
    assert_eq!(columns, ["customer_id", "country", "email"]);
    let star = query(&mut ann, "SELECT * FROM customers LIMIT 1")
        .await
        .unwrap();
    let names: Vec<String> = star[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["customer_id", "country", "email"]);
    assert_eq!(
        listed(
            query(
                &mut ann,
                "SELECT coalesce(definition, 'none') FROM information_schema.views"
            )
            .await
            .unwrap()
        ),
        ["none"],
        "a view's definition would show the storage tables"
    );

    // GetTables with schemas: the model's columns only.
    let info = ann
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("customers".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut ann, info).await.unwrap();
    let schemas: Vec<Vec<String>> = batches
        .iter()
        .flat_map(|b| {
            let ipc = b.column(4).as_binary::<i32>();
            (0..b.num_rows())
                .map(|row| {
                    let schema =
                        datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer(ipc.value(row))
                            .unwrap();
                    schema.fields().iter().map(|f| f.name().clone()).collect()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(schemas, [["customer_id", "country", "email"]]);

    // The masked column is the mask, through expressions, aggregates and predicates.
    for (sql, expected) in [
        (
            "SELECT min(email) || max(email) FROM customers",
            "hiddenhidden",
        ),
        ("SELECT max(length(email)) FROM customers", "6"),
        ("SELECT count(*) FROM customers WHERE email LIKE '%@%'", "0"),
        (
            "SELECT count(*) FROM customers WHERE email <> 'hidden' OR email IS NULL",
            "0",
        ),
    ] {
        assert_eq!(
            scalar(&mut ann, sql).await.as_deref(),
            Ok(expected),
            "{sql}"
        );
    }
    server.stop();
}
