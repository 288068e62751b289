import { describe, expect, it } from "vitest";
import { reduce } from "../protocol/reducer";
import { STAGES, STAGE_LABEL } from "../protocol/types";
import { SESSION_ID, Script, fullEachStageRun } from "../test/script";
import { CHECKPOINT_EVERY, MAX_GAP_MS, ReplayEngine, advance, delayBetween, replayBaseView, replayMarks } from "./engine";

/** A fresh reduce of the first n events, one at a time: what every position must equal. */
function freshView(events: Script["events"], n: number) {
  let view = replayBaseView(SESSION_ID);
  for (const event of events.slice(0, n)) view = reduce(view, event, event.timestamp ?? 0);
  return view;
}

describe("replay engine", () => {
  const run = fullEachStageRun();
  run.complete();
  const events = run.events;

  it("position 0 is empty and read-only; the end is the finished run", () => {
    const engine = new ReplayEngine(events, SESSION_ID);
    const start = engine.viewAt(0);
    expect(start.readOnly).toBe(true);
    expect(start.state).toBeNull();
    const end = engine.viewAt(engine.length);
    expect(end.lastSeq).toBe(events.length);
    expect(end.state?.run.status).toBe("completed");
    expect(end.state?.agents.deployer.version).toBe(1);
    expect(engine.viewAt(engine.length + 50)).toEqual(end);
  });

  it("the middle shows an earlier state: a later stage not yet done", () => {
    const engine = new ReplayEngine(events, SESSION_ID);
    const architect = replayMarks(events).find((m) => m.stage === "architect")!;
    const mid = engine.viewAt(architect.index + 1);
    expect(mid.state?.agents.analyst.version).toBe(1);
    expect(mid.state?.agents.architect.status).not.toBe("done");
    expect(mid.state?.agents.deployer.version).toBe(0);
  });

  it("scrubbing back (across checkpoints) equals a fresh reduce from the start", () => {
    // Long enough to cross several checkpoints.
    const long = new Script();
    long.start("brief", "auto");
    for (let i = 0; i < 3; i++) long.stage("analyst", "x".repeat(3000));
    expect(long.events.length).toBeGreaterThan(CHECKPOINT_EVERY * 2);
    const engine = new ReplayEngine(long.events, SESSION_ID);
    engine.viewAt(long.events.length);
    for (const n of [long.events.length - 1, CHECKPOINT_EVERY * 2 + 3, CHECKPOINT_EVERY, 17, 0]) {
      expect(engine.viewAt(n)).toEqual(freshView(long.events, n));
    }
  });

  it("labels a rerun after feedback by its version and why, and a new pipeline as a run of its own", () => {
    const s = new Script();
    s.start("brief");
    s.stage("analyst");
    s.reject("analyst", "more detail");
    s.stage("analyst");
    const marks = replayMarks(s.events);
    expect(marks.filter((m) => m.kind === "stage").map((m) => m.label)).toEqual(["Analyst v1", "Analyst v2 — after your feedback"]);
    expect(marks.filter((m) => m.kind === "run").map((m) => m.label)).toEqual(["Start"]);
  });

  it("marks every run start and stage start", () => {
    const two = fullEachStageRun();
    two.complete();
    const marks = replayMarks(two.events);
    expect(marks.filter((m) => m.kind === "run").length).toBeGreaterThanOrEqual(1);
    expect(marks.filter((m) => m.kind === "stage").map((m) => m.label)).toEqual(STAGES.map((st) => `${STAGE_LABEL[st]} v1`));
    // One pipeline, however many gates: one run mark.
    expect(marks.filter((m) => m.kind === "run").map((m) => m.label)).toEqual(["Start"]);
    for (const mark of marks) expect(["RUN_STARTED", "STEP_STARTED"]).toContain(two.events[mark.index]!.type);
  });

  it("waits the events' own gaps at 1×, a tenth at 10×, nothing when instant, capped for long gaps", () => {
    const a = { type: "STEP_STARTED", stepName: "analyst", seq: 1, timestamp: 1000 } as const;
    const b = { ...a, seq: 2, timestamp: 1500 };
    const late = { ...a, seq: 3, timestamp: 1500 + 8 * 3600_000 };
    expect(delayBetween(a, b, 1)).toBe(500);
    expect(delayBetween(a, b, 10)).toBe(50);
    expect(delayBetween(a, b, "instant")).toBe(0);
    expect(delayBetween(b, late, 1)).toBe(MAX_GAP_MS);
    expect(delayBetween(b, a, 1)).toBe(0);
    expect(delayBetween(undefined, a, 1)).toBe(0);
  });

  it("advance spends the time budget on the gaps and carries the rest", () => {
    const engine = new ReplayEngine(events, SESSION_ID); // Script spaces events 10 ms apart.
    expect(advance(engine, 0, 0, 1).position).toBe(1); // The first event has no wait.
    const step = advance(engine, 1, 25, 1);
    expect(step).toEqual({ position: 3, leftover: 5 });
    expect(advance(engine, 1, 25, 10).position).toBe(26);
    expect(advance(engine, 5, 0, "instant").position).toBe(engine.length);
  });
});
