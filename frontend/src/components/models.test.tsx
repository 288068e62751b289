// A model per agent, cost per agent and run, and the model's thinking, as the page shows them:
// the start form's pickers and the exact `start.models` they send, the cards' model and cost,
// the header's total against the budget, and the collapsed "Thinking…" block in the thread.

import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { sessionClient } from "../net/client";
import { availableActions } from "../protocol/actions";
import { chosenModels } from "../protocol/models";
import { initialView, reduceAll } from "../protocol/reducer";
import { STAGES, type ModelCatalog, type ServerEvent, type Stage, type UserCommand } from "../protocol/types";
import { useConnectionStore } from "../store/connection";
import { useDraftStore } from "../store/draft";
import { useModelsStore } from "../store/models";
import { useSessionStore } from "../store/session";
import { SESSION_ID, Script, answerFor, caughtUp, welcome } from "../test/script";
import { AgentCards } from "./AgentCards";
import { BriefForm } from "./BriefForm";
import { Conversation } from "./Conversation";
import { Header } from "./Header";
import { HomePage } from "./HomePage";
import { forgetOpenedReasoning } from "./ReasoningBlock";
import { SessionPage } from "./SessionPage";

const PRICE_A = { input: 1_000_000, output: 2_000_000, cachedInput: 1_000_000 };
const PRICE_B = { input: 3_000_000, output: 15_000_000, cachedInput: 300_000 };

const CATALOG = {
  demo: false,
  providers: ["openai", "anthropic"],
  stages: STAGES.map((stage) => ({
    stage,
    default: "openai:fake-a",
    offered: [
      { id: "openai:fake-a", provider: "openai", model: "fake-a", price: PRICE_A },
      { id: "anthropic:claude-sonnet-4-5", provider: "anthropic", model: "claude-sonnet-4-5", price: PRICE_B },
      ...(stage === "tester" ? [{ id: "openai:house", provider: "openai", model: "house", price: null }] : []),
    ],
  })),
  budgetMicroUsd: 500_000,
} satisfies ModelCatalog;

const DEMO_CATALOG: ModelCatalog = { demo: true, providers: [], stages: [], budgetMicroUsd: null };

const MODELS = Object.fromEntries(STAGES.map((s) => [s, s === "developer" ? "anthropic:claude-sonnet-4-5" : "openai:fake-a"])) as Record<Stage, string>;

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** A fake server answering the catalog, health and session creation; records every request. */
function fakeServer(catalog: unknown) {
  const calls: string[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      calls.push(`${init?.method ?? "GET"} ${url}`);
      if (url === "/api/models") return json(catalog);
      if (url === "/api/health") return json({ status: "ok", version: "t", provider: (catalog as ModelCatalog).demo ? "demo" : "openai" });
      if (url === "/api/sessions" && init?.method === "POST") return json({ id: SESSION_ID }, 201);
      return json({ id: SESSION_ID, lastSeq: 0, state: {} });
    }),
  );
  return calls;
}

function load(events: ServerEvent[]) {
  const view = reduceAll(initialView(SESSION_ID), [welcome(0), ...events, caughtUp(events.at(-1)?.seq ?? 0)], Date.now());
  useSessionStore.setState({ view });
  useConnectionStore.setState({ status: "connected", attempt: 0, nextRetryAt: null });
}

beforeEach(() => {
  useSessionStore.getState().reset(null);
  useConnectionStore.getState().reset();
  useModelsStore.setState({ catalog: null, status: "idle" });
  useDraftStore.setState({ brief: "", approval: "each_stage", models: {} });
  forgetOpenedReasoning();
  globalThis.requestAnimationFrame ??= (cb: FrameRequestCallback) => setTimeout(() => cb(0), 0) as unknown as number;
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe("start form: a model per agent", () => {
  it("offers each agent its models, the default preselected, with provider, model and price per M tokens", async () => {
    const calls = fakeServer(CATALOG);
    render(<BriefForm onStart={() => undefined} />);
    const developer = (await screen.findByLabelText("Developer")) as HTMLSelectElement;
    expect(calls).toContain("GET /api/models");
    expect(screen.getByRole("group", { name: "Models" })).toBeTruthy();
    for (const stage of STAGES) expect((screen.getByTestId(`model-select-${stage}`) as HTMLSelectElement).value).toBe("openai:fake-a");
    expect([...developer.options].map((o) => o.textContent)).toEqual([
      "OpenAI · fake-a · $1 / $2 per M tokens (default)",
      "Anthropic · claude-sonnet-4-5 · $3 / $15 per M tokens",
    ]);
    const tester = screen.getByLabelText("Tester") as HTMLSelectElement;
    expect([...tester.options].at(-1)?.textContent).toBe("OpenAI · house · price unknown");
    expect(screen.getByTestId("model-pickers").textContent).toContain("once it has spent $0.50");
  });

  it("sends exactly the models chosen: only the agents changed from their default", async () => {
    fakeServer(CATALOG);
    const onStart = vi.fn();
    render(<BriefForm onStart={onStart} />);
    const developer = await screen.findByLabelText("Developer");
    fireEvent.change(screen.getByTestId("brief-input"), { target: { value: "  A rota planner  " } });
    fireEvent.change(developer, { target: { value: "anthropic:claude-sonnet-4-5" } });
    fireEvent.change(screen.getByLabelText("Tester"), { target: { value: "openai:house" } });
    // Changed, then changed back: the default again, so not sent.
    fireEvent.change(screen.getByLabelText("Analyst"), { target: { value: "anthropic:claude-sonnet-4-5" } });
    fireEvent.change(screen.getByLabelText("Analyst"), { target: { value: "openai:fake-a" } });
    fireEvent.click(screen.getByTestId("start-button"));
    expect(onStart).toHaveBeenCalledTimes(1);
    expect(onStart.mock.calls[0]).toEqual(["A rota planner", "each_stage", { developer: "anthropic:claude-sonnet-4-5", tester: "openai:house" }]);
  });

  it("sends no models when every agent keeps its default, and none in demo mode (a short note instead of pickers)", async () => {
    fakeServer(CATALOG);
    const onStart = vi.fn();
    const { unmount } = render(<BriefForm onStart={onStart} />);
    await screen.findByLabelText("Developer");
    fireEvent.change(screen.getByTestId("brief-input"), { target: { value: "brief" } });
    fireEvent.click(screen.getByTestId("start-button"));
    expect(onStart.mock.calls[0]).toEqual(["brief", "each_stage"]);
    unmount();

    // A pick left over from before does not leak into a demo deployment's start.
    useDraftStore.setState({ models: { developer: "anthropic:claude-sonnet-4-5" } });
    useModelsStore.setState({ catalog: null, status: "idle" });
    fakeServer(DEMO_CATALOG);
    render(<BriefForm onStart={onStart} />);
    expect((await screen.findByTestId("models-demo-note")).textContent).toMatch(/Demo mode: no API key is configured/);
    expect(screen.queryByTestId("model-pickers")).toBeNull();
    expect(screen.queryAllByRole("combobox")).toHaveLength(0);
    fireEvent.click(screen.getByTestId("start-button"));
    expect(onStart.mock.calls[1]).toEqual(["brief", "each_stage"]);
  });

  it("chosenModels ignores a pick the stage no longer offers", () => {
    expect(chosenModels(CATALOG, { developer: "openai:gone", analyst: "anthropic:claude-sonnet-4-5" })).toEqual({ analyst: "anthropic:claude-sonnet-4-5" });
    expect(chosenModels(null, { developer: "anthropic:claude-sonnet-4-5" })).toBeUndefined();
  });

  it("the home page's Start sends the start command with the chosen models", async () => {
    fakeServer(CATALOG);
    const sent: UserCommand[] = [];
    vi.spyOn(sessionClient, "connect").mockImplementation(() => undefined);
    vi.spyOn(sessionClient, "sendWhenLive").mockImplementation((command) => void sent.push(command));
    render(<HomePage />);
    fireEvent.change(await screen.findByLabelText("Developer"), { target: { value: "anthropic:claude-sonnet-4-5" } });
    fireEvent.change(screen.getByTestId("brief-input"), { target: { value: "A rota planner" } });
    fireEvent.click(screen.getByTestId("approval-auto"));
    fireEvent.click(screen.getByTestId("start-button"));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0]).toEqual({ type: "start", brief: "A rota planner", approval: "auto", models: { developer: "anthropic:claude-sonnet-4-5" } });
  });
});

/** A run with real models: the Analyst and the Developer done, with what they cost. */
function pricedRun(opts: { budgetMicroUsd?: number | null; testerUnknown?: boolean } = {}): Script {
  const s = new Script();
  s.start("Build a todo app.", "auto", { models: opts.testerUnknown ? { ...MODELS, tester: "openai:house" } : MODELS, budgetMicroUsd: opts.budgetMicroUsd ?? null });
  s.stage("analyst");
  s.spend("analyst", 45);
  s.stage("architect");
  s.spend("architect", 4_200);
  s.stage("developer");
  s.spend("developer", 12_300);
  if (opts.testerUnknown) {
    s.stage("tester");
    s.spend("tester", 0, false);
  }
  return s;
}

describe("agent cards: model and cost", () => {
  it("each card shows its model with the provider, and its cost in dollars", () => {
    load(pricedRun().events);
    render(<AgentCards />);
    const developer = screen.getByTestId("agent-model-developer");
    expect(developer.textContent).toBe("claude-sonnet-4-5 · Anthropic");
    expect(developer.dataset.model).toBe("anthropic:claude-sonnet-4-5");
    expect(screen.getByTestId("agent-model-analyst").textContent).toBe("fake-a · OpenAI");
    expect(screen.getByTestId("agent-cost-developer").textContent).toBe("$0.0123");
    expect(screen.getByTestId("agent-cost-developer").dataset.costMicroUsd).toBe("12300");
    expect(screen.getByTestId("agent-cost-analyst").textContent).toBe("$0.000045");
    expect(screen.getByTestId("agent-cost-architect").textContent).toBe("$0.0042");
    // An agent not started yet: its model, no cost yet.
    expect(screen.getByTestId("agent-model-tester").textContent).toBe("fake-a · OpenAI");
    expect(screen.queryByTestId("agent-cost-tester")).toBeNull();
  });

  it("says price unknown rather than $0.00 for a model without a known price", () => {
    load(pricedRun({ testerUnknown: true }).events);
    render(<AgentCards />);
    const tester = screen.getByTestId("agent-cost-tester");
    expect(tester.textContent).toBe("price unknown");
    expect(tester.dataset.priceKnown).toBe("false");
    expect(screen.getByTestId("agent-cost-developer").textContent).toBe("$0.0123");
  });

  it("shows no model or cost in demo mode, nor for an old state without those fields", () => {
    const s = new Script();
    s.start("Build a todo app.");
    s.stage("analyst");
    load(s.events);
    render(<AgentCards />);
    expect(screen.queryAllByTestId(/^agent-(model|cost)-/)).toHaveLength(0);
    // Demo mode of a Worker with the fields: model null, cost 0.
    const demo = new Script();
    demo.start("b", "auto", { models: Object.fromEntries(STAGES.map((st) => [st, null])) as unknown as Record<Stage, string> });
    demo.stage("analyst");
    load(demo.events);
    expect(screen.queryAllByTestId(/^agent-(model|cost)-/)).toHaveLength(0);
  });
});

describe("header: the run's total and the budget", () => {
  it("shows the session's total, of the budget", async () => {
    fakeServer(CATALOG);
    const s = pricedRun({ budgetMicroUsd: 500_000 });
    load(s.events);
    render(<Header sessionId={SESSION_ID} />);
    const cost = screen.getByTestId("run-cost");
    expect(cost.textContent).toBe("Cost $0.0165 of $0.50");
    expect(cost.dataset.costMicroUsd).toBe(String(45 + 4_200 + 12_300));
    expect(screen.queryByTestId("budget-reached")).toBeNull();
  });

  it("without a budget shows the total alone; with an unknown price says so", () => {
    fakeServer(CATALOG);
    load(pricedRun({ testerUnknown: true }).events);
    render(<Header sessionId={SESSION_ID} />);
    expect(screen.getByTestId("run-cost").textContent).toBe("Cost $0.0165 + price unknown");
  });

  it("says clearly when the budget is reached, and the run's error reads well", async () => {
    fakeServer(CATALOG);
    const s = pricedRun({ budgetMicroUsd: 15_000 });
    s.budgetStop("tester");
    load(s.events);
    render(<Header sessionId={SESSION_ID} />);
    expect(screen.getByTestId("run-cost").textContent).toBe("Cost $0.0165 of $0.015");
    expect(screen.getByTestId("budget-reached").textContent).toBe("Budget reached");
    const view = useSessionStore.getState().view;
    // No start, retry or rerun: the server would refuse each (budget_exhausted).
    expect(availableActions(view.state, true)).toMatchObject({ start: false, retry: null, rerun: [] });
    const notices = view.timeline.flatMap((i) => (i.kind === "notice" ? [i.text] : []));
    expect(notices).toContain("Tester was not started: The session's dollar budget is used up.");
    const runError = view.errors.find((e) => e.source === "run" && !e.resolved);
    expect(runError?.title).toBe("The run stopped at Tester: this session has used its budget");
  });

  it("the session page says the budget is spent where a new run would start", async () => {
    fakeServer(CATALOG);
    const s = pricedRun({ budgetMicroUsd: 15_000 });
    s.budgetStop("tester");
    load(s.events);
    render(<SessionPage id={SESSION_ID} />);
    const note = await screen.findByTestId("budget-spent-note");
    expect(note.textContent).toContain("It has spent $0.0165 of its $0.015 budget");
    expect(screen.queryByTestId("brief-input")).toBeNull();
    // The run controls do not offer a Retry that would be refused.
    expect(screen.getByTestId("run-note").textContent).toBe("This session has spent its budget: no agent will start again here. Start a new session to continue.");
    expect((screen.getByTestId("retry-button") as HTMLButtonElement).disabled).toBe(true);
  });
});

describe("conversation: the model's thinking", () => {
  function thinking(close: boolean) {
    const s = new Script();
    s.start("Build a todo app.", "auto");
    s.beginAttempt("architect");
    const reason = s.think("Weighing a monolith against services.", 8, close);
    return { s, reason };
  }

  it("a collapsed Thinking… block streams in the agent's turn; expanded, it grows while open", () => {
    const { s, reason } = thinking(false);
    load(s.events);
    render(<Conversation />);
    const turn = screen.getByTestId("reasoning-turn");
    expect(turn.dataset.name).toBe("Architect");
    const toggle = within(turn).getByTestId("reasoning-toggle");
    expect(toggle.getAttribute("aria-expanded")).toBe("false");
    expect(within(turn).getByTestId("reasoning-summary").textContent).toContain("Thinking…");
    expect(within(turn).queryByTestId("reasoning-text")).toBeNull();
    fireEvent.click(toggle);
    expect(toggle.getAttribute("aria-expanded")).toBe("true");
    expect(within(turn).getByTestId("reasoning-text").textContent).toBe("Weighing a monolith against services.");
    act(() => {
      const seq = useSessionStore.getState().view.lastSeq;
      useSessionStore.getState().ingest([{ type: "REASONING_MESSAGE_CONTENT", seq: seq + 1, messageId: reason, delta: " A monolith." }]);
    });
    expect(within(turn).getByTestId("reasoning-text").textContent).toBe("Weighing a monolith against services. A monolith.");
  });

  it("once the answer starts, the block sits at the top of the answer, ended, and never in its text; it stays open if it was", () => {
    const { s, reason } = thinking(false);
    load(s.events);
    render(<Conversation />);
    fireEvent.click(screen.getByTestId("reasoning-toggle"));
    act(() => {
      s.endThinking(reason);
      const message = s.stream("architect", answerFor("architect"));
      s.finishAnswer("architect", message, false);
      useSessionStore.getState().ingest(s.after(useSessionStore.getState().view.lastSeq));
    });
    expect(screen.queryByTestId("reasoning-turn")).toBeNull();
    const answer = screen.getAllByTestId("message").find((m) => m.dataset.name === "Architect")!;
    const block = within(answer).getByTestId("reasoning");
    expect(block.dataset.streaming).toBe("false");
    expect(within(block).getByTestId("reasoning-summary").textContent).toMatch(/^Thought for (a moment|\d+ s)/);
    expect(within(block).getByTestId("reasoning-toggle").getAttribute("aria-expanded")).toBe("true");
    // First in the answer, before the report's heading.
    const text = within(answer).getByTestId("message-text");
    expect(text.firstElementChild).toBe(block);
    const heading = within(answer).getByRole("heading", { name: "Architect report v1" });
    expect(heading.textContent).not.toContain("monolith");
    expect(useSessionStore.getState().view.messages[block.closest("li")!.dataset.messageId!]?.content).not.toContain("monolith");
  });

  it("between tool calls, the block is shown where it began: after the first call, before the second", () => {
    const s = new Script();
    s.start("Build a todo app.", "auto");
    s.beginAttempt("developer");
    const message = s.stream("developer", "Writing.\n\n");
    s.writeFile("developer", message, "src/a.js", "a\n");
    s.think("Now the second file.");
    s.writeFile("developer", message, "src/b.js", "b\n");
    s.finishAnswer("developer", message, false);
    load(s.events);
    render(<Conversation />);
    const answer = screen.getAllByTestId("message").find((m) => m.dataset.name === "Developer")!;
    const order = [...answer.querySelectorAll('[data-testid="tool-call"], [data-testid="reasoning"]')].map((el) =>
      el.getAttribute("data-testid") === "reasoning" ? "thinking" : el.getAttribute("data-path"),
    );
    expect(order).toEqual(["src/a.js", "thinking", "src/b.js"]);
  });
});
