//! "Your sessions": the list of sessions an owner created or opened, kept server-side so it
//! survives a reload and (with an access token) is the same from any browser. Pure rules here;
//! the edge keeps one `IndexDo` (SQLite) per owner and the sessions keep it current.
//!
//! # Where the index lives, and why not D1
//!
//! Every query is one owner's: list mine newest first, search mine by name, rename, forget.
//! Nothing ever asks across owners. So the index is one Durable Object per owner holding that
//! owner's rows in its own SQLite (with an index on `updated_at`): strongly consistent (a
//! session created is listed on the next read), as close to the owner as their sessions, no
//! database to provision before `wrangler deploy` (a D1 database needs `wrangler d1 create`
//! and its id in `wrangler.toml`), and it scales the way the sessions do: out, one object per
//! owner, with no global table to grow.
//!
//! # Who is the owner
//!
//! With `BOTARMY_ACCESS_TOKEN` set, everyone holding the token is one owner (the list is the
//! same in any browser with the token). Without one, each browser is an owner: it sends a
//! random 128-bit key it keeps (`X-BotArmy-Owner`, 32 hex). Either way the object's name is a
//! hash ([`owner_name`]), so neither the token nor the key is stored.
//!
//! # Rows and updates
//!
//! A row is keyed by what the owner uses to open the session: the session id (control) or a
//! view key (view only, never upgraded). Its `session_ref` (a hash of the session id, not a
//! capability) lets the session update every row that names it without knowing its view
//! keys. The session pushes its [`Summary`] when it changes (status, stages done, tokens, cost,
//! name) to each owner that remembered it (at most [`MAX_OWNERS_PER_SESSION`], the oldest
//! forgotten first), and tells them when it is deleted. A push that fails is retried with the
//! next change; the list may lag until then, never lose a row.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agents::prompts::excerpt;
use crate::session::{AgentStatus, SessionState};

/// Rows one owner keeps; past it the least recently updated rows are forgotten.
pub const MAX_ENTRIES_PER_OWNER: usize = 500;
/// Owners one session keeps up to date.
pub const MAX_OWNERS_PER_SESSION: usize = 16;
/// Longest session name, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Rows one list answer holds at most.
pub const MAX_LIST: usize = 100;
/// The name a session gets from its brief.
const BRIEF_NAME_CHARS: usize = 60;

/// The owner header: a browser's own key.
pub const OWNER_HEADER: &str = "x-botarmy-owner";

/// The index object's name for an owner: with an access token, the token's; otherwise the
/// browser key's (32 lowercase hex). `None` when there is no owner to name.
pub fn owner_name(access_token: Option<&str>, browser_key: Option<&str>) -> Option<String> {
    let seed = match (access_token, browser_key) {
        (Some(token), _) => format!("token:{token}"),
        (None, Some(k)) if k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("browser:{}", k.to_ascii_lowercase())
        }
        _ => return None,
    };
    Some(hex(&Sha256::digest(seed.as_bytes())))
}

/// What rows of one session are found by: a hash of its id (no capability).
pub fn session_ref(session_id: &str) -> String {
    hex(&Sha256::digest(format!("session:{session_id}").as_bytes()))[..32].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a row shows of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub name: String,
    /// `idle`, `running`, … as the state's `run.status`.
    pub status: String,
    pub stages_done: u32,
    pub tokens: u64,
    pub cost_micro_usd: u64,
    pub updated_at: u64,
}

impl Summary {
    /// The summary of a session in `state`, named `name` (or after its brief).
    pub fn of(state: &SessionState, name: Option<&str>, brief: &str, now: u64) -> Summary {
        let status = serde_json::to_value(state.run.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Summary {
            name: name
                .map(str::to_string)
                .unwrap_or_else(|| default_name(brief)),
            status,
            stages_done: state
                .agents
                .values()
                .filter(|a| a.status == AgentStatus::Done)
                .count() as u32,
            tokens: state.run.tokens_used,
            cost_micro_usd: state.run.cost_micro_usd,
            updated_at: now,
        }
    }

    /// Whether a push is due: anything but the time changed.
    pub fn differs(&self, other: &Summary) -> bool {
        Summary {
            updated_at: 0,
            ..self.clone()
        } != Summary {
            updated_at: 0,
            ..other.clone()
        }
    }
}

/// A session's name before it is renamed: its brief on one line, cut; "New session" before
/// one is given.
pub fn default_name(brief: &str) -> String {
    let n = excerpt(brief, BRIEF_NAME_CHARS);
    if n.is_empty() {
        "New session".into()
    } else {
        n
    }
}

/// A name the owner typed, made safe to keep: trimmed, one line, 1–[`MAX_NAME_CHARS`].
pub fn clean_name(raw: &str) -> Result<String, String> {
    let one_line: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err("A name needs at least one character.".into());
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(format!(
            "The name has {n} characters; the most is {MAX_NAME_CHARS}."
        ));
    }
    Ok(name)
}

/// A search query: trimmed, at most [`MAX_QUERY_CHARS`]; the SQL `LIKE` pattern for it
/// (case-insensitive for ASCII, `%`, `_` and `\` escaped with `\`).
pub fn like_pattern(q: &str) -> Result<String, String> {
    let q = q.trim();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(format!(
            "A search holds at most {MAX_QUERY_CHARS} characters."
        ));
    }
    let mut p = String::from("%");
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::Stage;

    #[test]
    fn an_owner_is_the_token_when_there_is_one_else_the_browser_key() {
        let k = "0123456789abcdef0123456789abcdef";
        let by_token = owner_name(Some("secret"), Some(k)).unwrap();
        assert_eq!(
            by_token,
            owner_name(Some("secret"), None).unwrap(),
            "the key is ignored"
        );
        assert_ne!(by_token, owner_name(Some("other"), None).unwrap());
        let by_key = owner_name(None, Some(k)).unwrap();
        assert_eq!(by_key, owner_name(None, Some(&k.to_uppercase())).unwrap());
        assert_ne!(by_key, by_token);
        assert!(!by_token.contains("secret") && by_token.len() == 64);
        for bad in [
            "",
            "short",
            "zz23456789abcdef0123456789abcdef",
            &format!("{k}00"),
        ] {
            assert_eq!(owner_name(None, Some(bad)), None, "{bad}");
        }
        assert_eq!(owner_name(None, None), None);
        assert_eq!(session_ref("a").len(), 32);
        assert_ne!(session_ref("a"), session_ref("b"));
    }

    #[test]
    fn a_summary_names_the_session_after_its_brief_and_counts_what_matters() {
        let mut st = SessionState::new("s", true, "demo", 100);
        st.agent_mut(Stage::Analyst).status = AgentStatus::Done;
        st.agent_mut(Stage::Architect).status = AgentStatus::Done;
        st.run.tokens_used = 42;
        st.run.cost_micro_usd = 7;
        let s = Summary::of(&st, None, "  Build a todo\napp  for families ", 5);
        assert_eq!(s.name, "Build a todo app for families");
        assert_eq!(
            (s.status.as_str(), s.stages_done, s.tokens, s.cost_micro_usd),
            ("idle", 2, 42, 7)
        );
        let renamed = Summary::of(&st, Some("Todo"), "Build a todo", 6);
        assert_eq!(renamed.name, "Todo");
        assert!(s.differs(&renamed));
        assert!(
            !s.differs(&Summary {
                updated_at: 99,
                ..s.clone()
            }),
            "time alone is no change"
        );
        assert_eq!(default_name(""), "New session");
        assert!(default_name(&"word ".repeat(100)).chars().count() <= 61);
    }

    #[test]
    fn names_and_queries_are_cleaned_or_refused() {
        assert_eq!(clean_name("  My\tshop\n list ").unwrap(), "My shop list");
        assert!(clean_name(" \n ").is_err());
        assert!(clean_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert_eq!(
            clean_name(&"é".repeat(MAX_NAME_CHARS))
                .unwrap()
                .chars()
                .count(),
            MAX_NAME_CHARS
        );
        assert_eq!(like_pattern(" shop ").unwrap(), "%shop%");
        assert_eq!(like_pattern("50%_a\\b").unwrap(), "%50\\%\\_a\\\\b%");
        assert_eq!(like_pattern("").unwrap(), "%%");
        assert!(like_pattern(&"q".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }
}
