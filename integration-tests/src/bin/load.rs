//! `weft-load`: N concurrent Flight SQL clients against a `weft serve` on loopback, running a
//! mix of point lookups, joins across sources and aggregates for a fixed time. Every answer
//! is checked against the same query run in process with the data held in DataFusion; it
//! reports throughput, latency percentiles and errors, and exits 1 if any query failed or
//! answered wrongly. `cargo xtask load` builds and runs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use futures::TryStreamExt as _;
use integration_tests::serve::{hash_password, weft_binary, WeftServe};
use integration_tests::{demo, local, rows};

#[derive(Debug, Parser)]
#[command(
    name = "weft-load",
    about = "Concurrent Flight SQL clients against weft serve"
)]
struct Args {
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long the clients run.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The `weft` binary (default: the one beside this program).
    #[arg(long)]
    weft_bin: Option<PathBuf>,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What a client may run, and the answer it must get.
struct Query {
    kind: &'static str,
    sql: String,
    answer: Vec<Vec<String>>,
}

/// The mix: point lookups in SQLite, joins of SQLite with Parquet, aggregates in each.
fn mix() -> Vec<(&'static str, String)> {
    let mut queries = Vec::new();
    for id in [1, 7, 42, 99, 256, 777, 1024, 1500, 1999, 2000] {
        queries.push((
            "lookup",
            format!("SELECT id, name, country, vip FROM shop.main.customers WHERE id = {id}"),
        ));
        queries.push((
            "lookup",
            format!(
                "SELECT id, status, ordered_at FROM shop.main.orders WHERE customer_id = {id} \
                 ORDER BY id"
            ),
        ));
    }
    for kind in ["view", "click", "cart", "purchase"] {
        queries.push((
            "join",
            format!(
                "SELECT c.country, count(*) AS events, count(DISTINCT c.id) AS customers \
                 FROM shop.main.customers c JOIN lake.public.events e ON e.customer_id = c.id \
                 WHERE e.kind = '{kind}' AND c.vip GROUP BY c.country ORDER BY c.country"
            ),
        ));
    }
    for status in ["paid", "returned"] {
        queries.push((
            "join",
            format!(
                "SELECT o.id, count(e.event_id) AS events FROM shop.main.orders o \
                 JOIN lake.public.events e ON e.customer_id = o.customer_id \
                 WHERE o.status = '{status}' AND o.id < 200 GROUP BY o.id ORDER BY o.id"
            ),
        ));
    }
    queries.push((
        "aggregate",
        "SELECT status, count(*), min(amount), max(amount), sum(customer_id) \
         FROM shop.main.orders GROUP BY status ORDER BY status"
            .to_string(),
    ));
    queries.push((
        "aggregate",
        "SELECT kind, count(*), count(DISTINCT customer_id) FROM lake.public.events \
         GROUP BY kind ORDER BY kind"
            .to_string(),
    ));
    queries.push((
        "aggregate",
        "SELECT country, count(*) FROM shop.main.customers WHERE vip GROUP BY country \
         ORDER BY 2 DESC, 1"
            .to_string(),
    ));
    queries
}

/// One client's tally.
#[derive(Default)]
struct Tally {
    latencies: Vec<(usize, Duration)>,
    errors: Vec<String>,
    wrong: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let bin = weft_binary(args.weft_bin.as_deref())?;
    let demo = demo();
    eprintln!("computing the expected answers in process...");
    let reference = local().await;
    let mut queries = Vec::new();
    for (kind, sql) in mix() {
        let batches = reference
            .sql(&sql)
            .await
            .with_context(|| format!("plan {sql}"))?
            .collect()
            .await
            .with_context(|| format!("run {sql}"))?;
        queries.push(Query {
            kind,
            sql,
            answer: rows(&batches),
        });
    }
    let queries = Arc::new(queries);

    let config = format!(
        "{}\n[server]\nmax_concurrent_queries = {}\n\n[[users]]\nname = \"load\"\npassword_hash = \"{}\"\n",
        demo.config_toml(),
        // Every client may run at once: the test measures the server, not its queue.
        args.clients.max(1),
        hash_password(&bin, "load")?
    );
    let server = WeftServe::start(&bin, &config, "warn")?;
    eprintln!(
        "{} clients for {} s, {} distinct queries...",
        args.clients,
        args.seconds,
        queries.len()
    );
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut clients = Vec::with_capacity(args.clients);
    for n in 0..args.clients {
        let client = server.client("load", "load").await?;
        let queries = Arc::clone(&queries);
        clients.push(tokio::spawn(drive(client, queries, n, until)));
    }
    let mut tally = Tally::default();
    for client in clients {
        let mut one = client.await.context("a client task panicked")?;
        tally.latencies.append(&mut one.latencies);
        tally.errors.append(&mut one.errors);
        tally.wrong.append(&mut one.wrong);
    }
    let elapsed = started.elapsed();
    drop(server);
    report(&args, &queries, &tally, elapsed)
}

/// One client: picks queries in turn (starting at its own offset) until `until`.
async fn drive(
    mut client: arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    queries: Arc<Vec<Query>>,
    offset: usize,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut i = offset * 7;
    while Instant::now() < until {
        let q = i % queries.len();
        i += 1;
        let query = &queries[q];
        let started = Instant::now();
        let result = async {
            let info = client.execute(query.sql.clone(), None).await?;
            let mut batches = Vec::new();
            for endpoint in info.endpoint {
                let ticket = endpoint.ticket.context("an endpoint without a ticket")?;
                let stream = client.do_get(ticket).await?;
                batches.extend(stream.try_collect::<Vec<_>>().await?);
            }
            Ok::<_, anyhow::Error>(batches)
        }
        .await;
        let latency = started.elapsed();
        match result {
            Ok(batches) => {
                tally.latencies.push((q, latency));
                let got = rows(&batches);
                if got != query.answer {
                    tally.wrong.push(format!(
                        "{}: {} rows, expected {} (first: {:?} vs {:?})",
                        query.sql,
                        got.len(),
                        query.answer.len(),
                        got.first(),
                        query.answer.first()
                    ));
                }
            }
            Err(e) => tally.errors.push(format!(
                "{}: {}",
                query.sql,
                format!("{e:#}").replace('\n', " ")
            )),
        }
    }
    tally
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(args: &Args, queries: &[Query], tally: &Tally, elapsed: Duration) -> Result<bool> {
    let mut all: Vec<Duration> = tally.latencies.iter().map(|(_, d)| *d).collect();
    all.sort();
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for (q, d) in &tally.latencies {
        by_kind.entry(queries[*q].kind).or_default().push(*d);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let throughput = all.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{} clients, {:.1} s: {} queries answered, {:.1} queries/s; {} errors, {} wrong answers",
        args.clients,
        elapsed.as_secs_f64(),
        all.len(),
        throughput,
        tally.errors.len(),
        tally.wrong.len()
    );
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9}",
        "kind", "queries", "p50 ms", "p95 ms", "p99 ms"
    );
    let mut kinds: Vec<(&str, Vec<Duration>)> = by_kind.into_iter().collect();
    kinds.push(("all", all.clone()));
    let mut json_kinds = serde_json::Map::new();
    for (kind, mut latencies) in kinds {
        latencies.sort();
        let (p50, p95, p99) = (
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            percentile(&latencies, 99.0),
        );
        println!(
            "{kind:<10} {:>8} {:>9.1} {:>9.1} {:>9.1}",
            latencies.len(),
            ms(p50),
            ms(p95),
            ms(p99)
        );
        json_kinds.insert(
            kind.to_string(),
            serde_json::json!({
                "queries": latencies.len(),
                "p50_ms": ms(p50), "p95_ms": ms(p95), "p99_ms": ms(p99),
            }),
        );
    }
    for error in tally.errors.iter().take(10) {
        println!("error: {error}");
    }
    for wrong in tally.wrong.iter().take(10) {
        println!("wrong answer: {wrong}");
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "clients": args.clients,
            "seconds": elapsed.as_secs_f64(),
            "queries_per_second": throughput,
            "errors": tally.errors,
            "wrong": tally.wrong,
            "latency": json_kinds,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    if all.is_empty() {
        println!("no query was answered");
        return Ok(false);
    }
    Ok(tally.errors.is_empty() && tally.wrong.is_empty())
}
