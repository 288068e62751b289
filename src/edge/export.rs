//! `GET …/export.jsonl` as a stream: reads the session's SQLite page by page as the runtime
//! pulls the body, as [`crate::protocol::export::Export`] asks, so a large export is never held
//! whole. Nothing is decided here.

use serde::Deserialize;
use worker::{Response, Result, SqlStorage};

use super::store::int;
use crate::protocol::export::{ArtifactRow, Export, FileRow, Read, Rows};

/// The response: `head` is the session line, `export` what follows it.
pub(crate) fn response(sql: SqlStorage, export: Export, head: String) -> Result<Response> {
    let body = futures_util::stream::unfold(
        (sql, export, Some(head)),
        |(sql, mut export, head)| async move {
            if let Some(h) = head {
                return Some((Ok(h.into_bytes()), (sql, export, None)));
            }
            loop {
                let rows = match export.next() {
                    Read::Done => return None,
                    read => read_rows(&sql, read).unwrap_or_else(|e| Rows::Failed(e.to_string())),
                };
                let chunk = export.take(rows);
                if !chunk.is_empty() {
                    return Some((
                        Ok::<Vec<u8>, worker::Error>(chunk.into_bytes()),
                        (sql, export, None),
                    ));
                }
            }
        },
    );
    let mut resp = Response::from_stream(body)?;
    let h = resp.headers_mut();
    h.set("content-type", "application/x-ndjson; charset=utf-8")?;
    h.set(
        "content-disposition",
        "attachment; filename=\"botarmy-session.jsonl\"",
    )?;
    Ok(resp)
}

fn read_rows(sql: &SqlStorage, read: Read) -> Result<Rows> {
    #[derive(Deserialize)]
    struct Ev {
        seq: f64,
        json: String,
    }
    #[derive(Deserialize)]
    struct Art {
        version: f64,
        content: String,
        feedback: Option<String>,
        created_at: f64,
    }
    #[derive(Deserialize)]
    struct File {
        version: f64,
        path: String,
        stage: String,
        attempt: f64,
        content: Option<String>,
    }
    Ok(match read {
        Read::Events { from, to, limit } => {
            let rows: Vec<Ev> = sql
                .exec(
                    "SELECT seq, json FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                    vec![int(from), int(to), int(limit as u64)],
                )?
                .to_array()?;
            Rows::Events(rows.into_iter().map(|r| (r.seq as u64, r.json)).collect())
        }
        Read::Artifacts {
            stage,
            after,
            limit,
        } => {
            let rows: Vec<Art> = sql
                .exec(
                    "SELECT version, content, feedback, created_at FROM artifacts \
                     WHERE stage = ? AND version > ? ORDER BY version LIMIT ?",
                    vec![stage.name().into(), int(after as u64), int(limit as u64)],
                )?
                .to_array()?;
            Rows::Artifacts(
                rows.into_iter()
                    .map(|r| ArtifactRow {
                        version: r.version as u32,
                        created_at: r.created_at as u64,
                        feedback: r.feedback,
                        content: r.content,
                    })
                    .collect(),
            )
        }
        Read::Files { after, limit } => {
            let rows: Vec<File> = sql
                .exec(
                    "SELECT version, path, stage, attempt, content FROM files \
                     WHERE version > ? ORDER BY version LIMIT ?",
                    vec![int(after), int(limit as u64)],
                )?
                .to_array()?;
            Rows::Files(
                rows.into_iter()
                    .map(|r| FileRow {
                        version: r.version as u64,
                        path: r.path,
                        stage: r.stage,
                        attempt: r.attempt as u32,
                        content: r.content,
                    })
                    .collect(),
            )
        }
        Read::Done => Rows::Failed("nothing to read".into()),
    })
}
