// View-only share links (issue 14 part 4), against real `wrangler dev` with the demo provider:
//
//   - a view key reads everything a session id reads (snapshot, events, messages, artifacts,
//     the live WebSocket), with the session id replaced by the view key everywhere, so the
//     control capability never reaches a viewer;
//   - every command over a view socket is refused `read_only` and changes nothing; every
//     other route (AG-UI, delete, managing views) is refused 403 read_only;
//   - revoking a view closes its sockets with 4403 and makes its key unknown (404);
//   - at most 20 views per session; forged keys and keys of another session are unknown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, createSession, fetchEvents, getSession } from '../support/client.mjs';
import { assertClean, briefFor, mustAck, ofType, waitRunEnd } from '../support/e2e.mjs';
import { canon } from '../support/json-patch.mjs';

const TOKEN = 'view-links-test-token-0123456789';
let worker;

before(async () => {
  worker = await startWorker({ name: '09-view-links', env: { DEMO_TOKEN_INTERVAL_MS: '1' } });
});
after(async () => {
  await worker?.stop();
});

async function api(path, { method = 'GET', headers = {}, url = worker.url } = {}) {
  const res = await fetch(`${url}${path}`, { method, headers: { Origin: url, ...headers } });
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body, text };
}

async function newView(id, opts = {}) {
  const r = await api(`/api/sessions/${id}/views`, { method: 'POST', ...opts });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

test('a view key streams and reads everything, never sees the session id, and cannot change anything', async (t) => {
  const id = await createSession(worker.url);
  const owner = await SessionClient.open(worker.url, id, { label: 'owner' });
  const view = await newView(id);
  assert.match(view.key, /^v[0-9a-f]{96}$/);
  assert.match(view.id, /^[0-9a-f]{12}$/);
  assert.ok(!view.key.includes(id), 'the view key does not contain the session id');
  const listed = await api(`/api/sessions/${id}/views`);
  assert.deepEqual(listed.body.views.map((v) => v.id), [view.id]);

  // A viewer joins before the run and another after it: both end with the owner's log.
  const early = await SessionClient.open(worker.url, view.key, { label: 'viewer-early' });
  t.after(() => Promise.all([owner.close(), early.close()]));
  assert.equal(early.welcomes[0].readOnly, true);
  assert.equal(early.welcomes[0].sessionId, view.key);
  assert.equal(owner.welcomes[0].readOnly, undefined, 'a control socket is not read-only');

  const start = await mustAck(owner, { type: 'start', brief: briefFor(null), approval: 'auto' });
  assert.equal(start.kind, 'ack');
  const runId = (await owner.waitFor((e) => e.type === 'RUN_STARTED')).runId;
  await waitRunEnd(owner, runId, 60000);
  await early.waitFor((e) => e.type === 'RUN_FINISHED', 30000);
  const late = await SessionClient.open(worker.url, view.key, { label: 'viewer-late' });
  t.after(() => late.close());

  const events = await fetchEvents(worker.url, id, 0);
  const swap = (x) => JSON.parse(JSON.stringify(x).replaceAll(id, view.key));
  for (const v of [early, late]) {
    assertClean(v);
    assert.equal(v.lastSeq, owner.lastSeq, `${v.label} lastSeq`);
    assert.deepEqual(canon(v.transcript), canon(swap(events)), `${v.label}: the owner's log with the view key for the id`);
    const raw = v.received.map((r) => JSON.stringify(r.frame)).join('\n');
    assert.ok(!raw.includes(id), `${v.label} was sent the session id`);
    assert.deepEqual(canon(v.state), canon(swap(owner.state)));
  }
  assert.equal(ofType(events, 'RUN_FINISHED').length, 1);

  // Every read over HTTP: the same bodies, the id swapped.
  const reads = ['', '/events?after=0', '/messages?offset=0', '/artifacts/analyst?format=json', '/artifacts/deployer?version=1'];
  for (const path of reads) {
    const own = await api(`/api/sessions/${id}${path}`);
    const seen = await api(`/api/sessions/${view.key}${path}`);
    assert.equal(seen.status, 200, `${path}: ${seen.text.slice(0, 200)}`);
    assert.ok(!seen.text.includes(id), `${path} leaks the session id`);
    if (path === '') assert.deepEqual(canon(seen.body.state), canon(swap(own.body.state)));
    else assert.equal(seen.text, own.text.replaceAll(id, view.key), path);
  }

  // Commands over the view socket: refused read_only, with the id; nothing changes.
  const before = await getSession(worker.url, id);
  for (const cmd of [
    { type: 'start', brief: 'take over', approval: 'auto' },
    { type: 'rerun', stage: 'tester' },
    { type: 'cancel' },
    { type: 'pause' },
  ]) {
    const a = await late.send(cmd);
    assert.equal(a.kind, 'rejected', JSON.stringify(a));
    assert.equal(a.code, 'read_only');
    assert.equal(a.command, cmd.type);
    assert.match(a.message, /view-only/);
  }
  // Pings and acks still work on it.
  const from = late.control.length;
  late.sendRaw(JSON.stringify({ type: 'ping' }));
  await late.waitForControl((f) => f.name === 'pong', 5000, { from });
  const afterCmds = await getSession(worker.url, id);
  assert.equal(afterCmds.body.lastSeq, before.body.lastSeq, 'no event was logged');
  assert.deepEqual(afterCmds.body.state, before.body.state);

  // Everything else is refused, and changes nothing.
  for (const [method, path] of [
    ['DELETE', ''],
    ['POST', '/agui'],
    ['GET', '/agui'],
    ['GET', '/views'],
    ['POST', '/views'],
    ['DELETE', `/views/${view.id}`],
    ['POST', '/events'],
  ]) {
    const r = await api(`/api/sessions/${view.key}${path}`, { method });
    assert.equal(r.status, 403, `${method} ${path}: ${r.text.slice(0, 200)}`);
    assert.equal(r.body.error.code, 'read_only');
  }
  assert.equal((await getSession(worker.url, id)).status, 200, 'the session still exists');
  assert.equal((await api(`/api/sessions/${id}/views`)).body.views.length, 1);
});

test('revoking a view closes its sockets with 4403 and makes its key unknown; other views keep working', async (t) => {
  const id = await createSession(worker.url);
  const [a, b] = [await newView(id), await newView(id)];
  const listed = await api(`/api/sessions/${id}/views`);
  assert.deepEqual(new Set(listed.body.views.map((v) => v.id)), new Set([a.id, b.id]));
  const va = await SessionClient.open(worker.url, a.key, { label: 'view-a' });
  const vb = await SessionClient.open(worker.url, b.key, { label: 'view-b' });
  t.after(() => Promise.all([va.close(), vb.close()]));

  const r = await api(`/api/sessions/${id}/views/${a.id}`, { method: 'DELETE' });
  assert.equal(r.status, 204);
  const closed = await va.waitForClose(5000);
  assert.equal(closed.code, 4403);
  assert.equal(closed.reason, 'view link revoked');
  assert.ok(vb.isOpen, 'the other view stays');
  assert.equal((await api(`/api/sessions/${a.key}`)).status, 404);
  assert.equal((await api(`/api/sessions/${a.key}/events?after=0`)).status, 404);
  await assert.rejects(SessionClient.open(worker.url, a.key, { label: 'view-a-again' }), /upgrade refused: 404/);
  assert.equal((await api(`/api/sessions/${b.key}`)).status, 200);
  assert.deepEqual((await api(`/api/sessions/${id}/views`)).body.views.map((v) => v.id), [b.id]);
  // Revoking again, or an id that is not a view id: 404, nothing changes.
  assert.equal((await api(`/api/sessions/${id}/views/${a.id}`, { method: 'DELETE' })).status, 404);
  assert.equal((await api(`/api/sessions/${id}/views/not-an-id`, { method: 'DELETE' })).status, 404);
  assert.equal((await api(`/api/sessions/${id}/views`)).body.views.length, 1);
  // Deleting the session takes its views with it.
  assert.equal((await api(`/api/sessions/${id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await vb.waitForClose(5000)).code, 4404);
  assert.equal((await api(`/api/sessions/${b.key}`)).status, 404);
});

test('at most 20 views per session; forged keys, keys of another session and foreign origins are refused', async () => {
  const id = await createSession(worker.url);
  const other = await createSession(worker.url);
  const views = [];
  for (let i = 0; i < 20; i++) views.push(await newView(id));
  const over = await api(`/api/sessions/${id}/views`, { method: 'POST' });
  assert.equal(over.status, 409);
  assert.equal(over.body.error.code, 'too_many_views');
  assert.match(over.body.error.message, /20 view links/);
  assert.equal((await api(`/api/sessions/${id}/views`)).body.views.length, 20);

  const key = views[0].key;
  const object = key.slice(1, 65);
  const secret = key.slice(65);
  const flip = (s) => (s[0] === '0' ? '1' : '0') + s.slice(1);
  const otherView = await newView(other);
  for (const forged of [
    `v${object}${flip(secret)}`, // the right session, a wrong secret
    `v${flip(object)}${secret}`, // an object id nobody made
    `v${otherView.key.slice(1, 65)}${secret}`, // another session's object with this secret
  ]) {
    assert.equal((await api(`/api/sessions/${forged}`)).status, 404, forged);
  }
  for (const bad of [key.toUpperCase(), key.slice(0, 96), `${key}0`]) {
    assert.equal((await api(`/api/sessions/${bad}`)).status, 404, bad);
  }
  // Creating and revoking views is for the session's own origin only.
  const foreign = await api(`/api/sessions/${id}/views/${views[1].id}`, { method: 'DELETE', headers: { Origin: 'http://evil.example' } });
  assert.equal(foreign.status, 403);
  assert.equal((await api(`/api/sessions/${id}/views`)).body.views.length, 20);
});

test('with an access token, a view key needs the token like every API call', async (t) => {
  const w = await startWorker({ name: '09-view-links-token', env: { BOTARMY_ACCESS_TOKEN: TOKEN } });
  t.after(() => w.stop());
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const id = await createSession(w.url, { headers: auth });
  assert.equal((await api(`/api/sessions/${id}/views`, { method: 'POST', url: w.url })).status, 401);
  const view = (await api(`/api/sessions/${id}/views`, { method: 'POST', url: w.url, headers: auth })).body;
  assert.match(view.key, /^v[0-9a-f]{96}$/);
  assert.equal((await api(`/api/sessions/${view.key}`, { url: w.url })).status, 401);
  assert.equal((await api(`/api/sessions/${view.key}`, { url: w.url, headers: auth })).status, 200);
  assert.equal((await api(`/api/sessions/${view.key}/agui`, { method: 'POST', url: w.url })).status, 403);
});
