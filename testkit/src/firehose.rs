//! An Amazon Data Firehose double: `PutRecordBatch` over the AWS JSON 1.1 protocol the SDK speaks, keeping every
//! accepted record, with scripted per-entry and whole-call failures.
//!
//! Shapes follow the Firehose API reference: `{"FailedPutCount","Encrypted","RequestResponses":[{"RecordId"} |
//! {"ErrorCode","ErrorMessage"}]}`, and errors as `{"__type","message"}` with the `x-amzn-errortype` header.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::{self, Body, Shared};

/// A misbehaviour for the next `PutRecordBatch` call (one per call, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirehoseFault {
    /// These positions of the call answer `ErrorCode: ServiceUnavailableException`; the others are accepted.
    FailEntries(Vec<usize>),
    /// The whole call fails with `ServiceUnavailableException` (throttling).
    Throttle,
}

#[derive(Debug, Default)]
struct State {
    streams: Option<HashSet<String>>,
    records: Vec<(String, Vec<u8>)>,
    /// Every entry of every call that reached a stream, accepted or not, in arrival order.
    offered: Vec<Vec<u8>>,
    calls: Vec<usize>,
    faults: VecDeque<FirehoseFault>,
    fail_every_entry: bool,
    next_record_id: u64,
    /// What `DescribeDeliveryStream` tells of a stream: its status and its destination's description.
    descriptions: std::collections::HashMap<String, (String, Value)>,
    /// Whether `DescribeDeliveryStream` is refused, as to a role without `firehose:DescribeDeliveryStream`.
    describe_refused: bool,
}

/// The running double. Dropping it stops the server.
pub struct FirehoseDouble {
    shared: Shared<State>,
}

impl FirehoseDouble {
    /// Starts a double that accepts every stream name and every record.
    pub async fn start() -> FirehoseDouble {
        FirehoseDouble { shared: Shared::start(State::default(), answer, None).await }
    }

    /// `http://127.0.0.1:PORT`, for the SDK's endpoint URL.
    pub fn url(&self) -> String {
        self.shared.url()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Only these streams exist; others answer `ResourceNotFoundException`.
    pub fn set_streams(&self, names: &[&str]) {
        self.state().streams = Some(names.iter().map(|n| n.to_string()).collect());
    }

    /// What `DescribeDeliveryStream` answers for `stream`: `status` (`ACTIVE`, `CREATING`…) and one destination, as
    /// its API shape holds it (`{"AmazonopensearchserviceDestinationDescription": {"RoleARN": …}}`). A stream
    /// without one is described ACTIVE with no destination.
    pub fn describe_stream(&self, stream: &str, status: &str, destination: Value) {
        self.state().descriptions.insert(stream.to_owned(), (status.to_owned(), destination));
    }

    /// While set, `DescribeDeliveryStream` answers `AccessDeniedException` (a role granted `PutRecordBatch` only).
    pub fn set_describe_refused(&self, refused: bool) {
        self.state().describe_refused = refused;
    }

    /// Queues a fault for the next call not yet faulted.
    pub fn push_fault(&self, fault: FirehoseFault) {
        self.state().faults.push_back(fault);
    }

    /// While set, every entry of every call fails with `ServiceUnavailableException`.
    pub fn set_fail_every_entry(&self, failing: bool) {
        self.state().fail_every_entry = failing;
    }

    /// Forgets queued faults and stops failing every entry: the stream has recovered.
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.fail_every_entry = false;
    }

    /// Every accepted record's data, in arrival order.
    pub fn records(&self) -> Vec<Vec<u8>> {
        self.state().records.iter().map(|(_, data)| data.clone()).collect()
    }

    /// Every accepted record parsed as JSON (each is one newline-terminated document).
    pub fn documents(&self) -> Vec<Value> {
        self.records()
            .iter()
            .map(|data| serde_json::from_slice(data).expect("a Firehose record holds one JSON document"))
            .collect()
    }

    /// Every entry offered to a stream that exists, accepted or refused (a resent entry once per call), in order.
    pub fn offered(&self) -> Vec<Vec<u8>> {
        self.state().offered.clone()
    }

    /// How many entries each call carried, in order.
    pub fn calls(&self) -> Vec<usize> {
        self.state().calls.clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections()
    }
}

#[derive(Deserialize)]
struct PutRecordBatchInput {
    #[serde(rename = "DeliveryStreamName")]
    delivery_stream_name: String,
    #[serde(rename = "Records")]
    records: Vec<RecordInput>,
}

#[derive(Deserialize)]
struct RecordInput {
    #[serde(rename = "Data")]
    data: String,
}

fn response(status: u16, body: &Value, error_type: Option<&str>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "double-request");
    if let Some(error_type) = error_type {
        builder = builder.header("x-amzn-errortype", error_type);
    }
    builder.body(server::full(serde_json::to_vec(body).expect("json"))).expect("response")
}

fn error(status: u16, error_type: &str, message: &str) -> Response<Body> {
    response(status, &json!({"__type": error_type, "message": message}), Some(error_type))
}

async fn answer(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Body> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (_, body) = server::read_body(request).await;
    if target == "Firehose_20150804.DescribeDeliveryStream" {
        return describe(&state, &body);
    }
    if target != "Firehose_20150804.PutRecordBatch" {
        return error(
            400,
            "UnknownOperationException",
            &format!("the double answers PutRecordBatch and DescribeDeliveryStream only, not {target:?}"),
        );
    }
    let input: PutRecordBatchInput = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(e) => return error(400, "SerializationException", &e.to_string()),
    };
    if input.records.is_empty() || input.records.len() > 500 {
        return error(400, "InvalidArgumentException", "Records must hold 1 to 500 entries");
    }
    let mut state = state.lock().expect("state");
    if state.streams.as_ref().is_some_and(|streams| !streams.contains(&input.delivery_stream_name)) {
        let message = format!("Firehose {} under account 123456789012 not found.", input.delivery_stream_name);
        return error(400, "ResourceNotFoundException", &message);
    }
    state.calls.push(input.records.len());
    let offered: Vec<Vec<u8>> = input
        .records
        .iter()
        .filter_map(|record| base64::engine::general_purpose::STANDARD.decode(&record.data).ok())
        .collect();
    state.offered.extend(offered);
    let failing: HashSet<usize> = match state.faults.pop_front() {
        Some(FirehoseFault::Throttle) => return error(503, "ServiceUnavailableException", "Slow down."),
        Some(FirehoseFault::FailEntries(positions)) => positions.into_iter().collect(),
        None => HashSet::new(),
    };
    let mut responses = Vec::with_capacity(input.records.len());
    let mut failed = 0;
    for (position, record) in input.records.into_iter().enumerate() {
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&record.data) else {
            return error(400, "SerializationException", "Data is not base64");
        };
        if data.len() > 1_000 * 1024 {
            return error(400, "InvalidArgumentException", "Record size exceeds 1,000 KiB");
        }
        if state.fail_every_entry || failing.contains(&position) {
            failed += 1;
            responses.push(json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}));
            continue;
        }
        state.next_record_id += 1;
        let record_id = format!("{:056}", state.next_record_id);
        state.records.push((input.delivery_stream_name.clone(), data));
        responses.push(json!({"RecordId": record_id}));
    }
    response(200, &json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": responses}), None)
}

/// `DescribeDeliveryStream`: the stream's description as the API reference shapes it, or `ResourceNotFoundException`.
fn describe(state: &Mutex<State>, body: &[u8]) -> Response<Body> {
    let name = match serde_json::from_slice::<Value>(body) {
        Ok(input) => input["DeliveryStreamName"].as_str().unwrap_or_default().to_owned(),
        Err(e) => return error(400, "SerializationException", &e.to_string()),
    };
    let state = state.lock().expect("state");
    if state.describe_refused {
        let message = format!(
            "User: arn:aws:sts::123456789012:assumed-role/stack-FunctionRole-1A2B/stack-indexer is not authorized to \
             perform: firehose:DescribeDeliveryStream on resource: \
             arn:aws:firehose:us-east-1:123456789012:deliverystream/{name} because no identity-based policy allows \
             the firehose:DescribeDeliveryStream action"
        );
        return error(400, "AccessDeniedException", &message);
    }
    if state.streams.as_ref().is_some_and(|streams| !streams.contains(&name)) {
        return error(
            400,
            "ResourceNotFoundException",
            &format!("Firehose {name} under account 123456789012 not found."),
        );
    }
    let (status, destination) = state.descriptions.get(&name).cloned().unwrap_or(("ACTIVE".to_owned(), Value::Null));
    let mut destinations = Vec::new();
    if let Value::Object(mut description) = destination {
        description.insert("DestinationId".to_owned(), json!("destinationId-000000000001"));
        destinations.push(Value::Object(description));
    }
    let description = json!({
        "DeliveryStreamName": name,
        "DeliveryStreamARN": format!("arn:aws:firehose:us-east-1:123456789012:deliverystream/{name}"),
        "DeliveryStreamStatus": status,
        "DeliveryStreamType": "DirectPut",
        "VersionId": "1",
        "CreateTimestamp": 1_700_000_000.0,
        "Destinations": destinations,
        "HasMoreDestinations": false
    });
    response(200, &json!({ "DeliveryStreamDescription": description }), None)
}
