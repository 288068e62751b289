// The session WebSocket: partysocket's ReconnectingWebSocket does the reconnecting (backoff,
// connection timeout, retry limit); this wrapper adds the BotArmy contract on top:
//
// - `hello {lastSeq}` is the first frame on every (re)connection, with the highest seq applied;
// - a plain-text `ping` every 25 s keeps the socket from the server's 90 s idle sweep (the runtime
//   answers a plain `pong`, which is ignored);
// - incoming frames are parsed and handed over in batches (one store update per batch, not one
//   per token), flushed before any status change so ordering is preserved;
// - an honest status: connecting / connected / reconnecting (attempt n, next try at t) / offline.
//
// Commands are never queued while disconnected (maxEnqueuedMessages: 0): partysocket would flush
// a queue *before* our hello, which the server refuses. The caller gets `false` and says so.

import ReconnectingWebSocket from "partysocket/ws";
import { LIMITS, parseServerFrame, type Command, type ServerEvent } from "../protocol/types";

export type ConnectionStatus = "connecting" | "connected" | "reconnecting" | "offline" | "closed";

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

export interface SocketOptions {
  /** WebSocket constructor (tests pass a fake). */
  WebSocket?: unknown;
  /** Sec-WebSocket-Protocol values (the access token travels here, never in the URL). */
  protocols?: () => string[] | null;
  minReconnectionDelay?: number;
  maxReconnectionDelay?: number;
  reconnectionDelayGrowFactor?: number;
  connectionTimeout?: number;
  maxRetries?: number;
  pingIntervalMs?: number;
  /** How long frames are collected before one store update; 0 hands each frame over at once. */
  batchMs?: number;
  now?: () => number;
}

export const DEFAULT_SOCKET_OPTIONS = {
  // A little jitter per page so many tabs do not reconnect in lockstep after a deploy.
  minReconnectionDelay: 1000 + Math.floor(Math.random() * 500),
  maxReconnectionDelay: 15_000,
  reconnectionDelayGrowFactor: 1.6,
  connectionTimeout: 5000,
  maxRetries: 40,
  pingIntervalMs: LIMITS.pingIntervalMs,
  batchMs: 16,
} as const;

/** The delay partysocket waits before attempt `retryCount` (same formula as its _getNextDelay). */
export function reconnectDelay(
  retryCount: number,
  opts: { minReconnectionDelay: number; maxReconnectionDelay: number; reconnectionDelayGrowFactor: number },
): number {
  if (retryCount <= 0) return 0;
  const delay = opts.minReconnectionDelay * opts.reconnectionDelayGrowFactor ** (retryCount - 1);
  return Math.min(delay, opts.maxReconnectionDelay);
}

/** Builds the ws(s):// URL of a session's socket on the page's own origin. */
export function socketUrl(sessionId: string, location: Pick<Location, "protocol" | "host"> = window.location): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/sessions/${encodeURIComponent(sessionId)}/ws`;
}

export class SessionSocket {
  private rws: ReconnectingWebSocket;
  private readonly WebSocketImpl: unknown;
  private readonly protocols: (() => string[] | null) | undefined;
  private readonly opts: Required<Omit<SocketOptions, "WebSocket" | "protocols">>;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
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

  constructor(
    private readonly url: string,
    private readonly callbacks: SocketCallbacks,
    options: SocketOptions = {},
  ) {
    this.opts = {
      minReconnectionDelay: options.minReconnectionDelay ?? DEFAULT_SOCKET_OPTIONS.minReconnectionDelay,
      maxReconnectionDelay: options.maxReconnectionDelay ?? DEFAULT_SOCKET_OPTIONS.maxReconnectionDelay,
      reconnectionDelayGrowFactor:
        options.reconnectionDelayGrowFactor ?? DEFAULT_SOCKET_OPTIONS.reconnectionDelayGrowFactor,
      connectionTimeout: options.connectionTimeout ?? DEFAULT_SOCKET_OPTIONS.connectionTimeout,
      maxRetries: options.maxRetries ?? DEFAULT_SOCKET_OPTIONS.maxRetries,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULT_SOCKET_OPTIONS.pingIntervalMs,
      batchMs: options.batchMs ?? DEFAULT_SOCKET_OPTIONS.batchMs,
      now: options.now ?? Date.now,
    };
    this.WebSocketImpl = options.WebSocket;
    this.protocols = options.protocols;
    this.rws = this.open();
    this.emit();
  }

  private open(): ReconnectingWebSocket {
    const protocols = this.protocols;
    const rws = new ReconnectingWebSocket(this.url, protocols ? () => protocols() : undefined, {
      WebSocket: this.WebSocketImpl,
      minReconnectionDelay: this.opts.minReconnectionDelay,
      maxReconnectionDelay: this.opts.maxReconnectionDelay,
      reconnectionDelayGrowFactor: this.opts.reconnectionDelayGrowFactor,
      connectionTimeout: this.opts.connectionTimeout,
      maxRetries: this.opts.maxRetries,
      maxEnqueuedMessages: 0,
    });
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

  /** Sends a command now; false when the socket is not open (nothing is queued). */
  send(command: Command): boolean {
    if (!this.isOpen) return false;
    this.rws.send(JSON.stringify(command));
    return true;
  }

  /** Sends hello again on the open socket (re-sync after a gap). */
  resync(lastSeq: number): boolean {
    return this.send({ type: "hello", lastSeq });
  }

  /**
   * "Reconnect now": connects at once with a fresh attempt count. partysocket's own reconnect()
   * cannot cut short a backoff wait already in progress, so the instance is replaced instead.
   */
  reconnect(): void {
    if (this.closedByUs) return;
    this.stopPing();
    this.flush();
    this.detach(this.rws, 4000, "reconnect requested");
    this.update({ status: "connecting", attempt: 0, nextRetryAt: null, offlineReason: null });
    this.rws = this.open();
  }

  /** The browser says the network is gone: say so (partysocket keeps trying in the background). */
  markNoNetwork(): void {
    if (this.snapshot.status !== "connected") this.update({ status: "offline", offlineReason: "no_network" });
  }

  /** Closes for good (the page left the session). */
  close(): void {
    this.closedByUs = true;
    this.stopPing();
    this.flush();
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

  private readonly handleOpen = (): void => {
    this.flush();
    this.lastRetryCount = this.rws.retryCount;
    this.rws.send(JSON.stringify({ type: "hello", lastSeq: this.callbacks.lastSeq() } satisfies Command));
    this.startPing();
    this.update({ status: "connected", attempt: 0, nextRetryAt: null, offlineReason: null });
    this.callbacks.onOpen?.();
  };

  private readonly handleMessage = (event: MessageEvent): void => {
    const frame = parseServerFrame(event.data);
    if (!frame) return;
    this.queue.push(frame);
    if (this.opts.batchMs <= 0) {
      this.flush();
    } else if (this.batchTimer === undefined) {
      this.batchTimer = setTimeout(() => {
        this.batchTimer = undefined;
        this.flush();
      }, this.opts.batchMs);
    }
  };

  private readonly handleClose = (event: { code: number; reason: string }): void => {
    this.stopPing();
    this.flush();
    if (this.closedByUs) return;
    const retryCount = this.rws.retryCount;
    const scheduled = this.rws.shouldReconnect && retryCount !== this.lastRetryCount;
    this.lastRetryCount = retryCount;
    const lastClose = { code: event.code, reason: event.reason, at: this.opts.now() };
    if (!scheduled) {
      this.update({ status: "offline", nextRetryAt: null, lastClose, offlineReason: "retries_exhausted" });
      return;
    }
    const delay = reconnectDelay(retryCount, this.opts);
    const offline = typeof navigator !== "undefined" && navigator.onLine === false;
    this.update({
      status: offline ? "offline" : retryCount === 0 ? "connecting" : "reconnecting",
      attempt: retryCount,
      nextRetryAt: this.opts.now() + delay,
      lastClose,
      offlineReason: offline ? "no_network" : null,
    });
  };

  private startPing(): void {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (this.isOpen) this.rws.send("ping");
    }, this.opts.pingIntervalMs);
  }

  private stopPing(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private update(patch: Partial<ConnectionSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...patch };
    this.emit();
  }

  private emit(): void {
    this.callbacks.onStatus(this.snapshot);
  }
}
