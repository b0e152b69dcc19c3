//! Cold start: logging, `Config::from_env`, clients; then the Lambda runtime loop calling `handle` per batch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kinesis_es_indexer::{Config, Deps, Error, KinesisEventIn, handle, logging};
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
            report_init_error(&error).await;
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

/// Tells Lambda why the cold start failed (`/runtime/init/error`), so the invocation shows the error's type and
/// message rather than an unexplained exit. The batch stays in Kinesis and is retried with the next start.
async fn report_init_error(error: &Error) {
    let error_type = error.kind();
    let body = serde_json::json!({"errorType": error_type, "errorMessage": error.to_string()}).to_string();
    let client = lambda_runtime_api_client::PooledClient::builder().build();
    let request = lambda_runtime_api_client::build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", format!("Runtime.{error_type}"))
        .body(lambda_runtime_api_client::body::Body::from(body));
    let sent = match request {
        Ok(request) => client.call(request).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(why) = sent {
        tracing::error!(%why, "Could not report the cold-start failure to the Lambda Runtime API");
    }
}

/// The invocation's deadline (Lambda gives milliseconds since the epoch) as an instant on tokio's clock.
fn deadline_from_epoch_millis(deadline_ms: u64) -> tokio::time::Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
