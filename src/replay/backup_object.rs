//! Firehose's backup objects and the function's dead letter, pure: the object's lines (gunzipped when gzip'd), told
//! from Lambda's on-failure records by their `rawData`, each read into a `BackedUp` or named as unreadable.
//!
//! The format is documented in "Handle data delivery failures" (`FIREHOSE_DOCS`, section Amazon OpenSearch
//! Service): one JSON object per line with `rawData` (the record Firehose received, base64: here the document with
//! its target first), `errorCode`, `errorMessage`, `esDocumentId`, `esIndexName`, … The dead letter
//! (`dead_letter`) writes the same lines. An object is taken as a backup object when its lines carry `rawData`,
//! wherever it is, so one bucket may hold both kinds.

use std::io::Read;

use serde_json::Value;

use crate::replay::backup::BackedUp;

pub const FIREHOSE_DOCS: &str = "https://docs.aws.amazon.com/firehose/latest/dev/retry.html";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// A backup object's documents, and the lines that hold none (their number and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupObject {
    pub documents: Vec<BackedUp>,
    pub unreadable: Vec<(usize, String)>,
}

/// The lines of a backup object (gunzipped when gzip'd), or `None` when the object is not one; `Err` when it is
/// gzip'd but cannot be inflated.
pub fn backup_lines(body: &[u8]) -> Result<Option<Vec<String>>, String> {
    let inflated;
    let body = if body.starts_with(GZIP_MAGIC) {
        let mut text = Vec::new();
        // Firehose may concatenate gzip members in one object: all of them are read.
        flate2::read::MultiGzDecoder::new(body)
            .read_to_end(&mut text)
            .map_err(|e| format!("gzip'd but cannot be inflated: {e}"))?;
        inflated = text;
        &inflated[..]
    } else {
        body
    };
    let Ok(text) = std::str::from_utf8(body) else { return Ok(None) };
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let first = lines.iter().find(|line| !line.trim().is_empty());
    let is_backup = first
        .and_then(|line| serde_json::from_str::<Value>(line).ok())
        .is_some_and(|line| line.as_object().is_some_and(|line| line.contains_key("rawData")));
    Ok(is_backup.then_some(lines))
}

/// Each non-blank line of a backup object read into the document it holds, numbered from 1.
pub fn read_backup(lines: &[String]) -> BackupObject {
    let mut object = BackupObject { documents: Vec::new(), unreadable: Vec::new() };
    for (number, line) in (1..).zip(lines) {
        if line.trim().is_empty() {
            continue;
        }
        match backed_up(number, line) {
            Ok(document) => object.documents.push(document),
            Err(why) => object.unreadable.push((number, format!("not a Firehose backup line: {why}"))),
        }
    }
    object
}

fn backed_up(number: usize, line: &str) -> Result<BackedUp, String> {
    let failed: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let Some(raw) = failed.get("rawData").and_then(Value::as_str) else {
        return Err(format!("no rawData (see {FIREHOSE_DOCS})"));
    };
    let raw = base64_simd::STANDARD.decode_to_vec(raw).map_err(|_| "its rawData is not base64".to_owned())?;
    let raw = String::from_utf8(raw).map_err(|e| format!("its rawData is not UTF-8: {e}"))?;
    // Firehose's error fields are strings; anything else is kept as its JSON, so that nothing is lost.
    let text = |name: &str| match failed.get(name) {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Ok(BackedUp {
        line: number,
        raw: raw.trim_end_matches('\n').to_owned(),
        error_code: text("errorCode"),
        error_message: text("errorMessage"),
        es_document_id: failed.get("esDocumentId").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LINE: &str = r#"{"attemptsMade":4,"errorCode":"429","errorMessage":"busy","rawData":"eyJlc190YXJnZXQiOnsiX2luZGV4IjoibCJ9LCJtIjoxfQo=","esDocumentId":"d1","esIndexName":"l"}"#;

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(body).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn backup_objects_are_read_gzipd_or_not_and_lambdas_records_are_not_taken_for_them() {
        let body = format!("\n{LINE}\n{LINE}\n");
        let plain = backup_lines(body.as_bytes()).unwrap().expect("a backup object");
        assert_eq!(plain.len(), 3);
        assert_eq!(backup_lines(&gzip(body.as_bytes())), Ok(Some(plain)));
        let members = [gzip(format!("{LINE}\n").as_bytes()), gzip(format!("{LINE}\n").as_bytes())].concat();
        assert_eq!(backup_lines(&members).unwrap().unwrap().len(), 2, "every gzip member");
        assert_eq!(backup_lines(br#"{"KinesisBatchInfo":{}}"#), Ok(None));
        assert_eq!(backup_lines(b"not json"), Ok(None));
        assert_eq!(backup_lines(&[0xff, 0xfe]), Ok(None));
        assert!(backup_lines(&[0x1f, 0x8b, 0, 1, 2]).unwrap_err().starts_with("gzip'd but cannot be inflated"));
    }

    #[test]
    fn each_line_becomes_its_document_or_is_named_with_why() {
        let lines: Vec<String> =
            [LINE, "", r#"{"errorCode":"429"}"#, r#"{"rawData":"not base64!"}"#, "{"].map(str::to_owned).to_vec();
        let object = read_backup(&lines);
        assert_eq!(
            object.documents,
            [BackedUp {
                line: 1,
                raw: r#"{"es_target":{"_index":"l"},"m":1}"#.into(),
                error_code: "429".into(),
                error_message: "busy".into(),
                es_document_id: Some("d1".into()),
            }]
        );
        let numbers: Vec<usize> = object.unreadable.iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, [3, 4, 5], "blank lines are skipped, not named");
        assert!(object.unreadable.iter().all(|(_, why)| why.starts_with("not a Firehose backup line: ")));
        assert!(object.unreadable[0].1.contains("no rawData"));
    }
}
