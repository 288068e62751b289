// A line diff of two texts (the `diff` package), shared by the artifacts and the project files:
// added lines green with "+", removed lines red, struck through, with "−". Text only, never HTML.

import { diffLines } from "diff";
import { useMemo } from "react";
import { cn } from "../lib/cn";

export function DiffView({ before, after, testId = "artifact-diff", label }: { before: string; after: string; testId?: string; label?: string }) {
  const parts = useMemo(() => diffLines(before, after), [before, after]);
  const added = parts.filter((p) => p.added).reduce((n, p) => n + (p.count ?? 0), 0);
  const removed = parts.filter((p) => p.removed).reduce((n, p) => n + (p.count ?? 0), 0);
  return (
    <div data-testid={testId} data-added={added} data-removed={removed}>
      <p className="mb-1 text-xs text-slate-600">
        <span className="text-emerald-700">+{added} lines</span> · <span className="text-red-700">−{removed} lines</span>
      </p>
      <pre tabIndex={0} aria-label={label} className="overflow-x-auto rounded border border-slate-200 bg-white text-xs leading-5">
        {parts.map((part, i) => {
          const lines = part.value.replace(/\n$/, "").split("\n");
          const sign = part.added ? "+" : part.removed ? "−" : " ";
          return (
            <span
              key={i}
              data-change={part.added ? "added" : part.removed ? "removed" : "same"}
              className={cn("block px-2", part.added && "bg-emerald-50 text-emerald-900", part.removed && "bg-red-50 text-red-900 line-through decoration-red-300")}
            >
              {lines.map((line) => `${sign} ${line}`).join("\n")}
            </span>
          );
        })}
      </pre>
    </div>
  );
}
