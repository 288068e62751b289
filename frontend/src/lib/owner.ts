// This browser's own key for "Your sessions" (docs/protocol.md, "Your sessions"): 128 random
// bits as 32 lowercase hex, made once and kept in localStorage, sent as `X-BotArmy-Owner` on
// every API request (net/api.ts). Without an access token on the server it names this browser's
// list; with one, the token names the list and the key is simply ignored. It is not a secret of
// the session (it opens nothing): only a name for "my list".

const KEY = "botarmy.ownerKey";
export const OWNER_HEADER = "X-BotArmy-Owner";

/** The key when localStorage cannot keep it (private mode): it lasts for this page only. */
let fallback: string | null = null;

function isOwnerKey(value: string | null): value is string {
  return value !== null && /^[0-9a-f]{32}$/.test(value);
}

function randomKey(): string {
  const bytes = new Uint8Array(16);
  // getRandomValues works on plain http:// origins too (randomUUID needs a secure context).
  crypto.getRandomValues(bytes);
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** This browser's owner key: the stored one, or a new one stored now. */
export function getOwnerKey(): string {
  try {
    const stored = window.localStorage.getItem(KEY);
    if (isOwnerKey(stored)) return stored;
    const key = randomKey();
    window.localStorage.setItem(KEY, key);
    // Read back: another tab may have written its key in between; both then use the one kept.
    const kept = window.localStorage.getItem(KEY);
    return isOwnerKey(kept) ? kept : key;
  } catch {
    fallback ??= randomKey();
    return fallback;
  }
}
