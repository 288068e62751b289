//! Client → server frames: decoding and validation.
//!
//! A frame is either a connection frame (`hello`, `ping`, `ack`: answered by the connection,
//! see [`crate::session::connection`]) or a session [`Command`] in an [`Envelope`]; the two
//! are separate types, so a session can never be handed a `hello`.
//!
//! Decoding never panics and never trusts the input: every failure is a [`Rejection`] with a
//! stable code and a sentence that names the problem. Whether a command fits the session's
//! current state is the session's business, not this module's.

use serde_json::{Map, Value};

use super::limits::{MAX_BRIEF_CHARS, MAX_FEEDBACK_CHARS, MAX_FRAME_BYTES, MAX_ID_CHARS};
use super::wire::{RejectedValue, RejectionCode};
use super::Stage;

/// How a run stops between stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// A gate after every stage: the user approves or asks for changes.
    EachStage,
    /// Straight through all five stages.
    Auto,
}

/// One decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `hello {lastSeq, epoch?}`: join (or re-sync) the session's event stream after
    /// `lastSeq`, as numbered in `epoch` (the `welcome` that client last got; absent on a
    /// first join, or from a client that trusts `lastSeq` as is).
    Hello { last_seq: u64, epoch: Option<u64> },
    /// Application-level keepalive; answered with `pong`, never logged.
    Ping,
    /// `ack {seq}`: the client applied every event up to `seq` (flow control).
    Ack { seq: u64 },
    /// A session command.
    Command(Envelope),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Start {
        brief: String,
        approval: Approval,
        /// The models the user chose, per stage (`provider:model`); stages not named use their
        /// default. Whether a model is offered is the session's to check.
        models: Vec<(Stage, String)>,
    },
    Approve {
        stage: Stage,
    },
    Reject {
        stage: Stage,
        feedback: String,
    },
    Pause,
    Resume,
    Cancel,
    Retry {
        stage: Stage,
    },
    /// After a run completed, failed or was cancelled: run again from `stage`, keeping the
    /// approved artifacts of the stages before it (no provider call for those).
    Rerun {
        stage: Stage,
        feedback: Option<String>,
    },
}

impl Command {
    /// The wire `type` of the command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Start { .. } => "start",
            Command::Approve { .. } => "approve",
            Command::Reject { .. } => "reject",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Cancel => "cancel",
            Command::Retry { .. } => "retry",
            Command::Rerun { .. } => "rerun",
        }
    }
}

/// A decoded command with its optional idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Option<String>,
    pub command: Command,
}

/// Why a frame or command was refused. `code` is stable (documented); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub message: String,
    /// The command's `type`, when it could be read.
    pub command: Option<String>,
    /// The command's `id`, when it could be read.
    pub id: Option<String>,
}

impl Rejection {
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            command: None,
            id: None,
        }
    }
}

/// The `rejected` frame's value. (Here, not in `wire`: `wire` does not depend on commands.)
impl From<&Rejection> for RejectedValue {
    fn from(r: &Rejection) -> Self {
        RejectedValue {
            id: r.id.clone(),
            command: r.command.clone(),
            code: r.code,
            message: r.message.clone(),
        }
    }
}

/// Decodes one text frame. Frames over [`MAX_FRAME_BYTES`] close the socket with 1009 (the
/// connection checks first) but are refused here too so nothing larger is ever parsed.
pub fn decode_frame(text: &str) -> Result<Frame, Rejection> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(Rejection::new(
            RejectionCode::FrameTooLarge,
            format!("Frames are limited to {MAX_FRAME_BYTES} bytes."),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Rejection::new(
            RejectionCode::InvalidJson,
            format!("The frame is not valid JSON ({e})."),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(Rejection::new(
            RejectionCode::NotAnObject,
            "A command must be a JSON object with a \"type\" field.",
        ));
    };
    let id = read_id(&obj)?;
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(with(
                Rejection::new(RejectionCode::InvalidField, "\"type\" must be a string."),
                None,
                id,
            ))
        }
        None => {
            return Err(with(
                Rejection::new(
                    RejectionCode::MissingField,
                    "The command has no \"type\" field.",
                ),
                None,
                id,
            ))
        }
    };
    let frame = decode_body(ty, &obj).map_err(|r| with(r, Some(ty), id.clone()))?;
    Ok(match frame {
        Body::Connection(f) => f,
        Body::Command(command) => Frame::Command(Envelope { id, command }),
    })
}

enum Body {
    Connection(Frame),
    Command(Command),
}

fn whole_number(obj: &Map<String, Value>, field: &str, ty: &str) -> Result<u64, Rejection> {
    match obj.get(field) {
        None => Err(missing(field, ty)),
        Some(v) => v.as_u64().ok_or_else(|| {
            Rejection::new(
                RejectionCode::InvalidField,
                format!("\"{field}\" must be a whole number, 0 or more."),
            )
        }),
    }
}

fn with(mut r: Rejection, ty: Option<&str>, id: Option<String>) -> Rejection {
    r.command = ty.map(|t| t.chars().take(32).collect());
    r.id = id;
    r
}

fn read_id(obj: &Map<String, Value>) -> Result<Option<String>, Rejection> {
    match obj.get("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_ID_CHARS
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(Rejection::new(
            RejectionCode::InvalidField,
            format!(
                "\"id\" must be 1 to {MAX_ID_CHARS} characters of letters, digits, '-' or '_'."
            ),
        )),
    }
}

fn decode_body(ty: &str, obj: &Map<String, Value>) -> Result<Body, Rejection> {
    let connection = |f| Ok(Body::Connection(f));
    match ty {
        "hello" => {
            return connection(Frame::Hello {
                last_seq: whole_number(obj, "lastSeq", ty)?,
                epoch: match obj.get("epoch") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(whole_number(obj, "epoch", ty)?),
                },
            })
        }
        "ack" => {
            return connection(Frame::Ack {
                seq: whole_number(obj, "seq", ty)?,
            })
        }
        "ping" => return connection(Frame::Ping),
        _ => {}
    }
    Ok(Body::Command(match ty {
        "start" => {
            let brief = string_field(obj, "brief", "start")?;
            let brief = brief.trim();
            if brief.is_empty() {
                return Err(Rejection::new(
                    RejectionCode::BriefEmpty,
                    "The brief is empty.",
                ));
            }
            let n = brief.chars().count();
            if n > MAX_BRIEF_CHARS {
                return Err(Rejection::new(
                    RejectionCode::BriefTooLong,
                    format!("The brief has {n} characters; the limit is {MAX_BRIEF_CHARS}."),
                ));
            }
            let approval = match obj.get("approval") {
                None => Approval::EachStage,
                Some(Value::String(s)) if s == "each_stage" => Approval::EachStage,
                Some(Value::String(s)) if s == "auto" => Approval::Auto,
                Some(_) => {
                    return Err(Rejection::new(
                        RejectionCode::InvalidField,
                        "\"approval\" must be \"each_stage\" or \"auto\".",
                    ))
                }
            };
            Command::Start {
                brief: brief.to_string(),
                approval,
                models: models_field(obj)?,
            }
        }
        "approve" => Command::Approve {
            stage: stage_field(obj, ty)?,
        },
        "reject" => Command::Reject {
            stage: stage_field(obj, ty)?,
            feedback: feedback_field(string_field(obj, "feedback", ty)?)?,
        },
        "retry" => Command::Retry {
            stage: stage_field(obj, ty)?,
        },
        "rerun" => Command::Rerun {
            stage: stage_field(obj, ty)?,
            // Optional: a rerun without feedback runs the stage afresh.
            feedback: match obj.get("feedback") {
                None | Some(Value::Null) => None,
                Some(_) => Some(feedback_field(string_field(obj, "feedback", ty)?)?),
            },
        },
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "cancel" => Command::Cancel,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(Rejection::new(
                RejectionCode::UnknownType,
                format!(
                    "Unknown command type \"{shown}\". Known: hello, ack, ping, start, \
                     approve, reject, pause, resume, cancel, retry, rerun."
                ),
            ));
        }
    }))
}

/// Feedback trimmed, not empty, within [`MAX_FEEDBACK_CHARS`].
fn feedback_field(feedback: &str) -> Result<String, Rejection> {
    let feedback = feedback.trim();
    if feedback.is_empty() {
        return Err(Rejection::new(
            RejectionCode::FeedbackEmpty,
            "Say what should change: the feedback is empty.",
        ));
    }
    let n = feedback.chars().count();
    if n > MAX_FEEDBACK_CHARS {
        return Err(Rejection::new(
            RejectionCode::FeedbackTooLong,
            format!("The feedback has {n} characters; the limit is {MAX_FEEDBACK_CHARS}."),
        ));
    }
    Ok(feedback.to_string())
}

fn missing(field: &str, ty: &str) -> Rejection {
    Rejection::new(
        RejectionCode::MissingField,
        format!("\"{ty}\" needs a \"{field}\" field."),
    )
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    ty: &str,
) -> Result<&'a str, Rejection> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(missing(field, ty)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Rejection::new(
            RejectionCode::InvalidField,
            format!("\"{field}\" must be a string."),
        )),
    }
}

/// `models`: `{"<stage>": "provider:model", …}`, optional.
fn models_field(obj: &Map<String, Value>) -> Result<Vec<(Stage, String)>, Rejection> {
    let invalid = |m: String| Rejection::new(RejectionCode::InvalidField, m);
    let map = match obj.get("models") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(invalid(
                "\"models\" must be an object like {\"developer\": \"openai:gpt-4o\"}.".into(),
            ))
        }
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Some(stage) = Stage::parse(k) else {
            let shown: String = k.chars().take(32).collect();
            return Err(Rejection::new(
                RejectionCode::UnknownStage,
                format!("Unknown stage \"{shown}\" in models. Stages: analyst, architect, developer, tester, deployer."),
            ));
        };
        let Value::String(id) = v else {
            return Err(invalid(format!(
                "models.{k} must be a string like \"openai:gpt-4o-mini\"."
            )));
        };
        let choice =
            super::ModelChoice::parse(id).map_err(|e| invalid(format!("models.{k}: {e}.")))?;
        out.push((stage, choice.id()));
    }
    out.sort();
    Ok(out)
}

fn stage_field(obj: &Map<String, Value>, ty: &str) -> Result<Stage, Rejection> {
    let s = string_field(obj, "stage", ty)?;
    Stage::parse(s).ok_or_else(|| {
        let shown: String = s.chars().take(32).collect();
        Rejection::new(
            RejectionCode::UnknownStage,
            format!(
                "Unknown stage \"{shown}\". Stages: analyst, architect, developer, tester, deployer."
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(text: &str) -> &'static str {
        decode_frame(text).unwrap_err().code.as_str()
    }

    fn command(text: &str) -> Envelope {
        match decode_frame(text) {
            Ok(Frame::Command(env)) => env,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn decodes_connection_frames_apart_from_commands() {
        assert_eq!(
            decode_frame(r#"{"type":"hello","lastSeq":7}"#),
            Ok(Frame::Hello {
                last_seq: 7,
                epoch: None
            })
        );
        assert_eq!(
            decode_frame(r#"{"type":"hello","lastSeq":7,"epoch":3}"#),
            Ok(Frame::Hello {
                last_seq: 7,
                epoch: Some(3)
            })
        );
        for bad in [r#""3""#, "-1", "1.5", "true"] {
            let r = decode_frame(&format!(r#"{{"type":"hello","lastSeq":7,"epoch":{bad}}}"#))
                .expect_err(bad);
            assert_eq!(r.code, RejectionCode::InvalidField, "{bad}");
        }
        assert_eq!(decode_frame(r#"{"type":"ping"}"#), Ok(Frame::Ping));
        assert_eq!(
            decode_frame(r#"{"type":"ack","seq":12}"#),
            Ok(Frame::Ack { seq: 12 })
        );
        assert_eq!(code(r#"{"type":"ack"}"#), "missing_field");
        assert_eq!(code(r#"{"type":"ack","seq":1.5}"#), "invalid_field");
    }

    #[test]
    fn decodes_every_command() {
        let cases = [
            (
                r#"{"type":"start","brief":"  a todo app ","approval":"auto"}"#,
                Command::Start {
                    brief: "a todo app".into(),
                    approval: Approval::Auto,
                    models: vec![],
                },
            ),
            (
                r#"{"type":"start","brief":"x"}"#,
                Command::Start {
                    brief: "x".into(),
                    approval: Approval::EachStage,
                    models: vec![],
                },
            ),
            (
                r#"{"type":"approve","stage":"tester"}"#,
                Command::Approve {
                    stage: Stage::Tester,
                },
            ),
            (
                r#"{"type":"reject","stage":"analyst","feedback":"more detail"}"#,
                Command::Reject {
                    stage: Stage::Analyst,
                    feedback: "more detail".into(),
                },
            ),
            (r#"{"type":"pause"}"#, Command::Pause),
            (r#"{"type":"resume"}"#, Command::Resume),
            (r#"{"type":"cancel"}"#, Command::Cancel),
            (
                r#"{"type":"retry","stage":"deployer"}"#,
                Command::Retry {
                    stage: Stage::Deployer,
                },
            ),
            (
                r#"{"type":"rerun","stage":"tester"}"#,
                Command::Rerun {
                    stage: Stage::Tester,
                    feedback: None,
                },
            ),
            (
                r#"{"type":"rerun","stage":"tester","feedback":"  cover errors  "}"#,
                Command::Rerun {
                    stage: Stage::Tester,
                    feedback: Some("cover errors".into()),
                },
            ),
        ];
        for (text, want) in cases {
            let env = command(text);
            assert_eq!(env.command, want, "{text}");
            assert_eq!(env.id, None);
        }
        let env = command(r#"{"type":"pause","id":"abc-1_2"}"#);
        assert_eq!(env.id.as_deref(), Some("abc-1_2"));
    }

    #[test]
    fn rejects_bad_frames_with_specific_codes() {
        assert_eq!(code("{"), "invalid_json");
        assert_eq!(code("[1]"), "not_an_object");
        assert_eq!(code("{}"), "missing_field");
        assert_eq!(code(r#"{"type":5}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"launch"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"hello"}"#), "missing_field");
        assert_eq!(code(r#"{"type":"hello","lastSeq":-1}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"hello","lastSeq":"3"}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"start"}"#), "missing_field");
        assert_eq!(code(r#"{"type":"start","brief":7}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"start","brief":"  \n "}"#), "brief_empty");
        let long = format!(r#"{{"type":"start","brief":"{}"}}"#, "é".repeat(8001));
        assert_eq!(code(&long), "brief_too_long");
        let ok = format!(r#"{{"type":"start","brief":"{}"}}"#, "é".repeat(8000));
        assert!(decode_frame(&ok).is_ok());
        assert_eq!(
            code(r#"{"type":"start","brief":"x","approval":"sometimes"}"#),
            "invalid_field"
        );
        assert_eq!(code(r#"{"type":"approve"}"#), "missing_field");
        assert_eq!(code(r#"{"type":"approve","stage":"ceo"}"#), "unknown_stage");
        assert_eq!(
            code(r#"{"type":"reject","stage":"analyst","feedback":""}"#),
            "feedback_empty"
        );
        assert_eq!(code(r#"{"type":"rerun"}"#), "missing_field");
        assert_eq!(
            code(r#"{"type":"rerun","stage":"tester","feedback":"  "}"#),
            "feedback_empty"
        );
        assert_eq!(
            code(r#"{"type":"rerun","stage":"tester","feedback":7}"#),
            "invalid_field"
        );
        assert_eq!(code(r#"{"type":"pause","id":""}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"pause","id":"a b"}"#), "invalid_field");
        assert_eq!(code(&"x".repeat(MAX_FRAME_BYTES + 1)), "frame_too_large");
    }

    #[test]
    fn rejection_names_the_command_and_id() {
        let r = decode_frame(r#"{"type":"approve","id":"k1"}"#).unwrap_err();
        assert_eq!(r.command.as_deref(), Some("approve"));
        assert_eq!(r.id.as_deref(), Some("k1"));
        assert!(r.message.contains("stage"), "{}", r.message);
    }

    proptest! {
        // Any byte string as a command gives a command or a rejection, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = decode_frame(&text);
        }

        #[test]
        fn arbitrary_json_objects_never_panic(
            ty in prop_oneof![Just("hello".to_string()), Just("start".to_string()),
                              Just("approve".to_string()), Just("reject".to_string()),
                              Just("retry".to_string()), ".*"],
            field in ".{0,12}", val in prop_oneof![
                Just(serde_json::json!(null)), Just(serde_json::json!(-1)),
                Just(serde_json::json!(1.5)), Just(serde_json::json!("analyst")),
                Just(serde_json::json!([])), Just(serde_json::json!({})),
                ".{0,40}".prop_map(serde_json::Value::String)]
        ) {
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), serde_json::Value::String(ty));
            obj.insert(field, val);
            let text = serde_json::Value::Object(obj).to_string();
            match decode_frame(&text) {
                Ok(_) => {}
                Err(r) => prop_assert!(!r.message.is_empty() && !r.code.as_str().is_empty()),
            }
        }
    }
}
