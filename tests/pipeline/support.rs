//! Shared test support: doubles wired to real `Deps`, Kinesis events built from payloads, redelivery as Lambda does
//! it, log capture, and the invariant every test checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use kinesis_es_indexer::firehose::Firehose;
use kinesis_es_indexer::handler::Report;
use kinesis_es_indexer::{Config, Deps, KinesisEventIn, Outcome};
use serde_json::{Value, json};
pub use testkit::gzip;
use testkit::{EsDouble, FirehoseDouble};

pub const SHARD: &str = "shardId-000000000000";
pub const STREAM_ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs";
pub const STREAM: &str = "retry-later";
/// The index the Firehose tier writes to on the tests' day (`FIREHOSE_INDEX_NAME`'s default, rotated daily).
pub const FIREHOSE_INDEX: &str = "kinesis-es-indexer-firehose-2026-11-22";

/// Both doubles and the dependencies of a handler wired to them.
pub struct Harness {
    pub es: EsDouble,
    pub firehose: FirehoseDouble,
    pub deps: Deps,
}

impl Harness {
    /// Doubles plus a config from `ES_URL` (the double), `FIREHOSE_STREAM_NAME`, and `overrides`.
    pub async fn start(overrides: &[(&str, &str)]) -> Harness {
        let es = EsDouble::start().await;
        let firehose = FirehoseDouble::start().await;
        let deps = deps(&es, Some(&firehose), overrides);
        Harness { es, firehose, deps }
    }

    /// Handles `event` with a deadline `budget` from now.
    pub async fn deliver_within(&self, event: &KinesisEventIn, budget: Duration) -> Report {
        kinesis_es_indexer::handle(event, tokio::time::Instant::now() + budget, &self.deps).await
    }

    /// Handles `event` with a generous deadline and checks the invariant.
    pub async fn deliver(&self, event: &KinesisEventIn) -> Report {
        let report = self.deliver_within(event, Duration::from_secs(60)).await;
        let kinesis_ids = self.deps.config.doc_id == kinesis_es_indexer::config::DocIdMode::Kinesis;
        check_invariant(event, &report, &self.es, &self.firehose, kinesis_ids);
        report
    }
}

/// Real `Deps` whose clients talk to the doubles. Firehose is left out when `firehose` is `None`.
pub fn deps(es: &EsDouble, firehose: Option<&FirehoseDouble>, overrides: &[(&str, &str)]) -> Deps {
    deps_with_aws_credentials(es, firehose, overrides, None)
}

/// Like `deps`, with the AWS credentials SigV4 signing asks for on every request.
pub fn deps_with_aws_credentials(
    es: &EsDouble,
    firehose: Option<&FirehoseDouble>,
    overrides: &[(&str, &str)],
    aws_credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
) -> Deps {
    let url = es.url();
    let mut pairs: Vec<(String, String)> = vec![("ES_URL".into(), url), ("ES_INDEX".into(), "logs-%Y.%m.%d".into())];
    if firehose.is_some() {
        pairs.push(("FIREHOSE_STREAM_NAME".into(), STREAM.into()));
    }
    for (k, v) in overrides {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    let config =
        Config::from_lookup(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).expect("test config");
    let elasticsearch =
        kinesis_es_indexer::elasticsearch::Elasticsearch::new(&config, aws_credentials).expect("client");
    let firehose = firehose.map(|double| {
        let conf = aws_sdk_firehose::Config::builder()
            .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
            .region(aws_sdk_firehose::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_firehose::config::Credentials::new(
                "AKIDTEST",
                "test-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(double.url())
            .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled())
            .build();
        Firehose::new(
            aws_sdk_firehose::Client::from_conf(conf),
            STREAM.into(),
            config.firehose_max_attempts,
            double.url(),
        )
    });
    Deps { config, elasticsearch, firehose, secret: None, warm: Default::default() }
}

/// The sequence number of the `i`th record of a test batch: 56 digits, growing, as Kinesis makes them.
pub fn sequence(i: usize) -> String {
    format!("4965943083714029628517825429095820304993404645268352{:04}", 2050 + i)
}

/// A Kinesis event whose records carry these payloads, in order, arriving 2026-11-22T08:00:00Z + i × 250 ms.
pub fn event(payloads: &[Vec<u8>]) -> KinesisEventIn {
    event_from(0, payloads)
}

/// Like `event`, for records `first..` of the shard (later batches of the same stream).
pub fn event_from(first: usize, payloads: &[Vec<u8>]) -> KinesisEventIn {
    let records: Vec<Value> = payloads
        .iter()
        .enumerate()
        .map(|(offset, data)| {
            let i = first + offset;
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "p",
                    "sequenceNumber": sequence(i),
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": 1795334400.0 + i as f64 * 0.25
                },
                "eventSource": "aws:kinesis",
                "eventID": format!("{SHARD}:{}", sequence(i)),
                "eventSourceARN": STREAM_ARN
            })
        })
        .collect();
    parse_event(&json!({ "Records": records }).to_string())
}

/// Reads an event as the Lambda runtime would.
pub fn parse_event(text: &str) -> KinesisEventIn {
    serde_json::from_str(text).expect("an event")
}

/// JSON payloads from values.
pub fn json_payloads(values: &[Value]) -> Vec<Vec<u8>> {
    values.iter().map(|v| serde_json::to_vec(v).unwrap()).collect()
}

/// `n` plain JSON payloads.
pub fn plain_payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| serde_json::to_vec(&json!({"message": format!("record {i}"), "n": i})).unwrap()).collect()
}

/// What Lambda redelivers after `report`: the records at or after the lowest sequence number reported.
pub fn redelivery(event: &KinesisEventIn, report: &Report) -> Option<KinesisEventIn> {
    let response = report.response();
    let lowest = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .min_by(|a, b| kinesis_es_indexer::route::compare_sequence_numbers(a, b))?;
    let start = report.records.iter().position(|r| r.provenance.sequence_number.as_deref() == Some(lowest.as_str()))?;
    Some(KinesisEventIn::from_records(event.records_json().into_iter().skip(start)).expect("records of an event"))
}

/// `event` with each record (its position, its JSON) changed by `edit`.
pub fn edit_records(event: &KinesisEventIn, mut edit: impl FnMut(usize, &mut Value)) -> KinesisEventIn {
    let records = event.records_json().into_iter().enumerate().map(|(i, raw)| {
        let mut record: Value = serde_json::from_str(raw).expect("a record of JSON");
        edit(i, &mut record);
        record.to_string()
    });
    KinesisEventIn::from_records(records).expect("records of JSON")
}

/// The outcome of every record, in order.
pub fn outcomes(report: &Report) -> Vec<Outcome> {
    report.records.iter().map(|r| r.outcome).collect()
}

/// The `_id` of document `position` of record `i` (in `ES_DOC_ID=kinesis` mode): `stream:shard:sequence:position`.
pub fn doc_id(i: usize, position: impl std::fmt::Display) -> String {
    format!("{}:{SHARD}:{}:{position}", kinesis_es_indexer::record::stream_tag(STREAM_ARN), sequence(i))
}

/// Every record ends in exactly one place, and that place holds it: written records are in the double, records
/// parked in Firehose are there with their `_id`, records going back are in the response, and nothing else is.
pub fn assert_invariant(event: &KinesisEventIn, report: &Report, es: &EsDouble, firehose: &FirehoseDouble) {
    check_invariant(event, report, es, firehose, true)
}

/// `assert_invariant`; where `kinesis_ids` is false (`ES_DOC_ID` none or a field), `_id`s cannot be traced to their
/// records and only the counts and the response are checked.
pub fn check_invariant(
    event: &KinesisEventIn,
    report: &Report,
    es: &EsDouble,
    firehose: &FirehoseDouble,
    kinesis_ids: bool,
) {
    assert_eq!(report.records.len(), event.len(), "one outcome per record");
    let counted: usize = report.summary.outcomes.values().sum();
    assert_eq!(counted, event.len(), "the summary counts every record once");

    let reported: Vec<String> =
        report.response().batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect();
    let expected_back: Vec<String> = report
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::BackToKinesis)
        .filter_map(|r| r.provenance.sequence_number.clone())
        .collect();
    assert_eq!(reported, expected_back, "exactly the records going back are reported");
    if !kinesis_ids {
        return;
    }

    // `_id`s by the record they name (`stream:shard:sequence:`), for stored and for parked documents.
    let by_record = |ids: Vec<String>| {
        let mut map: HashMap<String, HashSet<String>> = HashMap::new();
        for id in ids {
            if let Some((prefix, _)) = id.rsplit_once(':') {
                map.entry(format!("{prefix}:")).or_default().insert(id.clone());
            }
        }
        map
    };
    let stored = by_record(es.documents().into_iter().map(|(_, id, _)| id).collect());
    let parked = by_record(
        firehose.documents().iter().filter_map(|d| d["es_target"]["_id"].as_str().map(str::to_owned)).collect(),
    );
    let tag = kinesis_es_indexer::record::stream_tag(STREAM_ARN);
    let empty = HashSet::new();
    for record in &report.records {
        if record.provenance.sequence_number.is_none() {
            continue;
        }
        let prefix = kinesis_es_indexer::record::id_prefix(&tag, &record.provenance);
        let stored_ids = stored.get(&prefix).unwrap_or(&empty);
        match record.outcome {
            Outcome::Indexed | Outcome::AlreadyThere => assert_eq!(
                stored_ids.len(),
                record.documents,
                "{prefix}… is {:?} with {} documents, {} in Elasticsearch",
                record.outcome,
                record.documents,
                stored_ids.len()
            ),
            Outcome::ToFirehose => {
                let held = stored_ids.union(parked.get(&prefix).unwrap_or(&empty)).count();
                assert!(held >= record.documents, "{prefix}… went to Firehose but is in neither place");
            }
            Outcome::Skipped => assert_eq!(record.documents, 0),
            Outcome::Rejected | Outcome::BackToKinesis => {}
        }
    }
}

/// Log lines captured on this thread while the value lives, as JSON objects. One global subscriber routes each
/// line to the buffer of the thread that logged it (every `#[tokio::test]` runs on its own thread): thread-scoped
/// subscribers race with tracing's callsite cache and can miss lines when tests run in parallel.
pub struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { std::cell::RefCell::new(None) };
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(buffer) = capture.borrow().as_ref() {
                buffer.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> Logs {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_max_level(tracing::Level::INFO)
                .with_writer(|| ThreadWriter)
                .init();
        });
        let buffer = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(buffer.clone()));
        Logs { buffer }
    }

    pub fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.buffer.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect()
    }

    /// Lines at `level` whose message starts with `prefix`.
    pub fn matching(&self, level: &str, prefix: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["level"] == level && l["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
            .collect()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        CAPTURE.with(|capture| *capture.borrow_mut() = None);
    }
}

/// Counts per outcome, for compact assertions.
pub fn tally(report: &Report) -> BTreeMap<&'static str, usize> {
    report.summary.outcomes.iter().filter(|(_, n)| **n > 0).map(|(o, n)| (o.name(), *n)).collect()
}

/// Whether python3 can import `modules`. When it cannot, a test that needs them is skipped with a printed reason,
/// unless `REQUIRE_PYTHON_TOOLS` is set (as `make test` sets it, after installing them): then it fails.
pub fn python_has(modules: &[&str]) -> bool {
    let imports = modules.iter().map(|m| format!("import {m}")).collect::<Vec<_>>().join("; ");
    let found = std::process::Command::new("python3").args(["-c", &imports]).output().is_ok_and(|o| o.status.success());
    if !found {
        let why = format!("python3 cannot import {} (make test installs them)", modules.join(", "));
        assert!(std::env::var_os("REQUIRE_PYTHON_TOOLS").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    found
}
