//! Every size, rate and count limit of the protocol, in one place, with the flood guard.

use serde::{Deserialize, Serialize};

/// Largest accepted client frame; bigger ones close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Brief length limit, in characters after trimming.
pub const MAX_BRIEF_CHARS: usize = 8000;
/// Feedback length limit, in characters after trimming.
pub const MAX_FEEDBACK_CHARS: usize = 4000;
/// Idempotency keys: 1..=64 chars of `[A-Za-z0-9_-]`.
pub const MAX_ID_CHARS: usize = 64;
/// How many recent idempotency keys a session remembers.
pub const REMEMBERED_IDS: usize = 256;
/// Sockets one session accepts at once.
pub const MAX_SOCKETS_PER_SESSION: usize = 64;
/// Logged events kept per session; older ones are trimmed down to `LOG_TRIM_TO`.
pub const LOG_RETENTION: u64 = 20_000;
pub const LOG_TRIM_TO: u64 = 15_000;

// ---- What one session stores at most ------------------------------------------------------
// Each bound drops the oldest first; together they cap a session at about
// `SESSION_MAX_BYTES` of data (plus SQLite's page overhead).

/// The event log also stays under this many bytes of JSON (trimmed to 3/4 of it).
pub const LOG_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Messages (briefs, feedback, answers) kept: at most this many…
pub const MAX_MESSAGES: u64 = 400;
/// …and at most this many bytes of text (trimmed to 3/4 of it).
pub const MESSAGES_MAX_BYTES: u64 = 2 * 1024 * 1024;
/// One answer (an agent's message and artifact) is stopped past this size.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Reasoning ("thinking") one attempt may stream, over all its requests; past it the attempt
/// stops (`reasoning_too_long`). Shown and logged like text, so it is bounded like text: a
/// provider streaming 64 MiB of it grew the runtime by 1.2 GiB.
pub const MAX_REASONING_BYTES: usize = 256 * 1024;
/// How long one attempt may keep streaming, however lively: past it the attempt stops
/// (`stage_too_long`). The watchdog only sees silence; a provider that never ends is caught
/// here. Default of `STAGE_MAX_MS`.
pub const MAX_ATTEMPT_MS: u64 = 20 * 60 * 1000;
/// Versions of one stage's artifact kept (the newest always).
pub const ARTIFACT_VERSIONS_KEPT: u32 = 8;
/// Events + messages + 5 stages × versions × answer, plus the session row (state, ids).
pub const SESSION_MAX_BYTES: u64 = LOG_MAX_BYTES
    + MESSAGES_MAX_BYTES
    + 5 * ARTIFACT_VERSIONS_KEPT as u64 * MAX_ANSWER_BYTES as u64
    + 64 * 1024;
/// A snapshot's `MESSAGES_SNAPSHOT` holds the newest messages that fit in this many bytes;
/// `caught_up.omittedMessages` counts the rest (fetch them with `GET /messages`).
pub const SNAPSHOT_MESSAGES_BYTES: usize = 512 * 1024;
/// No frame the server sends is larger than this.
pub const MAX_SERVER_FRAME_BYTES: usize = 1024 * 1024;
/// A socket silent for this long is closed by the alarm sweep (the UI pings every 25 s).
pub const IDLE_SOCKET_MS: u64 = 90_000;
/// How often the alarm sweeps for idle sockets while any are connected.
pub const SWEEP_INTERVAL_MS: u64 = 30_000;
/// Commands per second per socket (sustained) and burst.
pub const COMMAND_RATE_PER_SEC: f64 = 20.0;
pub const COMMAND_BURST: f64 = 40.0;
/// Page size of `GET /events`.
pub const EVENTS_PAGE_DEFAULT: usize = 500;
pub const EVENTS_PAGE_MAX: usize = 1000;

/// What the flood guard decides for one incoming frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodVerdict {
    Allow,
    /// Over the budget for the first time: answer with a warning, drop the frame.
    Warn,
    /// Over the budget after the warning: drop the frame silently.
    Drop,
    /// Still flooding after the warning: close with 1008.
    Close,
}

/// Token bucket per socket: `COMMAND_BURST` frames at once, refilled at
/// `COMMAND_RATE_PER_SEC`. Once warned, a client that overdraws by another full burst is closed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FloodGuard {
    tokens: f64,
    last_ms: u64,
    warned: bool,
    debt: f64,
}

impl FloodGuard {
    pub fn new(now_ms: u64) -> Self {
        FloodGuard {
            tokens: COMMAND_BURST,
            last_ms: now_ms,
            warned: false,
            debt: 0.0,
        }
    }

    pub fn check(&mut self, now_ms: u64) -> FloodVerdict {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * COMMAND_RATE_PER_SEC).min(COMMAND_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            // A client that calmed down long enough to refill fully is forgiven.
            if self.tokens >= COMMAND_BURST - 1.0 {
                self.warned = false;
                self.debt = 0.0;
            }
            return FloodVerdict::Allow;
        }
        if !self.warned {
            self.warned = true;
            self.debt = 0.0;
            return FloodVerdict::Warn;
        }
        self.debt += 1.0;
        if self.debt >= COMMAND_BURST {
            FloodVerdict::Close
        } else {
            FloodVerdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_warn_then_close() {
        let mut g = FloodGuard::new(0);
        for _ in 0..40 {
            assert_eq!(g.check(0), FloodVerdict::Allow);
        }
        assert_eq!(g.check(0), FloodVerdict::Warn);
        let mut verdicts = vec![];
        for _ in 0..40 {
            verdicts.push(g.check(0));
        }
        assert_eq!(verdicts.last(), Some(&FloodVerdict::Close));
        assert!(verdicts[..39].iter().all(|v| *v == FloodVerdict::Drop));
    }

    #[test]
    fn steady_rate_is_allowed_forever() {
        let mut g = FloodGuard::new(0);
        // 10 frames per second for a minute: half the budget.
        for i in 0..600u64 {
            assert_eq!(g.check(i * 100), FloodVerdict::Allow, "frame {i}");
        }
    }

    #[test]
    fn calm_client_is_forgiven() {
        let mut g = FloodGuard::new(0);
        for _ in 0..41 {
            g.check(0);
        }
        assert!(g.warned);
        assert_eq!(g.check(10_000), FloodVerdict::Allow);
        assert!(!g.warned);
    }
}
