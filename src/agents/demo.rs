//! The demo provider, used when no `OPENAI_API_KEY` is set: deterministic, role-specific
//! answers streamed in token-sized pieces at a realistic pace, so `wrangler dev` works out of
//! the box and tests get the same text every time.

use super::demo_project::{demo_rounds, files_section};
use super::prompts::{document_title, excerpt};
use super::Stage;
use crate::llm::openai::estimate_tokens;
use crate::llm::StreamItem;

/// Pause between two demo tokens (about 65 tokens a second, like a fast hosted model).
pub const DEMO_TOKEN_INTERVAL_MS: u64 = 15;
/// Longest piece [`demo_tokens`] cuts a word into.
pub const MAX_TOKEN_CHARS: usize = 12;
/// Characters of a demo tool call's JSON arguments per streamed piece.
pub const ARGS_PIECE_CHARS: usize = 96;

const BRIEF_EXCERPT_CHARS: usize = 80;
const FEEDBACK_EXCERPT_CHARS: usize = 120;

/// The demo agent's answer for `stage`. `version` is the artifact version being written
/// (1 for the first run); `feedback` is set on a rerun after a rejection.
pub fn demo_answer(stage: Stage, brief: &str, feedback: Option<&str>, version: u32) -> String {
    let quote = excerpt(brief, BRIEF_EXCERPT_CHARS);
    let quote = if quote.is_empty() {
        "(no brief given)".to_string()
    } else {
        format!("“{quote}”")
    };
    let mut out = format!(
        "# {}: demo project\n\n_Demo mode (no OPENAI_API_KEY set): sample {} output, version {}, for the brief {}._\n\n",
        document_title(stage),
        stage.title(),
        version.max(1),
        quote
    );
    out.push_str(body(stage));
    out.push_str(&files_section(stage, brief));
    let feedback = feedback
        .map(|f| excerpt(f, FEEDBACK_EXCERPT_CHARS))
        .filter(|f| !f.is_empty());
    if let Some(f) = feedback {
        out.push_str(&format!(
            "\n## Changes in version {}\n\nYou asked: “{f}”\n\n{}",
            version.max(1),
            revision_notes(stage)
        ));
    }
    out
}

fn body(stage: Stage) -> &'static str {
    match stage {
        Stage::Analyst => ANALYST,
        Stage::Architect => ARCHITECT,
        Stage::Developer => DEVELOPER,
        Stage::Tester => TESTER,
        Stage::Deployer => DEPLOYER,
    }
}

fn revision_notes(stage: Stage) -> &'static str {
    match stage {
        Stage::Analyst => "- Reworded the affected requirements and added acceptance criteria for them.\n- Moved anything the feedback ruled out to Out of scope.\n",
        Stage::Architect => "- Revisited the component choices and key decisions the feedback touches.\n- Updated the risks to match.\n",
        Stage::Developer => "- Reordered the milestones and adjusted the key code to follow the feedback.\n- Updated the dependency list.\n",
        Stage::Tester => "- Added test cases for the scenarios the feedback raised.\n- Tightened the exit criteria accordingly.\n",
        Stage::Deployer => "- Adjusted the pipeline and alerts as requested.\n- Re-checked the rollback steps against the change.\n",
    }
}

const ANALYST: &str = "\
## Summary
A first release that covers the core flow of the brief for its main users, delivered as a small, secure web application that can grow later.

## Users and goals
- **End user**: completes the main task quickly on desktop or phone.
- **Administrator**: manages users and content, and sees usage.

## Functional requirements
1. **FR-1 (Must)**: The system shall let a user sign up, sign in and sign out.
2. **FR-2 (Must)**: The system shall let a user create, view, edit and delete their items.
3. **FR-3 (Must)**: The system shall validate input and explain errors in plain words.
4. **FR-4 (Should)**: The system shall notify a user when an item they follow changes.
5. **FR-5 (Could)**: The system shall export a user's items as CSV.

## Non-functional requirements
- **NFR-1**: p95 page load under 2 s on a 4G connection.
- **NFR-2**: 99.9% monthly availability.
- **NFR-3**: Personal data encrypted in transit and at rest; GDPR-ready.
- **NFR-4**: WCAG 2.1 AA accessibility.

## Assumptions and open questions
- Assumption: fewer than 10,000 users in the first year.
- Question: which sign-in providers must be supported?

## Out of scope
Native mobile apps, payments, offline mode.

## Acceptance criteria
- Given a signed-in user, when they save a valid item, then it appears in their list within 1 s (FR-2).
- Given invalid input, when the user submits, then nothing is saved and the error names the field (FR-3).
- Given a followed item, when its owner edits it, then the follower gets an email within 1 min (FR-4).
";

const ARCHITECT: &str = "\
## Overview
A single web application backed by a managed database, deployed behind a CDN. The requirements fit a modular monolith: few moving parts, one deployment.

```
Browser -> CDN -> Web app (API + UI) -> PostgreSQL
                      |-> Email service (notifications)
```

## Components
- **Web UI** (React, TypeScript): all user flows; serves FR-1 to FR-5 and NFR-4.
- **API** (Node.js, Fastify): validation, business rules, auth; FR-1 to FR-3.
- **Database** (managed PostgreSQL): users and items; NFR-2, NFR-3.
- **Notifier** (queue and email provider): change notifications; FR-4.

## Data model
- `User(id, email, name, role, created_at)`
- `Item(id, owner_id -> User, title, body, updated_at)`
- `Follow(user_id, item_id)`; all stored in PostgreSQL.

## Interfaces
- `POST /api/session` sign in, `DELETE /api/session` sign out.
- `GET/POST /api/items`, `PATCH/DELETE /api/items/{id}`.
- Auth: HTTP-only session cookie; CSRF token on writes.

## Key decisions
- **Monolith over microservices**: one team, small scale; simpler to run.
- **PostgreSQL over a document store**: relational data and strong consistency.
- **Server sessions over JWT**: easy revocation.
- **Queue for email**: the API stays fast when the email provider is slow.

## Risks
- Notification volume spikes: send through a queue with retries.
- Single region: nightly backups and a documented restore (NFR-2).
- Abuse of sign-in: rate limits per IP and account (NFR-3).
";

const DEVELOPER: &str = "\
## Implementation plan
1. **Walking skeleton (S)**: sign-in, one item type, CI and deploy to staging; FR-1.
2. **Items (M)**: full CRUD with validation; FR-2, FR-3.
3. **Notifications (M)**: follows, queue, email; FR-4.
4. **Polish (S)**: CSV export, accessibility pass; FR-5, NFR-4.

## Project structure
```
web/     React UI
api/     Fastify server, routes, domain logic
db/      SQL migrations
tests/   integration and end-to-end tests
```

## Key code
```ts
// api/routes/items.ts: create an item for the signed-in user.
app.post('/api/items', { schema: { body: ItemInput } }, async (req, reply) => {
  const user = requireUser(req);
  const item = await db.one(
    'INSERT INTO item (owner_id, title, body) VALUES ($1, $2, $3) RETURNING *',
    [user.id, req.body.title.trim(), req.body.body],
  );
  await notifier.enqueue({ type: 'item_created', itemId: item.id });
  return reply.code(201).send(item);
});
```

```sql
-- db/001_items.sql
CREATE TABLE item (
  id BIGSERIAL PRIMARY KEY,
  owner_id BIGINT NOT NULL REFERENCES app_user(id),
  title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  body TEXT NOT NULL DEFAULT '',
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
```

## Dependencies
- fastify, @fastify/cookie: HTTP server and sessions.
- pg: PostgreSQL client with parameterised queries.
- zod: shared input validation for UI and API.

## Definition of done
- [ ] Unit and integration tests pass in CI.
- [ ] Code reviewed by a second person.
- [ ] No new high-severity dependency alerts.
- [ ] Docs and changelog updated.
";

const TESTER: &str = "\
## Test strategy
- **Unit**: domain rules and validation (Vitest), run on every commit.
- **Integration**: API against a real PostgreSQL in CI.
- **End-to-end**: main flows in a browser (Playwright) before each release.

## Test cases
| ID | Requirement | Scenario | Steps | Expected result |
|---|---|---|---|---|
| TC-1 | FR-1 | Sign in | Enter valid credentials | Dashboard shown |
| TC-2 | FR-1 | Wrong password | Enter a bad password 5 times | Error, then lockout |
| TC-3 | FR-2 | Create item | Fill the form, save | Item listed |
| TC-4 | FR-2 | Delete item | Delete, confirm | Item gone after reload |
| TC-5 | FR-3 | Empty title | Save without a title | Field error, nothing saved |
| TC-6 | FR-2 | Other user's item | PATCH another user's item | 403, item unchanged |
| TC-7 | FR-4 | Notify follower | Edit a followed item | Email within 1 min |
| TC-8 | FR-3 | Title too long | Save a 201-char title | Field error, nothing saved |
| TC-9 | FR-5 | Export | Export 1,000 items | CSV with 1,000 rows |

## Non-functional tests
- **NFR-1**: k6 load test, 200 users; p95 under 2 s.
- **NFR-3**: OWASP ZAP scan; no high findings.
- **NFR-4**: axe checks on every page in end-to-end tests.

## Test data and environments
Synthetic users and items from a seed script; no production data. Tests run in CI and on staging.

## Exit criteria
- All Must test cases pass.
- No open critical or high defects.
- Core logic coverage at least 80%.
";

const DEPLOYER: &str = "\
## Environments
- **Development**: local containers with seed data.
- **Staging**: production-like, smaller instances, synthetic data.
- **Production**: managed hosting in one region, daily backups, two instances behind a load balancer.

## Release pipeline
1. Push: lint, unit tests, build.
2. Merge to main: integration tests, container image, deploy to staging.
3. End-to-end and smoke tests on staging.
4. Manual approval, then a canary to 10% of production traffic.
5. Full rollout when error rate and latency stay within targets for 15 min.

## Configuration and secrets
Environment variables per environment; secrets in the platform's secret manager, rotated every 90 days, never logged.

## Monitoring and alerts
- Error rate above 2% for 5 min: page on-call.
- p95 latency above 2 s for 10 min: ticket (NFR-1).
- Availability below 99.9% this month: review (NFR-2).
- Database storage above 80%: ticket.
- Email queue older than 10 min: page on-call (FR-4).

## Rollback
Redeploy the previous image with one command; migrations are backward compatible, so code can roll back without schema changes. Target recovery: 15 min.

## Runbook
- **Site down**: check the status page and the latest deploy; roll back if it is recent.
- **Slow pages**: check database load and slow queries; scale up if needed.
- **Emails not sent**: check queue depth and provider status; replay failed jobs.
- Backups: daily, restore tested monthly on staging.
";

/// The demo's whole streamed answer for `stage`, as a provider's stream would bring it: each
/// round of tool calls (start, arguments in pieces, end) closed by `finish_reason:
/// "tool_calls"`, then the Markdown answer in token-sized pieces. Call ids are stable
/// (`demo_<stage>_<round>_<n>`), so a call replayed after a restart is recognised.
pub fn demo_script(
    stage: Stage,
    brief: &str,
    feedback: Option<&str>,
    version: u32,
) -> Vec<StreamItem> {
    let mut items = Vec::new();
    for (r, round) in demo_rounds(stage, brief).into_iter().enumerate() {
        for (n, (tool, args)) in round.into_iter().enumerate() {
            let id = format!("demo_{}_{r}_{n}", stage.name());
            items.push(StreamItem::ToolCallStart {
                index: n as u32,
                id: id.clone(),
                name: tool.to_string(),
            });
            let chars: Vec<char> = args.chars().collect();
            for piece in chars.chunks(ARGS_PIECE_CHARS) {
                items.push(StreamItem::ToolCallArgs {
                    id: id.clone(),
                    delta: piece.iter().collect(),
                });
            }
            items.push(StreamItem::ToolCallEnd { id });
        }
        items.push(StreamItem::Finished {
            reason: "tool_calls".into(),
        });
    }
    let text = demo_answer(stage, brief, feedback, version);
    items.extend(demo_tokens(&text).into_iter().map(StreamItem::Delta));
    items
}

/// Splits `text` into token-sized pieces for streaming: each word with the whitespace after
/// it, words longer than [`MAX_TOKEN_CHARS`] cut into several pieces. Concatenating the
/// pieces gives `text` back exactly.
pub fn demo_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        let ws_end = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        let mut word = word;
        while word.chars().count() > MAX_TOKEN_CHARS {
            let at = word
                .char_indices()
                .nth(MAX_TOKEN_CHARS)
                .map_or(word.len(), |(i, _)| i);
            tokens.push(word[..at].to_string());
            word = &word[at..];
        }
        // The last piece of the word carries the whitespace (a leading run stands alone).
        tokens.push(format!("{word}{}", &after[..ws_end]));
        rest = &after[ws_end..];
    }
    tokens
}

/// Token usage reported for a demo call (~4 characters per token), as a provider would:
/// `(prompt_tokens, completion_tokens)`.
pub fn demo_usage(messages_chars: usize, answer_chars: usize) -> (u32, u32) {
    (
        estimate_tokens(messages_chars),
        estimate_tokens(answer_chars),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::prompts::required_headings;
    use proptest::prelude::*;

    const BRIEF: &str = "Build a booking app for a small yoga studio:\nclasses, waitlists and reminders by email, with an admin view for the owner.";

    #[test]
    fn answers_are_role_specific_with_their_headings() {
        for stage in Stage::ALL {
            let a = demo_answer(stage, BRIEF, None, 1);
            assert!(
                a.starts_with(&format!("# {}: demo project\n", document_title(stage))),
                "{a}"
            );
            let mut last = 0;
            for h in required_headings(stage) {
                let at = a
                    .find(&format!("\n{h}\n"))
                    .unwrap_or_else(|| panic!("{stage:?} lacks {h}"));
                assert!(at > last, "{stage:?}: {h} out of order");
                last = at;
            }
            assert!(a.contains(&format!("sample {} output, version 1", stage.title())));
            assert!(!a.contains("Changes in version"));
        }
        assert!(demo_answer(Stage::Developer, BRIEF, None, 1).contains("```ts"));
        assert!(demo_answer(Stage::Tester, BRIEF, None, 1).contains("| TC-1 | FR-1 |"));
    }

    #[test]
    fn quotes_a_flat_excerpt_of_the_brief() {
        let a = demo_answer(Stage::Analyst, BRIEF, None, 1);
        assert!(
            a.contains("for the brief “Build a booking app for a small yoga studio: classes, waitlists and reminders…”._"),
            "{a}"
        );
        let short = demo_answer(Stage::Analyst, "  Todo\tapp ", None, 1);
        assert!(short.contains("for the brief “Todo app”._"));
        let empty = demo_answer(Stage::Analyst, " \n ", None, 1);
        assert!(empty.contains("for the brief (no brief given)._"));
    }

    #[test]
    fn is_deterministic() {
        for stage in Stage::ALL {
            assert_eq!(
                demo_answer(stage, BRIEF, Some("more detail"), 2),
                demo_answer(stage, BRIEF, Some("more detail"), 2)
            );
        }
    }

    #[test]
    fn rerun_says_how_feedback_was_addressed() {
        let a = demo_answer(
            Stage::Architect,
            BRIEF,
            Some("Please use\nSQLite instead."),
            3,
        );
        assert!(a.contains("version 3"));
        assert!(
            a.contains("\n## Changes in version 3\n\nYou asked: “Please use SQLite instead.”\n")
        );
        assert!(a.contains("key decisions"));
        // Blank feedback is no feedback.
        assert_eq!(
            demo_answer(Stage::Architect, BRIEF, Some("  "), 3),
            demo_answer(Stage::Architect, BRIEF, None, 3)
        );
    }

    #[test]
    fn tokens_examples() {
        assert_eq!(demo_tokens(""), Vec::<String>::new());
        assert_eq!(demo_tokens("Hello  world\n"), ["Hello  ", "world\n"]);
        assert_eq!(demo_tokens("  lead"), ["  ", "lead"]);
        assert_eq!(
            demo_tokens("internationalisation rocks"),
            ["internationa", "lisation ", "rocks"]
        );
        assert_eq!(demo_tokens("ééééééééééééé x"), ["éééééééééééé", "é ", "x"]);
    }

    #[test]
    fn usage_is_about_four_chars_per_token() {
        assert_eq!(demo_usage(0, 0), (0, 0));
        assert_eq!(demo_usage(4000, 2001), (1000, 501));
        assert_eq!(demo_usage(usize::MAX, 3), (u32::MAX, 1));
    }

    #[test]
    fn demo_stream_takes_a_realistic_time() {
        for stage in Stage::ALL {
            let n = demo_tokens(&demo_answer(stage, BRIEF, None, 1)).len() as u64;
            let ms = n * DEMO_TOKEN_INTERVAL_MS;
            assert!((2_000..=8_000).contains(&ms), "{stage:?}: {ms} ms");
        }
    }

    proptest! {
        #[test]
        fn tokens_concatenate_to_the_text(text in "(\\PC|\\s){0,300}") {
            let tokens = demo_tokens(&text);
            prop_assert_eq!(tokens.concat(), text);
            for t in &tokens {
                prop_assert!(!t.is_empty());
                let word_chars = t.chars().filter(|c| !c.is_whitespace()).count();
                prop_assert!(word_chars <= MAX_TOKEN_CHARS, "{:?}", t);
                // Whitespace only ever trails a piece.
                let trimmed = t.trim_end();
                prop_assert!(!trimmed.contains(char::is_whitespace), "{:?}", t);
            }
        }

        #[test]
        fn answer_length_in_range(brief in "\\PC{0,500}", feedback in proptest::option::of("\\PC{0,500}"), stage_ix in 0usize..5, version in 1u32..1000) {
            let stage = Stage::ALL[stage_ix];
            let a = demo_answer(stage, &brief, feedback.as_deref(), version);
            let n = a.chars().count();
            prop_assert!((1500..=2500).contains(&n), "{:?}: {} chars", stage, n);
            // The brief never breaks the layout: the intro stays one line.
            let intro = a.split('\n').nth(2).unwrap();
            prop_assert!(intro.starts_with("_Demo mode") && intro.ends_with("._"), "{:?}", intro);
            prop_assert_eq!(a.split('\n').nth(3), Some(""));
        }
    }
}
