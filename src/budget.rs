//! An invocation's time: its deadline and the margin it keeps before it, one value, so that "how long is left" is
//! said in one place.

use std::time::Duration;

use tokio::time::Instant;

/// The least time a request can have (`ES_TIMEOUT_MS`'s own minimum).
pub const MIN_REQUEST_TIME: Duration = Duration::from_millis(100);

/// The time an invocation may spend: until `deadline`, less `margin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    deadline: Instant,
    margin: Duration,
}

impl Budget {
    /// Work ends `margin` before `deadline`.
    pub fn new(deadline: Instant, margin: Duration) -> Budget {
        Budget { deadline, margin }
    }

    /// The budget of an invocation that has until `deadline`, keeping `DEADLINE_MARGIN_MS` (`configured`) but never
    /// more than a quarter of the time it has, so that a short function timeout (Lambda's default is 3 s) still
    /// leaves most of it for the work. When what is left is too short for any request (the second value), the whole
    /// time is margin: nothing is sent, and the records go back to Kinesis.
    pub fn for_invocation(deadline: Instant, configured: Duration) -> (Budget, bool) {
        let allowed = deadline.saturating_duration_since(Instant::now());
        let margin = configured.min(allowed / 4);
        match allowed.saturating_sub(margin) < MIN_REQUEST_TIME {
            true => (Budget { deadline, margin: allowed }, true),
            false => (Budget { deadline, margin }, false),
        }
    }

    /// The invocation's deadline, as Lambda gave it.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The margin kept before the deadline.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// The time left for work now: until the deadline, less the margin.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()).saturating_sub(self.margin)
    }

    /// When work must end: the deadline less the margin.
    pub fn until(&self) -> Instant {
        Instant::now() + self.left()
    }

    /// `wanted`, cut to the time left.
    pub fn cap(&self, wanted: Duration) -> Duration {
        wanted.min(self.left())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn margin_for(configured: Duration, allowed: Duration) -> (Duration, bool) {
        let (budget, too_short) = Budget::for_invocation(Instant::now() + allowed, configured);
        (budget.margin(), too_short)
    }

    #[tokio::test(start_paused = true)]
    async fn the_margin_is_at_most_a_quarter_of_the_time_allowed() {
        assert_eq!(margin_for(ms(2000), ms(60_000)), (ms(2000), false), "a long timeout keeps the setting");
        assert_eq!(margin_for(ms(2000), ms(3000)), (ms(750), false), "Lambda's default 3 s timeout");
        assert_eq!(margin_for(ms(2000), ms(2000)), (ms(500), false));
        assert_eq!(margin_for(ms(0), ms(150)), (ms(0), false));
        assert_eq!(margin_for(ms(2000), ms(120)), (ms(120), true), "too short for any request: all margin");
        assert_eq!(margin_for(ms(0), ms(100)), (ms(0), false), "exactly the least a request can have is enough");
        assert_eq!(margin_for(ms(0), ms(99)), (ms(99), true));
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_left_is_the_time_before_the_margin() {
        let budget = Budget::new(Instant::now() + ms(1000), ms(300));
        assert_eq!(budget.left(), ms(700));
        assert_eq!(budget.cap(ms(5000)), ms(700));
        assert_eq!(budget.cap(ms(10)), ms(10));
        assert_eq!(budget.until(), Instant::now() + ms(700), "the deadline less the margin");
        tokio::time::advance(ms(800)).await;
        assert_eq!(budget.left(), Duration::ZERO, "inside the margin nothing is left");
    }
}
