//! The `weft` binary as a user runs it: real processes, real files.

use std::path::Path;
use std::process::{Command, Output};

fn weft(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("WEFT_CONFIG")
        .output()
        .expect("run weft")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[cfg_attr(not(feature = "parquet"), allow(dead_code))]
fn shared_data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("weft-cli-tests")
}

#[cfg(all(feature = "sqlite", feature = "parquet"))]
#[test]
fn demo_answers_the_readme_query() {
    let out = weft(&["query", weft_demo::EXAMPLE_QUERY], &shared_data_dir());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("| country | purchases | revenue  |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| JP      | 458       | 46757.11 |"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("5 rows in"),
        "{}",
        text(&out.stderr)
    );
}

#[cfg(all(feature = "sqlite", feature = "parquet"))]
#[test]
fn formats_csv_and_json() {
    let sql = "SELECT id, name, email FROM shop.main.customers WHERE id IN (1, 2) ORDER BY id";
    let out = weft(&["query", "--format", "csv", sql], &shared_data_dir());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert!(csv.starts_with("id,name,email\n1,"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let out = weft(&["query", "-f", "json", sql], &shared_data_dir());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(json[0]["id"], 1);
}

#[cfg(all(feature = "sqlite", feature = "parquet"))]
#[test]
fn explain_and_sources() {
    let out = weft(
        &[
            "explain",
            "SELECT name FROM shop.main.customers WHERE country = 'NL'",
        ],
        &shared_data_dir(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "shop: SELECT `customers`.`name` FROM `customers` WHERE (`customers`.`country` = 'NL')"
        ),
        "{stdout}"
    );

    let out = weft(&["sources"], &shared_data_dir());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "shop (sqlite)",
        "shop.main.customers",
        "signup_date",
        "lake (parquet)",
        "lake.public.events",
        "month",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
}

#[test]
fn config_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    let mut cases = vec![
        (
            "[[sources]]\nname = \"crm\"\nkind = \"mysql\"\n",
            "unknown variant `mysql`",
        ),
        (
            "[[sources]]\nname = \"shop\"\nkind = \"sqlite\"\npaht = \"shop.db\"\n",
            "line 1",
        ),
        ("this is not toml", "invalid config file"),
    ];
    if cfg!(feature = "sqlite") {
        cases.push((
            "[[sources]]\nname = \"shop\"\nkind = \"sqlite\"\npath = \"missing.db\"\n",
            "missing.db",
        ));
    }
    if cfg!(feature = "parquet") {
        cases.push((
            "[[sources]]\nname = \"lake\"\nkind = \"parquet\"\nurl = \"nowhere\"\n",
            "source `lake` (parquet)",
        ));
    }
    for (toml, expected) in cases {
        std::fs::write(&config, toml).unwrap();
        let out = weft(
            &["--config", config.to_str().unwrap(), "query", "SELECT 1"],
            dir.path(),
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{toml}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn bad_sql_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(&config, "").unwrap();
    for (sql, expected) in [
        ("SELEC 1", "SELEC"),
        ("SELECT * FROM nowhere.main.t", "nowhere.main.t"),
        ("CREATE TABLE t (a INT)", "DDL"),
    ] {
        let out = weft(
            &["--config", config.to_str().unwrap(), "query", sql],
            dir.path(),
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{sql}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A build without a connector says so when a config names that kind of source.
#[cfg(not(feature = "sqlite"))]
#[test]
fn missing_connector_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "[[sources]]\nname = \"shop\"\nkind = \"sqlite\"\npath = \"x.db\"\n",
    )
    .unwrap();
    let out = weft(
        &["--config", config.to_str().unwrap(), "sources"],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("built without the `sqlite` feature"),
        "{stderr}"
    );
}

/// A build without a connector still serves the rest of the demo.
#[cfg(all(feature = "parquet", not(feature = "sqlite")))]
#[test]
fn demo_without_sqlite_serves_parquet() {
    let out = weft(
        &["query", "SELECT count(*) FROM lake.public.events"],
        &shared_data_dir(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("240000"),
        "{}",
        text(&out.stdout)
    );
}

#[cfg(all(feature = "sqlite", feature = "parquet", feature = "semantic"))]
#[test]
fn query_and_explain_as_a_tenant_with_roles() {
    let demo = weft_demo::ensure(&shared_data_dir()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        format!("model = \"model.toml\"\n{}", demo.config_toml()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("model.toml"),
        "[[tenants]]\nname = \"vip\"\n\
         [[tenants.tables]]\nname = \"customers\"\nfrom = \"shop.main.customers\"\nfilter = \"vip\"\n\
         [[tenants.tables.columns]]\nname = \"customer_id\"\nexpr = \"id\"\n\
         [[tenants.tables.columns]]\nname = \"email\"\nroles = [\"support\"]\nmask = \"'hidden'\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let csv = |args: &[&str]| {
        let mut all = vec!["--config", config, "query", "-f", "csv"];
        all.extend_from_slice(args);
        let out = weft(&all, dir.path());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(
        csv(&["--tenant", "vip", "SELECT count(*) AS n FROM customers"]),
        csv(&["SELECT count(*) AS n FROM shop.main.customers WHERE vip"])
    );
    assert_eq!(
        csv(&["--tenant", "vip", "SELECT DISTINCT email FROM customers"]),
        "email\nhidden\n"
    );
    let unmasked = csv(&[
        "--tenant",
        "vip",
        "--roles",
        "sales,support",
        "SELECT count(DISTINCT email) AS n FROM customers",
    ]);
    assert_ne!(unmasked, "n\n1\n", "support sees the emails");

    let out = weft(
        &[
            "--config",
            config,
            "explain",
            "--tenant",
            "vip",
            "SELECT customer_id FROM customers WHERE customer_id < 10",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let explained = text(&out.stdout);
    assert!(
        explained.contains("`vip`") && explained.contains("`id` < 10"),
        "the operator sees the storage SQL: {explained}"
    );

    let out = weft(
        &["--config", config, "query", "--tenant", "nope", "SELECT 1"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no tenant `nope`"),
        "{}",
        text(&out.stderr)
    );
}
