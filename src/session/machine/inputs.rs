//! What the LLM call brings back: text, the end of an answer, a deferral, a failure;
//! and the run that fails for good.

use super::*;

impl Session {
    pub fn on_chunk(&mut self, call_id: u64, delta: &str, now: u64) {
        self.now = self.now.max(now);
        if !self.is_live(call_id) || delta.is_empty() {
            return;
        }
        self.p.call.as_mut().expect("live call").last_activity = now;
        // Thinking is over once the answer speaks.
        self.end_reasoning();
        self.ensure_message(call_id);
        // Tool arguments streamed before this text go out first.
        self.flush_side();
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
        // Nothing else in the state moves with the text (a new message or a failure synced
        // already), so the state is only diffed when the progress moved: a diff of the whole
        // state per text event was a tenth of the runtime's CPU.
        if (self.buf.len() >= COALESCE_BYTES || now >= self.last_flush + COALESCE_MS)
            && self.flush(now)
        {
            self.sync_state();
        }
    }

    /// The agent's answer message of call `call_id`, started if it was not yet: its id.
    pub(super) fn ensure_message(&mut self, call_id: u64) -> String {
        let c = self.p.call.as_ref().expect("live call");
        if let Some(id) = &c.message_id {
            return id.clone();
        }
        let stage = c.stage;
        let id = format!("msg-{call_id}");
        self.emit(Event::TextMessageStart {
            message_id: id.clone(),
            role: MessageRole::Assistant,
            name: stage.title().to_string(),
        });
        self.p.call.as_mut().expect("live call").message_id = Some(id.clone());
        self.p.state.agent_mut(stage).status = AgentStatus::Streaming;
        self.sync_state();
        // The first token is shown at once.
        self.last_flush = 0;
        id
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
        self.end_reasoning();
        self.end_open_tools();
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
        // Under the model that answered: stages of one run may use different providers.
        let model =
            (self.p.state.agent(stage).model.clone()).unwrap_or_else(|| self.p.state.model.clone());
        self.add_run_usage(&model, usage);
        {
            let st = &mut self.p.state;
            st.run.tokens_used += usage.input_tokens + usage.output_tokens;
            let cost = match (&st.agent(stage).model, st.agent(stage).cached) {
                (Some(id), cached) => {
                    let model = id.split_once(':').map_or(id.as_str(), |(_, m)| m);
                    let tokens =
                        crate::llm::price::TokenUsage::new(usage.input_tokens, usage.output_tokens);
                    self.cfg.prices.cost(model, tokens, cached)
                }
                // The demo costs nothing.
                (None, _) => crate::llm::price::Cost::ZERO,
            };
            st.run.cost_micro_usd = st.run.cost_micro_usd.saturating_add(cost.micro_usd);
            st.run.price_known &= cost.price_known;
            let a = st.agent_mut(stage);
            a.cost_micro_usd = a.cost_micro_usd.saturating_add(cost.micro_usd);
            a.price_known &= cost.price_known;
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
    pub(super) fn defer_attempt(
        &mut self,
        at: u64,
        reason: QueueReason,
        message: String,
        now: u64,
    ) {
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

    pub(super) fn fail_run(&mut self, stage: Stage, code: FailureCode, message: String, now: u64) {
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
