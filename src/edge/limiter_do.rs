//! The provider limiter Durable Object: one instance per provider (base URL + model) holds
//! the global request, token and concurrency budget shared by every session. A Durable
//! Object rather than the Workers rate-limit binding because the budget counts tokens (known
//! only after a call) and concurrent calls, not just requests; the rules are the core's
//! [`ProviderLimiter`], and what it is asked and answers is the core's [`LimiterRequest`] and
//! [`LimiterAnswer`] (`src/llm/limiter_route.rs`, which also holds the dispatch).

use std::cell::RefCell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::now_ms;
use crate::llm::limiter_route::{answer, new_limiter, LimiterAnswer, LimiterRequest};
use crate::llm::ProviderLimiter;

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
        let ask: LimiterRequest = req.json().await?;
        if self.limiter.borrow().is_none() {
            let stored: Option<ProviderLimiter> = self.state.storage().get("limiter").await?;
            *self.limiter.borrow_mut() = Some(stored.unwrap_or_else(|| new_limiter(&ask)));
        }
        let (said, snapshot): (LimiterAnswer, ProviderLimiter) = {
            let mut g = self.limiter.borrow_mut();
            let l = g.as_mut().expect("loaded");
            (answer(l, &ask, now_ms()), l.clone())
        };
        self.state.storage().put("limiter", &snapshot).await?;
        Response::from_json(&said)
    }
}
