//! Small HTTP helpers of the session's routes: whole-number query parameters, error and SSE
//! answers, the WebSocket subprotocol, random ids.

use std::collections::HashMap;

use worker::{Request, Response, Result};

use crate::edge::error_response;
use crate::protocol::agui_http::HttpError;

/// The highest `seq` or offset a query may name: SQLite integers are signed 64-bit, so
/// anything larger is refused before any conversion.
pub(super) const MAX_SEQ: u64 = i64::MAX as u64;

/// A whole-number query parameter in `min..=max` (`default` when absent), or the 400 answer.
pub(super) fn whole(
    q: &HashMap<String, String>,
    name: &str,
    default: u64,
    max: u64,
) -> std::result::Result<u64, Result<Response>> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(bad_number(name, 0, max)),
        },
    }
}

pub(super) fn bad_number(name: &str, min: u64, max: u64) -> Result<Response> {
    error_response(
        400,
        "invalid_field",
        &format!("\"{name}\" must be a whole number from {min} to {max}."),
    )
}

pub(super) fn http_error(e: &HttpError) -> Result<Response> {
    error_response(e.status, e.code, &e.message)
}

pub(super) fn sse_headers(resp: &mut Response) -> Result<()> {
    let h = resp.headers_mut();
    h.set("content-type", "text/event-stream; charset=utf-8")?;
    h.set("x-accel-buffering", "no")?;
    Ok(())
}

/// A short SSE body sent whole.
pub(super) fn sse_response(chunks: Vec<String>) -> Result<Response> {
    let mut resp = Response::ok(chunks.concat())?;
    sse_headers(&mut resp)?;
    Ok(resp)
}

pub(super) fn query(req: &Request) -> Result<HashMap<String, String>> {
    Ok(req.url()?.query_pairs().into_owned().collect())
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("crypto.getRandomValues");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
