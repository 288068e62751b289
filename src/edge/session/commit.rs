//! Executing the session's effects: storage before sending, except what
//! [`crate::session::object::streaming_commit`] lets a streaming call send ahead; every table
//! kept within its bound (the trims are decided by [`crate::session::object`]); committed
//! events handed to the AG-UI streams.

use futures_util::future::{select, Either};
use serde_json::json;
use worker::{Delay, Result};

use crate::edge::log;
use crate::protocol::event::Event;
use crate::protocol::limits::ARTIFACT_VERSIONS_KEPT;
use crate::session::connection::CLOSE_RESTART;
use crate::session::object::{self, StreamingCommit};
use crate::session::Effect;

use super::{log_cuts, SessionDo};

impl SessionDo {
    /// Executes the session's effects: store events (and messages, artifacts), persist the
    /// session, keep every table within its bound, then broadcast — storage before sending.
    /// Effects a streaming call sent ahead ([`Self::commit_streaming`]) are stored first.
    pub(super) fn commit(&self) -> Result<()> {
        self.store_sent_ahead()?;
        let effects = self.drain_effects();
        self.apply(effects, false)
    }

    /// The streaming call's commit. A batch of nothing but deltas (text, tool arguments,
    /// reasoning, state) and text messages that start goes to the sockets at once and is kept
    /// in `sent_ahead`; the call loop stores it on a later turn of the event loop
    /// ([`Self::run_call`]), while the next read is already waiting. Writing it in the same turn would hold the frames until the
    /// write is committed (the runtime's output gate), which was most of the relay's latency.
    /// A crash in between is covered by epochs ([`crate::session::replay`]): `streaming` stays
    /// set in storage for the whole call, so a restart begins a new epoch. (A text message's
    /// start comes with the answer's first token: storing it first cost every stage one
    /// commit before its first word. Nothing a client does refers to it.) Any other batch (a
    /// message that ends, a call that starts or ends, a stage or run that ends, anything
    /// saved) is stored first, with whatever was sent ahead before it, so what a client saw of
    /// those always survives; AG-UI HTTP streams are always fed after storage. Returns
    /// whether anything sent ahead waits to be stored.
    pub(super) fn commit_streaming(&self) -> Result<bool> {
        let effects = self.drain_effects();
        match object::streaming_commit(&effects, self.gone.get()) {
            // (A chunk that made no event: what was sent ahead keeps waiting for its turn.)
            StreamingCommit::Nothing => Ok(!self.sent_ahead.borrow().is_empty()),
            StreamingCommit::StoreFirst => {
                self.store_sent_ahead()?;
                self.apply(effects, false)?;
                Ok(false)
            }
            StreamingCommit::SendAhead => {
                let frames: Vec<(u64, &str)> = effects
                    .iter()
                    .filter_map(|e| match e {
                        Effect::Emit { seq, json, .. } => Some((*seq, json.as_str())),
                        _ => None,
                    })
                    .collect();
                self.broadcast(&frames);
                self.sent_ahead.borrow_mut().extend(effects);
                Ok(true)
            }
        }
    }

    /// Awaits `fut`; if `store_at` fires first, stores what was sent ahead and goes on waiting.
    pub(super) async fn storing_meanwhile<T>(
        &self,
        fut: impl std::future::Future<Output = T>,
        store_at: &mut Option<std::pin::Pin<Box<Delay>>>,
    ) -> Result<T> {
        futures_util::pin_mut!(fut);
        loop {
            let Some(at) = store_at.as_mut() else {
                return Ok(fut.await);
            };
            match select(fut.as_mut(), at.as_mut()).await {
                Either::Left((v, _)) => return Ok(v),
                Either::Right(_) => {
                    *store_at = None;
                    self.store_sent_ahead()?;
                }
            }
        }
    }

    /// Stores what [`Self::commit_streaming`] sent ahead. A failure here leaves clients with
    /// events the log may not have: the session is dropped from memory and every socket closed,
    /// so all of them re-sync from storage in a new epoch.
    pub(super) fn store_sent_ahead(&self) -> Result<()> {
        let effects = std::mem::take(&mut *self.sent_ahead.borrow_mut());
        if effects.is_empty() {
            return Ok(());
        }
        self.apply(effects, true).inspect_err(|e| {
            log::error("store_after_send_failed", json!({"message": e.to_string()}));
            self.inner.borrow_mut().take();
            for ws in self.state.get_websockets() {
                let key = self.conn_key(&ws);
                self.close(&ws, &key, CLOSE_RESTART, "server restart: reconnect");
            }
        })
    }

    pub(super) fn drain_effects(&self) -> Vec<Effect> {
        match self.inner.borrow_mut().as_mut() {
            Some(i) => std::iter::from_fn(|| i.session.poll_effect()).collect(),
            None => Vec::new(),
        }
    }

    /// Runs `effects` against storage (all of it, in order), then broadcasts their events
    /// unless `sent` (already broadcast), and feeds the HTTP streams.
    pub(super) fn apply(&self, effects: Vec<Effect>, sent: bool) -> Result<()> {
        let mut frames = Vec::new();
        let mut aborts = Vec::new();
        {
            let mut g = self.inner.borrow_mut();
            let Some(i) = g.as_mut() else {
                return Ok(());
            };
            let gone = self.gone.get();
            for effect in effects {
                match effect {
                    // A deleted session writes nothing; its call only unwinds.
                    Effect::Emit { .. }
                    | Effect::SaveArtifact { .. }
                    | Effect::SaveFile(_)
                    | Effect::SaveToolCall(_)
                    | Effect::DiscardFiles { .. }
                        if gone => {}
                    Effect::Emit { seq, json, event } => {
                        i.store.append_event(seq, &json)?;
                        i.log_bytes += json.len() as u64;
                        match &event {
                            Event::TextMessageStart {
                                message_id,
                                role,
                                name,
                            } => {
                                i.store.message_start(message_id, *role, name, seq)?;
                                i.messages.0 += 1;
                            }
                            Event::TextMessageContent { message_id, delta } => {
                                i.open_text
                                    .entry(message_id.clone())
                                    .or_default()
                                    .push_str(delta);
                                i.messages.1 += delta.len() as u64;
                            }
                            Event::TextMessageEnd { message_id } => {
                                let text = match i.open_text.remove(message_id) {
                                    Some(t) => t,
                                    // Streamed before a restart: its text is in the log.
                                    None => match i.store.message_seq(message_id)? {
                                        Some(from) => i.store.logged_text(message_id, from)?,
                                        None => String::new(),
                                    },
                                };
                                i.store.message_end(message_id, &text)?;
                            }
                            Event::RunError { code, .. } => log::warn(
                                "run_error",
                                json!({"session": i.session.state().session_id, "code": code}),
                            ),
                            _ => {}
                        }
                        frames.push((seq, json));
                    }
                    Effect::SaveArtifact {
                        stage,
                        version,
                        content,
                        feedback,
                        created_at,
                    } => {
                        i.store.save_artifact(
                            stage,
                            version,
                            &content,
                            feedback.as_deref(),
                            created_at,
                        )?;
                        i.store
                            .trim_artifacts(stage, version, ARTIFACT_VERSIONS_KEPT)?;
                    }
                    Effect::SaveFile(v) => i.store.save_file(&v)?,
                    Effect::SaveToolCall(c) => i.store.save_tool_call(&c)?,
                    Effect::DiscardFiles { from } => i.store.discard_files_from(from)?,
                    Effect::AbortCall { call_id } => aborts.push(call_id),
                    Effect::StartCall(spec) => {
                        if !gone {
                            *self.next_call.borrow_mut() = Some(spec);
                        }
                    }
                }
            }
            if gone {
                drop(g);
                self.abort(&aborts);
                return Ok(());
            }
            // Text alone leaves the session clean: no serialising per token.
            if i.session.take_dirty() {
                let p = i.session.persisted();
                if p != i.saved {
                    i.store.set_meta("session", &p)?;
                    i.saved = p;
                }
            }
            let newest = i.session.last_seq();
            if object::log_over_bound(i.oldest, newest, i.log_bytes) {
                let by_bytes = i.store.log_keep_from(object::LOG_KEEP_BYTES)?;
                let keep_from = object::log_keep_from(newest, by_bytes);
                i.store.trim_events(keep_from)?;
                i.oldest = keep_from;
                i.log_bytes = i.store.log_bytes()?;
            }
            if let Some((count, bytes)) = object::messages_trim_to(i.messages) {
                i.messages = i.store.trim_messages(count, bytes)?;
            }
        }
        self.abort(&aborts);
        if !sent {
            self.broadcast(&frames);
        }
        self.feed_streams(&frames);
        Ok(())
    }

    /// Hands committed events to the open AG-UI HTTP streams; finished ones are dropped
    /// (which ends their response body).
    pub(super) fn feed_streams(&self, frames: &[(u64, String)]) {
        if frames.is_empty() {
            return;
        }
        let mut readers = self.readers.borrow_mut();
        for (seq, f) in frames {
            log_cuts(readers.offer(*seq, f));
        }
        drop(readers);
        self.release_freed();
    }

    pub(super) fn abort(&self, ids: &[u64]) {
        for id in ids {
            let mut live = self.live.borrow_mut();
            if live.as_ref().is_some_and(|(l, _)| l == id) {
                if let Some((_, c)) = live.take() {
                    c.abort();
                }
            }
        }
    }
}
