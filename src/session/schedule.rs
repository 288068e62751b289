//! The session's timers, multiplexed onto its one Durable Object alarm.
//!
//! A Durable Object has a single alarm. A session needs several timers, so the edge keeps them
//! as rows of a `schedule` table in the session's SQLite (`timer`, `due_at`). The alarm is set
//! to the earliest row. When it fires, the edge runs the timers that are due and plans again.
//! This module decides what the rows should be. It is pure, so the rules are tested natively.
//!
//! The session machine states its own deadlines in the same terms ([`crate::session::Session::timers`]):
//! `flush` and `call`. The streaming loop waits for the earliest of them; the table keeps the
//! ones that must survive the process (`call`), plus the edge's own.
//!
//! | timer | while | due | what it does when due |
//! |---|---|---|---|
//! | `flush` | text waits to be sent (in this process only, never stored) | the last flush + the coalescing window | sends the buffered text as one event |
//! | `call` | an LLM call waits (backoff, the provider limit, Retry-After) or runs | the retry time, `now` for a call to start, or the watchdog deadline of a running call | starts the call, or lets the session fail a stalled one |
//! | `live` | a call runs in this process | every 5 s | nothing while the process lives; after a crash or restart it brings the session back to rerun the call, with or without a client |
//! | `sweep` | sockets are open | every third of the idle limit (≤ 30 s), or sooner at a socket's `hello` deadline | closes sockets silent for longer than the limit, or that never said `hello` |
//! | `expire` | always | the last activity + `SESSION_IDLE_TTL_S` | deletes the session if nothing is connected or running (else moves on) |
//!
//! A session with no call and no socket has only its `expire` row.

use std::collections::BTreeMap;

/// While a call streams, the alarm is never further away than this (crash recovery).
pub const LIVE_CALL_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    Flush,
    Call,
    Live,
    Sweep,
    Expire,
}

impl Timer {
    /// The timers the `schedule` table holds.
    pub const STORED: [Timer; 4] = [Timer::Call, Timer::Live, Timer::Sweep, Timer::Expire];

    pub fn name(self) -> &'static str {
        match self {
            Timer::Flush => "flush",
            Timer::Call => "call",
            Timer::Live => "live",
            Timer::Sweep => "sweep",
            Timer::Expire => "expire",
        }
    }

    /// A stored row's timer; `flush` is never stored, so it does not parse.
    pub fn parse(s: &str) -> Option<Timer> {
        Timer::STORED.into_iter().find(|t| t.name() == s)
    }
}

/// Timer name → due time (epoch ms): the `schedule` table's rows.
pub type Rows = BTreeMap<Timer, u64>;

/// What the session needs beyond the machine's own timers, as the edge sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// A call should start and no loop in this process is running calls: `call` is due now.
    pub start_call: bool,
    /// A call is running in this process.
    pub live_call: bool,
    /// Sockets are open.
    pub sockets: bool,
    /// How often to look for idle sockets.
    pub sweep_every: u64,
    /// The earliest time a socket that has not said `hello` must be closed.
    pub hello_deadline: Option<u64>,
    /// When the session expires if nothing happens.
    pub expire_at: Option<u64>,
}

/// The rows the table should hold: the machine's `timers` that outlive the process, and the
/// edge's `needs`. A periodic timer (`live`, `sweep`) keeps its due time while it is in the
/// future, so planning often does not push it back for ever.
pub fn plan(stored: &Rows, timers: &Rows, needs: Needs, now: u64) -> Rows {
    let mut want: Rows = timers
        .iter()
        .filter(|(t, _)| Timer::STORED.contains(t))
        .map(|(t, at)| (*t, *at))
        .collect();
    if needs.start_call {
        want.insert(Timer::Call, now);
    }
    let periodic = |timer: Timer, every: u64| match stored.get(&timer) {
        Some(&t) if t > now => t,
        _ => now + every,
    };
    if needs.live_call {
        want.insert(Timer::Live, periodic(Timer::Live, LIVE_CALL_MS));
    }
    if needs.sockets {
        let at = periodic(Timer::Sweep, needs.sweep_every);
        want.insert(
            Timer::Sweep,
            needs.hello_deadline.map_or(at, |d| at.min(d.max(now))),
        );
    }
    if let Some(t) = needs.expire_at {
        want.insert(Timer::Expire, t);
    }
    want
}

/// The row writes that turn `stored` into `want`: rows to insert or update, rows to delete.
pub fn changes(stored: &Rows, want: &Rows) -> (Vec<(Timer, u64)>, Vec<Timer>) {
    let upserts = want
        .iter()
        .filter(|(k, v)| stored.get(k) != Some(v))
        .map(|(k, v)| (*k, *v))
        .collect();
    let deletes = stored
        .keys()
        .filter(|k| !want.contains_key(k))
        .copied()
        .collect();
    (upserts, deletes)
}

/// When the alarm (or the streaming loop's wait) should end: the earliest row.
pub fn next_alarm(rows: &Rows) -> Option<u64> {
    rows.values().min().copied()
}

/// The timers due at `now`.
pub fn due(rows: &Rows, now: u64) -> Vec<Timer> {
    rows.iter()
        .filter(|(_, &t)| t <= now)
        .map(|(k, _)| *k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn needs() -> Needs {
        Needs {
            start_call: false,
            live_call: false,
            sockets: false,
            sweep_every: 30_000,
            hello_deadline: None,
            expire_at: None,
        }
    }

    fn rows(pairs: &[(Timer, u64)]) -> Rows {
        pairs.iter().copied().collect()
    }

    #[test]
    fn an_idle_session_without_sockets_has_no_timers() {
        let stored = rows(&[(Timer::Sweep, NOW + 10), (Timer::Live, NOW + 10)]);
        let want = plan(&stored, &Rows::new(), needs(), NOW);
        assert!(want.is_empty());
        assert_eq!(next_alarm(&want), None);
        let (up, del) = changes(&stored, &want);
        assert!(up.is_empty());
        assert_eq!(del, vec![Timer::Live, Timer::Sweep]);
    }

    #[test]
    fn the_call_timer_follows_the_session_exactly_and_flush_is_never_stored() {
        let machine = rows(&[(Timer::Call, NOW + 4_000), (Timer::Flush, NOW + 50)]);
        let want = plan(&Rows::new(), &machine, needs(), NOW);
        assert_eq!(want, rows(&[(Timer::Call, NOW + 4_000)]));
        // An earlier or later deadline replaces it (a retry after a cancel, a new watchdog).
        for t in [NOW, NOW + 9_000] {
            let again = plan(&want, &rows(&[(Timer::Call, t)]), needs(), NOW);
            assert_eq!(again, rows(&[(Timer::Call, t)]));
            assert_eq!(changes(&want, &again).0, vec![(Timer::Call, t)]);
        }
        // A call to start now is due now, whatever the machine's deadline.
        let start = Needs {
            start_call: true,
            ..needs()
        };
        assert_eq!(
            plan(&want, &machine, start, NOW),
            rows(&[(Timer::Call, NOW)])
        );
        // Without a deadline from the machine or a call to start, the row goes.
        let gone = plan(&want, &Rows::new(), needs(), NOW);
        assert_eq!(changes(&want, &gone), (vec![], vec![Timer::Call]));
    }

    #[test]
    fn periodic_timers_keep_a_future_due_time_and_rearm_when_due() {
        let n = Needs {
            live_call: true,
            sockets: true,
            ..needs()
        };
        let first = plan(&Rows::new(), &Rows::new(), n, NOW);
        assert_eq!(
            first,
            rows(&[
                (Timer::Live, NOW + LIVE_CALL_MS),
                (Timer::Sweep, NOW + 30_000)
            ])
        );
        // Planning again a second later changes nothing: no row write.
        let later = plan(&first, &Rows::new(), n, NOW + 1_000);
        assert_eq!(later, first);
        assert_eq!(changes(&first, &later), (vec![], vec![]));
        // When the live timer is due it is the only one due, and it re-arms.
        let t = NOW + LIVE_CALL_MS;
        assert_eq!(due(&first, t), vec![Timer::Live]);
        let rearmed = plan(&first, &Rows::new(), n, t);
        assert_eq!(rearmed[&Timer::Live], t + LIVE_CALL_MS);
        assert_eq!(rearmed[&Timer::Sweep], NOW + 30_000);
        assert_eq!(next_alarm(&rearmed), Some(t + LIVE_CALL_MS));
    }

    #[test]
    fn the_alarm_is_the_earliest_timer_and_all_due_timers_run() {
        let r = rows(&[
            (Timer::Call, NOW + 500),
            (Timer::Live, NOW + 5_000),
            (Timer::Sweep, NOW + 100),
        ]);
        assert_eq!(next_alarm(&r), Some(NOW + 100));
        assert_eq!(due(&r, NOW), vec![]);
        assert_eq!(due(&r, NOW + 500), vec![Timer::Call, Timer::Sweep]);
        assert_eq!(due(&r, NOW + 9_000).len(), 3);
    }

    #[test]
    fn an_unjoined_socket_brings_the_sweep_forward_to_its_hello_deadline() {
        let n = Needs {
            sockets: true,
            hello_deadline: Some(NOW + 10_000),
            ..needs()
        };
        assert_eq!(
            plan(&Rows::new(), &Rows::new(), n, NOW)[&Timer::Sweep],
            NOW + 10_000
        );
        // A deadline already passed is swept at once; a later one does not delay the sweep.
        let past = Needs {
            hello_deadline: Some(NOW - 5),
            ..n
        };
        assert_eq!(
            plan(&Rows::new(), &Rows::new(), past, NOW)[&Timer::Sweep],
            NOW
        );
        let late = Needs {
            hello_deadline: Some(NOW + 60_000),
            ..n
        };
        assert_eq!(
            plan(&Rows::new(), &Rows::new(), late, NOW)[&Timer::Sweep],
            NOW + 30_000
        );
    }

    #[test]
    fn an_idle_session_keeps_only_its_expiry() {
        let n = Needs {
            expire_at: Some(NOW + 7 * 86_400_000),
            ..needs()
        };
        let want = plan(&rows(&[(Timer::Sweep, NOW + 10)]), &Rows::new(), n, NOW);
        assert_eq!(want, rows(&[(Timer::Expire, NOW + 7 * 86_400_000)]));
        assert_eq!(next_alarm(&want), Some(NOW + 7 * 86_400_000));
    }

    #[test]
    fn names_round_trip() {
        for t in Timer::STORED {
            assert_eq!(Timer::parse(t.name()), Some(t));
        }
        assert_eq!(Timer::parse("alarm"), None);
        assert_eq!(Timer::parse("flush"), None, "never stored");
    }
}
