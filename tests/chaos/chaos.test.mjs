// Chaos: many sessions, several clients each, full pipelines (auto and each_stage with
// approvals), while connections are cut at random and the OpenAI test double injects faults
// (429 with Retry-After, 500, streams cut mid-way, malformed SSE, stalls). Afterwards every
// client's transcript equals GET /events, its state equals GET /api/sessions/{id}, the log
// passes the AG-UI verifier, and every pipeline ended in RUN_FINISHED success or RUN_ERROR
// with a plain-words message.
//
// Bounded (the `make test` version): 20 sessions x 3 clients, about a minute.
// On demand, longer:
//   CHAOS_SESSIONS=100 CHAOS_CONCURRENCY=25 node --test tests/chaos/chaos.test.mjs
// Knobs: CHAOS_SESSIONS (20), CHAOS_CLIENTS (3), CHAOS_CONCURRENCY (min(sessions, 20)),
// CHAOS_SEED (random, printed), CHAOS_CUT_MS (mean ms between cuts per client, 500),
// CHAOS_SESSION_TIMEOUT_MS (120000).
//
// The seed fixes every random choice (fault plans, approval modes, rejections, cut kinds and
// delays); the interleaving with the server still depends on timing, so a replay with the same
// seed is the same scenario, not the same byte stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { SessionClient, createSession, getArtifact, getSession, newCommandId } from '../support/client.mjs';
import { messagesOf } from '../support/agui.mjs';
import { STAGES, NAMES, tag, briefFor, finalChecks, ofType, prng, sleep, assertPlainWords } from '../support/e2e.mjs';

const SESSIONS = Number(process.env.CHAOS_SESSIONS || 20);
const CLIENTS = Math.max(1, Number(process.env.CHAOS_CLIENTS || 3));
const CONCURRENCY = Math.max(1, Number(process.env.CHAOS_CONCURRENCY || Math.min(SESSIONS, 20)));
const SEED = Number(process.env.CHAOS_SEED || Math.floor(Math.random() * 2 ** 31));
const CUT_MS = Number(process.env.CHAOS_CUT_MS || 500);
const SESSION_TIMEOUT_MS = Number(process.env.CHAOS_SESSION_TIMEOUT_MS || 120000);
const KEY = `sk-chaos-${SEED}`;
// Long enough that a busy machine (2 CPUs shared with other work) does not fake stalls.
const STALL_TIMEOUT_MS = 8000;

let fake;
let worker;

before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 2 });
  worker = await startWorker({
    name: 'chaos',
    env: {
      OPENAI_BASE_URL: fake.url,
      OPENAI_API_KEY: KEY,
      OPENAI_MODEL: 'fake-chaos',
      LLM_BACKOFF_BASE_MS: '50',
      LLM_BACKOFF_CAP_MS: '500',
      LLM_STALL_TIMEOUT_MS: String(STALL_TIMEOUT_MS),
      LLM_REQUESTS_PER_MIN: '100000',
      LLM_TOKENS_PER_MIN: '100000000',
      LLM_MAX_CONCURRENT: '1000',
    },
  });
  installFetchRetry();
});
after(async () => {
  await worker?.stop();
  await fake?.close();
});

const isEnd = (e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR';
const RETRYABLE = ['rate_limited', 'timeout', 'network', 'server_error', 'malformed_stream'];

/** The agent_error codes a failed provider call (as the fake recorded it) may be reported as. */
function expectedCodes(r) {
  if (r.outcome === 'error-status') return r.status === 429 ? ['rate_limited'] : ['server_error'];
  if (r.outcome === 'malformed') return ['malformed_stream'];
  if (r.outcome === 'aborted') return ['timeout']; // a stall, aborted by the watchdog
  if (r.outcome === 'cut') return ['network', 'malformed_stream', 'server_error', 'timeout'];
  return [];
}

/** A derived PRNG, so each session and each client has its own reproducible stream. */
function sub(seed, ...path) {
  let h = seed >>> 0;
  for (const p of path) h = Math.imul(h ^ (p + 0x9e3779b9), 0x85ebca6b) >>> 0;
  return prng(h);
}

/** The scripted provider behaviour of one session: per stage, 0-4 faults then a good answer. */
function faultPlan(rnd) {
  const steps = [];
  const faults = [];
  for (let s = 0; s < STAGES.length; s++) {
    const x = rnd();
    const n = x < 0.45 ? 0 : x < 0.75 ? 1 : x < 0.9 ? 2 : x < 0.97 ? 3 : 4; // 4 = retries exhausted
    for (let i = 0; i < n; i++) {
      const k = rnd();
      let step;
      if (k < 0.1) step = { status: 429, retryAfter: 1 };
      else if (k < 0.3) step = { status: 429 };
      else if (k < 0.5) step = { status: 500 };
      else if (k < 0.72) step = { cutAfter: Math.floor(rnd() * 20) };
      else if (k < 0.95) step = { malformed: true, after: Math.floor(rnd() * 10) };
      else step = { stallAfter: Math.floor(rnd() * 5) };
      steps.push(step);
      faults.push(Object.keys(step)[0] === 'status' ? `http${step.status}${step.retryAfter ? '+RA' : ''}` : Object.keys(step)[0]);
    }
    steps.push({ tokens: 20 + Math.floor(rnd() * 60), delayMs: 1 + Math.floor(rnd() * 3) });
  }
  // After a retry of an exhausted stage or a rejection, answers keep coming.
  steps.push({ tokens: 30, delayMs: 2 });
  return { steps, faults };
}

/** Shared counters for the final report. */
const totals = { unseenTimeouts: 0, unseenNetworkErrors: 0, fetchRetries: 0, cuts: 0, terminates: 0, closes: 0, reconnects: 0, reconnectRetries: 0, resends: 0, duplicateAcks: 0, rejects: 0, retries: 0, approvals: 0 };

// Node's fetch (undici) reuses idle keep-alive connections that the server side may be closing
// at that very moment; the request then fails with "fetch failed" (ECONNRESET / socket closed)
// without reaching the Worker. The checks' GETs are idempotent, so they are retried (at most
// twice) and counted in the report; anything else still fails the test.
const fetchRetryCauses = [];
function installFetchRetry() {
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init = {}) => {
    const method = (init.method || 'GET').toUpperCase();
    for (let i = 0; ; i++) {
      try {
        return await realFetch(input, init);
      } catch (e) {
        if (method !== 'GET' || i >= 2 || !(e instanceof TypeError)) throw e;
        totals.fetchRetries++;
        fetchRetryCauses.push(e.cause?.code || e.cause?.message || e.message);
        if (process.env.CHAOS_DEBUG) console.error(`fetch retry ${new Date().toISOString()} ${method} ${input}: ${e.cause?.code} ${e.cause?.message}`);
        await sleep(50);
      }
    }
  };
}

/**
 * One client slot: a SessionClient plus a chaos loop that keeps cutting and reconnecting it
 * until the session is done. `ready` is true while the socket is open and caught up.
 */
function makeSlot(client, rnd) {
  const slot = { client, rnd, ready: true, stopped: false, errors: [] };
  slot.reconnect = async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.reconnect({ abrupt: true });
        totals.reconnects++;
        return;
      } catch (e) {
        totals.reconnectRetries++;
        if (attempt >= 20) throw new Error(`${client.label}: reconnect failed ${attempt + 1} times: ${e.message}`);
        await sleep(100 + attempt * 50);
      }
    }
  };
  slot.loop = (async () => {
    while (!slot.stopped) {
      await sleep(CUT_MS * (0.2 + rnd() * 1.6));
      if (slot.stopped) break;
      slot.ready = false;
      const kind = rnd();
      if (kind < 0.55) {
        client.terminate(); // abrupt: no close frame
        totals.terminates++;
      } else {
        await client.close(); // normal close handshake
        totals.closes++;
      }
      totals.cuts++;
      // Away for a while (events keep being produced), sometimes not at all.
      if (rnd() < 0.8) await sleep(rnd() * 400);
      await slot.reconnect();
      slot.ready = true;
    }
  })().catch((e) => slot.errors.push(e));
  return slot;
}

async function waitReady(slot, deadline) {
  while (!(slot.ready && slot.client.isOpen)) {
    if (Date.now() > deadline) throw new Error(`${slot.client.label}: never ready again`);
    await sleep(10);
  }
}

/**
 * Send a command until it is answered, resending with the same idempotency id after a cut.
 * The answer must be an ack (a resend of an applied command is acked as a duplicate).
 */
async function reliableSend(slot, cmd, deadline) {
  const id = newCommandId('chaos');
  for (let attempt = 0; ; attempt++) {
    await waitReady(slot, deadline);
    try {
      const a = await slot.client.send({ ...cmd, id }, 4000);
      assert.equal(a.kind, 'ack', `${slot.client.label}: ${JSON.stringify(cmd).slice(0, 120)} (attempt ${attempt + 1}) answered ${JSON.stringify(a)}`);
      if (a.duplicate) totals.duplicateAcks++;
      if (attempt > 0) totals.resends += attempt;
      return a;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      if (Date.now() > deadline) throw new Error(`${slot.client.label}: ${cmd.type} never answered: ${e.message}`);
      await sleep(30);
    }
  }
}

/** Drive one session from start to its final run end under chaos; then check everything. */
async function runSession(index) {
  const rnd = sub(SEED, index, 0);
  const t = tag(`chaos${index}`);
  const plan = faultPlan(rnd);
  fake.setScenario(t, plan.steps);
  const approval = rnd() < 0.5 ? 'each_stage' : 'auto';
  const brief = briefFor(t, `Session ${index}: plan a booking system for a climbing gym, with waitlists and member passes`);
  const id = await createSession(worker.url);
  const deadline = Date.now() + SESSION_TIMEOUT_MS;
  const label = (c) => `s${index}/${id.slice(0, 6)}/c${c}(seed ${SEED})`;
  const clients = [];
  for (let c = 0; c < CLIENTS; c++) clients.push(await SessionClient.open(worker.url, id, { label: label(c) }));
  const slots = clients.map((c, i) => makeSlot(c, sub(SEED, index, i + 1)));
  const approver = slots[0];
  const record = { index, id, approval, faults: plan.faults, outcome: null, errorCode: null, runs: 0, rejects: 0, retried: false };

  try {
    await reliableSend(approver, { type: 'start', brief, approval }, deadline);
    let from = 0;
    let rejected = false;
    for (;;) {
      const end = await approver.client.waitFor(isEnd, Math.max(1000, deadline - Date.now()), { from, what: `s${index}: a run end` });
      from = approver.client.transcript.findIndex((e) => e.seq === end.seq) + 1;
      record.runs++;
      if (end.type === 'RUN_FINISHED' && end.outcome?.type === 'interrupt') {
        const stage = approver.client.state?.gate?.stage;
        assert.ok(STAGES.includes(stage), `s${index}: a gate names its stage: ${JSON.stringify(approver.client.state?.gate)}`);
        assert.equal(end.outcome.interrupts[0].id, approver.client.state.gate.id, `s${index}: the interrupt id is the open gate`);
        if (!rejected && rnd() < 0.15) {
          rejected = true;
          record.rejects++;
          totals.rejects++;
          await reliableSend(approver, { type: 'reject', stage, feedback: `Please add more detail on ${stage} risks (chaos ${index}).` }, deadline);
        } else {
          totals.approvals++;
          await reliableSend(approver, { type: 'approve', stage }, deadline);
        }
        continue;
      }
      if (end.type === 'RUN_ERROR' && end.code === 'retries_exhausted' && !record.retried && rnd() < 0.5) {
        const failed = ofType(approver.client.transcript, 'CUSTOM', 'agent_error').at(-1)?.value?.stage;
        assert.ok(STAGES.includes(failed), `s${index}: the last agent_error names the failed stage`);
        record.retried = true;
        totals.retries++;
        await reliableSend(approver, { type: 'retry', stage: failed }, deadline);
        continue;
      }
      record.outcome = end.type === 'RUN_FINISHED' ? end.outcome?.type : 'error';
      record.errorCode = end.type === 'RUN_ERROR' ? end.code : null;
      break;
    }
  } finally {
    for (const s of slots) s.stopped = true;
    await Promise.all(slots.map((s) => s.loop));
  }
  for (const s of slots) assert.deepEqual(s.errors.map(String), [], `${s.client.label}: chaos loop errors`);

  // Quiet now: bring every client back (some were cut just before the end) and compare.
  for (const s of slots) if (!s.client.isOpen) await s.reconnect();
  const snap = await getSession(worker.url, id);
  for (const c of clients) await c.waitFor((e) => e.seq === snap.body.lastSeq, 10000, { what: `catch up to seq ${snap.body.lastSeq}` });
  const { events, session, summary } = await finalChecks(worker, id, clients, { complete: true });

  // Every run ended: interrupts are followed by another run; the last one is the outcome.
  const last = summary.runs.at(-1);
  for (const r of summary.runs.slice(0, -1)) {
    assert.ok(r.outcome?.type === 'interrupt' || r.error?.code === 'retries_exhausted', `s${index}: ${r.runId} ended ${JSON.stringify(r.outcome || r.error)} and yet another run followed`);
  }
  if (record.outcome === 'success') {
    assert.deepEqual(last.outcome, { type: 'success' });
    assert.equal(session.state.run.status, 'completed');
    for (const s of STAGES) assert.equal(session.state.agents[s].status, 'done', `s${index}: ${s} done`);
    // Each stage's artifact is its last complete message, never a spliced or cut one.
    const msgs = [...messagesOf(events).values()];
    for (const s of STAGES) {
      const final = msgs.filter((m) => m.name === NAMES[s] && m.interrupted === null).at(-1);
      assert.ok(final && final.ended, `s${index}: ${s} has a complete message`);
      const art = await getArtifact(worker.url, id, s);
      assert.equal(art.status, 200);
      assert.equal(art.text, final.text, `s${index}: ${s} artifact = its last complete message`);
    }
  } else {
    assert.equal(record.outcome, 'error', `s${index}: the pipeline ended ${record.outcome}`);
    assert.equal(last.error?.code, 'retries_exhausted', `s${index}: only retryable faults were injected, so only retries_exhausted may end a run: ${JSON.stringify(last.error)}`);
    assertPlainWords(last.error.message, `s${index} RUN_ERROR.message`);
    assert.equal(session.state.run.status, 'failed');
    assert.equal(session.state.run.error?.code, 'retries_exhausted');
  }
  // Every run error and every failed attempt is explained in plain words.
  for (const r of summary.runs) if (r.error) assertPlainWords(r.error.message, `s${index} ${r.runId} RUN_ERROR.message`);
  const agentErrors = ofType(events, 'CUSTOM', 'agent_error').map((e) => e.value);
  for (const v of agentErrors) {
    assert.ok(RETRYABLE.includes(v.code), `s${index}: agent_error code ${v.code} for an injected transient fault`);
    assertPlainWords(v.message, `s${index} agent_error.message`);
  }
  // Messages: every one ended; an interrupted one is marked with a known reason.
  for (const m of messagesOf(events).values()) {
    assert.ok(m.ended, `s${index}: message ${m.messageId} (${m.name}) ended`);
    if (m.interrupted !== null) assert.ok(['retry', 'failed'].includes(m.interrupted), `s${index}: message ${m.messageId} interrupted ${m.interrupted}`);
  }
  // The server and the provider agree: one agent_error per failed provider call, one
  // complete call per saved artifact version, and Retry-After honoured.
  const reqs = fake.requestsFor(t);
  const failedCalls = reqs.filter((r) => r.outcome !== 'completed');
  // On a mismatch, show both sides: the provider's log and the session's attempts.
  const t0 = reqs[0]?.time ?? 0;
  const story = () =>
    `\n  provider calls: ${reqs.map((r) => `[${r.time - t0}ms ${r.role} ${JSON.stringify(r.step && { ...r.step, index: undefined })} -> ${r.outcome}${r.status ? ' ' + r.status : ''} ${r.tokensSent}tok]`).join(' ')}` +
    `\n  agent_errors: ${agentErrors.map((v) => `[${v.stage}#${v.attempt} ${v.code} retryable=${v.retryable} next=${v.nextRetryAt ? v.nextRetryAt - t0 + 'ms' : null}]`).join(' ')}` +
    `\n  steps: ${ofType(events, 'STEP_STARTED').length} started; runs: ${summary.runs.map((r) => `${r.runId}:${r.outcome?.type || r.error?.code}`).join(' ')}`;
  // Pair each agent_error with the failed provider call it reports, in order (calls are
  // sequential within a session). Two kinds may have no failed call behind them, and are
  // counted: `network` (the connection failed before the request reached the provider, e.g. a
  // pooled keep-alive connection the provider had just closed) and `timeout` (the watchdog
  // fired although the provider finished writing: the Worker did not get to read it in time).
  const pairs = [];
  const extra = { network: 0, timeout: 0 };
  let k = 0;
  for (const v of agentErrors) {
    const r = failedCalls[k];
    if (r && expectedCodes(r).includes(v.code)) {
      pairs.push({ req: r, err: v });
      k++;
    } else if (v.code in extra) extra[v.code]++;
    else assert.fail(`s${index}: agent_error ${v.stage}#${v.attempt} ${v.code} matches no failed provider call (next failed call: ${r ? r.outcome + ' ' + (r.status || '') : 'none'})${story()}`);
  }
  assert.equal(k, failedCalls.length, `s${index}: every failed provider call is reported by an agent_error (${k} of ${failedCalls.length})${story()}`);
  totals.unseenNetworkErrors += extra.network;
  totals.unseenTimeouts += extra.timeout;
  // One artifact per complete answer, except answers the watchdog gave up on.
  const artifacts = ofType(events, 'CUSTOM', 'artifact').length;
  const complete = reqs.length - failedCalls.length;
  assert.ok(artifacts <= complete && artifacts >= complete - extra.timeout, `s${index}: artifacts (${artifacts}) = complete provider answers (${complete}) minus watchdog timeouts on them (${extra.timeout})${story()}`);
  // A 429 with Retry-After that is retried automatically is retried no sooner than it asked
  // (a manual `retry` after the last attempt may go at once).
  for (const { req: r, err } of pairs) {
    if (!r.step?.retryAfter || err.nextRetryAt === null) continue;
    const next = reqs[reqs.indexOf(r) + 1];
    assert.ok(err.nextRetryAt - r.time >= 950, `s${index}: nextRetryAt honours Retry-After 1 s (${err.nextRetryAt - r.time} ms)${story()}`);
    if (next) assert.ok(next.time - r.time >= 950, `s${index}: Retry-After 1 s honoured (${next.time - r.time} ms)${story()}`);
  }
  for (const c of clients) {
    // A reconnecting client is replayed to, never sent a snapshot (the log holds everything).
    assert.deepEqual(c.snapshots.filter((s) => s.lastSeq > 0), [], `${c.label}: snapshot joins after events existed`);
  }
  await Promise.all(clients.map((c) => c.close()));
  // No ghost sockets: after hundreds of cuts (many without a close frame), the session holds
  // none once its clients are gone — otherwise abrupt disconnects would eat the 32-socket cap.
  let sockets;
  for (let i = 0; i < 50; i++) {
    sockets = (await getSession(worker.url, id)).body.stats?.sockets;
    if (sockets === 0) break;
    await sleep(100);
  }
  assert.equal(sockets, 0, `s${index}: sockets still held by the session 5 s after every client closed (stats.sockets)`);
  return { ...record, events: events.length, calls: reqs.length, failedCalls: failedCalls.length, cuts: clients.reduce((n, c) => n + c.connections - 1, 0) };
}

test(`chaos: ${SESSIONS} sessions x ${CLIENTS} clients through full pipelines under random cuts and provider faults`, { timeout: Math.max(600000, SESSIONS * 30000) }, async (t) => {
  const msg = `chaos seed ${SEED} (replay: CHAOS_SEED=${SEED} CHAOS_SESSIONS=${SESSIONS} CHAOS_CLIENTS=${CLIENTS} CHAOS_CONCURRENCY=${CONCURRENCY} CHAOS_CUT_MS=${CUT_MS})`;
  t.diagnostic(msg);
  const t0 = Date.now();
  const results = [];
  const failures = [];
  let next = 0;
  async function worker_() {
    while (next < SESSIONS) {
      const i = next++;
      try {
        results.push(await runSession(i));
      } catch (e) {
        failures.push({ index: i, error: e });
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, SESSIONS) }, worker_));
  const secs = ((Date.now() - t0) / 1000).toFixed(1);

  const ok = results.filter((r) => r.outcome === 'success').length;
  const exhausted = results.filter((r) => r.outcome === 'error').length;
  const lines = [
    `chaos: ${SESSIONS} sessions x ${CLIENTS} clients in ${secs} s (seed ${SEED})`,
    `  pipelines: ${ok} success, ${exhausted} retries_exhausted, ${failures.length} test failures; auto ${results.filter((r) => r.approval === 'auto').length}, each_stage ${results.filter((r) => r.approval === 'each_stage').length}`,
    `  provider calls ${results.reduce((n, r) => n + r.calls, 0)}, failed ${results.reduce((n, r) => n + r.failedCalls, 0)}; logged events ${results.reduce((n, r) => n + r.events, 0)}; runs ${results.reduce((n, r) => n + r.runs, 0)}`,
    `  connection cuts ${totals.cuts} (terminate ${totals.terminates}, close ${totals.closes}), reconnects ${totals.reconnects} (+${totals.reconnectRetries} retried), command resends ${totals.resends}, duplicate acks ${totals.duplicateAcks}`,
    `  approvals ${totals.approvals}, rejections ${totals.rejects}, retry commands ${totals.retries}`,
    `  agent_errors with no failed provider call behind them: network ${totals.unseenNetworkErrors}, watchdog timeout ${totals.unseenTimeouts}; test-side HTTP GET retries ${totals.fetchRetries}${fetchRetryCauses.length ? ` (${[...new Set(fetchRetryCauses)].join(', ')})` : ''}`,
  ];
  for (const l of lines) t.diagnostic(l);
  if (failures.length) {
    const detail = failures
      .sort((a, b) => a.index - b.index)
      .map((f) => `session ${f.index}: ${f.error?.stack || f.error}${f.error?.cause ? `\n  cause: ${f.error.cause.code || ''} ${f.error.cause.message || f.error.cause}` : ''}`)
      .join('\n\n');
    assert.fail(`${failures.length} of ${SESSIONS} sessions failed their checks (seed ${SEED}):\n${detail}`);
  }
  assert.equal(results.length, SESSIONS);
  assert.ok(ok >= Math.ceil(SESSIONS * 0.5), `most pipelines should succeed with 4 attempts per stage: ${ok}/${SESSIONS}`);
  assert.ok(totals.cuts >= SESSIONS, `connections were really cut (${totals.cuts})`);
  const calls = results.reduce((n, r) => n + r.calls, 0);
  assert.ok(totals.unseenTimeouts + totals.unseenNetworkErrors <= Math.max(2, calls * 0.05), `spurious provider errors (timeouts/network errors with no failed call behind them) should be rare: ${totals.unseenTimeouts + totals.unseenNetworkErrors} of ${calls} calls`);
  // The key was really used with the provider.
  assert.ok(fake.requests.length > 0 && fake.requests.every((r) => r.headers.authorization === `Bearer ${KEY}`));
});
