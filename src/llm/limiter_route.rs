//! What a session asks the provider limiter object and what it answers, as types both sides
//! share (the edge's `limiter_do.rs` and `provider.rs` only carry them): the request names its
//! route, and [`answer`] is the whole dispatch over the core's [`ProviderLimiter`], so it is
//! tested here rather than only end to end.
//!
//! | request | does | answer |
//! |---|---|---|
//! | [`LimiterRequest::Acquire`] | gives `release` back first, then asks for `lease` | [`LimiterAnswer::Granted`] with the follow-on set aside, or [`LimiterAnswer::Wait`] |
//! | [`LimiterRequest::GoOn`] | the holder's next call started under its set-aside (never refused) | [`LimiterAnswer::WentOn`] |
//! | [`LimiterRequest::Release`] | gives `lease` back with the tokens used | [`LimiterAnswer::Released`] |
//!
//! Every request carries the limits, so the limiter follows the configuration.

use serde::{Deserialize, Serialize};

use super::ProviderLimiter;

/// The limits of one provider and model, as configured (`LLM_REQUESTS_PER_MIN`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimiterLimits {
    pub rpm: u32,
    pub tpm: u32,
    pub max: u32,
}

/// A lease given back, with the tokens its call used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiveBack {
    pub lease: String,
    pub tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "camelCase")]
pub enum LimiterRequest {
    #[serde(rename_all = "camelCase")]
    Acquire {
        lease: String,
        tokens: u32,
        limits: LimiterLimits,
        release: Option<GiveBack>,
    },
    #[serde(rename_all = "camelCase")]
    GoOn {
        lease: String,
        /// The next call's estimate.
        tokens: u32,
        /// What the previous call used.
        used: u32,
        limits: LimiterLimits,
    },
    #[serde(rename_all = "camelCase")]
    Release {
        lease: String,
        tokens: u32,
        limits: LimiterLimits,
    },
}

impl LimiterRequest {
    pub fn limits(&self) -> LimiterLimits {
        match self {
            LimiterRequest::Acquire { limits, .. }
            | LimiterRequest::GoOn { limits, .. }
            | LimiterRequest::Release { limits, .. } => *limits,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "camelCase")]
pub enum LimiterAnswer {
    #[serde(rename_all = "camelCase")]
    Granted { follow_on: Option<u32> },
    #[serde(rename_all = "camelCase")]
    Wait { wait_ms: u64 },
    #[serde(rename_all = "camelCase")]
    WentOn {
        /// False when the set-aside had expired: the call was charged as it is.
        had_follow_on: bool,
        follow_on: Option<u32>,
    },
    #[serde(rename_all = "camelCase")]
    Released { known: bool },
}

/// A limiter for the first request an object sees.
pub fn new_limiter(req: &LimiterRequest) -> ProviderLimiter {
    let l = req.limits();
    ProviderLimiter::new(l.rpm, l.tpm, l.max)
}

/// Answers `req` at `now` (the limiter object's whole dispatch).
pub fn answer(l: &mut ProviderLimiter, req: &LimiterRequest, now: u64) -> LimiterAnswer {
    let limits = req.limits();
    l.reconfigure(limits.rpm, limits.tpm, limits.max);
    match req {
        LimiterRequest::Acquire {
            lease,
            tokens,
            release,
            ..
        } => match l.hand_over(
            release.as_ref().map(|b| (b.lease.as_str(), b.tokens)),
            lease,
            *tokens,
            now,
        ) {
            Ok(()) => LimiterAnswer::Granted {
                follow_on: l.reserve_follow_on(lease, *tokens, now),
            },
            Err(wait_ms) => LimiterAnswer::Wait { wait_ms },
        },
        LimiterRequest::GoOn {
            lease,
            tokens,
            used,
            ..
        } => {
            let had_follow_on = l.go_on(lease, *used, *tokens, now);
            LimiterAnswer::WentOn {
                had_follow_on,
                follow_on: l.reserve_follow_on(lease, *tokens, now),
            }
        }
        LimiterRequest::Release { lease, tokens, .. } => LimiterAnswer::Released {
            known: l.release(lease, *tokens, now),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LimiterLimits = LimiterLimits {
        rpm: 60,
        tpm: 100_000,
        max: 1,
    };

    fn acquire(lease: &str, release: Option<(&str, u32)>) -> LimiterRequest {
        LimiterRequest::Acquire {
            lease: lease.into(),
            tokens: 1000,
            limits: LIMITS,
            release: release.map(|(l, t)| GiveBack {
                lease: l.into(),
                tokens: t,
            }),
        }
    }

    #[test]
    fn requests_and_answers_keep_their_shape_on_the_wire() {
        let req = acquire("s1", Some(("s0", 5)));
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"route": "acquire", "lease": "s1", "tokens": 1000,
                "limits": {"rpm": 60, "tpm": 100000, "max": 1},
                "release": {"lease": "s0", "tokens": 5}})
        );
        assert_eq!(serde_json::from_value::<LimiterRequest>(json).unwrap(), req);
        let a = LimiterAnswer::WentOn {
            had_follow_on: true,
            follow_on: Some(7),
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"answer": "wentOn", "hadFollowOn": true, "followOn": 7})
        );
        assert_eq!(serde_json::from_value::<LimiterAnswer>(json).unwrap(), a);
    }

    #[test]
    fn a_second_lease_waits_while_the_only_slot_is_held_and_is_granted_once_it_is_given_back() {
        let mut l = new_limiter(&acquire("s1", None));
        assert!(matches!(
            answer(&mut l, &acquire("s1", None), 0),
            LimiterAnswer::Granted { .. }
        ));
        let LimiterAnswer::Wait { wait_ms } = answer(&mut l, &acquire("s2", None), 10) else {
            panic!("the only slot is held")
        };
        assert!(wait_ms > 0);
        // s1 hands its slot over to its own next call in one request.
        assert!(matches!(
            answer(&mut l, &acquire("s1b", Some(("s1", 900))), 20),
            LimiterAnswer::Granted { .. }
        ));
        let released = LimiterRequest::Release {
            lease: "s1b".into(),
            tokens: 800,
            limits: LIMITS,
        };
        assert_eq!(
            answer(&mut l, &released, 30),
            LimiterAnswer::Released { known: true }
        );
        assert!(matches!(
            answer(&mut l, &acquire("s2", None), 40),
            LimiterAnswer::Granted { .. }
        ));
        assert_eq!(
            answer(&mut l, &released, 50),
            LimiterAnswer::Released { known: false },
            "a lease given back twice is not known the second time"
        );
    }

    #[test]
    fn going_on_is_never_refused_and_says_whether_a_follow_on_was_set_aside() {
        let mut l = new_limiter(&acquire("s1", None));
        let LimiterAnswer::Granted { follow_on } = answer(&mut l, &acquire("s1", None), 0) else {
            panic!("granted")
        };
        let go_on = |used| LimiterRequest::GoOn {
            lease: "s1".into(),
            tokens: 1000,
            used,
            limits: LIMITS,
        };
        let LimiterAnswer::WentOn { had_follow_on, .. } = answer(&mut l, &go_on(500), 10) else {
            panic!("went on")
        };
        assert_eq!(had_follow_on, follow_on.is_some());
    }

    #[test]
    fn every_request_reconfigures_the_limiter_to_the_limits_it_carries() {
        let mut l = new_limiter(&acquire("s1", None));
        let wider = LimiterRequest::Acquire {
            lease: "s2".into(),
            tokens: 1000,
            limits: LimiterLimits { max: 2, ..LIMITS },
            release: None,
        };
        answer(&mut l, &acquire("s1", None), 0);
        assert!(
            matches!(answer(&mut l, &wider, 1), LimiterAnswer::Granted { .. }),
            "a second slot once the configuration allows two"
        );
    }
}
