//! The answer cache Durable Object: one shard of cached provider answers in SQLite. Sixteen
//! shards (`answers-0` … `answers-f`, by the key's first hex digit) so no single object takes
//! every lookup. A Durable Object rather than the Workers Cache API because that cache is
//! per data centre and does nothing on `*.workers.dev`; SQLite also gives the size limits
//! and least-recently-used eviction here. The rules (key, expiry, limits) are the core's
//! [`crate::llm::cache`].
//!
//! What it is asked and answers: the core's [`CacheRequest`] and [`CacheAnswer`] (POST, JSON;
//! only the Session object asks).

use serde::Deserialize;
use std::cell::Cell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::store::int;
use super::{error_response, now_ms};
use crate::llm::cache::{
    cacheable, evictions, expired, is_key, over_limits, CacheAnswer, CacheRequest,
};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS answers (
  key TEXT PRIMARY KEY, text TEXT NOT NULL, bytes INTEGER NOT NULL,
  input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
  created_at INTEGER NOT NULL, last_used INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS answers_lru ON answers (last_used);";

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
        let Ok(ask) = req.json::<CacheRequest>().await else {
            return error_response(400, "bad_request", "Expected a cache request.");
        };
        if !is_key(ask.key()) || ask.ttl_ms() == 0 {
            return error_response(400, "bad_request", "Malformed cache key or TTL.");
        }
        let sql = self.state.storage().sql();
        if !self.ready.get() {
            sql.exec(SCHEMA, None)?;
            self.ready.set(true);
        }
        let now = now_ms();
        let answer = match ask {
            CacheRequest::Get { key, ttl_ms } => {
                let rows: Vec<Row> = sql
                    .exec(
                        "SELECT text, input_tokens, output_tokens, created_at FROM answers WHERE key = ?",
                        vec![key.as_str().into()],
                    )?
                    .to_array()?;
                match rows.into_iter().next() {
                    None => CacheAnswer::Miss,
                    Some(row) if expired(row.created_at as u64, ttl_ms, now) => {
                        sql.exec(
                            "DELETE FROM answers WHERE key = ?",
                            vec![key.as_str().into()],
                        )?;
                        CacheAnswer::Miss
                    }
                    Some(row) => {
                        sql.exec(
                            "UPDATE answers SET last_used = ? WHERE key = ?",
                            vec![int(now), key.as_str().into()],
                        )?;
                        CacheAnswer::Hit {
                            text: row.text,
                            input_tokens: row.input_tokens as u64,
                            output_tokens: row.output_tokens as u64,
                        }
                    }
                }
            }
            CacheRequest::Put { text, .. } if !cacheable(&text) => {
                CacheAnswer::Stored { stored: false }
            }
            CacheRequest::Put {
                key,
                ttl_ms,
                text,
                input_tokens,
                output_tokens,
            } => {
                sql.exec(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        key.as_str().into(),
                        text.as_str().into(),
                        int(text.len() as u64),
                        int(input_tokens),
                        int(output_tokens),
                        int(now),
                        int(now),
                    ],
                )?;
                sql.exec(
                    "DELETE FROM answers WHERE created_at <= ?",
                    vec![int(now.saturating_sub(ttl_ms))],
                )?;
                self.evict(&sql)?;
                CacheAnswer::Stored { stored: true }
            }
        };
        Response::from_json(&answer)
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
