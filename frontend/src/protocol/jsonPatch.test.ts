import { describe, expect, it } from "vitest";
import { applyPatch, PatchError, parsePointer } from "./jsonPatch";
import type { PatchOp } from "./types";

describe("applyPatch", () => {
  const doc = { a: { b: 1, c: [1, 2, 3] }, d: { e: "x" }, "s/l": { "t~i": 0 } };

  it("replaces, adds and removes without mutating the input", () => {
    const frozen = JSON.parse(JSON.stringify(doc));
    const out = applyPatch(doc, [
      { op: "replace", path: "/a/b", value: 2 },
      { op: "add", path: "/a/n", value: null },
      { op: "remove", path: "/a/c/0" },
      { op: "add", path: "/a/c/-", value: 9 },
      { op: "add", path: "/a/c/1", value: 7 },
    ]);
    expect(out).toEqual({ a: { b: 2, n: null, c: [2, 7, 3, 9] }, d: { e: "x" }, "s/l": { "t~i": 0 } });
    expect(doc).toEqual(frozen);
  });

  it("shares every object off the changed path", () => {
    const out = applyPatch(doc, [{ op: "replace", path: "/a/b", value: 5 }]);
    expect(out.d).toBe(doc.d);
    expect(out.a.c).toBe(doc.a.c);
    expect(out.a).not.toBe(doc.a);
  });

  it("understands escaped pointer tokens", () => {
    expect(parsePointer("/s~1l/t~0i")).toEqual(["s/l", "t~i"]);
    expect(applyPatch(doc, [{ op: "replace", path: "/s~1l/t~0i", value: 1 }])["s/l"]["t~i"]).toBe(1);
  });

  it("replaces null with an object (a gate opening) and back", () => {
    const state = { gate: null as null | { id: string } };
    const open = applyPatch(state, [{ op: "replace", path: "/gate", value: { id: "gate-analyst-1" } }]);
    expect(open.gate).toEqual({ id: "gate-analyst-1" });
    expect(applyPatch(open, [{ op: "replace", path: "/gate", value: null }]).gate).toBeNull();
  });

  it("supports test, copy and move", () => {
    const out = applyPatch(doc, [
      { op: "test", path: "/d/e", value: "x" },
      { op: "copy", from: "/d", path: "/f" },
      { op: "move", from: "/a/b", path: "/g" },
    ]);
    expect(out).toMatchObject({ f: { e: "x" }, g: 1 });
    expect("b" in out.a).toBe(false);
  });

  it("rejects ops that do not apply", () => {
    expect(() => applyPatch(doc, [{ op: "replace", path: "/missing/x", value: 1 }])).toThrow(PatchError);
    expect(() => applyPatch(doc, [{ op: "replace", path: "/a/zz", value: 1 }])).toThrow(/does not exist/);
    expect(() => applyPatch(doc, [{ op: "remove", path: "/a/c/5" }])).toThrow(/out of range/);
    expect(() => applyPatch(doc, [{ op: "test", path: "/a/b", value: 2 }])).toThrow(/test failed/);
    expect(() => applyPatch(doc, [{ op: "add", path: "a", value: 1 }])).toThrow(/invalid JSON pointer/);
  });
});

// The cases tests/support/json-patch.mjs runs too (tests/e2e/00-support.test.mjs): both appliers agree.
import cases from "../../../tests/fixtures/json-patch.cases.json";

describe("applyPatch: the shared cases", () => {
  for (const c of cases.cases) {
    it(c.name, () => {
      const doc: unknown = JSON.parse(JSON.stringify(cases.doc));
      const run = () => applyPatch(doc, c.patch as PatchOp[]);
      if ("error" in c && c.error) expect(run).toThrow(c.error);
      else expect(run()).toEqual((c as { expected?: unknown }).expected);
      expect(doc).toEqual(cases.doc);
    });
  }
});
