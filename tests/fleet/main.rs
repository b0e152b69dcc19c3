//! A fleet of instances against one cluster with a small write pool (FAULTS.md 32): each warm instance adapts its
//! load to the cluster's answers. A test binary of its own: the fleet is a model run on the clock, and the other
//! integration tests, run in parallel beside it, would take the CPU its instances and doubles share.

use std::time::Duration;

use serde_json::json;
use testkit::{EsDouble, FirehoseDouble};

// The pipeline tests' support (doubles wired to Deps, events, redelivery); the fleet uses a part of it.
#[allow(dead_code, unused_imports)]
#[path = "../pipeline/support.rs"]
mod support;

use support::*;

/// What a fleet of instances did to drain its shards into one cluster with a small write pool.
#[derive(Debug, Clone)]
struct FleetFigures {
    mode: &'static str,
    documents: usize,
    /// Documents parked in Firehose, and their share of all documents.
    parked: usize,
    parked_share: f64,
    /// Bulk items the cluster received per document.
    items_per_document: f64,
    /// From the first invocation until every shard was drained.
    drain: Duration,
    /// Bulk requests the cluster received during a busy spell in the middle of the run.
    requests_during_spell: usize,
    /// Requests the write pool refused whole.
    pool_rejections: usize,
    /// Invocations that sent records back to Kinesis.
    redeliveries: usize,
}

/// The fleet's shape: `shards` instances (one per shard, each its own warm state), `batches` batches of `records`
/// one-document records each, Lambda's gap between a shard's invocations, and the write pool.
#[derive(Debug, Clone, Copy)]
struct Fleet {
    shards: usize,
    batches: usize,
    records: usize,
    poll_gap: Duration,
    pool: testkit::WritePool,
    /// A spell of every item answered 429, this long after the start, for this long.
    spell: Option<(Duration, Duration)>,
}

impl Fleet {
    /// 8 instances against a pool of 2 threads + 2 queue (3 ms a request and 0.1 ms an item), 50 ms between a
    /// shard's invocations (Lambda polling and invoking); `FLEET_BATCHES` (40) batches of 100 records per shard.
    /// `FLEET_SPELL_MS` adds a busy spell that long, half a second in.
    fn from_env() -> Fleet {
        let var = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        Fleet {
            shards: var("FLEET_SHARDS", 8) as usize,
            batches: var("FLEET_BATCHES", 40) as usize,
            records: var("FLEET_RECORDS", 100) as usize,
            poll_gap: Duration::from_millis(var("FLEET_POLL_MS", 50)),
            pool: testkit::WritePool {
                threads: 2,
                queue: 2,
                service: Duration::from_millis(var("FLEET_SERVICE_MS", 3)),
                per_item: Duration::from_micros(var("FLEET_PER_ITEM_US", 100)),
            },
            spell: match var("FLEET_SPELL_MS", 0) {
                0 => None,
                ms => Some((Duration::from_millis(500), Duration::from_millis(ms))),
            },
        }
    }

    /// Drains every shard with `BULK_CONCURRENCY_MODE=mode` and the defaults otherwise (but `BULK_MAX_DOCS`, 25,
    /// so that a batch of 100 records is four requests, as a default batch of 500 multi-document records is), with
    /// Lambda's redelivery from the first record sent back. The invariant is judged once, at the end, from the
    /// documents the test made: each of them exactly once, in the cluster or in Firehose (checking after every
    /// invocation would read every `_id` hundreds of times, and its cost would set the fleet's pace).
    async fn drain(&self, mode: &'static str) -> FleetFigures {
        let es = EsDouble::start().await;
        es.set_write_pool(Some(self.pool));
        // The invariant reads every `_id` after every invocation; sources would only be cloned with them.
        es.set_keep_sources(false);
        let firehose = FirehoseDouble::start().await;
        // FLEET_SETTINGS (`NAME=value,…`) sets the function's variables for both runs (BULK_CONCURRENCY=1, say).
        let settings = std::env::var("FLEET_SETTINGS").unwrap_or_default();
        let mut overrides: Vec<(&str, &str)> = vec![("BULK_MAX_DOCS", "25"), ("BULK_CONCURRENCY_MODE", mode)];
        overrides.extend(
            settings.split(',').filter(|pair| !pair.is_empty()).map(|pair| {
                pair.split_once('=').unwrap_or_else(|| panic!("FLEET_SETTINGS: {pair:?} is not NAME=value"))
            }),
        );
        let instances: Vec<kinesis_es_indexer::Deps> =
            (0..self.shards).map(|_| deps(&es, Some(&firehose), &overrides)).collect();
        let started = std::time::Instant::now();
        let spell = async {
            if let Some((after, lasting)) = self.spell {
                tokio::time::sleep(after).await;
                es.set_busy_spell(lasting);
            }
        };
        let shards = instances.iter().enumerate().map(|(shard, deps)| {
            async move {
                let mut redeliveries = 0;
                for batch in 0..self.batches {
                    // Sequence numbers grow within a shard and never repeat across shards.
                    let first = shard * 1_000_000 + batch * self.records;
                    let payloads: Vec<Vec<u8>> = (0..self.records)
                        .map(|i| json!({"shard": shard, "batch": batch, "i": i}).to_string().into_bytes())
                        .collect();
                    let mut pending = Some(event_on(&format!("shardId-{shard:012}"), first, &payloads));
                    while let Some(delivered) = pending.take() {
                        tokio::time::sleep(self.poll_gap).await;
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                        let report = kinesis_es_indexer::handle(&delivered, deadline, deps).await;
                        pending = redelivery(&delivered, &report);
                        redeliveries += usize::from(pending.is_some());
                    }
                }
                redeliveries
            }
        });
        let (redeliveries, ()) = tokio::join!(futures_util::future::join_all(shards), spell);
        let drain = started.elapsed();
        let documents = self.shards * self.batches * self.records;
        let parked = firehose.records().len();
        // Nothing lost, nothing written twice: every document once, in the cluster or parked.
        let stored = es.documents();
        for (index, id, _) in &stored {
            assert_eq!(es.version(index, id), Some(1), "{mode}: {id} written twice");
        }
        let parked_ids: std::collections::HashSet<String> = firehose
            .documents()
            .iter()
            .map(|document| document["es_target"]["_id"].as_str().expect("parked documents carry their _id").to_owned())
            .collect();
        assert_eq!(parked_ids.len(), parked, "{mode}: a document parked twice");
        let stored_ids: std::collections::HashSet<&String> = stored.iter().map(|(_, id, _)| id).collect();
        assert!(parked_ids.iter().all(|id| !stored_ids.contains(id)), "{mode}: a document both written and parked");
        assert_eq!(stored.len() + parked, documents, "{mode}: every document once, written or parked");
        let items: usize = es.requests().iter().map(|request| request.ids.len()).sum();
        FleetFigures {
            mode,
            documents,
            parked,
            parked_share: parked as f64 / documents as f64,
            items_per_document: items as f64 / documents as f64,
            drain,
            requests_during_spell: es.requests_during_busy_spell(),
            pool_rejections: es.pool_rejected_requests(),
            redeliveries: redeliveries.iter().sum(),
        }
    }
}

#[tokio::test]
async fn s32_a_fleet_adapts_to_a_small_write_pool_parks_a_third_or_less_of_what_fixed_concurrency_parks() {
    let fleet = Fleet::from_env();
    let fixed = fleet.drain("fixed").await;
    let adaptive = fleet.drain("adaptive").await;
    for figures in [&fixed, &adaptive] {
        println!(
            "fleet {:?}: {:>8} parked {:>5} of {} ({:.2} %), {:.2} bulk items per document, drained in {:.2} s, \
             {} requests during the busy spell, {} requests refused by the pool, {} redeliveries",
            (fleet.shards, fleet.batches, fleet.records),
            figures.mode,
            figures.parked,
            figures.documents,
            100.0 * figures.parked_share,
            figures.items_per_document,
            figures.drain.as_secs_f64(),
            figures.requests_during_spell,
            figures.pool_rejections,
            figures.redeliveries
        );
    }
    assert!(fixed.parked > 0, "the pool is small enough that fixed concurrency parks documents: {fixed:?}");
    assert!(adaptive.parked * 3 <= fixed.parked, "adaptive {adaptive:?}, fixed {fixed:?}");
}
