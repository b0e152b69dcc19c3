//! The invariant every integration test checks (`support::check_invariant`) and the test's own reading of records
//! it judges by (`support::reading`), each shown to say what it must: the reading on every kind of data the tests
//! send, the invariant on outcomes doctored to break it.

use std::cmp::Ordering;

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::support::reading::{self, Expected};
use crate::support::*;

/// A record of the test stream carrying `data`.
fn record(data: &[u8]) -> Value {
    json!({
        "eventID": format!("{SHARD}:{}", sequence(0)),
        "eventSourceARN": STREAM_ARN,
        "kinesis": {"sequenceNumber": sequence(0), "data": base64::engine::general_purpose::STANDARD.encode(data)}
    })
}

/// What the test reads in `data`, records allowed 1 MiB decoded.
fn read(data: &[u8]) -> Expected {
    reading::expected(&record(data), 1 << 20)
}

/// The ends of the `_id`s of the documents it holds, and how many of its user records cannot be decoded.
fn holds(expected: Expected) -> (Vec<String>, usize) {
    match expected {
        Expected::Holds { positions, corrupt_parts, .. } => (positions, corrupt_parts),
        other => panic!("holds no documents: {other:?}"),
    }
}

fn positions(data: &[u8]) -> Vec<String> {
    let (positions, corrupt_parts) = holds(read(data));
    assert_eq!(corrupt_parts, 0);
    positions
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const CONTROL: &[u8] = br#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE"}]}"#;

/// A CloudWatch Logs data message of `events` log events.
fn data_message(events: usize) -> Vec<u8> {
    let events: Vec<Value> =
        (0..events).map(|e| json!({"id": e.to_string(), "timestamp": 1, "message": "m"})).collect();
    serde_json::to_vec(
        &json!({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g", "logStream": "s", "logEvents": events}),
    )
    .unwrap()
}

#[test]
fn the_reading_counts_one_document_per_object_line_event_or_text() {
    assert_eq!(positions(br#"{"n":1}"#), ["0"]);
    assert_eq!(positions(b"\xEF\xBB\xBF {\n  \"n\": 1,\n  \"m\": [1,\n2]\n}\n"), ["0"], "pretty-printed, after a BOM");
    assert_eq!(positions(br#"{"latency_ms":3166666e2222}"#), ["0"], "a number beyond f64 passes through");
    assert_eq!(positions(b"plain text\n"), ["0"]);
    assert_eq!(positions(b"two lines\nof text, no object\n"), ["0"], "not NDJSON: no line is an object");
    assert_eq!(positions(b"{\"n\":1}\ntext line\n\n{\"n\":3}\n"), ["0", "1", "2"], "NDJSON: blank lines aside");
    assert_eq!(positions(b"{\"n\":1}\r\n{\"n\":2}"), ["0", "1"], "CRLF, no final newline");
    assert_eq!(positions(&gzip(&data_message(3))), ["0", "1", "2"], "one per log event");
    assert_eq!(positions(&gzip(b"{\"n\":1}")), ["0"]);
    let mut with_control = data_message(2);
    with_control.push(b'\n');
    with_control.extend_from_slice(CONTROL);
    assert_eq!(positions(&with_control), ["0", "1"], "a control message among NDJSON lines adds nothing");
    // What only looks like an envelope is the document it is.
    assert_eq!(positions(br#"{"messageType":3,"logEvents":[{"timestamp":1,"message":"x"}]}"#), ["0"]);
    assert_eq!(positions(br#"{"messageType":"DATA_MESSAGE","logEvents":{"not":"an array"}}"#), ["0"]);
}

#[test]
fn the_reading_says_what_holds_nothing_and_what_cannot_be_decoded() {
    assert!(read(&gzip(CONTROL)).nothing_to_index());
    assert!(read(&data_message(0)).nothing_to_index(), "an envelope without log events");
    assert!(!read(br#"{"n":1}"#).nothing_to_index());
    for corrupt in [
        &b""[..],
        b" \n\t",
        b"caf\xe9",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00garbage",
        &gzip(b""),
        br#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"message":"no timestamp"}]}"#,
        b"{\"n\":1}\n{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[1]}",
    ] {
        assert_eq!(read(corrupt), Expected::Corrupt, "{}", String::from_utf8_lossy(corrupt));
    }
    let mut bad_base64 = record(b"x");
    bad_base64["kinesis"]["data"] = json!("%%% not base64 %%%");
    assert_eq!(reading::expected(&bad_base64, 1 << 20), Expected::Corrupt);
    let no_data = json!({"eventID": format!("{SHARD}:1"), "kinesis": {"sequenceNumber": "1"}});
    assert_eq!(reading::expected(&no_data, 1 << 20), Expected::Corrupt);
    assert_eq!(reading::expected(&record(&gzip(&[b' '; 2000])), 1000), Expected::Corrupt, "over MAX_RECORD_BYTES");
}

#[test]
fn the_reading_splits_kpl_aggregates_into_user_records() {
    let users: [(&str, &[u8]); 5] = [
        ("a", br#"{"n":1}"#),
        ("b", &gzip(CONTROL)),
        ("a", b"caf\xe9"),
        ("c", b"{\"n\":1}\n{\"n\":2}\n"),
        ("a", &gzip(&data_message(1))),
    ];
    let (ids, corrupt_parts) = holds(read(&testkit::kpl::aggregate(&users)));
    assert_eq!(ids, strings(&["0.0", "3.0", "3.1", "4.0"]));
    assert_eq!(corrupt_parts, 1, "the user record that is not UTF-8");

    let mut broken = testkit::kpl::aggregate(&users);
    *broken.last_mut().unwrap() ^= 1;
    assert_eq!(read(&broken), Expected::Corrupt, "a digest that does not match");
    let big = vec![b'a'; 600];
    let aggregate = testkit::kpl::aggregate(&[("a", &big), ("a", &big)]);
    let shared = holds(reading::expected(&record(&aggregate), 1000));
    assert_eq!(shared, (strings(&["0.0"]), 1), "user records share MAX_RECORD_BYTES");

    // Made by AWS's own aggregation library (tests/fixtures/kpl_aggregates.json), not by the tests.
    let fixtures: Value = serde_json::from_str(include_str!("../fixtures/kpl_aggregates.json")).unwrap();
    let fixture = |name: &str| {
        base64::engine::general_purpose::STANDARD.decode(fixtures[name]["aggregate_base64"].as_str().unwrap())
    };
    assert_eq!(positions(&fixture("json_objects").unwrap()), ["0.0", "1.0", "2.0"]);
    assert_eq!(positions(&fixture("explicit_hash_keys").unwrap()), ["0.0", "1.0"]);
    assert_eq!(
        positions(&fixture("mixed_kinds").unwrap()),
        ["0.0", "1.0", "2.0", "2.1", "2.2", "3.0", "4.0", "4.1"],
        "an object, text, three NDJSON lines, gzip, a gzipped envelope of two log events"
    );
    assert_eq!(read(&fixture("bad_key_index").unwrap()), Expected::Corrupt, "a key beyond the key table");

    // A user record with tags (field 4): a shape the tests do not write, so the reading does not guess.
    let with_digest = |body: &[u8]| [&[0xF3, 0x89, 0x9A, 0xC2][..], body, Md5::digest(body).as_slice()].concat();
    let tagged = [0x0a, 1, b'k', 0x1a, 10, 0x08, 0, 0x1a, 1, b'x', 0x22, 3, 0x0a, 1, b't'];
    assert_eq!(read(&with_digest(&tagged)), Expected::Unknown);
    let untagged = [0x0a, 1, b'k', 0x1a, 5, 0x08, 0, 0x1a, 1, b'x'];
    assert_eq!(holds(read(&with_digest(&untagged))), (strings(&["0.0"]), 0), "the same without its tag");
    // Cut short inside a user record, with a digest that matches what is left: the protobuf itself is broken.
    assert_eq!(read(&with_digest(&tagged[..10])), Expected::Corrupt);
}

#[test]
fn the_tests_stream_tag_and_sequence_order_are_what_they_say() {
    // `python3 -c "import hashlib; print(hashlib.md5(b'…app-logs').hexdigest()[:8])"`
    assert_eq!(stream_tag("arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs"), "a23312aa");
    assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
    assert_eq!(compare_sequence_numbers("010", "10"), Ordering::Equal);
    assert_eq!(
        compare_sequence_numbers(
            "49659430837140296285178254290958203049934046452683522050",
            "49659430837140296285178254290958203049934047452683522057"
        ),
        Ordering::Less,
        "beyond u128's 39 digits"
    );
}
