import { memo, useEffect, useState } from "react";
import { getHealth } from "../net/api";
import { goHome, useRouteReplay } from "../routing";
import { useSessionStore } from "../store/session";
import { useViewRevoked } from "../store/connection";
import { isViewKey } from "../lib/sessionKey";
import { costWords, formatUsd } from "../lib/money";
import type { RunState } from "../protocol/types";
import { ConnectionIndicator } from "./ConnectionIndicator";
import { ShareMenu } from "./ShareMenu";
import { RunStatusBadge } from "./StatusBadge";
import { Badge } from "./ui/badge";
import { cn } from "../lib/cn";

/** Demo mode: the session's welcome says so, or (before any session) /api/health does. */
function useDemo(): boolean {
  const sessionDemo = useSessionStore((s) => s.view.welcome?.demo ?? s.view.state?.demo ?? null);
  const [healthDemo, setHealthDemo] = useState<boolean | null>(null);
  useEffect(() => {
    let alive = true;
    getHealth()
      .then((h) => alive && setHealthDemo(h.provider === "demo"))
      .catch(() => undefined);
    return () => {
      alive = false;
    };
  }, []);
  return sessionDemo ?? healthDemo ?? false;
}

/**
 * What the session has spent ("$0.0123", "of $0.50" with a budget), and a clear badge once the
 * budget is reached (no agent starts again in this session). Nothing in demo mode unless money
 * was spent, nor for a state from before costs.
 */
export function RunCost({ run, demo }: { run: RunState; demo: boolean }) {
  const cost = run.costMicroUsd;
  const budget = run.budgetMicroUsd ?? null;
  if (typeof cost !== "number" || (demo && cost === 0 && budget === null)) return null;
  const reached = budget !== null && cost >= budget;
  const near = budget !== null && !reached && cost >= budget * 0.8;
  return (
    <span className="inline-flex flex-wrap items-center gap-1.5 text-xs">
      <span
        data-testid="run-cost"
        data-cost-micro-usd={cost}
        data-budget-micro-usd={budget ?? ""}
        className={cn("tabular-nums", reached ? "font-semibold text-red-800" : near ? "font-medium text-amber-900" : "text-slate-700")}
        title={
          run.priceKnown === false
            ? "What this session has spent. A model without a known price answered: its calls are counted as $0."
            : "What this session has spent at the configured prices"
        }
      >
        <span className="text-slate-500">Cost </span>
        {costWords(cost, run.priceKnown)}
        {budget !== null ? ` of ${formatUsd(budget)}` : ""}
      </span>
      {reached ? (
        <Badge tone="red" data-testid="budget-reached" title="This session has spent its budget: no agent will start again. Start a new session to continue.">
          Budget reached
        </Badge>
      ) : null}
    </span>
  );
}

export const Header = memo(function Header({ sessionId }: { sessionId: string | null }) {
  const demo = useDemo();
  const run = useSessionStore((s) => s.view.state?.run ?? null);
  const model = useSessionStore((s) => s.view.welcome?.model ?? s.view.state?.model ?? null);
  // Each agent's card names its own model when the state has one per agent; then one session-wide
  // name would mislead.
  const perAgentModels = useSessionStore((s) => Object.values(s.view.state?.agents ?? {}).some((a) => typeof a?.model === "string"));
  // The key's shape answers at once; the welcome confirms (or, on a server that says so, decides).
  const storeReadOnly = useSessionStore((s) => s.view.sessionId === sessionId && s.view.readOnly);
  const readOnly = isViewKey(sessionId) || storeReadOnly;
  const revoked = useViewRevoked();
  const replay = useRouteReplay();

  return (
    <header className="sticky top-0 z-20 border-b border-slate-200 bg-white/95 backdrop-blur">
      <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-x-3 gap-y-2 px-3 py-2 sm:px-4">
        <a
          href="/"
          data-testid="home-link"
          onClick={(e) => {
            e.preventDefault();
            goHome();
          }}
          className="flex items-center gap-2 rounded font-bold tracking-tight focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
        >
          <img src="/favicon.svg" alt="" className="h-6 w-6" />
          BotArmy
        </a>
        {demo ? (
          <Badge tone="amber" data-testid="demo-badge" title="No AI provider key is configured: agents answer with built-in demo text.">
            Demo mode
          </Badge>
        ) : null}
        {sessionId && readOnly && revoked ? (
          <Badge tone="red" data-testid="view-only-badge" data-revoked="true" title="The owner revoked this view link: the page shows what it had received.">
            View link revoked
          </Badge>
        ) : sessionId && readOnly ? (
          <Badge tone="blue" data-testid="view-only-badge" title="You opened a view-only link: you can watch and read, not change anything.">
            View only
          </Badge>
        ) : null}
        {sessionId && replay ? (
          <Badge tone="violet" data-testid="replay-badge" title="A replay of what happened: nothing here is live.">
            Replay
          </Badge>
        ) : sessionId && run ? (
          <RunStatusBadge status={run.status} pauseRequested={run.pauseRequested} />
        ) : null}
        {sessionId && model && !demo && !perAgentModels ? <span className="hidden text-xs text-slate-500 sm:inline">model {model}</span> : null}
        {sessionId && run && !replay ? <RunCost run={run} demo={demo} /> : null}
        <div className="ml-auto flex flex-wrap items-center gap-2">
          {sessionId ? (
            <>
              {replay ? null : <ConnectionIndicator />}
              {revoked || replay ? null : <ShareMenu key={sessionId} sessionKey={sessionId} readOnly={readOnly} />}
            </>
          ) : null}
        </div>
      </div>
    </header>
  );
});
