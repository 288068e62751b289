#!/usr/bin/env node
// Builds the Worker into build/: cargo (wasm32, release) → wasm-bindgen → wasm-opt → one ES
// module bundled by esbuild, with scripts/worker-runtime.mjs as its entry glue.
//
// This is the part of `worker-build` this crate uses. Installing worker-build compiles about
// 200 crates (an HTTPS client and OpenSSL bindings for downloading the tools, which these
// machines cannot do anyway): 350 s of a fresh machine's setup for a few file operations.
// Run after `source scripts/env.sh` (it picks the wasm32 toolchain and the tool paths).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'build');
const STAGING = path.join(ROOT, 'target', 'worker-staging');
const CRATE = 'botarmy';

function run(program, args, options = {}) {
  const started = Date.now();
  const result = spawnSync(program, args, { stdio: 'inherit', cwd: ROOT, ...options });
  if (result.error) throw new Error(`${program}: ${result.error.message}`);
  if (result.status !== 0) {
    console.error(`build-worker: ${path.basename(program)} failed (exit ${result.status})`);
    process.exit(1);
  }
  console.log(`build-worker: ${path.basename(program)} ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function tool(envName, fallback) {
  const found = process.env[envName] || fallback;
  if (!fs.existsSync(found)) {
    console.error(`build-worker: ${envName} (${found}) not found; run scripts/setup.sh`);
    process.exit(1);
  }
  return found;
}

const wasmBindgen = tool('WASM_BINDGEN_BIN', path.join(process.env.HOME ?? '', '.cargo/bin/wasm-bindgen'));
const wasmOpt = tool('WASM_OPT_BIN', path.join(ROOT, 'node_modules/.bin/wasm-opt'));

// 1. The crate, as wasm32.
run('cargo', ['build', '--lib', '--release', '--target', 'wasm32-unknown-unknown']);
const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR)
  : path.join(ROOT, 'target');
const wasmIn = path.join(targetDir, 'wasm32-unknown-unknown', 'release', `${CRATE}.wasm`);

// 2. JS bindings. The reset function and abort handler let worker-runtime.mjs recover from a
// panic with a fresh instance.
fs.rmSync(STAGING, { recursive: true, force: true });
fs.mkdirSync(STAGING, { recursive: true });
run(wasmBindgen, [
  wasmIn, '--out-dir', STAGING, '--out-name', 'index', '--target', 'module', '--no-typescript',
  '--experimental-reset-state-function', '--force-enable-abort-handler',
]);

// 3. Size and speed. Features are listed, not --all-features, so that binaryen never emits an
// encoding workerd does not read yet; the name section stays for readable stack traces.
const wasmOut = path.join(STAGING, 'index_bg.wasm');
const features = ['mutable-globals', 'sign-ext', 'nontrapping-float-to-int', 'bulk-memory',
  'multivalue', 'reference-types', 'exception-handling'].map((f) => `--enable-${f}`);
run(wasmOpt, [wasmOut, '-o', `${wasmOut}.opt`, '-O', ...features, '--debuginfo']);
fs.renameSync(`${wasmOut}.opt`, wasmOut);

// 4. One module: the bindings, the glue, and an export per Durable Object class. The runtime
// reads `export class` names statically, so they are written out here.
const bindings = path.join(STAGING, 'index.js');
// `import source` (source-phase import) is what wasm-bindgen's module target writes; workerd
// reads the plain import of a .wasm file as a WebAssembly.Module.
const bindingsJs = fs.readFileSync(bindings, 'utf8').replace(/\bimport source /g, 'import ');
fs.writeFileSync(bindings, bindingsJs);
const classes = [...bindingsJs.matchAll(/^export class (\w+)/gm)].map((m) => m[1]);
if (!classes.includes('SessionDo')) {
  console.error(`build-worker: no SessionDo among the exported classes (${classes.join(', ')})`);
  process.exit(1);
}
const runtime = path.relative(STAGING, path.join(ROOT, 'scripts', 'worker-runtime.mjs'));
fs.writeFileSync(path.join(STAGING, 'entry.js'), [
  `import { WorkerEntrypoint } from 'cloudflare:workers';`,
  `import * as wasm from './index.js';`,
  `import { makeRuntime } from './${runtime}';`,
  `const { Entrypoint, durableObject } = makeRuntime(wasm, WorkerEntrypoint);`,
  `export default Entrypoint;`,
  ...classes.map((name) => `export const ${name} = durableObject(wasm.${name});`),
  '',
].join('\n'));

const { build } = await import(path.join(ROOT, 'node_modules', 'esbuild', 'lib', 'main.js'));
const started = Date.now();
await build({
  entryPoints: [path.join(STAGING, 'entry.js')],
  outfile: path.join(STAGING, 'worker.js'),
  bundle: true,
  format: 'esm',
  minify: !process.env.NO_MINIFY,
  external: ['./index_bg.wasm', 'cloudflare:*'],
  logLevel: 'warning',
});
console.log(`build-worker: esbuild ${((Date.now() - started) / 1000).toFixed(1)} s`);

// 5. Into build/ only when every step passed: a failed build leaves the last good one.
fs.mkdirSync(OUT, { recursive: true });
fs.copyFileSync(wasmOut, path.join(OUT, 'index_bg.wasm'));
fs.copyFileSync(path.join(STAGING, 'worker.js'), path.join(OUT, 'index.js'));
for (const stale of ['worker', 'package.json']) fs.rmSync(path.join(OUT, stale), { recursive: true, force: true });
console.log(`build-worker: build/index.js, build/index_bg.wasm (${fs.statSync(wasmOut).size} bytes)`);
