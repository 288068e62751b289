//! The provider's global rate limit, shared by every session: requests per minute, tokens per
//! minute and concurrent calls.
//!
//! One limiter lives in a dedicated Durable Object (one per provider key) and is persisted
//! with serde between calls. Requests and tokens are token buckets refilled continuously from
//! `now_ms`; concurrency is a set of leases. A caller acquires a lease with an estimate of the
//! tokens it will use and releases it with the real count from the provider's usage report,
//! which corrects the bucket. Leases expire, so a caller that crashed mid-call cannot hold a
//! slot forever.
//!
//! Bucket levels are integers in units of 1/60000 of a request or token: refilling `per_min`
//! units per minute is then exactly `per_min` scaled units per millisecond, with no rounding
//! drift however often the limiter is consulted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A lease not released within this time is dropped.
pub const LEASE_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Wait suggested when every concurrency slot is taken: leases normally end far sooner than
/// they expire, so the caller should look again soon rather than at the expiry.
pub const CONCURRENCY_RETRY_MS: u64 = 1000;

const MS_PER_MIN: i128 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub est_tokens: u32,
    pub acquired_ms: u64,
    pub expires_ms: u64,
    /// A follow-on call reserved with this lease ([`ProviderLimiter::reserve_follow_on`]): one
    /// request and this many tokens, already taken from the buckets.
    #[serde(default)]
    pub follow_on: Option<u32>,
}

/// Global limits for one provider key. A limit of 0 means "unlimited" for that dimension
/// (a local model server has no per-minute quota).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderLimiter {
    pub requests_per_min: u32,
    pub tokens_per_min: u32,
    pub max_concurrent: u32,
    pub lease_timeout_ms: u64,
    /// Request bucket level, in 1/60000 requests.
    request_level: i64,
    /// Token bucket level, in 1/60000 tokens. Negative after a call used more than estimated.
    token_level: i64,
    last_refill_ms: u64,
    leases: BTreeMap<String, Lease>,
}

impl ProviderLimiter {
    /// A limiter with full buckets and no leases.
    pub fn new(requests_per_min: u32, tokens_per_min: u32, max_concurrent: u32) -> Self {
        ProviderLimiter {
            requests_per_min,
            tokens_per_min,
            max_concurrent,
            lease_timeout_ms: LEASE_TIMEOUT_MS,
            request_level: capacity(requests_per_min),
            token_level: capacity(tokens_per_min),
            last_refill_ms: 0,
            leases: BTreeMap::new(),
        }
    }

    pub fn with_lease_timeout(mut self, lease_timeout_ms: u64) -> Self {
        self.lease_timeout_ms = lease_timeout_ms;
        self
    }

    /// Applies new limits (configuration changed since the state was persisted), keeping
    /// what has been spent.
    pub fn reconfigure(&mut self, requests_per_min: u32, tokens_per_min: u32, max_concurrent: u32) {
        self.requests_per_min = requests_per_min;
        self.tokens_per_min = tokens_per_min;
        self.max_concurrent = max_concurrent;
        self.request_level = self.request_level.min(capacity(requests_per_min));
        self.token_level = self.token_level.min(capacity(tokens_per_min));
    }

    /// Takes a concurrency slot, one request and `est_tokens` tokens for `lease_id`, or says
    /// how many milliseconds to wait before asking again (a hint: other callers may come
    /// first). Acquiring a lease that is already held succeeds without charging twice, so a
    /// caller may safely repeat a request whose answer it lost.
    pub fn try_acquire(&mut self, lease_id: &str, est_tokens: u32, now_ms: u64) -> Result<(), u64> {
        self.advance(now_ms);
        if self.leases.contains_key(lease_id) {
            return Ok(());
        }
        let mut wait = 0u64;
        if self.max_concurrent > 0 && self.leases.len() >= self.max_concurrent as usize {
            let first_expiry = self
                .leases
                .values()
                .map(|l| l.expires_ms)
                .min()
                .unwrap_or(now_ms);
            wait = wait.max(
                CONCURRENCY_RETRY_MS
                    .min(first_expiry.saturating_sub(now_ms))
                    .max(1),
            );
        }
        if self.requests_per_min > 0 {
            wait = wait.max(wait_for(self.request_level, 1, self.requests_per_min));
        }
        if self.tokens_per_min > 0 {
            // A call bigger than the whole bucket could never fit; let it in on a full bucket
            // and pay the debt afterwards instead of refusing it forever.
            let need = est_tokens.min(self.tokens_per_min);
            wait = wait.max(wait_for(self.token_level, need, self.tokens_per_min));
        }
        if wait > 0 {
            return Err(wait);
        }
        self.take(1, est_tokens);
        self.leases.insert(
            lease_id.to_string(),
            Lease {
                est_tokens,
                acquired_ms: now_ms,
                expires_ms: now_ms.saturating_add(self.lease_timeout_ms),
                follow_on: None,
            },
        );
        Ok(())
    }

    /// Ends a lease and corrects the token bucket by `actual_tokens - est_tokens`. Returns
    /// false when the lease was unknown (already released or expired); then nothing changes,
    /// since an expired lease's estimate was already charged.
    pub fn release(&mut self, lease_id: &str, actual_tokens: u32, now_ms: u64) -> bool {
        self.advance(now_ms);
        let Some(mut lease) = self.leases.remove(lease_id) else {
            return false;
        };
        self.refund_follow_on(&mut lease);
        self.correct(lease.est_tokens, actual_tokens);
        true
    }

    /// Sets one request and up to twice `est_tokens` aside for `lease_id`'s next call, when the
    /// buckets hold them beyond what is taken already: that call can then start at once, its
    /// limiter request ([`Self::go_on`]) sent while it runs instead of awaited before it. Taken
    /// from the buckets now, so the limits hold exactly; given back by [`Self::release`].
    /// Returns the tokens set aside (`u32::MAX` without a token limit), or `None`: no lease,
    /// no room, or the set-aside would exceed a quarter of a minute's tokens (a call that
    /// large waits its turn like any other).
    pub fn reserve_follow_on(
        &mut self,
        lease_id: &str,
        est_tokens: u32,
        now_ms: u64,
    ) -> Option<u32> {
        self.advance(now_ms);
        let lease = self.leases.get(lease_id)?;
        if lease.follow_on.is_some() {
            return lease.follow_on;
        }
        let tokens = match self.tokens_per_min {
            0 => u32::MAX,
            tpm => {
                let want = est_tokens.saturating_mul(2);
                if want > tpm / 4 || self.token_level < scaled(want) {
                    return None;
                }
                want
            }
        };
        if self.requests_per_min > 0 && self.request_level < scaled(1) {
            return None;
        }
        self.take(1, tokens);
        self.leases.get_mut(lease_id).expect("checked").follow_on = Some(tokens);
        Some(tokens)
    }

    /// `lease_id`'s holder has started its next call (estimated at `est_tokens`) after one
    /// that used `used_tokens`, keeping its slot: the call set aside by
    /// [`Self::reserve_follow_on`] is spent, the rest of its tokens given back and the lease
    /// renewed. The call is already on its way, so this never refuses: without a set-aside
    /// (the lease expired meanwhile) the call is charged as it is, into debt if need be.
    /// Returns whether it had one.
    pub fn go_on(
        &mut self,
        lease_id: &str,
        used_tokens: u32,
        est_tokens: u32,
        now_ms: u64,
    ) -> bool {
        self.advance(now_ms);
        let expires_ms = now_ms.saturating_add(self.lease_timeout_ms);
        let renewed = Lease {
            est_tokens,
            acquired_ms: now_ms,
            expires_ms,
            follow_on: None,
        };
        let reserved = match self.leases.insert(lease_id.to_string(), renewed) {
            Some(old) => {
                self.correct(old.est_tokens, used_tokens);
                old.follow_on
            }
            None => None,
        };
        match reserved {
            // The set-aside's request is this call's; its tokens go back for the estimate.
            Some(tokens) if self.tokens_per_min > 0 => self.token_level += scaled(tokens),
            Some(_) => {}
            None => self.take(1, 0),
        }
        if self.tokens_per_min > 0 {
            self.token_level =
                (self.token_level - scaled(est_tokens)).min(capacity(self.tokens_per_min));
        }
        reserved.is_some()
    }

    /// Gives a lease's unused set-aside back to the buckets (never past full).
    fn refund_follow_on(&mut self, lease: &mut Lease) {
        if let Some(tokens) = lease.follow_on.take() {
            if self.requests_per_min > 0 {
                self.request_level =
                    (self.request_level + scaled(1)).min(capacity(self.requests_per_min));
            }
            self.correct(tokens, 0);
        }
    }

    /// Takes `requests` and `tokens` from the buckets that have a limit.
    fn take(&mut self, requests: u32, tokens: u32) {
        if self.requests_per_min > 0 {
            self.request_level -= scaled(requests);
        }
        if self.tokens_per_min > 0 {
            self.token_level -= scaled(tokens);
        }
    }

    /// Corrects the token bucket by what a call used against its estimate.
    fn correct(&mut self, est_tokens: u32, used_tokens: u32) {
        if self.tokens_per_min > 0 {
            let correction = scaled(est_tokens) - scaled(used_tokens);
            self.token_level = (self.token_level + correction).min(capacity(self.tokens_per_min));
        }
    }

    /// Gives `back` (a lease the caller holds, with the tokens it used) and then asks for
    /// `lease_id`, as [`Self::release`] then [`Self::try_acquire`]: a caller going straight on
    /// to its next call hands its slot over in one request, which the limiter stores once.
    /// The lease given back is released even when the new one must wait.
    pub fn hand_over(
        &mut self,
        back: Option<(&str, u32)>,
        lease_id: &str,
        est_tokens: u32,
        now_ms: u64,
    ) -> Result<(), u64> {
        if let Some((old, used)) = back {
            self.release(old, used, now_ms);
        }
        self.try_acquire(lease_id, est_tokens, now_ms)
    }

    /// Leases currently held (after dropping expired ones at `now_ms`).
    pub fn active_leases(&mut self, now_ms: u64) -> usize {
        self.advance(now_ms);
        self.leases.len()
    }

    pub fn lease(&self, lease_id: &str) -> Option<&Lease> {
        self.leases.get(lease_id)
    }

    /// Whole requests available now (`u32::MAX` when unlimited).
    pub fn available_requests(&mut self, now_ms: u64) -> u32 {
        self.advance(now_ms);
        available(self.request_level, self.requests_per_min)
    }

    /// Whole tokens available now (`u32::MAX` when unlimited); 0 while in debt.
    pub fn available_tokens(&mut self, now_ms: u64) -> u32 {
        self.advance(now_ms);
        available(self.token_level, self.tokens_per_min)
    }

    /// Refills the buckets and drops expired leases. A clock that goes backwards (another
    /// machine, a restored snapshot) refills nothing rather than underflowing.
    fn advance(&mut self, now_ms: u64) {
        if now_ms > self.last_refill_ms {
            let elapsed = (now_ms - self.last_refill_ms) as i128;
            self.request_level = refill(self.request_level, self.requests_per_min, elapsed);
            self.token_level = refill(self.token_level, self.tokens_per_min, elapsed);
            self.last_refill_ms = now_ms;
        }
        self.leases.retain(|_, l| l.expires_ms > now_ms);
    }
}

fn scaled(units: u32) -> i64 {
    units as i64 * MS_PER_MIN as i64
}

fn capacity(per_min: u32) -> i64 {
    scaled(per_min)
}

fn refill(level: i64, per_min: u32, elapsed_ms: i128) -> i64 {
    // Each millisecond adds `per_min` scaled units; i128 so a long idle gap cannot overflow.
    let filled = level as i128 + per_min as i128 * elapsed_ms;
    filled.min(capacity(per_min) as i128) as i64
}

/// Milliseconds until `level` reaches `need` units at `per_min` per minute (0 if it already has).
fn wait_for(level: i64, need: u32, per_min: u32) -> u64 {
    let missing = scaled(need) as i128 - level as i128;
    if missing <= 0 {
        return 0;
    }
    let rate = per_min as i128;
    ((missing + rate - 1) / rate) as u64
}

fn available(level: i64, per_min: u32) -> u32 {
    if per_min == 0 {
        return u32::MAX;
    }
    (level.max(0) / MS_PER_MIN as i64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn starts_full() {
        let mut l = ProviderLimiter::new(60, 10_000, 4);
        assert_eq!(l.available_requests(T0), 60);
        assert_eq!(l.available_tokens(T0), 10_000);
        assert_eq!(l.active_leases(T0), 0);
    }

    #[test]
    fn request_bucket_limits_and_refills_continuously() {
        // 60 rpm = one request per second.
        let mut l = ProviderLimiter::new(60, 0, 0);
        for i in 0..60 {
            assert_eq!(l.try_acquire(&format!("r{i}"), 0, T0), Ok(()));
        }
        assert_eq!(l.try_acquire("over", 0, T0), Err(1000));
        assert_eq!(l.try_acquire("over", 0, T0 + 400), Err(600));
        assert_eq!(l.try_acquire("over", 0, T0 + 1000), Ok(()));
        assert_eq!(l.try_acquire("next", 0, T0 + 1000), Err(1000));
        // Half a request refilled is not enough, and does not get lost either.
        assert_eq!(l.try_acquire("next", 0, T0 + 1500), Err(500));
        assert_eq!(l.try_acquire("next", 0, T0 + 2000), Ok(()));
    }

    #[test]
    fn token_bucket_limits_by_estimate() {
        let mut l = ProviderLimiter::new(0, 6000, 0); // 100 tokens per second
        assert_eq!(l.try_acquire("a", 5000, T0), Ok(()));
        assert_eq!(l.available_tokens(T0), 1000);
        assert_eq!(l.try_acquire("b", 1500, T0), Err(5000));
        assert_eq!(l.try_acquire("b", 1500, T0 + 4999), Err(1));
        assert_eq!(l.try_acquire("b", 1500, T0 + 5000), Ok(()));
        assert_eq!(l.available_tokens(T0 + 5000), 0);
    }

    #[test]
    fn release_corrects_by_actual_usage() {
        let mut l = ProviderLimiter::new(0, 6000, 0);
        l.try_acquire("a", 4000, T0).unwrap();
        assert!(l.release("a", 1000, T0));
        assert_eq!(l.available_tokens(T0), 5000);
        l.try_acquire("b", 1000, T0).unwrap();
        // Used 3000 more than estimated: the bucket goes into debt.
        assert!(l.release("b", 8000, T0));
        assert_eq!(l.available_tokens(T0), 0);
        assert_eq!(l.try_acquire("c", 1, T0), Err(30_010));
        assert_eq!(l.try_acquire("c", 1, T0 + 30_010), Ok(()));
    }

    #[test]
    fn refund_never_overfills() {
        let mut l = ProviderLimiter::new(0, 6000, 0);
        l.try_acquire("a", 100, T0).unwrap();
        assert!(l.release("a", 0, T0 + 60_000));
        assert_eq!(l.available_tokens(T0 + 60_000), 6000);
    }

    #[test]
    fn release_of_unknown_lease_changes_nothing() {
        let mut l = ProviderLimiter::new(10, 1000, 2);
        l.try_acquire("a", 500, T0).unwrap();
        let before = l.clone();
        assert!(!l.release("nope", 900, T0));
        assert_eq!(l, before);
        assert!(l.release("a", 500, T0));
        assert!(!l.release("a", 500, T0), "double release");
        assert_eq!(l.available_tokens(T0), 500);
    }

    #[test]
    fn hand_over_is_a_release_then_an_acquire() {
        let mut l = ProviderLimiter::new(60, 6000, 1);
        l.try_acquire("a", 4000, T0).unwrap();
        // The only slot is a's: b waits, c (handed a's slot) gets it at once.
        assert_eq!(l.try_acquire("b", 100, T0), Err(CONCURRENCY_RETRY_MS));
        let mut apart = l.clone();
        assert!(apart.release("a", 1000, T0));
        assert_eq!(apart.try_acquire("c", 500, T0), Ok(()));
        assert_eq!(l.hand_over(Some(("a", 1000)), "c", 500, T0), Ok(()));
        assert_eq!(l, apart);
        assert_eq!(l.available_tokens(T0), 4500);
        // Given back although the next lease must wait (for tokens: 1000 short at 100 a second).
        let mut m = ProviderLimiter::new(60, 6000, 2);
        m.try_acquire("c", 5000, T0).unwrap();
        assert_eq!(m.hand_over(Some(("c", 5000)), "d", 2000, T0), Err(10_000));
        assert_eq!(m.active_leases(T0), 0);
        // Without a lease to give back it is try_acquire.
        assert_eq!(m.hand_over(None, "e", 10, T0), Ok(()));
    }

    #[test]
    fn a_follow_on_is_set_aside_then_spent() {
        let mut l = ProviderLimiter::new(60, 60_000, 1);
        l.try_acquire("a", 1000, T0).unwrap();
        assert_eq!(l.reserve_follow_on("a", 1000, T0), Some(2000));
        assert_eq!(
            (l.available_requests(T0), l.available_tokens(T0)),
            (58, 57_000)
        );
        // Asking again sets nothing more aside.
        assert_eq!(l.reserve_follow_on("a", 5000, T0), Some(2000));
        assert_eq!(l.try_acquire("b", 10, T0), Err(CONCURRENCY_RETRY_MS));
        // The next call (est 1500) after one that used 500 of its 1000: no request charged,
        // the set-aside's unused tokens and the first call's surplus come back.
        assert!(l.go_on("a", 500, 1500, T0));
        assert_eq!(
            (l.available_requests(T0), l.available_tokens(T0)),
            (58, 58_000)
        );
        let lease = l.lease("a").unwrap();
        assert_eq!(
            (lease.est_tokens, lease.acquired_ms, lease.follow_on),
            (1500, T0, None)
        );
        assert_eq!(lease.expires_ms, T0 + LEASE_TIMEOUT_MS);
        // A release gives back an unused set-aside.
        assert_eq!(l.reserve_follow_on("a", 1500, T0), Some(3000));
        assert!(l.release("a", 1500, T0));
        assert_eq!(
            (l.available_requests(T0), l.available_tokens(T0)),
            (58, 58_000)
        );
        assert_eq!(l.try_acquire("b", 10, T0), Ok(()));
        // Without a token limit the set-aside covers any call.
        let mut u = ProviderLimiter::new(60, 0, 1);
        u.try_acquire("a", 1000, T0).unwrap();
        assert_eq!(u.reserve_follow_on("a", 1000, T0), Some(u32::MAX));
        assert_eq!(u.available_requests(T0), 58);
    }

    #[test]
    fn a_follow_on_is_set_aside_only_from_room_to_spare() {
        // The last request of the minute is not set aside, and one set aside is nobody else's.
        let mut l = ProviderLimiter::new(2, 0, 0);
        l.try_acquire("a", 0, T0).unwrap();
        assert_eq!(l.reserve_follow_on("a", 0, T0), Some(u32::MAX));
        assert_eq!(l.try_acquire("b", 0, T0), Err(30_000));
        let mut one = ProviderLimiter::new(1, 0, 0);
        one.try_acquire("a", 0, T0).unwrap();
        assert_eq!(one.reserve_follow_on("a", 0, T0), None);
        // Tokens: twice the estimate must be there, and within a quarter of a minute's worth.
        let mut t = ProviderLimiter::new(0, 20_000, 0);
        t.try_acquire("a", 2000, T0).unwrap();
        assert_eq!(t.reserve_follow_on("a", 3000, T0), None);
        assert_eq!(t.reserve_follow_on("a", 2500, T0), Some(5000));
        t.try_acquire("b", 10_000, T0).unwrap();
        t.try_acquire("c", 1500, T0).unwrap();
        assert_eq!(
            t.reserve_follow_on("c", 1500, T0),
            None,
            "3000 wanted, 1500 left"
        );
        // No lease, no set-aside.
        assert_eq!(t.reserve_follow_on("nobody", 1, T0), None);
        assert_eq!(t.available_tokens(T0), 1500);
    }

    #[test]
    fn going_on_without_a_follow_on_charges_the_call_as_it_is() {
        let mut l = ProviderLimiter::new(60, 6000, 1).with_lease_timeout(5000);
        l.try_acquire("a", 5000, T0).unwrap();
        // The lease expired before its holder went on: the call is on its way, so it is
        // charged (tokens into debt) and holds the slot again.
        assert!(!l.go_on("a", 5000, 3000, T0 + 5000));
        assert_eq!(
            l.available_requests(T0 + 5000),
            59,
            "60 after 5 s, less this call"
        );
        // 1500 refilled, 3000 charged: 1500 in debt, 15 s at 100 a second.
        assert_eq!(l.available_tokens(T0 + 5000), 0);
        assert_eq!(l.try_acquire("b", 0, T0 + 5000), Err(15_000));
        assert_eq!(l.active_leases(T0 + 5000), 1);
        assert_eq!(l.lease("a").unwrap().est_tokens, 3000);
    }

    #[test]
    fn concurrency_slots() {
        let mut l = ProviderLimiter::new(0, 0, 2);
        assert_eq!(l.try_acquire("a", 0, T0), Ok(()));
        assert_eq!(l.try_acquire("b", 0, T0), Ok(()));
        assert_eq!(l.try_acquire("c", 0, T0), Err(CONCURRENCY_RETRY_MS));
        assert_eq!(l.active_leases(T0), 2);
        assert!(l.release("a", 0, T0 + 10));
        assert_eq!(l.try_acquire("c", 0, T0 + 10), Ok(()));
    }

    #[test]
    fn reacquiring_a_held_lease_is_idempotent() {
        let mut l = ProviderLimiter::new(60, 6000, 1);
        l.try_acquire("a", 1000, T0).unwrap();
        assert_eq!(l.try_acquire("a", 1000, T0), Ok(()));
        assert_eq!(l.available_requests(T0), 59);
        assert_eq!(l.available_tokens(T0), 5000);
        assert_eq!(l.active_leases(T0), 1);
    }

    #[test]
    fn leases_expire() {
        let mut l = ProviderLimiter::new(0, 0, 1).with_lease_timeout(5000);
        l.try_acquire("crashed", 0, T0).unwrap();
        assert_eq!(l.lease("crashed").unwrap().expires_ms, T0 + 5000);
        // The wait hint never points past the expiry.
        assert_eq!(l.try_acquire("b", 0, T0 + 4500), Err(500));
        assert_eq!(l.try_acquire("b", 0, T0 + 4999), Err(1));
        assert_eq!(l.try_acquire("b", 0, T0 + 5000), Ok(()));
        assert!(l.lease("crashed").is_none());
        assert!(!l.release("crashed", 10, T0 + 6000));
    }

    #[test]
    fn default_lease_timeout_is_ten_minutes() {
        let mut l = ProviderLimiter::new(0, 0, 1);
        l.try_acquire("a", 0, T0).unwrap();
        assert_eq!(l.active_leases(T0 + LEASE_TIMEOUT_MS - 1), 1);
        assert_eq!(l.active_leases(T0 + LEASE_TIMEOUT_MS), 0);
    }

    #[test]
    fn wait_is_the_longest_of_all_limits() {
        let mut l = ProviderLimiter::new(60, 600, 1); // 1 req/s, 10 tokens/s
        l.try_acquire("a", 600, T0).unwrap();
        // Slot taken (1000), request in 1000, 100 tokens in 10_000.
        assert_eq!(l.try_acquire("b", 100, T0), Err(10_000));
        assert!(l.release("a", 600, T0));
        assert_eq!(l.try_acquire("b", 100, T0), Err(10_000));
        assert_eq!(l.try_acquire("b", 100, T0 + 10_000), Ok(()));
    }

    #[test]
    fn oversized_estimate_gets_in_on_a_full_bucket() {
        let mut l = ProviderLimiter::new(0, 1000, 0);
        assert_eq!(l.try_acquire("big", 5000, T0), Ok(()));
        assert_eq!(l.available_tokens(T0), 0);
        // 4000 tokens of debt plus 1000 needed at 1000/min.
        assert_eq!(l.try_acquire("big2", 5000, T0), Err(300_000));
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let mut l = ProviderLimiter::new(60, 0, 0);
        for i in 0..60 {
            l.try_acquire(&format!("r{i}"), 0, T0).unwrap();
        }
        assert_eq!(l.try_acquire("x", 0, T0 - 50_000), Err(1000));
        assert_eq!(l.try_acquire("x", 0, T0 + 1000), Ok(()));
    }

    #[test]
    fn zero_limits_mean_unlimited() {
        let mut l = ProviderLimiter::new(0, 0, 0);
        for i in 0..10_000 {
            assert_eq!(l.try_acquire(&i.to_string(), u32::MAX, T0), Ok(()));
        }
        assert_eq!(l.available_tokens(T0), u32::MAX);
    }

    #[test]
    fn reconfigure_keeps_spending_and_clamps() {
        let mut l = ProviderLimiter::new(100, 10_000, 4);
        l.try_acquire("a", 2000, T0).unwrap();
        l.reconfigure(10, 5000, 1);
        assert_eq!(l.available_requests(T0), 10);
        assert_eq!(l.available_tokens(T0), 5000);
        assert_eq!(l.try_acquire("b", 1, T0), Err(CONCURRENCY_RETRY_MS));
    }

    #[test]
    fn serde_round_trip_preserves_everything() {
        let mut l = ProviderLimiter::new(60, 6000, 3);
        l.try_acquire("a", 1234, T0).unwrap();
        l.try_acquire("b", 10, T0 + 7).unwrap();
        let json = serde_json::to_string(&l).unwrap();
        let mut back: ProviderLimiter = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        assert_eq!(
            back.try_acquire("c", 10, T0 + 7),
            l.try_acquire("c", 10, T0 + 7)
        );
        assert!(json.contains("\"leases\""));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire(u8, u32),
        Release(u8, u32),
        Reserve(u8, u32),
        GoOn(u8, u32),
        Tick(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, 0u32..3000).prop_map(|(id, t)| Op::Acquire(id, t)),
            (0u8..8, 0u32..3000).prop_map(|(id, t)| Op::Release(id, t)),
            (0u8..8, 0u32..3000).prop_map(|(id, t)| Op::Reserve(id, t)),
            (0u8..8, 0u32..3000).prop_map(|(id, t)| Op::GoOn(id, t)),
            (0u64..20_000).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Never more leases than slots; within any window no more requests granted than
        /// the bucket allows (burst of a full bucket plus what refilled meanwhile), counting
        /// a follow-on call when it starts (its holder goes on only under a set-aside).
        #[test]
        fn limits_hold_under_any_sequence(ops in proptest::collection::vec(op(), 0..200), rpm in 1u32..50, slots in 1u32..4) {
            let mut l = ProviderLimiter::new(rpm, 5000, slots).with_lease_timeout(30_000);
            let mut now = T0;
            let mut granted = 0u64;
            for o in ops {
                match o {
                    Op::Acquire(id, t) => {
                        let id = id.to_string();
                        l.active_leases(now); // drop expired leases first
                        let had = l.lease(&id).is_some();
                        match l.try_acquire(&id, t, now) {
                            Ok(()) => {
                                if !had { granted += 1; }
                                prop_assert!(l.lease(&id).is_some());
                            }
                            Err(w) => {
                                prop_assert!(w >= 1);
                                prop_assert!(l.lease(&id).is_none());
                            }
                        }
                    }
                    Op::Release(id, t) => { l.release(&id.to_string(), t, now); }
                    Op::Reserve(id, t) => { l.reserve_follow_on(&id.to_string(), t, now); }
                    Op::GoOn(id, t) => {
                        let id = id.to_string();
                        l.active_leases(now);
                        if l.lease(&id).is_some_and(|x| x.follow_on.is_some()) {
                            prop_assert!(l.go_on(&id, t, t / 2, now));
                            granted += 1;
                        }
                    }
                    Op::Tick(d) => now += d,
                }
                prop_assert!(l.active_leases(now) <= slots as usize);
                let elapsed = now - T0;
                let allowed = rpm as u64 + (rpm as u64 * elapsed) / 60_000;
                prop_assert!(granted <= allowed, "granted {} allowed {}", granted, allowed);
            }
        }

        /// The wait hint is honest: after waiting it out (with nothing else happening), the
        /// same acquire succeeds.
        #[test]
        fn waiting_the_hint_is_enough(rpm in 1u32..100, tpm in 1u32..100_000, used in 0u32..200_000, est in 0u32..200_000) {
            let mut l = ProviderLimiter::new(rpm, tpm, 0);
            l.try_acquire("first", used, T0).unwrap();
            l.release("first", used, T0);
            if let Err(w) = l.try_acquire("x", est, T0) {
                prop_assert_eq!(l.try_acquire("x", est, T0 + w), Ok(()));
            }
        }
    }
}
