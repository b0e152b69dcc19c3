//! Adapter to the cluster: `POST /_bulk` through the `elasticsearch` crate's transport, and the indexing stage that
//! sends a batch's chunks with bounded concurrency, within the invocation's deadline, stopping when the cluster is
//! down or throttling.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use elasticsearch::http::transport::{Connection, SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::http::{Method, Url};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::bulk::{self, BulkReply, ChunkDecision, DocOutcome, IndexedDocument};
use crate::cause::{Cause, Failure};
use crate::config::{Compression, Config, EsAuth};
use crate::error::Error;
use crate::pacing;
use crate::record::{Batch, BatchDecoder, Document, Record};
use crate::sigv4::Signer;

/// The bulk endpoint, relative to `ES_URL`, asking only for what the decision reads (statuses and errors), which
/// shrinks every answer severalfold on the normal path. Written out in SigV4's canonical encoding (`*` as `%2A`), so
/// that the URL sent is the URL signed and every SigV4 implementation canonicalises it the same way.
const BULK_PATH: &str = "_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error.type%2Citems.%2A.error.reason";

/// A client for one cluster, built once at cold start; its connection pool is reused across invocations.
#[derive(Debug, Clone)]
pub struct Elasticsearch {
    transport: Transport,
    compression: Compression,
    signer: Option<Signer>,
    /// The bulk path relative to `ES_URL` (`BULK_PATH`, and `&pipeline=` with `ES_PIPELINE`).
    bulk_path: String,
    /// The bulk URL exactly as the transport requests it, and its `Host` header: what a signature covers.
    bulk_url: String,
    host: String,
}

impl Elasticsearch {
    /// `aws_credentials` is required with SigV4 (the SDK's default chain at cold start; any provider in tests).
    pub fn new(config: &Config, aws_credentials: Option<SharedCredentialsProvider>) -> Result<Elasticsearch, Error> {
        let bad_url = |e: &dyn std::fmt::Display| Error::Client(format!("ES_URL {}: {e}", config.es_url));
        let url = Url::parse(&config.es_url).map_err(|e| bad_url(&e))?;
        // The transport joins BULK_PATH to the connection's URL (which gains a trailing slash): do the same here.
        let bulk_path = match &config.pipeline {
            // The id is checked to hold only URL-unreserved characters: it needs no encoding.
            Some(pipeline) => format!("{BULK_PATH}&pipeline={pipeline}"),
            None => BULK_PATH.to_owned(),
        };
        let bulk_url = Connection::new(url.clone()).url().join(&bulk_path).map_err(|e| bad_url(&e))?;
        let host = match (bulk_url.host_str(), bulk_url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(bad_url(&"no host")),
        };
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(config.es_timeout);
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|e| Error::Client(format!("ES_CA_CERT {}: {e}", path.display())))?;
            let certificate = Certificate::from_pem(&pem).map_err(|e| {
                Error::Client(format!("ES_CA_CERT {}: not a PEM certificate bundle: {e}", path.display()))
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(certificate));
        }
        if !config.tls_verify {
            // Said at every cold start, at ERROR, so that nobody runs this way by accident.
            tracing::error!(es_url = %config.es_url, "TLS certificate verification is OFF (ES_TLS_VERIFY=false): anyone on the path can read and change what is indexed");
            builder = builder.cert_validation(CertificateValidation::None);
        }
        let mut signer = None;
        match &config.auth {
            EsAuth::None => {}
            EsAuth::Basic { username, password } => {
                builder = builder.auth(Credentials::Basic(username.clone(), password.clone()))
            }
            EsAuth::ApiKey(key) => builder = builder.auth(Credentials::EncodedApiKey(key.clone())),
            // Read from Secrets Manager at cold start, then given through `set_credentials`.
            EsAuth::Secret { .. } => {}
            EsAuth::SigV4 { region, service } => {
                let credentials =
                    aws_credentials.ok_or_else(|| Error::Client("SigV4 needs an AWS credentials provider".into()))?;
                signer = Some(Signer::new(credentials, region.clone(), service.clone()));
            }
        }
        let transport =
            builder.build().map_err(|e| Error::Client(format!("cannot build the Elasticsearch client: {e}")))?;
        Ok(Elasticsearch {
            transport,
            compression: config.compression,
            signer,
            bulk_path,
            bulk_url: bulk_url.into(),
            host,
        })
    }

    /// Replaces the basic or API-key credentials of every later request (a rotated secret).
    pub fn set_credentials(&self, credentials: Credentials) {
        self.transport.set_auth(credentials);
    }

    /// The body of a `_bulk` request for `documents` as it goes on the wire, and its size before compression:
    /// gzip-compressed (level 1: most of the gain for little CPU) while it is encoded, so that a chunk needs one
    /// buffer and not a plain copy beside the compressed one; or as is.
    pub fn wire_body(&self, documents: &[Document]) -> (Bytes, usize) {
        match self.compression {
            Compression::None => {
                let body = bulk::encode(documents);
                let plain = body.len();
                (Bytes::from(body), plain)
            }
            Compression::Gzip => {
                let estimate: usize = documents.iter().map(bulk::entry_size).sum();
                // Room for a body that compresses to half (high-entropy logs do); pages never written are never
                // resident, and a body that outgrows it is not copied while it grows from a quarter.
                let encoder =
                    flate2::write::GzEncoder::new(Vec::with_capacity(estimate / 2 + 64), flate2::Compression::fast());
                // Whole action lines and sources reach the compressor, not the small writes of encoding.
                let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, encoder);
                let compressed = bulk::encode_into(&mut buffered, documents).and_then(|plain| {
                    let encoder = buffered.into_inner().map_err(|e| e.into_error())?;
                    Ok((Bytes::from(encoder.finish()?), plain))
                });
                compressed.expect("compressing into memory cannot fail")
            }
        }
    }

    /// Sends one `_bulk` request whose body came from `wire_body`; every failure is a `BulkReply`, never an error.
    pub async fn bulk(&self, body: Bytes, timeout: Duration) -> BulkReply {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        if self.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(signer) = &self.signer {
            let mut signed: Vec<(&str, &str)> = vec![("host", &self.host)];
            signed.extend(headers.iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default())));
            match signer.sign("POST", &self.bulk_url, &signed, &body).await {
                Ok(signature) => {
                    for (name, value) in signature {
                        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
                            (Ok(name), Ok(value)) => headers.insert(name, value),
                            _ => return BulkReply::Failed(format!("the signature produced an invalid header {name}")),
                        };
                    }
                }
                // Nothing was sent: like a refused connection, the rest of the batch goes back to Kinesis.
                Err(why) => return BulkReply::Failed(why),
            }
        }
        let sent =
            self.transport.send(Method::Post, &self.bulk_path, headers, None::<&()>, Some(body), Some(timeout)).await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return BulkReply::TimedOut,
            Err(error) => return BulkReply::Failed(crate::error::error_chain(&error)),
        };
        let status = response.status_code().as_u16();
        match response.bytes().await {
            Ok(body) => BulkReply::Answered { status, body },
            Err(error) if error.is_timeout() => BulkReply::TimedOut,
            Err(error) => BulkReply::Failed(format!("the answer broke off: {}", crate::error::error_chain(&error))),
        }
    }
}

/// What the indexing stage did, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexingStats {
    pub requests: usize,
    /// Request body bytes before compression.
    pub body_bytes: usize,
    /// Request body bytes on the wire.
    pub bytes_sent: usize,
    /// Whether the cluster answered a request 401 (the credentials may have been rotated).
    pub unauthorized: bool,
    /// Whether the cluster answered a request normally: every item judged, none refused or unknown for a
    /// cluster-level reason (the end of pacing).
    pub answered_normally: bool,
    pub elapsed: Duration,
}

/// Decodes the batch and sends its documents to the cluster in chunks as they are decoded; returns the batch, each
/// document with its outcome.
///
/// Memory follows the chunks, not the batch: a chunk's documents are decoded when a request slot is free (at most
/// `BULK_CONCURRENCY` chunks and their bodies exist at once), and once a chunk is answered its documents keep their
/// sources only where routing still needs them (for Firehose, or for the log line of a rejected document).
///
/// At most one request per document by default (a 413 split resends halves of a request the cluster refused
/// unread). After a whole-request 429 no further chunk is sent and the rest is "retry later"; after a timeout,
/// connection failure, 5xx or auth failure the rest goes back to Kinesis. No request starts with less than
/// `margin` left. With `probe` (the cluster was away at the last invocations), one document is sent alone first, and
/// the rest only if the cluster answers it.
pub async fn index_batch(
    client: &Elasticsearch,
    mut decoder: BatchDecoder<'_>,
    config: &Config,
    deadline: Instant,
    margin: Duration,
    probe: bool,
) -> (Batch<Record, IndexedDocument>, IndexingStats) {
    let started = Instant::now();
    let sender = Sender { client, config, deadline, margin, hold: Mutex::new(None) };
    let mut feed = ChunkFeed::new(|pending: &mut VecDeque<Document>| decoder.decode_next_into(pending), config);
    let mut answered = Vec::new();
    // A failed probe holds the stage: the chunks after it are not sent.
    if let Some(chunk) = probe.then(|| feed.next_chunk(1)).flatten() {
        answered.push(sender.send_chunk(chunk).await);
    }
    let rest: Vec<AnsweredChunk> =
        futures_util::stream::iter(std::iter::from_fn(|| feed.next_chunk(config.bulk_max_docs)))
            .map(|chunk| sender.send_chunk(chunk))
            .buffer_unordered(config.bulk_concurrency)
            .collect()
            .await;
    answered.extend(rest);
    answered.sort_unstable_by_key(|chunk| chunk.first);

    let decoded = feed.next;
    drop(feed);
    let mut documents = Vec::with_capacity(decoded);
    let mut stats = IndexingStats::default();
    for chunk in answered {
        documents.extend(chunk.documents);
        stats.requests += chunk.stats.requests;
        stats.body_bytes += chunk.stats.body_bytes;
        stats.bytes_sent += chunk.stats.bytes_sent;
        stats.unauthorized |= chunk.stats.unauthorized;
        stats.answered_normally |= chunk.stats.answered_normally;
    }
    stats.elapsed = started.elapsed();
    (decoder.finish(documents), stats)
}

/// Cuts decoded documents into chunks of at most `max_docs` documents and `BULK_MAX_BYTES` of body (a larger
/// document travels alone), decoding records (`decode_next`: the next record's documents into the queue, false
/// when there are no more) only as the next chunk needs them.
struct ChunkFeed<D> {
    decode_next: D,
    /// Documents decoded but not yet in a chunk (the rest of the last record decoded).
    pending: VecDeque<Document>,
    /// The batch position of `pending`'s first document.
    next: usize,
    max_bytes: usize,
}

impl<D: FnMut(&mut VecDeque<Document>) -> bool> ChunkFeed<D> {
    fn new(decode_next: D, config: &Config) -> ChunkFeed<D> {
        ChunkFeed { decode_next, pending: VecDeque::new(), next: 0, max_bytes: config.bulk_max_bytes }
    }

    fn next_chunk(&mut self, max_docs: usize) -> Option<Chunk> {
        let mut documents = Vec::new();
        let mut bytes = 0;
        while documents.len() < max_docs && bytes < self.max_bytes {
            let Some(document) = self.pending.front() else {
                if (self.decode_next)(&mut self.pending) {
                    continue;
                }
                break;
            };
            let size = bulk::entry_size(document);
            if !documents.is_empty() && bytes + size > self.max_bytes {
                break;
            }
            bytes += size;
            documents.extend(self.pending.pop_front());
        }
        if documents.is_empty() {
            return None;
        }
        let first = self.next;
        self.next += documents.len();
        Some(Chunk { first, documents })
    }
}

/// Consecutive documents of the batch sent in one request (or two halves after a 413), owned while in flight.
struct Chunk {
    /// The batch position of the first document.
    first: usize,
    documents: Vec<Document>,
}

/// A chunk after its answer: each document with its outcome, and only the sources routing needs.
struct AnsweredChunk {
    first: usize,
    documents: Vec<IndexedDocument>,
    stats: IndexingStats,
}

/// What sending one batch's chunks shares: the client, the deadline, and whether the cluster said to hold off.
struct Sender<'a> {
    client: &'a Elasticsearch,
    config: &'a Config,
    deadline: Instant,
    /// No request starts with less than this left (the invocation's margin, see `handler`).
    margin: Duration,
    /// Set by the first chunk that finds the cluster down, refusing or throttling, to its cause: later chunks are
    /// not sent.
    hold: Mutex<Option<Cause>>,
}

impl Sender<'_> {
    async fn send_chunk(&self, chunk: Chunk) -> AnsweredChunk {
        let Chunk { first, documents } = chunk;
        let mut outcomes: Vec<Option<DocOutcome>> = vec![None; documents.len()];
        let mut stats = IndexingStats::default();
        // A 413 replaces a request by its two halves, first half first.
        let whole = 0..documents.len();
        let mut pending = vec![whole];
        while let Some(part) = pending.pop() {
            let fill = |outcomes: &mut Vec<Option<DocOutcome>>, outcome: DocOutcome| {
                for slot in &mut outcomes[part.clone()] {
                    *slot = Some(outcome.clone());
                }
            };
            if let Some(held) = self.held() {
                fill(&mut outcomes, held);
                continue;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left <= self.margin {
                let reason = format!(
                    "less than the invocation's margin ({} ms: DEADLINE_MARGIN_MS, at most a quarter of the time \
                     allowed) was left before its deadline",
                    self.margin.as_millis()
                );
                fill(&mut outcomes, DocOutcome::Failed(Failure::ours(Cause::Deadline, "deadline", reason)));
                continue;
            }
            let timeout = self.config.es_timeout.min(left - self.margin);
            let (body, plain) = self.client.wire_body(&documents[part.clone()]);
            stats.body_bytes += plain;
            stats.requests += 1;
            stats.bytes_sent += body.len();
            let reply = self.client.bulk(body, timeout).await;
            stats.unauthorized |= matches!(reply, BulkReply::Answered { status: 401, .. });
            match bulk::decide(&reply, part.len()) {
                ChunkDecision::Split if part.len() > 1 => {
                    let middle = part.start + part.len() / 2;
                    pending.push(middle..part.end);
                    pending.push(part.start..middle);
                }
                ChunkDecision::Split => fill(
                    &mut outcomes,
                    DocOutcome::Failed(Failure {
                        cause: Cause::Document,
                        status: Some(413),
                        error_type: "request_too_large".into(),
                        reason: "the cluster refuses a request holding this document alone (http.max_content_length)"
                            .into(),
                    }),
                ),
                ChunkDecision::PerDocument { outcomes: part_outcomes, hold } => {
                    if let Some(cause) = hold {
                        self.hold.lock().expect("hold lock").get_or_insert(cause);
                    }
                    stats.answered_normally |= hold.is_none()
                        && part_outcomes.iter().all(|outcome| {
                            outcome.failure().is_none_or(|failure| !pacing::is_cluster_level(failure.cause))
                        });
                    for (slot, outcome) in outcomes[part.start..].iter_mut().zip(part_outcomes) {
                        *slot = Some(outcome);
                    }
                }
            }
        }
        let documents = documents
            .into_iter()
            .zip(outcomes)
            .map(|(mut document, outcome)| {
                let outcome = outcome.expect("every part is filled");
                if !outcome.needs_source() {
                    document.source = Vec::new();
                    document.id = None;
                }
                IndexedDocument { document, outcome }
            })
            .collect();
        AnsweredChunk { first, documents, stats }
    }

    /// The outcome for documents not sent because an earlier answer stopped the stage.
    fn held(&self) -> Option<DocOutcome> {
        let cause = (*self.hold.lock().expect("hold lock"))?;
        let failure = match cause {
            Cause::ClusterBusy => Failure::ours(
                cause,
                "not_sent_cluster_throttling",
                "the cluster answered an earlier request of this batch with 429; not sent, to spare it",
            ),
            _ => Failure::ours(
                cause,
                "not_sent_cluster_unavailable",
                "an earlier request of this batch found the cluster unavailable or refusing us; not sent",
            ),
        };
        Some(DocOutcome::Failed(failure))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn doc(record: usize) -> Document {
        Document {
            record,
            id: Some(format!("s:0:{record}")),
            index: Arc::from("logs"),
            source: br#"{"payload":"0123456789"}"#.to_vec(),
        }
    }

    /// The chunks cut from `records` records of three documents each: (first position, documents) per chunk, and
    /// how many records had been decoded when each chunk was cut.
    fn chunks(records: usize, max_bytes: usize, max_docs: usize) -> Vec<(usize, usize, usize)> {
        let decoded = std::cell::Cell::new(0);
        let decode_next = |pending: &mut VecDeque<Document>| {
            let record = decoded.get();
            if record == records {
                return false;
            }
            decoded.set(record + 1);
            pending.extend((0..3).map(|_| doc(record)));
            true
        };
        let config = Config::from_lookup(|name| (name == "ES_URL").then(|| "http://127.0.0.1:9".to_owned())).unwrap();
        let mut feed = ChunkFeed::new(decode_next, &config);
        feed.max_bytes = max_bytes;
        std::iter::from_fn(|| feed.next_chunk(max_docs).map(|c| (c.first, c.documents.len(), decoded.get()))).collect()
    }

    #[test]
    fn chunks_respect_the_document_and_byte_limits_and_decode_only_what_they_need() {
        // 4 records of 3 documents, 4 per chunk: the first chunk needs two records, the second three, the last four.
        assert_eq!(chunks(4, 1 << 20, 4), vec![(0, 4, 2), (4, 4, 3), (8, 4, 4)]);
        let one = bulk::entry_size(&doc(0));
        assert_eq!(chunks(3, one * 2, 100), vec![(0, 2, 1), (2, 2, 2), (4, 2, 2), (6, 2, 3), (8, 1, 3)]);
        assert_eq!(chunks(2, 10, 100).len(), 6, "an oversized document travels alone");
        assert_eq!(chunks(0, 10, 10), vec![]);
    }
}
