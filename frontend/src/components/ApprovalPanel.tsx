// The approval gate: a prominent panel with Approve and Request changes (feedback box), shown
// while state.gate is open. A view-only page sees that the gate is open, without the buttons.

import { useEffect, useId, useRef, useState } from "react";
import { sessionClient } from "../net/client";
import { LIMITS, STAGES, STAGE_LABEL } from "../protocol/types";
import { useSessionStore } from "../store/session";
import { charCount } from "../lib/format";
import { cn } from "../lib/cn";
import { Button } from "./ui/button";
import { Panel } from "./ui/panel";
import { Textarea } from "./ui/textarea";
import { useActions, usePending } from "./useActions";

export function ApprovalPanel() {
  const readOnly = useSessionStore((s) => s.view.readOnly);
  return readOnly ? <GateNotice /> : <Approval />;
}

function GateNotice() {
  const gate = useSessionStore((s) => s.view.state?.gate ?? null);
  const titleId = useId();
  if (!gate) return null;
  const name = STAGE_LABEL[gate.stage];
  return (
    <Panel data-testid="approval-panel" data-stage={gate.stage} data-version={gate.version} data-readonly="true" titleId={titleId} tone="info" title={`${name} is waiting for approval`}>
      <p>
        The {name}'s work (version {gate.version}) is ready and waits for the session's owner to approve it or ask for changes.
      </p>
    </Panel>
  );
}

function Approval() {
  const gate = useSessionStore((s) => s.view.state?.gate ?? null);
  const interruptMessage = useSessionStore((s) => s.view.interrupt?.message ?? null);
  const actions = useActions();
  const approving = usePending("approve");
  const rejecting = usePending("reject");
  const [feedbackOpen, setFeedbackOpen] = useState(false);
  const [feedback, setFeedback] = useState("");
  const feedbackRef = useRef<HTMLTextAreaElement>(null);
  const titleId = useId();
  const feedbackId = useId();
  const counterId = useId();

  // A new gate starts with a closed, empty feedback box.
  const gateId = gate?.id ?? null;
  useEffect(() => {
    setFeedbackOpen(false);
    setFeedback("");
  }, [gateId]);

  useEffect(() => {
    if (feedbackOpen) feedbackRef.current?.focus();
  }, [feedbackOpen]);

  // Answered from here: when the gate closes, the button that had focus goes with it. Focus moves
  // to the thread, where the next agent writes, instead of dropping to the page's body.
  const answered = useRef(false);
  useEffect(() => {
    if (gateId !== null || !answered.current) return;
    answered.current = false;
    const active = document.activeElement;
    if (active && active !== document.body) return;
    document.querySelector<HTMLElement>('[data-testid="conversation"]')?.focus();
  }, [gateId]);

  if (!gate) return null;
  const name = STAGE_LABEL[gate.stage];
  const nextStage = STAGES[STAGES.indexOf(gate.stage) + 1];
  const next = nextStage ? STAGE_LABEL[nextStage] : null;
  const live = actions.gate === gate.stage;
  const busy = approving || rejecting;
  const count = charCount(feedback.trim());
  const tooLong = count > LIMITS.feedbackChars;
  const canSubmit = live && !busy && count > 0 && !tooLong;

  const approve = () => {
    if (!live || busy) return;
    answered.current = true;
    sessionClient.send({ type: "approve", stage: gate.stage });
  };
  const submit = () => {
    if (!canSubmit) return;
    answered.current = true;
    sessionClient.send({ type: "reject", stage: gate.stage, feedback: feedback.trim() });
  };

  return (
    <Panel
      data-testid="approval-panel"
      data-stage={gate.stage}
      data-version={gate.version}
      titleId={titleId}
      tone="info"
      title={`${name} needs your approval`}
    >
      {interruptMessage ? (
        <p>{interruptMessage}</p>
      ) : (
        <p>
          The {name}'s work (version {gate.version}) is ready. {next ? `Approve to hand it to the ${next}` : "Approve to finish the plan"}, or
          request changes and the {name} writes version {gate.version + 1} with your feedback.
        </p>
      )}
      <div className="mt-3 flex flex-wrap gap-2">
        <Button variant="success" data-testid="approve-button" disabled={!live || busy} onClick={approve}>
          {approving ? "Approving…" : `Approve ${name}`}
        </Button>
        <Button
          variant="outline"
          data-testid="request-changes-button"
          aria-expanded={feedbackOpen}
          aria-controls={feedbackId}
          disabled={!live || busy}
          onClick={() => setFeedbackOpen((open) => !open)}
        >
          Request changes
        </Button>
      </div>
      {feedbackOpen ? (
        <form
          className="mt-3 space-y-2"
          onSubmit={(e) => {
            e.preventDefault();
            submit();
          }}
        >
          <label htmlFor={feedbackId} className="block text-sm font-medium">
            What should {name} change?
          </label>
          <Textarea
            id={feedbackId}
            ref={feedbackRef}
            data-testid="feedback-input"
            rows={4}
            value={feedback}
            aria-describedby={counterId}
            aria-invalid={tooLong}
            placeholder="For example: the scope is too broad; focus on the mobile app first."
            onChange={(e) => setFeedback(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                submit();
              }
            }}
          />
          <div className="flex flex-wrap items-center justify-between gap-2">
            <span id={counterId} className={cn("text-xs tabular-nums", tooLong ? "font-semibold text-red-700" : "text-slate-500")}>
              {count} / {LIMITS.feedbackChars} characters{tooLong ? " — too long" : ""}
            </span>
            <div className="flex gap-2">
              <Button variant="ghost" onClick={() => setFeedbackOpen(false)}>
                Close
              </Button>
              <Button type="submit" variant="primary" data-testid="submit-feedback-button" disabled={!canSubmit}>
                {rejecting ? "Sending…" : "Send feedback"}
              </Button>
            </div>
          </div>
        </form>
      ) : null}
    </Panel>
  );
}
