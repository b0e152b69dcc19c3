//! Fuzz target: arbitrary bytes as a Kinesis record's data, and as the event itself. Decoding must not panic, must
//! give exactly one outcome per record, and every document must be one line of JSON object.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use kinesis_es_indexer::Config;
use kinesis_es_indexer::KinesisEventIn;
use kinesis_es_indexer::record::{Batch, BatchDecoder, Decoded};
use libfuzzer_sys::fuzz_target;

static CONFIG: LazyLock<Config> = LazyLock::new(|| config(false));
/// Every preprocessing feature on: structured messages, a filter, static fields, provenance, routing by source.
static PREPROCESSED: LazyLock<Config> = LazyLock::new(|| config(true));

fn config(preprocessing: bool) -> Config {
    Config::from_lookup(|name| match (name, preprocessing) {
        ("ES_URL", _) => Some("http://127.0.0.1:9200".into()),
        ("MAX_RECORD_BYTES", _) => Some("65536".into()),
        ("FILTER_EXCLUDE", true) => Some("x{2}".into()),
        ("ADD_FIELDS", true) => Some(r#"{"env":"fuzz","tags":["a"]}"#.into()),
        ("ADD_KINESIS_METADATA", true) => Some("true".into()),
        ("ES_INDEX", true) => Some("logs-{log_group|d}-{field:a.b|z}-%Y".into()),
        _ => None,
    })
    .expect("fuzz config")
}

fn check(event: &KinesisEventIn) {
    check_with(event, &CONFIG);
    check_with(event, &PREPROCESSED);
}

fn check_with(event: &KinesisEventIn, config: &Config) {
    let batch = decode_batch(event, config);
    assert_eq!(batch.records.len(), event.len(), "one outcome per record");
    let mut next = 0;
    for decoded in batch.records.iter().map(|record| &record.decoded) {
        if let Decoded::Documents { range, rejected_parts } = decoded {
            assert_eq!(range.start, next);
            assert!(!range.is_empty() || !rejected_parts.is_empty(), "something to settle");
            next = range.end;
        }
    }
    assert_eq!(next, batch.documents.len());
    for document in &batch.documents {
        assert!(!document.source.contains(&b'\n'));
        // JSON as RFC 8259 defines it: numbers have no range (`1e999` is valid; Elasticsearch judges it), so the check
        // is the grammar, not `serde_json::Value`, which refuses numbers beyond f64.
        assert!(document.source.starts_with(b"{"), "a document is an object");
        serde_json::from_slice::<serde::de::IgnoredAny>(&document.source).expect("a document is JSON");
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as one record's data, between two good records.
    let good = base64::engine::general_purpose::STANDARD.encode(br#"{"ok":true}"#);
    let fuzzed = base64::engine::general_purpose::STANDARD.encode(data);
    let records = [&good, &fuzzed, &good]
        .iter()
        .enumerate()
        .map(|(i, d)| format!(r#"{{"eventID":"shardId-0:{i}","kinesis":{{"sequenceNumber":"{i}","data":"{d}","approximateArrivalTimestamp":1.5}}}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let event: KinesisEventIn = serde_json::from_str(&format!(r#"{{"Records":[{records}]}}"#)).expect("a well-formed event");
    check(&event);

    // The bytes as the event itself, as Lambda's body: whatever reads as an event must decode record by record.
    if let Ok(event) = KinesisEventIn::from_body(data.to_vec()) {
        check(&event);
    }
});

/// Every record of the event decoded, as the indexer decodes them while it sends.
fn decode_batch(event: &KinesisEventIn, config: &Config) -> Batch {
    let mut decoder = BatchDecoder::new(event, config);
    let mut documents = Vec::new();
    while decoder.decode_next_into(&mut documents) {}
    decoder.finish(documents)
}
