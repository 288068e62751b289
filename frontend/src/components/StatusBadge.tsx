import type { AgentStatus, RunStatus } from "../protocol/types";
import { Badge, type BadgeTone } from "./ui/badge";

const AGENT: Record<AgentStatus, { label: string; tone: BadgeTone }> = {
  idle: { label: "Idle", tone: "slate" },
  queued: { label: "Queued", tone: "slate" },
  thinking: { label: "Thinking", tone: "blue" },
  streaming: { label: "Writing", tone: "indigo" },
  waiting_approval: { label: "Needs approval", tone: "violet" },
  retrying: { label: "Retrying", tone: "amber" },
  done: { label: "Done", tone: "green" },
  failed: { label: "Failed", tone: "red" },
  cancelled: { label: "Cancelled", tone: "slate" },
};

const RUN: Record<RunStatus, { label: string; tone: BadgeTone }> = {
  idle: { label: "Not started", tone: "slate" },
  running: { label: "Running", tone: "indigo" },
  paused: { label: "Paused", tone: "amber" },
  waiting_approval: { label: "Waiting for approval", tone: "violet" },
  completed: { label: "Completed", tone: "green" },
  failed: { label: "Failed", tone: "red" },
  cancelled: { label: "Cancelled", tone: "slate" },
};

export function agentStatusWords(status: AgentStatus): { label: string; tone: BadgeTone } {
  return AGENT[status] ?? { label: String(status), tone: "slate" };
}

export function runStatusWords(status: RunStatus): { label: string; tone: BadgeTone } {
  return RUN[status] ?? { label: String(status), tone: "slate" };
}

export function AgentStatusBadge({ status }: { status: AgentStatus }) {
  const w = agentStatusWords(status);
  return <Badge tone={w.tone}>{w.label}</Badge>;
}

export function RunStatusBadge({ status, pauseRequested }: { status: RunStatus; pauseRequested?: boolean }) {
  const w = runStatusWords(status);
  return (
    <Badge tone={w.tone} data-testid="run-status" data-status={status}>
      {w.label}
      {pauseRequested && status === "running" ? " · pausing after this step" : ""}
    </Badge>
  );
}
