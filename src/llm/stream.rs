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
//! calls end together when the choice finishes ([`crate::llm::tools`] has the rules).

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
