//! Pacing while the cluster is away: how long an invocation that sends records back to Kinesis for a cluster-level
//! reason waits before answering, so that Lambda's immediate retries neither spend the batch's retry budget in
//! seconds nor hammer a cluster that is trying to come back.
//!
//! The state lives as long as the process (across warm invocations): the number of invocations in a row that
//! found the cluster away. The first request the cluster answers normally resets it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::cause::{Cause, Fix};

/// Invocations in a row that sent records back for a cluster-level reason.
#[derive(Debug, Default)]
pub struct Pacing {
    away: AtomicU32,
}

impl Pacing {
    /// Whether the last invocations found the cluster away: the next one probes with one document first.
    pub fn probing(&self) -> bool {
        self.away.load(Ordering::Relaxed) > 0
    }

    /// The cluster answered a request normally: pacing is over.
    pub fn cluster_answered(&self) {
        self.away.store(0, Ordering::Relaxed);
    }

    /// This invocation sends records back for a cluster-level reason: the wait before answering, exponential with
    /// full jitter from `first` up to `cap`. `cap` zero turns pacing off.
    pub fn cluster_away(&self, first: Duration, cap: Duration) -> Duration {
        let away = self.away.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        full_jitter(away, first, cap)
    }
}

/// Whether a failure says the cluster itself is away or refusing (so pacing applies): no answer, a 5xx, a timeout,
/// auth, a block, a configuration refusal. Not a document's fault, a busy cluster (Firehose takes that), the
/// deadline, or Firehose's own trouble.
pub fn is_cluster_level(cause: Cause) -> bool {
    match cause {
        Cause::Unknown => true,
        Cause::Misconfigured(fix) => fix != Fix::FirehoseStream,
        Cause::Document
        | Cause::ClusterBusy
        | Cause::Deadline
        | Cause::FirehoseRefused
        | Cause::RedeliveredAnyway
        | Cause::NothingToIndex => false,
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
            pacing.cluster_away(100 * MS, 10_000 * MS);
        }
        assert!(pacing.probing());
        assert_eq!(pacing.away.load(Ordering::Relaxed), 5);
        pacing.cluster_answered();
        assert!(!pacing.probing());
    }

    #[test]
    fn only_cluster_level_causes_pace() {
        assert!(is_cluster_level(Cause::Unknown));
        assert!(is_cluster_level(Cause::Misconfigured(Fix::ShardLimit)));
        assert!(!is_cluster_level(Cause::Misconfigured(Fix::FirehoseStream)));
        assert!(!is_cluster_level(Cause::FirehoseRefused));
        assert!(!is_cluster_level(Cause::ClusterBusy));
    }
}
