// One shared clock for every live timer and countdown on the page, so the agent card and the
// error banner never disagree about "next try in N s". It ticks only while someone listens.

import { createContext, useContext, useSyncExternalStore } from "react";

const TICK_MS = 250;
const listeners = new Set<() => void>();
let now = Date.now();
let timer: ReturnType<typeof setInterval> | undefined;

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  if (timer === undefined) {
    now = Date.now();
    timer = setInterval(() => {
      now = Date.now();
      for (const l of listeners) l();
    }, TICK_MS);
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

const noop = () => () => undefined;
const snapshot = () => now;

/**
 * The current time, refreshed about four times a second while `active` (all users see the same
 * value). While inactive the value is not kept fresh: use it only for live timers.
 */
export function useNow(active: boolean): number {
  const frozen = useContext(FrozenClockContext);
  const live = useSyncExternalStore(active && frozen === null ? subscribe : noop, snapshot, snapshot);
  return frozen ?? live;
}

/**
 * A fixed "now" for everything below: the replay sets it to the time of the event it shows, so
 * a running agent's elapsed time and a countdown read as they did then, not against today.
 */
export const FrozenClockContext = createContext<number | null>(null);
