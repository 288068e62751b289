//! The building blocks: runs, stages and attempts begun and interrupted, text flushed,
//! state diffed, events emitted.

use super::*;

impl Session {
    pub(super) fn is_live(&self, call_id: u64) -> bool {
        self.p
            .call
            .as_ref()
            .is_some_and(|c| c.id == call_id && c.begun && c.retry_at.is_none())
    }

    pub(super) fn begin_run(&mut self) {
        debug_assert!(!self.p.in_run, "runs do not nest");
        self.p.runs += 1;
        let run_id = format!("run-{}", self.p.runs);
        self.p.state.run.run_id = Some(run_id.clone());
        self.p.in_run = true;
        self.p.run_usage.clear();
        self.emit(Event::RunStarted {
            thread_id: self.p.state.session_id.clone(),
            run_id,
        });
        let snapshot = self.p.state.to_json();
        self.sent_state = snapshot.clone();
        self.emit(Event::StateSnapshot { snapshot });
    }

    pub(super) fn end_run(&mut self, outcome: Outcome) {
        self.sync_state();
        self.emit(Event::RunFinished {
            thread_id: self.p.state.session_id.clone(),
            run_id: self.p.state.run.run_id.clone().unwrap_or_default(),
            outcome,
            usage: Some(self.run_usage()),
        });
        self.p.in_run = false;
    }

    /// The current run's usage in AG-UI's form: one entry per model that answered in it, in
    /// the order they first did (none when no answer was accepted).
    pub(super) fn run_usage(&self) -> Vec<TokenUsage> {
        self.p
            .run_usage
            .iter()
            .map(|(model, u)| TokenUsage {
                model: match model.as_str() {
                    "" => self.p.state.model.clone(),
                    m => m.to_string(),
                },
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                total_tokens: u.input_tokens + u.output_tokens,
            })
            .collect()
    }

    /// Counts an accepted answer's tokens toward the run's usage of `model`.
    pub(super) fn add_run_usage(&mut self, model: &str, usage: Usage) {
        let entry = match self.p.run_usage.iter().position(|(m, _)| m == model) {
            Some(i) => &mut self.p.run_usage[i].1,
            None => {
                self.p.run_usage.push((model.to_string(), Usage::default()));
                &mut self.p.run_usage.last_mut().expect("just pushed").1
            }
        };
        entry.input_tokens += usage.input_tokens;
        entry.output_tokens += usage.output_tokens;
    }

    pub(super) fn user_message(&mut self, text: &str) {
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

    /// Starts a stage's first attempt (or the first after a rerun/retry/resume), unless a
    /// budget is spent.
    pub(super) fn begin_stage(&mut self, stage: Stage, now: u64) {
        use crate::llm::price::format_usd;
        let run = &self.p.state.run;
        let spent = if run.tokens_used >= self.cfg.token_budget {
            let (used, budget) = (run.tokens_used, self.cfg.token_budget);
            Some((
                "token",
                format!("{used} of {budget} tokens used"),
                format!("has used {used} of its {budget} tokens"),
            ))
        } else {
            self.cfg
                .budget_micros
                .filter(|b| run.cost_micro_usd >= *b)
                .map(|b| {
                    let (spent, budget) = (format_usd(run.cost_micro_usd), format_usd(b));
                    (
                        "dollar",
                        format!("{spent} of {budget} spent"),
                        format!("has spent {spent} of its {budget} budget"),
                    )
                })
        };
        if let Some((kind, detail, words)) = spent {
            let f = StageFailure {
                code: FailureCode::BudgetExhausted,
                message: format!("The session's {kind} budget is used up."),
                detail,
                retryable: false,
                retry_after_ms: None,
            };
            self.emit(f.agent_error(stage, None, 0));
            self.fail_run(
                stage,
                FailureCode::BudgetExhausted,
                format!(
                    "This session {words}, so the {} was not started. Open a new session to \
                     continue.",
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

    pub(super) fn begin_attempt(&mut self, stage: Stage, now: u64) {
        self.p.calls += 1;
        self.p.work_attempts += 1;
        self.discard_files_from(stage);
        self.p.call = Some(Call {
            id: self.p.calls,
            stage,
            begun: false,
            step_open: true,
            message_id: None,
            last_activity: now,
            begun_at: now,
            reasoning_bytes: 0,
            retry_at: None,
            expected_chars: crate::agents::expected_chars(stage),
            work: self.p.work_attempts,
            open_tools: Vec::new(),
            reasoning: None,
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
    pub(super) fn interrupt_attempt(&mut self, reason: InterruptReason, now: u64) {
        self.flush(now);
        self.end_reasoning();
        self.end_open_tools();
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

    /// Sends the buffered text; whether the state changed (the agent's progress moved).
    pub(super) fn flush(&mut self, now: u64) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        let Some(id) = self.p.call.as_ref().and_then(|c| c.message_id.clone()) else {
            self.buf.clear();
            return false;
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
            return true;
        }
        false
    }

    /// Emits a `STATE_DELTA` with whatever changed since the state was last sent.
    pub(super) fn sync_state(&mut self) {
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

    pub(super) fn emit(&mut self, event: Event) {
        debug_assert!(
            self.p.in_run || matches!(event, Event::RunStarted { .. }),
            "event outside a run: {event:?}"
        );
        if !matches!(event, Event::TextMessageContent { .. }) {
            self.dirty = true;
        }
        if !matches!(
            event,
            Event::ToolCallArgs { .. } | Event::ReasoningMessageContent { .. }
        ) {
            self.flush_side();
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

    pub(super) fn push(&mut self, event: Event) {
        self.p.seq += 1;
        let json = frame(Some(self.p.seq), self.clock_hint(), &event);
        self.effects.push_back(Effect::Emit {
            seq: self.p.seq,
            json,
            event,
        });
    }

    /// Timestamp for frames: the latest time the session was told.
    pub(super) fn clock_hint(&self) -> u64 {
        self.now
    }

    pub(super) fn next_rand(&mut self) -> f64 {
        // xorshift64*: deterministic per session, persisted, good enough for jitter.
        let mut x = self.p.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.p.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}
