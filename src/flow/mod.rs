//! Back pressure, in one room: how much one warm instance sends to the cluster and when. It owns the window of
//! requests in flight (`window`), the largest body the way to the cluster takes (`body`), the hold that keeps the
//! rest of a batch in the stream, the probe after paced invocations, and the pacing of answers to Lambda
//! (`pacing`). Built once from the configuration (`BULK_CONCURRENCY_MODE=fixed` is its trivial case: a window that
//! never moves); fed one observation per answer; it answers what to send next.
//!
//! The indexing stage asks a `Stage` (one per batch) before each request (`before_sending`: send, with what
//! timeout, or not, and why) and hands it each reply (`judge`): the stage decides the documents' outcomes with
//! `cause::decide`, and adapts the window, the body limit and the hold to what the cluster said.

pub mod body;
pub mod pacing;
pub mod window;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::budget::Budget;
use crate::bulk::BulkReply;
use crate::cause::Outcome;
use crate::cause::{self, ChunkDecision};
use crate::cause::{Cause, Failure, Pace};
use crate::cause::{DocOutcome, IndexedDocument};
use crate::config::Config;
use crate::record::Batch;
use crate::route::SettledRecord;
use body::BodyLimit;
use pacing::Pacing;
use window::{MIN_WINDOW, Observation, Window};

/// What the instance has learned of the cluster, across warm invocations, and the settings it adapts within.
#[derive(Debug)]
pub struct Flow {
    window: Mutex<Window>,
    body: Mutex<BodyLimit>,
    pacing: Pacing,
    /// `ES_TIMEOUT_MS`: the most a request may take.
    request_timeout: Duration,
    /// `PACING_BASE_MS` and `PACING_MAX_MS`.
    pacing_first: Duration,
    pacing_cap: Duration,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Flow {
    /// Nothing learned yet: the window where a new instance starts (`window::START_SHARE` of `BULK_CONCURRENCY`, or
    /// all of it with `fixed`), chunks cut to `BULK_MAX_BYTES`, no pacing.
    pub fn new(config: &Config) -> Flow {
        Flow {
            window: Mutex::new(Window::new(config.bulk.concurrency, !config.bulk.adaptive_concurrency)),
            body: Mutex::new(BodyLimit::new(config.bulk.max_bytes)),
            pacing: Pacing::default(),
            request_timeout: config.cluster.timeout,
            pacing_first: config.bulk.pacing_base,
            pacing_cap: config.bulk.pacing_max,
        }
    }

    /// The sending of one batch (or one list of documents) within `budget`; it probes with one document first when
    /// the last invocations paced and `may_probe`.
    pub fn stage(&self, budget: Budget, may_probe: bool) -> Stage<'_> {
        Stage { flow: self, budget, probe: may_probe && self.pacing.probing(), state: Mutex::default() }
    }

    /// The cluster answered a request of this invocation normally: pacing is over.
    pub fn cluster_answered(&self) {
        self.pacing.cluster_answered();
    }

    /// When records go back to Kinesis for a reason that paces, waits before answering (Lambda retries at once):
    /// exponential with full jitter across warm invocations, within the budget. Returns how long it waited.
    pub async fn pace(&self, reason: Option<Pace>, budget: Budget) -> Duration {
        if reason.is_none() || self.pacing_cap.is_zero() {
            return Duration::ZERO;
        }
        let wait = budget.cap(self.pacing.pace_again(self.pacing_first, self.pacing_cap));
        tokio::time::sleep(wait).await;
        wait
    }

    /// Requests allowed in flight now.
    pub fn concurrency(&self) -> usize {
        locked(&self.window).in_flight()
    }

    /// The body size learned from a refusal, when one was.
    pub fn body_limit(&self) -> Option<usize> {
        locked(&self.body).learned()
    }
}

/// Why the invocation should wait before answering: a record goes back to Kinesis, and it or one of its documents
/// failed for a cause that paces (the cluster asked for later, or is away). Its documents count, not only its own
/// failure: a record whose 429'd documents Firehose could not take goes back as Firehose's refusal, yet redelivering
/// it at once sends them into the cluster that just asked for later.
pub fn pace_reason(batch: &Batch<SettledRecord, IndexedDocument>) -> Option<Pace> {
    batch
        .records
        .iter()
        .filter(|settled| settled.fate.outcome == Outcome::BackToKinesis)
        .flat_map(|SettledRecord { record, fate }| {
            let documents = batch.documents[record.documents()].iter().filter_map(|d| d.outcome.failure());
            fate.failure.iter().chain(documents).filter_map(|failure| failure.cause.paces())
        })
        .max()
}

/// The rest of a batch stays in the stream after the cluster said "later" to a request of it as a whole: "later"
/// becomes `ClusterSaturated` (paced as busy, never parked unsent, where Firehose would deliver it into the same
/// cluster); a cluster away or refusing holds it for its own cause.
fn held_in_the_stream(cause: Cause) -> Cause {
    match cause {
        Cause::ClusterBusy => Cause::ClusterSaturated,
        other => other,
    }
}

/// One batch's sending: what its requests tell each other.
#[derive(Debug)]
pub struct Stage<'f> {
    flow: &'f Flow,
    budget: Budget,
    probe: bool,
    state: Mutex<StageState>,
}

#[derive(Debug, Default)]
struct StageState {
    /// Set by the first answer that says to stop (the cluster down, refusing, or still saturated at the fewest
    /// requests in flight) to its cause: later chunks are not sent.
    hold: Option<Cause>,
    /// Requests in flight now.
    in_flight: usize,
    /// Whether a request was answered yet (no pause before the first).
    answered: bool,
    /// Whether the cluster answered a request normally (the end of pacing).
    answered_normally: bool,
    /// Documents sent alone that lost their connection since the cluster last answered: a second one says the
    /// cluster is away rather than the documents too large.
    lost_alone: usize,
    /// Whether the probe was answered (or the stage does not probe).
    probed: bool,
}

/// A request about to go out: its timeout, and its place in the window's history.
#[derive(Debug)]
pub struct Ticket {
    pub timeout: Duration,
    sent: window::Sent,
    /// Whether it is the stage's probe: not answered normally, it holds the stage.
    probe: bool,
    /// Whether the window was at its floor when it went out.
    at_floor: bool,
    started: tokio::time::Instant,
}

/// What the sender does with a request after its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The documents' outcomes, in request order.
    Outcomes(Vec<DocOutcome>),
    /// Send it again in halves: refused for its size.
    Split,
    /// A document alone that lost its connection while being sent, larger than anything known to get through:
    /// unknown for now, judged once the batch is answered (`Stage::judge_lost_alone`); `bytes`, its body's size.
    LostAlone { outcome: DocOutcome, bytes: usize },
}

impl Stage<'_> {
    /// Whether the first chunk is one document alone, sent before the rest (the last invocations paced).
    pub fn probing(&self) -> bool {
        self.probe
    }

    fn state(&self) -> MutexGuard<'_, StageState> {
        locked(&self.state)
    }

    /// Requests allowed in flight now.
    pub fn concurrency(&self) -> usize {
        self.flow.concurrency()
    }

    /// The most body bytes the next chunk may hold.
    pub fn chunk_bytes(&self) -> usize {
        locked(&self.flow.body).budget()
    }

    /// Below one request in flight, the pause after an answer before the next request: none before the stage's
    /// first, none once it holds (the chunk is not sent), never past the budget.
    pub async fn pause(&self) {
        let pause = {
            let state = self.state();
            match state.answered && state.hold.is_none() {
                true => locked(&self.flow.window).pause(),
                false => Duration::ZERO,
            }
        };
        tokio::time::sleep(self.budget.cap(pause)).await;
    }

    /// Before a request: its ticket, or the failure of its documents when it must not go (the stage holds, or too
    /// little time is left).
    pub fn before_sending(&self) -> Result<Ticket, Failure> {
        let mut state = self.state();
        if let Some(cause) = state.hold {
            return Err(Failure::held(cause));
        }
        let left = self.budget.left();
        if left.is_zero() {
            return Err(Failure::deadline(self.budget.margin()));
        }
        state.in_flight += 1;
        let window = locked(&self.flow.window);
        Ok(Ticket {
            timeout: self.flow.request_timeout.min(left),
            sent: window.send(state.in_flight),
            probe: self.probe && !state.probed,
            at_floor: window.value() <= MIN_WINDOW,
            started: tokio::time::Instant::now(),
        })
    }

    /// Whether a request of `plain` body bytes that lost its connection while being sent may have been refused for
    /// its size.
    fn may_be_too_large(&self, plain: usize) -> bool {
        locked(&self.flow.body).may_be_too_large(plain)
    }

    /// Judges the reply to a request of `documents` documents and `plain` body bytes, and adapts to it: the
    /// window, the body limit, the hold.
    pub fn judge(&self, ticket: Ticket, reply: &BulkReply, documents: usize, plain: usize) -> Next {
        let took = ticket.started.elapsed();
        let may_be_too_large = self.may_be_too_large(plain);
        let decision = cause::decide(reply, &cause::Sent { documents, may_be_too_large });
        self.learn_body(reply, &decision, documents, plain, may_be_too_large);
        let mut state = self.state();
        state.in_flight -= 1;
        state.answered = true;
        match decision {
            ChunkDecision::Split { unread } if documents == 1 && unread => {
                state.lost_alone += 1;
                let lost = Failure::lost_alone();
                if state.lost_alone >= 2 {
                    // Two documents alone lost in a row, nothing answered between: the cluster is away.
                    state.hold.get_or_insert(lost.cause);
                }
                Next::LostAlone { outcome: DocOutcome::Failed(lost), bytes: plain }
            }
            ChunkDecision::Split { .. } if documents == 1 => {
                Next::Outcomes(vec![DocOutcome::Failed(Failure::too_large_alone(plain))])
            }
            ChunkDecision::Split { .. } => Next::Split,
            ChunkDecision::PerDocument { outcomes, hold } => {
                let observed = observe(reply, &outcomes, hold, took, plain);
                locked(&self.flow.window).observe(ticket.sent, observed);
                // Mostly asked for later though sent at the fewest requests in flight: a busy cluster, not a
                // collision (the window comes down to the floor first; a hold there sends the instance to pacing).
                // A fixed window is never at the floor.
                let still_saturated = observed.later > 0.5 && ticket.at_floor;
                if observed.clean {
                    state.answered_normally = true;
                    state.lost_alone = 0;
                }
                state.probed |= ticket.probe;
                // A probe not answered normally keeps the rest in the stream, whatever its cause.
                let cause = hold.or_else(|| pacing_cause(&outcomes).filter(|_| ticket.probe));
                if let Some(cause) = cause.or(still_saturated.then_some(Cause::ClusterBusy)) {
                    state.hold.get_or_insert(held_in_the_stream(cause));
                }
                Next::Outcomes(outcomes)
            }
        }
    }

    /// What the body limit learns from a reply: a body answered (but a 413) got through; one refused for its size
    /// (or lost while sending, larger than anything known to get through) sets the limit; one lost though no larger
    /// than what got through lowers what is known to.
    fn learn_body(
        &self,
        reply: &BulkReply,
        decision: &ChunkDecision,
        documents: usize,
        plain: usize,
        may_be_too_large: bool,
    ) {
        let mut body = locked(&self.flow.body);
        match (reply, decision) {
            // A document alone lost unread may have met the cluster away: its size is judged with the batch.
            (_, ChunkDecision::Split { unread: true }) if documents == 1 => {}
            (_, ChunkDecision::Split { .. }) => body.refused(plain),
            (BulkReply::Answered { .. }, _) => body.answered(plain),
            (BulkReply::Lost { while_sending: true, .. }, _) if !may_be_too_large => body.lost(plain),
            _ => {}
        }
    }

    /// Requests allowed in flight when the stage ended, and the body limit learned: for the summary.
    pub fn learned(&self) -> (usize, Option<usize>) {
        (self.flow.concurrency(), self.flow.body_limit())
    }

    /// The timeout of a request sent once more after `ticket`'s lost its connection, or `None` when no time is
    /// left for it.
    pub fn resend_timeout(&self, ticket: &Ticket) -> Option<Duration> {
        Some(self.budget.cap(ticket.timeout)).filter(|timeout| !timeout.is_zero())
    }

    /// Whether the cluster answered a request of this stage normally: every item judged, none asked for later,
    /// refused or unknown for a reason of the cluster's.
    pub fn answered_normally(&self) -> bool {
        self.state().answered_normally
    }

    /// The documents sent alone that lost their connection (`Next::LostAlone`), once the batch is answered: too
    /// large for the way to the cluster when it answered other requests of this stage and the document is larger
    /// than any body known to get through; otherwise left unknown (back to Kinesis, as the cluster may have been
    /// away).
    pub fn judge_lost_alone(&self, bytes: usize) -> Option<Failure> {
        let taken = locked(&self.flow.body).taken();
        (self.answered_normally() && bytes > taken).then(|| Failure::too_large_for_the_way(bytes, taken))
    }
}

/// What an answer says to the window: the share of documents asked for later (a timeout: all of them, the queue
/// never answered), whether it was clean, how long it took, and for how large a body.
fn observe(
    reply: &BulkReply,
    outcomes: &[DocOutcome],
    hold: Option<Cause>,
    took: Duration,
    bytes: usize,
) -> Observation {
    let later = match reply {
        BulkReply::TimedOut => 1.0,
        _ => {
            let asked_later = outcomes.iter().filter(|outcome| outcome.caused_by(Cause::ClusterBusy)).count();
            asked_later as f64 / outcomes.len().max(1) as f64
        }
    };
    let clean = hold.is_none() && pacing_cause(outcomes).is_none();
    Observation { later, clean, took, bytes }
}

/// The first document's cause that paces (asked for later, or the cluster away or refusing), if any.
fn pacing_cause(outcomes: &[DocOutcome]) -> Option<Cause> {
    outcomes.iter().filter_map(DocOutcome::failure).map(|failure| failure.cause).find(|cause| cause.paces().is_some())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::time::Instant;

    use super::*;
    use crate::cause::Fix;

    fn flow(pairs: &[(&str, &str)]) -> Flow {
        let config = Config::from_lookup(|name| match name {
            "ES_URL" => Some("http://127.0.0.1:9200".into()),
            _ => pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()),
        })
        .expect("a valid configuration");
        Flow::new(&config)
    }

    fn budget() -> Budget {
        Budget::new(Instant::now() + Duration::from_secs(60), Duration::from_secs(1))
    }

    fn item(status: u16, error_type: &str) -> String {
        match status {
            201 => r#"{"create":{"status":201}}"#.to_owned(),
            _ => format!(r#"{{"create":{{"status":{status},"error":{{"type":"{error_type}","reason":"r"}}}}}}"#),
        }
    }

    fn items(items: &[String]) -> BulkReply {
        let body = format!(r#"{{"errors":true,"items":[{}]}}"#, items.join(","));
        BulkReply::Answered { status: 200, body: Bytes::from(body) }
    }

    fn later() -> String {
        item(429, "es_rejected_execution_exception")
    }

    fn created() -> String {
        item(201, "")
    }

    /// Sends one request of `documents` documents and judges `reply`.
    fn exchange(stage: &Stage<'_>, reply: &BulkReply, documents: usize) -> Next {
        let ticket = stage.before_sending().expect("the stage lets it go");
        stage.judge(ticket, reply, documents, 1000)
    }

    fn held(stage: &Stage<'_>) -> Option<Cause> {
        stage.before_sending().err().map(|failure| failure.cause)
    }

    #[test]
    fn an_answer_is_normal_unless_a_document_says_the_cluster_is_busy_or_away() {
        let flow = flow(&[]);
        let stage = flow.stage(budget(), false);
        exchange(&stage, &items(&[created(), item(400, "document_parsing_exception")]), 2);
        assert!(stage.answered_normally(), "a bad document is no news of the cluster");
        assert_eq!(held(&stage), None);
        for reply in [items(&[created(), later()]), items(&[created(), item(403, "cluster_block_exception")])] {
            let stage = flow.stage(budget(), false);
            exchange(&stage, &reply, 2);
            assert!(!stage.answered_normally(), "{reply:?}");
        }
    }

    #[test]
    fn a_request_refused_whole_keeps_the_rest_in_the_stream_whatever_the_mode() {
        let whole = BulkReply::Answered {
            status: 429,
            body: Bytes::from_static(include_bytes!("../../tests/fixtures/bulk_circuit_breaking_429.json")),
        };
        for mode in ["adaptive", "fixed"] {
            let flow = flow(&[("BULK_CONCURRENCY_MODE", mode)]);
            let stage = flow.stage(budget(), false);
            let Next::Outcomes(outcomes) = exchange(&stage, &whole, 3) else { panic!("outcomes") };
            assert!(outcomes.iter().all(|outcome| outcome.caused_by(Cause::ClusterBusy)), "its own: retry later");
            assert_eq!(held(&stage), Some(Cause::ClusterSaturated), "{mode}: the rest stays in the stream");
        }
        let flow = flow(&[]);
        let stage = flow.stage(budget(), false);
        exchange(&stage, &BulkReply::Answered { status: 502, body: Bytes::from_static(b"<html>") }, 1);
        assert_eq!(held(&stage), Some(Cause::Unknown), "the cluster away holds for its own cause");
    }

    #[test]
    fn mostly_later_lowers_the_window_and_holds_only_once_sent_at_its_floor() {
        let flow = flow(&[("BULK_CONCURRENCY", "2")]);
        let stage = flow.stage(budget(), false);
        let mostly = items(&[later(), created(), later()]);
        let mut windows = Vec::new();
        while held(&stage).is_none() {
            exchange(&stage, &mostly, 3);
            windows.push(locked(&flow.window).value());
            assert!(windows.len() < 10, "it holds in the end: {windows:?}");
        }
        // From one request (half of 2), × (1 - (2/3) / 2) an answer, down to an eighth; the answer to the request
        // sent there holds.
        let expected = [2.0 / 3.0, 4.0 / 9.0, 8.0 / 27.0, 16.0 / 81.0, 32.0 / 243.0, 0.125, 0.125];
        assert_eq!(windows.len(), expected.len(), "{windows:?}");
        assert!(windows.iter().zip(expected).all(|(w, e)| (w - e).abs() < 1e-9), "{windows:?}");
        assert_eq!(held(&stage), Some(Cause::ClusterSaturated));
        let unlucky = flow.stage(budget(), false);
        exchange(&unlucky, &items(&[later(), created(), created(), later()]), 4);
        assert_eq!(held(&unlucky), None, "half is not most: never a hold");
    }

    #[test]
    fn a_fixed_window_never_holds_for_items_asked_for_later() {
        let flow = flow(&[("BULK_CONCURRENCY_MODE", "fixed")]);
        let stage = flow.stage(budget(), false);
        for _ in 0..20 {
            exchange(&stage, &items(&[later(), later()]), 2);
        }
        assert_eq!((held(&stage), flow.concurrency()), (None, 2));
    }

    #[test]
    fn a_probe_not_answered_normally_holds_and_one_rejected_for_its_own_fault_does_not() {
        let flow = flow(&[("PACING_BASE_MS", "1")]);
        tokio_test_pace(&flow);
        let stage = flow.stage(budget(), true);
        assert!(stage.probing());
        exchange(&stage, &items(&[item(403, "cluster_block_exception")]), 1);
        assert_eq!(held(&stage), Some(Cause::Misconfigured(Fix::ClusterBlock)));
        let stage = flow.stage(budget(), true);
        exchange(&stage, &items(&[item(400, "document_parsing_exception")]), 1);
        exchange(&stage, &items(&[later()]), 1);
        assert_eq!(held(&stage), None, "the probe was answered; what follows is judged as any request");
        assert!(!flow.stage(budget(), false).probing(), "the plain forms' stage never probes");
        flow.cluster_answered();
        assert!(!flow.stage(budget(), true).probing(), "the cluster answered normally: no probe any more");
    }

    /// One paced invocation, so that the next probes.
    fn tokio_test_pace(flow: &Flow) {
        flow.pacing.pace_again(Duration::from_millis(1), Duration::from_millis(1));
    }

    #[test]
    fn two_documents_alone_lost_while_being_sent_say_the_cluster_is_away() {
        let flow = flow(&[]);
        let stage = flow.stage(budget(), false);
        let lost = BulkReply::Lost { why: "reset".into(), while_sending: true };
        let big = 100 * 1024;
        let first = stage.before_sending().unwrap();
        assert!(matches!(stage.judge(first, &lost, 1, big), Next::LostAlone { bytes, .. } if bytes == big));
        assert_eq!(held(&stage), None, "one may be too large for the way");
        let second = stage.before_sending().unwrap();
        stage.judge(second, &lost, 1, big);
        assert_eq!(held(&stage), Some(Cause::Unknown), "two in a row: away");
        assert!(stage.judge_lost_alone(big).is_none(), "the cluster never answered: unknown, not too large");
    }

    #[test]
    fn a_size_refusal_splits_and_teaches_the_body_limit() {
        let flow = flow(&[]);
        let stage = flow.stage(budget(), false);
        let refused = BulkReply::Answered { status: 413, body: Bytes::new() };
        let ticket = stage.before_sending().unwrap();
        assert_eq!(stage.judge(ticket, &refused, 4, 400_000), Next::Split);
        assert_eq!(stage.chunk_bytes(), 200_000);
        let ticket = stage.before_sending().unwrap();
        let Next::Outcomes(alone) = stage.judge(ticket, &refused, 1, 300_000) else { panic!("outcomes") };
        assert_eq!(alone[0].failure().map(|failure| failure.cause), Some(Cause::Document), "too large alone");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sent_inside_the_margin() {
        let flow = flow(&[]);
        let stage = flow.stage(Budget::new(Instant::now() + Duration::from_secs(2), Duration::from_secs(1)), false);
        assert!(stage.before_sending().is_ok());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(held(&stage), Some(Cause::Deadline));
    }
}
