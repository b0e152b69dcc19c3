//! A busy cluster under one instance (FAULTS.md 31) and a size refusal that closes the connection (34): paced as an
//! outage is, the shard never wedged. The fleet (32) has a test binary of its own, `tests/fleet/`.

use std::time::Duration;

use serde_json::json;
use testkit::{EsDouble, FirehoseDouble};

use crate::support::*;

/// What a batch went through during a busy spell, redelivered as Lambda does: at once, until nothing goes back.
#[derive(Debug)]
struct SpellRun {
    /// Invocations that sent records back (each one a retry Lambda counts).
    retries: usize,
    /// Bulk requests and items the cluster received while every item was answered 429.
    requests_during: usize,
    items_during: usize,
    /// Bulk items received over the whole run, and documents the batch holds.
    items: usize,
    documents: usize,
    parked: usize,
    /// Parked documents the cluster never received.
    parked_unsent: usize,
}

/// How the retry tier stands during the spell.
#[derive(Debug, Clone, Copy)]
enum Tier {
    NotConfigured,
    Unreachable,
    Working,
}

/// Answers every item 429 for `spell` under a function with a 3 s timeout and drives a batch of NDJSON and plain
/// records (one to five documents each) through Lambda's immediate redelivery until nothing goes back.
async fn through_a_busy_spell(tier: Tier, spell: Duration) -> SpellRun {
    let es = EsDouble::start().await;
    let firehose = FirehoseDouble::start().await;
    let deps = match tier {
        Tier::NotConfigured => deps(&es, None, &[]),
        // Chunks of 100: the batch is twelve requests, more than one invocation sends into a saturated cluster.
        Tier::Working => deps(&es, Some(&firehose), &[("BULK_MAX_DOCS", "100")]),
        // A delivery stream whose endpoint no longer answers: connection refused on every call.
        Tier::Unreachable => {
            let gone = FirehoseDouble::start().await;
            let deps = deps(&es, Some(&gone), &[]);
            drop(gone);
            deps
        }
    };
    let h = Harness { es, firehose, deps };
    // Records of one to five documents: the test knows how many documents it made.
    let payloads: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            let lines: Vec<String> =
                (0..1 + i % 5).map(|line| json!({"record": i, "line": line}).to_string()).collect();
            lines.join("\n").into_bytes()
        })
        .collect();
    let documents: usize = (0..400).map(|i| 1 + i % 5).sum();
    h.es.set_busy_spell(spell);
    let mut batch = Some(event(&payloads));
    let mut retries = 0;
    while let Some(pending) = batch.take() {
        let report =
            h.deliver_checked(&pending, Duration::from_secs(3)).await.unwrap_or_else(|broken| panic!("{broken}"));
        batch = redelivery(&pending, &report);
        retries += usize::from(batch.is_some());
        assert!(retries < 1000, "the batch never got through");
    }
    let received: std::collections::HashSet<String> =
        h.es.requests().into_iter().flat_map(|request| request.ids).collect();
    let items = h.es.requests().iter().map(|request| request.ids.len()).sum();
    let parked: Vec<String> = h
        .firehose
        .documents()
        .iter()
        .map(|document| document["es_target"]["_id"].as_str().expect("parked documents carry their _id").to_owned())
        .collect();
    let stored = h.es.documents();
    let stored_ids: std::collections::HashSet<&String> = stored.iter().map(|(_, id, _)| id).collect();
    assert_eq!(stored.len() + parked.len(), documents, "{tier:?}: after the spell every document indexed or parked");
    assert!(parked.iter().all(|id| !stored_ids.contains(id)), "{tier:?}: none both indexed and parked");
    for (index, id, _) in &stored {
        assert_eq!(h.es.version(index, id), Some(1), "{tier:?}: and none twice");
    }
    SpellRun {
        retries,
        requests_during: h.es.requests_during_busy_spell(),
        items_during: h.es.items_during_busy_spell(),
        items,
        documents,
        parked: parked.len(),
        parked_unsent: parked.iter().filter(|id| !received.contains(*id)).count(),
    }
}

/// `S31_SPELL_SECONDS` (20) sets the spell's length.
fn spell() -> Duration {
    Duration::from_secs(std::env::var("S31_SPELL_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20))
}

async fn a_busy_spell_is_paced(tier: Tier) {
    let spell = spell();
    let run = through_a_busy_spell(tier, spell).await;
    println!(
        "busy spell of {spell:?}, Firehose {tier:?}: {} requests and {} items during it, {:.2} bulk items per \
         document over the run, {} redeliveries",
        run.requests_during,
        run.items_during,
        run.items as f64 / run.documents as f64,
        run.retries
    );
    let per_second = run.requests_during as f64 / spell.as_secs_f64();
    assert!(per_second <= 1.0, "at most one bulk request per second of the spell: {per_second:.2} ({run:?})");
    let per_document = run.items as f64 / run.documents as f64;
    assert!(per_document <= 3.0, "at most three bulk items per document: {per_document:.2} ({run:?})");
    assert_eq!(run.parked, 0, "nothing could be parked");
}

#[tokio::test]
async fn s31_a_busy_cluster_without_firehose_is_paced_and_every_record_indexed_once() {
    a_busy_spell_is_paced(Tier::NotConfigured).await;
}

#[tokio::test]
async fn s31_a_busy_cluster_with_firehose_unreachable_is_paced_and_every_record_indexed_once() {
    a_busy_spell_is_paced(Tier::Unreachable).await;
}

#[tokio::test]
async fn s31_a_busy_cluster_with_firehose_parks_only_what_it_asked_for_later_and_keeps_the_rest_in_the_stream() {
    let spell = spell();
    let run = through_a_busy_spell(Tier::Working, spell).await;
    println!(
        "busy spell of {spell:?}, Firehose working: {} requests during it, {} of {} documents parked, {} redeliveries",
        run.requests_during, run.parked, run.documents, run.retries
    );
    assert_eq!(run.parked_unsent, 0, "a document the cluster never saw is not parked: it stays in the stream");
    assert!(run.parked > 0, "what the cluster asked for later is parked ({run:?})");
    assert!(run.parked < run.documents / 2, "most of the batch waited in the stream: {run:?}");
    let per_second = run.requests_during as f64 / spell.as_secs_f64();
    assert!(per_second <= 1.0, "at most one bulk request per second of the spell: {per_second:.2} ({run:?})");
}

#[tokio::test]
async fn s31_the_summary_says_it_paced_because_the_cluster_was_busy() {
    let logs = Logs::capture();
    let es = EsDouble::start().await;
    let h =
        Harness { deps: deps(&es, None, &[("PACING_BASE_MS", "200")]), es, firehose: FirehoseDouble::start().await };
    h.es.set_busy_spell(Duration::from_secs(30));
    let event = event(&plain_payloads(10));

    let first = h.deliver(&event).await;
    let second = h.deliver(&event).await;

    assert_eq!(outcomes(&first), vec![kinesis_es_indexer::Outcome::BackToKinesis; 10]);
    assert!(!first.summary.paced.is_zero() || !second.summary.paced.is_zero(), "it waited before answering");
    let summaries = logs.matching("INFO", "Batch done");
    assert_eq!(summaries[0]["paced_because"], "busy", "{}", summaries[0]);
    assert_eq!(summaries[1]["probe"], true, "the redelivery probes with one document");
    assert_eq!(summaries[1]["bulk_requests"], 1, "the probe was asked for later: nothing more is sent");
    let saturated = logs.matching("WARN", "The cluster is saturated");
    assert_eq!(saturated.len(), 2, "one WARN per invocation that the cluster mostly asked for later");
    assert_eq!(saturated[0]["documents_retry_later"], 10);
    assert_eq!(saturated[0]["concurrency"], 1, "halved from BULK_CONCURRENCY 2");
}

/// FAULTS.md 32 for one instance: once saturated answers have brought its window below one request in flight, it
/// sends one request at a time and pauses after each answer (the fleet's collisions in a small write queue are what
/// this prevents; `tests/fleet` measures that).
#[tokio::test]
async fn s32_below_one_request_in_flight_an_instance_pauses_between_requests() {
    let h = Harness::start(&[("BULK_MAX_DOCS", "10"), ("PACING_BASE_MS", "1")]).await;
    // A spell: requests one at a time (half of BULK_CONCURRENCY 2), each halving the window, down to an eighth; the
    // answer to the fourth, sent there, holds the fifth; then the redelivery's probe.
    h.es.set_busy_spell(Duration::from_secs(60));
    let first = h.deliver(&event(&plain_payloads(50))).await;
    let again = redelivery(&event(&plain_payloads(50)), &first).expect("the spell held the rest");
    let probed = h.deliver(&again).await;
    assert_eq!(probed.summary.indexing.requests, 1, "the probe alone");
    h.es.set_busy_spell(Duration::ZERO);
    let sent_before = h.es.requests().len();
    let service = Duration::from_millis(40);
    h.es.set_write_pool(Some(testkit::WritePool { threads: 4, queue: 4, service, per_item: Duration::ZERO }));

    let started = std::time::Instant::now();
    let second = h.deliver(&event_from(40, &plain_payloads(40))).await;
    let elapsed = started.elapsed();

    assert_eq!(outcomes(&second), vec![kinesis_es_indexer::Outcome::Indexed; 40]);
    let requests = h.es.requests().len() - sent_before;
    assert_eq!(requests, 5, "a probe of one document, then four chunks of ten (or nine)");
    assert_eq!(h.es.pool_max_in_pool(), 1, "one request at a time, though the pool would take eight");
    // The window grows by 1/8 a clean answer from an eighth: after the probe's answer it is 2/8, and the pauses
    // before the next four requests are at least half of 40 ms × (8/2 - 1, 8/3 - 1, 8/4 - 1, 8/5 - 1), 125 ms in
    // all, besides five requests of 40 ms.
    let least = service * 5 + Duration::from_millis(125);
    assert!(elapsed >= least, "{elapsed:?}: the requests were not spaced (at least {least:?})");
}

/// Records of about `bytes` each (one document), distinct, so that the test knows every document it made.
fn sized_payloads(records: usize, bytes: usize) -> Vec<Vec<u8>> {
    (0..records).map(|i| json!({"i": i, "filler": "x".repeat(bytes)}).to_string().into_bytes()).collect()
}

const PROXY_LIMIT: usize = 128 * 1024;

/// A harness whose function reaches the Elasticsearch double through a proxy that resets a connection sending a
/// body over `PROXY_LIMIT`, with uncompressed bodies; no Firehose.
async fn behind_a_proxy() -> (Harness, testkit::BodyLimitProxy) {
    let es = EsDouble::start().await;
    let proxy = testkit::BodyLimitProxy::start(&es.url(), PROXY_LIMIT).await;
    (through(es, &proxy).await, proxy)
}

/// A harness whose function reaches `es` through `proxy`, with uncompressed bodies.
async fn through(es: EsDouble, proxy: &testkit::BodyLimitProxy) -> Harness {
    let deps = deps(&es, None, &[("ES_COMPRESSION", "none"), ("ES_URL", &proxy.url())]);
    Harness { es, firehose: FirehoseDouble::start().await, deps }
}

/// The limit of the Quickwit-like server: 256 KiB.
const ANSWERING_LIMIT: usize = 256 * 1024;

/// FAULTS.md 34 against a server that answers 413 over its limit and closes some of those connections, one of them
/// after the client took it back into its pool (the double is modelled on Quickwit's `_bulk` and nginx): twenty
/// runs of two invocations of 1,000 records of 1.1 KB. In every run, every document reaches the cluster once and
/// none goes back to Kinesis; the limit the function says it learned is within a quarter of the server's, and the
/// second invocation needs at most twice the fewest requests its bodies fit in; and no body under the limit is split (a split body's halves
/// arrive one after the other and sum to the body: two successive requests summing to no more than the limit would
/// be one).
#[tokio::test]
async fn s34_a_server_that_answers_413_and_closes_some_connections_is_learned_within_a_quarter_of_its_limit() {
    for run in 0..20 {
        let es = EsDouble::start().await;
        let proxy = testkit::BodyLimitProxy::start_answering(&es.url(), ANSWERING_LIMIT).await;
        let h = through(es, &proxy).await;
        let mut last_of_each = Vec::new();
        let mut learned_limit = None;
        for invocation in 0..2 {
            let report = h.deliver(&event_from(invocation * 1000, &sized_payloads(1000, 1100))).await;
            assert!(report.response().batch_item_failures.is_empty(), "run {run}: nothing goes back to Kinesis");
            last_of_each.push(h.es.requests().len() - 1);
            learned_limit = report.summary.indexing.body_limit;
        }
        let learned_limit = learned_limit.expect("a limit was learned");
        assert!(
            (ANSWERING_LIMIT * 3 / 4..=ANSWERING_LIMIT).contains(&learned_limit),
            "run {run}: learned {learned_limit} for {ANSWERING_LIMIT}"
        );
        assert!(proxy.refused() > 0, "run {run}: the server refused the first bodies");
        assert_eq!(h.es.count(), 2000, "run {run}: every document in the cluster");
        assert_eq!(h.es.max_attempts_per_document(), 1, "run {run}: once each");
        let requests = h.es.requests();
        let sizes: Vec<usize> = requests.iter().map(|request| request.wire_bytes).collect();
        assert!(sizes.iter().all(|size| *size <= ANSWERING_LIMIT), "run {run}: only what the server takes arrives");
        let second = &sizes[last_of_each[0] + 1..=last_of_each[1]];
        let fewest = second.iter().sum::<usize>().div_ceil(ANSWERING_LIMIT);
        assert!(second.len() <= 2 * fewest, "run {run}: {second:?}, {fewest} would do");
        println!("run {run}: learned {learned_limit}, second invocation's requests {second:?}");
        for (i, pair) in sizes.windows(2).enumerate() {
            if !last_of_each.contains(&(i + 1)) && !last_of_each.contains(&i) {
                assert!(pair[0] + pair[1] > ANSWERING_LIMIT, "run {run}: requests {i} and {} were one body", i + 1);
            }
        }
    }
}

#[tokio::test]
async fn s34_a_proxy_that_closes_on_a_large_body_leads_to_smaller_requests_remembered_across_invocations() {
    let (h, proxy) = behind_a_proxy().await;
    // 300 records of 2 KiB: one 600 KiB request at the defaults, nearly five times the proxy's limit.
    let first = event(&sized_payloads(300, 2048));

    let report = h.deliver(&first).await;

    assert_eq!(tally(&report), [("indexed", 300)].into(), "split at once: nothing goes back, nothing is stuck");
    assert!(proxy.refused() >= 1, "the proxy refused the first body");
    let first_refusals = proxy.refused();
    // The search between the largest body taken and the smallest refused goes on in the next invocation, each probe
    // over the limit refused twice (sent once more: the connection may have been one the proxy had closed).
    let second = h.deliver(&event_from(300, &sized_payloads(300, 2048))).await;
    assert_eq!(tally(&second), [("indexed", 300)].into());
    let second_refusals = proxy.refused() - first_refusals;
    assert!(second_refusals < first_refusals, "{second_refusals} refusals after {first_refusals}: remembered");
    let third = h.deliver(&event_from(600, &sized_payloads(300, 2048))).await;
    assert_eq!(tally(&third), [("indexed", 300)].into());
    assert_eq!(proxy.refused(), first_refusals + second_refusals, "the search is over: nothing refused");
    let limit = third.summary.indexing.body_limit.expect("the size that worked is remembered");
    assert!((PROXY_LIMIT * 3 / 4..=PROXY_LIMIT).contains(&limit), "{limit}: within a quarter of the proxy's limit");
    assert_eq!(h.es.count(), 900);
    assert_eq!(h.es.max_attempts_per_document(), 1, "what the proxy refused never reached the cluster");
}

#[tokio::test]
async fn s34_a_document_too_large_for_the_proxy_is_rejected_with_the_sizes_named_and_the_rest_indexed() {
    let (h, _proxy) = behind_a_proxy().await;
    let mut payloads = sized_payloads(60, 2048);
    payloads.insert(0, sized_payloads(1, 200 * 1024).remove(0));
    let logs = Logs::capture();

    let report = h.deliver(&event(&payloads)).await;

    let mut expected = vec![kinesis_es_indexer::Outcome::Rejected];
    expected.resize(61, kinesis_es_indexer::Outcome::Indexed);
    assert_eq!(outcomes(&report), expected, "the large document first: even as the first request, no wedge");
    let rejected = logs.matching("ERROR", "Document rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["error_type"], "request_too_large");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("bytes"), "{}", rejected[0]);
    assert_eq!(h.es.count(), 60);
}
