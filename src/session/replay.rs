//! Reconnect planning: what a client that says `hello {lastSeq}` receives.
//!
//! The edge runs the plan and the switch to live delivery in one synchronous step (the
//! Durable Object is single-threaded and SQLite reads are synchronous), so no event produced
//! meanwhile can be missed or sent twice.

/// What to send after `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPlan {
    /// Send the logged events `from..=to` (empty when `from > to`), then live events.
    Replay { from: u64, to: u64 },
    /// Send a state and messages snapshot as of `at`, then live events after it.
    Snapshot { at: u64, reason: SnapshotReason },
}

pub use crate::protocol::wire::SnapshotReason;

/// `oldest` is the lowest `seq` still in the log (ignored when `newest == 0`).
pub fn plan(last_seq: u64, oldest: u64, newest: u64) -> ReplayPlan {
    let snapshot = |reason| ReplayPlan::Snapshot { at: newest, reason };
    if newest == 0 {
        snapshot(SnapshotReason::Empty)
    } else if last_seq > newest {
        snapshot(SnapshotReason::Ahead)
    } else if last_seq + 1 < oldest {
        snapshot(SnapshotReason::Truncated)
    } else {
        ReplayPlan::Replay {
            from: last_seq + 1,
            to: newest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert!(matches!(
            plan(0, 1, 0),
            ReplayPlan::Snapshot {
                reason: SnapshotReason::Empty,
                ..
            }
        ));
        assert_eq!(plan(0, 1, 10), ReplayPlan::Replay { from: 1, to: 10 });
        assert_eq!(plan(10, 1, 10), ReplayPlan::Replay { from: 11, to: 10 });
        assert_eq!(plan(4, 5, 10), ReplayPlan::Replay { from: 5, to: 10 });
        assert_eq!(
            plan(3, 5, 10),
            ReplayPlan::Snapshot {
                at: 10,
                reason: SnapshotReason::Truncated
            }
        );
        assert_eq!(
            plan(11, 1, 10),
            ReplayPlan::Snapshot {
                at: 10,
                reason: SnapshotReason::Ahead
            }
        );
    }
}
