//! What one attempt's conversation carries into its next request: every earlier round's tool
//! calls and results would make round k's request resend all of them (a model writing sixteen
//! 256 KiB files a round made one stage send 312 MiB), so big ones are left out, oldest first.
//!
//! Rules, applied after each round of tool calls ([`fit`]):
//!
//! | what | kept whole | otherwise |
//! |---|---|---|
//! | a `write_file`'s `content` argument | up to [`KEEP_BYTES`] | replaced by a note of its size (the model wrote it; `read_file` shows it again) |
//! | any other call's arguments | up to [`MAX_KEPT_ARGUMENT_BYTES`] | replaced by `{"leftOut": note}` (still a JSON object, as providers require) |
//! | a result of an earlier round | up to [`KEEP_BYTES`] | replaced by a note: which tool, how big, call it again |
//! | a result of the round just run | while the tool context fits [`MAX_TOOL_CONTEXT_BYTES`] | the same note, from the round's last result back |
//!
//! Past those, older entries (results, then any arguments) are left out first until the tool
//! context (arguments and results of every round) fits [`MAX_TOOL_CONTEXT_BYTES`]. So one request carries at most the
//! prompt, the attempt's text (≤ 64 KiB, [`crate::protocol::limits::MAX_ANSWER_BYTES`]) and 1 MiB of
//! tool context, and the conversation the driver holds never grows past that either. Nothing a
//! tool did is undone: only what is resent shrinks. Hand-written because it decides on the
//! core's own message type; no library fits.

use std::collections::HashMap;

use serde_json::Value;

use crate::llm::ChatMessage;

/// Arguments or results of every round carried by one request, at most.
pub const MAX_TOOL_CONTEXT_BYTES: usize = 1024 * 1024;
/// A written file's content or an earlier result up to this size is always resent whole.
pub const KEEP_BYTES: usize = 4 * 1024;
/// Arguments other than a write's content resent whole up to this size (a path is far less).
pub const MAX_KEPT_ARGUMENT_BYTES: usize = 8 * 1024;

/// Shrinks `messages[from..]` (the tool rounds after the prompt; the last round is the one just
/// run) by the rules of the module docs.
pub fn fit(messages: &mut [ChatMessage], from: usize) {
    let Some(rounds) = messages.get_mut(from..) else {
        return;
    };
    let last_round = rounds
        .iter()
        .rposition(|m| !m.tool_calls.is_empty())
        .unwrap_or(rounds.len());
    // A `tool` message names its call, not the tool: the note names the tool.
    let names: HashMap<String, String> = rounds
        .iter()
        .flat_map(|m| &m.tool_calls)
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    let name_of = |m: &ChatMessage| {
        m.tool_call_id
            .as_ref()
            .and_then(|id| names.get(id))
            .map_or("the tool", String::as_str)
            .to_string()
    };
    let tools: Vec<String> = rounds.iter().map(name_of).collect();
    for (i, (m, tool)) in rounds.iter_mut().zip(&tools).enumerate() {
        for c in &mut m.tool_calls {
            c.arguments = shrink_arguments(&c.name, &c.arguments);
        }
        if i < last_round && m.tool_call_id.is_some() && m.content.len() > KEEP_BYTES {
            m.content = left_out(tool, m.content.len());
        }
    }
    // Still over: leave out whole results, the earlier rounds' oldest first, then the last
    // round's from its end (the results the model asked for first are the ones it keeps).
    let mut order: Vec<usize> = (0..last_round).collect();
    order.extend((last_round..rounds.len()).rev());
    let mut total = carried(rounds);
    for i in order {
        if total <= MAX_TOOL_CONTEXT_BYTES {
            return;
        }
        let m = &mut rounds[i];
        let before = carried(std::slice::from_ref(m));
        if m.tool_call_id.is_some() && m.content.len() > NOTE_BYTES {
            m.content = left_out(&tools[i], m.content.len());
        }
        for c in m
            .tool_calls
            .iter_mut()
            .filter(|c| c.arguments.len() > NOTE_BYTES)
        {
            c.arguments = arguments_left_out(c.arguments.len());
        }
        total = total - before + carried(std::slice::from_ref(m));
    }
}

/// Bytes of tool arguments and results in `messages`.
pub fn carried(messages: &[ChatMessage]) -> usize {
    messages
        .iter()
        .map(|m| {
            let args: usize = m.tool_calls.iter().map(|c| c.arguments.len()).sum();
            args + if m.tool_call_id.is_some() {
                m.content.len()
            } else {
                0
            }
        })
        .sum()
}

/// Notes are about this long; anything shorter is never replaced by one.
const NOTE_BYTES: usize = 256;

fn left_out(tool: &str, bytes: usize) -> String {
    format!(
        "[BotArmy left this result out of the conversation to keep requests small: {tool} \
         answered {bytes} bytes here. Call it again if you still need it.]"
    )
}

fn shrink_arguments(tool: &str, args: &str) -> String {
    if tool == "write_file" && args.len() > KEEP_BYTES {
        if let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(args) {
            if let Some(Value::String(content)) = o.get("content") {
                if content.len() > KEEP_BYTES {
                    let note = format!(
                        "[BotArmy left out the {} bytes this call wrote, to keep requests \
                         small; read_file shows them]",
                        content.len()
                    );
                    o.insert("content".into(), Value::String(note));
                    let shrunk = Value::Object(o).to_string();
                    if shrunk.len() <= MAX_KEPT_ARGUMENT_BYTES {
                        return shrunk;
                    }
                }
            }
        }
    }
    if args.len() > MAX_KEPT_ARGUMENT_BYTES {
        return arguments_left_out(args.len());
    }
    args.to_string()
}

/// Arguments replaced whole: still a JSON object, as providers require.
fn arguments_left_out(bytes: usize) -> String {
    serde_json::json!({
        "leftOut": format!("BotArmy left out these {bytes} bytes of arguments")
    })
    .to_string()
}
