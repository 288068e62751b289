import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createSession, getHealth, getModels, getSession, listMySessions } from "../net/api";
import { getOwnerKey } from "./owner";
import { setAccessToken } from "./token";

const STORE_KEY = "botarmy.ownerKey";
const HEX32 = /^[0-9a-f]{32}$/;

beforeEach(() => window.localStorage.clear());
afterEach(() => {
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe("the owner key", () => {
  it("is made once from 16 random bytes as 32 lowercase hex, and kept in localStorage", () => {
    const random = vi.spyOn(crypto, "getRandomValues");
    const key = getOwnerKey();
    expect(key).toMatch(HEX32);
    expect(random).toHaveBeenCalledTimes(1);
    expect((random.mock.calls[0]?.[0] as Uint8Array).length).toBe(16);
    expect(window.localStorage.getItem(STORE_KEY)).toBe(key);
    // Asked again (and after a "reload": the module reads storage each time), the same key, no new draw.
    expect(getOwnerKey()).toBe(key);
    expect(getOwnerKey()).toBe(key);
    expect(random).toHaveBeenCalledTimes(1);
  });

  it("differs between browsers (a fresh storage draws a new key)", () => {
    const first = getOwnerKey();
    window.localStorage.clear();
    const second = getOwnerKey();
    expect(second).toMatch(HEX32);
    expect(second).not.toBe(first);
  });

  it("keeps a stored key and replaces a stored value that is not one", () => {
    window.localStorage.setItem(STORE_KEY, "ab".repeat(16));
    expect(getOwnerKey()).toBe("ab".repeat(16));
    for (const bad of ["AB".repeat(16), "ab".repeat(15), "zz".repeat(16), ""]) {
      window.localStorage.setItem(STORE_KEY, bad);
      const key = getOwnerKey();
      expect(key, bad).toMatch(HEX32);
      expect(window.localStorage.getItem(STORE_KEY)).toBe(key);
    }
  });

  it("lasts for the page when storage refuses (private mode)", () => {
    vi.spyOn(Storage.prototype, "getItem").mockImplementation(() => {
      throw new Error("denied");
    });
    const key = getOwnerKey();
    expect(key).toMatch(HEX32);
    expect(getOwnerKey()).toBe(key);
  });
});

describe("the owner header", () => {
  function capture() {
    const headers: Headers[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
        headers.push(new Headers(init?.headers));
        const url = String(input);
        const body = url === "/api/sessions" && init?.method === "POST" ? { id: "0123456789abcdef0123456789abcdef" } : url.startsWith("/api/sessions?") || url === "/api/sessions" ? { sessions: [] } : {};
        return new Response(JSON.stringify(body), { status: url === "/api/sessions" && init?.method === "POST" ? 201 : 200 });
      }),
    );
    return headers;
  }

  it("goes on every API request, beside the token when there is one", async () => {
    const headers = capture();
    const key = getOwnerKey();
    await createSession();
    await getSession("0123456789abcdef0123456789abcdef");
    await listMySessions();
    await getHealth();
    await getModels();
    expect(headers.length).toBe(5);
    for (const h of headers) {
      expect(h.get("X-BotArmy-Owner")).toBe(key);
      expect(h.has("Authorization")).toBe(false);
    }
    setAccessToken("tok");
    await listMySessions("x");
    expect(headers.at(-1)?.get("X-BotArmy-Owner")).toBe(key);
    expect(headers.at(-1)?.get("Authorization")).toBe("Bearer tok");
  });

  it("is made on the first request if nothing asked for it before", async () => {
    const headers = capture();
    await listMySessions();
    const sent = headers[0]?.get("X-BotArmy-Owner") ?? null;
    expect(sent).toMatch(HEX32);
    expect(window.localStorage.getItem(STORE_KEY)).toBe(sent);
  });
});
