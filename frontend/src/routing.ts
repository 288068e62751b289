// Sessions are shareable links. The canonical form is `/?s=<id>`, which works with any static
// host; `/s/<id>` and `#/s/<id>` are understood too. Wherever an id goes, a view key (`v` + 96
// hex, read-only) may go instead: the page reads either as "the session key" and the server
// decides what it allows.

import { useSyncExternalStore } from "react";
import { isSessionKey } from "./lib/sessionKey";

export function sessionIdFromLocation(loc: Pick<Location, "pathname" | "search" | "hash"> = window.location): string | null {
  const fromQuery = new URLSearchParams(loc.search).get("s");
  if (fromQuery) return fromQuery.trim().toLowerCase();
  const path = /^\/s\/([^/?#]+)\/?$/.exec(loc.pathname);
  if (path?.[1]) return decodeURIComponent(path[1]).toLowerCase();
  const hash = /^#\/?s\/([^/?#]+)/.exec(loc.hash);
  if (hash?.[1]) return decodeURIComponent(hash[1]).toLowerCase();
  return null;
}

/** A session id or view key, bare or in any of the link forms above; null if it is neither. */
export function parseSessionRef(input: string): string | null {
  const text = input.trim();
  if (isSessionKey(text.toLowerCase())) return text.toLowerCase();
  try {
    const key = sessionIdFromLocation(new URL(text));
    return isSessionKey(key) ? key : null;
  } catch {
    return null;
  }
}

/** The link to a session with full control (the session id). */
export function sessionUrl(id: string, origin = window.location.origin): string {
  return `${origin}/?s=${encodeURIComponent(id)}`;
}

/** A view-only link. The path form, so it reads as a different kind of link from the control one. */
export function viewUrl(key: string, origin = window.location.origin): string {
  return `${origin}/s/${encodeURIComponent(key)}`;
}

const listeners = new Set<() => void>();

function notify(): void {
  for (const listener of listeners) listener();
}

export function navigate(to: string): void {
  window.history.pushState(null, "", to);
  notify();
}

export function openSession(id: string): void {
  navigate(`/?s=${encodeURIComponent(id)}`);
}

export function goHome(): void {
  navigate("/");
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  window.addEventListener("hashchange", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
    window.removeEventListener("hashchange", listener);
  };
}

/** The session key (id or view key) in the address bar, re-read on navigation. */
export function useRouteSessionId(): string | null {
  return useSyncExternalStore(subscribe, () => sessionIdFromLocation(), () => null);
}

// The replay of a session is the same address plus `replay=1`, so a reload stays in the replay.

export function isReplayLocation(loc: Pick<Location, "search"> = window.location): boolean {
  return new URLSearchParams(loc.search).get("replay") === "1";
}

/** The replay position the address asks for (`at=N`), if any. */
export function replayPositionFromLocation(loc: Pick<Location, "search"> = window.location): number | null {
  const at = new URLSearchParams(loc.search).get("at");
  return at !== null && /^\d{1,9}$/.test(at) ? Number(at) : null;
}

/** Keeps the replay position in the address (no new history entry), so a reload or a shared link opens there. */
export function rememberReplayPosition(key: string, position: number): void {
  window.history.replaceState(window.history.state, "", `/?s=${encodeURIComponent(key)}&replay=1&at=${position}`);
}

export function openReplay(key: string): void {
  navigate(`/?s=${encodeURIComponent(key)}&replay=1`);
}

export function exitReplay(key: string): void {
  navigate(`/?s=${encodeURIComponent(key)}`);
}

/** Whether the address bar asks for the replay view, re-read on navigation. */
export function useRouteReplay(): boolean {
  return useSyncExternalStore(subscribe, () => isReplayLocation(), () => false);
}
