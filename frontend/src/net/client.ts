// The session client: owns the one SessionSocket of the open session and wires it to the stores.
// Components call `sessionClient.send(...)`; they never touch the socket.
//
// - frames go into the session store in batches; after each batch the client answers what the
//   reducer asks for (a re-sync hello after a seq gap, a full replay after a failed patch);
// - user commands get an idempotency id and are only sent while the view is live (caught up);
//   commands still unanswered when the socket drops are re-sent with the same id after the
//   next caught_up (the server applies an id once and acks the repeat as a duplicate);
// - `sendWhenLive` holds a command until the view is live (start right after creating a session).

import { newCommandId } from "../lib/id";
import { tokenProtocols } from "../lib/token";
import { rejectionWords } from "../protocol/errors";
import type { ServerEvent, UserCommand } from "../protocol/types";
import { useConnectionStore } from "../store/connection";
import { useDraftStore } from "../store/draft";
import { useSessionStore } from "../store/session";
import { SessionSocket, socketUrl, type SocketOptions } from "./socket";

const RESEND_WINDOW_MS = 60_000;
const MAX_FULL_RESYNCS = 2;

export type SocketFactory = (
  url: string,
  callbacks: ConstructorParameters<typeof SessionSocket>[1],
  options: SocketOptions,
) => SessionSocket;

export class SessionClient {
  private socket: SessionSocket | null = null;
  private sessionId: string | null = null;
  private waiting: UserCommand[] = [];
  private resyncInFlight = false;
  private fullResyncs = 0;

  constructor(
    private readonly factory: SocketFactory = (url, callbacks, options) => new SessionSocket(url, callbacks, options),
    private readonly urlFor: (sessionId: string) => string = (id) => socketUrl(id),
  ) {}

  get currentSessionId(): string | null {
    return this.sessionId;
  }

  connect(sessionId: string): void {
    if (this.sessionId === sessionId && this.socket) return;
    this.disconnect();
    this.sessionId = sessionId;
    this.fullResyncs = 0;
    this.resyncInFlight = false;
    useSessionStore.getState().reset(sessionId);
    useConnectionStore.getState().reset();
    this.socket = this.factory(
      this.urlFor(sessionId),
      {
        lastSeq: () => useSessionStore.getState().view.lastSeq,
        onOpen: () => {
          this.resyncInFlight = false;
          useSessionStore.getState().helloSent();
        },
        onFrames: (events) => this.onFrames(events),
        onStatus: (snapshot) => {
          useConnectionStore.getState().setSnapshot(snapshot);
          if (snapshot.status !== "connected") useSessionStore.getState().disconnected();
        },
      },
      { protocols: tokenProtocols },
    );
  }

  disconnect(): void {
    this.socket?.close();
    this.socket = null;
    this.sessionId = null;
    this.waiting = [];
  }

  reconnectNow(): void {
    this.socket?.reconnect();
  }

  /** True when commands can go out now: socket open and the view caught up. */
  isLive(): boolean {
    return !!this.socket?.isOpen && useSessionStore.getState().view.sync === "live";
  }

  /**
   * Sends a user command with a fresh idempotency id. Returns the id, or null when not live
   * (nothing is sent, and the user is told why).
   */
  send(command: UserCommand): string | null {
    if (useSessionStore.getState().view.readOnly) {
      // The controls are hidden on a view-only link; should one slip through, say why nothing
      // happens instead of sending what the server can only refuse.
      const words = rejectionWords("read_only");
      notSent(command, "read_only", words.title, `Your ${command.type} was not sent: this page is a view-only link.`, words.next);
      return null;
    }
    if (!this.socket || !this.isLive()) {
      notSent(
        command,
        "not_connected",
        "Not connected",
        `Your ${command.type} was not sent because the page is not connected to the session right now.`,
        "The page reconnects by itself; try again once it says Connected.",
      );
      return null;
    }
    const id = newCommandId(command.type);
    const withId = { ...command, id } as UserCommand & { id: string };
    useSessionStore.getState().commandSent(withId);
    this.socket.send(withId);
    return id;
  }

  /** Sends now if live, otherwise as soon as the view has caught up. */
  sendWhenLive(command: UserCommand): void {
    if (this.isLive()) this.send(command);
    else this.waiting.push(command);
  }

  // -------------------------------------------------------------------------------------------

  private onFrames(events: ServerEvent[]): void {
    const store = useSessionStore.getState();
    store.ingest(events);
    if (events.some((e) => e.type === "CUSTOM" && e.name === "welcome")) this.resyncInFlight = false;
    if (events.some((e) => e.type === "CUSTOM" && e.name === "ack" && (e.value as { command?: unknown }).command === "start")) {
      useDraftStore.getState().clear();
    }

    const view = useSessionStore.getState().view;
    if (view.fullResyncNeeded && this.socket && this.fullResyncs < MAX_FULL_RESYNCS) {
      this.fullResyncs += 1;
      useSessionStore.getState().fullResync();
      this.resyncInFlight = true;
      this.socket.resync(0);
      useSessionStore.getState().helloSent();
      return;
    }
    if (view.resyncNeeded && this.socket && !this.resyncInFlight) {
      this.resyncInFlight = true;
      this.socket.resync(view.lastSeq);
      useSessionStore.getState().helloSent();
      return;
    }
    if (events.some((e) => e.type === "CUSTOM" && e.name === "caught_up") && view.sync === "live") {
      this.afterCaughtUp();
    }
  }

  private afterCaughtUp(): void {
    if (!this.socket) return;
    const now = Date.now();
    for (const pending of Object.values(useSessionStore.getState().view.pending)) {
      if (now - pending.sentAt <= RESEND_WINDOW_MS) this.socket.send({ ...pending.command, id: pending.id });
      else useSessionStore.getState().commandDropped(pending.id);
    }
    const waiting = this.waiting;
    this.waiting = [];
    for (const command of waiting) this.send(command);
  }
}

export const sessionClient = new SessionClient();

/** Tells the user a command was not sent, and why. */
function notSent(command: UserCommand, code: string, title: string, message: string, next: string): void {
  useSessionStore.getState().clientError({
    id: `client-${code}-${Date.now()}`,
    source: "client",
    code,
    title,
    message,
    next,
    stage: "stage" in command ? command.stage : null,
    retryAt: null,
    attempt: null,
    details: JSON.stringify(command, null, 2),
    at: Date.now(),
  });
}
