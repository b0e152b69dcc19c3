//! The Firehose adapter against the AWS SDK's own mock layer (`aws-smithy-mocks`): partial failures, throttling, and
//! a stream that keeps failing until the deadline. Only failed entries are resent; what never got in is reported.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::operation::put_record_batch::{PutRecordBatchError, PutRecordBatchInput, PutRecordBatchOutput};
use aws_sdk_firehose::types::PutRecordBatchResponseEntry;
use aws_sdk_firehose::types::error::ServiceUnavailableException;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use kinesis_es_indexer::budget::Budget;
use kinesis_es_indexer::firehose::{self, Entry, Firehose};
use kinesis_es_indexer::record::Document;
use tokio::time::Instant;

/// Where the mocked client "sends" its calls, as messages name it.
const ENDPOINT: &str = "https://firehose.eu-west-1.amazonaws.com";

fn entries(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let document = Document {
                record: i,
                id: Some(format!("s:{i}:0")),
                index: Arc::from("logs"),
                source: format!("{{\"n\":{i}}}").into_bytes(),
            };
            firehose::entry(i, &document, "es_target")
        })
        .collect()
}

fn accepted() -> PutRecordBatchResponseEntry {
    PutRecordBatchResponseEntry::builder().record_id("49543463076548007577105092703039560359975228518395019266").build()
}

fn failed() -> PutRecordBatchResponseEntry {
    PutRecordBatchResponseEntry::builder().error_code("ServiceUnavailableException").error_message("Slow down.").build()
}

fn answer(responses: Vec<PutRecordBatchResponseEntry>) -> PutRecordBatchOutput {
    let failures = responses.iter().filter(|r| r.error_code().is_some()).count() as i32;
    PutRecordBatchOutput::builder().failed_put_count(failures).set_request_responses(Some(responses)).build().unwrap()
}

/// The `n` of every `{"n":…}` document in a request, in order.
fn numbers(input: &PutRecordBatchInput) -> Vec<u64> {
    input
        .records()
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(r.data().as_ref()).unwrap()["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_partial_failure_resends_only_the_failed_entries() {
    let first = mock!(Client::put_record_batch)
        .match_requests(|input| numbers(input) == [0, 1, 2, 3])
        .then_output(|| answer(vec![accepted(), failed(), accepted(), failed()]));
    let second = mock!(Client::put_record_batch)
        .match_requests(|input| numbers(input) == [1, 3])
        .then_output(|| answer(vec![accepted(), accepted()]));
    let client = mock_client!(aws_sdk_firehose, RuleMode::Sequential, &[&first, &second]);
    let sink = Firehose::new(client, "retry-later".into(), 4, ENDPOINT.into());

    let delivery =
        sink.put(entries(4), Budget::new(Instant::now() + Duration::from_secs(10), Duration::from_millis(100))).await;

    assert!(delivery.refused.is_empty(), "{:?}", delivery.refused);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!((delivery.stats.calls, delivery.stats.accepted, delivery.stats.failed_entries), (2, 4, 2));
}

#[tokio::test]
async fn a_throttled_call_is_made_again() {
    let throttled = mock!(Client::put_record_batch).then_error(|| {
        PutRecordBatchError::ServiceUnavailableException(
            ServiceUnavailableException::builder().message("Slow down.").build(),
        )
    });
    let fine = mock!(Client::put_record_batch).then_output(|| answer(vec![accepted(), accepted()]));
    let client = mock_client!(aws_sdk_firehose, RuleMode::Sequential, &[&throttled, &fine]);
    let sink = Firehose::new(client, "retry-later".into(), 4, ENDPOINT.into());

    let delivery =
        sink.put(entries(2), Budget::new(Instant::now() + Duration::from_secs(10), Duration::from_millis(100))).await;

    assert!(delivery.refused.is_empty());
    assert_eq!(delivery.stats.calls, 2);
}

/// On tokio's paused clock: the backoff pauses and the deadline are exact, however loaded the machine is. The
/// pauses are random (full jitter): twenty rounds cost no time and see many of them.
#[tokio::test(start_paused = true)]
async fn a_stream_that_keeps_failing_is_given_up_before_the_deadline() {
    let failing = mock!(Client::put_record_batch)
        .match_requests(|input| input.records().len() == 3)
        .sequence()
        .output(|| answer(vec![failed(), failed(), failed()]))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&failing]);
    let sink = Firehose::new(client, "retry-later".into(), 20, ENDPOINT.into());
    let margin = Duration::from_millis(300);
    let mut calls = 0;
    for round in 0..20 {
        let deadline = Instant::now() + Duration::from_millis(1200);

        let delivery = sink.put(entries(3), Budget::new(deadline, margin)).await;

        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left >= margin, "round {round}: gave up with {left:?} left, inside the margin or past the deadline");
        assert_eq!(delivery.refused.len(), 3, "every entry is reported, to go back to Kinesis");
        let refusal = &delivery.refused[&0];
        assert!(refusal.reason.starts_with("ServiceUnavailableException: Slow down."), "{refusal:?}");
        assert_eq!(
            refusal.cause,
            kinesis_es_indexer::cause::Cause::FirehoseRefused,
            "throttling passes; it needs no one to act"
        );
        assert!(
            delivery.stats.calls >= 2 && delivery.stats.calls < 20,
            "round {round}: {} calls: retried with backoff, bounded by the time left",
            delivery.stats.calls
        );
        calls += delivery.stats.calls;
    }
    assert_eq!(failing.num_calls(), calls);
}

#[tokio::test]
async fn entries_are_split_within_firehose_limits() {
    let calls = mock!(Client::put_record_batch)
        .sequence()
        .output(|| answer(vec![accepted(); 500]))
        .output(|| answer(vec![accepted(); 100]))
        .build();
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&calls]);
    let sink = Firehose::new(client, "retry-later".into(), 1, ENDPOINT.into());

    let delivery =
        sink.put(entries(600), Budget::new(Instant::now() + Duration::from_secs(10), Duration::from_millis(100))).await;

    assert!(delivery.refused.is_empty(), "{:?}", delivery.refused.values().next());
    assert_eq!((delivery.stats.calls, delivery.stats.accepted), (2, 600), "500 records per call at most");
}

/// One entry offered to a stream whose every call fails with `error`.
async fn put_one_failing_with(error: fn() -> PutRecordBatchError) -> kinesis_es_indexer::firehose::Delivery {
    let failing = mock!(Client::put_record_batch).then_error(error);
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&failing]);
    Firehose::new(client, "retry-later".into(), 4, ENDPOINT.into())
        .put(entries(1), Budget::new(Instant::now() + Duration::from_secs(10), Duration::from_millis(100)))
        .await
}

/// Whole-call failures say whose they are to fix, and name the stream and the endpoint; no SDK dump.
#[tokio::test]
async fn a_failed_call_names_the_stream_and_the_endpoint_and_says_whose_it_is_to_fix() {
    use aws_sdk_firehose::types::error::{InvalidKmsResourceException, ResourceNotFoundException};
    let delivery = put_one_failing_with(|| {
        let missing = ResourceNotFoundException::builder().message("Firehose retry-later under account 1 not found.");
        PutRecordBatchError::ResourceNotFoundException(missing.build())
    })
    .await;
    let failure = &delivery.refused[&0];
    assert_eq!(
        failure.cause,
        kinesis_es_indexer::cause::Cause::Misconfigured(kinesis_es_indexer::cause::Fix::FirehoseStream)
    );
    assert!(failure.reason.starts_with("Firehose stream retry-later at "), "{}", failure.reason);
    assert!(failure.reason.contains("cannot take records (ResourceNotFoundException"), "{}", failure.reason);
    assert_eq!(delivery.stats.calls, 1, "a missing stream is not asked again");

    let delivery = put_one_failing_with(|| {
        PutRecordBatchError::InvalidKmsResourceException(
            InvalidKmsResourceException::builder().message("key disabled").build(),
        )
    })
    .await;
    let reason = &delivery.refused[&0].reason;
    assert!(reason.contains("InvalidKMSResourceException: key disabled"), "{reason}");
}

fn real_client(endpoint: &str, credentials: bool) -> Client {
    let mut config = aws_sdk_firehose::config::Builder::new()
        .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
        .region(aws_sdk_firehose::config::Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled());
    if credentials {
        config = config.credentials_provider(aws_sdk_firehose::config::Credentials::for_tests());
    }
    Client::from_conf(config.build())
}

#[tokio::test]
async fn firehose_out_of_reach_is_networking_and_no_credentials_is_credentials() {
    // Nothing listens on port 9 of 127.0.0.1.
    let unreachable =
        Firehose::new(real_client("http://127.0.0.1:9", true), "retry-later".into(), 1, "http://127.0.0.1:9".into())
            .put(entries(1), Budget::new(Instant::now() + Duration::from_secs(10), Duration::from_millis(100)))
            .await;
    let reason = &unreachable.refused[&0].reason;
    assert!(
        reason.starts_with("Firehose stream retry-later at ") && reason.contains("cannot be reached (networking"),
        "{reason}"
    );
    assert!(reason.len() < 600, "one line, no SDK dump: {reason}");

    let anonymous =
        Firehose::new(real_client("http://127.0.0.1:9", false), "retry-later".into(), 4, "http://127.0.0.1:9".into())
            .put(entries(1), Budget::new(Instant::now() + Duration::from_secs(10), Duration::from_millis(100)))
            .await;
    let failure = &anonymous.refused[&0];
    assert!(failure.reason.contains("no usable AWS credentials"), "{}", failure.reason);
    assert_eq!((failure.cause.name(), anonymous.stats.calls), ("firehose_misconfigured", 1), "not asked for again");
}
