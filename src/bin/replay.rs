//! `make replay`'s engine: Kinesis batches that Lambda gave up on, run again through the function's own handler,
//! and documents Firehose could not deliver, sent as the direct path sends them (`kinesis_es_indexer::backup`).
//!
//! `scripts/replay.py` reads Lambda's on-failure records from S3 (and Kinesis when a record does not carry its
//! batch) and Firehose's backup objects, and feeds this binary one line per batch or object on stdin:
//! `{"source": "s3://bucket/key", "event": {"Records": […]}}` or `{"source": …, "backup": [{"line": 1, "raw": …,
//! "error_code": …, "error_message": …}]}`. Configuration comes from the environment exactly as in the function
//! (`ES_URL`, `FIREHOSE_STREAM_NAME`, …), so
//! a replayed record meets the same decoding, ids, routing and logging as in Lambda; the deterministic `_id` makes a
//! second replay of the same batch harmless (already there). One JSON line per batch goes to stdout, logs to stderr.
//!
//! When a batch has records the cluster could not take for a cluster-level reason (away, refusing access, a block),
//! the batches after it are not tried: they are reported `not_tried`, and nothing is hammered.

use std::io::{BufRead, Write};
use std::time::Duration;

use kinesis_es_indexer::backup::{self, BackedUp};
use kinesis_es_indexer::{Config, Deps, KinesisEventIn, Outcome, Report, handle, logging};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct BatchIn {
    source: String,
    /// Kept raw: the handler reads each record's raw JSON, as from Lambda.
    event: Option<Box<RawValue>>,
    /// Or the documents of a Firehose backup object.
    backup: Option<Vec<BackedUp>>,
}

#[tokio::main]
async fn main() {
    logging::init_writing_to(std::io::stderr);
    let timeout = match batch_timeout(std::env::args().skip(1)) {
        Ok(timeout) => timeout,
        Err(why) => exit_with(&why),
    };
    let deps = match Config::from_env() {
        Ok(config) => Deps::connect(config).await,
        Err(error) => Err(error.into()),
    };
    let deps = deps.unwrap_or_else(|error| exit_with(&format!("the function's configuration: {error}")));

    let mut stopped_by: Option<String> = None;
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap_or_else(|e| exit_with(&format!("cannot read stdin: {e}")));
        if line.trim().is_empty() {
            continue;
        }
        let result = match serde_json::from_str::<BatchIn>(&line) {
            Err(e) => json!({"source": null, "error": format!("not a replay line: {e}")}),
            Ok(BatchIn { source, .. }) if stopped_by.is_some() => json!({"source": source, "not_tried": stopped_by}),
            Ok(BatchIn { source, event: Some(event), backup: None }) => {
                match serde_json::from_str::<KinesisEventIn>(event.get()) {
                    Err(e) => json!({"source": source, "error": format!("not a Kinesis event: {e}")}),
                    Ok(event) => {
                        let report = handle(&event, tokio::time::Instant::now() + timeout, &deps).await;
                        stopped_by = cluster_level_reason(&report);
                        batch_result(&source, &report)
                    }
                }
            }
            Ok(BatchIn { source, event: None, backup: Some(lines) }) => {
                let replayed =
                    backup::replay(&lines, tokio::time::Instant::now() + timeout, Duration::ZERO, &deps).await;
                let result = backup::report(&source, &lines, &replayed);
                stopped_by = result["stop"].as_str().map(str::to_owned);
                result
            }
            Ok(BatchIn { source, .. }) => {
                json!({"source": source, "error": "a replay line holds an event or a backup"})
            }
        };
        let mut out = stdout.lock();
        let written = writeln!(out, "{result}").and_then(|()| out.flush());
        written.unwrap_or_else(|e| exit_with(&format!("cannot write stdout: {e}")));
    }
}

/// `--batch-timeout-seconds N`: the time one batch may take, as a function's timeout would allow (default 300 s).
fn batch_timeout(mut args: impl Iterator<Item = String>) -> Result<Duration, String> {
    let mut timeout = Duration::from_secs(300);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--batch-timeout-seconds" => {
                let value = args.next().ok_or("--batch-timeout-seconds needs a value")?;
                let seconds: u64 = value
                    .parse()
                    .ok()
                    .filter(|&s| (1..=3600).contains(&s))
                    .ok_or(format!("--batch-timeout-seconds must be 1 to 3600, not {value:?}"))?;
                timeout = Duration::from_secs(seconds);
            }
            other => return Err(format!("unknown argument {other:?} (only --batch-timeout-seconds N)")),
        }
    }
    Ok(timeout)
}

/// What one batch's replay did: counts per outcome, and each record that could not be replayed with its cause.
fn batch_result(source: &str, report: &Report) -> Value {
    let outcomes: serde_json::Map<String, Value> =
        Outcome::ALL.iter().map(|&o| (o.name().to_owned(), json!(report.summary.count(o)))).collect();
    let not_replayed: Vec<Value> = report
        .records
        .iter()
        .filter(|r| r.fate.outcome == Outcome::BackToKinesis)
        .map(|r| {
            let failure = r.fate.failure.as_ref();
            json!({
                "shard_id": r.record.provenance.shard_id,
                "sequence_number": r.record.provenance.sequence_number,
                "cause": failure.map(|f| f.cause.name()),
                "fix": failure.and_then(|f| f.cause.fix()).map(|fix| fix.hint()),
                "reason": failure.map(|f| f.to_string()),
            })
        })
        .collect();
    json!({
        "source": source,
        "records": report.records.len(),
        "documents": report.summary.documents,
        "outcomes": outcomes,
        "not_replayed": not_replayed,
    })
}

/// Why the batches after this one should wait: a record went back for a cause of the cluster's, not its own.
fn cluster_level_reason(report: &Report) -> Option<String> {
    report.records.iter().filter_map(|r| r.fate.failure.as_ref()).find(|f| f.cause.paces().is_some()).map(|f| {
        format!("an earlier batch found the cluster unable to take records ({}): replay again once it is back", f)
    })
}

fn exit_with(why: &str) -> ! {
    eprintln!("replay: {why}");
    std::process::exit(2);
}
