//! Set-up from inside: the requests `make firehose-pipeline REMOTE=1` and `make index-template REMOTE=1` have the
//! deployed function send to its cluster, with its network path, role and credentials (a domain in a VPC is out of
//! reach of an operator's machine). Only the project's own pipeline and templates may be put this way.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cause::Said;
use crate::handler::Deps;

/// The key a set-up event starts with: `{"kinesis_es_indexer_setup": {"requests": [{"path": …, "body": {…}}]}}`.
pub const SETUP_EVENT_KEY: &str = "kinesis_es_indexer_setup";

/// The paths a set-up event may put, relative to `ES_URL`: the Firehose tier's ingest pipeline and index template
/// (scripts/firehose_pipeline.py) and the logs' index template (scripts/index_template.py). Anything else is
/// refused without a request, so that the right to invoke the function is not a right to change the cluster at will.
pub const SETUP_PATHS: [&str; 3] = [
    "_ingest/pipeline/kinesis-es-indexer-firehose",
    "_index_template/kinesis-es-indexer-firehose",
    "_index_template/kinesis-es-indexer",
];

#[derive(Debug, Clone, Deserialize)]
pub struct SetupRequest {
    pub requests: Vec<Put>,
}

/// One `PUT` of a JSON body.
#[derive(Debug, Clone, Deserialize)]
pub struct Put {
    pub path: String,
    pub body: serde_json::Value,
}

/// What became of one `PUT`: the cluster's status and answer, or why it was not sent or not answered.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PutOutcome {
    pub path: String,
    pub status: Option<u16>,
    pub answer: String,
}

/// The set-up request a Lambda invocation's body holds, when it is one (it starts with `SETUP_EVENT_KEY`).
pub fn setup_request(body: &[u8]) -> Option<Result<SetupRequest, String>> {
    crate::invocation::operator_request(body, SETUP_EVENT_KEY, "set-up")
}

/// Sends each allowed `PUT` in order, each within `timeout`; a path outside `SETUP_PATHS` is answered without a
/// request. Every outcome is logged: ERROR for one the cluster or the function refused, INFO otherwise.
pub async fn apply(request: &SetupRequest, timeout: Duration, deps: &Deps) -> Vec<PutOutcome> {
    let mut outcomes = Vec::with_capacity(request.requests.len());
    for put in &request.requests {
        let path = put.path.trim_start_matches('/');
        let outcome = if !SETUP_PATHS.contains(&path) {
            PutOutcome {
                path: path.to_owned(),
                status: None,
                answer: format!("not sent: a set-up event may put only {}", SETUP_PATHS.join(", ")),
            }
        } else {
            let body = Bytes::from(serde_json::to_vec(&put.body).unwrap_or_default());
            match deps.elasticsearch.put_json(path, body, timeout).await {
                Ok((status, answer)) => PutOutcome { path: path.to_owned(), status: Some(status), answer },
                Err(why) => PutOutcome { path: path.to_owned(), status: None, answer: format!("not answered: {why}") },
            }
        };
        if outcome.status.is_some_and(|status| Said::of(status) == Said::Done) {
            tracing::info!(path = %outcome.path, status = outcome.status, "Set-up request applied");
        } else {
            tracing::error!(path = %outcome.path, status = outcome.status, answer = %outcome.answer, "Set-up request refused: the cluster (or the function) did not take it; answer says why");
        }
        outcomes.push(outcome);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_body_that_starts_with_the_key_is_a_set_up_event() {
        assert!(setup_request(br#"{"Records":[]}"#).is_none());
        assert!(setup_request(br#"{"kinesis_es_indexer_replay":{}}"#).is_none());
        let request = setup_request(
            br#" {"kinesis_es_indexer_setup":{"requests":[{"path":"_index_template/kinesis-es-indexer","body":{"priority":50}}]}}"#,
        );
        let request = request.expect("a set-up event").expect("readable");
        assert_eq!(request.requests[0].path, "_index_template/kinesis-es-indexer");
        assert!(setup_request(br#"{"kinesis_es_indexer_setup":{"requests":"no"}}"#).expect("a set-up event").is_err());
    }
}
