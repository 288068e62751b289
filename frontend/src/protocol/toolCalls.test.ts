// @vitest-environment node
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { initialView, reduce, reduceAll, type SessionView } from "./reducer";
import { formatBytes, parseToolArgs, toolArgsOf, toolError, utf8Bytes } from "./toolCalls";
import { parseServerFrame, projectFiles, type ServerEvent } from "./types";
import { ReplayEngine } from "../replay/engine";
import { SESSION_ID, Script, T0, caughtUp, idleState, welcome } from "../test/script";

const NOW = T0 + 1_000_000;

function replay(events: ServerEvent[], view: SessionView = initialView(SESSION_ID)): SessionView {
  return reduceAll(view, [welcome(0), ...events, caughtUp(events.at(-1)?.seq ?? 0)], NOW);
}

const APP_JS = 'export function add(a, b) {\n  return a + b; // "sum" \\ done\n}\n\tconst é = "ü€😀";\n';

describe("partial tool arguments", () => {
  const full = JSON.stringify({ path: "src/app.js", content: APP_JS });

  it("reads the path and the growing content at every cut, and never throws", () => {
    let lastPath = "";
    let lastContent = "";
    let pathCompleteAt = -1;
    for (let i = 0; i <= full.length; i++) {
      const args = parseToolArgs(full.slice(0, i));
      if (args.path !== null) {
        expect("src/app.js".startsWith(args.path), `path at ${i}: ${args.path}`).toBe(true);
        expect(args.path.length).toBeGreaterThanOrEqual(lastPath.length);
        lastPath = args.path;
      }
      if (args.pathComplete && pathCompleteAt < 0) pathCompleteAt = i;
      if (args.pathComplete) expect(args.path).toBe("src/app.js");
      if (args.content !== null) {
        // The content so far is a prefix of the whole content (trailing blanks may wait for the
        // next piece), and it never shrinks by more than such blanks.
        expect(APP_JS.startsWith(args.content), `content at ${i}: ${JSON.stringify(args.content)}`).toBe(true);
        expect(args.content.length).toBeGreaterThanOrEqual(lastContent.trimEnd().length);
        lastContent = args.content;
      }
      expect(args.complete).toBe(i === full.length);
    }
    // The path is final right after its closing quote, long before the content is complete.
    expect(pathCompleteAt).toBe(full.indexOf('"src/app.js"') + '"src/app.js"'.length);
    expect(lastContent).toBe(APP_JS);
  });

  it("reads nothing from text that is not a JSON object", () => {
    for (const text of ["", "   ", "[1,2", "nul", "42", '"path"', "{]"]) {
      const args = parseToolArgs(text);
      expect(args.path).toBeNull();
      expect(args.content).toBeNull();
    }
    expect(parseToolArgs("{}").complete).toBe(true);
  });

  it("remembers the last parse per call (one parse per new piece for every reader)", () => {
    const a = toolArgsOf("c-1", full.slice(0, 30));
    expect(toolArgsOf("c-1", full.slice(0, 30))).toBe(a);
    expect(toolArgsOf("c-1", full).content).toBe(APP_JS);
  });

  it("tells a failed call by its `Error: ` answer, and counts UTF-8 bytes as the server does", () => {
    expect(toolError("Error: the path ../x leaves the project")).toBe("the path ../x leaves the project");
    expect(toolError("Wrote src/app.js (10 bytes).")).toBeNull();
    expect(toolError(null)).toBeNull();
    expect(utf8Bytes(APP_JS)).toBe(new TextEncoder().encode(APP_JS).length);
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(2150)).toBe("2.1 KB");
    expect(formatBytes(3 * 1024 * 1024)).toBe("3.0 MB");
  });
});

describe("reducer: tool calls", () => {
  it("parses the four tool-call frames (they are not dropped as unknown)", () => {
    for (const frame of [
      { type: "TOOL_CALL_START", seq: 1, toolCallId: "c", toolCallName: "write_file", parentMessageId: "m" },
      { type: "TOOL_CALL_ARGS", seq: 2, toolCallId: "c", delta: "{" },
      { type: "TOOL_CALL_END", seq: 3, toolCallId: "c" },
      { type: "TOOL_CALL_RESULT", seq: 4, messageId: "tool-c", toolCallId: "c", content: "ok", role: "tool" },
    ]) {
      expect(parseServerFrame(JSON.stringify(frame))?.type).toBe(frame.type);
    }
  });

  it("a logged event of a type this page does not know keeps its seq: no gap, no re-sync", () => {
    const frame = parseServerFrame(JSON.stringify({ type: "ACTIVITY_SNAPSHOT", seq: 2, timestamp: 5, messageId: "a1", content: {} }));
    expect(frame).toEqual({ type: "OTHER_LOGGED", seq: 2, timestamp: 5, originalType: "ACTIVITY_SNAPSHOT" });
    // Without a seq (a connection frame) it is still ignored.
    expect(parseServerFrame(JSON.stringify({ type: "SOMETHING_NEW" }))).toBeNull();
    let view = replay([]);
    view = reduceAll(
      view,
      [
        { type: "TEXT_MESSAGE_START", seq: 1, messageId: "m", role: "assistant", name: "Analyst" },
        frame!,
        { type: "TEXT_MESSAGE_CONTENT", seq: 3, messageId: "m", delta: "Answer" },
      ],
      NOW,
    );
    expect(view.lastSeq).toBe(3);
    expect(view.stats.gaps).toBe(0);
    expect(view.resyncNeeded).toBe(false);
    expect(view.messages.m?.content).toBe("Answer");
  });

  it("reads the tool-call events the Rust side pins in tests/fixtures/events.golden.jsonl", () => {
    const golden = readFileSync(fileURLToPath(new URL("../../../tests/fixtures/events.golden.jsonl", import.meta.url)), "utf8")
      .trim()
      .split("\n")
      .map((line) => parseServerFrame(line))
      .filter((e): e is ServerEvent => e !== null && e.type.startsWith("TOOL_CALL_"));
    expect(golden.map((e) => e.type)).toEqual(["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"]);
    const start = golden[0] as Extract<ServerEvent, { type: "TOOL_CALL_START" }>;
    let view = replay([]);
    view = reduce(view, { type: "TEXT_MESSAGE_START", seq: 1, messageId: start.parentMessageId!, role: "assistant", name: "Developer" }, NOW);
    view = reduceAll(view, golden.map((e, i) => ({ ...e, seq: i + 2 }) as ServerEvent), NOW);
    const call = view.toolCalls[start.toolCallId]!;
    expect(call).toMatchObject({ name: "write_file", agent: "Developer", status: "done", error: null });
    expect(parseToolArgs(call.args).complete).toBe(true);
    expect(view.messages[start.parentMessageId!]?.toolCalls).toEqual([{ id: start.toolCallId, offset: 0 }]);
  });

  it("interleaves text and calls in one answer, in order, and keeps the text apart", () => {
    const s = new Script();
    s.start("A todo app");
    s.beginAttempt("developer");
    const id = s.stream("developer", "I will write the app.\n\n");
    const first = s.writeFile("developer", id, "src/app.js", APP_JS);
    s.say(id, "Now the page.\n\n");
    const second = s.writeFile("developer", id, "index.html", "<!doctype html>\n<title>Todo</title>\n");
    s.say(id, "Done.");
    const view = replay(s.events);

    const message = view.messages[id]!;
    expect(message.content).toBe("I will write the app.\n\nNow the page.\n\nDone.");
    expect(message.toolCalls).toEqual([
      { id: first, offset: "I will write the app.\n\n".length },
      { id: second, offset: "I will write the app.\n\nNow the page.\n\n".length },
    ]);
    const call = view.toolCalls[first]!;
    expect(call).toMatchObject({ name: "write_file", agent: "Developer", stage: "developer", status: "done", messageId: id, error: null });
    expect(JSON.parse(call.args)).toEqual({ path: "src/app.js", content: APP_JS });
    expect(call.result).toBe(`Wrote src/app.js (${utf8Bytes(APP_JS)} bytes).`);
    expect(view.openToolCalls).toEqual([]);
    // The state has the project, "/" in the paths escaped as ~1 in the patches.
    expect(view.state?.files).toEqual({
      "src/app.js": { bytes: utf8Bytes(APP_JS), version: 1, stage: "developer" },
      "index.html": { bytes: 36, version: 2, stage: "developer" },
    });
    // Only messages are in the thread's timeline; calls live in their message.
    expect(view.timeline.filter((i) => i.kind === "message").length).toBe(2);
  });

  it("keeps several open calls apart while their arguments interleave", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("developer");
    const id = s.stream("developer", "Two files at once.");
    const a = s.toolStart(id, "write_file");
    const b = s.toolStart(id, "write_file");
    const argsA = JSON.stringify({ path: "a.js", content: "let a = 1;\n" });
    const argsB = JSON.stringify({ path: "b.js", content: "let b = 2;\n" });
    for (let i = 0; i < Math.max(argsA.length, argsB.length); i += 4) {
      if (i < argsA.length) s.toolArgs(a, argsA.slice(i, i + 4));
      if (i < argsB.length) s.toolArgs(b, argsB.slice(i, i + 4));
    }
    const mid = replay(s.events);
    expect(mid.openToolCalls).toEqual([a, b]);
    expect(mid.toolCalls[a]?.status).toBe("streaming");
    s.toolEnd(b);
    const afterEndB = replay(s.events);
    expect(afterEndB.toolCalls[b]?.status).toBe("running");
    expect(afterEndB.toolCalls[a]?.status).toBe("streaming");
    s.toolEnd(a);
    s.toolResult(b, "Wrote b.js (11 bytes).");
    const afterB = replay(s.events);
    expect(afterB.openToolCalls).toEqual([a]);
    s.toolResult(a, "Wrote a.js (11 bytes).");
    const view = replay(s.events);
    expect(view.toolCalls[a]?.args).toBe(argsA);
    expect(view.toolCalls[b]?.args).toBe(argsB);
    expect(view.openToolCalls).toEqual([]);
    expect(view.messages[id]?.toolCalls.map((r) => r.id)).toEqual([a, b]);
  });

  it("marks a call answered `Error: …` as failed with its plain error, and it changes no file", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("tester");
    const id = s.stream("tester", "Checking.");
    const call = s.toolCall(id, "write_file", { path: "../escape.js", content: "x" }, "Error: the path ../escape.js is not allowed (no `..`).");
    const view = replay(s.events);
    expect(view.toolCalls[call]).toMatchObject({ status: "failed", error: "the path ../escape.js is not allowed (no `..`)." });
    expect(view.openToolCalls).toEqual([]);
    expect(projectFiles(view.state)).toEqual({});
  });

  it("a message cut short leaves its unanswered calls interrupted, not running forever", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("developer");
    const id = s.stream("developer", "Writing.");
    const done = s.toolCall(id, "read_file", { path: "README.md" }, "# Readme\n");
    const open = s.toolStart(id, "write_file");
    s.toolArgs(open, '{"path":"src/a');
    s.failRetryable("developer", id);
    const view = replay(s.events);
    expect(view.toolCalls[open]?.status).toBe("interrupted");
    expect(view.toolCalls[done]?.status).toBe("done");
    expect(view.openToolCalls).toEqual([]);
  });

  it("applies each tool event once: a replayed duplicate does not grow the arguments twice", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("developer");
    const id = s.stream("developer", "x");
    const call = s.writeFile("developer", id, "a.txt", "hello");
    const once = replay(s.events);
    const twice = reduceAll(once, [welcome(0), ...s.events, caughtUp(s.lastSeq)], NOW);
    expect(twice.toolCalls[call]?.args).toBe(once.toolCalls[call]?.args);
    expect(twice.stats.duplicates).toBe(s.events.length);
  });

  it("a call for a message it never saw start still shows, in a message of its own", () => {
    let view = replay([]);
    view = reduce(view, { type: "TOOL_CALL_START", seq: 1, toolCallId: "c9", toolCallName: "list_files", parentMessageId: "m-x" }, NOW);
    expect(view.messages["m-x"]?.toolCalls).toEqual([{ id: "c9", offset: 0 }]);
    expect(view.toolCalls.c9?.status).toBe("streaming");
  });

  it("catches up from a snapshot with state.files and messages carrying tool calls, then goes on live", () => {
    const state = {
      ...idleState(),
      files: { "README.md": { bytes: 9, version: 3, stage: "architect" as const }, "src/app.js": { bytes: 20, version: 5, stage: "developer" as const } },
    };
    let view = reduceAll(
      initialView(SESSION_ID),
      [
        welcome(40, "snapshot"),
        { type: "STATE_SNAPSHOT", snapshot: state },
        {
          type: "MESSAGES_SNAPSHOT",
          messages: [
            { id: "m1", role: "user", name: "You", content: "brief" },
            {
              id: "m2",
              role: "assistant",
              name: "Architect",
              content: "The skeleton.",
              toolCalls: [
                { id: "c1", type: "function", function: { name: "write_file", arguments: '{"path":"README.md","content":"# Project"}' } },
                { id: "c2", type: "function", function: { name: "delete_file", arguments: '{"path":"old.js"}' } },
              ],
            },
            { id: "tool-c1", role: "tool", toolCallId: "c1", content: "Wrote README.md (9 bytes)." },
            { id: "tool-c2", role: "tool", toolCallId: "c2", content: "Error: old.js is not in the project." },
          ],
        },
        caughtUp(40),
      ],
      NOW,
    );
    expect(view.timeline.map((i) => i.kind === "message" && i.id)).toEqual(["m1", "m2"]);
    expect(view.messages.m2?.toolCalls).toEqual([
      { id: "c1", offset: 13 },
      { id: "c2", offset: 13 },
    ]);
    expect(view.toolCalls.c1).toMatchObject({ name: "write_file", agent: "Architect", stage: "architect", status: "done" });
    expect(view.toolCalls.c2).toMatchObject({ status: "failed", error: "old.js is not in the project." });
    expect(Object.keys(projectFiles(view.state))).toEqual(["README.md", "src/app.js"]);

    view = reduceAll(
      view,
      [
        { type: "STATE_DELTA", seq: 41, delta: [{ op: "add", path: "/files/src~1store.js", value: { bytes: 4, version: 6, stage: "developer" } }] },
        { type: "STATE_DELTA", seq: 42, delta: [{ op: "remove", path: "/files/README.md" }] },
      ],
      NOW,
    );
    expect(view.fullResyncNeeded).toBe(false);
    expect(Object.keys(projectFiles(view.state)).sort()).toEqual(["src/app.js", "src/store.js"]);
  });

  it("an old state without `files` reads as an empty project", () => {
    const view = replay(new Script().events);
    expect(projectFiles(view.state)).toEqual({});
    expect(projectFiles(idleState())).toEqual({});
    expect(projectFiles(null)).toEqual({});
  });

  it("the replay shows the calls as they were at each point", () => {
    const s = new Script();
    s.start("brief", "auto");
    s.beginAttempt("developer");
    const id = s.stream("developer", "Here it comes.");
    const started = s.lastSeq;
    const call = s.writeFile("developer", id, "src/app.js", APP_JS, 5);
    const engine = new ReplayEngine(s.events, SESSION_ID);
    const during = engine.viewAt(started + 6);
    expect(during.toolCalls[call]?.status).toBe("streaming");
    expect(parseToolArgs(during.toolCalls[call]!.args).path).toBe("src/app.js");
    expect(projectFiles(during.state)).toEqual({});
    const end = engine.viewAt(engine.length);
    expect(end.toolCalls[call]?.status).toBe("done");
    expect(projectFiles(end.state)["src/app.js"]?.version).toBe(1);
  });
});
