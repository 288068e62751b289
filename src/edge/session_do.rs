//! The Session Durable Object: one per session. It holds the session's hibernating
//! WebSockets (each driven by the core's [`Connection`]), runs the core [`Session`] machine,
//! stores its event log in SQLite before broadcasting, keeps every table within its bound,
//! and uses the alarm as its one timer (retries, watchdog, socket sweep, expiry, and starting
//! LLM calls, which run inside the alarm handler so they survive the request that asked for
//! them).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{
    durable_object, AbortController, Delay, DurableObject, Env, Method, Request, RequestInit,
    Response, Result, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
    WebSocketRequestResponsePair,
};

use super::admission_do::{self, Ask};
use super::store::Store;
use super::{error_response, log, now_ms, provider, read_only_response};
use crate::agents::Stage;
use crate::config::Config;
use crate::index::{self, Summary};
use crate::protocol::agui_http::{
    decode_run_input, plan_stream, remember_run, repeated_run, HttpError, OpenGate, RememberedRun,
    StreamStart,
};
use crate::protocol::agui_readers::{Cut, Readers};
use crate::protocol::event::{frame, Event};
use crate::protocol::export::Export;
use crate::protocol::limits::{
    ARTIFACT_VERSIONS_KEPT, EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX, MAX_SOCKETS_PER_SESSION,
    SNAPSHOT_MESSAGES_BYTES,
};
use crate::protocol::wire::{
    AckValue, CaughtUpValue, ConnectionCustom, FlowValue, PongValue, RejectedValue, WarningCode,
    WarningValue, WelcomeMode, WelcomeValue,
};
use crate::protocol::{is_session_id, view, Rejection, RejectionCode};
use crate::session::call::{CallDriver, Input, Step};
use crate::session::connection::{
    Action, Connection, Incoming, CATCHUP_PAGE_BYTES, CLOSE_HELLO_TIMEOUT, CLOSE_RESTART,
    CLOSE_SESSION_GONE, CLOSE_VIEW_REVOKED, SEND_WINDOW_BYTES,
};
use crate::session::object::{self, CatchUpStep, LeaseStart, StreamingCommit, CATCHUP_PAGE_EVENTS};
use crate::session::replay::{plan, Epochs, ReplayPlan};
use crate::session::schedule::{self, Needs, Rows, Timer};
use crate::session::{CallSpec, Effect, RunStatus, Session};
use crate::workspace::{limits, FileVersion};

/// Kept with each hibernating socket (at most 2 KiB), so it survives the object being
/// evicted: who the client is, its admission lease, and its connection state.
#[derive(Serialize, Deserialize, Clone)]
struct Attachment {
    client: String,
    lease: String,
    c: Connection,
    /// Opened through a view-only link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    view: Option<ViewConn>,
}

/// A socket (or request) through a view-only link: which view, and what to put in place of
/// the session id in everything it is sent.
#[derive(Serialize, Deserialize, Clone)]
struct ViewConn {
    id: String,
    session: String,
    key: String,
}

/// Sessions tell the admission object their sockets are alive this often.
const LEASE_RENEW_MS: u64 = 5 * 60_000;
/// The header in which the router says when it sent a request here (epoch ms).
pub(crate) const SENT_AT: &str = "x-sent-at";
/// A request that reaches the object this late is logged (`session_request_late`): it waited
/// for the object (its input gate or event queue), not for its own handler.
const LATE_MS: u64 = 2_000;

struct Inner {
    pub session: Session,
    pub store: Store,
    pub cfg: Config,
    saved: String,
    oldest: u64,
    /// The `schedule` table as stored (read once on load, then written through).
    timers: Rows,
    /// Bytes of the event log, and (count, bytes) of messages: kept under their bounds.
    log_bytes: u64,
    messages: (u64, u64),
    /// Text of the messages still streaming (stored when they end; see `Store::message_end`).
    open_text: HashMap<String, String>,
    /// Last command, socket open or close (moves the idle expiry), as stored.
    active_at: u64,
    /// The numbering the events belong to (see [`crate::session::replay`]).
    epochs: Epochs,
}

#[durable_object]
pub struct SessionDo {
    state: State,
    env: Env,
    inner: RefCell<Option<Inner>>,
    conns: RefCell<HashMap<String, Attachment>>,
    /// The LLM call running in this instance, with the means to abort it.
    live: RefCell<Option<(u64, AbortController)>>,
    /// The call the session announced last ([`Effect::StartCall`]), not yet started.
    next_call: RefCell<Option<CallSpec>>,
    /// The last call's lease, given back with the next call's lease request
    /// ([`Self::run_call`]); sent alone before anything else waits.
    given_back: RefCell<Option<provider::GivenBack>>,
    /// Effects whose events were sent and are not stored yet ([`Self::commit_streaming`]).
    sent_ahead: RefCell<Vec<Effect>>,
    /// The alarm loop is running calls; a newly announced call will be picked up by it.
    running: Cell<bool>,
    alarm_at: Cell<Option<u64>>,
    /// The session was deleted or expired while this instance lived: everything answers as
    /// if it never existed (a call still unwinding finds nothing to write).
    gone: Cell<bool>,
    renewed_at: Cell<u64>,
    /// Open AG-UI HTTP streams (`/agui`): each follows one run to its end.
    readers: RefCell<Readers>,
    /// The summary the owners' indexes last got.
    pushed: RefCell<Option<Summary>>,
}

/// Logs the AG-UI streams the readers' bounds cut (`agui_stream_cut`).
fn log_cuts(cuts: Vec<Cut>) {
    for c in cuts {
        log::warn(
            "agui_stream_cut",
            json!({"reason": c.reason.as_str(), "heldBytes": c.held, "resumeAfter": c.resume_after}),
        );
    }
}

impl DurableObject for SessionDo {
    fn new(state: State, env: Env) -> Self {
        // Keepalive pings are answered by the runtime without waking the object.
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            state.set_websocket_auto_response(&pair);
        }
        SessionDo {
            state,
            env,
            inner: RefCell::new(None),
            conns: RefCell::new(HashMap::new()),
            live: RefCell::new(None),
            next_call: RefCell::new(None),
            given_back: RefCell::new(None),
            sent_ahead: RefCell::new(Vec::new()),
            running: Cell::new(false),
            alarm_at: Cell::new(None),
            gone: Cell::new(false),
            renewed_at: Cell::new(0),
            readers: RefCell::new(Readers::new()),
            pushed: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.path();
        let sent_at = req
            .headers()
            .get(SENT_AT)?
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(waited) = sent_at.map(|t| now_ms().saturating_sub(t)) {
            if waited >= LATE_MS {
                log::warn(
                    "session_request_late",
                    json!({"path": path, "waitedMs": waited}),
                );
            }
        }
        let id = req.headers().get("x-session-id")?.unwrap_or_default();
        if path == "/init" {
            let resp = self.init(&id)?;
            // Its idle expiry is set from the start: a session nobody ever joins expires too.
            if self.load()? {
                self.schedule_alarm().await?;
            }
            return Ok(resp);
        }
        if !self.load()? {
            return error_response(404, "not_found", "No session with this id.");
        }
        let view = match req.headers().get("x-view-secret")? {
            Some(secret) => match self.view_of(&secret, &req)? {
                Some(v) => Some(v),
                None => return error_response(404, "not_found", "No session with this id."),
            },
            None => None,
        };
        if let Some(v) = view {
            return self.view_request(req, &path, v).await;
        }
        if path == "/delete" {
            self.destroy("deleted").await?;
            return Ok(Response::empty()?.with_status(204));
        }
        if path == "/views" || path.starts_with("/views/") {
            return self.views(&req, &path).await;
        }
        if path == "/remember" {
            return self.remember(&req, None).await;
        }
        if path == "/rename" {
            return self.rename(req).await;
        }
        let resp = match path.as_str() {
            "/ws" => self.upgrade(&req, None).await,
            "/agui" => self.agui(req).await,
            // A read changes nothing and answers at once: it never waits for the alarm or for
            // a push to the owners' indexes (another object, which may be slow). The alarm is
            // durable, so a session woken by a read still resumes its work on time.
            p => {
                let delay = self.with_inner(|i| i.cfg.read_delay_ms);
                if delay > 0 {
                    Delay::from(Duration::from_millis(delay)).await;
                }
                return self
                    .read(&req, p)
                    .unwrap_or_else(|| error_response(404, "not_found", "Unknown route."));
            }
        };
        self.kick().await?;
        resp
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let now = now_ms();
        let key = self.conn_key(&ws);
        let incoming = match &message {
            WebSocketIncomingMessage::String(s) => Incoming::Text(s),
            WebSocketIncomingMessage::Binary(b) => Incoming::Binary(b.len()),
        };
        let action = self.with_conn(&ws, &key, |a| a.c.on_frame(incoming, now));
        match action {
            Action::None => {}
            Action::Close { code, reason } => {
                log::warn(
                    "socket_closed",
                    json!({"conn": key, "code": code, "reason": reason}),
                );
                self.close(&ws, &key, code, reason);
            }
            Action::Warn => self.send(
                &ws,
                &key,
                ConnectionCustom::Warning(WarningValue {
                    code: WarningCode::RateLimited,
                    message: "Too many frames: slow down or the connection will be closed.".into(),
                }),
            ),
            Action::Pong => self.send(&ws, &key, ConnectionCustom::Pong(PongValue { t: now })),
            Action::Reject(r) => {
                // Bad input is the client's problem, not the server's: one line, no stack.
                if !matches!(
                    r.code,
                    RejectionCode::HelloRequired | RejectionCode::ResyncRateLimited
                ) {
                    log::warn("frame_rejected", json!({"conn": key, "code": r.code}));
                }
                self.reply_rejection(&ws, &key, &r);
            }
            Action::Hello { last_seq, epoch } => {
                if !self.load()? {
                    self.close(&ws, &key, CLOSE_SESSION_GONE, "session gone");
                    return Ok(());
                }
                self.hello(&ws, &key, last_seq, epoch)?;
            }
            Action::ContinueCatchUp => {
                if self.load()? {
                    self.pump(&ws, &key)?;
                }
            }
            Action::Command(env) => {
                if !self.load()? {
                    self.close(&ws, &key, CLOSE_SESSION_GONE, "session gone");
                    return Ok(());
                }
                let name = env.command.name();
                let id = env.id.clone();
                let result = self.with_inner(|i| i.session.command(env, now));
                // Stored before the answer: an `ack` means the command survives a crash (a
                // failed write sends none, and the client resends the same id).
                self.touch(now)?;
                self.commit()?;
                match result {
                    Ok(ack) => self.send(
                        &ws,
                        &key,
                        ConnectionCustom::Ack(AckValue {
                            id,
                            command: name.into(),
                            duplicate: ack.duplicate,
                        }),
                    ),
                    Err(r) => self.reply_rejection(&ws, &key, &r),
                }
                self.kick().await?;
            }
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        let key = self.conn_key(&ws);
        let lease = self.forget(&ws, &key);
        let _ = ws.close(Some(1000), Some("closed"));
        self.release(lease).await;
        // The last socket gone: the sweep timer goes with it.
        if self.load()? {
            self.touch(now_ms())?;
            self.schedule_alarm().await?;
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let key = self.conn_key(&ws);
        let lease = self.forget(&ws, &key);
        self.release(lease).await;
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        if self.load()? {
            let now = now_ms();
            let due = self.with_inner(|i| schedule::due(&i.timers, now));
            if due.contains(&Timer::Expire) && self.expire_due(now) {
                self.destroy("expired").await?;
                return Response::ok("");
            }
            // `call` and `live` need nothing beyond this: the session's own timers, then any
            // call that is pending (a restored one after a crash among them).
            self.with_inner(|i| i.session.on_timeout(now));
            self.commit()?;
            if due.contains(&Timer::Sweep) {
                self.sweep(now).await;
            }
            self.run_calls().await;
        }
        self.schedule_alarm().await?;
        Response::ok("")
    }
}

impl SessionDo {
    // ---- loading and committing ---------------------------------------------------------

    fn init(&self, id: &str) -> Result<Response> {
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

    fn cfg(&self) -> Result<Config> {
        super::config(&self.env).map_err(|e| {
            log::error("config_invalid", json!({"message": e}));
            worker::Error::RustError(e)
        })
    }

    /// Loads the session into memory (restoring it after eviction or a restart). False when
    /// this object holds no session.
    fn load(&self) -> Result<bool> {
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

    fn with_inner<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.borrow_mut();
        f(g.as_mut().expect("session loaded"))
    }

    /// Executes the session's effects: store events (and messages, artifacts), persist the
    /// session, keep every table within its bound, then broadcast — storage before sending.
    /// Effects a streaming call sent ahead ([`Self::commit_streaming`]) are stored first.
    fn commit(&self) -> Result<()> {
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
    fn commit_streaming(&self) -> Result<bool> {
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
    async fn storing_meanwhile<T>(
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
    fn store_sent_ahead(&self) -> Result<()> {
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

    fn drain_effects(&self) -> Vec<Effect> {
        match self.inner.borrow_mut().as_mut() {
            Some(i) => std::iter::from_fn(|| i.session.poll_effect()).collect(),
            None => Vec::new(),
        }
    }

    /// Runs `effects` against storage (all of it, in order), then broadcasts their events
    /// unless `sent` (already broadcast), and feeds the HTTP streams.
    fn apply(&self, effects: Vec<Effect>, sent: bool) -> Result<()> {
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
    fn feed_streams(&self, frames: &[(u64, String)]) {
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

    fn abort(&self, ids: &[u64]) {
        for id in ids {
            let mut live = self.live.borrow_mut();
            if live.as_ref().is_some_and(|(l, _)| l == id) {
                if let Some((_, c)) = live.take() {
                    c.abort();
                }
            }
        }
    }

    /// Moves the idle expiry (written at most once a minute, and often enough for a short
    /// `SESSION_IDLE_TTL_S`: [`Config::activity_write_ms`]).
    fn touch(&self, now: u64) -> Result<()> {
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
    fn expire_due(&self, now: u64) -> bool {
        let busy = !self.state.get_websockets().is_empty()
            || self.live.borrow().is_some()
            || self.next_call.borrow().is_some()
            || self.with_inner(|i| i.session.live_call().is_some());
        if busy {
            let _ = self.touch(now);
            return false;
        }
        self.with_inner(|i| now >= i.active_at + i.cfg.session_idle_ttl_ms)
    }

    /// Deletes the session: sockets closed (4404), the call aborted, every table and the
    /// alarm removed, the admission count freed.
    async fn destroy(&self, why: &str) -> Result<()> {
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

    fn set_live(&self, call: Option<(u64, AbortController)>) {
        *self.live.borrow_mut() = call;
    }

    // ---- sockets ------------------------------------------------------------------------

    async fn upgrade(&self, req: &Request, view: Option<ViewConn>) -> Result<Response> {
        let now = now_ms();
        let client = req.headers().get("x-client")?.unwrap_or_default();
        let lease = req.headers().get("x-lease")?.unwrap_or_default();
        // Sockets that never said hello in time hold no slot: close them now.
        let mut held = 0;
        for ws in self.state.get_websockets() {
            let key = self.conn_key(&ws);
            if self.with_conn(&ws, &key, |a| a.c.holds_slot(now)) {
                held += 1;
            } else {
                let lease = self.forget(&ws, &key);
                let _ = ws.close(Some(CLOSE_HELLO_TIMEOUT), Some("no hello within 10 s"));
                self.release(lease).await;
            }
        }
        if held >= MAX_SOCKETS_PER_SESSION {
            return error_response(
                429,
                "too_many_connections",
                &format!("This session already has {MAX_SOCKETS_PER_SESSION} connections."),
            );
        }
        let pair = WebSocketPair::new()?;
        let tag = format!("c{}", random_hex(8));
        self.state
            .accept_websocket_with_tags(&pair.server, &[tag.as_str()]);
        let mut c = Connection::new(now);
        c.read_only = view.is_some();
        let a = Attachment {
            client,
            lease,
            c,
            view,
        };
        pair.server.serialize_attachment(&a)?;
        self.conns.borrow_mut().insert(tag, a);
        self.touch(now)?;
        let mut resp = Response::from_websocket(pair.client)?;
        if let Some(p) = choose_subprotocol(
            &req.headers()
                .get("sec-websocket-protocol")?
                .unwrap_or_default(),
        ) {
            resp.headers_mut().set("sec-websocket-protocol", &p)?;
        }
        // The pre-hello deadline must be swept even if nothing else is scheduled.
        self.schedule_alarm().await?;
        Ok(resp)
    }

    fn conn_key(&self, ws: &WebSocket) -> String {
        self.state
            .get_tags(ws)
            .into_iter()
            .find(|t| t.starts_with('c'))
            .unwrap_or_default()
    }

    fn with_conn<R>(&self, ws: &WebSocket, key: &str, f: impl FnOnce(&mut Attachment) -> R) -> R {
        let mut conns = self.conns.borrow_mut();
        let conn = conns.entry(key.to_string()).or_insert_with(|| {
            ws.deserialize_attachment::<Attachment>()
                .ok()
                .flatten()
                .unwrap_or_else(|| Attachment {
                    client: String::new(),
                    lease: String::new(),
                    c: Connection::new(now_ms()),
                    view: None,
                })
        });
        f(conn)
    }

    /// Writes the socket's state into its hibernation attachment.
    fn save_conn(&self, ws: &WebSocket, key: &str) {
        if let Some(a) = self.conns.borrow().get(key) {
            if let Err(e) = ws.serialize_attachment(a) {
                log::warn(
                    "attachment_failed",
                    json!({"conn": key, "message": e.to_string()}),
                );
            }
        }
    }

    /// Forgets a socket; returns its admission lease.
    fn forget(&self, ws: &WebSocket, key: &str) -> String {
        let lease = self.with_conn(ws, key, |a| a.lease.clone());
        self.conns.borrow_mut().remove(key);
        lease
    }

    fn close(&self, ws: &WebSocket, key: &str, code: u16, reason: &str) {
        let _ = ws.close(Some(code), Some(reason));
        self.conns.borrow_mut().remove(key);
        // The runtime still calls `websocket_close`, which releases the lease.
    }

    async fn release(&self, lease: String) {
        if lease.is_empty() {
            return;
        }
        let ask = Ask {
            lease,
            ..Default::default()
        };
        if let Err(e) = admission_do::ask(&self.env, "/close", &ask).await {
            log::warn("admission_unreachable", json!({"message": e.to_string()}));
        }
    }

    /// `hello {lastSeq, epoch}`: welcome, then the catch-up (replay pages under flow control, or a
    /// bounded snapshot), then `caught_up`; from then on the socket gets live events.
    fn hello(&self, ws: &WebSocket, key: &str, last_seq: u64, epoch: Option<u64>) -> Result<()> {
        let read_only = self.with_conn(ws, key, |a| a.view.is_some());
        let (welcome, p, newest) = self.with_inner(|i| {
            let newest = i.session.last_seq();
            let p = plan(last_seq, epoch, &i.epochs, i.oldest, newest);
            let (mode, reason) = match p {
                ReplayPlan::Replay { .. } => (WelcomeMode::Replay, None),
                ReplayPlan::Snapshot { reason, .. } => (WelcomeMode::Snapshot, Some(reason)),
            };
            let welcome = ConnectionCustom::Welcome(WelcomeValue {
                session_id: i.session.state().session_id.clone(),
                demo: i.cfg.demo(),
                model: i.cfg.model_label(),
                last_seq: newest,
                epoch: i.epochs.current(),
                mode,
                reason,
                flow: Some(FlowValue {
                    window: SEND_WINDOW_BYTES,
                    page: CATCHUP_PAGE_BYTES,
                }),
                read_only,
            });
            (welcome, p, newest)
        });
        self.send_at(ws, key, last_seq.min(newest), welcome);
        self.with_conn(ws, key, |a| object::begin_catch_up(&mut a.c, &p));
        self.pump(ws, key)
    }

    /// Sends replay pages while the client's window is open; finishes with `caught_up` when
    /// the log's newest event is sent. A paused catch-up goes on at the client's next `ack`.
    fn pump(&self, ws: &WebSocket, key: &str) -> Result<()> {
        loop {
            let (newest, oldest) = self.with_inner(|i| (i.session.last_seq(), i.oldest));
            let (from, to) = match self
                .with_conn(ws, key, |a| object::catch_up_step(&mut a.c, oldest, newest))
            {
                CatchUpStep::Idle => return Ok(()),
                CatchUpStep::Pause => {
                    self.save_conn(ws, key);
                    return Ok(());
                }
                CatchUpStep::Snapshot => return self.snapshot_catch_up(ws, key, now_ms()),
                CatchUpStep::CaughtUp { last_seq } => {
                    self.send_at(
                        ws,
                        key,
                        last_seq,
                        ConnectionCustom::CaughtUp(CaughtUpValue {
                            last_seq,
                            omitted_messages: 0,
                        }),
                    );
                    self.with_conn(ws, key, |a| a.c.joined());
                    self.save_conn(ws, key);
                    return Ok(());
                }
                CatchUpStep::Page { from, to } => (from, to),
            };
            let page = self.with_inner(|i| i.store.events(from, to, CATCHUP_PAGE_EVENTS))?;
            let mut seq = from;
            for f in &page {
                if self.send_frame(ws, key, seq, f).is_err() {
                    return Ok(());
                }
                seq += 1;
                if !self.with_conn(ws, key, |a| a.c.catch_up_open()) {
                    break;
                }
            }
            self.with_conn(ws, key, |a| object::page_sent(&mut a.c, seq));
        }
    }

    fn snapshot_catch_up(&self, ws: &WebSocket, key: &str, now: u64) -> Result<()> {
        let (state, (messages, omitted), newest) = self.with_inner(|i| -> Result<_> {
            Ok((
                i.session.state().to_json(),
                i.store
                    .recent_messages(SNAPSHOT_MESSAGES_BYTES, &i.open_text)?,
                i.session.last_seq(),
            ))
        })?;
        let snap = frame(None, now, &Event::StateSnapshot { snapshot: state });
        let msgs = frame(None, now, &Event::MessagesSnapshot { messages });
        if self.send_frame(ws, key, newest, &snap).is_err()
            || self.send_frame(ws, key, newest, &msgs).is_err()
        {
            return Ok(());
        }
        self.send_at(
            ws,
            key,
            newest,
            ConnectionCustom::CaughtUp(CaughtUpValue {
                last_seq: newest,
                omitted_messages: omitted as u64,
            }),
        );
        self.with_conn(ws, key, |a| a.c.joined());
        self.save_conn(ws, key);
        Ok(())
    }

    /// Sends one frame, counting it against the socket's window; a client too far behind is
    /// closed (4008) and `Err` says so.
    fn send_frame(
        &self,
        ws: &WebSocket,
        key: &str,
        seq: u64,
        f: &str,
    ) -> std::result::Result<(), ()> {
        let view = self.with_conn(ws, key, |a| {
            a.view
                .as_ref()
                .map(|v| view::redact(f, &v.session, &v.key).into_owned())
        });
        let f = view.as_deref().unwrap_or(f);
        let _ = ws.send_with_str(f);
        let over = self.with_conn(ws, key, |a| a.c.on_sent(seq, f.len()));
        if let Some(Action::Close { code, reason }) = over {
            log::warn("socket_too_slow", json!({"conn": key}));
            self.close(ws, key, code, reason);
            return Err(());
        }
        Ok(())
    }

    /// An unlogged connection frame; `at` is the client's position in the log.
    fn send_at(&self, ws: &WebSocket, key: &str, at: u64, value: ConnectionCustom) {
        let f = frame(None, now_ms(), &value.into());
        let _ = self.send_frame(ws, key, at, &f);
    }

    fn send(&self, ws: &WebSocket, key: &str, value: ConnectionCustom) {
        let at = self
            .inner
            .borrow()
            .as_ref()
            .map_or(0, |i| i.session.last_seq());
        self.send_at(ws, key, at, value);
    }

    fn reply_rejection(&self, ws: &WebSocket, key: &str, r: &Rejection) {
        self.send(ws, key, ConnectionCustom::Rejected(RejectedValue::from(r)));
    }

    fn broadcast<S: AsRef<str>>(&self, frames: &[(u64, S)]) {
        if frames.is_empty() {
            return;
        }
        for ws in self.state.get_websockets() {
            let key = self.conn_key(&ws);
            if self.with_conn(&ws, &key, |a| a.c.ready) {
                for (seq, f) in frames {
                    if self.send_frame(&ws, &key, *seq, f.as_ref()).is_err() {
                        break;
                    }
                }
            }
        }
    }

    /// Closes sockets that never said hello in time or went silent, and tells the admission
    /// object the others are still open.
    async fn sweep(&self, now: u64) {
        let idle = self.with_inner(|i| i.cfg.socket_idle_ms);
        let mut alive = Vec::new();
        let mut released = Vec::new();
        for ws in self.state.get_websockets() {
            let key = self.conn_key(&ws);
            let pinged = auto_response_time(&self.state, &ws);
            match self.with_conn(&ws, &key, |a| a.c.expired(now, idle, pinged)) {
                Some((code, reason)) => {
                    log::info("socket_swept", json!({"conn": key, "code": code}));
                    released.push(self.forget(&ws, &key));
                    let _ = ws.close(Some(code), Some(reason));
                }
                None => {
                    let (lease, client) =
                        self.with_conn(&ws, &key, |a| (a.lease.clone(), a.client.clone()));
                    if !lease.is_empty() {
                        alive.push((lease, client));
                    }
                }
            }
        }
        for lease in released {
            self.release(lease).await;
        }
        alive.extend(self.readers.borrow().leases());
        if !alive.is_empty() && now >= self.renewed_at.get() + LEASE_RENEW_MS {
            self.renewed_at.set(now);
            let ask = Ask {
                leases: alive,
                ..Default::default()
            };
            if let Err(e) = admission_do::ask(&self.env, "/renew", &ask).await {
                log::warn("admission_unreachable", json!({"message": e.to_string()}));
            }
        }
    }

    // ---- AG-UI over HTTP -----------------------------------------------------------------

    /// `POST /agui` (a `RunAgentInput`: one command, then its run as SSE) or `GET /agui`
    /// (`?after=<seq>` or `Last-Event-ID`: the rest of the run in progress).
    async fn agui(&self, req: Request) -> Result<Response> {
        // The client's address as the router counts it (the streams' caps are per client), and
        // the lease it took on the client's connections, kept by a stream that takes a place.
        let client = req
            .headers()
            .get("x-client")?
            .unwrap_or_else(|| "unknown".into());
        let lease = req.headers().get("x-lease")?.unwrap_or_default();
        let resp = self.agui_request(req, &client, &lease).await;
        if !lease.is_empty() && !self.readers.borrow().holds(&lease) {
            self.release(lease).await;
        }
        self.release_freed();
        resp
    }

    /// Gives back (on a task of its own) the connection leases of the streams that no longer
    /// take a place.
    fn release_freed(&self) {
        let freed = self.readers.borrow_mut().take_freed();
        if freed.is_empty() {
            return;
        }
        let env = self.env.clone();
        wasm_bindgen_futures::spawn_local(async move {
            for lease in freed {
                let ask = Ask {
                    lease,
                    ..Default::default()
                };
                if let Err(e) = admission_do::ask(&env, "/close", &ask).await {
                    log::warn("admission_unreachable", json!({"message": e.to_string()}));
                }
            }
        });
    }

    async fn agui_request(&self, mut req: Request, client: &str, lease: &str) -> Result<Response> {
        let last_event_id = match req.headers().get("last-event-id")? {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n <= MAX_SEQ => Some(n),
                _ => return bad_number("Last-Event-ID", 0, MAX_SEQ),
            },
        };
        if req.method() == worker::Method::Get {
            let q = query(&req)?;
            let after = match (q.contains_key("after"), last_event_id) {
                (true, _) => match whole(&q, "after", 0, MAX_SEQ) {
                    Ok(n) => n,
                    Err(r) => return r,
                },
                (false, Some(n)) => n,
                (false, None) => {
                    return error_response(
                        400,
                        "missing_field",
                        "Say where to resume: ?after=<seq> or a Last-Event-ID header.",
                    )
                }
            };
            return self.open_stream(client, lease, after);
        }
        let body = req.bytes().await?;
        let now = now_ms();
        // Past the client's or the session's cap on streams nothing is applied.
        if let Err(e) = self.readers.borrow_mut().admit(client) {
            log::warn("agui_refused", json!({"code": e.code}));
            return http_error(&e);
        }
        let mut runs: Vec<RememberedRun> = self
            .with_inner(|i| i.store.meta("agui_runs"))?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        // A repeated runId applies nothing: it streams its run again (or from Last-Event-ID),
        // or is refused id_reused when its body means another command.
        let sid = self.with_inner(|i| i.session.state().session_id.clone());
        match repeated_run(&runs, &body, &sid) {
            Ok(Some(from)) => {
                return self.open_stream(client, lease, last_event_id.unwrap_or(from - 1))
            }
            Ok(None) => {}
            Err(e) => {
                log::warn("agui_refused", json!({"code": e.code}));
                return http_error(&e);
            }
        }
        let (decoded, gate) = self.with_inner(|i| {
            let st = i.session.state();
            let gate = st.gate.as_ref().map(|g| OpenGate {
                id: &g.id,
                stage: g.stage,
            });
            let held = st.gate.as_ref().map(|g| (g.id.clone(), g.stage));
            (decode_run_input(&body, &st.session_id, gate), held)
        });
        let run = match decoded {
            Ok(r) => r,
            Err(e) => {
                log::warn("agui_refused", json!({"code": e.code}));
                return http_error(&e);
            }
        };
        let key = run.envelope.id.clone().unwrap_or_default();
        let digest = run.digest.clone();
        let before = self.with_inner(|i| i.session.last_seq());
        let result = self.with_inner(|i| i.session.command(run.envelope, now));
        self.touch(now)?;
        self.commit()?;
        let ack = match result {
            Ok(a) => a,
            Err(r) => {
                log::warn("agui_refused", json!({"code": r.code}));
                return http_error(&HttpError::from_rejection(&r));
            }
        };
        let after = if !ack.duplicate {
            remember_run(
                &mut runs,
                RememberedRun {
                    key: key.clone(),
                    from: before + 1,
                    digest: Some(digest),
                    gate,
                },
            );
            let j = serde_json::to_string(&runs).unwrap_or_default();
            self.with_inner(|i| i.store.set_meta("agui_runs", &j))?;
            last_event_id.unwrap_or(before)
        } else if let Some(n) = last_event_id {
            n
        } else if let Some(r) = runs.iter().find(|r| r.key == key) {
            r.from - 1
        } else {
            return error_response(
                409,
                "run_not_remembered",
                "This runId was applied long ago; start a new run, or resume its stream \
                 with GET ?after=<seq>.",
            );
        };
        self.open_stream(client, lease, after)
    }

    /// The SSE response for the events after `after`, to the end of the run: the logged
    /// ones now, in this same synchronous step the live ones are hooked up (no gap, no
    /// duplicate).
    fn open_stream(&self, client: &str, lease: &str, after: u64) -> Result<Response> {
        let (oldest, newest, open) = self.with_inner(|i| {
            let status = i.session.state().run.status;
            (
                i.oldest,
                i.session.last_seq(),
                matches!(status, RunStatus::Running | RunStatus::Paused),
            )
        });
        let from = match plan_stream(after, oldest, newest, open) {
            StreamStart::From(f) => f,
            StreamStart::Nothing => return sse_response(vec![": no run in progress\n\n".into()]),
            StreamStart::Truncated { oldest } => {
                return error_response(
                    410,
                    "log_truncated",
                    &format!("Events before seq {oldest} are no longer kept."),
                )
            }
            StreamStart::Ahead { newest } => {
                return error_response(
                    400,
                    "invalid_field",
                    &format!("The log ends at seq {newest}; \"after\" is beyond it."),
                )
            }
        };
        let (id, mut body) = match self.readers.borrow_mut().open(client, lease, from) {
            Ok(opened) => opened,
            Err(e) => {
                log::warn("agui_refused", json!({"code": e.code}));
                return http_error(&e);
            }
        };
        let mut next = from;
        'replay: while next <= newest {
            let page = self.with_inner(|i| i.store.events(next, newest, 200))?;
            if page.is_empty() {
                break;
            }
            for f in &page {
                log_cuts(self.readers.borrow_mut().offer_to(id, next, f));
                if !self.readers.borrow().is_live(id) {
                    break 'replay;
                }
                next += 1;
            }
        }
        // The runtime pulls a chunk when its client reads: what is not read stays in the
        // readers' queue, within their bounds.
        let body = futures_util::stream::poll_fn(move |cx| {
            body.poll_chunk(cx)
                .map(|c| c.map(|c| Ok::<Vec<u8>, worker::Error>(c.into_bytes())))
        });
        let mut resp = Response::from_stream(body)?;
        sse_headers(&mut resp)?;
        Ok(resp)
    }

    // ---- view-only links ----------------------------------------------------------------

    /// The view a request's secret opens, if it is one of this session's.
    fn view_of(&self, secret: &str, req: &Request) -> Result<Option<ViewConn>> {
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
    async fn view_request(&self, req: Request, path: &str, v: ViewConn) -> Result<Response> {
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
    async fn views(&self, req: &Request, path: &str) -> Result<Response> {
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

    // ---- "Your sessions" (the owners' indexes; rules in crate::index) --------------------

    /// What the owners' lists show of this session now.
    fn summary(&self) -> Result<Summary> {
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
    async fn remember(&self, req: &Request, view: Option<&str>) -> Result<Response> {
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
    async fn rename(&self, mut req: Request) -> Result<Response> {
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
    async fn push_index(&self) {
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

    // ---- HTTP reads ---------------------------------------------------------------------

    /// The plain reads, the same for a session id and a view key; `None` for any other path.
    fn read(&self, req: &Request, path: &str) -> Option<Result<Response>> {
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

    fn snapshot(&self) -> Result<Response> {
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

    fn events(&self, req: &Request) -> Result<Response> {
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
    fn messages_page(&self, req: &Request) -> Result<Response> {
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
    fn export(&self, redact: Option<(String, String)>) -> Result<Response> {
        let (export, head) = self.with_inner(|i| {
            let newest = i.session.last_seq();
            let head = json!({"kind": "session", "id": i.session.state().session_id,
                "exportedAt": now_ms(), "lastSeq": newest, "oldestSeq": i.oldest,
                "demo": i.cfg.demo(), "state": i.session.state().to_json()})
            .to_string();
            Export::new(&head, i.oldest, newest, redact)
        });
        super::export::response(self.state.storage().sql(), export, head)
    }

    /// `GET /files`: the current project's files with their kept history.
    fn files(&self) -> Result<Response> {
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
    fn file(&self, req: &Request, raw: &str) -> Result<Response> {
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
    fn project_zip(&self) -> Result<Response> {
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

    fn artifacts(&self, req: &Request, stage: &str) -> Result<Response> {
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

    // ---- the alarm: calls and timers ----------------------------------------------------

    /// Makes sure a pending LLM call gets run: the alarm loop picks it up, or a new alarm
    /// fires at once.
    async fn kick(&self) -> Result<()> {
        if self.next_call.borrow().is_some() && !self.running.get() {
            self.push_index().await;
            self.set_alarm_at(now_ms()).await?;
        } else {
            // (which pushes the index too)
            self.schedule_alarm().await?;
        }
        Ok(())
    }

    async fn run_calls(&self) {
        if self.running.replace(true) {
            return;
        }
        loop {
            let Some(spec) = self.next_call.borrow_mut().take() else {
                self.running.set(false);
                break;
            };
            if let Err(e) = self.run_call(spec.clone()).await {
                // Storage or runtime failure: log it; the alarm retries later (a call that
                // had begun is refused then, and its watchdog takes over).
                log::error("call_failed", json!({"message": e.to_string()}));
                self.next_call.borrow_mut().get_or_insert(spec);
                self.running.set(false);
                break;
            }
            if self.gone.get() {
                self.running.set(false);
                break;
            }
        }
        // No call follows at once (a gate, the run's end, a failure): give the lease back now.
        self.give_back_lease().await;
    }

    /// Sends the lease the last call gave back, if the next call's lease request did not.
    async fn give_back_lease(&self) {
        let back = self.given_back.borrow_mut().take();
        if let Some(back) = back {
            provider::release(&self.env, back).await;
        }
    }

    /// Runs one LLM call: the core's [`CallDriver`] decides, this loop executes its steps
    /// (the I/O is in [`provider`]) and commits the session's effects after each.
    async fn run_call(&self, spec: CallSpec) -> Result<()> {
        let id = spec.call_id;
        let (cfg, mut driver) = self.with_inner(|i| -> Result<_> {
            let messages = object::prompt(&spec, |stage, v| i.store.artifact(stage, v))?;
            let version = i.session.state().agent(spec.stage).version + 1;
            let session_id = i.session.state().session_id.clone();
            let driver = CallDriver::new(spec, &messages, i.cfg.call(), &session_id, version);
            Ok((i.cfg.clone(), driver))
        })?;
        let controller = AbortController::default();
        let signal = controller.signal();
        self.set_live(Some((id, controller)));
        // Stored before the first event is sent ahead of storage; cleared once all are stored.
        self.with_inner(|i| i.store.set_meta("streaming", &id.to_string()))?;
        let mut body = None;
        let mut timer: provider::ReadTimer = None;
        // Set while events sent ahead wait to be stored: fires on a later turn.
        let mut store_at: Option<std::pin::Pin<Box<Delay>>> = None;
        let mut input = Input::Start;
        // The follow-on the limiter set aside with this call's lease. A call that went on
        // under the last one's: the limiter is to hear of it (`go_on`), then its answer.
        let mut follow_on: Option<u32> = None;
        let mut go_on: Option<(provider::GivenBack, u32)> = None;
        let mut going_on: Option<oneshot::Receiver<Option<u32>>> = None;
        loop {
            let started = input == Input::Start;
            let step = {
                let mut g = self.inner.borrow_mut();
                let Some(i) = g.as_mut() else { break };
                driver.advance(&mut i.session, input, now_ms())
            };
            for (level, event, fields) in driver.take_notes() {
                log::at(level, event, fields);
            }
            if !self.commit_streaming()? {
                store_at = None;
            } else if store_at.is_none() {
                let wait = self.with_inner(|i| i.cfg.store_after_send_ms);
                store_at = Some(Box::pin(Delay::from(Duration::from_millis(wait))));
            }
            if store_at.is_some() && !matches!(step, Step::Read { .. } | Step::Sleep { .. }) {
                // The call's other steps talk to other objects at its edges: store first.
                store_at = None;
                self.store_sent_ahead()?;
            }
            if started {
                // The call has begun: its watchdog and crash-recovery timers go in the table.
                self.schedule_alarm().await?;
            }
            if matches!(step, Step::Fetch { .. } | Step::Sleep { .. }) {
                // The last call's lease waits for this call's lease request only through the
                // steps before it (a cache lookup); a call without one sends it here. (Reads
                // come after a fetch: not checked per chunk.)
                self.give_back_lease().await;
            }
            input = match step {
                Step::Finished => break,
                Step::LookupCache { key } => {
                    Input::Cache(provider::cache_get(&self.env, &cfg, &key).await)
                }
                Step::AcquireLease {
                    lease,
                    bucket,
                    tokens,
                } => {
                    let back = self.given_back.borrow_mut().take();
                    match object::lease_start(back, &bucket, tokens) {
                        // Set aside for this call: it starts now, and the limiter hears of it
                        // once the provider has answered.
                        LeaseStart::GoOn(b) => {
                            go_on = Some((b, tokens));
                            Input::Lease(Ok(()))
                        }
                        LeaseStart::Acquire {
                            release_first,
                            give_back,
                        } => {
                            if let Some(other) = release_first {
                                // Another limiter (the next stage uses another model).
                                provider::release(&self.env, other).await;
                            }
                            let got = provider::acquire(
                                &self.env, &cfg, &bucket, &lease, tokens, give_back,
                            );
                            Input::Lease(got.await.map(|f| follow_on = f))
                        }
                    }
                }
                Step::Fetch {
                    url,
                    headers,
                    body: request,
                    timeout_ms,
                } => {
                    let fetched =
                        provider::fetch(&url, &headers, request, timeout_ms, &signal).await;
                    // Told on its own task while the body streams: under `wrangler dev` the
                    // limiter's write before the provider's answer held that answer up, and
                    // deployed the limiter may be far away. Wanted again only at the release.
                    // (Told also when the runtime failed the request: it may have left.)
                    if let Some((b, tokens)) = go_on.take() {
                        let (tx, rx) = oneshot::channel();
                        let (env, cfg) = (self.env.clone(), cfg.clone());
                        wasm_bindgen_futures::spawn_local(async move {
                            let _ = tx.send(provider::go_on(&env, &cfg, b, tokens).await);
                        });
                        going_on = Some(rx);
                    }
                    let (answer, stream) = fetched?;
                    body = stream;
                    timer = None;
                    answer
                }
                Step::Read { deadline } => match body.as_mut() {
                    // What was sent ahead is stored once its timer fires, while this read
                    // waits: the next chunk does not wait for the write's turn.
                    Some(b) => {
                        let read = provider::read(b, deadline, &mut timer);
                        self.storing_meanwhile(read, &mut store_at).await?
                    }
                    None => Input::End,
                },
                Step::Sleep { until } => {
                    let sleep = provider::sleep_until(until);
                    self.storing_meanwhile(sleep, &mut store_at).await?;
                    Input::Woke
                }
                Step::Release {
                    lease,
                    bucket,
                    tokens,
                } => {
                    self.set_live(None);
                    // The limiter hears of this call before it hears of its lease again.
                    let told = self.gone_on(&cfg, &mut go_on, &mut going_on).await;
                    // Kept for the next call's lease request (a stage usually follows at once).
                    let back = provider::GivenBack {
                        bucket,
                        lease,
                        tokens,
                        follow_on: object::follow_on_kept(told, follow_on.take()),
                        cfg: cfg.clone(),
                    };
                    let earlier = self.given_back.borrow_mut().replace(back);
                    if let Some(earlier) = earlier {
                        provider::release(&self.env, earlier).await;
                    }
                    Input::Done
                }
                Step::Store { key, text, usage } => {
                    provider::cache_put(&self.env, &cfg, &key, &text, usage).await;
                    Input::Done
                }
            };
        }
        self.gone_on(&cfg, &mut go_on, &mut going_on).await;
        self.set_live(None);
        self.store_sent_ahead()?;
        if let Some(i) = self.inner.borrow().as_ref() {
            i.store.clear_meta("streaming")?;
        }
        // The stage's end (status, tokens, cost) reaches the owners' lists now.
        self.push_index().await;
        Ok(())
    }

    /// Makes sure the limiter has heard that the call went on under the last one's lease
    /// (telling it now if the call never reached the provider); the next follow-on it set
    /// aside, if it was told.
    async fn gone_on(
        &self,
        cfg: &Config,
        go_on: &mut Option<(provider::GivenBack, u32)>,
        going_on: &mut Option<oneshot::Receiver<Option<u32>>>,
    ) -> Option<u32> {
        if let Some((b, tokens)) = go_on.take() {
            return provider::go_on(&self.env, cfg, b, tokens).await;
        }
        going_on.take()?.await.ok().flatten()
    }

    /// Plans the session's timers into the `schedule` table (writing only rows that change)
    /// and sets the one alarm to the earliest of them.
    async fn schedule_alarm(&self) -> Result<()> {
        if self.gone.get() {
            return Ok(());
        }
        self.push_index().await;
        let now = now_ms();
        let sockets = self.state.get_websockets();
        let hello_deadline = sockets
            .iter()
            .filter_map(|ws| {
                let key = self.conn_key(ws);
                self.with_conn(ws, &key, |a| a.c.hello_deadline())
            })
            .min();
        let live_call = self.live.borrow().is_some();
        let running = self.running.get();
        let next = {
            let mut g = self.inner.borrow_mut();
            let Some(i) = g.as_mut() else {
                return Ok(());
            };
            let needs = Needs {
                start_call: self.next_call.borrow().is_some() && !running,
                live_call,
                sockets: !sockets.is_empty(),
                sweep_every: i.cfg.sweep_interval_ms(),
                hello_deadline,
                expire_at: Some(i.active_at + i.cfg.session_idle_ttl_ms),
            };
            let want = schedule::plan(&i.timers, &i.session.timers(), needs, now);
            let (upserts, deletes) = schedule::changes(&i.timers, &want);
            for (timer, at) in upserts {
                i.store.set_timer(timer, at)?;
            }
            for timer in deletes {
                i.store.clear_timer(timer)?;
            }
            i.timers = want;
            schedule::next_alarm(&i.timers)
        };
        match next {
            Some(t) => self.set_alarm_at(t).await,
            None => Ok(()),
        }
    }

    async fn set_alarm_at(&self, t: u64) -> Result<()> {
        // Only move the alarm earlier (or set one); a later deadline is re-derived when it fires.
        if self.alarm_at.get().is_some_and(|a| a <= t && a >= now_ms()) {
            return Ok(());
        }
        let delay = t.saturating_sub(now_ms());
        self.state
            .storage()
            .set_alarm(Duration::from_millis(delay))
            .await?;
        self.alarm_at.set(Some(t));
        Ok(())
    }
}

/// What the core's lease carry-over reads of a lease the last call gave back.
impl object::GivenBack for provider::GivenBack {
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn follow_on(&self) -> Option<u32> {
        self.follow_on
    }
}

/// The highest `seq` or offset a query may name: SQLite integers are signed 64-bit, so
/// anything larger is refused before any conversion.
const MAX_SEQ: u64 = i64::MAX as u64;

/// A whole-number query parameter in `min..=max` (`default` when absent), or the 400 answer.
fn whole(
    q: &HashMap<String, String>,
    name: &str,
    default: u64,
    max: u64,
) -> std::result::Result<u64, Result<Response>> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(bad_number(name, 0, max)),
        },
    }
}

fn bad_number(name: &str, min: u64, max: u64) -> Result<Response> {
    error_response(
        400,
        "invalid_field",
        &format!("\"{name}\" must be a whole number from {min} to {max}."),
    )
}

fn http_error(e: &HttpError) -> Result<Response> {
    error_response(e.status, e.code, &e.message)
}

fn sse_headers(resp: &mut Response) -> Result<()> {
    let h = resp.headers_mut();
    h.set("content-type", "text/event-stream; charset=utf-8")?;
    h.set("x-accel-buffering", "no")?;
    Ok(())
}

/// A short SSE body sent whole.
fn sse_response(chunks: Vec<String>) -> Result<Response> {
    let mut resp = Response::ok(chunks.concat())?;
    sse_headers(&mut resp)?;
    Ok(resp)
}

/// `botarmy.v1` when the client offers it; otherwise the first protocol offered that is not
/// a token. A token is never echoed back: it would appear in the response headers.
fn choose_subprotocol(offered: &str) -> Option<String> {
    let offered: Vec<&str> = offered
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with("botarmy.token."))
        .collect();
    offered
        .iter()
        .find(|p| **p == "botarmy.v1")
        .or(offered.first())
        .map(|p| p.to_string())
}

fn query(req: &Request) -> Result<HashMap<String, String>> {
    Ok(req.url()?.query_pairs().into_owned().collect())
}

fn auto_response_time(state: &State, ws: &WebSocket) -> Option<u64> {
    use wasm_bindgen::JsCast;
    let raw: &wasm_bindgen::JsValue = state.as_raw().as_ref();
    let f = js_sys::Reflect::get(raw, &"getWebSocketAutoResponseTimestamp".into()).ok()?;
    let f: js_sys::Function = f.dyn_into().ok()?;
    let ws_js: &wasm_bindgen::JsValue = ws.as_ref();
    let v = f.call1(raw, ws_js).ok()?;
    let d: js_sys::Date = v.dyn_into().ok()?;
    Some(d.get_time() as u64)
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("crypto.getRandomValues");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file name for the plain `filename=` parameter: ASCII letters, digits and `._-` only (the
/// exact name goes in `filename*`).
fn ascii_name(name: &str) -> String {
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

/// One request to an owner's index object, answered as it answers.
pub(crate) async fn index_request(
    env: &Env,
    owner: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<Response> {
    let stub = env
        .durable_object("INDEX")?
        .id_from_name(owner)?
        .get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(body.to_string().into()));
    let req = Request::new_with_init(&format!("https://index{path}"), &init)?;
    stub.fetch_with_request(req).await
}

/// Each owner's rows of `session` made through the link it was pushed out of go from its
/// index (see [`crate::index::remember`]).
async fn drop_links(env: &Env, session: &str, gone: &[(String, index::Link)]) {
    let session_ref = index::session_ref(session);
    for (owner, link) in gone {
        let body = json!({"sessionRef": session_ref, "link": link.as_text()});
        index_call(env, owner, "/drop_link", &body).await;
    }
}

/// [`index_request`] where only success matters: false (and a log line) if it failed.
pub(crate) async fn index_call(
    env: &Env,
    owner: &str,
    path: &str,
    body: &serde_json::Value,
) -> bool {
    match index_request(env, owner, path, body)
        .await
        .map(|r| r.status_code())
    {
        Ok(200) => true,
        Ok(status) => {
            log::warn("index_failed", json!({"path": path, "status": status}));
            false
        }
        Err(e) => {
            log::warn(
                "index_unreachable",
                json!({"path": path, "message": e.to_string()}),
            );
            false
        }
    }
}
