//! Shared test support: doubles wired to real `Deps`, Kinesis events built from payloads, redelivery as Lambda does
//! it, log capture, and the invariant every test checks.
//!
//! Two test binaries use it: `pipeline`, as a module, and `fleet` (`tests/fleet/main.rs`), which includes this file
//! by `#[path]`. Test binaries share source no other way short of a crate of their own, and this code needs the
//! indexer's crate (`Deps`, `Config`), which the `testkit` crate does not depend on.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use kinesis_es_indexer::config::DocIdMode;
use kinesis_es_indexer::firehose::Firehose;
use kinesis_es_indexer::handler::Report;
use kinesis_es_indexer::{Config, Deps, KinesisEventIn, Outcome};
use serde_json::{Value, json};
pub use testkit::gzip;
use testkit::{EsDouble, FirehoseDouble};

// A child of `support` (not of the test crate) so that the fleet, which includes this file by path, has it too.
#[path = "reading.rs"]
pub mod reading;
pub use reading::{Expected, compare_sequence_numbers, stream_tag};

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

    /// The same harness, its dead letter (configured with `DEAD_LETTER_BUCKET`) writing to `s3`.
    pub fn with_dead_letter(mut self, s3: &testkit::S3Double) -> Harness {
        let place = self.deps.config.dead_letter.clone().expect("DEAD_LETTER_BUCKET is set");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("AKIDTEST", "test-secret", None, None, "test"))
            .endpoint_url(s3.url())
            .force_path_style(true)
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        self.deps.dead_letter = Some(kinesis_es_indexer::dead_letter::DeadLetter::new(client, place));
        self
    }

    /// Handles `event` with a deadline `budget` from now.
    pub async fn deliver_within(&self, event: &KinesisEventIn, budget: Duration) -> Report {
        kinesis_es_indexer::handle(event, tokio::time::Instant::now() + budget, &self.deps).await
    }

    /// Handles `event` with a generous deadline and checks the invariant.
    pub async fn deliver(&self, event: &KinesisEventIn) -> Report {
        self.deliver_checked(event, Duration::from_secs(60)).await.unwrap_or_else(|broken| panic!("{broken}"))
    }

    /// Handles `event` with a deadline `budget` from now and checks the invariant on what the invocation left in
    /// the doubles, its response and its log lines: the report, or what the invariant found broken.
    pub async fn deliver_checked(&self, event: &KinesisEventIn, budget: Duration) -> Result<Report, String> {
        deliver_checked_to(&self.es, &self.firehose, &self.deps, event, budget).await
    }
}

/// `Harness::deliver_checked` for an instance (`deps`, its own warm state) of a fleet sharing the doubles.
pub async fn deliver_checked_to(
    es: &EsDouble,
    firehose: &FirehoseDouble,
    deps: &Deps,
    event: &KinesisEventIn,
    budget: Duration,
) -> Result<Report, String> {
    let before = Before::now(firehose);
    let deadline = tokio::time::Instant::now() + budget;
    let (report, log) = logged_during(kinesis_es_indexer::handle(event, deadline, deps)).await;
    let seen = Seen { es, firehose, before, log: &log };
    check_invariant(event, &report, &seen, &deps.config)?;
    Ok(report)
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
            config.firehose.max_attempts,
            double.url(),
        )
    });
    let warm = std::sync::Arc::new(kinesis_es_indexer::handler::WarmState::new(&config));
    Deps { config, elasticsearch, firehose, dead_letter: None, secret: None, warm }
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
    event_on(SHARD, first, payloads)
}

/// Like `event_from`, for records `first..` of another shard of the stream.
pub fn event_on(shard: &str, first: usize, payloads: &[Vec<u8>]) -> KinesisEventIn {
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
                "eventID": format!("{shard}:{}", sequence(i)),
                "eventSourceARN": STREAM_ARN
            })
        })
        .collect();
    parse_event(&json!({ "Records": records }).to_string())
}

/// The JSON text Lambda sends for an event of these records (each one JSON value), in order.
pub fn body_of<R: AsRef<str>>(records: impl IntoIterator<Item = R>) -> String {
    let records: Vec<R> = records.into_iter().collect();
    let records: Vec<&str> = records.iter().map(AsRef::as_ref).collect();
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}

/// An event of these records (each one JSON value), in order.
pub fn event_of<R: AsRef<str>>(records: impl IntoIterator<Item = R>) -> KinesisEventIn {
    parse_event(&body_of(records))
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
        .min_by(|a, b| compare_sequence_numbers(a, b))?;
    let start =
        report.records.iter().position(|r| r.record.provenance.sequence_number.as_deref() == Some(lowest.as_str()))?;
    Some(event_of(event.records_json().into_iter().skip(start)))
}

/// `event` with each record (its position, its JSON) changed by `edit`.
pub fn edit_records(event: &KinesisEventIn, mut edit: impl FnMut(usize, &mut Value)) -> KinesisEventIn {
    let records = event.records_json().into_iter().enumerate().map(|(i, raw)| {
        let mut record: Value = serde_json::from_str(raw).expect("a record of JSON");
        edit(i, &mut record);
        record.to_string()
    });
    event_of(records)
}

/// The outcome of every record, in order.
pub fn outcomes(report: &Report) -> Vec<Outcome> {
    report.records.iter().map(|r| r.fate.outcome).collect()
}

/// The `_id` of document `position` of record `i` (in `ES_DOC_ID=kinesis` mode): `stream:shard:sequence:position`.
pub fn doc_id(i: usize, position: impl std::fmt::Display) -> String {
    format!("{}:{SHARD}:{}:{position}", stream_tag(STREAM_ARN), sequence(i))
}

/// Where the Firehose double stood before an invocation: what it holds beyond that is the invocation's doing.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    pub parked: usize,
    pub offered: usize,
}

impl Before {
    /// Where `firehose` stands now.
    pub fn now(firehose: &FirehoseDouble) -> Before {
        Before { parked: firehose.records().len(), offered: firehose.offered().len() }
    }
}

/// What an invocation left behind, as the doubles hold it and its log says it.
pub struct Seen<'a> {
    pub es: &'a EsDouble,
    pub firehose: &'a FirehoseDouble,
    pub before: Before,
    pub log: &'a [Value],
}

/// Returns `Err` with the formatted message when the condition does not hold.
macro_rules! check {
    ($condition:expr, $($why:tt)+) => {
        if !$condition {
            return Err(format!($($why)+));
        }
    };
}

/// The ERROR lines that say a record, a part of it or one of its documents is rejected; each names the record by
/// `sequence_number`, a document's line its `doc_id` too.
const RECORD_REJECTED: &str = "Record rejected";
const PART_REJECTED: &str = "Record part rejected";
const DOCUMENT_REJECTED: &str = "Document rejected";

/// Firehose's largest record (1,000 KiB): the indexer refuses a larger document without offering it.
const FIREHOSE_RECORD_BYTES: usize = 1_000 * 1024;

/// A record of the batch as Kinesis sent it, and what the test reads its data to hold.
struct Sent {
    shard: String,
    sequence: Option<String>,
    stream: String,
    expected: Expected,
}

/// This invocation's rejection lines about one record.
#[derive(Default)]
struct Rejections<'a> {
    record: bool,
    /// The `error_type` of each part rejected.
    parts: Vec<&'a str>,
    /// The `doc_id` of each document Elasticsearch rejected (`none` without `_id`s).
    documents: Vec<&'a str>,
}

impl Rejections<'_> {
    fn any(&self) -> bool {
        self.record || !self.parts.is_empty() || !self.documents.is_empty()
    }
}

/// Every record ends in exactly one place, and that place holds what its data makes — judged from the event itself
/// (the test's own reading of each record's data, `reading::expected`), what the doubles hold, what the response
/// tells Lambda and what the log says, not from the report's own bookkeeping:
///
/// - the response names only records of the batch, each once; Lambda redelivers a shard from the lowest one;
/// - a record Lambda will redeliver is not rejected (its rejection is logged on the delivery that settles it), nor
///   parked in Firehose by this invocation, unless Firehose refused in this invocation a document of a record of
///   its shard at or before it (README: "explained twice by design");
/// - a record that cannot be decoded is rejected with its `Record rejected` line, or redelivered; it has no
///   document anywhere;
/// - a record with nothing to index (a control message) is skipped, or redelivered, with no document anywhere; no
///   other record is skipped;
/// - a record that holds documents is indexed or already there with exactly those documents in Elasticsearch;
///   parked with each of them in Elasticsearch, in Firehose or rejected by Elasticsearch with its ERROR line, some
///   parked by this invocation; rejected only when Elasticsearch rejected one of them (or a user record of it
///   cannot be decoded, or a document has no `ES_DOC_ID` field), each of the others in Elasticsearch; or
///   redelivered; and the report counts as many documents as the test reads;
/// - so a record not redelivered is settled: written, parked, rejected with its ERROR line, or skipped.
///
/// Where the test cannot read a record (`Expected::Unknown`), the report's count of its documents stands in for
/// that record. Where `ES_DOC_ID` is not `kinesis`, `_id`s cannot be traced to their records: only the response,
/// the log and the report's count are checked.
pub fn check_invariant(event: &KinesisEventIn, report: &Report, seen: &Seen, config: &Config) -> Result<(), String> {
    use Outcome::*;
    check!(report.records.len() == event.len(), "{} outcomes for {} records", report.records.len(), event.len());
    let counted: usize = report.summary.outcomes.values().sum();
    check!(counted == event.len(), "the summary counts {counted} records of {}", event.len());
    let kinesis_ids = config.documents.doc_id == DocIdMode::Kinesis;
    let field_ids = matches!(config.documents.doc_id, DocIdMode::Field(_));

    let (include, exclude) = config.preprocessing.filter.patterns();
    let reading = reading::Reading::filtered(config.documents.max_record_bytes, include, exclude);
    let sent: Vec<Sent> = event
        .records_json()
        .into_iter()
        .map(|raw| {
            let record: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
            let shard = record["eventID"].as_str().and_then(|id| id.split_once(':')).map_or("", |(s, _)| s);
            // A record without its shard in `eventID` is named by a shard the test does not know: not read.
            let expected = match shard.is_empty() {
                true => Expected::Unknown,
                false => reading::expected_by(&record, &reading),
            };
            Sent {
                shard: shard.to_owned(),
                sequence: record["kinesis"]["sequenceNumber"].as_str().map(str::to_owned),
                stream: record["eventSourceARN"].as_str().unwrap_or_default().to_owned(),
                expected,
            }
        })
        .collect();

    // A filtered document is the only one that may be nowhere, and it is counted: as many as the test drops.
    if sent.iter().all(|sent| sent.expected != Expected::Unknown) {
        let dropped: usize = sent
            .iter()
            .map(|sent| match &sent.expected {
                Expected::Holds { filtered, .. } => *filtered,
                _ => 0,
            })
            .sum();
        check!(
            report.summary.documents_filtered == dropped,
            "the summary counts {} documents filtered, the test's reading drops {dropped}",
            report.summary.documents_filtered
        );
    }

    // What Lambda redelivers: each shard from the lowest sequence number the response names.
    let named: Vec<String> =
        report.response().batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect();
    let mut redelivered_from: HashMap<&str, &str> = HashMap::new();
    for (position, sequence) in named.iter().enumerate() {
        check!(!named[..position].contains(sequence), "the response names {sequence} twice");
        let shard = sent.iter().find(|s| s.sequence.as_deref() == Some(sequence)).map(|s| s.shard.as_str());
        let Some(shard) = shard else {
            return Err(format!("the response names {sequence}, not a record of the batch"));
        };
        let from = redelivered_from.entry(shard).or_insert(sequence);
        if compare_sequence_numbers(sequence, from).is_lt() {
            *from = sequence;
        }
    }
    let redelivered = |shard: &str, sequence: &str| {
        redelivered_from.get(shard).is_some_and(|from| compare_sequence_numbers(sequence, from).is_ge())
    };

    // The rejections this invocation logged, by sequence number.
    let mut rejections: HashMap<&str, Rejections> = HashMap::new();
    for line in seen.log.iter().filter(|line| line["level"] == "ERROR") {
        let (Some(message), Some(sequence)) = (line["message"].as_str(), line["sequence_number"].as_str()) else {
            continue;
        };
        if message.starts_with(RECORD_REJECTED) {
            rejections.entry(sequence).or_default().record = true;
        } else if message.starts_with(PART_REJECTED) {
            rejections.entry(sequence).or_default().parts.push(line["error_type"].as_str().unwrap_or_default());
        } else if message.starts_with(DOCUMENT_REJECTED) {
            rejections.entry(sequence).or_default().documents.push(line["doc_id"].as_str().unwrap_or_default());
        }
    }

    // `_id`s by the record they name (`stream:shard:sequence:`).
    let by_record = |ids: Vec<String>| {
        let mut map: HashMap<String, HashSet<String>> = HashMap::new();
        for id in ids {
            if let Some((prefix, _)) = id.rsplit_once(':') {
                map.entry(format!("{prefix}:")).or_default().insert(id.clone());
            }
        }
        map
    };
    let target_id = |data: &[u8]| {
        let document: Value = serde_json::from_slice(data).ok()?;
        document["es_target"]["_id"].as_str().map(str::to_owned)
    };
    let parked_records = seen.firehose.records();
    let offered_now =
        by_record(seen.firehose.offered()[seen.before.offered..].iter().filter_map(|data| target_id(data)).collect());
    let parked_now =
        by_record(parked_records[seen.before.parked..].iter().filter_map(|data| target_id(data)).collect());
    let stored = by_record(seen.es.documents().into_iter().map(|(_, id, _)| id).collect());
    let parked = by_record(parked_records.iter().filter_map(|data| target_id(data)).collect());
    let (empty, none) = (HashSet::new(), Rejections::default());
    let prefix_of = |sent: &Sent, sequence: &str| format!("{}:{}:{sequence}:", stream_tag(&sent.stream), sent.shard);

    // Where a shard's records may be parked in Firehose and yet redelivered: from its first (lowest sequence number)
    // record of which Firehose refused a document in this invocation. Firehose cannot give back what it took: the
    // record of a refused document goes back to Kinesis, and Lambda redelivers it and every record after it, parts
    // of which may be parked already. Before it, nothing that goes back was offered to Firehose at all: a record
    // after one going back for the cluster's sake is left to the redelivery, not parked (`route::fates`).
    //
    // The double sees a refusal as a document offered and not taken. It cannot see a document over Firehose's
    // 1,000 KiB record limit, refused without being offered: a record the response names that may make one (JSON
    // escapes a byte of its data to at most 6, plus its `_id` and index), or that the test cannot read, counts as
    // refused too. Still unseen: a call Firehose took but answered after the indexer stopped waiting; no test's
    // double answers late.
    let mut refused_from: HashMap<&str, &str> = HashMap::new();
    for sent in &sent {
        let Some(sequence) = sent.sequence.as_deref() else { continue };
        let prefix = prefix_of(sent, sequence);
        let taken = parked_now.get(&prefix).unwrap_or(&empty);
        let refused_seen = offered_now.get(&prefix).is_some_and(|offered| !offered.is_subset(taken));
        let may_exceed_the_limit = match &sent.expected {
            Expected::Unknown => true,
            Expected::Corrupt => false,
            Expected::Holds { largest, .. } => largest * 6 + 1024 > FIREHOSE_RECORD_BYTES,
        };
        if refused_seen || (may_exceed_the_limit && named.iter().any(|n| n == sequence)) {
            let from = refused_from.entry(&sent.shard).or_insert(sequence);
            if compare_sequence_numbers(sequence, from).is_lt() {
                *from = sequence;
            }
        }
    }

    for (position, (claim, sent)) in report.records.iter().zip(&sent).enumerate() {
        let outcome = claim.fate.outcome;
        let claimed_documents = claim.record.documents().len();
        let Some(sequence) = sent.sequence.as_deref() else {
            // Too malformed to carry a sequence number: it cannot be reported back, only rejected.
            check!(outcome == Rejected, "record {position} has no sequence number yet is {outcome:?}");
            continue;
        };
        let again = redelivered(&sent.shard, sequence);
        let lines = rejections.get(sequence).unwrap_or(&none);
        check!(
            !(outcome == Rejected && again),
            "record {position} ({sequence}) is rejected, yet Lambda redelivers it: its rejection would be logged twice"
        );
        check!(
            outcome != Rejected || lines.any(),
            "record {position} ({sequence}) is rejected without an ERROR line saying why"
        );

        // Its outcome against what the test reads in its data, whatever `ES_DOC_ID` is.
        match &sent.expected {
            Expected::Unknown => {}
            Expected::Corrupt => {
                check!(
                    matches!(outcome, Rejected | BackToKinesis),
                    "record {position} ({sequence}) cannot be decoded (the test reads its data as corrupt), yet is \
                     {outcome:?}"
                );
                check!(
                    outcome != Rejected || lines.record,
                    "record {position} ({sequence}) cannot be decoded, yet is rejected without its `{RECORD_REJECTED}` \
                     line"
                );
            }
            expected if expected.nothing_to_index() => check!(
                matches!(outcome, Skipped | BackToKinesis),
                "record {position} ({sequence}) holds nothing to index, yet is {outcome:?}"
            ),
            Expected::Holds { positions, corrupt_parts, .. } => {
                check!(
                    outcome != Skipped,
                    "record {position} ({sequence}) is skipped, yet the test reads documents in its data: {}",
                    positions.len()
                );
                check!(
                    !matches!(outcome, Indexed | AlreadyThere) || *corrupt_parts == 0,
                    "record {position} ({sequence}) is {outcome:?}, yet {corrupt_parts} of its user records cannot \
                     be decoded"
                );
                // Why a record that holds documents may be rejected: Elasticsearch rejected one of them, a user record
                // of it cannot be decoded, or a document lacks its `ES_DOC_ID` field.
                let why = !lines.documents.is_empty()
                    || (*corrupt_parts > 0 && !lines.parts.is_empty())
                    || (field_ids && lines.parts.contains(&"no_document_id"));
                check!(
                    outcome != Rejected || why,
                    "record {position} ({sequence}) is rejected, yet Elasticsearch rejected none of the {} documents \
                     the test reads in its data (no `{DOCUMENT_REJECTED}` line for it)",
                    positions.len()
                );
            }
        }

        if kinesis_ids {
            let prefix = prefix_of(sent, sequence);
            let [stored, parked, parked_now] =
                [&stored, &parked, &parked_now].map(|by| by.get(&prefix).unwrap_or(&empty));
            let after_a_refusal = refused_from
                .get(sent.shard.as_str())
                .is_some_and(|from| compare_sequence_numbers(sequence, from).is_ge());
            check!(
                !again || parked_now.is_empty() || after_a_refusal,
                "record {position} ({sequence}) goes back to Kinesis, yet this invocation parked {} of its documents \
                 in Firehose, which refused nothing of its shard at or before it",
                parked_now.len()
            );
            match &sent.expected {
                // Not read by the test: the report's count stands in.
                Expected::Unknown => match outcome {
                    Indexed | AlreadyThere => check!(
                        stored.len() == claimed_documents,
                        "record {position} ({sequence}) is {outcome:?} with {} documents, {} in Elasticsearch",
                        claimed_documents,
                        stored.len()
                    ),
                    ToFirehose => check!(
                        stored.union(parked).count() >= claimed_documents,
                        "record {position} ({sequence}) went to Firehose with {} documents, {} in Elasticsearch or \
                         Firehose",
                        claimed_documents,
                        stored.union(parked).count()
                    ),
                    Skipped => check!(
                        stored.is_empty() && parked.is_empty(),
                        "record {position} ({sequence}) is skipped, yet has {} documents in Elasticsearch and {} in \
                         Firehose",
                        stored.len(),
                        parked.len()
                    ),
                    Rejected | BackToKinesis => {}
                },
                Expected::Holds { positions, .. } if !sent.expected.nothing_to_index() => {
                    let ids: HashSet<String> = positions.iter().map(|p| format!("{prefix}{p}")).collect();
                    let rejected: HashSet<String> = lines.documents.iter().map(|id| id.to_string()).collect();
                    let strays: BTreeSet<&String> = rejected.difference(&ids).collect();
                    check!(
                        strays.is_empty(),
                        "record {position} ({sequence}): Elasticsearch rejected {strays:?}, not documents the test \
                         reads in its data"
                    );
                    // The documents none of `held` has, in order.
                    let missing = |held: &[&HashSet<String>]| -> BTreeSet<&String> {
                        ids.iter().filter(|id| !held.iter().any(|h| h.contains(*id))).collect()
                    };
                    match outcome {
                        Indexed | AlreadyThere => check!(
                            stored == &ids,
                            "record {position} ({sequence}) is {outcome:?}, yet Elasticsearch holds {} of the {} \
                             documents the test reads in its data (missing {:?}, not in its data {:?})",
                            stored.intersection(&ids).count(),
                            ids.len(),
                            missing(&[stored]),
                            stored.difference(&ids).collect::<BTreeSet<_>>()
                        ),
                        ToFirehose => {
                            check!(
                                !parked_now.is_empty(),
                                "record {position} ({sequence}) went to Firehose, yet this invocation parked none of \
                                 its documents there"
                            );
                            let missing = missing(&[stored, parked, &rejected]);
                            check!(
                                missing.is_empty(),
                                "record {position} ({sequence}) went to Firehose, yet {missing:?} of the documents the \
                                 test reads in its data are neither in Elasticsearch, in Firehose nor rejected"
                            );
                        }
                        Rejected => {
                            let missing = missing(&[stored, &rejected]);
                            check!(
                                missing.is_empty(),
                                "record {position} ({sequence}) is rejected, yet {missing:?} of the documents the test \
                                 reads in its data are neither in Elasticsearch nor rejected by it"
                            );
                        }
                        Skipped | BackToKinesis => {}
                    }
                }
                // Cannot be decoded, or holds nothing to index.
                _ => check!(
                    stored.is_empty() && parked.is_empty(),
                    "record {position} ({sequence}) has nothing to index by the test's reading of its data, yet has {} \
                     documents in Elasticsearch and {} in Firehose",
                    stored.len(),
                    parked.len()
                ),
            }
            let skippable = sent.expected == Expected::Unknown || sent.expected.nothing_to_index();
            let settled = !stored.is_empty() || !parked.is_empty() || lines.any() || (outcome == Skipped && skippable);
            check!(
                again || settled,
                "record {position} ({sequence}) is lost: not redelivered, and neither written, parked, rejected with \
                 its ERROR line nor skipped ({outcome:?})"
            );
        }

        // The report's own count, against the test's (a document without its `ES_DOC_ID` field is none).
        if let Expected::Holds { positions, .. } = &sent.expected
            && !field_ids
        {
            check!(
                claimed_documents == positions.len(),
                "record {position} ({sequence}) is reported with {} documents, the test reads {} in its data",
                claimed_documents,
                positions.len()
            );
        }
    }
    Ok(())
}

/// The log lines `invocation` writes (the handler's, on this thread), whether or not the test captures logs itself.
pub async fn logged_during<T>(invocation: impl std::future::Future<Output = T>) -> (T, Vec<Value>) {
    install_log_capture();
    let captured = CAPTURE.with(|capture| capture.borrow().clone());
    let buffer = captured.clone().unwrap_or_default();
    let mark = buffer.lock().unwrap().len();
    if captured.is_none() {
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(buffer.clone()));
    }
    let output = invocation.await;
    if captured.is_none() {
        CAPTURE.with(|capture| *capture.borrow_mut() = None);
    }
    let text = String::from_utf8(buffer.lock().unwrap()[mark..].to_vec()).unwrap();
    (output, text.lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect())
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

/// The one global subscriber that routes each line to the capturing buffer of the thread that logged it.
fn install_log_capture() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(|| ThreadWriter)
            .init();
    });
}

impl Logs {
    pub fn capture() -> Logs {
        install_log_capture();
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
