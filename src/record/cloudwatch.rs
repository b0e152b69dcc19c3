//! CloudWatch Logs subscription envelopes: one document per log event, fields named as Elastic's ECS names them.

use serde::Deserialize;

use super::Rejection;
use super::scan::Text;
use super::sources::{Content, DocumentContext, Source, write_stamped_message};
use crate::index;

#[derive(Deserialize)]
pub(super) struct CloudWatchEnvelope<'a> {
    #[serde(rename = "messageType", borrow, default)]
    pub(super) message_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    owner: Option<Text<'a>>,
    #[serde(rename = "logGroup", borrow)]
    log_group: Text<'a>,
    #[serde(rename = "logStream", borrow)]
    log_stream: Text<'a>,
    #[serde(rename = "logEvents", borrow)]
    log_events: Vec<CloudWatchEvent<'a>>,
}

#[derive(Deserialize)]
struct CloudWatchEvent<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    timestamp: i64,
    #[serde(borrow)]
    message: Text<'a>,
}

pub(super) fn cloudwatch_sources(
    text: &str,
    message_type: &str,
    context: &DocumentContext,
) -> Result<Content, Rejection> {
    if message_type == "CONTROL_MESSAGE" {
        return Ok(Content::Skipped("CloudWatch Logs control message".to_owned()));
    }
    let envelope: CloudWatchEnvelope =
        serde_json::from_str(text).map_err(|error| Rejection::BadCloudWatchEnvelope(error.to_string()))?;
    Ok(cloudwatch_content(&envelope, message_type, context))
}

/// One document per log event of a well-formed envelope; nothing for a control message or an empty one.
pub(super) fn cloudwatch_content(
    envelope: &CloudWatchEnvelope,
    message_type: &str,
    context: &DocumentContext,
) -> Content {
    if message_type == "CONTROL_MESSAGE" {
        return Content::Skipped("CloudWatch Logs control message".to_owned());
    }
    if envelope.log_events.is_empty() {
        return Content::Skipped("CloudWatch Logs message without log events".to_owned());
    }
    // Each document is `{"<timestamp field>":"…","message":…` and then fields named as Elastic's ECS does:
    // `"aws":{"cloudwatch":{"log_group":…,"log_stream":…,"event_id":…}},"cloud":{"account":{"id":…}}}`. What the
    // envelope's documents share is written once; each document is then written in one buffer.
    let to_json = |text: &str| serde_json::to_vec(text).expect("a str always serialises");
    let mut group_and_stream = br#","aws":{"cloudwatch":{"log_group":"#.to_vec();
    group_and_stream.extend(to_json(&envelope.log_group.0));
    group_and_stream.extend(br#","log_stream":"#);
    group_and_stream.extend(to_json(&envelope.log_stream.0));
    let mut account = b"}}".to_vec();
    if let Some(owner) = &envelope.owner {
        account.extend(br#","cloud":{"account":{"id":"#);
        account.extend(to_json(&owner.0));
        account.extend(b"}}");
    }
    account.push(b'}');
    let mut sources = Vec::with_capacity(envelope.log_events.len());
    for event in &envelope.log_events {
        let timestamp = index::epoch_millis(event.timestamp).unwrap_or(context.default_timestamp);
        let id = event.id.as_ref().map(|id| &*id.0);
        let size = context.timestamp_field.len() + event.message.0.len() + group_and_stream.len() + account.len();
        let mut json = Vec::with_capacity(size + id.map_or(0, |id| id.len() + 16) + 48);
        write_stamped_message(&mut json, context.timestamp_field, timestamp, &event.message.0);
        json.extend_from_slice(&group_and_stream);
        if let Some(id) = id {
            json.extend_from_slice(br#","event_id":"#);
            serde_json::to_writer(&mut json, id).expect("writing a str to a Vec cannot fail");
        }
        json.extend_from_slice(&account);
        sources.push(Source { json, timestamp });
    }
    Content::Sources(sources)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::record::into_sources;
    use crate::record::sources::tests::{context, sources};

    pub(in crate::record) const CLOUDWATCH: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/app","logStream":"2024/05/01/[$LATEST]abc","subscriptionFilters":["all"],"logEvents":[{"id":"1","timestamp":1714564800000,"message":"first"},{"id":"2","timestamp":1714564801000,"message":"{\"k\":1}"}]}"#;

    #[test]
    fn a_cloudwatch_envelope_becomes_one_document_per_log_event() {
        let out = sources(CLOUDWATCH.as_bytes());
        assert_eq!(
            out[0],
            r#"{"@timestamp":"2024-05-01T12:00:00.000Z","message":"first","aws":{"cloudwatch":{"log_group":"/aws/lambda/app","log_stream":"2024/05/01/[$LATEST]abc","event_id":"1"}},"cloud":{"account":{"id":"123456789012"}}}"#
        );
        assert!(out[1].starts_with(r#"{"@timestamp":"2024-05-01T12:00:01.000Z","message":"{\"k\":1}""#), "{}", out[1]);
        let bare = r#"{"messageType":"DATA_MESSAGE","logGroup":"g\"1","logStream":"s","logEvents":[{"timestamp":0,"message":"m"}]}"#;
        assert_eq!(
            sources(bare.as_bytes()),
            [
                r#"{"@timestamp":"1970-01-01T00:00:00.000Z","message":"m","aws":{"cloudwatch":{"log_group":"g\"1","log_stream":"s"}}}"#
            ],
            "no owner, no event id"
        );
    }

    #[test]
    fn a_cloudwatch_control_message_is_skipped() {
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
        assert_eq!(
            into_sources(control.as_bytes().to_vec(), &context()).unwrap(),
            Content::Skipped("CloudWatch Logs control message".into())
        );
    }

    #[test]
    fn a_broken_cloudwatch_envelope_is_rejected() {
        let broken =
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"message":"no timestamp"}]}"#;
        let (rejection, _) = into_sources(broken.as_bytes().to_vec(), &context()).unwrap_err();
        assert_eq!(rejection.kind(), "bad_cloudwatch_envelope");
    }
}
