#!/usr/bin/env node
// Storage writes per logged event: runs one five-agent demo session (auto approval, one client)
// under `wrangler dev`, reads the SQLite rows it wrote (the session's stats.rowsWritten, which
// is what Durable Object SQLite bills) and counts workerd's write-side system calls with
// strace, and prints both per logged event. Counts do not depend on how busy the machine is,
// so two builds can be compared where CPU timings drown in noise.
//
//   node bench/writes.mjs                   # the built Worker in build/
//   BENCH_BUILD=/tmp/old-build node bench/writes.mjs   # another build, same run otherwise
//
// Needs strace (Debian package strace) and a built Worker (`make build`). Loopback only;
// bounded: one session, a 300 s deadline. BENCH_TOKEN_MS sets the demo pace (default 15).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startWorker, workerSnapshot } from '../tests/support/harness.mjs';
import { SessionClient, createSession, getSession } from '../tests/support/client.mjs';
import { workerdProcs } from './lib.mjs';

const DEADLINE_MS = 300_000;
// The demo provider's pace: its default (15 ms per token) gives text events of a token or two,
// as a real model does; a faster pace coalesces many tokens into each event.
const TOKEN_MS = process.env.BENCH_TOKEN_MS || '15';
const SYSCALLS = ['pwrite64', 'pwritev', 'write', 'fdatasync', 'fsync'];

const cleanup = [];

function snapshotOf(build) {
  if (!build) return workerSnapshot();
  const dir = fs.mkdtempSync('/tmp/botarmy-writes-');
  cleanup.push(dir);
  fs.cpSync(workerSnapshot(), dir, { recursive: true });
  fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true });
  fs.cpSync(build, path.join(dir, 'build'), { recursive: true });
  return dir;
}

/** The workerd that runs the Worker (not wrangler's dev proxy, which also is a workerd). */
function runtimePid(wranglerPid) {
  const runtime = workerdProcs(wranglerPid).filter((p) => p.role === 'runtime');
  if (runtime.length !== 1) throw new Error(`expected one workerd runtime, found ${runtime.length}`);
  return runtime[0].pid;
}

function parseSummary(text) {
  const counts = Object.fromEntries(SYSCALLS.map((s) => [s, 0]));
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const name = cols.at(-1);
    if (name in counts) counts[name] = Number(cols[3]);
  }
  return counts;
}

const timer = setTimeout(() => {
  console.error('bench/writes: deadline reached');
  process.exit(2);
}, DEADLINE_MS);

const worker = await startWorker({ name: 'bench-writes', cwd: snapshotOf(process.env.BENCH_BUILD), env: { DEMO_TOKEN_INTERVAL_MS: TOKEN_MS } });
let strace;
try {
  const id = await createSession(worker.url);
  const client = await SessionClient.open(worker.url, id, { label: 'writes' });
  const tmp = fs.mkdtempSync('/tmp/botarmy-strace-');
  cleanup.push(tmp);
  const out = path.join(tmp, 'summary.txt');
  strace = spawn('strace', ['-f', '-c', '-o', out, '-e', `trace=${SYSCALLS.join(',')}`, '-p', String(runtimePid(worker.pid))], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1000)); // let strace attach to every thread
  const rowsBefore = (await getSession(worker.url, id)).body.stats.rowsWritten;
  const from = client.transcript.length;
  await client.send({ type: 'start', brief: 'Build a shared shopping list app for families.', approval: 'auto' });
  await client.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', DEADLINE_MS - 10_000, { from });
  await new Promise((r) => setTimeout(r, 500));
  const stopped = new Promise((r) => strace.once('exit', r));
  strace.kill('SIGINT');
  await stopped;
  const events = client.transcript.slice(from);
  const text = events.filter((e) => e.type === 'TEXT_MESSAGE_CONTENT').length;
  const counts = parseSummary(fs.readFileSync(out, 'utf8'));
  const rows = (await getSession(worker.url, id)).body.stats.rowsWritten - rowsBefore;
  await client.close();
  const per = (n) => (n / events.length).toFixed(2);
  console.log(`build: ${process.env.BENCH_BUILD || 'build/'}; demo pace ${TOKEN_MS} ms/token; logged events ${events.length} (${text} text); outcome ${events.at(-1).type}`);
  console.log('| what | count | per logged event |');
  console.log('|---|---|---|');
  console.log(`| SQLite rows written (stats.rowsWritten) | ${rows} | ${per(rows)} |`);
  for (const s of SYSCALLS) console.log(`| ${s} (workerd) | ${counts[s]} | ${per(counts[s])} |`);
} finally {
  strace?.kill('SIGKILL');
  await worker.stop();
  for (const dir of cleanup) fs.rmSync(dir, { recursive: true, force: true });
  clearTimeout(timer);
}
