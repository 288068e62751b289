// An OpenAI-compatible chat-completions test double: a real HTTP server on 127.0.0.1.
//
// Library use:
//   const fake = await startFakeOpenAI({ msPerToken: 2 });
//   fake.url            // "http://127.0.0.1:PORT/v1"
//   fake.setScenario('slow', [{ tokens: 40, delayMs: 20 }]);
//   fake.requests       // every request received: headers, body, scenario, step, outcome
//   await fake.close();
//
// Standalone (manual runs, benchmarks):
//   node tests/support/fake-openai.mjs [--port N] [--pace MS_PER_TOKEN] [--tokens N]
//   prints "fake-openai listening on http://127.0.0.1:N/v1"
//   POST /__scenario/NAME  body: [step, …] or {steps: [step, …]}   (script a scenario)
//   GET  /__requests                                               (the request log)
//   POST /__reset                                                  (forget scenarios and log)
//   POST /__pace  body: {msPerToken}                              (default stream pace)
//
// Scenario selection: a request belongs to scenario NAME when any of its messages contains
// "[[scenario:NAME]]". Each request of that scenario consumes the next step; the last step
// repeats. Requests without a tag (or with an unscripted tag) get the default answer.
//
// Steps:
//   {ok: true}                                  default answer (also: {} or {tokens, delayMs})
//   {tokens: N, delayMs: D}                     default answer cut to/padded to N tokens, D ms apart
//   {status: 429, retryAfter: 1, body?, code?}  an HTTP error (401, 400, 429, 500, …) with an
//                                               OpenAI-style JSON error body; `code` e.g.
//                                               'context_length_exceeded', 'insufficient_quota'
//   {cutAfter: K}                               K tokens, then the socket is destroyed mid-stream
//   {malformed: true, after?: K}                K (default 2) tokens, then "data: {not json", end
//   {stallAfter: K}                             K tokens, then silence until the client aborts
//   {finish: 'content_filter', tokens?: K}      K (default 3) tokens, then that finish_reason
//   {headerDelayMs: D}                          (combinable) wait D ms before the response head
//   {text: '…'}                                 (combinable) stream this exact text instead
//   {reasoning: {bytes, chunk?, delayMs?}}      (combinable) that much `reasoning_content` first,
//                                               in pieces of `chunk` (default 16 KiB); stops when
//                                               the client goes away (`entry.reasoningSent`)
//   {toolCalls: [{name, arguments, id?}], argChunk?: N}
//                                               function calling: `text` (if given) first, then
//                                               each call as OpenAI streams it (`delta.tool_calls`
//                                               by index; `arguments` a string or an object, sent
//                                               in pieces of N chars, default 7), then
//                                               finish_reason "tool_calls", usage, [DONE]. The
//                                               next request (with the results) takes the next step.

import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { STAGES } from './stages.mjs';

export const ROLES = STAGES;
const SCENARIO_RE = /\[\[scenario:([A-Za-z0-9_.\-]+)\]\]/;

/** Resolves when `res` can take more (or is gone), leaving no listener behind. */
function drained(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}

/** The text of a chat message's content (string or array of parts). */
export function contentText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => (typeof p === 'string' ? p : p && typeof p.text === 'string' ? p.text : '')).join('');
  }
  return '';
}

/** The scenario tag found anywhere in the request's messages, or null. */
export function scenarioOf(body) {
  for (const m of (body && Array.isArray(body.messages) ? body.messages : [])) {
    const hit = SCENARIO_RE.exec(contentText(m.content));
    if (hit) return hit[1];
  }
  return null;
}

/** The agent role named by the system prompt (earliest role word in it), or 'assistant'. */
export function roleOf(body) {
  const sys = (body && Array.isArray(body.messages) ? body.messages : [])
    .filter((m) => m.role === 'system' || m.role === 'developer')
    .map((m) => contentText(m.content))
    .join('\n')
    .toLowerCase();
  let best = null;
  let bestAt = Infinity;
  for (const r of ROLES) {
    const at = sys.indexOf(r);
    if (at >= 0 && at < bestAt) {
      best = r;
      bestAt = at;
    }
  }
  return best || 'assistant';
}

/** The first user message's text. */
export function firstUserText(body) {
  const m = (body && Array.isArray(body.messages) ? body.messages : []).find((x) => x.role === 'user');
  return m ? contentText(m.content) : '';
}

const FILLER = [
  'Scope', 'is', 'kept', 'small', 'and', 'testable.', 'Each', 'item', 'has', 'an', 'owner,',
  'a', 'risk', 'and', 'a', 'clear', 'check.', 'Inputs', 'come', 'from', 'the', 'brief',
  'and', 'the', 'approved', 'artifacts', 'before', 'this', 'stage.', 'Open', 'questions',
  'are', 'listed', 'last,', 'so', 'the', 'next', 'agent', 'can', 'answer', 'them.',
];

/**
 * The default answer as an array of tokens (their concatenation is the text). Deterministic:
 * depends only on the role, the first user message's first 40 chars and the token count.
 */
export function defaultTokens({ role = 'assistant', userText = '', tokens = 60 } = {}) {
  const title = role.charAt(0).toUpperCase() + role.slice(1);
  const quote = userText.slice(0, 40).replace(/\s+/g, ' ');
  const head = ['## ', title, ' report', '\n\n', 'Brief: "', quote, '"', '\n\n'];
  const out = head.slice(0, Math.max(0, tokens));
  let i = 0;
  let item = 1;
  while (out.length < tokens) {
    if (i % 8 === 0) out.push(`${i === 0 ? '' : '\n'}- ${title} point ${item++}:`);
    else out.push(' ' + FILLER[(i + title.length) % FILLER.length]);
    i++;
  }
  return out;
}

/** Split an arbitrary text into word-ish tokens (whitespace kept with the following word). */
export function tokenize(text) {
  return text.match(/\s*\S+|\s+$/g) || [];
}

function errorBody(step) {
  if (step.body !== undefined) return typeof step.body === 'string' ? step.body : JSON.stringify(step.body);
  const s = step.status;
  let error;
  if (s === 401) {
    error = { message: 'Incorrect API key provided: test-key-****. You can find your API key at https://platform.openai.com/account/api-keys.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' };
  } else if (s === 429 && step.code === 'insufficient_quota') {
    error = { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' };
  } else if (s === 429) {
    error = { message: 'Rate limit reached for requests. Please try again in 1s.', type: 'requests', param: null, code: step.code || 'rate_limit_exceeded' };
  } else if (s === 400 && step.code === 'context_length_exceeded') {
    error = { message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens.", type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' };
  } else if (s >= 500) {
    error = { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: step.code || null };
  } else {
    error = { message: `Fake error ${s}`, type: 'invalid_request_error', param: null, code: step.code || null };
  }
  return JSON.stringify({ error });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start the double. Options: port (0 = random free), host, msPerToken (default 2),
 * tokens (default answer length, 60), requireKey (answer 401 unless the bearer matches).
 */
export async function startFakeOpenAI(options = {}) {
  const host = options.host || '127.0.0.1';
  let msPerToken = options.msPerToken ?? 2;
  const defaultTokenCount = options.tokens ?? 60;
  const requests = [];
  const scenarios = new Map(); // name -> {steps, next}
  const sockets = new Set();
  let nextId = 1;

  const api = {
    url: '',
    port: 0,
    requests,
    /** Optional hook: (entry, index, text, hrtimeNs) called right before each token is written. */
    onToken: null,
    /** Optional hook: (entry) called when a request has been parsed (before answering). */
    onRequest: null,
    setScenario(name, steps) {
      if (!Array.isArray(steps) || steps.length === 0) throw new Error('setScenario needs a non-empty steps array');
      scenarios.set(name, { steps: steps.map((s) => ({ ...s })), next: 0 });
    },
    clearScenarios() {
      scenarios.clear();
    },
    setPace(ms) {
      msPerToken = ms;
    },
    get msPerToken() {
      return msPerToken;
    },
    reset() {
      scenarios.clear();
      requests.length = 0;
    },
    /** Requests (chat completions) belonging to a scenario. */
    requestsFor(name) {
      return requests.filter((r) => r.scenario === name);
    },
    /** Resolve when `pred(requests)` holds (polling), or reject after timeoutMs. */
    async waitForRequests(pred, timeoutMs = 10000) {
      const t0 = Date.now();
      for (;;) {
        if (pred(requests)) return requests;
        if (Date.now() - t0 > timeoutMs) throw new Error(`fake-openai: condition not met within ${timeoutMs} ms; ${requests.length} requests seen`);
        await sleep(10);
      }
    },
    close: null,
  };

  function pickStep(name) {
    if (!name || !scenarios.has(name)) return { ok: true };
    const sc = scenarios.get(name);
    const i = Math.min(sc.next, sc.steps.length - 1);
    sc.next++;
    return { ...sc.steps[i], index: i };
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      try {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: String(err && err.stack || err), type: 'fake_internal' } }));
        } else res.destroy();
      } catch {
        /* ignore */
      }
    });
  });
  // Outlive workerd's pooled connections, so it never reuses one the fake just closed.
  server.keepAliveTimeout = 65000;
  server.on('connection', (s) => {
    s.setNoDelay(true);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function readBody(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }

  function json(res, status, value, headers = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(value));
  }

  async function handle(req, res) {
    const url = new URL(req.url, `http://${host}`);
    const path = url.pathname;

    // ---- control endpoints (standalone use) ----
    if (path.startsWith('/__scenario/') && req.method === 'POST') {
      const name = decodeURIComponent(path.slice('/__scenario/'.length));
      const raw = JSON.parse((await readBody(req)) || '[]');
      const steps = Array.isArray(raw) ? raw : raw.steps;
      try {
        api.setScenario(name, steps);
      } catch (e) {
        return json(res, 400, { error: { message: e.message } });
      }
      return json(res, 200, { scenario: name, steps });
    }
    if (path === '/__requests' && req.method === 'GET') return json(res, 200, requests.map(publicEntry));
    if (path === '/__reset' && req.method === 'POST') {
      api.reset();
      return json(res, 200, { ok: true });
    }
    if (path === '/__pace' && req.method === 'POST') {
      const body = JSON.parse((await readBody(req)) || '{}');
      if (typeof body.msPerToken === 'number') msPerToken = body.msPerToken;
      return json(res, 200, { msPerToken });
    }
    if (path === '/v1/models' && req.method === 'GET') {
      return json(res, 200, { object: 'list', data: [{ id: 'fake-model', object: 'model', created: 0, owned_by: 'fake' }] });
    }
    if (path !== '/v1/chat/completions') return json(res, 404, { error: { message: `fake-openai: no route ${req.method} ${path}`, type: 'invalid_request_error' } });
    if (req.method !== 'POST') return json(res, 405, { error: { message: 'use POST', type: 'invalid_request_error' } });

    // ---- chat completions ----
    const rawBody = await readBody(req);
    const entry = {
      id: nextId++,
      method: req.method,
      path,
      headers: { ...req.headers },
      body: null,
      rawBody,
      time: Date.now(),
      scenario: null,
      step: null,
      role: null,
      status: null,
      tokensSent: 0,
      text: '',
      usage: null, // the usage reported to the client (only with stream_options.include_usage)
      outcome: 'pending', // completed | error-status | cut | malformed | stalled | aborted
      aborted: false, // the client closed the connection before the answer was complete
      endedAt: null,
    };
    requests.push(entry);
    try {
      entry.body = JSON.parse(rawBody);
    } catch {
      entry.status = 400;
      entry.outcome = 'error-status';
      entry.endedAt = Date.now();
      return json(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null } });
    }
    const body = entry.body;
    entry.scenario = scenarioOf(body);
    entry.role = roleOf(body);
    const step = pickStep(entry.scenario);
    entry.step = step;
    if (typeof api.onRequest === 'function') api.onRequest(entry);

    if (options.requireKey && req.headers.authorization !== `Bearer ${options.requireKey}`) {
      Object.assign(step, { status: 401 });
    }

    let finished = false;
    res.on('close', () => {
      if (!finished && !res.writableFinished) {
        if (entry.outcome === 'pending' || entry.outcome === 'stalled') {
          entry.aborted = true;
          entry.outcome = 'aborted';
        }
        entry.endedAt = entry.endedAt || Date.now();
      }
    });
    const gone = () => res.destroyed || entry.aborted;

    if (step.headerDelayMs) await sleep(step.headerDelayMs);
    if (gone()) return;

    if (step.status && step.status !== 200) {
      entry.status = step.status;
      entry.outcome = 'error-status';
      const headers = { 'content-type': 'application/json' };
      if (step.retryAfter !== undefined) headers['retry-after'] = String(step.retryAfter);
      if (step.retryAfterMs !== undefined) headers['retry-after-ms'] = String(step.retryAfterMs);
      res.writeHead(step.status, headers);
      finished = true;
      res.end(errorBody(step));
      entry.endedAt = Date.now();
      return;
    }

    const userText = firstUserText(body);
    let tokens;
    if (typeof step.text === 'string') tokens = tokenize(step.text);
    else {
      let n = defaultTokenCount;
      if (typeof step.tokens === 'number') n = step.tokens;
      tokens = defaultTokens({ role: entry.role, userText, tokens: n });
    }
    const delay = typeof step.delayMs === 'number' ? step.delayMs : msPerToken;
    const model = typeof body.model === 'string' && body.model ? body.model : 'fake-model';
    const created = Math.floor(Date.now() / 1000);
    const cid = `chatcmpl-fake${entry.id}`;
    const chunk = (delta, finish = null) =>
      `data: ${JSON.stringify({ id: cid, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;

    if (body.stream !== true) {
      // Non-streamed answer, for completeness.
      const text = tokens.join('');
      entry.status = 200;
      entry.text = text;
      entry.tokensSent = tokens.length;
      entry.outcome = 'completed';
      finished = true;
      json(res, 200, {
        id: cid, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        usage: (entry.usage = usageFor(body, tokens.length)),
      });
      entry.endedAt = Date.now();
      return;
    }

    entry.status = 200;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    res.write(chunk({ role: 'assistant', content: '' }));

    if (step.reasoning) {
      // Reasoning first (`delta.reasoning_content`), `bytes` in pieces of `chunk`, honouring
      // backpressure so a client that stops reading does not make this process buffer it all.
      const piece = 'r'.repeat(Math.max(1, step.reasoning.chunk ?? 16 * 1024));
      entry.reasoningSent = 0;
      while (entry.reasoningSent < (step.reasoning.bytes ?? 0)) {
        if (gone()) return;
        if (!res.write(chunk({ reasoning_content: piece }))) await drained(res);
        entry.reasoningSent += piece.length;
        if (step.reasoning.delayMs) await sleep(step.reasoning.delayMs);
      }
    }

    if (Array.isArray(step.toolCalls)) {
      const text = typeof step.text === 'string' ? tokenize(step.text) : [];
      for (const t of text) {
        if (delay > 0) await sleep(delay);
        if (gone()) return;
        res.write(chunk({ content: t }));
        entry.tokensSent++;
        entry.text += t;
      }
      const size = Math.max(1, step.argChunk ?? 7);
      entry.toolCalls = [];
      for (const [index, call] of step.toolCalls.entries()) {
        const id = call.id ?? `call_fake${entry.id}_${index}`;
        const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {});
        entry.toolCalls.push({ id, name: call.name, arguments: args });
        res.write(chunk({ tool_calls: [{ index, id, type: 'function', function: { name: call.name, arguments: '' } }] }));
        // Pieces cut by code unit may split a surrogate pair: cut by code point, as a server's
        // tokens would never produce half a character (spread only when there is a pair: a
        // megabyte spread into an array blocks this process for a while).
        const chars = /[\uD800-\uDFFF]/.test(args) ? [...args] : args;
        for (let at = 0; at < chars.length; at += size) {
          if (delay > 0) await sleep(delay);
          if (gone()) return;
          const piece = typeof chars === 'string' ? chars.slice(at, at + size) : chars.slice(at, at + size).join('');
          // Yield between pieces (and wait while the client is not reading): this process may
          // also be the one measuring the Worker (tests/support/model-attacks.mjs).
          if (!res.write(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }))) await drained(res);
          else if (delay <= 0) await new Promise((r) => setImmediate(r));
          entry.tokensSent++;
        }
      }
      res.write(chunk({}, 'tool_calls'));
      if (body.stream_options && body.stream_options.include_usage) {
        entry.usage = usageFor(body, entry.tokensSent);
        res.write(`data: ${JSON.stringify({ id: cid, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices: [], usage: entry.usage })}\n\n`);
      }
      res.write('data: [DONE]\n\n');
      finished = true;
      entry.outcome = 'completed';
      entry.finishReason = 'tool_calls';
      res.end();
      entry.endedAt = Date.now();
      return;
    }

    let limit = tokens.length;
    let mode = 'complete';
    if (typeof step.cutAfter === 'number') { limit = Math.min(step.cutAfter, tokens.length); mode = 'cut'; }
    else if (step.malformed) { limit = Math.min(step.after ?? 2, tokens.length); mode = 'malformed'; }
    else if (typeof step.stallAfter === 'number') { limit = Math.min(step.stallAfter, tokens.length); mode = 'stall'; }
    else if (step.finish) { limit = Math.min(step.tokens ?? 3, tokens.length); mode = 'finish'; }

    for (let i = 0; i < limit; i++) {
      if (delay > 0) await sleep(delay);
      if (gone()) return;
      if (typeof api.onToken === 'function') api.onToken(entry, i, tokens[i], process.hrtime.bigint());
      res.write(chunk({ content: tokens[i] }));
      entry.tokensSent++;
      entry.text += tokens[i];
    }
    if (gone()) return;

    if (mode === 'cut') {
      entry.outcome = 'cut';
      entry.endedAt = Date.now();
      finished = true;
      // Give the written chunks a moment to leave, then cut the TCP connection.
      await sleep(5);
      res.socket?.destroy();
      res.destroy();
      return;
    }
    if (mode === 'malformed') {
      entry.outcome = 'malformed';
      finished = true;
      res.write('data: {not json\n\n');
      res.end();
      entry.endedAt = Date.now();
      return;
    }
    if (mode === 'stall') {
      entry.outcome = 'stalled';
      // Hang until the client goes away (the 'close' handler marks the abort) or the server closes.
      return;
    }
    const finishReason = mode === 'finish' ? step.finish : 'stop';
    res.write(chunk({}, finishReason));
    if (body.stream_options && body.stream_options.include_usage) {
      entry.usage = usageFor(body, entry.tokensSent);
      res.write(`data: ${JSON.stringify({ id: cid, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices: [], usage: entry.usage })}\n\n`);
    }
    res.write('data: [DONE]\n\n');
    finished = true;
    entry.outcome = 'completed';
    entry.finishReason = finishReason;
    res.end();
    entry.endedAt = Date.now();
  }

  function usageFor(body, completion) {
    const chars = (Array.isArray(body.messages) ? body.messages : []).reduce((n, m) => n + contentText(m.content).length, 0);
    const prompt = Math.max(1, Math.ceil(chars / 4));
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port || 0, host, () => resolve());
  });
  api.port = server.address().port;
  api.url = `http://${host}:${api.port}/v1`;
  api.close = () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return api;
}

function publicEntry(e) {
  const { rawBody, ...rest } = e;
  return rest;
}

// ---- standalone ----
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const fake = await startFakeOpenAI({
    port: Number(opt('--port') || 0),
    msPerToken: opt('--pace') !== undefined ? Number(opt('--pace')) : 2,
    tokens: opt('--tokens') !== undefined ? Number(opt('--tokens')) : 60,
  });
  console.log(`fake-openai listening on ${fake.url}`);
  const stop = async () => {
    await fake.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
