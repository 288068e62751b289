// A private copy of the built Worker (wrangler.toml, build/, frontend/dist/) for a test file's
// `wrangler dev` to run from (startWorker({cwd})). wrangler dev watches its inputs and
// hot-reloads the Worker when they change — which restarts every Durable Object — so a
// rebuild happening meanwhile (`make build` in another terminal) would otherwise inject
// restarts the chaos, restart and security tests did not ask for. The copy pins the build
// that was there when the file started.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, OUTPUT_DIR } from '../support/harness.mjs';

export function snapshotProject(name) {
  const wasm = path.join(ROOT, 'build', 'index_bg.wasm');
  const dist = path.join(ROOT, 'frontend', 'dist', 'index.html');
  for (const f of [wasm, dist]) if (!fs.existsSync(f)) throw new Error(`${path.relative(ROOT, f)} is missing: run \`make build\` first`);
  fs.mkdirSync(path.join(OUTPUT_DIR, 'snapshots'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(OUTPUT_DIR, 'snapshots', `${name}-`));
  fs.copyFileSync(path.join(ROOT, 'wrangler.toml'), path.join(dir, 'wrangler.toml'));
  fs.cpSync(path.join(ROOT, 'build'), path.join(dir, 'build'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'frontend', 'dist'), path.join(dir, 'frontend', 'dist'), { recursive: true });
  // Removed when the test process ends (after the harness has killed its workers).
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
