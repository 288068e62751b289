// What a model controls is bounded (issue 33), against real `wrangler dev` with the OpenAI
// test double scripting each attack (tests/support/model-attacks.mjs; `make bench` runs them
// at full size as its model-bounds step):
//
//   - writing sixteen 240 KiB files a round: no request carries more than 1 MiB of tool
//     context besides its prompt (docs/protocol.md, Limits: tool context resent);
//   - reading one 250 KiB file sixteen times a round over four stages: the session's stored
//     bytes stay within its bound (reads are stored as digests), and after a restart it loads;
//   - 64 MiB of reasoning: the attempt stops at 256 KiB with `reasoning_too_long`, and the
//     provider's stream is aborted.
// The runtime's memory and /api/health latency are printed (benchmark figures, not asserted).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { getSession } from '../support/client.mjs';
import { ATTACK_ENV, attack, readFloodSteps, reasoningFloodSteps, requestSizes, writeFloodSteps } from '../support/model-attacks.mjs';

const KIB = 1024;
const MIB = 1024 * KIB;
// src/session/call/history.rs MAX_TOOL_CONTEXT_BYTES, plus the prompt (brief, earlier artifacts),
// the attempt's text (64 KiB) and the JSON around each message.
const MAX_REQUEST_BYTES = MIB + 256 * KIB;
// docs/protocol.md: a session's data ≈ 8.6 MiB, the project 4 MiB, its kept versions 16 MiB.
const SESSION_WITH_PROJECT_BYTES = 8.6 * MIB + 4 * MIB + 16 * MIB;

let fake;
let worker;
const env = () => ({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'sk-test-bounds', ...ATTACK_ENV });
before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 0 });
  worker = await startWorker({ name: '15-model-bounds', env: env() });
});
after(async () => {
  await worker?.stop();
  await fake?.close();
});

const mib = (b) => `${(b / MIB).toFixed(1)} MiB`;
function report(what, a) {
  const r = requestSizes(a.requests);
  console.log(`# ${what}: ${r.count} requests, largest ${mib(r.maxBytes)}, all ${mib(r.totalBytes)}; runtime ${mib(a.rss.before)} → peak ${mib(a.rss.peak)} → ${mib(a.rss.after)}; health max ${a.health.runtimeMaxMs.toFixed(0)} ms at the runtime, ${a.health.maxMs.toFixed(0)} ms through wrangler dev; stored ${mib(a.stats.dbBytes)}`);
  return r;
}

test('a model writing sixteen big files a round never makes a request past 1 MiB of tool context', async () => {
  const rounds = 3;
  const a = await attack(worker, fake, 'write-flood', writeFloodSteps({ rounds }));
  const r = report('write flood', a);
  assert.equal(a.runEnd.type, 'RUN_FINISHED', JSON.stringify(a.runEnd));
  // Analyst 1 + Architect (rounds + 1) + the three later stages 1 each.
  assert.equal(r.count, 1 + rounds + 1 + 3);
  assert.ok(r.maxBytes <= MAX_REQUEST_BYTES, `a request of ${r.maxBytes} bytes`);
  // Each round's 3.75 MiB of writes went out once, in the answer, not again in the requests.
  assert.ok(r.totalBytes < 4 * MIB, `the requests carried ${r.totalBytes} bytes`);
  const architect = a.requests.filter((q) => q.role === 'architect');
  const last = JSON.parse(architect.at(-1).rawBody);
  const resent = last.messages.flatMap((m) => m.tool_calls ?? []).map((c) => c.function.arguments);
  assert.equal(resent.length, 16 * rounds);
  assert.ok(resent.every((args) => JSON.parse(args).content.startsWith('[BotArmy left out the 245760 bytes')), resent[0]);
});

test('a model reading one big file sixteen times a round over four stages stores digests, and the session loads after a restart', async () => {
  const a = await attack(worker, fake, 'read-flood', readFloodSteps({ rounds: 2 }));
  const r = report('read flood', a);
  assert.equal(a.runEnd.type, 'RUN_FINISHED', JSON.stringify(a.runEnd));
  assert.ok(r.maxBytes <= MAX_REQUEST_BYTES, `a request of ${r.maxBytes} bytes`);
  // 4 stages × 2 rounds × 16 reads of 250 KiB = 32 MiB of answers: none of it is kept as rows.
  assert.ok(a.stats.dbBytes <= SESSION_WITH_PROJECT_BYTES, `stored ${mib(a.stats.dbBytes)}`);
  assert.ok(a.stats.dbBytes < 8 * MIB, `stored ${mib(a.stats.dbBytes)}: the reads' answers were kept`);

  await worker.stop();
  worker = await startWorker({ name: '15-model-bounds-again', env: env(), persistDir: worker.persistDir, port: worker.port });
  const t = performance.now();
  const { status, body } = await getSession(worker.url, a.id);
  const ms = performance.now() - t;
  console.log(`# read flood after a restart: first read ${ms.toFixed(0)} ms, stored ${mib(body.stats.dbBytes)}`);
  assert.equal(status, 200);
  assert.equal(body.state.run.status, 'completed');
  const files = await (await fetch(`${worker.url}/api/sessions/${a.id}/files`)).json();
  assert.deepEqual(files.files.map((f) => [f.path, f.bytes]), [['big.txt', 250 * KIB]]);
});

test('64 MiB of reasoning stops the attempt at 256 KiB and aborts the provider stream', async () => {
  const a = await attack(worker, fake, 'reasoning-flood', reasoningFloodSteps({ bytes: 64 * MIB }));
  report('reasoning flood', a);
  assert.equal(a.runEnd.type, 'RUN_ERROR', JSON.stringify(a.runEnd));
  assert.equal(a.runEnd.code, 'reasoning_too_long');
  assert.match(a.runEnd.message, /reasoning passed 256 KiB/);
  const [req] = a.requests;
  assert.ok(req.aborted, 'the request was aborted');
  assert.ok(req.reasoningSent < 16 * MIB, `the double got to send ${mib(req.reasoningSent)}`);
});
