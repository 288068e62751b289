//! View-only links: which view a request's secret opens, the reads it may make (with the
//! session id replaced by the view key), and creating, listing and revoking links.

use serde_json::json;
use worker::{Method, Request, Response, Result};

use crate::edge::{error_response, log, now_ms, read_only_response};
use crate::index;
use crate::protocol::view;
use crate::session::connection::CLOSE_VIEW_REVOKED;

use super::http::random_hex;
use super::index_calls::drop_links;
use super::{SessionDo, ViewConn};

impl SessionDo {
    /// The view a request's secret opens, if it is one of this session's.
    pub(super) fn view_of(&self, secret: &str, req: &Request) -> Result<Option<ViewConn>> {
        let hash = view::secret_hash(secret);
        let (known, session) = self.with_inner(|i| -> Result<_> {
            Ok((
                i.store.has_view(&hash)?,
                i.session.state().session_id.clone(),
            ))
        })?;
        let key = req.headers().get("x-view-key")?.unwrap_or_default();
        Ok(known.then(|| ViewConn {
            id: view::view_id(&hash).to_string(),
            session,
            key,
        }))
    }

    /// A read through a view-only link: the same reads as the session id gets, with the
    /// session id replaced by the view key in every body; anything else is refused.
    pub(super) async fn view_request(
        &self,
        req: Request,
        path: &str,
        v: ViewConn,
    ) -> Result<Response> {
        // The router's allowlist, asked again here: the session does not trust that every
        // caller asked it.
        if !crate::access::viewer_may(path) {
            return read_only_response();
        }
        if path == "/remember" {
            return self.remember(&req, Some(&v.id)).await;
        }
        if path == "/ws" {
            let resp = self.upgrade(&req, Some(v)).await;
            self.kick().await?;
            return resp;
        }
        if path == "/export" {
            // Redacted line by line as it streams, and counted after redaction.
            return self.export(Some((v.session.clone(), v.key.clone())));
        }
        let Some(resp) = self.read(&req, path) else {
            return read_only_response();
        };
        let mut resp = resp?;
        if path == "/project.zip" || path.starts_with("/files/") {
            // The project's own bytes (a zip is binary): agents never see the session id. The
            // zip's name would show part of it, so a viewer gets a name of the view's own.
            if path == "/project.zip" && resp.status_code() == 200 {
                let id = view::parse_key(&v.key)
                    .map(|k| view::view_id(&view::secret_hash(k.secret)).to_string())
                    .unwrap_or_default();
                let name = format!("botarmy-view-{id}.zip");
                resp.headers_mut().set(
                    "content-disposition",
                    &format!("attachment; filename=\"{name}\""),
                )?;
            }
            return Ok(resp);
        }
        let status = resp.status_code();
        let headers = resp.headers().clone();
        let body = resp.text().await?;
        let body = view::redact(&body, &v.session, &v.key).into_owned();
        Ok(Response::ok(body)?
            .with_status(status)
            .with_headers(headers))
    }

    /// `POST /views` creates a view link, `GET /views` lists them, `DELETE /views/{id}`
    /// revokes one (its sockets are closed with 4403).
    pub(super) async fn views(&self, req: &Request, path: &str) -> Result<Response> {
        let method = req.method();
        match (method, path.strip_prefix("/views/")) {
            (Method::Get, None) => {
                let list: Vec<_> = self
                    .with_inner(|i| i.store.views())?
                    .into_iter()
                    .map(|(h, at)| json!({"id": view::view_id(&h), "createdAt": at}))
                    .collect();
                Response::from_json(&json!({ "views": list }))
            }
            (Method::Post, None) => {
                let object = self.state.id().to_string();
                let secret = random_hex(16);
                let hash = view::secret_hash(&secret);
                let now = now_ms();
                let made = self.with_inner(|i| -> Result<bool> {
                    if i.store.count("views")? >= view::MAX_VIEWS {
                        return Ok(false);
                    }
                    i.store.add_view(&hash, now)?;
                    Ok(true)
                })?;
                if !made {
                    return error_response(
                        409,
                        "too_many_views",
                        &format!(
                            "This session already has {} view links; revoke one first.",
                            view::MAX_VIEWS
                        ),
                    );
                }
                log::info("view_created", json!({"view": view::view_id(&hash)}));
                Ok(
                    Response::from_json(&json!({"key": view::format_key(&object, &secret),
                    "id": view::view_id(&hash), "createdAt": now}))?
                    .with_status(201),
                )
            }
            (Method::Delete, Some(id)) if view::is_view_id(id) => {
                if !self.with_inner(|i| i.store.remove_view(id))? {
                    return error_response(404, "not_found", "No view link with this id.");
                }
                for ws in self.state.get_websockets() {
                    let key = self.conn_key(&ws);
                    if self.with_conn(&ws, &key, |a| a.view.as_ref().is_some_and(|v| v.id == id)) {
                        self.close(&ws, &key, CLOSE_VIEW_REVOKED, "view link revoked");
                    }
                }
                // Its owners are forgotten and their read-only rows go: a revoked link stops
                // following the session in anyone's list.
                let (gone, session) = self.with_inner(|i| -> Result<_> {
                    let gone = index::revoked(&i.store.owners()?, id);
                    i.store.remove_owners(&gone)?;
                    Ok((gone, i.session.state().session_id.clone()))
                })?;
                drop_links(&self.env, &session, &gone).await;
                log::info("view_revoked", json!({"view": id}));
                Ok(Response::empty()?.with_status(204))
            }
            (Method::Delete, Some(_)) => {
                error_response(404, "not_found", "No view link with this id.")
            }
            _ => error_response(
                405,
                "method_not_allowed",
                "That method is not allowed here.",
            ),
        }
    }
}
