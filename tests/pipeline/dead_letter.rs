//! The dead letter (`DEAD_LETTER_BUCKET`): a document the cluster rejects for its own fault is kept whole in S3, in
//! Firehose's backup format, and comes back with the replay once the mapping is fixed; when S3 does not take it,
//! its record goes back to Kinesis. Every delivery is checked by the invariant.

use std::time::Duration;

use kinesis_es_indexer::Outcome::*;
use kinesis_es_indexer::budget::Budget;
use kinesis_es_indexer::replay::backup::{self, BackedUp, Replayed};
use kinesis_es_indexer::replay::backup_object::{backup_lines, read_backup};
use serde_json::{Value, json};
use testkit::S3Double;

use crate::support::*;

const BUCKET: &str = "stack-failedbatchesbucket-1a2b3c";
/// The index the test records go to: they arrive on 2026-11-22.
const INDEX: &str = "logs-2026.11.22";

/// The lines of the dead letter's objects, and the documents `make replay` reads from them (`replay::backup_object`).
fn backed_up(s3: &S3Double) -> Vec<(String, Vec<Value>, Vec<BackedUp>)> {
    s3.objects()
        .into_iter()
        .map(|(key, body)| {
            let lines: Vec<Value> = String::from_utf8(body.clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            let read = backup_lines(&body).unwrap().expect("the dead letter's objects are in Firehose's backup format");
            let object = read_backup(&read);
            assert_eq!(object.unreadable, [], "{key}");
            (key, lines, object.documents)
        })
        .collect()
}

#[tokio::test]
async fn a_document_refused_for_its_mapping_is_kept_whole_and_replayed_once_the_mapping_is_fixed() {
    let s3 = S3Double::start().await;
    let h = Harness::start(&[("DEAD_LETTER_BUCKET", BUCKET)]).await.with_dead_letter(&s3);
    // `level` is a number in this index: two producers' string levels are refused, the third record fits.
    h.es.map_field(INDEX, "level", "long");
    let sent = [
        json!({"level": "INFO", "message": "order placed", "order": {"id": 7}}),
        json!({"level": 3, "message": "order paid"}),
        json!({"level": "WARN", "message": "order late"}),
    ];
    let logs = Logs::capture();

    let report = h.deliver(&event(&json_payloads(&sent))).await;

    assert_eq!(outcomes(&report), [Rejected, Indexed, Rejected]);
    assert_eq!(h.es.bulk_requests_arrived(), 1, "records that are objects as they came have no other form to send");
    assert_eq!(report.summary.indexing.unstructured, 0);
    assert_eq!(report.summary.documents_dead_lettered, 2);
    let objects = backed_up(&s3);
    assert_eq!(objects.len(), 1, "one object per invocation");
    let (key, lines, _) = &objects[0];
    assert!(key.starts_with(&format!("{BUCKET}/rejected-documents/")), "{key}");
    for (line, record) in lines.iter().zip([0, 2]) {
        assert_eq!((line["esIndexName"].as_str(), line["errorCode"].as_str()), (Some(INDEX), Some("400")));
        assert_eq!(line["esDocumentId"].as_str(), Some(doc_id(record, 0).as_str()));
        assert_eq!(line["kinesisSequenceNumber"].as_str(), Some(sequence(record).as_str()));
        let error: Value = serde_json::from_str(line["errorMessage"].as_str().unwrap()).unwrap();
        assert!(error["reason"].as_str().unwrap().contains("[level]"), "{error}");
    }
    // Whole: the document the test sent, with the target the replay writes it at and the timestamp it was given.
    let (_, _, documents) = &objects[0];
    let mut kept: Value = serde_json::from_str(&documents[0].raw).unwrap();
    assert_eq!(kept["es_target"], json!({"_id": doc_id(0, 0), "_index": INDEX}));
    let kept = kept.as_object_mut().unwrap();
    kept.remove("es_target");
    kept.remove("@timestamp");
    assert_eq!(Value::Object(kept.clone()), sent[0]);
    let errors = logs.matching("ERROR", "Document rejected by Elasticsearch");
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|line| line["dead_letter"] == format!("s3://{key}")), "{errors:?}");

    // Replayed while the mapping still refuses them: listed again, nothing written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let replayed = backup::replay(documents, Budget::new(deadline, Duration::ZERO), &h.deps).await;
    assert!(
        replayed.iter().all(|r| matches!(r, Replayed::Rejected(f) if f.reason.contains("[level]"))),
        "{replayed:?}"
    );
    // The operator maps `level` as text (a new index would take the template's mapping): each is written once.
    h.es.map_field(INDEX, "level", "text");
    let replayed = backup::replay(documents, Budget::new(deadline, Duration::ZERO), &h.deps).await;
    assert_eq!(replayed, [Replayed::Indexed, Replayed::Indexed]);
    for record in [0, 2] {
        assert_eq!(h.es.version(INDEX, &doc_id(record, 0)), Some(1));
    }
    let replayed = backup::replay(documents, Budget::new(deadline, Duration::ZERO), &h.deps).await;
    assert_eq!(replayed, [Replayed::AlreadyThere, Replayed::AlreadyThere], "a second replay writes nothing");
    assert_eq!(h.es.documents().len(), 3);
}

#[tokio::test]
async fn when_s3_does_not_take_the_dead_letter_the_records_go_back_to_kinesis_and_nothing_is_lost() {
    let s3 = S3Double::start().await;
    let h = Harness::start(&[("DEAD_LETTER_BUCKET", BUCKET)]).await.with_dead_letter(&s3);
    h.es.map_field(INDEX, "level", "long");
    let sent = [json!({"level": 1}), json!({"level": "INFO"}), json!({"level": 2}), json!({"level": "WARN"})];
    // Before them, a record rejected for its data alone (not UTF-8): nothing of it for the dead letter, so it stays
    // rejected whatever S3 answers.
    let mut payloads = vec![b"caf\xe9".to_vec()];
    payloads.extend(json_payloads(&sent));
    let event = event(&payloads);
    for (status, code, cause) in
        [(503, "SlowDown", "dead_letter_refused"), (403, "AccessDenied", "dead_letter_misconfigured")]
    {
        s3.set_refusing(Some((status, code)));
        let logs = Logs::capture();

        let report = h.deliver(&event).await;

        let written = outcomes(&report)[3];
        assert!(matches!(written, Indexed | AlreadyThere), "{code}: the record that fits stays written");
        assert_eq!(outcomes(&report), [Rejected, written, BackToKinesis, written, BackToKinesis], "{code}");
        let back: Vec<_> =
            report.response().batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect();
        assert_eq!(back, [sequence(2), sequence(4)]);
        assert_eq!(report.records[2].fate.failure.as_ref().unwrap().cause.name(), cause);
        assert_eq!(report.summary.documents_dead_lettered, 0);
        assert!(logs.matching("ERROR", "Document rejected by Elasticsearch").is_empty(), "logged when settled");
        assert_eq!(logs.matching("ERROR", "Record rejected").len(), 1, "the undecodable record is settled");
        if code == "AccessDenied" {
            let errors = logs.matching("ERROR", "Records go back to Kinesis: the dead letter cannot keep");
            assert_eq!(errors.len(), 1, "{code}");
            assert!(errors[0]["fix"].as_str().unwrap().contains("DEAD_LETTER_BUCKET"));
        }
    }
    assert!(s3.objects().is_empty());

    // S3 takes it again: the redelivery keeps both, and writes nothing twice.
    s3.set_refusing(None);
    let report = h.deliver(&event).await;
    assert_eq!(outcomes(&report), [Rejected, AlreadyThere, Rejected, AlreadyThere, Rejected]);
    let kept: Vec<String> = backed_up(&s3)
        .into_iter()
        .flat_map(|(_, lines, _)| lines)
        .map(|l| l["esDocumentId"].as_str().unwrap().to_owned())
        .collect();
    assert!(kept.contains(&doc_id(2, 0)) && kept.contains(&doc_id(4, 0)), "{kept:?}");
    assert!(h.es.documents().iter().all(|(index, id, _)| h.es.version(index, id) == Some(1)));
}

/// A gzip'd CloudWatch Logs data message holding these messages.
fn cloudwatch(messages: &[&str]) -> Vec<u8> {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, message)| json!({"id": format!("{i}"), "timestamp": 1_795_334_400_000u64, "message": message}))
        .collect();
    testkit::gzip(
        &serde_json::to_vec(
            &json!({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/f",
            "logStream": "s", "subscriptionFilters": ["all"], "logEvents": events}),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn documents_a_strict_mapping_refuses_in_both_forms_are_dead_lettered_and_replayed_once_after_the_fix() {
    let s3 = S3Double::start().await;
    let h = Harness::start(&[("DEAD_LETTER_BUCKET", BUCKET)]).await.with_dead_letter(&s3);
    // Elasticsearch's strict dynamic mapping, from an index template: only these fields, no new one.
    h.es.install_index_template(&json!({
        "index_patterns": ["logs-*"], "priority": 1,
        "template": {"mappings": {"dynamic": "strict", "properties": {
            "@timestamp": {"type": "date"}, "message": {"type": "text"}, "level": {"type": "keyword"}}}}
    }));
    let records = [
        json_payloads(&[json!({"level": "INFO", "message": "fits"})]).remove(0),
        json_payloads(&[json!({"level": "WARN", "message": "a new field", "user": "u-1"})]).remove(0),
        // Merged, then as it came: its `aws` envelope is a new field too, so both forms are refused.
        cloudwatch(&[r#"{"level":"ERROR","message":"structured"}"#]),
    ];
    let logs = Logs::capture();

    let report = h.deliver(&event(&records)).await;

    assert_eq!(outcomes(&report), [Indexed, Rejected, Rejected]);
    let objects = backed_up(&s3);
    let (_, lines, documents) = &objects[0];
    assert_eq!(lines.len(), 2);
    for line in lines {
        let error: Value = serde_json::from_str(line["errorMessage"].as_str().unwrap()).unwrap();
        assert_eq!(error["type"], "strict_dynamic_mapping_exception", "{error}");
    }
    let plain: Value = serde_json::from_str(&documents[1].raw).unwrap();
    assert_eq!(
        plain["message"], r#"{"level":"ERROR","message":"structured"}"#,
        "kept as it came, after its plain form"
    );
    assert_eq!(logs.matching("WARN", "Documents refused for their mapping").len(), 1);

    // The operator maps the new fields (the envelope's `aws` and `cloud` too); the replay writes each once, and a second replay nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    h.es.put_mapping(
        INDEX,
        &json!({"properties": {"user": {"type": "keyword"}, "aws": {"type": "object", "dynamic": true},
            "cloud": {"type": "object", "dynamic": true}}}),
    )
    .unwrap();
    let replayed = backup::replay(documents, Budget::new(deadline, Duration::ZERO), &h.deps).await;
    assert_eq!(replayed, [Replayed::Indexed, Replayed::Indexed]);
    let replayed = backup::replay(documents, Budget::new(deadline, Duration::ZERO), &h.deps).await;
    assert_eq!(replayed, [Replayed::AlreadyThere, Replayed::AlreadyThere]);
    assert_eq!(h.es.document(INDEX, &doc_id(1, 0)).unwrap()["user"], "u-1");
}

#[tokio::test]
async fn documents_over_the_field_limit_are_dead_lettered_and_replayed_once_the_limit_is_raised() {
    let s3 = S3Double::start().await;
    let h = Harness::start(&[("DEAD_LETTER_BUCKET", BUCKET)]).await.with_dead_letter(&s3);
    h.es.set_total_fields_limit(Some(20));
    let wide: serde_json::Map<String, Value> = (0..25).map(|i| (format!("f{i}"), json!(i))).collect();
    let report = h.deliver(&event(&json_payloads(&[json!({"message": "narrow"}), Value::Object(wide)]))).await;

    assert_eq!(outcomes(&report), [Indexed, Rejected]);
    let objects = backed_up(&s3);
    let (_, lines, documents) = &objects[0];
    let error: Value = serde_json::from_str(lines[0]["errorMessage"].as_str().unwrap()).unwrap();
    assert!(error["reason"].as_str().unwrap().contains("Limit of total fields [20] has been exceeded"), "{error}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    h.es.set_index_total_fields_limit(INDEX, 1000);
    assert_eq!(backup::replay(documents, Budget::new(deadline, Duration::ZERO), &h.deps).await, [Replayed::Indexed]);
    assert_eq!(
        backup::replay(documents, Budget::new(deadline, Duration::ZERO), &h.deps).await,
        [Replayed::AlreadyThere]
    );
    assert_eq!(h.es.document(INDEX, &doc_id(1, 0)).unwrap()["f24"], 24);
}
