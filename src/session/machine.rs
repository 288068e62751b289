//! The session state machine: pipeline runs, approval gates, retries, pause/resume/cancel,
//! token budget, text coalescing and recovery after a restart.
//!
//! Invariants the tests check: `seq` runs 1, 2, 3… without gaps; the log is a sequence of AG-UI
//! runs (nothing between a run's end and the next `RUN_STARTED`); a text message is ended before
//! its run ends and is never continued after a retry or restart; applying the logged snapshot
//! and deltas gives [`Session::state`].
//!
//! By concern: this file holds the types, construction and restore, and what the edge polls
//! (effects, the call to run, timers); `commands` has one function per client command,
//! `inputs` what an LLM call brings back (text, done, deferred, failure), and `attempt` the
//! building blocks (runs, stages and attempts begun and interrupted, flush, state diff, emit).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schedule::{Rows, Timer};
use super::state::{AgentStatus, ErrorInfo, Gate, RunStatus, SessionState};
use crate::agents::Stage;
use crate::llm::backoff;
use crate::protocol::event::{frame, Event, Interrupt, MessageRole, Outcome, TokenUsage};
use crate::protocol::limits::{MAX_ANSWER_BYTES, REMEMBERED_IDS};
use crate::protocol::wire::{
    gate_id, AgentErrorValue, AgentQueuedValue, ArtifactValue, FailureCode, InterruptReason,
    LoggedCustom, MessageInterruptedValue, QueueReason, RejectionCode,
};
use crate::protocol::{patch, Approval, Command, Envelope, Rejection};
use crate::workspace::{CallRecord, FileVersion, Workspace};

mod attempt;
mod commands;
mod inputs;
mod tools;

/// Text deltas are flushed at most this often per message (leading edge: an isolated token
/// goes out at once, a burst is merged)…
pub const COALESCE_MS: u64 = 16;
/// …or as soon as this many bytes are waiting.
pub const COALESCE_BYTES: usize = 512;

/// Settings fixed by the deployment (environment), not by the user.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub demo: bool,
    pub model: String,
    pub token_budget: u64,
    /// Per stage (pipeline order), the `provider:model` ids it may use, its default first;
    /// empty lists in demo mode.
    pub offered: Vec<Vec<String>>,
    pub prices: crate::llm::price::PriceTable,
    /// `SESSION_BUDGET_USD` in micro-dollars.
    pub budget_micros: Option<u64>,
    pub max_attempts: u32,
    /// Watchdog: a call that sends nothing for this long is aborted as a timeout.
    pub stall_timeout_ms: u64,
    /// An attempt streaming for this long is stopped (`stage_too_long`), however lively.
    pub max_attempt_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            demo: true,
            model: "demo".into(),
            token_budget: 200_000,
            offered: vec![Vec::new(); Stage::ALL.len()],
            prices: crate::llm::price::PriceTable::defaults(),
            budget_micros: None,
            max_attempts: backoff::MAX_ATTEMPTS,
            stall_timeout_ms: 30_000,
            max_attempt_ms: crate::protocol::limits::MAX_ATTEMPT_MS,
            backoff_base_ms: backoff::BASE_MS,
            backoff_cap_ms: backoff::CAP_MS,
        }
    }
}

/// What a buffered non-answer stream is: its events are coalesced like text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    ToolArgs,
    Reasoning,
}

/// What the edge must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Store this logged event (with its `seq`), then send `json` to every joined socket.
    Emit {
        seq: u64,
        json: String,
        event: Event,
    },
    /// Abort the LLM call in flight with this id (its later chunks are ignored anyway).
    AbortCall { call_id: u64 },
    /// Keep this artifact version (before the `artifact` event that announces it is sent).
    SaveArtifact {
        stage: Stage,
        version: u32,
        content: String,
        feedback: Option<String>,
        created_at: u64,
    },
    /// Keep this file row (before the events that announce it are sent).
    SaveFile(FileVersion),
    /// Keep this applied tool call (its first answer, for exactly-once).
    SaveToolCall(CallRecord),
    /// Delete the file rows and tool calls of `from` and every later stage.
    DiscardFiles { from: Stage },
    /// Start this LLM call (it replaces any announced before). Announced once each time a
    /// call becomes startable, after the batch's other effects; by the time the edge starts
    /// it, it may be stale, which [`Session::call_started`] answers with `false`.
    StartCall(CallSpec),
}

/// An LLM call the edge should run now ([`Effect::StartCall`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    pub call_id: u64,
    pub stage: Stage,
    pub attempt: u32,
    /// The attempt's number in the workspace (unique per session; kept across a restart).
    pub work_attempt: u32,
    pub brief: String,
    /// Approved artifacts before this stage, in pipeline order: (stage, version).
    pub prior: Vec<(Stage, u32)>,
    /// For a rerun after rejection: the user's feedback and the rejected version.
    pub feedback: Option<String>,
    pub previous_version: Option<u32>,
    /// The stage's model for this run (`provider:model`); `None` in demo mode.
    pub model: Option<String>,
    /// Part of a `rerun`: a new answer is wanted, so the answer cache is not read (the new
    /// answer is still stored).
    pub fresh: bool,
}

/// Token usage of one call, as reported by the provider (or estimated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A failed attempt, already classified by the LLM layer.
#[derive(Debug, Clone, PartialEq)]
pub struct StageFailure {
    /// Stable code (`rate_limited`, `bad_key`, …).
    pub code: FailureCode,
    /// Plain words for the user.
    pub message: String,
    /// Technical detail for the log (never a secret).
    pub detail: String,
    pub retryable: bool,
    pub retry_after_ms: Option<u64>,
}

impl StageFailure {
    /// The `agent_error` event for this failure of `stage`'s attempt `attempt`.
    fn agent_error(&self, stage: Stage, next_retry_at: Option<u64>, attempt: u32) -> Event {
        LoggedCustom::AgentError(AgentErrorValue {
            stage,
            code: self.code,
            message: self.message.clone(),
            detail: self.detail.clone(),
            retryable: self.retryable,
            next_retry_at,
            attempt,
        })
        .into()
    }
}

/// Answer to an accepted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub duplicate: bool,
}

/// The attempt of a stage that is pending, waiting for a retry, or in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Call {
    id: u64,
    stage: Stage,
    /// The LLM request was started (persisted: after a restart this means it died).
    begun: bool,
    /// `STEP_STARTED` was sent for this attempt and `STEP_FINISHED` not yet.
    step_open: bool,
    message_id: Option<String>,
    /// Not persisted: it changes with every chunk, and after a restart a begun call is rerun
    /// (which sets it afresh), so saving it would only rewrite the session row per token.
    #[serde(skip, default)]
    last_activity: u64,
    /// When the request began, and the reasoning bytes streamed since: not persisted, like
    /// `last_activity` (a restarted attempt begins again).
    #[serde(skip, default)]
    begun_at: u64,
    #[serde(skip, default)]
    reasoning_bytes: usize,
    retry_at: Option<u64>,
    /// Answer length the progress estimate aims at (the demo knows it exactly).
    #[serde(default)]
    expected_chars: usize,
    /// The attempt's number in the workspace (see [`CallSpec::work_attempt`]).
    #[serde(default)]
    work: u32,
    /// Wire ids of tool calls started and not yet ended.
    #[serde(default)]
    open_tools: Vec<String>,
    /// The reasoning message open, if any.
    #[serde(default)]
    reasoning: Option<String>,
}

/// An idempotency key and a digest of the command it was used for, so a key reused for a
/// different command is refused (`id_reused`) rather than acknowledged as a duplicate.
/// Sessions stored before digests were kept hold bare keys (`Legacy`): those still ack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum RememberedId {
    Keyed { id: String, of: String },
    Legacy(String),
}

impl RememberedId {
    fn id(&self) -> &str {
        match self {
            RememberedId::Keyed { id, .. } | RememberedId::Legacy(id) => id,
        }
    }
}

/// Everything that survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Persisted {
    state: SessionState,
    /// Highest `seq` emitted. Not written to the session row: the log's newest `seq` is the
    /// truth (see [`Session::restore`]), so a text event, which changes nothing else here,
    /// does not rewrite the row. Rows written before this was skipped still carry it.
    #[serde(default, skip_serializing)]
    seq: u64,
    brief: String,
    runs: u32,
    calls: u64,
    in_run: bool,
    recent_ids: VecDeque<RememberedId>,
    call: Option<Call>,
    approved: Vec<(Stage, u32)>,
    feedback: Option<String>,
    user_messages: u32,
    rng: u64,
    /// When the failure that stopped the run carried Retry-After: the time the provider asked
    /// BotArmy to wait until. A manual `retry` before then waits for it instead of calling.
    #[serde(default)]
    provider_wait_until: Option<u64>,
    /// Tokens of the answers accepted since the current AG-UI run began (its `usage`), per
    /// model that answered (`provider:model`, or the session's model in demo mode), in the
    /// order they first answered: stages of one run may use different providers.
    #[serde(default, deserialize_with = "run_usage_row")]
    run_usage: Vec<(String, Usage)>,
    /// Since a `rerun {stage}` (until the next `start`): calls for this stage and later ones
    /// do not read the answer cache.
    #[serde(default)]
    fresh_from: Option<Stage>,
    /// Attempts begun over the session's life: each one's workspace number.
    #[serde(default)]
    work_attempts: u32,
}

/// Reads `run_usage` as stored now (per model) or as rows stored before usage was per model
/// kept it (one total), which counts under the session's model (`""`, named at the run's end).
fn run_usage_row<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, Usage)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Row {
        PerModel(Vec<(String, Usage)>),
        Total(Usage),
    }
    Ok(match Row::deserialize(d)? {
        Row::PerModel(v) => v,
        Row::Total(u) if u == Usage::default() => Vec::new(),
        Row::Total(u) => vec![(String::new(), u)],
    })
}

pub struct Session {
    cfg: SessionConfig,
    p: Persisted,
    /// The state as last sent (snapshot + deltas), to diff against.
    sent_state: Value,
    /// Text received but not yet flushed, and the whole answer so far.
    buf: String,
    /// Tool call arguments or reasoning received but not yet sent: (event, wire id, text).
    side_buf: Option<(Side, String, String)>,
    /// The project's files (stored by the edge, loaded with [`Session::set_workspace`]).
    ws: Workspace,
    answer: String,
    /// `answer.chars().count()`, kept as text arrives (progress is computed per flush).
    answer_chars: usize,
    last_flush: u64,
    effects: VecDeque<Effect>,
    /// The startable call last announced with [`Effect::StartCall`] (not persisted: a
    /// restored session announces its call again).
    announced: Option<u64>,
    /// The latest time an input carried; stamps outgoing frames.
    now: u64,
    /// [`Session::restore`] found a call that died with the old process and queued it again.
    resumed: bool,
    /// The persisted part may have changed since [`Session::take_dirty`] was last called.
    /// Text alone leaves it clean, so the edge skips serialising the session per token.
    dirty: bool,
}

impl Session {
    pub fn new(session_id: &str, cfg: SessionConfig) -> Session {
        let state = SessionState::new(session_id, cfg.demo, &cfg.model, cfg.token_budget);
        let rng = seed(session_id);
        Session::from_persisted(
            cfg,
            Persisted {
                state,
                seq: 0,
                brief: String::new(),
                runs: 0,
                calls: 0,
                in_run: false,
                recent_ids: VecDeque::new(),
                call: None,
                approved: Vec::new(),
                feedback: None,
                user_messages: 0,
                rng,
                provider_wait_until: None,
                run_usage: Vec::new(),
                fresh_from: None,
                work_attempts: 0,
            },
        )
    }

    fn from_persisted(cfg: SessionConfig, p: Persisted) -> Session {
        Session {
            sent_state: p.state.to_json(),
            cfg,
            p,
            buf: String::new(),
            side_buf: None,
            ws: Workspace::new(),
            answer: String::new(),
            answer_chars: 0,
            last_flush: 0,
            effects: VecDeque::new(),
            announced: None,
            now: 0,
            resumed: false,
            dirty: true,
        }
    }

    /// Restores a session from [`Session::persisted`] in a fresh process. A call that was in
    /// flight when the old process died is closed and marked, then queued again.
    /// `log_newest` is the highest `seq` in the stored log (0 when empty): numbering goes on
    /// from there.
    pub fn restore(
        json: &str,
        log_newest: u64,
        cfg: SessionConfig,
        now: u64,
    ) -> Result<Session, String> {
        let mut p: Persisted = serde_json::from_str(json).map_err(|e| e.to_string())?;
        p.seq = p.seq.max(log_newest);
        let mut s = Session::from_persisted(cfg, p);
        s.now = now;
        s.p.state.run.token_budget = s.cfg.token_budget;
        if s.p.call.as_ref().is_some_and(|c| c.begun) {
            s.resumed = true;
            s.interrupt_attempt(InterruptReason::Restart, now);
            s.sync_state();
        }
        Ok(s)
    }

    /// True when [`Session::restore`] reran a call the previous process left in flight.
    pub fn resumed_after_restart(&self) -> bool {
        self.resumed
    }

    /// JSON to store beside the log after every batch of effects.
    pub fn persisted(&self) -> String {
        serde_json::to_string(&self.p).expect("session serializes")
    }

    /// Whether [`Session::persisted`] may differ from when this was last called: false only
    /// when nothing but text went out since (checked after every step in the tests).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn state(&self) -> &SessionState {
        &self.p.state
    }

    /// The brief of the latest run ("" before the first).
    pub fn brief(&self) -> &str {
        &self.p.brief
    }

    /// Highest `seq` emitted so far.
    pub fn last_seq(&self) -> u64 {
        self.p.seq
    }

    /// The next effect to carry out. When a call has become startable since the last drain,
    /// the last one is [`Effect::StartCall`]: the call is announced, not polled for.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        if let Some(e) = self.effects.pop_front() {
            return Some(e);
        }
        // Compared by id: the spec (with the brief) is built only when it is announced.
        let id = self.startable_call();
        if id == self.announced {
            return None;
        }
        // A call that stops being startable (begun, paused, waiting for a retry) is forgotten,
        // so becoming startable again announces it again.
        self.announced = id;
        self.pending_call().map(Effect::StartCall)
    }

    /// The id of the call that may start now: there is one, it has not begun, no retry is
    /// waiting and the run is running.
    fn startable_call(&self) -> Option<u64> {
        let c = self.p.call.as_ref()?;
        let ok = !c.begun && c.retry_at.is_none() && self.p.state.run.status == RunStatus::Running;
        ok.then_some(c.id)
    }

    /// The LLM call to start now, if any (what [`Effect::StartCall`] announces).
    pub(super) fn pending_call(&self) -> Option<CallSpec> {
        self.startable_call()?;
        let c = self.p.call.as_ref()?;
        let rerun = self.p.feedback.is_some();
        Some(CallSpec {
            call_id: c.id,
            stage: c.stage,
            attempt: self.p.state.agent(c.stage).attempts,
            work_attempt: c.work,
            brief: self.p.brief.clone(),
            prior: self
                .p
                .approved
                .iter()
                .filter(|(s, _)| *s < c.stage)
                .copied()
                .collect(),
            feedback: self.p.feedback.clone(),
            previous_version: rerun.then(|| self.p.state.agent(c.stage).version),
            model: self.p.state.agent(c.stage).model.clone(),
            fresh: self.p.fresh_from.is_some_and(|f| c.stage >= f),
        })
    }

    /// The edge starts the call announced with [`Effect::StartCall`]; `expected_chars` sizes
    /// the progress estimate (`None`: the stage's typical length). False, changing nothing,
    /// when that call may no longer start (cancelled, paused, replaced, already begun): the
    /// edge then drops it.
    pub fn call_started(&mut self, call_id: u64, expected_chars: Option<usize>, now: u64) -> bool {
        self.now = self.now.max(now);
        if self.startable_call() != Some(call_id) {
            return false;
        }
        self.dirty = true;
        let c = self.p.call.as_mut().expect("a startable call");
        c.begun = true;
        c.last_activity = now;
        c.begun_at = now;
        c.reasoning_bytes = 0;
        c.expected_chars = expected_chars.unwrap_or_else(|| crate::agents::expected_chars(c.stage));
        let stage = c.stage;
        self.p.state.agent_mut(stage).cached = false;
        self.sync_state();
        true
    }

    /// The call started with [`Session::call_started`] is answered from the answer cache
    /// with `chars` characters: its card says so (the edge reports zero usage for it).
    pub fn call_cached(&mut self, call_id: u64, chars: usize, now: u64) {
        self.now = self.now.max(now);
        if !self.is_live(call_id) {
            return;
        }
        let c = self.p.call.as_mut().expect("live call");
        c.expected_chars = chars;
        let stage = c.stage;
        self.dirty = true;
        self.p.state.agent_mut(stage).cached = true;
        self.sync_state();
    }

    /// The id of the call currently in flight, if any.
    pub fn live_call(&self) -> Option<u64> {
        self.p.call.as_ref().filter(|c| c.begun).map(|c| c.id)
    }

    /// The machine's deadlines, in the schedule's terms: `flush` while text waits to be sent
    /// (the streaming loop's), `call` for a retry or a running call's watchdog (the alarm's).
    /// [`Session::on_timeout`] does whatever is due.
    pub fn timers(&self) -> Rows {
        let mut rows = Rows::new();
        if !self.buf.is_empty() || self.side_buf.is_some() {
            rows.insert(Timer::Flush, self.last_flush + COALESCE_MS);
        }
        if let Some(c) = &self.p.call {
            let watchdog = c.begun.then(|| c.last_activity + self.cfg.stall_timeout_ms);
            let cap = c.begun.then(|| c.begun_at + self.cfg.max_attempt_ms);
            if let Some(t) = c.retry_at.into_iter().chain(watchdog).chain(cap).min() {
                rows.insert(Timer::Call, t);
            }
        }
        rows
    }

    pub fn on_timeout(&mut self, now: u64) {
        // (The side buffer is flushed below with the text, on the same clock.)
        self.now = self.now.max(now);
        if now >= self.last_flush + COALESCE_MS {
            if !self.buf.is_empty() {
                self.flush(now);
            }
            if self.side_buf.is_some() {
                self.last_flush = now;
                self.flush_side();
            }
        }
        let (retry_due, stalled, too_long) = match &self.p.call {
            Some(c) => (
                c.retry_at.is_some_and(|r| now >= r),
                c.begun && now >= c.last_activity + self.cfg.stall_timeout_ms,
                c.begun && now >= c.begun_at + self.cfg.max_attempt_ms,
            ),
            None => (false, false, false),
        };
        self.dirty |= retry_due || stalled || too_long;
        if retry_due {
            let stage = self.p.call.as_ref().map(|c| c.stage).expect("call");
            self.begin_attempt(stage, now);
        } else if too_long {
            let id = self.p.call.as_ref().map(|c| c.id).expect("call");
            self.effects.push_back(Effect::AbortCall { call_id: id });
            let mins = self.cfg.max_attempt_ms / 60_000;
            self.on_failure(
                id,
                StageFailure {
                    code: FailureCode::StageTooLong,
                    message: format!(
                        "The AI was still going after {mins} minutes on this stage, longer than \
                         BotArmy lets one attempt run, so it was stopped. Retry it, or ask for a \
                         shorter answer."
                    ),
                    detail: format!("attempt streaming for over {} ms", self.cfg.max_attempt_ms),
                    retryable: false,
                    retry_after_ms: None,
                },
                now,
            );
        } else if stalled {
            let id = self.p.call.as_ref().map(|c| c.id).expect("call");
            self.effects.push_back(Effect::AbortCall { call_id: id });
            let secs = self.cfg.stall_timeout_ms / 1000;
            self.on_failure(
                id,
                StageFailure {
                    code: FailureCode::Timeout,
                    message: format!(
                        "The AI stopped sending text for {secs} seconds, so BotArmy gave up \
                         on this attempt."
                    ),
                    detail: format!("watchdog: no chunk for {} ms", self.cfg.stall_timeout_ms),
                    retryable: true,
                    retry_after_ms: None,
                },
                now,
            );
        }
        self.sync_state();
    }
}

fn seed(id: &str) -> u64 {
    // FNV-1a; never zero (xorshift would stick at zero).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}
