//! Integration tests: the real handler against the project's Elasticsearch and Firehose doubles.

mod binary;
mod faults;
mod protocol;
mod support;
