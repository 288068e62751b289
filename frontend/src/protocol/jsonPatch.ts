// A small RFC 6902 JSON Patch applier with structural sharing: only the objects on the path of a
// change are copied, everything else keeps its identity. That lets memoized components (one per
// agent card) skip re-rendering when a delta touched another agent. Never mutates its input.

import type { PatchOp } from "./types";

export class PatchError extends Error {
  constructor(
    message: string,
    readonly op: PatchOp,
  ) {
    super(message);
    this.name = "PatchError";
  }
}

type Container = Record<string, unknown> | unknown[];

function isContainer(value: unknown): value is Container {
  return typeof value === "object" && value !== null;
}

/** Splits a JSON Pointer ("/agents/analyst/status") into unescaped tokens. */
export function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new Error(`invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function arrayIndex(token: string, length: number, forInsert: boolean, op: PatchOp): number {
  if (token === "-" && forInsert) return length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(`bad array index "${token}"`, op);
  const index = Number(token);
  const max = forInsert ? length : length - 1;
  if (index > max) throw new PatchError(`array index ${index} out of range`, op);
  return index;
}

function getAt(doc: unknown, tokens: string[], op: PatchOp): unknown {
  let node: unknown = doc;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      node = node[arrayIndex(token, node.length, false, op)];
    } else if (isContainer(node) && Object.prototype.hasOwnProperty.call(node, token)) {
      node = (node as Record<string, unknown>)[token];
    } else {
      throw new PatchError(`path "/${tokens.join("/")}" does not exist`, op);
    }
  }
  return node;
}

type Leaf = (parent: Container, token: string) => Container;

/** Copies the containers along `tokens` and lets `leaf` change the last one. */
function updateAt(doc: unknown, tokens: string[], op: PatchOp, leaf: Leaf): unknown {
  if (tokens.length === 0) throw new PatchError("cannot change the document root this way", op);
  const walk = (node: unknown, depth: number): unknown => {
    if (!isContainer(node)) {
      throw new PatchError(`path "/${tokens.slice(0, depth).join("/")}" is not an object`, op);
    }
    const token = tokens[depth] as string;
    if (depth === tokens.length - 1) return leaf(node, token);
    if (Array.isArray(node)) {
      const index = arrayIndex(token, node.length, false, op);
      const copy = node.slice();
      copy[index] = walk(node[index], depth + 1);
      return copy;
    }
    if (!Object.prototype.hasOwnProperty.call(node, token)) {
      throw new PatchError(`path "/${tokens.slice(0, depth + 1).join("/")}" does not exist`, op);
    }
    return { ...node, [token]: walk(node[token], depth + 1) };
  };
  return walk(doc, 0);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!isContainer(a) || !isContainer(b)) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

function add(doc: unknown, path: string, value: unknown, op: PatchOp): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  return updateAt(doc, tokens, op, (parent, token) => {
    if (Array.isArray(parent)) {
      const copy = parent.slice();
      copy.splice(arrayIndex(token, parent.length, true, op), 0, value);
      return copy;
    }
    return { ...parent, [token]: value };
  });
}

function remove(doc: unknown, path: string, op: PatchOp): unknown {
  const tokens = parsePointer(path);
  return updateAt(doc, tokens, op, (parent, token) => {
    if (Array.isArray(parent)) {
      const copy = parent.slice();
      copy.splice(arrayIndex(token, parent.length, false, op), 1);
      return copy;
    }
    if (!Object.prototype.hasOwnProperty.call(parent, token)) {
      throw new PatchError(`path "${path}" does not exist`, op);
    }
    const copy = { ...parent };
    delete copy[token];
    return copy;
  });
}

function replace(doc: unknown, path: string, value: unknown, op: PatchOp): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  return updateAt(doc, tokens, op, (parent, token) => {
    if (Array.isArray(parent)) {
      const copy = parent.slice();
      copy[arrayIndex(token, parent.length, false, op)] = value;
      return copy;
    }
    if (!Object.prototype.hasOwnProperty.call(parent, token)) {
      throw new PatchError(`path "${path}" does not exist`, op);
    }
    if (parent[token] === value) return parent;
    return { ...parent, [token]: value };
  });
}

function applyOne(doc: unknown, op: PatchOp): unknown {
  switch (op.op) {
    case "add":
      return add(doc, op.path, op.value, op);
    case "replace":
      return replace(doc, op.path, op.value, op);
    case "remove":
      return remove(doc, op.path, op);
    case "test":
      if (!deepEqual(getAt(doc, parsePointer(op.path), op), op.value)) {
        throw new PatchError(`test failed at "${op.path}"`, op);
      }
      return doc;
    case "copy":
      return add(doc, op.path, getAt(doc, parsePointer(op.from), op), op);
    case "move": {
      const value = getAt(doc, parsePointer(op.from), op);
      return add(remove(doc, op.from, op), op.path, value, op);
    }
    default:
      throw new PatchError(`unsupported op "${(op as { op: string }).op}"`, op);
  }
}

/**
 * Applies `ops` in order and returns the new document. Throws PatchError (and leaves `doc`
 * untouched) when an op does not apply; the whole patch is then rejected, per RFC 6902.
 */
export function applyPatch<T>(doc: T, ops: readonly PatchOp[]): T {
  let next: unknown = doc;
  for (const op of ops) next = applyOne(next, op);
  return next as T;
}
