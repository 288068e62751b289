//! Deployment settings read from the Worker's environment (vars and secrets), parsed and
//! checked here so the rules are testable natively. Also the origin policy.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_MODEL`, `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `AGENT_MODELS`, `AGENT_MODELS_OFFERED` | unset: demo provider | the providers and a model per stage (see [`crate::llm::providers`]) |
//! | `MODEL_PRICES` | shipped table | `model=input/output[/cached]` USD per million tokens (see [`crate::llm::price`]) |
//! | `SESSION_BUDGET_USD` | unset: none | dollars one session may spend; the next stage is not started past it |
//! | `ANTHROPIC_THINKING_TOKENS` | unset: off | extended thinking budget for Anthropic models (≥ 1024) |
//! | `ALLOWED_ORIGINS` | same origin only | extra origins, comma-separated |
//! | `BOTARMY_ACCESS_TOKEN` (secret) | unset: open | required to create and join sessions |
//! | `SESSION_TOKEN_BUDGET` | 200000 | tokens one session may use |
//! | `LLM_REQUESTS_PER_MIN`, `LLM_TOKENS_PER_MIN`, `LLM_MAX_CONCURRENT` | 60, 200000, 8 | global provider limit |
//! | `LLM_STALL_TIMEOUT_MS` | 30000 | watchdog for a silent stream |
//! | `STAGE_MAX_MS` | 1200000 | one attempt may stream this long, however lively |
//! | `LLM_BACKOFF_BASE_MS`, `LLM_BACKOFF_CAP_MS` | 1000, 30000 | retry backoff |
//! | `DEMO_TOKEN_INTERVAL_MS` | 15 | demo provider pace |
//! | `SOCKET_IDLE_MS` | 90000 | a socket silent this long (no frame, no ping) is closed |
//! | `LLM_CACHE` | `session` | answer cache scope: `off`, `session` or `global` (see [`crate::llm::cache`]) |
//! | `LLM_CACHE_TTL_S` | 86400 | how long a cached answer is served |
//! | `ALLOWED_HOSTS` | loopback and `*.workers.dev` | extra `Host` names the Worker answers (custom domains), comma-separated |
//! | `SESSIONS_PER_MIN_PER_CLIENT`, `SESSION_BURST_PER_CLIENT` | 10, 20 | session creation per client address |
//! | `MAX_SESSIONS` | 10000 | sessions that may exist at once |
//! | `SESSION_IDLE_TTL_S` | 604800 (7 days) | an idle session is deleted after this long |
//! | `SOCKETS_PER_CLIENT` | 32 | WebSockets one client address may hold across sessions |

use std::fmt;

use crate::admission::AdmissionLimits;
use crate::agents::DEMO_TOKEN_INTERVAL_MS;
use crate::llm::backoff::{BASE_MS, CAP_MS, MAX_ATTEMPTS};
use crate::llm::cache::{CacheScope, DEFAULT_TTL_S};
use crate::llm::price::{parse_budget_usd, MicroUsd, PriceTable};
use crate::llm::providers::Providers;
use crate::llm::{DEFAULT_BASE_URL, DEFAULT_MODEL};
use crate::protocol::limits::{IDLE_SOCKET_MS, MAX_ATTEMPT_MS, SWEEP_INTERVAL_MS};
use crate::session::call::CallConfig;
use crate::session::SessionConfig;

#[derive(Clone, PartialEq)]
pub struct Config {
    /// Every configured provider and the model of each stage (keys inside, redacted in Debug).
    pub providers: Providers,
    pub prices: PriceTable,
    pub budget_micros: Option<MicroUsd>,
    pub thinking_tokens: Option<u32>,
    pub api_key: Option<String>,
    pub base_url: String,
    pub model: String,
    pub allowed_origins: Vec<String>,
    pub access_token: Option<String>,
    pub token_budget: u64,
    pub requests_per_min: u32,
    pub tokens_per_min: u32,
    pub max_concurrent: u32,
    pub stall_timeout_ms: u64,
    /// `STAGE_MAX_MS`: how long one attempt may stream.
    pub max_attempt_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    pub demo_token_interval_ms: u64,
    /// How long a streamed event waits, once sent, before it is stored (0: the next turn of the
    /// event loop; docs/protocol.md, "Epochs"). Only tests set it: it widens the window a
    /// crash can fall into.
    pub store_after_send_ms: u64,
    /// How long the router waits for a session to answer a read before it asks once more
    /// (then `503 session_busy`).
    pub read_deadline_ms: u64,
    /// How long a session waits before it answers a read. Only tests set it, to show the
    /// router's deadline.
    pub read_delay_ms: u64,
    pub socket_idle_ms: u64,
    pub cache: CacheScope,
    pub cache_ttl_ms: u64,
    /// Extra `Host` names (lowercase, with or without a port) besides the defaults.
    pub allowed_hosts: Vec<String>,
    pub admission: AdmissionLimits,
    pub session_idle_ttl_ms: u64,
}

// Secrets never reach a log through `{:?}`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("allowed_origins", &self.allowed_origins)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_budget", &self.token_budget)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads settings through `get` (the Worker's env); a bad number is an error naming it.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let num = |k: &str, d: u64, min: u64, max: u64| -> Result<u64, String> {
            match text(k) {
                None => Ok(d),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(format!(
                        "{k} must be a whole number from {min} to {max}, not {v:?}"
                    )),
                },
            }
        };
        let base_url = text("OPENAI_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(format!(
                "OPENAI_BASE_URL must be an http(s) URL, not {base_url:?}"
            ));
        }
        let providers = Providers::from_lookup(&get)?;
        let prices = PriceTable::with_overrides(text("MODEL_PRICES").as_deref().unwrap_or(""))
            .map_err(|e| format!("MODEL_PRICES: {e}"))?;
        let budget_micros = parse_budget_usd(text("SESSION_BUDGET_USD").as_deref())
            .map_err(|e| format!("SESSION_BUDGET_USD: {e}"))?;
        let thinking_tokens = match text("ANTHROPIC_THINKING_TOKENS") {
            None => None,
            Some(_) => Some(num("ANTHROPIC_THINKING_TOKENS", 0, 1024, 64_000)? as u32),
        };
        Ok(Config {
            providers,
            prices,
            budget_micros,
            thinking_tokens,
            api_key: text("OPENAI_API_KEY"),
            base_url,
            model: text("OPENAI_MODEL").unwrap_or_else(|| DEFAULT_MODEL.to_string()),
            allowed_origins: text("ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            access_token: text("BOTARMY_ACCESS_TOKEN"),
            token_budget: num("SESSION_TOKEN_BUDGET", 200_000, 1, 100_000_000)?,
            requests_per_min: num("LLM_REQUESTS_PER_MIN", 60, 1, 100_000)? as u32,
            tokens_per_min: num("LLM_TOKENS_PER_MIN", 200_000, 100, 100_000_000)? as u32,
            max_concurrent: num("LLM_MAX_CONCURRENT", 8, 1, 1000)? as u32,
            stall_timeout_ms: num("LLM_STALL_TIMEOUT_MS", 30_000, 100, 600_000)?,
            max_attempt_ms: num("STAGE_MAX_MS", MAX_ATTEMPT_MS, 1_000, 24 * 3_600_000)?,
            backoff_base_ms: num("LLM_BACKOFF_BASE_MS", BASE_MS, 1, 60_000)?,
            backoff_cap_ms: num("LLM_BACKOFF_CAP_MS", CAP_MS, 1, 600_000)?,
            demo_token_interval_ms: num("DEMO_TOKEN_INTERVAL_MS", DEMO_TOKEN_INTERVAL_MS, 0, 1000)?,
            store_after_send_ms: num("STORE_AFTER_SEND_MS", 0, 0, 10_000)?,
            read_deadline_ms: num("READ_DEADLINE_MS", 10_000, 100, 60_000)?,
            read_delay_ms: num("READ_DELAY_MS", 0, 0, 60_000)?,
            socket_idle_ms: num("SOCKET_IDLE_MS", IDLE_SOCKET_MS, 1000, 3_600_000)?,
            cache: match text("LLM_CACHE") {
                None => CacheScope::Session,
                Some(v) => CacheScope::parse(&v)?,
            },
            cache_ttl_ms: num("LLM_CACHE_TTL_S", DEFAULT_TTL_S, 1, 30 * 86_400)? * 1000,
            allowed_hosts: text("ALLOWED_HOSTS")
                .map(|v| {
                    v.split(',')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            admission: AdmissionLimits {
                sessions_per_min: num("SESSIONS_PER_MIN_PER_CLIENT", 10, 1, 1_000_000)? as u32,
                session_burst: num("SESSION_BURST_PER_CLIENT", 20, 1, 1_000_000)? as u32,
                max_sessions: num("MAX_SESSIONS", 10_000, 1, 100_000_000)?,
                sockets_per_client: num("SOCKETS_PER_CLIENT", 32, 1, 1_000_000)? as u32,
            },
            session_idle_ttl_ms: num("SESSION_IDLE_TTL_S", 7 * 86_400, 1, 365 * 86_400)? * 1000,
        })
    }

    /// How often a session in use writes down that it was active (its idle expiry counts from
    /// there): at most once a minute, and at least four times per `SESSION_IDLE_TTL_S`. A
    /// fixed minute let a TTL under 60 s expire a session the moment its socket closed (the
    /// last activity written was older than the TTL); now one in use outlives its last
    /// activity by at least three quarters of the TTL, whatever the TTL.
    pub fn activity_write_ms(&self) -> u64 {
        (self.session_idle_ttl_ms / 4).clamp(1, 60_000)
    }

    /// Whether activity at `now` is written down, the last written being `written_at`.
    pub fn activity_due(&self, written_at: u64, now: u64) -> bool {
        now >= written_at + self.activity_write_ms()
    }

    /// How often the alarm looks for idle sockets: a third of the idle limit, at most the
    /// protocol's sweep interval.
    pub fn sweep_interval_ms(&self) -> u64 {
        (self.socket_idle_ms / 3).clamp(500, SWEEP_INTERVAL_MS)
    }

    pub fn demo(&self) -> bool {
        self.providers.demo()
    }

    /// Every secret, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        let keys = crate::llm::providers::ProviderKind::ALL
            .into_iter()
            .filter_map(|k| self.providers.provider(k))
            .map(|p| p.key().expose().to_string());
        keys.chain(self.access_token.clone()).collect()
    }

    /// What an LLM call needs of this configuration.
    pub fn call(&self) -> CallConfig {
        CallConfig {
            providers: self.providers.clone(),
            thinking_tokens: self.thinking_tokens,
            cache: self.cache,
            secrets: self.secrets(),
            stall_timeout_ms: self.stall_timeout_ms,
            demo_token_interval_ms: self.demo_token_interval_ms,
        }
    }

    /// The model name clients see for the session (each agent's own is in its state).
    pub fn model_label(&self) -> String {
        match self.providers.model_for(crate::agents::Stage::Analyst) {
            None => "demo".into(),
            Some(m) => m.model.clone(),
        }
    }

    pub fn session(&self) -> SessionConfig {
        SessionConfig {
            demo: self.demo(),
            model: self.model_label(),
            token_budget: self.token_budget,
            offered: crate::agents::Stage::ALL
                .iter()
                .map(|s| {
                    self.providers
                        .offered(*s)
                        .into_iter()
                        .map(|m| m.id())
                        .collect()
                })
                .collect(),
            prices: self.prices.clone(),
            budget_micros: self.budget_micros,
            max_attempts: MAX_ATTEMPTS,
            stall_timeout_ms: self.stall_timeout_ms,
            max_attempt_ms: self.max_attempt_ms,
            backoff_base_ms: self.backoff_base_ms,
            backoff_cap_ms: self.backoff_cap_ms,
        }
    }

    /// DNS rebinding guard: the `Host` a request names must be this Worker's. Loopback names
    /// (any port: `wrangler dev`) and `*.workers.dev` (the platform routes only this Worker's
    /// own name there) pass by default; a custom domain must be listed in `ALLOWED_HOSTS`.
    /// A page on `attacker.example` that resolves to 127.0.0.1 sends `Host: attacker.example`
    /// and is refused, even when its `Origin` matches that host.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if self.allowed_hosts.contains(&host) {
            return true;
        }
        let name = match host.strip_prefix('[') {
            // [::1]:8787
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host.as_str(), |(n, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    n
                } else {
                    host.as_str()
                }
            }),
        };
        if self.allowed_hosts.iter().any(|h| h == name) {
            return true;
        }
        let loopback_v4 = name.strip_prefix("127.").is_some_and(|r| {
            r.split('.').count() == 3 && r.split('.').all(|o| o.parse::<u8>().is_ok())
        });
        name == "localhost" || name == "::1" || loopback_v4 || name.ends_with(".workers.dev")
    }

    /// Browsers send `Origin`; it must be this Worker's own origin or on the allowlist.
    /// Requests without one (curl, server-side clients) are not cross-site and pass.
    pub fn origin_allowed(&self, origin: Option<&str>, own_origin: &str) -> bool {
        match origin {
            None => true,
            Some(o) => {
                let o = o.trim_end_matches('/');
                o == own_origin || self.allowed_origins.iter().any(|a| a == o)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::Stage;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_demo_mode() {
        let c = cfg(&[]).unwrap();
        assert!(c.demo());
        assert_eq!(c.model_label(), "demo");
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.token_budget, 200_000);
        assert_eq!((c.socket_idle_ms, c.sweep_interval_ms()), (90_000, 30_000));
        let fast = cfg(&[("SOCKET_IDLE_MS", "3000")]).unwrap();
        assert_eq!(fast.sweep_interval_ms(), 1000);
        assert!(cfg(&[("SOCKET_IDLE_MS", "5")]).is_err());
        assert!(c.session().demo);
        assert_eq!((c.cache, c.cache_ttl_ms), (CacheScope::Session, 86_400_000));
        assert!(!c.call().cache_on(), "the demo provider is never cached");
    }

    #[test]
    fn the_readme_examples_configure_what_they_say() {
        let c = cfg(&[
            ("OPENAI_API_KEY", "sk-a"),
            ("ANTHROPIC_API_KEY", "sk-ant-b"),
            (
                "AGENT_MODELS",
                "*=openai:gpt-4o-mini,developer=anthropic:claude-sonnet-5-5",
            ),
            (
                "AGENT_MODELS_OFFERED",
                "openai:gpt-6-sol,anthropic:claude-haiku-5-5",
            ),
            ("SESSION_BUDGET_USD", "0.50"),
        ])
        .unwrap();
        let s = c.session();
        assert_eq!(
            s.offered[Stage::Developer.index()][0],
            "anthropic:claude-sonnet-5-5"
        );
        assert!(c.prices.lookup("claude-sonnet-5-5").price.is_some());
        assert!(c.prices.lookup("gpt-6-sol").price.is_some());
        assert_eq!(s.offered[Stage::Tester.index()][0], "openai:gpt-4o-mini");
        assert_eq!(s.offered[Stage::Tester.index()].len(), 4);
        assert_eq!(s.budget_micros, Some(500_000));
        assert_eq!(c.secrets().len(), 2);
        assert!(!format!("{c:?}").contains("sk-ant-b"), "no key in Debug");
        let ollama = cfg(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("OPENAI_API_KEY", "ollama"),
            ("AGENT_MODELS", "*=openai:llama3.2:3b"),
            ("MODEL_PRICES", "llama3.2:3b=0/0"),
        ])
        .unwrap();
        assert!(ollama
            .session()
            .offered
            .iter()
            .all(|o| o == &["openai:llama3.2:3b".to_string()]));
        assert!(ollama.prices.lookup("llama3.2:3b").price.is_some());
        assert!(cfg(&[("SESSION_BUDGET_USD", "lots")]).is_err());
        assert!(cfg(&[("ANTHROPIC_THINKING_TOKENS", "12")]).is_err());
    }

    #[test]
    fn cache_settings() {
        let c = cfg(&[
            ("OPENAI_API_KEY", "k"),
            ("LLM_CACHE", "global"),
            ("LLM_CACHE_TTL_S", "60"),
        ])
        .unwrap();
        assert_eq!((c.cache, c.cache_ttl_ms), (CacheScope::Global, 60_000));
        assert!(c.call().cache_on());
        assert!(!cfg(&[("OPENAI_API_KEY", "k"), ("LLM_CACHE", "off")])
            .unwrap()
            .call()
            .cache_on());
        assert!(cfg(&[("LLM_CACHE", "yes")])
            .unwrap_err()
            .contains("LLM_CACHE"));
        assert!(cfg(&[("LLM_CACHE_TTL_S", "0")])
            .unwrap_err()
            .contains("LLM_CACHE_TTL_S"));
    }

    #[test]
    fn reads_provider_settings_and_hides_secrets() {
        let c = cfg(&[
            ("OPENAI_API_KEY", "sk-secret-123"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("OPENAI_MODEL", "llama3.2"),
            ("BOTARMY_ACCESS_TOKEN", "tok-456"),
        ])
        .unwrap();
        assert!(!c.demo());
        assert_eq!(c.model_label(), "llama3.2");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("sk-secret-123") && !dbg.contains("tok-456"),
            "{dbg}"
        );
    }

    #[test]
    fn bad_numbers_and_urls_are_named() {
        let e = cfg(&[("SESSION_TOKEN_BUDGET", "lots")]).unwrap_err();
        assert!(e.contains("SESSION_TOKEN_BUDGET"), "{e}");
        let e = cfg(&[("LLM_MAX_CONCURRENT", "0")]).unwrap_err();
        assert!(e.contains("LLM_MAX_CONCURRENT"), "{e}");
        let e = cfg(&[("OPENAI_BASE_URL", "ftp://x")]).unwrap_err();
        assert!(e.contains("OPENAI_BASE_URL"), "{e}");
        // Blank means unset.
        assert!(cfg(&[("OPENAI_API_KEY", "  ")]).unwrap().demo());
    }

    #[test]
    fn host_policy_refuses_rebinding_names() {
        let c = cfg(&[]).unwrap();
        for ok in [
            "127.0.0.1:8787",
            "localhost:8787",
            "LOCALHOST",
            "[::1]:8787",
            "127.1.2.3:1",
            "botarmy.someone.workers.dev",
        ] {
            assert!(c.host_allowed(ok), "{ok}");
        }
        for bad in [
            "attacker.example:8787",
            "attacker.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example:8787",
            "workers.dev.evil.example",
            "",
            "127.0.0.256:80",
        ] {
            assert!(!c.host_allowed(bad), "{bad}");
        }
        let c = cfg(&[("ALLOWED_HOSTS", "BotArmy.example.com, dev.example.com:8443")]).unwrap();
        assert!(c.host_allowed("botarmy.example.com"));
        assert!(c.host_allowed("botarmy.example.com:443"));
        assert!(c.host_allowed("dev.example.com:8443"));
        assert!(!c.host_allowed("dev.example.com:9999"));
        assert!(!c.host_allowed("example.com"));
    }

    #[test]
    fn admission_and_expiry_settings() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.admission.sessions_per_min, 10);
        assert_eq!(c.admission.max_sessions, 10_000);
        assert_eq!(c.session_idle_ttl_ms, 7 * 86_400_000);
        let c = cfg(&[("SESSION_IDLE_TTL_S", "3"), ("SOCKETS_PER_CLIENT", "2")]).unwrap();
        assert_eq!(
            (c.session_idle_ttl_ms, c.admission.sockets_per_client),
            (3000, 2)
        );
        assert!(cfg(&[("MAX_SESSIONS", "0")])
            .unwrap_err()
            .contains("MAX_SESSIONS"));
    }

    /// A session in use under `ttl_s`: a command at 0, a socket open until `close_at` (the
    /// expiry timer fires while it is open and only moves on), then nothing. When it is
    /// deleted, as the Session DO's `touch` and `expire_due` decide.
    fn deleted_at(ttl_s: &str, close_at: u64) -> u64 {
        let c = cfg(&[("SESSION_IDLE_TTL_S", ttl_s)]).unwrap();
        let ttl = c.session_idle_ttl_ms;
        let mut active_at = 0;
        let mut expire_at = ttl;
        // Each expiry while the socket is open finds the session busy and touches it; a
        // timer left in the past fires again at once.
        while expire_at < close_at {
            if c.activity_due(active_at, expire_at) {
                active_at = expire_at;
            }
            expire_at = (active_at + ttl).max(expire_at + 1);
        }
        // The socket's close touches it too.
        if c.activity_due(active_at, close_at) {
            active_at = close_at;
        }
        (active_at + ttl).max(close_at)
    }

    #[test]
    fn a_short_idle_ttl_keeps_a_session_in_use_past_its_socket_closing() {
        for (ttl_s, close_at) in [
            ("30", 45_000),
            ("30", 59_999),
            ("2", 4_500),
            ("59", 100_000),
        ] {
            let ttl = ttl_s.parse::<u64>().unwrap() * 1000;
            let at = deleted_at(ttl_s, close_at);
            assert!(
                at >= close_at + ttl * 3 / 4,
                "TTL {ttl_s} s, closed at {close_at}: deleted at {at}"
            );
        }
        // Days-long TTLs still write at most once a minute.
        let c = cfg(&[]).unwrap();
        assert_eq!(c.activity_write_ms(), 60_000);
        assert!(!c.activity_due(0, 59_999));
        assert!(c.activity_due(0, 60_000));
        let short = cfg(&[("SESSION_IDLE_TTL_S", "2")]).unwrap();
        assert_eq!(short.activity_write_ms(), 500);
    }

    #[test]
    fn origin_policy() {
        let c = cfg(&[("ALLOWED_ORIGINS", "https://a.example, https://b.example/")]).unwrap();
        let own = "http://127.0.0.1:8787";
        assert!(c.origin_allowed(None, own));
        assert!(c.origin_allowed(Some("http://127.0.0.1:8787"), own));
        assert!(c.origin_allowed(Some("https://b.example"), own));
        assert!(!c.origin_allowed(Some("https://evil.example"), own));
        assert!(!c.origin_allowed(Some("null"), own));
        assert!(!cfg(&[])
            .unwrap()
            .origin_allowed(Some("https://a.example"), own));
    }
}
