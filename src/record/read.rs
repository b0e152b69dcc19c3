//! One record of the event (`event::RecordView`, as the event's scan found it): its provenance and its base64 data,
//! or why it is malformed.

use super::{Provenance, Rejection};
use crate::event::RecordView;

/// Reads one record of the event as the event's scan found it: its provenance and its data (base64). On failure,
/// returns whatever provenance it has.
pub fn read_record<'a>(record: &RecordView<'a>) -> Result<(Provenance, &'a str), (Option<Provenance>, Rejection)> {
    let sequence_number = record.sequence_number.map(str::to_owned);
    let provenance = Provenance { shard_id: shard_of(record.event_id), sequence_number };
    match (record.malformed, record.data) {
        (None, Some(data)) => Ok((provenance, data)),
        (why, _) => {
            let provenance = provenance.sequence_number.is_some().then_some(provenance);
            let why = why.unwrap_or("missing field `data`").to_owned();
            Err((provenance, Rejection::MalformedRecord(why)))
        }
    }
}

/// The shard id is the part of `eventID` (`shardId-000000000006:4959…`) before the colon.
fn shard_of(event_id: Option<&str>) -> String {
    match event_id.and_then(|id| id.split_once(':')) {
        Some((shard, _)) if !shard.is_empty() => shard.to_owned(),
        _ => "unknown-shard".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::KinesisEventIn;
    use crate::timestamp;
    use chrono::{DateTime, Utc};

    /// `read_record` on an event of this one record: its provenance and arrival time, or the rejection.
    type ReadRecord = (Provenance, String, Option<DateTime<Utc>>);

    fn read(raw: &str) -> Result<ReadRecord, (Option<Provenance>, Rejection)> {
        let event = KinesisEventIn::from_records([raw]).unwrap();
        let record = event.record(0).unwrap();
        read_record(&record).map(|(provenance, data)| (provenance, data.to_owned(), record.arrival))
    }

    #[test]
    fn a_record_reads_its_shard_sequence_and_arrival_time() {
        let raw = r#"{"eventID":"shardId-000000000006:4959","kinesis":{"sequenceNumber":"4959","data":"aGk=","approximateArrivalTimestamp":1545084650.5,"partitionKey":"p"}}"#;
        let (provenance, data, arrival) = read(raw).unwrap();
        assert_eq!(
            provenance,
            Provenance { shard_id: "shardId-000000000006".into(), sequence_number: Some("4959".into()) }
        );
        assert_eq!(data, "aGk=");
        assert_eq!(timestamp::format_timestamp(arrival.unwrap()), "2018-12-17T22:10:50.500Z");
        let precise = raw.replace("1545084650.5", "1545084650.98765");
        assert_eq!(timestamp::format_timestamp(read(&precise).unwrap().2.unwrap()), "2018-12-17T22:10:50.988Z");
        let escaped = raw
            .replace(r#""data":"aGk=""#, r#""data":"aG\u006b=""#)
            .replace(r#""eventID":"#, r#""x":{"eventID":1},"eventID":"#);
        assert_eq!(read(&escaped).unwrap().1, "aGk=", "an escaped string is read as its text");
        let without =
            r#"{"kinesis":{"data":"aGk=","sequenceNumber":"1","approximateArrivalTimestamp":null},"eventID":null}"#;
        let (provenance, _, arrival) = read(without).unwrap();
        assert_eq!((provenance.shard_id.as_str(), arrival), ("unknown-shard", None), "optional fields may be null");
    }

    #[test]
    fn a_malformed_record_says_what_is_wrong_and_keeps_what_provenance_it_has() {
        let (provenance, rejection) =
            read(r#"{"eventID":"shardId-1:77","kinesis":{"sequenceNumber":"77","data":5}}"#).unwrap_err();
        assert_eq!(
            provenance.unwrap(),
            Provenance { shard_id: "shardId-1".into(), sequence_number: Some("77".into()) }
        );
        assert_eq!(rejection, Rejection::MalformedRecord("`data` is a number, not a string".into()));
        for (raw, why) in [
            (r#"{"nothing":true}"#, "missing field `kinesis`"),
            (r#"[1]"#, "the record is an array, not an object"),
            (r#""text""#, "the record is a string, not an object"),
            (r#"{"kinesis":true}"#, "`kinesis` is a boolean, not an object"),
            (r#"{"kinesis":{"data":"aGk="}}"#, "missing field `sequenceNumber`"),
            (r#"{"kinesis":{"sequenceNumber":null,"data":"aGk="}}"#, "missing field `sequenceNumber`"),
            (
                r#"{"kinesis":{"sequenceNumber":"1","data":"aGk=","approximateArrivalTimestamp":"x"}}"#,
                "`approximateArrivalTimestamp` is a string, not a number",
            ),
            (
                r#"{"kinesis":{"sequenceNumber":"1","data":"aGk="},"eventSourceARN":{}}"#,
                "`eventSourceARN` is an object, not a string",
            ),
            (r#"{"kinesis":{"sequenceNumber":"1","data":"aGk=","data":"aGk="}}"#, "duplicate field `data`"),
            (
                r#"{"kinesis":{"sequenceNumber":"1","data":"aGk="},"kinesis":{"sequenceNumber":"2","data":"aGk="}}"#,
                "duplicate field `kinesis`",
            ),
        ] {
            assert_eq!(read(raw).unwrap_err().1, Rejection::MalformedRecord(why.into()), "{raw}");
        }
        assert_eq!(read(r#"{"kinesis":{"data":5}}"#).unwrap_err().0, None, "no sequence number, no provenance");
    }
}
