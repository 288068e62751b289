//! View-only links: capabilities that show a session without controlling it.
//!
//! A session id is the control capability. A **view key** is `v` + the session object's id
//! (64 hex, what the runtime derives from the session id by a one-way hash, so it does not
//! reveal it) + a 128-bit secret (32 hex): 97 characters that work wherever a session id
//! does for reading (`GET` of the snapshot, events, messages, artifacts, and the WebSocket)
//! and nowhere else. The session keeps only the secret's SHA-256 (`views` table); a view's
//! public id is that hash's first [`VIEW_ID_LEN`] characters, which is how it is listed and
//! revoked. Everything a view client is sent has the session id replaced by the view key
//! ([`redact`]), so the control capability never reaches it.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// View links one session may have at once.
pub const MAX_VIEWS: u64 = 20;
/// Length of a view's public id (hex).
pub const VIEW_ID_LEN: usize = 12;
const OBJECT_HEX: usize = 64;
const SECRET_HEX: usize = 32;

/// A parsed view key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewKey<'a> {
    /// The session object's id, for the runtime's `idFromString`.
    pub object: &'a str,
    pub secret: &'a str,
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `v{object}{secret}`, or `None` for anything else (checked before any lookup).
pub fn parse_key(key: &str) -> Option<ViewKey<'_>> {
    let rest = key.strip_prefix('v')?;
    if rest.len() != OBJECT_HEX + SECRET_HEX || !is_hex(rest) {
        return None;
    }
    let (object, secret) = rest.split_at(OBJECT_HEX);
    Some(ViewKey { object, secret })
}

pub fn format_key(object: &str, secret: &str) -> String {
    format!("v{object}{secret}")
}

/// What the session stores for a secret (never the secret itself).
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The public id of a view, from its stored hash.
pub fn view_id(hash: &str) -> &str {
    &hash[..VIEW_ID_LEN.min(hash.len())]
}

/// A public view id as a client may name it (12 lowercase hex).
pub fn is_view_id(id: &str) -> bool {
    id.len() == VIEW_ID_LEN && is_hex(id)
}

/// `text` with every occurrence of the session id replaced by the view key.
pub fn redact<'a>(text: &'a str, session_id: &str, key: &str) -> Cow<'a, str> {
    if session_id.is_empty() || !text.contains(session_id) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.replace(session_id, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SECRET: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn a_key_round_trips_and_nothing_else_parses() {
        let key = format_key(OBJECT, SECRET);
        assert_eq!(key.len(), 97);
        assert_eq!(
            parse_key(&key),
            Some(ViewKey {
                object: OBJECT,
                secret: SECRET
            })
        );
        for bad in [
            "",
            "v",
            &key[1..],
            &key[..96],
            &format!("{key}0"),
            &key.to_uppercase(),
            &format!("w{}", &key[1..]),
            &key.replace('f', "g"),
            "0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_stored_hash_names_the_view_and_hides_the_secret() {
        let h = secret_hash(SECRET);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(SECRET));
        assert_eq!(h, secret_hash(SECRET));
        assert_ne!(h, secret_hash(OBJECT));
        assert!(is_view_id(view_id(&h)));
        assert!(!is_view_id(&h));
        assert!(!is_view_id("ABCDEF012345"));
    }

    #[test]
    fn redact_replaces_every_occurrence_and_borrows_when_there_is_none() {
        let id = "0123456789abcdef0123456789abcdef";
        let frame = format!(r#"{{"threadId":"{id}","state":{{"sessionId":"{id}"}}}}"#);
        let out = redact(&frame, id, "vKEY");
        assert!(!out.contains(id));
        assert_eq!(out.matches("vKEY").count(), 2);
        assert!(matches!(redact("{}", id, "vKEY"), Cow::Borrowed(_)));
        assert!(matches!(redact("{}", "", "vKEY"), Cow::Borrowed(_)));
    }
}
