import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket } from "../test/fakeWebSocket";
import {
  ACK_BYTES,
  CLOSE_SESSION_GONE,
  CLOSE_VIEW_REVOKED,
  CLOSE_TOO_SLOW,
  reconnectDelay,
  DEFAULT_SOCKET_OPTIONS,
  SessionSocket,
  socketUrl,
  utf8Bytes,
  type ConnectionSnapshot,
  type SocketEnvironment,
} from "./socket";
import type { ServerEvent } from "../protocol/types";

const OPTS = {
  WebSocket: FakeWebSocket,
  minReconnectionDelay: 1000,
  fastRetryWindowMs: 0,
  maxReconnectionDelay: 8000,
  reconnectionDelayGrowFactor: 2,
  connectionTimeout: 60_000,
  maxRetries: 3,
  batchMs: 0,
};

/** The browser's network and visibility, under the test's control. */
class FakeEnvironment extends EventTarget implements SocketEnvironment {
  online = true;
  visible = true;
  isOnline(): boolean {
    return this.online;
  }
  isVisible(): boolean {
    return this.visible;
  }
  override addEventListener(type: string, listener: () => void): void {
    super.addEventListener(type, listener);
  }
  override removeEventListener(type: string, listener: () => void): void {
    super.removeEventListener(type, listener);
  }
  goOffline(): void {
    this.online = false;
    this.dispatchEvent(new Event("offline"));
  }
  goOnline(): void {
    this.online = true;
    this.dispatchEvent(new Event("online"));
  }
  setVisible(visible: boolean): void {
    this.visible = visible;
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

function setup(lastSeq = 0, options: Partial<typeof OPTS> & { online?: boolean } = {}) {
  const frames: ServerEvent[][] = [];
  const statuses: ConnectionSnapshot[] = [];
  const environment = new FakeEnvironment();
  environment.online = options.online ?? true;
  let seq = lastSeq;
  const socket = new SessionSocket(
    "ws://test/api/sessions/abc/ws",
    {
      lastSeq: () => seq,
      // Like the store: a frame's seq is applied when it is handed over.
      onFrames: (events) => {
        frames.push(events);
        for (const e of events) if (typeof e.seq === "number" && e.seq === seq + 1) seq = e.seq;
      },
      onStatus: (s) => statuses.push(s),
    },
    { ...OPTS, ...options, environment, now: () => Date.now() },
  );
  return {
    socket,
    frames,
    statuses,
    environment,
    setSeq: (n: number) => {
      seq = n;
    },
    status: () => statuses.at(-1)?.status,
  };
}

/** Opens the latest fake socket and returns it with its hello cleared from `sent`. */
async function opened(): Promise<FakeWebSocket> {
  await vi.advanceTimersByTimeAsync(0);
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  return ws;
}

const isPing = (s: string) => s === JSON.stringify({ type: "ping" });
const pings = (ws: FakeWebSocket) => ws.sent.filter(isPing).length;
const acks = (ws: FakeWebSocket) =>
  ws.sent.map((s) => JSON.parse(s) as { type: string; seq?: number }).filter((c) => c.type === "ack").map((c) => c.seq);

/** Answers every ping with the server's pong, as a live server does. */
function answerPings(ws: FakeWebSocket): void {
  const send = ws.send.bind(ws);
  ws.send = (data: string) => {
    send(data);
    if (isPing(data)) queueMicrotask(() => ws.serverSend({ type: "CUSTOM", name: "pong", value: { t: Date.now() } }));
  };
}

const welcome = (flow?: unknown) => ({
  type: "CUSTOM",
  name: "welcome",
  value: { sessionId: "abc", demo: true, model: "demo", lastSeq: 0, mode: "replay", ...(flow ? { flow } : {}) },
});
const text = (seq: number, delta = "x") => ({ type: "TEXT_MESSAGE_CONTENT", seq, messageId: "m", delta });

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

  it("backs off exponentially past the fast window", () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => reconnectDelay(n, OPTS))).toEqual([0, 1000, 2000, 4000, 8000, 8000]);
  });

  it("tries every 2–2.5 s for the first minute after a drop, then backs off (the defaults)", () => {
    const opts = { ...DEFAULT_SOCKET_OPTIONS };
    expect(opts.minReconnectionDelay).toBeGreaterThanOrEqual(2000);
    expect(opts.minReconnectionDelay).toBeLessThanOrEqual(2500);
    const delays = Array.from({ length: 40 }, (_, i) => reconnectDelay(i + 1, opts));
    let waited = 0;
    for (const d of delays) {
      if (waited >= 60_000) break;
      expect(d).toBe(opts.minReconnectionDelay);
      waited += d;
    }
    expect(delays.at(-1)).toBe(opts.maxReconnectionDelay);
    expect(delays.some((d) => d > opts.minReconnectionDelay && d < opts.maxReconnectionDelay)).toBe(true);
  });

  it("waits what it says between tries: the first minute at the fast pace, then longer", async () => {
    const { statuses } = setup(0, { minReconnectionDelay: 2000, fastRetryWindowMs: 6000, maxRetries: 10 });
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.last().serverOpen();
    const opened = () => FakeWebSocket.instances.length;
    FakeWebSocket.last().serverClose(1006, "gone");
    const gaps: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = opened();
      let waited = 0;
      while (opened() === before && waited < 60_000) {
        await vi.advanceTimersByTimeAsync(100);
        waited += 100;
      }
      gaps.push(waited);
      FakeWebSocket.last().serverClose(1006, "refused");
    }
    expect(gaps).toEqual([2000, 2000, 2000, 4000, 8000].map((ms) => Math.min(ms, 8000)));
    expect(statuses.at(-1)?.status).toBe("reconnecting");
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

  it("pings with the JSON ping every 2 s while visible and stays Connected while pongs come back", async () => {
    const { status } = setup();
    const ws = await opened();
    answerPings(ws);
    await vi.advanceTimersByTimeAsync(2000);
    expect(pings(ws)).toBe(1);
    await vi.advanceTimersByTimeAsync(58_000);
    expect(pings(ws)).toBe(30);
    expect(ws.sent).not.toContain("ping"); // the plain-text keepalive is replaced
    expect(status()).toBe("connected");
    expect(FakeWebSocket.instances).toHaveLength(1);
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

  it("hello carries the epoch of the seqs it names: the welcome's, adopted only once its catch-up is done", async () => {
    const { setSeq } = setup(0);
    const hello = (ws: FakeWebSocket) => JSON.parse(ws.sent[0] ?? "null") as unknown;
    const welcomeIn = (epoch: number) => ({ type: "CUSTOM", name: "welcome", value: { sessionId: "abc", demo: true, model: "demo", lastSeq: 40, epoch, mode: "replay" } });
    const caughtUp = { type: "CUSTOM", name: "caught_up", value: { lastSeq: 40, omittedMessages: 0 } };
    const count = () => FakeWebSocket.instances.length;
    const first = await opened();
    expect(hello(first)).toEqual({ type: "hello", lastSeq: 0 }); // no epoch known yet
    first.serverSend(welcomeIn(1));
    first.serverSend(caughtUp);
    setSeq(40);
    first.serverClose(1006);
    await vi.advanceTimersByTimeAsync(10_000); // the next try (backoff grows: quick drops)
    const second = await opened();
    expect(hello(second)).toEqual({ type: "hello", lastSeq: 40, epoch: 1 });
    // The server restarted in a new epoch; the connection drops before the catch-up ends:
    // the seqs the page holds are still epoch 1's.
    second.serverSend(welcomeIn(2));
    second.serverClose(1006);
    await vi.advanceTimersByTimeAsync(10_000); // the next try (backoff grows: quick drops)
    const third = await opened();
    expect(hello(third)).toEqual({ type: "hello", lastSeq: 40, epoch: 1 });
    third.serverSend(welcomeIn(2));
    third.serverSend(caughtUp);
    third.serverClose(1006);
    await vi.advanceTimersByTimeAsync(10_000); // the next try (backoff grows: quick drops)
    const fourth = await opened();
    expect(count()).toBe(4);
    expect(hello(fourth)).toEqual({ type: "hello", lastSeq: 40, epoch: 2 });
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

describe("SessionSocket heartbeat", () => {
  it("a silent socket (open, but nothing flows) leaves Connected within 3.5 s and is replaced at once", async () => {
    const { statuses, status, setSeq } = setup(0);
    const ws = await opened();
    answerPings(ws);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(status()).toBe("connected");
    // The network dies: the socket stays open, nothing arrives any more.
    ws.send = (data: string) => void ws.sent.push(data);
    const diedAt = Date.now();
    while (status() === "connected" && Date.now() - diedAt < 10_000) await vi.advanceTimersByTimeAsync(50);
    const detected = Date.now() - diedAt;
    expect(detected).toBeGreaterThan(1500);
    expect(detected).toBeLessThanOrEqual(3500);
    expect(statuses.at(-1)).toMatchObject({ status: "reconnecting", attempt: 1, lastClose: { code: 4901 } });
    expect(ws.readyState).toBe(FakeWebSocket.CLOSED); // dropped, no waiting for a closing handshake
    // A new socket is on its way at once and says hello with the seq applied so far.
    setSeq(7);
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(10);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last().serverOpen();
    expect(FakeWebSocket.last().sent[0]).toBe(JSON.stringify({ type: "hello", lastSeq: 7 }));
    expect(status()).toBe("connected");
  });

  it("while a run streams every frame counts as life, and a stream that stops dead is caught within 3.5 s", async () => {
    const { status } = setup(0);
    const ws = await opened();
    // Tokens every 100 ms and never a pong: still alive.
    let seq = 0;
    for (let i = 0; i < 100; i++) {
      ws.serverSend(text(++seq));
      await vi.advanceTimersByTimeAsync(100);
    }
    expect(status()).toBe("connected");
    expect(pings(ws)).toBe(5);
    const stoppedAt = Date.now();
    while (status() === "connected" && Date.now() - stoppedAt < 10_000) await vi.advanceTimersByTimeAsync(50);
    expect(Date.now() - stoppedAt).toBeLessThanOrEqual(3500);
    expect(status()).toBe("reconnecting");
  });

  it("a slow pong (under the deadline) is fine", async () => {
    const { status } = setup(0);
    const ws = await opened();
    const send = ws.send.bind(ws);
    ws.send = (data: string) => {
      send(data);
      if (isPing(data)) setTimeout(() => ws.readyState === FakeWebSocket.OPEN && ws.serverSend({ type: "CUSTOM", name: "pong", value: { t: 1 } }), 1400);
    };
    await vi.advanceTimersByTimeAsync(60_000);
    expect(status()).toBe("connected");
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("while hidden pings every 20 s and allows each the full 3.5 s; becoming visible checks at once", async () => {
    const { status, environment } = setup(0);
    const ws = await opened();
    answerPings(ws);
    environment.setVisible(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(pings(ws)).toBe(3);
    expect(status()).toBe("connected");
    // The laptop sleeps and wakes: the page becomes visible, the socket is dead.
    ws.send = (data: string) => void ws.sent.push(data);
    await vi.advanceTimersByTimeAsync(30_000); // a hidden-mode ping went unanswered…
    expect(status()).toBe("reconnecting"); // …and was caught.

    const again = await opened();
    answerPings(again);
    environment.setVisible(false);
    await vi.advanceTimersByTimeAsync(5000);
    again.send = (data: string) => void again.sent.push(data);
    environment.setVisible(true);
    expect(pings(again)).toBe(1); // at once
    await vi.advanceTimersByTimeAsync(1500);
    expect(status()).toBe("reconnecting");
  });

  it("offline: Offline at once, the socket dropped and no tries; online: a new connection at once", async () => {
    const { status, statuses, environment } = setup(3);
    const ws = await opened();
    environment.goOffline();
    expect(statuses.at(-1)).toMatchObject({ status: "offline", offlineReason: "no_network", nextRetryAt: null });
    expect(ws.readyState).toBe(FakeWebSocket.CLOSED);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(status()).toBe("offline");
    environment.goOnline();
    expect(status()).toBe("connecting");
    const again = await opened();
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(again.sent[0]).toBe(JSON.stringify({ type: "hello", lastSeq: 3 }));
    expect(status()).toBe("connected");
  });

  it("starting without a network waits for `online` instead of trying", async () => {
    const { status, environment } = setup(0, { online: false });
    expect(status()).toBe("offline");
    await vi.advanceTimersByTimeAsync(30_000);
    expect(FakeWebSocket.instances).toHaveLength(0);
    environment.goOnline();
    await opened();
    expect(status()).toBe("connected");
  });

  it("close 4404: the session is gone; no more tries", async () => {
    const { statuses, socket } = setup(0);
    const ws = await opened();
    ws.serverClose(CLOSE_SESSION_GONE, "session deleted");
    expect(statuses.at(-1)).toMatchObject({ status: "gone", nextRetryAt: null, lastClose: { code: CLOSE_SESSION_GONE } });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    socket.reconnect(); // "Reconnect now" cannot bring it back either
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("close 4403: the view link was revoked; no more tries, not even when the network comes back", async () => {
    const { statuses, socket, environment } = setup(0);
    const ws = await opened();
    ws.serverClose(CLOSE_VIEW_REVOKED, "view link revoked");
    expect(statuses.at(-1)).toMatchObject({ status: "revoked", attempt: 0, nextRetryAt: null, lastClose: { code: 4403, reason: "view link revoked" } });
    await vi.advanceTimersByTimeAsync(120_000);
    socket.reconnect();
    environment.goOffline();
    environment.goOnline();
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(statuses.at(-1)?.status).toBe("revoked");
  });

  it("close 4008 (too slow) reconnects like any drop", async () => {
    const { statuses } = setup(0);
    const ws = await opened();
    ws.serverClose(CLOSE_TOO_SLOW, "too slow");
    expect(statuses.at(-1)).toMatchObject({ status: "reconnecting", attempt: 1 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });
});

describe("SessionSocket flow-control acks", () => {
  it("sends no ack to a server whose welcome has no `flow` (today's server)", async () => {
    setup(0);
    const ws = await opened();
    ws.serverSend(welcome());
    for (let i = 1; i <= 50; i++) ws.serverSend(text(i, "y".repeat(20_000)));
    ws.serverSend({ type: "CUSTOM", name: "caught_up", value: { lastSeq: 50 } });
    await vi.advanceTimersByTimeAsync(5000);
    expect(acks(ws)).toEqual([]);
  });

  it("acks 250 ms after the last seq-bearing frame (debounced), and once right after caught_up", async () => {
    setup(0);
    const ws = await opened();
    ws.serverSend(welcome({ window: 8_388_608, page: 1_048_576 }));
    ws.serverSend(text(1));
    ws.serverSend(text(2));
    ws.serverSend({ type: "CUSTOM", name: "caught_up", value: { lastSeq: 2 } });
    expect(acks(ws)).toEqual([2]);
    await vi.advanceTimersByTimeAsync(200);
    ws.serverSend(text(3));
    await vi.advanceTimersByTimeAsync(200);
    ws.serverSend(text(4)); // pushes the debounce on
    await vi.advanceTimersByTimeAsync(249);
    expect(acks(ws)).toEqual([2]);
    await vi.advanceTimersByTimeAsync(1);
    expect(acks(ws)).toEqual([2, 4]);
    // A frame without seq (pong) does not ask for an ack.
    ws.serverSend({ type: "CUSTOM", name: "pong", value: { t: 1 } });
    await vi.advanceTimersByTimeAsync(1000);
    expect(acks(ws)).toEqual([2, 4]);
  });

  it("acks at once after 256 KiB, at most every 100 ms, so a long catch-up never stalls or floods", async () => {
    setup(0);
    const ws = await opened();
    ws.serverSend(welcome({ window: 8_388_608, page: 1_048_576 }));
    const big = "z".repeat(60_000); // ≈ 60 KB per frame
    let seq = 0;
    for (let i = 0; i < 4; i++) ws.serverSend(text(++seq, big));
    expect(acks(ws)).toEqual([]);
    ws.serverSend(text(++seq, big)); // crosses 256 KiB
    expect(acks(ws)).toEqual([5]);
    // Another 256 KiB within 100 ms: the ack waits for the interval, then goes.
    for (let i = 0; i < 5; i++) ws.serverSend(text(++seq, big));
    expect(acks(ws)).toEqual([5]);
    await vi.advanceTimersByTimeAsync(100);
    expect(acks(ws)).toEqual([5, 10]);
    // A whole catch-up of 8 MiB arriving in 1 s: at most ~10 acks per second.
    for (let ms = 0; ms < 1000; ms += 10) {
      for (let i = 0; i < 2; i++) ws.serverSend(text(++seq, big));
      await vi.advanceTimersByTimeAsync(10);
    }
    const n = acks(ws).length;
    expect(n).toBeGreaterThanOrEqual(8);
    expect(n).toBeLessThanOrEqual(13);
    expect(acks(ws).at(-1)).toBeGreaterThan(seq - 10);
  });

  it("starts over on every connection: flow only if that welcome offers it", async () => {
    setup(0);
    const ws = await opened();
    ws.serverSend(welcome({ window: 8_388_608, page: 1_048_576 }));
    ws.serverSend({ type: "CUSTOM", name: "caught_up", value: { lastSeq: 0 } });
    expect(acks(ws)).toEqual([0]);
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    const again = await opened();
    again.serverSend(welcome());
    again.serverSend(text(1));
    again.serverSend({ type: "CUSTOM", name: "caught_up", value: { lastSeq: 1 } });
    await vi.advanceTimersByTimeAsync(1000);
    expect(acks(again)).toEqual([]);
  });

  it("counts UTF-8 bytes as the server does", () => {
    expect(utf8Bytes('{"a":"b"}')).toBe(9);
    expect(utf8Bytes("é€😀")).toBe(2 + 3 + 4);
    expect(ACK_BYTES).toBe(262_144);
  });
});
