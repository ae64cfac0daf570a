//! Runs a statement in Postgres and streams its rows as Arrow batches.
//!
//! One round trip per statement (`query_typed`: no separate prepare), results in Postgres's
//! binary format decoded straight into Arrow builders (see [`crate::decode`]), batches of a
//! bounded size so a large result never sits in memory whole. The pooled connection is held
//! until the stream ends or is dropped.
//!
//! A stream dropped before its statement ended (the client cancelled or disconnected, the
//! query timed out or failed elsewhere) sends Postgres a cancel request, so nothing keeps
//! running on the source, and gives the connection back to the pool only once the
//! cancelled statement is over (see [`Running`]).

use std::sync::Arc;

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
use futures::{Stream, StreamExt, TryStreamExt};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{CancelToken, Row, RowStream};

use crate::decode::{decoder, Decoder, Raw};

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 8192;

pub(crate) struct PgExecutor {
    pool: Arc<PostgresConnectionPool>,
    /// `host:port`, for errors.
    address: String,
    compute_context: String,
    /// The `sslmode` of the pool's connections, which cancel requests follow.
    sslmode: String,
}

impl PgExecutor {
    pub(crate) fn new(
        pool: Arc<PostgresConnectionPool>,
        address: String,
        compute_context: String,
        sslmode: String,
    ) -> Self {
        Self {
            pool,
            address,
            compute_context,
            sslmode,
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
        let batches = futures::stream::once(async move {
            let conn = pool.connect_direct().await.map_err(|e| {
                DataFusionError::Execution(format!("cannot connect to {address}: {e}"))
            })?;
            // Armed before the statement is sent: for an aggregate, Postgres answers only
            // once the whole statement has run, and a drop while waiting must cancel it too.
            let running = Running::new(conn, sslmode, address.clone());
            let rows = running
                .client()
                .query_typed_raw(&sql, std::iter::empty::<(&(dyn ToSql + Sync), Type)>())
                .await
                .map_err(|e| postgres_error(&address, &e))?;
            Ok::<_, DataFusionError>(batches(running, rows, schema, address))
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
}

impl Running {
    fn new(conn: PostgresConnection, sslmode: String, address: String) -> Self {
        Self {
            conn: Some(conn),
            sslmode,
            address,
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
        if self.sslmode.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                address = %self.address,
                "a Postgres statement was abandoned outside a runtime and could not be cancelled"
            );
            return;
        };
        let token = conn.conn.cancel_token();
        let sslmode = std::mem::take(&mut self.sslmode);
        let address = std::mem::take(&mut self.address);
        runtime.spawn(async move {
            // Postgres drops a cancel request that arrives while it reads the next message of
            // the statement (between Parse, Bind and Execute): so the request is repeated
            // until the statement is over. The probe (an empty query) queues behind the
            // statement and answers once it has ended; the connection then goes back to the
            // pool clean.
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
