//! Decoded data → document sources: one JSON object passed through (stamped when it has no timestamp), NDJSON line
//! by line, anything else as a message.

use chrono::{DateTime, Utc};

use super::Rejection;
use super::cloudwatch::envelope_content;
use super::content::{Content, DocumentContext, OwnAws, Source, fold_newlines, write_field, write_stamped_message};
use super::scan::{ObjectScan, scan_object};
use crate::timestamp;

/// Turns decoded data into document sources:
///
/// - the whole text is one JSON object (on one line or pretty-printed over several): one document, passed through
///   unchanged (gaining the timestamp field only when it lacks one); a CloudWatch Logs envelope (a string
///   `messageType` and a `logEvents` array) instead becomes one document per log event;
/// - else, several lines of which at least one is a JSON object (NDJSON): one document per non-blank line, each line
///   read as above, a line that is not a JSON object becoming `{"message": …}`;
/// - else the text is one `{"message": …}`.
///
/// On rejection, also returns the bytes to quote in the log.
pub fn into_sources(mut bytes: Vec<u8>, context: &DocumentContext) -> Result<Content, (Rejection, Vec<u8>)> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(error) => return Err((Rejection::InvalidUtf8 { valid_up_to: error.valid_up_to() }, bytes)),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err((Rejection::Empty, bytes));
    }
    // A CloudWatch Logs envelope, what a subscription writes, is read in one pass; when the text is anything else
    // (even an envelope that turns out broken), it is scanned, and judged, as every object is.
    if trimmed.starts_with('{')
        && memchr::memmem::find(trimmed.as_bytes(), b"\"logEvents\"").is_some()
        && let Ok(Some(content)) = envelope_content(trimmed, None, context)
    {
        return Ok(content);
    }
    let scan = if trimmed.starts_with('{') { scan_object(trimmed, context) } else { None };
    if let Some(scan) = scan {
        let (start, end) = (text.len() - text.trim_start().len(), text.trim_end().len());
        bytes.truncate(end);
        bytes.drain(..start);
        return object_sources(bytes, scan, context);
    }
    match ndjson_sources(text, context) {
        Some(Ok(content)) => Ok(content),
        Some(Err(rejection)) => Err((rejection, bytes)),
        None => Ok(message_content(text, context)),
    }
}

/// The sources of one JSON object (`object` is exactly it, as `scan` read it).
fn object_sources(
    object: Vec<u8>,
    scan: ObjectScan,
    context: &DocumentContext,
) -> Result<Content, (Rejection, Vec<u8>)> {
    if let Some(kind @ ("DATA_MESSAGE" | "CONTROL_MESSAGE")) = scan.message_type.as_deref()
        && scan.has_log_events
    {
        let text = std::str::from_utf8(&object).expect("checked as UTF-8");
        match envelope_content(text, Some(kind), context) {
            Ok(Some(content)) => return Ok(content),
            Ok(None) => {}
            Err(rejection) => return Err((rejection, object)),
        }
    }
    // The canary passes every filter: it tells that records flow, whatever the filters keep.
    if !scan.canary && !context.keeps(std::str::from_utf8(&object).expect("checked as UTF-8")) {
        context.skip_position();
        return Ok(Content::Sources { sources: Vec::new(), filtered: 1 });
    }
    let timestamp = scan.timestamp.unwrap_or(context.default_timestamp);
    // The document passes through as it came, in the decoded buffer itself, but for what it gains: its timestamp
    // first when it has none; static fields and provenance last, so that what the producer wrote comes first (a
    // rejected document's excerpt quotes it).
    let mut json = one_line(object);
    if !scan.has_timestamp_field {
        prepend_field_in_place(context.timestamp_field, &quoted_timestamp(timestamp), &mut json);
    }
    if context.adds_fields() {
        let mut added = Vec::new();
        context.write_added(&mut added, scan.present, scan.aws);
        if let Some(entries) = added.get(1..) {
            append_entries_in_place(entries, &mut json);
        }
    }
    Ok(Content::kept(vec![Source { canary: scan.canary, ..Source::new(context, json, timestamp) }]))
}

/// Several lines of which at least one is a JSON object: one source per non-blank line. `None` when the text is
/// not NDJSON (one line, or no line is an object).
fn ndjson_sources(text: &str, context: &DocumentContext) -> Option<Result<Content, Rejection>> {
    // One line of text (the common case) is not NDJSON: no need to split it or scan it again.
    if !text.trim().contains('\n') {
        return None;
    }
    let lines: Vec<(&str, Option<ObjectScan>)> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let scan = if line.starts_with('{') { scan_object(line, context) } else { None };
            (line, scan)
        })
        .collect();
    if lines.len() < 2 || lines.iter().all(|(_, scan)| scan.is_none()) {
        return None;
    }
    let (mut sources, mut filtered) = (Vec::with_capacity(lines.len()), 0);
    for (line, scan) in lines {
        let content = match scan {
            None => Ok(message_content(line, context)),
            Some(scan) => object_sources(line.as_bytes().to_vec(), scan, context),
        };
        match content {
            Ok(Content::Sources { sources: more, filtered: dropped }) => {
                sources.extend(more);
                filtered += dropped;
            }
            // A control message among other lines: nothing to index for that line.
            Ok(Content::Skipped(_)) => {}
            Err((rejection, _)) => return Some(Err(rejection)),
        }
    }
    Some(Ok(Content::Sources { sources, filtered }))
}

/// Text that is not a JSON object, as `{"@timestamp": arrival, "message": text}`, unless the filters drop it.
fn message_content(text: &str, context: &DocumentContext) -> Content {
    let message = text.trim_end_matches(['\n', '\r']);
    if !context.keeps(message) {
        context.skip_position();
        return Content::Sources { sources: Vec::new(), filtered: 1 };
    }
    let timestamp = context.default_timestamp;
    let mut json = Vec::with_capacity(context.timestamp_field.len() + message.len() + 48);
    write_stamped_message(&mut json, context.timestamp_field, timestamp, message);
    context.write_added(&mut json, 0, OwnAws::Absent);
    json.push(b'}');
    Content::kept(vec![Source::new(context, json, timestamp)])
}

/// An instant as a JSON string.
fn quoted_timestamp(at: DateTime<Utc>) -> String {
    let mut json = Vec::with_capacity(26);
    json.push(b'"');
    timestamp::write_timestamp(&mut json, at);
    json.push(b'"');
    String::from_utf8(json).expect("digits and punctuation")
}

/// `{"field":value,` + the rest of `object` after its opening brace (`object` is a valid JSON object on one line
/// or not: newlines are folded), in a new buffer with room for a newline after it.
pub fn prepend_field(field: &str, value_json: &str, object: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(object.len() + field.len() + value_json.len() + 8);
    out.extend_from_slice(object);
    prepend_field_in_place(field, value_json, &mut out);
    out
}

/// `prepend_field` within `object`'s own buffer.
fn prepend_field_in_place(field: &str, value_json: &str, object: &mut Vec<u8>) {
    let mut entry = Vec::with_capacity(field.len() + value_json.len() + 4);
    write_field(&mut entry, field, value_json.as_bytes());
    prepend_entries_in_place(&entry, object);
}

/// `entries` (`"a":1,"b":2`, on one line) put first in `object`, within its own buffer: the document moves up by
/// what is inserted (one memmove, and no new buffer while the capacity holds it); its newlines are folded.
fn prepend_entries_in_place(entries: &[u8], object: &mut Vec<u8>) {
    let brace = object.iter().position(|&b| b == b'{').expect("a JSON object");
    let is_empty = object[brace + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut head = Vec::with_capacity(entries.len() + 2);
    head.push(b'{');
    head.extend_from_slice(entries);
    if !is_empty {
        head.push(b',');
    }
    let rest = head.len();
    object.splice(..=brace, head);
    fold_newlines(&mut object[rest..]);
}

/// `entries` (`"a":1,"b":2`, on one line) put last in `object` (one JSON object on one line), before its closing
/// brace: only that brace moves.
fn append_entries_in_place(entries: &[u8], object: &mut Vec<u8>) {
    let close = object.iter().rposition(|&b| b == b'}').expect("a JSON object");
    let is_empty = object[..close].iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let mut tail = Vec::with_capacity(entries.len() + 1);
    if !is_empty {
        tail.push(b',');
    }
    tail.extend_from_slice(entries);
    object.splice(close..close, tail);
}

/// Valid JSON has newlines only as whitespace between tokens (strings escape theirs), so folding them into spaces
/// keeps the document identical while making it one NDJSON line.
fn one_line(mut json: Vec<u8>) -> Vec<u8> {
    fold_newlines(&mut json);
    json
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::preprocess::{AddedFields, Filter, MessageJson, Preprocess};
    use crate::record::data::{decode_base64, inflate};
    use base64::Engine;
    use testkit::gzip;

    /// The context of a record that arrived at 2024-05-01T12:00:00.5Z, with the default preprocessing.
    pub(in crate::record) fn context() -> DocumentContext<'static> {
        context_with(Preprocess::default(), None)
    }

    /// The context of that record with `preprocess`, and `kinesis` as its provenance.
    pub(in crate::record) fn context_with(
        preprocess: Preprocess,
        kinesis: Option<&'static str>,
    ) -> DocumentContext<'static> {
        DocumentContext {
            timestamp_field: "@timestamp",
            default_timestamp: timestamp::parse_timestamp("2024-05-01T12:00:00.5Z").unwrap(),
            preprocess: Box::leak(Box::new(preprocess)),
            kinesis: kinesis.map(str::as_bytes),
            positions: std::cell::Cell::new(0),
        }
    }

    pub(in crate::record) fn sources(bytes: &[u8]) -> Vec<String> {
        sources_with(bytes, &context())
    }

    fn sources_with(bytes: &[u8], context: &DocumentContext) -> Vec<String> {
        match into_sources(bytes.to_vec(), context).unwrap() {
            Content::Sources { sources, .. } => {
                sources.into_iter().map(|s| String::from_utf8(s.json).unwrap()).collect()
            }
            Content::Skipped(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn a_document_is_stamped_within_the_buffer_its_data_was_decoded_into() {
        for (data, stamped) in [
            (&br#"{"a":1}"#[..], r#"{"@timestamp":"2024-05-01T12:00:00.500Z","a":1}"#),
            (b"{ }", r#"{"@timestamp":"2024-05-01T12:00:00.500Z" }"#),
            (b"{\n\"a\":\n[1,\r\n2]}", r#"{"@timestamp":"2024-05-01T12:00:00.500Z", "a": [1,  2]}"#),
        ] {
            let decoded = decode_base64(&base64::engine::general_purpose::STANDARD.encode(data)).unwrap();
            let buffer = decoded.as_ptr();
            let Ok(Content::Sources { sources, .. }) = into_sources(decoded, &context()) else { panic!("a document") };
            assert_eq!(String::from_utf8(sources[0].json.clone()).unwrap(), stamped);
            assert_eq!(sources[0].json.as_ptr(), buffer, "no new buffer for {stamped}");
        }
        let gzipped = inflate(gzip(br#"{"b":2}"#), &mut 1024).unwrap();
        let buffer = gzipped.as_ptr();
        let Ok(Content::Sources { sources, .. }) = into_sources(gzipped, &context()) else { panic!("a document") };
        assert_eq!(sources[0].json.as_ptr(), buffer, "inflated data leaves the same room");
    }

    #[test]
    fn a_json_object_with_a_timestamp_passes_through_byte_for_byte() {
        let doc = br#"{"@timestamp":"2023-01-02T03:04:05Z","n":1,"s":"a\nb"}"#;
        assert_eq!(sources(doc), vec![String::from_utf8(doc.to_vec()).unwrap()]);
    }

    #[test]
    fn surrounding_whitespace_and_a_byte_order_mark_are_dropped() {
        assert_eq!(
            sources(b"\xEF\xBB\xBF \r\n {\"@timestamp\":\"2023-01-01\"}\n\n"),
            vec![r#"{"@timestamp":"2023-01-01"}"#]
        );
        assert_eq!(sources(b"\t{\"n\":1} \n"), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","n":1}"#]);
    }

    #[test]
    fn a_json_object_without_a_timestamp_gains_the_arrival_time_first() {
        assert_eq!(sources(br#"{"n":1}"#), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","n":1}"#]);
        assert_eq!(sources(b"{ }"), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z" }"#]);
    }

    #[test]
    fn a_number_beyond_f64_passes_through_for_elasticsearch_to_judge() {
        // Found by the fuzzer: valid JSON (RFC 8259 sets no range); Elasticsearch answers 400 and the document is
        // rejected with that reason, rather than the indexer guessing.
        let doc = br#"{"@timestamp":"2026-11-22T08:00:00Z","latency_ms":3166666e2222}"#;
        assert_eq!(sources(doc), vec![String::from_utf8(doc.to_vec()).unwrap()]);
    }

    #[test]
    fn a_pretty_printed_object_becomes_one_line() {
        let out = sources(b"{\n  \"a\": 1,\r\n  \"b\": [1,\n2]\n}\n");
        assert_eq!(out.len(), 1);
        assert!(!out[0].contains('\n') && !out[0].contains('\r'), "{}", out[0]);
        let value: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(value["b"][1], 2);
        assert_eq!(value["@timestamp"], "2024-05-01T12:00:00.500Z");
    }

    #[test]
    fn the_document_timestamp_names_the_index_when_readable() {
        let Content::Sources { sources: out, .. } =
            into_sources(br#"{"@timestamp":1700000000000}"#.to_vec(), &context()).unwrap()
        else {
            panic!()
        };
        assert_eq!(timestamp::format_timestamp(out[0].timestamp), "2023-11-14T22:13:20.000Z");
        let Content::Sources { sources: out, .. } =
            into_sources(br#"{"@timestamp":"not a date"}"#.to_vec(), &context()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            out[0].timestamp,
            context().default_timestamp,
            "an unreadable timestamp is kept, arrival names the index"
        );
        assert_eq!(out[0].json, br#"{"@timestamp":"not a date"}"#);
    }

    #[test]
    fn text_that_is_not_a_json_object_becomes_a_message() {
        assert_eq!(
            sources(b"GET /index.html 200\n"),
            vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"GET /index.html 200"}"#]
        );
        assert_eq!(sources(b"[1,2]"), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"[1,2]"}"#]);
        assert_eq!(
            sources(br#"{"broken": "#),
            vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"{\"broken\": "}"#]
        );
        assert_eq!(sources(br#"{"a":1} {"b":2}"#).len(), 1, "two objects on one line are text, not two documents");
    }

    #[test]
    fn ndjson_gives_one_document_per_line() {
        let out = sources(b"{\"@timestamp\":\"2023-01-01\",\"n\":1}\r\n\n  {\"n\":2}\nnot json\n[1]\n");
        assert_eq!(
            out,
            vec![
                r#"{"@timestamp":"2023-01-01","n":1}"#,
                r#"{"@timestamp":"2024-05-01T12:00:00.500Z","n":2}"#,
                r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"not json"}"#,
                r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"[1]"}"#,
            ],
            "blank lines skipped, other lines as text"
        );
        assert_eq!(sources(b"line one\nline two\n").len(), 1, "text lines without a JSON object stay one message");
        let pretty = sources(b"{\n  \"a\": 1,\n  \"b\": {\"c\": 2}\n}\n");
        assert_eq!(pretty.len(), 1, "a pretty-printed object is one document");
        let mut envelope_line = CLOUDWATCH.to_owned();
        envelope_line.push_str("\n{\"n\":3}\n");
        assert_eq!(sources(envelope_line.as_bytes()).len(), 3, "an envelope on its own line is expanded too");
    }

    #[test]
    fn only_a_real_cloudwatch_envelope_is_expanded() {
        for doc in [
            r#"{"messageType":7,"logEvents":[{"timestamp":1,"message":"x"}],"logGroup":"g","logStream":"s"}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":"none","logGroup":"g","logStream":"s"}"#,
            r#"{"messageType":{"nested":true},"logEvents":[]}"#,
            r#"{"messageType":"order_created","logEvents":[]}"#,
            r#"{"messageType":"order_created","logEvents":[{"timestamp":1,"message":"x"}],"logGroup":"g","logStream":"s"}"#,
        ] {
            let out = sources(doc.as_bytes());
            assert_eq!(out.len(), 1, "{doc}");
            let value: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
            assert!(value.get("messageType").is_some(), "the object is the document it is: {}", out[0]);
        }
    }

    #[test]
    fn invalid_utf8_and_blank_data_are_rejected() {
        let (rejection, _) = into_sources(b"ab\xff".to_vec(), &context()).unwrap_err();
        assert_eq!(rejection, Rejection::InvalidUtf8 { valid_up_to: 2 });
        assert_eq!(into_sources(b" \n".to_vec(), &context()).unwrap_err().0, Rejection::Empty);
        let (rejection, _) = into_sources(b"{\"a\":\"\xff\"}".to_vec(), &context()).unwrap_err();
        assert_eq!(rejection.kind(), "invalid_utf8", "bytes inside JSON strings are checked too");
    }

    // CloudWatch Logs envelopes, as the dispatcher above reads them (`cloudwatch::envelope_content`).

    const CLOUDWATCH: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/app","logStream":"2024/05/01/[$LATEST]abc","subscriptionFilters":["all"],"logEvents":[{"id":"1","timestamp":1714564800000,"message":"first"},{"id":"2","timestamp":1714564801000,"message":"{\"k\":1}"}]}"#;

    #[test]
    fn a_cloudwatch_envelope_becomes_one_document_per_log_event() {
        let out = sources(CLOUDWATCH.as_bytes());
        assert_eq!(
            out[0],
            r#"{"@timestamp":"2024-05-01T12:00:00.000Z","message":"first","aws":{"cloudwatch":{"log_group":"/aws/lambda/app","log_stream":"2024/05/01/[$LATEST]abc","event_id":"1"}},"cloud":{"account":{"id":"123456789012"}}}"#
        );
        assert!(out[1].starts_with(r#"{"@timestamp":"2024-05-01T12:00:01.000Z","k":1,"aws":"#), "merged: {}", out[1]);
        let off = Preprocess { message_json: MessageJson::Off, ..Preprocess::default() };
        let out = sources_with(CLOUDWATCH.as_bytes(), &context_with(off, None));
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

    // What documents gain on the way (`preprocess`): structured messages, filters, static fields, provenance.

    /// Elasticsearch refuses a document with a top-level field twice.
    fn assert_no_field_twice(json: &str) {
        let mut names = testkit::top_level_names(json.as_bytes());
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a field twice in {json}");
    }

    #[test]
    fn a_message_or_record_naming_a_field_twice_or_a_static_one_is_never_written_with_it_twice() {
        let twice = r#"{"level":"INFO","level":"WARN"}"#;
        for mode in [MessageJson::Merge, MessageJson::Nest] {
            let context = context_with(Preprocess { message_json: mode, ..Preprocess::default() }, None);
            let out = sources_with(&envelope(&[(0, twice)]), &context);
            assert!(
                out[0].contains(r#""message":"{\"level\":\"INFO\",\"level\":\"WARN\"}""#),
                "{mode:?}: a string: {}",
                out[0]
            );
        }
        let added = AddedFields::parse(r#"{"messageType":"app","logEvents":1,"kinesis_es_indexer_canary":false}"#, &[])
            .unwrap();
        let context = context_with(Preprocess { added_fields: added, ..Preprocess::default() }, Some("{}"));
        for record in [
            &br#"{"@timestamp":"2024-01-01","messageType":"order_created","logEvents":[],"kinesis_es_indexer_canary":true}"#[..],
            br#"{"@timestamp":"2024-01-01","aws.kinesis":{},"messageType":"x"}"#,
        ] {
            let out = sources_with(record, &context);
            assert_no_field_twice(&out[0]);
        }
    }

    /// A CloudWatch Logs data message of these (timestamp, message) log events.
    fn envelope(events: &[(i64, &str)]) -> Vec<u8> {
        let events: Vec<serde_json::Value> = events
            .iter()
            .enumerate()
            .map(|(i, (at, message))| serde_json::json!({"id": i.to_string(), "timestamp": at, "message": message}))
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "/aws/lambda/f",
            "logStream": "s", "subscriptionFilters": ["all"], "logEvents": events}),
        )
        .unwrap()
    }

    const LAMBDA_JSON: &str =
        r#"{"timestamp":"2024-05-01T12:00:00.123Z","level":"INFO","requestId":"r-1","message":"hi"}"#;
    const AWS: &str = r#""aws":{"cloudwatch":{"log_group":"/aws/lambda/f","log_stream":"s","event_id":"0"}},"cloud":{"account":{"id":"1"}}"#;

    #[test]
    fn a_lambda_json_log_line_becomes_its_fields_stamped_by_its_own_timestamp() {
        let mut context = context();
        context.timestamp_field = "timestamp";
        let Content::Sources { sources: out, .. } =
            into_sources(envelope(&[(1_714_564_900_000, LAMBDA_JSON)]), &context).unwrap()
        else {
            panic!("documents")
        };
        let expected = format!(
            r#"{{"timestamp":"2024-05-01T12:00:00.123Z","level":"INFO","requestId":"r-1","message":"hi",{AWS}}}"#
        );
        assert_eq!(String::from_utf8(out[0].json.clone()).unwrap(), expected);
        assert_eq!(out[0].timestamp.timestamp_millis(), 1_714_564_800_123, "the message's instant, not the event's");
        assert_eq!(out[0].log_group.as_deref(), Some("/aws/lambda/f"));
        // Under the default `@timestamp`, the logger's `timestamp` is read and written there, once.
        let out = sources(&envelope(&[(1_714_564_900_000, LAMBDA_JSON)]));
        assert!(out[0].starts_with(r#"{"@timestamp":"2024-05-01T12:00:00.123Z","level""#), "{}", out[0]);
        assert!(!out[0].contains(r#""timestamp""#), "{}", out[0]);
    }

    #[test]
    fn the_envelopes_fields_win_a_clash_and_the_messages_are_kept_aside() {
        let message = r#"{"aws":"mine","json":1,"cloud":{"x":1},"level":"WARN","aws.region":"r","awsome":1}"#;
        let out = sources(&envelope(&[(0, message)]));
        let expected = format!(
            r#"{{"@timestamp":"1970-01-01T00:00:00.000Z","level":"WARN","awsome":1,"json":{{"aws":"mine","json":1,"cloud":{{"x":1}},"aws.region":"r"}},{AWS}}}"#
        );
        assert_eq!(out[0], expected);
        assert_no_field_twice(&out[0]);
    }

    #[test]
    fn a_message_that_is_not_one_json_object_stays_a_string() {
        for message in ["[1,2]", "\"quoted\"", "{\"broken\":", "{\"a\":1} and more", "42", "plain {\"a\":1}"] {
            let out = sources(&envelope(&[(0, message)]));
            let expected = format!(r#""message":{}"#, serde_json::to_string(message).unwrap());
            assert!(out[0].contains(&expected), "{message}: {}", out[0]);
        }
    }

    #[test]
    fn nested_the_message_is_one_field_and_pretty_printed_it_is_one_line() {
        let nest =
            Preprocess { message_json: MessageJson::Nest, message_json_field: "msg".into(), ..Preprocess::default() };
        let out = sources_with(
            &envelope(&[(0, "{\n  \"@timestamp\": \"2024-05-01T00:00:00Z\",\r\n  \"n\": [1,\n2]\n}\n")]),
            &context_with(nest, None),
        );
        let expected = format!(
            r#"{{"@timestamp":"2024-05-01T00:00:00.000Z","msg":{{   "@timestamp": "2024-05-01T00:00:00Z",    "n": [1, 2] }},{AWS}}}"#
        );
        assert_eq!(out[0], expected);
        let merged = sources(&envelope(&[(0, "{\n\"n\":\n[1,\r\n2]}")]));
        assert_eq!(merged[0], format!(r#"{{"@timestamp":"1970-01-01T00:00:00.000Z","n":[1,  2],{AWS}}}"#));
    }

    #[test]
    fn filters_drop_documents_by_their_text_and_count_them_exclude_winning() {
        let filter = Filter::new(Some("ERROR|WARN"), Some("health")).unwrap();
        let context = context_with(Preprocess { filter, ..Preprocess::default() }, None);
        let read = |bytes: &[u8]| match into_sources(bytes.to_vec(), &context).unwrap() {
            Content::Sources { sources, filtered } => {
                (sources.into_iter().map(|s| String::from_utf8(s.json).unwrap()).collect::<Vec<_>>(), filtered)
            }
            Content::Skipped(why) => panic!("skipped: {why}"),
        };
        let events = envelope(&[(0, "ERROR a"), (0, "INFO b"), (0, "WARN health"), (0, r#"{"level":"ERROR"}"#)]);
        let (out, filtered) = read(&events);
        assert_eq!((out.len(), filtered), (2, 2), "{out:?}");
        assert!(out[0].contains(r#""message":"ERROR a""#) && out[1].contains(r#""level":"ERROR""#));
        // Any other document by its own text: an object, NDJSON lines, plain text.
        assert_eq!(read(br#"{"level":"INFO"}"#), (Vec::new(), 1));
        let (lines, filtered) = read(b"{\"m\":\"ERROR x\"}\nWARN y\nINFO z\n{\"m\":\"WARN health\"}\n");
        assert_eq!((lines.len(), filtered), (2, 2), "{lines:?}");
        assert_eq!(read(b"an ERROR line").0.len(), 1);
        assert_eq!(read(b"an INFO line"), (Vec::new(), 1));
        // Lines of which one cannot be read: rejected whole, nothing counted as filtered.
        let broken = into_sources(
            b"INFO a\n{\"m\":\"ERROR b\"}\n{\"logEvents\":[],\"messageType\":\"DATA_MESSAGE\"}\n".to_vec(),
            &context,
        );
        assert!(broken.is_err(), "a broken envelope among the lines rejects them");
        // A kept document keeps the position it has without filters: its `_id` does not change with them.
        context.positions.set(0);
        let Content::Sources { sources: kept, .. } =
            into_sources(b"INFO a\n{\"m\":\"ERROR b\"}\nINFO c\nWARN d\n".to_vec(), &context).unwrap()
        else {
            panic!("documents")
        };
        assert_eq!(kept.iter().map(|source| source.position).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn static_fields_and_provenance_join_every_kind_of_document_the_documents_own_winning() {
        let added = AddedFields::parse(r#"{"env":"prod","team":"core"}"#, &[]).unwrap();
        let context =
            context_with(Preprocess { added_fields: added, ..Preprocess::default() }, Some(r#"{"shard_id":"s-1"}"#));
        let stamp = r#""@timestamp":"2024-05-01T12:00:00.500Z""#;
        let cases = [
            // What the producer wrote first (a rejected document's excerpt quotes it), what is added last.
            (&br#"{"a":1}"#[..], format!(r#"{{{stamp},"a":1,"env":"prod","team":"core","aws":{{"kinesis":{{"shard_id":"s-1"}}}}}}"#)),
            (br#"{"@timestamp":"2024-01-01","env":"dev","aws":{"x":1}}"#, r#"{"@timestamp":"2024-01-01","env":"dev","aws":{"x":1},"team":"core","aws.kinesis":{"shard_id":"s-1"}}"#.to_owned()),
            (br#"{"@timestamp":"2024-01-01","aws":"text"}"#, r#"{"@timestamp":"2024-01-01","aws":"text","env":"prod","team":"core"}"#.to_owned()),
            (br#"{"@timestamp":"2024-01-01","aws.kinesis":1,"aws":{}}"#, r#"{"@timestamp":"2024-01-01","aws.kinesis":1,"aws":{},"env":"prod","team":"core"}"#.to_owned()),
            (b"{ }", format!(r#"{{{stamp} ,"env":"prod","team":"core","aws":{{"kinesis":{{"shard_id":"s-1"}}}}}}"#)),
            (b"{\n  \"a\": 1\n}\n", format!(r#"{{{stamp},   "a": 1 ,"env":"prod","team":"core","aws":{{"kinesis":{{"shard_id":"s-1"}}}}}}"#)),
            (b"plain text", format!(r#"{{{stamp},"message":"plain text","env":"prod","team":"core","aws":{{"kinesis":{{"shard_id":"s-1"}}}}}}"#)),
        ];
        for (data, expected) in cases {
            assert_eq!(
                sources_with(data, &context),
                std::slice::from_ref(&expected),
                "{}",
                String::from_utf8_lossy(data)
            );
            assert_no_field_twice(&expected);
        }
        let out = sources_with(&envelope(&[(0, r#"{"team":"app","n":1}"#)]), &context);
        let aws = r#""aws":{"cloudwatch":{"log_group":"/aws/lambda/f","log_stream":"s","event_id":"0"},"kinesis":{"shard_id":"s-1"}},"cloud":{"account":{"id":"1"}}"#;
        assert_eq!(
            out[0],
            format!(r#"{{"@timestamp":"1970-01-01T00:00:00.000Z","team":"app","n":1,{aws},"env":"prod"}}"#)
        );
    }
}
