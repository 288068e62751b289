#!/usr/bin/env node
// The import graph of src/: which module uses which, and a check that no file imports a file
// that imports it back (directly or round a longer loop), and that no folder (top-level module)
// uses one that uses it back: the folders form layers. `make test` and `make lint` run it.
//
//   node scripts/imports.mjs            # the module table; exit 1 on a cycle between files or folders
//   node scripts/imports.mjs --files    # also every file's imports
//   node scripts/imports.mjs --root=DIR # another checkout's src/ (e.g. an old build's worktree)
//
// It reads `crate::` and `super::` paths (in `use` lines, with their `{…}` groups, and inline)
// outside comments and outside each file's `#[cfg(test)] mod tests`, and resolves each to the
// deepest file that exists (`a/b.rs` or `a/b/mod.rs`). Hand-written: no Rust parser on npm
// reads module paths, and cargo's own tools do not report imports between files.
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const SRC = path.join(process.argv.find((a) => a.startsWith('--root='))?.slice(7) || ROOT, 'src');

function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.rs')) out.push(path.relative(SRC, p));
  }
  return out;
}

/** The code without comments and without the test module at its end. */
function code(file) {
  let s = fs.readFileSync(path.join(SRC, file), 'utf8').replace(/\/\/[^\n]*/g, '');
  const t = /#\[cfg\(test\)\]\s*mod\s+\w+\s*\{/.exec(s);
  return t ? s.slice(0, t.index) : s;
}

/** Every path a `crate::`/`super::` at `i` names, `{a, b::{c, d}}` groups expanded. */
function paths(s, i, prefix, out) {
  for (;;) {
    const rest = s.slice(i);
    if (/^\s*\{/.test(rest)) {
      let j = s.indexOf('{', i) + 1;
      let depth = 1;
      let start = j;
      const items = [];
      for (; depth > 0 && j < s.length; j++) {
        if (s[j] === '{') depth++;
        else if (s[j] === '}') depth--;
        if ((s[j] === ',' && depth === 1) || depth === 0) {
          items.push(s.slice(start, j));
          start = j + 1;
        }
      }
      for (const it of items) if (it.trim()) paths(`${it.trim()} `, 0, prefix, out);
      return;
    }
    const m = /^\s*(\w+)\s*/.exec(rest);
    if (!m) return void out.push(prefix);
    i += m[0].length;
    if (s.startsWith('::', i)) {
      prefix = [...prefix, m[1]];
      i += 2;
      continue;
    }
    return void out.push([...prefix, m[1]]);
  }
}

const files = walk(SRC).filter((f) => !/(^|\/)tests?(\.rs$|\/)/.test(f));
const known = new Set(files);

function resolve(segs) {
  let best = null;
  for (let k = 1; k <= segs.length; k++) {
    const base = segs.slice(0, k).join('/');
    for (const c of [`${base}.rs`, `${base}/mod.rs`]) if (known.has(c)) best = c;
  }
  return best;
}

const uses = new Map();
for (const f of files) {
  const s = code(f);
  let mod = f.replace(/\.rs$/, '').split('/');
  if (mod.at(-1) === 'mod') mod = mod.slice(0, -1);
  const to = new Set();
  for (const m of s.matchAll(/\b(crate|super)::/g)) {
    const out = [];
    paths(s, m.index + m[0].length, m[1] === 'crate' ? [] : mod.slice(0, -1), out);
    for (const p of out) {
      const t = p.length ? resolve(p) : null;
      if (t && t !== f) to.add(t);
    }
  }
  uses.set(f, to);
}

/** The strongly connected components of `graph` (Map node → Set of nodes) with more than one node (Tarjan). */
function cyclesOf(graph) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  let n = 0;
  function visit(v) {
    index.set(v, n);
    low.set(v, n++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) found.push(c.sort());
    }
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}
const cycles = cyclesOf(uses);

const top = (f) => f.split('/')[0].replace(/\.rs$/, '');
const modules = new Map();
for (const [f, to] of uses) {
  for (const t of to) {
    if (top(t) === top(f) || top(t) === 'lib') continue;
    if (!modules.has(top(f))) modules.set(top(f), new Set());
    modules.get(top(f)).add(top(t));
  }
}
console.log('| module | uses |\n|---|---|');
for (const [m, to] of [...modules].sort((a, b) => a[1].size - b[1].size || a[0].localeCompare(b[0]))) {
  console.log(`| \`${m}\` | ${[...to].sort().map((t) => `\`${t}\``).join(', ')} |`);
}
if (process.argv.includes('--files')) {
  for (const [f, to] of [...uses].sort()) console.log(`${f} -> ${[...to].sort().join(', ')}`);
}
// Cycles between folders, each named with the files that make its edges.
const folderCycles = cyclesOf(modules);
const why = (from, to) =>
  [...uses]
    .filter(([f]) => top(f) === from)
    .flatMap(([f, ts]) => [...ts].filter((t) => top(t) === to).map((t) => `${f} → ${t}`));
for (const c of folderCycles) {
  const edges = c.flatMap((a) => c.filter((b) => b !== a && modules.get(a)?.has(b)).map((b) => why(a, b)).flat());
  console.error(`imports: these folders use each other (round a loop): ${c.join(', ')}\n  ${edges.join('\n  ')}`);
}
for (const c of cycles) console.error(`imports: these files import each other (round a loop): ${c.join(', ')}`);
if (cycles.length || folderCycles.length) process.exit(1);
console.log(`imports: ${files.length} files, no file imports one that imports it back, and the folders form layers`);
