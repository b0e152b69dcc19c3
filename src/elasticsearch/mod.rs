//! Adapter to the cluster: `client` speaks `_bulk` to one cluster; `indexing` is the stage that sends a batch's
//! chunks through it.

mod client;
mod indexing;

pub use client::Elasticsearch;
pub use indexing::{IndexingStats, index_batch, index_documents};
