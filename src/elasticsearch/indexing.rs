//! The indexing stage: sends a batch's documents to the cluster in chunks as they are decoded, with the concurrency
//! `adapt::Load` allows, within the invocation's deadline, holding when the cluster is down or saturated, splitting
//! what is refused for its size; each document comes back with its outcome.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use super::client::Elasticsearch;
use crate::adapt::{Load, SATURATED_IN_A_ROW_TO_HOLD, Signal};
use crate::bulk::{self, BulkReply, ChunkDecision, DocOutcome, IndexedDocument, Sent};
use crate::cause::{Cause, Failure};
use crate::chunk::ChunkLimit;
use crate::config::Config;
use crate::record::{Batch, BatchDecoder, Document, Record};

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
    /// Documents refused for their mapping once reshaped, then written in their plain form (`unstructured`).
    pub unstructured: usize,
}

impl IndexingStats {
    pub(super) fn add(&mut self, other: &IndexingStats) {
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
        if let Verdict::Failed(cause) = verdict {
            // The rest stays in the stream: asked for later (items, or the whole request, which may have held as
            // busy already), it is neither sent nor parked unsent.
            sender.shared().hold = Some(cause.held_in_the_stream());
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
    answered.sort_unstable_by_key(|chunk| chunk.order);
    drop(feed);
    let mut documents = Vec::with_capacity(answered.iter().map(|chunk| chunk.documents.len()).sum());
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
            document.outcome = DocOutcome::Failed(Failure::too_large_for_the_way(bytes, known_good));
        } else {
            document.document.source = Vec::new();
            document.document.id = None;
        }
    }
}

/// Cuts decoded documents into chunks (`ChunkLimit`: at most `max_docs` documents and `max_bytes` of body, a
/// larger document alone), decoding records (`decode_next`: the next record's documents into the queue, false when
/// there are no more) only as the next chunk needs them. It counts chunks, not documents: the decoder is what
/// knows each document's batch position.
struct ChunkFeed<D> {
    decode_next: D,
    /// Documents decoded but not yet in a chunk (the rest of the last record decoded).
    pending: VecDeque<Document>,
    /// Chunks cut so far.
    cut: usize,
}

impl<D: FnMut(&mut VecDeque<Document>) -> bool> ChunkFeed<D> {
    fn new(decode_next: D) -> ChunkFeed<D> {
        ChunkFeed { decode_next, pending: VecDeque::new(), cut: 0 }
    }

    fn next_chunk(&mut self, max_docs: usize, max_bytes: usize) -> Option<Chunk> {
        let mut documents = Vec::new();
        let mut limit = ChunkLimit::new(max_docs, max_bytes);
        while !limit.full() {
            let Some(document) = self.pending.front() else {
                if (self.decode_next)(&mut self.pending) {
                    continue;
                }
                break;
            };
            if !limit.admit(bulk::entry_size(document)) {
                break;
            }
            documents.extend(self.pending.pop_front());
        }
        if documents.is_empty() {
            return None;
        }
        self.cut += 1;
        Some(Chunk { order: self.cut, documents })
    }
}

/// Consecutive documents of the batch sent in one request (or in parts after a size refusal), owned while in flight.
struct Chunk {
    /// The chunk's place among the batch's: chunks hold consecutive documents, so answered chunks put back in this
    /// order give the documents in batch order.
    order: usize,
    documents: Vec<Document>,
}

/// A chunk after its answer: each document with its outcome, and only the sources routing needs.
struct AnsweredChunk {
    order: usize,
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
        let Chunk { order, documents } = chunk;
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
                fill(&mut outcomes, DocOutcome::Failed(Failure::deadline(self.margin)));
                continue;
            }
            let timeout = self.config.es_timeout.min(left.saturating_sub(self.margin));
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
            verdict = match (&decision, decision.pacing_cause()) {
                (ChunkDecision::Split { .. }, _) => Verdict::MaybeTooLarge,
                (ChunkDecision::PerDocument { .. }, None) => Verdict::Normal,
                (ChunkDecision::PerDocument { .. }, Some(cause)) => Verdict::Failed(cause),
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
                ChunkDecision::Split { unread: false } => {
                    fill(&mut outcomes, DocOutcome::Failed(Failure::too_large_alone(plain)))
                }
                ChunkDecision::Split { unread: true } => {
                    let lost = Failure::lost_alone();
                    let cause = lost.cause;
                    fill(&mut outcomes, DocOutcome::Failed(lost));
                    maybe_too_large.push((part.start, plain));
                    let mut shared = self.shared();
                    shared.lost_alone += 1;
                    if shared.lost_alone >= 2 {
                        // Two documents alone lost in a row, nothing answered between: the cluster is away, and
                        // what is not sent is held for the same cause.
                        shared.hold.get_or_insert(cause);
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
        AnsweredChunk { order, documents, stats, maybe_too_large, verdict }
    }

    /// The outcome for documents not sent because an earlier answer stopped the stage.
    fn held(&self) -> Option<DocOutcome> {
        Some(DocOutcome::Failed(Failure::held(self.shared().hold?)))
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
        let mut next = 0;
        std::iter::from_fn(|| feed.next_chunk(max_docs, max_bytes))
            .enumerate()
            .map(|(i, chunk)| {
                assert_eq!(chunk.order, i + 1, "chunks are cut in order");
                next += chunk.documents.len();
                (next - chunk.documents.len(), chunk.documents.len(), decoded.get())
            })
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
