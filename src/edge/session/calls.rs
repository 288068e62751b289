//! LLM calls, run inside the alarm handler so they survive the request that asked for them:
//! the core's [`CallDriver`] decides each step, this file executes it (the I/O is in
//! `crate::edge::provider`) and commits the session's effects after each. The lease a call
//! gives back is carried to the next call as [`crate::session::object::lease_start`] says.

use std::time::Duration;

use futures_channel::oneshot;
use serde_json::json;
use worker::{AbortController, Delay, Result};

use crate::config::Config;
use crate::edge::{log, now_ms, provider};
use crate::session::call::{CallDriver, Input, Step};
use crate::session::object::{self, LeaseStart};
use crate::session::CallSpec;

use super::SessionDo;

impl SessionDo {
    /// Makes sure a pending LLM call gets run: the alarm loop picks it up, or a new alarm
    /// fires at once.
    pub(super) async fn kick(&self) -> Result<()> {
        if self.next_call.borrow().is_some() && !self.running.get() {
            self.push_index().await;
            self.set_alarm_at(now_ms()).await?;
        } else {
            // (which pushes the index too)
            self.schedule_alarm().await?;
        }
        Ok(())
    }

    pub(super) async fn run_calls(&self) {
        if self.running.replace(true) {
            return;
        }
        loop {
            let Some(spec) = self.next_call.borrow_mut().take() else {
                self.running.set(false);
                break;
            };
            if let Err(e) = self.run_call(spec.clone()).await {
                // Storage or runtime failure: log it; the alarm retries later (a call that
                // had begun is refused then, and its watchdog takes over).
                log::error("call_failed", json!({"message": e.to_string()}));
                self.next_call.borrow_mut().get_or_insert(spec);
                self.running.set(false);
                break;
            }
            if self.gone.get() {
                self.running.set(false);
                break;
            }
        }
        // No call follows at once (a gate, the run's end, a failure): give the lease back now.
        self.give_back_lease().await;
    }

    /// Sends the lease the last call gave back, if the next call's lease request did not.
    pub(super) async fn give_back_lease(&self) {
        let back = self.given_back.borrow_mut().take();
        if let Some(back) = back {
            provider::release(&self.env, back).await;
        }
    }

    /// Runs one LLM call: the core's [`CallDriver`] decides, this loop executes its steps
    /// (the I/O is in [`provider`]) and commits the session's effects after each.
    pub(super) async fn run_call(&self, spec: CallSpec) -> Result<()> {
        let id = spec.call_id;
        let (cfg, mut driver) = self.with_inner(|i| -> Result<_> {
            let messages = object::prompt(&spec, |stage, v| i.store.artifact(stage, v))?;
            let version = i.session.state().agent(spec.stage).version + 1;
            let session_id = i.session.state().session_id.clone();
            let driver = CallDriver::new(spec, &messages, i.cfg.call(), &session_id, version);
            Ok((i.cfg.clone(), driver))
        })?;
        let controller = AbortController::default();
        let signal = controller.signal();
        self.set_live(Some((id, controller)));
        // Stored before the first event is sent ahead of storage; cleared once all are stored.
        self.with_inner(|i| i.store.set_meta("streaming", &id.to_string()))?;
        let mut body = None;
        let mut timer: provider::ReadTimer = None;
        // Set while events sent ahead wait to be stored: fires on a later turn.
        let mut store_at: Option<std::pin::Pin<Box<Delay>>> = None;
        let mut input = Input::Start;
        // The follow-on the limiter set aside with this call's lease. A call that went on
        // under the last one's: the limiter is to hear of it (`go_on`), then its answer.
        let mut follow_on: Option<u32> = None;
        let mut go_on: Option<(provider::GivenBack, u32)> = None;
        let mut going_on: Option<oneshot::Receiver<Option<u32>>> = None;
        loop {
            let started = input == Input::Start;
            let step = {
                let mut g = self.inner.borrow_mut();
                let Some(i) = g.as_mut() else { break };
                driver.advance(&mut i.session, input, now_ms())
            };
            for (level, event, fields) in driver.take_notes() {
                log::at(level, event, fields);
            }
            if !self.commit_streaming()? {
                store_at = None;
            } else if store_at.is_none() {
                let wait = self.with_inner(|i| i.cfg.store_after_send_ms);
                store_at = Some(Box::pin(Delay::from(Duration::from_millis(wait))));
            }
            if store_at.is_some() && !matches!(step, Step::Read { .. } | Step::Sleep { .. }) {
                // The call's other steps talk to other objects at its edges: store first.
                store_at = None;
                self.store_sent_ahead()?;
            }
            if started {
                // The call has begun: its watchdog and crash-recovery timers go in the table.
                self.schedule_alarm().await?;
            }
            if matches!(step, Step::Fetch { .. } | Step::Sleep { .. }) {
                // The last call's lease waits for this call's lease request only through the
                // steps before it (a cache lookup); a call without one sends it here. (Reads
                // come after a fetch: not checked per chunk.)
                self.give_back_lease().await;
            }
            input = match step {
                Step::Finished => break,
                Step::LookupCache { key } => {
                    Input::Cache(provider::cache_get(&self.env, &cfg, &key).await)
                }
                Step::AcquireLease {
                    lease,
                    bucket,
                    tokens,
                } => {
                    let back = self.given_back.borrow_mut().take();
                    match object::lease_start(back, &bucket, tokens) {
                        // Set aside for this call: it starts now, and the limiter hears of it
                        // once the provider has answered.
                        LeaseStart::GoOn(b) => {
                            go_on = Some((b, tokens));
                            Input::Lease(Ok(()))
                        }
                        LeaseStart::Acquire {
                            release_first,
                            give_back,
                        } => {
                            if let Some(other) = release_first {
                                // Another limiter (the next stage uses another model).
                                provider::release(&self.env, other).await;
                            }
                            let got = provider::acquire(
                                &self.env, &cfg, &bucket, &lease, tokens, give_back,
                            );
                            Input::Lease(got.await.map(|f| follow_on = f))
                        }
                    }
                }
                Step::Fetch {
                    url,
                    headers,
                    body: request,
                    timeout_ms,
                } => {
                    let fetched =
                        provider::fetch(&url, &headers, request, timeout_ms, &signal).await;
                    // Told on its own task while the body streams: under `wrangler dev` the
                    // limiter's write before the provider's answer held that answer up, and
                    // deployed the limiter may be far away. Wanted again only at the release.
                    // (Told also when the runtime failed the request: it may have left.)
                    if let Some((b, tokens)) = go_on.take() {
                        let (tx, rx) = oneshot::channel();
                        let (env, cfg) = (self.env.clone(), cfg.clone());
                        wasm_bindgen_futures::spawn_local(async move {
                            let _ = tx.send(provider::go_on(&env, &cfg, b, tokens).await);
                        });
                        going_on = Some(rx);
                    }
                    let (answer, stream) = fetched?;
                    body = stream;
                    timer = None;
                    answer
                }
                Step::Read { deadline } => match body.as_mut() {
                    // What was sent ahead is stored once its timer fires, while this read
                    // waits: the next chunk does not wait for the write's turn.
                    Some(b) => {
                        let read = provider::read(b, deadline, &mut timer);
                        self.storing_meanwhile(read, &mut store_at).await?
                    }
                    None => Input::End,
                },
                Step::Sleep { until } => {
                    let sleep = provider::sleep_until(until);
                    self.storing_meanwhile(sleep, &mut store_at).await?;
                    Input::Woke
                }
                Step::Release {
                    lease,
                    bucket,
                    tokens,
                } => {
                    self.set_live(None);
                    // The limiter hears of this call before it hears of its lease again.
                    let told = self.gone_on(&cfg, &mut go_on, &mut going_on).await;
                    // Kept for the next call's lease request (a stage usually follows at once).
                    let back = provider::GivenBack {
                        bucket,
                        lease,
                        tokens,
                        follow_on: object::follow_on_kept(told, follow_on.take()),
                        cfg: cfg.clone(),
                    };
                    let earlier = self.given_back.borrow_mut().replace(back);
                    if let Some(earlier) = earlier {
                        provider::release(&self.env, earlier).await;
                    }
                    Input::Done
                }
                Step::Store { key, text, usage } => {
                    provider::cache_put(&self.env, &cfg, &key, &text, usage).await;
                    Input::Done
                }
            };
        }
        self.gone_on(&cfg, &mut go_on, &mut going_on).await;
        self.set_live(None);
        self.store_sent_ahead()?;
        if let Some(i) = self.inner.borrow().as_ref() {
            i.store.clear_meta("streaming")?;
        }
        // The stage's end (status, tokens, cost) reaches the owners' lists now.
        self.push_index().await;
        Ok(())
    }

    /// Makes sure the limiter has heard that the call went on under the last one's lease
    /// (telling it now if the call never reached the provider); the next follow-on it set
    /// aside, if it was told.
    pub(super) async fn gone_on(
        &self,
        cfg: &Config,
        go_on: &mut Option<(provider::GivenBack, u32)>,
        going_on: &mut Option<oneshot::Receiver<Option<u32>>>,
    ) -> Option<u32> {
        if let Some((b, tokens)) = go_on.take() {
            return provider::go_on(&self.env, cfg, b, tokens).await;
        }
        going_on.take()?.await.ok().flatten()
    }
}

/// What the core's lease carry-over reads of a lease the last call gave back.
impl object::GivenBack for provider::GivenBack {
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn follow_on(&self) -> Option<u32> {
        self.follow_on
    }
}
