//! Parquet connector: files, directories (hive-style partitions included) and globs under an
//! `object_store` URL as DataFusion listing tables in the catalog `<source>.public.<table>`.
//!
//! Parquet is read by DataFusion itself, so nothing is federated: filters and projections go
//! straight to DataFusion's Parquet reader (row-group statistics, page index and bloom-filter
//! pruning). Knows `object_store` and DataFusion's listing tables; knows nothing of the
//! planner, the server or other connectors.
//!
//! # Features
//!
//! `file://` URLs and plain paths always work. Remote stores sit behind features:
//! `s3` (`s3://`), `gcs` (`gs://`), `azure` (`az://`, `abfs://`), `http` (`http(s)://`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use url::Url;
use weft_core::config::{Config, ParquetConfig};
use weft_core::{Error, Result, Source, SourceTable};

const KIND: &str = "parquet";

/// The schema every Parquet table is registered in.
pub const SCHEMA: &str = "public";

/// Where a source's files live.
#[derive(Debug, Clone)]
enum Root {
    /// A local folder.
    Local(PathBuf),
    /// A remote store, registered in each session under `store_url`.
    Remote {
        url: Url,
        store_url: ObjectStoreUrl,
        store: Arc<dyn ObjectStore>,
    },
}

/// Parquet files on an object store as a Weft source.
#[derive(Debug)]
pub struct ParquetSource {
    name: String,
    root: Root,
    tables: Vec<SourceTable>,
}

impl ParquetSource {
    /// Opens the source a config entry describes; relative paths are relative to the config.
    pub async fn from_config(source: &ParquetConfig, config: &Config) -> Result<Self> {
        let root = if source.url.contains("://") {
            source.url.clone()
        } else {
            config.resolve(Path::new(&source.url)).display().to_string()
        };
        let tables: Vec<(String, String)> = source
            .tables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self::open_with_options(&source.name, &root, &tables, &source.options).await
    }

    /// Opens the Parquet files under `url` (a URL or a local path) as the given tables:
    /// `(name, location)` where the location is a file, a directory or a glob under `url`.
    pub async fn open(name: &str, url: &str, tables: &[(&str, &str)]) -> Result<Self> {
        let tables: Vec<(String, String)> = tables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::open_with_options(name, url, &tables, &Default::default()).await
    }

    async fn open_with_options(
        name: &str,
        url: &str,
        tables: &[(String, String)],
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self> {
        let fail = |message: String| Error::source(name, KIND, message);
        let root = root(url, options).map_err(fail)?;
        let ctx = SessionContext::new();
        register(&root, ctx.runtime_env().as_ref());
        let state = ctx.state();

        let mut out = Vec::with_capacity(tables.len());
        for (table, location) in tables {
            let fail_table = |message: String| fail(format!("table `{table}`: {message}"));
            let table_url = table_url(&root, location).map_err(fail_table)?;
            let listing_url = ListingTableUrl::parse(&table_url)
                .map_err(|e| fail_table(format!("invalid location `{table_url}`: {e}")))?;
            let format = ParquetFormat::default().with_enable_pruning(true);
            let mut listing = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
            let partitions = listing
                .infer_partitions(&state, &listing_url)
                .await
                .map_err(|e| fail_table(format!("cannot list `{table_url}`: {e}")))?;
            listing = listing.with_table_partition_cols(
                partitions
                    .into_iter()
                    .map(|column| (column, DataType::Utf8))
                    .collect(),
            );
            let schema = listing
                .infer_schema(&state, &listing_url)
                .await
                .map_err(|e| {
                    fail_table(format!(
                        "cannot read a Parquet schema at `{table_url}`: {e}"
                    ))
                })?;
            let config = ListingTableConfig::new(listing_url)
                .with_listing_options(listing)
                .with_schema(schema);
            let provider = ListingTable::try_new(config)
                .map_err(|e| fail_table(format!("cannot open `{table_url}`: {e}")))?;
            out.push(SourceTable {
                schema: SCHEMA.to_string(),
                name: table.clone(),
                provider: Arc::new(provider),
            });
        }
        Ok(Self {
            name: name.to_string(),
            root,
            tables: out,
        })
    }
}

impl Source for ParquetSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn tables(&self) -> &[SourceTable] {
        &self.tables
    }

    fn register_runtime(&self, runtime: &RuntimeEnv) -> Result<()> {
        register(&self.root, runtime);
        Ok(())
    }
}

fn register(root: &Root, runtime: &RuntimeEnv) {
    if let Root::Remote {
        store_url, store, ..
    } = root
    {
        runtime.register_object_store(store_url.as_ref(), Arc::clone(store));
    }
}

fn root(url: &str, options: &std::collections::BTreeMap<String, String>) -> Result<Root, String> {
    if !url.contains("://") {
        return local_root(PathBuf::from(url));
    }
    let parsed = Url::parse(url).map_err(|e| format!("invalid url `{url}`: {e}"))?;
    if parsed.scheme() == "file" {
        let path = parsed
            .to_file_path()
            .map_err(|()| format!("invalid file url `{url}`"))?;
        return local_root(path);
    }
    let (store, _) = object_store::parse_url_opts(&parsed, options.iter()).map_err(|e| {
        format!(
            "cannot open the object store for `{url}`: {e} (remote stores need the `s3`, `gcs`, `azure` or `http` feature of weft-parquet)"
        )
    })?;
    let store_url = ObjectStoreUrl::parse(format!(
        "{}://{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default()
    ))
    .map_err(|e| format!("invalid url `{url}`: {e}"))?;
    Ok(Root::Remote {
        url: parsed,
        store_url,
        store: Arc::from(store),
    })
}

fn local_root(path: PathBuf) -> Result<Root, String> {
    if !path.is_dir() {
        return Err(format!(
            "folder `{}` does not exist or is not a folder",
            path.display()
        ));
    }
    Ok(Root::Local(path))
}

/// The location of one table, checked where that is possible without listing.
fn table_url(root: &Root, location: &str) -> Result<String, String> {
    let is_glob = location.contains(['*', '?', '[']);
    match root {
        Root::Local(dir) => {
            let path = dir.join(location.trim_start_matches('/'));
            if !is_glob && !path.exists() {
                return Err(format!("`{}` does not exist", path.display()));
            }
            let mut url = path.display().to_string();
            if path.is_dir() && !url.ends_with('/') {
                url.push('/');
            }
            Ok(url)
        }
        Root::Remote { url, .. } => Ok(format!(
            "{}/{}",
            url.as_str().trim_end_matches('/'),
            location.trim_start_matches('/')
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use weft_core::register_source;

    fn write(path: &Path, ids: &[i64], kind: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("kind", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(vec![kind; ids.len()])),
            ],
        )
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    async fn count(source: &ParquetSource, sql: &str) -> i64 {
        let ctx = SessionContext::new();
        register_source(&ctx, source).unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }

    #[tokio::test]
    async fn a_table_is_a_file_a_glob_or_a_partitioned_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("one.parquet"), &[1, 2, 3], "a");
        write(&root.join("parts/p1.parquet"), &[1, 2], "a");
        write(&root.join("parts/p2.parquet"), &[3], "b");
        write(&root.join("parts/ignored.txt"), &[9], "z");
        write(&root.join("hive/year=2023/f.parquet"), &[1, 2], "a");
        write(&root.join("hive/year=2024/f.parquet"), &[3, 4, 5], "b");

        let url = format!("file://{}", root.display());
        let source = ParquetSource::open(
            "lake",
            &url,
            &[
                ("one", "one.parquet"),
                ("parts", "parts/*.parquet"),
                ("hive", "hive/"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            count(&source, "SELECT count(*) FROM lake.public.one").await,
            3
        );
        assert_eq!(
            count(&source, "SELECT count(*) FROM lake.public.parts").await,
            3
        );
        assert_eq!(
            count(&source, "SELECT count(*) FROM lake.public.hive").await,
            5
        );
        assert_eq!(
            count(
                &source,
                "SELECT count(*) FROM lake.public.hive WHERE year = '2024'"
            )
            .await,
            3
        );
        let hive = &source.tables()[2].provider.schema();
        assert_eq!(
            hive.field_with_name("year").unwrap().data_type(),
            &DataType::Utf8
        );
    }

    /// Without the `s3` feature, an `s3://` source says which feature it needs. (With it,
    /// opening would try the network, which tests must not.)
    #[cfg(not(feature = "s3"))]
    #[tokio::test]
    async fn remote_stores_name_the_feature_they_need() {
        let err = ParquetSource::open("lake", "s3://bucket/prefix", &[("t", "t/")])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("source `lake` (parquet): "), "{err}");
        assert!(err.contains("`s3`"), "{err}");
    }
}
