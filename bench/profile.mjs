#!/usr/bin/env node
// Where the Worker's CPU goes: runs demo sessions under `wrangler dev` with the V8 sampling
// profiler switched on through wrangler's inspector port (Chrome DevTools Protocol), then
// prints the functions with the most samples, by self time and by total time (shares of the
// samples), and writes the raw profile (open it in Chrome DevTools > Performance) to
// bench-output/worker.cpuprofile.
//
//   node bench/profile.mjs                       # 4 sessions, demo pace 2 ms/token
//   PROFILE_SESSIONS=8 PROFILE_TOKEN_MS=5 node bench/profile.mjs
//   PROFILE_PROVIDER=fake node bench/profile.mjs # the OpenAI test double, 520-byte tokens as
//                                                # fast as read (the throughput bench's path)
//
// wrangler dev's network tracing is switched off (CDP `Network.disable`), as in
// `bench/run.mjs --no-trace`: it is not the Worker's own work.
//
// Needs a built Worker (`make build`). Loopback only; bounded: a 240 s deadline.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startWorker } from '../tests/support/harness.mjs';
import { SessionClient, createSession } from '../tests/support/client.mjs';
import { cpuSeconds, inspector, startFakeProcess, workerdProcs } from './lib.mjs';

const SESSIONS = Number(process.env.PROFILE_SESSIONS || 4);
const TOKEN_MS = process.env.PROFILE_TOKEN_MS || '2';
const FAKE = process.env.PROFILE_PROVIDER === 'fake';
const FAKE_TOKENS = 100; // per stage, 520 bytes each
const DEADLINE_MS = 240_000;
const TOP = 30;

const timer = setTimeout(() => {
  console.error('bench/profile: deadline reached');
  process.exit(2);
}, DEADLINE_MS);

function name(frame) {
  const file = frame.url ? path.basename(frame.url) : '';
  return `${frame.functionName || '(anonymous)'}${file ? ` ${file}` : ''}`;
}

/** Self and total sample counts per function name (a name counts once per stack in total). */
function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const self = new Map();
  const total = new Map();
  const samples = profile.samples.length;
  const counts = new Map();
  for (const id of profile.samples) counts.set(id, (counts.get(id) || 0) + 1);
  for (const [id, k] of counts) {
    const leaf = name(byId.get(id).callFrame);
    self.set(leaf, (self.get(leaf) || 0) + k);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const nm = name(byId.get(cur).callFrame);
      if (seen.has(nm)) continue;
      seen.add(nm);
      total.set(nm, (total.get(nm) || 0) + k);
    }
  }
  return { samples, self, total };
}

function table(title, map, samples) {
  console.log(`\n${title}\n\n| % of samples | samples | function |\n|---|---|---|`);
  for (const [nm, k] of [...map].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    console.log(`| ${((100 * k) / samples).toFixed(1)} | ${k} | \`${nm.replace(/\|/g, '\\|')}\` |`);
  }
}

const fake = FAKE ? await startFakeProcess() : null;
const env = FAKE
  ? {
      OPENAI_API_KEY: 'bench-key-not-a-secret',
      OPENAI_BASE_URL: fake.url,
      OPENAI_MODEL: 'bench-model',
      LLM_REQUESTS_PER_MIN: '100000',
      LLM_TOKENS_PER_MIN: '100000000',
      LLM_MAX_CONCURRENT: '1000',
      SESSION_TOKEN_BUDGET: '100000000',
      LLM_CACHE: 'off',
    }
  : { DEMO_TOKEN_INTERVAL_MS: TOKEN_MS };
const bigText = (prefix) => Array.from({ length: FAKE_TOKENS }, (_, j) => ` ${prefix}${j}_${'x'.repeat(520 - String(j).length - prefix.length - 2)}`).join('');
const worker = await startWorker({ name: 'bench-profile', env });
let cdp;
try {
  const sessions = [];
  for (let i = 0; i < SESSIONS; i++) {
    const id = await createSession(worker.url);
    if (FAKE) await fake.setScenario(`prof${i}`, [0, 1, 2, 3, 4].map((s) => ({ text: bigText(`P${s}x`), delayMs: 0 })));
    sessions.push({ id, i, client: await SessionClient.open(worker.url, id, { label: `p${i}` }) });
  }
  cdp = await inspector(worker.inspectorPort);
  await cdp.send('Network.disable');
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  const runtime = workerdProcs(worker.pid).find((p) => p.role === 'runtime').pid;
  await cdp.send('Profiler.start');
  const cpu0 = cpuSeconds(runtime);
  const t0 = Date.now();
  await Promise.all(
    sessions.map(async ({ client, i }) => {
      const brief = FAKE ? `Profile [[scenario:prof${i}]]` : 'Build a shared shopping list app for families.';
      await client.send({ type: 'start', brief, approval: 'auto' });
      await client.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', DEADLINE_MS - 30_000);
    }),
  );
  const wallMs = Date.now() - t0;
  const cpuMs = (cpuSeconds(runtime) - cpu0) * 1000;
  const { profile } = await cdp.send('Profiler.stop');
  const events = sessions.reduce((n, s) => n + s.client.transcript.length, 0);
  const text = sessions.reduce((n, s) => n + s.client.transcript.filter((e) => e.type === 'TEXT_MESSAGE_CONTENT').length, 0);
  fs.mkdirSync(path.join(ROOT, 'bench-output'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench-output', 'worker.cpuprofile'), JSON.stringify(profile));
  const { samples, self, total } = summarise(profile);
  const idle = (self.get('(idle)') || 0) + (self.get('(program)') || 0);
  const source = FAKE ? `OpenAI test double, ${FAKE_TOKENS} × 520 B tokens per stage` : `demo pace ${TOKEN_MS} ms/token`;
  console.log(`sessions ${SESSIONS}, ${source}, ${events} logged events (${text} text) in ${(wallMs / 1000).toFixed(1)} s`);
  // The sampling interval is a request: V8 takes samples only while the isolate runs, so the
  // gaps between samples are uneven. Read the tables as shares of the Worker's own time, not
  // as times. The process CPU also counts workerd's own work (storage, sockets, the dev
  // inspector) on all its threads.
  const gaps = [...profile.timeDeltas].sort((a, b) => a - b);
  console.log(`${samples} samples (median gap ${(gaps[gaps.length >> 1] / 1000).toFixed(2)} ms); (idle) + (program): ${((100 * idle) / samples).toFixed(1)} %`);
  console.log(`workerd runtime process CPU ${cpuMs.toFixed(0)} ms, ${(cpuMs / events).toFixed(3)} ms per logged event`);
  table('By self time', self, samples);
  table('By total time (a function counted once per stack)', total, samples);
  for (const { client } of sessions) await client.close();
} finally {
  cdp?.close();
  await worker.stop();
  await fake?.close();
  clearTimeout(timer);
}
