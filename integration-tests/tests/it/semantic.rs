//! The semantic layer over a real PostgreSQL table shared by two tenants: row filters reach
//! the SQL PostgreSQL receives, columns are renamed, hidden and masked by role, and storage
//! is out of a tenant's reach.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use integration_tests::{pg, rows};
use weft_core::config::{ModelColumnConfig, ModelTableConfig, TenantConfig};
use weft_planner::WeftContext;
use weft_semantic::{Error, SemanticLayer};

/// `crm.public.accounts`: three rows of org 1, two of org 2.
async fn storage() -> WeftContext {
    let database = pg::server().create_database("semantic").await;
    pg::server()
        .execute(
            &database,
            "CREATE TABLE accounts (id integer PRIMARY KEY, org_id integer NOT NULL, \
             name text, email text, revenue double precision);
             INSERT INTO accounts VALUES
               (1, 1, 'Ada', 'ada@acme.test', 10.5),
               (2, 1, 'Bob', 'bob@acme.test', 20),
               (3, 1, 'Cyd', NULL, NULL),
               (4, 2, 'Dee', 'dee@globex.test', 7),
               (5, 2, 'Eve', 'eve@globex.test', 3);",
        )
        .await
        .expect("create accounts");
    let options =
        weft_postgres::PostgresOptions::from_url(&pg::server().url(&database)).expect("url");
    let crm = weft_postgres::PostgresSource::open("crm", options)
        .await
        .expect("open crm");
    let mut weft = WeftContext::new();
    weft.register(Arc::new(crm)).expect("register crm");
    weft
}

/// The same model table for both tenants, on their own `org_id`.
fn tenant(name: &str, org: i32) -> TenantConfig {
    TenantConfig::new(name).with_table(
        ModelTableConfig::from_table("customers", "crm.public.accounts")
            .with_filter(format!("org_id = {org}"))
            .with_column(ModelColumnConfig::new("customer_id").with_expr("id"))
            .with_column(ModelColumnConfig::new("name"))
            .with_column(ModelColumnConfig::new("email").for_roles(&["support"], Some("'***'")))
            .with_column(ModelColumnConfig::new("revenue").for_roles(&["finance"], None))
            .with_column(ModelColumnConfig::new("big").with_expr("revenue > 15")),
    )
}

async fn layer() -> SemanticLayer {
    SemanticLayer::new(storage().await, &[tenant("acme", 1), tenant("globex", 2)])
        .await
        .expect("the model fits the storage")
}

async fn query(weft: &WeftContext, sql: &str) -> Vec<Vec<String>> {
    let batches: Vec<RecordBatch> = weft
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows(&batches)
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|r| r.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_reads_only_its_rows_and_the_filter_runs_in_postgres() {
    let layer = layer().await;
    for (tenant, org, count) in [("acme", 1, "3"), ("globex", 2, "2")] {
        let weft = layer.tenant_session(tenant, &[]).await.unwrap();
        assert_eq!(
            query(&weft, "SELECT count(*) FROM customers").await,
            [[count]]
        );
        let explained = weft
            .explain("SELECT count(*) FROM customers")
            .await
            .unwrap();
        let sql: Vec<&str> = explained.remote.iter().map(|r| r.sql.as_str()).collect();
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert!(
            sql[0].contains(&format!("\"org_id\" = {org}")),
            "the tenant filter is in the SQL PostgreSQL runs: {}",
            sql[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_columns_are_renamed_and_their_filters_reach_postgres_by_storage_name() {
    let layer = layer().await;
    let weft = layer.tenant_session("acme", &[]).await.unwrap();
    assert_eq!(
        query(&weft, "SELECT customer_id, name, big FROM customers WHERE customer_id >= 2 ORDER BY customer_id").await,
        [["2", "Bob", "true"], ["3", "Cyd", "NULL"]]
    );
    let explained = weft
        .explain("SELECT name FROM acme.public.customers WHERE customer_id = 2")
        .await
        .unwrap();
    let sql = &explained.remote[0].sql;
    assert!(
        sql.contains("\"id\" = 2") && sql.contains("\"org_id\" = 1"),
        "{sql}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_are_hidden_or_masked_by_role() {
    let layer = layer().await;
    let plain = layer.tenant_session("acme", &[]).await.unwrap();
    // `revenue` is hidden without `finance`: not in the schema, not selectable.
    let columns = query(
        &plain,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(columns, [["customer_id"], ["name"], ["email"], ["big"]]);
    let error = plain
        .sql("SELECT revenue FROM customers")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("revenue"), "{error}");
    // `email` is masked without `support`, even through expressions and aggregates.
    assert_eq!(
        query(
            &plain,
            "SELECT DISTINCT email, max(length(email)) OVER () FROM customers"
        )
        .await,
        [["***", "3"]]
    );
    let support = layer
        .tenant_session("acme", &roles(&["support", "finance"]))
        .await
        .unwrap();
    assert_eq!(
        query(
            &support,
            "SELECT email, revenue FROM customers ORDER BY customer_id"
        )
        .await,
        [
            ["ada@acme.test", "10.5"],
            ["bob@acme.test", "20.0"],
            ["NULL", "NULL"]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_and_other_tenants_are_out_of_reach() {
    let layer = layer().await;
    let weft = layer.tenant_session("acme", &[]).await.unwrap();
    for sql in [
        "SELECT * FROM crm.public.accounts",
        "SELECT * FROM public.accounts",
        "SELECT * FROM accounts",
        "SELECT * FROM globex.public.customers",
        "SELECT * FROM \"GLOBEX\".public.customers",
        "SELECT name FROM customers UNION ALL SELECT name FROM globex.public.customers",
        "WITH x AS (SELECT * FROM crm.public.accounts) SELECT * FROM x",
        "SELECT * FROM customers WHERE customer_id IN (SELECT id FROM crm.public.accounts)",
    ] {
        assert!(weft.sql(sql).await.is_err(), "{sql} must not plan");
    }
    let catalogs = query(
        &weft,
        "SELECT DISTINCT table_catalog FROM information_schema.tables ORDER BY 1",
    )
    .await;
    assert_eq!(catalogs, [["acme"]]);
    // A filter that would match other orgs' rows still reads only acme's.
    assert_eq!(
        query(
            &weft,
            "SELECT count(*) FROM customers WHERE name IN ('Dee', 'Eve') OR true"
        )
        .await,
        [["3"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_model_is_refused_naming_tenant_table_and_column() {
    let storage = storage().await;
    let broken = TenantConfig::new("acme").with_table(
        ModelTableConfig::from_table("customers", "crm.public.accounts")
            .with_column(ModelColumnConfig::new("name"))
            .with_column(ModelColumnConfig::new("phone")),
    );
    let error = SemanticLayer::new(storage.clone(), &[broken])
        .await
        .unwrap_err();
    let Error::Model {
        tenant,
        table,
        column,
        ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!((tenant.as_str(), table.as_str()), ("acme", "customers"));
    assert_eq!(column.as_deref(), Some("phone"), "{error}");

    let missing_table = TenantConfig::new("acme").with_table(
        ModelTableConfig::from_table("customers", "crm.public.nope")
            .with_column(ModelColumnConfig::new("name")),
    );
    let error = SemanticLayer::new(storage.clone(), &[missing_table])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("crm.public.nope"), "{error}");

    let bad_filter = TenantConfig::new("acme").with_table(
        ModelTableConfig::from_table("customers", "crm.public.accounts")
            .with_filter("org = 1")
            .with_column(ModelColumnConfig::new("name")),
    );
    let error = SemanticLayer::new(storage, &[bad_filter])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("row filter"), "{error}");
}

/// `pay.public.payments`, a Parquet table of payments by account: two by Ada and one by Bob
/// (org 1), one by Dee and one by Eve (org 2).
async fn payments(dir: &std::path::Path) -> Arc<weft_parquet::ParquetSource> {
    let folder = dir.join("payments");
    std::fs::create_dir_all(&folder).unwrap();
    let copy = format!(
        "COPY (SELECT * FROM (VALUES (1, 12.5, 'card'), (1, 3.0, 'cash'), (2, 40.0, 'card'), \
         (4, 99.0, 'card'), (5, 1.0, 'cash')) AS t(account, amount, method)) \
         TO '{}' STORED AS PARQUET",
        folder.join("part-0.parquet").display()
    );
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.sql(&copy).await.unwrap().collect().await.unwrap();
    let url = dir.display().to_string();
    Arc::new(
        weft_parquet::ParquetSource::open("pay", &url, &[("payments", "payments/")])
            .await
            .expect("open pay"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_table_joins_postgres_and_parquet_with_filters_pushed_to_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = storage().await;
    storage.register(payments(dir.path()).await).unwrap();
    let tenant = |name: &str, org: i32| {
        TenantConfig::new(name).with_table(
            ModelTableConfig::from_sql(
                "billing",
                "SELECT a.org_id, a.name, p.amount, p.method \
                 FROM crm.public.accounts a JOIN pay.public.payments p ON p.account = a.id",
            )
            .with_filter(format!("org_id = {org}"))
            .with_column(ModelColumnConfig::new("customer").with_expr("name"))
            .with_column(ModelColumnConfig::new("paid").with_expr("amount"))
            .with_column(ModelColumnConfig::new("how").with_expr("method")),
        )
    };
    let layer = SemanticLayer::new(storage, &[tenant("acme", 1), tenant("globex", 2)])
        .await
        .expect("the model fits the storage");
    let sql = "SELECT customer, sum(paid) FROM billing \
               WHERE paid > 2 AND how = 'card' AND customer <> 'Cyd' \
               GROUP BY customer ORDER BY customer";
    for (tenant, org, all, answer) in [
        ("acme", 1, "3", vec![["Ada", "12.5"], ["Bob", "40.0"]]),
        ("globex", 2, "2", vec![["Dee", "99.0"]]),
    ] {
        let weft = layer.tenant_session(tenant, &[]).await.unwrap();
        assert_eq!(
            query(&weft, "SELECT count(*) FROM billing").await,
            [[all]],
            "{tenant}"
        );
        assert_eq!(query(&weft, sql).await, answer, "{tenant}");

        // Each source gets the filters on its own columns, under their storage names.
        let explained = weft.explain(sql).await.unwrap();
        let remote: Vec<&str> = explained.remote.iter().map(|r| r.sql.as_str()).collect();
        assert_eq!(remote.len(), 1, "only crm is remote: {remote:?}");
        assert!(
            remote[0].contains(&format!("\"org_id\" = {org}"))
                && remote[0].contains("\"name\" <> 'Cyd'"),
            "the row filter and the customer filter reach PostgreSQL: {}",
            remote[0]
        );
        let scan = explained
            .plan
            .lines()
            .find(|l| l.contains("payments") && l.contains("predicate="))
            .unwrap_or_else(|| panic!("no filtered Parquet scan in\n{}", explained.plan));
        assert!(
            scan.contains("amount@") && scan.contains("method@") && scan.contains("card"),
            "the paid and how filters reach the Parquet scan as amount and method: {scan}"
        );
    }
}

/// A predicate that fails on some row (here a division by zero on another tenant's row) must
/// not run before the row filter, or its error would tell the tenant the row exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_predicate_does_not_reveal_other_tenants_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = storage().await;
    storage.register(payments(dir.path()).await).unwrap();
    let acme = TenantConfig::new("acme")
        .with_table(
            ModelTableConfig::from_table("customers", "crm.public.accounts")
                .with_filter("org_id = 1")
                .with_column(ModelColumnConfig::new("customer_id").with_expr("id")),
        )
        .with_table(
            ModelTableConfig::from_table("payments", "pay.public.payments")
                .with_filter("account IN (1, 2, 3)")
                .with_column(ModelColumnConfig::new("customer_id").with_expr("account")),
        );
    let layer = SemanticLayer::new(storage, &[acme]).await.unwrap();
    let weft = layer.tenant_session("acme", &[]).await.unwrap();
    // Customer 4 is globex's; 1 / (customer_id - 4) fails on that row alone, and is 0
    // (integer division) on acme's rows but customer 3's.
    for (table, count) in [("customers", "2"), ("payments", "3")] {
        let sql = format!("SELECT count(*) FROM {table} WHERE 1 / (customer_id - 4) = 0");
        assert_eq!(query(&weft, &sql).await, [[count]], "{sql}");
    }
}
