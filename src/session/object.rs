//! The Session Durable Object's decisions, without I/O: what the object does with a batch of
//! effects, a full table, a lease the last call gave back, a socket catching up, a restart
//! after streaming, and a call about to start. The edge (`src/edge/session/`) asks, then
//! executes the answer against SQLite, the sockets and the other objects; every rule here is
//! tested natively.
//!
//! | decision | in | out |
//! |---|---|---|
//! | what may be sent before it is stored | a streaming call's batch of [`Effect`]s | [`StreamingCommit`]: nothing, send ahead, or store first |
//! | trimming the log | oldest and newest `seq`, bytes logged | [`log_over_bound`], then the first `seq` to keep ([`log_keep_from`]) |
//! | trimming the messages | (count, bytes) kept | [`messages_trim_to`]: the (count, bytes) to trim down to, then which to keep ([`messages_kept`]) |
//! | lease carry-over | the lease the last call gave back, the bucket and tokens asked for | [`LeaseStart`]: go on under it, or acquire (releasing another limiter's first) |
//! | catch-up | the socket's [`Connection`], the log's oldest and newest `seq` | [`CatchUpStep`]: pause, a page, a snapshot, or `caught_up` |
//! | epoch recovery | the stored epochs, the `streaming` mark, the newest stored `seq` | the epochs, and whether a new one began |
//! | the prompt | the call's [`CallSpec`], the artifacts it names | the messages of its first request |
//! | idle expiry | busy or not, the last activity, the idle limit | [`Expiry`]: busy (activity moves), idle (delete), not yet |
//! | the alarm | the alarm set, the deadline wanted | [`alarm_moves`]: set it again or leave it |
//! | admission leases | any open, when last renewed | [`renew_due`]: tell the admission object they are alive |
//!
//! Why these are decisions and not plumbing: each one, got wrong, loses or repeats an event a
//! client saw, overruns a documented bound, or charges the provider budget twice.

use crate::agents::{self, ChatMessage, Stage};
use crate::protocol::event::Event;
use crate::protocol::limits::{
    LOG_MAX_BYTES, LOG_RETENTION, LOG_TRIM_TO, MAX_MESSAGES, MESSAGES_MAX_BYTES,
};

use super::connection::{CatchUp, Connection};
use super::replay::{Epochs, ReplayPlan};
use super::{CallSpec, Effect};

// ---- what may be sent before it is stored -------------------------------------------------

/// What a streaming call's commit does with one batch of effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingCommit {
    /// The batch is empty: what was sent ahead keeps waiting for its turn.
    Nothing,
    /// Broadcast the batch now and keep it to store on a later turn of the event loop.
    SendAhead,
    /// Store what was sent ahead, then this batch, then broadcast it: what a client sees of
    /// it must survive a crash.
    StoreFirst,
}

/// Whether a streaming call's batch may reach the sockets before it is stored.
///
/// Only deltas (text, tool arguments, reasoning, state) and the start of a text message may:
/// losing them in a crash is covered by a new epoch ([`super::replay`]), and nothing a client
/// does refers to them. (A text message's start comes with the answer's first token: storing
/// it first cost every stage one commit before its first word.) Anything else — a message
/// that ends, a call that starts or ends, a stage or run that ends, anything saved — is stored
/// first. A deleted session (`gone`) sends nothing ahead: its call only unwinds.
pub fn streaming_commit(effects: &[Effect], gone: bool) -> StreamingCommit {
    if effects.is_empty() {
        return StreamingCommit::Nothing;
    }
    let deltas_only = effects.iter().all(|e| {
        matches!(
            e,
            Effect::Emit {
                event: Event::TextMessageStart { .. }
                    | Event::TextMessageContent { .. }
                    | Event::ToolCallArgs { .. }
                    | Event::ReasoningMessageContent { .. }
                    | Event::StateDelta { .. },
                ..
            }
        )
    });
    if deltas_only && !gone {
        StreamingCommit::SendAhead
    } else {
        StreamingCommit::StoreFirst
    }
}

// ---- trimming the log and the messages ----------------------------------------------------

/// The bytes of the newest events kept when the log is trimmed for size: a quarter below the
/// bound, so a trim is not needed again at the next event.
pub const LOG_KEEP_BYTES: u64 = LOG_MAX_BYTES / 4 * 3;

/// True when the log (events `oldest..=newest`, `bytes` of them) is past one of its bounds:
/// [`LOG_RETENTION`] events or [`LOG_MAX_BYTES`].
pub fn log_over_bound(oldest: u64, newest: u64, bytes: u64) -> bool {
    newest >= oldest + LOG_RETENTION || bytes > LOG_MAX_BYTES
}

/// The first `seq` a trimmed log keeps: the newest [`LOG_TRIM_TO`] events, fewer when they
/// hold more than [`LOG_KEEP_BYTES`] (`by_bytes`: the first seq of the newest events within
/// that, as the store counts them; none when the newest event alone is bigger), and always
/// the newest event itself.
pub fn log_keep_from(newest: u64, by_bytes: Option<u64>) -> u64 {
    (newest + 1)
        .saturating_sub(LOG_TRIM_TO)
        .max(by_bytes.unwrap_or(newest))
        .min(newest)
}

/// When the kept messages (`count`, `bytes`) are past [`MAX_MESSAGES`] or
/// [`MESSAGES_MAX_BYTES`]: the (count, bytes) to trim the oldest down to, a quarter below
/// each bound.
pub fn messages_trim_to((count, bytes): (u64, u64)) -> Option<(u64, u64)> {
    (count > MAX_MESSAGES || bytes > MESSAGES_MAX_BYTES)
        .then_some((MAX_MESSAGES / 4 * 3, MESSAGES_MAX_BYTES / 4 * 3))
}

/// Which messages a trim to (`max_count`, `max_bytes`) keeps, given each one's bytes newest
/// first: each in turn while it still fits, counting from the newest (an older, smaller one may
/// still fit after a bigger one did not). Returns whether each is kept, and the (count, bytes)
/// kept.
pub fn messages_kept(
    sizes_newest_first: &[u64],
    max_count: u64,
    max_bytes: u64,
) -> (Vec<bool>, (u64, u64)) {
    let (mut count, mut bytes) = (0u64, 0u64);
    let kept = sizes_newest_first
        .iter()
        .map(|&n| {
            let fits = count < max_count && bytes + n <= max_bytes;
            if fits {
                count += 1;
                bytes += n;
            }
            fits
        })
        .collect();
    (kept, (count, bytes))
}

// ---- lease carry-over ---------------------------------------------------------------------

/// A lease a call gave back, as the next call's lease request sees it (the edge's own type
/// carries what the limiter is told with it).
pub trait GivenBack {
    /// The limiter it came from (one per provider and model).
    fn bucket(&self) -> &str;
    /// The next call the limiter set aside with it: up to this many tokens.
    fn follow_on(&self) -> Option<u32>;
}

/// How a call's lease request begins, given what the last call gave back.
#[derive(Debug, PartialEq)]
pub enum LeaseStart<B> {
    /// The follow-on set aside with the last lease covers this call: it starts now, and the
    /// limiter is told (`go_on`) once the provider has answered.
    GoOn(B),
    /// Ask the limiter: `release_first` (a lease of another limiter) is given back on its own
    /// before; `give_back` (this limiter's, without a follow-on that covers the call) goes
    /// with the request.
    Acquire {
        release_first: Option<B>,
        give_back: Option<B>,
    },
}

/// The carry-over of `call.rs`'s `AcquireLease`: `back` is what the last call gave back,
/// `bucket` and `tokens` what this call asks for.
pub fn lease_start<B: GivenBack>(back: Option<B>, bucket: &str, tokens: u32) -> LeaseStart<B> {
    let (release_first, back) = match back {
        Some(b) if b.bucket() != bucket => (Some(b), None),
        same => (None, same),
    };
    match back {
        Some(b) if b.follow_on().is_some_and(|t| tokens <= t) => LeaseStart::GoOn(b),
        give_back => LeaseStart::Acquire {
            release_first,
            give_back,
        },
    }
}

/// The follow-on kept with a released lease: the one the limiter answered when it was told the
/// call went on (`told`), else the one set aside with the lease itself.
pub fn follow_on_kept(told: Option<u32>, leased: Option<u32>) -> Option<u32> {
    told.or(leased)
}

// ---- catch-up -----------------------------------------------------------------------------

/// The events one replay page carries at most.
pub const CATCHUP_PAGE_EVENTS: usize = 200;

/// Sets the socket's catch-up from its `hello`'s plan.
pub fn begin_catch_up(c: &mut Connection, plan: &ReplayPlan) {
    c.catch_up = Some(match plan {
        ReplayPlan::Replay { from, .. } => CatchUp::Replay { next: *from },
        ReplayPlan::Snapshot { .. } => CatchUp::Snapshot,
    });
}

/// What a socket's catch-up sends next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUpStep {
    /// No catch-up: the socket is live (or never said hello).
    Idle,
    /// The window is shut: save the socket's state; the next `ack` goes on.
    Pause,
    /// Send a state and messages snapshot, then `caught_up`.
    Snapshot,
    /// Send the logged events `from..=to` (at most [`CATCHUP_PAGE_EVENTS`]) while the window
    /// stays open, then report where it stopped ([`page_sent`]).
    Page { from: u64, to: u64 },
    /// Everything is sent: `caught_up {last_seq}`, then [`Connection::joined`].
    CaughtUp { last_seq: u64 },
}

/// The next step of `c`'s catch-up against a log that holds `oldest..=newest`. A replay whose
/// next event was trimmed while it waited for an `ack` becomes a snapshot.
pub fn catch_up_step(c: &mut Connection, oldest: u64, newest: u64) -> CatchUpStep {
    let next = match c.catch_up {
        None => return CatchUpStep::Idle,
        Some(_) if !c.catch_up_open() => return CatchUpStep::Pause,
        Some(CatchUp::Snapshot) => return CatchUpStep::Snapshot,
        Some(CatchUp::Replay { next }) => next,
    };
    if next > newest {
        return CatchUpStep::CaughtUp { last_seq: newest };
    }
    if next < oldest {
        c.catch_up = Some(CatchUp::Snapshot);
        return CatchUpStep::Snapshot;
    }
    CatchUpStep::Page {
        from: next,
        to: newest,
    }
}

/// A page was sent up to (not including) `next`: the replay goes on from there.
pub fn page_sent(c: &mut Connection, next: u64) {
    c.catch_up = Some(CatchUp::Replay { next });
}

// ---- epochs -------------------------------------------------------------------------------

/// The epochs after a load. `stored` is what the session's metadata holds (none before the
/// first crash), `streaming` whether the last instance stopped while it sent events ahead of
/// storage, `newest` the newest stored `seq`. True when a new epoch began (from `newest + 1`):
/// the edge stores the epochs and clears the mark.
pub fn recover_epochs(stored: Option<Epochs>, streaming: bool, newest: u64) -> (Epochs, bool) {
    let mut epochs = stored.unwrap_or_default();
    if streaming {
        epochs.begin(newest + 1);
    }
    (epochs, streaming)
}

// ---- the prompt ---------------------------------------------------------------------------

/// The messages of the call's first request: the approved artifacts before its stage, in
/// pipeline order, then (a rerun after rejection) the rejected draft of its own stage.
/// `artifact` reads one stored version; one no longer kept is left out of the prompt rather
/// than failing the call.
pub fn prompt<E>(
    spec: &CallSpec,
    mut artifact: impl FnMut(Stage, u32) -> Result<Option<String>, E>,
) -> Result<Vec<ChatMessage>, E> {
    let mut prior = Vec::new();
    for &(stage, version) in &spec.prior {
        if let Some(text) = artifact(stage, version)? {
            prior.push((stage, text));
        }
    }
    let previous = match spec.previous_version {
        Some(v) => artifact(spec.stage, v)?,
        None => None,
    };
    Ok(agents::build_messages(
        spec.stage,
        &spec.brief,
        &prior,
        spec.feedback.as_deref(),
        previous.as_deref(),
    ))
}

// ---- idle expiry, the alarm, admission leases ----------------------------------------------

/// What the expiry timer finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A socket is open or a call runs or waits: the session is in use, and its last activity
    /// moves to now (so the next expiry is a whole idle limit away).
    Busy,
    /// Idle for the whole limit: delete the session.
    Idle,
    /// Not idle long enough yet (the timer fired early, or activity moved meanwhile).
    NotYet,
}

/// The idle expiry: `busy` (a socket open, a call running or announced), `active_at` the last
/// activity as stored, `idle_ttl_ms` the limit (`SESSION_IDLE_TTL_S`).
pub fn expiry(busy: bool, active_at: u64, idle_ttl_ms: u64, now: u64) -> Expiry {
    if busy {
        Expiry::Busy
    } else if now >= active_at + idle_ttl_ms {
        Expiry::Idle
    } else {
        Expiry::NotYet
    }
}

/// Whether the one alarm must be set for `t`, given the one set (`current`): only to move it
/// earlier, or when none is set or the one set is already past. A later deadline is re-derived
/// when the earlier alarm fires, so the storage write is saved.
pub fn alarm_moves(current: Option<u64>, t: u64, now: u64) -> bool {
    !current.is_some_and(|a| a <= t && a >= now)
}

/// Sessions tell the admission object their connections are alive this often (its leases
/// expire well after this, so a crashed session's places come back on their own).
pub const LEASE_RENEW_MS: u64 = 5 * 60_000;

/// Whether the sweep renews the connections' admission leases now: some are open, and the last
/// renewal (`renewed_at`) is [`LEASE_RENEW_MS`] old.
pub fn renew_due(any_open: bool, renewed_at: u64, now: u64) -> bool {
    any_open && now >= renewed_at + LEASE_RENEW_MS
}

#[cfg(test)]
mod tests;
