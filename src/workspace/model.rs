//! The project's files as the agents build them: every write a versioned row attributed to the
//! stage and attempt that made it, tool calls applied exactly once, and what each stage sees.
//!
//! The edge persists two tables in the session's SQLite and rebuilds the model from them with
//! [`Workspace::from_rows`]:
//!
//! | row | key | holds |
//! |---|---|---|
//! | [`FileVersion`] | `version` | `path`, `stage`, `attempt`, `call_id`, `content` (`None`: deleted) |
//! | [`CallRecord`] | `call_id` | `stage`, `attempt`, `tool`, `result` ([`StoredResult`]: a read keeps only a digest), `is_error`, `version` |
//!
//! # Rules
//!
//! - **What a stage sees.** Attempt `a` of stage `s` sees, for each path, the newest row among
//!   its own rows and those of one attempt of each earlier stage, the highest-numbered one that
//!   has rows: [`Workspace::files`]. Rows of other attempts of `s` and of later stages are
//!   invisible to it.
//! - **Attempts never mix.** A rejected, failed or retried attempt is dropped with
//!   [`Workspace::discard_attempt`] (its file rows and its call records); the rerun starts
//!   from the earlier stages' files. The edge discards every attempt that is not approved, so
//!   each earlier stage contributes exactly its approved attempt. (Should one be left behind,
//!   a later stage still sees one attempt per stage, never a mixture.)
//! - **Exactly once.** [`Workspace::apply`] with a `call_id` already applied returns the first
//!   outcome's text and error flag and changes nothing (no new rows to store). A read
//!   (`read_file`, `list_files`) changes nothing either way, and its answer is content the
//!   project holds: its record keeps the answer's SHA-256 and size, not the answer (a model
//!   reading one 256 KiB file 16 times a round stored 194 MiB otherwise), and a repeat reads
//!   again. The digest says whether that answer is the first one word for word
//!   ([`StoredResult::matches`]); when a write in between changed the file it is not, and
//!   the model is told what the file holds now.
//! - **Errors change nothing.** Invalid JSON, an unknown tool, a refused path, a missing file or
//!   a cap reached ([`super::limits`]) give an error result in plain words and no file row; the
//!   call is still recorded, so repeating it gives the same answer.
//! - **The project unpacks everywhere.** Two paths that differ only in case, or a file where
//!   another path needs a folder (`a` and `a/b`), are refused.
//! - Versions grow by one per write over the whole workspace; a write of identical content is
//!   not a write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{
    MAX_FILES, MAX_FILE_BYTES, MAX_HISTORY_BYTES, MAX_TOOL_CALLS_PER_ATTEMPT, MAX_WORKSPACE_BYTES,
};
use super::paths::{fold, normalize, well_formed};
use super::tools::{parse_args, NoArgs, PathArgs, Tool, WriteArgs};
use crate::protocol::Stage;

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
    /// What is kept of the model's answer (the `tool` message's content).
    pub result: StoredResult,
    pub is_error: bool,
    /// The [`FileVersion`] it wrote, if any.
    pub version: Option<u64>,
}

/// What a [`CallRecord`] keeps of a call's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredResult {
    /// The answer itself: a write's, a delete's or an error's (a line or two).
    Text(String),
    /// A successful read's answer: its SHA-256 (hex; empty when not known, for rows stored
    /// before digests were) and size in bytes, and the read's arguments in canonical form
    /// (`{"path": normal form}` or `{}`: a path's bytes at most), to read again.
    Digest {
        sha256: String,
        bytes: u64,
        args: String,
    },
}

impl StoredResult {
    /// What to keep of `text`, the answer of a call of `tool` with `args_json` that did (not)
    /// fail.
    fn of(tool: &str, args_json: &str, text: &str, is_error: bool) -> StoredResult {
        let args = match Tool::parse(tool) {
            _ if is_error => None,
            Some(Tool::ListFiles) => Some("{}".to_string()),
            Some(t @ Tool::ReadFile) => parse_args::<PathArgs>(t, args_json)
                .ok()
                .and_then(|a| normalize(&a.path).ok())
                .map(|path| serde_json::json!({ "path": path }).to_string()),
            _ => None,
        };
        match args {
            Some(args) => StoredResult::Digest {
                sha256: sha256_hex(text),
                bytes: text.len() as u64,
                args,
            },
            None => StoredResult::Text(text.to_string()),
        }
    }

    /// True when `text` is the answer this keeps.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            StoredResult::Text(t) => t == text,
            StoredResult::Digest { sha256, bytes, .. } => {
                *bytes == text.len() as u64 && *sha256 == sha256_hex(text)
            }
        }
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
            // Not `normalize`: rows stored before its rules on misleading characters still load.
            if !well_formed(&v.path) {
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
        let mut chosen: BTreeMap<Stage, u32> = BTreeMap::new();
        for v in self.versions.values().filter(|v| v.stage < stage) {
            let a = chosen.entry(v.stage).or_insert(v.attempt);
            *a = (*a).max(v.attempt);
        }
        chosen.insert(stage, attempt);
        let mut out: BTreeMap<&str, Option<FileView<'_>>> = BTreeMap::new();
        for v in self.versions.values() {
            if chosen.get(&v.stage) == Some(&v.attempt) {
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

    /// Drops every row and call record of `stage` and the stages after it (a new attempt of
    /// `stage` starts from the earlier stages' files); true when something went.
    pub fn discard_from(&mut self, stage: Stage) -> bool {
        let (files, calls) = (self.versions.len(), self.calls.len());
        self.versions.retain(|_, v| v.stage < stage);
        self.calls.retain(|_, c| c.stage < stage);
        files != self.versions.len() || calls != self.calls.len()
    }

    /// Bytes of every kept version's content (bounded by [`MAX_HISTORY_BYTES`]).
    pub fn history_bytes(&self) -> usize {
        self.versions
            .values()
            .map(|v| v.content.as_ref().map_or(0, String::len))
            .sum()
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
            let (result_text, is_error) = match &first.result {
                StoredResult::Text(t) => (t.clone(), first.is_error),
                // A read changes nothing: read again, as the first application did.
                StoredResult::Digest { args, .. } => {
                    match self.run(&first.tool, args, first.stage, first.attempt) {
                        Ok((t, _)) => (t, false),
                        Err(t) => (t, true),
                    }
                }
            };
            return ToolOutcome {
                result_text,
                is_error,
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
            result: StoredResult::of(tool, args_json, &result_text, is_error),
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
                let history = self.history_bytes() + bytes;
                if history > MAX_HISTORY_BYTES {
                    return Err(format!(
                        "The project's saved history is full ({MAX_HISTORY_BYTES} bytes of file \
                         versions), so {path} was not written. Finish with what is written."
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

/// A new path must not differ from another only in case (any script's: `Élan.md`, `élan.md`)
/// or Unicode form, be a folder of an existing file, or be a file where existing files need a
/// folder.
fn check_new_path(files: &BTreeMap<&str, FileView<'_>>, path: &str) -> Result<(), String> {
    // Compared as a file system that ignores case sees them.
    let folds: Vec<(String, &str)> = files.keys().map(|p| (fold(p), *p)).collect();
    let same = |p: &str| {
        let f = fold(p);
        folds.iter().find(|(k, _)| *k == f).map(|(_, other)| *other)
    };
    if let Some(other) = same(path) {
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
        if let Some(file) = same(&prefix) {
            return Err(format!(
                "{file} is a file, so it cannot also be a folder holding {path}. Choose another \
                 path or delete {file} first."
            ));
        }
    }
    let folder = format!("{}/", fold(path));
    if let Some((_, inside)) = folds.iter().find(|(k, _)| k.starts_with(&folder)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::limits::MAX_TOOL_CALLS_PER_ROUND;
    use proptest::prelude::*;
    use serde_json::json;

    const DEV: Stage = Stage::Developer;

    fn write(path: &str, content: &str) -> String {
        json!({"path": path, "content": content}).to_string()
    }

    fn path(p: &str) -> String {
        json!({ "path": p }).to_string()
    }

    /// Path → content, as `stage`/`attempt` sees it.
    fn seen(ws: &Workspace, stage: Stage, attempt: u32) -> Vec<(String, String)> {
        ws.files(stage, attempt)
            .values()
            .map(|f| (f.path.to_string(), f.content.to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    }

    fn ok(
        ws: &mut Workspace,
        id: &str,
        tool: &str,
        args: &str,
        stage: Stage,
        attempt: u32,
    ) -> ToolOutcome {
        let o = ws.apply(id, tool, args, stage, attempt);
        assert!(!o.is_error, "{tool} {args}: {}", o.result_text);
        o
    }

    fn err(ws: &mut Workspace, id: &str, tool: &str, args: &str) -> String {
        let before = ws.file_rows().cloned().collect::<Vec<_>>();
        let o = ws.apply(id, tool, args, DEV, 1);
        assert!(o.is_error, "{tool} {args} should fail: {}", o.result_text);
        assert_eq!(o.change, None);
        assert_eq!(
            ws.file_rows().cloned().collect::<Vec<_>>(),
            before,
            "an error changed files"
        );
        o.result_text
    }

    #[test]
    fn a_write_is_a_versioned_row_attributed_to_its_stage_attempt_and_call() {
        let mut ws = Workspace::new();
        let o = ok(
            &mut ws,
            "c1",
            "write_file",
            &write("./src/main.rs", "fn main() {}"),
            DEV,
            2,
        );
        assert_eq!(o.result_text, "Wrote src/main.rs (12 bytes, new file).");
        let row = FileVersion {
            version: 1,
            path: "src/main.rs".into(),
            stage: DEV,
            attempt: 2,
            call_id: "c1".into(),
            content: Some("fn main() {}".into()),
        };
        assert_eq!(o.change, Some(row.clone()));
        let rec = o.record.unwrap();
        assert_eq!(
            (
                rec.call_id.as_str(),
                rec.tool.as_str(),
                rec.version,
                rec.is_error
            ),
            ("c1", "write_file", Some(1), false)
        );
        assert_eq!(ws.file_rows().collect::<Vec<_>>(), [&row]);
        let o = ok(
            &mut ws,
            "c2",
            "write_file",
            &write("src/main.rs", "fn main() { }"),
            DEV,
            2,
        );
        assert_eq!(
            o.result_text,
            "Wrote src/main.rs (13 bytes, replacing 12 bytes)."
        );
        assert_eq!(o.change.unwrap().version, 2);
        assert_eq!(
            seen(&ws, DEV, 2),
            pairs(&[("src/main.rs", "fn main() { }")])
        );
    }

    #[test]
    fn a_read_is_recorded_as_a_digest_and_a_repeat_reads_again() {
        let mut ws = Workspace::new();
        let big = "z".repeat(200_000);
        ok(&mut ws, "w1", "write_file", &write("big.txt", &big), DEV, 1);
        let first = ok(&mut ws, "r1", "read_file", &path("./big.txt"), DEV, 1);
        assert_eq!(first.result_text, big);
        let rec = first.record.unwrap();
        let StoredResult::Digest { bytes, args, .. } = &rec.result else {
            panic!("a read keeps its digest, not its answer: {:?}", rec.result)
        };
        assert_eq!((*bytes, args.as_str()), (200_000, r#"{"path":"big.txt"}"#));
        assert!(format!("{rec:?}").len() < 400, "the record is small");
        // Repeated (whatever arguments come with the id): the same answer, word for word.
        let again = ws.apply("r1", "read_file", "{}", DEV, 1);
        assert!(again.repeated() && !again.is_error);
        assert!(rec.result.matches(&again.result_text));
        assert_eq!(again.result_text, big);
        // After a write to the file the repeat answers what it holds now, and says so.
        ok(
            &mut ws,
            "w2",
            "write_file",
            &write("big.txt", "new"),
            DEV,
            1,
        );
        let changed = ws.apply("r1", "read_file", "{}", DEV, 1);
        assert_eq!(changed.result_text, "new");
        assert!(!rec.result.matches(&changed.result_text));
        // Writes and errors keep their answer: it is a line.
        let w = ws.call("w2").unwrap();
        assert_eq!(
            w.result,
            StoredResult::Text("Wrote big.txt (3 bytes, replacing 200000 bytes).".into())
        );
        let e = ws.apply("r2", "read_file", &path("nope.txt"), DEV, 1);
        assert!(
            matches!(e.record.unwrap().result, StoredResult::Text(t) if t.contains("nope.txt"))
        );
    }

    #[test]
    fn reading_returns_the_content_and_listing_shows_every_file_with_its_size() {
        let mut ws = Workspace::new();
        assert_eq!(
            ok(&mut ws, "l0", "list_files", "{}", DEV, 1).result_text,
            "The project has no files yet."
        );
        ok(
            &mut ws,
            "w1",
            "write_file",
            &write("b.txt", "héllo"),
            DEV,
            1,
        );
        ok(&mut ws, "w2", "write_file", &write("a/empty", ""), DEV, 1);
        assert_eq!(
            ok(&mut ws, "r1", "read_file", &path("b.txt"), DEV, 1).result_text,
            "héllo"
        );
        assert_eq!(
            ok(&mut ws, "r2", "read_file", &path("a/empty"), DEV, 1).result_text,
            "(a/empty is empty.)"
        );
        let o = ok(&mut ws, "l1", "list_files", "", DEV, 1);
        assert_eq!(
            o.result_text,
            "2 files, 6 bytes in all:\na/empty (0 bytes)\nb.txt (6 bytes)"
        );
        assert_eq!((o.change, o.record.unwrap().version), (None, None));
    }

    #[test]
    fn deleting_writes_a_tombstone_row_and_the_file_is_gone() {
        let mut ws = Workspace::new();
        ok(&mut ws, "w", "write_file", &write("a.md", "x"), DEV, 1);
        let o = ok(&mut ws, "d", "delete_file", &path("a.md"), DEV, 1);
        assert_eq!(o.result_text, "Deleted a.md.");
        assert_eq!(o.change.as_ref().unwrap().content, None);
        assert!(seen(&ws, DEV, 1).is_empty());
        assert!(err(&mut ws, "r", "read_file", &path("a.md")).contains("There is no file a.md"));
        // Written again after the delete: a new version.
        assert_eq!(
            ok(&mut ws, "w2", "write_file", &write("a.md", "y"), DEV, 1)
                .change
                .unwrap()
                .version,
            3
        );
    }

    #[test]
    fn the_same_call_id_twice_gives_the_first_outcome_and_changes_nothing() {
        let mut ws = Workspace::new();
        let first = ok(&mut ws, "c", "write_file", &write("a", "1"), DEV, 1);
        let snapshot = ws.clone();
        // Even with other arguments, another tool or another attempt: the call is done.
        for (tool, args, attempt) in [
            ("write_file", write("a", "2"), 1),
            ("delete_file", path("a"), 1),
            ("write_file", write("b", "3"), 2),
        ] {
            let again = ws.apply("c", tool, &args, DEV, attempt);
            assert!(again.repeated());
            assert_eq!(
                (again.result_text.as_str(), again.is_error),
                (first.result_text.as_str(), false)
            );
            assert_eq!((again.change, again.record), (None, None));
            assert_eq!(ws, snapshot);
        }
        // An error is answered once too.
        let e = ws.apply("bad", "nope", "{}", DEV, 1);
        let snapshot = ws.clone();
        let again = ws.apply("bad", "write_file", &write("z", "z"), DEV, 1);
        assert_eq!((again.result_text, again.is_error), (e.result_text, true));
        assert_eq!(ws, snapshot);
    }

    #[test]
    fn bad_arguments_an_unknown_tool_and_bad_paths_are_errors_in_words_and_change_nothing() {
        let mut ws = Workspace::new();
        ok(&mut ws, "w", "write_file", &write("keep", "k"), DEV, 1);
        let e = err(
            &mut ws,
            "1",
            "write_file",
            "{\"path\": \"a\", \"content\": ",
        );
        assert!(
            e.contains("not valid JSON") && e.contains("write_file"),
            "{e}"
        );
        let e = err(&mut ws, "2", "write_file", &path("a"));
        assert!(e.contains("missing field `content`"), "{e}");
        let e = err(&mut ws, "3", "run_shell", "{}");
        assert!(
            e.contains("no tool named \"run_shell\"")
                && e.contains("write_file, read_file, list_files, delete_file"),
            "{e}"
        );
        for bad in [
            "../etc/passwd",
            "/abs",
            "C:\\x",
            "a//b",
            "CON.txt",
            ".git/config",
            "",
        ] {
            let e = err(&mut ws, &format!("p{bad}"), "write_file", &write(bad, "x"));
            assert!(e.starts_with("The path"), "{bad}: {e}");
        }
        assert_eq!(seen(&ws, DEV, 1), pairs(&[("keep", "k")]));
    }

    #[test]
    fn reading_or_deleting_a_missing_file_points_to_list_files() {
        let mut ws = Workspace::new();
        ok(&mut ws, "w", "write_file", &write("src/a.rs", "x"), DEV, 1);
        assert!(err(&mut ws, "1", "read_file", &path("nope")).contains("list_files"));
        assert!(err(&mut ws, "2", "delete_file", &path("nope")).contains("There is no file nope"));
        assert!(err(&mut ws, "3", "read_file", &path("src"))
            .contains("src is a folder holding 1 files"));
    }

    #[test]
    fn writing_the_same_content_again_is_not_a_write() {
        let mut ws = Workspace::new();
        ok(&mut ws, "1", "write_file", &write("a", "same"), DEV, 1);
        let o = ok(&mut ws, "2", "write_file", &write("a", "same"), DEV, 1);
        // As docs/protocol.md ("Project files") says: no row, no version, not an error.
        assert_eq!(
            o.result_text,
            "a already has exactly this content (4 bytes); nothing changed."
        );
        assert_eq!(o.change, None);
        assert_eq!(ws.file_rows().count(), 1);
        let o = ok(&mut ws, "3", "write_file", &write("a", "new"), DEV, 1);
        assert_eq!(
            o.change.unwrap().version,
            2,
            "the identical write took no version"
        );
    }

    #[test]
    fn a_file_over_the_size_cap_is_refused() {
        let mut ws = Workspace::new();
        ok(
            &mut ws,
            "1",
            "write_file",
            &write("max", &"x".repeat(MAX_FILE_BYTES)),
            DEV,
            1,
        );
        let e = err(
            &mut ws,
            "2",
            "write_file",
            &write("big", &"x".repeat(MAX_FILE_BYTES + 1)),
        );
        assert!(e.contains("Split it"), "{e}");
    }

    #[test]
    fn the_file_count_cap_holds_and_replacing_a_file_is_still_allowed_at_the_cap() {
        let mut ws = Workspace::new();
        for i in 0..MAX_FILES {
            // Two stages, so that no attempt goes over its calls cap.
            let stage = [Stage::Analyst, Stage::Architect][i % 2];
            ok(
                &mut ws,
                &format!("w{i}"),
                "write_file",
                &write(&format!("f/{i}"), "x"),
                stage,
                1,
            );
        }
        assert_eq!(ws.files(DEV, 1).len(), MAX_FILES);
        // The cap counts earlier stages' files too.
        let e = err(&mut ws, "one-more", "write_file", &write("new", "x"));
        assert!(e.contains("200 files"), "{e}");
        ok(&mut ws, "replace", "write_file", &write("f/0", "y"), DEV, 1);
        ok(&mut ws, "del", "delete_file", &path("f/1"), DEV, 1);
        ok(
            &mut ws,
            "now-fits",
            "write_file",
            &write("new", "x"),
            DEV,
            1,
        );
    }

    #[test]
    fn the_workspace_byte_cap_counts_what_a_replacement_frees() {
        let mut ws = Workspace::new();
        let full = "x".repeat(MAX_FILE_BYTES);
        let n = MAX_WORKSPACE_BYTES / MAX_FILE_BYTES;
        for i in 0..n {
            ok(
                &mut ws,
                &format!("w{i}"),
                "write_file",
                &write(&format!("{i}"), &full),
                DEV,
                1,
            );
        }
        let e = err(&mut ws, "over", "write_file", &write("one-byte", "x"));
        assert!(e.contains("the most is 4194304"), "{e}");
        // Replacing a file with a smaller one is fine, and frees room.
        ok(
            &mut ws,
            "shrink",
            "write_file",
            &write("0", &full[1..]),
            DEV,
            1,
        );
        ok(
            &mut ws,
            "fits",
            "write_file",
            &write("one-byte", "x"),
            DEV,
            1,
        );
    }

    #[test]
    fn paths_that_differ_only_in_case_are_refused() {
        let mut ws = Workspace::new();
        ok(&mut ws, "1", "write_file", &write("README.md", "a"), DEV, 1);
        let e = err(&mut ws, "2", "write_file", &write("readme.md", "b"));
        assert!(e.contains("Write to README.md instead"), "{e}");
    }

    #[test]
    fn paths_that_differ_only_in_the_case_of_any_script_are_refused() {
        let mut ws = Workspace::new();
        ok(&mut ws, "1", "write_file", &write("Élan.md", "a"), DEV, 1);
        let e = err(&mut ws, "2", "write_file", &write("élan.md", "b"));
        assert!(e.contains("Write to Élan.md instead"), "{e}");
        let e = err(&mut ws, "3", "write_file", &write("ÉLAN.MD", "b"));
        assert!(e.contains("differs from it only in case"), "{e}");
        // A file and a folder collide in any case too.
        ok(&mut ws, "4", "write_file", &write("Docs", "a"), DEV, 1);
        let e = err(&mut ws, "5", "write_file", &write("docs/x.md", "b"));
        assert!(e.contains("Docs is a file"), "{e}");
        ok(&mut ws, "6", "write_file", &write("Src/a.rs", "a"), DEV, 1);
        let e = err(&mut ws, "7", "write_file", &write("src", "b"));
        assert!(e.contains("holds Src/a.rs"), "{e}");
    }

    #[test]
    fn a_decomposed_path_names_the_same_file_as_the_composed_one() {
        let mut ws = Workspace::new();
        let nfc = "caf\u{e9}.txt";
        let nfd = "cafe\u{301}.txt";
        ok(&mut ws, "1", "write_file", &write(nfc, "one"), DEV, 1);
        let o = ok(&mut ws, "2", "write_file", &write(nfd, "two"), DEV, 1);
        assert!(
            o.result_text.contains("replacing 3 bytes"),
            "{}",
            o.result_text
        );
        assert_eq!(seen(&ws, DEV, 1), pairs(&[(nfc, "two")]));
        let o = ok(&mut ws, "3", "read_file", &path(nfd), DEV, 1);
        assert_eq!(o.result_text, "two");
        // A row stored decomposed before the rule loads, and a new composed name collides.
        let row = FileVersion {
            version: 1,
            path: nfd.into(),
            stage: DEV,
            attempt: 1,
            call_id: "old".into(),
            content: Some("x".into()),
        };
        let mut old = Workspace::from_rows([row], []).unwrap();
        let e = err(&mut old, "4", "write_file", &write(nfc, "y"));
        assert!(e.contains("only in case"), "{e}");
        // So does one with a character the rules now refuse.
        let row = FileVersion {
            path: "a\u{200b}b".into(),
            ..old.file_rows().next().unwrap().clone()
        };
        assert!(Workspace::from_rows([row], []).is_ok());
    }

    #[test]
    fn a_path_cannot_be_both_a_file_and_a_folder() {
        let mut ws = Workspace::new();
        ok(&mut ws, "1", "write_file", &write("a/b", "x"), DEV, 1);
        let e = err(&mut ws, "2", "write_file", &write("a", "y"));
        assert!(e.contains("a is a folder (it holds a/b)"), "{e}");
        let e = err(&mut ws, "3", "write_file", &write("a/b/c", "y"));
        assert!(e.contains("a/b is a file"), "{e}");
        ok(&mut ws, "4", "write_file", &write("a/bc", "y"), DEV, 1);
    }

    #[test]
    fn a_stage_sees_the_earlier_stages_and_its_own_attempt_only() {
        let mut ws = Workspace::new();
        ok(
            &mut ws,
            "a",
            "write_file",
            &write("spec.md", "analyst"),
            Stage::Analyst,
            1,
        );
        ok(
            &mut ws,
            "d1",
            "write_file",
            &write("main.rs", "dev 1"),
            DEV,
            1,
        );
        ok(
            &mut ws,
            "d2",
            "write_file",
            &write("other.rs", "dev 2"),
            DEV,
            2,
        );
        ok(
            &mut ws,
            "t",
            "write_file",
            &write("test.rs", "tester"),
            Stage::Tester,
            1,
        );
        assert_eq!(
            seen(&ws, Stage::Analyst, 1),
            pairs(&[("spec.md", "analyst")])
        );
        assert_eq!(
            seen(&ws, DEV, 1),
            pairs(&[("main.rs", "dev 1"), ("spec.md", "analyst")])
        );
        assert_eq!(
            seen(&ws, DEV, 2),
            pairs(&[("other.rs", "dev 2"), ("spec.md", "analyst")])
        );
        // A stage with no rows of its own sees the earlier stages.
        assert_eq!(
            seen(&ws, Stage::Architect, 1),
            pairs(&[("spec.md", "analyst")])
        );
        // The read tools answer from the same view.
        assert!(err_at(&mut ws, "r", &path("main.rs"), DEV, 2).contains("There is no file"));
    }

    fn err_at(ws: &mut Workspace, id: &str, args: &str, stage: Stage, attempt: u32) -> String {
        let o = ws.apply(id, "read_file", args, stage, attempt);
        assert!(o.is_error);
        o.result_text
    }

    #[test]
    fn a_later_stage_may_change_or_delete_an_earlier_file_without_touching_the_earlier_view() {
        let mut ws = Workspace::new();
        ok(
            &mut ws,
            "a",
            "write_file",
            &write("plan.md", "v1"),
            Stage::Architect,
            1,
        );
        ok(&mut ws, "d", "delete_file", &path("plan.md"), DEV, 1);
        ok(
            &mut ws,
            "t",
            "write_file",
            &write("plan.md", "v3"),
            Stage::Tester,
            1,
        );
        assert_eq!(seen(&ws, Stage::Architect, 1), pairs(&[("plan.md", "v1")]));
        assert!(seen(&ws, DEV, 1).is_empty());
        assert_eq!(seen(&ws, Stage::Tester, 1), pairs(&[("plan.md", "v3")]));
    }

    #[test]
    fn discarding_an_attempt_drops_its_writes_and_calls_so_the_rerun_starts_clean() {
        let mut ws = Workspace::new();
        ok(
            &mut ws,
            "a",
            "write_file",
            &write("spec.md", "s"),
            Stage::Analyst,
            1,
        );
        ok(
            &mut ws,
            "d1",
            "write_file",
            &write("main.rs", "bad"),
            DEV,
            1,
        );
        ok(&mut ws, "d2", "delete_file", &path("spec.md"), DEV, 1);
        assert_eq!(ws.discard_attempt(DEV, 1), 2);
        assert!(ws.call("d1").is_none() && ws.call("a").is_some());
        // The rerun (attempt 2) sees only the earlier stage: the deleted file is back.
        assert_eq!(seen(&ws, DEV, 2), pairs(&[("spec.md", "s")]));
        ok(
            &mut ws,
            "d3",
            "write_file",
            &write("main.rs", "good"),
            DEV,
            2,
        );
        assert_eq!(
            seen(&ws, DEV, 2),
            pairs(&[("main.rs", "good"), ("spec.md", "s")])
        );
        // Versions keep growing: no number is reused in memory.
        assert_eq!(ws.call("d3").unwrap().version, Some(4));
        assert_eq!(
            ws.discard_attempt(DEV, 1),
            0,
            "discarding twice is harmless"
        );
    }

    #[test]
    fn an_earlier_stage_left_with_two_attempts_contributes_only_its_newest() {
        let mut ws = Workspace::new();
        ok(
            &mut ws,
            "a1",
            "write_file",
            &write("notes", "first"),
            Stage::Analyst,
            1,
        );
        ok(
            &mut ws,
            "a1b",
            "write_file",
            &write("old-only", "x"),
            Stage::Analyst,
            1,
        );
        ok(
            &mut ws,
            "a2",
            "write_file",
            &write("NOTES", "second"),
            Stage::Analyst,
            2,
        );
        // Not discarded by mistake: still no mixture of the two attempts.
        assert_eq!(seen(&ws, DEV, 1), pairs(&[("NOTES", "second")]));
    }

    #[test]
    fn discarding_from_a_stage_drops_it_and_every_later_stage_and_frees_their_call_ids() {
        let mut ws = Workspace::new();
        ok(
            &mut ws,
            "a",
            "write_file",
            &write("spec.md", "s"),
            Stage::Architect,
            1,
        );
        ok(&mut ws, "d", "write_file", &write("app.js", "x"), DEV, 2);
        ok(
            &mut ws,
            "t",
            "write_file",
            &write("app.test.js", "t"),
            Stage::Tester,
            3,
        );
        assert!(ws.discard_from(DEV));
        let left: Vec<&str> = ws.latest().keys().copied().collect();
        assert_eq!(left, ["spec.md"]);
        assert!(ws.call("d").is_none() && ws.call("t").is_none() && ws.call("a").is_some());
        assert!(!ws.discard_from(DEV), "nothing left to drop");
        // The rerun's call may reuse an id: it is applied, not answered from the old record.
        ok(&mut ws, "d", "write_file", &write("app.js", "y"), DEV, 4);
        assert_eq!(
            seen(&ws, DEV, 4),
            pairs(&[("app.js", "y"), ("spec.md", "s")])
        );
    }

    #[test]
    fn the_history_cap_refuses_a_write_once_all_versions_together_would_pass_it() {
        let mut ws = Workspace::new();
        let big = "x".repeat(MAX_FILE_BYTES);
        let rounds = MAX_HISTORY_BYTES / MAX_FILE_BYTES;
        for i in 0..rounds {
            // The same file rewritten: the project stays small, the history grows.
            let content = format!("{i}{}", &big[1 + i.to_string().len()..]);
            ok(
                &mut ws,
                &format!("w{i}"),
                "write_file",
                &write("big.txt", &content),
                DEV,
                1,
            );
        }
        assert_eq!(ws.history_bytes(), rounds * (MAX_FILE_BYTES - 1));
        let e = err(&mut ws, "over", "write_file", &write("big.txt", &big));
        assert!(e.contains("history is full"), "{e}");
        assert_eq!(ws.file_rows().count(), rounds, "nothing written");
    }

    #[test]
    fn latest_is_what_the_newest_attempt_of_the_latest_stage_sees() {
        let mut ws = Workspace::new();
        assert!(ws.latest().is_empty());
        ok(
            &mut ws,
            "a",
            "write_file",
            &write("spec.md", "s"),
            Stage::Analyst,
            1,
        );
        ok(&mut ws, "d1", "write_file", &write("one", "1"), DEV, 1);
        ok(&mut ws, "d2", "write_file", &write("two", "2"), DEV, 2);
        let latest: Vec<&str> = ws.latest().keys().copied().collect();
        assert_eq!(latest, ["spec.md", "two"]);
        let zip = crate::workspace::zip_project(&ws.latest()).unwrap();
        assert_eq!(&zip[..2], b"PK");
    }

    #[test]
    fn an_attempt_may_make_a_bounded_number_of_calls() {
        let mut ws = Workspace::new();
        for i in 0..MAX_TOOL_CALLS_PER_ATTEMPT {
            ws.apply(&format!("c{i}"), "list_files", "{}", DEV, 1);
        }
        let e = err(&mut ws, "over", "list_files", "{}");
        assert!(e.contains("the most allowed in one attempt"), "{e}");
        const { assert!(MAX_TOOL_CALLS_PER_ATTEMPT >= MAX_TOOL_CALLS_PER_ROUND) };
        // Another attempt has its own count.
        ok(&mut ws, "fresh", "list_files", "{}", DEV, 2);
    }

    #[test]
    fn rebuilding_from_rows_gives_the_same_workspace_and_continues_the_versions() {
        let mut ws = Workspace::new();
        ok(
            &mut ws,
            "a",
            "write_file",
            &write("x", "1"),
            Stage::Analyst,
            1,
        );
        ok(&mut ws, "b", "write_file", &write("y", "2"), DEV, 1);
        ws.apply("c", "read_file", &path("missing"), DEV, 1);
        let mut files: Vec<FileVersion> = ws.file_rows().cloned().collect();
        files.reverse();
        let calls: Vec<CallRecord> = ws.call_rows().cloned().collect();
        let mut back = Workspace::from_rows(files, calls).unwrap();
        assert_eq!(back, ws);
        // Exactly-once survives the rebuild.
        assert!(back
            .apply("b", "write_file", &write("y", "other"), DEV, 1)
            .repeated());
        assert_eq!(
            ok(&mut back, "d", "write_file", &write("z", "3"), DEV, 1)
                .change
                .unwrap()
                .version,
            3
        );
    }

    #[test]
    fn rows_that_apply_could_not_have_made_are_refused() {
        let row = |version: u64, path: &str| FileVersion {
            version,
            path: path.into(),
            stage: DEV,
            attempt: 1,
            call_id: format!("c{version}"),
            content: Some(String::new()),
        };
        let call = |id: &str| CallRecord {
            call_id: id.into(),
            stage: DEV,
            attempt: 1,
            tool: "list_files".into(),
            result: StoredResult::Text(String::new()),
            is_error: false,
            version: None,
        };
        assert!(Workspace::from_rows([row(1, "a"), row(1, "b")], [])
            .unwrap_err()
            .contains("version 1"));
        assert!(Workspace::from_rows([row(1, "../a")], [])
            .unwrap_err()
            .contains("invalid path"));
        assert!(
            Workspace::from_rows([row(1, "./a")], []).is_err(),
            "rows hold normal forms only"
        );
        assert!(Workspace::from_rows([], [call("x"), call("x")])
            .unwrap_err()
            .contains("\"x\""));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write(u8, u8, usize),
        Delete(u8),
        Read(u8),
        List,
        Repeat(usize),
        /// The attempt is rejected: discarded, and the stage reruns.
        Reject,
        /// The attempt is approved: the next stage starts.
        Approve,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..6, 0u8..4, 0usize..3).prop_map(|(p, c, s)| Op::Write(p, c, s)),
            2 => (0u8..6).prop_map(Op::Delete),
            1 => (0u8..6).prop_map(Op::Read),
            1 => Just(Op::List),
            2 => any::<usize>().prop_map(Op::Repeat),
            1 => Just(Op::Reject),
            2 => Just(Op::Approve),
        ]
    }

    const PATHS: [&str; 6] = ["a", "A", "a/b", "src/main.rs", "../x", "b"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Driven as the session drives it (calls at the current stage and attempt, rejected
        /// attempts discarded): every view stays within the caps with only normal, portable
        /// paths; repeats change nothing; errors write nothing; the rows rebuild the model; a
        /// rejected attempt leaves no trace.
        #[test]
        fn any_run_of_calls_keeps_the_invariants(ops in proptest::collection::vec(op(), 0..48)) {
            let mut ws = Workspace::new();
            let mut ids: Vec<String> = Vec::new();
            let (mut stage, mut attempt) = (0usize, 1u32);
            for (i, op) in ops.into_iter().enumerate() {
                let st = Stage::ALL[stage];
                let id = format!("call{i}");
                let before = ws.clone();
                let outcome = match op {
                    Op::Write(p, c, size) => {
                        let content = ["", "x", "yy", "é🦀"][c as usize].repeat([1, 10, 1000][size]);
                        ws.apply(&id, "write_file", &write(PATHS[p as usize], &content), st, attempt)
                    }
                    Op::Delete(p) => ws.apply(&id, "delete_file", &path(PATHS[p as usize]), st, attempt),
                    Op::Read(p) => ws.apply(&id, "read_file", &path(PATHS[p as usize]), st, attempt),
                    Op::List => ws.apply(&id, "list_files", "{}", st, attempt),
                    Op::Repeat(k) => {
                        if let Some(first) = ids.get(k % ids.len().max(1)).and_then(|id| ws.call(id)).cloned() {
                            let again = ws.apply(&first.call_id, "write_file", &write("zzz", "z"), st, attempt);
                            prop_assert!(again.repeated());
                            match &first.result {
                                StoredResult::Text(t) => prop_assert_eq!(&again.result_text, t),
                                // A read reads again: what a fresh read of the same thing answers now.
                                StoredResult::Digest { args, .. } => {
                                    let fresh = ws.clone().apply("fresh", &first.tool, args, first.stage, first.attempt);
                                    prop_assert_eq!(&again.result_text, &fresh.result_text);
                                }
                            }
                            prop_assert_eq!(&ws, &before);
                        }
                        continue;
                    }
                    Op::Reject => {
                        ws.discard_attempt(st, attempt);
                        attempt += 1;
                        // The rerun sees exactly what the previous stage left.
                        let want = match stage.checked_sub(1).map(|p| Stage::ALL[p]) {
                            Some(prev) => {
                                let a = ws.file_rows().filter(|v| v.stage == prev).map(|v| v.attempt).max().unwrap_or(0);
                                seen(&ws, prev, a)
                            }
                            None => Vec::new(),
                        };
                        prop_assert_eq!(seen(&ws, st, attempt), want);
                        continue;
                    }
                    Op::Approve => {
                        if stage + 1 < Stage::ALL.len() {
                            stage += 1;
                            attempt = 1;
                        }
                        continue;
                    }
                };
                ids.push(id);
                if outcome.change.is_none() {
                    prop_assert!(ws.file_rows().eq(before.file_rows()));
                } else {
                    prop_assert!(!outcome.is_error);
                }
                for s in Stage::ALL {
                    for a in 1..=attempt {
                        let view = ws.files(s, a);
                        prop_assert!(view.len() <= MAX_FILES);
                        prop_assert!(view.values().map(|f| f.content.len()).sum::<usize>() <= MAX_WORKSPACE_BYTES);
                        for p in view.keys() {
                            let normal = normalize(p);
                            prop_assert_eq!(normal.as_deref(), Ok(*p));
                            let lower = p.to_ascii_lowercase();
                            prop_assert_eq!(view.keys().filter(|q| q.to_ascii_lowercase() == lower).count(), 1);
                            let folder = format!("{p}/");
                            prop_assert!(!view.keys().any(|q| q.starts_with(&folder)));
                        }
                    }
                }
            }
            let back = Workspace::from_rows(ws.file_rows().cloned(), ws.call_rows().cloned()).unwrap();
            for s in Stage::ALL {
                for a in 1..=attempt {
                    prop_assert_eq!(back.files(s, a), ws.files(s, a));
                }
            }
            prop_assert!(back.file_rows().eq(ws.file_rows()));
            prop_assert!(back.call_rows().eq(ws.call_rows()));
        }
    }
}
