//! The session's SQLite tables (Durable Object storage). All calls are synchronous: writes
//! made without an `await` between them commit together, which keeps the log, the messages
//! and the persisted session consistent with each other.

use std::cell::Cell;
use std::collections::HashMap;

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::agents::Stage;
use crate::index::{Link, Owner};
use crate::protocol::event::{Message, MessageRole};
use crate::session::object::messages_kept;
use crate::session::schedule::{Rows, Timer};
use crate::workspace::{CallRecord, FileVersion, StoredResult, Workspace};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL, content TEXT NOT NULL,
  seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS message_chunks (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, delta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS artifacts (
  stage TEXT NOT NULL, version INTEGER NOT NULL, content TEXT NOT NULL, feedback TEXT,
  created_at INTEGER NOT NULL, PRIMARY KEY (stage, version));
CREATE TABLE IF NOT EXISTS schedule (timer TEXT PRIMARY KEY, due_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS views (hash TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS owner_links (
  name TEXT NOT NULL, link TEXT NOT NULL, added_at INTEGER NOT NULL, PRIMARY KEY (name, link));
CREATE TABLE IF NOT EXISTS files (
  version INTEGER PRIMARY KEY, path TEXT NOT NULL, stage TEXT NOT NULL, attempt INTEGER NOT NULL,
  call_id TEXT NOT NULL, content TEXT);
CREATE TABLE IF NOT EXISTS tool_calls (
  call_id TEXT PRIMARY KEY, stage TEXT NOT NULL, attempt INTEGER NOT NULL, tool TEXT NOT NULL,
  result TEXT NOT NULL, is_error INTEGER NOT NULL, version INTEGER, result_sha256 TEXT,
  result_bytes INTEGER, read_args TEXT);
";

pub(crate) struct Store {
    sql: SqlStorage,
    /// Rows written since this object loaded the store (what Durable Object SQLite bills);
    /// shown in the session's stats so benchmarks can count writes per event.
    rows_written: Cell<u64>,
}

#[derive(Deserialize)]
struct Val {
    value: String,
}

#[derive(Deserialize)]
struct Json {
    json: String,
}

#[derive(Deserialize)]
struct Num {
    n: Option<f64>,
}

#[derive(Deserialize)]
struct MsgRow {
    id: String,
    role: String,
    name: String,
    content: String,
}

#[derive(Deserialize, serde::Serialize)]
pub(crate) struct ArtifactRow {
    pub version: u32,
    pub content: String,
    pub feedback: Option<String>,
    #[serde(rename(serialize = "createdAt"))]
    pub created_at: f64,
}

/// An integer parameter (SQLite integers are i64).
pub(crate) fn int(n: u64) -> SqlStorageValue {
    SqlStorageValue::from(n as i64)
}

impl Store {
    /// Creates the tables: only for a new session (`/init`), so probing unknown ids writes
    /// nothing.
    pub fn create(sql: SqlStorage) -> worker::Result<Store> {
        sql.exec(SCHEMA, None)?;
        Ok(Store::with(sql))
    }

    fn with(sql: SqlStorage) -> Store {
        Store {
            sql,
            rows_written: Cell::new(0),
        }
    }

    /// Runs a statement that writes, counting the rows it wrote.
    fn write(&self, query: &str, params: Vec<SqlStorageValue>) -> worker::Result<()> {
        let cursor = self.sql.exec(query, params)?;
        self.rows_written
            .set(self.rows_written.get() + cursor.rows_written() as u64);
        Ok(())
    }

    pub fn rows_written(&self) -> u64 {
        self.rows_written.get()
    }

    /// The database's size on disk (what the session's bound is about).
    pub fn database_bytes(&self) -> u64 {
        self.sql.database_size() as u64
    }

    fn sum(&self, query: &str) -> worker::Result<u64> {
        let n: Num = self.sql.exec(query, None)?.one()?;
        Ok(n.n.unwrap_or(0.0) as u64)
    }

    /// Bytes of JSON in the event log.
    pub fn log_bytes(&self) -> worker::Result<u64> {
        self.sum("SELECT SUM(length(CAST(json AS BLOB))) AS n FROM events")
    }

    /// (messages, bytes of their text).
    pub fn message_totals(&self) -> worker::Result<(u64, u64)> {
        let count = self.sum("SELECT COUNT(*) AS n FROM messages")?;
        let bytes = self.sum(
            "SELECT (SELECT COALESCE(SUM(length(CAST(content AS BLOB))), 0) FROM messages) + \
             (SELECT COALESCE(SUM(length(CAST(delta AS BLOB))), 0) FROM message_chunks) AS n",
        )?;
        Ok((count, bytes))
    }

    /// Bytes of artifact text.
    pub fn artifact_bytes(&self) -> worker::Result<u64> {
        self.sum("SELECT SUM(length(CAST(content AS BLOB))) AS n FROM artifacts")
    }

    /// The first seq to keep so the log's newest events hold at most `budget` bytes.
    pub fn log_keep_from(&self, budget: u64) -> worker::Result<Option<u64>> {
        #[derive(Deserialize)]
        struct S {
            seq: f64,
        }
        let rows: Vec<S> = self
            .sql
            .exec(
                "SELECT seq FROM (SELECT seq, SUM(length(CAST(json AS BLOB))) \
                 OVER (ORDER BY seq DESC) AS tail FROM events) WHERE tail <= ? \
                 ORDER BY seq LIMIT 1",
                vec![int(budget)],
            )?
            .to_array()?;
        Ok(rows.first().map(|r| r.seq as u64))
    }

    /// Drops the oldest messages (and their text) until at most `max_count` remain holding at
    /// most `max_bytes` (which: [`messages_kept`]). Returns the (count, bytes) left.
    pub fn trim_messages(&self, max_count: u64, max_bytes: u64) -> worker::Result<(u64, u64)> {
        #[derive(Deserialize)]
        struct M {
            id: String,
            n: f64,
        }
        let sizes: Vec<M> = self
            .sql
            .exec(
                "SELECT m.id AS id, length(CAST(m.content AS BLOB)) + COALESCE(c.n, 0) AS n \
                 FROM messages m LEFT JOIN (SELECT id, SUM(length(CAST(delta AS BLOB))) AS n \
                 FROM message_chunks GROUP BY id) c ON c.id = m.id ORDER BY m.seq DESC",
                None,
            )?
            .to_array()?;
        let bytes: Vec<u64> = sizes.iter().map(|m| m.n as u64).collect();
        let (kept, totals) = messages_kept(&bytes, max_count, max_bytes);
        let drop = sizes
            .into_iter()
            .zip(kept)
            .filter(|(_, k)| !k)
            .map(|(m, _)| m.id);
        for id in drop {
            self.write(
                "DELETE FROM message_chunks WHERE id = ?",
                vec![id.clone().into()],
            )?;
            self.write("DELETE FROM messages WHERE id = ?", vec![id.into()])?;
        }
        Ok(totals)
    }

    /// Keeps the newest `keep` versions of a stage's artifact.
    pub fn trim_artifacts(&self, stage: Stage, newest: u32, keep: u32) -> worker::Result<()> {
        if newest > keep {
            self.write(
                "DELETE FROM artifacts WHERE stage = ? AND version <= ?",
                vec![stage.name().into(), int((newest - keep) as u64)],
            )?;
        }
        Ok(())
    }

    /// The view links (stored secret hash, created at), newest first.
    pub fn views(&self) -> worker::Result<Vec<(String, u64)>> {
        #[derive(Deserialize)]
        struct V {
            hash: String,
            created_at: f64,
        }
        let rows: Vec<V> = self
            .sql
            .exec(
                "SELECT hash, created_at FROM views ORDER BY created_at DESC, hash",
                None,
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|v| (v.hash, v.created_at as u64))
            .collect())
    }

    pub fn add_view(&self, hash: &str, created_at: u64) -> worker::Result<()> {
        self.write(
            "INSERT INTO views (hash, created_at) VALUES (?, ?)",
            vec![hash.into(), int(created_at)],
        )
    }

    pub fn has_view(&self, hash: &str) -> worker::Result<bool> {
        let rows: Vec<Num> = self
            .sql
            .exec(
                "SELECT COUNT(*) AS n FROM views WHERE hash = ?",
                vec![hash.into()],
            )?
            .to_array()?;
        Ok(rows.first().and_then(|r| r.n).unwrap_or(0.0) > 0.0)
    }

    /// Removes the view whose public id (hash prefix) is `id`; false if there is none.
    pub fn remove_view(&self, id: &str) -> worker::Result<bool> {
        let hash = self
            .views()?
            .into_iter()
            .map(|(h, _)| h)
            .find(|h| crate::protocol::view::view_id(h) == id);
        match hash {
            Some(h) => {
                self.write("DELETE FROM views WHERE hash = ?", vec![h.into()])?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes every table and row (the session is deleted or expired).
    pub fn wipe(&self) -> worker::Result<()> {
        for table in [
            "events",
            "messages",
            "message_chunks",
            "artifacts",
            "schedule",
            "views",
            "files",
            "tool_calls",
            "owners",
            "owner_links",
            "meta",
        ] {
            // `table` is one of our own constants, never input.
            self.sql
                .exec(&format!("DROP TABLE IF EXISTS {table}"), None)?;
        }
        Ok(())
    }

    /// The store of an existing session, or `None` if this object never held one.
    pub fn open_existing(sql: SqlStorage) -> worker::Result<Option<Store>> {
        #[derive(Deserialize)]
        struct Name {
            #[allow(dead_code)]
            name: String,
        }
        let found: Vec<Name> = sql
            .exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                None,
            )?
            .to_array()?;
        if found.is_empty() {
            return Ok(None);
        }
        // Tables added since the session was created.
        sql.exec(SCHEMA, None)?;
        // Columns too: a read's digest (issue 33) in place of its answer.
        #[derive(Deserialize)]
        struct Sql {
            sql: String,
        }
        let calls: Vec<Sql> = sql
            .exec(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'tool_calls'",
                None,
            )?
            .to_array()?;
        if calls.iter().any(|t| !t.sql.contains("result_sha256")) {
            sql.exec(
                "ALTER TABLE tool_calls ADD COLUMN result_sha256 TEXT; \
                 ALTER TABLE tool_calls ADD COLUMN result_bytes INTEGER; \
                 ALTER TABLE tool_calls ADD COLUMN read_args TEXT;",
                None,
            )?;
            // A read stored whole before: its size, an unknown digest, and no text; it reads
            // again as what the project holds now (its arguments were not kept: `list_files`
            // needs none, and a repeated `read_file` is told to read once more).
            sql.exec(
                "UPDATE tool_calls SET result_sha256 = '', \
                 result_bytes = length(CAST(result AS BLOB)), result = '', read_args = '{}' \
                 WHERE tool IN ('read_file', 'list_files') AND is_error = 0",
                None,
            )?;
        }
        // Owners kept before links were (issue 33): each came through the session id, and
        // which was the creator is not known.
        let old_owners: Vec<Name> = sql
            .exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'owners'",
                None,
            )?
            .to_array()?;
        if !old_owners.is_empty() {
            sql.exec(
                "INSERT OR IGNORE INTO owner_links (name, link, added_at) \
                 SELECT name, 'control', added_at FROM owners",
                None,
            )?;
            sql.exec("DROP TABLE owners", None)?;
        }
        Ok(Some(Store::with(sql)))
    }

    pub fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        let rows: Vec<Val> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.write(
            "INSERT INTO meta (key, value) VALUES (?, ?) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    pub fn clear_meta(&self, key: &str) -> worker::Result<()> {
        self.write("DELETE FROM meta WHERE key = ?", vec![key.into()])?;
        Ok(())
    }

    pub fn append_event(&self, seq: u64, json: &str) -> worker::Result<()> {
        self.write(
            "INSERT INTO events (seq, json) VALUES (?, ?)",
            vec![int(seq), json.into()],
        )?;
        Ok(())
    }

    /// (oldest, newest) seq in the log; (0, 0) when empty.
    pub fn bounds(&self) -> worker::Result<(u64, u64)> {
        #[derive(Deserialize)]
        struct B {
            lo: Option<f64>,
            hi: Option<f64>,
        }
        let b: B = self
            .sql
            .exec("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM events", None)?
            .one()?;
        Ok((b.lo.unwrap_or(0.0) as u64, b.hi.unwrap_or(0.0) as u64))
    }

    /// Logged frames with `from <= seq <= to`, at most `limit`, in order.
    pub fn events(&self, from: u64, to: u64, limit: usize) -> worker::Result<Vec<String>> {
        let rows: Vec<Json> = self
            .sql
            .exec(
                "SELECT json FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                vec![int(from), int(to), int(limit as u64)],
            )?
            .to_array()?;
        Ok(rows.into_iter().map(|r| r.json).collect())
    }

    /// Drops events with `seq < keep_from` (retention).
    pub fn trim_events(&self, keep_from: u64) -> worker::Result<()> {
        self.write("DELETE FROM events WHERE seq < ?", vec![int(keep_from)])
    }

    /// The session's timers (see [`crate::session::schedule`]).
    pub fn timers(&self) -> worker::Result<Rows> {
        #[derive(Deserialize)]
        struct T {
            timer: String,
            due_at: f64,
        }
        let rows: Vec<T> = self
            .sql
            .exec("SELECT timer, due_at FROM schedule", None)?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((Timer::parse(&r.timer)?, r.due_at as u64)))
            .collect())
    }

    pub fn set_timer(&self, timer: Timer, due_at: u64) -> worker::Result<()> {
        self.write(
            "INSERT INTO schedule (timer, due_at) VALUES (?, ?) \
             ON CONFLICT(timer) DO UPDATE SET due_at = excluded.due_at",
            vec![timer.name().into(), int(due_at)],
        )
    }

    pub fn clear_timer(&self, timer: Timer) -> worker::Result<()> {
        self.write(
            "DELETE FROM schedule WHERE timer = ?",
            vec![timer.name().into()],
        )
    }

    pub fn count(&self, table: &str) -> worker::Result<u64> {
        // `table` is one of our own constants, never input.
        let n: Num = self
            .sql
            .exec(&format!("SELECT COUNT(*) AS n FROM {table}"), None)?
            .one()?;
        Ok(n.n.unwrap_or(0.0) as u64)
    }

    pub fn message_start(
        &self,
        id: &str,
        role: MessageRole,
        name: &str,
        seq: u64,
    ) -> worker::Result<()> {
        let role = match role {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        };
        self.write(
            "INSERT OR IGNORE INTO messages (id, role, name, content, seq) VALUES (?, ?, ?, '', ?)",
            vec![id.into(), role.into(), name.into(), int(seq)],
        )?;
        Ok(())
    }

    /// A message's text, written once when it ends. While it streams its text is only in
    /// the event log (one row per text event) and in memory; `message_chunks` holds text of
    /// sessions stored before that and is read as it is.
    pub fn message_end(&self, id: &str, text: &str) -> worker::Result<()> {
        self.write(
            "UPDATE messages SET content = content || ? WHERE id = ?",
            vec![text.into(), id.into()],
        )
    }

    /// The text of message `id` as its logged `TEXT_MESSAGE_CONTENT` events after `from_seq`
    /// have it (the open message after a restart, whose text was in memory only).
    pub fn logged_text(&self, id: &str, from_seq: u64) -> worker::Result<String> {
        let rows: Vec<Json> = self
            .sql
            .exec(
                "SELECT json FROM events WHERE seq > ? AND json LIKE '%\"TEXT_MESSAGE_CONTENT\"%' \
                 ORDER BY seq",
                vec![int(from_seq)],
            )?
            .to_array()?;
        let mut text = String::new();
        for r in rows {
            let v: serde_json::Value = serde_json::from_str(&r.json)?;
            if v["messageId"] == id {
                text.push_str(v["delta"].as_str().unwrap_or_default());
            }
        }
        Ok(text)
    }

    /// The seq of message `id`'s start, if it is kept.
    pub fn message_seq(&self, id: &str) -> worker::Result<Option<u64>> {
        #[derive(Deserialize)]
        struct S {
            seq: f64,
        }
        let rows: Vec<S> = self
            .sql
            .exec("SELECT seq FROM messages WHERE id = ?", vec![id.into()])?
            .to_array()?;
        Ok(rows.first().map(|r| r.seq as u64))
    }

    /// The newest messages whose JSON fits in `budget` bytes, oldest first, and how many
    /// older ones were left out.
    pub fn recent_messages(
        &self,
        budget: usize,
        open: &HashMap<String, String>,
    ) -> worker::Result<(Vec<Message>, usize)> {
        let all = self.messages(open)?;
        let mut size = 0;
        let mut take = 0;
        for m in all.iter().rev() {
            let n = serde_json::to_string(m).map(|s| s.len()).unwrap_or(0) + 1;
            if size + n > budget {
                break;
            }
            size += n;
            take += 1;
        }
        let omitted = all.len() - take;
        Ok((all.into_iter().skip(omitted).collect(), omitted))
    }

    /// Every kept message; `open` holds the text so far of the messages still streaming.
    pub fn messages(&self, open: &HashMap<String, String>) -> worker::Result<Vec<Message>> {
        let mut rows: Vec<MsgRow> = self
            .sql
            .exec(
                "SELECT id, role, name, content FROM messages ORDER BY seq",
                None,
            )?
            .to_array()?;
        #[derive(Deserialize)]
        struct Chunk {
            id: String,
            delta: String,
        }
        let chunks: Vec<Chunk> = self
            .sql
            .exec("SELECT id, delta FROM message_chunks ORDER BY seq", None)?
            .to_array()?;
        let index: HashMap<String, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        for c in chunks {
            if let Some(&i) = index.get(&c.id) {
                rows[i].content.push_str(&c.delta);
            }
        }
        for (id, text) in open {
            if let Some(&i) = index.get(id) {
                rows[i].content.push_str(text);
            }
        }
        Ok(rows
            .into_iter()
            .map(|r| Message {
                id: r.id,
                role: if r.role == "user" {
                    MessageRole::User
                } else {
                    MessageRole::Assistant
                },
                name: r.name,
                content: r.content,
            })
            .collect())
    }

    pub fn save_artifact(
        &self,
        stage: Stage,
        version: u32,
        content: &str,
        feedback: Option<&str>,
        created_at: u64,
    ) -> worker::Result<()> {
        self.write(
            "INSERT OR REPLACE INTO artifacts (stage, version, content, feedback, created_at) \
             VALUES (?, ?, ?, ?, ?)",
            vec![
                stage.name().into(),
                int(version as u64),
                content.into(),
                feedback.map(|f| f.to_string()).into(),
                int(created_at),
            ],
        )?;
        Ok(())
    }

    pub fn artifact(&self, stage: Stage, version: u32) -> worker::Result<Option<String>> {
        #[derive(Deserialize)]
        struct Content {
            content: String,
        }
        let rows: Vec<Content> = self
            .sql
            .exec(
                "SELECT content FROM artifacts WHERE stage = ? AND version = ?",
                vec![stage.name().into(), int(version as u64)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.content))
    }

    /// Every version of a stage's artifact, oldest first.
    pub fn artifact_versions(&self, stage: Stage) -> worker::Result<Vec<ArtifactRow>> {
        self.sql
            .exec(
                "SELECT version, content, feedback, created_at FROM artifacts \
                 WHERE stage = ? ORDER BY version",
                vec![stage.name().into()],
            )?
            .to_array()
    }

    /// Keeps one file row (a write, or a delete when `content` is `None`).
    pub fn save_file(&self, v: &FileVersion) -> worker::Result<()> {
        self.write(
            "INSERT OR REPLACE INTO files (version, path, stage, attempt, call_id, content) \
             VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                int(v.version),
                v.path.as_str().into(),
                v.stage.name().into(),
                int(v.attempt as u64),
                v.call_id.as_str().into(),
                v.content.clone().into(),
            ],
        )
    }

    /// Keeps one applied tool call and what is kept of its first answer (a read's digest in
    /// `result_sha256`, `result_bytes` and `read_args`, `result` empty).
    pub fn save_tool_call(&self, c: &CallRecord) -> worker::Result<()> {
        let null = || SqlStorageValue::Null;
        let (text, sha256, bytes, args) = match &c.result {
            StoredResult::Text(t) => (t.as_str(), null(), null(), null()),
            StoredResult::Digest {
                sha256,
                bytes,
                args,
            } => (
                "",
                sha256.as_str().into(),
                int(*bytes),
                args.as_str().into(),
            ),
        };
        self.write(
            "INSERT OR REPLACE INTO tool_calls (call_id, stage, attempt, tool, result, is_error, \
             version, result_sha256, result_bytes, read_args) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                c.call_id.as_str().into(),
                c.stage.name().into(),
                int(c.attempt as u64),
                c.tool.as_str().into(),
                text.into(),
                int(c.is_error as u64),
                c.version.map(int).unwrap_or(SqlStorageValue::Null),
                sha256,
                bytes,
                args,
            ],
        )
    }

    /// Deletes the file rows and tool calls of `from` and every later stage.
    pub fn discard_files_from(&self, from: Stage) -> worker::Result<()> {
        for stage in Stage::ALL.into_iter().filter(|s| *s >= from) {
            for table in ["files", "tool_calls"] {
                // `table` is one of our own constants, never input.
                self.write(
                    &format!("DELETE FROM {table} WHERE stage = ?"),
                    vec![stage.name().into()],
                )?;
            }
        }
        Ok(())
    }

    /// The project's rows, as the session's [`Workspace`].
    pub fn workspace(&self) -> worker::Result<Workspace> {
        #[derive(Deserialize)]
        struct FileRow {
            version: f64,
            path: String,
            stage: String,
            attempt: f64,
            call_id: String,
            content: Option<String>,
        }
        #[derive(Deserialize)]
        struct CallRow {
            call_id: String,
            stage: String,
            attempt: f64,
            tool: String,
            result: String,
            is_error: f64,
            version: Option<f64>,
            result_sha256: Option<String>,
            result_bytes: Option<f64>,
            read_args: Option<String>,
        }
        let stage = |name: &str| {
            Stage::parse(name)
                .ok_or_else(|| worker::Error::RustError(format!("unknown stage {name:?} in a row")))
        };
        let files: Vec<FileRow> = self.sql.exec("SELECT * FROM files", None)?.to_array()?;
        let calls: Vec<CallRow> = self
            .sql
            .exec("SELECT * FROM tool_calls", None)?
            .to_array()?;
        let mut versions = Vec::with_capacity(files.len());
        for f in files {
            versions.push(FileVersion {
                version: f.version as u64,
                path: f.path,
                stage: stage(&f.stage)?,
                attempt: f.attempt as u32,
                call_id: f.call_id,
                content: f.content,
            });
        }
        let mut records = Vec::with_capacity(calls.len());
        for c in calls {
            records.push(CallRecord {
                call_id: c.call_id,
                stage: stage(&c.stage)?,
                attempt: c.attempt as u32,
                tool: c.tool,
                result: match (c.result_sha256, c.result_bytes, c.read_args) {
                    (Some(sha256), Some(bytes), Some(args)) => StoredResult::Digest {
                        sha256,
                        bytes: bytes as u64,
                        args,
                    },
                    _ => StoredResult::Text(c.result),
                },
                is_error: c.is_error != 0.0,
                version: c.version.map(|v| v as u64),
            });
        }
        Workspace::from_rows(versions, records).map_err(worker::Error::RustError)
    }

    /// An owner's index (a hash; see [`crate::index`]) remembers this session through
    /// `link`; who is pushed out to make room is [`crate::index::remember`]'s decision.
    /// Returns the owners pushed out (their rows of that link must go too).
    pub fn add_owner(
        &self,
        name: &str,
        link: Link,
        now: u64,
    ) -> worker::Result<Vec<(String, Link)>> {
        let r = crate::index::remember(&self.owners()?, name, link);
        self.remove_owners(&r.evicted)?;
        self.write(
            "INSERT INTO owner_links (name, link, added_at) VALUES (?, ?, ?) \
             ON CONFLICT(name, link) DO UPDATE SET added_at = excluded.added_at",
            vec![
                r.keep.0.as_str().into(),
                r.keep.1.as_text().into(),
                int(now),
            ],
        )?;
        Ok(r.evicted)
    }

    pub fn remove_owners(&self, gone: &[(String, Link)]) -> worker::Result<()> {
        for (name, link) in gone {
            self.write(
                "DELETE FROM owner_links WHERE name = ? AND link = ?",
                vec![name.as_str().into(), link.as_text().into()],
            )?;
        }
        Ok(())
    }

    pub fn owners(&self) -> worker::Result<Vec<Owner>> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
            link: String,
            added_at: f64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT name, link, added_at FROM owner_links", None)?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(Owner {
                    link: Link::parse(&r.link)?,
                    name: r.name,
                    added_at: r.added_at as u64,
                })
            })
            .collect())
    }
}
