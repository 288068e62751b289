//! Requests from the session (and the router) to an owner's Index Durable Object.

use serde_json::json;
use worker::{Env, Method, Request, RequestInit, Response, Result};

use crate::edge::log;
use crate::index;

/// One request to an owner's index object, answered as it answers.
pub(crate) async fn index_request(
    env: &Env,
    owner: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<Response> {
    let stub = env
        .durable_object("INDEX")?
        .id_from_name(owner)?
        .get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(body.to_string().into()));
    let req = Request::new_with_init(&format!("https://index{path}"), &init)?;
    stub.fetch_with_request(req).await
}

/// Each owner's rows of `session` made through the link it was pushed out of go from its
/// index (see [`crate::index::remember`]).
pub(super) async fn drop_links(env: &Env, session: &str, gone: &[(String, index::Link)]) {
    let session_ref = index::session_ref(session);
    for (owner, link) in gone {
        let body = json!({"sessionRef": session_ref, "link": link.as_text()});
        index_call(env, owner, "/drop_link", &body).await;
    }
}

/// [`index_request`] where only success matters: false (and a log line) if it failed.
pub(crate) async fn index_call(
    env: &Env,
    owner: &str,
    path: &str,
    body: &serde_json::Value,
) -> bool {
    match index_request(env, owner, path, body)
        .await
        .map(|r| r.status_code())
    {
        Ok(200) => true,
        Ok(status) => {
            log::warn("index_failed", json!({"path": path, "status": status}));
            false
        }
        Err(e) => {
            log::warn(
                "index_unreachable",
                json!({"path": path, "message": e.to_string()}),
            );
            false
        }
    }
}
