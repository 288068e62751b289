//! The session object's decisions, one sentence each.

use super::*;
use crate::protocol::event::MessageRole;
use crate::protocol::limits::{LOG_MAX_BYTES, LOG_TRIM_TO};
use crate::protocol::patch::PatchOp;
use crate::session::replay::SnapshotReason;

fn emit(seq: u64, event: Event) -> Effect {
    Effect::Emit {
        seq,
        json: format!("{{\"seq\":{seq}}}"),
        event,
    }
}

fn text(seq: u64) -> Effect {
    emit(
        seq,
        Event::TextMessageContent {
            message_id: "m".into(),
            delta: "hi".into(),
        },
    )
}

// ---- what may be sent before it is stored ---------------------------------------------------

#[test]
fn deltas_and_a_message_start_go_out_before_they_are_stored() {
    let batch = vec![
        emit(
            1,
            Event::TextMessageStart {
                message_id: "m".into(),
                role: MessageRole::Assistant,
                name: "analyst".into(),
            },
        ),
        text(2),
        emit(
            3,
            Event::ToolCallArgs {
                tool_call_id: "t".into(),
                delta: "{".into(),
            },
        ),
        emit(
            4,
            Event::ReasoningMessageContent {
                message_id: "r".into(),
                delta: "hm".into(),
            },
        ),
        emit(
            5,
            Event::StateDelta {
                delta: Vec::<PatchOp>::new(),
            },
        ),
    ];
    assert_eq!(streaming_commit(&batch, false), StreamingCommit::SendAhead);
}

#[test]
fn a_message_that_ends_is_stored_before_anyone_sees_it() {
    let batch = vec![
        text(1),
        emit(
            2,
            Event::TextMessageEnd {
                message_id: "m".into(),
            },
        ),
    ];
    assert_eq!(streaming_commit(&batch, false), StreamingCommit::StoreFirst);
}

#[test]
fn anything_saved_or_a_call_aborted_makes_the_whole_batch_wait_for_storage() {
    let abort = vec![text(1), Effect::AbortCall { call_id: 3 }];
    assert_eq!(streaming_commit(&abort, false), StreamingCommit::StoreFirst);
    let ended = vec![emit(
        1,
        Event::StepFinished {
            step_name: "analyst".into(),
        },
    )];
    assert_eq!(streaming_commit(&ended, false), StreamingCommit::StoreFirst);
}

#[test]
fn an_empty_batch_leaves_what_was_sent_ahead_waiting() {
    assert_eq!(streaming_commit(&[], false), StreamingCommit::Nothing);
    assert_eq!(streaming_commit(&[], true), StreamingCommit::Nothing);
}

#[test]
fn a_deleted_session_sends_nothing_ahead() {
    assert_eq!(
        streaming_commit(&[text(1)], true),
        StreamingCommit::StoreFirst
    );
}

// ---- trimming -----------------------------------------------------------------------------

#[test]
fn the_log_is_trimmed_past_its_event_count_or_its_bytes_and_not_before() {
    assert!(!log_over_bound(1, LOG_RETENTION, 10));
    assert!(log_over_bound(1, LOG_RETENTION + 1, 10));
    assert!(!log_over_bound(1, 5, LOG_MAX_BYTES));
    assert!(log_over_bound(1, 5, LOG_MAX_BYTES + 1));
    // Counted from the oldest kept, not from seq 1.
    assert!(!log_over_bound(5_001, 25_000, 10));
}

#[test]
fn a_trim_for_count_keeps_the_newest_events_it_may() {
    // Every event fits the byte budget (the store answers the oldest): the count decides.
    assert_eq!(log_keep_from(20_001, Some(1)), 20_001 + 1 - LOG_TRIM_TO);
}

#[test]
fn a_trim_for_bytes_keeps_fewer_events_when_they_are_big() {
    assert_eq!(log_keep_from(20_001, Some(19_990)), 19_990);
}

#[test]
fn a_newest_event_bigger_than_the_budget_is_the_only_one_kept() {
    // The store finds no tail within the budget.
    assert_eq!(log_keep_from(20_001, None), 20_001);
    assert_eq!(log_keep_from(10, Some(50)), 10);
}

#[test]
fn the_byte_budget_of_a_trim_is_a_quarter_below_the_bound() {
    assert_eq!(LOG_KEEP_BYTES, LOG_MAX_BYTES / 4 * 3);
}

#[test]
fn messages_are_trimmed_a_quarter_below_either_bound_once_past_it() {
    assert_eq!(messages_trim_to((MAX_MESSAGES, MESSAGES_MAX_BYTES)), None);
    let to = Some((MAX_MESSAGES / 4 * 3, MESSAGES_MAX_BYTES / 4 * 3));
    assert_eq!(messages_trim_to((MAX_MESSAGES + 1, 0)), to);
    assert_eq!(messages_trim_to((1, MESSAGES_MAX_BYTES + 1)), to);
}

#[test]
fn a_trim_keeps_the_newest_messages_that_fit_and_an_older_smaller_one_after_a_big_one() {
    let (kept, totals) = messages_kept(&[40, 50, 30, 5, 1], 3, 100);
    assert_eq!(
        kept,
        [true, true, false, true, false],
        "the count bound stops the fourth"
    );
    assert_eq!(totals, (3, 95));
    assert_eq!(messages_kept(&[], 3, 100), (vec![], (0, 0)));
}

// ---- lease carry-over ---------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Back(&'static str, Option<u32>);

impl GivenBack for Back {
    fn bucket(&self) -> &str {
        self.0
    }
    fn follow_on(&self) -> Option<u32> {
        self.1
    }
}

#[test]
fn a_first_call_asks_the_limiter_with_nothing_to_give_back() {
    assert_eq!(
        lease_start::<Back>(None, "openai:m", 100),
        LeaseStart::Acquire {
            release_first: None,
            give_back: None
        }
    );
}

#[test]
fn a_call_covered_by_the_follow_on_set_aside_starts_at_once() {
    assert_eq!(
        lease_start(Some(Back("openai:m", Some(500))), "openai:m", 500),
        LeaseStart::GoOn(Back("openai:m", Some(500)))
    );
}

#[test]
fn a_call_bigger_than_its_follow_on_gives_the_lease_back_with_its_request() {
    assert_eq!(
        lease_start(Some(Back("openai:m", Some(499))), "openai:m", 500),
        LeaseStart::Acquire {
            release_first: None,
            give_back: Some(Back("openai:m", Some(499)))
        }
    );
    assert_eq!(
        lease_start(Some(Back("openai:m", None)), "openai:m", 1),
        LeaseStart::Acquire {
            release_first: None,
            give_back: Some(Back("openai:m", None))
        }
    );
}

#[test]
fn another_limiters_lease_is_released_on_its_own_first_whatever_its_follow_on() {
    assert_eq!(
        lease_start(Some(Back("anthropic:c", Some(10_000))), "openai:m", 5),
        LeaseStart::Acquire {
            release_first: Some(Back("anthropic:c", Some(10_000))),
            give_back: None
        }
    );
}

#[test]
fn the_follow_on_the_limiter_answered_on_go_on_replaces_the_leased_one() {
    assert_eq!(follow_on_kept(Some(7), Some(9)), Some(7));
    assert_eq!(follow_on_kept(None, Some(9)), Some(9));
    assert_eq!(follow_on_kept(None, None), None);
}

// ---- catch-up -----------------------------------------------------------------------------

fn helloed(plan: ReplayPlan) -> Connection {
    let mut c = Connection::new(0);
    begin_catch_up(&mut c, &plan);
    c
}

#[test]
fn a_replay_sends_pages_then_caught_up_at_the_newest_event() {
    let mut c = helloed(ReplayPlan::Replay { from: 3, to: 10 });
    assert_eq!(
        catch_up_step(&mut c, 1, 10),
        CatchUpStep::Page { from: 3, to: 10 }
    );
    page_sent(&mut c, 11);
    assert_eq!(
        catch_up_step(&mut c, 1, 10),
        CatchUpStep::CaughtUp { last_seq: 10 }
    );
    c.joined();
    assert_eq!(catch_up_step(&mut c, 1, 12), CatchUpStep::Idle);
}

#[test]
fn a_replay_of_nothing_is_caught_up_at_once() {
    let mut c = helloed(ReplayPlan::Replay { from: 11, to: 10 });
    assert_eq!(
        catch_up_step(&mut c, 1, 10),
        CatchUpStep::CaughtUp { last_seq: 10 }
    );
}

#[test]
fn a_snapshot_plan_sends_a_snapshot() {
    let mut c = helloed(ReplayPlan::Snapshot {
        at: 10,
        reason: SnapshotReason::Truncated,
    });
    assert_eq!(catch_up_step(&mut c, 5, 10), CatchUpStep::Snapshot);
}

#[test]
fn a_replay_whose_next_event_was_trimmed_meanwhile_becomes_a_snapshot() {
    let mut c = helloed(ReplayPlan::Replay { from: 3, to: 10 });
    assert_eq!(catch_up_step(&mut c, 5, 10), CatchUpStep::Snapshot);
    assert_eq!(c.catch_up, Some(CatchUp::Snapshot));
}

#[test]
fn a_catch_up_past_its_window_pauses_until_the_next_ack() {
    let mut c = helloed(ReplayPlan::Replay { from: 1, to: 10 });
    assert!(c.on_sent(1, 2 * 1024 * 1024).is_none());
    assert_eq!(catch_up_step(&mut c, 1, 10), CatchUpStep::Pause);
    // Still where it was: the next ack goes on from there.
    assert_eq!(c.catch_up, Some(CatchUp::Replay { next: 1 }));
}

#[test]
fn a_socket_that_never_said_hello_has_no_catch_up() {
    let mut c = Connection::new(0);
    assert_eq!(catch_up_step(&mut c, 1, 10), CatchUpStep::Idle);
}

// ---- epochs -------------------------------------------------------------------------------

#[test]
fn a_session_that_never_crashed_while_streaming_stays_in_epoch_one() {
    let (e, begun) = recover_epochs(None, false, 40);
    assert_eq!((e.current(), begun), (1, false));
}

#[test]
fn a_restart_after_streaming_begins_an_epoch_at_the_first_seq_not_stored() {
    let (e, begun) = recover_epochs(None, true, 40);
    assert!(begun);
    assert_eq!(e.current(), 2);
    // A client that saw seq 41 of epoch 1 saw an event the log never held.
    assert!(e.vouches(1, 40));
    assert!(!e.vouches(1, 41));
}

#[test]
fn stored_epochs_are_kept_and_continued() {
    let (once, _) = recover_epochs(None, true, 40);
    let (twice, begun) = recover_epochs(Some(once.clone()), true, 90);
    assert!(begun);
    assert_eq!(twice.current(), 3);
    let (same, begun) = recover_epochs(Some(once.clone()), false, 90);
    assert_eq!((same, begun), (once, false));
}

// ---- the prompt ---------------------------------------------------------------------------

fn spec(stage: Stage, prior: Vec<(Stage, u32)>, rerun: Option<(&str, u32)>) -> CallSpec {
    CallSpec {
        call_id: 1,
        stage,
        attempt: 1,
        work_attempt: 1,
        brief: "A notes app".into(),
        prior,
        feedback: rerun.map(|r| r.0.to_string()),
        previous_version: rerun.map(|r| r.1),
        model: None,
        fresh: false,
    }
}

fn store(stage: Stage, v: u32) -> Result<Option<String>, ()> {
    Ok(match (stage, v) {
        (Stage::Analyst, 1) => Some("ANALYSIS v1".into()),
        (Stage::Architect, 2) => Some("DESIGN v2".into()),
        _ => None,
    })
}

#[test]
fn the_prompt_carries_every_approved_artifact_before_the_stage() {
    let s = spec(
        Stage::Developer,
        vec![(Stage::Analyst, 1), (Stage::Architect, 2)],
        None,
    );
    let got = prompt(&s, store).unwrap();
    let want = agents::build_messages(
        Stage::Developer,
        "A notes app",
        &[
            (Stage::Analyst, "ANALYSIS v1".into()),
            (Stage::Architect, "DESIGN v2".into()),
        ],
        None,
        None,
    );
    assert_eq!(got, want);
}

#[test]
fn an_artifact_no_longer_kept_is_left_out_of_the_prompt() {
    let s = spec(
        Stage::Developer,
        vec![(Stage::Analyst, 9), (Stage::Architect, 2)],
        None,
    );
    let want = agents::build_messages(
        Stage::Developer,
        "A notes app",
        &[(Stage::Architect, "DESIGN v2".into())],
        None,
        None,
    );
    assert_eq!(prompt(&s, store).unwrap(), want);
}

#[test]
fn a_rerun_after_rejection_carries_its_feedback_and_its_own_rejected_draft() {
    let s = spec(
        Stage::Architect,
        vec![(Stage::Analyst, 1)],
        Some(("Shorter.", 2)),
    );
    let mut read = Vec::new();
    let got = prompt(&s, |stage, v| {
        read.push((stage, v));
        store(stage, v)
    })
    .unwrap();
    assert_eq!(read, vec![(Stage::Analyst, 1), (Stage::Architect, 2)]);
    let want = agents::build_messages(
        Stage::Architect,
        "A notes app",
        &[(Stage::Analyst, "ANALYSIS v1".into())],
        Some("Shorter."),
        Some("DESIGN v2"),
    );
    assert_eq!(got, want);
}

#[test]
fn a_failed_artifact_read_fails_the_prompt() {
    let s = spec(Stage::Architect, vec![(Stage::Analyst, 1)], None);
    assert_eq!(
        prompt(&s, |_, _| Err::<Option<String>, _>("disk")),
        Err("disk")
    );
}

// ---- idle expiry, the alarm, admission leases ----------------------------------------------

#[test]
fn an_idle_session_expires_once_its_limit_has_passed_since_its_last_activity() {
    assert_eq!(expiry(false, 1_000, 500, 1_499), Expiry::NotYet);
    assert_eq!(expiry(false, 1_000, 500, 1_500), Expiry::Idle);
}

#[test]
fn a_session_with_a_socket_or_a_call_never_expires_and_counts_as_active() {
    assert_eq!(expiry(true, 0, 500, 1_000_000), Expiry::Busy);
}

#[test]
fn the_alarm_is_set_when_none_is_and_moved_only_earlier() {
    assert!(alarm_moves(None, 5_000, 1_000));
    assert!(alarm_moves(Some(6_000), 5_000, 1_000));
    assert!(!alarm_moves(Some(5_000), 5_000, 1_000));
    assert!(!alarm_moves(Some(4_000), 5_000, 1_000));
}

#[test]
fn an_alarm_already_past_is_set_again_whatever_the_deadline() {
    // It fired (or was lost) before `now`: the one set no longer stands for anything.
    assert!(alarm_moves(Some(900), 5_000, 1_000));
}

#[test]
fn admission_leases_are_renewed_every_five_minutes_and_only_when_some_are_open() {
    assert!(!renew_due(true, 0, LEASE_RENEW_MS - 1));
    assert!(renew_due(true, 0, LEASE_RENEW_MS));
    assert!(!renew_due(false, 0, 10 * LEASE_RENEW_MS));
    assert_eq!(LEASE_RENEW_MS, 300_000);
}
