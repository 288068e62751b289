//! BotArmy: five AI agents — Analyst, Architect, Developer, Tester, Deployer — turn a project
//! brief into a delivery plan, streamed live to the browser from a Cloudflare Worker.
//!
//! # Layout
//!
//! The crate is a pure core with a thin edge (see `../shared/DESIGN.md`):
//!
//! - [`protocol`]: the wire contract — client commands and their validation, AG-UI server
//!   events, the typed custom events, connection frames and code sets (`wire`, from which the
//!   UI's TypeScript types are generated), JSON Patch, limits, and AG-UI over HTTP
//!   (`RunAgentInput` → command, the run stream). No I/O.
//! - [`session`]: the per-session state machine (sans-I/O): takes commands, LLM chunks, errors
//!   and timer ticks with the current time, and queues effects (events to log and broadcast,
//!   LLM calls to start or abort, artifacts to save). Also replay planning for reconnects.
//! - [`access`]: who may do what — the API's routes as a type and the one decision per request
//!   (host, origin, access token, view keys) the router asks before it serves anything.
//! - [`admission`]: limits across sessions — session creation per client, the global cap,
//!   sockets per client, repeated wrong tokens (held by one Durable Object).
//! - [`agents`]: the five roles, their prompts, what each receives, the demo provider's text.
//! - [`llm`]: OpenAI-compatible and Anthropic request building and stream decoding into one
//!   item type, SSE parsing, error classification, backoff, the global provider rate limiter,
//!   providers and a model per stage, prices and the dollar budget.
//! - [`workspace`]: the project's files as agents write them through tool calls — path rules,
//!   limits, the four tools, versioned rows per stage and attempt applied exactly once, the zip.
//! - `edge` (wasm32 only): the Worker — router, the Session and Limiter Durable Objects,
//!   SQLite storage, fetch streaming, alarms. It only adapts the core to the runtime.
//!
//! Everything but `edge` builds and tests natively with `cargo test`.

pub mod access;
pub mod admission;
pub mod agents;
pub mod config;
pub mod index;
pub mod llm;
pub mod protocol;
pub mod session;
pub mod workspace;

#[cfg(target_arch = "wasm32")]
mod edge;

/// Version reported by `GET /api/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
