// Models and money (issue 13), against real `wrangler dev` with two test doubles at once: the
// OpenAI-compatible one (provider A) and the Anthropic Messages one (provider B). Only the
// stages configured (or chosen at start) for B reach B, with B's model; usage from both
// yields exact costs at configured prices, and the run's `usage` lists both models with what
// each reported; a dollar budget stops the run in plain words; a wrong key for one provider
// names that provider and the agent; the catalog the start form reads carries no secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { startFakeAnthropic } from '../support/fake-anthropic.mjs';
import { SessionClient, createSession, fetchEvents, getSession } from '../support/client.mjs';
import { briefFor, checkInvariants, mustAck, mustReject, tag, waitRunEnd } from '../support/e2e.mjs';
import { verifyStream } from '../support/agui.mjs';
import { STAGES } from '../support/stages.mjs';

const KEY_A = 'sk-test-models-a';
const KEY_B = 'sk-ant-test-models-b';
// $1 and $2 per Mtok for A's model, $3 and $4 for B's: a call costs in·1 + out·2 (or in·3 +
// out·4) micro-dollars, so every expected cost is an exact integer.
const PRICES = 'fake-a=1/2,claude-fake=3/4';

let a;
let b;
let w;
let broke;
let budget;
before(async () => {
  a = await startFakeOpenAI({ msPerToken: 1 });
  b = await startFakeAnthropic({ msPerToken: 1, apiKey: KEY_B });
  const env = {
    OPENAI_BASE_URL: a.url,
    OPENAI_API_KEY: KEY_A,
    OPENAI_MODEL: 'fake-a',
    ANTHROPIC_BASE_URL: b.url,
    ANTHROPIC_API_KEY: KEY_B,
    AGENT_MODELS: 'developer=anthropic:claude-fake',
    MODEL_PRICES: PRICES,
    LLM_CACHE: 'off',
  };
  [w, broke, budget] = await Promise.all([
    // One call at a time per limiter (one per provider and model): a stage's lease goes back
    // with the next stage's lease request, or on its own when the next stage uses another
    // limiter (A, A, B, A, A). A lease never given back would keep its limiter's only slot
    // from the next session: the later tests here, which call B again, would stall.
    startWorker({ name: '12-models', env: { ...env, LLM_MAX_CONCURRENT: '1' } }),
    startWorker({ name: '12-models-badkey', env: { ...env, ANTHROPIC_API_KEY: 'sk-ant-wrong-key' } }),
    // $0.0004: the Analyst's first call (a few hundred tokens at $1–2/Mtok) spends it.
    startWorker({ name: '12-models-budget', env: { ...env, SESSION_BUDGET_USD: '0.0004' } }),
  ]);
});
after(async () => {
  await Promise.all([w?.stop(), broke?.stop(), budget?.stop()]);
  await Promise.all([a?.close(), b?.close()]);
});

async function run(url, brief, extra = {}) {
  const id = await createSession(url);
  const c = await SessionClient.open(url, id, { label: 'owner' });
  try {
    await mustAck(c, { type: 'start', brief, approval: 'auto', ...extra });
    const runId = (await c.waitFor((e) => e.type === 'RUN_STARTED')).runId;
    await waitRunEnd(c, runId, 60000);
  } finally {
    c.close();
  }
  return id;
}

const costA = (u) => u.prompt_tokens * 1 + u.completion_tokens * 2;
const costB = (u) => (u.input_tokens + (u.cache_read_input_tokens ?? 0)) * 3 + u.output_tokens * 4;

test('only the Developer reaches provider B, with its model, and the costs are exact', async () => {
  const t = tag('two');
  const fromA = a.requests.length;
  const fromB = b.requests.length;
  const id = await run(w.url, briefFor(t));
  const mineA = a.requests.slice(fromA).filter((r) => JSON.stringify(r.body).includes(t));
  const mineB = b.requests.slice(fromB).filter((r) => JSON.stringify(r.body).includes(t));
  assert.deepEqual(mineB.map((r) => r.role), ['developer'], 'B answered the Developer only');
  assert.equal(mineB[0].body.model, 'claude-fake');
  assert.equal(mineB[0].keyOk, true, "B's own key");
  assert.ok(mineB[0].body.tools?.some((x) => x.name === 'write_file'), 'tools in Anthropic form');
  assert.deepEqual(mineA.map((r) => r.role), ['analyst', 'architect', 'tester', 'deployer']);
  assert.ok(mineA.every((r) => r.body.model === 'fake-a'));
  assert.ok(mineA.every((r) => r.headers.authorization === '[redacted]' || !JSON.stringify(r).includes(KEY_B)), 'B\'s key never reaches A');

  const { state } = (await getSession(w.url, id)).body;
  const want = {};
  for (const r of mineA) want[r.role] = costA(r.usage);
  want.developer = costB(mineB[0].usage);
  for (const stage of STAGES) {
    assert.equal(state.agents[stage].costMicroUsd, want[stage], `${stage}: exact cost`);
    assert.equal(state.agents[stage].priceKnown, true);
  }
  assert.equal(state.agents.developer.model, 'anthropic:claude-fake');
  assert.equal(state.agents.tester.model, 'openai:fake-a');
  assert.equal(state.run.costMicroUsd, Object.values(want).reduce((x, y) => x + y, 0));
  const events = await fetchEvents(w.url, id, 0);
  // The run's usage (issue 33): one entry per model, each with exactly the tokens its own
  // provider reported (Anthropic's input counts its cache reads and writes too).
  const sum = (rs, f) => rs.reduce((n, r) => n + f(r.usage), 0);
  const inA = sum(mineA, (u) => u.prompt_tokens);
  const outA = sum(mineA, (u) => u.completion_tokens);
  const inB = sum(mineB, (u) => u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0));
  const outB = sum(mineB, (u) => u.output_tokens);
  assert.ok(inA > 0 && outA > 0 && inB > 0 && outB > 0);
  const fin = events.filter((e) => e.type === 'RUN_FINISHED').at(-1);
  assert.deepEqual(fin.usage, [
    { model: 'openai:fake-a', inputTokens: inA, outputTokens: outA, totalTokens: inA + outA },
    { model: 'anthropic:claude-fake', inputTokens: inB, outputTokens: outB, totalTokens: inB + outB },
  ]);
  assert.equal(state.run.tokensUsed, inA + outA + inB + outB);
  checkInvariants(events, 'two providers');
  await verifyStream(events, { threadId: id, complete: true, label: 'two providers' });
});

test('a model chosen at start for one agent is the one called; a choice not offered is refused', async () => {
  const t = tag('choice');
  const fromB = b.requests.length;
  const id = await run(w.url, briefFor(t), { models: { tester: 'anthropic:claude-fake' } });
  const mineB = b.requests.slice(fromB).filter((r) => JSON.stringify(r.body).includes(t));
  assert.deepEqual(mineB.map((r) => r.role), ['developer', 'tester']);
  assert.equal((await getSession(w.url, id)).body.state.agents.tester.model, 'anthropic:claude-fake');

  const other = await createSession(w.url);
  const c = await SessionClient.open(w.url, other, { label: 'chooser' });
  try {
    const r = await mustReject(c, { type: 'start', brief: 'x', models: { tester: 'openai:gpt-nope' } }, 'invalid_field');
    assert.match(r.message, /not offered for the Tester/);
    await mustReject(c, { type: 'start', brief: 'x', models: { tester: 'no-provider' } }, 'invalid_field');
    assert.equal((await getSession(w.url, other)).body.state.run.status, 'idle', 'nothing started');
  } finally {
    c.close();
  }
});

test('the dollar budget stops the run before the next stage, in plain words', async () => {
  const id = await run(budget.url, briefFor(tag('budget')));
  const events = await fetchEvents(budget.url, id, 0);
  const end = events.at(-1);
  assert.equal(end.type, 'RUN_ERROR');
  assert.equal(end.code, 'budget_exhausted');
  assert.match(end.message, /has spent \$0\.\d+ of its \$0\.0004 budget, so the Architect was not started/);
  const { state } = (await getSession(budget.url, id)).body;
  assert.equal(state.run.budgetMicroUsd, 400);
  assert.ok(state.run.costMicroUsd > 400);
  assert.equal(state.agents.architect.attempts, 0, 'no call was made for the Architect');
});

test("a wrong key for provider B names B and the agent; A's stages are unaffected", async () => {
  const t = tag('badkey');
  const id = await createSession(broke.url);
  const c = await SessionClient.open(broke.url, id, { label: 'owner' });
  try {
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
    const err = await c.waitFor((e) => e.type === 'CUSTOM' && e.name === 'agent_error', 60000);
    assert.equal(err.value.stage, 'developer');
    assert.equal(err.value.code, 'bad_key');
    assert.match(err.value.message, /Anthropic, model claude-fake, used by the Developer/);
    assert.doesNotMatch(JSON.stringify(err), /sk-ant-wrong-key/);
    const { state } = (await getSession(broke.url, id)).body;
    assert.equal(state.agents.architect.status, 'done');
  } finally {
    c.close();
  }
});

test('the catalog offers each stage its models with prices and no secret', async () => {
  const res = await fetch(`${w.url}/api/models`);
  assert.equal(res.status, 200);
  const text = await res.text();
  for (const secret of [KEY_A, KEY_B, a.url, b.url]) assert.ok(!text.includes(secret), `no ${secret} in the catalog`);
  const cat = JSON.parse(text);
  assert.equal(cat.demo, false);
  assert.deepEqual(cat.providers, ['openai', 'anthropic']);
  const dev = cat.stages.find((s) => s.stage === 'developer');
  assert.equal(dev.default, 'anthropic:claude-fake');
  assert.deepEqual(dev.offered.map((m) => m.id), ['anthropic:claude-fake', 'openai:fake-a']);
  assert.deepEqual(dev.offered[0].price, { input: 3_000_000, output: 4_000_000, cachedInput: 3_000_000 });
  assert.equal(cat.budgetMicroUsd, null);
});

test("provider B overloaded (529, retry-after) is retried after the time it asked for, then the run completes", async () => {
  const t = tag('overloaded');
  // Only the Developer reaches B: its first request is refused as overloaded, the retry answers.
  b.setScenario(t, [{ status: 529, retryAfter: 2 }, { ok: true }]);
  const fromB = b.requests.length;
  const id = await run(w.url, briefFor(t));
  const events = await fetchEvents(w.url, id, 0);
  const err = events.find((e) => e.type === 'CUSTOM' && e.name === 'agent_error');
  assert.equal(err.value.stage, 'developer');
  assert.equal(err.value.code, 'server_error');
  assert.equal(err.value.retryable, true);
  assert.ok(err.value.nextRetryAt - err.timestamp >= 1900, `waits the 2 s asked for (${err.value.nextRetryAt - err.timestamp} ms)`);
  assert.match(err.value.message, /Anthropic, model claude-fake, used by the Developer/);
  const mine = b.requests.slice(fromB).filter((r) => JSON.stringify(r.body).includes(t));
  assert.deepEqual(mine.map((r) => r.status), [529, 200]);
  assert.ok(mine[1].time - mine[0].time >= 1900, `the retry came ${mine[1].time - mine[0].time} ms later`);
  assert.equal(events.at(-1).type, 'RUN_FINISHED');
  checkInvariants(events, 'overloaded');
});
