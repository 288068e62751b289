//! The Session Durable Object: one per session. It holds the session's hibernating
//! WebSockets (each driven by the core's [`Connection`]), runs the core [`Session`] machine,
//! stores its event log in SQLite before broadcasting, keeps every table within its bound,
//! and uses the alarm as its one timer (retries, watchdog, socket sweep, expiry, and starting
//! LLM calls, which run inside the alarm handler so they survive the request that asked for
//! them).
//!
//! This file holds the object's state and its entry points (`fetch`, the WebSocket events,
//! `alarm`), which only dispatch. What to do is decided by the core (`crate::session`, and
//! `crate::session::object` for the object's own rules); each capability is one file of
//! `impl SessionDo`, doing the I/O:
//!
//! | file | capability |
//! |---|---|
//! | `lifecycle.rs` | create, load (epochs recovered), idle expiry, delete |
//! | `commit.rs` | effects stored before they are sent (or sent ahead while streaming), tables trimmed |
//! | `sockets.rs` | hibernating WebSockets: open, attachment, `hello` and catch-up, send, sweep |
//! | `agui.rs` | AG-UI over HTTP: `POST`/`GET /agui`, the run's SSE stream |
//! | `views.rs` | view-only links: their reads, create, list, revoke |
//! | `owners.rs` | "your sessions": remember, rename, push the summary to the owners' indexes |
//! | `reads.rs` | the plain reads: snapshot, events, messages, export, files, zip, artifacts |
//! | `calls.rs` | LLM calls: the core's call driver's steps executed, the lease carried over |
//! | `alarm.rs` | the one alarm over the `schedule` table |
//! | `http.rs`, `index_calls.rs` | helpers: query numbers, error and SSE answers; requests to an owner's index |

mod agui;
mod alarm;
mod calls;
mod commit;
mod http;
mod index_calls;
mod lifecycle;
mod owners;
mod reads;
mod sockets;
mod views;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{
    durable_object, AbortController, Delay, DurableObject, Env, Request, Response, Result, State,
    WebSocket, WebSocketIncomingMessage, WebSocketRequestResponsePair,
};

use crate::config::Config;
use crate::edge::store::Store;
use crate::edge::{error_response, log, now_ms, provider};
use crate::index::Summary;
use crate::protocol::agui_readers::{Cut, Readers};
use crate::protocol::wire::{AckValue, ConnectionCustom, PongValue, WarningCode, WarningValue};
use crate::protocol::RejectionCode;
use crate::session::connection::{Action, Connection, Incoming, CLOSE_SESSION_GONE};
use crate::session::replay::Epochs;
use crate::session::schedule::{self, Rows, Timer};
use crate::session::{CallSpec, Effect, Session};

pub(crate) use http::random_hex;
pub(crate) use index_calls::{index_call, index_request};

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
