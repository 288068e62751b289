//! The five pipeline stages, in order.

use serde::{Deserialize, Serialize};

/// One agent of the crew; the pipeline runs them in `Stage::ALL` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Analyst,
    Architect,
    Developer,
    Tester,
    Deployer,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Analyst,
        Stage::Architect,
        Stage::Developer,
        Stage::Tester,
        Stage::Deployer,
    ];

    /// Wire name: `analyst`, `architect`, …
    pub fn name(self) -> &'static str {
        match self {
            Stage::Analyst => "analyst",
            Stage::Architect => "architect",
            Stage::Developer => "developer",
            Stage::Tester => "tester",
            Stage::Deployer => "deployer",
        }
    }

    /// Display name, used as the AG-UI message `name`.
    pub fn title(self) -> &'static str {
        match self {
            Stage::Analyst => "Analyst",
            Stage::Architect => "Architect",
            Stage::Developer => "Developer",
            Stage::Tester => "Tester",
            Stage::Deployer => "Deployer",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn next(self) -> Option<Stage> {
        Stage::ALL.get(self.index() + 1).copied()
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for (i, s) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(Stage::parse(s.name()), Some(s));
            assert_eq!(s.index(), i);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
        assert_eq!(Stage::Deployer.next(), None);
        assert_eq!(Stage::Analyst.next(), Some(Stage::Architect));
        assert_eq!(Stage::parse("Analyst"), None);
    }
}
