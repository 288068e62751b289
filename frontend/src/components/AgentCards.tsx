// One card per agent: status, progress, elapsed time (live), tokens, attempts, its model and
// what it cost, next retry countdown. Each card selects only its own agent's state object, which the reducer's structural
// sharing leaves untouched when a delta changed another agent, so only that card re-renders.

import { memo, useContext } from "react";
import { activeStage, progressPercent } from "../protocol/actions";
import { LIMITS, STAGES, STAGE_LABEL, type AgentState, type Stage } from "../protocol/types";
import { useSessionView } from "../store/session";
import { formatDuration, formatTokens, secondsUntil } from "../lib/format";
import { costWords, parseModelId } from "../lib/money";
import { FrozenClockContext, useNow } from "../lib/useNow";
import { lostSince, outageWithin, useConnectionStore, type Outage } from "../store/connection";
import { Badge } from "./ui/badge";
import { cn } from "../lib/cn";
import { AgentStatusBadge } from "./StatusBadge";

const ROLE: Record<Stage, string> = {
  analyst: "Requirements and scope",
  architect: "System design",
  developer: "Implementation plan",
  tester: "Test strategy",
  deployer: "Release and operations",
};

const LIVE_STATUSES = new Set(["thinking", "streaming", "retrying"]);
const NO_OUTAGES: Outage[] = [];

export const AgentCard = memo(function AgentCard({ stage }: { stage: Stage }) {
  const agent = useSessionView((s) => s.view.state?.agents[stage]);
  const active = useSessionView((s) => activeStage(s.view.state) === stage);
  return <AgentCardView stage={stage} agent={agent} active={active} />;
});

export function AgentCardView({ stage, agent, active }: { stage: Stage; agent: AgentState | undefined; active: boolean }) {
  const status = agent?.status ?? "idle";
  // A queued agent with a start time counts down too, so its clock must tick.
  const live = LIVE_STATUSES.has(status) || (status === "queued" && agent?.nextRetryAt != null);
  // A replay (a frozen clock) shows the times of then, not this page's connection.
  const replaying = useContext(FrozenClockContext) !== null;
  const liveOutages = useConnectionStore((s) => s.outages);
  const outages = replaying ? NO_OUTAGES : liveOutages;
  const lostAt = lostSince(outages);
  // While the connection is lost the clock stops where the page last heard from the session, and
  // it never counts the time the page was cut off.
  const now = useNow(live && lostAt === null);
  const pct = agent ? progressPercent(agent.progress, status) : 0;
  const end = agent?.finishedAt ?? (lostAt ?? now);
  const elapsed = agent?.startedAt != null ? Math.max(0, end - agent.startedAt - outageWithin(outages, agent.startedAt, end)) : null;
  const stale = lostAt !== null && LIVE_STATUSES.has(status);
  const retryIn = agent?.nextRetryAt != null ? secondsUntil(agent.nextRetryAt, now) : null;
  const name = STAGE_LABEL[stage];
  // Agents that have not started yet take one line, so the active one is easy to find.
  const compact = !active && (status === "idle" || status === "queued") && !agent?.startedAt;

  return (
    <article
      data-testid={`agent-card-${stage}`}
      data-status={status}
      data-active={active ? "true" : "false"}
      aria-current={active ? "step" : undefined}
      aria-label={`${name} agent`}
      className={cn(
        "rounded-lg border bg-white shadow-sm transition-shadow",
        compact ? "px-3 py-2" : "p-3",
        active ? "border-indigo-500 ring-2 ring-indigo-400 shadow-md" : "border-slate-200",
        status === "failed" && "border-red-400",
      )}
    >
      <div className="flex items-start justify-between gap-2">
        <div className="min-w-0">
          <h3 className="text-sm font-semibold leading-tight">{name}</h3>
          <p className="truncate text-xs text-slate-500">{ROLE[stage]}</p>
        </div>
        {stale ? (
          <Badge tone="amber" data-testid={`agent-stale-${stage}`} title="The connection is lost: this is where the agent was when the page last heard from it.">
            Connection lost
          </Badge>
        ) : (
          <AgentStatusBadge status={status} />
        )}
      </div>
      {compact ? null : (
        <>
          <div
            className="mt-2 h-1.5 w-full overflow-hidden rounded-full bg-slate-100"
            role="progressbar"
            aria-label={`${name} progress`}
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={pct}
          >
            <div
              className={cn("h-full rounded-full transition-[width] duration-300", status === "failed" ? "bg-red-500" : status === "done" ? "bg-emerald-500" : "bg-indigo-500")}
              style={{ width: `${pct}%` }}
            />
          </div>
          <dl className="mt-2 grid grid-cols-3 gap-x-2 gap-y-1 text-xs text-slate-600">
            <div>
              <dt className="text-slate-500">Time</dt>
              <dd className="tabular-nums" data-testid={`agent-elapsed-${stage}`}>{elapsed !== null ? formatDuration(elapsed) : "–"}</dd>
            </div>
            <div>
              <dt className="text-slate-500">Tokens in/out</dt>
              <dd className="tabular-nums" title={agent ? `${agent.inputTokens} in, ${agent.outputTokens} out` : undefined}>
                {agent && agent.inputTokens + agent.outputTokens > 0
                  ? `${formatTokens(agent.inputTokens)} / ${formatTokens(agent.outputTokens)}`
                  : "–"}
              </dd>
            </div>
            <div>
              <dt className="text-slate-500">Attempts</dt>
              <dd className="tabular-nums">{agent && agent.attempts > 0 ? `${agent.attempts} of ${LIMITS.attemptsPerStage}` : "–"}</dd>
            </div>
          </dl>
        </>
      )}
      <ModelAndCost stage={stage} agent={agent} compact={compact} />
      {agent && agent.version > 0 ? <p className="mt-1 text-xs text-slate-500">Artifact version {agent.version}</p> : null}
      {agent?.cached ? (
        <p className="mt-1 text-xs text-slate-600" data-testid={`agent-cached-${stage}`} title="The same inputs were answered before; the saved answer was reused.">
          Reused a saved answer: no tokens spent
        </p>
      ) : null}
      {retryIn !== null && status === "retrying" ? (
        <p className="mt-1 text-xs font-medium text-amber-800" data-testid={`agent-retry-${stage}`}>
          {retryIn > 0 ? `Next try in ${retryIn} s` : "Trying again now…"}
        </p>
      ) : null}
      {retryIn !== null && status === "queued" ? (
        <p className="mt-1 text-xs font-medium text-slate-700" data-testid={`agent-retry-${stage}`}>
          {retryIn > 0 ? `Waiting for the AI provider: starts in ${retryIn} s` : "Starting now…"}
        </p>
      ) : null}
      {agent?.lastError && (status === "retrying" || status === "failed") ? (
        <p className="mt-1 line-clamp-2 text-xs text-red-700" title={agent.lastError.message}>
          {agent.lastError.message}
        </p>
      ) : null}
    </article>
  );
}

/**
 * The agent's model for this run ("claude-sonnet-4-5", its provider beside it) and what its calls
 * cost ("$0.0123"; "price unknown" when the model has no known price). Nothing in demo mode (no
 * model) or in a state from before models had prices. A card not started yet shows the model only.
 */
function ModelAndCost({ stage, agent, compact }: { stage: Stage; agent: AgentState | undefined; compact: boolean }) {
  const model = agent?.model ?? null;
  const hasCost = typeof agent?.costMicroUsd === "number";
  if (!agent || (model === null && (!hasCost || (agent.costMicroUsd === 0 && agent.priceKnown !== false)))) return null;
  const { provider, model: name } = model ? parseModelId(model) : { provider: "", model: "" };
  const cost = costWords(agent.costMicroUsd, agent.priceKnown);
  return (
    <dl className={cn("grid grid-cols-[minmax(0,1fr)_auto] gap-x-2 text-xs text-slate-600", compact ? "mt-1" : "mt-2")}>
      <div className="min-w-0">
        <dt className={compact ? "sr-only" : "text-slate-500"}>Model</dt>
        <dd className="truncate" data-testid={`agent-model-${stage}`} data-model={model ?? ""} title={model ? `${provider} · ${name}` : undefined}>
          {model ? (
            <>
              <span className="font-medium text-slate-800">{name}</span>
              {provider ? <span className="text-slate-500"> · {provider}</span> : null}
            </>
          ) : (
            "–"
          )}
        </dd>
      </div>
      {compact || !hasCost ? null : (
        <div className="text-right">
          <dt className="text-slate-500">Cost</dt>
          <dd
            className={cn("tabular-nums", agent.priceKnown === false && "text-amber-800")}
            data-testid={`agent-cost-${stage}`}
            data-cost-micro-usd={agent.costMicroUsd}
            data-price-known={agent.priceKnown === false ? "false" : "true"}
            title={
              agent.priceKnown === false
                ? "This model has no known price: its calls are counted as $0."
                : `${agent.costMicroUsd} micro-dollars at the configured prices`
            }
          >
            {cost}
          </dd>
        </div>
      )}
    </dl>
  );
}

export function AgentCards() {
  return (
    <section aria-label="Agents" className="grid grid-cols-1 gap-2 sm:grid-cols-2 lg:grid-cols-1">
      {STAGES.map((stage) => (
        <AgentCard key={stage} stage={stage} />
      ))}
    </section>
  );
}
