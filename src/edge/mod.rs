//! The Worker (wasm32 only): adapts the core to Cloudflare's runtime and does all the I/O.
//!
//! - [`router`]: the Worker entry — asks `crate::access` once per request, then serves the
//!   route it names (one line each) or static assets.
//! - [`session`]: one Durable Object per session — WebSockets, event log, alarm, LLM calls, one
//!   file per capability over the sans-I/O `crate::session::object`.
//! - [`admission_do`]: one Durable Object for the Worker — sessions and sockets per client,
//!   the global session cap, repeated wrong tokens.
//! - [`limiter_do`]: one Durable Object per provider and model — the global request/token
//!   limit, asked with the core's typed `LimiterRequest`.
//! - [`cache_do`]: sixteen Durable Objects holding cached provider answers (`CacheRequest`).
//! - [`index_do`]: one Durable Object per owner — "your sessions", kept current by the sessions.
//! - [`store`]: the session's SQLite tables; [`export`]: `export.jsonl` read from them as it is sent.
//! - [`provider`]: running one LLM call's steps (the provider's streamed fetch, the demo's
//!   pace, the limiter and cache requests).
//! - [`log`]: structured JSON logs (never secrets).

mod admission_do;
mod cache_do;
mod export;
mod index_do;
mod limiter_do;
mod log;
mod provider;
mod router;
mod session;
mod store;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    router::handle(req, env).await
}

/// Wall-clock milliseconds (the core takes time as an input).
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

pub(crate) fn config(env: &Env) -> std::result::Result<crate::config::Config, String> {
    crate::config::Config::from_lookup(|k| {
        env.secret(k)
            .map(|s| s.to_string())
            .or_else(|_| env.var(k).map(|v| v.to_string()))
            .ok()
    })
}

/// JSON error body: `{"error":{"code","message"}}`.
pub(crate) fn error_response(status: u16, code: &str, message: &str) -> Result<Response> {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    Ok(Response::from_json(&body)?.with_status(status))
}

/// Anything but a read through a view-only link ([`crate::access::read_only`]).
pub(crate) fn read_only_response() -> Result<Response> {
    let r = crate::access::read_only();
    error_response(r.status, r.code.as_str(), &r.message)
}
