//! Statements that stop when nobody wants their result any more.
//!
//! datafusion-table-providers runs every statement of a source on one SQLite connection (one
//! thread, statements one after another) and does not stop a statement whose query was
//! dropped: a cancelled query's statement would keep the file's thread busy, and every later
//! query of the source would wait for it. This executor runs the statement on that same
//! connection with the crate's own reader from rows to Arrow, but knows which statement is
//! running: when its stream is dropped early, the statement is interrupted
//! (`sqlite3_interrupt`), or skipped if it has not started yet. The rest (dialect, AST
//! rewrites, schemas) is the crate's SQLite table.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{AstAnalyzer, LogicalOptimizer, SQLExecutor};
use futures::{Stream, StreamExt as _};
use tokio::sync::mpsc;

use crate::read::read_batches;

/// Runs statements on one SQLite connection, interrupting those whose stream is dropped.
pub(crate) struct Interruptible {
    /// The crate's executor, for everything but running statements.
    inner: Arc<dyn SQLExecutor>,
    conn: tokio_rusqlite::Connection,
    interrupt: Arc<rusqlite::InterruptHandle>,
    /// The statement the connection runs now (its number), if any.
    current: Arc<Mutex<Option<u64>>>,
    next: AtomicU64,
}

impl Interruptible {
    pub(crate) async fn new(
        inner: Arc<dyn SQLExecutor>,
        conn: tokio_rusqlite::Connection,
    ) -> std::result::Result<Self, String> {
        let interrupt = conn
            .call(|c| Ok::<_, rusqlite::Error>(c.get_interrupt_handle()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            inner,
            conn,
            interrupt: Arc::new(interrupt),
            current: Arc::default(),
            next: AtomicU64::new(0),
        })
    }
}

impl std::fmt::Debug for Interruptible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interruptible")
            .field("name", &self.inner.name())
            .finish_non_exhaustive()
    }
}

/// A statement's batches; dropping it stops the statement.
struct Reading {
    batches: mpsc::Receiver<Result<RecordBatch>>,
    _stop: Stop,
}

impl Stream for Reading {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.batches.poll_recv(cx)
    }
}

/// Interrupts statement `number` if it is still running when dropped, and keeps it from
/// starting if it has not.
struct Stop {
    number: u64,
    current: Arc<Mutex<Option<u64>>>,
    interrupt: Arc<rusqlite::InterruptHandle>,
    wanted: Arc<AtomicBool>,
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.wanted.store(false, Ordering::Release);
        // Under the lock the statement can neither start nor end: the interrupt reaches it
        // and no other statement.
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == Some(self.number) {
            self.interrupt.interrupt();
            tracing::debug!(statement = self.number, "SQLite statement interrupted");
        }
    }
}

#[async_trait]
impl SQLExecutor for Interruptible {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn compute_context(&self) -> Option<String> {
        self.inner.compute_context()
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        self.inner.dialect()
    }

    fn logical_optimizer(&self) -> Option<LogicalOptimizer> {
        self.inner.logical_optimizer()
    }

    fn ast_analyzer(&self) -> Option<AstAnalyzer> {
        self.inner.ast_analyzer()
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream> {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let wanted = Arc::new(AtomicBool::new(true));
        let stop = Stop {
            number,
            current: Arc::clone(&self.current),
            interrupt: Arc::clone(&self.interrupt),
            wanted: Arc::clone(&wanted),
        };
        let conn = self.conn.clone();
        let current = Arc::clone(&self.current);
        let sql = query.to_string();
        let projected = Arc::clone(&schema);
        let (sender, batches) = mpsc::channel::<Result<RecordBatch>>(2);
        let failures = sender.clone();
        let statement = move |c: &mut rusqlite::Connection| {
            {
                let mut running = current.lock().unwrap_or_else(PoisonError::into_inner);
                if !wanted.load(Ordering::Acquire) {
                    return Ok::<_, String>(());
                }
                *running = Some(number);
            }
            let result = c
                .prepare(&sql)
                .map_err(|e| e.to_string())
                .and_then(|mut s| {
                    let columns = s.column_count();
                    read_batches(s.raw_query(), columns, &projected, |batch| {
                        sender.blocking_send(Ok(batch)).is_ok()
                    })
                });
            // The statement is finalized: nothing of it is left to interrupt.
            *current.lock().unwrap_or_else(PoisonError::into_inner) = None;
            if let Err(message) = result {
                let _ = sender.blocking_send(Err(DataFusionError::Execution(message)));
            }
            Ok(())
        };
        // Started when first polled: the statement goes to the connection's thread and its
        // batches arrive as SQLite steps. The channel closes once the statement and the task
        // that waits for it are over, so a statement that never ran is an error, not no rows.
        let start = async move {
            tokio::spawn(async move {
                if let Err(e) = conn.call(statement).await {
                    let message = format!("the SQLite connection failed: {e}");
                    let _ = failures
                        .send(Err(DataFusionError::Execution(message)))
                        .await;
                }
            });
            Reading {
                batches,
                _stop: stop,
            }
        };
        let stream = futures::stream::once(start).flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn table_names(&self) -> Result<Vec<String>> {
        self.inner.table_names().await
    }

    async fn get_table_schema(&self, table_name: &str) -> Result<SchemaRef> {
        self.inner.get_table_schema(table_name).await
    }
}
