//! Integration tests: the real handler against the project's Elasticsearch and Firehose doubles.

mod auth;
mod binary;
mod busy;
mod dead_letter;
mod doctor;
mod faults;
mod firehose_mock;
mod invariant;
mod mappings;
mod preprocess;
mod production;
mod protocol;
mod replay;
mod soak;
mod support;
mod tls;
