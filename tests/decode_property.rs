//! Property: whatever bytes a Kinesis record carries, decoding never panics, gives exactly one outcome per record
//! and well-formed documents, and never allocates beyond what `MAX_RECORD_BYTES` allows (a gzip bomb included).
//!
//! Its own test binary, so that a counting global allocator measures decoding alone.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use kinesis_es_indexer::Config;
use kinesis_es_indexer::KinesisEventIn;
use kinesis_es_indexer::record::{Batch, BatchDecoder, Decoded};
use proptest::prelude::*;
use testkit::gzip;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::SeqCst) + new_size - layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CAP: usize = 64 * 1024;

/// 64 MiB of zeros in about 64 KiB: decoding it uncapped would allocate a thousand times the cap.
static BOMB: LazyLock<Vec<u8>> = LazyLock::new(|| gzip(&vec![0u8; 64 * 1024 * 1024]));

/// The `data` field of one record: base64 of some bytes, or text that is not base64 at all.
fn record_data() -> impl Strategy<Value = String> {
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let json_object = prop::collection::btree_map(
        "[a-z@_.]{0,8}",
        prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,20}".prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
        ],
        0..6,
    )
    .prop_map(|map| serde_json::to_vec(&map).unwrap());
    let ndjson = prop::collection::vec(json_object.clone(), 1..5).prop_map(|objects| objects.join(&b"\n"[..]));
    let user_record = prop_oneof![
        json_object.clone(),
        ndjson.clone(),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|bytes| gzip(&bytes)),
    ];
    let kpl = (prop::collection::vec(user_record, 0..6), any::<bool>()).prop_map(|(users, corrupt)| {
        let pairs: Vec<(&str, &[u8])> = users.iter().map(|u| ("pk", u.as_slice())).collect();
        let mut aggregate = testkit::kpl::aggregate(&pairs);
        if corrupt {
            *aggregate.last_mut().unwrap() ^= 0xff;
        }
        aggregate
    });
    // A log event's message: text, or a JSON object (merged into its document with preprocessing on).
    let message =
        prop_oneof![".{0,30}".boxed(), json_object.clone().prop_map(|bytes| String::from_utf8(bytes).unwrap()).boxed()];
    let cloudwatch = (prop::collection::vec((any::<i64>(), message), 0..5), any::<bool>()).prop_map(|(events, control)| {
        let events: Vec<serde_json::Value> = events.into_iter().map(|(t, m)| serde_json::json!({"id": "1", "timestamp": t, "message": m})).collect();
        let kind = if control { "CONTROL_MESSAGE" } else { "DATA_MESSAGE" };
        gzip(&serde_json::to_vec(&serde_json::json!({"messageType": kind, "owner": "1", "logGroup": "g", "logStream": "s", "logEvents": events})).unwrap())
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(b64),
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(move |bytes| b64(gzip(&bytes))),
        (prop::collection::vec(any::<u8>(), 1..3000), any::<prop::sample::Index>()).prop_map(move |(bytes, cut)| {
            let packed = gzip(&bytes);
            b64(packed[..cut.index(packed.len())].to_vec())
        }),
        json_object.prop_map(b64),
        ndjson.prop_map(b64),
        kpl.prop_map(b64),
        cloudwatch.prop_map(b64),
        ".{0,64}",
        Just(()).prop_map(|_| base64::engine::general_purpose::STANDARD.encode(&*BOMB)),
    ]
}

fn event(datas: &[String]) -> KinesisEventIn {
    let records: Vec<serde_json::Value> = datas
        .iter()
        .enumerate()
        .map(|(i, data)| serde_json::json!({"eventID": format!("shardId-0:{i}"), "kinesis": {"sequenceNumber": i.to_string(), "data": data, "approximateArrivalTimestamp": 1795334400.5}}))
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_record_data_yields_one_outcome_per_record_within_the_caps(
        datas in prop::collection::vec(record_data(), 1..8),
        preprocessing in any::<bool>(),
        message_json in prop_oneof![Just("merge"), Just("nest"), Just("off")],
    ) {
        // Every preprocessing feature, or none: a filter that drops some documents, static fields, provenance,
        // routing by log group and by a field the generated objects may have.
        let config = Config::from_lookup(|name| match (name, preprocessing) {
            ("ES_URL", _) => Some("http://127.0.0.1:9200".into()),
            ("MAX_RECORD_BYTES", _) => Some(CAP.to_string()),
            ("MESSAGE_JSON", true) => Some(message_json.into()),
            ("FILTER_EXCLUDE", true) => Some("x".into()),
            ("ADD_FIELDS", true) => Some(r#"{"env":"prop","tags":["p"]}"#.into()),
            ("ADD_KINESIS_METADATA", true) => Some("true".into()),
            ("ES_INDEX", true) => Some("logs-{log_group|d}-{field:a|z}-%Y".into()),
            _ => None,
        }).unwrap();
        let event = event(&datas);
        let input: usize = datas.iter().map(String::len).sum();

        let before = LIVE.load(Ordering::SeqCst);
        PEAK.store(before, Ordering::SeqCst);
        let batch = decode_batch(&event, &config);
        let peak = PEAK.load(Ordering::SeqCst) - before;

        prop_assert_eq!(batch.records.len(), datas.len());
        let mut next = 0;
        for (record, decoded) in batch.records.iter().map(|record| &record.decoded).enumerate() {
            if let Decoded::Documents { range, rejected_parts } = decoded {
                prop_assert_eq!(range.start, next, "documents are contiguous and in record order");
                prop_assert!(!range.is_empty() || !rejected_parts.is_empty(), "something to settle");
                next = range.end;
                for document in &batch.documents[range.clone()] {
                    prop_assert_eq!(document.record, record);
                    prop_assert!(!document.source.contains(&b'\n'), "one NDJSON line");
                    let value: serde_json::Value = serde_json::from_slice(&document.source).expect("valid JSON");
                    prop_assert!(value.is_object());
                    prop_assert!(value.get("@timestamp").is_some());
                    let keys = testkit::top_level_names(&document.source);
                    let mut unique = keys.clone();
                    unique.sort();
                    unique.dedup();
                    prop_assert_eq!(unique.len(), keys.len(), "no field twice (Elasticsearch refuses it): {:?}", keys);
                    let index = &*document.index;
                    prop_assert!(!index.is_empty() && index.len() <= 255, "{}", index);
                    prop_assert!(!index.chars().any(|c| c.is_uppercase() || "\\/*?\"<>|,#: ".contains(c)), "{}", index);
                    if preprocessing {
                        prop_assert!(value.get("env").is_some(), "static fields on every document: {}", value);
                        let provenance = value.get("aws.kinesis").or_else(|| value.get("aws").and_then(|aws| aws.get("kinesis")));
                        let own_aws_is_no_object = value.get("aws").is_some_and(|aws| !aws.is_object());
                        prop_assert!(provenance.is_some_and(|p| p["shard_id"] == "shardId-0") || own_aws_is_no_object, "provenance: {}", value);
                    }
                }
            }
        }
        prop_assert_eq!(next, batch.documents.len());
        // Per record: the decoded bytes (at most the cap, up to twice that while a buffer grows) and the document made
        // from them (JSON escaping can make text up to 6 times longer); plus the event's own size.
        let bound = 4 * input + datas.len() * 10 * CAP;
        prop_assert!(peak <= bound, "decoding allocated {} bytes at its peak, more than {}", peak, bound);
    }

    #[test]
    fn kpl_aggregates_of_any_json_objects_round_trip_with_stable_ids(
        objects in prop::collection::vec(prop::collection::btree_map("[a-z]{1,6}", any::<i64>(), 0..4), 1..20)
    ) {
        let config = Config::from_lookup(|name| (name == "ES_URL").then(|| "http://127.0.0.1:9200".to_owned())).unwrap();
        let users: Vec<Vec<u8>> = objects.iter().map(|o| serde_json::to_vec(o).unwrap()).collect();
        let pairs: Vec<(&str, &[u8])> = users.iter().enumerate().map(|(i, u)| (if i % 2 == 0 { "a" } else { "b" }, u.as_slice())).collect();
        let data = base64::engine::general_purpose::STANDARD.encode(testkit::kpl::aggregate(&pairs));
        let event = event(&[data]);

        let batch = decode_batch(&event, &config);
        let again = decode_batch(&event, &config);

        prop_assert_eq!(batch.documents.len(), objects.len());
        for (i, (document, object)) in batch.documents.iter().zip(&objects).enumerate() {
            let mut value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&document.source).unwrap();
            value.remove("@timestamp");
            let expected: serde_json::Map<String, serde_json::Value> = object.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
            prop_assert_eq!(value, expected);
            let id = document.id.clone().unwrap();
            prop_assert!(id.ends_with(&format!(":shardId-0:0:{i}.0")), "{}", id);
        }
        let ids: Vec<_> = batch.documents.iter().map(|d| d.id.clone()).collect();
        let ids_again: Vec<_> = again.documents.iter().map(|d| d.id.clone()).collect();
        prop_assert_eq!(ids, ids_again, "the same on every redelivery");
    }
}

/// Every record of the event decoded, as the indexer decodes them while it sends.
fn decode_batch(event: &KinesisEventIn, config: &Config) -> Batch {
    let mut decoder = BatchDecoder::new(event, config);
    let mut documents = Vec::new();
    while decoder.decode_next_into(&mut documents) {}
    decoder.finish(documents)
}
