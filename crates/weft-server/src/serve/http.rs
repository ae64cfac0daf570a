//! The operations endpoint (`[server] http_listen`): `/health` for load balancers and
//! orchestrators, `/metrics` for Prometheus.
//!
//! `/health` answers 200 when every source answers its probe, 503 naming the sources that do
//! not otherwise; the server itself is up if it answers at all. `/metrics` is the OpenMetrics
//! text format: queries by outcome, their latency, queries running and waiting, memory in
//! use, and per source the statements, errors, rows, bytes and time spent.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use weft_core::Source;

use super::limits::Limits;

/// How long `/health` waits for a source's probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How a query ended, as a metric label.
#[derive(
    Debug, Clone, Copy, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)]
pub(crate) enum Outcome {
    /// All its rows were sent.
    ok,
    /// It failed: a bad query, a source error, a memory limit.
    failed,
    /// Its deadline passed.
    timeout,
    /// The client cancelled it or went away.
    cancelled,
    /// Refused before it ran: the server was busy.
    busy,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

/// The server's query metrics, updated as queries end.
#[derive(Debug)]
pub(crate) struct Metrics {
    queries: Family<OutcomeLabel, Counter>,
    latency: Histogram,
    rows_sent: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            queries: Family::default(),
            // 1 ms to ~65 s.
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            rows_sent: Counter::default(),
        }
    }

    /// Records a query that ended after `seconds`, having sent `rows`.
    pub(crate) fn query_ended(&self, outcome: Outcome, seconds: f64, rows: u64) {
        self.queries.get_or_create(&OutcomeLabel { outcome }).inc();
        self.latency.observe(seconds);
        self.rows_sent.inc_by(rows);
    }
}

/// One of a source's totals.
type Total = fn(&weft_core::remote::SourceTotals) -> u64;

/// What is read at each scrape: the limits' gauges and the sources' totals.
#[derive(Debug)]
struct Live {
    limits: Arc<Limits>,
    sources: Vec<Arc<dyn Source>>,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64| {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "weft_queries_running",
            "Queries running now",
            count(self.limits.running()),
        )?;
        gauge(
            &mut encoder,
            "weft_queries_waiting",
            "Queries waiting for a slot",
            count(self.limits.waiting()),
        )?;
        gauge(
            &mut encoder,
            "weft_memory_reserved_bytes",
            "Memory the running queries hold, as DataFusion accounts it",
            count(self.limits.memory_in_use()),
        )?;
        let totals = self
            .sources
            .iter()
            .filter_map(|s| Some((s.name().to_string(), s.query_log()?.totals())))
            .collect::<Vec<_>>();
        let counters: [(&str, &str, Total); 4] = [
            (
                "weft_source_statements",
                "Statements sent to each source",
                |t| t.statements,
            ),
            (
                "weft_source_errors",
                "Statements that failed in each source",
                |t| t.failed,
            ),
            ("weft_source_rows", "Rows received from each source", |t| {
                t.rows
            }),
            (
                "weft_source_bytes",
                "Bytes of Arrow data received from each source",
                |t| t.bytes,
            ),
        ];
        for (name, help, value) in counters {
            let mut metric = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (source, t) in &totals {
                let labels = [("source", source.as_str())];
                ConstCounter::new(value(t)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "weft_source_seconds",
            "Time from sending each statement to the end of its result, per source",
            None,
            ConstCounter::new(0f64).metric_type(),
        )?;
        for (source, t) in &totals {
            let labels = [("source", source.as_str())];
            ConstCounter::new(t.micros as f64 / 1e6).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Serves `/health` and `/metrics` on `listen` until the process ends.
pub(crate) async fn serve(
    listen: &str,
    metrics: Arc<Metrics>,
    limits: Arc<Limits>,
    sources: Vec<Arc<dyn Source>>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}` (`[server] http_listen`)"))?;
    let local = listener.local_addr()?;
    let mut registry = Registry::default();
    registry.register(
        "weft_queries",
        "Queries answered, by outcome",
        metrics.queries.clone(),
    );
    registry.register(
        "weft_query_duration_seconds",
        "Time from a query's arrival to its last row",
        metrics.latency.clone(),
    );
    registry.register(
        "weft_rows_sent",
        "Rows sent to clients",
        metrics.rows_sent.clone(),
    );
    registry.register_collector(Box::new(Live {
        limits,
        sources: sources.clone(),
    }));
    let state = Arc::new(State {
        registry,
        sources,
        down: AtomicU64::new(0),
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(state.answer(&request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

struct State {
    registry: Registry,
    sources: Vec<Arc<dyn Source>>,
    /// Sources down at the last probe, so a change is logged once, not at every probe.
    down: AtomicU64,
}

impl State {
    async fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_string());
        }
        match request.uri().path() {
            "/metrics" => {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
                    Ok(()) => {
                        let mut response = text(StatusCode::OK, body);
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        response
                    }
                    Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode\n".into()),
                }
            }
            "/health" => self.health().await,
            _ => text(
                StatusCode::NOT_FOUND,
                "try /health or /metrics\n".to_string(),
            ),
        }
    }

    /// Probes every source at once; each gets [`PROBE_TIMEOUT`].
    async fn health(&self) -> Response<Full<Bytes>> {
        let probes = self.sources.iter().map(|source| async move {
            let result = tokio::time::timeout(PROBE_TIMEOUT, source.check()).await;
            let state = match result {
                Ok(Ok(true)) => "up".to_string(),
                Ok(Ok(false)) => "up (not probed)".to_string(),
                Ok(Err(e)) => format!("down: {e}"),
                Err(_) => format!("down: no answer within {PROBE_TIMEOUT:?}"),
            };
            (source.name().to_string(), source.kind(), state)
        });
        let results = futures::future::join_all(probes).await;
        let down = results
            .iter()
            .filter(|(_, _, s)| s.starts_with("down"))
            .count();
        let previous = self.down.swap(down as u64, Ordering::Relaxed);
        if down as u64 != previous {
            for (name, _, state) in results.iter().filter(|(_, _, s)| s.starts_with("down")) {
                tracing::warn!(source = %name, %state, "source down");
            }
            tracing::warn!(sources_down = down, "health changed");
        }
        let mut body = format!(
            "server: up\n{}",
            results
                .iter()
                .map(|(name, kind, state)| format!("source {name} ({kind}): {state}\n"))
                .collect::<String>()
        );
        if down > 0 {
            body.insert_str(0, &format!("unhealthy: {down} source(s) down\n"));
            return text(StatusCode::SERVICE_UNAVAILABLE, body);
        }
        text(StatusCode::OK, body)
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
