//! The double's own tests: each concern answered as Elasticsearch answers it, over raw HTTP.

use super::pool::stable_hash;
use super::*;
use std::io::Write;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one raw HTTP/1.1 POST and returns the status and body of the answer.
async fn post(double: &EsDouble, path: &str, headers: &str, body: &[u8]) -> (u16, Value) {
    send(double, "POST", path, headers, body).await
}

async fn send(double: &EsDouble, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(double.shared.server.addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: double\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn a_gzip_body_is_inflated_and_the_path_names_the_default_index() {
    let double = EsDouble::start().await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"{\"create\":{\"_id\":\"1\"}}\n{\"a\":1}\n").unwrap();
    let (status, body) = post(&double, "/events/_bulk", "Content-Encoding: gzip\r\n", &encoder.finish().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["create"]["status"], 201);
    assert_eq!(double.document("events", "1"), Some(json!({"a": 1})));
}

#[tokio::test]
async fn answers_follow_elasticsearch_item_by_item() {
    let double = EsDouble::start().await;
    double.set_write_queue(Some(1));
    // Index i's one shard takes the queue's one place; index j's operation is rejected whole.
    let body = b"{\"create\":{\"_index\":\"i\",\"_id\":\"1\"}}\n{\"n\":1}\n{\"create\":{\"_index\":\"i\",\"_id\":\"1\"}}\n{\"n\":1}\n{\"create\":{\"_index\":\"i\",\"_id\":\"2\"}}\n{\"n\":\"x\"}\n{\"create\":{\"_index\":\"j\",\"_id\":\"3\"}}\n{\"n\":3}\n";
    let (status, body) = post(&double, "/_bulk", "", body).await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"], true);
    let statuses: Vec<u64> =
        body["items"].as_array().unwrap().iter().map(|i| i["create"]["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![201, 409, 400, 429]);
    assert_eq!(body["items"][1]["create"]["error"]["type"], "version_conflict_engine_exception");
    assert_eq!(body["items"][2]["create"]["error"]["type"], "document_parsing_exception");
    assert_eq!(body["items"][3]["create"]["error"]["type"], "es_rejected_execution_exception");
    assert_eq!(double.attempts("1"), 2);
}

#[tokio::test]
async fn filter_path_keeps_only_what_was_asked_as_elasticsearch_does() {
    let double = EsDouble::start().await;
    double.set_write_queue(Some(1));
    let body = b"{\"create\":{\"_index\":\"i\",\"_id\":\"1\"}}\n{\"n\":1}\n{\"create\":{\"_index\":\"j\",\"_id\":\"2\"}}\n{\"n\":2}\n";
    let path = "/_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error.type";
    let (status, answer) = post(&double, path, "", body).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}
        ]})
    );
    let (_, only_errors) = post(&double, "/_bulk?filter_path=items.*.error", "", body).await;
    assert_eq!(only_errors["items"].as_array().unwrap().len(), 2, "both 409s have an error");
    let (_, nothing) = post(&double, "/_bulk?filter_path=nothing.here", "", body).await;
    assert_eq!(nothing, json!({}));
}

#[tokio::test]
async fn write_queue_rejections_are_per_shard_not_per_position() {
    let double = EsDouble::start().await;
    double.set_shards(4);
    double.set_write_queue(Some(2));
    let mut body = String::new();
    for id in 0..40 {
        body.push_str(&format!("{{\"create\":{{\"_index\":\"i\",\"_id\":\"{id}\"}}}}\n{{\"n\":{id}}}\n"));
    }
    let (_, answer) = post(&double, "/_bulk", "", body.as_bytes()).await;
    let mut status_by_shard: HashMap<u64, HashSet<u64>> = HashMap::new();
    for (id, item) in answer["items"].as_array().unwrap().iter().enumerate() {
        let status = item["create"]["status"].as_u64().unwrap();
        status_by_shard.entry(stable_hash(&id.to_string()) % 4).or_default().insert(status);
    }
    assert_eq!(status_by_shard.len(), 4, "40 ids reach every shard");
    let mut outcomes: Vec<Vec<u64>> = status_by_shard.into_values().map(|s| s.into_iter().collect()).collect();
    outcomes.sort();
    assert_eq!(outcomes, vec![vec![201], vec![201], vec![429], vec![429]], "each shard all or nothing");
}

/// A bulk body of `create` actions into index `i`, one per id.
fn creates(ids: &[&str]) -> Vec<u8> {
    ids.iter()
        .map(|id| format!("{{\"create\":{{\"_index\":\"i\",\"_id\":\"{id}\"}}}}\n{{\"n\":1}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn statuses(answer: &Value) -> Vec<u64> {
    answer["items"].as_array().unwrap().iter().map(|item| item["create"]["status"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_full_write_pool_rejects_every_item_of_a_request_and_writes_none() {
    let double = EsDouble::start().await;
    let service = Duration::from_millis(300);
    double.set_write_pool(Some(WritePool { threads: 1, queue: 1, service, per_item: Duration::ZERO }));
    // Three requests within the service time: one executes, one waits, the last finds no room.
    let bodies = [creates(&["a1", "a2"]), creates(&["b1", "b2"]), creates(&["c1", "c2"])];
    let (a, b, c) = tokio::join!(
        post(&double, "/_bulk", "", &bodies[0]),
        post(&double, "/_bulk", "", &bodies[1]),
        post(&double, "/_bulk", "", &bodies[2]),
    );
    let answers = [a, b, c];
    assert!(answers.iter().all(|(status, _)| *status == 200));
    let rejected: Vec<&Value> =
        answers.iter().map(|(_, answer)| answer).filter(|answer| statuses(answer) == [429, 429]).collect();
    assert_eq!(rejected.len(), 1, "{answers:?}");
    let written = answers.iter().filter(|(_, answer)| statuses(answer) == [201, 201]).count();
    assert_eq!(written, 2, "{answers:?}");
    let item = &rejected[0]["items"][1]["create"];
    assert_eq!(rejected[0]["errors"], true);
    assert_eq!(item["_index"], "i");
    assert!(item["_id"].as_str().unwrap().ends_with('2'));
    assert_eq!(item["error"]["type"], "es_rejected_execution_exception");
    let reason = item["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("EsThreadPoolExecutor[name = double-node-0/write, queue capacity = 1,"), "{reason}");
    assert_eq!(double.count(), 4, "nothing of the rejected request is written");
    assert_eq!(double.pool_rejected_requests(), 1);
    assert_eq!(double.pool_max_in_pool(), 2);
    assert_eq!(double.attempts("c1") + double.attempts("b1") + double.attempts("a1"), 3, "each attempt counts");
}

#[tokio::test]
async fn the_write_pool_runs_waiting_requests_in_arrival_order_for_their_service_time() {
    let double = EsDouble::start().await;
    let (service, per_item) = (Duration::from_millis(50), Duration::from_millis(50));
    double.set_write_pool(Some(WritePool { threads: 1, queue: 3, service, per_item }));
    let start = tokio::time::Instant::now();
    // Arriving 10 ms apart, with 1, 3 and 1 items: 100, 200 and 100 ms on the one thread, one after the other.
    let send = |delay: u64, ids: &'static [&'static str]| {
        let double = &double;
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let (_, answer) = post(double, "/_bulk", "", &creates(ids)).await;
            assert!(statuses(&answer).iter().all(|status| *status == 201), "{answer}");
            start.elapsed()
        }
    };
    let (first, second, third) = tokio::join!(send(0, &["a"]), send(10, &["b1", "b2", "b3"]), send(20, &["c"]));
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(second >= Duration::from_millis(300), "{second:?}: waits for the first, then 50 + 3 × 50 ms");
    assert!(third >= Duration::from_millis(400) && third > second, "{third:?} after {second:?}");
    assert_eq!(double.pool_max_in_pool(), 3);
    assert_eq!(double.pool_rejected_requests(), 0);
}

#[tokio::test]
async fn a_request_in_the_write_pool_is_written_after_its_client_hangs_up() {
    let double = EsDouble::start().await;
    let service = Duration::from_millis(100);
    double.set_write_pool(Some(WritePool { threads: 1, queue: 0, service, per_item: Duration::ZERO }));
    let body = creates(&["gone"]);
    let mut stream = tokio::net::TcpStream::connect(double.shared.server.addr).await.unwrap();
    let head = format!("POST /_bulk HTTP/1.1\r\nHost: double\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    while double.pool_max_in_pool() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(stream);
    tokio::time::sleep(service * 3).await;
    assert_eq!(double.count(), 1, "as in Elasticsearch, a bulk request is not cancelled with its connection");
}

#[tokio::test]
async fn a_busy_spell_answers_every_item_429_until_it_ends() {
    let double = EsDouble::start().await;
    double.set_busy_spell(Duration::from_millis(200));
    let (status, answer) = post(&double, "/_bulk", "", &creates(&["1", "2", "3"])).await;
    assert_eq!(status, 200);
    assert_eq!(answer["errors"], true);
    assert_eq!(statuses(&answer), vec![429, 429, 429]);
    assert_eq!(answer["items"][0]["create"]["_id"], "1");
    assert_eq!(answer["items"][0]["create"]["error"]["type"], "es_rejected_execution_exception");
    assert_eq!(double.count(), 0);
    assert_eq!((double.requests_during_busy_spell(), double.items_during_busy_spell()), (1, 3));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, answer) = post(&double, "/_bulk", "", &creates(&["1", "2", "3"])).await;
    assert_eq!(statuses(&answer), vec![201, 201, 201]);
    assert_eq!((double.requests_during_busy_spell(), double.items_during_busy_spell()), (1, 3));
}

#[tokio::test]
async fn a_malformed_action_line_fails_the_whole_request() {
    let double = EsDouble::start().await;
    let (status, body) = post(&double, "/_bulk", "", b"{\"delete_all\":{}}\n{}\n").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "illegal_argument_exception");
    let (status, _) = post(&double, "/_bulk", "", b"{\"create\":{\"_index\":\"i\"}}\n{}").await;
    assert_eq!(status, 400, "a body must end with a newline");
    assert_eq!(double.count(), 0);
}

/// One `index` action into `index` with this `_id` and source, and its item's answer.
async fn index_one(double: &EsDouble, index: &str, id: &str, source: Value) -> Value {
    let body = format!("{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{id}\"}}}}\n{source}\n");
    let (status, answer) = post(double, "/_bulk", "", body.as_bytes()).await;
    assert_eq!(status, 200);
    answer["items"][0]["index"].clone()
}

/// Index templates' mappings and settings (<https://www.elastic.co/guide/en/elasticsearch/reference/7.8/indices-put-template.html>):
/// the highest priority's apply when an index is created; a strict refusal is 400
/// `strict_dynamic_mapping_exception` (<https://github.com/elastic/elasticsearch/blob/17e9ef9eeae5bef37cf4bbf84185d5abdca34b6b/server/src/main/java/org/elasticsearch/index/mapper/StrictDynamicMappingException.java>),
/// nothing written; a test fixes the mapping and replays.
#[tokio::test]
async fn a_template_s_mappings_apply_to_the_indices_it_creates() {
    let double = EsDouble::start().await;
    let broad = json!({"index_patterns": ["logs-*"], "priority": 1, "template": {"mappings": {"properties": {"a": {"type": "long"}}}}});
    let strict = json!({"index_patterns": ["logs-app-*"], "priority": 5, "template": {
        "settings": {"index": {"mapping": {"total_fields": {"limit": "3"}}}},
        "mappings": {"dynamic": "strict", "properties": {"@timestamp": {"type": "date"}, "level": {"type": "keyword"}}}
    }});
    for (name, template) in [("broad", &broad), ("strict", &strict)] {
        let (status, _) =
            send(&double, "PUT", &format!("/_index_template/{name}"), "", template.to_string().as_bytes()).await;
        assert_eq!(status, 200);
    }
    let clash = json!({"index_patterns": ["logs-app-x*"], "priority": 5});
    let (status, refused) = send(&double, "PUT", "/_index_template/clash", "", clash.to_string().as_bytes()).await;
    assert_eq!((status, refused["error"]["type"].as_str()), (400, Some("illegal_argument_exception")));

    let item = index_one(&double, "logs-app-1", "1", json!({"@timestamp": "2023-11-07T12:00:00Z", "user": "x"})).await;
    assert_eq!(item["status"], 400);
    assert_eq!(item["error"]["type"], "strict_dynamic_mapping_exception");
    assert_eq!(
        item["error"]["reason"],
        "[1:2] mapping set to strict, dynamic introduction of [user] within [_doc] is not allowed"
    );
    assert_eq!(double.document("logs-app-1", "1"), None, "a refused document is not written");

    double
        .put_mapping("logs-app-1", &json!({"properties": {"user": {"type": "keyword"}}}))
        .expect("3 fields: the limit");
    assert_eq!(index_one(&double, "logs-app-1", "1", json!({"@timestamp": 1, "user": "x"})).await["status"], 201);
    assert_eq!(
        double.put_mapping("logs-app-1", &json!({"properties": {"host": {"type": "keyword"}}})),
        Err("Limit of total fields [3] has been exceeded".into())
    );
    double.set_index_total_fields_limit("logs-app-1", 4);
    double.put_mapping("logs-app-1", &json!({"properties": {"host": {"type": "keyword"}}})).unwrap();

    let other = index_one(&double, "logs-web", "2", json!({"a": "not a number"})).await;
    assert_eq!(other["error"]["type"], "document_parsing_exception", "the broad template's mapping: {other}");
    assert_eq!(index_one(&double, "logs-web", "3", json!({"a": 1, "b": "new"})).await["status"], 201);
    assert_eq!(double.mapping("logs-web").unwrap()["properties"]["b"]["type"], "text");
}

/// `index.mapping.total_fields.limit` (<https://www.elastic.co/guide/en/elasticsearch/reference/8.18/mapping-settings-limit.html>):
/// the double's default limit for new indices, and the 8.x refusal
/// (<https://github.com/elastic/elasticsearch/blob/1d618535e832c4067c5c13649c75a4de0be67869/server/src/internalClusterTest/java/org/elasticsearch/index/mapper/DynamicMappingIT.java>).
#[tokio::test]
async fn new_indices_take_the_double_s_field_limit() {
    let double = EsDouble::start().await;
    assert_eq!(index_one(&double, "before", "1", json!({"a": "x", "b": "y"})).await["status"], 201);
    double.set_total_fields_limit(Some(2));
    assert_eq!(index_one(&double, "before", "2", json!({"c": "z"})).await["status"], 201, "already created");
    let refused = index_one(&double, "after", "1", json!({"a": "x", "b": "y"})).await;
    assert_eq!(refused["status"], 400);
    assert_eq!(refused["error"]["type"], "document_parsing_exception");
    assert_eq!(
        refused["error"]["reason"],
        "[1:2] failed to parse: Limit of total fields [2] has been exceeded while adding new fields [4]"
    );
    assert_eq!(refused["error"]["caused_by"]["type"], "illegal_argument_exception");
    assert_eq!(double.mapping("after"), Some(json!({"properties": {}})), "created, its mapping unchanged");
    assert_eq!(double.count(), 2);
}

/// The project's index template: no date detection, strings as keywords, `json` kept but not mapped
/// (<https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-field-mapping.html#date-detection>,
/// <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>,
/// <https://www.elastic.co/guide/en/elasticsearch/reference/current/enabled.html>): `json` never conflicts, a
/// keyword meeting an object is refused.
#[tokio::test]
async fn the_project_s_template_maps_strings_as_keywords_and_keeps_json_unmapped() {
    const TEMPLATE: &str = r#"{"index_patterns":["logs-*"],"priority":50,"template":{"mappings":{"date_detection":false,"dynamic_templates":[{"strings_as_keyword":{"match_mapping_type":"string","mapping":{"type":"keyword","ignore_above":1024}}}],"properties":{"@timestamp":{"type":"date"},"message":{"type":"text"},"json":{"type":"object","enabled":false},"aws":{"properties":{"cloudwatch":{"properties":{"log_group":{"type":"keyword"},"log_stream":{"type":"keyword"},"event_id":{"type":"keyword"}}},"kinesis":{"properties":{"type":{"type":"keyword"},"name":{"type":"keyword"},"shard_id":{"type":"keyword"},"sequence_number":{"type":"keyword"},"partition_key":{"type":"keyword"},"approximate_arrival_timestamp":{"type":"date"}}}}},"cloud":{"properties":{"account":{"properties":{"id":{"type":"keyword"}}}}},"kinesis_es_indexer_canary":{"type":"boolean"}}}}}"#;
    let double = EsDouble::start().await;
    let (status, answer) = send(&double, "PUT", "/_index_template/logs", "", TEMPLATE.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    let documents = [
        json!({"@timestamp":"2026-11-22T08:00:00.000Z","message":"a","service":"payment","json":{"message":100.5}}),
        json!({"@timestamp":"2026-11-22T08:00:01.000Z","message":"b","service":{"name":"x"},"json":{"message":{"o":1}}}),
        json!({"@timestamp":"2026-11-22T08:00:02.000Z","message":"c","time":"2021-05-03 11:47:12,494+0000"}),
    ];
    let body: String = documents
        .iter()
        .enumerate()
        .map(|(at, document)| {
            format!("{{\"create\":{{\"_index\":\"logs-2026.11.22\",\"_id\":\"{}\"}}}}\n{document}\n", at + 1)
        })
        .collect();
    let (status, answer) = post(&double, "/_bulk", "", body.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&answer), vec![201, 400, 201], "{answer}");
    let refused = &answer["items"][1]["create"]["error"];
    assert_eq!(refused["type"], "document_parsing_exception");
    assert_eq!(
        refused["reason"],
        "[1:2] failed to parse field [service] of type [keyword] in document with id '2'. Preview of field's value: '{name=x}'"
    );
    assert_eq!(double.document("logs-2026.11.22", "1").unwrap()["json"], json!({"message": 100.5}));
    assert_eq!(double.document("logs-2026.11.22", "2"), None);

    let mapping = double.mapping("logs-2026.11.22").unwrap();
    assert_eq!(mapping["date_detection"], false);
    assert_eq!(
        mapping["dynamic_templates"],
        json!([{"strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}])
    );
    let properties = &mapping["properties"];
    assert_eq!(properties["json"], json!({"type": "object", "enabled": false}), "nothing mapped under it");
    let keyword = json!({"type": "keyword", "ignore_above": 1024});
    assert_eq!((&properties["service"], &properties["time"]), (&keyword, &keyword), "not a date: a string");
    assert_eq!(properties["message"], json!({"type": "text"}));
}
