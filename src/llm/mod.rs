//! Talking to the LLM provider, without doing any I/O.
//!
//! The edge layer sends the request and feeds the response bytes in; everything that decides
//! something lives here, tested natively:
//!
//! - [`stream`]: [`StreamItem`], what every provider's streamed answer decodes into (text,
//!   reasoning, tool calls, usage and the end, in stream order), and the reading of the
//!   response body both decoders share.
//! - [`openai`]: request URL and body, and the streamed answer decoder ([`StreamDecoder`]).
//! - [`tools`]: tool definitions we offer, the calls the model makes, and how streamed calls
//!   are reassembled from their fragments.
//! - [`anthropic`]: the Anthropic Messages API: request, streamed answer decoder
//!   ([`AnthropicDecoder`], the same items as the OpenAI one), error classification.
//! - [`sse`]: the incremental server-sent-events parser the decoders are built on.
//! - [`error`]: failure classification, user-facing wording, `Retry-After`, secret redaction.
//! - [`backoff`]: full-jitter exponential retry delays.
//! - [`providers`]: which provider and model each stage uses (`AGENT_MODELS`), per provider
//!   the request, decoder and error rules, and the model catalog for the UI.
//! - [`price`]: model prices, the cost of a call in integer micro-dollars, the dollar budget.
//! - [`cache`]: the answer cache's key, scope, expiry and size rules (its own Durable Objects).
//! - [`ratelimit`]: the provider-wide request/token/concurrency limiter (its own Durable Object).
//!
//! The demo provider (no API key) is in [`crate::agents::demo`].

pub mod anthropic;
pub mod backoff;
pub mod cache;
pub mod error;
pub mod inbox;
pub mod limiter_route;
pub mod openai;
pub mod price;
pub mod providers;
pub mod ratelimit;
pub mod sse;
pub mod stream;
pub mod tools;

pub use anthropic::AnthropicDecoder;
pub use backoff::retry_delay_ms;
pub use cache::CacheScope;
pub use error::{classify_http, redact, ErrorKind, LlmError};
pub use openai::{
    chat_request_body, chat_request_body_with_tools, chat_url, estimate_tokens, ChatMessage,
    StreamDecoder, DEFAULT_BASE_URL, DEFAULT_MODEL,
};
pub use price::{
    check_budget, BudgetCheck, Cost, MicroUsd, Price, PriceTable, StageCosts, TokenUsage,
};
pub use providers::{
    Decoder, HttpRequest, ModelCatalog, ModelChoice, Provider, ProviderKind, Providers,
};
pub use ratelimit::ProviderLimiter;
pub use sse::{SseEvent, SseParser};
pub use stream::StreamItem;
pub use tools::{ToolCall, ToolCallAssembler, ToolDef};
