import { describe, expect, it } from "vitest";
import { activeErrors, beginHello, initialView, recordSent, reduce, reduceAll, resetForFullResync, type SessionView } from "./reducer";
import { availableActions } from "./actions";
import { STAGES, type ServerEvent } from "./types";
import {
  SESSION_ID,
  Script,
  VIEW_KEY,
  T0,
  ack,
  answerFor,
  caughtUp,
  fullEachStageRun,
  idleState,
  rejected,
  welcome,
} from "../test/script";

const NOW = T0 + 1_000_000;

function replay(events: ServerEvent[], view: SessionView = initialView(SESSION_ID)): SessionView {
  return reduceAll(view, [welcome(0), ...events, caughtUp(events.at(-1)?.seq ?? 0)], NOW);
}

function messageNames(view: SessionView): string[] {
  return view.timeline.flatMap((item) => (item.kind === "message" ? [view.messages[item.id]?.name ?? "?"] : []));
}

describe("reducer: a full each_stage run with gates", () => {
  const script = fullEachStageRun("Build a todo app for teams.");
  const view = replay(script.events);

  it("applies every logged event exactly once", () => {
    expect(view.lastSeq).toBe(script.lastSeq);
    expect(view.stats.applied).toBe(script.events.length);
    expect(view.stats.duplicates).toBe(0);
    expect(view.stats.gaps).toBe(0);
    expect(view.sync).toBe("live");
  });

  it("ends with the state the server has", () => {
    expect(view.state).toEqual(script.state);
    expect(view.state?.run.status).toBe("completed");
    expect(view.state?.gate).toBeNull();
    for (const stage of STAGES) {
      expect(view.state?.agents[stage].version).toBe(1);
      expect(view.state?.agents[stage].status).toBe("done");
    }
    expect(view.lastOutcome).toBe("success");
    expect(view.runId).toBe("run-6");
  });

  it("builds the thread: the brief from You, then each agent's full answer in order", () => {
    expect(messageNames(view)).toEqual(["You", "Analyst", "Architect", "Developer", "Tester", "Deployer"]);
    const brief = view.messages["msg-1"];
    expect(brief?.role).toBe("user");
    expect(brief?.content).toBe("Build a todo app for teams.");
    const analyst = Object.values(view.messages).find((m) => m.name === "Analyst");
    expect(analyst?.content).toBe(answerFor("analyst"));
    expect(analyst?.stage).toBe("analyst");
    expect(analyst?.streaming).toBe(false);
  });

  it("adds a notice per gate and one for completion", () => {
    const notices = view.timeline.filter((i) => i.kind === "notice");
    expect(notices).toHaveLength(6);
    expect(notices[0]).toMatchObject({ tone: "info", stage: "analyst", text: "Review the Analyst's work (version 1)." });
    expect(notices.at(-1)).toMatchObject({ tone: "success" });
  });

  it("records artifact versions from artifact events", () => {
    expect(view.artifactVersions).toEqual({ analyst: 1, architect: 1, developer: 1, tester: 1, deployer: 1 });
  });

  it("shows the gate while it is open and only then allows approve", () => {
    const s = new Script();
    s.start("brief");
    s.stage("analyst");
    const atGate = replay(s.events);
    expect(atGate.state?.gate).toEqual({ id: "gate-analyst-1", stage: "analyst", version: 1 });
    expect(atGate.interrupt).toEqual({ id: "gate-analyst-1", reason: "approval", message: "Review the Analyst's work (version 1)." });
    expect(atGate.lastOutcome).toBe("interrupt");
    const actions = availableActions(atGate.state, true);
    expect(actions).toEqual({ start: false, gate: "analyst", pause: false, resume: false, cancel: true, retry: null, rerun: [] });

    s.approve("analyst");
    const after = reduceAll(atGate, s.after(atGate.lastSeq), NOW);
    expect(after.state?.gate).toBeNull();
    expect(after.interrupt).toBeNull();
    expect(after.runId).toBe("run-2");
    expect(availableActions(after.state, true).gate).toBeNull();
    expect(availableActions(after.state, true).pause).toBe(true);
  });
});

describe("reducer: streaming", () => {
  it("appends deltas token by token and keeps untouched messages and agents identical", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("analyst");
    const id = s.stream("analyst", "Hello, world! This is the analyst.", 5);
    let view = replay(s.events);
    const brief = view.messages["msg-1"];
    const architect = view.state?.agents.architect;
    expect(view.messages[id]?.content).toBe("Hello, world! This is the analyst.");
    expect(view.messages[id]?.streaming).toBe(true);

    const next = reduce(view, { type: "TEXT_MESSAGE_CONTENT", seq: view.lastSeq + 1, messageId: id, delta: " More." }, NOW);
    expect(next.messages[id]?.content).toBe("Hello, world! This is the analyst. More.");
    expect(next.messages["msg-1"]).toBe(brief); // same object: its component need not re-render
    expect(next.timeline).toBe(view.timeline); // a delta never changes the thread's shape
    view = reduce(next, { type: "STATE_DELTA", seq: next.lastSeq + 1, delta: [{ op: "replace", path: "/agents/analyst/progress", value: 55 }] }, NOW);
    expect(view.state?.agents.analyst.progress).toBe(55);
    expect(view.state?.agents.architect).toBe(architect);
  });
});

describe("reducer: reject with feedback", () => {
  const s = new Script();
  s.start("Build a CRM.");
  s.stage("analyst", answerFor("analyst", 1));
  s.reject("analyst", "Focus on the mobile app first.");
  s.stage("analyst", answerFor("analyst", 2));
  const view = replay(s.events);

  it("puts the feedback in the thread as You, followed by the rewritten answer", () => {
    expect(messageNames(view)).toEqual(["You", "Analyst", "You", "Analyst"]);
    const feedback = Object.values(view.messages).filter((m) => m.role === "user")[1];
    expect(feedback?.content).toBe("Focus on the mobile app first.");
    const answers = Object.values(view.messages).filter((m) => m.name === "Analyst");
    expect(answers.map((m) => m.content)).toEqual([answerFor("analyst", 1), answerFor("analyst", 2)]);
  });

  it("opens a gate for version 2", () => {
    expect(view.state?.agents.analyst.version).toBe(2);
    expect(view.state?.gate).toEqual({ id: "gate-analyst-2", stage: "analyst", version: 2 });
    expect(view.artifactVersions.analyst).toBe(2);
    expect(view.runId).toBe("run-2");
  });
});

describe("reducer: a retry after a transient failure", () => {
  const s = new Script();
  s.start("brief");
  s.beginAttempt("analyst");
  const first = s.stream("analyst", "Partial answ", 4);
  const retryAt = s.failRetryable("analyst", first, "rate_limited", 4000);
  const afterFailure = replay(s.events);

  it("marks the cut message as interrupted and not streaming", () => {
    expect(afterFailure.messages[first]).toMatchObject({ content: "Partial answ", streaming: false, interrupted: "retry" });
  });

  it("shows a plain-words error with the scheduled retry", () => {
    const errors = activeErrors(afterFailure);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      source: "agent",
      code: "rate_limited",
      stage: "analyst",
      retryAt,
      attempt: 1,
      message: "The AI provider asked us to slow down.",
      title: "Analyst: the AI provider asked us to slow down",
    });
    expect(errors[0]?.next).toBe("That will be attempt 2 of 4.");
    expect(afterFailure.state?.agents.analyst).toMatchObject({ status: "retrying", nextRetryAt: retryAt, attempts: 1 });
  });

  it("starts a new message for the retry and resolves the error once the artifact is saved", () => {
    s.beginAttempt("analyst");
    const second = s.stream("analyst", answerFor("analyst"));
    expect(second).not.toBe(first);
    s.finishAnswer("analyst", second, true);
    const view = reduceAll(afterFailure, s.after(afterFailure.lastSeq), NOW);
    expect(messageNames(view)).toEqual(["You", "Analyst", "Analyst"]);
    expect(view.messages[second]).toMatchObject({ content: answerFor("analyst"), interrupted: null, streaming: false });
    expect(view.messages[first]?.content).toBe("Partial answ");
    expect(view.state?.agents.analyst.attempts).toBe(2);
    expect(activeErrors(view)).toHaveLength(0);
    expect(view.errors[0]?.resolved).toBe(true);
  });
});

describe("reducer: a failed run", () => {
  const s = new Script();
  s.start("brief");
  s.beginAttempt("analyst");
  s.failRun("analyst", "bad_key", "The AI provider rejected the API key.");
  const view = replay(s.events);

  it("keeps one banner (the run error) and allows Retry for the failed stage", () => {
    const errors = activeErrors(view);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ source: "run", code: "bad_key", stage: "analyst" });
    expect(errors[0]?.next).toMatch(/OPENAI_API_KEY/);
    expect(errors[0]?.details).toMatch(/"RUN_ERROR"[\s\S]*Caused by:[\s\S]*"agent_error"/);
    expect(view.lastOutcome).toBe("error");
    expect(availableActions(view.state, true)).toMatchObject({ retry: "analyst", start: true, cancel: false, pause: false });
  });

  it("tells the user when a Retry waits for the provider's Retry-After, but not about each shared-limit wait", () => {
    const queued = (seq: number, reason: string): ServerEvent => ({
      type: "CUSTOM",
      seq,
      name: "agent_queued",
      value: { stage: "analyst", reason, nextRetryAt: NOW + 20_000, message: `waiting (${reason})` },
    });
    const lines = (v: SessionView) => v.timeline.filter((i) => i.kind === "notice").length;
    const limited = reduce(view, queued(view.lastSeq + 1, "provider_limit"), NOW);
    expect(lines(limited)).toBe(lines(view));
    const asked = reduce(limited, queued(limited.lastSeq + 1, "provider_retry_after"), NOW);
    expect(lines(asked)).toBe(lines(view) + 1);
    expect(asked.timeline.at(-1)).toMatchObject({ kind: "notice", tone: "info", text: "waiting (provider_retry_after)", stage: "analyst" });
  });

  it("clears the run error when the next run starts", () => {
    const next = reduce(view, { type: "RUN_STARTED", seq: view.lastSeq + 1, threadId: SESSION_ID, runId: "run-2" }, NOW);
    expect(activeErrors(next)).toHaveLength(0);
  });
});

describe("reducer: seq discipline", () => {
  const s = new Script();
  s.start("brief");
  s.stage("analyst");

  it("drops duplicates (seq ≤ lastSeq) without changing anything they carry", () => {
    const once = replay(s.events);
    const twice = reduceAll(once, s.events, NOW);
    expect(twice.lastSeq).toBe(once.lastSeq);
    expect(twice.stats.duplicates).toBe(s.events.length);
    expect(twice.messages).toBe(once.messages);
    expect(twice.state).toBe(once.state);
    expect(twice.timeline).toBe(once.timeline);
  });

  it("drops an event after a gap and asks for a re-sync; the replay then fills it exactly", () => {
    const events = s.events;
    let view = reduceAll(initialView(SESSION_ID), [welcome(0), ...events.slice(0, 5), caughtUp(5)], NOW);
    expect(view.lastSeq).toBe(5);
    // seq 7 arrives before seq 6: out of order.
    view = reduce(view, events[6]!, NOW);
    expect(view.lastSeq).toBe(5);
    expect(view.resyncNeeded).toBe(true);
    expect(view.stats.gaps).toBe(1);
    // The client sends hello {lastSeq: 5}; the server replays 6… and the view is whole.
    view = beginHello(view);
    expect(view.resyncNeeded).toBe(false);
    view = reduceAll(view, [welcome(s.lastSeq), ...s.after(5), caughtUp(s.lastSeq)], NOW);
    expect(view.lastSeq).toBe(s.lastSeq);
    expect(view.state).toEqual(s.state);
    expect(view.messages).toEqual(replay(events).messages);
  });

  it("reaches the same view whether events come in one replay or across a reconnect with overlap", () => {
    const straight = replay(s.events);
    let view = reduceAll(initialView(SESSION_ID), [welcome(0), ...s.events.slice(0, 12)], NOW);
    // Connection drops; the client reconnects with hello {lastSeq: 12}; a defensive server resends 10…
    view = reduceAll(view, [welcome(s.lastSeq), ...s.after(9), caughtUp(s.lastSeq)], NOW);
    expect(view.lastSeq).toBe(straight.lastSeq);
    expect(view.messages).toEqual(straight.messages);
    expect(view.timeline).toEqual(straight.timeline);
    expect(view.state).toEqual(straight.state);
    expect(view.stats.duplicates).toBe(3);
  });
});

describe("reducer: snapshot-mode hello", () => {
  it("replaces state, messages and lastSeq, then applies live events after it", () => {
    const s = new Script();
    s.start("Plan a bakery website.");
    s.beginAttempt("analyst");
    const id = s.stream("analyst", "First half, ", 100);

    // A stale client with messages the server's snapshot no longer matches.
    let view = replay([], initialView(SESSION_ID));
    view = { ...view, lastSeq: 99_999 };
    view = reduceAll(
      view,
      [
        welcome(s.lastSeq, "snapshot"),
        { type: "STATE_SNAPSHOT", snapshot: s.state },
        {
          type: "MESSAGES_SNAPSHOT",
          messages: [
            { id: "msg-1", role: "user", name: "You", content: "Plan a bakery website." },
            { id, role: "assistant", name: "Analyst", content: "First half, " },
          ],
        },
        caughtUp(s.lastSeq),
      ],
      NOW,
    );
    expect(view.lastSeq).toBe(s.lastSeq);
    expect(view.welcome?.mode).toBe("snapshot");
    expect(view.sync).toBe("live");
    expect(view.state).toEqual(s.state);
    expect(messageNames(view)).toEqual(["You", "Analyst"]);

    // Live events continue the open message.
    const before = s.lastSeq;
    s.events.push({ type: "TEXT_MESSAGE_CONTENT", seq: before + 1, messageId: id, delta: "second half." });
    s.events.push({ type: "TEXT_MESSAGE_END", seq: before + 2, messageId: id });
    view = reduceAll(view, s.after(before), NOW);
    expect(view.messages[id]?.content).toBe("First half, second half.");
    expect(view.messages[id]?.streaming).toBe(false);
    expect(view.lastSeq).toBe(before + 2);
  });

  it("shows a failed run's error from the snapshot (no events were replayed)", () => {
    const state = idleState();
    state.run.status = "failed";
    state.run.stage = "architect";
    state.run.error = { code: "quota_exhausted", message: "The provider account is out of credit." };
    const view = reduceAll(initialView(SESSION_ID), [welcome(120, "snapshot"), { type: "STATE_SNAPSHOT", snapshot: state }, { type: "MESSAGES_SNAPSHOT", messages: [] }, caughtUp(120)], NOW);
    expect(view.lastSeq).toBe(120);
    expect(activeErrors(view)).toEqual([expect.objectContaining({ source: "run", code: "quota_exhausted", stage: "architect" })]);
    expect(availableActions(view.state, true).retry).toBe("architect");
  });

  it("handles an empty session (snapshot of idle state, no messages)", () => {
    const view = reduceAll(initialView(SESSION_ID), [welcome(0, "snapshot"), { type: "STATE_SNAPSHOT", snapshot: idleState() }, { type: "MESSAGES_SNAPSHOT", messages: [] }, caughtUp(0)], NOW);
    expect(view.state?.run.status).toBe("idle");
    expect(view.timeline).toEqual([]);
    expect(availableActions(view.state, true)).toMatchObject({ start: true, gate: null, retry: null });
    expect(availableActions(view.state, false).start).toBe(false);
  });
});

describe("reducer: bounded history", () => {
  it("records how many old messages the snapshot left out (caught_up.omittedMessages)", () => {
    const snap = [welcome(500, "snapshot"), { type: "STATE_SNAPSHOT", snapshot: idleState() } as ServerEvent, { type: "MESSAGES_SNAPSHOT", messages: [] } as ServerEvent];
    const bounded = reduceAll(initialView(SESSION_ID), [...snap, { type: "CUSTOM", name: "caught_up", value: { lastSeq: 500, omittedMessages: 12 } }], NOW);
    expect(bounded.omittedMessages).toBe(12);
    expect(bounded.sync).toBe("live");
    // A later replay-mode caught_up without the field keeps what the page was told.
    const later = reduceAll(bounded, [welcome(500), caughtUp(500)], NOW);
    expect(later.omittedMessages).toBe(12);
    // Today's server never sends it: nothing is shown.
    expect(reduceAll(initialView(SESSION_ID), [...snap, caughtUp(500)], NOW).omittedMessages).toBe(0);
    // Junk is ignored.
    expect(reduceAll(initialView(SESSION_ID), [...snap, { type: "CUSTOM", name: "caught_up", value: { lastSeq: 500, omittedMessages: "lots" } }], NOW).omittedMessages).toBe(0);
  });
});

describe("reducer: command answers", () => {
  it("ack removes the pending command; rejected removes it and explains in plain words", () => {
    let view = replay(fullEachStageRun().events);
    view = recordSent(view, { type: "pause", id: "pause-1" }, NOW);
    view = recordSent(view, { type: "start", id: "start-1", brief: "x".repeat(10), approval: "auto" }, NOW);
    expect(Object.keys(view.pending)).toEqual(["pause-1", "start-1"]);
    const seq = view.lastSeq;
    view = reduce(view, ack("pause-1", "pause"), NOW);
    expect(Object.keys(view.pending)).toEqual(["start-1"]);
    view = reduce(view, rejected("start-1", "start", "brief_too_long", "The brief has 9000 characters; the limit is 8000."), NOW);
    expect(view.pending).toEqual({});
    expect(view.lastSeq).toBe(seq); // connection frames never move lastSeq
    const [error] = activeErrors(view);
    expect(error).toMatchObject({ source: "rejected", code: "brief_too_long", title: "The brief is too long" });
    expect(error?.message).toBe("The brief has 9000 characters; the limit is 8000.");
    expect(error?.next).toMatch(/8000 characters or fewer/);
  });

  it("a warning frame becomes a banner", () => {
    const view = reduce(initialView(SESSION_ID), { type: "CUSTOM", name: "warning", value: { code: "rate_limited", message: "Too many commands." } }, NOW);
    expect(activeErrors(view)).toEqual([expect.objectContaining({ source: "warning", code: "rate_limited", message: "Too many commands." })]);
  });
});

describe("reducer: view-only links", () => {
  it("a view key is read-only from the start, and welcome.readOnly confirms it", () => {
    expect(initialView(VIEW_KEY).readOnly).toBe(true);
    expect(initialView(SESSION_ID).readOnly).toBe(false);
    expect(initialView().readOnly).toBe(false);
    const view = reduce(initialView(VIEW_KEY), welcome(0, "snapshot", { sessionId: VIEW_KEY, readOnly: true }), NOW);
    expect(view.readOnly).toBe(true);
    expect(view.welcome?.sessionId).toBe(VIEW_KEY);
  });

  it("follows the server's word when the welcome says, and keeps the key's when it does not", () => {
    expect(reduce(initialView(SESSION_ID), welcome(0, "replay", { readOnly: true }), NOW).readOnly).toBe(true);
    expect(reduce(initialView(SESSION_ID), welcome(0, "replay", { readOnly: false }), NOW).readOnly).toBe(false);
    expect(reduce(initialView(SESSION_ID), welcome(0), NOW).readOnly).toBe(false);
    expect(reduce(initialView(VIEW_KEY), welcome(0), NOW).readOnly).toBe(true);
  });

  it("tells a viewer whom a gate waits for, instead of asking them to review", () => {
    const view = replay(fullEachStageRun().events, initialView(VIEW_KEY));
    const notices = view.timeline.filter((i) => i.kind === "notice");
    expect(notices[0]).toMatchObject({ tone: "info", stage: "analyst", text: "Analyst is waiting for the session owner's approval." });
  });

  it("stays read-only through a full re-sync", () => {
    const view = reduce(initialView(SESSION_ID), welcome(0, "replay", { readOnly: true }), NOW);
    expect(resetForFullResync(view).readOnly).toBe(true);
  });

  it("a command refused read_only is explained in plain words", () => {
    let view = replay(fullEachStageRun().events, initialView(VIEW_KEY));
    view = recordSent(view, { type: "pause", id: "pause-1" }, NOW);
    view = reduce(view, rejected("pause-1", "pause", "read_only", "This is a view-only link."), NOW);
    expect(view.pending).toEqual({});
    const [error] = activeErrors(view);
    expect(error).toMatchObject({ source: "rejected", code: "read_only", title: "This is a view-only link", message: "This is a view-only link." });
    expect(error?.next).toMatch(/only the session's owner can start, approve or stop it/);
    expect(error?.next).toMatch(/\(command: pause\)$/);
  });
});

describe("reducer: robustness", () => {
  it("flags a full re-sync when a patch does not apply, leaving the state untouched", () => {
    const s = new Script();
    s.start("brief");
    const view = replay(s.events);
    const next = reduce(view, { type: "STATE_DELTA", seq: view.lastSeq + 1, delta: [{ op: "replace", path: "/agents/nobody/status", value: "done" }] }, NOW);
    expect(next.fullResyncNeeded).toBe(true);
    expect(next.state).toBe(view.state);
    expect(activeErrors(next)[0]?.code).toBe("state_out_of_sync");
  });

  it("ignores unknown custom events but still counts their seq", () => {
    const view = reduce(initialView(SESSION_ID), { type: "CUSTOM", name: "future_thing", value: {}, seq: 1 }, NOW);
    expect(view.lastSeq).toBe(1);
  });

  it("keeps HTML in a brief as plain text content", () => {
    const s = new Script();
    const xss = "<img src=x onerror=alert(1)><script>window.__xss=1</script>";
    s.start(xss);
    const view = replay(s.events);
    expect(view.messages["msg-1"]?.content).toBe(xss);
  });
});
