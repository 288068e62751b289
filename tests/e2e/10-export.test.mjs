// Export of a whole session as JSON Lines (issue 14 part 6), against real `wrangler dev` with
// the demo provider: the file parses line by line, its events are the log exactly, replaying
// them rebuilds the live session's final state, its artifacts are every kept version, and
// through a view key it carries the key, never the session id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, createSession, fetchEvents, getSession } from '../support/client.mjs';
import { briefFor, mustAck, stateHistory, waitRunEnd } from '../support/e2e.mjs';
import { canon } from '../support/json-patch.mjs';
import { STAGES } from '../support/stages.mjs';

let worker;
before(async () => {
  worker = await startWorker({ name: '10-export', env: { DEMO_TOKEN_INTERVAL_MS: '1' } });
});
after(async () => {
  await worker?.stop();
});

async function exportOf(key) {
  const res = await fetch(`${worker.url}/api/sessions/${key}/export.jsonl`);
  const text = await res.text();
  assert.equal(res.status, 200, text.slice(0, 300));
  assert.match(res.headers.get('content-type'), /^application\/x-ndjson/);
  assert.match(res.headers.get('content-disposition'), /attachment; filename="botarmy-session\.jsonl"/);
  assert.ok(text.endsWith('\n'));
  const lines = text.trimEnd().split('\n').map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      throw new Error(`line ${i + 1} is not JSON: ${l.slice(0, 120)}`, { cause: e });
    }
  });
  return { text, lines };
}

test('a finished session exports as JSON Lines that replay to its final state', async (t) => {
  const id = await createSession(worker.url);
  const c = await SessionClient.open(worker.url, id, { label: 'owner' });
  t.after(() => c.close());
  await mustAck(c, { type: 'start', brief: briefFor(null), approval: 'auto' });
  const runId = (await c.waitFor((e) => e.type === 'RUN_STARTED')).runId;
  await waitRunEnd(c, runId, 60000);
  // A second run from the tester gives that stage and the deployer a second version.
  await mustAck(c, { type: 'rerun', stage: 'tester', feedback: 'Cover the offline mode.' });
  const second = await c.waitFor((e) => e.type === 'RUN_STARTED' && e.runId !== runId);
  await waitRunEnd(c, second.runId, 60000);

  const { lines } = await exportOf(id);
  const [head, ...rest] = lines;
  const session = (await getSession(worker.url, id)).body;
  assert.equal(head.kind, 'session');
  assert.equal(head.id, id);
  assert.equal(head.lastSeq, session.lastSeq);
  assert.equal(head.oldestSeq, 1);
  assert.deepEqual(canon(head.state), canon(session.state));

  const events = rest.filter((l) => l.kind === 'event').map((l) => l.event);
  assert.deepEqual(events, await fetchEvents(worker.url, id, 0), 'the events are the log, in order');
  const replayed = stateHistory(events, (s) => s).at(-1).value;
  assert.deepEqual(canon(replayed), canon(session.state), 'replaying the export gives the live state');

  const artifacts = rest.filter((l) => l.kind === 'artifact');
  const files = rest.filter((l) => l.kind === 'file');
  assert.equal(rest.length, events.length + artifacts.length + files.length, 'no other kind of line');
  const tree = await (await fetch(`${worker.url}/api/sessions/${id}/files`)).json();
  assert.deepEqual(
    files.map((f) => f.version),
    tree.files.flatMap((f) => f.versions.map((v) => v.version)).sort((a, b) => a - b),
    'every kept file version, in version order',
  );
  for (const f of tree.files) {
    const last = files.filter((l) => l.path === f.path).at(-1);
    assert.equal(last.content, await (await fetch(`${worker.url}/api/sessions/${id}/files/${f.path}`)).text(), f.path);
  }
  for (const stage of STAGES) {
    const mine = artifacts.filter((a) => a.stage === stage);
    const want = ['tester', 'deployer'].includes(stage) ? [1, 2] : [1];
    assert.deepEqual(mine.map((a) => a.version), want, stage);
    for (const a of mine) {
      const res = await fetch(`${worker.url}/api/sessions/${id}/artifacts/${stage}?version=${a.version}`);
      assert.equal(a.content, await res.text(), `${stage} v${a.version}`);
      assert.equal(typeof a.createdAt, 'number');
    }
  }
  assert.equal(artifacts.find((a) => a.stage === 'tester' && a.version === 2).feedback, 'Cover the offline mode.');

  // Through a view key: the same file with the key in place of the id.
  const view = await (await fetch(`${worker.url}/api/sessions/${id}/views`, { method: 'POST', headers: { Origin: worker.url } })).json();
  const seen = await exportOf(view.key);
  assert.ok(!seen.text.includes(id), 'the view export leaks the session id');
  assert.equal(seen.lines.length, lines.length);
  assert.equal(seen.lines[0].id, view.key);
});

test('an export of a new session is one line; unknown sessions are 404', async () => {
  const id = await createSession(worker.url);
  const { lines } = await exportOf(id);
  assert.equal(lines.length, 1);
  assert.equal(lines[0].lastSeq, 0);
  const res = await fetch(`${worker.url}/api/sessions/${'0'.repeat(32)}/export.jsonl`);
  assert.equal(res.status, 404);
});
