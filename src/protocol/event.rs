//! Server → client events: the AG-UI event types BotArmy emits (`@ag-ui/core` 1.0 names and
//! fields), and their framing with `seq` and `timestamp`.
//!
//! Logged session events carry `seq`; replies meant for one connection do not (see
//! `docs/protocol.md`). Golden fixtures in `tests/fixtures/` pin the exact JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::patch::PatchOp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
}

/// An approval gate (AG-UI interrupt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupt {
    pub id: String,
    pub reason: String,
    pub message: String,
    /// JSON Schema of the answer (`ResumeEntry.payload`) the interrupt expects.
    #[serde(
        rename = "responseSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response_schema: Option<Value>,
}

/// Why a run finished (AG-UI `RUN_FINISHED.outcome`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Interrupt { interrupts: Vec<Interrupt> },
    Cancelled,
}

/// Tokens a run spent on one model (AG-UI 1.0 `TokenUsage`, in `RUN_FINISHED.usage` and
/// `RUN_ERROR.usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// A whole message, for `MESSAGES_SNAPSHOT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub role: MessageRole,
    pub name: String,
    pub content: String,
}

/// The role of a reasoning message: AG-UI's `"reasoning"`, the only value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningRole {
    Reasoning,
}

/// The role of a `TOOL_CALL_RESULT` message: AG-UI's `"tool"`, the only value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolRole {
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    RunStarted {
        thread_id: String,
        run_id: String,
    },
    RunFinished {
        thread_id: String,
        run_id: String,
        outcome: Outcome,
        /// What the run's accepted answers cost in tokens (a cached answer counts 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Vec<TokenUsage>>,
    },
    RunError {
        message: String,
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Vec<TokenUsage>>,
    },
    StepStarted {
        step_name: String,
    },
    StepFinished {
        step_name: String,
    },
    TextMessageStart {
        message_id: String,
        role: MessageRole,
        name: String,
    },
    TextMessageContent {
        message_id: String,
        delta: String,
    },
    TextMessageEnd {
        message_id: String,
    },
    /// An agent calls a tool; `parent_message_id` is its answer message.
    ToolCallStart {
        tool_call_id: String,
        tool_call_name: String,
        parent_message_id: String,
    },
    /// More of the call's JSON arguments (coalesced like text).
    ToolCallArgs {
        tool_call_id: String,
        delta: String,
    },
    ToolCallEnd {
        tool_call_id: String,
    },
    /// What the tool answered the model (`role` is always `tool`).
    ToolCallResult {
        message_id: String,
        tool_call_id: String,
        content: String,
        role: ToolRole,
    },
    /// A span of the model's reasoning ("thinking") begins; never part of the answer.
    ReasoningStart {
        message_id: String,
    },
    ReasoningMessageStart {
        message_id: String,
        role: ReasoningRole,
    },
    /// More reasoning text (coalesced like text).
    ReasoningMessageContent {
        message_id: String,
        delta: String,
    },
    ReasoningMessageEnd {
        message_id: String,
    },
    ReasoningEnd {
        message_id: String,
    },
    StateSnapshot {
        snapshot: Value,
    },
    StateDelta {
        delta: Vec<PatchOp>,
    },
    MessagesSnapshot {
        messages: Vec<Message>,
    },
    Custom {
        name: String,
        value: Value,
    },
}

impl Event {
    pub fn custom(name: &str, value: Value) -> Event {
        Event::Custom {
            name: name.to_string(),
            value,
        }
    }
}

#[derive(Serialize)]
struct Framed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    timestamp: u64,
    #[serde(flatten)]
    event: &'a Event,
}

/// The JSON text of one frame. `seq` is `Some` for logged session events only.
pub fn frame(seq: Option<u64>, timestamp: u64, event: &Event) -> String {
    serde_json::to_string(&Framed {
        seq,
        timestamp,
        event,
    })
    .expect("events serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::patch::PatchOp;
    use serde_json::json;

    /// One of every event, as the golden fixture pins them.
    fn samples() -> Vec<(Option<u64>, Event)> {
        vec![
            (
                Some(1),
                Event::RunStarted {
                    thread_id: "t".into(),
                    run_id: "run-1".into(),
                },
            ),
            (
                Some(2),
                Event::StateSnapshot {
                    snapshot: json!({"run": {"status": "running"}}),
                },
            ),
            (
                Some(3),
                Event::StateDelta {
                    delta: vec![PatchOp::replace("/run/status", json!("paused"))],
                },
            ),
            (
                Some(4),
                Event::TextMessageStart {
                    message_id: "m4".into(),
                    role: MessageRole::Assistant,
                    name: "Analyst".into(),
                },
            ),
            (
                Some(5),
                Event::TextMessageContent {
                    message_id: "m4".into(),
                    delta: "Hello".into(),
                },
            ),
            (
                Some(6),
                Event::TextMessageEnd {
                    message_id: "m4".into(),
                },
            ),
            (
                Some(7),
                Event::StepStarted {
                    step_name: "analyst".into(),
                },
            ),
            (
                Some(8),
                Event::StepFinished {
                    step_name: "analyst".into(),
                },
            ),
            (
                Some(9),
                Event::RunFinished {
                    thread_id: "t".into(),
                    run_id: "run-1".into(),
                    outcome: Outcome::Interrupt {
                        interrupts: vec![Interrupt {
                            id: "gate-analyst-1".into(),
                            reason: "approval".into(),
                            message: "Approve?".into(),
                            response_schema: None,
                        }],
                    },
                    usage: None,
                },
            ),
            (
                Some(10),
                Event::RunFinished {
                    thread_id: "t".into(),
                    run_id: "run-2".into(),
                    outcome: Outcome::Success,
                    usage: Some(vec![TokenUsage {
                        model: "gpt-4o-mini".into(),
                        input_tokens: 120,
                        output_tokens: 30,
                        total_tokens: 150,
                    }]),
                },
            ),
            (
                Some(11),
                Event::RunFinished {
                    thread_id: "t".into(),
                    run_id: "run-3".into(),
                    outcome: Outcome::Cancelled,
                    usage: None,
                },
            ),
            (
                Some(12),
                Event::RunError {
                    message: "The AI provider rejected the API key.".into(),
                    code: "bad_key".into(),
                    usage: None,
                },
            ),
            (
                Some(13),
                Event::custom(
                    "artifact",
                    json!({"stage": "analyst", "version": 1, "chars": 5}),
                ),
            ),
            (
                Some(14),
                Event::ToolCallStart {
                    tool_call_id: "tc5-0-call_1".into(),
                    tool_call_name: "write_file".into(),
                    parent_message_id: "msg-5".into(),
                },
            ),
            (
                Some(15),
                Event::ToolCallArgs {
                    tool_call_id: "tc5-0-call_1".into(),
                    delta: r#"{"path":"src/app.js","content":"let x = 1;\n"}"#.into(),
                },
            ),
            (
                Some(16),
                Event::ToolCallEnd {
                    tool_call_id: "tc5-0-call_1".into(),
                },
            ),
            (
                Some(17),
                Event::ToolCallResult {
                    message_id: "tool-tc5-0-call_1".into(),
                    tool_call_id: "tc5-0-call_1".into(),
                    content: "Wrote src/app.js (11 bytes, new file).".into(),
                    role: ToolRole::Tool,
                },
            ),
            (
                None,
                Event::MessagesSnapshot {
                    messages: vec![Message {
                        id: "m4".into(),
                        role: MessageRole::Assistant,
                        name: "Analyst".into(),
                        content: "Hello".into(),
                    }],
                },
            ),
            (
                None,
                Event::custom(
                    "ack",
                    json!({"id": "k1", "command": "pause", "duplicate": false}),
                ),
            ),
        ]
    }

    #[test]
    fn matches_golden_fixture() {
        let got: Vec<String> = samples()
            .iter()
            .map(|(seq, ev)| frame(*seq, 1_700_000_000_000, ev))
            .collect();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/events.golden.jsonl"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, got.join("\n") + "\n").unwrap();
        }
        let want = std::fs::read_to_string(path).expect("golden fixture present");
        let want: Vec<&str> = want.lines().collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w);
        }
    }

    #[test]
    fn frames_round_trip() {
        for (seq, ev) in samples() {
            let text = frame(seq, 5, &ev);
            let mut v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["timestamp"], json!(5));
            assert_eq!(v.get("seq").and_then(Value::as_u64), seq);
            let obj = v.as_object_mut().unwrap();
            obj.remove("seq");
            obj.remove("timestamp");
            let back: Event = serde_json::from_value(v).unwrap();
            assert_eq!(back, ev);
        }
    }
}
