// "Your sessions" (issue 14 parts 2–3), against real `wrangler dev`: the owner's index lists a
// session created through the API with its name and status updating as it runs; rename;
// search; a view link opened is listed read-only under its view key (never the session id);
// forget; delete removes the session's storage and its row; without an access token each
// browser key is its own list, with one the list is the token's, the same from any browser.
// Issue 33: a view key changes no session's owners (the creator's row stays whoever remembers
// it), a revoked view's rows go, numbers are JSON integers, and a search is plain text of up
// to 100 characters folded by Unicode lowercase (NUL and other control characters refused).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, getSession } from '../support/client.mjs';
import { mustAck, waitRunEnd } from '../support/e2e.mjs';

const TOKEN = 'list-test-token-5f2c';
let open;
let guarded;
before(async () => {
  [open, guarded] = await Promise.all([
    startWorker({ name: '13-list', env: { DEMO_TOKEN_INTERVAL_MS: '1' } }),
    startWorker({ name: '13-list-token', env: { DEMO_TOKEN_INTERVAL_MS: '1', BOTARMY_ACCESS_TOKEN: TOKEN } }),
  ]);
});
after(async () => {
  await Promise.all([open?.stop(), guarded?.stop()]);
});

const browserKey = () => crypto.randomBytes(16).toString('hex');

function api(w, owner, extra = {}) {
  const headers = { Origin: w.url, 'content-type': 'application/json', ...(owner ? { 'X-BotArmy-Owner': owner } : {}), ...(extra.token ? { Authorization: `Bearer ${extra.token}` } : {}) };
  return (path, init = {}) => fetch(`${w.url}${path}`, { ...init, headers: { ...headers, ...(init.headers ?? {}) } });
}

async function list(call, q) {
  const res = await call(`/api/sessions${q === undefined ? '' : `?q=${encodeURIComponent(q)}`}`);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).sessions;
}

async function eventually(fn, what, ms = 10000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${what}: ${last?.message}`);
}

test('a session created through the API is listed and its name and status follow the run', async (t) => {
  const me = api(open, browserKey());
  const res = await me('/api/sessions', { method: 'POST' });
  assert.equal(res.status, 201);
  const { id } = await res.json();
  let rows = await list(me);
  assert.equal(rows.length, 1);
  assert.deepEqual({ ...rows[0], createdAt: 0, updatedAt: 0 }, { key: id, readOnly: false, name: 'New session', status: 'idle', stagesDone: 0, tokens: 0, costMicroUsd: 0, createdAt: 0, updatedAt: 0 });

  const c = await SessionClient.open(open.url, id, { label: 'owner' });
  t.after(() => c.close());
  await mustAck(c, { type: 'start', brief: 'A   recipe box\nfor grandma', approval: 'auto' });
  const runId = (await c.waitFor((e) => e.type === 'RUN_STARTED')).runId;
  await eventually(async () => {
    const [r] = await list(me);
    assert.equal(r.name, 'A recipe box for grandma');
    assert.equal(r.status, 'running');
  }, 'the row shows the run');
  await waitRunEnd(c, runId, 60000);
  await eventually(async () => {
    const [r] = await list(me);
    assert.equal(r.status, 'completed');
    assert.equal(r.stagesDone, 5);
    const { state } = (await getSession(open.url, id)).body;
    assert.equal(r.tokens, state.run.tokensUsed);
    assert.ok(r.tokens > 0);
  }, 'the row shows the completed run');

  // Rename: cleaned, bounded, refused when empty; the row follows.
  assert.equal((await me(`/api/sessions/${id}`, { method: 'PATCH', body: JSON.stringify({ name: '  Grandma\'s\trecipes ' }) })).status, 200);
  assert.equal((await list(me))[0].name, "Grandma's recipes");
  for (const bad of [{ name: '   ' }, { name: 'x'.repeat(121) }, { name: 7 }, {}]) {
    const r = await me(`/api/sessions/${id}`, { method: 'PATCH', body: JSON.stringify(bad) });
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.equal((await r.json()).error.code, 'invalid_field');
  }
  const big = await me(`/api/sessions/${id}`, { method: 'PATCH', body: JSON.stringify({ name: 'n', pad: 'x'.repeat(5000) }) });
  assert.equal(big.status, 413);
  assert.equal((await big.json()).error.code, 'body_too_large');
  assert.equal((await list(me))[0].name, "Grandma's recipes", 'a refused rename changes nothing');

  // Search, newest first, and a second session.
  const other = (await (await me('/api/sessions', { method: 'POST' })).json()).id;
  assert.deepEqual((await list(me)).map((r) => r.key), [other, id], 'most recently active first');
  assert.deepEqual((await list(me, 'RECIPES')).map((r) => r.key), [id], 'search ignores case');
  assert.deepEqual(await list(me, '%'), [], 'a LIKE wildcard is a plain character');
  assert.equal((await me(`/api/sessions?q=${'q'.repeat(101)}`)).status, 400);

  // Another browser (another key) has its own list; no key at all is refused.
  assert.deepEqual(await list(api(open, browserKey())), []);
  assert.equal((await api(open, null)('/api/sessions')).status, 400);
  assert.equal((await api(open, 'not-hex')('/api/sessions')).status, 400);
});

test('a view link opened is listed read-only under its key; forget and delete remove rows', async () => {
  const alice = api(open, browserKey());
  const bob = api(open, browserKey());
  const { id } = await (await alice('/api/sessions', { method: 'POST' })).json();
  const view = await (await alice(`/api/sessions/${id}/views`, { method: 'POST' })).json();
  // Bob opens the view link: his list holds the view key, never the session id.
  const res = await bob(`/api/sessions/${view.key}/remember`, { method: 'POST' });
  assert.equal(res.status, 200);
  const rows = await list(bob);
  assert.deepEqual(rows.map((r) => [r.key, r.readOnly]), [[view.key, true]]);
  assert.ok(!JSON.stringify(rows).includes(id), "the session id is not in Bob's list");
  // A view key cannot rename.
  assert.equal((await bob(`/api/sessions/${view.key}`, { method: 'PATCH', body: '{"name":"mine"}' })).status, 403);
  assert.equal((await bob(`/api/sessions/${'f'.repeat(32)}/remember`, { method: 'POST' })).status, 404, 'an unknown session is not remembered');

  // Alice renames: Bob's read-only row follows too.
  await alice(`/api/sessions/${id}`, { method: 'PATCH', body: '{"name":"Shared plan"}' });
  await eventually(async () => assert.equal((await list(bob))[0].name, 'Shared plan'), "Bob's row follows");

  // Bob forgets it: only his row goes.
  assert.equal((await bob(`/api/sessions/${view.key}/remember`, { method: 'DELETE' })).status, 204);
  assert.deepEqual(await list(bob), []);
  assert.equal((await list(alice)).length, 1);

  // Bob remembers it again, then Alice deletes the session: storage and every row go.
  await bob(`/api/sessions/${view.key}/remember`, { method: 'POST' });
  assert.equal((await alice(`/api/sessions/${id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await getSession(open.url, id)).status, 404);
  await eventually(async () => {
    assert.deepEqual(await list(alice), []);
    assert.deepEqual(await list(bob), []);
  }, 'the rows of a deleted session are gone');
});

test('with an access token the list is the token\'s: the same from another browser', async () => {
  const one = api(guarded, browserKey(), { token: TOKEN });
  const two = api(guarded, browserKey(), { token: TOKEN });
  const { id } = await (await one('/api/sessions', { method: 'POST' })).json();
  assert.deepEqual((await list(two)).map((r) => r.key), [id]);
  assert.equal((await api(guarded, browserKey())('/api/sessions')).status, 401, 'no token, no list');
  assert.equal((await api(guarded, browserKey(), { token: 'wrong' })('/api/sessions')).status, 401);
});

test("an owner pushed out of a session's 16 owners loses its row, never the creator; an index left empty keeps nothing", async () => {
  const creator = api(open, browserKey());
  const { id } = await (await creator('/api/sessions', { method: 'POST' })).json();
  const others = Array.from({ length: 16 }, () => api(open, browserKey()));
  for (const o of others) assert.equal((await o(`/api/sessions/${id}/remember`, { method: 'POST' })).status, 200);
  // 17 through the session id: the oldest who is not the creator is pushed out, its row dropped.
  await eventually(async () => assert.deepEqual(await list(others[0]), []), 'the oldest other owner lost its row');
  for (const o of others.slice(1)) assert.deepEqual((await list(o)).map((r) => r.key), [id]);
  assert.deepEqual((await list(creator)).map((r) => r.key), [id], "the creator's row stays");
  // Listing an owner that never had a row, with an over-long search, is still refused.
  assert.equal((await api(open, browserKey())(`/api/sessions?q=${'q'.repeat(101)}`)).status, 400);
});

test('a view key changes no owners: 16 fresh keys remembering it keep the creator\'s and every control row; a revoked view\'s rows go', async () => {
  const creator = api(open, browserKey());
  const { id } = await (await creator('/api/sessions', { method: 'POST' })).json();
  const controls = Array.from({ length: 15 }, () => api(open, browserKey()));
  for (const c of controls) assert.equal((await c(`/api/sessions/${id}/remember`, { method: 'POST' })).status, 200);
  const view = await (await creator(`/api/sessions/${id}/views`, { method: 'POST' })).json();
  const viewers = Array.from({ length: 16 }, () => api(open, browserKey()));
  for (const v of viewers) assert.equal((await v(`/api/sessions/${view.key}/remember`, { method: 'POST' })).status, 200);
  // The session keeps 16 owners through its id (full) and 4 per view link: the viewers pushed
  // out only each other.
  assert.deepEqual((await list(creator)).map((r) => [r.key, r.readOnly]), [[id, false]]);
  for (const c of controls) assert.deepEqual((await list(c)).map((r) => r.key), [id]);
  await eventually(async () => {
    for (const v of viewers.slice(0, 12)) assert.deepEqual(await list(v), []);
  }, 'the older viewers lost their rows');
  const kept = viewers.slice(12);
  for (const v of kept) assert.deepEqual((await list(v)).map((r) => [r.key, r.readOnly]), [[view.key, true]]);

  // The creator's own read-only row through the view stays beside its control row.
  await creator(`/api/sessions/${view.key}/remember`, { method: 'POST' });
  assert.deepEqual((await list(creator)).map((r) => r.readOnly).sort(), [false, true]);

  // Revoked: every row made through that view goes, and a rename no longer reaches them.
  assert.equal((await creator(`/api/sessions/${id}/views/${view.id}`, { method: 'DELETE' })).status, 204);
  await eventually(async () => {
    for (const v of kept) assert.deepEqual(await list(v), []);
  }, "the revoked view's rows are gone");
  assert.deepEqual((await list(creator)).map((r) => [r.key, r.readOnly]), [[id, false]], "the creator keeps its control row");
  assert.equal((await creator(`/api/sessions/${id}`, { method: 'PATCH', body: '{"name":"After revoke"}' })).status, 200);
  assert.equal((await list(creator))[0].name, 'After revoke');
  for (const v of kept) assert.deepEqual(await list(v), [], 'a revoked viewer follows nothing');
  assert.equal((await kept[0](`/api/sessions/${view.key}/remember`, { method: 'POST' })).status, 404, 'nor remembers it again');
});

test('the list sends integers as JSON integers, and a search is plain text: 80 characters, Unicode case, NUL refused', async () => {
  const me = api(open, browserKey());
  const { id } = await (await me('/api/sessions', { method: 'POST' })).json();
  const raw = await (await me('/api/sessions')).text();
  assert.doesNotMatch(raw, /\d\.\d/, `no float in ${raw}`);
  const [row] = JSON.parse(raw).sessions;
  for (const k of ['stagesDone', 'tokens', 'costMicroUsd', 'createdAt', 'updatedAt']) {
    assert.ok(Number.isInteger(row[k]), `${k}: ${row[k]}`);
    assert.match(raw, new RegExp(`"${k}":\\d+[,}]`), k);
  }

  const long = `Élan ${'plan '.repeat(15)}`.trim(); // 79 characters
  assert.equal((await me(`/api/sessions/${id}`, { method: 'PATCH', body: JSON.stringify({ name: `${long}!` }) })).status, 200);
  const q80 = `${long}!`;
  assert.equal(q80.length, 80);
  assert.deepEqual((await list(me, q80)).map((r) => r.key), [id], 'an 80-character search (SQLite LIKE refused over 50 bytes)');
  assert.deepEqual((await list(me, q80.toUpperCase())).map((r) => r.key), [id], 'ÉLAN finds Élan');
  assert.deepEqual((await list(me, 'élan plan')).map((r) => r.key), [id]);
  assert.deepEqual(await list(me, `${q80.slice(0, 79)}?`), []);
  assert.deepEqual((await list(me, 'x'.repeat(100))), [], '100 characters: answered');
  for (const bad of ['\0', 'plan\0', 'a\u0007b']) {
    const res = await me(`/api/sessions?q=${encodeURIComponent(bad)}`);
    assert.equal(res.status, 400, JSON.stringify(bad));
    const body = await res.json();
    assert.equal(body.error.code, 'invalid_field');
    assert.match(body.error.message, /control characters/);
  }
});
