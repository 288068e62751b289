//! The Anthropic Messages API: the request we send, the streamed answer we decode and the
//! errors it reports, with no I/O.
//!
//! The decoder turns the stream into the same [`StreamItem`]s as the OpenAI-compatible
//! [`StreamDecoder`](super::StreamDecoder), so the session does not care which provider
//! answered:
//!
//! | Anthropic event | items |
//! |---|---|
//! | `message_start` | none; remembers `usage` (`input_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`) |
//! | `content_block_start` `text` / `thinking` | `Delta` / `Reasoning` if the block starts with text |
//! | `content_block_start` `tool_use` | `ToolCallStart { index, id, name }` (`index` counts tool calls, not blocks) |
//! | `content_block_delta` `text_delta` / `thinking_delta` | `Delta` / `Reasoning` |
//! | `content_block_delta` `input_json_delta` | `ToolCallArgs { id, delta: partial_json }` |
//! | `content_block_delta` `signature_delta` | none; kept in [`AnthropicDecoder::signatures`] |
//! | `content_block_stop` of a `tool_use` block | `ToolCallEnd { id }` |
//! | `message_delta` | `ToolCallEnd` for each `tool_use` block still open, then `Finished { reason }`: `end_turn`/`stop_sequence` → `stop`, `max_tokens`/`model_context_window_exceeded` → `length`, `tool_use` → `tool_calls`, `refusal` → a `content_filtered` error, others as sent; remembers `usage.output_tokens` |
//! | `message_stop` | `ToolCallEnd` for each `tool_use` block still open, `Usage` (prompt = input + cache read + cache creation), then `Done` |
//! | `ping`, unknown events, unknown block or delta types | none |
//! | `error` | an error, classified by its `error.type` ([`classify_anthropic_http`] has the table) |
//!
//! As in the OpenAI decoder, a stream that ends before `message_stop` is a `network` error
//! ("stream ended early", retryable), invalid JSON is `malformed_stream`, an error found after
//! some items in the same chunk is returned by the next call so no text is lost, and a whole
//! JSON body (a `message` or an `error`) sent instead of a stream is accepted.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::{classify_error_object, classify_http, ErrorKind, LlmError};
use super::openai::ChatMessage;
use super::price::TokenUsage;
use super::sse::SseEvent;
use super::stream::{event_json, excerpt, malformed, BodyReader, Dialect, StreamItem};
use super::tools::{ToolDef, TOOL_ERROR_PREFIX};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header value this decoder is written against.
pub const API_VERSION: &str = "2023-06-01";
/// The smallest extended-thinking budget the API accepts.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// `{base}/v1/messages`. An empty base means Anthropic; a base ending in `/v1` or naming the
/// endpoint already is completed, not doubled.
pub fn messages_url(base_url: &str) -> String {
    let base = base_url.trim().trim_end_matches('/');
    let base = if base.is_empty() {
        DEFAULT_BASE_URL
    } else {
        base
    };
    if base.ends_with("/v1/messages") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

/// The headers the edge sends with the request (names lowercase). The first carries the key:
/// never log these.
pub fn request_headers(api_key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-api-key", api_key.to_string()),
        ("anthropic-version", API_VERSION.to_string()),
        ("content-type", "application/json".to_string()),
        ("accept", "text/event-stream".to_string()),
    ]
}

/// JSON body of a streamed Messages request, from the same messages the OpenAI builder takes.
///
/// - `system` messages are joined (blank line between) into the top-level `system`; the rest
///   keep their order as `user`/`assistant` turns (any other role is sent as `user`).
///   Messages with blank content are left out: the API refuses empty text blocks.
/// - Tools: `tools` become `[{name, description, input_schema}]`; `tool_choice: "none"`
///   becomes `{"type": "none"}`. An assistant message with tool calls becomes a turn of its
///   text (if any) and one `tool_use` block per call (`input` is the call's arguments parsed;
///   arguments that are not a JSON object are sent as `{}`, since the API insists on an object
///   and the call's result already told the model they were invalid). The `tool` messages
///   that follow become one `user` turn of `tool_result` blocks (a result starting with
///   `Error: ` is marked `is_error`), as the API wants every result of one turn together.
/// - `max_tokens` (required by the API) caps the answer. With `thinking_budget`, extended
///   thinking is on with that budget (at least [`MIN_THINKING_BUDGET`]), and the request's
///   `max_tokens` becomes answer cap + budget, because the API counts thinking in it and
///   wants the budget below it. Thinking is left off when the conversation already holds tool
///   calls: the API would want the earlier turns' signed thinking blocks sent back, which
///   BotArmy does not keep.
pub fn messages_request_body(
    model: &str,
    messages: &[ChatMessage],
    tools: &[ToolDef],
    tool_choice: Option<&str>,
    max_tokens: u32,
    thinking_budget: Option<u32>,
) -> String {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == "system" && !m.content.trim().is_empty())
        .map(|m| m.content.as_str())
        .collect();
    let mut turns: Vec<Value> = Vec::new();
    for m in messages.iter().filter(|m| m.role != "system") {
        if m.role == "tool" {
            let block = json!({
                "type": "tool_result",
                "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                "content": m.content,
                "is_error": m.content.starts_with(TOOL_ERROR_PREFIX),
            });
            // Results of one assistant turn go together in one user turn.
            let last_is_results = turns.last().is_some_and(|t: &Value| {
                t["role"] == "user" && t["content"][0]["type"] == "tool_result"
            });
            if last_is_results {
                turns.last_mut().expect("a turn")["content"]
                    .as_array_mut()
                    .expect("blocks")
                    .push(block);
            } else {
                turns.push(json!({"role": "user", "content": [block]}));
            }
            continue;
        }
        if m.role == "assistant" && !m.tool_calls.is_empty() {
            let mut blocks = Vec::new();
            if !m.content.trim().is_empty() {
                blocks.push(json!({"type": "text", "text": m.content}));
            }
            for c in &m.tool_calls {
                let input = serde_json::from_str::<Value>(&c.arguments)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                blocks
                    .push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
            }
            turns.push(json!({"role": "assistant", "content": blocks}));
            continue;
        }
        if m.content.trim().is_empty() {
            continue;
        }
        let role = if m.role == "assistant" {
            "assistant"
        } else {
            "user"
        };
        turns.push(json!({"role": role, "content": m.content}));
    }
    let mut body = json!({
        "model": model,
        "messages": turns,
        "max_tokens": max_tokens.max(1),
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(
            tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect(),
        );
        if tool_choice == Some("none") {
            body["tool_choice"] = json!({"type": "none"});
        }
    }
    let has_tool_turns = messages.iter().any(|m| !m.tool_calls.is_empty());
    if let Some(budget) = thinking_budget.filter(|_| !has_tool_turns) {
        let budget = budget.max(MIN_THINKING_BUDGET);
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        body["max_tokens"] = json!(max_tokens.max(1).saturating_add(budget));
    }
    body.to_string()
}

/// Classifies a non-success HTTP answer from the Messages API.
///
/// Anthropic's body is `{"type":"error","error":{"type":…,"message":…}}`; its `error.type`
/// decides, the status only where the body says nothing we know:
///
/// | status | `error.type` | kind |
/// |---|---|---|
/// | 400 | `invalid_request_error` | `bad_request`; `context_too_long` if the prompt is too long; `quota_exhausted` if the credit balance is too low |
/// | 401 | `authentication_error` | `bad_key` |
/// | 402 | `billing_error` | `quota_exhausted` |
/// | 403 | `permission_error` | `bad_key` (the key may not do this) |
/// | 404 | `not_found_error` | `model_not_found` (the message names the model), else `bad_request` (a wrong URL) |
/// | 413 | `request_too_large` | `context_too_long` |
/// | 429 | `rate_limit_error` | `rate_limited`, waiting as `retry-after` says |
/// | 500 | `api_error` | `server_error` |
/// | 504 | `timeout_error` | `timeout` |
/// | 529 | `overloaded_error` | `server_error`: retryable, and `retry-after` honoured if sent. Not `rate_limited`: it is Anthropic's capacity, not our rate, so the shared limiter should not slow down for it |
pub fn classify_anthropic_http(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now_ms: u64,
) -> LlmError {
    let mut e = classify_http(status, retry_after, body, now_ms);
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(kind) = v.get("error").and_then(anthropic_kind) {
            e.kind = kind;
        }
    }
    e
}

/// The kind an Anthropic error object (`{"type": …, "message": …}`) names, if we know its type.
fn anthropic_kind(error: &Value) -> Option<ErrorKind> {
    let ty = error.get("type")?.as_str()?;
    let msg = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    Some(match ty {
        "authentication_error" | "permission_error" => ErrorKind::BadKey,
        "billing_error" => ErrorKind::QuotaExhausted,
        "not_found_error" if msg.contains("model") => ErrorKind::ModelNotFound,
        "not_found_error" => ErrorKind::BadRequest,
        "request_too_large" => ErrorKind::ContextTooLong,
        "rate_limit_error" => ErrorKind::RateLimited,
        "api_error" | "overloaded_error" => ErrorKind::ServerError,
        "timeout_error" => ErrorKind::Timeout,
        "invalid_request_error" => {
            if msg.contains("prompt is too long") || msg.contains("context window") {
                ErrorKind::ContextTooLong
            } else if msg.contains("credit balance") {
                ErrorKind::QuotaExhausted
            } else {
                ErrorKind::BadRequest
            }
        }
        _ => return None,
    })
}

/// An `error` event's payload (or an error body sent with status 200).
fn stream_error(value: &Value) -> LlmError {
    let error = value.get("error").unwrap_or(value);
    let mut e = classify_error_object(error);
    if let Some(kind) = anthropic_kind(error) {
        e.kind = kind;
    }
    e
}

#[derive(Debug, Clone)]
enum Block {
    Text,
    Thinking,
    ToolUse {
        id: String,
    },
    /// `redacted_thinking`, server tools, citations and types added later: no items.
    Other,
}

/// Token counts as Anthropic reports them (its `input_tokens` excludes cache reads and writes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RawUsage {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl RawUsage {
    /// Takes whichever counts `usage` has (`message_delta` may repeat some, cumulatively).
    fn update(&mut self, usage: &Value) {
        let read = |key: &str, into: &mut u64| {
            if let Some(n) = usage.get(key).and_then(Value::as_u64) {
                *into = n;
            }
        };
        read("input_tokens", &mut self.input);
        read("cache_read_input_tokens", &mut self.cache_read);
        read("cache_creation_input_tokens", &mut self.cache_creation);
        read("output_tokens", &mut self.output);
    }

    fn tokens(self) -> TokenUsage {
        TokenUsage {
            prompt_tokens: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            cached_prompt_tokens: self.cache_read,
            completion_tokens: self.output,
        }
    }

    fn item(self) -> StreamItem {
        let t = self.tokens();
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        StreamItem::Usage {
            prompt_tokens: clamp(t.prompt_tokens),
            completion_tokens: clamp(t.completion_tokens),
        }
    }
}

/// Turns the bytes of a streamed Messages answer into [`StreamItem`]s (table in the module
/// header). The body's rules, the same as the OpenAI decoder's (sticky failure, errors after
/// items deferred, a whole JSON body accepted), are in [`crate::llm::stream`].
#[derive(Debug)]
pub struct AnthropicDecoder {
    body: BodyReader,
    answer: Answer,
}

/// What the events said so far.
#[derive(Debug, Default)]
struct Answer {
    /// Content blocks started and not yet stopped, by block index.
    open: BTreeMap<u64, Block>,
    tool_calls: u32,
    usage: Option<RawUsage>,
    stop_reason: Option<String>,
    signatures: Vec<String>,
    /// The block whose signature is last in `signatures`.
    signature_block: Option<u64>,
    done: bool,
}

impl Default for AnthropicDecoder {
    fn default() -> Self {
        AnthropicDecoder::new()
    }
}

impl AnthropicDecoder {
    pub fn new() -> Self {
        AnthropicDecoder {
            body: BodyReader::new(),
            answer: Answer::default(),
        }
    }

    /// Anthropic's `stop_reason`, as sent (`end_turn`, `max_tokens`, `tool_use`, …).
    pub fn stop_reason(&self) -> Option<&str> {
        self.answer.stop_reason.as_deref()
    }

    /// The tokens used so far, with the cache reads apart (for pricing); `None` before
    /// `message_start`.
    pub fn usage(&self) -> Option<TokenUsage> {
        self.answer.usage.map(RawUsage::tokens)
    }

    /// The signatures of the thinking blocks, in order: a later request that hands the
    /// thinking back (tool use with thinking on) must include them.
    pub fn signatures(&self) -> &[String] {
        &self.answer.signatures
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
        let Some(value) = event_json(&ev)? else {
            return Ok(());
        };
        // The payload's `type` repeats the SSE event name; trust the payload.
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                let usage = self.usage.get_or_insert_with(RawUsage::default);
                usage.update(&value["message"]["usage"]);
            }
            "content_block_start" => self.block_start(&value, out)?,
            "content_block_delta" => self.block_delta(&value, out)?,
            "content_block_stop" => {
                let index = block_index(&value)?;
                if let Some(Block::ToolUse { id }) = self.open.remove(&index) {
                    out.push(StreamItem::ToolCallEnd { id });
                }
            }
            "message_delta" => {
                self.usage
                    .get_or_insert_with(RawUsage::default)
                    .update(&value["usage"]);
                if let Some(reason) = value["delta"]["stop_reason"].as_str() {
                    self.end_open_tool_calls(out);
                    self.finished(reason, out)?;
                }
            }
            "message_stop" => {
                self.end_open_tool_calls(out);
                if let Some(u) = self.usage {
                    out.push(u.item());
                }
                out.push(StreamItem::Done);
                self.done = true;
            }
            "error" => return Err(stream_error(&value)),
            // `ping`, and event types added after this was written.
            _ => {}
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
            Err(LlmError::new(
                ErrorKind::Network,
                "stream ended early (no message_stop)",
            ))
        }
    }

    /// A whole `message` (or `error`) object sent instead of a stream.
    fn json_body(&mut self, value: &Value, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
        if value["type"] == "error" || value.get("error").is_some_and(|e| !e.is_null()) {
            return Err(stream_error(value));
        }
        let Some(content) = value["content"].as_array() else {
            return Err(malformed(format!(
                "response has no content: {}",
                excerpt(&value.to_string())
            )));
        };
        for block in content {
            match block["type"].as_str() {
                Some("text") => push_text(out, StreamItem::Delta, &block["text"]),
                Some("thinking") => {
                    push_text(out, StreamItem::Reasoning, &block["thinking"]);
                    if let Some(sig) = block["signature"].as_str() {
                        self.signatures.push(sig.to_string());
                    }
                }
                Some("tool_use") => {
                    let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str())
                    else {
                        return Err(malformed("tool_use block without id or name".into()));
                    };
                    out.push(StreamItem::ToolCallStart {
                        index: self.tool_calls,
                        id: id.to_string(),
                        name: name.to_string(),
                    });
                    self.tool_calls = self.tool_calls.saturating_add(1);
                    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                    out.push(StreamItem::ToolCallArgs {
                        id: id.to_string(),
                        delta: input.to_string(),
                    });
                    out.push(StreamItem::ToolCallEnd { id: id.to_string() });
                }
                _ => {}
            }
        }
        self.finished(value["stop_reason"].as_str().unwrap_or("end_turn"), out)?;
        let mut usage = RawUsage::default();
        usage.update(&value["usage"]);
        self.usage = Some(usage);
        out.push(usage.item());
        out.push(StreamItem::Done);
        self.done = true;
        Ok(())
    }
}

impl Answer {
    /// Tool blocks the stream never closed end with the message (at its stop reason, so every
    /// call ends before `Finished`, as in the OpenAI decoder), in block order.
    fn end_open_tool_calls(&mut self, out: &mut Vec<StreamItem>) {
        let open = std::mem::take(&mut self.open);
        for (index, block) in open {
            match block {
                Block::ToolUse { id } => out.push(StreamItem::ToolCallEnd { id }),
                other => {
                    self.open.insert(index, other);
                }
            }
        }
    }

    fn block_start(&mut self, value: &Value, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
        let index = block_index(value)?;
        let block = &value["content_block"];
        let started = match block["type"].as_str() {
            Some("text") => {
                push_text(out, StreamItem::Delta, &block["text"]);
                Block::Text
            }
            Some("thinking") => {
                push_text(out, StreamItem::Reasoning, &block["thinking"]);
                if let Some(sig) = block["signature"].as_str().filter(|s| !s.is_empty()) {
                    self.signatures.push(sig.to_string());
                    self.signature_block = Some(index);
                }
                Block::Thinking
            }
            Some("tool_use") => {
                let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else {
                    return Err(malformed(format!(
                        "tool_use block without id or name: {}",
                        excerpt(&block.to_string())
                    )));
                };
                out.push(StreamItem::ToolCallStart {
                    index: self.tool_calls,
                    id: id.to_string(),
                    name: name.to_string(),
                });
                self.tool_calls = self.tool_calls.saturating_add(1);
                Block::ToolUse { id: id.to_string() }
            }
            _ => Block::Other,
        };
        self.open.insert(index, started);
        Ok(())
    }

    fn block_delta(&mut self, value: &Value, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
        let index = block_index(value)?;
        let delta = &value["delta"];
        match delta["type"].as_str() {
            Some("text_delta") => push_text(out, StreamItem::Delta, &delta["text"]),
            Some("thinking_delta") => push_text(out, StreamItem::Reasoning, &delta["thinking"]),
            Some("signature_delta") => {
                let sig = delta["signature"].as_str().unwrap_or("");
                // One signature per thinking block; a block's pieces are joined.
                match self.signatures.last_mut() {
                    Some(last) if self.signature_block == Some(index) => last.push_str(sig),
                    _ => self.signatures.push(sig.to_string()),
                }
                self.signature_block = Some(index);
            }
            Some("input_json_delta") => {
                let Some(Block::ToolUse { id }) = self.open.get(&index) else {
                    return Err(malformed(format!(
                        "input_json_delta for block {index}, which is not an open tool_use block"
                    )));
                };
                if let Some(part) = delta["partial_json"].as_str().filter(|p| !p.is_empty()) {
                    out.push(StreamItem::ToolCallArgs {
                        id: id.clone(),
                        delta: part.to_string(),
                    });
                }
            }
            // `citations_delta` and delta types added later.
            _ => {}
        }
        Ok(())
    }

    fn finished(&mut self, reason: &str, out: &mut Vec<StreamItem>) -> Result<(), LlmError> {
        if reason == "refusal" {
            return Err(LlmError::new(
                ErrorKind::ContentFiltered,
                "the provider stopped the answer: stop_reason refusal",
            ));
        }
        self.stop_reason = Some(reason.to_string());
        out.push(StreamItem::Finished {
            reason: finish_reason(reason).to_string(),
        });
        Ok(())
    }
}

/// The OpenAI-style `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &str {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        other => other,
    }
}

fn block_index(value: &Value) -> Result<u64, LlmError> {
    value["index"].as_u64().ok_or_else(|| {
        malformed(format!(
            "content block event without an index: {}",
            excerpt(&value.to_string())
        ))
    })
}

fn push_text(out: &mut Vec<StreamItem>, item: fn(String) -> StreamItem, text: &Value) {
    if let Some(t) = text.as_str().filter(|t| !t.is_empty()) {
        out.push(item(t.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::openai::StreamDecoder;
    use crate::llm::stream::test_items::{self, text_of};
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000_000;

    fn event(name: &str, data: Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn message_start(input: u64, cache_read: u64) -> String {
        event(
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":input,"cache_read_input_tokens":cache_read,"cache_creation_input_tokens":0,"output_tokens":1}}}),
        )
    }

    fn block_start(index: u64, block: Value) -> String {
        event(
            "content_block_start",
            json!({"type":"content_block_start","index":index,"content_block":block}),
        )
    }

    fn delta(index: u64, delta: Value) -> String {
        event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":index,"delta":delta}),
        )
    }

    fn text(index: u64, t: &str) -> String {
        delta(index, json!({"type":"text_delta","text":t}))
    }

    fn block_stop(index: u64) -> String {
        event(
            "content_block_stop",
            json!({"type":"content_block_stop","index":index}),
        )
    }

    fn message_delta(stop_reason: &str, output: u64) -> String {
        event(
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":stop_reason,"stop_sequence":null},"usage":{"output_tokens":output}}),
        )
    }

    const PING: &str = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
    const STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    /// A recorded-shape answer with every event type: thinking with a signature, text, a tool
    /// call whose arguments arrive in pieces, pings, and the closing events.
    fn recorded() -> String {
        [
            message_start(25, 100),
            block_start(0, json!({"type":"thinking","thinking":""})),
            PING.to_string(),
            delta(
                0,
                json!({"type":"thinking_delta","thinking":"The user wants "}),
            ),
            delta(0, json!({"type":"thinking_delta","thinking":"a plan."})),
            delta(
                0,
                json!({"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"}),
            ),
            block_stop(0),
            block_start(1, json!({"type":"text","text":""})),
            text(1, "Here is"),
            text(1, " the plan: é🦀\n\"quoted\""),
            block_stop(1),
            block_start(
                2,
                json!({"type":"tool_use","id":"toolu_01","name":"write_file","input":{}}),
            ),
            delta(2, json!({"type":"input_json_delta","partial_json":""})),
            delta(
                2,
                json!({"type":"input_json_delta","partial_json":"{\"path\": \"pl"}),
            ),
            delta(
                2,
                json!({"type":"input_json_delta","partial_json":"an.md\"}"}),
            ),
            block_stop(2),
            message_delta("tool_use", 89),
            STOP.to_string(),
        ]
        .concat()
    }

    fn recorded_items() -> Vec<StreamItem> {
        vec![
            StreamItem::Reasoning("The user wants ".into()),
            StreamItem::Reasoning("a plan.".into()),
            StreamItem::Delta("Here is".into()),
            StreamItem::Delta(" the plan: é🦀\n\"quoted\"".into()),
            StreamItem::ToolCallStart {
                index: 0,
                id: "toolu_01".into(),
                name: "write_file".into(),
            },
            StreamItem::ToolCallArgs {
                id: "toolu_01".into(),
                delta: "{\"path\": \"pl".into(),
            },
            StreamItem::ToolCallArgs {
                id: "toolu_01".into(),
                delta: "an.md\"}".into(),
            },
            StreamItem::ToolCallEnd {
                id: "toolu_01".into(),
            },
            StreamItem::Finished {
                reason: "tool_calls".into(),
            },
            StreamItem::Usage {
                prompt_tokens: 125,
                completion_tokens: 89,
            },
            StreamItem::Done,
        ]
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<StreamItem>, LlmError> {
        let mut d = AnthropicDecoder::new();
        let mut items = d.push(bytes)?;
        items.extend(d.finish()?);
        Ok(items)
    }

    fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Result<Vec<StreamItem>, LlmError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut d = AnthropicDecoder::new();
        let mut items = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            items.extend(d.push(&bytes[start..c])?);
            start = c;
        }
        items.extend(d.finish()?);
        Ok(items)
    }

    fn simple(stop_reason: &str) -> String {
        [
            message_start(10, 0),
            block_start(0, json!({"type":"text","text":""})),
            text(0, "Hi"),
            block_stop(0),
            message_delta(stop_reason, 3),
            STOP.to_string(),
        ]
        .concat()
    }

    #[test]
    fn the_url_is_the_messages_endpoint_of_the_base() {
        assert_eq!(
            messages_url(DEFAULT_BASE_URL),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(messages_url(""), "https://api.anthropic.com/v1/messages");
        assert_eq!(
            messages_url(" http://127.0.0.1:9000/ "),
            "http://127.0.0.1:9000/v1/messages"
        );
        assert_eq!(messages_url("https://gw/v1/"), "https://gw/v1/messages");
        assert_eq!(
            messages_url("https://gw/v1/messages"),
            "https://gw/v1/messages"
        );
    }

    #[test]
    fn the_headers_carry_the_key_and_the_api_version() {
        let h = request_headers("sk-ant-xyz");
        assert_eq!(
            h,
            [
                ("x-api-key", "sk-ant-xyz".to_string()),
                ("anthropic-version", "2023-06-01".to_string()),
                ("content-type", "application/json".to_string()),
                ("accept", "text/event-stream".to_string()),
            ]
        );
    }

    #[test]
    fn system_messages_go_to_system_and_the_rest_keep_their_order() {
        let msgs = [
            ChatMessage::system("You are the Analyst."),
            ChatMessage::user("Brief: a todo app"),
            ChatMessage::system("Be brief."),
            ChatMessage::assistant("Draft"),
            ChatMessage::user("  "),
            ChatMessage::tool_result("call-1", "result"),
        ];
        let body: Value = serde_json::from_str(&messages_request_body(
            "claude-x",
            &msgs,
            &[],
            None,
            900,
            None,
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "system": "You are the Analyst.\n\nBe brief.",
                "messages": [
                    {"role": "user", "content": "Brief: a todo app"},
                    {"role": "assistant", "content": "Draft"},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call-1",
                        "content": "result", "is_error": false}]}
                ],
                "max_tokens": 900,
                "stream": true
            })
        );
        // No system message: no `system` member; max_tokens is never 0.
        let body: Value = serde_json::from_str(&messages_request_body(
            "m",
            &[ChatMessage::user("hi")],
            &[],
            None,
            0,
            None,
        ))
        .unwrap();
        assert!(body.get("system").is_none());
        assert_eq!(body["max_tokens"], 1);
    }

    #[test]
    fn tools_and_tool_turns_are_sent_as_the_messages_api_wants_them() {
        use crate::llm::tools::ToolCall;
        let call = |id: &str, args: &str| ToolCall {
            id: id.into(),
            name: "write_file".into(),
            arguments: args.into(),
        };
        let msgs = [
            ChatMessage::system("You are the Developer."),
            ChatMessage::user("Brief"),
            ChatMessage::assistant_tool_calls(
                "Writing.",
                vec![
                    call("toolu_1", r#"{"path":"a.js","content":"x"}"#),
                    call("toolu_2", "{broken"),
                ],
            ),
            ChatMessage::tool_result("toolu_1", "Wrote a.js (1 bytes, new file)."),
            ChatMessage::tool_result("toolu_2", "Error: the arguments are not valid JSON"),
        ];
        let tools = crate::workspace::tools::definitions();
        let body: Value = serde_json::from_str(&messages_request_body(
            "claude-x",
            &msgs,
            &tools,
            Some("none"),
            900,
            Some(2048),
        ))
        .unwrap();
        assert_eq!(body["tools"][0]["name"], "write_file");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(body["tool_choice"], json!({"type": "none"}));
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": [
                {"type": "text", "text": "Writing."},
                {"type": "tool_use", "id": "toolu_1", "name": "write_file", "input": {"path": "a.js", "content": "x"}},
                {"type": "tool_use", "id": "toolu_2", "name": "write_file", "input": {}}
            ]})
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Wrote a.js (1 bytes, new file).", "is_error": false},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Error: the arguments are not valid JSON", "is_error": true}
            ]})
        );
        assert!(
            body.get("thinking").is_none(),
            "no thinking once tools were used"
        );
        // Without tools: neither member.
        let plain: Value = serde_json::from_str(&messages_request_body(
            "m",
            &[ChatMessage::user("hi")],
            &[],
            Some("none"),
            9,
            None,
        ))
        .unwrap();
        assert!(plain.get("tools").is_none() && plain.get("tool_choice").is_none());
    }

    #[test]
    fn thinking_adds_its_budget_to_max_tokens_and_respects_the_minimum() {
        let msgs = [ChatMessage::user("hi")];
        let body: Value = serde_json::from_str(&messages_request_body(
            "m",
            &msgs,
            &[],
            None,
            4000,
            Some(2000),
        ))
        .unwrap();
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2000})
        );
        assert_eq!(body["max_tokens"], 6000);
        let body: Value =
            serde_json::from_str(&messages_request_body("m", &msgs, &[], None, 500, Some(10)))
                .unwrap();
        assert_eq!(body["thinking"]["budget_tokens"], 1024);
        assert_eq!(body["max_tokens"], 1524);
        let body: Value = serde_json::from_str(&messages_request_body(
            "m",
            &msgs,
            &[],
            None,
            u32::MAX,
            Some(5000),
        ))
        .unwrap();
        assert_eq!(body["max_tokens"], u32::MAX);
    }

    #[test]
    fn a_recorded_stream_with_every_event_type_decodes_to_the_common_items() {
        let mut d = AnthropicDecoder::new();
        let mut items = d.push(recorded().as_bytes()).unwrap();
        items.extend(d.finish().unwrap());
        assert_eq!(items, recorded_items());
        assert_eq!(d.stop_reason(), Some("tool_use"));
        assert_eq!(d.signatures(), ["EqQBCgIYAhIM1gbcDa9GJwZA"]);
        assert_eq!(
            d.usage(),
            Some(TokenUsage {
                prompt_tokens: 125,
                cached_prompt_tokens: 100,
                completion_tokens: 89
            })
        );
    }

    #[test]
    fn the_same_answer_from_either_provider_gives_the_same_items() {
        let openai = |s: &str| {
            let mut o = StreamDecoder::new();
            let mut items = o.push(s.as_bytes()).unwrap();
            items.extend(o.finish().unwrap());
            items
        };
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
            )
        };
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3}}\n\n";
        let done = "data: [DONE]\n\n";

        // Text only.
        let anthropic = decode_all(simple("end_turn").as_bytes()).unwrap();
        let o = [
            chunk(json!({"content":"Hi"}), Value::Null),
            chunk(json!({}), json!("stop")),
            usage.to_string(),
            done.to_string(),
        ]
        .concat();
        assert_eq!(anthropic, openai(&o));

        // Reasoning, text and a tool call whose arguments arrive in pieces.
        let a = [
            message_start(10, 0),
            block_start(0, json!({"type":"thinking","thinking":""})),
            delta(0, json!({"type":"thinking_delta","thinking":"Let me see."})),
            delta(0, json!({"type":"signature_delta","signature":"sig"})),
            block_stop(0),
            block_start(1, json!({"type":"text","text":""})),
            text(1, "Hi"),
            block_stop(1),
            block_start(
                2,
                json!({"type":"tool_use","id":"toolu_1","name":"write_file","input":{}}),
            ),
            delta(
                2,
                json!({"type":"input_json_delta","partial_json":"{\"path\":"}),
            ),
            delta(
                2,
                json!({"type":"input_json_delta","partial_json":"\"a\"}"}),
            ),
            block_stop(2),
            message_delta("tool_use", 3),
            STOP.to_string(),
        ]
        .concat();
        let o = [
            chunk(json!({"role":"assistant","reasoning_content":"Let me see."}), Value::Null),
            chunk(json!({"content":"Hi"}), Value::Null),
            chunk(
                json!({"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"write_file","arguments":""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
            usage.to_string(),
            done.to_string(),
        ]
        .concat();
        let want = vec![
            StreamItem::Reasoning("Let me see.".into()),
            test_items::delta("Hi"),
            test_items::start(0, "toolu_1", "write_file"),
            test_items::args("toolu_1", "{\"path\":"),
            test_items::args("toolu_1", "\"a\"}"),
            test_items::end("toolu_1"),
            test_items::finished("tool_calls"),
            StreamItem::Usage {
                prompt_tokens: 10,
                completion_tokens: 3,
            },
            StreamItem::Done,
        ];
        assert_eq!(decode_all(a.as_bytes()).unwrap(), want);
        assert_eq!(openai(&o), want);

        // The same answer as a whole JSON body instead of a stream.
        let a = json!({"type":"message","content":[
            {"type":"thinking","thinking":"Let me see.","signature":"sig"},
            {"type":"text","text":"Hi"},
            {"type":"tool_use","id":"toolu_1","name":"write_file","input":{"path":"a"}}
        ],"stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":3}});
        let o = json!({"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",
            "reasoning_content":"Let me see.","content":"Hi",
            "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"write_file","arguments":"{\"path\":\"a\"}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":3}});
        let whole = |w: Vec<StreamItem>| -> Vec<StreamItem> {
            let mut w = w;
            w.remove(4);
            w[3] = test_items::args("toolu_1", "{\"path\":\"a\"}");
            w
        };
        assert_eq!(
            decode_all(a.to_string().as_bytes()).unwrap(),
            whole(want.clone())
        );
        assert_eq!(openai(&o.to_string()), whole(want));
    }

    #[test]
    fn stop_reasons_map_to_openai_finish_reasons() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("pause_turn", "pause_turn"),
            ("something_new", "something_new"),
        ] {
            let items = decode_all(simple(stop).as_bytes()).unwrap();
            assert!(
                items.contains(&StreamItem::Finished {
                    reason: finish.into()
                }),
                "{stop}: {items:?}"
            );
        }
    }

    #[test]
    fn a_refusal_is_a_content_filter_error_after_the_text_so_far() {
        let mut d = AnthropicDecoder::new();
        let items = d.push(simple("refusal").as_bytes()).unwrap();
        assert_eq!(items, [StreamItem::Delta("Hi".into())]);
        let e = d.push(b"").unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentFiltered);
        assert_eq!(d.finish().unwrap_err(), e);
    }

    #[test]
    fn an_error_event_is_classified_by_its_type() {
        for (ty, kind) in [
            ("overloaded_error", ErrorKind::ServerError),
            ("rate_limit_error", ErrorKind::RateLimited),
            ("api_error", ErrorKind::ServerError),
            ("timeout_error", ErrorKind::Timeout),
            ("authentication_error", ErrorKind::BadKey),
            ("billing_error", ErrorKind::QuotaExhausted),
            ("invalid_request_error", ErrorKind::BadRequest),
        ] {
            let s = format!(
                "{}{}",
                message_start(1, 0),
                event(
                    "error",
                    json!({"type":"error","error":{"type":ty,"message":"Overloaded"}})
                )
            );
            let e = decode_all(s.as_bytes()).unwrap_err();
            assert_eq!(e.kind, kind, "{ty}");
            assert!(e.detail.contains(ty), "{}", e.detail);
        }
        // Overload is worth retrying.
        let s = event(
            "error",
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        );
        assert!(decode_all(s.as_bytes()).unwrap_err().retryable());
        // A plain-text error payload still counts.
        let e = decode_all(b"event: error\ndata: upstream reset\n\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerError);
        assert!(e.detail.contains("upstream reset"));
    }

    #[test]
    fn text_before_an_error_in_the_same_chunk_is_not_lost() {
        let s = [
            message_start(1, 0),
            block_start(0, json!({"type":"text","text":""})),
            text(0, "partial"),
            event(
                "error",
                json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
            ),
        ]
        .concat();
        let mut d = AnthropicDecoder::new();
        assert_eq!(
            d.push(s.as_bytes()).unwrap(),
            [StreamItem::Delta("partial".into())]
        );
        assert_eq!(d.push(b"").unwrap_err().kind, ErrorKind::ServerError);
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_a_retryable_network_error() {
        let full = simple("end_turn");
        // Cut after message_delta: the answer looks finished but Usage and Done never came.
        let cut = &full[..full.find("event: message_stop").unwrap()];
        let e = decode_all(cut.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Network);
        assert!(e.detail.starts_with("stream ended early"), "{}", e.detail);
        assert!(e.retryable());
        // Cut inside an event: the text before it still arrives.
        let mut d = AnthropicDecoder::new();
        let cut = &full[..full.find("event: content_block_stop").unwrap() + 10];
        assert_eq!(
            d.push(cut.as_bytes()).unwrap(),
            [StreamItem::Delta("Hi".into())]
        );
        assert_eq!(d.finish().unwrap_err().kind, ErrorKind::Network);
        // Nothing at all.
        assert_eq!(decode_all(b"").unwrap_err().kind, ErrorKind::Network);
        assert_eq!(decode_all(b"\n \n").unwrap_err().kind, ErrorKind::Network);
    }

    #[test]
    fn broken_events_are_malformed_and_sticky() {
        let mut d = AnthropicDecoder::new();
        let e = d
            .push(b"event: content_block_delta\ndata: {\"type\":\n\n")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedStream);
        assert!(e.detail.contains("invalid JSON"), "{}", e.detail);
        assert_eq!(d.push(simple("end_turn").as_bytes()).unwrap_err(), e);
        assert_eq!(d.finish().unwrap_err(), e);
        for bad in [
            "data: [1, 2]\n\n".to_string(),
            // Arguments for a block that is not a tool call.
            [
                block_start(0, json!({"type":"text","text":""})),
                delta(0, json!({"type":"input_json_delta","partial_json":"{}"})),
            ]
            .concat(),
            delta(7, json!({"type":"input_json_delta","partial_json":"{}"})),
            block_start(0, json!({"type":"tool_use","name":"x"})),
            event(
                "content_block_delta",
                json!({"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}),
            ),
        ] {
            assert_eq!(
                decode_all(bad.as_bytes()).unwrap_err().kind,
                ErrorKind::MalformedStream,
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_events_blocks_and_deltas_are_skipped() {
        let s = [
            message_start(5, 0),
            event("future_event", json!({"type":"future_event","x":1})),
            block_start(0, json!({"type":"redacted_thinking","data":"abc"})),
            block_stop(0),
            block_start(
                1,
                json!({"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}),
            ),
            delta(1, json!({"type":"input_json_delta","partial_json":"{}"}))
                .replace("input_json_delta", "future_delta"),
            block_stop(1),
            block_start(2, json!({"type":"text","text":"Starts "})),
            delta(2, json!({"type":"citations_delta","citation":{}})),
            text(2, "here"),
            block_stop(2),
            // No event name: the payload's type is enough.
            format!(
                "data: {}\n\n",
                json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}})
            ),
            STOP.to_string(),
        ]
        .concat();
        assert_eq!(
            decode_all(s.as_bytes()).unwrap(),
            [
                StreamItem::Delta("Starts ".into()),
                StreamItem::Delta("here".into()),
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
    }

    #[test]
    fn tool_calls_are_numbered_and_unclosed_ones_end_with_the_message() {
        let s = [
            message_start(5, 0),
            block_start(0, json!({"type":"tool_use","id":"a","name":"f"})),
            block_start(1, json!({"type":"tool_use","id":"b","name":"g"})),
            delta(1, json!({"type":"input_json_delta","partial_json":"{}"})),
            block_stop(1),
            message_delta("tool_use", 9),
            STOP.to_string(),
        ]
        .concat();
        let items = decode_all(s.as_bytes()).unwrap();
        assert_eq!(
            items[..6],
            [
                StreamItem::ToolCallStart {
                    index: 0,
                    id: "a".into(),
                    name: "f".into()
                },
                StreamItem::ToolCallStart {
                    index: 1,
                    id: "b".into(),
                    name: "g".into()
                },
                StreamItem::ToolCallArgs {
                    id: "b".into(),
                    delta: "{}".into()
                },
                StreamItem::ToolCallEnd { id: "b".into() },
                // The unclosed call ends at the stop reason, before `Finished`.
                StreamItem::ToolCallEnd { id: "a".into() },
                StreamItem::Finished {
                    reason: "tool_calls".into()
                },
            ]
        );
        // Without a stop reason, at message_stop; a late block stop ends nothing twice.
        let s = [
            message_start(5, 0),
            block_start(0, json!({"type":"tool_use","id":"a","name":"f"})),
            message_delta("tool_use", 9),
            block_stop(0),
            STOP.to_string(),
        ]
        .concat();
        let ends = |items: &[StreamItem]| {
            items
                .iter()
                .filter(|i| matches!(i, StreamItem::ToolCallEnd { .. }))
                .count()
        };
        assert_eq!(ends(&decode_all(s.as_bytes()).unwrap()), 1);
        let s = [
            message_start(5, 0),
            block_start(0, json!({"type":"tool_use","id":"a","name":"f"})),
            STOP.to_string(),
        ]
        .concat();
        let items = decode_all(s.as_bytes()).unwrap();
        assert_eq!(items[1], StreamItem::ToolCallEnd { id: "a".into() });
        assert_eq!(ends(&items), 1);
    }

    #[test]
    fn signatures_are_kept_per_thinking_block() {
        let s = [
            message_start(1, 0),
            block_start(0, json!({"type":"thinking","thinking":"a"})),
            delta(0, json!({"type":"signature_delta","signature":"sig-"})),
            delta(0, json!({"type":"signature_delta","signature":"one"})),
            block_stop(0),
            block_start(1, json!({"type":"thinking","thinking":""})),
            delta(1, json!({"type":"signature_delta","signature":"sig-two"})),
            block_stop(1),
            message_delta("end_turn", 1),
            STOP.to_string(),
        ]
        .concat();
        let mut d = AnthropicDecoder::new();
        let items = d.push(s.as_bytes()).unwrap();
        assert_eq!(items[0], StreamItem::Reasoning("a".into()));
        assert_eq!(d.signatures(), ["sig-one", "sig-two"]);
    }

    #[test]
    fn usage_counts_cache_reads_and_writes_as_prompt_and_takes_later_totals() {
        let s = [
            event(
                "message_start",
                json!({"type":"message_start","message":{"usage":{"input_tokens":10,"cache_creation_input_tokens":20,"cache_read_input_tokens":30,"output_tokens":1}}}),
            ),
            event(
                "message_delta",
                json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":11,"output_tokens":40}}),
            ),
            STOP.to_string(),
        ]
        .concat();
        let mut d = AnthropicDecoder::new();
        let items = d.push(s.as_bytes()).unwrap();
        assert_eq!(
            items[1],
            StreamItem::Usage {
                prompt_tokens: 61,
                completion_tokens: 40
            }
        );
        assert_eq!(d.usage().unwrap().cached_prompt_tokens, 30);
        // No message_start at all: no Usage item, but still Done.
        let items = decode_all(STOP.as_bytes()).unwrap();
        assert_eq!(items, [StreamItem::Done]);
    }

    #[test]
    fn nothing_after_message_stop_is_read() {
        let s = format!("{}{}data: garbage\n\n", simple("end_turn"), text(0, "late"));
        let items = decode_all(s.as_bytes()).unwrap();
        assert_eq!(items.last(), Some(&StreamItem::Done));
        assert!(!items.contains(&StreamItem::Delta("late".into())));
    }

    #[test]
    fn a_whole_json_message_or_error_is_accepted_instead_of_a_stream() {
        let body = json!({"id":"msg_1","type":"message","role":"assistant","content":[
            {"type":"thinking","thinking":"hmm","signature":"s1"},
            {"type":"text","text":"Whole answer"},
            {"type":"tool_use","id":"t1","name":"f","input":{"a":1}}
        ],"stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":2}})
        .to_string();
        let mut d = AnthropicDecoder::new();
        let (a, b) = body.as_bytes().split_at(20);
        assert_eq!(d.push(a).unwrap(), []);
        assert_eq!(d.push(b).unwrap(), []);
        assert_eq!(
            d.finish().unwrap(),
            [
                StreamItem::Reasoning("hmm".into()),
                StreamItem::Delta("Whole answer".into()),
                StreamItem::ToolCallStart {
                    index: 0,
                    id: "t1".into(),
                    name: "f".into()
                },
                StreamItem::ToolCallArgs {
                    id: "t1".into(),
                    delta: "{\"a\":1}".into()
                },
                StreamItem::ToolCallEnd { id: "t1".into() },
                StreamItem::Finished {
                    reason: "tool_calls".into()
                },
                StreamItem::Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2
                },
                StreamItem::Done
            ]
        );
        assert_eq!(d.signatures(), ["s1"]);
        let err = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            decode_all(err.as_bytes()).unwrap_err().kind,
            ErrorKind::ServerError
        );
        assert_eq!(
            decode_all(b"{\"type\":\"message\"}").unwrap_err().kind,
            ErrorKind::MalformedStream
        );
        assert_eq!(
            decode_all(b"{nope").unwrap_err().kind,
            ErrorKind::MalformedStream
        );
    }

    #[test]
    fn http_errors_are_classified_by_anthropic_error_type() {
        let body = |ty: &str, msg: &str| {
            json!({"type":"error","error":{"type":ty,"message":msg},"request_id":"req_1"})
                .to_string()
        };
        for (status, ty, msg, kind) in [
            (
                400,
                "invalid_request_error",
                "max_tokens: Field required",
                ErrorKind::BadRequest,
            ),
            (
                400,
                "invalid_request_error",
                "prompt is too long: 250000 tokens > 200000 maximum",
                ErrorKind::ContextTooLong,
            ),
            (
                400,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API.",
                ErrorKind::QuotaExhausted,
            ),
            (
                401,
                "authentication_error",
                "invalid x-api-key",
                ErrorKind::BadKey,
            ),
            (
                402,
                "billing_error",
                "payment required",
                ErrorKind::QuotaExhausted,
            ),
            (
                403,
                "permission_error",
                "Your API key does not have permission",
                ErrorKind::BadKey,
            ),
            (
                404,
                "not_found_error",
                "model: claude-sonnet-9",
                ErrorKind::ModelNotFound,
            ),
            (404, "not_found_error", "Not found", ErrorKind::BadRequest),
            (
                413,
                "request_too_large",
                "Request exceeds the maximum size",
                ErrorKind::ContextTooLong,
            ),
            (
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
                ErrorKind::RateLimited,
            ),
            (
                500,
                "api_error",
                "Internal server error",
                ErrorKind::ServerError,
            ),
            (
                504,
                "timeout_error",
                "Request timed out",
                ErrorKind::Timeout,
            ),
            (
                529,
                "overloaded_error",
                "Overloaded",
                ErrorKind::ServerError,
            ),
        ] {
            let e = classify_anthropic_http(status, Some("12"), &body(ty, msg), NOW);
            assert_eq!(e.kind, kind, "{status} {ty} {msg}");
            assert_eq!(e.status, Some(status));
            assert_eq!(e.retry_after_ms, Some(12_000), "retry-after kept");
            assert!(e.detail.starts_with(&format!("HTTP {status}: ")));
        }
        // Bodies that are not Anthropic's fall back to the generic rules.
        assert_eq!(
            classify_anthropic_http(529, None, "<html>overloaded</html>", NOW).kind,
            ErrorKind::ServerError
        );
        assert_eq!(
            classify_anthropic_http(401, None, "", NOW).kind,
            ErrorKind::BadKey
        );
        assert_eq!(
            classify_anthropic_http(429, None, r#"{"error":{"type":"mystery"}}"#, NOW).kind,
            ErrorKind::RateLimited
        );
        // The key never reaches the detail.
        let e = classify_anthropic_http(
            401,
            None,
            &body(
                "authentication_error",
                "bad key sk-ant-api03-ABCDEFGHIJKLMNOPQRSTUV",
            ),
            NOW,
        );
        assert!(!e.detail.contains("ABCDEFGHIJKLMNOP"), "{}", e.detail);
    }

    #[test]
    fn splitting_the_recorded_stream_at_any_byte_gives_the_same_items() {
        let s = recorded();
        let bytes = s.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(
                decode_in_pieces(bytes, &[cut]).unwrap(),
                recorded_items(),
                "cut at {cut}"
            );
        }
        let every: Vec<usize> = (0..=bytes.len()).collect();
        assert_eq!(decode_in_pieces(bytes, &every).unwrap(), recorded_items());
        // And with Windows line endings.
        let crlf = s.replace('\n', "\r\n");
        assert_eq!(decode_all(crlf.as_bytes()).unwrap(), recorded_items());
    }

    proptest! {
        #[test]
        fn chunking_never_changes_items(cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
            let s = recorded();
            prop_assert_eq!(decode_in_pieces(s.as_bytes(), &cuts).unwrap(), recorded_items());
        }

        #[test]
        fn any_text_arrives_whole_whatever_the_chunks(pieces in proptest::collection::vec("[ -~é🦀\n\"\\\\]{0,12}", 0..8), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
            let mut s = message_start(1, 0);
            s.push_str(&block_start(0, json!({"type":"text","text":""})));
            for p in &pieces {
                s.push_str(&text(0, p));
            }
            s.push_str(&block_stop(0));
            s.push_str(&message_delta("end_turn", 1));
            s.push_str(STOP);
            let whole = decode_all(s.as_bytes()).unwrap();
            prop_assert_eq!(text_of(&whole), pieces.concat());
            prop_assert_eq!(decode_in_pieces(s.as_bytes(), &cuts).unwrap(), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..6)) {
            let mut d = AnthropicDecoder::new();
            for c in &chunks {
                let _ = d.push(c);
            }
            let _ = d.finish();
        }

        #[test]
        fn arbitrary_events_never_panic(lines in proptest::collection::vec("(event: [a-z_]{0,20}\n)?data: \\{\"type\":\"(message_start|content_block_start|content_block_delta|content_block_stop|message_delta|message_stop|error|ping)\"[ -~]{0,60}\n\n", 0..8)) {
            let _ = decode_all(lines.concat().as_bytes());
        }
    }
}
