//! The provider limiter Durable Object: one instance per provider (base URL + model) holds
//! the global request, token and concurrency budget shared by every session. A Durable
//! Object rather than the Workers rate-limit binding because the budget counts tokens (known
//! only after a call) and concurrent calls, not just requests; the rules are the core's
//! [`ProviderLimiter`]. Routes: `/acquire` (optionally giving a lease back first; a granted
//! lease comes with a follow-on set aside when there is room), `/go-on` (the holder's next
//! call started under that set-aside) and `/release`.

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::now_ms;
use crate::llm::ProviderLimiter;

#[derive(Deserialize)]
struct Ask {
    lease: String,
    tokens: u32,
    rpm: u32,
    tpm: u32,
    max: u32,
    /// On `/acquire`: the caller's previous lease, given back first ([`ProviderLimiter::hand_over`]).
    #[serde(default)]
    release: Option<GiveBack>,
    /// On `/go-on`: the tokens the caller's previous call used ([`ProviderLimiter::go_on`]).
    #[serde(default)]
    used: u32,
}

#[derive(Deserialize)]
struct GiveBack {
    lease: String,
    tokens: u32,
}

#[durable_object]
pub struct ProviderLimiterDo {
    state: State,
    limiter: RefCell<Option<ProviderLimiter>>,
}

impl DurableObject for ProviderLimiterDo {
    fn new(state: State, _env: Env) -> Self {
        ProviderLimiterDo {
            state,
            limiter: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let ask: Ask = req.json().await?;
        if self.limiter.borrow().is_none() {
            let stored: Option<ProviderLimiter> = self.state.storage().get("limiter").await?;
            let l = stored.unwrap_or_else(|| ProviderLimiter::new(ask.rpm, ask.tpm, ask.max));
            *self.limiter.borrow_mut() = Some(l);
        }
        let now = now_ms();
        let (answer, snapshot) = {
            let mut g = self.limiter.borrow_mut();
            let l = g.as_mut().expect("loaded");
            l.reconfigure(ask.rpm, ask.tpm, ask.max);
            let answer = match req.path().as_str() {
                "/acquire" => match l.hand_over(
                    ask.release.as_ref().map(|b| (b.lease.as_str(), b.tokens)),
                    &ask.lease,
                    ask.tokens,
                    now,
                ) {
                    Ok(()) => {
                        let follow_on = l.reserve_follow_on(&ask.lease, ask.tokens, now);
                        json!({"ok": true, "followOn": follow_on})
                    }
                    Err(wait) => json!({"ok": false, "waitMs": wait}),
                },
                // The caller's next call has started under its set-aside: never refused.
                "/go-on" => {
                    let had = l.go_on(&ask.lease, ask.used, ask.tokens, now);
                    let follow_on = l.reserve_follow_on(&ask.lease, ask.tokens, now);
                    json!({"ok": true, "hadFollowOn": had, "followOn": follow_on})
                }
                "/release" => json!({"ok": l.release(&ask.lease, ask.tokens, now)}),
                _ => return Response::error("unknown limiter route", 404),
            };
            (answer, l.clone())
        };
        self.state.storage().put("limiter", &snapshot).await?;
        Response::from_json(&answer)
    }
}
