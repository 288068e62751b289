// Self-test of the Anthropic Messages API double: read it directly with fetch, parse its SSE
// with a parser written here (not the double's), and check every step kind. Needs no Worker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { startFakeAnthropic, defaultTokens, scenarioOf, roleOf, inputTokensOf } from '../support/fake-anthropic.mjs';

const KEY = 'sk-ant-test-key-self-0123456789';
let fake;
before(async () => {
  fake = await startFakeAnthropic({ msPerToken: 0, apiKey: KEY });
});
after(async () => {
  await fake?.close();
});

const SYSTEM = 'You are the Architect agent of BotArmy. You receive the analyst requirements.';
function msgBody(brief, extra = {}) {
  return {
    model: 'claude-test',
    max_tokens: 1024,
    system: SYSTEM,
    stream: true,
    messages: [{ role: 'user', content: brief }],
    ...extra,
  };
}

const HEADERS = { 'content-type': 'application/json', 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };
async function post(body, { signal, headers = {}, base = fake.url, suffix = '/v1/messages' } = {}) {
  return fetch(`${base}${suffix}`, {
    method: 'POST',
    headers: { ...HEADERS, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
}

/** SSE blocks → [{event, data}], per the EventSource rules this test needs (event + data lines). */
function sse(text) {
  const out = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
      else assert.fail(`unexpected SSE line ${JSON.stringify(line)}`);
    }
    out.push({ event, data: data.join('\n') });
  }
  return out;
}

/** Read a streamed answer: events (parsed), the text, thinking, tool inputs by block, usage, stop. */
function decode(raw) {
  const events = [];
  const malformed = [];
  for (const e of sse(raw)) {
    try {
      const json = JSON.parse(e.data);
      assert.equal(json.type, e.event, 'the payload type repeats the event name');
      events.push(json);
    } catch (err) {
      if (err instanceof SyntaxError) malformed.push(e.data);
      else throw err;
    }
  }
  const blocks = [];
  let text = '';
  let thinking = '';
  for (const e of events) {
    if (e.type === 'content_block_start') blocks[e.index] = { ...e.content_block, json: '', signature: '' };
    if (e.type === 'content_block_delta') {
      const b = blocks[e.index];
      assert.ok(b, `delta for block ${e.index} before its start`);
      const d = e.delta;
      if (d.type === 'text_delta') { b.text += d.text; text += d.text; }
      else if (d.type === 'thinking_delta') { b.thinking += d.thinking; thinking += d.thinking; }
      else if (d.type === 'input_json_delta') b.json += d.partial_json;
      else if (d.type === 'signature_delta') b.signature += d.signature;
      else assert.fail(`unknown delta ${d.type}`);
    }
  }
  const start = events.find((e) => e.type === 'message_start');
  const delta = events.find((e) => e.type === 'message_delta');
  return {
    raw,
    events,
    types: events.map((e) => e.type),
    malformed,
    blocks,
    text,
    thinking,
    start,
    stopReason: delta?.delta.stop_reason ?? null,
    outputTokens: delta?.usage.output_tokens ?? null,
    done: events.at(-1)?.type === 'message_stop',
    deltas: events.filter((e) => e.type === 'content_block_delta' && e.delta.type !== 'signature_delta' && !(e.delta.type === 'input_json_delta' && e.delta.partial_json === '')).length,
  };
}

const readStream = async (res) => decode(await res.text());

/** Read until the body fails or ends: {text, failed}. */
async function readRaw(res) {
  const reader = res.body.getReader();
  let text = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { text, failed: null };
      text += Buffer.from(value).toString('utf8');
    }
  } catch (e) {
    return { text, failed: e };
  }
}

let n = 0;
const tag = (name) => `${name}-${++n}`;

test('default stream: Anthropic event order and shapes, role-dependent text with the brief, usage', async () => {
  const brief = 'Build a todo app with offline sync and sharing for families';
  const res = await post(msgBody(brief));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  assert.match(res.headers.get('request-id'), /^req_/);
  const s = await readStream(res);
  assert.deepEqual(s.malformed, []);
  // message_start, content_block_start, ping, deltas…, content_block_stop, message_delta, message_stop
  const k = s.types.length;
  assert.deepEqual(s.types.slice(0, 3), ['message_start', 'content_block_start', 'ping']);
  assert.deepEqual(s.types.slice(3, k - 3), Array(k - 6).fill('content_block_delta'));
  assert.deepEqual(s.types.slice(k - 3), ['content_block_stop', 'message_delta', 'message_stop']);
  assert.ok(s.raw.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n'));
  const m = s.start.message;
  assert.match(m.id, /^msg_/);
  assert.deepEqual({ ...m, id: 'x' }, {
    id: 'x', type: 'message', role: 'assistant', model: 'claude-test', content: [], stop_reason: null, stop_sequence: null,
    usage: { input_tokens: Math.ceil((SYSTEM.length + brief.length) / 4), output_tokens: 1 },
  });
  assert.deepEqual(s.events[1], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  assert.deepEqual(s.events[2], { type: 'ping' });
  for (const e of s.events.slice(3, k - 3)) {
    assert.deepEqual(Object.keys(e).sort(), ['delta', 'index', 'type']);
    assert.equal(e.index, 0);
    assert.deepEqual(Object.keys(e.delta).sort(), ['text', 'type']);
    assert.equal(e.delta.type, 'text_delta');
  }
  assert.deepEqual(s.events[k - 3], { type: 'content_block_stop', index: 0 });
  assert.deepEqual(s.events[k - 2], { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 60 } });
  assert.equal(s.deltas, 60, 'output_tokens = the tokens streamed');
  assert.equal(s.text, defaultTokens({ role: 'architect', userText: brief, tokens: 60 }).join(''), 'the same text as fake-openai');
  assert.ok(s.text.startsWith('## Architect report') && s.text.includes(brief.slice(0, 40)));
  // deterministic; the role follows the system prompt (string or text blocks)
  assert.equal((await readStream(await post(msgBody(brief)))).text, s.text);
  const other = await readStream(await post(msgBody(brief, { system: [{ type: 'text', text: 'You are the Tester.' }] })));
  assert.ok(other.text.startsWith('## Tester report'));
  // logged, with the key redacted
  const entry = fake.requests.at(-1);
  assert.equal(entry.role, 'tester');
  assert.equal(entry.headers['x-api-key'], '[redacted]');
  assert.equal(entry.headers['anthropic-version'], '2023-06-01');
  assert.equal(entry.keyOk, true);
  assert.equal(entry.body.model, 'claude-test');
  assert.equal(entry.outcome, 'completed');
  assert.equal(entry.aborted, false);
  assert.equal(entry.stopReason, 'end_turn');
  assert.equal(entry.text, other.text);
  assert.equal(entry.tokensSent, 60);
  assert.deepEqual(entry.usage, { input_tokens: other.start.message.usage.input_tokens, output_tokens: 60 });
  assert.ok(entry.time <= entry.firstByteAt && entry.firstByteAt <= entry.endedAt);
});

test('base URL: fake.url has no /v1; /v1/messages and a doubled /v1/v1/messages both answer', async () => {
  assert.match(fake.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const a = await readStream(await post(msgBody('one'), { base: `${fake.url}/v1`, suffix: '/messages' }));
  const b = await readStream(await post(msgBody('one'), { base: `${fake.url}/v1`, suffix: '/v1/messages' }));
  assert.ok(a.done && b.done);
  assert.equal(a.text, b.text);
  const r = await fetch(`${fake.url}/v1/nope`, { headers: HEADERS });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.type, 'not_found_error');
  const models = await (await fetch(`${fake.url}/v1/models`, { headers: HEADERS })).json();
  assert.equal(models.data[0].type, 'model');
});

test('input tokens count system + messages text, string or blocks; exact usage with cache reads', async () => {
  const body = msgBody('x', {
    system: [{ type: 'text', text: 'abcd' }],
    messages: [
      { role: 'user', content: [{ type: 'text', text: '12345678' }] },
      { role: 'assistant', content: 'ab' },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'xyz' }] }] },
    ],
  });
  assert.equal(inputTokensOf(body), Math.ceil((4 + 8 + 2 + 3) / 4));
  let s = await readStream(await post(body));
  assert.equal(s.start.message.usage.input_tokens, 5);

  const t = tag('usage');
  fake.setScenario(t, [{ text: 'Exactly priced.', usage: { input: 1200, output: 345, cacheRead: 800 } }]);
  s = await readStream(await post(msgBody(`u [[scenario:${t}]]`)));
  assert.deepEqual(s.start.message.usage, { input_tokens: 1200, cache_read_input_tokens: 800, output_tokens: 1 });
  assert.equal(s.outputTokens, 345);
  assert.equal(s.text, 'Exactly priced.');
  assert.deepEqual(fake.requestsFor(t)[0].usage, { input_tokens: 1200, cache_read_input_tokens: 800, output_tokens: 345 });
});

test('thinking + text: a thinking block in pieces with a signature_delta last, then the text', async () => {
  const t = tag('think');
  fake.setScenario(t, [{ thinking: 'The user wants a plan with clear steps.', text: 'Here is the plan.' }]);
  const s = await readStream(await post(msgBody(`th [[scenario:${t}]]`)));
  assert.deepEqual(s.events[1], { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } });
  const think = s.events.filter((e) => e.type === 'content_block_delta' && e.index === 0);
  assert.ok(think.length > 3, 'thinking streamed in pieces');
  assert.deepEqual(think.slice(0, -1).map((e) => e.delta.type), Array(think.length - 1).fill('thinking_delta'));
  assert.equal(think.at(-1).delta.type, 'signature_delta');
  assert.ok(think.at(-1).delta.signature.length > 0);
  const stop0 = s.events.findIndex((e) => e.type === 'content_block_stop' && e.index === 0);
  const start1 = s.events.findIndex((e) => e.type === 'content_block_start' && e.index === 1);
  assert.ok(stop0 > 0 && start1 === stop0 + 1, 'the text block starts after the thinking block stops');
  assert.deepEqual(s.blocks.map((b) => b.type), ['thinking', 'text']);
  assert.equal(s.thinking, 'The user wants a plan with clear steps.');
  assert.equal(s.text, 'Here is the plan.');
  assert.equal(s.outputTokens, s.deltas, 'thinking pieces count as output');
  assert.equal(s.stopReason, 'end_turn');
  const e = fake.requestsFor(t)[0];
  assert.equal(e.thinking, s.thinking);
  assert.equal(e.text, s.text);

  // A request with thinking on gets a default thinking block; {thinking: false} leaves it out.
  const on = { thinking: { type: 'enabled', budget_tokens: 1024 }, max_tokens: 2048 };
  const d = await readStream(await post(msgBody('think by default', on)));
  assert.deepEqual(d.blocks.map((b) => b.type), ['thinking', 'text']);
  assert.ok(d.thinking.length > 10);
  const t2 = tag('nothink');
  fake.setScenario(t2, [{ thinking: false }]);
  const off = await readStream(await post(msgBody(`[[scenario:${t2}]]`, on)));
  assert.deepEqual(off.blocks.map((b) => b.type), ['text']);
});

test('tool calls: tool_use blocks, input JSON in pieces that reassemble, stop_reason tool_use; the next request takes the next step', async () => {
  const t = tag('tools');
  const args1 = { path: 'src/app.js', content: 'console.log("héllo 🎉");\n' };
  const args2 = '{"path":"README.md"}';
  fake.setScenario(t, [
    { text: 'Writing two files.', toolCalls: [{ name: 'write_file', arguments: args1 }, { name: 'read_file', arguments: args2, id: 'toolu_given' }], argChunk: 5 },
    { text: 'Done.' },
  ]);
  const first = msgBody(`tools [[scenario:${t}]]`, { tools: [{ name: 'write_file', description: 'w', input_schema: { type: 'object' } }] });
  const s = await readStream(await post(first));
  assert.deepEqual(s.blocks.map((b) => b.type), ['text', 'tool_use', 'tool_use']);
  assert.equal(s.text, 'Writing two files.');
  const starts = s.events.filter((e) => e.type === 'content_block_start' && e.content_block.type === 'tool_use');
  assert.equal(starts.length, 2);
  assert.match(starts[0].content_block.id, /^toolu_/);
  assert.deepEqual(starts[0].content_block, { type: 'tool_use', id: starts[0].content_block.id, name: 'write_file', input: {} });
  assert.deepEqual(starts[1].content_block, { type: 'tool_use', id: 'toolu_given', name: 'read_file', input: {} });
  const pieces = s.events.filter((e) => e.type === 'content_block_delta' && e.index === 1).map((e) => e.delta);
  assert.ok(pieces.every((d) => d.type === 'input_json_delta' && typeof d.partial_json === 'string'));
  assert.ok(pieces.filter((d) => d.partial_json).length > 5, 'the input arrives in several pieces');
  assert.ok(pieces.filter((d) => d.partial_json).every((d) => [...d.partial_json].length <= 5));
  assert.throws(() => JSON.parse(pieces[1].partial_json), 'a single piece is not the whole JSON');
  assert.deepEqual(JSON.parse(s.blocks[1].json), args1);
  assert.deepEqual(JSON.parse(s.blocks[2].json), JSON.parse(args2));
  // every block is stopped before message_delta
  const md = s.types.indexOf('message_delta');
  assert.equal(s.events.filter((e, i) => e.type === 'content_block_stop' && i < md).length, 3);
  assert.equal(s.stopReason, 'tool_use');
  assert.equal(s.outputTokens, s.deltas);
  assert.ok(s.done);
  const e1 = fake.requestsFor(t)[0];
  assert.deepEqual(e1.toolCalls.map((c) => [c.name, JSON.parse(c.arguments)]), [['write_file', args1], ['read_file', JSON.parse(args2)]]);
  assert.equal(e1.stopReason, 'tool_use');

  // The results go back in a user message of tool_result blocks: the next step answers.
  const ids = starts.map((x) => x.content_block.id);
  const second = {
    ...first,
    messages: [
      ...first.messages,
      { role: 'assistant', content: [{ type: 'text', text: 'Writing two files.' }, ...s.blocks.slice(1).map((b) => ({ type: 'tool_use', id: b.id, name: b.name, input: JSON.parse(b.json) }))] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: ids[0], content: 'ok' }, { type: 'tool_result', tool_use_id: ids[1], content: [{ type: 'text', text: '# Readme' }], is_error: false }] },
    ],
  };
  const s2 = await readStream(await post(second));
  assert.equal(s2.text, 'Done.');
  assert.equal(s2.stopReason, 'end_turn');
  const e2 = fake.requestsFor(t)[1];
  assert.deepEqual(e2.toolResults, [
    { tool_use_id: ids[0], content: 'ok', is_error: false },
    { tool_use_id: ids[1], content: '# Readme', is_error: false },
  ]);
  assert.deepEqual(e2.step, { text: 'Done.', index: 1 });
});

test('HTTP error steps: Anthropic error bodies, request-id, retry-after', async () => {
  const t = tag('errs');
  const cases = [
    [{ status: 401 }, 'authentication_error', 'invalid x-api-key'],
    [{ status: 403 }, 'permission_error', /permission/],
    [{ status: 404 }, 'not_found_error', 'model: claude-nope'],
    [{ status: 429, retryAfter: 7 }, 'rate_limit_error', /rate limit/],
    [{ status: 500 }, 'api_error', 'Internal server error'],
    [{ status: 529, retryAfter: 2 }, 'overloaded_error', 'Overloaded'],
    [{ status: 400, code: 'context_length_exceeded' }, 'invalid_request_error', /prompt is too long/],
    [{ status: 400, code: 'insufficient_quota' }, 'invalid_request_error', /credit balance is too low/],
    [{ status: 503, type: 'overloaded_error', message: 'custom' }, 'overloaded_error', 'custom'],
  ];
  fake.setScenario(t, [...cases.map((c) => c[0]), { status: 502, body: { weird: true } }]);
  const body = msgBody(`[[scenario:${t}]]`, { model: 'claude-nope' });
  for (const [step, type, message] of cases) {
    const r = await post(body);
    assert.equal(r.status, step.status);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    assert.equal(r.headers.get('retry-after'), step.retryAfter === undefined ? null : String(step.retryAfter));
    const j = await r.json();
    assert.deepEqual(Object.keys(j).sort(), ['error', 'request_id', 'type']);
    assert.equal(j.type, 'error');
    assert.equal(j.request_id, r.headers.get('request-id'));
    assert.equal(j.error.type, type, `status ${step.status}`);
    if (typeof message === 'string') assert.equal(j.error.message, message);
    else assert.match(j.error.message, message);
  }
  const r = await post(body);
  assert.equal(r.status, 502);
  assert.deepEqual(await r.json(), { weird: true });
  const log = fake.requestsFor(t);
  assert.deepEqual(log.map((e) => e.status), [401, 403, 404, 429, 500, 529, 400, 400, 503, 502]);
  assert.ok(log.every((e) => e.outcome === 'error-status'));
  assert.equal(log[5].error.type, 'overloaded_error');
});

test('streamError: K tokens, then an SSE error event, then the end (no message_stop)', async () => {
  const t = tag('serr');
  fake.setScenario(t, [{ streamError: 'overloaded_error', after: 4 }]);
  const res = await post(msgBody(`[[scenario:${t}]]`));
  assert.equal(res.status, 200);
  const s = await readStream(res);
  assert.equal(s.deltas, 4);
  const last = sse(s.raw).at(-1);
  assert.equal(last.event, 'error');
  assert.deepEqual(JSON.parse(last.data), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
  assert.ok(!s.types.includes('message_delta') && !s.types.includes('message_stop'));
  assert.equal(fake.requestsFor(t)[0].outcome, 'stream-error');
});

test('cutAfter: K tokens then the connection is destroyed (no message_delta, no message_stop)', async () => {
  const t = tag('cut');
  fake.setScenario(t, [{ cutAfter: 5 }]);
  const res = await post(msgBody(`cut [[scenario:${t}]]`));
  assert.equal(res.status, 200);
  const { text, failed } = await readRaw(res);
  assert.ok(failed, 'reading a cut stream must fail (the socket was destroyed mid-body)');
  const s = decode(text);
  assert.equal(s.deltas, 5);
  assert.ok(!s.types.includes('message_stop') && !s.types.includes('message_delta'));
  const e = fake.requestsFor(t)[0];
  assert.equal(e.outcome, 'cut');
  assert.equal(e.aborted, false);
  assert.equal(e.tokensSent, 5);
});

test('cutAfter counts tool-input pieces too: a cut in the middle of a tool call', async () => {
  const t = tag('cuttool');
  fake.setScenario(t, [{ toolCalls: [{ name: 'write_file', arguments: { path: 'a', content: 'x'.repeat(40) } }], argChunk: 4, cutAfter: 3 }]);
  const { text, failed } = await readRaw(await post(msgBody(`[[scenario:${t}]]`)));
  assert.ok(failed);
  const s = decode(text);
  assert.equal(s.blocks[0].type, 'tool_use');
  assert.equal(s.blocks[0].json.length, 12);
  assert.ok(!s.types.includes('content_block_stop'));
});

test('malformed: valid events, then "data: {not json", then the end', async () => {
  const t = tag('bad');
  fake.setScenario(t, [{ malformed: true }]);
  const s = await readStream(await post(msgBody(`m [[scenario:${t}]]`)));
  assert.deepEqual(s.malformed, ['{not json']);
  assert.equal(s.deltas, 2);
  assert.equal(s.done, false);
  assert.equal(fake.requestsFor(t)[0].outcome, 'malformed');
});

test('stallAfter: K tokens then silence; a client abort is recorded', async () => {
  const t = tag('stall');
  fake.setScenario(t, [{ stallAfter: 3 }]);
  const ac = new AbortController();
  const res = await post(msgBody(`st [[scenario:${t}]]`), { signal: ac.signal });
  let text = '';
  const reader = res.body.getReader();
  const readAll = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return 'ended';
        text += Buffer.from(value).toString('utf8');
      }
    } catch {
      return 'aborted';
    }
  })();
  const raced = await Promise.race([readAll, new Promise((r) => setTimeout(() => r('hanging'), 200))]);
  assert.equal(raced, 'hanging', 'the stream must hang after the stall');
  assert.equal(decode(text).deltas, 3);
  assert.equal(fake.requestsFor(t)[0].outcome, 'stalled');
  ac.abort();
  assert.equal(await readAll, 'aborted');
  await fake.waitForRequests(() => fake.requestsFor(t)[0].aborted, 2000);
  assert.equal(fake.requestsFor(t)[0].outcome, 'aborted');
});

test('slow stream and headerDelayMs: N tokens about D ms apart, the head after the delay', async () => {
  const t = tag('slow');
  fake.setScenario(t, [{ tokens: 8, delayMs: 25, headerDelayMs: 100 }]);
  const t0 = Date.now();
  const res = await post(msgBody(`slow [[scenario:${t}]]`));
  const head = Date.now() - t0;
  const s = await readStream(res);
  const ms = Date.now() - t0;
  assert.ok(head >= 90, `head after ~100 ms, got ${head}`);
  assert.equal(s.deltas, 8);
  assert.ok(ms >= 280, `100 ms + 8 × 25 ms, took ${ms}`);
  assert.ok(s.done);
});

test('stopReason max_tokens (and fake-openai finish names); the request max_tokens caps the answer', async () => {
  const t = tag('stop');
  fake.setScenario(t, [{ stopReason: 'max_tokens' }, { finish: 'length', tokens: 5 }, { stopReason: 'refusal' }]);
  const b = msgBody(`[[scenario:${t}]]`);
  let s = await readStream(await post(b));
  assert.equal(s.stopReason, 'max_tokens');
  assert.equal(s.deltas, 3);
  assert.ok(s.done);
  s = await readStream(await post(b));
  assert.equal(s.stopReason, 'max_tokens');
  assert.equal(s.deltas, 5);
  s = await readStream(await post(b));
  assert.equal(s.stopReason, 'refusal');
  // No step: the answer is cut at the request's max_tokens.
  s = await readStream(await post(msgBody('short', { max_tokens: 10 })));
  assert.equal(s.deltas, 10);
  assert.equal(s.outputTokens, 10);
  assert.equal(s.stopReason, 'max_tokens');
});

test('non-streamed request: the whole message as JSON', async () => {
  const t = tag('whole');
  fake.setScenario(t, [{ thinking: 'Hmm.', text: 'All at once.', toolCalls: [{ name: 'f', arguments: { a: 1 } }] }]);
  const r = await post(msgBody(`[[scenario:${t}]]`, { stream: false }));
  const j = await r.json();
  assert.equal(j.type, 'message');
  assert.deepEqual(j.content.map((c) => c.type), ['thinking', 'text', 'tool_use']);
  assert.equal(j.content[1].text, 'All at once.');
  assert.deepEqual(j.content[2].input, { a: 1 });
  assert.equal(j.stop_reason, 'tool_use');
  assert.equal(typeof j.usage.output_tokens, 'number');
});

test('auth and headers: missing or wrong key → 401, missing anthropic-version → 400, invalid body → 400; none takes a step', async () => {
  const t = tag('auth');
  fake.setScenario(t, [{ text: 'first step' }, { text: 'second step' }]);
  const b = msgBody(`[[scenario:${t}]]`);
  let r = await post(b, { headers: { 'x-api-key': 'sk-ant-wrong' } });
  assert.equal(r.status, 401);
  assert.deepEqual((({ request_id, ...rest }) => rest)(await r.json()), { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } });
  r = await fetch(`${fake.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: JSON.stringify(b) });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.type, 'authentication_error');
  r = await post(b, { headers: { 'anthropic-version': '' } });
  assert.equal(r.status, 400);
  const v = await r.json();
  assert.equal(v.error.type, 'invalid_request_error');
  assert.match(v.error.message, /anthropic-version/);
  r = await post({ ...b, max_tokens: undefined });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /max_tokens/);
  r = await post({ ...b, messages: [{ role: 'system', content: 'x' }, ...b.messages] });
  assert.equal(r.status, 400);
  r = await post({ ...b, thinking: { type: 'enabled', budget_tokens: 2048 } });
  assert.equal(r.status, 400, 'budget_tokens must be below max_tokens');
  r = await post('{not json');
  assert.equal(r.status, 400);
  const log = fake.requestsFor(t);
  assert.deepEqual(log.map((e) => e.outcome), Array(6).fill('rejected'));
  assert.deepEqual(log.map((e) => e.keyOk), [false, false, true, true, true, true]);
  assert.ok(log.every((e) => e.step === null));
  // …so the first accepted request still gets the first step
  assert.equal((await readStream(await post(b))).text, 'first step');
  assert.equal((await readStream(await post(b))).text, 'second step');
});

test('the key never appears in the request log (library or /__requests), even if sent in the body', async () => {
  const t = tag('redact');
  await post(msgBody(`leaky ${KEY} [[scenario:${t}]]`), { headers: { authorization: `Bearer ${KEY}` } });
  await post(msgBody('wrong key'), { headers: { 'x-api-key': `${KEY}-other` } });
  const e = fake.requestsFor(t)[0];
  assert.equal(e.keyInBody, true);
  assert.equal(e.headers.authorization, '[redacted]');
  assert.ok(!JSON.stringify(fake.requests).includes(KEY), 'the key is in fake.requests');
  assert.ok(!fake.requests.some((x) => x.rawBody.includes(KEY)));
  const served = await (await fetch(`${fake.url}/__requests`)).text();
  assert.ok(!served.includes(KEY), 'the key is in GET /__requests');
  assert.ok(!served.includes('rawBody'));
});

test('scenario selection: tag in the system prompt or any message (blocks too); steps in order, last repeats', async () => {
  const t = tag('seq');
  assert.equal(scenarioOf({ system: `sys [[scenario:${t}]]`, messages: [] }), t);
  assert.equal(scenarioOf({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'x', content: `[[scenario:${t}]]` }] }] }), t);
  assert.equal(scenarioOf({ messages: [{ role: 'user', content: 'no tag' }] }), null);
  assert.equal(roleOf({ system: 'You are the Deployer; the tester before you…' }), 'deployer');
  assert.equal(roleOf({ system: [{ type: 'text', text: 'nothing' }] }), 'assistant');
  fake.setScenario(t, [{ status: 500 }, { status: 429, retryAfter: 1 }, { ok: true }]);
  const body = msgBody('brief', { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: [{ type: 'text', text: `brief [[scenario:${t}]]` }] }] });
  assert.equal((await post(body)).status, 500);
  const r2 = await post(body);
  assert.equal(r2.status, 429);
  assert.equal(r2.headers.get('retry-after'), '1');
  for (let i = 0; i < 2; i++) {
    const r = await post(body);
    assert.equal(r.status, 200);
    assert.ok((await readStream(r)).done);
  }
  assert.deepEqual(fake.requestsFor(t).map((r) => r.status), [500, 429, 200, 200]);
  assert.deepEqual(fake.requestsFor(t).map((r) => r.step.index), [0, 1, 2, 2]);
  const seen = await fake.waitForRequests((reqs) => reqs.filter((r) => r.scenario === t).length === 4, 1000);
  assert.equal(seen, fake.requests);
  await assert.rejects(fake.waitForRequests(() => false, 50), /fake-anthropic: condition not met/);
});

test('control endpoints: POST /__scenario, GET /__requests, POST /__reset on a second double', async () => {
  const other = await startFakeAnthropic({ msPerToken: 0 });
  try {
    const t = tag('http');
    let r = await fetch(`${other.url}/__scenario/${t}`, { method: 'POST', body: JSON.stringify({ steps: [{ status: 529 }] }) });
    assert.equal(r.status, 200);
    r = await post(msgBody(`[[scenario:${t}]]`), { base: other.url, headers: { 'x-api-key': 'any-key' } });
    assert.equal(r.status, 529);
    const log = await (await fetch(`${other.url}/__requests`)).json();
    assert.equal(log.length, 1);
    assert.equal(log[0].scenario, t);
    assert.equal(log[0].keyOk, null, 'no apiKey option: any key is accepted');
    r = await fetch(`${other.url}/__reset`, { method: 'POST' });
    assert.equal(r.status, 200);
    assert.equal(other.requests.length, 0);
    r = await post(msgBody(`[[scenario:${t}]]`), { base: other.url });
    assert.equal(r.status, 200, 'the scenario was forgotten');
    await r.text();
    r = await fetch(`${other.url}/__scenario/x`, { method: 'POST', body: '[]' });
    assert.equal(r.status, 400);
  } finally {
    await other.close();
  }
});

test('standalone: node tests/support/fake-anthropic.mjs --port N prints its URL and serves', async () => {
  const port = await new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const script = path.resolve(import.meta.dirname, '../support/fake-anthropic.mjs');
  const child = spawn(process.execPath, [script, '--port', String(port), '--pace', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error('no URL printed within 5 s')), 5000);
      child.stdout.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) {
          clearTimeout(timer);
          resolve(buf.trim());
        }
      });
    });
    assert.equal(line, `fake-anthropic listening on http://127.0.0.1:${port}`);
    const s = await readStream(await post(msgBody('standalone brief'), { base: `http://127.0.0.1:${port}` }));
    assert.ok(s.text.includes('standalone brief'));
    assert.ok(s.done);
  } finally {
    child.kill('SIGTERM');
  }
});
