// Tool calls across a process kill: SIGKILL `wrangler dev` while the Developer streams its
// summary after writing its files (demo provider, whose call ids are stable), restart on the
// same state, and check that the rerun attempt's calls are answered from their first
// application — each file written once, no second version — and that the run completes with
// the whole project.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, workerSnapshot } from '../support/harness.mjs';
import { SessionClient, createSession, fetchEvents } from '../support/client.mjs';
import { verifyStream } from '../support/agui.mjs';
import { checkInvariants, mustAck, sleep } from '../support/e2e.mjs';

let w1;
let w2;
let cwd;
// Slow enough that the kill lands in the Developer's summary, fast enough for CI.
const env = { DEMO_TOKEN_INTERVAL_MS: '8', LLM_STALL_TIMEOUT_MS: '5000' };

before(() => {
  cwd = workerSnapshot();
});
after(async () => {
  await w1?.kill().catch(() => {});
  await w2?.stop();
});

async function reconnect(c) {
  for (let i = 0; i < 30; i++) {
    try {
      return (await c.reconnect({ abrupt: true })).welcome;
    } catch {
      await sleep(200);
    }
  }
  throw new Error('could not reconnect after the restart');
}

test('a kill after the Developer wrote its files: the replayed calls write nothing twice and the project is whole', { timeout: 180000 }, async () => {
  w1 = await startWorker({ name: 'restart-files-1', env, cwd });
  const id = await createSession(w1.url);
  const c = await SessionClient.open(w1.url, id, { label: 'owner' });
  await mustAck(c, { type: 'start', brief: 'A recipe box for a family', approval: 'auto' });
  // The Developer's files are written (their results logged); its summary is streaming.
  const firstResults = [];
  await c.waitFor((e) => {
    if (e.type === 'TOOL_CALL_RESULT' && e.toolCallId.includes('demo_developer')) firstResults.push(e);
    return firstResults.length === 3;
  }, 90000, { what: "the Developer's three tool results" });
  await c.waitFor((e, cl) => e.type === 'TEXT_MESSAGE_CONTENT' && cl.messages.get(e.messageId)?.name === 'Developer', 20000);
  const before = await (await fetch(`${w1.url}/api/sessions/${id}/files`)).json();
  assert.deepEqual(before.files.map((f) => f.path), ['README.md', 'package.json', 'public/index.html', 'src/app.js', 'src/server.js']);
  await w1.kill();
  await c.waitForClose(10000);

  w2 = await startWorker({ name: 'restart-files-2', env, cwd, persistDir: w1.persistDir, port: w1.port });
  await reconnect(c);
  const end = await c.waitForRunEnd(120000, { what: 'the run end' });
  assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));

  const events = await fetchEvents(w2.url, id, 0);
  checkInvariants(events, 'restart-files');
  await verifyStream(events, { threadId: id, complete: true, label: 'restart-files log' });
  // The rerun of the attempt made the same calls; they were answered with the first results.
  const dev = events.filter((e) => e.type === 'TOOL_CALL_RESULT' && e.toolCallId.includes('demo_developer'));
  assert.equal(dev.length, 6, 'three calls before the kill, the same three after');
  assert.deepEqual(dev.slice(3).map((e) => e.content), firstResults.map((e) => e.content));
  assert.ok(events.some((e) => e.type === 'CUSTOM' && e.name === 'message_interrupted' && e.value.reason === 'restart'));

  const after = await (await fetch(`${w2.url}/api/sessions/${id}/files`)).json();
  for (const f of after.files.filter((f) => ['src/app.js', 'src/server.js', 'public/index.html'].includes(f.path))) {
    assert.equal(f.versions.length, 1, `${f.path} written once`);
    assert.equal(f.version, before.files.find((b) => b.path === f.path).version, `${f.path} is the row from before the kill`);
  }
  assert.equal(after.files.length, 8, 'the whole project');
  c.close();
});
