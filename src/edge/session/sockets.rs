//! The session's hibernating WebSockets: opening one (within the session's cap), each socket's
//! state in its attachment, `hello` and the flow-controlled catch-up (its steps decided by
//! [`crate::session::object::catch_up_step`]), sending and broadcasting, and the sweep.

use serde_json::json;
use worker::{Request, Response, Result, State, WebSocket, WebSocketPair};

use crate::edge::admission_do::{self, Ask};
use crate::edge::{error_response, log, now_ms};
use crate::protocol::event::{frame, Event};
use crate::protocol::limits::{MAX_SOCKETS_PER_SESSION, SNAPSHOT_MESSAGES_BYTES};
use crate::protocol::wire::{
    CaughtUpValue, ConnectionCustom, FlowValue, RejectedValue, WelcomeMode, WelcomeValue,
};
use crate::protocol::{view, Rejection};
use crate::session::connection::{
    Action, Connection, CATCHUP_PAGE_BYTES, CLOSE_HELLO_TIMEOUT, SEND_WINDOW_BYTES,
};
use crate::session::object::{self, CatchUpStep, CATCHUP_PAGE_EVENTS};
use crate::session::replay::{plan, ReplayPlan};

use super::http::random_hex;
use super::{Attachment, SessionDo, ViewConn};

impl SessionDo {
    pub(super) async fn upgrade(&self, req: &Request, view: Option<ViewConn>) -> Result<Response> {
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

    pub(super) fn conn_key(&self, ws: &WebSocket) -> String {
        self.state
            .get_tags(ws)
            .into_iter()
            .find(|t| t.starts_with('c'))
            .unwrap_or_default()
    }

    pub(super) fn with_conn<R>(
        &self,
        ws: &WebSocket,
        key: &str,
        f: impl FnOnce(&mut Attachment) -> R,
    ) -> R {
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
    pub(super) fn save_conn(&self, ws: &WebSocket, key: &str) {
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
    pub(super) fn forget(&self, ws: &WebSocket, key: &str) -> String {
        let lease = self.with_conn(ws, key, |a| a.lease.clone());
        self.conns.borrow_mut().remove(key);
        lease
    }

    pub(super) fn close(&self, ws: &WebSocket, key: &str, code: u16, reason: &str) {
        let _ = ws.close(Some(code), Some(reason));
        self.conns.borrow_mut().remove(key);
        // The runtime still calls `websocket_close`, which releases the lease.
    }

    pub(super) async fn release(&self, lease: String) {
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
    pub(super) fn hello(
        &self,
        ws: &WebSocket,
        key: &str,
        last_seq: u64,
        epoch: Option<u64>,
    ) -> Result<()> {
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
    pub(super) fn pump(&self, ws: &WebSocket, key: &str) -> Result<()> {
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

    pub(super) fn snapshot_catch_up(&self, ws: &WebSocket, key: &str, now: u64) -> Result<()> {
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
    pub(super) fn send_frame(
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
    pub(super) fn send_at(&self, ws: &WebSocket, key: &str, at: u64, value: ConnectionCustom) {
        let f = frame(None, now_ms(), &value.into());
        let _ = self.send_frame(ws, key, at, &f);
    }

    pub(super) fn send(&self, ws: &WebSocket, key: &str, value: ConnectionCustom) {
        let at = self
            .inner
            .borrow()
            .as_ref()
            .map_or(0, |i| i.session.last_seq());
        self.send_at(ws, key, at, value);
    }

    pub(super) fn reply_rejection(&self, ws: &WebSocket, key: &str, r: &Rejection) {
        self.send(ws, key, ConnectionCustom::Rejected(RejectedValue::from(r)));
    }

    pub(super) fn broadcast<S: AsRef<str>>(&self, frames: &[(u64, S)]) {
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
    pub(super) async fn sweep(&self, now: u64) {
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
        if object::renew_due(!alive.is_empty(), self.renewed_at.get(), now) {
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
}

/// `botarmy.v1` when the client offers it; otherwise the first protocol offered that is not
/// a token. A token is never echoed back: it would appear in the response headers.
pub(super) fn choose_subprotocol(offered: &str) -> Option<String> {
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

pub(super) fn auto_response_time(state: &State, ws: &WebSocket) -> Option<u64> {
    use wasm_bindgen::JsCast;
    let raw: &wasm_bindgen::JsValue = state.as_raw().as_ref();
    let f = js_sys::Reflect::get(raw, &"getWebSocketAutoResponseTimestamp".into()).ok()?;
    let f: js_sys::Function = f.dyn_into().ok()?;
    let ws_js: &wasm_bindgen::JsValue = ws.as_ref();
    let v = f.call1(raw, ws_js).ok()?;
    let d: js_sys::Date = v.dyn_into().ok()?;
    Some(d.get_time() as u64)
}
