// "Your sessions" on the home page (docs/protocol.md, "Your sessions"): the sessions this owner
// started or opened, most recently active first, kept by the server (per access token, else per
// browser key). Each row opens its session; a search box filters by name (a debounced server
// query); a session can be renamed inline or deleted for everyone after a confirmation, and a
// view-only row can be taken off the list. While a listed run is running, the list refreshes
// itself every few seconds so its status follows.

import { useCallback, useEffect, useId, useLayoutEffect, useRef, useState, type KeyboardEvent, type MouseEvent } from "react";
import {
  ApiError,
  MAX_NAME_CHARS,
  MAX_QUERY_CHARS,
  deleteSession,
  forgetSession,
  listMySessions,
  renameSession,
  type MySession,
} from "../net/api";
import { navigate } from "../routing";
import { formatAgo, formatDateTime, formatTokens } from "../lib/format";
import { formatUsd } from "../lib/money";
import { getAccessToken } from "../lib/token";
import { STAGES, type RunStatus } from "../protocol/types";
import { runStatusWords } from "./StatusBadge";
import { Badge } from "./ui/badge";
import { Button } from "./ui/button";
import { Card, CardContent, CardHeader } from "./ui/card";

/** How long typing must pause before the search goes to the server. */
export const SEARCH_DEBOUNCE_MS = 300;
/** How often the list refreshes while one of its runs is running. */
export const ACTIVE_REFRESH_MS = 3000;
/** The server's longest answer: past it, older sessions are found by searching. */
const LIST_LIMIT = 100;

function errorWords(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Where a row leads: the control link for a session id, the view-link form for a view key. */
export function rowHref(row: Pick<MySession, "key" | "readOnly">): string {
  return row.readOnly ? `/s/${encodeURIComponent(row.key)}` : `/?s=${encodeURIComponent(row.key)}`;
}

function openRow(e: MouseEvent<HTMLAnchorElement>, href: string): void {
  // A new tab or window (modifier keys, middle button) is the browser's to open.
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(href);
}

type LoadError = { message: string; unauthorized: boolean };

export interface YourSessionsProps {
  /** Bumped when an access token was saved: the list loads again. */
  authVersion?: number;
  /** The server asked for the access token (401): the page asks for it. */
  onUnauthorized?: () => void;
  /** How often to refresh while a run is running (tests shorten it). */
  refreshMs?: number;
  /** How long typing must pause before searching (tests shorten it). */
  debounceMs?: number;
}

export function YourSessions({ authVersion = 0, onUnauthorized, refreshMs = ACTIVE_REFRESH_MS, debounceMs = SEARCH_DEBOUNCE_MS }: YourSessionsProps) {
  const [query, setQuery] = useState("");
  const [q, setQ] = useState("");
  const [rows, setRows] = useState<MySession[] | null>(null);
  /** The search the rows shown answer (q moves first, the rows when the server answers). */
  const [shownQuery, setShownQuery] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<LoadError | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const [notice, setNotice] = useState("");
  const [editing, setEditing] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<MySession | null>(null);
  const [rowError, setRowError] = useState<{ key: string; message: string } | null>(null);
  const [busyKey, setBusyKey] = useState<string | null>(null);
  const titleId = useId();
  const searchId = useId();
  const headingRef = useRef<HTMLHeadingElement>(null);
  /** The latest load: an older answer arriving late is dropped. */
  const loadSeq = useRef(0);
  /** Rows removed here: a refresh already under way must not bring them back. */
  const removed = useRef(new Set<string>());
  /** Where focus goes after the next render (a row's button by key and kind, or the heading). */
  const focusNext = useRef<{ key: string; kind: "rename" | "delete" } | "heading" | null>(null);
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;

  const load = useCallback(async (search: string, quiet: boolean) => {
    const mine = ++loadSeq.current;
    if (!quiet) setLoading(true);
    try {
      const list = await listMySessions(search);
      if (mine !== loadSeq.current) return;
      setRows(list.filter((r) => !removed.current.has(r.key)));
      setShownQuery(search);
      setNow(Date.now());
      setError(null);
    } catch (err) {
      if (mine !== loadSeq.current) return;
      const denied = err instanceof ApiError && err.status === 401;
      if (denied) unauthorized.current?.();
      // A background refresh that fails keeps the rows shown; the next one may work.
      if (!quiet || denied) {
        setError({
          unauthorized: denied,
          message: denied
            ? "This BotArmy needs an access token to show your sessions. Enter it above and the list loads."
            : `Your sessions could not be loaded: ${errorWords(err)}`,
        });
      }
    } finally {
      if (mine === loadSeq.current) setLoading(false);
    }
  }, []);

  // The search goes to the server once typing pauses.
  useEffect(() => {
    const next = query.trim();
    if (next === q) return;
    const timer = setTimeout(() => setQ(next), debounceMs);
    return () => clearTimeout(timer);
  }, [query, q, debounceMs]);

  useEffect(() => {
    void load(q, false);
    return () => {
      // Unmounted or a new search: whatever is in flight is stale.
      loadSeq.current += 1;
    };
  }, [q, authVersion, load]);

  // Follow running sessions: refresh every few seconds while one runs and the page is visible,
  // and once whenever the page comes back into view.
  const running = rows?.some((r) => r.status === "running") ?? false;
  useEffect(() => {
    const refresh = () => {
      if (document.visibilityState === "visible") void load(q, true);
    };
    const timer = running ? setInterval(refresh, refreshMs) : undefined;
    document.addEventListener("visibilitychange", refresh);
    return () => {
      if (timer !== undefined) clearInterval(timer);
      document.removeEventListener("visibilitychange", refresh);
    };
  }, [running, q, load, refreshMs]);

  // "5 min ago" stays true while the page stays open.
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(timer);
  }, []);

  useLayoutEffect(() => {
    const target = focusNext.current;
    if (!target) return;
    focusNext.current = null;
    if (target === "heading") headingRef.current?.focus();
    // Keys are hex (and a leading "v"): nothing to escape in the selector.
    else document.querySelector<HTMLElement>(`[data-${target.kind}-for="${target.key}"]`)?.focus();
  });

  const drop = (key: string) => {
    removed.current.add(key);
    setRows((list) => list?.filter((r) => r.key !== key) ?? list);
  };

  const forget = async (row: MySession) => {
    setBusyKey(row.key);
    setRowError(null);
    try {
      await forgetSession(row.key);
      drop(row.key);
      focusNext.current = "heading";
      setNotice(`Removed “${row.name}” from your list. The session itself is unchanged.`);
    } catch (err) {
      setRowError({ key: row.key, message: `It could not be removed from your list: ${errorWords(err)}` });
    } finally {
      setBusyKey(null);
    }
  };

  const renamed = (key: string, name: string | null) => {
    if (name !== null) {
      setRows((list) => list?.map((r) => (r.key === key ? { ...r, name } : r)) ?? list);
      setNotice(`Renamed to “${name}”.`);
    }
    setEditing(null);
    focusNext.current = { key, kind: "rename" };
  };

  const deleted = (row: MySession) => {
    drop(row.key);
    setConfirming(null);
    focusNext.current = "heading";
    setNotice(`Deleted “${row.name}”.`);
  };

  const withToken = getAccessToken() !== null;
  const list = rows ?? [];

  return (
    <Card className="lg:col-span-2" data-testid="my-sessions" aria-labelledby={titleId} role="region" aria-busy={loading || undefined}>
      <CardHeader className="gap-2 sm:flex-row sm:items-end sm:justify-between">
        <div className="min-w-0">
          <h2 id={titleId} ref={headingRef} tabIndex={-1} className="text-lg font-semibold leading-tight focus:outline-none">
            Your sessions
          </h2>
          <p className="text-sm text-slate-600">
            {withToken
              ? "Sessions started or opened with this access token, in any browser."
              : "Sessions started or opened in this browser."}
          </p>
        </div>
        <div className="w-full sm:w-64">
          <label htmlFor={searchId} className="sr-only">
            Search your sessions by name
          </label>
          <input
            id={searchId}
            type="search"
            data-testid="my-sessions-search"
            value={query}
            maxLength={MAX_QUERY_CHARS}
            onChange={(e) => setQuery(e.target.value)}
            placeholder="Search by name"
            autoComplete="off"
            className="block w-full rounded-md border border-slate-300 px-2 py-1.5 text-sm focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
          />
        </div>
      </CardHeader>
      <CardContent className="space-y-2">
        <p role="status" className={notice ? "text-sm text-slate-700" : "sr-only"} data-testid="my-sessions-notice">
          {notice}
        </p>
        {error ? (
          <div role="alert" data-testid="my-sessions-error" data-unauthorized={error.unauthorized} className="rounded-md border border-red-300 bg-red-50 p-2 text-sm text-red-900">
            <p>{error.message}</p>
            {error.unauthorized ? null : (
              <Button variant="outline" size="sm" className="mt-2" onClick={() => void load(q, false)} data-testid="my-sessions-retry">
                Try again
              </Button>
            )}
          </div>
        ) : null}
        {rows === null && loading && !error ? (
          <p className="text-sm text-slate-600" data-testid="my-sessions-loading">
            Loading your sessions…
          </p>
        ) : null}
        {rows !== null && list.length === 0 && !loading ? (
          <p className="rounded-md bg-slate-50 p-3 text-sm text-slate-600" data-testid="my-sessions-empty">
            {shownQuery ? `No session matches “${shownQuery}”.` : "No sessions yet. The sessions you start or open appear here."}
          </p>
        ) : null}
        {list.length > 0 ? (
          <ul className="divide-y divide-slate-100" data-testid="my-sessions-list" data-query={shownQuery}>
            {list.map((row) => (
              <SessionRow
                key={row.key}
                row={row}
                now={now}
                editing={editing === row.key}
                busy={busyKey === row.key}
                error={rowError?.key === row.key ? rowError.message : null}
                onRename={() => {
                  setRowError(null);
                  setEditing(row.key);
                }}
                onRenamed={(name) => renamed(row.key, name)}
                onDelete={() => {
                  setRowError(null);
                  setConfirming(row);
                }}
                onForget={() => void forget(row)}
              />
            ))}
          </ul>
        ) : null}
        {list.length >= LIST_LIMIT ? (
          <p className="text-xs text-slate-500">Showing the {LIST_LIMIT} most recently active. Search by name to find older ones.</p>
        ) : null}
      </CardContent>
      {confirming ? (
        <ConfirmDelete
          row={confirming}
          onCancel={() => {
            // Back to the button that opened the dialog.
            focusNext.current = { key: confirming.key, kind: "delete" };
            setConfirming(null);
          }}
          onDeleted={() => deleted(confirming)}
        />
      ) : null}
    </Card>
  );
}

interface RowProps {
  row: MySession;
  now: number;
  editing: boolean;
  busy: boolean;
  error: string | null;
  onRename(): void;
  onRenamed(name: string | null): void;
  onDelete(): void;
  onForget(): void;
}

function SessionRow({ row, now, editing, busy, error, onRename, onRenamed, onDelete, onForget }: RowProps) {
  const status = runStatusWords(row.status as RunStatus);
  const href = rowHref(row);
  const errorId = useId();
  return (
    <li
      className="flex flex-col gap-2 py-2.5 sm:flex-row sm:items-center sm:justify-between"
      data-testid="my-session-row"
      data-key={row.key}
      data-status={row.status}
      data-read-only={row.readOnly}
    >
      <div className="min-w-0 flex-1 space-y-1">
        {editing ? (
          <RenameForm row={row} onDone={onRenamed} />
        ) : (
          <a
            href={href}
            onClick={(e) => openRow(e, href)}
            data-testid="my-session-link"
            className="block break-words font-medium text-indigo-800 underline-offset-2 hover:underline focus-visible:rounded focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
          >
            {row.name}
          </a>
        )}
        <div className="flex flex-wrap items-center gap-x-3 gap-y-1 text-xs text-slate-600">
          <Badge tone={status.tone} data-testid="my-session-status" data-status={row.status}>
            {status.label}
          </Badge>
          {row.readOnly ? (
            <Badge tone="blue" data-testid="my-session-view-only" title="Opened through a view-only link: you can watch it, not change it">
              View only
            </Badge>
          ) : null}
          <span data-testid="my-session-stages" className="tabular-nums">
            {row.stagesDone}/{STAGES.length} stages done
          </span>
          <time
            dateTime={new Date(row.updatedAt).toISOString()}
            title={`Last active ${formatDateTime(row.updatedAt)}`}
            data-testid="my-session-when"
          >
            {formatAgo(row.updatedAt, now)}
          </time>
          <span data-testid="my-session-tokens" className="tabular-nums" title={`${row.tokens.toLocaleString()} tokens`}>
            {formatTokens(row.tokens)} tokens
          </span>
          <span data-testid="my-session-cost" className="tabular-nums" data-cost-micro-usd={row.costMicroUsd}>
            {formatUsd(row.costMicroUsd)}
          </span>
        </div>
        {error ? (
          <p role="alert" id={errorId} className="text-xs text-red-700" data-testid="my-session-row-error">
            {error}
          </p>
        ) : null}
      </div>
      {editing ? null : (
        <div className="flex shrink-0 flex-wrap gap-1">
          {row.readOnly ? (
            <Button variant="ghost" size="sm" onClick={onForget} disabled={busy} data-testid="forget-session" aria-label={`Remove from my list: “${row.name}”`}>
              {busy ? "Removing…" : "Remove from my list"}
            </Button>
          ) : (
            <>
              <Button variant="ghost" size="sm" onClick={onRename} data-testid="rename-session" data-rename-for={row.key} aria-label={`Rename “${row.name}”`}>
                Rename
              </Button>
              <Button
                variant="ghost"
                size="sm"
                className="text-red-700 hover:bg-red-50"
                onClick={onDelete}
                data-testid="delete-session"
                data-delete-for={row.key}
                aria-label={`Delete “${row.name}”`}
              >
                Delete
              </Button>
            </>
          )}
        </div>
      )}
    </li>
  );
}

/** The name as a text field: Enter saves, Escape cancels; the server's refusal in words. */
function RenameForm({ row, onDone }: { row: MySession; onDone(name: string | null): void }) {
  const [draft, setDraft] = useState(row.name);
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const inputId = useId();
  const errorId = useId();

  useEffect(() => {
    inputRef.current?.focus();
    inputRef.current?.select();
  }, []);

  const save = async () => {
    if (saving) return;
    if (draft.trim() === row.name) return onDone(null);
    setSaving(true);
    setError(null);
    try {
      onDone(await renameSession(row.key, draft));
    } catch (err) {
      setError(`The name was not saved: ${errorWords(err)}`);
      setSaving(false);
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLFormElement>) => {
    if (e.key === "Escape" && !saving) {
      e.preventDefault();
      e.stopPropagation();
      onDone(null);
    }
  };

  return (
    <form
      className="flex flex-wrap items-center gap-2"
      data-testid="rename-form"
      onKeyDown={onKeyDown}
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <label htmlFor={inputId} className="sr-only">
        New name for “{row.name}”
      </label>
      <input
        ref={inputRef}
        id={inputId}
        data-testid="rename-input"
        value={draft}
        onChange={(e) => {
          setDraft(e.target.value);
          setError(null);
        }}
        // Read-only, not disabled, while saving: a disabled field loses the focus.
        readOnly={saving}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? errorId : undefined}
        // Longer names are refused by the server in words; this only keeps a paste from running on.
        maxLength={MAX_NAME_CHARS * 4}
        className="min-w-0 flex-1 basis-48 rounded-md border border-slate-300 px-2 py-1 text-sm focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
      />
      <div className="flex gap-1">
        <Button type="submit" size="sm" variant="primary" disabled={saving} data-testid="rename-save">
          {saving ? "Saving…" : "Save"}
        </Button>
        <Button size="sm" variant="ghost" onClick={() => onDone(null)} disabled={saving} data-testid="rename-cancel">
          Cancel
        </Button>
      </div>
      {error ? (
        <p id={errorId} role="alert" className="w-full text-xs text-red-700" data-testid="rename-error">
          {error}
        </p>
      ) : null}
    </form>
  );
}

/**
 * A modal that says what deleting does. Cancel has the focus first (the safe choice); Tab stays
 * inside; Escape or a click outside cancels.
 */
function ConfirmDelete({ row, onCancel, onDeleted }: { row: MySession; onCancel(): void; onDeleted(): void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const titleId = useId();
  const bodyId = useId();
  const dialogRef = useRef<HTMLDivElement>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    cancelRef.current?.focus();
  }, []);

  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await deleteSession(row.key);
      onDeleted();
    } catch (err) {
      // Already gone (deleted elsewhere, or expired): what was asked for is true.
      if (err instanceof ApiError && err.status === 404) return onDeleted();
      setError(`The session was not deleted: ${errorWords(err)}`);
      setBusy(false);
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === "Escape") {
      e.preventDefault();
      if (!busy) onCancel();
      return;
    }
    if (e.key !== "Tab") return;
    const focusable = [...(dialogRef.current?.querySelectorAll<HTMLElement>("button:not([disabled])") ?? [])];
    const first = focusable[0];
    const last = focusable.at(-1);
    if (!first || !last) return;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };

  return (
    <div
      className="fixed inset-0 z-50 flex items-center justify-center bg-slate-900/40 p-3"
      onMouseDown={(e) => {
        if (e.target === e.currentTarget && !busy) onCancel();
      }}
    >
      <div
        ref={dialogRef}
        role="alertdialog"
        aria-modal="true"
        aria-labelledby={titleId}
        aria-describedby={bodyId}
        data-testid="delete-dialog"
        onKeyDown={onKeyDown}
        className="w-full max-w-md space-y-3 rounded-lg bg-white p-4 shadow-xl"
      >
        <h2 id={titleId} className="break-words text-base font-semibold">
          Delete “{row.name}”?
        </h2>
        <p id={bodyId} className="text-sm text-slate-700" data-testid="delete-dialog-text">
          Its conversation, artifacts and files are deleted for everyone with the link. This cannot be undone.
        </p>
        {error ? (
          <p role="alert" className="text-sm text-red-700" data-testid="delete-error">
            {error}
          </p>
        ) : null}
        <div className="flex flex-wrap justify-end gap-2">
          <Button ref={cancelRef} variant="outline" onClick={onCancel} disabled={busy} data-testid="cancel-delete-session">
            Cancel
          </Button>
          <Button variant="destructive" onClick={() => void confirm()} disabled={busy} data-testid="confirm-delete-session">
            {busy ? "Deleting…" : "Delete session"}
          </Button>
        </div>
      </div>
    </div>
  );
}
