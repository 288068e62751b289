import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setAccessToken } from "../lib/token";
import {
  ApiError,
  createSession,
  createViewLink,
  downloadArtifact,
  downloadProjectZip,
  encodeFilePath,
  getArtifactText,
  getArtifactVersions,
  getFileText,
  getHealth,
  getModels,
  getProjectFiles,
  getSession,
  listViewLinks,
  READ_TIMEOUT_MS,
  rememberSession,
  WRITE_TIMEOUT_MS,
  revokeViewLink,
  VIEW_GONE_WORDS,
} from "./api";

const ID = "0123456789abcdef0123456789abcdef";
const VIEW_KEY = `v${"ab".repeat(48)}`;

type Call = { url: string; headers: Headers; method: string };

function fakeFetch(answer: (url: string, method: string) => Response) {
  const calls: Call[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    calls.push({ url, headers: new Headers(init?.headers), method: init?.method ?? "GET" });
    return answer(url, init?.method ?? "GET");
  });
  vi.stubGlobal("fetch", fn);
  return calls;
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function answers(url: string, method = "GET"): Response {
  if (url === "/api/sessions") return json({ id: ID }, 201);
  if (url.endsWith("/views") && method === "POST") return json({ key: VIEW_KEY, id: "0123456789ab", createdAt: 5 }, 201);
  if (url.endsWith("/views")) return json({ views: [{ id: "0123456789ab", createdAt: 5 }] });
  if (url.includes("/views/")) return new Response(null, { status: 204 });
  if (url === "/api/health") return json({ status: "ok", version: "0.1.0", provider: "demo" });
  if (url === "/api/models") return json({ demo: true, providers: [], stages: [], budgetMicroUsd: null });
  if (url.endsWith("?format=json")) return json({ stage: "analyst", versions: [{ version: 1, chars: 5, createdAt: 1, feedback: null }] });
  if (url.includes("/artifacts/")) return new Response(`# text of ${url}`, { headers: { "content-type": "text/markdown" } });
  return json({ id: ID, lastSeq: 3, state: {} });
}

/** Every request the api module can make, once. */
async function everyRequest(version: number): Promise<void> {
  await createSession();
  await getSession(ID);
  await getArtifactVersions(ID, "analyst");
  await getArtifactText(ID, "analyst", version);
  await downloadArtifact(ID, "architect", version);
  await getHealth();
  await createViewLink(ID);
  await listViewLinks(ID);
  await revokeViewLink(ID, "0123456789ab");
  await getModels();
}

beforeEach(() => {
  window.localStorage.clear();
  // jsdom has no object URLs; the download helper only needs them to exist.
  vi.stubGlobal("URL", Object.assign(URL, { createObjectURL: vi.fn(() => "blob:test"), revokeObjectURL: vi.fn() }));
  // jsdom cannot navigate; a download link's click is recorded instead.
  vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => undefined);
});

function blobText(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsText(blob);
  });
}

afterEach(() => {
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe("view links", () => {
  it("makes, lists and revokes view links with the session id", async () => {
    fakeFetch(answers);
    expect(await createViewLink(ID)).toEqual({ key: VIEW_KEY, id: "0123456789ab", createdAt: 5 });
    expect(await listViewLinks(ID)).toEqual([{ id: "0123456789ab", createdAt: 5 }]);
    await expect(revokeViewLink(ID, "0123456789ab")).resolves.toBeUndefined();
  });

  it("passes on the server's refusals: too many links, a view key trying to manage them", async () => {
    fakeFetch(() => json({ error: { code: "too_many_views", message: "A session has at most 20 view links." } }, 409));
    await expect(createViewLink(ID)).rejects.toMatchObject({ status: 409, code: "too_many_views" });
    fakeFetch(() => json({ error: { code: "read_only", message: "This is a view-only link." } }, 403));
    await expect(listViewLinks(VIEW_KEY)).rejects.toMatchObject({ status: 403, code: "read_only" });
  });
});

describe("api with an access token", () => {
  it("sends Authorization: Bearer on every request, and never the token in a URL", async () => {
    setAccessToken("s3cret-token");
    const calls = fakeFetch(answers);
    await everyRequest(101);
    expect(calls.map((c) => c.url)).toEqual([
      "/api/sessions",
      `/api/sessions/${ID}`,
      `/api/sessions/${ID}/artifacts/analyst?format=json`,
      `/api/sessions/${ID}/artifacts/analyst?version=101`,
      `/api/sessions/${ID}/artifacts/architect?version=101`,
      "/api/health",
      `/api/sessions/${ID}/views`,
      `/api/sessions/${ID}/views`,
      `/api/sessions/${ID}/views/0123456789ab`,
      "/api/models",
    ]);
    expect(calls.slice(-4, -1).map((c) => c.method)).toEqual(["POST", "GET", "DELETE"]);
    for (const call of calls) {
      expect(call.headers.get("Authorization"), call.url).toBe("Bearer s3cret-token");
      expect(call.url).not.toContain("s3cret");
    }
    // The caller's own headers are kept beside the token.
    expect(calls[3]?.headers.get("Accept")).toBe("text/markdown");
  });

  it("sends no Authorization header without a token", async () => {
    const calls = fakeFetch(answers);
    await everyRequest(102);
    expect(calls.length).toBe(10);
    for (const call of calls) expect(call.headers.has("Authorization"), call.url).toBe(false);
  });

  it("picks up a token saved later (read per request, not at load)", async () => {
    const calls = fakeFetch(answers);
    await getSession(ID);
    setAccessToken("later");
    await getSession(ID);
    expect(calls.map((c) => c.headers.get("Authorization"))).toEqual([null, "Bearer later"]);
  });

  it("turns a 401 into an ApiError with the server's words", async () => {
    setAccessToken("wrong");
    fakeFetch(() => json({ error: { code: "unauthorized", message: "This BotArmy needs an access token." } }, 401));
    const err = await getSession(ID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 401, code: "unauthorized", message: "This BotArmy needs an access token." });
  });

  it("downloads an artifact through fetch + Blob + object URL with the version in the file name", async () => {
    setAccessToken("dl-token");
    const calls = fakeFetch(answers);
    const clicked: { href: string; download: string }[] = [];
    vi.mocked(HTMLAnchorElement.prototype.click).mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push({ href: this.href, download: this.download });
    });
    const name = await downloadArtifact(ID, "tester", 7);
    expect(name).toBe("botarmy-tester-v7.md");
    expect(calls.at(-1)?.headers.get("Authorization")).toBe("Bearer dl-token");
    expect(URL.createObjectURL).toHaveBeenCalledTimes(1);
    const blob = vi.mocked(URL.createObjectURL).mock.calls[0]?.[0] as Blob;
    expect(await blobText(blob)).toBe(`# text of /api/sessions/${ID}/artifacts/tester?version=7`);
    expect(clicked).toEqual([{ href: "blob:test", download: "botarmy-tester-v7.md" }]);
  });
});

describe("project files", () => {
  it("lists, reads (path encoded per segment, the version asked) and zips with the token, for a view key too", async () => {
    setAccessToken("files-token");
    const calls = fakeFetch((url) => {
      if (url.endsWith("/files")) return json({ files: [{ path: "src/app.js", bytes: 3, version: 2, stage: "developer", attempt: 1, versions: [] }], bytes: 3, limits: { files: 200 } });
      if (url.endsWith("/project.zip")) return new Response(new Uint8Array([0x50, 0x4b]), { headers: { "content-type": "application/zip" } });
      return new Response("abc", { headers: { "content-type": "text/plain" } });
    });
    for (const key of [ID, VIEW_KEY]) {
      const list = await getProjectFiles(key);
      expect(list.files.map((f) => f.path)).toEqual(["src/app.js"]);
      expect(await getFileText(key, "src/my app/#1?.js", 4)).toBe("abc");
      expect(await downloadProjectZip(key)).toBe(`botarmy-${key.slice(0, 8)}.zip`);
    }
    expect(calls.map((c) => c.url)).toEqual([
      `/api/sessions/${ID}/files`,
      `/api/sessions/${ID}/files/src/my%20app/%231%3F.js?version=4`,
      `/api/sessions/${ID}/project.zip`,
      `/api/sessions/${VIEW_KEY}/files`,
      `/api/sessions/${VIEW_KEY}/files/src/my%20app/%231%3F.js?version=4`,
      `/api/sessions/${VIEW_KEY}/project.zip`,
    ]);
    for (const call of calls) expect(call.headers.get("Authorization"), call.url).toBe("Bearer files-token");
    expect(encodeFilePath("a/b c/d.md")).toBe("a/b%20c/d.md");
  });

  it("caches a file version (versions never change) and passes on a 404", async () => {
    const calls = fakeFetch((url) =>
      url.includes("version=9") ? json({ error: { code: "not_found", message: "No such version of that file." } }, 404) : new Response("v5", { headers: { "content-type": "text/plain" } }),
    );
    expect(await getFileText(ID, "cached.txt", 5)).toBe("v5");
    expect(await getFileText(ID, "cached.txt", 5)).toBe("v5");
    expect(calls.length).toBe(1);
    await expect(getFileText(ID, "cached.txt", 9)).rejects.toMatchObject({ status: 404, code: "not_found" });
  });
});

describe("the model catalog", () => {
  it("reads GET /api/models: stages with their default first, prices, the budget", async () => {
    fakeFetch(() =>
      json({
        demo: false,
        providers: ["openai", "anthropic"],
        stages: [
          {
            stage: "developer",
            default: "anthropic:claude-fake",
            offered: [
              { id: "anthropic:claude-fake", provider: "anthropic", model: "claude-fake", price: { input: 3_000_000, output: 4_000_000, cachedInput: 3_000_000 } },
              { id: "openai:fake-a", provider: "openai", model: "fake-a", price: null },
            ],
          },
          // Not a stage, or without a default: left out.
          { stage: "janitor", default: "openai:x", offered: [] },
          { stage: "tester", offered: [] },
          // A default the server did not list among the offers is still offered.
          { stage: "analyst", default: "openai:fake-a", offered: [] },
        ],
        budgetMicroUsd: 500_000,
      }),
    );
    const catalog = await getModels();
    expect(catalog.demo).toBe(false);
    expect(catalog.budgetMicroUsd).toBe(500_000);
    expect(catalog.stages.map((s) => s.stage)).toEqual(["developer", "analyst"]);
    expect(catalog.stages[0]?.offered).toEqual([
      { id: "anthropic:claude-fake", provider: "anthropic", model: "claude-fake", price: { input: 3_000_000, output: 4_000_000, cachedInput: 3_000_000 } },
      { id: "openai:fake-a", provider: "openai", model: "fake-a", price: null },
    ]);
    expect(catalog.stages[1]?.offered).toEqual([{ id: "openai:fake-a", provider: "openai", model: "fake-a", price: null }]);
  });

  it("passes on a refusal (an access token this browser does not have)", async () => {
    fakeFetch(() => json({ error: { code: "unauthorized", message: "An access token is required." } }, 401));
    await expect(getModels()).rejects.toMatchObject({ status: 401 });
  });
});

describe("a request that gets no answer", () => {
  /** A fetch that answers `hangs` times never (until aborted), then with `answers`. */
  function stalling(hangs: number) {
    let calls = 0;
    const fn = vi.fn((input: RequestInfo | URL, init?: RequestInit) => {
      calls += 1;
      if (calls > hangs) return Promise.resolve(answers(String(input), init?.method ?? "GET"));
      return new Promise<Response>((_, reject) => {
        init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
      });
    });
    vi.stubGlobal("fetch", fn);
    return fn;
  }

  afterEach(() => vi.useRealTimers());

  it("a read is abandoned after the timeout and sent once more", async () => {
    vi.useFakeTimers();
    const fn = stalling(1);
    const text = getArtifactText(ID, "tester", 70);
    await vi.advanceTimersByTimeAsync(READ_TIMEOUT_MS - 1);
    expect(fn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(text).resolves.toBe(`# text of /api/sessions/${ID}/artifacts/tester?version=70`);
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it("a read unanswered twice fails in plain words, and is not sent a third time", async () => {
    vi.useFakeTimers();
    const fn = stalling(5);
    const text = getArtifactText(ID, "tester", 80);
    const failed = expect(text).rejects.toMatchObject({ status: 0, code: "timeout", message: expect.stringMatching(/did not answer within 8 s/) });
    await vi.advanceTimersByTimeAsync(2 * READ_TIMEOUT_MS);
    await failed;
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it("a write is never sent twice: it is abandoned after its own timeout, saying it may have been done", async () => {
    vi.useFakeTimers();
    const fn = stalling(1);
    const created = createSession();
    const failed = expect(created).rejects.toMatchObject({ code: "timeout", message: expect.stringMatching(/within 20 s; it may or may not have done it/) });
    await vi.advanceTimersByTimeAsync(WRITE_TIMEOUT_MS - 1);
    expect(fn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    await failed;
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("a write that is safe to repeat (keeping a session in my list) is sent once more, like a read", async () => {
    vi.useFakeTimers();
    const fn = stalling(1);
    const kept = rememberSession("fedcba9876543210fedcba9876543210");
    await vi.advanceTimersByTimeAsync(READ_TIMEOUT_MS);
    await kept;
    expect(fn).toHaveBeenCalledTimes(2);
    expect(fn.mock.calls.map((c) => (c[1] as RequestInit | undefined)?.method)).toEqual(["POST", "POST"]);
  });

  it("the caller's cancel ends it at once, without a retry", async () => {
    const fn = stalling(5);
    const controller = new AbortController();
    const text = getArtifactText(ID, "tester", 90, controller.signal);
    controller.abort();
    await expect(text).rejects.toMatchObject({ code: "aborted" });
    expect(fn).toHaveBeenCalledTimes(1);
  });
});

describe("a view key the server no longer knows", () => {
  it("says what that means for a viewer (revoked, or the session removed), not 'no session with this id'", async () => {
    fakeFetch(() => json({ error: { code: "not_found", message: "No session with this id." } }, 404));
    await expect(getArtifactText(VIEW_KEY, "analyst", 1)).rejects.toMatchObject({ status: 404, message: VIEW_GONE_WORDS });
    // The owner's own id keeps the server's words.
    await expect(getArtifactText(ID, "analyst", 1)).rejects.toMatchObject({ status: 404, message: "No session with this id." });
  });
});
