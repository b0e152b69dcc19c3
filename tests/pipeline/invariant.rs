//! The invariant every integration test checks (`support::check_invariant`) and the test's own reading of records
//! it judges by (`support::reading`), each shown to say what it must: the reading on every kind of data the tests
//! send, the invariant on outcomes doctored to break it.

use std::cmp::Ordering;
use std::time::Duration;

use base64::Engine;
use kinesis_es_indexer::handler::Report;
use kinesis_es_indexer::record::Decoded;
use kinesis_es_indexer::{KinesisEventIn, Outcome};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use testkit::{Fault, FirehoseFault};

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

// The invariant, fed doctored outcomes. Each case runs the real handler against the doubles, checks that the
// invariant passes what it really did (the control), then changes one thing the way a broken indexer would (the
// event it was given, its report, its log) and expects the invariant to say so. Each notes whether the invariant as
// it was before it read the records' data itself would have caught it.

/// What the real handler made of `event`: its report, its log lines, and where Firehose stood before.
async fn run(h: &Harness, event: &KinesisEventIn) -> (Report, Vec<Value>, Before) {
    let before = Before::now(&h.firehose);
    let (report, log) = logged_during(h.deliver_within(event, Duration::from_secs(60))).await;
    (report, log, before)
}

/// The invariant's verdict on `report` and `log` as the outcome of `event`, given what the doubles hold.
fn judge(h: &Harness, event: &KinesisEventIn, report: &Report, log: &[Value], before: Before) -> Result<(), String> {
    check_invariant(event, report, &Seen { es: &h.es, firehose: &h.firehose, before, log }, &h.deps.config)
}

/// `report` with record `i` reported `outcome`, its summary counting it so.
fn reported(report: &Report, i: usize, outcome: Outcome) -> Report {
    let mut report = report.clone();
    let was = std::mem::replace(&mut report.records[i].fate.outcome, outcome);
    *report.summary.outcomes.entry(was).or_default() -= 1;
    *report.summary.outcomes.entry(outcome).or_default() += 1;
    report
}

/// Asserts the invariant broke, saying `fragment`.
fn caught(verdict: Result<(), String>, fragment: &str) {
    match verdict {
        Ok(()) => panic!("the invariant let through what should break it ({fragment})"),
        Err(broken) => {
            assert!(broken.contains(fragment), "caught, but not as expected: {broken}\nexpected: {fragment}")
        }
    }
}

#[tokio::test]
async fn a_dropped_ndjson_line_is_caught() {
    let h = Harness::start(&[]).await;
    let three_lines = event(&[b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n".to_vec()]);
    let (report, log, before) = run(&h, &three_lines).await;
    assert_eq!(outcomes(&report), [Outcome::Indexed]);
    assert_eq!(judge(&h, &three_lines, &report, &log, before), Ok(()));

    // What an indexer whose decoder drops an NDJSON line leaves: a record of three lines reported indexed, its
    // report counting the two documents it wrote. (The old invariant took the count from the report: let through.)
    let h = Harness::start(&[]).await;
    let (report, log, before) = run(&h, &event(&[b"{\"n\":1}\n{\"n\":2}\n".to_vec()])).await;
    assert_eq!(
        (outcomes(&report), report.records[0].record.documents().len(), h.es.count()),
        (vec![Outcome::Indexed], 2, 2)
    );
    caught(
        judge(&h, &three_lines, &report, &log, before),
        &format!("record 0 ({}) is Indexed, yet Elasticsearch holds 2 of the 3 documents the test reads", sequence(0)),
    );
}

#[tokio::test]
async fn a_good_record_reported_skipped_is_caught() {
    let h = Harness::start(&[]).await;
    let payloads = vec![br#"{"n":0}"#.to_vec(), gzip(CONTROL)];
    let (report, log, before) = run(&h, &event(&payloads)).await;
    assert_eq!(outcomes(&report), [Outcome::Indexed, Outcome::Skipped]);
    assert_eq!(judge(&h, &event(&payloads), &report, &log, before), Ok(()));

    // What an indexer that reads a good JSON record as nothing to index leaves: the record skipped, nothing
    // written. (The old invariant took "skipped" from the report: let through.)
    let sent = event(&[br#"{"n":0}"#.to_vec(), br#"{"n":1}"#.to_vec()]);
    caught(
        judge(&h, &sent, &report, &log, before),
        &format!("record 1 ({}) is skipped, yet the test reads documents in its data: 1", sequence(1)),
    );
}

#[tokio::test]
async fn a_parked_record_also_redelivered_is_caught_unless_firehose_refused_one_at_or_before_it() {
    // The cluster asks for later: every record is parked in Firehose, which takes everything.
    let h = Harness::start(&[]).await;
    h.es.set_write_queue(Some(0));
    let parked = event(&plain_payloads(3));
    let (report, log, before) = run(&h, &parked).await;
    assert_eq!(outcomes(&report), [Outcome::ToFirehose; 3]);
    assert_eq!(judge(&h, &parked, &report, &log, before), Ok(()));
    // Reported back as well: Lambda redelivers a record Firehose holds. (The old invariant caught this.)
    caught(
        judge(&h, &parked, &reported(&report, 1, Outcome::BackToKinesis), &log, before),
        &format!(
            "record 1 ({}) goes back to Kinesis, yet this invocation parked 1 of its documents in Firehose, which \
             refused nothing of its shard at or before it",
            sequence(1)
        ),
    );

    // Firehose refuses the third record's document: it goes back, and Lambda redelivers the records after it too,
    // though Firehose holds theirs (it cannot give them back). That is the indexer's true behaviour, and passes.
    let h = Harness::start(&[("FIREHOSE_MAX_ATTEMPTS", "1")]).await;
    h.es.set_write_queue(Some(0));
    h.firehose.push_fault(FirehoseFault::FailEntries(vec![2]));
    let refused = event(&plain_payloads(5));
    let (report, log, before) = run(&h, &refused).await;
    use Outcome::{BackToKinesis, ToFirehose};
    assert_eq!(outcomes(&report), [ToFirehose, ToFirehose, BackToKinesis, ToFirehose, ToFirehose]);
    assert_eq!(redelivery(&refused, &report).map(|again| again.len()), Some(3), "parked and redelivered: 3, 4");
    assert_eq!(judge(&h, &refused, &report, &log, before), Ok(()));
    // A record before the refused one reported back too: nothing of its shard was refused at or before it. (The old
    // invariant excused every record once Firehose refused anything: let through.)
    caught(
        judge(&h, &refused, &reported(&report, 0, BackToKinesis), &log, before),
        &format!(
            "record 0 ({}) goes back to Kinesis, yet this invocation parked 1 of its documents in Firehose, which \
             refused nothing of its shard at or before it",
            sequence(0)
        ),
    );
}

#[tokio::test]
async fn a_rejection_without_its_line_or_not_by_elasticsearch_is_caught() {
    let h = Harness::start(&[]).await;
    h.es.map_field("logs-2026.11.22", "latency_ms", "long");
    let payloads = json_payloads(&[json!({"latency_ms": 1}), json!({"latency_ms": "slow"})]);
    let (report, log, before) = run(&h, &event(&payloads)).await;
    assert_eq!(outcomes(&report), [Outcome::Indexed, Outcome::Rejected]);
    assert_eq!(judge(&h, &event(&payloads), &report, &log, before), Ok(()));

    // The rejection's ERROR line missing. (The old invariant caught this.)
    let without: Vec<Value> = log
        .iter()
        .filter(|line| !line["message"].as_str().unwrap_or_default().starts_with("Document rejected"))
        .cloned()
        .collect();
    assert_eq!(without.len() + 1, log.len());
    caught(
        judge(&h, &event(&payloads), &report, &without, before),
        &format!("record 1 ({}) is rejected without an ERROR line saying why", sequence(1)),
    );

    // What an indexer that cannot decode a good record leaves: the record rejected with a `Record rejected` line,
    // nothing written. (The old invariant took any ERROR line: let through.)
    let h = Harness::start(&[]).await;
    let (report, log, before) = run(&h, &event(&[br#"{"n":0}"#.to_vec(), b"caf\xe9".to_vec()])).await;
    assert_eq!(outcomes(&report), [Outcome::Indexed, Outcome::Rejected]);
    let sent = event(&[br#"{"n":0}"#.to_vec(), br#"{"n":1}"#.to_vec()]);
    caught(
        judge(&h, &sent, &report, &log, before),
        &format!("record 1 ({}) is rejected, yet Elasticsearch rejected none of the 1 documents", sequence(1)),
    );
}

#[tokio::test]
async fn a_record_neither_redelivered_nor_held_is_caught() {
    // The cluster is down: every record goes back to Kinesis.
    let h = Harness::start(&[]).await;
    h.es.push_fault(Fault::unavailable());
    let sent = event(&plain_payloads(2));
    let (report, log, before) = run(&h, &sent).await;
    assert_eq!(outcomes(&report), [Outcome::BackToKinesis; 2]);
    assert_eq!(judge(&h, &sent, &report, &log, before), Ok(()));

    // The first left out of the response, reported parked in Firehose, which holds nothing of it. (The old
    // invariant caught this: fewer documents in Elasticsearch or Firehose than the report counts.)
    caught(
        judge(&h, &sent, &reported(&report, 0, Outcome::ToFirehose), &log, before),
        &format!("record 0 ({}) went to Firehose, yet this invocation parked none of its documents there", sequence(0)),
    );
    // Reported indexed, with no document, as a decoder that found nothing would count it. (The old invariant caught
    // this as lost.)
    let mut nothing = reported(&report, 0, Outcome::Indexed);
    nothing.records[0].record.decoded = Decoded::Documents { range: 0..0, rejected_parts: Vec::new() };
    caught(
        judge(&h, &sent, &nothing, &log, before),
        &format!("record 0 ({}) is Indexed, yet Elasticsearch holds 0 of the 1 documents the test reads", sequence(0)),
    );
}
