//! Weft's built-in demo data set, written on first use into a data directory: customers and
//! orders in a SQLite file, events as hive-partitioned Parquet (about 300 000 rows in all).
//!
//! The data is generated deterministically, so tests and documentation can rely on it. It
//! has what real data has: NULLs, non-ASCII names, dates, timestamps and skew. Knows
//! `rusqlite` and the Parquet writer; knows nothing of the rest of Weft.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

/// Bumped whenever the data changes, so an old copy is not reused.
const VERSION: &str = "v1";

/// Number of customers.
pub const CUSTOMERS: i64 = 2_000;
/// Number of orders.
pub const ORDERS: i64 = 20_000;
/// Number of events.
pub const EVENTS: i64 = 240_000;

/// The README's first query: a join across the SQLite file and the Parquet lake.
pub const EXAMPLE_QUERY: &str = "\
SELECT c.country, count(*) AS purchases, round(sum(e.value), 2) AS revenue
FROM shop.main.customers c
JOIN lake.public.events e ON e.customer_id = c.id
WHERE c.vip AND e.kind = 'purchase' AND e.month >= '2024-07'
GROUP BY c.country
ORDER BY revenue DESC
LIMIT 5";

/// What went wrong writing the demo data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be written.
    #[error("cannot write the demo data under `{path}`: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("cannot write the demo SQLite file: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Parquet failed.
    #[error("cannot write the demo Parquet files: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("cannot build the demo data: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

/// Where the demo data lives.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The SQLite file with `customers` and `orders`.
    pub sqlite: PathBuf,
    /// The folder holding `events/` (Parquet, partitioned by `month=YYYY-MM`).
    pub lake: PathBuf,
}

impl Demo {
    /// The Weft config that serves the demo: source `shop` (SQLite) and `lake` (Parquet).
    pub fn config_toml(&self) -> String {
        format!(
            "[[sources]]\nname = \"shop\"\nkind = \"sqlite\"\npath = {}\n\n\
             [[sources]]\nname = \"lake\"\nkind = \"parquet\"\nurl = {}\n[sources.tables]\nevents = \"events/\"\n",
            toml_string(&self.sqlite.display().to_string()),
            toml_string(&self.lake.display().to_string()),
        )
    }
}

fn toml_string(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Writes the demo data under `dir` unless it is there already, and says where it is.
///
/// The data is written to a temporary folder and renamed into place, so an interrupted run
/// never leaves half a data set behind.
pub fn ensure(dir: &Path) -> Result<Demo, Error> {
    let root = dir.join(VERSION);
    let demo = Demo {
        sqlite: root.join("shop.db"),
        lake: root.join("lake"),
    };
    if root.join("complete").exists() {
        return Ok(demo);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!("{VERSION}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    write_sqlite(&tmp.join("shop.db"))?;
    write_events(&tmp.join("lake").join("events"))?;
    std::fs::write(tmp.join("complete"), "").map_err(io(&tmp))?;
    match std::fs::rename(&tmp, &root) {
        Ok(()) => {}
        // Another process finished first: use its copy.
        Err(_) if root.join("complete").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(io(&root)(e)),
    }
    Ok(demo)
}

/// A small deterministic generator (SplitMix64), so the data is the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Anna",
    "Bram",
    "Chloé",
    "Dmitri",
    "Émile",
    "Fatima",
    "Günter",
    "Hana",
    "Ingrid",
    "José",
    "Kenji",
    "Łukasz",
    "Maëlle",
    "Nadia",
    "Ólafur",
    "Priya",
    "Quentin",
    "Renée",
    "Søren",
    "Tomás",
    "Uma",
    "Vỹ",
    "Wojciech",
    "Xiù",
    "Yusuf",
    "Zoë",
    "渡辺",
    "Алексей",
];
const LAST: &[&str] = &[
    "de Vries",
    "Müller",
    "García",
    "Nakamura",
    "O'Brien",
    "Kowalski",
    "Dubois",
    "Rossi",
    "Johansson",
    "Silva",
    "Nguyễn",
    "Öztürk",
    "Popescu",
    "Smith",
    "Janssen",
    "Ødegaard",
];
const COUNTRIES: &[&str] = &["NL", "DE", "FR", "BE", "ES", "PL", "JP", "BR", "US", "GB"];
const STATUSES: &[&str] = &["placed", "paid", "shipped", "delivered", "returned"];
const KINDS: &[&str] = &["view", "view", "view", "click", "click", "cart", "purchase"];

/// Days from 1970-01-01 to 2023-01-01.
const DAY_2023_01_01: i64 = 19_358;

fn iso_date(days_since_epoch: i64) -> String {
    let date = chrono_free_date(days_since_epoch);
    format!("{:04}-{:02}-{:02}", date.0, date.1, date.2)
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn chrono_free_date(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn write_sqlite(path: &Path) -> Result<(), Error> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "CREATE TABLE customers (
             id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             email TEXT,
             country TEXT NOT NULL,
             signup_date DATE NOT NULL,
             vip BOOLEAN NOT NULL
         );
         CREATE TABLE orders (
             id INTEGER PRIMARY KEY,
             customer_id INTEGER NOT NULL REFERENCES customers(id),
             ordered_at TIMESTAMP NOT NULL,
             status TEXT NOT NULL,
             amount REAL
         );
         CREATE INDEX orders_customer ON orders(customer_id);",
    )?;
    let tx = conn.transaction()?;
    let mut rng = Rng(42);
    {
        let mut insert = tx.prepare("INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for id in 1..=CUSTOMERS {
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            let email = (rng.below(10) != 0).then(|| {
                format!(
                    "{}.{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase().replace([' ', '\''], "")
                )
            });
            let country = rng.pick(COUNTRIES);
            let signup = iso_date(DAY_2023_01_01 - 365 + rng.below(730) as i64);
            let vip = rng.below(5) == 0;
            insert.execute(rusqlite::params![
                id,
                format!("{first} {last}"),
                email,
                country,
                signup,
                vip
            ])?;
        }
        let mut insert = tx.prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for id in 1..=ORDERS {
            // Skewed: a few customers order a lot.
            let customer = 1
                + (rng.below(CUSTOMERS as u64) * rng.below(CUSTOMERS as u64) / CUSTOMERS as u64)
                    as i64;
            let day = DAY_2023_01_01 + 365 + rng.below(366) as i64;
            let seconds = rng.below(86_400);
            let at = format!(
                "{} {:02}:{:02}:{:02}",
                iso_date(day),
                seconds / 3600,
                seconds / 60 % 60,
                seconds % 60
            );
            let status = rng.pick(STATUSES);
            let amount = (rng.below(50) != 0).then(|| (rng.below(50_000) as f64 + 99.0) / 100.0);
            insert.execute(rusqlite::params![id, customer, at, status, amount])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn write_events(dir: &Path) -> Result<(), Error> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("value", DataType::Float64, true),
    ]));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(8_192))
        .build();
    let mut rng = Rng(7);
    let per_month = EVENTS / 12;
    for month in 0..12 {
        let mut ids = Vec::with_capacity(per_month as usize);
        let mut customers = Vec::with_capacity(per_month as usize);
        let mut kinds = Vec::with_capacity(per_month as usize);
        let mut ats = Vec::with_capacity(per_month as usize);
        let mut values = Vec::with_capacity(per_month as usize);
        let month_start = days_from_civil(2024, month + 1, 1);
        let month_days =
            days_from_civil(2024 + (month + 1) / 12, (month + 1) % 12 + 1, 1) - month_start;
        for i in 0..per_month {
            ids.push(month as i64 * per_month + i + 1);
            customers.push(1 + rng.below(CUSTOMERS as u64) as i64);
            let kind = rng.pick(KINDS);
            kinds.push(kind);
            let day = month_start + rng.below(month_days as u64) as i64;
            ats.push((day * 86_400 + rng.below(86_400) as i64) * 1_000_000);
            values.push(match kind {
                "purchase" => Some((rng.below(20_000) as f64 + 100.0) / 100.0),
                "cart" if rng.below(2) == 0 => Some((rng.below(5_000) as f64) / 100.0),
                _ => None,
            });
        }
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids)) as ArrayRef,
                Arc::new(Int64Array::from(customers)),
                Arc::new(StringArray::from(kinds)),
                Arc::new(TimestampMicrosecondArray::from(ats)),
                Arc::new(Float64Array::from(values)),
            ],
        )?;
        let part = dir.join(format!("month=2024-{:02}", month + 1));
        std::fs::create_dir_all(&part).map_err(|source| Error::Io {
            path: part.clone(),
            source,
        })?;
        let path = part.join("part-0.parquet");
        let file = std::fs::File::create(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props.clone()))?;
        writer.write(&batch)?;
        writer.close()?;
    }
    Ok(())
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: u32, m: u32, d: u32) -> i64 {
    let (y, m, d) = (y as i64, m as i64, d as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(DAY_2023_01_01), "2023-01-01");
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(iso_date(days_from_civil(2024, 2, 29)), "2024-02-29");
    }

    #[test]
    fn writes_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let demo = ensure(dir.path()).unwrap();
        assert!(demo.sqlite.is_file());
        assert!(demo
            .lake
            .join("events/month=2024-12/part-0.parquet")
            .is_file());
        let modified = std::fs::metadata(&demo.sqlite).unwrap().modified().unwrap();
        let again = ensure(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&again.sqlite)
                .unwrap()
                .modified()
                .unwrap(),
            modified
        );
    }
}
