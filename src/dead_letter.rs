//! The dead letter: documents the cluster rejected for their own fault (a mapping it will not change, a field
//! limit, a document too large), kept whole in S3 so that none exists nowhere. One object per invocation, under
//! `DEAD_LETTER_PREFIX` in `DEAD_LETTER_BUCKET`, in the format of Firehose's backup for OpenSearch (one JSON object a
//! line: `rawData` the document with its target first, as this function parks it, `errorCode` the status,
//! `errorMessage` the cluster's error, `esIndexName`, `esDocumentId`), so that `make replay` reads both alike; each
//! line also names the record it came from (`kinesisShardId`, `kinesisSequenceNumber`).

use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::budget::Budget;
use crate::cause::Failure;
use crate::config::DeadLetterPlace;
use crate::firehose;
use crate::record::{Document, Provenance};

/// The most one dead letter write may take: an S3 that does not answer must leave time for parking in Firehose.
const MOST_TIME: Duration = Duration::from_secs(10);

/// An S3 client from the SDK's standard configuration: a custom endpoint (`AWS_ENDPOINT_URL_S3` or
/// `AWS_ENDPOINT_URL`: a local S3, an interface endpoint) is addressed by path, AWS's own by the bucket's host.
pub fn s3_client(shared: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = shared.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(shared).force_path_style(path_style).build())
}

/// Where rejected documents are kept, and the client that writes them.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    client: aws_sdk_s3::Client,
    place: DeadLetterPlace,
}

/// A rejected document to keep: the document as it was last sent, why the cluster refused it, and its record.
#[derive(Debug, Clone, Copy)]
pub struct Rejected<'a> {
    pub document: &'a Document,
    pub failure: &'a Failure,
    pub provenance: &'a Provenance,
}

impl DeadLetter {
    pub fn new(client: aws_sdk_s3::Client, place: DeadLetterPlace) -> DeadLetter {
        DeadLetter { client, place }
    }

    /// Writes `rejected` as one object, within half of what is left before `margin` and at most `MOST_TIME` (the
    /// rest is for parking in Firehose); its `s3://` address, or why S3 did not take it.
    pub async fn keep(&self, rejected: &[Rejected<'_>], target_field: &str, budget: Budget) -> Result<String, Failure> {
        let now = Utc::now();
        let key = object_key(&self.place.prefix, now, rejected);
        let address = format!("s3://{}/{key}", self.place.bucket);
        let body = lines(rejected, target_field, now);
        let left = (budget.left() / 2).min(MOST_TIME);
        let put = self
            .client
            .put_object()
            .bucket(&self.place.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(body.into())
            .send();
        match tokio::time::timeout(left, put).await {
            Ok(Ok(_)) => Ok(address),
            Ok(Err(error)) => Err(put_failure(&address, &error)),
            Err(_) => Err(Failure::not_kept(
                false,
                format!("{address} was not written within the invocation's time ({} ms left)", left.as_millis()),
            )),
        }
    }
}

/// Why S3 did not take the object: the bucket unusable (someone must act) or a refusal a redelivery may not meet.
fn put_failure<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    address: &str,
    error: &SdkError<E, R>,
) -> Failure {
    let chain = crate::error::error_chain(error);
    match error {
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
            if crate::cause::without_credentials(&chain) =>
        {
            Failure::not_kept(true, format!("{address}: the function has no usable AWS credentials: {chain}"))
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Failure::not_kept(
            false,
            format!("{address} cannot be reached (networking: a VPC needs an S3 gateway endpoint or a NAT): {chain}"),
        ),
        SdkError::ServiceError(_) => {
            let code = error.code().unwrap_or("unknown");
            let message = error.message().unwrap_or_default();
            let unusable = crate::cause::s3_bucket_unusable(code);
            Failure::not_kept(unusable, format!("{address} was not written ({code}: {message})"))
        }
        _ => Failure::not_kept(false, format!("{address} was not written: {chain}")),
    }
}

/// `<prefix>YYYY/MM/DD/HH/<shard>-<first sequence number>-<documents>.ndjson`: by the hour of writing (as
/// Firehose names its backup objects), the first rejected document's record, and how many it holds, so that the
/// same invocation run again within the hour writes the same key rather than a second copy.
pub fn object_key(prefix: &str, now: DateTime<Utc>, rejected: &[Rejected]) -> String {
    let first = rejected.first().map(|r| r.provenance);
    let shard = first.map_or("unknown", |p| p.shard_id.as_str());
    let sequence = first.and_then(|p| p.sequence_number.as_deref()).unwrap_or("none");
    format!(
        "{prefix}{:04}/{:02}/{:02}/{:02}/{shard}-{sequence}-{}.ndjson",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        rejected.len()
    )
}

/// The object's body: one line per document, in Firehose's backup format.
pub fn lines(rejected: &[Rejected], target_field: &str, now: DateTime<Utc>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line<'a> {
        attempts_made: u32,
        arrival_timestamp: i64,
        error_code: String,
        error_message: String,
        attempt_ending_timestamp: i64,
        raw_data: String,
        subsequence_number: u32,
        es_document_id: Option<&'a str>,
        es_index_name: &'a str,
        es_type_name: &'a str,
        kinesis_shard_id: &'a str,
        kinesis_sequence_number: Option<&'a str>,
    }
    let mut out = Vec::new();
    for Rejected { document, failure, provenance } in rejected {
        // The cluster's error as Elasticsearch writes it, and as Firehose's backup holds it.
        let error = serde_json::json!({"type": failure.error_type, "reason": failure.reason});
        let line = Line {
            attempts_made: 1,
            arrival_timestamp: now.timestamp_millis(),
            error_code: failure.status.map_or_else(String::new, |status| status.to_string()),
            error_message: error.to_string(),
            attempt_ending_timestamp: now.timestamp_millis(),
            raw_data: base64_simd::STANDARD.encode_to_string(firehose::entry(0, document, target_field).data),
            subsequence_number: 0,
            es_document_id: document.id.as_deref(),
            es_index_name: &document.index,
            es_type_name: "",
            kinesis_shard_id: &provenance.shard_id,
            kinesis_sequence_number: provenance.sequence_number.as_deref(),
        };
        serde_json::to_writer(&mut out, &line).expect("strings and numbers serialise");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::{Cause, refusal_cause};
    use serde_json::Value;

    #[test]
    fn each_line_is_a_firehose_backup_line_holding_the_document_at_its_target() {
        let document = Document {
            record: 0,
            id: Some("s:shardId-0:49:0".into()),
            index: "logs-2026.12.07".into(),
            source: br#"{"@timestamp":"2026-12-07T00:00:00.000Z","message":"m"}"#.to_vec(),
        };
        let (error_type, reason) = (
            "strict_dynamic_mapping_exception",
            "[1:9] mapping set to strict, dynamic introduction of [x] within [_doc] is not allowed",
        );
        let failure = Failure::answered(refusal_cause(400, error_type, reason), 400, error_type.into(), reason.into());
        assert_eq!(failure.cause, Cause::Document);
        let provenance = Provenance { shard_id: "shardId-0".into(), sequence_number: Some("49".into()) };
        let rejected = [Rejected { document: &document, failure: &failure, provenance: &provenance }];
        let now = DateTime::from_timestamp_millis(1_796_601_600_000).unwrap();
        let body = lines(&rejected, "es_target", now);
        let line: Value = serde_json::from_slice(body.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!((line["errorCode"].as_str(), line["esIndexName"].as_str()), (Some("400"), Some("logs-2026.12.07")));
        let error: Value = serde_json::from_str(line["errorMessage"].as_str().unwrap()).unwrap();
        assert_eq!((error["type"].as_str(), error["reason"].as_str()), (Some(error_type), Some(reason)));
        let raw = base64_simd::STANDARD.decode_to_vec(line["rawData"].as_str().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "{\"es_target\":{\"_id\":\"s:shardId-0:49:0\",\"_index\":\"logs-2026.12.07\"},\"@timestamp\":\"2026-12-07T00:00:00.000Z\",\"message\":\"m\"}\n"
        );
        assert_eq!(
            (line["kinesisShardId"].as_str(), line["kinesisSequenceNumber"].as_str()),
            (Some("shardId-0"), Some("49"))
        );
        assert_eq!(
            object_key("rejected-documents/", now, &rejected),
            "rejected-documents/2026/12/07/00/shardId-0-49-1.ndjson"
        );
    }

    #[test]
    fn a_put_that_failed_before_any_answer_needs_fixing_only_for_want_of_credentials() {
        use aws_sdk_s3::operation::put_object::PutObjectError;
        let failed =
            |why: &str| put_failure("s3://bucket/key", &SdkError::<PutObjectError, ()>::construction_failure(why));
        let no_credentials = failed("no credentials provider: Credentials must be set");
        assert_eq!(no_credentials.cause, Cause::Misconfigured(crate::cause::Fix::DeadLetterBucket));
        assert!(no_credentials.reason.contains("no usable AWS credentials"), "{}", no_credentials.reason);
        let other = failed("invalid endpoint: a URL without a host");
        assert_eq!(other.cause, Cause::DeadLetterRefused, "a redelivery may keep it: {}", other.reason);
    }
}
