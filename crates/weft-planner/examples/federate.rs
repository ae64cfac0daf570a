//! A federated session built from the library crates alone: the demo's SQLite file and
//! Parquet folder, one cross-source query, and the SQL each source was sent.
//!
//! `cargo run -p weft-planner --example federate [DATA_DIR]`

use std::sync::Arc;

use weft_parquet::ParquetSource;
use weft_planner::WeftContext;
use weft_sqlite::SqliteSource;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("weft-example"));
    let demo = weft_demo::ensure(&dir)?;

    let mut weft = WeftContext::new();
    weft.register(Arc::new(SqliteSource::open("shop", &demo.sqlite).await?))?;
    let lake = demo.lake.display().to_string();
    weft.register(Arc::new(
        ParquetSource::open("lake", &lake, &[("events", "events/")]).await?,
    ))?;

    let batches = weft.sql(weft_demo::EXAMPLE_QUERY).await?.collect().await?;
    println!(
        "{}",
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)?
    );

    // What each source was asked:
    for remote in weft.explain(weft_demo::EXAMPLE_QUERY).await?.remote {
        println!("{}: {}", remote.source, remote.sql);
    }
    Ok(())
}
