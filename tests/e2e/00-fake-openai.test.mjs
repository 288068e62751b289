// Self-test of the OpenAI-compatible double: read it directly with fetch, parse its SSE, and
// check every step kind. Needs no Worker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { startFakeOpenAI, defaultTokens, scenarioOf, roleOf } from '../support/fake-openai.mjs';
import { parseSse } from '../support/sse.mjs';

/** The `data:` payloads of an SSE text, as strings. */
const parseSSE = (text) => parseSse(text, { raw: true }).filter((e) => 'data' in e).map((e) => e.data);

let fake;
before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 1 });
});
after(async () => {
  await fake?.close();
});

const SYSTEM = 'You are the Architect agent of BotArmy. You receive the analyst requirements.';
function chatBody(brief, extra = {}) {
  return {
    model: 'gpt-test',
    stream: true,
    stream_options: { include_usage: true },
    messages: [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: brief },
    ],
    ...extra,
  };
}

async function post(body, { signal, headers = {} } = {}) {
  return fetch(`${fake.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer test-key-self', ...headers },
    body: JSON.stringify(body),
    signal,
  });
}

/** Read a streamed answer: the parsed chunks, the text, finish reasons, usage, and [DONE]. */
async function readStream(res) {
  const text = await res.text();
  const datas = parseSSE(text);
  const chunks = [];
  let done = false;
  let malformed = [];
  for (const d of datas) {
    if (d === '[DONE]') {
      done = true;
      continue;
    }
    try {
      chunks.push(JSON.parse(d));
    } catch {
      malformed.push(d);
    }
  }
  const content = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
  const finish = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f !== null);
  const usage = chunks.find((c) => c.usage)?.usage;
  return { raw: text, chunks, content, finish, usage, done, malformed };
}

let n = 0;
const tag = (name) => `${name}-${++n}`;

test('default answer: exact OpenAI chunk format, role-dependent text with the brief, usage, [DONE]', async () => {
  const brief = 'Build a todo app with offline sync and sharing for families';
  const res = await post(chatBody(brief));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const s = await readStream(res);
  assert.equal(s.done, true, 'ends with data: [DONE]');
  assert.deepEqual(s.malformed, []);
  assert.ok(s.raw.endsWith('data: [DONE]\n\n'));
  // first chunk carries the role
  assert.deepEqual(s.chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  for (const c of s.chunks) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.match(c.id, /^chatcmpl-/);
    assert.equal(typeof c.created, 'number');
    assert.equal(c.model, 'gpt-test');
  }
  const contentChunks = s.chunks.filter((c) => c.choices.length && c.choices[0].delta.content);
  assert.ok(contentChunks.length >= 55 && contentChunks.length <= 65, `~60 tokens, got ${contentChunks.length}`);
  assert.deepEqual(s.finish, ['stop']);
  const last = s.chunks.at(-1);
  assert.deepEqual(last.choices, [], 'usage chunk has no choices');
  assert.deepEqual(Object.keys(last.usage).sort(), ['completion_tokens', 'prompt_tokens', 'total_tokens']);
  assert.equal(last.usage.completion_tokens, contentChunks.length);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  assert.ok(s.content.startsWith('## Architect report'), s.content.slice(0, 40));
  assert.ok(s.content.includes(brief.slice(0, 40)), 'contains the first 40 chars of the brief');
  assert.equal(s.content, defaultTokens({ role: 'architect', userText: brief, tokens: 60 }).join(''));
  // deterministic
  const again = await readStream(await post(chatBody(brief)));
  assert.equal(again.content, s.content);
  // depends on role
  const other = await readStream(
    await post({ ...chatBody(brief), messages: [{ role: 'system', content: 'You are the Tester.' }, { role: 'user', content: brief }] }),
  );
  assert.ok(other.content.startsWith('## Tester report'));
  // logged
  const entry = fake.requests.at(-1);
  assert.equal(entry.role, 'tester');
  assert.equal(entry.headers.authorization, 'Bearer test-key-self');
  assert.equal(entry.body.model, 'gpt-test');
  assert.equal(entry.outcome, 'completed');
  assert.equal(entry.aborted, false);
  assert.deepEqual(entry.usage, other.usage, 'the log keeps the usage reported to the client');
  assert.equal(entry.text, other.content);
});

test('no usage chunk without stream_options.include_usage; non-stream answer is JSON', async () => {
  const s = await readStream(await post(chatBody('x', { stream_options: undefined })));
  assert.equal(s.usage, undefined);
  assert.equal(s.done, true);
  const res = await post(chatBody('hello there', { stream: false }));
  const j = await res.json();
  assert.equal(j.object, 'chat.completion');
  assert.ok(j.choices[0].message.content.includes('hello there'));
  assert.equal(typeof j.usage.total_tokens, 'number');
});

test('scenario tag found anywhere in the messages; steps consumed in order, last repeats', async () => {
  const t = tag('seq');
  fake.setScenario(t, [{ status: 500 }, { status: 429, retryAfter: 1 }, { ok: true }]);
  assert.equal(scenarioOf({ messages: [{ role: 'user', content: `a [[scenario:${t}]] b` }] }), t);
  assert.equal(roleOf({ messages: [{ role: 'system', content: 'You are the Deployer; the tester before you…' }] }), 'deployer');
  const body = { ...chatBody('brief'), messages: [{ role: 'system', content: SYSTEM }, { role: 'assistant', content: 'x' }, { role: 'user', content: `brief [[scenario:${t}]]` }] };
  const r1 = await post(body);
  assert.equal(r1.status, 500);
  assert.equal((await r1.json()).error.type, 'server_error');
  const r2 = await post(body);
  assert.equal(r2.status, 429);
  assert.equal(r2.headers.get('retry-after'), '1');
  assert.equal((await r2.json()).error.code, 'rate_limit_exceeded');
  for (let i = 0; i < 2; i++) {
    const r = await post(body);
    assert.equal(r.status, 200);
    assert.equal((await readStream(r)).done, true);
  }
  assert.deepEqual(fake.requestsFor(t).map((r) => r.status), [500, 429, 200, 200]);
});

test('error steps: 401 invalid_api_key, 400 context_length_exceeded, 429 insufficient_quota, custom body', async () => {
  const t = tag('errs');
  fake.setScenario(t, [
    { status: 401 },
    { status: 400, code: 'context_length_exceeded' },
    { status: 429, code: 'insufficient_quota' },
    { status: 503, body: { error: { message: 'custom' } } },
  ]);
  const b = chatBody(`[[scenario:${t}]]`);
  let r = await post(b);
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.code, 'invalid_api_key');
  r = await post(b);
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, 'context_length_exceeded');
  r = await post(b);
  assert.equal(r.status, 429);
  assert.equal((await r.json()).error.code, 'insufficient_quota');
  r = await post(b);
  assert.equal(r.status, 503);
  assert.deepEqual(await r.json(), { error: { message: 'custom' } });
});

test('slow stream: N tokens about D ms apart', async () => {
  const t = tag('slow');
  fake.setScenario(t, [{ tokens: 10, delayMs: 30 }]);
  const t0 = Date.now();
  const s = await readStream(await post(chatBody(`slow [[scenario:${t}]]`)));
  const ms = Date.now() - t0;
  const contentChunks = s.chunks.filter((c) => c.choices.length && c.choices[0].delta.content);
  assert.equal(contentChunks.length, 10);
  assert.ok(ms >= 280, `10 tokens at 30 ms should take >= 300 ms, took ${ms}`);
  assert.equal(s.done, true);
});

test('cutAfter: K tokens then the connection is destroyed (no finish, no [DONE])', async () => {
  const t = tag('cut');
  fake.setScenario(t, [{ cutAfter: 5 }]);
  const res = await post(chatBody(`cut [[scenario:${t}]]`));
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let text = '';
  let failed = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
  } catch (e) {
    failed = e;
  }
  assert.ok(failed, 'reading a cut stream must fail (the socket was destroyed mid-body)');
  const datas = parseSSE(text);
  assert.ok(!datas.includes('[DONE]'));
  const contents = datas.map((d) => JSON.parse(d)).filter((c) => c.choices[0]?.delta.content);
  assert.equal(contents.length, 5);
  assert.equal(fake.requestsFor(t)[0].outcome, 'cut');
  assert.equal(fake.requestsFor(t)[0].aborted, false);
});

test('malformed: valid chunks, then "data: {not json", then the end', async () => {
  const t = tag('bad');
  fake.setScenario(t, [{ malformed: true }]);
  const s = await readStream(await post(chatBody(`m [[scenario:${t}]]`)));
  assert.deepEqual(s.malformed, ['{not json']);
  assert.equal(s.done, false);
  assert.equal(s.chunks.filter((c) => c.choices[0]?.delta.content).length, 2);
});

test('finish content_filter', async () => {
  const t = tag('cf');
  fake.setScenario(t, [{ finish: 'content_filter' }]);
  const s = await readStream(await post(chatBody(`cf [[scenario:${t}]]`)));
  assert.deepEqual(s.finish, ['content_filter']);
  assert.equal(s.done, true);
});

test('stallAfter: K tokens then silence; a client abort is recorded', async () => {
  const t = tag('stall');
  fake.setScenario(t, [{ stallAfter: 3 }]);
  const ac = new AbortController();
  const res = await post(chatBody(`st [[scenario:${t}]]`), { signal: ac.signal });
  const reader = res.body.getReader();
  let text = '';
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
  const raced = await Promise.race([readAll, new Promise((r) => setTimeout(() => r('hanging'), 300))]);
  assert.equal(raced, 'hanging', 'the stream must hang after the stall');
  assert.equal(parseSSE(text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d)).filter((c) => c.choices[0]?.delta.content).length, 3);
  assert.equal(fake.requestsFor(t)[0].aborted, false);
  ac.abort();
  assert.equal(await readAll, 'aborted');
  await fake.waitForRequests(() => fake.requestsFor(t)[0].aborted, 2000);
  assert.equal(fake.requestsFor(t)[0].outcome, 'aborted');
});

test('client abort during a normal slow stream is recorded', async () => {
  const t = tag('abort');
  fake.setScenario(t, [{ tokens: 100, delayMs: 20 }]);
  const ac = new AbortController();
  const res = await post(chatBody(`ab [[scenario:${t}]]`), { signal: ac.signal });
  const reader = res.body.getReader();
  await reader.read();
  await new Promise((r) => setTimeout(r, 100));
  ac.abort();
  await fake.waitForRequests(() => fake.requestsFor(t)[0].aborted, 2000);
  const e = fake.requestsFor(t)[0];
  assert.equal(e.outcome, 'aborted');
  assert.ok(e.tokensSent > 0 && e.tokensSent < 100, `tokens sent before abort: ${e.tokensSent}`);
});

test('onToken hook sees each token before it is written', async () => {
  const seen = [];
  fake.onToken = (entry, i, text) => seen.push([entry.id, i, text]);
  try {
    const s = await readStream(await post(chatBody('hook test')));
    const id = fake.requests.at(-1).id;
    const mine = seen.filter((x) => x[0] === id);
    assert.equal(mine.map((x) => x[2]).join(''), s.content);
    assert.deepEqual(mine.map((x) => x[1]), mine.map((_, i) => i));
  } finally {
    fake.onToken = null;
  }
});

test('control endpoints: POST /__scenario, GET /__requests, 404 for unknown paths', async () => {
  const base = fake.url.replace(/\/v1$/, '');
  const t = tag('http');
  let r = await fetch(`${base}/__scenario/${t}`, { method: 'POST', body: JSON.stringify([{ status: 500 }]) });
  assert.equal(r.status, 200);
  r = await post(chatBody(`[[scenario:${t}]]`));
  assert.equal(r.status, 500);
  r = await fetch(`${base}/__requests`);
  const log = await r.json();
  assert.equal(log.at(-1).scenario, t);
  assert.equal(log.at(-1).status, 500);
  r = await fetch(`${fake.url}/nope`);
  assert.equal(r.status, 404);
  r = await fetch(`${fake.url}/models`);
  assert.equal((await r.json()).object, 'list');
});

test('standalone: node tests/support/fake-openai.mjs --port N prints its URL and serves', async () => {
  // pick a free port
  const port = await new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const script = path.resolve(import.meta.dirname, '../support/fake-openai.mjs');
  const child = spawn(process.execPath, [script, '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
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
    assert.equal(line, `fake-openai listening on http://127.0.0.1:${port}/v1`);
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chatBody('standalone brief')),
    });
    const s = await readStream(r);
    assert.ok(s.content.includes('standalone brief'));
  } finally {
    child.kill('SIGTERM');
  }
});
