//! The typed wire against its golden fixtures (`tests/fixtures/wire/`) and the generated
//! TypeScript (`frontend/src/protocol/generated/`). `UPDATE_GOLDEN=1` rewrites both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use ts_rs::TS;

use super::*;
use crate::llm::error::ErrorKind;
use crate::protocol::event::frame;

const TS: u64 = 1_700_000_000_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn update() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

const HOW_TO_UPDATE: &str = "run `UPDATE_GOLDEN=1 cargo test --lib protocol::wire` and commit \
                             the changed files";

/// One fixture per logged custom event and connection frame (and a second of some): file
/// stem, `seq` (logged events only) and the event.
fn samples() -> Vec<(&'static str, Option<u64>, Event)> {
    let logged = |c: LoggedCustom| c.into();
    let conn = |c: ConnectionCustom| c.into();
    vec![
        (
            "artifact",
            Some(21),
            logged(LoggedCustom::Artifact(ArtifactValue {
                stage: Stage::Analyst,
                version: 2,
                chars: 1834,
            })),
        ),
        (
            "agent_error",
            Some(22),
            logged(LoggedCustom::AgentError(AgentErrorValue {
                stage: Stage::Architect,
                code: FailureCode::RateLimited,
                message: "The AI provider is busy (too many requests).".into(),
                detail: "HTTP 429: Rate limit reached for requests".into(),
                retryable: true,
                next_retry_at: Some(TS + 2_000),
                attempt: 1,
            })),
        ),
        (
            "agent_error-final",
            Some(23),
            logged(LoggedCustom::AgentError(AgentErrorValue {
                stage: Stage::Developer,
                code: FailureCode::BadKey,
                message: "The AI provider rejected the API key.".into(),
                detail: "HTTP 401: Incorrect API key provided".into(),
                retryable: false,
                next_retry_at: None,
                attempt: 1,
            })),
        ),
        (
            "message_interrupted",
            Some(24),
            logged(LoggedCustom::MessageInterrupted(MessageInterruptedValue {
                message_id: "msg-a3".into(),
                stage: Stage::Architect,
                reason: InterruptReason::Retry,
            })),
        ),
        (
            "agent_queued",
            Some(25),
            logged(LoggedCustom::AgentQueued(AgentQueuedValue {
                stage: Stage::Tester,
                reason: QueueReason::ProviderRetryAfter,
                message: "The AI provider asked BotArmy to wait before the next request; the \
                          Tester starts by itself in 30 seconds."
                    .into(),
                next_retry_at: TS + 30_000,
            })),
        ),
        (
            "welcome",
            None,
            conn(ConnectionCustom::Welcome(WelcomeValue {
                session_id: "0123456789abcdef0123456789abcdef".into(),
                demo: true,
                model: "demo".into(),
                last_seq: 20,
                epoch: 1,
                mode: WelcomeMode::Replay,
                reason: None,
                flow: Some(FlowValue {
                    window: 8 * 1024 * 1024,
                    page: 1024 * 1024,
                }),
                read_only: false,
            })),
        ),
        (
            "welcome-snapshot",
            None,
            conn(ConnectionCustom::Welcome(WelcomeValue {
                session_id: "0123456789abcdef0123456789abcdef".into(),
                demo: false,
                model: "gpt-4o-mini".into(),
                last_seq: 20,
                epoch: 2,
                mode: WelcomeMode::Snapshot,
                reason: Some(SnapshotReason::Restarted),
                flow: Some(FlowValue {
                    window: 8 * 1024 * 1024,
                    page: 1024 * 1024,
                }),
                read_only: true,
            })),
        ),
        (
            "caught_up",
            None,
            conn(ConnectionCustom::CaughtUp(CaughtUpValue {
                last_seq: 20,
                omitted_messages: 3,
            })),
        ),
        (
            "ack",
            None,
            conn(ConnectionCustom::Ack(AckValue {
                id: Some("k1".into()),
                command: "pause".into(),
                duplicate: false,
            })),
        ),
        (
            "rejected",
            None,
            conn(ConnectionCustom::Rejected(RejectedValue {
                id: Some("k2".into()),
                command: Some("approve".into()),
                code: RejectionCode::InvalidState,
                message: "There is no approval waiting.".into(),
            })),
        ),
        (
            "warning",
            None,
            conn(ConnectionCustom::Warning(WarningValue {
                code: WarningCode::RateLimited,
                message: "Too many frames: slow down or the connection will be closed.".into(),
            })),
        ),
        (
            "pong",
            None,
            conn(ConnectionCustom::Pong(PongValue { t: TS + 5 })),
        ),
    ]
}

fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures/wire")
}

#[test]
fn every_event_and_frame_matches_its_golden_fixture() {
    let dir = fixture_dir();
    if update() {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (stem, seq, event) in samples() {
        let got = frame(seq, TS, &event) + "\n";
        let path = dir.join(format!("{stem}.json"));
        if update() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; {HOW_TO_UPDATE}", path.display()));
        assert_eq!(got, want, "{stem}: {HOW_TO_UPDATE}");
    }
}

#[test]
fn every_custom_name_has_a_fixture() {
    let mut logged = vec![];
    let mut conn = vec![];
    for (stem, seq, event) in samples() {
        let name = if seq.is_some() {
            let name = LoggedCustom::from_event(&event).unwrap().unwrap().name();
            logged.push(name);
            name
        } else {
            let name = ConnectionCustom::from_event(&event)
                .unwrap()
                .unwrap()
                .name();
            conn.push(name);
            name
        };
        assert_eq!(
            stem.split('-').next(),
            Some(name),
            "fixture files are named after events"
        );
    }
    for name in LoggedCustom::NAMES {
        assert!(logged.contains(name), "no fixture for {name}");
    }
    for name in ConnectionCustom::NAMES {
        assert!(conn.contains(name), "no fixture for {name}");
    }
}

/// Every file in the fixture folder (not only those `samples` wrote) reads into the typed wire
/// and writes back byte for byte.
#[test]
fn fixtures_round_trip_through_the_types() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let obj = v.as_object_mut().unwrap();
        let seq = obj.remove("seq").map(|s| s.as_u64().unwrap());
        let ts = obj.remove("timestamp").unwrap().as_u64().unwrap();
        let event: Event = serde_json::from_value(v).unwrap();
        let back: Event = match seq {
            Some(_) => LoggedCustom::from_event(&event)
                .expect("a CUSTOM event")
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .into(),
            None => ConnectionCustom::from_event(&event)
                .expect("a CUSTOM event")
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .into(),
        };
        assert_eq!(frame(seq, ts, &back) + "\n", text, "{}", path.display());
        n += 1;
    }
    assert!(n >= samples().len());
}

#[test]
fn codes_serialize_as_their_wire_strings() {
    fn check<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug + Copy>(
        all: &[T],
        s: impl Fn(T) -> &'static str,
    ) {
        for &v in all {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", s(v)));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        }
    }
    check(RejectionCode::ALL, RejectionCode::as_str);
    check(FailureCode::ALL, FailureCode::as_str);
    check(WarningCode::ALL, WarningCode::as_str);
    check(InterruptReason::ALL, InterruptReason::as_str);
    check(QueueReason::ALL, QueueReason::as_str);
    check(WelcomeMode::ALL, WelcomeMode::as_str);
    check(SnapshotReason::ALL, SnapshotReason::as_str);
    check(HttpErrorCode::ALL, HttpErrorCode::as_str);
    assert_eq!("log_truncated".parse(), Ok(SnapshotReason::Truncated));
    assert!("nope".parse::<FailureCode>().is_err());
    assert_eq!(RejectionCode::IdReused, "id_reused");
}

#[test]
fn every_command_rejection_is_an_http_error_code_of_the_same_name() {
    for &code in RejectionCode::ALL {
        assert_eq!(
            HttpErrorCode::parse(code.as_str()),
            Some(HttpErrorCode::from(code))
        );
    }
}

/// The code literals of the HTTP error bodies written outside the typed paths (the session
/// object's `error_response(404, "not_found", …)`, AG-UI's `HttpError::new`, admission's
/// `Refusal::new`, `code: "…"` fields): each must be an [`HttpErrorCode`], so the generated
/// TypeScript union names every code a client can get.
#[test]
fn every_http_error_code_written_in_the_source_is_in_the_enum() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = vec![];
    walk(&root().join("src"), &mut files);
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Outside the tests at the end of a file.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for call in [
            "error_response(",
            "HttpError::new(",
            "Refusal::new(",
            "code: \"",
        ] {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at + call.len()..];
                let code = if call.ends_with('"') {
                    rest.split('"').next()
                } else {
                    // `(status, "code", …`: the first string literal after the status.
                    let args = rest.split(')').next().unwrap_or_default();
                    args.split('"').nth(1).filter(|_| args.contains(','))
                };
                let Some(code) = code.filter(|c| {
                    !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) else {
                    continue;
                };
                assert!(
                    HttpErrorCode::parse(code).is_some(),
                    "{}: {code:?} is not an HttpErrorCode",
                    file.display()
                );
                seen += 1;
            }
        }
    }
    assert!(seen > 20, "the scan found only {seen} codes");
}

#[test]
fn a_refusal_is_the_json_the_admission_object_always_answered() {
    let r = Refusal {
        retry_after_ms: Some(1500),
        ..Refusal::new(429, HttpErrorCode::TooManySessions, "Too many.")
    };
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        r#"{"status":429,"code":"too_many_sessions","message":"Too many.","retryAfterMs":1500}"#
    );
    assert_eq!(r.retry_after_secs(), Some(2));
    let without: Refusal =
        serde_json::from_str(r#"{"status":503,"code":"session_limit_reached","message":"m"}"#)
            .unwrap();
    assert_eq!(without.retry_after_ms, None);
}

#[test]
fn every_provider_error_kind_is_a_failure_code_with_the_same_retry_rule() {
    for kind in ErrorKind::ALL {
        let code = FailureCode::from(kind);
        assert_eq!(code.as_str(), kind.code());
        assert_eq!(code.retryable(), kind.retryable(), "{kind:?}");
    }
}

#[test]
fn gate_ids_are_made_and_parsed_in_one_place() {
    for stage in Stage::ALL {
        let id = gate_id(stage, 12);
        assert_eq!(id, format!("gate-{}-12", stage.name()));
        assert_eq!(parse_gate_id(&id), Some((stage, 12)));
    }
    for bad in [
        "",
        "gate-",
        "gate-analyst",
        "gate-analyst-",
        "gate-Analyst-1",
        "gate-analyst-1x",
        "gate-analyst-+1",
        "gate-nobody-1",
        "gates-analyst-1",
    ] {
        assert_eq!(parse_gate_id(bad), None, "{bad}");
    }
}

// ---- Generated TypeScript -------------------------------------------------------------------

fn generated_dir() -> PathBuf {
    root().join("frontend/src/protocol/generated")
}

const HEADER: &str = "// This file was generated from the Rust wire types by `cargo test` \
                      (src/protocol/wire/tests.rs). Do not edit this file manually.\n";

/// `STAGES` and `STAGE_LABEL` from `Stage::ALL`: the frontend's one stage list.
fn stages_ts() -> String {
    let list: Vec<String> = Stage::ALL
        .iter()
        .map(|s| format!("\"{}\"", s.name()))
        .collect();
    let labels: Vec<String> = Stage::ALL
        .iter()
        .map(|s| format!("  {}: \"{}\",\n", s.name(), s.title()))
        .collect();
    format!(
        "{HEADER}import type {{ Stage }} from \"./Stage\";\n\n\
         /** The pipeline's stages, in order (`Stage::ALL`). */\n\
         export const STAGES = [{}] as const satisfies readonly Stage[];\n\n\
         /** Display names, as in the AG-UI message `name`. */\n\
         export const STAGE_LABEL: Readonly<Record<Stage, string>> = {{\n{}}};\n",
        list.join(", "),
        labels.concat()
    )
}

/// The code sets as runtime values.
fn codes_ts() -> String {
    let quoted = |v: Vec<&str>| {
        v.iter()
            .map(|s| format!("  \"{s}\",\n"))
            .collect::<String>()
    };
    format!(
        "{HEADER}import type {{ FailureCode }} from \"./FailureCode\";\n\
         import type {{ HttpErrorCode }} from \"./HttpErrorCode\";\n\
         import type {{ RejectionCode }} from \"./RejectionCode\";\n\n\
         /** Every provider failure code (`agent_error.code`, `RUN_ERROR.code`). */\n\
         export const FAILURE_CODES: readonly FailureCode[] = [\n{}];\n\n\
         /** The failure codes BotArmy retries by itself. */\n\
         export const RETRYABLE_FAILURE_CODES: readonly FailureCode[] = [\n{}];\n\n\
         /** Every command rejection code (`rejected.code`). */\n\
         export const REJECTION_CODES: readonly RejectionCode[] = [\n{}];\n\n\
         /** Every HTTP error code (`{{\"error\": {{\"code\"}}}}`). */\n\
         export const HTTP_ERROR_CODES: readonly HttpErrorCode[] = [\n{}];\n",
        quoted(FailureCode::ALL.iter().map(|c| c.as_str()).collect()),
        quoted(
            FailureCode::ALL
                .iter()
                .filter(|c| c.retryable())
                .map(|c| c.as_str())
                .collect()
        ),
        quoted(RejectionCode::ALL.iter().map(|c| c.as_str()).collect()),
        quoted(HttpErrorCode::ALL.iter().map(|c| c.as_str()).collect()),
    )
}

/// The stage list for the JavaScript test tools (`tests/support/*.mjs`), which cannot import
/// TypeScript.
fn stages_json() -> String {
    let stages: Vec<Value> = Stage::ALL
        .iter()
        .map(|s| serde_json::json!({"stage": s.name(), "title": s.title()}))
        .collect();
    serde_json::to_string_pretty(&stages).unwrap() + "\n"
}

/// Every generated file: name → contents.
fn generate() -> BTreeMap<String, String> {
    let tmp = std::env::temp_dir().join(format!("botarmy-wire-ts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let cfg = ts_rs::Config::new()
        .with_large_int("number")
        .with_out_dir(&tmp);
    LoggedCustom::export_all(&cfg).unwrap();
    ConnectionCustom::export_all(&cfg).unwrap();
    HttpErrorCode::export_all(&cfg).unwrap();
    let mut files = read_dir(&tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    let types: Vec<String> = files
        .keys()
        .map(|f| f.trim_end_matches(".ts").to_string())
        .collect();
    files.insert("stages.ts".into(), stages_ts());
    files.insert("codes.ts".into(), codes_ts());
    let mut index = HEADER.to_string();
    for t in types {
        index.push_str(&format!("export type {{ {t} }} from \"./{t}\";\n"));
    }
    index.push_str("export * from \"./codes\";\nexport * from \"./stages\";\n");
    files.insert("index.ts".into(), index);
    files
}

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn generated_typescript_is_current() {
    let want = generate();
    let dir = generated_dir();
    let stages = root().join("tests/fixtures/stages.json");
    if update() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &want {
            std::fs::write(dir.join(name), text).unwrap();
        }
        std::fs::write(&stages, stages_json()).unwrap();
    }
    let got = read_dir(&dir);
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&got),
        names(&want),
        "frontend/src/protocol/generated/ has other files than the Rust types make: {HOW_TO_UPDATE}"
    );
    for (name, text) in &want {
        assert_eq!(
            &got[name], text,
            "frontend/src/protocol/generated/{name} is out of date with the Rust wire types: \
             {HOW_TO_UPDATE}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&stages).unwrap_or_default(),
        stages_json(),
        "tests/fixtures/stages.json is out of date with Stage::ALL: {HOW_TO_UPDATE}"
    );
}
