import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { initialView, reduceAll } from "../protocol/reducer";
import { STAGES, type ServerEvent } from "../protocol/types";
import { sessionClient } from "../net/client";
import { useConnectionStore } from "../store/connection";
import { useSessionStore } from "../store/session";
import { SESSION_ID, caughtUp, fullEachStageRun, welcome } from "../test/script";
import { ReplayPage } from "./ReplayPage";
import { SessionPage } from "./SessionPage";

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** A fake server holding `events`, paged 40 at a time; or a truncated log. */
function fakeServer(events: ServerEvent[], opts: { truncated?: boolean } = {}) {
  const urls: string[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL) => {
      const url = String(input);
      urls.push(url);
      const page = /\/events\?after=(\d+)/.exec(url);
      if (page) {
        if (opts.truncated) return json({ error: { code: "log_truncated", message: "The log no longer starts there." } }, 410);
        const after = Number(page[1]);
        const rest = events.filter((e) => (e.seq ?? 0) > after);
        return json({ events: rest.slice(0, 40), lastSeq: events.length, more: rest.length > 40 });
      }
      if (url.endsWith("/export.jsonl")) return new Response('{"kind":"session"}\n', { headers: { "content-type": "application/x-ndjson" } });
      return json({ id: SESSION_ID, lastSeq: events.length, state: null });
    }),
  );
  return urls;
}

function finishedRun(): ServerEvent[] {
  const s = fullEachStageRun();
  s.complete();
  return s.events;
}

beforeEach(() => {
  window.history.replaceState(null, "", "/");
  useSessionStore.getState().reset(null);
  useConnectionStore.getState().reset();
  globalThis.requestAnimationFrame ??= (cb: FrameRequestCallback) => setTimeout(() => cb(0), 0) as unknown as number;
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe("the replay page", () => {
  it("loads every page of events, plays instantly to the end, scrubs back, and never sends a command", async () => {
    const events = finishedRun();
    const urls = fakeServer(events);
    const send = vi.spyOn(sessionClient, "send");
    render(<ReplayPage id={SESSION_ID} />);
    const scrubber = (await screen.findByTestId("replay-scrubber")) as HTMLInputElement;
    expect(urls.filter((u) => u.includes("/events?")).length).toBe(Math.ceil(events.length / 40));
    expect(scrubber.max).toBe(String(events.length));
    // It opens at the end, and the address keeps the position.
    expect(scrubber.value).toBe(String(events.length));
    expect(screen.getByTestId("agent-card-analyst").dataset.status).toBe("done");
    expect(window.location.search).toBe(`?s=${SESSION_ID}&replay=1&at=${events.length}`);
    fireEvent.change(scrubber, { target: { value: "0" } });
    expect(screen.getByTestId("agent-card-analyst").dataset.status).toBe("idle");
    expect(window.location.search).toBe(`?s=${SESSION_ID}&replay=1&at=0`);

    fireEvent.change(screen.getByTestId("replay-speed"), { target: { value: "instant" } });
    fireEvent.click(screen.getByTestId("replay-play"));
    await waitFor(() => expect(scrubber.value).toBe(String(events.length)));
    // The cards render after the scrubber moves (a busy machine showed one render between).
    await waitFor(() => {
      for (const stage of STAGES) expect(screen.getByTestId(`agent-card-${stage}`).dataset.status).toBe("done");
    });

    // The live page's view of the same events has the same cards.
    const live = reduceAll(initialView(SESSION_ID), [welcome(0), ...events, caughtUp(events.length)], Date.now());
    for (const stage of STAGES) expect(live.state?.agents[stage].status).toBe("done");

    // A mark jumps to the start of a later stage: that stage is not done yet.
    const deployer = screen.getAllByTestId("replay-mark").find((b) => b.textContent === "Deployer v1")!;
    fireEvent.click(deployer);
    expect(scrubber.value).toBe(String(Number(deployer.dataset.index) + 1));
    expect(screen.getByTestId("agent-card-deployer").dataset.status).not.toBe("done");
    expect(screen.getByTestId("agent-card-analyst").dataset.status).toBe("done");
    // Its clock is the replayed event's time, not today's: the stage has just begun.
    expect(screen.getByTestId("agent-elapsed-deployer").textContent).toBe("0:00");

    fireEvent.change(scrubber, { target: { value: "0" } });
    expect(screen.getByTestId("agent-card-analyst").dataset.status).toBe("idle");
    expect(send).not.toHaveBeenCalled();
  });

  it("plays at 10× and advances on its own", async () => {
    fakeServer(finishedRun());
    render(<ReplayPage id={SESSION_ID} />);
    const scrubber = (await screen.findByTestId("replay-scrubber")) as HTMLInputElement;
    // It opens at the end: back to the start first, then play.
    fireEvent.change(scrubber, { target: { value: "0" } });
    expect(scrubber.value).toBe("0");
    fireEvent.change(screen.getByTestId("replay-speed"), { target: { value: "10" } });
    fireEvent.click(screen.getByTestId("replay-play"));
    await waitFor(() => expect(Number(scrubber.value)).toBeGreaterThan(5));
    fireEvent.click(screen.getByTestId("replay-play")); // Pause.
    const paused = scrubber.value;
    await act(() => new Promise((r) => setTimeout(r, 100)));
    expect(scrubber.value).toBe(paused);
  });

  it("says in plain words when the log was trimmed", async () => {
    fakeServer([], { truncated: true });
    render(<ReplayPage id={SESSION_ID} />);
    expect((await screen.findByTestId("replay-error")).textContent).toContain("cannot be replayed");
  });
});

describe("the session page's export and replay buttons", () => {
  it("offers Replay once a run finished, and Export downloads the log with fetch", async () => {
    const events = finishedRun();
    const urls = fakeServer(events);
    const created: Blob[] = [];
    vi.spyOn(URL, "createObjectURL").mockImplementation((blob) => {
      created.push(blob as Blob);
      return "blob:x";
    });
    vi.spyOn(URL, "revokeObjectURL").mockImplementation(() => undefined);
    const clicked = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => undefined); // jsdom cannot navigate

    useSessionStore.setState({ view: reduceAll(initialView(SESSION_ID), [welcome(0), ...events, caughtUp(events.length)], Date.now()) });
    render(<SessionPage id={SESSION_ID} />);
    expect(screen.getByTestId("replay-button")).toBeTruthy();
    fireEvent.click(screen.getByTestId("export-button"));
    expect((await screen.findByTestId("export-status")).textContent).toContain(".jsonl");
    expect(urls).toContain(`/api/sessions/${SESSION_ID}/export.jsonl`);
    const text = await new Promise<string>((resolve) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.readAsText(created[0]!);
    });
    expect(text).toBe('{"kind":"session"}\n');
    expect(clicked).toHaveBeenCalledOnce();
  });

  it("has no Replay before any run finished, and says when export fails", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json({ error: { code: "internal", message: "Something broke." } }, 500)));
    render(<SessionPage id={SESSION_ID} />);
    expect(screen.queryByTestId("replay-button")).toBeNull();
    fireEvent.click(screen.getByTestId("export-button"));
    expect((await screen.findByRole("alert")).textContent).toContain("could not be exported: Something broke.");
  });
});

describe("the replay address", () => {
  it("opens where the link says (at=N)", async () => {
    const events = finishedRun();
    fakeServer(events);
    window.history.replaceState(null, "", `/?s=${SESSION_ID}&replay=1&at=3`);
    render(<ReplayPage id={SESSION_ID} />);
    const scrubber = (await screen.findByTestId("replay-scrubber")) as HTMLInputElement;
    expect(scrubber.value).toBe("3");
  });
});
