//! One invocation, top to bottom: decode → bulk-index → route → park in Firehose → log → respond.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lambda_events::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::budget::{Budget, MIN_REQUEST_TIME};
use crate::cause::Outcome;
use crate::cause::{Cause, Failure, Fix, Pace};
use crate::cause::{DocOutcome, IndexedDocument};
use crate::config::{Config, EsAuth};
use crate::dead_letter::{self, DeadLetter};
use crate::elasticsearch::{self, Elasticsearch};
use crate::error::Error;
use crate::event::KinesisEventIn;
use crate::firehose::{self, Firehose};
use crate::flow::Flow;
use crate::record::{self, Batch, Decoded, Provenance, Record};
use crate::route::{self, FirehoseAnswer, SettledRecord};
use crate::secret::SecretCredentials;

/// Everything an invocation needs, built once at cold start and passed in by reference.
#[derive(Debug, Clone)]
pub struct Deps {
    pub config: Config,
    pub elasticsearch: Elasticsearch,
    pub firehose: Option<Firehose>,
    /// Where documents the cluster rejects for their own fault are kept (`DEAD_LETTER_BUCKET`).
    pub dead_letter: Option<DeadLetter>,
    /// Where the cluster's credentials live, with `ES_SECRET_ARN`.
    pub secret: Option<SecretCredentials>,
    /// What one invocation leaves for the next ones of the same process.
    pub warm: Arc<WarmState>,
}

/// State kept across the warm invocations of one process.
#[derive(Debug)]
pub struct WarmState {
    /// Whether a deadline too short for any request was reported at ERROR already (once per cold start).
    short_deadline_reported: AtomicBool,
    /// What the instance learned of the cluster's load: requests in flight, body size, pacing.
    pub flow: Flow,
}

impl WarmState {
    /// Nothing learned yet, for `config`.
    pub fn new(config: &Config) -> WarmState {
        WarmState { short_deadline_reported: AtomicBool::new(false), flow: Flow::new(config) }
    }
}

impl Deps {
    /// Builds the clients for `config`: the Elasticsearch transport, and from the AWS SDK's standard configuration
    /// (region, credentials chain, `AWS_ENDPOINT_URL_*`) a Firehose client when a stream is named, an S3 client when
    /// a dead letter is, and a Secrets Manager client for `ES_SECRET_ARN`.
    pub async fn connect(config: Config) -> Result<Deps, Error> {
        let needs_aws = config.firehose.stream.is_some()
            || config.dead_letter.is_some()
            || matches!(config.cluster.auth, EsAuth::SigV4 { .. } | EsAuth::Secret { .. });
        let shared = match needs_aws {
            true => Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await),
            false => None,
        };
        let elasticsearch = Elasticsearch::new(&config, shared.as_ref().and_then(|s| s.credentials_provider()))?;
        let firehose = match (&config.firehose.stream, &shared) {
            (Some(stream), Some(shared)) => {
                // Retries are ours (only failed entries, within the deadline); the SDK's would resend whole calls.
                let firehose_config = aws_sdk_firehose::config::Builder::from(shared)
                    .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled())
                    .build();
                let client = aws_sdk_firehose::Client::from_conf(firehose_config);
                let endpoint = firehose::endpoint_of(&client);
                Some(Firehose::new(client, stream.clone(), config.firehose.max_attempts, endpoint))
            }
            _ => None,
        };
        let dead_letter = match (&config.dead_letter, &shared) {
            (Some(place), Some(shared)) => Some(DeadLetter::new(dead_letter::s3_client(shared), place.clone())),
            _ => None,
        };
        let secret = match (&config.cluster.auth, &shared) {
            (EsAuth::Secret { arn }, Some(shared)) => {
                let secret = SecretCredentials::new(aws_sdk_secretsmanager::Client::new(shared), arn.clone());
                secret.apply(&elasticsearch).await?;
                Some(secret)
            }
            _ => None,
        };
        let warm = Arc::new(WarmState::new(&config));
        Ok(Deps { config, elasticsearch, firehose, dead_letter, secret, warm })
    }
}

/// Handles one Kinesis batch. Never fails: every record ends in exactly one outcome of the report.
pub async fn handle(event: &KinesisEventIn, deadline: Instant, deps: &Deps) -> Report {
    let started = Instant::now();
    let config = &deps.config;
    let (budget, too_short) = Budget::for_invocation(deadline, config.bulk.deadline_margin);
    if too_short && !deps.warm.short_deadline_reported.swap(true, Ordering::Relaxed) {
        tracing::error!(
            allowed_ms = deadline.saturating_duration_since(started).as_millis() as u64,
            deadline_margin_ms = config.bulk.deadline_margin.as_millis() as u64,
            min_request_ms = MIN_REQUEST_TIME.as_millis() as u64,
            "The invocation's time is too short for any request: every record goes back to Kinesis. Raise the \
             function's timeout (a few seconds at least); reported once per cold start"
        );
    }
    let decoder = record::BatchDecoder::new(event, config);
    let flow = &deps.warm.flow;
    let stage = flow.stage(budget, true);
    let (mut batch, mut indexing) = elasticsearch::index_batch(&deps.elasticsearch, decoder, config, &stage).await;
    let plain_stage = flow.stage(budget, false);
    elasticsearch::index_plain_forms(&deps.elasticsearch, event, &mut batch, config, &plain_stage, &mut indexing).await;
    // When the cluster's answers were in: a canary's age is told to then, not to after Firehose and pacing.
    let indexed_at = Utc::now();
    if indexing.answered_normally {
        flow.cluster_answered();
    }
    if let (true, Some(secret)) = (indexing.unauthorized, &deps.secret) {
        reread_secret(secret, budget, deps).await;
    }
    let mut plan = route::plan(&batch, deps.firehose.is_some());
    let kept = keep_rejected(&batch, &mut plan, budget, deps).await;
    let delivery = park_in_firehose(&batch, &plan.to_park, budget, deps).await;
    let firehose_answer = match deps.firehose {
        None => FirehoseAnswer::NotConfigured,
        Some(_) => FirehoseAnswer::Answered { refused: &delivery.refused },
    };
    let batch = route::settle(batch, plan, firehose_answer);
    log_failures(&batch, config.log_excerpt_bytes, kept.as_ref().map(|(address, _)| address.as_str()));
    let pace_reason = crate::flow::pace_reason(&batch);
    let paced = flow.pace(pace_reason, budget).await;
    let mut report = Report::new(batch, indexing, delivery.stats, indexed_at, started.elapsed());
    report.summary.documents_dead_lettered = kept.map_or(0, |(_, documents)| documents);
    report.summary.probe = stage.probing();
    report.summary.paced = paced;
    report.summary.paced_because = pace_reason.filter(|_| !paced.is_zero());
    report.summary.warn_if_saturated();
    report.summary.log();
    report
}

/// After a 401, reads the secret again so that the redelivery of the records going back finds rotated credentials;
/// within half of what is left before the margin, so that a slow Secrets Manager (the SDK's retries included) never
/// outlasts the invocation nor takes all the time parking in Firehose needs. Not read in time, the next 401 tries
/// again.
async fn reread_secret(secret: &SecretCredentials, budget: Budget, deps: &Deps) {
    let allowed = budget.left() / 2;
    match tokio::time::timeout(allowed, secret.apply(&deps.elasticsearch)).await {
        Ok(Ok(())) => tracing::info!("Credentials re-read from Secrets Manager after a 401"),
        Ok(Err(error)) => tracing::error!(%error, "Credentials could not be re-read after a 401"),
        Err(_) => tracing::error!(
            waited_ms = allowed.as_millis() as u64,
            "Credentials could not be re-read after a 401: Secrets Manager did not answer within the invocation's \
             time; the next 401 tries again"
        ),
    }
}

/// Offers Firehose the documents routing planned to park there; what it refused is in the delivery.
async fn park_in_firehose(
    batch: &Batch<Record, IndexedDocument>,
    documents: &[usize],
    budget: Budget,
    deps: &Deps,
) -> firehose::Delivery {
    let Some(firehose) = &deps.firehose else {
        return firehose::Delivery::default();
    };
    if documents.is_empty() {
        return firehose::Delivery::default();
    }
    let target_field = &deps.config.firehose.target_field;
    let entries =
        documents.iter().map(|&doc| firehose::entry(doc, &batch.documents[doc].document, target_field)).collect();
    firehose.put(entries, budget).await
}

/// Keeps the documents the cluster rejected for their own fault in the dead letter, when one is configured: those of
/// records routing plans to settle (rejected, or parked in Firehose); a record going back is judged again on its
/// redelivery. Before anything is parked, so that when S3 does not take them their records go back to Kinesis whole
/// (nothing of theirs parked), and no rejected document is lost (bounded, as every record, by the mapping's retry
/// policy). A record Firehose then refuses goes back after its documents were kept: its redelivery keeps them
/// again, which the replay, writing each `_id` once, takes in its stride. Returns where they were kept and how many.
async fn keep_rejected(
    batch: &Batch<Record, IndexedDocument>,
    plan: &mut route::Plan,
    budget: Budget,
    deps: &Deps,
) -> Option<(String, usize)> {
    let dead_letter = deps.dead_letter.as_ref()?;
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for (position, record) in batch.records.iter().enumerate() {
        if !matches!(plan.outcome(position), Outcome::Rejected | Outcome::ToFirehose) {
            continue;
        }
        let before = rejected.len();
        for IndexedDocument { document, outcome } in &batch.documents[record.documents()] {
            if let Some(failure) = outcome.failure().filter(|failure| failure.cause == Cause::Document) {
                rejected.push(dead_letter::Rejected { document, failure, provenance: &record.provenance });
            }
        }
        if rejected.len() > before {
            records.push(position);
        }
    }
    if rejected.is_empty() {
        return None;
    }
    let target_field = &deps.config.firehose.target_field;
    match dead_letter.keep(&rejected, target_field, budget).await {
        Ok(address) => Some((address, rejected.len())),
        Err(failure) => {
            plan.send_back(batch, &records, &failure);
            None
        }
    }
}

/// One ERROR line per rejected document or record, with everything needed to find and fix it; one line per
/// distinct reason for records going back to Kinesis: ERROR with what to fix when someone must act, else WARN.
fn log_failures(batch: &Batch<SettledRecord, IndexedDocument>, excerpt_bytes: usize, dead_letter: Option<&str>) {
    let mut back: BTreeMap<(Cause, &str, &str), (usize, &Provenance, &Failure)> = BTreeMap::new();
    for SettledRecord { record: Record { provenance, decoded }, fate } in &batch.records {
        let sequence_number = provenance.sequence_number.as_deref().unwrap_or("none");
        match (fate.outcome, decoded) {
            (Outcome::Rejected, Decoded::Rejected { rejection, excerpt }) => tracing::error!(
                shard_id = %provenance.shard_id,
                sequence_number,
                error_type = rejection.kind(),
                reason = %rejection,
                excerpt = %excerpt,
                "Record rejected: it cannot be decoded and will not be retried"
            ),
            (Outcome::Rejected | Outcome::ToFirehose, Decoded::Documents { range, rejected_parts }) => {
                for part in rejected_parts {
                    tracing::error!(
                        shard_id = %provenance.shard_id,
                        sequence_number,
                        part = %part.part,
                        error_type = part.rejection.kind(),
                        reason = %part.rejection,
                        excerpt = %part.excerpt,
                        "Record part rejected: it cannot be indexed and will not be retried"
                    );
                }
                for IndexedDocument { document, outcome } in &batch.documents[range.clone()] {
                    let Some(failure) = outcome.failure().filter(|f| f.cause == Cause::Document) else {
                        continue;
                    };
                    tracing::error!(
                        shard_id = %provenance.shard_id,
                        sequence_number,
                        doc_id = document.id.as_deref().unwrap_or("none"),
                        index = %document.index,
                        status = failure.status.unwrap_or_default(),
                        error_type = %failure.error_type,
                        reason = %failure.reason,
                        excerpt = %record::excerpt(&document.source, excerpt_bytes),
                        dead_letter = dead_letter.unwrap_or("none (DEAD_LETTER_BUCKET is not set)"),
                        "Document rejected by Elasticsearch: it will not be retried; dead_letter names the object that \
                         keeps it whole"
                    );
                }
            }
            (Outcome::BackToKinesis, _) => {
                let failure = fate.failure.as_ref().expect("back to Kinesis always says why");
                let key = (failure.cause, failure.error_type.as_str(), failure.reason.as_str());
                back.entry(key).or_insert((0, provenance, failure)).0 += 1;
            }
            _ => {}
        }
    }
    for (count, first, failure) in back.into_values() {
        let sequence_number = first.sequence_number.as_deref().unwrap_or("none");
        let (status, cause) = (failure.status.unwrap_or_default(), failure.cause.name());
        match failure.cause.fix() {
            // Whose refusal it is: the delivery stream's (missing, forbidden to us), or the cluster's.
            Some(Fix::DeadLetterBucket) => {
                tracing::error!(records = count, shard_id = %first.shard_id, first_sequence_number = sequence_number, cause, error_type = %failure.error_type, reason = %failure.reason, fix = Fix::DeadLetterBucket.hint(), "Records go back to Kinesis: the dead letter cannot keep their rejected documents until this is fixed")
            }
            Some(Fix::FirehoseStream) => {
                tracing::error!(records = count, shard_id = %first.shard_id, first_sequence_number = sequence_number, status, cause, error_type = %failure.error_type, reason = %failure.reason, fix = Fix::FirehoseStream.hint(), "Records go back to Kinesis: Firehose cannot take their retry-later documents until this is fixed")
            }
            Some(fix) => {
                tracing::error!(records = count, shard_id = %first.shard_id, first_sequence_number = sequence_number, status, cause, error_type = %failure.error_type, reason = %failure.reason, fix = fix.hint(), "Records go back to Kinesis: the cluster refuses them until this is fixed")
            }
            None => {
                tracing::warn!(records = count, shard_id = %first.shard_id, first_sequence_number = sequence_number, status, cause, error_type = %failure.error_type, reason = %failure.reason, "Records go back to Kinesis for redelivery")
            }
        }
    }
}

/// The counts of the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: usize,
    pub outcomes: BTreeMap<Outcome, usize>,
    pub documents: usize,
    pub documents_retry_later: usize,
    pub documents_rejected: usize,
    /// Documents refused for a cause someone must fix (a shard limit, a missing pipeline, a block, access).
    pub documents_refused: usize,
    /// Documents whose own timestamp was beyond `TIMESTAMP_MAX_SKEW_SECONDS` of arrival: indexed by arrival time.
    pub timestamps_out_of_range: usize,
    /// Documents without a timestamp in records without an arrival time: stamped and indexed by the Unix epoch.
    pub documents_undated: usize,
    /// Documents the filters dropped (`FILTER_INCLUDE`, `FILTER_EXCLUDE`): never indexed, not in `documents`.
    pub documents_filtered: usize,
    /// Rejected documents kept whole in the dead letter (`DEAD_LETTER_BUCKET`).
    pub documents_dead_lettered: usize,
    /// What the indexing stage did: requests, bytes, time, and the concurrency and body limit it ended at.
    pub indexing: elasticsearch::IndexingStats,
    /// What the Firehose step did: calls, entries accepted and failed, time.
    pub firehose: firehose::DeliveryStats,
    pub elapsed: Duration,
    /// Age of the batch's oldest record (from its arrival in the stream) when the invocation began.
    pub oldest_record_age: Option<Duration>,
    /// From its arrival in the stream to now, for the oldest canary record this invocation indexed (the template's
    /// `CanaryIntervalMinutes`): how long a record takes to reach the cluster, measured end to end.
    pub canary_age: Option<Duration>,
    /// Whether the invocation began with a probe (the cluster was away at the last ones).
    pub probe: bool,
    /// How long the invocation waited before answering, the cluster being away or busy.
    pub paced: Duration,
    /// Why it waited.
    pub paced_because: Option<Pace>,
}

impl Summary {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// A WARN line when the cluster asked for later most of the documents this invocation sent or meant to send: it
    /// is saturated, and says so without anyone polling `_cat/thread_pool`.
    pub fn warn_if_saturated(&self) {
        if self.documents == 0 || self.documents_retry_later * 2 <= self.documents {
            return;
        }
        crate::event_at!(
            crate::logging::kept_level(tracing::Level::WARN),
            documents = self.documents,
            documents_retry_later = self.documents_retry_later,
            // The counts, not a percentage: 4,999 of 5,000 is not "100 %".
            share = format!("{} of {}", self.documents_retry_later, self.documents),
            to_firehose = self.count(Outcome::ToFirehose),
            back_to_kinesis = self.count(Outcome::BackToKinesis),
            concurrency = self.indexing.concurrency,
            paced_ms = self.paced.as_millis() as u64,
            "The cluster is saturated: it asked for later most of this batch's documents (a full write queue, a \
             tripped circuit breaker); to_firehose and back_to_kinesis say where they went, concurrency what is now \
             sent at once"
        );
    }

    /// The one summary line per invocation: INFO, or the configured level when higher (the metrics read it).
    pub fn log(&self) {
        crate::event_at!(
            crate::logging::kept_level(tracing::Level::INFO),
            records = self.records,
            indexed = self.count(Outcome::Indexed),
            already_there = self.count(Outcome::AlreadyThere),
            to_firehose = self.count(Outcome::ToFirehose),
            rejected = self.count(Outcome::Rejected),
            skipped = self.count(Outcome::Skipped),
            back_to_kinesis = self.count(Outcome::BackToKinesis),
            documents = self.documents,
            documents_retry_later = self.documents_retry_later,
            documents_rejected = self.documents_rejected,
            documents_refused = self.documents_refused,
            timestamps_out_of_range = self.timestamps_out_of_range,
            documents_undated = self.documents_undated,
            documents_filtered = self.documents_filtered,
            documents_unstructured = self.indexing.unstructured,
            documents_dead_lettered = self.documents_dead_lettered,
            bulk_requests = self.indexing.requests,
            body_bytes = self.indexing.body_bytes,
            bytes_sent = self.indexing.bytes_sent,
            es_ms = self.indexing.elapsed.as_millis() as u64,
            firehose_calls = self.firehose.calls,
            firehose_accepted = self.firehose.accepted,
            firehose_failed_entries = self.firehose.failed_entries,
            firehose_ms = self.firehose.elapsed.as_millis() as u64,
            oldest_record_age_ms = self.oldest_record_age.map(|age| age.as_millis() as u64),
            canary_age_ms = self.canary_age.map(|age| age.as_millis() as u64),
            probe = self.probe,
            paced_ms = self.paced.as_millis() as u64,
            paced_because = self.paced_because.map(Pace::name),
            concurrency = self.indexing.concurrency,
            body_limit = self.indexing.body_limit,
            duration_ms = self.elapsed.as_millis() as u64,
            "Batch done"
        );
    }
}

/// What an invocation did with every record (its provenance, what decoding made of it, its fate), and the batch
/// response it gives Lambda.
#[derive(Debug, Clone)]
pub struct Report {
    pub records: Vec<SettledRecord>,
    pub summary: Summary,
}

impl Report {
    fn new(
        batch: Batch<SettledRecord, IndexedDocument>,
        indexing: elasticsearch::IndexingStats,
        firehose: firehose::DeliveryStats,
        indexed_at: DateTime<Utc>,
        elapsed: Duration,
    ) -> Report {
        let mut outcomes: BTreeMap<Outcome, usize> = Outcome::ALL.iter().map(|&o| (o, 0)).collect();
        let doc_outcomes = || batch.documents.iter().map(|document| &document.outcome);
        for settled in &batch.records {
            *outcomes.entry(settled.fate.outcome).or_default() += 1;
        }
        let summary = Summary {
            records: batch.records.len(),
            outcomes,
            documents: batch.documents.len(),
            // Every cause by which the cluster asked for later, parked or kept in the stream.
            documents_retry_later: doc_outcomes()
                .filter(|o| o.failure().is_some_and(|f| f.cause.paces() == Some(Pace::Busy)))
                .count(),
            documents_rejected: doc_outcomes().filter(|o| o.routes(Outcome::Rejected)).count(),
            documents_refused: doc_outcomes().filter(|o| o.failure().is_some_and(|f| f.cause.fix().is_some())).count(),
            timestamps_out_of_range: batch.measured.timestamps_out_of_range,
            documents_undated: batch.measured.undated,
            documents_filtered: batch.measured.filtered,
            documents_dead_lettered: 0,
            indexing,
            firehose,
            elapsed,
            oldest_record_age: batch
                .measured
                .oldest_arrival
                .and_then(|arrival| (Utc::now() - arrival).to_std().ok().map(|age| age.saturating_sub(elapsed))),
            canary_age: batch
                .measured
                .canaries
                .iter()
                .filter(|(document, _)| batch.documents[*document].outcome == DocOutcome::Indexed)
                .filter_map(|(_, arrival)| (indexed_at - *arrival).to_std().ok())
                .max(),
            // Set by `handle`, which knows them.
            probe: false,
            paced: Duration::ZERO,
            paced_because: None,
        };
        Report { records: batch.records, summary }
    }

    /// The partial batch response: every record going back to Kinesis, by sequence number.
    pub fn response(&self) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        response.batch_item_failures = self
            .records
            .iter()
            .filter(|r| r.fate.outcome == Outcome::BackToKinesis)
            // A record going back without a sequence number cannot be named. Left out, Lambda would checkpoint
            // past it; an empty itemIdentifier makes Lambda take the whole batch as failed and retry it (AWS:
            // "Configuring partial batch response with Kinesis Data Streams"), which loses nothing.
            .map(|r| r.record.provenance.sequence_number.clone().unwrap_or_default())
            .map(|sequence| {
                let mut failure = KinesisBatchItemFailure::default();
                failure.item_identifier = Some(sequence);
                failure
            })
            .collect();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::RecordFate;

    fn record(sequence: Option<&str>, outcome: Outcome) -> SettledRecord {
        let provenance = Provenance { shard_id: "shardId-0".into(), sequence_number: sequence.map(str::to_owned) };
        let decoded = Decoded::Documents { range: 0..1, rejected_parts: Vec::new() };
        SettledRecord { record: Record { provenance, decoded }, fate: RecordFate { outcome, failure: None } }
    }

    #[test]
    fn a_record_going_back_without_a_sequence_number_fails_the_whole_batch_instead_of_being_left_out() {
        let named = |records: Vec<SettledRecord>| -> Vec<Option<String>> {
            let report = Report { records, summary: Summary::default() };
            report.response().batch_item_failures.into_iter().map(|failure| failure.item_identifier).collect()
        };
        let records = vec![record(Some("1"), Outcome::Indexed), record(Some("2"), Outcome::BackToKinesis)];
        assert_eq!(named(records), [Some("2".to_owned())]);
        let records = vec![record(None, Outcome::Rejected), record(None, Outcome::BackToKinesis)];
        assert_eq!(named(records), [Some(String::new())], "empty: Lambda retries the whole batch");
    }
}
