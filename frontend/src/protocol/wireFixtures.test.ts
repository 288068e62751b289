// @vitest-environment node
// The golden fixtures the Rust tests pin (tests/fixtures/wire/, one file per CUSTOM event and
// connection frame, written by src/protocol/wire/tests.rs) fed to the reducer: what the server
// really sends is what the page understands.

import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { initialView, recordSent, reduce, reduceAll, type SessionView } from "./reducer";
import { parseGateId } from "./gates";
import { STAGES, parseServerFrame, type CustomValueMap, type ServerEvent } from "./types";
import { idleState, SESSION_ID } from "../test/script";

const FIXTURES = fileURLToPath(new URL("../../../tests/fixtures/", import.meta.url));
const NOW = 1_800_000_000_000;

function fixture(name: string): ServerEvent {
  const event = parseServerFrame(readFileSync(`${FIXTURES}wire/${name}.json`, "utf8"));
  if (!event) throw new Error(`${name}.json does not parse as a server frame`);
  return event;
}

function valueOf<K extends keyof CustomValueMap>(event: ServerEvent, name: K): CustomValueMap[K] {
  if (event.type !== "CUSTOM" || event.name !== name) throw new Error(`not a ${name} event`);
  return event.value as CustomValueMap[K];
}

/** A page that joined by snapshot at seq 20, with the architect's message on screen. */
function joined(): SessionView {
  return reduceAll(
    initialView(SESSION_ID),
    [
      fixture("welcome-snapshot"),
      { type: "STATE_SNAPSHOT", snapshot: idleState() },
      {
        type: "MESSAGES_SNAPSHOT",
        messages: [{ id: "msg-a3", role: "assistant", name: "Architect", content: "The architecture" }],
      },
      fixture("caught_up"),
    ],
    NOW,
  );
}

describe("wire fixtures", () => {
  it("every fixture file parses as a server frame; logged events carry seq, connection frames do not", () => {
    const files = readdirSync(`${FIXTURES}wire`).filter((f) => f.endsWith(".json"));
    expect(files.length).toBeGreaterThanOrEqual(12);
    const logged = new Set(["artifact", "agent_error", "message_interrupted", "agent_queued"]);
    for (const file of files) {
      const event = fixture(file.replace(/\.json$/, ""));
      expect(event.type).toBe("CUSTOM");
      if (event.type !== "CUSTOM") continue;
      expect(typeof event.seq === "number", file).toBe(logged.has(event.name));
    }
    for (const line of readFileSync(`${FIXTURES}events.golden.jsonl`, "utf8").trim().split("\n")) {
      expect(parseServerFrame(line), line).not.toBeNull();
    }
  });

  it("the stage list the JS test tools read is the one the UI uses", () => {
    const stages = JSON.parse(readFileSync(`${FIXTURES}stages.json`, "utf8")) as { stage: string }[];
    expect(stages.map((s) => s.stage)).toEqual([...STAGES]);
  });

  it("welcome (snapshot) and caught_up: lastSeq replaced, history bound shown", () => {
    const view = joined();
    const welcome = valueOf(fixture("welcome-snapshot"), "welcome");
    expect(welcome.reason).toBe("server_restarted");
    expect(welcome.epoch).toBe(2);
    expect(view.lastSeq).toBe(20);
    expect(view.sync).toBe("live");
    expect(view.omittedMessages).toBe(3);
    expect(view.welcome?.flow).toEqual({ window: 8 * 1024 * 1024, page: 1024 * 1024 });
  });

  it("a replay reconnect (caught_up with omittedMessages 0) keeps the snapshot's history line", () => {
    const zero = { ...fixture("caught_up"), value: { lastSeq: 20, omittedMessages: 0 } } as ServerEvent;
    const view = reduceAll(joined(), [fixture("welcome"), zero], NOW);
    expect(valueOf(fixture("welcome"), "welcome").mode).toBe("replay");
    expect(view.sync).toBe("live");
    expect(view.omittedMessages).toBe(3);
  });

  it("the logged custom events apply in order", () => {
    let view = joined();
    view = reduce(view, fixture("artifact"), NOW);
    expect(view.artifactVersions).toEqual({ analyst: 2 });

    view = reduce(view, fixture("agent_error"), NOW);
    const retrying = view.errors.at(-1);
    expect(retrying).toMatchObject({ source: "agent", code: "rate_limited", stage: "architect", retryAt: 1_700_000_002_000, attempt: 1 });
    expect(retrying?.details).toContain("HTTP 429");

    view = reduce(view, fixture("agent_error-final"), NOW);
    expect(view.errors.at(-1)).toMatchObject({ source: "agent", code: "bad_key", stage: "developer", retryAt: null });
    expect(view.errors.at(-1)?.next).toContain("No automatic retry.");

    view = reduce(view, fixture("message_interrupted"), NOW);
    expect(view.messages["msg-a3"]?.interrupted).toBe("retry");

    const queued = fixture("agent_queued");
    view = reduce(view, queued, NOW);
    const last = view.timeline.at(-1);
    expect(last?.kind === "notice" ? last.text : null).toBe(valueOf(queued, "agent_queued").message);

    expect(view.lastSeq).toBe(25);
    expect(view.stats).toEqual({ applied: 5, duplicates: 0, gaps: 0 });
  });

  it("ack and rejected settle their pending commands; warning is shown; pong changes nothing", () => {
    let view = joined();
    view = recordSent(view, { type: "pause", id: "k1" }, NOW);
    view = recordSent(view, { type: "approve", id: "k2", stage: "analyst" }, NOW);
    view = reduce(view, fixture("ack"), NOW);
    expect(Object.keys(view.pending)).toEqual(["k2"]);
    view = reduce(view, fixture("rejected"), NOW);
    expect(view.pending).toEqual({});
    expect(view.errors.at(-1)).toMatchObject({ source: "rejected", code: "invalid_state", stage: "analyst" });
    view = reduce(view, fixture("warning"), NOW);
    expect(view.errors.at(-1)).toMatchObject({ source: "warning", code: "rate_limited" });
    expect(reduce(view, fixture("pong"), NOW)).toBe(view);
  });

  it("gate ids from the golden stream parse in one place", () => {
    const lines = readFileSync(`${FIXTURES}events.golden.jsonl`, "utf8").trim().split("\n");
    const interrupt = lines.map(parseServerFrame).find((e) => e?.type === "RUN_FINISHED" && e.outcome?.type === "interrupt");
    const id = interrupt?.type === "RUN_FINISHED" && interrupt.outcome?.type === "interrupt" ? interrupt.outcome.interrupts[0]?.id : undefined;
    expect(parseGateId(id)).toEqual({ stage: "analyst", version: 1 });
    expect(parseGateId("gate-nobody-1")).toBeNull();
    expect(parseGateId("gate-analyst-1x")).toBeNull();
  });
});
