// Hostile-client scenarios shared by the bounds tests (tests/e2e/07-bounds) and the benchmark
// (bench/run.mjs): a session grown by many start → cancel cycles with the longest briefs, and
// sockets that never read while asking for the whole history again and again.

import WebSocket from 'ws';
import { SessionClient, newCommandId } from './client.mjs';
import { ackedWithinRate } from './e2e.mjs';
import { workerdMem } from '../../bench/lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * `cycles` start → cancel cycles with `briefChars`-character briefs, spread over `sockets`
 * sockets (each socket stays under the 20 commands/s flood limit). Returns {ms, acks}.
 */
export async function growSession(url, id, { cycles = 1500, briefChars = 8000, sockets = 10 } = {}) {
  const t0 = Date.now();
  const clients = [];
  for (let i = 0; i < sockets; i++) clients.push(await SessionClient.open(url, id, { label: `grow-${i}` }));
  let acks = 0;
  // Two-byte characters: the most bytes a brief of 8,000 characters can hold in UTF-8 JSON.
  const brief = (n) => `${n} `.padEnd(briefChars, 'é');
  // One cycle at a time, round-robin over the sockets, so each stays far under 20 frames/s.
  for (let n = 0; n < cycles; n++) {
    const c = clients[n % clients.length];
    for (const cmd of [{ type: 'start', brief: brief(n), approval: 'auto' }, { type: 'cancel' }]) {
      await ackedWithinRate(c, { ...cmd, id: newCommandId('g') });
      acks++;
    }
  }
  for (const c of clients) await c.close();
  return { ms: Date.now() - t0, acks };
}

/**
 * `sockets` sockets that stop reading (TCP paused) right after opening, each sending `hellos`
 * × `hello {lastSeq:0}`. Samples workerd's RSS and /api/health latency meanwhile, then resumes
 * reading and counts what each socket had been sent. Returns the figures.
 */
export async function nonReadingSockets(url, id, wranglerPid, { sockets = 4, hellos = 5, holdMs = 5000 } = {}) {
  const health = async () => {
    const t = performance.now();
    await fetch(`${url}/api/health`).then((r) => r.text());
    return performance.now() - t;
  };
  const rssBefore = workerdMem(wranglerPid).runtime;
  const healthBefore = await health();
  const wsUrl = `${url.replace(/^http/, 'ws')}/api/sessions/${id}/ws`;
  const socks = [];
  for (let i = 0; i < sockets; i++) {
    const ws = new WebSocket(wsUrl, { headers: { Origin: url }, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const s = { ws, bytes: 0, frames: 0, maxFrame: 0, closed: null, caughtUp: 0 };
    ws.on('message', (data) => {
      s.bytes += data.length;
      s.frames += 1;
      s.maxFrame = Math.max(s.maxFrame, data.length);
      if (data.includes('"caught_up"')) s.caughtUp += 1;
    });
    ws.on('close', (code) => (s.closed = code));
    ws._socket.pause();
    for (let h = 0; h < hellos; h++) ws.send(JSON.stringify({ type: 'hello', lastSeq: 0 }));
    socks.push(s);
  }
  let rssPeak = rssBefore;
  const healthDuring = [];
  const t0 = Date.now();
  while (Date.now() - t0 < holdMs) {
    rssPeak = Math.max(rssPeak, workerdMem(wranglerPid).runtime);
    healthDuring.push(await health());
    await sleep(250);
  }
  for (const s of socks) s.ws._socket.resume();
  await sleep(1500);
  const out = {
    rssBefore,
    rssPeak,
    healthBeforeMs: healthBefore,
    healthMaxMs: Math.max(...healthDuring),
    healthMedianMs: healthDuring.sort((a, b) => a - b)[Math.floor(healthDuring.length / 2)],
    perSocket: socks.map((s) => ({ bytes: s.bytes, frames: s.frames, maxFrame: s.maxFrame, caughtUp: s.caughtUp, closed: s.closed })),
  };
  for (const s of socks) s.ws.terminate();
  await sleep(500);
  out.rssAfter = workerdMem(wranglerPid).runtime;
  return out;
}
