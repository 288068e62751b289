#!/usr/bin/env node
// Old build against new build in one run: `bench/run.mjs` on an earlier commit and on this
// tree, in interleaved pairs, then one table of medians and ratios.
//
//   node bench/ab.mjs                         # the issue-15 baseline 25990e2, 5 pairs, full mode
//   node bench/ab.mjs --base HEAD~3 --pairs 3 --quick
//   make bench-ab AB_ARGS='--base 25990e2 --pairs 5'
//
// The old commit is checked out as a git worktree under target/ab/<commit> and built there
// (its own cargo target folder, target/ab/cargo; AB_CARGO_TARGET_DIR overrides it). Today's
// build script, bench and test clients are copied into it, so both builds are built and
// measured the same way (the clients speak to every build since 25990e2). This tree must be
// built already (`make bench-ab` builds it). Pairs alternate which build goes first. Each run
// is `node bench/run.mjs --no-trace --only relay,throughput` (plus `--quick` if given); the
// figures are read from each folder's bench-output/results.json. The table goes to stdout and
// bench-output/ab.json. Exits 1 if a run reported an error or lost an event.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, percentiles, r2 } from './lib.mjs';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const BASE = arg('--base', '25990e2');
const PAIRS = Number(arg('--pairs', '5'));
const QUICK = argv.includes('--quick');
if (!Number.isInteger(PAIRS) || PAIRS < 1 || PAIRS > 20) throw new Error('--pairs takes 1 to 20');
const RUN_ARGS = ['bench/run.mjs', '--no-trace', '--only', 'relay,throughput', ...(QUICK ? ['--quick'] : [])];
// Copied from this tree into the old one: what builds the Worker and what measures it.
const COPIED = ['scripts/build-worker.mjs', 'scripts/worker-runtime.mjs', 'scripts/env.sh', 'bench', 'tests/support', 'tests/fixtures'];

const log = (m) => process.stderr.write(`[ab] ${m}\n`);
const git = (...a) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();

function prepareBase() {
  const rev = git('rev-parse', '--verify', `${BASE}^{commit}`);
  const dir = path.join(ROOT, 'target', 'ab', rev.slice(0, 12));
  if (!fs.existsSync(path.join(dir, '.git'))) {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    git('worktree', 'prune');
    git('worktree', 'add', '--force', '--detach', dir, rev);
  }
  for (const p of COPIED) {
    fs.rmSync(path.join(dir, p), { recursive: true, force: true });
    fs.cpSync(path.join(ROOT, p), path.join(dir, p), { recursive: true });
  }
  const toml = path.join(dir, 'wrangler.toml');
  fs.writeFileSync(toml, fs.readFileSync(toml, 'utf8').replace(/^main = .*$/m, 'main = "build/index.js"'));
  for (const nm of ['node_modules', 'frontend/node_modules']) {
    fs.rmSync(path.join(dir, nm), { recursive: true, force: true });
    fs.symlinkSync(path.join(ROOT, nm), path.join(dir, nm));
  }
  fs.rmSync(path.join(dir, 'frontend/dist'), { recursive: true, force: true });
  fs.cpSync(path.join(ROOT, 'frontend/dist'), path.join(dir, 'frontend/dist'), { recursive: true });
  // The old tree never changes: its Worker is built once.
  if (!fs.existsSync(path.join(dir, 'build/index_bg.wasm'))) {
    const target = process.env.AB_CARGO_TARGET_DIR || path.join(ROOT, 'target', 'ab', 'cargo');
    log(`building ${rev.slice(0, 12)} in ${path.relative(ROOT, dir)} (cargo target ${target}) …`);
    const b = spawnSync('bash', ['-c', 'source scripts/env.sh && node scripts/build-worker.mjs'], {
      cwd: dir,
      env: { ...process.env, CARGO_TARGET_DIR: target },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (b.status !== 0) throw new Error(`building ${rev} failed (exit ${b.status})`);
  }
  return { rev, dir };
}

function run(label, dir) {
  log(`${label}: node ${RUN_ARGS.join(' ')} in ${path.relative(ROOT, dir) || '.'}`);
  const out = path.join(dir, 'bench-output', 'results.json');
  fs.rmSync(out, { force: true });
  const r = spawnSync('node', RUN_ARGS, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0 || !fs.existsSync(out)) throw new Error(`${label}: bench/run.mjs failed (exit ${r.status})`);
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

/** The figures compared, from one results.json. */
function figures(j) {
  const { relay, throughput = [] } = j.results;
  const tp = (via, n) => throughput.find((t) => t.via === via && t.clientsRequested === n);
  const one = tp('runtime', 1);
  const fifty = tp('runtime', 50);
  const proxyOne = tp('proxy', 1);
  return {
    'relay overhead via the runtime socket, p50 (ms)': relay?.overheadViaRuntime.p50,
    'relay overhead via the runtime socket, p99 (ms)': relay?.overheadViaRuntime.p99,
    'first token after the provider wrote it, p50 (ms)': relay?.firstToken.afterProvider.p50,
    'first token after the start command, p50 (ms)': relay?.firstToken.afterStart.p50,
    '1 client, via the runtime socket: events/s': one?.runEventsPerSecPerClient,
    '1 client: streaming text (ms)': one?.streamingMs,
    '1 client: p50 between stages (ms)': one?.betweenStagesMs,
    '1 client: runtime CPU per event (ms)': one?.cpuMsPerEvent.runtime,
    '1 client, via wrangler dev: events/s': proxyOne?.runEventsPerSecPerClient,
    '50 clients, via the runtime socket: deliveries/s': fifty?.deliveriesPerSec,
    '50 clients: runtime CPU per event (ms)': fifty?.cpuMsPerEvent.runtime,
    'events lost (all runs together)': throughput.reduce((n, t) => n + t.lostEvents, 0),
  };
}

// The median as bench/run.mjs takes it (percentiles' p50: the lower middle of an even count).
const median = (xs) => percentiles(xs, [50]).p50;
const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : String(r2(x)));

const base = prepareBase();
const runs = { base: [], now: [] };
const errors = [];
for (let i = 0; i < PAIRS; i++) {
  const order = i % 2 === 0 ? ['base', 'now'] : ['now', 'base'];
  for (const which of order) {
    const j = run(`pair ${i + 1}/${PAIRS}, ${which}`, which === 'base' ? base.dir : ROOT);
    for (const e of j.errors) errors.push(`${which}, pair ${i + 1}: ${e.step}: ${e.error}`);
    runs[which].push(figures(j));
  }
}

const head = git('rev-parse', '--short=12', 'HEAD');
const dirty = git('status', '--porcelain', '--untracked-files=no') ? ' + uncommitted changes' : '';
console.log(`Old build ${base.rev.slice(0, 12)} against this tree (${head}${dirty}): ${PAIRS} interleaved pairs of \`node ${RUN_ARGS.join(' ')}\`.\n`);
console.log(`| median (min–max) | ${base.rev.slice(0, 12)} | now | now / old |\n|---|---|---|---|`);
const table = {};
for (const key of Object.keys(runs.base[0])) {
  const b = runs.base.map((f) => f[key]).filter((x) => typeof x === 'number');
  const n = runs.now.map((f) => f[key]).filter((x) => typeof x === 'number');
  if (!b.length || !n.length) continue;
  const cell = (xs) => {
    if (key.startsWith('events lost')) return fmt(xs.reduce((a, x) => a + x, 0));
    const { p50, min, max } = percentiles(xs, [50]);
    return `${fmt(p50)} (${fmt(min)}–${fmt(max)})`;
  };
  const ratio = key.startsWith('events lost') || median(b) === 0 ? '' : `${(median(n) / median(b)).toFixed(2)}×`;
  table[key] = { old: b, now: n };
  console.log(`| ${key} | ${cell(b)} | ${cell(n)} | ${ratio} |`);
}
const tpKey = '1 client, via the runtime socket: events/s';
const pairs = runs.base.map((f, i) => runs.now[i][tpKey] / f[tpKey]).filter(Number.isFinite);
if (pairs.length) {
  console.log(`\n1 client, now / old in each pair: ${pairs.map((r) => `${r.toFixed(2)}×`).join(', ')}; median ${median(pairs).toFixed(2)}×`);
}
fs.mkdirSync(path.join(ROOT, 'bench-output'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'bench-output', 'ab.json'), JSON.stringify({ base: base.rev, now: head + dirty, args: RUN_ARGS, pairs, table, errors }, null, 2));
const lost = [...runs.base, ...runs.now].reduce((n, f) => n + f['events lost (all runs together)'], 0);
for (const e of errors) console.error(`[ab] error: ${e}`);
if (errors.length || lost) process.exit(1);
