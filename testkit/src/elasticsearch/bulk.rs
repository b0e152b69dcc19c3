//! The `_bulk` protocol: a request read (gzip, NDJSON actions), recorded, refused whole or admitted, and answered item
//! by item in Elasticsearch's shapes (`filter_path` honoured); what the bulk requests carried and how many were
//! answered at once.

use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::faults::{Fault, IndexFault};
use super::indices::invalid_index_name;
use super::pool::{Turn, WRITE_QUEUE_FULL, run_in_pool};
use super::security::{Flavour, authenticate};
use super::{Action, EsDouble, State, error_body, json_response};
use crate::server::{self, Body};

/// One bulk request as the double received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub path: String,
    pub query: Option<String>,
    pub headers: hyper::HeaderMap,
    /// Body bytes on the wire (compressed when gzip).
    pub wire_bytes: usize,
    /// `_id`s of the actions, in order.
    pub ids: Vec<String>,
}

impl EsDouble {
    /// From now on, every bulk request waits to be answered until `release_answers` lets it: a test sees exactly
    /// how many requests the indexer has outstanding, with no timing involved.
    pub fn hold_answers(&self) {
        self.state().answers_held = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets `count` held bulk requests be answered, in the order they arrived.
    pub fn release_answers(&self, count: usize) {
        self.state().answers_held.as_ref().expect("hold_answers first").add_permits(count);
    }

    /// How many bulk requests have arrived so far, answered or not.
    pub fn bulk_requests_arrived(&self) -> usize {
        self.state().arrived
    }

    /// The most bulk requests that were being answered at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    /// Writes `records` as Firehose's Elasticsearch/OpenSearch destination does: `index` actions without `_id`
    /// (`DocumentIdOptions: NO_DOCUMENT_ID`) into `index`, through its default pipeline. Returns each item's status.
    pub fn deliver_as_firehose(&self, index: &str, records: &[Vec<u8>]) -> Vec<u16> {
        let mut state = self.state();
        records
            .iter()
            .map(|data| {
                let action = Action {
                    kind: "index".into(),
                    index: index.to_owned(),
                    id: None,
                    source: Bytes::copy_from_slice(data),
                    pipeline: None,
                    condition: None,
                };
                let item = state.apply(action, false);
                item["index"]["status"].as_u64().unwrap_or(0) as u16
            })
            .collect()
    }

    /// Every bulk request received, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.state().requests.clone()
    }

    /// How many bulk requests carried this `_id` (every attempt counts, whatever the answer).
    pub fn attempts(&self, id: &str) -> usize {
        self.state().attempts.get(id).copied().unwrap_or(0)
    }

    /// The most bulk requests any single `_id` was carried in.
    pub fn max_attempts_per_document(&self) -> usize {
        self.state().attempts.values().copied().max().unwrap_or(0)
    }
}

pub(super) async fn bulk(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
    path_index: Option<String>,
) -> Response<Body> {
    let (fault, latency, answers_held) = {
        let mut state = state.lock().expect("state");
        state.arrived += 1;
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        (state.faults.pop_front(), state.latency, state.answers_held.clone())
    };
    // Also counts down when the client gives up and the request is dropped mid-way.
    let _in_flight = InFlight(state.clone());
    if let Some(gate) = answers_held {
        gate.acquire().await.expect("the gate is never closed").forget();
    }
    let pause = match &fault {
        Some(Fault::Delay(pause)) => *pause,
        _ => latency,
    };
    tokio::time::sleep(pause).await;
    process_bulk(&state, request, path_index, fault).await
}

struct InFlight(Arc<Mutex<State>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.in_flight -= 1;
        }
    }
}

async fn process_bulk(
    state: &Arc<Mutex<State>>,
    request: Request<Incoming>,
    path_index: Option<String>,
    fault: Option<Fault>,
) -> Response<Body> {
    let (parts, wire) = server::read_body(request).await;
    let outage = state.lock().expect("state").outage_until.is_some_and(|until| std::time::Instant::now() < until);
    if outage {
        state.lock().expect("state").requests_during_outage += 1;
        return json_response(503, &error_body(503, "http_503", "Service Unavailable"));
    }
    if let Err(refused) = authenticate(state, &parts, &wire).await {
        return refused;
    }
    let gzip = parts.headers.get("content-encoding").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = if gzip {
        let mut inflated = Vec::new();
        if flate2::read::MultiGzDecoder::new(&wire[..]).read_to_end(&mut inflated).is_err() {
            return json_response(400, &error_body(400, "parse_exception", "request body is not valid gzip"));
        }
        Bytes::from(inflated)
    } else {
        wire.clone()
    };

    let started = std::time::Instant::now();
    // The lock is not held across an await: the pool's wait happens with it released.
    let turn = {
        let mut state = state.lock().expect("state");
        let request_pipeline =
            parts.uri.query().and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("pipeline=")));
        let actions = match parse_ndjson(&body, path_index.as_deref(), request_pipeline) {
            Ok(actions) => actions,
            Err(reason) => return json_response(400, &error_body(400, "illegal_argument_exception", &reason)),
        };
        for action in &actions {
            if let Some(id) = &action.id {
                *state.attempts.entry(id.clone()).or_default() += 1;
            }
        }
        state.requests.push(ReceivedRequest {
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            wire_bytes: wire.len(),
            ids: actions.iter().map(|a| a.id.clone().unwrap_or_default()).collect(),
        });
        if state.max_content_length.is_some_and(|limit| body.len() > limit) {
            let reason = format!("Request entity too large: {} bytes", body.len());
            return json_response(413, &error_body(413, "content_too_long_exception", &reason));
        }
        match &fault {
            Some(Fault::Reject { status, error_type, reason }) => {
                return json_response(*status, &error_body(*status, error_type, reason));
            }
            Some(Fault::ResetBeforeWrite) => return broken_response(Bytes::new()),
            _ => {}
        }
        state.admit(actions)
    };
    let mut items = match turn {
        Turn::Answered(items) => items,
        Turn::Queued(seat, actions) => match run_in_pool(state.clone(), seat, actions).await {
            Some(items) => items,
            None => return broken_response(Bytes::new()),
        },
    };
    if matches!(fault, Some(Fault::DropLastItem)) {
        items.pop();
    }
    let errors = items
        .iter()
        .any(|item| item.as_object().and_then(|o| o.values().next()).is_some_and(|body| body.get("error").is_some()));
    let response = json!({"errors": errors, "took": started.elapsed().as_millis() as u64, "items": items});
    match fault {
        Some(Fault::ResetAfterWrite) => {
            let bytes = serde_json::to_vec(&response).expect("json");
            broken_response(Bytes::copy_from_slice(&bytes[..bytes.len() / 2]))
        }
        Some(Fault::Garbage) => {
            Response::builder().status(200).body(server::full("<html>upstream says hi</html>")).expect("response")
        }
        _ => {
            let filters = parts.uri.query().and_then(filter_path);
            let response = match filters {
                Some(filters) => apply_filter_path(&response, &filters).unwrap_or_else(|| json!({})),
                None => response,
            };
            json_response(200, &response)
        }
    }
}

/// The `filter_path` of a query string: comma-separated dotted paths, `*` matching any one key.
fn filter_path(query: &str) -> Option<Vec<Vec<String>>> {
    let value = query.split('&').find_map(|pair| pair.strip_prefix("filter_path="))?;
    let decoded = server::percent_decode(value);
    Some(decoded.split(',').map(|path| path.split('.').map(str::to_owned).collect()).collect())
}

/// What Elasticsearch keeps of a response under `filter_path`: the values at the paths, arrays filtered element by
/// element, and objects or arrays left empty dropped.
fn apply_filter_path(value: &Value, filters: &[Vec<String>]) -> Option<Value> {
    if filters.iter().any(Vec::is_empty) {
        return Some(value.clone());
    }
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .iter()
                .filter_map(|(key, child)| {
                    let rest: Vec<Vec<String>> = filters
                        .iter()
                        .filter(|path| path[0] == "*" || path[0] == *key)
                        .map(|path| path[1..].to_vec())
                        .collect();
                    if rest.is_empty() {
                        return None;
                    }
                    apply_filter_path(child, &rest).map(|child| (key.clone(), child))
                })
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(|item| apply_filter_path(item, filters)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn broken_response(partial: Bytes) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("content-length", (partial.len() + 1024).to_string())
        .body(server::broken_after(partial))
        .expect("response")
}

/// Pairs of action and source lines; the first malformed line fails the whole request, as in Elasticsearch.
fn parse_ndjson(body: &Bytes, path_index: Option<&str>, request_pipeline: Option<&str>) -> Result<Vec<Action>, String> {
    if !body.is_empty() && !body.ends_with(b"\n") {
        return Err("The bulk request must be terminated by a newline [\\n]".into());
    }
    let mut lines =
        body.split(|&b| b == b'\n').enumerate().filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace));
    let mut actions = Vec::new();
    while let Some((number, line)) = lines.next() {
        let malformed = || {
            format!(
                "Malformed action/metadata line [{}], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]",
                number + 1
            )
        };
        let action: Map<String, Value> = serde_json::from_slice(line).map_err(|_| malformed())?;
        let (kind, meta) = action.iter().next().ok_or_else(malformed)?;
        if !matches!(kind.as_str(), "create" | "index") {
            return Err(format!(
                "Malformed action/metadata line [{}], expected field [create], [delete], [index] or [update] but found [{kind}]",
                number + 1
            ));
        }
        let index = meta.get("_index").and_then(Value::as_str).or(path_index).ok_or("index is missing")?.to_owned();
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_owned);
        let (_, source) = lines.next().ok_or_else(|| {
            format!("Validation Failed: 1: no requests added; action line [{}] has no source", number + 1)
        })?;
        let pipeline = meta.get("pipeline").and_then(Value::as_str).or(request_pipeline).map(str::to_owned);
        let condition = match (meta.get("if_seq_no"), meta.get("if_primary_term")) {
            (Some(seq_no), Some(term)) => Some((seq_no.as_u64().unwrap_or(0), term.as_u64().unwrap_or(0))),
            _ => None,
        };
        actions.push(Action { kind: kind.clone(), index, id, source: body.slice_ref(source), pipeline, condition });
    }
    Ok(actions)
}

impl State {
    /// The action's `_id`, or a new one for an action without: Elasticsearch makes it on the coordinating node,
    /// so a rejected item carries one too.
    fn id_of(&mut self, action: &Action) -> String {
        match &action.id {
            Some(id) => id.clone(),
            None => {
                self.generated_ids += 1;
                format!("double-{:012}", self.generated_ids)
            }
        }
    }

    /// An item the write thread pool had no room for: 429 `es_rejected_execution_exception`, nothing written.
    pub(super) fn rejected(&mut self, action: &Action, reason: &str) -> Value {
        let id = self.id_of(action);
        json!({ &action.kind: {"_index": &action.index, "_id": id, "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": reason}} })
    }

    /// Applies one action and returns its item, keyed by the action's name.
    pub(super) fn apply(&mut self, mut action: Action, queue_full: bool) -> Value {
        let refusal = self.refusal(&action);
        let pipeline_source = match (&refusal, queue_full) {
            (None, false) => self.run_pipeline(&mut action),
            _ => None,
        };
        let id = self.id_of(&action);
        let item = |status: u16, error_type: &str, reason: String| json!({ &action.kind: {"_index": &action.index, "_id": &id, "status": status, "error": {"type": error_type, "reason": reason}} });
        if let Some((status, error_type, reason)) = refusal {
            return item(status, error_type, reason);
        }
        if queue_full {
            return item(429, "es_rejected_execution_exception", WRITE_QUEUE_FULL.into());
        }
        match self.index_faults.get(&action.index) {
            Some(IndexFault::FloodStage) => {
                let reason = format!(
                    "index [{}] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];",
                    action.index
                );
                return item(429, "cluster_block_exception", reason);
            }
            Some(IndexFault::ReadOnly) => {
                return item(
                    403,
                    "cluster_block_exception",
                    format!("index [{}] blocked by: [FORBIDDEN/8/index write (api)];", action.index),
                );
            }
            Some(IndexFault::UnavailableShards) => {
                let reason = format!(
                    "[{}][0] primary shard is not active Timeout: [1m], request: [BulkShardRequest [[{}][0]] containing [1] requests]",
                    action.index, action.index
                );
                return item(503, "unavailable_shards_exception", reason);
            }
            Some(IndexFault::Closed) => return item(400, "index_closed_exception", "closed".into()),
            Some(IndexFault::Refuse(status, error_type)) => {
                return item(*status, error_type, format!("[{}] refused by the double", action.index));
            }
            None => {}
        }
        if !self.indices.contains_key(&action.index) {
            if !self.auto_create_index {
                return item(404, "index_not_found_exception", format!("no such index [{}]", action.index));
            }
            if let Some(max) = self.max_indices.filter(|max| self.indices.len() >= *max) {
                let (open, limit) = (self.indices.len() * 2, max * 2);
                let reason = format!(
                    "Validation Failed: 1: this action would add [2] shards, but this cluster currently has [{open}]/[{limit}] maximum normal shards open;"
                );
                return item(400, "validation_exception", reason);
            }
        }
        let source: Value = match pipeline_source.map(Ok).unwrap_or_else(|| serde_json::from_slice(&action.source)) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return item(
                    400,
                    "document_parsing_exception",
                    "[1:1] failed to parse: source is not a JSON object".into(),
                );
            }
        };
        let keep_sources = self.keep_sources;
        let index = self.index_mut(&action.index);
        // Refused before anything is written, the mapping left as it was.
        if let Err(refusal) = index.mapping.map_document(source.as_object().expect("checked above"), &id) {
            return json!({ &action.kind: {"_index": &action.index, "_id": &id, "status": refusal.status, "error": refusal.to_json()} });
        }
        // As the shard does: the dynamic mapping update is applied before the engine checks the condition, so a
        // conditional write refused for its version still adds its new fields to the mapping.
        if let Some((seq_no, term)) = action.condition {
            let found = match index.documents.contains_key(&id) {
                true => format!("current document has seqNo [{}] and primary term [1]", index.seq_no),
                false => "but no document was found".to_owned(),
            };
            let reason = format!("[{id}]: version conflict, required seqNo [{seq_no}], primary term [{term}]. {found}");
            return item(409, "version_conflict_engine_exception", reason);
        }
        let existing = index.documents.get(&id).map(|(version, _)| *version);
        if action.kind == "create"
            && let Some(version) = existing
        {
            return item(
                409,
                "version_conflict_engine_exception",
                format!("[{id}]: version conflict, document already exists (current version [{version}])"),
            );
        }
        let version = existing.map_or(1, |v| v + 1);
        index.seq_no += 1;
        let source = if keep_sources { source } else { Value::Null };
        index.documents.insert(id.clone(), (version, source));
        let (status, result) = if existing.is_some() { (200, "updated") } else { (201, "created") };
        json!({ &action.kind: {
            "_index": &action.index, "_id": id, "_version": version, "result": result,
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": index.seq_no - 1, "_primary_term": 1, "status": status
        }})
    }

    /// A refusal that does not depend on the document: a client `_id` where none is allowed, an invalid index name,
    /// an alias without a write index, a pipeline that does not exist. Worded as Elasticsearch and OpenSearch do.
    fn refusal(&self, action: &Action) -> Option<(u16, &'static str, String)> {
        if let Some(principal) = &self.principal {
            if !principal.may_write() {
                let reason =
                    principal.refusal("indices:data/write/bulk[s]", &action.index, "create_doc,create,index,write,all");
                return Some((403, "security_exception", reason));
            }
            if !principal.may_create_index(false) && !self.indices.contains_key(&action.index) {
                let name = match principal.flavour {
                    Flavour::Elasticsearch => "indices:admin/auto_create",
                    Flavour::OpenSearch => "indices:admin/create",
                };
                let reason = principal.refusal(name, &action.index, "auto_configure,create_index,manage,all");
                return Some((403, "security_exception", reason));
            }
        }
        if self.refuse_ids && action.id.is_some() {
            let reason = "Document ID is not supported in create/index operation request".to_owned();
            return Some((400, "illegal_argument_exception", reason));
        }
        if let Some(why) = invalid_index_name(&action.index) {
            let reason = format!("Invalid index name [{}], {why}", action.index);
            return Some((400, "invalid_index_name_exception", reason));
        }
        if self.aliases_without_write_index.contains(&action.index) {
            let reason = format!(
                "no write index is defined for alias [{}]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index",
                action.index
            );
            return Some((400, "illegal_argument_exception", reason));
        }
        match self.pipeline_of(action) {
            Some(name) if !self.pipelines.contains_key(&name) => {
                Some((400, "illegal_argument_exception", format!("pipeline with id [{name}] does not exist")))
            }
            _ => None,
        }
    }
}
