//! The largest request body the way to the cluster takes, learned from its answers: an engine's 413, or a proxy that
//! closes the connection on a body over its limit without reading it. Searched between the largest body taken and
//! the smallest refused, so that it ends close to the real limit rather than at a half of it.

/// A body at most this large is never suspected of being refused for its size: a connection lost while sending it
/// says the cluster is away. Proxies' limits are far larger (nginx's default `client_max_body_size` is 1 MB).
pub const SIZE_FLOOR: usize = 16 * 1024;

/// The search stops once the largest body taken is within this share of the smallest refused: the chunks are then
/// cut to the body taken, at least 7/8 of the real limit, and no more requests are refused to learn it closer.
const CLOSE_ENOUGH: f64 = 1.0 / 8.0;

/// Answers of bodies of at least half the limit before the search goes on above it (the smallest refusal raised by
/// a quarter): a limit learned from a passing fault (a cluster that reset connections at cold start) does not
/// shrink requests for ever, and a real one costs a refused request or two, split at once, every this many answers.
const SEARCH_AGAIN_AFTER: u32 = 64;

/// What the instance knows of the body limit, across warm invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    /// `BULK_MAX_BYTES`.
    configured: usize,
    /// The largest plain body the cluster answered (whatever it said, but a 413).
    taken: usize,
    /// The smallest plain body refused for its size, since the search last began.
    refused: Option<usize>,
    answers_near_limit: u32,
}

impl BodyLimit {
    /// Nothing learned: chunks are cut to `configured` bytes (`BULK_MAX_BYTES`).
    pub fn new(configured: usize) -> BodyLimit {
        BodyLimit { configured, taken: 0, refused: None, answers_near_limit: 0 }
    }

    /// The most body bytes the next chunk may hold: `BULK_MAX_BYTES` until a body is refused; then halfway
    /// between the largest body taken and the smallest refused, and once those are close, the largest taken.
    pub fn budget(&self) -> usize {
        let Some(refused) = self.refused else { return self.configured };
        let budget = match refused - self.taken.min(refused) {
            gap if (gap as f64) <= refused as f64 * CLOSE_ENOUGH => self.taken,
            gap => self.taken + gap / 2,
        };
        budget.max(SIZE_FLOOR).min(self.configured)
    }

    /// The limit learned, once a body was refused: what chunks are cut to.
    pub fn learned(&self) -> Option<usize> {
        self.refused.map(|_| self.budget())
    }

    /// Whether a request of `plain` body bytes that lost its connection while being sent may have been refused for
    /// its size: it is larger than any body known to get through, and than `SIZE_FLOOR`.
    pub fn may_be_too_large(&self, plain: usize) -> bool {
        plain > SIZE_FLOOR.max(self.taken)
    }

    /// A body of `plain` bytes reached the cluster (it answered, whatever it said, but a 413).
    pub fn answered(&mut self, plain: usize) {
        self.taken = self.taken.max(plain);
        let Some(refused) = self.refused else { return };
        if self.taken >= refused {
            // The limit was raised (or the refusal was a passing fault): search above what got through.
            self.refused = Some(self.taken.saturating_mul(2));
        }
        if plain >= self.budget() / 2 {
            self.answers_near_limit += 1;
            if self.answers_near_limit >= SEARCH_AGAIN_AFTER {
                self.refused = self.refused.map(|refused| refused.saturating_add(refused / 4));
                self.answers_near_limit = 0;
            }
        }
    }

    /// A body of `plain` bytes was refused for its size (413), or lost its connection twice while being sent when it
    /// was larger than anything known to get through.
    pub fn refused(&mut self, plain: usize) {
        self.refused = Some(self.refused.map_or(plain, |refused| refused.min(plain)));
        if self.taken >= plain {
            // The limit was lowered below what got through before: what got through says nothing any more.
            self.taken = plain / 2;
        }
        self.answers_near_limit = 0;
    }

    /// A body of `plain` bytes lost its connection while being sent though bodies that large got through before:
    /// taken as the cluster away, but what is known to get through is no larger than half of it from now on, so
    /// that if it was the body's size after all (a proxy's limit lowered), the redelivery finds out.
    pub fn lost(&mut self, plain: usize) {
        self.taken = self.taken.min(plain / 2);
    }

    /// The largest plain body known to reach the cluster.
    pub fn taken(&self) -> usize {
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    /// Sends a body of `size` bytes to a way that refuses bodies over `limit`: refused, it is resent in halves, and a
    /// half larger than the budget is halved again before it is sent, as the indexing stage does.
    fn send(body: &mut BodyLimit, size: usize, limit: usize, refusals: &mut usize) {
        if size > body.budget() {
            send(body, size / 2, limit, refusals);
            return send(body, size - size / 2, limit, refusals);
        }
        if size <= limit {
            return body.answered(size);
        }
        *refusals += 1;
        body.refused(size);
        send(body, size / 2, limit, refusals);
        send(body, size - size / 2, limit, refusals);
    }

    /// Chunks cut to the budget, against a way that refuses bodies over `limit`: the budget once the search ends,
    /// and the refusals it cost.
    fn search(limit: usize, configured: usize) -> (usize, usize) {
        let mut body = BodyLimit::new(configured);
        let mut refusals = 0;
        for _ in 0..200 {
            let size = body.budget();
            send(&mut body, size, limit, &mut refusals);
        }
        (body.budget(), refusals)
    }

    #[test]
    fn the_search_ends_within_an_eighth_of_the_real_limit_and_stays_there() {
        for limit in [256 * KIB, 128 * KIB, 1000 * KIB, 300 * KIB + 17] {
            let (learned, refusals) = search(limit, 5 << 20);
            assert!(learned <= limit && learned as f64 >= limit as f64 * 0.875, "{learned} for {limit}");
            // The search itself costs a few refusals; then one per SEARCH_AGAIN_AFTER answers near the limit.
            assert!(refusals <= 8 + 2 * (200 / SEARCH_AGAIN_AFTER as usize), "{refusals} refusals for {limit}");
        }
    }

    #[test]
    fn the_first_refusal_halves_the_budget_and_the_next_search_between() {
        let mut body = BodyLimit::new(5 << 20);
        assert_eq!((body.budget(), body.learned()), (5 << 20, None));
        assert!(body.may_be_too_large(1 << 20) && !body.may_be_too_large(SIZE_FLOOR));
        body.refused(1 << 20);
        assert_eq!(body.budget(), 512 * KIB, "nothing taken yet: half of the refused body");
        body.answered(512 * KIB);
        assert_eq!(body.budget(), 768 * KIB, "halfway between taken and refused");
        body.refused(768 * KIB);
        assert_eq!(body.budget(), 640 * KIB);
        body.refused(4 << 20);
        assert_eq!(body.budget(), 640 * KIB, "a larger refusal changes nothing");
        assert!(!body.may_be_too_large(512 * KIB) && body.may_be_too_large(513 * KIB));
        body.refused(100);
        assert_eq!(body.budget(), SIZE_FLOOR, "never below the floor");
        assert_eq!(BodyLimit::new(64 * KIB).budget(), 64 * KIB);
    }

    #[test]
    fn answers_near_the_limit_search_again_above_it() {
        let mut body = BodyLimit::new(5 << 20);
        body.refused(256 * KIB);
        body.answered(240 * KIB);
        assert_eq!(body.budget(), 240 * KIB, "within an eighth: cut to what got through");
        for _ in 0..3 * SEARCH_AGAIN_AFTER {
            body.answered(100 * KIB);
        }
        assert_eq!(body.budget(), 240 * KIB, "bodies under half the limit say nothing of it");
        // The answer of 240 KiB was the first near the limit.
        for _ in 2..SEARCH_AGAIN_AFTER {
            body.answered(200 * KIB);
        }
        assert_eq!(body.budget(), 240 * KIB);
        body.answered(200 * KIB);
        assert_eq!(body.budget(), 280 * KIB, "the refusal raised by a quarter: halfway between 240 and 320 KiB");
        body.answered(1 << 20);
        assert_eq!(body.taken(), 1 << 20);
        assert_eq!(body.budget(), 1536 * KIB, "a larger body got through: searched above it, up to twice it");
    }

    #[test]
    fn a_lost_body_no_larger_than_known_good_lowers_what_is_known_good() {
        let mut body = BodyLimit::new(5 << 20);
        body.answered(1 << 20);
        assert!(!body.may_be_too_large(1 << 20));
        body.lost(1 << 20);
        assert!(body.may_be_too_large(1 << 20), "the redelivery of the same body is split");
        assert!(!body.may_be_too_large(512 * KIB));
        body.refused(600 * KIB);
        body.refused(400 * KIB);
        assert_eq!(body.taken(), 200 * KIB, "a refusal below what got through forgets it");
    }
}
