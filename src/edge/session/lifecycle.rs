//! Loading a session into the object and letting it go: creation (`/init`), restoring it after
//! eviction or a restart (epochs recovered by [`crate::session::object::recover_epochs`]), the
//! idle expiry and deletion.

use std::collections::HashMap;

use serde_json::json;
use worker::{AbortController, Response, Result};

use crate::config::Config;
use crate::edge::admission_do::{self, Ask};
use crate::edge::store::Store;
use crate::edge::{error_response, log, now_ms};
use crate::index;
use crate::protocol::is_session_id;
use crate::session::connection::CLOSE_SESSION_GONE;
use crate::session::object::{self, Expiry};
use crate::session::replay::Epochs;
use crate::session::Session;

use super::index_calls::index_call;
use super::{Inner, SessionDo};

impl SessionDo {
    pub(super) fn init(&self, id: &str) -> Result<Response> {
        if !is_session_id(id) {
            return error_response(400, "bad_request", "Invalid session id.");
        }
        self.gone.set(false);
        let store = Store::create(self.state.storage().sql())?;
        if store.meta("session")?.is_none() {
            let cfg = self.cfg()?;
            let session = Session::new(id, cfg.session());
            let now = now_ms().to_string();
            store.set_meta("session", &session.persisted())?;
            store.set_meta("created_at", &now)?;
            store.set_meta("active_at", &now)?;
            log::info(
                "session_created",
                json!({"session": id, "demo": cfg.demo()}),
            );
        }
        Ok(Response::from_json(&json!({"id": id}))?.with_status(201))
    }

    pub(super) fn cfg(&self) -> Result<Config> {
        crate::edge::config(&self.env).map_err(|e| {
            log::error("config_invalid", json!({"message": e}));
            worker::Error::RustError(e)
        })
    }

    /// Loads the session into memory (restoring it after eviction or a restart). False when
    /// this object holds no session.
    pub(super) fn load(&self) -> Result<bool> {
        if self.gone.get() {
            return Ok(false);
        }
        if self.inner.borrow().is_some() {
            // Whatever reads next (a catch-up, a snapshot, a page of events) sees every event
            // that was sent.
            self.store_sent_ahead()?;
            return Ok(true);
        }
        let Some(store) = Store::open_existing(self.state.storage().sql())? else {
            return Ok(false);
        };
        let Some(json) = store.meta("session")? else {
            return Ok(false);
        };
        let cfg = self.cfg()?;
        let now = now_ms();
        let (oldest, newest) = store.bounds()?;
        let timers = store.timers()?;
        let mut session = Session::restore(&json, newest, cfg.session(), now).map_err(|e| {
            log::error("session_restore_failed", json!({"message": e}));
            worker::Error::RustError(e)
        })?;
        session.set_workspace(store.workspace().inspect_err(|e| {
            log::error(
                "workspace_restore_failed",
                json!({"message": e.to_string()}),
            );
        })?);
        if session.resumed_after_restart() {
            log::warn(
                "session_resumed_after_restart",
                json!({"session": session.state().session_id}),
            );
        }
        let active_at = match store.meta("active_at")? {
            Some(t) => t.parse().unwrap_or(now),
            None => now,
        };
        let stored: Option<Epochs> = match store.meta("epochs")? {
            Some(j) => Some(serde_json::from_str(&j)?),
            None => None,
        };
        // Set while the last instance sent events ahead of storage (see `commit_streaming`).
        let streaming = store.meta("streaming")?.is_some();
        let (epochs, begun) = object::recover_epochs(stored, streaming, newest);
        if begun {
            store.set_meta("epochs", &serde_json::to_string(&epochs)?)?;
            store.clear_meta("streaming")?;
            log::warn(
                "epoch_begun",
                json!({"session": session.state().session_id, "epoch": epochs.current(), "firstSeq": newest + 1}),
            );
        }
        *self.inner.borrow_mut() = Some(Inner {
            session,
            log_bytes: store.log_bytes()?,
            messages: store.message_totals()?,
            open_text: HashMap::new(),
            store,
            cfg,
            saved: json,
            oldest: oldest.max(1),
            timers,
            active_at,
            epochs,
        });
        self.commit()?;
        Ok(true)
    }

    pub(super) fn with_inner<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.borrow_mut();
        f(g.as_mut().expect("session loaded"))
    }

    /// Moves the idle expiry (written at most once a minute, and often enough for a short
    /// `SESSION_IDLE_TTL_S`: [`Config::activity_write_ms`]).
    pub(super) fn touch(&self, now: u64) -> Result<()> {
        let mut g = self.inner.borrow_mut();
        let Some(i) = g.as_mut() else {
            return Ok(());
        };
        if i.cfg.activity_due(i.active_at, now) {
            i.store.set_meta("active_at", &now.to_string())?;
            i.active_at = now;
        }
        Ok(())
    }

    /// The expiry timer fired: true when the session really is idle (no socket, no call).
    pub(super) fn expire_due(&self, now: u64) -> bool {
        let busy = !self.state.get_websockets().is_empty()
            || self.live.borrow().is_some()
            || self.next_call.borrow().is_some()
            || self.with_inner(|i| i.session.live_call().is_some());
        let (active_at, ttl) = self.with_inner(|i| (i.active_at, i.cfg.session_idle_ttl_ms));
        match object::expiry(busy, active_at, ttl, now) {
            Expiry::Busy => {
                let _ = self.touch(now);
                false
            }
            Expiry::Idle => true,
            Expiry::NotYet => false,
        }
    }

    /// Deletes the session: sockets closed (4404), the call aborted, every table and the
    /// alarm removed, the admission count freed.
    pub(super) async fn destroy(&self, why: &str) -> Result<()> {
        let id = self.with_inner(|i| i.session.state().session_id.clone());
        self.gone.set(true);
        self.next_call.borrow_mut().take();
        if let Some((_, c)) = self.live.borrow_mut().take() {
            c.abort();
        }
        let mut leases = Vec::new();
        for ws in self.state.get_websockets() {
            let key = self.conn_key(&ws);
            leases.push(self.forget(&ws, &key));
            let _ = ws.close(Some(CLOSE_SESSION_GONE), Some(format!("session {why}")));
        }
        self.readers
            .borrow_mut()
            .end_all(&format!(": session {why}\n\n"));
        self.release_freed();
        let owners = self
            .with_inner(|i| i.store.owners())
            .map(|o| index::push_targets(&o))
            .unwrap_or_default();
        self.with_inner(|i| i.store.wipe())?;
        self.state.storage().delete_alarm().await?;
        self.state.storage().delete_all().await?;
        self.alarm_at.set(None);
        *self.inner.borrow_mut() = None;
        for lease in leases {
            self.release(lease).await;
        }
        if let Err(e) = admission_do::ask(&self.env, "/removed", &Ask::default()).await {
            log::warn("admission_unreachable", json!({"message": e.to_string()}));
        }
        let body = json!({"sessionRef": index::session_ref(&id)});
        for owner in owners {
            index_call(&self.env, &owner, "/drop", &body).await;
        }
        log::info("session_removed", json!({"session": id, "why": why}));
        Ok(())
    }

    pub(super) fn set_live(&self, call: Option<(u64, AbortController)>) {
        *self.live.borrow_mut() = call;
    }
}
