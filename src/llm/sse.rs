//! Incremental server-sent-events parser (WHATWG HTML, "Parsing an event stream").
//!
//! Bytes arrive in whatever chunks the network delivers, so a chunk may end anywhere: inside
//! a line, inside a UTF-8 character, between the `\r` and `\n` of a line break. The parser keeps
//! the unfinished line as bytes and decodes only complete lines; `\r` and `\n` never occur
//! inside a UTF-8 multibyte sequence, so the result does not depend on where chunks end.
//!
//! Memory is bounded: an event (its pending line plus accumulated data) larger than the limit
//! is an error, after which the parser stays failed.

use std::fmt;

/// Default bound on one event's buffered bytes.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event. `event` is `None` for the default type (`message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// An event grew past the buffer limit (a runaway or hostile stream).
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "server-sent event larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

#[derive(Debug, Clone)]
pub struct SseParser {
    /// The current, unterminated line.
    line: Vec<u8>,
    data: String,
    event: String,
    last_event_id: String,
    retry_ms: Option<u64>,
    /// The previous chunk ended with `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    /// No line has been completed yet, so a BOM may still be at the start.
    first_line: bool,
    max_event_bytes: usize,
    failed: Option<SseError>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::with_max_event_bytes(MAX_EVENT_BYTES)
    }

    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        SseParser {
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            last_event_id: String::new(),
            retry_ms: None,
            after_cr: false,
            first_line: true,
            max_event_bytes,
            failed: None,
        }
    }

    /// Feeds the next chunk and returns the events it completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut out = Vec::new();
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&rest[..end]);
                    self.check_size()?;
                    let ended_by_cr = rest[end] == b'\r';
                    rest = &rest[end + 1..];
                    if ended_by_cr {
                        match rest.first() {
                            Some(b'\n') => rest = &rest[1..],
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    self.finish_line(&mut out);
                    self.check_size()?;
                }
                None => {
                    self.line.extend_from_slice(rest);
                    self.check_size()?;
                    break;
                }
            }
        }
        Ok(out)
    }

    /// End of stream. Per the spec an event without its closing blank line is discarded;
    /// returns whether anything was (useful for logging a truncated stream).
    pub fn finish(&mut self) -> bool {
        let discarded = !self.line.is_empty() || !self.data.is_empty();
        self.line.clear();
        self.data.clear();
        self.event.clear();
        discarded
    }

    /// The last `id:` field seen (for `Last-Event-ID` on reconnect).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The last valid `retry:` field, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    fn check_size(&mut self) -> Result<(), SseError> {
        let pending = self.line.len() + self.data.len() + self.event.len();
        if pending > self.max_event_bytes {
            let e = SseError::EventTooLarge {
                limit: self.max_event_bytes,
            };
            self.failed = Some(e);
            self.line = Vec::new();
            self.data = String::new();
            return Err(e);
        }
        Ok(())
    }

    fn finish_line(&mut self, out: &mut Vec<SseEvent>) {
        let mut bytes = std::mem::take(&mut self.line);
        if self.first_line {
            self.first_line = false;
            if bytes.starts_with(BOM) {
                bytes.drain(..BOM.len());
            }
        }
        let line = String::from_utf8_lossy(&bytes);
        if line.is_empty() {
            self.dispatch(out);
        } else if line.starts_with(':') {
            // Comment: keep-alives and padding.
        } else {
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            self.field(field, value);
        }
        // Reuse the allocation for the next line.
        bytes.clear();
        self.line = bytes;
    }

    fn field(&mut self, name: &str, value: &str) {
        match name {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "id" if !value.contains('\0') => self.last_event_id = value.to_string(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the '\n' appended after the last data line
        out.push(SseEvent {
            event: (!event.is_empty()).then_some(event),
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Vec<SseEvent> {
        SseParser::new().push(input).unwrap()
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
        }
    }

    #[test]
    fn basic_events() {
        let got = parse_all(b"data: hello\n\ndata: world\n\n");
        assert_eq!(got, [ev(None, "hello"), ev(None, "world")]);
    }

    #[test]
    fn every_line_ending() {
        for input in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
            b"data: a\r\n\ndata: b\n\r\n",
        ] {
            assert_eq!(
                parse_all(input),
                [ev(None, "a"), ev(None, "b")],
                "{input:?}"
            );
        }
    }

    #[test]
    fn cr_lf_split_across_chunks_is_one_line_break() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: a\r").unwrap(), []);
        // If the '\n' were a second line break, this would dispatch "a" here.
        assert_eq!(p.push(b"\n").unwrap(), []);
        assert_eq!(p.push(b"data: b\r").unwrap(), []);
        assert_eq!(p.push(b"").unwrap(), []);
        assert_eq!(p.push(b"\n\r").unwrap(), [ev(None, "a\nb")]);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let text = "data: héllo 🦀\n\n".as_bytes();
        let crab = text.iter().position(|&b| b == 0xF0).unwrap();
        let mut p = SseParser::new();
        let mut got = p.push(&text[..crab + 2]).unwrap();
        got.extend(p.push(&text[crab + 2..]).unwrap());
        assert_eq!(got, [ev(None, "héllo 🦀")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        assert_eq!(parse_all(b"data: a\xFFb\n\n"), [ev(None, "a\u{FFFD}b")]);
    }

    #[test]
    fn comments_multiline_data_and_event_type() {
        let input =
            b": keep-alive\n\nevent: delta\ndata: line 1\ndata:line 2\ndata:  two spaces\n\n";
        assert_eq!(
            parse_all(input),
            [ev(Some("delta"), "line 1\nline 2\n two spaces")]
        );
    }

    #[test]
    fn field_without_colon_and_empty_data() {
        // "data" alone appends an empty line; two of them make "\n".
        assert_eq!(parse_all(b"data\ndata\n\n"), [ev(None, "\n")]);
        assert_eq!(parse_all(b"data\n\n"), [ev(None, "")]);
        // Unknown fields are ignored; a blank line with no data dispatches nothing.
        assert_eq!(parse_all(b"foo: bar\n\n\n\n"), []);
    }

    #[test]
    fn event_type_resets_after_dispatch_and_on_empty_dispatch() {
        assert_eq!(
            parse_all(b"event: x\n\ndata: 1\n\nevent: y\ndata: 2\n\ndata: 3\n\n"),
            [ev(None, "1"), ev(Some("y"), "2"), ev(None, "3")]
        );
    }

    #[test]
    fn bom_only_at_stream_start() {
        assert_eq!(parse_all(b"\xEF\xBB\xBFdata: a\n\n"), [ev(None, "a")]);
        // A BOM split across chunks is still stripped.
        let mut p = SseParser::new();
        assert_eq!(p.push(b"\xEF\xBB").unwrap(), []);
        assert_eq!(p.push(b"\xBFdata: a\n\n").unwrap(), [ev(None, "a")]);
        // Later, the bytes are part of the field name, which is then unknown.
        assert_eq!(
            parse_all(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"),
            [ev(None, "a")]
        );
    }

    #[test]
    fn id_and_retry_fields() {
        let mut p = SseParser::new();
        p.push(b"id: 42\nretry: 1500\ndata: x\n\nretry: soon\nid: a\0b\n\n")
            .unwrap();
        assert_eq!(p.last_event_id(), "42");
        assert_eq!(p.retry_ms(), Some(1500));
    }

    #[test]
    fn unterminated_event_is_discarded_at_finish() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: partial\n").unwrap(), []);
        assert!(p.finish());
        assert!(!p.finish());
        assert_eq!(p.push(b"\n").unwrap(), []);
    }

    #[test]
    fn oversized_event_is_an_error_and_sticks() {
        let mut p = SseParser::with_max_event_bytes(16);
        assert_eq!(p.push(b"data: 0123456789\n").unwrap(), []);
        assert_eq!(
            p.push(b"data: more\n"),
            Err(SseError::EventTooLarge { limit: 16 })
        );
        assert!(p.push(b"\n").is_err());
        // A long line without any line break is caught too.
        let mut p = SseParser::with_max_event_bytes(16);
        assert!(p.push(&[b'a'; 17]).is_err());
        // Many small events under the limit are fine: the bound is per event.
        let mut p = SseParser::with_max_event_bytes(16);
        for _ in 0..100 {
            assert_eq!(p.push(b"data: 0123\n\n").unwrap(), [ev(None, "0123")]);
        }
    }

    fn parse_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([input.len()]) {
            out.extend(p.push(&input[start..c]).unwrap());
            start = c;
        }
        out
    }

    /// A well-formed stream built from events, with a random line ending per line.
    fn encode(events: &[(Option<String>, Vec<String>)], endings: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut nl = |out: &mut Vec<u8>| {
            let mut e: &[u8] = match endings[i % endings.len()] % 3 {
                0 => b"\n",
                1 => b"\r\n",
                _ => b"\r",
            };
            // "\r" then "\n" would read as one "\r\n" break.
            if e == b"\n" && out.last() == Some(&b'\r') {
                e = b"\r";
            }
            i += 1;
            out.extend_from_slice(e);
        };
        for (event, lines) in events {
            if let Some(e) = event {
                out.extend_from_slice(format!("event: {e}").as_bytes());
                nl(&mut out);
            }
            for l in lines {
                out.extend_from_slice(format!("data: {l}").as_bytes());
                nl(&mut out);
            }
            nl(&mut out);
        }
        out
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_events(input in proptest::collection::vec(any::<u8>(), 0..400), cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
            let whole = parse_all(&input);
            prop_assert_eq!(parse_in_pieces(&input, &cuts), whole);
        }

        #[test]
        fn chunking_does_not_change_text_events(input in "(data|event|id|:|: |\r|\n|\r\n|é|🦀|x| ){0,80}", cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
            let bytes = input.as_bytes();
            prop_assert_eq!(parse_in_pieces(bytes, &cuts), parse_all(bytes));
        }

        #[test]
        fn byte_at_a_time_matches(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let cuts: Vec<usize> = (0..=input.len()).collect();
            prop_assert_eq!(parse_in_pieces(&input, &cuts), parse_all(&input));
        }

        #[test]
        fn arbitrary_bytes_never_panic_even_with_tiny_limit(input in proptest::collection::vec(any::<u8>(), 0..400), limit in 0usize..32) {
            let mut p = SseParser::with_max_event_bytes(limit);
            let _ = p.push(&input);
            let _ = p.push(&input);
            p.finish();
        }

        #[test]
        fn encoded_events_round_trip(
            events in proptest::collection::vec((proptest::option::of("[a-z]{1,8}"), proptest::collection::vec("[^\r\n]{0,20}", 1..4)), 0..6),
            endings in proptest::collection::vec(any::<u8>(), 1..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let bytes = encode(&events, &endings);
            let expected: Vec<SseEvent> = events.iter().map(|(e, lines)| SseEvent {
                event: e.clone(),
                // The parser strips exactly one leading space, the one `encode` added.
                data: lines.join("\n"),
            }).collect();
            prop_assert_eq!(parse_in_pieces(&bytes, &cuts), expected);
        }
    }
}
