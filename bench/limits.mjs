// The documented limits a benchmark scenario must fit, read from the Rust constants themselves
// (src/protocol/limits.rs, src/workspace/limits.rs), and the check of bench/run.mjs's scenarios
// against them. A scenario past a bound measures a refusal instead of the path it names (issue
// 33: the replay step's 130 KB answers ended RUN_ERROR answer_too_long and `make bench` exited
// 1 unseen), so run.mjs refuses to start one, and `make test` runs the check
// (tests/e2e/00-bench-scenarios.test.mjs).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `pub const NAME: type = expr;` of the given files, evaluated (integers, `*`, `+`, names). */
export function rustLimits(files = ['src/protocol/limits.rs', 'src/workspace/limits.rs']) {
  const out = {};
  for (const f of files) {
    const text = fs.readFileSync(path.join(ROOT, f), 'utf8');
    for (const m of text.matchAll(/^pub const ([A-Z0-9_]+): [a-z0-9]+ = ([^;]+);/gm)) {
      const expr = m[2]
        .replace(/\bas [a-z0-9]+\b/g, '')
        .replace(/\b[A-Z][A-Z0-9_]*\b/g, (name) => {
          if (!(name in out)) throw new Error(`${f}: ${m[1]} uses ${name}, not defined before it`);
          return String(out[name]);
        })
        .replace(/(\d)_(?=\d)/g, '$1');
      if (!/^[\d\s*+()-.]+$/.test(expr)) throw new Error(`${f}: cannot evaluate ${m[1]} = ${m[2]}`);
      out[m[1]] = Function(`return (${expr});`)();
    }
  }
  return out;
}

// What one logged event costs besides its text, in JSON bytes, and what a run adds around an
// answer (RUN_STARTED, the whole STATE_SNAPSHOT, the feedback message, steps, deltas, the
// artifact, RUN_FINISHED), generously: measured ≈ 110 and ≈ 4 KiB over 18 events.
const EVENT_OVERHEAD = 160;
const RUN_OVERHEAD = { events: 24, bytes: 8 * 1024 };

/**
 * Every scenario's size against the bound it must stay under: `[{scenario, what, value,
 * limit, ok}]`. `cfg` is run.mjs's CFG (quick or full).
 */
export function scenarioChecks(cfg, limits = rustLimits()) {
  const answer = limits.MAX_ANSWER_BYTES;
  const checks = [];
  const add = (scenario, what, value, limit) => checks.push({ scenario, what, value, limit, ok: value <= limit });
  // Relay tokens are ` r<j>z`-shaped: a tag and the index.
  add('relay', 'answer bytes', cfg.relayTokens * (` rb${cfg.relayTokens}z`.length + 2), answer);
  add('throughput', 'answer bytes per stage', cfg.throughputTokensPerStage * cfg.tokenBytes, answer);
  add('throughput', 'long message bytes', cfg.longMessageTokens * cfg.tokenBytes, answer);
  add('replay', 'answer bytes per round', cfg.replayTokensPerRound * cfg.tokenBytes, answer);
  // The backlog is replayed from seq 1, so the log must hold all of it: no trimming.
  const perRound = cfg.replayTokensPerRound + RUN_OVERHEAD.events;
  const rounds = Math.ceil(cfg.replayTarget / perRound) + 1;
  const logBytes = rounds * (cfg.replayTokensPerRound * (cfg.tokenBytes + EVENT_OVERHEAD) + RUN_OVERHEAD.bytes);
  add('replay', 'log bytes of the backlog (estimate)', logBytes, limits.LOG_MAX_BYTES);
  add('replay', 'log events of the backlog', rounds * perRound, limits.LOG_RETENTION);
  // Scale tokens are ` s<i>_<stage>_<j>z`-shaped.
  const scaleToken = ` s${cfg.scaleSessions}_4_${cfg.scaleTokensPerStage}z`.length + 8;
  add('scale', 'answer bytes per stage', Math.max(cfg.scaleTokensPerStage, cfg.scaleSweepTokens) * scaleToken, answer);
  return checks;
}

/** Throws, naming each scenario past its bound, when any is. */
export function assertScenariosFit(cfg, limits) {
  const bad = scenarioChecks(cfg, limits).filter((c) => !c.ok);
  if (bad.length) {
    throw new Error(
      `benchmark scenarios past the documented limits (${cfg.mode} mode): ` +
        bad.map((c) => `${c.scenario} ${c.what} ${c.value} > ${c.limit}`).join('; '),
    );
  }
}
