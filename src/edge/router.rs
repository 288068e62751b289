//! The Worker entry: the host check, API routes (everything under `/api/`; wrangler's assets
//! binding serves the UI for every other path), the origin allowlist, the optional access
//! token, admission (session and socket limits per client), and the hand-off to the
//! session's Durable Object.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::{select, Either};

use serde_json::json;
use worker::{Delay, Env, Headers, Method, Request, RequestInit, Response, Result};

use super::admission_do::{self, Ask};
use super::session_do::{index_call, index_request, random_hex, SENT_AT};
use super::{config, error_response, log, now_ms, read_only_response};
use crate::admission::{client_of, is_local, Refusal};
use crate::config::Config;
use crate::index;
use crate::protocol::agui_http::{self, MAX_BODY_BYTES};
use crate::protocol::{is_session_id, view};
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
            return error_response(500, "config_invalid", &format!("Server misconfigured: {e}"));
        }
    };
    // Before anything else: a request for a name that is not this Worker's (DNS rebinding).
    let host = match req.headers().get("host")? {
        Some(h) => h,
        None => req.url()?.host_str().unwrap_or_default().to_string(),
    };
    if !cfg.host_allowed(&host) {
        log::warn(
            "host_refused",
            json!({"host": host.chars().take(100).collect::<String>()}),
        );
        return error_response(
            421,
            "host_not_allowed",
            "This server does not answer for that host name (see ALLOWED_HOSTS).",
        );
    }
    if !path.starts_with("/api/") {
        return env.assets("ASSETS")?.fetch_request(req).await;
    }
    let resp = route(req, &env, &cfg, &path).await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => {
            log::error(
                "request_failed",
                json!({"path": path, "message": e.to_string()}),
            );
            error_response(
                500,
                "internal",
                "Something went wrong on the server; try again.",
            )?
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

async fn route(req: Request, env: &Env, cfg: &Config, path: &str) -> Result<Response> {
    let method = req.method();
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
    match (method.clone(), parts.as_slice()) {
        (Method::Get, ["health"]) => Response::from_json(&json!({
            "status": "ok", "version": VERSION,
            "provider": if cfg.demo() { "demo" } else { "openai" },
            "providers": cfg.providers.catalog(&cfg.prices).providers,
            "model": cfg.model_label(),
        })),
        (Method::Get, ["models"]) => {
            // What the start form may offer: providers, models and prices, never keys or URLs.
            if let Some(r) = check_token(&req, env, cfg).await? {
                return Ok(r);
            }
            let mut body = serde_json::to_value(cfg.providers.catalog(&cfg.prices))?;
            body["budgetMicroUsd"] = json!(cfg.budget_micros);
            Response::from_json(&body)
        }
        (Method::Post, ["sessions"]) => {
            if let Some(r) = check_origin(&req, cfg)? {
                return Ok(r);
            }
            if let Some(r) = check_token(&req, env, cfg).await? {
                return Ok(r);
            }
            let ask = Ask {
                client: client(&req)?,
                limits: Some(cfg.admission),
                ..Default::default()
            };
            if let Err(r) = admission_do::ask(env, "/create", &ask).await? {
                log::warn("session_refused", json!({"code": r.code}));
                return refusal(&r);
            }
            let id = random_hex(16);
            let resp = forward(env, &id, "/init", Method::Post, None).await?;
            if resp.status_code() == 201 {
                if let Some(owner) = owner_of(&req, cfg)? {
                    // Best effort: the session exists either way; a failure is logged.
                    remember(env, &owner, &id, true).await?;
                }
            }
            Ok(resp)
        }
        (Method::Get, ["sessions"]) => {
            if let Some(r) = check_token(&req, env, cfg).await? {
                return Ok(r);
            }
            let Some(owner) = owner_of(&req, cfg)? else {
                return owner_required();
            };
            let url = req.url()?;
            let q = url
                .query_pairs()
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if let Err(e) = index::Search::parse(&q) {
                return error_response(400, "invalid_field", &e);
            }
            index_request(env, &owner, "/list", &json!({"q": q})).await
        }
        (_, ["sessions", id, "agui"]) => {
            if view::parse_key(id).is_some() {
                return read_only_response();
            }
            if !is_session_id(id) {
                return error_response(404, "not_found", "No session with this id.");
            }
            let resp = agui(req, env, cfg, id).await?;
            Ok(resp)
        }
        (_, ["sessions", key, "remember"]) => {
            // "Your sessions": keep (POST) or forget (DELETE) this session in the owner's list.
            if !is_session_id(key) && view::parse_key(key).is_none() {
                return error_response(404, "not_found", "No session with this id.");
            }
            if let Some(r) = check_origin(&req, cfg)? {
                return Ok(r);
            }
            if let Some(r) = check_token(&req, env, cfg).await? {
                return Ok(r);
            }
            let Some(owner) = owner_of(&req, cfg)? else {
                return owner_required();
            };
            match method {
                Method::Post => remember(env, &owner, key, false).await,
                Method::Delete => {
                    let resp = index_request(env, &owner, "/forget", &json!({"key": key})).await?;
                    if resp.status_code() != 200 {
                        return Ok(resp);
                    }
                    Ok(Response::empty()?.with_status(204))
                }
                _ => error_response(405, "method_not_allowed", "Use POST or DELETE here."),
            }
        }
        (Method::Patch, ["sessions", id]) => {
            // Rename: the owners' lists show the new name.
            if view::parse_key(id).is_some() {
                if let Some(r) = check_token(&req, env, cfg).await? {
                    return Ok(r);
                }
                return read_only_response();
            }
            if !is_session_id(id) {
                return error_response(404, "not_found", "No session with this id.");
            }
            if let Some(r) = check_origin(&req, cfg)? {
                return Ok(r);
            }
            if let Some(r) = check_token(&req, env, cfg).await? {
                return Ok(r);
            }
            let mut req = req;
            let body = req.bytes().await?;
            if body.len() > 4096 {
                return error_response(413, "body_too_large", "A rename body holds at most 4 KiB.");
            }
            forward_with_body(env, id, "/rename", Method::Post, Headers::new(), Some(body)).await
        }
        (_, ["sessions", id, rest @ ..]) => {
            // A view key reads what a session id reads, and nothing else.
            let viewer = view::parse_key(id).is_some();
            if !is_session_id(id) && !viewer {
                return error_response(404, "not_found", "No session with this id.");
            }
            if viewer
                && !(method == Method::Get
                    && matches!(
                        rest,
                        [] | ["ws"]
                            | ["events"]
                            | ["messages"]
                            | ["export.jsonl"]
                            | ["artifacts", _]
                            | ["files", ..]
                            | ["project.zip"]
                    ))
            {
                if let Some(r) = check_token(&req, env, cfg).await? {
                    return Ok(r);
                }
                return read_only_response();
            }
            if let ["views", ..] = rest {
                if method != Method::Get {
                    if let Some(r) = check_origin(&req, cfg)? {
                        return Ok(r);
                    }
                }
                if let Some(r) = check_token(&req, env, cfg).await? {
                    return Ok(r);
                }
                let target = format!("/{}", rest.join("/"));
                return forward(env, id, &target, method, None).await;
            }
            if method == Method::Delete && rest.is_empty() {
                if let Some(r) = check_origin(&req, cfg)? {
                    return Ok(r);
                }
                if let Some(r) = check_token(&req, env, cfg).await? {
                    return Ok(r);
                }
                return forward(env, id, "/delete", Method::Post, None).await;
            }
            let is_ws = matches!(rest, ["ws"]);
            if is_ws {
                let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
                if !upgrade.eq_ignore_ascii_case("websocket") {
                    return error_response(
                        426,
                        "upgrade_required",
                        "This endpoint speaks WebSocket: connect with a WebSocket client \
                         (Upgrade: websocket), then send hello {lastSeq}.",
                    );
                }
                if let Some(r) = check_origin(&req, cfg)? {
                    return Ok(r);
                }
            }
            if let Some(r) = check_token(&req, env, cfg).await? {
                return Ok(r);
            }
            if method != Method::Get {
                return error_response(405, "method_not_allowed", "Use GET here.");
            }
            let url = req.url()?;
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            let target = match rest {
                [] => "/snapshot".to_string(),
                ["ws"] => "/ws".to_string(),
                ["events"] => format!("/events{query}"),
                ["messages"] => format!("/messages{query}"),
                ["export.jsonl"] => "/export".to_string(),
                ["artifacts", stage] => format!("/artifacts/{stage}{query}"),
                ["files"] => "/files".to_string(),
                // The path stays percent-encoded per segment; the session decodes it.
                ["files", path @ ..] if !path.is_empty() => {
                    format!("/files/{}{query}", path.join("/"))
                }
                ["project.zip"] => "/project.zip".to_string(),
                _ => return error_response(404, "not_found", "Unknown route."),
            };
            if !is_ws {
                return forward_read(env, cfg, id, &target).await;
            }
            // A socket holds a lease on its client's share of sockets until it closes.
            let ask = Ask {
                client: client(&req)?,
                lease: random_hex(12),
                limits: Some(cfg.admission),
                ..Default::default()
            };
            if let Err(r) = admission_do::ask(env, "/open", &ask).await? {
                return refusal(&r);
            }
            let headers = req.headers().clone();
            headers.set("x-client", &ask.client)?;
            headers.set("x-lease", &ask.lease)?;
            let resp = forward(env, id, &target, Method::Get, Some(headers)).await?;
            if resp.status_code() != 101 {
                admission_do::ask(env, "/close", &ask).await?.ok();
            }
            Ok(resp)
        }
        (_, ["health"] | ["sessions"] | ["models"]) => error_response(
            405,
            "method_not_allowed",
            "That method is not allowed here.",
        ),
        _ => error_response(404, "not_found", "Unknown route."),
    }
}

/// `/api/sessions/{id}/agui`: AG-UI over HTTP. `POST` a `RunAgentInput` (≤ 64 KiB) and read
/// the run as `text/event-stream`; `GET ?after=<seq>` (or with `Last-Event-ID`) resumes the
/// stream of the run in progress. Same origin, token and session rules as the WebSocket;
/// CORS answers only origins listed in `ALLOWED_ORIGINS`.
async fn agui(mut req: Request, env: &Env, cfg: &Config, id: &str) -> Result<Response> {
    let method = req.method();
    let origin = req.headers().get("origin")?;
    // Only origins named in ALLOWED_ORIGINS get CORS headers (the own origin needs none).
    let cors = origin
        .as_deref()
        .map(|o| o.trim_end_matches('/').to_string())
        .filter(|o| cfg.allowed_origins.iter().any(|a| a == o));
    let mut resp = if method == Method::Options {
        match &cors {
            Some(_) => {
                let mut r = Response::empty()?.with_status(204);
                let h = r.headers_mut();
                h.set("access-control-allow-methods", "GET, POST, OPTIONS")?;
                h.set(
                    "access-control-allow-headers",
                    "authorization, content-type, accept, last-event-id",
                )?;
                h.set("access-control-max-age", "600")?;
                r
            }
            None => {
                return error_response(
                    403,
                    "origin_not_allowed",
                    "This origin may not use BotArmy's API (see ALLOWED_ORIGINS).",
                )
            }
        }
    } else {
        agui_request(&mut req, env, cfg, id, method).await?
    };
    if let Some(o) = cors {
        // A Durable Object's response has immutable headers: build a fresh set.
        let h = Headers::new();
        for (k, v) in resp.headers().entries() {
            h.set(&k, &v)?;
        }
        h.set("access-control-allow-origin", &o)?;
        h.set("vary", "Origin")?;
        h.set("access-control-expose-headers", "content-type")?;
        resp = resp.with_headers(h);
    }
    Ok(resp)
}

async fn agui_request(
    req: &mut Request,
    env: &Env,
    cfg: &Config,
    id: &str,
    method: Method,
) -> Result<Response> {
    if let Some(r) = check_origin(req, cfg)? {
        return Ok(r);
    }
    if let Some(r) = check_token(req, env, cfg).await? {
        return Ok(r);
    }
    let headers = Headers::new();
    if let Some(last) = req.headers().get("last-event-id")? {
        headers.set("last-event-id", &last)?;
    }
    let (target, body) = match method {
        Method::Get => {
            let url = req.url()?;
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            (format!("/agui{query}"), None)
        }
        Method::Post => match read_body(req, MAX_BODY_BYTES).await? {
            Some(b) => ("/agui".to_string(), Some(b)),
            None => {
                let e = agui_http::body_too_large();
                return error_response(e.status, e.code, &e.message);
            }
        },
        _ => {
            return error_response(
                405,
                "method_not_allowed",
                "Use POST (a RunAgentInput) or GET ?after=<seq> here.",
            )
        }
    };
    // A stream is one of the client's connections, like a socket: leased here, given back by
    // the session once the stream no longer takes a place (src/protocol/agui_readers.rs), or
    // here when no stream came of it (giving back twice is harmless).
    let ask = Ask {
        client: client(req)?,
        lease: random_hex(12),
        limits: Some(cfg.admission),
        ..Default::default()
    };
    if let Err(r) = admission_do::ask(env, "/open", &ask).await? {
        return refusal(&r);
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
    let mut resp = error_response(
        503,
        "session_busy",
        "The session did not answer in time; try again in a moment.",
    )?;
    resp.headers_mut().set("retry-after", "1")?;
    Ok(resp)
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
                return error_response(404, "not_found", "No session with this id.");
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

fn own_origin(req: &Request) -> Result<String> {
    let url = req.url()?;
    Ok(url.origin().ascii_serialization())
}

fn check_origin(req: &Request, cfg: &Config) -> Result<Option<Response>> {
    let origin = req.headers().get("origin")?;
    if cfg.origin_allowed(origin.as_deref(), &own_origin(req)?) {
        return Ok(None);
    }
    log::warn("origin_refused", json!({"origin": origin}));
    error_response(
        403,
        "origin_not_allowed",
        "This origin may not use BotArmy's API (see ALLOWED_ORIGINS).",
    )
    .map(Some)
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

/// An admission refusal as an HTTP answer, with `Retry-After` when it has one.
fn refusal(r: &Refusal) -> Result<Response> {
    let mut resp = error_response(r.status, &r.code, &r.message)?;
    if let Some(s) = r.retry_after_secs() {
        resp.headers_mut().set("retry-after", &s.to_string())?;
    }
    Ok(resp)
}

/// With `BOTARMY_ACCESS_TOKEN` set, requests carry it as `Authorization: Bearer …` or, for
/// WebSockets (browsers cannot set headers there), as the subprotocol `botarmy.token.…`.
/// A client that sends more than a few wrong tokens a minute is refused (429) for a minute
/// before its token is even looked at.
async fn check_token(req: &Request, env: &Env, cfg: &Config) -> Result<Option<Response>> {
    let Some(token) = &cfg.access_token else {
        return Ok(None);
    };
    let who = client(req)?;
    let now = now_ms();
    let blocked = BLOCKED.with(|b| b.borrow().get(&who).copied().filter(|t| *t > now));
    if let Some(until) = blocked {
        return too_many_failures(until - now).map(Some);
    }
    let h = req.headers();
    let bearer = h.get("authorization")?.unwrap_or_default();
    let protocols = h.get("sec-websocket-protocol")?.unwrap_or_default();
    // The scheme is case-insensitive (RFC 9110).
    let offered: Vec<String> = bearer
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("bearer "))
        .map(|_| bearer[7..].trim().to_string())
        .into_iter()
        .chain(
            protocols
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("botarmy.token.").map(str::to_string)),
        )
        .filter(|t| !t.is_empty())
        .collect();
    if offered
        .iter()
        .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    {
        return Ok(None);
    }
    if offered.is_empty() {
        // No token at all (a page before its user typed one) is not a guess.
        return unauthorized().map(Some);
    }
    let ask = Ask {
        client: who.clone(),
        ..Default::default()
    };
    let answer = admission_do::ask(env, "/auth_failed", &ask).await?;
    if let Some(ms) = answer.ok().and_then(|v| v["blockedMs"].as_u64()) {
        log::warn("auth_blocked", json!({"client": who}));
        BLOCKED.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() >= BLOCKED_CACHE_MAX {
                b.clear();
            }
            b.insert(who, now + ms);
        });
        return too_many_failures(ms).map(Some);
    }
    unauthorized().map(Some)
}

fn unauthorized() -> Result<Response> {
    error_response(
        401,
        "unauthorized",
        "This BotArmy needs an access token (BOTARMY_ACCESS_TOKEN).",
    )
}

fn too_many_failures(ms: u64) -> Result<Response> {
    refusal(&Refusal {
        status: 429,
        code: "too_many_failures".into(),
        message: "Too many wrong access tokens from your address; wait a minute.".into(),
        retry_after_ms: Some(ms),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The owner of this request's list (see [`crate::index`]): the access token's when the
/// deployment has one (already checked), else the browser's `X-BotArmy-Owner` key.
fn owner_of(req: &Request, cfg: &Config) -> Result<Option<String>> {
    let key = req.headers().get(index::OWNER_HEADER)?;
    Ok(index::owner_name(
        cfg.access_token.as_deref(),
        key.as_deref(),
    ))
}

fn owner_required() -> Result<Response> {
    error_response(
        400,
        "owner_required",
        "Send X-BotArmy-Owner: a random 32-hex key this browser keeps, to name your list.",
    )
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
        return error_response(
            503,
            "index_unavailable",
            "Your session list could not be updated; try again.",
        );
    }
    Response::from_json(
        &json!({"key": key, "readOnly": row["readOnly"], "summary": row["summary"]}),
    )
}
