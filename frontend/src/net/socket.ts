// The session WebSocket: partysocket's ReconnectingWebSocket does the reconnecting (backoff,
// connection timeout, retry limit); this wrapper adds the BotArmy contract on top:
//
// - `hello {lastSeq, epoch}` is the first frame on every (re)connection, with the highest seq
//   applied and the epoch that numbering belongs to (the last welcome's, adopted once its
//   catch-up is done; see docs/protocol.md, "Epochs");
// - incoming frames are parsed and handed over in batches (one store update per batch, not one
//   per token), flushed before any status change so ordering is preserved;
// - an honest status: connecting / connected / reconnecting (attempt n, next try at t) /
//   offline / gone (the session was deleted or expired: close 4404, no more tries) / revoked
//   (a view link its owner revoked: close 4403, no more tries);
// - a heartbeat, so a socket that stays open while nothing flows (dead Wi-Fi, a laptop that
//   slept) is noticed within seconds instead of minutes (timings below and in docs/protocol.md);
// - the browser's `offline` / `online` events: Offline at once and no tries while offline, a
//   fresh connection the moment the network is back;
// - flow-control acks when the server's `welcome` offers them (`flow`), nothing otherwise.
//
// Heartbeat (docs/protocol.md, "Client behaviour: heartbeat, acks"):
//   while the page is visible, `{"type":"ping"}` goes out every 2 s (HEARTBEAT_MS); the server
//   answers `CUSTOM pong`. Every frame of any kind counts as life, so while a run streams the
//   tokens themselves are the stall watch and the pong is just one more frame. The socket is
//   declared dead when nothing at all arrived for 3.5 s (DEADLINE_MS) and the latest ping has
//   been unanswered for at least 1.5 s (PONG_GRACE_MS): the status turns Reconnecting at once,
//   the socket is dropped (4901) without waiting for a closing handshake that cannot complete, and a
//   new one connects (hello {lastSeq} makes the catch-up exact). Worst case from the last frame
//   to Reconnecting: 3.5 s. While the page is hidden (timers are throttled there) a ping goes
//   every 20 s (HIDDEN_HEARTBEAT_MS) and a ping must go unanswered for the whole 3.5 s; on
//   becoming visible a ping goes out at once. Cost: 0.5 frames/s per visible tab, far below the
//   server's 20 frames/s command limit, and the JSON ping (unlike the runtime-answered
//   plain-text `ping`, which is no longer sent) proves the session object itself answers; it
//   also keeps the socket clear of the server's 90 s idle sweep.
//
// Commands are never queued while disconnected (maxEnqueuedMessages: 0): partysocket would flush
// a queue *before* our hello, which the server refuses. The caller gets `false` and says so.

import ReconnectingWebSocket from "partysocket/ws";
import { parseServerFrame, type Command, type FlowValue, type ServerEvent } from "../protocol/types";

/** Ping cadence while the page is visible. */
export const HEARTBEAT_MS = 2000;
/** Ping cadence while the page is hidden (browsers throttle timers there). */
export const HIDDEN_HEARTBEAT_MS = 20_000;
/** Silence (no frame of any kind) after which a visible page's socket counts as dead. */
export const DEADLINE_MS = 3500;
/** The least time a ping is given to be answered before the socket counts as dead. */
export const PONG_GRACE_MS = 1500;
/** Acks (flow control): at once after this many bytes since the last ack… */
export const ACK_BYTES = 256 * 1024;
/** …otherwise this long after the last seq-bearing frame… */
export const ACK_DEBOUNCE_MS = 250;
/** …and never more often than this (keeps a fast local catch-up under the frame rate limit). */
export const ACK_MIN_INTERVAL_MS = 100;
/** Close codes the server uses (docs/protocol.md). */
export const CLOSE_TOO_SLOW = 4008;
export const CLOSE_SESSION_GONE = 4404;
export const CLOSE_VIEW_REVOKED = 4403;
/** Close codes this client uses when it drops a socket itself (49xx: clear of the server's). */
export const CLOSE_RECONNECT = 4900;
export const CLOSE_HEARTBEAT = 4901;
export const CLOSE_OFFLINE = 4902;

export type ConnectionStatus = "connecting" | "connected" | "reconnecting" | "offline" | "gone" | "revoked" | "closed";

/** Close codes after which no try can help: the session is gone, or this view link was revoked. */
function isFinalClose(code: number): boolean {
  return code === CLOSE_SESSION_GONE || code === CLOSE_VIEW_REVOKED;
}

/** Statuses the socket never leaves by itself (nor by "reconnect now" or the network coming back). */
function isFinal(status: ConnectionStatus): boolean {
  return status === "gone" || status === "revoked";
}

export interface ConnectionSnapshot {
  status: ConnectionStatus;
  /** 1 for the first retry after a drop, 2 for the next, …; 0 while connected. */
  attempt: number;
  /** Epoch ms of the next connection attempt while reconnecting. */
  nextRetryAt: number | null;
  lastClose: { code: number; reason: string; at: number } | null;
  /** Why we are offline: the retry limit was reached or the browser has no network. */
  offlineReason: "retries_exhausted" | "no_network" | null;
}

export interface SocketCallbacks {
  /** Highest seq applied so far, for `hello`. */
  lastSeq(): number;
  /** Called right after hello went out on a fresh connection. */
  onOpen?(): void;
  /** Parsed frames, in arrival order. */
  onFrames(events: ServerEvent[]): void;
  onStatus(snapshot: ConnectionSnapshot): void;
}

/** Where the socket learns about the network and the page's visibility (tests pass a fake). */
export interface SocketEnvironment {
  /** Receives `online` / `offline` (window) and `visibilitychange` (document) events. */
  addEventListener(type: "online" | "offline" | "visibilitychange", listener: () => void): void;
  removeEventListener(type: "online" | "offline" | "visibilitychange", listener: () => void): void;
  isOnline(): boolean;
  isVisible(): boolean;
}

/** The real browser: window's online/offline, document's visibility. Null outside a browser. */
export function browserEnvironment(): SocketEnvironment | null {
  if (typeof window === "undefined" || typeof document === "undefined") return null;
  const targetOf = (type: string): EventTarget => (type === "visibilitychange" ? document : window);
  return {
    addEventListener: (type, listener) => targetOf(type).addEventListener(type, listener),
    removeEventListener: (type, listener) => targetOf(type).removeEventListener(type, listener),
    isOnline: () => typeof navigator === "undefined" || navigator.onLine !== false,
    isVisible: () => document.visibilityState !== "hidden",
  };
}

export interface SocketOptions {
  /** WebSocket constructor (tests pass a fake). */
  WebSocket?: unknown;
  /** Network and visibility events; default the browser's (null: none). */
  environment?: SocketEnvironment | null;
  /** Sec-WebSocket-Protocol values (the access token travels here, never in the URL). */
  protocols?: () => string[] | null;
  minReconnectionDelay?: number;
  /** For this long after a drop (counted in tries of minReconnectionDelay each) every try waits minReconnectionDelay; backoff starts after. */
  fastRetryWindowMs?: number;
  maxReconnectionDelay?: number;
  reconnectionDelayGrowFactor?: number;
  connectionTimeout?: number;
  maxRetries?: number;
  heartbeatMs?: number;
  hiddenHeartbeatMs?: number;
  deadlineMs?: number;
  pongGraceMs?: number;
  /** How long frames are collected before one store update; 0 hands each frame over at once. */
  batchMs?: number;
  now?: () => number;
}

export const DEFAULT_SOCKET_OPTIONS = {
  // Every 2–2.5 s for the first minute after a drop (a little jitter per page, so many tabs do not
  // reconnect in lockstep after a deploy): a server that comes back is found within 2.5 s. Then
  // full backoff, up to 15 s between tries.
  minReconnectionDelay: 2000 + Math.floor(Math.random() * 500),
  fastRetryWindowMs: 60_000,
  maxReconnectionDelay: 15_000,
  reconnectionDelayGrowFactor: 1.6,
  connectionTimeout: 5000,
  maxRetries: 60,
  heartbeatMs: HEARTBEAT_MS,
  hiddenHeartbeatMs: HIDDEN_HEARTBEAT_MS,
  deadlineMs: DEADLINE_MS,
  pongGraceMs: PONG_GRACE_MS,
  batchMs: 16,
} as const;

/**
 * The wait before try `retryCount` after a drop: minReconnectionDelay for the tries that fit in
 * the fast window (the first minute), then growing by reconnectionDelayGrowFactor per try up to
 * maxReconnectionDelay. partysocket is handed this through a getter (see `open`), so what the
 * page shows ("next try in …") is what it does.
 */
export function reconnectDelay(
  retryCount: number,
  opts: { minReconnectionDelay: number; maxReconnectionDelay: number; reconnectionDelayGrowFactor: number; fastRetryWindowMs?: number },
): number {
  if (retryCount <= 0) return 0;
  const fast = Math.ceil((opts.fastRetryWindowMs ?? 0) / opts.minReconnectionDelay);
  if (retryCount <= fast) return Math.min(opts.minReconnectionDelay, opts.maxReconnectionDelay);
  const delay = opts.minReconnectionDelay * opts.reconnectionDelayGrowFactor ** (retryCount - Math.max(fast, 1));
  return Math.min(delay, opts.maxReconnectionDelay);
}

/** Builds the ws(s):// URL of a session's socket on the page's own origin. */
export function socketUrl(sessionId: string, location: Pick<Location, "protocol" | "host"> = window.location): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/sessions/${encodeURIComponent(sessionId)}/ws`;
}

/** UTF-8 size of a text frame (the server counts bytes); cheap for the usual ASCII JSON. */
export function utf8Bytes(text: string): number {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? text.length : new TextEncoder().encode(text).byteLength;
}

function flowOf(value: unknown): FlowValue | null {
  const flow = (value as { flow?: unknown } | null)?.flow as Partial<FlowValue> | undefined;
  if (!flow || typeof flow !== "object") return null;
  if (typeof flow.window !== "number" || typeof flow.page !== "number") return null;
  if (!(flow.window > 0) || !(flow.page > 0)) return null;
  return { window: flow.window, page: flow.page };
}

/** welcome.epoch when it is a whole number (a server before epochs sends none). */
function epochOf(value: unknown): number | null {
  const epoch = (value as { epoch?: unknown } | null)?.epoch;
  return typeof epoch === "number" && Number.isSafeInteger(epoch) && epoch >= 0 ? epoch : null;
}

export class SessionSocket {
  private rws: ReconnectingWebSocket;
  private readonly WebSocketImpl: unknown;
  private readonly protocols: (() => string[] | null) | undefined;
  private readonly env: SocketEnvironment | null;
  private readonly opts: Required<Omit<SocketOptions, "WebSocket" | "protocols" | "environment">>;
  private batchTimer: ReturnType<typeof setTimeout> | undefined;
  private queue: ServerEvent[] = [];
  private lastRetryCount = 0;
  private snapshot: ConnectionSnapshot = {
    status: "connecting",
    attempt: 0,
    nextRetryAt: null,
    lastClose: null,
    offlineReason: null,
  };
  private closedByUs = false;
  /** The browser said `offline`: no socket, no tries, until `online`. */
  private suspended = false;

  // Heartbeat (per connection).
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private watchTimer: ReturnType<typeof setTimeout> | undefined;
  private lastFrameAt = 0;
  /** When the oldest ping still unanswered (no frame since) went out; null when none is. */
  private pingSentAt: number | null = null;

  // Flow-control acks (per connection; only when welcome offered `flow`).
  private flow: FlowValue | null = null;
  private bytesSinceAck = 0;
  private lastAckAt = 0;
  private lastAckedSeq = -1;
  private lastSeqFrameAt = 0;
  // The epoch of the seqs the page holds, and the one the catch-up in progress moves to.
  private epoch: number | null = null;
  private welcomeEpoch: number | null = null;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private ackTimerUrgent = false;

  constructor(
    private readonly url: string,
    private readonly callbacks: SocketCallbacks,
    options: SocketOptions = {},
  ) {
    this.opts = {
      minReconnectionDelay: options.minReconnectionDelay ?? DEFAULT_SOCKET_OPTIONS.minReconnectionDelay,
      fastRetryWindowMs: options.fastRetryWindowMs ?? DEFAULT_SOCKET_OPTIONS.fastRetryWindowMs,
      maxReconnectionDelay: options.maxReconnectionDelay ?? DEFAULT_SOCKET_OPTIONS.maxReconnectionDelay,
      reconnectionDelayGrowFactor:
        options.reconnectionDelayGrowFactor ?? DEFAULT_SOCKET_OPTIONS.reconnectionDelayGrowFactor,
      connectionTimeout: options.connectionTimeout ?? DEFAULT_SOCKET_OPTIONS.connectionTimeout,
      maxRetries: options.maxRetries ?? DEFAULT_SOCKET_OPTIONS.maxRetries,
      heartbeatMs: options.heartbeatMs ?? DEFAULT_SOCKET_OPTIONS.heartbeatMs,
      hiddenHeartbeatMs: options.hiddenHeartbeatMs ?? DEFAULT_SOCKET_OPTIONS.hiddenHeartbeatMs,
      deadlineMs: options.deadlineMs ?? DEFAULT_SOCKET_OPTIONS.deadlineMs,
      pongGraceMs: options.pongGraceMs ?? DEFAULT_SOCKET_OPTIONS.pongGraceMs,
      batchMs: options.batchMs ?? DEFAULT_SOCKET_OPTIONS.batchMs,
      now: options.now ?? Date.now,
    };
    this.WebSocketImpl = options.WebSocket;
    this.protocols = options.protocols;
    this.env = options.environment === undefined ? browserEnvironment() : options.environment;
    this.env?.addEventListener("online", this.handleOnline);
    this.env?.addEventListener("offline", this.handleOffline);
    this.env?.addEventListener("visibilitychange", this.handleVisibility);
    if (this.env && !this.env.isOnline()) {
      // No network now: say so and wait for `online` (a try would only fail).
      this.suspended = true;
      this.rws = this.open({ startClosed: true });
      this.snapshot = { ...this.snapshot, status: "offline", offlineReason: "no_network" };
    } else {
      this.rws = this.open();
    }
    this.emit();
  }

  private open({ startClosed = false }: { startClosed?: boolean } = {}): ReconnectingWebSocket {
    const protocols = this.protocols;
    const opts = this.opts;
    let self: ReconnectingWebSocket | null = null;
    const rws = new ReconnectingWebSocket(this.url, protocols ? () => protocols() : undefined, {
      WebSocket: this.WebSocketImpl,
      // partysocket waits min × grow^(n−1), reading its options at each try: with grow 1, the
      // getter makes that wait reconnectDelay(n), the schedule above.
      get minReconnectionDelay() {
        return reconnectDelay(Math.max(1, self?.retryCount ?? 1), opts);
      },
      maxReconnectionDelay: opts.maxReconnectionDelay,
      reconnectionDelayGrowFactor: 1,
      connectionTimeout: this.opts.connectionTimeout,
      maxRetries: this.opts.maxRetries,
      maxEnqueuedMessages: 0,
      startClosed,
      // The session was deleted or expired, or the view link revoked: trying again cannot help.
      shouldReconnectOnClose: (event: { code: number }) => !isFinalClose(event.code),
    });
    self = rws;
    rws.addEventListener("open", this.handleOpen);
    rws.addEventListener("message", this.handleMessage);
    rws.addEventListener("close", this.handleClose);
    this.lastRetryCount = 0;
    return rws;
  }

  private detach(rws: ReconnectingWebSocket, code: number, reason: string): void {
    rws.removeEventListener("open", this.handleOpen);
    rws.removeEventListener("message", this.handleMessage);
    rws.removeEventListener("close", this.handleClose);
    rws.close(code, reason);
  }

  get status(): ConnectionSnapshot {
    return this.snapshot;
  }

  get isOpen(): boolean {
    return this.rws.readyState === ReconnectingWebSocket.OPEN;
  }

  /** The server offered flow control on this connection (acks are being sent). */
  get flowControl(): FlowValue | null {
    return this.flow;
  }

  /** Sends a command now; false when the socket is not open (nothing is queued). */
  send(command: Command): boolean {
    if (!this.isOpen) return false;
    this.rws.send(JSON.stringify(command));
    return true;
  }

  /** Sends hello again on the open socket (re-sync after a gap). */
  resync(lastSeq: number): boolean {
    return this.send(this.hello(lastSeq));
  }

  private hello(lastSeq: number): Command {
    return this.epoch === null ? { type: "hello", lastSeq } : { type: "hello", lastSeq, epoch: this.epoch };
  }

  /**
   * "Reconnect now": connects at once with a fresh attempt count. partysocket's own reconnect()
   * cannot cut short a backoff wait already in progress, so the instance is replaced instead.
   */
  reconnect(): void {
    if (this.closedByUs || isFinal(this.snapshot.status)) return;
    this.replace(CLOSE_RECONNECT, "reconnect requested", { status: "connecting", attempt: 0, nextRetryAt: null, offlineReason: null });
  }

  /** Closes for good (the page left the session). */
  close(): void {
    this.closedByUs = true;
    this.env?.removeEventListener("online", this.handleOnline);
    this.env?.removeEventListener("offline", this.handleOffline);
    this.env?.removeEventListener("visibilitychange", this.handleVisibility);
    this.endConnection();
    this.detach(this.rws, 1000, "page closed");
    this.update({ status: "closed", nextRetryAt: null });
  }

  /** Hands queued frames to the store now. */
  flush(): void {
    if (this.batchTimer !== undefined) {
      clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
    }
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.callbacks.onFrames(batch);
  }

  // -------------------------------------------------------------------------------------------

  /** Drops the current socket (without waiting for a closing handshake) and opens a new one. */
  private replace(code: number, reason: string, status: Partial<ConnectionSnapshot>): void {
    this.suspended = false;
    this.endConnection();
    this.detach(this.rws, code, reason);
    this.update(status);
    this.rws = this.open();
  }

  /** Stops the per-connection timers and hands over what arrived. */
  private endConnection(): void {
    this.stopHeartbeat();
    this.clearAckTimer();
    this.flush();
    this.flow = null;
  }

  private readonly handleOpen = (): void => {
    this.flush();
    this.lastRetryCount = this.rws.retryCount;
    this.flow = null;
    this.bytesSinceAck = 0;
    this.lastAckedSeq = -1;
    this.lastAckAt = 0;
    this.welcomeEpoch = null;
    this.rws.send(JSON.stringify(this.hello(this.callbacks.lastSeq())));
    this.lastFrameAt = this.opts.now();
    this.startHeartbeat();
    this.update({ status: "connected", attempt: 0, nextRetryAt: null, offlineReason: null });
    this.callbacks.onOpen?.();
  };

  private readonly handleMessage = (event: MessageEvent): void => {
    const now = this.opts.now();
    this.lastFrameAt = now;
    this.pingSentAt = null;
    const data: unknown = event.data;
    if (typeof data === "string") this.bytesSinceAck += utf8Bytes(data);
    const frame = parseServerFrame(data);
    if (frame) {
      this.queue.push(frame);
      if (frame.type === "CUSTOM" && frame.name === "welcome") {
        this.flow = flowOf(frame.value);
        this.welcomeEpoch = epochOf(frame.value);
      }
    }
    const caughtUp = frame?.type === "CUSTOM" && frame.name === "caught_up";
    // From here on the seqs the page holds are numbered in the welcome's epoch.
    if (caughtUp && this.welcomeEpoch !== null) this.epoch = this.welcomeEpoch;
    if (this.opts.batchMs <= 0 || caughtUp) {
      this.flush();
    } else if (frame && this.batchTimer === undefined) {
      this.batchTimer = setTimeout(() => {
        this.batchTimer = undefined;
        this.flush();
      }, this.opts.batchMs);
    }
    if (!this.flow) return;
    if (caughtUp) {
      this.sendAck(true);
      return;
    }
    if (typeof frame?.seq === "number") this.lastSeqFrameAt = now;
    if (this.bytesSinceAck >= ACK_BYTES && now - this.lastAckAt >= ACK_MIN_INTERVAL_MS) {
      this.sendAck(true);
    } else if (this.bytesSinceAck >= ACK_BYTES || typeof frame?.seq === "number") {
      this.scheduleAck();
    }
  };

  private readonly handleClose = (event: { code: number; reason: string }): void => {
    this.endConnection();
    if (this.closedByUs) return;
    const retryCount = this.rws.retryCount;
    const scheduled = this.rws.shouldReconnect && retryCount !== this.lastRetryCount;
    this.lastRetryCount = retryCount;
    const lastClose = { code: event.code, reason: event.reason, at: this.opts.now() };
    if (isFinalClose(event.code)) {
      const status = event.code === CLOSE_VIEW_REVOKED ? "revoked" : "gone";
      this.update({ status, attempt: 0, nextRetryAt: null, lastClose, offlineReason: null });
      return;
    }
    if (!scheduled) {
      this.update({ status: "offline", nextRetryAt: null, lastClose, offlineReason: "retries_exhausted" });
      return;
    }
    const delay = reconnectDelay(retryCount, this.opts);
    this.update({
      status: retryCount === 0 ? "connecting" : "reconnecting",
      attempt: retryCount,
      nextRetryAt: this.opts.now() + delay,
      lastClose,
      offlineReason: null,
    });
  };

  // Network and visibility -------------------------------------------------------------------

  private readonly handleOffline = (): void => {
    if (this.closedByUs || isFinal(this.snapshot.status)) return;
    this.suspended = true;
    this.endConnection();
    this.detach(this.rws, CLOSE_OFFLINE, "browser offline");
    this.update({ status: "offline", attempt: 0, nextRetryAt: null, offlineReason: "no_network" });
  };

  private readonly handleOnline = (): void => {
    if (this.closedByUs || isFinal(this.snapshot.status)) return;
    if (this.snapshot.status === "connected" && !this.suspended) {
      // Still open (a spurious event, or a network switch): make it prove itself now.
      this.ping();
      return;
    }
    this.replace(CLOSE_RECONNECT, "network back", { status: "connecting", attempt: 0, nextRetryAt: null, offlineReason: null });
  };

  private readonly handleVisibility = (): void => {
    if (!this.isOpen || this.heartbeatTimer === undefined) return;
    const waiting = this.pingSentAt;
    this.startHeartbeat();
    this.pingSentAt = waiting;
    this.armWatch();
    // Back from the background (perhaps from sleep): check the socket at once.
    if (this.visible()) this.ping();
  };

  private visible(): boolean {
    return this.env?.isVisible() ?? true;
  }

  // Heartbeat --------------------------------------------------------------------------------

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const every = this.visible() ? this.opts.heartbeatMs : this.opts.hiddenHeartbeatMs;
    this.heartbeatTimer = setInterval(() => this.ping(), every);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    if (this.watchTimer !== undefined) clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    this.pingSentAt = null;
  }

  private ping(): void {
    if (!this.isOpen) return;
    this.rws.send(JSON.stringify({ type: "ping" } satisfies Command));
    this.pingSentAt ??= this.opts.now();
    this.armWatch();
  }

  /** When the socket counts as dead if nothing arrives before then (null: no ping waiting). */
  private deadAt(): number | null {
    if (this.pingSentAt === null) return null;
    const visible = this.visible();
    const grace = visible ? this.opts.pongGraceMs : this.opts.deadlineMs;
    const silence = visible ? this.lastFrameAt + this.opts.deadlineMs : 0;
    return Math.max(silence, this.pingSentAt + grace);
  }

  private armWatch(): void {
    if (this.watchTimer !== undefined) clearTimeout(this.watchTimer);
    const at = this.deadAt();
    if (at === null) {
      this.watchTimer = undefined;
      return;
    }
    this.watchTimer = setTimeout(this.checkAlive, Math.max(0, at - this.opts.now()));
  }

  private readonly checkAlive = (): void => {
    this.watchTimer = undefined;
    const at = this.deadAt();
    if (at === null || !this.isOpen) return;
    if (this.opts.now() < at) {
      this.armWatch();
      return;
    }
    // Nothing came back: the path to the server is dead even though the socket looks open.
    const silentMs = this.opts.now() - this.lastFrameAt;
    this.replace(CLOSE_HEARTBEAT, "no answer to ping", {
      status: "reconnecting",
      attempt: 1,
      nextRetryAt: this.opts.now(),
      lastClose: { code: CLOSE_HEARTBEAT, reason: `nothing received for ${(silentMs / 1000).toFixed(1)} s`, at: this.opts.now() },
      offlineReason: null,
    });
  };

  // Flow-control acks ------------------------------------------------------------------------

  private scheduleAck(): void {
    // A debounce timer already waiting is moved up once the byte threshold is crossed.
    const urgent = this.bytesSinceAck >= ACK_BYTES;
    if (this.ackTimer !== undefined && (!urgent || this.ackTimerUrgent)) return;
    this.clearAckTimer();
    this.ackTimerUrgent = urgent;
    this.ackTimer = setTimeout(this.ackDue, this.ackDelay());
  }

  private ackDelay(): number {
    const now = this.opts.now();
    const due = this.bytesSinceAck >= ACK_BYTES ? now : this.lastSeqFrameAt + ACK_DEBOUNCE_MS;
    return Math.max(0, due - now, this.lastAckAt + ACK_MIN_INTERVAL_MS - now);
  }

  private readonly ackDue = (): void => {
    this.ackTimer = undefined;
    if (!this.flow || !this.isOpen) return;
    const wait = this.ackDelay();
    if (wait > 0) {
      this.ackTimerUrgent = this.bytesSinceAck >= ACK_BYTES;
      this.ackTimer = setTimeout(this.ackDue, wait);
      return;
    }
    this.sendAck(this.bytesSinceAck >= ACK_BYTES);
  };

  private clearAckTimer(): void {
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  /** `{"type":"ack","seq":N}` with N the highest seq applied (frames are handed over first). */
  private sendAck(force: boolean): void {
    this.flush();
    this.clearAckTimer();
    const seq = this.callbacks.lastSeq();
    if (!force && seq <= this.lastAckedSeq) return;
    if (!this.send({ type: "ack", seq })) return;
    this.lastAckedSeq = seq;
    this.lastAckAt = this.opts.now();
    this.bytesSinceAck = 0;
  }

  private update(patch: Partial<ConnectionSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...patch };
    this.emit();
  }

  private emit(): void {
    this.callbacks.onStatus(this.snapshot);
  }
}
