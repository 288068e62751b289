// A dialog-like panel that stays in the page flow (no modal trap): a titled, highlighted region
// used for the approval gate and errors.

import type { HTMLAttributes, ReactNode } from "react";
import { cn } from "../../lib/cn";

type Tone = "info" | "warning" | "danger" | "success";

const tones: Record<Tone, string> = {
  info: "border-indigo-300 bg-indigo-50",
  warning: "border-amber-300 bg-amber-50",
  danger: "border-red-300 bg-red-50",
  success: "border-emerald-300 bg-emerald-50",
};

export interface PanelProps extends Omit<HTMLAttributes<HTMLElement>, "title"> {
  title: ReactNode;
  titleId: string;
  tone?: Tone;
  actions?: ReactNode;
}

export function Panel({ title, titleId, tone = "info", actions, className, children, ...props }: PanelProps) {
  return (
    <section
      role="region"
      aria-labelledby={titleId}
      className={cn("rounded-lg border-2 p-4 shadow-sm", tones[tone], className)}
      {...props}
    >
      <div className="flex flex-wrap items-start justify-between gap-2">
        <h2 id={titleId} className="text-base font-semibold text-slate-900" tabIndex={-1}>
          {title}
        </h2>
        {actions}
      </div>
      <div className="mt-2 text-sm text-slate-800">{children}</div>
    </section>
  );
}
