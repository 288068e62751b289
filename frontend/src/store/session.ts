// The session store: the reducer's view model in Zustand. Components select small slices
// (one message, one agent) so a streamed token re-renders only the message it belongs to.

import { create } from "zustand";
import {
  addClientError,
  beginHello,
  connectionLost,
  dismissError,
  dropPending,
  initialView,
  recordSent,
  reduceAll,
  resetForFullResync,
  type SessionView,
  type UiError,
} from "../protocol/reducer";
import type { ServerEvent, UserCommand } from "../protocol/types";

export interface SessionStore {
  view: SessionView;
  /** Applies a batch of server frames (one store update for the batch). */
  ingest(events: readonly ServerEvent[]): void;
  /** Start over for another (or no) session. */
  reset(sessionId: string | null): void;
  helloSent(): void;
  disconnected(): void;
  fullResync(): void;
  commandSent(command: UserCommand & { id: string }): void;
  commandDropped(id: string): void;
  dismissError(id: string): void;
  clientError(error: Omit<UiError, "resolved" | "dismissed">): void;
}

export const useSessionStore = create<SessionStore>()((set, get) => ({
  view: initialView(),
  ingest(events) {
    if (events.length === 0) return;
    const view = get().view;
    const next = reduceAll(view, events, Date.now());
    if (next !== view) set({ view: next });
  },
  reset(sessionId) {
    set({ view: initialView(sessionId) });
  },
  helloSent() {
    set({ view: beginHello(get().view) });
  },
  disconnected() {
    const view = get().view;
    const next = connectionLost(view);
    if (next !== view) set({ view: next });
  },
  fullResync() {
    set({ view: resetForFullResync(get().view) });
  },
  commandSent(command) {
    set({ view: recordSent(get().view, command, Date.now()) });
  },
  commandDropped(id) {
    set({ view: dropPending(get().view, id) });
  },
  dismissError(id) {
    set({ view: dismissError(get().view, id) });
  },
  clientError(error) {
    set({ view: addClientError(get().view, error) });
  },
}));
