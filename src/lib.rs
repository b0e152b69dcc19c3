//! kinesis-es-indexer: a Lambda function that indexes Kinesis batches into Elasticsearch/OpenSearch.
//!
//! The pipeline, one module per stage:
//! `record` (event → documents) → `bulk` (documents → `_bulk` bodies; replies → outcomes) → `elasticsearch`
//! (send chunks) → `route` (outcomes → one fate per record) → `firehose` (park "retry later") → `handler`
//! (the whole invocation, and the partial batch response).

pub mod bulk;
pub mod config;
pub mod elasticsearch;
pub mod error;
pub mod firehose;
pub mod handler;
pub mod index;
pub mod logging;
pub mod record;
pub mod route;

pub use config::Config;
pub use error::Error;
pub use handler::{Deps, Report, handle};
pub use record::KinesisEventIn;
pub use route::Outcome;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl Deps {
    /// Builds the clients for `config`: the Elasticsearch transport, and a Firehose client from the AWS SDK's
    /// standard configuration (region, credentials chain, `AWS_ENDPOINT_URL_FIREHOSE`) when a stream is named.
    pub async fn connect(config: Config) -> Result<Deps, Error> {
        let elasticsearch = elasticsearch::Elasticsearch::new(&config)?;
        let firehose = match &config.firehose_stream {
            None => None,
            Some(stream) => {
                let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                // Retries are ours (only failed entries, within the deadline); the SDK's would resend whole calls.
                let firehose_config = aws_sdk_firehose::config::Builder::from(&shared)
                    .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled())
                    .build();
                let client = aws_sdk_firehose::Client::from_conf(firehose_config);
                Some(firehose::Firehose::new(client, stream.clone(), config.firehose_max_attempts))
            }
        };
        Ok(Deps { config, elasticsearch, firehose })
    }
}

/// The invocation's deadline (Lambda gives milliseconds since the epoch) as an instant on tokio's clock.
pub fn deadline_from_epoch_millis(deadline_ms: u64) -> tokio::time::Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
