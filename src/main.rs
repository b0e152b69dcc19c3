//! Cold start: logging, `Config::from_env`, clients; then the Lambda runtime loop calling `handle` per batch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kinesis_es_indexer::budget::Budget;
use kinesis_es_indexer::invocation::{self, TakeBody};
use kinesis_es_indexer::replay::backup;
use kinesis_es_indexer::{Config, Deps, Error, KinesisEventIn, handle, logging};
use kinesis_es_indexer::{doctor, setup};
use lambda_runtime::{Diagnostic, LambdaEvent, Runtime, layers::TracingLayer, service_fn};

// One thread: Lambda runs one invocation at a time and gives most functions one vCPU or less; the chunks in flight
// are concurrent on it. Fewer threads means fewer malloc arenas: the 1 KiB JSON bench's peak RSS fell from 34.5 to
// 30.8 MB, the CloudWatch Logs batch's from 49.8 to 39.1 MB, CPU unchanged.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deps = match Config::from_env() {
        Ok(config) => Deps::connect(config).await,
        Err(error) => Err(error.into()),
    };
    let deps = match deps {
        Ok(deps) => deps,
        Err(error) => {
            tracing::error!(%error, "Cold start failed");
            report_init_error(&error).await;
            // Exits here rather than returning the error from `main`, which would print its `Debug` form last.
            std::process::exit(1);
        }
    };
    let preprocess = &deps.config.preprocessing;
    let (filter_include, filter_exclude) = preprocess.filter.patterns();
    tracing::info!(
        es_url = %deps.config.cluster.url,
        index = deps.config.cluster.index.as_str(),
        firehose_stream = deps.config.firehose.stream.as_deref().unwrap_or("none"),
        message_json = preprocess.message_json.name(),
        filter_include = filter_include.unwrap_or("none"),
        filter_exclude = filter_exclude.unwrap_or("none"),
        added_fields = preprocess.added_fields.names().collect::<Vec<_>>().join(","),
        kinesis_metadata = preprocess.kinesis_metadata,
        "Ready"
    );
    let deps = &deps;
    let handler = service_fn(move |event: LambdaEvent<()>| async move {
        let body = invocation::take_body().unwrap_or_default();
        handle_body(body, event.context.deadline, deps).await
    });
    // As `lambda_runtime::run`, with the body taken as bytes (`invocation`) inside the request's span.
    Runtime::new(handler).layer(TakeBody).layer(TracingLayer::new()).run().await
}

/// What the function answers: the partial batch response to a Kinesis batch, or the report of a replay.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Answer {
    Batch(aws_lambda_events::streams::KinesisEventResponse),
    Replay(backup::BackupReport),
    Setup { setup: Vec<setup::PutOutcome> },
    Doctor(doctor::DoctorReport),
}

/// One invocation: the event read from the body Lambda sent, handled, answered with the partial batch response. A
/// replay event (`make replay REMOTE=1`, invoked by an operator) has backed-up documents written from inside the
/// function's VPC and role, and is answered with their report; a set-up event (`make firehose-pipeline REMOTE=1`)
/// has the project's pipeline and templates put from there, and is answered with each request's outcome; a doctor
/// event (`make doctor FUNCTION=…`) has every check run from there, and is answered with its report.
async fn handle_body(body: Vec<u8>, deadline_ms: u64, deps: &Deps) -> Result<Answer, Diagnostic> {
    let deadline = invocation_deadline(deadline_ms, SystemTime::now());
    if let Some(request) = backup::replay_request(&body) {
        let request = request.map_err(|error| {
            tracing::error!(%error, "The replay event cannot be read: nothing of it is indexed");
            invalid_event(error)
        })?;
        let (budget, _) = Budget::for_invocation(deadline, deps.config.bulk.deadline_margin);
        let replayed = backup::replay(&request.backup, budget, deps).await;
        let report = backup::report(&request.source, &request.backup, &replayed);
        // Its JSON, as the operator's `make replay` receives it.
        let logged = serde_json::to_string(&report).unwrap_or_default();
        tracing::info!(source = %request.source, documents = request.backup.len(), report = %logged, "Replay done");
        return Ok(Answer::Replay(report));
    }
    if let Some(request) = setup::setup_request(&body) {
        let request = request.map_err(|error| {
            tracing::error!(%error, "The set-up event cannot be read: nothing of it is sent");
            invalid_event(error)
        })?;
        // Each request within the invocation's time, less its margin, at most the cluster timeout.
        let (budget, _) = Budget::for_invocation(deadline, deps.config.bulk.deadline_margin);
        let timeout = budget.cap(deps.config.cluster.timeout);
        return Ok(Answer::Setup { setup: setup::apply(&request, timeout, deps).await });
    }
    if let Some(request) = doctor::doctor_request(&body) {
        request.map_err(|error| {
            tracing::error!(%error, "The doctor event cannot be read: nothing is checked");
            invalid_event(error)
        })?;
        let (budget, _) = Budget::for_invocation(deadline, deps.config.bulk.deadline_margin);
        let report = doctor::examine(
            deps,
            doctor::Budget { deadline: budget.until(), per_request: deps.config.cluster.timeout },
        )
        .await;
        let logged = serde_json::to_string(&report).unwrap_or_default();
        tracing::info!(healthy = report.healthy, report = %logged, "Doctor done");
        return Ok(Answer::Doctor(report));
    }
    let event = KinesisEventIn::from_body(body).map_err(|error| {
        // Lambda retries the whole batch; nothing of it was indexed.
        tracing::error!(%error, "The invocation's event cannot be read: nothing of it is indexed");
        invalid_event(error)
    })?;
    let report = handle(&event, deadline, deps).await;
    Ok(Answer::Batch(report.response()))
}

/// The failure Lambda reports for an event the function cannot read.
fn invalid_event(error: impl ToString) -> Diagnostic {
    Diagnostic { error_type: "InvalidEvent".to_owned(), error_message: error.to_string() }
}

/// Tells Lambda why the cold start failed (`/runtime/init/error`), so the invocation shows the error's type and
/// message rather than an unexplained exit. The batch stays in Kinesis and is retried with the next start.
async fn report_init_error(error: &Error) {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return; // Not under Lambda (a local run): the ERROR line is the report.
    }
    let error_type = error.kind();
    let body = serde_json::json!({"errorType": error_type, "errorMessage": error.to_string()}).to_string();
    let client = lambda_runtime_api_client::PooledClient::builder().build();
    let request = lambda_runtime_api_client::build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", format!("Runtime.{error_type}"))
        .body(lambda_runtime_api_client::body::Body::from(body));
    let sent = match request {
        Ok(request) => client.call(request).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(why) = sent {
        tracing::error!(%why, "Could not report the cold-start failure to the Lambda Runtime API");
    }
}

/// Milliseconds since the epoch on 2000-01-01: no real deadline is earlier.
const YEAR_2000_MS: u64 = 946_684_800_000;

/// The invocation's deadline as an instant on tokio's clock. Lambda sends milliseconds since the epoch; some local
/// emulators (cargo-lambda's `watch` sends `600000`) send the time allowed instead, which read as a date would be
/// in 1970 and leave no time at all: a value that cannot be a date of this century is read as a duration.
fn invocation_deadline(deadline_ms: u64, now: SystemTime) -> tokio::time::Instant {
    let left_ms = if deadline_ms < YEAR_2000_MS {
        deadline_ms
    } else {
        let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        deadline_ms.saturating_sub(now_ms)
    };
    tokio::time::Instant::now() + Duration::from_millis(left_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(deadline_ms: u64, now_ms: u64) -> Duration {
        let deadline = invocation_deadline(deadline_ms, UNIX_EPOCH + Duration::from_millis(now_ms));
        deadline.saturating_duration_since(tokio::time::Instant::now())
    }

    #[test]
    fn lambda_deadlines_are_epoch_milliseconds() {
        let now = 1_795_334_400_000;
        let remaining = left(now + 30_000, now);
        assert!(
            remaining > Duration::from_millis(29_000) && remaining <= Duration::from_millis(30_000),
            "{remaining:?}"
        );
        assert_eq!(left(now - 5, now), Duration::ZERO, "a deadline already past leaves nothing");
    }

    #[test]
    fn an_emulator_duration_is_read_as_time_allowed() {
        let remaining = left(600_000, 1_795_334_400_000);
        assert!(remaining > Duration::from_secs(599) && remaining <= Duration::from_secs(600), "{remaining:?}");
    }
}
