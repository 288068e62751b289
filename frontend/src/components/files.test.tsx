import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { initialView, reduceAll } from "../protocol/reducer";
import type { ProjectFileVersion, ServerEvent } from "../protocol/types";
import { setAccessToken } from "../lib/token";
import { useConnectionStore } from "../store/connection";
import { useSessionStore } from "../store/session";
import { SESSION_ID, Script, caughtUp, welcome } from "../test/script";
import { Conversation } from "./Conversation";
import { FilesPanel, buildTree } from "./Files";

function load(events: ServerEvent[]) {
  const view = reduceAll(initialView(SESSION_ID), [welcome(0), ...events, caughtUp(events.at(-1)?.seq ?? 0)], Date.now());
  useSessionStore.setState({ view });
  useConnectionStore.setState({ status: "connected", attempt: 0, nextRetryAt: null });
}

/** Feeds more logged events to the live store, numbered after what it has. */
function ingest(events: ServerEvent[]) {
  act(() => {
    const last = useSessionStore.getState().view.lastSeq;
    useSessionStore.getState().ingest(events.map((e, i) => ({ ...e, seq: last + i + 1 }) as ServerEvent));
  });
}

type Route = (url: string) => Response | undefined;

function fakeFetch(route: Route) {
  const calls: { url: string; headers: Headers }[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      calls.push({ url, headers: new Headers(init?.headers) });
      return route(url) ?? new Response(JSON.stringify({ error: { code: "not_found", message: "No such file." } }), { status: 404 });
    }),
  );
  return calls;
}

const text = (body: string) => new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
const json = (body: unknown) => new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });

function listing(files: { path: string; versions: ProjectFileVersion[] }[]) {
  return json({
    files: files.map((f) => ({ path: f.path, ...f.versions.at(-1)!, attempt: 1, versions: f.versions })),
    bytes: 1,
    limits: { files: 200, fileBytes: 262144, workspaceBytes: 4194304, toolRounds: 12 },
  });
}

beforeEach(() => {
  useSessionStore.getState().reset(null);
  useConnectionStore.getState().reset();
  window.localStorage.clear();
  globalThis.requestAnimationFrame ??= (cb: FrameRequestCallback) => setTimeout(() => cb(0), 0) as unknown as number;
});

afterEach(() => {
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

/** A developer stage that wrote three files. */
function project(): { s: Script; answer: string } {
  const s = new Script();
  s.start("A todo app");
  s.beginAttempt("architect");
  const arch = s.stream("architect", "The skeleton.");
  s.writeFile("architect", arch, "README.md", "# Todo\n");
  s.beginAttempt("developer");
  const answer = s.stream("developer", "The code.");
  s.writeFile("developer", answer, "src/app.js", "export const app = 1;\n");
  s.writeFile("developer", answer, "src/lib/util.js", "export const util = 2;\n");
  return { s, answer };
}

describe("Files panel", () => {
  it("is empty with a disabled zip button before any file", () => {
    load(new Script().events);
    render(<FilesPanel />);
    expect(screen.getByTestId("files-empty")).toBeTruthy();
    expect((screen.getByTestId("download-zip-button") as HTMLButtonElement).disabled).toBe(true);
  });

  it("builds the tree from state.files (folders first, by name) and folds a folder", () => {
    const { s } = project();
    load(s.events);
    render(<FilesPanel />);
    const files = () => screen.queryAllByTestId("file-tree-file").map((el) => el.dataset.path);
    expect(files()).toEqual(["src/lib/util.js", "src/app.js", "README.md"]);
    expect(screen.getAllByTestId("file-tree-folder").map((el) => el.dataset.path)).toEqual(["src", "src/lib"]);
    expect(screen.getByTestId("files-summary").textContent).toBe("3 files · 52 B");
    const src = screen.getAllByTestId("file-tree-folder")[0]!;
    fireEvent.click(src);
    expect(src.getAttribute("aria-expanded")).toBe("false");
    expect(files()).toEqual(["README.md"]);
    expect(buildTree(["b", "a/c", "a/b/d"]).folders.map((f) => f.name)).toEqual(["a"]);
  });

  it("grows live: the file being written appears at once and its content streams into the viewer", async () => {
    const { s, answer } = project();
    load(s.events);
    const calls = fakeFetch((url) => (url.includes("/files/docs/new.md?version=") ? text("# New\n\nAll of it.\n") : url.endsWith("/files") ? listing([]) : undefined));
    render(<FilesPanel />);
    const args = JSON.stringify({ path: "docs/new.md", content: "# New\n\nAll of it.\n" });
    ingest([
      { type: "TOOL_CALL_START", toolCallId: "live-1", toolCallName: "write_file", parentMessageId: answer },
      { type: "TOOL_CALL_ARGS", toolCallId: "live-1", delta: args.slice(0, 12) },
    ]);
    // The path is not whole yet: said in the "being written" line, not yet a file in the tree.
    expect(screen.getByTestId("file-writing").textContent).toContain("Developer is writing");
    expect(screen.queryAllByTestId("file-tree-file").map((el) => el.dataset.path)).not.toContain("docs/new.md");

    ingest([{ type: "TOOL_CALL_ARGS", toolCallId: "live-1", delta: args.slice(12, 36) }]);
    const item = screen.getAllByTestId("file-tree-file").find((el) => el.dataset.path === "docs/new.md")!;
    expect(item.dataset.writing).toBe("true");
    // Following the agents, the viewer shows the file being written.
    const content = await screen.findByTestId("file-content");
    expect(content.dataset.live).toBe("true");
    expect(content.textContent).toBe("# N");

    ingest([{ type: "TOOL_CALL_ARGS", toolCallId: "live-1", delta: args.slice(36) }]);
    await waitFor(() => expect(screen.getByTestId("file-content").textContent).toBe("# New\n\nAll of it.\n"));
    // Highlighted once the highlighter (a chunk of its own) has loaded.
    await waitFor(() => expect(screen.getByTestId("file-content").querySelector(".hljs-section")).not.toBeNull());

    ingest([
      { type: "TOOL_CALL_END", toolCallId: "live-1" },
      { type: "STATE_DELTA", delta: [{ op: "add", path: "/files/docs~1new.md", value: { bytes: 18, version: 9, stage: "developer" } }] },
      { type: "TOOL_CALL_RESULT", messageId: "tool-live-1", toolCallId: "live-1", content: "Wrote docs/new.md (18 bytes).", role: "tool" },
    ]);
    expect(screen.queryByTestId("file-writing")).toBeNull();
    // Written: the viewer now reads the saved version from the server.
    await waitFor(() => expect(screen.getByTestId("file-content").dataset.live).toBe("false"));
    expect(screen.getByTestId("file-content").textContent).toBe("# New\n\nAll of it.\n");
    expect(calls.map((c) => c.url)).toContain(`/api/sessions/${SESSION_ID}/files/docs/new.md?version=9`);
    expect(screen.getByTestId("files-summary").textContent).toMatch(/^4 files/);
  });

  it("content before path (the demo's order): the content grows unnamed, and the file is named once its path arrives", async () => {
    const { s, answer } = project();
    load(s.events);
    fakeFetch((url) => (url.endsWith("/files") ? listing([]) : undefined));
    render(<FilesPanel />);
    const args = JSON.stringify({ content: "export const late = 1;\nexport const named = 2;\n", path: "src/late.js" });
    const at = args.indexOf('"path"');
    ingest([
      { type: "TOOL_CALL_START", toolCallId: "late-1", toolCallName: "write_file", parentMessageId: answer },
      { type: "TOOL_CALL_ARGS", toolCallId: "late-1", delta: args.slice(0, 20) },
    ]);
    expect(screen.getByTestId("file-writing").textContent).toContain("Developer is writing a new file (its name is not known yet)");
    const viewer = await screen.findByTestId("file-viewer");
    expect(viewer.dataset.unnamed).toBe("true");
    expect(screen.getByTestId("file-content").textContent).toBe("export c");

    ingest([{ type: "TOOL_CALL_ARGS", toolCallId: "late-1", delta: args.slice(20, at) }]);
    expect(screen.getByTestId("file-content").textContent).toBe("export const late = 1;\nexport const named = 2;\n");
    expect(screen.getByTestId("file-content").dataset.live).toBe("true");
    expect(screen.queryAllByTestId("file-tree-file").map((el) => el.dataset.path)).not.toContain("src/late.js");

    // Half the path: still unnamed (a path cut short would name the wrong file).
    ingest([{ type: "TOOL_CALL_ARGS", toolCallId: "late-1", delta: args.slice(at, at + 12) }]);
    expect(screen.getByTestId("file-viewer").dataset.unnamed).toBe("true");
    ingest([{ type: "TOOL_CALL_ARGS", toolCallId: "late-1", delta: args.slice(at + 12, -1) }]);
    // The closing quote of the path: named in the list, the tree and the viewer, still live.
    await waitFor(() => expect(screen.getByTestId("file-viewer").dataset.path).toBe("src/late.js"));
    expect(screen.getByTestId("file-writing").textContent).toContain("Developer is writing src/late.js");
    const item = screen.getAllByTestId("file-tree-file").find((el) => el.dataset.path === "src/late.js")!;
    expect(item.dataset.writing).toBe("true");
    expect(screen.getByTestId("file-content").dataset.live).toBe("true");
    expect(screen.getByTestId("file-content").textContent).toBe("export const late = 1;\nexport const named = 2;\n");
  });

  it("opens a file highlighted, as text only (never HTML), with the path encoded per segment", async () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("developer");
    const id = s.stream("developer", "x");
    const code = 'const x = "<img src=x onerror=alert(1)>"; // <script>window.__files=1</script>\n';
    s.writeFile("developer", id, "src/my app.js", code);
    load(s.events);
    const calls = fakeFetch((url) =>
      url.includes("/files/src/my%20app.js?version=1") ? text(code) : url.endsWith("/files") ? listing([{ path: "src/my app.js", versions: [{ version: 1, stage: "developer", bytes: 80, deleted: false }] }]) : undefined,
    );
    const { container } = render(<FilesPanel />);
    // Nothing is written now: the viewer waits for a pick.
    expect(screen.queryByTestId("file-viewer")).toBeNull();
    fireEvent.click(screen.getAllByTestId("file-tree-file")[0]!);
    const content = await screen.findByTestId("file-content");
    await waitFor(() => expect(content.textContent).toBe(code));
    expect(content.dataset.language).toBe("javascript");
    await waitFor(() => expect(content.querySelector(".hljs-keyword")?.textContent).toBe("const"));
    expect(content.querySelector(".hljs-string")).not.toBeNull();
    expect(container.querySelector("img")).toBeNull();
    expect(container.querySelector("script")).toBeNull();
    expect((window as { __files?: unknown }).__files).toBeUndefined();
    expect(calls.map((c) => c.url)).toContain(`/api/sessions/${SESSION_ID}/files/src/my%20app.js?version=1`);
  });

  it("diffs two versions of a file", async () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("developer");
    const id = s.stream("developer", "x");
    s.writeFile("developer", id, "src/app.js", "const a = 1;\nconst b = 2;\n");
    s.writeFile("developer", id, "src/app.js", "const a = 1;\nconst b = 3;\nconst c = 4;\n");
    load(s.events);
    fakeFetch((url) => {
      if (url.endsWith("/files"))
        return listing([
          {
            path: "src/app.js",
            versions: [
              { version: 1, stage: "developer", bytes: 26, deleted: false },
              { version: 2, stage: "developer", bytes: 39, deleted: false },
            ],
          },
        ]);
      if (url.endsWith("/files/src/app.js?version=1")) return text("const a = 1;\nconst b = 2;\n");
      if (url.endsWith("/files/src/app.js?version=2")) return text("const a = 1;\nconst b = 3;\nconst c = 4;\n");
      return undefined;
    });
    render(<FilesPanel />);
    fireEvent.click(screen.getAllByTestId("file-tree-file")[0]!);
    await screen.findByTestId("file-content");
    const diffButton = screen.getByTestId("file-mode-diff") as HTMLButtonElement;
    await waitFor(() => expect(diffButton.disabled).toBe(false));
    const version = screen.getByTestId("file-version") as HTMLSelectElement;
    expect([...version.options].map((o) => o.textContent)).toEqual(["v1", "v2 (current)"]);
    fireEvent.click(diffButton);
    const diff = await screen.findByTestId("file-diff");
    expect(diff.dataset.added).toBe("2");
    expect(diff.dataset.removed).toBe("1");
    expect(diff.querySelector('[data-change="removed"]')?.textContent).toBe("− const b = 2;");
    expect(diff.querySelector('[data-change="added"]')?.textContent).toBe("+ const b = 3;\n+ const c = 4;");
  });

  it("downloads the project as a zip through fetch with the access token", async () => {
    setAccessToken("zip-token");
    const { s } = project();
    load(s.events);
    const zipBytes = new Uint8Array([0x50, 0x4b, 3, 4, 1, 2, 3]);
    const calls = fakeFetch((url) =>
      url.endsWith("/project.zip")
        ? new Response(zipBytes, { headers: { "content-type": "application/zip", "content-disposition": 'attachment; filename="botarmy-01234567.zip"' } })
        : undefined,
    );
    const created: Blob[] = [];
    vi.spyOn(URL, "createObjectURL").mockImplementation((blob) => {
      created.push(blob as Blob);
      return "blob:zip";
    });
    vi.spyOn(URL, "revokeObjectURL").mockImplementation(() => undefined);
    const clicked: string[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push(this.download);
    });
    render(<FilesPanel />);
    fireEvent.click(screen.getByTestId("download-zip-button"));
    expect((await screen.findByTestId("zip-status")).textContent).toBe("Saved botarmy-01234567.zip.");
    expect(calls.map((c) => c.url)).toEqual([`/api/sessions/${SESSION_ID}/project.zip`]);
    expect(calls[0]?.headers.get("Authorization")).toBe("Bearer zip-token");
    expect(clicked).toEqual(["botarmy-01234567.zip"]);
    expect(new Uint8Array(await created[0]!.arrayBuffer())).toEqual(zipBytes);
  });

  it("says so when the zip cannot be downloaded", async () => {
    const { s } = project();
    load(s.events);
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ error: { code: "not_found", message: "The project has no file yet." } }), { status: 404 })));
    render(<FilesPanel />);
    fireEvent.click(screen.getByTestId("download-zip-button"));
    expect((await screen.findByRole("alert")).textContent).toContain("could not be downloaded: The project has no file yet.");
  });
});

describe("tool calls in the conversation", () => {
  function thread() {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("architect");
    const arch = s.stream("architect", "Looking around.\n\n");
    s.toolCall(arch, "list_files", {}, "(no files yet)");
    s.say(arch, "Writing the readme.");
    s.writeFile("architect", arch, "README.md", "# App\n");
    s.beginAttempt("developer");
    const dev = s.stream("developer", "Code.");
    s.writeFile("developer", dev, "src/app.js", "x".repeat(2150));
    s.toolCall(dev, "delete_file", { path: "old.js" }, "Deleted old.js.");
    s.toolCall(dev, "write_file", { path: "../x.js", content: "y" }, "Error: the path ../x.js leaves the project.");
    s.toolCall(dev, "read_file", { path: "README.md" }, "# App\n");
    const open = s.toolStart(dev, "write_file");
    s.toolArgs(open, JSON.stringify({ path: "src/b.js", content: "let b = 1;\n" }).slice(0, 34));
    return s;
  }

  it("shows each call as a plain sentence in its place in the answer, not as JSON", () => {
    load(thread().events);
    render(<Conversation />);
    const rows = screen.getAllByTestId("tool-call");
    expect(rows.map((r) => within(r).getByTestId("tool-call-summary").textContent)).toEqual([
      "Architect listed the files",
      "Architect wrote README.md · 6 B",
      "Developer wrote src/app.js · 2.1 KB",
      "Developer deleted old.js",
      "Developer could not write ../x.js: the path ../x.js leaves the project.",
      "Developer read README.md",
      "Developer is writing src/b.js · 3 B",
    ]);
    expect(rows.map((r) => r.dataset.status)).toEqual(["done", "done", "done", "done", "failed", "done", "streaming"]);
    // The text and the calls keep their order inside the answer.
    const architect = screen.getAllByTestId("message")[1]!;
    const order = [...architect.querySelectorAll('[data-testid="tool-call"], .md')].map((el) => (el.matches(".md") ? el.textContent?.trim() : el.getAttribute("data-tool")));
    expect(order).toEqual(["Looking around.", "list_files", "Writing the readme.", "write_file"]);
    expect(screen.getByTestId("conversation").textContent).not.toContain('{"path"');
  });

  it("expands a call to show its arguments and answer readably, the content highlighted", async () => {
    load(thread().events);
    render(<Conversation />);
    const write = screen.getAllByTestId("tool-call").find((r) => r.dataset.path === "README.md" && r.dataset.tool === "write_file")!;
    const toggle = within(write).getByTestId("tool-call-toggle");
    expect(toggle.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(toggle);
    expect(toggle.getAttribute("aria-expanded")).toBe("true");
    const details = within(write).getByTestId("tool-call-details");
    expect(details.textContent).toContain("PathREADME.md");
    await waitFor(() => expect(details.querySelector("pre[data-language='markdown'] .hljs-section")?.textContent).toBe("# App"));
    expect(within(details).getByTestId("tool-call-result").textContent).toBe("Wrote README.md (6 bytes).");

    const failed = screen.getAllByTestId("tool-call").find((r) => r.dataset.status === "failed")!;
    fireEvent.click(within(failed).getByTestId("tool-call-toggle"));
    expect(within(failed).getByTestId("tool-call-error").textContent).toBe("the path ../x.js leaves the project.");
  });

  it("a streaming write grows in its row, then says it wrote", () => {
    const s = new Script();
    s.start("brief");
    s.beginAttempt("developer");
    const id = s.stream("developer", "Writing.");
    const call = s.toolStart(id, "write_file");
    s.toolArgs(call, '{"path":"src/a');
    load(s.events);
    render(<Conversation />);
    const row = screen.getByTestId("tool-call");
    expect(row.textContent).toContain("Developer is writing src/a");
    ingest([{ type: "TOOL_CALL_ARGS", toolCallId: call, delta: 'pp.js","content":"let a = 1;' }]);
    expect(screen.getByTestId("tool-call-summary").textContent).toBe("Developer is writing src/app.js · 10 B");
    ingest([
      { type: "TOOL_CALL_ARGS", toolCallId: call, delta: '\\n"}' },
      { type: "TOOL_CALL_END", toolCallId: call },
      { type: "TOOL_CALL_RESULT", messageId: `tool-${call}`, toolCallId: call, content: "Wrote src/app.js (11 bytes).", role: "tool" },
    ]);
    expect(screen.getByTestId("tool-call-summary").textContent).toBe("Developer wrote src/app.js · 11 B");
    expect(screen.getByTestId("tool-call").dataset.status).toBe("done");
  });
});
