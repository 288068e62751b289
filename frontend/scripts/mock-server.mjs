#!/usr/bin/env node
// A stand-in for the BotArmy Worker for UI development and for checking the UI in a browser
// without building the Rust Worker: it serves frontend/dist and speaks docs/protocol.md (HTTP
// API, WebSocket with hello/replay/caught_up, commands with ack/rejected, runs, gates, retries)
// with a tiny in-memory session machine and demo text. It is NOT the product: the real Worker
// is the reference; this only has to be faithful enough to exercise every UI state.
//
//   node scripts/mock-server.mjs [--port 8788]        (after `npm run build`)
//
// Fault hooks, for trying the UI's error paths by hand or from a test:
//   - a brief containing "#fail-once" makes the Analyst's first attempt fail mid-stream with a
//     retryable rate_limited error (retried after 3 s);
//   - a brief containing "#fail" (not "#fail-once") makes the Analyst fail with bad_key: RUN_ERROR;
//   - POST /__mock/drop closes every WebSocket (code 1012) so clients reconnect and catch up;
//   - POST /__mock/drop?down=5000 also refuses upgrades for 5 s.
// Commands: start {brief, approval, models?}, approve, reject, pause, resume, cancel, retry and
// rerun {stage, feedback?}.
//
// Models and money (--models, or MOCK_MODELS=1): the mock acts as a Worker with two providers:
// GET /api/models offers each stage OpenAI and Anthropic models with prices (and one without a
// known price), `start.models` picks them (a choice not offered is refused invalid_field), each
// agent's `model`, `costMicroUsd` and `priceKnown` and the run's `costMicroUsd`, `priceKnown`
// and `budgetMicroUsd` follow in the state (cost = 400 input tokens and ~chars/4 output tokens at
// the model's prices, rounded up), and the model "thinks" (REASONING_* events): the Architect
// before its answer, the Developer again between two of its tool rounds. `--budget USD` (or
// MOCK_BUDGET_USD) sets a dollar budget: the next stage is not started once it is spent
// (RUN_ERROR budget_exhausted, and `start` is refused budget_exhausted). Without --models the mock
// is in demo mode as before (no model, nothing costs, GET /api/models says demo; a brief with
// "#think" makes the Architect think there too).
//
// View-only links as the Worker has them: POST/GET /api/sessions/{id}/views, DELETE
// .../views/{viewId}; a view key (`v` + 96 hex) reads the session (snapshot, events, artifacts,
// files, WebSocket with welcome.readOnly, every command rejected read_only) and never sees the id.
//
// "Your sessions" as the Worker has them, per owner (the `X-BotArmy-Owner` header, 32 hex; the
// mock has no access token): GET /api/sessions?q= (most recently active first, at most 100, q a
// case-insensitive name substring), POST /api/sessions with the header lists the new session,
// POST / DELETE /api/sessions/{key}/remember (a view key is listed read-only under itself), PATCH
// /api/sessions/{id} {name} (1–120 characters after trimming), DELETE /api/sessions/{id} (the
// session, its views, its sockets closed with 4404, and every owner's row). A session is named
// after its brief (60 characters) until renamed. In memory, like everything here.
//
// Project files as docs/protocol.md has them: each agent's answer interleaves its text with tool
// calls (TOOL_CALL_START / _ARGS in pieces cut anywhere / _END / _RESULT) that write, read, list and
// delete files; the state's `files` map follows by STATE_DELTA (`/` escaped as `~1`); GET
// /files, /files/{path}[?version=K] and /project.zip (a real zip, fflate) serve them. The demo
// project: the Analyst lists and writes docs/requirements.md; the Architect README.md,
// package.json and docs/architecture.md; the Developer src/app.js, then src/store.js and
// src/index.html at once (two calls open together), then src/app.js again (a second version to
// diff); the Tester reads src/app.js, fails one write (a path outside the project: an `Error: `
// result) and writes test/app.test.js; the Deployer writes Dockerfile and README.md again.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import crypto from "node:crypto";
import { WebSocketServer } from "ws";
import { strToU8, zipSync } from "fflate";

const args = process.argv.slice(2);
const portArg = args.indexOf("--port");
const PORT = portArg >= 0 ? Number(args[portArg + 1]) : Number(process.env.PORT ?? 8788);
const DIST = path.resolve(import.meta.dirname, "../dist");
// The stage list `cargo test` generates from `Stage::ALL` (checked for drift there).
const STAGE_LIST = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, "../../tests/fixtures/stages.json"), "utf8"));
const STAGES = STAGE_LIST.map((s) => s.stage);
const TITLE = Object.fromEntries(STAGE_LIST.map((s) => [s.stage, s.title]));
const TOKEN_MS = Number(process.env.MOCK_TOKEN_MS ?? 12);
const MODELS_MODE = args.includes("--models") || process.env.MOCK_MODELS === "1";
const budgetArg = args.indexOf("--budget");
const BUDGET_USD = budgetArg >= 0 ? Number(args[budgetArg + 1]) : process.env.MOCK_BUDGET_USD ? Number(process.env.MOCK_BUDGET_USD) : null;
const BUDGET_MICRO_USD = MODELS_MODE && BUDGET_USD !== null && Number.isFinite(BUDGET_USD) ? Math.round(BUDGET_USD * 1_000_000) : null;

// The catalog in --models mode: prices in micro-dollars per million tokens (null: unknown).
const MODELS = {
  "openai:gpt-4o-mini": { provider: "openai", model: "gpt-4o-mini", price: { input: 150_000, output: 600_000, cachedInput: 75_000 } },
  "openai:gpt-4.1": { provider: "openai", model: "gpt-4.1", price: { input: 2_000_000, output: 8_000_000, cachedInput: 500_000 } },
  "anthropic:claude-sonnet-4-5": { provider: "anthropic", model: "claude-sonnet-4-5", price: { input: 3_000_000, output: 15_000_000, cachedInput: 300_000 } },
  "anthropic:claude-haiku-4-5": { provider: "anthropic", model: "claude-haiku-4-5", price: { input: 1_000_000, output: 5_000_000, cachedInput: 100_000 } },
  "openai:house-model": { provider: "openai", model: "house-model", price: null },
};
const DEFAULT_MODEL = { analyst: "openai:gpt-4o-mini", architect: "anthropic:claude-sonnet-4-5", developer: "openai:gpt-4.1", tester: "openai:gpt-4o-mini", deployer: "anthropic:claude-haiku-4-5" };
/** What each stage may use: its default first. The Tester may also use a model without a price. */
function offeredIds(stage) {
  const ids = [DEFAULT_MODEL[stage] ?? "openai:gpt-4o-mini", ...Object.keys(MODELS).filter((id) => id !== "openai:house-model")];
  if (stage === "tester") ids.push("openai:house-model");
  return [...new Set(ids)];
}
function catalog() {
  if (!MODELS_MODE) return { demo: true, providers: [], stages: [], budgetMicroUsd: null };
  return {
    demo: false,
    providers: ["openai", "anthropic"],
    stages: STAGES.map((stage) => ({ stage, default: offeredIds(stage)[0], offered: offeredIds(stage).map((id) => ({ id, ...MODELS[id] })) })),
    budgetMicroUsd: BUDGET_MICRO_USD,
  };
}
function formatUsd(micro) {
  let text = (micro / 1_000_000).toFixed(6);
  while (text.endsWith("0") && !/\.\d\d$/.test(text)) text = text.slice(0, -1);
  return `$${text}`;
}

const sessions = new Map();
/** view key → { id, createdAt, session } */
const views = new Map();
/** owner key → Map(key → { key, readOnly, session, createdAt }) */
const owners = new Map();
const MAX_LIST = 100;
const MAX_NAME_CHARS = 120;
const MAX_QUERY_CHARS = 100;
let downUntil = 0;
const MAX_VIEWS = 20;

// ---------------------------------------------------------------------------------------------
// Session machine

function freshAgent(model = null) {
  return { status: "idle", progress: 0, attempts: 0, inputTokens: 0, outputTokens: 0, startedAt: null, finishedAt: null, nextRetryAt: null, lastError: null, version: 0, cached: false, model, costMicroUsd: 0, priceKnown: true };
}

function newSession(id) {
  return {
    id,
    log: [],
    sockets: new Set(),
    /** Set by a rename; until then the name is the brief's start. */
    name: null,
    createdAt: Date.now(),
    /** When anything last happened (an event logged, a rename): "most recently active". */
    activeAt: Date.now(),
    runs: 0,
    msgs: 0,
    timer: null,
    brief: "",
    feedback: null,
    failOnce: false,
    failHard: false,
    artifacts: Object.fromEntries(STAGES.map((s) => [s, []])),
    call: null, // { stage, messageId, steps, step, text, sent, total, version }
    seenIds: new Set(),
    /** path → { versions: [{ version, stage, attempt, bytes, deleted, content }] } (oldest first) */
    files: new Map(),
    fileVersion: 0,
    calls: 0,
    reasons: 0,
    think: MODELS_MODE,
    /** The model of each stage for the current run (start.models over the defaults). */
    models: {},
    state: {
      sessionId: id,
      demo: !MODELS_MODE,
      model: MODELS_MODE ? "openai:gpt-4o-mini" : "demo",
      run: { status: "idle", approval: null, stage: null, runId: null, pauseRequested: false, tokensUsed: 0, tokenBudget: 200000, startedAt: null, finishedAt: null, error: null, costMicroUsd: 0, priceKnown: true, budgetMicroUsd: BUDGET_MICRO_USD },
      gate: null,
      agents: Object.fromEntries(STAGES.map((s) => [s, freshAgent()])),
      files: {},
    },
  };
}

function send(ws, frame) {
  if (ws.readyState !== 1) return;
  const text = JSON.stringify(frame);
  // A viewer's frames name the session by the view key, never by its id.
  ws.send(ws.view ? text.replaceAll(ws.view.session.id, ws.view.key) : text);
}

/** A body as a viewer sees it: the session id replaced by the view key. */
function masked(view, body) {
  return view ? JSON.parse(JSON.stringify(body).replaceAll(view.session.id, view.key)) : body;
}

/** The session a key opens, and whether it is a view key. */
function lookup(key) {
  if (/^[0-9a-f]{32}$/.test(key)) {
    const s = sessions.get(key);
    return s ? { s, view: null } : null;
  }
  const view = /^v[0-9a-f]{96}$/.test(key) ? views.get(key) : undefined;
  return view ? { s: view.session, view } : null;
}

function emit(s, event) {
  s.activeAt = Date.now();
  const logged = { seq: s.log.length + 1, timestamp: Date.now(), ...event };
  s.log.push(logged);
  for (const ws of s.sockets) if (ws.live) send(ws, logged);
}

function setPath(obj, p, value) {
  const parts = p.split("/").slice(1);
  const last = parts.pop();
  let node = obj;
  for (const k of parts) node = node[k];
  node[last] = value;
}

function delta(s, ops) {
  for (const op of ops) setPath(s.state, op.path, op.value);
  emit(s, { type: "STATE_DELTA", delta: ops.map((o) => ({ op: "replace", ...o })) });
}

function startRun(s) {
  s.runs += 1;
  s.state.run.runId = `run-${s.runs}`;
  emit(s, { type: "RUN_STARTED", threadId: s.id, runId: s.state.run.runId });
  emit(s, { type: "STATE_SNAPSHOT", snapshot: structuredClone(s.state) });
}

function userMessage(s, text) {
  const id = `m-${++s.msgs}`;
  emit(s, { type: "TEXT_MESSAGE_START", messageId: id, role: "user", name: "You" });
  emit(s, { type: "TEXT_MESSAGE_CONTENT", messageId: id, delta: text });
  emit(s, { type: "TEXT_MESSAGE_END", messageId: id });
}

function answer(s, stage, version) {
  const quote = s.brief.slice(0, 80);
  let text = `# ${TITLE[stage]} report\n\n_Mock server: sample ${TITLE[stage]} output, version ${version}, for the brief “${quote}”._\n\n## Summary\n\nA first release that covers the core flow for its main users.\n\n## Points\n\n1. **Must**: sign up, sign in, sign out.\n2. **Must**: create, view, edit and delete items.\n3. **Should**: notify on changes.\n\n| Item | Owner | Effort |\n|---|---|---|\n| API | backend | M |\n| UI | frontend | M |\n\n\`\`\`ts\nexport const stage = "${stage}";\n\`\`\`\n`;
  if (s.feedback) text += `\n## Changes in version ${version}\n\nYou asked: “${s.feedback.slice(0, 120)}”\n\n- Reworked the affected parts.\n`;
  return text;
}

// ---------------------------------------------------------------------------------------------
// Project files

const LIMITS = { files: 200, fileBytes: 262144, workspaceBytes: 4194304, toolRounds: 12 };

/** A JSON Pointer token for a file path (RFC 6901: `~` → `~0`, `/` → `~1`). */
const pointer = (p) => `/files/${p.replaceAll("~", "~0").replaceAll("/", "~1")}`;

function badPath(p) {
  if (typeof p !== "string" || p === "") return "the path is empty";
  if (p.startsWith("/") || p.includes("\\")) return `the path ${p} must be relative, with / between folders`;
  if (p.split("/").some((seg) => seg === "" || seg === "." || seg === "..")) return `the path ${p} leaves the project or has an empty, . or .. segment`;
  return null;
}

const current = (f) => {
  const last = f?.versions.at(-1);
  return last && !last.deleted ? last : null;
};

function fileOps(s, p) {
  const now = current(s.files.get(p));
  const had = Object.prototype.hasOwnProperty.call(s.state.files, p);
  if (now) {
    s.state.files[p] = { bytes: now.bytes, version: now.version, stage: now.stage };
    return [{ op: had ? "replace" : "add", path: pointer(p), value: s.state.files[p] }];
  }
  if (!had) return [];
  delete s.state.files[p];
  return [{ op: "remove", path: pointer(p) }];
}

/** Runs one tool call against the session's files; returns the tool's answer. */
function runTool(s, stage, name, argsText) {
  let args;
  try {
    args = JSON.parse(argsText);
  } catch {
    return "Error: the arguments are not valid JSON.";
  }
  const attempt = s.state.agents[stage].attempts;
  if (name === "list_files") {
    const paths = [...s.files.keys()].filter((p) => current(s.files.get(p))).sort();
    return paths.length ? paths.map((p) => `${p} (${current(s.files.get(p)).bytes} bytes)`).join("\n") : "The project has no files yet.";
  }
  const bad = badPath(args.path);
  if (bad) return `Error: ${bad}.`;
  const file = s.files.get(args.path);
  if (name === "read_file") return current(file)?.content ?? `Error: ${args.path} is not in the project.`;
  if (name === "delete_file") {
    if (!current(file)) return `Error: ${args.path} is not in the project.`;
    file.versions.push({ version: ++s.fileVersion, stage, attempt, bytes: 0, deleted: true, content: "" });
    emit(s, { type: "STATE_DELTA", delta: fileOps(s, args.path) });
    return `Deleted ${args.path}.`;
  }
  if (name !== "write_file") return `Error: there is no tool called ${name}.`;
  if (typeof args.content !== "string") return "Error: write_file needs a content string.";
  const bytes = Buffer.byteLength(args.content);
  if (bytes > LIMITS.fileBytes) return `Error: ${args.path} would be ${bytes} bytes; a file may have at most ${LIMITS.fileBytes}.`;
  const isNew = !current(file);
  if (!file) s.files.set(args.path, { versions: [] });
  s.files.get(args.path).versions.push({ version: ++s.fileVersion, stage, attempt, bytes, deleted: false, content: args.content });
  emit(s, { type: "STATE_DELTA", delta: fileOps(s, args.path) });
  return `Wrote ${args.path} (${bytes} bytes${isNew ? ", new file" : ""}).`;
}

/** A new attempt of a stage begins: the files its earlier attempts wrote are dropped. */
function dropStageFiles(s, stage) {
  const ops = [];
  for (const [p, f] of s.files) {
    const kept = f.versions.filter((v) => v.stage !== stage);
    if (kept.length === f.versions.length) continue;
    f.versions = kept;
    ops.push(...fileOps(s, p));
    if (kept.length === 0) s.files.delete(p);
  }
  if (ops.length) emit(s, { type: "STATE_DELTA", delta: ops });
}

function projectFileList(s) {
  const files = [...s.files.entries()]
    .filter(([, f]) => current(f))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([p, f]) => {
      const c = current(f);
      return { path: p, bytes: c.bytes, version: c.version, stage: c.stage, attempt: c.attempt, versions: f.versions.map((v) => ({ version: v.version, stage: v.stage, bytes: v.bytes, deleted: v.deleted })) };
    });
  return { files, bytes: files.reduce((n, f) => n + f.bytes, 0), limits: LIMITS };
}

/** The current project as a zip: files at the root, sorted, deflated, every time 1980-01-01. */
function projectZip(s) {
  const entries = {};
  for (const f of projectFileList(s).files) entries[f.path] = [strToU8(current(s.files.get(f.path)).content), { mtime: new Date(1980, 0, 1, 0, 0, 0) }];
  return zipSync(entries, { level: 6 });
}

/** The demo files each stage writes (content mentions the brief only as text). */
function demoFiles(s, stage, version) {
  const title = s.brief.split("\n")[0].slice(0, 60) || "Demo project";
  const v = version > 1 ? ` (version ${version})` : "";
  switch (stage) {
    case "analyst":
      return {
        "docs/requirements.md": `# Requirements${v}\n\nBrief: ${title}\n\n## Must\n\n- Sign up, sign in, sign out.\n- Create, view, edit and delete items.\n\n## Should\n\n- Notify on changes.\n`,
      };
    case "architect":
      return {
        "README.md": `# ${title}\n\nA small web app planned by BotArmy${v}.\n\n## Layout\n\n- \`src/\`: the app\n- \`test/\`: the tests\n`,
        "package.json": `${JSON.stringify({ name: "botarmy-demo", version: "0.1.0", private: true, type: "module", scripts: { start: "node src/app.js", test: "node --test test/" } }, null, 2)}\n`,
        "docs/architecture.md": `# Architecture\n\n| Part | Owner |\n|---|---|\n| API | backend |\n| UI | frontend |\n`,
      };
    case "developer":
      return {
        "src/app.js": `// ${title.replaceAll("\n", " ")}\nimport http from "node:http";\nimport { Store } from "./store.js";\n\nconst store = new Store();\n\nexport function handle(req, res) {\n  if (req.url === "/items") {\n    res.setHeader("content-type", "application/json");\n    return res.end(JSON.stringify(store.all()));\n  }\n  res.statusCode = 404;\n  res.end("not found");\n}\n\nhttp.createServer(handle).listen(3000);\n`,
        "src/store.js": `export class Store {\n  #items = new Map();\n\n  add(item) {\n    const id = this.#items.size + 1;\n    this.#items.set(id, { id, ...item });\n    return id;\n  }\n\n  all() {\n    return [...this.#items.values()];\n  }\n}\n`,
        "src/index.html": `<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="utf-8" />\n    <title>Demo</title>\n  </head>\n  <body>\n    <ul id="items"></ul>\n  </body>\n</html>\n`,
      };
    case "tester":
      return {
        "test/app.test.js": `import assert from "node:assert/strict";\nimport { test } from "node:test";\nimport { Store } from "../src/store.js";\n\ntest("the store keeps what is added", () => {\n  const store = new Store();\n  store.add({ name: "milk" });\n  assert.equal(store.all().length, 1);\n});\n`,
      };
    default:
      return {
        Dockerfile: `FROM node:22-alpine\nWORKDIR /app\nCOPY package.json ./\nCOPY src ./src\nEXPOSE 3000\nCMD ["node", "src/app.js"]\n`,
      };
  }
}

const call = (name, args) => ({ name, args: JSON.stringify(args) });

/**
 * An answer as steps: text, and tool calls (a step with several calls streams their arguments
 * interleaved, all open at once).
 */
function answerSteps(s, stage, version) {
  const text = answer(s, stage, version);
  const cut = text.indexOf("\n## Points");
  const head = cut > 0 ? text.slice(0, cut + 1) : text;
  const tail = cut > 0 ? text.slice(cut + 1) : "";
  const files = demoFiles(s, stage, version);
  const writes = Object.entries(files).map(([p, content]) => ({ calls: [call("write_file", { path: p, content })] }));
  let tools;
  const think = (text) => (s.think ? [{ think: text }] : []);
  switch (stage) {
    case "analyst":
      tools = [{ calls: [call("list_files", {})] }, ...writes];
      break;
    case "architect":
      // The model thinks before its answer begins (the answer message starts after it).
      return [
        ...think(`The brief asks for “${s.brief.slice(0, 40)}”. A monolith is enough for a first release; services would only add moving parts.\n\nI will write the README, the package file and the architecture notes.`),
        { text: head },
        ...writes,
        { text: tail },
      ].filter((step) => step.calls || step.text || step.think);
    case "developer": {
      const improved = files["src/app.js"].replace("const store = new Store();", "// Items survive a restart: the store is saved on every change.\nconst store = new Store();\nprocess.on(\"SIGTERM\", () => process.exit(0));");
      tools = [
        { calls: [call("write_file", { path: "src/app.js", content: files["src/app.js"] })] },
        { calls: [call("write_file", { path: "src/store.js", content: files["src/store.js"] }), call("write_file", { path: "src/index.html", content: files["src/index.html"] })] },
        // Thinking again between tool rounds: inside the answer that has begun.
        ...think("The app does not survive a restart yet. One more pass over src/app.js should fix that."),
        { text: "\nOne more pass over the app.\n\n" },
        { calls: [call("write_file", { path: "src/app.js", content: improved })] },
      ];
      break;
    }
    case "tester":
      tools = [{ calls: [call("read_file", { path: "src/app.js" })] }, { calls: [call("write_file", { path: "../outside.js", content: "// not allowed\n" })] }, ...writes];
      break;
    case "deployer":
      tools = [
        ...writes,
        { calls: [call("write_file", { path: "README.md", content: `${current(s.files.get("README.md"))?.content ?? "# Demo\n"}\n## Run it\n\n\`\`\`sh\ndocker build -t demo .\ndocker run -p 3000:3000 demo\n\`\`\`\n` })] },
      ];
      break;
    default:
      tools = writes;
  }
  return [{ text: head }, ...tools, { text: tail }].filter((step) => step.calls || step.text || step.think);
}

function clearTimer(s) {
  if (s.timer) clearTimeout(s.timer);
  s.timer = null;
}

/** The dollar budget is spent: the stage is not started and the run ends (as the Worker does). */
function budgetStops(s, stage) {
  const run = s.state.run;
  if (run.budgetMicroUsd === null || run.costMicroUsd < run.budgetMicroUsd) return false;
  const spent = formatUsd(run.costMicroUsd);
  const budget = formatUsd(run.budgetMicroUsd);
  emit(s, { type: "CUSTOM", name: "agent_error", value: { stage, code: "budget_exhausted", message: "The session's dollar budget is used up.", detail: `${spent} of ${budget} spent`, retryable: false, nextRetryAt: null, attempt: 0 } });
  const message = `This session has spent ${spent} of its ${budget} budget, so the ${TITLE[stage]} was not started. Open a new session to continue.`;
  const ops = [
    { path: "/run/status", value: "failed" },
    { path: "/run/stage", value: stage },
    { path: "/run/finishedAt", value: Date.now() },
    { path: "/run/error", value: { code: "budget_exhausted", message } },
  ];
  for (const other of STAGES) if (s.state.agents[other].status === "queued") ops.push({ path: `/agents/${other}/status`, value: "idle" });
  delta(s, ops);
  emit(s, { type: "RUN_ERROR", message, code: "budget_exhausted" });
  return true;
}

function runStage(s, stage) {
  if (budgetStops(s, stage)) return;
  const a = s.state.agents[stage];
  delta(s, [
    { path: "/run/stage", value: stage },
    { path: "/run/status", value: "running" },
    { path: `/agents/${stage}/status`, value: "thinking" },
    { path: `/agents/${stage}/attempts`, value: a.attempts + 1 },
    { path: `/agents/${stage}/startedAt`, value: a.startedAt ?? Date.now() },
    { path: `/agents/${stage}/finishedAt`, value: null },
    { path: `/agents/${stage}/nextRetryAt`, value: null },
    { path: `/agents/${stage}/progress`, value: 0 },
  ]);
  emit(s, { type: "STEP_STARTED", stepName: stage });
  dropStageFiles(s, stage);
  s.timer = setTimeout(() => {
    const messageId = `m-${++s.msgs}`;
    const version = s.artifacts[stage].length + 1;
    const steps = answerSteps(s, stage, version);
    const total = steps.reduce((n, st) => n + (st.text?.length ?? 0) + (st.think?.length ?? 0) + (st.calls ?? []).reduce((m, c) => m + c.args.length, 0), 0);
    // `started`: the answer message has begun (a model that thinks first begins it later).
    s.call = { stage, messageId, steps, step: 0, text: "", sent: 0, total, version, started: false, reasoning: null };
    pump(s);
  }, 250);
}

/** The answer message begins (at its first text or tool call). */
function beginMessage(s) {
  const c = s.call;
  if (c.started) return;
  c.started = true;
  emit(s, { type: "TEXT_MESSAGE_START", messageId: c.messageId, role: "assistant", name: TITLE[c.stage] });
  delta(s, [{ path: `/agents/${c.stage}/status`, value: "streaming" }]);
}

/** Closes the reasoning message and span, if one is open (before text, tools or an interruption). */
function endReasoning(s) {
  const c = s.call;
  if (!c?.reasoning) return;
  emit(s, { type: "REASONING_MESSAGE_END", messageId: c.reasoning });
  emit(s, { type: "REASONING_END", messageId: c.reasoning });
  c.reasoning = null;
}

/** One tick of the answer: a piece of text, or a piece of each open call's arguments. */
function pump(s) {
  const c = s.call;
  if (!c) return;
  if (s.failOnce && c.stage === "analyst" && c.sent > c.total / 3) {
    s.failOnce = false;
    return failAttempt(s, { code: "rate_limited", message: "The AI provider asked us to slow down.", retryable: true, delay: 3000 });
  }
  if (s.failHard && c.stage === "analyst" && c.sent > 40) {
    s.failHard = false;
    return failAttempt(s, { code: "bad_key", message: "The AI provider rejected the API key.", retryable: false });
  }
  const step = c.steps[c.step];
  if (!step) return finishStage(s);
  if (step.think !== undefined) {
    if (!c.reasoning) {
      c.reasoning = `reason-${++s.reasons}`;
      emit(s, { type: "REASONING_START", messageId: c.reasoning });
      emit(s, { type: "REASONING_MESSAGE_START", messageId: c.reasoning, role: "reasoning" });
    }
    step.pos ??= 0;
    const piece = step.think.slice(step.pos, step.pos + 2 + Math.floor(Math.random() * 8));
    step.pos += piece.length;
    c.sent += piece.length;
    if (piece) emit(s, { type: "REASONING_MESSAGE_CONTENT", messageId: c.reasoning, delta: piece });
    if (step.pos >= step.think.length) {
      endReasoning(s);
      c.step += 1;
    }
    s.timer = setTimeout(() => pump(s), TOKEN_MS * 2);
    return;
  }
  beginMessage(s);
  if (step.text !== undefined) {
    step.pos ??= 0;
    const piece = step.text.slice(step.pos, step.pos + 1 + Math.floor(Math.random() * 8));
    step.pos += piece.length;
    c.text += piece;
    c.sent += piece.length;
    if (piece) emit(s, { type: "TEXT_MESSAGE_CONTENT", messageId: c.messageId, delta: piece });
    if (step.pos >= step.text.length) c.step += 1;
  } else {
    if (!step.started) {
      step.started = true;
      for (const tc of step.calls) {
        tc.id = `tc-${++s.calls}`;
        tc.pos = 0;
        emit(s, { type: "TOOL_CALL_START", toolCallId: tc.id, toolCallName: tc.name, parentMessageId: c.messageId });
      }
    }
    // Arguments arrive in pieces cut at any character, the open calls' pieces interleaved.
    for (const tc of step.calls) {
      if (tc.pos >= tc.args.length) continue;
      const piece = tc.args.slice(tc.pos, tc.pos + 6 + Math.floor(Math.random() * 24));
      tc.pos += piece.length;
      c.sent += piece.length;
      emit(s, { type: "TOOL_CALL_ARGS", toolCallId: tc.id, delta: piece });
    }
    if (step.calls.every((tc) => tc.pos >= tc.args.length)) {
      for (const tc of step.calls) emit(s, { type: "TOOL_CALL_END", toolCallId: tc.id });
      for (const tc of step.calls) {
        const content = runTool(s, c.stage, tc.name, tc.args);
        emit(s, { type: "TOOL_CALL_RESULT", messageId: `tool-${tc.id}`, toolCallId: tc.id, content, role: "tool" });
      }
      c.step += 1;
    }
  }
  const pct = Math.floor((c.sent / Math.max(1, c.total)) * 95);
  if (pct >= s.state.agents[c.stage].progress + 5) delta(s, [{ path: `/agents/${c.stage}/progress`, value: pct }]);
  s.timer = setTimeout(() => pump(s), TOKEN_MS);
}

function closeMessage(s, reason) {
  const c = s.call;
  if (!c) return;
  endReasoning(s);
  if (c.started) {
    emit(s, { type: "TEXT_MESSAGE_END", messageId: c.messageId });
    emit(s, { type: "CUSTOM", name: "message_interrupted", value: { messageId: c.messageId, stage: c.stage, reason } });
  }
  emit(s, { type: "STEP_FINISHED", stepName: c.stage });
  s.call = null;
}

function failAttempt(s, f) {
  const stage = s.call.stage;
  closeMessage(s, f.retryable ? "retry" : "failed");
  const a = s.state.agents[stage];
  const error = { code: f.code, message: f.message };
  if (f.retryable) {
    const at = Date.now() + f.delay;
    emit(s, { type: "CUSTOM", name: "agent_error", value: { stage, code: f.code, message: f.message, retryable: true, nextRetryAt: at, attempt: a.attempts } });
    delta(s, [
      { path: `/agents/${stage}/status`, value: "retrying" },
      { path: `/agents/${stage}/nextRetryAt`, value: at },
      { path: `/agents/${stage}/lastError`, value: error },
    ]);
    s.timer = setTimeout(() => runStage(s, stage), f.delay);
    return;
  }
  emit(s, { type: "CUSTOM", name: "agent_error", value: { stage, code: f.code, message: f.message, retryable: false, nextRetryAt: null, attempt: a.attempts } });
  delta(s, [
    { path: `/agents/${stage}/status`, value: "failed" },
    { path: `/agents/${stage}/finishedAt`, value: Date.now() },
    { path: `/agents/${stage}/lastError`, value: { code: f.code, message: `${f.message} The run stopped.` } },
    { path: "/run/status", value: "failed" },
    { path: "/run/finishedAt", value: Date.now() },
    { path: "/run/error", value: { code: f.code, message: `${f.message} The run stopped.` } },
  ]);
  emit(s, { type: "RUN_ERROR", message: `${f.message} The run stopped.`, code: f.code });
}

function finishStage(s) {
  const c = s.call;
  s.call = null;
  const { stage, version, messageId, text } = c;
  emit(s, { type: "TEXT_MESSAGE_END", messageId });
  emit(s, { type: "STEP_FINISHED", stepName: stage });
  s.artifacts[stage].push({ version, text, createdAt: Date.now(), feedback: s.feedback });
  emit(s, { type: "CUSTOM", name: "artifact", value: { stage, version, chars: [...text].length } });
  const a = s.state.agents[stage];
  const tokens = Math.ceil(text.length / 4);
  // Money as the Worker counts it: micro-dollars at the model's prices (0 and priceKnown false
  // for a model without a price); nothing in demo mode.
  const price = a.model ? MODELS[a.model]?.price : undefined;
  const cost = price ? Math.ceil((400 * price.input + tokens * price.output) / 1_000_000) : 0;
  const known = !a.model || Boolean(price);
  const ops = [
    { path: `/agents/${stage}/costMicroUsd`, value: a.costMicroUsd + cost },
    { path: `/agents/${stage}/priceKnown`, value: a.priceKnown && known },
    { path: "/run/costMicroUsd", value: s.state.run.costMicroUsd + cost },
    { path: "/run/priceKnown", value: s.state.run.priceKnown && known },
    { path: `/agents/${stage}/version`, value: version },
    { path: `/agents/${stage}/progress`, value: 100 },
    { path: `/agents/${stage}/inputTokens`, value: a.inputTokens + 400 },
    { path: `/agents/${stage}/outputTokens`, value: a.outputTokens + tokens },
    { path: `/agents/${stage}/finishedAt`, value: Date.now() },
    { path: `/agents/${stage}/lastError`, value: null },
    { path: "/run/tokensUsed", value: s.state.run.tokensUsed + 400 + tokens },
  ];
  s.feedback = null;
  if (s.state.run.approval === "each_stage") {
    ops.push(
      { path: `/agents/${stage}/status`, value: "waiting_approval" },
      { path: "/run/status", value: "waiting_approval" },
      { path: "/gate", value: { id: `gate-${stage}-${version}`, stage, version } },
    );
    delta(s, ops);
    emit(s, {
      type: "RUN_FINISHED",
      threadId: s.id,
      runId: s.state.run.runId,
      outcome: { type: "interrupt", interrupts: [{ id: `gate-${stage}-${version}`, reason: "approval", message: `The ${TITLE[stage]} finished version ${version}. Approve it or ask for changes.` }] },
    });
    return;
  }
  ops.push({ path: `/agents/${stage}/status`, value: "done" });
  delta(s, ops);
  next(s, stage);
}

function next(s, stage) {
  const i = STAGES.indexOf(stage);
  if (i === STAGES.length - 1) {
    delta(s, [
      { path: "/run/status", value: "completed" },
      { path: "/run/stage", value: null },
      { path: "/run/finishedAt", value: Date.now() },
    ]);
    emit(s, { type: "RUN_FINISHED", threadId: s.id, runId: s.state.run.runId, outcome: { type: "success" } });
    return;
  }
  if (s.state.run.pauseRequested) {
    delta(s, [
      { path: "/run/status", value: "paused" },
      { path: "/run/pauseRequested", value: false },
      { path: "/run/stage", value: STAGES[i + 1] },
    ]);
    return;
  }
  runStage(s, STAGES[i + 1]);
}

// ---------------------------------------------------------------------------------------------
// Commands

function reject(ws, cmd, code, message) {
  send(ws, { type: "CUSTOM", name: "rejected", value: { id: cmd?.id ?? null, command: cmd?.type ?? null, code, message } });
}

function handle(s, ws, raw) {
  if (raw === "ping") return ws.send("pong");
  let cmd;
  try {
    cmd = JSON.parse(raw);
  } catch {
    return reject(ws, null, "invalid_json", "That frame is not JSON.");
  }
  if (typeof cmd !== "object" || cmd === null || Array.isArray(cmd)) return reject(ws, null, "not_an_object", "A command must be a JSON object.");
  if (cmd.type === "hello") {
    const lastSeq = Number(cmd.lastSeq) || 0;
    const snapshot = s.log.length === 0 || lastSeq > s.log.length;
    send(ws, { type: "CUSTOM", name: "welcome", value: { sessionId: s.id, demo: s.state.demo, model: s.state.model, lastSeq: snapshot ? s.log.length : lastSeq, mode: snapshot ? "snapshot" : "replay", readOnly: !!ws.view } });
    if (snapshot) {
      send(ws, { type: "STATE_SNAPSHOT", snapshot: s.state });
      send(ws, { type: "MESSAGES_SNAPSHOT", messages: [] });
    } else {
      for (const e of s.log.slice(lastSeq)) send(ws, e);
    }
    send(ws, { type: "CUSTOM", name: "caught_up", value: { lastSeq: s.log.length } });
    ws.live = true;
    return;
  }
  if (cmd.type === "ping") return send(ws, { type: "CUSTOM", name: "pong", value: { t: Date.now() } });
  if (!ws.live) return reject(ws, cmd, "hello_required", "Send hello first.");
  if (ws.view) return reject(ws, cmd, "read_only", "This is a view-only link: it cannot change the session.");
  if (cmd.id && s.seenIds.has(cmd.id)) return send(ws, { type: "CUSTOM", name: "ack", value: { id: cmd.id, command: cmd.type, duplicate: true } });
  const st = s.state;
  const ok = () => {
    if (cmd.id) s.seenIds.add(cmd.id);
    send(ws, { type: "CUSTOM", name: "ack", value: { id: cmd.id ?? null, command: cmd.type, duplicate: false } });
  };
  const finished = ["idle", "completed", "failed", "cancelled"].includes(st.run.status);
  switch (cmd.type) {
    case "start": {
      const brief = typeof cmd.brief === "string" ? cmd.brief.trim() : "";
      if (!brief) return reject(ws, cmd, "brief_empty", "The brief is empty.");
      if ([...brief].length > 8000) return reject(ws, cmd, "brief_too_long", `The brief has ${[...brief].length} characters; the limit is 8000.`);
      if (!finished) return reject(ws, cmd, "invalid_state", "A run is already in progress.");
      // start.models: each choice one that stage offers; none at all in demo mode.
      const models = {};
      if (cmd.models !== undefined) {
        if (typeof cmd.models !== "object" || cmd.models === null || Array.isArray(cmd.models)) return reject(ws, cmd, "invalid_field", "models must be an object of stage → provider:model.");
        for (const [stage, id] of Object.entries(cmd.models)) {
          if (!STAGES.includes(stage)) return reject(ws, cmd, "invalid_field", `models: there is no stage "${stage}".`);
          if (!MODELS_MODE) return reject(ws, cmd, "invalid_field", "models: no model can be chosen: BotArmy is in demo mode.");
          if (!offeredIds(stage).includes(id)) return reject(ws, cmd, "invalid_field", `models: ${JSON.stringify(id)} is not offered for the ${TITLE[stage]}.`);
          models[stage] = id;
        }
      }
      if (st.run.budgetMicroUsd !== null && st.run.costMicroUsd >= st.run.budgetMicroUsd) {
        return reject(ws, cmd, "budget_exhausted", `This session has spent ${formatUsd(st.run.costMicroUsd)} of its ${formatUsd(st.run.budgetMicroUsd)} budget.`);
      }
      ok();
      s.models = MODELS_MODE ? Object.fromEntries(STAGES.map((stage) => [stage, models[stage] ?? offeredIds(stage)[0]])) : {};
      s.think = MODELS_MODE || brief.includes("#think");
      s.brief = brief;
      s.feedback = null;
      s.failOnce = brief.includes("#fail-once");
      s.failHard = !s.failOnce && brief.includes("#fail");
      Object.assign(st.run, { status: "running", approval: cmd.approval === "auto" ? "auto" : "each_stage", stage: null, pauseRequested: false, startedAt: Date.now(), finishedAt: null, error: null });
      st.gate = null;
      for (const stage of STAGES) st.agents[stage] = { ...freshAgent(s.models[stage] ?? null), status: "queued", version: st.agents[stage].version };
      startRun(s);
      userMessage(s, brief);
      return runStage(s, "analyst");
    }
    case "approve":
    case "reject": {
      if (!st.gate) return reject(ws, cmd, "invalid_state", "No approval is waiting.");
      if (st.gate.stage !== cmd.stage) return reject(ws, cmd, "invalid_state", `The open approval is for the ${TITLE[st.gate.stage]}.`);
      if (cmd.type === "reject") {
        const fb = typeof cmd.feedback === "string" ? cmd.feedback.trim() : "";
        if (!fb) return reject(ws, cmd, "feedback_empty", "The feedback is empty.");
        if ([...fb].length > 4000) return reject(ws, cmd, "feedback_too_long", "The feedback is too long.");
        ok();
        const stage = st.gate.stage;
        st.gate = null;
        st.run.status = "running";
        st.agents[stage].status = "queued";
        s.feedback = fb;
        startRun(s);
        userMessage(s, fb);
        return runStage(s, stage);
      }
      ok();
      const stage = st.gate.stage;
      st.gate = null;
      st.run.status = "running";
      st.agents[stage].status = "done";
      startRun(s);
      return next(s, stage);
    }
    case "pause":
      if (st.run.status !== "running" || st.run.pauseRequested) return reject(ws, cmd, "invalid_state", "Nothing is running.");
      ok();
      return delta(s, [{ path: "/run/pauseRequested", value: true }]);
    case "resume":
      if (st.run.status === "running" && st.run.pauseRequested) {
        ok();
        return delta(s, [{ path: "/run/pauseRequested", value: false }]);
      }
      if (st.run.status !== "paused") return reject(ws, cmd, "invalid_state", "The run is not paused.");
      ok();
      return runStage(s, st.run.stage);
    case "cancel": {
      if (!["running", "paused", "waiting_approval"].includes(st.run.status)) return reject(ws, cmd, "invalid_state", "Nothing to cancel.");
      ok();
      clearTimer(s);
      if (st.run.status === "waiting_approval") startRun(s);
      const current = s.call?.stage ?? st.run.stage;
      if (s.call) closeMessage(s, "cancelled");
      const ops = [];
      for (const stage of STAGES) {
        const a = st.agents[stage];
        if (stage === current && a.status !== "done") ops.push({ path: `/agents/${stage}/status`, value: "cancelled" });
        else if (a.status === "queued") ops.push({ path: `/agents/${stage}/status`, value: "idle" });
      }
      ops.push({ path: "/run/status", value: "cancelled" }, { path: "/gate", value: null }, { path: "/run/finishedAt", value: Date.now() });
      delta(s, ops);
      return emit(s, { type: "RUN_FINISHED", threadId: s.id, runId: st.run.runId, outcome: { type: "cancelled" } });
    }
    case "retry":
      if (st.run.status !== "failed" || st.run.stage !== cmd.stage) return reject(ws, cmd, "invalid_state", "There is nothing to retry for that stage.");
      ok();
      st.run.status = "running";
      st.run.error = null;
      st.agents[cmd.stage].status = "queued";
      startRun(s);
      return runStage(s, cmd.stage);
    case "rerun": {
      // After a run ended: a new run from `stage`; the stages before it keep their versions.
      const i = STAGES.indexOf(cmd.stage);
      if (i < 0) return reject(ws, cmd, "unknown_stage", `There is no stage "${cmd.stage}".`);
      if (!finished || st.run.status === "idle") return reject(ws, cmd, "invalid_state", "A rerun starts after a run has ended.");
      if (STAGES.slice(0, i).some((stage) => st.agents[stage].status !== "done")) return reject(ws, cmd, "invalid_state", "Every stage before it must be done first.");
      const fb = typeof cmd.feedback === "string" ? cmd.feedback.trim() : "";
      ok();
      Object.assign(st.run, { status: "running", stage: null, pauseRequested: false, startedAt: Date.now(), finishedAt: null, error: null });
      st.gate = null;
      for (const stage of STAGES.slice(i)) st.agents[stage] = { ...freshAgent(s.models[stage] ?? null), status: "queued", version: st.agents[stage].version };
      s.feedback = fb || null;
      startRun(s);
      if (fb) userMessage(s, fb);
      return runStage(s, cmd.stage);
    }
    default:
      return reject(ws, cmd, "unknown_type", `Unknown command type "${cmd.type}".`);
  }
}

// ---------------------------------------------------------------------------------------------
// Your sessions

/** The brief on one line, cut at 60 characters (back to a space if that loses little), as the Worker does. */
function excerpt(text, max) {
  const flat = text.split(/[\s\p{Cc}]+/u).filter(Boolean).join(" ");
  const chars = [...flat];
  if (chars.length <= max) return flat;
  let cut = chars.slice(0, max).join("");
  const at = cut.lastIndexOf(" ");
  if (at >= 0 && [...cut.slice(0, at)].length >= Math.floor((max * 3) / 4)) cut = cut.slice(0, at);
  return `${cut.trimEnd()}…`;
}

function summary(s) {
  return {
    name: s.name ?? (excerpt(s.brief, 60) || "New session"),
    status: s.state.run.status,
    stagesDone: STAGES.filter((stage) => s.state.agents[stage].status === "done").length,
    tokens: s.state.run.tokensUsed,
    costMicroUsd: s.state.run.costMicroUsd ?? 0,
    updatedAt: s.activeAt,
  };
}

/** The owner a request names, or null (the Worker answers 400 owner_required). */
function ownerOf(req) {
  const key = String(req.headers["x-botarmy-owner"] ?? "").toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(key)) return null;
  if (!owners.has(key)) owners.set(key, new Map());
  return owners.get(key);
}

function ownerRequired(res) {
  return json(res, 400, { error: { code: "owner_required", message: "Send X-BotArmy-Owner: a random 32-hex key this browser keeps, to name your list." } });
}

function remember(list, key, s, view) {
  if (!list.has(key)) list.set(key, { key, readOnly: Boolean(view), session: s, createdAt: Date.now() });
  return { key, readOnly: Boolean(view), summary: summary(s) };
}

function listRows(list, q) {
  const rows = [];
  for (const row of list.values()) {
    // A revoked view key or a deleted session leaves the list.
    if (!sessions.has(row.session.id) || (row.readOnly && !views.has(row.key))) {
      list.delete(row.key);
      continue;
    }
    const sum = summary(row.session);
    if (q && !sum.name.toLowerCase().includes(q)) continue;
    rows.push({ key: row.key, readOnly: row.readOnly, ...sum, createdAt: row.session.createdAt });
  }
  return rows.sort((a, b) => b.updatedAt - a.updatedAt).slice(0, MAX_LIST);
}

/** A name as the Worker keeps it: trimmed, whitespace runs as one space, 1–120 characters. */
function cleanName(raw) {
  if (typeof raw !== "string") return { error: "The body needs a name (a string)." };
  const name = raw.split(/\s+/).filter(Boolean).join(" ");
  if (!name) return { error: "A name needs at least one character." };
  const n = [...name].length;
  if (n > MAX_NAME_CHARS) return { error: `The name has ${n} characters; the most is ${MAX_NAME_CHARS}.` };
  return { name };
}

function deleteSession(s) {
  clearTimer(s);
  for (const ws of s.sockets) ws.close(4404, "session deleted");
  for (const [key, v] of views) if (v.session === s) views.delete(key);
  sessions.delete(s.id);
  for (const list of owners.values()) for (const [key, row] of list) if (row.session === s) list.delete(key);
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => resolve(body));
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json" };

function serveStatic(req, res) {
  const url = new URL(req.url, "http://x");
  let file = path.join(DIST, path.normalize(url.pathname).replace(/^(\.\.[/\\])+/, ""));
  if (!file.startsWith(DIST) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(DIST, "index.html");
  res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const p = url.pathname;
  if (p === "/__mock/drop" && req.method === "POST") {
    downUntil = Date.now() + Number(url.searchParams.get("down") ?? 0);
    for (const s of sessions.values()) for (const ws of s.sockets) ws.close(1012, "mock drop");
    return json(res, 200, { dropped: true });
  }
  if (!p.startsWith("/api/")) return serveStatic(req, res);
  if (p === "/api/health") return json(res, 200, { status: "ok", version: "0.1.0-mock", provider: MODELS_MODE ? "openai" : "demo" });
  if (p === "/api/models" && req.method === "GET") return json(res, 200, catalog());
  if (p === "/api/sessions" && req.method === "POST") {
    const id = crypto.randomBytes(16).toString("hex");
    const s = newSession(id);
    sessions.set(id, s);
    const list = ownerOf(req);
    if (list) remember(list, id, s, null);
    return json(res, 201, { id });
  }
  if (p === "/api/sessions" && req.method === "GET") {
    const list = ownerOf(req);
    if (!list) return ownerRequired(res);
    const q = url.searchParams.get("q") ?? "";
    if ([...q].length > MAX_QUERY_CHARS) return json(res, 400, { error: { code: "invalid_field", message: `A search has at most ${MAX_QUERY_CHARS} characters.` } });
    return json(res, 200, { sessions: listRows(list, q.trim().toLowerCase()) });
  }
  const rm = /^\/api\/sessions\/([0-9a-z]+)\/remember$/.exec(p);
  if (rm) {
    if (!/^([0-9a-f]{32}|v[0-9a-f]{96})$/.test(rm[1])) return json(res, 404, { error: { code: "not_found", message: "No session with this id." } });
    const list = ownerOf(req);
    if (!list) return ownerRequired(res);
    if (req.method === "DELETE") {
      list.delete(rm[1]);
      res.writeHead(204);
      return res.end();
    }
    if (req.method !== "POST") return json(res, 405, { error: { code: "method_not_allowed", message: "Use POST or DELETE here." } });
    const found = lookup(rm[1]);
    if (!found) return json(res, 404, { error: { code: "not_found", message: "No session with this id." } });
    return json(res, 200, remember(list, rm[1], found.s, found.view));
  }
  const m = /^\/api\/sessions\/([0-9a-z]+)(\/.*)?$/.exec(p);
  const found = m && lookup(m[1]);
  if (!found) return json(res, 404, { error: { code: "not_found", message: "No such session." } });
  const { s, view } = found;
  const rest = m[2] ?? "";
  const readable =
    rest === "" || rest === "/events" || rest === "/export.jsonl" || rest === "/ws" || rest.startsWith("/artifacts/") || rest === "/files" || rest.startsWith("/files/") || rest === "/project.zip";
  if (view && (!readable || req.method !== "GET")) {
    return json(res, 403, { error: { code: "read_only", message: "This is a view-only link: it cannot change the session." } });
  }
  if (rest === "" && req.method === "PATCH") {
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      return json(res, 400, { error: { code: "invalid_json", message: "The body is not JSON." } });
    }
    const clean = cleanName(body?.name);
    if (clean.error) return json(res, 400, { error: { code: "invalid_field", message: clean.error } });
    s.name = clean.name;
    s.activeAt = Date.now();
    return json(res, 200, { summary: summary(s) });
  }
  if (rest === "" && req.method === "DELETE") {
    deleteSession(s);
    res.writeHead(204);
    return res.end();
  }
  if (rest === "/views" && req.method === "POST") {
    if ([...views.values()].filter((v) => v.session === s).length >= MAX_VIEWS) {
      return json(res, 409, { error: { code: "too_many_views", message: `A session has at most ${MAX_VIEWS} view links.` } });
    }
    const key = `v${crypto.randomBytes(48).toString("hex")}`;
    const link = { key, id: crypto.randomBytes(6).toString("hex"), createdAt: Date.now(), session: s };
    views.set(key, link);
    return json(res, 201, { key, id: link.id, createdAt: link.createdAt });
  }
  if (rest === "/views" && req.method === "GET") {
    const list = [...views.values()].filter((v) => v.session === s).sort((a, b) => b.createdAt - a.createdAt);
    return json(res, 200, { views: list.map((v) => ({ id: v.id, createdAt: v.createdAt })) });
  }
  const vm = /^\/views\/([0-9a-f]{12})$/.exec(rest);
  if (vm && req.method === "DELETE") {
    const link = [...views.values()].find((v) => v.session === s && v.id === vm[1]);
    if (!link) return json(res, 404, { error: { code: "not_found", message: "No such view link." } });
    views.delete(link.key);
    for (const ws of s.sockets) if (ws.view === link) ws.close(4403, "view link revoked");
    res.writeHead(204);
    return res.end();
  }
  if (rest === "") return json(res, 200, masked(view, { id: s.id, lastSeq: s.log.length, state: s.state }));
  if (rest === "/events") {
    const after = Number(url.searchParams.get("after") ?? 0);
    const limit = Math.min(1000, Number(url.searchParams.get("limit") ?? 500));
    const events = s.log.slice(after, after + limit);
    return json(res, 200, masked(view, { events, lastSeq: s.log.length, more: after + events.length < s.log.length }));
  }
  if (rest === "/export.jsonl") {
    // The Worker's export: a session line, every event, every artifact version (docs/protocol.md).
    const lines = [{ kind: "session", id: s.id, exportedAt: Date.now(), lastSeq: s.log.length, oldestSeq: 1, demo: s.state.demo, state: s.state }];
    for (const event of s.log) lines.push({ kind: "event", event });
    for (const stage of STAGES) for (const a of s.artifacts[stage]) lines.push({ kind: "artifact", stage, version: a.version, createdAt: a.createdAt, feedback: a.feedback, content: a.text });
    res.writeHead(200, { "content-type": "application/x-ndjson", "content-disposition": `attachment; filename="botarmy-${s.id.slice(0, 8)}.jsonl"` });
    return res.end(lines.map((l) => JSON.stringify(masked(view, l))).join("\n") + "\n");
  }
  if (rest === "/files" && req.method === "GET") return json(res, 200, projectFileList(s));
  if (rest.startsWith("/files/") && req.method === "GET") {
    let filePath;
    try {
      filePath = rest.slice("/files/".length).split("/").map(decodeURIComponent).join("/");
    } catch {
      return json(res, 404, { error: { code: "not_found", message: "No such file." } });
    }
    const f = s.files.get(filePath);
    const wanted = url.searchParams.get("version");
    const v = wanted === null ? current(f) : f?.versions.find((x) => x.version === Number(wanted) && !x.deleted);
    if (!v || (wanted === null && !current(f))) return json(res, 404, { error: { code: "not_found", message: wanted === null ? "That file is not in the project." : "No such version of that file." } });
    res.writeHead(200, {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      "content-disposition": `attachment; filename="${encodeURIComponent(filePath.split("/").pop())}"`,
    });
    return res.end(v.content);
  }
  if (rest === "/project.zip" && req.method === "GET") {
    if (projectFileList(s).files.length === 0) return json(res, 404, { error: { code: "not_found", message: "The project has no file yet." } });
    const zip = projectZip(s);
    res.writeHead(200, { "content-type": "application/zip", "content-disposition": `attachment; filename="botarmy-${m[1].slice(0, 8)}.zip"`, "content-length": zip.length });
    return res.end(Buffer.from(zip));
  }
  if (rest === "/ws") return json(res, 426, { error: { code: "upgrade_required", message: "Connect with a WebSocket." } });
  const am = /^\/artifacts\/([a-z]+)$/.exec(rest);
  if (am && STAGES.includes(am[1])) {
    const list = s.artifacts[am[1]];
    if (list.length === 0) return json(res, 404, { error: { code: "not_found", message: "No artifact yet." } });
    if (url.searchParams.get("format") === "json") {
      return json(res, 200, { stage: am[1], versions: list.map((a) => ({ version: a.version, chars: [...a.text].length, createdAt: a.createdAt, feedback: a.feedback })) });
    }
    const v = Number(url.searchParams.get("version") ?? list.length);
    const art = list[v - 1];
    if (!art) return json(res, 404, { error: { code: "not_found", message: "No such version." } });
    res.writeHead(200, { "content-type": "text/markdown; charset=utf-8" });
    return res.end(art.text);
  }
  return json(res, 404, { error: { code: "not_found", message: "Unknown route." } });
});

const wss = new WebSocketServer({ noServer: true });
server.on("upgrade", (req, socket, head) => {
  const m = /^\/api\/sessions\/([0-9a-z]+)\/ws$/.exec(new URL(req.url, "http://x").pathname);
  const found = m && lookup(m[1]);
  if (!found) {
    socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
    return;
  }
  const { s, view } = found;
  if (Date.now() < downUntil) {
    socket.end("HTTP/1.1 503 Service Unavailable\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.live = false;
    ws.view = view;
    s.sockets.add(ws);
    ws.on("message", (data) => handle(s, ws, data.toString()));
    ws.on("close", () => s.sockets.delete(ws));
  });
});

server.listen(PORT, "127.0.0.1", () => {
  console.log(`BotArmy mock server on http://127.0.0.1:${PORT} (serving ${DIST})`);
});
