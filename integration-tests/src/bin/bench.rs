//! `weft-bench`: the 22 TPC-H queries in each placement of the tables over Parquet,
//! PostgreSQL and SQLite, run by Weft (in-process and, with `--via-server`, through `weft
//! serve`), by Weft with pushdown off, by DuckDB through its own scanners and, for the
//! `postgres` placement, by PostgreSQL itself; every answer checked. With `--link RATE`,
//! PostgreSQL sits behind a rate-shaped link in its own network namespace.
//! `cargo xtask bench` builds it in release mode and sets up DuckDB; see `--help`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use integration_tests::pg::PgServer;
use integration_tests::serve::{hash_password, weft_binary, WeftServe};
use integration_tests::tpch::{self, DataDir, Placement, Store, Table};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "weft-bench",
    about = "TPC-H across placements and engines, checked"
)]
struct Args {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Timed runs per query after one warm-up run; the median is reported. Default: 3 below
    /// SF 1, 1 from SF 1 up (a whole SF 1 run then takes minutes, not half an hour). A first
    /// run longer than 2 s is its own warm-up and counts as the first timed run.
    #[arg(long)]
    runs: Option<usize>,
    /// Queries to run (default: all 22), e.g. `1,3,18`.
    #[arg(long, value_delimiter = ',')]
    queries: Vec<u32>,
    /// Placements to run (default: all five).
    #[arg(long, value_delimiter = ',')]
    placements: Vec<String>,
    /// Engines: `weft`, `weft-scans-only` (pushdown off), `weft-whole` (every PostgreSQL
    /// statement read whole: `read_ranges = 1`), `weft-set` (Weft with the `--set`
    /// options), `duckdb`, `postgres` (the `postgres` placement only), `weft-server` (see
    /// `--via-server`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "weft,weft-scans-only,duckdb,postgres"
    )]
    engines: Vec<String>,
    /// DataFusion options for the `weft-set` engine, `key=value` (repeatable), e.g.
    /// `--set datafusion.execution.target_partitions=4`: an A/B of a setting in one run.
    #[arg(long = "set", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// A PostgreSQL server to load and query (`postgres://user@host:port/`); by default a
    /// throwaway cluster is started from the installed PostgreSQL.
    #[arg(long)]
    pg_url: Option<String>,
    /// The Python with `duckdb` and its extension wheels (xtask's virtual environment).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Also run every query through the Flight SQL server: `weft serve` over the same three
    /// sources, queried by a Flight SQL client (engine `weft-server`).
    #[arg(long)]
    via_server: bool,
    /// The `weft` binary for `--via-server` (default: the one beside this program).
    #[arg(long)]
    weft_bin: Option<PathBuf>,
    /// Put PostgreSQL behind a link of this rate (`1gbit`, `100mbit`, `10mbit`): the
    /// throwaway cluster runs in its own network namespace, reached through a veth pair whose
    /// two ends are shaped with `tc` (needs root and `ip`/`tc`).
    #[arg(long, value_parser = parse_rate)]
    link: Option<u64>,
    /// Where generated data is kept between runs.
    #[arg(long)]
    cache: PathBuf,
    /// Where the report goes.
    #[arg(long)]
    out: PathBuf,
    /// Readers for the PostgreSQL table read: one whole table (`--read-table`) from
    /// PostgreSQL into Arrow in memory, each reader in its own process: `weft`, `weft-whole`
    /// (Weft reading it as one statement), `duckdb` (DuckDB's postgres scanner), `connectorx`
    /// (2 partitions), `adbc` (ADBC's PostgreSQL driver); `none` skips it. Default: all of
    /// them when all placements and queries run, else none.
    #[arg(long, value_delimiter = ',')]
    read: Option<Vec<String>>,
    /// The table the PostgreSQL table read reads.
    #[arg(long, default_value = "lineitem")]
    read_table: String,
    /// Internal: be this Weft reader of the table read (a child process of weft-bench,
    /// reading `--pg-url`), and write its result as JSON on stdout.
    #[arg(long, hide = true)]
    read_child: Option<String>,
}

impl Args {
    /// Timed runs per query: `--runs`, or the default for the scale factor.
    fn runs(&self) -> usize {
        self.runs
            .unwrap_or(if self.sf >= 1.0 { 1 } else { 3 })
            .max(1)
    }

    /// The readers of the PostgreSQL table read.
    fn readers(&self) -> Vec<String> {
        match &self.read {
            Some(readers) => readers
                .iter()
                .filter(|r| r.as_str() != "none")
                .cloned()
                .collect(),
            None if self.placements.is_empty() && self.queries.is_empty() => {
                READERS.iter().map(|r| r.to_string()).collect()
            }
            None => Vec::new(),
        }
    }
}

/// The readers of the PostgreSQL table read, in report order: `weft-whole` is Weft reading
/// the table as one statement (`read_ranges = 1`), the baseline of its split reads.
const READERS: [&str; 5] = ["weft", "weft-whole", "duckdb", "connectorx", "adbc"];

/// Partitions ConnectorX splits the table read into (as in the measurement the
/// performance issue quotes).
const CONNECTORX_PARTITIONS: usize = 2;

/// A first run at least this long is its own warm-up: what a warm-up warms (connections,
/// the file cache, prepared plans) is then a small share of the time, and running the query
/// again would double the benchmark's length for the slowest cells.
const SELF_WARMING: Duration = Duration::from_secs(2);

/// Whether a run counts as timed: every run after the first, and a long first run.
fn timed(first: bool, took: Duration) -> bool {
    !first || took >= SELF_WARMING
}

/// What one source sent Weft during a run.
#[derive(Debug, Default, Clone, Copy)]
struct Traffic {
    /// Statements it was sent (0 for files, which are scanned, not queried).
    statements: u64,
    /// Rows it returned (for Parquet: rows the scans produced).
    rows: u64,
    /// Bytes: Arrow data received from a SQL source; bytes read from Parquet files.
    bytes: u64,
}

/// One engine's result for one query in one placement.
#[derive(Debug, Default, Clone)]
struct Cell {
    /// Median wall time of the timed runs.
    seconds: Option<f64>,
    /// Bytes over the network during a run (the median): loopback, or both directions of
    /// the shaped link with `--link`.
    wire_bytes: Option<u64>,
    /// Peak resident memory of the engine's process during the runs.
    peak_rss: Option<u64>,
    /// Statements sent to sources (Weft only).
    remote_queries: Option<usize>,
    /// What each source sent during a run, by Weft's own counters (Weft in-process only).
    sources: BTreeMap<String, Traffic>,
    /// The answer, kept to check the others against.
    rows: Vec<Vec<String>>,
    /// Why the query failed, if it did.
    error: Option<String>,
    /// Whether the answer matched the checks that apply, and what differed if not.
    check: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    if let Some(reader) = &args.read_child {
        return read_child(&args, reader).await;
    }
    let started = Instant::now();
    let placements: Vec<Placement> = if args.placements.is_empty() {
        Placement::ALL.to_vec()
    } else {
        args.placements
            .iter()
            .map(|p| Placement::named(p).with_context(|| format!("no placement named `{p}`")))
            .collect::<Result<_>>()?
    };
    let queries: Vec<(u32, &str)> = tpch::queries()
        .into_iter()
        .filter(|(n, _)| args.queries.is_empty() || args.queries.contains(n))
        .collect();
    for engine in &args.engines {
        if ![
            "weft",
            "weft-scans-only",
            "weft-whole",
            "weft-set",
            "duckdb",
            "postgres",
            "weft-server",
        ]
        .contains(&engine.as_str())
        {
            bail!("no engine named `{engine}`");
        }
    }
    if args.engines.iter().any(|e| e == "weft-set") && args.settings.is_empty() {
        bail!("the engine `weft-set` needs at least one `--set key=value`");
    }
    let readers = args.readers();
    if let Some(reader) = readers.iter().find(|r| !READERS.contains(&r.as_str())) {
        bail!(
            "no reader named `{reader}` (readers: {}, or none)",
            READERS.join(", ")
        );
    }
    let mut engines = args.engines.clone();
    if args.via_server && !engines.iter().any(|e| e == "weft-server") {
        let at = engines
            .iter()
            .position(|e| e == "weft")
            .map_or(0, |i| i + 1);
        engines.insert(at, "weft-server".to_string());
    }
    if args.link.is_some() && args.pg_url.is_some() {
        bail!("--link runs its own PostgreSQL; it cannot be combined with --pg-url");
    }
    let link = args.link.map(Link::up).transpose()?;
    let _ = IFACE.set(
        link.as_ref()
            .map_or_else(|| "lo".to_string(), |l| l.host_if.clone()),
    );

    // Data: Parquet and SQLite files cached per scale factor, Postgres loaded once.
    let data = DataDir::new(&args.cache, args.sf);
    let t = Instant::now();
    eprintln!("data: TPC-H SF {} under {}", args.sf, data.dir.display());
    data.ensure_files(|step| eprintln!("  {step} ({:.1} s)", t.elapsed().as_secs_f64()))
        .context("generate TPC-H data")?;
    let (_server, pg_url, conninfo) = postgres(&args, &data, link.as_ref()).await?;
    let server = match engines.iter().any(|e| e == "weft-server") {
        true => Some(WeftServer::start(&args, &data, &pg_url).await?),
        false => None,
    };

    let mut cells: BTreeMap<(String, String, u32), Cell> = BTreeMap::new();
    for &placement in &placements {
        eprintln!("placement {}", placement.name());
        for engine in &engines {
            let results = match engine.as_str() {
                "weft" | "weft-scans-only" | "weft-whole" | "weft-set" => {
                    // `weft-whole`: Weft reading every PostgreSQL statement whole, the
                    // baseline of its split reads.
                    let ranges = (engine == "weft-whole").then_some(1);
                    let pushdown = engine != "weft-scans-only";
                    let weft = tpch::context_with(&data, &pg_url, pushdown, ranges).await?;
                    if engine == "weft-set" {
                        let state = weft.session().state_ref();
                        let mut state = state.write();
                        let options = state.config_mut().options_mut();
                        for (key, value) in &args.settings {
                            options
                                .set(key, value)
                                .with_context(|| format!("--set {key}={value}"))?;
                        }
                    }
                    let mut out = Vec::new();
                    for &(n, sql) in &queries {
                        let sql = placement.qualify(sql).map_err(anyhow::Error::msg)?;
                        let cell = run_weft(&weft, &sql, args.runs()).await;
                        eprintln!("  {engine:<16} q{n:02} {}", summary(&cell));
                        out.push((n, cell));
                    }
                    out
                }
                "weft-server" => {
                    let server = server
                        .as_ref()
                        .expect("started when the engine is asked for");
                    let mut out = Vec::new();
                    for &(n, sql) in &queries {
                        let sql = placement.qualify(sql).map_err(anyhow::Error::msg)?;
                        let cell = server.run(&sql, args.runs()).await;
                        eprintln!("  {engine:<16} q{n:02} {}", summary(&cell));
                        out.push((n, cell));
                    }
                    out
                }
                "duckdb" => run_duckdb(&args, &data, &conninfo, placement, &queries)?,
                "postgres" if placement == Placement::Postgres => {
                    let mut out = Vec::new();
                    for &(n, sql) in &queries {
                        let cell = run_postgres(&pg_url, sql, args.runs()).await;
                        eprintln!("  {engine:<16} q{n:02} {}", summary(&cell));
                        out.push((n, cell));
                    }
                    out
                }
                _ => continue,
            };
            for (n, cell) in results {
                cells.insert((placement.name().to_string(), engine.clone(), n), cell);
            }
        }
    }
    let mut reads = Vec::new();
    if !readers.is_empty() {
        eprintln!("read: {} from PostgreSQL into Arrow", args.read_table);
        for reader in &readers {
            let read = table_read(&args, &pg_url, &conninfo, reader);
            eprintln!("  {reader:<16} {}", read.summary());
            reads.push(read);
        }
        check_reads(&mut reads, &pg_url, &args.read_table).await;
    }
    check(&mut cells, args.sf);
    let report = Report {
        reads: &reads,
        args: &args,
        engines: &engines,
        placements: &placements,
        queries: queries.iter().map(|(n, _)| *n).collect(),
        cells: &cells,
        elapsed: started.elapsed(),
    };
    report.write()?;
    Ok(())
}

fn summary(cell: &Cell) -> String {
    match (&cell.error, cell.seconds) {
        (Some(e), _) => format!("failed: {e}"),
        (None, Some(s)) => format!(
            "{s:.3} s{}{}",
            cell.wire_bytes
                .map(|b| format!(", {} over {}", bytes(b), iface()))
                .unwrap_or_default(),
            if cell.sources.is_empty() {
                String::new()
            } else {
                format!("; {}", traffic_summary(&cell.sources))
            }
        ),
        _ => String::new(),
    }
}

/// `pg 1 query 150 rows 12 kB, lake 6001215 rows 94 MB`.
fn traffic_summary(sources: &BTreeMap<String, Traffic>) -> String {
    sources
        .iter()
        .map(|(name, t)| {
            let queries = match t.statements {
                0 => String::new(),
                1 => " 1 query".to_string(),
                n => format!(" {n} queries"),
            };
            format!("{name}{queries} {} rows {}", t.rows, bytes(t.bytes))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The interface whose bytes count as network traffic: `lo`, or the shaped link's host end.
static IFACE: OnceLock<String> = OnceLock::new();

fn iface() -> &'static str {
    IFACE.get().map_or("lo", String::as_str)
}

/// `1gbit`, `100mbit`, `500kbit`, `1000000` (bits per second) → bits per second.
/// `key=value` of `--set`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("`{s}` is not `key=value`")),
    }
}

fn parse_rate(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, scale) = [
        ("gbit", 1_000_000_000),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
    ]
    .iter()
    .find_map(|(suffix, scale)| lower.strip_suffix(suffix).map(|d| (d, *scale)))
    .unwrap_or((lower.as_str(), 1));
    let value: f64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a rate such as 1gbit or 100mbit"))?;
    let bits = (value * scale as f64) as u64;
    if bits < 100_000 {
        return Err(format!("`{text}` is below 100kbit"));
    }
    Ok(bits)
}

/// PostgreSQL's side of a shaped link: a network namespace joined to this one by a veth pair,
/// each end limited to the rate by a token bucket (`tc qdisc ... tbf`). Torn down on drop.
struct Link {
    netns: String,
    host_if: String,
    /// The address PostgreSQL listens on inside the namespace.
    remote_ip: &'static str,
}

impl Link {
    const HOST_IP: &str = "10.213.77.1";
    const REMOTE_IP: &str = "10.213.77.2";

    fn up(rate: u64) -> Result<Link> {
        let id = std::process::id();
        let link = Link {
            netns: format!("weft-bench-{id}"),
            host_if: format!("wb{id}h"),
            remote_ip: Self::REMOTE_IP,
        };
        let peer = format!("wb{id}r");
        // Five milliseconds' worth of bytes per burst: enough for the bucket to reach the
        // rate at any kernel tick rate, small enough to shape every transfer that matters.
        let burst = (rate / 8 / 200).max(16 * 1024);
        let tbf = format!("root tbf rate {rate} burst {burst} latency 100ms");
        let (netns, host_if) = (&link.netns, &link.host_if);
        let (host_ip, remote_ip) = (Self::HOST_IP, Self::REMOTE_IP);
        for step in [
            format!("ip netns add {netns}"),
            format!("ip link add {host_if} type veth peer name {peer} netns {netns}"),
            format!("ip addr add {host_ip}/30 dev {host_if}"),
            format!("ip link set {host_if} up"),
            format!("ip -n {netns} addr add {remote_ip}/30 dev {peer}"),
            format!("ip -n {netns} link set {peer} up"),
            format!("ip -n {netns} link set lo up"),
            format!("tc qdisc add dev {host_if} {tbf}"),
            format!("ip netns exec {netns} tc qdisc add dev {peer} {tbf}"),
        ] {
            let argv: Vec<&str> = step.split_whitespace().collect();
            let out = Command::new(argv[0])
                .args(&argv[1..])
                .output()
                .with_context(|| format!("run {step}"))?;
            if !out.status.success() {
                bail!(
                    "{step} failed: {} (--link needs root, `ip` and `tc`)",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        eprintln!(
            "link: PostgreSQL at {} in network namespace {}, {} Mbit/s each way",
            link.remote_ip,
            link.netns,
            rate as f64 / 1e6
        );
        Ok(link)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// The PostgreSQL database with the data: the given server's or a throwaway cluster's.
/// Returns the server to keep alive, a `postgres://` URL and a libpq conninfo for DuckDB.
async fn postgres(
    args: &Args,
    data: &DataDir,
    link: Option<&Link>,
) -> Result<(Option<PgServer>, String, String)> {
    let (server, base) = match &args.pg_url {
        Some(url) => (None, url.trim_end_matches('/').to_string()),
        None => {
            eprintln!("postgres: starting a throwaway cluster");
            let server = match link {
                Some(link) => PgServer::start_in(Some(&link.netns), link.remote_ip),
                None => PgServer::start(),
            }
            .map_err(anyhow::Error::msg)?;
            let base = format!("postgres://{}@{}:{}", server.user, server.host, server.port);
            (Some(server), base)
        }
    };
    let base = match base.rsplit_once('/') {
        // A URL that names a database: keep the server part.
        Some((head, db)) if head.ends_with(|c: char| c.is_ascii_digit()) && !db.is_empty() => {
            head.to_string()
        }
        _ => base,
    };
    let database = format!("weft_tpch_sf{}", data.sf.to_string().replace('.', "_"));
    let admin = format!("{base}/postgres?sslmode=disable");
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to {admin}"))?;
    let handle = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await?;
    }
    drop(client);
    let _ = handle.await;
    let url = format!("{base}/{database}?sslmode=disable");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    let handle = tokio::spawn(connection);
    let loaded = client
        .query_opt(
            "SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'weft_tpch_loaded'",
            &[],
        )
        .await?
        .is_some();
    if !loaded {
        let t = Instant::now();
        eprintln!("postgres: loading {database}");
        tpch::load_postgres(&client, data.sf, "public", &Table::ALL, |table, rows| {
            eprintln!(
                "  {} ({rows} rows, {:.1} s)",
                table.name(),
                t.elapsed().as_secs_f64()
            )
        })
        .await?;
        client
            .batch_execute("CREATE TABLE public.weft_tpch_loaded (done boolean)")
            .await?;
    }
    drop(client);
    let _ = handle.await;
    let parsed = url::Url::parse(&url)?;
    let conninfo = format!(
        "host={} port={} user={} dbname={database}{}",
        parsed.host_str().unwrap_or("localhost"),
        parsed.port().unwrap_or(5432),
        parsed.username(),
        parsed
            .password()
            .map(|p| format!(" password={p}"))
            .unwrap_or_default()
    );
    Ok((server, url, conninfo))
}

/// Bytes over the network so far: sent over loopback (each byte is also received there, so
/// counted once), or sent plus received on the shaped link's host end.
fn wire_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/dev") else {
        return 0;
    };
    let iface = iface();
    text.lines()
        .find_map(|line| {
            let (name, rest) = line.split_once(':')?;
            if name.trim() != iface {
                return None;
            }
            let fields: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            let (rx, tx) = (*fields.first()?, *fields.get(8)?);
            Some(if iface == "lo" { tx } else { rx + tx })
        })
        .unwrap_or(0)
}

/// Resets this process's peak resident memory (`VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss() -> Option<u64> {
    peak_rss_of("/proc/self/status")
}

/// `VmHWM` from a `/proc/<pid>/status` file, in bytes.
fn peak_rss_of(status: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The median of a JSON array of seconds, if it has any.
fn median_time(times: &Value) -> Option<f64> {
    let mut times: Vec<f64> = times
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    (!times.is_empty()).then(|| median(&mut times))
}

fn median_u64(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

async fn run_weft(weft: &weft_planner::WeftContext, sql: &str, runs: usize) -> Cell {
    let once = || async {
        let run = async {
            let frame = weft.sql(sql).await?;
            let task = Arc::new(frame.task_ctx());
            let plan = frame.create_physical_plan().await?;
            let batches = datafusion::physical_plan::collect(Arc::clone(&plan), task).await?;
            Ok((batches, plan))
        };
        match tokio::time::timeout(WEFT_TIMEOUT, run).await {
            Ok(result) => result,
            Err(_) => Err(datafusion::error::DataFusionError::Execution(format!(
                "timed out after {} s",
                WEFT_TIMEOUT.as_secs()
            ))),
        }
    };
    let mut cell = Cell::default();
    reset_peak_rss();
    let (mut times, mut moved) = (Vec::new(), Vec::new());
    let mut first = true;
    while times.len() < runs {
        for source in weft.sources() {
            if let Some(log) = source.query_log() {
                log.clear();
            }
        }
        let before = wire_bytes();
        let started = Instant::now();
        let (batches, plan) = match once().await {
            Ok(done) => done,
            Err(e) => {
                cell.error = Some(e.to_string().replace('\n', " "));
                return cell;
            }
        };
        let took = started.elapsed();
        if first {
            cell.rows = tpch::cells(&batches).unwrap_or_default();
        }
        if timed(first, took) {
            cell.sources = traffic(weft, &plan);
            times.push(took.as_secs_f64());
            moved.push(wire_bytes() - before);
        }
        first = false;
    }
    cell.remote_queries = Some(cell.sources.values().map(|t| t.statements as usize).sum());
    cell.seconds = Some(median(&mut times));
    cell.wire_bytes = Some(median_u64(&mut moved));
    cell.peak_rss = peak_rss();
    cell
}

/// What each source sent during the run that made `plan`: the SQL sources' query logs, and
/// the Parquet scans' metrics (rows out, bytes read).
fn traffic(
    weft: &weft_planner::WeftContext,
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> BTreeMap<String, Traffic> {
    let mut out: BTreeMap<String, Traffic> = BTreeMap::new();
    for source in weft.sources() {
        if let Some(log) = source.query_log() {
            for query in log.queries() {
                let t = out.entry(query.source.clone()).or_default();
                t.statements += 1;
                t.rows += query.rows.load(std::sync::atomic::Ordering::Relaxed);
                t.bytes += query.bytes.load(std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    // Only one Parquet source in these placements: every file scan is its.
    let Some(parquet) = weft.sources().iter().find(|s| s.kind() == "parquet") else {
        return out;
    };
    let mut stack = vec![Arc::clone(plan)];
    let mut scanned = Traffic::default();
    while let Some(node) = stack.pop() {
        if node.name() == "DataSourceExec" {
            if let Some(metrics) = node.metrics() {
                scanned.rows += metrics.output_rows().unwrap_or(0) as u64;
                scanned.bytes += metrics
                    .sum_by_name("bytes_scanned")
                    .map_or(0, |v| v.as_usize() as u64);
            }
        }
        stack.extend(node.children().into_iter().cloned());
    }
    if scanned.rows > 0 || scanned.bytes > 0 {
        out.insert(parquet.name().to_string(), scanned);
    }
    out
}

/// `weft serve` over the bench's three sources, on a free loopback port; killed on drop.
struct WeftServer {
    serve: WeftServe,
}

impl WeftServer {
    const USER: &str = "bench";

    async fn start(args: &Args, data: &DataDir, pg_url: &str) -> Result<WeftServer> {
        let bin = weft_binary(args.weft_bin.as_deref()).context(
            "--via-server needs the `weft` binary (`cargo build --release -p weft-server`)",
        )?;
        let hash = hash_password(&bin, Self::USER)?;
        let tables: String = Table::ALL
            .iter()
            .map(|t| format!("{} = \"{}.parquet\"\n", t.name(), t.name()))
            .collect();
        let config = format!(
            "[[sources]]\nname = \"{lake}\"\nkind = \"parquet\"\nurl = {parquet:?}\n\
             [sources.tables]\n{tables}\n\
             [[sources]]\nname = \"{lite}\"\nkind = \"sqlite\"\npath = {sqlite:?}\n\n\
             [[sources]]\nname = \"{pg}\"\nkind = \"postgres\"\nurl = {pg_url:?}\n\
             schemas = [\"{pg_schema}\"]\n\n\
             [[users]]\nname = \"{user}\"\npassword_hash = \"{hash}\"\n",
            lake = Store::Parquet.source(),
            parquet = data.parquet().display().to_string(),
            lite = Store::Sqlite.source(),
            sqlite = data.sqlite().display().to_string(),
            pg = Store::Postgres.source(),
            pg_schema = Store::Postgres.schema(),
            user = Self::USER,
        );
        Ok(WeftServer {
            serve: WeftServe::start(&bin, &config, "warn")?,
        })
    }

    async fn client(
        &self,
    ) -> Result<arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>> {
        self.serve.client(Self::USER, Self::USER).await
    }

    /// Runs `sql` through a Flight SQL client: a warm-up, then `runs` timed runs.
    async fn run(&self, sql: &str, runs: usize) -> Cell {
        let mut cell = Cell::default();
        let mut client = match self.client().await {
            Ok(client) => client,
            Err(e) => {
                cell.error = Some(format!("{e:#}"));
                return cell;
            }
        };
        let mut once = async || -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
            let run = async {
                let info = client.execute(sql.to_string(), None).await?;
                let mut batches = Vec::new();
                for endpoint in info.endpoint {
                    let ticket = endpoint.ticket.context("an endpoint without a ticket")?;
                    let stream = client.do_get(ticket).await?;
                    batches.extend(futures::TryStreamExt::try_collect::<Vec<_>>(stream).await?);
                }
                Ok::<_, anyhow::Error>(batches)
            };
            match tokio::time::timeout(WEFT_TIMEOUT, run).await {
                Ok(result) => result,
                Err(_) => bail!("timed out after {} s", WEFT_TIMEOUT.as_secs()),
            }
        };
        let pid = self.serve.pid();
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        let (mut times, mut moved) = (Vec::new(), Vec::new());
        let mut first = true;
        while times.len() < runs {
            let before = wire_bytes();
            let started = Instant::now();
            let batches = match once().await {
                Ok(batches) => batches,
                Err(e) => {
                    cell.error = Some(format!("{e:#}").replace('\n', " "));
                    return cell;
                }
            };
            let took = started.elapsed();
            if first {
                cell.rows = tpch::cells(&batches).unwrap_or_default();
            }
            if timed(first, took) {
                times.push(took.as_secs_f64());
                moved.push(wire_bytes() - before);
            }
            first = false;
        }
        cell.seconds = Some(median(&mut times));
        cell.wire_bytes = Some(median_u64(&mut moved));
        cell.peak_rss = peak_rss_of(&format!("/proc/{pid}/status"));
        cell
    }
}

/// How long Weft may run one query before it counts as failed.
const WEFT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long PostgreSQL may run one query by itself before it counts as failed.
const POSTGRES_TIMEOUT: Duration = Duration::from_secs(120);

/// PostgreSQL running the query itself, rows received as text.
async fn run_postgres(url: &str, sql: &str, runs: usize) -> Cell {
    let mut cell = Cell::default();
    let result = async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let handle = tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}",
                POSTGRES_TIMEOUT.as_millis()
            ))
            .await?;
        // The backend serving this connection, for its peak memory (parallel workers, being
        // other processes, are not counted). Same machine, same /proc.
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        let _ = std::fs::write(format!("/proc/{backend}/clear_refs"), "5");
        let (mut times, mut moved) = (Vec::new(), Vec::new());
        let mut first = true;
        while times.len() < runs {
            let before = wire_bytes();
            let started = Instant::now();
            client.simple_query(sql).await?;
            let took = started.elapsed();
            if timed(first, took) {
                times.push(took.as_secs_f64());
                moved.push(wire_bytes() - before);
            }
            first = false;
        }
        let peak = peak_rss_of(&format!("/proc/{backend}/status"));
        drop(client);
        let _ = handle.await;
        Ok::<_, tokio_postgres::Error>((median(&mut times), median_u64(&mut moved), peak))
    }
    .await;
    match result {
        Ok((seconds, bytes, peak)) => {
            cell.seconds = Some(seconds);
            cell.wire_bytes = Some(bytes);
            cell.peak_rss = peak;
        }
        Err(e) => cell.error = Some(e.to_string()),
    }
    cell
}

/// DuckDB through its `postgres` and `sqlite` scanners, in a Python child process.
/// Where cargo (or xtask) says this crate is: the compile-time path may be a checkout that
/// no longer exists, since target directories are shared.
fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

fn run_duckdb(
    args: &Args,
    data: &DataDir,
    conninfo: &str,
    placement: Placement,
    queries: &[(u32, &str)],
) -> Result<Vec<(u32, Cell)>> {
    let script = crate_dir().join("tpch/duckdb_bench.py");
    let tables: serde_json::Map<String, Value> = Table::ALL
        .iter()
        .map(|t| {
            let store = match placement.store(*t) {
                Store::Parquet => "parquet",
                Store::Postgres => "postgres",
                Store::Sqlite => "sqlite",
            };
            (t.name().to_string(), json!(store))
        })
        .collect();
    let job = json!({
        "parquet": data.parquet(),
        "sqlite": data.sqlite(),
        "postgres": conninfo,
        "tables": tables,
        "queries": queries.iter().map(|(n, sql)| json!({"n": n, "sql": sql})).collect::<Vec<_>>(),
        "runs": args.runs(),
        "self_warming": SELF_WARMING.as_secs_f64(),
        "iface": iface(),
    });
    let mut child = Command::new(&args.python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {} {}", args.python.display(), script.display()))?;
    serde_json::to_writer(child.stdin.take().expect("piped"), &job)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("DuckDB's runner failed with {}", output.status);
    }
    let results: Vec<Value> =
        serde_json::from_slice(&output.stdout).context("read DuckDB's results")?;
    Ok(results
        .into_iter()
        .map(|r| {
            let n = r["n"].as_u64().unwrap_or(0) as u32;
            let mut cell = Cell::default();
            if let Some(e) = r["error"].as_str() {
                cell.error = Some(e.to_string());
            } else {
                cell.seconds = median_time(&r["times"]);
                cell.wire_bytes = r["wire_bytes"].as_u64();
                cell.peak_rss = r["peak_rss"].as_u64();
                cell.rows = serde_json::from_value(r["rows"].clone()).unwrap_or_default();
            }
            eprintln!("  {:<16} q{n:02} {}", "duckdb", summary(&cell));
            (n, cell)
        })
        .collect())
}

/// One reader's PostgreSQL table read.
#[derive(Debug, Default, Clone)]
struct Read {
    reader: String,
    /// Median wall time of the timed runs.
    seconds: Option<f64>,
    rows: Option<u64>,
    columns: Option<u64>,
    /// The size of the Arrow data read (for Weft: the batches' memory).
    arrow_bytes: Option<u64>,
    /// Bytes over the network during a run (the median).
    wire_bytes: Option<u64>,
    /// Peak resident memory of the reader's process.
    peak_rss: Option<u64>,
    /// Statements sent to PostgreSQL in a run (Weft only).
    statements: Option<u64>,
    /// Of which sent as concurrent `ctid` ranges (Weft only).
    ranges: Option<u64>,
    error: Option<String>,
    /// Whether the row and column counts match the table's.
    check: Option<Result<(), String>>,
}

impl Read {
    fn summary(&self) -> String {
        match (&self.error, self.seconds) {
            (Some(e), _) => format!("failed: {e}"),
            (None, Some(s)) => format!(
                "{s:.3} s, {} rows, {} of Arrow, {} over {}, peak {} MB{}",
                self.rows.unwrap_or(0),
                bytes(self.arrow_bytes.unwrap_or(0)),
                bytes(self.wire_bytes.unwrap_or(0)),
                iface(),
                self.peak_rss.unwrap_or(0) >> 20,
                self.statements_text()
                    .map(|n| format!(", statements: {n}"))
                    .unwrap_or_default()
            ),
            (None, None) => "no timed run".to_string(),
        }
    }

    /// `1`, or `1 as 2 ranges`.
    fn statements_text(&self) -> Option<String> {
        let n = self.statements?;
        Some(match self.ranges {
            Some(r) if r > 0 => format!("{n} as {r} ranges"),
            _ => n.to_string(),
        })
    }

    fn from_json(reader: &str, value: &Value) -> Read {
        let mut read = Read {
            reader: reader.to_string(),
            ..Read::default()
        };
        if let Some(e) = value["error"].as_str() {
            read.error = Some(e.to_string());
            return read;
        }
        read.seconds = median_time(&value["times"]);
        read.rows = value["rows"].as_u64();
        read.columns = value["columns"].as_u64();
        read.arrow_bytes = value["arrow_bytes"].as_u64();
        read.wire_bytes = value["wire_bytes"].as_u64();
        read.peak_rss = value["peak_rss"].as_u64();
        read.statements = value["statements"].as_u64();
        read.ranges = value["ranges"].as_u64();
        read
    }

    fn json(&self) -> Value {
        json!({
            "reader": self.reader,
            "seconds": self.seconds,
            "rows": self.rows,
            "columns": self.columns,
            "arrow_bytes": self.arrow_bytes,
            "wire_bytes": self.wire_bytes,
            "peak_rss": self.peak_rss,
            "statements": self.statements,
            "ranges": self.ranges,
            "error": self.error,
            "correct": self.check.as_ref().map(Result::is_ok),
            "check": self.check.as_ref().and_then(|c| c.clone().err()),
        })
    }
}

/// How long one reader may take over all its runs.
const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs one reader of the table read in its own process: this program again with
/// `--read-child` for Weft, `tpch/pg_read.py` for the others.
fn table_read(args: &Args, pg_url: &str, conninfo: &str, reader: &str) -> Read {
    let spawned = if reader.starts_with("weft") {
        std::env::current_exe().map(|exe| {
            let mut command = Command::new(exe);
            command
                .args(["--read-child", reader])
                .args(["--sf", &args.sf.to_string()])
                .args(["--runs", &args.runs().to_string()])
                .args(["--read-table", &args.read_table])
                .args(["--pg-url", pg_url])
                .arg("--cache")
                .arg(&args.cache)
                .arg("--out")
                .arg(&args.out);
            (command, None)
        })
    } else {
        let mut command = Command::new(&args.python);
        command.arg(crate_dir().join("tpch/pg_read.py"));
        let job = json!({
            "reader": reader,
            "conninfo": conninfo,
            "url": pg_url,
            "table": args.read_table,
            "partition_on": partition_column(&args.read_table),
            "partitions": CONNECTORX_PARTITIONS,
            "runs": args.runs(),
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "self_warming": SELF_WARMING.as_secs_f64(),
            "iface": iface(),
        });
        Ok((command, Some(job)))
    };
    let failed = |e: String| Read {
        reader: reader.to_string(),
        error: Some(e),
        ..Read::default()
    };
    let (mut command, job) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => return failed(format!("cannot find this program: {e}")),
    };
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start the {reader} reader: {e}")),
    };
    let stdin = child.stdin.take().expect("piped");
    if let Some(job) = job {
        if let Err(e) = serde_json::to_writer(stdin, &job) {
            return failed(format!("cannot send the {reader} reader its job: {e}"));
        }
    } else {
        drop(stdin);
    }
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return failed(format!("timed out after {} s", READ_TIMEOUT.as_secs()));
            }
            Err(e) => return failed(e.to_string()),
        }
    }
    let output = match child.wait_with_output() {
        Ok(output) => output,
        Err(e) => return failed(e.to_string()),
    };
    if !output.status.success() {
        return failed(format!("the {reader} reader exited with {}", output.status));
    }
    match serde_json::from_slice::<Value>(&output.stdout) {
        Ok(value) => Read::from_json(reader, &value),
        Err(e) => failed(format!("unreadable result from the {reader} reader: {e}")),
    }
}

/// The integer key ConnectorX splits a TPC-H table's read on.
fn partition_column(table: &str) -> String {
    match Table::named(table) {
        Some(Table::Lineitem) => "l_orderkey".to_string(),
        Some(Table::Orders) => "o_orderkey".to_string(),
        Some(Table::Customer) => "c_custkey".to_string(),
        Some(Table::Part) => "p_partkey".to_string(),
        Some(Table::PartSupp) => "ps_partkey".to_string(),
        Some(Table::Supplier) => "s_suppkey".to_string(),
        Some(Table::Nation) => "n_nationkey".to_string(),
        Some(Table::Region) => "r_regionkey".to_string(),
        None => String::new(),
    }
}

/// A Weft reader (`--read-child`): the table through a Weft session over the PostgreSQL
/// source alone, every batch kept in memory until the run ends, as the other readers keep
/// their Arrow table. `weft-whole` reads it as one statement (`read_ranges = 1`).
async fn read_child(args: &Args, reader: &str) -> Result<()> {
    let pg_url = args
        .pg_url
        .as_deref()
        .context("--read-child needs --pg-url")?;
    let mut options = weft_postgres::PostgresOptions::from_url(pg_url)
        .map_err(|e| anyhow::anyhow!("--pg-url: {e}"))?;
    options.schemas = Some(vec![Store::Postgres.schema().to_string()]);
    if reader == "weft-whole" {
        options.read_ranges = Some(1);
    }
    let pg =
        Arc::new(weft_postgres::PostgresSource::open(Store::Postgres.source(), options).await?);
    let mut weft = weft_planner::WeftContext::new();
    weft.register(Arc::clone(&pg) as Arc<dyn weft_core::Source>)?;
    let sql = format!(
        "SELECT * FROM {}.{}.{}",
        Store::Postgres.source(),
        Store::Postgres.schema(),
        args.read_table
    );
    let mut out = json!({});
    let (mut times, mut moved) = (Vec::new(), Vec::new());
    let mut first = true;
    reset_peak_rss();
    while times.len() < args.runs() {
        for source in weft.sources() {
            if let Some(log) = source.query_log() {
                log.clear();
            }
        }
        let before = wire_bytes();
        let ranges_before = pg.ranges_sent();
        let started = Instant::now();
        let batches = weft.sql(&sql).await?.collect().await?;
        let took = started.elapsed();
        if timed(first, took) {
            times.push(took.as_secs_f64());
            moved.push(wire_bytes() - before);
        }
        first = false;
        let statements: usize = weft
            .sources()
            .iter()
            .filter_map(|s| s.query_log())
            .map(|log| log.queries().len())
            .sum();
        let ranges = pg.ranges_sent() - ranges_before;
        out = json!({
            "ranges": ranges,
            "rows": batches.iter().map(|b| b.num_rows() as u64).sum::<u64>(),
            "columns": batches.first().map_or(0, |b| b.num_columns()),
            "arrow_bytes": batches.iter().map(|b| b.get_array_memory_size() as u64).sum::<u64>(),
            "statements": statements,
        });
    }
    out["times"] = json!(times);
    out["wire_bytes"] = json!(median_u64(&mut moved));
    out["peak_rss"] = json!(peak_rss());
    println!("{out}");
    Ok(())
}

/// Checks each reader's row and column counts against the table's in PostgreSQL.
async fn check_reads(reads: &mut [Read], pg_url: &str, table: &str) {
    let expected = async {
        let (client, connection) = tokio_postgres::connect(pg_url, tokio_postgres::NoTls).await?;
        let handle = tokio::spawn(connection);
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM public.{table}"), &[])
            .await?
            .get(0);
        let columns: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1",
                &[&table],
            )
            .await?
            .get(0);
        drop(client);
        let _ = handle.await;
        Ok::<_, tokio_postgres::Error>((rows as u64, columns as u64))
    };
    let (rows, columns) = match expected.await {
        Ok(counts) => counts,
        Err(e) => {
            for read in reads.iter_mut() {
                read.check = Some(Err(format!("cannot count the table in PostgreSQL: {e}")));
            }
            return;
        }
    };
    for read in reads.iter_mut().filter(|r| r.error.is_none()) {
        read.check = Some(match (read.rows, read.columns) {
            (Some(r), Some(c)) if r == rows && c == columns => Ok(()),
            (r, c) => Err(format!(
                "{} rows and {} columns, expected {rows} and {columns}",
                r.unwrap_or(0),
                c.unwrap_or(0)
            )),
        });
    }
}

/// Checks each Weft and DuckDB answer against Weft's `local` answer, DuckDB's answer on
/// the Parquet files, and at SF 0.01 the checked-in answers.
fn check(cells: &mut BTreeMap<(String, String, u32), Cell>, sf: f64) {
    let reference = |cells: &BTreeMap<_, Cell>, engine: &str, n: u32| {
        cells
            .get(&("local".to_string(), engine.to_string(), n))
            .filter(|c: &&Cell| c.error.is_none())
            .map(|c| c.rows.clone())
    };
    let keys: Vec<_> = cells.keys().cloned().collect();
    for key in keys {
        let (_, engine, n) = &key;
        if engine == "postgres" {
            continue;
        }
        let mut checks = Vec::new();
        let answers = [
            ("local", reference(cells, "weft", *n)),
            ("duckdb", reference(cells, "duckdb", *n)),
        ];
        let cell = cells.get_mut(&key).expect("key from the map");
        if cell.error.is_some() {
            continue;
        }
        for (name, answer) in answers {
            if let Some(expected) = answer {
                match tpch::compare_rows(&[], &expected, &cell.rows) {
                    Ok(()) => checks.push(format!("{name}: ok")),
                    Err(e) => checks.push(format!("{name}: {e}")),
                }
            }
        }
        if (sf - 0.01).abs() < 1e-12 {
            match tpch::compare(tpch::answer_sf001(*n), &cell.rows) {
                Ok(()) => checks.push("checked-in: ok".to_string()),
                Err(e) => checks.push(format!("checked-in: {e}")),
            }
        }
        cell.check = checks;
    }
}

fn bytes(b: u64) -> String {
    match b {
        b if b >= 10 << 20 => format!("{} MB", b >> 20),
        b if b >= 10 << 10 => format!("{} kB", b >> 10),
        b => format!("{b} B"),
    }
}

struct Report<'a> {
    args: &'a Args,
    reads: &'a [Read],
    engines: &'a [String],
    placements: &'a [Placement],
    queries: Vec<u32>,
    cells: &'a BTreeMap<(String, String, u32), Cell>,
    elapsed: Duration,
}

impl Report<'_> {
    fn cell(&self, placement: Placement, engine: &str, n: u32) -> Option<&Cell> {
        self.cells
            .get(&(placement.name().to_string(), engine.to_string(), n))
    }

    fn seconds(&self, placement: Placement, engine: &str, n: u32) -> Option<f64> {
        self.cell(placement, engine, n)
            .filter(|c| c.error.is_none())
            .and_then(|c| c.seconds)
    }

    /// Whether a cell's answer passed every check it had.
    fn correct(cell: &Cell) -> Option<bool> {
        if cell.error.is_some() {
            return Some(false);
        }
        if cell.check.is_empty() {
            return None;
        }
        Some(cell.check.iter().all(|c| c.ends_with(": ok")))
    }

    fn geomean(values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        Some((values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp())
    }

    fn machine() -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                let kb: u64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{} GiB", kb >> 20))
            })
            .unwrap_or_default();
        format!("{cores} cores ({cpu}), {memory}")
    }

    fn now() -> String {
        Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    fn write(&self) -> Result<()> {
        std::fs::create_dir_all(&self.args.out)?;
        let stem = match self.args.link {
            Some(rate) => format!("tpch-sf{}-link{}mbit", self.args.sf, rate / 1_000_000),
            None => format!("tpch-sf{}", self.args.sf),
        };
        let markdown = self.markdown();
        let json_path = self.args.out.join(format!("{stem}.json"));
        let md_path = self.args.out.join(format!("{stem}.md"));
        let svg_path = self.args.out.join(format!("{stem}.svg"));
        std::fs::write(&json_path, serde_json::to_string_pretty(&self.json())?)?;
        std::fs::write(&md_path, &markdown)?;
        std::fs::write(&svg_path, self.svg())?;
        println!("{markdown}");
        eprintln!(
            "wrote {}, {} and {} in {:.0} s",
            md_path.display(),
            json_path.display(),
            svg_path.display(),
            self.elapsed.as_secs_f64()
        );
        let wrong: Vec<String> = self
            .cells
            .iter()
            .filter(|((_, engine, _), c)| {
                engine.starts_with("weft") && Self::correct(c) == Some(false)
            })
            .map(|((p, e, n), c)| {
                format!(
                    "{p} {e} q{n:02}: {}",
                    c.error.clone().unwrap_or_else(|| c.check.join("; "))
                )
            })
            .collect();
        let wrong_reads = self.reads.iter().filter(|r| {
            r.reader.starts_with("weft") && (r.error.is_some() || matches!(r.check, Some(Err(_))))
        });
        let wrong: Vec<String> = wrong
            .into_iter()
            .chain(wrong_reads.map(|r| {
                format!(
                    "table read weft: {}",
                    r.error
                        .clone()
                        .or_else(|| r.check.clone().and_then(|c| c.err()))
                        .unwrap_or_default()
                )
            }))
            .collect();
        if !wrong.is_empty() {
            bail!(
                "{} Weft answers wrong or failed:\n{}",
                wrong.len(),
                wrong.join("\n")
            );
        }
        Ok(())
    }

    fn json(&self) -> Value {
        let cells: Vec<Value> = self
            .cells
            .iter()
            .map(|((placement, engine, n), c)| {
                json!({
                    "placement": placement,
                    "engine": engine,
                    "query": n,
                    "seconds": c.seconds,
                    "wire_bytes": c.wire_bytes,
                    "peak_rss": c.peak_rss,
                    "remote_queries": c.remote_queries,
                    "sources": c.sources.iter().map(|(name, t)| (name.clone(), json!({
                        "statements": t.statements,
                        "rows": t.rows,
                        "bytes": t.bytes,
                    }))).collect::<serde_json::Map<_, _>>(),
                    "rows": c.rows.len(),
                    "error": c.error,
                    "correct": Self::correct(c),
                    "checks": c.check,
                })
            })
            .collect();
        json!({
            "benchmark": "TPC-H",
            "scale_factor": self.args.sf,
            "runs": self.args.runs(),
            "machine": Self::machine(),
            "date": Self::now(),
            "engines": self.engines,
            "network": match self.args.link {
                Some(rate) => json!({"interface": iface(), "rate_bits_per_second": rate}),
                None => json!({"interface": "lo"}),
            },
            "cells": cells,
            "table_read": {
                "table": self.args.read_table,
                "readers": self.reads.iter().map(Read::json).collect::<Vec<_>>(),
            },
        })
    }

    fn markdown(&self) -> String {
        let mut md = format!(
            "## TPC-H SF {} — {} — {}\n\nMedian of {} timed run(s) after a warm-up (a first run over 2 s is its own warm-up \
             and counts as timed). {} \
             *From sources*: what Weft's own counters saw in one run, per source: statements \
             sent, rows and Arrow bytes received (for Parquet: rows out of the scans and bytes \
             read from the files). ✓: the answer matches Weft's `local` answer, DuckDB's answer \
             on the Parquet files{}.\n",
            self.args.sf,
            Self::machine(),
            Self::now(),
            self.args.runs(),
            match self.args.link {
                Some(rate) => format!(
                    "PostgreSQL ran behind a link shaped to {} Mbit/s each way (veth pair, `tc \
                     tbf`); *bytes*: what crossed that link in one run, both directions.",
                    rate as f64 / 1e6
                ),
                None => "*Bytes*: what crossed loopback in one run (PostgreSQL's traffic, and \
                         the Flight SQL results of `weft-server`; Parquet and SQLite are local \
                         files)."
                    .to_string(),
            },
            if (self.args.sf - 0.01).abs() < 1e-12 {
                " and the checked-in answers"
            } else {
                ""
            }
        );
        let engines: Vec<&str> = self.engines.iter().map(String::as_str).collect();
        // Geometric means first.
        md.push_str(
            "\n### Geometric mean time (s) over the queries every engine answered\n\n| placement |",
        );
        for e in &engines {
            md.push_str(&format!(" {e} |"));
        }
        md.push_str(
            " weft ÷ duckdb | weft ÷ weft local | bytes weft ÷ duckdb (sum) | Weft answers correct |\n|---|",
        );
        for _ in &engines {
            md.push_str("---:|");
        }
        md.push_str("---:|---:|---:|---|\n");
        for &placement in self.placements {
            let present: Vec<&str> = engines
                .iter()
                .copied()
                .filter(|e| {
                    self.queries
                        .iter()
                        .any(|n| self.cell(placement, e, *n).is_some())
                })
                .collect();
            let common: Vec<u32> = self
                .queries
                .iter()
                .copied()
                .filter(|n| {
                    present
                        .iter()
                        .all(|e| self.seconds(placement, e, *n).is_some())
                })
                .collect();
            let gm = |e: &str| {
                Self::geomean(
                    &common
                        .iter()
                        .filter_map(|n| self.seconds(placement, e, *n))
                        .collect::<Vec<_>>(),
                )
            };
            md.push_str(&format!("| {} |", placement.name()));
            for e in &engines {
                md.push_str(&match present.contains(e).then(|| gm(e)).flatten() {
                    Some(v) => format!(" {v:.3} |"),
                    None => " — |".to_string(),
                });
            }
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => format!("{:.2}", a / b),
                _ => "—".to_string(),
            };
            let local_gm = Self::geomean(
                &common
                    .iter()
                    .filter_map(|n| self.seconds(Placement::Local, "weft", *n))
                    .collect::<Vec<_>>(),
            );
            let weft_cells: Vec<&Cell> = engines
                .iter()
                .filter(|e| e.starts_with("weft"))
                .flat_map(|e| self.queries.iter().map(move |n| (e, *n)))
                .filter_map(|(e, n)| self.cell(placement, e, n))
                .collect();
            let right = weft_cells
                .iter()
                .filter(|c| Self::correct(c) == Some(true))
                .count();
            let total_bytes = |e: &str| {
                let sum: u64 = common
                    .iter()
                    .filter_map(|n| self.cell(placement, e, *n).and_then(|c| c.wire_bytes))
                    .sum();
                (present.contains(&e) && !common.is_empty()).then_some(sum as f64)
            };
            let byte_ratio = match (total_bytes("weft"), total_bytes("duckdb")) {
                (Some(w), Some(d)) if d > 0.0 => format!("{:.2}", w / d),
                _ => "—".to_string(),
            };
            md.push_str(&format!(
                " {} | {} | {byte_ratio} | {right}/{} |\n",
                ratio(gm("weft"), gm("duckdb")),
                ratio(gm("weft"), local_gm),
                weft_cells.len()
            ));
        }
        md.push_str(&self.reads_markdown());
        for &placement in self.placements {
            md.push_str(&format!("\n### {}\n\n| query |", placement.name()));
            for e in &engines {
                md.push_str(&format!(" {e} s |"));
            }
            md.push_str(
                " weft ÷ duckdb | weft bytes | duckdb bytes | weft from sources | peak MB weft · duckdb | Weft ✓ |\n|---|",
            );
            for _ in &engines {
                md.push_str("---:|");
            }
            md.push_str("---:|---:|---:|---|---:|---|\n");
            for &n in &self.queries {
                md.push_str(&format!("| q{n:02} |"));
                for e in &engines {
                    md.push_str(&match self.cell(placement, e, n) {
                        Some(c) if c.error.is_some() => " failed |".to_string(),
                        Some(c) => c
                            .seconds
                            .map(|s| format!(" {s:.3} |"))
                            .unwrap_or_else(|| " — |".to_string()),
                        None => " — |".to_string(),
                    });
                }
                let ratio = match (
                    self.seconds(placement, "weft", n),
                    self.seconds(placement, "duckdb", n),
                ) {
                    (Some(a), Some(b)) => format!("{:.2}", a / b),
                    _ => "—".to_string(),
                };
                let b = |e: &str| {
                    self.cell(placement, e, n)
                        .and_then(|c| c.wire_bytes)
                        .map(bytes)
                        .unwrap_or_else(|| "—".to_string())
                };
                let weft = self.cell(placement, "weft", n);
                let remote = weft
                    .filter(|c| c.error.is_none())
                    .map(|c| traffic_summary(&c.sources))
                    .unwrap_or_else(|| "—".to_string());
                // Every Weft engine's answer: ✓ only when all are right.
                let verdicts: Vec<Option<bool>> = engines
                    .iter()
                    .filter(|e| e.starts_with("weft"))
                    .filter_map(|e| self.cell(placement, e, n))
                    .map(Self::correct)
                    .collect();
                let correct = if verdicts.contains(&Some(false)) {
                    "✗"
                } else if !verdicts.is_empty() && verdicts.iter().all(|v| *v == Some(true)) {
                    "✓"
                } else {
                    "—"
                };
                let mb = |e: &str| {
                    self.cell(placement, e, n)
                        .and_then(|c| c.peak_rss)
                        .map_or_else(|| "—".to_string(), |p| (p >> 20).to_string())
                };
                md.push_str(&format!(
                    " {ratio} | {} | {} | {remote} | {} · {} | {correct} |\n",
                    b("weft"),
                    b("duckdb"),
                    mb("weft"),
                    mb("duckdb")
                ));
            }
        }
        md
    }

    /// The PostgreSQL table read, if it ran.
    fn reads_markdown(&self) -> String {
        if self.reads.is_empty() {
            return String::new();
        }
        let mut md = format!(
            "\n### PostgreSQL table read: `{}` into Arrow in memory\n\nEach reader in its own \
             process: Weft (`SELECT *` through a session; `weft-whole`: as one statement, \
             `read_ranges = 1`), DuckDB's postgres scanner, ConnectorX \
             ({CONNECTORX_PARTITIONS} partitions), ADBC's PostgreSQL driver. *Peak*: the \
             process's peak resident memory. ✓: the row and column counts are the table's.\n\n\
             | reader | s | ÷ weft | rows | Arrow MB | MB over {} | peak MB | statements | ✓ |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
            self.args.read_table,
            iface()
        );
        let weft = self
            .reads
            .iter()
            .find(|r| r.reader == "weft")
            .and_then(|r| r.seconds);
        let mb = |b: Option<u64>| b.map_or_else(|| "—".to_string(), |b| (b >> 20).to_string());
        for read in self.reads {
            if let Some(e) = &read.error {
                md.push_str(&format!(
                    "| {} | failed: {} | | | | | | | ✗ |\n",
                    read.reader,
                    e.replace('|', "\\|")
                ));
                continue;
            }
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                read.reader,
                read.seconds
                    .map_or_else(|| "—".to_string(), |s| format!("{s:.3}")),
                match (read.seconds, weft) {
                    (Some(s), Some(w)) => format!("{:.2}", s / w),
                    _ => "—".to_string(),
                },
                read.rows.map_or_else(|| "—".to_string(), |r| r.to_string()),
                mb(read.arrow_bytes),
                mb(read.wire_bytes),
                mb(read.peak_rss),
                read.statements_text().unwrap_or_else(|| "—".to_string()),
                match &read.check {
                    Some(Ok(())) => "✓".to_string(),
                    Some(Err(e)) => format!("✗ {e}"),
                    None => "—".to_string(),
                }
            ));
        }
        md
    }

    /// Weft's time over DuckDB's per query and placement, as grouped bars on a log scale.
    fn svg(&self) -> String {
        const W: f64 = 1100.0;
        const H: f64 = 420.0;
        const LEFT: f64 = 60.0;
        const TOP: f64 = 40.0;
        const BOTTOM: f64 = 60.0;
        let plot_h = H - TOP - BOTTOM;
        let colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1"];
        let (lo, hi) = (0.1f64, 10.0f64);
        let y = |ratio: f64| {
            let r = ratio.clamp(lo, hi);
            TOP + plot_h * (1.0 - (r.log10() - lo.log10()) / (hi.log10() - lo.log10()))
        };
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{LEFT}\" y=\"20\" font-size=\"14\">TPC-H SF {}: Weft time ÷ DuckDB time per query (log scale; below 1 is faster)</text>\n",
            self.args.sf
        );
        for tick in [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0] {
            let ty = y(tick);
            svg.push_str(&format!(
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"{}\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{tick}</text>\n",
                W - 10.0,
                if tick == 1.0 { "#333" } else { "#ddd" },
                LEFT - 5.0,
                ty + 4.0
            ));
        }
        let group = (W - LEFT - 10.0) / self.queries.len().max(1) as f64;
        let bar = (group * 0.8) / self.placements.len().max(1) as f64;
        for (qi, &n) in self.queries.iter().enumerate() {
            let gx = LEFT + group * qi as f64 + group * 0.1;
            for (pi, &placement) in self.placements.iter().enumerate() {
                if let (Some(w), Some(d)) = (
                    self.seconds(placement, "weft", n),
                    self.seconds(placement, "duckdb", n),
                ) {
                    let (y1, y0) = (y(w / d), y(1.0));
                    svg.push_str(&format!(
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} q{n:02}: {:.2}</title></rect>\n",
                        gx + bar * pi as f64,
                        y1.min(y0),
                        bar.max(1.0),
                        (y1 - y0).abs().max(0.5),
                        colors[pi % colors.len()],
                        placement.name(),
                        w / d
                    ));
                }
            }
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">q{n}</text>\n",
                gx + group * 0.4,
                H - BOTTOM + 15.0
            ));
        }
        for (pi, placement) in self.placements.iter().enumerate() {
            let lx = LEFT + 150.0 * pi as f64;
            svg.push_str(&format!(
                "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
                H - 25.0,
                colors[pi % colors.len()],
                lx + 14.0,
                H - 16.0,
                placement.name()
            ));
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_are_read_as_tc_writes_them() {
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("100Mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("2.5mbit"), Ok(2_500_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("1000000"), Ok(1_000_000));
        assert!(parse_rate("fast").unwrap_err().contains("`fast`"));
        assert!(parse_rate("10kbit").unwrap_err().contains("below"));
    }
}
