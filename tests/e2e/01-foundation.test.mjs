// Foundation: HTTP routes, session creation, errors as JSON, the WebSocket handshake and the
// Origin check, against a real `wrangler dev` (the Worker must be built: `make build`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { startWorker, ROOT } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { SessionClient, createSession, getSession } from '../support/client.mjs';
import { STAGES } from '../support/e2e.mjs';

const ALLOWED = 'http://allowed.example:8080';
let fake;
let worker;

before(async () => {
  fake = await startFakeOpenAI();
  worker = await startWorker({
    name: '01-foundation',
    env: { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test-key-foundation', OPENAI_MODEL: 'fake-model-1', ALLOWED_ORIGINS: ALLOWED },
  });
});
after(async () => {
  await worker?.stop();
  await fake?.close();
});

async function jsonRes(res) {
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${res.url} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
  }
  return body;
}

function assertError(res, body, status, code) {
  assert.equal(res.status, status, `${res.url}: status ${res.status}, body ${JSON.stringify(body)}`);
  assert.match(res.headers.get('content-type') || '', /application\/json/);
  assert.equal(typeof body.error, 'object', `error body: ${JSON.stringify(body)}`);
  assert.equal(body.error.code, code, `error code: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length >= 10, `error message should be plain words: ${JSON.stringify(body.error.message)}`);
}

test('GET /api/health: 200 JSON with status, version, provider', async () => {
  const res = await fetch(`${worker.url}/api/health`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') || '', /application\/json/);
  const body = await jsonRes(res);
  const cargoVersion = /^version\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8'))[1];
  assert.equal(body.status, 'ok');
  assert.equal(body.version, cargoVersion);
  assert.equal(body.provider, 'openai', 'a key is configured, so the provider is openai');
  assert.ok(!JSON.stringify(body).includes('test-key-foundation'), 'health must not leak the key');
});

test('POST /api/sessions: 201 with a 32-hex id; two calls differ; GET snapshot of a fresh session', async () => {
  const a = await fetch(`${worker.url}/api/sessions`, { method: 'POST' });
  assert.equal(a.status, 201);
  assert.match(a.headers.get('content-type') || '', /application\/json/);
  const { id: id1 } = await jsonRes(a);
  const id2 = await createSession(worker.url);
  assert.match(id1, /^[0-9a-f]{32}$/);
  assert.match(id2, /^[0-9a-f]{32}$/);
  assert.notEqual(id1, id2);

  const s = await getSession(worker.url, id1);
  assert.equal(s.status, 200);
  assert.equal(s.body.id, id1);
  assert.equal(s.body.lastSeq, 0);
  const st = s.body.state;
  assert.equal(st.sessionId, id1);
  assert.equal(st.demo, false);
  assert.equal(st.model, 'fake-model-1');
  assert.equal(st.run.status, 'idle');
  assert.equal(st.run.tokensUsed, 0);
  assert.equal(st.run.tokenBudget, 200000);
  assert.equal(st.gate, null);
  assert.deepEqual(Object.keys(st.agents).sort(), [...STAGES].sort());
  for (const s of STAGES) {
    assert.equal(st.agents[s].status, 'idle', `${s} idle`);
    assert.equal(st.agents[s].version, 0);
    assert.equal(st.agents[s].attempts, 0);
  }
});

test('unknown session ids are 404 JSON (valid-looking but never created, and malformed)', async () => {
  const never = crypto.randomBytes(16).toString('hex');
  let res = await fetch(`${worker.url}/api/sessions/${never}`);
  let body = await jsonRes(res);
  assert.equal(res.status, 404, `never-created id: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error?.code, 'string');
  for (const bad of ['NOTHEX', never.toUpperCase(), never.slice(0, 31), `${never}0`, '../etc']) {
    res = await fetch(`${worker.url}/api/sessions/${encodeURIComponent(bad)}`);
    body = await jsonRes(res);
    assert.equal(res.status, 404, `id ${bad}: ${JSON.stringify(body)}`);
  }
  res = await fetch(`${worker.url}/api/sessions/${never}/events?after=0`);
  assert.equal(res.status, 404);
  res = await fetch(`${worker.url}/api/sessions/${never}/artifacts/analyst`);
  assert.equal(res.status, 404);
});

test('GET the ws path without upgrade: 426 JSON with a clear message', async () => {
  const id = await createSession(worker.url);
  const res = await fetch(`${worker.url}/api/sessions/${id}/ws`);
  const body = await jsonRes(res);
  assertError(res, body, 426, 'upgrade_required');
  assert.match(body.error.message, /websocket/i);
});

test('unknown route 404 not_found, wrong method 405 method_not_allowed, both JSON', async () => {
  let res = await fetch(`${worker.url}/api/does-not-exist`);
  assertError(res, await jsonRes(res), 404, 'not_found');
  res = await fetch(`${worker.url}/api/health`, { method: 'DELETE' });
  assertError(res, await jsonRes(res), 405, 'method_not_allowed');
  res = await fetch(`${worker.url}/api/sessions`, { method: 'PUT' });
  assertError(res, await jsonRes(res), 405, 'method_not_allowed');
  // GET /api/sessions is the owner's list: without an owner it says what is missing.
  res = await fetch(`${worker.url}/api/sessions`);
  assertError(res, await jsonRes(res), 400, 'owner_required');
});

test('artifact of a stage with none yet: 404 JSON; unknown stage: 404', async () => {
  const id = await createSession(worker.url);
  let res = await fetch(`${worker.url}/api/sessions/${id}/artifacts/analyst`);
  const body = await jsonRes(res);
  assert.equal(res.status, 404, JSON.stringify(body));
  res = await fetch(`${worker.url}/api/sessions/${id}/artifacts/janitor`);
  assert.equal(res.status, 404);
});

test('WebSocket round trip: hello -> welcome + caught_up (connection frames carry no seq)', async () => {
  const id = await createSession(worker.url);
  const c = new SessionClient(worker.url, id, { label: 'ws' });
  await c.connect();
  const { welcome, caughtUp } = await c.hello(0);
  assert.equal(welcome.sessionId, id);
  assert.equal(welcome.demo, false);
  assert.equal(welcome.model, 'fake-model-1');
  assert.equal(welcome.lastSeq, 0);
  assert.ok(['replay', 'snapshot'].includes(welcome.mode), `mode ${welcome.mode}`);
  assert.equal(caughtUp.lastSeq, 0);
  for (const { frame } of c.control) {
    assert.equal(frame.seq, undefined, `connection frame must not carry seq: ${JSON.stringify(frame)}`);
  }
  assert.equal(c.transcript.length, 0);
  // JSON ping -> pong {t}; plain "ping" -> "pong" (runtime auto-response)
  const from = c.control.length;
  c.sendRaw(JSON.stringify({ type: 'ping' }));
  const pong = await c.waitForControl((f) => f.type === 'CUSTOM' && f.name === 'pong', 5000, { from });
  assert.equal(typeof pong.value.t, 'number');
  const from2 = c.control.length;
  c.sendRaw('ping');
  const plain = await c.waitForControl((f) => f.raw === 'pong', 5000, { from: from2 });
  assert.equal(plain.raw, 'pong');
  await c.close();
});

test('a WebSocket to a session that was never created is refused 404', async () => {
  const c = new SessionClient(worker.url, crypto.randomBytes(16).toString('hex'));
  const err = await c.connect().then(
    () => null,
    (e) => e,
  );
  assert.equal(err?.status, 404, `upgrade to an unknown session: ${err?.message}`);
});

test('Origin: a foreign Origin is refused with 403 before the upgrade; own and allowlisted accepted', async () => {
  const id = await createSession(worker.url);
  const bad = new SessionClient(worker.url, id, { origin: 'http://evil.example' });
  const err = await bad.connect().then(
    () => null,
    (e) => e,
  );
  assert.ok(err, 'the upgrade with a foreign Origin must fail');
  assert.equal(err.status, 403, `status ${err.status} body ${err.body}`);
  assert.equal(err.json?.error?.code, 'origin_not_allowed', err.body);

  const own = await SessionClient.open(worker.url, id, { label: 'own-origin' });
  await own.close();
  const listed = await SessionClient.open(worker.url, id, { origin: ALLOWED, label: 'allowlisted' });
  await listed.close();

  // POST with a foreign Origin is refused too; with none or the own one it is accepted.
  let res = await fetch(`${worker.url}/api/sessions`, { method: 'POST', headers: { Origin: 'http://evil.example' } });
  const body = await jsonRes(res);
  assertError(res, body, 403, 'origin_not_allowed');
  res = await fetch(`${worker.url}/api/sessions`, { method: 'POST', headers: { Origin: worker.url } });
  assert.equal(res.status, 201);
  res = await fetch(`${worker.url}/api/sessions`, { method: 'POST', headers: { Origin: ALLOWED } });
  assert.equal(res.status, 201);
  // No CORS headers (same origin by design)
  assert.equal(res.headers.get('access-control-allow-origin'), null);
});

test('a session caps its sockets at 64: the 65th upgrade is refused 429 too_many_connections', async () => {
  const id = await createSession(worker.url);
  const clients = [];
  try {
    for (let i = 0; i < 64; i++) {
      const c = new SessionClient(worker.url, id, { label: `tab${i}` });
      await c.connect();
      clients.push(c);
    }
    const extra = new SessionClient(worker.url, id, { label: 'tab65' });
    const err = await extra.connect().then(
      () => null,
      (e) => e,
    );
    assert.ok(err, 'the 65th socket must be refused');
    assert.equal(err.status, 429, `status ${err.status} body ${err.body}`);
    assert.equal(err.json?.error?.code, 'too_many_connections', err.body);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  // Closing frees the slots (allow the server a moment to process the closes).
  let lastErr;
  for (let i = 0; i < 20; i++) {
    try {
      const again = await SessionClient.open(worker.url, id, { label: 'after-close' });
      await again.close();
      lastErr = null;
      break;
    } catch (e) {
      lastErr = e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  assert.equal(lastErr, null, `after closing all sockets a new one must be accepted: ${lastErr?.message}`);
});
