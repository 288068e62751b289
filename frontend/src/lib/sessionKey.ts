// A session key is what stands after /s/ in a page URL and /api/sessions/ in an API path: either
// the session id (full control) or a view key (read-only). The server decides what each may do;
// the page only uses the shape to hide controls before the socket's welcome says so.

/** Session ids are exactly 32 lowercase hex characters. */
export function isSessionId(value: string | null | undefined): value is string {
  return typeof value === "string" && /^[0-9a-f]{32}$/.test(value);
}

/** View keys are `v` and 96 lowercase hex characters. */
export function isViewKey(value: string | null | undefined): value is string {
  return typeof value === "string" && /^v[0-9a-f]{96}$/.test(value);
}

/** A session id or a view key. */
export function isSessionKey(value: string | null | undefined): value is string {
  return isSessionId(value) || isViewKey(value);
}
