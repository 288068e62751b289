// The session protocol end to end: every rejection, frame limits, flooding, idempotency,
// reconnects cut at random moments during a live stream (transcripts must equal an
// uninterrupted client's and GET /events), tabs, seq, state from deltas, snapshot mode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { SessionClient, createSession, fetchEvents, getSession } from '../support/client.mjs';
import { verifyStream, messagesOf } from '../support/agui.mjs';
import { canon } from '../support/json-patch.mjs';
import {
  STAGES, NAMES, tag, briefFor, newSessionClient, assertClean, assertSameEvents, finalChecks, ofType, prng, mustAck, mustReject, sleep,
} from '../support/e2e.mjs';

let fake;
let worker;

before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 2 });
  worker = await startWorker({
    name: '02-protocol',
    env: { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test-key-protocol', OPENAI_MODEL: 'fake-model-2' },
  });
});
after(async () => {
  await worker?.stop();
  await fake?.close();
});

test('every rejection code is reachable, specific, unlogged, and changes nothing', async () => {
  const { id, client: c } = await newSessionClient(worker, { label: 'rejections' });
  const before = await getSession(worker.url, id);

  // Frame-level problems: no id can be read, so the answer is the next rejected frame.
  let r = await c.sendAndNextAnswer('{"type": "start", ');
  assert.equal(r.kind, 'rejected');
  assert.equal(r.code, 'invalid_json', JSON.stringify(r));
  r = await c.sendAndNextAnswer(Buffer.from([1, 2, 3, 4]), 10000, { binary: true });
  assert.equal(r.code, 'binary_frame', JSON.stringify(r));
  r = await c.sendAndNextAnswer('[1,2,3]');
  assert.equal(r.code, 'not_an_object', JSON.stringify(r));
  r = await c.sendAndNextAnswer('"start"');
  assert.equal(r.code, 'not_an_object', JSON.stringify(r));

  // Command-level problems: the rejection names the command and echoes the id.
  const u = await mustReject(c, { type: 'dance' }, 'unknown_type');
  assert.equal(u.command, 'dance');
  assert.match(u.id, /^c/);
  await mustReject(c, { id: undefined }, 'missing_field'); // no type at all
  await mustReject(c, { type: 'start', approval: 'auto' }, 'missing_field');
  // (start without "approval" defaults to each_stage in the server; not a rejection)
  await mustReject(c, { type: 'start', brief: 42, approval: 'auto' }, 'invalid_field');
  await mustReject(c, { type: 'start', brief: 'ok', approval: 'sometimes' }, 'invalid_field');
  await mustReject(c, { type: 7 }, 'invalid_field');
  // An invalid idempotency key cannot be echoed as an id: take the next answer.
  for (const badId of ['bad id with spaces!', 'x'.repeat(65), '', 17]) {
    r = await c.sendAndNextAnswer(JSON.stringify({ type: 'pause', id: badId }));
    assert.deepEqual([r.kind, r.code], ['rejected', 'invalid_field'], `id ${JSON.stringify(badId)}: ${JSON.stringify(r)}`);
  }
  await mustReject(c, { type: 'start', brief: '', approval: 'auto' }, 'brief_empty');
  await mustReject(c, { type: 'start', brief: ' \n\t  ', approval: 'auto' }, 'brief_empty');
  const long = await mustReject(c, { type: 'start', brief: 'b'.repeat(8001), approval: 'auto' }, 'brief_too_long');
  assert.match(long.message, /8000|8,000/, 'the message names the limit');
  await mustReject(c, { type: 'approve' }, 'missing_field');
  await mustReject(c, { type: 'approve', stage: 'janitor' }, 'unknown_stage');
  await mustReject(c, { type: 'reject', stage: 'analyst', feedback: '   ' }, 'feedback_empty');
  await mustReject(c, { type: 'reject', stage: 'analyst', feedback: 'f'.repeat(4001) }, 'feedback_too_long');
  await mustReject(c, { type: 'retry', stage: 'nobody' }, 'unknown_stage');

  // State problems: valid commands that do not fit an idle session.
  const ap = await mustReject(c, { type: 'approve', stage: 'analyst' }, 'invalid_state');
  assert.match(ap.message, /gate|approv/i, `should say there is no open gate: ${ap.message}`);
  await mustReject(c, { type: 'reject', stage: 'analyst', feedback: 'more' }, 'invalid_state');
  await mustReject(c, { type: 'pause' }, 'invalid_state');
  await mustReject(c, { type: 'resume' }, 'invalid_state');
  await mustReject(c, { type: 'cancel' }, 'invalid_state');
  await mustReject(c, { type: 'retry', stage: 'analyst' }, 'invalid_state');

  // hello_required: a socket whose first frame is not hello.
  const raw = new SessionClient(worker.url, id, { label: 'no-hello' });
  await raw.connect();
  await mustReject(raw, { type: 'start', brief: 'hi', approval: 'auto' }, 'hello_required');
  await raw.close();

  // None of this was logged or changed anything.
  for (const { frame } of c.control) assert.equal(frame.seq, undefined, `unlogged: ${JSON.stringify(frame)}`);
  const afterState = await getSession(worker.url, id);
  assert.equal(afterState.body.lastSeq, before.body.lastSeq);
  assert.deepEqual(canon(afterState.body.state), canon(before.body.state));
  assert.deepEqual(await fetchEvents(worker.url, id, 0), []);
  assert.equal(c.transcript.length, 0);
  assert.equal(fake.requests.filter((q) => q.body && JSON.stringify(q.body).includes(id)).length, 0);
  assert.ok(c.isOpen, 'bad commands do not close the socket');
  await c.close();
});

test('brief of exactly 8000 chars (after trimming) is accepted; start while running is invalid_state', async () => {
  const t = tag('limits');
  fake.setScenario(t, [{ tokens: 60, delayMs: 10 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'limits' });
  const text = briefFor(t);
  const brief = `  ${text}${'x'.repeat(8000 - text.length)}  `;
  await mustAck(c, { type: 'start', brief, approval: 'auto' });
  const st = await mustReject(c, { type: 'start', brief: 'again', approval: 'auto' }, 'invalid_state');
  assert.match(st.message, /run|running|progress/i, st.message);
  await mustReject(c, { type: 'resume' }, 'invalid_state');
  await mustReject(c, { type: 'approve', stage: 'analyst' }, 'invalid_state');
  const end = await c.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', 60000);
  assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
  assert.deepEqual(end.outcome, { type: 'success' });
  // The user message is the trimmed brief.
  const user = [...c.messages.values()].find((m) => m.role === 'user');
  assert.equal(user.text, brief.trim());
  assert.equal(user.name, 'You');
  await finalChecks(worker, id, c);
  await c.close();
});

test('duplicate idempotency key: answered ack duplicate:true and applied once', async () => {
  const t = tag('idem');
  fake.setScenario(t, [{ tokens: 80, delayMs: 15 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'idem' });
  const first = await c.send({ type: 'start', id: 'start-once', brief: briefFor(t), approval: 'auto' });
  assert.deepEqual({ kind: first.kind, id: first.id, command: first.command, duplicate: first.duplicate }, { kind: 'ack', id: 'start-once', command: 'start', duplicate: false });
  const second = await c.send({ type: 'start', id: 'start-once', brief: briefFor(t), approval: 'auto' });
  assert.deepEqual({ kind: second.kind, id: second.id, duplicate: second.duplicate }, { kind: 'ack', id: 'start-once', duplicate: true }, JSON.stringify(second));
  // pause twice with the same key: the second would be invalid_state if applied again
  await c.waitFor((e) => e.type === 'TEXT_MESSAGE_CONTENT', 10000);
  const p1 = await c.send({ type: 'pause', id: 'pause-k' });
  assert.equal(p1.kind, 'ack', JSON.stringify(p1));
  const p2 = await c.send({ type: 'pause', id: 'pause-k' });
  assert.deepEqual([p2.kind, p2.duplicate], ['ack', true], JSON.stringify(p2));
  // A different client reusing the key on the same session is also a duplicate (keys are per session).
  const other = await SessionClient.open(worker.url, id, { label: 'idem-2' });
  const p3 = await other.send({ type: 'pause', id: 'pause-k' });
  assert.deepEqual([p3.kind, p3.duplicate], ['ack', true], JSON.stringify(p3));
  await c.waitForState((s) => s.run.status === 'paused', 20000);
  await mustAck(c, { type: 'resume' });
  await c.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', 60000);
  const { events } = await finalChecks(worker, id, [c, other]);
  assert.equal(ofType(events, 'RUN_STARTED').length, 1, 'one run');
  assert.equal([...messagesOf(events).values()].filter((m) => m.role === 'user').length, 1, 'one brief message');
  await c.close();
  await other.close();
});

test('a frame over 64 KiB closes the socket with 1009; a large valid-size frame does not', async () => {
  const { client: c } = await newSessionClient(worker, { label: 'big' });
  // 60 KiB: under the limit, answered with a rejection (brief too long), socket stays open.
  const r = await c.send({ type: 'start', brief: 'x'.repeat(60 * 1024), approval: 'auto' });
  assert.equal(r.code, 'brief_too_long', JSON.stringify(r));
  assert.ok(c.isOpen);
  c.sendRaw(JSON.stringify({ type: 'start', brief: 'y'.repeat(65 * 1024), approval: 'auto' }));
  const closed = await c.waitForClose(10000);
  assert.equal(closed.code, 1009, `close code ${closed.code} ${closed.reason}`);
});

test('flooding: a warning (rate_limited), then a 1008 close', async () => {
  const { client: c } = await newSessionClient(worker, { label: 'flood' });
  for (let i = 0; i < 300 && c.isOpen; i++) c.sendRaw(JSON.stringify({ type: 'ping' }));
  const warning = await c.waitForControl((f) => f.type === 'CUSTOM' && f.name === 'warning', 10000);
  assert.equal(warning.value.code, 'rate_limited', JSON.stringify(warning));
  assert.ok(typeof warning.value.message === 'string' && warning.value.message.length > 10);
  const closed = await c.waitForClose(10000);
  assert.equal(closed.code, 1008, `close code ${closed.code} ${closed.reason}`);
  const warnAt = c.control.findIndex((x) => x.frame.type === 'CUSTOM' && x.frame.name === 'warning');
  const pongs = c.control.slice(0, warnAt).filter((x) => x.frame.name === 'pong').length;
  assert.ok(pongs >= 20 && pongs <= 60, `about the burst (40) answered before the warning, got ${pongs}`);
});

test('commands over the rate are each answered rejected rate_limited with their id, and not applied', async () => {
  const { client: c } = await newSessionClient(worker, { label: 'command-flood' });
  const answers = await Promise.all(Array.from({ length: 45 }, (_, i) => c.send({ type: 'pause', id: `flood-${i}` })));
  const limited = answers.filter((a) => a.kind === 'rejected' && a.code === 'rate_limited');
  assert.ok(limited.length >= 1, `some of 45 commands at once were over the burst of 40: ${JSON.stringify(answers.slice(-6))}`);
  for (const a of limited) {
    assert.match(a.id, /^flood-\d+$/);
    assert.equal(a.command, 'pause');
    assert.match(a.message, /not applied/);
  }
  // The others were answered as usual (pause with no run: invalid_state).
  assert.equal(answers.length, 45);
  assert.ok(c.isOpen, 'a short burst over the rate does not close the socket');
  await sleep(2100);
  const later = await c.send({ type: 'pause', id: 'after-the-burst' });
  assert.notEqual(later.code, 'rate_limited', 'the budget refills: 20 commands a second');
  await c.close();
});

test('a moderate command rate (10/s) is never warned', async () => {
  const { client: c } = await newSessionClient(worker, { label: 'moderate' });
  for (let i = 0; i < 30; i++) {
    c.sendRaw(JSON.stringify({ type: 'ping' }));
    await sleep(100);
  }
  await c.waitForControl((f, x) => c.control.filter((y) => y.frame.name === 'pong').length >= 30, 5000);
  assert.equal(c.control.filter((x) => x.frame.name === 'warning').length, 0);
  assert.ok(c.isOpen);
  await c.close();
});

test('reconnects cut at random moments during a stream lose nothing and repeat nothing', async () => {
  const seed = Number(process.env.E2E_SEED || Date.now() % 100000);
  const rnd = prng(seed);
  const t = tag('cuts');
  // ~5 stages x 50 tokens x 8 ms = ~2 s of streaming
  fake.setScenario(t, [{ tokens: 50, delayMs: 8 }]);
  const id = await createSession(worker.url);
  const ref = await SessionClient.open(worker.url, id, { label: 'uninterrupted' });
  const tab2 = await SessionClient.open(worker.url, id, { label: 'second-tab' });
  const cut1 = await SessionClient.open(worker.url, id, { label: `cut-close(seed ${seed})` });
  const cut2 = await SessionClient.open(worker.url, id, { label: `cut-terminate(seed ${seed})` });
  await mustAck(ref, { type: 'start', brief: briefFor(t), approval: 'auto' });

  let done = false;
  const end = ref.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', 60000).finally(() => (done = true));
  const cuts = { close: 0, terminate: 0 };
  async function chaos(c, abrupt, n) {
    for (let i = 0; i < n && !done; i++) {
      await sleep(100 + rnd() * 400);
      if (done) break;
      if (abrupt) c.terminate();
      else await c.close();
      cuts[abrupt ? 'terminate' : 'close']++;
      await sleep(rnd() * 150); // events keep coming while it is away
      await c.reconnect();
    }
  }
  // A late joiner replays from 0 while events are being produced.
  const late = (async () => {
    await sleep(600 + rnd() * 300);
    return SessionClient.open(worker.url, id, { label: 'late-joiner' });
  })();
  await Promise.all([chaos(cut1, false, 3 + Math.floor(rnd() * 3)), chaos(cut2, true, 3 + Math.floor(rnd() * 3))]);
  const lateClient = await late;
  const endEvent = await end;
  assert.equal(endEvent.type, 'RUN_FINISHED', JSON.stringify(endEvent));
  // Let stragglers arrive, then compare.
  for (const c of [tab2, cut1, cut2, lateClient]) await c.waitFor((e) => e.seq === endEvent.seq, 10000);
  assert.ok(cuts.close + cuts.terminate >= 3, `at least 3 cuts happened during the stream (${JSON.stringify(cuts)}); seed ${seed}`);

  const { events } = await finalChecks(worker, id, [ref, tab2, cut1, cut2, lateClient]);
  for (const c of [tab2, cut1, cut2, lateClient]) assertSameEvents(c.transcript, ref.transcript, `${c.label} vs uninterrupted`);
  // seq starts at 1 with no gaps (also checked by verifyStream)
  assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
  // The reconnecting clients got replay, not snapshots, and each welcome told the truth.
  for (const c of [cut1, cut2]) {
    assert.equal(c.welcomes.length, c.connections);
    for (const w of c.welcomes.slice(1)) assert.equal(w.mode, 'replay', JSON.stringify(w));
  }
  // Texts: every client reconstructs the same five agent messages.
  const texts = (c) => JSON.stringify([...c.messages.values()].map((m) => [m.name, m.text]));
  for (const c of [tab2, cut1, cut2, lateClient]) assert.equal(texts(c), texts(ref), `${c.label} messages`);
  for (const c of [ref, tab2, cut1, cut2, lateClient]) await c.close();
});

test('GET /events pages (limit) give the same events; after beyond the end is empty', async () => {
  const t = tag('pages');
  fake.setScenario(t, [{ tokens: 20, delayMs: 1 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'pages' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  await c.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', 60000);
  const all = await fetchEvents(worker.url, id, 0);
  const paged = await fetchEvents(worker.url, id, 0, { limit: 7 });
  assertSameEvents(paged, all, 'limit=7 pages');
  const tail = await fetchEvents(worker.url, id, 10);
  assertSameEvents(tail, all.slice(10), 'after=10');
  const res = await fetch(`${worker.url}/api/sessions/${id}/events?after=${all.length}`);
  const body = await res.json();
  assert.equal(res.status, 200);
  assert.deepEqual(body.events, []);
  assert.equal(body.more, false);
  assert.equal(body.lastSeq, all.length);
  const one = await (await fetch(`${worker.url}/api/sessions/${id}/events?after=0&limit=1`)).json();
  assert.equal(one.events.length, 1);
  assert.equal(one.more, true);
  await finalChecks(worker, id, c);
  await c.close();
});

test('hello with lastSeq mid-log replays exactly the rest; ahead of the server gets a snapshot', async () => {
  const t = tag('replay');
  fake.setScenario(t, [{ tokens: 20, delayMs: 1 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'writer' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  await c.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', 60000);
  const all = await fetchEvents(worker.url, id, 0);
  const k = Math.floor(all.length / 2);

  const mid = new SessionClient(worker.url, id, { label: 'mid' });
  await mid.connect();
  const { welcome, caughtUp } = await mid.hello(k);
  assert.equal(welcome.mode, 'replay');
  assert.equal(welcome.lastSeq, all.length, 'welcome.lastSeq is the server\'s last seq');
  assert.equal(caughtUp.lastSeq, all.length);
  assertSameEvents(mid.transcript, all.slice(k), `replay after ${k}`);
  // (it joined mid-log without a state, so only seq faults apply)
  assert.deepEqual([mid.duplicates.length, mid.gaps.length], [0, 0]);

  const ahead = new SessionClient(worker.url, id, { label: 'ahead' });
  await ahead.connect();
  const h = await ahead.hello(all.length + 1000);
  assert.equal(h.welcome.mode, 'snapshot', JSON.stringify(h.welcome));
  assert.equal(h.welcome.lastSeq, all.length);
  const snapState = ahead.control.find((x) => x.frame.type === 'STATE_SNAPSHOT');
  const snapMsgs = ahead.control.find((x) => x.frame.type === 'MESSAGES_SNAPSHOT');
  assert.ok(snapState && snapMsgs, 'snapshot mode sends STATE_SNAPSHOT and MESSAGES_SNAPSHOT');
  assert.equal(snapState.frame.seq, undefined);
  const server = await getSession(worker.url, id);
  assert.deepEqual(canon(ahead.state), canon(server.body.state));
  assert.equal(ahead.transcript.length, 0);
  // The messages snapshot holds the same texts the log does.
  const logTexts = [...messagesOf(all).values()].map((m) => [m.messageId, m.role, m.text]);
  const snapTexts = snapMsgs.frame.messages.map((m) => [m.id, m.role, m.content]);
  assert.deepEqual(snapTexts, logTexts);

  // A fresh session (no events yet) joins in snapshot mode per the protocol.
  const freshId = await createSession(worker.url);
  const fresh = new SessionClient(worker.url, freshId, { label: 'fresh' });
  await fresh.connect();
  const f = await fresh.hello(0);
  assert.equal(f.welcome.mode, 'snapshot', JSON.stringify(f.welcome));
  assert.equal(f.welcome.lastSeq, 0);
  assert.equal(fresh.state?.run?.status, 'idle');
  for (const x of [c, mid, ahead, fresh]) await x.close();
});

test('state from deltas equals the server state at every gate; text deltas are coalesced, exact', async () => {
  const t = tag('gates');
  fake.setScenario(t, [{ tokens: 60, delayMs: 0 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'gates' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'each_stage' });
  for (const stage of STAGES) {
    const end = await c.waitFor((e) => e.type === 'RUN_FINISHED' && e.outcome?.type === 'interrupt' && e.outcome.interrupts?.[0]?.id === `gate-${stage}-1`, 30000, { what: `gate-${stage}-1` });
    assert.ok(end);
    const server = await getSession(worker.url, id);
    assert.deepEqual(canon(c.state), canon(server.body.state), `state at gate ${stage}`);
    assert.equal(server.body.lastSeq, c.lastSeq);
    await mustAck(c, { type: 'approve', stage });
  }
  await c.waitFor((e) => e.type === 'RUN_FINISHED' && e.outcome?.type === 'success', 30000);
  const { events } = await finalChecks(worker, id, c);
  // Coalescing: 60 tokens sent back to back arrive as far fewer TEXT_MESSAGE_CONTENT events,
  // and the concatenation is exactly the provider's text.
  const reqs = fake.requestsFor(t);
  assert.equal(reqs.length, 5);
  const msgs = [...messagesOf(events).values()].filter((m) => m.role === 'assistant');
  assert.deepEqual(msgs.map((m) => m.name), STAGES.map((s) => NAMES[s]));
  msgs.forEach((m, i) => {
    assert.equal(m.text, reqs[i].text, `${m.name} text equals the provider's`);
    const n = events.filter((e) => e.type === 'TEXT_MESSAGE_CONTENT' && e.messageId === m.messageId).length;
    assert.ok(n >= 1 && n < 30, `${m.name}: 60 back-to-back tokens should be coalesced, got ${n} content events`);
  });
  await c.close();
});

test('hello again on the same socket re-syncs: nothing missing, re-sent events identical', async () => {
  const t = tag('rehello');
  fake.setScenario(t, [{ tokens: 40, delayMs: 10 }]);
  const { id, client: c } = await newSessionClient(worker, { label: 'rehello' });
  await mustAck(c, { type: 'start', brief: briefFor(t), approval: 'auto' });
  for (let i = 0; i < 3; i++) {
    await c.waitFor((e) => e.type === 'TEXT_MESSAGE_CONTENT', 10000, { from: c.transcript.length });
    const { welcome } = await c.hello(c.lastSeq);
    assert.equal(welcome.mode, 'replay');
  }
  await c.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', 60000);
  // Events broadcast between the client sending hello and the server reading it are sent
  // again by the replay (the contract says clients drop seq <= lastSeq); they must be exact
  // copies of what was already received, and nothing may be missing.
  const bySeq = new Map(c.transcript.map((e) => [e.seq, e]));
  for (const d of c.duplicates) assert.deepEqual(d, bySeq.get(d.seq), `re-sent seq ${d.seq} differs from the original`);
  c.duplicates.length = 0;
  await finalChecks(worker, id, c);
  await c.close();
});

test('two tabs approving the same gate at once: one ack, one invalid_state, one next run', async () => {
  const t = tag('race');
  fake.setScenario(t, [{ ok: true }]);
  const { id, client: a } = await newSessionClient(worker, { label: 'race-a' });
  const b = await SessionClient.open(worker.url, id, { label: 'race-b' });
  await mustAck(a, { type: 'start', brief: briefFor(t), approval: 'each_stage' });
  await a.waitFor((e) => e.type === 'RUN_FINISHED' && e.runId === 'run-1', 20000);
  await b.waitFor((e) => e.type === 'RUN_FINISHED' && e.runId === 'run-1', 20000);
  const answers = await Promise.all([a.send({ type: 'approve', stage: 'analyst' }), b.send({ type: 'approve', stage: 'analyst' })]);
  assert.deepEqual(answers.map((x) => x.kind).sort(), ['ack', 'rejected'], JSON.stringify(answers));
  assert.equal(answers.find((x) => x.kind === 'rejected').code, 'invalid_state');
  await a.waitFor((e) => (e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR') && e.runId === 'run-2', 20000);
  await b.waitFor((e) => (e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR') && e.runId === 'run-2', 20000);
  const { events } = await finalChecks(worker, id, [a, b]);
  assert.equal(ofType(events, 'RUN_STARTED').length, 2);
  assert.equal(fake.requestsFor(t).length, 2, 'the architect ran once');
  await a.close();
  await b.close();
});

test('a read the session does not answer in time is asked once more, then answered 503 session_busy; no client waits for ever', async () => {
  // READ_DELAY_MS (tests only) holds every read in the session object past the router's deadline.
  const slow = await startWorker({ name: '02-slow-reads', env: { READ_DELAY_MS: '3000', READ_DEADLINE_MS: '400' } });
  try {
    const id = await createSession(slow.url);
    const t0 = Date.now();
    const res = await fetch(`${slow.url}/api/sessions/${id}/events?after=0`);
    const ms = Date.now() - t0;
    const body = await res.json();
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, 'session_busy');
    assert.match(body.error.message, /try again/i);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.ok(ms >= 800 && ms < 2500, `answered after two deadlines, not after the session: ${ms} ms`);
    await sleep(300);
    const slowLines = slow.logs().split('\n').filter((l) => l.includes('"session_slow"'));
    assert.deepEqual(slowLines.map((l) => JSON.parse(l.slice(l.indexOf('{'))).attempt), [1, 2], slowLines.join('\n'));
    assert.match(slowLines[0], /"route":"\/events"/);
    // Only reads wait: the socket and its commands do not go through this path.
    const c = await SessionClient.open(slow.url, id, { label: 'slow-reads' });
    await mustAck(c, { type: 'start', brief: 'A to-do app with due dates.', approval: 'auto' });
    await c.close();
  } finally {
    await slow.stop();
  }
  // A read that answers within the deadline is answered once: every other test here.
  const { status } = await getSession(worker.url, (await createSession(worker.url)));
  assert.equal(status, 200);
});
