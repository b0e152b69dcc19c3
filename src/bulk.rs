//! The `_bulk` protocol's request, pure: documents → NDJSON bodies, and what came back (`BulkReply`: a status and
//! body, or a transport failure), which `cause::decide` reads.

use bytes::Bytes;

use crate::record::Document;

const ACTION_OVERHEAD: usize = r#"{"create":{"_index":"","_id":""}}"#.len() + 2;

/// Bytes one document takes in a request body (action line, source, two newlines), before JSON escaping of the
/// index and id, which never need it for ids we make and index names we validated.
pub fn entry_size(document: &Document) -> usize {
    ACTION_OVERHEAD + document.index.len() + document.id.as_deref().map_or(0, str::len) + document.source.len()
}

/// The NDJSON body that creates `documents`: `{"create":{"_index":…,"_id":…}}` (no `_id` with `ES_DOC_ID=none`)
/// then the source, each on its line.
pub fn encode(documents: &[Document]) -> Vec<u8> {
    let mut body = Vec::with_capacity(documents.iter().map(entry_size).sum());
    encode_into(&mut body, documents).expect("writing to a Vec cannot fail");
    body
}

/// Writes `encode`'s body to `out` (a compressor, so that the plain body never exists whole), flushed through any
/// buffer `out` keeps; returns its length.
pub fn encode_into(out: &mut impl std::io::Write, documents: &[Document]) -> std::io::Result<usize> {
    use std::io::Write;
    let mut out = Counted { inner: out, written: 0 };
    for document in documents {
        out.write_all(br#"{"create":{"_index":"#)?;
        serde_json::to_writer(&mut out, &*document.index)?;
        if let Some(id) = &document.id {
            out.write_all(br#","_id":"#)?;
            serde_json::to_writer(&mut out, id)?;
        }
        out.write_all(b"}}\n")?;
        out.write_all(&document.source)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(out.written)
}

/// A writer that counts what passes through it.
struct Counted<'w, W> {
    inner: &'w mut W,
    written: usize,
}

impl<W: std::io::Write> std::io::Write for Counted<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What came back for one `_bulk` request.
#[derive(Debug, Clone)]
pub enum BulkReply {
    /// The cluster answered with this status and body.
    Answered { status: u16, body: Bytes },
    /// No complete answer within the request timeout.
    TimedOut,
    /// Nothing was sent: the connection could not be made (refused, DNS, TLS), or the request could not be signed.
    NotSent(String),
    /// The connection was lost after it was made: whether anything was written is unknown. `while_sending`: before
    /// any answer came, as when a proxy refuses a body over its limit and closes the connection without reading it;
    /// otherwise the answer broke off.
    Lost { why: String, while_sending: bool },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn doc(id: &str, source: &str) -> Document {
        Document { record: 0, id: Some(id.into()), index: Arc::from("logs"), source: source.as_bytes().to_vec() }
    }

    #[test]
    fn the_body_is_create_actions_and_sources_one_per_line() {
        let body = encode(&[doc("a:1:0", r#"{"x":1}"#), doc("a\"q", "{}")]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"create\":{\"_index\":\"logs\",\"_id\":\"a:1:0\"}}\n{\"x\":1}\n{\"create\":{\"_index\":\"logs\",\"_id\":\"a\\\"q\"}}\n{}\n"
        );
    }

    #[test]
    fn the_size_estimate_is_exact_for_plain_ids() {
        let docs: Vec<Document> = (0..10).map(|i| doc(&i.to_string(), r#"{"payload":"0123456789"}"#)).collect();
        assert_eq!(docs.iter().map(entry_size).sum::<usize>(), encode(&docs).len());
    }

    #[test]
    fn the_body_written_through_a_buffer_is_all_flushed_and_counted() {
        let docs: Vec<Document> = (0..3).map(|i| doc(&i.to_string(), r#"{"n":1}"#)).collect();
        let mut buffered = std::io::BufWriter::with_capacity(1024, Vec::new());
        let written = encode_into(&mut buffered, &docs).unwrap();
        let expected = "{\"create\":{\"_index\":\"logs\",\"_id\":\"0\"}}\n{\"n\":1}\n".len() * 3;
        assert_eq!((written, buffered.get_ref().len()), (expected, expected), "nothing left in the buffer");
    }
}
