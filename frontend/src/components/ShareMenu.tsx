// Share: with the session id (full control), a menu that makes view-only links, copies the
// control link with a warning, and lists the view links with Revoke. With a view key, one button
// that copies the view link the page was opened with (a viewer cannot make or see others).

import { useCallback, useEffect, useId, useRef, useState } from "react";
import { ApiError, createViewLink, listViewLinks, revokeViewLink, type ViewLink } from "../net/api";
import { sessionUrl, viewUrl } from "../routing";
import { copyText } from "../lib/download";
import { formatDateTime } from "../lib/format";
import { cn } from "../lib/cn";
import { Button } from "./ui/button";

/** Forgets a short confirmation ("Link copied") after a moment. */
function useFlash(ms = 2500): [string | null, (text: string | null) => void] {
  const [text, setText] = useState<string | null>(null);
  useEffect(() => {
    if (!text) return;
    const timer = setTimeout(() => setText(null), ms);
    return () => clearTimeout(timer);
  }, [text, ms]);
  return [text, setText];
}

function errorWords(err: unknown, doing: string): string {
  if (err instanceof ApiError && err.code === "too_many_views") {
    return "This session already has as many view links as it may have (20). Revoke one, then try again.";
  }
  const message = err instanceof Error ? err.message : String(err);
  return `Could not ${doing}: ${message}`;
}

/** A viewer's Share: copies the view-only link this page was opened with. */
function ViewerShare({ viewKey }: { viewKey: string }) {
  const [flash, setFlash] = useFlash(1500);
  return (
    <Button
      size="sm"
      variant="ghost"
      data-testid="share-button"
      title="Copy this view-only link"
      onClick={async () => setFlash((await copyText(viewUrl(viewKey))) ? "Link copied" : "Copy failed")}
    >
      {flash ?? "Share"}
    </Button>
  );
}

export function ShareMenu({ sessionKey, readOnly }: { sessionKey: string; readOnly: boolean }) {
  if (readOnly) return <ViewerShare viewKey={sessionKey} />;
  return <OwnerShare sessionId={sessionKey} />;
}

function OwnerShare({ sessionId }: { sessionId: string }) {
  const [open, setOpen] = useState(false);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const menuRef = useRef<HTMLDivElement>(null);
  const menuId = useId();
  const titleId = useId();

  const close = useCallback((refocus: boolean) => {
    setOpen(false);
    if (refocus) buttonRef.current?.focus();
  }, []);

  // Non-modal: Escape or a click elsewhere closes it.
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") close(true);
    };
    const onPointer = (e: PointerEvent) => {
      const target = e.target as Node | null;
      if (target && !menuRef.current?.contains(target) && !buttonRef.current?.contains(target)) close(false);
    };
    document.addEventListener("keydown", onKey);
    document.addEventListener("pointerdown", onPointer);
    return () => {
      document.removeEventListener("keydown", onKey);
      document.removeEventListener("pointerdown", onPointer);
    };
  }, [open, close]);

  return (
    <div className="relative">
      <Button
        ref={buttonRef}
        size="sm"
        variant="ghost"
        data-testid="share-button"
        title="Share this session"
        aria-expanded={open}
        aria-controls={open ? menuId : undefined}
        onClick={() => setOpen((o) => !o)}
      >
        Share
      </Button>
      {open ? (
        <div
          ref={menuRef}
          id={menuId}
          role="dialog"
          aria-labelledby={titleId}
          data-testid="share-menu"
          className="absolute right-0 top-full z-30 mt-2 w-[min(22rem,calc(100vw-1.5rem))] rounded-lg border border-slate-200 bg-white p-3 text-sm shadow-lg"
        >
          <h2 id={titleId} className="mb-2 font-semibold">
            Share this session
          </h2>
          <ShareMenuBody sessionId={sessionId} />
        </div>
      ) : null}
    </div>
  );
}

function ShareMenuBody({ sessionId }: { sessionId: string }) {
  const [links, setLinks] = useState<ViewLink[] | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [created, setCreated] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [viewStatus, setViewStatus] = useFlash(4000);
  const [viewError, setViewError] = useState<string | null>(null);
  const [controlStatus, setControlStatus] = useFlash();
  const [confirming, setConfirming] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<string | null>(null);
  const [listStatus, setListStatus] = useFlash();
  const firstRef = useRef<HTMLButtonElement>(null);
  const urlId = useId();

  const refresh = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const list = await listViewLinks(sessionId, signal);
        if (signal?.aborted) return;
        setLinks(list);
        setListError(null);
      } catch (err) {
        if (signal?.aborted) return;
        setListError(errorWords(err, "load the view links"));
      }
    },
    [sessionId],
  );

  useEffect(() => {
    firstRef.current?.focus();
    const controller = new AbortController();
    void refresh(controller.signal);
    return () => controller.abort();
  }, [refresh]);

  const copyViewLink = async () => {
    setCreating(true);
    setViewError(null);
    try {
      const link = await createViewLink(sessionId);
      const url = viewUrl(link.key);
      setCreated(url);
      // The box below shows the link either way, so a refused clipboard loses nothing.
      setViewStatus((await copyText(url)) ? "View link copied" : "View link made: copy it from the box");
      void refresh();
    } catch (err) {
      setViewError(errorWords(err, "make a view link"));
    } finally {
      setCreating(false);
    }
  };

  const revoke = async (viewId: string) => {
    setRevoking(viewId);
    setListError(null);
    try {
      await revokeViewLink(sessionId, viewId);
      setListStatus("View link revoked");
    } catch (err) {
      // Already gone is what the user wanted.
      if (!(err instanceof ApiError && err.status === 404)) setListError(errorWords(err, "revoke the view link"));
    } finally {
      setRevoking(null);
      setConfirming(null);
      await refresh();
    }
  };

  return (
    <div className="flex flex-col gap-3">
      <section className="flex flex-col gap-1">
        <div className="flex flex-wrap items-center gap-2">
          <Button ref={firstRef} size="sm" variant="primary" data-testid="copy-view-link" disabled={creating} onClick={copyViewLink}>
            {creating ? "Making a link…" : "Copy view link"}
          </Button>
          <span role="status" className="text-xs text-emerald-800" data-testid="view-link-status">
            {viewStatus}
          </span>
        </div>
        <p className="text-xs text-slate-600">A new link to watch the run and read its artifacts. It cannot change anything.</p>
        {created ? (
          <>
            <label htmlFor={urlId} className="sr-only">
              New view link
            </label>
            <input
              id={urlId}
              readOnly
              value={created}
              data-testid="view-link-url"
              onFocus={(e) => e.currentTarget.select()}
              className="w-full rounded-md border border-slate-300 bg-slate-50 px-2 py-1 font-mono text-xs focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
            />
          </>
        ) : null}
        {viewError ? (
          <p role="alert" className="text-xs text-red-700" data-testid="view-link-error">
            {viewError}
          </p>
        ) : null}
      </section>

      <section className="flex flex-col gap-1 border-t border-slate-100 pt-3">
        <div className="flex flex-wrap items-center gap-2">
          <Button
            size="sm"
            variant="outline"
            data-testid="copy-control-link"
            onClick={async () => setControlStatus((await copyText(sessionUrl(sessionId))) ? "Control link copied" : "Copy failed")}
          >
            Copy control link
          </Button>
          <span role="status" className="text-xs text-emerald-800">
            {controlStatus}
          </span>
        </div>
        <p className="rounded-md bg-amber-50 px-2 py-1 text-xs text-amber-900" data-testid="control-link-warning">
          Anyone with the control link has full control: they can start, approve, cancel and rerun. Share it only with people you
          trust.
        </p>
      </section>

      <section className="flex flex-col gap-1 border-t border-slate-100 pt-3" aria-label="View links">
        <div className="flex items-baseline justify-between gap-2">
          <h3 className="text-xs font-semibold uppercase tracking-wide text-slate-500">View links{links ? ` (${links.length})` : ""}</h3>
          <span role="status" className="text-xs text-emerald-800">
            {listStatus}
          </span>
        </div>
        {listError ? (
          <p role="alert" className="text-xs text-red-700">
            {listError}
          </p>
        ) : null}
        {links === null && !listError ? <p className="text-xs text-slate-500">Loading…</p> : null}
        {links?.length === 0 ? <p className="text-xs text-slate-500">No view links yet.</p> : null}
        {links && links.length > 0 ? (
          <ul className="flex max-h-60 flex-col gap-1 overflow-auto">
            {links.map((link) => (
              <li
                key={link.id}
                data-testid="view-link-row"
                data-view-id={link.id}
                className={cn("flex flex-wrap items-center justify-between gap-2 rounded-md px-2 py-1", confirming === link.id ? "bg-red-50" : "bg-slate-50")}
              >
                <span className="text-xs text-slate-700">Made {formatDateTime(link.createdAt)}</span>
                {confirming === link.id ? (
                  <span role="group" aria-label="Confirm revoke" className="flex items-center gap-1 text-xs text-red-900">
                    Revoke? Pages open with it are disconnected.
                    <Button
                      size="sm"
                      variant="destructive"
                      className="h-7 px-2"
                      data-testid="confirm-revoke-view-link"
                      disabled={revoking === link.id}
                      onClick={() => void revoke(link.id)}
                    >
                      {revoking === link.id ? "Revoking…" : "Yes, revoke"}
                    </Button>
                    <Button size="sm" variant="ghost" className="h-7 px-2" disabled={revoking === link.id} onClick={() => setConfirming(null)}>
                      Keep
                    </Button>
                  </span>
                ) : (
                  <Button
                    size="sm"
                    variant="outline"
                    className="h-7 px-2"
                    data-testid="revoke-view-link"
                    aria-label={`Revoke the view link made ${formatDateTime(link.createdAt)}`}
                    onClick={() => setConfirming(link.id)}
                  >
                    Revoke
                  </Button>
                )}
              </li>
            ))}
          </ul>
        ) : null}
      </section>
    </div>
  );
}
