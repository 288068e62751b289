//! The I/O of one LLM call, executed for the session's call driver
//! ([`crate::session::call`]): the streamed fetch, reading the body against a deadline,
//! sleeping, and the answer-cache and limiter objects. Every decision is the driver's; this
//! file only turns steps into runtime calls and their outcomes into [`Input`]s.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_util::future::{select, Either};
use serde_json::json;
use wasm_bindgen::prelude::*;
use worker::{
    AbortSignal, Delay, Env, Fetch, Headers, Method, Request, RequestInit, ResponseBody, Result,
};

use super::{log, now_ms};
use crate::config::Config;
use crate::llm::cache::{self, CacheAnswer, CacheRequest};
use crate::llm::inbox::{Inbox, Pushed, Taken, INBOX_MAX_BYTES};
use crate::llm::limiter_route::{GiveBack, LimiterAnswer, LimiterLimits, LimiterRequest};
use crate::session::call::Input;
use crate::session::Usage;

/// POSTs a streamed chat request; the response body stream when headers came back 2xx.
pub(crate) async fn fetch(
    url: &str,
    header_list: &[(&'static str, String)],
    body: String,
    timeout_ms: u64,
    signal: &AbortSignal,
) -> Result<(Input, Option<Body>)> {
    let headers = Headers::new();
    for (name, value) in header_list {
        headers.set(name, value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(url, &init)?;
    let connect = Fetch::Request(req);
    let sent = connect.send_with_signal(signal);
    let timeout = Delay::from(Duration::from_millis(timeout_ms));
    let mut resp = match select(Box::pin(sent), Box::pin(timeout)).await {
        Either::Left((Ok(r), _)) => r,
        Either::Left((Err(e), _)) => return Ok((Input::FetchFailed(e.to_string()), None)),
        Either::Right(_) => return Ok((Input::FetchTimedOut, None)),
    };
    let status = resp.status_code();
    if (200..300).contains(&status) {
        let ok = Input::Response {
            status,
            retry_after: None,
            error_body: String::new(),
        };
        let ResponseBody::Stream(stream) = resp.body() else {
            return Ok((ok, None));
        };
        return Ok((ok, Some(Body::pump(stream))));
    }
    let retry_after = resp.headers().get("retry-after")?;
    let error_body = resp.text().await.unwrap_or_default();
    Ok((
        Input::Response {
            status,
            retry_after,
            error_body,
        },
        None,
    ))
}

// A loop that reads a response body and hands each chunk to Rust in one call. Reading through
// `worker::ByteStream` cost, per chunk, a `JsFuture` (two closures and a `then`), reads of
// `done` and `value`, and a copy, each a crossing between wasm and JS: the largest share of the
// runtime's CPU per relayed event (the bench: 0.47 → 0.38 ms per event, see
// docs/benchmarks.md). No crate reads a stream this way. `onChunk(bytes)` answers false when
// the inbox is full ([`Inbox`]): the loop waits for `resume`. `onChunk(undefined, error)` ends
// it (error null at the end); nothing is called after `cancel`.
#[wasm_bindgen(inline_js = r#"
export function pumpBody(body, onChunk) {
  const reader = body.getReader();
  let resume = null;
  let cancelled = false;
  (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (cancelled) return;
        if (done) return onChunk(undefined, null);
        if (!onChunk(value, null)) await new Promise((r) => { resume = r; });
      }
    } catch (e) {
      // (After a wasm reset the closure is gone too: nothing is left to tell.)
      if (!cancelled) try { onChunk(undefined, String(e)); } catch {}
    }
  })();
  return {
    resume() { const r = resume; resume = null; if (r) r(); },
    cancel() { cancelled = true; reader.cancel().catch(() => {}); },
  };
}
"#)]
extern "C" {
    type Pump;
    #[wasm_bindgen(js_name = pumpBody)]
    fn pump_body(body: &web_sys::ReadableStream, on_chunk: &JsValue) -> Pump;
    #[wasm_bindgen(method)]
    fn resume(this: &Pump);
    #[wasm_bindgen(method)]
    fn cancel(this: &Pump);
}

/// A streamed response body: what arrived since the last read comes back as one piece.
pub(crate) struct Body {
    inbox: Rc<RefCell<(Inbox, Option<Waker>)>>,
    pump: Pump,
    _on_chunk: Closure<dyn FnMut(JsValue, JsValue) -> bool>,
}

impl Body {
    fn pump(stream: &web_sys::ReadableStream) -> Body {
        let inbox = Rc::new(RefCell::new((Inbox::default(), None::<Waker>)));
        let shared = inbox.clone();
        let on_chunk = Closure::<dyn FnMut(JsValue, JsValue) -> bool>::new(
            move |chunk: JsValue, error: JsValue| {
                let (inbox, waker) = &mut *shared.borrow_mut();
                let read_on = if chunk.is_undefined() {
                    // The call's own abort just ends the body, as a cancelled call wants.
                    inbox.end(error.as_string().filter(|e| e != "Error: aborted"));
                    true
                } else {
                    let chunk = js_sys::Uint8Array::unchecked_from_js(chunk);
                    let len = chunk.length() as usize;
                    match inbox.push(len, |buf| chunk.copy_to(buf)) {
                        Pushed::Gathering => return true,
                        Pushed::ReadOn => true,
                        Pushed::Wait { first } => {
                            if first {
                                log::info("provider_body_held", json!({"bytes": INBOX_MAX_BYTES}));
                            }
                            false
                        }
                    }
                };
                if let Some(w) = waker.take() {
                    w.wake();
                }
                read_on
            },
        );
        let pump = pump_body(stream, on_chunk.as_ref());
        Body {
            inbox,
            pump,
            _on_chunk: on_chunk,
        }
    }

    /// Everything that arrived since the last read (waiting for something); `None` at the end.
    fn next(
        &mut self,
    ) -> impl std::future::Future<Output = Option<std::result::Result<Vec<u8>, String>>> + Unpin + '_
    {
        poll_fn(|cx| {
            let (inbox, waker) = &mut *self.inbox.borrow_mut();
            Poll::Ready(match inbox.take() {
                Taken::Bytes { bytes, resume } => {
                    if resume {
                        self.pump.resume();
                    }
                    Some(Ok(bytes))
                }
                Taken::End => None,
                Taken::Failed(e) => Some(Err(e)),
                Taken::Nothing => {
                    *waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            })
        })
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.pump.cancel();
    }
}

/// A timer kept across reads of one body: `(fires at, timer)`. A new `Delay` per read cost a
/// JS closure and a setTimeout/clearTimeout pair per chunk (about a tenth of the runtime's CPU
/// per event); the driver's deadline mostly moves later (the stall watchdog follows the last
/// chunk), and a timer that fires before it is only a [`Input::Tick`] the driver ignores.
pub(crate) type ReadTimer = Option<(u64, std::pin::Pin<Box<Delay>>)>;

/// The next piece of a response body, or [`Input::Tick`] at `deadline` (or earlier, when the
/// kept `timer` fires first).
pub(crate) async fn read(stream: &mut Body, deadline: Option<u64>, timer: &mut ReadTimer) -> Input {
    let read = stream.next();
    let res = match deadline {
        None => Some(read.await),
        Some(t) => {
            if timer.as_ref().is_none_or(|(at, _)| *at > t) {
                let ms = t.saturating_sub(now_ms());
                *timer = Some((t, Box::pin(Delay::from(Duration::from_millis(ms)))));
            }
            let (_, delay) = timer.as_mut().expect("armed above");
            match select(read, delay.as_mut()).await {
                Either::Left((r, _)) => Some(r),
                Either::Right(_) => {
                    *timer = None;
                    None
                }
            }
        }
    };
    match res {
        None => Input::Tick,
        Some(None) => Input::End,
        Some(Some(Ok(bytes))) => Input::Bytes(bytes),
        Some(Some(Err(e))) => Input::ReadFailed(e),
    }
}

pub(crate) async fn sleep_until(t: u64) {
    let ms = t.saturating_sub(now_ms());
    if ms > 0 {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

/// Looks the call up in the answer cache. A broken cache is a miss: it must never stop a run.
pub(crate) async fn cache_get(env: &Env, cfg: &Config, key: &str) -> Option<(String, u64)> {
    let ask = CacheRequest::Get {
        key: key.to_string(),
        ttl_ms: cfg.cache_ttl_ms,
    };
    match cache_call(env, &ask).await {
        Ok(CacheAnswer::Hit {
            text,
            input_tokens,
            output_tokens,
        }) => Some((text, input_tokens + output_tokens)),
        Ok(_) => None,
        Err(e) => {
            log::error("cache_unavailable", json!({"message": e.to_string()}));
            None
        }
    }
}

pub(crate) async fn cache_put(env: &Env, cfg: &Config, key: &str, text: &str, u: Usage) {
    let ask = CacheRequest::Put {
        key: key.to_string(),
        ttl_ms: cfg.cache_ttl_ms,
        text: text.to_string(),
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
    };
    if let Err(e) = cache_call(env, &ask).await {
        log::error("cache_unavailable", json!({"message": e.to_string()}));
    }
}

async fn cache_call(env: &Env, ask: &CacheRequest) -> Result<CacheAnswer> {
    let ns = env.durable_object("ANSWERS")?;
    let stub = ns.id_from_name(&cache::shard(ask.key()))?.get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(serde_json::to_string(ask)?.into()));
    let req = Request::new_with_init("https://answers/", &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "answer cache: HTTP {}",
            resp.status_code()
        )));
    }
    resp.json().await
}

/// A lease a finished call gave back, not sent yet: the session's next lease request to the
/// same limiter carries it ([`acquire`], [`go_on`]), so a hand-over from one stage to the next
/// costs one limiter request (and one write there) instead of two.
pub(crate) struct GivenBack {
    pub bucket: String,
    pub lease: String,
    pub tokens: u32,
    /// The next call set aside with the lease: up to this many tokens
    /// ([`crate::llm::ProviderLimiter::reserve_follow_on`]).
    pub follow_on: Option<u32>,
    /// The limits the limiter is told with the release.
    pub cfg: Config,
}

/// Asks the global limiter for a slot, giving `back` first (a lease of the same limiter):
/// the follow-on set aside with it, or `Err(wait_ms)` when the provider budget is spent
/// (`back` is released all the same).
pub(crate) async fn acquire(
    env: &Env,
    cfg: &Config,
    bucket: &str,
    lease: &str,
    tokens: u32,
    back: Option<GivenBack>,
) -> std::result::Result<Option<u32>, u64> {
    let ask = LimiterRequest::Acquire {
        lease: lease.to_string(),
        tokens,
        limits: limits(cfg),
        release: back.map(|b| GiveBack {
            lease: b.lease,
            tokens: b.tokens,
        }),
    };
    match limiter_call(env, bucket, &ask).await {
        Ok(LimiterAnswer::Wait { wait_ms }) => Err(wait_ms),
        Ok(LimiterAnswer::Granted { follow_on }) => Ok(follow_on),
        Ok(other) => {
            log::error(
                "limiter_unexpected",
                json!({"answer": format!("{other:?}")}),
            );
            Ok(None)
        }
        Err(e) => {
            // A broken limiter must not stop every session: log and go on.
            log::error("limiter_unavailable", json!({"message": e.to_string()}));
            Ok(None)
        }
    }
}

/// Tells the limiter that the session's next call (`tokens` estimated) has started under the
/// follow-on set aside with `back`; the next follow-on set aside.
pub(crate) async fn go_on(env: &Env, cfg: &Config, back: GivenBack, tokens: u32) -> Option<u32> {
    let ask = LimiterRequest::GoOn {
        lease: back.lease.clone(),
        tokens,
        used: back.tokens,
        limits: limits(cfg),
    };
    match limiter_call(env, &back.bucket, &ask).await {
        Ok(LimiterAnswer::WentOn {
            had_follow_on,
            follow_on,
        }) => {
            if !had_follow_on {
                // (The lease expired meanwhile: the call was charged as it is.)
                log::warn("limiter_follow_on_lost", json!({"bucket": back.bucket}));
            }
            follow_on
        }
        Ok(other) => {
            log::error(
                "limiter_unexpected",
                json!({"answer": format!("{other:?}")}),
            );
            None
        }
        Err(e) => {
            log::error("limiter_unavailable", json!({"message": e.to_string()}));
            None
        }
    }
}

pub(crate) async fn release(env: &Env, back: GivenBack) {
    let ask = LimiterRequest::Release {
        lease: back.lease,
        tokens: back.tokens,
        limits: limits(&back.cfg),
    };
    if let Err(e) = limiter_call(env, &back.bucket, &ask).await {
        log::error("limiter_unavailable", json!({"message": e.to_string()}));
    }
}

/// The limits travel with every request, so the limiter follows the configuration.
fn limits(cfg: &Config) -> LimiterLimits {
    LimiterLimits {
        rpm: cfg.requests_per_min,
        tpm: cfg.tokens_per_min,
        max: cfg.max_concurrent,
    }
}

async fn limiter_call(env: &Env, bucket: &str, ask: &LimiterRequest) -> Result<LimiterAnswer> {
    let ns = env.durable_object("LIMITER")?;
    // One limiter per provider and model (`provider:model`), never keyed by the key itself.
    let stub = ns.id_from_name(bucket)?.get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(serde_json::to_string(ask)?.into()));
    let req = Request::new_with_init("https://limiter/", &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    resp.json().await
}
