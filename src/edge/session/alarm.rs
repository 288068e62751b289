//! The one alarm: the session's timers planned into the `schedule` table
//! (`crate::session::schedule`), and the alarm set to the earliest of them.

use std::time::Duration;

use worker::Result;

use crate::edge::now_ms;
use crate::session::object;
use crate::session::schedule::{self, Needs};

use super::SessionDo;

impl SessionDo {
    /// Plans the session's timers into the `schedule` table (writing only rows that change)
    /// and sets the one alarm to the earliest of them.
    pub(super) async fn schedule_alarm(&self) -> Result<()> {
        if self.gone.get() {
            return Ok(());
        }
        self.push_index().await;
        let now = now_ms();
        let sockets = self.state.get_websockets();
        let hello_deadline = sockets
            .iter()
            .filter_map(|ws| {
                let key = self.conn_key(ws);
                self.with_conn(ws, &key, |a| a.c.hello_deadline())
            })
            .min();
        let live_call = self.live.borrow().is_some();
        let running = self.running.get();
        let next = {
            let mut g = self.inner.borrow_mut();
            let Some(i) = g.as_mut() else {
                return Ok(());
            };
            let needs = Needs {
                start_call: self.next_call.borrow().is_some() && !running,
                live_call,
                sockets: !sockets.is_empty(),
                sweep_every: i.cfg.sweep_interval_ms(),
                hello_deadline,
                expire_at: Some(i.active_at + i.cfg.session_idle_ttl_ms),
            };
            let want = schedule::plan(&i.timers, &i.session.timers(), needs, now);
            let (upserts, deletes) = schedule::changes(&i.timers, &want);
            for (timer, at) in upserts {
                i.store.set_timer(timer, at)?;
            }
            for timer in deletes {
                i.store.clear_timer(timer)?;
            }
            i.timers = want;
            schedule::next_alarm(&i.timers)
        };
        match next {
            Some(t) => self.set_alarm_at(t).await,
            None => Ok(()),
        }
    }

    pub(super) async fn set_alarm_at(&self, t: u64) -> Result<()> {
        // Only move the alarm earlier (or set one); a later deadline is re-derived when it fires.
        if !object::alarm_moves(self.alarm_at.get(), t, now_ms()) {
            return Ok(());
        }
        let delay = t.saturating_sub(now_ms());
        self.state
            .storage()
            .set_alarm(Duration::from_millis(delay))
            .await?;
        self.alarm_at.set(Some(t));
        Ok(())
    }
}
