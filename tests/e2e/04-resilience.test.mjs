// Durability and protection end to end: the stall watchdog, the global cap on concurrent LLM
// calls, the per-session token budget, the access token, and restarts of wrangler dev (SIGKILL)
// while a retry is scheduled, while a gate is open, and mid-stream with no client reconnecting
// (only the Durable Object alarm can bring the run back).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { SessionClient, createSession, fetchEvents, getSession } from '../support/client.mjs';
import { verifyStream, messagesOf } from '../support/agui.mjs';
import { STAGES, tag, briefFor, newSessionClient, finalChecks, ofType, mustAck, sleep, assertPlainWords, assertClean, assertSameEvents, assertRejoined } from '../support/e2e.mjs';

let fake;
let worker;
let env;

before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 2 });
  env = {
    OPENAI_BASE_URL: fake.url,
    OPENAI_API_KEY: 'test-key-resilience',
    OPENAI_MODEL: 'fake-model-4',
    LLM_STALL_TIMEOUT_MS: '1500',
    LLM_MAX_CONCURRENT: '1',
  };
  worker = await startWorker({ name: '04-resilience', env });
});
after(async () => {
  await worker?.stop();
  await fake?.close();
});

const isEnd = (e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR';

test('watchdog: a stream that stalls is aborted as a timeout and retried', async () => {
  const t = tag('stall');
  fake.setScenario(t, [{ stallAfter: 4 }, { ok: true }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'stall' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  const end = await c.waitFor(isEnd, 30000);
  assert.deepEqual(end.outcome, { type: 'success' }, JSON.stringify(end));
  const [stalled, good] = fake.requestsFor(t);
  assert.equal(stalled.aborted, true, `the stalled request was aborted by the worker (outcome ${stalled.outcome})`);
  assert.ok(stalled.endedAt - stalled.time >= 1400 && stalled.endedAt - stalled.time < 6000, `aborted after ~1.5 s of silence (${stalled.endedAt - stalled.time} ms)`);
  const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => e.value);
  assert.deepEqual(errs.map((v) => [v.stage, v.code, v.retryable]), [['analyst', 'timeout', true]]);
  assertPlainWords(errs[0].message);
  const analysts = [...c.messages.values()].filter((m) => m.name === 'Analyst');
  assert.equal(analysts.length, 2);
  assert.equal(analysts[0].text, stalled.text);
  assert.equal(analysts[0].interrupted, 'retry');
  assert.equal(analysts[1].text, good.text);
  await finalChecks(worker, id, c);
  await c.close();
});

test('LLM_MAX_CONCURRENT=1: two sessions never have two provider calls in flight at once', async () => {
  const t = tag('conc');
  fake.setScenario(t, [{ tokens: 20, delayMs: 15 }]);
  const a = await newSessionClient(worker, { label: 'conc-a' });
  const b = await newSessionClient(worker, { label: 'conc-b' });
  await Promise.all([
    mustAck(a.client, { type: 'start', brief: briefFor(t, 'First project: a booking system'), approval: 'auto' }),
    mustAck(b.client, { type: 'start', brief: briefFor(t, 'Second project: an inventory tool'), approval: 'auto' }),
  ]);
  const [ea, eb] = await Promise.all([a.client.waitFor(isEnd, 60000), b.client.waitFor(isEnd, 60000)]);
  assert.deepEqual([ea.outcome, eb.outcome], [{ type: 'success' }, { type: 'success' }], JSON.stringify([ea, eb]));
  const reqs = fake.requestsFor(t);
  assert.equal(reqs.length, 10);
  const spans = reqs.map((r) => [r.time, r.endedAt]).sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < spans.length; i++) {
    assert.ok(spans[i][0] >= spans[i - 1][1] - 5, `calls overlap: one started ${spans[i - 1][1] - spans[i][0]} ms before the previous ended`);
  }
  await finalChecks(worker, a.id, a.client);
  await finalChecks(worker, b.id, b.client);
  await a.client.close();
  await b.client.close();
});

test('LLM_REQUESTS_PER_MIN=6: stages that go on under a set-aside request spend the budget exactly', async () => {
  // Each granted lease sets the next call's request aside when there is room, so a stage
  // starts without waiting for the limiter. A run of five stages takes five requests and
  // sets a sixth aside, given back at its end: the next session's first call gets it at once,
  // and its second call (the minute spent) waits in the queue.
  const ta = tag('rpm-a');
  const tb = tag('rpm-b');
  fake.setScenario(ta, [{ ok: true }]);
  fake.setScenario(tb, [{ ok: true }]);
  const w = await startWorker({ name: '04-rpm', env: { ...env, LLM_REQUESTS_PER_MIN: '6', LLM_MAX_CONCURRENT: '8' } });
  try {
    const a = await newSessionClient(w, { label: 'rpm-a' });
    await mustAck(a.client, { type: 'start', brief: briefFor(ta), approval: 'auto' });
    const ea = await a.client.waitFor(isEnd, 30000);
    assert.deepEqual(ea.outcome, { type: 'success' }, JSON.stringify(ea));
    assert.deepEqual(ofType(a.client.transcript, 'CUSTOM', 'agent_queued'), [], 'five calls fit in six requests');
    assert.equal(fake.requestsFor(ta).length, 5);
    const b = await newSessionClient(w, { label: 'rpm-b' });
    await mustAck(b.client, { type: 'start', brief: briefFor(tb), approval: 'auto' });
    const queued = await b.client.waitFor((e) => e.type === 'CUSTOM' && e.name === 'agent_queued', 15000);
    assert.deepEqual([queued.value.stage, queued.value.reason], ['architect', 'provider_limit'], JSON.stringify(queued.value));
    assert.ok(queued.value.nextRetryAt - Date.now() > 5000, `waits for the minute to refill (${queued.value.nextRetryAt - Date.now()} ms)`);
    assertPlainWords(queued.value.message);
    assert.equal(fake.requestsFor(tb).length, 1, 'only the analyst reached the provider');
    await mustAck(b.client, { type: 'cancel' });
    await finalChecks(w, a.id, a.client);
    await a.client.close();
    await b.client.close();
  } finally {
    await w.stop();
  }
});

test('token budget: the run stops with budget_exhausted in plain words; a new start is refused', async () => {
  const t = tag('budget');
  fake.setScenario(t, [{ ok: true }]);
  const w = await startWorker({ name: '04-budget', env: { ...env, SESSION_TOKEN_BUDGET: '1500' } });
  try {
    const { id, client: c } = await newSessionClient(w, { label: 'budget' });
    assert.equal(c.state.run.tokenBudget, 1500);
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
    const end = await c.waitFor(isEnd, 30000);
    assert.equal(end.type, 'RUN_ERROR', JSON.stringify(end));
    assert.equal(end.code, 'budget_exhausted');
    assertPlainWords(end.message);
    assert.match(end.message, /budget|tokens/i);
    const { session } = await finalChecks(w, id, c);
    const used = session.state.run.tokensUsed;
    const reqs = fake.requestsFor(t);
    assert.ok(reqs.length >= 1 && reqs.length < 5, `stopped before the end (${reqs.length} calls)`);
    assert.equal(used, reqs.reduce((n, r) => n + r.usage.total_tokens, 0), 'tokensUsed = provider usage');
    assert.ok(used >= 1500, `stopped because ${used} >= 1500`);
    const before = reqs.reduce((n, r) => n + r.usage.total_tokens, 0) - reqs.at(-1).usage.total_tokens;
    assert.ok(before < 1500, 'no stage was refused while budget remained');
    const r = await c.send({ type: 'start', brief: briefFor(t), approval: 'auto' });
    assert.deepEqual([r.kind, r.code], ['rejected', 'budget_exhausted'], JSON.stringify(r));
    await c.close();
  } finally {
    await w.stop();
  }
});

test('access token: POST needs the bearer, the upgrade needs the botarmy.token.<token> subprotocol', async () => {
  const TOKEN = 'acc3ss-t0ken';
  const w = await startWorker({ name: '04-token', env: { ...env, BOTARMY_ACCESS_TOKEN: TOKEN } });
  try {
    let res = await fetch(`${w.url}/api/sessions`, { method: 'POST' });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error?.code !== undefined, true);
    res = await fetch(`${w.url}/api/sessions`, { method: 'POST', headers: { Authorization: 'Bearer wrong' } });
    assert.equal(res.status, 401);
    res = await fetch(`${w.url}/api/sessions`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 201);
    const { id } = await res.json();

    const noToken = new SessionClient(w.url, id, { label: 'no-token' });
    const err = await noToken.connect().then(() => null, (e) => e);
    assert.ok(err, 'an upgrade without the token is refused');
    assert.equal(err.status, 401, `status ${err.status} ${err.body}`);
    const wrong = new SessionClient(w.url, id, { protocols: ['botarmy.token.nope'], label: 'wrong-token' });
    const err2 = await wrong.connect().then(() => null, (e) => e);
    assert.equal(err2?.status, 401, `wrong token: ${err2?.message}`);

    // As docs/protocol.md says (and the UI does): `botarmy.v1` beside the token. The token
    // alone is accepted but never echoed back (it would appear in the response), so a client
    // that offers only it gets no subprotocol (tests/security/hardening checks the header).
    const ok = new SessionClient(w.url, id, { protocols: ['botarmy.v1', `botarmy.token.${TOKEN}`], label: 'token' });
    const e3 = await ok.connect().then(() => null, (e) => e);
    assert.equal(e3, null, `the documented token subprotocol must give a usable socket: ${e3?.message}`);
    const { welcome } = await ok.hello(0);
    assert.equal(welcome.sessionId, id);
    assert.ok(!w.logs().includes(TOKEN), 'the token is never logged');
    await ok.close();
  } finally {
    await w.stop();
  }
});

/** A worker that can be SIGKILLed and restarted on the same port and state. */
async function restartable(name, extraEnv = {}) {
  const e = { ...env, ...extraEnv };
  let w = await startWorker({ name, env: e });
  const h = {
    get w() {
      return w;
    },
    async restart(changedEnv = {}) {
      await w.kill();
      w = await startWorker({ name: `${name}-again`, env: { ...e, ...changedEnv }, persistDir: w.persistDir, port: w.port });
      return w;
    },
    async stop() {
      await w.stop();
    },
  };
  return h;
}

test('restart during a scheduled retry: the alarm still fires the retry, with no client connected', async () => {
  const t = tag('retry-restart');
  fake.setScenario(t, [{ status: 429, retryAfter: 3 }, { ok: true }]);
  const h = await restartable('04-retry-restart');
  try {
    const id = await createSession(h.w.url);
    const c = await SessionClient.open(h.w.url, id, { label: 'retry-restart' });
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
    const err = await c.waitFor((e) => e.type === 'CUSTOM' && e.name === 'agent_error', 10000);
    assert.equal(err.value.code, 'rate_limited');
    // The retry is a row of the schedule table, at the time the card shows.
    const waiting = (await getSession(h.w.url, id)).body;
    assert.equal(waiting.stats.timers.call, waiting.state.agents.analyst.nextRetryAt, JSON.stringify(waiting.stats.timers));
    await c.close();
    await h.restart();
    // Nobody connects: only the persisted alarm can start the retry.
    await fake.waitForRequests(() => fake.requestsFor(t).length >= 2, 20000).catch(() => {});
    const reqs = fake.requestsFor(t);
    assert.ok(reqs.length >= 2, `the retry never happened after the restart (${reqs.length} request(s)); the alarm did not survive`);
    assert.ok(reqs[1].time - reqs[0].time >= 2900, `Retry-After 3 s still honoured after the restart (${reqs[1].time - reqs[0].time} ms)`);
    await fake.waitForRequests(() => fake.requestsFor(t).filter((r) => r.outcome === 'completed').length >= 5, 30000).catch(() => {});
    const c2 = await SessionClient.open(h.w.url, id, { label: 'retry-restart-2' });
    const end = await c2.waitFor(isEnd, 30000);
    assert.deepEqual(end.outcome, { type: 'success' }, JSON.stringify(end));
    await finalChecks(h.w, id, c2);
    await c2.close();
    // Finished, and nobody connected: no timer is left but the idle expiry.
    let timers;
    for (let i = 0; i < 50; i++) {
      timers = (await getSession(h.w.url, id)).body.stats.timers;
      assert.ok(timers.expire > Date.now(), JSON.stringify(timers));
      delete timers.expire;
      if (Object.keys(timers).length === 0) break;
      await sleep(200);
    }
    assert.deepEqual(timers, {}, 'timers left after the run and the sockets ended');
  } finally {
    await h.stop();
  }
});

test('restart while a gate is open: the gate survives and approving it continues the run', async () => {
  const t = tag('gate-restart');
  fake.setScenario(t, [{ ok: true }]);
  const h = await restartable('04-gate-restart');
  try {
    const id = await createSession(h.w.url);
    const c = await SessionClient.open(h.w.url, id, { label: 'gate-restart' });
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'each_stage' });
    await c.waitFor((e) => e.type === 'RUN_FINISHED' && e.runId === 'run-1', 20000);
    const gateBefore = structuredClone(c.state.gate);
    await h.restart();
    const { welcome } = await c.reconnect();
    assert.equal(welcome.mode, 'replay');
    assert.equal(welcome.lastSeq, c.lastSeq, 'nothing was logged across the restart');
    const s = await getSession(h.w.url, id);
    assert.deepEqual(s.body.state.gate, gateBefore);
    assert.equal(s.body.state.run.status, 'waiting_approval');
    assert.equal(fake.requestsFor(t).length, 1);
    await mustAck(c, { type: 'approve', stage: 'analyst' });
    const end = await c.waitFor((e) => isEnd(e) && e.runId === 'run-2', 20000);
    assert.equal(end.outcome?.interrupts?.[0]?.id, 'gate-architect-1', JSON.stringify(end));
    await finalChecks(h.w, id, c);
    await c.close();
  } finally {
    await h.stop();
  }
});

test('restart mid-stream with no client reconnecting: the alarm resumes the stage and the run completes', async () => {
  const t = tag('alarm-restart');
  fake.setScenario(t, [{ tokens: 150, delayMs: 20 }, { ok: true }]);
  // (default concurrency here: the slot leak after a crash is tested on its own below)
  const h = await restartable('04-alarm-restart', { LLM_MAX_CONCURRENT: '8' });
  try {
    const id = await createSession(h.w.url);
    const c = await SessionClient.open(h.w.url, id, { label: 'alarm-restart' });
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
    await c.waitFor((e, cl) => e.type === 'TEXT_MESSAGE_CONTENT' && cl.messages.get(e.messageId)?.name === 'Analyst', 10000);
    // Streamed events are sent before they are stored; any read stores what was sent, so the
    // restart below cuts the stage after its first tokens are in the log (the crash window
    // itself is the next test's).
    await fetchEvents(h.w.url, id, 0);
    await h.restart();
    const t0 = Date.now();
    await fake.waitForRequests(() => fake.requestsFor(t).filter((r) => r.outcome === 'completed').length >= 5, 30000).catch(() => {});
    const done = fake.requestsFor(t).filter((r) => r.outcome === 'completed').length;
    assert.equal(done, 5, `with nobody connected, the run must resume from the alarm (${done}/5 stages done ${Date.now() - t0} ms after the restart)`);
    // The double counts a request done once it has written the end; the session stores the
    // stage's end and the run's a few milliseconds later. Read until the run's end is logged.
    let events = await fetchEvents(h.w.url, id, 0);
    for (const t1 = Date.now(); !events.some(isEnd) && Date.now() - t1 < 10000; ) {
      await sleep(50);
      events = await fetchEvents(h.w.url, id, 0);
    }
    await verifyStream(events, { threadId: id, complete: true });
    const analysts = [...messagesOf(events).values()].filter((m) => m.name === 'Analyst');
    assert.deepEqual(analysts.map((m) => m.interrupted), ['restart', null]);
    const late = await SessionClient.open(h.w.url, id, { label: 'after' });
    await finalChecks(h.w, id, late);
    await late.close();
  } finally {
    await h.stop();
  }
});

test('a restart between sending events and storing them: the client that saw them re-syncs by snapshot in a new epoch', async () => {
  const t = tag('epoch-restart');
  fake.setScenario(t, [{ tokens: 150, delayMs: 20 }, { ok: true }]);
  // Streamed events wait 5 s after they are sent before they are stored: the restart falls there.
  const h = await restartable('04-epoch-restart', { STORE_AFTER_SEND_MS: '5000' });
  try {
    const id = await createSession(h.w.url);
    const c = await SessionClient.open(h.w.url, id, { label: 'epoch-restart' });
    assert.equal(c.epoch, 1);
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
    // The first token comes with the message's start, which is stored first; the second is a
    // delta alone, sent ahead of storage.
    let tokens = 0;
    await c.waitFor((e, cl) => e.type === 'TEXT_MESSAGE_CONTENT' && cl.messages.get(e.messageId)?.name === 'Analyst' && ++tokens === 2, 10000);
    const seen = c.lastSeq;
    await h.restart({ STORE_AFTER_SEND_MS: '0' });
    // The restarted session numbered its own events from the last stored one: some seq the
    // client saw is another event in the log now.
    const stored = new Map((await fetchEvents(h.w.url, id, 0)).map((e) => [e.seq, JSON.stringify(e)]));
    const lost = c.transcript.filter((e) => stored.get(e.seq) !== JSON.stringify(e));
    assert.ok(lost.length > 0 && lost.every((e) => e.seq <= seen), `the restart fell in the window: ${JSON.stringify(lost.map((e) => e.seq))}`);
    const { welcome } = await c.reconnect();
    assert.equal(welcome.mode, 'snapshot', JSON.stringify(welcome));
    assert.equal(welcome.reason, 'server_restarted');
    assert.equal(welcome.epoch, 2);
    assert.equal(c.epoch, 2);
    const end = await c.waitForRunEnd(60000);
    assert.deepEqual(end.outcome, { type: 'success' }, JSON.stringify(end));
    // The log is whole (a fresh client replays all of it), and the re-synced client ends as
    // the server: from the snapshot on, the same events, and the same state.
    const fresh = await SessionClient.open(h.w.url, id, { label: 'epoch-fresh' });
    await fresh.waitFor(isEnd, 10000);
    const { events, session } = await finalChecks(h.w, id, fresh);
    const snap = c.snapshots.at(-1);
    assertSameEvents(c.transcript.slice(snap.atTranscript), events.filter((e) => e.seq > snap.lastSeq), 'after the snapshot');
    assertClean(c);
    assert.equal(c.lastSeq, session.lastSeq);
    assert.deepEqual(c.state, session.state);
    await fresh.close();
    // A client of epoch 1 that saw only stored events (those before the stream) still replays.
    const beforeStream = c.transcript.find((e) => e.type === 'TEXT_MESSAGE_START').seq - 1;
    const late = await SessionClient.open(h.w.url, id, { label: 'epoch-late', hello: false });
    late.epoch = 1;
    const again = await late.hello(beforeStream);
    assert.equal(again.welcome.mode, 'replay');
    assert.equal(again.welcome.epoch, 2);
    await late.close();
    await c.close();
  } finally {
    await h.stop();
  }
});

test('a crash mid-call does not leak the global concurrency slot (LLM_MAX_CONCURRENT=1)', async () => {
  const t = tag('slot-leak');
  fake.setScenario(t, [{ tokens: 150, delayMs: 20 }, { ok: true }]);
  const h = await restartable('04-slot-leak');
  try {
    const id = await createSession(h.w.url);
    const c = await SessionClient.open(h.w.url, id, { label: 'slot-leak' });
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
    await c.waitFor((e, cl) => e.type === 'TEXT_MESSAGE_CONTENT' && cl.messages.get(e.messageId)?.name === 'Analyst', 10000);
    // Streamed events are sent before they are stored; any read stores what was sent, so the
    // restart below cuts the stage after its first tokens are in the log (the crash window
    // itself is the next test's).
    await fetchEvents(h.w.url, id, 0);
    const seen = c.lastSeq;
    await h.restart();
    const { welcome } = await c.reconnect();
    assertRejoined(welcome, seen, 'slot-leak');
    const end = await c.waitForRunEnd(60000);
    const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => `${e.value.code}: ${e.value.message}`);
    assert.equal(end.type, 'RUN_FINISHED', `the run after the restart failed: ${JSON.stringify(end)}; agent errors: ${JSON.stringify(errs)}; provider calls after the restart: ${fake.requestsFor(t).length - 1}`);
    assert.deepEqual(end.outcome, { type: 'success' });
    await finalChecks(h.w, id, c);
    await c.close();
  } finally {
    await h.stop();
  }
});

test('waiting for a free global slot is queueing, not a failed attempt (LLM_MAX_CONCURRENT=1)', async () => {
  const slow = tag('slot-slow');
  const fast = tag('slot-fast');
  // A's analyst holds the only slot ~9 s: longer than 4 attempts of backoff (1 + 2 + 4 s).
  fake.setScenario(slow, [{ tokens: 180, delayMs: 50 }, { ok: true }]);
  fake.setScenario(fast, [{ ok: true }]);
  const a = await newSessionClient(worker, { label: 'slot-a' });
  const b = await newSessionClient(worker, { label: 'slot-b' });
  await mustAck(a.client, { type: 'start', brief: briefFor(slow), approval: 'each_stage' });
  await fake.waitForRequests(() => fake.requestsFor(slow).length === 1, 10000);
  await mustAck(b.client, { type: 'start', brief: briefFor(fast), approval: 'each_stage' });
  const [ea, eb] = await Promise.all([a.client.waitFor(isEnd, 60000), b.client.waitFor(isEnd, 60000)]);
  const errsB = ofType(b.client.transcript, 'CUSTOM', 'agent_error').map((e) => `${e.value.code} (attempt ${e.value.attempt}): ${e.value.message}`);
  assert.equal(ea.type, 'RUN_FINISHED', JSON.stringify(ea));
  assert.equal(eb.type, 'RUN_FINISHED', `session B must wait for the slot, not fail: ${JSON.stringify(eb)}; agent errors: ${JSON.stringify(errsB)}; B's provider calls: ${fake.requestsFor(fast).length}`);
  assert.equal(eb.outcome?.interrupts?.[0]?.id, 'gate-analyst-1');
  await finalChecks(worker, a.id, a.client);
  await finalChecks(worker, b.id, b.client);
  await a.client.close();
  await b.client.close();
});
