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
