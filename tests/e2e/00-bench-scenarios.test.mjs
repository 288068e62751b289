// The benchmark's scenarios fit the documented limits (issue 33: `make bench` ended RUN_ERROR
// answer_too_long for months because nothing ran it). No Worker needed: the limits are read
// from the Rust constants, the scenarios from bench/run.mjs's own configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { rustLimits, scenarioChecks, assertScenariosFit } from '../../bench/limits.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('the limits are read from the Rust constants', () => {
  const l = rustLimits();
  assert.equal(l.MAX_ANSWER_BYTES, 64 * 1024);
  assert.equal(l.LOG_MAX_BYTES, 4 * 1024 * 1024);
  assert.equal(l.LOG_RETENTION, 20000);
  assert.equal(l.MAX_FILE_BYTES, 256 * 1024);
  assert.equal(l.MAX_TOOL_CALLS_PER_ATTEMPT, l.MAX_TOOL_ROUNDS * l.MAX_TOOL_CALLS_PER_ROUND);
  assert.ok(l.SESSION_MAX_BYTES > l.LOG_MAX_BYTES + l.MESSAGES_MAX_BYTES);
});

for (const mode of ['full', 'quick']) {
  test(`every ${mode} scenario of bench/run.mjs fits the limits`, () => {
    const args = ['bench/run.mjs', '--check-limits', ...(mode === 'quick' ? ['--quick'] : [])];
    const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.length >= 6, r.stdout);
    assert.ok(lines.every((x) => x.startsWith('ok ')), r.stdout);
  });
}

test('a scenario past a bound is named, and the run refuses it', () => {
  const cfg = { mode: 'test', relayTokens: 80, throughputTokensPerStage: 60, longMessageTokens: 2000, tokenBytes: 520, replayTarget: 10000, replayTokensPerRound: 250, scaleSessions: 20, scaleTokensPerStage: 50, scaleSweepTokens: 50 };
  const bad = scenarioChecks(cfg).filter((c) => !c.ok).map((c) => `${c.scenario}: ${c.what}`);
  // The configuration of ddf7139, which ended RUN_ERROR answer_too_long.
  assert.deepEqual(bad, ['throughput: long message bytes', 'replay: answer bytes per round', 'replay: log bytes of the backlog (estimate)']);
  assert.throws(() => assertScenariosFit(cfg), /replay answer bytes per round 130000 > 65536/);
});
