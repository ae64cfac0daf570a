//! Runs a statement in Postgres and streams its rows as Arrow batches.
//!
//! One round trip per statement (`query_typed`: no separate prepare), results in Postgres's
//! binary format decoded straight into Arrow builders (see [`crate::decode`]), batches of a
//! bounded size so a large result never sits in memory whole. The pooled connection is held
//! until the stream ends or is dropped.
//!
//! A statement that only filters and projects one large table ([`crate::split`]) is read as
//! several concurrent statements, one per range of the table's pages (`ctid` ranges, which
//! PostgreSQL 14 and later scan directly), each on its own connection and decoded on its own
//! task, so that both PostgreSQL and Weft use more than one core. All ranges read one
//! snapshot: the first connection exports it (`pg_export_snapshot`) and the others take it
//! (`SET TRANSACTION SNAPSHOT`), so the rows are exactly those one statement would have
//! read, even while the table changes. Where the export, another connection or the table's
//! size is not to be had, the statement is read whole, as before.
//!
//! A stream dropped before its statement ended (the client cancelled or disconnected, the
//! query timed out or failed elsewhere) sends Postgres a cancel request, so nothing keeps
//! running on the source, and gives the connection back to the pool only once the
//! cancelled statement is over (see [`Running`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};
use datafusion_federation::sql::SQLExecutor;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresConnection;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{CancelToken, Row, RowStream};

use crate::decode::{decoder, Decoder, Raw};
use crate::split::{splittable, Splittable};

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 8192;

/// A range of a split read covers at least this many pages (8 kB each by default: 8 MB):
/// below that, a second connection and snapshot cost more than they save. DuckDB's postgres
/// scanner uses the same size of task.
const MIN_PAGES_PER_RANGE: u64 = 1000;

/// The most ranges one statement is split into.
const MAX_RANGES: usize = 8;

/// How long a split read waits for each further pooled connection before it goes on with
/// those it has: a pool that is busy must not hold a read up (nor deadlock reads that each
/// hold one connection and wait for another).
const EXTRA_CONNECTION_WAIT: Duration = Duration::from_millis(500);

/// How long a table's size is trusted. A stale size only makes the ranges uneven: the last
/// range has no upper bound.
const TABLE_SIZE_TTL: Duration = Duration::from_secs(60);

/// Batches a range's task may have ready before the consumer takes them.
const RANGE_BUFFER: usize = 2;

/// Each table's pages (or `None`: not one a split read can cut), and when they were read.
type TablePages = Mutex<HashMap<String, (Instant, Option<u64>)>>;

pub(crate) struct PgExecutor {
    pool: Arc<PostgresConnectionPool>,
    /// `host:port`, for errors.
    address: String,
    compute_context: String,
    /// The `sslmode` of the pool's connections, which cancel requests follow.
    sslmode: String,
    /// Pages of the tables split reads were considered for (`None`: not one that can be
    /// split: a view, a partitioned or foreign table, or a server before PostgreSQL 14).
    table_pages: Arc<TablePages>,
    /// Ranges a large scan is split into: the source's `read_ranges`, or the cores this
    /// process may use, at most [`MAX_RANGES`].
    ranges: usize,
    /// Range statements sent so far (the source's `ranges_sent`).
    ranges_sent: Arc<AtomicU64>,
}

impl PgExecutor {
    pub(crate) fn new(
        pool: Arc<PostgresConnectionPool>,
        address: String,
        compute_context: String,
        sslmode: String,
        ranges: Option<usize>,
        ranges_sent: Arc<AtomicU64>,
    ) -> Self {
        Self {
            pool,
            address,
            compute_context,
            sslmode,
            table_pages: Arc::default(),
            ranges: ranges.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .min(MAX_RANGES)
            }),
            ranges_sent,
        }
    }
}

#[async_trait]
impl SQLExecutor for PgExecutor {
    fn name(&self) -> &str {
        "postgres"
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.compute_context.clone())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(PostgreSqlDialect {})
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream> {
        let pool = Arc::clone(&self.pool);
        let address = self.address.clone();
        let sql = query.to_string();
        let out_schema = Arc::clone(&schema);
        let sslmode = self.sslmode.clone();
        let table_pages = Arc::clone(&self.table_pages);
        let ranges = self.ranges;
        let ranges_sent = Arc::clone(&self.ranges_sent);
        let batches = futures::stream::once(async move {
            let conn = pool.connect_direct().await.map_err(|e| {
                DataFusionError::Execution(format!("cannot connect to {address}: {e}"))
            })?;
            let cx = ReadContext {
                schema,
                address,
                sslmode,
            };
            if ranges > 1 {
                if let Some(split) = splittable(&sql) {
                    let pages = pages_of(&conn, &split.table, &table_pages).await;
                    let wanted =
                        pages.map_or(1, |p| (p / MIN_PAGES_PER_RANGE).min(ranges as u64) as usize);
                    if let (Some(pages), true) = (pages, wanted > 1) {
                        let read = split_read(conn, &pool, &sql, &split, pages, wanted, cx);
                        let (batches, sent) = read.await?;
                        ranges_sent.fetch_add(sent, Ordering::Relaxed);
                        return Ok(batches);
                    }
                }
            }
            whole_read(conn, sql, cx, false).await
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, batches)))
    }

    async fn table_names(&self) -> Result<Vec<String>> {
        Err(DataFusionError::NotImplemented(
            "Weft discovers Postgres tables itself".to_string(),
        ))
    }

    async fn get_table_schema(&self, _table_name: &str) -> Result<SchemaRef> {
        Err(DataFusionError::NotImplemented(
            "Weft discovers Postgres tables itself".to_string(),
        ))
    }
}

/// What a read needs besides its connection and statement.
#[derive(Clone)]
struct ReadContext {
    schema: SchemaRef,
    /// `host:port`, for errors.
    address: String,
    sslmode: String,
}

/// Sends `sql` on `conn` and streams its rows. `transaction`: `conn` is in a transaction
/// this read ends.
async fn whole_read(
    conn: PostgresConnection,
    sql: String,
    cx: ReadContext,
    transaction: bool,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    // Armed before the statement is sent: for an aggregate, Postgres answers only once the
    // whole statement has run, and a drop while waiting must cancel it too.
    let mut running = Running::new(conn, cx.sslmode, cx.address.clone());
    running.transaction = transaction;
    let rows = running
        .client()
        .query_typed_raw(&sql, std::iter::empty::<(&(dyn ToSql + Sync), Type)>())
        .await
        .map_err(|e| postgres_error(&cx.address, &e))?;
    Ok(batches(running, rows, cx.schema, cx.address).boxed())
}

/// The pages of `table` (as the statement names it), if it is a table or materialized view
/// a split read can cut into `ctid` ranges; from the cache while it is fresh.
async fn pages_of(conn: &PostgresConnection, table: &str, cache: &TablePages) -> Option<u64> {
    if let Some((at, pages)) = cache.lock().ok()?.get(table) {
        if at.elapsed() < TABLE_SIZE_TTL {
            return *pages;
        }
    }
    let sql = format!(
        "SELECT c.relkind::text, pg_relation_size(c.oid) / current_setting('block_size')::bigint, \
         current_setting('server_version_num')::int FROM pg_class c \
         WHERE c.oid = to_regclass('{}')",
        table.replace('\'', "''")
    );
    let pages = match conn.conn.simple_query(&sql).await {
        Ok(messages) => messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                let kind = row.get(0)?;
                let pages: u64 = row.get(1)?.parse().ok()?;
                let version: u32 = row.get(2)?.parse().ok()?;
                // TID range scans came with PostgreSQL 14: before, each range would scan
                // the whole table.
                (matches!(kind, "r" | "m") && version >= 140_000).then_some(pages)
            }
            _ => None,
        }),
        Err(e) => {
            tracing::debug!(table, error = %e, "cannot read the size of a Postgres table");
            None
        }
    };
    if let Ok(mut cache) = cache.lock() {
        cache.insert(table.to_string(), (Instant::now(), pages));
    }
    pages
}

/// Reads `split` (the statement `sql`) as up to `wanted` concurrent `ctid` ranges of a table
/// of `pages` pages, in one snapshot; `sql` whole where the snapshot cannot be shared.
async fn split_read(
    first: PostgresConnection,
    pool: &PostgresConnectionPool,
    sql: &str,
    split: &Splittable,
    pages: u64,
    wanted: usize,
    cx: ReadContext,
) -> Result<(BoxStream<'static, Result<RecordBatch>>, u64)> {
    const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    let exported = first
        .conn
        .simple_query(&format!("{BEGIN}; SELECT pg_export_snapshot()"))
        .await;
    let snapshot = match exported {
        Ok(messages) => messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        }),
        Err(e) => {
            tracing::debug!(address = %cx.address, error = %e, "no snapshot to share: reading whole");
            None
        }
    };
    let Some(snapshot) = snapshot else {
        let _ = first.conn.simple_query("ROLLBACK").await;
        return Ok((whole_read(first, sql.to_string(), cx, false).await?, 0));
    };
    let mut conns = vec![first];
    while conns.len() < wanted {
        let Ok(Ok(conn)) = tokio::time::timeout(EXTRA_CONNECTION_WAIT, pool.connect_direct()).await
        else {
            break;
        };
        let joined = conn
            .conn
            .simple_query(&format!("{BEGIN}; SET TRANSACTION SNAPSHOT '{snapshot}'"))
            .await;
        if let Err(e) = joined {
            tracing::debug!(address = %cx.address, error = %e, "cannot share a snapshot");
            let _ = conn.conn.simple_query("ROLLBACK").await;
            break;
        }
        conns.push(conn);
    }
    let n = conns.len() as u64;
    if n == 1 {
        let first = conns.pop().expect("one connection");
        return Ok((whole_read(first, sql.to_string(), cx, true).await?, 0));
    }
    // Range k covers pages [k * pages / n, (k + 1) * pages / n); the first has no lower and
    // the last no upper bound, so every row is in exactly one range whatever the size is now.
    let bound = |k: u64| (k > 0 && k < n).then(|| pages * k / n);
    let mut tasks = Vec::new();
    let mut receivers = Vec::new();
    for (k, conn) in (0..n).zip(conns) {
        let statement = split.range(bound(k), bound(k + 1));
        tracing::debug!(address = %cx.address, range = k, sql = %statement, "split read");
        let (tx, rx) = tokio::sync::mpsc::channel(RANGE_BUFFER);
        let cx = cx.clone();
        tasks.push(tokio::spawn(async move {
            let mut batches = match whole_read(conn, statement, cx, true).await {
                Ok(batches) => batches,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            while let Some(batch) = batches.next().await {
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
        }));
        receivers.push(
            futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|batch| (batch, rx))
            })
            .boxed(),
        );
    }
    // The ranges' tasks end with the stream: an abandoned read cancels its statements.
    let tasks = AbortOnDrop(tasks);
    let batches = futures::stream::select_all(receivers)
        .map(move |batch| {
            let _ = &tasks;
            batch
        })
        .boxed();
    Ok((batches, n))
}

/// Aborts its tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn postgres_error(address: &str, e: &tokio_postgres::Error) -> DataFusionError {
    let message = match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    DataFusionError::Execution(format!("Postgres at {address}: {message}"))
}

/// A pooled connection with a statement in progress. Dropped before [`Running::finished`],
/// it cancels the statement in Postgres and returns the connection to the pool only after
/// the statement has ended: a late cancel request must never hit the next statement sent on
/// the same connection.
struct Running {
    conn: Option<PostgresConnection>,
    sslmode: String,
    address: String,
    /// The connection is in a transaction (a split read's), ended before it goes back to
    /// the pool.
    transaction: bool,
}

impl Running {
    fn new(conn: PostgresConnection, sslmode: String, address: String) -> Self {
        Self {
            conn: Some(conn),
            sslmode,
            address,
            transaction: false,
        }
    }

    fn client(&self) -> &tokio_postgres::Client {
        &self.conn.as_ref().expect("held until dropped").conn
    }

    /// The statement ran to its end: nothing to cancel.
    fn finished(&mut self) {
        self.sslmode.clear();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let transaction = self.transaction;
        if self.sslmode.is_empty() && !transaction {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                address = %self.address,
                "a Postgres statement was abandoned outside a runtime and could not be cancelled"
            );
            return;
        };
        if self.sslmode.is_empty() {
            // Finished: only the transaction to end.
            runtime.spawn(async move {
                let _ = conn.conn.simple_query("COMMIT").await;
            });
            return;
        }
        let token = conn.conn.cancel_token();
        let sslmode = std::mem::take(&mut self.sslmode);
        let address = std::mem::take(&mut self.address);
        runtime.spawn(async move {
            // Postgres drops a cancel request that arrives while it reads the next message of
            // the statement (between Parse, Bind and Execute): so the request is repeated
            // until the statement is over. The probe (an empty query) queues behind the
            // statement and answers once it has ended; the connection then goes back to the
            // pool clean.
            let cancelled = async {
                let mut probe = std::pin::pin!(conn.conn.simple_query(""));
                for attempt in 1..=CANCEL_ATTEMPTS {
                    if let Err(e) = cancel(&token, &sslmode, &address).await {
                        tracing::warn!(%address, error = %e, "cannot cancel an abandoned Postgres statement");
                        break;
                    }
                    if tokio::time::timeout(CANCEL_WAIT, probe.as_mut()).await.is_ok() {
                        tracing::debug!(%address, attempt, "cancelled an abandoned Postgres statement");
                        return;
                    }
                }
                let _ = probe.await;
            };
            cancelled.await;
            if transaction {
                let _ = conn.conn.simple_query("ROLLBACK").await;
            }
        });
    }
}

/// How often a cancel request is sent for one statement, and how long each waits for it to
/// take effect.
const CANCEL_ATTEMPTS: u32 = 20;
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends Postgres a cancel request over TLS when the connection uses it, verifying the
/// server as the pool does for the same `sslmode`, and waits until Postgres has closed the
/// request's connection ([`UntilClosed`]).
///
/// tokio-postgres returns as soon as the request is written, but Postgres signals the
/// backend a little later, from the process that reads the request, and closes the
/// connection only after that. A request still on its way when the connection goes back to
/// the pool would cancel the next statement sent on it (seen as `canceling statement due to
/// user request` on an unrelated query).
async fn cancel(
    token: &CancelToken,
    sslmode: &str,
    address: &str,
) -> std::result::Result<(), String> {
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "5432"));
    if host.starts_with('/') {
        // A Unix socket: tokio-postgres connects itself, without waiting for the close.
        return if sslmode == "disable" {
            token.cancel_query(tokio_postgres::NoTls).await
        } else {
            let tls = postgres_native_tls::MakeTlsConnector::new(tls_connector(sslmode)?);
            token.cancel_query(tls).await
        }
        .map_err(|e| e.to_string());
    }
    let port: u16 = port.parse().map_err(|_| format!("bad port in {address}"))?;
    let stream = tokio::time::timeout(
        CANCEL_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| format!("no answer from {address} within {CANCEL_CONNECT_TIMEOUT:?}"))?
    .map_err(|e| e.to_string())?;
    let (stream, closed) = UntilClosed::new(stream);
    if sslmode == "disable" {
        token
            .cancel_query_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
    } else {
        use tokio_postgres::tls::MakeTlsConnect;
        let mut tls = postgres_native_tls::MakeTlsConnector::new(tls_connector(sslmode)?);
        let connect = MakeTlsConnect::<UntilClosed>::make_tls_connect(&mut tls, host)
            .map_err(|e| e.to_string())?;
        token
            .cancel_query_raw(stream, connect)
            .await
            .map_err(|e| e.to_string())?;
    }
    // Past the timeout the connection is used again anyway: a server that slow to close is
    // one whose cancel would hit a statement at any time.
    let _ = tokio::time::timeout(CANCEL_CLOSE_WAIT, closed).await;
    Ok(())
}

const CANCEL_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const CANCEL_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn tls_connector(sslmode: &str) -> std::result::Result<native_tls::TlsConnector, String> {
    native_tls::TlsConnector::builder()
        .danger_accept_invalid_hostnames(sslmode != "verify-full")
        .danger_accept_invalid_certs(sslmode != "verify-full" && sslmode != "verify-ca")
        .build()
        .map_err(|e| e.to_string())
}

/// A cancel request's TCP stream that, once dropped (the request written), reads on until
/// Postgres closes the connection and then reports it: the process that reads the request
/// signals the backend and then exits, so after the close the cancel cannot arrive late.
/// The reading happens after the drop because, under TLS, shutting the stream down never
/// reaches the socket.
struct UntilClosed {
    stream: Option<tokio::net::TcpStream>,
    closed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl UntilClosed {
    fn new(stream: tokio::net::TcpStream) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (closed, receiver) = tokio::sync::oneshot::channel();
        let stream = Self {
            stream: Some(stream),
            closed: Some(closed),
        };
        (stream, receiver)
    }

    fn stream(self: std::pin::Pin<&mut Self>) -> std::pin::Pin<&mut tokio::net::TcpStream> {
        std::pin::Pin::new(self.get_mut().stream.as_mut().expect("held until dropped"))
    }
}

impl Drop for UntilClosed {
    fn drop(&mut self) {
        let (Some(mut stream), Some(closed)) = (self.stream.take(), self.closed.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use tokio::io::AsyncRead as _;
            let mut scratch = [0u8; 64];
            // Postgres sends nothing back to a cancel request: read until it closes (or
            // resets) the connection.
            loop {
                let mut buf = tokio::io::ReadBuf::new(&mut scratch);
                let read = std::future::poll_fn(|cx| {
                    std::pin::Pin::new(&mut stream).poll_read(cx, &mut buf)
                })
                .await;
                if read.is_err() || buf.filled().is_empty() {
                    break;
                }
            }
            let _ = closed.send(());
        });
    }
}

impl tokio::io::AsyncRead for UntilClosed {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for UntilClosed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

struct State {
    /// Keeps the pooled connection checked out while rows arrive.
    running: Running,
    rows: std::pin::Pin<Box<RowStream>>,
    schema: SchemaRef,
    address: String,
    decoders: Option<Vec<Box<dyn Decoder>>>,
    /// The row stream has ended; polling it again would report a closed connection.
    done: bool,
}

fn batches(
    running: Running,
    rows: RowStream,
    schema: SchemaRef,
    address: String,
) -> impl Stream<Item = Result<RecordBatch>> + Send {
    let state = State {
        running,
        rows: Box::pin(rows),
        schema,
        address,
        decoders: None,
        done: false,
    };
    futures::stream::try_unfold(state, |mut state| async move {
        let mut count = 0;
        while count < BATCH_ROWS && !state.done {
            let Some(row) = state.rows.next().await else {
                state.done = true;
                state.running.finished();
                break;
            };
            let row = row.map_err(|e| postgres_error(&state.address, &e))?;
            if state.decoders.is_none() {
                state.decoders = Some(decoders_for(&row, &state.schema)?);
            }
            let decoders = state.decoders.as_mut().expect("set above");
            for (i, decoder) in decoders.iter_mut().enumerate() {
                let value: Option<Raw<'_>> = row
                    .try_get(i)
                    .map_err(|e| column_error(&state.schema, i, &e.to_string()))?;
                decoder
                    .append(value.map(|v| v.0))
                    .map_err(|e| column_error(&state.schema, i, &e))?;
            }
            count += 1;
        }
        if count == 0 {
            return Ok(None);
        }
        let decoders = state.decoders.as_mut().expect("rows were read");
        let batch = finish(decoders, &state.schema)?;
        Ok(Some((batch, state)))
    })
}

fn decoders_for(row: &Row, schema: &SchemaRef) -> Result<Vec<Box<dyn Decoder>>> {
    let columns = row.columns();
    if columns.len() != schema.fields().len() {
        return Err(DataFusionError::Execution(format!(
            "Postgres returned {} columns where {} were expected",
            columns.len(),
            schema.fields().len()
        )));
    }
    columns
        .iter()
        .zip(schema.fields())
        .enumerate()
        .map(|(i, (column, field))| {
            decoder(column.type_(), field.data_type()).map_err(|e| column_error(schema, i, &e))
        })
        .collect()
}

fn finish(decoders: &mut [Box<dyn Decoder>], schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = decoders.iter_mut().map(|d| d.finish()).collect();
    weft_core::cast_columns(columns, schema)
}

fn column_error(schema: &SchemaRef, i: usize, message: &str) -> DataFusionError {
    let name = schema.fields().get(i).map_or("?", |f| f.name().as_str());
    DataFusionError::Execution(format!("column `{name}`: {message}"))
}
