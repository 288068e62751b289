// A test client for one BotArmy session over a real WebSocket (the `ws` package).
//
//   const c = await SessionClient.open(worker.url, sessionId);   // connect + hello + caught_up
//   const ack = await c.send({ type: 'start', brief: '…', approval: 'auto' });
//   await c.waitFor((e) => e.type === 'RUN_FINISHED');
//   c.transcript   // logged (seq-bearing) events, each seq once, in order
//   c.state        // state rebuilt from STATE_SNAPSHOT + STATE_DELTA
//   c.messages     // Map messageId -> {messageId, role, name, text, ended, interrupted}
//   await c.reconnect();   // new socket, hello {lastSeq}
//
// Like the UI, it acknowledges what it applied (`ack {seq}`) when the server's welcome offers
// flow control: at once after 256 KiB, else 250 ms after the last event, and after caught_up.
// `ack: false` makes a client that reads but never acknowledges (flow-control tests).
//
// The client never hides a protocol fault: repeated seqs land in `duplicates`, holes in `gaps`,
// patches that do not apply in `patchErrors`; tests assert these are empty.

import fs from 'node:fs';
import WebSocket from 'ws';
import { applyPatch } from './json-patch.mjs';
import { AckPacer } from './acks.mjs';

/** The largest frame any client of this process received (bytes); written to
 * test-output/max-frame-<pid>.txt at exit so a run can report its largest frame. */
export const frameStats = { max: 0, where: '' };
process.on('exit', () => {
  if (frameStats.max === 0) return;
  try {
    const dir = new URL('../../test-output/', import.meta.url);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(new URL(`max-frame-${process.pid}.txt`, dir), `${frameStats.max} ${frameStats.where}\n`);
  } catch {
    /* best effort */
  }
});

let idCounter = 0;
export function newCommandId(prefix = 'c') {
  idCounter += 1;
  return `${prefix}${process.pid.toString(36)}-${Date.now().toString(36)}-${idCounter}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function describeEvents(list, n = 8) {
  return list
    .slice(-n)
    .map((e) => JSON.stringify(e).slice(0, 240))
    .join('\n    ');
}

export class SessionClient {
  /**
   * @param {string} baseUrl   http://127.0.0.1:PORT of the worker
   * @param {string} sessionId
   * @param {object} opts      origin (default baseUrl; null for none), protocols, headers, label
   */
  constructor(baseUrl, sessionId, opts = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.sessionId = sessionId;
    this.wsUrl = `${this.baseUrl.replace(/^http/, 'ws')}/api/sessions/${sessionId}/ws`;
    this.origin = opts.origin === undefined ? this.baseUrl : opts.origin;
    this.protocols = opts.protocols;
    this.headers = opts.headers || {};
    this.label = opts.label || 'client';
    this.ackEnabled = opts.ack !== false;
    this.flow = null; // welcome.flow when the server offers flow control
    this.acks = new AckPacer(() => {
      if (!this.isOpen) return false;
      this.ws.send(JSON.stringify({ type: 'ack', seq: this.lastSeq }));
      return true;
    });

    this.ws = null;
    this.connections = 0; // number of sockets opened so far
    this.lastSeq = 0;
    // The epoch of lastSeq's numbering: the last welcome's, once its catch-up is done.
    this.epoch = null;
    this.welcomeEpoch = null;
    this.transcript = []; // logged events, deduplicated, in arrival order
    this.received = []; // every frame: {conn, t, frame} (t = performance.now())
    this.control = []; // connection frames (no seq), each {conn, t, frame}
    this.welcomes = [];
    this.duplicates = []; // logged events with seq <= lastSeq on arrival
    this.gaps = []; // {expected, got}
    this.patchErrors = [];
    this.parseErrors = [];
    this.closes = []; // {conn, code, reason}
    this.arrivals = new Map(); // seq -> Date.now() when the event arrived
    this.state = null;
    this.messages = new Map();
    this.snapshots = []; // snapshot-mode joins: {atTranscript, lastSeq, reason, runStatus once caught up}
    this.pending = new Map(); // command id -> {resolve, reject, timer}
    this.waiters = new Set();
    this._snapshotMode = false;
  }

  /** Connect, send hello, and wait for caught_up. */
  static async open(baseUrl, sessionId, opts = {}) {
    const c = new SessionClient(baseUrl, sessionId, opts);
    await c.connect();
    if (opts.hello !== false) await c.hello(opts.lastSeq ?? 0);
    return c;
  }

  get isOpen() {
    return this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Open a socket. Resolves on open; rejects with err.status/err.body when the server refuses the
   * upgrade (e.g. 403 origin_not_allowed).
   */
  connect() {
    const conn = ++this.connections;
    const headers = { ...this.headers };
    if (this.origin) headers.Origin = this.origin;
    // handshakeTimeout: an upgrade that gets no answer fails (an 'error') instead of hanging.
    const ws = new WebSocket(this.wsUrl, this.protocols, { headers, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024, handshakeTimeout: 30_000 });
    this.ws = ws;
    ws.conn = conn;
    ws.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        const c = { conn, code, reason: reason.toString() };
        this.closes.push(c);
        // An answer can only come on the socket that carried the command: fail fast, saying why.
        for (const [id, p] of this.pending) {
          if (p.conn !== conn) continue;
          this.pending.delete(id);
          clearTimeout(p.timer);
          p.reject(new Error(`${this.label}: socket closed ${code} ${reason} before the answer to ${id}`));
        }
        resolve(c);
        this._notify();
      });
    });
    ws.on('message', (data, isBinary) => this._onMessage(conn, data, isBinary));
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(this));
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          const err = new Error(`upgrade refused: ${res.statusCode} ${body}`);
          err.status = res.statusCode;
          err.body = body;
          err.headers = res.headers;
          try {
            err.json = JSON.parse(body);
          } catch {
            /* not JSON */
          }
          reject(err);
          ws.terminate();
        });
      });
      ws.once('error', (e) => reject(e));
    });
  }

  _onMessage(conn, data, isBinary) {
    const t = performance.now();
    if (isBinary) {
      this.parseErrors.push({ conn, error: 'binary frame from server' });
      return;
    }
    const text = data.toString();
    if (data.length > frameStats.max) {
      frameStats.max = data.length;
      frameStats.where = `${process.argv[1] ? process.argv[1].split('/').pop() : ''} ${this.label}`;
    }
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      // The runtime's auto-response answers a plain "ping" with a plain "pong".
      this.control.push({ conn, t, frame: { raw: text } });
      this.received.push({ conn, t, frame: { raw: text } });
      this._notify();
      return;
    }
    this.received.push({ conn, t, frame });
    if (typeof frame.seq === 'number') this._onEvent(frame);
    else this._onControl(conn, t, frame);
    this.acks.read(text.length);
    if (typeof frame.seq === 'number') this._scheduleAck();
    this._notify();
  }

  _scheduleAck(now = false) {
    if (this.ackEnabled && this.flow) this.acks.due(now);
  }

  /** Acks sent so far. */
  get acksSent() {
    return this.acks.sent;
  }

  _onControl(conn, t, frame) {
    this.control.push({ conn, t, frame });
    if (frame.type === 'CUSTOM' && frame.name === 'welcome') {
      this.welcomes.push(frame.value);
      this.flow = (frame.value && frame.value.flow) || null;
      this.welcomeEpoch = frame.value && Number.isInteger(frame.value.epoch) ? frame.value.epoch : null;
      if (frame.value && frame.value.mode === 'snapshot') {
        this._snapshotMode = true;
        this.snapshots.push({ atTranscript: this.transcript.length, lastSeq: frame.value.lastSeq, reason: frame.value.reason });
        this.lastSeq = frame.value.lastSeq;
      }
    } else if (frame.type === 'CUSTOM' && frame.name === 'caught_up') {
      // The run's status as the snapshot left it (events after it arrive as events).
      if (this._snapshotMode) this.snapshots.at(-1).runStatus = this.state?.run?.status;
      this._snapshotMode = false;
      if (this.welcomeEpoch !== null) this.epoch = this.welcomeEpoch;
      this._scheduleAck(true);
    } else if (frame.type === 'STATE_SNAPSHOT') {
      this.state = structuredClone(frame.snapshot);
    } else if (frame.type === 'MESSAGES_SNAPSHOT') {
      this.messages = new Map();
      for (const m of frame.messages || []) {
        this.messages.set(m.id, { messageId: m.id, role: m.role, name: m.name, text: typeof m.content === 'string' ? m.content : '', ended: true, interrupted: null });
      }
    } else if (frame.type === 'CUSTOM' && (frame.name === 'ack' || frame.name === 'rejected')) {
      const id = frame.value && frame.value.id;
      if (id != null && this.pending.has(id)) {
        const p = this.pending.get(id);
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.resolve({ kind: frame.name, ...frame.value });
      }
    }
  }

  _onEvent(ev) {
    if (ev.seq <= this.lastSeq) {
      this.duplicates.push(ev);
      return;
    }
    if (ev.seq !== this.lastSeq + 1) this.gaps.push({ expected: this.lastSeq + 1, got: ev.seq });
    this.lastSeq = ev.seq;
    this.arrivals.set(ev.seq, Date.now());
    this.transcript.push(ev);
    this._apply(ev);
  }

  _apply(ev) {
    switch (ev.type) {
      case 'STATE_SNAPSHOT':
        this.state = structuredClone(ev.snapshot);
        break;
      case 'STATE_DELTA':
        try {
          this.state = applyPatch(this.state, ev.delta);
        } catch (e) {
          this.patchErrors.push({ seq: ev.seq, error: e.message, delta: ev.delta });
        }
        break;
      case 'TEXT_MESSAGE_START':
        this.messages.set(ev.messageId, { messageId: ev.messageId, role: ev.role, name: ev.name, text: '', ended: false, interrupted: null, startSeq: ev.seq });
        break;
      case 'TEXT_MESSAGE_CONTENT': {
        const m = this.messages.get(ev.messageId);
        if (m) m.text += ev.delta;
        else this.patchErrors.push({ seq: ev.seq, error: `content for unknown message ${ev.messageId}` });
        break;
      }
      case 'TEXT_MESSAGE_END': {
        const m = this.messages.get(ev.messageId);
        if (m) m.ended = true;
        break;
      }
      case 'CUSTOM':
        if (ev.name === 'message_interrupted' && ev.value) {
          const m = this.messages.get(ev.value.messageId);
          if (m) m.interrupted = ev.value.reason;
        }
        break;
      default:
        break;
    }
  }

  _notify() {
    for (const w of [...this.waiters]) {
      let ok = false;
      try {
        ok = w.check();
      } catch (e) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.reject(e);
        continue;
      }
      if (ok) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(w.value());
      }
    }
  }

  _wait(check, value, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const w = { check, value, resolve, reject, timer: null };
      if (check()) return resolve(value());
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}; lastSeq=${this.lastSeq}; last events:\n    ${describeEvents(this.transcript)}\n  last control frames:\n    ${describeEvents(this.control.map((c) => c.frame), 4)}`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /** Wait until a logged event (from transcript index `from`) satisfies pred; resolves with it. */
  waitFor(pred, timeoutMs = 15000, { from = 0, what } = {}) {
    let found;
    let scanned = from;
    return this._wait(
      () => {
        for (; scanned < this.transcript.length; scanned++) {
          if (pred(this.transcript[scanned], this)) {
            found = this.transcript[scanned];
            return true;
          }
        }
        return false;
      },
      () => found,
      timeoutMs,
      what || `event matching ${pred.toString().slice(0, 160)}`,
    );
  }

  /**
   * Wait for the run's end (RUN_FINISHED or RUN_ERROR) from transcript index `from`, with a seq
   * above `after`. A re-sync snapshot after `from` (a restart lost events this client saw)
   * holds the events up to its `lastSeq` as state only: when the state it gave says the run no
   * longer runs, the end is inside it, and is read from the session's log.
   */
  async waitForRunEnd(timeoutMs = 60000, { from = 0, after = 0, what = 'a run end' } = {}) {
    const isEnd = (e) => (e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR') && e.seq > after;
    const deadline = Date.now() + timeoutMs;
    const looked = new Set();
    let scanned = from;
    for (;;) {
      let found;
      let snap;
      await this._wait(
        () => {
          for (; scanned < this.transcript.length; scanned++) {
            if (isEnd(this.transcript[scanned])) {
              found = this.transcript[scanned];
              return true;
            }
          }
          snap = this.snapshots.findLast((s) => s.atTranscript >= from && s.reason === 'server_restarted' && s.runStatus !== undefined && s.runStatus !== 'running' && s.lastSeq > after && !looked.has(s));
          return Boolean(snap);
        },
        () => null,
        Math.max(1, deadline - Date.now()),
        what,
      );
      if (found) return found;
      looked.add(snap);
      const end = (await fetchEvents(this.baseUrl, this.sessionId, 0)).filter((e) => isEnd(e) && e.seq <= snap.lastSeq).at(-1);
      if (end) {
        console.error(`# ${this.label}: the run end (seq ${end.seq}) came inside a re-sync snapshot`);
        return end;
      }
    }
  }

  /** Wait until this client holds every event up to `seq` (by event or by snapshot). */
  waitForSeq(seq, timeoutMs = 15000) {
    return this._wait(() => this.lastSeq >= seq, () => this.lastSeq, timeoutMs, `seq ${seq}`);
  }

  /** Wait until a connection frame (from control index `from`) satisfies pred; resolves with the frame. */
  waitForControl(pred, timeoutMs = 15000, { from = 0, what } = {}) {
    let found;
    let scanned = from;
    return this._wait(
      () => {
        for (; scanned < this.control.length; scanned++) {
          if (pred(this.control[scanned].frame, this.control[scanned])) {
            found = this.control[scanned].frame;
            return true;
          }
        }
        return false;
      },
      () => found,
      timeoutMs,
      what || `control frame matching ${pred.toString().slice(0, 160)}`,
    );
  }

  /** Wait until the rebuilt state satisfies pred. */
  waitForState(pred, timeoutMs = 15000, what) {
    return this._wait(() => this.state != null && !!pred(this.state), () => this.state, timeoutMs, what || `state matching ${pred.toString().slice(0, 160)}`);
  }

  /** Wait for the current socket to close; resolves {code, reason}. */
  waitForClose(timeoutMs = 10000) {
    const ws = this.ws;
    return Promise.race([
      ws.closed,
      sleep(timeoutMs).then(() => {
        throw new Error(`${this.label}: socket not closed within ${timeoutMs} ms`);
      }),
    ]);
  }

  /** Send hello {lastSeq} and wait for welcome … caught_up. Resolves {welcome, caughtUp}. */
  async hello(lastSeq = this.lastSeq, timeoutMs = 15000) {
    const from = this.control.length;
    this.lastSeq = lastSeq;
    this.welcomeEpoch = null;
    this.sendRaw(JSON.stringify(this.epoch === null ? { type: 'hello', lastSeq } : { type: 'hello', lastSeq, epoch: this.epoch }));
    const welcome = await this.waitForControl((f) => f.type === 'CUSTOM' && f.name === 'welcome', timeoutMs, { from, what: 'welcome' });
    const caughtUp = await this.waitForControl((f) => f.type === 'CUSTOM' && f.name === 'caught_up', timeoutMs, { from, what: 'caught_up' });
    return { welcome: welcome.value, caughtUp: caughtUp.value };
  }

  /** Send a text frame as is. */
  sendRaw(data, opts) {
    if (!this.isOpen) throw new Error(`${this.label}: socket not open`);
    this.ws.send(data, opts);
  }

  /**
   * Send a command; resolves with the answer frame's value plus `kind` ('ack' | 'rejected').
   * An `id` is generated unless the command has one (pass id: null to send none; the answer
   * is then the next ack/rejected frame).
   */
  send(cmd, timeoutMs = 10000) {
    const out = { ...cmd };
    if (out.id === undefined) out.id = newCommandId();
    if (out.id === null) {
      delete out.id;
      return this.sendAndNextAnswer(JSON.stringify(out), timeoutMs);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(out.id);
        reject(new Error(`${this.label}: no ack/rejected for ${JSON.stringify(out).slice(0, 200)} within ${timeoutMs} ms`));
      }, timeoutMs);
      // A repeated id (idempotency test) gets its own answer: queue behind the first.
      if (this.pending.has(out.id)) {
        const prev = this.pending.get(out.id);
        const prevResolve = prev.resolve;
        prev.resolve = (v) => {
          prevResolve(v);
          this.pending.set(out.id, { resolve, reject, timer, conn: this.ws.conn });
        };
      } else this.pending.set(out.id, { resolve, reject, timer, conn: this.ws.conn });
      try {
        this.sendRaw(JSON.stringify(out));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(out.id);
        reject(e);
      }
    });
  }

  /** Send raw data and resolve with the next ack/rejected frame's value (plus `kind`). */
  async sendAndNextAnswer(data, timeoutMs = 10000, opts) {
    const from = this.control.length;
    this.sendRaw(data, opts);
    const f = await this.waitForControl((fr) => fr.type === 'CUSTOM' && (fr.name === 'ack' || fr.name === 'rejected'), timeoutMs, { from, what: `answer to ${String(data).slice(0, 80)}` });
    return { kind: f.name, ...f.value };
  }

  /** Close the socket (normal close) and open a new one with hello {lastSeq}. */
  async reconnect({ lastSeq = this.lastSeq, abrupt = false } = {}) {
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) {
      if (abrupt) this.ws.terminate();
      else this.ws.close(1000, 'reconnect');
      await this.ws.closed;
    }
    await this.connect();
    return this.hello(lastSeq);
  }

  /** Normal close; resolves when closed. */
  async close(code = 1000) {
    if (!this.ws || this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(code);
    await Promise.race([this.ws.closed, sleep(3000)]);
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  /** Abrupt cut (no close frame). */
  terminate() {
    if (this.ws) this.ws.terminate();
  }

  /** Text of every message, by id. */
  texts() {
    return Object.fromEntries([...this.messages].map(([id, m]) => [id, m.text]));
  }

  /** A compact summary of faults, for assertions. */
  faults() {
    return { duplicates: this.duplicates.map((e) => e.seq), gaps: this.gaps, patchErrors: this.patchErrors, parseErrors: this.parseErrors };
  }
}

// ---- HTTP helpers ----

/** How wrangler dev's proxy answers a request it lost because the runtime went away. */
const DEV_PROXY_RESTARTED = 'Your worker restarted mid-request.';

async function jsonOf(res) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`expected JSON from ${res.url} (${res.status}), got: ${text.slice(0, 300)}`);
  }
}

/** How long a session's creation may take before it is asked for again (normally < 1 s). */
const CREATE_TIMEOUT_MS = 20_000;

/** POST /api/sessions; returns the new id (throws unless 201). */
export async function createSession(url, { headers = {} } = {}) {
  const post = () => fetch(`${url}/api/sessions`, { method: 'POST', headers, signal: AbortSignal.timeout(CREATE_TIMEOUT_MS) });
  let res;
  try {
    res = await post();
  } catch (e) {
    // Seen once in a clean-clone run: wrangler dev answered /api/health, then never answered
    // (nor logged) the first POST, and the test file hung until its 10-minute cap. Say so and
    // ask once more; a second silence fails the test, saying why.
    if (e.name !== 'TimeoutError') throw e;
    console.error(`# createSession: POST ${url}/api/sessions had no answer in ${CREATE_TIMEOUT_MS} ms; sending it once more`);
    res = await post().catch((again) => {
      throw again.name === 'TimeoutError' ? new Error(`POST ${url}/api/sessions: no answer in ${CREATE_TIMEOUT_MS} ms, twice`) : again;
    });
  }
  if (res.status === 503 && (await res.clone().text()).startsWith(DEV_PROXY_RESTARTED)) {
    // wrangler dev's own proxy lost its connection to the runtime for a moment (seen once in
    // a clean-clone run, right after another wrangler dev of the same test file stopped); it
    // retries only GETs itself and asks the client to send a POST again. BotArmy's 503s are
    // JSON, so this never hides one of ours.
    await sleep(200);
    res = await post();
  }
  const body = await jsonOf(res);
  if (res.status !== 201) throw new Error(`POST /api/sessions: expected 201, got ${res.status} ${JSON.stringify(body)}`);
  return body.id;
}

/** GET /api/sessions/{id}; returns {status, body}. */
export async function getSession(url, id) {
  const res = await fetch(`${url}/api/sessions/${id}`);
  return { status: res.status, body: await jsonOf(res) };
}

/** All logged events with seq > after, paging through GET /events until `more` is false. */
export async function fetchEvents(url, id, after = 0, { limit, headers } = {}) {
  const events = [];
  let cursor = after;
  for (let page = 0; page < 10000; page++) {
    const q = new URLSearchParams({ after: String(cursor) });
    if (limit) q.set('limit', String(limit));
    const res = await fetch(`${url}/api/sessions/${id}/events?${q}`, { headers });
    const body = await jsonOf(res);
    if (res.status !== 200) throw new Error(`GET events after=${cursor}: ${res.status} ${JSON.stringify(body)}`);
    if (!Array.isArray(body.events)) throw new Error(`GET events: no events array: ${JSON.stringify(body).slice(0, 300)}`);
    events.push(...body.events);
    if (!body.more) return events;
    if (body.events.length === 0) throw new Error(`GET events after=${cursor}: more=true with an empty page`);
    cursor = body.events[body.events.length - 1].seq;
  }
  throw new Error('fetchEvents: too many pages');
}

/** GET an artifact; returns {status, text, contentType}. */
export async function getArtifact(url, id, stage, { version, format } = {}) {
  const q = new URLSearchParams();
  if (version !== undefined) q.set('version', String(version));
  if (format) q.set('format', format);
  const res = await fetch(`${url}/api/sessions/${id}/artifacts/${stage}${q.size ? `?${q}` : ''}`);
  return { status: res.status, text: await res.text(), contentType: res.headers.get('content-type') || '' };
}
