// Restart: SIGKILL the whole `wrangler dev` process tree (wrangler, workerd) in the middle of
// several runs, start it again on the same persisted state and port, and check that
//   - nothing a client received before the kill is lost or changed (every pre-kill transcript
//     and the pre-kill GET /events are prefixes of the log after the restart),
//   - clients reconnect with hello {lastSeq} and catch up by replay, nothing twice,
//   - the message cut by the kill is closed and marked (CUSTOM message_interrupted "restart"),
//   - runs continue to completion: a stream in flight is rerun, a gate still waits for its
//     approval, a scheduled retry (429 Retry-After) still fires,
//   - a run whose clients all stay away resumes by itself (the alarm survives the restart),
//   - the whole log passes the AG-UI verifier and equals every client's transcript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, workerSnapshot } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { SessionClient, createSession, fetchEvents, getArtifact, getSession } from '../support/client.mjs';
import { messagesOf, verifyStream } from '../support/agui.mjs';
import { STAGES, NAMES, tag, briefFor, finalChecks, assertSameEvents, assertKeptOrResynced, assertRejoined, ofType, mustAck, sleep } from '../support/e2e.mjs';

const KEY = 'sk-restart-test-3c1f';
const STALL_TIMEOUT_MS = 5000;
let fake;
let env;
let w1;
let w2;
let cwd;

before(async () => {
  cwd = workerSnapshot(); // the same private copy of the build for every start (harness)
  fake = await startFakeOpenAI({ msPerToken: 2 });
  env = {
    OPENAI_BASE_URL: fake.url,
    OPENAI_API_KEY: KEY,
    OPENAI_MODEL: 'fake-restart',
    LLM_BACKOFF_BASE_MS: '50',
    LLM_BACKOFF_CAP_MS: '500',
    LLM_REQUESTS_PER_MIN: '100000',
    LLM_TOKENS_PER_MIN: '100000000',
    LLM_MAX_CONCURRENT: '1000',
    // The alarm that resumes an unattended run is the stall watchdog of the call that died
    // (or an earlier one); keep it short so the test need not wait the default 30 s.
    LLM_STALL_TIMEOUT_MS: String(STALL_TIMEOUT_MS),
  };
});
after(async () => {
  await w1?.kill().catch(() => {});
  await w2?.stop();
  await fake?.close();
});

const isEnd = (e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR';
const openAssistant = (c) => [...c.messages.values()].find((m) => m.role === 'assistant' && !m.ended);

/** Reconnect (hello lastSeq) until the new worker accepts; returns the welcome. */
async function reconnectAfterRestart(c) {
  let last;
  for (let i = 0; i < 30; i++) {
    try {
      const { welcome } = await c.reconnect({ abrupt: true });
      return welcome;
    } catch (e) {
      last = e;
      await sleep(200);
    }
  }
  throw new Error(`${c.label}: could not reconnect after the restart: ${last?.message}`);
}

/** Drive a session to its final run end: approve every gate (each_stage). */
async function driveToEnd(c, from = 0, timeoutMs = 60000) {
  for (let after = 0; ; ) {
    // (After a re-sync the end may be inside the snapshot, and not in the transcript.)
    const end = await c.waitForRunEnd(timeoutMs, { from, after });
    after = end.seq;
    if (end.type === 'RUN_FINISHED' && end.outcome?.type === 'interrupt') {
      await mustAck(c, { type: 'approve', stage: c.state.gate.stage });
      continue;
    }
    return end;
  }
}

/** `prefix` (events) is an exact prefix of `events`, by seq and content. */
function assertPrefix(prefix, events, label) {
  assert.ok(prefix.length <= events.length, `${label}: ${prefix.length} events before the kill but only ${events.length} after`);
  assertSameEvents(prefix, events.slice(0, prefix.length), `${label} (prefix)`);
}

// Shared between the two tests below (one kill, one restart).
const S = {};

test('SIGKILL mid-stream, restart on the same state: no logged event lost or duplicated, runs complete, clients catch up', { timeout: 240000 }, async () => {
  w1 = await startWorker({ name: 'restart-1', env, cwd });
  const slow = { tokens: 200, delayMs: 20 }; // ~4 s of streaming: the kill lands mid-message
  const specs = {
    // auto, killed while the analyst streams
    streamAuto: { approval: 'auto', steps: [slow, { tokens: 40, delayMs: 2 }] },
    // each_stage, analyst approved, killed while the architect streams
    streamGate: { approval: 'each_stage', steps: [{ tokens: 30, delayMs: 2 }, slow, { tokens: 40, delayMs: 2 }] },
    // each_stage, waiting at the analyst gate when killed
    atGate: { approval: 'each_stage', steps: [{ tokens: 30, delayMs: 2 }, { tokens: 40, delayMs: 2 }] },
    // auto, waiting for a retry (429, Retry-After 4 s) when killed
    retrying: { approval: 'auto', steps: [{ status: 429, retryAfter: 4 }, { tokens: 40, delayMs: 2 }] },
    // auto, killed mid-stream; nobody reconnects until the run has resumed on its own
    unattended: { approval: 'auto', steps: [slow, { tokens: 40, delayMs: 2 }] },
  };
  for (const [name, spec] of Object.entries(specs)) {
    const t = tag(`restart-${name}`);
    fake.setScenario(t, spec.steps);
    const id = await createSession(w1.url);
    const clients = [];
    for (let i = 0; i < 2; i++) clients.push(await SessionClient.open(w1.url, id, { label: `${name}/c${i}` }));
    S[name] = { ...spec, t, id, clients };
    await mustAck(clients[0], { type: 'start', brief: briefFor(t, `Restart case ${name}: a tool library for a neighbourhood`), approval: spec.approval });
  }

  // Bring every session to the moment we want to kill it in.
  const gate1 = await S.streamGate.clients[0].waitFor((e) => e.type === 'RUN_FINISHED' && e.runId === 'run-1', 20000);
  await mustAck(S.streamGate.clients[0], { type: 'approve', stage: 'analyst' });
  S.streamGate.driveFrom = S.streamGate.clients[0].transcript.indexOf(gate1) + 1; // that gate is answered
  await S.atGate.clients[0].waitFor((e) => e.type === 'RUN_FINISHED' && e.runId === 'run-1', 20000);
  const retryErr = await S.retrying.clients[0].waitFor((e) => e.type === 'CUSTOM' && e.name === 'agent_error', 20000);
  assert.equal(retryErr.value.code, 'rate_limited');
  const streaming = ['streamAuto', 'streamGate', 'unattended'];
  for (const name of streaming) {
    await S[name].clients[0].waitFor((e, c) => e.type === 'TEXT_MESSAGE_CONTENT' && c.messages.get(e.messageId)?.role === 'assistant' && c.messages.get(e.messageId).text.length > 80, 20000, { what: `${name}: an assistant message streaming` });
  }

  // Log and transcripts as they were just before the kill.
  for (const s of Object.values(S)) s.logBefore = await fetchEvents(w1.url, s.id, 0);
  await w1.kill();
  const killedAt = Date.now();
  for (const s of Object.values(S)) {
    for (const c of s.clients) await c.waitForClose(10000);
    s.before = s.clients.map((c) => c.transcript.slice());
    s.seqBefore = Math.max(...s.clients.map((c) => c.lastSeq), s.logBefore.length);
  }
  for (const name of streaming) {
    const open = openAssistant(S[name].clients[0]);
    assert.ok(open, `${name}: an assistant message was open at the kill`);
    S[name].cut = open;
    await fake.waitForRequests(() => fake.requestsFor(S[name].t).some((r) => r.outcome === 'aborted'), 5000).catch(() => {});
    assert.equal(fake.requestsFor(S[name].t).filter((r) => r.outcome !== 'completed' && r.outcome !== 'error-status').map((r) => r.outcome).join(','), 'aborted', `${name}: the provider stream in flight died with the process`);
  }
  assert.equal(S.atGate.clients[0].state.run.status, 'waiting_approval');
  assert.equal(S.retrying.clients[0].state.agents.analyst.status, 'retrying');

  // Restart on the same state and port.
  w2 = await startWorker({ name: 'restart-2', env, cwd, persistDir: w1.persistDir, port: w1.port });
  S.restartedAt = Date.now();
  S.restartMs = S.restartedAt - killedAt;

  // Everyone except the unattended session reconnects now.
  for (const [name, s] of Object.entries(S)) {
    if (name === 'unattended' || !s.clients) continue;
    for (const c of s.clients) {
      const before = c.lastSeq;
      const welcome = await reconnectAfterRestart(c);
      // A replay of all it saw, or (the kill fell between sending streamed events and storing
      // them) a snapshot in a new epoch.
      assertRejoined(welcome, before, c.label);
    }
  }

  // The runs continue to completion.
  for (const name of ['streamAuto', 'streamGate', 'atGate', 'retrying']) {
    const s = S[name];
    const end = await driveToEnd(s.clients[0], s.driveFrom || 0);
    assert.equal(end.type, 'RUN_FINISHED', `${name}: ${JSON.stringify(end)}`);
    assert.deepEqual(end.outcome, { type: 'success' }, name);
    await s.clients[1].waitForSeq(end.seq, 10000);
  }

  for (const name of ['streamAuto', 'streamGate', 'atGate', 'retrying']) {
    const s = S[name];
    // A late joiner replays the whole history from seq 1.
    const late = await SessionClient.open(w2.url, s.id, { label: `${name}/late` });
    const { events, session } = await finalChecks(w2, s.id, [...s.clients, late], { complete: true });
    // Nothing logged before the kill was lost, changed or repeated; what the clients received
    // is the log's but for a moment of streaming the kill may cut (then they re-synced).
    assertPrefix(s.logBefore, events, `${name}: GET /events before the kill`);
    s.before.forEach((b, i) => assertKeptOrResynced(s.clients[i], b, events, `${name}: ${s.clients[i].label} transcript before the kill`));
    assert.equal(session.state.run.status, 'completed');
    for (const st of STAGES) assert.equal(session.state.agents[st].status, 'done', `${name}: ${st} done`);
    const msgs = [...messagesOf(events).values()];
    const reqs = fake.requestsFor(s.t);
    if (s.cut) {
      // The message cut by the kill: closed, marked "restart", its text a prefix of what the
      // provider sent; the stage reran as a new message that became the artifact.
      const cut = msgs.find((m) => m.messageId === s.cut.messageId);
      assert.ok(cut.ended, `${name}: the interrupted message is closed`);
      assert.equal(cut.interrupted, 'restart', `${name}: the interrupted message is marked message_interrupted reason restart`);
      assert.ok(cut.text.startsWith(s.cut.text) || s.cut.text.startsWith(cut.text), `${name}: the log's cut message and what the client saw of it agree (the kill may cut a moment of streaming)`);
      const aborted = reqs.find((r) => r.outcome === 'aborted');
      assert.ok(aborted.text.startsWith(cut.text), `${name}: the cut message is a prefix of what the provider had sent`);
      const marks = ofType(events, 'CUSTOM', 'message_interrupted').filter((e) => e.value.messageId === cut.messageId);
      assert.equal(marks.length, 1, `${name}: marked once`);
      const endIdx = events.findIndex((e) => e.type === 'TEXT_MESSAGE_END' && e.messageId === cut.messageId);
      const markIdx = events.findIndex((e) => e === marks[0]);
      assert.ok(endIdx >= 0 && markIdx === endIdx + 1, `${name}: message_interrupted follows its TEXT_MESSAGE_END`);
      assert.ok(events[endIdx].seq > s.logBefore.length, `${name}: the cut message was closed after the restart (seq ${events[endIdx].seq})`);
      const stage = STAGES.find((st) => NAMES[st] === cut.name);
      assert.equal(marks[0].value.stage, stage);
      const redo = msgs.filter((m) => m.name === cut.name && m.messageId !== cut.messageId);
      assert.equal(redo.length, 1, `${name}: the ${stage} reran once as a new message`);
      assert.equal(redo[0].interrupted, null);
      assert.equal((await getArtifact(w2.url, s.id, stage)).text, redo[0].text, `${name}: the artifact is the complete rerun`);
    } else {
      assert.equal(ofType(events, 'CUSTOM', 'message_interrupted').length, 0, `${name}: nothing was interrupted`);
    }
    // Each provider call completed at most once per artifact; no call ran twice for a stage.
    assert.equal(reqs.filter((r) => r.outcome === 'completed').length, 5, `${name}: five complete provider answers`);
    await Promise.all([...s.clients, late].map((c) => c.close()));
  }

  // The scheduled retry fired after the restart, not before its Retry-After.
  const [r429, rRetry] = fake.requestsFor(S.retrying.t);
  assert.equal(r429.status, 429);
  assert.ok(rRetry.time - r429.time >= 3950, `Retry-After 4 s honoured across the restart (${rRetry.time - r429.time} ms)`);
  assert.ok(rRetry.time >= S.restartedAt - 1000, 'the retry ran in the restarted worker');
});

test('after the restart, a run with no client connected resumes by itself (its alarm survives)', { timeout: 120000 }, async () => {
  const s = S.unattended;
  assert.ok(s && w2, 'the restart test ran first');
  // Without any request touching this session, the provider must be called again — at the
  // latest when the dead call's stall watchdog (its pending alarm) fires.
  const windowMs = STALL_TIMEOUT_MS + 15000;
  let resumed = true;
  await fake
    .waitForRequests(() => fake.requestsFor(s.t).some((r) => r.outcome === 'completed'), Math.max(1000, S.restartedAt + windowMs - Date.now()))
    .catch(() => (resumed = false));
  const reqsUntouched = fake.requestsFor(s.t).map((r) => r.outcome);

  // Now reconnect the clients: they catch up, and the run completes either way.
  for (const c of s.clients) {
    const seen = c.lastSeq;
    const welcome = await reconnectAfterRestart(c);
    assertRejoined(welcome, seen, c.label);
  }
  const end = await driveToEnd(s.clients[0]);
  assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
  assert.deepEqual(end.outcome, { type: 'success' });
  await s.clients[1].waitForSeq(end.seq, 10000);
  const { events } = await finalChecks(w2, s.id, s.clients, { complete: true });
  assertPrefix(s.logBefore, events, 'unattended: GET /events before the kill');
  s.before.forEach((b, i) => assertKeptOrResynced(s.clients[i], b, events, `unattended: ${s.clients[i].label} transcript before the kill`));
  const cut = [...messagesOf(events).values()].find((m) => m.messageId === s.cut.messageId);
  assert.equal(cut.interrupted, 'restart');
  await verifyStream(events, { threadId: s.id, complete: true, label: 'unattended log' });
  assert.equal((await getSession(w2.url, s.id)).body.state.run.status, 'completed');
  await Promise.all(s.clients.map((c) => c.close()));

  assert.ok(resumed, `the interrupted run did not resume within ${windowMs / 1000} s of the restart while no client was connected (provider calls: ${reqsUntouched.join(', ')}); it resumed only once a client connected`);
});

test('two restarts in a row, the second while the rerun streams: each cut message is marked, the stage still counts one attempt', { timeout: 180000 }, async () => {
  const slow = { tokens: 200, delayMs: 20 };
  const t = tag('restart-twice');
  fake.setScenario(t, [slow, slow, { tokens: 40, delayMs: 2 }]);
  let a = await startWorker({ name: 'restart-twice-1', env, cwd });
  let b;
  let w3;
  try {
    const id = await createSession(a.url);
    const c = await SessionClient.open(a.url, id, { label: 'twice' });
    await mustAck(c, { type: 'start', brief: briefFor(t, 'Restart twice: a recipe box'), approval: 'auto' });
    const streaming = (from) => c.waitFor((e, cl) => e.type === 'TEXT_MESSAGE_CONTENT' && cl.messages.get(e.messageId)?.role === 'assistant' && cl.messages.get(e.messageId).text.length > 60, 20000, { from, what: 'an assistant message streaming' });
    await streaming(0);
    const before1 = c.transcript.slice();
    await a.kill();
    b = await startWorker({ name: 'restart-twice-2', env, cwd, persistDir: a.persistDir, port: a.port });
    await reconnectAfterRestart(c);
    // The rerun streams: kill again.
    await streaming(before1.length);
    const before2 = c.transcript.slice();
    await b.kill();
    w3 = await startWorker({ name: 'restart-twice-3', env, cwd, persistDir: a.persistDir, port: a.port });
    await reconnectAfterRestart(c);
    const end = await driveToEnd(c, 0, 60000);
    assert.deepEqual(end.outcome, { type: 'success' }, JSON.stringify(end));
    const { events, session } = await finalChecks(w3, id, c, { complete: true });
    assertKeptOrResynced(c, before1, events, 'transcript before the first kill');
    assertKeptOrResynced(c, before2, events, 'transcript before the second kill');
    const analysts = [...messagesOf(events).values()].filter((m) => m.name === 'Analyst');
    assert.deepEqual(analysts.map((m) => m.interrupted), ['restart', 'restart', null], 'two cut messages marked restart, then the complete one');
    assert.ok(analysts.every((m) => m.ended));
    assert.equal(session.state.agents.analyst.attempts, 1, 'a restart is not a failed attempt');
    assert.equal((await getArtifact(w3.url, id, 'analyst')).text, analysts[2].text);
    assert.deepEqual(fake.requestsFor(t).map((r) => r.outcome).slice(0, 2), ['aborted', 'aborted']);
    await c.close();
  } finally {
    await a.kill().catch(() => {});
    await b?.kill().catch(() => {});
    await w3?.stop();
  }
});
