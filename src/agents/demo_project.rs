//! The project the demo crew writes through tool calls: a small notes web service for Node 18+
//! with no dependencies, named after the brief, whose tests pass (`node --test`) and which
//! runs (`npm start`). Each stage writes its part, so the Files panel grows stage by stage and
//! `README.md` gets a second version (the Deployer's) to diff.
//!
//! The brief is user input and lands in HTML, JavaScript and JSON: every use is escaped for
//! its language (JSON strings via serde, HTML entities), never pasted raw.

use serde_json::json;

use super::prompts::excerpt;
use super::Stage;

/// One round of tool calls the demo makes: (tool name, JSON arguments).
pub type DemoCall = (&'static str, String);

/// The demo's tool-call rounds for `stage` (empty for the Analyst, who writes no files).
pub fn demo_rounds(stage: Stage, brief: &str) -> Vec<Vec<DemoCall>> {
    let title = title_of(brief);
    // The path first, as real models send it, so the page can name the file while its content
    // streams (`json!` would order the keys alphabetically: content first).
    let write = |path: &str, content: String| {
        (
            "write_file",
            format!(r#"{{"path":{},"content":{}}}"#, json!(path), json!(content)),
        )
    };
    match stage {
        Stage::Analyst => Vec::new(),
        Stage::Architect => vec![vec![
            write("README.md", readme(&title, brief, false)),
            write("package.json", package_json(&title)),
        ]],
        Stage::Developer => vec![vec![
            write("src/app.js", app_js(&title)),
            write("src/server.js", SERVER_JS.to_string()),
            write("public/index.html", index_html(&title)),
        ]],
        Stage::Tester => vec![
            vec![("read_file", json!({"path": "src/app.js"}).to_string())],
            vec![write("test/app.test.js", TEST_JS.to_string())],
        ],
        Stage::Deployer => vec![
            vec![("list_files", "{}".to_string())],
            vec![
                write("Dockerfile", DOCKERFILE.to_string()),
                write(".github/workflows/ci.yml", CI_YML.to_string()),
                write("README.md", readme(&title, brief, true)),
            ],
        ],
    }
}

/// The Markdown lines the stage's summary adds about the files it wrote.
pub fn files_section(stage: Stage, brief: &str) -> String {
    let rounds = demo_rounds(stage, brief);
    let written: Vec<String> = rounds
        .iter()
        .flatten()
        .filter(|(tool, _)| *tool == "write_file")
        .filter_map(|(_, args)| serde_json::from_str::<serde_json::Value>(args).ok())
        .filter_map(|v| v["path"].as_str().map(|p| format!("- `{p}`")))
        .collect();
    if written.is_empty() {
        return String::new();
    }
    format!("\n## Files written\n{}\n", written.join("\n"))
}

fn title_of(brief: &str) -> String {
    let t = excerpt(brief, 60);
    if t.is_empty() {
        "Demo notes".into()
    } else {
        t
    }
}

fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "demo-notes".into()
    } else {
        out
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A JavaScript string literal (JSON is valid JavaScript; `<` escaped so it is also safe in
/// any HTML it might be pasted into).
fn js_string(s: &str) -> String {
    json!(s).to_string().replace('<', "\\u003c")
}

/// Markdown text: no heading or HTML tricks from the brief.
fn md_text(s: &str) -> String {
    s.replace(['<', '>', '`', '#', '*', '_', '[', ']'], " ")
}

fn readme(title: &str, brief: &str, with_run: bool) -> String {
    let mut out = format!(
        "# {}\n\nA small notes service built by BotArmy's demo crew for the brief: “{}”.\n\n\
         ## Layout\n\n- `src/app.js`: the notes API as plain functions (no I/O).\n\
         - `src/server.js`: the HTTP server.\n- `public/index.html`: the page.\n\
         - `test/app.test.js`: the tests (`node --test`).\n",
        md_text(title),
        md_text(&excerpt(brief, 200))
    );
    if with_run {
        out.push_str(
            "\n## Run\n\n```sh\nnpm start            # http://localhost:3000\nPORT=8080 npm start  # another port\n```\n\
             \n## Test\n\n```sh\nnpm test\n```\n\
             \n## Deploy\n\n```sh\ndocker build -t notes .\ndocker run -p 3000:3000 notes\n```\n\
             \nCI (`.github/workflows/ci.yml`) runs the tests on every push.\n",
        );
    }
    out
}

fn package_json(title: &str) -> String {
    let v = json!({
        "name": slug(title),
        "version": "0.1.0",
        "private": true,
        "description": title,
        "type": "module",
        "scripts": {"start": "node src/server.js", "test": "node --test"},
        "engines": {"node": ">=18"}
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&v).expect("json serializes")
    )
}

fn app_js(title: &str) -> String {
    format!(
        "// The notes API as plain functions: easy to test without a server.\n\
         export const TITLE = {};\n\
         export const MAX_TEXT = 500;\n\n{}",
        js_string(title),
        APP_JS_BODY
    )
}

fn index_html(title: &str) -> String {
    let t = html_escape(title);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  \
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n  \
         <title>{t}</title>\n</head>\n<body>\n  <h1>{t}</h1>\n{INDEX_HTML_BODY}"
    )
}

const APP_JS_BODY: &str = r#"export function createStore() {
  let next = 1;
  const notes = new Map();
  return {
    list: () => [...notes.values()],
    add(text) {
      const note = { id: next++, text, createdAt: new Date().toISOString() };
      notes.set(note.id, note);
      return note;
    },
    remove: (id) => notes.delete(id),
  };
}

function json(status, body) {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/** Answers one API request: `{status, headers, body}`. */
export function handle(store, method, path, body) {
  if (path === '/api/health' && method === 'GET') return json(200, { status: 'ok', title: TITLE });
  if (path === '/api/notes' && method === 'GET') return json(200, { notes: store.list() });
  if (path === '/api/notes' && method === 'POST') {
    let text;
    try {
      text = JSON.parse(body || '{}').text;
    } catch {
      return json(400, { error: 'The body must be JSON like {"text": "..."}.' });
    }
    if (typeof text !== 'string' || !text.trim()) return json(400, { error: 'A note needs some text.' });
    if (text.length > MAX_TEXT) return json(400, { error: `A note holds at most ${MAX_TEXT} characters.` });
    return json(201, store.add(text.trim()));
  }
  const m = path.match(/^\/api\/notes\/(\d+)$/);
  if (m && method === 'DELETE') {
    return store.remove(Number(m[1])) ? { status: 204, headers: {}, body: '' } : json(404, { error: 'No such note.' });
  }
  return json(404, { error: 'Not found.' });
}
"#;

const SERVER_JS: &str = r#"// The HTTP server: the page, and the API from app.js.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createStore, handle } from './app.js';

const store = createStore();
const page = new URL('../public/index.html', import.meta.url);
const port = Number(process.env.PORT || 3000);

createServer(async (req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (path === '/' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(await readFile(page));
    return;
  }
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10_000) return res.writeHead(413).end();
  }
  const out = handle(store, req.method, path, body);
  res.writeHead(out.status, out.headers);
  res.end(out.body);
}).listen(port, () => console.log(`Listening on http://localhost:${port}`));
"#;

const INDEX_HTML_BODY: &str = r#"  <form id="add">
    <label>New note <input name="text" maxlength="500" required></label>
    <button>Add</button>
  </form>
  <ul id="notes"></ul>
  <script type="module">
    const list = document.getElementById('notes');
    async function refresh() {
      const { notes } = await (await fetch('/api/notes')).json();
      list.replaceChildren(...notes.map((n) => {
        const li = document.createElement('li');
        li.textContent = n.text;
        return li;
      }));
    }
    document.getElementById('add').addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = new FormData(e.target).get('text');
      await fetch('/api/notes', { method: 'POST', body: JSON.stringify({ text }) });
      e.target.reset();
      refresh();
    });
    refresh();
  </script>
</body>
</html>
"#;

const TEST_JS: &str = r#"import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStore, handle, MAX_TEXT } from '../src/app.js';

test('health answers ok', () => {
  const r = handle(createStore(), 'GET', '/api/health');
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).status, 'ok');
});

test('a note is added, listed and deleted', () => {
  const store = createStore();
  const added = handle(store, 'POST', '/api/notes', JSON.stringify({ text: ' buy milk ' }));
  assert.equal(added.status, 201);
  const { id, text } = JSON.parse(added.body);
  assert.equal(text, 'buy milk');
  assert.deepEqual(JSON.parse(handle(store, 'GET', '/api/notes').body).notes.map((n) => n.id), [id]);
  assert.equal(handle(store, 'DELETE', `/api/notes/${id}`).status, 204);
  assert.equal(handle(store, 'DELETE', `/api/notes/${id}`).status, 404);
});

test('bad input is refused in words and saves nothing', () => {
  const store = createStore();
  for (const body of ['not json', '{}', JSON.stringify({ text: '  ' }), JSON.stringify({ text: 'x'.repeat(MAX_TEXT + 1) })]) {
    const r = handle(store, 'POST', '/api/notes', body);
    assert.equal(r.status, 400, body);
    assert.match(JSON.parse(r.body).error, /\w/);
  }
  assert.equal(store.list().length, 0);
});

test('unknown routes are 404', () => {
  assert.equal(handle(createStore(), 'GET', '/nope').status, 404);
});
"#;

const DOCKERFILE: &str = r#"FROM node:20-alpine
WORKDIR /app
COPY package.json ./
COPY src ./src
COPY public ./public
ENV PORT=3000
EXPOSE 3000
USER node
CMD ["node", "src/server.js"]
"#;

const CI_YML: &str = r#"name: ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
      - run: npm test
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;

    const HOSTILE: &str = "Notes </title><script>alert(1)</script> \"quoted\" `tick` # heading";

    #[test]
    fn every_stage_but_the_analyst_writes_valid_tool_calls_that_apply_cleanly() {
        let mut ws = Workspace::new();
        for (n, stage) in Stage::ALL.into_iter().enumerate() {
            for (r, round) in demo_rounds(stage, HOSTILE).iter().enumerate() {
                for (c, (tool, args)) in round.iter().enumerate() {
                    let o = ws.apply(&format!("{n}:{r}:{c}"), tool, args, stage, n as u32 + 1);
                    assert!(!o.is_error, "{stage:?} {tool}: {}", o.result_text);
                }
            }
        }
        let files: Vec<&str> = ws.latest().keys().copied().collect();
        assert_eq!(
            files,
            [
                ".github/workflows/ci.yml",
                "Dockerfile",
                "README.md",
                "package.json",
                "public/index.html",
                "src/app.js",
                "src/server.js",
                "test/app.test.js"
            ]
        );
        assert!(demo_rounds(Stage::Analyst, HOSTILE).is_empty());
    }

    #[test]
    fn the_brief_is_escaped_wherever_it_lands() {
        let rounds = demo_rounds(Stage::Developer, HOSTILE);
        let content = |path: &str| -> String {
            rounds[0]
                .iter()
                .map(|(_, a)| serde_json::from_str::<serde_json::Value>(a).unwrap())
                .find(|v| v["path"] == path)
                .unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let html = content("public/index.html");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;/title&gt;"));
        let js = content("src/app.js");
        assert!(
            !js.contains("</title>") && js.contains("\\u003c/title>"),
            "{js}"
        );
        let pkg: serde_json::Value =
            serde_json::from_str(&package_json(&title_of(HOSTILE))).unwrap();
        assert!(pkg["name"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn the_summary_lists_the_files_the_stage_wrote() {
        let s = files_section(Stage::Developer, "a todo app");
        assert!(
            s.contains("`src/app.js`") && s.contains("`public/index.html`"),
            "{s}"
        );
        assert_eq!(files_section(Stage::Analyst, "a todo app"), "");
    }
}
