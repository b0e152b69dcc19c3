//! `make run`'s runner: the real cold start and handler on a sample event file, printing where every record went.
//!
//! Configuration comes from the environment exactly as in Lambda, and from the settings file beside the event, when
//! there is one (`events/preprocessing.env` for `events/preprocessing.json`: `NAME=value` lines; the environment
//! wins). Without `ES_URL`, an in-process Elasticsearch
//! double is started whose indices have `DOUBLE_SHARDS` shards (default 3) and whose write queue takes
//! `DOUBLE_WRITE_QUEUE` shard-level operations per request (default 2), so that a busy cluster's 429s show up on the
//! sample event: the documents of one shard come back 429 together, as from Elasticsearch.

use std::time::Duration;

use kinesis_es_indexer::route::SettledRecord;
use kinesis_es_indexer::{Config, Deps, KinesisEventIn, Outcome, handle, logging};
use testkit::EsDouble;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        // In its `Display` form: what went wrong and what to do, not a `Debug` dump.
        eprintln!("run_local: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    logging::init();
    let path = std::env::args().nth(1).unwrap_or_else(|| "events/kinesis.json".to_owned());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let shape: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path} is not JSON: {e}"))?;
    if !shape.get("Records").is_some_and(serde_json::Value::is_array) {
        return Err(format!(
            "{path} is not a Kinesis event: Lambda's Kinesis event is an object with a \"Records\" array (see \
             events/kinesis.json; make events writes the samples)"
        )
        .into());
    }
    let event: KinesisEventIn =
        serde_json::from_str(&text).map_err(|e| format!("{path} is not a Lambda event: {e}"))?;

    let settings = settings_beside(&path)?;
    let setting = |name: &str| {
        std::env::var(name).ok().or_else(|| settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let double = match setting("ES_URL") {
        Some(url) if !url.trim().is_empty() => None,
        _ => {
            let double = EsDouble::start().await;
            let number = |name: &str, default: usize| setting(name).and_then(|v| v.parse().ok()).unwrap_or(default);
            let (shards, queue) = (number("DOUBLE_SHARDS", 3), number("DOUBLE_WRITE_QUEUE", 2));
            double.set_shards(shards);
            double.set_write_queue(Some(queue));
            println!(
                "Elasticsearch double at {} ({shards} shards per index; its write queue takes {queue} shard-level operations per request)",
                double.url()
            );
            Some(double)
        }
    };
    let double_url = double.as_ref().map(EsDouble::url);
    let config = Config::from_lookup(|name| match (name, &double_url) {
        ("ES_URL", Some(url)) => Some(url.clone()),
        _ => setting(name),
    })?;
    let deps = Deps::connect(config).await?;
    let budget =
        Duration::from_millis(std::env::var("LOCAL_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(60_000));

    let report = handle(&event, tokio::time::Instant::now() + budget, &deps).await;

    println!("\n{} records from {path}:", report.records.len());
    println!("{:>3}  {:<10}  {:<16} {:>4}  why", "#", "sequence…", "outcome", "docs");
    for (position, SettledRecord { record, fate }) in report.records.iter().enumerate() {
        let sequence = record.provenance.sequence_number.as_deref().unwrap_or("none");
        let tail = &sequence[sequence.len().saturating_sub(10)..];
        let why = fate.failure.as_ref().map(|f| f.to_string()).unwrap_or_default();
        let why: String = why.chars().take(110).collect();
        println!("{position:>3}  {tail:<10}  {:<16} {:>4}  {why}", fate.outcome.name(), record.documents().len());
    }
    println!();
    for outcome in Outcome::ALL {
        println!("{:>16}: {}", outcome.name(), report.summary.count(outcome));
    }
    println!("\nBatch response to Lambda: {}", serde_json::to_string(&report.response())?);
    if let Some(double) = &double {
        let mut indices: Vec<String> = double.documents().into_iter().map(|(index, _, _)| index).collect();
        indices.dedup();
        println!("The Elasticsearch double holds {} documents in {}", double.count(), indices.join(", "));
        // A small sample shows what each document became.
        if double.count() <= 30 {
            for (index, id, source) in double.documents() {
                println!("  {index}  {id}\n    {source}");
            }
        }
    }
    Ok(())
}

/// The `NAME=value` lines of the settings file beside the event (`x.env` for `x.json`), when there is one; `#` starts
/// a comment.
fn settings_beside(event: &str) -> Result<Vec<(String, String)>, String> {
    let path = std::path::Path::new(event).with_extension("env");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    println!("Settings from {} (the environment wins)", path.display());
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once('=') {
            Some((name, value)) => Ok((name.trim().to_owned(), value.trim().to_owned())),
            None => Err(format!("{}: {line:?} is not NAME=value", path.display())),
        })
        .collect()
}
