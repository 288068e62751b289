//! Tool calls of the call in flight: their events (`TOOL_CALL_*`, arguments coalesced like
//! text), running them against the project's [`Workspace`] exactly once, and the state's
//! `files`.
//!
//! Ids: a provider's tool call id is only unique within its answer for some compatible servers,
//! and a call replayed after a restart must map to its first application. So the workspace key
//! is `<work attempt>:<round>:<provider id>` (a restarted attempt keeps its work attempt, and
//! the demo its ids), and the wire id is `tc<call>-<round>-<provider id>` (unique in the log,
//! since a restart gives the attempt a new call id).

use super::*;
use crate::llm::tools::TOOL_ERROR_PREFIX;
use crate::llm::ToolCall;
use crate::protocol::limits::MAX_REASONING_BYTES;
use crate::session::state::FileMeta;
use crate::workspace::limits::MAX_TOOL_CALLS_PER_ROUND;
use crate::workspace::Workspace;

/// Provider ids are cut to this many characters in keys and on the wire.
const MAX_ID_CHARS: usize = 64;

impl Session {
    /// The project's stored rows, loaded by the edge after [`Session::restore`].
    pub fn set_workspace(&mut self, ws: Workspace) {
        self.ws = ws;
        self.refresh_files();
    }

    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    fn wire_id(&self, call_id: u64, round: u32, id: &str) -> String {
        format!("tc{call_id}-{round}-{}", cut(id))
    }

    /// A tool call begins streaming in answer round `round` of call `call_id`.
    pub fn on_tool_start(&mut self, call_id: u64, round: u32, id: &str, name: &str, now: u64) {
        self.now = self.now.max(now);
        if !self.is_live(call_id) {
            return;
        }
        self.touch(now);
        self.end_reasoning();
        let parent = self.ensure_message(call_id);
        let wire = self.wire_id(call_id, round, id);
        self.p
            .call
            .as_mut()
            .expect("live call")
            .open_tools
            .push(wire.clone());
        self.dirty = true;
        self.emit(Event::ToolCallStart {
            tool_call_id: wire,
            tool_call_name: name.chars().take(MAX_ID_CHARS).collect(),
            parent_message_id: parent,
        });
    }

    /// More of a tool call's arguments: buffered and flushed like text.
    pub fn on_tool_args(&mut self, call_id: u64, round: u32, id: &str, delta: &str, now: u64) {
        self.now = self.now.max(now);
        if !self.is_live(call_id) || delta.is_empty() {
            return;
        }
        self.touch(now);
        let wire = self.wire_id(call_id, round, id);
        // Text streamed before these arguments goes out first.
        self.flush(now);
        self.buffer_side(Side::ToolArgs, wire, delta, now);
    }

    /// Appends to the side buffer (flushing another stream's first), and sends it when it is
    /// due like text.
    fn buffer_side(&mut self, side: Side, id: String, delta: &str, now: u64) {
        if self
            .side_buf
            .as_ref()
            .is_some_and(|(k, i, _)| *k != side || *i != id)
        {
            self.flush_side();
        }
        self.side_buf
            .get_or_insert_with(|| (side, id, String::new()))
            .2
            .push_str(delta);
        let waiting = self.side_buf.as_ref().map_or(0, |(_, _, b)| b.len());
        if waiting >= COALESCE_BYTES || now >= self.last_flush + COALESCE_MS {
            self.last_flush = now;
            self.flush_side();
        }
    }

    /// Reasoning ("thinking") text of the live call: its own AG-UI reasoning message, never
    /// part of the answer or the artifact.
    pub fn on_reasoning(&mut self, call_id: u64, delta: &str, now: u64) {
        self.now = self.now.max(now);
        if !self.is_live(call_id) || delta.is_empty() {
            return;
        }
        self.touch(now);
        let c = self.p.call.as_mut().expect("live call");
        c.reasoning_bytes += delta.len();
        if c.reasoning_bytes > MAX_REASONING_BYTES {
            // Like an answer without end: it must not fill the log, the runtime or the clock.
            self.effects.push_back(Effect::AbortCall { call_id });
            return self.on_failure(
                call_id,
                StageFailure {
                    code: FailureCode::ReasoningTooLong,
                    message: format!(
                        "The AI's reasoning passed {} KiB in this attempt, more than BotArmy \
                         keeps for one stage, so the attempt was stopped. Retry it, or choose a \
                         model or setting that thinks less.",
                        MAX_REASONING_BYTES / 1024
                    ),
                    detail: format!("reasoning over {MAX_REASONING_BYTES} bytes"),
                    retryable: false,
                    retry_after_ms: None,
                },
                now,
            );
        }
        let open = self.p.call.as_ref().and_then(|c| c.reasoning.clone());
        let id = match open {
            Some(id) => id,
            None => {
                // Unique in the log: the seq of the event that opens it.
                let id = format!("reason-{call_id}-{}", self.p.seq + 1);
                self.emit(Event::ReasoningStart {
                    message_id: id.clone(),
                });
                self.emit(Event::ReasoningMessageStart {
                    message_id: id.clone(),
                    role: crate::protocol::event::ReasoningRole::Reasoning,
                });
                self.p.call.as_mut().expect("live call").reasoning = Some(id.clone());
                self.dirty = true;
                // The first thought is shown at once.
                self.last_flush = 0;
                id
            }
        };
        self.buffer_side(Side::Reasoning, id, delta, now);
    }

    /// Closes the reasoning message and span, if one is open.
    pub(super) fn end_reasoning(&mut self) {
        let Some(id) = self.p.call.as_mut().and_then(|c| c.reasoning.take()) else {
            return;
        };
        self.dirty = true;
        self.emit(Event::ReasoningMessageEnd {
            message_id: id.clone(),
        });
        self.emit(Event::ReasoningEnd { message_id: id });
    }

    pub fn on_tool_end(&mut self, call_id: u64, round: u32, id: &str, now: u64) {
        self.now = self.now.max(now);
        if !self.is_live(call_id) {
            return;
        }
        self.touch(now);
        let wire = self.wire_id(call_id, round, id);
        let c = self.p.call.as_mut().expect("live call");
        let Some(at) = c.open_tools.iter().position(|t| *t == wire) else {
            return;
        };
        c.open_tools.remove(at);
        self.dirty = true;
        self.emit(Event::ToolCallEnd { tool_call_id: wire });
    }

    /// Ends the attempt's tool calls still open (an answer cut short): AG-UI wants every
    /// started call ended before its message and run end.
    pub(super) fn end_open_tools(&mut self) {
        let open = self
            .p
            .call
            .as_mut()
            .map(|c| std::mem::take(&mut c.open_tools))
            .unwrap_or_default();
        for id in open {
            self.emit(Event::ToolCallEnd { tool_call_id: id });
        }
    }

    /// Runs the complete calls of one answer against the workspace, in order, each exactly
    /// once; returns the text to answer the model with for each (empty when the call is no
    /// longer live). Calls past [`MAX_TOOL_CALLS_PER_ROUND`] are answered with an error and not
    /// run.
    pub fn run_tools(
        &mut self,
        call_id: u64,
        round: u32,
        calls: &[ToolCall],
        now: u64,
    ) -> Vec<String> {
        self.now = self.now.max(now);
        if !self.is_live(call_id) {
            return Vec::new();
        }
        self.touch(now);
        let (stage, work) = {
            let c = self.p.call.as_ref().expect("live call");
            (c.stage, c.work)
        };
        let mut results = Vec::with_capacity(calls.len());
        let mut changed = false;
        for (n, call) in calls.iter().enumerate() {
            let (text, is_error) = if n >= MAX_TOOL_CALLS_PER_ROUND {
                (
                    format!(
                        "This answer made {} tool calls; at most {MAX_TOOL_CALLS_PER_ROUND} run \
                         per answer, so this one did not. Make it again in your next answer.",
                        calls.len()
                    ),
                    true,
                )
            } else {
                let key = format!("{work}:{round}:{}", cut(&call.id));
                let o = self
                    .ws
                    .apply(&key, &call.name, &call.arguments, stage, work);
                if let Some(v) = o.change {
                    changed = true;
                    self.effects.push_back(Effect::SaveFile(v));
                }
                if let Some(r) = o.record {
                    self.effects.push_back(Effect::SaveToolCall(r));
                }
                (o.result_text, o.is_error)
            };
            let content = if is_error {
                format!("{TOOL_ERROR_PREFIX}{text}")
            } else {
                text
            };
            let wire = self.wire_id(call_id, round, &call.id);
            self.emit(Event::ToolCallResult {
                message_id: format!("tool-{wire}"),
                tool_call_id: wire,
                content: content.clone(),
                role: crate::protocol::event::ToolRole::Tool,
            });
            results.push(content);
        }
        if changed {
            self.refresh_files();
            self.sync_state();
        }
        results
    }

    /// A new attempt of `stage` starts from the earlier stages' files: drop the rows of this
    /// stage and the later ones.
    pub(super) fn discard_files_from(&mut self, stage: Stage) {
        if self.ws.discard_from(stage) {
            self.effects.push_back(Effect::DiscardFiles { from: stage });
            self.refresh_files();
        }
    }

    /// The state's `files` from the workspace's current project.
    fn refresh_files(&mut self) {
        let stages: BTreeMap<u64, Stage> =
            self.ws.file_rows().map(|v| (v.version, v.stage)).collect();
        let files: BTreeMap<String, FileMeta> = self
            .ws
            .latest()
            .into_iter()
            .map(|(path, f)| {
                let stage = stages.get(&f.version).copied().unwrap_or(Stage::Analyst);
                (
                    path.to_string(),
                    FileMeta {
                        bytes: f.content.len() as u64,
                        version: f.version,
                        stage,
                    },
                )
            })
            .collect();
        if files != self.p.state.files {
            self.p.state.files = files;
            self.dirty = true;
        }
    }

    /// The buffered arguments or reasoning, as one event.
    pub(super) fn flush_side(&mut self) {
        match self.side_buf.take() {
            Some((Side::ToolArgs, id, delta)) => self.push(Event::ToolCallArgs {
                tool_call_id: id,
                delta,
            }),
            Some((Side::Reasoning, id, delta)) => self.push(Event::ReasoningMessageContent {
                message_id: id,
                delta,
            }),
            None => {}
        }
    }

    fn touch(&mut self, now: u64) {
        if let Some(c) = self.p.call.as_mut() {
            c.last_activity = now;
        }
    }
}

fn cut(id: &str) -> String {
    id.chars().take(MAX_ID_CHARS).collect()
}
