// An Anthropic Messages API test double (`POST /v1/messages`, streamed as Anthropic streams):
// a real HTTP server on 127.0.0.1. The twin of fake-openai.mjs: same library API, same scenario
// tags, same step language (Anthropic flavour), so a test can drive either provider the same way.
//
// Library use:
//   const fake = await startFakeAnthropic({ msPerToken: 2, apiKey: 'test-key-a' });
//   fake.url            // "http://127.0.0.1:PORT" (the client appends /v1/messages)
//   fake.setScenario('slow', [{ tokens: 40, delayMs: 20 }]);
//   fake.requests       // every request: headers (key redacted), body, scenario, step, outcome
//   fake.requestsFor('slow'); await fake.waitForRequests((reqs) => …);
//   await fake.close();
//
// Standalone (manual runs, benchmarks):
//   node tests/support/fake-anthropic.mjs [--port N] [--pace MS_PER_TOKEN] [--tokens N] [--key K]
//   prints "fake-anthropic listening on http://127.0.0.1:N"
//   POST /__scenario/NAME  body: [step, …] or {steps: [step, …]}   (script a scenario)
//   GET  /__requests                                               (the request log)
//   POST /__reset                                                  (forget scenarios and log)
//   POST /__pace  body: {msPerToken}                              (default stream pace)
//
// Routes: POST /v1/messages (also /v1/v1/messages, for a client that appends /v1/messages to a
// base ending in /v1), GET /v1/models. Requests are checked like Anthropic checks them, before
// any step is taken (so these answers do not consume a scenario step):
//   - x-api-key missing → 401 authentication_error "x-api-key header is required"; with the
//     `apiKey` option (alias `requireKey`), a different key → 401 "invalid x-api-key";
//   - anthropic-version missing or unknown → 400 invalid_request_error;
//   - a body that is not JSON, or (unless `validate: false`) without `model`, without a positive
//     integer `max_tokens`, without `messages`, with a role other than user/assistant, or with
//     thinking enabled and `budget_tokens` < 1024 or >= `max_tokens` → 400 invalid_request_error.
// The log never holds the key: `headers['x-api-key']` (and `authorization`) read "[redacted]";
// `keyOk` says whether it matched (null when no `apiKey` was given). If the key shows up in the
// body it is scrubbed from the log too, and `keyInBody` is true.
//
// Scenario selection: a request belongs to scenario NAME when its system prompt or any of its
// messages (any text, tool_result included) contains "[[scenario:NAME]]". Each request of that
// scenario consumes the next step; the last step repeats. Requests without a tag (or with an
// unscripted tag) get the default answer.
//
// The answer (stream: true) is message_start, content blocks (content_block_start, a ping after
// the first one, content_block_delta pieces, content_block_stop), message_delta {stop_reason,
// usage.output_tokens}, message_stop. Usage: input_tokens = ceil(chars / 4) of the system and
// messages text, output_tokens = the pieces streamed (thinking, text and tool-input pieces);
// message_start reports output_tokens 1. A request without stream: true gets the whole message
// as JSON. The text is fake-openai's default answer (same role, brief and length), so both
// doubles say the same thing.
//
// Steps ("pieces" below count every streamed delta, thinking, text and tool input alike, in
// order; a fault "after K" happens before piece K+1 is written, or, when K is at least the
// number of pieces, after the last block, before message_delta):
//   {ok: true}                                  default answer (also: {} or {tokens, delayMs})
//   {tokens: N, delayMs: D}                     default answer cut to/padded to N tokens, D ms apart
//   {text: '…'}                                 (combinable) stream this exact text instead
//   {thinking: '…'}                             (combinable) a thinking block with this text first
//                                               (thinking_delta pieces, then a signature_delta).
//                                               A request with thinking enabled and no `thinking`
//                                               in its step gets a short default thinking block;
//                                               {thinking: false} leaves it out.
//   {signature: '…'}                            (combinable) the thinking block's signature
//   {usage: {input, output, cacheRead?, cacheCreation?}}
//                                               (combinable) report exactly these counts
//                                               (cache_read_input_tokens / cache_creation_input_tokens
//                                               in message_start only when given)
//   {status: 429, retryAfter?: S, retryAfterMs?, type?, message?, body?, code?}
//                                               an HTTP error with Anthropic's error body
//                                               {"type":"error","error":{type,message},"request_id"}:
//                                               400 invalid_request_error, 401 authentication_error,
//                                               402 billing_error, 403 permission_error,
//                                               404 not_found_error ("model: <the model>"),
//                                               413 request_too_large, 429 rate_limit_error,
//                                               500 api_error, 504 timeout_error, 529 overloaded_error;
//                                               `type`/`message` override, `body` replaces it all;
//                                               `code` (as fake-openai) 'context_length_exceeded' →
//                                               400 "prompt is too long…", 'insufficient_quota' →
//                                               400 "Your credit balance is too low…"
//   {streamError: 'overloaded_error', after?: K, message?}
//                                               K (default 2) pieces, then `event: error`
//                                               {"type":"error","error":{type,message}} and the end
//   {cutAfter: K}                               K pieces, then the socket is destroyed mid-stream
//   {malformed: true, after?: K}                K (default 2) pieces, then "data: {not json", end
//   {stallAfter: K}                             K pieces, then silence until the client aborts
//   {stopReason: 'max_tokens', tokens?: K}      K (default 3) tokens, then that stop_reason
//                                               ({finish: 'length'|'content_filter'|'stop'} as in
//                                               fake-openai means max_tokens|refusal|end_turn).
//                                               Without a step saying so, an answer longer than
//                                               the request's max_tokens stops there, max_tokens.
//   {headerDelayMs: D}                          (combinable) wait D ms before the response head
//   {toolCalls: [{name, arguments, id?}], argChunk?: N}
//                                               tool use: a text block first if `text` is given,
//                                               then one tool_use block per call (id "toolu_…",
//                                               input {}), its input JSON (`arguments`, a string
//                                               or an object) streamed as input_json_delta pieces
//                                               of N code points (default 7), stop_reason
//                                               "tool_use". The next request of the scenario (with
//                                               the tool_result blocks) takes the next step; its
//                                               log entry lists them in `toolResults`.
//
// Log entry: {id, requestId, method, path, headers, keyOk, keyInBody, body, rawBody, time,
// scenario, step, role, status, error, tokensSent, text, thinking, toolCalls, toolResults, usage,
// stopReason, outcome, aborted, firstByteAt, endedAt}; outcome is pending | completed |
// error-status | rejected (auth or validation, no step taken) | stream-error | cut | malformed |
// stalled | aborted. `usage` is what the client was told; `tokensSent` counts pieces written.
// GET /__requests serves the log without rawBody.

import http from 'node:http';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { STAGES } from './stages.mjs';
import { defaultTokens, tokenize } from './fake-openai.mjs';

export { defaultTokens, tokenize };
export const ROLES = STAGES;
export const API_VERSIONS = ['2023-06-01', '2023-01-01'];
const SCENARIO_RE = /\[\[scenario:([A-Za-z0-9_.\-]+)\]\]/;
const REDACTED = '[redacted]';

/** The text of a Messages content (a string, or an array of blocks: text, thinking, tool_use, tool_result). */
export function contentText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((b) => {
      if (typeof b === 'string') return b;
      if (!b || typeof b !== 'object') return '';
      if (typeof b.text === 'string') return b.text;
      if (b.type === 'thinking' && typeof b.thinking === 'string') return b.thinking;
      if (b.type === 'tool_use') return JSON.stringify(b.input ?? {});
      if (b.type === 'tool_result') return contentText(b.content);
      return '';
    })
    .join('');
}

/** The system prompt's text (`system` is a string or an array of text blocks). */
export function systemText(body) {
  return body ? contentText(body.system) : '';
}

function messagesOf(body) {
  return body && Array.isArray(body.messages) ? body.messages : [];
}

/** The scenario tag found in the system prompt or any message, or null. */
export function scenarioOf(body) {
  for (const text of [systemText(body), ...messagesOf(body).map((m) => contentText(m && m.content))]) {
    const hit = SCENARIO_RE.exec(text);
    if (hit) return hit[1];
  }
  return null;
}

/** The agent role named by the system prompt (earliest role word in it), or 'assistant'. */
export function roleOf(body) {
  const sys = systemText(body).toLowerCase();
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
  const m = messagesOf(body).find((x) => x && x.role === 'user');
  return m ? contentText(m.content) : '';
}

/** The tool_result blocks of the request's messages, in order: [{tool_use_id, content, is_error}]. */
export function toolResultsOf(body) {
  const out = [];
  for (const m of messagesOf(body)) {
    if (!m || !Array.isArray(m.content)) continue;
    for (const b of m.content) {
      if (b && b.type === 'tool_result') out.push({ tool_use_id: b.tool_use_id, content: contentText(b.content), is_error: b.is_error === true });
    }
  }
  return out;
}

/** input_tokens as the double counts them: ceil(chars / 4) of the system and messages text, at least 1. */
export function inputTokensOf(body) {
  const chars = systemText(body).length + messagesOf(body).reduce((n, m) => n + contentText(m && m.content).length, 0);
  return Math.max(1, Math.ceil(chars / 4));
}

/** The default thinking text for a role (a request with thinking on, a step without `thinking`). */
export function defaultThinking(role = 'assistant') {
  return `The ${role} report needs the brief's scope, the risks and the checks. I will list them in order.`;
}

const ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

const ERROR_MESSAGES = {
  invalid_request_error: 'Invalid request',
  authentication_error: 'invalid x-api-key',
  billing_error: 'Your credit balance is too low to access the Anthropic API.',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error: 'Number of request tokens has exceeded your per-minute rate limit. Please try again later.',
  api_error: 'Internal server error',
  timeout_error: 'Request timed out',
  overloaded_error: 'Overloaded',
};

/** Anthropic's error type for an HTTP status. */
export function errorTypeFor(status) {
  return ERROR_TYPES[status] || (status >= 500 ? 'api_error' : 'invalid_request_error');
}

/** An Anthropic error body: {"type":"error","error":{"type","message"},"request_id"}. */
export function anthropicError(type, message, requestId) {
  const out = { type: 'error', error: { type, message: message ?? ERROR_MESSAGES[type] ?? type } };
  if (requestId) out.request_id = requestId;
  return out;
}

function errorBodyFor(step, body, requestId) {
  if (step.body !== undefined) return typeof step.body === 'string' ? step.body : JSON.stringify(step.body);
  let type = step.type || errorTypeFor(step.status);
  let message = step.message;
  if (message === undefined) {
    if (step.code === 'context_length_exceeded') {
      type = step.type || 'invalid_request_error';
      message = 'prompt is too long: 210000 tokens > 200000 maximum';
    } else if (step.code === 'insufficient_quota') {
      type = step.type || 'invalid_request_error';
      message = 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.';
    } else if (type === 'not_found_error') {
      message = `model: ${body && typeof body.model === 'string' ? body.model : 'unknown'}`;
    }
  }
  return JSON.stringify(anthropicError(type, message, requestId));
}

const FINISH_TO_STOP = { stop: 'end_turn', length: 'max_tokens', content_filter: 'refusal', tool_calls: 'tool_use' };

/** Why Anthropic would refuse this body, or null. */
export function invalidReason(body) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 'body: expected an object';
  if (typeof body.model !== 'string' || !body.model) return 'model: Field required';
  if (body.max_tokens === undefined) return 'max_tokens: Field required';
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return 'max_tokens: Input should be a valid positive integer';
  if (!Array.isArray(body.messages)) return 'messages: Field required';
  for (const [i, m] of body.messages.entries()) {
    if (!m || (m.role !== 'user' && m.role !== 'assistant')) return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (typeof m.content !== 'string' && !Array.isArray(m.content)) return `messages.${i}.content: Field required`;
  }
  const t = body.thinking;
  if (t && t.type === 'enabled') {
    if (!Number.isInteger(t.budget_tokens) || t.budget_tokens < 1024) return 'thinking.enabled.budget_tokens: Input should be greater than or equal to 1024';
    if (t.budget_tokens >= body.max_tokens) return '`max_tokens` must be greater than `thinking.budget_tokens`.';
  }
  return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start the double. Options: port (0 = random free), host, msPerToken (default 2), tokens
 * (default answer length, 60), apiKey (alias requireKey: answer 401 unless x-api-key matches),
 * validate (default true: refuse bodies Anthropic would refuse).
 */
export async function startFakeAnthropic(options = {}) {
  const host = options.host || '127.0.0.1';
  let msPerToken = options.msPerToken ?? 2;
  const defaultTokenCount = options.tokens ?? 60;
  const apiKey = options.apiKey ?? options.requireKey ?? null;
  const validate = options.validate !== false;
  const requests = [];
  const scenarios = new Map(); // name -> {steps, next}
  const sockets = new Set();
  let nextId = 1;
  const runId = crypto.randomBytes(3).toString('hex');

  const api = {
    url: '',
    port: 0,
    requests,
    /** Optional hook: (entry, index, text, hrtimeNs, kind) before each piece ('thinking'|'text'|'tool_use'). */
    onToken: null,
    /** Optional hook: (entry) called when a request has been parsed and checked (before answering). */
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
    /** Requests (to /v1/messages) belonging to a scenario. */
    requestsFor(name) {
      return requests.filter((r) => r.scenario === name);
    },
    /** Resolve when `pred(requests)` holds (polling), or reject after timeoutMs. */
    async waitForRequests(pred, timeoutMs = 10000) {
      const t0 = Date.now();
      for (;;) {
        if (pred(requests)) return requests;
        if (Date.now() - t0 > timeoutMs) throw new Error(`fake-anthropic: condition not met within ${timeoutMs} ms; ${requests.length} requests seen`);
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
          res.end(JSON.stringify(anthropicError('api_error', `fake-anthropic internal: ${String((err && err.stack) || err)}`)));
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

  function redactHeaders(headers) {
    const out = { ...headers };
    for (const name of ['x-api-key', 'authorization']) if (out[name] !== undefined) out[name] = REDACTED;
    return out;
  }

  async function handle(req, res) {
    const url = new URL(req.url, `http://${host}`);
    const path = url.pathname.replace(/\/+$/, '') || '/';

    // ---- control endpoints (standalone use) ----
    if (path.startsWith('/__scenario/') && req.method === 'POST') {
      const name = decodeURIComponent(path.slice('/__scenario/'.length));
      let steps;
      try {
        const raw = JSON.parse((await readBody(req)) || '[]');
        steps = Array.isArray(raw) ? raw : raw && raw.steps;
        api.setScenario(name, steps);
      } catch (e) {
        return json(res, 400, anthropicError('invalid_request_error', e.message));
      }
      return json(res, 200, { scenario: name, steps });
    }
    if (path === '/__requests' && req.method === 'GET') return json(res, 200, requests.map(publicEntry));
    if (path === '/__reset' && req.method === 'POST') {
      api.reset();
      return json(res, 200, { ok: true });
    }
    if (path === '/__pace' && req.method === 'POST') {
      try {
        const body = JSON.parse((await readBody(req)) || '{}');
        if (typeof body.msPerToken === 'number') msPerToken = body.msPerToken;
      } catch (e) {
        return json(res, 400, anthropicError('invalid_request_error', e.message));
      }
      return json(res, 200, { msPerToken });
    }
    if ((path === '/v1/models' || path === '/v1/v1/models') && req.method === 'GET') {
      return json(res, 200, {
        data: [{ type: 'model', id: 'claude-fake', display_name: 'Claude Fake', created_at: '2025-01-01T00:00:00Z' }],
        has_more: false,
        first_id: 'claude-fake',
        last_id: 'claude-fake',
      });
    }
    if (path !== '/v1/messages' && path !== '/v1/v1/messages') {
      return json(res, 404, anthropicError('not_found_error', `fake-anthropic: no route ${req.method} ${url.pathname}`));
    }
    if (req.method !== 'POST') return json(res, 405, anthropicError('invalid_request_error', `Method ${req.method} not allowed; use POST`));

    // ---- messages ----
    let rawBody = await readBody(req);
    const key = req.headers['x-api-key'];
    const requestId = `req_fake${runId}${String(nextId).padStart(4, '0')}`;
    const entry = {
      id: nextId++,
      requestId,
      method: req.method,
      path: url.pathname,
      headers: redactHeaders(req.headers),
      keyOk: apiKey === null ? null : key === apiKey,
      keyInBody: false,
      body: null,
      rawBody: '',
      time: Date.now(),
      scenario: null,
      step: null,
      role: null,
      status: null,
      error: null, // the error body's {type, message} for a refused request or an error step
      tokensSent: 0,
      text: '',
      thinking: '',
      toolCalls: [],
      toolResults: [],
      usage: null, // the usage reported to the client (message_start, then output from message_delta)
      stopReason: null,
      outcome: 'pending',
      aborted: false, // the client closed the connection before the answer was complete
      firstByteAt: null,
      endedAt: null,
    };
    for (const secret of [key, apiKey]) {
      if (typeof secret === 'string' && secret.length >= 4 && rawBody.includes(secret)) {
        entry.keyInBody = true;
        rawBody = rawBody.split(secret).join(REDACTED);
      }
    }
    entry.rawBody = rawBody;
    requests.push(entry);

    const refuse = (status, type, message) => {
      entry.status = status;
      entry.outcome = 'rejected';
      entry.error = { type, message };
      entry.firstByteAt = Date.now();
      json(res, status, anthropicError(type, message, requestId), { 'request-id': requestId });
      entry.endedAt = Date.now();
    };

    let parsed = null;
    let parseError = null;
    try {
      parsed = JSON.parse(rawBody);
    } catch (e) {
      parseError = e;
    }
    if (parsed !== null) {
      entry.body = parsed;
      entry.scenario = scenarioOf(parsed);
      entry.role = roleOf(parsed);
      entry.toolResults = toolResultsOf(parsed);
    }

    if (typeof key !== 'string' || key === '') return refuse(401, 'authentication_error', 'x-api-key header is required');
    if (apiKey !== null && key !== apiKey) return refuse(401, 'authentication_error', 'invalid x-api-key');
    const version = req.headers['anthropic-version'];
    if (!version) return refuse(400, 'invalid_request_error', 'anthropic-version: header is required');
    if (!API_VERSIONS.includes(version)) return refuse(400, 'invalid_request_error', `anthropic-version: invalid value ${JSON.stringify(version)}`);
    if (parseError) return refuse(400, 'invalid_request_error', `There was an issue with your request body: ${parseError.message}`);
    if (validate) {
      const why = invalidReason(parsed);
      if (why) return refuse(400, 'invalid_request_error', why);
    }

    const body = parsed;
    const step = pickStep(entry.scenario);
    entry.step = step;
    if (typeof api.onRequest === 'function') api.onRequest(entry);

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
      const headers = { 'content-type': 'application/json', 'request-id': requestId };
      if (step.retryAfter !== undefined) headers['retry-after'] = String(step.retryAfter);
      if (step.retryAfterMs !== undefined) headers['retry-after-ms'] = String(step.retryAfterMs);
      const text = errorBodyFor(step, body, requestId);
      try {
        entry.error = JSON.parse(text).error ?? null;
      } catch {
        entry.error = null;
      }
      res.writeHead(step.status, headers);
      entry.firstByteAt = Date.now();
      finished = true;
      res.end(text);
      entry.endedAt = Date.now();
      return;
    }

    // ---- plan the answer: blocks of pieces ----
    const blocks = [];
    let thinkingText = null;
    if (typeof step.thinking === 'string') thinkingText = step.thinking;
    else if (step.thinking === undefined && body.thinking && body.thinking.type === 'enabled') thinkingText = defaultThinking(entry.role);
    if (thinkingText !== null) {
      blocks.push({ type: 'thinking', pieces: tokenize(thinkingText), signature: typeof step.signature === 'string' ? step.signature : `EqFakeSig${runId}${entry.id}` });
    }
    const isTools = Array.isArray(step.toolCalls);
    const explicitStop = isTools ? undefined : step.stopReason ?? (step.finish !== undefined ? FINISH_TO_STOP[step.finish] ?? step.finish : undefined);
    let stopReason = isTools ? 'tool_use' : explicitStop ?? 'end_turn';
    let textTokens;
    if (typeof step.text === 'string') textTokens = tokenize(step.text);
    else if (isTools) textTokens = [];
    else {
      const n = typeof step.tokens === 'number' ? step.tokens : explicitStop !== undefined ? 3 : defaultTokenCount;
      textTokens = defaultTokens({ role: entry.role, userText: firstUserText(body), tokens: n });
    }
    if (!isTools && explicitStop === undefined) {
      // The answer stops at the request's max_tokens, as Anthropic's does.
      const thinkingPieces = blocks.length ? blocks[0].pieces.length : 0;
      const room = body.max_tokens - thinkingPieces;
      if (Number.isInteger(body.max_tokens) && room < textTokens.length) {
        if (room < 0) blocks[0].pieces = blocks[0].pieces.slice(0, body.max_tokens);
        textTokens = textTokens.slice(0, Math.max(0, room));
        stopReason = 'max_tokens';
      }
    }
    if (textTokens.length || (!isTools && blocks.length === 0)) blocks.push({ type: 'text', pieces: textTokens });
    if (isTools) {
      const size = Math.max(1, step.argChunk ?? 7);
      for (const [i, call] of step.toolCalls.entries()) {
        const id = call.id ?? `toolu_fake${runId}${entry.id}x${i}`;
        const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {});
        // Cut by code point: a server's pieces never hold half a character.
        const chars = [...args];
        const pieces = [];
        for (let at = 0; at < chars.length; at += size) pieces.push(chars.slice(at, at + size).join(''));
        blocks.push({ type: 'tool_use', id, name: call.name, args, pieces });
      }
    }

    let limit = Infinity;
    let mode = 'complete';
    if (typeof step.cutAfter === 'number') { limit = step.cutAfter; mode = 'cut'; }
    else if (step.malformed) { limit = step.after ?? 2; mode = 'malformed'; }
    else if (typeof step.stallAfter === 'number') { limit = step.stallAfter; mode = 'stall'; }
    else if (step.streamError) { limit = step.after ?? 2; mode = 'stream-error'; }

    const u = step.usage || null;
    const inputTokens = u && typeof u.input === 'number' ? u.input : inputTokensOf(body);
    const startUsage = { input_tokens: inputTokens };
    if (u && typeof u.cacheCreation === 'number') startUsage.cache_creation_input_tokens = u.cacheCreation;
    if (u && typeof u.cacheRead === 'number') startUsage.cache_read_input_tokens = u.cacheRead;
    startUsage.output_tokens = 1;
    entry.usage = { ...startUsage };
    const model = body.model;
    const msgId = `msg_fake${runId}${String(entry.id).padStart(4, '0')}`;
    const delay = typeof step.delayMs === 'number' ? step.delayMs : msPerToken;

    if (body.stream !== true) {
      // Non-streamed: the whole message (faults other than the HTTP ones do not apply).
      const content = blocks.map((b) => {
        if (b.type === 'thinking') return { type: 'thinking', thinking: b.pieces.join(''), signature: b.signature };
        if (b.type === 'text') return { type: 'text', text: b.pieces.join('') };
        let input;
        try {
          input = JSON.parse(b.args);
        } catch {
          input = {};
        }
        return { type: 'tool_use', id: b.id, name: b.name, input };
      });
      const pieces = blocks.reduce((n, b) => n + b.pieces.length, 0);
      recordPlan(entry, blocks);
      entry.tokensSent = pieces;
      entry.usage.output_tokens = u && typeof u.output === 'number' ? u.output : pieces;
      entry.stopReason = stopReason;
      entry.status = 200;
      entry.outcome = 'completed';
      entry.firstByteAt = Date.now();
      finished = true;
      json(res, 200, { id: msgId, type: 'message', role: 'assistant', model, content, stop_reason: stopReason, stop_sequence: null, usage: entry.usage }, { 'request-id': requestId });
      entry.endedAt = Date.now();
      return;
    }

    const send = (name, data) => res.write(`event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`);

    entry.status = 200;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'request-id': requestId });
    res.flushHeaders();
    entry.firstByteAt = Date.now();
    send('message_start', { message: { id: msgId, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: startUsage } });

    // Returns true when the stream must stop here (the fault was played, or the client left).
    const fault = async () => {
      if (mode === 'cut') {
        entry.outcome = 'cut';
        entry.endedAt = Date.now();
        finished = true;
        // Give the written events a moment to leave, then cut the TCP connection.
        await sleep(5);
        res.socket?.destroy();
        res.destroy();
        return;
      }
      if (mode === 'malformed') {
        entry.outcome = 'malformed';
        finished = true;
        res.write('event: content_block_delta\ndata: {not json\n\n');
        res.end();
        entry.endedAt = Date.now();
        return;
      }
      if (mode === 'stall') {
        entry.outcome = 'stalled';
        // Hang until the client goes away (the 'close' handler marks the abort) or the server closes.
        return;
      }
      // stream-error
      entry.outcome = 'stream-error';
      const type = typeof step.streamError === 'string' ? step.streamError : 'overloaded_error';
      entry.error = { type, message: step.message ?? ERROR_MESSAGES[type] ?? type };
      finished = true;
      res.write(`event: error\ndata: ${JSON.stringify({ type: 'error', error: entry.error })}\n\n`);
      res.end();
      entry.endedAt = Date.now();
    };

    let piece = 0;
    let pinged = false;
    for (const [index, b] of blocks.entries()) {
      if (b.type === 'thinking') send('content_block_start', { index, content_block: { type: 'thinking', thinking: '' } });
      else if (b.type === 'text') send('content_block_start', { index, content_block: { type: 'text', text: '' } });
      else {
        send('content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } });
        entry.toolCalls.push({ id: b.id, name: b.name, arguments: '' });
      }
      if (!pinged) {
        send('ping', {});
        pinged = true;
      }
      if (b.type === 'tool_use') send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } });
      for (const p of b.pieces) {
        if (piece >= limit) return fault();
        if (delay > 0) await sleep(delay);
        if (gone()) return;
        if (typeof api.onToken === 'function') api.onToken(entry, piece, p, process.hrtime.bigint(), b.type);
        if (b.type === 'thinking') {
          send('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: p } });
          entry.thinking += p;
        } else if (b.type === 'text') {
          send('content_block_delta', { index, delta: { type: 'text_delta', text: p } });
          entry.text += p;
        } else {
          send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: p } });
          entry.toolCalls.at(-1).arguments += p;
        }
        piece++;
        entry.tokensSent = piece;
      }
      if (b.type === 'thinking') send('content_block_delta', { index, delta: { type: 'signature_delta', signature: b.signature } });
      send('content_block_stop', { index });
    }
    if (limit !== Infinity) return fault();
    if (gone()) return;

    const output = u && typeof u.output === 'number' ? u.output : piece;
    entry.usage.output_tokens = output;
    entry.stopReason = stopReason;
    send('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: output } });
    send('message_stop', {});
    finished = true;
    entry.outcome = 'completed';
    res.end();
    entry.endedAt = Date.now();
  }

  function recordPlan(entry, blocks) {
    for (const b of blocks) {
      if (b.type === 'thinking') entry.thinking += b.pieces.join('');
      else if (b.type === 'text') entry.text += b.pieces.join('');
      else entry.toolCalls.push({ id: b.id, name: b.name, arguments: b.args });
    }
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port || 0, host, () => resolve());
  });
  api.port = server.address().port;
  api.url = `http://${host}:${api.port}`;
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
  const fake = await startFakeAnthropic({
    port: Number(opt('--port') || 0),
    msPerToken: opt('--pace') !== undefined ? Number(opt('--pace')) : 2,
    tokens: opt('--tokens') !== undefined ? Number(opt('--tokens')) : 60,
    apiKey: opt('--key'),
  });
  console.log(`fake-anthropic listening on ${fake.url}`);
  const stop = async () => {
    await fake.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
