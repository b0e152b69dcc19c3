//! `make replay`: brings back the Kinesis batches Lambda gave up on, and the documents Firehose or the function's
//! dead letter kept, reading the bucket itself and running each through the function's code, here or deployed.
//!
//! One bucket listing (`--prefix`, default `aws/lambda/`): each object is a Lambda on-failure record (its batch from
//! its payload, or read back from the stream) or a backup object (`replay::on_failure`, `replay::backup_object`).
//! Locally, each batch runs through the handler and each backup object through `backup::replay`, with the function's
//! configuration from the environment (plus the deployed function's variables with `--function`, those already set
//! winning), so a replayed record meets the same decoding, `_id`s, routing and logging (stderr) as in Lambda. With
//! `--remote`, each goes to the deployed function with Lambda `Invoke` (`replay::remote`). After a batch or object the
//! cluster could not take for a cluster-level reason (away, busy, refusing), the rest are not tried. The report
//! (`replay::report`) goes to stdout; the exit status is 0 only when everything was replayed.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use kinesis_es_indexer::budget::Budget;
use kinesis_es_indexer::replay::backup::{self, BackedUp};
use kinesis_es_indexer::replay::backup_object::{backup_lines, read_backup};
use kinesis_es_indexer::replay::on_failure::{BatchInfo, FailedBatch, StreamRecord, lambda_record, read_failed_batch};
use kinesis_es_indexer::replay::options::{self, Command, Options};
use kinesis_es_indexer::replay::remote;
use kinesis_es_indexer::replay::report::{BatchResult, Listed, Origin, Replay, report};
use kinesis_es_indexer::{Config, Deps, KinesisEventIn, handle, logging};
use serde_json::Value;

/// What an object gives to replay: a batch's event, or a backup object's documents.
enum Work {
    Batch(Value),
    Backup(Vec<BackedUp>),
}

#[tokio::main]
async fn main() -> ExitCode {
    logging::init_writing_to(std::io::stderr);
    let options = match options::parse(std::env::args().skip(1), std::env::var("REPLAY_BUCKET").ok()) {
        Ok(Command::Replay(options)) => options,
        Ok(Command::Help) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("{}\nreplay: error: {why}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(why) => {
            eprintln!("replay: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The whole replay; `Ok(true)` when everything was replayed (or a dry run found nothing that cannot be).
async fn run(options: &Options) -> Result<bool, String> {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = kinesis_es_indexer::dead_letter::s3_client(&shared);
    let environment = match (&options.function, options.remote) {
        (Some(function), false) => function_environment(&shared, function).await?,
        _ => HashMap::new(),
    };

    let (bucket, prefix) = (&options.bucket, &options.prefix);
    let keys = list_keys(&s3, bucket, prefix).await.map_err(|e| format!("cannot list s3://{bucket}/{prefix}: {e}"))?;
    let (mut listed, mut work, mut cannot) = (Vec::new(), Vec::new(), Vec::new());
    for key in &keys {
        let source = format!("s3://{bucket}/{key}");
        match read_object(&s3, &shared, bucket, key).await {
            Ok((origin, count, unreadable, what)) => {
                listed.push(Listed { source, key: key.clone(), origin, count, unreadable });
                work.push(what);
            }
            Err(why) => cannot.push((source, why)),
        }
    }

    let results = match (options.dry_run || work.is_empty(), &options.function) {
        (true, _) => Vec::new(),
        (false, Some(function)) if options.remote => replay_remotely(&shared, function, &listed, &work).await,
        (false, _) => replay_locally(environment, options.batch_timeout, &listed, &work).await?,
    };
    let (text, replayed) = report(&listed, &results, &cannot, options.dry_run);
    print!("{text}");
    let mut deleted_all = true;
    if options.delete_replayed && !options.dry_run {
        let mut deleted = 0;
        for object in replayed.iter().map(|&position| &listed[position]) {
            match s3.delete_object().bucket(bucket).key(&object.key).send().await {
                Ok(_) => deleted += 1,
                Err(e) => {
                    eprintln!("replay: cannot delete {}: {}", object.source, DisplayErrorContext(e));
                    deleted_all = false;
                }
            }
        }
        println!("Deleted the {deleted} objects replayed in full.");
    }
    Ok(deleted_all && (replayed.len() == keys.len() || (options.dry_run && cannot.is_empty())))
}

/// The deployed function's environment variables (`GetFunctionConfiguration`).
async fn function_environment(shared: &SdkConfig, function: &str) -> Result<HashMap<String, String>, String> {
    let configuration = aws_sdk_lambda::Client::new(shared)
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| format!("cannot read the configuration of {function}: {}", DisplayErrorContext(e)))?;
    Ok(configuration.environment.and_then(|environment| environment.variables).unwrap_or_default())
}

async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| DisplayErrorContext(e).to_string())?;
        keys.extend(page.contents().iter().filter_map(|object| object.key().map(str::to_owned)));
    }
    Ok(keys)
}

/// One object read: where its batch or documents come from, how many, its unreadable lines, and what to replay.
async fn read_object(
    s3: &aws_sdk_s3::Client,
    shared: &SdkConfig,
    bucket: &str,
    key: &str,
) -> Result<(Origin, usize, Vec<(usize, String)>, Work), String> {
    let could_not_read = |e: String| format!("could not be read: {e}");
    let object = s3.get_object().bucket(bucket).key(key).send().await;
    let object = object.map_err(|e| could_not_read(DisplayErrorContext(e).to_string()))?;
    let body = object.body.collect().await.map_err(|e| could_not_read(e.to_string()))?.into_bytes();
    if let Some(lines) = backup_lines(&body)? {
        let object = read_backup(&lines);
        if object.documents.is_empty() {
            let why: Vec<String> =
                object.unreadable.iter().map(|(number, why)| format!("line {number}: {why}")).collect();
            return Err(if why.is_empty() { "no documents".to_owned() } else { why.join("; ") });
        }
        return Ok((Origin::Backup, object.documents.len(), object.unreadable, Work::Backup(object.documents)));
    }
    let (origin, event) = match read_failed_batch(&body)? {
        FailedBatch::Payload(event) => (Origin::Payload, event),
        FailedBatch::InStream(info) => {
            (Origin::Stream, serde_json::json!({"Records": read_back(shared, &info).await?}))
        }
    };
    let records = event["Records"].as_array().map_or(0, Vec::len);
    Ok((origin, records, Vec::new(), Work::Batch(event)))
}

/// Polls that find nothing before the stream is taken as holding no more of the batch.
const MAX_EMPTY_POLLS: usize = 20;

/// The batch's records read back from the stream, shaped as Lambda delivers them; `Err` when the stream no longer
/// holds all of them.
async fn read_back(shared: &SdkConfig, info: &BatchInfo) -> Result<Vec<Value>, String> {
    let region = info.region()?;
    let stream = info.stream_name()?;
    let config = aws_sdk_kinesis::config::Builder::from(shared)
        .region(aws_sdk_kinesis::config::Region::new(region.to_owned()))
        .build();
    let kinesis = aws_sdk_kinesis::Client::from_conf(config);
    let unreadable = |code: Option<&str>, e: String| match code {
        Some("ResourceNotFoundException") => {
            format!("the stream has no {} ({e}): deleted, resharded away or another account", info.shard_id)
        }
        _ => format!("the stream could not be read ({e})"),
    };
    let iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&info.start_sequence_number)
        .send()
        .await
        .map_err(|e| unreadable(e.code(), DisplayErrorContext(&e).to_string()))?;
    let mut iterator = iterator.shard_iterator;
    let (mut records, mut empty_polls) = (Vec::new(), 0);
    while let Some(shard_iterator) = iterator.take()
        && records.len() < info.batch_size
        && empty_polls < MAX_EMPTY_POLLS
    {
        let limit = (info.batch_size - records.len()).min(10_000) as i32;
        let answer = kinesis.get_records().shard_iterator(shard_iterator).limit(limit).send().await;
        let answer = answer.map_err(|e| unreadable(e.code(), DisplayErrorContext(&e).to_string()))?;
        let within: Vec<_> = answer.records().iter().filter(|record| info.holds(record.sequence_number())).collect();
        records.extend(within.iter().map(|record| {
            let got = StreamRecord {
                partition_key: record.partition_key().unwrap_or_default(),
                sequence_number: record.sequence_number(),
                data: record.data().as_ref(),
                arrival_seconds: record.approximate_arrival_timestamp().map(|at| at.as_secs_f64()),
            };
            lambda_record(info, region, got)
        }));
        if within.len() < answer.records().len() {
            break;
        }
        empty_polls = if answer.records().is_empty() { empty_polls + 1 } else { 0 };
        if answer.records().is_empty() && answer.millis_behind_latest().unwrap_or(0) == 0 {
            break;
        }
        iterator = answer.next_shard_iterator;
    }
    info.check_read_back(&records)?;
    Ok(records)
}

/// Runs each batch through the handler and each backup object through `backup::replay`, with the function's
/// configuration: the environment, and `function_environment` where the environment does not set a variable.
async fn replay_locally(
    function_environment: HashMap<String, String>,
    timeout: Duration,
    listed: &[Listed],
    work: &[Work],
) -> Result<Vec<Replay>, String> {
    let config =
        Config::from_lookup(|name| std::env::var(name).ok().or_else(|| function_environment.get(name).cloned()));
    let deps = match config {
        Ok(config) => Deps::connect(config).await,
        Err(error) => Err(error.into()),
    };
    let deps = deps.map_err(|error| format!("the function's configuration: {error}"))?;
    let deps = &deps;
    let replayed = until_stopped(listed, work, |object, what| async move {
        let deadline = tokio::time::Instant::now() + timeout;
        Ok(match what {
            Work::Batch(event) => match KinesisEventIn::from_body(event.to_string().into_bytes()) {
                Err(e) => Replay::Failed(format!("not a Kinesis event: {e}")),
                Ok(event) => Replay::Batch(BatchResult::of(&handle(&event, deadline, deps).await)),
            },
            Work::Backup(documents) => {
                let replayed = backup::replay(documents, Budget::new(deadline, Duration::ZERO), deps).await;
                Replay::Backup(backup::report(&object.source, documents, &replayed))
            }
        })
    })
    .await;
    Ok(replayed)
}

/// Replays each object with `replay_one`, in order, until one says the cluster could not take it (`Replay::stop`)
/// or could not be replayed at all (`Err`, which is reported as its failure): the rest are not tried, so that
/// nothing hammers a cluster that is away or busy.
async fn until_stopped<'a, F, R>(listed: &'a [Listed], work: &'a [Work], mut replay_one: F) -> Vec<Replay>
where
    F: FnMut(&'a Listed, &'a Work) -> R,
    R: std::future::Future<Output = Result<Replay, String>>,
{
    let mut results = Vec::new();
    let mut stopped_by: Option<String> = None;
    for (object, what) in listed.iter().zip(work) {
        if let Some(why) = &stopped_by {
            results.push(Replay::NotTried(why.clone()));
            continue;
        }
        let result = replay_one(object, what).await.unwrap_or_else(|why| {
            stopped_by = Some(format!("an earlier invocation failed: {why}"));
            Replay::Failed(why)
        });
        stopped_by = stopped_by.or_else(|| result.stop().map(str::to_owned));
        results.push(result);
    }
    results
}

/// Lambda's patience for one invocation: up to its 15 minutes, and a little more for the answer.
const INVOKE_READ_TIMEOUT: Duration = Duration::from_secs(910);

/// Runs the batches and backup objects through the deployed function, one invocation each (more for a large
/// object); after a batch or object the cluster could not take, or an invocation that failed, the rest are not tried.
async fn replay_remotely(shared: &SdkConfig, function: &str, listed: &[Listed], work: &[Work]) -> Vec<Replay> {
    // An invocation may run up to Lambda's 15 minutes; a shorter read timeout, or a retry, would invoke it again while
    // it still runs, loading the cluster twice and reporting written documents as not replayed.
    let patient = aws_sdk_lambda::config::Builder::from(shared)
        .timeout_config(
            aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                .read_timeout(INVOKE_READ_TIMEOUT)
                .connect_timeout(Duration::from_secs(10))
                .build(),
        )
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    let lambda = aws_sdk_lambda::Client::from_conf(patient);
    let lambda = &lambda;
    until_stopped(listed, work, |object, what| async move {
        match what {
            Work::Batch(event) => {
                let (answer, request_id) = invoke(lambda, function, event.to_string()).await?;
                let records = event["Records"].as_array().map_or(&[][..], Vec::as_slice);
                remote::batch_result(records, &answer, &request_id).map(Replay::Batch)
            }
            Work::Backup(documents) => backup_remotely(lambda, function, &object.source, documents).await,
        }
    })
    .await
}

/// A backup object's report from the function's replay reports, its lines sent in invocations under 6 MB.
async fn backup_remotely(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    source: &str,
    documents: &[BackedUp],
) -> Result<Replay, String> {
    let mut merged = remote::empty_report(source);
    for chunk in remote::invocations(documents) {
        if let Some(why) = merged.stop.clone() {
            remote::not_tried(&mut merged, chunk, &why);
            continue;
        }
        let event = serde_json::json!({backup::REPLAY_EVENT_KEY: {"source": source, "backup": chunk}});
        let (answer, request_id) = invoke(lambda, function, event.to_string()).await?;
        remote::absorb(&mut merged, remote::replay_report(&answer, &request_id)?);
    }
    Ok(Replay::Backup(merged))
}

/// The answer and request id of a synchronous invocation; `Err` when the function could not be invoked or failed.
async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str, payload: String) -> Result<(Value, String), String> {
    let response = lambda
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::RequestResponse)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| format!("the function {function} could not be invoked: {}", DisplayErrorContext(e)))?;
    let request_id = response.request_id().unwrap_or("?").to_owned();
    let body = response.payload().map(|payload| payload.as_ref()).unwrap_or_default();
    let answer = match body.iter().all(u8::is_ascii_whitespace) {
        true => Value::Null,
        false => serde_json::from_slice(body)
            .map_err(|e| format!("the function's answer (request {request_id}) is not JSON: {e}"))?,
    };
    if response.function_error().is_some() {
        return Err(format!("the function failed (request {request_id}): {answer}"));
    }
    Ok((answer, request_id))
}
