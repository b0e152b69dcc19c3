//! A fleet of instances against one cluster with a small write pool (FAULTS.md 32): each warm instance adapts its
//! load to the cluster's answers. A test binary of its own: the fleet is a model run on the clock, and the other
//! integration tests, run in parallel beside it, would take the CPU its instances and doubles share.
//!
//! `make fleet` runs every regime (heavy, moderate, light, each with and without a node lost for 5 s), fixed and
//! adaptive concurrency one after the other in each, and prints what the write pool did: how busy it was while the
//! fleet drained, the documents it indexed directly per second, the share parked in Firehose, bulk items per
//! document, the drain time and what Lambda would bill (the instances' invocations summed).

use std::time::{Duration, Instant};

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
    /// Thread time the write pool spent executing requests ÷ (threads × drain).
    pool_busy: f64,
    /// Documents the cluster indexed directly (not parked) per second of the drain.
    direct_per_second: f64,
    /// The instances' invocations summed: what Lambda bills (pauses and pacing included).
    billed: Duration,
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
    regime: &'static str,
    shards: usize,
    batches: usize,
    records: usize,
    poll_gap: Duration,
    pool: testkit::WritePool,
    /// A spell of every item answered 429, this long after the start, for this long.
    spell: Option<(Duration, Duration)>,
    /// One node of the pool's two lost (half the threads and queue), this long after the start, for this long.
    node_lost: Option<(Duration, Duration)>,
}

/// A number from the environment, or `default`.
fn var(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Fleet {
    /// A regime by name: `heavy` (8 instances, 3 ms a request and 0.1 ms an item: the pool is the bottleneck),
    /// `moderate` (8 instances, 1 ms and 60 µs) or `light` (3 instances, 1 ms and 60 µs); `-node-lost` after it
    /// loses one node of two for `FLEET_LOSS_MS` (5 s) a second in. Every regime: a pool of `FLEET_THREADS` (2)
    /// threads + `FLEET_QUEUE` (2) queued, 50 ms between a shard's invocations (Lambda polling and invoking),
    /// `FLEET_BATCHES` (40) batches of 100 records per shard. `FLEET_SHARDS`, `FLEET_SERVICE_MS`,
    /// `FLEET_PER_ITEM_US` replace the regime's own; `FLEET_SPELL_MS` adds a busy spell that long, half a second in.
    fn regime(name: &'static str) -> Fleet {
        let (base, node_lost) = match name.strip_suffix("-node-lost") {
            Some(base) => (base, Some((Duration::from_secs(1), Duration::from_millis(var("FLEET_LOSS_MS", 5000))))),
            None => (name, None),
        };
        let (shards, service_ms, per_item_us) = match base {
            "heavy" => (8, 3, 100),
            "moderate" => (8, 1, 60),
            "light" => (3, 1, 60),
            other => panic!("FLEET_REGIMES: no regime {other:?} (heavy, moderate, light, each with -node-lost)"),
        };
        Fleet {
            regime: name,
            shards: var("FLEET_SHARDS", shards) as usize,
            batches: var("FLEET_BATCHES", 40) as usize,
            records: var("FLEET_RECORDS", 100) as usize,
            poll_gap: Duration::from_millis(var("FLEET_POLL_MS", 50)),
            pool: testkit::WritePool {
                threads: var("FLEET_THREADS", 2) as usize,
                queue: var("FLEET_QUEUE", 2) as usize,
                service: Duration::from_millis(var("FLEET_SERVICE_MS", service_ms)),
                per_item: Duration::from_micros(var("FLEET_PER_ITEM_US", per_item_us)),
            },
            spell: match var("FLEET_SPELL_MS", 0) {
                0 => None,
                ms => Some((Duration::from_millis(500), Duration::from_millis(ms))),
            },
            node_lost,
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
        let started = Instant::now();
        let faults = async {
            if let Some((after, lasting)) = self.spell {
                tokio::time::sleep(after).await;
                es.set_busy_spell(lasting);
            }
            if let Some((after, lasting)) = self.node_lost {
                tokio::time::sleep(after.saturating_sub(started.elapsed())).await;
                es.lose_node(lasting);
            }
        };
        let shards = instances.iter().enumerate().map(|(shard, deps)| self.drain_shard(shard, deps));
        let (drained, ()) = tokio::join!(futures_util::future::join_all(shards), faults);
        let drain = started.elapsed();
        let documents = self.shards * self.batches * self.records;
        let parked = firehose.records().len();
        let stored = es.documents();
        assert_each_document_once(mode, &es, &firehose, &stored, documents);
        let items: usize = es.requests().iter().map(|request| request.ids.len()).sum();
        FleetFigures {
            mode,
            documents,
            parked,
            parked_share: parked as f64 / documents as f64,
            items_per_document: items as f64 / documents as f64,
            drain,
            pool_busy: es.pool_busy().as_secs_f64() / (self.pool.threads as f64 * drain.as_secs_f64()),
            direct_per_second: stored.len() as f64 / drain.as_secs_f64(),
            billed: drained.iter().map(|(_, billed)| *billed).sum(),
            requests_during_spell: es.requests_during_busy_spell(),
            pool_rejections: es.pool_rejected_requests(),
            redeliveries: drained.iter().map(|(redeliveries, _)| redeliveries).sum(),
        }
    }

    /// One shard's instance drains its batches, each until Lambda has nothing to redeliver: its redeliveries and
    /// the time its invocations took.
    async fn drain_shard(&self, shard: usize, deps: &kinesis_es_indexer::Deps) -> (usize, Duration) {
        let (mut redeliveries, mut billed) = (0, Duration::ZERO);
        for batch in 0..self.batches {
            // Sequence numbers grow within a shard and never repeat across shards.
            let first = shard * 1_000_000 + batch * self.records;
            let payloads: Vec<Vec<u8>> = (0..self.records)
                .map(|i| json!({"shard": shard, "batch": batch, "i": i}).to_string().into_bytes())
                .collect();
            let mut pending = Some(event_on(&format!("shardId-{shard:012}"), first, &payloads));
            while let Some(delivered) = pending.take() {
                tokio::time::sleep(self.poll_gap).await;
                let invoked = Instant::now();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                let report = kinesis_es_indexer::handle(&delivered, deadline, deps).await;
                billed += invoked.elapsed();
                pending = redelivery(&delivered, &report);
                redeliveries += usize::from(pending.is_some());
            }
        }
        (redeliveries, billed)
    }
}

/// Nothing lost, nothing written twice: every document the fleet made once, in the cluster or parked.
fn assert_each_document_once(
    mode: &str,
    es: &EsDouble,
    firehose: &FirehoseDouble,
    stored: &[(String, String, serde_json::Value)],
    documents: usize,
) {
    for (index, id, _) in stored {
        assert_eq!(es.version(index, id), Some(1), "{mode}: {id} written twice");
    }
    let parked_ids: std::collections::HashSet<String> = firehose
        .documents()
        .iter()
        .map(|document| document["es_target"]["_id"].as_str().expect("parked documents carry their _id").to_owned())
        .collect();
    assert_eq!(parked_ids.len(), firehose.records().len(), "{mode}: a document parked twice");
    let stored_ids: std::collections::HashSet<&String> = stored.iter().map(|(_, id, _)| id).collect();
    assert!(parked_ids.iter().all(|id| !stored_ids.contains(id)), "{mode}: a document both written and parked");
    assert_eq!(stored.len() + parked_ids.len(), documents, "{mode}: every document once, written or parked");
}

fn print(fleet: &Fleet, figures: &FleetFigures) {
    println!(
        "fleet {:<20} {:>8}: pool {:>5.1} % busy, {:>6.0} documents/s indexed directly, parked {:>5} of {} \
         ({:.2} %), {:.3} bulk items per document, drained in {:.2} s, billed {:.1} s, {} requests refused by the \
         pool, {} during the busy spell, {} redeliveries",
        fleet.regime,
        figures.mode,
        100.0 * figures.pool_busy,
        figures.direct_per_second,
        figures.parked,
        figures.documents,
        100.0 * figures.parked_share,
        figures.items_per_document,
        figures.drain.as_secs_f64(),
        figures.billed.as_secs_f64(),
        figures.pool_rejections,
        figures.requests_during_spell,
        figures.redeliveries
    );
}

/// The regimes `FLEET_REGIMES` names (comma-separated; `all`: every one), `heavy` by default.
fn regimes() -> Vec<&'static str> {
    const ALL: [&str; 6] = ["heavy", "heavy-node-lost", "moderate", "moderate-node-lost", "light", "light-node-lost"];
    let named = std::env::var("FLEET_REGIMES").unwrap_or_else(|_| "heavy".into());
    if named == "all" {
        return ALL.to_vec();
    }
    named
        .split(',')
        .map(|name| *ALL.iter().find(|regime| **regime == name.trim()).unwrap_or_else(|| panic!("no regime {name:?}")))
        .collect()
}

#[tokio::test]
async fn s32_a_fleet_adapts_to_a_small_write_pool_parks_a_third_or_less_of_what_fixed_concurrency_parks() {
    for _ in 0..var("FLEET_RUNS", 1) {
        for regime in regimes() {
            let fleet = Fleet::regime(regime);
            let fixed = fleet.drain("fixed").await;
            let adaptive = fleet.drain("adaptive").await;
            for figures in [&fixed, &adaptive] {
                print(&fleet, figures);
            }
            println!(
                "fleet {:<20} adaptive ÷ fixed: parked {:.2}, drain {:.2}, billed {:.2}",
                fleet.regime,
                adaptive.parked_share / fixed.parked_share.max(f64::MIN_POSITIVE),
                adaptive.drain.as_secs_f64() / fixed.drain.as_secs_f64(),
                adaptive.billed.as_secs_f64() / fixed.billed.as_secs_f64()
            );
            if fleet.regime.starts_with("heavy") {
                assert!(fixed.parked > 0, "the pool is small enough that fixed concurrency parks: {fixed:?}");
                assert!(adaptive.parked * 3 <= fixed.parked, "adaptive {adaptive:?}, fixed {fixed:?}");
            }
        }
    }
}
