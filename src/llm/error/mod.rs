//! Provider failures: what kind of failure it was, whether a retry can help, and the words a
//! user sees.
//!
//! Everything the LLM layer can report ends up as an [`LlmError`]: an HTTP status with its body
//! ([`classify_http`]), an `{"error": …}` object inside a stream ([`classify_error_object`]), a
//! malformed or truncated stream, or a transport failure the edge reports with
//! [`LlmError::new`]. `kind` drives the retry decision and the wire `code`; `detail` is for the
//! log and never contains an API key ([`redact`]).
//!
//! Here: the kinds and their classification. `Retry-After` parsing is in [`retry_after`],
//! secret redaction in [`redact`](mod@redact).

use std::fmt;

use serde_json::Value;

mod redact;
mod retry_after;

pub use redact::redact;
pub use retry_after::parse_retry_after;

/// How much of a provider's response body is kept in [`LlmError::detail`].
pub const MAX_DETAIL_BODY_CHARS: usize = 500;

impl From<ErrorKind> for crate::protocol::FailureCode {
    fn from(kind: ErrorKind) -> Self {
        use crate::protocol::FailureCode as F;
        match kind {
            ErrorKind::BadKey => F::BadKey,
            ErrorKind::QuotaExhausted => F::QuotaExhausted,
            ErrorKind::RateLimited => F::RateLimited,
            ErrorKind::Timeout => F::Timeout,
            ErrorKind::Network => F::Network,
            ErrorKind::ServerError => F::ServerError,
            ErrorKind::ContentFiltered => F::ContentFiltered,
            ErrorKind::MalformedStream => F::MalformedStream,
            ErrorKind::ContextTooLong => F::ContextTooLong,
            ErrorKind::BadRequest => F::BadRequest,
            ErrorKind::ModelNotFound => F::ModelNotFound,
        }
    }
}

/// What went wrong, as far as the user and the retry policy are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    BadKey,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Network,
    ServerError,
    ContentFiltered,
    MalformedStream,
    ContextTooLong,
    BadRequest,
    /// The provider does not know the model (or this key may not use it): a configuration
    /// mistake, so not retryable, but worth its own words because it is the usual one.
    ModelNotFound,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::BadKey,
        ErrorKind::QuotaExhausted,
        ErrorKind::RateLimited,
        ErrorKind::Timeout,
        ErrorKind::Network,
        ErrorKind::ServerError,
        ErrorKind::ContentFiltered,
        ErrorKind::MalformedStream,
        ErrorKind::ContextTooLong,
        ErrorKind::BadRequest,
        ErrorKind::ModelNotFound,
    ];

    /// Wire code (`agent_error.code`, `RUN_ERROR.code`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadKey => "bad_key",
            ErrorKind::QuotaExhausted => "quota_exhausted",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network",
            ErrorKind::ServerError => "server_error",
            ErrorKind::ContentFiltered => "content_filtered",
            ErrorKind::MalformedStream => "malformed_stream",
            ErrorKind::ContextTooLong => "context_too_long",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::ModelNotFound => "model_not_found",
        }
    }

    /// Whether the same request may succeed later. Key, quota, filter and request-shape
    /// problems will fail the same way every time, so retrying them only burns attempts.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Network
                | ErrorKind::ServerError
                | ErrorKind::MalformedStream
        )
    }

    /// Plain words for someone who has never seen an HTTP status.
    pub fn user_message(self) -> &'static str {
        match self {
            ErrorKind::BadKey => {
                "The AI provider rejected the API key. Check OPENAI_API_KEY or ANTHROPIC_API_KEY."
            }
            ErrorKind::QuotaExhausted => {
                "The AI provider account has run out of credit or quota. Add credit or raise the limit, then retry."
            }
            ErrorKind::RateLimited => {
                "The AI provider is receiving too many requests right now. BotArmy will wait and try again."
            }
            ErrorKind::Timeout => "The AI provider took too long to answer.",
            ErrorKind::Network => {
                "The connection to the AI provider was lost before the answer was complete."
            }
            ErrorKind::ServerError => "The AI provider had an internal problem.",
            ErrorKind::ContentFiltered => {
                "The AI provider's content filter blocked this answer. Rephrase the brief or the feedback."
            }
            ErrorKind::MalformedStream => {
                "The AI provider sent an answer BotArmy could not read."
            }
            ErrorKind::ContextTooLong => {
                "The brief and the earlier documents are too long for the AI model. Shorten the brief or use a model with a larger context."
            }
            ErrorKind::BadRequest => {
                "The AI provider refused the request. Check OPENAI_MODEL and OPENAI_BASE_URL."
            }
            ErrorKind::ModelNotFound => {
                "The AI provider does not offer the chosen model, or this key may not use it. Check the model names in OPENAI_MODEL or AGENT_MODELS."
            }
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One failed provider call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmError {
    pub kind: ErrorKind,
    /// For the log: status, provider message or body excerpt. Secrets redacted.
    pub detail: String,
    /// How long the provider asked us to wait (from `Retry-After`), if it said.
    pub retry_after_ms: Option<u64>,
    /// HTTP status, when the failure came with one.
    pub status: Option<u16>,
}

impl LlmError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        LlmError {
            kind,
            detail: detail.into(),
            retry_after_ms: None,
            status: None,
        }
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }

    pub fn user_message(&self) -> &'static str {
        self.kind.user_message()
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.detail)
    }
}

impl std::error::Error for LlmError {}

/// Classifies a non-success HTTP answer from the provider.
///
/// `retry_after` is the raw `Retry-After` header; `now_ms` resolves its HTTP-date form.
pub fn classify_http(status: u16, retry_after: Option<&str>, body: &str, now_ms: u64) -> LlmError {
    let info = ProviderInfo::parse(body);
    let kind = match status {
        401 | 403 => ErrorKind::BadKey,
        // OpenRouter and others answer 402 when the account has no credit left.
        402 => ErrorKind::QuotaExhausted,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::ContextTooLong,
        400..=499 if info.is_model_not_found(status) => ErrorKind::ModelNotFound,
        429 if info.is_quota() => ErrorKind::QuotaExhausted,
        429 => ErrorKind::RateLimited,
        400..=499 if info.is_context_too_long() => ErrorKind::ContextTooLong,
        400..=499 if info.is_content_filter() => ErrorKind::ContentFiltered,
        400..=499 => ErrorKind::BadRequest,
        500..=599 => ErrorKind::ServerError,
        // A redirect or an odd 2xx here means a misconfigured base URL; retrying won't fix it.
        _ => ErrorKind::BadRequest,
    };
    LlmError {
        kind,
        detail: format!("HTTP {status}: {}", body_excerpt(body)),
        retry_after_ms: retry_after.and_then(|v| parse_retry_after(v, now_ms)),
        status: Some(status),
    }
}

/// Classifies the value of an `"error"` member found inside a stream (or in a 200 body).
///
/// The HTTP status was already 200, so only the object says what happened; anything we
/// don't recognise is treated as a provider-side failure (retryable).
pub fn classify_error_object(error: &Value) -> LlmError {
    let info = ProviderInfo::from_error_value(error);
    let numeric = info.numeric_status;
    let kind = if info.is_quota() {
        ErrorKind::QuotaExhausted
    } else if info.is_context_too_long() {
        ErrorKind::ContextTooLong
    } else if info.is_model_not_found(numeric.unwrap_or(0)) {
        ErrorKind::ModelNotFound
    } else if info.is_content_filter() {
        ErrorKind::ContentFiltered
    } else if info.has_hint(&["rate_limit", "rate limit", "too many requests"])
        || numeric == Some(429)
    {
        ErrorKind::RateLimited
    } else if info.has_hint(&["invalid_api_key", "authentication", "unauthorized"])
        || matches!(numeric, Some(401 | 403))
    {
        ErrorKind::BadKey
    } else if info.has_hint(&["timeout", "timed out"]) || numeric == Some(408) {
        ErrorKind::Timeout
    } else if info.has_hint(&["invalid_request"])
        || numeric.is_some_and(|s| (400..500).contains(&s))
    {
        ErrorKind::BadRequest
    } else {
        ErrorKind::ServerError
    };
    let text = match error {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    LlmError {
        kind,
        detail: format!("error in stream: {}", body_excerpt(&text)),
        retry_after_ms: None,
        status: numeric,
    }
}

/// What an OpenAI-style error body says: `{"error":{"message","type","code"}}`, or the
/// `{"error":"message"}` shape some compatible servers use.
#[derive(Debug, Default)]
struct ProviderInfo {
    /// `code` and `type`, lowercased.
    hints: Vec<String>,
    /// The message, lowercased.
    message: String,
    /// A numeric `code`/`status` some servers put in the object.
    numeric_status: Option<u16>,
}

impl ProviderInfo {
    fn parse(body: &str) -> ProviderInfo {
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(obj)) => match obj.get("error") {
                Some(err) => ProviderInfo::from_error_value(err),
                None => ProviderInfo::from_error_value(&Value::Object(obj)),
            },
            // Not JSON (an HTML error page, plain text): only the words are left to go by.
            _ => ProviderInfo {
                message: body.to_lowercase(),
                ..ProviderInfo::default()
            },
        }
    }

    fn from_error_value(err: &Value) -> ProviderInfo {
        let mut info = ProviderInfo::default();
        match err {
            Value::String(s) => info.message = s.to_lowercase(),
            Value::Object(obj) => {
                if let Some(m) = obj.get("message").and_then(Value::as_str) {
                    info.message = m.to_lowercase();
                }
                for key in ["code", "type", "status"] {
                    match obj.get(key) {
                        Some(Value::String(s)) => info.hints.push(s.to_lowercase()),
                        Some(Value::Number(n)) => {
                            info.numeric_status = n.as_u64().and_then(|n| u16::try_from(n).ok())
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        info
    }

    fn has_hint(&self, needles: &[&str]) -> bool {
        needles
            .iter()
            .any(|n| self.hints.iter().any(|h| h.contains(n)) || self.message.contains(n))
    }

    fn is_quota(&self) -> bool {
        self.has_hint(&["insufficient_quota", "exceeded your current quota"])
    }

    fn is_context_too_long(&self) -> bool {
        self.has_hint(&[
            "context_length_exceeded",
            "maximum context length",
            "context window",
            "context length",
        ])
    }

    /// OpenAI's `model_not_found` code (sent with 404, sometimes 400), or a 404 whose words
    /// say a model is missing (Ollama: `model "x" not found, try pulling it first`).
    fn is_model_not_found(&self, status: u16) -> bool {
        self.has_hint(&["model_not_found"])
            || (status == 404
                && self.message.contains("model")
                && (self.message.contains("not found") || self.message.contains("does not exist")))
    }

    fn is_content_filter(&self) -> bool {
        self.has_hint(&[
            "content_filter",
            "content_policy",
            "content management policy",
        ])
    }
}

/// The body as one line, secrets redacted, at most [`MAX_DETAIL_BODY_CHARS`] chars.
fn body_excerpt(body: &str) -> String {
    let one_line: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = redact(&one_line, &[]);
    if clean.is_empty() {
        return "(empty body)".to_string();
    }
    if clean.chars().count() <= MAX_DETAIL_BODY_CHARS {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_DETAIL_BODY_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn codes_are_snake_case_unique_and_round_trip() {
        let codes: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(
            codes,
            [
                "bad_key",
                "quota_exhausted",
                "rate_limited",
                "timeout",
                "network",
                "server_error",
                "content_filtered",
                "malformed_stream",
                "context_too_long",
                "bad_request",
                "model_not_found"
            ]
        );
    }

    #[test]
    fn retryable_matches_protocol() {
        let retryable: Vec<&str> = ErrorKind::ALL
            .iter()
            .filter(|k| k.retryable())
            .map(|k| k.code())
            .collect();
        assert_eq!(
            retryable,
            [
                "rate_limited",
                "timeout",
                "network",
                "server_error",
                "malformed_stream"
            ]
        );
    }

    #[test]
    fn user_messages_are_plain_sentences() {
        for k in ErrorKind::ALL {
            let m = k.user_message();
            assert!(m.ends_with('.'), "{m}");
            assert!(!m.contains('_') || m.contains("OPENAI_"), "jargon in {m}");
            assert!(!m.contains("HTTP"), "{m}");
        }
        assert!(ErrorKind::BadKey.user_message().contains("OPENAI_API_KEY"));
    }

    #[test]
    fn display_has_code_and_detail() {
        let e = LlmError::new(ErrorKind::Network, "stream ended early");
        assert_eq!(e.to_string(), "network: stream ended early");
        assert!(e.retryable());
        assert_eq!(e.code(), "network");
    }

    #[test]
    fn auth_failures_are_bad_key() {
        for status in [401, 403] {
            let e = classify_http(
                status,
                None,
                r#"{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}"#,
                NOW,
            );
            assert_eq!(e.kind, ErrorKind::BadKey);
            assert_eq!(e.status, Some(status));
            assert!(!e.retryable());
        }
    }

    #[test]
    fn quota_versus_rate_limit() {
        let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(
            classify_http(429, None, quota, NOW).kind,
            ErrorKind::QuotaExhausted
        );
        let by_type_only = r#"{"error":{"message":"no money","type":"insufficient_quota"}}"#;
        assert_eq!(
            classify_http(429, None, by_type_only, NOW).kind,
            ErrorKind::QuotaExhausted
        );
        let rate = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","code":"rate_limit_exceeded"}}"#;
        let e = classify_http(429, Some("7"), rate, NOW);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after_ms, Some(7000));
        assert_eq!(
            classify_http(429, None, "", NOW).kind,
            ErrorKind::RateLimited
        );
        assert_eq!(
            classify_http(402, None, "", NOW).kind,
            ErrorKind::QuotaExhausted
        );
    }

    #[test]
    fn bad_requests_by_cause() {
        let ctx = r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        assert_eq!(
            classify_http(400, None, ctx, NOW).kind,
            ErrorKind::ContextTooLong
        );
        let ctx_msg_only = r#"{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","code":null}}"#;
        assert_eq!(
            classify_http(400, None, ctx_msg_only, NOW).kind,
            ErrorKind::ContextTooLong
        );
        let filter = r#"{"error":{"message":"The response was filtered","code":"content_filter"}}"#;
        assert_eq!(
            classify_http(400, None, filter, NOW).kind,
            ErrorKind::ContentFiltered
        );
        let policy = r#"{"error":{"message":"Your request was rejected","code":"content_policy_violation"}}"#;
        assert_eq!(
            classify_http(400, None, policy, NOW).kind,
            ErrorKind::ContentFiltered
        );
        let model =
            r#"{"error":{"message":"The model `gpt-9` does not exist","code":"model_not_found"}}"#;
        assert_eq!(
            classify_http(404, None, model, NOW).kind,
            ErrorKind::ModelNotFound
        );
        assert_eq!(
            classify_http(400, None, "bad", NOW).kind,
            ErrorKind::BadRequest
        );
        assert_eq!(
            classify_http(422, None, "{}", NOW).kind,
            ErrorKind::BadRequest
        );
        // Ollama's string-shaped error.
        let ollama = r#"{"error":"context length exceeded"}"#;
        assert_eq!(
            classify_http(400, None, ollama, NOW).kind,
            ErrorKind::ContextTooLong
        );
    }

    #[test]
    fn a_missing_model_is_its_own_kind_and_not_retried() {
        let openai = r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","code":"model_not_found"}}"#;
        for status in [400, 404] {
            let e = classify_http(status, None, openai, NOW);
            assert_eq!(e.kind, ErrorKind::ModelNotFound, "{status}");
            assert!(!e.retryable());
        }
        let ollama = r#"{"error":"model \"llama9\" not found, try pulling it first"}"#;
        assert_eq!(
            classify_http(404, None, ollama, NOW).kind,
            ErrorKind::ModelNotFound
        );
        // A 404 that says nothing about a model is a wrong URL, not a wrong model.
        assert_eq!(
            classify_http(404, None, "<html>Not Found</html>", NOW).kind,
            ErrorKind::BadRequest
        );
        // Inside a stream, by code.
        assert_eq!(
            classify_error_object(&serde_json::json!({"code": "model_not_found", "message": "no"}))
                .kind,
            ErrorKind::ModelNotFound
        );
        assert!(ErrorKind::ModelNotFound
            .user_message()
            .contains("AGENT_MODELS"));
    }

    #[test]
    fn timeouts_and_server_errors() {
        assert_eq!(classify_http(408, None, "", NOW).kind, ErrorKind::Timeout);
        for s in [500, 502, 503, 504, 529, 599] {
            let e = classify_http(s, Some("2"), "<html>oops</html>", NOW);
            assert_eq!(e.kind, ErrorKind::ServerError, "{s}");
            assert_eq!(e.retry_after_ms, Some(2000));
            assert!(e.retryable());
        }
        assert_eq!(
            classify_http(302, None, "", NOW).kind,
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn detail_keeps_status_and_truncated_redacted_body() {
        let e = classify_http(500, None, "", NOW);
        assert_eq!(e.detail, "HTTP 500: (empty body)");
        let long = "x".repeat(2000);
        let e = classify_http(500, None, &long, NOW);
        let body = e.detail.strip_prefix("HTTP 500: ").unwrap();
        assert_eq!(body.chars().count(), MAX_DETAIL_BODY_CHARS);
        assert!(body.ends_with('…'));
        let key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456";
        let e = classify_http(
            401,
            None,
            &format!("{{\"error\":{{\"message\":\"bad key {key}\"}}}}\n"),
            NOW,
        );
        assert!(!e.detail.contains(key), "{}", e.detail);
        assert!(e.detail.contains("[redacted]"));
        assert!(!e.detail.contains('\n'));
    }

    #[test]
    fn stream_error_objects() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let cases = [
            (
                r#"{"message":"The server had an error","type":"server_error"}"#,
                ErrorKind::ServerError,
            ),
            (
                r#"{"message":"Rate limit reached","type":"rate_limit_error"}"#,
                ErrorKind::RateLimited,
            ),
            (
                r#"{"message":"quota","code":"insufficient_quota"}"#,
                ErrorKind::QuotaExhausted,
            ),
            (
                r#"{"message":"too long","code":"context_length_exceeded"}"#,
                ErrorKind::ContextTooLong,
            ),
            (
                r#"{"message":"blocked","code":"content_filter"}"#,
                ErrorKind::ContentFiltered,
            ),
            (
                r#"{"message":"bad key","code":"invalid_api_key"}"#,
                ErrorKind::BadKey,
            ),
            (
                r#"{"message":"nope","type":"invalid_request_error"}"#,
                ErrorKind::BadRequest,
            ),
            (
                r#"{"message":"Overloaded","code":529}"#,
                ErrorKind::ServerError,
            ),
            (
                r#"{"message":"slow down","code":429}"#,
                ErrorKind::RateLimited,
            ),
            (r#"{"message":"upstream timed out"}"#, ErrorKind::Timeout),
            (r#""something broke""#, ErrorKind::ServerError),
        ];
        for (json, kind) in cases {
            let e = classify_error_object(&v(json));
            assert_eq!(e.kind, kind, "{json}");
            assert!(e.detail.starts_with("error in stream: "), "{}", e.detail);
        }
        assert_eq!(
            classify_error_object(&v(r#"{"code":529}"#)).status,
            Some(529)
        );
    }

    proptest! {
        #[test]
        fn classify_never_panics_and_keeps_status(status in 0u16..1000, body in ".{0,600}", ra in proptest::option::of(".{0,40}")) {
            let e = classify_http(status, ra.as_deref(), &body, NOW);
            prop_assert_eq!(e.status, Some(status));
            let prefix = format!("HTTP {}: ", status);
            prop_assert!(e.detail.starts_with(&prefix));
            prop_assert!(e.detail.chars().count() <= MAX_DETAIL_BODY_CHARS + 12);
        }

    }
}
