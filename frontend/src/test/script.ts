// Builds recorded event streams the way the Worker's session machine writes them
// (docs/protocol.md): runs separated by gates, a STATE_SNAPSHOT after every RUN_STARTED, state
// changes as JSON Patch deltas, messages as start/content/end, seq 1, 2, 3, … with no gaps.
// Tests feed these streams to the reducer and the stores.

import { applyPatch } from "../protocol/jsonPatch";
import { utf8Bytes } from "../protocol/toolCalls";
import { gateId } from "../protocol/gates";
import {
  STAGES,
  STAGE_LABEL,
  type AgentState,
  type ApprovalMode,
  type CustomName,
  type CustomValueMap,
  type FailureCode,
  type FileInfo,
  type RejectionCode,
  type PatchOp,
  type ServerEvent,
  type SessionState,
  type Stage,
} from "../protocol/types";

export const SESSION_ID = "0123456789abcdef0123456789abcdef";
/** A view-only key for the same session: `v` + 96 hex. */
export const VIEW_KEY = `v${"0123456789abcdef".repeat(6)}`;

/** A CUSTOM event whose value is checked against the generated wire type for its name. */
export function custom<K extends CustomName>(name: K, value: CustomValueMap[K], seq?: number): ServerEvent {
  return seq === undefined ? { type: "CUSTOM", name, value } : { type: "CUSTOM", name, value, seq };
}
export const T0 = 1_700_000_000_000;

function freshAgent(): AgentState {
  return {
    status: "idle",
    progress: 0,
    attempts: 0,
    inputTokens: 0,
    outputTokens: 0,
    startedAt: null,
    finishedAt: null,
    nextRetryAt: null,
    lastError: null,
    version: 0,
    cached: false,
  };
}

export function idleState(): SessionState {
  return {
    sessionId: SESSION_ID,
    demo: true,
    model: "demo",
    run: {
      status: "idle",
      approval: null,
      stage: null,
      runId: null,
      pauseRequested: false,
      tokensUsed: 0,
      tokenBudget: 200000,
      startedAt: null,
      finishedAt: null,
      error: null,
    },
    gate: null,
    agents: Object.fromEntries(STAGES.map((s) => [s, freshAgent()])) as Record<Stage, AgentState>,
  };
}

/** Splits text into chunks of at most `size` characters (like coalesced deltas). */
export function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

export function answerFor(stage: Stage, version = 1): string {
  return `# ${STAGE_LABEL[stage]} report v${version}\n\n- point one for ${stage}\n- point two\n\n\`\`\`\ncode ${version}\n\`\`\`\n`;
}

/** A session's event log, written by hand through the same steps the server takes. */
export class Script {
  readonly events: ServerEvent[] = [];
  state: SessionState = idleState();
  private seq = 0;
  private runs = 0;
  private msgs = 0;
  private calls = 0;
  private reasons = 0;
  private fileVersions = 0;
  now = T0;

  private push(event: ServerEvent): ServerEvent {
    this.seq += 1;
    const logged = { ...event, seq: this.seq, timestamp: this.now } as ServerEvent;
    this.events.push(logged);
    this.now += 10;
    return logged;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Events with seq > after (what a replay sends). */
  after(after: number): ServerEvent[] {
    return this.events.filter((e) => (e.seq ?? 0) > after);
  }

  delta(ops: PatchOp[]): void {
    this.state = applyPatch(this.state, ops);
    this.push({ type: "STATE_DELTA", delta: ops });
  }

  runStarted(): void {
    this.runs += 1;
    const runId = `run-${this.runs}`;
    this.push({ type: "RUN_STARTED", threadId: SESSION_ID, runId });
    this.state = { ...this.state, run: { ...this.state.run, runId } };
    this.push({ type: "STATE_SNAPSHOT", snapshot: this.state });
  }

  userMessage(text: string): string {
    this.msgs += 1;
    const id = `msg-${this.msgs}`;
    this.push({ type: "TEXT_MESSAGE_START", messageId: id, role: "user", name: "You" });
    this.push({ type: "TEXT_MESSAGE_CONTENT", messageId: id, delta: text });
    this.push({ type: "TEXT_MESSAGE_END", messageId: id });
    return id;
  }

  /**
   * `models`: the state of a Worker with real models and prices (each agent's `model`,
   * `costMicroUsd`, `priceKnown`; the run's cost and `budgetMicroUsd`); without it, a state from
   * before those fields existed.
   */
  start(brief: string, approval: ApprovalMode = "each_stage", models?: { models: Record<Stage, string>; budgetMicroUsd?: number | null }): void {
    const agents = Object.fromEntries(
      STAGES.map((s) => [s, { ...freshAgent(), status: "queued", ...(models ? { model: models.models[s], costMicroUsd: 0, priceKnown: true } : {}) }]),
    ) as Record<Stage, AgentState>;
    const money = models
      ? { costMicroUsd: this.state.run.costMicroUsd ?? 0, priceKnown: this.state.run.priceKnown ?? true, budgetMicroUsd: models.budgetMicroUsd ?? null }
      : {};
    this.state = {
      ...this.state,
      demo: models ? false : this.state.demo,
      run: { ...this.state.run, status: "running", approval, stage: null, startedAt: this.now, finishedAt: null, error: null, ...money },
      gate: null,
      agents,
    };
    this.runStarted();
    this.userMessage(brief);
  }

  beginAttempt(stage: Stage): void {
    const attempts = this.state.agents[stage].attempts + 1;
    this.delta([
      { op: "replace", path: "/run/stage", value: stage },
      { op: "replace", path: `/agents/${stage}/status`, value: "thinking" },
      { op: "replace", path: `/agents/${stage}/attempts`, value: attempts },
      { op: "replace", path: `/agents/${stage}/startedAt`, value: this.now },
      { op: "replace", path: `/agents/${stage}/nextRetryAt`, value: null },
      { op: "replace", path: `/agents/${stage}/progress`, value: 0 },
    ]);
    this.push({ type: "STEP_STARTED", stepName: stage });
  }

  /** Starts the agent's answer message and streams `text`; returns the message id. */
  stream(stage: Stage, text: string, chunkSize = 7): string {
    this.msgs += 1;
    const id = `msg-${this.msgs}`;
    this.push({ type: "TEXT_MESSAGE_START", messageId: id, role: "assistant", name: STAGE_LABEL[stage] });
    this.delta([{ op: "replace", path: `/agents/${stage}/status`, value: "streaming" }]);
    const parts = chunks(text, chunkSize);
    parts.forEach((part, i) => {
      this.push({ type: "TEXT_MESSAGE_CONTENT", messageId: id, delta: part });
      const pct = Math.floor(((i + 1) / parts.length) * 90);
      if (pct >= this.state.agents[stage].progress + 30) {
        this.delta([{ op: "replace", path: `/agents/${stage}/progress`, value: pct }]);
      }
    });
    return id;
  }

  /** More text for an open answer message (between tool calls). */
  say(messageId: string, text: string, chunkSize = 7): void {
    for (const part of chunks(text, chunkSize)) this.push({ type: "TEXT_MESSAGE_CONTENT", messageId, delta: part });
  }

  /** The model's reasoning: REASONING_START, _MESSAGE_START, the text in pieces, _MESSAGE_END, _END. */
  think(text: string, chunkSize = 7, close = true): string {
    this.reasons += 1;
    const id = `reason-${this.reasons}`;
    this.push({ type: "REASONING_START", messageId: id });
    this.push({ type: "REASONING_MESSAGE_START", messageId: id, role: "reasoning" });
    for (const part of chunks(text, chunkSize)) this.push({ type: "REASONING_MESSAGE_CONTENT", messageId: id, delta: part });
    if (close) this.endThinking(id);
    return id;
  }

  endThinking(id: string): void {
    this.push({ type: "REASONING_MESSAGE_END", messageId: id });
    this.push({ type: "REASONING_END", messageId: id });
  }

  /** What an agent's calls cost (added to its cost and the run's), as the server patches it. */
  spend(stage: Stage, micro: number, priceKnown = true): void {
    const agent = this.state.agents[stage];
    this.delta([
      { op: "replace", path: `/agents/${stage}/costMicroUsd`, value: (agent.costMicroUsd ?? 0) + micro },
      { op: "replace", path: `/agents/${stage}/priceKnown`, value: (agent.priceKnown ?? true) && priceKnown },
      { op: "replace", path: "/run/costMicroUsd", value: (this.state.run.costMicroUsd ?? 0) + micro },
      { op: "replace", path: "/run/priceKnown", value: (this.state.run.priceKnown ?? true) && priceKnown },
    ]);
  }

  toolStart(messageId: string, name: string): string {
    this.calls += 1;
    const id = `call-${this.calls}`;
    this.push({ type: "TOOL_CALL_START", toolCallId: id, toolCallName: name, parentMessageId: messageId });
    return id;
  }

  toolArgs(id: string, delta: string): void {
    this.push({ type: "TOOL_CALL_ARGS", toolCallId: id, delta });
  }

  toolEnd(id: string): void {
    this.push({ type: "TOOL_CALL_END", toolCallId: id });
  }

  toolResult(id: string, content: string): void {
    this.push({ type: "TOOL_CALL_RESULT", messageId: `tool-${id}`, toolCallId: id, content, role: "tool" });
  }

  /** A whole call: start, the arguments' JSON in pieces of `chunkSize` characters, end, result. */
  toolCall(messageId: string, name: string, args: Record<string, unknown>, result: string, chunkSize = 9): string {
    const id = this.toolStart(messageId, name);
    for (const part of chunks(JSON.stringify(args), chunkSize)) this.toolArgs(id, part);
    this.toolEnd(id);
    this.toolResult(id, result);
    return id;
  }

  /** A change to `state.files` as the server patches it (`/` in a path escaped as `~1`). */
  setFile(path: string, info: FileInfo | null): void {
    const ops: PatchOp[] = [];
    if (!this.state.files) ops.push({ op: "add", path: "/files", value: {} });
    const pointer = `/files/${path.replace(/~/g, "~0").replace(/\//g, "~1")}`;
    if (info === null) ops.push({ op: "remove", path: pointer });
    else ops.push({ op: this.state.files?.[path] ? "replace" : "add", path: pointer, value: info });
    this.delta(ops);
  }

  /** `write_file`: the call streams, the file joins the state, then the tool answers. */
  writeFile(stage: Stage, messageId: string, path: string, content: string, chunkSize = 9): string {
    const id = this.toolStart(messageId, "write_file");
    for (const part of chunks(JSON.stringify({ path, content }), chunkSize)) this.toolArgs(id, part);
    this.toolEnd(id);
    this.fileVersions += 1;
    const bytes = utf8Bytes(content);
    this.setFile(path, { bytes, version: this.fileVersions, stage });
    this.toolResult(id, `Wrote ${path} (${bytes} bytes).`);
    return id;
  }

  finishAnswer(stage: Stage, messageId: string, gate: boolean): void {
    const version = this.state.agents[stage].version + 1;
    this.push({ type: "TEXT_MESSAGE_END", messageId });
    this.push({ type: "STEP_FINISHED", stepName: stage });
    this.push(custom("artifact", { stage, version, chars: 100 }));
    const ops: PatchOp[] = [
      { op: "replace", path: `/agents/${stage}/version`, value: version },
      { op: "replace", path: `/agents/${stage}/progress`, value: 100 },
      { op: "replace", path: `/agents/${stage}/inputTokens`, value: this.state.agents[stage].inputTokens + 120 },
      { op: "replace", path: `/agents/${stage}/outputTokens`, value: this.state.agents[stage].outputTokens + 340 },
      { op: "replace", path: `/agents/${stage}/finishedAt`, value: this.now },
      { op: "replace", path: "/run/tokensUsed", value: this.state.run.tokensUsed + 460 },
    ];
    if (gate) {
      ops.push(
        { op: "replace", path: `/agents/${stage}/status`, value: "waiting_approval" },
        { op: "replace", path: "/run/status", value: "waiting_approval" },
        { op: "replace", path: "/gate", value: { id: gateId(stage, version), stage, version } },
      );
    } else {
      ops.push({ op: "replace", path: `/agents/${stage}/status`, value: "done" });
    }
    this.delta(ops);
    if (gate) {
      this.push({
        type: "RUN_FINISHED",
        threadId: SESSION_ID,
        runId: this.state.run.runId ?? "run-?",
        outcome: {
          type: "interrupt",
          interrupts: [{ id: gateId(stage, version), reason: "approval", message: `Review the ${STAGE_LABEL[stage]}'s work (version ${version}).` }],
        },
      });
    }
  }

  /** A whole stage: attempt, streamed answer, artifact, gate (each_stage) or done (auto). */
  stage(stage: Stage, text = answerFor(stage), gate = this.state.run.approval === "each_stage"): string {
    this.beginAttempt(stage);
    const id = this.stream(stage, text);
    this.finishAnswer(stage, id, gate);
    return id;
  }

  /** The user approved the open gate: a new run starts with the next stage (or completion). */
  approve(stage: Stage): void {
    this.state = {
      ...this.state,
      run: { ...this.state.run, status: "running" },
      gate: null,
      agents: { ...this.state.agents, [stage]: { ...this.state.agents[stage], status: "done" } },
    };
    this.runStarted();
    const index = STAGES.indexOf(stage);
    if (index === STAGES.length - 1) this.complete();
  }

  /** The user rejected the open gate with feedback: a new run reruns the stage. */
  reject(stage: Stage, feedback: string): void {
    this.state = {
      ...this.state,
      run: { ...this.state.run, status: "running" },
      gate: null,
      agents: { ...this.state.agents, [stage]: { ...this.state.agents[stage], status: "queued" } },
    };
    this.runStarted();
    this.userMessage(feedback);
  }

  complete(): void {
    this.delta([
      { op: "replace", path: "/run/status", value: "completed" },
      { op: "replace", path: "/run/stage", value: null },
      { op: "replace", path: "/run/finishedAt", value: this.now },
    ]);
    this.push({ type: "RUN_FINISHED", threadId: SESSION_ID, runId: this.state.run.runId ?? "run-?", outcome: { type: "success" } });
  }

  /** A transient failure mid-stream: the message is closed and marked, a retry is scheduled. */
  failRetryable(stage: Stage, messageId: string, code: FailureCode = "rate_limited", delayMs = 4000): number {
    this.push({ type: "TEXT_MESSAGE_END", messageId });
    this.push(custom("message_interrupted", { messageId, stage, reason: "retry" }));
    this.push({ type: "STEP_FINISHED", stepName: stage });
    const at = this.now + delayMs;
    const attempt = this.state.agents[stage].attempts;
    this.push(
      custom("agent_error", {
        stage,
        code,
        message: "The AI provider asked us to slow down.",
        detail: "HTTP 429",
        retryable: true,
        nextRetryAt: at,
        attempt,
      }),
    );
    this.delta([
      { op: "replace", path: `/agents/${stage}/status`, value: "retrying" },
      { op: "replace", path: `/agents/${stage}/nextRetryAt`, value: at },
      { op: "replace", path: `/agents/${stage}/lastError`, value: { code, message: "The AI provider asked us to slow down." } },
    ]);
    return at;
  }

  /** The dollar budget is spent: `stage` is not started (attempt 0) and the run ends, as the Worker does. */
  budgetStop(stage: Stage, spent = "$0.0165", budget = "$0.015"): void {
    this.push(
      custom("agent_error", {
        stage,
        code: "budget_exhausted",
        message: "The session's dollar budget is used up.",
        detail: `${spent} of ${budget} spent`,
        retryable: false,
        nextRetryAt: null,
        attempt: 0,
      }),
    );
    const message = `This session has spent ${spent} of its ${budget} budget, so the ${STAGE_LABEL[stage]} was not started. Open a new session to continue.`;
    this.delta([
      { op: "replace", path: "/run/stage", value: stage },
      { op: "replace", path: "/run/status", value: "failed" },
      { op: "replace", path: "/run/error", value: { code: "budget_exhausted", message } },
    ]);
    this.push({ type: "RUN_ERROR", message, code: "budget_exhausted" });
  }

  /** A permanent failure: the run ends in RUN_ERROR. */
  failRun(stage: Stage, code: FailureCode = "bad_key", message = "The AI provider rejected the API key."): void {
    this.push(
      custom("agent_error", {
        stage,
        code,
        message,
        detail: "HTTP 401",
        retryable: false,
        nextRetryAt: null,
        attempt: this.state.agents[stage].attempts,
      }),
    );
    this.delta([
      { op: "replace", path: `/agents/${stage}/status`, value: "failed" },
      { op: "replace", path: `/agents/${stage}/lastError`, value: { code, message } },
      { op: "replace", path: "/run/status", value: "failed" },
      { op: "replace", path: "/run/error", value: { code, message } },
    ]);
    this.push({ type: "RUN_ERROR", message: `${message} The run stopped.`, code });
  }
}

// Connection frames (no seq) -------------------------------------------------------------------

export function welcome(lastSeq: number, mode: "replay" | "snapshot" = "replay", extra: { readOnly?: boolean; sessionId?: string; epoch?: number } = {}): ServerEvent {
  return custom("welcome", {
    sessionId: extra.sessionId ?? SESSION_ID,
    ...(extra.readOnly !== undefined ? { readOnly: extra.readOnly } : {}),
    demo: true,
    model: "demo",
    lastSeq,
    epoch: extra.epoch ?? 1,
    mode,
    ...(mode === "snapshot" ? { reason: lastSeq === 0 ? "empty" : "log_truncated" } : {}),
    // No `flow`: the socket tests that need acks add it themselves.
  });
}

/** As the server sends it: `omittedMessages` is 0 unless a snapshot left messages out. */
export function caughtUp(lastSeq: number, omittedMessages = 0): ServerEvent {
  return custom("caught_up", { lastSeq, omittedMessages });
}

export function ack(id: string, command: string, duplicate = false): ServerEvent {
  return custom("ack", { id, command, duplicate });
}

export function rejected(id: string | null, command: string, code: RejectionCode, message: string): ServerEvent {
  return custom("rejected", { id, command, code, message });
}

/** A full each_stage pipeline: five gates approved, then completion. */
export function fullEachStageRun(brief = "Build a todo app for teams."): Script {
  const s = new Script();
  s.start(brief, "each_stage");
  for (const stage of STAGES) {
    s.stage(stage);
    s.approve(stage);
  }
  return s;
}
