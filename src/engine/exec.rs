//! Query execution off the serving threads: a query's physical planning
//! and execution run on the engine's own runtime (`freshet-query` threads),
//! and its batches reach the connection through a short channel. A runaway
//! query (a cross join, `repeat('x', 1e9)`) then occupies those threads,
//! never the ones that accept connections, read messages and hand writes
//! to the committer; the operating system shares the cores between them.
//!
//! The statement's deadline (`statement_timeout`) ends the stream with
//! 57014; dropping the stream (a timeout, a vanished client) stops the
//! query, since the producing task then has nowhere to send.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::error::{EngineError, Result};

/// Batches buffered between the query and its connection.
const CHANNEL_BATCHES: usize = 4;

/// The runtime queries run on.
pub struct QueryRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    /// Memory one query's operators may hold (`--max-statement-memory`);
    /// past it they spill where DataFusion can, or fail with 53200.
    memory_limit: Option<usize>,
}

impl QueryRuntime {
    pub fn new(memory_limit: Option<usize>) -> Result<QueryRuntime> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("freshet-query")
            .thread_stack_size(crate::STACK_BYTES)
            .enable_all()
            .build()
            .map_err(|e| EngineError::Internal(format!("cannot start the query runtime: {e}")))?;
        Ok(QueryRuntime {
            runtime: Some(runtime),
            memory_limit,
        })
    }

    fn handle(&self) -> Result<&tokio::runtime::Handle> {
        self.runtime
            .as_ref()
            .map(|r| r.handle())
            .ok_or(EngineError::ShuttingDown)
    }

    /// Plans `plan` physically and runs it there; returns its schema and
    /// the stream of its batches, which ends with 57014 at `deadline`.
    pub async fn run(
        &self,
        state: SessionState,
        plan: LogicalPlan,
        deadline: Option<Instant>,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel::<Result<RecordBatch, DataFusionError>>(CHANNEL_BATCHES);
        let task = self.task_context(&state)?;
        let running = self.handle()?.spawn(async move {
            let started = async {
                let physical = state.create_physical_plan(&plan).await?;
                let schema = physical.schema();
                let stream = datafusion::physical_plan::execute_stream(physical, task)?;
                Ok::<_, DataFusionError>((schema, stream))
            };
            let (schema, mut stream) = match started.await {
                Ok(s) => s,
                Err(e) => {
                    let _ = schema_tx.send(Err(e));
                    return;
                }
            };
            if schema_tx.send(Ok(schema)).is_err() {
                return;
            }
            while let Some(b) = stream.next().await {
                let failed = b.is_err();
                if tx.send(b).await.is_err() || failed {
                    return;
                }
            }
        });
        // the query stops when its stream is dropped (or fails to start)
        let stop = AbortOnDrop(running.abort_handle());
        let schema = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), schema_rx)
                .await
                .map_err(|_| EngineError::StatementTimeout)?,
            None => schema_rx.await,
        }
        .map_err(|_| EngineError::ShuttingDown)??;
        let batches = futures::stream::unfold(
            (rx, deadline, false, stop),
            |(mut rx, deadline, done, stop)| async move {
                if done {
                    return None;
                }
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d.into(), rx.recv()).await {
                        Ok(b) => b,
                        Err(_) => {
                            let e =
                                DataFusionError::External(Box::new(EngineError::StatementTimeout));
                            return Some((Err(e), (rx, deadline, true, stop)));
                        }
                    },
                    None => rx.recv().await,
                };
                next.map(|b| (b, (rx, deadline, false, stop)))
            },
        );
        let stream: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(schema.clone(), batches));
        Ok((schema, stream))
    }
}

impl QueryRuntime {
    /// The task context of one statement: the session's, with a memory
    /// pool of its own when a limit is set.
    pub fn task_context(
        &self,
        state: &SessionState,
    ) -> Result<Arc<datafusion::execution::TaskContext>> {
        let ctx = datafusion::execution::TaskContext::from(state);
        let Some(limit) = self.memory_limit else {
            return Ok(Arc::new(ctx));
        };
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::from_runtime_env(
            &ctx.runtime_env(),
        )
        .with_memory_pool(Arc::new(
            datafusion::execution::memory_pool::GreedyMemoryPool::new(limit),
        ))
        .build_arc()?;
        Ok(Arc::new(ctx.with_runtime(runtime)))
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // (an engine may be dropped inside another runtime: do not block)
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

/// Aborts the query's task when the consumer lets go of it.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Statements longer than this are parsed (and their literal rows
/// converted) as blocking work.
pub const HEAVY_BYTES: usize = 1 << 20;

/// Runs CPU-heavy synchronous work (parsing a huge statement, converting a
/// million literal rows) on an async worker thread without holding up the
/// other tasks there: on a multi-threaded runtime the worker hands its
/// tasks to another first.
pub fn heavy<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The running statement's deadline, if it has one.
pub fn deadline() -> Option<Instant> {
    super::DEADLINE.try_with(|d| *d).ok().flatten()
}

/// Shared so sessions can run queries without borrowing the engine.
pub type SharedRuntime = Arc<QueryRuntime>;
