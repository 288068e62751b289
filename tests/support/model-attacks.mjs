// What a model controls, as attacks: a scripted OpenAI-compatible double (fake-openai.mjs)
// makes one session's stages write the biggest files every round, read one big file sixteen
// times a round, or stream reasoning without end. Shared by the e2e test
// (tests/e2e/15-model-bounds) and the benchmark (bench/run.mjs → model-bounds), which runs
// them at full size. Each returns what a bound is checked against: the request bodies the
// provider received, the runtime's memory, /api/health latency, and the session's stored bytes.

import { SessionClient, createSession, fetchEvents, getSession } from './client.mjs';
import { mustAck } from './e2e.mjs';
import { runtimeUrl, workerdMem } from '../../bench/lib.mjs';

/**
 * What a Worker under attack runs with besides its provider: neither the token budget nor the
 * global token rate is what is tested (the double counts a read flood's megabytes as tokens,
 * and the limiter would hold the next stage for minutes).
 */
export const ATTACK_ENV = { LLM_CACHE: 'off', SESSION_TOKEN_BUDGET: '100000000', LLM_TOKENS_PER_MIN: '100000000' };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const KIB = 1024;

async function healthMs(url) {
  const t = performance.now();
  await fetch(`${url}/api/health`).then((r) => r.text());
  return performance.now() - t;
}

/**
 * Runs a session whose brief carries `[[scenario:NAME]]` with `steps` scripted on the double,
 * to the end of its run (auto approval), sampling the runtime's memory and /api/health while
 * it goes. Returns {id, requests (this scenario's, in order), rss {before, peak, after},
 * health {beforeMs, maxMs, runtimeMaxMs}, stats (the session's), runEnd (its last event)}.
 */
export async function attack(worker, fake, name, steps, { timeoutMs = 240000 } = {}) {
  const scenario = `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  fake.setScenario(scenario, steps);
  const pid = worker.pid;
  const rss = { before: workerdMem(pid).runtime };
  rss.peak = rss.before;
  // /api/health through wrangler dev (as a browser reaches it) and at the Worker runtime's own
  // socket (without wrangler's proxy): which of the two a stall is in.
  const runtime = await runtimeUrl(pid);
  const health = { beforeMs: await healthMs(worker.url), maxMs: 0, runtimeMaxMs: 0 };
  let sampling = true;
  const sample = async (key, url) => {
    while (sampling) {
      health[key] = Math.max(health[key], await healthMs(url));
      await sleep(200);
    }
  };
  const samplers = [sample('maxMs', worker.url), sample('runtimeMaxMs', runtime)];
  const sampler = (async () => {
    while (sampling) {
      rss.peak = Math.max(rss.peak, workerdMem(pid).runtime);
      await sleep(200);
    }
    await Promise.all(samplers);
  })();
  const id = await createSession(worker.url);
  const c = await SessionClient.open(worker.url, id, { label: name });
  let runEnd;
  try {
    await mustAck(c, { type: 'start', brief: `An attack on the bounds [[scenario:${scenario}]]`, approval: 'auto' });
    c.close();
    // Polled rather than followed on the socket: a client that cannot keep up with megabytes
    // of tool arguments a second is closed 4008 (docs/protocol.md), which is not the point here.
    const t0 = Date.now();
    let oldest;
    for (;;) {
      const { body } = await getSession(worker.url, id);
      oldest = body.stats.oldestSeq;
      if (!['running', 'idle'].includes(body.state.run.status)) break;
      if (Date.now() - t0 > timeoutMs) throw new Error(`${name}: the run did not end in ${timeoutMs} ms`);
      await sleep(250);
    }
    // The log keeps 4 MiB: what a flood of arguments streams is mostly trimmed by now.
    const events = await fetchEvents(worker.url, id, Math.max(0, oldest - 1));
    runEnd = events.findLast((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR');
  } finally {
    c.close();
    sampling = false;
    await sampler;
  }
  await sleep(500);
  rss.after = workerdMem(pid).runtime;
  const { body } = await getSession(worker.url, id);
  const requests = fake.requests.filter((r) => r.scenario === scenario);
  return { id, requests, rss, health, stats: body.stats, state: body.state, runEnd };
}

/** One answer of `files` write_file calls of `bytes` each (paths unique to `round`). */
function writeRound(round, files, bytes) {
  const content = 'x'.repeat(bytes);
  return {
    toolCalls: Array.from({ length: files }, (_, i) => ({ name: 'write_file', arguments: { path: `big/${round}-${i}.txt`, content } })),
    argChunk: 64 * KIB,
    delayMs: 0,
  };
}

/** One answer of `reads` read_file calls of `path`. */
function readRound(path, reads) {
  return { toolCalls: Array.from({ length: reads }, () => ({ name: 'read_file', arguments: { path } })), delayMs: 0 };
}

const done = (what) => ({ text: `## ${what}\n\nDone.`, delayMs: 0 });

/** The Architect writes `files` files of `bytes` a round for `rounds` rounds, then finishes. */
export function writeFloodSteps({ rounds = 12, files = 16, bytes = 240 * KIB } = {}) {
  return [done('Analysis'), ...Array.from({ length: rounds }, (_, r) => writeRound(r, files, bytes)), done('Architecture')];
}

/**
 * Four stages (Architect … Deployer) each read one `bytes` file `reads` times a round for
 * `rounds` rounds (the Architect writes it first).
 */
export function readFloodSteps({ rounds = 3, reads = 16, bytes = 250 * KIB } = {}) {
  const stage = (what) => [...Array.from({ length: rounds }, () => readRound('big.txt', reads)), done(what)];
  return [
    done('Analysis'),
    { toolCalls: [{ name: 'write_file', arguments: { path: 'big.txt', content: 'y'.repeat(bytes) } }], argChunk: 64 * KIB, delayMs: 0 },
    ...stage('Architecture'),
    ...stage('Development'),
    ...stage('Tests'),
    ...stage('Deployment'),
  ];
}

/** The Analyst streams `bytes` of reasoning before any answer. */
export function reasoningFloodSteps({ bytes = 64 * 1024 * KIB } = {}) {
  return [{ reasoning: { bytes, chunk: 16 * KIB }, text: '## Analysis\n\nDone.', delayMs: 0 }];
}

/** Request body sizes of an attack: {count, maxBytes, totalBytes}. */
export function requestSizes(requests) {
  const sizes = requests.map((r) => Buffer.byteLength(r.rawBody ?? ''));
  return { count: sizes.length, maxBytes: Math.max(0, ...sizes), totalBytes: sizes.reduce((a, b) => a + b, 0) };
}
