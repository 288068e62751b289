//! The five agents: who they are, what they are told, and the demo answers used without an
//! API key.
//!
//! - [`Stage`]: the pipeline order.
//! - [`prompts`]: role prompts and the chat messages for one agent call, with the brief and
//!   every approved artifact before it (the artifact handoff).
//! - [`demo`]: the deterministic demo provider; [`demo_project`] the files it writes.

pub mod demo;
pub mod demo_project;
pub mod prompts;

pub use crate::llm::openai::ChatMessage;
/// Each agent is one stage of the pipeline (defined with the wire, which every layer shares).
pub use crate::protocol::Stage;
pub use demo::{demo_answer, demo_script, demo_tokens, demo_usage, DEMO_TOKEN_INTERVAL_MS};
pub use prompts::{
    build_messages, document_title, expected_chars, progress_percent, system_prompt,
    MAX_ANSWER_TOKENS,
};
