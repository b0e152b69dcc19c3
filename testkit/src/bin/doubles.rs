//! The Elasticsearch and Firehose doubles as a process, for `make invoke`: prints one JSON line with their URLs, then
//! serves until its standard input closes (so it never outlives the script that started it).

use testkit::{EsDouble, FirehoseDouble};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let es = EsDouble::start().await;
    if let Some(queue) = std::env::var("DOUBLE_WRITE_QUEUE").ok().and_then(|v| v.parse().ok()) {
        es.set_write_queue(Some(queue));
    }
    if let Some(shards) = std::env::var("DOUBLE_SHARDS").ok().and_then(|v| v.parse().ok()) {
        es.set_shards(shards);
    }
    let firehose = FirehoseDouble::start().await;
    println!("{}", serde_json::json!({"es_url": es.url(), "firehose_url": firehose.url()}));
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    eprintln!(
        "doubles: Elasticsearch holds {} documents; Firehose accepted {} records",
        es.count(),
        firehose.records().len()
    );
}
