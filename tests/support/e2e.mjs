// Shared pieces of the end-to-end tests: stage names, scenario tags, briefs, the final
// consistency checks every test runs on a session (transcript = GET /events, AG-UI valid,
// state from deltas = GET state), and a seeded PRNG.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SessionClient, createSession, fetchEvents, getSession } from './client.mjs';
import { verifyStream, messagesOf } from './agui.mjs';
import { canon, applyPatch } from './json-patch.mjs';

export { STAGES, NAMES } from './stages.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A unique scenario name. */
export function tag(name) {
  return `${name}-${crypto.randomBytes(4).toString('hex')}`;
}

/** A brief that selects a scenario of the fake provider. */
export function briefFor(scenario, text = 'Build a shared shopping list app for families, with offline mode and sharing') {
  return scenario ? `${text} [[scenario:${scenario}]]` : text;
}

/** Create a session and open a client on it (hello done). */
export async function newSessionClient(worker, opts = {}) {
  const id = await createSession(worker.url);
  const client = await SessionClient.open(worker.url, id, opts);
  return { id, client };
}

/** Assert the client saw no duplicate, no gap, no unappliable patch, no unparsable frame. */
export function assertClean(client, label = client.label) {
  assert.deepEqual(client.faults(), { duplicates: [], gaps: [], patchErrors: [], parseErrors: [] }, `${label}: protocol faults`);
}

/** Compare two event lists by seq and content; the failure message names the first difference. */
export function assertSameEvents(actual, expected, label) {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i];
    const e = expected[i];
    if (JSON.stringify(canon(a)) !== JSON.stringify(canon(e))) {
      assert.fail(`${label}: first difference at index ${i} (of ${actual.length} vs ${expected.length}):\n  actual:   ${JSON.stringify(a)?.slice(0, 400)}\n  expected: ${JSON.stringify(e)?.slice(0, 400)}`);
    }
  }
}

/**
 * A client's transcript from before a kill (`before`) against the log after it. Streamed events
 * are sent before they are stored (docs/protocol.md, "Epochs"), so a kill may lose the last few
 * a client saw; that client must then have re-synced by snapshot (`server_restarted`). The
 * events since its previous such re-sync are the log's events of the same seq, up to that lost
 * tail. Returns how many were lost.
 */
export function assertKeptOrResynced(client, before, events, label = client.label) {
  const resyncs = client.snapshots.filter((s) => s.reason === 'server_restarted');
  const prev = resyncs.findLast((s) => s.atTranscript < before.length);
  const part = before.slice(prev ? prev.atTranscript : 0);
  const logged = new Map(events.map((e) => [e.seq, JSON.stringify(canon(e))]));
  let i = 0;
  while (i < part.length && logged.get(part[i].seq) === JSON.stringify(canon(part[i]))) i++;
  const lost = part.length - i;
  if (lost === 0) return 0;
  assert.ok(lost <= 50, `${label}: the log lost the last ${lost} events the client saw before the kill (at most a moment of streaming may go)`);
  assert.ok(
    resyncs.some((s) => s.atTranscript >= before.length),
    `${label}: the client saw ${lost} events the log lost (from seq ${part[i].seq}), but did not re-sync by snapshot (server_restarted)`,
  );
  return lost;
}

/** The welcome of a reconnect after a kill: a replay of everything, or a re-sync in a new epoch. */
export function assertRejoined(welcome, seenBefore, label) {
  if (welcome.mode === 'replay') {
    assert.ok(welcome.lastSeq >= seenBefore, `${label}: replay, so the log kept every event sent before the kill (${welcome.lastSeq} >= ${seenBefore})`);
  } else {
    assert.equal(welcome.reason, 'server_restarted', `${label}: ${JSON.stringify(welcome)}`);
    assert.ok(welcome.epoch > 1, `${label}: a new epoch (${welcome.epoch})`);
  }
}

/**
 * The checks every session ends with, at a quiet point (after RUN_FINISHED / RUN_ERROR):
 * the client's transcript equals GET /events from 0; the stream passes verifyStream; the state
 * the client rebuilt from snapshot + deltas equals GET /api/sessions/{id}; no protocol faults.
 * Returns {events, session, summary}.
 */
export async function finalChecks(worker, id, clients, { complete = true } = {}) {
  const events = await fetchEvents(worker.url, id, 0);
  const summary = await verifyStream(events, { threadId: id, complete, label: `GET /events of ${id}` });
  checkInvariants(events, `GET /events of ${id}`);
  const session = await getSession(worker.url, id);
  assert.equal(session.status, 200);
  assert.equal(session.body.id, id);
  assert.equal(session.body.lastSeq, events.length, 'GET session lastSeq = number of logged events');
  for (const c of [].concat(clients)) {
    assertClean(c);
    const resyncs = c.snapshots.filter((s) => s.reason === 'server_restarted');
    if (resyncs.length) {
      // Events the log lost at a kill were replaced by a snapshot: up to each re-sync the log's
      // but for that lost tail, and after the last one exactly the log's.
      for (const r of resyncs) assertKeptOrResynced(c, c.transcript.slice(0, r.atTranscript), events, `${c.label} transcript before a re-sync`);
      const last = resyncs.at(-1);
      assertSameEvents(c.transcript.slice(last.atTranscript), events.filter((e) => e.seq > last.lastSeq), `${c.label} transcript after its re-sync vs GET /events`);
    } else {
      assertSameEvents(c.transcript, events, `${c.label} transcript vs GET /events`);
      await verifyStream(c.transcript, { threadId: id, complete, label: `${c.label} transcript` });
    }
    assert.equal(c.lastSeq, session.body.lastSeq, `${c.label} lastSeq`);
    assert.deepEqual(canon(c.state), canon(session.body.state), `${c.label}: state rebuilt from STATE_SNAPSHOT + STATE_DELTA differs from GET /api/sessions/${id}`);
  }
  return { events, session: session.body, summary };
}

/** Events of a type (and optional CUSTOM name). */
export function ofType(events, type, name) {
  return events.filter((e) => e.type === type && (name === undefined || e.name === name));
}

/** The assistant messages (in order) of a logged stream, with stage-name mapping. */
export function agentMessages(events) {
  return [...messagesOf(events).values()].filter((m) => m.role === 'assistant');
}

/** mulberry32: a small seeded PRNG so random cut points can be replayed (seed is printed). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Send a command and assert it was acknowledged (not a duplicate). Returns the ack. */
export async function mustAck(client, cmd, timeoutMs = 10000) {
  const a = await client.send(cmd, timeoutMs);
  assert.equal(a.kind, 'ack', `expected ack for ${JSON.stringify(cmd).slice(0, 200)}, got ${JSON.stringify(a)}`);
  assert.equal(a.duplicate, false);
  return a;
}

/**
 * Sends a command until it is applied: a fast machine runs this loop past a socket's 20
 * commands a second, and a command over the rate is answered `rejected rate_limited` (not
 * applied), which a client answers by waiting, as the UI does.
 */
export async function ackedWithinRate(client, cmd) {
  for (let tries = 0; ; tries++) {
    const a = await client.send({ ...cmd }, 30000);
    if (a.kind === 'rejected' && a.code === 'rate_limited' && tries < 10) {
      await sleep(1000);
      continue;
    }
    assert.equal(a.kind, 'ack', `expected ack for ${cmd.type}, got ${JSON.stringify(a)}`);
    return a;
  }
}

/** Send a command and assert it was rejected with `code`. Returns the rejection. */
export async function mustReject(client, cmd, code) {
  const a = await client.send(cmd);
  assert.equal(a.kind, 'rejected', `expected rejected/${code} for ${JSON.stringify(cmd).slice(0, 200)}, got ${JSON.stringify(a)}`);
  assert.equal(a.code, code, `rejection code for ${JSON.stringify(cmd).slice(0, 120)}: ${JSON.stringify(a)}`);
  assert.equal(typeof a.message, 'string');
  assert.ok(a.message.length >= 10, `rejection message should say what is wrong: ${JSON.stringify(a.message)}`);
  return a;
}

/** Wait for the end of the run with id runId (RUN_FINISHED or RUN_ERROR after its RUN_STARTED). */
export async function waitRunEnd(client, runId, timeoutMs = 30000) {
  const started = await client.waitFor((e) => e.type === 'RUN_STARTED' && e.runId === runId, timeoutMs, { what: `RUN_STARTED ${runId}` });
  const from = client.transcript.findIndex((e) => e.seq === started.seq);
  return client.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', timeoutMs, { from, what: `end of ${runId}` });
}

/** Wait for the next run end after transcript index `from`. */
export function waitNextRunEnd(client, from, timeoutMs = 30000) {
  return client.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', timeoutMs, { from, what: `a run end after index ${from}` });
}

/**
 * Replay STATE_SNAPSHOT/STATE_DELTA of a logged stream and return the successive distinct
 * values of `pick(state)` with the seq where each appeared: [{seq, value}].
 */
export function stateHistory(events, pick) {
  let state = null;
  const out = [];
  for (const e of events) {
    if (e.type === 'STATE_SNAPSHOT') state = structuredClone(e.snapshot);
    else if (e.type === 'STATE_DELTA') state = applyPatch(state, e.delta);
    else continue;
    let v;
    try {
      v = pick(state);
    } catch {
      v = undefined;
    }
    const key = JSON.stringify(v);
    if (!out.length || JSON.stringify(out[out.length - 1].value) !== key) out.push({ seq: e.seq, value: v });
  }
  return out;
}

/** Text that reads like words for a person: no JSON, no stack trace, no HTTP dump. */
export function assertPlainWords(message, label = 'message') {
  assert.equal(typeof message, 'string', `${label} is a string`);
  assert.ok(message.length >= 15, `${label} too short to explain anything: ${JSON.stringify(message)}`);
  assert.doesNotMatch(message, /[{}]|\bat \S+:\d+|Error:|stack|undefined|null\b/, `${label} should be plain words: ${JSON.stringify(message)}`);
}

/**
 * BotArmy invariants beyond AG-UI: every run opens with RUN_STARTED then STATE_SNAPSHOT;
 * timestamps are integer epoch ms and never go backwards; a messageId is started once in the
 * whole session (never spliced or reused); an interrupted message is ended right before its
 * message_interrupted event.
 */
export function checkInvariants(events, label = 'stream') {
  const started = new Map();
  const tools = new Map();
  let lastTs = 0;
  const now = Date.now();
  events.forEach((e, i) => {
    if (e.type === 'RUN_STARTED') {
      assert.equal(events[i + 1]?.type, 'STATE_SNAPSHOT', `${label}: RUN_STARTED seq ${e.seq} not followed by STATE_SNAPSHOT`);
    }
    assert.ok(Number.isInteger(e.timestamp), `${label}: seq ${e.seq} has no integer timestamp`);
    assert.ok(e.timestamp > 1_600_000_000_000 && e.timestamp <= now + 60_000, `${label}: seq ${e.seq} timestamp ${e.timestamp} is not epoch ms`);
    assert.ok(e.timestamp >= lastTs, `${label}: seq ${e.seq} timestamp ${e.timestamp} goes back from ${lastTs}`);
    lastTs = e.timestamp;
    if (e.type === 'TEXT_MESSAGE_START') {
      assert.ok(!started.has(e.messageId), `${label}: messageId ${e.messageId} started again at seq ${e.seq} (first at ${started.get(e.messageId)})`);
      started.set(e.messageId, e.seq);
    }
    if (e.type === 'TOOL_CALL_START') {
      assert.ok(!tools.has(e.toolCallId), `${label}: toolCallId ${e.toolCallId} started again at seq ${e.seq}`);
      assert.ok(started.has(e.parentMessageId), `${label}: tool call ${e.toolCallId} names parent ${e.parentMessageId}, not a started message`);
      tools.set(e.toolCallId, 'open');
    }
    if (e.type === 'TOOL_CALL_ARGS' || e.type === 'TOOL_CALL_END') {
      assert.equal(tools.get(e.toolCallId), 'open', `${label}: ${e.type} seq ${e.seq} of a tool call that is not open`);
      if (e.type === 'TOOL_CALL_END') tools.set(e.toolCallId, 'ended');
    }
    if (e.type === 'TOOL_CALL_RESULT') {
      assert.equal(tools.get(e.toolCallId), 'ended', `${label}: result seq ${e.seq} before its call ${e.toolCallId} ended`);
      assert.equal(e.role, 'tool');
    }
    if (e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR') {
      const open = [...tools].filter(([, s]) => s === 'open').map(([id]) => id);
      assert.deepEqual(open, [], `${label}: tool calls open at the run's end (seq ${e.seq})`);
    }
    if (e.type === 'CUSTOM' && e.name === 'message_interrupted') {
      const prev = events[i - 1];
      assert.ok(prev && prev.type === 'TEXT_MESSAGE_END' && prev.messageId === e.value.messageId, `${label}: message_interrupted seq ${e.seq} does not follow the END of ${e.value?.messageId}`);
      assert.ok(['retry', 'cancelled', 'restart', 'failed'].includes(e.value.reason), `${label}: reason ${e.value.reason}`);
    }
  });
}
