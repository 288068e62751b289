// HTTP calls to the Worker (same origin, under /api). Errors are JSON
// {"error":{"code","message"}}; ApiError carries them in plain words.
//
// Every request goes through `request()`, which adds `Authorization: Bearer <token>` when this
// browser has an access token (BOTARMY_ACCESS_TOKEN on the server). The token travels in that
// header only, never in a URL (URLs get logged); that is also why an artifact download is a
// fetch turned into a Blob, not a plain `<a href>` (a link cannot carry a header). It also adds
// `X-BotArmy-Owner: <this browser's key>` (lib/owner.ts), which names "Your sessions" when the
// server has no access token (with one, the token names the list and the key is ignored).

import { isStage, type ArtifactList, type ModelCatalog, type OfferedModel, type ProjectFileList, type ServerEvent, type SessionState, type Stage, type StageModels } from "../protocol/types";
import { downloadBlob, downloadText } from "../lib/download";
import { getAccessToken } from "../lib/token";
import { getOwnerKey, OWNER_HEADER } from "../lib/owner";
import { isSessionKey, isViewKey } from "../lib/sessionKey";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

async function errorFrom(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `The server answered ${response.status} ${response.statusText}.`;
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.message === "string") message = body.error.message;
  } catch {
    // Not JSON: keep the generic words.
  }
  return new ApiError(response.status, code, message);
}

/** `init`'s headers plus this browser's owner key and the access token, if it has one. */
export function withAuth(init: RequestInit = {}): RequestInit {
  const headers = new Headers(init.headers);
  headers.set(OWNER_HEADER, getOwnerKey());
  const token = getAccessToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers };
}

/**
 * No request waits for ever: a request stuck in a dead connection or a busy server would leave
 * a viewer on "Loading…" and hold one of the browser's few connections to this host. A read
 * (GET), or a write that is safe to repeat, that gets no answer within READ_TIMEOUT_MS is
 * abandoned and sent once more; any other write is abandoned after WRITE_TIMEOUT_MS and never
 * sent twice (the error says it may have been applied).
 */
export const READ_TIMEOUT_MS = 8_000;
export const WRITE_TIMEOUT_MS = 20_000;
const ATTEMPTS = 2;

/** What every read of a revoked view link answers, without asking the server. */
export const VIEW_REVOKED_WORDS = "This view link was revoked by the session's owner, so it can no longer read the session. Ask the owner for a new link.";
/** A view key's read that the server answers 404: revoked, or the session was removed (the server does not tell which). */
export const VIEW_GONE_WORDS = "This view link no longer works: its owner revoked it, or the session was removed. Ask the owner for a new link.";

const revokedKeys = new Set<string>();

/** The socket was closed 4403 for this view key: from now on every request with it says so at once. */
export function markViewRevoked(key: string): void {
  if (isViewKey(key)) revokedKeys.add(key);
}

/** Forgets every revoked mark (tests start clean). */
export function forgetRevokedViews(): void {
  revokedKeys.clear();
}

/** The session key a request path names (`/api/sessions/{key}/…`), if any. */
function keyOfPath(path: string): string | null {
  const m = /^\/api\/sessions\/([^/?]+)/.exec(path);
  return m ? decodeURIComponent(m[1]!) : null;
}

async function request(path: string, init: RequestInit = {}, repeatable = false): Promise<Response> {
  const key = keyOfPath(path);
  if (key !== null && revokedKeys.has(key)) throw new ApiError(403, "view_revoked", VIEW_REVOKED_WORDS);
  try {
    return await send(path, init, repeatable);
  } catch (err) {
    // "No session with this id" is the server's word for a revoked view key too: say what it means for a viewer.
    if (err instanceof ApiError && err.status === 404 && key !== null && isViewKey(key)) throw new ApiError(404, err.code, VIEW_GONE_WORDS);
    throw err;
  }
}

async function send(path: string, init: RequestInit, repeatable: boolean): Promise<Response> {
  const retry = repeatable || (init.method ?? "GET").toUpperCase() === "GET";
  const limit = retry ? READ_TIMEOUT_MS : WRITE_TIMEOUT_MS;
  const outer = init.signal ?? null;
  for (let attempt = 1; ; attempt++) {
    const controller = new AbortController();
    const cancel = () => controller.abort();
    outer?.addEventListener("abort", cancel, { once: true });
    if (outer?.aborted) controller.abort();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, limit);
    let response: Response;
    try {
      response = await fetch(path, withAuth({ ...init, signal: controller.signal }));
    } catch {
      if (outer?.aborted) throw new ApiError(0, "aborted", "The request was cancelled.");
      if (timedOut && retry && attempt < ATTEMPTS) continue;
      if (timedOut && retry) throw new ApiError(0, "timeout", `The server did not answer within ${limit / 1000} s, twice. Try again.`);
      if (timedOut) throw new ApiError(0, "timeout", `The server did not answer within ${limit / 1000} s; it may or may not have done it. Check, then try again.`);
      throw new ApiError(0, "network", "Could not reach the BotArmy server. Check your connection and try again.");
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", cancel);
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }
}

/** A new session. The server also puts it in this owner's list (the owner header goes along). */
export async function createSession(): Promise<string> {
  const response = await request("/api/sessions", { method: "POST", headers: { Accept: "application/json" } });
  const body = (await response.json()) as { id?: unknown };
  if (typeof body.id !== "string") throw new ApiError(response.status, "bad_response", "The server did not return a session id.");
  remembered.add(body.id);
  return body.id;
}

export interface SessionSummary {
  id: string;
  lastSeq: number;
  state: SessionState;
}

export async function getSession(id: string): Promise<SessionSummary> {
  const response = await request(`/api/sessions/${encodeURIComponent(id)}`, { headers: { Accept: "application/json" } });
  return (await response.json()) as SessionSummary;
}

export async function getArtifactVersions(id: string, stage: Stage, signal?: AbortSignal): Promise<ArtifactList | null> {
  try {
    const response = await request(`/api/sessions/${encodeURIComponent(id)}/artifacts/${stage}?format=json`, {
      headers: { Accept: "application/json" },
      signal,
    });
    return (await response.json()) as ArtifactList;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

const textCache = new Map<string, string>();

/** One artifact version's Markdown. Versions never change, so they are cached for the page's life. */
export async function getArtifactText(id: string, stage: Stage, version: number, signal?: AbortSignal): Promise<string> {
  const key = `${id}/${stage}/${version}`;
  const cached = textCache.get(key);
  if (cached !== undefined) return cached;
  const response = await request(
    `/api/sessions/${encodeURIComponent(id)}/artifacts/${stage}?version=${version}`,
    { headers: { Accept: "text/markdown" }, signal },
  );
  const text = await response.text();
  textCache.set(key, text);
  return text;
}

/**
 * Downloads one artifact version as a `.md` file: fetched with the token like every request,
 * then handed to the browser as a Blob object URL.
 */
export async function downloadArtifact(id: string, stage: Stage, version: number): Promise<string> {
  const filename = `botarmy-${stage}-v${version}.md`;
  downloadText(filename, await getArtifactText(id, stage, version));
  return filename;
}

/**
 * Every logged event of the session, paged with `after`/`limit` until the server says there are
 * no more. A 410 `log_truncated` (the log no longer starts at seq 1) is thrown as an ApiError.
 */
export async function getAllEvents(key: string, signal?: AbortSignal): Promise<ServerEvent[]> {
  const events: ServerEvent[] = [];
  let after = 0;
  for (;;) {
    const response = await request(`/api/sessions/${encodeURIComponent(key)}/events?after=${after}&limit=1000`, {
      headers: { Accept: "application/json" },
      signal,
    });
    const body = (await response.json()) as { events?: ServerEvent[]; lastSeq?: number; more?: boolean };
    const page = Array.isArray(body.events) ? body.events : [];
    events.push(...page);
    const last = page.at(-1)?.seq;
    // Stop when the server says so, or if a page moved nothing (never loop forever).
    if (!body.more || typeof last !== "number" || last <= after) break;
    after = last;
  }
  return events;
}

/**
 * Downloads the whole session as JSON Lines (`export.jsonl`): fetched with the token like every
 * request, then saved from a Blob. Returns the file name.
 */
export async function downloadExport(key: string): Promise<string> {
  const response = await request(`/api/sessions/${encodeURIComponent(key)}/export.jsonl`, {
    headers: { Accept: "application/x-ndjson" },
  });
  const filename = `botarmy-${key.slice(0, 8)}.jsonl`;
  downloadText(filename, await response.text(), "application/x-ndjson");
  return filename;
}

// Project files (docs/protocol.md, "Project files"). A file path goes in the URL percent-encoded
// segment by segment, so its slashes stay slashes.

/** `src/my app.js` → `src/my%20app.js`. */
export function encodeFilePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

/** The current project: every file with its kept versions, oldest first. */
export async function getProjectFiles(key: string, signal?: AbortSignal): Promise<ProjectFileList> {
  const response = await request(`/api/sessions/${encodeURIComponent(key)}/files`, {
    headers: { Accept: "application/json" },
    signal,
  });
  const body = (await response.json()) as Partial<ProjectFileList>;
  return { files: Array.isArray(body.files) ? body.files : [], bytes: typeof body.bytes === "number" ? body.bytes : 0, limits: body.limits ?? {} };
}

const fileCache = new Map<string, string>();

/**
 * One version of a project file, as text. A version never changes, so it is cached for the page's
 * life. The text is only ever shown as text (never as HTML).
 */
export async function getFileText(key: string, path: string, version: number, signal?: AbortSignal): Promise<string> {
  const cacheKey = `${key}\n${path}\n${version}`;
  const cached = fileCache.get(cacheKey);
  if (cached !== undefined) return cached;
  const response = await request(`/api/sessions/${encodeURIComponent(key)}/files/${encodeFilePath(path)}?version=${version}`, {
    headers: { Accept: "text/plain" },
    signal,
  });
  const text = await response.text();
  fileCache.set(cacheKey, text);
  return text;
}

/** The name in a `Content-Disposition: attachment; filename="…"` header, if it has a plain one. */
function attachmentName(header: string | null): string | null {
  const match = header ? /filename="?([^";/\\]+)"?/i.exec(header) : null;
  return match?.[1]?.trim() || null;
}

/**
 * Downloads the current project as a zip: fetched with the token like every request, then saved
 * from a Blob. Returns the file name.
 */
export async function downloadProjectZip(key: string): Promise<string> {
  const response = await request(`/api/sessions/${encodeURIComponent(key)}/project.zip`, {
    headers: { Accept: "application/zip" },
  });
  const filename = attachmentName(response.headers.get("Content-Disposition")) ?? `botarmy-${key.slice(0, 8)}.zip`;
  downloadBlob(filename, await response.blob());
  return filename;
}

export { isSessionId, isSessionKey, isViewKey } from "../lib/sessionKey";

// View-only links. Only the session id (the control key) may list, create or revoke them; the
// server answers 403 read_only to a view key.

export interface ViewLink {
  /** 12 hex characters: names the link for revoking; not the key itself. */
  id: string;
  createdAt: number;
}

export interface NewViewLink extends ViewLink {
  /** `v` + 96 hex: the key that goes in the link. Only this answer ever shows it. */
  key: string;
}

export async function createViewLink(sessionId: string): Promise<NewViewLink> {
  const response = await request(`/api/sessions/${encodeURIComponent(sessionId)}/views`, {
    method: "POST",
    headers: { Accept: "application/json" },
  });
  const body = (await response.json()) as Partial<NewViewLink>;
  if (typeof body.key !== "string" || typeof body.id !== "string") {
    throw new ApiError(response.status, "bad_response", "The server did not return a view link.");
  }
  return { key: body.key, id: body.id, createdAt: typeof body.createdAt === "number" ? body.createdAt : Date.now() };
}

/** The session's view links, newest first. */
export async function listViewLinks(sessionId: string, signal?: AbortSignal): Promise<ViewLink[]> {
  const response = await request(`/api/sessions/${encodeURIComponent(sessionId)}/views`, {
    headers: { Accept: "application/json" },
    signal,
  });
  const body = (await response.json()) as { views?: unknown };
  return Array.isArray(body.views) ? (body.views as ViewLink[]) : [];
}

/** Revokes a view link: its open pages are disconnected and its key stops working. */
export async function revokeViewLink(sessionId: string, viewId: string): Promise<void> {
  await request(`/api/sessions/${encodeURIComponent(sessionId)}/views/${encodeURIComponent(viewId)}`, { method: "DELETE" });
}

export interface Health {
  status: string;
  version: string;
  provider: "demo" | "openai" | string;
}

export async function getHealth(): Promise<Health> {
  const response = await request("/api/health", { headers: { Accept: "application/json" } });
  return (await response.json()) as Health;
}

function offeredModel(value: unknown): OfferedModel | null {
  if (typeof value !== "object" || value === null) return null;
  const m = value as Record<string, unknown>;
  if (typeof m.id !== "string" || !m.id) return null;
  const colon = m.id.indexOf(":");
  const provider = typeof m.provider === "string" ? m.provider : colon > 0 ? m.id.slice(0, colon) : "";
  const model = typeof m.model === "string" ? m.model : colon > 0 ? m.id.slice(colon + 1) : m.id;
  const p = m.price as Record<string, unknown> | null | undefined;
  const price =
    p && typeof p === "object" && typeof p.input === "number" && typeof p.output === "number"
      ? { input: p.input, output: p.output, cachedInput: typeof p.cachedInput === "number" ? p.cachedInput : p.input }
      : null;
  return { id: m.id, provider, model, price };
}

/**
 * What the start form may offer each agent (`GET /api/models`): models and prices per stage, the
 * default first. Read defensively: a stage or model that does not parse is left out, and a
 * stage whose default is not among its offers offers its default alone.
 */
export async function getModels(signal?: AbortSignal): Promise<ModelCatalog> {
  const response = await request("/api/models", { headers: { Accept: "application/json" }, signal });
  const body = (await response.json()) as Record<string, unknown>;
  const stages: StageModels[] = [];
  for (const raw of Array.isArray(body.stages) ? body.stages : []) {
    const entry = raw as Record<string, unknown> | null;
    if (!entry || !isStage(entry.stage) || typeof entry.default !== "string" || !entry.default) continue;
    const offered = (Array.isArray(entry.offered) ? entry.offered : []).map(offeredModel).filter((m): m is OfferedModel => m !== null);
    if (!offered.some((m) => m.id === entry.default)) offered.unshift(offeredModel({ id: entry.default, price: null })!);
    stages.push({ stage: entry.stage, default: entry.default, offered });
  }
  return {
    demo: body.demo === true,
    providers: Array.isArray(body.providers) ? body.providers.filter((p): p is string => typeof p === "string") : [],
    stages,
    budgetMicroUsd: typeof body.budgetMicroUsd === "number" ? body.budgetMicroUsd : null,
  };
}

// "Your sessions" (docs/protocol.md): the owner's list, kept by the server per owner (the access
// token, else this browser's key).

/** One row of "Your sessions". */
export interface MySession {
  /** What opens it: the session id, or a view key when `readOnly` (never the id then). */
  key: string;
  readOnly: boolean;
  name: string;
  /** The run's status as the state has it (`idle`, `running`, `completed`, …). */
  status: string;
  stagesDone: number;
  tokens: number;
  costMicroUsd: number;
  createdAt: number;
  updatedAt: number;
}

const count = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);

/** A row as the server sent it, read defensively; null when it has no usable key. */
export function mySessionRow(value: unknown): MySession | null {
  if (typeof value !== "object" || value === null) return null;
  const r = value as Record<string, unknown>;
  if (typeof r.key !== "string" || !isSessionKey(r.key)) return null;
  return {
    key: r.key,
    // A view key is read-only whatever a row says.
    readOnly: r.readOnly === true || isViewKey(r.key),
    name: typeof r.name === "string" && r.name.trim() ? r.name : "New session",
    status: typeof r.status === "string" ? r.status : "idle",
    stagesDone: count(r.stagesDone),
    tokens: count(r.tokens),
    costMicroUsd: count(r.costMicroUsd),
    createdAt: count(r.createdAt),
    updatedAt: count(r.updatedAt) || count(r.createdAt),
  };
}

/** The longest search the server takes, in characters. */
export const MAX_QUERY_CHARS = 100;
/** The longest session name, in characters. */
export const MAX_NAME_CHARS = 120;

/** "Your sessions", most recently active first; `q` filters by name (case-insensitive substring). */
export async function listMySessions(q = "", signal?: AbortSignal): Promise<MySession[]> {
  const query = q.trim();
  const path = query ? `/api/sessions?q=${encodeURIComponent(query)}` : "/api/sessions";
  const response = await request(path, { headers: { Accept: "application/json" }, signal });
  const body = (await response.json()) as { sessions?: unknown };
  return (Array.isArray(body.sessions) ? body.sessions : []).map(mySessionRow).filter((r): r is MySession => r !== null);
}

/** Keys this page has put in the owner's list already (created here, or opened). */
const remembered = new Set<string>();

/**
 * Puts a session (id or view key) in the owner's list, once per page load: opening a session
 * lists it. Best effort: a failure is swallowed (the page works without the list).
 */
export async function rememberSession(key: string): Promise<void> {
  if (remembered.has(key)) return;
  remembered.add(key);
  try {
    await request(`/api/sessions/${encodeURIComponent(key)}/remember`, { method: "POST", headers: { Accept: "application/json" } }, true);
  } catch {
    remembered.delete(key);
  }
}

/** Takes a row out of this owner's list; the session itself is untouched. */
export async function forgetSession(key: string): Promise<void> {
  await request(`/api/sessions/${encodeURIComponent(key)}/remember`, { method: "DELETE" }, true);
  remembered.delete(key);
}

/** Renames a session (the id, not a view key): every owner's list shows the name the server kept. */
export async function renameSession(id: string, name: string): Promise<string> {
  const response = await request(`/api/sessions/${encodeURIComponent(id)}`, {
    method: "PATCH",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const body = (await response.json().catch(() => ({}))) as { summary?: { name?: unknown } };
  return typeof body.summary?.name === "string" ? body.summary.name : name.trim().replace(/\s+/g, " ");
}

/** Deletes a session for everyone: its storage, its sockets (closed with 4404) and every list's row. */
export async function deleteSession(id: string): Promise<void> {
  await request(`/api/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
  remembered.delete(id);
}
