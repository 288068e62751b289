// Heartbeats: a socket that sends nothing is closed 1001 by the alarm sweep; one that sends the
// plain text `ping` (answered `pong` by the runtime's auto-response, without waking the
// session) stays open. SOCKET_IDLE_MS shortens the 90 s default for the test. And the timers
// behind the one alarm: the session's schedule table (stats.timers) holds a row for each
// timer it needs, and only its idle expiry once it is idle with no socket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, createSession, getSession } from '../support/client.mjs';
import { mustAck, sleep, waitRunEnd } from '../support/e2e.mjs';

const IDLE_MS = 2000;
let worker;

before(async () => {
  worker = await startWorker({ name: '05-idle', env: { SOCKET_IDLE_MS: String(IDLE_MS), DEMO_TOKEN_INTERVAL_MS: '2' } });
});
after(async () => {
  await worker?.stop();
});

test('a silent socket is swept (1001) while a pinging one stays open', async () => {
  const id = await createSession(worker.url);
  const silent = new SessionClient(worker.url, id, { label: 'silent' });
  await silent.connect();
  await silent.hello();
  const pinger = new SessionClient(worker.url, id, { label: 'pinger' });
  await pinger.connect();
  await pinger.hello();
  let pongs = 0;
  pinger.ws.on('message', (data) => {
    if (data.toString() === 'pong') pongs++;
  });
  const timer = setInterval(() => pinger.ws.send('ping'), 300);
  try {
    const closed = await Promise.race([silent.ws.closed, sleep(IDLE_MS * 5).then(() => null)]);
    assert.ok(closed, `the silent socket was not closed within ${IDLE_MS * 5} ms`);
    assert.equal(closed.code, 1001, JSON.stringify(closed));
    assert.equal(closed.reason, 'idle');
    // The pinger outlives another full idle period.
    await sleep(IDLE_MS * 1.5);
    assert.equal(pinger.closes.length, 0, `pinger closed: ${JSON.stringify(pinger.closes)}`);
    assert.ok(pongs >= 5, `auto-response pongs: ${pongs}`);
    const { body } = await getSession(worker.url, id);
    assert.equal(body.stats.sockets, 1, 'only the pinger is left');
  } finally {
    clearInterval(timer);
    await pinger.close();
  }
});

test('the schedule table: a sweep while sockets are open, call and live timers while a call runs, only the expiry when idle', async () => {
  const id = await createSession(worker.url);
  const all = async () => (await getSession(worker.url, id)).body.stats.timers;
  // Every session has its idle expiry (7 days by default); the rest come and go.
  const timers = async () => {
    const t = await all();
    assert.ok(t.expire > Date.now() + 6 * 86_400_000, `expiry row: ${JSON.stringify(t)}`);
    delete t.expire;
    return t;
  };
  assert.deepEqual(await timers(), {}, 'a new session with no socket has only its expiry');
  const c = await SessionClient.open(worker.url, id, { label: 'timers' });
  const keepAlive = setInterval(() => c.ws.send('ping'), 300);
  try {
    const open = await timers();
    assert.deepEqual(Object.keys(open), ['sweep']);
    assert.ok(open.sweep > Date.now() - 1000 && open.sweep <= Date.now() + IDLE_MS, `sweep due within the sweep interval: ${JSON.stringify(open)}`);

    await mustAck(c, { type: 'start', brief: 'A recipe planner for busy families.', approval: 'each_stage' });
    await c.waitFor((e) => e.type === 'TEXT_MESSAGE_START' && e.role === 'assistant', 10000);
    const running = await timers();
    assert.deepEqual(Object.keys(running).sort(), ['call', 'live', 'sweep'], `while the analyst streams: ${JSON.stringify(running)}`);
    assert.ok(running.live <= Date.now() + 5000, 'the crash-recovery timer is at most 5 s away');

    await waitRunEnd(c, 'run-1', 30000);
    assert.deepEqual(Object.keys(await timers()), ['sweep'], 'at the gate only the sweep is left');
  } finally {
    clearInterval(keepAlive);
    await c.close();
  }
  let left;
  for (let i = 0; i < 50; i++) {
    left = await timers();
    if (Object.keys(left).length === 0) break;
    await sleep(100);
  }
  assert.deepEqual(left, {}, 'with no socket and no call, only the expiry is left');
});
