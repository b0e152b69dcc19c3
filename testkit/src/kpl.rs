//! KPL aggregates as the Kinesis Producer Library writes them, for tests and benchmarks: the magic `F3 89 9A C2`,
//! an `AggregatedRecord` protobuf (`amazon-kinesis-producer`'s `messages.proto`), then the protobuf's MD5.
//!
//! The protobuf is written by hand, field by field, not with the indexer's own `prost` types: what the tests feed the
//! de-aggregator is then made independently of the code that reads it.

use md5::{Digest, Md5};

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// An aggregate of (partition key, data) user records, in order, each key written once in the key table as the KPL
/// does.
pub fn aggregate(user_records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut records = Vec::with_capacity(user_records.len());
    for &(key, data) in user_records {
        let index = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        // `Record`: 1 partition_key_index (varint), 3 data (bytes).
        let mut record = Vec::with_capacity(data.len() + 16);
        varint_field(&mut record, 1, index as u64);
        bytes_field(&mut record, 3, data);
        records.push(record);
    }
    // `AggregatedRecord`: 1 partition_key_table (strings), 3 records (messages).
    let mut body = Vec::new();
    for key in keys {
        bytes_field(&mut body, 1, key.as_bytes());
    }
    for record in &records {
        bytes_field(&mut body, 3, record);
    }
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + 16);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

/// A varint field: its key (field number, wire type 0), then the value.
fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    varint(out, field << 3);
    varint(out, value);
}

/// A length-delimited field: its key (field number, wire type 2), the length, the bytes.
fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Seven bits a byte, least significant first, the high bit set on every byte but the last.
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregate_is_magic_protobuf_digest() {
        let out = aggregate(&[("a", b"x"), ("b", b"yz"), ("a", b"")]);
        let body = &out[4..out.len() - 16];
        assert_eq!(&out[..4], &MAGIC);
        assert_eq!(&out[out.len() - 16..], Md5::digest(body).as_slice());
        #[rustfmt::skip]
        let expected = [
            0x0a, 1, b'a', 0x0a, 1, b'b',
            0x1a, 5, 0x08, 0, 0x1a, 1, b'x',
            0x1a, 6, 0x08, 1, 0x1a, 2, b'y', b'z',
            0x1a, 4, 0x08, 0, 0x1a, 0,
        ];
        assert_eq!(body, expected);
        let mut long = Vec::new();
        varint(&mut long, 300);
        assert_eq!(long, [0xac, 0x02]);
    }
}
