import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { initialView, reduceAll } from "../protocol/reducer";
import type { ServerEvent } from "../protocol/types";
import { useConnectionStore } from "../store/connection";
import { VIEW_REVOKED_WORDS, downloadExport, downloadProjectZip, forgetRevokedViews } from "../net/api";
import { useSessionStore } from "../store/session";
import { SESSION_ID, Script, VIEW_KEY, caughtUp, welcome } from "../test/script";
import { ApprovalPanel } from "./ApprovalPanel";
import { Header } from "./Header";
import { RunControls } from "./RunControls";
import { SessionPage } from "./SessionPage";

const NEW_KEY = `v${"cd".repeat(48)}`;

/** The store as a page opened with `key` has it after catching up on `events`. */
function load(key: string, events: ServerEvent[]) {
  const readOnly = key === VIEW_KEY;
  const view = reduceAll(
    initialView(key),
    [welcome(0, "replay", { sessionId: key, readOnly }), ...events, caughtUp(events.at(-1)?.seq ?? 0)],
    Date.now(),
  );
  useSessionStore.setState({ view });
  useConnectionStore.setState({ status: "connected", attempt: 0, nextRetryAt: null });
}

function atGate(): ServerEvent[] {
  const s = new Script();
  s.start("brief");
  s.stage("analyst");
  return s.events;
}

type Call = { url: string; method: string };

/** A fake server: view links for SESSION_ID, 404 for unknown keys, the rest answered plainly. */
function fakeServer(opts: { missing?: string[] } = {}) {
  const calls: Call[] = [];
  let links = [
    { id: "aaaaaaaaaaaa", createdAt: Date.UTC(2026, 0, 2, 10, 0) },
    { id: "bbbbbbbbbbbb", createdAt: Date.UTC(2026, 0, 1, 9, 0) },
  ];
  const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      const method = init?.method ?? "GET";
      calls.push({ url, method });
      if (url === "/api/health") return json({ status: "ok", version: "t", provider: "demo" });
      if (opts.missing?.some((k) => url.startsWith(`/api/sessions/${k}`))) {
        return json({ error: { code: "not_found", message: "No such session." } }, 404);
      }
      if (url.endsWith("/views") && method === "POST") {
        const link = { id: "cccccccccccc", createdAt: Date.UTC(2026, 0, 3, 8, 0) };
        links = [link, ...links];
        return json({ key: NEW_KEY, ...link }, 201);
      }
      if (url.endsWith("/views")) return json({ views: links });
      const revoke = /\/views\/([0-9a-f]{12})$/.exec(url);
      if (revoke && method === "DELETE") {
        links = links.filter((l) => l.id !== revoke[1]);
        return new Response(null, { status: 204 });
      }
      return json({ id: SESSION_ID, lastSeq: 0, state: new Script().state });
    }),
  );
  return calls;
}

let clipboard: string[];

beforeEach(() => {
  forgetRevokedViews();
  useSessionStore.getState().reset(null);
  useConnectionStore.getState().reset();
  globalThis.requestAnimationFrame ??= (cb: FrameRequestCallback) => setTimeout(() => cb(0), 0) as unknown as number;
  clipboard = [];
  Object.defineProperty(navigator, "clipboard", {
    configurable: true,
    value: { writeText: vi.fn(async (text: string) => void clipboard.push(text)) },
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("a view-only page", () => {
  it("shows the gate without Approve or Request changes", () => {
    load(VIEW_KEY, atGate());
    render(<ApprovalPanel />);
    const panel = screen.getByTestId("approval-panel");
    expect(panel.dataset.stage).toBe("analyst");
    expect(panel.textContent).toContain("waits for the session's owner");
    expect(within(panel).queryAllByRole("button")).toHaveLength(0);
  });

  it("has no run controls, only where the run stands", () => {
    const s = new Script();
    s.start("brief", "auto");
    s.stage("analyst");
    s.delta([
      { op: "replace", path: "/run/status", value: "paused" },
      { op: "replace", path: "/run/stage", value: "architect" },
    ]);
    load(VIEW_KEY, s.events);
    render(<RunControls />);
    for (const id of ["pause-button", "resume-button", "cancel-button", "retry-button", "rerun-button", "rerun-stage"]) {
      expect(screen.queryByTestId(id), id).toBeNull();
    }
    expect(screen.queryAllByRole("button")).toHaveLength(0);
    expect(screen.getByTestId("run-note").textContent).toBe("Paused before the Architect.");
  });

  it("the whole page: a View only badge and note, no brief box, no command buttons, artifacts still open", async () => {
    fakeServer();
    const s = new Script();
    s.start("brief", "auto");
    for (const stage of ["analyst", "architect", "developer", "tester", "deployer"] as const) s.stage(stage);
    load(VIEW_KEY, s.events);
    render(
      <>
        <Header sessionId={VIEW_KEY} />
        <SessionPage id={VIEW_KEY} />
      </>,
    );
    expect(screen.getByTestId("view-only-badge").textContent).toBe("View only");
    expect(screen.getByTestId("view-only-note")).toBeTruthy();
    // One <h1> on the page (for screen readers: the session).
    expect(document.querySelectorAll("h1")).toHaveLength(1);
    for (const id of ["brief-input", "start-button", "approve-button", "pause-button", "cancel-button", "retry-button", "rerun-button"]) {
      expect(screen.queryByTestId(id), id).toBeNull();
    }
    const toggle = screen.getByTestId("artifact-toggle-analyst") as HTMLButtonElement;
    expect(toggle.disabled).toBe(false);
    expect((screen.getByTestId("download-all-button") as HTMLButtonElement).disabled).toBe(false);
    await act(async () => {
      await Promise.resolve();
    });
  });

  it("Share copies the view link it was opened with, and offers nothing else", async () => {
    const calls = fakeServer();
    load(VIEW_KEY, []);
    render(<Header sessionId={VIEW_KEY} />);
    fireEvent.click(screen.getByTestId("share-button"));
    await waitFor(() => expect(screen.getByTestId("share-button").textContent).toBe("Link copied"));
    expect(clipboard).toEqual([`${window.location.origin}/s/${VIEW_KEY}`]);
    expect(screen.queryByTestId("share-menu")).toBeNull();
    expect(calls.filter((c) => c.url.includes("/views"))).toEqual([]);
  });

  it("the header says View only from the key alone, before any welcome", () => {
    fakeServer();
    render(<Header sessionId={VIEW_KEY} />);
    expect(screen.getByTestId("view-only-badge")).toBeTruthy();
  });

  it("a revoked link says so in plain words, with no Reconnect, hides what it can no longer do, and every read says why", async () => {
    const calls = fakeServer();
    load(VIEW_KEY, atGate());
    useConnectionStore.setState({ status: "revoked", lastClose: { code: 4403, reason: "view link revoked", at: 1 } });
    render(
      <>
        <Header sessionId={VIEW_KEY} />
        <SessionPage id={VIEW_KEY} />
      </>,
    );
    expect(screen.getByTestId("view-revoked").textContent).toContain("This view link was revoked by the session's owner.");
    expect(screen.getByTestId("connection-status").textContent).toContain("Link revoked");
    expect(screen.queryByTestId("reconnect-button")).toBeNull();
    // What was received stays on the page.
    expect(screen.getByTestId("approval-panel")).toBeTruthy();
    expect(screen.getByTestId("view-only-badge").textContent).toBe("View link revoked");
    for (const id of ["share-button", "view-only-note", "export-button", "replay-button", "download-zip-button", "download-all-button"]) {
      expect(screen.queryByTestId(id), id).toBeNull();
    }
    // Any read with the key (an artifact, a file, the export) says it was revoked, without asking the server.
    const before = calls.length;
    await expect(downloadExport(VIEW_KEY)).rejects.toThrow(VIEW_REVOKED_WORDS);
    await expect(downloadProjectZip(VIEW_KEY)).rejects.toThrow(VIEW_REVOKED_WORDS);
    expect(calls.slice(before).filter((c) => c.url.includes(VIEW_KEY))).toEqual([]);
  });

  it("a view key the server does not know: the link is not valid, or was revoked", async () => {
    fakeServer({ missing: [VIEW_KEY] });
    render(<SessionPage id={VIEW_KEY} />);
    const card = await screen.findByTestId("session-not-found");
    expect(card.dataset.kind).toBe("view");
    expect(card.textContent).toContain("This view link is not valid, or it was revoked by the session's owner");
  });

  it("when reconnecting keeps failing, asks whether the key still works and says so if not", async () => {
    const calls = fakeServer();
    load(VIEW_KEY, atGate());
    render(<SessionPage id={VIEW_KEY} />);
    await act(async () => {
      await Promise.resolve();
    });
    expect(screen.queryByTestId("session-not-found")).toBeNull();
    const asked = calls.length;
    // The key stops working (revoked while this page was away), and the upgrade keeps failing.
    fakeServer({ missing: [VIEW_KEY] });
    act(() => useConnectionStore.setState({ status: "reconnecting", attempt: 1 }));
    expect(calls.length).toBe(asked); // the first failed try is not worth a question
    act(() => useConnectionStore.setState({ status: "reconnecting", attempt: 2 }));
    expect((await screen.findByTestId("session-not-found")).dataset.kind).toBe("view");
  });
});

describe("Share with the session id", () => {
  async function openMenu() {
    const calls = fakeServer();
    load(SESSION_ID, []);
    render(<Header sessionId={SESSION_ID} />);
    expect(screen.queryByTestId("view-only-badge")).toBeNull();
    fireEvent.click(screen.getByTestId("share-button"));
    await waitFor(() => expect(screen.getAllByTestId("view-link-row")).toHaveLength(2));
    return calls;
  }

  it("lists the view links, newest first", async () => {
    await openMenu();
    const menu = screen.getByTestId("share-menu");
    expect(menu.getAttribute("role")).toBe("dialog");
    expect(screen.getAllByTestId("view-link-row").map((r) => r.dataset.viewId)).toEqual(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]);
    expect(menu.textContent).toContain("View links (2)");
  });

  it("Copy view link makes a new link, copies it and shows it", async () => {
    const calls = await openMenu();
    fireEvent.click(screen.getByTestId("copy-view-link"));
    await waitFor(() => expect(screen.getByTestId("view-link-status").textContent).toBe("View link copied"));
    const url = `${window.location.origin}/s/${NEW_KEY}`;
    expect(clipboard).toEqual([url]);
    expect((screen.getByTestId("view-link-url") as HTMLInputElement).value).toBe(url);
    expect(calls.filter((c) => c.method === "POST").map((c) => c.url)).toEqual([`/api/sessions/${SESSION_ID}/views`]);
    await waitFor(() => expect(screen.getAllByTestId("view-link-row")).toHaveLength(3));
  });

  it("Copy control link copies the session's own link next to a warning", async () => {
    await openMenu();
    expect(screen.getByTestId("control-link-warning").textContent).toMatch(/full control/);
    fireEvent.click(screen.getByTestId("copy-control-link"));
    await waitFor(() => expect(clipboard).toEqual([`${window.location.origin}/?s=${SESSION_ID}`]));
    expect(await screen.findByText("Control link copied")).toBeTruthy();
  });

  it("Revoke asks first, then deletes the link and refreshes the list", async () => {
    const calls = await openMenu();
    const row = screen.getAllByTestId("view-link-row")[1]!;
    fireEvent.click(within(row).getByTestId("revoke-view-link"));
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    fireEvent.click(within(row).getByTestId("confirm-revoke-view-link"));
    await waitFor(() => expect(screen.getAllByTestId("view-link-row").map((r) => r.dataset.viewId)).toEqual(["aaaaaaaaaaaa"]));
    expect(calls.filter((c) => c.method === "DELETE").map((c) => c.url)).toEqual([`/api/sessions/${SESSION_ID}/views/bbbbbbbbbbbb`]);
    expect(screen.getByText("View link revoked")).toBeTruthy();
  });

  it("says plainly when the session has too many view links", async () => {
    await openMenu();
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => new Response(JSON.stringify({ error: { code: "too_many_views", message: "At most 20." } }), { status: 409 })),
    );
    fireEvent.click(screen.getByTestId("copy-view-link"));
    expect((await screen.findByTestId("view-link-error")).textContent).toMatch(/Revoke one, then try again/);
    expect(clipboard).toEqual([]);
  });

  it("Escape closes the menu and gives focus back to Share", async () => {
    await openMenu();
    fireEvent.keyDown(document, { key: "Escape" });
    expect(screen.queryByTestId("share-menu")).toBeNull();
    expect(document.activeElement).toBe(screen.getByTestId("share-button"));
  });
});
