// Pause, Resume, Cancel, Retry and Rerun from a stage, each enabled only when the run's state
// allows it. A view-only page gets none of them, only the sentence on where the run stands.

import { useEffect, useState } from "react";
import { sessionClient } from "../net/client";
import { STAGE_LABEL } from "../protocol/types";
import { budgetSpent } from "../protocol/actions";
import { useSessionStore } from "../store/session";
import { Button } from "./ui/button";
import { useActions, usePending } from "./useActions";

export function RunControls() {
  const readOnly = useSessionStore((s) => s.view.readOnly);
  if (readOnly) {
    return (
      <section aria-label="Run status" className="flex flex-wrap items-center gap-2 empty:hidden">
        <RunNote readOnly />
      </section>
    );
  }
  return <Controls />;
}

function Controls() {
  const actions = useActions();
  const pausing = usePending("pause");
  const resuming = usePending("resume");
  const cancelling = usePending("cancel");
  const retrying = usePending("retry");
  const rerunning = usePending("rerun");
  const [rerunFrom, setRerunFrom] = useState<string>("");
  const rerunStage = actions.rerun.find((s) => s === rerunFrom) ?? actions.rerun[actions.rerun.length - 1];
  const pauseRequested = useSessionStore((s) => s.view.state?.run.pauseRequested ?? false);

  // Cancel asks once more inline (no modal dialog), and forgets the question after a few seconds.
  const [confirming, setConfirming] = useState(false);
  useEffect(() => {
    if (!confirming) return;
    const timer = setTimeout(() => setConfirming(false), 6000);
    return () => clearTimeout(timer);
  }, [confirming]);
  useEffect(() => {
    if (!actions.cancel) setConfirming(false);
  }, [actions.cancel]);

  return (
    <section aria-label="Run controls" className="flex flex-wrap items-center gap-2">
      <Button variant="outline" size="sm" data-testid="pause-button" disabled={!actions.pause || pausing} onClick={() => sessionClient.send({ type: "pause" })}>
        {pauseRequested ? "Pausing…" : "Pause"}
      </Button>
      <Button variant="outline" size="sm" data-testid="resume-button" disabled={!actions.resume || resuming} onClick={() => sessionClient.send({ type: "resume" })}>
        {pauseRequested ? "Keep running" : "Resume"}
      </Button>
      <Button
        variant="outline"
        size="sm"
        data-testid="cancel-button"
        aria-expanded={confirming}
        disabled={!actions.cancel || cancelling}
        onClick={() => setConfirming((c) => !c)}
      >
        Cancel
      </Button>
      {confirming ? (
        <span role="group" aria-label="Confirm cancel" className="flex items-center gap-2 rounded-md bg-red-50 px-2 py-1 text-sm text-red-900">
          Stop the agents? Finished artifacts are kept.
          <Button
            variant="destructive"
            size="sm"
            data-testid="confirm-cancel-button"
            onClick={() => {
              setConfirming(false);
              sessionClient.send({ type: "cancel" });
            }}
          >
            Yes, cancel run
          </Button>
        </span>
      ) : null}
      <Button
        variant={actions.retry ? "primary" : "outline"}
        size="sm"
        data-testid="retry-button"
        disabled={!actions.retry || retrying}
        onClick={() => actions.retry && sessionClient.send({ type: "retry", stage: actions.retry })}
      >
        {actions.retry ? `Retry ${STAGE_LABEL[actions.retry]}` : "Retry"}
      </Button>
      {actions.rerun.length > 0 ? (
        <span role="group" aria-label="Rerun from a stage" className="flex items-center gap-2 text-sm">
          <label htmlFor="rerun-stage" className="text-slate-600">
            Rerun from
          </label>
          <select
            id="rerun-stage"
            data-testid="rerun-stage"
            className="rounded-md border border-slate-300 px-2 py-1"
            value={rerunStage}
            onChange={(e) => setRerunFrom(e.target.value)}
          >
            {actions.rerun.map((s) => (
              <option key={s} value={s}>
                {STAGE_LABEL[s]}
              </option>
            ))}
          </select>
          <Button
            variant="outline"
            size="sm"
            data-testid="rerun-button"
            disabled={rerunning || !rerunStage}
            onClick={() => rerunStage && sessionClient.send({ type: "rerun", stage: rerunStage })}
          >
            Rerun
          </Button>
        </span>
      ) : null}
      <RunNote />
    </section>
  );
}

/** One sentence on where the run stands and what the user can do (an owner), for the quiet states. */
function RunNote({ readOnly = false }: { readOnly?: boolean }) {
  const status = useSessionStore((s) => s.view.state?.run.status ?? null);
  const stage = useSessionStore((s) => s.view.state?.run.stage ?? null);
  const pauseRequested = useSessionStore((s) => s.view.state?.run.pauseRequested ?? false);
  // With the dollar budget spent, nothing can start again here (no Retry, no new run).
  const spent = useSessionStore((s) => budgetSpent(s.view.state));
  const name = stage ? `the ${STAGE_LABEL[stage]}` : "the current agent";
  let text: string | null = null;
  if (status === "paused") text = readOnly ? `Paused before ${name}.` : `Paused before ${name}. Press Resume to go on.`;
  else if (status === "running" && pauseRequested) text = `Pausing once ${name} finishes.`;
  else if (spent && (status === "failed" || status === "completed" || status === "cancelled"))
    text = readOnly
      ? "This session has spent its budget: no agent will start again here."
      : "This session has spent its budget: no agent will start again here. Start a new session to continue.";
  else if (status === "completed") text = "The plan is complete: read or download it under Artifacts.";
  else if (status === "cancelled") text = readOnly ? "Cancelled. Finished artifacts are kept." : "Cancelled. Finished artifacts are kept; you can start a new run below.";
  else if (status === "failed") text = readOnly ? `Stopped at ${name}.` : `Stopped at ${name}. Press Retry, or start a new run below.`;
  if (!text) return null;
  return (
    <p className="text-sm text-slate-600" data-testid="run-note">
      {text}
    </p>
  );
}
