//! One LLM call as a state machine without I/O: where the answer comes from (the demo
//! provider, the answer cache, or the provider over HTTP), the limiter lease, the streamed
//! answer fed into the [`Session`], the usage to report, what goes into the cache, and
//! cancellation. The edge executes each [`Step`] and feeds back what happened as an [`Input`].
//!
//! ```text
//! Start ─▶ (demo) Sleep/Woke … pieces at the demo pace ─────────────────────────┐
//!       └▶ LookupCache ─ hit ─▶ Sleep/Woke … cached pieces at once ──────────────┤
//!                      └ miss ▶ AcquireLease ─ no room ─▶ (deferred) Done        │
//!                                             └ lease ──▶ Fetch ─▶ Read … End ──┤
//!                                                                                ▼
//!                                          Release (if leased) ─▶ Store (if accepted) ─▶ Done
//! ```
//!
//! Tools: every stage but the Analyst is offered the workspace's tools. An answer that ends
//! with tool calls (`finish_reason: "tool_calls"`) has them run by the session
//! ([`Session::run_tools`]), and the next request carries the assistant's calls and one `tool`
//! message per result: `Fetch … End ─▶ (tools) Fetch … End ─▶ …` under the same lease, until
//! an answer without calls. Big arguments and results of earlier rounds are left out of what is
//! resent ([`history`]: 1 MiB of tool context per request at most). After [`MAX_TOOL_ROUNDS`]
//! answers with calls, the next request asks for text only (`tool_choice: "none"`); calls in
//! that answer fail the attempt in plain words. The demo plays the same kind of stream ([`crate::agents::demo_script`]), so its tool
//! calls take the same path; an answer with tool calls is never cached.
//!
//! Rules: the call stops being fed the moment the session no longer calls it live (cancel,
//! watchdog, a failure); a failure is classified and reported once; a call that ended
//! normally without the provider's usage reports an estimate; only an answer the session
//! accepted, from the provider (not the demo, not the cache), is stored; the lease is always
//! released, with the tokens used.

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::machine::{CallSpec, Session, StageFailure, Usage};
use super::schedule::next_alarm;
use crate::agents::{demo_answer, demo_script, demo_usage, Stage, MAX_ANSWER_TOKENS};
use crate::llm::cache::CacheScope;
use crate::llm::openai::messages_chars;
use crate::llm::providers::{Decoder, HttpRequest, Provider, ProviderKind, Providers};
use crate::llm::tools::{ToolCall, ToolDef};
use crate::llm::{
    cache, estimate_tokens, redact, ChatMessage, ErrorKind, LlmError, StreamDecoder, StreamItem,
};
use crate::protocol::wire::FailureCode;
use crate::workspace::limits::MAX_TOOL_ROUNDS;

/// A cached answer is fed in pieces of this many characters, so its text events look like a
/// fast stream (each flush carries at most the coalescing limit anyway).
const CACHED_PIECE_CHARS: usize = 256;

/// What the edge does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Ask the answer cache for `key`; answer [`Input::Cache`].
    LookupCache { key: String },
    /// Ask the global limiter of `bucket` (one per provider and model) for a lease; answer
    /// [`Input::Lease`]. When the session's last lease came with a follow-on set aside that
    /// covers `tokens` ([`crate::llm::ProviderLimiter::reserve_follow_on`]), the edge answers
    /// at once and tells the limiter once the provider has answered the fetch that follows.
    AcquireLease {
        lease: String,
        bucket: String,
        tokens: u32,
    },
    /// POST `body` to `url` with `headers` (one carries the key: never log them; streamed
    /// answer), giving up after `timeout_ms` without response headers; answer
    /// [`Input::Response`], [`Input::FetchFailed`] or [`Input::FetchTimedOut`].
    Fetch {
        url: String,
        headers: Vec<(&'static str, String)>,
        body: String,
        timeout_ms: u64,
    },
    /// Read the next piece of the response body, giving up at `deadline` (epoch ms) with
    /// [`Input::Tick`]; answer [`Input::Bytes`], [`Input::End`] or [`Input::ReadFailed`].
    Read { deadline: Option<u64> },
    /// Wait until `until` (epoch ms), then answer [`Input::Woke`].
    Sleep { until: u64 },
    /// Give the lease back, with the tokens the call used; answer [`Input::Done`]. Nothing
    /// the session does depends on it, so the edge may send it with the session's next lease
    /// request rather than on its own.
    Release {
        lease: String,
        bucket: String,
        tokens: u32,
    },
    /// Keep this answer in the cache; answer [`Input::Done`].
    Store {
        key: String,
        text: String,
        usage: Usage,
    },
    /// The call is over.
    Finished,
}

/// What happened, fed back to [`CallDriver::advance`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start,
    /// The cache's answer: `(text, tokens it saved)`, or `None` for a miss (or a broken cache).
    Cache(Option<(String, u64)>),
    /// `Err(wait_ms)` when the provider budget is spent.
    Lease(Result<(), u64>),
    /// Response headers arrived; for a status outside 2xx, the body and `Retry-After`.
    Response {
        status: u16,
        retry_after: Option<String>,
        error_body: String,
    },
    FetchFailed(String),
    FetchTimedOut,
    Bytes(Vec<u8>),
    End,
    ReadFailed(String),
    Tick,
    Woke,
    /// A release or store step is done.
    Done,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    New,
    Cache,
    Lease,
    Fetching,
    Streaming,
    /// Pieces of known text (demo or cached) at a pace.
    Playing,
    Releasing,
    Storing,
    Over,
}

/// Something worth a log line: (level, event, fields). Never a secret.
pub type Note = (&'static str, &'static str, Value);

#[derive(Debug)]
pub struct CallDriver {
    spec: CallSpec,
    phase: Phase,
    /// The next request to send (`None` in demo mode or without a provider).
    request: Option<HttpRequest>,
    /// The provider answering (`None` in demo mode), or why there is none.
    provider: Result<Option<Provider>, String>,
    bucket: String,
    thinking_tokens: Option<u32>,
    secrets: Vec<String>,
    stall_timeout_ms: u64,
    prompt_chars: usize,
    /// The demo's whole stream, and the length of its text (for the progress estimate).
    demo: Option<(Vec<StreamItem>, usize)>,
    demo_interval_ms: u64,
    cache_key: Option<String>,
    lease: Option<String>,
    lease_id: String,
    pieces: VecDeque<StreamItem>,
    interval_ms: u64,
    next_at: u64,
    decoder: Decoder,
    usage: Option<Usage>,
    /// The answer as streamed, kept only when it may go into the cache.
    answer: Option<String>,
    answer_chars: usize,
    /// The usage of an answer the session accepted as an artifact.
    accepted: Option<Usage>,
    notes: Vec<Note>,
    /// The conversation so far (grows by each round's calls and results, bounded by
    /// [`history::fit`]), and what to send; the first `prompt_messages` are the prompt.
    messages: Vec<ChatMessage>,
    prompt_messages: usize,
    model: String,
    tools: Vec<ToolDef>,
    /// Answers with tool calls so far in this attempt; the current answer's text and calls.
    round: u32,
    round_text: String,
    round_calls: Vec<ToolCall>,
}

/// What a call needs of the Worker's configuration ([`crate::config::Config::call`]).
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub providers: Providers,
    pub thinking_tokens: Option<u32>,
    pub cache: CacheScope,
    /// Every secret, for redaction.
    pub secrets: Vec<String>,
    pub stall_timeout_ms: u64,
    pub demo_token_interval_ms: u64,
}

impl CallConfig {
    fn demo(&self) -> bool {
        self.providers.demo()
    }

    /// The answer cache applies: a real provider (the demo costs nothing) and not switched off.
    pub fn cache_on(&self) -> bool {
        !self.demo() && self.cache != CacheScope::Off
    }
}

impl CallDriver {
    /// A driver for `spec`, whose prompt is `messages`; `version` is the artifact version
    /// this attempt would make (the demo quotes it).
    pub fn new(
        spec: CallSpec,
        messages: &[ChatMessage],
        cfg: CallConfig,
        session_id: &str,
        version: u32,
    ) -> Self {
        let tools = if spec.stage == Stage::Analyst {
            Vec::new()
        } else {
            crate::workspace::tools::definitions()
        };
        let provider = match cfg.demo() {
            true => Ok(None),
            false => cfg
                .providers
                .resolve(spec.stage, spec.model.as_deref())
                .map(|(p, m)| Some((p.clone(), m.clone()))),
        };
        let (provider, model, bucket) = match provider {
            Ok(Some((p, m))) => (Ok(Some(p)), m.model.clone(), m.id()),
            Ok(None) => (Ok(None), "demo".to_string(), "demo".to_string()),
            Err(e) => (Err(e), String::new(), String::new()),
        };
        let thinking_tokens = cfg.thinking_tokens;
        let request = match &provider {
            Ok(Some(p)) => Some(provider_request(
                p,
                &model,
                messages,
                &tools,
                None,
                thinking_tokens,
            )),
            _ => None,
        };
        let decoder = match &provider {
            Ok(Some(p)) => p.decoder(),
            _ => Decoder::OpenAi(StreamDecoder::new()),
        };
        let base_url = match &provider {
            Ok(Some(p)) => p.base_url.clone(),
            _ => String::new(),
        };
        let demo = cfg.demo().then(|| {
            let feedback = spec.feedback.as_deref();
            let text = demo_answer(spec.stage, &spec.brief, feedback, version);
            let items = demo_script(spec.stage, &spec.brief, feedback, version);
            (items, text.chars().count())
        });
        let cache_key = cfg
            .cache_on()
            .then(|| {
                let body = request.as_ref().map_or("", |r| r.body.as_str());
                cache::key(cfg.cache, session_id, &base_url, body)
            })
            .flatten();
        CallDriver {
            phase: Phase::New,
            provider,
            bucket,
            thinking_tokens,
            secrets: cfg.secrets,
            stall_timeout_ms: cfg.stall_timeout_ms,
            prompt_chars: messages_chars(messages),
            demo,
            demo_interval_ms: cfg.demo_token_interval_ms,
            cache_key,
            lease: None,
            // One lease per session (a session runs one call at a time): a call restarted
            // after a crash takes back its own slot instead of leaking it.
            lease_id: session_id.to_string(),
            pieces: VecDeque::new(),
            interval_ms: 0,
            next_at: 0,
            decoder,
            usage: None,
            answer: None,
            answer_chars: 0,
            accepted: None,
            notes: Vec::new(),
            messages: messages.to_vec(),
            prompt_messages: messages.len(),
            model,
            tools,
            round: 0,
            round_text: String::new(),
            round_calls: Vec::new(),
            request,
            spec,
        }
    }

    pub fn call_id(&self) -> u64 {
        self.spec.call_id
    }

    /// Log lines gathered since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    fn note(&mut self, level: &'static str, event: &'static str, mut fields: Value) {
        fields["stage"] = json!(self.spec.stage);
        fields["call"] = json!(self.spec.call_id);
        self.notes.push((level, event, fields));
    }

    fn live(&self, s: &Session) -> bool {
        s.live_call() == Some(self.spec.call_id)
    }

    /// Feeds what happened and returns what to do next. `s` is the session the call is for.
    pub fn advance(&mut self, s: &mut Session, input: Input, now: u64) -> Step {
        let id = self.spec.call_id;
        match (self.phase.clone(), input) {
            (Phase::New, Input::Start) => {
                let expected = self.demo.as_ref().map(|d| d.1);
                if !s.call_started(id, expected, now) {
                    // Announced, then cancelled, paused or replaced before the edge got to it.
                    self.note(
                        "info",
                        "call_dropped",
                        json!({"attempt": self.spec.attempt}),
                    );
                    self.phase = Phase::Over;
                    return Step::Finished;
                }
                self.note(
                    "info",
                    "call_started",
                    json!({"attempt": self.spec.attempt, "demo": self.demo.is_some()}),
                );
                if let Some((items, _)) = self.demo.take() {
                    self.play(items, self.demo_interval_ms, now);
                    return self.next_piece(s, now);
                }
                if let Err(why) = &self.provider {
                    // The configuration changed under a run: the stage's model is gone.
                    let e = LlmError::new(ErrorKind::BadRequest, why.clone());
                    return self.fail(s, e, now);
                }
                match self.cache_key.clone() {
                    // A rerun wants a new answer: no lookup, but the answer is kept to store.
                    Some(_) if self.spec.fresh => self.ask_provider(),
                    Some(key) => {
                        self.phase = Phase::Cache;
                        Step::LookupCache { key }
                    }
                    None => self.acquire(),
                }
            }
            (Phase::Cache, Input::Cache(Some((text, saved)))) => {
                if !self.live(s) {
                    return self.wind_up();
                }
                self.note(
                    "info",
                    "cache_hit",
                    json!({"chars": text.chars().count(), "savedTokens": saved}),
                );
                s.call_cached(id, text.chars().count(), now);
                // Nothing was spent on the provider.
                self.usage = Some(Usage::default());
                let chars: Vec<char> = text.chars().collect();
                let pieces = chars
                    .chunks(CACHED_PIECE_CHARS)
                    .map(|c| StreamItem::Delta(c.iter().collect()))
                    .collect();
                self.play(pieces, 0, now);
                self.next_piece(s, now)
            }
            (Phase::Cache, Input::Cache(None)) => {
                if !self.live(s) {
                    return self.wind_up();
                }
                self.ask_provider()
            }
            (Phase::Lease, Input::Lease(Err(wait))) => {
                self.note("info", "call_queued", json!({"waitMs": wait}));
                s.on_deferred(id, wait, now);
                self.wind_up()
            }
            (Phase::Lease, Input::Lease(Ok(()))) => {
                self.lease = Some(self.lease_id.clone());
                if !self.live(s) {
                    return self.wind_up();
                }
                self.fetch()
            }
            (Phase::Fetching, Input::Response { status, .. }) if (200..300).contains(&status) => {
                self.phase = Phase::Streaming;
                self.read(s)
            }
            (
                Phase::Fetching,
                Input::Response {
                    status,
                    retry_after,
                    error_body,
                },
            ) => {
                let e = match &self.provider {
                    Ok(Some(p)) => {
                        p.classify_http(status, retry_after.as_deref(), &error_body, now)
                    }
                    _ => {
                        crate::llm::classify_http(status, retry_after.as_deref(), &error_body, now)
                    }
                };
                self.fail(s, e, now)
            }
            (Phase::Fetching, Input::FetchFailed(msg)) => {
                let e = LlmError::new(ErrorKind::Network, format!("fetch failed: {msg}"));
                self.fail(s, e, now)
            }
            (Phase::Fetching, Input::FetchTimedOut) => {
                let e = LlmError::new(
                    ErrorKind::Timeout,
                    format!("no response headers within {} ms", self.stall_timeout_ms),
                );
                self.fail(s, e, now)
            }
            // Cancelled, or failed by the watchdog: nothing more is fed.
            (Phase::Streaming | Phase::Playing, _) if !self.live(s) => self.wind_up(),
            (Phase::Streaming, Input::Tick) => {
                s.on_timeout(now);
                self.read(s)
            }
            (Phase::Streaming, Input::Bytes(b)) => match self.decoder.push(&b) {
                Ok(items) => {
                    self.feed(s, items, now);
                    self.read(s)
                }
                Err(e) => self.fail(s, e, now),
            },
            (Phase::Streaming, Input::ReadFailed(msg)) => {
                let e = LlmError::new(ErrorKind::Network, format!("stream read failed: {msg}"));
                self.fail(s, e, now)
            }
            (Phase::Streaming, Input::End) => match self.decoder.finish() {
                Ok(items) => {
                    self.feed(s, items, now);
                    if self.round_calls.is_empty() {
                        return self.done(s, now);
                    }
                    if self.round as usize >= MAX_TOOL_ROUNDS {
                        // Asked for text only and still calling tools: stop in plain words.
                        if self.live(s) {
                            s.on_failure(self.spec.call_id, too_many_rounds(), now);
                        }
                        return self.wind_up();
                    }
                    let (text, calls) = self.end_round(s, now);
                    if !self.live(s) {
                        return self.wind_up();
                    }
                    self.next_request(text, calls);
                    self.fetch()
                }
                Err(e) => self.fail(s, e, now),
            },
            (Phase::Playing, Input::Woke) => self.next_piece(s, now),
            (Phase::Releasing, Input::Done) => self.store(),
            (Phase::Storing, Input::Done) => self.over(),
            (phase, input) => {
                // The edge broke the protocol: stop cleanly rather than guess.
                self.note(
                    "error",
                    "call_driver_misuse",
                    json!({"phase": format!("{phase:?}"), "input": format!("{input:?}").chars().take(80).collect::<String>()}),
                );
                self.wind_up()
            }
        }
    }

    fn acquire(&mut self) -> Step {
        self.phase = Phase::Lease;
        Step::AcquireLease {
            lease: self.lease_id.clone(),
            bucket: self.bucket.clone(),
            tokens: estimate_tokens(self.prompt_chars) + MAX_ANSWER_TOKENS,
        }
    }

    fn fetch(&mut self) -> Step {
        self.phase = Phase::Fetching;
        let req = self
            .request
            .clone()
            .expect("only a provider's call fetches");
        Step::Fetch {
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout_ms: self.stall_timeout_ms,
        }
    }

    /// The answer that just ended called tools: the session runs them. Returns the answer's
    /// text and calls, and the results (in call order) for the next request.
    fn end_round(&mut self, s: &mut Session, now: u64) -> (String, Vec<(ToolCall, String)>) {
        let calls = std::mem::take(&mut self.round_calls);
        let text = std::mem::take(&mut self.round_text);
        let results = s.run_tools(self.spec.call_id, self.round, &calls, now);
        self.note(
            "info",
            "tool_round",
            json!({"round": self.round, "calls": calls.len()}),
        );
        self.round += 1;
        (text, calls.into_iter().zip(results).collect())
    }

    /// The request after a round of tool calls: the conversation with the assistant's calls
    /// and their results; text only once the rounds are used up.
    fn next_request(&mut self, text: String, done: Vec<(ToolCall, String)>) {
        let (calls, results): (Vec<_>, Vec<_>) = done.into_iter().unzip();
        let answers: Vec<ChatMessage> = calls
            .iter()
            .zip(results)
            .map(|(c, r)| ChatMessage::tool_result(c.id.clone(), r))
            .collect();
        self.messages
            .push(ChatMessage::assistant_tool_calls(text, calls));
        self.messages.extend(answers);
        history::fit(&mut self.messages, self.prompt_messages);
        let choice = (self.round as usize >= MAX_TOOL_ROUNDS).then_some("none");
        let Ok(Some(p)) = &self.provider else {
            unreachable!("only a provider's answer has rounds")
        };
        self.request = Some(provider_request(
            p,
            &self.model,
            &self.messages,
            &self.tools,
            choice,
            self.thinking_tokens,
        ));
        self.prompt_chars += messages_chars(&self.messages);
        self.decoder = p.decoder();
    }

    fn play(&mut self, pieces: Vec<StreamItem>, interval_ms: u64, now: u64) {
        self.phase = Phase::Playing;
        self.pieces = pieces.into();
        self.interval_ms = interval_ms;
        self.next_at = now;
    }

    /// Known text: the next piece when it is due, the session's own timers meanwhile.
    fn next_piece(&mut self, s: &mut Session, now: u64) -> Step {
        if !self.live(s) {
            return self.wind_up();
        }
        if next_alarm(&s.timers()).is_some_and(|t| now >= t) {
            s.on_timeout(now);
            if !self.live(s) {
                return self.wind_up();
            }
        }
        if now >= self.next_at {
            match self.pieces.pop_front() {
                Some(StreamItem::Finished { reason }) if reason == "tool_calls" => {
                    // A scripted round of tool calls ends: run them, as for a provider.
                    self.end_round(s, now);
                    if !self.live(s) {
                        return self.wind_up();
                    }
                }
                Some(item) => {
                    self.next_at = now.max(self.next_at) + self.interval_ms;
                    self.feed(s, vec![item], now);
                    if !self.live(s) {
                        return self.wind_up();
                    }
                }
                None => return self.done(s, now),
            }
        }
        let until = match next_alarm(&s.timers()) {
            Some(t) => t.min(self.next_at),
            None => self.next_at,
        };
        Step::Sleep { until }
    }

    fn read(&mut self, s: &Session) -> Step {
        if !self.live(s) {
            return self.wind_up();
        }
        Step::Read {
            deadline: next_alarm(&s.timers()),
        }
    }

    fn feed(&mut self, s: &mut Session, items: Vec<StreamItem>, now: u64) {
        for item in items {
            match item {
                StreamItem::Delta(t) => {
                    self.answer_chars += t.chars().count();
                    if let Some(a) = self.answer.as_mut() {
                        a.push_str(&t);
                    }
                    self.round_text.push_str(&t);
                    s.on_chunk(self.spec.call_id, &t, now);
                }
                StreamItem::Usage {
                    prompt_tokens,
                    completion_tokens,
                } => {
                    // One usage per request: a call with tool rounds adds them up.
                    let u = self.usage.get_or_insert_with(Usage::default);
                    u.input_tokens += prompt_tokens as u64;
                    u.output_tokens += completion_tokens as u64;
                }
                StreamItem::ToolCallStart { id, name, .. } => {
                    // An answer that acts on the workspace is not replayed from the cache.
                    self.answer = None;
                    s.on_tool_start(self.spec.call_id, self.round, &id, &name, now);
                    self.round_calls.push(ToolCall {
                        id,
                        name,
                        arguments: String::new(),
                    });
                }
                StreamItem::ToolCallArgs { id, delta } => {
                    s.on_tool_args(self.spec.call_id, self.round, &id, &delta, now);
                    if let Some(c) = self.round_calls.iter_mut().find(|c| c.id == id) {
                        c.arguments.push_str(&delta);
                    }
                }
                StreamItem::ToolCallEnd { id } => {
                    s.on_tool_end(self.spec.call_id, self.round, &id, now);
                }
                StreamItem::Finished { .. } | StreamItem::Done => {}
                StreamItem::Reasoning(t) => s.on_reasoning(self.spec.call_id, &t, now),
            }
        }
    }

    /// The answer ended normally: the session decides whether it is accepted.
    fn done(&mut self, s: &mut Session, now: u64) -> Step {
        let u = self.usage.unwrap_or_else(|| {
            let (p, c) = demo_usage(self.prompt_chars, self.answer_chars);
            Usage {
                input_tokens: p as u64,
                output_tokens: c as u64,
            }
        });
        let live = self.live(s);
        s.on_done(self.spec.call_id, u, now);
        if live {
            self.accepted = Some(u);
        }
        self.wind_up()
    }

    fn fail(&mut self, s: &mut Session, e: LlmError, now: u64) -> Step {
        if self.live(s) {
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            let detail = redact(&e.detail, &secrets);
            self.note(
                "warn",
                "llm_error",
                json!({"code": e.code(), "status": e.status, "detail": detail}),
            );
            // Which provider and model failed, for whom: with several providers a wrong key
            // or a missing model is only actionable when named.
            let message = match &self.provider {
                Ok(Some(p)) => format!(
                    "{} ({}, model {}, used by the {}.)",
                    e.user_message(),
                    match p.kind {
                        ProviderKind::OpenAi => "OpenAI-compatible provider",
                        ProviderKind::Anthropic => "Anthropic",
                    },
                    self.model,
                    self.spec.stage.title()
                ),
                _ => e.user_message().into(),
            };
            s.on_failure(
                self.spec.call_id,
                StageFailure {
                    code: e.kind.into(),
                    message,
                    detail,
                    retryable: e.retryable(),
                    retry_after_ms: e.retry_after_ms,
                },
                now,
            );
        }
        self.wind_up()
    }

    /// Release the lease (if any), then store (if accepted), then finish.
    fn wind_up(&mut self) -> Step {
        self.phase = Phase::Releasing;
        match self.lease.take() {
            Some(lease) => {
                let used = self
                    .usage
                    .map_or(estimate_tokens(self.answer_chars) as u64, |u| {
                        u.input_tokens + u.output_tokens
                    });
                Step::Release {
                    lease,
                    bucket: self.bucket.clone(),
                    tokens: used.min(u32::MAX as u64) as u32,
                }
            }
            None => self.store(),
        }
    }

    /// No cached answer to serve: ask the provider, keeping its answer to store.
    fn ask_provider(&mut self) -> Step {
        self.answer = Some(String::new());
        self.acquire()
    }

    fn store(&mut self) -> Step {
        self.phase = Phase::Storing;
        match (
            self.accepted.take(),
            self.cache_key.take(),
            self.answer.take(),
        ) {
            (Some(usage), Some(key), Some(text)) if cache::cacheable(&text) => {
                Step::Store { key, text, usage }
            }
            _ => self.over(),
        }
    }

    fn over(&mut self) -> Step {
        if self.phase != Phase::Over {
            self.phase = Phase::Over;
            self.note("info", "call_ended", json!({"chars": self.answer_chars}));
        }
        Step::Finished
    }
}

pub mod history;
#[cfg(test)]
mod tests;

/// One request to `p`: thinking only where the provider takes a budget (Anthropic).
fn provider_request(
    p: &Provider,
    model: &str,
    messages: &[ChatMessage],
    tools: &[ToolDef],
    tool_choice: Option<&str>,
    thinking_tokens: Option<u32>,
) -> HttpRequest {
    let thinking = thinking_tokens.filter(|_| p.kind == ProviderKind::Anthropic);
    p.request(
        model,
        messages,
        tools,
        tool_choice,
        Some(MAX_ANSWER_TOKENS),
        thinking,
    )
}

fn too_many_rounds() -> StageFailure {
    StageFailure {
        code: FailureCode::TooManyToolRounds,
        message: format!(
            "The AI kept calling tools after {MAX_TOOL_ROUNDS} rounds of them, when it was asked \
             to finish with its summary, so this attempt was stopped. The files it wrote in this \
             attempt are dropped when the stage runs again."
        ),
        detail: format!("tool calls after {MAX_TOOL_ROUNDS} rounds and tool_choice none"),
        retryable: false,
        retry_after_ms: None,
    }
}
