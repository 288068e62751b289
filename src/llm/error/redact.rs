//! Secrets out of every detail that reaches a log or a client: the configured ones, and
//! anything shaped like an OpenAI key.

/// Replaces every non-empty `secret`, and anything shaped like an OpenAI key (`sk-` followed
/// by 16 or more key characters), with `[redacted]`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    // Longest first, so a secret that contains another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s) {
            out = out.replace(s, "[redacted]");
        }
    }
    redact_key_shapes(&out)
}

fn redact_key_shapes(text: &str) -> String {
    const MIN_KEY_CHARS: usize = 16;
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("sk-") {
        // Only at a word start: "task-…" or "disk-…" are not keys.
        let at_word_start = rest[..pos]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
        let after = &rest[pos + 3..];
        let key_len = after.find(|c: char| !is_key_char(c)).unwrap_or(after.len());
        if at_word_start && key_len >= MIN_KEY_CHARS {
            out.push_str(&rest[..pos]);
            out.push_str("[redacted]");
            rest = &after[key_len..];
        } else {
            out.push_str(&rest[..pos + 3]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn redact_secrets_and_key_shapes() {
        assert_eq!(
            redact("token abc123 here", &["abc123"]),
            "token [redacted] here"
        );
        assert_eq!(
            redact("abc and abcdef", &["abc", "abcdef"]),
            "[redacted] and [redacted]"
        );
        assert_eq!(redact("nothing", &["", "zzz"]), "nothing");
        assert_eq!(
            redact("key=sk-abcdefghijklmnop1234 end", &[]),
            "key=[redacted] end"
        );
        assert_eq!(
            redact("Bearer sk-proj-AbC_dEf-123456789012345678", &[]),
            "Bearer [redacted]"
        );
        // Too short, or not at a word start: left alone.
        assert_eq!(
            redact("sk-learn is a library", &[]),
            "sk-learn is a library"
        );
        assert_eq!(
            redact("task-abcdefghijklmnopqrstuvwxyz", &[]),
            "task-abcdefghijklmnopqrstuvwxyz"
        );
        assert_eq!(redact("é sk-é", &[]), "é sk-é");
    }

    proptest! {
        #[test]
        fn redact_removes_every_secret(
            text in "[a-zA-Z0-9 .,]{0,200}",
            secrets in proptest::collection::vec("[A-Z0-9]{6,12}", 0..4),
            insert_at in 0usize..200,
        ) {
            let mut t = text.clone();
            if let Some(s) = secrets.first() {
                let at = insert_at.min(t.len());
                t.insert_str(at, s);
            }
            let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let out = redact(&t, &refs);
            for s in &secrets {
                prop_assert!(!out.contains(s.as_str()), "{} still in {}", s, out);
            }
            if !secrets.is_empty() && secrets.iter().any(|s| t.contains(s.as_str())) {
                prop_assert!(out.contains("[redacted]"));
            }
        }
    }
}
