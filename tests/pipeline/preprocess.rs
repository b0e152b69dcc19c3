//! What documents gain or lose on the way, end to end through the handler and the double: structured messages
//! (`MESSAGE_JSON`), filters (`FILTER_INCLUDE`, `FILTER_EXCLUDE`), routing by source in `ES_INDEX`, static fields
//! (`ADD_FIELDS`) and provenance (`ADD_KINESIS_METADATA`). Every delivery is checked by the invariant, whose own
//! reading applies the filters.

use kinesis_es_indexer::Outcome::*;
use serde_json::{Value, json};
use testkit::gzip;

use crate::support::*;

/// A gzip'd CloudWatch Logs data message of `log_group` with these (timestamp in ms, message) log events.
fn envelope(log_group: &str, events: &[(u64, &str)]) -> Vec<u8> {
    let events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, (at, message))| json!({"id": format!("e{i}"), "timestamp": at, "message": message}))
        .collect();
    gzip(
        &serde_json::to_vec(&json!({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": log_group,
            "logStream": "2026/11/22/[$LATEST]abc", "subscriptionFilters": ["all"], "logEvents": events}))
        .unwrap(),
    )
}

/// 2026-11-22T08:00:00Z, when the test records arrive, in milliseconds.
const ARRIVAL_MS: u64 = 1_795_334_400_000;

/// A line of Lambda's JSON log format, at `at` (RFC 3339).
fn lambda_json(at: &str, level: &str, message: &str) -> String {
    json!({"timestamp": at, "level": level, "requestId": "79b4f56e-95b1-4643-9700-2807f4e68189", "message": message})
        .to_string()
}

#[tokio::test]
async fn a_cloudwatch_batch_of_lambda_json_logs_becomes_structured_documents_named_by_their_own_time() {
    let h = Harness::start(&[("TIMESTAMP_FIELD", "timestamp")]).await;
    // Logged the day before they arrive (within the skew bound), and one line of plain text among them.
    let lines = [
        lambda_json("2026-11-21T23:59:58.250Z", "INFO", "order placed"),
        lambda_json("2026-11-21T23:59:59.500Z", "ERROR", "payment declined"),
        "START RequestId: 79b4f56e Version: $LATEST".to_owned(),
    ];
    let events: Vec<(u64, &str)> = lines.iter().map(|line| (ARRIVAL_MS, line.as_str())).collect();
    let event = event(&[envelope("/aws/lambda/checkout", &events)]);

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), [Indexed]);
    let first = h.es.document("logs-2026.11.21", &doc_id(0, 0)).expect("in the index of its own day");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["message"], "order placed", "the message's own, not the line");
    assert_eq!(first["timestamp"], "2026-11-21T23:59:58.250Z", "kept as it came");
    assert_eq!(first["requestId"], "79b4f56e-95b1-4643-9700-2807f4e68189");
    assert_eq!(first["aws"]["cloudwatch"]["log_group"], "/aws/lambda/checkout");
    assert_eq!(h.es.document("logs-2026.11.21", &doc_id(0, 1)).unwrap()["level"], "ERROR");
    let plain = h.es.document("logs-2026.11.22", &doc_id(0, 2)).expect("plain text: the event's time");
    assert_eq!(plain["message"], lines[2]);
    assert_eq!(plain["timestamp"], "2026-11-22T08:00:00.000Z");
}

#[tokio::test]
async fn a_clash_with_the_envelope_keeps_the_envelopes_fields_and_the_messages_aside() {
    let h = Harness::start(&[]).await;
    let message = json!({"aws": {"region": "eu-west-1"}, "cloud": "mine", "json": [1], "level": "WARN"}).to_string();
    let event = event(&[envelope("/aws/lambda/app", &[(ARRIVAL_MS, &message)])]);

    h.deliver(&event).await;

    let document = h.es.document("logs-2026.11.22", &doc_id(0, 0)).unwrap();
    assert_eq!(document["level"], "WARN");
    assert_eq!(document["aws"]["cloudwatch"]["log_group"], "/aws/lambda/app", "the envelope's");
    assert_eq!(document["cloud"]["account"]["id"], "123456789012", "the envelope's");
    assert_eq!(document["json"], json!({"aws": {"region": "eu-west-1"}, "cloud": "mine", "json": [1]}), "aside");
}

#[tokio::test]
async fn a_message_that_is_json_but_not_one_object_stays_a_string_and_nest_and_off_do_as_they_say() {
    let not_objects = ["[1,2,3]", "\"quoted\"", "{\"truncated\":", "{\"a\":1}{\"b\":2}", "12"];
    let object = r#"{"level":"INFO","n":7}"#;
    let mut events: Vec<(u64, &str)> = not_objects.iter().map(|m| (ARRIVAL_MS, *m)).collect();
    events.push((ARRIVAL_MS, object));
    for (mode, last) in [
        ("merge", json!({"level": "INFO", "n": 7})),
        ("nest", json!({"payload": {"level": "INFO", "n": 7}})),
        ("off", json!({"message": object})),
    ] {
        let h = Harness::start(&[("MESSAGE_JSON", mode), ("MESSAGE_JSON_FIELD", "payload")]).await;
        h.deliver(&event(&[envelope("/aws/lambda/app", &events)])).await;
        for (position, message) in not_objects.iter().enumerate() {
            let document = h.es.document("logs-2026.11.22", &doc_id(0, position)).unwrap();
            assert_eq!(document["message"], *message, "{mode}");
        }
        let document = h.es.document("logs-2026.11.22", &doc_id(0, not_objects.len())).unwrap();
        for (field, value) in last.as_object().unwrap() {
            assert_eq!(&document[field], value, "{mode}: {document}");
        }
        let has_message = document.get("message").is_some();
        assert_eq!(has_message, mode == "off", "{mode}: only off keeps the line as a string");
    }
}

#[tokio::test]
async fn a_record_of_only_filtered_documents_is_skipped_counted_and_not_reported_back() {
    let h = Harness::start(&[("FILTER_INCLUDE", "ERROR|WARN"), ("FILTER_EXCLUDE", "healthcheck")]).await;
    let payloads = vec![
        envelope("/aws/lambda/app", &[(ARRIVAL_MS, "INFO all good"), (ARRIVAL_MS, "WARN healthcheck slow")]),
        b"ERROR disk full".to_vec(),
        b"INFO {\"n\":1}\n{\"level\":\"ERROR\",\"n\":2}\nWARN three\n".to_vec(),
        br#"{"level":"INFO"}"#.to_vec(),
    ];
    let event = event(&payloads);

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), [Skipped, Indexed, Indexed, Skipped]);
    assert_eq!(report.summary.documents_filtered, 2 + 1 + 1);
    assert!(report.response().batch_item_failures.is_empty(), "nothing goes back");
    assert_eq!(h.es.count(), 1 + 2);
    // The NDJSON record's kept lines keep their positions: `_id`s do not change with the filters.
    assert!(
        h.es.document("logs-2026.11.22", &doc_id(2, 1)).is_some()
            && h.es.document("logs-2026.11.22", &doc_id(2, 2)).is_some()
    );
    let skipped = report.records[0].fate.failure.as_ref().unwrap();
    assert!(skipped.reason.contains("filtered out (2: FILTER_INCLUDE, FILTER_EXCLUDE)"), "{}", skipped.reason);
}

#[tokio::test]
async fn static_fields_and_provenance_join_every_document_and_a_documents_own_field_wins() {
    let h =
        Harness::start(&[("ADD_FIELDS", r#"{"env":"prod","tags":["payments"]}"#), ("ADD_KINESIS_METADATA", "true")])
            .await;
    let aggregate = testkit::kpl::aggregate(&[("pk-a", br#"{"env":"dev","n":1}"#), ("pk-a", b"plain")]);
    let payloads = vec![
        br#"{"n":0,"aws":{"region":"eu-west-1"}}"#.to_vec(),
        envelope("/aws/lambda/app", &[(ARRIVAL_MS, "hello")]),
        aggregate,
    ];
    let event = edit_records(&event(&payloads), |_, record| record["kinesis"]["partitionKey"] = json!("pk-a"));

    h.deliver(&event).await;

    let provenance = |i: usize| {
        json!({"type": "stream", "name": "app-logs", "shard_id": SHARD, "sequence_number": sequence(i),
            "partition_key": "pk-a", "approximate_arrival_timestamp": format!("2026-11-22T08:00:00.{:03}Z", i * 250)})
    };
    let object = h.es.document("logs-2026.11.22", &doc_id(0, 0)).unwrap();
    assert_eq!((object["env"].clone(), object["tags"].clone()), (json!("prod"), json!(["payments"])));
    assert_eq!(object["aws"]["region"], "eu-west-1", "its own aws object kept");
    assert_eq!(object["aws.kinesis"], provenance(0), "beside it, as Elasticsearch expands dotted names");
    let log_event = h.es.document("logs-2026.11.22", &doc_id(1, 0)).unwrap();
    assert_eq!(log_event["aws"]["kinesis"], provenance(1));
    assert_eq!(log_event["aws"]["cloudwatch"]["log_group"], "/aws/lambda/app");
    assert_eq!(log_event["env"], "prod");
    let own = h.es.document("logs-2026.11.22", &doc_id(2, "0.0")).unwrap();
    assert_eq!(own["env"], "dev", "the document's own field wins");
    assert_eq!(own["tags"], json!(["payments"]));
    let text = h.es.document("logs-2026.11.22", &doc_id(2, "1.0")).unwrap();
    assert_eq!((text["message"].clone(), text["aws"]["kinesis"]["shard_id"].clone()), (json!("plain"), json!(SHARD)));
}

#[tokio::test]
async fn each_document_is_routed_by_its_log_group_or_field_and_a_missing_or_unusable_value_takes_the_fallback() {
    let h = Harness::start(&[("ES_INDEX", "logs-{log_group|direct}-{field:service.name|misc}-%Y.%m")]).await;
    let aggregate = testkit::kpl::aggregate(&[
        ("k", br#"{"service":{"name":"Checkout-API"},"n":0}"#),
        ("k", br#"{"service.name":"cart","n":1}"#),
    ]);
    let payloads = vec![
        envelope("/aws/lambda/Orders", &[(ARRIVAL_MS, r#"{"service":{"name":"orders"}}"#), (ARRIVAL_MS, "text")]),
        aggregate,
        // NDJSON: routed line by line; a missing field, a null one, a value of only forbidden
        // characters, and a value that would make a name longer than Elasticsearch allows.
        format!(
            "{{\"service\":{{\"name\":\"billing\"}}}}\n{{\"n\":2}}\n{{\"service\":{{\"name\":null}}}}\n{{\"service\":{{\"name\":\"/*?\"}}}}\n{{\"service\":{{\"name\":\"{}\"}}}}\n",
            "x".repeat(300)
        )
        .into_bytes(),
    ];
    let event = event(&payloads);

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), [Indexed, Indexed, Indexed]);
    let index_of = |record: usize, position: &str| -> String {
        let id = doc_id(record, position);
        let stored = h.es.documents();
        let found = stored.iter().find(|(_, stored_id, _)| *stored_id == id);
        found.unwrap_or_else(|| panic!("{id} is stored")).0.clone()
    };
    assert_eq!(index_of(0, "0"), "logs-aws_lambda_orders-orders-2026.11");
    assert_eq!(index_of(0, "1"), "logs-aws_lambda_orders-misc-2026.11", "text has no field");
    assert_eq!(index_of(1, "0.0"), "logs-direct-checkout_api-2026.11", "a KPL user record by its own field");
    assert_eq!(index_of(1, "1.0"), "logs-direct-cart-2026.11", "a key with a dot");
    assert_eq!(index_of(2, "0"), "logs-direct-billing-2026.11");
    assert_eq!(index_of(2, "1"), "logs-direct-misc-2026.11", "missing");
    assert_eq!(index_of(2, "2"), "logs-direct-misc-2026.11", "null is no name");
    assert_eq!(index_of(2, "3"), "logs-direct-misc-2026.11", "nothing left once sanitised");
    assert_eq!(index_of(2, "4"), format!("logs-direct-{}-2026.11", "x".repeat(100)), "bounded to 100 bytes");
}

#[tokio::test]
async fn a_routed_document_parked_in_firehose_keeps_the_index_it_was_meant_for() {
    let h = Harness::start(&[("ES_INDEX", "app-{field:team}-%Y.%m.%d")]).await;
    h.es.set_index_fault(
        "app-payments-2026.11.22",
        Some(testkit::IndexFault::Refuse(429, "es_rejected_execution_exception")),
    );
    let event = event(&json_payloads(&[json!({"team": "Payments", "n": 0}), json!({"team": "search", "n": 1})]));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), [ToFirehose, Indexed]);
    let parked = h.firehose.documents();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0]["es_target"], json!({"_index": "app-payments-2026.11.22", "_id": doc_id(0, 0)}));
    assert!(h.es.document("app-search-2026.11.22", &doc_id(1, 0)).is_some());
}

#[test]
fn a_routing_pattern_that_cannot_make_valid_names_stops_the_cold_start_naming_es_index() {
    for pattern in
        ["logs-{service}", "logs-{log_group", "logs-{field:}", "logs-{log_group|Bad-Fallback}", "_{log_group}"]
    {
        let error = kinesis_es_indexer::Config::from_lookup(|name| match name {
            "ES_URL" => Some("http://127.0.0.1:9200".into()),
            "ES_INDEX" => Some(pattern.into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(error.variable, "ES_INDEX", "{pattern}: {error}");
    }
}
