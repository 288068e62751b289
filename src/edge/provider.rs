//! Runs one LLM call for the Session object: the OpenAI-compatible provider over fetch
//! (streamed, parsed incrementally by the core's decoder), an answer from the answer cache,
//! or the built-in demo provider. Every chunk goes straight into the session machine; its
//! timers (text flush, watchdog) are served here while the stream is open.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::json;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Result};

use super::session_do::SessionDo;
use super::{log, now_ms};
use crate::agents::{self, demo_answer, demo_tokens, demo_usage, MAX_ANSWER_TOKENS};
use crate::llm::cache;
use crate::llm::openai::messages_chars;
use crate::llm::{
    chat_request_body, chat_url, classify_http, estimate_tokens, redact, ErrorKind, LlmError,
    StreamDecoder, StreamItem,
};
use crate::session::{CallSpec, StageFailure, Usage};

enum Source {
    Http(worker::ByteStream),
    /// Text already known (the demo's, or a cached answer) fed in pieces.
    Text {
        tokens: VecDeque<String>,
        interval: u64,
        next_at: u64,
    },
}

enum Next {
    Bytes(Vec<u8>),
    Token(String),
    End,
    Failed(LlmError),
    Tick,
}

pub(crate) async fn run_call(d: &SessionDo, spec: CallSpec) -> Result<()> {
    let (cfg, messages, demo_text, session_id) = d.with_inner(|i| -> Result<_> {
        let mut prior = Vec::new();
        for (stage, version) in &spec.prior {
            if let Some(text) = i.store.artifact(*stage, *version)? {
                prior.push((*stage, text));
            }
        }
        let previous = match spec.previous_version {
            Some(v) => i.store.artifact(spec.stage, v)?,
            None => None,
        };
        let messages = agents::build_messages(
            spec.stage,
            &spec.brief,
            &prior,
            spec.feedback.as_deref(),
            previous.as_deref(),
        );
        let demo_text = i.cfg.demo().then(|| {
            let version = i.session.state().agent(spec.stage).version + 1;
            demo_answer(spec.stage, &spec.brief, spec.feedback.as_deref(), version)
        });
        let session_id = i.session.state().session_id.clone();
        Ok((i.cfg.clone(), messages, demo_text, session_id))
    })?;
    let id = spec.call_id;
    let prompt_chars = messages_chars(&messages);
    let expected = demo_text.as_ref().map(|t| t.chars().count());
    d.with_inner(|i| i.session.call_started(id, expected, now_ms()));
    d.commit()?;
    log::info(
        "call_started",
        json!({"stage": spec.stage, "attempt": spec.attempt, "call": id, "demo": cfg.demo()}),
    );

    let secrets: Vec<String> = [cfg.api_key.clone(), cfg.access_token.clone()]
        .into_iter()
        .flatten()
        .collect();
    let fail = |e: LlmError| {
        let detail = redact(
            &e.detail,
            &secrets.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        log::warn(
            "llm_error",
            json!({"stage": spec.stage, "call": id, "code": e.code(), "status": e.status, "detail": detail}),
        );
        d.with_inner(|i| {
            i.session.on_failure(
                id,
                StageFailure {
                    code: e.kind.into(),
                    message: e.user_message().into(),
                    detail,
                    retryable: e.retryable(),
                    retry_after_ms: e.retry_after_ms,
                },
                now_ms(),
            )
        });
        d.commit()
    };

    // Open the source.
    let controller = AbortController::default();
    let signal = controller.signal();
    d.set_live(Some((id, controller)));
    d.schedule_alarm().await?;
    let mut lease: Option<String> = None;
    let body = chat_request_body(&cfg.model, &messages, Some(MAX_ANSWER_TOKENS));
    let cache_key = cfg
        .cache_on()
        .then(|| cache::key(cfg.cache, &session_id, &cfg.base_url, &body))
        .flatten();
    let cached = match &cache_key {
        Some(k) => cache_get(d, &cfg, k).await,
        None => None,
    };
    // Usage of a cached answer is zero: nothing was spent on the provider.
    let mut usage: Option<Usage> = cached.as_ref().map(|_| Usage::default());
    // The answer as streamed, kept only when it is to be stored in the cache.
    let mut answer_text = (cache_key.is_some() && cached.is_none()).then(String::new);
    let mut source = match (demo_text, cached) {
        (Some(text), _) => Source::Text {
            tokens: demo_tokens(&text).into(),
            interval: cfg.demo_token_interval_ms,
            next_at: now_ms(),
        },
        (None, Some(hit)) => {
            log::info(
                "cache_hit",
                json!({"stage": spec.stage, "call": id, "chars": hit.text.chars().count(),
                       "savedTokens": hit.saved_tokens}),
            );
            d.with_inner(|i| {
                i.session
                    .call_cached(id, hit.text.chars().count(), now_ms())
            });
            d.commit()?;
            Source::Text {
                tokens: cached_pieces(&hit.text).into(),
                interval: 0,
                next_at: now_ms(),
            }
        }
        (None, None) => {
            // One lease per session (a session runs one call at a time): a call restarted
            // after a crash takes back its own slot instead of leaking it.
            let lease_id = session_id.clone();
            let est = estimate_tokens(prompt_chars) + MAX_ANSWER_TOKENS;
            if let Err(wait) = acquire(d, &cfg, &lease_id, est).await {
                d.set_live(None);
                log::info(
                    "call_queued",
                    json!({"stage": spec.stage, "call": id, "waitMs": wait}),
                );
                d.with_inner(|i| i.session.on_deferred(id, wait, now_ms()));
                return d.commit();
            }
            lease = Some(lease_id);
            let headers = Headers::new();
            headers.set("content-type", "application/json")?;
            headers.set("accept", "text/event-stream")?;
            if let Some(key) = &cfg.api_key {
                headers.set("authorization", &format!("Bearer {key}"))?;
            }
            let mut init = RequestInit::new();
            init.with_method(Method::Post)
                .with_headers(headers)
                .with_body(Some(body.into()));
            let req = Request::new_with_init(&chat_url(&cfg.base_url), &init)?;
            let connect = Fetch::Request(req);
            let sent = connect.send_with_signal(&signal);
            let timeout = Delay::from(Duration::from_millis(cfg.stall_timeout_ms));
            let resp = match select(Box::pin(sent), Box::pin(timeout)).await {
                Either::Left((Ok(r), _)) => r,
                Either::Left((Err(e), _)) => {
                    release(d, &cfg, lease.as_deref(), 0).await;
                    d.set_live(None);
                    if d.with_inner(|i| i.session.live_call()) != Some(id) {
                        return Ok(()); // aborted by cancel
                    }
                    return fail(LlmError::new(
                        ErrorKind::Network,
                        format!("fetch failed: {e}"),
                    ));
                }
                Either::Right(_) => {
                    release(d, &cfg, lease.as_deref(), 0).await;
                    d.set_live(None);
                    return fail(LlmError::new(
                        ErrorKind::Timeout,
                        format!("no response headers within {} ms", cfg.stall_timeout_ms),
                    ));
                }
            };
            let mut resp = resp;
            let status = resp.status_code();
            if !(200..300).contains(&status) {
                let retry_after = resp.headers().get("retry-after")?.unwrap_or_default();
                let body = resp.text().await.unwrap_or_default();
                release(d, &cfg, lease.as_deref(), 0).await;
                d.set_live(None);
                let ra = (!retry_after.is_empty()).then_some(retry_after.as_str());
                return fail(classify_http(status, ra, &body, now_ms()));
            }
            Source::Http(resp.stream()?)
        }
    };

    // Pump: chunks into the session, its timers served meanwhile.
    let mut decoder = StreamDecoder::new();
    let mut answer_chars = 0usize;
    // The usage of an answer the session took as an artifact (it may go in the cache).
    let mut accepted: Option<Usage> = None;
    loop {
        if d.with_inner(|i| i.session.live_call()) != Some(id) {
            break; // cancelled, or failed by the watchdog
        }
        let deadline = d.with_inner(|i| i.session.poll_timeout());
        let next = next_item(&mut source, deadline).await;
        let now = now_ms();
        let mut items = Vec::new();
        let mut ended = false;
        match next {
            Next::Tick => d.with_inner(|i| i.session.on_timeout(now)),
            Next::Token(t) => items.push(StreamItem::Delta(t)),
            Next::Bytes(b) => match decoder.push(&b) {
                Ok(mut v) => items.append(&mut v),
                Err(e) => {
                    fail(e)?;
                    break;
                }
            },
            Next::Failed(e) => {
                if d.with_inner(|i| i.session.live_call()) == Some(id) {
                    fail(e)?;
                }
                break;
            }
            Next::End => {
                ended = true;
                if matches!(source, Source::Http(_)) {
                    match decoder.finish() {
                        Ok(mut v) => items.append(&mut v),
                        Err(e) => {
                            fail(e)?;
                            break;
                        }
                    }
                }
            }
        }
        for item in items {
            match item {
                StreamItem::Delta(t) => {
                    answer_chars += t.chars().count();
                    if let Some(a) = answer_text.as_mut() {
                        a.push_str(&t);
                    }
                    d.with_inner(|i| i.session.on_chunk(id, &t, now));
                }
                StreamItem::Usage {
                    prompt_tokens,
                    completion_tokens,
                } => {
                    usage = Some(Usage {
                        input_tokens: prompt_tokens as u64,
                        output_tokens: completion_tokens as u64,
                    })
                }
                StreamItem::Finished { .. } | StreamItem::Done => {}
                // Not offered yet: no tools in the request, and reasoning is not shown yet.
                StreamItem::Reasoning(_)
                | StreamItem::ToolCallStart { .. }
                | StreamItem::ToolCallArgs { .. }
                | StreamItem::ToolCallEnd { .. } => {}
            }
        }
        if ended {
            let u = usage.unwrap_or_else(|| {
                let (p, c) = demo_usage(prompt_chars, answer_chars);
                Usage {
                    input_tokens: p as u64,
                    output_tokens: c as u64,
                }
            });
            accepted = d.with_inner(|i| {
                let live = i.session.live_call() == Some(id);
                i.session.on_done(id, u, now_ms());
                live.then_some(u)
            });
        }
        d.commit()?;
        if ended {
            break;
        }
    }
    d.set_live(None);
    let used = usage.map_or(estimate_tokens(answer_chars) as u64, |u| {
        u.input_tokens + u.output_tokens
    });
    release(d, &cfg, lease.as_deref(), used as u32).await;
    if let (Some(u), Some(k), Some(text)) = (accepted, &cache_key, &answer_text) {
        if cache::cacheable(text) {
            cache_put(d, &cfg, k, text, u).await;
        }
    }
    log::info(
        "call_ended",
        json!({"stage": spec.stage, "call": id, "chars": answer_chars}),
    );
    Ok(())
}

async fn next_item(source: &mut Source, deadline: Option<u64>) -> Next {
    let now = now_ms();
    let wait = deadline.map(|t| t.saturating_sub(now));
    match source {
        Source::Http(stream) => {
            let read = stream.next();
            let res = match wait {
                None => Some(read.await),
                Some(ms) => {
                    let timer = Delay::from(Duration::from_millis(ms));
                    match select(read, Box::pin(timer)).await {
                        Either::Left((r, _)) => Some(r),
                        Either::Right(_) => None,
                    }
                }
            };
            match res {
                None => Next::Tick,
                Some(None) => Next::End,
                Some(Some(Ok(bytes))) => Next::Bytes(bytes),
                Some(Some(Err(e))) => Next::Failed(LlmError::new(
                    ErrorKind::Network,
                    format!("stream read failed: {e}"),
                )),
            }
        }
        Source::Text {
            tokens,
            interval,
            next_at,
        } => {
            let token_wait = next_at.saturating_sub(now);
            if wait.is_some_and(|w| w < token_wait) {
                Delay::from(Duration::from_millis(wait.unwrap_or(0))).await;
                return Next::Tick;
            }
            if token_wait > 0 {
                Delay::from(Duration::from_millis(token_wait)).await;
            }
            *next_at = now.max(*next_at) + *interval;
            match tokens.pop_front() {
                Some(t) => Next::Token(t),
                None => Next::End,
            }
        }
    }
}

/// A cached answer, as the cache object returned it.
struct Hit {
    text: String,
    saved_tokens: u64,
}

/// A cached answer is fed to the session in pieces of this many characters, so the text
/// events look like a fast stream (each flush carries at most the coalescing limit anyway).
const CACHED_PIECE_CHARS: usize = 256;

fn cached_pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(CACHED_PIECE_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

/// Looks the call up in the answer cache. A broken cache is a miss: it must never stop a run.
async fn cache_get(d: &SessionDo, cfg: &crate::config::Config, key: &str) -> Option<Hit> {
    match cache_call(
        d,
        key,
        json!({"key": key, "ttlMs": cfg.cache_ttl_ms}),
        "/get",
    )
    .await
    {
        Ok(v) if v["hit"] == json!(true) => {
            let text = v["text"].as_str()?.to_string();
            let saved_tokens =
                v["inputTokens"].as_u64().unwrap_or(0) + v["outputTokens"].as_u64().unwrap_or(0);
            Some(Hit { text, saved_tokens })
        }
        Ok(_) => None,
        Err(e) => {
            log::error("cache_unavailable", json!({"message": e.to_string()}));
            None
        }
    }
}

async fn cache_put(d: &SessionDo, cfg: &crate::config::Config, key: &str, text: &str, u: Usage) {
    let body = json!({"key": key, "ttlMs": cfg.cache_ttl_ms, "text": text,
                      "inputTokens": u.input_tokens, "outputTokens": u.output_tokens});
    if let Err(e) = cache_call(d, key, body, "/put").await {
        log::error("cache_unavailable", json!({"message": e.to_string()}));
    }
}

async fn cache_call(
    d: &SessionDo,
    key: &str,
    body: serde_json::Value,
    path: &str,
) -> Result<serde_json::Value> {
    let ns = d.env_ref().durable_object("ANSWERS")?;
    let stub = ns.id_from_name(&cache::shard(key))?.get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(body.to_string().into()));
    let req = Request::new_with_init(&format!("https://answers{path}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "answer cache {path}: HTTP {}",
            resp.status_code()
        )));
    }
    resp.json().await
}

/// Asks the global limiter for a slot; `Err(wait_ms)` when the provider budget is spent.
async fn acquire(
    d: &SessionDo,
    cfg: &crate::config::Config,
    lease: &str,
    tokens: u32,
) -> std::result::Result<(), u64> {
    match limiter_call(d, cfg, "/acquire", lease, tokens).await {
        Ok(v) if v["ok"] == json!(true) => Ok(()),
        Ok(v) => Err(v["waitMs"].as_u64().unwrap_or(1000)),
        Err(e) => {
            // A broken limiter must not stop every session: log and go on.
            log::error("limiter_unavailable", json!({"message": e.to_string()}));
            Ok(())
        }
    }
}

async fn release(d: &SessionDo, cfg: &crate::config::Config, lease: Option<&str>, tokens: u32) {
    let Some(lease) = lease else { return };
    if let Err(e) = limiter_call(d, cfg, "/release", lease, tokens).await {
        log::error("limiter_unavailable", json!({"message": e.to_string()}));
    }
}

/// One limiter request; the limits travel with it so the limiter follows the configuration.
async fn limiter_call(
    d: &SessionDo,
    cfg: &crate::config::Config,
    path: &str,
    lease: &str,
    tokens: u32,
) -> Result<serde_json::Value> {
    let body = json!({"lease": lease, "tokens": tokens, "rpm": cfg.requests_per_min,
                      "tpm": cfg.tokens_per_min, "max": cfg.max_concurrent});
    let ns = d.env_ref().durable_object("LIMITER")?;
    // One limiter per provider: keyed by base URL and model, never by the key itself.
    let name = format!("{}|{}", cfg.base_url, cfg.model);
    let stub = ns.id_from_name(&name)?.get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(body.to_string().into()));
    let req = Request::new_with_init(&format!("https://limiter{path}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    resp.json().await
}
