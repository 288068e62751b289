//! The session index Durable Object: one per owner, "your sessions" in its SQLite. The rules
//! (who the owner is, names, bounds, why not D1) are in [`crate::index`]; the routes, all
//! `POST` with JSON, come from the router (`/remember`, `/forget`, `/list`) and from sessions
//! (`/upsert`, `/drop`, `/drop_link`). Clients never reach it directly.

use serde::Deserialize;
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State};

use super::now_ms;
use super::store::int;
use crate::index::{Link, ListRow, Search, Summary, MAX_ENTRIES_PER_OWNER, MAX_LIST};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY, session_ref TEXT NOT NULL, read_only INTEGER NOT NULL,
  name TEXT NOT NULL, status TEXT NOT NULL, stages_done INTEGER NOT NULL,
  tokens INTEGER NOT NULL, cost INTEGER NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_updated ON entries (updated_at);
CREATE INDEX IF NOT EXISTS entries_ref ON entries (session_ref);
";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Remember {
    key: String,
    session_ref: String,
    read_only: bool,
    summary: Summary,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert {
    session_ref: String,
    summary: Summary,
}

#[derive(Deserialize)]
struct Forget {
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Drop {
    session_ref: String,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    q: String,
}

/// `/drop_link`: an owner pushed out of one of its links to a session loses the rows made
/// through that link (see [`crate::index::remember`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DropLink {
    session_ref: String,
    link: String,
}

#[durable_object]
pub struct IndexDo {
    state: State,
    sql: SqlStorage,
}

impl IndexDo {
    /// An index left without rows keeps nothing: its storage is deleted, so the indexes
    /// never hold more than the rows of sessions that exist (each keeps at most 16 owners).
    async fn drop_if_empty(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct N {
            n: f64,
        }
        let rows: Vec<N> = self
            .sql
            .exec("SELECT COUNT(*) AS n FROM entries", None)?
            .to_array()?;
        if rows.first().is_some_and(|r| r.n == 0.0) {
            self.state.storage().delete_all().await?;
        }
        Ok(())
    }

    /// Whether this index holds a table at all (only `/remember` creates one, so a read or an
    /// update of an owner with no rows leaves no storage behind).
    fn exists(&self) -> Result<bool> {
        #[derive(Deserialize)]
        struct Name {
            #[allow(dead_code)]
            name: String,
        }
        let found: Vec<Name> = self
            .sql
            .exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'entries'",
                None,
            )?
            .to_array()?;
        Ok(!found.is_empty())
    }
}

impl DurableObject for IndexDo {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        IndexDo { state, sql }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let now = now_ms();
        let path = req.path();
        if path != "/remember" && !self.exists()? {
            // No rows, no table: nothing to read, update or delete.
            return match path.as_str() {
                "/list" => Response::from_json(&json!({"sessions": []})),
                "/forget" => Response::from_json(&json!({"ok": false})),
                _ => Response::from_json(&json!({"ok": true})),
            };
        }
        match path.as_str() {
            "/remember" => {
                let r: Remember = req.json().await?;
                self.sql.exec(SCHEMA, None)?;
                let s = &r.summary;
                self.sql.exec(
                    "INSERT INTO entries (key, session_ref, read_only, name, status, stages_done, \
                     tokens, cost, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT(key) DO UPDATE SET name = excluded.name, status = excluded.status, \
                     stages_done = excluded.stages_done, tokens = excluded.tokens, \
                     cost = excluded.cost, updated_at = excluded.updated_at",
                    vec![
                        r.key.as_str().into(),
                        r.session_ref.as_str().into(),
                        int(r.read_only as u64),
                        s.name.as_str().into(),
                        s.status.as_str().into(),
                        int(s.stages_done as u64),
                        int(s.tokens),
                        int(s.cost_micro_usd),
                        int(now),
                        int(now),
                    ],
                )?;
                // Bounded: the least recently updated rows go first.
                self.sql.exec(
                    "DELETE FROM entries WHERE key NOT IN \
                     (SELECT key FROM entries ORDER BY updated_at DESC LIMIT ?)",
                    vec![int(MAX_ENTRIES_PER_OWNER as u64)],
                )?;
                Response::from_json(&json!({"ok": true}))
            }
            "/upsert" => {
                let u: Upsert = req.json().await?;
                let s = &u.summary;
                self.sql.exec(
                    "UPDATE entries SET name = ?, status = ?, stages_done = ?, tokens = ?, \
                     cost = ?, updated_at = ? WHERE session_ref = ?",
                    vec![
                        s.name.as_str().into(),
                        s.status.as_str().into(),
                        int(s.stages_done as u64),
                        int(s.tokens),
                        int(s.cost_micro_usd),
                        int(now),
                        u.session_ref.as_str().into(),
                    ],
                )?;
                Response::from_json(&json!({"ok": true}))
            }
            "/forget" => {
                let f: Forget = req.json().await?;
                let gone = self
                    .sql
                    .exec("DELETE FROM entries WHERE key = ?", vec![f.key.into()])?
                    .rows_written();
                self.drop_if_empty().await?;
                Response::from_json(&json!({"ok": gone > 0}))
            }
            "/drop" => {
                let d: Drop = req.json().await?;
                self.sql.exec(
                    "DELETE FROM entries WHERE session_ref = ?",
                    vec![d.session_ref.into()],
                )?;
                self.drop_if_empty().await?;
                Response::from_json(&json!({"ok": true}))
            }
            "/list" => {
                let l: List = req.json().await?;
                let search = match Search::parse(&l.q) {
                    Ok(s) => s,
                    Err(e) => return super::error_response(400, "invalid_field", &e),
                };
                // At most MAX_ENTRIES_PER_OWNER rows: matched here (Unicode case folding), not
                // by SQLite's LIKE (ASCII only, 50-byte patterns).
                let rows: Vec<ListRow> = self
                    .sql
                    .exec(
                        "SELECT key, read_only, name, status, stages_done, tokens, cost, \
                         created_at, updated_at FROM entries \
                         ORDER BY updated_at DESC, created_at DESC",
                        None,
                    )?
                    .to_array()?;
                let rows: Vec<ListRow> = rows
                    .into_iter()
                    .filter(|r| search.matches(&r.name))
                    .take(MAX_LIST)
                    .collect();
                Response::from_json(&json!({"sessions": rows}))
            }
            "/drop_link" => {
                let d: DropLink = req.json().await?;
                let Some(link) = Link::parse(&d.link) else {
                    return Response::error("unknown link", 400);
                };
                #[derive(Deserialize)]
                struct Key {
                    key: String,
                    read_only: f64,
                }
                let keys: Vec<Key> = self
                    .sql
                    .exec(
                        "SELECT key, read_only FROM entries WHERE session_ref = ?",
                        vec![d.session_ref.into()],
                    )?
                    .to_array()?;
                for k in keys
                    .iter()
                    .filter(|k| link.made(&k.key, k.read_only != 0.0))
                {
                    self.sql.exec(
                        "DELETE FROM entries WHERE key = ?",
                        vec![k.key.as_str().into()],
                    )?;
                }
                self.drop_if_empty().await?;
                Response::from_json(&json!({"ok": true}))
            }
            _ => Response::error("unknown index route", 404),
        }
    }
}
