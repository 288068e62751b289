// The project the agents write: a tree of the current files (`state.files`) that grows as they
// are written, the file being written streaming in as its tool call's arguments arrive, a viewer
// with syntax highlighting and every kept version, a line diff between two versions, and the
// whole project as a zip. File content is fetched from `/files/{path}?version=K` and is only
// ever shown as text.

import { memo, useCallback, useContext, useDeferredValue, useEffect, useId, useLayoutEffect, useMemo, useRef, useState } from "react";
import { downloadProjectZip, getFileText, getProjectFiles } from "../net/api";
import { STAGE_LABEL, projectFiles, type FileInfo, type ProjectFileVersion } from "../protocol/types";
import { formatBytes, toolArgsOf, toolKind, utf8Bytes } from "../protocol/toolCalls";
import { useViewRevoked } from "../store/connection";
import { FrozenClockContext } from "../lib/useNow";
import { languageFor, useHighlighted } from "../lib/highlight";
import { cn } from "../lib/cn";
import { useSessionView, type SessionStore } from "../store/session";
import { DiffView } from "./DiffView";
import { Badge } from "./ui/badge";
import { Button } from "./ui/button";

/** Past this many characters a file being written is shown plain until it is complete. */
const LIVE_HIGHLIGHT_MAX = 32_000;

interface LiveWrite {
  callId: string;
  kind: "write" | "delete";
  agent: string;
  /** The path so far; final once `pathComplete`. */
  path: string | null;
  pathComplete: boolean;
}

/** Session key + tool call id → the call's path, once the path is whole. */
const wholePaths = new Map<string, string>();

/**
 * The writes and deletes the agents are making now (calls not answered yet), as a string so the
 * panel re-renders when one starts, ends or its path is known, not on every piece of content.
 */
function liveWritesKey(s: SessionStore): string {
  const list: LiveWrite[] = [];
  for (const id of s.view.openToolCalls) {
    const call = s.view.toolCalls[id];
    if (!call) continue;
    const kind = toolKind(call.name);
    if (kind !== "write" && kind !== "delete") continue;
    // A path never changes once whole: later pieces (the content) need no parse here.
    const key = `${s.view.sessionId ?? ""}\n${call.id}`;
    const known = wholePaths.get(key);
    if (known !== undefined) {
      list.push({ callId: call.id, kind, agent: call.agent, path: known, pathComplete: true });
      continue;
    }
    const args = toolArgsOf(call.id, call.args);
    if (args.pathComplete && args.path !== null) {
      wholePaths.set(key, args.path);
      if (wholePaths.size > 256) wholePaths.delete(wholePaths.keys().next().value!);
    }
    list.push({ callId: call.id, kind, agent: call.agent, path: args.path, pathComplete: args.pathComplete });
  }
  return JSON.stringify(list);
}

function useLiveWrites(): LiveWrite[] {
  const key = useSessionView(liveWritesKey);
  return useMemo(() => JSON.parse(key) as LiveWrite[], [key]);
}

// ---------------------------------------------------------------------------------------------
// Tree

interface TreeNode {
  name: string;
  /** The folder's or file's full path. */
  path: string;
  folders: TreeNode[];
  files: string[];
}

/** Folders first, then files, each sorted by name; built from the project's paths. */
export function buildTree(paths: Iterable<string>): TreeNode {
  const root: TreeNode = { name: "", path: "", folders: [], files: [] };
  const folders = new Map<string, TreeNode>([["", root]]);
  for (const path of paths) {
    const segments = path.split("/");
    let node = root;
    for (let i = 0; i < segments.length - 1; i++) {
      const folderPath = segments.slice(0, i + 1).join("/");
      let child = folders.get(folderPath);
      if (!child) {
        child = { name: segments[i]!, path: folderPath, folders: [], files: [] };
        folders.set(folderPath, child);
        node.folders.push(child);
      }
      node = child;
    }
    if (!node.files.includes(path)) node.files.push(path);
  }
  const sort = (node: TreeNode) => {
    node.folders.sort((a, b) => a.name.localeCompare(b.name));
    node.files.sort((a, b) => a.localeCompare(b));
    node.folders.forEach(sort);
  };
  sort(root);
  return root;
}

interface TreeProps {
  node: TreeNode;
  depth: number;
  files: Readonly<Record<string, FileInfo>>;
  writing: ReadonlySet<string>;
  selected: string | null;
  collapsed: ReadonlySet<string>;
  onToggle(folder: string): void;
  onOpen(path: string): void;
}

function TreeLevel({ node, depth, files, writing, selected, collapsed, onToggle, onOpen }: TreeProps) {
  const indent = { paddingLeft: `${0.25 + depth * 0.85}rem` };
  return (
    <ul role="list" className="flex flex-col">
      {node.folders.map((folder) => {
        const open = !collapsed.has(folder.path);
        return (
          <li key={`d:${folder.path}`}>
            <button
              type="button"
              aria-expanded={open}
              onClick={() => onToggle(folder.path)}
              className="flex w-full min-w-0 items-center gap-1 rounded px-1 py-0.5 text-left text-sm text-slate-800 hover:bg-slate-100 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-indigo-500"
              style={indent}
              data-testid="file-tree-folder"
              data-path={folder.path}
            >
              <span aria-hidden="true" className="w-3 shrink-0 text-xs text-slate-500">
                {open ? "▾" : "▸"}
              </span>
              <span className="min-w-0 break-all font-medium">{folder.name}/</span>
            </button>
            {open ? <TreeLevel {...{ files, writing, selected, collapsed, onToggle, onOpen }} node={folder} depth={depth + 1} /> : null}
          </li>
        );
      })}
      {node.files.map((path) => {
        const info = files[path];
        const live = writing.has(path);
        const name = path.slice(path.lastIndexOf("/") + 1);
        return (
          <li key={`f:${path}`}>
            <button
              type="button"
              aria-current={selected === path ? "true" : undefined}
              onClick={() => onOpen(path)}
              className={cn(
                "flex w-full min-w-0 items-center gap-2 rounded px-1 py-0.5 text-left text-sm hover:bg-slate-100 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-indigo-500",
                selected === path && "bg-indigo-50 text-indigo-950 hover:bg-indigo-100",
              )}
              style={{ paddingLeft: `${1.05 + depth * 0.85}rem` }}
              title={info ? `${path} · ${formatBytes(info.bytes)} · version ${info.version} by the ${STAGE_LABEL[info.stage] ?? info.stage}` : path}
              data-testid="file-tree-file"
              data-path={path}
              data-writing={live ? "true" : "false"}
              data-version={info?.version ?? ""}
            >
              <span className="min-w-0 flex-1 break-all font-mono text-[0.8rem]">{name}</span>
              {live ? (
                <span className="inline-flex shrink-0 items-center gap-1 text-xs text-indigo-700">
                  <span className="h-1.5 w-1.5 animate-pulse rounded-full bg-indigo-500" aria-hidden="true" />
                  writing…
                </span>
              ) : info ? (
                <span className="shrink-0 text-xs tabular-nums text-slate-600">{formatBytes(info.bytes)}</span>
              ) : null}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

// ---------------------------------------------------------------------------------------------
// Viewer

interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function useFileText(key: string | null, path: string | null, version: number | null): Loaded<string> {
  const [result, setResult] = useState<Loaded<string>>({ data: null, error: null, loading: false });
  useEffect(() => {
    if (!key || !path || !version) {
      setResult({ data: null, error: null, loading: false });
      return;
    }
    const controller = new AbortController();
    setResult({ data: null, error: null, loading: true });
    getFileText(key, path, version, controller.signal)
      .then((text) => setResult({ data: text, error: null, loading: false }))
      .catch((err: unknown) => {
        if (!controller.signal.aborted) setResult({ data: null, error: errorText(err), loading: false });
      });
    return () => controller.abort();
  }, [key, path, version]);
  return result;
}

/** The file's kept versions (from `GET /files`), refreshed when the file changes. */
function useFileVersions(key: string | null, path: string, latest: number): ProjectFileVersion[] | null {
  const [versions, setVersions] = useState<ProjectFileVersion[] | null>(null);
  useEffect(() => {
    setVersions(null);
    if (!key || !latest) return;
    const controller = new AbortController();
    getProjectFiles(key, controller.signal)
      .then((list) => setVersions(list.files.find((f) => f.path === path)?.versions ?? []))
      .catch(() => {
        // The viewer still shows the current version; only the version list is missing.
      });
    return () => controller.abort();
  }, [key, path, latest]);
  return versions;
}

function CodeView({ text, path, live, label }: { text: string; path: string; live: boolean; label: string }) {
  const language = languageFor(path);
  const deferred = useDeferredValue(text);
  const shown = live ? text : deferred;
  const nodes = useHighlighted(shown, language, !(live && shown.length > LIVE_HIGHLIGHT_MAX));
  const ref = useRef<HTMLPreElement>(null);
  // A file being written follows its newest line.
  useLayoutEffect(() => {
    if (live && ref.current) ref.current.scrollTop = ref.current.scrollHeight;
  }, [live, shown]);
  return (
    <pre
      ref={ref}
      tabIndex={0}
      aria-label={label}
      className="code-view max-h-[60vh] min-h-24 overflow-auto rounded-md border border-slate-200 bg-white p-3 whitespace-pre focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
      data-testid="file-content"
      data-language={language ?? "plaintext"}
      data-live={live ? "true" : "false"}
    >
      <code>{nodes}</code>
    </pre>
  );
}

/** The content of a file being written, read from its tool call's arguments as they stream. */
function LiveContent({ callId, path }: { callId: string; path: string }) {
  const args = useSessionView((s) => s.view.toolCalls[callId]?.args ?? "");
  const content = toolArgsOf(callId, args).content ?? "";
  return (
    <>
      <p className="mb-1 text-xs text-indigo-800" role="status">
        Being written now · {formatBytes(utf8Bytes(content))} so far
      </p>
      <CodeView text={content} path={path} live label={`${path || "A new file"}, being written`} />
    </>
  );
}

/**
 * A write whose path has not arrived yet (a model may send `content` before `path`): its content
 * is shown growing all the same, and the file is named the moment its path is whole.
 */
function UnnamedLiveFile({ callId, agent }: { callId: string; agent: string }) {
  const titleId = useId();
  return (
    <section aria-labelledby={titleId} className="flex min-w-0 flex-col gap-2" data-testid="file-viewer" data-path="" data-unnamed="true">
      <div className="flex flex-wrap items-center gap-2">
        <h3 id={titleId} className="text-sm font-semibold">
          A new file from the {agent}
        </h3>
        <Badge tone="blue">writing…</Badge>
        <span className="text-xs text-slate-600">its name comes after its content</span>
      </div>
      <LiveContent callId={callId} path="" />
    </section>
  );
}

type Mode = "code" | "diff";

const FileViewer = memo(function FileViewer({ sessionKey, path, info, liveCallId }: { sessionKey: string | null; path: string; info: FileInfo | undefined; liveCallId: string | null }) {
  const latest = info?.version ?? 0;
  const [chosen, setChosen] = useState<number | null>(null);
  const [mode, setMode] = useState<Mode>("code");
  const [base, setBase] = useState<number | null>(null);
  const modeGroup = useId();

  // Another file, or a new version of this one: back to its newest version.
  useEffect(() => {
    setChosen(null);
    setBase(null);
  }, [path, latest]);
  useEffect(() => setMode("code"), [path]);

  const kept = useFileVersions(sessionKey, path, latest);
  // Only versions up to the one this view knows of (a replay shows the project as it was then).
  const readable = (kept ?? []).filter((v) => !v.deleted && v.version <= latest);
  const versionList = readable.length ? readable.map((v) => v.version) : latest ? [latest] : [];
  const version = chosen ?? (latest || null);
  const baseVersion = base ?? [...versionList].reverse().find((v) => version !== null && v < version) ?? versionList.find((v) => v !== version) ?? null;
  const live = liveCallId !== null;
  const text = useFileText(live && chosen === null ? null : sessionKey, path, version);
  const baseText = useFileText(mode === "diff" && !live ? sessionKey : null, path, baseVersion);
  const versionInfo = readable.find((v) => v.version === version);

  return (
    <section aria-labelledby={`${modeGroup}-title`} className="flex min-w-0 flex-col gap-2" data-testid="file-viewer" data-path={path} data-version={version ?? ""}>
      <div className="flex flex-wrap items-center gap-2">
        <h3 id={`${modeGroup}-title`} className="min-w-0 break-all font-mono text-sm font-semibold">
          {path}
        </h3>
        {info ? <Badge tone="indigo">{STAGE_LABEL[info.stage] ?? info.stage}</Badge> : null}
        {live ? <Badge tone="blue">writing…</Badge> : info ? <Badge>{formatBytes(versionInfo?.bytes ?? info.bytes)}</Badge> : null}
      </div>
      {!live && info ? (
        <div className="flex flex-wrap items-center gap-2 text-sm">
          <label className="flex items-center gap-1">
            <span>Version</span>
            <select
              className="rounded border border-slate-300 bg-white px-1 py-1 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
              data-testid="file-version"
              value={version ?? ""}
              onChange={(e) => setChosen(Number(e.target.value))}
            >
              {versionList.map((v, i) => (
                <option key={v} value={v}>
                  {`v${i + 1}`}
                  {v === latest ? " (current)" : ""}
                </option>
              ))}
            </select>
          </label>
          <div role="group" aria-label="View" className="inline-flex overflow-hidden rounded-md border border-slate-300">
            {(["code", "diff"] as const).map((m) => (
              <button
                key={m}
                type="button"
                aria-pressed={mode === m}
                data-testid={`file-mode-${m}`}
                disabled={m === "diff" && versionList.length < 2}
                onClick={() => setMode(m)}
                className={cn(
                  "px-2 py-1 text-xs focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-indigo-500 disabled:opacity-40",
                  mode === m ? "bg-slate-900 text-white" : "bg-white hover:bg-slate-100",
                )}
              >
                {m === "code" ? "Code" : "Changes"}
              </button>
            ))}
          </div>
          {mode === "diff" && versionList.length >= 2 ? (
            <label className="flex items-center gap-1">
              <span>compared with</span>
              <select
                className="rounded border border-slate-300 bg-white px-1 py-1 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                data-testid="file-base-version"
                value={baseVersion ?? ""}
                onChange={(e) => setBase(Number(e.target.value))}
              >
                {versionList.map((v, i) =>
                  v === version ? null : (
                    <option key={v} value={v}>
                      {`v${i + 1}`}
                    </option>
                  ),
                )}
              </select>
            </label>
          ) : null}
        </div>
      ) : null}
      {live && chosen === null ? (
        <LiveContent callId={liveCallId} path={path} />
      ) : text.loading ? (
        <p className="text-sm text-slate-500">Loading…</p>
      ) : text.error ? (
        <p className="text-sm text-red-700" role="alert">
          Could not load this file: {text.error}
        </p>
      ) : text.data !== null && mode === "diff" ? (
        baseText.data !== null ? (
          <DiffView before={baseText.data} after={text.data} testId="file-diff" label={`Changes to ${path}`} />
        ) : baseText.error ? (
          <p className="text-sm text-red-700">Could not load the other version: {baseText.error}</p>
        ) : (
          <p className="text-sm text-slate-500">Loading the other version…</p>
        )
      ) : text.data !== null ? (
        <CodeView text={text.data} path={path} live={false} label={`Content of ${path}`} />
      ) : !info ? (
        <p className="text-sm text-slate-500">This file is not in the project (any more).</p>
      ) : null}
    </section>
  );
});

// ---------------------------------------------------------------------------------------------
// Panel

function ZipButton({ sessionKey, disabled }: { sessionKey: string | null; disabled: boolean }) {
  // The server zips the project as it stands: in a replay, say so rather than imply the scrubbed point.
  const replaying = useContext(FrozenClockContext) !== null;
  const [status, setStatus] = useState<{ tone: "info" | "error"; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const download = async () => {
    if (!sessionKey) return;
    setBusy(true);
    setStatus(null);
    try {
      const name = await downloadProjectZip(sessionKey);
      setStatus({ tone: "info", text: `Saved ${name}.` });
    } catch (err) {
      setStatus({ tone: "error", text: `The project could not be downloaded: ${errorText(err)}` });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="flex flex-wrap items-center gap-2">
      {status ? (
        <span role={status.tone === "error" ? "alert" : "status"} className={status.tone === "error" ? "text-xs text-red-700" : "text-xs text-slate-600"} data-testid="zip-status">
          {status.text}
        </span>
      ) : null}
      <Button size="sm" variant="outline" data-testid="download-zip-button" disabled={disabled || busy || !sessionKey} onClick={() => void download()}>
        {busy ? "Preparing…" : replaying ? "Download today's project (.zip)" : "Download project (.zip)"}
      </Button>
    </div>
  );
}

export function FilesPanel() {
  const sessionKey = useSessionView((s) => s.view.sessionId);
  const files = useSessionView((s) => projectFiles(s.view.state));
  const live = useLiveWrites();
  const revoked = useViewRevoked();
  const [selected, setSelected] = useState<string | null>(null);
  const [follow, setFollow] = useState(true);
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(() => new Set());

  const liveByPath = useMemo(() => {
    const map = new Map<string, LiveWrite>();
    for (const w of live) if (w.path !== null && w.pathComplete) map.set(w.path, w);
    return map;
  }, [live]);
  const writing = useMemo(() => new Set([...liveByPath.values()].filter((w) => w.kind === "write").map((w) => w.path!)), [liveByPath]);
  const paths = useMemo(() => [...new Set([...Object.keys(files), ...writing])], [files, writing]);
  const tree = useMemo(() => buildTree(paths), [paths]);
  const newestWrite = [...live].reverse().find((w) => w.kind === "write" && w.pathComplete && w.path !== null);
  // The newest write, when its path is not whole yet: followed, its content is shown unnamed.
  const lastWrite = [...live].reverse().find((w) => w.kind === "write");
  const unnamed = follow && lastWrite && !lastWrite.pathComplete ? lastWrite : null;

  // Following the agents: the file being written is the one shown, and stays shown after.
  useEffect(() => {
    if (follow && newestWrite?.path) setSelected(newestWrite.path);
  }, [follow, newestWrite?.path]);

  const open = useCallback((path: string) => {
    setSelected(path);
    setFollow(false);
  }, []);
  const toggle = useCallback((folder: string) => {
    setCollapsed((prev) => {
      const next = new Set(prev);
      if (next.has(folder)) next.delete(folder);
      else next.add(folder);
      return next;
    });
  }, []);

  const count = Object.keys(files).length;
  const total = Object.values(files).reduce((n, f) => n + (typeof f?.bytes === "number" ? f.bytes : 0), 0);
  const selectedLive = selected ? liveByPath.get(selected) : undefined;
  const shownLive = selectedLive?.kind === "write" ? selectedLive.callId : null;
  const titleId = useId();

  return (
    <section aria-labelledby={titleId} className="flex min-w-0 flex-col gap-2" data-testid="files-panel" data-count={count}>
      <div className="flex flex-wrap items-center justify-between gap-2">
        <div className="flex items-baseline gap-2">
          <h2 id={titleId} className="text-sm font-semibold uppercase tracking-wide text-slate-500">
            Files
          </h2>
          <span className="text-xs text-slate-600 tabular-nums" data-testid="files-summary">
            {count === 1 ? "1 file" : `${count} files`}
            {count ? ` · ${formatBytes(total)}` : ""}
          </span>
        </div>
        {revoked ? null : <ZipButton sessionKey={sessionKey} disabled={count === 0} />}
      </div>
      <div className="rounded-lg border border-slate-200 bg-white p-2 shadow-sm">
        {live.length ? (
          <ul className="mb-2 flex flex-col gap-1" aria-label="Being written now" data-testid="file-writing">
            {live.map((w) => (
              <li key={w.callId} className="flex flex-wrap items-center gap-1 rounded bg-indigo-50 px-2 py-1 text-xs text-indigo-950">
                <span className="h-1.5 w-1.5 animate-pulse rounded-full bg-indigo-500" aria-hidden="true" />
                {w.agent} is {w.kind === "write" ? "writing" : "deleting"}{" "}
                {w.pathComplete && w.path ? <code className="break-all font-mono">{w.path}</code> : <span>a new file (its name is not known yet)</span>}
                {w.pathComplete && w.path && selected !== w.path ? (
                  <Button size="sm" variant="link" className="h-auto py-0 text-xs" onClick={() => w.path && open(w.path)}>
                    Show
                  </Button>
                ) : null}
              </li>
            ))}
          </ul>
        ) : null}
        {paths.length === 0 ? (
          <p className="p-3 text-center text-sm text-slate-500" data-testid="files-empty">
            No files yet. When the agents write the project, its files appear here as they are written.
          </p>
        ) : (
          <nav aria-label="Project files" className="max-h-72 overflow-y-auto" data-testid="file-tree">
            <TreeLevel node={tree} depth={0} files={files} writing={writing} selected={selected} collapsed={collapsed} onToggle={toggle} onOpen={open} />
          </nav>
        )}
      </div>
      {paths.length ? (
        <div className="flex flex-wrap items-center justify-between gap-2">
          <p className="text-xs text-slate-600">
            {follow ? "Showing each file as the agents write it." : "Pick a file to read it; Follow shows each file as it is written."}
          </p>
          <Button size="sm" variant="ghost" aria-pressed={follow} data-testid="files-follow" onClick={() => setFollow((f) => !f)}>
            {follow ? "Following the agents" : "Follow the agents"}
          </Button>
        </div>
      ) : null}
      {unnamed ? (
        <div className="rounded-lg border border-slate-200 bg-slate-50 p-2">
          <UnnamedLiveFile callId={unnamed.callId} agent={unnamed.agent} />
        </div>
      ) : selected ? (
        <div className="rounded-lg border border-slate-200 bg-slate-50 p-2">
          <FileViewer sessionKey={sessionKey} path={selected} info={files[selected]} liveCallId={shownLive} />
        </div>
      ) : null}
    </section>
  );
}
