//! One BotArmy session as a deterministic state machine (sans-I/O, after quinn-proto).
//!
//! The edge feeds it inputs — a client command, an LLM chunk, the end or failure of an LLM
//! call, a timer tick — each with the current time, then drains its [`Effect`]s: events to log
//! and broadcast (already numbered with `seq`), calls to start or abort, artifacts to save.
//! A call to start is announced ([`Effect::StartCall`]), never polled for: when the edge gets
//! to it, [`Session::call_started`] says whether it may still run. Everything that must survive a
//! restart is in [`Session::persisted`] (serialised JSON the edge stores beside the log).

pub mod call;
pub mod connection;
mod machine;
pub mod object;
pub mod replay;
pub mod schedule;
mod state;

pub use machine::{
    Ack, CallSpec, Effect, Session, SessionConfig, StageFailure, Usage, COALESCE_BYTES, COALESCE_MS,
};
pub use state::{AgentState, AgentStatus, ErrorInfo, Gate, RunState, RunStatus, SessionState};

#[cfg(test)]
mod tests;
