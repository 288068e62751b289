//! One WebSocket connection to a session, without I/O: what a frame from the client means,
//! when the socket must be closed, and how much the server may send it (flow control).
//!
//! The edge hands every incoming frame to [`Connection::on_frame`] and does what the returned
//! [`Action`] says; it reports every frame it sends with [`Connection::on_sent`], and asks
//! [`Connection::catch_up_open`] before each page of a catch-up. The rules:
//!
//! | rule | limit | on breach |
//! |---|---|---|
//! | frame size | 64 KiB | close 1009 |
//! | frames per second | 20 sustained, burst 40 | a command: `rejected rate_limited` (not applied); other frames: `warning rate_limited`; then close 1008 |
//! | view-only link | every command | `rejected read_only`, nothing applied |
//! | `hello` first | within [`HELLO_TIMEOUT_MS`] of opening; other commands before it are refused `hello_required` | close 4001; an unjoined socket holds no slot after that |
//! | re-syncs (`hello` again) | burst [`RESYNC_BURST`], then one per [`RESYNC_EVERY_MS`] | `rejected resync_rate_limited`, nothing sent |
//! | catch-up in flight | [`CATCHUP_PAGE_BYTES`] beyond the client's last `ack` (plus the frame that crosses it, ≤ 512 KiB) | the catch-up pauses until the next `ack` |
//! | unacknowledged bytes | [`SEND_WINDOW_BYTES`] | close 4008 (the client reconnects and catches up) |
//! | silence | the idle limit (`SOCKET_IDLE_MS`); before `hello`, the runtime's auto-answered `ping` does not count | close 1001 |
//!
//! Acks are cumulative, like TCP's: `ack {seq}` says every frame sent before the one that
//! carried `seq` was read too, so frames without a `seq` (welcome, snapshots, pongs) are
//! covered by the next acknowledged `seq`.

use serde::{Deserialize, Serialize};

use crate::protocol::limits::{FloodGuard, FloodVerdict, MAX_FRAME_BYTES};
use crate::protocol::{decode_frame, Envelope, Frame, Rejection, RejectionCode};

/// A socket must send `hello` this soon after opening.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;
/// Catch-up (replay or snapshot) sent beyond the last ack before pausing for the next ack.
pub const CATCHUP_PAGE_BYTES: u64 = 1024 * 1024;
/// Unacknowledged bytes at which a socket is closed with [`CLOSE_TOO_SLOW`].
pub const SEND_WINDOW_BYTES: u64 = 8 * 1024 * 1024;
/// Re-syncs: a burst, then one per interval.
pub const RESYNC_BURST: u32 = 3;
pub const RESYNC_EVERY_MS: u64 = 5_000;
/// Acks are matched to checkpoints at least this far apart (keeps the state small enough to
/// live in the socket's 2 KiB hibernation attachment: at most window / step entries).
const CHECKPOINT_BYTES: u64 = 256 * 1024;

pub const CLOSE_IDLE: u16 = 1001;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_HELLO_TIMEOUT: u16 = 4001;
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// The session was deleted or expired.
pub const CLOSE_SESSION_GONE: u16 = 4404;
/// The view-only link this socket was opened with was revoked.
pub const CLOSE_VIEW_REVOKED: u16 = 4403;
/// The server dropped the session from memory (storage failed after events were sent):
/// reconnect, and `hello` re-syncs from storage.
pub const CLOSE_RESTART: u16 = 1012;

/// An incoming WebSocket message.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    Text(&'a str),
    /// A binary message of this many bytes.
    Binary(usize),
}

/// What the edge does with one incoming frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing (an ack that changed nothing, a dropped frame).
    None,
    Close {
        code: u16,
        reason: &'static str,
    },
    /// Send this unlogged connection frame to this socket.
    Warn,
    Pong,
    Reject(Rejection),
    /// Plan the catch-up after `last_seq` of `epoch` (then [`Connection::joined`] when it is
    /// done).
    Hello {
        last_seq: u64,
        epoch: Option<u64>,
    },
    /// The ack opened the window: send the next catch-up page.
    ContinueCatchUp,
    /// Apply this command to the session, then answer `ack` or `rejected`.
    Command(Envelope),
}

/// What a catch-up still has to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatchUp {
    /// Replay the log from this `seq` on.
    Replay { next: u64 },
    /// A state and messages snapshot (sent whole, when the window is open).
    Snapshot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Joined: caught up and receiving live events.
    pub ready: bool,
    pub opened_at: u64,
    /// Last frame received after `hello` (for the idle limit).
    pub last_seen: u64,
    #[serde(skip, default = "fresh_flood")]
    flood: FloodGuard,
    pub catch_up: Option<CatchUp>,
    /// Bytes sent in all (from the object's view) and the part the client acknowledged.
    sent: u64,
    acked: u64,
    /// (seq, bytes sent up to and including it), ≥ [`CHECKPOINT_BYTES`] apart but the last.
    checkpoints: Vec<(u64, u64)>,
    resync_tokens: u32,
    resync_at: u64,
    helloed: bool,
    /// Opened through a view-only link: every command is refused `read_only`.
    #[serde(default)]
    pub read_only: bool,
}

/// The `rate_limited` answer to a command frame over the rate; `None` for other frames.
fn refused_command(frame: Incoming<'_>) -> Option<Rejection> {
    let Incoming::Text(text) = frame else {
        return None;
    };
    let Ok(Frame::Command(env)) = decode_frame(text) else {
        return None;
    };
    let mut r = Rejection::new(
        RejectionCode::RateLimited,
        "Too many frames: this command was not applied. Slow down, or the connection will be closed.",
    );
    r.command = Some(env.command.name().into());
    r.id = env.id;
    Some(r)
}

fn fresh_flood() -> FloodGuard {
    FloodGuard::new(0)
}

impl Connection {
    pub fn new(now: u64) -> Self {
        Connection {
            ready: false,
            opened_at: now,
            last_seen: now,
            flood: FloodGuard::new(now),
            catch_up: None,
            sent: 0,
            acked: 0,
            checkpoints: Vec::new(),
            resync_tokens: RESYNC_BURST,
            resync_at: now,
            helloed: false,
            read_only: false,
        }
    }

    /// Unacknowledged bytes.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.acked
    }

    pub fn on_frame(&mut self, frame: Incoming<'_>, now: u64) -> Action {
        let len = match frame {
            Incoming::Text(t) => t.len(),
            Incoming::Binary(n) => n,
        };
        if len > MAX_FRAME_BYTES {
            return Action::Close {
                code: CLOSE_TOO_BIG,
                reason: "frame too large",
            };
        }
        match self.flood.check(now) {
            FloodVerdict::Allow => {}
            FloodVerdict::Close => {
                return Action::Close {
                    code: CLOSE_POLICY,
                    reason: "too many frames",
                }
            }
            // A command is answered even when it is not applied, so no client waits forever
            // for its ack; other frames get the one warning.
            verdict => {
                return match (refused_command(frame), verdict) {
                    (Some(r), _) => Action::Reject(r),
                    (None, FloodVerdict::Warn) => Action::Warn,
                    (None, _) => Action::None,
                }
            }
        }
        let Incoming::Text(text) = frame else {
            return Action::Reject(Rejection::new(
                RejectionCode::BinaryFrame,
                "Binary frames are not accepted; send JSON text.",
            ));
        };
        // Before `hello`, a frame proves nothing about the reader: only `hello` joins.
        if self.helloed {
            self.last_seen = self.last_seen.max(now);
        }
        let frame = match decode_frame(text) {
            Ok(f) => f,
            Err(r) => return Action::Reject(r),
        };
        match frame {
            Frame::Hello { last_seq, epoch } => self.hello(last_seq, epoch, now),
            Frame::Ping => Action::Pong,
            Frame::Ack { seq } => self.ack(seq),
            Frame::Command(env) if !self.ready => {
                let mut r = Rejection::new(
                    RejectionCode::HelloRequired,
                    if self.helloed {
                        "Wait for caught_up before sending commands."
                    } else {
                        "Send hello {lastSeq} first."
                    },
                );
                r.command = Some(env.command.name().into());
                r.id = env.id;
                Action::Reject(r)
            }
            Frame::Command(env) if self.read_only => {
                let mut r = Rejection::new(
                    RejectionCode::ReadOnly,
                    "This is a view-only link: it shows the session but cannot change it.",
                );
                r.command = Some(env.command.name().into());
                r.id = env.id;
                Action::Reject(r)
            }
            Frame::Command(env) => Action::Command(env),
        }
    }

    fn hello(&mut self, last_seq: u64, epoch: Option<u64>, now: u64) -> Action {
        if self.helloed {
            let refill = now.saturating_sub(self.resync_at) / RESYNC_EVERY_MS;
            if refill > 0 {
                self.resync_tokens =
                    (self.resync_tokens + refill.min(RESYNC_BURST as u64) as u32).min(RESYNC_BURST);
                self.resync_at = now;
            }
            if self.resync_tokens == 0 {
                return Action::Reject(Rejection::new(
                    RejectionCode::ResyncRateLimited,
                    format!(
                        "Too many re-syncs on this connection; wait {} s.",
                        RESYNC_EVERY_MS / 1000
                    ),
                ));
            }
            self.resync_tokens -= 1;
        }
        self.helloed = true;
        self.last_seen = now;
        self.ready = false;
        self.catch_up = None;
        // A fresh catch-up: acks of seqs sent before this hello match nothing.
        self.checkpoints.clear();
        Action::Hello { last_seq, epoch }
    }

    fn ack(&mut self, seq: u64) -> Action {
        let Some(i) = self.checkpoints.iter().rposition(|(s, _)| *s <= seq) else {
            return Action::None;
        };
        self.acked = self.acked.max(self.checkpoints[i].1);
        // Keep the matched checkpoint: later acks of the same seq find it again.
        self.checkpoints.drain(..i);
        if self.catch_up.is_some() && self.catch_up_open() {
            Action::ContinueCatchUp
        } else {
            Action::None
        }
    }

    /// The edge sent a frame of `bytes` to this socket; `seq` is the highest seq the client
    /// will have once it read it (the frame's own, or the last one before a frame without).
    /// Returns a close when the client has fallen too far behind.
    pub fn on_sent(&mut self, seq: u64, bytes: usize) -> Option<Action> {
        self.sent += bytes as u64;
        match self.checkpoints.len() {
            n if n >= 2 && self.sent - self.checkpoints[n - 2].1 < CHECKPOINT_BYTES => {
                self.checkpoints[n - 1] = (seq, self.sent)
            }
            _ => self.checkpoints.push((seq, self.sent)),
        }
        (self.in_flight() > SEND_WINDOW_BYTES).then_some(Action::Close {
            code: CLOSE_TOO_SLOW,
            reason: "too slow: acknowledge what you read",
        })
    }

    /// A catch-up page may be sent now (less than a page unacknowledged).
    pub fn catch_up_open(&self) -> bool {
        self.in_flight() < CATCHUP_PAGE_BYTES
    }

    /// The catch-up is done (`caught_up` sent): live events follow.
    pub fn joined(&mut self) {
        self.catch_up = None;
        self.ready = true;
    }

    /// Why the sweep should close this socket now, if it should. `auto_pong_at` is when the
    /// runtime last answered a plain `ping` for it.
    pub fn expired(
        &self,
        now: u64,
        idle_ms: u64,
        auto_pong_at: Option<u64>,
    ) -> Option<(u16, &'static str)> {
        if !self.helloed {
            return (now.saturating_sub(self.opened_at) >= HELLO_TIMEOUT_MS)
                .then_some((CLOSE_HELLO_TIMEOUT, "no hello within 10 s"));
        }
        let seen = self.last_seen.max(auto_pong_at.unwrap_or(0));
        (now.saturating_sub(seen) > idle_ms).then_some((CLOSE_IDLE, "idle"))
    }

    /// Holds one of the session's socket slots: joined or still within its hello time.
    pub fn holds_slot(&self, now: u64) -> bool {
        self.helloed || now.saturating_sub(self.opened_at) < HELLO_TIMEOUT_MS
    }

    /// When the sweep must look at this socket next at the latest.
    pub fn hello_deadline(&self) -> Option<u64> {
        (!self.helloed).then_some(self.opened_at + HELLO_TIMEOUT_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined() -> Connection {
        let mut c = Connection::new(0);
        assert_eq!(
            c.on_frame(Incoming::Text(r#"{"type":"hello","lastSeq":0}"#), 1),
            Action::Hello {
                last_seq: 0,
                epoch: None
            }
        );
        c.joined();
        c
    }

    fn text(c: &mut Connection, t: &str, now: u64) -> Action {
        c.on_frame(Incoming::Text(t), now)
    }

    #[test]
    fn every_frame_kind_gets_its_action() {
        let mut c = joined();
        assert_eq!(text(&mut c, r#"{"type":"ping"}"#, 2), Action::Pong);
        assert!(
            matches!(text(&mut c, r#"{"type":"pause","id":"a"}"#, 2), Action::Command(e) if e.id.as_deref() == Some("a"))
        );
        assert!(matches!(text(&mut c, "{", 2), Action::Reject(r) if r.code == "invalid_json"));
        assert!(
            matches!(text(&mut c, r#"{"type":"nope"}"#, 2), Action::Reject(r) if r.code == "unknown_type")
        );
        assert!(
            matches!(c.on_frame(Incoming::Binary(3), 2), Action::Reject(r) if r.code == "binary_frame")
        );
        assert_eq!(text(&mut c, r#"{"type":"ack","seq":5}"#, 2), Action::None);
    }

    #[test]
    fn a_frame_over_64_kib_closes_with_1009_even_binary() {
        let mut c = joined();
        let big = "x".repeat(MAX_FRAME_BYTES + 1);
        assert_eq!(
            text(&mut c, &big, 2),
            Action::Close {
                code: CLOSE_TOO_BIG,
                reason: "frame too large"
            }
        );
        assert!(matches!(
            c.on_frame(Incoming::Binary(MAX_FRAME_BYTES + 1), 2),
            Action::Close {
                code: CLOSE_TOO_BIG,
                ..
            }
        ));
    }

    #[test]
    fn a_flood_is_warned_then_closed_with_1008() {
        let mut c = joined();
        let mut actions = vec![];
        for _ in 0..200 {
            actions.push(text(&mut c, r#"{"type":"ping"}"#, 5));
        }
        assert!(actions.contains(&Action::Warn));
        assert!(matches!(
            actions.last(),
            Some(Action::Close {
                code: CLOSE_POLICY,
                ..
            })
        ));
    }

    #[test]
    fn a_command_over_the_rate_is_answered_rate_limited_with_its_id() {
        let mut c = joined();
        let mut answers = vec![];
        for i in 0..60 {
            let f = format!(r#"{{"type":"pause","id":"p{i}"}}"#);
            answers.push(text(&mut c, &f, 5));
        }
        // The burst is 40 frames, `hello` was the first.
        assert!(answers[..39]
            .iter()
            .all(|a| matches!(a, Action::Command(_))));
        for (i, a) in answers.iter().enumerate().skip(39) {
            let id = format!("p{i}");
            assert!(
                matches!(a, Action::Reject(r) if r.code == "rate_limited"
                    && r.id.as_deref() == Some(id.as_str())
                    && r.command.as_deref() == Some("pause")),
                "{i}: {a:?}"
            );
        }
        // A second later the budget has refilled: commands are applied again.
        assert!(matches!(
            text(&mut c, r#"{"type":"pause","id":"late"}"#, 1_005),
            Action::Command(_)
        ));
    }

    #[test]
    fn a_view_only_connection_reads_acks_and_pings_but_every_command_is_refused() {
        let mut c = Connection::new(0);
        c.read_only = true;
        assert_eq!(
            text(&mut c, r#"{"type":"hello","lastSeq":0}"#, 1),
            Action::Hello {
                last_seq: 0,
                epoch: None
            }
        );
        c.joined();
        assert_eq!(text(&mut c, r#"{"type":"ping"}"#, 2), Action::Pong);
        assert_eq!(text(&mut c, r#"{"type":"ack","seq":0}"#, 2), Action::None);
        for cmd in [
            r#"{"type":"start","brief":"x","approval":"auto","id":"s"}"#,
            r#"{"type":"pause","id":"s"}"#,
            r#"{"type":"cancel","id":"s"}"#,
            r#"{"type":"rerun","stage":"analyst","id":"s"}"#,
        ] {
            assert!(
                matches!(text(&mut c, cmd, 3), Action::Reject(r) if r.code == "read_only" && r.id.as_deref() == Some("s")),
                "{cmd}"
            );
        }
        // It survives the hibernation attachment.
        let back: Connection = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(back.read_only);
    }

    #[test]
    fn commands_before_hello_are_refused_and_prove_no_life() {
        let mut c = Connection::new(0);
        let a = text(&mut c, r#"{"type":"start","brief":"x","id":"k"}"#, 1);
        assert!(
            matches!(&a, Action::Reject(r) if r.code == "hello_required" && r.id.as_deref() == Some("k"))
        );
        // Pings (JSON or the runtime's auto-answered plain ones) do not keep it open.
        assert_eq!(text(&mut c, r#"{"type":"ping"}"#, 9_000), Action::Pong);
        assert_eq!(c.expired(9_999, 90_000, Some(9_999)), None);
        assert_eq!(
            c.expired(10_000, 90_000, Some(9_999)),
            Some((CLOSE_HELLO_TIMEOUT, "no hello within 10 s"))
        );
        assert!(!c.holds_slot(10_000));
        assert_eq!(c.hello_deadline(), Some(HELLO_TIMEOUT_MS));
    }

    #[test]
    fn a_joined_socket_lives_on_frames_and_auto_pongs_and_dies_idle() {
        let mut c = joined();
        assert_eq!(c.hello_deadline(), None);
        assert!(c.holds_slot(1_000_000));
        assert_eq!(c.expired(90_001, 90_000, None), None);
        assert_eq!(c.expired(90_002, 90_000, None), Some((CLOSE_IDLE, "idle")));
        assert_eq!(c.expired(150_000, 90_000, Some(100_000)), None);
        text(&mut c, r#"{"type":"ping"}"#, 200_000);
        assert_eq!(c.expired(250_000, 90_000, None), None);
    }

    #[test]
    fn re_syncs_are_rate_limited_per_socket() {
        let mut c = joined();
        for i in 0..RESYNC_BURST {
            assert!(
                matches!(
                    text(&mut c, r#"{"type":"hello","lastSeq":0}"#, 2),
                    Action::Hello { .. }
                ),
                "{i}"
            );
        }
        let a = text(&mut c, r#"{"type":"hello","lastSeq":0}"#, 2);
        assert!(matches!(a, Action::Reject(r) if r.code == "resync_rate_limited"));
        assert!(matches!(
            text(
                &mut c,
                r#"{"type":"hello","lastSeq":0}"#,
                2 + RESYNC_EVERY_MS
            ),
            Action::Hello { .. }
        ));
    }

    #[test]
    fn catch_up_pauses_after_a_page_and_continues_on_ack() {
        let mut c = Connection::new(0);
        text(&mut c, r#"{"type":"hello","lastSeq":0}"#, 1);
        c.catch_up = Some(CatchUp::Replay { next: 1 });
        let mut seq = 0;
        while c.catch_up_open() {
            seq += 1;
            assert_eq!(c.on_sent(seq, 10_000), None);
        }
        assert_eq!(seq, 105, "a page is 1 MiB of 10 kB frames");
        c.catch_up = Some(CatchUp::Replay { next: seq + 1 });
        assert!(!c.catch_up_open(), "nothing acknowledged: paused");
        assert_eq!(text(&mut c, r#"{"type":"ping"}"#, 2), Action::Pong);
        assert!(!c.catch_up_open());
        assert_eq!(
            text(&mut c, &format!(r#"{{"type":"ack","seq":{seq}}}"#), 2),
            Action::ContinueCatchUp
        );
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn a_client_that_never_acks_is_closed_past_the_window() {
        let mut c = joined();
        let mut closed = None;
        for seq in 1..10_000 {
            if let Some(a) = c.on_sent(seq, 1000) {
                closed = Some((seq, a));
                break;
            }
        }
        let (seq, a) = closed.expect("closed");
        assert!(matches!(
            a,
            Action::Close {
                code: CLOSE_TOO_SLOW,
                ..
            }
        ));
        assert_eq!(
            seq * 1000,
            SEND_WINDOW_BYTES + 1000 - SEND_WINDOW_BYTES % 1000
        );
    }

    #[test]
    fn a_reading_client_is_never_closed_and_checkpoints_stay_few() {
        let mut c = joined();
        for seq in 1..100_000u64 {
            assert_eq!(c.on_sent(seq, 700), None);
            if seq % 50 == 0 {
                text(&mut c, &format!(r#"{{"type":"ack","seq":{seq}}}"#), seq);
            }
            assert!(c.checkpoints.len() <= 2 + (SEND_WINDOW_BYTES / CHECKPOINT_BYTES) as usize);
        }
        assert!(c.in_flight() < CHECKPOINT_BYTES + 50 * 700);
    }

    #[test]
    fn acks_from_before_a_re_sync_and_acks_ahead_are_harmless() {
        let mut c = joined();
        for seq in 1..=100 {
            c.on_sent(seq, 1000);
        }
        text(&mut c, r#"{"type":"hello","lastSeq":0}"#, 2);
        assert_eq!(text(&mut c, r#"{"type":"ack","seq":50}"#, 3), Action::None);
        assert_eq!(c.in_flight(), 100_000, "old-epoch acks match nothing");
        c.on_sent(1, 500);
        text(&mut c, r#"{"type":"ack","seq":999999}"#, 3);
        assert_eq!(
            c.in_flight(),
            0,
            "an ack past everything acknowledges everything sent"
        );
    }

    #[test]
    fn the_state_fits_a_hibernation_attachment() {
        let mut c = joined();
        for seq in 1..=40_000u64 {
            c.on_sent(seq, 200);
        }
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.len() < 1500, "{} bytes", json.len());
    }
}
