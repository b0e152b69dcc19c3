//! KPL de-aggregation, pure: a Kinesis record that the Kinesis Producer Library aggregated (magic `F3 89 9A C2`, an
//! `AggregatedRecord` protobuf, the protobuf's MD5) → its user records, in order.
//!
//! The format is AWS's (`amazon-kinesis-producer`'s `messages.proto`, the same in the aggregation libraries); the
//! protobuf is read by `prost`, zero-copy: every user record's data is a slice of the record's own buffer.

use bytes::Bytes;
use md5::{Digest, Md5};

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_SIZE: usize = 16;

/// `messages.proto`'s `AggregatedRecord`.
#[derive(Clone, PartialEq, prost::Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<UserRecordMessage>,
}

/// `messages.proto`'s `Record`.
#[derive(Clone, PartialEq, prost::Message)]
struct UserRecordMessage {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "bytes", required, tag = "3")]
    data: Bytes,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

/// `messages.proto`'s `Tag`: read so that a well-formed aggregate with tags decodes; not used.
#[derive(Clone, PartialEq, prost::Message)]
struct Tag {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// Whether `data` is shaped as an aggregate: the magic, then more than a digest. What does not look like one is an
/// ordinary record (as AWS's de-aggregators treat it).
pub fn is_aggregate(data: &[u8]) -> bool {
    data.len() > MAGIC.len() + DIGEST_SIZE && data.starts_with(&MAGIC)
}

/// Why an aggregate cannot be read: the record is rejected whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptAggregate {
    DigestMismatch,
    Protobuf(String),
    KeyIndexOutOfRange { user_record: usize, index: u64, table: usize },
}

impl std::fmt::Display for CorruptAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorruptAggregate::DigestMismatch => f.write_str("its MD5 does not match its content"),
            CorruptAggregate::Protobuf(why) => write!(f, "its protobuf cannot be read: {why}"),
            CorruptAggregate::KeyIndexOutOfRange { user_record, index, table } => {
                write!(f, "user record {user_record} names key {index} of a table of {table}")
            }
        }
    }
}

/// The user records of an aggregate (`is_aggregate(data)` holds), each a slice of `data`.
pub fn deaggregate(data: Bytes) -> Result<Vec<Bytes>, CorruptAggregate> {
    let body = data.slice(MAGIC.len()..data.len() - DIGEST_SIZE);
    let digest = &data[data.len() - DIGEST_SIZE..];
    if Md5::digest(&body).as_slice() != digest {
        return Err(CorruptAggregate::DigestMismatch);
    }
    let aggregate = <AggregatedRecord as prost::Message>::decode(body)
        .map_err(|error| CorruptAggregate::Protobuf(error.to_string()))?;
    let (partition_keys, hash_keys) = (aggregate.partition_key_table.len(), aggregate.explicit_hash_key_table.len());
    aggregate
        .records
        .into_iter()
        .enumerate()
        .map(|(user_record, record)| {
            let out_of_range = |index: u64, table: usize| {
                (index >= table as u64).then_some(CorruptAggregate::KeyIndexOutOfRange { user_record, index, table })
            };
            if let Some(corrupt) = out_of_range(record.partition_key_index, partition_keys)
                .or_else(|| record.explicit_hash_key_index.and_then(|index| out_of_range(index, hash_keys)))
            {
                return Err(corrupt);
            }
            Ok(record.data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn fixture(name: &str) -> (Vec<Vec<u8>>, Bytes) {
        let fixtures: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/kpl_aggregates.json")).unwrap();
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.decode(text).unwrap();
        let fixture = &fixtures[name];
        let users = fixture["user_records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| match u["text"].as_str() {
                Some(text) => text.as_bytes().to_vec(),
                None => b64(u["base64"].as_str().unwrap()),
            })
            .collect();
        (users, Bytes::from(b64(fixture["aggregate_base64"].as_str().unwrap())))
    }

    #[test]
    fn aggregates_made_by_aws_library_give_back_their_user_records() {
        for name in ["json_objects", "mixed_kinds", "explicit_hash_keys", "one_user_record"] {
            let (users, aggregate) = fixture(name);
            assert!(is_aggregate(&aggregate), "{name}");
            let got: Vec<Vec<u8>> = deaggregate(aggregate).unwrap().iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, users, "{name}");
        }
    }

    #[test]
    fn a_corrupt_aggregate_says_why() {
        let (_, good) = fixture("json_objects");
        let mut bad_digest = good.to_vec();
        *bad_digest.last_mut().unwrap() ^= 1;
        assert_eq!(deaggregate(Bytes::from(bad_digest)), Err(CorruptAggregate::DigestMismatch));

        // Cut short, with a digest that matches what is left: the protobuf itself is truncated.
        let body = &good[4..good.len() - 16];
        let cut = &body[..body.len() - 5];
        let truncated = [&MAGIC[..], cut, &Md5::digest(cut)].concat();
        assert!(matches!(deaggregate(Bytes::from(truncated)), Err(CorruptAggregate::Protobuf(_))));

        let (_, bad_index) = fixture("bad_key_index");
        assert_eq!(
            deaggregate(bad_index),
            Err(CorruptAggregate::KeyIndexOutOfRange { user_record: 0, index: 5, table: 1 })
        );
    }

    #[test]
    fn what_only_starts_like_an_aggregate_is_not_one() {
        assert!(!is_aggregate(&MAGIC));
        assert!(!is_aggregate(&[&MAGIC[..], &[0; 16]].concat()));
        assert!(!is_aggregate(b"{\"a\":1}"));
    }

    #[test]
    fn the_tests_aggregates_round_trip() {
        // `testkit::kpl::aggregate` writes the protobuf by hand: what every other test feeds the de-aggregator.
        let users: [(&str, &[u8]); 3] = [("a", b"one"), ("b", b""), ("a", b"three")];
        let got = deaggregate(Bytes::from(testkit::kpl::aggregate(&users))).unwrap();
        assert_eq!(got, vec![Bytes::from_static(b"one"), Bytes::new(), Bytes::from_static(b"three")]);
    }
}
