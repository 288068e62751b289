// The model's reasoning ("thinking", AG-UI REASONING_* events) in the reducer: its own text,
// placed in the agent's turn, never mixed into the answer; seq discipline as for every event.

import { describe, expect, it } from "vitest";
import { initialView, reduceAll, type SessionView } from "./reducer";
import { parseServerFrame, type ServerEvent } from "./types";
import { ReplayEngine } from "../replay/engine";
import { SESSION_ID, Script, T0, answerFor, caughtUp, custom, welcome } from "../test/script";

const NOW = T0 + 1_000_000;

function replay(events: ServerEvent[], view: SessionView = initialView(SESSION_ID)): SessionView {
  return reduceAll(view, [welcome(0), ...events, caughtUp(events.at(-1)?.seq ?? 0)], NOW);
}

const THOUGHT = "Weighing a monolith against services. A monolith is enough.";

/** The Architect thinks, then answers. */
function thinkThenAnswer(): { s: Script; reason: string; message: string } {
  const s = new Script();
  s.start("Build a todo app.", "auto");
  s.stage("analyst");
  s.beginAttempt("architect");
  const reason = s.think(THOUGHT, 9);
  const message = s.stream("architect", answerFor("architect"));
  s.finishAnswer("architect", message, false);
  return { s, reason, message };
}

describe("reducer: reasoning events", () => {
  it("parses the five REASONING_* events as themselves (not OTHER_LOGGED)", () => {
    for (const frame of [
      { type: "REASONING_START", seq: 1, messageId: "r" },
      { type: "REASONING_MESSAGE_START", seq: 2, messageId: "r", role: "reasoning" },
      { type: "REASONING_MESSAGE_CONTENT", seq: 3, messageId: "r", delta: "hmm" },
      { type: "REASONING_MESSAGE_END", seq: 4, messageId: "r" },
      { type: "REASONING_END", seq: 5, messageId: "r" },
    ]) {
      expect(parseServerFrame(JSON.stringify(frame))).toEqual(frame);
    }
  });

  it("thinking before the answer: a block of its own while it streams, then moved to the start of the answer", () => {
    const { s, reason, message } = thinkThenAnswer();
    // Mid-thought: the events up to the third reasoning piece.
    const cut = s.events.findIndex((e) => e.type === "REASONING_MESSAGE_CONTENT") + 3;
    const mid = replay(s.events.slice(0, cut));
    expect(mid.timeline.at(-1)).toEqual({ kind: "reasoning", id: reason });
    expect(mid.reasoning[reason]).toMatchObject({ agent: "Architect", stage: "architect", streaming: true, messageId: null, content: THOUGHT.slice(0, 27) });

    const end = replay(s.events);
    expect(end.lastSeq).toBe(s.lastSeq);
    expect(end.stats.gaps).toBe(0);
    // Adopted: no standalone block is left; the answer carries it at its start.
    expect(end.timeline.some((item) => item.kind === "reasoning")).toBe(false);
    expect(end.messages[message]?.reasoning).toEqual([{ id: reason, offset: 0, afterToolCalls: 0 }]);
    expect(end.reasoning[reason]).toMatchObject({ content: THOUGHT, streaming: false, messageId: message, agent: "Architect" });
    // Never part of the answer's text.
    expect(end.messages[message]?.content).toBe(answerFor("architect"));
    expect(end.messages[message]?.content).not.toContain("monolith");
  });

  it("thinking between tool rounds, interleaved with text and tool calls, keeps its place in the answer", () => {
    const s = new Script();
    s.start("Build a todo app.", "auto");
    s.beginAttempt("developer");
    const first = s.think("Plan the files.");
    const message = s.stream("developer", "Writing the app.\n\n");
    const a = s.writeFile("developer", message, "src/app.js", "console.log(1);\n");
    // The next model round thinks again, while the answer is open; text then another call follow.
    const second = s.think("The store needs its own file.", 5);
    s.say(message, "Now the store.\n");
    const b = s.writeFile("developer", message, "src/store.js", "export {};\n");
    const third = s.think("Done.", 5);
    s.finishAnswer("developer", message, false);

    const view = replay(s.events);
    const m = view.messages[message]!;
    expect(m.content).toBe("Writing the app.\n\nNow the store.\n");
    expect(m.toolCalls).toEqual([
      { id: a, offset: "Writing the app.\n\n".length },
      { id: b, offset: m.content.length },
    ]);
    expect(m.reasoning).toEqual([
      { id: first, offset: 0, afterToolCalls: 0 },
      { id: second, offset: "Writing the app.\n\n".length, afterToolCalls: 1 },
      { id: third, offset: m.content.length, afterToolCalls: 2 },
    ]);
    expect([first, second, third].map((id) => view.reasoning[id]?.content)).toEqual(["Plan the files.", "The store needs its own file.", "Done."]);
    expect(Object.values(view.reasoning).every((r) => !r.streaming && r.messageId === message)).toBe(true);
    expect(view.toolCalls[a]?.status).toBe("done");
    expect(view.toolCalls[b]?.status).toBe("done");
  });

  it("a snapshot has no reasoning: the view drops it, and a thought already under way is picked up live", () => {
    const { s, message } = thinkThenAnswer();
    s.beginAttempt("developer");
    const live = s.think("Half a thought", 4, false);
    const firstLive = s.events.findIndex((e) => e.type === "REASONING_MESSAGE_CONTENT" && "messageId" in e && e.messageId === live);
    const before = replay(s.events);
    expect(Object.keys(before.reasoning)).toHaveLength(2);

    // Joining by snapshot at the seq just after the first piece of the live thought.
    const at = s.events[firstLive]!.seq!;
    const joined = reduceAll(
      initialView(SESSION_ID),
      [
        welcome(at, "snapshot"),
        { type: "STATE_SNAPSHOT", snapshot: s.state },
        { type: "MESSAGES_SNAPSHOT", messages: [{ id: message, role: "assistant", name: "Architect", content: answerFor("architect") }] },
        caughtUp(at),
        ...s.after(at),
      ],
      NOW,
    );
    expect(joined.stats.gaps).toBe(0);
    expect(joined.lastSeq).toBe(s.lastSeq);
    expect(joined.messages[message]?.reasoning).toEqual([]);
    expect(joined.messages[message]?.content).toBe(answerFor("architect"));
    // Only the live thought, from the pieces after the snapshot, on its own (no answer yet).
    expect(Object.keys(joined.reasoning)).toEqual([live]);
    expect(joined.reasoning[live]).toMatchObject({ stage: "developer", agent: "Developer", streaming: true, content: "Half a thought".slice(4) });
    expect(joined.timeline.at(-1)).toEqual({ kind: "reasoning", id: live });

    // A MESSAGES_SNAPSHOT replaces the thread: the blocks it placed go with it.
    const replaced = reduceAll(before, [{ type: "MESSAGES_SNAPSHOT", messages: [] }], NOW);
    expect(replaced.reasoning).toEqual({});
  });

  it("a thought from an attempt that failed is not given to the retry's answer", () => {
    const s = new Script();
    s.start("Build a todo app.", "auto");
    s.beginAttempt("analyst");
    const lost = s.think("First try", 4);
    const cut = s.stream("analyst", "Half an ans");
    s.failRetryable("analyst", cut);
    s.beginAttempt("analyst");
    const kept = s.think("Second try", 4);
    const message = s.stream("analyst", answerFor("analyst"));
    s.finishAnswer("analyst", message, false);
    const view = replay(s.events);
    expect(view.messages[cut]?.reasoning.map((r) => r.id)).toEqual([lost]);
    expect(view.messages[message]?.reasoning.map((r) => r.id)).toEqual([kept]);
  });

  it("a thought cut short (an attempt that never reached its answer) stays on its own, ended; a message cut short ends its thought", () => {
    const s = new Script();
    s.start("Build a todo app.", "auto");
    s.beginAttempt("analyst");
    const alone = s.think("Thinking and then", 4);
    s.failRun("analyst");
    let view = replay(s.events);
    expect(view.timeline.find((i) => i.kind === "reasoning")).toEqual({ kind: "reasoning", id: alone });
    expect(view.reasoning[alone]?.streaming).toBe(false);

    // A message interrupted while its reasoning was still open (defensive: the server ends it first).
    const t = new Script();
    t.start("b", "auto");
    t.beginAttempt("analyst");
    const m = t.stream("analyst", "Text");
    const open = t.think("unfinished", 4, false);
    view = replay([...t.events, custom("message_interrupted", { messageId: m, stage: "analyst", reason: "cancelled" }, t.lastSeq + 1)]);
    expect(view.reasoning[open]).toMatchObject({ streaming: false, messageId: m });
    expect(view.messages[m]?.interrupted).toBe("cancelled");
  });

  it("the replay shows the thought streaming at its position, and at the end attached to the answer", () => {
    const { s, reason, message } = thinkThenAnswer();
    s.complete();
    const engine = new ReplayEngine(s.events, SESSION_ID);
    const mid = engine.viewAt(s.events.findIndex((e) => e.type === "REASONING_MESSAGE_CONTENT") + 2);
    expect(mid.reasoning[reason]?.streaming).toBe(true);
    expect(mid.timeline.at(-1)).toEqual({ kind: "reasoning", id: reason });
    const end = engine.viewAt(engine.length);
    expect(end.reasoning[reason]).toMatchObject({ content: THOUGHT, streaming: false, messageId: message });
    expect(end.messages[message]?.content).toBe(answerFor("architect"));
  });
});
