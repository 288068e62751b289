//! AG-UI over HTTP: `RunAgentInput` in, `text/event-stream` out — the second transport of the
//! one session log (the WebSocket is the first). No I/O here: the edge reads the body, asks
//! [`decode_run_input`] which session command it means, applies it exactly as a WebSocket
//! command, and feeds every committed event to a [`RunStream`], which says what to write and
//! when the stream ends.
//!
//! The rules (see `docs/protocol.md`, "AG-UI over HTTP"):
//!
//! | rule | what |
//! |---|---|
//! | body | at most [`MAX_BODY_BYTES`] (`413 body_too_large`), a JSON object with `threadId` (= the session id, else `400 thread_mismatch`), `runId`, `messages` |
//! | no gate open, no `resume` | the last `user` message is the brief: `start`; `forwardedProps.approval` = `each_stage` \| `auto`; `forwardedProps.models` = `{stage: "provider:model"}` as in `start` |
//! | a gate open | `resume` must answer its interrupt (`gate-<stage>-<version>`), else `409 interrupts_unanswered`; `resolved` + payload `{decision: "approve"}` (or no payload) = `approve`, `{decision: "reject", feedback}` = `reject` (feedback defaults to the last user message), `cancelled` = `cancel` |
//! | an id no open interrupt has | `409 unknown_interrupt` (an interrupt answered twice is applied once) |
//! | idempotency | the `runId` is the command's idempotency key ([`idempotency_key`]); the same `runId` with a body that means another command is `409 id_reused` ([`repeated_run`]) |
//! | validation | the command is built as a WebSocket frame and decoded by [`decode_frame`]: same checks, same codes |
//! | stream | from the first event after the command (or after `Last-Event-ID` / `?after=`) to the first `RUN_FINISHED` / `RUN_ERROR`, each as `id: <seq>` + `data: <event without seq>` |
//! | bound | at most [`STREAM_QUEUE_BYTES`] written and not yet read by the client: the stream ends with an `overflow` comment; the client resumes from its last id (the caps on streams and the session's total: [`super::agui_readers`]) |

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::command::{decode_frame, Envelope, Frame};
use super::Stage;
use super::{Rejection, RejectionCode};

/// A `RunAgentInput` body may be this large (the WebSocket frame limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Bytes written to one HTTP stream that its reader has not taken yet, at most.
pub const STREAM_QUEUE_BYTES: u64 = 8 * 1024 * 1024;
/// Runs remembered for a repeated `runId` (where its stream began).
pub const REMEMBERED_RUNS: usize = 64;

/// A refused request: HTTP status, stable code, plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A command rejection (from decoding or from the session) as an HTTP answer: input that
    /// can never be valid is 400, a command that does not fit the session now is 409.
    pub fn from_rejection(r: &Rejection) -> Self {
        let status = match r.code {
            RejectionCode::InvalidState
            | RejectionCode::BudgetExhausted
            | RejectionCode::IdReused => 409,
            RejectionCode::FrameTooLarge => 413,
            _ => 400,
        };
        HttpError::new(status, r.code.as_str(), r.message.clone())
    }
}

/// The open approval gate, as the session state has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenGate<'a> {
    pub id: &'a str,
    pub stage: Stage,
}

/// A `RunAgentInput` mapped onto one session command.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub run_id: String,
    /// The command, with the `runId`'s idempotency key as its `id`.
    pub envelope: Envelope,
    /// SHA-256 (hex) of the command's JSON: what a repeated `runId` must mean again.
    pub digest: String,
}

/// The JSON Schema of an answer to a gate interrupt (`Interrupt.responseSchema`).
pub fn gate_response_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["approve", "reject"]},
            "feedback": {"type": "string", "minLength": 1, "maxLength": super::limits::MAX_FEEDBACK_CHARS}
        },
        "required": ["decision"]
    })
}

/// The command idempotency key of a `runId`: the id itself when it is a valid command id
/// (prefixed `agui-`), else a digest of it.
pub fn idempotency_key(run_id: &str) -> String {
    let plain = run_id.len() <= 59
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return format!("agui-{run_id}");
    }
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(run_id.as_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("agui-h{hex}")
}

/// Decodes a `RunAgentInput` body for the session `session_id` whose open gate (if any) is
/// `gate`, into the one command it means — validated by [`decode_frame`], the WebSocket's
/// decoder. Whether the command fits the session is still the session's call.
pub fn decode_run_input(
    body: &[u8],
    session_id: &str,
    gate: Option<OpenGate<'_>>,
) -> Result<RunRequest, HttpError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| HttpError::new(400, "invalid_json", "The body is not UTF-8 text."))?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        HttpError::new(
            400,
            "invalid_json",
            format!("The body is not valid JSON ({e})."),
        )
    })?;
    let Value::Object(input) = value else {
        return Err(HttpError::new(
            400,
            "not_an_object",
            "The body must be an AG-UI RunAgentInput object.",
        ));
    };
    let thread_id = string_field(&input, "threadId")?;
    if thread_id != session_id {
        return Err(HttpError::new(
            400,
            "thread_mismatch",
            "threadId must equal the session id in the path (one session is one AG-UI thread).",
        ));
    }
    let run_id = string_field(&input, "runId")?;
    if run_id.is_empty() || run_id.len() > 256 {
        return Err(invalid("\"runId\" must be 1 to 256 characters."));
    }
    let messages = match input.get("messages") {
        Some(Value::Array(m)) => m,
        Some(_) => return Err(invalid("\"messages\" must be an array.")),
        None => return Err(missing("messages")),
    };
    let last_user = last_user_text(messages)?;
    let resume = match input.get("resume") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(r)) => r.iter().map(resume_entry).collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("\"resume\" must be an array of resume entries.")),
    };
    if let (None, Some(e)) = (gate, resume.first()) {
        return Err(unknown_interrupt(&e.interrupt_id, None));
    }
    let key = idempotency_key(run_id);
    let command = match gate {
        None => {
            let approval = match input.get("forwardedProps").and_then(|p| p.get("approval")) {
                None | Some(Value::Null) => Value::Null,
                Some(a) => a.clone(),
            };
            let mut c = json!({"type": "start", "brief": last_user.unwrap_or_default()});
            if let Some(models) = input.get("forwardedProps").and_then(|p| p.get("models")) {
                c["models"] = models.clone();
            }
            if !approval.is_null() {
                c["approval"] = approval;
            }
            c
        }
        Some(g) => {
            for e in &resume {
                if e.interrupt_id != g.id {
                    return Err(unknown_interrupt(&e.interrupt_id, Some(g.id)));
                }
            }
            let answers: Vec<&ResumeEntry> = resume.iter().collect();
            let answer = match answers.as_slice() {
                [] => {
                    return Err(HttpError::new(
                        409,
                        "interrupts_unanswered",
                        format!(
                            "The thread has an open interrupt ({}): answer it in \"resume\" \
                             (resolved with {{\"decision\":\"approve\"}} or {{\"decision\":\"reject\",\
                             \"feedback\":\"…\"}}, or cancelled).",
                            g.id
                        ),
                    ))
                }
                [one] => *one,
                _ => return Err(invalid("\"resume\" answers the same interrupt twice.")),
            };
            let stage = g.stage.name();
            match answer.decision {
                Decision::Cancel => json!({"type": "cancel"}),
                Decision::Approve => json!({"type": "approve", "stage": stage}),
                Decision::Reject(ref feedback) => {
                    let feedback = feedback.clone().or(last_user).unwrap_or_default();
                    json!({"type": "reject", "stage": stage, "feedback": feedback})
                }
            }
        }
    };
    let mut command = command;
    command["id"] = Value::String(key);
    let text = command.to_string();
    match decode_frame(&text) {
        Ok(Frame::Command(envelope)) => Ok(RunRequest {
            run_id: run_id.to_string(),
            envelope,
            digest: sha256_hex(text.as_bytes()),
        }),
        Ok(_) => unreachable!("only session commands are built here"),
        Err(r) => Err(HttpError::from_rejection(&r)),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A run remembered for a repeated `runId`: where its stream began, and what its body meant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RememberedRun {
    /// The `runId`'s idempotency key.
    pub key: String,
    /// The first seq of its stream.
    pub from: u64,
    /// [`RunRequest::digest`] of its body (absent for runs remembered before it was kept:
    /// those replay whatever the body).
    #[serde(default)]
    pub digest: Option<String>,
    /// The gate its body answered, to decode a repeat the same way once the gate is closed.
    #[serde(default)]
    pub gate: Option<(String, Stage)>,
}

/// A body whose `runId` the session remembers: `Ok(Some(from))` when it means the same command
/// as the first time (stream that run again from `from`), `409 id_reused` when it means
/// another (as on the WebSocket: an idempotency key sent again with a different command);
/// `Ok(None)` for a `runId` not remembered.
pub fn repeated_run(
    runs: &[RememberedRun],
    body: &[u8],
    session_id: &str,
) -> Result<Option<u64>, HttpError> {
    let Some(key) = run_key(body, session_id) else {
        return Ok(None);
    };
    let Some(run) = runs.iter().find(|r| r.key == key) else {
        return Ok(None);
    };
    if let Some(digest) = &run.digest {
        let gate = run
            .gate
            .as_ref()
            .map(|(id, stage)| OpenGate { id, stage: *stage });
        let same = decode_run_input(body, session_id, gate).is_ok_and(|r| r.digest == *digest);
        if !same {
            return Err(HttpError::new(
                409,
                RejectionCode::IdReused.as_str(),
                "This runId was already used for another input: a repeated runId must repeat its \
                 input (its run is then streamed again); send a new input with a new runId.",
            ));
        }
    }
    Ok(Some(run.from))
}

/// The idempotency key of a body that names this session's thread and a `runId`, before
/// anything else is checked: a repeated `runId` streams its run again even though the gate
/// it answered is no longer open.
pub fn run_key(body: &[u8], session_id: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ids {
        thread_id: String,
        run_id: String,
    }
    if body.len() > MAX_BODY_BYTES {
        return None;
    }
    let ids: Ids = serde_json::from_slice(body).ok()?;
    (ids.thread_id == session_id && !ids.run_id.is_empty()).then(|| idempotency_key(&ids.run_id))
}

#[derive(Debug, PartialEq)]
enum Decision {
    Approve,
    Reject(Option<String>),
    Cancel,
}

#[derive(Debug)]
struct ResumeEntry {
    interrupt_id: String,
    decision: Decision,
}

/// One `ResumeEntry` (`@ag-ui/core` 1.0): `{interruptId, status: "resolved"|"cancelled",
/// payload?}`.
fn resume_entry(v: &Value) -> Result<ResumeEntry, HttpError> {
    let Value::Object(e) = v else {
        return Err(invalid("Each \"resume\" entry must be an object."));
    };
    let interrupt_id = match e.get("interruptId") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("\"resume[].interruptId\" must be a string.")),
        None => return Err(missing("resume[].interruptId")),
    };
    let decision = match e.get("status").and_then(Value::as_str) {
        Some("cancelled") => Decision::Cancel,
        Some("resolved") => match e.get("payload") {
            None | Some(Value::Null) => Decision::Approve,
            Some(Value::Object(p)) => {
                let feedback = match p.get("feedback") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err(invalid("\"payload.feedback\" must be a string.")),
                };
                match p.get("decision").and_then(Value::as_str) {
                    Some("approve") => Decision::Approve,
                    Some("reject") => Decision::Reject(feedback),
                    None if feedback.is_none() => Decision::Approve,
                    None => Decision::Reject(feedback),
                    _ => {
                        return Err(invalid(
                            "\"payload.decision\" must be \"approve\" or \"reject\" \
                             (see the interrupt's responseSchema).",
                        ))
                    }
                }
            }
            Some(_) => {
                return Err(invalid(
                    "A resume payload must be an object (see the interrupt's responseSchema).",
                ))
            }
        },
        _ => {
            return Err(invalid(
                "\"resume[].status\" must be \"resolved\" or \"cancelled\".",
            ))
        }
    };
    Ok(ResumeEntry {
        interrupt_id,
        decision,
    })
}

/// The text of the last `user` message (string content, or its text parts joined).
fn last_user_text(messages: &[Value]) -> Result<Option<String>, HttpError> {
    let Some(m) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return Ok(None);
    };
    match m.get("content") {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(parts)) => Ok(Some(
            parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
        _ => Err(invalid(
            "The last user message's \"content\" must be a string or text parts.",
        )),
    }
}

fn string_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, HttpError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(format!("\"{field}\" must be a string."))),
        None => Err(missing(field)),
    }
}

fn missing(field: &str) -> HttpError {
    HttpError::new(
        400,
        "missing_field",
        format!("The RunAgentInput has no \"{field}\"."),
    )
}

fn invalid(message: impl Into<String>) -> HttpError {
    HttpError::new(400, "invalid_field", message)
}

fn too_large() -> HttpError {
    HttpError::new(
        413,
        "body_too_large",
        format!("A RunAgentInput is limited to {MAX_BODY_BYTES} bytes."),
    )
}

/// The refusal of a body larger than [`MAX_BODY_BYTES`] (the edge stops reading there).
pub fn body_too_large() -> HttpError {
    too_large()
}

fn unknown_interrupt(id: &str, open: Option<&str>) -> HttpError {
    let id: String = id.chars().take(80).collect();
    HttpError::new(
        409,
        "unknown_interrupt",
        match open {
            Some(o) => format!("No open interrupt has the id \"{id}\" (the open one is {o})."),
            None => format!(
                "No interrupt is open, so \"{id}\" cannot be answered (already answered, or never \
                 asked)."
            ),
        },
    )
}

// ---- the stream -------------------------------------------------------------------------

/// The `type` of a logged event's JSON, if it has one.
pub fn event_type(json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        ty: String,
    }
    serde_json::from_str::<Typed>(json).ok().map(|t| t.ty)
}

/// `RUN_FINISHED` and `RUN_ERROR` end a run (and an HTTP stream).
pub fn ends_run(ty: &str) -> bool {
    matches!(ty, "RUN_FINISHED" | "RUN_ERROR")
}

/// One logged event as an SSE event: `id: <seq>`, then the event without its `seq` (SSE
/// carries the position in `id`; AG-UI clients would strip an unknown `seq` with a warning).
pub fn sse_event(seq: u64, json: &str) -> String {
    let prefix = format!("{{\"seq\":{seq},");
    let body = match json.strip_prefix(&prefix) {
        Some(rest) => format!("{{{rest}"),
        None => json.to_string(),
    };
    format!("id: {seq}\ndata: {body}\n\n")
}

/// Where a stream that follows `after` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    /// Send events from this seq on (live ones included) to the end of the run.
    From(u64),
    /// Nothing follows `after` and no run is in progress: the stream ends at once.
    Nothing,
    /// The log no longer holds `after + 1` (`410 log_truncated`).
    Truncated { oldest: u64 },
    /// `after` is beyond the newest event (`400 invalid_field`).
    Ahead { newest: u64 },
}

/// `oldest`/`newest`: the log's bounds; `run_open`: a run is in progress (running or paused).
pub fn plan_stream(after: u64, oldest: u64, newest: u64, run_open: bool) -> StreamStart {
    if after > newest {
        StreamStart::Ahead { newest }
    } else if newest > 0 && after + 1 < oldest {
        StreamStart::Truncated { oldest }
    } else if after == newest && !run_open {
        StreamStart::Nothing
    } else {
        StreamStart::From(after + 1)
    }
}

/// What to do with one committed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Not for this stream (already sent, or the stream has ended).
    Skip,
    /// Write this; `last` = the run ended with it: close the stream after it.
    Send { chunk: String, last: bool },
    /// The reader is too far behind: write this comment and close the stream.
    Overflow { chunk: String },
}

/// One HTTP stream of one run: which events it still wants, and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStream {
    next: u64,
    done: bool,
}

impl RunStream {
    pub fn new(from: u64) -> Self {
        RunStream {
            next: from,
            done: false,
        }
    }

    /// The next seq this stream wants.
    pub fn next(&self) -> u64 {
        self.next
    }

    pub fn done(&self) -> bool {
        self.done
    }

    /// Offers the committed event `seq` (events are offered in order; a gap would be a bug
    /// and ends the stream so the client resumes). `unread` is what the reader has not taken
    /// yet, in bytes.
    pub fn offer(&mut self, seq: u64, json: &str, unread: u64) -> Offer {
        if self.done || seq < self.next {
            return Offer::Skip;
        }
        if seq > self.next {
            self.done = true;
            return Offer::Overflow {
                chunk: format!(": gap before {seq}; resume after {}\n\n", self.next - 1),
            };
        }
        let chunk = sse_event(seq, json);
        if unread + chunk.len() as u64 > STREAM_QUEUE_BYTES {
            self.done = true;
            return Offer::Overflow {
                chunk: format!(
                    ": overflow: the reader fell {STREAM_QUEUE_BYTES} bytes behind; resume with \
                     Last-Event-ID: {} (or GET ?after={})\n\n",
                    seq - 1,
                    seq - 1
                ),
            };
        }
        self.next = seq + 1;
        let last = event_type(json).is_some_and(|t| ends_run(&t));
        self.done = last;
        Offer::Send { chunk, last }
    }
}

/// Remembers a run (newest last, at most [`REMEMBERED_RUNS`]).
pub fn remember_run(runs: &mut Vec<RememberedRun>, run: RememberedRun) {
    runs.retain(|r| r.key != run.key);
    if runs.len() >= REMEMBERED_RUNS {
        runs.remove(0);
    }
    runs.push(run);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Command;

    const SID: &str = "0123456789abcdef0123456789abcdef";

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn input(extra: Value) -> Value {
        let mut v = json!({"threadId": SID, "runId": "r-1",
            "messages": [{"id": "m1", "role": "user", "content": "Build a todo app"}]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    fn gate() -> Option<OpenGate<'static>> {
        Some(OpenGate {
            id: "gate-analyst-1",
            stage: Stage::Analyst,
        })
    }

    fn decode(v: Value, g: Option<OpenGate<'_>>) -> Result<Command, HttpError> {
        decode_run_input(&body(v), SID, g).map(|r| r.envelope.command)
    }

    fn code(r: Result<Command, HttpError>) -> (u16, &'static str) {
        let e = r.unwrap_err();
        (e.status, e.code)
    }

    #[test]
    fn the_last_user_message_starts_a_run() {
        let v = input(json!({"messages": [
            {"id": "a", "role": "user", "content": "old"},
            {"id": "b", "role": "assistant", "content": "hi"},
            {"id": "c", "role": "user", "content": [{"type": "text", "text": "New brief"}]}],
            "forwardedProps": {"approval": "auto"}}));
        let r = decode_run_input(&body(v), SID, None).unwrap();
        assert_eq!(
            r.envelope.command,
            Command::Start {
                brief: "New brief".into(),
                approval: crate::protocol::Approval::Auto,
                models: vec![],
            }
        );
        assert_eq!(r.envelope.id.as_deref(), Some("agui-r-1"));
    }

    #[test]
    fn a_brief_is_checked_like_on_the_websocket() {
        assert_eq!(
            code(decode(input(json!({"messages": []})), None)),
            (400, "brief_empty")
        );
        let long = "x".repeat(8001);
        let v = input(json!({"messages": [{"id": "m", "role": "user", "content": long}]}));
        assert_eq!(code(decode(v, None)), (400, "brief_too_long"));
        let v = input(json!({"forwardedProps": {"approval": "sometimes"}}));
        assert_eq!(code(decode(v, None)), (400, "invalid_field"));
    }

    #[test]
    fn the_thread_must_be_the_session() {
        let v = input(json!({"threadId": "another"}));
        assert_eq!(code(decode(v, None)), (400, "thread_mismatch"));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert_eq!(
            decode_run_input(b"{nope", SID, None).unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            decode_run_input(b"[1]", SID, None).unwrap_err().code,
            "not_an_object"
        );
        let v = json!({"threadId": SID, "messages": []});
        assert_eq!(code(decode(v, None)), (400, "missing_field"));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(decode_run_input(&big, SID, None).unwrap_err().status, 413);
    }

    #[test]
    fn resume_answers_the_open_gate() {
        let ok = |entry: Value| decode(input(json!({"resume": [entry]})), gate());
        assert_eq!(
            ok(json!({"interruptId": "gate-analyst-1", "status": "resolved"})).unwrap(),
            Command::Approve {
                stage: Stage::Analyst
            }
        );
        assert_eq!(
            ok(
                json!({"interruptId": "gate-analyst-1", "status": "resolved",
                "payload": {"decision": "approve"}})
            )
            .unwrap(),
            Command::Approve {
                stage: Stage::Analyst
            }
        );
        assert_eq!(
            ok(
                json!({"interruptId": "gate-analyst-1", "status": "resolved",
                "payload": {"decision": "reject", "feedback": "More detail"}})
            )
            .unwrap(),
            Command::Reject {
                stage: Stage::Analyst,
                feedback: "More detail".into()
            }
        );
        // Feedback defaults to the last user message.
        assert_eq!(
            ok(
                json!({"interruptId": "gate-analyst-1", "status": "resolved",
                "payload": {"decision": "reject"}})
            )
            .unwrap(),
            Command::Reject {
                stage: Stage::Analyst,
                feedback: "Build a todo app".into()
            }
        );
        assert_eq!(
            ok(json!({"interruptId": "gate-analyst-1", "status": "cancelled"})).unwrap(),
            Command::Cancel
        );
    }

    #[test]
    fn every_open_interrupt_must_be_answered() {
        assert_eq!(
            code(decode(input(json!({})), gate())),
            (409, "interrupts_unanswered")
        );
        assert_eq!(
            code(decode(input(json!({"resume": []})), gate())),
            (409, "interrupts_unanswered")
        );
    }

    #[test]
    fn unknown_interrupts_are_refused() {
        let v = input(json!({"resume": [{"interruptId": "gate-tester-9", "status": "resolved"}]}));
        assert_eq!(code(decode(v.clone(), gate())), (409, "unknown_interrupt"));
        assert_eq!(code(decode(v, None)), (409, "unknown_interrupt"));
        let v = input(json!({"resume": [{"interruptId": "gate-analyst-1", "status": "maybe"}]}));
        assert_eq!(code(decode(v, gate())), (400, "invalid_field"));
        let v = input(
            json!({"resume": [{"interruptId": "gate-analyst-1", "status": "resolved",
            "payload": {"decision": "reject", "feedback": ""}}]}),
        );
        assert_eq!(code(decode(v, gate())), (400, "feedback_empty"));
    }

    #[test]
    fn run_ids_become_idempotency_keys() {
        assert_eq!(idempotency_key("abc"), "agui-abc");
        let k = idempotency_key("a run id with spaces");
        assert!(k.starts_with("agui-h") && k.len() <= 64);
        assert_eq!(k, idempotency_key("a run id with spaces"));
        assert_ne!(k, idempotency_key("a run id with spaces!"));
        assert!(idempotency_key(&"x".repeat(256)).len() <= 64);
    }

    #[test]
    fn a_run_key_needs_this_thread_and_a_run_id() {
        let b = |v: Value| v.to_string().into_bytes();
        assert_eq!(
            run_key(&b(json!({"threadId": SID, "runId": "r"})), SID).as_deref(),
            Some("agui-r")
        );
        assert_eq!(
            run_key(&b(json!({"threadId": "x", "runId": "r"})), SID),
            None
        );
        assert_eq!(run_key(&b(json!({"threadId": SID})), SID), None);
        assert_eq!(run_key(b"{", SID), None);
    }

    #[test]
    fn sse_events_carry_the_seq_as_id() {
        let json = r#"{"seq":7,"timestamp":1,"type":"RUN_STARTED","threadId":"t","runId":"r"}"#;
        assert_eq!(
            sse_event(7, json),
            "id: 7\ndata: {\"timestamp\":1,\"type\":\"RUN_STARTED\",\"threadId\":\"t\",\"runId\":\"r\"}\n\n"
        );
    }

    fn ev(seq: u64, ty: &str) -> String {
        format!(r#"{{"seq":{seq},"timestamp":1,"type":"{ty}"}}"#)
    }

    #[test]
    fn a_stream_ends_with_its_run() {
        let mut s = RunStream::new(3);
        assert_eq!(s.offer(2, &ev(2, "STATE_DELTA"), 0), Offer::Skip);
        assert!(matches!(
            s.offer(3, &ev(3, "RUN_STARTED"), 0),
            Offer::Send { last: false, .. }
        ));
        assert!(matches!(
            s.offer(4, &ev(4, "STATE_DELTA"), 0),
            Offer::Send { last: false, .. }
        ));
        assert!(matches!(
            s.offer(5, &ev(5, "RUN_FINISHED"), 0),
            Offer::Send { last: true, .. }
        ));
        assert!(s.done());
        assert_eq!(s.offer(6, &ev(6, "RUN_STARTED"), 0), Offer::Skip);
        let mut s = RunStream::new(1);
        assert!(matches!(
            s.offer(1, &ev(1, "RUN_ERROR"), 0),
            Offer::Send { last: true, .. }
        ));
    }

    #[test]
    fn a_slow_reader_gets_an_overflow_and_resumes() {
        let mut s = RunStream::new(10);
        match s.offer(10, &ev(10, "STATE_DELTA"), STREAM_QUEUE_BYTES - 5) {
            Offer::Overflow { chunk } => {
                assert!(chunk.starts_with(": overflow"));
                assert!(chunk.contains("Last-Event-ID: 9"));
            }
            o => panic!("{o:?}"),
        }
        assert!(s.done());
        assert_eq!(s.offer(11, &ev(11, "STATE_DELTA"), 0), Offer::Skip);
    }

    #[test]
    fn a_gap_ends_the_stream() {
        let mut s = RunStream::new(1);
        assert!(matches!(s.offer(3, &ev(3, "X"), 0), Offer::Overflow { .. }));
    }

    #[test]
    fn streams_start_after_the_asked_seq() {
        assert_eq!(plan_stream(4, 1, 10, false), StreamStart::From(5));
        assert_eq!(plan_stream(10, 1, 10, true), StreamStart::From(11));
        assert_eq!(plan_stream(10, 1, 10, false), StreamStart::Nothing);
        assert_eq!(
            plan_stream(11, 1, 10, true),
            StreamStart::Ahead { newest: 10 }
        );
        assert_eq!(
            plan_stream(2, 5, 10, true),
            StreamStart::Truncated { oldest: 5 }
        );
        assert_eq!(plan_stream(4, 5, 10, true), StreamStart::From(5));
        assert_eq!(plan_stream(0, 1, 0, false), StreamStart::Nothing);
    }

    fn remembered(key: &str, from: u64) -> RememberedRun {
        RememberedRun {
            key: key.into(),
            from,
            digest: None,
            gate: None,
        }
    }

    #[test]
    fn remembered_runs_are_bounded() {
        let mut runs = Vec::new();
        for i in 0..(REMEMBERED_RUNS as u64 + 10) {
            remember_run(&mut runs, remembered(&format!("k{i}"), i));
        }
        assert_eq!(runs.len(), REMEMBERED_RUNS);
        remember_run(&mut runs, remembered("k70", 99));
        assert_eq!(runs.last(), Some(&remembered("k70", 99)));
        assert_eq!(runs.iter().filter(|r| r.key == "k70").count(), 1);
    }

    #[test]
    fn runs_remembered_as_pairs_before_digests_still_read() {
        let runs: Vec<RememberedRun> = serde_json::from_str(r#"[["agui-r",5]]"#).unwrap();
        assert_eq!(runs, vec![remembered("agui-r", 5)]);
        let v = input(json!({"runId": "r", "messages": []}));
        assert_eq!(repeated_run(&runs, &body(v), SID), Ok(Some(5)));
    }

    fn remember(v: &Value, g: Option<OpenGate<'_>>, from: u64) -> RememberedRun {
        let r = decode_run_input(&body(v.clone()), SID, g).unwrap();
        RememberedRun {
            key: r.envelope.id.clone().unwrap(),
            from,
            digest: Some(r.digest),
            gate: g.map(|g| (g.id.to_string(), g.stage)),
        }
    }

    #[test]
    fn a_run_id_repeated_with_the_same_input_streams_its_run_again() {
        let start = input(json!({}));
        let runs = vec![remember(&start, None, 3)];
        assert_eq!(repeated_run(&runs, &body(start.clone()), SID), Ok(Some(3)));
        // Other messages before the same last one, and ignored fields, mean the same command.
        let mut again = start.clone();
        again["messages"] = json!([{"id": "0", "role": "assistant", "content": "hi"},
            {"id": "m1", "role": "user", "content": "Build a todo app"}]);
        again["state"] = json!({"x": 1});
        assert_eq!(repeated_run(&runs, &body(again), SID), Ok(Some(3)));
        // A new runId is not a repeat.
        let other = input(json!({"runId": "r-2"}));
        assert_eq!(repeated_run(&runs, &body(other), SID), Ok(None));
    }

    #[test]
    fn a_run_id_repeated_with_another_input_is_id_reused() {
        let runs = vec![remember(&input(json!({})), None, 3)];
        let v =
            input(json!({"messages": [{"id": "m", "role": "user", "content": "Another brief"}]}));
        let e = repeated_run(&runs, &body(v), SID).unwrap_err();
        assert_eq!((e.status, e.code), (409, "id_reused"));
        let v = input(json!({"forwardedProps": {"approval": "auto"}}));
        assert_eq!(
            repeated_run(&runs, &body(v), SID).unwrap_err().code,
            "id_reused"
        );
    }

    #[test]
    fn an_answered_interrupt_repeated_is_compared_against_the_gate_it_answered() {
        let approve = input(json!({"runId": "r-ok",
            "resume": [{"interruptId": "gate-analyst-1", "status": "resolved"}]}));
        let runs = vec![remember(&approve, gate(), 9)];
        // The gate is closed now; the same answer still streams its run again.
        assert_eq!(
            repeated_run(&runs, &body(approve.clone()), SID),
            Ok(Some(9))
        );
        let mut reject = approve.clone();
        reject["resume"][0]["payload"] = json!({"decision": "reject", "feedback": "No"});
        assert_eq!(
            repeated_run(&runs, &body(reject), SID).unwrap_err().code,
            "id_reused"
        );
    }
}
