//! CloudWatch Logs subscription envelopes: one document per log event, fields named as Elastic's ECS names them.

use std::sync::Arc;

use serde::Deserialize;

use super::Rejection;
use super::content::{
    Content, DocumentContext, ProvenanceAt, Source, fold_newlines, write_field, write_stamp, write_stamped_message,
};
use super::message::{OwnedFields, read_message_object};
use crate::config::preprocess::MessageJson;
use crate::json::Text;
use crate::timestamp;

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

/// The documents of a CloudWatch Logs subscription envelope, the one way in: `Ok(None)` when `text` is an object
/// of another kind, `Err` when it cannot be read as an envelope. `scanned_kind` is the `messageType` a scan of the
/// object already found beside a `logEvents` array: the text is then an envelope, and the rejection stands; a caller
/// that has not scanned (`None`) reads any text that is not an envelope as any other object. A control message is
/// skipped without reading further.
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
        Err(error) => return Err(Rejection::BadCloudWatchEnvelope(error.to_string())),
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

/// One document per log event of a data message that the filters keep; nothing for one without log events.
fn data_message(envelope: &CloudWatchEnvelope, context: &DocumentContext) -> Content {
    if envelope.log_events.is_empty() {
        return Content::Skipped("CloudWatch Logs message without log events".to_owned());
    }
    // Each document is its timestamp and message (a string, or the message's own fields: `MESSAGE_JSON`), then
    // fields named as Elastic's ECS does: `"aws":{"cloudwatch":{"log_group":…,"log_stream":…,"event_id":…}}`,
    // `"cloud":{"account":{"id":…}}`, then what every document gains. What the envelope's documents share is
    // written once; each document is then written in one buffer.
    let shared = SharedFields::of(envelope, context);
    let log_group: Arc<str> = Arc::from(&*envelope.log_group.0);
    let (mut sources, mut filtered) = (Vec::with_capacity(envelope.log_events.len()), 0);
    for event in &envelope.log_events {
        if !context.keeps(&event.message.0) {
            context.skip_position();
            filtered += 1;
            continue;
        }
        sources.push(event_document(event, &shared, context, &log_group));
    }
    Content::Sources { sources, filtered }
}

/// What every document of an envelope holds alike, as JSON: written once, copied into each document.
struct SharedFields {
    /// `,"aws":{"cloudwatch":{"log_group":…,"log_stream":…`, which the event's id may follow.
    group_and_stream: Vec<u8>,
    /// What follows: `cloudwatch` closed, the record's provenance as `kinesis`, `aws` closed, then `cloud`.
    end_of_aws: Vec<u8>,
}

impl SharedFields {
    /// The shared fields of `envelope`'s documents: its log group and stream, the record's provenance, its owner.
    fn of(envelope: &CloudWatchEnvelope, context: &DocumentContext) -> SharedFields {
        let to_json = |text: &str| serde_json::to_vec(text).expect("a str always serialises");
        let mut group_and_stream = br#","aws":{"cloudwatch":{"log_group":"#.to_vec();
        group_and_stream.extend(to_json(&envelope.log_group.0));
        group_and_stream.extend(br#","log_stream":"#);
        group_and_stream.extend(to_json(&envelope.log_stream.0));
        let mut end_of_aws = b"}".to_vec();
        context.write_provenance(&mut end_of_aws, ProvenanceAt::Inside);
        end_of_aws.push(b'}');
        if let Some(owner) = &envelope.owner {
            end_of_aws.extend(br#","cloud":{"account":{"id":"#);
            end_of_aws.extend(to_json(&owner.0));
            end_of_aws.extend(b"}}");
        }
        SharedFields { group_and_stream, end_of_aws }
    }
}

/// The document of one log event kept by the filters: its timestamp and message, the `shared` fields with its id,
/// and the static fields it lacks.
fn event_document(
    event: &CloudWatchEvent,
    shared: &SharedFields,
    context: &DocumentContext,
    log_group: &Arc<str>,
) -> Source {
    let preprocess = context.preprocess;
    let aside = preprocess.message_json_field.as_str();
    // The fields the document owns (the envelope's `aws` and `cloud`, `message`, the timestamp, the field set
    // aside), which keep their types whatever a merged message holds: its clashing fields are set aside.
    let owned = OwnedFields { timestamp_field: context.timestamp_field, aside };
    let message = &*event.message.0;
    let arrived = timestamp::epoch_millis(event.timestamp).unwrap_or(context.default_timestamp);
    let id = event.id.as_ref().map(|id| &*id.0);
    let size = context.timestamp_field.len() + message.len() + shared.group_and_stream.len() + shared.end_of_aws.len();
    let mut json = Vec::with_capacity(size + id.map_or(0, |id| id.len() + 16) + 64);
    let structured = match preprocess.message_json {
        MessageJson::Off => None,
        MessageJson::Merge | MessageJson::Nest => read_message_object(message, context.timestamp_field),
    };
    // Which static fields the document has of its own: a merged message's.
    let mut present = 0;
    let timestamp = match (&structured, preprocess.message_json) {
        (None, _) | (_, MessageJson::Off) => {
            write_stamped_message(&mut json, context.timestamp_field, arrived, message);
            arrived
        }
        (Some(object), MessageJson::Nest) => {
            let timestamp = object.time.map_or(arrived, |time| time.at);
            write_stamp(&mut json, context.timestamp_field, timestamp);
            json.push(b',');
            write_field(&mut json, aside, object.text.as_bytes());
            timestamp
        }
        (Some(object), MessageJson::Merge) => {
            object.write_stamp(&mut json, context.timestamp_field, arrived);
            object.write_merged(&mut json, &owned);
            for (i, name) in preprocess.added_fields.names().enumerate() {
                if object.has(name) {
                    present |= 1 << i;
                }
            }
            object.time.map_or(arrived, |time| time.at)
        }
    };
    json.extend_from_slice(&shared.group_and_stream);
    if let Some(id) = id {
        json.extend_from_slice(br#","event_id":"#);
        serde_json::to_writer(&mut json, id).expect("writing a str to a Vec cannot fail");
    }
    json.extend_from_slice(&shared.end_of_aws);
    preprocess.added_fields.write_missing(&mut json, present);
    json.push(b'}');
    if structured.is_some() {
        // A pretty-printed message's newlines are whitespace between its tokens: one line again.
        fold_newlines(&mut json);
    }
    Source { log_group: Some(log_group.clone()), ..Source::new(context, json, timestamp) }
}
