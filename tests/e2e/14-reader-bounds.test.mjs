// What a reader can make the Worker hold (issue 33, items 4, 7 and 8), against real
// `wrangler dev` with the OpenAI test double:
//
//   - a client holds at most four `/agui` streams on a session: the fifth is refused
//     `429 too_many_streams` and a POST past the cap applies nothing; the run's end frees the
//     places; across sessions a stream is one of the client's 32 connections
//     (`429 too_many_connections`), given back when its run ends;
//   - readers that never read, following a run that writes megabytes of tool arguments, get a
//     gap-free prefix and, when cut, a `: cut (…)` comment naming where to resume, while a reader
//     that reads gets every event; the runtime's memory growth is printed (a benchmark figure)
//     and bounded loosely here. Whether the Worker has to cut depends on how much the buffers in
//     between (the kernel's, wrangler's dev proxy) take first: the cut itself is shown natively
//     (src/protocol/agui_readers.rs);
//   - an export of a project whose files are U+0001 characters (six bytes each in JSON) stays
//     within the documented 32 MiB and is valid JSON Lines ending with a `cut` line;
//   - a runId sent again with another input is `409 id_reused`, as on the WebSocket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startWorker } from '../support/harness.mjs';
import { SessionClient, createSession, fetchEvents, getSession } from '../support/client.mjs';
import { briefFor, mustAck, sleep, tag, waitRunEnd } from '../support/e2e.mjs';
import { workerdMem } from '../../bench/lib.mjs';
import { parseSse } from '../support/sse.mjs';

const MIB = 1024 * 1024;
// src/protocol/agui_readers.rs and src/protocol/export.rs.
const STREAMS_PER_CLIENT = 4;
const EXPORT_MAX_BYTES = 32 * MIB;

/**
 * The OpenAI test double in a process of its own: the megabytes it streams would otherwise
 * compete with this process's readers for the event loop (a reader that reads must keep up).
 */
async function startFakeProcess() {
  const script = fileURLToPath(new URL('../support/fake-openai.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--port', '0', '--pace', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`fake-openai exited ${code}`)));
  });
  const base = url.replace(/\/v1$/, '');
  return {
    url,
    async setScenario(name, steps) {
      const res = await fetch(`${base}/__scenario/${encodeURIComponent(name)}`, { method: 'POST', body: JSON.stringify(steps) });
      assert.equal(res.status, 200, await res.text());
    },
    close: () => child.kill(),
  };
}

let fake;
let worker;
before(async () => {
  fake = await startFakeProcess();
  worker = await startWorker({
    name: '14-reader-bounds',
    // The harness lifts the per-client connection cap for other suites; here it is the default.
    env: { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'sk-test-readers', LLM_CACHE: 'off', SOCKETS_PER_CLIENT: '32' },
  });
});
after(async () => {
  await worker?.stop();
  fake?.close();
});

const aguiUrl = (id) => `${worker.url}/api/sessions/${id}/agui`;

/**
 * A GET of `path` over a plain TCP socket that stops reading as soon as the response head
 * arrives (the kernel's buffers fill, then the Worker's). `finish()` reads the rest.
 */
async function stalledReader(path) {
  const u = new URL(worker.url);
  const sock = net.connect(Number(u.port), u.hostname);
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const chunks = [];
  let closed = false;
  sock.on('data', (d) => chunks.push(d));
  sock.on('close', () => (closed = true));
  sock.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n`);
  const t0 = Date.now();
  while (!Buffer.concat(chunks).includes('\r\n\r\n')) {
    if (closed || Date.now() - t0 > 10000) throw new Error(`no response head for ${path}`);
    await sleep(5);
  }
  sock.pause();
  const head = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n')[0];
  const status = Number(head.split(' ')[1]);
  return {
    status,
    sock,
    /** Reads to the end; the body (de-chunked) as text. */
    async finish(timeoutMs = 20000) {
      sock.resume();
      const t1 = Date.now();
      while (!closed && Date.now() - t1 < timeoutMs) await sleep(20);
      assert.ok(closed, `${path}: the stream ended`);
      return dechunk(Buffer.concat(chunks)).toString('utf8');
    },
    close: () => sock.destroy(),
  };
}

/** The body of an HTTP/1.1 response with `Transfer-Encoding: chunked` (or not). */
function dechunk(raw) {
  const at = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, at).toString('latin1').toLowerCase();
  let rest = raw.subarray(at + 4);
  if (!head.includes('transfer-encoding: chunked')) return rest;
  const out = [];
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) break;
    const n = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
    if (!n) break;
    out.push(rest.subarray(eol + 2, eol + 2 + n));
    rest = rest.subarray(eol + 2 + n + 2);
  }
  return Buffer.concat(out);
}

/**
 * Starts a run whose provider answers take `steps` in turn; returns its first event. The socket
 * that started it is closed (it would have to keep up with the run too).
 */
async function startRun(id, name, steps, approval = 'each_stage') {
  const scenario = tag(name);
  await fake.setScenario(scenario, steps);
  const c = await SessionClient.open(worker.url, id, { label: name });
  try {
    await mustAck(c, { type: 'start', brief: briefFor(scenario), approval });
    return await c.waitFor((e) => e.type === 'RUN_STARTED');
  } finally {
    c.close();
  }
}

/** Waits until the session's run is no longer running; returns the session's snapshot. */
async function runEnded(id, timeoutMs = 120000) {
  const t0 = Date.now();
  for (;;) {
    const { body } = await getSession(worker.url, id);
    if (!['running', 'paused'].includes(body.state.run.status)) return body;
    assert.ok(Date.now() - t0 < timeoutMs, `the run of ${id} still ${body.state.run.status}`);
    await sleep(250);
  }
}

/** A reader that reads everything (raw socket, no parsing until the end). */
async function readingReader(path) {
  const r = await stalledReader(path);
  r.sock.resume();
  return r;
}

test(`a client holds at most ${STREAMS_PER_CLIENT} /agui streams on a session: the next is 429 too_many_streams and changes nothing`, async (t) => {
  const id = await createSession(worker.url);
  // A slow Analyst keeps the run in progress while the streams are open.
  await startRun(id, 'readers-cap', [{ tokens: 4000, delayMs: 10 }]);
  const readers = [];
  t.after(() => readers.forEach((r) => r.close()));
  for (let i = 0; i < STREAMS_PER_CLIENT; i++) {
    const r = await stalledReader(`/api/sessions/${id}/agui?after=0`);
    readers.push(r);
    assert.equal(r.status, 200, `stream ${i + 1}`);
  }
  const refused = await fetch(`${aguiUrl(id)}?after=0`);
  assert.equal(refused.status, 429);
  const err = (await refused.json()).error;
  assert.equal(err.code, 'too_many_streams');
  assert.match(err.message, /4 AG-UI streams/);

  // A POST past the cap is refused before its command is applied.
  const lastSeq = (await getSession(worker.url, id)).body.lastSeq;
  const post = await fetch(aguiUrl(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ threadId: id, runId: 'cap-1', messages: [], resume: [{ interruptId: 'x', status: 'cancelled' }] }),
  });
  assert.equal(post.status, 429);
  assert.equal((await post.json()).error.code, 'too_many_streams');
  const events = await fetchEvents(worker.url, id, 0);
  assert.ok(!events.some((e) => e.seq > lastSeq && e.type === 'RUN_FINISHED'), 'nothing was applied');

  // Once the run they follow has ended, the places are free again, though nobody read.
  const c = await SessionClient.open(worker.url, id, { label: 'cancel' });
  await mustAck(c, { type: 'cancel' });
  c.close();
  await runEnded(id);
  const next = await fetch(aguiUrl(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ threadId: id, runId: 'cap-2', messages: [{ id: 'u', role: 'user', content: 'A plant diary' }] }),
  });
  assert.equal(next.status, 200, 'a new run is admitted');
  await next.body.cancel();
});

test('an /agui stream is one of its client\'s 32 connections across sessions, given back when its run ends', async (t) => {
  const id = await createSession(worker.url);
  await startRun(id, 'readers-conns', [{ tokens: 4000, delayMs: 10 }]);
  const other = await createSession(worker.url);
  const socks = [];
  t.after(() => socks.forEach((s) => s.close()));
  for (let i = 0; i < 30; i++) socks.push(await SessionClient.open(worker.url, other, { label: `conn-${i}` }));
  const readers = [];
  t.after(() => readers.forEach((r) => r.close()));
  for (let i = 0; i < 2; i++) readers.push(await stalledReader(`/api/sessions/${id}/agui?after=0`));
  readers.forEach((r) => assert.equal(r.status, 200));
  const third = await fetch(`${aguiUrl(id)}?after=0`);
  assert.equal(third.status, 429);
  assert.equal((await third.json()).error.code, 'too_many_connections');

  // The run ends (cancelled from a socket that takes the place of one of the thirty): the two
  // streams give their connections back though their readers never read.
  socks.pop().close();
  await sleep(300);
  const canceller = await SessionClient.open(worker.url, id, { label: 'cancel' });
  await mustAck(canceller, { type: 'cancel' });
  canceller.close();
  await runEnded(id);
  const t0 = Date.now();
  for (let i = 0; i < 3; ) {
    try {
      socks.push(await SessionClient.open(worker.url, other, { label: `again-${i}` }));
      i++;
    } catch (e) {
      assert.ok(Date.now() - t0 < 5000, `connection ${29 + i + 1} refused: ${e.message}`);
      await sleep(200);
    }
  }
});

test('readers that never read hold the Worker within its bound: a cut stream says where to resume; a reader that reads loses nothing', async (t) => {
  const id = await createSession(worker.url);
  // Three rounds of sixteen 256 KiB writes: ≈ 12 MiB of TOOL_CALL_ARGS in one run. (The buffers
  // between the session and a reader — the kernel's, and wrangler's dev proxy, which may hold
  // hundreds of MiB — take some of it first, and how much varies from run to run.)
  const content = (r, i) => `${r}.${i} `.padEnd(256 * 1024 - 64, 'abcdefghijklmnopqrstuvwxyz');
  const round = (r) => ({
    toolCalls: Array.from({ length: 16 }, (_, i) => ({ name: 'write_file', arguments: { path: `big/${i}.txt`, content: content(r, i) } })),
    argChunk: 64 * 1024,
  });
  // The Analyst's answer waits 2 s (the run is in progress: the readers open meanwhile), then
  // the Architect writes.
  const steps = [{ ok: true, headerDelayMs: 2000 }, ...[1, 2, 3].map(round), { text: '## Overview\nDone.\n' }, { ok: true }];
  const before = workerdMem(worker.pid).runtime;
  const started = await startRun(id, 'readers-flood', steps, 'auto');
  const from = started.seq - 1;
  const path = `/api/sessions/${id}/agui?after=${from}`;
  const idle = [];
  t.after(() => idle.forEach((r) => r.close()));
  for (let i = 0; i < STREAMS_PER_CLIENT - 1; i++) idle.push(await stalledReader(path));
  idle.forEach((r) => assert.equal(r.status, 200));
  // The fourth place: a reader that reads everything.
  const reading = await readingReader(path);
  t.after(() => reading.close());
  assert.equal(reading.status, 200);

  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, workerdMem(worker.pid).runtime)), 100);
  t.after(() => clearInterval(sampler));
  const session = await runEnded(id);
  // A reader that reads but fell behind (the machine is busy) resumes where its cut says.
  let got = parseSse(await reading.finish());
  let resumes = 0;
  for (let cut = got.at(-1)?.comment; cut?.startsWith('cut'); cut = got.at(-1)?.comment) {
    const after = Number(/GET \?after=(\d+)/.exec(cut)[1]);
    const res = await fetch(`${aguiUrl(id)}?after=${after}`);
    if (res.status === 410) break; // documented: the log no longer holds it
    assert.equal(res.status, 200);
    got = [...got.slice(0, -1), ...parseSse(await res.text())];
    resumes++;
  }
  clearInterval(sampler);
  const after = workerdMem(worker.pid).runtime;
  const data = got.filter((f) => f.data);
  const sent = got.reduce((n, f) => n + (f.data ? JSON.stringify(f.data).length : 0), 0);
  console.log(`# ${idle.length} readers that never read + 1 that reads, a run of seq ${started.seq}..${session.lastSeq} (≈ ${(sent / MIB).toFixed(1)} MiB of events): runtime RSS ${(before / MIB).toFixed(0)} → peak ${(peak / MIB).toFixed(0)} → ${(after / MIB).toFixed(0)} MiB (+${((peak - before) / MIB).toFixed(0)} MiB at the peak); dev proxy ${(workerdMem(worker.pid).proxy / MIB).toFixed(0)} MiB`);

  // The reader that reads got the run in order, nothing twice, nothing skipped (resuming if
  // it was cut, up to a log that no longer held its place).
  data.forEach((f, i) => assert.equal(f.id, started.seq + i, 'no gap'));
  if (!got.at(-1)?.comment) {
    assert.equal(data.at(-1).id, session.lastSeq);
    assert.equal(data.at(-1).data.type, 'RUN_FINISHED');
    assert.ok(sent > 10 * MIB, `the run wrote ${sent} bytes of events`);
  }

  // Each idle reader got a prefix of the run, then one cut comment naming where to resume
  // (or the whole run, if the kernel's buffers and its share of the bound held it).
  const reasons = resumes ? [`reader resumed ${resumes}x`] : [];
  for (const [i, r] of idle.entries()) {
    const frames = parseSse(await r.finish());
    const seen = frames.filter((f) => f.data);
    seen.forEach((f, k) => assert.equal(f.id, started.seq + k, `idle ${i}: no gap`));
    const cut = frames.at(-1).comment ?? '';
    if (!cut) {
      assert.equal(seen.at(-1).id, session.lastSeq, `idle ${i}: the whole run or a cut`);
      reasons.push('whole run');
      continue;
    }
    const m = /^cut \((shed|behind)\).*GET \?after=(\d+)/.exec(cut);
    assert.ok(m, `idle ${i} ends with a cut: ${cut.slice(0, 160)}`);
    reasons.push(m[1]);
    assert.equal(Number(m[2]), seen.at(-1)?.id ?? from, `idle ${i}: resume after the last event it got`);
    assert.ok(seen.at(-1)?.id !== session.lastSeq, `idle ${i} did not get the whole run`);
  }
  console.log(`# idle readers: ${reasons.join(', ')}`);
  // Loose: the readers' bytes are bounded at 16 MiB a session; the run itself costs some.
  assert.ok(peak - before < 200 * MIB, `runtime grew ${((peak - before) / MIB).toFixed(0)} MiB`);
  // The places are free again.
  const res = await fetch(`${aguiUrl(id)}?after=${session.lastSeq}`);
  assert.equal(res.status, 200);
  await res.text();
});

test('an export of files full of U+0001 stays within 32 MiB as sent and is valid JSON Lines', async () => {
  const id = await createSession(worker.url);
  // Eight rounds of sixteen 40 KiB files of U+0001 (one answer's arguments stay under 4 MiB):
  // 5 MiB of kept versions, 30 MiB escaped, with the log past the bound (an export of 16 MiB of
  // such versions was 99 MiB when it was built as one string).
  const FILE_CHARS = 40 * 1024;
  const ctl = '\u0001'.repeat(FILE_CHARS - 1);
  const round = (r) => ({
    toolCalls: Array.from({ length: 16 }, (_, i) => ({ name: 'write_file', arguments: { path: `ctl/${i}.bin`, content: `${r}${ctl}` } })),
    argChunk: 256 * 1024,
  });
  const rounds = [1, 2, 3, 4, 5, 6, 7, 8].map(round);
  const steps = [{ ok: true }, ...rounds, { text: '## Overview\nControl characters.\n' }, { ok: true }];
  await startRun(id, 'export-ctl', steps, 'auto');
  const session = await runEnded(id);
  assert.equal(session.state.run.status, 'completed', JSON.stringify(session.state.run.error));
  const tree = await (await fetch(`${worker.url}/api/sessions/${id}/files`)).json();
  const versions = tree.files.reduce((n, f) => n + f.versions.length, 0);
  assert.ok(versions >= 8 * 16, `eight versions of each of the sixteen files are kept (${versions})`);

  const res = await fetch(`${worker.url}/api/sessions/${id}/export.jsonl`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/x-ndjson/);
  const text = await res.text();
  const bytes = Buffer.byteLength(text);
  console.log(`# export of ${versions} file versions (${tree.files.length} files of U+0001): ${(bytes / MIB).toFixed(1)} MiB (bound ${EXPORT_MAX_BYTES / MIB} MiB)`);
  assert.ok(bytes <= EXPORT_MAX_BYTES, `${bytes} bytes`);
  assert.ok(text.endsWith('\n'));
  const lines = text.trimEnd().split('\n').map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      throw new Error(`line ${i + 1} is not JSON: ${l.slice(0, 80)}`, { cause: e });
    }
  });
  assert.equal(lines[0].kind, 'session');
  const last = lines.at(-1);
  assert.deepEqual([last.kind, last.reason], ['cut', 'too_large'], 'the export says it was cut');
  assert.equal(last.bytes + Buffer.byteLength(JSON.stringify(last)) + 1, bytes, 'the cut line counts what came before it');
  assert.ok(bytes > EXPORT_MAX_BYTES - MIB, 'cut near the bound, not before');
  const files = lines.filter((l) => l.kind === 'file');
  assert.ok(files.length > 0 && files.length < versions, `${files.length} of ${versions} file versions fit whole`);
  const ctlFiles = files.filter((x) => x.path.startsWith('ctl/'));
  for (const f of ctlFiles) assert.equal(f.content.length, FILE_CHARS, `${f.path} v${f.version} whole`);
  // What is sent is the escaped text: six bytes a character.
  const escaped = ctlFiles.reduce((n, f) => n + Buffer.byteLength(JSON.stringify(f.content)), 0);
  assert.ok(escaped > 5.99 * FILE_CHARS * ctlFiles.length, `${escaped}`);
  assert.ok(bytes > escaped);
  // The events and artifacts all came before the files.
  const events = lines.filter((l) => l.kind === 'event');
  assert.equal(events.at(-1).event.seq, lines[0].lastSeq);
  assert.equal(lines.filter((l) => l.kind === 'artifact').length, 5);

  // Through a view key: the same bound, the key in place of the id.
  const view = await (await fetch(`${worker.url}/api/sessions/${id}/views`, { method: 'POST', headers: { Origin: worker.url } })).json();
  const seen = await (await fetch(`${worker.url}/api/sessions/${view.key}/export.jsonl`)).text();
  assert.ok(Buffer.byteLength(seen) <= EXPORT_MAX_BYTES);
  assert.ok(!seen.includes(id), 'the view export leaks the session id');
  assert.equal(JSON.parse(seen.slice(0, seen.indexOf('\n'))).id, view.key);
});

test('a runId sent again with another input is 409 id_reused; with the same input it streams its run again', async () => {
  const id = await createSession(worker.url);
  const post = (body) => fetch(aguiUrl(id), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const start = { threadId: id, runId: 'reuse-1', messages: [{ id: 'u1', role: 'user', content: 'A recipe box' }] };
  const first = await (await post(start)).text();
  assert.match(first, /RUN_FINISHED/);
  const again = await (await post({ ...start, state: { ignored: true } })).text();
  assert.equal(again, first, 'the same input streams the same run again');
  const before = (await getSession(worker.url, id)).body.lastSeq;
  for (const other of [
    { ...start, messages: [{ id: 'u2', role: 'user', content: 'A different brief' }] },
    { ...start, forwardedProps: { approval: 'auto' } },
    { ...start, resume: [{ interruptId: 'gate-analyst-1', status: 'resolved' }] },
  ]) {
    const res = await post(other);
    assert.equal(res.status, 409);
    const err = (await res.json()).error;
    assert.equal(err.code, 'id_reused');
    assert.match(err.message, /runId/);
  }
  assert.equal((await getSession(worker.url, id)).body.lastSeq, before, 'nothing changed');
});
