//! FAULTS.md 21–30, what real producers send and real clusters answer: one or more tests each (named `sNN_…`),
//! against the doubles.

use kinesis_es_indexer::Outcome::*;
use serde_json::json;

use crate::support::*;

/// Records stamped on two days: the first `old` on 2026-11-21 (an index that exists), the rest on 2026-11-22.
fn two_days(old: usize, new: usize) -> Vec<Vec<u8>> {
    let stamp = |i: usize, day: &str| json!({"@timestamp": format!("2026-11-{day}T10:00:{i:02}Z"), "n": i});
    json_payloads(&(0..old).map(|i| stamp(i, "21")).chain((old..old + new).map(|i| stamp(i, "22"))).collect::<Vec<_>>())
}

#[tokio::test]
async fn s23_a_shard_limit_at_the_daily_rollover_keeps_the_new_day_in_kinesis_with_what_to_fix() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    h.es.create_index("logs-2026.11.21");
    h.es.set_max_indices(Some(1));
    let event = event(&two_days(2, 3));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed, Indexed, BackToKinesis, BackToKinesis, BackToKinesis]);
    assert_eq!(report.summary.documents_rejected, 0, "the documents are not at fault");
    assert_eq!(report.summary.documents_refused, 3);
    assert!(logs.matching("ERROR", "Document rejected").is_empty());
    let errors = logs.matching("ERROR", "Records go back to Kinesis");
    assert_eq!(errors.len(), 1, "one line per cause: {errors:?}");
    assert_eq!(errors[0]["records"], 3);
    assert_eq!(errors[0]["cause"], "shard_limit");
    assert_eq!(errors[0]["error_type"], "validation_exception");
    assert!(errors[0]["fix"].as_str().unwrap().contains("max_shards_per_node"), "{}", errors[0]);

    // An operator deletes old indices; Lambda redelivers: every document once.
    h.es.set_max_indices(None);
    let second = h.deliver(&redelivery(&event, &report).unwrap()).await;
    assert_eq!(outcomes(&second), vec![Indexed; 3]);
    assert_eq!(h.es.count(), 5);
}

#[tokio::test]
async fn s23_a_missing_pipeline_keeps_records_in_kinesis_until_it_exists() {
    let logs = Logs::capture();
    let h = Harness::start(&[("ES_PIPELINE", "enrich")]).await;
    let event = event(&plain_payloads(2));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    let line = &logs.matching("ERROR", "Records go back to Kinesis")[0];
    assert_eq!(line["cause"], "missing_pipeline");
    assert!(line["reason"].as_str().unwrap().contains("pipeline with id [enrich] does not exist"));
    assert!(line["fix"].as_str().unwrap().contains("ES_PIPELINE"));

    h.es.install_pipeline("enrich", &json!({"processors": [{"set": {"field": "enriched", "value": "yes"}}]})).unwrap();
    let second = h.deliver(&redelivery(&event, &report).unwrap()).await;
    assert_eq!(outcomes(&second), vec![Indexed; 2]);
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(0, 0)).unwrap()["enriched"], "yes", "sent through it");
}

#[tokio::test]
async fn s23_an_alias_without_a_write_index_keeps_records_in_kinesis() {
    let logs = Logs::capture();
    let h = Harness::start(&[("ES_INDEX", "app-logs")]).await;
    h.es.add_alias_without_write_index("app-logs");

    let report = h.deliver(&event(&plain_payloads(3))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 3]);
    let line = &logs.matching("ERROR", "Records go back to Kinesis")[0];
    assert_eq!(line["cause"], "no_write_index");
    assert!(line["fix"].as_str().unwrap().contains("is_write_index"));
    assert_eq!(h.es.count(), 0);
}

#[tokio::test]
async fn s23_an_unknown_refusal_is_kept_in_kinesis_not_lost() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    h.es.set_index_fault("logs-2026.11.22", Some(testkit::IndexFault::Refuse(400, "plugin_says_no_exception")));

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    let line = &logs.matching("ERROR", "Records go back to Kinesis")[0];
    assert_eq!(line["cause"], "unrecognized_refusal");
    assert_eq!(line["error_type"], "plugin_says_no_exception");
    assert!(logs.matching("ERROR", "Document rejected").is_empty(), "an unknown 400 is never taken for a bad document");
}

#[tokio::test]
async fn s24_a_collection_that_refuses_ids_is_never_a_bad_document_and_says_which_setting_to_change() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    h.es.set_refuse_document_ids(true);
    let event = event(&plain_payloads(3));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 3]);
    assert!(logs.matching("ERROR", "Document rejected").is_empty());
    let line = &logs.matching("ERROR", "Records go back to Kinesis")[0];
    assert_eq!(line["cause"], "document_id_refused");
    assert!(line["fix"].as_str().unwrap().contains("ES_DOC_ID=none"), "{line}");
}

/// A KPL fixture made by AWS's aggregation library: its aggregate's bytes.
fn kpl_fixture(name: &str) -> Vec<u8> {
    use base64::Engine;
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/kpl_aggregates.json")).expect("fixtures");
    base64::engine::general_purpose::STANDARD.decode(fixtures[name]["aggregate_base64"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn s21_kpl_aggregates_become_one_document_per_user_record_with_stable_ids() {
    let h = Harness::start(&[]).await;
    let event = event(&[kpl_fixture("json_objects"), b"{\"plain\":true}".to_vec(), kpl_fixture("mixed_kinds")]);

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed; 3]);
    assert_eq!(report.records[0].record.documents().len(), 3);
    // mixed_kinds: an object, a text line, three NDJSON lines, gzip inside, a CloudWatch envelope of two events.
    assert_eq!(report.records[2].record.documents().len(), 1 + 1 + 3 + 1 + 2);
    let paid = h.es.document("logs-2026.11.22", &doc_id(0, "2.0")).expect("the third user record");
    assert_eq!(paid["message"], "paid");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(2, "2.1")).unwrap()["n"], 2, "NDJSON inside KPL");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(2, "3.0")).unwrap()["message"], "gzip inside the aggregate");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(2, "4.1")).unwrap()["message"], "second");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(1, 0)).unwrap()["plain"], true);

    let again = h.deliver(&event).await;
    assert_eq!(outcomes(&again), vec![AlreadyThere; 3], "a redelivery makes the same _ids");
    assert_eq!(h.es.count(), 3 + 1 + 8);
}

#[tokio::test]
async fn s21_a_corrupt_aggregate_is_rejected_as_one_record_and_the_batch_goes_on() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    let mut bad_digest = kpl_fixture("json_objects");
    *bad_digest.last_mut().unwrap() ^= 1;
    let mut truncated = kpl_fixture("json_objects");
    truncated.truncate(truncated.len() - 30);
    let event = event(&[bad_digest, b"{\"n\":1}".to_vec(), truncated, kpl_fixture("bad_key_index")]);

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Rejected, Indexed, Rejected, Rejected]);
    assert!(report.response().batch_item_failures.is_empty(), "never blocks the shard");
    let lines = logs.matching("ERROR", "Record rejected");
    assert_eq!(lines.len(), 3);
    for (line, sequence_number) in lines.iter().zip([sequence(0), sequence(2), sequence(3)]) {
        assert_eq!(line["error_type"], "corrupt_kpl_aggregate");
        assert_eq!(line["sequence_number"], sequence_number, "the line names the record");
    }
    assert!(lines[0]["reason"].as_str().unwrap().contains("MD5"));
    assert!(lines[2]["reason"].as_str().unwrap().contains("key 5 of a table of 1"));
}

#[tokio::test]
async fn s21_a_bad_user_record_is_rejected_while_its_siblings_are_indexed() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    let aggregate = testkit::kpl::aggregate(&[("a", b"{\"n\":1}"), ("a", b"caf\xe9"), ("b", b"{\"n\":3}")]);

    let report = h.deliver(&event(&[aggregate])).await;

    assert_eq!(outcomes(&report), vec![Rejected]);
    assert_eq!(h.es.count(), 2, "the good user records are written");
    assert!(h.es.document("logs-2026.11.22", &doc_id(0, "2.0")).is_some());
    let line = &logs.matching("ERROR", "Record part rejected")[0];
    assert_eq!(line["part"], "user record 1");
    assert_eq!(line["error_type"], "invalid_utf8");
}

#[tokio::test]
async fn s22_an_ndjson_record_becomes_one_document_per_line() {
    let h = Harness::start(&[]).await;
    let ndjson =
        b"{\"n\":1}\n\n{\"n\":2,\"@timestamp\":\"2026-11-21T09:00:00Z\"}\r\nnot json at all\n{\"n\":4}\n".to_vec();
    let pretty = b"{\n  \"pretty\": true,\n  \"nested\": {\"a\": 1}\n}\n".to_vec();
    let event = event(&[ndjson, pretty]);

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed, Indexed]);
    assert_eq!(report.records[0].record.documents().len(), 4, "blank lines skipped");
    assert_eq!(report.records[1].record.documents().len(), 1, "a pretty-printed object is one document");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(0, 0)).unwrap()["n"], 1);
    assert_eq!(h.es.document("logs-2026.11.21", &doc_id(0, 1)).unwrap()["n"], 2, "each line names its own index");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(0, 2)).unwrap()["message"], "not json at all");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(1, 0)).unwrap()["nested"]["a"], 1);

    assert_eq!(outcomes(&h.deliver(&event).await), vec![AlreadyThere; 2]);
    assert_eq!(h.es.count(), 5);
}

#[tokio::test]
async fn s24_without_ids_a_timeseries_collection_takes_every_document() {
    let h = Harness::start(&[("ES_DOC_ID", "none")]).await;
    h.es.set_refuse_document_ids(true);
    h.es.set_write_queue(Some(1));
    let payloads = json_payloads(&[json!({"n": 0}), json!({"n": 1}), json!({"@timestamp": "2026-11-21T10:00:00Z"})]);

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![Indexed, Indexed, ToFirehose]);
    assert_eq!(h.es.count(), 2);
    let requests = h.es.requests();
    assert!(requests[0].ids.iter().all(String::is_empty), "no _id is sent: {:?}", requests[0].ids);
    let parked = h.firehose.documents();
    assert_eq!(parked[0]["es_target"], json!({"_index": "logs-2026.11.21"}), "Firehose's copy carries no _id either");
}

#[tokio::test]
async fn s24_ids_can_come_from_a_field_and_a_document_without_it_is_rejected_clearly() {
    let logs = Logs::capture();
    let h = Harness::start(&[("ES_DOC_ID", "field:order.id")]).await;
    let event = event(&json_payloads(&[
        json!({"order": {"id": "A-1"}, "n": 1}),
        json!({"order.id": 42, "n": 2}),
        json!({"n": 3}),
        json!({"order": {"id": "A-1"}, "n": 4}),
    ]));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed, Indexed, Rejected, AlreadyThere]);
    assert_eq!(h.es.document("logs-2026.11.22", "A-1").unwrap()["n"], 1, "deduplicated on the business key");
    assert_eq!(h.es.document("logs-2026.11.22", "42").unwrap()["n"], 2);
    let line = &logs.matching("ERROR", "Record part rejected")[0];
    assert_eq!(line["error_type"], "no_document_id");
    assert_eq!(line["sequence_number"], sequence(2));
    assert!(line["reason"].as_str().unwrap().contains("order.id"), "{line}");
}

#[tokio::test]
async fn s27_absurd_timestamps_keep_their_value_but_name_the_arrival_index() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    // As a logs index template does: otherwise the first value (epoch seconds) would map the field as a number.
    for day in ["logs-2026.11.19", "logs-2026.11.22"] {
        h.es.map_field(day, "@timestamp", "date");
    }
    // The event's records arrive on 2026-11-22.
    let event = event(&json_payloads(&[
        json!({"@timestamp": 1795334400, "unit": "seconds read as milliseconds: 1970"}),
        json!({"@timestamp": "2999-01-01T00:00:00Z"}),
        json!({"@timestamp": "2026-11-19T23:00:00Z", "late": "three days, within the bound"}),
        json!({"@timestamp": "2026-11-22T07:59:00Z"}),
    ]));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed; 4]);
    assert_eq!(report.summary.timestamps_out_of_range, 2);
    assert_eq!(logs.matching("INFO", "Batch done")[0]["timestamps_out_of_range"], 2);
    let kept = h.es.document("logs-2026.11.22", &doc_id(0, 0)).expect("in the arrival day's index");
    assert_eq!(kept["@timestamp"], 1795334400, "the document keeps its value");
    assert!(h.es.document("logs-2026.11.22", &doc_id(1, 0)).is_some());
    assert!(h.es.document("logs-2026.11.19", &doc_id(2, 0)).is_some());
    let indices: std::collections::BTreeSet<String> = h.es.documents().into_iter().map(|(i, _, _)| i).collect();
    assert_eq!(indices.into_iter().collect::<Vec<_>>(), vec!["logs-2026.11.19", "logs-2026.11.22"]);

    let tight = Harness::start(&[("TIMESTAMP_MAX_SKEW_SECONDS", "3600")]).await;
    assert_eq!(tight.deliver(&event).await.summary.timestamps_out_of_range, 3, "the bound is configurable");
}

#[tokio::test]
async fn s28_two_streams_with_the_same_shard_and_sequence_numbers_never_collide() {
    let h = Harness::start(&[]).await;
    let first = event(&plain_payloads(2));
    let second = edit_records(&event(&plain_payloads(2)), |_, record| {
        record["eventSourceARN"] = json!("arn:aws:kinesis:eu-west-1:123456789012:stream/billing-logs");
    });

    let a = h.deliver(&first).await;
    let b =
        kinesis_es_indexer::handle(&second, tokio::time::Instant::now() + std::time::Duration::from_secs(60), &h.deps)
            .await;

    assert_eq!(outcomes(&a), vec![Indexed; 2]);
    assert_eq!(outcomes(&b), vec![Indexed; 2], "not mistaken for a redelivery");
    assert_eq!(h.es.count(), 4);
}

#[tokio::test]
async fn s29_a_json_object_with_a_messagetype_field_is_the_document_it_is() {
    let h = Harness::start(&[]).await;
    let event = event(&json_payloads(&[
        // On another day, so that the two `messageType`s (a number, a string) land in different mappings.
        json!({"@timestamp": "2026-11-21T10:00:00Z", "messageType": 3, "logEvents": [{"timestamp": 1, "message": "x"}], "logGroup": "g", "logStream": "s"}),
        json!({"messageType": "DATA_MESSAGE", "logEvents": {"not": "an array"}}),
    ]));

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed, Indexed]);
    assert_eq!(h.es.document("logs-2026.11.21", &doc_id(0, 0)).unwrap()["messageType"], 3);
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(1, 0)).unwrap()["logEvents"]["not"], "an array");
}

#[tokio::test]
async fn s26_a_function_with_a_two_second_timeout_indexes_normally() {
    // DEADLINE_MARGIN_MS' default is 2,000 ms: taken whole, it would leave no time at all.
    let h = Harness::start(&[]).await;
    let event = event(&plain_payloads(3));

    let report = h.deliver_within(&event, std::time::Duration::from_secs(2)).await;

    assert_eq!(outcomes(&report), vec![Indexed; 3]);
    assert_eq!(h.es.count(), 3);
}

#[tokio::test]
async fn s26_a_deadline_too_short_for_any_request_is_an_error_once_per_cold_start() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    let event = event(&plain_payloads(2));

    let first = h.deliver_within(&event, std::time::Duration::from_millis(60)).await;
    let second = h.deliver_within(&event, std::time::Duration::from_millis(60)).await;

    for report in [&first, &second] {
        assert_eq!(outcomes(report), vec![BackToKinesis; 2]);
        assert_eq!(report.records[0].fate.failure.as_ref().unwrap().error_type, "deadline");
    }
    assert!(h.es.requests().is_empty());
    let errors = logs.matching("ERROR", "The invocation's time is too short");
    assert_eq!(errors.len(), 1, "once per cold start, not once per invocation");
    assert_eq!(errors[0]["allowed_ms"].as_u64().map(|ms| ms <= 60), Some(true), "{}", errors[0]);
    assert!(errors[0]["message"].as_str().unwrap().contains("Raise the function's timeout"));
}

/// What a batch went through during an outage, redelivered as Lambda does: at once, while retries are left.
#[derive(Debug)]
struct OutageRun {
    /// Invocations that found the cluster away (each one a retry Lambda counts).
    retries: usize,
    /// Bulk requests the cluster received while it was away.
    requests: usize,
    /// Whether the batch ran out of retries (its records would leave for the on-failure destination).
    out_of_retries: bool,
}

/// Cuts the cluster for `outage` under a function with a 3 s timeout and drives a 40-record batch until nothing is
/// reported back or `retry_budget` retries are spent (`MaximumRetryAttempts`).
async fn through_an_outage(
    overrides: &[(&str, &str)],
    outage: std::time::Duration,
    retry_budget: usize,
) -> (OutageRun, Harness) {
    let h = Harness::start(&[&[("BULK_MAX_DOCS", "10")], overrides].concat()).await;
    let first = event(&plain_payloads(40));
    h.es.set_outage(outage);
    let mut batch = Some(first);
    let mut run = OutageRun { retries: 0, requests: 0, out_of_retries: false };
    while let Some(pending) = batch.take() {
        let report = h
            .deliver_checked(&pending, std::time::Duration::from_secs(3))
            .await
            .unwrap_or_else(|broken| panic!("{broken}"));
        batch = redelivery(&pending, &report);
        if batch.is_some() {
            run.retries += 1;
            if run.retries >= retry_budget {
                run.out_of_retries = true;
                break;
            }
        }
    }
    run.requests = h.es.requests_during_outage();
    (run, h)
}

#[tokio::test]
async fn s25_an_outage_is_paced_spends_few_retries_and_requests_and_loses_nothing() {
    // 3 s in `make test`; `S25_OUTAGE_SECONDS=20 cargo test --test pipeline s25_an -- --nocapture` measures longer ones.
    let seconds = std::env::var("S25_OUTAGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let outage = std::time::Duration::from_secs(seconds);
    // Today's behaviour, for comparison: no pacing, Lambda's immediate retries (a budget large enough to see them all).
    let (unpaced, _) = through_an_outage(&[("PACING_MAX_MS", "0")], outage, 1_000_000).await;
    // Pacing at a test's scale: 100 ms doubling up to 1 s (the defaults are 250 ms and 20 s).
    let (paced, h) = through_an_outage(&[("PACING_BASE_MS", "100"), ("PACING_MAX_MS", "1000")], outage, 100).await;
    println!("outage of {outage:?}: unpaced {unpaced:?}; paced {paced:?}");

    assert!(!paced.out_of_retries, "the outage does not spend a budget of 100 retries: {paced:?}");
    assert!(paced.retries as u64 <= 4 + 8 * seconds, "{paced:?}");
    assert!(paced.requests <= paced.retries + 1, "one probe per paced invocation, not the whole batch: {paced:?}");
    assert!(
        paced.retries * 5 <= unpaced.retries && paced.requests * 5 <= unpaced.requests,
        "pacing spends a small fraction of the retries and requests: paced {paced:?}, unpaced {unpaced:?}"
    );
    assert_eq!(h.es.count(), 40, "after the outage every record is indexed");
    for (index, id, _) in h.es.documents() {
        assert_eq!(h.es.version(&index, &id), Some(1), "and none twice");
    }
}

#[tokio::test]
async fn s25_pacing_waits_within_the_deadline_and_says_so_in_the_summary() {
    let logs = Logs::capture();
    let h = Harness::start(&[("PACING_BASE_MS", "400"), ("PACING_MAX_MS", "60000")]).await;
    h.es.set_outage(std::time::Duration::from_secs(30));
    let event = event(&plain_payloads(3));

    let mut paced = Vec::new();
    for _ in 0..6 {
        let started = std::time::Instant::now();
        let report = h.deliver_within(&event, std::time::Duration::from_millis(1200)).await;
        assert!(started.elapsed() < std::time::Duration::from_millis(1200), "answered before the deadline");
        assert_eq!(outcomes(&report), vec![BackToKinesis; 3]);
        paced.push(report.summary.paced);
    }

    // 1.2 s allowed: a margin of 300 ms; the wait never goes past it, however long the backoff has grown.
    assert!(paced.iter().all(|p| *p <= std::time::Duration::from_millis(900)), "{paced:?}");
    assert!(paced.iter().any(|p| !p.is_zero()), "{paced:?}");
    let summaries = logs.matching("INFO", "Batch done");
    assert_eq!(summaries[0]["probe"], false);
    assert_eq!(summaries[1]["probe"], true, "after an invocation that found the cluster away, one document goes first");
    assert_eq!(summaries[1]["bulk_requests"], 1, "the probe failed: nothing more is sent");
    assert!(summaries.iter().any(|s| s["paced_ms"].as_u64().unwrap() > 0));
}

#[tokio::test]
async fn s25_pacing_ends_with_the_first_normal_answer() {
    let h = Harness::start(&[("PACING_BASE_MS", "50"), ("PACING_MAX_MS", "100")]).await;
    h.es.push_fault(testkit::Fault::unavailable());
    let event = event(&plain_payloads(4));

    let first = h.deliver(&event).await;
    assert_eq!(outcomes(&first), vec![BackToKinesis; 4]);
    let second = h.deliver(&redelivery(&event, &first).unwrap()).await;
    assert!(second.summary.probe, "the redelivery probes first");
    assert_eq!(outcomes(&second), vec![Indexed; 4]);
    assert_eq!(second.summary.indexing.requests, 2, "the probe, then the rest");
    assert_eq!(second.summary.paced, std::time::Duration::ZERO);
    let third = h.deliver(&event).await;
    assert!(!third.summary.probe, "pacing is over");
}

#[tokio::test]
async fn the_summary_says_how_old_the_oldest_record_is() {
    let logs = Logs::capture();
    let h = Harness::start(&[]).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let event = edit_records(&event(&plain_payloads(3)), |i, record| {
        record["kinesis"]["approximateArrivalTimestamp"] = json!(now - [90.0, 300.0, 5.0][i]);
    });

    let report = h.deliver(&event).await;

    let age = report.summary.oldest_record_age.expect("records carry arrival times");
    assert!((299_000..=302_000).contains(&(age.as_millis() as u64)), "{age:?}");
    assert_eq!(logs.matching("INFO", "Batch done")[0]["oldest_record_age_ms"], age.as_millis() as u64);
}

/// A record without `approximateArrivalTimestamp` (a hand-made event) whose document has no timestamp of its own:
/// named and stamped by the Unix epoch, never by the clock, so that a redelivery on another day writes the same `_id`
/// into the same index. A document with its own timestamp keeps it.
#[tokio::test]
async fn a_record_without_an_arrival_time_is_indexed_by_a_time_that_does_not_change_with_the_day() {
    let h = Harness::start(&[]).await;
    let payloads = vec![b"a line of text".to_vec(), br#"{"@timestamp":"2026-11-20T10:00:00Z","n":1}"#.to_vec()];
    let event = edit_records(&event(&payloads), |_, record| {
        record["kinesis"].as_object_mut().unwrap().remove("approximateArrivalTimestamp");
    });

    let report = h.deliver(&event).await;

    assert_eq!(outcomes(&report), vec![Indexed; 2]);
    let stored: std::collections::BTreeMap<String, (String, serde_json::Value)> =
        h.es.documents().into_iter().map(|(index, id, source)| (id, (index, source))).collect();
    let (index, source) = &stored[&doc_id(0, 0)];
    assert_eq!(index, "logs-1970.01.01");
    assert_eq!(source["@timestamp"], "1970-01-01T00:00:00.000Z");
    assert_eq!(source["message"], "a line of text");
    assert_eq!(stored[&doc_id(1, 0)].0, "logs-2026.11.20", "its own timestamp, with no arrival time to bound it by");
    assert_eq!(report.summary.documents_undated, 1);
}

#[tokio::test]
async fn a_canary_record_is_indexed_like_any_other_and_its_age_from_arrival_is_reported_once_indexed() {
    let h = Harness::start(&[]).await;
    let canary = br#"{"kinesis_es_indexer_canary":true,"message":"kinesis-es-indexer canary"}"#.to_vec();
    let not_canary = br#"{"kinesis_es_indexer_canary":false}"#.to_vec();
    let event = event(&[not_canary.clone(), canary.clone()]);
    // The test's own arrival of record 1 (support::event: 2026-11-22T08:00:00Z + 250 ms a record).
    let arrival = chrono::DateTime::from_timestamp_millis(1_795_334_400_250).unwrap();
    let least = (chrono::Utc::now() - arrival).to_std().unwrap();

    let report = h.deliver(&event).await;

    let most = (chrono::Utc::now() - arrival).to_std().unwrap();
    assert_eq!(outcomes(&report), [Indexed, Indexed]);
    let age = report.summary.canary_age.expect("the canary's age is reported");
    assert!(least <= age && age <= most, "{least:?} <= {age:?} <= {most:?}");
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(1, 0)).unwrap()["kinesis_es_indexer_canary"], true);

    // Not indexed (the cluster away: back to Kinesis), or not a canary: no age.
    let away = Harness::start(&[]).await;
    away.es.push_fault(testkit::Fault::unavailable());
    let report = away.deliver(&event_from(2, std::slice::from_ref(&canary))).await;
    assert_eq!((outcomes(&report), report.summary.canary_age), (vec![BackToKinesis], None));
    let report = h.deliver(&event_from(3, &[not_canary])).await;
    assert_eq!(report.summary.canary_age, None);

    // Filters that would drop it and `_id`s from a field it lacks: it is indexed all the same (its `_id` the
    // cluster's), or the canary would raise its alarm on a healthy stack.
    let filtered = Harness::start(&[("FILTER_INCLUDE", "ERROR"), ("ES_DOC_ID", "field:request_id")]).await;
    let report = filtered.deliver(&event_from(4, &[canary])).await;
    assert_eq!((outcomes(&report), filtered.es.count()), (vec![Indexed], 1));
    assert!(report.summary.canary_age.is_some());
}
