// The answer cache end to end against `wrangler dev` and the OpenAI-compatible double: with
// the default scope (`session`) a new run with the same brief reuses every stage without a
// provider call while another session does not; feedback changes the input and misses; a
// failed attempt is never stored; `global` shares answers between sessions until the TTL;
// `off` never caches.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { getArtifact, getSession } from '../support/client.mjs';
import { STAGES, tag, briefFor, newSessionClient, finalChecks, ofType, mustAck, waitRunEnd, sleep } from '../support/e2e.mjs';

const KEY = 'test-key-cache-7d2e4b';
let fake;
let session; // LLM_CACHE unset: the default, session scope
let global; // LLM_CACHE=global, TTL 3 s
let off; // LLM_CACHE=off

before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 1 });
  const env = { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: KEY };
  [session, global, off] = await Promise.all([
    startWorker({ name: '06-cache-session', env }),
    startWorker({ name: '06-cache-global', env: { ...env, LLM_CACHE: 'global', LLM_CACHE_TTL_S: '3' } }),
    startWorker({ name: '06-cache-off', env: { ...env, LLM_CACHE: 'off' } }),
  ]);
});
after(async () => {
  await Promise.all([session?.stop(), global?.stop(), off?.stop()]);
  await fake?.close();
});

/** Runs one auto pipeline on a new session; returns {id, client, events} of a finished run. */
async function autoRun(worker, brief, label) {
  const { id, client } = await newSessionClient(worker, { label });
  await mustAck(client, { type: 'start', brief, approval: 'auto' });
  const end = await waitRunEnd(client, 'run-1', 60000);
  assert.deepEqual(end.outcome, { type: 'success' }, `${label}: ${JSON.stringify(end)}`);
  return { id, client };
}

async function latestArtifacts(worker, id) {
  const out = {};
  for (const stage of STAGES) out[stage] = (await getArtifact(worker.url, id, stage)).text;
  return out;
}

test('session scope: a second run with the same brief reuses every answer; another session does not', async () => {
  const t = tag('cache-session');
  // The analyst's first attempt is cut mid-stream: that partial answer must never be served.
  fake.setScenario(t, [{ cutAfter: 5 }, { ok: true }]);
  const brief = briefFor(t);
  const { id, client } = await autoRun(session, brief, 'cache-a');
  assert.equal(fake.requestsFor(t).length, 6, 'five stages, one retried');
  const first = await latestArtifacts(session, id);
  const tokensAfterFirst = (await getSession(session.url, id)).body.state.run.tokensUsed;
  assert.ok(tokensAfterFirst > 0);

  await mustAck(client, { type: 'start', brief, approval: 'auto' });
  const end = await waitRunEnd(client, 'run-2', 30000);
  assert.deepEqual(end.outcome, { type: 'success' });
  assert.equal(fake.requestsFor(t).length, 6, 'the second run made no provider call');
  const { events, session: snap } = await finalChecks(session, id, client);

  // Version 2 of every artifact is the provider's version 1, served live as text events.
  const second = await latestArtifacts(session, id);
  assert.deepEqual(second, first);
  const run2 = events.slice(events.findIndex((e) => e.type === 'RUN_STARTED' && e.runId === 'run-2'));
  assert.deepEqual(ofType(run2, 'CUSTOM', 'artifact').map((e) => [e.value.stage, e.value.version]), STAGES.map((s) => [s, 2]));
  assert.ok(ofType(run2, 'TEXT_MESSAGE_CONTENT').length >= 5, 'cached text still arrives as text events');
  for (const stage of STAGES) {
    const a = snap.state.agents[stage];
    assert.equal(a.cached, true, `${stage} marked as served from the cache`);
    assert.equal(a.status, 'done');
    assert.equal(a.attempts, 1, `${stage}: one attempt in the second run`);
  }
  const marks = ofType(run2, 'STATE_DELTA').flatMap((e) => e.delta).filter((op) => /\/agents\/\w+\/cached$/.test(op.path) && op.value === true);
  assert.equal(marks.length, 5, 'each card is told live');
  // Tokens: the session's total is the first run's; the agents of this run spent none.
  assert.equal(snap.state.run.tokensUsed, tokensAfterFirst, 'the cached run added no tokens');
  for (const s of STAGES) assert.deepEqual([snap.state.agents[s].inputTokens, snap.state.agents[s].outputTokens], [0, 0], s);

  // Another session with the same brief: the session scope does not share.
  await autoRun(session, brief, 'cache-b');
  assert.equal(fake.requestsFor(t).length, 11, 'a second session calls the provider for all five');
});

test('feedback changes the input: the rerun calls the provider; the original input still hits', async () => {
  const t = tag('cache-feedback');
  const brief = briefFor(t);
  const { id, client } = await newSessionClient(session, { label: 'cache-fb' });
  await mustAck(client, { type: 'start', brief, approval: 'each_stage' });
  await waitRunEnd(client, 'run-1');
  assert.equal(fake.requestsFor(t).length, 1);
  await mustAck(client, { type: 'reject', stage: 'analyst', feedback: 'Add an accessibility section.' });
  await waitRunEnd(client, 'run-2');
  assert.equal(fake.requestsFor(t).length, 2, 'the rerun with feedback went to the provider');
  await mustAck(client, { type: 'cancel' });
  await waitRunEnd(client, 'run-3');
  await mustAck(client, { type: 'start', brief, approval: 'each_stage' });
  await waitRunEnd(client, 'run-4');
  assert.equal(fake.requestsFor(t).length, 2, 'the analyst without feedback came from the cache');
  const { session: snap } = await finalChecks(session, id, client);
  assert.equal(snap.state.agents.analyst.cached, true);
  assert.equal(snap.state.agents.analyst.version, 3);
  const v1 = await getArtifact(session.url, id, 'analyst', { version: 1 });
  const v3 = await getArtifact(session.url, id, 'analyst', { version: 3 });
  assert.equal(v3.text, v1.text);
  await mustAck(client, { type: 'cancel' });
});

test('global scope: sessions with identical inputs share answers until the TTL; off never caches', async () => {
  const t = tag('cache-global');
  const brief = briefFor(t);
  await autoRun(global, brief, 'global-a');
  assert.equal(fake.requestsFor(t).length, 5);
  const { id, client } = await autoRun(global, brief, 'global-b');
  assert.equal(fake.requestsFor(t).length, 5, 'the second session was served from the cache');
  const { session: snap } = await finalChecks(global, id, client);
  assert.ok(STAGES.every((s) => snap.state.agents[s].cached));
  assert.equal(snap.state.run.tokensUsed, 0, 'a session served from the cache spends no tokens');

  await sleep(3200); // past LLM_CACHE_TTL_S=3
  await autoRun(global, brief, 'global-c');
  assert.equal(fake.requestsFor(t).length, 10, 'expired entries are not served');

  const o = tag('cache-off');
  const offBrief = briefFor(o);
  const { id: offId, client: offClient } = await autoRun(off, offBrief, 'off-a');
  await mustAck(offClient, { type: 'start', brief: offBrief, approval: 'auto' });
  await waitRunEnd(offClient, 'run-2');
  assert.equal(fake.requestsFor(o).length, 10, 'LLM_CACHE=off calls the provider every time');
  const { session: offSnap } = await finalChecks(off, offId, offClient);
  assert.ok(STAGES.every((s) => offSnap.state.agents[s].cached === false));
});
