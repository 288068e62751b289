// Validate captured BotArmy event streams against AG-UI itself:
//   - every event against @ag-ui/core's zod schemas (EventSchemas, from '@ag-ui/core/schemas'),
//   - the whole sequence through @ag-ui/client's verifyEvents (the operator its agents use),
//   - the BotArmy rules on top (docs/protocol.md): integer seq from 1 with no gaps, the logged
//     stream is a sequence of runs (RUN_STARTED … RUN_FINISHED | RUN_ERROR, nothing between),
//     threadId = session id, every text message ended before its run ends.
//
//   const summary = await verifyStream(events, { threadId: sessionId });
//   summary.runs  // [{runId, startSeq, endSeq, outcome, error}]

import { EventSchemas } from '@ag-ui/core/schemas';
import { verifyEvents } from '@ag-ui/client';
import { from } from 'rxjs';
import { tap } from 'rxjs/operators';

function brief(e) {
  return JSON.stringify(e).slice(0, 300);
}

/** Check each event against @ag-ui/core's schema. Throws naming the first failing seq. */
export function checkSchemas(events, label = 'stream') {
  events.forEach((e, i) => {
    const r = EventSchemas.safeParse(e);
    if (!r.success) {
      const issues = r.error.issues.map((iss) => `${iss.path.join('.') || '(root)'}: ${iss.message}`).join('; ');
      throw new Error(`${label}: event #${i} seq ${e && e.seq} (${e && e.type}) fails the @ag-ui/core schema: ${issues}\n  event: ${brief(e)}`);
    }
  });
}

/** Run events through @ag-ui/client's verifyEvents. Resolves, or throws naming the failing seq. */
export function checkVerifier(events, label = 'stream') {
  return new Promise((resolve, reject) => {
    let current = null;
    let index = -1;
    let out = 0;
    from(events)
      .pipe(
        tap((e) => {
          current = e;
          index++;
        }),
        verifyEvents(false),
      )
      .subscribe({
        next: () => out++,
        error: (err) =>
          reject(new Error(`${label}: @ag-ui/client verifyEvents rejects event #${index} seq ${current && current.seq} (${current && current.type}): ${err && err.message}\n  event: ${brief(current)}`)),
        complete: () => resolve(out),
      });
  });
}

/** seq is an integer on every event, starting at firstSeq, +1 each. */
export function checkSeq(events, { firstSeq = 1, label = 'stream' } = {}) {
  let expected = firstSeq;
  for (const e of events) {
    if (!Number.isInteger(e.seq)) throw new Error(`${label}: event without integer seq after seq ${expected - 1}: ${brief(e)}`);
    if (e.seq !== expected) throw new Error(`${label}: seq ${e.seq} where ${expected} was expected (${e.seq < expected ? 'repeat' : 'gap'}): ${brief(e)}`);
    expected++;
  }
}

/**
 * Split a logged stream into runs and check the BotArmy run rules. Returns the runs.
 * With `complete: true`, the last run must be finished too.
 */
export function summarizeRuns(events, { threadId, label = 'stream', complete = false } = {}) {
  const runs = [];
  let run = null;
  const openMessages = new Map();
  for (const e of events) {
    if (e.type === 'RUN_STARTED') {
      if (run) throw new Error(`${label}: RUN_STARTED at seq ${e.seq} while run ${run.runId} (seq ${run.startSeq}) is still open`);
      if (threadId && e.threadId !== threadId) throw new Error(`${label}: RUN_STARTED seq ${e.seq} threadId ${e.threadId}, expected the session id ${threadId}`);
      if (runs.some((r) => r.runId === e.runId)) throw new Error(`${label}: runId ${e.runId} reused at seq ${e.seq}`);
      run = { runId: e.runId, startSeq: e.seq, endSeq: null, outcome: null, error: null, events: [e] };
      runs.push(run);
      continue;
    }
    if (!run) throw new Error(`${label}: ${e.type} at seq ${e.seq} outside any run (the logged stream must consist of runs only)`);
    run.events.push(e);
    if (e.type === 'TEXT_MESSAGE_START') openMessages.set(e.messageId, e.seq);
    if (e.type === 'TEXT_MESSAGE_END') openMessages.delete(e.messageId);
    if (e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR') {
      if (openMessages.size) throw new Error(`${label}: ${e.type} at seq ${e.seq} with text message(s) still open: ${[...openMessages].map(([m, s]) => `${m} (started seq ${s})`).join(', ')}`);
      if (e.type === 'RUN_FINISHED') {
        if (e.runId !== run.runId) throw new Error(`${label}: RUN_FINISHED seq ${e.seq} runId ${e.runId} does not match the open run ${run.runId}`);
        if (threadId && e.threadId !== threadId) throw new Error(`${label}: RUN_FINISHED seq ${e.seq} threadId ${e.threadId}, expected ${threadId}`);
        run.outcome = e.outcome ?? null;
      } else {
        run.error = { code: e.code, message: e.message };
      }
      run.endSeq = e.seq;
      run = null;
    }
  }
  if (complete && run) throw new Error(`${label}: run ${run.runId} (from seq ${run.startSeq}) never finished`);
  return runs;
}

/**
 * Validate a logged stream. Options: threadId (session id), firstSeq (default 1; null to skip the
 * seq check, e.g. for a slice), complete (last run must be finished), label.
 */
export async function verifyStream(events, { threadId, firstSeq = 1, complete = false, label = 'stream' } = {}) {
  if (!Array.isArray(events)) throw new Error(`${label}: expected an array of events`);
  if (events.length === 0) throw new Error(`${label}: empty stream`);
  if (firstSeq !== null) checkSeq(events, { firstSeq, label });
  checkSchemas(events, label);
  const runs = summarizeRuns(events, { threadId, label, complete });
  await checkVerifier(events, label);
  return { runs, count: events.length };
}

/** Reconstruct message texts from a logged stream: Map messageId -> {role, name, text, ended, interrupted}. */
export function messagesOf(events) {
  const out = new Map();
  for (const e of events) {
    if (e.type === 'TEXT_MESSAGE_START') out.set(e.messageId, { messageId: e.messageId, role: e.role, name: e.name, text: '', ended: false, interrupted: null, startSeq: e.seq });
    else if (e.type === 'TEXT_MESSAGE_CONTENT' && out.has(e.messageId)) out.get(e.messageId).text += e.delta;
    else if (e.type === 'TEXT_MESSAGE_END' && out.has(e.messageId)) out.get(e.messageId).ended = true;
    else if (e.type === 'CUSTOM' && e.name === 'message_interrupted' && out.has(e.value?.messageId)) out.get(e.value.messageId).interrupted = e.value.reason;
  }
  return out;
}
