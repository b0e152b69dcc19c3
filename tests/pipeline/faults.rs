//! The scenarios of FAULTS.md, one test each (named `sNN_…`), against the doubles.

use std::time::Duration;

use kinesis_es_indexer::Outcome::{self, *};
use serde_json::{Value, json};
use testkit::{Fault, FirehoseFault, IndexFault};

use crate::support::*;

#[tokio::test]
async fn s01_mixed_item_statuses_are_judged_one_by_one() {
    let h = Harness::start(&[]).await;
    let payloads = json_payloads(&[
        json!({"count": 1}),
        json!({"count": 2}),
        json!({"count": "many"}),
        json!({"count": 4, "@timestamp": "2026-11-21T10:00:00Z"}),
    ]);
    // Record 1 was written by an earlier delivery.
    h.deliver(&event(&payloads[..2])).await;
    // The write queue takes one shard-level operation: today's index's; yesterday's is rejected.
    h.es.set_write_queue(Some(1));

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![AlreadyThere, AlreadyThere, Rejected, ToFirehose]);
    assert!(report.response().batch_item_failures.is_empty());
    assert_eq!(h.es.count(), 2);
    assert_eq!(h.firehose.documents().len(), 1);
    assert_eq!(h.firehose.documents()[0]["count"], 4);
}

#[tokio::test]
async fn s02_an_item_count_mismatch_sends_the_chunk_back_and_redelivery_is_harmless() {
    let h = Harness::start(&[("BULK_MAX_DOCS", "3")]).await;
    h.es.push_fault(Fault::DropLastItem);
    let event = event(&plain_payloads(5));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis, BackToKinesis, BackToKinesis, Indexed, Indexed]);
    assert_eq!(report.records[0].fate.failure.as_ref().unwrap().error_type, "item_count_mismatch");
    let again = redelivery(&event, &report).expect("a redelivery");
    let second = h.deliver(&again).await;
    assert_eq!(outcomes(&second), vec![AlreadyThere; 5], "the double had written them: 409s, no duplicates");
    assert_eq!(h.es.count(), 5);
}

#[tokio::test]
async fn s03_rejected_execution_parks_items_in_firehose_with_their_id_and_index() {
    let h = Harness::start(&[]).await;
    // The first shard-level operation (yesterday's index) is taken, today's is rejected whole.
    h.es.set_write_queue(Some(1));
    let event = event(&json_payloads(&[
        json!({"a": 1, "@timestamp": "2026-11-21T10:00:00Z"}),
        json!({"a": 2}),
        json!({"a": 3}),
    ]));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed, ToFirehose, ToFirehose]);
    assert_eq!(report.summary.documents_retry_later, 2, "rejections are counted per invocation");
    let why = report.records[1].fate.failure.as_ref().unwrap();
    assert_eq!(
        (why.status, why.error_type.as_str()),
        (Some(429), "es_rejected_execution_exception"),
        "parked records say why"
    );
    let parked = h.firehose.documents();
    assert_eq!(parked.len(), 2);
    assert_eq!(parked[0]["es_target"], json!({"_id": doc_id(1, 0), "_index": "logs-2026.11.22"}));
    assert_eq!(parked[0]["a"], 2);
    assert_eq!(parked[0]["@timestamp"], "2026-11-22T08:00:00.250Z");
    assert_eq!(h.es.max_attempts_per_document(), 1, "no in-Lambda retry against a cluster that said 429");
}

#[tokio::test]
async fn s03_a_whole_request_rejected_by_the_coordinating_node_is_parked_and_the_rest_stays_in_the_stream() {
    let h = Harness::start(&[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1")]).await;
    h.es.push_fault(Fault::rejected_execution());

    let report = h.deliver(&event(&plain_payloads(4))).await;

    assert_eq!(outcomes(&report), vec![ToFirehose, ToFirehose, BackToKinesis, BackToKinesis]);
    assert_eq!(report.records[0].fate.failure.as_ref().unwrap().error_type, "es_rejected_execution_exception");
    assert_eq!(report.records[2].fate.failure.as_ref().unwrap().error_type, "not_sent_cluster_saturated");
    assert_eq!(h.es.requests().len(), 1, "after a 429 no further chunk is sent");
    assert_eq!(h.firehose.records().len(), 2, "only what the cluster refused is parked");
    assert_eq!(h.es.count(), 0);
    assert!(report.summary.paced_because.is_some_and(|pace| pace.name() == "busy"));
}

/// Fixed concurrency routes as adapting does: only the window differs (`flow`).
#[tokio::test]
async fn s03_with_fixed_concurrency_a_whole_request_rejected_keeps_the_rest_in_the_stream_too() {
    let h =
        Harness::start(&[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1"), ("BULK_CONCURRENCY_MODE", "fixed")]).await;
    h.es.push_fault(Fault::rejected_execution());

    let report = h.deliver(&event(&plain_payloads(4))).await;

    assert_eq!(outcomes(&report), vec![ToFirehose, ToFirehose, BackToKinesis, BackToKinesis]);
    assert_eq!(h.es.requests().len(), 1, "after a 429 no further chunk is sent");
    assert_eq!(h.firehose.records().len(), 2, "only what the cluster refused is parked");
    assert_eq!(h.es.count(), 0);
}

#[tokio::test]
async fn s04_unavailable_shards_are_retry_later() {
    let h = Harness::start(&[]).await;
    h.es.set_index_fault("logs-2026.11.22", Some(IndexFault::UnavailableShards));
    let report = h.deliver(&event(&plain_payloads(2))).await;
    assert_eq!(outcomes(&report), vec![ToFirehose, ToFirehose]);
}

#[tokio::test]
async fn s05_a_flood_stage_block_keeps_records_in_kinesis_with_an_error_that_says_why() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    h.es.set_index_fault("logs-2026.11.22", Some(IndexFault::FloodStage));

    let report = h.deliver(&event(&plain_payloads(3))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 3]);
    assert!(h.firehose.records().is_empty(), "Firehose would hit the same block");
    let errors = logs.matching("ERROR", "Records go back to Kinesis");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["records"], 3);
    assert_eq!(errors[0]["error_type"], "cluster_block_exception");
    assert!(errors[0]["reason"].as_str().unwrap().contains("flood-stage watermark"));
}

#[tokio::test]
async fn s06_a_circuit_breaker_makes_the_chunk_retry_later_and_spares_the_cluster() {
    for (mode, parked) in [("adaptive", 2), ("fixed", 2)] {
        let h =
            Harness::start(&[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1"), ("BULK_CONCURRENCY_MODE", mode)]).await;
        h.es.push_fault(Fault::circuit_breaker());
        let event = event(&plain_payloads(6));

        let report = h.deliver(&event).await;

        let mut expected = vec![ToFirehose; parked];
        expected.resize(6, BackToKinesis);
        assert_eq!(outcomes(&report), expected, "{mode}");
        assert_eq!(h.es.requests().len(), 1, "{mode}: after a 429 no further chunk is sent");
        assert_eq!(h.firehose.records().len(), parked, "{mode}");
        assert_eq!(h.es.count(), 0);
        if let Some(again) = redelivery(&event, &report) {
            h.deliver(&again).await;
        }
        assert_eq!(h.es.count() + h.firehose.records().len(), 6, "{mode}: every document once, written or parked");
    }
}

async fn outage_sends_everything_back_and_redelivery_writes_once(fault: Option<Fault>, overrides: &[(&str, &str)]) {
    let h = Harness::start(&[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1"), ("ES_TIMEOUT_MS", "300")]).await;
    let h = if overrides.is_empty() { h } else { Harness { deps: deps(&h.es, Some(&h.firehose), overrides), ..h } };
    if let Some(fault) = fault {
        h.es.push_fault(fault);
    }
    let event = event(&plain_payloads(6));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 6]);
    assert!(h.es.requests().len() <= 1, "the cluster is down: fail fast, don't hammer it");
    assert!(h.firehose.records().is_empty());
    if !overrides.is_empty() {
        return;
    }
    let second = h.deliver(&redelivery(&event, &report).unwrap()).await;
    assert!(second.response().batch_item_failures.is_empty());
    assert_eq!(h.es.count(), 6, "each document exactly once");
}

#[tokio::test]
async fn s07_a_gateway_error_sends_everything_back() {
    outage_sends_everything_back_and_redelivery_writes_once(Some(Fault::unavailable()), &[]).await;
}

/// On tokio's paused clock, as the double's delay and the request timeout are: exact on a loaded machine.
#[tokio::test(start_paused = true)]
async fn s07_a_timeout_sends_everything_back() {
    outage_sends_everything_back_and_redelivery_writes_once(Some(Fault::Delay(Duration::from_millis(1500))), &[]).await;
}

/// A connection that breaks before the answer looks, to the client, as a pooled connection the server had closed
/// does: the request is sent once more, and the documents' ids make the second write answer 409.
#[tokio::test]
async fn s07_a_connection_broken_before_the_answer_is_sent_once_more_and_written_once() {
    let h = Harness::start(&[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1")]).await;
    h.es.push_fault(Fault::ResetAfterWrite);

    let report = h.deliver(&event(&plain_payloads(6))).await;

    assert_eq!(outcomes(&report), vec![AlreadyThere, AlreadyThere, Indexed, Indexed, Indexed, Indexed]);
    assert_eq!(h.es.requests().len(), 4, "the broken request once more, then two chunks");
    assert_eq!(h.es.count(), 6, "each document exactly once");
    assert_eq!(h.es.max_attempts_per_document(), 2);
}

#[tokio::test]
async fn s07_a_connection_broken_twice_sends_everything_back() {
    let h = Harness::start(&[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1")]).await;
    h.es.push_fault(Fault::ResetAfterWrite);
    h.es.push_fault(Fault::ResetAfterWrite);
    let event = event(&plain_payloads(6));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 6]);
    assert_eq!(h.es.requests().len(), 2, "sent once more, then the rest held: don't hammer it");
    let second = h.deliver(&redelivery(&event, &report).unwrap()).await;
    assert!(second.response().batch_item_failures.is_empty());
    assert_eq!(h.es.count(), 6, "each document exactly once");
}

/// With `ES_DOC_ID=none` a second write would be a second document: a broken connection is never sent again.
#[tokio::test]
async fn s07_without_ids_a_broken_connection_is_not_sent_again() {
    let h = Harness::start(&[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1"), ("ES_DOC_ID", "none")]).await;
    h.es.push_fault(Fault::ResetAfterWrite);

    let report = h.deliver(&event(&plain_payloads(6))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 6]);
    assert_eq!(h.es.requests().len(), 1);
}

#[tokio::test]
async fn s07_a_refused_connection_sends_everything_back() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed_port}");
    outage_sends_everything_back_and_redelivery_writes_once(
        None,
        &[("ES_URL", &url), ("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1")],
    )
    .await;
}

#[tokio::test]
async fn s08_a_mapping_error_is_logged_with_full_context_and_never_blocks_the_shard() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    let event = event(&json_payloads(&[
        json!({"latency_ms": 5}),
        json!({"latency_ms": "slow", "secret": "x".repeat(600)}),
        json!({"latency_ms": 7}),
    ]));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed, Rejected, Indexed]);
    assert!(report.response().batch_item_failures.is_empty(), "never retried");
    let errors = logs.matching("ERROR", "Document rejected by Elasticsearch");
    assert_eq!(errors.len(), 1);
    let line = &errors[0];
    assert_eq!(line["shard_id"], SHARD);
    assert_eq!(line["sequence_number"], sequence(1));
    assert_eq!(line["doc_id"], doc_id(1, 0));
    assert_eq!(line["index"], "logs-2026.11.22");
    assert_eq!(line["status"], 400);
    assert_eq!(line["error_type"], "document_parsing_exception");
    assert!(line["reason"].as_str().unwrap().contains("failed to parse field [latency_ms] of type [long]"));
    let excerpt = line["excerpt"].as_str().unwrap();
    assert!(excerpt.starts_with(r#"{"@timestamp":"2026-11-22T08:00:00.250Z","#), "{excerpt}");
    assert!(excerpt.chars().count() <= 257, "the excerpt is bounded: {} chars", excerpt.chars().count());
}

#[tokio::test]
async fn s08_a_number_beyond_range_is_rejected_by_the_cluster_not_guessed_at() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    let event = event(&[br#"{"latency_ms":3166666e2222}"#.to_vec(), br#"{"latency_ms":1}"#.to_vec()]);

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Rejected, Indexed]);
    assert_eq!(logs.matching("ERROR", "Document rejected")[0]["error_type"], "document_parsing_exception");
}

#[tokio::test]
async fn s09_a_missing_index_is_a_configuration_fault_not_a_bad_record() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    h.es.set_auto_create_index(false);

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    let errors = logs.matching("ERROR", "Records go back to Kinesis");
    assert_eq!(errors[0]["error_type"], "index_not_found_exception");
    h.es.create_index("logs-2026.11.22");
    assert_eq!(outcomes(&h.deliver(&event(&plain_payloads(2))).await), vec![Indexed; 2]);
}

#[tokio::test]
async fn s10_a_duplicate_create_is_already_there_not_an_error() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    let event = event(&plain_payloads(3));
    h.deliver(&event).await;

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![AlreadyThere; 3]);
    assert!(logs.matching("ERROR", "").is_empty() && logs.matching("WARN", "").is_empty());
}

#[tokio::test]
async fn s11_a_request_too_large_is_split_and_a_document_too_large_alone_is_rejected() {
    // gzip on the wire: the cluster judges http.max_content_length on the body decompressed, as the indexer plans it.
    let h = Harness::start(&[("BULK_CONCURRENCY", "1")]).await;
    let mut payloads = plain_payloads(4);
    payloads.insert(2, serde_json::to_vec(&json!({"blob": "z".repeat(4000)})).unwrap());
    h.es.set_max_content_length(Some(1500));

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![Indexed, Indexed, Rejected, Indexed, Indexed]);
    assert_eq!(report.records[2].fate.failure.as_ref().unwrap().error_type, "request_too_large");
    assert_eq!(h.es.count(), 4);
}

#[tokio::test]
async fn s12_an_auth_failure_sends_the_batch_back_with_a_clear_error() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    h.es.push_fault(Fault::Reject {
        status: 401,
        error_type: "security_exception".into(),
        reason: "unable to authenticate user [indexer] for REST request [/_bulk]".into(),
    });

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    let errors = logs.matching("ERROR", "Records go back to Kinesis");
    assert_eq!(errors[0]["status"], 401);
    assert_eq!(errors[0]["error_type"], "security_exception");
}

#[tokio::test]
async fn s13_near_the_deadline_no_request_starts_and_everything_is_reported() {
    let h = Harness::start(&[("DEADLINE_MARGIN_MS", "2000")]).await;
    let event = event(&plain_payloads(3));

    // 120 ms: after even a quarter of it as margin, too little for any request.
    let report =
        h.deliver_checked(&event, Duration::from_millis(120)).await.unwrap_or_else(|broken| panic!("{broken}"));

    assert_eq!(outcomes(&report), vec![BackToKinesis; 3]);
    assert_eq!(report.records[0].fate.failure.as_ref().unwrap().error_type, "deadline");
    assert!(h.es.requests().is_empty());
}

/// On tokio's paused clock: the cluster's 5 s, the request timeout and the deadline are exact, however loaded the
/// machine is (the double runs on the same clock).
#[tokio::test(start_paused = true)]
async fn s13_a_slow_cluster_is_cut_off_before_the_deadline() {
    let h = Harness::start(&[("DEADLINE_MARGIN_MS", "500"), ("ES_TIMEOUT_MS", "30000")]).await;
    h.es.push_fault(Fault::Delay(Duration::from_secs(5)));
    let event = event(&plain_payloads(2));
    let started = tokio::time::Instant::now();

    let report =
        h.deliver_checked(&event, Duration::from_millis(1500)).await.unwrap_or_else(|broken| panic!("{broken}"));

    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "returned before the deadline: {took:?}");
    assert!(took >= Duration::from_millis(1000), "waited for the cluster until the margin: {took:?}");
    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);

    // The cluster recovers; Lambda redelivers what was reported: nothing is lost, nothing doubled.
    let again = redelivery(&event, &report).unwrap();
    let second = h.deliver(&again).await;
    assert!(second.response().batch_item_failures.is_empty());
    assert_eq!(h.es.count(), 2);
}

#[tokio::test]
async fn s14_firehose_partial_failure_resends_only_the_failed_entries() {
    let h = Harness::start(&[]).await;
    h.es.set_write_queue(Some(0));
    h.firehose.push_fault(FirehoseFault::FailEntries(vec![1]));

    let report = h.deliver(&event(&plain_payloads(3))).await;

    assert_eq!(outcomes(&report), vec![ToFirehose; 3]);
    assert_eq!(h.firehose.calls(), vec![3, 1], "only the failed entry is resent");
    assert_eq!(report.summary.firehose.failed_entries, 1);
    let ids: Vec<String> =
        h.firehose.documents().iter().map(|d| d["es_target"]["_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, vec![doc_id(0, 0), doc_id(2, 0), doc_id(1, 0)], "each exactly once");
}

#[tokio::test]
async fn s14_a_firehose_that_keeps_failing_sends_records_back_to_kinesis() {
    let h = Harness::start(&[("FIREHOSE_MAX_ATTEMPTS", "3")]).await;
    h.es.set_write_queue(Some(0));
    h.firehose.set_fail_every_entry(true);

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    assert_eq!(h.firehose.calls(), vec![2, 2, 2]);
    assert!(report.records[0].fate.failure.as_ref().unwrap().reason.contains("ServiceUnavailableException"));
}

#[tokio::test]
async fn s15_a_document_too_large_for_firehose_goes_back_to_kinesis() {
    let h = Harness::start(&[]).await;
    h.es.set_write_queue(Some(0));
    let payloads = json_payloads(&[json!({"small": 1}), json!({"big": "b".repeat(1_100 * 1024)})]);

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![ToFirehose, BackToKinesis]);
    assert!(report.records[1].fate.failure.as_ref().unwrap().reason.contains("record limit"));
}

#[tokio::test]
async fn s16_without_firehose_retry_later_goes_back_to_kinesis() {
    let h = Harness::start(&[]).await;
    let h = Harness { deps: deps(&h.es, None, &[]), ..h };
    h.es.set_write_queue(Some(1));
    let payloads = json_payloads(&[json!({"@timestamp": "2026-11-21T10:00:00Z"}), json!({"n": 2})]);

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![Indexed, BackToKinesis]);
}

#[tokio::test]
async fn s16_a_missing_delivery_stream_sends_records_back_with_the_reason() {
    let logs = Logs::capture();
    let h = Harness::start(&[("FIREHOSE_MAX_ATTEMPTS", "2")]).await;
    h.es.set_write_queue(Some(0));
    h.firehose.set_streams(&["some-other-stream"]);

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    assert_eq!(
        report.summary.firehose.calls, 1,
        "no retries of a call that cannot succeed (FIREHOSE_MAX_ATTEMPTS is 2)"
    );
    let line = &logs.matching("ERROR", "Records go back to Kinesis")[0];
    assert_eq!(line["error_type"], "firehose_misconfigured", "someone must fix it: ERROR, not WARN");
    assert!(line["reason"].as_str().unwrap().contains("ResourceNotFoundException"), "{line}");
    let message = line["message"].as_str().unwrap();
    assert!(
        message.contains("Firehose cannot take") && !message.contains("cluster"),
        "Firehose's, not the cluster's: {line}"
    );
    assert!(
        line["reason"].as_str().unwrap().starts_with(&format!("Firehose stream {STREAM} at http://127.0.0.1:")),
        "{line}"
    );
}

#[tokio::test]
async fn s16_a_throttling_firehose_is_retried_then_accepts() {
    let h = Harness::start(&[]).await;
    h.es.set_write_queue(Some(0));
    h.firehose.push_fault(FirehoseFault::Throttle);

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![ToFirehose; 2]);
    assert_eq!(h.firehose.calls(), vec![2, 2]);
}

#[tokio::test]
async fn s17_bad_records_never_fail_the_batch() {
    let logs = Logs::capture();
    let h = Harness::start(&[("MAX_RECORD_BYTES", "1048576")]).await;
    let mut payloads = vec![
        b"{\"message\":\"good\"}".to_vec(),
        gzip(b"{\"message\":\"good and gzipped\"}"),
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00garbage".to_vec(),
        gzip(&vec![b' '; 4 * 1024 * 1024]),
        b"caf\xe9".to_vec(),
        Vec::new(),
        b"plain text line\n".to_vec(),
    ];
    payloads.push(b"{\"message\":\"last\"}".to_vec());
    let event = event(&payloads);
    // A record whose data is not base64, and one without data at all.
    let mut bad_base64: serde_json::Value = serde_json::from_str(event.records_json()[0]).unwrap();
    bad_base64["kinesis"]["data"] = json!("%%% not base64 %%%");
    bad_base64["kinesis"]["sequenceNumber"] = json!(sequence(8));
    let no_data = json!({"eventID": format!("{SHARD}:{}", sequence(9)), "kinesis": {"sequenceNumber": sequence(9)}});
    let (bad_base64, no_data) = (bad_base64.to_string(), no_data.to_string());
    let records = event.records_json().into_iter().chain([bad_base64.as_str(), no_data.as_str()]);
    let event = event_of(records);

    let report = h.deliver(&event).await;

    assert_eq!(
        outcomes(&report),
        vec![Indexed, Indexed, Rejected, Rejected, Rejected, Rejected, Indexed, Indexed, Rejected, Rejected]
    );
    assert!(report.response().batch_item_failures.is_empty(), "bad records never block the shard");
    let kinds: Vec<String> = logs
        .matching("ERROR", "Record rejected")
        .iter()
        .map(|l| l["error_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["corrupt_gzip", "record_too_large", "invalid_utf8", "empty_record", "invalid_base64", "malformed_record"]
    );
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(6, 0)).unwrap()["message"], "plain text line");
}

#[tokio::test]
async fn s18_redelivering_an_indexed_batch_writes_nothing_new() {
    let h = Harness::start(&[]).await;
    let event = parse_event(include_str!("../../events/kinesis.json"));
    let first = h.deliver(&event).await;
    let stored = h.es.documents();

    let second = h.deliver(&event).await;

    for (before, after) in first.records.iter().zip(&second.records) {
        let expected = if before.fate.outcome == Indexed { AlreadyThere } else { before.fate.outcome };
        assert_eq!(after.fate.outcome, expected, "record {:?}", before.record.provenance.sequence_number);
    }
    assert_eq!(h.es.documents(), stored, "zero new documents");
    for (index, id, _) in &stored {
        assert_eq!(h.es.version(index, id), Some(1), "never overwritten");
    }
}

#[tokio::test]
async fn s19_a_struggling_cluster_gets_at_most_one_request_per_document() {
    // Half of every request is rejected (documents alternate between two days' indices, and the write queue takes
    // one of the two shard-level operations): each document is still sent once, and the rest waits in Firehose.
    let h = Harness::start(&[("BULK_MAX_DOCS", "10")]).await;
    h.es.set_write_queue(Some(1));
    let alternating: Vec<serde_json::Value> =
        (0..100).map(|i| json!({"n": i, "@timestamp": format!("2026-11-2{}T10:00:00Z", 1 + i % 2)})).collect();
    let report = h.deliver(&event(&json_payloads(&alternating))).await;
    assert_eq!(h.es.requests().len(), 10);
    assert_eq!(h.es.max_attempts_per_document(), 1);
    assert_eq!((report.summary.count(Indexed), report.summary.count(ToFirehose)), (50, 50));

    // A full outage: the first answers stop the invocation; the other chunks are never sent.
    let h = Harness::start(&[("BULK_MAX_DOCS", "10"), ("BULK_CONCURRENCY", "2")]).await;
    h.es.push_fault(Fault::unavailable());
    h.es.push_fault(Fault::unavailable());
    let report = h.deliver(&event(&plain_payloads(100))).await;
    assert!(h.es.requests().len() <= 2, "{} requests to a cluster that is down", h.es.requests().len());
    assert_eq!(h.es.max_attempts_per_document(), 1);
    assert_eq!(report.summary.count(BackToKinesis), 100);
}

#[tokio::test]
async fn records_that_kinesis_redelivers_anyway_are_not_also_sent_to_firehose() {
    let h = Harness::start(&[]).await;
    h.es.set_index_fault("logs-2026.11.21", Some(IndexFault::UnavailableShards));
    h.es.set_index_fault("logs-2026.11.22", Some(IndexFault::FloodStage));
    let payloads = json_payloads(&[
        json!({"@timestamp": "2026-11-21T10:00:00Z"}),
        json!({"@timestamp": "2026-11-22T10:00:00Z"}),
        json!({"@timestamp": "2026-11-21T11:00:00Z"}),
    ]);

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![ToFirehose, BackToKinesis, BackToKinesis]);
    assert_eq!(h.firehose.records().len(), 1);
    assert_eq!(report.records[2].fate.failure.as_ref().unwrap().error_type, "redelivered_anyway");
}

#[tokio::test]
async fn every_outcome_is_counted_in_one_summary_line() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    // As `make run` does: three shards, a write queue that takes two shard-level operations per request.
    h.es.set_shards(3);
    h.es.set_write_queue(Some(2));
    let event = parse_event(include_str!("../../events/kinesis.json"));

    let report = h.deliver(&event).await;

    let summaries = logs.matching("INFO", "Batch done");
    assert_eq!(summaries.len(), 1);
    let line = &summaries[0];
    for outcome in Outcome::ALL {
        assert_eq!(line[outcome.name()], report.summary.count(outcome), "{}", outcome.name());
    }
    assert_eq!(line["records"], 14);
    assert_eq!(line["documents"], 18, "the KPL record holds 3, the NDJSON record 3");
    assert_eq!(line["bulk_requests"], 1);
    let (body, wire) = (line["body_bytes"].as_u64().unwrap(), line["bytes_sent"].as_u64().unwrap());
    assert!(body > 1000 && wire < body, "{body} bytes of body, {wire} on the wire");
    assert!(line.get("es_ms").is_some() && line.get("firehose_ms").is_some());
    assert_eq!(
        tally(&report),
        [("indexed", 8), ("to_firehose", 3), ("rejected", 2), ("skipped", 1)].into_iter().collect()
    );
}

/// Runs `make firehose-pipeline`'s script against the double, as a user would against a cluster.
async fn install_firehose_pipeline(es: &testkit::EsDouble) {
    let url = es.url();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/firehose_pipeline.py"))
            .env("ES_URL", url)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// s20's exactly-once runs on the double's emulation of ingest pipelines: `deploy/firehose-pipeline.json` must be
/// a pipeline Elasticsearch accepts, written only with what the double runs as Elasticsearch does. The double
/// refuses what a cluster refuses, and what it would not run faithfully.
#[tokio::test]
async fn the_deployed_firehose_pipeline_uses_only_documented_processor_options() {
    let es = testkit::EsDouble::start().await;
    let deployed: Value = serde_json::from_str(include_str!("../../deploy/firehose-pipeline.json")).unwrap();
    assert_eq!(es.install_pipeline("kinesis-es-indexer-firehose", &deployed), Ok(()));

    let with = |processor: Value| json!({"description": "d", "processors": [processor]});
    for (pipeline, refusal) in [
        (with(json!({"rename": {"field": "a", "target_field": "b"}})), "No processor type exists with name [rename]"),
        (
            with(json!({"set": {"field": "_id", "value": "{{es_target._id}}", "ignore_empty": true}})),
            "processor [set] doesn't support one or more provided configuration parameters [\"ignore_empty\"]",
        ),
        (
            with(json!({"set": {"field": "_id", "value": "x", "if": "ctx.a != null"}})),
            "the double does not run [set]'s [if]",
        ),
        (
            with(json!({"set": {"field": "_id", "value": "x", "override": false}})),
            "the double does not run [set]'s [override]",
        ),
        (with(json!({"set": {"field": "_id"}})), "[set] [value] required property is missing"),
        (with(json!({"set": {"field": ["_id"], "value": "x"}})), "[set] [field] must be a string"),
        (
            with(json!({"remove": {"field": "es_target", "ignore_missing": "yes"}})),
            "[remove] [ignore_missing] must be a boolean",
        ),
        (with(json!({"remove": {"keep": ["a"]}})), "the double does not run [remove]'s [keep]"),
        (
            with(json!({"set": {"field": "a", "value": "b"}, "remove": {"field": "c"}})),
            "a processor is an object with one key",
        ),
        (json!({"processors": [], "on_failure": []}), "the double does not run a pipeline's on_failure"),
        (json!({"processor": []}), "pipeline doesn't support the parameter [processor]"),
        (json!({"description": "no processors"}), "[processors] required property is missing"),
    ] {
        let refused = es.install_pipeline("p", &pipeline).expect_err(&pipeline.to_string());
        assert!(refused.starts_with(refusal), "{pipeline}: {refused}");
    }
}

#[tokio::test]
async fn s20_a_document_parked_in_firehose_and_then_redelivered_exists_once() {
    let h = Harness::start(&[]).await;
    install_firehose_pipeline(&h.es).await;
    h.es.set_write_queue(Some(0));
    let event = event(&plain_payloads(2));
    assert_eq!(outcomes(&h.deliver(&event).await), vec![ToFirehose; 2]);

    // Firehose delivers first; then Kinesis redelivers the same records (they were also reported back, say).
    assert_eq!(h.es.deliver_as_firehose(FIREHOSE_INDEX, &h.firehose.records()), vec![201, 201]);
    h.es.set_write_queue(None);
    assert_eq!(outcomes(&h.deliver(&event).await), vec![AlreadyThere; 2]);

    let stored = h.es.documents();
    assert_eq!(stored.len(), 2, "once each: {stored:?}");
    assert_eq!((stored[0].0.as_str(), stored[0].1.as_str()), ("logs-2026.11.22", doc_id(0, 0).as_str()));
    assert!(stored[0].2.get("es_target").is_none(), "the pipeline removes the target field");
    assert_eq!(stored[0].2["message"], "record 0");
}

#[tokio::test]
async fn s20_a_document_written_directly_and_then_delivered_by_firehose_exists_once() {
    let h = Harness::start(&[]).await;
    install_firehose_pipeline(&h.es).await;
    h.es.set_write_queue(Some(0));
    let event = event(&plain_payloads(2));
    h.deliver(&event).await;
    h.es.set_write_queue(None);
    assert_eq!(outcomes(&h.deliver(&event).await), vec![Indexed; 2]);
    let direct = h.es.documents();

    // Firehose's delivery arrives later and lands on the same documents.
    assert_eq!(h.es.deliver_as_firehose(FIREHOSE_INDEX, &h.firehose.records()), vec![200, 200]);

    assert_eq!(h.es.documents(), direct, "same documents, same sources, nothing in Firehose's index");
}

/// Lambda resumes from the lowest sequence number named, but the README promises every record going back is named:
/// records 1, 3 and 5 go to a flood-stage index, the others are written.
#[tokio::test]
async fn every_record_going_back_is_named_in_the_response_not_only_the_lowest() {
    let h = Harness::start(&[]).await;
    h.es.set_index_fault("logs-2026.11.22", Some(IndexFault::FloodStage));
    let days = ["2026-11-21T10:00:00Z", "2026-11-22T10:00:00Z"];
    let payloads = json_payloads(&(0..6).map(|i| json!({"n": i, "@timestamp": days[i % 2]})).collect::<Vec<_>>());

    let report = h.deliver(&event(&payloads)).await;

    let named: Vec<String> =
        report.response().batch_item_failures.into_iter().filter_map(|failure| failure.item_identifier).collect();
    assert_eq!(named, [1, 3, 5].map(sequence));
    assert_eq!(h.es.count(), 3);
}

/// NDJSON whose text does not end in a newline, or ends its lines with CRLF, loses no line.
#[tokio::test]
async fn ndjson_without_a_final_newline_or_with_crlf_keeps_every_line() {
    let h = Harness::start(&[]).await;
    let payloads = vec![b"{\"n\":1}\n{\"n\":2}".to_vec(), b"{\"n\":3}\r\n{\"n\":4}\r\n{\"n\":5}".to_vec()];

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![Indexed, Indexed]);
    let mut written: Vec<Option<i64>> = h.es.documents().iter().map(|(_, _, source)| source["n"].as_i64()).collect();
    written.sort_unstable();
    assert_eq!(written, [1, 2, 3, 4, 5].map(Some), "every line a document of its own, the last one too");
}
