//! Bad input gets one clear error that names what is wrong.

use std::path::Path;

use integration_tests::federated;
use weft_parquet::ParquetSource;

#[tokio::test]
async fn unknown_table_and_column_are_named() {
    let weft = federated().await.0;
    let err = weft
        .sql("SELECT * FROM shop.main.custmers")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("shop.main.custmers"), "{err}");
    let err = weft
        .sql("SELECT nmae FROM shop.main.customers")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nmae"), "{err}");
    let err = weft.sql("SELEC 1").await.unwrap_err().to_string();
    assert!(err.contains("SELEC"), "{err}");
}

#[tokio::test]
async fn writes_are_refused() {
    let weft = federated().await.0;
    for sql in [
        "CREATE TABLE t (a INT)",
        "INSERT INTO shop.main.customers (id) VALUES (1)",
        "SET datafusion.execution.batch_size = 1",
    ] {
        assert!(weft.sql(sql).await.is_err(), "{sql} should be refused");
    }
}

#[tokio::test]
async fn missing_parquet_paths_name_the_source_and_table() {
    let err = ParquetSource::open("lake", "/nonexistent/lake", &[("events", "events/")])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "source `lake` (parquet): folder `/nonexistent/lake` does not exist or is not a folder"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = ParquetSource::open(
        "lake",
        &dir.path().display().to_string(),
        &[("events", "nope/")],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("source `lake` (parquet): table `events`: "),
        "{err}"
    );
    assert!(
        err.contains(&Path::new(&dir.path()).join("nope").display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.db");
    std::fs::write(
        &path,
        b"this is not a database, just text that is long enough",
    )
    .unwrap();
    let err = weft_sqlite::SqliteSource::open("s", &path)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("source `s` (sqlite): "), "{err}");
    assert!(err.contains("not a database"), "{err}");
}
