import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SessionClient } from "../net/client";
import { SessionSocket } from "../net/socket";
import { activeErrors, initialView, reduceAll } from "../protocol/reducer";
import { FakeWebSocket } from "../test/fakeWebSocket";
import { SESSION_ID, Script, VIEW_KEY, ack, caughtUp, fullEachStageRun, rejected, welcome } from "../test/script";
import { outageWithin, useConnectionStore } from "./connection";
import { useDraftStore } from "./draft";
import { useSessionStore } from "./session";

function makeClient() {
  return new SessionClient(
    (url, callbacks) =>
      new SessionSocket(url, callbacks, {
        WebSocket: FakeWebSocket,
        minReconnectionDelay: 1000,
        maxReconnectionDelay: 4000,
        reconnectionDelayGrowFactor: 2,
        connectionTimeout: 60_000,
        maxRetries: 10,
        batchMs: 0,
      }),
    (id) => `ws://test/api/sessions/${id}/ws`,
  );
}

async function connected(client: SessionClient): Promise<FakeWebSocket> {
  client.connect(SESSION_ID);
  await vi.advanceTimersByTimeAsync(0);
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  return ws;
}

const view = () => useSessionStore.getState().view;

beforeEach(() => {
  vi.useFakeTimers({ now: 5_000_000 });
  FakeWebSocket.reset();
  useSessionStore.getState().reset(null);
  useConnectionStore.getState().reset();
  useDraftStore.setState({ brief: "", approval: "each_stage" });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("session store", () => {
  it("ingest applies a batch with one update", () => {
    const listener = vi.fn();
    const unsubscribe = useSessionStore.subscribe(listener);
    const script = fullEachStageRun();
    useSessionStore.getState().ingest([welcome(0), ...script.events, caughtUp(script.lastSeq)]);
    unsubscribe();
    expect(listener).toHaveBeenCalledTimes(1);
    expect(view().lastSeq).toBe(script.lastSeq);
    expect(view().state?.run.status).toBe("completed");
  });

  it("reset starts over for another session", () => {
    useSessionStore.getState().ingest(fullEachStageRun().events);
    useSessionStore.getState().reset("ffffffffffffffffffffffffffffffff");
    expect(view()).toEqual(initialView("ffffffffffffffffffffffffffffffff"));
  });

  it("dismissError hides a banner but keeps it in the log", () => {
    useSessionStore.getState().ingest([rejected("x", "approve", "invalid_state", "No approval is waiting.")]);
    const [error] = activeErrors(view());
    expect(error?.code).toBe("invalid_state");
    useSessionStore.getState().dismissError(error!.id);
    expect(activeErrors(view())).toHaveLength(0);
    expect(view().errors).toHaveLength(1);
  });
});

describe("connection store", () => {
  it("keeps `since` while the status stays the same", () => {
    const store = useConnectionStore.getState();
    store.setSnapshot({ status: "reconnecting", attempt: 1, nextRetryAt: 1, lastClose: null, offlineReason: null });
    const since = useConnectionStore.getState().since;
    vi.advanceTimersByTime(5000);
    store.setSnapshot({ status: "reconnecting", attempt: 2, nextRetryAt: 2, lastClose: null, offlineReason: null });
    expect(useConnectionStore.getState()).toMatchObject({ status: "reconnecting", attempt: 2, since });
    store.setSnapshot({ status: "connected", attempt: 0, nextRetryAt: null, lastClose: null, offlineReason: null });
    expect(useConnectionStore.getState().since).toBe(since + 5000);
  });
});

describe("SessionClient with the stores", () => {
  it("says hello, catches up, then sends a waiting start with an idempotency id", async () => {
    const client = makeClient();
    client.connect(SESSION_ID);
    client.sendWhenLive({ type: "start", brief: "Build a CRM", approval: "auto" });
    const ws = await connected(client);
    expect(ws.sentJson()).toEqual([{ type: "hello", lastSeq: 0 }]);
    expect(useConnectionStore.getState().status).toBe("connected");
    expect(view().sync).toBe("syncing");

    ws.serverSend(welcome(0, "snapshot"));
    ws.serverSend({ type: "STATE_SNAPSHOT", snapshot: new Script().state });
    ws.serverSend({ type: "MESSAGES_SNAPSHOT", messages: [] });
    expect(ws.sentJson()).toHaveLength(1); // still waiting for caught_up
    ws.serverSend(caughtUp(0));
    expect(view().sync).toBe("live");
    const sent = ws.sentJson();
    expect(sent).toHaveLength(2);
    const start = sent[1] as { type: string; id: string; brief: string; approval: string };
    expect(start).toMatchObject({ type: "start", brief: "Build a CRM", approval: "auto" });
    expect(start.id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(Object.keys(view().pending)).toEqual([start.id]);

    useDraftStore.getState().setBrief("Build a CRM");
    ws.serverSend(ack(start.id, "start"));
    expect(view().pending).toEqual({});
    expect(useDraftStore.getState().brief).toBe("");
    client.disconnect();
  });

  it("refuses to send while not live and says why", async () => {
    const client = makeClient();
    client.connect(SESSION_ID);
    expect(client.send({ type: "pause" })).toBeNull();
    expect(activeErrors(view())[0]).toMatchObject({ code: "not_connected", title: "Not connected" });
    client.disconnect();
  });

  it("on a view-only link sends no command at all, and says why", async () => {
    const client = makeClient();
    client.connect(VIEW_KEY);
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWebSocket.last();
    expect(ws.url).toBe(`ws://test/api/sessions/${VIEW_KEY}/ws`);
    ws.serverOpen();
    ws.serverSend(welcome(0, "snapshot", { sessionId: VIEW_KEY, readOnly: true }));
    ws.serverSend({ type: "STATE_SNAPSHOT", snapshot: new Script().state });
    ws.serverSend({ type: "MESSAGES_SNAPSHOT", messages: [] });
    ws.serverSend(caughtUp(0));
    expect(view()).toMatchObject({ sync: "live", readOnly: true });
    expect(client.send({ type: "start", brief: "x", approval: "auto" })).toBeNull();
    expect(ws.sentJson()).toEqual([{ type: "hello", lastSeq: 0 }]);
    expect(view().pending).toEqual({});
    expect(activeErrors(view())[0]).toMatchObject({ code: "read_only", title: "This is a view-only link" });
    client.disconnect();
  });

  it("a revoked view link (close 4403) says so and stops trying", async () => {
    const client = makeClient();
    client.connect(VIEW_KEY);
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverClose(4403, "view link revoked");
    expect(useConnectionStore.getState()).toMatchObject({ status: "revoked", lastClose: { code: 4403, reason: "view link revoked" } });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    client.reconnectNow();
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    client.disconnect();
  });

  it("catches up exactly after a drop mid-stream: no gap, no duplicate", async () => {
    const script = fullEachStageRun();
    const straight = reduceAll(initialView(SESSION_ID), [welcome(0), ...script.events, caughtUp(script.lastSeq)], 0);
    const client = makeClient();
    const ws = await connected(client);
    const cut = 40;
    ws.serverSend(welcome(script.lastSeq));
    for (const e of script.events.slice(0, cut)) ws.serverSend(e);
    ws.serverClose(1006);
    expect(useConnectionStore.getState()).toMatchObject({ status: "reconnecting", attempt: 1 });
    expect(view().sync).toBe("idle");
    expect(view().lastSeq).toBe(cut);

    await vi.advanceTimersByTimeAsync(1000);
    const ws2 = FakeWebSocket.last();
    expect(ws2).not.toBe(ws);
    ws2.serverOpen();
    expect(ws2.sentJson()).toEqual([{ type: "hello", lastSeq: cut }]);
    ws2.serverSend(welcome(script.lastSeq));
    // A defensive server overlaps by a few events; they must be dropped.
    for (const e of script.after(cut - 3)) ws2.serverSend(e);
    ws2.serverSend(caughtUp(script.lastSeq));

    expect(view().lastSeq).toBe(script.lastSeq);
    expect(view().messages).toEqual(straight.messages);
    expect(view().timeline).toEqual(straight.timeline);
    expect(view().state).toEqual(script.state);
    expect(view().stats.duplicates).toBe(3);
    client.disconnect();
  });

  it("re-syncs with hello {lastSeq} on the open socket after a seq gap", async () => {
    const script = fullEachStageRun();
    const client = makeClient();
    const ws = await connected(client);
    ws.serverSend(welcome(script.lastSeq));
    for (const e of script.events.slice(0, 10)) ws.serverSend(e);
    ws.serverSend(caughtUp(10));
    ws.serverSend(script.events[11]!); // seq 12 before 11
    ws.serverSend(script.events[12]!); // seq 13: still a gap, no second hello
    // The re-sync names the epoch of the caught-up welcome.
    expect(ws.sentJson()).toEqual([{ type: "hello", lastSeq: 0 }, { type: "hello", lastSeq: 10, epoch: 1 }]);
    ws.serverSend(welcome(script.lastSeq));
    for (const e of script.after(10)) ws.serverSend(e);
    ws.serverSend(caughtUp(script.lastSeq));
    expect(view().lastSeq).toBe(script.lastSeq);
    expect(view().state).toEqual(script.state);
    client.disconnect();
  });

  it("re-sends an unanswered command with the same id after reconnecting", async () => {
    const script = new Script();
    script.start("brief");
    script.beginAttempt("analyst");
    const client = makeClient();
    const ws = await connected(client);
    ws.serverSend(welcome(script.lastSeq));
    for (const e of script.events) ws.serverSend(e);
    ws.serverSend(caughtUp(script.lastSeq));
    const id = client.send({ type: "pause" });
    expect(id).not.toBeNull();
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    const ws2 = FakeWebSocket.last();
    ws2.serverOpen();
    ws2.serverSend(welcome(script.lastSeq));
    ws2.serverSend(caughtUp(script.lastSeq));
    expect(ws2.sentJson()).toEqual([{ type: "hello", lastSeq: script.lastSeq, epoch: 1 }, { type: "pause", id }]);
    ws2.serverSend(ack(id!, "pause", true));
    expect(view().pending).toEqual({});
    client.disconnect();
  });

  it("rebuilds from seq 0 when a state patch does not apply", async () => {
    const script = new Script();
    script.start("brief");
    const client = makeClient();
    const ws = await connected(client);
    ws.serverSend(welcome(script.lastSeq));
    for (const e of script.events) ws.serverSend(e);
    ws.serverSend(caughtUp(script.lastSeq));
    ws.serverSend({ type: "STATE_DELTA", seq: script.lastSeq + 1, delta: [{ op: "replace", path: "/nope/x", value: 1 }] });
    expect(ws.sentJson().at(-1)).toEqual({ type: "hello", lastSeq: 0, epoch: 1 });
    expect(view().lastSeq).toBe(0);
    expect(view().timeline).toEqual([]);
    client.disconnect();
  });

  it("reconnectNow resets the attempt count and connects at once", async () => {
    const client = makeClient();
    const ws = await connected(client);
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    FakeWebSocket.last().fail();
    expect(useConnectionStore.getState()).toMatchObject({ status: "reconnecting", attempt: 2 });
    const before = FakeWebSocket.instances.length;
    client.reconnectNow();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWebSocket.instances.length).toBe(before + 1);
    FakeWebSocket.last().serverOpen();
    expect(useConnectionStore.getState()).toMatchObject({ status: "connected", attempt: 0 });
    client.disconnect();
  });
});

describe("connection outages", () => {
  const snap = (status: "connecting" | "connected" | "reconnecting" | "offline" | "revoked") =>
    useConnectionStore.getState().setSnapshot({ status, attempt: 0, nextRetryAt: null, lastClose: null, offlineReason: null });

  it("counts only losses after the first connection, closes one on reconnect, and leaves a final close open", () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      useConnectionStore.getState().reset();
      snap("connecting");
      vi.advanceTimersByTime(3000);
      expect(useConnectionStore.getState().outages).toEqual([]);
      snap("connected");
      vi.advanceTimersByTime(1000);
      snap("reconnecting");
      vi.advanceTimersByTime(4000);
      snap("offline");
      vi.advanceTimersByTime(1000);
      snap("connected");
      expect(useConnectionStore.getState().outages).toEqual([{ from: 1_004_000, to: 1_009_000 }]);
      snap("revoked");
      expect(useConnectionStore.getState().outages).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("measures the part of a span that fell in outages", () => {
    const outages = [
      { from: 10, to: 20 },
      { from: 30, to: null },
    ];
    expect(outageWithin(outages, 0, 100)).toBe(80);
    expect(outageWithin(outages, 15, 35)).toBe(10);
    expect(outageWithin(outages, 21, 29)).toBe(0);
  });
});
