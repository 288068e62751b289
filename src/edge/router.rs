//! The Worker entry: reads each request into [`access::Facts`], asks [`access::decide`] once,
//! and serves the grant it gets (one line per route, in [`serve`]) or answers the refusal.
//! Who may do what — host, origin, access token, view keys, the routes themselves — is decided
//! in `src/access.rs`, natively tested; this file only does the I/O: wrangler's assets binding
//! for every path outside `/api/`, admission (sessions and connections per client, counting
//! wrong tokens), the owners' indexes, and the hand-off to the session's Durable Object.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::{select, Either};

use serde_json::json;
use worker::{Delay, Env, Headers, Method, Request, RequestInit, Response, Result};

use super::admission_do::{self, Ask};
use super::session::{index_call, index_request, random_hex, SENT_AT};
use super::{config, error_response, log, now_ms};
use crate::access::{self, Decision, Facts, Grant, Refusal, Verdict};
use crate::admission::{client_of, is_local};
use crate::config::Config;
use crate::index;
use crate::protocol::agui_http::{self, MAX_BODY_BYTES};
use crate::protocol::{view, HttpErrorCode};
use crate::VERSION;

thread_local! {
    /// Clients this isolate knows are blocked for wrong tokens (client → until, epoch ms), so
    /// a blocked client is refused before its token is looked at. Bounded: cleared when full.
    static BLOCKED: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}
const BLOCKED_CACHE_MAX: usize = 10_000;

pub(crate) async fn handle(req: Request, env: Env) -> Result<Response> {
    let path = req.path();
    let cfg = match config(&env) {
        Ok(c) => c,
        Err(e) => {
            log::error("config_invalid", json!({"message": e}));
            return refuse(&access::config_invalid(&e));
        }
    };
    let url = req.url()?;
    let h = req.headers();
    let host = match h.get("host")? {
        Some(h) => h,
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let (origin, authorization) = (h.get("origin")?, h.get("authorization")?);
    let (protocols, upgrade) = (h.get("sec-websocket-protocol")?, h.get("upgrade")?);
    let owner_key = h.get(index::OWNER_HEADER)?;
    let who = client(&req)?;
    let facts = Facts {
        method: method(&req.method()),
        path: &path,
        query: url.query(),
        host: &host,
        own_origin: &url.origin().ascii_serialization(),
        origin: origin.as_deref(),
        authorization: authorization.as_deref(),
        protocols: protocols.as_deref(),
        upgrade: upgrade.as_deref(),
        owner_key: owner_key.as_deref(),
        blocked_ms: cfg.access_token.as_ref().and_then(|_| blocked_ms(&who)),
    };
    let Decision { verdict, cors } = access::decide(&facts, &cfg);
    let resp = match verdict {
        // The UI, and a name that is not this Worker's, are answered as they are.
        Verdict::Allow(Grant::Asset) => return env.assets("ASSETS")?.fetch_request(req).await,
        Verdict::Refuse(r) if r.code == HttpErrorCode::HostNotAllowed => {
            let host: String = host.chars().take(100).collect();
            log::warn("host_refused", json!({"host": host}));
            return refuse(&r);
        }
        Verdict::Allow(grant) => serve(grant, req, &env, &cfg).await,
        Verdict::Refuse(r) => {
            if r.code == HttpErrorCode::OriginNotAllowed {
                log::warn("origin_refused", json!({"origin": origin}));
            }
            refuse(&r)
        }
        Verdict::WrongToken => match wrong_token(&env, who).await {
            Ok(r) => refuse(&r),
            Err(e) => Err(e),
        },
    };
    let mut resp = match resp.and_then(|r| with_cors(r, cors.as_deref())) {
        Ok(r) => r,
        Err(e) => {
            log::error(
                "request_failed",
                json!({"path": path, "message": e.to_string()}),
            );
            refuse(&access::internal())?
        }
    };
    if resp.status_code() != 101 {
        // Responses from a Durable Object have immutable headers: build a fresh set.
        let h = Headers::new();
        for (k, v) in resp.headers().entries() {
            h.set(&k, &v)?;
        }
        h.set("cache-control", "no-store")?;
        h.set("x-content-type-options", "nosniff")?;
        resp = resp.with_headers(h);
    }
    Ok(resp)
}

/// What an allowed request gets: one line per route ([`access::Route`]).
async fn serve(grant: Grant<'_>, req: Request, env: &Env, cfg: &Config) -> Result<Response> {
    match grant {
        Grant::Asset => env.assets("ASSETS")?.fetch_request(req).await,
        Grant::Health => health(cfg),
        Grant::Models => models(cfg),
        Grant::CreateSession { owner } => create_session(&req, env, cfg, owner).await,
        Grant::ListSessions { owner, q } => list_sessions(env, &owner, &q).await,
        Grant::Remember { key, owner } => remember(env, &owner, key, false).await,
        Grant::Forget { key, owner } => forget(env, &owner, key).await,
        Grant::Rename { id } => rename(req, env, id).await,
        Grant::Views { id, target } => forward(env, id, &target, req.method(), None).await,
        Grant::Delete { id } => forward(env, id, "/delete", Method::Post, None).await,
        Grant::Read { key, target, .. } => forward_read(env, cfg, key, &target).await,
        Grant::Socket { key, .. } => socket(&req, env, cfg, key).await,
        Grant::AguiPreflight => preflight(),
        Grant::AguiRun { id } => agui(req, env, cfg, id, "/agui".into()).await,
        Grant::AguiResume { id, target } => agui(req, env, cfg, id, target).await,
    }
}

fn method(m: &Method) -> access::Method {
    match m {
        Method::Get => access::Method::Get,
        Method::Post => access::Method::Post,
        Method::Patch => access::Method::Patch,
        Method::Delete => access::Method::Delete,
        Method::Options => access::Method::Options,
        _ => access::Method::Other,
    }
}

/// A refusal as an HTTP answer, with `Retry-After` when it has one.
fn refuse(r: &Refusal) -> Result<Response> {
    let mut resp = error_response(r.status, r.code.as_str(), &r.message)?;
    if let Some(s) = r.retry_after_secs() {
        resp.headers_mut().set("retry-after", &s.to_string())?;
    }
    Ok(resp)
}

fn health(cfg: &Config) -> Result<Response> {
    Response::from_json(&json!({
        "status": "ok", "version": VERSION,
        "provider": if cfg.demo() { "demo" } else { "openai" },
        "providers": cfg.providers.catalog(&cfg.prices).providers,
        "model": cfg.model_label(),
    }))
}

/// What the start form may offer: providers, models and prices, never keys or URLs.
fn models(cfg: &Config) -> Result<Response> {
    let mut body = serde_json::to_value(cfg.providers.catalog(&cfg.prices))?;
    body["budgetMicroUsd"] = json!(cfg.budget_micros);
    Response::from_json(&body)
}

/// A new session, if admission lets this client create one, kept in its creator's list.
async fn create_session(
    req: &Request,
    env: &Env,
    cfg: &Config,
    owner: Option<String>,
) -> Result<Response> {
    let ask = Ask {
        client: client(req)?,
        limits: Some(cfg.admission),
        ..Default::default()
    };
    if let Err(r) = admission_do::ask(env, "/create", &ask).await? {
        log::warn("session_refused", json!({"code": r.code}));
        return refuse(&r);
    }
    let id = random_hex(16);
    let resp = forward(env, &id, "/init", Method::Post, None).await?;
    if let (201, Some(owner)) = (resp.status_code(), owner) {
        // Best effort: the session exists either way; a failure is logged.
        remember(env, &owner, &id, true).await?;
    }
    Ok(resp)
}

/// "Your sessions", those whose names hold `q`.
async fn list_sessions(env: &Env, owner: &str, q: &str) -> Result<Response> {
    index_request(env, owner, "/list", &json!({"q": q})).await
}

/// Takes a session off the owner's list (`204`).
async fn forget(env: &Env, owner: &str, key: &str) -> Result<Response> {
    let resp = index_request(env, owner, "/forget", &json!({"key": key})).await?;
    if resp.status_code() != 200 {
        return Ok(resp);
    }
    Ok(Response::empty()?.with_status(204))
}

/// Rename: the owners' lists show the new name.
async fn rename(mut req: Request, env: &Env, id: &str) -> Result<Response> {
    let body = req.bytes().await?;
    if body.len() > access::RENAME_MAX_BYTES {
        return refuse(&access::rename_too_large());
    }
    forward_with_body(env, id, "/rename", Method::Post, Headers::new(), Some(body)).await
}

/// The session's WebSocket: it holds a lease on its client's share of connections until it
/// closes.
async fn socket(req: &Request, env: &Env, cfg: &Config, key: &str) -> Result<Response> {
    let ask = Ask {
        client: client(req)?,
        lease: random_hex(12),
        limits: Some(cfg.admission),
        ..Default::default()
    };
    if let Err(r) = admission_do::ask(env, "/open", &ask).await? {
        return refuse(&r);
    }
    let headers = req.headers().clone();
    headers.set("x-client", &ask.client)?;
    headers.set("x-lease", &ask.lease)?;
    let resp = forward(env, key, "/ws", Method::Get, Some(headers)).await?;
    if resp.status_code() != 101 {
        admission_do::ask(env, "/close", &ask).await?.ok();
    }
    Ok(resp)
}

/// An AG-UI CORS preflight from a listed origin (the origin's own headers are added after).
fn preflight() -> Result<Response> {
    let mut r = Response::empty()?.with_status(204);
    let h = r.headers_mut();
    h.set("access-control-allow-methods", "GET, POST, OPTIONS")?;
    h.set(
        "access-control-allow-headers",
        "authorization, content-type, accept, last-event-id",
    )?;
    h.set("access-control-max-age", "600")?;
    Ok(r)
}

/// The CORS headers for an origin listed in `ALLOWED_ORIGINS` (AG-UI only: `cors` is `None`
/// everywhere else).
fn with_cors(resp: Response, cors: Option<&str>) -> Result<Response> {
    let Some(o) = cors else {
        return Ok(resp);
    };
    // A Durable Object's response has immutable headers: build a fresh set.
    let h = Headers::new();
    for (k, v) in resp.headers().entries() {
        h.set(&k, &v)?;
    }
    h.set("access-control-allow-origin", o)?;
    h.set("vary", "Origin")?;
    h.set("access-control-expose-headers", "content-type")?;
    Ok(resp.with_headers(h))
}

/// `/api/sessions/{id}/agui`: AG-UI over HTTP. `POST` a `RunAgentInput` (≤ 64 KiB) and read
/// the run as `text/event-stream`; `GET ?after=<seq>` (or with `Last-Event-ID`) resumes the
/// stream of the run in progress.
async fn agui(
    mut req: Request,
    env: &Env,
    cfg: &Config,
    id: &str,
    target: String,
) -> Result<Response> {
    let method = req.method();
    let headers = Headers::new();
    if let Some(last) = req.headers().get("last-event-id")? {
        headers.set("last-event-id", &last)?;
    }
    let body = match method {
        Method::Post => match read_body(&mut req, MAX_BODY_BYTES).await? {
            Some(b) => Some(b),
            None => {
                let e = agui_http::body_too_large();
                return error_response(e.status, e.code, &e.message);
            }
        },
        _ => None,
    };
    // A stream is one of the client's connections, like a socket: leased here, given back by
    // the session once the stream no longer takes a place (src/protocol/agui_readers.rs), or
    // here when no stream came of it (giving back twice is harmless).
    let ask = Ask {
        client: client(&req)?,
        lease: random_hex(12),
        limits: Some(cfg.admission),
        ..Default::default()
    };
    if let Err(r) = admission_do::ask(env, "/open", &ask).await? {
        return refuse(&r);
    }
    headers.set("x-client", &ask.client)?;
    headers.set("x-lease", &ask.lease)?;
    let resp = forward_with_body(env, id, &target, method, headers, body).await;
    if !matches!(&resp, Ok(r) if r.status_code() == 200) {
        admission_do::ask(env, "/close", &ask).await?.ok();
    }
    resp
}

/// The request body, or `None` when it is larger than `max` (reading stops there).
async fn read_body(req: &mut Request, max: usize) -> Result<Option<Vec<u8>>> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|l| l.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(Some(out));
    };
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > max {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

async fn forward_with_body(
    env: &Env,
    id: &str,
    target: &str,
    method: Method,
    headers: Headers,
    body: Option<Vec<u8>>,
) -> Result<Response> {
    let stub = env
        .durable_object("SESSIONS")?
        .id_from_name(id)?
        .get_stub()?;
    headers.set("x-session-id", id)?;
    headers.set(SENT_AT, &now_ms().to_string())?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(b) = body {
        let arr = js_sys::Uint8Array::from(b.as_slice());
        init.with_body(Some(arr.into()));
    }
    let req = Request::new_with_init(&format!("https://session{target}"), &init)?;
    stub.fetch_with_request(req).await
}

/// A read (GET) forwarded to a session, with a deadline: a request that sees no answer in
/// `READ_DEADLINE_MS` (10 s; a read takes milliseconds, a few hundred under load) is logged
/// (`session_slow`) and sent once more, then answered `503 session_busy`. Local runs have seen
/// a request to a session object stay unanswered until its client gave up (up to undici's
/// 300 s) while a second request was answered at once; a read changes nothing, so asking again
/// is safe, and no client waits for ever.
async fn forward_read(env: &Env, cfg: &Config, id: &str, target: &str) -> Result<Response> {
    let route = target.split('?').next().unwrap_or_default();
    for attempt in 1..=2 {
        let sent = Box::pin(forward(env, id, target, Method::Get, None));
        let deadline = Box::pin(Delay::from(Duration::from_millis(cfg.read_deadline_ms)));
        match select(sent, deadline).await {
            Either::Left((resp, _)) => return resp,
            Either::Right(_) => log::warn(
                "session_slow",
                json!({"route": route, "attempt": attempt, "waitedMs": cfg.read_deadline_ms}),
            ),
        }
    }
    refuse(&access::session_busy())
}

/// Forwards to the session named by `id`: a session id, or a view key (then the object is
/// found by its id, and the session checks the secret and serves only reads).
async fn forward(
    env: &Env,
    id: &str,
    target: &str,
    method: Method,
    headers: Option<Headers>,
) -> Result<Response> {
    let ns = env.durable_object("SESSIONS")?;
    let headers = headers.unwrap_or_default();
    let stub = match view::parse_key(id) {
        Some(v) => {
            // An id this namespace never made is no session.
            let Ok(object) = ns.id_from_string(v.object) else {
                return refuse(&access::no_session());
            };
            headers.set("x-view-secret", v.secret)?;
            headers.set("x-view-key", id)?;
            object.get_stub()?
        }
        None => {
            headers.set("x-session-id", id)?;
            ns.id_from_name(id)?.get_stub()?
        }
    };
    headers.set(SENT_AT, &now_ms().to_string())?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    let req = Request::new_with_init(&format!("https://session{target}"), &init)?;
    stub.fetch_with_request(req).await
}

/// The client a request counts as ([`client_of`]): `CF-Connecting-IP` deployed, one local
/// bucket under `wrangler dev`, where that header is the client's own.
fn client(req: &Request) -> Result<String> {
    let url = req.url()?;
    let host = req.headers().get("host")?.unwrap_or_default();
    let local = is_local(url.scheme(), url.host_str().unwrap_or_default(), &host);
    let ip = req.headers().get("cf-connecting-ip")?;
    Ok(client_of(ip.as_deref(), local))
}

/// How much longer `who` is blocked for wrong tokens, as far as this isolate knows.
fn blocked_ms(who: &str) -> Option<u64> {
    let now = now_ms();
    BLOCKED.with(|b| {
        b.borrow()
            .get(who)
            .copied()
            .filter(|t| *t > now)
            .map(|t| t - now)
    })
}

/// A wrong token, counted by the admission object: past a few a minute its client is blocked
/// for a minute, here and in every isolate that asks.
async fn wrong_token(env: &Env, who: String) -> Result<Refusal> {
    let ask = Ask {
        client: who.clone(),
        ..Default::default()
    };
    let answer = admission_do::ask(env, "/auth_failed", &ask).await?;
    let blocked = answer.ok().and_then(|v| v["blockedMs"].as_u64());
    if let Some(ms) = blocked {
        log::warn("auth_blocked", json!({"client": who}));
        let until = now_ms() + ms;
        BLOCKED.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() >= BLOCKED_CACHE_MAX {
                b.clear();
            }
            b.insert(who, until);
        });
    }
    Ok(access::wrong_token(blocked))
}

/// Registers `key` (a session id or view key) in `owner`'s list with the session's summary;
/// `creator` only from `POST /api/sessions` (the creator's place is never given up).
async fn remember(env: &Env, owner: &str, key: &str, creator: bool) -> Result<Response> {
    let headers = Headers::new();
    headers.set("x-owner", owner)?;
    if creator {
        headers.set("x-creator", "1")?;
    }
    let mut resp = forward(env, key, "/remember", Method::Post, Some(headers)).await?;
    if resp.status_code() != 200 {
        return Ok(resp);
    }
    let mut row: serde_json::Value = resp.json().await?;
    row["key"] = json!(key);
    if !index_call(env, owner, "/remember", &row).await {
        return refuse(&access::index_unavailable());
    }
    Response::from_json(
        &json!({"key": key, "readOnly": row["readOnly"], "summary": row["summary"]}),
    )
}
