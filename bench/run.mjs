#!/usr/bin/env node
// BotArmy benchmarks: programs that print numbers, not timed tests.
//
//   node bench/run.mjs [--quick] [--no-trace] [--owner] [--only relay,throughput,replay,bounds,model-bounds,scale,cost]
//   node bench/run.mjs [--quick] --check-limits   # only check the scenarios against the limits
//   node bench/run.mjs --quick --only replay --out DIR   # what make test runs (e2e 14-bench-replay)
//
// Every scenario fits the documented limits (bench/limits.mjs reads them from the Rust
// constants): one answer ≤ 64 KiB, a replayed backlog within the 4 MiB the log keeps. A run
// whose scenarios do not fit stops before it starts anything.
//
// --owner creates the throughput sessions with an owner key (`x-botarmy-owner`), as the UI
// does: each stage's status then also goes to that owner's session list (the Index object).
//
// --no-trace switches off wrangler dev's network tracing in the Worker's runtime (CDP
// `Network.disable` on its inspector port): with it on, every fetch chunk the Worker reads
// costs inspector events, about 1–3 ms of CPU outside the Worker. Figures say which mode.
//
// Starts the OpenAI-compatible test double (in a child process, bench/fake-proc.mjs) and
// `wrangler dev` (tests/support/harness.mjs) on 127.0.0.1, measures, prints a table and writes
// bench-output/results.json. The Worker must be built (`make build`; `make bench` does both).
// Every loop is bounded in count and time; everything started is stopped at the end, also on
// error, and a global deadline aborts a run that hangs.
//
// What is measured (docs/benchmarks.md explains each):
//   cost        wasm size raw and gzip; spawn of wrangler dev → first 200 from /api/health
//   relay       fake writes a token → WebSocket client receives the frame holding it, beside a
//               client reading the fake's SSE directly, same run, 1 token / 30 ms; and the
//               first token after the provider wrote it and after the `start` command, over
//               several short runs
//   throughput  events/s one session delivers to 1 client and to 50 (requested) clients
//   replay      hello {lastSeq: 0} → caught_up for a backlog of ≥ 5,000 logged events (as
//               many as the log's 4 MiB keeps with room to spare; 10,000 before issue 33)
//   scale       N sessions streaming at 50 tokens/s each (fake pace 20 ms/token): delivered
//               latency, events lost, workerd RSS at start / peak / after
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startWorker, freePort, workerSnapshot } from '../tests/support/harness.mjs';
import { growSession, nonReadingSockets } from '../tests/support/growth.mjs';
import { startFakeOpenAI } from '../tests/support/fake-openai.mjs';
import { sseReader } from '../tests/support/sse.mjs';
import { ATTACK_ENV, attack, readFloodSteps, reasoningFloodSteps, requestSizes, writeFloodSteps } from '../tests/support/model-attacks.mjs';
import {
  ROOT, sleep, nowMs, startFakeProcess, LeanClient, createSession, getSession, fetchEvents,
  compareToServer, workerdMem, workerdProcs, cpuSeconds, rssSampler, percentiles, mib, r2, machine,
  runtimeUrl, processTree, inspector,
} from './lib.mjs';
import { assertScenariosFit, scenarioChecks } from './limits.mjs';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const NO_TRACE = argv.includes('--no-trace');
const OWNER = argv.includes('--owner') ? { 'x-botarmy-owner': 'b0a1b2c3d4e5f60718293a4b5c6d7e8f' } : {};
const onlyArg = argv.find((a) => a.startsWith('--only'));
const ONLY = onlyArg ? new Set((onlyArg.includes('=') ? onlyArg.split('=')[1] : argv[argv.indexOf(onlyArg) + 1]).split(',')) : null;
const want = (name) => !ONLY || ONLY.has(name);
const viaArg = argv.indexOf('--scale-via');

const CFG = {
  mode: QUICK ? 'quick' : 'full',
  inspectorTracing: NO_TRACE ? 'off' : 'on (as wrangler dev sets it)',
  throughputOwner: Boolean(OWNER['x-botarmy-owner']),
  startupSamples: QUICK ? 2 : 5,
  relayTokens: QUICK ? 80 : 300,
  relayPaceMs: 30,
  firstTokenSamples: QUICK ? 5 : 15,
  throughputTokensPerStage: QUICK ? 60 : 100,
  throughputClients: [1, 50],
  throughputVia: QUICK ? ['runtime'] : ['runtime', 'proxy'],
  // One answer is at most 64 KiB (MAX_ANSWER_BYTES): 120 tokens of 520 bytes is 62,400.
  longMessageTokens: QUICK ? 0 : 120,
  tokenBytes: 520, // ≥ 512 bytes: every token is flushed as its own TEXT_MESSAGE_CONTENT
  // The log keeps 4 MiB (LOG_MAX_BYTES) and a backlog is replayed from seq 1, so it must fit:
  // ≈ 5,000 events of ≈ 600 bytes, built from answers of 120 tokens (under 64 KiB each).
  replayTarget: 5000,
  replayTokensPerRound: 120,
  replayRepeats: QUICK ? 3 : 5,
  scaleSessions: QUICK ? 20 : 200,
  scaleTokensPerStage: 50,
  scalePaceMs: 20,
  scaleVia: viaArg >= 0 ? argv[viaArg + 1] : 'runtime',
  scaleExtraMs: QUICK ? 120000 : 600000,
  scaleSweep: QUICK ? [] : [10, 25, 50, 100],
  scaleSweepTokens: 50,
  scaleSettleMs: QUICK ? 5000 : 10000,
  deadlineMs: (QUICK ? 8 : 40) * 60 * 1000,
};

assertScenariosFit(CFG);
if (argv.includes('--check-limits')) {
  for (const c of scenarioChecks(CFG)) console.log(`${c.ok ? 'ok' : 'OVER'}  ${c.scenario}: ${c.what} ${c.value} ≤ ${c.limit}`);
  process.exit(0);
}

// --out DIR: somewhere else than bench-output/ (the quick pass in make test, which must not
// overwrite a real run's figures).
const outArg = argv.indexOf('--out');
const OUT_DIR = outArg >= 0 ? path.resolve(argv[outArg + 1]) : path.join(ROOT, 'bench-output');
const WASM = path.join(ROOT, 'build', 'index_bg.wasm');

const workerEnv = (fakeUrl) => ({
  OPENAI_API_KEY: 'bench-key-not-a-secret',
  OPENAI_BASE_URL: fakeUrl,
  OPENAI_MODEL: 'bench-model',
  LLM_REQUESTS_PER_MIN: '100000',
  LLM_TOKENS_PER_MIN: '100000000',
  LLM_MAX_CONCURRENT: '1000',
  SESSION_TOKEN_BUDGET: '100000000',
  LLM_STALL_TIMEOUT_MS: '60000',
  // Every token must come from the provider: the replay fill repeats inputs the cache would serve.
  LLM_CACHE: 'off',
});

const isRunEnd = (e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR';
const log = (...a) => console.error('[bench]', ...a);

// ---- things to stop at the end --------------------------------------------------------------
const cleanups = [];
async function cleanupAll() {
  while (cleanups.length) {
    const f = cleanups.pop();
    try {
      await f();
    } catch (e) {
      log('cleanup:', e.message);
    }
  }
}
function track(stopFn) {
  cleanups.push(stopFn);
  return () => {
    const i = cleanups.indexOf(stopFn);
    if (i >= 0) cleanups.splice(i, 1);
    return stopFn();
  };
}

// ---- cost: wasm size, startup --------------------------------------------------------------

/** Size of the wasm that is served: the harness's private snapshot of build/ (same bytes). */
function wasmSize() {
  const buf = fs.readFileSync(path.join(workerSnapshot(), 'build', 'index_bg.wasm'));
  return { rawBytes: buf.length, gzipBytes: zlib.gzipSync(buf, { level: 9 }).length, file: 'build/index_bg.wasm' };
}

/**
 * Start wrangler dev while polling /api/health every 10 ms on the chosen port; returns the
 * worker and the time from just before the spawn to the first 200.
 */
async function timedStart(env, name) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let first = null;
  let stop = false;
  const t0 = nowMs();
  const poll = (async () => {
    while (!stop && nowMs() - t0 < 120000) {
      try {
        const r = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        if (r.status === 200) {
          first = nowMs();
          return;
        }
      } catch {
        /* not up yet */
      }
      await sleep(10);
    }
  })();
  let worker;
  try {
    worker = await startWorker({ env, port, name, readyTimeoutMs: 120000 });
    await poll;
    if (NO_TRACE) {
      const cdp = await inspector(worker.inspectorPort);
      await cdp.send('Network.disable');
      // Kept open while the worker runs: a new DevTools session could switch tracing back on.
      track(() => cdp.close());
    }
  } finally {
    stop = true;
  }
  // Stop, then drop the state directory (a scale run leaves hundreds of MiB of SQLite).
  const untrack = track(async () => {
    await worker.stop();
    fs.rmSync(worker.persistDir, { recursive: true, force: true });
  });
  return { worker, stopWorker: untrack, startupMs: first == null ? null : first - t0 };
}

// ---- what a model controls ----------------------------------------------------------------

/**
 * The attacks of issue 33 on what a model controls (tests/support/model-attacks.mjs), at full
 * size unless --quick: sixteen 240 KiB writes a round for 12 rounds, sixteen reads of a 250 KiB
 * file a round for 11 rounds in each of four stages (then a restart and the first read of that
 * session), 64 MiB of reasoning. An in-process double: the attacks read its request log.
 */
async function benchModelBounds() {
  const f = await startFakeOpenAI({ msPerToken: 0 });
  const env = { OPENAI_BASE_URL: f.url, OPENAI_API_KEY: 'sk-bench-bounds', ...ATTACK_ENV };
  let w = await startWorker({ name: 'bench-model-bounds', env });
  const untrack = track(() => w.stop());
  const summary = (a) => ({
    requests: requestSizes(a.requests),
    rss: a.rss,
    health: a.health,
    dbBytes: a.stats.dbBytes,
    runEnd: a.runEnd ? a.runEnd.code || a.runEnd.outcome?.type || a.runEnd.type : 'none',
  });
  try {
    const attacks = {};
    attacks['write flood'] = summary(await attack(w, f, 'write-flood', writeFloodSteps({ rounds: QUICK ? 3 : 12 }), { timeoutMs: 600000 }));
    // 11 rounds of reads: the Architect's write makes its twelfth, the most an attempt has.
    const read = await attack(w, f, 'read-flood', readFloodSteps({ rounds: QUICK ? 2 : 11 }), { timeoutMs: 600000 });
    attacks['read flood'] = summary(read);
    await w.stop();
    w = await startWorker({ name: 'bench-model-bounds-again', env, persistDir: w.persistDir, port: w.port });
    await fetch(`${w.url}/api/health`).then((r) => r.text());
    const rssBefore = workerdMem(w.pid).runtime;
    const t = nowMs();
    const res = await fetch(`${w.url}/api/sessions/${read.id}`);
    await res.text();
    const reload = { firstReadMs: nowMs() - t, status: res.status, rssBefore, rssAfter: workerdMem(w.pid).runtime };
    if (res.status !== 200) throw new Error(`the read-flooded session answered ${res.status} after a restart`);
    attacks['64 MiB of reasoning'] = summary(await attack(w, f, 'reasoning-flood', reasoningFloodSteps({ bytes: 64 * 1024 * 1024 })));
    return { attacks, reload };
  } finally {
    await untrack();
    await f.close();
  }
}

// ---- relay overhead -----------------------------------------------------------------------

/** Read the fake directly over HTTP (SSE); resolves Map token → arrival time (monotonic ms). */
function readDirect(fakeUrl, scenario, re, timeoutMs) {
  return new Promise((resolve, reject) => {
    const u = new URL(`${fakeUrl}/chat/completions`);
    const body = JSON.stringify({
      model: 'bench-model',
      stream: true,
      messages: [
        { role: 'system', content: 'You are a benchmark client reading the provider directly.' },
        { role: 'user', content: `Direct read [[scenario:${scenario}]]` },
      ],
    });
    const arrivals = new Map();
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: 'Bearer bench' } },
      (res) => {
        let t = 0;
        const sse = sseReader({
          onEvent: ({ data: c }) => {
            const d = c?.choices?.[0]?.delta?.content;
            if (d) for (const m of d.matchAll(re)) if (!arrivals.has(m[1])) arrivals.set(m[1], t);
          },
        });
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          t = nowMs();
          sse.feed(chunk);
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve(arrivals);
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error('direct read timed out')), timeoutMs);
    req.on('error', reject);
    req.end(body);
  });
}

/** A session on `baseUrl` whose analyst streams `text`; resolves Map j → arrival time. */
async function relayViaWorker(baseUrl, fake, scenario, re, timeoutMs) {
  const id = await createSession(baseUrl);
  const arrivals = new Map();
  const stats = { contentFrames: 0, multiTokenFrames: 0 };
  const c = new LeanClient(baseUrl, id, {
    keepRaw: false,
    label: scenario,
    onEvent: (ev, t) => {
      if (ev.type !== 'TEXT_MESSAGE_CONTENT') return;
      let n = 0;
      for (const m of ev.delta.matchAll(re)) {
        n++;
        if (!arrivals.has(m[1])) arrivals.set(m[1], t);
      }
      if (n) stats.contentFrames++;
      if (n > 1) stats.multiTokenFrames++;
    },
  });
  await c.connect();
  const untrack = track(() => c.close());
  await c.hello(0);
  const end = c.next(isRunEnd, timeoutMs, `end of the ${scenario} run`);
  const startedAt = nowMs();
  await c.mustAck({ type: 'start', brief: `Relay benchmark [[scenario:${scenario}]]`, approval: 'each_stage' });
  const { ev } = await end;
  if (ev.type !== 'RUN_FINISHED') throw new Error(`${scenario} run ended with ${JSON.stringify(ev)}`);
  await untrack();
  return { arrivals, stats, startedAt };
}

async function benchRelay(targets, fake) {
  const N = CFG.relayTokens;
  const pace = CFG.relayPaceMs;
  const streams = [
    { key: 'viaProxy', scenario: 'relay-proxy', tag: 'RP', url: targets.proxy },
    { key: 'viaRuntime', scenario: 'relay-runtime', tag: 'RR', url: targets.runtime },
    { key: 'direct', scenario: 'relay-direct', tag: 'DD', url: null },
  ];
  for (const st of streams) {
    st.re = new RegExp(`${st.tag}(\\d+)z`, 'g');
    await fake.setScenario(st.scenario, [{ text: Array.from({ length: N }, (_, j) => ` ${st.tag}${j}z`).join(''), delayMs: pace }]);
  }
  const timeout = N * pace + 60000;
  // All three at once, so they share the machine's conditions.
  const got = await Promise.all(
    streams.map((st) => (st.url ? relayViaWorker(st.url, fake, st.scenario, st.re, timeout) : readDirect(fake.url, st.scenario, st.re, timeout).then((arrivals) => ({ arrivals, stats: null })))),
  );
  const out = { tokens: N, paceMs: pace };
  for (const [k, st] of streams.entries()) {
    const [rec] = await fake.take(st.scenario);
    const lat = [];
    let missing = 0;
    for (let j = 0; j < N; j++) {
      const a = got[k].arrivals.get(String(j));
      if (a == null || rec.times[j] == null) missing++;
      else lat.push(a - rec.times[j]);
    }
    out[st.key] = { ...round(percentiles(lat)), missingTokens: missing, ...(got[k].stats || {}) };
  }
  const diff = (a, b) => ({ p50: r2(a.p50 - b.p50), p95: r2(a.p95 - b.p95), p99: r2(a.p99 - b.p99) });
  out.overheadViaProxy = diff(out.viaProxy, out.direct);
  out.overheadViaRuntime = diff(out.viaRuntime, out.direct);
  out.firstToken = await benchFirstToken(targets.runtime, fake);
  return out;
}

/**
 * The first token of a run, over several short runs one after another on the runtime socket:
 * after the provider wrote it, and after the `start` command (which includes the fake's pace
 * before its first token, the call's set-up, and any hop before the call starts).
 */
async function benchFirstToken(url, fake) {
  const afterProvider = [];
  const afterStart = [];
  const re = /FT(\d+)z/g;
  for (let k = 0; k < CFG.firstTokenSamples; k++) {
    const scenario = `first-token-${k}`;
    await fake.setScenario(scenario, [{ text: ' FT0z FT1z FT2z', delayMs: CFG.relayPaceMs }]);
    const got = await relayViaWorker(url, fake, scenario, re, 60000);
    const [rec] = await fake.take(scenario);
    const first = got.arrivals.get('0');
    if (first == null || rec.times[0] == null) throw new Error(`first-token run ${k}: no first token`);
    afterProvider.push(first - rec.times[0]);
    afterStart.push(first - got.startedAt);
  }
  return { samples: CFG.firstTokenSamples, afterProvider: round(percentiles(afterProvider, [50, 90])), afterStart: round(percentiles(afterStart, [50, 90])) };
}

function round(p) {
  const o = {};
  for (const [k, v] of Object.entries(p)) o[k] = k === 'n' ? v : r2(v);
  return o;
}

// ---- throughput ---------------------------------------------------------------------------

const bigText = (prefix, k) => Array.from({ length: k }, (_, j) => ` ${prefix}${j}_${'x'.repeat(CFG.tokenBytes - String(j).length - prefix.length - 2)}`).join('');

/** CPU seconds used from now on by the workerd runtime, the dev proxy and wrangler (node). */
function cpuProbe(wranglerPid) {
  const procs = workerdProcs(wranglerPid);
  // wrangler's bin re-executes node with flags: count every non-workerd process of the tree.
  const others = processTree(wranglerPid).filter((p) => p.comm !== 'workerd').map((p) => p.pid);
  const read = () => {
    const o = { runtime: 0, proxy: 0, wrangler: others.reduce((n, pid) => n + (cpuSeconds(pid) || 0), 0) };
    for (const p of procs) o[p.role] += cpuSeconds(p.pid) || 0;
    return o;
  };
  const t0 = read();
  return () => {
    const t1 = read();
    return { runtime: t1.runtime - t0.runtime, proxy: t1.proxy - t0.proxy, wrangler: t1.wrangler - t0.wrangler };
  };
}

/**
 * One auto pipeline whose five agents each stream `tokensPerStage` tokens of 520 bytes as fast
 * as the Worker reads them (so every token is its own TEXT_MESSAGE_CONTENT), watched by
 * `requested` clients of the same session.
 */
async function benchThroughput(worker, baseUrl, via, fake, requested, tokensPerStage) {
  const name = `tp-${via}-${requested}-${tokensPerStage}`;
  await fake.setScenario(name, [0, 1, 2, 3, 4].map((s) => ({ text: bigText(`T${s}x`, tokensPerStage), delayMs: 0 })));
  const id = await createSession(baseUrl, OWNER);
  const clients = [];
  const refusals = [];
  for (let i = 0; i < requested; i++) {
    // Per message: its first and last text event, to split the run into streaming and the
    // time between stages (call set-up, stage hand-over).
    const st = { first: null, last: null, spans: [] };
    const c = new LeanClient(baseUrl, id, {
      keepRaw: false,
      label: `${name}-${i}`,
      onEvent: (ev, t) => {
        if (ev.type === 'RUN_STARTED') st.first = t;
        else if (ev.type === 'RUN_FINISHED') st.last = t;
        else if (ev.type === 'TEXT_MESSAGE_CONTENT') {
          const s = st.spans.at(-1);
          if (s && s.id === ev.messageId) s.end = t;
          else st.spans.push({ id: ev.messageId, start: t, end: t });
        }
      },
    });
    c.st = st;
    try {
      await c.connect();
      await c.hello(0);
      clients.push(c);
      track(() => c.close());
    } catch (e) {
      if (!e.status) throw e;
      refusals.push(`${e.status} ${(/"code":"([^"]+)"/.exec(e.body) || [])[1] || ''}`.trim());
    }
  }
  const ends = clients.map((c) => c.next(isRunEnd, 600000, 'end of the throughput run'));
  const cpu = cpuProbe(worker.pid);
  await clients[0].mustAck({ type: 'start', brief: `Throughput benchmark [[scenario:${name}]]`, approval: 'auto' });
  const results = await Promise.all(ends);
  const used = cpu();
  for (const r of results) if (r.ev.type !== 'RUN_FINISHED') throw new Error(`throughput run ended with ${JSON.stringify(r.ev)}`);
  const snap = await getSession(baseUrl, id);
  const serverEvents = await fetchEvents(baseUrl, id);
  let lost = 0;
  for (const c of clients) lost += compareToServer(c, serverEvents, snap.lastSeq).lost;
  const runRate = (c) => (snap.lastSeq / (c.st.last - c.st.first)) * 1000;
  const bytes = clients.reduce((n, c) => n + c.bytes, 0);
  const frames = clients.reduce((n, c) => n + c.frames, 0);
  const runWall = Math.max(...clients.map((c) => c.st.last)) - Math.min(...clients.map((c) => c.st.first));
  for (const c of clients) await c.close();
  await fake.take(name);
  const delivered = snap.lastSeq * clients.length;
  const c0 = clients[0].st;
  const streamingMs = c0.spans.reduce((n, s) => n + (s.end - s.start), 0);
  const handovers = c0.spans.slice(1).map((s, i) => s.start - c0.spans[i].end);
  return {
    via,
    clientsRequested: requested,
    clientsConnected: clients.length,
    refused: refusals.length,
    refusal: refusals[0] || null,
    tokensPerStage,
    events: snap.lastSeq,
    avgFrameBytes: Math.round(bytes / frames),
    runEventsPerSecPerClient: r2(percentiles(clients.map(runRate), [50]).p50),
    deliveriesPerSec: Math.round((delivered / runWall) * 1000),
    runWallMs: Math.round(runWall),
    streamingMs: Math.round(streamingMs),
    betweenStagesMs: r2(percentiles(handovers, [50]).p50),
    beforeFirstTextMs: Math.round(c0.spans[0].start - c0.first),
    cpuMsPerEvent: { runtime: r2((used.runtime * 1000) / snap.lastSeq), proxy: r2((used.proxy * 1000) / snap.lastSeq), wrangler: r2((used.wrangler * 1000) / snap.lastSeq) },
    cpuUsPerDelivery: { runtime: r2((used.runtime * 1e6) / delivered), proxy: r2((used.proxy * 1e6) / delivered) },
    lostEvents: lost,
  };
}

/**
 * One long message (many 520-byte tokens, one event each): the delivery rate in the first and
 * the last tenth shows how the cost of an event grows with the length of its message.
 */
async function benchLongMessage(baseUrl, fake, tokens) {
  const name = `long-${tokens}`;
  await fake.setScenario(name, [{ text: bigText('L', tokens), delayMs: 0 }]);
  const id = await createSession(baseUrl);
  const t = [];
  const c = new LeanClient(baseUrl, id, {
    keepRaw: false,
    onEvent: (ev, at) => {
      if (ev.type === 'TEXT_MESSAGE_CONTENT' && ev.delta.length >= 500) t.push(at);
    },
  });
  await c.connect();
  track(() => c.close());
  await c.hello(0);
  const end = c.next(isRunEnd, 600000, 'end of the long message');
  await c.mustAck({ type: 'start', brief: `Long message [[scenario:${name}]]`, approval: 'each_stage' });
  await end;
  await c.close();
  await fake.take(name);
  const k = Math.floor(t.length / 10);
  const rate = (a, b) => Math.round(((b - a) / (t[b] - t[a])) * 1000);
  return { tokens, messageKiB: Math.round((tokens * CFG.tokenBytes) / 1024), contentEvents: t.length, firstTenthEventsPerSec: rate(0, k), lastTenthEventsPerSec: rate(t.length - 1 - k, t.length - 1), overallEventsPerSec: rate(0, t.length - 1) };
}

// ---- replay -------------------------------------------------------------------------------

async function buildBacklog(baseUrl, fake) {
  const K = CFG.replayTokensPerRound;
  await fake.setScenario('replay', [{ text: bigText('P', K), delayMs: 0 }]);
  const id = await createSession(baseUrl);
  const w = new LeanClient(baseUrl, id, { keepRaw: false, label: 'replay-writer' });
  await w.connect();
  track(() => w.close());
  await w.hello(0);
  const tb = nowMs();
  let end = w.next(isRunEnd, 120000, 'gate');
  await w.mustAck({ type: 'start', brief: 'Replay benchmark [[scenario:replay]]', approval: 'each_stage' });
  let rounds = 1;
  for (; rounds <= 100; rounds++) {
    const { ev } = await end;
    if (ev.type !== 'RUN_FINISHED') throw new Error(`replay build run ended with ${JSON.stringify(ev)}`);
    if (w.lastSeq >= CFG.replayTarget) break;
    end = w.next(isRunEnd, 120000, 'gate');
    await w.mustAck({ type: 'reject', stage: 'analyst', feedback: 'Once more, please.' });
  }
  await w.close();
  await fake.take('replay');
  return { id, rounds, buildMs: Math.round(nowMs() - tb) };
}

async function benchReplay(targets, fake) {
  const { id, rounds, buildMs } = await buildBacklog(targets.runtime, fake);
  const snap = await getSession(targets.runtime, id);
  const backlog = snap.lastSeq;
  if (backlog < CFG.replayTarget) throw new Error(`replay backlog only ${backlog} events after ${rounds} rounds`);
  // A trimmed log would turn the replay into a snapshot: the backlog must fit the log bound.
  if (snap.stats.oldestSeq !== 1) throw new Error(`replay backlog passed the log bound: the log now starts at seq ${snap.stats.oldestSeq}`);
  const serverEvents = await fetchEvents(targets.runtime, id);
  const out = { backlogEvents: backlog, buildRounds: rounds, buildMs };
  for (const [via, url] of [['viaRuntime', targets.runtime], ['viaProxy', targets.proxy]]) {
    const runs = [];
    let check = null;
    for (let r = 0; r < CFG.replayRepeats; r++) {
      const c = new LeanClient(url, id, { keepRaw: r === 0, label: `replay-${via}-${r}` });
      await c.connect();
      const h = await c.hello(0, 120000);
      runs.push({ ms: h.caughtUpAt - h.sentAt, firstEventMs: c.times.length ? c.times[0] - h.sentAt : null, events: c.seqs.length, bytes: c.bytes, mode: h.welcome.mode });
      if (r === 0) check = compareToServer(c, serverEvents, backlog);
      await c.close();
    }
    const ms = percentiles(runs.map((x) => x.ms), [50]);
    out[via] = {
      medianMs: r2(ms.p50),
      minMs: r2(ms.min),
      maxMs: r2(ms.max),
      runsMs: runs.map((x) => r2(x.ms)),
      eventsPerSec: Math.round(backlog / (ms.p50 / 1000)),
      firstEventMs: r2(runs[0].firstEventMs),
      eventsReceived: runs.map((x) => x.events),
      MiB: mib(runs[0].bytes),
      mode: runs[0].mode,
      lost: check.lost,
      problems: check.problems,
    };
  }
  // The same backlog over HTTP, paged (1000 per page), for comparison.
  const th = nowMs();
  const viaHttp = await fetchEvents(targets.runtime, id);
  out.httpPaged = { ms: Math.round(nowMs() - th), events: viaHttp.length };
  return out;
}

// ---- scale --------------------------------------------------------------------------------

/**
 * `S` sessions, one client each, all started at once; each agent streams `T` tokens at one per
 * `pace` ms. Measures the latency of every token (fake write → client receipt), checks every
 * client's events against the server's log, and reports CPU used.
 */
async function scaleLevel(worker, baseUrl, fake, S, T, label) {
  const pace = CFG.scalePaceMs;
  const tag = `sc${label}x`;
  const tok = (i, s, j) => ` S${i}_${s}_${j}z`;
  for (let i = 0; i < S; i++) {
    await fake.setScenario(`${tag}${i}`, [0, 1, 2, 3, 4].map((s) => ({ text: Array.from({ length: T }, (_, j) => tok(i, s, j)).join(''), delayMs: pace })));
  }
  const sessions = [];
  const t0 = nowMs();
  for (let b = 0; b < S; b += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, S - b) }, async (_, k) => {
        const i = b + k;
        const id = await createSession(baseUrl);
        const arrivals = new Map();
        const c = new LeanClient(baseUrl, id, {
          label: `${label}-${i}`,
          onEvent: (ev, t) => {
            if (ev.type !== 'TEXT_MESSAGE_CONTENT') return;
            for (const m of ev.delta.match(/S\d+_\d+_\d+z/g) || []) if (!arrivals.has(m)) arrivals.set(m, t);
          },
        });
        await c.connect();
        track(() => c.close());
        await c.hello(0);
        sessions[i] = { i, id, c, arrivals };
      }),
    );
  }
  const connectMs = nowMs() - t0;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpuWorker = cpuProbe(worker.pid);
  const cpu0 = { fake: cpuSeconds(fake.pid), bench: process.cpuUsage() };
  const budget = 5 * T * pace + CFG.scaleExtraMs;
  const ends = sessions.map((s) => s.c.next(isRunEnd, budget, 'end of the scale run').then((r) => (s.end = r)));
  const tStart = nowMs();
  await Promise.all(sessions.map((s) => s.c.mustAck({ type: 'start', brief: `Scale benchmark session ${s.i} [[scenario:${tag}${s.i}]]`, approval: 'auto' }, 60000)));
  const startCommandsMs = nowMs() - tStart;
  const outcome = await Promise.allSettled(ends);
  const runMs = nowMs() - tStart;
  loop.disable();
  const w = cpuWorker();
  const cpu1 = { fake: cpuSeconds(fake.pid), bench: process.cpuUsage(cpu0.bench) };
  const timedOut = outcome.filter((o) => o.status === 'rejected').length;
  const failedRuns = sessions.filter((s) => s.end && s.end.ev.type !== 'RUN_FINISHED').map((s) => s.end.ev);

  const recs = await fake.take(tag);
  const lat = [];
  let tokensWritten = 0;
  let tokensMissing = 0;
  for (const r of recs) {
    const i = Number(r.scenario.slice(tag.length));
    const sess = sessions[i];
    for (let j = 0; j < r.times.length; j++) {
      if (r.times[j] == null) continue;
      tokensWritten++;
      const a = sess && sess.arrivals.get(`S${i}_${r.stepIndex}_${j}z`);
      if (a == null) tokensMissing++;
      else lat.push(a - r.times[j]);
    }
  }
  let lost = 0;
  let differ = 0;
  let duplicates = 0;
  let totalEvents = 0;
  const problems = [];
  for (let b = 0; b < S; b += 20) {
    await Promise.all(
      sessions.slice(b, b + 20).map(async (s) => {
        const snap = await getSession(baseUrl, s.id);
        const events = await fetchEvents(baseUrl, s.id);
        const cmp = compareToServer(s.c, events, snap.lastSeq);
        lost += cmp.lost;
        differ += cmp.differ;
        duplicates += cmp.duplicates;
        totalEvents += snap.lastSeq;
        if (cmp.problems.length) problems.push(`session ${s.i}: ${cmp.problems.join('; ')}`);
        s.c.raw = [];
        s.arrivals.clear();
      }),
    );
  }
  for (const s of sessions) await s.c.close();
  const p = percentiles(lat);
  return {
    sessions: S,
    tokensPerStage: T,
    paceMs: pace,
    tokensPerSecPerSession: Math.round(1000 / pace),
    offeredTokensPerSec: Math.round((S * 1000) / pace),
    connectMs: Math.round(connectMs),
    startCommandsMs: Math.round(startCommandsMs),
    runMs: Math.round(runMs),
    idealRunMs: 5 * T * pace,
    runsFinished: sessions.filter((s) => s.end && s.end.ev.type === 'RUN_FINISHED').length,
    runsFailed: failedRuns.length,
    runsTimedOut: timedOut,
    firstFailure: failedRuns[0] || null,
    providerRequests: recs.length,
    extraProviderRequests: recs.length - 5 * S,
    tokensWritten,
    tokensNotDelivered: tokensMissing,
    latencyMs: round(p),
    totalEvents,
    eventsPerSec: Math.round(totalEvents / (runMs / 1000)),
    eventsLost: lost,
    eventsDiffering: differ,
    duplicates,
    problems: problems.slice(0, 10),
    cpuSeconds: {
      workerdRuntime: r2(w.runtime),
      workerdProxy: r2(w.proxy),
      wrangler: r2(w.wrangler),
      fake: r2(cpu1.fake - cpu0.fake),
      bench: r2((cpu1.bench.user + cpu1.bench.system) / 1e6),
    },
    runtimeCpuMsPerEvent: r2((w.runtime * 1000) / totalEvents),
    benchEventLoopDelayMs: { p99: r2(loop.percentile(99) / 1e6), max: r2(loop.max / 1e6) },
    _sessions: sessions,
  };
}

async function benchScale(fake, startupSamples) {
  const { worker, stopWorker, startupMs } = await timedStart(workerEnv(fake.url), 'bench-scale');
  startupSamples.push(startupMs);
  const targets = { proxy: worker.url, runtime: await runtimeUrl(worker.pid) };
  const baseUrl = targets[CFG.scaleVia];
  await sleep(2000);
  const memStart = workerdMem(worker.pid);
  const sampler = rssSampler(worker.pid, 250);
  const main = await scaleLevel(worker, baseUrl, fake, CFG.scaleSessions, CFG.scaleTokensPerStage, 'main');
  const sessions = main._sessions;
  delete main._sessions;
  await sleep(CFG.scaleSettleMs);
  const memAfter = workerdMem(worker.pid);
  let socketsLeft = 0;
  for (let b = 0; b < sessions.length; b += 20) {
    const snaps = await Promise.all(sessions.slice(b, b + 20).map((s) => getSession(baseUrl, s.id)));
    socketsLeft += snaps.reduce((n, x) => n + (x.stats ? x.stats.sockets : 0), 0);
  }
  sampler.stop();
  main.via = CFG.scaleVia;
  // Peak over the whole phase: the run, closing the clients and the settle time.
  main.rssMiB = { start: mib(memStart.runtime), peak: mib(Math.max(sampler.peak.runtime, memAfter.runtime)), after: mib(memAfter.runtime), settleMs: CFG.scaleSettleMs };
  main.proxyRssMiB = { start: mib(memStart.proxy), peak: mib(Math.max(sampler.peak.proxy, memAfter.proxy)), after: mib(memAfter.proxy) };
  main.socketsLeftAfterClose = socketsLeft;
  main.rssSamples = sampler.samples.length;
  // Where the machine stops keeping up: smaller loads on the same Worker.
  const sweep = [];
  for (const n of CFG.scaleSweep) {
    log(`scale sweep: ${n} sessions`);
    const lv = await scaleLevel(worker, baseUrl, fake, n, CFG.scaleSweepTokens, `sw${n}`);
    delete lv._sessions;
    sweep.push({ sessions: n, offeredTokensPerSec: lv.offeredTokensPerSec, p50: lv.latencyMs.p50, p95: lv.latencyMs.p95, p99: lv.latencyMs.p99, runMs: lv.runMs, idealRunMs: lv.idealRunMs, eventsLost: lv.eventsLost, tokensNotDelivered: lv.tokensNotDelivered, runsFinished: lv.runsFinished, runtimeCpuMsPerEvent: lv.runtimeCpuMsPerEvent, eventsPerSec: lv.eventsPerSec });
  }
  await stopWorker();
  return { ...main, sweep };
}

// ---- the table ----------------------------------------------------------------------------

function table(res) {
  const rows = [];
  const add = (group, metric, value) => rows.push([group, metric, value]);
  const ms = (x) => (x == null ? 'n/a' : `${x} ms`);
  const trio = (o) => `${ms(o.p50)} / ${ms(o.p95)} / ${ms(o.p99)}`;
  if (res.relay) {
    const r = res.relay;
    add('relay', `fake → WS client via wrangler dev (proxy + Worker), p50 / p95 / p99 (${r.tokens} tokens, 1 per ${r.paceMs} ms)`, trio(r.viaProxy));
    add('relay', 'fake → WS client via the Worker runtime socket, p50 / p95 / p99', trio(r.viaRuntime));
    add('relay', 'fake → direct SSE client (same run), p50 / p95 / p99', trio(r.direct));
    add('relay', 'overhead via wrangler dev (minus direct), p50 / p95 / p99', trio(r.overheadViaProxy));
    add('relay', 'overhead via the runtime socket (minus direct), p50 / p95 / p99', trio(r.overheadViaRuntime));
    const ms = (x) => (x == null ? 'n/a' : `${x} ms`);
    const ft = r.firstToken;
    add('relay', `first token after the provider wrote it, p50 / p90 of ${ft.samples} runs (runtime socket)`, `${ms(ft.afterProvider.p50)} / ${ms(ft.afterProvider.p90)}`);
    add('relay', `first token after the start command, p50 / p90 of ${ft.samples} runs (runtime socket)`, `${ms(ft.afterStart.p50)} / ${ms(ft.afterStart.p90)}`);
  }
  for (const t of res.throughput || []) {
    const who = t.clientsConnected === t.clientsRequested ? `${t.clientsConnected} client${t.clientsConnected > 1 ? 's' : ''}` : `${t.clientsRequested} clients asked, ${t.clientsConnected} let in (${t.refused} × ${t.refusal})`;
    const via = t.via === 'proxy' ? 'via wrangler dev' : 'via runtime';
    add('throughput', `${who}, ${via}: events/s per client (RUN_STARTED → RUN_FINISHED)`, `${Math.round(t.runEventsPerSecPerClient)}`);
    if (t.clientsConnected > 1) add('throughput', `${who}, ${via}: deliveries/s, all clients`, `${t.deliveriesPerSec}`);
    add('throughput', `${who}, ${via}: run ${t.runWallMs} ms = streaming text ${t.streamingMs} ms + the rest; p50 between stages, first text after RUN_STARTED`, `${t.betweenStagesMs} ms, ${t.beforeFirstTextMs} ms`);
    add('throughput', `${who}, ${via}: CPU per event: workerd runtime / dev proxy / wrangler`, `${t.cpuMsPerEvent.runtime} / ${t.cpuMsPerEvent.proxy} / ${t.cpuMsPerEvent.wrangler} ms`);
  }
  if (res.longMessage) {
    const l = res.longMessage;
    add('throughput', `one ${l.messageKiB} KiB message (${l.contentEvents} events): events/s first tenth → last tenth`, `${l.firstTenthEventsPerSec} → ${l.lastTenthEventsPerSec}`);
  }
  if (res.replay) {
    const r = res.replay;
    for (const via of ['viaRuntime', 'viaProxy']) {
      const x = r[via];
      if (!x) continue;
      add('replay', `${r.backlogEvents} events (${x.MiB} MiB) ${via === 'viaProxy' ? 'via wrangler dev' : 'via runtime'}: hello → caught_up, median (min–max)`, `${ms(x.medianMs)} (${x.minMs}–${x.maxMs}); ${x.eventsPerSec} events/s; lost ${x.lost}`);
    }
    add('replay', `same backlog over HTTP GET /events (1000 per page)`, ms(r.httpPaged.ms));
  }
  if (res.scale) {
    const s = res.scale;
    const label = `${s.sessions} sessions × ${s.tokensPerSecPerSession} tokens/s (${s.via})`;
    add('scale', `${label}: delivered latency p50 / p95 / p99`, trio(s.latencyMs));
    add('scale', `${label}: events lost / tokens not delivered`, `${s.eventsLost} / ${s.tokensNotDelivered} (of ${s.totalEvents} events, ${s.tokensWritten} tokens)`);
    add('scale', `${label}: runs finished / failed / timed out; run time (ideal)`, `${s.runsFinished} / ${s.runsFailed} / ${s.runsTimedOut}; ${(s.runMs / 1000).toFixed(1)} s (${(s.idealRunMs / 1000).toFixed(1)} s)`);
    add('scale', `${label}: CPU s — workerd runtime / dev proxy / wrangler / fake / bench`, `${s.cpuSeconds.workerdRuntime} / ${s.cpuSeconds.workerdProxy} / ${s.cpuSeconds.wrangler} / ${s.cpuSeconds.fake} / ${s.cpuSeconds.bench} (runtime ${s.runtimeCpuMsPerEvent} ms per event, ${s.eventsPerSec} events/s)`);
    add('scale', `workerd RSS, Worker runtime: start / peak / after (+${s.rssMiB.settleMs / 1000} s)`, `${s.rssMiB.start} / ${s.rssMiB.peak} / ${s.rssMiB.after} MiB`);
    add('scale', 'workerd RSS, wrangler dev proxy: start / peak / after', `${s.proxyRssMiB.start} / ${s.proxyRssMiB.peak} / ${s.proxyRssMiB.after} MiB`);
    for (const w of s.sweep || []) add('scale sweep', `${w.sessions} sessions × ${s.tokensPerSecPerSession} tokens/s: latency p50 / p95 / p99; lost`, `${trio(w)}; ${w.eventsLost}`);
  }
  if (res.bounds) {
    const b = res.bounds;
    const kib = (x) => `${Math.round(x / 1024)} KiB`;
    add('bounds', `one session after ${b.cycles} start → cancel cycles with 8,000-char briefs (${(b.ms / 1000).toFixed(0)} s): database / log / messages / artifacts`, `${kib(b.stats.dbBytes)} / ${kib(b.stats.logBytes)} / ${kib(b.stats.messageBytes)} / ${kib(b.stats.artifactBytes)}`);
    const n = b.nonReading;
    add('bounds', `workerd RSS, ${n.sockets} non-reading sockets × ${n.hellos} hello {lastSeq:0} on it: before / peak / after`, `${mib(n.rssBefore)} / ${mib(n.rssPeak)} / ${mib(n.rssAfter)} MiB`);
    add('bounds', '/api/health meanwhile: before / median / max; bytes sent to each non-reading socket', `${n.healthBeforeMs.toFixed(1)} / ${n.healthMedianMs.toFixed(1)} / ${n.healthMaxMs.toFixed(1)} ms; ${n.perSocket.map((x) => kib(x.bytes)).join(', ')}`);
  }
  if (res.modelBounds) {
    const m = res.modelBounds;
    const kib = (x) => `${Math.round(x / 1024)} KiB`;
    for (const [what, a] of Object.entries(m.attacks)) {
      add('model-bounds', `${what}: requests; largest / all bytes sent; how the run ended`, `${a.requests.count}; ${kib(a.requests.maxBytes)} / ${mib(a.requests.totalBytes)} MiB; ${a.runEnd}`);
      add('model-bounds', `${what}: workerd RSS before / peak / after; stored`, `${mib(a.rss.before)} / ${mib(a.rss.peak)} / ${mib(a.rss.after)} MiB; ${mib(a.dbBytes)} MiB`);
      add('model-bounds', `${what}: /api/health max at the runtime's socket / through wrangler dev`, `${a.health.runtimeMaxMs.toFixed(0)} / ${a.health.maxMs.toFixed(0)} ms`);
    }
    const r = m.reload;
    add('model-bounds', 'read flood after a restart: first read of it; workerd RSS before / after', `${ms(Math.round(r.firstReadMs))}; ${mib(r.rssBefore)} / ${mib(r.rssAfter)} MiB`);
  }
  if (res.cost) {
    const c = res.cost;
    add('cost', 'wasm raw / gzip -9', `${(c.wasm.rawBytes / 1024).toFixed(0)} KiB / ${(c.wasm.gzipBytes / 1024).toFixed(0)} KiB`);
    if (c.startupMs) add('cost', `spawn wrangler dev → first 200 /api/health, median of ${c.startupMs.samples.length}`, `${ms(c.startupMs.median)} (${c.startupMs.samples.map((x) => Math.round(x)).join(', ')})`);
  }
  const w = [0, 1, 2].map((k) => Math.max(...rows.map((r) => String(r[k]).length), ['area', 'metric', 'value'][k].length));
  const line = (r) => `| ${r.map((x, k) => String(x).padEnd(w[k])).join(' | ')} |`;
  return [line(['area', 'metric', 'value']), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

// ---- main ---------------------------------------------------------------------------------

async function main() {
  const results = { machine: machine(), config: CFG, loadAverage: { start: os.loadavg().map(r2) }, results: {}, errors: [] };
  const res = results.results;
  fs.mkdirSync(OUT_DIR, { recursive: true });
  if (!fs.existsSync(WASM)) throw new Error('build/index_bg.wasm is missing: run `make build` first (or `make bench`)');
  log(`mode ${CFG.mode}, inspector tracing ${CFG.inspectorTracing}; machine ${results.machine.cores} cores, ${results.machine.ramGiB} GiB, ${results.machine.os}`);

  const startup = [];
  const fake = await startFakeProcess();
  track(() => fake.close());
  log(`fake provider at ${fake.url} (pid ${fake.pid})`);

  const step = async (name, fn) => {
    if (!want(name)) return;
    const t = nowMs();
    log(`${name} …`);
    try {
      await fn();
      log(`${name} done in ${((nowMs() - t) / 1000).toFixed(1)} s`);
    } catch (e) {
      log(`${name} FAILED: ${e.stack || e}`);
      results.errors.push({ step: name, error: String(e.message || e) });
    }
  };

  if (want('cost')) {
    res.cost = { wasm: wasmSize() };
    // The benchmark's own starts below are samples too; add separate starts up to the count.
    const otherStarts = (want('relay') || want('throughput') || want('replay') ? 1 : 0) + (want('scale') ? 1 : 0);
    for (let k = otherStarts; k < CFG.startupSamples; k++) {
      const { startupMs, stopWorker } = await timedStart(workerEnv(fake.url), `bench-startup-${k}`);
      startup.push(startupMs);
      await stopWorker();
    }
  }

  if (want('relay') || want('throughput') || want('replay')) {
    const { worker, stopWorker, startupMs } = await timedStart(workerEnv(fake.url), 'bench');
    startup.push(startupMs);
    const targets = { proxy: worker.url, runtime: await runtimeUrl(worker.pid) };
    log(`wrangler dev at ${targets.proxy} (Worker runtime at ${targets.runtime}; log ${path.relative(ROOT, worker.logFile)})`);
    // Warm up both paths: a short session each, so no measurement pays for compilation.
    await fake.setScenario('warm', [{ tokens: 20, delayMs: 0 }]);
    for (const url of [targets.runtime, targets.proxy]) {
      const id = await createSession(url);
      const c = new LeanClient(url, id, { keepRaw: false });
      await c.connect();
      await c.hello(0);
      const end = c.next(isRunEnd, 60000, 'warm-up run end');
      await c.mustAck({ type: 'start', brief: 'Warm-up [[scenario:warm]]', approval: 'auto' });
      await end;
      await c.close();
    }
    await fake.take('warm');
    await step('relay', async () => {
      res.relay = await benchRelay(targets, fake);
    });
    await step('throughput', async () => {
      res.throughput = [];
      for (const via of CFG.throughputVia) {
        for (const n of CFG.throughputClients) res.throughput.push(await benchThroughput(worker, targets[via], via, fake, n, CFG.throughputTokensPerStage));
      }
      if (CFG.longMessageTokens) res.longMessage = await benchLongMessage(targets.runtime, fake, CFG.longMessageTokens);
    });
    await step('replay', async () => {
      res.replay = await benchReplay(targets, fake);
    });
    await stopWorker();
  }

  // A session grown by a hostile client, then sockets that never read asking for all of it.
  await step('bounds', async () => {
    const w = await startWorker({ name: 'bench-bounds', env: { DEMO_TOKEN_INTERVAL_MS: '1' } });
    track(() => w.stop());
    try {
      const id = await createSession(w.url);
      const cycles = QUICK ? 300 : 1500;
      const { ms } = await growSession(w.url, id, { cycles });
      const { stats } = await getSession(w.url, id);
      const nonReading = { sockets: 4, hellos: 5, ...(await nonReadingSockets(w.url, id, w.pid, { sockets: 4, hellos: 5 })) };
      res.bounds = { cycles, ms, stats, nonReading };
    } finally {
      await w.stop();
    }
  });

  await step('model-bounds', async () => {
    res.modelBounds = await benchModelBounds();
  });

  await step('scale', async () => {
    res.scale = await benchScale(fake, startup);
  });

  if (res.cost && startup.length) {
    const ok = startup.filter((x) => x != null);
    res.cost.startupMs = { median: r2(percentiles(ok, [50]).p50), samples: ok.map(r2) };
  }

  results.loadAverage.end = os.loadavg().map(r2);
  fs.writeFileSync(path.join(OUT_DIR, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(`\nBotArmy benchmarks (${CFG.mode}, inspector tracing ${CFG.inspectorTracing}) — ${results.machine.cores} cores, ${results.machine.ramGiB} GiB, ${results.machine.os}, node ${results.machine.node}, wrangler ${results.machine.wrangler}, workerd ${results.machine.workerd}\n`);
  console.log(table(res));
  console.log(`\nload average (1/5/15 min) at start ${results.loadAverage.start.join(' ')}, at end ${results.loadAverage.end.join(' ')} on ${results.machine.cores} cores`);
  console.log(`\nJSON: ${path.relative(ROOT, path.join(OUT_DIR, 'results.json'))}`);
  if (results.errors.length) {
    console.log(`\n${results.errors.length} step(s) failed:`);
    for (const e of results.errors) console.log(`  ${e.step}: ${e.error}`);
  }
  return results;
}

const deadline = setTimeout(async () => {
  log(`deadline of ${CFG.deadlineMs / 1000} s reached: stopping everything`);
  await cleanupAll();
  process.exit(2);
}, CFG.deadlineMs);

let code = 0;
try {
  const r = await main();
  if (r.errors.length) code = 1;
} catch (e) {
  log(`FAILED: ${e.stack || e}`);
  code = 1;
} finally {
  await cleanupAll();
  clearTimeout(deadline);
}
process.exit(code);
