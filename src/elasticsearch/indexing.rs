//! The indexing stage: sends a batch's documents to the cluster in chunks as they are decoded, as the `flow`
//! stage allows (requests in flight, body size, pauses, holds, the probe), and splits what is refused for its size;
//! each document comes back with its outcome.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use super::client::Elasticsearch;
use crate::bulk::{self, BulkReply};
use crate::cause::Said;
use crate::cause::{DocOutcome, IndexedDocument};
use crate::chunk::ChunkLimit;
use crate::config::Config;
use crate::flow::{Next, Stage, Ticket};
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
/// How many requests are in flight, how large they are, the pauses between them, and when the rest of the batch
/// stays in the stream are the `stage`'s to say (`flow`). At most one request per document, but for a request
/// refused for its size (resent in halves) and for one whose connection was lost while it was being sent (resent
/// once, as the connection may have been one the server had closed).
pub async fn index_batch(
    client: &Elasticsearch,
    mut decoder: BatchDecoder<'_>,
    config: &Config,
    stage: &Stage<'_>,
) -> (Batch<Record, IndexedDocument>, IndexingStats) {
    let feed = ChunkFeed::new(|pending: &mut VecDeque<Document>| decoder.decode_next_into(pending));
    let (documents, stats) = send_all(client, feed, config, stage).await;
    (decoder.finish(documents), stats)
}

/// Sends documents made elsewhere (Firehose's backup, replayed; plain forms) as `index_batch` sends a batch's: the
/// same chunks, flow and judgement; each document with its outcome, in order.
pub async fn index_documents(
    client: &Elasticsearch,
    documents: Vec<Document>,
    config: &Config,
    stage: &Stage<'_>,
) -> (Vec<IndexedDocument>, IndexingStats) {
    let mut documents = Some(documents);
    let feed = ChunkFeed::new(move |pending: &mut VecDeque<Document>| match documents.take() {
        Some(all) => {
            pending.extend(all);
            true
        }
        None => false,
    });
    send_all(client, feed, config, stage).await
}

/// The indexing stage proper: sends the chunks `feed` cuts, and returns every document it handed out with its
/// outcome, in order.
async fn send_all<D: FnMut(&mut VecDeque<Document>) -> bool>(
    client: &Elasticsearch,
    mut feed: ChunkFeed<D>,
    config: &Config,
    stage: &Stage<'_>,
) -> (Vec<IndexedDocument>, IndexingStats) {
    let started = Instant::now();
    let sender = Sender { client, stage };
    let mut answered = Vec::new();
    if stage.probing() {
        answered = sender.probe(&mut feed).await;
    }
    let mut in_flight = FuturesUnordered::new();
    let mut decoded_all = false;
    loop {
        while !decoded_all && in_flight.len() < stage.concurrency() {
            match feed.next_chunk(config.bulk.max_docs, stage.chunk_bytes()) {
                Some(chunk) => {
                    // Below one request in flight, the flow's pause after an answer before the next request.
                    if in_flight.is_empty() {
                        stage.pause().await;
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
    drop(feed);
    let (documents, mut stats) = in_batch_order(answered, stage);
    stats.answered_normally = stage.answered_normally();
    (stats.concurrency, stats.body_limit) = stage.learned();
    stats.elapsed = started.elapsed();
    (documents, stats)
}

/// The answered chunks' documents in batch order, those that lost their connection alone judged now that the batch
/// is answered (`Stage::judge_lost_alone`), and the chunks' stats summed.
fn in_batch_order(mut answered: Vec<AnsweredChunk>, stage: &Stage<'_>) -> (Vec<IndexedDocument>, IndexingStats) {
    answered.sort_unstable_by_key(|chunk| chunk.order);
    let mut documents = Vec::with_capacity(answered.iter().map(|chunk| chunk.documents.len()).sum());
    let mut stats = IndexingStats::default();
    for chunk in answered {
        let offset = documents.len();
        documents.extend(chunk.documents);
        stats.add(&chunk.stats);
        for (position, bytes) in chunk.lost_alone {
            let document = &mut documents[offset + position];
            match stage.judge_lost_alone(bytes) {
                Some(too_large) => document.outcome = DocOutcome::Failed(too_large),
                None => {
                    document.document.source = Vec::new();
                    document.document.id = None;
                }
            }
        }
    }
    (documents, stats)
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
    /// alone: judged once the whole batch is answered.
    lost_alone: Vec<(usize, usize)>,
}

/// Sends one batch's chunks to the cluster, as its flow stage allows.
struct Sender<'a> {
    client: &'a Elasticsearch,
    stage: &'a Stage<'a>,
}

impl Sender<'_> {
    /// The probe: one document alone, then the next alone while each lost its connection as a body too large for
    /// the way may (that says nothing of the cluster). Not answered normally, the stage holds the rest.
    async fn probe<D: FnMut(&mut VecDeque<Document>) -> bool>(&self, feed: &mut ChunkFeed<D>) -> Vec<AnsweredChunk> {
        let mut answered = Vec::new();
        while let Some(chunk) = feed.next_chunk(1, usize::MAX) {
            let chunk = self.send_chunk(chunk).await;
            let lost = !chunk.lost_alone.is_empty();
            answered.push(chunk);
            if !lost {
                break;
            }
        }
        answered
    }

    /// Sends a chunk, in halves where it is refused for its size, and puts each document with its outcome.
    async fn send_chunk(&self, chunk: Chunk) -> AnsweredChunk {
        let Chunk { order, documents } = chunk;
        let mut outcomes: Vec<Option<DocOutcome>> = vec![None; documents.len()];
        let mut stats = IndexingStats::default();
        let mut lost_alone = Vec::new();
        // A size refusal replaces a request by its two halves, first half first.
        let whole = 0..documents.len();
        let mut pending = vec![whole];
        while let Some(part) = pending.pop() {
            // A part of a refused request still larger than what the way is now known to take is halved unsent.
            let larger_than_taken =
                documents[part.clone()].iter().map(bulk::entry_size).sum::<usize>() > self.stage.chunk_bytes();
            let next = match part.len() > 1 && larger_than_taken {
                true => Next::Split,
                false => self.send_part(&documents[part.clone()], &mut stats).await,
            };
            let part_outcomes = match next {
                Next::Outcomes(part_outcomes) => part_outcomes,
                Next::Split => {
                    let middle = part.start + part.len() / 2;
                    pending.push(middle..part.end);
                    pending.push(part.start..middle);
                    continue;
                }
                Next::LostAlone { outcome, bytes } => {
                    lost_alone.push((part.start, bytes));
                    vec![outcome]
                }
            };
            for (slot, outcome) in outcomes[part.start..].iter_mut().zip(part_outcomes) {
                *slot = Some(outcome);
            }
        }
        let documents = with_outcomes(documents, outcomes, &lost_alone);
        AnsweredChunk { order, documents, stats, lost_alone }
    }

    /// Sends one part when the stage lets it go; otherwise its documents take the reason it does not.
    async fn send_part(&self, documents: &[Document], stats: &mut IndexingStats) -> Next {
        match self.stage.before_sending() {
            Ok(ticket) => self.send(ticket, documents, stats).await,
            Err(not_sent) => Next::Outcomes(vec![DocOutcome::Failed(not_sent); documents.len()]),
        }
    }

    /// Sends one request and has the stage judge its reply. A connection lost while the body was being sent is
    /// tried once more first when every document carries an `_id`: a pooled connection the server had closed (after
    /// a 413, or idle) fails the same way as a body refused unread or a cluster away, and the ids make a second
    /// write answer 409.
    async fn send(&self, ticket: Ticket, documents: &[Document], stats: &mut IndexingStats) -> Next {
        let (body, plain) = self.client.wire_body(documents);
        let attempt = |stats: &mut IndexingStats| {
            stats.body_bytes += plain;
            stats.requests += 1;
            stats.bytes_sent += body.len();
            body.clone()
        };
        let mut reply = self.client.bulk(attempt(stats), ticket.timeout).await;
        let lost_while_sending = matches!(reply, BulkReply::Lost { while_sending: true, .. });
        let resend = lost_while_sending && documents.iter().all(|document| document.id.is_some());
        if let Some(timeout) = self.stage.resend_timeout(&ticket).filter(|_| resend) {
            reply = self.client.bulk(attempt(stats), timeout).await;
        }
        stats.unauthorized |=
            matches!(reply, BulkReply::Answered { status, .. } if Said::of(status) == Said::Unauthenticated);
        self.stage.judge(ticket, &reply, documents.len(), plain)
    }
}

/// A chunk's documents with their outcomes; sources and `_id`s released where routing no longer needs them (a
/// document lost alone keeps its own until judged: its rejection quotes it).
fn with_outcomes(
    documents: Vec<Document>,
    outcomes: Vec<Option<DocOutcome>>,
    lost_alone: &[(usize, usize)],
) -> Vec<IndexedDocument> {
    documents
        .into_iter()
        .zip(outcomes)
        .enumerate()
        .map(|(position, (mut document, outcome))| {
            let outcome = outcome.expect("every part is filled");
            if !outcome.needs_source() && !lost_alone.iter().any(|(lost, _)| *lost == position) {
                document.source = Vec::new();
                document.id = None;
            }
            IndexedDocument { document, outcome }
        })
        .collect()
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
