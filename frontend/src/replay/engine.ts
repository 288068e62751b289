// The replay engine: a finished session's logged events played back through the same reducer as
// the live page, into a view of its own. Pure apart from the caller's clock: position n means
// "the first n events applied" (0 … events.length). Going back recomputes from the nearest
// checkpoint before n, so scrubbing back gives exactly what a fresh reduce from seq 1 gives.

import { initialView, reduce, type SessionView } from "../protocol/reducer";
import { STAGE_LABEL, stageOfName, type ServerEvent, type Stage } from "../protocol/types";

export type ReplaySpeed = 1 | 10 | "instant";

/** A gap longer than this (a session left overnight) plays as this long at 1×. */
export const MAX_GAP_MS = 2000;
/** Every this many events a view is kept, so a jump reduces at most this many events. */
export const CHECKPOINT_EVERY = 200;

export interface ReplayMark {
  /** Position just before the marked event: jumping there shows the moment it starts. */
  index: number;
  kind: "run" | "stage";
  label: string;
  /** For a stage mark: which stage, and which start of it this is in the session (1, 2, …). */
  stage?: Stage;
  version?: number;
}

/** The view a replay starts from: read-only (nothing in it may send a command) and "live". */
export function replayBaseView(sessionKey: string): SessionView {
  return { ...initialView(sessionKey), readOnly: true, sync: "live" };
}

export class ReplayEngine {
  readonly events: readonly ServerEvent[];
  private readonly checkpoints: SessionView[];

  constructor(events: readonly ServerEvent[], sessionKey: string) {
    this.events = events;
    this.checkpoints = [replayBaseView(sessionKey)];
  }

  get length(): number {
    return this.events.length;
  }

  /** The view after the first `n` events (clamped to 0 … length). */
  viewAt(n: number): SessionView {
    const target = Math.max(0, Math.min(this.events.length, Math.floor(n)));
    // Fill checkpoints up to the one at or before target, then reduce the rest.
    const wanted = Math.floor(target / CHECKPOINT_EVERY);
    while (this.checkpoints.length <= wanted) {
      const k = this.checkpoints.length;
      const from = this.checkpoints[k - 1]!;
      this.checkpoints.push(this.apply(from, (k - 1) * CHECKPOINT_EVERY, k * CHECKPOINT_EVERY));
    }
    return this.apply(this.checkpoints[wanted]!, wanted * CHECKPOINT_EVERY, target);
  }

  /** The view after event `to` - 1, starting from `view` (the view after `from` events). */
  private apply(view: SessionView, from: number, to: number): SessionView {
    let next = view;
    for (let i = from; i < to; i++) {
      const event = this.events[i]!;
      // The reducer's clock is the event's own time, so notices carry the time they happened.
      next = reduce(next, event, event.timestamp ?? 0);
    }
    return next;
  }

  /** Milliseconds to wait before applying the event at position `n`, at `speed`. */
  delayBefore(n: number, speed: ReplaySpeed): number {
    return delayBetween(this.events[n - 1], this.events[n], speed);
  }
}

export function delayBetween(prev: ServerEvent | undefined, next: ServerEvent | undefined, speed: ReplaySpeed): number {
  if (speed === "instant" || !prev || !next) return 0;
  const gap = (next.timestamp ?? 0) - (prev.timestamp ?? 0);
  if (!Number.isFinite(gap) || gap <= 0) return 0;
  return Math.min(gap, MAX_GAP_MS) / speed;
}

/**
 * Where each pipeline and each stage attempt starts, for the scrubber's marks. A pipeline is what
 * a person started: the AG-UI runs that continue it after a gate are not marked again. A stage's
 * mark says which time it started ("Architect v2"), and why when the person asked for changes.
 */
export function replayMarks(events: readonly ServerEvent[]): ReplayMark[] {
  const marks: ReplayMark[] = [];
  let pipelines = 0;
  let continues = false; // the last run ended at a gate: the next one goes on with the same pipeline
  const starts = new Map<Stage, number>();
  let startedHere = new Set<Stage>();
  const feedback = new Set<Stage>();
  events.forEach((event, index) => {
    if (event.type === "RUN_STARTED") {
      if (!continues) {
        pipelines += 1;
        startedHere = new Set();
        feedback.clear();
        marks.push({ index, kind: "run", label: pipelines === 1 ? "Start" : `Run ${pipelines}` });
      }
    } else if (event.type === "RUN_FINISHED") {
      continues = event.outcome?.type === "interrupt";
    } else if (event.type === "RUN_ERROR") {
      continues = false;
    } else if (event.type === "TEXT_MESSAGE_START" && event.role === "user") {
      // Words from the person after a stage ran in this pipeline: its next start follows them.
      for (const stage of startedHere) feedback.add(stage);
    } else if (event.type === "STEP_STARTED") {
      const stage = stageOfName(event.stepName);
      if (!stage) return;
      const version = (starts.get(stage) ?? 0) + 1;
      starts.set(stage, version);
      const why = version > 1 && feedback.has(stage) ? " — after your feedback" : "";
      feedback.delete(stage);
      startedHere.add(stage);
      marks.push({ index, kind: "stage", label: `${STAGE_LABEL[stage]} v${version}${why}`, stage, version });
    }
  });
  return marks;
}

/**
 * Playback: from `position`, with `budgetMs` of real time to spend, apply every event whose
 * (capped, speed-scaled) wait fits. Returns the new position and the time left over, which the
 * next tick adds to its own (so a 16 ms tick plays ten 1.6 ms gaps at once at 10×).
 */
export function advance(
  engine: Pick<ReplayEngine, "length" | "delayBefore">,
  position: number,
  budgetMs: number,
  speed: ReplaySpeed,
): { position: number; leftover: number } {
  if (speed === "instant") return { position: engine.length, leftover: 0 };
  let n = position;
  let left = budgetMs;
  while (n < engine.length) {
    const wait = engine.delayBefore(n, speed);
    if (wait > left) break;
    left -= wait;
    n += 1;
  }
  return { position: n, leftover: n >= engine.length ? 0 : left };
}
