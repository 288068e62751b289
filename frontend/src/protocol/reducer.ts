// The session view model and the pure reducer that builds it from server frames.
//
// Logged events (with `seq`) are applied exactly once and in order: an event with seq ≤ lastSeq is
// dropped (a duplicate from a replay), an event with seq > lastSeq + 1 is dropped too and flags
// `resyncNeeded` (a gap: the socket layer answers with a fresh `hello {lastSeq}` and the server
// replays from there). Connection frames (welcome, caught_up, ack, rejected, warning, snapshots
// sent in snapshot mode) carry no seq and never move lastSeq except through `welcome` in snapshot
// mode. Nothing here touches the network, the DOM or the clock: `now` is passed in.

import { applyPatch, PatchError } from "./jsonPatch";
import { providerWords, rejectionWords } from "./errors";
import { parseGateId } from "./gates";
import { toolError } from "./toolCalls";
import { formatClock } from "../lib/format";
import { isViewKey } from "../lib/sessionKey";
import {
  LIMITS,
  STAGE_LABEL,
  isStage,
  stageOfName,
  type AgentErrorValue,
  type AgentQueuedValue,
  type Interrupt,
  type InterruptReason,
  type MessageRole,
  type RejectedValue,
  type ServerEvent,
  type SessionState,
  type Stage,
  type UserCommand,
  type WelcomeValue,
  type WireMessage,
} from "./types";

/** Where a tool call sits in its message: after the first `offset` characters of its text. */
export interface ToolCallRef {
  id: string;
  offset: number;
}

/**
 * Where a reasoning block sits in its message: after the first `offset` characters of its text
 * and after the message's first `afterToolCalls` tool calls (so it keeps its place among calls
 * that began at the same offset).
 */
export interface ReasoningRef {
  id: string;
  offset: number;
  afterToolCalls: number;
}

/**
 * The model's reasoning ("thinking", AG-UI REASONING_* events): its own text, never part of the
 * answer or the artifact. Shown as a collapsed block in the agent's turn.
 */
export interface Reasoning {
  id: string;
  /** The agent that thought it (the stage running when it began) and its stage. */
  agent: string;
  stage: Stage | null;
  content: string;
  /** Still arriving (no REASONING_MESSAGE_END / REASONING_END yet). */
  streaming: boolean;
  /** The answer message it belongs to; null while it stands before the answer has begun. */
  messageId: string | null;
  /** Epoch ms of its first and last event (how long the agent thought). */
  startedAt: number | null;
  endedAt: number | null;
}

export interface ChatMessage {
  id: string;
  role: MessageRole | string;
  /** Display name: "You" for the brief and feedback, the agent's name for its answers. */
  name: string;
  stage: Stage | null;
  content: string;
  streaming: boolean;
  /** Why the message was closed early (an `InterruptReason`: `retry`, `deferred`, …), if it was. */
  interrupted: InterruptReason | "interrupted" | null;
  at: number | null;
  /** The message's tool calls in the order they started, each placed in the text where it began. */
  toolCalls: ToolCallRef[];
  /** The agent's reasoning in this answer, in order, each placed where it began. */
  reasoning: ReasoningRef[];
}

/**
 * `streaming`: the arguments are still arriving; `running`: complete, the tool has not answered;
 * `done` / `failed`: answered (a failed call's answer starts with `Error: ` and changed nothing);
 * `interrupted`: its message was cut short before the tool answered.
 */
export type ToolCallStatus = "streaming" | "running" | "done" | "failed" | "interrupted";

export interface ToolCall {
  id: string;
  /** `write_file`, `read_file`, `list_files`, `delete_file` (or a tool this page does not know). */
  name: string;
  messageId: string | null;
  /** The agent that called it (the parent message's name) and its stage. */
  agent: string;
  stage: Stage | null;
  /** The arguments' JSON text so far. */
  args: string;
  status: ToolCallStatus;
  /** The tool's answer, once it came. */
  result: string | null;
  /** The plain error of a failed call (the answer after `Error: `). */
  error: string | null;
  at: number | null;
}

export type NoticeTone = "info" | "success" | "warning" | "error";

export interface Notice {
  kind: "notice";
  id: string;
  tone: NoticeTone;
  text: string;
  stage: Stage | null;
  at: number | null;
  /** It announced an approval gate (shown as answered once that gate has closed). */
  gate?: true;
}

/** A reasoning block that began before its agent's answer message (adopted by it when it starts). */
export type TimelineItem = { kind: "message"; id: string } | { kind: "reasoning"; id: string } | Notice;

export type ErrorSource = "agent" | "run" | "rejected" | "warning" | "client";

export interface UiError {
  id: string;
  source: ErrorSource;
  code: string;
  /** Plain-language headline. */
  title: string;
  /** The server's own plain-words message. */
  message: string;
  /** What happens next / what the user can do. */
  next: string;
  stage: Stage | null;
  /** Epoch ms of an automatic retry, if one is scheduled. */
  retryAt: number | null;
  attempt: number | null;
  /** Raw frame for the "details" toggle. */
  details: string;
  at: number;
  resolved: boolean;
  dismissed: boolean;
}

export interface PendingCommand {
  id: string;
  command: UserCommand;
  sentAt: number;
}

export type SyncPhase = "idle" | "syncing" | "live";

export type RunOutcomeKind = "success" | "interrupt" | "cancelled" | "error";

export interface SessionView {
  /** The key the page opened the session with: its id, or a view key. */
  sessionId: string | null;
  /**
   * A view-only link: no control that sends a command is shown. From the key's shape at first,
   * then from `welcome.readOnly` (the server's word).
   */
  readOnly: boolean;
  /** Highest logged seq applied. */
  lastSeq: number;
  state: SessionState | null;
  messages: Record<string, ChatMessage>;
  timeline: TimelineItem[];
  welcome: WelcomeValue | null;
  sync: SyncPhase;
  /** The interrupt of the last RUN_FINISHED, while its gate is open. */
  interrupt: Interrupt | null;
  runId: string | null;
  lastOutcome: RunOutcomeKind | null;
  errors: UiError[];
  pending: Record<string, PendingCommand>;
  /** The server's snapshot left out this many of the oldest messages (bounded history). */
  omittedMessages: number;
  /** Latest artifact version per stage announced by `artifact` events. */
  artifactVersions: Partial<Record<Stage, number>>;
  /** Every tool call of the thread, by id (each message lists its own in `toolCalls`). */
  toolCalls: Record<string, ToolCall>;
  /** Calls not answered yet (streaming or running), oldest first: what the agents are doing now. */
  openToolCalls: string[];
  /** Every reasoning block of the thread, by id (placed by a message's `reasoning` or the timeline). */
  reasoning: Record<string, Reasoning>;
  /** The socket layer sends a fresh hello when this is set. */
  resyncNeeded: boolean;
  /** The view no longer matches the server (a patch failed): rebuild from seq 0. */
  fullResyncNeeded: boolean;
  stats: { applied: number; duplicates: number; gaps: number };
}

const MAX_ERRORS = 50;

export function initialView(sessionId: string | null = null): SessionView {
  return {
    sessionId,
    readOnly: isViewKey(sessionId),
    lastSeq: 0,
    state: null,
    messages: {},
    timeline: [],
    welcome: null,
    sync: "idle",
    interrupt: null,
    runId: null,
    lastOutcome: null,
    errors: [],
    pending: {},
    omittedMessages: 0,
    artifactVersions: {},
    toolCalls: {},
    openToolCalls: [],
    reasoning: {},
    resyncNeeded: false,
    fullResyncNeeded: false,
    stats: { applied: 0, duplicates: 0, gaps: 0 },
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function pushError(view: SessionView, error: UiError): UiError[] {
  const errors = [...view.errors, error];
  return errors.length > MAX_ERRORS ? errors.slice(errors.length - MAX_ERRORS) : errors;
}

function resolveErrors(
  errors: UiError[],
  match: (e: UiError) => boolean,
): UiError[] {
  let changed = false;
  const next = errors.map((e) => {
    if (!e.resolved && match(e)) {
      changed = true;
      return { ...e, resolved: true };
    }
    return e;
  });
  return changed ? next : errors;
}

function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) =>
        typeof part === "object" && part !== null && typeof (part as { text?: unknown }).text === "string"
          ? (part as { text: string }).text
          : "",
      )
      .join("");
  }
  return "";
}

function fromWireMessage(m: WireMessage): ChatMessage {
  const name = m.name ?? (m.role === "user" ? "You" : "Agent");
  return {
    id: m.id,
    role: m.role,
    name,
    stage: m.role === "user" ? null : (stageOfName(name) ?? null),
    content: messageText(m.content),
    streaming: false,
    interrupted: null,
    at: null,
    toolCalls: [],
    reasoning: [],
  };
}

/** Plain words for each reason a message was cut short (complete over the generated type). */
export const INTERRUPT_WORDS: Readonly<Record<InterruptReason, string>> = {
  retry: "cut short: the agent is trying again",
  cancelled: "cut short: the run was cancelled",
  restart: "cut short: the server restarted; the stage runs again",
  failed: "cut short: the attempt failed",
  deferred: "cut short: the stage waits for the AI provider and starts again by itself",
};

function isInterruptReason(value: unknown): value is InterruptReason {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(INTERRUPT_WORDS, value);
}

function label(stage: Stage | null | undefined): string {
  return stage ? STAGE_LABEL[stage] : "The agent";
}

function agentErrorToUi(value: AgentErrorValue, raw: ServerEvent, at: number): UiError {
  const words = providerWords(value.code);
  const stage = isStage(value.stage) ? value.stage : null;
  let next: string;
  if (value.retryable && value.nextRetryAt != null) {
    next = `That will be attempt ${value.attempt + 1} of ${LIMITS.attemptsPerStage}.`;
  } else if (value.retryable) {
    next = "BotArmy will try again by itself.";
  } else {
    next = `No automatic retry. ${words.next}`;
  }
  return {
    id: `agent-${raw.seq ?? at}-${value.stage}-${value.attempt}`,
    source: "agent",
    code: value.code,
    title: `${label(stage)}: ${words.title.charAt(0).toLowerCase()}${words.title.slice(1)}`,
    message: value.message,
    next,
    stage,
    retryAt: value.retryable ? value.nextRetryAt : null,
    attempt: value.attempt,
    details: JSON.stringify(raw, null, 2),
    at,
    resolved: false,
    dismissed: false,
  };
}

function rejectedToUi(value: RejectedValue, raw: ServerEvent, at: number, command: UserCommand | undefined): UiError {
  const words = rejectionWords(value.code);
  const what = value.command ?? command?.type;
  return {
    id: `rejected-${value.id ?? at}-${value.code}`,
    source: "rejected",
    code: value.code,
    title: words.title,
    message: value.message,
    next: what ? `${words.next} (command: ${what})` : words.next,
    stage: command && "stage" in command ? command.stage : null,
    retryAt: null,
    attempt: null,
    details: JSON.stringify(raw, null, 2),
    at,
    resolved: false,
    dismissed: false,
  };
}

function failedStage(state: SessionState | null): Stage | null {
  if (!state) return null;
  if (state.run.stage) return state.run.stage;
  for (const [stage, agent] of Object.entries(state.agents)) {
    if (agent.status === "failed" && isStage(stage)) return stage;
  }
  return null;
}

function runErrorToUi(code: string | undefined, message: string, raw: ServerEvent | null, at: number, state: SessionState | null): UiError {
  const words = providerWords(code);
  const stage = failedStage(state);
  return {
    id: `run-${raw?.seq ?? at}`,
    source: "run",
    code: code ?? "error",
    title: stage ? `The run stopped at ${label(stage)}: ${words.title.charAt(0).toLowerCase()}${words.title.slice(1)}` : words.title,
    message,
    next: words.next,
    stage,
    retryAt: null,
    attempt: null,
    details: raw ? JSON.stringify(raw, null, 2) : JSON.stringify({ code, message }, null, 2),
    at,
    resolved: false,
    dismissed: false,
  };
}

function notice(id: string, tone: NoticeTone, text: string, stage: Stage | null, at: number | null): Notice {
  return { kind: "notice", id, tone, text, stage, at };
}

// ---------------------------------------------------------------------------------------------
// Logged events

/** Adds a message to the thread, at the end of the timeline. */
function withNewMessage(view: SessionView, message: ChatMessage): SessionView {
  return {
    ...view,
    messages: { ...view.messages, [message.id]: message },
    timeline: [...view.timeline, { kind: "message", id: message.id }],
  };
}

function applyLogged(view: SessionView, event: ServerEvent, now: number): SessionView {
  const at = event.timestamp ?? now;
  switch (event.type) {
    case "RUN_STARTED":
      return {
        ...view,
        runId: event.runId,
        interrupt: null,
        lastOutcome: null,
        errors: resolveErrors(view.errors, (e) => e.source === "run" || e.source === "agent"),
      };

    case "STATE_SNAPSHOT":
      return { ...view, state: event.snapshot };

    case "STATE_DELTA": {
      if (!view.state) return { ...view, fullResyncNeeded: true };
      try {
        return { ...view, state: applyPatch(view.state, event.delta) };
      } catch (err) {
        const message = err instanceof PatchError ? err.message : String(err);
        return {
          ...view,
          fullResyncNeeded: true,
          errors: pushError(view, {
            id: `client-patch-${event.seq ?? at}`,
            source: "client",
            code: "state_out_of_sync",
            title: "The page fell out of step with the server",
            message: "A status update could not be applied.",
            next: "The page reloads the session history automatically.",
            stage: null,
            retryAt: null,
            attempt: null,
            details: `${message}\n${JSON.stringify(event, null, 2)}`,
            at,
            resolved: false,
            dismissed: false,
          }),
        };
      }
    }

    case "TEXT_MESSAGE_START": {
      if (view.messages[event.messageId]) return view;
      const role = event.role ?? "assistant";
      const name = event.name ?? (role === "user" ? "You" : label(view.state?.run.stage ?? null));
      const stage = role === "user" ? null : (stageOfName(name) ?? view.state?.run.stage ?? null);
      const message: ChatMessage = {
        id: event.messageId,
        role,
        name,
        stage,
        content: "",
        streaming: true,
        interrupted: null,
        at,
        toolCalls: [],
        reasoning: [],
      };
      return role === "user" ? withNewMessage(view, message) : adoptReasoning(withNewMessage(view, message), message.id);
    }

    case "TEXT_MESSAGE_CONTENT": {
      const existing = view.messages[event.messageId];
      if (!existing) {
        // A delta for a message we never saw start (should not happen); keep the text anyway.
        const stage = view.state?.run.stage ?? null;
        const message: ChatMessage = {
          id: event.messageId,
          role: "assistant",
          name: label(stage),
          stage,
          content: event.delta,
          streaming: true,
          interrupted: null,
          at,
          toolCalls: [],
          reasoning: [],
        };
        return withNewMessage(view, message);
      }
      return {
        ...view,
        messages: {
          ...view.messages,
          [event.messageId]: { ...existing, content: existing.content + event.delta, streaming: true },
        },
      };
    }

    case "TEXT_MESSAGE_END": {
      const existing = view.messages[event.messageId];
      if (!existing || !existing.streaming) return view;
      return {
        ...view,
        messages: { ...view.messages, [event.messageId]: { ...existing, streaming: false } },
      };
    }

    case "STEP_STARTED":
    case "STEP_FINISHED":
      // Agent status lives in the state; steps need no extra bookkeeping here.
      return view;

    case "TOOL_CALL_START":
      return toolCallStarted(view, event.toolCallId, event.toolCallName, event.parentMessageId, at);

    case "TOOL_CALL_ARGS": {
      const call = view.toolCalls[event.toolCallId];
      if (!call || call.status !== "streaming" || typeof event.delta !== "string") return view;
      return withToolCall(view, { ...call, args: call.args + event.delta });
    }

    case "TOOL_CALL_END": {
      const call = view.toolCalls[event.toolCallId];
      if (!call || call.status !== "streaming") return view;
      return withToolCall(view, { ...call, status: "running" });
    }

    case "TOOL_CALL_RESULT": {
      const call = view.toolCalls[event.toolCallId];
      if (!call || typeof event.content !== "string") return view;
      const error = toolError(event.content);
      const next = withToolCall(view, { ...call, status: error === null ? "done" : "failed", result: event.content, error });
      return { ...next, openToolCalls: without(next.openToolCalls, call.id) };
    }

    case "RUN_FINISHED": {
      const outcome = event.outcome;
      if (outcome?.type === "interrupt") {
        const interrupt = outcome.interrupts[0] ?? null;
        const gateStage = view.state?.gate?.stage ?? parseGateId(interrupt?.id)?.stage ?? null;
        // The server's words ask the owner to act; a viewer is told who it waits for instead.
        const text = view.readOnly
          ? `${label(gateStage)} is waiting for the session owner's approval.`
          : (interrupt?.message ?? `${label(gateStage)} is waiting for your approval.`);
        return {
          ...view,
          interrupt,
          lastOutcome: "interrupt",
          timeline: [...view.timeline, { ...notice(`n-${event.seq ?? at}`, "info", text, gateStage, at), gate: true }],
        };
      }
      if (outcome?.type === "cancelled") {
        return {
          ...view,
          interrupt: null,
          lastOutcome: "cancelled",
          errors: resolveErrors(view.errors, (e) => e.source === "agent"),
          timeline: [...view.timeline, notice(`n-${event.seq ?? at}`, "warning", "The run was cancelled.", null, at)],
        };
      }
      return {
        ...view,
        interrupt: null,
        lastOutcome: "success",
        errors: resolveErrors(view.errors, (e) => e.source === "agent"),
        timeline: [
          ...view.timeline,
          notice(`n-${event.seq ?? at}`, "success", "All five agents are done: the plan is complete.", null, at),
        ],
      };
    }

    case "RUN_ERROR": {
      const error = runErrorToUi(event.code, event.message, event, at, view.state);
      const cause = [...view.errors].reverse().find((e) => e.source === "agent" && e.stage === error.stage && !e.resolved);
      if (cause) error.details += `\n\nCaused by:\n${cause.details}`;
      return {
        ...view,
        interrupt: null,
        lastOutcome: "error",
        errors: pushError(
          { ...view, errors: resolveErrors(view.errors, (e) => e.source === "agent" || e.source === "run") },
          error,
        ),
        timeline: [...view.timeline, notice(`n-${event.seq ?? at}`, "error", `The run stopped: ${event.message}`, error.stage, at)],
      };
    }

    case "REASONING_START":
    case "REASONING_MESSAGE_START":
      return reasoningStarted(view, event.messageId, at);

    case "REASONING_MESSAGE_CONTENT": {
      if (typeof event.delta !== "string") return view;
      const started = reasoningStarted(view, event.messageId, at);
      const block = started.reasoning[event.messageId];
      if (!block) return started;
      return withReasoning(started, { ...block, content: block.content + event.delta, streaming: true, endedAt: at });
    }

    case "REASONING_MESSAGE_END":
    case "REASONING_END": {
      const block = view.reasoning[event.messageId];
      if (!block || !block.streaming) return view;
      return withReasoning(view, { ...block, streaming: false, endedAt: at });
    }

    case "MESSAGES_SNAPSHOT":
      return replaceMessages(view, event.messages);

    case "OTHER_LOGGED":
      // Nothing to show (yet) for a newer event type; reduce() still moves lastSeq past it.
      return view;

    case "CUSTOM": {
      if (event.name === "artifact") {
        const value = event.value as { stage?: unknown; version?: unknown };
        if (!isStage(value.stage) || typeof value.version !== "number") return view;
        const stage = value.stage;
        return {
          ...view,
          artifactVersions: { ...view.artifactVersions, [stage]: value.version },
          errors: resolveErrors(view.errors, (e) => e.source === "agent" && e.stage === stage),
        };
      }
      if (event.name === "agent_error") {
        const value = event.value as AgentErrorValue;
        const error = agentErrorToUi(value, event, at);
        const superseded = resolveErrors(view.errors, (e) => e.source === "agent" && e.stage === error.stage);
        return {
          ...view,
          errors: pushError({ ...view, errors: superseded }, error),
          timeline: [
            ...view.timeline,
            notice(
              `n-${event.seq ?? at}`,
              value.retryable ? "warning" : "error",
              value.attempt === 0
                ? // Stopped before an attempt began (a budget is spent): nothing failed, nothing ran.
                  `${label(error.stage)} was not started: ${value.message}`
                : value.retryable && value.nextRetryAt != null
                  ? `${label(error.stage)} attempt ${value.attempt} failed: ${value.message} Trying again at ${formatClock(value.nextRetryAt)}.`
                  : `${label(error.stage)} attempt ${value.attempt} failed: ${value.message}`,
              error.stage,
              at,
            ),
          ],
        };
      }
      if (event.name === "agent_queued") {
        const value = event.value as Partial<AgentQueuedValue>;
        // The shared-limit wait can repeat every few seconds; the card shows it. Only the
        // provider's own request to wait, which follows a user's Retry, is worth a line.
        if (value.reason !== "provider_retry_after" || typeof value.message !== "string") return view;
        const stage = isStage(value.stage) ? value.stage : null;
        return {
          ...view,
          timeline: [...view.timeline, notice(`n-${event.seq ?? at}`, "info", value.message, stage, at)],
        };
      }
      if (event.name === "message_interrupted") {
        const value = event.value as { messageId?: unknown; reason?: unknown };
        if (typeof value.messageId !== "string") return view;
        const existing = view.messages[value.messageId];
        if (!existing) return view;
        return {
          ...endReasoningOf(interruptToolCalls(view, existing), existing, at),
          messages: {
            ...view.messages,
            [value.messageId]: {
              ...existing,
              streaming: false,
              interrupted: isInterruptReason(value.reason) ? value.reason : "interrupted",
            },
          },
        };
      }
      return view;
    }
  }
}

function replaceMessages(view: SessionView, wire: WireMessage[]): SessionView {
  const messages: Record<string, ChatMessage> = {};
  const timeline: TimelineItem[] = [];
  const toolCalls: Record<string, ToolCall> = {};
  const results = new Map<string, string>();
  for (const m of wire) {
    if (m?.role === "tool" && typeof m.toolCallId === "string") results.set(m.toolCallId, messageText(m.content));
  }
  for (const m of wire) {
    if (typeof m?.id !== "string") continue;
    if (m.role !== "user" && m.role !== "assistant") continue;
    const message = fromWireMessage(m);
    // AG-UI keeps an assistant message's text and its tool calls apart; the calls follow the text.
    if (m.role === "assistant" && Array.isArray(m.toolCalls)) {
      for (const wireCall of m.toolCalls) {
        if (typeof wireCall?.id !== "string" || toolCalls[wireCall.id]) continue;
        const result = results.get(wireCall.id) ?? null;
        const error = toolError(result);
        toolCalls[wireCall.id] = {
          id: wireCall.id,
          name: typeof wireCall.function?.name === "string" ? wireCall.function.name : "tool",
          messageId: message.id,
          agent: message.name,
          stage: message.stage,
          args: typeof wireCall.function?.arguments === "string" ? wireCall.function.arguments : "",
          status: result === null ? "running" : error === null ? "done" : "failed",
          result,
          error,
          at: null,
        };
        message.toolCalls.push({ id: wireCall.id, offset: message.content.length });
      }
    }
    messages[m.id] = message;
    timeline.push({ kind: "message", id: m.id });
  }
  const openToolCalls = Object.values(toolCalls)
    .filter((c) => c.status === "running")
    .map((c) => c.id);
  // Reasoning is not kept in MESSAGES_SNAPSHOT: the thread it was placed in is replaced.
  return { ...view, messages, timeline, toolCalls, openToolCalls, reasoning: {} };
}

// ---------------------------------------------------------------------------------------------
// Reasoning ("thinking")

function withReasoning(view: SessionView, block: Reasoning): SessionView {
  return { ...view, reasoning: { ...view.reasoning, [block.id]: block } };
}

/** The answer message of `stage` still being written, if any (the last message of the thread). */
function openAnswerOf(view: SessionView, stage: Stage | null): ChatMessage | undefined {
  for (let i = view.timeline.length - 1; i >= 0; i--) {
    const item = view.timeline[i]!;
    if (item.kind !== "message") continue;
    const message = view.messages[item.id];
    if (message && message.role !== "user" && message.streaming && !message.interrupted && message.stage === stage) return message;
    return undefined;
  }
  return undefined;
}

/**
 * A reasoning block begins (or its first event seen is a later one: the page joined by snapshot
 * mid-thought). It belongs to the agent whose stage runs: inside its answer when the answer has
 * begun (thinking between tool rounds), else on its own in the thread until the answer starts.
 */
function reasoningStarted(view: SessionView, id: string, at: number): SessionView {
  if (typeof id !== "string" || view.reasoning[id]) return view;
  const stage = view.state?.run.stage ?? null;
  const parent = openAnswerOf(view, stage);
  const block: Reasoning = {
    id,
    agent: parent?.name ?? label(stage),
    stage,
    content: "",
    streaming: true,
    messageId: parent?.id ?? null,
    startedAt: at,
    endedAt: null,
  };
  const next = withReasoning(view, block);
  if (!parent) return { ...next, timeline: [...next.timeline, { kind: "reasoning", id }] };
  const ref: ReasoningRef = { id, offset: parent.content.length, afterToolCalls: parent.toolCalls.length };
  return { ...next, messages: { ...next.messages, [parent.id]: { ...parent, reasoning: [...parent.reasoning, ref] } } };
}

/**
 * An agent's answer message started: the reasoning blocks that stand just before it in the
 * thread (the same agent's thinking, with nothing else between) move into it, at its start.
 */
function adoptReasoning(view: SessionView, messageId: string): SessionView {
  const message = view.messages[messageId];
  if (!message) return view;
  // The message is the last item; look at the reasoning items right before it.
  let from = view.timeline.length - 1;
  while (from > 0) {
    const item = view.timeline[from - 1]!;
    if (item.kind !== "reasoning") break;
    const block = view.reasoning[item.id];
    if (!block || block.messageId !== null || block.stage !== message.stage) break;
    from -= 1;
  }
  if (from === view.timeline.length - 1) return view;
  const adopted = view.timeline.slice(from, -1).map((item) => item.id);
  const reasoning = { ...view.reasoning };
  for (const id of adopted) reasoning[id] = { ...reasoning[id]!, messageId, agent: message.name };
  return {
    ...view,
    reasoning,
    timeline: [...view.timeline.slice(0, from), view.timeline.at(-1)!],
    messages: {
      ...view.messages,
      [messageId]: { ...message, reasoning: [...adopted.map((id) => ({ id, offset: 0, afterToolCalls: 0 })), ...message.reasoning] },
    },
  };
}

/** A message cut short: its reasoning still open (the server closes it first) ends too. */
function endReasoningOf(view: SessionView, message: ChatMessage, at: number): SessionView {
  let next = view;
  for (const ref of message.reasoning) {
    const block = next.reasoning[ref.id];
    if (block?.streaming) next = withReasoning(next, { ...block, streaming: false, endedAt: at });
  }
  return next;
}

// ---------------------------------------------------------------------------------------------
// Tool calls

function without(ids: string[], id: string): string[] {
  return ids.includes(id) ? ids.filter((x) => x !== id) : ids;
}

function withToolCall(view: SessionView, call: ToolCall): SessionView {
  return { ...view, toolCalls: { ...view.toolCalls, [call.id]: call } };
}

function toolCallStarted(view: SessionView, id: string, name: string, parentId: string | undefined, at: number): SessionView {
  if (typeof id !== "string" || view.toolCalls[id]) return view;
  let next = view;
  let parent = typeof parentId === "string" ? view.messages[parentId] : undefined;
  if (!parent) {
    // A call whose message this page never saw start (the server sends the start first; a
    // snapshot may have left it out): give it a message of its own so it is still shown.
    const stage = view.state?.run.stage ?? null;
    parent = {
      id: typeof parentId === "string" ? parentId : `tool-parent-${id}`,
      role: "assistant",
      name: label(stage),
      stage,
      content: "",
      streaming: true,
      interrupted: null,
      at,
      toolCalls: [],
      reasoning: [],
    };
    next = withNewMessage(next, parent);
  }
  const call: ToolCall = {
    id,
    name: typeof name === "string" && name ? name : "tool",
    messageId: parent.id,
    agent: parent.name,
    stage: parent.stage,
    args: "",
    status: "streaming",
    result: null,
    error: null,
    at,
  };
  return {
    ...next,
    messages: {
      ...next.messages,
      [parent.id]: { ...parent, toolCalls: [...parent.toolCalls, { id, offset: parent.content.length }] },
    },
    toolCalls: { ...next.toolCalls, [id]: call },
    openToolCalls: [...next.openToolCalls, id],
  };
}

/** A message cut short: its calls that the tools never answered will not be answered. */
function interruptToolCalls(view: SessionView, message: ChatMessage): SessionView {
  const open = message.toolCalls.filter((ref) => {
    const status = view.toolCalls[ref.id]?.status;
    return status === "streaming" || status === "running";
  });
  if (open.length === 0) return view;
  const toolCalls = { ...view.toolCalls };
  for (const ref of open) toolCalls[ref.id] = { ...toolCalls[ref.id]!, status: "interrupted" };
  const closed = new Set(open.map((ref) => ref.id));
  return { ...view, toolCalls, openToolCalls: view.openToolCalls.filter((id) => !closed.has(id)) };
}

// ---------------------------------------------------------------------------------------------
// Connection frames

function applyConnection(view: SessionView, event: ServerEvent, now: number): SessionView {
  switch (event.type) {
    case "STATE_SNAPSHOT": {
      // Sent in snapshot mode after welcome: the state as of welcome.lastSeq.
      const state = event.snapshot;
      let errors = resolveErrors(view.errors, (e) => e.source === "agent" || e.source === "run");
      if (state.run.status === "failed" && state.run.error) {
        errors = pushError({ ...view, errors }, runErrorToUi(state.run.error.code, state.run.error.message, null, now, state));
      }
      return {
        ...view,
        state,
        errors,
        runId: state.run.runId,
        interrupt: state.gate ? { id: state.gate.id, reason: "approval" } : null,
      };
    }
    case "MESSAGES_SNAPSHOT":
      return replaceMessages(view, event.messages);
    case "CUSTOM":
      switch (event.name) {
        case "welcome": {
          const value = event.value as WelcomeValue;
          const readOnly = value.readOnly ?? view.readOnly;
          if (value.mode === "snapshot") {
            // Replace lastSeq now; the state and messages snapshots follow before caught_up.
            return { ...view, welcome: value, readOnly, sync: "syncing", lastSeq: value.lastSeq, resyncNeeded: false };
          }
          return { ...view, welcome: value, readOnly, sync: "syncing", resyncNeeded: false };
        }
        case "caught_up": {
          // Only a snapshot replaces the messages, so only a snapshot's count replaces the
          // page's: after a replay (the server sends omittedMessages: 0) the page still shows
          // what the last snapshot left it.
          if (view.welcome?.mode !== "snapshot") return { ...view, sync: "live" };
          const omitted = (event.value as { omittedMessages?: unknown } | null)?.omittedMessages;
          const valid = typeof omitted === "number" && Number.isInteger(omitted) && omitted >= 0 ? omitted : 0;
          return valid === view.omittedMessages ? { ...view, sync: "live" } : { ...view, sync: "live", omittedMessages: valid };
        }
        case "ack": {
          const id = (event.value as { id?: unknown }).id;
          if (typeof id !== "string" || !view.pending[id]) return view;
          const pending = { ...view.pending };
          delete pending[id];
          return { ...view, pending };
        }
        case "rejected": {
          const value = event.value as RejectedValue;
          const pending = { ...view.pending };
          const command = value.id ? pending[value.id]?.command : undefined;
          if (value.id) delete pending[value.id];
          return { ...view, pending, errors: pushError(view, rejectedToUi(value, event, now, command)) };
        }
        case "warning": {
          const value = event.value as { code?: string; message?: string };
          const words = rejectionWords(value.code);
          return {
            ...view,
            errors: pushError(view, {
              id: `warning-${now}-${value.code ?? "warning"}`,
              source: "warning",
              code: value.code ?? "warning",
              title: words.title,
              message: value.message ?? "",
              next: words.next,
              stage: null,
              retryAt: null,
              attempt: null,
              details: JSON.stringify(event, null, 2),
              at: now,
              resolved: false,
              dismissed: false,
            }),
          };
        }
        default:
          return view;
      }
    default:
      return view;
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/** Applies one server frame. Pure: never mutates `view`; untouched parts keep their identity. */
export function reduce(view: SessionView, event: ServerEvent, now: number): SessionView {
  if (typeof event.seq !== "number") return applyConnection(view, event, now);
  if (event.seq <= view.lastSeq) {
    return { ...view, stats: { ...view.stats, duplicates: view.stats.duplicates + 1 } };
  }
  if (event.seq > view.lastSeq + 1) {
    return { ...view, resyncNeeded: true, stats: { ...view.stats, gaps: view.stats.gaps + 1 } };
  }
  const next = applyLogged(view, event, now);
  return { ...next, lastSeq: event.seq, stats: { ...next.stats, applied: next.stats.applied + 1 } };
}

/** Applies a batch of frames in order. */
export function reduceAll(view: SessionView, events: readonly ServerEvent[], now: number): SessionView {
  let next = view;
  for (const event of events) next = reduce(next, event, now);
  return next;
}

/** The socket (re)opened and a hello is about to go out. */
export function beginHello(view: SessionView): SessionView {
  return { ...view, sync: "syncing", resyncNeeded: false };
}

/** The socket closed: nothing is live until the next caught_up. */
export function connectionLost(view: SessionView): SessionView {
  return view.sync === "idle" ? view : { ...view, sync: "idle" };
}

/** Forget everything but the session id: used before a full replay from seq 0. */
export function resetForFullResync(view: SessionView): SessionView {
  return { ...initialView(view.sessionId), readOnly: view.readOnly, errors: view.errors, pending: view.pending };
}

export function recordSent(view: SessionView, command: UserCommand & { id: string }, now: number): SessionView {
  return { ...view, pending: { ...view.pending, [command.id]: { id: command.id, command, sentAt: now } } };
}

export function dropPending(view: SessionView, id: string): SessionView {
  if (!view.pending[id]) return view;
  const pending = { ...view.pending };
  delete pending[id];
  return { ...view, pending };
}

export function dismissError(view: SessionView, id: string): SessionView {
  return { ...view, errors: view.errors.map((e) => (e.id === id ? { ...e, dismissed: true } : e)) };
}

export function addClientError(view: SessionView, error: Omit<UiError, "resolved" | "dismissed">): SessionView {
  return { ...view, errors: pushError(view, { ...error, resolved: false, dismissed: false }) };
}

/** Errors worth a banner now: not resolved by later events and not dismissed by the user. */
export function activeErrors(view: Pick<SessionView, "errors">): UiError[] {
  return view.errors.filter((e) => !e.resolved && !e.dismissed);
}
