//! AG-UI over HTTP: `POST /agui` (a `RunAgentInput`: one command, then its run as SSE) and
//! `GET /agui?after=<seq>` (the rest of the run in progress). The rules are in
//! `crate::protocol::agui_http` and `crate::protocol::agui_readers`; this file reads the
//! request, applies the command and hooks the stream up to the log.

use serde_json::json;
use worker::{Request, Response, Result};

use crate::edge::admission_do::{self, Ask};
use crate::edge::{error_response, log, now_ms};
use crate::protocol::agui_http::{
    decode_run_input, plan_stream, remember_run, repeated_run, HttpError, OpenGate, RememberedRun,
    StreamStart,
};
use crate::session::RunStatus;

use super::http::{bad_number, http_error, query, sse_headers, sse_response, whole, MAX_SEQ};
use super::{log_cuts, SessionDo};

impl SessionDo {
    /// `POST /agui` (a `RunAgentInput`: one command, then its run as SSE) or `GET /agui`
    /// (`?after=<seq>` or `Last-Event-ID`: the rest of the run in progress).
    pub(super) async fn agui(&self, req: Request) -> Result<Response> {
        // The client's address as the router counts it (the streams' caps are per client), and
        // the lease it took on the client's connections, kept by a stream that takes a place.
        let client = req
            .headers()
            .get("x-client")?
            .unwrap_or_else(|| "unknown".into());
        let lease = req.headers().get("x-lease")?.unwrap_or_default();
        let resp = self.agui_request(req, &client, &lease).await;
        if !lease.is_empty() && !self.readers.borrow().holds(&lease) {
            self.release(lease).await;
        }
        self.release_freed();
        resp
    }

    /// Gives back (on a task of its own) the connection leases of the streams that no longer
    /// take a place.
    pub(super) fn release_freed(&self) {
        let freed = self.readers.borrow_mut().take_freed();
        if freed.is_empty() {
            return;
        }
        let env = self.env.clone();
        wasm_bindgen_futures::spawn_local(async move {
            for lease in freed {
                let ask = Ask {
                    lease,
                    ..Default::default()
                };
                if let Err(e) = admission_do::ask(&env, "/close", &ask).await {
                    log::warn("admission_unreachable", json!({"message": e.to_string()}));
                }
            }
        });
    }

    pub(super) async fn agui_request(
        &self,
        mut req: Request,
        client: &str,
        lease: &str,
    ) -> Result<Response> {
        let last_event_id = match req.headers().get("last-event-id")? {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n <= MAX_SEQ => Some(n),
                _ => return bad_number("Last-Event-ID", 0, MAX_SEQ),
            },
        };
        if req.method() == worker::Method::Get {
            let q = query(&req)?;
            let after = match (q.contains_key("after"), last_event_id) {
                (true, _) => match whole(&q, "after", 0, MAX_SEQ) {
                    Ok(n) => n,
                    Err(r) => return r,
                },
                (false, Some(n)) => n,
                (false, None) => {
                    return error_response(
                        400,
                        "missing_field",
                        "Say where to resume: ?after=<seq> or a Last-Event-ID header.",
                    )
                }
            };
            return self.open_stream(client, lease, after);
        }
        let body = req.bytes().await?;
        let now = now_ms();
        // Past the client's or the session's cap on streams nothing is applied.
        if let Err(e) = self.readers.borrow_mut().admit(client) {
            log::warn("agui_refused", json!({"code": e.code}));
            return http_error(&e);
        }
        let mut runs: Vec<RememberedRun> = self
            .with_inner(|i| i.store.meta("agui_runs"))?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        // A repeated runId applies nothing: it streams its run again (or from Last-Event-ID),
        // or is refused id_reused when its body means another command.
        let sid = self.with_inner(|i| i.session.state().session_id.clone());
        match repeated_run(&runs, &body, &sid) {
            Ok(Some(from)) => {
                return self.open_stream(client, lease, last_event_id.unwrap_or(from - 1))
            }
            Ok(None) => {}
            Err(e) => {
                log::warn("agui_refused", json!({"code": e.code}));
                return http_error(&e);
            }
        }
        let (decoded, gate) = self.with_inner(|i| {
            let st = i.session.state();
            let gate = st.gate.as_ref().map(|g| OpenGate {
                id: &g.id,
                stage: g.stage,
            });
            let held = st.gate.as_ref().map(|g| (g.id.clone(), g.stage));
            (decode_run_input(&body, &st.session_id, gate), held)
        });
        let run = match decoded {
            Ok(r) => r,
            Err(e) => {
                log::warn("agui_refused", json!({"code": e.code}));
                return http_error(&e);
            }
        };
        let key = run.envelope.id.clone().unwrap_or_default();
        let digest = run.digest.clone();
        let before = self.with_inner(|i| i.session.last_seq());
        let result = self.with_inner(|i| i.session.command(run.envelope, now));
        self.touch(now)?;
        self.commit()?;
        let ack = match result {
            Ok(a) => a,
            Err(r) => {
                log::warn("agui_refused", json!({"code": r.code}));
                return http_error(&HttpError::from_rejection(&r));
            }
        };
        let after = if !ack.duplicate {
            remember_run(
                &mut runs,
                RememberedRun {
                    key: key.clone(),
                    from: before + 1,
                    digest: Some(digest),
                    gate,
                },
            );
            let j = serde_json::to_string(&runs).unwrap_or_default();
            self.with_inner(|i| i.store.set_meta("agui_runs", &j))?;
            last_event_id.unwrap_or(before)
        } else if let Some(n) = last_event_id {
            n
        } else if let Some(r) = runs.iter().find(|r| r.key == key) {
            r.from - 1
        } else {
            return error_response(
                409,
                "run_not_remembered",
                "This runId was applied long ago; start a new run, or resume its stream \
                 with GET ?after=<seq>.",
            );
        };
        self.open_stream(client, lease, after)
    }

    /// The SSE response for the events after `after`, to the end of the run: the logged
    /// ones now, in this same synchronous step the live ones are hooked up (no gap, no
    /// duplicate).
    pub(super) fn open_stream(&self, client: &str, lease: &str, after: u64) -> Result<Response> {
        let (oldest, newest, open) = self.with_inner(|i| {
            let status = i.session.state().run.status;
            (
                i.oldest,
                i.session.last_seq(),
                matches!(status, RunStatus::Running | RunStatus::Paused),
            )
        });
        let from = match plan_stream(after, oldest, newest, open) {
            StreamStart::From(f) => f,
            StreamStart::Nothing => return sse_response(vec![": no run in progress\n\n".into()]),
            StreamStart::Truncated { oldest } => {
                return error_response(
                    410,
                    "log_truncated",
                    &format!("Events before seq {oldest} are no longer kept."),
                )
            }
            StreamStart::Ahead { newest } => {
                return error_response(
                    400,
                    "invalid_field",
                    &format!("The log ends at seq {newest}; \"after\" is beyond it."),
                )
            }
        };
        let (id, mut body) = match self.readers.borrow_mut().open(client, lease, from) {
            Ok(opened) => opened,
            Err(e) => {
                log::warn("agui_refused", json!({"code": e.code}));
                return http_error(&e);
            }
        };
        let mut next = from;
        'replay: while next <= newest {
            let page = self.with_inner(|i| i.store.events(next, newest, 200))?;
            if page.is_empty() {
                break;
            }
            for f in &page {
                log_cuts(self.readers.borrow_mut().offer_to(id, next, f));
                if !self.readers.borrow().is_live(id) {
                    break 'replay;
                }
                next += 1;
            }
        }
        // The runtime pulls a chunk when its client reads: what is not read stays in the
        // readers' queue, within their bounds.
        let body = futures_util::stream::poll_fn(move |cx| {
            body.poll_chunk(cx)
                .map(|c| c.map(|c| Ok::<Vec<u8>, worker::Error>(c.into_bytes())))
        });
        let mut resp = Response::from_stream(body)?;
        sse_headers(&mut resp)?;
        Ok(resp)
    }
}
