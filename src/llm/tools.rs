//! Tool calling in the OpenAI chat completions dialect: the tools we offer ([`ToolDef`]), the
//! calls the model makes ([`ToolCall`]), and the assembler that rebuilds streamed calls from
//! their fragments ([`ToolCallAssembler`]), which [`crate::llm::StreamDecoder`] drives.
//!
//! # The stream, as OpenAI documents it
//!
//! A call arrives in `choices[0].delta.tool_calls`, an array of entries keyed by `index` (the
//! call's position in the answer). The first entry of a call carries `index`, `id`,
//! `type: "function"`, `function.name` and usually `function.arguments: ""`; later entries carry
//! only `index` and a fragment of `function.arguments`, cut anywhere (inside a JSON string, an
//! escape, a multibyte character's JSON text). Several calls may be in one answer, one after the
//! other or interleaved by `index`, and text may come before them. The choice then ends with
//! `finish_reason: "tool_calls"`, a usage chunk with `choices: []` may follow, then `[DONE]`.
//!
//! # What the assembler emits ([`crate::llm::StreamItem`]s)
//!
//! - `ToolCallStart {index, id, name}` when a call's first entry arrives;
//! - `ToolCallArgs {id, delta}` for every non-empty arguments fragment, as it arrives;
//! - `ToolCallEnd {id}` for every open call, in start order, when the choice finishes (any
//!   `finish_reason`) or at `[DONE]`. Not earlier: with interleaved calls, a new index does not
//!   mean the previous call is complete. AG-UI allows several tool calls open at once.
//!
//! A stream cut before its end ends no call: [`ToolCallAssembler::calls`] lists only ended calls.
//!
//! # Strict and lenient
//!
//! Strict where a call could be lost or misattributed, each a malformed stream: an entry that is
//! not an object, an `index` that is not a small non-negative integer, a call whose first entry
//! lacks a non-empty `id` or `function.name`, a `type` other than `function`, arguments that are
//! not a string, an `id` or `name` that changes mid-call, two calls with one id, a fragment
//! after the call ended, `finish_reason: "tool_calls"` with no call, too many calls or too many
//! argument bytes (the bounds below).
//!
//! Lenient where servers differ harmlessly: a later entry may repeat the call's `id`, `type` or
//! `name` (or send them empty or `null`); a server that sends the whole call in one entry works;
//! an entry without `index` (some compatible servers) starts a new call when it has an unseen
//! `id` and otherwise continues the call started last. Whether the arguments are valid JSON is
//! not the stream's business: the tool answers the model with a readable error instead.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::stream::StreamItem;

/// How a tool result that changed nothing begins (the model, the wire and the UI read it).
pub const TOOL_ERROR_PREFIX: &str = "Error: ";

/// Calls one answer may make. More is a runaway stream (the session runs at most
/// [`crate::workspace::limits::MAX_TOOL_CALLS_PER_ROUND`] of them anyway).
pub const MAX_TOOL_CALLS_PER_ANSWER: usize = 64;
/// Arguments of one call, in bytes: a whole file's content, JSON-escaped, fits with room.
pub const MAX_TOOL_ARGUMENT_BYTES: usize = 1024 * 1024;
/// Arguments of all calls of one answer, in bytes.
pub const MAX_ANSWER_ARGUMENT_BYTES: usize = 4 * 1024 * 1024;

/// A function the model may call: serialised as OpenAI's
/// `{"type": "function", "function": {"name", "description", "parameters"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// A JSON Schema object describing the arguments.
    pub parameters: Value,
}

impl ToolDef {
    pub fn to_json(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
    }
}

impl Serialize for ToolDef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// One complete call: `arguments` is the model's JSON text, unparsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone)]
struct Pending {
    index: u32,
    call: ToolCall,
    ended: bool,
}

/// Rebuilds the tool calls of one answer from `delta.tool_calls` entries (see the module docs).
/// Errors are plain strings; the decoder turns them into malformed-stream errors.
#[derive(Debug, Clone, Default)]
pub struct ToolCallAssembler {
    /// In start order.
    calls: Vec<Pending>,
    argument_bytes: usize,
    /// The choice finished: every call ended, no new one may start.
    closed: bool,
}

impl ToolCallAssembler {
    pub fn new() -> Self {
        ToolCallAssembler::default()
    }

    /// Takes one chunk's `delta.tool_calls` value (an array; `null` is nothing).
    pub fn push(&mut self, tool_calls: &Value, out: &mut Vec<StreamItem>) -> Result<(), String> {
        match tool_calls {
            Value::Null => Ok(()),
            Value::Array(entries) => entries.iter().try_for_each(|e| self.entry(e, out)),
            other => Err(format!(
                "delta.tool_calls is not an array: {}",
                short(other)
            )),
        }
    }

    /// The choice finished (`finish_reason`) or the stream said `[DONE]`: ends every open call.
    pub fn end_all(&mut self, out: &mut Vec<StreamItem>) {
        self.closed = true;
        for p in self.calls.iter_mut().filter(|p| !p.ended) {
            p.ended = true;
            out.push(StreamItem::ToolCallEnd {
                id: p.call.id.clone(),
            });
        }
    }

    /// Whether any call started.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The ended calls, in the order they started.
    pub fn calls(&self) -> Vec<ToolCall> {
        self.calls
            .iter()
            .filter(|p| p.ended)
            .map(|p| p.call.clone())
            .collect()
    }

    fn entry(&mut self, entry: &Value, out: &mut Vec<StreamItem>) -> Result<(), String> {
        let Value::Object(obj) = entry else {
            return Err(format!(
                "tool call entry is not an object: {}",
                short(entry)
            ));
        };
        let id = non_empty_str(obj.get("id"), "id")?;
        let function = match obj.get("function") {
            None | Some(Value::Null) => None,
            Some(Value::Object(f)) => Some(f),
            Some(other) => {
                return Err(format!(
                    "tool call function is not an object: {}",
                    short(other)
                ))
            }
        };
        let name = non_empty_str(function.and_then(|f| f.get("name")), "function.name")?;
        let arguments = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(format!(
                    "tool call arguments are not a string: {}",
                    short(other)
                ))
            }
        };
        match obj.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "function" || t.is_empty() => {}
            Some(other) => return Err(format!("tool call type is not function: {}", short(other))),
        }
        let slot = match obj.get("index") {
            None | Some(Value::Null) => self.slot_without_index(id),
            Some(v) => {
                let index = v
                    .as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| format!("tool call index is not a small integer: {v}"))?;
                match self.calls.iter().position(|p| p.index == index) {
                    Some(i) => Slot::Known(i),
                    None => Slot::New(index),
                }
            }
        };
        let i = match slot {
            Slot::Known(i) => {
                let p = &self.calls[i];
                if p.ended {
                    return Err(format!("tool call {} continues after it ended", p.call.id));
                }
                if id.is_some_and(|id| id != p.call.id) {
                    return Err(format!(
                        "tool call {} changes its id to {}",
                        p.call.id,
                        id.unwrap_or_default()
                    ));
                }
                if name.is_some_and(|n| n != p.call.name) {
                    return Err(format!(
                        "tool call {} changes its name from {} to {}",
                        p.call.id,
                        p.call.name,
                        name.unwrap_or_default()
                    ));
                }
                i
            }
            Slot::New(index) => {
                if self.closed {
                    return Err("tool call starts after the answer finished".into());
                }
                let Some(id) = id else {
                    return Err(format!(
                        "tool call {index} gets arguments but was never started (no id)"
                    ));
                };
                let Some(name) = name else {
                    return Err(format!("tool call {id} starts without a function name"));
                };
                if self.calls.iter().any(|p| p.call.id == id) {
                    return Err(format!("two tool calls have the id {id}"));
                }
                if self.calls.len() >= MAX_TOOL_CALLS_PER_ANSWER {
                    return Err(format!(
                        "more than {MAX_TOOL_CALLS_PER_ANSWER} tool calls in one answer"
                    ));
                }
                self.calls.push(Pending {
                    index,
                    call: ToolCall {
                        id: id.to_string(),
                        name: name.to_string(),
                        arguments: String::new(),
                    },
                    ended: false,
                });
                out.push(StreamItem::ToolCallStart {
                    index,
                    id: id.to_string(),
                    name: name.to_string(),
                });
                self.calls.len() - 1
            }
        };
        if !arguments.is_empty() {
            let p = &mut self.calls[i];
            if p.call.arguments.len() + arguments.len() > MAX_TOOL_ARGUMENT_BYTES {
                return Err(format!(
                    "arguments of tool call {} are larger than {MAX_TOOL_ARGUMENT_BYTES} bytes",
                    p.call.id
                ));
            }
            if self.argument_bytes + arguments.len() > MAX_ANSWER_ARGUMENT_BYTES {
                return Err(format!(
                    "tool call arguments of one answer are larger than {MAX_ANSWER_ARGUMENT_BYTES} bytes"
                ));
            }
            self.argument_bytes += arguments.len();
            p.call.arguments.push_str(arguments);
            out.push(StreamItem::ToolCallArgs {
                id: p.call.id.clone(),
                delta: arguments.to_string(),
            });
        }
        Ok(())
    }

    /// An entry without `index`: a new call if it brings an unseen id, else the last call.
    fn slot_without_index(&self, id: Option<&str>) -> Slot {
        if let Some(id) = id {
            if let Some(i) = self.calls.iter().position(|p| p.call.id == id) {
                return Slot::Known(i);
            }
            let next = self.calls.iter().map(|p| p.index + 1).max().unwrap_or(0);
            return Slot::New(next);
        }
        match self.calls.len() {
            0 => Slot::New(0),
            n => Slot::Known(n - 1),
        }
    }
}

enum Slot {
    Known(usize),
    New(u32),
}

/// A string field that may be absent, `null` or empty (all "not given"); any other type is an
/// error.
fn non_empty_str<'a>(v: Option<&'a Value>, what: &str) -> Result<Option<&'a str>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "tool call {what} is not a string: {}",
            short(other)
        )),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::stream::test_items::{args, end, start};

    fn push(a: &mut ToolCallAssembler, v: Value) -> Result<Vec<StreamItem>, String> {
        let mut out = Vec::new();
        a.push(&v, &mut out)?;
        Ok(out)
    }

    #[test]
    fn a_tool_definition_serialises_as_an_openai_function() {
        let d = ToolDef {
            name: "list_files".into(),
            description: "List.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"type": "function", "function": {"name": "list_files", "description": "List.",
                   "parameters": {"type": "object", "properties": {}}}})
        );
    }

    #[test]
    fn a_whole_call_in_one_entry_starts_and_carries_its_arguments() {
        let mut a = ToolCallAssembler::new();
        let out = push(
            &mut a,
            json!([{"index": 0, "id": "c1", "type": "function",
                    "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}]),
        )
        .unwrap();
        assert_eq!(
            out,
            [start(0, "c1", "read_file"), args("c1", "{\"path\":\"a\"}")]
        );
        assert!(a.calls().is_empty(), "not ended yet");
        let mut ended = Vec::new();
        a.end_all(&mut ended);
        assert_eq!(ended, [end("c1")]);
        assert_eq!(a.calls()[0].arguments, "{\"path\":\"a\"}");
    }

    #[test]
    fn later_entries_may_repeat_id_type_and_name_or_send_them_empty() {
        let mut a = ToolCallAssembler::new();
        push(&mut a, json!([{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}])).unwrap();
        let out = push(
            &mut a,
            json!([{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{"}},
                   {"index": 0, "id": "", "type": null, "function": {"name": null, "arguments": "}"}},
                   {"index": 0, "function": {"arguments": null}}]),
        )
        .unwrap();
        assert_eq!(out, [args("c1", "{"), args("c1", "}")]);
    }

    #[test]
    fn entries_without_index_start_by_new_id_and_otherwise_continue_the_last_call() {
        let mut a = ToolCallAssembler::new();
        let out = push(
            &mut a,
            json!([{"id": "a", "function": {"name": "f", "arguments": "{}"}},
                   {"id": "b", "function": {"name": "g", "arguments": "{"}},
                   {"function": {"arguments": "}"}}]),
        )
        .unwrap();
        assert_eq!(
            out,
            [
                start(0, "a", "f"),
                args("a", "{}"),
                start(1, "b", "g"),
                args("b", "{"),
                args("b", "}")
            ]
        );
    }

    #[test]
    fn malformed_entries_are_errors_with_a_reason() {
        let cases = [
            (json!({"index": 0}), "not an array"),
            (json!([7]), "not an object"),
            (
                json!([{"index": -1, "id": "x", "function": {"name": "f"}}]),
                "index",
            ),
            (
                json!([{"index": 1.5, "id": "x", "function": {"name": "f"}}]),
                "index",
            ),
            (
                json!([{"index": 0, "function": {"arguments": "{}"}}]),
                "never started",
            ),
            (
                json!([{"index": 0, "id": "x", "function": {"arguments": "{}"}}]),
                "without a function name",
            ),
            (
                json!([{"index": 0, "id": 5, "function": {"name": "f"}}]),
                "id is not a string",
            ),
            (
                json!([{"index": 0, "id": "x", "function": "f"}]),
                "function is not an object",
            ),
            (
                json!([{"index": 0, "id": "x", "function": {"name": "f", "arguments": {"a": 1}}}]),
                "not a string",
            ),
            (
                json!([{"index": 0, "id": "x", "type": "code", "function": {"name": "f"}}]),
                "type",
            ),
            (
                json!([{"index": 0, "id": "x", "function": {"name": "f"}}, {"index": 0, "id": "y"}]),
                "changes its id",
            ),
            (
                json!([{"index": 0, "id": "x", "function": {"name": "f"}}, {"index": 0, "function": {"name": "g"}}]),
                "changes its name",
            ),
            (
                json!([{"index": 0, "id": "x", "function": {"name": "f"}}, {"index": 1, "id": "x", "function": {"name": "f"}}]),
                "two tool calls",
            ),
        ];
        for (v, want) in cases {
            let err = push(&mut ToolCallAssembler::new(), v.clone()).unwrap_err();
            assert!(err.contains(want), "{v}: {err}");
        }
    }

    #[test]
    fn nothing_may_follow_the_end() {
        let mut a = ToolCallAssembler::new();
        push(
            &mut a,
            json!([{"index": 0, "id": "x", "function": {"name": "f"}}]),
        )
        .unwrap();
        a.end_all(&mut Vec::new());
        let more = json!([{"index": 0, "function": {"arguments": "{}"}}]);
        assert!(push(&mut a, more).unwrap_err().contains("after it ended"));
        let new = json!([{"index": 1, "id": "y", "function": {"name": "f"}}]);
        assert!(push(&mut a, new)
            .unwrap_err()
            .contains("after the answer finished"));
    }

    #[test]
    fn calls_and_argument_bytes_are_bounded() {
        let mut a = ToolCallAssembler::new();
        for i in 0..MAX_TOOL_CALLS_PER_ANSWER {
            push(
                &mut a,
                json!([{"index": i, "id": format!("c{i}"), "function": {"name": "f"}}]),
            )
            .unwrap();
        }
        let one_more = json!([{"index": 999, "id": "z", "function": {"name": "f"}}]);
        assert!(push(&mut a, one_more).unwrap_err().contains("more than"));

        let mut a = ToolCallAssembler::new();
        let half = "x".repeat(MAX_TOOL_ARGUMENT_BYTES / 2 + 1);
        push(
            &mut a,
            json!([{"index": 0, "id": "c", "function": {"name": "f", "arguments": half}}]),
        )
        .unwrap();
        let err = push(
            &mut a,
            json!([{"index": 0, "function": {"arguments": half}}]),
        )
        .unwrap_err();
        assert!(err.contains("larger than"), "{err}");

        let mut a = ToolCallAssembler::new();
        let big = "x".repeat(MAX_TOOL_ARGUMENT_BYTES);
        for i in 0..4 {
            push(&mut a, json!([{"index": i, "id": format!("c{i}"), "function": {"name": "f", "arguments": big}}])).unwrap();
        }
        let err = push(
            &mut a,
            json!([{"index": 4, "id": "c4", "function": {"name": "f", "arguments": "x"}}]),
        )
        .unwrap_err();
        assert!(err.contains("one answer"), "{err}");
    }
}
