//! The answer cache Durable Object: one shard of cached provider answers in SQLite. Sixteen
//! shards (`answers-0` … `answers-f`, by the key's first hex digit) so no single object takes
//! every lookup. A Durable Object rather than the Workers Cache API because that cache is
//! per data centre and does nothing on `*.workers.dev`; SQLite also gives the size limits
//! and least-recently-used eviction here. The rules (key, expiry, limits) are the core's
//! [`crate::llm::cache`].
//!
//! Routes (POST, JSON; only the Session object calls them):
//! - `/get {key, ttlMs}` → `{hit: false}` or `{hit: true, text, inputTokens, outputTokens}`
//! - `/put {key, ttlMs, text, inputTokens, outputTokens}` → `{stored: bool}`

use serde::Deserialize;
use serde_json::json;
use std::cell::Cell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::store::int;
use super::{error_response, now_ms};
use crate::llm::cache::{cacheable, evictions, expired, is_key, over_limits};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS answers (
  key TEXT PRIMARY KEY, text TEXT NOT NULL, bytes INTEGER NOT NULL,
  input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
  created_at INTEGER NOT NULL, last_used INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS answers_lru ON answers (last_used);";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ask {
    key: String,
    ttl_ms: u64,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Deserialize)]
struct Row {
    text: String,
    input_tokens: f64,
    output_tokens: f64,
    created_at: f64,
}

#[derive(Deserialize)]
struct Size {
    bytes: f64,
}

#[derive(Deserialize)]
struct Totals {
    n: f64,
    b: Option<f64>,
}

#[durable_object]
pub struct ResponseCacheDo {
    state: State,
    /// The table exists (created on this instance's first request).
    ready: Cell<bool>,
}

impl DurableObject for ResponseCacheDo {
    fn new(state: State, _env: Env) -> Self {
        ResponseCacheDo {
            state,
            ready: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(ask) = req.json::<Ask>().await else {
            return error_response(400, "bad_request", "Expected {key, ttlMs, …}.");
        };
        if !is_key(&ask.key) || ask.ttl_ms == 0 {
            return error_response(400, "bad_request", "Malformed cache key or TTL.");
        }
        let sql = self.state.storage().sql();
        if !self.ready.get() {
            sql.exec(SCHEMA, None)?;
            self.ready.set(true);
        }
        let now = now_ms();
        match req.path().as_str() {
            "/get" => {
                let rows: Vec<Row> = sql
                    .exec(
                        "SELECT text, input_tokens, output_tokens, created_at FROM answers WHERE key = ?",
                        vec![ask.key.as_str().into()],
                    )?
                    .to_array()?;
                let Some(row) = rows.into_iter().next() else {
                    return Response::from_json(&json!({"hit": false}));
                };
                if expired(row.created_at as u64, ask.ttl_ms, now) {
                    sql.exec(
                        "DELETE FROM answers WHERE key = ?",
                        vec![ask.key.as_str().into()],
                    )?;
                    return Response::from_json(&json!({"hit": false}));
                }
                sql.exec(
                    "UPDATE answers SET last_used = ? WHERE key = ?",
                    vec![int(now), ask.key.as_str().into()],
                )?;
                Response::from_json(&json!({
                    "hit": true,
                    "text": row.text,
                    "inputTokens": row.input_tokens as u64,
                    "outputTokens": row.output_tokens as u64,
                }))
            }
            "/put" => {
                let Some(text) = ask.text.filter(|t| cacheable(t)) else {
                    return Response::from_json(&json!({"stored": false}));
                };
                sql.exec(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        ask.key.as_str().into(),
                        text.as_str().into(),
                        int(text.len() as u64),
                        int(ask.input_tokens),
                        int(ask.output_tokens),
                        int(now),
                        int(now),
                    ],
                )?;
                sql.exec(
                    "DELETE FROM answers WHERE created_at <= ?",
                    vec![int(now.saturating_sub(ask.ttl_ms))],
                )?;
                self.evict(&sql)?;
                Response::from_json(&json!({"stored": true}))
            }
            _ => error_response(404, "not_found", "Unknown cache route."),
        }
    }
}

impl ResponseCacheDo {
    /// Drops least recently used entries until the shard is within its limits.
    fn evict(&self, sql: &worker::SqlStorage) -> Result<()> {
        let totals: Vec<Totals> = sql
            .exec("SELECT COUNT(*) AS n, SUM(bytes) AS b FROM answers", None)?
            .to_array()?;
        let Some(t) = totals.first() else {
            return Ok(());
        };
        if !over_limits(t.n as u64, t.b.unwrap_or(0.0) as u64) {
            return Ok(());
        }
        let sizes: Vec<Size> = sql
            .exec("SELECT bytes FROM answers ORDER BY last_used ASC", None)?
            .to_array()?;
        let sizes: Vec<u64> = sizes.iter().map(|s| s.bytes as u64).collect();
        let drop = evictions(&sizes);
        if drop > 0 {
            sql.exec(
                "DELETE FROM answers WHERE key IN (SELECT key FROM answers ORDER BY last_used ASC LIMIT ?)",
                vec![int(drop as u64)],
            )?;
        }
        Ok(())
    }
}
