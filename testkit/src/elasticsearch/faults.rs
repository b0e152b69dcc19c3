//! Injected faults and their setters: a fault for the next bulk request (`Fault`), a lasting condition of an index
//! (`IndexFault`), outages, busy spells, latency, the loss of a node, the content length and index count limits,
//! refused `_id`s, and what each of them met.

use std::time::Duration;

use super::EsDouble;

/// A misbehaviour for the next bulk request (one fault per request, in order).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Refuse the whole request with this status and error; nothing is written.
    Reject { status: u16, error_type: String, reason: String },
    /// Process the request, but leave the last item out of the answer.
    DropLastItem,
    /// Process the request, then break the connection halfway through the answer.
    ResetAfterWrite,
    /// Refuse the connection's request by breaking it before anything is read or written.
    ResetBeforeWrite,
    /// Answer after this long (the request is processed once the delay is over, if the client still waits).
    Delay(Duration),
    /// Process the request and answer 200 with a body that is not JSON (a proxy's page, say).
    Garbage,
}

impl Fault {
    /// The top-level 429 a node's parent circuit breaker answers.
    pub fn circuit_breaker() -> Fault {
        Fault::Reject {
            status: 429,
            error_type: "circuit_breaking_exception".into(),
            reason: "[parent] Data too large, data for [<http_request>] would be [1032441408/984.6mb], which is larger than the limit of [1020054732/972.7mb]".into(),
        }
    }

    /// The top-level 429 a coordinating node answers when its indexing pressure limit is reached: the whole request
    /// is refused, nothing written.
    pub fn rejected_execution() -> Fault {
        Fault::Reject {
            status: 429,
            error_type: "es_rejected_execution_exception".into(),
            reason: "rejected execution of coordinating operation [coordinating_and_primary_bytes=104857600, replica_bytes=0, all_bytes=104857600, coordinating_operation_bytes=5242880, max_coordinating_and_primary_bytes=107374182]".into(),
        }
    }

    /// The 503 a load balancer answers while the cluster has no healthy node.
    pub fn unavailable() -> Fault {
        Fault::Reject { status: 503, error_type: "http_503".into(), reason: "Service Unavailable".into() }
    }
}

/// A lasting condition of one index, answered per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexFault {
    /// Disk past the flood-stage watermark: 429 `cluster_block_exception` (read-only-allow-delete).
    FloodStage,
    /// A read-only index: 403 `cluster_block_exception`.
    ReadOnly,
    /// The primary shard is not active (a node left): 503 `unavailable_shards_exception`.
    UnavailableShards,
    /// The index is closed: 400 `index_closed_exception`.
    Closed,
    /// Every item answers this status and error type (a plugin's or a future version's refusal).
    Refuse(u16, &'static str),
}

impl EsDouble {
    /// Queues a fault for the next bulk request not yet faulted.
    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Sets or clears a lasting condition of an index.
    pub fn set_index_fault(&self, index: &str, fault: Option<IndexFault>) {
        match fault {
            Some(fault) => self.state().index_faults.insert(index.to_owned(), fault),
            None => self.state().index_faults.remove(index),
        };
    }

    /// The cluster is at `cluster.max_shards_per_node` once `indices` indices exist (two shards each): writing to a
    /// new index answers 400 `validation_exception`, item by item, as Elasticsearch does (`None` lifts the limit).
    pub fn set_max_indices(&self, indices: Option<usize>) {
        self.state().max_indices = indices;
    }

    /// For the next `duration`, every bulk request answers 503, as a cluster behind a load balancer does while no
    /// node is up; then it is back, with what it held.
    pub fn set_outage(&self, duration: Duration) {
        self.state().outage_until = Some(std::time::Instant::now() + duration);
    }

    /// For the next `duration`, every bulk request is answered 200 with every item 429
    /// `es_rejected_execution_exception` and nothing written, as a node whose write queue stays full answers; then
    /// it writes again. Timed on the machine's clock (`std::time::Instant`), as `set_outage` is: tokio's paused clock
    /// does not move it. `Duration::ZERO` ends a spell.
    pub fn set_busy_spell(&self, duration: Duration) {
        self.state().busy_until = Some(std::time::Instant::now() + duration);
    }

    /// For the next `lasting`, one node of the two the write pool stands for is lost: the surviving node has half
    /// the threads (the lost node's, as they free up, are taken for the duration: a request executing there
    /// finishes, as one already replicated does) and half the queue, so the pool holds half as many requests and
    /// rejects the rest. Then the node is back. Needs a write pool with at least two threads.
    pub fn lose_node(&self, lasting: Duration) {
        let pool = self.state().write_pool.clone().expect("lose_node needs a write pool");
        assert!(pool.config.threads >= 2, "a pool of one thread has no second node to lose");
        *pool.lost_until.lock().expect("lost_until") = Some(std::time::Instant::now() + lasting);
        let until = tokio::time::Instant::now() + lasting;
        tokio::spawn(async move {
            let lost = u32::try_from(pool.config.threads / 2).expect("threads fit u32");
            if let Ok(Ok(permits)) = tokio::time::timeout_at(until, pool.threads.acquire_many(lost)).await {
                tokio::time::sleep_until(until).await;
                drop(permits);
            }
        });
    }

    /// How many bulk requests arrived during a busy spell.
    pub fn requests_during_busy_spell(&self) -> usize {
        self.state().requests_during_busy_spell
    }

    /// How many bulk items (actions) arrived during a busy spell, every one of them answered 429.
    pub fn items_during_busy_spell(&self) -> usize {
        self.state().items_during_busy_spell
    }

    /// With `true`, every action with an `_id` answers 400 `illegal_argument_exception`, as an OpenSearch
    /// Serverless TIMESERIES or VECTORSEARCH collection does.
    pub fn set_refuse_document_ids(&self, refuse: bool) {
        self.state().refuse_ids = refuse;
    }

    /// Requests whose body, decompressed, is larger answer 413, as `http.max_content_length` does.
    pub fn set_max_content_length(&self, bytes: Option<usize>) {
        self.state().max_content_length = bytes;
    }

    /// Every bulk request takes at least this long to answer, as a loaded cluster does.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Forgets every queued fault, lasting index fault, shard and write pool limit and `_id` refusal: the cluster has
    /// recovered. An outage or a busy spell runs its course (or is ended with `Duration::ZERO`).
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.index_faults.clear();
        state.write_queue = None;
        state.write_pool = None;
        state.shards = 1;
        state.latency = Duration::ZERO;
        state.max_indices = None;
        state.refuse_ids = false;
    }

    /// How many bulk requests reached the double during an outage.
    pub fn requests_during_outage(&self) -> usize {
        self.state().requests_during_outage
    }
}
