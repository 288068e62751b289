//! The project's files, written by the agents through tool calls. Pure: the edge stores the
//! rows in the session's SQLite and runs the calls through here.
//!
//! - [`paths`]: which file paths are allowed, and their normal form.
//! - [`limits`]: files, bytes, tool rounds and calls: every bound, with its reason.
//! - [`tools`]: the four tools (`write_file`, `read_file`, `list_files`, `delete_file`), their
//!   definitions for the model, and their arguments.
//! - [`model`]: the [`Workspace`]: versioned file rows per stage and attempt, exactly-once
//!   application of tool calls, what each stage sees, rebuilding from rows.
//! - [`archive`]: the project as a zip with stable bytes.
//!
//! A round, as the edge will run it: send the request with
//! [`crate::llm::openai::chat_request_body_with_tools`] and [`tools::definitions`]; stream the
//! answer through [`crate::llm::StreamDecoder::push`] (text and `TOOL_CALL_*` items
//! live); for each of [`crate::llm::StreamDecoder::tool_calls`] (at most
//! [`limits::MAX_TOOL_CALLS_PER_ROUND`]) call [`Workspace::apply`], store its rows, and answer
//! the model with [`crate::llm::ChatMessage::assistant_tool_calls`] followed by one
//! [`crate::llm::ChatMessage::tool_result`] per call; repeat up to [`limits::MAX_TOOL_ROUNDS`].

pub mod archive;
pub mod limits;
pub mod model;
pub mod paths;
pub mod tools;

pub use archive::{zip_files, zip_project};
pub use model::{CallRecord, FileVersion, FileView, StoredResult, ToolOutcome, Workspace};
pub use paths::{normalize, PathError};
pub use tools::Tool;
