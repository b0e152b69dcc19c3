//! Pacing while the cluster is away or busy: how long an invocation that sends records back to Kinesis for a
//! reason of the cluster's (`Cause::paces`) waits before answering, so that Lambda's immediate retries neither
//! spend the batch's retry budget in seconds nor hammer a cluster that is trying to come back.
//!
//! The state lives as long as the process (across warm invocations): the number of invocations in a row that
//! found the cluster away or busy. The first request the cluster answers normally resets it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Invocations in a row that sent records back for a reason of the cluster's.
#[derive(Debug, Default)]
pub struct Pacing {
    paced: AtomicU32,
}

impl Pacing {
    /// Whether the last invocations paced (the cluster away or busy): the next one probes with one document first.
    pub fn probing(&self) -> bool {
        self.paced.load(Ordering::Relaxed) > 0
    }

    /// The cluster answered a request normally: pacing is over.
    pub fn cluster_answered(&self) {
        self.paced.store(0, Ordering::Relaxed);
    }

    /// This invocation sends records back for a reason of the cluster's: the wait before answering, exponential with
    /// full jitter from `first` up to `cap`. `cap` zero turns pacing off.
    pub fn pace_again(&self, first: Duration, cap: Duration) -> Duration {
        let paced = self.paced.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        full_jitter(paced, first, cap)
    }
}

/// "Full jitter" backoff for the `attempt`th time (from 1): a random pause up to `first` × 2^(attempt-1), capped.
pub fn full_jitter(attempt: u32, first: Duration, cap: Duration) -> Duration {
    ceiling(attempt, first, cap).mul_f64(fastrand::f64())
}

/// The most `full_jitter` may wait on the `attempt`th time.
pub fn ceiling(attempt: u32, first: Duration, cap: Duration) -> Duration {
    first.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_ceiling_doubles_from_the_first_pause_up_to_the_cap() {
        let ceilings: Vec<Duration> = (1..=7).map(|attempt| ceiling(attempt, 100 * MS, 2000 * MS)).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000].map(|ms| ms * MS));
        assert_eq!(ceiling(u32::MAX, 100 * MS, 2000 * MS), 2000 * MS, "no overflow");
        assert_eq!(ceiling(3, 100 * MS, Duration::ZERO), Duration::ZERO, "a zero cap turns it off");
    }

    #[test]
    fn jitter_stays_under_the_ceiling_and_spreads() {
        let pauses: Vec<Duration> = (0..200).map(|_| full_jitter(4, 100 * MS, 2000 * MS)).collect();
        assert!(pauses.iter().all(|pause| *pause <= 800 * MS));
        assert!(pauses.iter().any(|pause| *pause < 200 * MS) && pauses.iter().any(|pause| *pause > 600 * MS));
    }

    #[test]
    fn pacing_grows_while_the_cluster_is_away_and_ends_when_it_answers() {
        let pacing = Pacing::default();
        assert!(!pacing.probing());
        for _ in 0..5 {
            pacing.pace_again(100 * MS, 10_000 * MS);
        }
        assert!(pacing.probing());
        assert_eq!(pacing.paced.load(Ordering::Relaxed), 5);
        pacing.cluster_answered();
        assert!(!pacing.probing());
    }
}
