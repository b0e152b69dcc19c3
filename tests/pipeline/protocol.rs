//! What goes over the wire: credentials, content type, the response filter, and the NDJSON body itself.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn basic_auth_and_ndjson_reach_the_cluster() {
    let h = Harness::start(&[("ES_USERNAME", "indexer"), ("ES_PASSWORD", "s3cret")]).await;
    h.deliver(&event(&plain_payloads(1))).await;

    let request = &h.es.requests()[0];
    // base64("indexer:s3cret")
    assert_eq!(request.headers["authorization"], "Basic aW5kZXhlcjpzM2NyZXQ=");
    assert_eq!(request.headers["content-type"], "application/x-ndjson");
    assert_eq!(request.headers["content-encoding"], "gzip", "compressed by default");
    assert_eq!(request.path, "/_bulk");
    let query = request.query.as_deref().unwrap_or_default();
    assert!(query.starts_with("filter_path=errors"), "{query}");
    assert_eq!(request.ids, vec![doc_id(0, 0)]);
}

#[tokio::test]
async fn an_api_key_reaches_the_cluster() {
    let h = Harness::start(&[("ES_API_KEY", "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")]).await;
    h.deliver(&event(&plain_payloads(1))).await;
    assert_eq!(
        h.es.requests()[0].headers["authorization"],
        "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    );
}

#[tokio::test]
async fn a_url_path_prefix_is_kept() {
    let h = Harness::start(&[]).await;
    let prefixed = format!("{}/search", h.es.url());
    let h = Harness { deps: deps(&h.es, Some(&h.firehose), &[("ES_URL", &prefixed)]), ..h };
    h.deliver(&event(&plain_payloads(1))).await;
    // The double serves `/{index}/_bulk`, so a prefix reads as the default index: the action's `_index` wins.
    assert_eq!(h.es.requests()[0].path, "/search/_bulk");
    assert_eq!(h.es.documents()[0].0, "logs-2026.11.22");
}

#[tokio::test]
async fn documents_are_stored_as_sent_with_the_arrival_time_added() {
    let h = Harness::start(&[]).await;
    let payloads = json_payloads(&[json!({"nested": {"a": [1, 2]}, "text": "ünïcødé \"quoted\"\nline"})]);
    h.deliver(&event(&payloads)).await;
    let stored = h.es.document("logs-2026.11.22", &doc_id(0, 0)).unwrap();
    assert_eq!(
        stored,
        json!({"@timestamp": "2026-11-22T08:00:00.000Z", "nested": {"a": [1, 2]}, "text": "ünïcødé \"quoted\"\nline"})
    );
}

/// The double answers one request at a time, and only once the indexer has as many outstanding as it may: with no
/// timing involved, fewer at a time never lets the test go on (it fails on its guard), more shows in the count.
#[tokio::test]
async fn chunks_go_out_at_most_bulk_concurrency_at_a_time() {
    const REQUESTS: usize = 9;
    const CONCURRENCY: usize = 3;
    // Fixed: adapting starts at half of BULK_CONCURRENCY and grows only on clean answers.
    let h =
        Harness::start(&[("BULK_MAX_DOCS", "1"), ("BULK_CONCURRENCY", "3"), ("BULK_CONCURRENCY_MODE", "fixed")]).await;
    h.es.hold_answers();
    let event = event(&plain_payloads(REQUESTS));

    let answer_one_at_a_time = async {
        for answered in 0..REQUESTS {
            let outstanding = CONCURRENCY.min(REQUESTS - answered);
            let all_sent = async {
                while h.es.bulk_requests_arrived() < answered + outstanding {
                    tokio::task::yield_now().await;
                }
            };
            let guard = std::time::Duration::from_secs(20);
            tokio::time::timeout(guard, all_sent).await.unwrap_or_else(|_| {
                panic!("{answered} answered: the indexer never had {outstanding} requests outstanding at once")
            });
            h.es.release_answers(1);
        }
    };
    let (report, ()) = tokio::join!(h.deliver(&event), answer_one_at_a_time);

    assert_eq!(report.summary.indexing.requests, REQUESTS);
    assert_eq!(h.es.max_in_flight(), CONCURRENCY, "three at a time, never more");
}

#[tokio::test]
async fn bodies_are_gzipped_by_default_and_plain_when_asked() {
    let event = event(&plain_payloads(50));

    let gzip = Harness::start(&[]).await;
    let compressed = gzip.deliver(&event).await;
    let plain = Harness::start(&[("ES_COMPRESSION", "none")]).await;
    let uncompressed = plain.deliver(&event).await;

    assert_eq!(gzip.es.count(), 50, "the double inflates what it receives");
    assert_eq!(plain.es.count(), 50);
    assert!(plain.es.requests()[0].headers.get("content-encoding").is_none());
    let (before, after) = (compressed.summary.indexing.body_bytes, compressed.summary.indexing.bytes_sent);
    assert_eq!(before, uncompressed.summary.indexing.body_bytes, "the same body either way");
    assert_eq!(uncompressed.summary.indexing.bytes_sent, before);
    assert_eq!(after, gzip.es.requests()[0].wire_bytes, "bytes_sent is what went on the wire");
    assert!(after * 4 < before, "{after} compressed bytes for {before}");
}

#[tokio::test]
async fn a_second_invocation_opens_no_new_connection() {
    let h = Harness::start(&[]).await;
    h.deliver(&event(&plain_payloads(3))).await;
    h.deliver(&event_from(3, &plain_payloads(3))).await;
    assert_eq!(h.es.requests().len(), 2);
    assert_eq!(h.es.connections(), 1, "one connection, kept between invocations");
}
