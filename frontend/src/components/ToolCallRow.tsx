// One tool call in the conversation, as a compact row: "Developer wrote src/app.js · 2.1 KB",
// "Tester read src/app.js", "Architect listed the files", "Developer could not write ../x: …".
// Expanding it shows the arguments and the tool's answer as text (file content highlighted),
// never as raw JSON unless the tool is one this page does not know.

import { memo, useDeferredValue, useId, useState } from "react";
import type { ToolCall } from "../protocol/reducer";
import { formatBytes, toolArgsOf, toolKind, utf8Bytes, type ToolArgs, type ToolKind } from "../protocol/toolCalls";
import { languageFor, useHighlighted } from "../lib/highlight";
import { cn } from "../lib/cn";
import { useSessionView } from "../store/session";

/** Past this many characters a streaming file is shown plain until it is complete. */
const LIVE_HIGHLIGHT_MAX = 32_000;

const VERBS: Record<ToolKind, { active: string; done: string; failed: string; stopped: string }> = {
  write: { active: "is writing", done: "wrote", failed: "could not write", stopped: "stopped writing" },
  read: { active: "is reading", done: "read", failed: "could not read", stopped: "stopped reading" },
  list: { active: "is listing the files", done: "listed the files", failed: "could not list the files", stopped: "stopped listing the files" },
  delete: { active: "is deleting", done: "deleted", failed: "could not delete", stopped: "stopped deleting" },
  other: { active: "is calling", done: "called", failed: "could not call", stopped: "stopped calling" },
};

function verbOf(kind: ToolKind, call: ToolCall): string {
  const verbs = VERBS[kind];
  switch (call.status) {
    case "streaming":
    case "running":
      return verbs.active;
    case "failed":
      return verbs.failed;
    case "interrupted":
      return verbs.stopped;
    default:
      return verbs.done;
  }
}

/** The plain sentence for a call (also used as its accessible name). */
export function toolSentence(call: ToolCall, args: ToolArgs): string {
  const kind = toolKind(call.name);
  const verb = verbOf(kind, call);
  const target = kind === "other" ? call.name : kind === "list" ? "" : (args.path ?? "a file");
  const size = kind === "write" && args.content !== null && call.status !== "failed" ? ` · ${formatBytes(utf8Bytes(args.content))}` : "";
  const error = call.status === "failed" && call.error ? `: ${call.error}` : "";
  return `${call.agent} ${verb}${target ? ` ${target}` : ""}${size}${error}`;
}

function CodeBlock({ text, path, label, live }: { text: string; path: string | null; label: string; live: boolean }) {
  const language = path ? languageFor(path) : null;
  const highlighted = useHighlighted(text, language, !(live && text.length > LIVE_HIGHLIGHT_MAX));
  return (
    <pre
      tabIndex={0}
      aria-label={label}
      className="code-view max-h-72 overflow-auto rounded border border-slate-200 bg-white p-2 whitespace-pre focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
      data-language={language ?? "plaintext"}
    >
      <code>{highlighted}</code>
    </pre>
  );
}

function Details({ call, args }: { call: ToolCall; args: ToolArgs }) {
  const kind = toolKind(call.name);
  const live = call.status === "streaming";
  const rows: { label: string; value: string }[] = [];
  if (args.path !== null) rows.push({ label: "Path", value: args.path });
  if (kind === "write" && args.content !== null) rows.push({ label: "Size", value: `${formatBytes(utf8Bytes(args.content))}${live ? " so far" : ""}` });
  return (
    <div className="mt-2 space-y-2 text-xs" data-testid="tool-call-details">
      {rows.length ? (
        <dl className="grid grid-cols-[auto_minmax(0,1fr)] gap-x-3 gap-y-1">
          {rows.map((row) => (
            <div key={row.label} className="contents">
              <dt className="font-medium text-slate-600">{row.label}</dt>
              <dd className="break-all font-mono text-slate-900">{row.value}</dd>
            </div>
          ))}
        </dl>
      ) : null}
      {kind === "write" && args.content !== null ? (
        <CodeBlock text={args.content} path={args.path} label={`Content written to ${args.path ?? "the file"}`} live={live} />
      ) : null}
      {kind === "other" && Object.keys(args.value).length ? (
        <CodeBlock text={JSON.stringify(args.value, null, 2)} path="arguments.json" label="Arguments" live={live} />
      ) : null}
      {call.status === "failed" ? (
        <p className="rounded border border-red-200 bg-red-50 px-2 py-1 text-red-900" data-testid="tool-call-error">
          {call.error}
        </p>
      ) : call.result !== null ? (
        kind === "read" ? (
          <CodeBlock text={call.result} path={args.path} label={`Content of ${args.path ?? "the file"}`} live={false} />
        ) : (
          <div>
            <p className="font-medium text-slate-600">{kind === "list" ? "Files" : "Answer"}</p>
            <pre tabIndex={0} className="max-h-48 overflow-auto whitespace-pre-wrap break-words rounded border border-slate-200 bg-white p-2 font-mono text-slate-800" data-testid="tool-call-result">
              {call.result}
            </pre>
          </div>
        )
      ) : call.status === "interrupted" ? (
        <p className="text-amber-800">The message was cut short before the tool answered; nothing was changed by this call.</p>
      ) : (
        <p className="text-slate-500">{live ? "Arguments are still arriving…" : "Waiting for the tool's answer…"}</p>
      )}
    </div>
  );
}

const tone: Record<ToolCall["status"], string> = {
  streaming: "border-indigo-200 bg-indigo-50/60",
  running: "border-indigo-200 bg-indigo-50/60",
  done: "border-slate-200 bg-slate-50",
  failed: "border-red-200 bg-red-50/70",
  interrupted: "border-amber-200 bg-amber-50/70",
};

// Icons as SVG paths (24×24, stroked): an emoji glyph shows as an empty box where no font has it.
const ICON_PATHS: Record<ToolKind, string> = {
  write: "M4 20h4L19 9l-4-4L4 16v4z M14 6l4 4",
  read: "M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12z M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
  list: "M8 6h13 M8 12h13 M8 18h13 M3 6h1 M3 12h1 M3 18h1",
  delete: "M3 6h18 M8 6V4h8v2 M6 6l1 14h10l1-14",
  other: "M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z M12 2v3 M12 19v3 M2 12h3 M19 12h3",
};

function ToolIcon({ kind }: { kind: ToolKind }) {
  return (
    <svg viewBox="0 0 24 24" width="14" height="14" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true" data-testid="tool-icon">
      <path d={ICON_PATHS[kind]} />
    </svg>
  );
}

export const ToolCallRow = memo(function ToolCallRow({ id }: { id: string }) {
  const call = useSessionView((s) => s.view.toolCalls[id]);
  // A large file's arguments grow by many pieces a second: let React skip frames under load.
  const argsText = useDeferredValue(call?.args ?? "");
  const [open, setOpen] = useState(false);
  const bodyId = useId();
  if (!call) return null;
  const args = toolArgsOf(call.id, argsText);
  const kind = toolKind(call.name);
  const target = kind === "other" ? call.name : kind === "list" ? null : (args.path ?? "a file");
  const active = call.status === "streaming" || call.status === "running";
  return (
    <div
      data-testid="tool-call"
      data-tool={call.name}
      data-status={call.status}
      data-path={args.path ?? ""}
      data-tool-call-id={call.id}
      className={cn("my-1 rounded-md border text-sm", tone[call.status])}
    >
      <button
        type="button"
        aria-expanded={open}
        aria-controls={bodyId}
        onClick={() => setOpen((o) => !o)}
        className="flex w-full min-w-0 items-center gap-2 rounded-md px-2 py-1 text-left focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
        data-testid="tool-call-toggle"
      >
        <span aria-hidden="true" className="flex w-4 shrink-0 justify-center text-slate-500">
          <ToolIcon kind={kind} />
        </span>
        <span className="min-w-0 flex-1 break-words" data-testid="tool-call-summary">
          <span className="font-medium">{call.agent}</span> {verbOf(kind, call)}
          {target ? (
            <>
              {" "}
              <code className="rounded bg-white/80 px-1 font-mono text-[0.8rem] break-all">{target}</code>
            </>
          ) : null}
          {kind === "write" && args.content !== null && call.status !== "failed" ? (
            <span className="text-slate-600"> · {formatBytes(utf8Bytes(args.content))}</span>
          ) : null}
          {call.status === "failed" && call.error ? <span className="text-red-800">: {call.error}</span> : null}
        </span>
        {active ? <span className="h-1.5 w-1.5 shrink-0 animate-pulse rounded-full bg-indigo-500" aria-hidden="true" /> : null}
        <span aria-hidden="true" className="shrink-0 text-xs text-slate-500">
          {open ? "▾" : "▸"}
        </span>
      </button>
      <div id={bodyId} hidden={!open} className="px-2 pb-2">
        {open ? <Details call={call} args={args} /> : null}
      </div>
    </div>
  );
});
