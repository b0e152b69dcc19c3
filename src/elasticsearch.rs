//! Adapter to the cluster: `POST /_bulk` through the `elasticsearch` crate's transport, and the indexing stage that
//! sends a batch's chunks with the concurrency `adapt::Load` allows, within the invocation's deadline, stopping when
//! the cluster is down or saturated.

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
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::adapt::{Load, SATURATED_IN_A_ROW_TO_HOLD, Signal};
use crate::bulk::{self, BulkReply, ChunkDecision, DocOutcome, IndexedDocument, Sent};
use crate::cause::{Cause, Failure};
use crate::config::{Compression, Config, EsAuth};
use crate::error::Error;
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
                            _ => {
                                return BulkReply::NotSent(format!("the signature produced an invalid header {name}"));
                            }
                        };
                    }
                }
                // Nothing was sent: like a refused connection, the rest of the batch goes back to Kinesis.
                Err(why) => return BulkReply::NotSent(why),
            }
        }
        let sent =
            self.transport.send(Method::Post, &self.bulk_path, headers, None::<&()>, Some(body), Some(timeout)).await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return BulkReply::TimedOut,
            Err(error) if never_connected(&error) => return BulkReply::NotSent(crate::error::error_chain(&error)),
            Err(error) => {
                return BulkReply::Lost { why: crate::error::error_chain(&error), while_sending: true };
            }
        };
        let status = response.status_code().as_u16();
        match response.bytes().await {
            Ok(body) => BulkReply::Answered { status, body },
            Err(error) if error.is_timeout() => BulkReply::TimedOut,
            Err(error) => BulkReply::Lost {
                why: format!("the answer broke off: {}", crate::error::error_chain(&error)),
                while_sending: false,
            },
        }
    }
}

/// Whether a request failed before its connection was made (refused, DNS, TLS handshake): nothing of it was sent.
fn never_connected(error: &elasticsearch::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<reqwest::Error>() {
            return http.is_connect();
        }
        source = cause.source();
    }
    false
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
    /// Whether the cluster answered a request normally: every item judged, none asked for later, refused or unknown
    /// for a reason of the cluster's (the end of pacing).
    pub answered_normally: bool,
    /// Requests allowed in flight when the stage ended (`BULK_CONCURRENCY` unless adapting brought it down).
    pub concurrency: usize,
    /// The body size learned from a refusal, when one was learned (`BULK_MAX_BYTES` otherwise).
    pub body_limit: Option<usize>,
    pub elapsed: Duration,
}

impl IndexingStats {
    fn add(&mut self, other: &IndexingStats) {
        self.requests += other.requests;
        self.body_bytes += other.body_bytes;
        self.bytes_sent += other.bytes_sent;
        self.unauthorized |= other.unauthorized;
        self.answered_normally |= other.answered_normally;
    }
}

/// Decodes the batch and sends its documents to the cluster in chunks as they are decoded; returns the batch, each
/// document with its outcome.
///
/// Memory follows the chunks, not the batch: a chunk's documents are decoded when a request slot is free (at most
/// `BULK_CONCURRENCY` chunks and their bodies exist at once), and once a chunk is answered its documents keep their
/// sources only where routing still needs them (for Firehose, or for the log line of a rejected document).
///
/// How many requests are in flight follows `load` (`BULK_CONCURRENCY_MODE=adaptive`): halved when the cluster says
/// "later" to most of a request, grown after clean answers, and below one request a pause after each answer; with
/// `fixed`, always `BULK_CONCURRENCY`.
///
/// At most one request per document, but for a request refused for its size (a 413, or a connection lost while a
/// body larger than any known to get through was being sent), resent in halves. After a request the cluster refuses
/// whole (a 429, timeout, connection failure, 5xx, auth failure), or `SATURATED_IN_A_ROW_TO_HOLD` requests in a row
/// it is saturated by (adaptive), no further chunk is sent. No request starts with less than `margin` left. With `probe` (the last invocations paced), one
/// document is sent alone first, and the rest only if the cluster answers it.
pub async fn index_batch(
    client: &Elasticsearch,
    mut decoder: BatchDecoder<'_>,
    config: &Config,
    deadline: Instant,
    margin: Duration,
    probe: bool,
    load: &Load,
) -> (Batch<Record, IndexedDocument>, IndexingStats) {
    let feed = ChunkFeed::new(|pending: &mut VecDeque<Document>| decoder.decode_next_into(pending));
    let (documents, stats) = send_all(client, feed, config, deadline, margin, probe, load).await;
    (decoder.finish(documents), stats)
}

/// Sends documents made elsewhere (Firehose's backup, replayed) as `index_batch` sends a batch's: the same chunks,
/// concurrency, holds and judgement; each document with its outcome, in order.
pub async fn index_documents(
    client: &Elasticsearch,
    documents: Vec<Document>,
    config: &Config,
    deadline: Instant,
    margin: Duration,
    load: &Load,
) -> (Vec<IndexedDocument>, IndexingStats) {
    let mut documents = Some(documents);
    let feed = ChunkFeed::new(move |pending: &mut VecDeque<Document>| match documents.take() {
        Some(all) => {
            pending.extend(all);
            true
        }
        None => false,
    });
    send_all(client, feed, config, deadline, margin, false, load).await
}

/// The indexing stage proper: sends the chunks `feed` cuts, and returns every document it handed out with its
/// outcome, in order.
async fn send_all<D: FnMut(&mut VecDeque<Document>) -> bool>(
    client: &Elasticsearch,
    mut feed: ChunkFeed<D>,
    config: &Config,
    deadline: Instant,
    margin: Duration,
    probe: bool,
    load: &Load,
) -> (Vec<IndexedDocument>, IndexingStats) {
    let started = Instant::now();
    let sender = Sender { client, config, deadline, margin, load, shared: Mutex::default() };
    let mut answered = Vec::new();
    // A probe that is not answered normally holds the stage. One that may have been refused for its size says
    // nothing of the cluster: the next document is tried alone.
    let mut probing = probe;
    while probing {
        let Some(chunk) = feed.next_chunk(1, usize::MAX) else { break };
        let chunk = sender.send_chunk(chunk).await;
        let verdict = chunk.verdict;
        answered.push(chunk);
        probing = verdict == Verdict::MaybeTooLarge;
        match verdict {
            // Asked for later (items, or the whole request, which already held as busy): the rest stays in the
            // stream (paced as busy), neither sent nor parked unsent.
            Verdict::Failed(Cause::ClusterBusy) => sender.shared().hold = Some(Cause::ClusterSaturated),
            Verdict::Failed(cause) => sender.hold(cause),
            Verdict::Normal | Verdict::MaybeTooLarge => {}
        }
    }
    let mut in_flight = FuturesUnordered::new();
    let mut decoded_all = false;
    loop {
        while !decoded_all && in_flight.len() < sender.concurrency() {
            match feed.next_chunk(config.bulk_max_docs, load.body_budget(config.bulk_max_bytes)) {
                Some(chunk) => {
                    // Below one request in flight, a pause after an answer before the next request (none before
                    // the invocation's first, nor once the stage holds: the chunk is not sent).
                    if config.adaptive_concurrency && in_flight.is_empty() && !answered.is_empty() {
                        sender.pause().await;
                    }
                    in_flight.push(sender.send_chunk(chunk))
                }
                None => decoded_all = true,
            }
        }
        match in_flight.next().await {
            Some(chunk) => answered.push(chunk),
            None => break,
        }
    }
    answered.sort_unstable_by_key(|chunk| chunk.first);

    let decoded = feed.next;
    drop(feed);
    let mut documents = Vec::with_capacity(decoded);
    let mut stats = IndexingStats::default();
    let mut maybe_too_large = Vec::new();
    for chunk in answered {
        maybe_too_large
            .extend(chunk.maybe_too_large.iter().map(|(position, bytes)| (position + documents.len(), *bytes)));
        documents.extend(chunk.documents);
        stats.add(&chunk.stats);
    }
    judge_maybe_too_large(&mut documents, &maybe_too_large, stats.answered_normally, load.known_good());
    stats.concurrency = sender.concurrency();
    stats.body_limit = load.body_limit();
    stats.elapsed = started.elapsed();
    (documents, stats)
}

/// Documents that lost their connection while being sent alone, larger than any body known to get through: too
/// large for the way to the cluster when it answered other requests of this invocation (rejected, with the limit
/// named), otherwise unknown (back to Kinesis, as the cluster may have been away).
fn judge_maybe_too_large(
    documents: &mut [IndexedDocument],
    maybe_too_large: &[(usize, usize)],
    cluster_answered: bool,
    known_good: usize,
) {
    for &(position, bytes) in maybe_too_large {
        let document = &mut documents[position];
        if cluster_answered && bytes > known_good {
            let reason = format!(
                "a request holding this document alone ({bytes} bytes) lost its connection while being sent, as a \
                 proxy or engine does with a body over its limit (nginx's client_max_body_size, Quickwit's \
                 max_content_length), while the cluster answered other requests; the largest body known to get \
                 through is {known_good} bytes"
            );
            document.outcome = DocOutcome::Failed(Failure::ours(Cause::Document, "request_too_large", reason));
        } else {
            document.document.source = Vec::new();
            document.document.id = None;
        }
    }
}

/// Cuts decoded documents into chunks of at most `max_docs` documents and `max_bytes` of body (a larger document
/// travels alone), decoding records (`decode_next`: the next record's documents into the queue, false when there
/// are no more) only as the next chunk needs them.
struct ChunkFeed<D> {
    decode_next: D,
    /// Documents decoded but not yet in a chunk (the rest of the last record decoded).
    pending: VecDeque<Document>,
    /// The batch position of `pending`'s first document.
    next: usize,
}

impl<D: FnMut(&mut VecDeque<Document>) -> bool> ChunkFeed<D> {
    fn new(decode_next: D) -> ChunkFeed<D> {
        ChunkFeed { decode_next, pending: VecDeque::new(), next: 0 }
    }

    fn next_chunk(&mut self, max_docs: usize, max_bytes: usize) -> Option<Chunk> {
        let mut documents = Vec::new();
        let mut bytes = 0;
        while documents.len() < max_docs && bytes < max_bytes {
            let Some(document) = self.pending.front() else {
                if (self.decode_next)(&mut self.pending) {
                    continue;
                }
                break;
            };
            let size = bulk::entry_size(document);
            if !documents.is_empty() && bytes + size > max_bytes {
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

/// Consecutive documents of the batch sent in one request (or in parts after a size refusal), owned while in flight.
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
    /// Documents (by position in the chunk, with their body size) that lost their connection while being sent
    /// alone: judged once the whole batch is answered (`judge_maybe_too_large`).
    maybe_too_large: Vec<(usize, usize)>,
    /// What the chunk's last request says of the cluster (for a probe).
    verdict: Verdict,
}

/// What one request says of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Normal,
    /// Its body may have been refused for its size: nothing can be said of the cluster.
    MaybeTooLarge,
    /// The cluster did not answer it normally, for this cause.
    Failed(Cause),
}

/// What sending one batch's chunks shares: the client, the deadline, what the instance learned of the load, and
/// whether the cluster said to hold off.
struct Sender<'a> {
    client: &'a Elasticsearch,
    config: &'a Config,
    deadline: Instant,
    /// No request starts with less than this left (the invocation's margin, see `handler`).
    margin: Duration,
    load: &'a Load,
    shared: Mutex<Held>,
}

/// What the chunks of one invocation tell each other.
#[derive(Debug, Default)]
struct Held {
    /// Set by the first request that finds the cluster down, refusing or saturated, to its cause: later chunks are
    /// not sent.
    hold: Option<Cause>,
    /// Documents sent alone that lost their connection since the cluster last answered: a second one says the
    /// cluster is away rather than the documents too large.
    lost_alone: usize,
    /// Requests saturated in a row, in the order their answers came: the rest is held at
    /// `SATURATED_IN_A_ROW_TO_HOLD`.
    saturated_in_a_row: usize,
}

impl Sender<'_> {
    /// Requests allowed in flight now.
    fn concurrency(&self) -> usize {
        match self.config.adaptive_concurrency {
            true => self.load.concurrency(self.config.bulk_concurrency),
            false => self.config.bulk_concurrency,
        }
    }

    /// Waits as long as `Load::pause` says, within the deadline's margin, unless the stage holds.
    async fn pause(&self) {
        if self.shared().hold.is_some() {
            return;
        }
        let left = self.deadline.saturating_duration_since(Instant::now()).saturating_sub(self.margin);
        tokio::time::sleep(self.load.pause(self.config.bulk_concurrency).min(left)).await;
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Held> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn hold(&self, cause: Cause) {
        self.shared().hold.get_or_insert(cause);
    }

    async fn send_chunk(&self, chunk: Chunk) -> AnsweredChunk {
        let Chunk { first, documents } = chunk;
        let mut outcomes: Vec<Option<DocOutcome>> = vec![None; documents.len()];
        let mut stats = IndexingStats::default();
        let mut maybe_too_large = Vec::new();
        let mut verdict = Verdict::Normal;
        // A size refusal replaces a request by its two halves, first half first.
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
            let sent_at = Instant::now();
            let reply = self.client.bulk(body, timeout).await;
            let took = sent_at.elapsed();
            stats.unauthorized |= matches!(reply, BulkReply::Answered { status: 401, .. });
            if matches!(reply, BulkReply::Answered { status, .. } if status != 413) {
                self.load.body_answered(plain);
            }
            let sent = Sent { documents: part.len(), may_be_too_large: self.load.may_be_too_large(plain) };
            let mut decision = bulk::decide(&reply, &sent);
            let saturated = decision.saturated();
            if self.config.adaptive_concurrency {
                // A request refused whole (a 429 at the top) holds at once, as with fixed concurrency, but keeps the
                // rest in the stream; a request most of whose items were refused holds only after others in a row.
                let refused_whole =
                    matches!(decision, ChunkDecision::PerDocument { hold: Some(Cause::ClusterBusy), .. });
                let mut shared = self.shared();
                shared.saturated_in_a_row = if saturated { shared.saturated_in_a_row + 1 } else { 0 };
                if refused_whole || shared.saturated_in_a_row >= SATURATED_IN_A_ROW_TO_HOLD {
                    decision = decision.holding_after_saturation();
                }
            }
            let normal = decision.answered_normally();
            if self.config.adaptive_concurrency {
                let signal = match (saturated, normal) {
                    (true, _) => Signal::Saturated,
                    (false, true) => Signal::Clean,
                    (false, false) => Signal::Neither,
                };
                self.load.answered(signal, self.config.bulk_concurrency, took);
            }
            if matches!(reply, BulkReply::Lost { while_sending: true, .. }) && !sent.may_be_too_large {
                self.load.body_lost(plain);
            }
            verdict = match &decision {
                _ if normal => Verdict::Normal,
                ChunkDecision::Split { .. } => Verdict::MaybeTooLarge,
                ChunkDecision::PerDocument { outcomes, hold } => Verdict::Failed(hold.unwrap_or_else(|| {
                    let pacing =
                        outcomes.iter().filter_map(|outcome| outcome.failure()).find(|f| f.cause.paces().is_some());
                    pacing.map_or(Cause::Unknown, |failure| failure.cause)
                })),
            };
            if normal {
                stats.answered_normally = true;
                self.shared().lost_alone = 0;
            }
            match decision {
                ChunkDecision::Split { .. } if part.len() > 1 => {
                    self.load.body_refused(plain);
                    let middle = part.start + part.len() / 2;
                    pending.push(middle..part.end);
                    pending.push(part.start..middle);
                }
                ChunkDecision::Split { unread: false } => fill(
                    &mut outcomes,
                    DocOutcome::Failed(Failure {
                        cause: Cause::Document,
                        status: Some(413),
                        error_type: "request_too_large".into(),
                        reason: format!(
                            "the cluster refuses a request holding this document alone ({plain} bytes; \
                             http.max_content_length, or a proxy's limit)"
                        ),
                    }),
                ),
                ChunkDecision::Split { unread: true } => {
                    let reason = "the connection was lost while this document was being sent alone";
                    fill(&mut outcomes, DocOutcome::Failed(Failure::ours(Cause::Unknown, "connection_error", reason)));
                    maybe_too_large.push((part.start, plain));
                    let mut shared = self.shared();
                    shared.lost_alone += 1;
                    if shared.lost_alone >= 2 {
                        // Two documents alone lost in a row, nothing answered between: the cluster is away.
                        shared.hold.get_or_insert(Cause::Unknown);
                    }
                }
                ChunkDecision::PerDocument { outcomes: part_outcomes, hold } => {
                    if let Some(cause) = hold {
                        self.hold(cause);
                    }
                    for (slot, outcome) in outcomes[part.start..].iter_mut().zip(part_outcomes) {
                        *slot = Some(outcome);
                    }
                }
            }
        }
        let kept: std::collections::HashSet<usize> = maybe_too_large.iter().map(|(position, _)| *position).collect();
        let documents = documents
            .into_iter()
            .zip(outcomes)
            .enumerate()
            .map(|(position, (mut document, outcome))| {
                let outcome = outcome.expect("every part is filled");
                // A document that may be too large keeps its source until judged: its rejection quotes it.
                if !outcome.needs_source() && !kept.contains(&position) {
                    document.source = Vec::new();
                    document.id = None;
                }
                IndexedDocument { document, outcome }
            })
            .collect();
        AnsweredChunk { first, documents, stats, maybe_too_large, verdict }
    }

    /// The outcome for documents not sent because an earlier answer stopped the stage.
    fn held(&self) -> Option<DocOutcome> {
        let cause = self.shared().hold?;
        let failure = match cause {
            Cause::ClusterBusy => Failure::ours(
                cause,
                "not_sent_cluster_throttling",
                "the cluster answered an earlier request of this batch with 429; not sent, to spare it",
            ),
            Cause::ClusterSaturated => Failure::ours(
                cause,
                "not_sent_cluster_saturated",
                "the cluster said \"later\" to an earlier request of this batch (refused whole, several in a row, or \
                 a probe); not sent, to spare it, and kept in the stream until it takes more",
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
        let mut feed = ChunkFeed::new(decode_next);
        std::iter::from_fn(|| feed.next_chunk(max_docs, max_bytes).map(|c| (c.first, c.documents.len(), decoded.get())))
            .collect()
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
