//! Reconnect planning: what a client that says `hello {lastSeq, epoch}` receives.
//!
//! The edge runs the plan and the switch to live delivery in one synchronous step (the
//! Durable Object is single-threaded and SQLite reads are synchronous), so no event produced
//! meanwhile can be missed or sent twice.
//!
//! Epochs (as in Centrifugo's epoch + offset): while an LLM answer streams, the edge sends each
//! event before its row is stored, so the send never waits for a commit. A crash in that window
//! loses events some client saw, and the restarted session numbers its next events from the
//! last stored one: the same seqs, other events. So a restart after such a window starts a new
//! epoch at the first seq not stored, and a client whose `lastSeq` reaches past where its own
//! epoch ended gets a snapshot instead of a replay. Every other event is stored before it is
//! sent, so the epoch changes only after a crash while streaming.

use serde::{Deserialize, Serialize};

/// What to send after `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPlan {
    /// Send the logged events `from..=to` (empty when `from > to`), then live events.
    Replay { from: u64, to: u64 },
    /// Send a state and messages snapshot as of `at`, then live events after it.
    Snapshot { at: u64, reason: SnapshotReason },
}

pub use crate::protocol::wire::SnapshotReason;

/// The session's epochs, oldest first: `(epoch, first seq)`. Persisted with the session's
/// metadata; the last is the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epochs(Vec<(u64, u64)>);

impl Default for Epochs {
    fn default() -> Self {
        Epochs(vec![(1, 1)])
    }
}

impl Epochs {
    /// Epochs remembered; a client of an older one re-syncs by snapshot. Each is a crash while
    /// streaming, so this is far more than a session sees.
    pub const KEPT: usize = 32;

    pub fn current(&self) -> u64 {
        self.0.last().map_or(1, |e| e.0)
    }

    /// A restart after events may have been sent unstored: a new epoch from `first_seq`, the
    /// first seq not stored.
    pub fn begin(&mut self, first_seq: u64) {
        let next = self.current() + 1;
        self.0.push((next, first_seq));
        if self.0.len() > Self::KEPT {
            self.0.drain(..self.0.len() - Self::KEPT);
        }
    }

    /// True when every event up to `last_seq`, as numbered in `epoch`, is still the stored
    /// event of that seq: `epoch` is current, or it ended (a newer one began) after `last_seq`.
    pub fn vouches(&self, epoch: u64, last_seq: u64) -> bool {
        if last_seq == 0 || epoch == self.current() {
            return true;
        }
        match self.0.iter().position(|e| e.0 == epoch) {
            Some(i) => self.0.get(i + 1).is_some_and(|next| last_seq < next.1),
            None => false,
        }
    }
}

/// `oldest` is the lowest `seq` still in the log (ignored when `newest == 0`). `epoch` is the
/// client's (absent: it trusts `last_seq` as is, as a first join does).
pub fn plan(
    last_seq: u64,
    epoch: Option<u64>,
    epochs: &Epochs,
    oldest: u64,
    newest: u64,
) -> ReplayPlan {
    let snapshot = |reason| ReplayPlan::Snapshot { at: newest, reason };
    if newest == 0 {
        snapshot(SnapshotReason::Empty)
    } else if epoch.is_some_and(|e| !epochs.vouches(e, last_seq)) {
        snapshot(SnapshotReason::Restarted)
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

    fn plan(last_seq: u64, oldest: u64, newest: u64) -> ReplayPlan {
        super::plan(last_seq, None, &Epochs::default(), oldest, newest)
    }

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

    #[test]
    fn a_client_of_an_older_epoch_replays_only_what_was_stored() {
        let mut e = Epochs::default();
        assert_eq!(e.current(), 1);
        // Crashed while streaming with 40 events stored: epoch 2 numbers from 41.
        e.begin(41);
        assert_eq!(e.current(), 2);
        let at = |last, epoch| super::plan(last, Some(epoch), &e, 1, 60);
        assert_eq!(at(40, 1), ReplayPlan::Replay { from: 41, to: 60 });
        assert_eq!(at(0, 1), ReplayPlan::Replay { from: 1, to: 60 });
        let restarted = ReplayPlan::Snapshot {
            at: 60,
            reason: SnapshotReason::Restarted,
        };
        assert_eq!(at(41, 1), restarted, "seq 41 of epoch 1 may have been lost");
        assert_eq!(at(55, 2), ReplayPlan::Replay { from: 56, to: 60 });
        assert_eq!(at(5, 9), restarted, "an epoch the session never had");
        assert_eq!(
            super::plan(55, None, &e, 1, 60),
            ReplayPlan::Replay { from: 56, to: 60 },
            "no epoch: trusted as before"
        );
    }

    #[test]
    fn only_the_newest_epochs_are_kept() {
        let mut e = Epochs::default();
        for k in 0..(Epochs::KEPT as u64 + 5) {
            e.begin(10 * (k + 1));
        }
        assert_eq!(e.current(), Epochs::KEPT as u64 + 6);
        assert_eq!(e.0.len(), Epochs::KEPT);
        assert!(!e.vouches(1, 5), "forgotten: a snapshot");
        assert!(e.vouches(e.current() - 1, 10 * (Epochs::KEPT as u64 + 5) - 1));
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Epochs>(&json).unwrap(), e);
    }
}
