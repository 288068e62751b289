// The five-agent pipeline end to end against `wrangler dev` and the OpenAI-compatible double:
// both approval modes, reject-with-feedback, pause/resume, cancel, every failure class the
// double can produce (retried or not), demo mode, and a SIGKILL restart of wrangler mid-stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI, contentText, roleOf } from '../support/fake-openai.mjs';
import { SessionClient, createSession, getArtifact, getSession } from '../support/client.mjs';
import { messagesOf } from '../support/agui.mjs';
import {
  STAGES, NAMES, tag, briefFor, newSessionClient, finalChecks, ofType, mustAck, mustReject, sleep, stateHistory, assertPlainWords,
  assertRejoined,
} from '../support/e2e.mjs';

const KEY = 'test-key-pipeline-5f1c9a';
const MODEL = 'fake-model-3';
let fake;
let worker;
let env;

before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 2 });
  env = { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: KEY, OPENAI_MODEL: MODEL };
  worker = await startWorker({ name: '03-pipeline', env });
});
after(async () => {
  await worker?.stop();
  await fake?.close();
});

const isEnd = (e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR';
const allText = (req) => req.body.messages.map((m) => contentText(m.content)).join('\n');

/** Completed (200, streamed to the end) provider requests of a scenario, in order. */
const completed = (t) => fake.requestsFor(t).filter((r) => r.outcome === 'completed');

/** Final assistant message per stage (the last one for that agent name). */
function finalMessages(events) {
  const byName = new Map();
  for (const m of messagesOf(events).values()) if (m.role === 'assistant') byName.set(m.name, m);
  return byName;
}

test('auto: five agents in order, streamed live, artifacts served, tokens recorded, one successful run', async () => {
  const t = tag('auto');
  fake.setScenario(t, [{ tokens: 150, delayMs: 5 }, { ok: true }]); // the analyst is slow enough to watch
  const brief = briefFor(t);
  const { id, client: c } = await newSessionClient(worker, { label: 'auto' });
  const ack = await mustAck(c, { type: 'start', brief, approval: 'auto' });
  assert.equal(ack.command, 'start');
  const end = await c.waitFor(isEnd, 60000);
  assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
  assert.deepEqual(end.outcome, { type: 'success' });
  const { events, session, summary } = await finalChecks(worker, id, c);

  // One run, run-1, threadId = session.
  assert.deepEqual(summary.runs.map((r) => [r.runId, r.outcome?.type]), [['run-1', 'success']]);
  assert.equal(events[0].type, 'RUN_STARTED');
  assert.equal(events[1].type, 'STATE_SNAPSHOT', 'STATE_SNAPSHOT right after RUN_STARTED');

  // The brief is the first message: role user, name You.
  const msgs = [...messagesOf(events).values()];
  assert.deepEqual([msgs[0].role, msgs[0].name, msgs[0].text], ['user', 'You', brief]);

  // Steps in stage order, each wrapping exactly one assistant message from that agent.
  const steps = events.filter((e) => e.type === 'STEP_STARTED' || e.type === 'STEP_FINISHED').map((e) => `${e.type === 'STEP_STARTED' ? '+' : '-'}${e.stepName}`);
  assert.deepEqual(steps, STAGES.flatMap((s) => [`+${s}`, `-${s}`]));
  const reqs = completed(t);
  assert.equal(reqs.length, 5, 'five provider calls');
  assert.equal(fake.requestsFor(t).length, 5, 'no extra calls');
  const assistants = msgs.filter((m) => m.role === 'assistant');
  assert.deepEqual(assistants.map((m) => m.name), STAGES.map((s) => NAMES[s]));
  for (const [i, stage] of STAGES.entries()) {
    const m = assistants[i];
    const startedAt = events.findIndex((e) => e.type === 'STEP_STARTED' && e.stepName === stage);
    const finishedAt = events.findIndex((e) => e.type === 'STEP_FINISHED' && e.stepName === stage);
    const mStart = events.findIndex((e) => e.type === 'TEXT_MESSAGE_START' && e.messageId === m.messageId);
    const mEnd = events.findIndex((e) => e.type === 'TEXT_MESSAGE_END' && e.messageId === m.messageId);
    const art = events.findIndex((e) => e.type === 'CUSTOM' && e.name === 'artifact' && e.value.stage === stage);
    assert.ok(startedAt < mStart && mStart < mEnd && mEnd < finishedAt, `${stage}: message inside its step`);
    assert.ok(art > mEnd && art < finishedAt, `${stage}: artifact event after the message, inside the step`);
    assert.equal(m.text, reqs[i].text, `${stage}: message text = the provider's text, exactly`);
    assert.equal(m.interrupted, null);
    assert.deepEqual(events[art].value, { stage, version: 1, chars: m.text.length });
    const a = await getArtifact(worker.url, id, stage);
    assert.equal(a.status, 200);
    assert.match(a.contentType, /text\/markdown/);
    assert.equal(a.text, m.text, `${stage}: GET artifact = streamed text`);
    const v = await getArtifact(worker.url, id, stage, { format: 'json' });
    const list = JSON.parse(v.text);
    assert.equal(list.stage, stage);
    assert.deepEqual(list.versions.map((x) => [x.version, x.chars, x.feedback ?? null]), [[1, m.text.length, null]]);
  }

  // What the provider received: key, model, stream with usage, a distinct role prompt per
  // agent, the brief, and every artifact before it.
  const systems = new Set();
  for (const [i, r] of reqs.entries()) {
    assert.equal(r.headers.authorization, `Bearer ${KEY}`);
    assert.equal(r.body.model, MODEL);
    assert.equal(r.body.stream, true);
    assert.equal(r.body.stream_options?.include_usage, true, 'asks for stream usage');
    const sys = r.body.messages.filter((m) => m.role === 'system').map((m) => contentText(m.content)).join('\n');
    assert.ok(sys.length > 50, `${STAGES[i]}: a real role prompt`);
    assert.equal(roleOf(r.body), STAGES[i], `call ${i + 1}'s system prompt names ${STAGES[i]} first`);
    systems.add(sys);
    const text = allText(r);
    assert.ok(text.includes(brief), `${STAGES[i]} receives the brief`);
    for (let j = 0; j < i; j++) assert.ok(text.includes(assistants[j].text), `${STAGES[i]} receives the ${STAGES[j]} artifact`);
  }
  assert.equal(systems.size, 5, 'five different role prompts');

  // Final state and token accounting (from the provider's usage report).
  const st = session.state;
  assert.equal(st.run.status, 'completed');
  assert.equal(st.run.approval, 'auto');
  assert.equal(st.run.error, null);
  assert.equal(st.gate, null);
  assert.equal(typeof st.run.finishedAt, 'number');
  let total = 0;
  for (const [i, s] of STAGES.entries()) {
    const a = st.agents[s];
    assert.equal(a.status, 'done', `${s} done`);
    assert.equal(a.progress, 100, `${s} progress`);
    assert.equal(a.attempts, 1, `${s} attempts`);
    assert.equal(a.version, 1);
    assert.equal(a.outputTokens, reqs[i].usage.completion_tokens, `${s} outputTokens from usage`);
    assert.equal(a.inputTokens, reqs[i].usage.prompt_tokens, `${s} inputTokens from usage`);
    assert.ok(a.startedAt <= a.finishedAt, `${s} timing`);
    total += reqs[i].usage.total_tokens;
  }
  assert.equal(st.run.tokensUsed, total, 'run.tokensUsed = sum of usage');

  // Live: the analyst's status went through streaming to done, and its first text arrived at
  // the client while the provider was still writing.
  const hist = stateHistory(events, (s) => s.agents.analyst.status).map((h) => h.value);
  assert.ok(hist.indexOf('streaming') > 0 && hist.indexOf('done') > hist.indexOf('streaming'), `analyst statuses: ${hist.join(' -> ')}`);
  const firstContent = events.find((e) => e.type === 'TEXT_MESSAGE_CONTENT' && e.messageId === assistants[0].messageId);
  const arrived = c.arrivals.get(firstContent.seq);
  assert.ok(arrived < reqs[0].endedAt - 150, `first analyst text reached the client ${reqs[0].endedAt - arrived} ms before the provider finished (150 tokens x 5 ms): not live`);
  const progress = stateHistory(events, (s) => s.agents.analyst.progress).map((h) => h.value);
  assert.ok(progress.length >= 3, `analyst progress should move during the stream: ${progress.join(',')}`);
  await c.close();
});

test('each_stage: a gate (AG-UI interrupt) after every agent; approve each; a final success run', async () => {
  const t = tag('gates');
  fake.setScenario(t, [{ ok: true }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'each_stage' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'each_stage' });
  for (const [i, stage] of STAGES.entries()) {
    const runId = `run-${i + 1}`;
    const end = await c.waitFor((e) => isEnd(e) && e.runId === runId, 30000, { what: `end of ${runId}` });
    assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
    assert.equal(end.outcome.type, 'interrupt');
    assert.equal(end.outcome.interrupts.length, 1);
    const gate = end.outcome.interrupts[0];
    assert.equal(gate.id, `gate-${stage}-1`);
    assert.equal(gate.reason, 'approval');
    assert.ok(typeof gate.message === 'string' && gate.message.length > 5);
    assert.deepEqual(c.state.gate, { id: `gate-${stage}-1`, stage, version: 1 });
    assert.equal(c.state.run.status, 'waiting_approval');
    assert.equal(c.state.agents[stage].status, 'waiting_approval');
    // The pipeline does not run ahead of the gate.
    await sleep(300);
    assert.equal(fake.requestsFor(t).length, i + 1, `no provider call past the ${stage} gate`);
    assert.equal(c.transcript.at(-1).seq, end.seq, 'nothing logged while waiting at a gate');
    // Wrong stage and other commands that do not fit a gate.
    const wrong = STAGES[(i + 1) % 5];
    await mustReject(c, { type: 'approve', stage: wrong }, 'invalid_state');
    await mustReject(c, { type: 'pause' }, 'invalid_state');
    await mustReject(c, { type: 'start', brief: 'x', approval: 'auto' }, 'invalid_state');
    await mustAck(c, { type: 'approve', stage });
    if (i < 4) await c.waitFor((e) => e.type === 'RUN_STARTED' && e.runId === `run-${i + 2}`, 10000);
  }
  const last = await c.waitFor((e) => isEnd(e) && e.runId === 'run-6', 30000);
  assert.equal(last.type, 'RUN_FINISHED');
  assert.deepEqual(last.outcome, { type: 'success' });
  const { events, session, summary } = await finalChecks(worker, id, c);
  assert.deepEqual(summary.runs.map((r) => r.runId), ['run-1', 'run-2', 'run-3', 'run-4', 'run-5', 'run-6']);
  assert.deepEqual(summary.runs.map((r) => r.outcome.type), ['interrupt', 'interrupt', 'interrupt', 'interrupt', 'interrupt', 'success']);
  // Each run opens with its STATE_SNAPSHOT.
  for (const r of summary.runs) assert.equal(r.events[1].type, 'STATE_SNAPSHOT', `${r.runId} starts with a snapshot`);
  assert.equal(session.state.run.status, 'completed');
  assert.equal(session.state.run.approval, 'each_stage');
  assert.equal(session.state.gate, null);
  for (const s of STAGES) assert.equal(session.state.agents[s].status, 'done');
  const reqs = completed(t);
  const fm = finalMessages(events);
  for (let i = 1; i < 5; i++) assert.ok(allText(reqs[i]).includes(fm.get(NAMES[STAGES[i - 1]]).text), `${STAGES[i]} receives the approved ${STAGES[i - 1]} artifact`);
  await c.close();
});

test('reject with feedback: the stage reruns with the feedback, version 2 is served, version 1 kept', async () => {
  const t = tag('reject');
  const V1 = '## Requirements v1\n\nFirst draft: lists, items, sharing.';
  const V2 = '## Requirements v2\n\nRevised: lists, items, sharing, and a security section.';
  fake.setScenario(t, [{ text: V1 }, { text: V2 }, { ok: true }]);
  const feedback = 'Please add a security section about shared lists.';
  const { id, client: c } = await newSessionClient(worker, { label: 'reject' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'each_stage' });
  await c.waitFor((e) => e.type === 'RUN_FINISHED' && e.runId === 'run-1', 30000);
  await mustReject(c, { type: 'reject', stage: 'architect', feedback }, 'invalid_state');
  await mustAck(c, { type: 'reject', stage: 'analyst', feedback });
  const end2 = await c.waitFor((e) => isEnd(e) && e.runId === 'run-2', 30000);
  assert.equal(end2.type, 'RUN_FINISHED', JSON.stringify(end2));
  assert.equal(end2.outcome.interrupts[0].id, 'gate-analyst-2');
  assert.deepEqual(c.state.gate, { id: 'gate-analyst-2', stage: 'analyst', version: 2 });
  assert.equal(c.state.agents.analyst.version, 2);

  const run2 = c.transcript.slice(c.transcript.findIndex((e) => e.type === 'RUN_STARTED' && e.runId === 'run-2'));
  const run2Msgs = [...messagesOf(run2).values()];
  assert.deepEqual(run2Msgs.map((m) => [m.role, m.name, m.text]), [['user', 'You', feedback], ['assistant', 'Analyst', V2]], 'run-2: the feedback, then the new answer');
  const analystMsgs = [...c.messages.values()].filter((m) => m.name === 'Analyst');
  assert.equal(analystMsgs.length, 2);
  assert.notEqual(analystMsgs[0].messageId, analystMsgs[1].messageId, 'a rerun starts a new messageId');
  assert.equal(analystMsgs[0].text, V1, 'version 1 message untouched');
  assert.deepEqual(ofType(run2, 'CUSTOM', 'artifact').map((e) => e.value), [{ stage: 'analyst', version: 2, chars: V2.length }]);

  const rerun = fake.requestsFor(t)[1];
  assert.ok(allText(rerun).includes(feedback), 'the rerun receives the feedback');

  assert.equal((await getArtifact(worker.url, id, 'analyst')).text, V2);
  assert.equal((await getArtifact(worker.url, id, 'analyst', { version: 2 })).text, V2);
  const v1 = await getArtifact(worker.url, id, 'analyst', { version: 1 });
  assert.equal(v1.status, 200);
  assert.equal(v1.text, V1);
  assert.equal((await getArtifact(worker.url, id, 'analyst', { version: 3 })).status, 404);
  const list = JSON.parse((await getArtifact(worker.url, id, 'analyst', { format: 'json' })).text);
  assert.deepEqual(list.versions.map((v) => [v.version, v.chars, v.feedback ?? null]), [[1, V1.length, null], [2, V2.length, feedback]]);
  for (const v of list.versions) assert.equal(typeof v.createdAt, 'number');

  // Approve v2: the architect gets v2, not v1.
  await mustAck(c, { type: 'approve', stage: 'analyst' });
  await c.waitFor((e) => isEnd(e) && e.runId === 'run-3', 30000);
  const arch = fake.requestsFor(t)[2];
  assert.ok(allText(arch).includes(V2), 'architect receives the approved version 2');
  assert.ok(!allText(arch).includes(V1), 'architect does not receive the rejected version 1');

  // Cancel at a gate: a short run that ends cancelled.
  await mustAck(c, { type: 'cancel' });
  const end4 = await c.waitFor((e) => isEnd(e) && e.runId === 'run-4', 30000);
  assert.equal(end4.type, 'RUN_FINISHED');
  assert.deepEqual(end4.outcome, { type: 'cancelled' });
  const { session } = await finalChecks(worker, id, c);
  assert.equal(session.state.run.status, 'cancelled');
  assert.equal(session.state.gate, null);
  await c.close();
});

test('rerun from the tester after a completed run: exactly two provider calls (tester, deployer), new versions, the earlier artifacts kept', async () => {
  const t = tag('rerun');
  fake.setScenario(t, [{ ok: true }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'rerun' });
  await mustReject(c, { type: 'rerun', stage: 'analyst' }, 'invalid_state');
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  const end1 = await c.waitFor((e) => isEnd(e) && e.runId === 'run-1', 30000);
  assert.deepEqual(end1.outcome, { type: 'success' });
  assert.equal(fake.requestsFor(t).length, 5);
  const before = {};
  for (const stage of STAGES) before[stage] = (await getArtifact(worker.url, id, stage)).text;

  await mustAck(c, { type: 'rerun', stage: 'tester' });
  const end2 = await c.waitFor((e) => isEnd(e) && e.runId === 'run-2', 30000);
  assert.deepEqual(end2.outcome, { type: 'success' }, JSON.stringify(end2));
  // The answer cache holds the same inputs for the tester, but a rerun asks for a new answer.
  const calls = fake.requestsFor(t).slice(5);
  assert.deepEqual(calls.map((r) => roleOf(r.body)), ['tester', 'deployer'], 'exactly the tester and the deployer');
  const { body } = await getSession(worker.url, id);
  assert.deepEqual(STAGES.map((s) => body.state.agents[s].version), [1, 1, 1, 2, 2]);
  for (const stage of ['analyst', 'architect', 'developer']) {
    assert.equal((await getArtifact(worker.url, id, stage)).text, before[stage], `${stage} kept`);
  }
  // The tester's prompt carries the approved artifacts before it, as in the first run.
  assert.ok(allText(calls[0]).includes(before.developer.slice(0, 40)), 'the developer artifact is in the tester prompt');
  // With feedback, from the deployer: one call, which sees its previous version and the feedback.
  await mustAck(c, { type: 'rerun', stage: 'deployer', feedback: 'Add a Dockerfile section.' });
  await c.waitFor((e) => isEnd(e) && e.runId === 'run-3', 30000);
  const last = fake.requestsFor(t).slice(7);
  assert.deepEqual(last.map((r) => roleOf(r.body)), ['deployer']);
  assert.ok(allText(last[0]).includes('Add a Dockerfile section.'));
  assert.equal((await getSession(worker.url, id)).body.state.agents.deployer.version, 3);
  await finalChecks(worker, id, c);
});

test('pause stops at the next safe point, nothing runs while paused, resume finishes the same run', async () => {
  const t = tag('pause');
  fake.setScenario(t, [{ tokens: 40, delayMs: 15 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'pause' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  await c.waitFor((e) => e.type === 'TEXT_MESSAGE_CONTENT' && c.messages.get(e.messageId)?.name === 'Analyst', 10000);
  await mustAck(c, { type: 'pause' });
  await c.waitForState((s) => s.run.pauseRequested === true || s.run.status === 'paused', 5000, 'pauseRequested');
  await c.waitForState((s) => s.run.status === 'paused', 10000, 'run paused');
  const pausedAt = c.lastSeq;
  const nReq = fake.requestsFor(t).length;
  assert.equal(nReq, 1, 'paused after the analyst, before the architect');
  assert.equal(fake.requestsFor(t)[0].outcome, 'completed', 'the analyst was not aborted: pause waits for a safe point');
  assert.equal(c.state.agents.analyst.status, 'done');
  await mustReject(c, { type: 'pause' }, 'invalid_state');
  await sleep(1000);
  assert.equal(fake.requestsFor(t).length, nReq, 'no provider call while paused');
  assert.equal(c.transcript.filter((e) => e.seq > pausedAt && isEnd(e)).length, 0, 'pause does not end the run');
  await mustAck(c, { type: 'resume' });
  await c.waitForState((s) => s.run.status === 'running', 5000, 'running again');
  await mustReject(c, { type: 'resume' }, 'invalid_state');
  const end = await c.waitFor(isEnd, 60000);
  assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
  assert.deepEqual(end.outcome, { type: 'success' });
  const { summary, session } = await finalChecks(worker, id, c);
  assert.equal(summary.runs.length, 1, 'one run across pause/resume');
  assert.equal(fake.requestsFor(t).length, 5);
  for (const s of STAGES) assert.equal(session.state.agents[s].version, 1, `${s} ran once`);
  assert.equal(session.state.run.pauseRequested, false);
  await c.close();
});

test('cancel mid-stream: the request in flight is aborted, the message closed and marked, the run ends cancelled', async () => {
  const t = tag('cancel');
  fake.setScenario(t, [{ tokens: 300, delayMs: 20 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'cancel' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  await c.waitFor((e, cl) => e.type === 'TEXT_MESSAGE_CONTENT' && cl.messages.get(e.messageId)?.name === 'Analyst' && cl.messages.get(e.messageId).text.length > 40, 10000);
  await mustAck(c, { type: 'cancel' });
  const end = await c.waitFor(isEnd, 10000);
  assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
  assert.deepEqual(end.outcome, { type: 'cancelled' });
  const req = fake.requestsFor(t)[0];
  await fake.waitForRequests(() => req.aborted, 5000).catch(() => {});
  assert.equal(req.aborted, true, `the provider request must be aborted on cancel (outcome ${req.outcome}, tokens sent ${req.tokensSent})`);
  assert.ok(req.tokensSent < 300);
  const analyst = [...c.messages.values()].find((m) => m.name === 'Analyst');
  assert.equal(analyst.ended, true, 'the message was closed');
  assert.equal(analyst.interrupted, 'cancelled');
  const mi = ofType(c.transcript, 'CUSTOM', 'message_interrupted')[0];
  assert.deepEqual(mi.value, { messageId: analyst.messageId, stage: 'analyst', reason: 'cancelled' });
  const endIdx = c.transcript.findIndex((e) => e.type === 'TEXT_MESSAGE_END' && e.messageId === analyst.messageId);
  assert.equal(c.transcript[endIdx + 1].seq, mi.seq, 'message_interrupted follows the TEXT_MESSAGE_END');
  assert.ok(req.text.startsWith(analyst.text), 'the partial text is a prefix of what the provider sent');
  await sleep(500);
  assert.equal(fake.requestsFor(t).length, 1, 'no further provider calls after cancel');
  let { session } = await finalChecks(worker, id, c);
  assert.equal(session.state.run.status, 'cancelled');
  assert.equal(session.state.agents.analyst.status, 'cancelled');

  // A new pipeline can start after a cancel, as the next run.
  const t2 = tag('after-cancel');
  await mustAck(c, { type: 'start', brief: briefFor(t2), approval: 'auto' });
  const end2 = await c.waitFor((e) => isEnd(e) && e.runId === 'run-2', 60000);
  assert.deepEqual(end2.outcome, { type: 'success' });
  ({ session } = await finalChecks(worker, id, c));
  assert.equal(session.state.run.status, 'completed');
  await c.close();
});

test('cancel while paused, and cancel during a retry wait: the run ends cancelled and the retry never fires', async () => {
  const t = tag('cancel-paused');
  fake.setScenario(t, [{ tokens: 30, delayMs: 10 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'cancel-paused' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  await c.waitFor((e) => e.type === 'STEP_STARTED', 10000);
  await mustAck(c, { type: 'pause' });
  await c.waitForState((s) => s.run.status === 'paused', 10000, 'paused');
  await mustAck(c, { type: 'cancel' });
  const end = await c.waitFor(isEnd, 10000);
  assert.deepEqual(end.outcome, { type: 'cancelled' }, JSON.stringify(end));
  let { session } = await finalChecks(worker, id, c);
  assert.equal(session.state.run.status, 'cancelled');
  assert.equal(fake.requestsFor(t).length, 1);

  const t2 = tag('cancel-retrying');
  fake.setScenario(t2, [{ status: 429, retryAfter: 2 }, { ok: true }]);
  const from = c.transcript.length;
  await mustAck(c, { type: 'start', brief: briefFor(t2), approval: 'auto' });
  await c.waitFor((e) => e.type === 'CUSTOM' && e.name === 'agent_error', 10000, { from });
  await c.waitForState((s) => s.agents.analyst.status === 'retrying', 5000, 'analyst retrying');
  await mustAck(c, { type: 'cancel' });
  const end2 = await c.waitFor(isEnd, 10000, { from });
  assert.deepEqual(end2.outcome, { type: 'cancelled' }, JSON.stringify(end2));
  await sleep(3000);
  assert.equal(fake.requestsFor(t2).length, 1, 'the scheduled retry was cancelled too');
  ({ session } = await finalChecks(worker, id, c));
  assert.equal(session.state.agents.analyst.status, 'cancelled');
  assert.equal(session.state.agents.analyst.nextRetryAt, null);
  await c.close();
});

/** Run an auto pipeline for scenario t to its end; returns {id, client, end}. */
async function runAuto(t, label, timeoutMs = 60000) {
  const { id, client } = await newSessionClient(worker, { label });
  await mustAck(client, { type: 'start', brief: briefFor(t), approval: 'auto' });
  const end = await client.waitFor(isEnd, timeoutMs);
  return { id, client, end };
}

test('429 with Retry-After: 1 is retried after at least a second, then succeeds', async () => {
  const t = tag('r429');
  fake.setScenario(t, [{ status: 429, retryAfter: 1 }, { ok: true }]);
  const { id, client: c, end } = await runAuto(t, '429');
  assert.deepEqual(end.outcome, { type: 'success' }, JSON.stringify(end));
  const errs = ofType(c.transcript, 'CUSTOM', 'agent_error');
  assert.equal(errs.length, 1, JSON.stringify(errs));
  const v = errs[0].value;
  assert.equal(v.stage, 'analyst');
  assert.equal(v.code, 'rate_limited');
  assert.equal(v.retryable, true);
  assert.equal(v.attempt, 1);
  assertPlainWords(v.message, 'agent_error.message');
  const [r1, r2] = fake.requestsFor(t);
  assert.ok(r2.time - r1.time >= 950, `Retry-After 1 s honoured: second call ${r2.time - r1.time} ms after the first`);
  assert.equal(typeof v.nextRetryAt, 'number');
  assert.ok(v.nextRetryAt >= r1.time + 900 && v.nextRetryAt <= r1.time + 5000, `nextRetryAt ${v.nextRetryAt - r1.time} ms after the 429`);
  assert.ok(Math.abs(r2.time - v.nextRetryAt) < 1500, `retried at about nextRetryAt (off by ${r2.time - v.nextRetryAt} ms)`);
  const hist = stateHistory(c.transcript, (s) => [s.agents.analyst.status, s.agents.analyst.nextRetryAt]);
  assert.ok(hist.some((h) => h.value[0] === 'retrying' && h.value[1] === v.nextRetryAt), `analyst went 'retrying' with nextRetryAt: ${JSON.stringify(hist.map((h) => h.value))}`);
  const { session } = await finalChecks(worker, id, c);
  assert.equal(session.state.agents.analyst.attempts, 2);
  assert.equal(session.state.agents.architect.attempts, 1);
  assert.equal(session.state.agents.analyst.status, 'done');
  assert.equal(session.state.agents.analyst.nextRetryAt, null);
  await c.close();
});

test('500 is retried with backoff, then succeeds', async () => {
  const t = tag('r500');
  fake.setScenario(t, [{ status: 500 }, { ok: true }]);
  const { id, client: c, end } = await runAuto(t, '500');
  assert.deepEqual(end.outcome, { type: 'success' }, JSON.stringify(end));
  const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => e.value);
  assert.deepEqual(errs.map((v) => [v.stage, v.code, v.retryable, v.attempt]), [['analyst', 'server_error', true, 1]]);
  assertPlainWords(errs[0].message);
  assert.equal(fake.requestsFor(t).length, 6);
  const { session } = await finalChecks(worker, id, c);
  assert.equal(session.state.agents.analyst.attempts, 2);
  await c.close();
});

test('retries exhausted: 4 attempts, then RUN_ERROR retries_exhausted in plain words; retry {stage} recovers', async () => {
  const t = tag('exhaust');
  fake.setScenario(t, [{ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }, { ok: true }]);
  const { id, client: c, end } = await runAuto(t, 'exhausted', 90000);
  assert.equal(end.type, 'RUN_ERROR', JSON.stringify(end));
  assert.equal(end.code, 'retries_exhausted');
  assertPlainWords(end.message, 'RUN_ERROR.message');
  // What happens next must be true: no automatic retry is coming after this.
  assert.doesNotMatch(end.message, /will (wait and )?(try|retry) again|retrying (soon|shortly|in)/i, `RUN_ERROR promises an automatic retry that will not happen: ${end.message}`);
  const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => e.value);
  assert.deepEqual(errs.map((v) => v.attempt), [1, 2, 3, 4]);
  assert.ok(errs.slice(0, 3).every((v) => v.retryable && typeof v.nextRetryAt === 'number'), JSON.stringify(errs));
  assert.equal(errs[3].nextRetryAt, null, 'no retry after the last attempt');
  await sleep(1500);
  assert.equal(fake.requestsFor(t).length, 4, 'exactly 4 attempts');
  let { session } = await finalChecks(worker, id, c);
  assert.equal(session.state.run.status, 'failed');
  assert.equal(session.state.run.error.code, 'retries_exhausted');
  assert.equal(session.state.agents.analyst.status, 'failed');
  assert.equal(session.state.agents.analyst.attempts, 4);
  assert.equal(typeof session.state.agents.analyst.lastError?.code, 'string');

  await mustReject(c, { type: 'retry', stage: 'architect' }, 'invalid_state');
  const from = c.transcript.length;
  await mustAck(c, { type: 'retry', stage: 'analyst' });
  const rs = await c.waitFor((e) => e.type === 'RUN_STARTED', 10000, { from });
  assert.equal(rs.runId, 'run-2');
  const end2 = await c.waitFor(isEnd, 60000, { from });
  assert.equal(end2.type, 'RUN_FINISHED', JSON.stringify(end2));
  assert.deepEqual(end2.outcome, { type: 'success' });
  ({ session } = await finalChecks(worker, id, c));
  assert.equal(session.state.run.status, 'completed');
  assert.equal(session.state.run.error, null);
  assert.equal(fake.requestsFor(t).length, 9);
  await c.close();
});

test('retries exhausted on 429s: the final message does not promise a retry that will not come; a Retry waits out the last Retry-After', async () => {
  const t = tag('exhaust429');
  const r429 = (retryAfter) => ({ status: 429, retryAfter });
  fake.setScenario(t, [r429(1), r429(1), r429(1), r429(4), { ok: true }]);
  const { id, client: c, end } = await runAuto(t, 'exhausted-429', 90000);
  assert.equal(end.type, 'RUN_ERROR', JSON.stringify(end));
  assert.equal(end.code, 'retries_exhausted');
  assertPlainWords(end.message, 'RUN_ERROR.message');
  assert.doesNotMatch(end.message, /will (wait and )?(try|retry) again|retrying (soon|shortly|in)/i, `RUN_ERROR promises an automatic retry that will not happen: ${end.message}`);
  const { session } = await finalChecks(worker, id, c);
  assert.doesNotMatch(session.state.run.error.message, /will (wait and )?(try|retry) again/i, `run.error: ${session.state.run.error.message}`);
  assert.equal(fake.requestsFor(t).length, 4);

  // The user presses Retry at once: the provider asked for 4 s, so BotArmy waits, says so,
  // and then calls by itself.
  const lastAnswerAt = fake.requestsFor(t)[3].endedAt;
  const from = c.transcript.length;
  await mustAck(c, { type: 'retry', stage: 'analyst' });
  const queued = await c.waitFor((e) => e.type === 'CUSTOM' && e.name === 'agent_queued', 5000, { from });
  assert.equal(queued.value.reason, 'provider_retry_after');
  assert.equal(queued.value.stage, 'analyst');
  assert.ok(queued.value.nextRetryAt >= lastAnswerAt + 3500, `waits for Retry-After: ${queued.value.nextRetryAt - lastAnswerAt} ms`);
  assertPlainWords(queued.value.message, 'agent_queued.message');
  const end2 = await c.waitFor(isEnd, 60000, { from });
  assert.deepEqual(end2.outcome, { type: 'success' }, JSON.stringify(end2));
  const fifth = fake.requestsFor(t)[4];
  assert.ok(fifth.time >= lastAnswerAt + 3500, `the retry reached the provider ${fifth.time - lastAnswerAt} ms after its 4 s Retry-After`);
  const after = await finalChecks(worker, id, c);
  assert.equal(after.session.state.agents.analyst.attempts, 1, 'waiting is not an attempt');
  assert.equal(fake.requestsFor(t).length, 9);
  await c.close();
});

test('401: bad_key, no retry, the key never shown or logged', async () => {
  const t = tag('r401');
  fake.setScenario(t, [{ status: 401 }]);
  const mark = worker.logs().length;
  const { id, client: c, end } = await runAuto(t, '401');
  assert.equal(end.type, 'RUN_ERROR', JSON.stringify(end));
  assert.equal(end.code, 'bad_key');
  assertPlainWords(end.message);
  assert.match(end.message, /key/i);
  const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => e.value);
  assert.equal(errs.length, 1);
  assert.deepEqual([errs[0].code, errs[0].retryable, errs[0].nextRetryAt], ['bad_key', false, null]);
  await sleep(1500);
  assert.equal(fake.requestsFor(t).length, 1, 'a bad key is not retried');
  const { session, events } = await finalChecks(worker, id, c);
  assert.equal(session.state.run.status, 'failed');
  assert.equal(session.state.run.error.code, 'bad_key');
  assert.ok(!JSON.stringify(events).includes(KEY), 'the key appears in no event');
  assert.ok(!JSON.stringify(session).includes(KEY), 'the key appears in no state');
  assert.ok(!worker.logsSince(mark).includes(KEY), 'the key appears in no worker log line');
  await c.close();
});

for (const [name, step, codes] of [
  ['a stream cut mid-way', { cutAfter: 5 }, ['network', 'malformed_stream', 'server_error', 'timeout']],
  ['malformed SSE', { malformed: true, after: 4 }, ['malformed_stream']],
]) {
  test(`${name} is retried: the partial message is closed and marked, the retry is a new message`, async () => {
    const t = tag('broken');
    fake.setScenario(t, [step, { ok: true }]);
    const { id, client: c, end } = await runAuto(t, name);
    assert.deepEqual(end.outcome, { type: 'success' }, JSON.stringify(end));
    const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => e.value);
    assert.equal(errs.length, 1, JSON.stringify(errs));
    assert.ok(codes.includes(errs[0].code), `code ${errs[0].code} not in ${codes}`);
    assert.equal(errs[0].retryable, true);
    const [bad, good] = fake.requestsFor(t);
    const analysts = [...c.messages.values()].filter((m) => m.name === 'Analyst');
    assert.equal(analysts.length, 2, 'the retry starts a new message');
    assert.equal(analysts[0].text, bad.text, 'the partial message holds exactly what was received');
    assert.equal(analysts[0].ended, true);
    assert.equal(analysts[0].interrupted, 'retry');
    assert.equal(analysts[1].text, good.text);
    assert.equal(analysts[1].interrupted, null);
    assert.equal((await getArtifact(worker.url, id, 'analyst')).text, good.text, 'the artifact is the complete retry, never spliced');
    const { session } = await finalChecks(worker, id, c);
    assert.equal(session.state.agents.analyst.version, 1);
    assert.equal(session.state.agents.analyst.attempts, 2);
    await c.close();
  });
}

for (const [name, step, code] of [
  ['content filter', { finish: 'content_filter' }, 'content_filtered'],
  ['context too long', { status: 400, code: 'context_length_exceeded' }, 'context_too_long'],
  ['quota exhausted', { status: 429, code: 'insufficient_quota' }, 'quota_exhausted'],
]) {
  test(`${name}: ${code}, not retried, RUN_ERROR in plain words`, async () => {
    const t = tag('final');
    fake.setScenario(t, [step, { ok: true }]);
    const { id, client: c, end } = await runAuto(t, name);
    assert.equal(end.type, 'RUN_ERROR', JSON.stringify(end));
    assert.equal(end.code, code);
    assertPlainWords(end.message);
    const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => e.value);
    assert.deepEqual(errs.map((v) => [v.code, v.retryable]), [[code, false]]);
    await sleep(500);
    assert.equal(fake.requestsFor(t).length, 1);
    const { session } = await finalChecks(worker, id, c);
    assert.equal(session.state.run.status, 'failed');
    await c.close();
  });
}

test('demo mode (no key): welcome.demo, deterministic role-specific text, no provider calls', async () => {
  const before = fake.requests.length;
  const demo = await startWorker({ name: '03-demo', env: {} });
  try {
    const health = await (await fetch(`${demo.url}/api/health`)).json();
    assert.equal(health.provider, 'demo');
    const brief = 'Plan a recipe-sharing site for a cooking club';
    const run = async (label) => {
      const id = await createSession(demo.url);
      const c = new SessionClient(demo.url, id, { label });
      await c.connect();
      const { welcome } = await c.hello(0);
      assert.equal(welcome.demo, true);
      assert.equal(welcome.model, 'demo');
      await mustAck(c, { type: 'start', brief, approval: 'each_stage' });
      const end = await c.waitFor((e) => isEnd(e) && e.runId === 'run-1', 120000);
      assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
      assert.equal(end.outcome.interrupts[0].id, 'gate-analyst-1');
      return { id, c };
    };
    const [a, b] = await Promise.all([run('demo-a'), run('demo-b')]);
    assert.equal(a.c.state.demo, true);
    const ta = [...a.c.messages.values()].find((m) => m.name === 'Analyst');
    const tb = [...b.c.messages.values()].find((m) => m.name === 'Analyst');
    assert.ok(ta.text.length > 200, `demo analyst text is substantial (${ta.text.length} chars)`);
    assert.equal(ta.text, tb.text, 'demo text is deterministic for the same brief');
    const contents = ofType(a.c.transcript, 'TEXT_MESSAGE_CONTENT').filter((e) => e.messageId === ta.messageId);
    assert.ok(contents.length >= 3, `demo text is streamed (${contents.length} content events)`);
    assert.equal((await getArtifact(demo.url, a.id, 'analyst')).text, ta.text);
    // Role-specific: approve one gate and compare the architect's text.
    await mustAck(a.c, { type: 'approve', stage: 'analyst' });
    await a.c.waitFor((e) => isEnd(e) && e.runId === 'run-2', 120000);
    const arch = [...a.c.messages.values()].find((m) => m.name === 'Architect');
    assert.ok(arch && arch.text.length > 200);
    assert.notEqual(arch.text, ta.text, 'different roles produce different text');
    for (const x of [a, b]) {
      await mustAck(x.c, { type: 'cancel' });
      await x.c.waitFor((e) => e.type === 'RUN_FINISHED' && e.outcome?.type === 'cancelled', 10000);
      await finalChecks(demo, x.id, x.c);
      await x.c.close();
    }
    assert.equal(fake.requests.length, before, 'the demo worker never calls a provider');
  } finally {
    await demo.stop();
  }
});

test('restart: SIGKILL wrangler mid-stream, start it again on the same state; the run completes cleanly', async () => {
  const t = tag('restart');
  fake.setScenario(t, [{ tokens: 150, delayMs: 20 }, { ok: true }]);
  const w1 = await startWorker({ name: '03-restart', env });
  let w2;
  try {
    const id = await createSession(w1.url);
    const c = await SessionClient.open(w1.url, id, { label: 'restart' });
    await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
    await c.waitFor((e, cl) => e.type === 'TEXT_MESSAGE_CONTENT' && cl.messages.get(e.messageId)?.name === 'Analyst' && cl.messages.get(e.messageId).text.length > 60, 15000);
    const seqBefore = c.lastSeq;
    await w1.kill();
    const closed = await c.waitForClose(10000);
    assert.notEqual(closed.code, 1000, 'the socket died with the process');
    await fake.waitForRequests(() => fake.requestsFor(t)[0].aborted, 5000).catch(() => {});
    assert.equal(fake.requestsFor(t)[0].outcome, 'aborted', 'the in-flight provider request died with the process');

    w2 = await startWorker({ name: '03-restart-2', env, persistDir: w1.persistDir, port: w1.port });
    const { welcome } = await c.reconnect();
    assertRejoined(welcome, seqBefore, 'restart');
    const end = await c.waitForRunEnd(60000);
    assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
    assert.deepEqual(end.outcome, { type: 'success' });

    const { events, session } = await finalChecks(w2, id, c);
    const analysts = [...messagesOf(events).values()].filter((m) => m.name === 'Analyst');
    assert.equal(analysts.length, 2, 'the interrupted analyst message and its rerun');
    assert.equal(analysts[0].ended, true, 'the interrupted message is closed');
    assert.equal(analysts[0].interrupted, 'restart', 'and marked message_interrupted reason restart');
    assert.ok(fake.requestsFor(t)[0].text.startsWith(analysts[0].text), 'the interrupted text is a prefix of what the provider sent');
    const reqs = fake.requestsFor(t);
    assert.equal(analysts[1].text, reqs[1].text, 'the rerun message is complete');
    assert.equal(reqs.filter((r) => r.outcome === 'completed').length, 5);
    assert.equal((await getArtifact(w2.url, id, 'analyst')).text, analysts[1].text);
    assert.equal(session.state.run.status, 'completed');
    // A client joining now sees the same clean history.
    const late = await SessionClient.open(w2.url, id, { label: 'after-restart' });
    await finalChecks(w2, id, [c, late]);
    await late.close();
    await c.close();
  } finally {
    await w1.kill().catch(() => {});
    await w2?.stop();
  }
});
