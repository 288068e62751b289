//! "Your sessions": what the owners' lists show of this session, remembering and renaming it,
//! and pushing its summary to every owner's index (the rules are in `crate::index`).

use serde::Deserialize;
use serde_json::json;
use worker::{Request, Response, Result};

use crate::edge::{error_response, now_ms};
use crate::index::{self, Summary};

use super::index_calls::{drop_links, index_call};
use super::SessionDo;

impl SessionDo {
    /// What the owners' lists show of this session now.
    pub(super) fn summary(&self) -> Result<Summary> {
        self.with_inner(|i| -> Result<Summary> {
            let name = i.store.meta("name")?;
            Ok(Summary::of(
                i.session.state(),
                name.as_deref(),
                i.session.brief(),
                now_ms(),
            ))
        })
    }

    /// `/remember`: an owner (`x-owner`, its index's name) keeps this session in its list,
    /// through the view link `view` or else the session id (`x-creator: 1` from the router
    /// when it created the session); answers what the row shows.
    pub(super) async fn remember(&self, req: &Request, view: Option<&str>) -> Result<Response> {
        let owner = req.headers().get("x-owner")?.unwrap_or_default();
        if owner.len() != 64 || !owner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return error_response(400, "owner_required", "No owner to remember this for.");
        }
        let link = match view {
            Some(id) => index::Link::View(id.to_string()),
            None if req.headers().get("x-creator")?.as_deref() == Some("1") => index::Link::Creator,
            None => index::Link::Control,
        };
        let forgotten = self.with_inner(|i| i.store.add_owner(&owner, link, now_ms()))?;
        let id = self.with_inner(|i| i.session.state().session_id.clone());
        // An owner pushed out of one of its links loses that link's rows: every row in every
        // index names a session that still keeps that owner up to date.
        drop_links(&self.env, &id, &forgotten).await;
        Response::from_json(&json!({"sessionRef": index::session_ref(&id),
            "readOnly": view.is_some(), "summary": self.summary()?}))
    }

    /// `/rename {name}`: the owners' lists show the new name.
    pub(super) async fn rename(&self, mut req: Request) -> Result<Response> {
        #[derive(Deserialize)]
        struct Body {
            name: serde_json::Value,
        }
        let body: Option<Body> = req.json().await.ok();
        let Some(serde_json::Value::String(raw)) = body.map(|b| b.name) else {
            return error_response(400, "invalid_field", "Send {\"name\": \"…\"}.");
        };
        let name = match index::clean_name(&raw) {
            Ok(n) => n,
            Err(e) => return error_response(400, "invalid_field", &e),
        };
        self.with_inner(|i| i.store.set_meta("name", &name))?;
        self.push_index().await;
        Response::from_json(&json!({"summary": self.summary()?}))
    }

    /// Sends the summary to every owner's index when it changed since the last push (a failed
    /// push is tried again with the next change).
    pub(super) async fn push_index(&self) {
        if self.gone.get() || self.inner.borrow().is_none() {
            return;
        }
        let Ok(summary) = self.summary() else { return };
        if self
            .pushed
            .borrow()
            .as_ref()
            .is_some_and(|p| !p.differs(&summary))
        {
            return;
        }
        let (owners, id) = self.with_inner(|i| {
            (
                index::push_targets(&i.store.owners().unwrap_or_default()),
                i.session.state().session_id.clone(),
            )
        });
        let body = json!({"sessionRef": index::session_ref(&id), "summary": summary});
        let mut ok = true;
        for owner in &owners {
            ok &= index_call(&self.env, owner, "/upsert", &body).await;
        }
        if ok {
            *self.pushed.borrow_mut() = Some(summary);
        }
    }
}
