// Self-test of the test support code that needs no Worker: the stream verifier must accept a
// well-formed BotArmy stream and reject each kind of broken one; the JSON Patch applier must be
// strict. (If these could not fail, the end-to-end tests that rely on them could not either.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { verifyStream, messagesOf } from '../support/agui.mjs';
import { applyPatch } from '../support/json-patch.mjs';
import { freePort } from '../support/harness.mjs';

const T = '0123456789abcdef0123456789abcdef';
const ts = 1_700_000_000_000;

function good() {
  const ev = [
    { type: 'RUN_STARTED', threadId: T, runId: 'run-1' },
    { type: 'STATE_SNAPSHOT', snapshot: { run: { status: 'running' } } },
    { type: 'TEXT_MESSAGE_START', messageId: 'brief-1', role: 'user', name: 'You' },
    { type: 'TEXT_MESSAGE_CONTENT', messageId: 'brief-1', delta: 'Build it' },
    { type: 'TEXT_MESSAGE_END', messageId: 'brief-1' },
    { type: 'STEP_STARTED', stepName: 'analyst' },
    { type: 'TEXT_MESSAGE_START', messageId: 'm-analyst-1', role: 'assistant', name: 'Analyst' },
    { type: 'TEXT_MESSAGE_CONTENT', messageId: 'm-analyst-1', delta: '## Req' },
    { type: 'TEXT_MESSAGE_END', messageId: 'm-analyst-1' },
    { type: 'CUSTOM', name: 'message_interrupted', value: { messageId: 'm-analyst-1', stage: 'analyst', reason: 'retry' } },
    { type: 'CUSTOM', name: 'artifact', value: { stage: 'analyst', version: 1, chars: 6 } },
    { type: 'STATE_DELTA', delta: [{ op: 'replace', path: '/run/status', value: 'waiting_approval' }] },
    { type: 'STEP_FINISHED', stepName: 'analyst' },
    { type: 'RUN_FINISHED', threadId: T, runId: 'run-1', outcome: { type: 'interrupt', interrupts: [{ id: 'gate-analyst-1', reason: 'approval', message: 'Approve?' }] } },
    { type: 'RUN_STARTED', threadId: T, runId: 'run-2' },
    { type: 'STATE_SNAPSHOT', snapshot: { run: { status: 'running' } } },
    { type: 'RUN_ERROR', message: 'The provider refused the API key.', code: 'bad_key' },
    { type: 'RUN_STARTED', threadId: T, runId: 'run-3' },
    { type: 'STATE_SNAPSHOT', snapshot: { run: { status: 'completed' } } },
    { type: 'RUN_FINISHED', threadId: T, runId: 'run-3', outcome: { type: 'success' } },
  ];
  return ev.map((e, i) => ({ ...e, seq: i + 1, timestamp: ts + i }));
}

test('verifyStream accepts a well-formed stream and summarizes its runs', async () => {
  const s = await verifyStream(good(), { threadId: T, complete: true });
  assert.deepEqual(s.runs.map((r) => [r.runId, r.startSeq, r.endSeq, r.outcome?.type ?? r.error?.code]), [
    ['run-1', 1, 14, 'interrupt'],
    ['run-2', 15, 17, 'bad_key'],
    ['run-3', 18, 20, 'success'],
  ]);
  const msgs = messagesOf(good());
  assert.equal(msgs.get('m-analyst-1').text, '## Req');
  assert.equal(msgs.get('m-analyst-1').interrupted, 'retry');
});

async function rejects(mutate, pattern) {
  const ev = good();
  mutate(ev);
  await assert.rejects(verifyStream(ev, { threadId: T }), pattern);
}

test('verifyStream rejects broken streams, naming the seq', async () => {
  // seq gap / repeat
  await rejects((ev) => ev.splice(3, 1), /seq 5 where 4 was expected \(gap\)/);
  await rejects((ev) => (ev[4].seq = 4), /seq 4 where 5 was expected \(repeat\)/);
  // schema: delta must be a string
  await rejects((ev) => (ev[3].delta = 42), /seq 4 \(TEXT_MESSAGE_CONTENT\) fails the @ag-ui\/core schema/);
  // event between runs
  await rejects((ev) => ev.splice(14, 0, { type: 'STATE_DELTA', delta: [], seq: 15 }) && ev.forEach((e, i) => (e.seq = i + 1)), /outside any run/);
  // message not ended before the run ends
  await rejects((ev) => ev.splice(8, 1) && ev.forEach((e, i) => (e.seq = i + 1)), /still open/);
  // wrong thread
  await rejects((ev) => (ev[14].threadId = 'other'), /threadId other/);
  // does not start with RUN_STARTED
  await rejects((ev) => ev.shift() && ev.forEach((e, i) => (e.seq = i + 1)), /outside any run/);
  // the AG-UI verifier itself: content for a message that never started
  const ev = good();
  ev[6] = { ...ev[6], type: 'TEXT_MESSAGE_CONTENT', delta: 'x' };
  delete ev[6].role;
  delete ev[6].name;
  await assert.rejects(verifyStream(ev), /verifyEvents rejects event #6 seq 7 \(TEXT_MESSAGE_CONTENT\)/);
});

test('verifyStream: an unfinished last run passes unless complete is required', async () => {
  const ev = good().slice(0, 16);
  await verifyStream(ev, { threadId: T });
  await assert.rejects(verifyStream(ev, { threadId: T, complete: true }), /run-2 \(from seq 15\) never finished/);
});

test('applyPatch applies RFC 6902 ops and is strict about paths', () => {
  const doc = { run: { status: 'idle', n: 1 }, list: [1, 2] };
  const out = applyPatch(doc, [
    { op: 'replace', path: '/run/status', value: 'running' },
    { op: 'add', path: '/run/extra', value: { a: 1 } },
    { op: 'add', path: '/list/-', value: 3 },
    { op: 'add', path: '/list/0', value: 0 },
    { op: 'remove', path: '/run/n' },
    { op: 'test', path: '/list', value: [0, 1, 2, 3] },
    { op: 'copy', from: '/run/extra', path: '/copy' },
    { op: 'move', from: '/copy', path: '/moved' },
  ]);
  assert.deepEqual(out, { run: { status: 'running', extra: { a: 1 } }, list: [0, 1, 2, 3], moved: { a: 1 } });
  assert.deepEqual(doc, { run: { status: 'idle', n: 1 }, list: [1, 2] }, 'input untouched');
  assert.throws(() => applyPatch(doc, [{ op: 'replace', path: '/run/missing', value: 1 }]), /does not exist/);
  assert.throws(() => applyPatch(doc, [{ op: 'add', path: '/nope/x', value: 1 }]), /does not exist/);
  assert.throws(() => applyPatch(doc, [{ op: 'remove', path: '/list/5' }]), /out of range/);
  assert.throws(() => applyPatch(doc, [{ op: 'replace', path: 'run', value: 1 }]), /invalid JSON pointer/);
  assert.deepEqual(applyPatch({ 'a/b': { '~': 1 } }, [{ op: 'replace', path: '/a~1b/~0', value: 2 }]), { 'a/b': { '~': 2 } });
});

test('applyPatch agrees with the UI applier on the shared cases (tests/fixtures/json-patch.cases.json)', () => {
  const cases = JSON.parse(fs.readFileSync(new URL('../fixtures/json-patch.cases.json', import.meta.url), 'utf8'));
  for (const c of cases.cases) {
    const doc = structuredClone(cases.doc);
    if (c.error) assert.throws(() => applyPatch(doc, c.patch), new RegExp(c.error), c.name);
    else assert.deepEqual(applyPatch(doc, c.patch), c.expected, c.name);
    assert.deepEqual(doc, cases.doc, `${c.name}: input untouched`);
  }
});

test('freePort returns usable ports below the ephemeral range', async () => {
  const [lo] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    assert.ok(port >= 1024 && port < lo, `port ${port} is below the ephemeral range starting at ${lo}`);
    const srv = net.createServer();
    await new Promise((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((resolve) => srv.close(resolve));
  }
});
