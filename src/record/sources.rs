//! Decoded data → document sources: one JSON object passed through (stamped when it has no timestamp), NDJSON line
//! by line, anything else as a message.

use chrono::{DateTime, Utc};

use super::Rejection;
use super::cloudwatch::envelope_content;
use super::content::{Content, DocumentContext, Source, write_stamped_message};
use super::scan::{ObjectScan, scan_object};
use crate::index;

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
    let scan = if trimmed.starts_with('{') { scan_object(trimmed, context.timestamp_field) } else { None };
    if let Some(scan) = scan {
        let (start, end) = (text.len() - text.trim_start().len(), text.trim_end().len());
        bytes.truncate(end);
        bytes.drain(..start);
        return object_sources(bytes, scan, context);
    }
    match ndjson_sources(text, context) {
        Some(Ok(sources)) => Ok(Content::Sources(sources)),
        Some(Err(rejection)) => Err((rejection, bytes)),
        None => Ok(Content::Sources(vec![message_source(text, context)])),
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
    let timestamp = scan.timestamp.unwrap_or(context.default_timestamp);
    let json = if scan.has_timestamp_field {
        // The document passes through as it came: the decoded buffer itself becomes the source.
        one_line(object)
    } else {
        let mut object = object;
        prepend_field_in_place(context.timestamp_field, &quoted_timestamp(timestamp), &mut object);
        object
    };
    Ok(Content::Sources(vec![Source { json, timestamp }]))
}

/// Several lines of which at least one is a JSON object: one source per non-blank line. `None` when the text is
/// not NDJSON (one line, or no line is an object).
fn ndjson_sources(text: &str, context: &DocumentContext) -> Option<Result<Vec<Source>, Rejection>> {
    // One line of text (the common case) is not NDJSON: no need to split it or scan it again.
    if !text.trim().contains('\n') {
        return None;
    }
    let lines: Vec<(&str, Option<ObjectScan>)> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let scan = if line.starts_with('{') { scan_object(line, context.timestamp_field) } else { None };
            (line, scan)
        })
        .collect();
    if lines.len() < 2 || lines.iter().all(|(_, scan)| scan.is_none()) {
        return None;
    }
    let mut sources = Vec::with_capacity(lines.len());
    for (line, scan) in lines {
        match scan {
            None => sources.push(message_source(line, context)),
            Some(scan) => match object_sources(line.as_bytes().to_vec(), scan, context) {
                Ok(Content::Sources(more)) => sources.extend(more),
                // A control message among other lines: nothing to index for that line.
                Ok(Content::Skipped(_)) => {}
                Err((rejection, _)) => return Some(Err(rejection)),
            },
        }
    }
    Some(Ok(sources))
}

/// Text that is not a JSON object, as `{"@timestamp": arrival, "message": text}`.
fn message_source(text: &str, context: &DocumentContext) -> Source {
    let message = text.trim_end_matches(['\n', '\r']);
    let timestamp = context.default_timestamp;
    let mut json = Vec::with_capacity(context.timestamp_field.len() + message.len() + 48);
    write_stamped_message(&mut json, context.timestamp_field, timestamp, message);
    json.push(b'}');
    Source { json, timestamp }
}

/// An instant as a JSON string.
fn quoted_timestamp(at: DateTime<Utc>) -> String {
    let mut json = Vec::with_capacity(26);
    json.push(b'"');
    index::write_timestamp(&mut json, at);
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

/// The inverse of `prepend_field`: `field`'s value (raw JSON) and the object without it, byte for byte as it was
/// before the field was put first. `None` when `object` does not start with `field` (a document someone else
/// wrote, or one whose fields a pipeline reordered).
pub fn take_prepended_field<'a>(field: &str, object: &'a [u8]) -> Option<(&'a serde_json::value::RawValue, Vec<u8>)> {
    let start = object.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut head = Vec::with_capacity(field.len() + 4);
    head.push(b'{');
    serde_json::to_writer(&mut head, field).expect("writing a str to a Vec cannot fail");
    head.push(b':');
    let value_at = start + head.len();
    if !object[start..].starts_with(&head) {
        return None;
    }
    let mut values =
        serde_json::Deserializer::from_slice(&object[value_at..]).into_iter::<&serde_json::value::RawValue>();
    let value = values.next()?.ok()?;
    let after = value_at + values.byte_offset();
    let rest = &object[after..];
    let next = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut without = Vec::with_capacity(object.len() - after + 1);
    without.push(b'{');
    match rest[next] {
        b',' => without.extend_from_slice(&rest[next + 1..]),
        b'}' => without.extend_from_slice(rest),
        _ => return None,
    }
    Some((value, without))
}

/// `prepend_field` within `object`'s own buffer: the document moves up by what is inserted (one memmove, and no
/// new buffer while the capacity holds it).
fn prepend_field_in_place(field: &str, value_json: &str, object: &mut Vec<u8>) {
    let brace = object.iter().position(|&b| b == b'{').expect("a JSON object");
    let is_empty = object[brace + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut head = Vec::with_capacity(field.len() + value_json.len() + 8);
    head.push(b'{');
    serde_json::to_writer(&mut head, field).expect("writing a str to a Vec cannot fail");
    head.push(b':');
    head.extend_from_slice(value_json.as_bytes());
    if !is_empty {
        head.push(b',');
    }
    let rest = head.len();
    object.splice(..=brace, head);
    fold_newlines(&mut object[rest..]);
}

/// Valid JSON has newlines only as whitespace between tokens (strings escape theirs), so folding them into spaces
/// keeps the document identical while making it one NDJSON line.
fn one_line(mut json: Vec<u8>) -> Vec<u8> {
    fold_newlines(&mut json);
    json
}

fn fold_newlines(json: &mut [u8]) {
    // Most documents are on one line already: find the first newline at memchr's speed, fold from there.
    let Some(first) = memchr::memchr2(b'\n', b'\r', json) else { return };
    for byte in &mut json[first..] {
        if *byte == b'\n' || *byte == b'\r' {
            *byte = b' ';
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::record::data::{decode_base64, inflate};
    use base64::Engine;
    use testkit::gzip;

    #[test]
    fn a_prepended_field_is_taken_back_leaving_the_object_as_it_was() {
        let target = r#"{"_id":"t:s:1:0","_index":"logs-2024.05.01"}"#;
        for object in [&br#"{"message":"a","n":{"x":[1,2]}}"#[..], b"{}", b"{ }", br#"{"es_target":1}"#] {
            let with = prepend_field("es_target", target, object);
            let (value, without) = take_prepended_field("es_target", &with).expect("put first, taken back");
            assert_eq!(value.get(), target);
            assert_eq!(without, object, "{}", String::from_utf8_lossy(&with));
        }
        assert!(take_prepended_field("es_target", br#"{"message":"a","es_target":{}}"#).is_none(), "not first");
        assert!(take_prepended_field("es_target", br#"{"es_target":{"_id":1}"#).is_none(), "cut short");
        assert!(take_prepended_field("es_target", b"not json").is_none());
    }

    pub(in crate::record) fn context() -> DocumentContext<'static> {
        DocumentContext {
            timestamp_field: "@timestamp",
            default_timestamp: index::parse_timestamp("2024-05-01T12:00:00.5Z").unwrap(),
        }
    }

    pub(in crate::record) fn sources(bytes: &[u8]) -> Vec<String> {
        match into_sources(bytes.to_vec(), &context()).unwrap() {
            Content::Sources(sources) => sources.into_iter().map(|s| String::from_utf8(s.json).unwrap()).collect(),
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
            let Ok(Content::Sources(sources)) = into_sources(decoded, &context()) else { panic!("a document") };
            assert_eq!(String::from_utf8(sources[0].json.clone()).unwrap(), stamped);
            assert_eq!(sources[0].json.as_ptr(), buffer, "no new buffer for {stamped}");
        }
        let gzipped = inflate(gzip(br#"{"b":2}"#), &mut 1024).unwrap();
        let buffer = gzipped.as_ptr();
        let Ok(Content::Sources(sources)) = into_sources(gzipped, &context()) else { panic!("a document") };
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
        let Content::Sources(out) = into_sources(br#"{"@timestamp":1700000000000}"#.to_vec(), &context()).unwrap()
        else {
            panic!()
        };
        assert_eq!(index::format_timestamp(out[0].timestamp), "2023-11-14T22:13:20.000Z");
        let Content::Sources(out) = into_sources(br#"{"@timestamp":"not a date"}"#.to_vec(), &context()).unwrap()
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
