//! How much one warm instance sends at once, learned from the cluster's answers and kept across warm invocations:
//! the requests in flight (additive increase, multiplicative decrease, as TCP and vector's adaptive request
//! concurrency do) and the largest request body the way to the cluster takes (an engine's 413, or a proxy that
//! closes the connection on a body over its limit without reading it).
//!
//! Each instance sees only its own answers, so each adapts alone; a fleet of them converges on what the cluster
//! takes because every instance that is refused halves its share.

use std::sync::Mutex;

/// A body at most this large is never suspected of being refused for its size: a connection lost while sending it
/// says the cluster is away. Proxies' limits are far larger (nginx's default `client_max_body_size` is 1 MB).
pub const SIZE_FLOOR: usize = 16 * 1024;

/// Answers of bodies near the learned limit before it is doubled again: a limit learned from a passing fault (a
/// cluster that reset connections at cold start) does not shrink requests for ever, and a real one costs one
/// refused request, split at once, every this many answers.
const GROW_BODY_LIMIT_AFTER: u32 = 32;

/// Clean answers, in windows of the requests allowed in flight, before one more is allowed: slower than TCP's one
/// window, because a request refused whole costs a chunk parked in Firehose. Measured with the s32 fleet (single
/// runs): in the debug build, 1 window parked 14.4 % against fixed concurrency's 42.0 %, 4 windows 11.4 % against
/// 40.2 %; in release, 6.3 % and 8.5 % against 42-43 %, the drain 7.2 s and 5.7 s.
const CLEAN_WINDOWS_TO_GROW: usize = 4;

/// What the instance has learned; shared by the chunks of an invocation and by the invocations of a process.
#[derive(Debug, Default)]
pub struct Load {
    state: Mutex<Learned>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Learned {
    /// Requests allowed in flight; 0 until the first answer (then `BULK_CONCURRENCY`).
    concurrency: usize,
    /// Clean answers since the concurrency last changed: one more request in flight after as many as it allows.
    clean_answers: usize,
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
        let learned = self.learned();
        match learned.concurrency {
            0 => max,
            current => current.clamp(1, max),
        }
    }

    /// Adapts the requests in flight to one answer: halved when the cluster is saturated, one more after
    /// `CLEAN_WINDOWS_TO_GROW` windows of clean answers.
    pub fn answered(&self, signal: Signal, max: usize) {
        let mut learned = self.learned();
        let current = match learned.concurrency {
            0 => max,
            current => current.clamp(1, max),
        };
        match signal {
            Signal::Saturated => {
                learned.concurrency = (current / 2).max(1);
                learned.clean_answers = 0;
            }
            Signal::Clean => {
                learned.clean_answers += 1;
                learned.concurrency = current;
                if learned.clean_answers >= CLEAN_WINDOWS_TO_GROW * current {
                    learned.concurrency = (current + 1).min(max);
                    learned.clean_answers = 0;
                }
            }
            Signal::Neither => learned.concurrency = current,
        }
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

    #[test]
    fn concurrency_halves_when_saturated_and_grows_by_one_after_a_window_of_clean_answers() {
        let load = Load::default();
        assert_eq!(load.concurrency(8), 8, "it starts at BULK_CONCURRENCY");
        load.answered(Signal::Saturated, 8);
        assert_eq!(load.concurrency(8), 4);
        load.answered(Signal::Saturated, 8);
        load.answered(Signal::Saturated, 8);
        load.answered(Signal::Saturated, 8);
        assert_eq!(load.concurrency(8), 1, "never below one");
        for _ in 0..CLEAN_WINDOWS_TO_GROW {
            assert_eq!(load.concurrency(8), 1);
            load.answered(Signal::Clean, 8);
        }
        assert_eq!(load.concurrency(8), 2, "one more after windows of clean answers at one in flight");
        for _ in 0..2 * CLEAN_WINDOWS_TO_GROW - 1 {
            load.answered(Signal::Clean, 8);
        }
        load.answered(Signal::Neither, 8);
        assert_eq!(load.concurrency(8), 2, "an answer neither clean nor saturated changes nothing");
        load.answered(Signal::Clean, 8);
        assert_eq!(load.concurrency(8), 3);
        for _ in 0..100 {
            load.answered(Signal::Clean, 8);
        }
        assert_eq!(load.concurrency(8), 8, "never above BULK_CONCURRENCY");
        assert_eq!(load.concurrency(2), 2, "a lower setting (a new configuration) bounds what was learned");
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
