// Wire types for the BotArmy protocol v1 (docs/protocol.md). Server → client frames are AG-UI
// events; logged ones carry `seq`, connection frames (welcome, ack, rejected, …) do not.
// Client → server frames are commands.
//
// The CUSTOM event values, connection frames, code sets and the stage list are generated from
// the Rust wire types (src/protocol/wire.rs) into ./generated/ by `cargo test`; do not copy
// them here. What stays here is the AG-UI envelope, the state and the commands.

import { STAGES, type ConnectionCustom, type LoggedCustom, type Stage } from "./generated";

export { STAGES, STAGE_LABEL, FAILURE_CODES, REJECTION_CODES, RETRYABLE_FAILURE_CODES } from "./generated";
export type {
  AckValue,
  AgentErrorValue,
  AgentQueuedValue,
  ArtifactValue,
  CaughtUpValue,
  ConnectionCustom,
  FailureCode,
  FlowValue,
  InterruptReason,
  LoggedCustom,
  MessageInterruptedValue,
  PongValue,
  QueueReason,
  RejectedValue,
  RejectionCode,
  SnapshotReason,
  Stage,
  WarningCode,
  WarningValue,
  WelcomeMode,
  WelcomeValue,
} from "./generated";

export function isStage(value: unknown): value is Stage {
  return typeof value === "string" && (STAGES as readonly string[]).includes(value);
}

/** The stage an agent's display name belongs to ("Analyst" → "analyst"), if any. */
export function stageOfName(name: string | undefined): Stage | undefined {
  if (!name) return undefined;
  const lower = name.toLowerCase();
  return isStage(lower) ? lower : undefined;
}

export const LIMITS = {
  briefChars: 8000,
  feedbackChars: 4000,
  attemptsPerStage: 4,
} as const;

// ---------------------------------------------------------------------------------------------
// State (STATE_SNAPSHOT / STATE_DELTA)

export type RunStatus =
  | "idle"
  | "running"
  | "paused"
  | "waiting_approval"
  | "completed"
  | "failed"
  | "cancelled";

export type AgentStatus =
  | "idle"
  | "queued"
  | "thinking"
  | "streaming"
  | "waiting_approval"
  | "retrying"
  | "done"
  | "failed"
  | "cancelled";

export type ApprovalMode = "each_stage" | "auto";

export interface ErrorInfo {
  code: string;
  message: string;
}

export interface RunState {
  status: RunStatus;
  approval: ApprovalMode | null;
  stage: Stage | null;
  runId: string | null;
  pauseRequested: boolean;
  tokensUsed: number;
  tokenBudget: number;
  startedAt: number | null;
  finishedAt: number | null;
  error: ErrorInfo | null;
  /**
   * What the session has spent, in micro-dollars (1 USD = 1,000,000), at the price table's
   * prices. Absent in states from before models had prices (read through `runCost()`).
   */
  costMicroUsd?: number;
  /** False once a model without a known price answered (its calls count as 0). */
  priceKnown?: boolean;
  /** The session's dollar budget (`SESSION_BUDGET_USD`) in micro-dollars; null: no budget. */
  budgetMicroUsd?: number | null;
}

export interface AgentState {
  status: AgentStatus;
  progress: number;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  startedAt: number | null;
  finishedAt: number | null;
  nextRetryAt: number | null;
  lastError: ErrorInfo | null;
  version: number;
  /** The current or last attempt was answered from the server's answer cache (no tokens spent). */
  cached: boolean;
  /** The agent's model for this run, `provider:model`; null in demo mode (absent in old states). */
  model?: string | null;
  /** What this agent's calls of the current run cost, in micro-dollars (absent in old states). */
  costMicroUsd?: number;
  /** False once a model without a known price answered for this agent (counted as 0). */
  priceKnown?: boolean;
}

export interface Gate {
  id: string;
  stage: Stage;
  version: number;
}

/** One file of the current project, as `state.files` has it (docs/protocol.md, "Project files"). */
export interface FileInfo {
  bytes: number;
  version: number;
  stage: Stage;
}

export interface SessionState {
  sessionId: string;
  demo: boolean;
  model: string;
  run: RunState;
  gate: Gate | null;
  agents: Record<Stage, AgentState>;
  /**
   * The current project: file path → its latest version. Absent in states from before project
   * files existed (old sessions, old fixtures): read it through `projectFiles()`.
   */
  files?: Record<string, FileInfo>;
}

const NO_FILES: Readonly<Record<string, FileInfo>> = Object.freeze({});

/** `state.files`, or an empty project when the state has none (an old session). */
export function projectFiles(state: SessionState | null | undefined): Readonly<Record<string, FileInfo>> {
  const files = state?.files;
  return files && typeof files === "object" ? files : NO_FILES;
}

// ---------------------------------------------------------------------------------------------
// JSON Patch (RFC 6902) as sent in STATE_DELTA

export type PatchOp =
  | { op: "add"; path: string; value: unknown }
  | { op: "replace"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "test"; path: string; value: unknown }
  | { op: "move"; from: string; path: string }
  | { op: "copy"; from: string; path: string };

// ---------------------------------------------------------------------------------------------
// Server → client events

interface EventBase {
  /** Present on logged events: 1, 2, 3, … per session. Absent on connection frames. */
  seq?: number;
  timestamp?: number;
}

export interface RunStartedEvent extends EventBase {
  type: "RUN_STARTED";
  threadId: string;
  runId: string;
}

export interface Interrupt {
  id: string;
  reason: string;
  message?: string;
}

export type RunOutcome =
  | { type: "success" }
  | { type: "interrupt"; interrupts: Interrupt[] }
  | { type: "cancelled" };

/** AG-UI 1.0 `TokenUsage`: what a run spent on one model. */
export interface TokenUsage {
  model?: string;
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
}

export interface RunFinishedEvent extends EventBase {
  type: "RUN_FINISHED";
  threadId: string;
  runId: string;
  outcome?: RunOutcome;
  usage?: TokenUsage[];
}

export interface RunErrorEvent extends EventBase {
  type: "RUN_ERROR";
  message: string;
  code?: string;
  usage?: TokenUsage[];
}

export interface StateSnapshotEvent extends EventBase {
  type: "STATE_SNAPSHOT";
  snapshot: SessionState;
}

export interface StateDeltaEvent extends EventBase {
  type: "STATE_DELTA";
  delta: PatchOp[];
}

export type MessageRole = "user" | "assistant" | "system" | "developer";

export interface TextMessageStartEvent extends EventBase {
  type: "TEXT_MESSAGE_START";
  messageId: string;
  role?: MessageRole;
  name?: string;
}

export interface TextMessageContentEvent extends EventBase {
  type: "TEXT_MESSAGE_CONTENT";
  messageId: string;
  delta: string;
}

export interface TextMessageEndEvent extends EventBase {
  type: "TEXT_MESSAGE_END";
  messageId: string;
}

export interface StepStartedEvent extends EventBase {
  type: "STEP_STARTED";
  stepName: string;
}

export interface StepFinishedEvent extends EventBase {
  type: "STEP_FINISHED";
  stepName: string;
}

/** AG-UI `ToolCall` inside an assistant message of a MESSAGES_SNAPSHOT. */
export interface WireToolCall {
  id: string;
  type?: "function";
  function: { name: string; arguments: string };
}

export interface WireMessage {
  id: string;
  role: string;
  name?: string;
  content?: unknown;
  /** An assistant message's tool calls (AG-UI). */
  toolCalls?: WireToolCall[];
  /** A `role: "tool"` message: the call it answers (AG-UI). */
  toolCallId?: string;
}

// Tool calls (AG-UI): an agent writes, reads, lists or deletes the project's files ----------------

/** The tools the agents have (docs/protocol.md); a name outside these is shown generically. */
export type ToolName = "write_file" | "read_file" | "list_files" | "delete_file";

export interface ToolCallStartEvent extends EventBase {
  type: "TOOL_CALL_START";
  toolCallId: string;
  toolCallName: string;
  /** The agent's answer message the call belongs to (its TEXT_MESSAGE_START came first). */
  parentMessageId?: string;
}

export interface ToolCallArgsEvent extends EventBase {
  type: "TOOL_CALL_ARGS";
  toolCallId: string;
  /** More of the arguments' JSON text; the concatenation is the whole JSON (cut anywhere). */
  delta: string;
}

export interface ToolCallEndEvent extends EventBase {
  type: "TOOL_CALL_END";
  toolCallId: string;
}

export interface ToolCallResultEvent extends EventBase {
  type: "TOOL_CALL_RESULT";
  messageId: string;
  toolCallId: string;
  /** What the tool answered; starting with `Error: ` means the call failed and changed nothing. */
  content: string;
  role?: "tool";
}

// Reasoning (AG-UI): the model's "thinking" before (or between) its answer's text and tool calls.
// Never part of the answer or the artifact; not kept in MESSAGES_SNAPSHOT.

export interface ReasoningStartEvent extends EventBase {
  type: "REASONING_START";
  messageId: string;
}

export interface ReasoningMessageStartEvent extends EventBase {
  type: "REASONING_MESSAGE_START";
  messageId: string;
  role?: "reasoning";
}

export interface ReasoningMessageContentEvent extends EventBase {
  type: "REASONING_MESSAGE_CONTENT";
  messageId: string;
  delta: string;
}

export interface ReasoningMessageEndEvent extends EventBase {
  type: "REASONING_MESSAGE_END";
  messageId: string;
}

export interface ReasoningEndEvent extends EventBase {
  type: "REASONING_END";
  messageId: string;
}

/**
 * A logged event of a type this page does not know (a newer AG-UI event, e.g. ACTIVITY_SNAPSHOT):
 * nothing is shown for it, but its seq counts, so the log stays gapless for the reducer.
 */
export interface OtherLoggedEvent extends EventBase {
  type: "OTHER_LOGGED";
  seq: number;
  /** The event's own `type`. */
  originalType: string;
}

export interface MessagesSnapshotEvent extends EventBase {
  type: "MESSAGES_SNAPSHOT";
  messages: WireMessage[];
}

// CUSTOM events -------------------------------------------------------------------------------

type ValuesByName<U extends { name: string; value: unknown }> = {
  [K in U["name"]]: Extract<U, { name: K }>["value"];
};

/** Logged custom events (`artifact`, `agent_error`, …) and connection frames (`welcome`, …) by name. */
export type CustomValueMap = ValuesByName<LoggedCustom | ConnectionCustom>;

export type CustomName = keyof CustomValueMap;

export type KnownCustomEvent = {
  [K in CustomName]: EventBase & { type: "CUSTOM"; name: K; value: CustomValueMap[K] };
}[CustomName];

export interface UnknownCustomEvent extends EventBase {
  type: "CUSTOM";
  name: string;
  value: unknown;
}

export type CustomEvent = KnownCustomEvent | UnknownCustomEvent;

export type ServerEvent =
  | RunStartedEvent
  | RunFinishedEvent
  | RunErrorEvent
  | StateSnapshotEvent
  | StateDeltaEvent
  | TextMessageStartEvent
  | TextMessageContentEvent
  | TextMessageEndEvent
  | StepStartedEvent
  | StepFinishedEvent
  | ToolCallStartEvent
  | ToolCallArgsEvent
  | ToolCallEndEvent
  | ToolCallResultEvent
  | ReasoningStartEvent
  | ReasoningMessageStartEvent
  | ReasoningMessageContentEvent
  | ReasoningMessageEndEvent
  | ReasoningEndEvent
  | MessagesSnapshotEvent
  | OtherLoggedEvent
  | CustomEvent;

export type ServerEventType = ServerEvent["type"];

const EVENT_TYPES: ReadonlySet<string> = new Set<ServerEventType>([
  "RUN_STARTED",
  "RUN_FINISHED",
  "RUN_ERROR",
  "STATE_SNAPSHOT",
  "STATE_DELTA",
  "TEXT_MESSAGE_START",
  "TEXT_MESSAGE_CONTENT",
  "TEXT_MESSAGE_END",
  "STEP_STARTED",
  "STEP_FINISHED",
  "TOOL_CALL_START",
  "TOOL_CALL_ARGS",
  "TOOL_CALL_END",
  "TOOL_CALL_RESULT",
  "REASONING_START",
  "REASONING_MESSAGE_START",
  "REASONING_MESSAGE_CONTENT",
  "REASONING_MESSAGE_END",
  "REASONING_END",
  "MESSAGES_SNAPSHOT",
  "CUSTOM",
]);

/**
 * Parses one text frame. Returns null for frames that are not events this client understands
 * (the runtime's plain-text `pong`, malformed JSON, unknown connection frames); those are ignored
 * rather than breaking the view. A logged event of an unknown type (a future AG-UI addition) comes
 * back as OTHER_LOGGED, so its seq still counts.
 */
export function parseServerFrame(data: unknown): ServerEvent | null {
  if (typeof data !== "string") return null;
  if (data === "pong" || data === "ping") return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string") return null;
  const seq = (value as { seq?: unknown }).seq;
  if (seq !== undefined && (typeof seq !== "number" || !Number.isInteger(seq))) return null;
  if (!EVENT_TYPES.has(type) || type === "OTHER_LOGGED") {
    // Unknown, but logged: keep its place in the seq order (dropping it would read as a gap).
    if (typeof seq !== "number") return null;
    const timestamp = (value as { timestamp?: unknown }).timestamp;
    return { type: "OTHER_LOGGED", seq, originalType: type, ...(typeof timestamp === "number" ? { timestamp } : {}) };
  }
  return value as ServerEvent;
}

/** Narrowing helper for CUSTOM events with a known name. */
export function isCustom<K extends CustomName>(
  event: ServerEvent,
  name: K,
): event is EventBase & { type: "CUSTOM"; name: K; value: CustomValueMap[K] } {
  return event.type === "CUSTOM" && event.name === name;
}

// ---------------------------------------------------------------------------------------------
// Client → server commands

/** `start.models`: a `provider:model` id per stage, each one that stage offers (`GET /api/models`). */
export type ModelChoices = Partial<Record<Stage, string>>;

export type Command =
  | { type: "hello"; lastSeq: number; epoch?: number }
  | { type: "start"; id?: string; brief: string; approval: ApprovalMode; models?: ModelChoices }
  | { type: "approve"; id?: string; stage: Stage }
  | { type: "reject"; id?: string; stage: Stage; feedback: string }
  | { type: "pause"; id?: string }
  | { type: "resume"; id?: string }
  | { type: "cancel"; id?: string }
  | { type: "retry"; id?: string; stage: Stage }
  | { type: "rerun"; id?: string; stage: Stage; feedback?: string }
  | { type: "ping"; id?: string }
  | { type: "ack"; seq: number };

export type CommandType = Command["type"];

/** Commands that the user issues (everything but hello/ping/ack) and that get an ack or rejected. */
export type UserCommand = Exclude<Command, { type: "hello" } | { type: "ping" } | { type: "ack" }>;

// ---------------------------------------------------------------------------------------------
// HTTP

export interface ArtifactVersionInfo {
  version: number;
  chars: number;
  createdAt: number;
  feedback: string | null;
}

export interface ArtifactList {
  stage: Stage;
  versions: ArtifactVersionInfo[];
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** One kept version of a project file (`GET /api/sessions/{key}/files`). */
export interface ProjectFileVersion {
  version: number;
  stage: Stage;
  bytes: number;
  /** A delete: this version has no content. */
  deleted: boolean;
}

export interface ProjectFile {
  path: string;
  bytes: number;
  version: number;
  stage: Stage;
  attempt: number;
  /** The file's kept history, oldest first. */
  versions: ProjectFileVersion[];
}

export interface ProjectFileList {
  files: ProjectFile[];
  bytes: number;
  limits?: { files?: number; fileBytes?: number; workspaceBytes?: number; toolRounds?: number };
}

// Models and prices (`GET /api/models`) --------------------------------------------------------

/** Prices in micro-dollars per million tokens. */
export interface ModelPrice {
  input: number;
  output: number;
  cachedInput: number;
}

export interface OfferedModel {
  /** `provider:model`, what `start.models` names. */
  id: string;
  provider: string;
  model: string;
  /** Null when the price table does not know the model. */
  price: ModelPrice | null;
}

export interface StageModels {
  stage: Stage;
  /** The id used unless the user picks another. */
  default: string;
  /** Default first. */
  offered: OfferedModel[];
}

export interface ModelCatalog {
  demo: boolean;
  providers: string[];
  /** One entry per stage, in pipeline order; empty in demo mode. */
  stages: StageModels[];
  /** The session's dollar budget in micro-dollars; null: no budget. */
  budgetMicroUsd: number | null;
}
