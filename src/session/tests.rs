//! Tests of the session machine: every transition, every failure path, and property tests
//! that drive random inputs and check the log's invariants and replay.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use serde_json::{json, Value};

use super::replay::{plan, ReplayPlan};
use super::schedule::{next_alarm, Timer};
use super::*;
use crate::agents::Stage;
use crate::protocol::{decode_frame, patch, Frame, PatchOpList, Rejection};

struct H {
    s: Session,
    cfg: SessionConfig,
    now: u64,
    log: Vec<Value>,
    artifacts: HashMap<(Stage, u32), String>,
    aborted: Vec<u64>,
    /// The session row as the edge last wrote it (it writes only when `take_dirty()`).
    saved: String,
    /// The `files` and `tool_calls` tables as the edge keeps them.
    files: std::collections::BTreeMap<u64, crate::workspace::FileVersion>,
    tool_calls: std::collections::BTreeMap<String, crate::workspace::CallRecord>,
    /// The last call announced with `Effect::StartCall`, as the edge keeps it until it starts.
    next: Option<CallSpec>,
    /// Every call id announced, in order.
    starts: Vec<u64>,
}

impl H {
    fn new() -> H {
        H::with(SessionConfig::default())
    }

    fn with(cfg: SessionConfig) -> H {
        H {
            s: Session::new("s1", cfg.clone()),
            cfg,
            now: 1_000_000,
            log: vec![],
            artifacts: HashMap::new(),
            aborted: vec![],
            saved: String::new(),
            files: Default::default(),
            tool_calls: Default::default(),
            next: None,
            starts: vec![],
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.s.poll_effect() {
            match e {
                Effect::Emit { seq, json, .. } => {
                    let v: Value = serde_json::from_str(&json).unwrap();
                    assert_eq!(v["seq"], json!(seq));
                    self.log.push(v);
                }
                Effect::AbortCall { call_id } => self.aborted.push(call_id),
                Effect::SaveArtifact {
                    stage,
                    version,
                    content,
                    ..
                } => {
                    assert!(self.artifacts.insert((stage, version), content).is_none());
                }
                Effect::SaveFile(v) => {
                    assert!(
                        self.files.insert(v.version, v).is_none(),
                        "a version stored twice"
                    );
                }
                Effect::SaveToolCall(c) => {
                    assert!(
                        self.tool_calls.insert(c.call_id.clone(), c).is_none(),
                        "applied twice"
                    );
                }
                Effect::DiscardFiles { from } => {
                    self.files.retain(|_, v| v.stage < from);
                    self.tool_calls.retain(|_, c| c.stage < from);
                }
                Effect::StartCall(spec) => {
                    self.starts.push(spec.call_id);
                    self.next = Some(spec);
                }
            }
        }
        // Every startable call has been announced, as it is now (nothing is left to polling).
        if let Some(pending) = self.s.pending_call() {
            assert_eq!(
                self.next.as_ref(),
                Some(&pending),
                "the startable call was announced"
            );
        }
        // As the edge commits: a clean session must not have changed what it would store.
        if self.s.take_dirty() {
            self.saved = self.s.persisted();
        } else {
            assert_eq!(
                self.s.persisted(),
                self.saved,
                "changed but not marked dirty"
            );
        }
    }

    fn cmd(&mut self, text: &str) -> Result<Ack, Rejection> {
        let Ok(Frame::Command(env)) = decode_frame(text) else {
            panic!("not a session command: {text}")
        };
        let r = self.s.command(env, self.now);
        self.drain();
        r
    }

    fn code(&mut self, text: &str) -> &'static str {
        self.cmd(text).unwrap_err().code.as_str()
    }

    /// Starts the announced call, as the edge does.
    fn begin(&mut self) -> CallSpec {
        let spec = self.next.take().expect("a call was announced");
        assert!(
            self.s.call_started(spec.call_id, None, self.now),
            "the announced call starts"
        );
        self.drain();
        spec
    }

    /// Runs the pending call to completion with `text`, one word every 5 ms.
    fn answer(&mut self, text: &str) -> CallSpec {
        self.answer_reporting(
            text,
            Usage {
                input_tokens: 100,
                output_tokens: 50,
            },
        )
    }

    /// [`H::answer`], with the provider reporting `usage`.
    fn answer_reporting(&mut self, text: &str, usage: Usage) -> CallSpec {
        let spec = self.begin();
        for w in text.split_inclusive(' ') {
            self.now += 5;
            self.s.on_chunk(spec.call_id, w, self.now);
            self.drain();
        }
        self.now += 5;
        self.s.on_done(spec.call_id, usage, self.now);
        self.drain();
        spec
    }

    fn fail(&mut self, code: &str, retryable: bool, retry_after_ms: Option<u64>) -> CallSpec {
        let spec = self.begin();
        self.now += 5;
        self.s.on_chunk(spec.call_id, "partial ", self.now);
        self.s.on_failure(
            spec.call_id,
            StageFailure {
                code: code.parse().expect("a failure code"),
                message: format!("{code} happened."),
                detail: "detail".into(),
                retryable,
                retry_after_ms,
            },
            self.now,
        );
        self.drain();
        spec
    }

    fn advance_to_retry(&mut self) {
        let t = next_alarm(&self.s.timers()).expect("a timer is set");
        self.now = self.now.max(t);
        self.s.on_timeout(self.now);
        self.drain();
    }

    fn types(&self) -> Vec<String> {
        self.log
            .iter()
            .map(|e| match e["type"].as_str().unwrap() {
                "CUSTOM" => format!("CUSTOM:{}", e["name"].as_str().unwrap()),
                t => t.to_string(),
            })
            .collect()
    }

    fn last(&self, ty: &str) -> &Value {
        self.log.iter().rev().find(|e| e["type"] == ty).unwrap()
    }

    fn status(&self) -> RunStatus {
        self.s.state().run.status
    }

    fn restart(&mut self) {
        let json = self.s.persisted();
        // As the edge does: the seq goes on from the newest event in the log.
        let newest = self.log.last().map_or(0, |e| e["seq"].as_u64().unwrap());
        self.s = Session::restore(&json, newest, self.cfg.clone(), self.now).unwrap();
        let ws = crate::workspace::Workspace::from_rows(
            self.files.values().cloned(),
            self.tool_calls.values().cloned(),
        )
        .unwrap();
        self.s.set_workspace(ws);
        self.drain();
    }

    /// Streams one answer round of tool calls `(provider id, tool, arguments)` into the live
    /// call and runs them; the results.
    fn tools(&mut self, spec: &CallSpec, round: u32, calls: &[(&str, &str, &str)]) -> Vec<String> {
        let mut done = Vec::new();
        for (id, name, args) in calls {
            self.now += 5;
            self.s
                .on_tool_start(spec.call_id, round, id, name, self.now);
            let cut = args.len() / 2;
            let cut = (0..=cut).rev().find(|c| args.is_char_boundary(*c)).unwrap();
            self.s
                .on_tool_args(spec.call_id, round, id, &args[..cut], self.now);
            self.now += 1;
            self.s
                .on_tool_args(spec.call_id, round, id, &args[cut..], self.now);
            self.s.on_tool_end(spec.call_id, round, id, self.now);
            done.push(crate::llm::ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                arguments: args.to_string(),
            });
        }
        let r = self.s.run_tools(spec.call_id, round, &done, self.now);
        self.drain();
        r
    }
}

fn check_invariants(log: &[Value], state: &SessionState) {
    let mut in_run = false;
    let mut open: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut steps = 0i32;
    let mut doc = Value::Null;
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["seq"], json!(i as u64 + 1), "seq gap at {i}");
        let ty = e["type"].as_str().unwrap();
        if ty == "RUN_STARTED" {
            assert!(!in_run, "nested run at seq {}", i + 1);
            in_run = true;
            assert_eq!(log[i + 1]["type"], "STATE_SNAPSHOT");
            continue;
        }
        assert!(in_run, "{ty} outside a run at seq {}", i + 1);
        match ty {
            "STATE_SNAPSHOT" => doc = e["snapshot"].clone(),
            "STATE_DELTA" => {
                let ops: PatchOpList = serde_json::from_value(e["delta"].clone()).unwrap();
                patch::apply(&mut doc, &ops).unwrap();
            }
            "TEXT_MESSAGE_START" => {
                let id = e["messageId"].as_str().unwrap().to_string();
                assert!(seen.insert(id.clone()), "message id reused: {id}");
                open.insert(id);
            }
            "TEXT_MESSAGE_CONTENT" => {
                assert!(
                    open.contains(e["messageId"].as_str().unwrap()),
                    "content of closed message"
                );
                assert!(!e["delta"].as_str().unwrap().is_empty());
            }
            "TEXT_MESSAGE_END" => {
                assert!(
                    open.remove(e["messageId"].as_str().unwrap()),
                    "end of closed message"
                );
            }
            "TOOL_CALL_START" => {
                let id = e["toolCallId"].as_str().unwrap().to_string();
                assert!(seen.insert(id.clone()), "tool call id reused: {id}");
                assert!(
                    open.contains(e["parentMessageId"].as_str().unwrap()),
                    "a tool call's parent message is open"
                );
                open.insert(id);
            }
            "TOOL_CALL_ARGS" => {
                assert!(
                    open.contains(e["toolCallId"].as_str().unwrap()),
                    "args of a closed call"
                );
                assert!(!e["delta"].as_str().unwrap().is_empty());
            }
            "TOOL_CALL_END" => {
                assert!(
                    open.remove(e["toolCallId"].as_str().unwrap()),
                    "end of a closed call"
                );
            }
            "TOOL_CALL_RESULT" => {
                let id = e["toolCallId"].as_str().unwrap();
                assert!(
                    seen.contains(id) && !open.contains(id),
                    "a result after its call ended"
                );
            }
            "REASONING_START" | "REASONING_MESSAGE_START" => {
                let id = format!("{ty}:{}", e["messageId"].as_str().unwrap());
                assert!(seen.insert(id.clone()), "reasoning id reused: {id}");
                open.insert(id);
            }
            "REASONING_MESSAGE_CONTENT" => {
                let id = format!(
                    "REASONING_MESSAGE_START:{}",
                    e["messageId"].as_str().unwrap()
                );
                assert!(open.contains(&id), "reasoning content of a closed message");
            }
            "REASONING_MESSAGE_END" | "REASONING_END" => {
                let start = if ty == "REASONING_END" {
                    "REASONING_START"
                } else {
                    "REASONING_MESSAGE_START"
                };
                let id = format!("{start}:{}", e["messageId"].as_str().unwrap());
                assert!(open.remove(&id), "{ty} of a closed reasoning");
            }
            "STEP_STARTED" => steps += 1,
            "STEP_FINISHED" => {
                steps -= 1;
                assert!(steps >= 0);
            }
            "RUN_FINISHED" | "RUN_ERROR" => {
                assert!(open.is_empty(), "message open at run end (seq {})", i + 1);
                assert_eq!(steps, 0, "step open at run end (seq {})", i + 1);
                in_run = false;
            }
            _ => {}
        }
    }
    if !log.is_empty() {
        assert_eq!(
            doc,
            state.to_json(),
            "snapshot + deltas must equal the state"
        );
    }
}

const ANSWER: &str = "## Plan\n\nA fine answer with several words in it. ";

#[test]
fn each_stage_runs_through_five_gates_to_success() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"Build a todo app","approval":"each_stage"}"#)
        .unwrap();
    for (i, stage) in Stage::ALL.into_iter().enumerate() {
        let spec = h.answer(ANSWER);
        assert_eq!(spec.stage, stage);
        assert_eq!(spec.brief, "Build a todo app");
        assert_eq!(spec.prior.len(), i, "every approved artifact before it");
        assert_eq!(h.status(), RunStatus::WaitingApproval);
        let fin = h.last("RUN_FINISHED");
        assert_eq!(fin["outcome"]["type"], "interrupt");
        assert_eq!(
            fin["outcome"]["interrupts"][0]["id"],
            format!("gate-{}-1", stage.name())
        );
        // Each run between gates ran one call: its usage, in AG-UI's form.
        assert_eq!(
            fin["usage"],
            json!([{"model": "demo", "inputTokens": 100, "outputTokens": 50, "totalTokens": 150}])
        );
        assert_eq!(h.s.state().gate.as_ref().unwrap().stage, stage);
        assert_eq!(h.artifacts[&(stage, 1)], ANSWER);
        h.cmd(&format!(
            r#"{{"type":"approve","stage":"{}"}}"#,
            stage.name()
        ))
        .unwrap();
    }
    assert_eq!(h.status(), RunStatus::Completed);
    assert_eq!(h.last("RUN_FINISHED")["outcome"]["type"], "success");
    // The last run only closed the pipeline: no model answered in it.
    assert_eq!(h.last("RUN_FINISHED")["usage"], json!([]));
    assert_eq!(h.types().iter().filter(|t| *t == "RUN_STARTED").count(), 6);
    assert_eq!(h.s.state().run.tokens_used, 5 * 150);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn auto_runs_straight_through_in_one_run() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    for stage in Stage::ALL {
        let spec = h.answer(ANSWER);
        assert_eq!(spec.stage, stage);
        assert_eq!(spec.prior.len(), stage.index());
    }
    assert_eq!(h.status(), RunStatus::Completed);
    let t = h.types();
    assert_eq!(t.iter().filter(|t| *t == "RUN_STARTED").count(), 1);
    assert_eq!(t.first().unwrap(), "RUN_STARTED");
    assert_eq!(t.last().unwrap(), "RUN_FINISHED");
    assert_eq!(
        h.last("RUN_FINISHED")["usage"],
        json!([{"model": "demo", "inputTokens": 500, "outputTokens": 250, "totalTokens": 750}])
    );
    assert!(h
        .s
        .state()
        .agents
        .values()
        .all(|a| a.status == AgentStatus::Done && a.progress == 100));
    check_invariants(&h.log, h.s.state());
}

#[test]
fn rerun_from_a_stage_keeps_the_earlier_artifacts_and_calls_only_from_there() {
    let mut h = H::new();
    assert_eq!(
        h.code(r#"{"type":"rerun","stage":"tester"}"#),
        "invalid_state",
        "nothing has run yet"
    );
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.answer(ANSWER);
    assert_eq!(
        h.code(r#"{"type":"rerun","stage":"tester"}"#),
        "invalid_state",
        "not while running"
    );
    for _ in 1..Stage::ALL.len() {
        h.answer(ANSWER);
    }
    assert_eq!(h.status(), RunStatus::Completed);
    let runs_before = h.types().iter().filter(|t| *t == "RUN_STARTED").count();
    h.cmd(r#"{"type":"rerun","stage":"tester","feedback":"cover the error paths"}"#)
        .unwrap();
    assert_eq!(h.status(), RunStatus::Running);
    assert_eq!(
        h.types().iter().filter(|t| *t == "RUN_STARTED").count(),
        runs_before + 1,
        "a new run"
    );
    // Exactly two calls: the tester (with its feedback and previous version), the deployer.
    let tester = h.answer("tester again ");
    assert_eq!(tester.stage, Stage::Tester);
    assert!(tester.fresh, "a rerun does not read the answer cache");
    assert_eq!(tester.feedback.as_deref(), Some("cover the error paths"));
    assert_eq!(tester.previous_version, Some(1));
    assert_eq!(
        tester.prior,
        [
            (Stage::Analyst, 1),
            (Stage::Architect, 1),
            (Stage::Developer, 1)
        ]
    );
    let deployer = h.answer("deployer again ");
    assert_eq!(deployer.stage, Stage::Deployer);
    assert!(deployer.fresh);
    assert_eq!(deployer.prior.last(), Some(&(Stage::Tester, 2)));
    assert!(h.s.pending_call().is_none());
    assert_eq!(h.status(), RunStatus::Completed);
    let versions: Vec<u32> = Stage::ALL
        .iter()
        .map(|s| h.s.state().agent(*s).version)
        .collect();
    assert_eq!(versions, [1, 1, 1, 2, 2]);
    assert_eq!(h.artifacts[&(Stage::Tester, 2)], "tester again ");
    check_invariants(&h.log, h.s.state());
}

#[test]
fn rerun_needs_the_earlier_stages_accepted() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.answer(ANSWER);
    h.fail("bad_key", false, None);
    assert_eq!(h.status(), RunStatus::Failed);
    // The architect failed: a rerun from the tester has nothing to build on.
    let r = h.cmd(r#"{"type":"rerun","stage":"tester"}"#).unwrap_err();
    assert_eq!(r.code.as_str(), "invalid_state");
    assert!(r.message.contains("Architect"), "{}", r.message);
    // From the architect it runs, without feedback: a fresh attempt.
    h.cmd(r#"{"type":"rerun","stage":"architect"}"#).unwrap();
    let spec = h.answer(ANSWER);
    assert_eq!(spec.stage, Stage::Architect);
    assert_eq!(spec.feedback, None);
    assert_eq!(spec.previous_version, None);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn a_cached_answer_is_marked_and_spends_no_tokens() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.answer(ANSWER); // analyst from the provider: 150 tokens
    let spec = h.begin();
    h.s.call_cached(spec.call_id, ANSWER.len(), h.now);
    h.drain();
    let a = h.s.state().agent(Stage::Architect);
    assert!(a.cached);
    assert_eq!(
        h.last("STATE_DELTA")["delta"],
        json!([{"op": "replace", "path": "/agents/architect/cached", "value": true}])
    );
    h.s.on_chunk(spec.call_id, ANSWER, h.now);
    h.s.on_done(spec.call_id, Usage::default(), h.now);
    h.drain();
    let st = h.s.state();
    assert_eq!(st.run.tokens_used, 150);
    let a = st.agent(Stage::Architect);
    assert_eq!((a.version, a.input_tokens, a.output_tokens), (1, 0, 0));
    assert!(a.cached && !st.agent(Stage::Analyst).cached);
    // A stale call id changes nothing.
    h.s.call_cached(spec.call_id, ANSWER.len(), h.now);
    h.drain();
    assert!(!h.s.state().agent(Stage::Developer).cached);
    check_invariants(&h.log, h.s.state());

    // A rerun after feedback goes to the provider: its start clears the mark.
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    let spec = h.begin();
    h.s.call_cached(spec.call_id, ANSWER.len(), h.now);
    h.s.on_chunk(spec.call_id, ANSWER, h.now);
    h.s.on_done(spec.call_id, Usage::default(), h.now);
    h.drain();
    assert!(h.s.state().agent(Stage::Analyst).cached);
    h.cmd(r#"{"type":"reject","stage":"analyst","feedback":"more"}"#)
        .unwrap();
    h.begin();
    assert!(!h.s.state().agent(Stage::Analyst).cached);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn first_events_of_a_pipeline() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    assert_eq!(
        h.types(),
        [
            "RUN_STARTED",
            "STATE_SNAPSHOT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "STEP_STARTED",
            "STATE_DELTA"
        ]
    );
    assert_eq!(h.log[2]["role"], "user");
    assert_eq!(h.log[3]["delta"], "b");
    assert_eq!(h.log[5]["stepName"], "analyst");
}

#[test]
fn reject_reruns_with_feedback_and_keeps_versions() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    h.answer("first draft ");
    h.cmd(r#"{"type":"reject","stage":"analyst","feedback":"add security"}"#)
        .unwrap();
    let spec = h.answer("second draft ");
    assert_eq!(spec.stage, Stage::Analyst);
    assert_eq!(spec.feedback.as_deref(), Some("add security"));
    assert_eq!(spec.previous_version, Some(1));
    assert_eq!(h.artifacts[&(Stage::Analyst, 1)], "first draft ");
    assert_eq!(h.artifacts[&(Stage::Analyst, 2)], "second draft ");
    assert_eq!(h.s.state().gate.as_ref().unwrap().id, "gate-analyst-2");
    // The feedback is in the thread as a user message.
    assert!(h
        .log
        .iter()
        .any(|e| e["type"] == "TEXT_MESSAGE_CONTENT" && e["delta"] == "add security"));
    h.cmd(r#"{"type":"approve","stage":"analyst"}"#).unwrap();
    let spec = h.begin();
    assert_eq!(spec.prior, vec![(Stage::Analyst, 2)]);
    assert_eq!(spec.feedback, None);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn transient_failures_retry_with_backoff_then_succeed() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    let first = h.fail("rate_limited", true, Some(3_000));
    let a = h.s.state().agent(Stage::Analyst).clone();
    assert_eq!(a.status, AgentStatus::Retrying);
    let at = a.next_retry_at.unwrap();
    assert!(at >= h.now + 3_000, "Retry-After is honoured");
    assert!(
        h.s.pending_call().is_none(),
        "nothing runs before the retry time"
    );
    // The partial message is closed and marked, never continued.
    let t = h.types();
    assert!(t.ends_with(&[
        "TEXT_MESSAGE_END".into(),
        "CUSTOM:message_interrupted".into(),
        "STEP_FINISHED".into(),
        "CUSTOM:agent_error".into(),
        "STATE_DELTA".into()
    ]));
    h.advance_to_retry();
    let spec = h.answer(ANSWER);
    assert_ne!(spec.call_id, first.call_id);
    assert_eq!(spec.attempt, 2);
    let a = h.s.state().agent(Stage::Analyst);
    assert_eq!((a.status, a.attempts), (AgentStatus::Done, 2));
    assert_eq!(
        h.artifacts[&(Stage::Analyst, 1)],
        ANSWER,
        "no partial text spliced in"
    );
    check_invariants(&h.log, h.s.state());
}

#[test]
fn retries_exhausted_fails_the_run_in_plain_words() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    for i in 1..=4 {
        h.fail("server_error", true, None);
        if i < 4 {
            h.advance_to_retry();
        }
    }
    assert_eq!(h.status(), RunStatus::Failed);
    let err = h.last("RUN_ERROR");
    assert_eq!(err["code"], "retries_exhausted");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("The Analyst failed 4 times"), "{msg}");
    assert!(
        msg.contains("errors on its side") && msg.contains("press Retry"),
        "{msg}"
    );
    assert!(
        !msg.contains("will wait and try again"),
        "no false promise: {msg}"
    );
    assert!(h.s.timers().is_empty(), "no timer left behind");
    // Retry restarts the failed stage in a new run.
    h.cmd(r#"{"type":"retry","stage":"analyst"}"#).unwrap();
    assert_eq!(h.status(), RunStatus::Running);
    h.answer(ANSWER);
    assert_eq!(h.s.state().agent(Stage::Analyst).status, AgentStatus::Done);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn manual_retry_waits_for_the_providers_retry_after() {
    let mut h = H::with(SessionConfig {
        max_attempts: 2,
        ..SessionConfig::default()
    });
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.fail("rate_limited", true, Some(30_000));
    h.advance_to_retry();
    h.fail("rate_limited", true, Some(30_000));
    assert_eq!(h.status(), RunStatus::Failed);
    let until = h.now + 30_000;
    // Pressed 10 s later: nothing is called before the provider's 30 s are up.
    h.now += 10_000;
    h.cmd(r#"{"type":"retry","stage":"analyst"}"#).unwrap();
    assert_eq!(h.status(), RunStatus::Running);
    assert!(h.s.pending_call().is_none(), "no call before Retry-After");
    let a = h.s.state().agent(Stage::Analyst);
    assert_eq!(
        (a.status, a.attempts, a.next_retry_at),
        (AgentStatus::Queued, 0, Some(until))
    );
    let queued = h.last("CUSTOM");
    assert_eq!(queued["name"], "agent_queued");
    assert_eq!(queued["value"]["reason"], "provider_retry_after");
    let msg = queued["value"]["message"].as_str().unwrap();
    assert!(msg.contains("starts by itself in 20 seconds"), "{msg}");
    assert_eq!(h.s.timers().get(&Timer::Call), Some(&until));
    h.advance_to_retry();
    assert_eq!(h.now, until);
    assert_eq!(h.answer(ANSWER).attempt, 1);
    assert_eq!(h.s.state().agent(Stage::Analyst).status, AgentStatus::Done);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn manual_retry_after_the_wait_is_over_calls_at_once() {
    let mut h = H::with(SessionConfig {
        max_attempts: 1,
        ..SessionConfig::default()
    });
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.fail("rate_limited", true, Some(5_000));
    assert_eq!(h.status(), RunStatus::Failed);
    h.now += 5_000;
    h.cmd(r#"{"type":"retry","stage":"analyst"}"#).unwrap();
    assert_eq!(h.s.pending_call().map(|c| c.attempt), Some(1));
    check_invariants(&h.log, h.s.state());
}

#[test]
fn permanent_failure_stops_at_once() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    h.fail("bad_key", false, None);
    assert_eq!(h.status(), RunStatus::Failed);
    assert_eq!(h.last("RUN_ERROR")["code"], "bad_key");
    assert_eq!(h.s.state().agent(Stage::Analyst).attempts, 1);
    assert_eq!(
        h.code(r#"{"type":"retry","stage":"tester"}"#),
        "invalid_state"
    );
    check_invariants(&h.log, h.s.state());
}

#[test]
fn backoff_delays_stay_within_full_jitter_bounds() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    for attempt in 1..=3u32 {
        h.fail("network", true, None);
        let wait = h.s.state().agent(Stage::Analyst).next_retry_at.unwrap() - h.now;
        let cap = (1000u64 << (attempt - 1)).min(30_000);
        assert!(wait <= cap, "attempt {attempt}: {wait} > {cap}");
        h.advance_to_retry();
    }
}

#[test]
fn waiting_for_the_global_limit_is_not_a_failed_attempt() {
    let mut h = H::with(SessionConfig {
        max_attempts: 2,
        ..SessionConfig::default()
    });
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    for _ in 0..5 {
        let spec = h.begin();
        assert_eq!(spec.attempt, 1);
        h.s.on_deferred(spec.call_id, 2_000, h.now);
        h.drain();
        let a = h.s.state().agent(Stage::Analyst);
        assert_eq!((a.status, a.attempts), (AgentStatus::Queued, 0));
        assert_eq!(a.next_retry_at, Some(h.now + 2_000));
        assert!(h.s.pending_call().is_none());
        h.advance_to_retry();
    }
    assert_eq!(h.last("CUSTOM")["name"], "agent_queued");
    h.answer(ANSWER);
    assert_eq!(h.s.state().agent(Stage::Analyst).status, AgentStatus::Done);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn watchdog_aborts_a_stalled_stream() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    let spec = h.begin();
    h.now += 5;
    h.s.on_chunk(spec.call_id, "some ", h.now);
    h.drain();
    assert_eq!(h.s.timers().get(&Timer::Call), Some(&(h.now + 30_000)));
    h.now += 30_000;
    h.s.on_timeout(h.now);
    h.drain();
    assert_eq!(h.aborted, vec![spec.call_id]);
    let a = h.s.state().agent(Stage::Analyst);
    assert_eq!(a.status, AgentStatus::Retrying);
    assert_eq!(a.last_error.as_ref().unwrap().code, "timeout");
    // Late chunks of the aborted call are ignored.
    let n = h.log.len();
    h.s.on_chunk(spec.call_id, "late", h.now);
    h.drain();
    assert_eq!(h.log.len(), n);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn a_call_is_announced_once_each_time_it_may_start_and_a_stale_one_is_refused() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    let first = h.next.clone().expect("the analyst's call is announced");
    assert_eq!(h.starts, vec![first.call_id]);
    // Draining again, or inputs that change nothing about it, announce nothing more.
    h.drain();
    h.s.on_timeout(h.now + 1);
    h.drain();
    assert_eq!(h.starts, vec![first.call_id]);
    // A restart before the edge got to it: the restored session announces it again.
    h.restart();
    assert_eq!(h.starts, vec![first.call_id, first.call_id]);
    // Cancelled before it began: the announcement is stale and starting it changes nothing.
    h.cmd(r#"{"type":"cancel"}"#).unwrap();
    let before = h.s.persisted();
    assert!(!h.s.call_started(first.call_id, None, h.now));
    assert_eq!(h.s.persisted(), before);
    h.drain();
    assert!(h.s.live_call().is_none());
    // A new run announces its own call; once begun, it is not startable twice.
    h.cmd(r#"{"type":"start","brief":"b2","approval":"auto"}"#)
        .unwrap();
    let second = h.begin();
    assert_ne!(second.call_id, first.call_id);
    assert!(!h.s.call_started(second.call_id, None, h.now));
    // A retryable failure: nothing to start until the retry is due, then one announcement.
    h.s.on_failure(
        second.call_id,
        StageFailure {
            code: "rate_limited".parse().unwrap(),
            message: "Slow down.".into(),
            detail: String::new(),
            retryable: true,
            retry_after_ms: Some(2_000),
        },
        h.now + 1,
    );
    h.drain();
    let n = h.starts.len();
    assert!(
        h.next.is_none(),
        "a failed call is not announced before its retry"
    );
    h.s.on_timeout(h.now + 1_000);
    h.drain();
    assert_eq!(h.starts.len(), n, "nothing announced before Retry-After");
    h.advance_to_retry();
    assert_eq!(h.starts.len(), n + 1, "the retry is announced once");
    let retry = h.begin();
    assert_eq!(retry.stage, Stage::Analyst);
    assert_eq!(retry.attempt, 2);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn pause_takes_effect_between_stages_and_resume_continues() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.begin();
    h.cmd(r#"{"type":"pause"}"#).unwrap();
    assert!(h.s.state().run.pause_requested);
    assert_eq!(h.code(r#"{"type":"pause"}"#), "invalid_state");
    // The analyst finishes the call already begun; the run pauses before the architect.
    let call = h.s.live_call().unwrap();
    h.s.on_chunk(call, "text ", h.now + 1);
    h.s.on_done(call, Usage::default(), h.now + 2);
    h.drain();
    assert_eq!(h.status(), RunStatus::Paused);
    assert!(h.s.pending_call().is_none());
    assert_eq!(h.s.state().run.stage, Some(Stage::Architect));
    h.cmd(r#"{"type":"resume"}"#).unwrap();
    assert_eq!(h.s.pending_call().unwrap().stage, Stage::Architect);
    assert_eq!(h.code(r#"{"type":"resume"}"#), "invalid_state");
    check_invariants(&h.log, h.s.state());
}

#[test]
fn cancel_mid_stream_aborts_and_closes_everything() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    let spec = h.begin();
    h.s.on_chunk(spec.call_id, "half an answer", h.now + 1);
    h.drain();
    h.cmd(r#"{"type":"cancel"}"#).unwrap();
    assert_eq!(h.aborted, vec![spec.call_id]);
    assert_eq!(h.status(), RunStatus::Cancelled);
    assert_eq!(h.last("RUN_FINISHED")["outcome"]["type"], "cancelled");
    let mi = h
        .log
        .iter()
        .find(|e| e["name"] == "message_interrupted")
        .unwrap();
    assert_eq!(mi["value"]["reason"], "cancelled");
    assert_eq!(
        h.s.state().agent(Stage::Analyst).status,
        AgentStatus::Cancelled
    );
    assert_eq!(h.s.state().agent(Stage::Tester).status, AgentStatus::Idle);
    assert_eq!(h.code(r#"{"type":"cancel"}"#), "invalid_state");
    // A new pipeline can start after a cancel; so can a retry of the cancelled stage.
    h.cmd(r#"{"type":"retry","stage":"analyst"}"#).unwrap();
    assert_eq!(h.status(), RunStatus::Running);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn cancel_at_a_gate_is_a_short_run() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    h.answer(ANSWER);
    let n = h.log.len();
    h.cmd(r#"{"type":"cancel"}"#).unwrap();
    let t = &h.types()[n..];
    assert_eq!(t.first().unwrap(), "RUN_STARTED");
    assert_eq!(t.last().unwrap(), "RUN_FINISHED");
    assert_eq!(h.s.state().gate, None);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn commands_that_do_not_fit_change_nothing() {
    let mut h = H::new();
    for (cmd, code) in [
        (r#"{"type":"approve","stage":"analyst"}"#, "invalid_state"),
        (
            r#"{"type":"reject","stage":"analyst","feedback":"x"}"#,
            "invalid_state",
        ),
        (r#"{"type":"pause"}"#, "invalid_state"),
        (r#"{"type":"resume"}"#, "invalid_state"),
        (r#"{"type":"cancel"}"#, "invalid_state"),
        (r#"{"type":"retry","stage":"analyst"}"#, "invalid_state"),
    ] {
        let before = h.s.persisted();
        let r = h.cmd(cmd).unwrap_err();
        assert_eq!(r.code, code, "{cmd}");
        assert!(!r.message.is_empty());
        assert_eq!(h.s.persisted(), before, "{cmd} changed the session");
    }
    assert!(h.log.is_empty());
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    let before = (h.s.persisted(), h.log.len());
    assert_eq!(
        h.code(r#"{"type":"start","brief":"again"}"#),
        "invalid_state"
    );
    assert_eq!(
        h.code(r#"{"type":"approve","stage":"analyst"}"#),
        "invalid_state"
    );
    h.answer(ANSWER);
    let r = h.cmd(r#"{"type":"approve","stage":"tester"}"#).unwrap_err();
    assert!(r.message.contains("Analyst"), "{}", r.message);
    assert_ne!(before.0, h.s.persisted());
}

#[test]
fn idempotency_keys_apply_once() {
    let mut h = H::new();
    let a = h.cmd(r#"{"type":"start","brief":"b","id":"k1"}"#).unwrap();
    assert!(!a.duplicate);
    let n = h.log.len();
    let b = h.cmd(r#"{"type":"start","brief":"b","id":"k1"}"#).unwrap();
    assert!(b.duplicate);
    assert_eq!(h.log.len(), n);
    // A rejected command does not use up its key.
    let r = h.cmd(r#"{"type":"resume","id":"k2"}"#).unwrap_err();
    assert_eq!(r.id.as_deref(), Some("k2"));
    h.cmd(r#"{"type":"pause","id":"k2"}"#).unwrap();
}

#[test]
fn an_id_reused_for_a_different_command_is_refused_and_changes_nothing() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","id":"k1"}"#).unwrap();
    let (n, before) = (h.log.len(), h.s.persisted());
    let r = h.cmd(r#"{"type":"cancel","id":"k1"}"#).unwrap_err();
    assert_eq!(
        (r.code.as_str(), r.id.as_deref()),
        ("id_reused", Some("k1"))
    );
    let r = h
        .cmd(r#"{"type":"start","brief":"other","id":"k1"}"#)
        .unwrap_err();
    assert_eq!(r.code, "id_reused", "same type, different fields");
    assert_eq!((h.log.len(), h.s.persisted()), (n, before));
    assert!(
        h.cmd(r#"{"type":"start","brief":"b","id":"k1"}"#)
            .unwrap()
            .duplicate
    );
}

#[test]
fn token_budget_stops_the_run_before_the_next_stage() {
    let mut h = H::with(SessionConfig {
        token_budget: 200,
        ..SessionConfig::default()
    });
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.answer(ANSWER); // 150 tokens
    h.answer(ANSWER); // 300 tokens: over budget
    assert_eq!(h.status(), RunStatus::Failed);
    assert_eq!(h.last("RUN_ERROR")["code"], "budget_exhausted");
    assert!(h.s.pending_call().is_none());
    assert_eq!(
        h.code(r#"{"type":"start","brief":"b"}"#),
        "budget_exhausted"
    );
    check_invariants(&h.log, h.s.state());
}

#[test]
fn text_is_coalesced_without_changing_it() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    let spec = h.begin();
    let mut sent = String::new();
    // 200 tokens arriving 1 ms apart: about one frame per 16 ms.
    for i in 0..200 {
        let tok = format!("t{i} ");
        sent.push_str(&tok);
        h.now += 1;
        h.s.on_chunk(spec.call_id, &tok, h.now);
        h.drain();
    }
    h.s.on_done(spec.call_id, Usage::default(), h.now);
    h.drain();
    let contents: Vec<&str> = h
        .log
        .iter()
        .filter(|e| e["type"] == "TEXT_MESSAGE_CONTENT" && e["messageId"] == "msg-1")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert!(
        contents.len() <= 200 / 16 + 2,
        "{} frames for 200 tokens",
        contents.len()
    );
    assert!(contents.len() >= 200 / 16 - 1);
    assert_eq!(contents.concat(), sent);
    // The first token went out at once.
    assert_eq!(contents[0], "t0 ");
    check_invariants(&h.log, h.s.state());
}

#[test]
fn restart_mid_stream_closes_the_message_and_reruns() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.answer(ANSWER);
    let spec = h.begin();
    h.s.on_chunk(spec.call_id, "half", h.now + 1);
    h.drain();
    h.restart();
    assert!(h.s.resumed_after_restart());
    let mi = h
        .log
        .iter()
        .rev()
        .find(|e| e["name"] == "message_interrupted");
    assert_eq!(mi.unwrap()["value"]["reason"], "restart");
    // The same attempt goes on (docs/protocol.md, STEP_STARTED): its step is closed and
    // started again, and the restart is not counted as an attempt.
    let steps: Vec<&Value> = h
        .log
        .iter()
        .filter(|e| e["stepName"] == "architect")
        .collect();
    let kinds: Vec<&str> = steps.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["STEP_STARTED", "STEP_FINISHED", "STEP_STARTED"]);
    assert_eq!(h.s.state().agent(Stage::Architect).attempts, 1);
    let next = h.s.pending_call().expect("the stage runs again");
    assert_eq!(next.stage, Stage::Architect);
    assert_ne!(next.call_id, spec.call_id);
    assert_eq!(next.prior, vec![(Stage::Analyst, 1)]);
    h.answer(ANSWER);
    assert_eq!(h.artifacts[&(Stage::Architect, 1)], ANSWER);
    assert_eq!(h.s.state().agent(Stage::Architect).attempts, 1);
    // A restart while nothing was in flight changes nothing.
    let before = h.s.persisted();
    h.restart();
    assert_eq!(h.s.persisted(), before);
    assert!(!h.s.resumed_after_restart());
    check_invariants(&h.log, h.s.state());
}

#[test]
fn text_events_do_not_rewrite_the_session_row_and_seq_goes_on_from_the_log() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    let spec = h.begin();
    h.s.on_chunk(spec.call_id, "first words ", h.now);
    h.drain();
    let row = h.s.persisted();
    let mut text_events = 0;
    for _ in 0..10 {
        h.now += 20;
        let before = h.log.len();
        h.s.on_chunk(spec.call_id, "more ", h.now);
        h.s.on_timeout(h.now);
        h.drain();
        for e in &h.log[before..] {
            assert_eq!(e["type"], "TEXT_MESSAGE_CONTENT", "only text went out");
            text_events += 1;
        }
    }
    assert!(text_events >= 10, "{text_events}");
    assert_eq!(
        h.s.persisted(),
        row,
        "text alone leaves the stored row as it was"
    );
    let newest = h.log.last().unwrap()["seq"].as_u64().unwrap();
    let mark = h.log.len();
    h.restart();
    assert_eq!(
        h.log[mark]["seq"],
        json!(newest + 1),
        "numbering goes on from the log"
    );
    h.answer(ANSWER);
    check_invariants(&h.log, h.s.state());
    // A row written when the seq was still stored restores to whichever is higher.
    let mut old: Value = serde_json::from_str(&h.s.persisted()).unwrap();
    old["seq"] = json!(newest + 1000);
    let s = Session::restore(&old.to_string(), 3, SessionConfig::default(), h.now).unwrap();
    assert_eq!(s.last_seq(), newest + 1000);
}

#[test]
fn restart_at_a_gate_keeps_the_gate() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    h.answer(ANSWER);
    h.restart();
    assert_eq!(h.status(), RunStatus::WaitingApproval);
    h.cmd(r#"{"type":"approve","stage":"analyst"}"#).unwrap();
    assert_eq!(h.s.pending_call().unwrap().stage, Stage::Architect);
    check_invariants(&h.log, h.s.state());
}

// ---- property tests -------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Cmd(u8, u8),
    Chunk(u8),
    Done,
    Fail(u8),
    Advance(u32),
    Restart,
    Begin,
    Disconnect,
    Reconnect,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..11, 0u8..5).prop_map(|(c, s)| Step::Cmd(c, s)),
        6 => (1u8..40).prop_map(Step::Chunk),
        2 => Just(Step::Done),
        1 => (0u8..7).prop_map(Step::Fail),
        2 => (0u32..40_000).prop_map(Step::Advance),
        1 => Just(Step::Restart),
        3 => Just(Step::Begin),
        1 => Just(Step::Disconnect),
        1 => Just(Step::Reconnect),
    ]
}

/// A client that disconnects and reconnects with `hello {lastSeq}` at random.
struct Client {
    connected: bool,
    seqs: Vec<u64>,
    state: Value,
}

impl Client {
    fn receive(&mut self, e: &Value) {
        let seq = e["seq"].as_u64().unwrap();
        assert_eq!(
            seq,
            self.seqs.last().copied().unwrap_or(0) + 1,
            "gap or repeat"
        );
        self.seqs.push(seq);
        match e["type"].as_str().unwrap() {
            "STATE_SNAPSHOT" => self.state = e["snapshot"].clone(),
            "STATE_DELTA" => {
                let ops: PatchOpList = serde_json::from_value(e["delta"].clone()).unwrap();
                patch::apply(&mut self.state, &ops).unwrap();
            }
            _ => {}
        }
    }
}

fn drive(steps: Vec<Step>) {
    let mut h = H::new();
    let mut client = Client {
        connected: true,
        seqs: vec![],
        state: Value::Null,
    };
    let mut delivered = 0usize;
    let stage_name = |i: u8| Stage::ALL[i as usize % 5].name();
    for step in steps {
        match step {
            Step::Cmd(c, s) => {
                let text = match c {
                    0 => r#"{"type":"start","brief":"b","approval":"auto"}"#.to_string(),
                    1 => r#"{"type":"start","brief":"b","approval":"each_stage"}"#.to_string(),
                    2 => format!(r#"{{"type":"approve","stage":"{}"}}"#, stage_name(s)),
                    3 => format!(
                        r#"{{"type":"reject","stage":"{}","feedback":"f"}}"#,
                        stage_name(s)
                    ),
                    4 => r#"{"type":"pause"}"#.into(),
                    5 => r#"{"type":"resume"}"#.into(),
                    6 => r#"{"type":"cancel"}"#.into(),
                    7 => format!(r#"{{"type":"retry","stage":"{}"}}"#, stage_name(s)),
                    8 => format!(r#"{{"type":"rerun","stage":"{}"}}"#, stage_name(s)),
                    9 => format!(
                        r#"{{"type":"rerun","stage":"{}","feedback":"f"}}"#,
                        stage_name(s)
                    ),
                    _ => {
                        // Approve whatever gate is open.
                        match h.s.state().gate.clone() {
                            Some(g) => {
                                format!(r#"{{"type":"approve","stage":"{}"}}"#, g.stage.name())
                            }
                            None => r#"{"type":"pause"}"#.into(),
                        }
                    }
                };
                let before = (h.s.persisted(), h.log.len());
                if h.cmd(&text).is_err() {
                    assert_eq!(
                        before,
                        (h.s.persisted(), h.log.len()),
                        "rejection changed state"
                    );
                }
            }
            Step::Begin => {
                // The edge starts what was announced last; a stale announcement is refused
                // and changes nothing.
                if let Some(spec) = h.next.take() {
                    let startable = h.s.pending_call().map(|c| c.call_id) == Some(spec.call_id);
                    let before = h.s.persisted();
                    assert_eq!(h.s.call_started(spec.call_id, None, h.now), startable);
                    if !startable {
                        assert_eq!(before, h.s.persisted(), "a refused start changed state");
                    }
                    h.drain();
                }
            }
            Step::Chunk(n) => {
                if let Some(id) = h.s.live_call() {
                    h.now += n as u64;
                    h.s.on_chunk(id, &"x".repeat(n as usize), h.now);
                }
            }
            Step::Done => {
                if let Some(id) = h.s.live_call() {
                    h.now += 1;
                    h.s.on_done(
                        id,
                        Usage {
                            input_tokens: 10,
                            output_tokens: 10,
                        },
                        h.now,
                    );
                }
            }
            Step::Fail(6) => {
                if let Some(id) = h.s.live_call() {
                    h.s.on_deferred(id, 500, h.now);
                }
            }
            Step::Fail(k) => {
                if let Some(id) = h.s.live_call() {
                    let (code, retryable) = [
                        ("rate_limited", true),
                        ("server_error", true),
                        ("network", true),
                        ("bad_key", false),
                        ("content_filtered", false),
                        ("malformed_stream", true),
                    ][k as usize];
                    h.s.on_failure(
                        id,
                        StageFailure {
                            code: code.parse().expect("a failure code"),
                            message: "m".into(),
                            detail: "d".into(),
                            retryable,
                            retry_after_ms: (k == 0).then_some(1000),
                        },
                        h.now,
                    );
                }
            }
            Step::Advance(ms) => {
                h.now += ms as u64;
                h.s.on_timeout(h.now);
            }
            Step::Restart => {
                h.drain();
                h.restart();
            }
            Step::Disconnect => client.connected = false,
            Step::Reconnect => {
                // hello {lastSeq}: replay exactly what the log holds after it.
                let last = client.seqs.last().copied().unwrap_or(0);
                h.drain();
                match plan(last, None, &Default::default(), 1, h.log.len() as u64) {
                    ReplayPlan::Replay { from, to } => {
                        for seq in from..=to {
                            client.receive(&h.log[seq as usize - 1]);
                        }
                    }
                    ReplayPlan::Snapshot { .. } => assert!(h.log.is_empty()),
                }
                delivered = h.log.len();
                client.connected = true;
            }
        }
        h.drain();
        if client.connected {
            for e in &h.log[delivered..] {
                client.receive(e);
            }
        }
        delivered = h.log.len();
    }
    check_invariants(&h.log, h.s.state());
    // Finally reconnect: the client holds exactly the log and the server's state.
    let last = client.seqs.last().copied().unwrap_or(0);
    if let ReplayPlan::Replay { from, to } =
        plan(last, None, &Default::default(), 1, h.log.len() as u64)
    {
        for seq in from..=to {
            client.receive(&h.log[seq as usize - 1]);
        }
    }
    assert_eq!(client.seqs.len(), h.log.len());
    if !h.log.is_empty() {
        assert_eq!(client.state, h.s.state().to_json());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    // Random interleavings of commands, chunks, failures, timers, restarts, disconnects and
    // reconnects: the log keeps its invariants, rejections change nothing, and a client that
    // reconnects with hello {lastSeq} reconstructs exactly the log and the state.
    #[test]
    fn random_sessions_keep_invariants(steps in proptest::collection::vec(arb_step(), 1..150)) {
        drive(steps);
    }
}

#[test]
fn a_long_scripted_session_keeps_invariants() {
    // A deterministic pass through every step kind, so the property runs at least once fully.
    let mut steps = vec![Step::Cmd(1, 0)];
    for i in 0..400u32 {
        steps.push(match i % 13 {
            0 => Step::Begin,
            1..=5 => Step::Chunk((i % 30 + 1) as u8),
            6 => Step::Done,
            7 => Step::Cmd(8, 0),
            8 => Step::Disconnect,
            9 => Step::Fail((i % 6) as u8),
            10 => Step::Advance(i * 100),
            11 => Step::Reconnect,
            _ => {
                if i % 3 == 0 {
                    Step::Restart
                } else {
                    Step::Cmd((i % 9) as u8, (i % 5) as u8)
                }
            }
        });
    }
    drive(steps);
}

#[test]
fn an_endless_answer_is_stopped_at_the_answer_cap() {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b"}"#).unwrap();
    let spec = h.begin();
    let chunk = "x".repeat(1000);
    for _ in 0..(crate::protocol::limits::MAX_ANSWER_BYTES / 1000 + 5) {
        h.s.on_chunk(spec.call_id, &chunk, h.now);
        h.drain();
    }
    let agent = h.s.state().agent(Stage::Analyst);
    let err = agent.last_error.as_ref().expect("failed");
    assert_eq!(err.code, "answer_too_long");
    assert_eq!(h.s.state().run.status, RunStatus::Failed);
    let text: usize = h
        .log
        .iter()
        .filter_map(|e| e.get("delta").and_then(|d| d.as_str()))
        .map(str::len)
        .sum();
    assert!(text <= crate::protocol::limits::MAX_ANSWER_BYTES, "{text}");
}

fn write(path: &str, content: &str) -> String {
    json!({"path": path, "content": content}).to_string()
}

fn file_list(h: &H) -> Vec<String> {
    h.s.state().files.keys().cloned().collect()
}

/// Auto mode, the Analyst done: the Architect's call pending.
fn at_architect() -> H {
    let mut h = H::new();
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    h.answer(ANSWER);
    h
}

#[test]
fn tool_calls_are_logged_inside_the_answer_and_the_files_show_in_the_state() {
    let mut h = at_architect();
    let spec = h.begin();
    h.s.on_chunk(spec.call_id, "Laying out the project. ", h.now);
    let r = h.tools(
        &spec,
        0,
        &[
            ("c1", "write_file", &write("README.md", "# Todo\n")),
            ("c2", "write_file", &write("src/main.rs", "fn main() {}\n")),
            (
                "c3",
                "read_file",
                &json!({"path": "missing.txt"}).to_string(),
            ),
        ],
    );
    assert!(r[0].starts_with("Wrote README.md"), "{}", r[0]);
    assert!(
        r[2].starts_with("Error: There is no file missing.txt"),
        "{}",
        r[2]
    );
    h.s.on_chunk(spec.call_id, "## Architecture\n\nDone.", h.now);
    h.s.on_done(spec.call_id, Usage::default(), h.now);
    h.drain();
    assert_eq!(file_list(&h), ["README.md", "src/main.rs"]);
    let f = &h.s.state().files["src/main.rs"];
    assert_eq!((f.bytes, f.stage), (13, Stage::Architect));
    assert_eq!(h.files.len(), 2, "two rows stored");
    assert_eq!(
        h.tool_calls.len(),
        3,
        "every call recorded, the failed one too"
    );
    let kinds = h.types();
    let at = |k: &str| kinds.iter().position(|t| t == k).unwrap();
    assert!(at("TOOL_CALL_START") < at("TOOL_CALL_ARGS"));
    assert!(at("TOOL_CALL_END") < at("TOOL_CALL_RESULT"));
    // The text after the calls is the same message: one answer, one artifact.
    assert_eq!(
        h.artifacts[&(Stage::Architect, 1)],
        "Laying out the project. ## Architecture\n\nDone."
    );
    check_invariants(&h.log, h.s.state());
}

#[test]
fn a_retried_attempt_starts_from_the_earlier_stages_files_never_mixed() {
    let mut h = at_architect();
    let spec = h.begin();
    h.tools(&spec, 0, &[("c1", "write_file", &write("draft.md", "v1"))]);
    h.s.on_failure(
        spec.call_id,
        StageFailure {
            code: crate::protocol::wire::FailureCode::ServerError,
            message: "The AI service had an error.".into(),
            detail: "500".into(),
            retryable: true,
            retry_after_ms: None,
        },
        h.now,
    );
    h.drain();
    assert_eq!(file_list(&h), ["draft.md"], "kept until the retry begins");
    h.advance_to_retry();
    assert!(
        h.s.state().files.is_empty(),
        "the failed attempt's file is gone"
    );
    assert!(h.files.is_empty() && h.tool_calls.is_empty());
    let spec = h.begin();
    // The retry may reuse the provider's id: it is a new call of a new attempt.
    let r = h.tools(&spec, 0, &[("c1", "write_file", &write("plan.md", "v2"))]);
    assert!(r[0].starts_with("Wrote plan.md"));
    h.s.on_chunk(spec.call_id, ANSWER, h.now);
    h.s.on_done(spec.call_id, Usage::default(), h.now);
    h.drain();
    assert_eq!(file_list(&h), ["plan.md"]);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn a_restart_mid_round_ends_the_open_calls_and_a_replayed_call_is_applied_once() {
    let mut h = at_architect();
    let spec = h.begin();
    let first = h.tools(&spec, 0, &[("c1", "write_file", &write("a.txt", "one"))]);
    h.s.on_tool_start(spec.call_id, 1, "c2", "write_file", h.now);
    h.s.on_tool_args(spec.call_id, 1, "c2", "{\"path\":", h.now);
    h.drain();
    h.restart();
    check_invariants(&h.log, h.s.state());
    assert_eq!(
        file_list(&h),
        ["a.txt"],
        "the applied write survives the restart"
    );
    // The same attempt runs again and replays the same calls (the demo's ids are stable).
    let spec = h.begin();
    assert_eq!(spec.stage, Stage::Architect);
    let again = h.tools(&spec, 0, &[("c1", "write_file", &write("a.txt", "one"))]);
    assert_eq!(again, first, "the first answer, not a second write");
    let r = h.tools(&spec, 1, &[("c2", "write_file", &write("b.txt", "two"))]);
    assert!(r[0].starts_with("Wrote b.txt"));
    h.s.on_chunk(spec.call_id, ANSWER, h.now);
    h.s.on_done(spec.call_id, Usage::default(), h.now);
    h.drain();
    assert_eq!(h.files.len(), 2, "each write stored once");
    assert_eq!(file_list(&h), ["a.txt", "b.txt"]);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn a_rerun_from_a_stage_drops_its_files_and_the_later_stages_and_keeps_the_earlier() {
    let mut h = at_architect();
    for (stage, path) in [
        (Stage::Architect, "README.md"),
        (Stage::Developer, "src/app.js"),
        (Stage::Tester, "test/app.test.js"),
        (Stage::Deployer, "Dockerfile"),
    ] {
        let spec = h.begin();
        assert_eq!(spec.stage, stage);
        h.tools(&spec, 0, &[("c1", "write_file", &write(path, "x"))]);
        h.s.on_chunk(spec.call_id, ANSWER, h.now);
        h.s.on_done(spec.call_id, Usage::default(), h.now);
        h.drain();
    }
    assert_eq!(h.status(), RunStatus::Completed);
    assert_eq!(file_list(&h).len(), 4);
    h.cmd(r#"{"type":"rerun","stage":"developer"}"#).unwrap();
    assert_eq!(file_list(&h), ["README.md"]);
    assert_eq!(h.files.len(), 1);
    check_invariants(&h.log, h.s.state());
}

#[test]
fn tool_arguments_are_coalesced_like_text_and_stream_whole() {
    let mut h = at_architect();
    let spec = h.begin();
    let args = write("big.txt", &"abcdefghij".repeat(300));
    h.s.on_tool_start(spec.call_id, 0, "c1", "write_file", h.now);
    for piece in args.as_bytes().chunks(7) {
        h.now += 1;
        h.s.on_tool_args(
            spec.call_id,
            0,
            "c1",
            std::str::from_utf8(piece).unwrap(),
            h.now,
        );
        h.drain();
    }
    h.s.on_tool_end(spec.call_id, 0, "c1", h.now);
    h.drain();
    let deltas: Vec<&str> = h
        .log
        .iter()
        .filter(|e| e["type"] == "TOOL_CALL_ARGS")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas.concat(), args);
    let pieces = args.len() / 7;
    assert!(
        deltas.len() * 4 < pieces,
        "{} frames for {pieces} pieces",
        deltas.len()
    );
}

fn priced() -> SessionConfig {
    let offered = |d: &str| {
        vec![
            d.to_string(),
            "openai:gpt-4o".into(),
            "anthropic:claude-haiku-4-5".into(),
        ]
    };
    SessionConfig {
        demo: false,
        model: "gpt-4o-mini".into(),
        offered: Stage::ALL
            .iter()
            .map(|s| {
                offered(if *s == Stage::Developer {
                    "anthropic:claude-sonnet-4-5"
                } else {
                    "openai:gpt-4o-mini"
                })
            })
            .collect(),
        budget_micros: Some(1_000),
        ..SessionConfig::default()
    }
}

#[test]
fn a_runs_usage_lists_each_model_with_the_tokens_it_reported() {
    let mut h = H::with(SessionConfig {
        budget_micros: None,
        ..priced()
    });
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    // The Developer is on Anthropic, the rest on the OpenAI-compatible provider.
    let reported = [(11, 1), (22, 2), (968, 93), (44, 4), (55, 5)];
    for (stage, (i, o)) in Stage::ALL.into_iter().zip(reported) {
        let usage = Usage {
            input_tokens: i,
            output_tokens: o,
        };
        assert_eq!(h.answer_reporting(ANSWER, usage).stage, stage);
    }
    assert_eq!(h.status(), RunStatus::Completed);
    assert_eq!(
        h.last("RUN_FINISHED")["usage"],
        json!([
            {"model": "openai:gpt-4o-mini", "inputTokens": 132, "outputTokens": 12, "totalTokens": 144},
            {"model": "anthropic:claude-sonnet-4-5", "inputTokens": 968, "outputTokens": 93, "totalTokens": 1061},
        ])
    );
    // A row stored before usage was per model restores its total under the session's model.
    h.cmd(r#"{"type":"start","brief":"b2","approval":"auto"}"#)
        .unwrap();
    h.answer(ANSWER);
    let mut old: Value = serde_json::from_str(&h.s.persisted()).unwrap();
    old["run_usage"] = json!({"input_tokens": 7, "output_tokens": 3});
    h.s = Session::restore(&old.to_string(), h.log.len() as u64, h.cfg.clone(), h.now).unwrap();
    h.saved = h.s.persisted();
    h.drain();
    for _ in 1..Stage::ALL.len() {
        h.answer(ANSWER);
    }
    let usage = &h.last("RUN_FINISHED")["usage"];
    assert_eq!(usage[0]["model"], "gpt-4o-mini");
    assert_eq!(usage[0]["totalTokens"], 10);
    assert_eq!(usage[1]["model"], "openai:gpt-4o-mini");
    assert_eq!(usage[1]["totalTokens"], 3 * 150);
    assert_eq!(usage[2]["model"], "anthropic:claude-sonnet-4-5");
    check_invariants(&h.log, h.s.state());
}

#[test]
fn a_model_per_agent_is_chosen_at_start_from_what_is_offered() {
    let mut h = H::with(priced());
    // Not offered, or not provider:model: refused, nothing changes.
    let before = h.s.persisted();
    assert_eq!(
        h.code(r#"{"type":"start","brief":"b","models":{"tester":"openai:gpt-9"}}"#),
        "invalid_field"
    );
    // Malformed choices are refused by the decoder, before the session sees them.
    for (bad, want) in [
        (
            r#"{"type":"start","brief":"b","models":{"tester":"gpt-4o"}}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"start","brief":"b","models":{"boss":"openai:gpt-4o"}}"#,
            "unknown_stage",
        ),
        (
            r#"{"type":"start","brief":"b","models":["openai:gpt-4o"]}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"start","brief":"b","models":{"tester":7}}"#,
            "invalid_field",
        ),
    ] {
        assert_eq!(decode_frame(bad).unwrap_err().code.as_str(), want, "{bad}");
    }
    assert_eq!(h.s.persisted(), before, "a refused start changes nothing");
    let e = h
        .cmd(r#"{"type":"start","brief":"b","models":{"tester":"openai:gpt-9"}}"#)
        .unwrap_err();
    assert!(
        e.message.contains("not offered for the Tester"),
        "{}",
        e.message
    );
    h.cmd(r#"{"type":"start","brief":"b","models":{"tester":"anthropic:claude-haiku-4-5"}}"#)
        .unwrap();
    let model = |st: Stage| h.s.state().agent(st).model.clone().unwrap();
    assert_eq!(model(Stage::Tester), "anthropic:claude-haiku-4-5");
    assert_eq!(
        model(Stage::Developer),
        "anthropic:claude-sonnet-4-5",
        "the default"
    );
    assert_eq!(model(Stage::Analyst), "openai:gpt-4o-mini");
    assert_eq!(
        h.s.pending_call().unwrap().model.as_deref(),
        Some("openai:gpt-4o-mini")
    );
    // The snapshot of the run already names every agent's model.
    let snap = h
        .log
        .iter()
        .find(|e| e["type"] == "STATE_SNAPSHOT")
        .unwrap();
    assert_eq!(
        snap["snapshot"]["agents"]["tester"]["model"],
        "anthropic:claude-haiku-4-5"
    );
    // The demo has no models to choose.
    let mut demo = H::new();
    assert_eq!(
        demo.code(r#"{"type":"start","brief":"b","models":{"tester":"openai:gpt-4o"}}"#),
        "invalid_field"
    );
}

#[test]
fn cost_adds_up_per_agent_and_the_dollar_budget_stops_the_next_stage_in_plain_words() {
    let mut h = H::with(priced());
    h.cmd(r#"{"type":"start","brief":"b","approval":"auto"}"#)
        .unwrap();
    // gpt-4o-mini: $0.15 / $0.60 per Mtok. 100 in + 50 out = 15 + 30 = 45 micro-dollars.
    h.answer(ANSWER);
    assert_eq!(h.s.state().agent(Stage::Analyst).cost_micro_usd, 45);
    assert_eq!(h.s.state().run.cost_micro_usd, 45);
    // A cached answer costs nothing.
    let spec = h.begin();
    h.s.call_cached(spec.call_id, ANSWER.len(), h.now);
    h.s.on_chunk(spec.call_id, ANSWER, h.now);
    h.s.on_done(
        spec.call_id,
        Usage {
            input_tokens: 100,
            output_tokens: 50,
        },
        h.now,
    );
    h.drain();
    assert_eq!(h.s.state().agent(Stage::Architect).cost_micro_usd, 0);
    // The Developer (claude-sonnet-4-5, $3 / $15): 100 · 3 + 50 · 15 = 1,050 µ$: over $0.001.
    h.answer(ANSWER);
    assert_eq!(h.s.state().agent(Stage::Developer).cost_micro_usd, 1_050);
    assert_eq!(h.s.state().run.cost_micro_usd, 1_095);
    assert_eq!(h.status(), RunStatus::Failed);
    let err = h.last("RUN_ERROR");
    assert_eq!(err["code"], "budget_exhausted");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("$0.001095 of its $0.001 budget") && msg.contains("Tester"),
        "{msg}"
    );
    assert!(h.s.pending_call().is_none(), "the Tester was not started");
    assert_eq!(
        h.code(r#"{"type":"start","brief":"again"}"#),
        "budget_exhausted"
    );
    check_invariants(&h.log, h.s.state());
}

#[test]
fn reasoning_is_its_own_message_and_never_part_of_the_artifact() {
    let mut h = at_architect();
    let spec = h.begin();
    h.s.on_reasoning(spec.call_id, "Weighing a monolith ", h.now);
    h.now += 40;
    h.s.on_reasoning(spec.call_id, "against services.", h.now);
    h.s.on_chunk(spec.call_id, ANSWER, h.now);
    h.s.on_done(spec.call_id, Usage::default(), h.now);
    h.drain();
    assert_eq!(h.artifacts[&(Stage::Architect, 1)], ANSWER);
    let all = h.types();
    let from = all.iter().position(|t| t == "REASONING_START").unwrap();
    let kinds = &all[from..];
    let at = |k: &str| kinds.iter().position(|t| t == k).unwrap();
    assert!(at("REASONING_START") < at("REASONING_MESSAGE_START"));
    assert!(at("REASONING_MESSAGE_END") < at("REASONING_END"));
    assert!(at("REASONING_END") < at("TEXT_MESSAGE_CONTENT"));
    let thought: String = h
        .log
        .iter()
        .filter(|e| e["type"] == "REASONING_MESSAGE_CONTENT")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(thought, "Weighing a monolith against services.");
    // A restart while thinking closes the reasoning as well.
    let spec = h.begin();
    h.s.on_reasoning(spec.call_id, "Hmm", h.now);
    h.drain();
    h.restart();
    let n = h.log.len();
    assert_eq!(
        h.log[n - 5..]
            .iter()
            .filter(|e| e["type"] == "REASONING_END")
            .count(),
        1
    );
    check_invariants(&h.log, h.s.state());
}
