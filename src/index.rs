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
//! name) to each owner that remembered it, and tells them when it is deleted. A push that
//! fails is retried with the next change; the list may lag until then, never lose a row.
//!
//! # Who keeps a session's owners ([`remember`])
//!
//! A session keeps its owners by the [`Link`] they came through, and a remember may push out
//! only someone who holds the same link, so no link takes anything from a stronger one:
//!
//! | link | kept at most | past it | pushed out by |
//! |---|---|---|---|
//! | creator (`POST /api/sessions`) | 1 | — | nobody |
//! | control (the session id) | [`MAX_OWNERS_PER_SESSION`] with the creator | the oldest control owner goes | a control remember |
//! | one view link | [`MAX_OWNERS_PER_VIEW`] per link | the oldest owner of that link goes | a remember of the same link |
//!
//! An owner pushed out loses its rows of that link (never its other rows of the session);
//! a revoked view link's owners are forgotten and their read-only rows go ([`revoked`]). So
//! one session pushes to at most 16 + 20 × 4 = 96 owners.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agents::prompts::excerpt;
use crate::protocol::view;
use crate::session::{AgentStatus, SessionState};

/// Rows one owner keeps; past it the least recently updated rows are forgotten.
pub const MAX_ENTRIES_PER_OWNER: usize = 500;
/// Owners one session keeps up to date through its control link (the creator included).
pub const MAX_OWNERS_PER_SESSION: usize = 16;
/// Owners one session keeps up to date through one view link.
pub const MAX_OWNERS_PER_VIEW: usize = 4;
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

/// How an owner came to a session: which of its owners a remember may push out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Link {
    /// Created it (`POST /api/sessions` with an owner): never pushed out.
    Creator,
    /// Remembered it through the session id.
    Control,
    /// Remembered it through the view link with this public id: a read-only row.
    View(String),
}

impl Link {
    /// As stored (`creator`, `control`, `view:<id>`).
    pub fn as_text(&self) -> String {
        match self {
            Link::Creator => "creator".into(),
            Link::Control => "control".into(),
            Link::View(id) => format!("view:{id}"),
        }
    }

    pub fn parse(s: &str) -> Option<Link> {
        match s {
            "creator" => Some(Link::Creator),
            "control" => Some(Link::Control),
            _ => s
                .strip_prefix("view:")
                .filter(|id| view::is_view_id(id))
                .map(|id| Link::View(id.to_string())),
        }
    }

    /// The links that share one budget: the creator and control owners, or one view's owners.
    fn pool(&self) -> Option<&str> {
        match self {
            Link::Creator | Link::Control => None,
            Link::View(id) => Some(id),
        }
    }

    /// Whether an index row (its key, and whether it is read-only) was made through this link.
    pub fn made(&self, key: &str, read_only: bool) -> bool {
        match self {
            Link::Creator | Link::Control => !read_only,
            Link::View(id) => {
                read_only
                    && view::parse_key(key)
                        .is_some_and(|k| view::view_id(&view::secret_hash(k.secret)) == id)
            }
        }
    }
}

/// One owner of a session, as the session keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's index name ([`owner_name`]).
    pub name: String,
    pub link: Link,
    /// When it last remembered the session (epoch ms).
    pub added_at: u64,
}

/// What a remember changes in a session's owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The owner to add or refresh (its `added_at` becomes now).
    pub keep: (String, Link),
    /// Owners pushed out to make room: each loses its rows of that link.
    pub evicted: Vec<(String, Link)>,
}

/// `name` remembers the session through `link` (rules: the module header). The creator stays
/// the creator when it comes back through the session id.
pub fn remember(owners: &[Owner], name: &str, link: Link) -> Remembered {
    let link = match link {
        Link::Control
            if owners
                .iter()
                .any(|o| o.name == name && o.link == Link::Creator) =>
        {
            Link::Creator
        }
        l => l,
    };
    let keep = (name.to_string(), link.clone());
    let known = owners.iter().any(|o| o.name == name && o.link == link);
    let cap = match link.pool() {
        None => MAX_OWNERS_PER_SESSION,
        Some(_) => MAX_OWNERS_PER_VIEW,
    };
    let mut pool: Vec<&Owner> = owners
        .iter()
        .filter(|o| o.link.pool() == link.pool() && o.link != Link::Creator)
        .collect();
    let held = owners
        .iter()
        .filter(|o| o.link.pool() == link.pool())
        .count();
    if known || held < cap {
        return Remembered {
            keep,
            evicted: Vec::new(),
        };
    }
    // The oldest of the same link goes (by name among equals, so the choice is the same
    // every time); the creator is never in `pool`.
    pool.sort_by(|a, b| (a.added_at, &a.name).cmp(&(b.added_at, &b.name)));
    let evicted = pool
        .iter()
        .take(held + 1 - cap)
        .map(|o| (o.name.clone(), o.link.clone()))
        .collect();
    Remembered { keep, evicted }
}

/// The owners a revoked view link leaves (their read-only rows of it must go).
pub fn revoked(owners: &[Owner], view_id: &str) -> Vec<(String, Link)> {
    owners
        .iter()
        .filter(|o| o.link.pool() == Some(view_id))
        .map(|o| (o.name.clone(), o.link.clone()))
        .collect()
}

/// The indexes a summary goes to: each owner once, whatever links it holds.
pub fn push_targets(owners: &[Owner]) -> Vec<String> {
    let mut names: Vec<String> = owners.iter().map(|o| o.name.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// What a row shows of a session.
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

/// One row of the list as the index holds it (SQLite's snake_case columns) and as
/// `GET /api/sessions` sends it (camelCase). Every number is sent as a JSON integer: SQLite
/// hands the edge its integers as JavaScript numbers, which a float field would send as `0.0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(serialize = "camelCase"))]
pub struct ListRow {
    pub key: String,
    #[serde(deserialize_with = "flag")]
    pub read_only: bool,
    pub name: String,
    pub status: String,
    #[serde(deserialize_with = "whole")]
    pub stages_done: u64,
    #[serde(deserialize_with = "whole")]
    pub tokens: u64,
    #[serde(
        rename(serialize = "costMicroUsd", deserialize = "cost"),
        deserialize_with = "whole"
    )]
    pub cost_micro_usd: u64,
    #[serde(deserialize_with = "whole")]
    pub created_at: u64,
    #[serde(deserialize_with = "whole")]
    pub updated_at: u64,
}

/// A whole number that may arrive as a float (a JavaScript number).
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 9_007_199_254_740_992.0 {
        Ok(v as u64)
    } else {
        Err(serde::de::Error::custom(format!(
            "{v} is not a whole number"
        )))
    }
}

/// SQLite's 0/1 as a bool.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    whole(d).map(|n| n != 0)
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

/// A search of the list: a plain substring of the name (no wildcards), case-insensitive by
/// Unicode lowercase on both sides (`ÉLAN` finds `élan`). Matched in Rust rather than by
/// SQLite, whose `LIKE` folds ASCII only and refuses patterns over 50 bytes; an owner holds
/// at most [`MAX_ENTRIES_PER_OWNER`] rows, so reading them all is cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    folded: String,
}

impl Search {
    /// Trimmed; at most [`MAX_QUERY_CHARS`] characters and no control characters (a name
    /// never holds one, so such a query could only ever find nothing).
    pub fn parse(q: &str) -> Result<Search, String> {
        let q = q.trim();
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(format!(
                "A search holds at most {MAX_QUERY_CHARS} characters."
            ));
        }
        if q.chars().any(char::is_control) {
            return Err("A search cannot hold control characters (such as NUL).".into());
        }
        Ok(Search {
            folded: q.to_lowercase(),
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.folded.is_empty() || name.to_lowercase().contains(&self.folded)
    }
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
        assert!(Search::parse(&"q".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(Search::parse(&format!(" {} ", "q".repeat(MAX_QUERY_CHARS))).is_ok());
    }

    #[test]
    fn a_search_is_plain_text_of_any_length_up_to_the_limit_folded_by_unicode_lowercase() {
        let s = |q: &str| Search::parse(q).unwrap();
        assert!(s(" shop ").matches("My Shop list"));
        assert!(s("").matches("anything"), "an empty search lists every row");
        // Wildcards and escapes of SQL's LIKE are plain characters.
        assert!(!s("%").matches("My shop"));
        assert!(s("50%_a\\b").matches("x 50%_a\\b y"));
        assert!(!s("50%_a\\b").matches("x 50x_a\\b y"));
        // Beyond ASCII: both sides lowercased the same way.
        assert!(s("ÉLAN").matches("un élan"));
        assert!(s("straße").matches("STRASSE und Straße"));
        assert!(s("ΟΔΟΣ").matches("οδος"));
        // 49–100 characters (SQLite's LIKE refused patterns over 50 bytes): just a search.
        let long = "a".repeat(80);
        assert!(s(&long).matches(&format!("x{long}y")));
        assert!(!s(&long).matches(&"a".repeat(79)));
        let wide = "é".repeat(MAX_QUERY_CHARS);
        assert!(
            s(&wide).matches(&wide.to_uppercase()),
            "100 characters of 2 bytes each"
        );
    }

    #[test]
    fn a_search_with_a_control_character_is_refused_rather_than_listing_every_row() {
        for q in ["\0", "shop\0", "a\u{7}b", "x\u{1b}[2J"] {
            let e = Search::parse(q).unwrap_err();
            assert!(e.contains("control characters"), "{q:?}: {e}");
        }
        // Whitespace around the words is trimmed, as before.
        assert!(Search::parse("\tshop\n").unwrap().matches("shop"));
    }

    #[test]
    fn a_list_row_sends_every_number_as_a_json_integer() {
        // As SQLite hands them to the edge: JavaScript numbers, i.e. floats.
        let from_sql = serde_json::json!({"key": "k", "read_only": 1.0, "name": "n",
            "status": "idle", "stages_done": 2.0, "tokens": 0.0, "cost": 0.0,
            "created_at": 1765000000000.0_f64, "updated_at": 1765000000123u64});
        let row: ListRow = serde_json::from_value(from_sql).unwrap();
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(
            text,
            "{\"key\":\"k\",\"readOnly\":true,\"name\":\"n\",\"status\":\"idle\",\
             \"stagesDone\":2,\"tokens\":0,\"costMicroUsd\":0,\
             \"createdAt\":1765000000000,\"updatedAt\":1765000000123}"
        );
        assert!(!text.contains(".0"));
        let bad = serde_json::json!({"key": "k", "read_only": 0, "name": "n", "status": "idle",
            "stages_done": 0.5, "tokens": 0, "cost": 0, "created_at": 0, "updated_at": 0});
        assert!(
            serde_json::from_value::<ListRow>(bad).is_err(),
            "a fraction is no count"
        );
    }

    fn owner(name: &str, link: Link, added_at: u64) -> Owner {
        Owner {
            name: name.into(),
            link,
            added_at,
        }
    }

    /// Applies a remember the way the session's store does.
    fn apply(owners: &mut Vec<Owner>, name: &str, link: Link, now: u64) -> Vec<(String, Link)> {
        let r = remember(owners, name, link);
        owners.retain(|o| !r.evicted.contains(&(o.name.clone(), o.link.clone())));
        owners.retain(|o| (o.name.as_str(), &o.link) != (r.keep.0.as_str(), &r.keep.1));
        owners.push(owner(&r.keep.0, r.keep.1, now));
        r.evicted
    }

    fn view(id: &str) -> Link {
        Link::View(id.repeat(12)[..12].to_string())
    }

    #[test]
    fn remembering_through_a_view_link_never_pushes_out_the_creator_or_a_control_owner() {
        let mut owners = vec![owner("creator", Link::Creator, 0)];
        for i in 1..MAX_OWNERS_PER_SESSION {
            assert!(apply(&mut owners, &format!("ctl{i:02}"), Link::Control, i as u64).is_empty());
        }
        // Sixteen fresh owners through one view key: they push out only each other.
        let mut evicted = Vec::new();
        for i in 0..16 {
            evicted.extend(apply(
                &mut owners,
                &format!("viewer{i:02}"),
                view("a"),
                100 + i,
            ));
        }
        assert!(evicted.iter().all(|(_, l)| *l == view("a")), "{evicted:?}");
        assert_eq!(evicted.len(), 16 - MAX_OWNERS_PER_VIEW);
        assert!(owners.iter().any(|o| o.link == Link::Creator));
        assert_eq!(
            owners.iter().filter(|o| o.link == Link::Control).count(),
            MAX_OWNERS_PER_SESSION - 1
        );
        // The newest four of that view are kept; another view link has its own four.
        let kept: Vec<&str> = owners
            .iter()
            .filter(|o| o.link == view("a"))
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(kept, ["viewer12", "viewer13", "viewer14", "viewer15"]);
        assert!(apply(&mut owners, "other", view("b"), 200).is_empty());
    }

    #[test]
    fn the_creator_is_never_pushed_out_by_others_through_the_session_id() {
        let mut owners = vec![owner("creator", Link::Creator, 0)];
        let mut evicted = Vec::new();
        for i in 1..=40u64 {
            evicted.extend(apply(&mut owners, &format!("c{i:02}"), Link::Control, i));
        }
        assert!(evicted.iter().all(|(n, _)| n != "creator"));
        assert_eq!(
            evicted.first().unwrap().0,
            "c01",
            "the oldest control owner goes first"
        );
        assert_eq!(owners.len(), MAX_OWNERS_PER_SESSION);
        // The creator coming back through the session id is still the creator.
        let r = remember(&owners, "creator", Link::Control);
        assert_eq!(r.keep, ("creator".to_string(), Link::Creator));
        assert!(r.evicted.is_empty());
        // A known owner refreshing its place pushes out nobody.
        assert!(remember(&owners, "c40", Link::Control).evicted.is_empty());
    }

    #[test]
    fn an_owner_holding_two_links_keeps_each_and_is_pushed_to_once() {
        let mut owners = vec![owner("a", Link::Creator, 0)];
        apply(&mut owners, "a", view("a"), 1);
        apply(&mut owners, "b", view("a"), 2);
        assert_eq!(owners.len(), 3);
        assert_eq!(push_targets(&owners), ["a", "b"]);
        // Revoking the view forgets its owners, the creator's own control place stays.
        let gone = revoked(&owners, &"a".repeat(12));
        assert_eq!(gone, [("a".into(), view("a")), ("b".into(), view("a"))]);
    }

    #[test]
    fn a_link_names_the_rows_it_made_and_round_trips_as_text() {
        let object = "0".repeat(64);
        let secret = "1".repeat(32);
        let key = view::format_key(&object, &secret);
        let id = view::view_id(&view::secret_hash(&secret)).to_string();
        let link = Link::View(id.clone());
        assert!(link.made(&key, true));
        assert!(
            !Link::View("0".repeat(12)).made(&key, true),
            "another view's row"
        );
        assert!(!link.made("0123456789abcdef0123456789abcdef", false));
        assert!(Link::Control.made("0123456789abcdef0123456789abcdef", false));
        assert!(
            !Link::Control.made(&key, true),
            "a control drop keeps read-only rows"
        );
        for l in [Link::Creator, Link::Control, link] {
            assert_eq!(Link::parse(&l.as_text()), Some(l));
        }
        assert_eq!(Link::parse("view:xyz"), None);
        assert_eq!(Link::parse("owner"), None);
    }
}
