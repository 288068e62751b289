import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forgetSession, listMySessions, mySessionRow, rememberSession, renameSession, deleteSession, type MySession } from "../net/api";
import { formatAgo } from "../lib/format";
import { getOwnerKey } from "../lib/owner";
import { useConnectionStore } from "../store/connection";
import { useSessionStore } from "../store/session";
import { Script } from "../test/script";
import { SessionPage } from "./SessionPage";
import { YourSessions } from "./YourSessions";

const NOW = Date.UTC(2026, 2, 12, 14, 5);
const ID_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const VIEW = `v${"c".repeat(96)}`;

function row(over: Partial<MySession> & { key: string }): MySession {
  return { readOnly: false, name: "A session", status: "idle", stagesDone: 0, tokens: 0, costMicroUsd: 0, createdAt: NOW - 3_600_000, updatedAt: NOW - 60_000, ...over };
}

type Call = { url: string; method: string; body: string | null; owner: string | null };

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const err = (status: number, code: string, message: string) => json({ error: { code, message } }, status);

/**
 * The Worker's "Your sessions" in memory: the list (newest first, q a case-insensitive name
 * substring), rename (1–120 characters), delete and forget. `answer` can take over a request.
 */
function fakeServer(initial: MySession[], answer?: (url: string, method: string, body: string | null) => Response | undefined) {
  let rows = [...initial];
  const calls: Call[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      const method = init?.method ?? "GET";
      const body = typeof init?.body === "string" ? init.body : null;
      calls.push({ url, method, body, owner: new Headers(init?.headers).get("X-BotArmy-Owner") });
      const own = answer?.(url, method, body);
      if (own) return own;
      const u = new URL(url, "http://x");
      if (u.pathname === "/api/sessions" && method === "GET") {
        const q = (u.searchParams.get("q") ?? "").toLowerCase();
        return json({ sessions: rows.filter((r) => r.name.toLowerCase().includes(q)).sort((a, b) => b.updatedAt - a.updatedAt) });
      }
      const remember = /^\/api\/sessions\/([^/]+)\/remember$/.exec(u.pathname);
      if (remember && method === "DELETE") {
        rows = rows.filter((r) => r.key !== remember[1]);
        return new Response(null, { status: 204 });
      }
      if (remember && method === "POST") return json({ key: remember[1], readOnly: remember[1]?.startsWith("v"), summary: {} });
      const one = /^\/api\/sessions\/([0-9a-f]{32})$/.exec(u.pathname);
      if (one && method === "PATCH") {
        const name = String((JSON.parse(body ?? "{}") as { name?: unknown }).name ?? "").trim().replace(/\s+/g, " ");
        if (!name) return err(400, "invalid_field", "A name needs at least one character.");
        if ([...name].length > 120) return err(400, "invalid_field", `The name has ${[...name].length} characters; the most is 120.`);
        rows = rows.map((r) => (r.key === one[1] ? { ...r, name } : r));
        return json({ summary: { name } });
      }
      if (one && method === "DELETE") {
        if (!rows.some((r) => r.key === one[1])) return err(404, "not_found", "No session with this id.");
        rows = rows.filter((r) => r.key !== one[1]);
        return new Response(null, { status: 204 });
      }
      return json({ id: one?.[1] ?? "", lastSeq: 0, state: new Script().state });
    }),
  );
  return {
    calls,
    set(next: MySession[]) {
      rows = next;
    },
    lists: () => calls.filter((c) => c.method === "GET" && new URL(c.url, "http://x").pathname === "/api/sessions"),
  };
}

const rowsShown = () => screen.queryAllByTestId("my-session-row");
const rowOf = (key: string) => rowsShown().find((r) => r.dataset.key === key)!;

beforeEach(() => {
  window.localStorage.clear();
  vi.spyOn(Date, "now").mockReturnValue(NOW);
});

afterEach(() => {
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe("reading a list row", () => {
  it("keeps what it can use and never takes a bad key", () => {
    expect(mySessionRow({ key: "nothex", name: "x" })).toBeNull();
    expect(mySessionRow(null)).toBeNull();
    expect(mySessionRow({ key: ID_A })).toEqual(row({ key: ID_A, name: "New session", createdAt: 0, updatedAt: 0 }));
    // A view key is read-only even if a row says otherwise.
    expect(mySessionRow({ key: VIEW, readOnly: false, name: "V", status: "running", stagesDone: 2, tokens: 5, costMicroUsd: 7, createdAt: 1, updatedAt: 2 })).toEqual(
      row({ key: VIEW, readOnly: true, name: "V", status: "running", stagesDone: 2, tokens: 5, costMicroUsd: 7, createdAt: 1, updatedAt: 2 }),
    );
  });

  it("asks the server with q, the owner key, and the right methods for remember, forget, rename and delete", async () => {
    const server = fakeServer([row({ key: ID_A, name: "Todo app" }), row({ key: ID_B, name: "Shop" })]);
    expect((await listMySessions("  TODO ")).map((r) => r.key)).toEqual([ID_A]);
    await rememberSession(VIEW);
    await rememberSession(VIEW); // once per page load
    await forgetSession(VIEW);
    expect(await renameSession(ID_A, "  My\t todo  ")).toBe("My todo");
    await deleteSession(ID_B);
    expect(server.calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      "GET /api/sessions?q=TODO",
      `POST /api/sessions/${VIEW}/remember`,
      `DELETE /api/sessions/${VIEW}/remember`,
      `PATCH /api/sessions/${ID_A}`,
      `DELETE /api/sessions/${ID_B}`,
    ]);
    expect(JSON.parse(server.calls[3]?.body ?? "")).toEqual({ name: "  My\t todo  " });
    for (const c of server.calls) expect(c.owner).toBe(getOwnerKey());
  });
});

describe("relative time", () => {
  it("says how long ago in words, then the date", () => {
    expect(formatAgo(NOW - 10_000, NOW)).toBe("just now");
    expect(formatAgo(NOW + 5_000, NOW)).toBe("just now");
    expect(formatAgo(NOW - 5 * 60_000, NOW)).toBe("5 min ago");
    expect(formatAgo(NOW - 3 * 3_600_000, NOW)).toBe("3 h ago");
    expect(formatAgo(NOW - 30 * 3_600_000, NOW)).toBe("yesterday");
    expect(formatAgo(NOW - 4 * 86_400_000, NOW)).toBe("4 days ago");
    expect(formatAgo(NOW - 40 * 86_400_000, NOW)).toMatch(/2026/);
  });
});

describe("Your sessions", () => {
  it("lists the rows newest first: name, status words, stages, when, tokens, cost, and a View only mark", async () => {
    fakeServer([
      row({ key: ID_B, name: "Older shop", status: "completed", stagesDone: 5, tokens: 12_345, costMicroUsd: 12_300, updatedAt: NOW - 3 * 3_600_000 }),
      row({ key: ID_A, name: "Todo app for families", status: "running", stagesDone: 2, tokens: 950, costMicroUsd: 45, updatedAt: NOW - 5 * 60_000 }),
      row({ key: VIEW, readOnly: true, name: "Someone's plan", status: "waiting_approval", stagesDone: 1, tokens: 2_000_000, costMicroUsd: 1_234_567, updatedAt: NOW - 30 * 3_600_000 }),
    ]);
    render(<YourSessions refreshMs={60_000} />);
    expect(screen.getByTestId("my-sessions-loading").textContent).toBe("Loading your sessions…");
    await waitFor(() => expect(rowsShown().length).toBe(3));
    expect(rowsShown().map((r) => r.dataset.key)).toEqual([ID_A, ID_B, VIEW]);

    const a = within(rowOf(ID_A));
    expect(a.getByTestId("my-session-link").textContent).toBe("Todo app for families");
    expect(a.getByTestId("my-session-link").getAttribute("href")).toBe(`/?s=${ID_A}`);
    expect(a.getByTestId("my-session-status").textContent).toBe("Running");
    expect(a.getByTestId("my-session-stages").textContent).toBe("2/5 stages done");
    expect(a.getByTestId("my-session-when").textContent).toBe("5 min ago");
    expect(a.getByTestId("my-session-when").getAttribute("title")).toMatch(/^Last active .*2026/);
    expect(a.getByTestId("my-session-when").getAttribute("datetime")).toBe(new Date(NOW - 5 * 60_000).toISOString());
    expect(a.getByTestId("my-session-tokens").textContent).toBe("950 tokens");
    expect(a.getByTestId("my-session-cost").textContent).toBe("$0.000045");
    expect(a.queryByTestId("my-session-view-only")).toBeNull();
    expect(a.getByTestId("rename-session")).toBeTruthy();
    expect(a.getByTestId("delete-session")).toBeTruthy();

    const b = within(rowOf(ID_B));
    expect(b.getByTestId("my-session-status").textContent).toBe("Completed");
    expect(b.getByTestId("my-session-when").textContent).toBe("3 h ago");
    expect(b.getByTestId("my-session-tokens").textContent).toBe("12k tokens");
    expect(b.getByTestId("my-session-cost").textContent).toBe("$0.0123");

    const v = within(rowOf(VIEW));
    expect(v.getByTestId("my-session-view-only").textContent).toBe("View only");
    expect(v.getByTestId("my-session-status").textContent).toBe("Waiting for approval");
    expect(v.getByTestId("my-session-link").getAttribute("href")).toBe(`/s/${VIEW}`);
    expect(v.getByTestId("my-session-when").textContent).toBe("yesterday");
    expect(v.getByTestId("my-session-tokens").textContent).toBe("2.0M tokens");
    expect(v.getByTestId("my-session-cost").textContent).toBe("$1.23");
    // A view row can be taken off the list, never renamed or deleted.
    expect(v.queryByTestId("rename-session")).toBeNull();
    expect(v.queryByTestId("delete-session")).toBeNull();
    expect(v.getByTestId("forget-session").textContent).toBe("Remove from my list");
    // The accessible name starts with the visible text (axe: label-content-name-mismatch).
    expect(v.getByTestId("forget-session").getAttribute("aria-label")).toMatch(/^Remove from my list: /);
  });

  it("opens a session from its row in the page (the address changes, no reload)", async () => {
    fakeServer([row({ key: ID_A, name: "Todo" }), row({ key: VIEW, readOnly: true, name: "Viewed", updatedAt: NOW - 120_000 })]);
    window.history.replaceState(null, "", "/");
    render(<YourSessions />);
    await waitFor(() => expect(rowsShown().length).toBe(2));
    fireEvent.click(within(rowOf(ID_A)).getByTestId("my-session-link"));
    expect(window.location.search).toBe(`?s=${ID_A}`);
    fireEvent.click(within(rowOf(VIEW)).getByTestId("my-session-link"));
    expect(window.location.pathname).toBe(`/s/${VIEW}`);
    window.history.replaceState(null, "", "/");
  });

  it("says so when there is nothing yet", async () => {
    fakeServer([]);
    render(<YourSessions />);
    expect((await screen.findByTestId("my-sessions-empty")).textContent).toBe("No sessions yet. The sessions you start or open appear here.");
  });

  it("searches once typing pauses (one request with the final q), and says when nothing matches", async () => {
    const server = fakeServer([row({ key: ID_A, name: "Todo app" }), row({ key: ID_B, name: "Bookshop", updatedAt: NOW - 120_000 })]);
    render(<YourSessions />);
    await waitFor(() => expect(rowsShown().length).toBe(2));
    const search = screen.getByTestId("my-sessions-search");
    fireEvent.change(search, { target: { value: "b" } });
    fireEvent.change(search, { target: { value: "bo" } });
    fireEvent.change(search, { target: { value: "BOOK" } });
    // Not yet: the debounce holds the query back.
    await new Promise((r) => setTimeout(r, 100));
    expect(server.lists().length).toBe(1);
    await waitFor(() => expect(rowsShown().map((r) => r.dataset.key)).toEqual([ID_B]));
    expect(server.lists().map((c) => c.url)).toEqual(["/api/sessions", "/api/sessions?q=BOOK"]);

    fireEvent.change(search, { target: { value: "zzz" } });
    expect((await screen.findByTestId("my-sessions-empty")).textContent).toBe("No session matches “zzz”.");
    fireEvent.change(search, { target: { value: "" } });
    await waitFor(() => expect(rowsShown().length).toBe(2));
    expect(server.lists().map((c) => c.url)).toEqual(["/api/sessions", "/api/sessions?q=BOOK", "/api/sessions?q=zzz", "/api/sessions"]);
  });

  it("asks for the access token on a 401, and loads again once one is saved", async () => {
    let refuse = true;
    fakeServer([row({ key: ID_A, name: "Todo" })], (url) => (refuse && url.startsWith("/api/sessions") ? err(401, "unauthorized", "An access token is required.") : undefined));
    const onUnauthorized = vi.fn();
    const { rerender } = render(<YourSessions onUnauthorized={onUnauthorized} authVersion={0} />);
    const alert = await screen.findByTestId("my-sessions-error");
    expect(alert.textContent).toMatch(/needs an access token/);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    refuse = false;
    rerender(<YourSessions onUnauthorized={onUnauthorized} authVersion={1} />);
    await waitFor(() => expect(rowsShown().length).toBe(1));
    expect(screen.queryByTestId("my-sessions-error")).toBeNull();
  });

  it("says in words when the list cannot load, and tries again on request", async () => {
    let down = true;
    fakeServer([row({ key: ID_A })], (url) => (down && url.startsWith("/api/sessions") ? err(503, "index_unavailable", "Your session list could not be read; try again.") : undefined));
    render(<YourSessions />);
    expect((await screen.findByTestId("my-sessions-error")).textContent).toContain("Your sessions could not be loaded: Your session list could not be read; try again.");
    down = false;
    fireEvent.click(screen.getByTestId("my-sessions-retry"));
    await waitFor(() => expect(rowsShown().length).toBe(1));
  });

  it("follows a running session's status until it ends", async () => {
    const server = fakeServer([row({ key: ID_A, name: "Todo", status: "running", stagesDone: 1 })]);
    render(<YourSessions refreshMs={40} />);
    await waitFor(() => expect(rowOf(ID_A).dataset.status).toBe("running"));
    server.set([row({ key: ID_A, name: "Todo", status: "completed", stagesDone: 5 })]);
    await waitFor(() => expect(rowOf(ID_A).dataset.status).toBe("completed"));
    expect(within(rowOf(ID_A)).getByTestId("my-session-stages").textContent).toBe("5/5 stages done");
    // Nothing runs any more: no more refreshes.
    const after = server.lists().length;
    await new Promise((r) => setTimeout(r, 200));
    expect(server.lists().length).toBe(after);
  });

  it("renames inline: Enter saves the server's name, Escape cancels without a request", async () => {
    const server = fakeServer([row({ key: ID_A, name: "Todo app" })]);
    render(<YourSessions />);
    await waitFor(() => expect(rowsShown().length).toBe(1));

    fireEvent.click(screen.getByTestId("rename-session"));
    let input = screen.getByTestId("rename-input") as HTMLInputElement;
    expect(document.activeElement).toBe(input);
    expect(input.value).toBe("Todo app");
    fireEvent.change(input, { target: { value: "Something else" } });
    fireEvent.keyDown(input, { key: "Escape" });
    expect(screen.queryByTestId("rename-input")).toBeNull();
    expect(screen.getByTestId("my-session-link").textContent).toBe("Todo app");
    expect(document.activeElement).toBe(screen.getByTestId("rename-session"));
    expect(server.calls.filter((c) => c.method === "PATCH")).toEqual([]);

    fireEvent.click(screen.getByTestId("rename-session"));
    input = screen.getByTestId("rename-input") as HTMLInputElement;
    fireEvent.change(input, { target: { value: "  Family   todo " } });
    fireEvent.submit(input.form!);
    await waitFor(() => expect(screen.getByTestId("my-session-link").textContent).toBe("Family todo"));
    expect(server.calls.filter((c) => c.method === "PATCH").map((c) => [c.url, JSON.parse(c.body ?? "")])).toEqual([
      [`/api/sessions/${ID_A}`, { name: "  Family   todo " }],
    ]);
    expect(screen.getByTestId("my-sessions-notice").textContent).toBe("Renamed to “Family todo”.");
    expect(document.activeElement).toBe(screen.getByTestId("rename-session"));
  });

  it("shows the server's refusal of a name in words and keeps the field open", async () => {
    fakeServer([row({ key: ID_A, name: "Todo app" })]);
    render(<YourSessions />);
    await waitFor(() => expect(rowsShown().length).toBe(1));
    fireEvent.click(screen.getByTestId("rename-session"));
    const input = screen.getByTestId("rename-input") as HTMLInputElement;
    fireEvent.change(input, { target: { value: "x".repeat(121) } });
    fireEvent.submit(input.form!);
    const error = await screen.findByTestId("rename-error");
    expect(error.textContent).toBe("The name was not saved: The name has 121 characters; the most is 120.");
    expect(input.getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByTestId("rename-input")).toBe(input);
    expect(document.activeElement).toBe(input);
    expect(input.disabled).toBe(false);
    // Typing again clears the message; a blank name is refused too.
    fireEvent.change(input, { target: { value: "   " } });
    expect(screen.queryByTestId("rename-error")).toBeNull();
    fireEvent.submit(input.form!);
    expect((await screen.findByTestId("rename-error")).textContent).toBe("The name was not saved: A name needs at least one character.");
  });

  it("deletes only after the confirmation: Cancel (or Escape) keeps the row, Delete session removes it", async () => {
    const server = fakeServer([row({ key: ID_A, name: "Todo app" }), row({ key: ID_B, name: "Shop", updatedAt: NOW - 120_000 })]);
    render(<YourSessions />);
    await waitFor(() => expect(rowsShown().length).toBe(2));
    const deletes = () => server.calls.filter((c) => c.method === "DELETE");

    fireEvent.click(within(rowOf(ID_A)).getByTestId("delete-session"));
    let dialog = screen.getByTestId("delete-dialog");
    expect(dialog.getAttribute("role")).toBe("alertdialog");
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(dialog.textContent).toContain("Delete “Todo app”?");
    expect(screen.getByTestId("delete-dialog-text").textContent).toBe(
      "Its conversation, artifacts and files are deleted for everyone with the link. This cannot be undone.",
    );
    expect(document.activeElement).toBe(screen.getByTestId("cancel-delete-session"));
    fireEvent.click(screen.getByTestId("cancel-delete-session"));
    expect(screen.queryByTestId("delete-dialog")).toBeNull();
    expect(rowsShown().length).toBe(2);
    expect(document.activeElement).toBe(within(rowOf(ID_A)).getByTestId("delete-session"));

    fireEvent.click(within(rowOf(ID_A)).getByTestId("delete-session"));
    fireEvent.keyDown(screen.getByTestId("delete-dialog"), { key: "Escape" });
    expect(screen.queryByTestId("delete-dialog")).toBeNull();
    expect(deletes()).toEqual([]);

    fireEvent.click(within(rowOf(ID_A)).getByTestId("delete-session"));
    dialog = screen.getByTestId("delete-dialog");
    fireEvent.click(within(dialog).getByTestId("confirm-delete-session"));
    await waitFor(() => expect(rowsShown().map((r) => r.dataset.key)).toEqual([ID_B]));
    expect(screen.queryByTestId("delete-dialog")).toBeNull();
    expect(deletes().map((c) => c.url)).toEqual([`/api/sessions/${ID_A}`]);
    expect(screen.getByTestId("my-sessions-notice").textContent).toBe("Deleted “Todo app”.");
  });

  it("keeps the dialog open with the reason when the delete fails", async () => {
    fakeServer([row({ key: ID_A, name: "Todo app" })], (url, method) =>
      method === "DELETE" && url === `/api/sessions/${ID_A}` ? err(401, "unauthorized", "A valid access token is required.") : undefined,
    );
    render(<YourSessions />);
    await waitFor(() => expect(rowsShown().length).toBe(1));
    fireEvent.click(screen.getByTestId("delete-session"));
    fireEvent.click(screen.getByTestId("confirm-delete-session"));
    expect((await screen.findByTestId("delete-error")).textContent).toBe("The session was not deleted: A valid access token is required.");
    expect(rowsShown().length).toBe(1);
  });

  it("removes a view-only row from the list (the session is not deleted) without a dialog", async () => {
    const server = fakeServer([row({ key: ID_A, name: "Mine" }), row({ key: VIEW, readOnly: true, name: "Theirs", updatedAt: NOW - 120_000 })]);
    render(<YourSessions />);
    await waitFor(() => expect(rowsShown().length).toBe(2));
    fireEvent.click(within(rowOf(VIEW)).getByTestId("forget-session"));
    expect(screen.queryByTestId("delete-dialog")).toBeNull();
    await waitFor(() => expect(rowsShown().map((r) => r.dataset.key)).toEqual([ID_A]));
    expect(server.calls.filter((c) => c.method === "DELETE").map((c) => c.url)).toEqual([`/api/sessions/${VIEW}/remember`]);
    expect(screen.getByTestId("my-sessions-notice").textContent).toMatch(/Removed “Theirs” from your list/);
  });
});

describe("opening a session page", () => {
  beforeEach(() => {
    useSessionStore.getState().reset(null);
    useConnectionStore.getState().reset();
  });

  it("puts it in the owner's list once (a view key as itself)", async () => {
    const KEY = `v${"d".repeat(96)}`;
    const server = fakeServer([]);
    const { unmount } = render(<SessionPage id={KEY} />);
    await waitFor(() => expect(server.calls.some((c) => c.method === "POST")).toBe(true));
    unmount();
    render(<SessionPage id={KEY} />);
    await act(async () => {
      await new Promise((r) => setTimeout(r, 50));
    });
    expect(server.calls.filter((c) => c.method === "POST").map((c) => c.url)).toEqual([`/api/sessions/${KEY}/remember`]);
  });
});
