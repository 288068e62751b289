// Tool calls as people read them. The agents write the project through `write_file {path,
// content}`, `read_file {path}`, `list_files {}` and `delete_file {path}` (docs/protocol.md); the
// arguments stream in as JSON text cut at any character, so they are read with a partial-JSON
// parser (partial-json) while they grow, and with JSON.parse once they are complete.

import { Allow, parse as parsePartial } from "partial-json";

export type ToolKind = "write" | "read" | "list" | "delete" | "other";

export function toolKind(name: string): ToolKind {
  switch (name) {
    case "write_file":
      return "write";
    case "read_file":
      return "read";
    case "list_files":
      return "list";
    case "delete_file":
      return "delete";
    default:
      return "other";
  }
}

export interface ToolArgs {
  /** The `path` argument so far (may still grow while `pathComplete` is false). */
  path: string | null;
  /** Its closing quote has arrived: the path will not change any more. */
  pathComplete: boolean;
  /** The `content` argument so far. */
  content: string | null;
  /** The arguments are a whole JSON object. */
  complete: boolean;
  /** Every argument, as far as it could be read (for a tool this page does not know). */
  value: Record<string, unknown>;
}

const EMPTY: ToolArgs = { path: null, pathComplete: false, content: null, complete: false, value: {} };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fromValue(value: Record<string, unknown>, complete: boolean, text: string): ToolArgs {
  const path = typeof value.path === "string" ? value.path : null;
  const content = typeof value.content === "string" ? value.content : null;
  let pathComplete = complete && path !== null;
  if (!complete && path !== null) {
    // The path string is closed when its quoted form, closing quote included, is in the text
    // after the "path" key. (Inside another string every quote is escaped, so it cannot match
    // there.)
    const key = text.indexOf('"path"');
    pathComplete = key >= 0 && text.indexOf(JSON.stringify(path), key + 6) >= 0;
  }
  return { path, pathComplete, content, complete, value };
}

/**
 * Reads a tool call's arguments from their JSON text, whole or cut anywhere. Never throws:
 * text that is not (the start of) a JSON object reads as no arguments.
 */
export function parseToolArgs(text: string): ToolArgs {
  if (text.trim() === "") return EMPTY;
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? fromValue(value, true, text) : EMPTY;
  } catch {
    // Not complete yet: read what is there.
  }
  try {
    const value: unknown = parsePartial(text, Allow.STR | Allow.OBJ | Allow.ARR);
    return isObject(value) ? fromValue(value, false, text) : EMPTY;
  } catch {
    return EMPTY;
  }
}

const cache = new Map<string, { text: string; args: ToolArgs }[]>();
const CACHE_CALLS = 64;

/**
 * `parseToolArgs`, remembered per tool call: the conversation row, the files panel and the viewer
 * read the same growing arguments (some a render behind, through a deferred value), so the last
 * two parses of each call are kept and a large file is parsed once per new piece, not per reader.
 */
export function toolArgsOf(id: string, text: string): ToolArgs {
  const kept = cache.get(id);
  const hit = kept?.find((entry) => entry.text === text);
  if (hit) return hit.args;
  const args = parseToolArgs(text);
  cache.delete(id);
  cache.set(id, [{ text, args }, ...(kept ?? []).slice(0, 1)]);
  if (cache.size > CACHE_CALLS) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  return args;
}

export const ERROR_PREFIX = "Error: ";

/** The plain error of a failed call (its result after `Error: `), or null when it did not fail. */
export function toolError(result: string | null | undefined): string | null {
  if (typeof result !== "string" || !result.startsWith(ERROR_PREFIX)) return null;
  return result.slice(ERROR_PREFIX.length);
}

/** Length in UTF-8 bytes, as the server counts a file's size. */
export function utf8Bytes(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i += 1;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** "512 B", "2.1 KB", "1.3 MB" (1 KB = 1024 bytes). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
