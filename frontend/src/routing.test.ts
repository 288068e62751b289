import { describe, expect, it } from "vitest";
import { isSessionId, isSessionKey, isViewKey } from "./lib/sessionKey";
import { parseSessionRef, sessionIdFromLocation, sessionUrl, viewUrl } from "./routing";
import { SESSION_ID, VIEW_KEY } from "./test/script";

const at = (href: string) => {
  const url = new URL(href, "https://botarmy.example");
  return { pathname: url.pathname, search: url.search, hash: url.hash };
};

describe("session keys", () => {
  it("tells session ids from view keys by shape", () => {
    expect(VIEW_KEY).toHaveLength(97);
    expect([isSessionId(SESSION_ID), isViewKey(SESSION_ID), isSessionKey(SESSION_ID)]).toEqual([true, false, true]);
    expect([isSessionId(VIEW_KEY), isViewKey(VIEW_KEY), isSessionKey(VIEW_KEY)]).toEqual([false, true, true]);
    for (const bad of [VIEW_KEY.slice(0, -1), `${VIEW_KEY}0`, `w${VIEW_KEY.slice(1)}`, VIEW_KEY.toUpperCase(), `v${SESSION_ID}`, "", null]) {
      expect(isSessionKey(bad), String(bad)).toBe(false);
    }
  });
});

describe("routing", () => {
  it("reads a session id or a view key from every link form", () => {
    for (const key of [SESSION_ID, VIEW_KEY]) {
      expect(sessionIdFromLocation(at(`/?s=${key}`))).toBe(key);
      expect(sessionIdFromLocation(at(`/s/${key}`))).toBe(key);
      expect(sessionIdFromLocation(at(`/s/${key}/`))).toBe(key);
      expect(sessionIdFromLocation(at(`/#/s/${key}`))).toBe(key);
      expect(sessionIdFromLocation(at(`/s/${key.toUpperCase()}`))).toBe(key);
    }
    expect(sessionIdFromLocation(at("/"))).toBeNull();
  });

  it("builds control links in the query form and view links in the path form", () => {
    expect(sessionUrl(SESSION_ID, "https://b.example")).toBe(`https://b.example/?s=${SESSION_ID}`);
    expect(viewUrl(VIEW_KEY, "https://b.example")).toBe(`https://b.example/s/${VIEW_KEY}`);
    expect(sessionIdFromLocation(at(viewUrl(VIEW_KEY, "https://b.example")))).toBe(VIEW_KEY);
  });

  it("Home's 'open a session' box takes ids, view keys and links to either", () => {
    expect(parseSessionRef(`  ${SESSION_ID.toUpperCase()} `)).toBe(SESSION_ID);
    expect(parseSessionRef(VIEW_KEY)).toBe(VIEW_KEY);
    expect(parseSessionRef(`https://x.example/s/${VIEW_KEY}`)).toBe(VIEW_KEY);
    expect(parseSessionRef(`https://x.example/?s=${VIEW_KEY}`)).toBe(VIEW_KEY);
    expect(parseSessionRef(`https://x.example/?s=${SESSION_ID}`)).toBe(SESSION_ID);
    expect(parseSessionRef(`https://x.example/s/${VIEW_KEY.slice(0, 50)}`)).toBeNull();
    expect(parseSessionRef("hello")).toBeNull();
  });
});
