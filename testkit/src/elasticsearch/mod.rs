//! An Elasticsearch-compatible double: `POST /_bulk` and `POST /{index}/_bulk` (plain or gzip), documents stored by
//! index and `_id`, mappings (`crate::mapping`: dynamic, and explicit from index templates), a bounded write queue, a
//! finite write thread pool, busy spells, and scripted faults.
//!
//! Answers use Elasticsearch 8's shapes: item `201 created`, `409 version_conflict_engine_exception` on a duplicate
//! `create`, `400 document_parsing_exception` or `strict_dynamic_mapping_exception` when a document does not fit its
//! index's mapping, `429 es_rejected_execution_exception` when the write queue is full, and the
//! `{"error":{"root_cause":[…],"type","reason"},"status"}` body for whole-request failures. `filter_path` is honoured
//! as Elasticsearch does (paths with `*`; empty objects dropped).
//!
//! A bulk request goes through the double in this order: `hold_answers`, then the latency or a `Fault::Delay`, then
//! its body is read; an outage answers 503; credentials are checked; the body is parsed (a malformed one answers
//! 400) and recorded; `set_max_content_length` answers 413 and a `Fault::Reject` its status; a busy spell answers
//! every item 429; the write pool admits the request or answers every item 429; then its items are written.
//!
//! This file owns the `EsDouble` handle, its start and stop, the routing of requests to their handlers and the
//! `State` they share. Each concern has a file of its own, its `EsDouble` setters and readings beside it: `bulk.rs`
//! (the `_bulk` protocol, per-item answers), `pool.rs` (the write thread pool and write queue), `faults.rs` (injected
//! faults: outages, busy spells, delays, node loss, limits), `security.rs` (credentials, principals, the security
//! APIs), `indices.rs` (indices, their documents and mappings, templates, aliases, data streams) and `pipelines.rs`
//! (ingest pipelines).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{Value, json};

use crate::server::{self, Body, Shared};

mod bulk;
mod faults;
mod indices;
mod pipelines;
mod pool;
mod security;
#[cfg(test)]
mod tests;

pub use bulk::ReceivedRequest;
pub use faults::{Fault, IndexFault};
use indices::{Index, IndexTemplate};
use pipelines::Processor;
use pool::PoolInUse;
pub use pool::WritePool;
pub use security::{Flavour, Principal, SigV4Check};

/// One action of a `_bulk` body and its source, as the bulk protocol reads it and the write pool runs it.
pub(crate) struct Action {
    pub(crate) kind: String,
    pub(crate) index: String,
    pub(crate) id: Option<String>,
    pub(crate) source: bytes::Bytes,
    /// `?pipeline=` of the request, or the action's own `pipeline`.
    pub(crate) pipeline: Option<String>,
    /// `if_seq_no` and `if_primary_term`: written only over that version of the document.
    pub(crate) condition: Option<(u64, u64)>,
}

#[derive(Debug)]
struct State {
    /// Who every caller is, and what it may do; `None`: no security (every request allowed).
    principal: Option<Principal>,
    /// Whether an Amazon domain's access policy refuses the caller's `GET`s (it may only post and put).
    iam_refuses_gets: bool,
    /// Likewise for `PUT`s (a role granted `es:ESHttpPost` only).
    iam_refuses_puts: bool,
    /// Whether the security plugin is not ready yet: its APIs answer 503.
    security_unavailable: bool,
    /// Names that are data streams (as `_resolve/index` tells them).
    data_streams: HashSet<String>,
    indices: HashMap<String, Index>,
    write_queue: Option<usize>,
    shards: usize,
    faults: VecDeque<Fault>,
    index_faults: HashMap<String, IndexFault>,
    auto_create_index: bool,
    max_content_length: Option<usize>,
    requests: Vec<ReceivedRequest>,
    attempts: HashMap<String, usize>,
    generated_ids: u64,
    latency: Duration,
    /// While set, a bulk request is answered only once the test releases it (`release_answers`).
    answers_held: Option<Arc<tokio::sync::Semaphore>>,
    /// Bulk requests received so far, answered or not.
    arrived: usize,
    in_flight: usize,
    max_in_flight: usize,
    sigv4: Option<SigV4Check>,
    basic_auth: Option<String>,
    pipelines: HashMap<String, Vec<Processor>>,
    /// Each pipeline's definition as it was put, for `GET _ingest/pipeline/{id}`.
    pipeline_definitions: HashMap<String, Value>,
    /// Until then, every bulk request answers 503: the cluster is away.
    outage_until: Option<std::time::Instant>,
    /// At most this many indices may exist (`cluster.max_shards_per_node` reached, two shards each).
    max_indices: Option<usize>,
    /// Bulk requests answered 503 because of `set_outage`.
    requests_during_outage: usize,
    /// Until then, every item of every bulk request answers 429: the write pool is saturated.
    busy_until: Option<std::time::Instant>,
    requests_during_busy_spell: usize,
    items_during_busy_spell: usize,
    write_pool: Option<Arc<PoolInUse>>,
    pool_rejected_requests: usize,
    pool_max_in_pool: usize,
    /// Changes (closes) when the double is dropped: requests running in the write pool stop with it.
    stopped: tokio::sync::watch::Receiver<()>,
    /// Refuse any client `_id`, as OpenSearch Serverless TIMESERIES and VECTORSEARCH collections do.
    refuse_ids: bool,
    /// Whether written documents keep their source (off for tests that measure the indexer's memory).
    keep_sources: bool,
    /// Aliases that point at indices without a write index.
    aliases_without_write_index: HashSet<String>,
    /// Composable index templates, in the order they were installed.
    templates: Vec<IndexTemplate>,
    /// `index.mapping.total_fields.limit` of indices created from now on without a template's (`None`: 1000).
    total_fields_limit: Option<usize>,
}

/// The running double. Dropping it stops the server and the requests running in its write pool.
pub struct EsDouble {
    shared: Shared<State>,
    /// Dropped with the double, which closes `State::stopped`.
    _stopping: tokio::sync::watch::Sender<()>,
}

impl EsDouble {
    /// Starts a double on 127.0.0.1 at a free port: auto-creates indices, unbounded write queue, no faults.
    pub async fn start() -> EsDouble {
        EsDouble::start_with(None).await
    }

    /// Like `start`, serving HTTPS with a self-signed certificate; `ca_pem` is what a client must trust.
    pub async fn start_tls() -> EsDouble {
        EsDouble::start_with(Some(server::Tls::self_signed())).await
    }

    /// Like `start_tls`, with a certificate for `names` only: another host's, to a client that asks for 127.0.0.1.
    pub async fn start_tls_for(names: &[&str]) -> EsDouble {
        EsDouble::start_with(Some(server::Tls::self_signed_for(names))).await
    }

    /// Like `start_tls`, with a certificate that expired in 2021.
    pub async fn start_tls_expired() -> EsDouble {
        EsDouble::start_with(Some(server::Tls::expired())).await
    }

    /// The PEM certificate a client must trust, when the double serves HTTPS.
    pub fn ca_pem(&self) -> Option<String> {
        self.shared.server.tls.as_ref().map(|tls| tls.ca_pem.clone())
    }

    async fn start_with(tls: Option<server::Tls>) -> EsDouble {
        let (stopping, stopped) = tokio::sync::watch::channel(());
        let state = State {
            principal: None,
            iam_refuses_gets: false,
            iam_refuses_puts: false,
            security_unavailable: false,
            data_streams: HashSet::new(),
            indices: HashMap::new(),
            write_queue: None,
            shards: 1,
            faults: VecDeque::new(),
            index_faults: HashMap::new(),
            auto_create_index: true,
            max_content_length: None,
            requests: Vec::new(),
            attempts: HashMap::new(),
            generated_ids: 0,
            latency: Duration::ZERO,
            answers_held: None,
            arrived: 0,
            in_flight: 0,
            max_in_flight: 0,
            sigv4: None,
            basic_auth: None,
            pipelines: HashMap::new(),
            pipeline_definitions: HashMap::new(),
            max_indices: None,
            outage_until: None,
            refuse_ids: false,
            requests_during_outage: 0,
            busy_until: None,
            requests_during_busy_spell: 0,
            items_during_busy_spell: 0,
            write_pool: None,
            pool_rejected_requests: 0,
            pool_max_in_pool: 0,
            stopped,
            keep_sources: true,
            aliases_without_write_index: HashSet::new(),
            templates: Vec::new(),
            total_fields_limit: None,
        };
        EsDouble { shared: Shared::start(state, answer, tls).await, _stopping: stopping }
    }

    /// `http://127.0.0.1:PORT`, or `https://…` with `start_tls`.
    pub fn url(&self) -> String {
        self.shared.url()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections()
    }
}

async fn answer(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, []) => json_response(200, &cluster_info()),
        (&Method::POST | &Method::PUT, ["_bulk"]) => bulk::bulk(state, request, None).await,
        (&Method::PUT, ["_ingest", "pipeline", id]) => {
            let id = (*id).to_owned();
            pipelines::put_pipeline(state, request, id).await
        }
        (&Method::PUT, ["_index_template", name]) => {
            let name = (*name).to_owned();
            indices::put_index_template(state, request, name).await
        }
        (&Method::POST | &Method::PUT, [index, "_bulk"]) => {
            let index = (*index).to_owned();
            bulk::bulk(state, request, Some(index)).await
        }
        (&Method::GET, ["_security", "_authenticate"])
        | (&Method::GET | &Method::POST, ["_security", "user", "_has_privileges"])
        | (&Method::GET, ["_plugins", "_security", "authinfo"])
        | (&Method::GET, ["_plugins", "_security", "api", "rolesmapping"])
        | (&Method::GET, ["_ingest", "pipeline", _])
        | (&Method::GET, ["_index_template", _])
        | (&Method::GET, ["_resolve", "index", _])
        | (&Method::GET, ["_alias", _]) => {
            let segments: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
            administer(state, request, segments).await
        }
        (&Method::PUT, [index]) if !index.starts_with('_') => {
            let segments = vec![(*index).to_owned()];
            administer(state, request, segments).await
        }
        _ => no_handler(&method, &path),
    }
}

/// What Elasticsearch answers a path it has no handler for (a security API of another flavour, or of none).
fn no_handler(method: &Method, path: &str) -> Response<Body> {
    json_response(
        400,
        &json!({"error": format!("no handler found for uri [{path}] and method [{method}]"), "status": 400}),
    )
}

/// The requests besides `_bulk` that the set-up and the doctor send: authenticated as every request, then answered
/// from the state as Elasticsearch (or OpenSearch's security plugin, with such a principal) answers them.
async fn administer(state: Arc<Mutex<State>>, request: Request<Incoming>, segments: Vec<String>) -> Response<Body> {
    let (parts, body) = server::read_body(request).await;
    if let Err(refused) = security::authenticate(&state, &parts, &body).await {
        return refused;
    }
    let state = &mut *state.lock().expect("state");
    let refused_action = match parts.method {
        Method::GET if state.iam_refuses_gets => Some("es:ESHttpGet"),
        Method::PUT if state.iam_refuses_puts => Some("es:ESHttpPut"),
        _ => None,
    };
    if let Some(action) = refused_action {
        let message = format!(
            "User: arn:aws:sts::123456789012:assumed-role/stack-FunctionRole-1A2B/stack-indexer is not authorized to perform: {action} because no identity-based policy allows the {action} action"
        );
        return json_response(403, &json!({ "Message": message }));
    }
    let principal = state.principal.clone();
    let flavour = principal.as_ref().map(|p| p.flavour);
    if state.security_unavailable && segments.iter().any(|segment| segment.contains("_security")) {
        return json_response(503, &json!({"error": "OpenSearch Security not initialized.", "status": 503}));
    }
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (segments.as_slice(), flavour) {
        (["_security", "_authenticate"], Some(Flavour::Elasticsearch)) => security::authenticated_user(principal),
        (["_security", "user", "_has_privileges"], Some(Flavour::Elasticsearch)) => {
            security::has_privileges(principal, &body)
        }
        (["_plugins", "_security", "authinfo"], Some(Flavour::OpenSearch)) => security::authinfo(principal),
        (["_plugins", "_security", "api", "rolesmapping"], Some(Flavour::OpenSearch)) => {
            security::role_mappings(principal)
        }
        (["_ingest", "pipeline", id], _) => pipelines::get_pipeline(state, id),
        (["_index_template", name], _) => indices::get_index_template(state, name),
        (["_resolve", "index", name], _) => indices::resolve_index(state, name),
        (["_alias", name], _) => indices::get_alias(state, name),
        ([index], _) if !index.starts_with('_') => indices::create_index(state, index, &body),
        _ => no_handler(&parts.method, parts.uri.path()),
    }
}

fn cluster_info() -> Value {
    json!({
        "name": "double-node-0",
        "cluster_name": "kinesis-es-indexer-double",
        "cluster_uuid": "8YhS0n2pR1uXq3lVbC9aZw",
        "version": {"number": "8.15.0", "build_flavor": "default", "lucene_version": "9.11.1", "minimum_wire_compatibility_version": "7.17.0", "minimum_index_compatibility_version": "7.0.0"},
        "tagline": "You Know, for Search"
    })
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-elastic-product", "Elasticsearch")
        .body(server::full(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

/// The body of a whole-request failure, as Elasticsearch sends it.
fn error_body(status: u16, error_type: &str, reason: &str) -> Value {
    json!({"error": {"root_cause": [{"type": error_type, "reason": reason}], "type": error_type, "reason": reason}, "status": status})
}
