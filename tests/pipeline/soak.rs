//! Redelivery as Lambda does it, under faults that come and go: each seed makes a random batch and drives it until
//! nothing is reported back, replaying from the lowest reported sequence number after every invocation while the
//! doubles misbehave (rejection bursts, a node leaving, outages, resets, timeouts, Firehose failures, a short deadline,
//! a shard limit reached, `_id`s refused). Batches mix JSON, text, NDJSON, CloudWatch Logs envelopes and KPL aggregates.
//! After `FAULTY_ROUNDS` the cluster recovers. Then Firehose's holdings are delivered through the ingest pipeline.
//! Half the seeds switch preprocessing on: structured messages (merge, nest or off), a filter whose word some log
//! events and lines carry, static fields, provenance, and routing by log group. Half keep rejected documents in a
//! dead letter, whose S3 refuses now and then (throttling, access denied).
//!
//! At the end: every indexable document is in the double exactly once; every rejected record is logged exactly once;
//! every unindexable document is logged by the indexer at most once, and is logged or refused by Firehose's delivery;
//! with a dead letter, each document logged as rejected is in it, and no indexable one is.
//!
//! `make test` runs `SOAK_SEEDS` (default 100) seeds of 3 batches of `SOAK_RECORDS` (default 40) records; `make soak`
//! runs many more. A failure names its seed: replay it with `SOAK_FIRST_SEED=<seed> SOAK_SEEDS=1`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kinesis_es_indexer::Outcome;
use serde_json::{Value, json};
use testkit::{Fault, FirehoseFault, IndexFault, S3Double};

use crate::support::*;

/// Consecutive batches of one shard per seed, each driven until nothing is reported back.
const BATCHES_PER_SEED: usize = 3;
/// Invocations of a batch with faults; later ones find the cluster and Firehose recovered.
const FAULTY_ROUNDS: usize = 10;
const MAX_ROUNDS: usize = 40;
const INDICES: [&str; 2] = ["logs-2026.11.21", "logs-2026.11.22"];

/// What a seed's batch holds, and what the end state must be.
#[derive(Default)]
struct Expected {
    /// `_id`s that must end in Elasticsearch exactly once.
    indexable: HashSet<String>,
    /// `_id`s Elasticsearch refuses (mapping conflicts).
    unindexable: HashSet<String>,
    /// Sequence numbers of records that cannot be decoded.
    undecodable: HashSet<String>,
}

#[derive(Default, Debug, Clone, Copy)]
struct SoakTally {
    seeds: u64,
    records: usize,
    invocations: usize,
    outcomes: [usize; 6],
}

impl SoakTally {
    fn add(&mut self, other: SoakTally) {
        self.seeds += other.seeds;
        self.records += other.records;
        self.invocations += other.invocations;
        for (sum, n) in self.outcomes.iter_mut().zip(other.outcomes) {
            *sum += n;
        }
    }
}

/// A random batch of `n` records starting at record `first` of the shard, and what each must become.
/// What CloudWatch Logs sends to check a subscription's destination: nothing to index.
const CONTROL_MESSAGE: &[u8] = br#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE"}]}"#;

/// The word `FILTER_EXCLUDE` drops, in seeds that switch preprocessing on.
const DROPPED: &str = "drop-me";

fn random_batch(
    rng: &mut fastrand::Rng,
    first: usize,
    n: usize,
    expected: &mut Expected,
    preprocessing: bool,
) -> Vec<Vec<u8>> {
    let mut payloads = Vec::with_capacity(n);
    for i in first..first + n {
        let stamp = if rng.bool() { "2026-11-21T10:00:00Z" } else { "2026-11-22T10:00:00Z" };
        let roll = rng.u8(..100);
        let payload = match roll {
            0..=54 => {
                expected.indexable.insert(doc_id(i, 0));
                serde_json::to_vec(&json!({"@timestamp": stamp, "n": i, "latency_ms": rng.u32(..500)})).unwrap()
            }
            55..=66 => {
                let events = rng.usize(1..5);
                // With preprocessing, some messages are JSON objects (merged or nested), some carry the dropped word.
                let messages: Vec<String> = (0..events)
                    .map(|e| match (preprocessing, rng.u8(..4)) {
                        (true, 0) => format!("line {e} {DROPPED}"),
                        (true, 1) => json!({"line": e, "level": "INFO", "n": i}).to_string(),
                        _ => format!("line {e}"),
                    })
                    .collect();
                for (position, message) in messages.iter().enumerate() {
                    if !message.contains(DROPPED) {
                        expected.indexable.insert(doc_id(i, position));
                    }
                }
                let log_events: Vec<Value> = messages
                    .iter()
                    .enumerate()
                    .map(|(e, message)| json!({"id": format!("{i}-{e}"), "timestamp": 1795334400000u64 + e as u64, "message": message}))
                    .collect();
                gzip(&serde_json::to_vec(&json!({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/app", "logStream": "s", "subscriptionFilters": ["f"], "logEvents": log_events})).unwrap())
            }
            67..=74 => {
                expected.unindexable.insert(doc_id(i, 0));
                serde_json::to_vec(&json!({"@timestamp": stamp, "n": i, "latency_ms": "slow"})).unwrap()
            }
            75..=79 => {
                expected.undecodable.insert(sequence(i));
                b"caf\xe9 is not UTF-8".to_vec()
            }
            80..=82 => {
                expected.undecodable.insert(sequence(i));
                Vec::new()
            }
            83..=85 => gzip(CONTROL_MESSAGE),
            86 => {
                expected.indexable.insert(doc_id(i, 0));
                format!("plain text line {i}").into_bytes()
            }
            87..=93 => {
                // A KPL aggregate of several JSON user records: one document each, `_id` by user record.
                let users: Vec<Vec<u8>> = (0..rng.usize(1..5))
                    .map(|u| serde_json::to_vec(&json!({"@timestamp": stamp, "n": i, "user_record": u})).unwrap())
                    .collect();
                for u in 0..users.len() {
                    expected.indexable.insert(doc_id(i, format!("{u}.0")));
                }
                let mut pairs: Vec<(&str, &[u8])> = users.iter().map(|u| ("pk", u.as_slice())).collect();
                // Now and then a user record with nothing to index: the others are indexed all the same.
                let control = gzip(CONTROL_MESSAGE);
                if rng.bool() {
                    pairs.push(("pk", &control));
                }
                testkit::kpl::aggregate(&pairs)
            }
            94..=95 => {
                // An aggregate whose digest is broken: rejected as one record.
                expected.undecodable.insert(sequence(i));
                let mut aggregate = testkit::kpl::aggregate(&[("pk", br#"{"n":1}"#)]);
                *aggregate.last_mut().unwrap() ^= 1;
                aggregate
            }
            _ => {
                // NDJSON: one document per line, a text line among them; lines end in LF or CRLF, and the last
                // line has no newline now and then (producers differ), which must not lose it.
                let lines = rng.usize(2..5);
                let newline = if rng.bool() { "\n" } else { "\r\n" };
                let dropped = if preprocessing && rng.bool() { DROPPED } else { "" };
                let mut text = String::new();
                for line in 0..lines {
                    if line != 1 || dropped.is_empty() {
                        expected.indexable.insert(doc_id(i, line));
                    }
                    match line {
                        1 => text.push_str(&format!("text line {i}{dropped}{newline}{newline}")),
                        _ => {
                            text.push_str(&format!("{{\"@timestamp\":\"{stamp}\",\"n\":{i},\"line\":{line}}}{newline}"))
                        }
                    }
                }
                if rng.bool() {
                    text.truncate(text.trim_end().len());
                }
                text.into_bytes()
            }
        };
        payloads.push(payload);
    }
    payloads
}

/// Misbehaviour for the next invocation.
fn random_faults(rng: &mut fastrand::Rng, h: &Harness, s3: &S3Double) {
    h.es.clear_faults();
    h.firehose.clear_faults();
    s3.set_refusing(match rng.u8(..100) {
        0..=14 => Some((503, "SlowDown")),
        15..=19 => Some((403, "AccessDenied")),
        _ => None,
    });
    if rng.u8(..100) < 30 {
        // Write-queue rejections, shard by shard: some of the request's shard-level operations are refused whole.
        h.es.set_shards(rng.usize(1..5));
        h.es.set_write_queue(Some(rng.usize(..4)));
    }
    if rng.u8(..100) < 15 {
        h.es.set_index_fault(INDICES[rng.usize(..2)], Some(IndexFault::UnavailableShards));
    }
    if rng.u8(..100) < 5 {
        h.es.set_index_fault(INDICES[rng.usize(..2)], Some(IndexFault::FloodStage));
    }
    if rng.u8(..100) < 8 {
        // At the shard limit: indices that exist take writes, a day not created yet is refused.
        h.es.set_max_indices(Some(h.es.index_count()));
    }
    if rng.u8(..100) < 4 {
        // A collection that refuses client `_id`s (a misconfiguration until an operator acts).
        h.es.set_refuse_document_ids(true);
    }
    let fault = match rng.u8(..100) {
        0..=14 => Some(Fault::unavailable()),
        15..=24 => Some(Fault::ResetAfterWrite),
        25..=29 => Some(Fault::ResetBeforeWrite),
        30..=34 => Some(Fault::Delay(Duration::from_millis(250))),
        35..=44 => Some(Fault::DropLastItem),
        45..=47 => Some(Fault::circuit_breaker()),
        48..=49 => Some(Fault::rejected_execution()),
        50..=52 => Some(Fault::Garbage),
        _ => None,
    };
    if let Some(fault) = fault {
        h.es.push_fault(fault);
    }
    match rng.u8(..100) {
        0..=19 => {
            h.firehose.push_fault(FirehoseFault::FailEntries((0..rng.usize(1..4)).map(|_| rng.usize(..6)).collect()))
        }
        20..=24 => h.firehose.push_fault(FirehoseFault::Throttle),
        25..=29 => h.firehose.set_fail_every_entry(true),
        30..=39 => {
            // Entries refused on both attempts (`FIREHOSE_MAX_ATTEMPTS` is 2): their records go back to Kinesis while
            // the others' stay parked, and the records after them are parked and redelivered too. Half the time the
            // cluster asks for later every document, so that most records are headed for Firehose.
            if rng.bool() {
                h.es.set_write_queue(Some(0));
            }
            h.firehose.push_fault(FirehoseFault::FailEntries((0..rng.usize(1..4)).map(|_| rng.usize(..6)).collect()));
            h.firehose.push_fault(FirehoseFault::FailEntries((0..500).collect()));
        }
        _ => {}
    }
}

/// Drives one seed's batch to the end; `Err` says what broke.
async fn soak_one(seed: u64, records: usize) -> Result<SoakTally, String> {
    let logs = Logs::capture();
    let mut rng = fastrand::Rng::with_seed(seed);
    let chunk = rng.usize(2..12).to_string();
    let concurrency = rng.usize(1..4).to_string();
    let preprocessing = rng.bool();
    let dead_letter = rng.bool();
    let message_json = ["merge", "nest", "off"][rng.usize(..3)];
    // Documents without a log group go to the soak's two daily indices (where `latency_ms` is a long); with
    // preprocessing, log events go to their group's.
    let (pattern, indices) = match preprocessing {
        false => ("logs-%Y.%m.%d", INDICES),
        true => ("logs-{log_group|direct}-%Y.%m.%d", ["logs-direct-2026.11.21", "logs-direct-2026.11.22"]),
    };
    let mut settings = vec![
        ("ES_INDEX", pattern),
        ("BULK_MAX_DOCS", &chunk),
        ("BULK_CONCURRENCY", &concurrency),
        ("ES_TIMEOUT_MS", "100"),
        ("DEADLINE_MARGIN_MS", "20"),
        ("FIREHOSE_MAX_ATTEMPTS", "2"),
        // Pacing and probing run, at a scale that keeps the soak fast.
        ("PACING_BASE_MS", "1"),
        ("PACING_MAX_MS", "8"),
    ];
    if preprocessing {
        settings.extend([
            ("MESSAGE_JSON", message_json),
            ("FILTER_EXCLUDE", DROPPED),
            ("ADD_FIELDS", r#"{"env":"soak","tags":["a","b"]}"#),
            ("ADD_KINESIS_METADATA", "true"),
        ]);
    }
    if dead_letter {
        settings.push(("DEAD_LETTER_BUCKET", "soak-failed-batches"));
    }
    let s3 = S3Double::start().await;
    let h = match dead_letter {
        true => Harness::start(&settings).await.with_dead_letter(&s3),
        false => Harness::start(&settings).await,
    };
    let pipeline: Value = serde_json::from_str(include_str!("../../deploy/firehose-pipeline.json")).unwrap();
    h.es.install_pipeline("kinesis-es-indexer-firehose", &pipeline)?;
    h.es.install_index_template(
        &serde_json::from_str(include_str!("../../deploy/firehose-index-template.json")).unwrap(),
    );
    for index in indices {
        h.es.map_field(index, "latency_ms", "long");
    }

    let mut expected = Expected::default();
    let mut tally = SoakTally { seeds: 1, records: BATCHES_PER_SEED * records, ..SoakTally::default() };
    for batch_number in 0..BATCHES_PER_SEED {
        let first = batch_number * records;
        let payloads = random_batch(&mut rng, first, records, &mut expected, preprocessing);
        let mut pending = Some(event_from(first, &payloads));
        let mut round = 0;
        while let Some(batch) = pending.take() {
            round += 1;
            if round > MAX_ROUNDS {
                return Err(format!(
                    "batch {batch_number}: still reporting records back after {MAX_ROUNDS} invocations"
                ));
            }
            if round <= FAULTY_ROUNDS {
                random_faults(&mut rng, &h, &s3);
            } else {
                h.es.clear_faults();
                h.firehose.clear_faults();
                s3.set_refusing(None);
            }
            let short_deadline = round <= FAULTY_ROUNDS && rng.u8(..100) < 5;
            let budget = if short_deadline { Duration::from_millis(rng.u64(0..60)) } else { Duration::from_secs(30) };
            let report = h
                .deliver_checked(&batch, budget)
                .await
                .map_err(|broken| format!("batch {batch_number}, invocation {round}: {broken}"))?;
            tally.invocations += 1;
            for (slot, outcome) in Outcome::ALL.iter().enumerate() {
                tally.outcomes[slot] += report.summary.count(*outcome);
            }
            pending = redelivery(&batch, &report);
        }
    }

    // Firehose delivers what it holds (later, to a recovered cluster), through the pipeline, as its OpenSearch
    // destination would.
    h.es.clear_faults();
    let held = h.firehose.records();
    let statuses = h.es.deliver_as_firehose(FIREHOSE_INDEX, &held);
    let mut refused_by_firehose_delivery: HashMap<String, usize> = HashMap::new();
    for (record, status) in held.iter().zip(statuses) {
        let id = serde_json::from_slice::<Value>(record).unwrap()["es_target"]["_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match status {
            200 | 201 => {}
            400 => *refused_by_firehose_delivery.entry(id).or_default() += 1,
            other => return Err(format!("Firehose's delivery of {id} answered {other}")),
        }
    }

    let stored: Vec<(String, String, Value)> = h.es.documents();
    let mut stored_ids: HashMap<&str, usize> = HashMap::new();
    for (index, id, _) in &stored {
        if index.starts_with("kinesis-es-indexer-firehose") {
            return Err(format!("{id} stayed in Firehose's index {index}: the pipeline did not route it"));
        }
        *stored_ids.entry(id).or_default() += 1;
    }
    for id in &expected.indexable {
        if stored_ids.get(id.as_str()) != Some(&1) {
            return Err(format!("{id} is indexable but stored {} times", stored_ids.get(id.as_str()).unwrap_or(&0)));
        }
    }
    if stored.len() != expected.indexable.len() {
        return Err(format!("{} documents stored, {} expected", stored.len(), expected.indexable.len()));
    }

    let mut logged_documents: HashMap<String, usize> = HashMap::new();
    let mut logged_records: HashMap<String, usize> = HashMap::new();
    for line in logs.matching("ERROR", "Document rejected") {
        *logged_documents.entry(line["doc_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    for line in logs.matching("ERROR", "Record rejected") {
        *logged_records.entry(line["sequence_number"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    for id in &expected.unindexable {
        let logged = logged_documents.get(id).copied().unwrap_or(0);
        let refused = refused_by_firehose_delivery.get(id).copied().unwrap_or(0);
        if logged > 1 || logged + refused == 0 {
            return Err(format!(
                "{id} cannot be indexed: logged {logged} times, refused by Firehose's delivery {refused} times"
            ));
        }
    }
    if let Some(id) = logged_documents.keys().find(|id| !expected.unindexable.contains(*id)) {
        return Err(format!("{id} was logged as rejected but is indexable"));
    }
    // The dead letter holds each document logged as rejected, and no indexable one. It may hold more: a rejected
    // document kept before its record was sent back (Firehose refused an earlier record of the shard) is kept again
    // on the redelivery, or ends in Firehose's backup when the redelivery found the cluster busy and parked it.
    let mut dead_lettered: HashMap<String, usize> = HashMap::new();
    for (_, body) in s3.objects() {
        for line in String::from_utf8(body).map_err(|e| e.to_string())?.lines() {
            let line: Value = serde_json::from_str(line).map_err(|e| format!("a dead letter line: {e}"))?;
            *dead_lettered.entry(line["esDocumentId"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
    }
    if let Some(id) = logged_documents.keys().find(|id| dead_letter && !dead_lettered.contains_key(*id)) {
        return Err(format!("{id} was logged as rejected but is not in the dead letter"));
    }
    if let Some(id) = dead_lettered.keys().find(|id| !expected.unindexable.contains(*id)) {
        return Err(format!("{id} is in the dead letter but is indexable"));
    }
    if !dead_letter && !dead_lettered.is_empty() {
        return Err(format!("a dead letter without DEAD_LETTER_BUCKET: {dead_lettered:?}"));
    }
    for sequence in &expected.undecodable {
        let logged = logged_records.get(sequence).copied().unwrap_or(0);
        if logged != 1 {
            return Err(format!("undecodable record {sequence} was logged {logged} times"));
        }
    }
    Ok(tally)
}

/// Runs seeds `first..first + count` on `threads` threads (each its own runtime and log capture).
fn run_seeds(first: u64, count: u64, records: usize, threads: u64) -> Result<SoakTally, String> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(first));
    let workers: Vec<_> = (0..threads.min(count).max(1))
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || -> Result<SoakTally, String> {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let mut total = SoakTally::default();
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if seed >= first + count {
                        return Ok(total);
                    }
                    let tally = runtime
                        .block_on(soak_one(seed, records))
                        .map_err(|why| format!("seed {seed}: {why}\n  replay: SOAK_FIRST_SEED={seed} SOAK_SEEDS=1 SOAK_RECORDS={records} cargo test --test pipeline soak"))?;
                    total.add(tally);
                }
            })
        })
        .collect();
    let mut total = SoakTally::default();
    for worker in workers {
        total.add(worker.join().map_err(|_| "a soak thread panicked".to_string())??);
    }
    Ok(total)
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn soak_redelivery_through_faults_loses_nothing_and_writes_nothing_twice() {
    let first = setting("SOAK_FIRST_SEED", 1);
    let seeds = setting("SOAK_SEEDS", 100);
    let records = setting("SOAK_RECORDS", 40) as usize;
    let started = std::time::Instant::now();
    match run_seeds(first, seeds, records, setting("SOAK_THREADS", 8)) {
        Ok(tally) => {
            let outcomes: Vec<String> =
                Outcome::ALL.iter().zip(tally.outcomes).map(|(o, n)| format!("{}={n}", o.name())).collect();
            println!(
                "soak: seeds {first}..{} × {BATCHES_PER_SEED} batches × {records} records: {} invocations, {} in {:.1?}",
                first + seeds,
                tally.invocations,
                outcomes.join(" "),
                started.elapsed()
            );
        }
        Err(why) => panic!("{why}"),
    }
}
