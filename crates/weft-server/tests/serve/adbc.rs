//! The server through the Python ADBC Flight SQL driver, as a notebook or BI tool would reach
//! it. The driver is installed from PyPI into a virtual environment under Weft's cache folder
//! on first use (`WEFT_ADBC_PYTHON` names another Python that has it).

use std::path::PathBuf;
use std::process::Command;

use crate::common::{self, Server};

const PACKAGES: &[&str] = &[
    "adbc-driver-flightsql==1.13.0",
    "adbc-driver-manager==1.13.0",
    "pyarrow==26.0.1",
];

/// A Python that can import the ADBC Flight SQL driver.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("WEFT_ADBC_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = common::cache_dir().join("venv-adbc");
    let python = venv.join("bin").join("python");
    let ready = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", "import adbc_driver_flightsql.dbapi, pyarrow"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed for the ADBC test (Debian: python3-venv)");
        assert!(
            status.success(),
            "python3 -m venv {} failed",
            venv.display()
        );
        let status = Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES)
            .status()
            .expect("run pip");
        assert!(status.success(), "pip install {PACKAGES:?} failed");
        assert!(
            ready(&python),
            "the ADBC driver does not import after installing it"
        );
    }
    python
}

const SCRIPT: &str = r#"
import json, os, sys
import adbc_driver_flightsql.dbapi as flightsql

url = os.environ["WEFT_URL"]
out = {}
conn = flightsql.connect(url, db_kwargs={"username": "demo", "password": "demo"})
objects = conn.adbc_get_objects().read_all().to_pylist()
out["tables"] = sorted(
    f'{c["catalog_name"]}.{s["db_schema_name"]}.{t["table_name"]}'
    for c in objects
    for s in (c["catalog_db_schemas"] or [])
    for t in (s["db_schema_tables"] or [])
)
schema = conn.adbc_get_table_schema("customers", catalog_filter="shop", db_schema_filter="main")
out["customers"] = [f"{f.name}:{f.type}" for f in schema]
cur = conn.cursor()
cur.execute(os.environ["WEFT_JOIN"])
out["join"] = [list(r) for r in cur.fetchall()]
cur.execute("SELECT id, name FROM shop.main.customers WHERE id = ? OR id = ? ORDER BY id", parameters=(5, 9))
out["prepared"] = [list(r) for r in cur.fetchall()]
cur.execute("SELECT id, name FROM shop.main.customers WHERE id IN (5, 9) ORDER BY id")
out["direct"] = [list(r) for r in cur.fetchall()]
cur.close()
conn.close()
try:
    bad = flightsql.connect(url, db_kwargs={"username": "demo", "password": "wrong"})
    bad.cursor().execute("SELECT 1")
    out["wrong_password"] = "accepted"
except Exception as e:
    out["wrong_password"] = str(e)
print(json.dumps(out, default=str))
"#;

#[test]
fn adbc_python_driver_logs_in_lists_and_queries() {
    let server = Server::demo();
    let out = Command::new(python())
        .args(["-c", SCRIPT])
        .env("WEFT_URL", server.url())
        .env("WEFT_JOIN", weft_demo::EXAMPLE_QUERY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();

    let tables: Vec<&str> = result["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for table in [
        "lake.public.events",
        "shop.main.customers",
        "shop.main.orders",
    ] {
        assert!(tables.contains(&table), "{tables:?}");
    }
    let customers = result["customers"].to_string();
    assert!(
        customers.contains("id:int64") && customers.contains("name:string"),
        "{customers}"
    );

    let join = result["join"].as_array().unwrap();
    assert_eq!(join.len(), 5, "{join:?}");
    assert!(
        join.iter()
            .any(|r| r[0] == "JP" && r[1] == 458 && r[2] == 46757.11),
        "{join:?}"
    );
    assert_eq!(result["prepared"], result["direct"]);
    assert_eq!(result["prepared"].as_array().unwrap().len(), 2);

    let refused = result["wrong_password"].as_str().unwrap();
    assert!(refused.contains("UNAUTHENTICATED"), "{refused}");
}
