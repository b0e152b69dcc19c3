//! `make bench`'s floor: the empty handler every Rust Lambda on Kinesis starts from (`lambda_runtime` receiving
//! `aws_lambda_events`' `KinesisEvent` and answering an empty partial batch response). The indexer's CPU per record
//! is quoted against this, so the ratio holds on a noisy machine.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<KinesisEvent>| async move {
        std::hint::black_box(event.payload.records.len());
        Ok::<_, lambda_runtime::Error>(KinesisEventResponse::default())
    }))
    .await
}
