//! kinesis-es-indexer: a Lambda function that indexes Kinesis batches into Elasticsearch/OpenSearch.
//!
//! The pipeline, one module per stage:
//! `event` (the invocation's body, read once) → `record` (records → documents) → `bulk` (documents → `_bulk`
//! bodies) → `elasticsearch` (send chunks) → `cause` (replies → outcomes: every status and error type is read
//! there) → `route` (outcomes → one fate per record) →
//! `firehose` (park "retry later") → `handler` (the whole invocation, and the partial batch response).
//! `invocation` hands the handler the body as Lambda sent it. `flow` (how much to send at once, how large, when to
//! hold, when to answer) is what one warm instance learns of the cluster across invocations, within an invocation's
//! `budget`. `replay` is `make replay`: its reading of the failure stores, its report, and `replay::backup`, which
//! takes Firehose's backed-up documents (and the dead letter's) back to the cluster.

pub mod budget;
pub mod bulk;
pub mod cause;
pub mod chunk;
pub mod config;
pub mod dead_letter;
pub mod doctor;
pub mod elasticsearch;
pub mod error;
pub mod event;
pub mod firehose;
pub mod flow;
pub mod handler;
pub mod index;
pub mod invocation;
pub mod json;
pub mod kpl;
pub mod logging;
pub mod record;
pub mod replay;
pub mod route;
pub mod secret;
pub mod setup;
pub mod sigv4;
pub mod timestamp;

pub use cause::Outcome;
pub use config::Config;
pub use error::Error;
pub use event::KinesisEventIn;
pub use handler::{Deps, Report, handle};
