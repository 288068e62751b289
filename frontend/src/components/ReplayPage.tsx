// The replay of a session: all its logged events loaded over HTTP, played back through the same
// reducer into a store of its own, and shown with the live page's cards, conversation and
// artifacts as they were at that point. Nothing here sends a command: the replay's view is
// read-only and its store ignores every action.

import { useEffect, useMemo, useRef, useState } from "react";
import { ApiError, getAllEvents } from "../net/api";
import { exitReplay, rememberReplayPosition, replayPositionFromLocation } from "../routing";
import { SessionStoreContext, createViewStore } from "../store/session";
import type { ServerEvent } from "../protocol/types";
import { formatDateTime } from "../lib/format";
import { FrozenClockContext } from "../lib/useNow";
import { ReplayEngine, advance, replayBaseView, replayMarks, type ReplaySpeed } from "../replay/engine";
import { AgentCards } from "./AgentCards";
import { ArtifactsPanel } from "./Artifacts";
import { Conversation } from "./Conversation";
import { ErrorBoundary } from "./ErrorBoundary";
import { FilesPanel } from "./Files";
import { Button } from "./ui/button";

type Load = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; events: ServerEvent[] };

function loadWords(err: unknown): string {
  if (err instanceof ApiError && err.code === "log_truncated") {
    return "This session cannot be replayed: its oldest events were removed to keep the session within its size limit, so the replay could not start from the beginning. You can still export what is kept.";
  }
  if (err instanceof ApiError && err.status === 404) return "This session does not exist any more, so there is nothing to replay.";
  return `The session's events could not be loaded: ${err instanceof Error ? err.message : String(err)}`;
}

const SPEEDS: { value: string; label: string }[] = [
  { value: "1", label: "1×" },
  { value: "10", label: "10×" },
  { value: "instant", label: "Instant" },
];

function parseSpeed(value: string): ReplaySpeed {
  return value === "instant" ? "instant" : value === "10" ? 10 : 1;
}

/** Milliseconds between playback ticks; each tick applies all events whose waits fit. */
const TICK_MS = 16;

function ReplayPlayer({ sessionKey, events }: { sessionKey: string; events: ServerEvent[] }) {
  const engine = useMemo(() => new ReplayEngine(events, sessionKey), [events, sessionKey]);
  const marks = useMemo(() => replayMarks(events), [events]);
  const [store] = useState(() => createViewStore(replayBaseView(sessionKey)));
  // Opens at the end (the session as it stands), or where the link says.
  const [position, setPosition] = useState(() => Math.min(replayPositionFromLocation() ?? events.length, events.length));
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState<ReplaySpeed>(1);

  useEffect(() => {
    if (!playing) rememberReplayPosition(sessionKey, position);
  }, [playing, position, sessionKey]);

  // The view always follows the position (a jump back recomputes from a checkpoint).
  useEffect(() => {
    store.setView(engine.viewAt(position));
  }, [engine, position, store]);

  // Playback: a timer that spends real elapsed time on the events' own gaps.
  const positionRef = useRef(position);
  positionRef.current = position;
  useEffect(() => {
    if (!playing) return;
    let leftover = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      const step = advance(engine, positionRef.current, leftover + (now - last), speed);
      last = now;
      leftover = step.leftover;
      if (step.position !== positionRef.current) setPosition(step.position);
      if (step.position >= engine.length) setPlaying(false);
    }, TICK_MS);
    return () => clearInterval(timer);
  }, [playing, speed, engine]);

  const togglePlay = () => {
    if (playing) return setPlaying(false);
    if (position >= engine.length) setPosition(0); // Play at the end starts over.
    setPlaying(true);
  };

  const current = position > 0 ? events[position - 1] : undefined;

  return (
    <SessionStoreContext.Provider value={store}>
      <FrozenClockContext.Provider value={current?.timestamp ?? 0}>
        <section aria-label="Replay controls" className="flex flex-col gap-2 rounded-md border border-slate-200 bg-white p-3" data-testid="replay-controls">
          <div className="flex flex-wrap items-center gap-2">
            <Button variant="primary" size="sm" onClick={togglePlay} data-testid="replay-play" aria-pressed={playing}>
              {playing ? "Pause" : "Play"}
            </Button>
            <label className="flex items-center gap-1 text-sm">
              Speed
              <select
                className="rounded-md border border-slate-300 bg-white px-2 py-1 text-sm"
                value={String(speed)}
                onChange={(e) => setSpeed(parseSpeed(e.target.value))}
                data-testid="replay-speed"
              >
                {SPEEDS.map((s) => (
                  <option key={s.value} value={s.value}>
                    {s.label}
                  </option>
                ))}
              </select>
            </label>
            <span className="text-sm tabular-nums text-slate-600" data-testid="replay-position" data-position={position} data-total={engine.length}>
              Event {position} of {engine.length}
              {current?.timestamp ? ` · ${formatDateTime(current.timestamp)}` : ""}
            </span>
          </div>
          <input
            type="range"
            min={0}
            max={engine.length}
            step={1}
            value={position}
            onChange={(e) => setPosition(Number(e.target.value))}
            aria-label="Replay position (event number)"
            className="w-full"
            data-testid="replay-scrubber"
          />
          <nav aria-label="Runs and stages" data-testid="replay-marks" className="flex flex-wrap gap-1">
            {marks.map((mark) => (
              <Button
                key={`${mark.kind}-${mark.index}`}
                size="sm"
                variant={mark.kind === "run" ? "outline" : "ghost"}
                // Just after the marked event, so the run or stage is shown as started.
                onClick={() => setPosition(mark.index + 1)}
                data-testid="replay-mark"
                data-kind={mark.kind}
                data-index={mark.index}
              >
                {mark.label}
              </Button>
            ))}
          </nav>
        </section>
        <div className="flex flex-col gap-4 lg:grid lg:grid-cols-[17rem_minmax(0,1fr)] lg:items-start">
          <aside>
            <h2 className="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500">Agents</h2>
            <ErrorBoundary label="the agent cards">
              <AgentCards />
            </ErrorBoundary>
          </aside>
          <div className="flex min-w-0 flex-col gap-4">
            <div className="grid min-w-0 grid-cols-1 gap-4 xl:grid-cols-[minmax(0,1.15fr)_minmax(0,1fr)] xl:items-start">
              <div className="min-w-0">
                <ErrorBoundary label="the conversation">
                  <Conversation />
                </ErrorBoundary>
              </div>
              <div className="min-w-0">
                <ErrorBoundary label="the project files">
                  <FilesPanel />
                </ErrorBoundary>
              </div>
            </div>
            <ErrorBoundary label="the artifacts">
              <ArtifactsPanel />
            </ErrorBoundary>
          </div>
        </div>
      </FrozenClockContext.Provider>
    </SessionStoreContext.Provider>
  );
}

export function ReplayPage({ id }: { id: string }) {
  const [load, setLoad] = useState<Load>({ status: "loading" });

  useEffect(() => {
    const controller = new AbortController();
    setLoad({ status: "loading" });
    getAllEvents(id, controller.signal)
      .then((events) => setLoad({ status: "ready", events }))
      .catch((err: unknown) => {
        if (!controller.signal.aborted) setLoad({ status: "error", message: loadWords(err) });
      });
    return () => controller.abort();
  }, [id]);

  return (
    <main className="mx-auto flex max-w-7xl flex-col gap-4 px-3 py-3 sm:px-4 sm:py-4" data-testid="replay-page">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 className="text-lg font-semibold">Replay of this session</h1>
        <Button variant="outline" size="sm" onClick={() => exitReplay(id)} data-testid="replay-exit">
          Back to live
        </Button>
      </div>
      {load.status === "loading" ? (
        <p className="text-sm text-slate-600" data-testid="replay-loading">
          Loading the session's events…
        </p>
      ) : load.status === "error" ? (
        <p role="alert" className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-900" data-testid="replay-error">
          {load.message}
        </p>
      ) : load.events.length === 0 ? (
        <p className="text-sm text-slate-600" data-testid="replay-empty">
          Nothing has happened in this session yet, so there is nothing to replay.
        </p>
      ) : (
        <ReplayPlayer sessionKey={id} events={load.events} />
      )}
    </main>
  );
}
