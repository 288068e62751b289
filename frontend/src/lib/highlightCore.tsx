// The highlighter itself, loaded on demand (./highlight.tsx): highlight.js grammars through
// lowlight, which returns a syntax tree (hast) instead of an HTML string; the tree becomes React
// elements with hast-util-to-jsx-runtime. A file's text only ever becomes text nodes, never HTML.
// Only the languages a small web project uses are registered, to keep the chunk small.

import { toJsxRuntime } from "hast-util-to-jsx-runtime";
import { createLowlight } from "lowlight";
import type { ReactNode } from "react";
import { Fragment, jsx, jsxs } from "react/jsx-runtime";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import dockerfile from "highlight.js/lib/languages/dockerfile";
import go from "highlight.js/lib/languages/go";
import ini from "highlight.js/lib/languages/ini";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import makefile from "highlight.js/lib/languages/makefile";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const lowlight = createLowlight({
  bash,
  css,
  diff,
  dockerfile,
  go,
  ini,
  javascript,
  json,
  makefile,
  markdown,
  python,
  rust,
  sql,
  typescript,
  xml,
  yaml,
});

/** Past this size a file is shown as plain text: highlighting it would hold up the page. */
export const HIGHLIGHT_MAX_CHARS = 200_000;

/**
 * The code as React nodes with `hljs-*` class names on the tokens (styled in index.css), or the
 * plain text when the language is unknown, the text is too large, or the grammar fails.
 */
export function highlightCode(code: string, language: string | null): ReactNode {
  if (!language || code.length > HIGHLIGHT_MAX_CHARS || !lowlight.registered(language)) return code;
  try {
    return toJsxRuntime(lowlight.highlight(language, code), { Fragment, jsx, jsxs });
  } catch {
    return code;
  }
}
