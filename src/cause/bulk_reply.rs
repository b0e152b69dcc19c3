//! A `_bulk` reply read: its status, its items and its error body → one outcome per document sent, or a split.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::elasticsearch::EsError;
use super::{Cause, Failure};
use crate::bulk::BulkReply;
use crate::cause::DocOutcome;

/// What a request carried, as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub documents: usize,
    /// Whether a lost connection may mean the body was refused for its size (`flow::body::BodyLimit`).
    pub may_be_too_large: bool,
}

impl Sent {
    /// A request of `documents` documents that no refusal could be blamed on its size.
    pub fn documents(documents: usize) -> Sent {
        Sent { documents, may_be_too_large: false }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkDecision {
    /// One outcome per document sent, in request order. `hold`: the request failed as a whole, for this cause
    /// (the cluster throttling, down, unreachable or refusing us): `flow` keeps the rest of the batch in the stream.
    PerDocument { outcomes: Vec<DocOutcome>, hold: Option<Cause> },
    /// The request was too large: send it again in halves (a single document is rejected instead). `unread`: no
    /// 413 came back, the connection was lost while a body larger than any known to get through was being sent;
    /// a single document is then rejected only if the cluster answers other requests.
    Split { unread: bool },
}

/// Decides the outcome of every document of a request from the reply: the one place that judges statuses and
/// error types. `sent` is what the request carried.
pub fn decide(reply: &BulkReply, sent: &Sent) -> ChunkDecision {
    let all = |failure: Failure, hold: bool| ChunkDecision::PerDocument {
        hold: hold.then_some(failure.cause),
        outcomes: vec![DocOutcome::Failed(failure); sent.documents],
    };
    let (status, body) = match reply {
        BulkReply::TimedOut => {
            let reason = "no answer within ES_TIMEOUT_MS; the documents may or may not be written";
            return all(Failure::no_answer(None, "timeout", reason), true);
        }
        BulkReply::Lost { while_sending: true, .. } if sent.may_be_too_large => {
            return ChunkDecision::Split { unread: true };
        }
        BulkReply::NotSent(why) | BulkReply::Lost { why, .. } => {
            return all(Failure::no_answer(None, "connection_error", why.clone()), true);
        }
        BulkReply::Answered { status, body } => (*status, &body[..]),
    };
    let sent = sent.documents;
    let unknown = |error_type: &str, reason: String| Failure::no_answer(Some(status), error_type, reason);
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<BulkResponse>(body) {
            Ok(response) if response.items.len() == sent => {
                let outcomes = response.items.into_iter().map(|item| item_outcome(item.status, item.error)).collect();
                ChunkDecision::PerDocument { outcomes, hold: None }
            }
            Ok(response) => {
                let reason = format!(
                    "the response has {} items for {sent} documents sent; trusting none of it",
                    response.items.len()
                );
                all(unknown("item_count_mismatch", reason), false)
            }
            Err(error) => {
                let reason = format!("the response is not a bulk response ({error})");
                all(unknown("unreadable_response", reason), false)
            }
        };
    }
    if status == 413 {
        return ChunkDecision::Split { unread: false };
    }
    let EsError { error_type, reason } = EsError::of_request(status, body);
    let cause = Cause::of_bulk_request(status, &error_type, &reason);
    all(Failure::answered(cause, status, error_type, reason), true)
}

/// One item's outcome from its status and error.
fn item_outcome(status: u16, error: Option<EsError>) -> DocOutcome {
    let EsError { error_type, reason } = error.unwrap_or_default();
    let cause = match status {
        200..=299 => return DocOutcome::Indexed,
        409 => return DocOutcome::AlreadyThere,
        _ => Cause::of_bulk_item(status, &error_type, &reason),
    };
    let error_type = match (cause, error_type.is_empty()) {
        (Cause::Unknown, true) => "unknown_item_status".to_owned(),
        _ => error_type,
    };
    let reason =
        if reason.is_empty() && cause == Cause::Unknown { "the item has no usable status".into() } else { reason };
    DocOutcome::Failed(Failure::answered(cause, status, error_type, reason))
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<BulkItem>,
}

/// An item is a one-key object whose key names the action (`create`, `index`, …); engines differ, so any key is read.
struct BulkItem {
    status: u16,
    error: Option<EsError>,
}

#[derive(Deserialize)]
struct ItemBody {
    #[serde(default)]
    status: u16,
    #[serde(default, deserialize_with = "EsError::of_item")]
    error: Option<EsError>,
}

impl<'de> Deserialize<'de> for BulkItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = BulkItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bulk item: an object with one action key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BulkItem, A::Error> {
                let Some((_action, body)) = map.next_entry::<IgnoredAny, ItemBody>()? else {
                    return Err(de::Error::custom("an empty bulk item"));
                };
                if map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("a bulk item with more than one action key"));
                }
                Ok(BulkItem { status: body.status, error: body.error })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<BulkItem, A::Error> {
                Err(de::Error::custom("a bulk item must be an object"))
            }
        }
        deserializer.deserialize_map(ItemVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::{Fix, Outcome};
    use bytes::Bytes;

    fn answered(status: u16, body: &str) -> ChunkDecision {
        decide(
            &BulkReply::Answered { status, body: Bytes::copy_from_slice(body.as_bytes()) },
            &Sent::documents(count_items(body)),
        )
    }

    fn count_items(body: &str) -> usize {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["items"].as_array().map(|a| a.len()))
            .unwrap_or(3)
    }

    /// The outcomes, and where the rest of the batch goes when the decision holds later chunks.
    fn outcomes(decision: ChunkDecision) -> (Vec<DocOutcome>, Option<Outcome>) {
        match decision {
            ChunkDecision::PerDocument { outcomes, hold } => (outcomes, hold.map(Cause::route)),
            ChunkDecision::Split { .. } => panic!("split"),
        }
    }

    fn kinds(outcomes: &[DocOutcome]) -> Vec<&'static str> {
        outcomes
            .iter()
            .map(|o| match o {
                DocOutcome::Indexed => "indexed",
                DocOutcome::AlreadyThere => "already there",
                DocOutcome::Failed(failure) => match failure.cause.route() {
                    Outcome::ToFirehose => "retry later",
                    Outcome::Rejected => "rejected",
                    Outcome::BackToKinesis => "back to kinesis",
                    other => unreachable!("no cause routes to {other:?}"),
                },
            })
            .collect()
    }

    const MIXED: &str = include_str!("../../tests/fixtures/bulk_mixed_errors.json");

    #[test]
    fn every_item_is_judged_by_its_own_status_and_type() {
        let (outcomes, next) = outcomes(answered(200, MIXED));
        assert_eq!(
            kinds(&outcomes),
            vec![
                "indexed",
                "already there",
                "retry later",
                "rejected",
                "retry later",
                "back to kinesis",
                "back to kinesis",
                "retry later",
                "back to kinesis"
            ]
        );
        assert_eq!(next, None);
        let failure = outcomes[3].failure().unwrap();
        assert_eq!(failure.cause, Cause::Document);
        assert_eq!(failure.status, Some(400));
        assert_eq!(failure.error_type, "document_parsing_exception");
        assert!(failure.reason.contains("failed to parse field [count]"));
    }

    #[test]
    fn a_400_is_the_documents_fault_only_when_it_says_so_and_else_names_what_to_fix() {
        let (outcomes, next) = outcomes(answered(200, include_str!("../../tests/fixtures/bulk_cluster_refusals.json")));
        let causes: Vec<Cause> = outcomes.iter().map(|o| o.failure().unwrap().cause).collect();
        assert_eq!(
            causes,
            vec![
                Cause::Misconfigured(Fix::ShardLimit),
                Cause::Misconfigured(Fix::NoWriteIndex),
                Cause::Misconfigured(Fix::MissingPipeline),
                Cause::Misconfigured(Fix::InvalidIndexName),
                Cause::Misconfigured(Fix::DocumentIdRefused),
                Cause::Document,
                Cause::Document,
                Cause::Document,
                Cause::Document,
                Cause::Misconfigured(Fix::Unrecognized),
                Cause::Misconfigured(Fix::Access),
            ]
        );
        assert_eq!(
            kinds(&outcomes[..6]),
            vec![
                "back to kinesis",
                "back to kinesis",
                "back to kinesis",
                "back to kinesis",
                "back to kinesis",
                "rejected"
            ]
        );
        assert_eq!(next, None, "item refusals do not stop later chunks");
    }

    #[test]
    fn a_whole_request_refused_for_the_clusters_configuration_goes_back_and_holds_the_rest() {
        let body = r#"{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"pipeline with id [enrich-geo] does not exist"}],"type":"illegal_argument_exception","reason":"pipeline with id [enrich-geo] does not exist"},"status":400}"#;
        let (outcomes, next) = outcomes(decide(
            &BulkReply::Answered { status: 400, body: Bytes::copy_from_slice(body.as_bytes()) },
            &Sent::documents(2),
        ));
        assert_eq!(outcomes[0].failure().unwrap().cause, Cause::Misconfigured(Fix::MissingPipeline));
        assert_eq!(next, Some(Outcome::BackToKinesis));
    }

    #[test]
    fn items_are_read_whatever_their_action_key() {
        let body = r#"{"took":1,"errors":false,"items":[{"index":{"_id":"1","status":201}},{"create":{"_id":"2","status":200}},{"unknown":{"status":201}}]}"#;
        assert_eq!(kinds(&outcomes(answered(200, body)).0), vec!["indexed"; 3]);
    }

    #[test]
    fn an_item_count_that_differs_from_what_was_sent_trusts_none_of_it() {
        let body = r#"{"took":1,"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}}]}"#;
        let (outcomes, next) = outcomes(decide(
            &BulkReply::Answered { status: 200, body: Bytes::copy_from_slice(body.as_bytes()) },
            &Sent::documents(3),
        ));
        assert_eq!(kinds(&outcomes), vec!["back to kinesis"; 3]);
        let failure = outcomes[0].failure().unwrap();
        assert_eq!((failure.cause, failure.error_type.as_str()), (Cause::Unknown, "item_count_mismatch"));
        assert_eq!(next, None, "the cluster answered; later chunks may still go");
    }

    #[test]
    fn a_top_level_circuit_breaker_makes_every_item_retry_later_and_holds_later_chunks() {
        let body = include_str!("../../tests/fixtures/bulk_circuit_breaking_429.json");
        let (outcomes, next) = outcomes(decide(
            &BulkReply::Answered { status: 429, body: Bytes::copy_from_slice(body.as_bytes()) },
            &Sent::documents(2),
        ));
        assert_eq!(kinds(&outcomes), vec!["retry later"; 2]);
        let failure = outcomes[0].failure().unwrap();
        assert_eq!((failure.cause, failure.error_type.as_str()), (Cause::ClusterBusy, "circuit_breaking_exception"));
        assert_eq!(next, Some(Outcome::ToFirehose));
    }

    #[test]
    fn a_top_level_cluster_block_is_not_retry_later() {
        let body = r#"{"error":{"root_cause":[{"type":"cluster_block_exception","reason":"index [logs] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"}],"type":"cluster_block_exception","reason":"index [logs] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"},"status":429}"#;
        let (outcomes, next) = outcomes(decide(
            &BulkReply::Answered { status: 429, body: Bytes::copy_from_slice(body.as_bytes()) },
            &Sent::documents(1),
        ));
        assert_eq!(kinds(&outcomes), vec!["back to kinesis"]);
        assert_eq!(next, Some(Outcome::BackToKinesis));
    }

    #[test]
    fn gateway_errors_timeouts_and_broken_connections_are_unknown_and_stop_the_invocation() {
        for reply in [
            BulkReply::Answered { status: 502, body: Bytes::from_static(b"<html>Bad Gateway</html>") },
            BulkReply::Answered { status: 503, body: Bytes::from_static(br#"{"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"},"status":503}"#) },
            BulkReply::Answered { status: 401, body: Bytes::from_static(br#"{"error":{"type":"security_exception","reason":"unable to authenticate user"},"status":401}"#) },
            BulkReply::TimedOut,
            BulkReply::NotSent("error trying to connect: Connection refused".into()),
            BulkReply::Lost { why: "connection reset by peer".into(), while_sending: true },
            BulkReply::Lost { why: "the answer broke off".into(), while_sending: false },
        ] {
            let (outcomes, next) = outcomes(decide(&reply, &Sent::documents(2)));
            assert_eq!(kinds(&outcomes), vec!["back to kinesis"; 2], "{reply:?}");
            assert_eq!(next, Some(Outcome::BackToKinesis), "{reply:?}");
        }
        let (gateway, _) = outcomes(decide(
            &BulkReply::Answered { status: 502, body: Bytes::from_static(b"<html>Bad Gateway</html>") },
            &Sent::documents(1),
        ));
        let failure = gateway[0].failure().unwrap();
        assert_eq!((failure.cause, failure.error_type.as_str()), (Cause::Unknown, "http_502"));
        assert_eq!(failure.reason, "<html>Bad Gateway</html>");
    }

    #[test]
    fn request_too_large_asks_for_a_split() {
        assert_eq!(
            decide(&BulkReply::Answered { status: 413, body: Bytes::from_static(b"") }, &Sent::documents(5)),
            ChunkDecision::Split { unread: false }
        );
    }

    #[test]
    fn a_connection_lost_while_sending_a_body_that_may_be_too_large_asks_for_a_split() {
        let lost = |while_sending| BulkReply::Lost { why: "connection reset by peer".into(), while_sending };
        let large = Sent { documents: 4, may_be_too_large: true };
        assert_eq!(decide(&lost(true), &large), ChunkDecision::Split { unread: true });
        let (outcomes, next) = outcomes(decide(&lost(false), &large));
        assert_eq!((kinds(&outcomes), next), (vec!["back to kinesis"; 4], Some(Outcome::BackToKinesis)), "it answered");
        let known_size = Sent { may_be_too_large: false, ..large };
        let (outcomes, next) = super::tests::outcomes(decide(&lost(true), &known_size));
        assert_eq!((kinds(&outcomes), next), (vec!["back to kinesis"; 4], Some(Outcome::BackToKinesis)), "away");
        let refused = BulkReply::NotSent("error trying to connect: Connection refused".into());
        assert!(matches!(decide(&refused, &large), ChunkDecision::PerDocument { .. }), "nothing was sent");
    }

    #[test]
    fn a_body_that_is_not_a_bulk_response_is_unknown() {
        let (not_json, _) = outcomes(decide(
            &BulkReply::Answered { status: 200, body: Bytes::from_static(b"OK") },
            &Sent::documents(1),
        ));
        assert_eq!(kinds(&not_json), vec!["back to kinesis"]);
        let (outcomes, _) = outcomes(decide(
            &BulkReply::Answered { status: 200, body: Bytes::from_static(br#"{"items":[[]]}"#) },
            &Sent::documents(1),
        ));
        assert_eq!(kinds(&outcomes), vec!["back to kinesis"]);
    }

    #[test]
    fn a_textual_item_error_is_kept_as_the_reason() {
        let body = r#"{"errors":true,"items":[{"create":{"status":400,"error":"MapperParsingException[failed]"}}]}"#;
        let (outcomes, _) = outcomes(answered(200, body));
        assert_eq!(
            outcomes[0],
            DocOutcome::Failed(Failure {
                cause: Cause::Document,
                status: Some(400),
                error_type: "mapper_parsing_exception".into(),
                reason: "MapperParsingException[failed]".into()
            })
        );
        let body = r#"{"errors":true,"items":[{"create":{"status":400,"error":"something odd"}}]}"#;
        let (odd, _) = super::tests::outcomes(answered(200, body));
        let failure = odd[0].failure().cloned().unwrap();
        assert_eq!((failure.cause, failure.error_type.as_str()), (Cause::Misconfigured(Fix::Unrecognized), "error"));
    }
}
