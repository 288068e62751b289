// The pipeline's stages for the JavaScript test tools, read from tests/fixtures/stages.json,
// which `cargo test` generates from `Stage::ALL` (src/protocol/wire/tests.rs) and checks for
// drift. The UI's twin is frontend/src/protocol/generated/stages.ts.
import fs from 'node:fs';

const LIST = JSON.parse(fs.readFileSync(new URL('../fixtures/stages.json', import.meta.url), 'utf8'));

/** Wire names, in pipeline order: ['analyst', 'architect', …]. */
export const STAGES = LIST.map((s) => s.stage);
/** Display names (the AG-UI message `name`): {analyst: 'Analyst', …}. */
export const NAMES = Object.fromEntries(LIST.map((s) => [s.stage, s.title]));
