// Errors in plain words: what went wrong, what happens next (with a live countdown to an
// automatic retry), and the raw details behind a toggle. Errors that later events resolved (a
// retry that worked, a new run) disappear by themselves; the rest can be dismissed.

import { memo, useState } from "react";
import { useShallow } from "zustand/react/shallow";
import { activeErrors, type UiError } from "../protocol/reducer";
import { useSessionStore } from "../store/session";
import { secondsUntil } from "../lib/format";
import { useNow } from "../lib/useNow";
import { cn } from "../lib/cn";
import { Button } from "./ui/button";

const MAX_SHOWN = 3;

const ErrorItem = memo(function ErrorItem({ error }: { error: UiError }) {
  const [open, setOpen] = useState(false);
  const counting = error.retryAt !== null;
  const now = useNow(counting);
  const dismiss = useSessionStore((s) => s.dismissError);
  const severe = error.source === "run" || error.source === "client";
  const retryIn = error.retryAt !== null ? secondsUntil(error.retryAt, now) : null;

  return (
    <div
      role="alert"
      data-testid="error-banner"
      data-code={error.code}
      data-source={error.source}
      className={cn(
        "rounded-lg border-2 p-3 text-sm",
        severe ? "border-red-300 bg-red-50 text-red-950" : "border-amber-300 bg-amber-50 text-amber-950",
      )}
    >
      <div className="flex items-start justify-between gap-2">
        <p className="font-semibold">{error.title}</p>
        <Button variant="ghost" size="sm" className="-mr-1 -mt-1 h-7 px-2" aria-label={`Dismiss: ${error.title}`} onClick={() => dismiss(error.id)}>
          ✕
        </Button>
      </div>
      {error.message ? <p className="mt-1" data-testid="error-message">{error.message}</p> : null}
      <p className="mt-1">
        <span className="font-medium">What happens next: </span>
        {retryIn !== null ? (retryIn > 0 ? `Trying again by itself in ${retryIn} s. ` : "Trying again now. ") : null}
        {error.next}
      </p>
      <button
        type="button"
        className="mt-1 text-xs underline underline-offset-2 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
        aria-expanded={open}
        onClick={() => setOpen((o) => !o)}
      >
        {open ? "Hide details" : "Details"}
      </button>
      {open ? (
        <pre tabIndex={0} className="mt-1 max-h-48 overflow-auto whitespace-pre-wrap break-all rounded bg-white/70 p-2 text-xs" data-testid="error-details">
          {`code: ${error.code}\n${error.details}`}
        </pre>
      ) : null}
    </div>
  );
});

export function ErrorBanner() {
  const errors = useSessionStore(useShallow((s) => activeErrors(s.view).slice(-MAX_SHOWN).reverse()));
  if (errors.length === 0) return null;
  return (
    <section aria-label="Problems" className="flex flex-col gap-2">
      {errors.map((e) => (
        <ErrorItem key={e.id} error={e} />
      ))}
    </section>
  );
}
