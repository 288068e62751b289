import { describe, expect, it } from "vitest";
import { activeStage, availableActions, progressPercent } from "./actions";
import { idleState } from "../test/script";
import { STAGES, type RunStatus, type SessionState } from "./types";

function withRun(status: RunStatus, extra: Partial<SessionState["run"]> = {}, gate: SessionState["gate"] = null): SessionState {
  const s = idleState();
  return { ...s, run: { ...s.run, status, ...extra }, gate };
}

describe("availableActions", () => {
  it("enables exactly the commands the protocol allows in each run status", () => {
    const table: Array<[RunStatus, { start: boolean; pause: boolean; resume: boolean; cancel: boolean }]> = [
      ["idle", { start: true, pause: false, resume: false, cancel: false }],
      ["running", { start: false, pause: true, resume: false, cancel: true }],
      ["paused", { start: false, pause: false, resume: true, cancel: true }],
      ["waiting_approval", { start: false, pause: false, resume: false, cancel: true }],
      ["completed", { start: true, pause: false, resume: false, cancel: false }],
      ["failed", { start: true, pause: false, resume: false, cancel: false }],
      ["cancelled", { start: true, pause: false, resume: false, cancel: false }],
    ];
    for (const [status, expected] of table) {
      expect({ status, ...availableActions(withRun(status, { stage: "tester" }), true) }).toMatchObject({ status, ...expected });
    }
  });

  it("does not offer Pause twice while a pause is requested, and offers Resume to take it back", () => {
    const actions = availableActions(withRun("running", { pauseRequested: true }), true);
    expect(actions.pause).toBe(false);
    expect(actions.resume).toBe(true);
  });

  it("offers approve/reject only for the open gate and retry only after a failure", () => {
    const gate = { id: "gate-architect-2", stage: "architect" as const, version: 2 };
    expect(availableActions(withRun("waiting_approval", { stage: "architect" }, gate), true).gate).toBe("architect");
    expect(availableActions(withRun("failed", { stage: "developer" }), true).retry).toBe("developer");
    expect(availableActions(withRun("running", { stage: "developer" }), true).retry).toBeNull();
  });

  it("offers a rerun after a run ended, from any stage whose predecessors are all done", () => {
    const ended = (status: RunStatus, done: number): SessionState => {
      const s = withRun(status);
      const agents = { ...s.agents };
      STAGES.forEach((st, i) => {
        agents[st] = { ...agents[st], status: i < done ? "done" : i === done ? "failed" : "idle" };
      });
      return { ...s, agents };
    };
    expect(availableActions(ended("completed", 5), true).rerun).toEqual([...STAGES]);
    expect(availableActions(ended("failed", 2), true).rerun).toEqual(["analyst", "architect", "developer"]);
    expect(availableActions(ended("cancelled", 0), true).rerun).toEqual(["analyst"]);
    expect(availableActions(ended("running", 2), true).rerun).toEqual([]);
    expect(availableActions(ended("waiting_approval", 2), true).rerun).toEqual([]);
    // The same answer is the same array: the UI's shallow comparison must not see a change.
    expect(availableActions(ended("failed", 2), true).rerun).toBe(availableActions(ended("failed", 2), true).rerun);
    expect(availableActions(ended("running", 2), true).rerun).toBe(availableActions(null, true).rerun);
  });

  it("allows nothing while not live or without state", () => {
    expect(availableActions(withRun("idle"), false)).toMatchObject({ start: false, cancel: false, gate: null, retry: null });
    expect(availableActions(null, true).start).toBe(false);
  });
});

describe("activeStage / progressPercent", () => {
  it("highlights the gate's stage, else the running stage, none when finished", () => {
    const gate = { id: "g", stage: "analyst" as const, version: 1 };
    expect(activeStage(withRun("waiting_approval", { stage: "analyst" }, gate))).toBe("analyst");
    expect(activeStage(withRun("running", { stage: "tester" }))).toBe("tester");
    expect(activeStage(withRun("failed", { stage: "tester" }))).toBe("tester");
    expect(activeStage(withRun("completed", { stage: "deployer" }))).toBeNull();
  });

  it("reads integer percents and clamps", () => {
    expect(progressPercent(0, "thinking")).toBe(0);
    expect(progressPercent(1, "streaming")).toBe(1);
    expect(progressPercent(45, "streaming")).toBe(45);
    expect(progressPercent(250, "streaming")).toBe(100);
    expect(progressPercent(30, "done")).toBe(100);
  });
});
