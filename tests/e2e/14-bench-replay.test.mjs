// A quick pass of the benchmark's replay step against the built Worker, so a break of the
// benchmark is seen where tests run (issue 33: `make bench` had ended RUN_ERROR
// answer_too_long, and then stalled on flow control, with nobody noticing). ~20 s: it fills
// one session with ≥ 5,000 events through the OpenAI double and replays it three times per door.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = path.join(ROOT, 'test-output', 'bench-quick');

test('node bench/run.mjs --quick --only replay is green: the backlog fits, and every replay loses nothing', { timeout: 240000 }, async () => {
  fs.rmSync(OUT, { recursive: true, force: true });
  const child = spawn(process.execPath, ['bench/run.mjs', '--quick', '--only', 'replay', '--out', OUT], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, out.slice(-4000));
  const { errors, results } = JSON.parse(fs.readFileSync(path.join(OUT, 'results.json'), 'utf8'));
  assert.deepEqual(errors, []);
  const r = results.replay;
  assert.ok(r.backlogEvents >= 5000, `backlog ${r.backlogEvents}`);
  for (const via of ['viaRuntime', 'viaProxy']) {
    assert.equal(r[via].lost, 0, `${via} lost events`);
    assert.ok(r[via].medianMs > 0, `${via}: ${JSON.stringify(r[via])}`);
  }
});
