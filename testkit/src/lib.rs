//! Local doubles for kinesis-es-indexer's tests and local runs: an Elasticsearch-compatible `_bulk` endpoint, an
//! Amazon Data Firehose `PutRecordBatch` endpoint and the Lambda Runtime API, each on 127.0.0.1 at a port chosen at run time, stopped on drop.
//!
//! They answer with the real response shapes (taken from Elasticsearch's and Firehose's API references) and can be
//! told to misbehave the way production clusters do. Test tools, not products: small and honest.

pub mod elasticsearch;
pub mod firehose;
pub mod lambda_api;
mod server;

pub use elasticsearch::{EsDouble, Fault, IndexFault, SigV4Check};
pub use firehose::{FirehoseDouble, FirehoseFault};
pub use lambda_api::{Answer, LambdaApiDouble};
