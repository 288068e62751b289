//! The typed wire: the value of every `CUSTOM` event the session logs, every connection frame
//! (unlogged, one socket only), the closed code sets (command rejections, provider failures,
//! warnings, interrupt and queue reasons, HTTP error codes) and the approval gate id.
//!
//! These types are the one source of the JSON: the session machine and the edge build them and
//! turn them into [`Event`]s with `.into()`, and the frontend's TypeScript types are generated
//! from them by ts-rs (a dev-dependency: `cargo test` checks that
//! `frontend/src/protocol/generated/` is current and `UPDATE_GOLDEN=1 cargo test --lib
//! protocol::wire` rewrites it). Golden fixtures, one file per event and frame, live in
//! `tests/fixtures/wire/`; the Rust tests below and the frontend's reducer tests both read them.
//!
//! A custom value goes through `serde_json::Value` on its way into an [`Event`], so its keys
//! come out sorted, exactly as the `json!` literals these types replaced wrote them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::Event;
use super::Stage;

/// A closed set of wire strings: an enum with `as_str`, `ALL`, `parse` and comparison with
/// `&str`, whose serde names are exactly those strings.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $s:tt, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(test, derive(ts_rs::TS))]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $s)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::parse(s).ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)))
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

// ---- Codes and reasons ----------------------------------------------------------------------

wire_enum! {
    /// Why a command or frame was refused (`rejected.code`). Nothing changed.
    pub enum RejectionCode {
        InvalidJson = "invalid_json",
        BinaryFrame = "binary_frame",
        NotAnObject = "not_an_object",
        /// Over 64 KiB (the socket is closed with 1009 before this is ever sent).
        FrameTooLarge = "frame_too_large",
        UnknownType = "unknown_type",
        MissingField = "missing_field",
        InvalidField = "invalid_field",
        BriefEmpty = "brief_empty",
        BriefTooLong = "brief_too_long",
        FeedbackEmpty = "feedback_empty",
        FeedbackTooLong = "feedback_too_long",
        UnknownStage = "unknown_stage",
        /// The command does not fit the session's state now; the message says why.
        InvalidState = "invalid_state",
        /// A command before `hello`, or before `caught_up`.
        HelloRequired = "hello_required",
        /// `hello` again too often (burst 3, then one per 5 s).
        ResyncRateLimited = "resync_rate_limited",
        /// An idempotency key reused for a different command.
        IdReused = "id_reused",
        /// A command past the socket's frame rate (20/s, burst 40): not applied.
        RateLimited = "rate_limited",
        BudgetExhausted = "budget_exhausted",
        /// A command on a view-only link.
        ReadOnly = "read_only",
    }
}

wire_enum! {
    /// Why an attempt or a run failed (`agent_error.code`, `RUN_ERROR.code`, `lastError.code`).
    pub enum FailureCode {
        BadKey = "bad_key",
        QuotaExhausted = "quota_exhausted",
        RateLimited = "rate_limited",
        Timeout = "timeout",
        Network = "network",
        ServerError = "server_error",
        ContentFiltered = "content_filtered",
        MalformedStream = "malformed_stream",
        ContextTooLong = "context_too_long",
        BadRequest = "bad_request",
        ModelNotFound = "model_not_found",
        /// The session's token budget is used up.
        BudgetExhausted = "budget_exhausted",
        /// A retryable failure happened on every attempt (`RUN_ERROR` only).
        RetriesExhausted = "retries_exhausted",
        /// The answer passed the per-stage size limit.
        AnswerTooLong = "answer_too_long",
        /// The model kept calling tools after the last round (`MAX_TOOL_ROUNDS`).
        TooManyToolRounds = "too_many_tool_rounds",
        /// The attempt's reasoning passed its size limit (`MAX_REASONING_BYTES`).
        ReasoningTooLong = "reasoning_too_long",
        /// The attempt kept streaming past `STAGE_MAX_MS`.
        StageTooLong = "stage_too_long",
    }
}

impl FailureCode {
    /// Whether BotArmy retries an attempt that failed this way.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureCode::RateLimited
                | FailureCode::Timeout
                | FailureCode::Network
                | FailureCode::ServerError
                | FailureCode::MalformedStream
        )
    }
}

wire_enum! {
    /// The `code` of every HTTP error body, `{"error": {"code", "message"}}` (the router's, the
    /// session's, the admission object's and AG-UI over HTTP's, whose command rejections are
    /// [`RejectionCode`]s: each of those is one of these too).
    pub enum HttpErrorCode {
        // Who may ask (src/access.rs).
        HostNotAllowed = "host_not_allowed",
        OriginNotAllowed = "origin_not_allowed",
        Unauthorized = "unauthorized",
        /// Too many wrong access tokens from one address: refused for a minute.
        TooManyFailures = "too_many_failures",
        /// Anything but a read through a view-only link.
        ReadOnly = "read_only",
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        /// A plain GET of the WebSocket endpoint.
        UpgradeRequired = "upgrade_required",
        /// "Your sessions" without an owner to name the list.
        OwnerRequired = "owner_required",
        // The request.
        BodyTooLarge = "body_too_large",
        BadRequest = "bad_request",
        InvalidJson = "invalid_json",
        NotAnObject = "not_an_object",
        MissingField = "missing_field",
        InvalidField = "invalid_field",
        // Admission (src/admission.rs) and the session's own bounds.
        TooManySessions = "too_many_sessions",
        SessionLimitReached = "session_limit_reached",
        TooManyConnections = "too_many_connections",
        TooManyStreams = "too_many_streams",
        TooManyViews = "too_many_views",
        // Reads.
        /// The log no longer holds the events asked for (410).
        LogTruncated = "log_truncated",
        NoArtifact = "no_artifact",
        UnknownStage = "unknown_stage",
        // AG-UI over HTTP (src/protocol/agui_http.rs).
        ThreadMismatch = "thread_mismatch",
        UnknownInterrupt = "unknown_interrupt",
        InterruptsUnanswered = "interrupts_unanswered",
        RunNotRemembered = "run_not_remembered",
        // Command rejections that only AG-UI over HTTP answers as HTTP errors.
        BinaryFrame = "binary_frame",
        FrameTooLarge = "frame_too_large",
        UnknownType = "unknown_type",
        BriefEmpty = "brief_empty",
        BriefTooLong = "brief_too_long",
        FeedbackEmpty = "feedback_empty",
        FeedbackTooLong = "feedback_too_long",
        InvalidState = "invalid_state",
        HelloRequired = "hello_required",
        ResyncRateLimited = "resync_rate_limited",
        IdReused = "id_reused",
        RateLimited = "rate_limited",
        BudgetExhausted = "budget_exhausted",
        // The server.
        /// The session did not answer a read in time (503, `Retry-After`).
        SessionBusy = "session_busy",
        /// An owner's list could not be updated (503).
        IndexUnavailable = "index_unavailable",
        ConfigInvalid = "config_invalid",
        Internal = "internal",
    }
}

impl From<RejectionCode> for HttpErrorCode {
    fn from(c: RejectionCode) -> HttpErrorCode {
        // Every rejection code is an HTTP code of the same name (a test checks them all).
        HttpErrorCode::parse(c.as_str()).unwrap_or(HttpErrorCode::BadRequest)
    }
}

/// A refusal, ready for an HTTP answer: `{"error": {"code", "message"}}` with `status`, and
/// `Retry-After` when it has one. Also what the admission object answers (`crate::admission`),
/// as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub status: u16,
    pub code: HttpErrorCode,
    pub message: String,
    #[serde(rename = "retryAfterMs")]
    pub retry_after_ms: Option<u64>,
}

impl Refusal {
    pub fn new(status: u16, code: HttpErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1))
    }
}

wire_enum! {
    /// `warning.code`.
    pub enum WarningCode {
        /// Too many frames: a 1008 close follows if it goes on.
        RateLimited = "rate_limited",
    }
}

wire_enum! {
    /// Why a message was closed early (`message_interrupted.reason`).
    pub enum InterruptReason {
        /// The attempt failed and will be retried.
        Retry = "retry",
        /// The run was cancelled.
        Cancelled = "cancelled",
        /// The server restarted mid-answer; the same attempt starts again.
        Restart = "restart",
        /// The attempt failed for good.
        Failed = "failed",
        /// The attempt went back in the queue (an `agent_queued` follows).
        Deferred = "deferred",
    }
}

wire_enum! {
    /// Why a stage waits (`agent_queued.reason`).
    pub enum QueueReason {
        /// BotArmy's global provider limit is full.
        ProviderLimit = "provider_limit",
        /// A `retry` came before the time the provider's last `Retry-After` asked for.
        ProviderRetryAfter = "provider_retry_after",
    }
}

wire_enum! {
    /// What follows `welcome`.
    pub enum WelcomeMode {
        /// The logged events after the client's `lastSeq`.
        Replay = "replay",
        /// A state and messages snapshot.
        Snapshot = "snapshot",
    }
}

wire_enum! {
    /// Why a `hello` is answered with a snapshot (`welcome.reason`).
    pub enum SnapshotReason {
        /// The session has no events yet.
        Empty = "empty",
        /// The log no longer holds `lastSeq + 1` (retention).
        Truncated = "log_truncated",
        /// The client claims events the server never had (another session's numbering).
        Ahead = "client_ahead",
        /// The server restarted after sending events it had not stored yet, and this client
        /// may have seen some of them: their numbers now belong to other events.
        Restarted = "server_restarted",
    }
}

// ---- Approval gates ----------------------------------------------------------------------

/// The id of the approval gate after `stage`'s artifact `version`: `gate-<stage>-<version>`
/// (the interrupt's `id` in `RUN_FINISHED`, and `state.gate.id`).
pub fn gate_id(stage: Stage, version: u32) -> String {
    format!("gate-{}-{version}", stage.name())
}

/// The stage and version a gate id names, if it is one.
pub fn parse_gate_id(id: &str) -> Option<(Stage, u32)> {
    let (stage, version) = id.strip_prefix("gate-")?.split_once('-')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((Stage::parse(stage)?, version.parse().ok()?))
}

// ---- Logged CUSTOM values ----------------------------------------------------------------

/// `artifact`: an agent's artifact version was saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ArtifactValue {
    pub stage: Stage,
    pub version: u32,
    /// Length of the Markdown in characters.
    pub chars: u64,
}

/// `agent_error`: an attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AgentErrorValue {
    pub stage: Stage,
    pub code: FailureCode,
    /// Plain words for the user.
    pub message: String,
    /// Technical detail for the log and the "details" toggle (never a secret).
    pub detail: String,
    pub retryable: bool,
    /// Epoch ms of the automatic retry, or null when there is none.
    pub next_retry_at: Option<u64>,
    /// The attempt that failed (1-based; 0 when none was started).
    pub attempt: u32,
}

/// `message_interrupted`: the message just ended was closed early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MessageInterruptedValue {
    pub message_id: String,
    pub stage: Stage,
    pub reason: InterruptReason,
}

/// `agent_queued`: the stage waits (not counted as an attempt) and starts by itself at
/// `nextRetryAt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AgentQueuedValue {
    pub stage: Stage,
    pub reason: QueueReason,
    pub message: String,
    pub next_retry_at: u64,
}

/// A `CUSTOM` event of the session's log (it carries a `seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "name", content = "value", rename_all = "snake_case")]
pub enum LoggedCustom {
    Artifact(ArtifactValue),
    AgentError(AgentErrorValue),
    MessageInterrupted(MessageInterruptedValue),
    AgentQueued(AgentQueuedValue),
}

impl LoggedCustom {
    pub const NAMES: &'static [&'static str] = &[
        "artifact",
        "agent_error",
        "message_interrupted",
        "agent_queued",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            LoggedCustom::Artifact(_) => "artifact",
            LoggedCustom::AgentError(_) => "agent_error",
            LoggedCustom::MessageInterrupted(_) => "message_interrupted",
            LoggedCustom::AgentQueued(_) => "agent_queued",
        }
    }
}

// ---- Connection frames (no seq, not logged) ------------------------------------------------

/// Flow control offered in `welcome` (the client then acks; see `docs/protocol.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct FlowValue {
    /// Unacknowledged bytes after which the server closes the socket with 4008.
    pub window: u64,
    /// How far past the last ack the server sends catch-up before it waits for the next ack.
    pub page: u64,
}

/// `welcome`: the first answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct WelcomeValue {
    pub session_id: String,
    pub demo: bool,
    pub model: String,
    pub last_seq: u64,
    /// The numbering `last_seq` and the events that follow belong to: send it back in the
    /// next `hello`. It changes only when the server restarted while streaming.
    pub epoch: u64,
    pub mode: WelcomeMode,
    /// Snapshot mode only: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<SnapshotReason>,
    /// Absent on a server without flow control (then the client never acks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowValue>,
    /// True on a view-only link: every command is refused `read_only`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub read_only: bool,
}

/// `caught_up`: replay (or snapshot) is done; live events follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct CaughtUpValue {
    pub last_seq: u64,
    /// K > 0: the snapshot left out the K oldest messages (bounded history).
    #[serde(default)]
    pub omitted_messages: u64,
}

/// `ack`: a command was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AckValue {
    /// The command's idempotency key (null without one).
    pub id: Option<String>,
    /// The command's `type`.
    pub command: String,
    /// The key was seen before: the command was applied once, earlier.
    pub duplicate: bool,
}

/// `rejected`: a command or frame was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct RejectedValue {
    pub id: Option<String>,
    /// The command's `type`, when it could be read.
    pub command: Option<String>,
    pub code: RejectionCode,
    pub message: String,
}

/// `warning`: e.g. `rate_limited` before a 1008 close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct WarningValue {
    pub code: WarningCode,
    pub message: String,
}

/// `pong`: the answer to a JSON `ping`; `t` is the server's clock in epoch ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PongValue {
    pub t: u64,
}

/// A `CUSTOM` connection frame: sent to one socket, never logged, no `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "name", content = "value", rename_all = "snake_case")]
pub enum ConnectionCustom {
    Welcome(WelcomeValue),
    CaughtUp(CaughtUpValue),
    Ack(AckValue),
    Rejected(RejectedValue),
    Warning(WarningValue),
    Pong(PongValue),
}

impl ConnectionCustom {
    pub const NAMES: &'static [&'static str] =
        &["welcome", "caught_up", "ack", "rejected", "warning", "pong"];

    pub fn name(&self) -> &'static str {
        match self {
            ConnectionCustom::Welcome(_) => "welcome",
            ConnectionCustom::CaughtUp(_) => "caught_up",
            ConnectionCustom::Ack(_) => "ack",
            ConnectionCustom::Rejected(_) => "rejected",
            ConnectionCustom::Warning(_) => "warning",
            ConnectionCustom::Pong(_) => "pong",
        }
    }
}

// ---- To and from events ----------------------------------------------------------------------

/// `{"name": …, "value": …}` → `Event::Custom` (keys sorted, as `json!` wrote them).
fn to_event<T: Serialize>(tagged: &T) -> Event {
    let Value::Object(mut obj) = serde_json::to_value(tagged).expect("wire values serialize")
    else {
        unreachable!("adjacently tagged enums serialize to objects")
    };
    let name = match obj.remove("name") {
        Some(Value::String(s)) => s,
        _ => unreachable!("tagged with a name"),
    };
    Event::Custom {
        name,
        value: obj.remove("value").unwrap_or(Value::Null),
    }
}

fn from_event<T: for<'de> Deserialize<'de>>(event: &Event) -> Option<Result<T, serde_json::Error>> {
    let Event::Custom { name, value } = event else {
        return None;
    };
    Some(serde_json::from_value(
        serde_json::json!({"name": name, "value": value}),
    ))
}

impl From<LoggedCustom> for Event {
    fn from(c: LoggedCustom) -> Event {
        to_event(&c)
    }
}

impl From<ConnectionCustom> for Event {
    fn from(c: ConnectionCustom) -> Event {
        to_event(&c)
    }
}

impl LoggedCustom {
    /// The typed value of a logged `CUSTOM` event; `None` for other events.
    pub fn from_event(event: &Event) -> Option<Result<LoggedCustom, serde_json::Error>> {
        from_event(event)
    }
}

impl ConnectionCustom {
    /// The typed value of a `CUSTOM` connection frame; `None` for other events.
    pub fn from_event(event: &Event) -> Option<Result<ConnectionCustom, serde_json::Error>> {
        from_event(event)
    }
}

#[cfg(test)]
mod tests;
