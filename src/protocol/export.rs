//! `GET …/export.jsonl`: the whole session as JSON Lines, read from SQLite page by page as
//! its reader takes it (so the runtime never holds the whole file), and never more than
//! [`EXPORT_MAX_BYTES`] as sent. No I/O here: [`Export::next`] says what to read next, the
//! edge reads it, and [`Export::take`] turns the rows into the next chunk of lines.
//!
//! Lines, in order: one `session` line; every kept `event`, in seq order; every kept
//! `artifact` version, stage by stage, oldest first; every kept `file` version, in version
//! order. When the export is cut, one last line says so and why, and nothing follows it:
//!
//! | `reason` | when |
//! |---|---|
//! | `too_large` | the next line would pass [`EXPORT_MAX_BYTES`] |
//! | `log_trimmed` | the session trimmed its log while a slow reader was still reading it |
//! | `storage_error` | a page could not be read |
//!
//! Why the bound is in bytes as sent: JSON escapes a control character as six bytes, so a
//! project of U+0001 characters within its 16 MiB of kept versions exported as 99 MiB when the
//! bound was counted in stored text. Every documented bound of ordinary text (the log's 4 MiB,
//! 40 artifact versions of 64 KiB, 16 MiB of file versions: ≈ 24.5 MiB) fits with room for
//! the escapes of Markdown and code.

use serde_json::json;

use super::view;
use super::Stage;

/// The most bytes an export sends, its last line included.
pub const EXPORT_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Events read per page (each at most a frame, ≤ 1 MiB; usually far less).
pub const EVENTS_PER_PAGE: usize = 200;
/// Artifact versions (≤ 64 KiB each) and file versions (≤ 256 KiB each) read per page.
pub const ROWS_PER_PAGE: usize = 4;
/// Room kept for the `cut` line, so that it fits in the bound too.
const CUT_LINE_ROOM: u64 = 512;

/// What the edge reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Events with `from <= seq <= to`, in order, at most `limit`.
    Events { from: u64, to: u64, limit: usize },
    /// `stage`'s artifact versions after `after`, in order, at most `limit`.
    Artifacts {
        stage: Stage,
        after: u32,
        limit: usize,
    },
    /// File versions after `after`, in order, at most `limit`.
    Files { after: u64, limit: usize },
    /// The export is complete.
    Done,
}

/// One kept artifact version.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRow {
    pub version: u32,
    pub created_at: u64,
    pub feedback: Option<String>,
    pub content: String,
}

/// One kept file version (`content` is `None` for a delete).
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub version: u64,
    pub path: String,
    pub stage: String,
    pub attempt: u32,
    pub content: Option<String>,
}

/// What the edge read, for the [`Read`] it was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    /// `(seq, stored event JSON)`.
    Events(Vec<(u64, String)>),
    Artifacts(Vec<ArtifactRow>),
    Files(Vec<FileRow>),
    /// The read failed (the export ends with a `storage_error` line).
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Events { next: u64 },
    Artifacts { stage: usize, after: u32 },
    Files { after: u64 },
    Done,
}

/// One export in progress.
#[derive(Debug, Clone)]
pub struct Export {
    part: Part,
    newest: u64,
    sent: u64,
    /// A view's export: the session id is replaced by the view key in every line.
    redact: Option<(String, String)>,
}

impl Export {
    /// An export of a log that holds `oldest..=newest` (`newest` 0: no events), whose first
    /// line is `head` (the `session` line, JSON without its newline). Returns the export and
    /// its first chunk.
    pub fn new(
        head: &str,
        oldest: u64,
        newest: u64,
        redact: Option<(String, String)>,
    ) -> (Export, String) {
        let part = if newest == 0 {
            Part::Artifacts { stage: 0, after: 0 }
        } else {
            Part::Events {
                next: oldest.max(1),
            }
        };
        let mut e = Export {
            part,
            newest,
            sent: 0,
            redact,
        };
        let mut out = String::new();
        // The session line is small (the state is bounded at 64 KiB): it always fits.
        e.push(&mut out, head);
        e.sent += out.len() as u64;
        (e, out)
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn next(&self) -> Read {
        match self.part {
            Part::Events { next } => Read::Events {
                from: next,
                to: self.newest,
                limit: EVENTS_PER_PAGE,
            },
            Part::Artifacts { stage, after } => Read::Artifacts {
                stage: Stage::ALL[stage],
                after,
                limit: ROWS_PER_PAGE,
            },
            Part::Files { after } => Read::Files {
                after,
                limit: ROWS_PER_PAGE,
            },
            Part::Done => Read::Done,
        }
    }

    /// The lines for the rows of the last [`Read`] (possibly none: an empty page moves on to
    /// the next part).
    pub fn take(&mut self, rows: Rows) -> String {
        let mut out = String::new();
        match (self.part, rows) {
            (_, Rows::Failed(why)) => self.cut(&mut out, "storage_error", &why),
            (Part::Events { next }, Rows::Events(rows)) => {
                let mut next = next;
                for (seq, json) in &rows {
                    if *seq != next {
                        let why = format!("events from seq {next} were trimmed while reading");
                        self.cut(&mut out, "log_trimmed", &why);
                        return self.sent_chunk(out);
                    }
                    // Stored events are JSON already: wrap them without re-parsing.
                    let line = format!("{{\"kind\":\"event\",\"event\":{json}}}");
                    if !self.fits(&mut out, &line) {
                        return self.sent_chunk(out);
                    }
                    next = seq + 1;
                }
                self.part = if rows.is_empty() || next > self.newest {
                    Part::Artifacts { stage: 0, after: 0 }
                } else {
                    Part::Events { next }
                };
            }
            (Part::Artifacts { stage, after }, Rows::Artifacts(rows)) => {
                let mut after = after;
                for r in &rows {
                    let line = json!({"kind": "artifact", "stage": Stage::ALL[stage].name(),
                        "version": r.version, "createdAt": r.created_at,
                        "feedback": r.feedback, "content": r.content})
                    .to_string();
                    if !self.fits(&mut out, &line) {
                        return self.sent_chunk(out);
                    }
                    after = r.version;
                }
                self.part = match (rows.is_empty(), stage + 1 < Stage::ALL.len()) {
                    (false, _) => Part::Artifacts { stage, after },
                    (true, true) => Part::Artifacts {
                        stage: stage + 1,
                        after: 0,
                    },
                    (true, false) => Part::Files { after: 0 },
                };
            }
            (Part::Files { after }, Rows::Files(rows)) => {
                let mut after = after;
                for f in &rows {
                    let line = json!({"kind": "file", "path": f.path, "version": f.version,
                        "stage": f.stage, "attempt": f.attempt, "deleted": f.content.is_none(),
                        "content": f.content})
                    .to_string();
                    if !self.fits(&mut out, &line) {
                        return self.sent_chunk(out);
                    }
                    after = f.version;
                }
                self.part = if rows.is_empty() {
                    Part::Done
                } else {
                    Part::Files { after }
                };
            }
            // Rows of another part than asked (an edge bug): end cleanly rather than loop.
            _ => self.cut(&mut out, "storage_error", "rows of another part than asked"),
        }
        self.sent_chunk(out)
    }

    fn sent_chunk(&mut self, out: String) -> String {
        self.sent += out.len() as u64;
        out
    }

    /// Adds `line` to `out` when it fits in the bound (room kept for a cut line); else adds
    /// the `too_large` cut line and ends the export.
    fn fits(&mut self, out: &mut String, line: &str) -> bool {
        let line = self.redacted(line);
        let after = self.sent + (out.len() + line.len() + 1) as u64;
        if after + CUT_LINE_ROOM > EXPORT_MAX_BYTES {
            let why = format!(
                "the export reached its bound of {EXPORT_MAX_BYTES} bytes; what follows was \
                 left out (the project's files: project.zip; the events: GET /events)"
            );
            self.cut(out, "too_large", &why);
            return false;
        }
        out.push_str(&line);
        out.push('\n');
        true
    }

    fn push(&mut self, out: &mut String, line: &str) {
        out.push_str(&self.redacted(line));
        out.push('\n');
    }

    fn redacted<'a>(&self, line: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.redact {
            Some((session, key)) => view::redact(line, session, key),
            None => std::borrow::Cow::Borrowed(line),
        }
    }

    fn cut(&mut self, out: &mut String, reason: &str, message: &str) {
        let line = json!({"kind": "cut", "reason": reason, "bytes": self.sent + out.len() as u64,
            "message": message})
        .to_string();
        self.push(out, &line);
        self.part = Part::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Runs an export over in-memory tables, as the edge does over SQLite.
    fn run(
        events: &[(u64, String)],
        artifacts: &[(Stage, ArtifactRow)],
        files: &[FileRow],
        redact: Option<(String, String)>,
    ) -> String {
        let oldest = events.first().map_or(0, |e| e.0);
        let newest = events.last().map_or(0, |e| e.0);
        let (mut ex, mut out) =
            Export::new(r#"{"kind":"session","id":"s1"}"#, oldest, newest, redact);
        loop {
            let rows = match ex.next() {
                Read::Done => break,
                Read::Events { from, to, limit } => Rows::Events(
                    events
                        .iter()
                        .filter(|e| e.0 >= from && e.0 <= to)
                        .take(limit)
                        .cloned()
                        .collect(),
                ),
                Read::Artifacts {
                    stage,
                    after,
                    limit,
                } => Rows::Artifacts(
                    artifacts
                        .iter()
                        .filter(|(s, a)| *s == stage && a.version > after)
                        .take(limit)
                        .map(|(_, a)| a.clone())
                        .collect(),
                ),
                Read::Files { after, limit } => Rows::Files(
                    files
                        .iter()
                        .filter(|f| f.version > after)
                        .take(limit)
                        .cloned()
                        .collect(),
                ),
            };
            let before = ex.sent();
            let chunk = ex.take(rows);
            assert_eq!(ex.sent(), before + chunk.len() as u64);
            out.push_str(&chunk);
        }
        assert_eq!(ex.sent(), out.len() as u64);
        out
    }

    fn lines(out: &str) -> Vec<Value> {
        assert!(out.ends_with('\n'));
        out.trim_end()
            .split('\n')
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    fn file(version: u64, content: &str) -> FileRow {
        FileRow {
            version,
            path: format!("f{version}.txt"),
            stage: "developer".into(),
            attempt: 1,
            content: Some(content.into()),
        }
    }

    fn events(n: u64) -> Vec<(u64, String)> {
        (1..=n)
            .map(|s| (s, format!(r#"{{"seq":{s},"type":"STATE_DELTA"}}"#)))
            .collect()
    }

    #[test]
    fn an_export_is_the_session_then_events_artifacts_and_files_in_order() {
        let art = |v| ArtifactRow {
            version: v,
            created_at: 5,
            feedback: None,
            content: format!("# v{v}"),
        };
        let arts = [
            (Stage::Tester, art(1)),
            (Stage::Analyst, art(1)),
            (Stage::Tester, art(2)),
        ];
        let mut deleted = file(9, "");
        deleted.content = None;
        let out = run(&events(450), &arts, &[file(3, "a"), deleted], None);
        let l = lines(&out);
        assert_eq!(l[0]["kind"], "session");
        let kinds: Vec<&str> = l.iter().map(|v| v["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "event").count(), 450);
        assert_eq!(l[450]["event"]["seq"], 450);
        let arts: Vec<(String, u64)> = l[451..454]
            .iter()
            .map(|v| {
                (
                    v["stage"].as_str().unwrap().into(),
                    v["version"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            arts,
            vec![
                ("analyst".into(), 1),
                ("tester".into(), 1),
                ("tester".into(), 2)
            ]
        );
        assert_eq!(l[454]["path"], "f3.txt");
        assert_eq!(
            (l[455]["deleted"].clone(), l[455]["content"].clone()),
            (json!(true), Value::Null)
        );
        assert_eq!(l.len(), 456, "no cut line when everything fits");
    }

    #[test]
    fn a_new_session_exports_one_line() {
        assert_eq!(lines(&run(&[], &[], &[], None)).len(), 1);
    }

    #[test]
    fn control_characters_count_as_the_six_bytes_they_are_sent_as() {
        // 16 MiB of U+0001 in 64 files of 256 KiB: 96 MiB escaped, cut at the bound.
        let body = "\u{1}".repeat(256 * 1024);
        let files: Vec<FileRow> = (1..=64).map(|v| file(v, &body)).collect();
        let out = run(&events(10), &[], &files, None);
        assert!(out.len() as u64 <= EXPORT_MAX_BYTES, "{}", out.len());
        let l = lines(&out);
        let last = l.last().unwrap();
        assert_eq!(
            (last["kind"].as_str(), last["reason"].as_str()),
            (Some("cut"), Some("too_large"))
        );
        let kept = l.iter().filter(|v| v["kind"] == "file").count();
        assert_eq!(kept, 21, "as many whole files as fit: 21 × 1.5 MiB");
        assert!(l
            .iter()
            .filter(|v| v["kind"] == "file")
            .all(|v| v["content"] == body.as_str()));
        assert_eq!(
            last["bytes"].as_u64().unwrap() + last.to_string().len() as u64 + 1,
            out.len() as u64
        );
    }

    #[test]
    fn every_documented_bound_of_plain_text_fits_whole() {
        // The log's 4 MiB, 40 artifact versions of 64 KiB, 16 MiB of file versions.
        let ev: Vec<(u64, String)> = (1..=2048)
            .map(|s| {
                (
                    s,
                    format!(r#"{{"seq":{s},"delta":"{}"}}"#, "x".repeat(2000)),
                )
            })
            .collect();
        let arts: Vec<(Stage, ArtifactRow)> = Stage::ALL
            .iter()
            .flat_map(|s| {
                (1..=8).map(|v| {
                    (
                        *s,
                        ArtifactRow {
                            version: v,
                            created_at: 1,
                            feedback: Some("More".into()),
                            content: "Some *Markdown*.\n".repeat(64 * 1024 / 17),
                        },
                    )
                })
            })
            .collect();
        let code = "fn main() { println!(\"hi\"); }\n".repeat(256 * 1024 / 32);
        let files: Vec<FileRow> = (1..=64).map(|v| file(v, &code)).collect();
        let l = lines(&run(&ev, &arts, &files, None));
        assert_ne!(l.last().unwrap()["kind"], "cut");
        assert_eq!(l.len(), 1 + 2048 + 40 + 64);
    }

    #[test]
    fn a_log_trimmed_while_reading_ends_the_export_with_a_cut_line() {
        let (mut ex, _) = Export::new("{}", 1, 500, None);
        let page = ex.take(Rows::Events(events(200)));
        assert_eq!(page.lines().count(), 200);
        assert_eq!(
            ex.next(),
            Read::Events {
                from: 201,
                to: 500,
                limit: EVENTS_PER_PAGE
            }
        );
        // The session trimmed up to 300 meanwhile.
        let rest: Vec<(u64, String)> = events(400).split_off(300);
        let chunk = ex.take(Rows::Events(rest));
        let l = lines(&chunk);
        assert_eq!(
            (l[0]["kind"].as_str(), l[0]["reason"].as_str()),
            (Some("cut"), Some("log_trimmed"))
        );
        assert_eq!(ex.next(), Read::Done);
    }

    #[test]
    fn a_failed_read_ends_the_export_with_a_cut_line() {
        let (mut ex, _) = Export::new("{}", 1, 5, None);
        let l = lines(&ex.take(Rows::Failed("disk".into())));
        assert_eq!(l[0]["reason"], "storage_error");
        assert_eq!(ex.next(), Read::Done);
    }

    #[test]
    fn a_view_export_carries_the_key_and_counts_its_length() {
        let sid = "0123456789abcdef0123456789abcdef";
        let key = format!("v{}", "a".repeat(96));
        let ev = vec![(1, format!(r#"{{"seq":1,"threadId":"{sid}"}}"#))];
        let (mut ex, head) = Export::new(
            &format!(r#"{{"kind":"session","id":"{sid}"}}"#),
            1,
            1,
            Some((sid.into(), key.clone())),
        );
        let out = head + &ex.take(Rows::Events(ev));
        assert!(!out.contains(sid));
        assert_eq!(out.matches(&key).count(), 2);
        assert_eq!(ex.sent(), out.len() as u64);
    }
}
