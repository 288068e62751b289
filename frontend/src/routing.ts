// Sessions are shareable links. The canonical form is `/?s=<id>`, which works with any static
// host; `/s/<id>` and `#/s/<id>` are understood too.

import { useSyncExternalStore } from "react";

export function sessionIdFromLocation(loc: Pick<Location, "pathname" | "search" | "hash"> = window.location): string | null {
  const fromQuery = new URLSearchParams(loc.search).get("s");
  if (fromQuery) return fromQuery.trim().toLowerCase();
  const path = /^\/s\/([^/?#]+)\/?$/.exec(loc.pathname);
  if (path?.[1]) return decodeURIComponent(path[1]).toLowerCase();
  const hash = /^#\/?s\/([^/?#]+)/.exec(loc.hash);
  if (hash?.[1]) return decodeURIComponent(hash[1]).toLowerCase();
  return null;
}

export function sessionUrl(id: string, origin = window.location.origin): string {
  return `${origin}/?s=${encodeURIComponent(id)}`;
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

/** The session id in the address bar, re-read on navigation. */
export function useRouteSessionId(): string | null {
  return useSyncExternalStore(subscribe, () => sessionIdFromLocation(), () => null);
}
