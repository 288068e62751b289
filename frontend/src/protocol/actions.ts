// Which commands fit the session right now (docs/protocol.md, "valid when"). Buttons are enabled
// from this, so the user never meets an `invalid_state` rejection in normal use.

import { STAGES, type SessionState, type Stage } from "./types";

// One array per length, so the same answer is the same object (useShallow compares by identity).
const NO_STAGES: readonly Stage[] = [];
const FIRST_STAGES: readonly (readonly Stage[])[] = STAGES.map((_, i) => STAGES.slice(0, i + 1));

export interface Availability {
  start: boolean;
  /** The stage whose gate is open, if any (approve / reject). */
  gate: Stage | null;
  pause: boolean;
  resume: boolean;
  cancel: boolean;
  /** The stage a failed run stopped at (retry), if any. */
  retry: Stage | null;
  /** Stages a run that ended can be rerun from: every stage before one has its result. */
  rerun: readonly Stage[];
}

export const NOTHING: Availability = {
  start: false,
  gate: null,
  pause: false,
  resume: false,
  cancel: false,
  retry: null,
  rerun: NO_STAGES,
};

export function failedStageOf(state: SessionState): Stage | null {
  if (state.run.status !== "failed") return null;
  if (state.run.stage) return state.run.stage;
  return STAGES.find((s) => state.agents[s]?.status === "failed") ?? null;
}

/**
 * The session's dollar budget is spent: no stage will start again (start, retry and rerun are
 * refused `budget_exhausted`). False without a budget, and for old states without costs.
 */
export function budgetSpent(state: SessionState | null): boolean {
  const budget = state?.run.budgetMicroUsd;
  return typeof budget === "number" && (state?.run.costMicroUsd ?? 0) >= budget;
}

/** `live`: the socket is open and the view has caught up; nothing is possible otherwise. */
export function availableActions(state: SessionState | null, live: boolean): Availability {
  if (!state || !live) return NOTHING;
  const status = state.run.status;
  const gate = state.gate?.stage ?? null;
  const spent = budgetSpent(state);
  return {
    start: !spent && (status === "idle" || status === "completed" || status === "failed" || status === "cancelled"),
    gate,
    pause: status === "running" && !state.run.pauseRequested,
    // Resume also takes back a pause that was requested but has not happened yet.
    resume: status === "paused" || (status === "running" && state.run.pauseRequested),
    cancel: status === "running" || status === "paused" || status === "waiting_approval",
    retry: spent ? null : failedStageOf(state),
    rerun: spent ? NO_STAGES : rerunStages(state),
  };
}

/** After a run ended: the stages whose every predecessor is done (the server checks too). */
export function rerunStages(state: SessionState): readonly Stage[] {
  const status = state.run.status;
  if (status !== "completed" && status !== "failed" && status !== "cancelled") return NO_STAGES;
  const done = STAGES.findIndex((s) => state.agents[s]?.status !== "done");
  return FIRST_STAGES[done === -1 ? STAGES.length - 1 : done] ?? NO_STAGES;
}

/** The stage being worked on or waited on, for highlighting its card. */
export function activeStage(state: SessionState | null): Stage | null {
  if (!state) return null;
  if (state.gate) return state.gate.stage;
  const status = state.run.status;
  if (status === "idle" || status === "completed" || status === "cancelled") return null;
  return state.run.stage;
}

/** Progress in percent (the server sends an integer 0–100), clamped; a finished stage shows 100. */
export function progressPercent(progress: number, status: string): number {
  if (status === "done" || status === "waiting_approval") return 100;
  if (!Number.isFinite(progress) || progress <= 0) return 0;
  return Math.max(0, Math.min(100, Math.round(progress)));
}
