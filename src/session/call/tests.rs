//! The call driver against a real [`Session`], step by step, for every source of an answer,
//! cancellation and failure.

use std::collections::HashMap;

use super::*;
use crate::agents::Stage;
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
    let d = CallDriver::new(spec, &msgs, cfg, "s1", 1);
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
    let Step::AcquireLease { lease, tokens } = d.advance(&mut s, Input::Cache(None), NOW) else {
        panic!("lease after a miss")
    };
    assert_eq!(lease, "s1");
    assert!(tokens > MAX_ANSWER_TOKENS);
    let Step::Fetch {
        url, body, api_key, ..
    } = d.advance(&mut s, Input::Lease(Ok(())), NOW)
    else {
        panic!("fetch")
    };
    assert_eq!(url, "http://127.0.0.1:9/v1/chat/completions");
    assert!(body.contains("\"stream\":true"));
    assert_eq!(api_key.as_deref(), Some("sk-test-secret"));
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
    let mut d = CallDriver::new(spec, &msgs, &cfg, "s1", 1);
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
