//! The admission Durable Object: one for the whole Worker, holding the core's [`Admission`]
//! (sessions per client, the global cap, sockets per client, repeated wrong tokens). Only the
//! count of sessions is stored; buckets and socket leases are soft state that sessions renew
//! (see [`crate::admission`]).

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State, Stub};

use super::now_ms;
use crate::admission::{Admission, AdmissionLimits, Refusal};

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Ask {
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub lease: String,
    #[serde(default)]
    pub leases: Vec<(String, String)>,
    pub limits: Option<AdmissionLimits>,
}

#[durable_object]
pub struct AdmissionDo {
    state: State,
    admission: RefCell<Option<Admission>>,
}

impl DurableObject for AdmissionDo {
    fn new(state: State, _env: Env) -> Self {
        AdmissionDo {
            state,
            admission: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let ask: Ask = req.json().await?;
        if self.admission.borrow().is_none() {
            let sessions: Option<u64> = self.state.storage().get("sessions").await?;
            *self.admission.borrow_mut() = Some(Admission::new(sessions.unwrap_or(0)));
        }
        let now = now_ms();
        let limits = ask.limits.unwrap_or(AdmissionLimits {
            sessions_per_min: 10,
            session_burst: 20,
            max_sessions: u64::MAX,
            sockets_per_client: u32::MAX,
        });
        let (answer, sessions_changed) = {
            let mut g = self.admission.borrow_mut();
            let a = g.as_mut().expect("loaded");
            let before = a.sessions();
            let answer: std::result::Result<serde_json::Value, Refusal> = match req.path().as_str()
            {
                "/create" => a
                    .create_session(&ask.client, &limits, now)
                    .map(|_| json!({})),
                "/removed" => {
                    a.session_removed();
                    Ok(json!({}))
                }
                "/open" => a
                    .open_socket(&ask.client, &ask.lease, &limits, now)
                    .map(|_| json!({})),
                "/close" => {
                    a.close_socket(&ask.lease);
                    Ok(json!({}))
                }
                "/renew" => {
                    a.renew(&ask.leases, now);
                    Ok(json!({}))
                }
                "/auth_failed" => Ok(json!({"blockedMs": a.auth_failed(&ask.client, now)})),
                _ => return Response::error("unknown admission route", 404),
            };
            (answer, (a.sessions() != before).then_some(a.sessions()))
        };
        if let Some(n) = sessions_changed {
            self.state.storage().put("sessions", n).await?;
        }
        match answer {
            Ok(v) => Response::from_json(&json!({"ok": true, "value": v})),
            Err(r) => Response::from_json(&json!({"ok": false, "refusal": r})),
        }
    }
}

fn stub(env: &Env) -> Result<Stub> {
    env.durable_object("ADMISSION")?
        .id_from_name("global")?
        .get_stub()
}

/// Asks the admission object; `Err(refusal)` when it says no.
pub(crate) async fn ask(
    env: &Env,
    route: &str,
    body: &Ask,
) -> Result<std::result::Result<serde_json::Value, Refusal>> {
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        value: Option<serde_json::Value>,
        refusal: Option<Refusal>,
    }
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_body(Some(serde_json::to_string(body)?.into()));
    let req = Request::new_with_init(&format!("https://admission{route}"), &init)?;
    let a: Answer = stub(env)?.fetch_with_request(req).await?.json().await?;
    Ok(match (a.ok, a.refusal) {
        (false, Some(r)) => Err(r),
        _ => Ok(a.value.unwrap_or_default()),
    })
}
