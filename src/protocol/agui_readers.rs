//! The AG-UI HTTP streams of one session (its "readers"): who may open one, and what the
//! session holds for a reader that does not read. No I/O: the edge asks [`Readers::open`]
//! for a stream, replays the log into it with [`Readers::offer_to`], hands every committed
//! event to [`Readers::offer`], and serves the stream's [`Body`] as the response; the runtime
//! takes chunks from the body as its client reads.
//!
//! | rule | value | past it |
//! |---|---|---|
//! | streams following a run, per client address, per session | [`STREAMS_PER_CLIENT`] | `429 too_many_streams`; nothing is applied or opened |
//! | streams following a run, per session | [`STREAMS_PER_SESSION`] | `429 too_many_streams` |
//! | written and not yet read, one stream | [`STREAM_QUEUE_BYTES`] | the stream is cut |
//! | written and not yet read, all streams of the session | [`READERS_HELD_BYTES`] | the streams holding the most are cut until the rest fits |
//!
//! Why a total: the per-stream bound alone let 48 readers of one 12 MiB run that never read
//! hold a gigabyte. A cut drops what the stream held at once (the memory is the point), writes
//! one SSE comment naming the last event the reader was given, and ends the stream; the reader
//! resumes with `GET …/agui?after=<that id>` (or `Last-Event-ID`).
//!
//! A stream takes a place under the caps while it follows a run in progress; once its run has
//! ended or it was cut, its place is free (the runtime does not always tell a session that a
//! client went away, so a place must not wait for that). Across sessions, a stream is one of
//! its client's connections: the router takes a lease on the client's share of connections
//! (`crate::admission`, `429 too_many_connections` past it, WebSockets and streams together)
//! and the session gives it back when the stream stops taking a place ([`Readers::take_freed`]). Its bytes count toward the total until
//! its reader has taken them, it is cut, or its body is dropped: a replay of a finished run that
//! nobody reads is shed like any other stream.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::agui_http::{HttpError, Offer, RunStream, STREAM_QUEUE_BYTES};

/// Streams one client address may hold open on one session. A client needs one per run it
/// follows; four leave room for a tab that reconnects before the runtime saw the old one go.
pub const STREAMS_PER_CLIENT: usize = 4;
/// Streams one session holds open at once, all clients together.
pub const STREAMS_PER_SESSION: usize = 16;
/// Bytes written to all of a session's streams and not yet taken by their readers, at most
/// (two streams' worth of [`STREAM_QUEUE_BYTES`]).
pub const READERS_HELD_BYTES: u64 = 16 * 1024 * 1024;

/// What one stream's body has not yet handed to the runtime.
#[derive(Default)]
struct Queue {
    /// Chunks with the seq of the event each carries (0 for a comment).
    chunks: VecDeque<(u64, String)>,
    bytes: u64,
    /// The last event handed to the runtime: where its reader resumes after a cut.
    given: u64,
    /// Nothing more will be written: the body ends once the queue is empty.
    ended: bool,
    /// The body was dropped (the client went away): the stream counts no more.
    gone: bool,
    waker: Option<Waker>,
}

/// The response body of one stream: poll it for the next chunk.
pub struct Body(Rc<RefCell<Queue>>);

impl Body {
    /// The next chunk; `None` when the stream has ended and everything was taken.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        let mut q = self.0.borrow_mut();
        if let Some((seq, chunk)) = q.chunks.pop_front() {
            q.bytes -= chunk.len() as u64;
            if seq > 0 {
                q.given = seq;
            }
            return Poll::Ready(Some(chunk));
        }
        if q.ended {
            return Poll::Ready(None);
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let mut q = self.0.borrow_mut();
        q.gone = true;
        q.chunks = VecDeque::new();
        q.bytes = 0;
    }
}

/// Why a stream was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// Its reader fell [`STREAM_QUEUE_BYTES`] behind.
    Behind,
    /// The session's streams held [`READERS_HELD_BYTES`] unread, this one the most.
    Shed,
    /// An event was missing (a bug): the reader resumes and gets it from the log.
    Gap,
}

impl CutReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CutReason::Behind => "behind",
            CutReason::Shed => "shed",
            CutReason::Gap => "gap",
        }
    }
}

/// A stream that was cut, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub client: String,
    pub reason: CutReason,
    /// Bytes it held when it was cut (now dropped).
    pub held: u64,
    /// Where its reader resumes (`after`).
    pub resume_after: u64,
}

struct Reader {
    id: u64,
    client: String,
    /// The client's connection lease ("" for none), given back once the place is free.
    lease: String,
    run: RunStream,
    q: Rc<RefCell<Queue>>,
    /// Nothing more is written (the run ended, or the stream was cut).
    ended: bool,
    /// Cut: its bytes were dropped, only its comment is left.
    cut: bool,
}

impl Reader {
    fn held(&self) -> u64 {
        self.q.borrow().bytes
    }

    fn write(&self, seq: u64, chunk: String, end: bool) {
        let waker = {
            let mut q = self.q.borrow_mut();
            if q.gone {
                return;
            }
            q.bytes += chunk.len() as u64;
            q.chunks.push_back((seq, chunk));
            q.ended |= end;
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Drops what the stream holds and ends it with a comment that says where to resume.
    fn cut(&mut self, reason: CutReason) -> Cut {
        let (held, given) = {
            let mut q = self.q.borrow_mut();
            let held = q.bytes;
            q.chunks = VecDeque::new();
            q.bytes = 0;
            (held, q.given)
        };
        let why = match reason {
            CutReason::Behind => {
                format!("its reader fell {STREAM_QUEUE_BYTES} bytes behind")
            }
            CutReason::Shed => format!(
                "this session's streams held {READERS_HELD_BYTES} bytes their readers had not \
                 read, this one the most"
            ),
            CutReason::Gap => "an event was missing".to_string(),
        };
        self.ended = true;
        self.cut = true;
        self.write(
            0,
            format!(
                ": cut ({}): {why}; resume with Last-Event-ID: {given} (or GET ?after={given})\n\n",
                reason.as_str()
            ),
            true,
        );
        Cut {
            client: self.client.clone(),
            reason,
            held,
            resume_after: given,
        }
    }
}

/// The open streams of one session.
#[derive(Default)]
pub struct Readers {
    next_id: u64,
    open: Vec<Reader>,
    /// Leases of streams that no longer take a place, to give back.
    freed: Vec<String>,
}

impl Readers {
    pub fn new() -> Self {
        Readers::default()
    }

    /// Streams that hold a place (following a run in progress).
    pub fn len(&mut self) -> usize {
        self.prune();
        self.open.iter().filter(|r| !r.ended).count()
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Bytes all streams hold for their readers.
    pub fn held(&self) -> u64 {
        self.open.iter().map(Reader::held).sum()
    }

    /// May `client` open one more stream? Asked before a `POST` applies its command, so a
    /// refused request changes nothing.
    pub fn admit(&mut self, client: &str) -> Result<(), HttpError> {
        let live = self.len();
        let refuse = |message: String| HttpError {
            status: 429,
            code: "too_many_streams",
            message,
        };
        if live >= STREAMS_PER_SESSION {
            return Err(refuse(format!(
                "This session has {STREAMS_PER_SESSION} AG-UI streams open; try again when one \
                 has ended."
            )));
        }
        let mine = self.open.iter().filter(|r| !r.ended && r.client == client);
        if mine.count() >= STREAMS_PER_CLIENT {
            return Err(refuse(format!(
                "This client has {STREAMS_PER_CLIENT} AG-UI streams open on this session; read \
                 or close one, then resume with GET …/agui?after=<last id>."
            )));
        }
        Ok(())
    }

    /// Opens a stream for `client` (holding the connection lease `lease`) from the event `from`
    /// on; the edge serves the [`Body`].
    pub fn open(&mut self, client: &str, lease: &str, from: u64) -> Result<(u64, Body), HttpError> {
        self.admit(client)?;
        let q = Rc::new(RefCell::new(Queue {
            given: from.saturating_sub(1),
            ..Queue::default()
        }));
        self.next_id += 1;
        self.open.push(Reader {
            id: self.next_id,
            client: client.to_string(),
            lease: lease.to_string(),
            run: RunStream::new(from),
            q: q.clone(),
            ended: false,
            cut: false,
        });
        Ok((self.next_id, Body(q)))
    }

    /// Is `lease` held by a stream that takes a place?
    pub fn holds(&self, lease: &str) -> bool {
        !lease.is_empty() && self.open.iter().any(|r| r.lease == lease)
    }

    /// `(lease, client)` of every stream that takes a place (renewed with the sockets').
    pub fn leases(&self) -> Vec<(String, String)> {
        self.open
            .iter()
            .filter(|r| !r.lease.is_empty())
            .map(|r| (r.lease.clone(), r.client.clone()))
            .collect()
    }

    /// Leases of streams that stopped taking a place since the last call: the edge gives them
    /// back to the admission object.
    pub fn take_freed(&mut self) -> Vec<String> {
        self.prune();
        std::mem::take(&mut self.freed)
    }

    /// Is the stream `id` still written to?
    pub fn is_live(&self, id: u64) -> bool {
        self.open.iter().any(|r| r.id == id && !r.ended)
    }

    /// A logged event for the stream `id` alone (its replay, right after [`Self::open`]).
    pub fn offer_to(&mut self, id: u64, seq: u64, json: &str) -> Vec<Cut> {
        let mut cuts = Vec::new();
        if let Some(i) = self.open.iter().position(|r| r.id == id) {
            self.offer_one(i, seq, json, &mut cuts);
        }
        cuts
    }

    /// A committed event for every open stream.
    pub fn offer(&mut self, seq: u64, json: &str) -> Vec<Cut> {
        self.prune();
        let mut cuts = Vec::new();
        for i in 0..self.open.len() {
            self.offer_one(i, seq, json, &mut cuts);
        }
        cuts
    }

    /// Ends every stream with `comment` (the session is deleted).
    pub fn end_all(&mut self, comment: &str) {
        for i in 0..self.open.len() {
            if !self.open[i].ended {
                self.open[i].write(0, comment.to_string(), true);
            }
            self.free_at(i);
        }
        self.open.clear();
    }

    /// The stream `i` no longer takes a place: its lease is to be given back.
    fn free_at(&mut self, i: usize) {
        let lease = std::mem::take(&mut self.open[i].lease);
        if !lease.is_empty() {
            self.freed.push(lease);
        }
    }

    fn offer_one(&mut self, i: usize, seq: u64, json: &str, cuts: &mut Vec<Cut>) {
        if self.open[i].ended {
            return;
        }
        let held = self.open[i].held();
        match self.open[i].run.offer(seq, json, held) {
            Offer::Skip => {}
            Offer::Overflow { chunk } => {
                let reason = if chunk.starts_with(": gap") {
                    CutReason::Gap
                } else {
                    CutReason::Behind
                };
                cuts.push(self.open[i].cut(reason));
                self.free_at(i);
            }
            Offer::Send { chunk, last } => {
                if self.make_room(i, chunk.len() as u64, cuts) {
                    self.open[i].write(seq, chunk, last);
                    self.open[i].ended |= last;
                }
                if self.open[i].ended {
                    self.free_at(i);
                }
            }
        }
    }

    /// Before `len` more bytes go to stream `i`: cuts the streams that hold the most until
    /// all of them together stay within [`READERS_HELD_BYTES`]. False when `i` was cut.
    fn make_room(&mut self, i: usize, len: u64, cuts: &mut Vec<Cut>) -> bool {
        let mut total = self.held() + len;
        if total <= READERS_HELD_BYTES {
            return true;
        }
        let weight = |j: usize, r: &Reader| r.held() + if j == i { len } else { 0 };
        let mut order: Vec<(u64, usize)> = self
            .open
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.cut)
            .map(|(j, r)| (weight(j, r), j))
            .filter(|&(w, _)| w > 0)
            .collect();
        order.sort_by_key(|&(w, j)| (Reverse(w), j));
        let mut kept = true;
        for (w, j) in order {
            if total <= READERS_HELD_BYTES {
                break;
            }
            total -= w;
            cuts.push(self.open[j].cut(CutReason::Shed));
            self.free_at(j);
            kept &= j != i;
        }
        kept
    }

    /// Forgets streams whose reader went away, that were cut, or that ended and were read to
    /// the end (a cut stream's body still hands over its comment).
    fn prune(&mut self) {
        let freed = &mut self.freed;
        self.open.retain_mut(|r| {
            let q = r.q.borrow();
            let keep = !(q.gone || r.cut || (r.ended && q.chunks.is_empty()));
            if !keep && !r.lease.is_empty() {
                freed.push(std::mem::take(&mut r.lease));
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, ty: &str, pad: usize) -> String {
        format!(
            r#"{{"seq":{seq},"timestamp":1,"type":"{ty}","delta":"{}"}}"#,
            "x".repeat(pad)
        )
    }

    fn take(b: &mut Body) -> Vec<String> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(c)) = b.poll_chunk(&mut cx) {
            out.push(c);
        }
        out
    }

    fn ended(b: &mut Body) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(b.poll_chunk(&mut cx), Poll::Ready(None))
    }

    #[test]
    fn a_client_may_hold_four_streams_on_a_session_and_is_refused_the_fifth() {
        let mut r = Readers::new();
        let _bodies: Vec<Body> = (0..STREAMS_PER_CLIENT)
            .map(|_| r.open("1.2.3.4", "", 1).unwrap().1)
            .collect();
        let e = r.open("1.2.3.4", "", 1).err().unwrap();
        assert_eq!((e.status, e.code), (429, "too_many_streams"));
        assert!(r.admit("1.2.3.4").is_err());
        // Another client still may.
        assert!(r.open("5.6.7.8", "", 1).is_ok());
    }

    #[test]
    fn a_session_holds_sixteen_streams_whoever_opens_them() {
        let mut r = Readers::new();
        let _bodies: Vec<Body> = (0..STREAMS_PER_SESSION)
            .map(|n| r.open(&format!("10.0.0.{n}"), "", 1).unwrap().1)
            .collect();
        let e = r.open("10.0.1.1", "", 1).err().unwrap();
        assert_eq!(e.code, "too_many_streams");
    }

    #[test]
    fn a_stream_whose_reader_went_away_no_longer_counts() {
        let mut r = Readers::new();
        let bodies: Vec<Body> = (0..STREAMS_PER_CLIENT)
            .map(|_| r.open("c", "", 1).unwrap().1)
            .collect();
        assert!(r.admit("c").is_err());
        drop(bodies);
        assert_eq!(r.len(), 0);
        assert!(r.admit("c").is_ok());
    }

    #[test]
    fn a_finished_run_frees_its_places_but_its_unread_bytes_still_count() {
        let mut r = Readers::new();
        let (_, mut read) = r.open("c", "", 1).unwrap();
        let _unread: Vec<Body> = (1..STREAMS_PER_CLIENT)
            .map(|_| r.open("c", "", 1).unwrap().1)
            .collect();
        assert!(r.admit("c").is_err());
        r.offer(1, &ev(1, "RUN_STARTED", 0));
        r.offer(2, &ev(2, "RUN_FINISHED", 0));
        assert_eq!(take(&mut read).len(), 2);
        assert!(ended(&mut read));
        assert_eq!(r.len(), 0);
        assert!(
            r.admit("c").is_ok(),
            "a client that does not read is not locked out"
        );
        assert!(r.held() > 0, "the streams not read still hold their bytes");
    }

    #[test]
    fn a_replay_of_a_finished_run_nobody_reads_is_shed_like_any_stream() {
        let mut r = Readers::new();
        let run: Vec<String> = (1..=200u64)
            .map(|s| {
                ev(
                    s,
                    if s == 200 {
                        "RUN_FINISHED"
                    } else {
                        "STATE_DELTA"
                    },
                    60 * 1024,
                )
            })
            .collect();
        let mut cuts = Vec::new();
        // Each re-POST of a known runId replays the run whole: ≈ 12 MiB, cut at 8 MiB each.
        for n in 0..48 {
            let (id, body) = r.open(&format!("c{n}"), "", 1).unwrap();
            std::mem::forget(body); // a reader that never reads and never leaves
            for (k, e) in run.iter().enumerate() {
                cuts.extend(r.offer_to(id, k as u64 + 1, e));
                assert!(r.held() <= READERS_HELD_BYTES + 1024 * 48);
            }
        }
        assert!(cuts.len() >= 46, "{}", cuts.len());
    }

    #[test]
    fn a_cut_stream_frees_its_place_at_once() {
        let mut r = Readers::new();
        let bodies: Vec<(u64, Body)> = (0..STREAMS_PER_CLIENT)
            .map(|_| r.open("c", "", 1).unwrap())
            .collect();
        let (id, _) = bodies[0];
        let mut seq = 1;
        while r.is_live(id) {
            r.offer_to(id, seq, &ev(seq, "TEXT_MESSAGE_CONTENT", 64 * 1024));
            seq += 1;
        }
        assert!(r.admit("c").is_ok());
    }

    #[test]
    fn events_reach_every_stream_in_order_with_their_seq_as_id() {
        let mut r = Readers::new();
        let (_, mut a) = r.open("a", "", 1).unwrap();
        let (_, mut b) = r.open("b", "", 2).unwrap();
        for (seq, ty) in [(1, "RUN_STARTED"), (2, "STATE_DELTA"), (3, "RUN_FINISHED")] {
            assert!(r.offer(seq, &ev(seq, ty, 0)).is_empty());
        }
        let a = take(&mut a);
        assert_eq!(a.len(), 3);
        assert!(a[0].starts_with("id: 1\n") && a[2].starts_with("id: 3\n"));
        assert_eq!(take(&mut b).len(), 2);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn one_reader_that_does_not_read_is_cut_at_its_own_bound_and_its_bytes_are_dropped() {
        let mut r = Readers::new();
        let (id, mut body) = r.open("c", "", 1).unwrap();
        let mut cuts = Vec::new();
        let mut seq = 1;
        while r.is_live(id) {
            cuts.extend(r.offer_to(id, seq, &ev(seq, "TEXT_MESSAGE_CONTENT", 64 * 1024)));
            seq += 1;
        }
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].reason, CutReason::Behind);
        assert!(cuts[0].held > STREAM_QUEUE_BYTES - 70 * 1024);
        assert!(
            r.held() < 1024,
            "the unread bytes were dropped: {}",
            r.held()
        );
        let got = take(&mut body);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with(": cut (behind)"), "{}", got[0]);
        assert!(got[0].contains("Last-Event-ID: 0"));
        assert!(ended(&mut body));
    }

    #[test]
    fn all_streams_together_hold_at_most_the_session_bound_and_the_slowest_go_first() {
        let mut r = Readers::new();
        // A reader that reads everything, and readers that read nothing, from four clients.
        let (_, mut reading) = r.open("reader", "", 1).unwrap();
        let mut idle: Vec<Body> = (0..12)
            .map(|n| r.open(&format!("idle-{}", n % 4), "", 1).unwrap().1)
            .collect();
        let mut cuts = Vec::new();
        let mut given = 0;
        for seq in 1..=400u64 {
            cuts.extend(r.offer(seq, &ev(seq, "TEXT_MESSAGE_CONTENT", 32 * 1024)));
            assert!(r.held() <= READERS_HELD_BYTES, "held {} at {seq}", r.held());
            given += take(&mut reading).len();
        }
        assert_eq!(given, 400, "the reader that reads lost nothing");
        assert!(cuts.iter().all(|c| c.client != "reader"));
        assert_eq!(cuts.len(), 12, "every idle stream was cut once");
        // The last two reach their own bound before the total: the rest were shed.
        let shed = cuts.iter().filter(|c| c.reason == CutReason::Shed).count();
        assert!(shed >= 10, "{cuts:?}");
        for b in &mut idle {
            let got = take(b);
            assert_eq!(got.len(), 1, "a cut stream holds only its comment");
            assert!(got[0].starts_with(": cut ("), "{}", got[0]);
            assert!(ended(b));
        }
    }

    #[test]
    fn a_cut_stream_says_the_last_event_its_reader_was_given() {
        let mut r = Readers::new();
        let (_, mut slow) = r.open("slow", "", 5).unwrap();
        r.offer(5, &ev(5, "RUN_STARTED", 0));
        r.offer(6, &ev(6, "STATE_DELTA", 0));
        assert_eq!(take(&mut slow).len(), 2);
        let (_, _fresh) = r.open("fresh", "", 7).unwrap();
        let mut seq = 7;
        let mut cuts = Vec::new();
        while cuts.is_empty() {
            cuts = r.offer(seq, &ev(seq, "TEXT_MESSAGE_CONTENT", 64 * 1024));
            seq += 1;
        }
        // Both fall behind alike; the first opened is cut first, and it was given seq 6.
        assert_eq!(cuts[0].client, "slow");
        assert_eq!(cuts[0].resume_after, 6);
        let got = take(&mut slow);
        assert!(got.last().unwrap().contains("GET ?after=6"));
    }

    #[test]
    fn a_replay_into_a_new_stream_sheds_the_old_streams_that_hold_more() {
        let mut r = Readers::new();
        let (_, _a) = r.open("a", "", 1).unwrap();
        let (_, _b) = r.open("b", "", 1).unwrap();
        // Each old stream holds 7 MiB: under its own bound, 14 MiB together.
        for seq in 1..=112u64 {
            assert!(r
                .offer(seq, &ev(seq, "TEXT_MESSAGE_CONTENT", 64 * 1024))
                .is_empty());
        }
        let (id, _new) = r.open("new", "", 1).unwrap();
        let cuts: Vec<Cut> = (1..=64u64)
            .flat_map(|s| r.offer_to(id, s, &ev(s, "TEXT_MESSAGE_CONTENT", 64 * 1024)))
            .collect();
        assert_eq!(cuts.len(), 1);
        assert_eq!(
            (cuts[0].client.as_str(), cuts[0].reason),
            ("a", CutReason::Shed)
        );
        assert!(r.is_live(id));
        assert!(r.held() <= READERS_HELD_BYTES);
    }

    #[test]
    fn a_stream_gives_its_connection_lease_back_when_its_place_is_free() {
        let mut r = Readers::new();
        let (_, _ends) = r.open("c", "l-end", 1000).unwrap();
        let (cut, _cut) = r.open("c", "l-cut", 1).unwrap();
        let (_, leaves) = r.open("c", "l-leaves", 1).unwrap();
        assert_eq!(r.leases().len(), 3);
        assert!(r.holds("l-cut") && !r.holds(""));
        drop(leaves);
        assert_eq!(r.take_freed(), vec!["l-leaves".to_string()]);
        let mut seq = 1;
        while r.is_live(cut) {
            r.offer_to(cut, seq, &ev(seq, "TEXT_MESSAGE_CONTENT", 64 * 1024));
            seq += 1;
        }
        assert_eq!(r.take_freed(), vec!["l-cut".to_string()]);
        assert!(r.offer(1000, &ev(1000, "RUN_FINISHED", 0)).is_empty());
        assert_eq!(r.take_freed(), vec!["l-end".to_string()]);
        assert!(r.take_freed().is_empty(), "each lease once");
        let (_, _gone) = r.open("c", "l-deleted", 1).unwrap();
        r.end_all(": session deleted\n\n");
        assert_eq!(r.take_freed(), vec!["l-deleted".to_string()]);
    }

    #[test]
    fn ending_every_stream_writes_the_comment_and_forgets_them() {
        let mut r = Readers::new();
        let (_, mut b) = r.open("c", "", 1).unwrap();
        r.end_all(": session deleted\n\n");
        assert_eq!(take(&mut b), vec![": session deleted\n\n".to_string()]);
        assert!(ended(&mut b));
        assert_eq!(r.len(), 0);
    }
}
