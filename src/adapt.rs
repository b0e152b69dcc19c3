//! How much one warm instance sends at once, learned from the cluster's answers and kept across warm invocations:
//! the requests in flight (additive increase, multiplicative decrease, as TCP and vector's adaptive request
//! concurrency do; below one request, a pause between requests) and the largest request body the way to the cluster takes (an engine's 413, or a proxy that
//! closes the connection on a body over its limit without reading it).
//!
//! Each instance sees only its own answers, so each adapts alone; a fleet of them converges on what the cluster
//! takes because every instance that is refused halves its share. A fleet larger than the cluster's write queue
//! needs less than one request in flight per instance: that is a pause after each answer, not a lower setting.

use std::sync::Mutex;
use std::time::Duration;

/// A body at most this large is never suspected of being refused for its size: a connection lost while sending it
/// says the cluster is away. Proxies' limits are far larger (nginx's default `client_max_body_size` is 1 MB).
pub const SIZE_FLOOR: usize = 16 * 1024;

/// Answers of bodies near the learned limit before it is doubled again: a limit learned from a passing fault (a
/// cluster that reset connections at cold start) does not shrink requests for ever, and a real one costs one
/// refused request, split at once, every this many answers.
const GROW_BODY_LIMIT_AFTER: u32 = 32;

/// Clean answers, in windows of the requests allowed in flight, over which one more is allowed: far slower than
/// TCP's one window, because with windows of one or two requests the rate of refusals follows the rate of growth
/// (each refusal halves the window, and it takes this many windows to grow back), and a refusal costs a chunk
/// parked in Firehose. Measured with the s32 fleet (release, 8 instances, a 2+2 pool, one run each): 4 windows
/// parked 16.5 % against fixed concurrency's 39.7 %, 16 windows 8.9 % against 41.0 %, 50 windows 4.9 % against
/// 43.1 % with the drain 6.3 s against 5.2 s at 16.
const CLEAN_WINDOWS_TO_GROW: f64 = 16.0;

/// The fewest requests in flight: one at a time, in flight an eighth of the time (a pause of about seven answers'
/// time after each).
const MIN_WINDOW: f64 = 0.125;

/// Requests of one invocation saturated in a row, pauses between them included, before the chunks not yet sent are
/// kept in the stream (`Cause::ClusterSaturated`, paced): a collision of a fleet's requests in a small write queue
/// is over by the next request, a busy cluster is not. Measured with the s32 fleet (release, one run each, moderate
/// load: fixed concurrency parked 12-22 %): keeping the rest in the stream after the first saturated request
/// drained in 1.64x fixed concurrency's time, after the third in 1.37x, for the same parked share (4.7-5.8 %).
pub const SATURATED_IN_A_ROW_TO_HOLD: usize = 3;

/// The window learned (0: none yet, so `max`), within `MIN_WINDOW..=max` (a lower `BULK_CONCURRENCY` after a new
/// configuration bounds what was learned).
fn window_within(window: f64, max: usize) -> f64 {
    if window == 0.0 { max as f64 } else { window.clamp(MIN_WINDOW, max as f64) }
}

/// What the instance has learned; shared by the chunks of an invocation and by the invocations of a process.
#[derive(Debug, Default)]
pub struct Load {
    state: Mutex<Learned>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Learned {
    /// Requests allowed in flight, fractional: at or above one, its whole part in flight at once; below one, one
    /// at a time with a pause after each answer, so that a request is in flight that share of the time. 0 until
    /// the first answer (then `BULK_CONCURRENCY`).
    window: f64,
    /// How long the cluster takes to answer a request it takes (a moving average): the unit of the pause.
    answer_time: Option<Duration>,
    /// How long the last answer took, whatever it said: the unit until a request is taken (a cold start into a
    /// busy spell still pauses).
    last_answer_time: Option<Duration>,
    /// The largest plain body the way to the cluster is taken to accept; `None`: `BULK_MAX_BYTES`.
    body_limit: Option<usize>,
    /// Answers of bodies of at least half the learned limit since it was set.
    answers_near_limit: u32,
    /// The largest plain body known to reach the cluster: a larger one that loses its connection while being sent
    /// may be too large; one no larger says the cluster is away.
    known_good: usize,
}

/// What one answered request says about the load the cluster takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Every item judged, none asked to come back later: one more request in flight, in time.
    Clean,
    /// The cluster said "later" to the whole request or to most of its items: half as many in flight.
    Saturated,
    /// Anything else (a few items asked for later, the cluster away): no change.
    Neither,
}

impl Load {
    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many requests may be in flight now, within 1..=`max` (`BULK_CONCURRENCY`).
    pub fn concurrency(&self, max: usize) -> usize {
        (window_within(self.learned().window, max) as usize).clamp(1, max)
    }

    /// The pause after an answer before the next request, when less than one request is allowed in flight: the
    /// cluster's answer time × (1 / window - 1), jittered by ±50 % so that instances paused by one collision do
    /// not come back together. Zero at a window of one or more.
    pub fn pause(&self, max: usize) -> Duration {
        let learned = *self.learned();
        let window = window_within(learned.window, max);
        match learned.answer_time.or(learned.last_answer_time) {
            Some(answer_time) if window < 1.0 => answer_time.mul_f64((1.0 / window - 1.0) * (0.5 + fastrand::f64())),
            _ => Duration::ZERO,
        }
    }

    /// Adapts the window to one answer, which took `took`: halved when the cluster is saturated (down to
    /// `MIN_WINDOW`), grown by one over `CLEAN_WINDOWS_TO_GROW` windows of clean answers (up to `max`).
    pub fn answered(&self, signal: Signal, max: usize, took: Duration) {
        let mut learned = self.learned();
        let window = window_within(learned.window, max);
        learned.last_answer_time = Some(took);
        learned.window = match signal {
            Signal::Saturated => (window / 2.0).max(MIN_WINDOW),
            Signal::Clean => {
                learned.answer_time = Some(match learned.answer_time {
                    Some(average) => average.mul_f64(0.8) + took.mul_f64(0.2),
                    None => took,
                });
                (window + 1.0 / (CLEAN_WINDOWS_TO_GROW * window.max(1.0))).min(max as f64)
            }
            Signal::Neither => window,
        };
    }

    /// The most body bytes a chunk may hold: `configured` (`BULK_MAX_BYTES`), or less once a body was refused.
    pub fn body_budget(&self, configured: usize) -> usize {
        self.learned().body_limit.map_or(configured, |limit| limit.min(configured))
    }

    /// The learned limit, when one was learned.
    pub fn body_limit(&self) -> Option<usize> {
        self.learned().body_limit
    }

    /// The largest plain body known to reach the cluster.
    pub fn known_good(&self) -> usize {
        self.learned().known_good
    }

    /// Whether a request of `plain` body bytes that lost its connection while being sent may have been refused for
    /// its size: it is larger than any body known to get through, and than `SIZE_FLOOR`.
    pub fn may_be_too_large(&self, plain: usize) -> bool {
        plain > SIZE_FLOOR.max(self.known_good())
    }

    /// A body of `plain` bytes reached the cluster (it answered, whatever it said).
    pub fn body_answered(&self, plain: usize) {
        let mut learned = self.learned();
        learned.known_good = learned.known_good.max(plain);
        if let Some(limit) = learned.body_limit
            && plain >= limit / 2
        {
            learned.answers_near_limit += 1;
            if learned.answers_near_limit >= GROW_BODY_LIMIT_AFTER {
                learned.body_limit = Some(limit.saturating_mul(2));
                learned.answers_near_limit = 0;
            }
        }
    }

    /// A body of `plain` bytes was refused for its size (413), or lost its connection while being sent when it was
    /// larger than anything known to get through: later chunks are cut to half of it.
    pub fn body_refused(&self, plain: usize) {
        let mut learned = self.learned();
        let limit = (plain / 2).max(SIZE_FLOOR);
        learned.body_limit = Some(learned.body_limit.map_or(limit, |known| known.min(limit)));
        learned.answers_near_limit = 0;
    }

    /// A body of `plain` bytes lost its connection while being sent though bodies that large got through before:
    /// taken as the cluster away, but what is known to get through is no larger than half of it from now on, so
    /// that if it was the body's size after all (a proxy's limit lowered), the redelivery finds out.
    pub fn body_lost(&self, plain: usize) {
        let mut learned = self.learned();
        learned.known_good = learned.known_good.min(plain / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Clean answers of `took` until one more request is allowed in flight.
    fn clean_answers_to_grow(load: &Load, max: usize, took: Duration) -> usize {
        let before = load.concurrency(max);
        (1..10_000)
            .find(|_| {
                load.answered(Signal::Clean, max, took);
                load.concurrency(max) > before
            })
            .expect("the window grows")
    }

    #[test]
    fn the_window_halves_when_saturated_and_grows_by_one_over_windows_of_clean_answers() {
        let load = Load::default();
        assert_eq!(load.concurrency(8), 8, "it starts at BULK_CONCURRENCY");
        assert_eq!(load.pause(8), Duration::ZERO);
        load.answered(Signal::Saturated, 8, MS);
        assert_eq!(load.concurrency(8), 4);
        for _ in 0..2 {
            load.answered(Signal::Saturated, 8, MS);
        }
        assert_eq!(load.concurrency(8), 1);
        let windows = CLEAN_WINDOWS_TO_GROW as usize;
        // The window grows by 1/window per answer, times 1/CLEAN_WINDOWS_TO_GROW: from one to two it takes between
        // windows of one and windows of two.
        let answers = clean_answers_to_grow(&load, 8, MS);
        assert!((windows..=2 * windows).contains(&answers), "{answers} answers from one to two");
        let answers = clean_answers_to_grow(&load, 8, MS);
        assert!((2 * windows..=3 * windows).contains(&answers), "{answers} answers from two to three");
        load.answered(Signal::Neither, 8, MS);
        assert_eq!(load.concurrency(8), 3, "an answer neither clean nor saturated changes nothing");
        for _ in 0..10_000 {
            load.answered(Signal::Clean, 8, MS);
        }
        assert_eq!(load.concurrency(8), 8, "never above BULK_CONCURRENCY");
        assert_eq!(load.concurrency(2), 2, "a lower setting (a new configuration) bounds what was learned");
    }

    #[test]
    fn before_any_clean_answer_the_pause_follows_the_last_answer() {
        let load = Load::default();
        for _ in 0..5 {
            load.answered(Signal::Saturated, 2, 20 * MS);
        }
        assert!((70 * MS..=210 * MS).contains(&load.pause(2)), "seven times 20 ms, ±50 %: {:?}", load.pause(2));
    }

    #[test]
    fn below_one_request_in_flight_the_pause_follows_the_answer_time_and_the_window() {
        let load = Load::default();
        for _ in 0..20 {
            load.answered(Signal::Clean, 2, 10 * MS);
        }
        load.answered(Signal::Saturated, 2, MS);
        assert_eq!((load.concurrency(2), load.pause(2)), (1, Duration::ZERO), "at a window of one, no pause");
        load.answered(Signal::Saturated, 2, MS);
        // A window of 1/2: a pause of one answer time (10 ms, the refused answers' 1 ms not counted), ±50 %.
        let pauses: Vec<Duration> = (0..200).map(|_| load.pause(2)).collect();
        assert!(pauses.iter().all(|pause| (5 * MS..=15 * MS).contains(pause)), "{pauses:?}");
        assert!(pauses.iter().any(|pause| *pause < 8 * MS) && pauses.iter().any(|pause| *pause > 12 * MS));
        for _ in 0..10 {
            load.answered(Signal::Saturated, 2, MS);
        }
        // The floor, 1/8: seven answer times.
        assert!((35 * MS..=105 * MS).contains(&load.pause(2)), "{:?}", load.pause(2));
        assert_eq!(load.concurrency(2), 1, "never below one request at a time");
        // Growing back from 1/8 to 1 takes as many clean answers as from 1 to 2, less the eighth not lost.
        let answers = (1..1_000).find(|_| {
            load.answered(Signal::Clean, 2, 10 * MS);
            load.pause(2).is_zero()
        });
        assert_eq!(answers, Some(CLEAN_WINDOWS_TO_GROW as usize * 7 / 8));
    }

    #[test]
    fn a_refused_body_halves_the_budget_which_grows_back_after_answers_near_it() {
        let load = Load::default();
        assert_eq!(load.body_budget(5 << 20), 5 << 20);
        assert!(load.may_be_too_large(1 << 20) && !load.may_be_too_large(SIZE_FLOOR));
        load.body_refused(1 << 20);
        assert_eq!(load.body_budget(5 << 20), 512 << 10);
        load.body_refused(4 << 20);
        assert_eq!(load.body_budget(5 << 20), 512 << 10, "a larger refusal does not raise it");
        load.body_answered(300 << 10);
        assert!(!load.may_be_too_large(300 << 10), "a body that got through is not suspected");
        assert!(load.may_be_too_large(301 << 10));
        for _ in 1..GROW_BODY_LIMIT_AFTER {
            load.body_answered(100 << 10);
            load.body_answered(256 << 10);
        }
        assert_eq!(load.body_budget(5 << 20), 1 << 20, "doubled after enough answers near the limit");
        load.body_refused(100);
        assert_eq!(load.body_budget(5 << 20), SIZE_FLOOR, "never below the floor");
    }

    #[test]
    fn a_lost_body_no_larger_than_known_good_lowers_what_is_known_good() {
        let load = Load::default();
        load.body_answered(1 << 20);
        assert!(!load.may_be_too_large(1 << 20));
        load.body_lost(1 << 20);
        assert!(load.may_be_too_large(1 << 20), "the redelivery of the same body is split");
        assert!(!load.may_be_too_large(512 << 10));
    }
}
