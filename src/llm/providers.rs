//! Which provider and model each agent talks to: the providers configured, a default model
//! per stage, the models the UI may offer, and per provider the request, decoder and error
//! rules to use.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OPENAI_API_KEY` (secret) | unset | turns on the OpenAI-compatible provider `openai` |
//! | `OPENAI_BASE_URL` | `https://api.openai.com/v1` | any OpenAI-compatible server |
//! | `OPENAI_MODEL` | `gpt-4o-mini` | the default model while `openai` is configured |
//! | `ANTHROPIC_API_KEY` (secret) | unset | turns on the Anthropic Messages provider `anthropic` |
//! | `ANTHROPIC_BASE_URL` | `https://api.anthropic.com` | Anthropic or a compatible gateway |
//! | `AGENT_MODELS` | unset | `stage=provider:model`, comma-separated; stage `*` covers the stages not named |
//! | `AGENT_MODELS_OFFERED` | unset | more `provider:model` choices the UI may offer every stage |
//!
//! Rules:
//!
//! - A provider is configured when its key is set. With no key at all BotArmy runs the demo
//!   provider: `AGENT_MODELS` is still checked for typos but not applied.
//! - A stage's default is its `AGENT_MODELS` entry, else the `*` entry, else `openai:$OPENAI_MODEL`
//!   when `openai` is configured, else `anthropic:claude-sonnet-5-5`.
//! - Every model named (in either variable) must be on a configured provider; a model name may
//!   itself contain `:` (`openai:llama3.2:3b` is Ollama's `llama3.2:3b`).
//! - A stage is offered its default first, then every other model named anywhere, in order of
//!   first mention, without repeats ([`Providers::catalog`] for the UI, [`Providers::resolve`]
//!   to check a choice sent back).
//! - Keys never appear in `Debug` output, in errors or in the catalog.

use std::fmt;

use serde::Serialize;

use super::anthropic::{self, AnthropicDecoder};
use super::error::{classify_http, redact, LlmError};
use super::openai::{self, ChatMessage, StreamDecoder};
use super::price::{Price, PriceTable};
use super::stream::StreamItem;
use super::tools::ToolDef;
pub use crate::protocol::model::{ModelChoice, ProviderKind, MAX_MODEL_NAME_CHARS};
use crate::protocol::Stage;

/// The model used when only Anthropic is configured and nothing names one.
/// Anthropic's current "speed and intelligence" model (Claude Sonnet 4.5 retired 2026-11-30).
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-5-5";
/// The variable that holds `kind`'s key.
fn key_var(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "OPENAI_API_KEY",
        ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
    }
}

/// The variable that moves `kind`'s endpoint.
fn base_url_var(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "OPENAI_BASE_URL",
        ProviderKind::Anthropic => "ANTHROPIC_BASE_URL",
    }
}

fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => openai::DEFAULT_BASE_URL,
        ProviderKind::Anthropic => anthropic::DEFAULT_BASE_URL,
    }
}

/// A provider key. `Debug` shows `[redacted]`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the request header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What the edge needs to send one request: everything but the I/O.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    /// Lowercase names. One carries the key: never log them.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| match *k {
                "authorization" | "x-api-key" => (*k, "[redacted]"),
                _ => (*k, v.as_str()),
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

/// One configured provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub kind: ProviderKind,
    pub base_url: String,
    key: ApiKey,
}

impl Provider {
    pub fn new(kind: ProviderKind, base_url: impl Into<String>, key: ApiKey) -> Provider {
        Provider {
            kind,
            base_url: base_url.into(),
            key,
        }
    }

    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// The streamed request for `model`. `max_tokens` caps the answer (Anthropic requires
    /// one; OpenAI-compatible servers get it only when `Some`). `thinking_budget` turns on
    /// Anthropic's extended thinking; OpenAI-compatible reasoning models think unasked, so it
    /// is ignored there.
    pub fn request(
        &self,
        model: &str,
        messages: &[ChatMessage],
        tools: &[ToolDef],
        tool_choice: Option<&str>,
        max_tokens: Option<u32>,
        thinking_budget: Option<u32>,
    ) -> HttpRequest {
        match self.kind {
            ProviderKind::OpenAi => HttpRequest {
                url: openai::chat_url(&self.base_url),
                headers: vec![
                    ("authorization", format!("Bearer {}", self.key.expose())),
                    ("content-type", "application/json".to_string()),
                    ("accept", "text/event-stream".to_string()),
                ],
                body: openai::chat_request_body_with_tools(
                    model,
                    messages,
                    tools,
                    tool_choice,
                    max_tokens,
                ),
            },
            ProviderKind::Anthropic => HttpRequest {
                url: anthropic::messages_url(&self.base_url),
                headers: anthropic::request_headers(self.key.expose()),
                body: anthropic::messages_request_body(
                    model,
                    messages,
                    tools,
                    tool_choice,
                    max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
                    thinking_budget,
                ),
            },
        }
    }

    /// A fresh decoder for this provider's streamed answer.
    pub fn decoder(&self) -> Decoder {
        match self.kind {
            ProviderKind::OpenAi => Decoder::OpenAi(StreamDecoder::new()),
            ProviderKind::Anthropic => Decoder::Anthropic(AnthropicDecoder::new()),
        }
    }

    /// Classifies a non-success HTTP answer with this provider's rules; the key is redacted
    /// from the detail even if the server echoed it.
    pub fn classify_http(
        &self,
        status: u16,
        retry_after: Option<&str>,
        body: &str,
        now_ms: u64,
    ) -> LlmError {
        let mut e = match self.kind {
            ProviderKind::OpenAi => classify_http(status, retry_after, body, now_ms),
            ProviderKind::Anthropic => {
                anthropic::classify_anthropic_http(status, retry_after, body, now_ms)
            }
        };
        e.detail = redact(&e.detail, &[self.key.expose()]);
        e
    }
}

/// `max_tokens` for an Anthropic request when the caller sets none (the API requires one).
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 8192;

/// Either provider's stream decoder, behind one interface.
#[derive(Debug)]
pub enum Decoder {
    OpenAi(StreamDecoder),
    Anthropic(AnthropicDecoder),
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamItem>, LlmError> {
        match self {
            Decoder::OpenAi(d) => d.push(bytes),
            Decoder::Anthropic(d) => d.push(bytes),
        }
    }

    pub fn finish(&mut self) -> Result<Vec<StreamItem>, LlmError> {
        match self {
            Decoder::OpenAi(d) => d.finish(),
            Decoder::Anthropic(d) => d.finish(),
        }
    }
}

/// The providers and models of a deployment (rules in the module header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Providers {
    openai: Option<Provider>,
    anthropic: Option<Provider>,
    /// The default per stage, in `Stage::ALL` order; empty in demo mode.
    defaults: Vec<ModelChoice>,
    /// Every model named, in order of first mention; empty in demo mode.
    named: Vec<ModelChoice>,
}

impl Providers {
    /// Reads the variables in the module header through `get` (the Worker's env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Providers, String> {
        let text = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut keys: Vec<String> = Vec::new();
        let mut provider = |kind: ProviderKind| -> Result<Option<Provider>, String> {
            let base =
                text(base_url_var(kind)).unwrap_or_else(|| default_base_url(kind).to_string());
            if !(base.starts_with("https://") || base.starts_with("http://")) {
                return Err(format!(
                    "{} must be an http(s) URL, not {base:?}",
                    base_url_var(kind)
                ));
            }
            Ok(text(key_var(kind)).map(|k| {
                keys.push(k.clone());
                Provider::new(kind, base, ApiKey::new(k))
            }))
        };
        let openai = provider(ProviderKind::OpenAi)?;
        let anthropic = provider(ProviderKind::Anthropic)?;
        let secrets: Vec<&str> = keys.iter().map(String::as_str).collect();
        let hide = |e: String| redact(&e, &secrets);

        let stage_models = parse_agent_models(text("AGENT_MODELS").as_deref().unwrap_or(""))
            .map_err(|e| hide(format!("AGENT_MODELS: {e}")))?;
        let offered = parse_model_list(text("AGENT_MODELS_OFFERED").as_deref().unwrap_or(""))
            .map_err(|e| hide(format!("AGENT_MODELS_OFFERED: {e}")))?;

        let mut providers = Providers {
            openai,
            anthropic,
            defaults: Vec::new(),
            named: Vec::new(),
        };
        if providers.demo() {
            return Ok(providers);
        }
        let fallback = match &providers.openai {
            Some(_) => ModelChoice::new(
                ProviderKind::OpenAi,
                text("OPENAI_MODEL").unwrap_or_else(|| openai::DEFAULT_MODEL.to_string()),
            ),
            None => ModelChoice::new(ProviderKind::Anthropic, DEFAULT_ANTHROPIC_MODEL),
        };
        let fallback =
            ModelChoice::parse(&fallback.id()).map_err(|e| hide(format!("OPENAI_MODEL: {e}")))?;
        let star = stage_models
            .iter()
            .find(|(s, _)| s.is_none())
            .map(|(_, m)| m.clone());
        providers.defaults = Stage::ALL
            .iter()
            .map(|st| {
                stage_models
                    .iter()
                    .find(|(s, _)| *s == Some(*st))
                    .map(|(_, m)| m.clone())
                    .or_else(|| star.clone())
                    .unwrap_or_else(|| fallback.clone())
            })
            .collect();
        let mentioned = providers
            .defaults
            .iter()
            .chain(stage_models.iter().map(|(_, m)| m))
            .chain(offered.iter());
        for m in mentioned {
            if providers.provider(m.provider).is_none() {
                return Err(hide(format!(
                    "{} uses the {} provider, but {} is not set",
                    m.id(),
                    m.provider,
                    key_var(m.provider)
                )));
            }
            if !providers.named.contains(m) {
                providers.named.push(m.clone());
            }
        }
        Ok(providers)
    }

    /// No provider is configured: the demo provider answers.
    pub fn demo(&self) -> bool {
        self.openai.is_none() && self.anthropic.is_none()
    }

    pub fn provider(&self, kind: ProviderKind) -> Option<&Provider> {
        match kind {
            ProviderKind::OpenAi => self.openai.as_ref(),
            ProviderKind::Anthropic => self.anthropic.as_ref(),
        }
    }

    /// The stage's default model; `None` in demo mode.
    pub fn model_for(&self, stage: Stage) -> Option<&ModelChoice> {
        self.defaults.get(stage.index())
    }

    /// The models a stage may use, its default first; empty in demo mode.
    pub fn offered(&self, stage: Stage) -> Vec<&ModelChoice> {
        let Some(default) = self.model_for(stage) else {
            return Vec::new();
        };
        std::iter::once(default)
            .chain(self.named.iter().filter(|m| *m != default))
            .collect()
    }

    /// The provider and model for `stage`: `requested` (a `provider:model` id the UI sent) if
    /// it is one of the stage's offered models, the default if `None`.
    pub fn resolve(
        &self,
        stage: Stage,
        requested: Option<&str>,
    ) -> Result<(&Provider, &ModelChoice), String> {
        let offered = self.offered(stage);
        let choice = match requested {
            None => offered.first().copied(),
            Some(id) => {
                let wanted = ModelChoice::parse(id)?;
                offered.into_iter().find(|m| **m == wanted)
            }
        };
        let choice = choice.ok_or_else(|| match requested {
            Some(id) => format!("{id:?} is not offered for the {} stage", stage.name()),
            None => "no model: BotArmy is in demo mode".to_string(),
        })?;
        let provider = self
            .provider(choice.provider)
            .ok_or_else(|| format!("{} is not configured", choice.provider))?;
        Ok((provider, choice))
    }

    /// What the UI may show and offer, without secrets or URLs.
    pub fn catalog(&self, prices: &PriceTable) -> ModelCatalog {
        let offered_model = |m: &ModelChoice| OfferedModel {
            id: m.id(),
            provider: m.provider,
            model: m.model.clone(),
            price: prices.lookup(&m.model).price,
        };
        ModelCatalog {
            demo: self.demo(),
            providers: ProviderKind::ALL
                .into_iter()
                .filter(|k| self.provider(*k).is_some())
                .collect(),
            stages: if self.demo() {
                Vec::new()
            } else {
                Stage::ALL
                    .iter()
                    .map(|st| StageModels {
                        stage: *st,
                        default: self.model_for(*st).map(ModelChoice::id).unwrap_or_default(),
                        offered: self.offered(*st).into_iter().map(offered_model).collect(),
                    })
                    .collect()
            },
        }
    }
}

/// The UI's view of [`Providers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCatalog {
    pub demo: bool,
    /// The configured providers.
    pub providers: Vec<ProviderKind>,
    /// One entry per stage, in pipeline order; empty in demo mode.
    pub stages: Vec<StageModels>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageModels {
    pub stage: Stage,
    /// The id (`provider:model`) used unless the user picks another.
    pub default: String,
    /// Default first.
    pub offered: Vec<OfferedModel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferedModel {
    /// `provider:model`, what the UI sends back.
    pub id: String,
    pub provider: ProviderKind,
    pub model: String,
    /// Micro-dollars per million tokens; `None` when the price is unknown.
    pub price: Option<Price>,
}

/// `AGENT_MODELS` entries: `(None, m)` is the `*` entry.
fn parse_agent_models(spec: &str) -> Result<Vec<(Option<Stage>, ModelChoice)>, String> {
    let mut out: Vec<(Option<Stage>, ModelChoice)> = Vec::new();
    if spec.trim().is_empty() {
        return Ok(out);
    }
    for entry in spec.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an entry is empty (two commas in a row?)".into());
        }
        let Some((stage, model)) = entry.split_once('=') else {
            return Err(format!(
                "{entry:?} should be stage=provider:model, such as analyst=openai:gpt-4o-mini"
            ));
        };
        let stage = match stage.trim() {
            "*" => None,
            name => Some(Stage::parse(name).ok_or_else(|| {
                format!(
                    "{name:?} is not a stage (stages: analyst, architect, developer, tester, deployer, or * for the rest)"
                )
            })?),
        };
        if out.iter().any(|(s, _)| *s == stage) {
            return Err(format!("{} is given twice", stage.map_or("*", Stage::name)));
        }
        out.push((stage, ModelChoice::parse(model)?));
    }
    Ok(out)
}

/// `AGENT_MODELS_OFFERED`: `provider:model` entries, comma-separated.
fn parse_model_list(spec: &str) -> Result<Vec<ModelChoice>, String> {
    if spec.trim().is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|entry| match entry.trim() {
            "" => Err("an entry is empty (two commas in a row?)".to_string()),
            e => ModelChoice::parse(e),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const OPENAI_KEY: &str = "sk-test-openai-0123456789abcdef";
    const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789abcdef";

    fn load(pairs: &[(&str, &str)]) -> Result<Providers, String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Providers::from_lookup(|k| m.get(k).cloned())
    }

    fn both(agent_models: &str) -> Result<Providers, String> {
        load(&[
            ("OPENAI_API_KEY", OPENAI_KEY),
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("AGENT_MODELS", agent_models),
        ])
    }

    fn ids(p: &Providers, stage: Stage) -> Vec<String> {
        p.offered(stage).iter().map(|m| m.id()).collect()
    }

    #[test]
    fn without_any_key_it_is_demo_mode_with_no_models() {
        let p = load(&[]).unwrap();
        assert!(p.demo());
        assert_eq!(p.model_for(Stage::Analyst), None);
        assert!(p.offered(Stage::Analyst).is_empty());
        assert!(p.resolve(Stage::Analyst, None).is_err());
        // AGENT_MODELS is checked for typos, but a missing key is fine in demo mode.
        assert!(load(&[("AGENT_MODELS", "*=anthropic:claude-haiku-4-5")])
            .unwrap()
            .demo());
        assert!(load(&[("AGENT_MODELS", "*=anthropc:claude")])
            .unwrap_err()
            .contains("unknown provider"));
    }

    #[test]
    fn an_openai_key_alone_keeps_todays_behaviour() {
        let p = load(&[("OPENAI_API_KEY", OPENAI_KEY), ("OPENAI_MODEL", "gpt-4.1")]).unwrap();
        for st in Stage::ALL {
            assert_eq!(p.model_for(st).unwrap().id(), "openai:gpt-4.1");
        }
        let p = load(&[("OPENAI_API_KEY", OPENAI_KEY)]).unwrap();
        assert_eq!(
            p.model_for(Stage::Tester).unwrap().id(),
            "openai:gpt-4o-mini"
        );
        assert_eq!(
            p.provider(ProviderKind::OpenAi).unwrap().base_url,
            "https://api.openai.com/v1"
        );
        assert!(p.provider(ProviderKind::Anthropic).is_none());
    }

    #[test]
    fn an_anthropic_key_alone_defaults_to_claude_sonnet() {
        let p = load(&[("ANTHROPIC_API_KEY", ANTHROPIC_KEY)]).unwrap();
        assert!(!p.demo());
        assert_eq!(
            p.model_for(Stage::Developer).unwrap().id(),
            "anthropic:claude-sonnet-5-5"
        );
        assert_eq!(
            p.provider(ProviderKind::Anthropic).unwrap().base_url,
            "https://api.anthropic.com"
        );
    }

    #[test]
    fn agent_models_picks_a_model_per_stage_with_a_star_for_the_rest() {
        let p = both(
            " analyst=openai:gpt-4o-mini , developer=anthropic:claude-sonnet-4-5,*=openai:gpt-4.1",
        )
        .unwrap();
        let got: Vec<String> = Stage::ALL
            .iter()
            .map(|s| p.model_for(*s).unwrap().id())
            .collect();
        assert_eq!(
            got,
            [
                "openai:gpt-4o-mini",
                "openai:gpt-4.1",
                "anthropic:claude-sonnet-4-5",
                "openai:gpt-4.1",
                "openai:gpt-4.1"
            ]
        );
        // Without `*`, unnamed stages get the provider default.
        let p = both("developer=anthropic:claude-sonnet-4-5").unwrap();
        assert_eq!(
            p.model_for(Stage::Analyst).unwrap().id(),
            "openai:gpt-4o-mini"
        );
    }

    #[test]
    fn model_names_may_contain_colons() {
        let p = load(&[
            ("OPENAI_API_KEY", "ollama"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("AGENT_MODELS", "*=openai:llama3.2:3b"),
        ])
        .unwrap();
        let m = p.model_for(Stage::Analyst).unwrap();
        assert_eq!(
            (m.provider, m.model.as_str()),
            (ProviderKind::OpenAi, "llama3.2:3b")
        );
    }

    #[test]
    fn each_stage_is_offered_its_default_first_then_every_other_named_model() {
        let p = load(&[
            ("OPENAI_API_KEY", OPENAI_KEY),
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            (
                "AGENT_MODELS",
                "developer=anthropic:claude-sonnet-4-5,*=openai:gpt-4o-mini",
            ),
            (
                "AGENT_MODELS_OFFERED",
                "anthropic:claude-haiku-4-5, openai:gpt-4o-mini",
            ),
        ])
        .unwrap();
        assert_eq!(
            ids(&p, Stage::Developer),
            [
                "anthropic:claude-sonnet-4-5",
                "openai:gpt-4o-mini",
                "anthropic:claude-haiku-4-5"
            ]
        );
        assert_eq!(
            ids(&p, Stage::Analyst),
            [
                "openai:gpt-4o-mini",
                "anthropic:claude-sonnet-4-5",
                "anthropic:claude-haiku-4-5"
            ]
        );
    }

    #[test]
    fn a_choice_sent_back_must_be_offered_for_that_stage() {
        let p = both("developer=anthropic:claude-sonnet-4-5").unwrap();
        let (prov, m) = p.resolve(Stage::Developer, None).unwrap();
        assert_eq!(
            (prov.kind, m.model.as_str()),
            (ProviderKind::Anthropic, "claude-sonnet-4-5")
        );
        let (prov, m) = p
            .resolve(Stage::Developer, Some("openai:gpt-4o-mini"))
            .unwrap();
        assert_eq!(
            (prov.kind, m.model.as_str()),
            (ProviderKind::OpenAi, "gpt-4o-mini")
        );
        let e = p
            .resolve(Stage::Developer, Some("openai:gpt-4o"))
            .unwrap_err();
        assert!(e.contains("not offered for the developer stage"), "{e}");
        assert!(p.resolve(Stage::Developer, Some("nonsense")).is_err());
    }

    #[test]
    fn bad_agent_models_get_clear_errors() {
        for (spec, needle) in [
            ("analyst", "should be stage=provider:model"),
            ("analyst=gpt-4o", "should be provider:model"),
            ("boss=openai:gpt-4o", "\"boss\" is not a stage"),
            ("Analyst=openai:gpt-4o", "is not a stage"),
            ("analyst=azure:gpt-4o", "unknown provider \"azure\""),
            ("analyst=openai:", "no model name"),
            ("analyst=openai:gpt 4o", "contains spaces"),
            (
                "analyst=openai:a,analyst=openai:b",
                "analyst is given twice",
            ),
            ("*=openai:a,*=openai:b", "* is given twice"),
            ("analyst=openai:a,,tester=openai:b", "empty"),
        ] {
            let e = both(spec).unwrap_err();
            assert!(e.starts_with("AGENT_MODELS: "), "{spec}: {e}");
            assert!(e.contains(needle), "{spec}: {e}");
        }
        let long = format!("*=openai:{}", "m".repeat(MAX_MODEL_NAME_CHARS + 1));
        assert!(both(&long).unwrap_err().contains("longer than"));
        let e = load(&[
            ("OPENAI_API_KEY", OPENAI_KEY),
            ("AGENT_MODELS_OFFERED", "openai:a,,"),
        ])
        .unwrap_err();
        assert!(e.starts_with("AGENT_MODELS_OFFERED: "), "{e}");
    }

    #[test]
    fn a_model_on_a_provider_without_a_key_is_refused() {
        let e = load(&[
            ("OPENAI_API_KEY", OPENAI_KEY),
            ("AGENT_MODELS", "developer=anthropic:claude-sonnet-4-5"),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            "anthropic:claude-sonnet-4-5 uses the anthropic provider, but ANTHROPIC_API_KEY is not set"
        );
        let e = load(&[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("AGENT_MODELS_OFFERED", "openai:gpt-4o"),
        ])
        .unwrap_err();
        assert!(e.contains("OPENAI_API_KEY is not set"), "{e}");
    }

    #[test]
    fn base_urls_must_be_http() {
        let e = load(&[("ANTHROPIC_BASE_URL", "api.anthropic.com")]).unwrap_err();
        assert!(e.contains("ANTHROPIC_BASE_URL"), "{e}");
        let e = load(&[("OPENAI_BASE_URL", "ftp://x")]).unwrap_err();
        assert!(e.contains("OPENAI_BASE_URL"), "{e}");
    }

    #[test]
    fn keys_never_show_in_debug_errors_or_the_catalog() {
        let p = both("developer=anthropic:claude-sonnet-4-5").unwrap();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains(OPENAI_KEY) && !dbg.contains(ANTHROPIC_KEY),
            "{dbg}"
        );
        assert!(dbg.contains("[redacted]"));
        let json = serde_json::to_string(&p.catalog(&PriceTable::defaults())).unwrap();
        assert!(
            !json.contains("sk-") && !json.contains("https://"),
            "{json}"
        );
        // A key pasted into AGENT_MODELS by mistake is not echoed back.
        let e = both(&format!("analyst={ANTHROPIC_KEY}")).unwrap_err();
        assert!(!e.contains(ANTHROPIC_KEY), "{e}");
        let e = load(&[
            ("OPENAI_API_KEY", "plainkey"),
            ("AGENT_MODELS", "analyst=plainkey"),
        ])
        .unwrap_err();
        assert!(!e.contains("plainkey"), "{e}");
        // The request's Debug hides the auth headers.
        let (prov, m) = p.resolve(Stage::Developer, None).unwrap();
        let req = prov.request(&m.model, &[ChatMessage::user("hi")], &[], None, None, None);
        let dbg = format!("{req:?}");
        assert!(!dbg.contains(ANTHROPIC_KEY), "{dbg}");
    }

    #[test]
    fn each_provider_builds_its_own_request() {
        let p = both("developer=anthropic:claude-sonnet-4-5").unwrap();
        let msgs = [ChatMessage::system("sys"), ChatMessage::user("hi")];
        let (prov, m) = p.resolve(Stage::Developer, None).unwrap();
        let req = prov.request(&m.model, &msgs, &[], None, None, Some(2048));
        assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
        assert!(req
            .headers
            .contains(&("x-api-key", ANTHROPIC_KEY.to_string())));
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["system"], "sys");
        assert_eq!(
            body["max_tokens"],
            ANTHROPIC_DEFAULT_MAX_TOKENS as u64 + 2048
        );
        let (prov, m) = p.resolve(Stage::Analyst, None).unwrap();
        let req = prov.request(&m.model, &msgs, &[], None, Some(100), Some(2048));
        assert_eq!(req.url, "https://api.openai.com/v1/chat/completions");
        assert!(req
            .headers
            .contains(&("authorization", format!("Bearer {OPENAI_KEY}"))));
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(body.get("thinking").is_none());
    }

    #[test]
    fn each_provider_decodes_and_classifies_with_its_own_rules() {
        let p = both("developer=anthropic:claude-sonnet-4-5").unwrap();
        let anth = p.provider(ProviderKind::Anthropic).unwrap();
        let oai = p.provider(ProviderKind::OpenAi).unwrap();
        let body =
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#;
        assert_eq!(
            anth.classify_http(404, None, body, 0).kind,
            crate::llm::ErrorKind::ModelNotFound
        );
        let echoed = format!("{{\"error\":{{\"message\":\"bad key {OPENAI_KEY}\"}}}}");
        let e = oai.classify_http(401, None, &echoed, 0);
        assert!(!e.detail.contains(OPENAI_KEY), "{}", e.detail);
        let mut d = anth.decoder();
        assert!(matches!(d, Decoder::Anthropic(_)));
        let items = d
            .push(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
            .unwrap();
        assert_eq!(items, [StreamItem::Done]);
        let mut d = oai.decoder();
        assert_eq!(d.push(b"data: [DONE]\n\n").unwrap(), [StreamItem::Done]);
        assert_eq!(d.finish().unwrap(), []);
    }

    #[test]
    fn the_catalog_lists_models_and_prices_per_stage_for_the_ui() {
        let p = load(&[
            ("OPENAI_API_KEY", OPENAI_KEY),
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            (
                "AGENT_MODELS",
                "developer=anthropic:claude-sonnet-4-5,*=openai:gpt-4o-mini",
            ),
            ("AGENT_MODELS_OFFERED", "openai:my-local-model"),
        ])
        .unwrap();
        let cat = serde_json::to_value(p.catalog(&PriceTable::defaults())).unwrap();
        assert_eq!(cat["demo"], false);
        assert_eq!(cat["providers"], serde_json::json!(["openai", "anthropic"]));
        let stages = cat["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 5);
        assert_eq!(stages[2]["stage"], "developer");
        assert_eq!(stages[2]["default"], "anthropic:claude-sonnet-4-5");
        assert_eq!(
            stages[2]["offered"][0],
            serde_json::json!({
                "id": "anthropic:claude-sonnet-4-5",
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "price": {"input": 3_000_000, "output": 15_000_000, "cachedInput": 300_000}
            })
        );
        assert_eq!(stages[0]["offered"][2]["price"], serde_json::Value::Null);
        let demo =
            serde_json::to_value(load(&[]).unwrap().catalog(&PriceTable::defaults())).unwrap();
        assert_eq!(
            demo,
            serde_json::json!({"demo": true, "providers": [], "stages": []})
        );
    }

    proptest! {
        #[test]
        fn any_agent_models_text_gives_providers_or_an_error_never_a_panic(spec in "[a-z*=:,. 0-9-]{0,60}") {
            let _ = both(&spec);
        }

        #[test]
        fn every_stage_always_has_an_offered_default(stages in proptest::collection::vec((0usize..6, proptest::bool::ANY, "[a-z0-9.-]{1,12}"), 0..6)) {
            let mut seen = std::collections::HashSet::new();
            let spec: Vec<String> = stages
                .into_iter()
                .filter(|(s, _, _)| seen.insert(*s))
                .map(|(s, anth, model)| {
                    let stage = Stage::ALL.get(s).map_or("*", |st| st.name());
                    let prov = if anth { "anthropic" } else { "openai" };
                    format!("{stage}={prov}:{model}")
                })
                .collect();
            let p = both(&spec.join(",")).unwrap();
            for st in Stage::ALL {
                let offered = p.offered(st);
                prop_assert_eq!(Some(offered[0]), p.model_for(st));
                let (_, m) = p.resolve(st, None).unwrap();
                prop_assert_eq!(Some(m), p.model_for(st));
                for o in offered {
                    prop_assert!(p.resolve(st, Some(&o.id())).is_ok());
                }
            }
        }
    }
}
