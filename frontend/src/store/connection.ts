// The connection store: what the indicator shows (connected / reconnecting n, next try at t /
// offline), fed by SessionSocket's status callbacks.

import { create } from "zustand";
import type { ConnectionSnapshot } from "../net/socket";

/** A stretch of time this page had no live connection after it first had one; `to` null while it lasts. */
export interface Outage {
  from: number;
  to: number | null;
}

/** Outages kept (the oldest go first): enough for any session a person watches. */
const MAX_OUTAGES = 64;

/** Statuses in which the page hears nothing from the session but may again (not final, not closed by the page). */
const LOST = new Set<ConnectionSnapshot["status"]>(["connecting", "reconnecting", "offline"]);

export interface ConnectionStore extends ConnectionSnapshot {
  /** Epoch ms when the current status began. */
  since: number;
  /** The socket has been open at least once since the session was opened. */
  everConnected: boolean;
  /** Every time the connection was lost since it first opened, oldest first. */
  outages: Outage[];
  setSnapshot(snapshot: ConnectionSnapshot): void;
  reset(): void;
}

const initial: ConnectionSnapshot = {
  status: "closed",
  attempt: 0,
  nextRetryAt: null,
  lastClose: null,
  offlineReason: null,
};

export const useConnectionStore = create<ConnectionStore>()((set, get) => ({
  ...initial,
  since: Date.now(),
  everConnected: false,
  outages: [],
  setSnapshot(snapshot) {
    const prev = get();
    if (
      prev.status === snapshot.status &&
      prev.attempt === snapshot.attempt &&
      prev.nextRetryAt === snapshot.nextRetryAt &&
      prev.lastClose === snapshot.lastClose &&
      prev.offlineReason === snapshot.offlineReason
    ) {
      return;
    }
    const now = Date.now();
    let outages = prev.outages;
    const open = outages.at(-1)?.to === null;
    if (!open && prev.everConnected && LOST.has(snapshot.status)) {
      outages = [...outages, { from: now, to: null }].slice(-MAX_OUTAGES);
    } else if (open && !LOST.has(snapshot.status)) {
      outages = [...outages.slice(0, -1), { from: outages.at(-1)!.from, to: now }];
    }
    set({
      ...snapshot,
      since: prev.status === snapshot.status ? prev.since : now,
      everConnected: prev.everConnected || snapshot.status === "connected",
      outages,
    });
  },
  reset() {
    set({ ...initial, since: Date.now(), everConnected: false, outages: [] });
  },
}));

/** When the live connection was lost, while it is (the start of the open outage); else null. */
export function lostSince(outages: readonly Outage[]): number | null {
  const last = outages.at(-1);
  return last && last.to === null ? last.from : null;
}

/**
 * How much of [from, to] fell in outages: time the page could not see the session, which an
 * agent's clock leaves out (a server that was down did no work; one that was not is caught up
 * on reconnect, and its events carry their own times).
 */
export function outageWithin(outages: readonly Outage[], from: number, to: number): number {
  let total = 0;
  for (const o of outages) {
    const end = Math.min(o.to ?? to, to);
    const start = Math.max(o.from, from);
    if (end > start) total += end - start;
  }
  return total;
}

/** The page had a live connection and has lost it (not revoked, not gone, not closed by the page). */
export function useConnectionLost(): number | null {
  return useConnectionStore((s) => lostSince(s.outages));
}

/** The owner revoked the view link this page watches through (close 4403): what it can no longer do is hidden. */
export function useViewRevoked(): boolean {
  return useConnectionStore((s) => s.status === "revoked");
}
