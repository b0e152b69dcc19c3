//! Lambda's on-failure records for a Kinesis event source, pure: the batch an object names (`KinesisBatchInfo`), its
//! event from the record's `payload`, or the shape of the records read back from the stream when it has none.
//!
//! The format is documented in "Retain discarded batch records for a Kinesis Data Streams event source in Lambda"
//! (`DOCS`): key `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`, body the invocation
//! record (`requestContext`, `responseContext`, `KinesisBatchInfo` with the shard, the first and last sequence
//! numbers, the batch size and the stream's ARN) plus, for S3 destinations only, `payload`: the whole invocation
//! event, as its JSON text or as the event itself. A record without one (an SQS or SNS record copied to S3) names its
//! batch by shard and sequence range, read back with `GetShardIterator AT_SEQUENCE_NUMBER` and `GetRecords`.

use std::cmp::Ordering;

use serde_json::{Value, json};

use crate::replay::report::quoted;
use crate::route::compare_sequence_numbers;

pub const DOCS: &str = "https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html";

/// `KinesisBatchInfo`: where the batch Lambda gave up on is in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub shard_id: String,
    /// Decimal digits: Kinesis sequence numbers (56 digits) overflow every integer type, so they are compared as text.
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: usize,
    pub stream_arn: String,
}

/// What an on-failure object holds: the batch's event from its payload, or only where the batch is in the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum FailedBatch {
    Payload(Value),
    InStream(BatchInfo),
}

/// Reads one on-failure object's bytes; `Err` says why its batch cannot be run again (the object is kept).
pub fn read_failed_batch(body: &[u8]) -> Result<FailedBatch, String> {
    let record: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let info = BatchInfo::of(&record)?;
    match record.get("payload").filter(|payload| !payload.is_null()) {
        None => Ok(FailedBatch::InStream(info)),
        Some(payload) => {
            let event = event_from_payload(payload)?;
            let records = event["Records"].as_array().map_or(0, Vec::len);
            if records != info.batch_size {
                return Err(format!("payload holds {records} records but KinesisBatchInfo says {}", info.batch_size));
            }
            Ok(FailedBatch::Payload(event))
        }
    }
}

impl BatchInfo {
    /// The record's `KinesisBatchInfo`, every field there and the numbers integers.
    pub fn of(record: &Value) -> Result<BatchInfo, String> {
        let Some(info) = record.get("KinesisBatchInfo").filter(|info| info.is_object()) else {
            return Err(format!("not a Lambda on-failure record for Kinesis (no KinesisBatchInfo; see {DOCS})"));
        };
        // A field may be a string or a number; absent, null or empty, it is missing.
        let field = |name: &str| match info.get(name) {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            Some(Value::Null) | Some(Value::String(_)) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let fields = ["shardId", "startSequenceNumber", "endSequenceNumber", "batchSize", "streamArn"].map(field);
        let missing: Vec<&str> = ["shardId", "startSequenceNumber", "endSequenceNumber", "batchSize", "streamArn"]
            .iter()
            .zip(&fields)
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(format!("KinesisBatchInfo lacks {}", missing.join(", ")));
        }
        let [shard_id, start, end, batch_size, stream_arn] = fields.map(Option::unwrap_or_default);
        let batch_size = batch_size.parse::<usize>().ok();
        match batch_size {
            Some(batch_size) if is_decimal(&start) && is_decimal(&end) => Ok(BatchInfo {
                shard_id,
                start_sequence_number: start,
                end_sequence_number: end,
                batch_size,
                stream_arn,
            }),
            _ => Err("KinesisBatchInfo's sequence numbers and batchSize must be integers".to_owned()),
        }
    }

    /// The stream's region, from its ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
    pub fn region(&self) -> Result<&str, String> {
        let parts: Vec<&str> = self.stream_arn.split(':').collect();
        if parts.len() < 6 || parts[0] != "arn" || parts[2] != "kinesis" {
            return Err(format!("streamArn {} is not a Kinesis stream ARN", quoted(&self.stream_arn)));
        }
        Ok(parts[3])
    }

    /// The stream's name, from its ARN.
    pub fn stream_name(&self) -> Result<&str, String> {
        self.region()?;
        let resource = self.stream_arn.splitn(6, ':').nth(5).unwrap_or_default();
        resource
            .strip_prefix("stream/")
            .ok_or_else(|| format!("streamArn {} does not name a stream", quoted(&self.stream_arn)))
    }

    /// Whether a record read back from the stream is still within the batch.
    pub fn holds(&self, sequence_number: &str) -> bool {
        compare_sequence_numbers(sequence_number, &self.end_sequence_number) != Ordering::Greater
    }

    /// Checks that the records read back are the whole batch: the first at the batch's first sequence number, and
    /// as many as it had.
    pub fn check_read_back(&self, records: &[Value]) -> Result<(), String> {
        let first = records.first().and_then(|record| record["kinesis"]["sequenceNumber"].as_str());
        if first.is_none_or(|first| compare_sequence_numbers(first, &self.start_sequence_number) != Ordering::Equal) {
            return Err(format!(
                "the stream no longer holds the batch from sequence {} on {} (past the stream's retention, or a \
                 different stream)",
                self.start_sequence_number.trim_start_matches('0'),
                self.shard_id
            ));
        }
        if records.len() < self.batch_size {
            return Err(format!("the stream holds {} of the batch's {} records", records.len(), self.batch_size));
        }
        Ok(())
    }
}

/// One record as `GetRecords` returns it.
#[derive(Debug, Clone, Copy)]
pub struct StreamRecord<'a> {
    pub partition_key: &'a str,
    pub sequence_number: &'a str,
    pub data: &'a [u8],
    /// Seconds since the epoch, as Lambda writes `approximateArrivalTimestamp`.
    pub arrival_seconds: Option<f64>,
}

/// A record read back from the stream, shaped as Lambda delivers it to the function, so that the handler gives it
/// the `_id`s it would have had.
pub fn lambda_record(info: &BatchInfo, region: &str, got: StreamRecord<'_>) -> Value {
    let mut kinesis = json!({
        "kinesisSchemaVersion": "1.0",
        "partitionKey": got.partition_key,
        "sequenceNumber": got.sequence_number,
        "data": base64_simd::STANDARD.encode_to_string(got.data),
    });
    if let Some(arrival) = got.arrival_seconds {
        kinesis["approximateArrivalTimestamp"] = json!(arrival);
    }
    json!({
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{}:{}", info.shard_id, got.sequence_number),
        "eventName": "aws:kinesis:record",
        "awsRegion": region,
        "eventSourceARN": info.stream_arn,
    })
}

/// The invocation event a failure record's payload carries: its JSON text, or the event itself.
fn event_from_payload(payload: &Value) -> Result<Value, String> {
    let event = match payload {
        Value::String(text) => {
            serde_json::from_str(text).map_err(|e| format!("payload is not the event's JSON: {e}"))?
        }
        other => other.clone(),
    };
    match event.get("Records") {
        Some(Value::Array(_)) => Ok(event),
        _ => Err("payload is not a Kinesis event (no Records list)".to_owned()),
    }
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/logs";
    const START: &str = "49650000000000000000000000000000000000000000000000000001";
    const END: &str = "49650000000000000000000000000000000000000000000000000099";

    fn record(payload: Option<Value>) -> Value {
        let mut record = json!({
            "requestContext": {"condition": "RetryAttemptsExhausted"},
            "KinesisBatchInfo": {
                "shardId": "shardId-000000000000",
                "startSequenceNumber": START,
                "endSequenceNumber": END,
                "batchSize": 2,
                "streamArn": ARN,
            },
        });
        if let Some(payload) = payload {
            record["payload"] = payload;
        }
        record
    }

    fn read(record: &Value) -> Result<FailedBatch, String> {
        read_failed_batch(record.to_string().as_bytes())
    }

    #[test]
    fn the_payload_is_read_as_text_or_as_the_event_itself() {
        let event = json!({"Records": [{"kinesis": {}}, {"kinesis": {}}]});
        assert_eq!(read(&record(Some(event.clone()))), Ok(FailedBatch::Payload(event.clone())));
        assert_eq!(read(&record(Some(json!(event.to_string())))), Ok(FailedBatch::Payload(event)));
    }

    #[test]
    fn a_record_without_a_payload_names_its_batch_in_the_stream() {
        let Ok(FailedBatch::InStream(info)) = read(&record(None)) else { panic!("in the stream") };
        assert_eq!((info.batch_size, info.region(), info.stream_name()), (2, Ok("eu-west-1"), Ok("logs")));
        assert!(info.holds(END) && info.holds("99") && !info.holds(&format!("{END}0")));
        assert_eq!(read(&record(Some(Value::Null))), Ok(FailedBatch::InStream(info)), "a null payload is none");
    }

    #[test]
    fn what_cannot_be_replayed_says_why() {
        let why = |body: &[u8]| read_failed_batch(body).unwrap_err();
        assert!(why(b"{not json").starts_with("not JSON: "));
        assert!(why(br#"{"DDBStreamBatchInfo":{}}"#).contains("no KinesisBatchInfo"));
        let mut lacking = record(None);
        lacking["KinesisBatchInfo"]["shardId"] = json!("");
        lacking["KinesisBatchInfo"].as_object_mut().unwrap().remove("streamArn");
        assert_eq!(read(&lacking).unwrap_err(), "KinesisBatchInfo lacks shardId, streamArn");
        let mut not_numbers = record(None);
        not_numbers["KinesisBatchInfo"]["batchSize"] = json!("two");
        assert!(read(&not_numbers).unwrap_err().contains("must be integers"));
        let short = record(Some(json!(json!({"Records": [{}]}).to_string())));
        assert_eq!(read(&short).unwrap_err(), "payload holds 1 records but KinesisBatchInfo says 2");
        assert!(read(&record(Some(json!("{")))).unwrap_err().starts_with("payload is not the event's JSON"));
        assert!(read(&record(Some(json!({"records": []})))).unwrap_err().contains("no Records list"));
    }

    #[test]
    fn arns_that_are_not_a_streams_are_named() {
        let mut info = BatchInfo::of(&record(None)).unwrap();
        info.stream_arn = "arn:aws:sqs:eu-west-1:1:queue".into();
        assert_eq!(info.region().unwrap_err(), "streamArn 'arn:aws:sqs:eu-west-1:1:queue' is not a Kinesis stream ARN");
        info.stream_arn = "arn:aws:kinesis:eu-west-1:1:consumer/x".into();
        assert!(info.stream_name().unwrap_err().contains("does not name a stream"));
    }

    #[test]
    fn records_read_back_are_shaped_as_lambda_delivers_them_and_checked_whole() {
        let info = BatchInfo::of(&record(None)).unwrap();
        let got = |sequence| StreamRecord {
            partition_key: "p",
            sequence_number: sequence,
            data: b"{\"a\":1}",
            arrival_seconds: Some(1_763_636_400.5),
        };
        let first = lambda_record(&info, "eu-west-1", got(START));
        assert_eq!(first["eventID"], format!("shardId-000000000000:{START}"));
        assert_eq!(first["kinesis"]["data"], "eyJhIjoxfQ==");
        assert_eq!(first["kinesis"]["approximateArrivalTimestamp"], 1_763_636_400.5);
        assert_eq!(first["eventSourceARN"], ARN);
        let second = lambda_record(&info, "eu-west-1", got(END));
        assert_eq!(info.check_read_back(&[first.clone(), second.clone()]), Ok(()));
        assert_eq!(info.check_read_back(&[first]).unwrap_err(), "the stream holds 1 of the batch's 2 records");
        assert!(info.check_read_back(&[second]).unwrap_err().contains("no longer holds the batch"));
        assert!(info.check_read_back(&[]).unwrap_err().contains("no longer holds the batch"));
    }
}
