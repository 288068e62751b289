// AG-UI over HTTP (POST /api/sessions/{id}/agui, RunAgentInput in, text/event-stream out) with
// the real @ag-ui/client HttpAgent against `wrangler dev` and the demo provider: runs to a gate,
// resume answers (approve, reject with feedback, cancel), a full each_stage run, a dropped
// stream resumed by id, one log for the WebSocket and the HTTP client, and bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HttpAgent } from '@ag-ui/client';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, createSession, fetchEvents } from '../support/client.mjs';
import { verifyStream, checkSchemas, checkVerifier } from '../support/agui.mjs';
import { STAGES, finalChecks, assertSameEvents, sleep } from '../support/e2e.mjs';
import { ResumableAgent } from '../support/resumable-agent.mjs';
import { parseSse } from '../support/sse.mjs';

process.env.SUPPRESS_TRANSFORMATION_WARNINGS ||= '';
const ALLOWED = 'https://agui.example';
let worker;

before(async () => {
  worker = await startWorker({ name: '08-agui-http', env: { DEMO_TOKEN_INTERVAL_MS: '2', ALLOWED_ORIGINS: ALLOWED } });
});
after(async () => {
  await worker?.stop();
});

const aguiUrl = (id) => `${worker.url}/api/sessions/${id}/agui`;

/** The SSE events as logged events again: data + seq from the id. */
const asLogged = (frames) => frames.filter((f) => f.data).map((f) => ({ seq: f.id, ...f.data }));

/** An HttpAgent whose fetch also keeps each raw SSE body (to read the ids). */
function agentFor(id) {
  const raw = [];
  const agent = new HttpAgent({
    url: aguiUrl(id),
    threadId: id,
    fetch: async (url, init) => {
      const res = await fetch(url, init);
      const copy = res.clone();
      raw.push(copy.text());
      return res;
    },
  });
  return { agent, raw };
}

/** One runAgent call; returns {events (as the client applied them), frames (raw SSE), result}. */
async function run(agent, raw, params = {}) {
  const events = [];
  const before = raw.length;
  const result = await agent.runAgent(params, { onEvent: ({ event }) => void events.push(event) });
  const frames = parseSse(await raw[before]);
  return { events, frames, result };
}

function userMessage(agent, text) {
  // The session holds the history; a client sends only its new message (bodies ≤ 64 KiB).
  agent.setMessages([{ id: `u-${Math.random().toString(36).slice(2)}`, role: 'user', content: text }]);
}

const lastOf = (r) => r.events[r.events.length - 1];
const interruptOf = (r) => lastOf(r).outcome.interrupts[0];

test('HttpAgent drives a whole each_stage pipeline: start, approve, reject with feedback, approve to success; one log with a WebSocket client', async () => {
  const id = await createSession(worker.url);
  const ws = await SessionClient.open(worker.url, id, { label: 'ws' });
  const { agent, raw } = agentFor(id);
  userMessage(agent, 'Build a shared shopping list app for families');
  const runs = [];

  let r = await run(agent, raw, { forwardedProps: { approval: 'each_stage' } });
  runs.push(r);
  assert.equal(r.events[0].type, 'RUN_STARTED');
  assert.equal(r.events[0].threadId, id);
  assert.equal(lastOf(r).type, 'RUN_FINISHED');
  // The run's usage in AG-UI 1.0's form: the analyst's answer, counted like the card counts it.
  const usage = lastOf(r).usage;
  assert.equal(usage.length, 1);
  assert.ok(usage[0].inputTokens > 0 && usage[0].outputTokens > 0, JSON.stringify(usage));
  assert.equal(usage[0].totalTokens, usage[0].inputTokens + usage[0].outputTokens);
  assert.equal(typeof usage[0].model, 'string');
  let gate = interruptOf(r);
  assert.equal(gate.id, 'gate-analyst-1');
  assert.equal(gate.reason, 'approval');
  assert.equal(gate.responseSchema.type, 'object');
  assert.deepEqual(gate.responseSchema.properties.decision.enum, ['approve', 'reject']);
  assert.deepEqual(agent.pendingInterrupts.map((i) => i.id), ['gate-analyst-1']);

  // Approve the analyst.
  agent.setMessages([]);
  r = await run(agent, raw, { resume: [{ interruptId: gate.id, status: 'resolved', payload: { decision: 'approve' } }] });
  runs.push(r);
  gate = interruptOf(r);
  assert.equal(gate.id, 'gate-architect-1');

  // Reject the architect with feedback: the architect reruns (version 2).
  r = await run(agent, raw, { resume: [{ interruptId: gate.id, status: 'resolved', payload: { decision: 'reject', feedback: 'Add an offline sync section.' } }] });
  runs.push(r);
  const fb = r.events.find((e) => e.type === 'TEXT_MESSAGE_CONTENT' && e.delta === 'Add an offline sync section.');
  assert.ok(fb, 'the feedback is logged as a user message');
  assert.ok(r.events.some((e) => e.type === 'STEP_STARTED' && e.stepName === 'architect'));
  gate = interruptOf(r);
  assert.equal(gate.id, 'gate-architect-2');

  // Approve to the end.
  for (const stage of ['architect', 'developer', 'tester', 'deployer']) {
    agent.setMessages([]);
    r = await run(agent, raw, { resume: [{ interruptId: gate.id, status: 'resolved' }] });
    runs.push(r);
    if (stage !== 'deployer') {
      gate = interruptOf(r);
      assert.equal(gate.id, `gate-${STAGES[STAGES.indexOf(stage) + 1]}-1`);
    }
  }
  assert.deepEqual(lastOf(r).outcome, { type: 'success' });
  assert.deepEqual(agent.pendingInterrupts, []);

  // Every run's SSE, concatenated, is the whole log: the same events, ids = seq.
  const logged = await fetchEvents(worker.url, id, 0);
  const http = runs.flatMap((x) => asLogged(x.frames));
  assertSameEvents(http, logged, 'HTTP streams vs GET /events');
  await verifyStream(http, { threadId: id, complete: true, label: 'HTTP streams' });
  // What the client applied passed its own verifier and the core schemas.
  const applied = runs.flatMap((x) => x.events);
  checkSchemas(applied, 'applied');
  await checkVerifier(applied, 'applied');
  assert.equal(applied.length, logged.length);
  // The WebSocket client saw the same log live.
  await ws.waitFor((e) => e.seq === logged.length, 10000);
  await finalChecks(worker, id, ws);
  ws.close?.();
});

test('cancel through resume ends the thread with RUN_FINISHED cancelled', async () => {
  const id = await createSession(worker.url);
  const { agent, raw } = agentFor(id);
  userMessage(agent, 'A small recipe site');
  const r1 = await run(agent, raw, {});
  const gate = interruptOf(r1);
  const r2 = await run(agent, raw, { resume: [{ interruptId: gate.id, status: 'cancelled' }] });
  assert.deepEqual(lastOf(r2).outcome, { type: 'cancelled' });
  assert.equal(r2.events[0].type, 'RUN_STARTED');
  const logged = await fetchEvents(worker.url, id, 0);
  assertSameEvents([...asLogged(r1.frames), ...asLogged(r2.frames)], logged, 'HTTP vs log');
  await verifyStream(logged, { threadId: id, complete: true });
});

/** POST a RunAgentInput with plain fetch; returns the Response. */
function post(id, body, headers = {}) {
  return fetch(aguiUrl(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Read an SSE response until `stop(frames)` is true, then drop the connection. */
async function readUntil(res, stop) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
    const complete = text.slice(0, text.lastIndexOf('\n\n') + 2);
    if (stop(parseSse(complete))) {
      await reader.cancel();
      return parseSse(complete);
    }
  }
  return parseSse(text);
}

test('a dropped stream resumes from its last id: GET ?after and POST with Last-Event-ID, exactly, against an uninterrupted WebSocket client', async () => {
  const id = await createSession(worker.url);
  const ws = await SessionClient.open(worker.url, id, { label: 'ws-uninterrupted' });
  const input = { threadId: id, runId: 'run-drop-1', messages: [{ id: 'u1', role: 'user', content: 'An inventory tracker for a bakery' }], forwardedProps: { approval: 'auto' } };
  const res = await post(id, input);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const first = await readUntil(res, (f) => f.filter((x) => x.data).length >= 40);
  const lastId = first.filter((x) => x.data).at(-1).id;

  // Resume once mid-run with GET ?after=, drop again, then POST the same runId with Last-Event-ID.
  const res2 = await fetch(`${aguiUrl(id)}?after=${lastId}`, { headers: { accept: 'text/event-stream' } });
  assert.equal(res2.status, 200);
  const second = await readUntil(res2, (f) => f.filter((x) => x.data).length >= 40);
  const lastId2 = second.filter((x) => x.data).at(-1).id;
  const res3 = await post(id, input, { 'last-event-id': String(lastId2) });
  assert.equal(res3.status, 200);
  const third = parseSse(await res3.text());

  const got = [...first, ...second, ...third].filter((x) => x.data);
  const ids = got.map((x) => x.id);
  ids.forEach((s, i) => assert.equal(s, i + 1, `no gap, no duplicate at ${i}`));
  assert.equal(got.at(-1).data.type, 'RUN_FINISHED');
  assert.deepEqual(got.at(-1).data.outcome, { type: 'success' });
  await ws.waitFor((e) => e.seq === got.length, 20000);
  assertSameEvents(asLogged(got), ws.transcript, 'resumed HTTP stream vs uninterrupted WebSocket');
  await verifyStream(asLogged(got), { threadId: id, complete: true, label: 'resumed HTTP stream' });
  await finalChecks(worker, id, ws);

  // Nothing in progress and nothing after the end: the stream ends at once.
  const res4 = await fetch(`${aguiUrl(id)}?after=${got.length}`);
  assert.equal(res4.status, 200);
  assert.deepEqual(parseSse(await res4.text()).filter((f) => f.data), []);
  ws.close?.();
});

test('an interrupt answered twice is applied once: the same runId replays its stream, a new runId is refused', async () => {
  const id = await createSession(worker.url);
  const start = { threadId: id, runId: 'r-start', messages: [{ id: 'u1', role: 'user', content: 'A bike repair booking app' }] };
  const s1 = parseSse(await (await post(id, start)).text());
  const gate = s1.at(-1).data.outcome.interrupts[0];
  const answer = { threadId: id, runId: 'r-approve', messages: [], resume: [{ interruptId: gate.id, status: 'resolved' }] };
  const a1 = parseSse(await (await post(id, answer)).text());
  const a2 = parseSse(await (await post(id, answer)).text());
  assert.deepEqual(a2, a1, 'a repeated runId streams the same run again');
  const again = await post(id, { ...answer, runId: 'r-approve-2' });
  assert.equal(again.status, 409);
  assert.equal((await again.json()).error.code, 'unknown_interrupt');
  const logged = await fetchEvents(worker.url, id, 0);
  assert.equal(logged.filter((e) => e.type === 'RUN_STARTED').length, 2, 'applied once');
  assert.equal(logged.length, a1.at(-1).id);
});

test('bad input gets a clear error and changes nothing', async () => {
  const id = await createSession(worker.url);
  const start = { threadId: id, runId: 'r1', messages: [{ id: 'u1', role: 'user', content: 'A plant watering reminder' }] };
  const s = parseSse(await (await post(id, start)).text());
  const gate = s.at(-1).data.outcome.interrupts[0];
  const lastSeq = s.at(-1).id;
  const cases = [
    ['wrong threadId', { ...start, runId: 'x1', threadId: 'another-thread' }, 400, 'thread_mismatch'],
    ['unknown interrupt id', { ...start, runId: 'x2', resume: [{ interruptId: 'gate-tester-7', status: 'resolved' }] }, 409, 'unknown_interrupt'],
    ['partial resume (open interrupt not addressed)', { ...start, runId: 'x3', resume: [] }, 409, 'interrupts_unanswered'],
    ['no resume at an open gate', { ...start, runId: 'x4' }, 409, 'interrupts_unanswered'],
    ['bad resume status', { ...start, runId: 'x5', resume: [{ interruptId: gate.id, status: 'maybe' }] }, 400, 'invalid_field'],
    ['empty feedback', { ...start, runId: 'x6', resume: [{ interruptId: gate.id, status: 'resolved', payload: { decision: 'reject', feedback: '   ' } }] }, 400, 'feedback_empty'],
    ['malformed JSON', '{"threadId": ', 400, 'invalid_json'],
    ['not an object', '[1,2]', 400, 'not_an_object'],
    ['no runId', { threadId: id, messages: [] }, 400, 'missing_field'],
    ['oversize body', { ...start, runId: 'x7', pad: 'x'.repeat(70 * 1024) }, 413, 'body_too_large'],
  ];
  for (const [what, body, status, code] of cases) {
    const res = await post(id, body);
    const text = await res.text();
    assert.equal(res.status, status, `${what}: ${text}`);
    const err = JSON.parse(text).error;
    assert.equal(err.code, code, `${what}: ${text}`);
    assert.ok(err.message.length > 10, `${what}: a sentence`);
  }
  // A start while the gate waits is the session's call: invalid_state, as on the WebSocket.
  const unknown = await post('0123456789abcdef0123456789abcdef', { ...start, threadId: '0123456789abcdef0123456789abcdef' });
  assert.equal(unknown.status, 404);
  const logged = await fetchEvents(worker.url, id, 0);
  assert.equal(logged.length, lastSeq, 'nothing changed');
  // A GET needs a place to resume from, inside the log.
  assert.equal((await fetch(aguiUrl(id))).status, 400);
  assert.equal((await fetch(`${aguiUrl(id)}?after=${lastSeq + 5}`)).status, 400);
  assert.equal((await fetch(aguiUrl(id), { method: 'PUT' })).status, 405);
});

test('access token: the AG-UI endpoint needs the Bearer header like every API call; HttpAgent sends it and runs', async () => {
  const TOKEN = 'agui-acc3ss-t0ken';
  const w = await startWorker({ name: '08-agui-token', env: { DEMO_TOKEN_INTERVAL_MS: '2', BOTARMY_ACCESS_TOKEN: TOKEN } });
  try {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const id = await createSession(w.url, { headers: auth });
    const url = `${w.url}/api/sessions/${id}/agui`;
    const body = JSON.stringify({ threadId: id, runId: 't1', messages: [{ id: 'u1', role: 'user', content: 'A recipe box' }] });
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }]) {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal((await res.json()).error.code, 'unauthorized');
      assert.equal((await fetch(`${url}?after=0`, { headers })).status, 401, `GET ${JSON.stringify(headers)}`);
    }
    assert.equal((await fetchEvents(w.url, id, 0, { headers: auth })).length, 0, 'nothing ran without the token');
    const agent = new HttpAgent({ url, threadId: id, headers: auth });
    userMessage(agent, 'A recipe box for a family');
    const events = [];
    await agent.runAgent({}, { onEvent: ({ event }) => void events.push(event) });
    assert.equal(events.at(-1).type, 'RUN_FINISHED');
    assert.equal(events.at(-1).outcome.interrupts[0].id, 'gate-analyst-1');
    checkSchemas(events, 'token mode');
    const resumed = await fetch(`${url}?after=0`, { headers: auth });
    assert.equal(resumed.status, 200);
    assert.equal(parseSse(await resumed.text()).filter((f) => f.data).length, events.length);
  } finally {
    await w.stop();
  }
});

test('CORS and origin: only ALLOWED_ORIGINS get CORS headers; other origins are refused, never *', async () => {
  const id = await createSession(worker.url);
  const pre = await fetch(aguiUrl(id), { method: 'OPTIONS', headers: { origin: ALLOWED, 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), ALLOWED);
  assert.match(pre.headers.get('access-control-allow-headers'), /authorization/);
  const bad = await fetch(aguiUrl(id), { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(bad.status, 403);
  assert.equal(bad.headers.get('access-control-allow-origin'), null);
  const start = { threadId: id, runId: 'c1', messages: [{ id: 'u1', role: 'user', content: 'A tiny blog' }] };
  const refused = await post(id, start, { origin: 'https://evil.example' });
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).error.code, 'origin_not_allowed');
  const ok = await post(id, start, { origin: ALLOWED });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED);
  await ok.text();
});

test('ResumableAgent (README): abort mid-run, connectAgent() finishes the run; its messages equal the log', async () => {
  const id = await createSession(worker.url);
  const agent = new ResumableAgent({ url: aguiUrl(id), threadId: id });
  agent.setMessages([{ id: 'u1', role: 'user', content: 'A volunteer rota for a food bank' }]);
  let seen = 0;
  const first = agent.runAgent({ forwardedProps: { approval: 'auto' } }, {
    onEvent: ({ event }) => {
      if (++seen === 30) agent.abortRun();
    },
  });
  await first.catch(() => {});
  assert.ok(agent.lastId >= 20, `stopped mid-run at id ${agent.lastId}`);
  const events = [];
  await agent.connectAgent({}, { onEvent: ({ event }) => void events.push(event) });
  assert.equal(events[0].type, 'RUN_STARTED');
  assert.deepEqual(events.at(-1).outcome, { type: 'success' });
  await checkVerifier(events, 'connectAgent');
  const logged = await fetchEvents(worker.url, id, 0);
  assert.equal(agent.lastId, logged.length);
  const text = new Map();
  for (const e of logged) {
    if (e.type === 'TEXT_MESSAGE_START') text.set(e.messageId, '');
    if (e.type === 'TEXT_MESSAGE_CONTENT') text.set(e.messageId, text.get(e.messageId) + e.delta);
  }
  for (const [mid, t] of text) {
    const m = agent.messages.find((x) => x.id === mid);
    assert.ok(m, `message ${mid} present`);
    assert.equal(m.content, t, `message ${mid} whole, not doubled`);
  }
  await sleep(0);
});
