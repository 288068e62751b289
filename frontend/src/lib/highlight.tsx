// Syntax highlighting for project files. Which language a path is (by name, then extension), and
// a hook that highlights code once the highlighter (./highlightCore.tsx: lowlight + a few
// highlight.js grammars) has loaded: it is a chunk of its own, fetched the first time a file is
// shown, so the page does not wait for it. Until then, and for unknown languages, the code is
// plain text. Either way a file's text only ever becomes text nodes, never HTML.

import { useEffect, useMemo, useState, type ReactNode } from "react";

const BY_EXTENSION: Record<string, string> = {
  js: "javascript",
  mjs: "javascript",
  cjs: "javascript",
  jsx: "javascript",
  ts: "typescript",
  tsx: "typescript",
  mts: "typescript",
  cts: "typescript",
  json: "json",
  jsonc: "json",
  webmanifest: "json",
  html: "xml",
  htm: "xml",
  xml: "xml",
  svg: "xml",
  vue: "xml",
  css: "css",
  md: "markdown",
  markdown: "markdown",
  sh: "bash",
  bash: "bash",
  zsh: "bash",
  py: "python",
  yml: "yaml",
  yaml: "yaml",
  toml: "ini",
  ini: "ini",
  cfg: "ini",
  conf: "ini",
  env: "bash",
  rs: "rust",
  go: "go",
  sql: "sql",
  diff: "diff",
  patch: "diff",
  dockerfile: "dockerfile",
  mk: "makefile",
};

const BY_NAME: Record<string, string> = {
  dockerfile: "dockerfile",
  containerfile: "dockerfile",
  makefile: "makefile",
  gnumakefile: "makefile",
  procfile: "yaml",
  ".env": "bash",
  ".bashrc": "bash",
  ".editorconfig": "ini",
  ".npmrc": "ini",
};

/** The registered language for a file path (by name, then extension), or null for plain text. */
export function languageFor(path: string): string | null {
  const base = (path.split("/").pop() ?? path).toLowerCase();
  const byName = BY_NAME[base] ?? (base.startsWith("dockerfile.") ? "dockerfile" : undefined);
  if (byName) return byName;
  const dot = base.lastIndexOf(".");
  if (dot < 0) return null;
  return BY_EXTENSION[base.slice(dot + 1)] ?? null;
}


type Core = typeof import("./highlightCore");

let core: Core | null = null;
let loading: Promise<Core> | null = null;

/** Loads the highlighter once (tests and the first shown file call it). */
export function loadHighlighter(): Promise<Core> {
  loading ??= import("./highlightCore").then((module) => (core = module));
  return loading;
}

/**
 * `code` as React nodes with `hljs-*` token classes (styled in index.css) once the highlighter is
 * loaded; the plain text before that, when `enabled` is false, or for a language it does not know.
 */
export function useHighlighted(code: string, language: string | null, enabled = true): ReactNode {
  const [ready, setReady] = useState(core !== null);
  const wanted = enabled && language !== null;
  useEffect(() => {
    if (ready || !wanted) return;
    let alive = true;
    loadHighlighter().then(
      () => alive && setReady(true),
      () => undefined, // No highlighter (a failed chunk load): the text stays plain.
    );
    return () => {
      alive = false;
    };
  }, [ready, wanted]);
  return useMemo(() => (ready && core && wanted ? core.highlightCode(code, language) : code), [ready, wanted, code, language]);
}
