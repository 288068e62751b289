//! The OpenAI-compatible chat completions API: the request we send and the streamed answer
//! we decode.
//!
//! Any server speaking this dialect works (OpenAI, Ollama, llama.cpp server, vLLM, a test
//! double), so decoding is lenient where servers differ harmlessly (a missing `[DONE]` after a
//! `finish_reason`, usage in the last content chunk, a plain JSON body instead of a stream)
//! and strict where text could be lost (invalid JSON, a stream cut short).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{classify_error_object, ErrorKind, LlmError};
use super::sse::SseEvent;
use super::stream::{event_json, excerpt, malformed, BodyReader, Dialect, StreamItem};
use super::tools::{ToolCall, ToolCallAssembler, ToolDef};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// One chat message: `system`, `user` or `assistant` text, an assistant message that calls
/// tools, or a `tool` message answering one call.
///
/// Serialised exactly as OpenAI documents: `{"role", "content"}` for text;
/// `{"role": "assistant", "content": null, "tool_calls": [{"id", "type": "function",
/// "function": {"name", "arguments"}}]}` for calls (`content` is the text, if any, that came
/// with them); `{"role": "tool", "tool_call_id", "content"}` for a result. A text message's JSON
/// is unchanged by the tool fields, so answer-cache keys of text-only requests stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireMessage", from = "WireMessage")]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// An assistant message's tool calls (empty otherwise).
    pub tool_calls: Vec<ToolCall>,
    /// A `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn text(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage::text("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage::text("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage::text("assistant", content)
    }

    /// The assistant's answer that made `calls` (`content`: any text before them, or "").
    pub fn assistant_tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            tool_calls: calls,
            ..ChatMessage::assistant(content)
        }
    }

    /// The result of the call `tool_call_id`, for the model.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            tool_call_id: Some(tool_call_id.into()),
            ..ChatMessage::text("tool", content)
        }
    }
}

/// [`ChatMessage`] as it is on the wire.
#[derive(Serialize, Deserialize)]
struct WireMessage {
    role: String,
    /// `null` only for an assistant message with tool calls and no text.
    content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    function: WireFunction,
}

#[derive(Serialize, Deserialize)]
struct WireFunction {
    name: String,
    arguments: String,
}

impl From<ChatMessage> for WireMessage {
    fn from(m: ChatMessage) -> Self {
        let content = if m.content.is_empty() && !m.tool_calls.is_empty() {
            None
        } else {
            Some(m.content)
        };
        WireMessage {
            role: m.role,
            content,
            tool_calls: m
                .tool_calls
                .into_iter()
                .map(|c| WireToolCall {
                    id: c.id,
                    kind: "function".into(),
                    function: WireFunction {
                        name: c.name,
                        arguments: c.arguments,
                    },
                })
                .collect(),
            tool_call_id: m.tool_call_id,
        }
    }
}

impl From<WireMessage> for ChatMessage {
    fn from(w: WireMessage) -> Self {
        ChatMessage {
            role: w.role,
            content: w.content.unwrap_or_default(),
            tool_calls: w
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.function.name,
                    arguments: c.function.arguments,
                })
                .collect(),
            tool_call_id: w.tool_call_id,
        }
    }
}

/// Characters in all messages' contents and tool calls (for token estimates).
pub fn messages_chars(messages: &[ChatMessage]) -> usize {
    let calls = |m: &ChatMessage| -> usize {
        m.tool_calls
            .iter()
            .map(|c| c.name.chars().count() + c.arguments.chars().count())
            .sum()
    };
    messages
        .iter()
        .map(|m| m.content.chars().count() + calls(m))
        .sum()
}

/// Rough token count of `chars` characters of English text or code (~4 chars per token).
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// `{base}/chat/completions`. An empty base means OpenAI; a base that already names the
/// endpoint is used as is.
pub fn chat_url(base_url: &str) -> String {
    let base = base_url.trim().trim_end_matches('/');
    let base = if base.is_empty() {
        DEFAULT_BASE_URL
    } else {
        base
    };
    if base.ends_with("/chat/completions") {
        base.to_string()
    } else {
        format!("{base}/chat/completions")
    }
}

/// JSON body of a streamed chat completion request.
///
/// `max_tokens` (not `max_completion_tokens`) because every compatible server understands it.
pub fn chat_request_body(model: &str, messages: &[ChatMessage], max_tokens: Option<u32>) -> String {
    chat_request_body_with_tools(model, messages, &[], None, max_tokens)
}

/// [`chat_request_body`] offering `tools` (OpenAI's `tools` field; omitted when empty, so a
/// request without tools is byte-for-byte the text-only one). `tool_choice` is left to its
/// default, `auto` (the model may answer in text, call tools, or both), unless given, e.g.
/// `"none"` for text only.
pub fn chat_request_body_with_tools(
    model: &str,
    messages: &[ChatMessage],
    tools: &[ToolDef],
    tool_choice: Option<&str>,
    max_tokens: Option<u32>,
) -> String {
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !tools.is_empty() {
        body["tools"] = json!(tools);
        if let Some(c) = tool_choice {
            body["tool_choice"] = json!(c);
        }
    }
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    body.to_string()
}

/// Turns the bytes of a streamed chat completion into [`StreamItem`]s: text, reasoning, tool
/// calls (reassembled by [`ToolCallAssembler`]), usage and the end. The body's rules (sticky
/// failure, errors after items deferred, a whole JSON body accepted) are in
/// [`crate::llm::stream`].
#[derive(Debug)]
pub struct StreamDecoder {
    body: BodyReader,
    answer: Answer,
}

/// What the chunks said so far.
#[derive(Debug)]
struct Answer {
    saw_done: bool,
    finish_reason: Option<String>,
    tools: ToolCallAssembler,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder::new()
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        StreamDecoder {
            body: BodyReader::new(),
            answer: Answer {
                saw_done: false,
                finish_reason: None,
                tools: ToolCallAssembler::new(),
            },
        }
    }

    /// The `finish_reason` seen, if any.
    pub fn finish_reason(&self) -> Option<&str> {
        self.answer.finish_reason.as_deref()
    }

    /// The tool calls that ended so far, in the order they started: all of the answer's calls
    /// once the stream finished. A stream cut short has none.
    pub fn tool_calls(&self) -> Vec<ToolCall> {
        self.answer.tools.calls()
    }

    /// The next bytes: the items they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamItem>, LlmError> {
        self.body.push(&mut self.answer, bytes)
    }

    /// End of the response body: the last items, or why the answer is incomplete.
    pub fn finish(&mut self) -> Result<Vec<StreamItem>, LlmError> {
        self.body.finish(&mut self.answer)
    }
}

impl Dialect for Answer {
    fn event(&mut self, ev: SseEvent, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
        if ev.data.trim() == "[DONE]" {
            self.saw_done = true;
            self.tools.end_all(out);
            out.push(StreamItem::Done);
            return Ok(());
        }
        let Some(value) = event_json(&ev)? else {
            return Ok(());
        };
        if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
            return Err(classify_error_object(err));
        }
        if ev.event.as_deref() == Some("error") {
            return Err(classify_error_object(&value));
        }
        if let Some(choice) = first_choice(&value) {
            let delta = &choice["delta"];
            push_texts(delta, out);
            if let Some(calls) = delta.get("tool_calls") {
                self.tools.push(calls, out).map_err(malformed)?;
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finished(reason, out)?;
            }
        }
        if let Some(usage) = read_usage(&value) {
            out.push(usage);
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.saw_done
    }

    /// Lenient: a `finish_reason` without `[DONE]` is a complete answer too.
    fn ended(&self) -> Result<(), LlmError> {
        if self.saw_done || self.finish_reason.is_some() {
            Ok(())
        } else {
            Err(LlmError::new(ErrorKind::Network, "stream ended early"))
        }
    }

    /// A non-streamed `chat.completion` (or an error object) sent with status 200.
    fn json_body(&mut self, value: &Value, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
        if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
            return Err(classify_error_object(err));
        }
        let Some(choice) = first_choice(value) else {
            return Err(malformed(format!(
                "response has no choices: {}",
                excerpt(&value.to_string())
            )));
        };
        push_texts(&choice["message"], out);
        // Whole calls: each entry is a first chunk with all its arguments, in array order.
        if let Some(calls) = choice["message"].get("tool_calls").filter(|c| !c.is_null()) {
            let Value::Array(calls) = calls else {
                return Err(malformed(format!(
                    "message.tool_calls is not an array: {}",
                    excerpt(&calls.to_string())
                )));
            };
            for (i, call) in calls.iter().enumerate() {
                let mut entry = call.clone();
                if let Value::Object(obj) = &mut entry {
                    obj.entry("index").or_insert(json!(i));
                }
                self.tools
                    .push(&Value::Array(vec![entry]), out)
                    .map_err(malformed)?;
            }
        }
        self.finished(choice["finish_reason"].as_str().unwrap_or("stop"), out)?;
        if let Some(usage) = read_usage(value) {
            out.push(usage);
        }
        out.push(StreamItem::Done);
        self.saw_done = true;
        Ok(())
    }
}

impl Answer {
    /// The choice finished: its tool calls end, then `Finished`. `tool_calls` as the reason
    /// with no call is a server bug that would leave the session waiting for calls that never
    /// come; `content_filter` is an error.
    fn finished(&mut self, reason: &str, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
        if reason == "content_filter" {
            return Err(LlmError::new(
                ErrorKind::ContentFiltered,
                "the provider stopped the answer: finish_reason content_filter",
            ));
        }
        if reason == "tool_calls" && self.tools.is_empty() {
            return Err(malformed(
                "finish_reason tool_calls but no tool call was streamed".into(),
            ));
        }
        self.tools.end_all(out);
        self.finish_reason = Some(reason.to_string());
        out.push(StreamItem::Finished {
            reason: reason.to_string(),
        });
        Ok(())
    }
}

/// A delta's or a whole message's reasoning, then its text. DeepSeek and vLLM say
/// `reasoning_content`, OpenRouter and Ollama `reasoning`; a `refusal` is kept as text.
fn push_texts(message: &Value, out: &mut Vec<StreamItem>) {
    for key in ["reasoning_content", "reasoning"] {
        if let Some(text) = message[key].as_str().filter(|t| !t.is_empty()) {
            out.push(StreamItem::Reasoning(text.to_string()));
        }
    }
    for key in ["content", "refusal"] {
        if let Some(text) = message[key].as_str().filter(|t| !t.is_empty()) {
            out.push(StreamItem::Delta(text.to_string()));
        }
    }
}

/// The choice with `index` 0 (we ask for one), or the first one listed.
fn first_choice(chunk: &Value) -> Option<&Value> {
    let choices = chunk.get("choices")?.as_array()?;
    choices
        .iter()
        .find(|c| c["index"].as_u64() == Some(0))
        .or_else(|| choices.first())
}

fn read_usage(chunk: &Value) -> Option<StreamItem> {
    let usage = chunk.get("usage")?;
    let count = |key: &str| {
        usage[key]
            .as_u64()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    Some(StreamItem::Usage {
        prompt_tokens: count("prompt_tokens")?,
        completion_tokens: count("completion_tokens")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::stream::test_items::{args, delta, end, finished, start, text_of};
    use proptest::prelude::*;

    fn chunk(content: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]})
        )
    }

    fn stop_chunk(reason: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"choices":[{"index":0,"delta":{},"finish_reason":reason}]})
        )
    }

    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn typical_stream() -> String {
        let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
        format!(
            ": OPENROUTER PROCESSING\n\n{role}{}{}{}{USAGE}{DONE}",
            chunk("Hel"),
            chunk("lo é🦀"),
            stop_chunk("stop")
        )
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<StreamItem>, LlmError> {
        let mut d = StreamDecoder::new();
        let mut items = d.push(bytes)?;
        items.extend(d.finish()?);
        Ok(items)
    }

    #[test]
    fn urls() {
        assert_eq!(
            chat_url(DEFAULT_BASE_URL),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            chat_url("http://localhost:11434/v1/"),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(chat_url(" http://h/v1// "), "http://h/v1/chat/completions");
        assert_eq!(chat_url(""), "https://api.openai.com/v1/chat/completions");
        assert_eq!(
            chat_url("http://h/v1/chat/completions"),
            "http://h/v1/chat/completions"
        );
    }

    #[test]
    fn request_body_shape() {
        let msgs = [
            ChatMessage::system("be brief"),
            ChatMessage::user("hi \"there\""),
        ];
        let body: Value =
            serde_json::from_str(&chat_request_body("gpt-x", &msgs, Some(900))).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-x",
                "messages": [{"role":"system","content":"be brief"},{"role":"user","content":"hi \"there\""}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 900
            })
        );
        let body: Value = serde_json::from_str(&chat_request_body("m", &[], None)).unwrap();
        assert!(body.get("max_tokens").is_none());
    }

    #[test]
    fn token_estimates() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
        assert_eq!(estimate_tokens(9), 3);
        assert_eq!(
            messages_chars(&[ChatMessage::user("ab"), ChatMessage::assistant("é🦀")]),
            4
        );
    }

    #[test]
    fn decodes_a_typical_stream() {
        let items = decode_all(typical_stream().as_bytes()).unwrap();
        assert_eq!(
            items,
            [
                delta("Hel"),
                delta("lo é🦀"),
                StreamItem::Finished {
                    reason: "stop".into()
                },
                StreamItem::Usage {
                    prompt_tokens: 12,
                    completion_tokens: 34
                },
                StreamItem::Done
            ]
        );
    }

    #[test]
    fn length_finish_is_not_an_error() {
        let s = format!("{}{}{DONE}", chunk("partial"), stop_chunk("length"));
        let mut d = StreamDecoder::new();
        let items = d.push(s.as_bytes()).unwrap();
        assert_eq!(
            items[1],
            StreamItem::Finished {
                reason: "length".into()
            }
        );
        assert_eq!(d.finish_reason(), Some("length"));
        assert_eq!(d.finish().unwrap(), []);
    }

    #[test]
    fn null_or_missing_content_is_skipped() {
        let s = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null}}]}\n\n\
                 data: {\"choices\":[{\"index\":0,\"delta\":{}}]}\n\n\
                 data: {\"choices\":[{\"index\":0}]}\n\n\
                 data: {\"object\":\"keepalive\"}\n\n";
        let mut d = StreamDecoder::new();
        assert_eq!(d.push(s.as_bytes()).unwrap(), []);
    }

    #[test]
    fn usage_in_the_finishing_chunk() {
        let s = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
        assert_eq!(
            decode_all(s.as_bytes()).unwrap(),
            [
                delta("x"),
                StreamItem::Finished {
                    reason: "stop".into()
                },
                StreamItem::Usage {
                    prompt_tokens: 1,
                    completion_tokens: 2
                }
            ]
        );
    }

    #[test]
    fn null_usage_is_ignored() {
        let s = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}}}}],\"usage\":null}}\n\n{DONE}");
        assert_eq!(
            decode_all(s.as_bytes()).unwrap(),
            [delta("a"), StreamItem::Done]
        );
    }

    #[test]
    fn content_filter_is_an_error_after_the_text_so_far() {
        let s = format!("{}{}", chunk("some text"), stop_chunk("content_filter"));
        let mut d = StreamDecoder::new();
        // The text arrives first; the error comes with the next call.
        assert_eq!(d.push(s.as_bytes()).unwrap(), [delta("some text")]);
        let e = d.push(b"").unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentFiltered);
        assert_eq!(d.finish().unwrap_err().kind, ErrorKind::ContentFiltered);
        // Alone in its chunk, it is returned at once.
        let mut d = StreamDecoder::new();
        assert_eq!(
            d.push(stop_chunk("content_filter").as_bytes())
                .unwrap_err()
                .kind,
            ErrorKind::ContentFiltered
        );
    }

    #[test]
    fn error_object_in_stream_is_classified() {
        let s = "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}\n\n";
        let e = decode_all(s.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        let s = "event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n";
        assert_eq!(
            decode_all(s.as_bytes()).unwrap_err().kind,
            ErrorKind::ServerError
        );
        let s = "event: error\ndata: {\"message\":\"Rate limit reached\"}\n\n";
        assert_eq!(
            decode_all(s.as_bytes()).unwrap_err().kind,
            ErrorKind::RateLimited
        );
        let s = "event: error\ndata: upstream connect error\n\n";
        let e = decode_all(s.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerError);
        assert!(e.detail.contains("upstream connect error"));
    }

    #[test]
    fn invalid_json_is_malformed_and_sticky() {
        let mut d = StreamDecoder::new();
        let e = d.push(b"data: {\"choices\": [\n\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedStream);
        assert!(e.retryable());
        assert!(e.detail.contains("invalid JSON"), "{}", e.detail);
        assert_eq!(d.push(chunk("more").as_bytes()).unwrap_err(), e);
        assert_eq!(d.finish().unwrap_err(), e);
        assert_eq!(
            decode_all(b"data: 42\n\n").unwrap_err().kind,
            ErrorKind::MalformedStream
        );
    }

    #[test]
    fn stream_ending_without_done_or_finish_is_network() {
        let e = decode_all(chunk("cut").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Network);
        assert_eq!(e.detail, "stream ended early");
        assert!(e.retryable());
        // Cut inside an event.
        let mut d = StreamDecoder::new();
        let s = typical_stream();
        let items = d.push(&s.as_bytes()[..s.find("lo é").unwrap()]).unwrap();
        assert_eq!(items, [delta("Hel")]);
        assert_eq!(d.finish().unwrap_err().kind, ErrorKind::Network);
        // Nothing at all.
        assert_eq!(decode_all(b"").unwrap_err().kind, ErrorKind::Network);
        assert_eq!(decode_all(b" \n ").unwrap_err().kind, ErrorKind::Network);
    }

    #[test]
    fn finish_reason_without_done_is_complete() {
        let s = format!("{}{}", chunk("ok"), stop_chunk("stop"));
        assert!(decode_all(s.as_bytes()).is_ok());
        // And [DONE] without a finish_reason too (some servers).
        let s = format!("{}{DONE}", chunk("ok"));
        assert_eq!(
            decode_all(s.as_bytes()).unwrap(),
            [delta("ok"), StreamItem::Done]
        );
    }

    #[test]
    fn nothing_after_done_is_read() {
        let s = format!("{DONE}{}data: garbage\n\n", chunk("late"));
        assert_eq!(decode_all(s.as_bytes()).unwrap(), [StreamItem::Done]);
    }

    #[test]
    fn plain_json_body_is_accepted() {
        let body = r#"
            {"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Whole answer"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
        let mut d = StreamDecoder::new();
        let (a, b) = body.as_bytes().split_at(30);
        assert_eq!(d.push(a).unwrap(), []);
        assert_eq!(d.push(b).unwrap(), []);
        assert_eq!(
            d.finish().unwrap(),
            [
                delta("Whole answer"),
                StreamItem::Finished {
                    reason: "stop".into()
                },
                StreamItem::Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2
                },
                StreamItem::Done
            ]
        );
        let err = r#"{"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}}"#;
        assert_eq!(
            decode_all(err.as_bytes()).unwrap_err().kind,
            ErrorKind::QuotaExhausted
        );
        assert_eq!(
            decode_all(b"{not json").unwrap_err().kind,
            ErrorKind::MalformedStream
        );
        assert_eq!(
            decode_all(b"{}").unwrap_err().kind,
            ErrorKind::MalformedStream
        );
    }

    #[test]
    fn oversized_event_is_malformed() {
        let mut d = StreamDecoder::new();
        let big = format!("data: {}", "x".repeat(crate::llm::sse::MAX_EVENT_BYTES + 1));
        assert_eq!(
            d.push(big.as_bytes()).unwrap_err().kind,
            ErrorKind::MalformedStream
        );
    }

    #[test]
    fn refusal_text_is_kept() {
        let s = "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't help with that.\"},\"finish_reason\":\"stop\"}]}\n\n";
        assert_eq!(
            decode_all(s.as_bytes()).unwrap()[0],
            delta("I can't help with that.")
        );
    }

    #[test]
    fn reasoning_text_is_its_own_item_before_the_answer() {
        let s = "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Think\"}}]}\n\n\
                 data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"ing…\",\"content\":null}}]}\n\n\
                 data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"\",\"content\":\"Answer\"}}]}\n\n";
        let s = format!("{s}{}{DONE}", stop_chunk("stop"));
        assert_eq!(
            decode_all(s.as_bytes()).unwrap(),
            [
                StreamItem::Reasoning("Think".into()),
                StreamItem::Reasoning("ing…".into()),
                delta("Answer"),
                StreamItem::Finished {
                    reason: "stop".into()
                },
                StreamItem::Done
            ]
        );
    }

    // ---- Tool calls: chunks shaped exactly as OpenAI streams them. ----

    const WRITE_ARGS: &str = "{\"path\":\"src/main.rs\",\"content\":\"fn main() {\\n    println!(\\\"héllo 🦀\\\");\\n}\\n\"}";

    /// The first chunk of a call: index, id, type, name, empty arguments.
    fn call_start(index: u32, id: &str, name: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
                   "choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[
                       {"index":index,"id":id,"type":"function","function":{"name":name,"arguments":""}}]},
                     "logprobs":null,"finish_reason":null}]})
        )
    }

    /// A later chunk: index and an arguments fragment only.
    fn call_args(index: u32, fragment: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
                   "choices":[{"index":0,"delta":{"tool_calls":[{"index":index,"function":{"arguments":fragment}}]},
                     "logprobs":null,"finish_reason":null}]})
        )
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// Text, then one call with its arguments in `fragments`, then the documented ending.
    fn one_call_stream(fragments: &[&str]) -> String {
        let mut s = chunk("I'll write it.");
        s.push_str(&call_start(0, "call_abc", "write_file"));
        for f in fragments {
            s.push_str(&call_args(0, f));
        }
        s.push_str(&stop_chunk("tool_calls"));
        s.push_str(USAGE);
        s.push_str(DONE);
        s
    }

    #[test]
    fn text_then_a_tool_call_then_tool_calls_finish_then_done() {
        let s = one_call_stream(&[
            "{\"path\":",
            "\"src/main.rs\",\"content\":\"fn main() {\\n    println!(\\\"héllo 🦀\\\");\\n}\\n\"}",
        ]);
        let mut d = StreamDecoder::new();
        let items = d.push(s.as_bytes()).unwrap();
        assert_eq!(
            items,
            [
                delta("I'll write it."),
                start(0, "call_abc", "write_file"),
                args("call_abc", "{\"path\":"),
                args("call_abc", "\"src/main.rs\",\"content\":\"fn main() {\\n    println!(\\\"héllo 🦀\\\");\\n}\\n\"}"),
                end("call_abc"),
                finished("tool_calls"),
                StreamItem::Usage { prompt_tokens: 12, completion_tokens: 34 },
                StreamItem::Done,
            ]
        );
        assert_eq!(d.finish().unwrap(), []);
        assert_eq!(d.finish_reason(), Some("tool_calls"));
        assert_eq!(d.tool_calls(), [call("call_abc", "write_file", WRITE_ARGS)]);
        let args: Value = serde_json::from_str(&d.tool_calls()[0].arguments).unwrap();
        assert_eq!(args["path"], "src/main.rs");
    }

    #[test]
    fn arguments_split_at_every_char_boundary_give_the_same_call() {
        let cuts: Vec<usize> = (0..=WRITE_ARGS.len())
            .filter(|&i| WRITE_ARGS.is_char_boundary(i))
            .collect();
        for &a in &cuts {
            for &b in cuts.iter().filter(|&&b| b >= a).step_by(7) {
                let s = one_call_stream(&[&WRITE_ARGS[..a], &WRITE_ARGS[a..b], &WRITE_ARGS[b..]]);
                let mut d = StreamDecoder::new();
                let items = d.push(s.as_bytes()).unwrap();
                assert_eq!(
                    d.tool_calls(),
                    [call("call_abc", "write_file", WRITE_ARGS)],
                    "cut at {a}, {b}"
                );
                // Empty fragments emit nothing; the others arrive in order.
                let streamed: String = items
                    .iter()
                    .filter_map(|e| match e {
                        StreamItem::ToolCallArgs { delta, .. } => {
                            assert!(!delta.is_empty());
                            Some(delta.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                assert_eq!(streamed, WRITE_ARGS);
            }
        }
    }

    #[test]
    fn the_stream_cut_at_every_byte_boundary_gives_the_same_items() {
        let s = one_call_stream(&["{\"path\":\"src/main.rs\",", "\"content\":\"é🦀\"}"]);
        let bytes = s.as_bytes();
        let whole = decode_all(bytes).unwrap();
        for cut in 0..=bytes.len() {
            let mut d = StreamDecoder::new();
            let mut items = d.push(&bytes[..cut]).unwrap();
            items.extend(d.push(&bytes[cut..]).unwrap());
            items.extend(d.finish().unwrap());
            assert_eq!(items, whole, "cut at byte {cut}");
        }
    }

    #[test]
    fn parallel_calls_interleaved_by_index_are_kept_apart_and_end_together() {
        let s = [
            call_start(0, "call_a", "write_file"),
            call_start(1, "call_b", "read_file"),
            call_args(1, "{\"path\""),
            call_args(0, "{\"path\":\"a\","),
            call_args(1, ":\"b\"}"),
            call_args(0, "\"content\":\"x\"}"),
            stop_chunk("tool_calls"),
            DONE.to_string(),
        ]
        .concat();
        let mut d = StreamDecoder::new();
        let items = d.push(s.as_bytes()).unwrap();
        assert_eq!(
            items,
            [
                start(0, "call_a", "write_file"),
                start(1, "call_b", "read_file"),
                args("call_b", "{\"path\""),
                args("call_a", "{\"path\":\"a\","),
                args("call_b", ":\"b\"}"),
                args("call_a", "\"content\":\"x\"}"),
                end("call_a"),
                end("call_b"),
                finished("tool_calls"),
                StreamItem::Done,
            ]
        );
        assert_eq!(
            d.tool_calls(),
            [
                call("call_a", "write_file", "{\"path\":\"a\",\"content\":\"x\"}"),
                call("call_b", "read_file", "{\"path\":\"b\"}")
            ]
        );
    }

    #[test]
    fn several_calls_in_one_chunk_and_done_without_finish_reason_end_them() {
        let s = format!(
            "data: {}\n\n{DONE}",
            json!({"choices":[{"index":0,"delta":{"tool_calls":[
                {"index":0,"id":"c0","type":"function","function":{"name":"list_files","arguments":"{}"}},
                {"index":1,"id":"c1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a\"}"}}]}}]})
        );
        let mut d = StreamDecoder::new();
        let items = d.push(s.as_bytes()).unwrap();
        assert_eq!(
            items,
            [
                start(0, "c0", "list_files"),
                args("c0", "{}"),
                start(1, "c1", "read_file"),
                args("c1", "{\"path\":\"a\"}"),
                end("c0"),
                end("c1"),
                StreamItem::Done
            ]
        );
        assert_eq!(d.finish().unwrap(), []);
        assert_eq!(
            d.tool_calls(),
            [
                call("c0", "list_files", "{}"),
                call("c1", "read_file", "{\"path\":\"a\"}")
            ]
        );
    }

    #[test]
    fn a_stream_cut_inside_a_call_ends_no_call() {
        let s = [call_start(0, "c", "write_file"), call_args(0, "{\"pa")].concat();
        let mut d = StreamDecoder::new();
        let items = d.push(s.as_bytes()).unwrap();
        assert_eq!(items, [start(0, "c", "write_file"), args("c", "{\"pa")]);
        assert_eq!(d.finish().unwrap_err().kind, ErrorKind::Network);
        assert!(d.tool_calls().is_empty());
    }

    #[test]
    fn malformed_tool_call_chunks_are_malformed_stream_errors_after_the_text() {
        let bad = |delta: Value| {
            format!(
                "data: {}\n\n",
                json!({"choices":[{"index":0,"delta":{"tool_calls":delta}}]})
            )
        };
        let cases = [
            (
                bad(json!([{"index":0,"function":{"arguments":"{}"}}])),
                "never started",
            ),
            (
                bad(json!([{"index":0,"type":"function","function":{"name":"f","arguments":""}}])),
                "never started",
            ),
            (
                bad(json!([{"index":0,"id":"c","type":"function","function":{"arguments":""}}])),
                "function name",
            ),
            (
                bad(
                    json!([{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":{"path":"a"}}}]),
                ),
                "not a string",
            ),
            (bad(json!("nope")), "not an array"),
            (
                bad(json!([{"index":"0","id":"c","function":{"name":"f"}}])),
                "index",
            ),
            (
                format!("{}{}", call_start(0, "c", "f"), call_args(1, "{}")),
                "never started",
            ),
            (stop_chunk("tool_calls"), "no tool call"),
        ];
        for (s, want) in cases {
            let s = format!("{}{s}", chunk("kept"));
            let mut d = StreamDecoder::new();
            let items = d.push(s.as_bytes()).unwrap();
            assert_eq!(items[0], delta("kept"), "{s}");
            let e = d.push(b"").unwrap_err();
            assert_eq!(e.kind, ErrorKind::MalformedStream, "{s}");
            assert!(e.detail.contains(want), "{s}: {}", e.detail);
            assert_eq!(d.finish().unwrap_err(), e, "the error sticks");
        }
    }

    #[test]
    fn a_caller_that_skips_tool_call_items_sees_the_text_answer_as_before() {
        // What a caller that offers no tools (the edge today) sees of an answer with a call.
        let s = one_call_stream(&[WRITE_ARGS]);
        let mut d = StreamDecoder::new();
        let items: Vec<StreamItem> = d
            .push(s.as_bytes())
            .unwrap()
            .into_iter()
            .filter(|i| {
                !matches!(
                    i,
                    StreamItem::ToolCallStart { .. }
                        | StreamItem::ToolCallArgs { .. }
                        | StreamItem::ToolCallEnd { .. }
                )
            })
            .collect();
        assert_eq!(
            items,
            [
                delta("I'll write it."),
                StreamItem::Finished {
                    reason: "tool_calls".into()
                },
                StreamItem::Usage {
                    prompt_tokens: 12,
                    completion_tokens: 34
                },
                StreamItem::Done
            ]
        );
        assert_eq!(d.tool_calls().len(), 1);
    }

    #[test]
    fn a_plain_json_body_with_tool_calls_gives_whole_calls() {
        let body = json!({"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"c1","type":"function","function":{"name":"list_files","arguments":"{}"}},
                          {"id":"c2","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a\"}"}}]},
            "finish_reason":"tool_calls"}]});
        let items = decode_all(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            items,
            [
                start(0, "c1", "list_files"),
                args("c1", "{}"),
                start(1, "c2", "read_file"),
                args("c2", "{\"path\":\"a\"}"),
                end("c1"),
                end("c2"),
                finished("tool_calls"),
                StreamItem::Done,
            ]
        );
    }

    #[test]
    fn a_request_with_tools_and_tool_messages_is_serialised_as_openai_documents() {
        let tools = [ToolDef {
            name: "read_file".into(),
            description: "Read a file.".into(),
            parameters: json!({"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}),
        }];
        let msgs = [
            ChatMessage::user("go"),
            ChatMessage::assistant_tool_calls(
                "",
                vec![call("call_1", "read_file", "{\"path\":\"a\"}")],
            ),
            ChatMessage::tool_result("call_1", "hello"),
            ChatMessage::assistant_tool_calls(
                "Let me look.",
                vec![call("call_2", "list_files", "{}")],
            ),
        ];
        let body: Value = serde_json::from_str(&chat_request_body_with_tools(
            "m", &msgs, &tools, None, None,
        ))
        .unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role":"user","content":"go"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a\"}"}}]},
                {"role":"tool","tool_call_id":"call_1","content":"hello"},
                {"role":"assistant","content":"Let me look.","tool_calls":[{"id":"call_2","type":"function","function":{"name":"list_files","arguments":"{}"}}]}
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"type":"function","function":{"name":"read_file","description":"Read a file.",
                    "parameters":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}}])
        );
        // Messages read back as they were written.
        let back: Vec<ChatMessage> = serde_json::from_value(body["messages"].clone()).unwrap();
        assert_eq!(back, msgs);
        // No tools: the text-only body, byte for byte.
        let text = [ChatMessage::system("s"), ChatMessage::user("u")];
        assert_eq!(
            chat_request_body_with_tools("m", &text, &[], None, Some(5)),
            chat_request_body("m", &text, Some(5))
        );
        assert_eq!(
            chat_request_body("m", &text, None),
            r#"{"messages":[{"content":"s","role":"system"},{"content":"u","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn tool_call_arguments_count_towards_token_estimates() {
        let m = ChatMessage::assistant_tool_calls("ab", vec![call("c", "f", "{}")]);
        assert_eq!(messages_chars(&[m]), 5);
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_items(pieces in proptest::collection::vec("[ -~é🦀\n\"\\\\]{0,12}", 0..8), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
            let mut s: String = pieces.iter().map(|p| chunk(p)).collect();
            s.push_str(&stop_chunk("stop"));
            s.push_str(USAGE);
            s.push_str(DONE);
            let bytes = s.as_bytes();
            let whole = decode_all(bytes).unwrap();
            prop_assert_eq!(text_of(&whole), pieces.concat());
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = StreamDecoder::new();
            let mut items = Vec::new();
            let mut start = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                items.extend(d.push(&bytes[start..c]).unwrap());
                start = c;
            }
            items.extend(d.finish().unwrap());
            prop_assert_eq!(items, whole);
        }

        #[test]
        fn arguments_cut_into_any_pieces_give_the_same_call(cuts in proptest::collection::vec(any::<usize>(), 0..12), byte_cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (WRITE_ARGS.len() + 1)).filter(|&c| WRITE_ARGS.is_char_boundary(c)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for c in cuts.into_iter().chain([WRITE_ARGS.len()]) {
                pieces.push(&WRITE_ARGS[start..c]);
                start = c;
            }
            let s = one_call_stream(&pieces);
            let bytes = s.as_bytes();
            let mut byte_cuts: Vec<usize> = byte_cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            byte_cuts.sort_unstable();
            let mut d = StreamDecoder::new();
            let mut start = 0;
            for c in byte_cuts.into_iter().chain([bytes.len()]) {
                d.push(&bytes[start..c]).unwrap();
                start = c;
            }
            d.finish().unwrap();
            prop_assert_eq!(d.tool_calls(), vec![call("call_abc", "write_file", WRITE_ARGS)]);
        }

        #[test]
        fn arbitrary_tool_call_entries_never_panic(entries in proptest::collection::vec("[ -~]{0,40}", 0..5)) {
            let mut d = StreamDecoder::new();
            for e in &entries {
                let s = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{e}]}}}}]}}\n\n");
                let _ = d.push(s.as_bytes());
            }
            let _ = d.push(stop_chunk("tool_calls").as_bytes());
            let _ = d.finish();
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..6)) {
            let mut d = StreamDecoder::new();
            for c in &chunks {
                let _ = d.push(c);
            }
            let _ = d.finish();
        }

        #[test]
        fn arbitrary_data_lines_never_panic(lines in proptest::collection::vec("data: [ -~]{0,60}\n\n", 0..6)) {
            let _ = decode_all(lines.concat().as_bytes());
        }
    }
}
