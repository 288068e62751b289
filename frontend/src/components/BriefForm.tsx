// The brief box: what to build, a character counter (8000 max, counted as the server counts),
// the approval mode, and Start. Ctrl/⌘+Enter starts too.

import { useId } from "react";
import { LIMITS, type ApprovalMode } from "../protocol/types";
import { useDraftStore } from "../store/draft";
import { charCount } from "../lib/format";
import { cn } from "../lib/cn";
import { Button } from "./ui/button";
import { Textarea } from "./ui/textarea";

export interface BriefFormProps {
  onStart(brief: string, approval: ApprovalMode): void;
  /** Why Start cannot be pressed now, if it cannot (shown next to the button). */
  blockedReason?: string | null;
  busy?: boolean;
  title?: string;
}

const MODES: Array<{ value: ApprovalMode; label: string; hint: string }> = [
  { value: "each_stage", label: "Approve each stage", hint: "You review every agent's work before the next one starts." },
  { value: "auto", label: "Run straight through", hint: "All five agents run one after another without stopping." },
];

export function BriefForm({ onStart, blockedReason = null, busy = false, title = "What should the team plan?" }: BriefFormProps) {
  const brief = useDraftStore((s) => s.brief);
  const approval = useDraftStore((s) => s.approval);
  const setBrief = useDraftStore((s) => s.setBrief);
  const setApproval = useDraftStore((s) => s.setApproval);
  const briefId = useId();
  const counterId = useId();
  const count = charCount(brief.trim());
  const tooLong = count > LIMITS.briefChars;
  const canStart = count > 0 && !tooLong && !busy && !blockedReason;

  const start = () => {
    if (canStart) onStart(brief.trim(), approval);
  };

  return (
    <form
      aria-label="Start a run"
      className="space-y-3"
      onSubmit={(e) => {
        e.preventDefault();
        start();
      }}
    >
      <div>
        <label htmlFor={briefId} className="mb-1 block text-sm font-semibold">
          {title}
        </label>
        <Textarea
          id={briefId}
          data-testid="brief-input"
          rows={6}
          value={brief}
          aria-describedby={counterId}
          aria-invalid={tooLong}
          placeholder="Describe the project: who it is for, what it must do, constraints, deadlines…"
          onChange={(e) => setBrief(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              start();
            }
          }}
        />
        <p id={counterId} data-testid="brief-counter" className={cn("mt-1 text-xs tabular-nums", tooLong ? "font-semibold text-red-700" : "text-slate-500")}>
          {count} / {LIMITS.briefChars} characters{tooLong ? ` — ${count - LIMITS.briefChars} too many` : ""}
        </p>
      </div>
      <fieldset>
        <legend className="mb-1 text-sm font-semibold">Approval</legend>
        <div className="grid gap-2 sm:grid-cols-2">
          {MODES.map((mode) => (
            <label
              key={mode.value}
              className={cn(
                "flex cursor-pointer gap-2 rounded-md border p-2 text-sm has-[:focus-visible]:ring-2 has-[:focus-visible]:ring-indigo-500",
                approval === mode.value ? "border-indigo-400 bg-indigo-50" : "border-slate-200 bg-white",
              )}
            >
              <input
                type="radio"
                name="approval"
                value={mode.value}
                data-testid={`approval-${mode.value}`}
                checked={approval === mode.value}
                onChange={() => setApproval(mode.value)}
                className="mt-0.5 accent-indigo-600"
              />
              <span>
                <span className="block font-medium">{mode.label}</span>
                <span className="block text-xs text-slate-600">{mode.hint}</span>
              </span>
            </label>
          ))}
        </div>
      </fieldset>
      <div className="flex flex-wrap items-center gap-3">
        <Button type="submit" variant="primary" size="lg" data-testid="start-button" disabled={!canStart}>
          {busy ? "Starting…" : "Start"}
        </Button>
        {blockedReason ? <span className="text-sm text-slate-600">{blockedReason}</span> : null}
      </div>
    </form>
  );
}
