//! What a response body delivered before the call read it. The edge's body reader pushes each
//! chunk here as it arrives (one call per chunk) and the call takes everything gathered as one
//! piece. At [`INBOX_MAX_BYTES`] the reader is told to wait until the call has taken them, so a
//! provider that sends faster than the session relays is held at the body, not in memory.
//!
//! The call is woken only for a chunk with a line end in it. Nothing the call decodes can
//! come of bytes without one: an SSE event ends at a blank line, and a JSON body is read at
//! its end. The runtime hands a streamed body over in pieces cut anywhere (under `wrangler
//! dev`, each event of the OpenAI test double came as 25 bytes and then the rest), and each
//! wake costs the call a turn of its loop for nothing.

/// Bytes gathered before the reader waits.
pub const INBOX_MAX_BYTES: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct Inbox {
    bytes: Vec<u8>,
    /// The body ended: `Ok` at its end, `Err(message)` when reading it failed.
    end: Option<Result<(), String>>,
    /// The reader waits to be resumed.
    waiting: bool,
    /// It has waited at least once.
    held: bool,
}

/// What [`Inbox::push`] tells the reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Read on; the call need not be woken (no line end yet).
    Gathering,
    /// Read on; wake the call.
    ReadOn,
    /// Wait to be resumed; `first` the first time for this body (worth a log line).
    Wait { first: bool },
}

/// What [`Inbox::take`] gives the call.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Everything that arrived since the last take; `resume` when the reader waits for it.
    Bytes { bytes: Vec<u8>, resume: bool },
    /// The body ended after the bytes taken before.
    End,
    /// Reading it failed after the bytes taken before.
    Failed(String),
    /// Nothing yet: wait for the next push.
    Nothing,
}

impl Inbox {
    /// A chunk of `len` bytes arrived; `fill` copies it into the inbox.
    pub fn push(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Pushed {
        let at = self.bytes.len();
        self.bytes.resize(at + len, 0);
        fill(&mut self.bytes[at..]);
        if self.bytes.len() < INBOX_MAX_BYTES {
            // From the back: a streamed event's chunk usually ends with its line ends.
            let line_end = self.bytes[at..]
                .iter()
                .rev()
                .any(|&b| b == b'\n' || b == b'\r');
            return if line_end {
                Pushed::ReadOn
            } else {
                Pushed::Gathering
            };
        }
        self.waiting = true;
        Pushed::Wait {
            first: !std::mem::replace(&mut self.held, true),
        }
    }

    /// The body ended (`None`) or reading it failed.
    pub fn end(&mut self, error: Option<String>) {
        self.end = Some(error.map_or(Ok(()), Err));
    }

    pub fn take(&mut self) -> Taken {
        if !self.bytes.is_empty() {
            return Taken::Bytes {
                bytes: std::mem::take(&mut self.bytes),
                resume: std::mem::take(&mut self.waiting),
            };
        }
        match self.end.take() {
            Some(Ok(())) => Taken::End,
            Some(Err(e)) => Taken::Failed(e),
            None => Taken::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(inbox: &mut Inbox, chunk: &[u8]) -> Pushed {
        inbox.push(chunk.len(), |buf| buf.copy_from_slice(chunk))
    }

    #[test]
    fn chunks_gathered_are_taken_as_one_piece_in_order() {
        let mut inbox = Inbox::default();
        assert_eq!(inbox.take(), Taken::Nothing);
        assert_eq!(push(&mut inbox, b"data: a\n"), Pushed::ReadOn);
        assert_eq!(push(&mut inbox, b"\ndata: b"), Pushed::ReadOn);
        let bytes = b"data: a\n\ndata: b".to_vec();
        assert_eq!(
            inbox.take(),
            Taken::Bytes {
                bytes,
                resume: false
            }
        );
        assert_eq!(inbox.take(), Taken::Nothing);
    }

    #[test]
    fn the_reader_waits_at_the_cap_until_the_bytes_are_taken() {
        let mut inbox = Inbox::default();
        let big = vec![b'x'; INBOX_MAX_BYTES - 1];
        assert_eq!(push(&mut inbox, &big), Pushed::Gathering);
        assert_eq!(push(&mut inbox, b"y"), Pushed::Wait { first: true });
        match inbox.take() {
            Taken::Bytes { bytes, resume } => {
                assert_eq!(bytes.len(), INBOX_MAX_BYTES);
                assert_eq!(bytes.last(), Some(&b'y'));
                assert!(resume, "the waiting reader is resumed");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(push(&mut inbox, b"z"), Pushed::Gathering);
        assert_eq!(
            push(&mut inbox, &vec![b'x'; INBOX_MAX_BYTES]),
            Pushed::Wait { first: false },
            "logged once per body"
        );
        let Taken::Bytes { resume, .. } = inbox.take() else {
            panic!("bytes")
        };
        assert!(resume);
        assert_eq!(push(&mut inbox, b"z"), Pushed::Gathering);
        let Taken::Bytes { resume, .. } = inbox.take() else {
            panic!("bytes")
        };
        assert!(!resume, "a reader that did not wait is not resumed");
    }

    #[test]
    fn the_call_is_woken_for_a_line_end_or_at_the_cap_only() {
        let mut inbox = Inbox::default();
        // An event cut in two, as the runtime hands it over.
        assert_eq!(
            push(&mut inbox, b"data: {\"id\":\"chatcmpl-fa"),
            Pushed::Gathering
        );
        assert_eq!(push(&mut inbox, b"ke1\"}\n\n"), Pushed::ReadOn);
        assert_eq!(
            push(&mut inbox, b"data: x\r"),
            Pushed::ReadOn,
            "CR ends a line too"
        );
        assert_eq!(push(&mut inbox, b"\nda"), Pushed::ReadOn);
        assert_eq!(push(&mut inbox, b"ta"), Pushed::Gathering);
        let Taken::Bytes { bytes, .. } = inbox.take() else {
            panic!("bytes")
        };
        assert_eq!(
            bytes,
            b"data: {\"id\":\"chatcmpl-fake1\"}\n\ndata: x\r\ndata".to_vec(),
            "a piece not woken for is taken with the next"
        );
        // A line longer than the inbox still wakes the call at the cap.
        let mut inbox = Inbox::default();
        assert_eq!(
            push(&mut inbox, &vec![b'x'; INBOX_MAX_BYTES]),
            Pushed::Wait { first: true }
        );
    }

    #[test]
    fn the_end_and_a_failure_come_after_the_bytes_before_them() {
        let mut inbox = Inbox::default();
        push(&mut inbox, b"last");
        inbox.end(None);
        assert!(matches!(inbox.take(), Taken::Bytes { .. }));
        assert_eq!(inbox.take(), Taken::End);
        assert_eq!(inbox.take(), Taken::Nothing);

        let mut inbox = Inbox::default();
        push(&mut inbox, b"some");
        inbox.end(Some("Error: connection reset".into()));
        assert!(matches!(inbox.take(), Taken::Bytes { .. }));
        assert_eq!(
            inbox.take(),
            Taken::Failed("Error: connection reset".into())
        );
    }
}
