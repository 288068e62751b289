// One session: agent cards, errors, the approval gate, run controls, the live conversation beside
// the project's files, a brief box when a new run can start, and the artifacts. Opened with a view key, the same page
// without anything that sends a command.

import { useCallback, useEffect, useId, useState } from "react";
import { ApiError, downloadExport, getSession, isSessionKey, isViewKey, markViewRevoked, rememberSession } from "../net/api";
import { sessionClient } from "../net/client";
import { goHome, openReplay } from "../routing";
import { useConnectionStore, useViewRevoked } from "../store/connection";
import { useSessionStore } from "../store/session";
import { setAccessToken } from "../lib/token";
import { Panel } from "./ui/panel";
import type { ApprovalMode, ModelChoices } from "../protocol/types";
import { formatTokens } from "../lib/format";
import { formatUsd } from "../lib/money";
import { budgetSpent } from "../protocol/actions";
import { useModelsStore } from "../store/models";
import { AgentCards } from "./AgentCards";
import { ApprovalPanel } from "./ApprovalPanel";
import { ArtifactsPanel } from "./Artifacts";
import { BriefForm } from "./BriefForm";
import { Conversation } from "./Conversation";
import { ErrorBanner } from "./ErrorBanner";
import { ErrorBoundary } from "./ErrorBoundary";
import { FilesPanel } from "./Files";
import { LiveAnnouncer } from "./LiveAnnouncer";
import { RunControls } from "./RunControls";
import { Button } from "./ui/button";
import { Card, CardContent } from "./ui/card";
import { useActions, usePending } from "./useActions";

function NotFound({ id }: { id: string }) {
  const view = isViewKey(id);
  return (
    <main className="mx-auto max-w-xl px-3 py-10">
      <Card data-testid="session-not-found" data-kind={view ? "view" : "session"}>
        <CardContent className="space-y-3 p-6">
          <h1 className="text-lg font-semibold">{view ? "This view link does not work" : "Session not found"}</h1>
          {view ? (
            <p className="text-sm text-slate-700">
              This view link is not valid, or it was revoked by the session's owner, or the session was removed. Ask the person who shared
              it for a new link.
            </p>
          ) : (
            <p className="text-sm text-slate-700">
              There is no BotArmy session <code className="break-all rounded bg-slate-100 px-1">{id}</code>. The link may be mistyped, or the
              session was removed.
            </p>
          )}
          <Button variant="primary" onClick={goHome}>
            Start a new session
          </Button>
        </CardContent>
      </Card>
    </main>
  );
}

/** The session's dollar budget is spent: say so where another run would be started. */
function BudgetSpentNote() {
  const run = useSessionStore((s) => s.view.state?.run ?? null);
  const titleId = useId();
  if (!run || typeof run.budgetMicroUsd !== "number") return null;
  return (
    <Panel titleId={titleId} title="This session has spent its budget" tone="warning" data-testid="budget-spent-note">
      <p>
        It has spent {formatUsd(run.costMicroUsd ?? 0)} of its {formatUsd(run.budgetMicroUsd)} budget, so no agent will start again here. Its
        artifacts and files stay readable. Start a new session to continue.
      </p>
      <div className="mt-2">
        <Button variant="primary" onClick={goHome}>
          Start a new session
        </Button>
      </div>
    </Panel>
  );
}

function StartSection() {
  const actions = useActions();
  const pendingStart = usePending("start");
  const status = useSessionStore((s) => s.view.state?.run.status ?? null);
  const readOnly = useSessionStore((s) => s.view.readOnly);
  const spent = useSessionStore((s) => budgetSpent(s.view.state));
  const hasRun = status !== null && status !== "idle";
  const ended = status !== "running" && status !== "paused" && status !== "waiting_approval";
  if (!readOnly && spent && ended && !pendingStart) return <BudgetSpentNote />;
  if (readOnly || (!actions.start && !pendingStart)) return null;
  const start = (brief: string, approval: ApprovalMode, models?: ModelChoices) =>
    sessionClient.send(models ? { type: "start", brief, approval, models } : { type: "start", brief, approval });
  return (
    <Card>
      <CardContent className="pt-4">
        <BriefForm onStart={start} busy={pendingStart} title={hasRun ? "Start another run in this session" : "What should the team plan?"} />
      </CardContent>
    </Card>
  );
}

/**
 * Shown when the live connection never opened although the session exists: the likeliest cause
 * is an access token this browser does not have (a browser cannot see why an upgrade failed).
 */
function ConnectHelp() {
  const stuck = useConnectionStore(
    (s) =>
      !s.everConnected &&
      ((s.status === "offline" && s.offlineReason !== "no_network") || (s.status === "reconnecting" && s.attempt >= 3)),
  );
  const [token, setToken] = useState("");
  const tokenId = useId();
  if (!stuck) return null;
  return (
    <Panel titleId={`${tokenId}-title`} title="The live connection does not open" tone="warning" data-testid="connect-help">
      <p>
        The session exists, but its live connection keeps failing. If this BotArmy is protected by an access token, enter it here;
        otherwise the server may be restarting, and the page keeps trying.
      </p>
      <form
        className="mt-2 flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          setAccessToken(token);
          useModelsStore.getState().load(true);
          sessionClient.reconnectNow();
        }}
      >
        <label htmlFor={tokenId} className="text-sm font-medium">
          Access token
          <input
            id={tokenId}
            type="password"
            autoComplete="off"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            className="mt-1 block w-64 max-w-full rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
          />
        </label>
        <Button type="submit" variant="outline" disabled={!token.trim()}>
          Save and reconnect
        </Button>
      </form>
    </Panel>
  );
}

/** The server closed with 4404: the session was deleted or expired, and no retry can help. */
function SessionGone() {
  const gone = useConnectionStore((s) => s.status === "gone");
  const titleId = useId();
  if (!gone) return null;
  return (
    <Panel titleId={titleId} title="This session no longer exists" tone="danger" data-testid="session-gone">
      <p>This session no longer exists (it was deleted or expired). What is shown below is what this page had received.</p>
      <div className="mt-2">
        <Button variant="primary" onClick={goHome}>
          Start a new session
        </Button>
      </div>
    </Panel>
  );
}

/** The server closed with 4403: the owner revoked this view link; no retry can help. */
function ViewRevoked() {
  const revoked = useConnectionStore((s) => s.status === "revoked");
  const titleId = useId();
  if (!revoked) return null;
  return (
    <Panel titleId={titleId} title="This view link was revoked" tone="danger" data-testid="view-revoked">
      <p>This view link was revoked by the session's owner. What is shown below is what this page had received; ask the owner for a new link to keep watching.</p>
    </Panel>
  );
}

/** A viewer's one line on what this page is. */
function ViewOnlyNote() {
  const readOnly = useSessionStore((s) => s.view.readOnly);
  const revoked = useViewRevoked();
  if (!readOnly || revoked) return null;
  return (
    <p className="rounded-md border border-sky-200 bg-sky-50 px-3 py-2 text-sm text-sky-950" data-testid="view-only-note">
      You are watching through a view-only link: you can follow the run and read or download its artifacts. Only the session's owner can
      start, approve or stop it.
    </p>
  );
}

/**
 * When reconnecting keeps failing, asks over HTTP whether the key still works: a refused
 * WebSocket upgrade (a revoked view link, a removed session) looks like any network failure to
 * the page. The second failed try and every one after it asks once.
 */
function useKeyCheck(key: string, onMissing: () => void, enabled: boolean): void {
  const failing = useConnectionStore((s) =>
    (s.status === "reconnecting" && s.attempt >= 2) || (s.status === "offline" && s.offlineReason === "retries_exhausted")
      ? `${s.status}:${s.attempt}`
      : null,
  );
  useEffect(() => {
    if (!enabled || !failing) return;
    let alive = true;
    getSession(key).catch((err: unknown) => {
      if (alive && err instanceof ApiError && (err.status === 404 || err.code === "view_revoked")) onMissing();
    });
    return () => {
      alive = false;
    };
  }, [failing, key, enabled, onMissing]);
}

/**
 * Export (the whole session as JSON Lines, fetched with the token and saved from a Blob) and,
 * once a run has finished, Replay. Both only read, so a view-only page has them too.
 */
function SessionTools({ id }: { id: string }) {
  // Replay is offered once anything has happened, and stays (it used to come and go with each gate).
  const finishedRun = useSessionStore((s) => s.view.lastSeq > 0);
  const revoked = useViewRevoked();
  const [status, setStatus] = useState<{ tone: "info" | "error"; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  // A revoked view link can read nothing more: no export, no replay.
  if (revoked) return null;
  const exportLog = async () => {
    setBusy(true);
    setStatus(null);
    try {
      const filename = await downloadExport(id);
      setStatus({ tone: "info", text: `Saved ${filename}.` });
    } catch (err) {
      setStatus({ tone: "error", text: `The log could not be exported: ${err instanceof Error ? err.message : String(err)}` });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="flex flex-wrap items-center gap-2" data-testid="session-tools">
      <Button variant="outline" size="sm" onClick={() => void exportLog()} disabled={busy} data-testid="export-button">
        {busy ? "Exporting…" : "Export log (.jsonl)"}
      </Button>
      {finishedRun ? (
        <Button variant="outline" size="sm" onClick={() => openReplay(id)} data-testid="replay-button">
          Replay
        </Button>
      ) : null}
      {status ? (
        <span
          role={status.tone === "error" ? "alert" : "status"}
          className={status.tone === "error" ? "text-sm text-red-700" : "text-sm text-slate-600"}
          data-testid="export-status"
        >
          {status.text}
        </span>
      ) : null}
    </div>
  );
}

function TokenBudget() {
  const used = useSessionStore((s) => s.view.state?.run.tokensUsed ?? 0);
  const budget = useSessionStore((s) => s.view.state?.run.tokenBudget ?? 0);
  if (!budget) return null;
  return (
    <span className="text-xs text-slate-500 tabular-nums" title={`${used} of ${budget} tokens used in this session`} data-testid="token-budget">
      {formatTokens(used)} / {formatTokens(budget)} tokens
    </span>
  );
}

export function SessionPage({ id }: { id: string }) {
  const [missing, setMissing] = useState(false);
  const valid = isSessionKey(id);
  const markMissing = useCallback(() => {
    setMissing(true);
    sessionClient.disconnect();
  }, []);
  useKeyCheck(id, markMissing, valid && !missing);
  const revoked = useViewRevoked();
  useEffect(() => {
    if (revoked) markViewRevoked(id);
  }, [revoked, id]);

  useEffect(() => {
    if (!valid) return;
    let alive = true;
    setMissing(false);
    getSession(id).catch((err: unknown) => {
      if (alive && err instanceof ApiError && (err.status === 404 || err.code === "view_revoked")) markMissing();
    });
    // "Your sessions" lists what this owner opened (a view key as view only). Best effort.
    void rememberSession(id);
    return () => {
      alive = false;
    };
  }, [id, valid, markMissing]);

  if (!valid || missing) return <NotFound id={id} />;

  return (
    <main className="mx-auto flex max-w-7xl flex-col gap-4 px-3 py-3 sm:px-4 sm:py-4 lg:grid lg:grid-cols-[17rem_minmax(0,1fr)] lg:items-start">
      <LiveAnnouncer />
      <h1 className="sr-only">BotArmy session {id.slice(0, 8)}</h1>
      <aside className="order-3 lg:sticky lg:top-16 lg:order-none">
        <div className="mb-2 flex items-baseline justify-between gap-2">
          <h2 className="text-sm font-semibold uppercase tracking-wide text-slate-500">Agents</h2>
          <TokenBudget />
        </div>
        <ErrorBoundary label="the agent cards">
          <AgentCards />
        </ErrorBoundary>
      </aside>
      <div className="contents lg:flex lg:min-w-0 lg:flex-col lg:gap-4">
        <div className="order-1 flex flex-col gap-3 empty:hidden">
          <ErrorBoundary label="the connection help">
            <SessionGone />
            <ViewRevoked />
            <ConnectHelp />
          </ErrorBoundary>
          <ErrorBoundary label="the error messages">
            <ErrorBanner />
          </ErrorBoundary>
          <ErrorBoundary label="the approval panel">
            <ApprovalPanel />
          </ErrorBoundary>
        </div>
        <div className="order-2 flex flex-col gap-2">
          <ErrorBoundary label="the run controls">
            <ViewOnlyNote />
            <RunControls />
          </ErrorBoundary>
          <ErrorBoundary label="the export and replay buttons">
            <SessionTools id={id} />
          </ErrorBoundary>
        </div>
        <div className="order-4 grid min-w-0 grid-cols-1 gap-4 xl:grid-cols-[minmax(0,1.15fr)_minmax(0,1fr)] xl:items-start">
          <div className="min-w-0">
            <ErrorBoundary label="the conversation">
              <Conversation />
            </ErrorBoundary>
          </div>
          <div className="min-w-0">
            <ErrorBoundary label="the project files">
              <FilesPanel />
            </ErrorBoundary>
          </div>
        </div>
        <div className="order-5">
          <ErrorBoundary label="the brief box">
            <StartSection />
          </ErrorBoundary>
        </div>
        <div className="order-6 min-w-0 max-w-full">
          <ErrorBoundary label="the artifacts">
            <ArtifactsPanel />
          </ErrorBoundary>
        </div>
      </div>
    </main>
  );
}
