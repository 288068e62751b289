// Idempotency keys for commands: 1–64 chars of [A-Za-z0-9_-]. crypto.getRandomValues works on
// plain http:// origins too (crypto.randomUUID needs a secure context).

export function newCommandId(prefix = "c"): string {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  let rand = "";
  for (const b of bytes) rand += b.toString(16).padStart(2, "0");
  return `${prefix}-${Date.now().toString(36)}-${rand}`;
}
