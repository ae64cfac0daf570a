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
/// server as the pool does for the same `sslmode`.
///
/// Without TLS, the request's connection to `address` is closed by Postgres only after it
/// has signalled the backend, and this waits for that ([`UntilClosed`]): a request still on
/// its way when the connection goes back to the pool would cancel the next statement sent on
/// it (seen as `canceling statement due to user request` on an unrelated query).
async fn cancel(
    token: &CancelToken,
    sslmode: &str,
    address: &str,
) -> std::result::Result<(), String> {
    if sslmode == "disable" {
        let stream = match address.rsplit_once(':') {
            Some((host, port)) => match port.parse::<u16>() {
                Ok(port) => tokio::net::TcpStream::connect((host, port)).await.ok(),
                Err(_) => None,
            },
            None => None,
        };
        return match stream {
            Some(stream) => token
                .cancel_query_raw(UntilClosed::new(stream), tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string()),
            // A Unix socket: tokio-postgres connects itself, without waiting for the close.
            None => token
                .cancel_query(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string()),
        };
    }
    let tls = native_tls::TlsConnector::builder()
        .danger_accept_invalid_hostnames(sslmode != "verify-full")
        .danger_accept_invalid_certs(sslmode != "verify-full" && sslmode != "verify-ca")
        .build()
        .map_err(|e| e.to_string())?;
    token
        .cancel_query(postgres_native_tls::MakeTlsConnector::new(tls))
        .await
        .map_err(|e| e.to_string())
}

/// A cancel request's TCP stream whose shutdown also waits until Postgres closes the
/// connection: the server process that reads the request signals the backend and then
/// exits, so once the close is seen the cancel can no longer arrive late.
struct UntilClosed {
    stream: tokio::net::TcpStream,
    write_closed: bool,
}

impl UntilClosed {
    fn new(stream: tokio::net::TcpStream) -> Self {
        Self {
            stream,
            write_closed: false,
        }
    }
}

impl tokio::io::AsyncRead for UntilClosed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for UntilClosed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::{ready, Poll};
        use tokio::io::AsyncRead as _;
        if !self.write_closed {
            ready!(std::pin::Pin::new(&mut self.stream).poll_shutdown(cx))?;
            self.write_closed = true;
        }
        // Postgres sends nothing back to a cancel request: read until it closes.
        let mut scratch = [0u8; 64];
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match ready!(std::pin::Pin::new(&mut self.stream).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => continue,
                // A reset is a close too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Poll::Ready(Ok(()))
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
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
