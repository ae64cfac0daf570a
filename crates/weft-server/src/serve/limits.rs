//! The server's limits: how many queries run at once and how many wait, how long a query may
//! take, and how much memory one query and all of them together may hold.
//!
//! Memory is DataFusion's own accounting: every query gets a [`QueryPool`] with its own limit
//! that draws on one server-wide pool, so a query over its share fails (or spills, where the
//! operator can) while the others go on, and the error names the limit that was reached.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation,
    UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::Status;
use weft_core::config::{ByteSize, ServerConfig};

/// The limits every query of one server shares.
#[derive(Debug)]
pub(crate) struct Limits {
    timeout: Option<Duration>,
    slots: Arc<Semaphore>,
    max_running: usize,
    queued: AtomicUsize,
    max_queued: usize,
    server_pool: Arc<dyn MemoryPool>,
    server_memory: Option<u64>,
    query_memory: Option<u64>,
}

impl Limits {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        let server_memory = config
            .memory_limit
            .map(|size| size.0)
            .or_else(|| physical_memory().map(|total| total / 4 * 3));
        let query_memory = config
            .query_memory_limit
            .map(|size| size.0)
            .or(server_memory.map(|server| server / 2));
        let server_pool: Arc<dyn MemoryPool> = match server_memory {
            Some(limit) => Arc::new(GreedyMemoryPool::new(to_usize(limit))),
            None => Arc::new(UnboundedMemoryPool::default()),
        };
        Self {
            timeout: (config.query_timeout_secs > 0)
                .then(|| Duration::from_secs(config.query_timeout_secs)),
            slots: Arc::new(Semaphore::new(config.max_concurrent_queries)),
            max_running: config.max_concurrent_queries,
            queued: AtomicUsize::new(0),
            max_queued: config.max_queued_queries,
            server_pool,
            server_memory,
            query_memory,
        }
    }

    /// One line for the start-up log.
    pub(crate) fn describe(&self) -> String {
        let memory = |limit: Option<u64>| {
            limit.map_or_else(|| "unlimited".to_string(), |l| ByteSize(l).to_string())
        };
        format!(
            "{} queries at once, {} waiting; timeout {}; memory {} per query, {} in all",
            self.max_running,
            self.max_queued,
            self.timeout
                .map_or_else(|| "none".to_string(), |t| format!("{t:?}")),
            memory(self.query_memory),
            memory(self.server_memory),
        )
    }

    /// When a query asked for now must be over: the server's timeout or the client's gRPC
    /// deadline (`grpc-timeout`), whichever comes first.
    pub(crate) fn deadline(&self, metadata: &MetadataMap) -> Option<Deadline> {
        let now = Instant::now();
        let server = self.timeout.map(|t| Deadline {
            at: now + t,
            why: format!(
                "the query ran past the server's time limit of {} s (`[server] query_timeout_secs`) \
                 and was cancelled",
                t.as_secs()
            ),
        });
        let client = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(grpc_timeout)
            .map(|t| Deadline {
                at: now + t,
                why: format!("the client's deadline ({t:?}) passed: the query was cancelled"),
            });
        match (server, client) {
            (Some(s), Some(c)) => Some(if c.at < s.at { c } else { s }),
            (s, c) => s.or(c),
        }
    }

    /// Waits for a slot to run a query in. Refused at once with "server busy" when the queue
    /// is full, and when the deadline passes while waiting.
    pub(crate) async fn admit(&self, deadline: Option<&Deadline>) -> Result<Admission, Refused> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(Admission { _permit: permit });
        }
        let waiting = Waiting::enter(&self.queued);
        if waiting.ahead >= self.max_queued {
            return Err(Refused::Busy(Status::resource_exhausted(format!(
                "server busy: {} queries running and {} waiting, as many as `[server] \
                 max_concurrent_queries` ({}) and `max_queued_queries` ({}) allow; retry later",
                self.running(),
                waiting.ahead,
                self.max_running,
                self.max_queued
            ))));
        }
        let acquire = Arc::clone(&self.slots).acquire_owned();
        let permit = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.at, acquire)
                .await
                .map_err(|_| {
                    Refused::Deadline(Status::deadline_exceeded(format!(
                        "{} (it was still waiting for one of the {} query slots)",
                        deadline.why, self.max_running
                    )))
                })?,
            None => acquire.await,
        }
        .map_err(|_| Refused::Other(Status::unavailable("the server is shutting down")))?;
        drop(waiting);
        Ok(Admission { _permit: permit })
    }

    /// Queries running now.
    pub(crate) fn running(&self) -> usize {
        self.max_running - self.slots.available_permits()
    }

    /// Queries waiting for a slot now.
    pub(crate) fn waiting(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Bytes all queries hold now, as DataFusion accounts them.
    pub(crate) fn memory_in_use(&self) -> usize {
        self.server_pool.reserved()
    }

    /// `session` with a memory pool of its own for one query, drawing on the server's.
    pub(crate) fn for_query(&self, session: &SessionContext) -> Result<SessionContext> {
        let state = session.state();
        let limit = self.query_memory.map(to_usize);
        let pool: Arc<dyn MemoryPool> = Arc::new(QueryPool {
            server: Arc::clone(&self.server_pool),
            server_limit: self.server_memory,
            limit,
            own: limit.map(FairSpillPool::new),
            used: AtomicUsize::new(0),
        });
        let runtime: Arc<RuntimeEnv> = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_pool(pool)
            .build_arc()?;
        let state = SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime)
            .build();
        Ok(SessionContext::new_with_state(state))
    }
}

/// When a query must be over, and what to tell the client then.
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) why: String,
}

/// Why a query got no slot.
pub(crate) enum Refused {
    /// The queue is full.
    Busy(Status),
    /// The deadline passed while it waited.
    Deadline(Status),
    Other(Status),
}

impl From<Refused> for Status {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Busy(status) | Refused::Deadline(status) | Refused::Other(status) => status,
        }
    }
}

/// A query's slot, given back when dropped.
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
}

/// One place in the queue, left when dropped (the wait ended, timed out or was abandoned).
struct Waiting<'a> {
    queued: &'a AtomicUsize,
    /// Queries that were waiting before this one.
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn enter(queued: &'a AtomicUsize) -> Self {
        let ahead = queued.fetch_add(1, Ordering::Relaxed);
        Self { queued, ahead }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A `grpc-timeout` header value: up to 8 digits and a unit (`H M S m u n`).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The machine's memory, from `/proc/meminfo` (Linux); `None` elsewhere.
fn physical_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn to_usize(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// One query's memory: its own limit, and every byte also taken from the server's pool.
///
/// Within the query, memory is shared as DataFusion's `FairSpillPool` shares it: operators
/// that can spill (sorts, aggregations) get an equal share of what the others leave, so a
/// sort spills before it takes the memory its merge or a join needs.
#[derive(Debug)]
struct QueryPool {
    server: Arc<dyn MemoryPool>,
    server_limit: Option<u64>,
    limit: Option<usize>,
    /// The query's own accounting, when it has a limit.
    own: Option<FairSpillPool>,
    used: AtomicUsize,
}

impl QueryPool {
    fn exhausted(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
        what: &str,
    ) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{} needs {} more ({} held by this query): {what}",
            reservation.consumer().name(),
            ByteSize(additional as u64),
            ByteSize(self.used.load(Ordering::Relaxed) as u64),
        ))
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query(used: {}, limit: {:?}, server: {})",
            self.used.load(Ordering::Relaxed),
            self.limit,
            self.server
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "weft-query"
    }

    fn register(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        if let Some(own) = &self.own {
            own.register(consumer);
        }
        self.server.register(consumer);
    }

    fn unregister(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        if let Some(own) = &self.own {
            own.unregister(consumer);
        }
        self.server.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        if let Some(own) = &self.own {
            own.grow(reservation, additional);
        }
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.server.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        if let Some(own) = &self.own {
            own.shrink(reservation, shrink);
        }
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.server.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let limit = self.limit.unwrap_or(usize::MAX);
        if let Some(own) = &self.own {
            if own.try_grow(reservation, additional).is_err() {
                return Err(self.exhausted(
                    reservation,
                    additional,
                    &format!(
                        "over the memory limit of one query, {} (`[server] query_memory_limit`)",
                        ByteSize(limit as u64)
                    ),
                ));
            }
        }
        self.used.fetch_add(additional, Ordering::Relaxed);
        if self.server.try_grow(reservation, additional).is_err() {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            if let Some(own) = &self.own {
                own.shrink(reservation, additional);
            }
            let limit = self
                .server_limit
                .map_or_else(|| "?".to_string(), |l| ByteSize(l).to_string());
            return Err(self.exhausted(
                reservation,
                additional,
                &format!(
                    "all queries together hold the server's memory limit, {limit} \
                     (`[server] memory_limit`)"
                ),
            ));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        match self.limit {
            Some(limit) => MemoryLimit::Finite(limit),
            None => self.server.memory_limit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grpc_timeouts() {
        assert_eq!(grpc_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("S"), None);
        assert_eq!(grpc_timeout("123456789S"), None);
        assert_eq!(grpc_timeout("1x"), None);
        assert_eq!(grpc_timeout(""), None);
    }

    #[test]
    fn a_query_over_its_share_fails_naming_the_limit_and_frees_nothing_of_others() {
        let mut config = ServerConfig::default();
        config.memory_limit = Some(ByteSize(1000));
        config.query_memory_limit = Some(ByteSize(600));
        let limits = Limits::new(&config);
        let session = SessionContext::new();
        let pool = |s: &SessionContext| Arc::clone(&s.state().runtime_env().memory_pool);
        let (a, b) = (
            limits.for_query(&session).unwrap(),
            limits.for_query(&session).unwrap(),
        );
        let ra = datafusion::execution::memory_pool::MemoryConsumer::new("HashJoinInput")
            .register(&pool(&a));
        ra.try_grow(500).unwrap();
        let err = ra.try_grow(200).unwrap_err().to_string();
        assert!(err.contains("`[server] query_memory_limit`"), "{err}");
        assert!(err.contains("HashJoinInput"), "{err}");
        let rb =
            datafusion::execution::memory_pool::MemoryConsumer::new("Sort").register(&pool(&b));
        let err = rb.try_grow(501).unwrap_err().to_string();
        assert!(err.contains("`[server] memory_limit`"), "{err}");
        rb.try_grow(500).unwrap();
        assert_eq!(limits.memory_in_use(), 1000);
        drop(ra);
        assert_eq!(limits.memory_in_use(), 500);
    }
}
