//! The answer cache's rules: which calls may be answered from it, under which key, and when an
//! entry is dropped. The entries live in the `ResponseCacheDo` Durable Objects (the edge),
//! sharded by the key's first hex digit.
//!
//! - **Key**: SHA-256 of a version tag, the scope, the provider URL and the exact request body
//!   the provider would get (model, role prompt, brief, approved artifacts, feedback,
//!   `max_tokens`). Editing a role prompt, changing the model or the endpoint, or a new
//!   BotArmy request format therefore misses the old entries: nothing has to be purged.
//! - **Scope** (`LLM_CACHE`): `session` (default) mixes the session id into the key, so only
//!   the same session hits (a new run with the same brief after a cancel, a failure or a
//!   completed plan reuses the stages whose inputs did not change); `global` shares answers
//!   between sessions with identical inputs, which saves the most but lets one user learn,
//!   from a fast answer, that someone else sent the same input; `off` never reads or writes.
//! - **Expiry**: an entry older than `LLM_CACHE_TTL_S` (default one day) is a miss and is
//!   deleted. Each shard keeps at most [`MAX_SHARD_ENTRIES`] entries and [`MAX_SHARD_BYTES`]
//!   bytes, dropping the least recently used first.
//! - **What is stored**: only an answer the session accepted as an artifact (the stream ended
//!   normally with text in it), at most [`MAX_ENTRY_BYTES`]. Failures, cancelled and cut
//!   streams are never stored. The demo provider is never cached: it costs nothing.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped when the meaning of a stored entry changes.
const KEY_VERSION: &str = "botarmy-answer-cache-v1";
/// Answers larger than this are not stored.
pub const MAX_ENTRY_BYTES: usize = 512 * 1024;
/// Entries one shard keeps before dropping the least recently used.
pub const MAX_SHARD_ENTRIES: u64 = 2_000;
/// Bytes of answers one shard keeps before dropping the least recently used.
pub const MAX_SHARD_BYTES: u64 = 64 * 1024 * 1024;
/// Default time an entry is served (one day).
pub const DEFAULT_TTL_S: u64 = 86_400;

/// What a session asks a cache shard (the edge's `cache_do.rs` answers, `provider.rs` asks):
/// one type for both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "camelCase")]
pub enum CacheRequest {
    #[serde(rename_all = "camelCase")]
    Get { key: String, ttl_ms: u64 },
    /// Keep an accepted answer ([`cacheable`] decides whether it is stored).
    #[serde(rename_all = "camelCase")]
    Put {
        key: String,
        ttl_ms: u64,
        text: String,
        input_tokens: u64,
        output_tokens: u64,
    },
}

impl CacheRequest {
    pub fn key(&self) -> &str {
        match self {
            CacheRequest::Get { key, .. } | CacheRequest::Put { key, .. } => key,
        }
    }

    pub fn ttl_ms(&self) -> u64 {
        match self {
            CacheRequest::Get { ttl_ms, .. } | CacheRequest::Put { ttl_ms, .. } => *ttl_ms,
        }
    }
}

/// A cache shard's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "camelCase")]
pub enum CacheAnswer {
    #[serde(rename_all = "camelCase")]
    Hit {
        text: String,
        input_tokens: u64,
        output_tokens: u64,
    },
    Miss,
    Stored {
        stored: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    Off,
    Session,
    Global,
}

impl CacheScope {
    pub fn parse(v: &str) -> Result<CacheScope, String> {
        match v {
            "off" => Ok(CacheScope::Off),
            "session" => Ok(CacheScope::Session),
            "global" => Ok(CacheScope::Global),
            _ => Err(format!(
                "LLM_CACHE must be one of off, session, global, not {v:?}"
            )),
        }
    }
}

/// The cache key (64 lowercase hex chars) of a call, or `None` when the scope is `off`.
pub fn key(scope: CacheScope, session_id: &str, base_url: &str, body: &str) -> Option<String> {
    let scope_part = match scope {
        CacheScope::Off => return None,
        CacheScope::Session => format!("session:{session_id}"),
        CacheScope::Global => "global".to_string(),
    };
    let mut h = Sha256::new();
    // Length-prefixed parts: no two different inputs produce the same byte string.
    for part in [KEY_VERSION, &scope_part, base_url, body] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    Some(
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// A well-formed key, as the cache object accepts it.
pub fn is_key(k: &str) -> bool {
    k.len() == 64 && k.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The Durable Object name of the shard holding `key`.
pub fn shard(key: &str) -> String {
    format!("answers-{}", &key[..1])
}

/// Whether an accepted answer may be stored.
pub fn cacheable(answer: &str) -> bool {
    !answer.trim().is_empty() && answer.len() <= MAX_ENTRY_BYTES
}

/// An entry written at `created_at` is no longer served at `now`.
pub fn expired(created_at: u64, ttl_ms: u64, now: u64) -> bool {
    now.saturating_sub(created_at) >= ttl_ms
}

/// A shard holding this many entries and bytes must drop some.
pub fn over_limits(entries: u64, bytes: u64) -> bool {
    entries > MAX_SHARD_ENTRIES || bytes > MAX_SHARD_BYTES
}

/// How many of a shard's entries to drop, least recently used first, given their sizes in
/// that order (oldest use first), so that the rest fits both limits.
pub fn evictions(sizes_lru_first: &[u64]) -> usize {
    let mut count = sizes_lru_first.len() as u64;
    let mut bytes: u64 = sizes_lru_first.iter().sum();
    let mut drop = 0;
    for size in sizes_lru_first {
        if !over_limits(count, bytes) {
            break;
        }
        count -= 1;
        bytes -= size;
        drop += 1;
    }
    drop
}

#[cfg(test)]
mod tests {
    #[test]
    fn requests_and_answers_keep_their_shape_on_the_wire() {
        let put = CacheRequest::Put {
            key: "k".into(),
            ttl_ms: 5,
            text: "t".into(),
            input_tokens: 1,
            output_tokens: 2,
        };
        let json = serde_json::to_value(&put).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"route": "put", "key": "k", "ttlMs": 5, "text": "t",
                "inputTokens": 1, "outputTokens": 2})
        );
        assert_eq!(serde_json::from_value::<CacheRequest>(json).unwrap(), put);
        assert_eq!((put.key(), put.ttl_ms()), ("k", 5));
        for a in [
            CacheAnswer::Miss,
            CacheAnswer::Stored { stored: false },
            CacheAnswer::Hit {
                text: "t".into(),
                input_tokens: 1,
                output_tokens: 2,
            },
        ] {
            let back: CacheAnswer =
                serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
            assert_eq!(back, a);
        }
        assert_eq!(
            serde_json::to_value(CacheAnswer::Miss).unwrap(),
            serde_json::json!({"answer": "miss"})
        );
    }

    use super::*;

    const URL: &str = "https://api.openai.com/v1";

    #[test]
    fn key_is_stable_hex_and_off_has_none() {
        let a = key(CacheScope::Global, "s1", URL, "{\"model\":\"m\"}").unwrap();
        assert!(is_key(&a), "{a}");
        assert_eq!(
            Some(a.clone()),
            key(CacheScope::Global, "s1", URL, "{\"model\":\"m\"}")
        );
        assert_eq!(key(CacheScope::Off, "s1", URL, "{}"), None);
        assert!(shard(&a).starts_with("answers-") && shard(&a).len() == 9);
    }

    #[test]
    fn every_input_part_changes_the_key() {
        let base = key(CacheScope::Session, "s1", URL, "body").unwrap();
        for other in [
            key(CacheScope::Session, "s2", URL, "body"),
            key(CacheScope::Session, "s1", "http://127.0.0.1:1/v1", "body"),
            key(CacheScope::Session, "s1", URL, "body "),
            key(CacheScope::Global, "s1", URL, "body"),
        ] {
            assert_ne!(other.unwrap(), base);
        }
        // Global ignores the session; parts cannot slide into each other.
        assert_eq!(
            key(CacheScope::Global, "s1", URL, "b"),
            key(CacheScope::Global, "s2", URL, "b")
        );
        assert_ne!(
            key(CacheScope::Global, "", "ab", "c"),
            key(CacheScope::Global, "", "a", "bc")
        );
    }

    #[test]
    fn a_changed_prompt_or_model_misses() {
        use crate::agents::{build_messages, Stage};
        use crate::llm::chat_request_body;
        let m = build_messages(Stage::Analyst, "A todo app", &[], None, None);
        let body = chat_request_body("gpt-4o-mini", &m, Some(2000));
        let k = key(CacheScope::Global, "", URL, &body);
        let other_model = chat_request_body("gpt-4o", &m, Some(2000));
        assert_ne!(k, key(CacheScope::Global, "", URL, &other_model));
        let mut edited = m.clone();
        edited[0].content.push_str(" Be brief.");
        let edited = chat_request_body("gpt-4o-mini", &edited, Some(2000));
        assert_ne!(k, key(CacheScope::Global, "", URL, &edited));
        let feedback = build_messages(
            Stage::Analyst,
            "A todo app",
            &[],
            Some("more detail"),
            Some("v1"),
        );
        let feedback = chat_request_body("gpt-4o-mini", &feedback, Some(2000));
        assert_ne!(k, key(CacheScope::Global, "", URL, &feedback));
    }

    #[test]
    fn scope_parse() {
        assert_eq!(CacheScope::parse("global"), Ok(CacheScope::Global));
        assert_eq!(CacheScope::parse("session"), Ok(CacheScope::Session));
        assert_eq!(CacheScope::parse("off"), Ok(CacheScope::Off));
        assert!(CacheScope::parse("on").unwrap_err().contains("LLM_CACHE"));
    }

    #[test]
    fn key_check_rejects_anything_else() {
        assert!(!is_key(""));
        assert!(!is_key(&"A".repeat(64)));
        assert!(!is_key(&"a".repeat(63)));
        assert!(!is_key(&"g".repeat(64)));
        assert!(is_key(&"0f".repeat(32)));
    }

    #[test]
    fn only_real_answers_of_bounded_size_are_stored() {
        assert!(cacheable("# Requirements"));
        assert!(!cacheable(""));
        assert!(!cacheable(" \n\t"));
        assert!(cacheable(&"x".repeat(MAX_ENTRY_BYTES)));
        assert!(!cacheable(&"x".repeat(MAX_ENTRY_BYTES + 1)));
    }

    #[test]
    fn expiry_is_inclusive_of_the_ttl() {
        assert!(!expired(1_000, 500, 1_499));
        assert!(expired(1_000, 500, 1_500));
        // A clock that went backwards does not expire anything.
        assert!(!expired(2_000, 500, 1_000));
    }

    #[test]
    fn evictions_keep_both_limits() {
        assert_eq!(evictions(&[]), 0);
        assert_eq!(evictions(&[10; 5]), 0);
        let n = MAX_SHARD_ENTRIES as usize;
        assert_eq!(evictions(&vec![1; n]), 0);
        assert_eq!(evictions(&vec![1; n + 3]), 3);
        // Bytes: two big entries over the limit; dropping the oldest one is enough.
        let half = MAX_SHARD_BYTES / 2 + 1;
        assert_eq!(evictions(&[half, half]), 1);
        assert_eq!(evictions(&[1, 1, MAX_SHARD_BYTES]), 2);
        assert_eq!(evictions(&[MAX_SHARD_BYTES + 1]), 1);
        assert!(!over_limits(MAX_SHARD_ENTRIES, MAX_SHARD_BYTES));
        assert!(over_limits(MAX_SHARD_ENTRIES + 1, 0) && over_limits(1, MAX_SHARD_BYTES + 1));
    }
}
