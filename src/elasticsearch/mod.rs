//! Adapter to the cluster: `client` speaks `_bulk` to one cluster; `indexing` is the stage that sends a batch's
//! chunks through it; `unstructured` sends once more, as they came, the
//! reshaped documents the cluster refused for their mapping.

mod client;
mod indexing;
mod unstructured;

pub use client::Elasticsearch;
pub use indexing::{IndexingStats, index_batch, index_documents};
pub use unstructured::index_plain_forms;
