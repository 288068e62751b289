//! The session state clients see: `STATE_SNAPSHOT` serialises it, `STATE_DELTA` patches it.
//! Field names and values are part of the wire contract (`docs/protocol.md`, "State").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agents::Stage;
use crate::protocol::Approval;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Idle,
    Running,
    Paused,
    WaitingApproval,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// A new pipeline may start.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Idle | RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Idle,
    Queued,
    Thinking,
    Streaming,
    WaitingApproval,
    Retrying,
    Done,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub id: String,
    pub stage: Stage,
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub status: RunStatus,
    pub approval: Option<Approval>,
    pub stage: Option<Stage>,
    pub run_id: Option<String>,
    pub pause_requested: bool,
    pub tokens_used: u64,
    pub token_budget: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub error: Option<ErrorInfo>,
    /// What the session has spent, in micro-dollars (every run; a cached answer costs 0).
    #[serde(default)]
    pub cost_micro_usd: u64,
    /// False once a model without a known price answered: the cost counts it as 0.
    #[serde(default = "yes")]
    pub price_known: bool,
    /// `SESSION_BUDGET_USD` in micro-dollars, if set.
    #[serde(default)]
    pub budget_micro_usd: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    pub status: AgentStatus,
    pub progress: u8,
    pub attempts: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub next_retry_at: Option<u64>,
    pub last_error: Option<ErrorInfo>,
    /// Latest artifact version (0 = none yet).
    pub version: u32,
    /// The current or last attempt was answered from the answer cache (no tokens spent).
    #[serde(default)]
    pub cached: bool,
    /// The model of this run (`provider:model`); `None` in demo mode.
    #[serde(default)]
    pub model: Option<String>,
    /// What this agent's calls of this run cost, in micro-dollars.
    #[serde(default)]
    pub cost_micro_usd: u64,
    #[serde(default = "yes")]
    pub price_known: bool,
}

impl AgentState {
    fn new() -> Self {
        AgentState {
            status: AgentStatus::Idle,
            progress: 0,
            attempts: 0,
            input_tokens: 0,
            output_tokens: 0,
            started_at: None,
            finished_at: None,
            next_retry_at: None,
            last_error: None,
            version: 0,
            cached: false,
            model: None,
            cost_micro_usd: 0,
            price_known: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    pub session_id: String,
    pub demo: bool,
    pub model: String,
    pub run: RunState,
    pub gate: Option<Gate>,
    /// Keyed by stage name; `BTreeMap` keeps pipeline order in the JSON.
    pub agents: BTreeMap<Stage, AgentState>,
    /// The current project's files by path (see `docs/protocol.md`, "Project files").
    #[serde(default)]
    pub files: BTreeMap<String, FileMeta>,
}

/// One file of the current project, as the state shows it (the content is read over HTTP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub bytes: u64,
    pub version: u64,
    pub stage: Stage,
}

impl SessionState {
    pub fn new(session_id: &str, demo: bool, model: &str, token_budget: u64) -> Self {
        SessionState {
            session_id: session_id.to_string(),
            demo,
            model: model.to_string(),
            run: RunState {
                status: RunStatus::Idle,
                approval: None,
                stage: None,
                run_id: None,
                pause_requested: false,
                tokens_used: 0,
                token_budget,
                started_at: None,
                finished_at: None,
                error: None,
                cost_micro_usd: 0,
                price_known: true,
                budget_micro_usd: None,
            },
            gate: None,
            agents: Stage::ALL.iter().map(|s| (*s, AgentState::new())).collect(),
            files: BTreeMap::new(),
        }
    }

    pub fn agent(&self, stage: Stage) -> &AgentState {
        &self.agents[&stage]
    }

    pub fn agent_mut(&mut self, stage: Stage) -> &mut AgentState {
        self.agents
            .get_mut(&stage)
            .expect("every stage has an agent")
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("state serializes")
    }
}
