//! BotArmy: five AI agents — Analyst, Architect, Developer, Tester, Deployer — turn a project
//! brief into a project (its files and a plan), streamed live to the browser from a Cloudflare
//! Worker.
//!
//! # Layout
//!
//! The crate is a pure core with a thin edge (see `../shared/DESIGN.md`). The folders form
//! layers, each using only those above it in this list (`scripts/imports.mjs` checks it):
//!
//! - [`protocol`]: the wire contract — client commands and their validation, AG-UI server
//!   events, the typed custom events, connection frames and code sets (`wire`, from which the
//!   UI's TypeScript types are generated), JSON Patch, limits, AG-UI over HTTP (`RunAgentInput`
//!   → command, the run stream, its readers' bounds), the export, and the names every layer
//!   shares (the stages, `provider:model`). No I/O.
//! - [`llm`], [`workspace`], [`agents`]: below.
//! - [`session`]: the per-session state machine (sans-I/O): takes commands, LLM chunks, errors
//!   and timer ticks with the current time, and queues effects (events to log and broadcast,
//!   LLM calls to start or abort, artifacts to save); the LLM call driver (`call`), one
//!   socket's protocol (`connection`), the Session object's own decisions (`object`: what is
//!   sent before it is stored, trimming, lease carry-over, catch-up, epochs, the prompt), the
//!   timer table and replay planning.
//! - [`index`]: "your sessions" — an owner's list, its rows and bounds.
//! - [`config`]: the environment's settings, the origin and host policy.
//! - [`access`]: who may do what — the API's routes as a type and the one decision per request
//!   (host, origin, access token, view keys) the router asks before it serves anything.
//! - [`admission`]: limits across sessions — session creation per client, the global cap,
//!   sockets per client, repeated wrong tokens (held by one Durable Object).
//! - [`agents`]: the five roles, their prompts, what each receives, the demo provider's text.
//! - [`llm`]: OpenAI-compatible and Anthropic request building and stream decoding into one
//!   item type, SSE parsing, error classification, backoff, the global provider rate limiter
//!   and what it is asked (`limiter_route`), the answer cache's rules and requests, providers
//!   and a model per stage, prices and the dollar budget.
//! - [`workspace`]: the project's files as agents write them through tool calls — path rules,
//!   limits, the four tools, versioned rows per stage and attempt applied exactly once, the zip.
//! - `edge` (wasm32 only): the Worker — router, the Session, Admission, Index, Limiter and
//!   answer-cache Durable Objects, SQLite storage, fetch streaming, alarms. It only adapts the
//!   core to the runtime.
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
