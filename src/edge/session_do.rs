//! The Session Durable Object: one per session. It holds the session's hibernating
//! WebSockets, runs the core [`Session`] machine, stores its event log in SQLite before
//! broadcasting, and uses the alarm as its one timer (retries, watchdog, idle-socket sweep,
//! and starting LLM calls, which run inside the alarm handler so they survive the request
//! that asked for them).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{
    durable_object, AbortController, DurableObject, Env, Request, Response, Result, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
};

use super::store::Store;
use super::{error_response, log, now_ms, provider};
use crate::agents::Stage;
use crate::config::Config;
use crate::protocol::event::{frame, Event};
use crate::protocol::limits::{
    FloodGuard, FloodVerdict, EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX, LOG_RETENTION, LOG_TRIM_TO,
    MAX_FRAME_BYTES, MAX_SOCKETS_PER_SESSION,
};
use crate::protocol::{decode_command, is_session_id, Command, Rejection};
use crate::session::replay::{plan, ReplayPlan};
use crate::session::schedule::{self, Needs, Rows, Timer};
use crate::session::{Effect, Session};

/// Kept with each hibernating socket, so it survives the object being evicted.
#[derive(Serialize, Deserialize, Clone)]
struct Attachment {
    conn: String,
    ready: bool,
    since: u64,
}

/// In-memory view of a socket; rebuilt from the attachment after hibernation.
struct Conn {
    ready: bool,
    last_seen: u64,
    flood: FloodGuard,
}

pub(crate) struct Inner {
    pub session: Session,
    pub store: Store,
    pub cfg: Config,
    saved: String,
    oldest: u64,
    /// The `schedule` table as stored (read once on load, then written through).
    timers: Rows,
}

#[durable_object]
pub struct SessionDo {
    state: State,
    env: Env,
    inner: RefCell<Option<Inner>>,
    conns: RefCell<HashMap<String, Conn>>,
    /// The LLM call running in this instance, with the means to abort it.
    live: RefCell<Option<(u64, AbortController)>>,
    /// The alarm loop is running calls; a new pending call will be picked up by it.
    running: Cell<bool>,
    alarm_at: Cell<Option<u64>>,
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
            running: Cell::new(false),
            alarm_at: Cell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.path();
        let id = req.headers().get("x-session-id")?.unwrap_or_default();
        if path == "/init" {
            return self.init(&id);
        }
        if !self.load()? {
            return error_response(404, "not_found", "No session with this id.");
        }
        let resp = match path.as_str() {
            "/ws" => self.upgrade(&req),
            "/snapshot" => self.snapshot(),
            "/events" => self.events(&req),
            p if p.starts_with("/artifacts/") => self.artifacts(&req, &p["/artifacts/".len()..]),
            _ => error_response(404, "not_found", "Unknown route."),
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
        let text = match message {
            WebSocketIncomingMessage::String(s) => s,
            WebSocketIncomingMessage::Binary(b) => {
                if b.len() > MAX_FRAME_BYTES {
                    let _ = ws.close(Some(1009), Some("frame too large"));
                    return Ok(());
                }
                self.reply_rejection(
                    &ws,
                    &Rejection::new(
                        "binary_frame",
                        "Binary frames are not accepted; send JSON text.",
                    ),
                );
                return Ok(());
            }
        };
        if text.len() > MAX_FRAME_BYTES {
            let _ = ws.close(Some(1009), Some("frame too large"));
            return Ok(());
        }
        let key = self.conn_key(&ws);
        let verdict = self.with_conn(&ws, &key, |c| {
            c.last_seen = now;
            c.flood.check(now)
        });
        match verdict {
            FloodVerdict::Allow => {}
            FloodVerdict::Warn => {
                self.send(
                    &ws,
                    "warning",
                    json!({"code": "rate_limited",
                    "message": "Too many frames: slow down or the connection will be closed."}),
                );
                return Ok(());
            }
            FloodVerdict::Drop => return Ok(()),
            FloodVerdict::Close => {
                log::warn("socket_flood_closed", json!({"conn": key}));
                let _ = ws.close(Some(1008), Some("too many frames"));
                return Ok(());
            }
        }
        let env = match decode_command(&text) {
            Ok(env) => env,
            Err(r) => {
                self.reply_rejection(&ws, &r);
                return Ok(());
            }
        };
        if !self.load()? {
            let _ = ws.close(Some(1011), Some("session missing"));
            return Ok(());
        }
        match env.command {
            Command::Hello { last_seq } => self.hello(&ws, &key, last_seq, now)?,
            Command::Ping => self.send(&ws, "pong", json!({"t": now})),
            _ if !self.with_conn(&ws, &key, |c| c.ready) => {
                let mut r = Rejection::new("hello_required", "Send hello {lastSeq} first.");
                r.command = Some(env.command.name().into());
                r.id = env.id;
                self.reply_rejection(&ws, &r);
            }
            _ => {
                let name = env.command.name();
                let id = env.id.clone();
                let result = self.with_inner(|i| i.session.command(env, now));
                match result {
                    Ok(ack) => self.send(
                        &ws,
                        "ack",
                        json!({"id": id, "command": name, "duplicate": ack.duplicate}),
                    ),
                    Err(r) => self.reply_rejection(&ws, &r),
                }
                self.commit()?;
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
        self.conns.borrow_mut().remove(&key);
        let _ = ws.close(Some(1000), Some("closed"));
        // The last socket gone: the sweep timer goes with it.
        if self.load()? {
            self.schedule_alarm().await?;
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let key = self.conn_key(&ws);
        self.conns.borrow_mut().remove(&key);
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        if self.load()? {
            let now = now_ms();
            let due = self.with_inner(|i| schedule::due(&i.timers, now));
            // `call` and `live` need nothing beyond this: the session's own timers, then any
            // call that is pending (a restored one after a crash among them).
            self.with_inner(|i| i.session.on_timeout(now));
            self.commit()?;
            if due.contains(&Timer::Sweep) {
                self.sweep(now);
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
        let store = Store::create(self.state.storage().sql())?;
        if store.meta("session")?.is_none() {
            let cfg = self.cfg()?;
            let session = Session::new(id, cfg.session());
            store.set_meta("session", &session.persisted())?;
            store.set_meta("created_at", &now_ms().to_string())?;
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
        if self.inner.borrow().is_some() {
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
        let session = Session::restore(&json, newest, cfg.session(), now).map_err(|e| {
            log::error("session_restore_failed", json!({"message": e}));
            worker::Error::RustError(e)
        })?;
        if session.resumed_after_restart() {
            log::warn(
                "session_resumed_after_restart",
                json!({"session": session.state().session_id}),
            );
        }
        *self.inner.borrow_mut() = Some(Inner {
            session,
            store,
            cfg,
            saved: json,
            oldest: oldest.max(1),
            timers,
        });
        self.commit()?;
        Ok(true)
    }

    pub(crate) fn with_inner<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.borrow_mut();
        f(g.as_mut().expect("session loaded"))
    }

    /// Executes the session's effects: store events (and messages, artifacts), persist the
    /// session, trim the log, then broadcast — storage always before sending.
    pub(crate) fn commit(&self) -> Result<()> {
        let mut frames = Vec::new();
        let mut aborts = Vec::new();
        {
            let mut g = self.inner.borrow_mut();
            let i = g.as_mut().expect("session loaded");
            while let Some(effect) = i.session.poll_effect() {
                match effect {
                    Effect::Emit { seq, json, event } => {
                        i.store.append_event(seq, &json)?;
                        match &event {
                            Event::TextMessageStart {
                                message_id,
                                role,
                                name,
                            } => i.store.message_start(message_id, *role, name, seq)?,
                            Event::TextMessageContent { message_id, delta } => {
                                i.store.message_append(seq, message_id, delta)?
                            }
                            Event::RunError { code, .. } => log::warn(
                                "run_error",
                                json!({"session": i.session.state().session_id, "code": code}),
                            ),
                            _ => {}
                        }
                        frames.push(json);
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
                    }
                    Effect::AbortCall { call_id } => aborts.push(call_id),
                }
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
            if newest >= i.oldest + LOG_RETENTION {
                let keep_from = newest + 1 - LOG_TRIM_TO;
                i.store.trim_events(keep_from)?;
                i.oldest = keep_from;
            }
        }
        for id in aborts {
            let mut live = self.live.borrow_mut();
            if live.as_ref().is_some_and(|(l, _)| *l == id) {
                if let Some((_, c)) = live.take() {
                    c.abort();
                }
            }
        }
        self.broadcast(&frames);
        Ok(())
    }

    pub(crate) fn env_ref(&self) -> &Env {
        &self.env
    }

    pub(crate) fn set_live(&self, call: Option<(u64, AbortController)>) {
        *self.live.borrow_mut() = call;
    }

    // ---- sockets ------------------------------------------------------------------------

    fn upgrade(&self, req: &Request) -> Result<Response> {
        if self.state.get_websockets().len() >= MAX_SOCKETS_PER_SESSION {
            return error_response(
                429,
                "too_many_connections",
                &format!("This session already has {MAX_SOCKETS_PER_SESSION} connections."),
            );
        }
        let pair = WebSocketPair::new()?;
        let conn = random_hex(8);
        let tag = format!("c{conn}");
        self.state
            .accept_websocket_with_tags(&pair.server, &[tag.as_str()]);
        let now = now_ms();
        pair.server.serialize_attachment(Attachment {
            conn: conn.clone(),
            ready: false,
            since: now,
        })?;
        self.conns.borrow_mut().insert(
            tag,
            Conn {
                ready: false,
                last_seen: now,
                flood: FloodGuard::new(now),
            },
        );
        let mut resp = Response::from_websocket(pair.client)?;
        // A client that offers subprotocols must get one back: `botarmy.v1` when offered,
        // else the first one it sent (the token, echoed only to the client that sent it).
        let offered = req
            .headers()
            .get("sec-websocket-protocol")?
            .unwrap_or_default();
        let offered: Vec<&str> = offered
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let chosen = offered
            .iter()
            .find(|p| **p == "botarmy.v1")
            .or(offered.first());
        if let Some(p) = chosen {
            resp.headers_mut().set("sec-websocket-protocol", p)?;
        }
        Ok(resp)
    }

    fn conn_key(&self, ws: &WebSocket) -> String {
        self.state
            .get_tags(ws)
            .into_iter()
            .find(|t| t.starts_with('c'))
            .unwrap_or_default()
    }

    fn with_conn<R>(&self, ws: &WebSocket, key: &str, f: impl FnOnce(&mut Conn) -> R) -> R {
        let mut conns = self.conns.borrow_mut();
        let conn = conns.entry(key.to_string()).or_insert_with(|| {
            let a: Option<Attachment> = ws.deserialize_attachment().ok().flatten();
            let now = now_ms();
            Conn {
                ready: a.as_ref().is_some_and(|a| a.ready),
                last_seen: now,
                flood: FloodGuard::new(now),
            }
        });
        f(conn)
    }

    /// `hello {lastSeq}`: welcome, replay or snapshot, caught_up — then the socket receives
    /// live events. All synchronous, so nothing produced meanwhile is missed or doubled.
    fn hello(&self, ws: &WebSocket, key: &str, last_seq: u64, now: u64) -> Result<()> {
        let g = self.inner.borrow();
        let i = g.as_ref().expect("session loaded");
        let newest = i.session.last_seq();
        let p = plan(last_seq, i.oldest, newest);
        let mode = match p {
            ReplayPlan::Replay { .. } => "replay",
            ReplayPlan::Snapshot { .. } => "snapshot",
        };
        let mut welcome = json!({"sessionId": i.session.state().session_id, "demo": i.cfg.demo(),
            "model": i.cfg.model_label(), "lastSeq": newest, "mode": mode});
        if let ReplayPlan::Snapshot { reason, .. } = p {
            welcome["reason"] = reason.code().into();
        }
        self.send(ws, "welcome", welcome);
        match p {
            ReplayPlan::Replay { from, to } => {
                let mut next = from;
                while next <= to {
                    let page = i.store.events(next, to, 1000)?;
                    if page.is_empty() {
                        break;
                    }
                    next += page.len() as u64;
                    for f in &page {
                        let _ = ws.send_with_str(f);
                    }
                }
            }
            ReplayPlan::Snapshot { .. } => {
                let snap = Event::StateSnapshot {
                    snapshot: i.session.state().to_json(),
                };
                let _ = ws.send_with_str(frame(None, now, &snap));
                let msgs = Event::MessagesSnapshot {
                    messages: i.store.messages()?,
                };
                let _ = ws.send_with_str(frame(None, now, &msgs));
            }
        }
        self.send(ws, "caught_up", json!({"lastSeq": newest}));
        drop(g);
        self.with_conn(ws, key, |c| c.ready = true);
        let conn = key.trim_start_matches('c').to_string();
        let since = ws
            .deserialize_attachment::<Attachment>()
            .ok()
            .flatten()
            .map_or(now, |a| a.since);
        ws.serialize_attachment(Attachment {
            conn,
            ready: true,
            since,
        })?;
        Ok(())
    }

    fn send(&self, ws: &WebSocket, name: &str, value: serde_json::Value) {
        let _ = ws.send_with_str(frame(None, now_ms(), &Event::custom(name, value)));
    }

    fn reply_rejection(&self, ws: &WebSocket, r: &Rejection) {
        self.send(
            ws,
            "rejected",
            json!({"id": r.id, "command": r.command, "code": r.code, "message": r.message}),
        );
    }

    fn broadcast(&self, frames: &[String]) {
        if frames.is_empty() {
            return;
        }
        for ws in self.state.get_websockets() {
            let key = self.conn_key(&ws);
            if self.with_conn(&ws, &key, |c| c.ready) {
                for f in frames {
                    let _ = ws.send_with_str(f);
                }
            }
        }
    }

    /// Closes sockets that sent nothing (not even an auto-answered ping) for too long.
    fn sweep(&self, now: u64) {
        let idle = self.with_inner(|i| i.cfg.socket_idle_ms);
        for ws in self.state.get_websockets() {
            let key = self.conn_key(&ws);
            let seen = self.with_conn(&ws, &key, |c| c.last_seen);
            let pinged = auto_response_time(&self.state, &ws).unwrap_or(0);
            if now.saturating_sub(seen.max(pinged)) > idle {
                log::info("socket_idle_closed", json!({"conn": key}));
                let _ = ws.close(Some(1001), Some("idle"));
                self.conns.borrow_mut().remove(&key);
            }
        }
    }

    // ---- HTTP reads ---------------------------------------------------------------------

    fn snapshot(&self) -> Result<Response> {
        let sockets = self.state.get_websockets().len();
        let body = self.with_inner(|i| -> Result<_> {
            // Row and socket counts let soak tests check for leaks.
            let timers: serde_json::Map<String, serde_json::Value> =
                i.timers.iter().map(|(t, at)| (t.name().to_string(), json!(at))).collect();
            let stats = json!({"events": i.store.count("events")?, "messages": i.store.count("messages")?,
                "artifacts": i.store.count("artifacts")?, "sockets": sockets, "oldestSeq": i.oldest,
                "rowsWritten": i.store.rows_written(), "timers": timers});
            Ok(json!({"id": i.session.state().session_id, "lastSeq": i.session.last_seq(),
                   "demo": i.cfg.demo(), "state": i.session.state().to_json(), "stats": stats}))
        })?;
        Response::from_json(&body)
    }

    fn events(&self, req: &Request) -> Result<Response> {
        let q = query(req)?;
        let after = match q.get("after").map(|v| v.parse::<u64>()) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return error_response(400, "invalid_field", "\"after\" must be a whole number.")
            }
        };
        let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
            None => EVENTS_PAGE_DEFAULT,
            Some(Ok(n)) if (1..=EVENTS_PAGE_MAX).contains(&n) => n,
            _ => {
                return error_response(
                    400,
                    "invalid_field",
                    &format!("\"limit\" must be from 1 to {EVENTS_PAGE_MAX}."),
                )
            }
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
        let frames = i.store.events(after + 1, newest, limit)?;
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
        let version = match q.get("version").map(|v| v.parse::<u32>()) {
            None => i.session.state().agent(stage).version,
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                return error_response(400, "invalid_field", "\"version\" must be a whole number.")
            }
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
        let pending = self
            .inner
            .borrow()
            .as_ref()
            .is_some_and(|i| i.session.pending_call().is_some());
        if pending && !self.running.get() {
            self.set_alarm_at(now_ms()).await?;
        } else {
            self.schedule_alarm().await?;
        }
        Ok(())
    }

    async fn run_calls(&self) {
        if self.running.replace(true) {
            return;
        }
        loop {
            let spec = self
                .inner
                .borrow()
                .as_ref()
                .and_then(|i| i.session.pending_call());
            let Some(spec) = spec else {
                self.running.set(false);
                break;
            };
            if let Err(e) = provider::run_call(self, spec).await {
                // Storage or runtime failure: log it; the alarm retries later.
                log::error("call_failed", json!({"message": e.to_string()}));
                self.running.set(false);
                break;
            }
        }
    }

    /// Plans the session's timers into the `schedule` table (writing only rows that change)
    /// and sets the one alarm to the earliest of them.
    pub(crate) async fn schedule_alarm(&self) -> Result<()> {
        let now = now_ms();
        let sockets = !self.state.get_websockets().is_empty();
        let live_call = self.live.borrow().is_some();
        let running = self.running.get();
        let next = {
            let mut g = self.inner.borrow_mut();
            let Some(i) = g.as_mut() else {
                return Ok(());
            };
            let call = if i.session.pending_call().is_some() && !running {
                Some(now)
            } else {
                i.session.alarm_deadline()
            };
            let needs = Needs {
                call,
                live_call,
                sockets,
                sweep_every: i.cfg.sweep_interval_ms(),
            };
            let want = schedule::plan(&i.timers, needs, now);
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
