import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket } from "../test/fakeWebSocket";
import { reconnectDelay, SessionSocket, socketUrl, type ConnectionSnapshot } from "./socket";
import type { ServerEvent } from "../protocol/types";

const OPTS = {
  WebSocket: FakeWebSocket,
  minReconnectionDelay: 1000,
  maxReconnectionDelay: 8000,
  reconnectionDelayGrowFactor: 2,
  connectionTimeout: 60_000,
  maxRetries: 3,
  batchMs: 0,
};

function setup(lastSeq = 0, options: Partial<typeof OPTS> = {}) {
  const frames: ServerEvent[][] = [];
  const statuses: ConnectionSnapshot[] = [];
  let seq = lastSeq;
  const socket = new SessionSocket(
    "ws://test/api/sessions/abc/ws",
    {
      lastSeq: () => seq,
      onFrames: (events) => frames.push(events),
      onStatus: (s) => statuses.push(s),
    },
    { ...OPTS, ...options, now: () => Date.now() },
  );
  return {
    socket,
    frames,
    statuses,
    setSeq: (n: number) => {
      seq = n;
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
  FakeWebSocket.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("SessionSocket", () => {
  it("builds the same-origin ws URL", () => {
    expect(socketUrl("abc", { protocol: "https:", host: "x.dev" })).toBe("wss://x.dev/api/sessions/abc/ws");
    expect(socketUrl("abc", { protocol: "http:", host: "127.0.0.1:8787" })).toBe("ws://127.0.0.1:8787/api/sessions/abc/ws");
  });

  it("mirrors partysocket's backoff", () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => reconnectDelay(n, OPTS))).toEqual([0, 1000, 2000, 4000, 8000, 8000]);
  });

  it("sends hello {lastSeq} as the very first frame and reports Connected", async () => {
    const { statuses } = setup(42);
    expect(statuses.at(-1)?.status).toBe("connecting");
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWebSocket.last();
    expect(ws.url).toBe("ws://test/api/sessions/abc/ws");
    ws.serverOpen();
    expect(ws.sent).toEqual([JSON.stringify({ type: "hello", lastSeq: 42 })]);
    expect(statuses.at(-1)).toMatchObject({ status: "connected", attempt: 0, nextRetryAt: null });
  });

  it("ignores the runtime's plain pong and junk, and hands events over parsed", async () => {
    const { frames } = setup();
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverSend("pong");
    ws.serverSend("{not json");
    ws.serverSend({ type: "NOT_AN_AGUI_EVENT" });
    ws.serverSend({ type: "RUN_STARTED", seq: 1, threadId: "t", runId: "run-1" });
    expect(frames).toEqual([[{ type: "RUN_STARTED", seq: 1, threadId: "t", runId: "run-1" }]]);
  });

  it("batches frames that arrive close together into one hand-over", async () => {
    const { frames } = setup(0, { batchMs: 16 });
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    for (let i = 1; i <= 5; i++) ws.serverSend({ type: "TEXT_MESSAGE_CONTENT", seq: i, messageId: "m", delta: String(i) });
    expect(frames).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(16);
    expect(frames).toHaveLength(1);
    expect(frames[0]?.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("pings with a plain text frame every 25 s while open", async () => {
    setup();
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    await vi.advanceTimersByTimeAsync(25_000);
    expect(ws.sent.filter((s) => s === "ping")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(50_000);
    expect(ws.sent.filter((s) => s === "ping")).toHaveLength(3);
  });

  it("after a drop says Reconnecting (attempt n, next try at t), then reconnects with the new lastSeq", async () => {
    const { statuses, setSeq, frames } = setup(0, { batchMs: 16 });
    await vi.advanceTimersByTimeAsync(0);
    const first = FakeWebSocket.last();
    first.serverOpen();
    first.serverSend({ type: "RUN_STARTED", seq: 1, threadId: "t", runId: "run-1" });
    first.serverClose(1006);
    // Frames received before the close are handed over before the status changes.
    expect(frames).toHaveLength(1);
    expect(statuses.at(-1)).toMatchObject({ status: "reconnecting", attempt: 1, nextRetryAt: 1_000_000 + 1000 });
    expect(statuses.at(-1)?.lastClose?.code).toBe(1006);
    setSeq(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    const second = FakeWebSocket.last();
    second.fail();
    expect(statuses.at(-1)).toMatchObject({ status: "reconnecting", attempt: 2, nextRetryAt: Date.now() + 2000 });
    await vi.advanceTimersByTimeAsync(2000);
    const third = FakeWebSocket.last();
    expect(FakeWebSocket.instances).toHaveLength(3);
    third.serverOpen();
    expect(third.sent).toEqual([JSON.stringify({ type: "hello", lastSeq: 1 })]);
    expect(statuses.at(-1)).toMatchObject({ status: "connected", attempt: 0, nextRetryAt: null });
  });

  it("goes Offline when the retry limit is reached, and 'reconnect now' connects at once", async () => {
    const { statuses, socket } = setup(0, { maxRetries: 2 });
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.last().fail(); // attempt 1 scheduled
    await vi.advanceTimersByTimeAsync(1000);
    FakeWebSocket.last().fail(); // attempt 2 scheduled
    expect(statuses.at(-1)).toMatchObject({ status: "reconnecting", attempt: 2 });
    await vi.advanceTimersByTimeAsync(2000);
    FakeWebSocket.last().fail(); // no attempt left
    expect(statuses.at(-1)).toMatchObject({ status: "offline", offlineReason: "retries_exhausted", nextRetryAt: null });
    const count = FakeWebSocket.instances.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(count);

    socket.reconnect();
    expect(statuses.at(-1)).toMatchObject({ status: "connecting", attempt: 0 });
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWebSocket.instances).toHaveLength(count + 1);
    FakeWebSocket.last().serverOpen();
    expect(statuses.at(-1)?.status).toBe("connected");
  });

  it("never queues commands while disconnected (they would precede hello)", async () => {
    const { socket } = setup();
    expect(socket.send({ type: "pause", id: "p1" })).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    expect(ws.sent).toEqual([JSON.stringify({ type: "hello", lastSeq: 0 })]);
    expect(socket.send({ type: "pause", id: "p2" })).toBe(true);
    expect(ws.sentJson()).toEqual([{ type: "hello", lastSeq: 0 }, { type: "pause", id: "p2" }]);
  });

  it("close() ends for good: no reconnection, status closed", async () => {
    const { socket, statuses } = setup();
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.last().serverOpen();
    socket.close();
    expect(statuses.at(-1)?.status).toBe("closed");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});
