//! A model on a provider, as the wire and `AGENT_MODELS` name it: `provider:model`. The
//! providers themselves (keys, endpoints, requests) are `crate::llm::providers`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest model name accepted.
pub const MAX_MODEL_NAME_CHARS: usize = 200;

/// The API dialects BotArmy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, llama.cpp, OpenRouter, …).
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 2] = [ProviderKind::OpenAi, ProviderKind::Anthropic];

    /// The name in `AGENT_MODELS` and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model on a provider: `openai:gpt-4o-mini`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelChoice {
    pub provider: ProviderKind,
    pub model: String,
}

impl ModelChoice {
    pub fn new(provider: ProviderKind, model: impl Into<String>) -> ModelChoice {
        ModelChoice {
            provider,
            model: model.into(),
        }
    }

    /// `provider:model`; the model is everything after the first `:`.
    pub fn parse(text: &str) -> Result<ModelChoice, String> {
        let text = text.trim();
        let Some((provider, model)) = text.split_once(':') else {
            return Err(format!(
                "{text:?} should be provider:model, such as openai:gpt-4o-mini"
            ));
        };
        let provider = ProviderKind::parse(provider.trim()).ok_or_else(|| {
            format!("{text:?} names an unknown provider {provider:?} (known: openai, anthropic)")
        })?;
        let model = model.trim();
        if model.is_empty() {
            return Err(format!("{text:?} has no model name after the provider"));
        }
        if model.chars().count() > MAX_MODEL_NAME_CHARS {
            return Err(format!(
                "a model name in {text:?} is longer than {MAX_MODEL_NAME_CHARS} characters"
            ));
        }
        if model.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("the model name in {text:?} contains spaces"));
        }
        Ok(ModelChoice::new(provider, model))
    }

    /// `provider:model`, as the UI and `AGENT_MODELS` spell it.
    pub fn id(&self) -> String {
        format!("{}:{}", self.provider, self.model)
    }
}

impl fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.model)
    }
}
