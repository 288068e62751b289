//! The commands a client sends: validation against the state, idempotency, and one
//! function per command.

use super::*;

impl Session {
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

    pub(super) fn apply_command(&mut self, cmd: Command, now: u64) -> Result<(), Rejection> {
        let status = self.p.state.run.status;
        match cmd {
            Command::Start {
                brief,
                approval,
                models,
            } => {
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
                let models = self.check_models(&models)?;
                if let Some(b) = self.cfg.budget_micros {
                    if self.p.state.run.cost_micro_usd >= b {
                        return Err(Rejection::new(
                            RejectionCode::BudgetExhausted,
                            "This session has spent its whole dollar budget; open a new session.",
                        ));
                    }
                }
                for (stage, model) in Stage::ALL.into_iter().zip(models) {
                    self.p.state.agent_mut(stage).model = model;
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
            Command::Rerun { stage, feedback } => {
                if !matches!(
                    status,
                    RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
                ) {
                    return Err(invalid(format!(
                        "A rerun starts after a run has ended; the run is {}.",
                        status_words(status)
                    )));
                }
                let missing = Stage::ALL
                    .into_iter()
                    .filter(|s| *s < stage)
                    .find(|s| !self.p.approved.iter().any(|(a, _)| a == s));
                if let Some(m) = missing {
                    return Err(invalid(format!(
                        "The {} has no accepted result to build on; rerun from the {}.",
                        m.title(),
                        m.title()
                    )));
                }
                if feedback.is_some() && self.p.state.agent(stage).version == 0 {
                    return Err(invalid(format!(
                        "The {} has no result yet to give feedback on; rerun it without feedback.",
                        stage.title()
                    )));
                }
                // The stages before it keep their approved artifacts: no call for them. From
                // it on, new answers: the cache is not read.
                self.p.approved.retain(|(s, _)| *s < stage);
                self.p.fresh_from = Some(stage);
                let st = &mut self.p.state;
                st.run.status = RunStatus::Running;
                st.run.error = None;
                st.run.started_at = Some(now);
                st.run.finished_at = None;
                st.run.pause_requested = false;
                st.gate = None;
                for s in Stage::ALL.into_iter().filter(|s| *s >= stage) {
                    let a = st.agent_mut(s);
                    a.status = AgentStatus::Queued;
                    a.attempts = 0;
                    a.progress = 0;
                    a.last_error = None;
                    a.next_retry_at = None;
                }
                self.begin_run();
                if let Some(f) = &feedback {
                    self.user_message(f);
                }
                self.p.feedback = feedback;
                self.begin_stage(stage, now);
                Ok(())
            }
        }
    }

    /// The model of each stage for a new run: the user's choice where one was sent and it is
    /// offered for that stage, else the stage's default; `None` for all in demo mode.
    fn check_models(&self, chosen: &[(Stage, String)]) -> Result<Vec<Option<String>>, Rejection> {
        let bad = |m: String| Rejection::new(RejectionCode::InvalidField, m);
        if self.cfg.demo && !chosen.is_empty() {
            return Err(bad(
                "BotArmy runs the demo provider here, which has no models to choose; leave \
                 models out, or configure a provider key."
                    .into(),
            ));
        }
        Stage::ALL
            .into_iter()
            .map(|stage| {
                let offered = &self.cfg.offered[stage.index()];
                match chosen.iter().find(|(s, _)| *s == stage) {
                    None => Ok(offered.first().cloned()),
                    Some((_, id)) if offered.contains(id) => Ok(Some(id.clone())),
                    Some((_, id)) => Err(bad(format!(
                        "{id} is not offered for the {}; choose one of: {}.",
                        stage.title(),
                        offered.join(", ")
                    ))),
                }
            })
            .collect()
    }

    pub(super) fn open_gate(&self, stage: Stage) -> Result<(), Rejection> {
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

    pub(super) fn start(&mut self, brief: String, approval: Approval, now: u64) {
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
        st.run.budget_micro_usd = self.cfg.budget_micros;
        for a in st.agents.values_mut() {
            a.status = AgentStatus::Queued;
            a.progress = 0;
            a.attempts = 0;
            a.input_tokens = 0;
            a.output_tokens = 0;
            a.cost_micro_usd = 0;
            a.price_known = true;
            a.started_at = None;
            a.finished_at = None;
            a.next_retry_at = None;
            a.last_error = None;
        }
        self.p.approved.clear();
        self.p.feedback = None;
        self.p.fresh_from = None;
        self.p.brief = brief.clone();
        self.begin_run();
        self.user_message(&brief);
        self.begin_stage(Stage::Analyst, now);
    }

    pub(super) fn cancel(&mut self, now: u64) {
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

    pub(super) fn complete(&mut self, now: u64) {
        let st = &mut self.p.state;
        st.run.status = RunStatus::Completed;
        st.run.stage = None;
        st.run.finished_at = Some(now);
        self.end_run(Outcome::Success);
    }
}

/// A short, stable digest of a command (its fields included).
fn command_digest(cmd: &Command) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{cmd:?}").as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
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
