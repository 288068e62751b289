#!/usr/bin/env node
// How fast the page answers a user while agents stream: a scripted demo session in headless
// Debian Chromium (playwright-core) against `wrangler dev`, measured inside the page.
//
//   node bench/ui.mjs                  # one each_stage run through all five gates (~1 min)
//   UI_ROUNDS=3 node bench/ui.mjs      # pause/resume rounds per stage (default 3)
//
// Two measures, printed as a table and written to bench-output/ui.json:
//  1. Event Timing (the API behind Chrome's "Interaction to Next Paint"): for every key press
//     and click, the time from the input event to the next frame painted after its handlers.
//     Chrome reports only interactions of 16 ms or more; the rest count as "< 16 ms".
//  2. Input to visible result, per kind of action: from the input event's timestamp to the
//     first animation frame after the element that shows the result exists. For commands this
//     includes the WebSocket round trip (ack and state change from the Worker).
// Long tasks (main-thread work over 50 ms) are counted over the whole run.
//
// Needs a built Worker and UI (`make build`) and Chromium (`scripts/setup.sh --browser`).
// Loopback only; bounded: a 240 s deadline.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startWorker } from '../tests/support/harness.mjs';
import { CHROMIUM, launchChromium } from '../tests/support/browser.mjs';
import { machine, percentiles, r2 } from './lib.mjs';

const ROUNDS = Number(process.env.UI_ROUNDS || 3);
const DEADLINE_MS = 240_000;
const STAGES = ['analyst', 'architect', 'developer', 'tester', 'deployer'];
const OUT = path.join(ROOT, 'bench-output', 'ui.json');

const timer = setTimeout(() => {
  console.error('bench/ui: deadline reached');
  process.exit(2);
}, DEADLINE_MS);
const log = (...a) => console.error('[bench/ui]', ...a);

/** Installed before the page's own scripts: collects Event Timing entries and long tasks. */
function observe() {
  window.__perf = { events: [], longTasks: [] };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.interactionId) window.__perf.events.push({ name: e.name, id: e.interactionId, duration: e.duration });
    }
  }).observe({ type: 'event', durationThreshold: 16, buffered: true });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__perf.longTasks.push(e.duration);
  }).observe({ type: 'longtask', buffered: true });
}

const results = {}; // action -> [ms]
let interactions = 0; // key presses and clicks the script made

/**
 * Runs `act` (one real input through playwright) and returns the milliseconds from that input
 * event to the first frame after `selector` matches.
 */
async function timed(page, label, selector, act) {
  await page.evaluate((sel) => {
    window.__result = new Promise((resolve) => {
      let t0 = null;
      const onInput = (e) => {
        if (t0 === null) t0 = e.timeStamp;
      };
      for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, onInput, { capture: true, once: true });
      const done = () => requestAnimationFrame(() => resolve(performance.now() - t0));
      const mo = new MutationObserver(() => {
        if (t0 !== null && document.querySelector(sel)) {
          mo.disconnect();
          done();
        }
      });
      mo.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
      setTimeout(() => {
        mo.disconnect();
        resolve(null);
      }, 10_000);
    });
  }, selector);
  await act();
  interactions += 1;
  const ms = await page.evaluate(() => window.__result);
  if (ms === null) throw new Error(`${label}: ${selector} did not appear within 10 s`);
  (results[label] ??= []).push(ms);
  return ms;
}

async function type(page, selector, text) {
  await page.locator(selector).click();
  interactions += 1;
  for (const ch of text) {
    await page.keyboard.type(ch);
    interactions += 1;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const tid = (id) => `[data-testid="${id}"]`;

async function main() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (scripts/setup.sh --browser installs it)`);
  const worker = await startWorker({ name: 'bench-ui' });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'botarmy-bench-ui-'));
  let context;
  try {
    context = await launchChromium(userDataDir);
    const page = await context.newPage();
    await page.addInitScript(observe);
    await page.goto(worker.url);
    const t0 = Date.now();

    log('typing the brief');
    await type(page, tid('brief-input'), 'A shared shopping list app for families: offline mode, sharing, reminders.');
    await page.locator(tid('approval-each_stage')).check();
    interactions += 1;
    await timed(page, 'Start (session created, page live)', `${tid('connection-status')}[data-sync="live"]`, () => page.locator(tid('start-button')).click());

    for (const [i, stage] of STAGES.entries()) {
      log(`stage ${stage}`);
      await page.locator(`${tid(`agent-card-${stage}`)}[data-status="streaming"]`).waitFor({ timeout: 60_000 });
      for (let r = 0; r < ROUNDS; r++) {
        const streaming = await page.locator(`${tid(`agent-card-${stage}`)}[data-status="streaming"]`).count();
        if (!streaming) break;
        await timed(page, 'Pause (ack from the Worker, Resume enabled)', `${tid('resume-button')}:not([disabled])`, () => page.locator(tid('pause-button')).click());
        await timed(page, 'Resume (ack from the Worker, Pause enabled)', `${tid('pause-button')}:not([disabled])`, () => page.locator(tid('resume-button')).click());
      }
      await page.locator(`${tid('approval-panel')}[data-stage="${stage}"]`).waitFor({ timeout: 90_000 });
      await page.locator(`${tid('approve-button')}:not([disabled])`).waitFor({ timeout: 10_000 });
      await timed(page, 'Request changes (feedback box open)', tid('feedback-input'), () => page.locator(tid('request-changes-button')).click());
      await type(page, tid('feedback-input'), 'Focus on the mobile app first.');
      await page.locator(tid('approval-panel')).getByRole('button', { name: 'Close' }).click();
      interactions += 1;
      const next = STAGES[i + 1];
      const shown = next
        ? `${tid(`agent-card-${next}`)}:is([data-status="thinking"],[data-status="streaming"])`
        : `${tid('run-status')}[data-status="completed"]`;
      await timed(page, 'Approve (next agent starts, or the plan completes)', shown, () => page.locator(tid('approve-button')).click());
    }

    log('artifacts');
    for (const stage of STAGES) {
      await timed(page, 'Show an artifact', `${tid(`artifact-version-${stage}`)}`, () => page.locator(tid(`artifact-toggle-${stage}`)).click());
      await timed(page, 'Switch an artifact to Markdown source', `${tid(`artifact-mode-source-${stage}`)}[aria-pressed="true"]`, () =>
        page.locator(tid(`artifact-mode-source-${stage}`)).click(),
      );
    }
    const wallS = (Date.now() - t0) / 1000;
    await page.waitForTimeout(500);
    const perf = await page.evaluate(() => window.__perf);

    // Event Timing: one value per interaction (its longest event).
    const byId = new Map();
    for (const e of perf.events) byId.set(e.id, Math.max(byId.get(e.id) ?? 0, e.duration));
    const slow = [...byId.values()];
    const ev = percentiles(slow, [50, 95, 99]);
    // Over all interactions, the unreported ones (< 16 ms) counted as 0.
    const all = percentiles([...slow, ...Array(Math.max(0, interactions - slow.length)).fill(0)], [50, 95, 99]);
    const under16 = (x) => (x === undefined ? '–' : x < 16 ? '< 16' : String(Math.round(x)));
    const summary = {
      machine: machine(),
      wallSeconds: r2(wallS),
      eventTiming: {
        interactions,
        reportedAtLeast16ms: slow.length,
        over100ms: slow.filter((d) => d > 100).length,
        max: slow.length ? Math.max(...slow) : null,
        ofReported: ev,
        ofAll: { p50: all.p50 < 16 ? '<16' : all.p50, p95: all.p95 < 16 ? '<16' : all.p95, p99: all.p99 < 16 ? '<16' : all.p99 },
      },
      longTasks: { count: perf.longTasks.length, totalMs: r2(perf.longTasks.reduce((a, b) => a + b, 0)), max: perf.longTasks.length ? r2(Math.max(...perf.longTasks)) : null },
      actions: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { ...percentiles(v, [50, 95]), values: v.map(r2) }])),
    };
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, JSON.stringify(summary, null, 2));

    const pad = (s, n) => String(s).padEnd(n);
    console.log(`\nUI responsiveness (${summary.machine.cores} cores, ${summary.machine.gitCommit}), one each_stage demo run, ${wallS.toFixed(0)} s\n`);
    console.log(`Event Timing (input → next paint): ${interactions} interactions; p50 ${under16(all.p50)} ms, p95 ${under16(all.p95)} ms, p99 ${under16(all.p99)} ms; ${slow.length} took ≥ 16 ms, ${summary.eventTiming.over100ms} over 100 ms, longest ${summary.eventTiming.max ?? '–'} ms`);
    console.log(`Long tasks (> 50 ms): ${summary.longTasks.count}, longest ${summary.longTasks.max ?? '–'} ms\n`);
    console.log(`${pad('action (input → result on screen)', 56)} ${pad('n', 4)} ${pad('p50 ms', 8)} ${pad('p95 ms', 8)} max ms`);
    for (const [k, v] of Object.entries(summary.actions)) {
      console.log(`${pad(k, 56)} ${pad(v.n, 4)} ${pad(r2(v.p50), 8)} ${pad(r2(v.p95), 8)} ${r2(v.max)}`);
    }
    console.log(`\nJSON: ${path.relative(ROOT, OUT)}`);
  } finally {
    await context?.close().catch(() => {});
    await worker.stop();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main()
  .then(() => clearTimeout(timer))
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
