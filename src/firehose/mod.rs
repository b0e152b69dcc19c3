//! Adapter to Amazon Data Firehose: parks "retry later" documents with `PutRecordBatch` within the service's limits,
//! resends only the entries that failed, with jittered backoff, within the time left.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_firehose::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchError;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::cause::{self, Failure};
use crate::chunk;
use crate::flow::pacing;

mod envelope;
pub use envelope::{Entry, Target, entry, opened};

/// PutRecordBatch limits: records per call, bytes per call, bytes per record (1,000 KiB).
pub const MAX_RECORDS_PER_CALL: usize = 500;
pub const MAX_BYTES_PER_CALL: usize = 4 * 1024 * 1024;
pub const FIREHOSE_RECORD_LIMIT: usize = 1_000 * 1024;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A delivery stream and the client to reach it, built once at cold start.
#[derive(Debug, Clone)]
pub struct Firehose {
    client: aws_sdk_firehose::Client,
    stream: String,
    max_attempts: u32,
    /// Where the calls go, for messages.
    endpoint: String,
}

/// A delivery stream as `DescribeDeliveryStream` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    pub name: String,
    /// `ACTIVE`, `CREATING`, `CREATING_FAILED`, `DELETING`, `DELETING_FAILED`.
    pub status: String,
    /// Its first destination, when it is a cluster (or an HTTP endpoint); `None` for any other kind.
    pub destination: Option<Destination>,
}

/// Where a stream delivers: the kind of cluster, the role Firehose writes as, the domain or endpoint, the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub kind: &'static str,
    pub role_arn: Option<String>,
    pub domain_arn: Option<String>,
    pub endpoint: Option<String>,
    pub index: Option<String>,
}

impl Destination {
    fn cluster(
        kind: &'static str,
        role_arn: Option<&str>,
        domain_arn: Option<&str>,
        endpoint: Option<&str>,
        index: Option<&str>,
    ) -> Destination {
        let owned = |text: Option<&str>| text.map(str::to_owned);
        Destination {
            kind,
            role_arn: owned(role_arn),
            domain_arn: owned(domain_arn),
            endpoint: owned(endpoint),
            index: owned(index),
        }
    }
}

/// Why `describe` has no description; `missing` when the stream does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeFailure {
    pub missing: bool,
    pub why: String,
}

/// What the Firehose step did: which documents it could not park and why, and what it counted.
#[derive(Debug, Default)]
pub struct Delivery {
    pub refused: HashMap<usize, Failure>,
    pub stats: DeliveryStats,
}

/// What the Firehose step counted, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryStats {
    pub calls: usize,
    pub accepted: usize,
    /// Entries that a call answered with an `ErrorCode` (each resend counts again).
    pub failed_entries: usize,
    pub elapsed: Duration,
}

impl Firehose {
    /// `endpoint`: where the client sends calls, as messages name it (`endpoint_of` for a client from the SDK's
    /// standard configuration).
    pub fn new(client: aws_sdk_firehose::Client, stream: String, max_attempts: u32, endpoint: String) -> Firehose {
        Firehose { client, stream, max_attempts, endpoint }
    }

    /// Why a whole PutRecordBatch call failed, naming the stream and the endpoint and saying whose it is to fix:
    /// the network (Firehose cannot be reached), the credentials (none, or refused), the stream (missing, its key),
    /// or the service (throttling, unavailable: worth another attempt). True when asking again cannot help.
    fn call_failure<R: std::fmt::Debug>(&self, error: &SdkError<PutRecordBatchError, R>) -> (String, bool) {
        let at = format!("Firehose stream {} at {}", self.stream, self.endpoint);
        let chain = crate::error::error_chain(error);
        match error {
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => (
                format!("{at} cannot be reached (networking: a VPC needs a NAT or a firehose endpoint): {chain}"),
                false,
            ),
            SdkError::TimeoutError(_) => (format!("{at} did not answer in time (networking): {chain}"), false),
            SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if cause::without_credentials(&chain) => {
                (format!("{at}: the function has no usable AWS credentials: {chain}"), true)
            }
            _ => match code_of(error) {
                Some(code) if cause::firehose_credentials_refused(code) => {
                    (format!("{at} refuses the function's credentials ({code}: {})", message_of(error)), true)
                }
                Some(code) if cause::firehose_stream_unusable(code) => {
                    (format!("{at} cannot take records ({code}: {})", message_of(error)), true)
                }
                Some(code) => (format!("{at} answered {code}: {}", message_of(error)), false),
                None => (format!("{at}: {chain}"), false),
            },
        }
    }

    /// The stream's state and destination, as `DescribeDeliveryStream` answers (the doctor's question); `Err` says
    /// why there is no answer, and whether it is because the stream does not exist.
    pub async fn describe(&self, timeout: Duration) -> Result<StreamDescription, DescribeFailure> {
        let call = self.client.describe_delivery_stream().delivery_stream_name(&self.stream).send();
        let at = format!("Firehose stream {} at {}", self.stream, self.endpoint);
        let answered = tokio::time::timeout(timeout, call).await.map_err(|_| DescribeFailure {
            missing: false,
            why: format!("{at} did not answer within {} ms", timeout.as_millis()),
        })?;
        let output = answered.map_err(|error| {
            let missing = error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception());
            let code = error.code().unwrap_or("no code");
            let message = error.message().map(str::to_owned).unwrap_or_else(|| crate::error::error_chain(&error));
            DescribeFailure { missing, why: format!("{at}: {code}: {message}") }
        })?;
        let Some(description) = output.delivery_stream_description() else {
            return Err(DescribeFailure { missing: false, why: format!("{at} answered without a description") });
        };
        let destination = description.destinations().first().and_then(|destination| {
            if let Some(d) = destination.amazonopensearchservice_destination_description() {
                Some(Destination::cluster(
                    "OpenSearch Service domain",
                    d.role_arn(),
                    d.domain_arn(),
                    d.cluster_endpoint(),
                    d.index_name(),
                ))
            } else if let Some(d) = destination.elasticsearch_destination_description() {
                Some(Destination::cluster(
                    "Elasticsearch Service domain",
                    d.role_arn(),
                    d.domain_arn(),
                    d.cluster_endpoint(),
                    d.index_name(),
                ))
            } else if let Some(d) = destination.amazon_open_search_serverless_destination_description() {
                Some(Destination::cluster(
                    "OpenSearch Serverless collection",
                    d.role_arn(),
                    None,
                    d.collection_endpoint(),
                    d.index_name(),
                ))
            } else {
                destination.http_endpoint_destination_description().map(|d| {
                    let url = d.endpoint_configuration().and_then(|e| e.url());
                    Destination::cluster("HTTP endpoint", d.role_arn(), None, url, None)
                })
            }
        });
        Ok(StreamDescription {
            name: self.stream.clone(),
            status: description.delivery_stream_status().as_str().to_owned(),
            destination,
        })
    }

    /// Offers every entry to the stream; returns the ones it never accepted.
    pub async fn put(&self, entries: Vec<Entry>, budget: Budget) -> Delivery {
        let started = Instant::now();
        let mut delivery = Delivery::default();
        let (fitting, too_large): (Vec<Entry>, Vec<Entry>) =
            entries.into_iter().partition(|e| e.data.len() <= FIREHOSE_RECORD_LIMIT);
        for entry in too_large {
            let reason =
                format!("{} bytes exceed Firehose's {FIREHOSE_RECORD_LIMIT}-byte record limit", entry.data.len());
            delivery.refused.insert(entry.document, Failure::not_parked(false, reason));
        }
        let calls =
            chunk::ranges_within(fitting.iter().map(|e| e.data.len()), MAX_RECORDS_PER_CALL, MAX_BYTES_PER_CALL);
        for call in calls {
            self.put_with_retries(&fitting[call], budget, &mut delivery).await;
        }
        delivery.stats.elapsed = started.elapsed();
        delivery
    }

    async fn put_with_retries(&self, entries: &[Entry], budget: Budget, delivery: &mut Delivery) {
        let mut pending: Vec<&Entry> = entries.iter().collect();
        let mut last_failure = None;
        let mut out_of_time = false;
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                let pause = pacing::full_jitter(attempt, FIRST_BACKOFF, MAX_BACKOFF);
                if pause >= budget.left() {
                    out_of_time = true;
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            let left = budget.left();
            if left.is_zero() {
                out_of_time = true;
                break;
            }
            let records: Vec<Record> = pending
                .iter()
                .map(|e| Record::builder().data(Blob::new(e.data.clone())).build().expect("data is set"))
                .collect();
            let call =
                self.client.put_record_batch().delivery_stream_name(&self.stream).set_records(Some(records)).send();
            delivery.stats.calls += 1;
            let output = match tokio::time::timeout(left, call).await {
                Err(_) => {
                    last_failure = Some(AttemptFailure::NoAnswer);
                    continue;
                }
                Ok(Err(error)) => {
                    let (why, needs_fixing) = self.call_failure(&error);
                    last_failure = Some(AttemptFailure::Call { why, needs_fixing });
                    // Asking again cannot help when the stream is missing or forbidden to us.
                    if needs_fixing {
                        break;
                    }
                    continue;
                }
                Ok(Ok(output)) => output,
            };
            let responses = output.request_responses();
            if responses.len() != pending.len() {
                // Cannot tell which entries got in; resending them all is safe, the target field keeps `_id`.
                last_failure = Some(AttemptFailure::Miscounted { answered: responses.len(), sent: pending.len() });
                continue;
            }
            let mut still_failing = Vec::new();
            for (entry, response) in pending.into_iter().zip(responses) {
                match response.error_code() {
                    None => delivery.stats.accepted += 1,
                    Some(code) => {
                        delivery.stats.failed_entries += 1;
                        let message = response.error_message().unwrap_or("no message");
                        last_failure = Some(AttemptFailure::Entries(format!("{code}: {message}")));
                        still_failing.push(entry);
                    }
                }
            }
            pending = still_failing;
            if pending.is_empty() {
                return;
            }
        }
        let failure = self.never_accepted(last_failure, out_of_time);
        for entry in pending {
            delivery.refused.insert(entry.document, failure.clone());
        }
    }

    /// Why entries were never accepted: the last attempt's failure, and whether time ran out for another one.
    fn never_accepted(&self, last_failure: Option<AttemptFailure>, out_of_time: bool) -> Failure {
        let reason = match &last_failure {
            None if out_of_time => "the deadline came before Firehose was asked".to_owned(),
            None => "FIREHOSE_MAX_ATTEMPTS reached".to_owned(),
            Some(AttemptFailure::NoAnswer) => format!(
                "Firehose stream {} at {} did not answer before the invocation's deadline",
                self.stream, self.endpoint
            ),
            Some(AttemptFailure::Call { why, .. }) | Some(AttemptFailure::Entries(why)) => why.clone(),
            Some(AttemptFailure::Miscounted { answered, sent }) => {
                format!("PutRecordBatch answered {answered} entries for {sent} sent")
            }
        };
        let reason = match (&last_failure, out_of_time) {
            (Some(_), true) => format!("{reason}; no time left for another attempt before the deadline"),
            _ => reason,
        };
        Failure::not_parked(matches!(last_failure, Some(AttemptFailure::Call { needs_fixing: true, .. })), reason)
    }
}

/// How one PutRecordBatch attempt left entries unaccepted.
#[derive(Debug)]
enum AttemptFailure {
    /// No answer before the invocation's deadline.
    NoAnswer,
    /// The whole call failed (`call_failure`'s reason); `needs_fixing` when asking again cannot help.
    Call { why: String, needs_fixing: bool },
    /// An answer with another number of entries than were sent: which got in is unknown.
    Miscounted { answered: usize, sent: usize },
    /// Entries answered with an error code: the last one's `code: message`.
    Entries(String),
}

/// The error code of a failed call: what the service said, or the modelled error's own name.
fn code_of<R>(error: &SdkError<PutRecordBatchError, R>) -> Option<&str> {
    error.code().or_else(|| modelled(error).map(|(code, _)| code))
}

/// The service's message for a failed call, or the modelled error's own.
fn message_of<R>(error: &SdkError<PutRecordBatchError, R>) -> &str {
    error.message().or_else(|| modelled(error).and_then(|(_, message)| message)).unwrap_or("no message")
}

/// The name and message of a modelled PutRecordBatch error (one built without the service's metadata has them
/// only here).
fn modelled<R>(error: &SdkError<PutRecordBatchError, R>) -> Option<(&'static str, Option<&str>)> {
    Some(match error.as_service_error()? {
        PutRecordBatchError::ResourceNotFoundException(e) => ("ResourceNotFoundException", e.message()),
        PutRecordBatchError::InvalidKmsResourceException(e) => ("InvalidKMSResourceException", e.message()),
        PutRecordBatchError::InvalidSourceException(e) => ("InvalidSourceException", e.message()),
        PutRecordBatchError::InvalidArgumentException(e) => ("InvalidArgumentException", e.message()),
        PutRecordBatchError::ServiceUnavailableException(e) => ("ServiceUnavailableException", e.message()),
        _ => return None,
    })
}

/// Where a client from the SDK's standard configuration sends calls, for messages: the endpoint override the SDK
/// reads (`AWS_ENDPOINT_URL_FIREHOSE`, then `AWS_ENDPOINT_URL`), else the region's public endpoint.
pub fn endpoint_of(client: &aws_sdk_firehose::Client) -> String {
    let overridden = ["AWS_ENDPOINT_URL_FIREHOSE", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|url| !url.trim().is_empty()));
    match (overridden, client.config().region()) {
        (Some(url), _) => crate::config::redact_url(&url),
        (None, Some(region)) => format!("https://firehose.{region}.amazonaws.com"),
        (None, None) => "no endpoint (no AWS region configured)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::{Cause, Fix};

    fn firehose() -> Firehose {
        let config = aws_sdk_firehose::Config::builder()
            .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
            .region(aws_sdk_firehose::config::Region::new("eu-west-1"))
            .build();
        let client = aws_sdk_firehose::Client::from_conf(config);
        Firehose::new(client, "parked".into(), 4, "https://firehose.eu-west-1.amazonaws.com".into())
    }

    #[test]
    fn entries_never_accepted_say_why_and_whose_it_is_to_fix() {
        let firehose = firehose();
        let why = |last, out_of_time| {
            let failure = firehose.never_accepted(last, out_of_time);
            (failure.cause, failure.error_type, failure.reason)
        };
        let refused = |reason: &str| (Cause::FirehoseRefused, "firehose_refused".to_owned(), reason.to_owned());
        assert_eq!(why(None, true), refused("the deadline came before Firehose was asked"));
        assert_eq!(
            why(Some(AttemptFailure::NoAnswer), false),
            refused(
                "Firehose stream parked at https://firehose.eu-west-1.amazonaws.com did not answer before the \
                 invocation's deadline"
            )
        );
        assert_eq!(
            why(Some(AttemptFailure::Miscounted { answered: 2, sent: 3 }), true),
            refused(
                "PutRecordBatch answered 2 entries for 3 sent; no time left for another attempt before the deadline"
            )
        );
        assert_eq!(
            why(Some(AttemptFailure::Entries("ServiceUnavailableException: Slow down.".into())), false),
            refused("ServiceUnavailableException: Slow down.")
        );
        let missing = AttemptFailure::Call { why: "the stream is missing".into(), needs_fixing: true };
        assert_eq!(
            why(Some(missing), false),
            (
                Cause::Misconfigured(Fix::FirehoseStream),
                "firehose_misconfigured".to_owned(),
                "the stream is missing".to_owned()
            ),
            "a stream that cannot take records is for someone to fix"
        );
        let throttled = AttemptFailure::Call { why: "throttled".into(), needs_fixing: false };
        assert_eq!(why(Some(throttled), false), refused("throttled"));
    }

    #[test]
    fn a_call_that_failed_before_any_answer_is_final_only_for_want_of_credentials() {
        let firehose = firehose();
        let failed = |why: &str| firehose.call_failure(&SdkError::<PutRecordBatchError, ()>::construction_failure(why));
        let (why, needs_fixing) = failed("no credentials provider: Credentials must be set");
        assert!(needs_fixing && why.contains("no usable AWS credentials"), "{why}");
        let (why, needs_fixing) = failed("invalid endpoint: a URL without a host");
        assert!(!needs_fixing && !why.contains("credentials"), "worth another attempt, not for someone: {why}");
        assert!(why.starts_with("Firehose stream parked at https://firehose.eu-west-1.amazonaws.com"), "{why}");
    }

    #[test]
    fn calls_are_named_by_the_regional_endpoint_unless_overridden() {
        let overridden = ["AWS_ENDPOINT_URL_FIREHOSE", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|name| std::env::var(name).is_ok_and(|url| !url.trim().is_empty()));
        assert!(!overridden, "the unit tests run without an endpoint override");
        assert_eq!(endpoint_of(&firehose().client), "https://firehose.eu-west-1.amazonaws.com");
        let no_region = aws_sdk_firehose::Config::builder()
            .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
            .build();
        let endpoint = endpoint_of(&aws_sdk_firehose::Client::from_conf(no_region));
        assert_eq!(endpoint, "no endpoint (no AWS region configured)");
    }
}
