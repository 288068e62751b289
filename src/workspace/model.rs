//! The project's files as the agents build them: every write a versioned row attributed to the
//! stage and attempt that made it, tool calls applied exactly once, and what each stage sees.
//!
//! The edge persists two tables in the session's SQLite and rebuilds the model from them with
//! [`Workspace::from_rows`]:
//!
//! | row | key | holds |
//! |---|---|---|
//! | [`FileVersion`] | `version` | `path`, `stage`, `attempt`, `call_id`, `content` (`None`: deleted) |
//! | [`CallRecord`] | `call_id` | `stage`, `attempt`, `tool`, `result_text`, `is_error`, `version` |
//!
//! # Rules
//!
//! - **What a stage sees.** Attempt `a` of stage `s` sees, for each path, the newest row among
//!   the rows of earlier stages and its own rows: [`Workspace::files`]. Rows of other attempts
//!   of `s` and of later stages are invisible to it.
//! - **Attempts never mix.** A rejected, failed or retried attempt is dropped with
//!   [`Workspace::discard_attempt`] (its file rows and its call records); the rerun starts
//!   from the earlier stages' files. The edge discards every attempt that is not the one
//!   approved, so each earlier stage contributes exactly its approved attempt.
//! - **Exactly once.** [`Workspace::apply`] with a `call_id` already applied returns the first
//!   outcome's text and error flag and changes nothing (no new rows to store).
//! - **Errors change nothing.** Invalid JSON, an unknown tool, a refused path, a missing file or
//!   a cap reached ([`super::limits`]) give an error result in plain words and no file row; the
//!   call is still recorded, so repeating it gives the same answer.
//! - **The project unpacks everywhere.** Two paths that differ only in case, or a file where
//!   another path needs a folder (`a` and `a/b`), are refused.
//! - Versions grow by one per write over the whole workspace; a write of identical content is
//!   not a write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{MAX_FILES, MAX_FILE_BYTES, MAX_TOOL_CALLS_PER_ATTEMPT, MAX_WORKSPACE_BYTES};
use super::paths::normalize;
use super::tools::{parse_args, NoArgs, PathArgs, Tool, WriteArgs};
use crate::agents::Stage;

/// One write or delete of one file: a row of the `files` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVersion {
    /// Unique and increasing over the workspace.
    pub version: u64,
    pub path: String,
    pub stage: Stage,
    pub attempt: u32,
    /// The tool call that made it.
    pub call_id: String,
    /// The whole new content; `None` when the file was deleted.
    pub content: Option<String>,
}

/// One applied tool call and its answer: a row of the `tool_calls` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub stage: Stage,
    pub attempt: u32,
    pub tool: String,
    /// What the model is told (the `tool` message's content).
    pub result_text: String,
    pub is_error: bool,
    /// The [`FileVersion`] it wrote, if any.
    pub version: Option<u64>,
}

/// What [`Workspace::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    /// The answer for the model: send it as the `tool` message for this call.
    pub result_text: String,
    pub is_error: bool,
    /// The file row to store, if the call wrote or deleted a file.
    pub change: Option<FileVersion>,
    /// The call row to store; `None` when the call had been applied before (nothing new).
    pub record: Option<CallRecord>,
}

impl ToolOutcome {
    /// The call had been applied before: this is its first answer again, and nothing changed.
    pub fn repeated(&self) -> bool {
        self.record.is_none()
    }
}

/// A file as a stage sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileView<'a> {
    pub path: &'a str,
    pub content: &'a str,
    pub version: u64,
}

/// The in-memory model of a session's project files (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    /// Every stored row, by version.
    versions: BTreeMap<u64, FileVersion>,
    calls: BTreeMap<String, CallRecord>,
    next_version: u64,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            next_version: 1,
            ..Workspace::default()
        }
    }

    /// Rebuilds the model from stored rows (any order). Refuses rows that could not have come
    /// from [`Workspace::apply`]: a repeated version or call id, or an invalid path.
    pub fn from_rows(
        versions: impl IntoIterator<Item = FileVersion>,
        calls: impl IntoIterator<Item = CallRecord>,
    ) -> Result<Self, String> {
        let mut ws = Workspace::new();
        for v in versions {
            if normalize(&v.path).as_deref() != Ok(v.path.as_str()) {
                return Err(format!(
                    "file row {} has an invalid path {:?}",
                    v.version, v.path
                ));
            }
            ws.next_version = ws.next_version.max(v.version + 1);
            if let Some(old) = ws.versions.insert(v.version, v) {
                return Err(format!("two file rows have version {}", old.version));
            }
        }
        for c in calls {
            if let Some(old) = ws.calls.insert(c.call_id.clone(), c) {
                return Err(format!("two tool call rows have id {:?}", old.call_id));
            }
        }
        Ok(ws)
    }

    /// All stored file rows, by version.
    pub fn file_rows(&self) -> impl Iterator<Item = &FileVersion> {
        self.versions.values()
    }

    /// All stored call rows, by call id.
    pub fn call_rows(&self) -> impl Iterator<Item = &CallRecord> {
        self.calls.values()
    }

    /// The first outcome of `call_id`, if it was applied.
    pub fn call(&self, call_id: &str) -> Option<&CallRecord> {
        self.calls.get(call_id)
    }

    /// The files attempt `attempt` of `stage` sees, by path.
    pub fn files(&self, stage: Stage, attempt: u32) -> BTreeMap<&str, FileView<'_>> {
        let mut out: BTreeMap<&str, Option<FileView<'_>>> = BTreeMap::new();
        for v in self.versions.values() {
            if v.stage < stage || (v.stage == stage && v.attempt == attempt) {
                let view = v.content.as_deref().map(|content| FileView {
                    path: &v.path,
                    content,
                    version: v.version,
                });
                out.insert(&v.path, view);
            }
        }
        out.into_iter()
            .filter_map(|(p, v)| v.map(|v| (p, v)))
            .collect()
    }

    /// The current project: what the newest attempt of the latest stage with rows sees (all
    /// files when every other attempt was discarded).
    pub fn latest(&self) -> BTreeMap<&str, FileView<'_>> {
        match self.versions.values().map(|v| (v.stage, v.attempt)).max() {
            Some((stage, attempt)) => self.files(stage, attempt),
            None => BTreeMap::new(),
        }
    }

    /// Drops every row and call record of attempt `attempt` of `stage`; returns how many file
    /// rows went. The edge deletes the same rows.
    pub fn discard_attempt(&mut self, stage: Stage, attempt: u32) -> usize {
        let before = self.versions.len();
        self.versions
            .retain(|_, v| !(v.stage == stage && v.attempt == attempt));
        self.calls
            .retain(|_, c| !(c.stage == stage && c.attempt == attempt));
        before - self.versions.len()
    }

    /// Applies the tool call `call_id` (`tool` with its JSON `args_json`) for attempt `attempt`
    /// of `stage`, exactly once (rules in the module docs).
    pub fn apply(
        &mut self,
        call_id: &str,
        tool: &str,
        args_json: &str,
        stage: Stage,
        attempt: u32,
    ) -> ToolOutcome {
        if let Some(first) = self.calls.get(call_id) {
            return ToolOutcome {
                result_text: first.result_text.clone(),
                is_error: first.is_error,
                change: None,
                record: None,
            };
        }
        let made = self
            .calls
            .values()
            .filter(|c| c.stage == stage && c.attempt == attempt)
            .count();
        let result = if made >= MAX_TOOL_CALLS_PER_ATTEMPT {
            Err(format!(
                "This stage has already made {made} tool calls, the most allowed in one attempt. \
                 Finish with what is written."
            ))
        } else {
            self.run(tool, args_json, stage, attempt)
        };
        let (result_text, is_error, change) = match result {
            Ok((text, change)) => (text, false, change),
            Err(text) => (text, true, None),
        };
        let change = change.map(|v| FileVersion {
            call_id: call_id.to_string(),
            ..v
        });
        if let Some(v) = &change {
            self.versions.insert(v.version, v.clone());
            self.next_version = v.version + 1;
        }
        let record = CallRecord {
            call_id: call_id.to_string(),
            stage,
            attempt,
            tool: tool.to_string(),
            result_text: result_text.clone(),
            is_error,
            version: change.as_ref().map(|v| v.version),
        };
        self.calls.insert(call_id.to_string(), record.clone());
        ToolOutcome {
            result_text,
            is_error,
            change,
            record: Some(record),
        }
    }

    /// Runs one call against the stage's view: the answer and the row to add, or an error text.
    fn run(
        &self,
        tool: &str,
        args_json: &str,
        stage: Stage,
        attempt: u32,
    ) -> Result<(String, Option<FileVersion>), String> {
        let Some(t) = Tool::parse(tool) else {
            let names: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
            return Err(format!(
                "There is no tool named {tool:?}. The tools are: {}.",
                names.join(", ")
            ));
        };
        let files = self.files(stage, attempt);
        let path_of = |raw: &str| {
            normalize(raw).map_err(|e| format!("The path {raw:?} cannot be used: {e}."))
        };
        let row = |path: String, content: Option<String>| FileVersion {
            version: self.next_version,
            path,
            stage,
            attempt,
            call_id: String::new(),
            content,
        };
        match t {
            Tool::ListFiles => {
                parse_args::<NoArgs>(t, args_json)?;
                Ok((list(&files), None))
            }
            Tool::ReadFile => {
                let args: PathArgs = parse_args(t, args_json)?;
                let path = path_of(&args.path)?;
                match files.get(path.as_str()) {
                    Some(f) if f.content.is_empty() => Ok((format!("({path} is empty.)"), None)),
                    Some(f) => Ok((f.content.to_string(), None)),
                    None => Err(missing(&files, &path)),
                }
            }
            Tool::DeleteFile => {
                let args: PathArgs = parse_args(t, args_json)?;
                let path = path_of(&args.path)?;
                if !files.contains_key(path.as_str()) {
                    return Err(missing(&files, &path));
                }
                Ok((format!("Deleted {path}."), Some(row(path, None))))
            }
            Tool::WriteFile => {
                let args: WriteArgs = parse_args(t, args_json)?;
                let path = path_of(&args.path)?;
                let bytes = args.content.len();
                if bytes > MAX_FILE_BYTES {
                    return Err(format!(
                        "{path} would be {bytes} bytes; a file may hold at most {MAX_FILE_BYTES} \
                         bytes. Split it into smaller files."
                    ));
                }
                let old = files.get(path.as_str());
                if let Some(old) = old {
                    if old.content == args.content {
                        return Ok((
                            format!("{path} already has exactly this content ({bytes} bytes); nothing changed."),
                            None,
                        ));
                    }
                } else {
                    check_new_path(&files, &path)?;
                    if files.len() >= MAX_FILES {
                        return Err(format!(
                            "The project already has {MAX_FILES} files, the most allowed. Delete \
                             or merge files before adding {path}."
                        ));
                    }
                }
                let total: usize = files.values().map(|f| f.content.len()).sum();
                let after = total - old.map_or(0, |o| o.content.len()) + bytes;
                if after > MAX_WORKSPACE_BYTES {
                    return Err(format!(
                        "Writing {path} would bring the project to {after} bytes; the most is \
                         {MAX_WORKSPACE_BYTES}. Make files smaller or delete some."
                    ));
                }
                let text = match old {
                    Some(o) => format!(
                        "Wrote {path} ({bytes} bytes, replacing {} bytes).",
                        o.content.len()
                    ),
                    None => format!("Wrote {path} ({bytes} bytes, new file)."),
                };
                Ok((text, Some(row(path, Some(args.content)))))
            }
        }
    }
}

/// A new path must not differ from another only in case, be a folder of an existing file, or
/// be a file where existing files need a folder.
fn check_new_path(files: &BTreeMap<&str, FileView<'_>>, path: &str) -> Result<(), String> {
    if let Some(other) = files.keys().find(|p| p.eq_ignore_ascii_case(path)) {
        return Err(format!(
            "{other} already exists, and {path} differs from it only in case, which breaks on \
             Windows and macOS. Write to {other} instead, or delete it first."
        ));
    }
    let mut prefix = String::new();
    for segment in path
        .split('/')
        .collect::<Vec<_>>()
        .split_last()
        .map_or(&[][..], |s| s.1)
    {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(segment);
        if files.contains_key(prefix.as_str()) {
            return Err(format!(
                "{prefix} is a file, so it cannot also be a folder holding {path}. Choose another \
                 path or delete {prefix} first."
            ));
        }
    }
    let folder = format!("{path}/");
    if let Some(inside) = files.keys().find(|p| p.starts_with(&folder)) {
        return Err(format!(
            "{path} is a folder (it holds {inside}), so it cannot also be a file. Choose another \
             path."
        ));
    }
    Ok(())
}

fn missing(files: &BTreeMap<&str, FileView<'_>>, path: &str) -> String {
    let folder = format!("{path}/");
    let inside = files.keys().filter(|p| p.starts_with(&folder)).count();
    if inside > 0 {
        format!(
            "{path} is a folder holding {inside} files, not a file. Call list_files to see them."
        )
    } else {
        format!("There is no file {path}. Call list_files to see the files.")
    }
}

fn list(files: &BTreeMap<&str, FileView<'_>>) -> String {
    if files.is_empty() {
        return "The project has no files yet.".into();
    }
    let total: usize = files.values().map(|f| f.content.len()).sum();
    let mut out = format!(
        "{} file{}, {total} bytes in all:",
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    );
    for f in files.values() {
        out.push_str(&format!("\n{} ({} bytes)", f.path, f.content.len()));
    }
    out
}
