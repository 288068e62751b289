// Artifacts: one per agent, every version kept. Pick a version, read it rendered or as Markdown
// source, compare two versions (line diff), copy or download it, or download all latest
// artifacts as one Markdown file.

import { memo, useEffect, useId, useState } from "react";
import { downloadArtifact, getArtifactText, getArtifactVersions } from "../net/api";
import { STAGES, STAGE_LABEL, type ArtifactVersionInfo, type Stage } from "../protocol/types";
import { useSessionStoreApi, useSessionView } from "../store/session";
import { useViewRevoked } from "../store/connection";
import { copyText, downloadText } from "../lib/download";
import { formatClock } from "../lib/format";
import { cn } from "../lib/cn";
import { DiffView } from "./DiffView";
import { Markdown } from "./Markdown";
import { Badge } from "./ui/badge";
import { Button } from "./ui/button";

type Mode = "rendered" | "source" | "diff";

function useLatestVersion(stage: Stage): number {
  return useSessionView((s) => Math.max(s.view.state?.agents[stage]?.version ?? 0, s.view.artifactVersions[stage] ?? 0));
}

interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

function useArtifactVersions(sessionId: string | null, stage: Stage, latest: number, enabled: boolean): Loaded<ArtifactVersionInfo[]> {
  const [result, setResult] = useState<Loaded<ArtifactVersionInfo[]>>({ data: null, error: null, loading: false });
  useEffect(() => {
    if (!enabled || !sessionId || latest === 0) return;
    const controller = new AbortController();
    setResult((r) => ({ ...r, loading: true, error: null }));
    getArtifactVersions(sessionId, stage, controller.signal)
      .then((list) => setResult({ data: list?.versions ?? [], error: null, loading: false }))
      .catch((err: unknown) => {
        if (controller.signal.aborted) return;
        setResult({ data: null, error: err instanceof Error ? err.message : String(err), loading: false });
      });
    return () => controller.abort();
  }, [sessionId, stage, latest, enabled]);
  return result;
}

function useArtifactText(sessionId: string | null, stage: Stage, version: number | null): Loaded<string> {
  const [result, setResult] = useState<Loaded<string>>({ data: null, error: null, loading: false });
  useEffect(() => {
    if (!sessionId || !version) {
      setResult({ data: null, error: null, loading: false });
      return;
    }
    const controller = new AbortController();
    setResult({ data: null, error: null, loading: true });
    getArtifactText(sessionId, stage, version, controller.signal)
      .then((text) => setResult({ data: text, error: null, loading: false }))
      .catch((err: unknown) => {
        if (controller.signal.aborted) return;
        setResult({ data: null, error: err instanceof Error ? err.message : String(err), loading: false });
      });
    return () => controller.abort();
  }, [sessionId, stage, version]);
  return result;
}

const ArtifactCard = memo(function ArtifactCard({ stage }: { stage: Stage }) {
  const sessionId = useSessionView((s) => s.view.sessionId);
  const latest = useLatestVersion(stage);
  const [expanded, setExpanded] = useState(false);
  const [selected, setSelected] = useState<number | null>(null);
  const [mode, setMode] = useState<Mode>("rendered");
  const [base, setBase] = useState<number | null>(null);
  const [copied, setCopied] = useState<"ok" | "failed" | null>(null);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const bodyId = useId();
  const revoked = useViewRevoked();
  const name = STAGE_LABEL[stage];

  const versions = useArtifactVersions(sessionId, stage, latest, expanded);
  const version = selected ?? (latest || null);
  const text = useArtifactText(expanded ? sessionId : null, stage, version);
  const baseVersion = base ?? (version && version > 1 ? version - 1 : null);
  const baseText = useArtifactText(expanded && mode === "diff" ? sessionId : null, stage, baseVersion);

  // A new version arriving moves the view to it.
  useEffect(() => {
    setSelected(null);
    setBase(null);
  }, [latest]);

  useEffect(() => {
    if (!copied) return;
    const timer = setTimeout(() => setCopied(null), 1500);
    return () => clearTimeout(timer);
  }, [copied]);

  // Only versions up to the latest this view knows of (a replay shows the versions that existed then).
  const known = versions.data?.filter((v) => v.version <= latest);
  const info = known?.find((v) => v.version === version);
  const versionList: number[] = known?.length
    ? known.map((v) => v.version)
    : Array.from({ length: latest }, (_, i) => i + 1);

  const copy = async () => {
    if (text.data === null) return;
    setCopied((await copyText(text.data)) ? "ok" : "failed");
  };
  const download = async () => {
    if (!sessionId || !version) return;
    setDownloadError(null);
    try {
      await downloadArtifact(sessionId, stage, version);
    } catch (err) {
      setDownloadError(err instanceof Error ? err.message : String(err));
    }
  };

  return (
    <article
      data-testid={`artifact-panel-${stage}`}
      data-version={latest}
      aria-label={`${name} artifact`}
      className="min-w-0 rounded-lg border border-slate-200 bg-white shadow-sm"
    >
      <div className="flex flex-wrap items-center justify-between gap-2 p-3">
        <div className="flex items-center gap-2">
          <h3 className="text-sm font-semibold">{name}</h3>
          {latest > 0 ? <Badge tone="indigo">v{latest}</Badge> : <Badge>none yet</Badge>}
        </div>
        <Button
          size="sm"
          variant="outline"
          aria-expanded={expanded}
          aria-controls={bodyId}
          data-testid={`artifact-toggle-${stage}`}
          disabled={latest === 0}
          onClick={() => setExpanded((e) => !e)}
        >
          {expanded ? "Hide" : "Show"}
        </Button>
      </div>
      {expanded && latest > 0 ? (
        <div id={bodyId} className="border-t border-slate-100 p-3">
          <div className="flex flex-wrap items-center gap-2 text-sm">
            <label className="flex items-center gap-1">
              <span>Version</span>
              <select
                className="rounded border border-slate-300 bg-white px-1 py-1 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                data-testid={`artifact-version-${stage}`}
                value={version ?? ""}
                onChange={(e) => setSelected(Number(e.target.value))}
              >
                {versionList.map((v) => (
                  <option key={v} value={v}>
                    v{v}
                    {v === latest ? " (latest)" : ""}
                  </option>
                ))}
              </select>
            </label>
            <div role="group" aria-label="View" className="inline-flex overflow-hidden rounded-md border border-slate-300">
              {(["rendered", "source", "diff"] as const).map((m) => (
                <button
                  key={m}
                  type="button"
                  aria-pressed={mode === m}
                  data-testid={`artifact-mode-${m}-${stage}`}
                  disabled={m === "diff" && versionList.length < 2}
                  onClick={() => setMode(m)}
                  className={cn(
                    "px-2 py-1 text-xs focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-indigo-500 disabled:opacity-40",
                    mode === m ? "bg-slate-900 text-white" : "bg-white hover:bg-slate-100",
                  )}
                >
                  {m === "rendered" ? "Rendered" : m === "source" ? "Markdown" : "Changes"}
                </button>
              ))}
            </div>
            {mode === "diff" ? (
              <label className="flex items-center gap-1">
                <span>compared with</span>
                <select
                  className="rounded border border-slate-300 bg-white px-1 py-1"
                  data-testid={`artifact-base-${stage}`}
                  value={baseVersion ?? ""}
                  onChange={(e) => setBase(Number(e.target.value))}
                >
                  {versionList
                    .filter((v) => v !== version)
                    .map((v) => (
                      <option key={v} value={v}>
                        v{v}
                      </option>
                    ))}
                </select>
              </label>
            ) : null}
            <span className="ml-auto flex gap-2">
              <Button size="sm" variant="outline" data-testid={`artifact-copy-${stage}`} disabled={text.data === null} onClick={copy}>
                {copied === "ok" ? "Copied" : copied === "failed" ? "Copy failed" : "Copy"}
              </Button>
              {revoked ? null : (
                <Button size="sm" variant="outline" data-testid={`artifact-download-${stage}`} disabled={text.data === null} onClick={download}>
                  Download .md
                </Button>
              )}
            </span>
          </div>
          {downloadError ? (
            <p className="mt-2 text-xs text-red-700" role="alert" data-testid={`artifact-download-error-${stage}`}>
              Download failed: {downloadError}
            </p>
          ) : null}
          {info ? (
            <p className="mt-2 text-xs text-slate-500">
              {info.chars} characters · saved {formatClock(info.createdAt)}
              {info.feedback ? <> · rewritten after your feedback: “{info.feedback}”</> : null}
            </p>
          ) : null}
          <div tabIndex={0} aria-label={`${name} artifact text`} className="mt-2 max-h-[50vh] overflow-auto rounded-md bg-slate-50 p-3 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500" data-testid={`artifact-body-${stage}`}>
            {text.loading ? <p className="text-sm text-slate-500">Loading…</p> : null}
            {text.error ? <p className="text-sm text-red-700">Could not load this version: {text.error}</p> : null}
            {text.data !== null && mode === "rendered" ? <Markdown text={text.data} /> : null}
            {text.data !== null && mode === "source" ? (
              <pre className="whitespace-pre-wrap break-words text-xs">{text.data}</pre>
            ) : null}
            {text.data !== null && mode === "diff" ? (
              baseText.data !== null ? (
                <DiffView before={baseText.data} after={text.data} />
              ) : baseText.error ? (
                <p className="text-sm text-red-700">Could not load v{baseVersion}: {baseText.error}</p>
              ) : (
                <p className="text-sm text-slate-500">Loading v{baseVersion}…</p>
              )
            ) : null}
          </div>
        </div>
      ) : null}
    </article>
  );
});

export function ArtifactsPanel() {
  const sessionId = useSessionView((s) => s.view.sessionId);
  const store = useSessionStoreApi();
  const anyArtifact = useSessionView((s) => STAGES.some((st) => (s.view.state?.agents[st]?.version ?? 0) > 0 || (s.view.artifactVersions[st] ?? 0) > 0));
  const [status, setStatus] = useState<string | null>(null);
  const revoked = useViewRevoked();

  const downloadAll = async () => {
    if (!sessionId) return;
    setStatus("Preparing…");
    try {
      const view = store.getState().view;
      const sections: string[] = [`# BotArmy plan\n\nSession ${sessionId}\n`];
      for (const stage of STAGES) {
        const version = Math.max(view.state?.agents[stage]?.version ?? 0, view.artifactVersions[stage] ?? 0);
        if (version === 0) continue;
        const text = await getArtifactText(sessionId, stage, version);
        sections.push(`\n---\n\n<!-- ${STAGE_LABEL[stage]}, version ${version} -->\n\n# ${STAGE_LABEL[stage]}\n\n${text.trim()}\n`);
      }
      downloadText(`botarmy-${sessionId.slice(0, 8)}-plan.md`, sections.join(""));
      setStatus(null);
    } catch (err) {
      setStatus(`Download failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  return (
    <section aria-labelledby="artifacts-title">
      <div className="mb-2 flex flex-wrap items-center justify-between gap-2">
        <h2 id="artifacts-title" className="text-sm font-semibold uppercase tracking-wide text-slate-500">
          Artifacts
        </h2>
        <div className="flex items-center gap-2">
          {status ? <span className="text-xs text-slate-600" role="status">{status}</span> : null}
          {revoked ? null : (
            <Button size="sm" variant="outline" data-testid="download-all-button" disabled={!anyArtifact} onClick={downloadAll}>
              Download all (.md)
            </Button>
          )}
        </div>
      </div>
      {/* One column that may shrink below its content (minmax(0, 1fr)): a wide diff or code block
          scrolls inside its own box instead of widening the page. */}
      <div className="grid grid-cols-1 gap-2">
        {STAGES.map((stage) => (
          <ArtifactCard key={stage} stage={stage} />
        ))}
      </div>
    </section>
  );
}
