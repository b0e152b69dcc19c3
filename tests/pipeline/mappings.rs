//! Real loggers' lines mixed in one index, every setting at its default, against the double's dynamic mapping:
//! every log event is indexed once, structured where the index's mapping takes it, as it came where it does not.
//! The lines are public loggers' own (`tests/fixtures/real_log_lines.json` names each source).

use kinesis_es_indexer::Outcome::*;
use serde_json::{Value, json};
use testkit::gzip;

use crate::support::*;

/// The fixture's groups: a log group and its lines, each group one function's CloudWatch Logs subscription.
fn real_log_lines() -> Vec<(String, Vec<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real_log_lines.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let groups = fixture["groups"].as_array().unwrap();
    let text = |value: &Value| value.as_str().unwrap().to_owned();
    groups
        .iter()
        .map(|group| (text(&group["log_group"]), group["lines"].as_array().unwrap().iter().map(text).collect()))
        .collect()
}

/// A gzip'd CloudWatch Logs data message of `log_group` holding `lines`, logged a second apart.
fn envelope(log_group: &str, lines: &[String]) -> Vec<u8> {
    let events: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| json!({"id": format!("{i}"), "timestamp": 1_795_334_390_000u64 + i as u64 * 1000, "message": line}))
        .collect();
    gzip(
        &serde_json::to_vec(&json!({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": log_group,
            "logStream": "2026/11/22/[$LATEST]abc", "subscriptionFilters": ["all"], "logEvents": events}))
        .unwrap(),
    )
}

#[tokio::test]
async fn real_loggers_lines_in_one_index_are_each_indexed_once_structured_where_the_mapping_takes_them() {
    let h = Harness::start(&[]).await;
    // Every request takes at least this long: the summary's time counts the plain forms' request too.
    h.es.set_latency(std::time::Duration::from_millis(40));
    let groups = real_log_lines();
    let payloads: Vec<Vec<u8>> = groups.iter().map(|(log_group, lines)| envelope(log_group, lines)).collect();
    let logs = Logs::capture();

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![Indexed; groups.len()]);
    let documents = h.es.documents();
    let lines: usize = groups.iter().map(|(_, lines)| lines.len()).sum();
    assert_eq!(documents.len(), lines, "one document per log event, none twice");
    // Which events the index holds as they came: their `message` is the whole line.
    let mut plain = Vec::new();
    for (record, (_, lines)) in groups.iter().enumerate() {
        for (position, line) in lines.iter().enumerate() {
            let held: Vec<&Value> =
                documents.iter().filter(|(_, id, _)| *id == doc_id(record, position)).map(|(_, _, d)| d).collect();
            assert_eq!(held.len(), 1, "event {record}.{position} is in the index once");
            if held[0]["message"] == json!(line) && line.starts_with('{') {
                plain.push((record, position));
            }
        }
    }
    // The test's own reading of the lines, in the order one bulk request carries them:
    // - 2.0: ECS's `service` is an object; Powertools' lines (record 0) mapped `service` as text;
    // - 3.0: Lambda's JSON format with a number as `message`, set aside under `json.message`, which Powertools'
    //   object `message` (0.1, also set aside) mapped as an object;
    // - 4.2: a platform record whose `record` is a string, after `platform.start` mapped `record` as an object.
    assert_eq!(plain, [(2, 0), (3, 0), (4, 2)]);
    assert_eq!(report.summary.indexing.unstructured, plain.len());
    assert_eq!((report.summary.documents_rejected, report.summary.count(Rejected)), (0, 0));
    assert_eq!(report.summary.indexing.requests, 2, "the batch's request, then one for the plain forms");
    assert!(report.summary.indexing.elapsed >= std::time::Duration::from_millis(80), "{:?}", report.summary.indexing);
    let warned = logs.matching("WARN", "Documents refused for their mapping");
    assert_eq!(warned.len(), 1, "once per invocation");
    assert_eq!(warned[0]["fields"], "json.message,record,service");
    assert_eq!((warned[0]["documents"].as_u64(), warned[0]["indexed_plain"].as_u64()), (Some(3), Some(3)));

    // Structured where it fits: the logger's time at `@timestamp` in RFC 3339, once; an object `message` aside.
    let document = |record: usize, position: usize| {
        documents.iter().find(|(_, id, _)| *id == doc_id(record, position)).map(|(_, _, d)| d.clone()).unwrap()
    };
    let powertools = document(0, 0);
    assert_eq!(
        (powertools["@timestamp"].as_str(), powertools["service"].as_str()),
        (Some("2021-05-03T11:47:12.494Z"), Some("payment"))
    );
    assert!(powertools.get("timestamp").is_none(), "{powertools}");
    assert_eq!(document(0, 1)["json"]["message"]["operation"], "collect_payment");
    assert!(document(0, 1)["message"].is_null());
    assert_eq!(document(0, 3)["@timestamp"], "2023-10-09T21:33:55.734Z", "-0400 read as its zone");
    assert_eq!(document(2, 1)["@timestamp"], "2020-03-20T14:12:46.123Z", "ECS's own, as it came");
    assert_eq!(document(4, 0)["@timestamp"], "2022-10-21T14:05:03.165Z", "a platform record's time");
    // As it came: the line as its message, the envelope's fields, stamped by the event's time.
    let ecs = document(2, 0);
    assert_eq!(
        (ecs["aws"]["cloudwatch"]["log_group"].as_str(), ecs["@timestamp"].as_str()),
        (Some("/aws/lambda/myapp"), Some("2026-11-22T07:59:50.000Z"))
    );
    assert!(ecs.get("service").is_none() && ecs.get("log.level").is_none(), "{ecs}");
}

#[tokio::test]
async fn with_the_projects_index_template_only_conflicts_between_the_loggers_own_fields_remain() {
    let h = Harness::start(&[("ADD_KINESIS_METADATA", "true")]).await;
    // `make index-template`, as an operator runs it, against the double.
    let url = h.es.url();
    let installed = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/index_template.py"))
            .env("ES_URL", url)
            .env("ES_AUTH", "none")
            .env_remove("ES_INDEX")
            .env_remove("INDEX_TEMPLATE_PATTERN")
            .env_remove("TIMESTAMP_FIELD")
            .env_remove("MESSAGE_JSON_FIELD")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    let groups = real_log_lines();
    let payloads: Vec<Vec<u8>> = groups.iter().map(|(log_group, lines)| envelope(log_group, lines)).collect();

    let report = h.deliver(&event(&payloads)).await;

    assert_eq!(outcomes(&report), vec![Indexed; groups.len()]);
    // The test's own reading: what is set aside under `json` is kept, not indexed, so Lambda's JSON format's
    // number `message` (3.0) is structured now; ECS's object `service` (2.0) and a platform record's string
    // `record` (4.2) still meet fields the loggers themselves typed otherwise.
    let documents = h.es.documents();
    let plain: Vec<(usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(record, (_, lines))| lines.iter().enumerate().map(move |(position, line)| (record, position, line)))
        .filter(|(record, position, line)| {
            let held = documents.iter().find(|(_, id, _)| *id == doc_id(*record, *position)).unwrap();
            line.starts_with('{') && held.2["message"] == json!(line)
        })
        .map(|(record, position, _)| (record, position))
        .collect();
    assert_eq!(plain, [(2, 0), (4, 2)]);
    assert_eq!(report.summary.indexing.unstructured, 2);
    let mapping = h.es.mapping(&documents[0].0).expect("the index exists");
    let properties = &mapping["properties"];
    assert_eq!(properties["@timestamp"]["type"], "date");
    assert_eq!(properties["message"]["type"], "text");
    assert_eq!(properties["level"]["type"], "keyword", "a logger's string: a keyword, from the template");
    assert_eq!(properties["json"]["enabled"], false);
    assert_eq!(properties["aws"]["properties"]["kinesis"]["properties"]["sequence_number"]["type"], "keyword");
    assert_eq!(
        properties["aws"]["properties"]["kinesis"]["properties"]["approximate_arrival_timestamp"]["type"],
        "date"
    );
}

#[tokio::test]
async fn a_json_record_refused_for_a_field_the_function_added_is_indexed_without_it() {
    let h = Harness::start(&[("ADD_FIELDS", r#"{"env":"prod"}"#)]).await;
    // The index already maps `env` as a number (another producer's): the static field cannot join.
    h.es.map_field("logs-2026.11.22", "env", "long");
    let sent = json!({"@timestamp": "2026-11-22T08:00:00.000Z", "message": "order placed"});

    let report = h.deliver(&event(&json_payloads(std::slice::from_ref(&sent)))).await;

    assert_eq!(outcomes(&report), [Indexed]);
    assert_eq!(report.summary.indexing.unstructured, 1);
    assert_eq!(h.es.document("logs-2026.11.22", &doc_id(0, 0)).unwrap(), sent, "as it came: nothing added");
}

#[tokio::test]
async fn with_ids_from_a_field_the_plain_form_keeps_the_id_its_structured_form_was_given() {
    // The `_id` is the message's own `requestId`, which only the merged form has as a field.
    let h = Harness::start(&[("ES_DOC_ID", "field:requestId")]).await;
    h.es.map_field("logs-2026.11.22", "level", "long");
    let lines = [r#"{"requestId":"r-1","level":"INFO","message":"a"}"#.to_owned(), "plain text".to_owned()];

    let report = h.deliver(&event(&[envelope("/aws/lambda/f", &lines)])).await;

    // The second line has no `requestId`: a rejected part, and the record rejected with it; the first, refused for
    // its mapping, gets no plain form (its place among the plain forms may differ): kept by a dead letter, if any.
    assert_eq!(outcomes(&report), [Rejected]);
    let held = h.es.documents();
    assert_eq!(held.len(), 0, "a record with a document left out for its id has no plain forms: {held:?}");
    let lines = [r#"{"requestId":"r-1","level":"INFO","message":"a"}"#.to_owned()];
    let report = h.deliver(&event_from(1, &[envelope("/aws/lambda/f", &lines)])).await;
    assert_eq!((outcomes(&report), report.summary.indexing.unstructured), (vec![Indexed], 1));
    let plain = h.es.document("logs-2026.11.22", "r-1").expect("at the id the structured form was given");
    assert_eq!(plain["message"], lines[0]);
}
