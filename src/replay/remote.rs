//! The remote mode's reading of the deployed function's answers, pure: a Kinesis batch's partial batch response as
//! the batch's result, a backup object's lines split into invocations Lambda takes, and the function's replay
//! reports merged into one per object.

use serde_json::Value;

use crate::replay::backup::{BackedUp, BackupReport, NotReplayed};
use crate::replay::report::BatchResult;

/// Lambda's synchronous `Invoke` takes and answers at most 6 MB: a backup object's lines go in invocations of at most
/// this many bytes and lines (a report names each line not replayed in about 250 bytes).
pub const INVOKE_PAYLOAD_BYTES: usize = 5 * 1024 * 1024;
pub const INVOKE_LINES: usize = 10_000;

/// A batch's result from the function's partial batch response: every record from the lowest one it sent back on
/// is not replayed (Lambda's checkpoint), the cause in the function's log lines for the request.
pub fn batch_result(records: &[Value], answer: &Value, request_id: &str) -> Result<BatchResult, String> {
    let Some(failures) = answer.get("batchItemFailures").and_then(Value::as_array) else {
        return Err(format!("the function's answer (request {request_id}) is not a partial batch response: {answer}"));
    };
    let failed: Vec<&Value> = failures.iter().map(|failure| &failure["itemIdentifier"]).collect();
    let sequence = |record: &Value| record["kinesis"]["sequenceNumber"].clone();
    let first = match records.iter().position(|record| failed.contains(&&sequence(record))) {
        Some(first) => first,
        // A failure naming no record of the batch: Lambda retries it all.
        None if !failed.is_empty() => 0,
        None => records.len(),
    };
    let not_replayed: Vec<NotReplayed> = records[first..]
        .iter()
        .map(|record| {
            let event_id = record["eventID"].as_str().unwrap_or_default();
            let shard = event_id.split_once(':').map_or(event_id, |(shard, _)| shard);
            let sequence = record["kinesis"]["sequenceNumber"].as_str().unwrap_or_default();
            NotReplayed {
                at: format!("{shard}:{sequence}"),
                cause: "sent_back".to_owned(),
                fix: None,
                reason: format!("the function sent it back to Kinesis; its log lines for request {request_id} say why"),
            }
        })
        .collect();
    let stop = (!not_replayed.is_empty())
        .then(|| format!("an earlier batch was sent back by the function (request {request_id}): see its logs"));
    Ok(BatchResult {
        records: records.len(),
        documents: None,
        outcomes: vec![("settled".to_owned(), first), ("sent_back".to_owned(), records.len() - first)],
        not_replayed,
        stop,
    })
}

/// A backup object's lines in invocations under Lambda's payload limit, in order; at least one, even when empty.
pub fn invocations(documents: &[BackedUp]) -> Vec<&[BackedUp]> {
    let mut chunks = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (position, document) in documents.iter().enumerate() {
        let length = serde_json::to_string(document).map_or(0, |text| text.len());
        let lines = position - start;
        if lines > 0 && (size + length > INVOKE_PAYLOAD_BYTES || lines == INVOKE_LINES) {
            chunks.push(&documents[start..position]);
            (start, size) = (position, 0);
        }
        size += length;
    }
    chunks.push(&documents[start..]);
    chunks
}

/// The function's answer to a replay event, read as its report; `Err` when it is not one.
pub fn replay_report(answer: &Value, request_id: &str) -> Result<BackupReport, String> {
    let has = |key: &str| answer.get(key).is_some();
    let report = (has("documents") && has("outcomes") && has("not_replayed"))
        .then(|| serde_json::from_value::<BackupReport>(answer.clone()).ok())
        .flatten();
    report.ok_or_else(|| {
        format!(
            "the function's answer (request {request_id}) is not a replay report: it is a version that cannot replay \
             Firehose's backup; deploy this one, or replay locally"
        )
    })
}

/// An object's report, merged from the function's report on each of its invocations.
pub fn empty_report(source: &str) -> BackupReport {
    BackupReport {
        source: source.to_owned(),
        documents: 0,
        outcomes: Default::default(),
        not_replayed: Vec::new(),
        rejected: Vec::new(),
        stop: None,
    }
}

/// Adds one invocation's report to the object's; its `stop` (or none) is the object's from now on.
pub fn absorb(merged: &mut BackupReport, answer: BackupReport) {
    merged.documents += answer.documents;
    for (name, count) in answer.outcomes {
        *merged.outcomes.entry(name).or_default() += count;
    }
    merged.not_replayed.extend(answer.not_replayed);
    merged.rejected.extend(answer.rejected);
    merged.stop = answer.stop;
}

/// Counts an invocation's lines as not tried: an earlier one found the cluster unable to take documents.
pub fn not_tried(merged: &mut BackupReport, chunk: &[BackedUp], why: &str) {
    merged.documents += chunk.len();
    merged.not_replayed.extend(chunk.iter().map(|document| NotReplayed {
        at: format!("line {}", document.line),
        cause: "not_tried".to_owned(),
        fix: None,
        reason: why.to_owned(),
    }));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn records() -> Vec<Value> {
        (1..=3)
            .map(|n| json!({"eventID": format!("shardId-0:{n}"), "kinesis": {"sequenceNumber": n.to_string()}}))
            .collect()
    }

    #[test]
    fn every_record_from_the_lowest_sent_back_is_not_replayed() {
        let result = batch_result(
            &records(),
            &json!({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}),
            "r1",
        )
        .unwrap();
        assert_eq!(result.outcomes, [("settled".to_owned(), 1), ("sent_back".to_owned(), 2)]);
        let at: Vec<&str> = result.not_replayed.iter().map(|n| n.at.as_str()).collect();
        assert_eq!(at, ["shardId-0:2", "shardId-0:3"]);
        assert!(result.not_replayed[0].reason.contains("request r1"));
        assert!(result.stop.unwrap().contains("sent back by the function (request r1)"));

        let all = batch_result(&records(), &json!({"batchItemFailures": [{"itemIdentifier": ""}]}), "r2").unwrap();
        assert_eq!(all.not_replayed.len(), 3, "a failure naming no record: the whole batch");
        let none = batch_result(&records(), &json!({"batchItemFailures": []}), "r3").unwrap();
        assert_eq!((none.not_replayed.len(), none.stop), (0, None));
        assert!(batch_result(&records(), &json!({"errorMessage": "x"}), "r4").unwrap_err().contains("not a partial"));
    }

    fn line(line: usize, bytes: usize) -> BackedUp {
        BackedUp {
            line,
            raw: "x".repeat(bytes),
            error_code: String::new(),
            error_message: String::new(),
            es_document_id: None,
        }
    }

    #[test]
    fn a_large_object_goes_in_invocations_under_lambdas_limit() {
        let documents: Vec<BackedUp> = (1..=5).map(|n| line(n, 2 * 1024 * 1024)).collect();
        let sizes: Vec<usize> = invocations(&documents).iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let many: Vec<BackedUp> = (1..=INVOKE_LINES + 1).map(|n| line(n, 1)).collect();
        assert_eq!(invocations(&many).iter().map(|chunk| chunk.len()).collect::<Vec<_>>(), [INVOKE_LINES, 1]);
        assert_eq!(invocations(&[]).len(), 1);
    }

    #[test]
    fn the_functions_reports_are_merged_and_a_version_without_the_replay_event_is_named() {
        let answer = json!({"source": "s3://b/k", "documents": 2, "outcomes": {"indexed": 2}, "not_replayed": [],
            "rejected": [], "stop": null});
        let mut merged = empty_report("s3://b/k");
        absorb(&mut merged, replay_report(&answer, "r").unwrap());
        let busy = json!({"documents": 1, "outcomes": {"indexed": 0, "not_replayed": 1},
            "not_replayed": [{"where": "line 3", "cause": "busy", "fix": null, "reason": "429"}], "stop": "busy"});
        absorb(&mut merged, replay_report(&busy, "r").unwrap());
        not_tried(&mut merged, &[line(4, 1)], "busy");
        assert_eq!((merged.documents, merged.outcomes["indexed"], merged.outcomes["not_replayed"]), (4, 2, 1));
        let at: Vec<&str> = merged.not_replayed.iter().map(|n| n.at.as_str()).collect();
        assert_eq!((at, merged.stop.as_deref()), (vec!["line 3", "line 4"], Some("busy")));
        let batch_answer = json!({"batchItemFailures": []});
        assert!(replay_report(&batch_answer, "r9").unwrap_err().contains("(request r9) is not a replay report"));
    }
}
