//! Local doubles for kinesis-es-indexer's tests and local runs: an Elasticsearch-compatible `_bulk` endpoint, an
//! Amazon Data Firehose `PutRecordBatch` endpoint, an S3 `PutObject` endpoint and the Lambda Runtime API, each on 127.0.0.1 at a port chosen at run time, stopped on drop.
//!
//! They answer with the real response shapes (taken from Elasticsearch's and Firehose's API references) and can be
//! told to misbehave the way production clusters do. Test tools, not products: small and honest. Beside them,
//! `peak_rss`: how much memory a function process has needed; `gzip`: data as a producer compresses it;
//! `kpl::aggregate`: user records as the KPL aggregates them; `top_level_names`: a document's fields, repeats kept.

pub mod elasticsearch;
pub mod firehose;
pub mod kpl;
pub mod lambda_api;
mod mapping;
pub mod proxy;
pub mod s3;
mod server;

pub use elasticsearch::{EsDouble, Fault, Flavour, IndexFault, Principal, SigV4Check, WritePool};
pub use firehose::{FirehoseDouble, FirehoseFault};
pub use lambda_api::{Answer, LambdaApiDouble};
pub use proxy::BodyLimitProxy;
pub use s3::S3Double;
pub use server::Blackhole;

/// The most resident memory process `pid` has used (VmHWM from `/proc/<pid>/status`), in bytes: what the function
/// process needs, for the memory tests and the bench.
pub fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let kb = status.lines().find_map(|line| line.strip_prefix("VmHWM:")).expect("VmHWM");
    kb.trim().trim_end_matches("kB").trim().parse::<usize>().expect("VmHWM in kB") * 1024
}

/// `bytes` as one gzip member, as producers and CloudWatch Logs compress record data (the default level: a test of
/// a gzip bomb needs its ratio).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing to memory cannot fail");
    encoder.finish().expect("writing to memory cannot fail")
}

/// The names of a JSON object's top-level fields, in order, a name given twice kept twice: Elasticsearch refuses such
/// a document, while serde's map would keep the last value silently. Panics when `json` is not one object.
pub fn top_level_names(json: &[u8]) -> Vec<String> {
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut names = Vec::new();
            while let Some((name, serde::de::IgnoredAny)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                names.push(name);
            }
            Ok(names)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_map(&mut deserializer, Names).expect("one JSON object")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_given_twice_is_listed_twice() {
        assert_eq!(super::top_level_names(br#"{"a":1,"b":{"a":2},"a":3}"#), ["a", "b", "a"]);
    }
}
