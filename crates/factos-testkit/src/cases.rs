//! The conformance cases. Each takes a fresh, empty store.
//!
//! [`all`] lists every case in the order they run; the cases live in one
//! module per topic: [`matching`], [`reads`], [`appends`] (and conditions),
//! [`dispatch`], [`ids`] (event ids and replays), [`cached`] (the
//! `Dispatcher`'s cache), [`combined`] (its group commit), [`states`]
//! (decisions over several states), [`original`] (the original library's tests) and
//! [`concurrency`]. The helpers they share (seeding, the read log, counting)
//! are here.

use factos::{
    AppendCondition, AppendError, Codec, ConditionFailure, EventStore, NewEvent, Position, Query,
    QueryItem, ReadOptions, StreamId,
};

use crate::model::{KitCodec, KitEvent};
use crate::{Case, CaseResult};

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $what:expr) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!("{}: expected {:?}, got {:?}", $what, right, left));
        }
    }};
}

mod appends;
mod cached;
mod combined;
mod concurrency;
mod dispatch;
mod evolution;
mod ids;
mod matching;
mod original;
mod reads;
mod snapshots;
mod states;

use appends::{
    append_returns_what_is_stored, append_revisions_are_per_stream,
    append_revisions_start_at_zero_and_are_contiguous, append_unconditionally,
    condition_after_beyond_head_passes, condition_after_fails_on_later_match,
    condition_after_passes_without_later_match, condition_ignores_later_non_matching_events,
    condition_is_checked_for_empty_appends, condition_without_after_fails_on_any_match,
    condition_without_after_passes_without_match, empty_append_changes_nothing,
    failed_condition_writes_nothing, oversized_payload_is_refused, too_many_events_are_refused,
};
pub use cached::context_limit_through_the_cache;
use cached::{
    cache_after_a_decision_that_appends_nothing, cache_after_an_empty_decision_on_an_empty_context,
    cache_after_refusals_and_panics,
};
pub use combined::{RecordedEffects, combined_outbox_dispatches_record_each_commands_effects};
use combined::{
    combined_batch_commits_exactly_its_accepted_commands,
    combined_batch_writes_each_command_to_its_own_stream, combined_keyed_commands_keep_their_keys,
};
use concurrency::{
    disjoint_boundaries_never_conflict, racers_on_one_boundary_one_winner,
    racers_on_one_stream_one_winner, shared_stream_label_disjoint_queries,
    unique_streams_keep_the_query_boundary,
};
use dispatch::{
    a_reactor_failing_after_the_append_writes_nothing,
    a_reactor_panicking_in_reacts_to_writes_nothing, codec_sees_only_matching_rows,
    dispatch_decode_error_on_matching_row, dispatch_encode_error_writes_nothing,
    dispatch_panic_is_caught, dispatch_with_query_domain_error_writes_nothing,
    dispatch_with_query_many_events, dispatch_with_query_returns_committed_events,
    dispatch_with_query_without_events, idempotent_dispatch_appends_once,
    idempotent_racers_append_once, load_stream_folds_the_stream,
    read_context_folds_matching_events, stream_dispatch_domain_error, stream_dispatch_revisions,
};
use evolution::{
    foreign_event_types_are_refused_or_passed_over, older_event_versions_are_upcast_to_the_newest,
};
use ids::{
    a_keyed_retry_replays_whatever_it_would_decide_now,
    an_id_stored_with_other_content_is_a_conflict, repeated_ids_in_one_append_are_refused,
    the_same_append_again_is_a_replay, the_same_conditional_append_again_is_a_replay,
};
use matching::{
    match_all_events, match_empty_item_list_is_all, match_items_are_ored,
    match_nothing_still_reports_head, match_overlapping_items_read_once,
    match_overlapping_items_read_once_backwards, match_tag_only, match_tags_are_anded,
    match_tags_exactly, match_type_and_tag, match_type_only, match_types_are_ored,
    match_unconstrained_item_is_all,
};
use original::{
    original_register_user_stream_dispatch, original_tickets, original_twenty_five_streams,
    original_undecodable_event_of_another_type,
};
use reads::{
    read_backwards, read_backwards_from, read_empty_store_has_no_head, read_from_beyond_head,
    read_from_is_inclusive, read_limit, read_limit_backwards, read_positions_strictly_increase,
    read_query_from_and_limit, read_stream_in_revision_order, read_unknown_stream,
    recorded_at_is_the_time_of_the_append, stored_fields_round_trip,
};
use snapshots::snapshots_start_a_cold_dispatcher_from_the_kept_state;
use states::composed_states_fold_only_their_own_events;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$(Case { name: stringify!($name), run: |store| Box::pin($name(store)) }),*]
    };
}

pub(crate) fn all<S: EventStore + Clone + 'static>() -> Vec<Case<S>> {
    cases![
        // Matching, for every item shape.
        match_all_events,
        match_type_only,
        match_tag_only,
        match_type_and_tag,
        match_types_are_ored,
        match_tags_are_anded,
        match_items_are_ored,
        match_overlapping_items_read_once,
        match_overlapping_items_read_once_backwards,
        match_empty_item_list_is_all,
        match_unconstrained_item_is_all,
        match_tags_exactly,
        match_nothing_still_reports_head,
        // Reads.
        read_empty_store_has_no_head,
        read_from_is_inclusive,
        read_backwards,
        read_backwards_from,
        read_limit,
        read_limit_backwards,
        read_query_from_and_limit,
        read_from_beyond_head,
        read_positions_strictly_increase,
        read_stream_in_revision_order,
        read_unknown_stream,
        stored_fields_round_trip,
        recorded_at_is_the_time_of_the_append,
        // Appends and conditions.
        append_unconditionally,
        append_returns_what_is_stored,
        append_revisions_start_at_zero_and_are_contiguous,
        append_revisions_are_per_stream,
        condition_without_after_fails_on_any_match,
        condition_without_after_passes_without_match,
        condition_after_passes_without_later_match,
        condition_after_fails_on_later_match,
        condition_after_beyond_head_passes,
        condition_ignores_later_non_matching_events,
        condition_is_checked_for_empty_appends,
        empty_append_changes_nothing,
        failed_condition_writes_nothing,
        oversized_payload_is_refused,
        too_many_events_are_refused,
        // Dispatch.
        dispatch_with_query_returns_committed_events,
        dispatch_with_query_domain_error_writes_nothing,
        dispatch_with_query_without_events,
        dispatch_with_query_many_events,
        dispatch_decode_error_on_matching_row,
        codec_sees_only_matching_rows,
        dispatch_panic_is_caught,
        a_reactor_panicking_in_reacts_to_writes_nothing,
        a_reactor_failing_after_the_append_writes_nothing,
        dispatch_encode_error_writes_nothing,
        read_context_folds_matching_events,
        composed_states_fold_only_their_own_events,
        load_stream_folds_the_stream,
        stream_dispatch_revisions,
        stream_dispatch_domain_error,
        idempotent_dispatch_appends_once,
        idempotent_racers_append_once,
        // Event ids.
        repeated_ids_in_one_append_are_refused,
        an_id_stored_with_other_content_is_a_conflict,
        the_same_append_again_is_a_replay,
        the_same_conditional_append_again_is_a_replay,
        a_keyed_retry_replays_whatever_it_would_decide_now,
        // Cached dispatch.
        cache_after_a_decision_that_appends_nothing,
        cache_after_an_empty_decision_on_an_empty_context,
        cache_after_refusals_and_panics,
        // Combined dispatch (group commit).
        combined_batch_commits_exactly_its_accepted_commands,
        combined_batch_writes_each_command_to_its_own_stream,
        combined_keyed_commands_keep_their_keys,
        // Events that outlive their code.
        foreign_event_types_are_refused_or_passed_over,
        older_event_versions_are_upcast_to_the_newest,
        snapshots_start_a_cold_dispatcher_from_the_kept_state,
        // The original library's tests.
        original_register_user_stream_dispatch,
        original_undecodable_event_of_another_type,
        original_twenty_five_streams,
        original_tickets,
        // Concurrency.
        racers_on_one_boundary_one_winner,
        racers_on_one_stream_one_winner,
        disjoint_boundaries_never_conflict,
        shared_stream_label_disjoint_queries,
        unique_streams_keep_the_query_boundary,
    ]
}

// ---------------------------------------------------------------- helpers

fn stream(name: &str) -> StreamId {
    StreamId::new(name).unwrap_or_else(|e| unreachable!("test stream name {name:?}: {e}"))
}

fn raw(event_type: &str, tags: &[&str]) -> Result<NewEvent, String> {
    KitCodec::default()
        .encode(&KitEvent::new(event_type, tags))
        .map_err(|e| e.to_string())
}

fn item(types: &[&str], tags: &[&str]) -> Result<QueryItem, String> {
    QueryItem::parse(types.iter().copied(), tags.iter().copied()).map_err(|e| e.to_string())
}

fn query(types: &[&str], tags: &[&str]) -> Result<Query, String> {
    Ok(Query::item(item(types, tags)?))
}

/// Appends each event on its own, unconditionally; returns their positions.
async fn seed<S: EventStore>(
    store: &S,
    events: &[(&str, &[&str])],
) -> Result<Vec<Position>, String> {
    let mut positions = Vec::with_capacity(events.len());
    for (event_type, tags) in events {
        let committed = store
            .append(
                &stream("seed"),
                vec![raw(event_type, tags)?],
                AppendCondition::None,
            )
            .await
            .map_err(|e| format!("seeding: {e}"))?;
        positions.push(
            committed
                .position
                .ok_or("seeding: append returned no position")?,
        );
    }
    Ok(positions)
}

/// The log the matching and read cases use.
const LOG: &[(&str, &[&str])] = &[
    ("A", &["x:1"]),
    ("B", &["x:1", "y:1"]),
    ("A", &["y:1"]),
    ("C", &[]),
    ("A", &["x:1", "y:1"]),
    ("B", &["x:10"]),
    ("C", &["x:1"]),
    ("B", &["y:2"]),
];

/// Reads `query` with `options` on the seeded [`LOG`] and compares with the
/// expected indexes into `LOG` (0-based), in the expected order.
async fn expect_read<S: EventStore>(
    store: &S,
    query: Query,
    options: ReadOptions,
    expected: &[usize],
) -> CaseResult {
    let positions = seed(store, LOG).await?;
    let read = store
        .read(&query, options)
        .await
        .map_err(|e| e.to_string())?;
    let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    let want: Vec<Position> = expected.iter().map(|&i| positions[i]).collect();
    ensure_eq!(
        got,
        want,
        format!("positions read for {query} with {options:?}")
    );
    ensure_eq!(read.head, positions.last().copied(), "head");
    for event in &read.events {
        ensure!(
            event.matches(&query),
            "event at {} does not match {query}",
            event.position
        );
    }
    Ok(())
}

fn forwards() -> ReadOptions {
    ReadOptions::default()
}

async fn count<S: EventStore>(store: &S) -> Result<usize, String> {
    Ok(store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?
        .events
        .len())
}

fn expect_condition_failed<T: std::fmt::Debug>(
    outcome: Result<T, AppendError>,
    what: &str,
) -> CaseResult {
    match outcome {
        Err(AppendError::ConditionFailed(ConditionFailure::EventsMatched { .. })) => Ok(()),
        other => Err(format!(
            "{what}: expected a failed condition, got {other:?}"
        )),
    }
}
