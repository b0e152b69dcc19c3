//! CloudWatch Logs subscription envelopes: one document per log event, fields named as Elastic's ECS names them.

use serde::Deserialize;

use super::Rejection;
use super::content::{Content, DocumentContext, Source, write_stamped_message};
use crate::index;
use crate::json::Text;

#[derive(Deserialize)]
struct CloudWatchEnvelope<'a> {
    #[serde(rename = "messageType", borrow, default)]
    message_type: Option<Text<'a>>,
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

/// The documents of a CloudWatch Logs subscription envelope, the one way in: `Ok(None)` when `text` is not one.
/// `scanned_kind` is the `messageType` a scan of the object already found beside a `logEvents` array: the text is
/// then an envelope, and one that cannot be read is rejected (without it, the text is read as any other object).
/// A control message is skipped without reading further.
pub(super) fn envelope_content(
    text: &str,
    scanned_kind: Option<&str>,
    context: &DocumentContext,
) -> Result<Option<Content>, Rejection> {
    if scanned_kind == Some(CONTROL_MESSAGE) {
        return Ok(Some(control_message()));
    }
    let envelope = match serde_json::from_str::<CloudWatchEnvelope>(text) {
        Ok(envelope) => envelope,
        Err(error) if scanned_kind.is_some() => return Err(Rejection::BadCloudWatchEnvelope(error.to_string())),
        Err(_) => return Ok(None),
    };
    Ok(match envelope.message_type.as_ref().map(|kind| &*kind.0) {
        Some(CONTROL_MESSAGE) => Some(control_message()),
        Some(DATA_MESSAGE) => Some(data_message(&envelope, context)),
        _ => None,
    })
}

const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";
const DATA_MESSAGE: &str = "DATA_MESSAGE";

/// What CloudWatch Logs sends to check a subscription's destination: nothing to index.
fn control_message() -> Content {
    Content::Skipped("CloudWatch Logs control message".to_owned())
}

/// One document per log event of a data message; nothing for one without log events.
fn data_message(envelope: &CloudWatchEnvelope, context: &DocumentContext) -> Content {
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
