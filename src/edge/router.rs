//! The Worker entry: API routes (everything under `/api/`; wrangler's assets binding serves
//! the UI for every other path), the origin allowlist, the optional access token, and the
//! hand-off to the session's Durable Object.

use serde_json::json;
use worker::{Env, Headers, Method, Request, RequestInit, Response, Result};

use super::session_do::random_hex;
use super::{config, error_response, log};
use crate::config::Config;
use crate::protocol::is_session_id;
use crate::VERSION;

pub(crate) async fn handle(req: Request, env: Env) -> Result<Response> {
    let path = req.path();
    if !path.starts_with("/api/") {
        return env.assets("ASSETS")?.fetch_request(req).await;
    }
    let cfg = match config(&env) {
        Ok(c) => c,
        Err(e) => {
            log::error("config_invalid", json!({"message": e}));
            return error_response(500, "config_invalid", &format!("Server misconfigured: {e}"));
        }
    };
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
            "model": cfg.model_label(),
        })),
        (Method::Post, ["sessions"]) => {
            if let Some(r) = check_origin(&req, cfg)? {
                return Ok(r);
            }
            if let Some(r) = check_token(&req, cfg)? {
                return Ok(r);
            }
            let id = random_hex(16);
            forward(env, &id, "/init", Method::Post, None).await
        }
        (_, ["sessions", id, rest @ ..]) => {
            if !is_session_id(id) {
                return error_response(404, "not_found", "No session with this id.");
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
            if let Some(r) = check_token(&req, cfg)? {
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
                ["artifacts", stage] => format!("/artifacts/{stage}{query}"),
                _ => return error_response(404, "not_found", "Unknown route."),
            };
            let headers = if is_ws {
                Some(req.headers().clone())
            } else {
                None
            };
            forward(env, id, &target, Method::Get, headers).await
        }
        (_, ["health"] | ["sessions"]) => error_response(
            405,
            "method_not_allowed",
            "That method is not allowed here.",
        ),
        _ => error_response(404, "not_found", "Unknown route."),
    }
}

async fn forward(
    env: &Env,
    id: &str,
    target: &str,
    method: Method,
    headers: Option<Headers>,
) -> Result<Response> {
    let stub = env
        .durable_object("SESSIONS")?
        .id_from_name(id)?
        .get_stub()?;
    let headers = headers.unwrap_or_default();
    headers.set("x-session-id", id)?;
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

/// With `BOTARMY_ACCESS_TOKEN` set, requests carry it as `Authorization: Bearer …` or, for
/// WebSockets (browsers cannot set headers there), as the subprotocol `botarmy.token.…`.
fn check_token(req: &Request, cfg: &Config) -> Result<Option<Response>> {
    let Some(token) = &cfg.access_token else {
        return Ok(None);
    };
    let h = req.headers();
    let bearer = h.get("authorization")?.unwrap_or_default();
    let protocols = h.get("sec-websocket-protocol")?.unwrap_or_default();
    let presented = bearer
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_string())
        .into_iter()
        .chain(
            protocols
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("botarmy.token.").map(str::to_string)),
        )
        .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
    if presented {
        return Ok(None);
    }
    error_response(
        401,
        "unauthorized",
        "This BotArmy needs an access token (BOTARMY_ACCESS_TOKEN).",
    )
    .map(Some)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
