//! Cold start: logging, `Config::from_env`, clients; then the Lambda runtime loop calling `handle` per batch.

use kinesis_es_indexer::{Config, Deps, KinesisEventIn, deadline_from_epoch_millis, handle, logging};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deps = match Config::from_env() {
        Ok(config) => Deps::connect(config).await,
        Err(error) => Err(error.into()),
    };
    let deps = match deps {
        Ok(deps) => deps,
        Err(error) => {
            tracing::error!(%error, "Cold start failed");
            return Err(error.into());
        }
    };
    tracing::info!(es_url = %deps.config.es_url, index = deps.config.index.as_str(), firehose_stream = ?deps.config.firehose_stream, "Ready");
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEventIn>| async move {
        let deadline = deadline_from_epoch_millis(event.context.deadline);
        let report = handle(&event.payload, deadline, deps).await;
        Ok::<_, Diagnostic>(report.response())
    }))
    .await
}
