//! The plain form: a document reshaped on the way (a merged or nested message, added fields) that the cluster
//! refused for its mapping is sent once more as it came, so that a mapping conflict costs the structure, never the
//! document.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::client::Elasticsearch;
use super::indexing::{IndexingStats, index_documents};
use crate::cause::{DocOutcome, IndexedDocument};
use crate::config::Config;
use crate::event::KinesisEventIn;
use crate::flow::Stage;
use crate::record::{self, Batch, Decoded, Document, Record, Rejection};

/// Sends, once, the plain form of every document of `batch` that the cluster refused for its mapping
/// (`Failure::refused_for_its_mapping`) and that preprocessing had reshaped (its plain form differs from what was
/// sent). Each such document takes the plain form's outcome and source: written, it counts in
/// `stats.unstructured`; refused again, it is rejected as it came; asked for later, it is parked or goes back in its
/// plain form. A document that was not reshaped keeps its refusal.
///
/// Not a retry: a refusal for its mapping is a 400 the same document always meets, never a 429; the plain form is
/// another document, sent once in the invocation through the same flow (chunks, holds, the budget), and never
/// reshaped, so never sent a third time.
pub async fn index_plain_forms(
    client: &Elasticsearch,
    event: &KinesisEventIn,
    batch: &mut Batch<Record, IndexedDocument>,
    config: &Config,
    stage: &Stage<'_>,
    stats: &mut IndexingStats,
) {
    let (positions, plain) = plain_forms_of_refused(event, batch, config);
    if plain.is_empty() {
        return;
    }
    let refusals: Vec<_> =
        positions.iter().filter_map(|&doc| batch.documents[doc].outcome.failure().cloned()).collect();
    let started = Instant::now();
    let (answered, plain_stats) = index_documents(client, plain, config, stage).await;
    stats.add(&plain_stats);
    stats.elapsed += started.elapsed();
    let mut written = 0;
    for (&doc, answer) in positions.iter().zip(answered) {
        written += usize::from(matches!(answer.outcome, DocOutcome::Indexed | DocOutcome::AlreadyThere));
        batch.documents[doc] = answer;
    }
    stats.unstructured += written;
    let fields: BTreeSet<&str> = refusals.iter().filter_map(|failure| failure.mapping_field()).collect();
    let first = &refusals[0];
    tracing::warn!(
        documents = refusals.len(),
        indexed_plain = written,
        fields = %fields.into_iter().collect::<Vec<_>>().join(","),
        status = first.status.unwrap_or_default(),
        error_type = %first.error_type,
        reason = %first.reason,
        "Documents refused for their mapping as preprocessing shaped them were sent as they came (their message \
         as text, nothing added): a field of theirs has another type in the index; documents_unstructured counts \
         those indexed so"
    );
}

/// The batch positions of the documents refused for their mapping whose plain form differs from what was sent,
/// and their plain forms at the same `_index` and `_id`. A record with a document left out for its `_id`
/// (`ES_DOC_ID=field:…` and no such field) has no plain forms: its documents' places in the two forms may differ.
fn plain_forms_of_refused(
    event: &KinesisEventIn,
    batch: &Batch<Record, IndexedDocument>,
    config: &Config,
) -> (Vec<usize>, Vec<Document>) {
    let mut positions = Vec::new();
    let mut plain = Vec::new();
    // A record's plain forms, decoded once for all of its refused documents, with a configuration made once.
    let mut decoded: Option<(usize, Vec<Vec<u8>>)> = None;
    let mut plain_config = None;
    for (doc, IndexedDocument { document, outcome }) in batch.documents.iter().enumerate() {
        if !outcome.failure().is_some_and(|failure| failure.refused_for_its_mapping()) {
            continue;
        }
        let record = document.record;
        let lacks_an_id = match &batch.records[record].decoded {
            Decoded::Documents { rejected_parts, .. } => {
                rejected_parts.iter().any(|part| matches!(part.rejection, Rejection::NoDocumentId(_)))
            }
            Decoded::Skipped(_) | Decoded::Rejected { .. } => true,
        };
        if lacks_an_id {
            continue;
        }
        if decoded.as_ref().is_none_or(|(of, _)| *of != record) {
            let plain = plain_config.get_or_insert_with(|| record::plain_config(config));
            decoded = Some((record, record::plain_sources(event, plain, record)));
        }
        let (_, sources) = decoded.as_ref().expect("decoded above");
        let first = batch.records[record].documents().start;
        match sources.get(doc - first) {
            Some(source) if *source != document.source => {
                positions.push(doc);
                let (id, index) = (document.id.clone(), document.index.clone());
                plain.push(Document { record, id, index, source: source.clone() });
            }
            _ => {}
        }
    }
    (positions, plain)
}
