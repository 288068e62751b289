// A session nobody can fill up: every table has a bound, catch-up is flow-controlled, and no
// frame is over 1 MiB. Against real `wrangler dev` with the demo provider.
//
//   - 1,500 start → cancel cycles with 8,000-character briefs leave the session under its
//     byte cap (stats: log, messages, artifacts, and the database file itself);
//   - a `hello` with any lastSeq is answered (welcome … caught_up) in time, with no frame
//     over 1 MiB, and a snapshot says how many older messages it left out;
//   - sockets that never read, sending `hello {lastSeq:0}` again and again, are sent at most
//     one catch-up page; re-syncs beyond the burst are refused; the runtime's memory and
//     /api/health latency are reported (a benchmark figure, not an assertion);
//   - a client that reads but never acknowledges is closed 4008 once 8 MiB are unacknowledged;
//   - an endless answer is stopped at 64 KiB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, createSession, getSession } from '../support/client.mjs';
import { growSession, nonReadingSockets } from '../support/growth.mjs';
import { ackedWithinRate, sleep } from '../support/e2e.mjs';

const MIB = 1024 * 1024;
// src/protocol/limits.rs: events 4 MiB + messages 2 MiB + 5 stages × 8 versions × 64 KiB + 64 KiB.
const SESSION_MAX_BYTES = 4 * MIB + 2 * MIB + 5 * 8 * 64 * 1024 + 64 * 1024;
const CYCLES = Number(process.env.GROWTH_CYCLES || 1500);

let worker;
let grown; // the session grown by the first test

before(async () => {
  worker = await startWorker({ name: '07-bounds', env: { DEMO_TOKEN_INTERVAL_MS: '1' } });
});
after(async () => {
  await worker?.stop();
});

test(`${CYCLES} start → cancel cycles with 8,000-character briefs stay under the session byte cap`, async () => {
  grown = await createSession(worker.url);
  const { ms, acks } = await growSession(worker.url, grown, { cycles: CYCLES });
  const { body } = await getSession(worker.url, grown);
  const s = body.stats;
  console.log(`# grew ${grown} in ${ms} ms (${acks} acks): lastSeq ${body.lastSeq}, log ${s.logBytes} B in ${s.events} events, messages ${s.messageBytes} B in ${s.messages}, artifacts ${s.artifactBytes} B, database ${s.dbBytes} B`);
  assert.equal(acks, 2 * CYCLES, 'every start and cancel was accepted');
  // How many events a cycle logs depends on how far the demo got before the cancel; what
  // matters is that the log saw several times what it keeps.
  assert.ok(body.lastSeq > 5 * s.events, `the log saw more than 5x its retention: ${body.lastSeq} events, ${s.events} kept`);
  assert.ok(s.logBytes <= 4 * MIB, `event log ${s.logBytes} B`);
  assert.ok(s.messageBytes <= 2 * MIB && s.messages <= 400, `messages ${s.messages}, ${s.messageBytes} B`);
  assert.ok(s.dbBytes <= SESSION_MAX_BYTES * 1.5, `database ${s.dbBytes} B over the cap ${SESSION_MAX_BYTES}`);
  assert.ok(s.oldestSeq > 1, 'the oldest history was dropped');
});

test('hello with any lastSeq is answered quickly, with no frame over 1 MiB; a snapshot counts what it left out', async () => {
  assert.ok(grown, 'needs the grown session');
  const { body } = await getSession(worker.url, grown);
  const newest = body.lastSeq;
  const oldest = body.stats.oldestSeq;
  for (const [label, lastSeq] of [['zero (snapshot: history trimmed)', 0], ['just inside the log', oldest], ['mid-log', Math.floor((oldest + newest) / 2)], ['newest', newest], ['ahead', newest + 1000]]) {
    const t0 = performance.now();
    const c = await SessionClient.open(worker.url, grown, { label: `hello-${label}`, lastSeq });
    const ms = performance.now() - t0;
    const maxFrame = Math.max(...c.received.map((r) => JSON.stringify(r.frame).length));
    console.log(`# hello ${label} (lastSeq ${lastSeq}): caught up in ${ms.toFixed(0)} ms, ${c.received.length} frames, largest ${maxFrame} B, mode ${c.welcomes[0].mode}`);
    assert.ok(maxFrame <= MIB, `${label}: a frame of ${maxFrame} B`);
    assert.equal(c.lastSeq, newest, label);
    assert.deepEqual([c.gaps, c.duplicates], [[], []], label);
    if (c.welcomes[0].mode === 'snapshot') {
      const caught = c.control.find((f) => f.frame.name === 'caught_up').frame.value;
      const shown = c.messages.size;
      assert.ok(caught.omittedMessages + shown === body.stats.messages, `${label}: ${shown} shown + ${caught.omittedMessages} omitted = ${body.stats.messages}`);
      // What a snapshot left out can be read over HTTP.
      const page = await (await fetch(`${worker.url}/api/sessions/${grown}/messages?offset=0`)).json();
      assert.equal(page.total, body.stats.messages);
      assert.ok(JSON.stringify(page).length <= MIB);
    }
    await c.close();
  }
});

test('sockets that never read and keep asking for everything are sent at most one page each', async () => {
  assert.ok(grown, 'needs the grown session');
  const figures = await nonReadingSockets(worker.url, grown, worker.pid, { sockets: 4, hellos: 5 });
  console.log(`# non-reading sockets: workerd RSS ${(figures.rssBefore / MIB).toFixed(0)} → peak ${(figures.rssPeak / MIB).toFixed(0)} → after ${(figures.rssAfter / MIB).toFixed(0)} MiB; /api/health ${figures.healthBeforeMs.toFixed(1)} ms before, median ${figures.healthMedianMs.toFixed(1)} / max ${figures.healthMaxMs.toFixed(1)} ms during`);
  console.log(`# per socket: ${JSON.stringify(figures.perSocket)}`);
  for (const s of figures.perSocket) {
    // One page (1 MiB) beyond the last ack (none), the frame that crosses it (a snapshot of at
    // most 512 KiB), and the small connection frames.
    assert.ok(s.bytes <= 1.6 * MIB, `a non-reading socket was sent ${s.bytes} B`);
    assert.ok(s.maxFrame <= MIB, `frame of ${s.maxFrame} B`);
    // A snapshot (hello {lastSeq:0} after the log was trimmed) is a whole catch-up; the hellos
    // past the re-sync burst of 3 were refused.
    assert.ok(s.caughtUp <= 3, `caught up ${s.caughtUp} times`);
  }
});

test('a client that reads but never acknowledges is closed 4008 past the 8 MiB window; one that acks is not', async (t) => {
  const id = await createSession(worker.url);
  const lazy = await SessionClient.open(worker.url, id, { label: 'no-acks', ack: false, lastSeq: 0 });
  const keepAlive = setInterval(() => lazy.isOpen && lazy.ws.send('ping'), 1000);
  const good = await SessionClient.open(worker.url, id, { label: 'acks' });
  const writers = [];
  for (let i = 0; i < 6; i++) writers.push(await SessionClient.open(worker.url, id, { label: `writer-${i}` }));
  const writer = writers[0];
  // However the test ends, nothing it opened keeps the test process alive.
  t.after(async () => {
    clearInterval(keepAlive);
    for (const c of [good, ...writers, lazy]) await c.close();
  });
  // Live events from many runs with long briefs (16 KB each): more than 8 MiB in all.
  let n = 0;
  while (lazy.closes.length === 0 && n < 1500) {
    const w = writers[n % writers.length];
    // A loaded machine may take seconds to answer while the window fills: wait up to 30 s.
    await ackedWithinRate(w, { type: 'start', brief: `${n++} `.padEnd(8000, 'é'), approval: 'auto' });
    await ackedWithinRate(w, { type: 'cancel' });
  }
  clearInterval(keepAlive);
  const closed = await Promise.race([lazy.ws.closed, sleep(5000).then(() => null)]);
  assert.ok(closed, `the non-acking client was never closed (${n} cycles)`);
  assert.equal(closed.code, 4008, JSON.stringify(closed));
  assert.equal(good.closes.length, 0, 'the acking client stays');
  assert.ok(good.acksSent > 0);
  // It reconnects and catches up exactly, as after any drop.
  await lazy.reconnect();
  await sleep(300);
  assert.equal(lazy.lastSeq, writer.lastSeq);
});

test('GET /events and /messages refuse out-of-range numbers before converting them', async () => {
  const id = await createSession(worker.url);
  for (const q of ['after=9223372036854775808', 'after=18446744073709551615', 'after=-1', 'limit=0', 'limit=1001', 'after=1e3']) {
    const r = await fetch(`${worker.url}/api/sessions/${id}/events?${q}`);
    const body = await r.json();
    assert.equal(r.status, 400, `${q}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, 'invalid_field', q);
  }
  const ok = await fetch(`${worker.url}/api/sessions/${id}/events?after=9223372036854775807`);
  assert.equal(ok.status, 200, 'the largest seq a client may name');
  assert.deepEqual((await ok.json()).events, []);
  for (const q of ['version=4294967296', 'version=-1', 'version=x']) {
    const r = await fetch(`${worker.url}/api/sessions/${id}/artifacts/analyst?${q}`);
    assert.equal(r.status, 400, q);
  }
  const r = await fetch(`${worker.url}/api/sessions/${id}/messages?offset=99999999999999999999`);
  assert.equal(r.status, 400);
});
