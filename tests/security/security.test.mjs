// Access control and hardening, against a real `wrangler dev` with BOTARMY_ACCESS_TOKEN,
// ALLOWED_ORIGINS and a known OPENAI_API_KEY:
//   - the access token: required to create, read and join sessions; Bearer header or the
//     `botarmy.token.<token>` WebSocket subprotocol; never accepted from (or shown in) a URL;
//   - session ids: 32 lowercase hex, 128-bit random, distinct; unknown ids are 404 everywhere;
//   - the Origin allowlist on POST and WebSocket upgrades;
//   - no wildcard (or reflected) CORS on any API response, asset or preflight;
//   - security headers on the UI: strict CSP, nosniff, Referrer-Policy (frontend/public/_headers);
//   - logs never contain the API key or the access token, even when the provider echoes the key;
//   - socket limits: a frame over 64 KiB closes 1009, flooding warns then closes 1008, the 65th
//     socket of a session is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { startWorker, workerSnapshot, ROOT } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { SessionClient } from '../support/client.mjs';
import { verifyStream } from '../support/agui.mjs';
import { canon } from '../support/json-patch.mjs';
import { tag, briefFor, assertClean, assertSameEvents, ofType, mustAck, sleep, assertPlainWords, STAGES } from '../support/e2e.mjs';

const SECRET_PART = crypto.randomBytes(12).toString('hex');
const KEY = `sk-test-SECRET-${SECRET_PART}`;
const TOKEN = `tok${crypto.randomBytes(16).toString('hex')}`;
const ALLOWED = 'https://allowed.example';
const PROTOCOLS = ['botarmy.v1', `botarmy.token.${TOKEN}`];
const AUTH = { Authorization: `Bearer ${TOKEN}` };

let fake;
let worker;
let cwd; // the private copy of the build the worker runs from

before(async () => {
  cwd = workerSnapshot();
  fake = await startFakeOpenAI({ msPerToken: 1 });
  worker = await startWorker({
    name: 'security',
    cwd,
    env: {
      OPENAI_BASE_URL: fake.url,
      OPENAI_API_KEY: KEY,
      OPENAI_MODEL: 'fake-security',
      BOTARMY_ACCESS_TOKEN: TOKEN,
      ALLOWED_ORIGINS: ALLOWED,
      LLM_BACKOFF_BASE_MS: '50',
      LLM_BACKOFF_CAP_MS: '500',
      LLM_REQUESTS_PER_MIN: '100000',
      LLM_TOKENS_PER_MIN: '100000000',
      LLM_MAX_CONCURRENT: '1000',
    },
  });
});
after(async () => {
  await worker?.stop();
  await fake?.close();
});

// ---- helpers ----

/** fetch → {status, headers, text, json}. */
async function http(p, { method = 'GET', headers = {}, body } = {}) {
  const res = await fetch(`${worker.url}${p}`, { method, headers, body, redirect: 'manual' });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json, path: p, method };
}

function assertError(r, status, code) {
  assert.equal(r.status, status, `${r.method} ${r.path}: expected ${status}, got ${r.status} ${r.text.slice(0, 200)}`);
  assert.equal(r.json?.error?.code, code, `${r.method} ${r.path}: error code, body ${r.text.slice(0, 200)}`);
  assert.equal(typeof r.json.error.message, 'string');
}

async function createSession(headers = AUTH) {
  const r = await http('/api/sessions', { method: 'POST', headers });
  assert.equal(r.status, 201, `POST /api/sessions: ${r.status} ${r.text}`);
  return r.json.id;
}

/** Open a WebSocket; resolves {ws} on open, or {status, body, json} when the upgrade is refused. */
function upgrade(id, { protocols, headers = {}, origin = worker.url, query = '' } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (origin) h.Origin = origin;
    const ws = new WebSocket(`${worker.url.replace(/^http/, 'ws')}/api/sessions/${id}/ws${query}`, protocols, { headers: h, perMessageDeflate: false });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let json = null;
        try {
          json = JSON.parse(body);
        } catch {
          /* not JSON */
        }
        ws.terminate();
        resolve({ status: res.statusCode, body, json, headers: res.headers });
      });
    });
    ws.once('error', (e) => reject(e));
  });
}

/**
 * finalChecks (tests/support/e2e.mjs) with the access token: the client's transcript equals
 * GET /events, passes the AG-UI verifier, and its state equals GET /api/sessions/{id}.
 */
async function authFinalChecks(id, c) {
  const events = [];
  for (let after = 0; ; ) {
    const r = await http(`/api/sessions/${id}/events?after=${after}&limit=1000`, { headers: AUTH });
    assert.equal(r.status, 200, r.text);
    events.push(...r.json.events);
    if (!r.json.more) break;
    after = events.at(-1).seq;
  }
  await verifyStream(events, { threadId: id, complete: true, label: `GET /events of ${id}` });
  const snap = await http(`/api/sessions/${id}`, { headers: AUTH });
  assert.equal(snap.status, 200);
  assert.equal(snap.json.lastSeq, events.length);
  assertClean(c);
  assertSameEvents(c.transcript, events, `${c.label} transcript vs GET /events`);
  assert.deepEqual(canon(c.state), canon(snap.json.state), `${c.label}: state from deltas = GET state`);
  return { events, session: snap.json };
}

const open = (id, opts = {}) => SessionClient.open(worker.url, id, { protocols: PROTOCOLS, ...opts });
const isEnd = (e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR';

// ---- access token ----

test('POST /api/sessions: 401 without or with a wrong token, 201 with Authorization: Bearer <token>', async () => {
  assertError(await http('/api/sessions', { method: 'POST' }), 401, 'unauthorized');
  for (const h of [
    { Authorization: `Bearer wrong-${TOKEN}` },
    { Authorization: `Bearer ${TOKEN.slice(0, -1)}` }, // a prefix
    { Authorization: `Bearer ${TOKEN}x` }, // longer
    { Authorization: `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}` },
    { Authorization: TOKEN }, // no scheme
    { Authorization: 'Bearer ' },
    { 'Sec-WebSocket-Protocol': `botarmy.token.wrong` },
  ]) {
    const r = await http('/api/sessions', { method: 'POST', headers: h });
    assertError(r, 401, 'unauthorized');
    assert.ok(!r.text.includes(TOKEN), 'a 401 never echoes the token');
  }
  // The token is never taken from the URL (URLs end up in logs).
  for (const q of [`?token=${TOKEN}`, `?access_token=${TOKEN}`, `?botarmy_token=${TOKEN}`]) {
    assertError(await http(`/api/sessions${q}`, { method: 'POST' }), 401, 'unauthorized');
  }
  const r = await http('/api/sessions', { method: 'POST', headers: AUTH });
  assert.equal(r.status, 201, r.text);
  assert.match(r.json.id, /^[0-9a-f]{32}$/);
  // Health stays open (probes), and the UI itself loads without the token.
  assert.equal((await http('/api/health')).status, 200);
  assert.equal((await http('/')).status, 200);
});

test('reading a session needs the token too: snapshot, events and artifacts are 401 without it', async () => {
  const id = await createSession();
  for (const p of [`/api/sessions/${id}`, `/api/sessions/${id}/events?after=0`, `/api/sessions/${id}/artifacts/analyst`, `/api/sessions/${id}/events?after=0&token=${TOKEN}`]) {
    const r = await http(p);
    assertError(r, 401, 'unauthorized');
  }
  assert.equal((await http(`/api/sessions/${id}`, { headers: AUTH })).status, 200);
  assert.equal((await http(`/api/sessions/${id}/events?after=0`, { headers: AUTH })).status, 200);
});

test('WebSocket: refused without the token, or with a wrong one, or with it in the URL; accepted with the botarmy.token subprotocol', async () => {
  const id = await createSession();
  for (const [what, opts] of [
    ['no token', {}],
    ['botarmy.v1 only', { protocols: ['botarmy.v1'] }],
    ['wrong token', { protocols: ['botarmy.v1', `botarmy.token.${TOKEN.slice(0, -2)}zz`] }],
    ['token in the query', { protocols: ['botarmy.v1'], query: `?token=${TOKEN}` }],
    ['token in the query (access_token)', { query: `?access_token=${TOKEN}` }],
  ]) {
    const r = await upgrade(id, opts);
    assert.ok(!r.ws, `${what}: the upgrade must be refused`);
    assert.equal(r.status, 401, `${what}: ${r.status} ${r.body}`);
    assert.equal(r.json?.error?.code, 'unauthorized', `${what}: ${r.body}`);
    assert.ok(!r.body.includes(TOKEN));
  }
  // Accepted: the server selects botarmy.v1 and never echoes the token subprotocol.
  const ok = await upgrade(id, { protocols: PROTOCOLS });
  assert.ok(ok.ws, `with the token subprotocol the upgrade succeeds: ${ok.status} ${ok.body}`);
  assert.equal(ok.ws.protocol, 'botarmy.v1', 'the selected subprotocol is botarmy.v1, not the token');
  ok.ws.terminate();
  // A full session over the authenticated socket.
  const c = await open(id, { label: 'token-ws' });
  const { welcome } = await c.hello(0);
  assert.equal(welcome.sessionId, id);
  await c.close();
});

// ---- session ids ----

test('session ids: 32 lowercase hex, 100 distinct, no visible structure', async () => {
  const ids = [];
  for (let i = 0; i < 100; i++) ids.push(await createSession());
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(new Set(ids).size, 100, 'all distinct');
  // Not sequential, no shared prefixes or suffixes beyond chance (8 hex chars = 32 bits).
  assert.equal(new Set(ids.map((x) => x.slice(0, 8))).size, 100, 'distinct 32-bit prefixes');
  assert.equal(new Set(ids.map((x) => x.slice(-8))).size, 100, 'distinct 32-bit suffixes');
  // Every hex digit about equally frequent over 3200 digits (expected 200 each); a loose
  // chi-square bound (df 15, p << 1e-6 beyond 60) catches counters, timestamps, low entropy.
  const counts = new Map();
  for (const ch of ids.join('')) counts.set(ch, (counts.get(ch) || 0) + 1);
  assert.equal(counts.size, 16, 'every hex digit occurs');
  const chi = [...counts.values()].reduce((s, n) => s + (n - 200) ** 2 / 200, 0);
  assert.ok(chi < 60, `hex digit distribution looks random (chi-square ${chi.toFixed(1)})`);
  // Bit balance: about half of the 12800 bits are set.
  let ones = 0;
  for (const id of ids) for (const b of Buffer.from(id, 'hex')) ones += b.toString(2).split('1').length - 1;
  assert.ok(Math.abs(ones - 6400) < 400, `bit balance ${ones}/12800`);
});

test('unknown or malformed session ids are 404 for snapshot, events, artifacts and ws, and are not created by asking', async () => {
  const known = await createSession();
  const unknown = crypto.randomBytes(16).toString('hex');
  const malformed = [known.toUpperCase(), known.slice(0, 31), `${known}0`, `${known.slice(0, 31)}g`, '..%2F..%2Fetc', '00000000000000000000000000000000x'];
  for (const id of [unknown, ...malformed]) {
    for (const p of [`/api/sessions/${id}`, `/api/sessions/${id}/events?after=0`, `/api/sessions/${id}/artifacts/analyst`]) {
      const r = await http(p, { headers: AUTH });
      assertError(r, 404, 'not_found');
    }
    const w = await upgrade(id, { protocols: PROTOCOLS });
    assert.ok(!w.ws, `ws upgrade for ${id} must be refused`);
    assert.equal(w.status, 404, `ws ${id}: ${w.status} ${w.body}`);
  }
  // Asking did not create it.
  assertError(await http(`/api/sessions/${unknown}`, { headers: AUTH }), 404, 'not_found');
  assert.equal((await http(`/api/sessions/${known}`, { headers: AUTH })).status, 200);
});

test('probing unknown session ids leaves no storage behind (no Durable Object database per guess)', async () => {
  const dir = path.join(worker.persistDir, 'v3', 'do', 'botarmy-SessionDo');
  const databases = () => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite') : []);
  await createSession(); // at least one real one, so the folder exists
  await sleep(300);
  const before = databases();
  for (let i = 0; i < 20; i++) {
    const id = crypto.randomBytes(16).toString('hex');
    assertError(await http(`/api/sessions/${id}`, { headers: AUTH }), 404, 'not_found');
    assertError(await http(`/api/sessions/${id}/events?after=0`, { headers: AUTH }), 404, 'not_found');
    const w = await upgrade(id, { protocols: PROTOCOLS });
    assert.equal(w.status, 404);
  }
  await sleep(500);
  // Local workerd (miniflare) itself records every named object it instantiates in a small
  // database holding only its own `__miniflare_do_name` table; that is the runtime's
  // bookkeeping, not ours (on Cloudflare an object that writes nothing is not stored). What
  // must not happen is BotArmy's schema being written for a guessed id: SQLite keeps each
  // table's CREATE statement as text in the file (or its WAL), so look for ours.
  const ours = /CREATE TABLE (IF NOT EXISTS )?(meta|events|messages|artifacts)\b/;
  const created = databases().filter((f) => !before.includes(f));
  const written = created.filter((f) =>
    [f, `${f}-wal`].some((name) => {
      const file = path.join(dir, name);
      return fs.existsSync(file) && ours.test(fs.readFileSync(file).toString('latin1'));
    }),
  );
  assert.equal(written.length, 0, `${written.length} of 20 guessed ids got BotArmy tables in ${path.relative(ROOT, dir)}: a 404 must not write storage, or every guess costs storage forever`);
  // The check can fail: the real session's database does hold our schema.
  const real = databases().filter((f) => before.includes(f));
  assert.ok(real.some((f) => [f, `${f}-wal`].some((name) => {
    const file = path.join(dir, name);
    return fs.existsSync(file) && ours.test(fs.readFileSync(file).toString('latin1'));
  })), 'the schema probe finds the tables of a real session');
});

// ---- origin ----

test('Origin: a foreign Origin is refused 403 on POST and on the ws upgrade (even with the token); own origin and ALLOWED_ORIGINS pass', async () => {
  const port = new URL(worker.url).port;
  const foreign = [
    'http://evil.example',
    'null',
    `http://127.0.0.1:${port}.evil.example`,
    `https://127.0.0.1:${port}`, // scheme differs
    `http://127.0.0.1:${Number(port) + 1}`, // port differs
    `http://localhost.evil.example:${port}`,
    `${ALLOWED}.evil.example`,
    'https://evil.example/https://allowed.example',
  ];
  for (const origin of foreign) {
    assertError(await http('/api/sessions', { method: 'POST', headers: { ...AUTH, Origin: origin } }), 403, 'origin_not_allowed');
  }
  const id = await createSession();
  for (const origin of foreign) {
    const r = await upgrade(id, { protocols: PROTOCOLS, origin });
    assert.ok(!r.ws, `ws with Origin ${origin} must be refused`);
    assert.equal(r.status, 403, `ws Origin ${origin}: ${r.status} ${r.body}`);
    assert.equal(r.json?.error?.code, 'origin_not_allowed');
  }
  for (const origin of [worker.url, ALLOWED, `${ALLOWED}/`]) {
    assert.equal((await http('/api/sessions', { method: 'POST', headers: { ...AUTH, Origin: origin } })).status, 201, `POST with Origin ${origin}`);
    const r = await upgrade(id, { protocols: PROTOCOLS, origin });
    assert.ok(r.ws, `ws with Origin ${origin}: ${r.status} ${r.body}`);
    r.ws.terminate();
  }
});

// ---- CORS ----

test('no wildcard or reflected CORS on any API response, asset or preflight', async () => {
  const id = await createSession();
  const asset = fs.readdirSync(path.join(cwd, 'frontend', 'dist', 'assets')).find((f) => f.endsWith('.js'));
  const reqs = [
    ['GET', '/'],
    ['GET', '/index.html'],
    ['GET', '/favicon.svg'],
    ['GET', `/assets/${asset}`],
    ['GET', '/some/deep/link'],
    ['GET', '/api/health'],
    ['POST', '/api/sessions'],
    ['POST', '/api/sessions', AUTH],
    ['GET', `/api/sessions/${id}`, AUTH],
    ['GET', `/api/sessions/${id}`],
    ['GET', `/api/sessions/${id}/events?after=0`, AUTH],
    ['GET', `/api/sessions/${id}/artifacts/analyst`, AUTH],
    ['GET', `/api/sessions/${id}/ws`, AUTH],
    ['GET', '/api/nope'],
    ['DELETE', '/api/sessions'],
  ];
  const preflight = (p) => ['OPTIONS', p, { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' }];
  for (const p of ['/api/sessions', `/api/sessions/${id}`, `/api/sessions/${id}/events`, `/api/sessions/${id}/ws`, '/api/health', '/', `/assets/${asset}`]) reqs.push(preflight(p));
  const seen = [];
  for (const origin of ['http://evil.example', ALLOWED, undefined]) {
    for (const [method, p, h = {}] of reqs) {
      const headers = { ...h };
      if (origin) headers.Origin = origin;
      const r = await http(p, { method, headers });
      const acao = r.headers.get('access-control-allow-origin');
      seen.push(`${method} ${p} (${origin || 'no origin'}) -> ${r.status}`);
      assert.notEqual(acao, '*', `${method} ${p} (Origin ${origin}): wildcard CORS`);
      assert.equal(acao, null, `${method} ${p} (Origin ${origin}): no CORS headers (same origin by design), got access-control-allow-origin: ${acao}`);
      assert.equal(r.headers.get('access-control-allow-credentials'), null, `${method} ${p}: no allow-credentials`);
      if (method === 'OPTIONS') assert.ok(r.status !== 204 || !r.headers.get('access-control-allow-methods'), `${method} ${p}: no CORS preflight approval`);
    }
  }
  assert.ok(seen.length >= 60);
});

// ---- UI security headers ----

/** Parse a CSP header into Map directive -> [sources]. */
function parseCsp(value) {
  const m = new Map();
  for (const part of value.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) m.set(name.toLowerCase(), sources);
  }
  return m;
}

test('UI security headers (frontend/public/_headers): strict CSP, nosniff, Referrer-Policy — on / and on SPA routes', async () => {
  const headersFile = path.join(ROOT, 'frontend', 'public', '_headers');
  assert.ok(fs.existsSync(headersFile), 'frontend/public/_headers exists (Workers static assets headers file)');
  for (const p of ['/', '/some/deep/link', '/sessions/abc']) {
    const r = await http(p);
    assert.equal(r.status, 200, `${p}: ${r.status}`);
    assert.match(r.headers.get('content-type') || '', /text\/html/, p);
    const csp = r.headers.get('content-security-policy');
    assert.ok(csp, `${p}: Content-Security-Policy header present`);
    assert.equal(r.headers.get('content-security-policy-report-only'), null, `${p}: CSP enforced, not report-only`);
    const d = parseCsp(csp);
    const scripts = d.get('script-src') || d.get('default-src');
    assert.ok(scripts, `${p}: script-src or default-src set: ${csp}`);
    for (const bad of ["'unsafe-inline'", "'unsafe-eval'", '*', 'data:', 'http:', 'https:', 'blob:']) {
      assert.ok(!scripts.includes(bad), `${p}: scripts must not allow ${bad}: ${csp}`);
    }
    assert.ok(scripts.includes("'self'") || scripts.some((s) => s.startsWith("'nonce-") || s.startsWith("'sha")), `${p}: scripts limited to self/nonce/hash: ${csp}`);
    const connect = d.get('connect-src') || d.get('default-src');
    assert.ok(connect, `${p}: connect-src set: ${csp}`);
    assert.ok(connect.includes("'self'"), `${p}: connect-src allows 'self' (same-origin http and ws): ${csp}`);
    for (const s of connect) {
      assert.ok(s === "'self'" || /^wss?:\/\/[^*\s]+$/.test(s), `${p}: connect-src may only add explicit ws(s) origins, not ${s}: ${csp}`);
    }
    assert.deepEqual(d.get('frame-ancestors'), ["'none'"], `${p}: frame-ancestors 'none': ${csp}`);
    const objects = d.get('object-src') || d.get('default-src');
    assert.ok(objects && (objects.includes("'none'")), `${p}: object-src 'none': ${csp}`);
    const base = d.get('base-uri');
    assert.ok(base && (base.includes("'none'") || base.includes("'self'")) && base.length === 1, `${p}: base-uri 'none' or 'self': ${csp}`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${p}: X-Content-Type-Options`);
    const rp = r.headers.get('referrer-policy');
    assert.ok(['no-referrer', 'same-origin', 'strict-origin', 'strict-origin-when-cross-origin'].includes(rp), `${p}: Referrer-Policy strict, got ${rp}`);
    assert.notEqual(r.headers.get('access-control-allow-origin'), '*');
    // The page itself fits the policy: no inline scripts or inline event handlers.
    for (const tagText of r.text.match(/<script\b[^>]*>[\s\S]*?<\/script>/gi) || []) {
      assert.match(tagText, /\ssrc=/, `${p}: inline <script> would be blocked by the CSP: ${tagText.slice(0, 120)}`);
      assert.match(tagText, />\s*<\/script>$/, `${p}: script with src has no inline body`);
    }
    assert.doesNotMatch(r.text, /\son[a-z]+\s*=/i, `${p}: no inline event handler attributes`);
  }
  // Static assets: nosniff with their real types, so nothing is sniffed into script or HTML.
  for (const f of fs.readdirSync(path.join(cwd, 'frontend', 'dist', 'assets'))) {
    const r = await http(`/assets/${f}`);
    assert.equal(r.status, 200, f);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `/assets/${f}: nosniff`);
    if (f.endsWith('.js')) assert.match(r.headers.get('content-type') || '', /javascript/, f);
    if (f.endsWith('.css')) assert.match(r.headers.get('content-type') || '', /text\/css/, f);
  }
  // API answers are nosniff and never cached.
  const h = await http('/api/health');
  assert.equal(h.headers.get('x-content-type-options'), 'nosniff');
  assert.match(h.headers.get('content-type') || '', /application\/json/);
});

test('HTML in an artifact is served as Markdown text (nosniff), and session data is never cached', async () => {
  const t = tag('html');
  const evil = '## Plan\n\n<script>alert(document.cookie)</script><img src=x onerror="alert(1)"><iframe src="javascript:alert(2)"></iframe>\n\n- done';
  fake.setScenario(t, [{ text: evil }]);
  const id = await createSession();
  const c = await open(id, { label: 'html' });
  await mustAck(c, { type: 'start', brief: briefFor(t, '<b>bold</b> <script>alert("brief")</script> brief'), approval: 'each_stage' });
  const end = await c.waitFor(isEnd, 30000);
  assert.equal(end.outcome?.type, 'interrupt', JSON.stringify(end));
  const a = await http(`/api/sessions/${id}/artifacts/analyst`, { headers: AUTH });
  assert.equal(a.status, 200);
  assert.equal(a.text, evil, 'the artifact is the text, unchanged');
  assert.match(a.headers.get('content-type') || '', /^text\/markdown/, 'served as Markdown, not HTML');
  assert.equal(a.headers.get('x-content-type-options'), 'nosniff', 'browsers must not sniff it into HTML');
  for (const p of [`/api/sessions/${id}`, `/api/sessions/${id}/events?after=0`, `/api/sessions/${id}/artifacts/analyst`, `/api/sessions/${id}/artifacts/analyst?format=json`]) {
    const r = await http(p, { headers: AUTH });
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get('cache-control') || '', /no-store/, `${p}: session data must not be cached (got ${r.headers.get('cache-control')})`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${p}: nosniff`);
    if (!p.includes('/artifacts/analyst') || p.includes('format=json')) assert.match(r.headers.get('content-type') || '', /^application\/json/, `${p}: JSON`);
  }
  await mustAck(c, { type: 'cancel' });
  await c.waitFor((e) => isEnd(e) && e.runId === 'run-2', 10000);
  await c.close();
});

// ---- logs never hold secrets ----

test('a full pipeline with a provider that echoes the key (401) and fails (500): the key and the token never reach a log, an event or the state', async () => {
  const echo = (status, type) => ({
    status,
    body: { error: { message: `Incorrect API key provided: ${KEY}. Request with Authorization: Bearer ${KEY} refused (${type}).`, type, param: null, code: status === 401 ? 'invalid_api_key' : null } },
  });
  const t = tag('secrets');
  // analyst: 500 (echoing the key) then ok; architect..tester ok; deployer: 401 echoing the key
  // (bad_key, final); after `retry deployer`: ok.
  fake.setScenario(t, [echo(500, 'server_error'), { ok: true }, { ok: true }, { ok: true }, { ok: true }, echo(401, 'invalid_request_error'), { ok: true }]);
  const mark = worker.logs().length;
  const id = await createSession();
  const c = await open(id, { label: 'secrets' });
  await mustAck(c, { type: 'start', brief: briefFor(t, 'A wiki for a school robotics club'), approval: 'auto' });
  const end1 = await c.waitFor(isEnd, 60000);
  assert.equal(end1.type, 'RUN_ERROR', JSON.stringify(end1));
  assert.equal(end1.code, 'bad_key');
  assertPlainWords(end1.message, 'RUN_ERROR.message');
  const errs = ofType(c.transcript, 'CUSTOM', 'agent_error').map((e) => e.value);
  assert.deepEqual(errs.map((v) => [v.stage, v.code]), [['analyst', 'server_error'], ['deployer', 'bad_key']]);
  const from = c.transcript.length;
  await mustAck(c, { type: 'retry', stage: 'deployer' });
  const end2 = await c.waitFor(isEnd, 60000, { from });
  assert.deepEqual(end2.outcome, { type: 'success' }, JSON.stringify(end2));
  const { events, session } = await authFinalChecks(id, c);
  await c.close();
  await sleep(500); // let the last log lines arrive

  // The key was really used.
  const reqs = fake.requestsFor(t);
  assert.equal(reqs.length, 7);
  for (const r of reqs) assert.equal(r.headers.authorization, `Bearer ${KEY}`, 'the provider receives Authorization: Bearer <key>');
  assert.equal(reqs[0].status, 500);
  assert.equal(reqs[5].status, 401);

  // Neither secret anywhere the server writes or sends.
  const logs = worker.logsSince(mark);
  assert.match(logs, /llm_error/, 'the provider errors were logged (so the check below means something)');
  const whole = worker.logs();
  for (const [name, secret] of [['API key', KEY], ['API key (random part)', SECRET_PART], ['access token', TOKEN]]) {
    const at = whole.indexOf(secret);
    assert.equal(at, -1, `the ${name} appears in the wrangler/worker log: …${whole.slice(Math.max(0, at - 200), at + 80)}…`);
    assert.ok(!JSON.stringify(events).includes(secret), `the ${name} appears in no logged event`);
    assert.ok(!JSON.stringify(session).includes(secret), `the ${name} appears in no state`);
    assert.ok(!JSON.stringify(c.received).includes(secret), `the ${name} appears in no frame sent to the client`);
  }
  for (const s of STAGES) {
    const a = await http(`/api/sessions/${id}/artifacts/${s}`, { headers: AUTH });
    assert.equal(a.status, 200);
    assert.ok(!a.text.includes(SECRET_PART));
  }
  // Every logged request line: the token is in no URL (the whole log was searched above; this
  // makes sure the request lines are there to search).
  assert.match(whole, new RegExp(`GET /api/sessions/${id}/ws 101`), 'wrangler logs request URLs');
});

test('the token never appears in a URL in the logs after every test above', async () => {
  const lines = worker.logs().split('\n').filter((l) => /\b(GET|POST|OPTIONS|DELETE|PUT|HEAD) \//.test(l));
  assert.ok(lines.length > 50, `request lines logged (${lines.length})`);
  for (const l of lines) {
    assert.ok(!l.includes(TOKEN) && !l.includes(KEY), `secret in a logged URL: ${l}`);
  }
});

// ---- socket limits ----

test('a frame over 64 KiB closes the socket with 1009 (text and binary); exactly 64 KiB does not', async () => {
  const id = await createSession();
  const c = await open(id, { label: 'frame' });
  // Exactly 65536 bytes of valid JSON: too long a brief, but the socket stays.
  const prefix = '{"type":"start","approval":"auto","brief":"';
  const exact = `${prefix}${'x'.repeat(65536 - prefix.length - 2)}"}`;
  assert.equal(Buffer.byteLength(exact), 65536);
  const r = await c.sendAndNextAnswer(exact);
  assert.equal(r.kind, 'rejected');
  assert.equal(r.code, 'brief_too_long');
  assert.ok(c.isOpen);
  // 65537 bytes: closed 1009.
  c.sendRaw(`${prefix}${'y'.repeat(65537 - prefix.length - 2)}"}`);
  const closed = await c.waitForClose(10000);
  assert.equal(closed.code, 1009, `close ${closed.code} ${closed.reason}`);
  // Multi-byte characters count as bytes: 22000 x "€" (3 bytes) = 66000 bytes but 22000 chars.
  const c2 = await open(id, { label: 'frame-utf8' });
  c2.sendRaw(JSON.stringify({ type: 'start', approval: 'auto', brief: '€'.repeat(22000) }));
  assert.equal((await c2.waitForClose(10000)).code, 1009);
  // Binary over the limit.
  const c3 = await open(id, { label: 'frame-binary' });
  c3.sendRaw(Buffer.alloc(70 * 1024, 1), { binary: true });
  assert.equal((await c3.waitForClose(10000)).code, 1009);
  // Nothing was logged by any of it.
  assert.equal((await fetchEventsAuth(id)).length, 0);
});

async function fetchEventsAuth(id) {
  const r = await http(`/api/sessions/${id}/events?after=0&limit=1000`, { headers: AUTH });
  assert.equal(r.status, 200, r.text);
  return r.json.events;
}

test('flooding: a warning (rate_limited) first, then a 1008 close; other sockets of the session are unaffected', async () => {
  const id = await createSession();
  const calm = await open(id, { label: 'calm' });
  const c = await open(id, { label: 'flood' });
  for (let i = 0; i < 400 && c.isOpen; i++) c.sendRaw(JSON.stringify({ type: 'ping' }));
  const warning = await c.waitForControl((f) => f.type === 'CUSTOM' && f.name === 'warning', 10000);
  assert.equal(warning.value.code, 'rate_limited');
  assertPlainWords(warning.value.message, 'warning.message');
  const closed = await c.waitForClose(10000);
  assert.equal(closed.code, 1008, `close ${closed.code} ${closed.reason}`);
  // Commands before the warning were answered (the burst), so the guard is a rate, not a ban.
  const warnAt = c.control.findIndex((x) => x.frame.name === 'warning');
  const pongs = c.control.slice(0, warnAt).filter((x) => x.frame.name === 'pong').length;
  assert.ok(pongs >= 20, `the burst was served before the warning (${pongs} pongs)`);
  // The calm socket of the same session still works.
  const from = calm.control.length;
  calm.sendRaw(JSON.stringify({ type: 'ping' }));
  await calm.waitForControl((f) => f.name === 'pong', 5000, { from });
  assert.ok(calm.isOpen, 'the other socket is not closed');
  await calm.close();
});

test('socket cap: 64 sockets per session, the 65th refused 429 too_many_connections; refused upgrades do not use slots', async () => {
  const id = await createSession();
  // Unauthenticated and foreign-origin attempts are refused before they reach the session.
  for (let i = 0; i < 40; i++) {
    const r = await upgrade(id, i % 2 ? { protocols: ['botarmy.v1'] } : { protocols: PROTOCOLS, origin: 'http://evil.example' });
    assert.ok(!r.ws);
  }
  const sockets = [];
  try {
    for (let i = 0; i < 64; i++) {
      const r = await upgrade(id, { protocols: PROTOCOLS });
      assert.ok(r.ws, `socket ${i + 1} of 64 accepted: ${r.status} ${r.body}`);
      sockets.push(r.ws);
    }
    const extra = await upgrade(id, { protocols: PROTOCOLS });
    assert.ok(!extra.ws, 'the 65th socket must be refused');
    assert.equal(extra.status, 429, `${extra.status} ${extra.body}`);
    assert.equal(extra.json?.error?.code, 'too_many_connections');
    // Another session is not affected by this one's cap.
    const other = await createSession();
    const r = await upgrade(other, { protocols: PROTOCOLS });
    assert.ok(r.ws, 'another session accepts sockets');
    r.ws.terminate();
  } finally {
    for (const ws of sockets) ws.close();
  }
  // Slots come back once sockets close.
  let ok = false;
  for (let i = 0; i < 30 && !ok; i++) {
    const r = await upgrade(id, { protocols: PROTOCOLS });
    if (r.ws) {
      ok = true;
      r.ws.terminate();
    } else await sleep(200);
  }
  assert.ok(ok, 'after the sockets closed, a new one is accepted');
});
