//! Every bound of a project's workspace, in one place, with the reason for each number.
//!
//! A session's files live in its Durable Object (SQLite, 128 MB of memory per isolate) and are
//! sent to the model again as it reads them, so the bounds keep one session's storage, memory
//! and prompt size small while leaving room for a real small project (a service with its
//! tests, config and docs is tens of files of a few KiB each). Reaching one is never a crash:
//! the tool call gets a plain-English error the model can act on, and nothing changes.

/// Files in one workspace (as one stage sees it). A generated project of a few dozen files is
/// typical; 200 leaves room without letting a loop spray thousands of rows.
pub const MAX_FILES: usize = 200;

/// Bytes in one file. 256 KiB is far beyond any hand-written source file; a larger one would
/// also not fit in a model's answer (a tool call's arguments are the model's output).
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// Bytes of all files together (as one stage sees it): 4 MiB keeps the workspace, its zip and
/// a stage's rows comfortably inside one Durable Object's memory.
pub const MAX_WORKSPACE_BYTES: usize = 4 * 1024 * 1024;

/// Model answers that call tools, per attempt of a stage: each round is a full request with
/// the whole conversation, so rounds are what cost tokens. 12 lets an agent list, read a few
/// files, write a dozen more and fix its mistakes; a model looping on errors stops there.
pub const MAX_TOOL_ROUNDS: usize = 12;

/// Tool calls run from one answer. Models batch parallel writes; 16 is more than a sensible
/// batch, and calls beyond it get an error result asking for fewer at a time.
pub const MAX_TOOL_CALLS_PER_ROUND: usize = 16;

/// Tool calls one attempt may make in all (the product of the two above). The workspace
/// enforces it itself, so its memory of applied calls (kept for exactly-once) is bounded even
/// if a caller forgets the round limits.
pub const MAX_TOOL_CALLS_PER_ATTEMPT: usize = MAX_TOOL_ROUNDS * MAX_TOOL_CALLS_PER_ROUND;

/// Bytes of a relative path. 255 is what common file systems and archive tools accept.
pub const MAX_PATH_BYTES: usize = 255;

/// Bytes of one path segment (a file or folder name). 100 keeps deep paths under
/// `MAX_PATH_BYTES` readable and is the classic tar name field size.
pub const MAX_SEGMENT_BYTES: usize = 100;

/// Bytes of every kept version of every file together (the history a session stores, which
/// diffs read): 16 MiB lets each file of a full project be rewritten a few times, and bounds a
/// model that rewrites one large file in a loop. Reaching it refuses writes, like the other caps.
pub const MAX_HISTORY_BYTES: usize = 16 * 1024 * 1024;
