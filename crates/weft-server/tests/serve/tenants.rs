//! The semantic layer in `weft serve`: users of two tenants share the demo's customers table
//! and each sees only its model catalog, its rows, and the columns its roles allow.

use std::process::{Command, Stdio};

use arrow_flight::sql::CommandGetTables;
use datafusion::arrow::array::AsArray;

use crate::common::{self, demo_config, fetch, login, query, rows, Server};

/// Tenant `vip` reads the VIP customers, tenant `rest` the others; `email` is masked
/// without the `support` role.
fn model(extra_column: &str) -> String {
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
        "{}\n{}\n\
         [[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\ntenant = \"vip\"\n\n\
         [[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\ntenant = \"rest\"\nroles = [\"support\"]\n\n\
         [[users]]\nname = \"root\"\npassword_hash = \"{hash}\"\n",
        tenant("vip", "vip"),
        tenant("rest", "NOT vip"),
        hash = common::hash_password("pw"),
    )
}

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
