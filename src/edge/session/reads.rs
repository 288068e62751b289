//! The plain HTTP reads, the same for a session id and a view key: the snapshot, pages of
//! events and messages, the export, the project's files and zip, and the artifacts.

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;
use worker::{Request, Response, Result};

use crate::agents::Stage;
use crate::edge::{error_response, log, now_ms};
use crate::protocol::export::Export;
use crate::protocol::limits::{EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX, SNAPSHOT_MESSAGES_BYTES};
use crate::workspace::{limits, FileVersion};

use super::http::{bad_number, query, whole, MAX_SEQ};
use super::SessionDo;

impl SessionDo {
    /// The plain reads, the same for a session id and a view key; `None` for any other path.
    pub(super) fn read(&self, req: &Request, path: &str) -> Option<Result<Response>> {
        Some(match path {
            "/snapshot" => self.snapshot(),
            "/events" => self.events(req),
            "/messages" => self.messages_page(req),
            "/export" => self.export(None),
            "/files" => self.files(),
            "/project.zip" => self.project_zip(),
            p => match p.strip_prefix("/files/") {
                Some(path) => self.file(req, path),
                None => self.artifacts(req, p.strip_prefix("/artifacts/")?),
            },
        })
    }

    pub(super) fn snapshot(&self) -> Result<Response> {
        let sockets = self.state.get_websockets().len();
        let body = self.with_inner(|i| -> Result<_> {
            // Row, byte and socket counts let soak tests check for leaks and bounds.
            let timers: serde_json::Map<String, serde_json::Value> =
                i.timers.iter().map(|(t, at)| (t.name().to_string(), json!(at))).collect();
            let stats = json!({"events": i.store.count("events")?, "messages": i.store.count("messages")?,
                "artifacts": i.store.count("artifacts")?, "sockets": sockets, "oldestSeq": i.oldest,
                "rowsWritten": i.store.rows_written(), "timers": timers,
                "logBytes": i.log_bytes, "messageBytes": i.messages.1,
                "artifactBytes": i.store.artifact_bytes()?, "dbBytes": i.store.database_bytes()});
            Ok(json!({"id": i.session.state().session_id, "lastSeq": i.session.last_seq(),
                   "demo": i.cfg.demo(), "state": i.session.state().to_json(), "stats": stats}))
        })?;
        Response::from_json(&body)
    }

    pub(super) fn events(&self, req: &Request) -> Result<Response> {
        let q = query(req)?;
        let after = match whole(&q, "after", 0, MAX_SEQ) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let limit = match whole(
            &q,
            "limit",
            EVENTS_PAGE_DEFAULT as u64,
            EVENTS_PAGE_MAX as u64,
        ) {
            Ok(0) => return bad_number("limit", 1, EVENTS_PAGE_MAX as u64),
            Ok(n) => n as usize,
            Err(r) => return r,
        };
        let g = self.inner.borrow();
        let i = g.as_ref().expect("session loaded");
        let newest = i.session.last_seq();
        if after + 1 < i.oldest && newest > 0 {
            return error_response(
                410,
                "log_truncated",
                &format!("Events before seq {} are no longer kept.", i.oldest),
            );
        }
        let frames = if after >= newest {
            Vec::new()
        } else {
            i.store.events(after + 1, newest, limit)?
        };
        let n = frames.len() as u64;
        // The frames are stored JSON already; splice them rather than re-parse.
        let body = format!(
            "{{\"events\":[{}],\"lastSeq\":{newest},\"more\":{}}}",
            frames.join(","),
            after + n < newest
        );
        let mut resp = Response::ok(body)?;
        resp.headers_mut().set("content-type", "application/json")?;
        Ok(resp)
    }

    /// `GET /messages?offset=N`: the kept messages from the N-th (oldest first), as many as
    /// fit in one snapshot's budget — how a client reads what a snapshot left out.
    pub(super) fn messages_page(&self, req: &Request) -> Result<Response> {
        let q = query(req)?;
        let offset = match whole(&q, "offset", 0, MAX_SEQ) {
            Ok(n) => n as usize,
            Err(r) => return r,
        };
        let all = self.with_inner(|i| i.store.messages(&i.open_text))?;
        let total = all.len();
        let mut size = 0;
        let page: Vec<_> = all
            .into_iter()
            .skip(offset)
            .take_while(|m| {
                size += serde_json::to_string(m).map_or(0, |s| s.len()) + 1;
                size <= SNAPSHOT_MESSAGES_BYTES
            })
            .collect();
        let more = offset + page.len() < total;
        Response::from_json(
            &json!({"messages": page, "offset": offset, "total": total, "more": more}),
        )
    }

    /// `GET /export`: the whole session as JSON Lines (`crate::protocol::export`): the
    /// `session` line now, then the kept events, artifact versions and file versions, read
    /// from SQLite page by page as the reader takes them; `redact` = a view's (session id,
    /// key).
    pub(super) fn export(&self, redact: Option<(String, String)>) -> Result<Response> {
        let (export, head) = self.with_inner(|i| {
            let newest = i.session.last_seq();
            let head = json!({"kind": "session", "id": i.session.state().session_id,
                "exportedAt": now_ms(), "lastSeq": newest, "oldestSeq": i.oldest,
                "demo": i.cfg.demo(), "state": i.session.state().to_json()})
            .to_string();
            Export::new(&head, i.oldest, newest, redact)
        });
        crate::edge::export::response(self.state.storage().sql(), export, head)
    }

    /// `GET /files`: the current project's files with their kept history.
    pub(super) fn files(&self) -> Result<Response> {
        let body = self.with_inner(|i| {
            let ws = i.session.workspace();
            let latest = ws.latest();
            let mut total = 0;
            let files: Vec<serde_json::Value> = latest
                .values()
                .map(|f| {
                    total += f.content.len();
                    let history: Vec<&FileVersion> =
                        ws.file_rows().filter(|v| v.path == f.path).collect();
                    let current = history.iter().find(|v| v.version == f.version);
                    json!({"path": f.path, "bytes": f.content.len(), "version": f.version,
                        "stage": current.map(|v| v.stage), "attempt": current.map(|v| v.attempt),
                        "versions": history.iter().map(|v| json!({"version": v.version,
                            "stage": v.stage, "bytes": v.content.as_ref().map_or(0, String::len),
                            "deleted": v.content.is_none()})).collect::<Vec<_>>()})
                })
                .collect();
            json!({"files": files, "bytes": total, "limits": {"files": limits::MAX_FILES,
                "fileBytes": limits::MAX_FILE_BYTES, "workspaceBytes": limits::MAX_WORKSPACE_BYTES,
                "toolRounds": limits::MAX_TOOL_ROUNDS}})
        });
        Response::from_json(&body)
    }

    /// `GET /files/{path}[?version=K]`: one file's text, as a download that is never rendered.
    pub(super) fn file(&self, req: &Request, raw: &str) -> Result<Response> {
        let segments: Option<Vec<String>> = raw
            .split('/')
            .map(|s| {
                percent_decode_str(s)
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
                    .filter(|c| !c.contains('/'))
            })
            .collect();
        let not_found = || error_response(404, "not_found", "No such file in the project.");
        let Some(path) = segments.map(|s| s.join("/")) else {
            return not_found();
        };
        let q = query(req)?;
        let version = match q.get("version") {
            None => None,
            Some(_) => match whole(&q, "version", 0, MAX_SEQ) {
                Ok(v) => Some(v),
                Err(r) => return r,
            },
        };
        let content = self.with_inner(|i| {
            let ws = i.session.workspace();
            match version {
                // A kept version of this path (a deleted one has no content).
                Some(v) => ws
                    .file_rows()
                    .find(|r| r.version == v && r.path == path)
                    .and_then(|r| r.content.clone()),
                None => ws
                    .latest()
                    .get(path.as_str())
                    .map(|f| f.content.to_string()),
            }
        });
        let Some(content) = content else {
            return not_found();
        };
        let name = path.rsplit('/').next().unwrap_or("file");
        let mut resp = Response::ok(content)?;
        let h = resp.headers_mut();
        h.set("content-type", "text/plain; charset=utf-8")?;
        h.set("x-content-type-options", "nosniff")?;
        h.set(
            "content-disposition",
            &format!(
                "attachment; filename=\"{}\"; filename*=UTF-8''{}",
                ascii_name(name),
                utf8_percent_encode(name, NON_ALPHANUMERIC)
            ),
        )?;
        h.set("content-security-policy", "default-src 'none'; sandbox")?;
        Ok(resp)
    }

    /// `GET /project.zip`: the current project.
    pub(super) fn project_zip(&self) -> Result<Response> {
        let (zip, id) = self.with_inner(|i| {
            let latest = i.session.workspace().latest();
            let zip = (!latest.is_empty()).then(|| crate::workspace::zip_project(&latest));
            (zip, i.session.state().session_id.clone())
        });
        let bytes = match zip {
            None => {
                return error_response(404, "not_found", "The project has no files yet.");
            }
            Some(Err(e)) => {
                log::error("zip_failed", json!({"message": e}));
                return error_response(500, "internal", "The project could not be zipped.");
            }
            Some(Ok(b)) => b,
        };
        let mut resp = Response::from_bytes(bytes)?;
        let h = resp.headers_mut();
        h.set("content-type", "application/zip")?;
        h.set(
            "content-disposition",
            &format!(
                "attachment; filename=\"botarmy-{}.zip\"",
                id.chars().take(8).collect::<String>()
            ),
        )?;
        Ok(resp)
    }

    pub(super) fn artifacts(&self, req: &Request, stage: &str) -> Result<Response> {
        let Some(stage) = Stage::parse(stage) else {
            return error_response(
                404,
                "unknown_stage",
                "Stages: analyst, architect, developer, tester, deployer.",
            );
        };
        let q = query(req)?;
        let g = self.inner.borrow();
        let i = g.as_ref().expect("session loaded");
        if q.get("format").map(String::as_str) == Some("json") {
            let versions: Vec<_> = i
                .store
                .artifact_versions(stage)?
                .into_iter()
                .map(|r| {
                    json!({"version": r.version, "chars": r.content.chars().count(),
                                "createdAt": r.created_at as u64, "feedback": r.feedback})
                })
                .collect();
            return Response::from_json(&json!({"stage": stage, "versions": versions}));
        }
        let version = match whole(&q, "version", 0, u32::MAX as u64) {
            Ok(_) if !q.contains_key("version") => i.session.state().agent(stage).version,
            Ok(v) => v as u32,
            Err(r) => return r,
        };
        match i.store.artifact(stage, version)? {
            Some(text) => {
                let mut resp = Response::ok(text)?;
                let h = resp.headers_mut();
                h.set("content-type", "text/markdown; charset=utf-8")?;
                h.set(
                    "content-disposition",
                    &format!("inline; filename=\"{}-v{version}.md\"", stage.name()),
                )?;
                Ok(resp)
            }
            None => error_response(
                404,
                "no_artifact",
                &format!("The {} has no artifact version {version}.", stage.title()),
            ),
        }
    }
}

/// A file name for the plain `filename=` parameter: ASCII letters, digits and `._-` only (the
/// exact name goes in `filename*`).
pub(super) fn ascii_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
