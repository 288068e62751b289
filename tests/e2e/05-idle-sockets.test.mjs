// Heartbeats: a socket that sends nothing is closed 1001 by the alarm sweep; one that sends the
// plain text `ping` (answered `pong` by the runtime's auto-response, without waking the
// session) stays open. SOCKET_IDLE_MS shortens the 90 s default for the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, createSession, getSession } from '../support/client.mjs';
import { sleep } from '../support/e2e.mjs';

const IDLE_MS = 2000;
let worker;

before(async () => {
  worker = await startWorker({ name: '05-idle', env: { SOCKET_IDLE_MS: String(IDLE_MS) } });
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
