// The brief box: what to build, a character counter (8000 max, counted as the server counts),
// the approval mode, a model per agent (when the server has real models: `GET /api/models`), and
// Start. Ctrl/⌘+Enter starts too.

import { useEffect, useId } from "react";
import { LIMITS, STAGE_LABEL, type ApprovalMode, type ModelChoices, type StageModels } from "../protocol/types";
import { chosenModels, selectedModel } from "../protocol/models";
import { useDraftStore } from "../store/draft";
import { useModelsStore } from "../store/models";
import { charCount } from "../lib/format";
import { formatUsd, modelOptionLabel } from "../lib/money";
import { cn } from "../lib/cn";
import { Button } from "./ui/button";
import { Textarea } from "./ui/textarea";

export interface BriefFormProps {
  /** `models`: the agents whose model the user changed from its default (absent: all defaults). */
  onStart(brief: string, approval: ApprovalMode, models?: ModelChoices): void;
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
    if (!canStart) return;
    const { models } = useDraftStore.getState();
    const chosen = chosenModels(useModelsStore.getState().catalog, models);
    if (chosen) onStart(brief.trim(), approval, chosen);
    else onStart(brief.trim(), approval);
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
      <ModelPickers />
      <div className="flex flex-wrap items-center gap-3">
        <Button type="submit" variant="primary" size="lg" data-testid="start-button" disabled={!canStart}>
          {busy ? "Starting…" : "Start"}
        </Button>
        {blockedReason ? <span className="text-sm text-slate-600">{blockedReason}</span> : null}
      </div>
    </form>
  );
}

function ModelPicker({ stage }: { stage: StageModels }) {
  const pick = useDraftStore((s) => s.models[stage.stage]);
  const setModel = useDraftStore((s) => s.setModel);
  const id = useId();
  const value = selectedModel(stage, pick ? { [stage.stage]: pick } : {});
  return (
    <div className="grid min-w-0 gap-0.5 sm:grid-cols-[6rem_minmax(0,1fr)] sm:items-center sm:gap-2">
      <label htmlFor={id} className="block text-xs font-medium text-slate-700 sm:text-sm">
        {STAGE_LABEL[stage.stage]}
      </label>
      <select
        id={id}
        data-testid={`model-select-${stage.stage}`}
        value={value}
        onChange={(e) => setModel(stage.stage, e.target.value)}
        className={cn(
          "block w-full min-w-0 max-w-full truncate rounded-md border bg-white px-2 py-1.5 text-sm focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500",
          value === stage.default ? "border-slate-300" : "border-indigo-400",
        )}
      >
        {stage.offered.map((m) => (
          <option key={m.id} value={m.id}>
            {modelOptionLabel(m)}
            {m.id === stage.default ? " (default)" : ""}
          </option>
        ))}
      </select>
    </div>
  );
}

/** One model picker per agent when the server has real models; a short note in demo mode. */
function ModelPickers() {
  const catalog = useModelsStore((s) => s.catalog);
  const load = useModelsStore((s) => s.load);
  useEffect(() => load(), [load]);
  if (!catalog) return null;
  if (catalog.demo) {
    return (
      <p className="text-xs text-slate-600" data-testid="models-demo-note">
        Demo mode: no API key is configured, so the agents answer with built-in demo text and cost nothing.
      </p>
    );
  }
  if (catalog.stages.length === 0) return null;
  return (
    <fieldset data-testid="model-pickers">
      <legend className="mb-1 text-sm font-semibold">Models</legend>
      <p className="mb-2 text-xs text-slate-600">
        Each agent&apos;s model, with its price per million tokens (input / output).
        {catalog.budgetMicroUsd !== null ? ` A session stops starting agents once it has spent ${formatUsd(catalog.budgetMicroUsd)}.` : ""}
      </p>
      <div className="grid gap-2">
        {catalog.stages.map((stage) => (
          <ModelPicker key={stage.stage} stage={stage} />
        ))}
      </div>
    </fieldset>
  );
}
