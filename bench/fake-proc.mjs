// The OpenAI-compatible test double (tests/support/fake-openai.mjs) in its own process, so the
// load generator's clients and the provider do not share one event loop. Started by
// bench/lib.mjs `startFakeProcess()` with an IPC channel; exits when the parent goes away.
//
// Every token write is timestamped with process.hrtime (CLOCK_MONOTONIC, the same clock in
// every process of the machine), so the parent can subtract it from its own receive times.
//
// IPC requests (parent → child) are {id, cmd, ...}; the answer is {id, result} or {id, error}.
//   setScenario {name, steps}       script a scenario (see fake-openai.mjs for steps)
//   take {prefix}                   finished requests whose scenario starts with prefix, removed
//                                   from memory: [{id, scenario, role, stepIndex, outcome,
//                                   tokensSent, status, times: [ms, …]}]  (times[j] = token j)
//   counts                          {requests, pending, byOutcome}
//   reset                           forget scenarios and requests
import { startFakeOpenAI } from '../tests/support/fake-openai.mjs';

const fake = await startFakeOpenAI({ msPerToken: 2, host: '127.0.0.1' });

fake.onRequest = (entry) => {
  entry.times = [];
  // The prompt can be megabytes (replay benchmark); the text is rebuilt by the parent.
  entry.rawBody = '';
};
fake.onToken = (entry, index, _text, hr) => {
  entry.times[index] = Number(hr) / 1e6;
};

function summary(e) {
  return {
    id: e.id,
    scenario: e.scenario,
    role: e.role,
    stepIndex: e.step ? e.step.index ?? null : null,
    outcome: e.outcome,
    status: e.status,
    tokensSent: e.tokensSent,
    times: e.times || [],
  };
}

function take(prefix = '') {
  const out = [];
  const keep = [];
  for (const e of fake.requests) {
    const mine = (e.scenario || '').startsWith(prefix);
    if (mine && e.outcome !== 'pending') out.push(summary(e));
    else keep.push(e);
  }
  fake.requests.length = 0;
  fake.requests.push(...keep);
  // Finished entries no longer need their text and body.
  return out;
}

const handlers = {
  setScenario: ({ name, steps }) => {
    fake.setScenario(name, steps);
    return { name };
  },
  take: ({ prefix }) => take(prefix),
  counts: () => {
    const byOutcome = {};
    for (const e of fake.requests) byOutcome[e.outcome] = (byOutcome[e.outcome] || 0) + 1;
    return { requests: fake.requests.length, byOutcome };
  },
  reset: () => {
    fake.reset();
    return true;
  },
};

process.on('message', (msg) => {
  const h = handlers[msg && msg.cmd];
  try {
    if (!h) throw new Error(`unknown cmd ${msg && msg.cmd}`);
    process.send({ id: msg.id, result: h(msg) });
  } catch (e) {
    process.send({ id: msg.id, error: String(e && e.stack || e) });
  }
});
process.on('disconnect', async () => {
  await fake.close();
  process.exit(0);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => {
  await fake.close();
  process.exit(0);
});

process.send({ ready: true, url: fake.url, pid: process.pid });
