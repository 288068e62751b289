//! The call driver against a real [`Session`], step by step, for every source of an answer,
//! cancellation and failure.

use std::collections::HashMap;

use super::*;
use crate::agents::Stage;
use crate::config::Config;
use crate::protocol::{decode_frame, Frame};
use crate::session::{AgentStatus, SessionConfig};

const NOW: u64 = 1_000_000;

fn config(pairs: &[(&str, &str)]) -> Config {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| m.get(k).cloned()).unwrap()
}

fn provider() -> Config {
    config(&[
        ("OPENAI_API_KEY", "sk-test-secret"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
    ])
}

fn command(s: &mut Session, text: &str, now: u64) {
    let Ok(Frame::Command(env)) = decode_frame(text) else {
        panic!("{text}")
    };
    s.command(env, now).unwrap();
}

/// A session with a call pending for the analyst, and its driver.
fn setup(cfg: &Config) -> (Session, CallDriver) {
    let sc = SessionConfig {
        demo: cfg.demo(),
        ..cfg.session()
    };
    let mut s = Session::new("s1", sc);
    command(&mut s, r#"{"type":"start","brief":"A todo app"}"#, NOW);
    let spec = s.pending_call().expect("pending");
    let msgs = vec![ChatMessage::system("role"), ChatMessage::user("A todo app")];
    let d = CallDriver::new(spec, &msgs, cfg.call(), "s1", 1);
    (s, d)
}

/// Response headers of a 200.
fn ok_response() -> Input {
    Input::Response {
        status: 200,
        retry_after: None,
        error_body: String::new(),
    }
}

fn sse(text: &str) -> Vec<u8> {
    format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        json!({"choices":[{"delta":{"content": text}}]}),
        json!({"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":12}})
    )
    .into_bytes()
}

/// The agents' text in the events the session emitted.
fn answer_text(s: &mut Session) -> String {
    let mut text = String::new();
    let mut agent_messages = Vec::new();
    while let Some(e) = s.poll_effect() {
        if let crate::session::Effect::Emit { json, .. } = e {
            let v: Value = serde_json::from_str(&json).unwrap();
            if v["type"] == "TEXT_MESSAGE_START" && v["role"] == "assistant" {
                agent_messages.push(v["messageId"].clone());
            }
            if v["type"] == "TEXT_MESSAGE_CONTENT" && agent_messages.contains(&v["messageId"]) {
                text.push_str(v["delta"].as_str().unwrap());
            }
        }
    }
    text
}

#[test]
fn the_demo_streams_at_its_pace_and_never_touches_cache_limiter_or_provider() {
    let cfg = config(&[("DEMO_TOKEN_INTERVAL_MS", "15")]);
    let (mut s, mut d) = setup(&cfg);
    let mut now = NOW;
    let mut step = d.advance(&mut s, Input::Start, now);
    let mut sleeps = 0;
    while let Step::Sleep { until } = step {
        assert!(until >= now, "sleeps forward");
        now = until;
        sleeps += 1;
        step = d.advance(&mut s, Input::Woke, now);
    }
    assert_eq!(step, Step::Finished);
    assert!(sleeps > 10, "{sleeps} pieces");
    assert_eq!(
        s.state().agent(Stage::Analyst).status,
        AgentStatus::WaitingApproval
    );
    assert!(answer_text(&mut s).len() > 100);
    let notes: Vec<_> = d.take_notes().into_iter().map(|n| n.1).collect();
    assert_eq!(notes, ["call_started", "call_ended"]);
}

#[test]
fn a_cache_hit_streams_the_saved_answer_and_spends_no_tokens() {
    let (mut s, mut d) = setup(&provider());
    let Step::LookupCache { key } = d.advance(&mut s, Input::Start, NOW) else {
        panic!("cache first")
    };
    assert_eq!(key.len(), 64);
    let saved = "# Saved answer\n".repeat(40);
    let mut step = d.advance(&mut s, Input::Cache(Some((saved.clone(), 900))), NOW);
    while let Step::Sleep { until } = step {
        step = d.advance(&mut s, Input::Woke, until);
    }
    assert_eq!(step, Step::Finished, "no lease, no store");
    assert_eq!(answer_text(&mut s), saved);
    assert_eq!(s.state().run.tokens_used, 0);
    assert!(s.state().agent(Stage::Analyst).cached);
}

#[test]
fn a_miss_leases_fetches_streams_releases_and_stores_the_accepted_answer() {
    let (mut s, mut d) = setup(&provider());
    d.advance(&mut s, Input::Start, NOW);
    let Step::AcquireLease {
        lease,
        bucket,
        tokens,
    } = d.advance(&mut s, Input::Cache(None), NOW)
    else {
        panic!("lease after a miss")
    };
    assert_eq!(lease, "s1");
    assert_eq!(
        bucket, "openai:gpt-4o-mini",
        "one limiter per provider and model"
    );
    assert!(tokens > MAX_ANSWER_TOKENS);
    let Step::Fetch {
        url, body, headers, ..
    } = d.advance(&mut s, Input::Lease(Ok(())), NOW)
    else {
        panic!("fetch")
    };
    assert_eq!(url, "http://127.0.0.1:9/v1/chat/completions");
    assert!(body.contains("\"stream\":true"));
    assert!(headers.contains(&("authorization", "Bearer sk-test-secret".to_string())));
    let ok = ok_response();
    assert!(matches!(d.advance(&mut s, ok, NOW), Step::Read { .. }));
    // The stream split at an awkward byte.
    let bytes = sse("Hello, plan.");
    let (a, b) = bytes.split_at(17);
    assert!(matches!(
        d.advance(&mut s, Input::Bytes(a.to_vec()), NOW + 5),
        Step::Read { .. }
    ));
    assert!(matches!(
        d.advance(&mut s, Input::Bytes(b.to_vec()), NOW + 6),
        Step::Read { .. }
    ));
    assert_eq!(
        d.advance(&mut s, Input::End, NOW + 7),
        Step::Release {
            lease: "s1".into(),
            bucket: "openai:gpt-4o-mini".into(),
            tokens: 52
        }
    );
    let Step::Store { text, usage, .. } = d.advance(&mut s, Input::Done, NOW + 8) else {
        panic!("store the accepted answer")
    };
    assert_eq!((text.as_str(), usage.output_tokens), ("Hello, plan.", 12));
    assert_eq!(d.advance(&mut s, Input::Done, NOW + 9), Step::Finished);
    assert_eq!(s.state().run.tokens_used, 52);
}

#[test]
fn a_rerun_call_does_not_read_the_cache_but_stores_its_new_answer() {
    let cfg = provider();
    let (mut s, _) = setup(&cfg);
    let mut spec = s.pending_call().expect("pending");
    assert!(!spec.fresh, "a first run reads the cache");
    spec.fresh = true;
    let msgs = vec![ChatMessage::system("role"), ChatMessage::user("A todo app")];
    let mut d = CallDriver::new(spec, &msgs, cfg.call(), "s1", 1);
    let Step::AcquireLease { .. } = d.advance(&mut s, Input::Start, NOW) else {
        panic!("straight to the provider")
    };
    d.advance(&mut s, Input::Lease(Ok(())), NOW);
    let ok = ok_response();
    d.advance(&mut s, ok, NOW);
    d.advance(&mut s, Input::Bytes(sse("A new plan.")), NOW + 5);
    assert!(matches!(
        d.advance(&mut s, Input::End, NOW + 6),
        Step::Release { .. }
    ));
    let Step::Store { text, .. } = d.advance(&mut s, Input::Done, NOW + 7) else {
        panic!("the new answer replaces the cached one")
    };
    assert_eq!(text, "A new plan.");
}

#[test]
fn no_room_at_the_limiter_defers_the_stage_without_counting_an_attempt() {
    let (mut s, mut d) = setup(&config(&[("OPENAI_API_KEY", "k"), ("LLM_CACHE", "off")]));
    assert!(matches!(
        d.advance(&mut s, Input::Start, NOW),
        Step::AcquireLease { .. }
    ));
    assert_eq!(
        d.advance(&mut s, Input::Lease(Err(4000)), NOW),
        Step::Finished
    );
    let a = s.state().agent(Stage::Analyst);
    assert_eq!(a.status, AgentStatus::Queued);
    assert_eq!(a.next_retry_at, Some(NOW + 4000));
}

#[test]
fn an_http_error_is_classified_once_with_its_retry_after_and_the_lease_released() {
    let (mut s, mut d) = setup(&config(&[
        ("OPENAI_API_KEY", "sk-abc-secret"),
        ("LLM_CACHE", "off"),
    ]));
    d.advance(&mut s, Input::Start, NOW);
    d.advance(&mut s, Input::Lease(Ok(())), NOW);
    let r = Input::Response {
        status: 429,
        retry_after: Some("3".into()),
        error_body: r#"{"error":{"message":"slow down, key sk-abc-secret"}}"#.into(),
    };
    assert_eq!(
        d.advance(&mut s, r, NOW),
        Step::Release {
            lease: "s1".into(),
            bucket: "openai:gpt-4o-mini".into(),
            tokens: 0
        }
    );
    assert_eq!(d.advance(&mut s, Input::Done, NOW), Step::Finished);
    let a = s.state().agent(Stage::Analyst);
    assert_eq!(a.last_error.as_ref().unwrap().code, "rate_limited");
    assert!(a.next_retry_at.unwrap() >= NOW + 3000);
    let notes = d.take_notes();
    let err = notes.iter().find(|n| n.1 == "llm_error").unwrap();
    assert!(!err.2.to_string().contains("sk-abc-secret"), "{}", err.2);
}

#[test]
fn fetch_failures_and_timeouts_fail_the_attempt_as_network_and_timeout() {
    for (input, code) in [
        (Input::FetchFailed("connection refused".into()), "network"),
        (Input::FetchTimedOut, "timeout"),
    ] {
        let (mut s, mut d) = setup(&config(&[("OPENAI_API_KEY", "k"), ("LLM_CACHE", "off")]));
        d.advance(&mut s, Input::Start, NOW);
        d.advance(&mut s, Input::Lease(Ok(())), NOW);
        assert!(matches!(
            d.advance(&mut s, input, NOW),
            Step::Release { .. }
        ));
        let a = s.state().agent(Stage::Analyst);
        assert_eq!(a.last_error.as_ref().unwrap().code, code);
    }
}

#[test]
fn a_malformed_or_cut_stream_fails_the_attempt_and_nothing_is_stored() {
    for (bytes, end) in [
        (b"data: {nope\n\n".to_vec(), false),
        (
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n".to_vec(),
            true,
        ),
    ] {
        let (mut s, mut d) = setup(&provider());
        d.advance(&mut s, Input::Start, NOW);
        d.advance(&mut s, Input::Cache(None), NOW);
        d.advance(&mut s, Input::Lease(Ok(())), NOW);
        let ok = ok_response();
        d.advance(&mut s, ok, NOW);
        let mut step = d.advance(&mut s, Input::Bytes(bytes), NOW);
        if end {
            step = d.advance(&mut s, Input::End, NOW);
        }
        assert!(matches!(step, Step::Release { .. }), "{step:?}");
        assert_eq!(
            d.advance(&mut s, Input::Done, NOW),
            Step::Finished,
            "not stored"
        );
        assert!(s.state().agent(Stage::Analyst).last_error.is_some());
    }
}

#[test]
fn cancel_mid_stream_stops_feeding_releases_with_what_was_used_and_stores_nothing() {
    let (mut s, mut d) = setup(&provider());
    d.advance(&mut s, Input::Start, NOW);
    d.advance(&mut s, Input::Cache(None), NOW);
    d.advance(&mut s, Input::Lease(Ok(())), NOW);
    let ok = ok_response();
    d.advance(&mut s, ok, NOW);
    let chunk = format!(
        "data: {}\n\n",
        json!({"choices":[{"delta":{"content":"x".repeat(400)}}]})
    );
    d.advance(&mut s, Input::Bytes(chunk.clone().into_bytes()), NOW);
    command(&mut s, r#"{"type":"cancel"}"#, NOW + 1);
    assert!(s.live_call().is_none());
    let step = d.advance(&mut s, Input::Bytes(chunk.into_bytes()), NOW + 2);
    assert_eq!(
        step,
        Step::Release {
            lease: "s1".into(),
            bucket: "openai:gpt-4o-mini".into(),
            tokens: 100
        },
        "an estimate of the 400 characters seen"
    );
    assert_eq!(d.advance(&mut s, Input::Done, NOW + 3), Step::Finished);
}

#[test]
fn the_watchdog_fires_through_read_deadlines_while_the_provider_is_silent() {
    let cfg = config(&[
        ("OPENAI_API_KEY", "k"),
        ("LLM_CACHE", "off"),
        ("LLM_STALL_TIMEOUT_MS", "1000"),
    ]);
    let (mut s, mut d) = setup(&cfg);
    d.advance(&mut s, Input::Start, NOW);
    d.advance(&mut s, Input::Lease(Ok(())), NOW);
    let ok = ok_response();
    let Step::Read { deadline: Some(t) } = d.advance(&mut s, ok, NOW) else {
        panic!("a read with the watchdog's deadline")
    };
    assert_eq!(t, NOW + 1000);
    assert!(matches!(
        d.advance(&mut s, Input::Tick, t),
        Step::Release { .. }
    ));
    assert_eq!(
        s.state()
            .agent(Stage::Analyst)
            .last_error
            .as_ref()
            .unwrap()
            .code,
        "timeout"
    );
}

#[test]
fn an_input_out_of_order_winds_the_call_up_instead_of_guessing() {
    let (mut s, mut d) = setup(&provider());
    d.advance(&mut s, Input::Start, NOW);
    assert_eq!(d.advance(&mut s, Input::End, NOW), Step::Finished);
    assert!(d.take_notes().iter().any(|n| n.1 == "call_driver_misuse"));
}

/// A session in auto mode whose earlier stages are done, with a call pending for `stage`, and
/// its driver.
fn at_stage(cfg: &Config, stage: Stage) -> (Session, CallDriver) {
    let sc = SessionConfig {
        demo: cfg.demo(),
        ..cfg.session()
    };
    let mut s = Session::new("s1", sc);
    command(
        &mut s,
        r#"{"type":"start","brief":"A todo app","approval":"auto"}"#,
        NOW,
    );
    loop {
        let spec = s.pending_call().expect("pending");
        if spec.stage == stage {
            let msgs = vec![ChatMessage::system("role"), ChatMessage::user("A todo app")];
            let d = CallDriver::new(spec, &msgs, cfg.call(), "s1", 1);
            while s.poll_effect().is_some() {}
            return (s, d);
        }
        s.call_started(spec.call_id, None, NOW);
        s.on_chunk(spec.call_id, "## Done\n\nEarlier stage.", NOW);
        s.on_done(spec.call_id, Usage::default(), NOW);
    }
}

/// An answer that calls tools: `(id, name, arguments)` each, the arguments cut in two.
fn sse_calls(calls: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (i, (id, name, args)) in calls.iter().enumerate() {
        let cut = args.len() / 2;
        let cut = (0..=cut).rev().find(|c| args.is_char_boundary(*c)).unwrap();
        out.push_str(&format!("data: {}\n\n", json!({"choices":[{"delta":{"tool_calls":[
            {"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": &args[..cut]}}]}}]})));
        out.push_str(&format!(
            "data: {}\n\n",
            json!({"choices":[{"delta":{"tool_calls":[
            {"index": i, "function": {"arguments": &args[cut..]}}]}}]})
        ));
    }
    out.push_str(&format!(
        "data: {}\n\n",
        json!({"choices":[{"delta":{},"finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":30,"completion_tokens":20}})
    ));
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn emitted(s: &mut Session) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(e) = s.poll_effect() {
        if let crate::session::Effect::Emit { json, .. } = e {
            out.push(serde_json::from_str(&json).unwrap());
        }
    }
    out
}

fn write_args(path: &str, content: &str) -> String {
    json!({"path": path, "content": content}).to_string()
}

#[test]
fn tool_calls_run_and_their_results_go_back_to_the_model_until_it_answers_in_text() {
    let (mut s, mut d) = at_stage(&provider(), Stage::Developer);
    let Step::LookupCache { .. } = d.advance(&mut s, Input::Start, NOW) else {
        panic!("cache first")
    };
    let Step::AcquireLease { .. } = d.advance(&mut s, Input::Cache(None), NOW) else {
        panic!("lease")
    };
    let Step::Fetch { body, .. } = d.advance(&mut s, Input::Lease(Ok(())), NOW) else {
        panic!("fetch")
    };
    let first: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["write_file", "read_file", "list_files", "delete_file"]
    );
    assert!(first.get("tool_choice").is_none(), "auto by default");
    assert!(matches!(
        d.advance(&mut s, ok_response(), NOW),
        Step::Read { .. }
    ));
    let args = write_args("src/app.js", "console.log(\"héllo\");\n");
    let bytes = sse_calls(&[
        ("call_a", "write_file", &args),
        ("call_b", "read_file", r#"{"path":"../etc/passwd"}"#),
    ]);
    assert!(matches!(
        d.advance(&mut s, Input::Bytes(bytes), NOW),
        Step::Read { .. }
    ));
    // The round ends: the calls ran, and the next request carries them and their results.
    let Step::Fetch { body, .. } = d.advance(&mut s, Input::End, NOW + 1) else {
        panic!("a second request")
    };
    let second: Value = serde_json::from_str(&body).unwrap();
    let msgs = second["messages"].as_array().unwrap();
    let n = msgs.len();
    assert_eq!(msgs[n - 3]["role"], "assistant");
    assert_eq!(msgs[n - 3]["tool_calls"][0]["id"], "call_a");
    assert_eq!(msgs[n - 3]["tool_calls"][0]["function"]["arguments"], args);
    assert_eq!(msgs[n - 2]["tool_call_id"], "call_a");
    assert!(msgs[n - 2]["content"]
        .as_str()
        .unwrap()
        .starts_with("Wrote src/app.js"));
    assert_eq!(msgs[n - 1]["tool_call_id"], "call_b");
    let refused = msgs[n - 1]["content"].as_str().unwrap();
    assert!(refused.starts_with("Error: The path"), "{refused}");
    assert_eq!(s.state().files["src/app.js"].stage, Stage::Developer);
    let events = emitted(&mut s);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let first_tool = kinds.iter().position(|k| *k == "TOOL_CALL_START").unwrap();
    assert!(
        kinds[..first_tool].contains(&"TEXT_MESSAGE_START"),
        "{kinds:?}"
    );
    let start = &events[first_tool];
    assert_eq!(start["toolCallName"], "write_file");
    let msg_id = events
        .iter()
        .find(|e| e["type"] == "TEXT_MESSAGE_START" && e["role"] == "assistant")
        .unwrap()["messageId"]
        .clone();
    assert_eq!(start["parentMessageId"], msg_id);
    let streamed: String = events
        .iter()
        .filter(|e| e["type"] == "TOOL_CALL_ARGS" && e["toolCallId"] == start["toolCallId"])
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, args, "the arguments stream whole");
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "TOOL_CALL_RESULT")
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["role"], "tool");
    assert!(results[1]["content"]
        .as_str()
        .unwrap()
        .starts_with("Error: "));
    // The model answers in text: the stage is done with the usage of both requests.
    assert!(matches!(
        d.advance(&mut s, ok_response(), NOW + 2),
        Step::Read { .. }
    ));
    d.advance(
        &mut s,
        Input::Bytes(sse("## Summary\n\nWrote the app.")),
        NOW + 3,
    );
    let mut step = d.advance(&mut s, Input::End, NOW + 4);
    let mut released = None;
    while step != Step::Finished {
        if let Step::Release { tokens, .. } = step {
            released = Some(tokens);
        }
        step = d.advance(&mut s, Input::Done, NOW + 5);
    }
    assert_eq!(
        released,
        Some(30 + 20 + 40 + 12),
        "one lease, both requests' tokens"
    );
    let a = s.state().agent(Stage::Developer);
    assert_eq!((a.input_tokens, a.output_tokens), (70, 32));
    assert_eq!(a.status, AgentStatus::Done);
}

#[test]
fn after_the_last_round_the_model_is_asked_for_text_and_more_calls_fail_the_attempt() {
    let (mut s, mut d) = at_stage(
        &config(&[
            ("OPENAI_API_KEY", "sk-test-secret"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("LLM_CACHE", "off"),
        ]),
        Stage::Developer,
    );
    let mut step = d.advance(&mut s, Input::Start, NOW);
    if let Step::AcquireLease { .. } = step {
        step = d.advance(&mut s, Input::Lease(Ok(())), NOW);
    }
    for round in 0..=MAX_TOOL_ROUNDS {
        let Step::Fetch { body, .. } = step else {
            panic!("round {round}: {step:?}")
        };
        let v: Value = serde_json::from_str(&body).unwrap();
        let last = round == MAX_TOOL_ROUNDS;
        assert_eq!(v.get("tool_choice").is_some(), last, "round {round}");
        d.advance(&mut s, ok_response(), NOW);
        let args = write_args(&format!("f{round}.txt"), "x");
        d.advance(
            &mut s,
            Input::Bytes(sse_calls(&[("call_same_id", "write_file", &args)])),
            NOW,
        );
        step = d.advance(&mut s, Input::End, NOW);
    }
    while !matches!(step, Step::Finished) {
        step = d.advance(&mut s, Input::Done, NOW);
    }
    let events = emitted(&mut s);
    let error = events
        .iter()
        .find(|e| e["name"] == "agent_error")
        .expect("an agent_error");
    assert_eq!(error["value"]["code"], "too_many_tool_rounds");
    assert!(error["value"]["message"]
        .as_str()
        .unwrap()
        .contains("12 rounds"));
    // A server that reuses one call id every round still gets every round applied.
    assert_eq!(s.workspace().file_rows().count(), MAX_TOOL_ROUNDS);
}

#[test]
fn the_demo_writes_its_files_through_the_same_tool_path() {
    let cfg = config(&[("DEMO_TOKEN_INTERVAL_MS", "0")]);
    let (mut s, mut d) = at_stage(&cfg, Stage::Developer);
    let mut now = NOW;
    let mut step = d.advance(&mut s, Input::Start, now);
    while let Step::Sleep { until } = step {
        now = until.max(now + 1);
        step = d.advance(&mut s, Input::Woke, now);
    }
    assert_eq!(step, Step::Finished);
    let files: Vec<&String> = s.state().files.keys().collect();
    assert_eq!(files, ["public/index.html", "src/app.js", "src/server.js"]);
    let events = emitted(&mut s);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "TOOL_CALL_START")
            .count(),
        3
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "TOOL_CALL_RESULT")
            .count(),
        3
    );
    assert_eq!(s.state().agent(Stage::Developer).status, AgentStatus::Done);
}

fn two_providers() -> Config {
    config(&[
        ("OPENAI_API_KEY", "sk-test-secret"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("ANTHROPIC_API_KEY", "sk-ant-secret"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:10"),
        (
            "AGENT_MODELS",
            "developer=anthropic:claude-sonnet-4-5,*=openai:gpt-4o-mini",
        ),
        ("LLM_CACHE", "off"),
    ])
}

fn anthropic_sse(thinking: &str, text: &str, input: u64, output: u64) -> Vec<u8> {
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    [
        ev("message_start", json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":input,"output_tokens":1}}})),
        ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})),
        ev("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":thinking}})),
        ev("content_block_stop", json!({"type":"content_block_stop","index":0})),
        ev("content_block_start", json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})),
        ev("content_block_delta", json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":text}})),
        ev("content_block_stop", json!({"type":"content_block_stop","index":1})),
        ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":output}})),
        ev("message_stop", json!({"type":"message_stop"})),
    ]
    .concat()
    .into_bytes()
}

#[test]
fn each_stage_calls_its_own_provider_and_model_and_costs_are_exact() {
    let cfg = two_providers();
    let (mut s, mut d) = at_stage(&cfg, Stage::Developer);
    assert_eq!(
        s.state().agent(Stage::Developer).model.as_deref(),
        Some("anthropic:claude-sonnet-4-5")
    );
    assert_eq!(
        s.state().agent(Stage::Tester).model.as_deref(),
        Some("openai:gpt-4o-mini")
    );
    let Step::AcquireLease { bucket, .. } = d.advance(&mut s, Input::Start, NOW) else {
        panic!("no cache: lease first")
    };
    assert_eq!(bucket, "anthropic:claude-sonnet-4-5");
    let Step::Fetch {
        url, headers, body, ..
    } = d.advance(&mut s, Input::Lease(Ok(())), NOW)
    else {
        panic!("fetch")
    };
    assert_eq!(url, "http://127.0.0.1:10/v1/messages");
    assert!(headers.contains(&("x-api-key", "sk-ant-secret".to_string())));
    assert!(!headers.iter().any(|(_, v)| v.contains("sk-test-secret")));
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["model"], "claude-sonnet-4-5");
    assert_eq!(
        b["tools"][0]["name"], "write_file",
        "tools in Anthropic's form"
    );
    d.advance(&mut s, ok_response(), NOW);
    let bytes = anthropic_sse("Let me think.", "## Plan\n\nBuild it.", 1_000, 2_000);
    d.advance(&mut s, Input::Bytes(bytes), NOW + 1);
    let mut step = d.advance(&mut s, Input::End, NOW + 2);
    while step != Step::Finished {
        step = d.advance(&mut s, Input::Done, NOW + 3);
    }
    let a = s.state().agent(Stage::Developer);
    assert_eq!(a.status, AgentStatus::Done);
    // $3 / Mtok in, $15 / Mtok out: 1000 · 3 + 2000 · 15 = 33,000 micro-dollars.
    assert_eq!(a.cost_micro_usd, 33_000);
    assert!(a.price_known);
    assert_eq!(
        s.state().run.cost_micro_usd,
        33_000,
        "the earlier stages reported no usage"
    );
    let events = emitted(&mut s);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let at = |k: &str| {
        kinds
            .iter()
            .position(|t| *t == k)
            .unwrap_or_else(|| panic!("{k} in {kinds:?}"))
    };
    assert!(at("REASONING_START") < at("REASONING_MESSAGE_CONTENT"));
    assert!(
        at("REASONING_END") < at("TEXT_MESSAGE_START"),
        "thinking ends when the answer starts"
    );
    let thought: String = events
        .iter()
        .filter(|e| e["type"] == "REASONING_MESSAGE_CONTENT")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(thought, "Let me think.");
    let answer: String = events
        .iter()
        .filter(|e| e["type"] == "TEXT_MESSAGE_CONTENT")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(answer, "## Plan\n\nBuild it.", "no thinking in the answer");
}

#[test]
fn a_wrong_key_names_the_provider_and_the_agent() {
    let cfg = two_providers();
    let (mut s, mut d) = at_stage(&cfg, Stage::Developer);
    d.advance(&mut s, Input::Start, NOW);
    d.advance(&mut s, Input::Lease(Ok(())), NOW);
    let r = Input::Response {
        status: 401,
        retry_after: None,
        error_body: r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-secret"}}"#.into(),
    };
    let mut step = d.advance(&mut s, r, NOW);
    while step != Step::Finished {
        step = d.advance(&mut s, Input::Done, NOW);
    }
    let events = emitted(&mut s);
    let err = events.iter().find(|e| e["name"] == "agent_error").unwrap();
    assert_eq!(err["value"]["code"], "bad_key");
    let msg = err["value"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Anthropic") && msg.contains("Developer"),
        "{msg}"
    );
    assert!(!err.to_string().contains("sk-ant-secret"), "{err}");
}

/// Runs `rounds` answers of tool calls made by `calls(round)` through the driver; returns the
/// sizes of every request body sent, and the driver's step after the last answer.
fn tool_rounds(
    s: &mut Session,
    d: &mut CallDriver,
    rounds: usize,
    calls: impl Fn(usize) -> Vec<(String, String, String)>,
) -> (Vec<usize>, Step) {
    let mut step = d.advance(s, Input::Start, NOW);
    if let Step::AcquireLease { .. } = step {
        step = d.advance(s, Input::Lease(Ok(())), NOW);
    }
    let mut sizes = Vec::new();
    for round in 0..rounds {
        let Step::Fetch { body, .. } = &step else {
            panic!("round {round}: {step:?}")
        };
        sizes.push(body.len());
        d.advance(s, ok_response(), NOW);
        let made = calls(round);
        let refs: Vec<(&str, &str, &str)> = made
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        d.advance(s, Input::Bytes(sse_calls(&refs)), NOW);
        step = d.advance(s, Input::End, NOW);
        while s.poll_effect().is_some() {}
    }
    if let Step::Fetch { body, .. } = &step {
        sizes.push(body.len());
    }
    (sizes, step)
}

fn no_cache_provider() -> Config {
    config(&[
        ("OPENAI_API_KEY", "sk-test-secret"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("LLM_CACHE", "off"),
    ])
}

/// What a request may weigh besides its tool context: the prompt, the attempt's text, and the
/// JSON around each message (generous: each call and result is a few hundred bytes of it).
const REQUEST_OVERHEAD: usize = 64 * 1024 + 64 * 1024;

#[test]
fn a_model_writing_sixteen_big_files_a_round_never_makes_a_request_past_the_bound() {
    let (mut s, mut d) = at_stage(&no_cache_provider(), Stage::Developer);
    let content = "x".repeat(240 * 1024);
    let (sizes, _) = tool_rounds(&mut s, &mut d, MAX_TOOL_ROUNDS, |round| {
        (0..16)
            .map(|i| {
                (
                    format!("c{round}-{i}"),
                    "write_file".to_string(),
                    write_args(&format!("big/{round}-{i}.txt"), &content),
                )
            })
            .collect()
    });
    assert_eq!(sizes.len(), MAX_TOOL_ROUNDS + 1);
    let bound = history::MAX_TOOL_CONTEXT_BYTES + REQUEST_OVERHEAD;
    for (round, size) in sizes.iter().enumerate() {
        assert!(*size <= bound, "request {round}: {size} bytes");
    }
    // Writes are left out of what is resent at once: nothing near 1 MiB is resent at all.
    let total: usize = sizes.iter().sum();
    assert!(total < 4 * 1024 * 1024, "the attempt sent {total} bytes");
}

#[test]
fn a_model_reading_one_big_file_sixteen_times_a_round_gets_what_fits_and_a_note_for_the_rest() {
    let (mut s, mut d) = at_stage(&no_cache_provider(), Stage::Developer);
    let content = "y".repeat(250 * 1024);
    // Round 0 writes the file; every later round reads it sixteen times.
    let (sizes, step) = tool_rounds(&mut s, &mut d, 4, |round| match round {
        0 => vec![(
            "w".to_string(),
            "write_file".to_string(),
            write_args("big.txt", &content),
        )],
        _ => (0..16)
            .map(|i| {
                (
                    format!("r{round}-{i}"),
                    "read_file".to_string(),
                    r#"{"path":"big.txt"}"#.to_string(),
                )
            })
            .collect(),
    });
    let bound = history::MAX_TOOL_CONTEXT_BYTES + REQUEST_OVERHEAD;
    for (round, size) in sizes.iter().enumerate() {
        assert!(*size <= bound, "request {round}: {size} bytes");
    }
    let Step::Fetch { body, .. } = step else {
        panic!("a request after the reads")
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    let msgs = v["messages"].as_array().unwrap();
    let results: Vec<&str> = msgs[msgs.len() - 16..]
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    // The first reads of the round just run come whole, the rest as a note naming the tool.
    assert_eq!(results[0].len(), content.len());
    assert!(results.iter().filter(|r| r.len() == content.len()).count() >= 3);
    assert!(
        results[15].contains("read_file answered") && results[15].contains("Call it again"),
        "{}",
        results[15]
    );
    // Earlier rounds' reads are notes now.
    let earlier = &msgs[msgs.len() - 18];
    assert_eq!(earlier["role"], "tool");
    assert!(earlier["content"]
        .as_str()
        .unwrap()
        .starts_with("[BotArmy left"));
}

#[test]
fn small_calls_and_results_are_resent_word_for_word() {
    let (mut s, mut d) = at_stage(&no_cache_provider(), Stage::Developer);
    let args = write_args("a.txt", "small");
    let (_, step) = tool_rounds(&mut s, &mut d, 2, |round| {
        vec![
            (format!("w{round}"), "write_file".to_string(), args.clone()),
            (
                format!("r{round}"),
                "read_file".to_string(),
                r#"{"path":"a.txt"}"#.to_string(),
            ),
        ]
    });
    let Step::Fetch { body, .. } = step else {
        panic!("a third request")
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    let msgs = v["messages"].as_array().unwrap();
    let n = msgs.len();
    // Both rounds, as sent and as answered.
    for at in [n - 6, n - 3] {
        assert_eq!(msgs[at]["tool_calls"][0]["function"]["arguments"], args);
        assert_eq!(msgs[at + 2]["content"], "small");
    }
}

fn reasoning_sse(piece: &str, times: usize) -> Vec<u8> {
    let line = format!(
        "data: {}\n\n",
        json!({"choices":[{"delta":{"reasoning_content": piece}}]})
    );
    line.repeat(times).into_bytes()
}

fn last_error(s: &Session, stage: Stage) -> String {
    s.state()
        .agent(stage)
        .last_error
        .as_ref()
        .map(|e| e.code.clone())
        .unwrap_or_default()
}

#[test]
fn reasoning_past_its_bound_stops_the_attempt_like_an_answer_without_end() {
    let cfg = config(&[("OPENAI_API_KEY", "k"), ("LLM_CACHE", "off")]);
    let (mut s, mut d) = setup(&cfg);
    d.advance(&mut s, Input::Start, NOW);
    d.advance(&mut s, Input::Lease(Ok(())), NOW);
    d.advance(&mut s, ok_response(), NOW);
    let piece = "r".repeat(8 * 1024);
    // Just under the bound: still streaming.
    let under = crate::protocol::limits::MAX_REASONING_BYTES / piece.len();
    let step = d.advance(&mut s, Input::Bytes(reasoning_sse(&piece, under)), NOW + 1);
    assert!(matches!(step, Step::Read { .. }), "{step:?}");
    assert_eq!(last_error(&s, Stage::Analyst), "");
    // One more piece: the attempt stops, the request is aborted, nothing more is read.
    let step = d.advance(&mut s, Input::Bytes(reasoning_sse(&piece, 4)), NOW + 2);
    assert!(matches!(step, Step::Release { .. }), "{step:?}");
    assert_eq!(last_error(&s, Stage::Analyst), "reasoning_too_long");
    let mut aborted = false;
    let mut shown = 0;
    while let Some(e) = s.poll_effect() {
        match e {
            crate::session::Effect::AbortCall { .. } => aborted = true,
            crate::session::Effect::Emit { json, .. }
                if json.contains("REASONING_MESSAGE_CONTENT") =>
            {
                let v: Value = serde_json::from_str(&json).unwrap();
                shown += v["delta"].as_str().unwrap().len();
            }
            _ => {}
        }
    }
    assert!(aborted, "the request is aborted");
    assert!(
        shown <= crate::protocol::limits::MAX_REASONING_BYTES,
        "{shown}"
    );
}

#[test]
fn an_attempt_streaming_past_its_time_is_stopped_however_lively() {
    let cfg = config(&[
        ("OPENAI_API_KEY", "k"),
        ("LLM_CACHE", "off"),
        ("LLM_STALL_TIMEOUT_MS", "1000"),
        ("STAGE_MAX_MS", "5000"),
    ]);
    let (mut s, mut d) = setup(&cfg);
    d.advance(&mut s, Input::Start, NOW);
    d.advance(&mut s, Input::Lease(Ok(())), NOW);
    d.advance(&mut s, ok_response(), NOW);
    // A thought every half second: the watchdog never fires.
    let mut now = NOW;
    let mut step = Step::Finished;
    while now < NOW + 6000 {
        now += 500;
        step = match d.advance(&mut s, Input::Bytes(reasoning_sse("hmm ", 1)), now) {
            Step::Read { deadline: Some(t) } if t <= now => d.advance(&mut s, Input::Tick, now),
            other => other,
        };
        if !matches!(step, Step::Read { .. }) {
            break;
        }
    }
    assert!(matches!(step, Step::Release { .. }), "{step:?}");
    assert_eq!(now, NOW + 5000, "stopped when its time was up");
    assert_eq!(last_error(&s, Stage::Analyst), "stage_too_long");
}
