// The connection store: what the indicator shows (connected / reconnecting n, next try at t /
// offline), fed by SessionSocket's status callbacks.

import { create } from "zustand";
import type { ConnectionSnapshot } from "../net/socket";

export interface ConnectionStore extends ConnectionSnapshot {
  /** Epoch ms when the current status began. */
  since: number;
  /** The socket has been open at least once since the session was opened. */
  everConnected: boolean;
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
    set({
      ...snapshot,
      since: prev.status === snapshot.status ? prev.since : Date.now(),
      everConnected: prev.everConnected || snapshot.status === "connected",
    });
  },
  reset() {
    set({ ...initial, since: Date.now(), everConnected: false });
  },
}));
