// Pieces shared by the benchmarks (bench/run.mjs) and the soak test (tests/soak/): the fake
// provider in a child process, a lean WebSocket client, workerd memory from /proc, percentiles,
// the machine description. Everything talks to 127.0.0.1 only.
import { fork, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { AckPacer } from '../tests/support/acks.mjs';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Monotonic time in ms (CLOCK_MONOTONIC: comparable across processes of this machine). */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

// ---- the fake provider in a child process --------------------------------------------------

/** Fork bench/fake-proc.mjs; resolves {url, pid, call(cmd, args), setScenario, take, close}. */
export async function startFakeProcess({ timeoutMs = 15000 } = {}) {
  const child = fork(path.join(ROOT, 'bench', 'fake-proc.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 1;
  const pending = new Map();
  let exited = false;
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('fake provider process did not start')), timeoutMs);
    child.on('message', (m) => {
      if (m && m.ready) {
        clearTimeout(timer);
        resolve(m);
        return;
      }
      const p = pending.get(m && m.id);
      if (!p) return;
      pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error) p.reject(new Error(`fake: ${m.error}`));
      else p.resolve(m.result);
    });
    child.once('exit', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      reject(new Error(`fake provider process exited (${code ?? signal})`));
      for (const p of pending.values()) p.reject(new Error('fake provider process exited'));
      pending.clear();
    });
  });
  const info = await ready;
  const call = (cmd, args = {}, ms = 30000) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error('fake provider process is gone'));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`fake: ${cmd} unanswered after ${ms} ms`));
      }, ms);
      pending.set(id, { resolve, reject, timer });
      child.send({ id, cmd, ...args });
    });
  return {
    url: info.url,
    pid: info.pid,
    call,
    setScenario: (name, steps) => call('setScenario', { name, steps }),
    take: (prefix) => call('take', { prefix }, 120000),
    async close() {
      if (exited) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.disconnect?.();
      await Promise.race([gone, sleep(3000)]);
      if (!exited) child.kill('SIGKILL');
    },
  };
}

// ---- a lean WebSocket client ------------------------------------------------------------

let cmdCounter = 0;

/**
 * One socket on a session, built for load: it keeps each logged frame's seq, arrival time
 * (monotonic ms) and raw text, checks seq continuity as frames arrive, and lets the caller
 * inspect each parsed frame through `onEvent(ev, t, raw)`.
 */
export class LeanClient {
  constructor(baseUrl, sessionId, { onEvent, keepRaw = true, label = 'lean' } = {}) {
    this.baseUrl = baseUrl;
    this.sessionId = sessionId;
    this.url = `${baseUrl.replace(/^http/, 'ws')}/api/sessions/${sessionId}/ws`;
    this.onEvent = onEvent;
    this.keepRaw = keepRaw;
    this.label = label;
    this.ws = null;
    this.lastSeq = 0;
    this.seqs = [];
    this.times = [];
    this.raw = [];
    this.bytes = 0;
    this.frames = 0;
    this.duplicates = 0;
    this.gaps = [];
    this.waiters = new Set();
    this.pending = new Map();
    this.control = [];
    this.closed = null;
    // Flow control, as the UI and tests/support/client.mjs do it: when the welcome offers
    // `flow`, ack every 256 KiB read, 250 ms after the last event, and at caught_up; without
    // acks a catch-up stops after its first 1 MiB page (docs/protocol.md, "Flow control").
    this.flow = null;
    this.acks = new AckPacer(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(JSON.stringify({ type: 'ack', seq: this.lastSeq }));
      return true;
    });
  }

  connect(timeoutMs = 15000) {
    const ws = new WebSocket(this.url, { headers: { Origin: this.baseUrl }, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    this.ws = ws;
    this.closed = new Promise((resolve) =>
      ws.once('close', (code) => {
        this.acks.cancel();
        this.closeCode = code;
        resolve(code);
        // Nothing more will arrive on this socket: fail whoever waits for it.
        const err = new Error(`${this.label}: socket closed (${code}) at lastSeq ${this.lastSeq}`);
        for (const w of this.waiters) {
          clearTimeout(w.timer);
          w.reject(err);
        }
        this.waiters.clear();
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(err);
        }
        this.pending.clear();
      }),
    );
    ws.on('message', (data) => this._onMessage(data));
    ws.on('error', () => {});
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${this.label}: connect timed out`));
      }, timeoutMs);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(this);
      });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          const e = new Error(`${this.label}: upgrade refused ${res.statusCode} ${body}`);
          e.status = res.statusCode;
          e.body = body;
          reject(e);
          ws.terminate();
        });
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  _onMessage(data) {
    const t = nowMs();
    const raw = data.toString();
    this.frames += 1;
    this.bytes += raw.length;
    let ev;
    try {
      ev = JSON.parse(raw);
    } catch {
      return; // "pong" auto-response
    }
    this.acks.read(raw.length);
    if (typeof ev.seq === 'number') {
      if (ev.seq <= this.lastSeq) this.duplicates += 1;
      else {
        if (ev.seq !== this.lastSeq + 1) this.gaps.push([this.lastSeq + 1, ev.seq]);
        this.lastSeq = ev.seq;
        this.seqs.push(ev.seq);
        this.times.push(t);
        if (this.keepRaw) this.raw.push(raw);
      }
      this._scheduleAck();
    } else {
      this.control.push({ t, ev });
      if (ev.type === 'CUSTOM' && ev.name === 'welcome') this.flow = (ev.value && ev.value.flow) || null;
      if (ev.type === 'CUSTOM' && ev.name === 'caught_up') this._scheduleAck(true);
      if (ev.type === 'CUSTOM' && (ev.name === 'ack' || ev.name === 'rejected')) {
        const p = this.pending.get(ev.value && ev.value.id);
        if (p) {
          this.pending.delete(ev.value.id);
          clearTimeout(p.timer);
          p.resolve({ kind: ev.name, ...ev.value });
        }
      }
    }
    if (this.onEvent) this.onEvent(ev, t, raw);
    if (this.waiters.size) {
      for (const w of [...this.waiters]) {
        if (w.pred(ev, t)) {
          this.waiters.delete(w);
          clearTimeout(w.timer);
          w.resolve({ ev, t });
        }
      }
    }
  }

  _scheduleAck(now = false) {
    if (this.flow) this.acks.due(now);
  }

  /** Acks sent so far. */
  get acksSent() {
    return this.acks.sent;
  }

  /** Resolves {ev, t} with the next frame (logged or not) satisfying pred. */
  next(pred, timeoutMs = 30000, what = 'a frame') {
    return new Promise((resolve, reject) => {
      if (this.closeCode !== undefined && this.ws && this.ws.readyState === WebSocket.CLOSED) {
        reject(new Error(`${this.label}: socket already closed (${this.closeCode})`));
        return;
      }
      const w = { pred, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what} (lastSeq ${this.lastSeq})`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /** hello {lastSeq}; resolves {sentAt, welcomeAt, caughtUpAt, caughtUp} at caught_up. */
  async hello(lastSeq = this.lastSeq, timeoutMs = 60000) {
    this.lastSeq = lastSeq;
    const welcome = this.next((e) => e.type === 'CUSTOM' && e.name === 'welcome', timeoutMs, 'welcome');
    const caught = this.next((e) => e.type === 'CUSTOM' && e.name === 'caught_up', timeoutMs, 'caught_up');
    const sentAt = nowMs();
    this.ws.send(JSON.stringify({ type: 'hello', lastSeq }));
    const w = await welcome;
    const c = await caught;
    return { sentAt, welcomeAt: w.t, welcome: w.ev.value, caughtUpAt: c.t, caughtUp: c.ev.value };
  }

  /** A command; resolves the ack/rejected value plus kind. */
  send(cmd, timeoutMs = 15000) {
    const id = `b${process.pid.toString(36)}x${++cmdCounter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: no answer to ${cmd.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...cmd, id }));
    });
  }

  async mustAck(cmd, timeoutMs) {
    const a = await this.send(cmd, timeoutMs);
    if (a.kind !== 'ack') throw new Error(`${this.label}: ${cmd.type} rejected: ${JSON.stringify(a)}`);
    return a;
  }

  async close() {
    this.acks.cancel();
    if (!this.ws || this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(1000);
    await Promise.race([this.closed, sleep(3000)]);
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }
}

// ---- HTTP helpers ---------------------------------------------------------------------------

/** POST /api/sessions; `headers` e.g. an `x-botarmy-owner` key, as the UI sends. */
export async function createSession(url, headers = {}) {
  const res = await fetch(`${url}/api/sessions`, { method: 'POST', headers, signal: AbortSignal.timeout(15000) });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`POST /api/sessions: ${res.status} ${JSON.stringify(body)}`);
  return body.id;
}

export async function getSession(url, id) {
  const res = await fetch(`${url}/api/sessions/${id}`, { signal: AbortSignal.timeout(15000) });
  if (res.status !== 200) throw new Error(`GET session ${id}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Every logged event of a session with seq > after, as {seq, raw-equivalent object}. */
export async function fetchEvents(url, id, after = 0) {
  const out = [];
  let cursor = after;
  for (let page = 0; page < 1000; page++) {
    const res = await fetch(`${url}/api/sessions/${id}/events?after=${cursor}&limit=1000`, { signal: AbortSignal.timeout(30000) });
    const body = await res.json();
    if (res.status !== 200) throw new Error(`GET events ${id} after=${cursor}: ${res.status} ${JSON.stringify(body)}`);
    out.push(...body.events);
    if (!body.more || body.events.length === 0) return out;
    cursor = body.events[body.events.length - 1].seq;
  }
  throw new Error('fetchEvents: too many pages');
}

/**
 * Events the client lost, repeated or got wrong, compared to the server: its seqs must be
 * exactly 1..lastSeq and each frame must equal the stored event of GET /events.
 */
export function compareToServer(client, serverEvents, lastSeq) {
  const problems = [];
  if (client.duplicates) problems.push(`${client.duplicates} duplicate frames`);
  if (client.gaps.length) problems.push(`gaps ${JSON.stringify(client.gaps.slice(0, 5))}`);
  if (serverEvents.length !== lastSeq) problems.push(`GET /events has ${serverEvents.length} events, lastSeq ${lastSeq}`);
  let lost = 0;
  const have = new Set(client.seqs);
  for (let s = 1; s <= lastSeq; s++) if (!have.has(s)) lost++;
  const extra = client.seqs.filter((s) => s > lastSeq).length;
  let differ = 0;
  if (client.keepRaw) {
    const bySeq = new Map(serverEvents.map((e) => [e.seq, e]));
    client.seqs.forEach((s, i) => {
      const e = bySeq.get(s);
      if (!e || JSON.stringify(JSON.parse(client.raw[i])) !== JSON.stringify(e)) differ++;
    });
  }
  if (lost) problems.push(`${lost} of ${lastSeq} events never arrived`);
  if (extra) problems.push(`${extra} events beyond lastSeq`);
  if (differ) problems.push(`${differ} events differ from GET /events`);
  return { lost, extra, differ, duplicates: client.duplicates, gaps: client.gaps.length, problems };
}

// ---- process memory and CPU from /proc ------------------------------------------------------

function readProc(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    // f[0]=state f[1]=ppid f[2]=pgrp … f[11]=utime f[12]=stime (clock ticks)
    return { pid, comm, state: f[0], ppid: Number(f[1]), pgrp: Number(f[2]), cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** Every process, from /proc: `{pid, comm, state, ppid, pgrp, cpuTicks}`. */
export function processes() {
  const all = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const p = readProc(Number(d)); // null if it ended meanwhile
    if (p) all.push(p);
  }
  return all;
}

/** Processes in the tree under `rootPid` (inclusive), from /proc. */
export function processTree(rootPid) {
  const all = processes();
  const out = [];
  const want = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if (!want.has(p.pid) && want.has(p.ppid)) {
        want.add(p.pid);
        grew = true;
      }
    }
  }
  for (const p of all) if (want.has(p.pid)) out.push(p);
  return out;
}

/** Resident set size of a process in bytes (VmRSS), or null. */
export function rssOf(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * The workerd processes under a wrangler dev started by the harness: wrangler 4 runs two, the
 * Worker's runtime (started with --inspector-addr; it hosts the Worker and its Durable
 * Objects) and the dev proxy on the public port (its ProxyWorker forwards every request and
 * WebSocket frame to the runtime). [{pid, role: 'runtime' | 'proxy'}]
 */
export function workerdProcs(wranglerPid) {
  return processTree(wranglerPid)
    .filter((p) => p.comm === 'workerd')
    .map((p) => {
      let cmd = '';
      try {
        cmd = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
      } catch {
        /* gone */
      }
      return { pid: p.pid, role: cmd.includes('--inspector-addr') ? 'runtime' : 'proxy' };
    });
}

export function workerdPids(wranglerPid) {
  return workerdProcs(wranglerPid).map((p) => p.pid);
}

/** workerd RSS in bytes under the wrangler process: {runtime, proxy, total}. */
export function workerdMem(wranglerPid) {
  const out = { runtime: 0, proxy: 0, total: 0 };
  for (const p of workerdProcs(wranglerPid)) {
    const v = rssOf(p.pid) || 0;
    out[p.role] += v;
    out.total += v;
  }
  return out;
}

/** RSS (bytes) of the workerd that runs the Worker (the runtime, not the dev proxy). */
export function workerdRss(wranglerPid) {
  return workerdMem(wranglerPid).runtime;
}

/** CPU seconds used so far by a process (user + system). */
export function cpuSeconds(pid) {
  const p = readProc(pid);
  return p ? p.cpuTicks / TICKS : null;
}

/** Samples workerd RSS (runtime and proxy) every `everyMs` until stop(). */
export function rssSampler(wranglerPid, everyMs = 200) {
  const samples = [];
  const peak = { runtime: 0, proxy: 0, total: 0 };
  const tick = () => {
    const m = workerdMem(wranglerPid);
    samples.push([Date.now(), m.runtime, m.proxy]);
    for (const k of Object.keys(peak)) if (m[k] > peak[k]) peak[k] = m[k];
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    samples,
    peak,
    stop() {
      clearInterval(timer);
      tick();
      return peak;
    },
  };
}

// ---- numbers -----------------------------------------------------------------------------

/** Nearest-rank percentiles of a list of numbers. */
export function percentiles(values, ps = [50, 95, 99]) {
  const v = Float64Array.from(values).sort();
  const out = { n: v.length };
  if (!v.length) return out;
  for (const p of ps) out[`p${p}`] = v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
  out.min = v[0];
  out.max = v[v.length - 1];
  out.mean = v.reduce((a, b) => a + b, 0) / v.length;
  return out;
}

export const MiB = 1024 * 1024;
export const mib = (b) => (b == null ? null : Math.round((b / MiB) * 10) / 10);
export const r2 = (x) => (x == null || Number.isNaN(x) ? null : Math.round(x * 100) / 100);

// ---- the machine ---------------------------------------------------------------------------

// The wrangler the harness runs (BOTARMY_WRANGLER_ROOT, see tests/support/harness.mjs).
function versionOf(pkg) {
  try {
    const root = process.env.BOTARMY_WRANGLER_ROOT || ROOT;
    return JSON.parse(fs.readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

export function machine() {
  const cpus = os.cpus();
  let osName = `${os.type()} ${os.release()}`;
  try {
    const rel = fs.readFileSync('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(rel);
    if (m) osName = `${m[1]} (kernel ${os.release()})`;
  } catch {
    /* not Linux */
  }
  let gitCommit = null;
  try {
    gitCommit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
  } catch {
    /* no git */
  }
  return {
    cpuModel: cpus[0] ? cpus[0].model : 'unknown',
    cores: cpus.length,
    ramGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: osName,
    arch: os.arch(),
    node: process.version,
    wrangler: versionOf('wrangler'),
    workerd: versionOf('workerd'),
    gitCommit,
    date: new Date().toISOString(),
  };
}

// ---- the Worker's own socket, behind wrangler dev's proxy ----------------------------------

/** TCP ports a process listens on (IPv4, from /proc). */
export function listeningPorts(pid) {
  const inodes = new Set();
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    return [];
  }
  const ports = [];
  for (const line of fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9])) continue; // 0A = LISTEN
    ports.push(parseInt(f[1].split(':')[1], 16));
  }
  return ports;
}

/**
 * The URL of the workerd runtime that runs the Worker, bypassing wrangler dev's proxy (a
 * second workerd on the public port that forwards every request and frame). Found by asking
 * each of the runtime's listening ports for /api/health.
 */
export async function runtimeUrl(wranglerPid) {
  const rt = workerdProcs(wranglerPid).find((p) => p.role === 'runtime');
  if (!rt) throw new Error('no workerd runtime under wrangler dev');
  for (const port of listeningPorts(rt.pid)) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/health`, { signal: AbortSignal.timeout(2000) });
      const body = await r.text();
      if (r.status === 200 && body.includes('"status"')) return `http://127.0.0.1:${port}`;
    } catch {
      /* not HTTP, or not the entry */
    }
  }
  throw new Error(`no port of workerd ${rt.pid} answers /api/health`);
}

/** A minimal CDP session on wrangler dev's inspector port: send(method, params) → result. */
export async function inspector(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let next = 1;
  const waiting = new Map();
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${w.method}: ${msg.error.message}`));
    else w.resolve(msg.result);
  });
  return {
    send(method, params = {}) {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) => waiting.set(id, { resolve, reject, method }));
    },
    close: () => ws.close(),
  };
}
