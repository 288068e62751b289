//! The session state machine: pipeline runs, approval gates, retries, pause/resume/cancel,
//! token budget, text coalescing and recovery after a restart.
//!
//! Invariants the tests check: `seq` runs 1, 2, 3… without gaps; the log is a sequence of AG-UI
//! runs (nothing between a run's end and the next `RUN_STARTED`); a text message is ended before
//! its run ends and is never continued after a retry or restart; applying the logged snapshot
//! and deltas gives [`Session::state`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub max_attempts: u32,
    /// Watchdog: a call that sends nothing for this long is aborted as a timeout.
    pub stall_timeout_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            demo: true,
            model: "demo".into(),
            token_budget: 200_000,
            max_attempts: backoff::MAX_ATTEMPTS,
            stall_timeout_ms: 30_000,
            backoff_base_ms: backoff::BASE_MS,
            backoff_cap_ms: backoff::CAP_MS,
        }
    }
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
}

/// An LLM call the edge should run now (see [`Session::pending_call`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    pub call_id: u64,
    pub stage: Stage,
    pub attempt: u32,
    pub brief: String,
    /// Approved artifacts before this stage, in pipeline order: (stage, version).
    pub prior: Vec<(Stage, u32)>,
    /// For a rerun after rejection: the user's feedback and the rejected version.
    pub feedback: Option<String>,
    pub previous_version: Option<u32>,
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
    retry_at: Option<u64>,
    /// Answer length the progress estimate aims at (the demo knows it exactly).
    #[serde(default)]
    expected_chars: usize,
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

/// A short, stable digest of a command (its fields included).
fn command_digest(cmd: &Command) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{cmd:?}").as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
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
    /// Tokens of the answers accepted since the current AG-UI run began (its `usage`).
    #[serde(default)]
    run_usage: Usage,
}

pub struct Session {
    cfg: SessionConfig,
    p: Persisted,
    /// The state as last sent (snapshot + deltas), to diff against.
    sent_state: Value,
    /// Text received but not yet flushed, and the whole answer so far.
    buf: String,
    answer: String,
    /// `answer.chars().count()`, kept as text arrives (progress is computed per flush).
    answer_chars: usize,
    last_flush: u64,
    effects: VecDeque<Effect>,
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
                run_usage: Usage::default(),
            },
        )
    }

    fn from_persisted(cfg: SessionConfig, p: Persisted) -> Session {
        Session {
            sent_state: p.state.to_json(),
            cfg,
            p,
            buf: String::new(),
            answer: String::new(),
            answer_chars: 0,
            last_flush: 0,
            effects: VecDeque::new(),
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

    /// Highest `seq` emitted so far.
    pub fn last_seq(&self) -> u64 {
        self.p.seq
    }

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The LLM call to start now, if any. The edge runs it and calls [`Session::call_started`].
    pub fn pending_call(&self) -> Option<CallSpec> {
        let c = self.p.call.as_ref()?;
        if c.begun || c.retry_at.is_some() || self.p.state.run.status != RunStatus::Running {
            return None;
        }
        let rerun = self.p.feedback.is_some();
        Some(CallSpec {
            call_id: c.id,
            stage: c.stage,
            attempt: self.p.state.agent(c.stage).attempts,
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
        })
    }

    /// The edge started the call; `expected_chars` sizes the progress estimate (`None`: the
    /// stage's typical length).
    pub fn call_started(&mut self, call_id: u64, expected_chars: Option<usize>, now: u64) {
        self.now = self.now.max(now);
        self.dirty = true;
        if let Some(c) = self.p.call.as_mut().filter(|c| c.id == call_id) {
            c.begun = true;
            c.last_activity = now;
            c.expected_chars =
                expected_chars.unwrap_or_else(|| crate::agents::expected_chars(c.stage));
            let stage = c.stage;
            self.p.state.agent_mut(stage).cached = false;
            self.sync_state();
        }
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

    /// Earliest time [`Session::on_timeout`] has work: a text flush, a retry, the watchdog.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut at = |x: u64| t = Some(t.map_or(x, |t| t.min(x)));
        if !self.buf.is_empty() {
            at(self.last_flush + COALESCE_MS);
        }
        if let Some(c) = &self.p.call {
            if let Some(r) = c.retry_at {
                at(r);
            }
            if c.begun {
                at(c.last_activity + self.cfg.stall_timeout_ms);
            }
        }
        t
    }

    /// Like [`Session::poll_timeout`] but without the text flush, which the edge's streaming
    /// loop handles itself: the deadline for the Durable Object alarm.
    pub fn alarm_deadline(&self) -> Option<u64> {
        let c = self.p.call.as_ref()?;
        match (c.retry_at, c.begun) {
            (Some(r), _) => Some(r),
            (None, true) => Some(c.last_activity + self.cfg.stall_timeout_ms),
            (None, false) => None,
        }
    }

    pub fn on_timeout(&mut self, now: u64) {
        self.now = self.now.max(now);
        if !self.buf.is_empty() && now >= self.last_flush + COALESCE_MS {
            self.flush(now);
        }
        let (retry_due, stalled) = match &self.p.call {
            Some(c) => (
                c.retry_at.is_some_and(|r| now >= r),
                c.begun && now >= c.last_activity + self.cfg.stall_timeout_ms,
            ),
            None => (false, false),
        };
        self.dirty |= retry_due || stalled;
        if retry_due {
            let stage = self.p.call.as_ref().map(|c| c.stage).expect("call");
            self.begin_attempt(stage, now);
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

    // ---- commands -------------------------------------------------------------------------

    /// Applies a client command (not `hello`/`ping`, which the edge answers itself).
    pub fn command(&mut self, env: Envelope, now: u64) -> Result<Ack, Rejection> {
        self.now = self.now.max(now);
        self.dirty = true;
        let name = env.command.name();
        let digest = command_digest(&env.command);
        if let Some(id) = &env.id {
            match self.p.recent_ids.iter().find(|r| r.id() == id) {
                Some(RememberedId::Keyed { of, .. }) if *of != digest => {
                    let mut r = Rejection::new(
                        RejectionCode::IdReused,
                        "This id was already used for a different command; use a new id.",
                    );
                    r.command = Some(name.to_string());
                    r.id = env.id.clone();
                    return Err(r);
                }
                Some(_) => return Ok(Ack { duplicate: true }),
                None => {}
            }
        }
        let result = self.apply_command(env.command, now);
        self.sync_state();
        match result {
            Ok(()) => {
                if let Some(id) = env.id {
                    if self.p.recent_ids.len() >= REMEMBERED_IDS {
                        self.p.recent_ids.pop_front();
                    }
                    self.p
                        .recent_ids
                        .push_back(RememberedId::Keyed { id, of: digest });
                }
                Ok(Ack { duplicate: false })
            }
            Err(mut r) => {
                r.command = Some(name.to_string());
                r.id = env.id;
                Err(r)
            }
        }
    }

    fn apply_command(&mut self, cmd: Command, now: u64) -> Result<(), Rejection> {
        let status = self.p.state.run.status;
        match cmd {
            Command::Start { brief, approval } => {
                if !status.is_finished() {
                    return Err(invalid(format!(
                        "A run is already {}; cancel it before starting another.",
                        status_words(status)
                    )));
                }
                if self.p.state.run.tokens_used >= self.cfg.token_budget {
                    return Err(Rejection::new(
                        RejectionCode::BudgetExhausted,
                        "This session has used its whole token budget; open a new session.",
                    ));
                }
                self.start(brief, approval, now);
                Ok(())
            }
            Command::Approve { stage } => {
                self.open_gate(stage)?;
                self.p.state.gate = None;
                self.p.approved.retain(|(s, _)| *s != stage);
                let version = self.p.state.agent(stage).version;
                self.p.approved.push((stage, version));
                self.p.state.agent_mut(stage).status = AgentStatus::Done;
                self.p.state.run.status = RunStatus::Running;
                self.begin_run();
                match stage.next() {
                    Some(next) => self.begin_stage(next, now),
                    None => self.complete(now),
                }
                Ok(())
            }
            Command::Reject { stage, feedback } => {
                self.open_gate(stage)?;
                self.p.state.gate = None;
                self.p.state.run.status = RunStatus::Running;
                self.p.state.agent_mut(stage).status = AgentStatus::Queued;
                self.begin_run();
                self.user_message(&feedback);
                self.p.feedback = Some(feedback);
                self.p.state.agent_mut(stage).attempts = 0;
                self.begin_stage(stage, now);
                Ok(())
            }
            Command::Pause => match status {
                RunStatus::Running if !self.p.state.run.pause_requested => {
                    self.p.state.run.pause_requested = true;
                    Ok(())
                }
                RunStatus::Running => Err(invalid(
                    "A pause is already requested; the run stops after the current agent.",
                )),
                _ => Err(invalid(format!(
                    "Nothing is running to pause (the run is {}).",
                    status_words(status)
                ))),
            },
            Command::Resume => match status {
                RunStatus::Paused => {
                    self.p.state.run.status = RunStatus::Running;
                    let stage = self.p.state.run.stage.expect("paused before a stage");
                    self.begin_stage(stage, now);
                    Ok(())
                }
                RunStatus::Running if self.p.state.run.pause_requested => {
                    self.p.state.run.pause_requested = false;
                    Ok(())
                }
                _ => Err(invalid(format!(
                    "The run is not paused (it is {}).",
                    status_words(status)
                ))),
            },
            Command::Cancel => match status {
                RunStatus::Running | RunStatus::Paused => {
                    self.cancel(now);
                    Ok(())
                }
                RunStatus::WaitingApproval => {
                    self.p.state.gate = None;
                    self.begin_run();
                    self.cancel(now);
                    Ok(())
                }
                _ => Err(invalid(format!(
                    "Nothing to cancel (the run is {}).",
                    status_words(status)
                ))),
            },
            Command::Retry { stage } => {
                let agent = self.p.state.agent(stage).status;
                let retryable = matches!(status, RunStatus::Failed | RunStatus::Cancelled)
                    && matches!(agent, AgentStatus::Failed | AgentStatus::Cancelled);
                if !retryable {
                    return Err(invalid(format!(
                        "The {} has not failed; only a failed or cancelled stage can be retried.",
                        stage.title()
                    )));
                }
                self.p.state.run.status = RunStatus::Running;
                self.p.state.run.error = None;
                self.p.state.run.finished_at = None;
                self.p.state.run.pause_requested = false;
                for s in Stage::ALL.into_iter().filter(|s| *s > stage) {
                    self.p.state.agent_mut(s).status = AgentStatus::Queued;
                }
                self.p.state.agent_mut(stage).attempts = 0;
                self.begin_run();
                self.begin_stage(stage, now);
                let wait = self.p.provider_wait_until.take().filter(|&at| at > now);
                if let (Some(at), Some(_)) = (wait, &self.p.call) {
                    let message = format!(
                        "The AI provider asked BotArmy to wait before the next request; the {} \
                         starts by itself in {} seconds.",
                        stage.title(),
                        (at - now).div_ceil(1000)
                    );
                    self.defer_attempt(at, QueueReason::ProviderRetryAfter, message, now);
                }
                Ok(())
            }
        }
    }

    fn open_gate(&self, stage: Stage) -> Result<(), Rejection> {
        match &self.p.state.gate {
            Some(g) if g.stage == stage => Ok(()),
            Some(g) => Err(invalid(format!(
                "The open approval is for the {}, not the {}.",
                g.stage.title(),
                stage.title()
            ))),
            None => Err(invalid("No approval is waiting.")),
        }
    }

    fn start(&mut self, brief: String, approval: Approval, now: u64) {
        self.p.provider_wait_until = None;
        let st = &mut self.p.state;
        st.demo = self.cfg.demo;
        st.model = self.cfg.model.clone();
        st.run.status = RunStatus::Running;
        st.run.approval = Some(approval);
        st.run.stage = None;
        st.run.pause_requested = false;
        st.run.started_at = Some(now);
        st.run.finished_at = None;
        st.run.error = None;
        st.gate = None;
        for a in st.agents.values_mut() {
            a.status = AgentStatus::Queued;
            a.progress = 0;
            a.attempts = 0;
            a.input_tokens = 0;
            a.output_tokens = 0;
            a.started_at = None;
            a.finished_at = None;
            a.next_retry_at = None;
            a.last_error = None;
        }
        self.p.approved.clear();
        self.p.feedback = None;
        self.p.brief = brief.clone();
        self.begin_run();
        self.user_message(&brief);
        self.begin_stage(Stage::Analyst, now);
    }

    fn cancel(&mut self, now: u64) {
        if let Some(id) = self.live_call() {
            self.effects.push_back(Effect::AbortCall { call_id: id });
        }
        let current = self.p.state.run.stage;
        if self.p.call.is_some() {
            self.interrupt_attempt(InterruptReason::Cancelled, now);
            self.p.call = None;
        }
        let st = &mut self.p.state;
        for (stage, a) in st.agents.iter_mut() {
            if Some(*stage) == current && a.status != AgentStatus::Done {
                a.status = AgentStatus::Cancelled;
                a.next_retry_at = None;
                a.finished_at = Some(now);
            } else if a.status == AgentStatus::Queued {
                a.status = AgentStatus::Idle;
            }
        }
        st.run.status = RunStatus::Cancelled;
        st.run.pause_requested = false;
        st.run.finished_at = Some(now);
        self.p.feedback = None;
        self.end_run(Outcome::Cancelled);
    }

    fn complete(&mut self, now: u64) {
        let st = &mut self.p.state;
        st.run.status = RunStatus::Completed;
        st.run.stage = None;
        st.run.finished_at = Some(now);
        self.end_run(Outcome::Success);
    }

    // ---- LLM inputs -----------------------------------------------------------------------

    pub fn on_chunk(&mut self, call_id: u64, delta: &str, now: u64) {
        self.now = self.now.max(now);
        if !self.is_live(call_id) || delta.is_empty() {
            return;
        }
        let (stage, has_message) = {
            let c = self.p.call.as_mut().expect("live call");
            c.last_activity = now;
            (c.stage, c.message_id.is_some())
        };
        if !has_message {
            let id = format!("msg-{call_id}");
            self.emit(Event::TextMessageStart {
                message_id: id.clone(),
                role: MessageRole::Assistant,
                name: stage.title().to_string(),
            });
            self.p.call.as_mut().expect("live call").message_id = Some(id);
            self.p.state.agent_mut(stage).status = AgentStatus::Streaming;
            self.sync_state();
            // The first token is shown at once.
            self.last_flush = 0;
        }
        if self.answer.len() + delta.len() > MAX_ANSWER_BYTES {
            // A provider that streams without end must not fill the session's storage.
            self.effects.push_back(Effect::AbortCall { call_id });
            return self.on_failure(
                call_id,
                StageFailure {
                    code: FailureCode::AnswerTooLong,
                    message: format!(
                        "The AI's answer passed {} KiB, more than BotArmy keeps for one stage, \
                         so this attempt was stopped.",
                        MAX_ANSWER_BYTES / 1024
                    ),
                    detail: format!("answer over {MAX_ANSWER_BYTES} bytes"),
                    retryable: false,
                    retry_after_ms: None,
                },
                now,
            );
        }
        self.buf.push_str(delta);
        self.answer.push_str(delta);
        self.answer_chars += delta.chars().count();
        if self.buf.len() >= COALESCE_BYTES || now >= self.last_flush + COALESCE_MS {
            self.flush(now);
            self.sync_state();
        }
    }

    pub fn on_done(&mut self, call_id: u64, usage: Usage, now: u64) {
        self.now = self.now.max(now);
        self.dirty = true;
        if !self.is_live(call_id) {
            return;
        }
        if self.answer.trim().is_empty() {
            return self.on_failure(
                call_id,
                StageFailure {
                    code: FailureCode::MalformedStream,
                    message: "The AI finished without writing anything.".into(),
                    detail: "stream completed with no content".into(),
                    retryable: true,
                    retry_after_ms: None,
                },
                now,
            );
        }
        self.flush(now);
        let call = self.p.call.take().expect("live call");
        let stage = call.stage;
        if let Some(id) = call.message_id {
            self.emit(Event::TextMessageEnd { message_id: id });
        }
        let content = std::mem::take(&mut self.answer);
        self.answer_chars = 0;
        let version = self.p.state.agent(stage).version + 1;
        self.effects.push_back(Effect::SaveArtifact {
            stage,
            version,
            content: content.clone(),
            feedback: self.p.feedback.take(),
            created_at: now,
        });
        self.emit(
            LoggedCustom::Artifact(ArtifactValue {
                stage,
                version,
                chars: content.chars().count() as u64,
            })
            .into(),
        );
        self.emit(Event::StepFinished {
            step_name: stage.name().into(),
        });
        {
            let st = &mut self.p.state;
            st.run.tokens_used += usage.input_tokens + usage.output_tokens;
            self.p.run_usage.input_tokens += usage.input_tokens;
            self.p.run_usage.output_tokens += usage.output_tokens;
            let a = st.agent_mut(stage);
            a.input_tokens += usage.input_tokens;
            a.output_tokens += usage.output_tokens;
            a.version = version;
            a.progress = 100;
            a.finished_at = Some(now);
            a.next_retry_at = None;
            a.last_error = None;
            a.status = AgentStatus::Done;
        }
        match self.p.state.run.approval {
            Some(Approval::EachStage) => {
                let st = &mut self.p.state;
                let id = gate_id(stage, version);
                st.gate = Some(Gate {
                    id: id.clone(),
                    stage,
                    version,
                });
                st.agent_mut(stage).status = AgentStatus::WaitingApproval;
                st.run.status = RunStatus::WaitingApproval;
                st.run.pause_requested = false;
                let what = match stage.next() {
                    Some(n) => format!("the {} starts next", n.title()),
                    None => "the plan is complete".to_string(),
                };
                self.end_run(Outcome::Interrupt {
                    interrupts: vec![Interrupt {
                        id,
                        reason: "approval".into(),
                        message: format!(
                            "Review the {}'s work (version {version}): approve it and {what}, \
                                 or ask for changes.",
                            stage.title()
                        ),
                        response_schema: Some(crate::protocol::agui_http::gate_response_schema()),
                    }],
                });
            }
            _ => {
                self.p.approved.retain(|(s, _)| *s != stage);
                self.p.approved.push((stage, version));
                match stage.next() {
                    None => self.complete(now),
                    Some(next) if self.p.state.run.pause_requested => {
                        let st = &mut self.p.state;
                        st.run.status = RunStatus::Paused;
                        st.run.pause_requested = false;
                        st.run.stage = Some(next);
                        self.sync_state();
                    }
                    Some(next) => self.begin_stage(next, now),
                }
            }
        }
        self.sync_state();
    }

    /// BotArmy's own global provider limit has no room: the attempt goes back in the queue
    /// until `wait_ms` from now, without counting as a failed attempt.
    pub fn on_deferred(&mut self, call_id: u64, wait_ms: u64, now: u64) {
        self.now = self.now.max(now);
        self.dirty = true;
        if !self.is_live(call_id) {
            return;
        }
        let stage = self.p.call.as_ref().expect("live call").stage;
        let message = format!(
            "The {} is waiting for a free slot: BotArmy's shared limit on AI provider calls is \
             reached. It starts by itself.",
            stage.title()
        );
        self.defer_attempt(
            now + wait_ms.max(1),
            QueueReason::ProviderLimit,
            message,
            now,
        );
    }

    /// Puts the current attempt back in the queue until `at`; it does not count as an attempt.
    fn defer_attempt(&mut self, at: u64, reason: QueueReason, message: String, now: u64) {
        self.interrupt_attempt(InterruptReason::Deferred, now);
        let c = self.p.call.as_mut().expect("call");
        c.retry_at = Some(at);
        let stage = c.stage;
        let a = self.p.state.agent_mut(stage);
        a.attempts = a.attempts.saturating_sub(1);
        a.status = AgentStatus::Queued;
        a.next_retry_at = Some(at);
        self.emit(
            LoggedCustom::AgentQueued(AgentQueuedValue {
                stage,
                reason,
                message,
                next_retry_at: at,
            })
            .into(),
        );
        self.sync_state();
    }

    pub fn on_failure(&mut self, call_id: u64, f: StageFailure, now: u64) {
        self.now = self.now.max(now);
        self.dirty = true;
        if !self.is_live(call_id) {
            return;
        }
        let stage = self.p.call.as_ref().expect("live call").stage;
        self.interrupt_attempt(
            if f.retryable {
                InterruptReason::Retry
            } else {
                InterruptReason::Failed
            },
            now,
        );
        let attempts = self.p.state.agent(stage).attempts;
        let error = ErrorInfo {
            code: f.code.to_string(),
            message: f.message.clone(),
        };
        if f.retryable && attempts < self.cfg.max_attempts {
            let delay = backoff::retry_delay_ms(
                attempts,
                self.cfg.backoff_base_ms,
                self.cfg.backoff_cap_ms,
                f.retry_after_ms,
                self.next_rand(),
            );
            let at = now + delay;
            self.p.call.as_mut().expect("call").retry_at = Some(at);
            let a = self.p.state.agent_mut(stage);
            a.status = AgentStatus::Retrying;
            a.next_retry_at = Some(at);
            a.last_error = Some(error);
            self.emit(f.agent_error(stage, Some(at), attempts));
            self.sync_state();
            return;
        }
        self.p.call = None;
        self.p.provider_wait_until = f.retry_after_ms.map(|ms| now + ms);
        let (code, message) = if f.retryable {
            (
                FailureCode::RetriesExhausted,
                format!(
                    "The {} failed {attempts} times in a row: {}. BotArmy stopped trying; \
                     press Retry to try again.",
                    stage.title(),
                    exhausted_reason(f.code)
                ),
            )
        } else {
            (f.code, format!("{} The run stopped.", f.message))
        };
        self.emit(
            StageFailure {
                retryable: false,
                ..f
            }
            .agent_error(stage, None, attempts),
        );
        self.fail_run(stage, code, message, now);
    }

    fn fail_run(&mut self, stage: Stage, code: FailureCode, message: String, now: u64) {
        let code = code.to_string();
        let st = &mut self.p.state;
        let a = st.agent_mut(stage);
        a.status = AgentStatus::Failed;
        a.next_retry_at = None;
        a.finished_at = Some(now);
        a.last_error = Some(ErrorInfo {
            code: code.clone(),
            message: message.clone(),
        });
        // Stages that will not run now are idle again, as after a cancel.
        for a in st.agents.values_mut() {
            if a.status == AgentStatus::Queued {
                a.status = AgentStatus::Idle;
            }
        }
        st.run.status = RunStatus::Failed;
        st.run.finished_at = Some(now);
        st.run.pause_requested = false;
        st.run.error = Some(ErrorInfo {
            code: code.clone(),
            message: message.clone(),
        });
        self.sync_state();
        let usage = Some(self.run_usage());
        self.emit(Event::RunError {
            message,
            code,
            usage,
        });
        self.p.in_run = false;
    }

    // ---- building blocks ------------------------------------------------------------------

    fn is_live(&self, call_id: u64) -> bool {
        self.p
            .call
            .as_ref()
            .is_some_and(|c| c.id == call_id && c.begun && c.retry_at.is_none())
    }

    fn begin_run(&mut self) {
        debug_assert!(!self.p.in_run, "runs do not nest");
        self.p.runs += 1;
        let run_id = format!("run-{}", self.p.runs);
        self.p.state.run.run_id = Some(run_id.clone());
        self.p.in_run = true;
        self.p.run_usage = Usage::default();
        self.emit(Event::RunStarted {
            thread_id: self.p.state.session_id.clone(),
            run_id,
        });
        let snapshot = self.p.state.to_json();
        self.sent_state = snapshot.clone();
        self.emit(Event::StateSnapshot { snapshot });
    }

    fn end_run(&mut self, outcome: Outcome) {
        self.sync_state();
        self.emit(Event::RunFinished {
            thread_id: self.p.state.session_id.clone(),
            run_id: self.p.state.run.run_id.clone().unwrap_or_default(),
            outcome,
            usage: Some(self.run_usage()),
        });
        self.p.in_run = false;
    }

    /// The current run's usage in AG-UI's form: one model per session today.
    fn run_usage(&self) -> Vec<TokenUsage> {
        let u = self.p.run_usage;
        vec![TokenUsage {
            model: self.p.state.model.clone(),
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
        }]
    }

    fn user_message(&mut self, text: &str) {
        self.p.user_messages += 1;
        let id = format!("msg-u{}", self.p.user_messages);
        self.emit(Event::TextMessageStart {
            message_id: id.clone(),
            role: MessageRole::User,
            name: "You".into(),
        });
        self.emit(Event::TextMessageContent {
            message_id: id.clone(),
            delta: text.to_string(),
        });
        self.emit(Event::TextMessageEnd { message_id: id });
    }

    /// Starts a stage's first attempt (or the first after a rerun/retry/resume).
    fn begin_stage(&mut self, stage: Stage, now: u64) {
        if self.p.state.run.tokens_used >= self.cfg.token_budget {
            let (used, budget) = (self.p.state.run.tokens_used, self.cfg.token_budget);
            let f = StageFailure {
                code: FailureCode::BudgetExhausted,
                message: "The session's token budget is used up.".into(),
                detail: format!("{used} of {budget} tokens used"),
                retryable: false,
                retry_after_ms: None,
            };
            self.emit(f.agent_error(stage, None, 0));
            self.fail_run(
                stage,
                FailureCode::BudgetExhausted,
                format!(
                    "This session has used {used} of its {budget} tokens, so the {} was not \
                     started. Open a new session to continue.",
                    stage.title()
                ),
                now,
            );
            return;
        }
        self.p.state.run.stage = Some(stage);
        let a = self.p.state.agent_mut(stage);
        a.progress = 0;
        a.finished_at = None;
        a.started_at = Some(now);
        self.begin_attempt(stage, now);
    }

    fn begin_attempt(&mut self, stage: Stage, now: u64) {
        self.p.calls += 1;
        self.p.call = Some(Call {
            id: self.p.calls,
            stage,
            begun: false,
            step_open: true,
            message_id: None,
            last_activity: now,
            retry_at: None,
            expected_chars: crate::agents::expected_chars(stage),
        });
        self.buf.clear();
        self.answer.clear();
        self.answer_chars = 0;
        let a = self.p.state.agent_mut(stage);
        a.attempts += 1;
        a.status = AgentStatus::Thinking;
        a.next_retry_at = None;
        a.progress = 0;
        self.emit(Event::StepStarted {
            step_name: stage.name().into(),
        });
        self.sync_state();
    }

    /// Closes whatever the current attempt has open (message, step) and forgets its text.
    fn interrupt_attempt(&mut self, reason: InterruptReason, now: u64) {
        self.flush(now);
        let Some(c) = self.p.call.as_mut() else {
            return;
        };
        let (stage, msg, step) = (c.stage, c.message_id.take(), c.step_open);
        c.step_open = false;
        c.begun = false;
        if let Some(id) = msg {
            self.emit(Event::TextMessageEnd {
                message_id: id.clone(),
            });
            self.emit(
                LoggedCustom::MessageInterrupted(MessageInterruptedValue {
                    message_id: id,
                    stage,
                    reason,
                })
                .into(),
            );
        }
        if step {
            self.emit(Event::StepFinished {
                step_name: stage.name().into(),
            });
        }
        self.buf.clear();
        self.answer.clear();
        self.answer_chars = 0;
        if reason == InterruptReason::Restart {
            // Same attempt, new call: the process died, the request did not fail.
            self.p.calls += 1;
            let id = self.p.calls;
            let c = self.p.call.as_mut().expect("call");
            c.id = id;
            c.step_open = true;
            c.last_activity = now;
            self.p.state.agent_mut(stage).status = AgentStatus::Thinking;
            self.emit(Event::StepStarted {
                step_name: stage.name().into(),
            });
        }
    }

    fn flush(&mut self, now: u64) {
        if self.buf.is_empty() {
            return;
        }
        let Some(id) = self.p.call.as_ref().and_then(|c| c.message_id.clone()) else {
            self.buf.clear();
            return;
        };
        let delta = std::mem::take(&mut self.buf);
        self.last_flush = now;
        self.emit(Event::TextMessageContent {
            message_id: id,
            delta,
        });
        // Progress is an estimate from the expected answer length, capped below 100 until done.
        let (stage, expected) = {
            let c = self.p.call.as_ref().expect("call");
            (c.stage, c.expected_chars)
        };
        let pct = crate::agents::progress_percent(expected, self.answer_chars).min(95);
        let a = self.p.state.agent_mut(stage);
        if pct >= a.progress + 5 {
            a.progress = pct;
            self.dirty = true;
        }
    }

    /// Emits a `STATE_DELTA` with whatever changed since the state was last sent.
    fn sync_state(&mut self) {
        if !self.p.in_run {
            return;
        }
        let cur = self.p.state.to_json();
        let ops = patch::diff(&self.sent_state, &cur);
        if !ops.is_empty() {
            self.sent_state = cur;
            self.emit(Event::StateDelta { delta: ops });
        }
    }

    fn emit(&mut self, event: Event) {
        debug_assert!(
            self.p.in_run || matches!(event, Event::RunStarted { .. }),
            "event outside a run: {event:?}"
        );
        if !matches!(event, Event::TextMessageContent { .. }) {
            self.dirty = true;
        }
        if !matches!(event, Event::TextMessageContent { .. }) && !self.buf.is_empty() {
            // Keep order: buffered text goes out before anything else of this session.
            let delta = std::mem::take(&mut self.buf);
            if let Some(id) = self.p.call.as_ref().and_then(|c| c.message_id.clone()) {
                self.push(Event::TextMessageContent {
                    message_id: id,
                    delta,
                });
            }
        }
        self.push(event);
    }

    fn push(&mut self, event: Event) {
        self.p.seq += 1;
        let json = frame(Some(self.p.seq), self.clock_hint(), &event);
        self.effects.push_back(Effect::Emit {
            seq: self.p.seq,
            json,
            event,
        });
    }

    /// Timestamp for frames: the latest time the session was told.
    fn clock_hint(&self) -> u64 {
        self.now
    }

    fn next_rand(&mut self) -> f64 {
        // xorshift64*: deterministic per session, persisted, good enough for jitter.
        let mut x = self.p.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.p.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
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

/// What kept going wrong, for the message after the last attempt (the per-attempt wording
/// promises a retry, which would be wrong here).
fn exhausted_reason(code: FailureCode) -> &'static str {
    match code {
        FailureCode::RateLimited => "the AI provider kept answering that it is too busy",
        FailureCode::Timeout => "the AI kept taking too long or stopping mid-answer",
        FailureCode::Network => "the connection to the AI provider kept failing",
        FailureCode::ServerError => "the AI provider kept reporting errors on its side",
        FailureCode::MalformedStream => "the AI provider's answers kept arriving garbled",
        _ => "the same problem kept happening",
    }
}

fn invalid(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectionCode::InvalidState, msg)
}

fn status_words(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Idle => "idle",
        RunStatus::Running => "running",
        RunStatus::Paused => "paused",
        RunStatus::WaitingApproval => "waiting for approval",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
    }
}
