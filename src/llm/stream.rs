//! What a provider's streamed answer decodes into: [`StreamItem`], the one item type of both
//! decoders (OpenAI-compatible [`crate::llm::StreamDecoder`] and
//! [`crate::llm::AnthropicDecoder`]), so the session does not care which provider answered.
//!
//! # Order
//!
//! Items come in stream order. Text, reasoning and tool calls may interleave as the model
//! produces them; a call's `ToolCallStart` comes before its `ToolCallArgs`, and those before its
//! `ToolCallEnd`; every `ToolCallEnd` comes before `Finished`. `Usage` usually follows
//! `Finished`. `Done` is last: nothing is read after it. The tool call items map one-to-one onto
//! AG-UI's `TOOL_CALL_START {toolCallId, toolCallName}`, `TOOL_CALL_ARGS {toolCallId, delta}`
//! and `TOOL_CALL_END {toolCallId}`.
//!
//! When a call ends depends on what the dialect can say: an Anthropic `tool_use` block ends at
//! its `content_block_stop`, while an OpenAI-compatible stream has no end per call, so all its
//! calls end together when the choice finishes or at `[DONE]` ([`crate::llm::tools`] has the
//! rules).
//!
//! # Reading the body
//!
//! Both decoders read the response body through `BodyReader`, which holds their common
//! contract, and tell it only how their dialect reads an event (`Dialect`):
//!
//! - The body is a stream of server-sent events, or, when its first non-blank byte is `{`, a
//!   whole JSON body (a server that ignored `stream: true`, or an error sent with status 200),
//!   read up to [`MAX_JSON_BODY_BYTES`].
//! - Once it fails, it stays failed: every later call returns the same error.
//! - An error found after some items in the same chunk is returned by the next call, so the
//!   text that arrived before it is not lost.
//! - A body that ends before the dialect's end of stream is a `network` error ("stream ended
//!   early", retryable); invalid JSON is `malformed_stream`.

use serde_json::Value;

use super::error::{classify_error_object, ErrorKind, LlmError};
use super::sse::{SseEvent, SseParser};

/// A whole response body that is not a stream is read up to this size.
pub const MAX_JSON_BODY_BYTES: usize = 1024 * 1024;
/// How much of an unreadable payload goes into an error's detail.
const DETAIL_EXCERPT_CHARS: usize = 200;

/// One thing the decoder found in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// More answer text.
    Delta(String),
    /// Reasoning ("thinking") text the model shows before or between its answer: kept apart
    /// from the answer, never part of the artifact.
    Reasoning(String),
    /// A tool call begins; `index` is its position among this answer's tool calls.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// More of a tool call's JSON arguments (fragments cut anywhere: only their concatenation
    /// parses).
    ToolCallArgs { id: String, delta: String },
    /// The tool call's arguments are complete.
    ToolCallEnd { id: String },
    /// The provider's token count for the whole call.
    Usage {
        prompt_tokens: u32,
        completion_tokens: u32,
    },
    /// The model stopped: `stop` (complete), `length` (cut at `max_tokens`), `tool_calls`
    /// (waiting for the calls' results), or another reason a server reports. A content
    /// filter is an error instead.
    Finished { reason: String },
    /// The stream said it is complete (`data: [DONE]`, `message_stop`): nothing more follows.
    Done,
}

/// How one provider's dialect reads its answer; [`BodyReader`] does the rest.
pub(crate) trait Dialect {
    /// One server-sent event.
    fn event(&mut self, ev: SseEvent, out: &mut Vec<StreamItem>) -> Result<(), LlmError>;
    /// The stream said it is complete: events after it are not read.
    fn done(&self) -> bool;
    /// The stream ended here: `Ok` if the answer is complete, else why it is not.
    fn ended(&self) -> Result<(), LlmError>;
    /// A whole JSON body sent instead of a stream, parsed.
    fn json_body(&mut self, body: &Value, out: &mut Vec<StreamItem>) -> Result<(), LlmError>;
}

#[derive(Debug)]
enum Mode {
    /// Only whitespace so far: could still be a stream or a JSON body.
    Undecided(Vec<u8>),
    Sse,
    Json(Vec<u8>),
}

/// The response body as both decoders read it (rules in the module header).
#[derive(Debug)]
pub(crate) struct BodyReader {
    mode: Mode,
    sse: SseParser,
    error: Option<LlmError>,
}

impl BodyReader {
    pub fn new() -> Self {
        BodyReader {
            mode: Mode::Undecided(Vec::new()),
            sse: SseParser::new(),
            error: None,
        }
    }

    /// The next bytes of the body: the items they complete.
    pub fn push(
        &mut self,
        dialect: &mut impl Dialect,
        bytes: &[u8],
    ) -> Result<Vec<StreamItem>, LlmError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        let result = self.push_inner(dialect, bytes, &mut out);
        self.settle(result, out)
    }

    /// The end of the body: the last items, or why the answer is incomplete.
    pub fn finish(&mut self, dialect: &mut impl Dialect) -> Result<Vec<StreamItem>, LlmError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        let result = match std::mem::replace(&mut self.mode, Mode::Sse) {
            Mode::Undecided(_) => Err(LlmError::new(
                ErrorKind::Network,
                "stream ended early: empty response",
            )),
            Mode::Json(body) => json_body(&body).and_then(|v| dialect.json_body(&v, &mut out)),
            Mode::Sse => {
                self.sse.finish();
                dialect.ended()
            }
        };
        self.settle(result, out)
    }

    /// A failure sticks; items found before it are returned first.
    fn settle(
        &mut self,
        result: Result<(), LlmError>,
        out: Vec<StreamItem>,
    ) -> Result<Vec<StreamItem>, LlmError> {
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.error = Some(e.clone());
                if out.is_empty() {
                    Err(e)
                } else {
                    Ok(out)
                }
            }
        }
    }

    fn push_inner(
        &mut self,
        dialect: &mut impl Dialect,
        bytes: &[u8],
        out: &mut Vec<StreamItem>,
    ) -> Result<(), LlmError> {
        let bytes = match &mut self.mode {
            Mode::Undecided(head) => {
                head.extend_from_slice(bytes);
                match head.iter().find(|b| !b.is_ascii_whitespace()) {
                    None if head.len() > MAX_JSON_BODY_BYTES => {
                        return Err(malformed("response is nothing but whitespace".into()))
                    }
                    None => return Ok(()),
                    Some(b'{') => {
                        self.mode = Mode::Json(std::mem::take(head));
                        return self.check_json_size();
                    }
                    Some(_) => {
                        let head = std::mem::take(head);
                        self.mode = Mode::Sse;
                        return self.push_sse(dialect, &head, out);
                    }
                }
            }
            Mode::Json(body) => {
                body.extend_from_slice(bytes);
                return self.check_json_size();
            }
            Mode::Sse => bytes,
        };
        self.push_sse(dialect, bytes, out)
    }

    fn check_json_size(&self) -> Result<(), LlmError> {
        match &self.mode {
            Mode::Json(body) if body.len() > MAX_JSON_BODY_BYTES => Err(malformed(format!(
                "response body larger than {MAX_JSON_BODY_BYTES} bytes"
            ))),
            _ => Ok(()),
        }
    }

    fn push_sse(
        &mut self,
        dialect: &mut impl Dialect,
        bytes: &[u8],
        out: &mut Vec<StreamItem>,
    ) -> Result<(), LlmError> {
        if dialect.done() {
            return Ok(());
        }
        let events = self.sse.push(bytes).map_err(|e| malformed(e.to_string()))?;
        for ev in events {
            dialect.event(ev, out)?;
            if dialect.done() {
                break;
            }
        }
        Ok(())
    }
}

/// An event's `data` as a JSON object; `None` for an empty one. An `event: error` whose data
/// is not JSON is still the provider telling us why: it is classified as an error.
pub(crate) fn event_json(ev: &SseEvent) -> Result<Option<Value>, LlmError> {
    let data = ev.data.trim();
    if data.is_empty() {
        return Ok(None);
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(_) if ev.event.as_deref() == Some("error") => {
            return Err(classify_error_object(&Value::String(data.to_string())));
        }
        Err(e) => {
            return Err(malformed(format!(
                "invalid JSON in stream ({e}): {}",
                excerpt(data)
            )))
        }
    };
    if !value.is_object() {
        return Err(malformed(format!(
            "stream event is not a JSON object: {}",
            excerpt(data)
        )));
    }
    Ok(Some(value))
}

fn json_body(body: &[u8]) -> Result<Value, LlmError> {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(text.trim()).map_err(|e| {
        malformed(format!(
            "response is neither a stream nor valid JSON ({e}): {}",
            excerpt(&text)
        ))
    })
}

/// A `malformed_stream` error.
pub(crate) fn malformed(detail: String) -> LlmError {
    LlmError::new(ErrorKind::MalformedStream, detail)
}

/// The start of an unreadable payload, for an error's detail.
pub(crate) fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(DETAIL_EXCERPT_CHARS).collect();
    if e.len() < s.len() {
        e.push('…');
    }
    e
}

/// Short constructors for tests in every decoder module.
#[cfg(test)]
pub(crate) mod test_items {
    use super::StreamItem;

    pub fn delta(s: &str) -> StreamItem {
        StreamItem::Delta(s.into())
    }

    pub fn start(index: u32, id: &str, name: &str) -> StreamItem {
        StreamItem::ToolCallStart {
            index,
            id: id.into(),
            name: name.into(),
        }
    }

    pub fn args(id: &str, delta: &str) -> StreamItem {
        StreamItem::ToolCallArgs {
            id: id.into(),
            delta: delta.into(),
        }
    }

    pub fn end(id: &str) -> StreamItem {
        StreamItem::ToolCallEnd { id: id.into() }
    }

    pub fn finished(reason: &str) -> StreamItem {
        StreamItem::Finished {
            reason: reason.into(),
        }
    }

    /// The text of the `Delta` items, joined.
    pub fn text_of(items: &[StreamItem]) -> String {
        items
            .iter()
            .filter_map(|i| match i {
                StreamItem::Delta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_items::delta;
    use super::*;

    /// A dialect whose events are text, `end` ends the stream and `bad` is an error.
    #[derive(Default)]
    struct Lines {
        done: bool,
    }

    impl Dialect for Lines {
        fn event(&mut self, ev: SseEvent, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
            match ev.data.as_str() {
                "end" => self.done = true,
                "bad" => return Err(malformed("bad event".into())),
                text => out.push(delta(text)),
            }
            Ok(())
        }

        fn done(&self) -> bool {
            self.done
        }

        fn ended(&self) -> Result<(), LlmError> {
            if self.done {
                Ok(())
            } else {
                Err(LlmError::new(ErrorKind::Network, "stream ended early"))
            }
        }

        fn json_body(&mut self, body: &Value, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
            out.push(delta(body["text"].as_str().unwrap_or("")));
            self.done = true;
            Ok(())
        }
    }

    #[test]
    fn an_error_after_items_comes_with_the_next_call_and_then_sticks() {
        let (mut body, mut d) = (BodyReader::new(), Lines::default());
        let items = body.push(&mut d, b"data: a\n\ndata: bad\n\n").unwrap();
        assert_eq!(items, [delta("a")]);
        let e = body.push(&mut d, b"data: b\n\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedStream);
        assert_eq!(body.finish(&mut d).unwrap_err(), e);
    }

    #[test]
    fn nothing_is_read_after_the_end_and_an_early_end_is_a_network_error() {
        let (mut body, mut d) = (BodyReader::new(), Lines::default());
        let items = body.push(&mut d, b"data: a\n\ndata: end\n\ndata: bad\n\n");
        assert_eq!(items.unwrap(), [delta("a")]);
        assert_eq!(body.finish(&mut d).unwrap(), []);
        for bytes in [&b""[..], b" \n", b"data: a\n\n"] {
            let (mut body, mut d) = (BodyReader::new(), Lines::default());
            body.push(&mut d, bytes).unwrap();
            assert_eq!(body.finish(&mut d).unwrap_err().kind, ErrorKind::Network);
        }
    }

    #[test]
    fn a_whole_json_body_is_read_at_the_end_and_bounded() {
        let (mut body, mut d) = (BodyReader::new(), Lines::default());
        assert_eq!(body.push(&mut d, b"\n {\"te").unwrap(), []);
        assert_eq!(body.push(&mut d, b"xt\":\"whole\"}").unwrap(), []);
        assert_eq!(body.finish(&mut d).unwrap(), [delta("whole")]);

        let (mut body, mut d) = (BodyReader::new(), Lines::default());
        body.push(&mut d, b"{\"text\":\"").unwrap();
        let e = body
            .push(&mut d, &vec![b'x'; MAX_JSON_BODY_BYTES])
            .unwrap_err();
        assert!(e.detail.contains("larger than"), "{}", e.detail);

        let (mut body, mut d) = (BodyReader::new(), Lines::default());
        let e = body
            .push(&mut d, &vec![b' '; MAX_JSON_BODY_BYTES + 1])
            .unwrap_err();
        assert!(e.detail.contains("nothing but whitespace"), "{}", e.detail);
    }
}
