import { act, fireEvent, render, screen, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { sessionClient } from "../net/client";
import { initialView, reduceAll } from "../protocol/reducer";
import { useConnectionStore } from "../store/connection";
import { useSessionStore } from "../store/session";
import { SESSION_ID, Script, caughtUp, welcome } from "../test/script";
import type { ServerEvent } from "../protocol/types";
import { AgentCards } from "./AgentCards";
import { ApprovalPanel } from "./ApprovalPanel";
import { ConnectionIndicator } from "./ConnectionIndicator";
import { Conversation } from "./Conversation";
import { ErrorBanner } from "./ErrorBanner";
import { ErrorBoundary } from "./ErrorBoundary";
import { RunControls } from "./RunControls";

function load(events: ServerEvent[]) {
  const view = reduceAll(initialView(SESSION_ID), [welcome(0), ...events, caughtUp(events.at(-1)?.seq ?? 0)], Date.now());
  useSessionStore.setState({ view });
  useConnectionStore.setState({ status: "connected", attempt: 0, nextRetryAt: null });
}

beforeEach(() => {
  useSessionStore.getState().reset(null);
  useConnectionStore.getState().reset();
  // jsdom has no layout; the conversation's auto-scroll only needs these not to throw.
  globalThis.requestAnimationFrame ??= (cb: FrameRequestCallback) => setTimeout(() => cb(0), 0) as unknown as number;
});

describe("Conversation", () => {
  it("shows HTML in a brief as text and never as elements", () => {
    const s = new Script();
    const xss = "<img src=x onerror=alert(1)><script>window.__xss=1</script>";
    s.start(xss);
    s.beginAttempt("analyst");
    s.stream("analyst", "# Scope\n\nSome <b>bold</b> claim and <img src=y onerror=alert(2)>", 1000);
    load(s.events);
    const { container } = render(<Conversation />);
    const messages = screen.getAllByTestId("message");
    expect(messages.map((m) => m.dataset.name)).toEqual(["You", "Analyst"]);
    expect(within(messages[0]!).getByTestId("message-text").textContent).toBe(xss);
    expect(container.querySelector("img")).toBeNull();
    expect(container.querySelector("script")).toBeNull();
    expect(container.querySelector("b")).toBeNull();
    // Markdown still renders for agents.
    expect(within(messages[1]!).getByRole("heading", { name: "Scope" })).toBeTruthy();
    expect(messages[1]!.textContent).toContain("<img src=y onerror=alert(2)>");
    expect((window as { __xss?: unknown }).__xss).toBeUndefined();
  });

  it("renders GFM task lists as labelled symbols (no unlabelled inputs)", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("tester");
    s.stream("tester", "## Checklist\n\n- [x] smoke test\n- [ ] load test\n", 1000);
    load(s.events);
    const { container } = render(<Conversation />);
    expect(container.querySelector("input")).toBeNull();
    expect(screen.getByRole("img", { name: "done" }).textContent).toBe("☑");
    expect(screen.getByRole("img", { name: "to do" }).textContent).toBe("☐");
  });

  it("re-renders the streaming message as tokens arrive", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("analyst");
    const id = s.stream("analyst", "Hello", 100);
    load(s.events);
    render(<Conversation />);
    const analyst = screen.getAllByTestId("message")[1]!;
    expect(analyst.dataset.streaming).toBe("true");
    act(() => {
      const view = useSessionStore.getState().view;
      useSessionStore.getState().ingest([
        { type: "TEXT_MESSAGE_CONTENT", seq: view.lastSeq + 1, messageId: id, delta: " world" },
        { type: "TEXT_MESSAGE_END", seq: view.lastSeq + 2, messageId: id },
      ]);
    });
    expect(analyst.textContent).toContain("Hello world");
    expect(analyst.dataset.streaming).toBe("false");
  });
});

describe("Conversation auto-scroll", () => {
  function fakeScroller(el: HTMLElement) {
    const box = { height: 1000, top: 0, client: 400 };
    Object.defineProperty(el, "clientHeight", { configurable: true, get: () => box.client });
    Object.defineProperty(el, "scrollHeight", { configurable: true, get: () => box.height });
    Object.defineProperty(el, "scrollTop", {
      configurable: true,
      get: () => box.top,
      set: (v: number) => {
        box.top = Math.max(0, Math.min(v, box.height - box.client));
      },
    });
    return box;
  }

  async function frame() {
    await act(async () => {
      await new Promise((r) => setTimeout(r, 20));
    });
  }

  function append(id: string, text: string) {
    const view = useSessionStore.getState().view;
    useSessionStore.getState().ingest([{ type: "TEXT_MESSAGE_CONTENT", seq: view.lastSeq + 1, messageId: id, delta: text }]);
  }

  it("keeps following when a late scroll event sees grown content, and stops when the reader scrolls up", async () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("analyst");
    const id = s.stream("analyst", "Hello", 100);
    load(s.events);
    render(<Conversation />);
    const el = screen.getByTestId("conversation");
    const box = fakeScroller(el);
    act(() => append(id, " more"));
    await frame();
    expect(box.top).toBe(600); // followed to the bottom

    // More text arrives before the scroll event of our own scrolling is dispatched.
    box.height = 1300;
    fireEvent.scroll(el);
    act(() => append(id, " and more"));
    await frame();
    expect(box.top).toBe(900);
    expect(screen.queryByTestId("jump-to-latest")).toBeNull();

    // The reader scrolls up: the view stays put and offers a way back.
    box.top = 100;
    fireEvent.scroll(el);
    box.height = 1600;
    act(() => append(id, " even more"));
    await frame();
    expect(box.top).toBe(100);
    fireEvent.click(screen.getByTestId("jump-to-latest"));
    expect(box.top).toBe(1200);
    expect(screen.queryByTestId("jump-to-latest")).toBeNull();
  });
});

describe("AgentCards", () => {
  it("shows status, attempts and a retry countdown, and marks the active agent", () => {
    vi.useFakeTimers({ now: 2_000_000_000_000 });
    try {
      const s = new Script();
      s.now = Date.now() - 1000;
      s.start("brief");
      s.beginAttempt("analyst");
      const id = s.stream("analyst", "part", 100);
      s.now = Date.now();
      const retryAt = s.failRetryable("analyst", id, "timeout", 7000);
      const seconds = Math.ceil((retryAt - Date.now()) / 1000);
      expect(seconds).toBeGreaterThanOrEqual(7);
      load(s.events);
      render(<AgentCards />);
      const card = screen.getByTestId("agent-card-analyst");
      expect(card.dataset.status).toBe("retrying");
      expect(card.dataset.active).toBe("true");
      expect(card.textContent).toContain("1 of 4");
      expect(screen.getByTestId("agent-retry-analyst").textContent).toBe(`Next try in ${seconds} s`);
      expect(screen.getByTestId("agent-card-architect").dataset.status).toBe("queued");
      expect(screen.getByTestId("agent-card-architect").dataset.active).toBe("false");
    } finally {
      vi.useRealTimers();
    }
  });

  it("a lost connection: the clock stops, the card and the thread say so, and the outage is never counted", () => {
    vi.useFakeTimers({ now: 2_000_000_000_000 });
    try {
      const s = new Script();
      s.now = Date.now() - 10_000;
      s.start("brief");
      s.beginAttempt("analyst");
      s.stream("analyst", "part of an answer", 100);
      load(s.events);
      const snap = (status: "connected" | "reconnecting") =>
        act(() => useConnectionStore.getState().setSnapshot({ status, attempt: status === "connected" ? 0 : 1, nextRetryAt: null, lastClose: null, offlineReason: null }));
      act(() => useConnectionStore.getState().reset());
      snap("connected");
      render(
        <>
          <AgentCards />
          <Conversation />
        </>,
      );
      const clock = () => screen.getByTestId("agent-elapsed-analyst").textContent;
      const before = clock();
      expect(before).toMatch(/^0:(09|10)$/);
      expect(screen.getByTestId("message-writing").textContent).toBe("writing…");
      expect(screen.queryByTestId("connection-lost-note")).toBeNull();

      snap("reconnecting");
      act(() => vi.advanceTimersByTime(30_000));
      expect(clock()).toBe(before);
      expect(screen.getByTestId("agent-stale-analyst").textContent).toBe("Connection lost");
      expect(screen.getByTestId("agent-card-analyst").dataset.status).toBe("streaming");
      expect(screen.queryByTestId("message-writing")).toBeNull();
      expect(screen.getByTestId("message-stalled")).toBeTruthy();
      const note = screen.getByTestId("connection-lost-note");
      expect(note.textContent).toMatch(/^Connection lost at \d\d:\d\d:\d\d( [AP]M)?\. The page tries again every few seconds\. Nothing will be missed/);

      snap("connected");
      act(() => vi.advanceTimersByTime(5_000));
      // About 10 s before, 5 s after: the 30 s without a connection are left out.
      expect(clock()).toBe(`0:${Number(before!.slice(2)) + 5}`);
      expect(screen.queryByTestId("connection-lost-note")).toBeNull();
      expect(screen.queryByTestId("agent-stale-analyst")).toBeNull();
      expect(screen.getByTestId("message-writing")).toBeTruthy();
    } finally {
      vi.useRealTimers();
    }
  });

  it("says when an answer was reused from the cache", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("analyst");
    load(s.events);
    render(<AgentCards />);
    expect(screen.queryByTestId("agent-cached-analyst")).toBeNull();
    act(() => {
      s.delta([{ op: "replace", path: "/agents/analyst/cached", value: true }]);
      useSessionStore.getState().ingest(s.events.slice(-1));
    });
    expect(screen.getByTestId("agent-cached-analyst").textContent).toBe("Reused a saved answer: no tokens spent");
  });

  it("shows when a queued agent starts by itself", () => {
    vi.useFakeTimers({ now: 2_000_000_000_000 });
    try {
      const s = new Script();
      s.start("brief");
      s.beginAttempt("analyst");
      s.delta([
        { op: "replace", path: "/agents/analyst/status", value: "queued" },
        { op: "replace", path: "/agents/analyst/nextRetryAt", value: Date.now() + 20_000 },
      ]);
      load(s.events);
      render(<AgentCards />);
      expect(screen.getByTestId("agent-card-analyst").dataset.status).toBe("queued");
      expect(screen.getByTestId("agent-retry-analyst").textContent).toBe("Waiting for the AI provider: starts in 20 s");
      // The countdown runs (a queued card's clock ticks like a retrying one's).
      act(() => vi.advanceTimersByTime(5000));
      expect(screen.getByTestId("agent-retry-analyst").textContent).toBe("Waiting for the AI provider: starts in 15 s");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("ConnectionIndicator", () => {
  it("says Reconnecting with the attempt and the seconds left, and offers Reconnect now", () => {
    const spy = vi.spyOn(sessionClient, "reconnectNow").mockImplementation(() => undefined);
    useConnectionStore.setState({ status: "reconnecting", attempt: 3, nextRetryAt: Date.now() + 4200 });
    render(<ConnectionIndicator />);
    const status = screen.getByTestId("connection-status");
    expect(status.dataset.status).toBe("reconnecting");
    expect(status.textContent).toMatch(/Reconnecting \(attempt 3, next try in 5 s\)/);
    fireEvent.click(screen.getByTestId("reconnect-button"));
    expect(spy).toHaveBeenCalledOnce();
  });

  it("says Connected without a reconnect button once caught up", () => {
    useConnectionStore.setState({ status: "connected" });
    useSessionStore.setState({ view: { ...initialView(SESSION_ID), sync: "live" } });
    render(<ConnectionIndicator />);
    expect(screen.getByTestId("connection-status").textContent).toContain("Connected");
    expect(screen.queryByTestId("reconnect-button")).toBeNull();
  });
});

describe("session gone and bounded history", () => {
  it("says plainly when the session no longer exists, with no Reconnect button", () => {
    useConnectionStore.setState({ status: "gone", lastClose: { code: 4404, reason: "", at: 1 } });
    render(<ConnectionIndicator />);
    const status = screen.getByTestId("connection-status");
    expect(status.dataset.status).toBe("gone");
    expect(status.textContent).toContain("This session no longer exists (it was deleted or expired).");
    expect(screen.queryByTestId("reconnect-button")).toBeNull();
  });

  it("shows a quiet notice at the top of the thread when older messages were left out", () => {
    useSessionStore.setState({ view: { ...initialView(SESSION_ID), sync: "live", omittedMessages: 12 } });
    render(<Conversation />);
    expect(screen.getByTestId("history-bounded").textContent).toBe("12 older messages are not shown (history is bounded)");
  });

  it("shows no notice when nothing was left out", () => {
    useSessionStore.setState({ view: { ...initialView(SESSION_ID), sync: "live" } });
    render(<Conversation />);
    expect(screen.queryByTestId("history-bounded")).toBeNull();
  });
});

describe("ApprovalPanel and RunControls", () => {
  function atGate() {
    const s = new Script();
    s.start("brief");
    s.stage("analyst");
    load(s.events);
  }

  it("approves the open gate", () => {
    atGate();
    const send = vi.spyOn(sessionClient, "send").mockReturnValue("id-1");
    render(<ApprovalPanel />);
    expect(screen.getByTestId("approval-panel").dataset.stage).toBe("analyst");
    fireEvent.click(screen.getByTestId("approve-button"));
    expect(send).toHaveBeenCalledWith({ type: "approve", stage: "analyst" });
  });

  it("after Approve, focus goes to the thread (where the next agent writes), not to the page's body", () => {
    const s = new Script();
    s.start("brief");
    s.stage("analyst");
    load(s.events);
    vi.spyOn(sessionClient, "send").mockReturnValue("id-1");
    render(
      <>
        <ApprovalPanel />
        <Conversation />
      </>,
    );
    const approve = screen.getByTestId("approve-button");
    approve.focus();
    fireEvent.click(approve);
    const seen = s.events.length;
    s.approve("analyst");
    act(() => useSessionStore.getState().ingest(s.events.slice(seen)));
    expect(screen.queryByTestId("approval-panel")).toBeNull();
    expect(document.activeElement?.getAttribute("data-testid")).toBe("conversation");
    // The gate's note no longer asks for a review: it says the gate was answered.
    const notes = screen.getAllByTestId("notice").map((n) => [n.dataset.tone, n.textContent]);
    expect(notes).toContainEqual(["answered", "Analyst's work was answered."]);
    expect(notes.filter(([tone]) => tone === "info")).toEqual([]);
  });

  it("requests changes with trimmed feedback, and not with an empty box", () => {
    atGate();
    const send = vi.spyOn(sessionClient, "send").mockReturnValue("id-2");
    render(<ApprovalPanel />);
    fireEvent.click(screen.getByTestId("request-changes-button"));
    const submit = screen.getByTestId("submit-feedback-button") as HTMLButtonElement;
    expect(submit.disabled).toBe(true);
    fireEvent.change(screen.getByTestId("feedback-input"), { target: { value: "  More detail on auth.  " } });
    expect(submit.disabled).toBe(false);
    fireEvent.click(submit);
    expect(send).toHaveBeenCalledWith({ type: "reject", stage: "analyst", feedback: "More detail on auth." });
  });

  it("disables the gate buttons while not connected", () => {
    atGate();
    useConnectionStore.setState({ status: "reconnecting" });
    render(<ApprovalPanel />);
    expect((screen.getByTestId("approve-button") as HTMLButtonElement).disabled).toBe(true);
  });

  it("enables only the controls that apply", () => {
    atGate();
    render(<RunControls />);
    const enabled = (id: string) => !(screen.getByTestId(id) as HTMLButtonElement).disabled;
    expect([enabled("pause-button"), enabled("resume-button"), enabled("cancel-button"), enabled("retry-button")]).toEqual([false, false, true, false]);
  });

  it("while paused offers Resume and says where the run stands", () => {
    const s = new Script();
    s.start("brief", "auto");
    s.stage("analyst");
    s.delta([
      { op: "replace", path: "/run/status", value: "paused" },
      { op: "replace", path: "/run/stage", value: "architect" },
    ]);
    load(s.events);
    render(<RunControls />);
    expect((screen.getByTestId("resume-button") as HTMLButtonElement).disabled).toBe(false);
    expect((screen.getByTestId("pause-button") as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId("run-note").textContent).toBe("Paused before the Architect. Press Resume to go on.");
  });

  it("asks before cancelling, then sends cancel", () => {
    atGate();
    const send = vi.spyOn(sessionClient, "send").mockReturnValue("id-3");
    render(<RunControls />);
    fireEvent.click(screen.getByTestId("cancel-button"));
    expect(send).not.toHaveBeenCalled();
    fireEvent.click(screen.getByTestId("confirm-cancel-button"));
    expect(send).toHaveBeenCalledWith({ type: "cancel" });
  });
});

describe("ErrorBanner", () => {
  it("explains a failure in words, with details behind a toggle", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("analyst");
    s.failRun("analyst", "bad_key", "The AI provider rejected the API key.");
    load(s.events);
    render(<ErrorBanner />);
    const banner = screen.getByTestId("error-banner");
    expect(banner.dataset.code).toBe("bad_key");
    expect(banner.textContent).toContain("The run stopped at Analyst");
    expect(banner.textContent).toContain("What happens next");
    expect(screen.queryByTestId("error-details")).toBeNull();
    fireEvent.click(within(banner).getByRole("button", { name: "Details" }));
    expect(screen.getByTestId("error-details").textContent).toContain('"RUN_ERROR"');
    fireEvent.click(within(banner).getByRole("button", { name: /Dismiss/ }));
    expect(screen.queryByTestId("error-banner")).toBeNull();
  });
});

describe("ErrorBoundary", () => {
  it("contains a rendering fault and keeps the rest of the page", () => {
    const spy = vi.spyOn(console, "error").mockImplementation(() => undefined);
    function Boom(): never {
      throw new Error("kaboom");
    }
    render(
      <div>
        <p>still here</p>
        <ErrorBoundary label="a test widget">
          <Boom />
        </ErrorBoundary>
      </div>,
    );
    expect(screen.getByText("still here")).toBeTruthy();
    expect(screen.getByTestId("render-error").textContent).toContain("a test widget");
    spy.mockRestore();
  });
});
