//! The node's write thread pool (a finite pool of threads and its queue, `WritePool`) and its write queue of
//! shard-level operations (`set_write_queue`, `set_shards`): where an accepted bulk request goes, waits and is
//! written, or is rejected 429.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{Action, EsDouble, State};

/// Elasticsearch's `write` thread pool on the node: `threads` bulk requests execute at once
/// (`thread_pool.write.size`), `queue` more wait for a thread in arrival order (`thread_pool.write.queue_size`), and a
/// request that finds them all taken is rejected at once, every item answering 429 `es_rejected_execution_exception`
/// with nothing written. Elasticsearch schedules each shard-level operation of a request; the double schedules the
/// whole request as one task, which is what a client's concurrency meets on a one-shard index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePool {
    /// `thread_pool.write.size`: requests executed at the same time (at least 1).
    pub threads: usize,
    /// `thread_pool.write.queue_size`: requests that may wait for a thread.
    pub queue: usize,
    /// How long a request holds its thread, whatever its size.
    pub service: Duration,
    /// How much longer it holds it for each of its items.
    pub per_item: Duration,
}

impl WritePool {
    fn service_time(&self, items: usize) -> Duration {
        self.service + self.per_item.saturating_mul(u32::try_from(items).unwrap_or(u32::MAX))
    }
}

/// A write pool in use. Requests leave it through `PoolSeat`, without the state's lock, so that a request whose
/// client hung up still leaves; they join it only under the state's lock, so that two cannot take its last place.
#[derive(Debug)]
pub(super) struct PoolInUse {
    pub(super) config: WritePool,
    /// One permit per thread. Tokio's semaphore is fair: waiting requests get a thread in the order they joined.
    pub(super) threads: tokio::sync::Semaphore,
    /// Requests executing or waiting.
    held: AtomicUsize,
    completed: AtomicUsize,
    /// Thread time spent executing requests, in nanoseconds: the pool's utilisation is this over threads × wall.
    busy_nanos: std::sync::atomic::AtomicU64,
    /// Until then, one node of two is lost (`lose_node`): half the threads (their permits held) and half the queue.
    pub(super) lost_until: Mutex<Option<std::time::Instant>>,
}

impl PoolInUse {
    /// Requests the pool holds at most now (executing and waiting): `threads + queue`, or the surviving node's half
    /// while one is lost.
    fn capacity(&self) -> usize {
        let WritePool { threads, queue, .. } = self.config;
        match *self.lost_until.lock().expect("lost_until") {
            Some(until) if std::time::Instant::now() < until => (threads - threads / 2) + (queue - queue / 2),
            _ => threads + queue,
        }
    }

    /// Elasticsearch's words when its write pool rejects a task: the task, then the executor with its queue capacity
    /// and its counts (`EsThreadPoolExecutor.toString`).
    fn rejection_reason(&self) -> String {
        let WritePool { threads, queue, service, .. } = self.config;
        let active = threads.saturating_sub(self.threads.available_permits());
        let queued = self.held.load(Ordering::SeqCst).saturating_sub(active);
        let completed = self.completed.load(Ordering::SeqCst);
        let total = service.saturating_mul(u32::try_from(completed).unwrap_or(u32::MAX));
        format!(
            "rejected execution of org.elasticsearch.action.support.replication.TransportWriteAction$1/WrappedActionListener on EsThreadPoolExecutor[name = double-node-0/write, queue capacity = {queue}, task execution EWMA = {service:?}, total task execution time = {total:?}, org.elasticsearch.common.util.concurrent.EsThreadPoolExecutor@6b2a5f3c[Running, pool size = {threads}, active threads = {active}, queued tasks = {queued}, completed tasks = {completed}]]"
        )
    }
}

/// A request's place in the write pool, given back when it is dropped, however the request ends.
pub(super) struct PoolSeat(Arc<PoolInUse>);

impl Drop for PoolSeat {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What Elasticsearch says when its write queue (10000 by default) is full; also the busy spell's answer.
pub(super) const WRITE_QUEUE_FULL: &str = "rejected execution of org.elasticsearch.action.support.replication.TransportWriteAction$1/WrappedActionListener on EsThreadPoolExecutor[name = double-node-0/write, queue capacity = 10000, task execution EWMA = 1.2ms, total task execution time = 1h]";

impl EsDouble {
    /// How many shard-level operations of one request the node's write queue takes, as Elasticsearch splits a bulk
    /// request: one operation per (index, shard) its items go to, in the order they first appear. Every item of a
    /// later operation answers 429 `es_rejected_execution_exception` (`None`: no limit).
    pub fn set_write_queue(&self, capacity: Option<usize>) {
        self.state().write_queue = capacity;
    }

    /// How many primary shards every index has (1 unless set, as Elasticsearch 7 and later). A document goes to the
    /// shard a stable hash of its `_id` names.
    pub fn set_shards(&self, shards: usize) {
        self.state().shards = shards.max(1);
    }

    /// Gives the node a finite `write` thread pool (`None`: unbounded, the default). The pool applies to bulk requests
    /// that arrive from now on; those already in a former pool finish there.
    ///
    /// As in Elasticsearch, a request joins the pool when fewer than `threads + queue` requests are in it, waits in
    /// arrival order for one of the `threads`, holds it for `service + per_item × items`, then is written as
    /// without a pool; otherwise it is rejected at once, answered 200 with every item 429
    /// `es_rejected_execution_exception` and nothing written. A request that joined runs to the end even if its
    /// client hangs up, as Elasticsearch does not cancel a bulk request.
    pub fn set_write_pool(&self, pool: Option<WritePool>) {
        let pool = pool.map(|config| {
            assert!(config.threads > 0, "a write pool with no thread would never write");
            Arc::new(PoolInUse {
                config,
                threads: tokio::sync::Semaphore::new(config.threads),
                held: AtomicUsize::new(0),
                completed: AtomicUsize::new(0),
                busy_nanos: Default::default(),
                lost_until: Mutex::new(None),
            })
        });
        self.state().write_pool = pool;
    }

    /// The thread time the write pool spent executing requests since it was set (its threads × the wall clock is
    /// the most it could have spent).
    pub fn pool_busy(&self) -> Duration {
        let pool = self.state().write_pool.clone();
        pool.map_or(Duration::ZERO, |pool| Duration::from_nanos(pool.busy_nanos.load(Ordering::SeqCst)))
    }

    /// How many bulk requests the write pool rejected because it was full, since the double started.
    pub fn pool_rejected_requests(&self) -> usize {
        self.state().pool_rejected_requests
    }

    /// The most bulk requests that were in a write pool (executing or waiting) at the same moment.
    pub fn pool_max_in_pool(&self) -> usize {
        self.state().pool_max_in_pool
    }
}

/// What becomes of a request's actions once it is accepted.
pub(super) enum Turn {
    /// Its items, written or rejected.
    Answered(Vec<Value>),
    /// It joined the write pool and waits there for a thread.
    Queued(PoolSeat, Vec<Action>),
}

/// Runs a request that joined the write pool: waits its turn for a thread, holds the thread for the request's service
/// time, then writes its items. On a task of its own, so that it goes on when its client hangs up and the
/// connection's task is dropped, as Elasticsearch goes on with a bulk request; only dropping the double ends it
/// early (`None`).
pub(super) async fn run_in_pool(state: Arc<Mutex<State>>, seat: PoolSeat, actions: Vec<Action>) -> Option<Vec<Value>> {
    let mut stopped = state.lock().expect("state").stopped.clone();
    let work = async move {
        let pool = &seat.0;
        let _thread = pool.threads.acquire().await.expect("the pool's semaphore is never closed");
        let service = pool.config.service_time(actions.len());
        tokio::time::sleep(service).await;
        pool.busy_nanos.fetch_add(u64::try_from(service.as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
        let items = state.lock().expect("state").apply_all(actions);
        pool.completed.fetch_add(1, Ordering::SeqCst);
        items
    };
    let task = tokio::spawn(async move {
        tokio::select! {
            items = work => Some(items),
            _ = stopped.changed() => None,
        }
    });
    task.await.ok().flatten()
}

impl State {
    /// Where a busy spell or the write pool sends an accepted request: rejected whole, queued in the pool, or written
    /// now. Called under the state's lock, so the pool's count cannot change between its check and its increment.
    pub(super) fn admit(&mut self, actions: Vec<Action>) -> Turn {
        if self.busy_until.is_some_and(|until| std::time::Instant::now() < until) {
            self.requests_during_busy_spell += 1;
            self.items_during_busy_spell += actions.len();
            return Turn::Answered(actions.iter().map(|action| self.rejected(action, WRITE_QUEUE_FULL)).collect());
        }
        let Some(pool) = self.write_pool.clone() else { return Turn::Answered(self.apply_all(actions)) };
        let held = pool.held.load(Ordering::SeqCst);
        if held >= pool.capacity() {
            self.pool_rejected_requests += 1;
            let reason = pool.rejection_reason();
            return Turn::Answered(actions.iter().map(|action| self.rejected(action, &reason)).collect());
        }
        pool.held.fetch_add(1, Ordering::SeqCst);
        self.pool_max_in_pool = self.pool_max_in_pool.max(held + 1);
        Turn::Queued(PoolSeat(pool), actions)
    }

    /// Writes a request's actions in order. The write queue (`set_write_queue`) takes the request's shard-level
    /// operations, one per (index, shard) its items go to, in the order their first item appears.
    fn apply_all(&mut self, actions: Vec<Action>) -> Vec<Value> {
        let mut items: Vec<Value> = Vec::with_capacity(actions.len());
        let mut operations: Vec<(String, u64)> = Vec::new();
        for (position, action) in actions.into_iter().enumerate() {
            let routing = action.id.clone().unwrap_or_else(|| format!("auto-{}-{position}", self.generated_ids));
            let operation = (action.index.clone(), stable_hash(&routing) % self.shards as u64);
            let ordinal = operations.iter().position(|o| *o == operation).unwrap_or_else(|| {
                operations.push(operation);
                operations.len() - 1
            });
            let queue_full = self.write_queue.is_some_and(|capacity| ordinal >= capacity);
            items.push(self.apply(action, queue_full));
        }
        items
    }
}

/// FNV-1a: the same shard for the same `_id` in every run.
pub(super) fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
