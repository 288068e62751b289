//! Who may do what: the API's routes as a type, and the one decision per request over them.
//! The router (edge) reads a request's method, path and headers into [`Facts`], asks
//! [`decide`] once, and serves the [`Grant`] it gets or answers the [`Refusal`]; it holds no
//! policy of its own. Sans-I/O: the one thing it cannot know, whether a wrong token tips its
//! client over the limit, it hands back as [`Verdict::WrongToken`] for the edge to count.
//!
//! Rules, checked in this order (each row stops at its first failure):
//!
//! | request | checks, in order | grant |
//! |---|---|---|
//! | any | `Host` on the allowlist (DNS rebinding) → `421 host_not_allowed` | |
//! | not under `/api/` | — | the UI's assets |
//! | `GET /api/health` | — | health |
//! | `GET /api/models` | token | the model catalog |
//! | `POST /api/sessions` | origin, token | a new session (its creator's list, if any) |
//! | `GET /api/sessions?q=` | token, owner (`400 owner_required`), `q` (`400 invalid_field`) | the owner's list |
//! | other methods on those three | `405` | |
//! | `… /sessions/{key}/agui` | a view key → `403 read_only` (no token asked); an id; `OPTIONS`: an origin in `ALLOWED_ORIGINS` (else `403`); else origin, token, `GET`/`POST` (else `405`) | a run (`POST`) or its resumption (`GET`); CORS for listed origins |
//! | `POST`/`DELETE …/{key}/remember` | an id or a view key, origin, token, owner, the method (`405`) | keep / forget it in the owner's list |
//! | `PATCH …/sessions/{key}` | a view key → token, `403 read_only`; an id, origin, token | rename |
//! | `…/sessions/{key}/…` | an id or a view key; a view key only `GET`s a read or the socket (else token, `403 read_only`) | below |
//! | `…/{id}/views[/…]` | origin (not for `GET`), token | list, create, revoke view links |
//! | `DELETE …/sessions/{id}` | origin, token | delete |
//! | `…/{key}/ws` | `Upgrade: websocket` (else `426`), origin, token, `GET` (`405`) | the socket (read-only for a view key) |
//! | `…/{key}/{read}` | token, `GET` (`405`) | the read (redacted for a view key) |
//! | anything else under `/api/` | (under a session: token, `GET`) → `404` | |
//!
//! A key that is neither a session id nor a view key is `404 not_found` before anything is
//! checked. The token comes as `Authorization: Bearer …` or, for a WebSocket (a browser cannot
//! set headers there), as the subprotocol `botarmy.token.…`; a client blocked for guessing is
//! refused before its token is looked at, and no token at all is not a guess.

use crate::config::Config;
use crate::index;
use crate::protocol::wire::HttpErrorCode;
pub use crate::protocol::wire::Refusal;
use crate::protocol::{is_session_id, view};

/// The HTTP methods the routes tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
    Options,
    /// HEAD, PUT and the rest: no route takes them.
    Other,
}

/// A read a session answers alike for its id and for a view key (then redacted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'a> {
    /// `/api/sessions/{key}`
    Snapshot,
    Events,
    Messages,
    /// `export.jsonl`
    Export,
    Artifact(&'a str),
    Files,
    /// A file's path, still percent-encoded per segment (the session decodes it).
    File(&'a str),
    ProjectZip,
}

impl<'a> Read<'a> {
    /// The read that `rest` (the path after `/api/sessions/{key}/`, split at `/`) names.
    fn parse(rest: &[&'a str], tail: &'a str) -> Option<Read<'a>> {
        Some(match rest {
            [] => Read::Snapshot,
            ["events"] => Read::Events,
            ["messages"] => Read::Messages,
            ["export.jsonl"] => Read::Export,
            ["artifacts", stage] => Read::Artifact(stage),
            ["files"] => Read::Files,
            ["files", _, ..] => Read::File(&tail["files/".len()..]),
            ["project.zip"] => Read::ProjectZip,
            _ => return None,
        })
    }

    /// The session object's path for this read, with the query where the read takes one.
    pub fn target(&self, query: Option<&str>) -> String {
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        match self {
            Read::Snapshot => "/snapshot".into(),
            Read::Events => format!("/events{q}"),
            Read::Messages => format!("/messages{q}"),
            Read::Export => "/export".into(),
            Read::Artifact(stage) => format!("/artifacts/{stage}{q}"),
            Read::Files => "/files".into(),
            Read::File(path) => format!("/files/{path}{q}"),
            Read::ProjectZip => "/project.zip".into(),
        }
    }

    /// The read a session object's path names (the inverse of [`Read::target`], query aside).
    pub fn from_target(path: &'a str) -> Option<Read<'a>> {
        Some(match path {
            "/snapshot" => Read::Snapshot,
            "/events" => Read::Events,
            "/messages" => Read::Messages,
            "/export" => Read::Export,
            "/files" => Read::Files,
            "/project.zip" => Read::ProjectZip,
            p => match p.strip_prefix("/files/") {
                Some(file) => Read::File(file),
                None => Read::Artifact(p.strip_prefix("/artifacts/")?),
            },
        })
    }
}

/// What a request under `/api/sessions/{key}/` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    Read(Read<'a>),
    /// `ws`
    Socket,
    /// `views` or `views/{id}`: the path from `views` on.
    Views(&'a str),
    /// `DELETE` of the session itself.
    Delete,
    /// No such thing.
    Unknown,
}

/// A request's route, from its method and path: the API's one route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// Not under `/api/`: the UI.
    Asset,
    Health,
    Models,
    CreateSession,
    ListSessions,
    /// `/api/health`, `/api/sessions` or `/api/models` with a method they do not take.
    WrongMethod,
    Agui {
        key: &'a str,
    },
    Remember {
        key: &'a str,
    },
    Rename {
        key: &'a str,
    },
    Session {
        key: &'a str,
        part: Part<'a>,
    },
    /// Anything else under `/api/`.
    Unknown,
}

impl<'a> Route<'a> {
    pub fn parse(method: Method, path: &'a str) -> Route<'a> {
        let Some(api) = path.strip_prefix("/api/") else {
            return Route::Asset;
        };
        let api = api.trim_end_matches('/');
        let parts: Vec<&str> = if api.is_empty() {
            vec![]
        } else {
            api.split('/').collect()
        };
        match (method, parts.as_slice()) {
            (Method::Get, ["health"]) => Route::Health,
            (Method::Get, ["models"]) => Route::Models,
            (Method::Post, ["sessions"]) => Route::CreateSession,
            (Method::Get, ["sessions"]) => Route::ListSessions,
            (_, ["sessions", key, "agui"]) => Route::Agui { key },
            (_, ["sessions", key, "remember"]) => Route::Remember { key },
            (Method::Patch, ["sessions", key]) => Route::Rename { key },
            (_, ["sessions", key, rest @ ..]) => {
                // The path after the key, as sent (a file's path keeps its slashes).
                let tail = api
                    .get("sessions/".len() + key.len() + 1..)
                    .unwrap_or_default();
                let part = match rest {
                    [] if method == Method::Delete => Part::Delete,
                    ["ws"] => Part::Socket,
                    ["views", ..] => Part::Views(tail),
                    _ => Read::parse(rest, tail).map_or(Part::Unknown, Part::Read),
                };
                Route::Session { key, part }
            }
            (_, ["health"] | ["sessions"] | ["models"]) => Route::WrongMethod,
            _ => Route::Unknown,
        }
    }
}

/// What the edge read from a request, for [`decide`].
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub method: Method,
    pub path: &'a str,
    /// The URL's query, without `?` (`Some("")` for a bare `?`).
    pub query: Option<&'a str>,
    /// The `Host` header (else the URL's host).
    pub host: &'a str,
    /// This Worker's own origin, from the request's URL.
    pub own_origin: &'a str,
    pub origin: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// `Sec-WebSocket-Protocol`.
    pub protocols: Option<&'a str>,
    pub upgrade: Option<&'a str>,
    /// `X-BotArmy-Owner`: the browser's key naming its list.
    pub owner_key: Option<&'a str>,
    /// How much longer this client is blocked for wrong tokens, as far as the edge knows.
    pub blocked_ms: Option<u64>,
}

/// What a request may do, once allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant<'a> {
    Asset,
    Health,
    Models,
    /// With the creator's list to put it in, if the request names one.
    CreateSession {
        owner: Option<String>,
    },
    ListSessions {
        owner: String,
        q: String,
    },
    /// Keep a session id or view key in the owner's list.
    Remember {
        key: &'a str,
        owner: String,
    },
    Forget {
        key: &'a str,
        owner: String,
    },
    Rename {
        id: &'a str,
    },
    /// Forwarded with the request's method to the session's `target`.
    Views {
        id: &'a str,
        target: String,
    },
    Delete {
        id: &'a str,
    },
    /// `read_only`: through a view key (the session redacts what it answers).
    Read {
        key: &'a str,
        target: String,
        read_only: bool,
    },
    Socket {
        key: &'a str,
        read_only: bool,
    },
    /// A CORS preflight from an origin in `ALLOWED_ORIGINS`.
    AguiPreflight,
    /// `POST`: a `RunAgentInput`, answered with its run.
    AguiRun {
        id: &'a str,
    },
    /// `GET`: the rest of the run in progress.
    AguiResume {
        id: &'a str,
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    Allow(Grant<'a>),
    Refuse(Refusal),
    /// A token that is not the access token: the edge counts the guess (admission) and
    /// answers [`wrong_token`].
    WrongToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub verdict: Verdict<'a>,
    /// AG-UI only: the origin (listed in `ALLOWED_ORIGINS`) whose CORS headers go on the
    /// answer, whatever it is.
    pub cors: Option<String>,
}

/// The one decision per request: the route it names, and whether this request may take it.
pub fn decide<'a>(req: &Facts<'a>, cfg: &Config) -> Decision<'a> {
    let mut cors = None;
    let verdict = match rules(req, cfg, &mut cors) {
        Ok(grant) => Verdict::Allow(grant),
        Err(stop) => stop,
    };
    Decision { verdict, cors }
}

fn rules<'a>(
    req: &Facts<'a>,
    cfg: &Config,
    cors: &mut Option<String>,
) -> Result<Grant<'a>, Verdict<'a>> {
    // Before anything else: a request for a name that is not this Worker's (DNS rebinding).
    if !cfg.host_allowed(req.host) {
        return refuse(host_not_allowed());
    }
    let viewer = |key: &str| view::parse_key(key).is_some();
    let known = |key: &str| is_session_id(key) || viewer(key);
    let method = req.method;
    Ok(match Route::parse(method, req.path) {
        Route::Asset => Grant::Asset,
        Route::Health => Grant::Health,
        // What the start form may offer: providers, models and prices, never keys or URLs.
        Route::Models => {
            token(req, cfg)?;
            Grant::Models
        }
        Route::CreateSession => {
            origin(req, cfg)?;
            token(req, cfg)?;
            Grant::CreateSession {
                owner: owner(req, cfg),
            }
        }
        Route::ListSessions => {
            token(req, cfg)?;
            let owner = owner(req, cfg).ok_or_else(|| Verdict::Refuse(owner_required()))?;
            let q = query_param(req.query.unwrap_or_default(), "q").unwrap_or_default();
            if let Err(e) = index::Search::parse(&q) {
                return refuse(Refusal::new(400, HttpErrorCode::InvalidField, e));
            }
            Grant::ListSessions { owner, q }
        }
        Route::WrongMethod => return refuse(method_not_allowed(ANY_OTHER_METHOD)),
        Route::Unknown => return refuse(unknown_route()),
        // A view key streams through its socket; it never drives a run (nor is its token
        // asked for first: the answer is the same either way).
        Route::Agui { key } if viewer(key) => return refuse(read_only()),
        Route::Agui { key } if !is_session_id(key) => return refuse(no_session()),
        Route::Agui { key: id } => {
            // Only origins named in ALLOWED_ORIGINS get CORS headers (the own origin needs
            // none), on every answer from here on.
            *cors = req
                .origin
                .map(|o| o.trim_end_matches('/').to_string())
                .filter(|o| cfg.allowed_origins.iter().any(|a| a == o));
            if method == Method::Options {
                return match cors {
                    Some(_) => Ok(Grant::AguiPreflight),
                    None => refuse(origin_not_allowed()),
                };
            }
            origin(req, cfg)?;
            token(req, cfg)?;
            match method {
                Method::Get => Grant::AguiResume {
                    id,
                    target: format!("/agui{}", with_query(req.query)),
                },
                Method::Post => Grant::AguiRun { id },
                _ => return refuse(method_not_allowed(AGUI_METHODS)),
            }
        }
        // "Your sessions": keep (POST) or forget (DELETE) this session in the owner's list; a
        // view key too.
        Route::Remember { key } => {
            if !known(key) {
                return refuse(no_session());
            }
            origin(req, cfg)?;
            token(req, cfg)?;
            let owner = owner(req, cfg).ok_or_else(|| Verdict::Refuse(owner_required()))?;
            match method {
                Method::Post => Grant::Remember { key, owner },
                Method::Delete => Grant::Forget { key, owner },
                _ => return refuse(method_not_allowed(REMEMBER_METHODS)),
            }
        }
        Route::Rename { key } if viewer(key) => {
            token(req, cfg)?;
            return refuse(read_only());
        }
        Route::Rename { key: id } => {
            if !is_session_id(id) {
                return refuse(no_session());
            }
            origin(req, cfg)?;
            token(req, cfg)?;
            Grant::Rename { id }
        }
        Route::Session { key, part } => {
            if !known(key) {
                return refuse(no_session());
            }
            // A view key reads what a session id reads, and nothing else.
            let read_only = viewer(key);
            if read_only && !(method == Method::Get && viewer_may(&part_target(part, None))) {
                token(req, cfg)?;
                return refuse(self::read_only());
            }
            match part {
                Part::Views(tail) => {
                    if method != Method::Get {
                        origin(req, cfg)?;
                    }
                    token(req, cfg)?;
                    Grant::Views {
                        id: key,
                        target: format!("/{tail}"),
                    }
                }
                Part::Delete => {
                    origin(req, cfg)?;
                    token(req, cfg)?;
                    Grant::Delete { id: key }
                }
                Part::Socket => {
                    if !req
                        .upgrade
                        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
                    {
                        return refuse(upgrade_required());
                    }
                    origin(req, cfg)?;
                    token(req, cfg)?;
                    get_only(method)?;
                    Grant::Socket { key, read_only }
                }
                Part::Read(read) => {
                    token(req, cfg)?;
                    get_only(method)?;
                    Grant::Read {
                        key,
                        target: read.target(req.query),
                        read_only,
                    }
                }
                Part::Unknown => {
                    token(req, cfg)?;
                    get_only(method)?;
                    return refuse(unknown_route());
                }
            }
        }
    })
}

/// The session object's path for a part of a session (`""` for what no view may ask).
fn part_target(part: Part<'_>, query: Option<&str>) -> String {
    match part {
        Part::Read(read) => read.target(query),
        Part::Socket => "/ws".into(),
        Part::Views(tail) => format!("/{tail}"),
        Part::Delete => "/delete".into(),
        Part::Unknown => String::new(),
    }
}

/// The view-key allowlist, for the router and the session object alike: of a session
/// object's paths, a view key may ask for its reads, its socket and a place in an owner's
/// list. The router refuses the rest before they get there; the session, reached with a view
/// secret, asks again rather than trust that every caller did.
pub fn viewer_may(target: &str) -> bool {
    matches!(target, "/ws" | "/remember") || Read::from_target(target).is_some()
}

fn refuse<T>(r: Refusal) -> Result<T, Verdict<'static>> {
    Err(Verdict::Refuse(r))
}

fn get_only(method: Method) -> Result<(), Verdict<'static>> {
    match method {
        Method::Get => Ok(()),
        _ => refuse(method_not_allowed(GET_ONLY)),
    }
}

fn with_query(query: Option<&str>) -> String {
    query.map(|q| format!("?{q}")).unwrap_or_default()
}

/// Browsers send `Origin`; it must be this Worker's own or on the allowlist
/// ([`Config::origin_allowed`]).
fn origin(req: &Facts<'_>, cfg: &Config) -> Result<(), Verdict<'static>> {
    if cfg.origin_allowed(req.origin, req.own_origin) {
        return Ok(());
    }
    refuse(origin_not_allowed())
}

/// With `BOTARMY_ACCESS_TOKEN` set, the request must carry it (see the module header).
fn token(req: &Facts<'_>, cfg: &Config) -> Result<(), Verdict<'static>> {
    let Some(token) = &cfg.access_token else {
        return Ok(());
    };
    if let Some(ms) = req.blocked_ms {
        return refuse(too_many_failures(ms));
    }
    let offered = offered_tokens(req.authorization, req.protocols);
    if offered
        .iter()
        .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    {
        return Ok(());
    }
    if offered.is_empty() {
        // No token at all (a page before its user typed one) is not a guess.
        return refuse(unauthorized());
    }
    Err(Verdict::WrongToken)
}

/// The tokens a request offers: `Authorization: Bearer …` (the scheme is case-insensitive,
/// RFC 9110) and every `botarmy.token.…` subprotocol.
fn offered_tokens(authorization: Option<&str>, protocols: Option<&str>) -> Vec<String> {
    let bearer = authorization.unwrap_or_default();
    bearer
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("bearer "))
        .map(|_| bearer[7..].trim().to_string())
        .into_iter()
        .chain(
            protocols
                .unwrap_or_default()
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("botarmy.token.").map(str::to_string)),
        )
        .filter(|t| !t.is_empty())
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The owner of this request's list (see [`crate::index`]): the access token's when the
/// deployment has one (already checked), else the browser's `X-BotArmy-Owner` key.
fn owner(req: &Facts<'_>, cfg: &Config) -> Option<String> {
    index::owner_name(cfg.access_token.as_deref(), req.owner_key)
}

/// The first value of `name` in an `application/x-www-form-urlencoded` query (`+` is a space,
/// `%XX` a byte; bytes that are not UTF-8 become U+FFFD), as a URL parser reads it.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match (
                b[i],
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (b'+', _, _) => out.push(b' '),
                (b'%', Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                (c, _, _) => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .find(|(k, _)| decode(k) == name)
        .map(|(_, v)| decode(v))
}

// ---- Refusals --------------------------------------------------------------------------------

const ANY_OTHER_METHOD: &str = "That method is not allowed here.";
const AGUI_METHODS: &str = "Use POST (a RunAgentInput) or GET ?after=<seq> here.";
const REMEMBER_METHODS: &str = "Use POST or DELETE here.";
const GET_ONLY: &str = "Use GET here.";

pub fn host_not_allowed() -> Refusal {
    Refusal::new(
        421,
        HttpErrorCode::HostNotAllowed,
        "This server does not answer for that host name (see ALLOWED_HOSTS).",
    )
}

pub fn origin_not_allowed() -> Refusal {
    Refusal::new(
        403,
        HttpErrorCode::OriginNotAllowed,
        "This origin may not use BotArmy's API (see ALLOWED_ORIGINS).",
    )
}

pub fn unauthorized() -> Refusal {
    Refusal::new(
        401,
        HttpErrorCode::Unauthorized,
        "This BotArmy needs an access token (BOTARMY_ACCESS_TOKEN).",
    )
}

pub fn too_many_failures(ms: u64) -> Refusal {
    Refusal {
        retry_after_ms: Some(ms),
        ..Refusal::new(
            429,
            HttpErrorCode::TooManyFailures,
            "Too many wrong access tokens from your address; wait a minute.",
        )
    }
}

/// The answer to a wrong token, once the edge has counted it: `blocked_ms` when that guess
/// blocked its client.
pub fn wrong_token(blocked_ms: Option<u64>) -> Refusal {
    blocked_ms.map_or_else(unauthorized, too_many_failures)
}

/// Anything but a read through a view-only link.
pub fn read_only() -> Refusal {
    Refusal::new(
        403,
        HttpErrorCode::ReadOnly,
        "This is a view-only link: it shows the session but cannot change it.",
    )
}

pub fn no_session() -> Refusal {
    Refusal::new(404, HttpErrorCode::NotFound, "No session with this id.")
}

pub fn unknown_route() -> Refusal {
    Refusal::new(404, HttpErrorCode::NotFound, "Unknown route.")
}

fn method_not_allowed(message: &str) -> Refusal {
    Refusal::new(405, HttpErrorCode::MethodNotAllowed, message)
}

pub fn upgrade_required() -> Refusal {
    Refusal::new(
        426,
        HttpErrorCode::UpgradeRequired,
        "This endpoint speaks WebSocket: connect with a WebSocket client (Upgrade: websocket), \
         then send hello {lastSeq}.",
    )
}

pub fn owner_required() -> Refusal {
    Refusal::new(
        400,
        HttpErrorCode::OwnerRequired,
        "Send X-BotArmy-Owner: a random 32-hex key this browser keeps, to name your list.",
    )
}

/// A rename body holds a name and little else.
pub const RENAME_MAX_BYTES: usize = 4096;

pub fn rename_too_large() -> Refusal {
    Refusal::new(
        413,
        HttpErrorCode::BodyTooLarge,
        "A rename body holds at most 4 KiB.",
    )
}

pub fn config_invalid(e: &str) -> Refusal {
    Refusal::new(
        500,
        HttpErrorCode::ConfigInvalid,
        format!("Server misconfigured: {e}"),
    )
}

pub fn internal() -> Refusal {
    Refusal::new(
        500,
        HttpErrorCode::Internal,
        "Something went wrong on the server; try again.",
    )
}

pub fn session_busy() -> Refusal {
    Refusal {
        // Whole seconds: `Retry-After: 1`.
        retry_after_ms: Some(1000),
        ..Refusal::new(
            503,
            HttpErrorCode::SessionBusy,
            "The session did not answer in time; try again in a moment.",
        )
    }
}

pub fn index_unavailable() -> Refusal {
    Refusal::new(
        503,
        HttpErrorCode::IndexUnavailable,
        "Your session list could not be updated; try again.",
    )
}

#[cfg(test)]
mod tests;
