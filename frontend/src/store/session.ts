// The session store: the reducer's view model in Zustand. Components select small slices
// (one message, one agent) so a streamed token re-renders only the message it belongs to.

import { createContext, useContext } from "react";
import { create, useStore, type StoreApi } from "zustand";
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

/**
 * Which session store the components below read. The live page uses the default (the live
 * store); the replay view provides its own store, so the same cards, conversation and artifacts
 * render a past point of the session without touching the live one.
 */
export const SessionStoreContext = createContext<StoreApi<SessionStore>>(useSessionStore);

/** The store in context (for `getState`/`subscribe` in effects). */
export function useSessionStoreApi(): StoreApi<SessionStore> {
  return useContext(SessionStoreContext);
}

/** Like `useSessionStore(selector)`, but reads the store in context (live or replay). */
export function useSessionView<T>(selector: (s: SessionStore) => T): T {
  return useStore(useContext(SessionStoreContext), selector);
}

/** A store that only ever holds a view set from outside: the replay's. */
export function createViewStore(view: SessionView): StoreApi<SessionStore> & { setView(view: SessionView): void } {
  const store = create<SessionStore>()(() => ({
    view,
    // The replay never takes frames or sends commands: these do nothing on purpose.
    ingest() {},
    reset() {},
    helloSent() {},
    disconnected() {},
    fullResync() {},
    commandSent() {},
    commandDropped() {},
    dismissError() {},
    clientError() {},
  }));
  return Object.assign(store, { setView: (next: SessionView) => store.setState({ view: next }) });
}
