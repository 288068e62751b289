//! Provider failures: what kind of failure it was, whether a retry can help, and the words a
//! user sees.
//!
//! Everything the LLM layer can report ends up as an [`LlmError`]: an HTTP status with its body
//! ([`classify_http`]), an `{"error": …}` object inside a stream ([`classify_error_object`]), a
//! malformed or truncated stream, or a transport failure the edge reports with
//! [`LlmError::new`]. `kind` drives the retry decision and the wire `code`; `detail` is for the
//! log and never contains an API key ([`redact`]).

use std::fmt;

use serde_json::Value;

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

/// Parses a `Retry-After` value (delta-seconds or HTTP-date) into milliseconds from `now_ms`.
/// A date in the past means "now" (0). Unparseable values give `None`.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of failing: the backoff caps them.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    // Fractional seconds are not in RFC 9110, but some proxies send them.
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() == 1
    {
        let secs: f64 = v.parse().ok()?;
        return Some((secs * 1000.0).ceil() as u64);
    }
    let at = parse_http_date(v)?;
    Some(at.saturating_sub(now_ms))
}

/// Parses an HTTP-date into epoch milliseconds: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
/// GMT`), and the obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6
/// 08:49:37 1994`) forms RFC 9110 says recipients must accept.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        [wd, d, m, y, t, "GMT"] if wd.ends_with(',') && is_weekday(&wd[..wd.len() - 1], false) => {
            (d.parse().ok()?, month_number(m)?, y.parse().ok()?, *t)
        }
        [wd, dmy, t, "GMT"] if wd.ends_with(',') && is_weekday(&wd[..wd.len() - 1], true) => {
            let mut it = dmy.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || y.len() != 2 {
                return None;
            }
            let yy: i64 = y.parse().ok()?;
            // Two-digit years: pick the century that is not far in the future.
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (d.parse().ok()?, month_number(m)?, year, *t)
        }
        [wd, m, d, t, y] if is_weekday(wd, false) => {
            (d.parse().ok()?, month_number(m)?, y.parse().ok()?, *t)
        }
        _ => return None,
    };
    let (hour, minute, second) = parse_time(time)?;
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(secs).ok()?.checked_mul(1000)
}

fn is_weekday(s: &str, long: bool) -> bool {
    const SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    if long {
        LONG.contains(&s)
    } else {
        SHORT.contains(&s)
    }
}

fn month_number(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == s).map(|i| i as i64 + 1)
}

fn parse_time(t: &str) -> Option<(i64, i64, i64)> {
    let b = t.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = &t[r];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (h, m, s) = (num(0..2)?, num(3..5)?, num(6..8)?);
    // 60 is a leap second.
    (h < 24 && m < 60 && s <= 60).then_some((h, m, s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Replaces every non-empty `secret`, and anything shaped like an OpenAI key (`sk-` followed
/// by 16 or more key characters), with `[redacted]`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    // Longest first, so a secret that contains another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s) {
            out = out.replace(s, "[redacted]");
        }
    }
    redact_key_shapes(&out)
}

fn redact_key_shapes(text: &str) -> String {
    const MIN_KEY_CHARS: usize = 16;
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("sk-") {
        // Only at a word start: "task-…" or "disk-…" are not keys.
        let at_word_start = rest[..pos]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
        let after = &rest[pos + 3..];
        let key_len = after.find(|c: char| !is_key_char(c)).unwrap_or(after.len());
        if at_word_start && key_len >= MIN_KEY_CHARS {
            out.push_str(&rest[..pos]);
            out.push_str("[redacted]");
            rest = &after[key_len..];
        } else {
            out.push_str(&rest[..pos + 3]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
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
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("0", NOW), Some(0));
        assert_eq!(parse_retry_after(" 120 ", NOW), Some(120_000));
        assert_eq!(parse_retry_after("1.5", NOW), Some(1500));
        assert_eq!(
            parse_retry_after("99999999999999999999999", NOW),
            Some(u64::MAX)
        );
        assert_eq!(parse_retry_after("", NOW), None);
        assert_eq!(parse_retry_after("-5", NOW), None);
        assert_eq!(parse_retry_after("soon", NOW), None);
        assert_eq!(parse_retry_after("1.2.3", NOW), None);
        // 2023-11-14T22:13:20Z is 1_700_000_000 s.
        let now = 1_700_000_000_000;
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(
            parse_retry_after("Tuesday, 14-Nov-23 22:14:20 GMT", now),
            Some(60_000)
        );
        assert_eq!(
            parse_retry_after("Tue Nov 14 22:13:21 2023", now),
            Some(1000)
        );
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000_000)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT"), None);
        assert_eq!(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 8:49:37 GMT"), None);
        assert_eq!(parse_http_date(""), None);
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

    #[test]
    fn redact_secrets_and_key_shapes() {
        assert_eq!(
            redact("token abc123 here", &["abc123"]),
            "token [redacted] here"
        );
        assert_eq!(
            redact("abc and abcdef", &["abc", "abcdef"]),
            "[redacted] and [redacted]"
        );
        assert_eq!(redact("nothing", &["", "zzz"]), "nothing");
        assert_eq!(
            redact("key=sk-abcdefghijklmnop1234 end", &[]),
            "key=[redacted] end"
        );
        assert_eq!(
            redact("Bearer sk-proj-AbC_dEf-123456789012345678", &[]),
            "Bearer [redacted]"
        );
        // Too short, or not at a word start: left alone.
        assert_eq!(
            redact("sk-learn is a library", &[]),
            "sk-learn is a library"
        );
        assert_eq!(
            redact("task-abcdefghijklmnopqrstuvwxyz", &[]),
            "task-abcdefghijklmnopqrstuvwxyz"
        );
        assert_eq!(redact("é sk-é", &[]), "é sk-é");
    }

    proptest! {
        #[test]
        fn redact_removes_every_secret(
            text in "[a-zA-Z0-9 .,]{0,200}",
            secrets in proptest::collection::vec("[A-Z0-9]{6,12}", 0..4),
            insert_at in 0usize..200,
        ) {
            let mut t = text.clone();
            if let Some(s) = secrets.first() {
                let at = insert_at.min(t.len());
                t.insert_str(at, s);
            }
            let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let out = redact(&t, &refs);
            for s in &secrets {
                prop_assert!(!out.contains(s.as_str()), "{} still in {}", s, out);
            }
            if !secrets.is_empty() && secrets.iter().any(|s| t.contains(s.as_str())) {
                prop_assert!(out.contains("[redacted]"));
            }
        }

        #[test]
        fn classify_never_panics_and_keeps_status(status in 0u16..1000, body in ".{0,600}", ra in proptest::option::of(".{0,40}")) {
            let e = classify_http(status, ra.as_deref(), &body, NOW);
            prop_assert_eq!(e.status, Some(status));
            let prefix = format!("HTTP {}: ", status);
            prop_assert!(e.detail.starts_with(&prefix));
            prop_assert!(e.detail.chars().count() <= MAX_DETAIL_BODY_CHARS + 12);
        }

        #[test]
        fn imf_fixdate_round_trips(secs in 0u64..253_402_300_799) {
            let days = (secs / 86_400) as i64;
            let (y, m, d) = civil_from_days(days);
            let rem = secs % 86_400;
            let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
            let mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m as usize - 1];
            let s = format!("{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT", rem / 3600, rem / 60 % 60, rem % 60);
            prop_assert_eq!(parse_http_date(&s), Some(secs * 1000), "{}", s);
        }
    }

    /// Inverse of `days_from_civil`, for the round-trip test only.
    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (if m <= 2 { y + 1 } else { y }, m, d)
    }
}
