// Project files written through tool calls (issue 11), against real `wrangler dev`: the demo
// crew writes a runnable project (its own tests pass under `node --test` after unzipping the
// download); a provider's streamed tool calls (the fake OpenAI server) run exactly as the
// model sent them, bad calls answered with errors the model sees and nothing written; the
// files API serves the tree, contents, old versions and a zip that Python and unzip read; a
// view key reads them and writes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWorker } from '../support/harness.mjs';
import { startFakeOpenAI } from '../support/fake-openai.mjs';
import { SessionClient, createSession, fetchEvents, getSession } from '../support/client.mjs';
import { briefFor, checkInvariants, mustAck, stateHistory, tag, waitRunEnd } from '../support/e2e.mjs';

let demo;
let fake;
let provider;
before(async () => {
  fake = await startFakeOpenAI({ msPerToken: 1 });
  [demo, provider] = await Promise.all([
    startWorker({ name: '11-files-demo', env: { DEMO_TOKEN_INTERVAL_MS: '1' } }),
    startWorker({ name: '11-files-openai', env: { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'sk-test-files', LLM_CACHE: 'off' } }),
  ]);
});
after(async () => {
  await Promise.all([demo?.stop(), provider?.stop()]);
  await fake?.close();
});

async function runToEnd(url, brief) {
  const id = await createSession(url);
  const c = await SessionClient.open(url, id, { label: 'owner' });
  try {
    await mustAck(c, { type: 'start', brief, approval: 'auto' });
    const runId = (await c.waitFor((e) => e.type === 'RUN_STARTED')).runId;
    await waitRunEnd(c, runId, 90000);
  } finally {
    c.close();
  }
  return id;
}

async function files(url, key) {
  const res = await fetch(`${url}/api/sessions/${key}/files`);
  assert.equal(res.status, 200);
  return res.json();
}

function unzipInto(zip, dir) {
  fs.writeFileSync(path.join(dir, 'project.zip'), zip);
  // Python's zipfile: a standard reader that checks CRCs as it extracts.
  const listed = execFileSync('python3', ['-c', `
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
for i in z.infolist():
    assert i.date_time == (1980, 1, 1, 0, 0, 0), i.date_time
    print(i.filename)
z.extractall(sys.argv[2])
`, path.join(dir, 'project.zip'), path.join(dir, 'project')], { encoding: 'utf8' });
  return listed.trim().split('\n');
}

test('the demo crew writes a project that unzips and passes its own tests', async (t) => {
  const brief = 'A notes app for a <b>choir</b> "quoted" — with ünïcode';
  const id = await runToEnd(demo.url, brief);
  const events = await fetchEvents(demo.url, id, 0);
  checkInvariants(events, 'demo');
  const starts = events.filter((e) => e.type === 'TOOL_CALL_START');
  assert.ok(starts.length >= 10, `${starts.length} tool calls`);
  const results = events.filter((e) => e.type === 'TOOL_CALL_RESULT');
  assert.equal(results.length, starts.length, 'every call answered');
  assert.ok(results.every((r) => !r.content.startsWith('Error: ')), 'the demo makes no bad call');

  const tree = await files(demo.url, id);
  const paths = tree.files.map((f) => f.path);
  assert.deepEqual(paths, ['.github/workflows/ci.yml', 'Dockerfile', 'README.md', 'package.json', 'public/index.html', 'src/app.js', 'src/server.js', 'test/app.test.js']);
  const state = (await getSession(demo.url, id)).body.state;
  assert.deepEqual(Object.keys(state.files).sort(), [...paths].sort(), 'the state lists the same files');
  const readme = tree.files.find((f) => f.path === 'README.md');
  assert.deepEqual(readme.versions.map((v) => v.stage), ['architect', 'deployer'], 'the Deployer rewrote the README');
  assert.equal(readme.stage, 'deployer');
  assert.equal(tree.files.find((f) => f.path === 'src/app.js').stage, 'developer');
  assert.equal(tree.bytes, tree.files.reduce((n, f) => n + f.bytes, 0));
  assert.equal(tree.limits.files, 200);

  // A file: text, never rendered; an old version by number.
  const res = await fetch(`${demo.url}/api/sessions/${id}/files/README.md`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.match(res.headers.get('content-disposition'), /^attachment; filename="README.md"/);
  const now = await res.text();
  assert.match(now, /## Run/);
  assert.equal(now.length > 0 && Buffer.byteLength(now), readme.bytes);
  const old = await (await fetch(`${demo.url}/api/sessions/${id}/files/README.md?version=${readme.versions[0].version}`)).text();
  assert.doesNotMatch(old, /## Run/, 'version 1 is the Architect\'s');
  const html = await (await fetch(`${demo.url}/api/sessions/${id}/files/public/index.html`)).text();
  assert.doesNotMatch(html, /<b>choir/, 'the brief is escaped in the page it lands in');

  // The zip: what /files lists, readable by Python and unzip; the project's tests pass.
  const zres = await fetch(`${demo.url}/api/sessions/${id}/project.zip`);
  assert.equal(zres.status, 200);
  assert.equal(zres.headers.get('content-type'), 'application/zip');
  assert.match(zres.headers.get('content-disposition'), new RegExp(`botarmy-${id.slice(0, 8)}\\.zip`));
  const zip = Buffer.from(await zres.arrayBuffer());
  const again = Buffer.from(await (await fetch(`${demo.url}/api/sessions/${id}/project.zip`)).arrayBuffer());
  assert.ok(zip.equals(again), 'the same project gives the same bytes');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'botarmy-zip-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  assert.deepEqual(unzipInto(zip, dir), paths);
  const unzip = spawnSync('unzip', ['-l', path.join(dir, 'project.zip')], { encoding: 'utf8' });
  if (unzip.error?.code !== 'ENOENT') assert.equal(unzip.status, 0, unzip.stderr);
  // Not as a subtest of this run: without the runner's context variable, with the TAP report.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const run = spawnSync(process.execPath, ['--test', '--test-reporter=tap'], { cwd: path.join(dir, 'project'), encoding: 'utf8', timeout: 60000, env });
  assert.equal(run.status, 0, `the generated project's tests fail:\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /# pass 4/);

  // A view key reads everything and writes nothing.
  const view = await (await fetch(`${demo.url}/api/sessions/${id}/views`, { method: 'POST', headers: { Origin: demo.url } })).json();
  assert.deepEqual((await files(demo.url, view.key)).files.map((f) => f.path), paths);
  assert.equal((await fetch(`${demo.url}/api/sessions/${view.key}/files/src/app.js`)).status, 200);
  const vz = await fetch(`${demo.url}/api/sessions/${view.key}/project.zip`);
  assert.equal(vz.status, 200);
  assert.equal(vz.headers.get('content-disposition'), `attachment; filename="botarmy-view-${view.id}.zip"`, 'no part of the session id');
  assert.ok(Buffer.from(await vz.arrayBuffer()).equals(zip), 'the same project');
  assert.equal((await fetch(`${demo.url}/api/sessions/${view.key}/files`, { method: 'POST', headers: { Origin: demo.url } })).status, 403);
});

test('the files API refuses bad paths and numbers and says what is missing', async () => {
  const id = await createSession(demo.url);
  assert.equal((await fetch(`${demo.url}/api/sessions/${id}/project.zip`)).status, 404, 'no files yet');
  assert.deepEqual((await files(demo.url, id)).files, []);
  for (const p of ['..%2F..%2Fetc%2Fpasswd', 'nope.txt', '%2E%2E/x', 'a%00b']) {
    const res = await fetch(`${demo.url}/api/sessions/${id}/files/${p}`);
    assert.equal(res.status, 404, p);
    assert.equal((await res.json()).error.code, 'not_found');
  }
  const res = await fetch(`${demo.url}/api/sessions/${id}/files/x?version=abc`);
  assert.equal(res.status, 400);
});

const BAD_PATHS = ['/etc/passwd', 'C:/x.txt', 'a\\b.txt', 'a\u0000b', 'tab\there', 'a//b', './', '', `${'d'.repeat(101)}/x`, 'x/'.repeat(130) + 'y', 'CON', 'nul.txt', '.git/config', 'a/../../b'];

test("a provider's streamed tool calls run as sent; bad ones are answered with errors and write nothing", async () => {
  const scenario = tag('tools');
  const write = (p, content) => ({ name: 'write_file', arguments: { path: p, content } });
  fake.setScenario(scenario, [
    { ok: true }, // analyst: text
    {
      text: 'Laying out the skeleton. ',
      toolCalls: [
        write('README.md', '# Shopping list\n\nFor families — ünïcode ✓\n'),
        write('../outside.txt', 'no'),
        { name: 'rm_rf', arguments: {} },
        { name: 'write_file', arguments: '{"path": "broken.json", "content": ' },
      ],
      argChunk: 5,
    },
    {
      // Every path rule and cap: each answered with an error, nothing written.
      toolCalls: BAD_PATHS.map((p) => write(p, 'x')).concat([write('big.bin', 'x'.repeat(256 * 1024 + 1)), { name: 'read_file', arguments: { path: 7 } }]),
      argChunk: 4096,
    },
    { text: '## Overview\nA list app. Wrote README.md.\n' }, // architect: done
    { toolCalls: [{ name: 'read_file', arguments: { path: 'README.md' } }, write('src/list.js', 'export const items = [];\n')] },
    { toolCalls: [{ name: 'delete_file', arguments: { path: 'src/list.js' } }, write('src/list.js', 'export const items = ["milk"];\n')] },
    { text: '## Implementation plan\nDone.\n' }, // developer: done
    { ok: true }, // tester
    { ok: true }, // deployer
  ]);
  const from = fake.requests.length;
  const id = await runToEnd(provider.url, briefFor(scenario));
  const events = await fetchEvents(provider.url, id, 0);
  checkInvariants(events, 'provider');
  assert.equal(events.at(-1).type, 'RUN_FINISHED');
  const all = events.filter((e) => e.type === 'TOOL_CALL_RESULT').map((e) => e.content);
  const bad = all.slice(4, 4 + BAD_PATHS.length + 2);
  bad.forEach((r, i) => assert.match(r, /^Error: /, `bad call ${i} (${BAD_PATHS[i] ?? 'cap or type'}): ${r}`));
  assert.match(bad[BAD_PATHS.length], /at most 262144 bytes/);
  const results = all.slice(0, 4).concat(all.slice(4 + BAD_PATHS.length + 2));
  assert.equal(results.length, 8);
  assert.match(results[0], /^Wrote README\.md/);
  assert.match(results[1], /^Error: The path "\.\.\/outside\.txt" cannot be used/);
  assert.match(results[2], /^Error: There is no tool named "rm_rf"/);
  assert.match(results[3], /^Error: /);
  assert.match(results[4], /^# Shopping list/, 'read_file answers the content');
  // The arguments streamed in pieces arrive whole on the wire.
  const start = events.find((e) => e.type === 'TOOL_CALL_START');
  const args = events.filter((e) => e.type === 'TOOL_CALL_ARGS' && e.toolCallId === start.toolCallId).map((e) => e.delta).join('');
  assert.deepEqual(JSON.parse(args), { path: 'README.md', content: '# Shopping list\n\nFor families — ünïcode ✓\n' });
  assert.equal(start.parentMessageId, events.find((e) => e.type === 'TEXT_MESSAGE_START' && e.name === 'Architect').messageId);

  // The model got the results: the architect's second request carries its calls and answers.
  const mine = fake.requests.slice(from).filter((r) => JSON.stringify(r.body?.messages ?? []).includes(`[[scenario:${scenario}]]`));
  assert.equal(mine.length, 9, 'analyst 1, architect 3, developer 3, tester 1, deployer 1');
  assert.equal(mine[0].body.tools, undefined, 'the Analyst is offered no tools');
  assert.deepEqual(mine[1].body.tools.map((x) => x.function.name), ['write_file', 'read_file', 'list_files', 'delete_file']);
  const second = mine[2].body.messages;
  assert.equal(mine[3].body.messages.filter((m) => m.role === 'tool').length, 4 + BAD_PATHS.length + 2, 'every result went back');
  const assistant = second.find((m) => m.role === 'assistant' && m.tool_calls);
  assert.equal(assistant.content, 'Laying out the skeleton. ');
  assert.deepEqual(assistant.tool_calls.map((c) => c.id), mine[1].toolCalls.map((c) => c.id));
  const answers = second.filter((m) => m.role === 'tool');
  assert.deepEqual(answers.map((m) => m.tool_call_id), mine[1].toolCalls.map((c) => c.id));
  assert.match(answers[1].content, /^Error: /);

  // What was written: only the good writes; the delete and rewrite gave a new version.
  const tree = await files(provider.url, id);
  assert.deepEqual(tree.files.map((f) => f.path), ['README.md', 'src/list.js']);
  const list = tree.files.find((f) => f.path === 'src/list.js');
  assert.deepEqual(list.versions.map((v) => v.deleted), [false, true, false]);
  assert.equal(await (await fetch(`${provider.url}/api/sessions/${id}/files/src/list.js`)).text(), 'export const items = ["milk"];\n');
  const readme = await (await fetch(`${provider.url}/api/sessions/${id}/files/README.md`)).text();
  assert.equal(readme, '# Shopping list\n\nFor families — ünïcode ✓\n');
  // The zip holds exactly the files written, byte for byte.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'botarmy-zip-'));
  try {
    const zip = Buffer.from(await (await fetch(`${provider.url}/api/sessions/${id}/project.zip`)).arrayBuffer());
    assert.deepEqual(unzipInto(zip, dir), ['README.md', 'src/list.js']);
    assert.equal(fs.readFileSync(path.join(dir, 'project/README.md'), 'utf8'), '# Shopping list\n\nFor families — ünïcode ✓\n');
    assert.equal(fs.readFileSync(path.join(dir, 'project/src/list.js'), 'utf8'), 'export const items = ["milk"];\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // The artifact is the text only, never the calls.
  const artifact = await (await fetch(`${provider.url}/api/sessions/${id}/artifacts/architect`)).text();
  assert.equal(artifact, 'Laying out the skeleton. ## Overview\nA list app. Wrote README.md.\n');
});

test('tool calls sent in pieces of 200 KiB arrive whole', async () => {
  // Six files, each call's arguments in one write: the body's chunks are as large as the
  // runtime hands them over, gathered by the Worker's body reader (src/llm/inbox.rs).
  const scenario = tag('large');
  const body = (i) => `${String(i)}${'abcdefghij'.repeat(20 * 1024)}\n`;
  const names = [0, 1, 2, 3, 4, 5].map((i) => `big/${i}.txt`);
  fake.setScenario(scenario, [
    { ok: true },
    { toolCalls: names.map((p, i) => ({ name: 'write_file', arguments: { path: p, content: body(i) } })), argChunk: 1 << 20, delayMs: 0 },
    { text: '## Overview\nSix files.\n' },
    { ok: true },
    { ok: true },
    { ok: true },
  ]);
  const id = await runToEnd(provider.url, briefFor(scenario));
  const events = await fetchEvents(provider.url, id, 0);
  checkInvariants(events, 'provider');
  assert.equal(events.at(-1).type, 'RUN_FINISHED');
  for (const [i, p] of names.entries()) {
    assert.equal(await (await fetch(`${provider.url}/api/sessions/${id}/files/${p}`)).text(), body(i), p);
  }
});

test('a rerun from the Developer replaces its files and the later stages\', keeping the Architect\'s', async () => {
  const id = await runToEnd(demo.url, 'A tiny todo list');
  const before = await files(demo.url, id);
  const c = await SessionClient.open(demo.url, id, { label: 'owner' });
  try {
    const last = (await getSession(demo.url, id)).body.lastSeq;
    await mustAck(c, { type: 'rerun', stage: 'developer' });
    const run = await c.waitFor((e) => e.type === 'RUN_STARTED' && e.seq > last);
    await waitRunEnd(c, run.runId, 90000);
    // From the rerun's start to the Developer's first write, the project is the Architect's
    // files alone: the old Developer, Tester and Deployer files went when its attempt began.
    const events = (await fetchEvents(demo.url, id, 0)).filter((e) => e.seq >= run.seq);
    const firstWrite = events.find((e) => e.type === 'TOOL_CALL_RESULT').seq;
    const states = stateHistory(events.filter((e) => e.seq < firstWrite), (st) => Object.keys(st.files).sort());
    assert.equal(states[0].value.length, 8, 'the run starts from the finished project');
    assert.deepEqual(states.at(-1).value, ['README.md', 'package.json']);
  } finally {
    c.close();
  }
  const after = await files(demo.url, id);
  assert.deepEqual(after.files.map((f) => f.path), before.files.map((f) => f.path));
  const v = (t, p) => t.files.find((f) => f.path === p).version;
  assert.equal(v(after, 'package.json'), v(before, 'package.json'), 'the Architect\'s file is the same row');
  assert.ok(v(after, 'src/app.js') > v(before, 'src/app.js'), 'the Developer\'s file is new');
  const readme = after.files.find((f) => f.path === 'README.md');
  assert.deepEqual(readme.versions.map((x) => x.stage), ['architect', 'deployer'], 'the old Deployer version is gone, never mixed');
});

async function runGated(url, brief, onGate) {
  const id = await createSession(url);
  const c = await SessionClient.open(url, id, { label: 'owner' });
  try {
    await mustAck(c, { type: 'start', brief, approval: 'each_stage' });
    for (let from = 0; ; ) {
      const end = await c.waitFor((e) => e.type === 'RUN_FINISHED' || e.type === 'RUN_ERROR', 60000, { from });
      from = c.transcript.indexOf(end) + 1;
      if (end.type !== 'RUN_FINISHED' || end.outcome?.type !== 'interrupt') return { id, end };
      await onGate(c, c.state.gate.stage);
    }
  } finally {
    c.close();
  }
}

test("a rejected Developer's files are replaced by the rerun's, and a retry after a cut stream writes each file once", async () => {
  const scenario = tag('redo');
  const write = (p, content) => ({ name: 'write_file', arguments: { path: p, content } });
  fake.setScenario(scenario, [
    { ok: true }, // analyst
    { toolCalls: [write('README.md', 'r')] },
    { text: '## Overview\nok\n' }, // architect
    { toolCalls: [write('src/v1.js', 'one'), write('src/shared.js', 'v1')] },
    { text: '## Plan v1\n' }, // developer, attempt 1: rejected below
    { toolCalls: [write('src/v2.js', 'two'), write('src/shared.js', 'v2')] },
    { cutAfter: 3 }, // developer, attempt 2: its text is cut, so it is retried
    { toolCalls: [write('src/v2.js', 'two'), write('src/shared.js', 'v2')] },
    { text: '## Plan v2\n' }, // developer, attempt 3
    { ok: true }, // tester
    { ok: true }, // deployer
  ]);
  let rejected = false;
  const { id, end } = await runGated(provider.url, briefFor(scenario), async (c, stage) => {
    if (stage === 'developer' && !rejected) {
      rejected = true;
      assert.deepEqual(Object.keys(c.state.files).sort(), ['README.md', 'src/shared.js', 'src/v1.js']);
      await mustAck(c, { type: 'reject', stage: 'developer', feedback: 'Split it differently.' });
    } else {
      await mustAck(c, { type: 'approve', stage });
    }
  });
  assert.equal(end.type, 'RUN_FINISHED', JSON.stringify(end));
  const tree = await files(provider.url, id);
  assert.deepEqual(tree.files.map((f) => f.path), ['README.md', 'src/shared.js', 'src/v2.js'], 'v1.js went with its attempt');
  for (const f of tree.files) assert.equal(f.versions.length, 1, `${f.path}: one kept version, never mixed or doubled`);
  assert.equal(await (await fetch(`${provider.url}/api/sessions/${id}/files/src/shared.js`)).text(), 'v2');
  const events = await fetchEvents(provider.url, id, 0);
  checkInvariants(events, 'redo');
  assert.ok(events.some((e) => e.type === 'CUSTOM' && e.name === 'agent_error' && e.value.stage === 'developer' && e.value.retryable), 'the cut stream was retried');
});

test('paths that would mislead elsewhere are refused in words: device names, look-alikes, invisible characters, case in any script', async () => {
  // Issue 33: each of these was accepted. The decomposed café.txt is the composed one's file.
  const scenario = tag('misleading');
  const write = (p) => ({ name: 'write_file', arguments: { path: p, content: 'x' } });
  const paths = ['\u00c9lan.md', '\u00e9lan.md', 'CONIN$', 'clock$.txt', '\uff0e\uff0e\uff0fescape.txt', 'invoice\u202etxt.exe', 'zero\u200bwidth.md', 'cafe\u0301.txt', 'caf\u00e9.txt'];
  fake.setScenario(scenario, [{ ok: true }, { toolCalls: paths.map(write) }, { text: '## Overview\nDone.\n' }, { ok: true }, { ok: true }, { ok: true }]);
  const id = await runToEnd(provider.url, briefFor(scenario));
  const events = await fetchEvents(provider.url, id, 0);
  checkInvariants(events, 'misleading');
  const results = events.filter((e) => e.type === 'TOOL_CALL_RESULT').slice(0, paths.length).map((e) => e.content);
  assert.match(results[0], /^Wrote \u00c9lan\.md/);
  assert.match(results[1], /^Error: .*\u00c9lan\.md already exists, and \u00e9lan\.md differs from it only in case/);
  assert.match(results[2], /^Error: .*"CONIN\$" is a reserved device name on Windows/);
  assert.match(results[3], /^Error: .*"clock\$\.txt" is a reserved device name/);
  assert.match(results[4], /^Error: .*reads as "\.\.\/escape\.txt"/);
  assert.match(results[5], /^Error: .*U\+202E/);
  assert.match(results[6], /^Error: .*U\+200B/);
  assert.match(results[7], /^Wrote caf\u00e9\.txt/, 'stored composed (NFC)');
  assert.match(results[8], /^caf\u00e9\.txt already has exactly this content/, 'one file, not two');
  const tree = await files(provider.url, id);
  assert.deepEqual(tree.files.map((f) => f.path).filter((p) => !p.startsWith('src/') && p !== 'README.md'), ['caf\u00e9.txt', '\u00c9lan.md']);
});
