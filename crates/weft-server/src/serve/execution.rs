//! Where queries run: a tokio runtime of their own (`[server] execution_threads`), apart from
//! the one that answers clients. A plan that keeps its threads busy (DataFusion's operators
//! only give way between batches) then never delays another client's call, a deadline, a
//! cancel or `/health`; it is stopped at its next await point.

use std::future::Future;

use anyhow::Context as _;
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// The query runtime.
pub(crate) struct Executor {
    runtime: Option<Runtime>,
    threads: usize,
}

impl Executor {
    /// A runtime of `threads` threads (default: one per core).
    pub(crate) fn new(threads: Option<usize>) -> anyhow::Result<Self> {
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("weft-query")
            .enable_all()
            .build()
            .context("cannot start the threads that run queries")?;
        Ok(Self {
            runtime: Some(runtime),
            threads,
        })
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on the query threads; it is aborted when the returned [`Task`] is dropped.
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) -> Task {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        Task(runtime.spawn(work))
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime inside another one blocks, which tokio forbids: let it go.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Work on the query threads, aborted when dropped.
pub(crate) struct Task(JoinHandle<()>);

impl Task {
    pub(crate) fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}
