// An agent's reasoning ("thinking", AG-UI REASONING_* events) in its turn: a collapsed row
// "Thinking…" while it streams, "Thought for a moment" / "Thought for 12 s" once it ended.
// Expanding it shows the text as plain text (it streams while open). It is never part of the
// answer's text nor of the artifact.

import { memo, useDeferredValue, useId, useState } from "react";
import type { Reasoning } from "../protocol/reducer";
import { useSessionView } from "../store/session";
import { cn } from "../lib/cn";

/**
 * Blocks the reader opened, by session key and id: a block that began before its answer moves
 * into the answer message when that starts (another place in the tree), and stays open there.
 */
const opened = new Set<string>();

/** Forgets which blocks were opened (tests). */
export function forgetOpenedReasoning(): void {
  opened.clear();
}

/** "Thinking…", "Thought for a moment", "Thought for 12 s", "Thought for 2 min". */
export function reasoningSummary(block: Pick<Reasoning, "streaming" | "startedAt" | "endedAt">): string {
  if (block.streaming) return "Thinking…";
  const ms = block.startedAt !== null && block.endedAt !== null ? block.endedAt - block.startedAt : 0;
  const seconds = Math.round(ms / 1000);
  if (seconds < 2) return "Thought for a moment";
  if (seconds < 90) return `Thought for ${seconds} s`;
  return `Thought for ${Math.round(seconds / 60)} min`;
}

export const ReasoningBlock = memo(function ReasoningBlock({ id }: { id: string }) {
  const block = useSessionView((s) => s.view.reasoning[id]);
  const key = `${useSessionView((s) => s.view.sessionId) ?? ""}\n${id}`;
  const content = useDeferredValue(block?.content ?? "");
  const [open, setOpen] = useState(() => opened.has(key));
  const bodyId = useId();
  if (!block) return null;
  const toggle = () => {
    const next = !open;
    if (next) opened.add(key);
    else opened.delete(key);
    setOpen(next);
  };
  const summary = reasoningSummary(block);
  return (
    <div
      data-testid="reasoning"
      data-reasoning-id={block.id}
      data-streaming={block.streaming ? "true" : "false"}
      data-stage={block.stage ?? ""}
      className={cn("my-1 rounded-md border text-sm", block.streaming ? "border-violet-200 bg-violet-50/70" : "border-slate-200 bg-slate-50")}
    >
      <button
        type="button"
        aria-expanded={open}
        aria-controls={bodyId}
        onClick={toggle}
        data-testid="reasoning-toggle"
        className="flex w-full min-w-0 items-center gap-2 rounded-md px-2 py-1 text-left focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
      >
        <svg aria-hidden="true" viewBox="0 0 16 16" className="h-4 w-4 shrink-0 text-violet-500" fill="currentColor">
          {/* A thought bubble: a cloud and two small circles. */}
          <path d="M5.5 2.5a3 3 0 0 1 5.2.9A2.6 2.6 0 0 1 13.5 6a2.5 2.5 0 0 1-2.4 2.5H5.2A2.5 2.5 0 0 1 4.6 3.6a3 3 0 0 1 .9-1.1Z" />
          <circle cx="4.5" cy="11" r="1.3" />
          <circle cx="2.6" cy="13.8" r="0.8" />
        </svg>
        <span className="min-w-0 flex-1 italic text-slate-700" data-testid="reasoning-summary">
          {summary}
          <span className="sr-only"> ({block.agent}'s reasoning, not part of the answer)</span>
        </span>
        {block.streaming ? <span className="h-1.5 w-1.5 shrink-0 animate-pulse rounded-full bg-violet-500" aria-hidden="true" /> : null}
        <span aria-hidden="true" className="shrink-0 text-xs text-slate-500">
          {open ? "▾" : "▸"}
        </span>
      </button>
      <div id={bodyId} hidden={!open} className="px-2 pb-2">
        {open ? (
          <p tabIndex={0} aria-label={`${block.agent}'s reasoning`} className="max-h-72 overflow-auto focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 whitespace-pre-wrap break-words border-l-2 border-violet-200 pl-2 text-xs text-slate-700" data-testid="reasoning-text">
            {content || (block.streaming ? "…" : "(no text)")}
          </p>
        ) : null}
      </div>
    </div>
  );
});
