//! The window: how many requests one warm instance keeps in flight, learned from the cluster's answers (a
//! control law that sees the write queue grow before it overflows).
//!
//! Each instance sees only its own answers, so each adapts alone; a fleet converges because every instance that
//! sees the queue grow, or is refused, lowers its share. A fleet larger than the cluster's write pool needs less
//! than one request in flight per instance: below one, the window is the share of the time a request is in flight,
//! and the instance pauses after each answer.
//!
//! The law, per answer:
//! - **"later" in any share** (items 429, the request refused whole) or a timeout lowers the window in proportion
//!   (× (1 − share / 2): a request refused whole halves it), as the queue has overflowed;
//! - **the queue growing**: two answers in a row that took more than `QUEUE_RISE` above the floor (the least time
//!   a recent clean answer of a body that size took: the cluster's own time, with no queue before it) lower it by
//!   `QUEUE_BACKOFF`, as TCP Vegas and vector's adaptive request concurrency read a rise in round-trip time;
//! - each decrease happens **at most once per window**: answers to requests sent before the last decrease say
//!   nothing new (TCP's once per round trip);
//! - a clean answer within `QUEUE_LOW` of the floor **grows** it by `1 / (CLEAN_WINDOWS_TO_GROW × window)` (one
//!   more request after that many windows of such answers), only when the window was used: the request went out
//!   with the window full. Between `QUEUE_LOW` and `QUEUE_RISE` it holds: it settles where the queue is short.

use std::collections::VecDeque;
use std::time::Duration;

/// The fewest requests in flight: one at a time, in flight an eighth of the time (a pause of about seven answers'
/// time after each).
pub const MIN_WINDOW: f64 = 0.125;

/// Where a new instance starts, as a share of `BULK_CONCURRENCY`: it knows nothing of the cluster, and Lambda adds
/// instances when the stream is behind, which is when the cluster is busiest. At the default `BULK_CONCURRENCY` of
/// 2, one request at a time. Measured with `make fleet` (heavy and moderate regimes, one run each): starting at all
/// of it, at half or at a quarter changed the pool's use and the parked share less than two runs of one start
/// differ (55-69 % busy, 9.1-10.6 % parked heavy), as the window is learned within the first batches; half is kept
/// for a cluster whose pool is smaller than the fleet's first burst.
pub const START_SHARE: f64 = 0.5;

/// A rise of the answer time above the floor by this share of it, twice in a row, says the write queue is filling:
/// such an answer waited most of a service time, behind every thread busy and a request queued before it.
/// Measured with `make fleet` (heavy regime, two runs each, with `QUEUE_LOW` below it; fixed concurrency keeps the
/// pool 68-70 % busy and parks 41 %): a rise of 1.0 (growth below 0.5) kept the pool 64-71 % busy and parked
/// 8.8-9.2 %; 0.75 (0.5) 66 % and 8.5-8.8 %; 0.8 (0.3) 56-63 % and 6.2-7.7 %; 0.6 (0.25) 62-63 % and 6.2-6.8 %,
/// the fewest parked for the pool's use, kept (docs/design.md, "A fleet").
pub const QUEUE_RISE: f64 = 0.6;

/// An answer that took at most this share above the floor met a short queue or none: only such an answer grows
/// the window. Between it and `QUEUE_RISE` the window holds (a band, as TCP Vegas keeps between its alpha and
/// beta), so that it settles where the queue is short rather than growing until it overflows; measured with
/// `QUEUE_RISE`.
pub const QUEUE_LOW: f64 = 0.25;

/// How much a queue growing lowers the window: gentler than a refusal (a half), as nothing was refused yet.
pub const QUEUE_BACKOFF: f64 = 0.35;

/// Windows of clean answers over which one more request is allowed in flight. Growth slower than TCP's (one per
/// window) because a refusal costs a chunk parked in Firehose, and the queue's rise stops the growth first.
pub const CLEAN_WINDOWS_TO_GROW: f64 = 8.0;

/// Clean answers the floor is the least of: enough to hold answers that met an empty queue, few enough that a
/// cluster that became slower for good is learned again.
const FLOOR_ANSWERS: usize = 64;

/// Clean answers of a size class before its floor is known.
const FLOOR_LEAST_ANSWERS: usize = 4;

/// The floor is kept per size class of request body, classes a power of two wide (up to 2^SIZE_CLASSES bytes and
/// over): a body ten times larger takes longer with no queue at all, and the last, small chunk of a batch would
/// otherwise make every full one look queued.
const SIZE_CLASSES: usize = 24;

/// The size class of a body of `bytes`.
fn size_class(bytes: usize) -> usize {
    (bytes.max(1).ilog2() as usize).min(SIZE_CLASSES - 1)
}

/// The answer time's moving average weighs the newest answer by this: the unit of the pause below one.
const ANSWER_TIME_WEIGHT: f64 = 0.2;

/// What one answered request says, as the window reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The share of the request's documents the cluster asked for later (1 for a request refused whole); a timeout
    /// counts as 1, as the queue never answered.
    pub later: f64,
    /// Every document judged and none refused for a reason of the cluster's: the answer time measures the queue.
    pub clean: bool,
    /// How long the request took.
    pub took: Duration,
    /// Its body's size (before compression).
    pub bytes: usize,
}

/// A request's place in the window's history, taken when it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Decreases before it was sent: a request sent before the last decrease cannot decrease the window again.
    decreases: u64,
    /// Whether the window was full once it was sent (its growth is earned only then).
    window_full: bool,
}

/// The window and what it has learned of the cluster's answer times.
#[derive(Debug, Clone)]
pub struct Window {
    /// Requests allowed in flight, fractional: at or above one, its whole part in flight at once; below one, one at
    /// a time, in flight that share of the time.
    value: f64,
    max: f64,
    /// Fixed concurrency: the window stays at `max`.
    fixed: bool,
    decreases: u64,
    /// The newest clean answers' times, per size class of body: the floor of a class is their least.
    clean_times: Vec<VecDeque<Duration>>,
    /// Whether the last clean answer was slow (over `QUEUE_RISE` above its floor).
    slow_before: bool,
    /// A moving average of clean answer times; until one, the last answer's time (a cold start into a busy spell
    /// still pauses).
    answer_time: Option<Duration>,
    last_answer_time: Option<Duration>,
}

impl Window {
    /// A window within `MIN_WINDOW..=max` (`BULK_CONCURRENCY`), adapting, or always `max` when `fixed`.
    pub fn new(max: usize, fixed: bool) -> Window {
        let max = max.max(1) as f64;
        let value = if fixed { max } else { (max * START_SHARE).clamp(MIN_WINDOW, max) };
        Window {
            value,
            max,
            fixed,
            decreases: 0,
            clean_times: vec![VecDeque::new(); SIZE_CLASSES],
            slow_before: false,
            answer_time: None,
            last_answer_time: None,
        }
    }

    /// The window now.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// How many requests may be in flight now: at least one.
    pub fn in_flight(&self) -> usize {
        (self.value as usize).max(1)
    }

    /// A request goes out with `in_flight` requests in flight, itself included.
    pub fn send(&self, in_flight: usize) -> Sent {
        Sent { decreases: self.decreases, window_full: in_flight >= self.in_flight() }
    }

    /// The pause after an answer before the next request, below one request in flight: the answer time ×
    /// (1 / window − 1), jittered by ±50 % so that instances paused by one collision do not come back together.
    pub fn pause(&self) -> Duration {
        match self.answer_time.or(self.last_answer_time) {
            Some(unit) if self.value < 1.0 => unit.mul_f64((1.0 / self.value - 1.0) * (0.5 + fastrand::f64())),
            _ => Duration::ZERO,
        }
    }

    /// The cluster's own time for a body about `bytes` large, before any queue: the second least time of the recent
    /// clean answers of its size class, once there are `FLOOR_LEAST_ANSWERS` (one lucky answer is not the floor).
    pub fn floor(&self, bytes: usize) -> Option<Duration> {
        let times = &self.clean_times[size_class(bytes)];
        if times.len() < FLOOR_LEAST_ANSWERS {
            return None;
        }
        let mut least = [Duration::MAX; 2];
        for &time in times {
            if time < least[0] {
                least = [time, least[0]];
            } else if time < least[1] {
                least[1] = time;
            }
        }
        Some(least[1])
    }

    /// Adapts the window to one answer of a request `sent`.
    pub fn observe(&mut self, sent: Sent, observed: Observation) {
        self.last_answer_time = Some(observed.took);
        let floor = self.floor(observed.bytes);
        if observed.clean {
            self.learn_answer_time(observed.took, observed.bytes);
        }
        if self.fixed {
            return;
        }
        let slow = observed.clean && floor.is_some_and(|floor| observed.took > floor.mul_f64(1.0 + QUEUE_RISE));
        // One slow answer may be the cluster's own hiccup (a merge, a collection); two in a row are a queue.
        let queue_grew = slow && self.slow_before;
        self.slow_before = slow;
        if observed.later > 0.0 {
            self.decrease(sent, 1.0 - observed.later.min(1.0) / 2.0);
        } else if queue_grew {
            self.decrease(sent, 1.0 - QUEUE_BACKOFF);
        } else if observed.clean
            && sent.window_full
            && floor.is_none_or(|floor| observed.took <= floor.mul_f64(1.0 + QUEUE_LOW))
        {
            self.value = (self.value + 1.0 / (CLEAN_WINDOWS_TO_GROW * self.value.max(1.0))).min(self.max);
        }
    }

    fn decrease(&mut self, sent: Sent, factor: f64) {
        if sent.decreases == self.decreases {
            self.value = (self.value * factor).max(MIN_WINDOW);
            self.decreases += 1;
        }
    }

    fn learn_answer_time(&mut self, took: Duration, bytes: usize) {
        let times = &mut self.clean_times[size_class(bytes)];
        if times.len() == FLOOR_ANSWERS {
            times.pop_front();
        }
        times.push_back(took);
        self.answer_time = Some(match self.answer_time {
            Some(average) => average.mul_f64(1.0 - ANSWER_TIME_WEIGHT) + took.mul_f64(ANSWER_TIME_WEIGHT),
            None => took,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn clean(took: Duration) -> Observation {
        Observation { later: 0.0, clean: true, took, bytes: 1000 }
    }

    fn later(share: f64) -> Observation {
        Observation { later: share, clean: false, took: MS, bytes: 1000 }
    }

    /// Sends one request with the window full and observes its answer.
    fn answer(window: &mut Window, observed: Observation) {
        let sent = window.send(window.in_flight());
        window.observe(sent, observed);
    }

    #[test]
    fn a_new_instance_starts_at_half_of_its_concurrency_and_a_fixed_one_at_all_of_it() {
        assert_eq!(Window::new(4, false).value(), 2.0);
        assert_eq!(Window::new(2, false).value(), 1.0);
        assert_eq!(Window::new(1, false).value(), 0.5);
        let mut fixed = Window::new(4, true);
        answer(&mut fixed, later(1.0));
        assert_eq!((fixed.value(), fixed.pause()), (4.0, Duration::ZERO), "fixed concurrency never adapts");
    }

    #[test]
    fn later_lowers_the_window_in_proportion_to_its_share() {
        let mut window = Window::new(8, false);
        answer(&mut window, later(1.0));
        assert_eq!(window.value(), 2.0, "refused whole: halved");
        answer(&mut window, later(0.4));
        assert_eq!(window.value(), 1.6, "40 % later: × 0.8");
        answer(&mut window, later(0.02));
        assert_eq!(window.value(), 1.6 * 0.99);
        for _ in 0..20 {
            answer(&mut window, later(1.0));
        }
        assert_eq!(window.value(), MIN_WINDOW, "never below the floor");
        assert_eq!(window.in_flight(), 1);
    }

    #[test]
    fn requests_refused_together_lower_the_window_once() {
        let mut window = Window::new(8, false);
        let together: Vec<Sent> = (1..=4).map(|in_flight| window.send(in_flight)).collect();
        for sent in together {
            window.observe(sent, later(1.0));
        }
        assert_eq!(window.value(), 2.0, "four refusals of one window: halved once");
        answer(&mut window, later(1.0));
        assert_eq!(window.value(), 1.0, "a request sent after the decrease lowers it again");
    }

    #[test]
    fn a_rise_of_the_answer_time_above_the_floor_lowers_the_window_before_anything_is_refused() {
        let mut window = Window::new(4, false);
        for _ in 0..4 {
            answer(&mut window, clean(10 * MS));
        }
        let before = window.value();
        answer(&mut window, clean(16 * MS));
        answer(&mut window, clean(16 * MS));
        assert_eq!(window.value(), before, "0.6 of the floor above it is not a queue filling");
        answer(&mut window, clean(17 * MS));
        assert_eq!(window.value(), before, "one answer over it may be a hiccup");
        answer(&mut window, clean(17 * MS));
        assert_eq!(window.value(), before * 0.65, "two in a row are a queue: × 0.65");
        assert_eq!(window.floor(1000), Some(10 * MS));
    }

    #[test]
    fn between_a_short_queue_and_a_growing_one_the_window_holds() {
        let mut window = Window::new(4, false);
        for _ in 0..4 {
            answer(&mut window, clean(10 * MS));
        }
        let grown = window.value();
        answer(&mut window, clean(12 * MS));
        assert!(window.value() > grown, "a quarter of the floor above it: a short queue, it grows");
        let before = window.value();
        answer(&mut window, clean(13 * MS));
        answer(&mut window, clean(16 * MS));
        assert_eq!(window.value(), before, "from a quarter to 0.6 of the floor above it: it holds");
    }

    #[test]
    fn a_larger_body_is_judged_against_the_floor_of_bodies_its_size() {
        let mut window = Window::new(4, false);
        for _ in 0..4 {
            answer(&mut window, clean(2 * MS));
        }
        let before = window.value();
        for _ in 0..4 {
            answer(&mut window, Observation { bytes: 250_000, ..clean(40 * MS) });
        }
        assert!(window.value() >= before, "a quarter megabyte is slower than a kilobyte, with no queue");
        assert_eq!((window.floor(250_000), window.floor(1000)), (Some(40 * MS), Some(2 * MS)));
        assert_eq!(window.floor(131_072), Some(40 * MS), "one class: 128 KiB to 256 KiB");
    }

    #[test]
    fn the_floor_is_the_second_least_of_at_least_four_answers() {
        let mut window = Window::new(4, false);
        answer(&mut window, clean(3 * MS));
        for _ in 0..2 {
            answer(&mut window, clean(10 * MS));
        }
        assert_eq!(window.floor(1000), None, "three answers: no floor yet");
        answer(&mut window, clean(12 * MS));
        assert_eq!(window.floor(1000), Some(10 * MS), "one lucky answer is not the floor");
    }

    #[test]
    fn timeouts_and_refusals_say_nothing_of_the_floor() {
        let mut window = Window::new(4, false);
        for _ in 0..4 {
            answer(&mut window, clean(10 * MS));
        }
        answer(&mut window, Observation { later: 0.0, clean: false, took: MS, bytes: 1000 });
        answer(&mut window, later(1.0));
        assert_eq!(window.floor(1000), Some(10 * MS), "a fast refusal is no floor");
    }

    #[test]
    fn the_window_grows_by_one_over_windows_of_clean_answers_only_when_it_was_used() {
        let mut window = Window::new(8, false);
        answer(&mut window, later(1.0));
        assert_eq!(window.value(), 2.0);
        let unused = window.send(1);
        window.observe(unused, clean(MS));
        assert_eq!(window.value(), 2.0, "one request in flight of two allowed: no growth");
        let answers = (1..1_000).find(|_| {
            answer(&mut window, clean(MS));
            window.in_flight() == 3
        });
        // Windows of two to three requests, CLEAN_WINDOWS_TO_GROW of them.
        let windows = CLEAN_WINDOWS_TO_GROW as usize;
        assert!(answers.is_some_and(|answers| (2 * windows..=3 * windows).contains(&answers)), "{answers:?}");
        for _ in 0..10_000 {
            answer(&mut window, clean(MS));
        }
        assert_eq!(window.value(), 8.0, "never above BULK_CONCURRENCY");
    }

    #[test]
    fn below_one_request_in_flight_the_pause_follows_the_answer_time_and_the_window() {
        let mut window = Window::new(2, false);
        for _ in 0..20 {
            answer(&mut window, clean(10 * MS));
        }
        answer(&mut window, later(1.0));
        answer(&mut window, later(1.0));
        assert!(window.value() < 1.0 && window.value() >= 0.25, "{}", window.value());
        let unit = window.answer_time.expect("learned");
        let expected = 1.0 / window.value() - 1.0;
        let pauses: Vec<Duration> = (0..200).map(|_| window.pause()).collect();
        assert!(pauses.iter().all(|p| *p >= unit.mul_f64(expected * 0.5) && *p <= unit.mul_f64(expected * 1.5)));
        assert!(pauses.iter().any(|p| *p < unit.mul_f64(expected * 0.8)), "jittered");
        assert!(pauses.iter().any(|p| *p > unit.mul_f64(expected * 1.2)), "jittered");
    }

    #[test]
    fn before_any_clean_answer_the_pause_follows_the_last_answer() {
        let mut window = Window::new(2, false);
        for _ in 0..5 {
            answer(&mut window, Observation { later: 1.0, clean: false, took: 20 * MS, bytes: 1000 });
        }
        assert_eq!(window.value(), MIN_WINDOW);
        assert!((70 * MS..=210 * MS).contains(&window.pause()), "seven times 20 ms, ±50 %: {:?}", window.pause());
    }
}
