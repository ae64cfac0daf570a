//! Runs the `.slt` files in `integration-tests/slt/` with sqllogictest, once per placement
//! of the demo data: `local` (everything in DataFusion), `federated` (customers and orders
//! in SQLite, events in Parquet) and `postgres` (customers and orders in PostgreSQL). Both must match the same expected results, so
//! every query doubles as a differential test of pushdown.
//!
//! `WEFT_SLT_COMPLETE=1` rewrites the expected results from the `local` placement; review
//! the diff before committing it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use integration_tests::{federated, local, postgres_placement, rows, DbError};
use sqllogictest::{DBOutput, DefaultColumnType};
use weft_planner::WeftContext;

struct WeftDb {
    weft: WeftContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for WeftDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let df = self
            .weft
            .sql(sql)
            .await
            .map_err(|e| DbError(e.to_string()))?;
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                    DefaultColumnType::FloatingPoint
                }
                _ => DefaultColumnType::Text,
            })
            .collect();
        let batches = df.collect().await.map_err(|e| DbError(e.to_string()))?;
        Ok(DBOutput::Rows {
            types,
            rows: rows(&batches),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "weft"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let complete = std::env::var_os("WEFT_SLT_COMPLETE").is_some();
    let mut passed = 0;
    let mut failed = 0;
    for file in slt_files() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        for placement in ["local", "federated", "postgres"] {
            let weft = match placement {
                "local" => local().await,
                "postgres" => postgres_placement().await.0,
                _ => federated().await.0,
            };
            let mut runner = sqllogictest::Runner::new(move || {
                let weft = weft.clone();
                async move { Ok(WeftDb { weft }) }
            });
            runner.add_label(placement);
            if complete && placement == "local" {
                runner
                    .update_test_file(
                        &file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("cannot complete {name}: {e}"));
                continue;
            }
            match runner.run_file_async(&file).await {
                Ok(()) => {
                    println!("ok: {name} [{placement}]");
                    passed += 1;
                }
                Err(e) => {
                    println!("FAILED: {name} [{placement}]\n{}", e.display(true));
                    failed += 1;
                }
            }
        }
    }
    println!("\nslt: {passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
