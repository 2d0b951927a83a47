//! The conformance cases. Each takes a fresh, empty store.

use std::sync::Arc;

use factos::store::{ConditionFailure, EventStore};
use factos::{
    AppendCondition, AppendError, Codec, DecodeError, DispatchError, EncodeError, EventType,
    Metadata, NewEvent, Position, Query, QueryItem, ReadOptions, Revision, StreamId, Tags,
    ValidationError, dispatch, dispatch_with_query, load_stream, react_all, reactor_fn,
    read_context,
};
use tokio::sync::Barrier;

use crate::model::{Bounded, CountingCodec, KitCodec, KitEvent, LIMIT_REACHED, Panicking};
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

mod cached;
mod ids;

pub use cached::context_limit_through_the_cache;
use cached::{
    cache_after_a_decision_that_appends_nothing, cache_after_an_empty_decision_on_an_empty_context,
    cache_after_refusals_and_panics,
};
use ids::{
    a_keyed_retry_replays_whatever_it_would_decide_now,
    an_id_stored_with_other_content_is_a_conflict, repeated_ids_in_one_append_are_refused,
    the_same_append_again_is_a_replay,
};

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
        dispatch_encode_error_writes_nothing,
        read_context_folds_matching_events,
        load_stream_folds_the_stream,
        stream_dispatch_revisions,
        stream_dispatch_domain_error,
        idempotent_dispatch_appends_once,
        idempotent_racers_append_once,
        // Event ids.
        repeated_ids_in_one_append_are_refused,
        an_id_stored_with_other_content_is_a_conflict,
        the_same_append_again_is_a_replay,
        a_keyed_retry_replays_whatever_it_would_decide_now,
        // Cached dispatch.
        cache_after_a_decision_that_appends_nothing,
        cache_after_an_empty_decision_on_an_empty_context,
        cache_after_refusals_and_panics,
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

// ---------------------------------------------------------------- matching

async fn match_all_events<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, Query::all(), forwards(), &[0, 1, 2, 3, 4, 5, 6, 7]).await
}

async fn match_type_only<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&["A"], &[])?, forwards(), &[0, 2, 4]).await
}

async fn match_tag_only<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&[], &["x:1"])?, forwards(), &[0, 1, 4, 6]).await
}

async fn match_type_and_tag<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&["A"], &["x:1"])?, forwards(), &[0, 4]).await
}

async fn match_types_are_ored<S: EventStore>(store: S) -> CaseResult {
    expect_read(
        &store,
        query(&["A", "C"], &[])?,
        forwards(),
        &[0, 2, 3, 4, 6],
    )
    .await
}

async fn match_tags_are_anded<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&[], &["x:1", "y:1"])?, forwards(), &[1, 4]).await
}

async fn match_items_are_ored<S: EventStore>(store: S) -> CaseResult {
    let q = Query::from_items([item(&["A"], &["y:1"])?, item(&["B"], &[])?]);
    expect_read(&store, q, forwards(), &[1, 2, 4, 5, 7]).await
}

async fn match_empty_item_list_is_all<S: EventStore>(store: S) -> CaseResult {
    ensure!(
        Query::from_items([]).is_all(),
        "an empty item list must mean all events"
    );
    expect_read(
        &store,
        Query::from_items([]),
        forwards(),
        &[0, 1, 2, 3, 4, 5, 6, 7],
    )
    .await
}

async fn match_unconstrained_item_is_all<S: EventStore>(store: S) -> CaseResult {
    let q = Query::from_items([item(&["A"], &["x:1"])?, QueryItem::new()]);
    expect_read(&store, q, forwards(), &[0, 1, 2, 3, 4, 5, 6, 7]).await
}

async fn match_tags_exactly<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&[], &["x:10"])?, forwards(), &[5]).await?;
    let none = store
        .read(&query(&[], &["x:"])?, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure!(none.events.is_empty(), "a tag prefix must not match");
    Ok(())
}

async fn match_nothing_still_reports_head<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&["D"], &[])?, forwards(), &[]).await
}

// ---------------------------------------------------------------- reads

async fn read_empty_store_has_no_head<S: EventStore>(store: S) -> CaseResult {
    let read = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure!(read.events.is_empty(), "an empty store returned events");
    ensure_eq!(read.head, None, "head of an empty store");
    Ok(())
}

async fn read_from_is_inclusive<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let read = store
        .read(&Query::all(), forwards().from(positions[2]))
        .await
        .map_err(|e| e.to_string())?;
    let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    ensure_eq!(got, positions[2..].to_vec(), "read from the third position");
    Ok(())
}

async fn read_backwards<S: EventStore>(store: S) -> CaseResult {
    expect_read(
        &store,
        Query::all(),
        forwards().backwards(),
        &[7, 6, 5, 4, 3, 2, 1, 0],
    )
    .await
}

async fn read_backwards_from<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let read = store
        .read(
            &query(&["A"], &[])?,
            forwards().backwards().from(positions[3]),
        )
        .await
        .map_err(|e| e.to_string())?;
    let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    ensure_eq!(
        got,
        vec![positions[2], positions[0]],
        "type A backwards from the fourth event"
    );
    Ok(())
}

async fn read_limit<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, Query::all(), forwards().limit(3), &[0, 1, 2]).await
}

async fn read_limit_backwards<S: EventStore>(store: S) -> CaseResult {
    expect_read(
        &store,
        query(&["B"], &[])?,
        forwards().backwards().limit(2),
        &[7, 5],
    )
    .await
}

async fn read_query_from_and_limit<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let read = store
        .read(&query(&["A"], &[])?, forwards().from(positions[1]).limit(1))
        .await
        .map_err(|e| e.to_string())?;
    let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    ensure_eq!(got, vec![positions[2]], "first A from the second event");
    let zero = store
        .read(&Query::all(), forwards().limit(0))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(zero.events.is_empty(), "limit 0 returned events");
    Ok(())
}

async fn read_from_beyond_head<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let beyond = Position::new(positions[7].get() + 1000).ok_or("position overflow")?;
    let read = store
        .read(&Query::all(), forwards().from(beyond))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        read.events.is_empty(),
        "read beyond the head returned events"
    );
    ensure_eq!(read.head, Some(positions[7]), "head");
    Ok(())
}

async fn read_positions_strictly_increase<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    store
        .append(
            &stream("batch"),
            vec![raw("A", &[])?, raw("B", &[])?, raw("C", &[])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let read = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 11, "events stored");
    ensure!(
        read.events
            .windows(2)
            .all(|w| w[0].position < w[1].position),
        "positions are not strictly increasing"
    );
    ensure_eq!(read.head, read.events.last().map(|e| e.position), "head");
    Ok(())
}

async fn read_stream_in_revision_order<S: EventStore>(store: S) -> CaseResult {
    let s = stream("order");
    for i in 0..5 {
        store
            .append(&s, vec![raw(&format!("T{i}"), &[])?], AppendCondition::None)
            .await
            .map_err(|e| e.to_string())?;
        store
            .append(
                &stream("other"),
                vec![raw("X", &[])?],
                AppendCondition::None,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let read = store.read_stream(&s).await.map_err(|e| e.to_string())?;
    let revisions: Vec<u64> = read.events.iter().map(|e| e.revision).collect();
    ensure_eq!(revisions, vec![0, 1, 2, 3, 4], "revisions");
    let types: Vec<&str> = read.events.iter().map(|e| e.event_type.as_str()).collect();
    ensure_eq!(types, vec!["T0", "T1", "T2", "T3", "T4"], "types");
    ensure_eq!(read.revision, Revision::Current(4), "stream revision");
    ensure!(
        read.events.iter().all(|e| e.stream == s),
        "an event of another stream was returned"
    );
    Ok(())
}

async fn read_unknown_stream<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let read = store
        .read_stream(&stream("nobody"))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(read.events.is_empty(), "unknown stream returned events");
    ensure_eq!(
        read.revision,
        Revision::NoEvents,
        "revision of an unknown stream"
    );
    Ok(())
}

async fn stored_fields_round_trip<S: EventStore>(store: S) -> CaseResult {
    let awkward = "it's \"quoted\"; DROP TABLE factos_events; -- \\ % _ $1 名前 🎟️";
    let s = StreamId::new(format!("stream {awkward}")).map_err(|e| e.to_string())?;
    let tags =
        Tags::parse([format!("tag:{awkward}"), "plain".to_string()]).map_err(|e| e.to_string())?;
    let metadata = Metadata::from_pairs([
        ("who", awkward),
        ("multi", "line one\nline two"),
        ("empty", ""),
    ])
    .map_err(|e| e.to_string())?;
    let data: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let event = NewEvent::new(
        EventType::new(format!("Type {awkward}")).map_err(|e| e.to_string())?,
        data.clone(),
    )
    .with_tags(tags.clone())
    .with_metadata(metadata.clone())
    .with_version(7);
    let id = event.id;
    store
        .append(&s, vec![event], AppendCondition::None)
        .await
        .map_err(|e| e.to_string())?;
    let q = Query::tags([factos::Tag::new(format!("tag:{awkward}")).map_err(|e| e.to_string())?]);
    let read = store
        .read(&q, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 1, "events read back by the awkward tag");
    let stored = &read.events[0];
    ensure_eq!(stored.id, id, "id");
    ensure_eq!(stored.stream, s, "stream");
    ensure_eq!(
        stored.event_type.as_str(),
        format!("Type {awkward}"),
        "type"
    );
    ensure_eq!(stored.version, 7, "version");
    ensure_eq!(stored.tags, tags, "tags");
    ensure_eq!(stored.metadata, metadata, "metadata");
    ensure_eq!(stored.data, data, "payload bytes");
    ensure_eq!(stored.revision, 0, "revision");
    Ok(())
}

// ---------------------------------------------------------------- appends

async fn append_unconditionally<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    store
        .append(
            &stream("s"),
            vec![raw("A", &["x:1"])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(
        count(&store).await?,
        LOG.len() + 1,
        "events after an unconditional append"
    );
    Ok(())
}

async fn append_returns_what_is_stored<S: EventStore>(store: S) -> CaseResult {
    let committed = store
        .append(
            &stream("s"),
            vec![raw("A", &["x:1"])?, raw("B", &[])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let read = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(
        committed.events,
        read.events,
        "committed events versus events read back"
    );
    ensure_eq!(committed.position, read.head, "append position versus head");
    ensure_eq!(
        committed.current_revision,
        Revision::Current(1),
        "current revision"
    );
    Ok(())
}

async fn append_revisions_start_at_zero_and_are_contiguous<S: EventStore>(store: S) -> CaseResult {
    let s = stream("counter");
    let first = store
        .append(&s, vec![raw("A", &[])?], AppendCondition::None)
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(first.events[0].revision, 0, "first revision");
    ensure_eq!(
        first.current_revision,
        Revision::Current(0),
        "revision after one event"
    );
    let batch = store
        .append(
            &s,
            vec![raw("A", &[])?, raw("A", &[])?, raw("A", &[])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let revisions: Vec<u64> = batch.events.iter().map(|e| e.revision).collect();
    ensure_eq!(revisions, vec![1, 2, 3], "batch revisions");
    ensure_eq!(
        batch.current_revision,
        Revision::Current(3),
        "revision after the batch"
    );
    ensure!(
        batch
            .events
            .windows(2)
            .all(|w| w[0].position < w[1].position),
        "batch positions not increasing"
    );
    ensure_eq!(
        batch.position,
        batch.events.last().map(|e| e.position),
        "append position"
    );
    Ok(())
}

async fn append_revisions_are_per_stream<S: EventStore>(store: S) -> CaseResult {
    for name in ["a", "b", "a", "c", "b", "a"] {
        store
            .append(&stream(name), vec![raw("A", &[])?], AppendCondition::None)
            .await
            .map_err(|e| e.to_string())?;
    }
    for (name, revision) in [("a", 2), ("b", 1), ("c", 0)] {
        let read = store
            .read_stream(&stream(name))
            .await
            .map_err(|e| e.to_string())?;
        ensure_eq!(
            read.revision,
            Revision::Current(revision),
            format!("revision of stream {name}")
        );
    }
    Ok(())
}

async fn condition_without_after_fails_on_any_match<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(query(&["A"], &["y:1"])?, None);
    let outcome = store
        .append(&stream("s"), vec![raw("A", &["y:1"])?], condition)
        .await;
    expect_condition_failed(outcome, "matching events exist and after is none")
}

async fn condition_without_after_passes_without_match<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(query(&["A"], &["y:2"])?, None);
    store
        .append(&stream("s"), vec![raw("A", &["y:2"])?], condition)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn condition_after_passes_without_later_match<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    // Type A with x:1 is at indexes 0 and 4: after the 5th event nothing matches.
    let condition =
        AppendCondition::fail_if_events_match(query(&["A"], &["x:1"])?, Some(positions[4]));
    store
        .append(&stream("s"), vec![raw("A", &["x:1"])?], condition)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn condition_after_fails_on_later_match<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let condition =
        AppendCondition::fail_if_events_match(query(&["A"], &["x:1"])?, Some(positions[3]));
    let outcome = store
        .append(&stream("s"), vec![raw("A", &["x:1"])?], condition)
        .await;
    expect_condition_failed(outcome, "a matching event exists after `after`")
}

async fn condition_after_beyond_head_passes<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let beyond = Position::new(positions[7].get() + 1000).ok_or("position overflow")?;
    let condition = AppendCondition::fail_if_events_match(Query::all(), Some(beyond));
    store
        .append(&stream("s"), vec![raw("A", &[])?], condition)
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(
        count(&store).await?,
        LOG.len() + 1,
        "events after the append"
    );
    Ok(())
}

async fn condition_ignores_later_non_matching_events<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    // After the first event, only events that are not (C with x:1)... except index 6.
    let condition =
        AppendCondition::fail_if_events_match(query(&["C"], &["x:1"])?, Some(positions[6]));
    store
        .append(&stream("s"), vec![raw("C", &["x:1"])?], condition)
        .await
        .map_err(|e| e.to_string())?;
    let stale = AppendCondition::fail_if_events_match(query(&["C"], &["x:1"])?, Some(positions[5]));
    let outcome = store
        .append(&stream("s"), vec![raw("C", &["x:1"])?], stale)
        .await;
    expect_condition_failed(outcome, "C x:1 appended after the sixth event")
}

async fn condition_is_checked_for_empty_appends<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(query(&["B"], &[])?, None);
    let outcome = store.append(&stream("s"), Vec::new(), condition).await;
    expect_condition_failed(outcome, "an empty append with a failing condition")
}

async fn empty_append_changes_nothing<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(query(&["B"], &[])?, Some(positions[7]));
    let committed = store
        .append(&stream("seed"), Vec::new(), condition)
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        committed.events.is_empty(),
        "an empty append returned events"
    );
    ensure_eq!(committed.position, None, "position of an empty append");
    ensure_eq!(
        committed.current_revision,
        Revision::Current(7),
        "the stream's revision is reported"
    );
    ensure_eq!(
        count(&store).await?,
        LOG.len(),
        "events after an empty append"
    );
    Ok(())
}

async fn failed_condition_writes_nothing<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(Query::all(), None);
    let outcome = store
        .append(
            &stream("s"),
            vec![raw("A", &[])?, raw("B", &[])?],
            condition,
        )
        .await;
    expect_condition_failed(outcome, "condition on all events")?;
    ensure_eq!(
        count(&store).await?,
        LOG.len(),
        "events after a failed append"
    );
    let read = store
        .read_stream(&stream("s"))
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(
        read.revision,
        Revision::NoEvents,
        "revision of the refused stream"
    );
    Ok(())
}

async fn oversized_payload_is_refused<S: EventStore>(store: S) -> CaseResult {
    let big = NewEvent::new(
        EventType::new("Big").map_err(|e| e.to_string())?,
        vec![7; factos::store::DEFAULT_MAX_PAYLOAD_BYTES + 1],
    );
    let outcome = store
        .append(
            &stream("s"),
            vec![raw("A", &[])?, big],
            AppendCondition::None,
        )
        .await;
    ensure!(
        matches!(
            outcome,
            Err(AppendError::Invalid(
                ValidationError::PayloadTooLarge { .. }
            ))
        ),
        "expected PayloadTooLarge, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, 0, "events after a refused append");
    Ok(())
}

async fn too_many_events_are_refused<S: EventStore>(store: S) -> CaseResult {
    let events = (0..=factos::store::DEFAULT_MAX_EVENTS_PER_APPEND)
        .map(|_| raw("A", &[]))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = store
        .append(&stream("s"), events, AppendCondition::None)
        .await;
    ensure!(
        matches!(
            outcome,
            Err(AppendError::Invalid(ValidationError::TooManyEvents { .. }))
        ),
        "expected TooManyEvents, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, 0, "events after a refused append");
    Ok(())
}

// ---------------------------------------------------------------- dispatch

async fn dispatch_with_query_returns_committed_events<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let q = query(&["A"], &["x:1"])?;
    let command = vec![
        KitEvent::new("A", &["x:1", "z:9"]),
        KitEvent::new("B", &["x:1"]),
    ];
    let result = dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(result.events.len(), 2, "recorded events");
    ensure_eq!(
        result.events[0].event.body,
        "2",
        "the decision saw the two matching events"
    );
    ensure_eq!(
        result.append.current_revision,
        Revision::Current(1),
        "current revision"
    );
    ensure_eq!(
        result.append.position,
        result.events.last().map(|e| e.position),
        "append position"
    );
    let read = store
        .read(&Query::all(), forwards().from(result.events[0].position))
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 2, "events read back");
    for (recorded, stored) in result.events.iter().zip(&read.events) {
        ensure_eq!(recorded.id, stored.id, "id");
        ensure_eq!(recorded.position, stored.position, "position");
        ensure_eq!(recorded.revision, stored.revision, "revision");
        ensure_eq!(recorded.tags, stored.tags, "tags");
        ensure_eq!(recorded.metadata, stored.metadata, "metadata");
        ensure_eq!(
            KitCodec::default()
                .decode(stored)
                .map_err(|e| e.to_string())?,
            recorded.event,
            "decoded event"
        );
    }
    Ok(())
}

async fn dispatch_with_query_domain_error_writes_nothing<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let q = query(&[], &["x:1"])?;
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 4 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &["x:1"])],
    )
    .await;
    ensure!(
        matches!(outcome, Err(DispatchError::Domain(LIMIT_REACHED))),
        "expected the domain error, got {outcome:?}"
    );
    ensure_eq!(
        count(&store).await?,
        LOG.len(),
        "events after a refused command"
    );
    Ok(())
}

async fn dispatch_with_query_without_events<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let result = dispatch_with_query(
        &store,
        &stream("seed"),
        &query(&["A"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &Vec::new(),
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure!(
        result.events.is_empty(),
        "no event was decided but some were recorded"
    );
    ensure_eq!(result.append.position, None, "position");
    ensure_eq!(
        result.append.current_revision,
        Revision::Current(7),
        "the stream's current revision"
    );
    let empty = dispatch_with_query(
        &store,
        &stream("fresh"),
        &query(&["A"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &Vec::new(),
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(
        empty.append.current_revision,
        Revision::NoEvents,
        "revision of an empty stream"
    );
    ensure_eq!(
        empty.append.current_revision.as_i64(),
        -1,
        "the original's -1"
    );
    ensure_eq!(count(&store).await?, LOG.len(), "events");
    Ok(())
}

async fn dispatch_with_query_many_events<S: EventStore>(store: S) -> CaseResult {
    let command: Vec<KitEvent> = (0..200)
        .map(|i| KitEvent::new("Many", &["batch:1", &format!("n:{i}")]))
        .collect();
    let result = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["Many"], &[])?,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &command,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(result.events.len(), 200, "recorded events");
    let revisions: Vec<u64> = result.events.iter().map(|e| e.revision).collect();
    ensure_eq!(revisions, (0..200).collect::<Vec<u64>>(), "revisions");
    ensure!(
        result
            .events
            .windows(2)
            .all(|w| w[0].position < w[1].position),
        "positions not increasing"
    );
    for (i, recorded) in result.events.iter().enumerate() {
        ensure_eq!(recorded.event.tags[1], format!("n:{i}"), "event order");
    }
    let read = store
        .read(&query(&[], &["batch:1"])?, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 200, "events found by their tag");
    Ok(())
}

async fn dispatch_decode_error_on_matching_row<S: EventStore>(store: S) -> CaseResult {
    store
        .append(
            &stream("foreign"),
            vec![raw(KitCodec::UNDECODABLE, &["x:1"])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&[], &["x:1"])?,
        &Bounded { limit: 10 },
        &KitCodec::strict(),
        &vec![KitEvent::new("A", &["x:1"])],
    )
    .await;
    ensure!(
        matches!(
            outcome,
            Err(DispatchError::Decode(DecodeError::UnknownEvent { .. }))
        ),
        "expected an unknown-event decode error, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, 1, "events after a failed decode");
    Ok(())
}

async fn codec_sees_only_matching_rows<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    store
        .append(
            &stream("foreign"),
            vec![raw(KitCodec::UNDECODABLE, &["x:1"])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let codec = CountingCodec {
        inner: KitCodec::strict(),
        ..CountingCodec::default()
    };
    let q = query(&["A"], &["y:1"])?;
    dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 10 },
        &codec,
        &vec![KitEvent::new("A", &["y:1"])],
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    // Type A with y:1 matches indexes 2 and 4 of the log: two rows decoded, no more.
    ensure_eq!(
        codec.decoded.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "rows decoded"
    );
    Ok(())
}

async fn dispatch_panic_is_caught<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["A"], &[])?,
        &Panicking,
        &KitCodec::default(),
        &(),
    )
    .await;
    ensure!(
        matches!(outcome, Err(DispatchError::Panicked { .. })),
        "expected a caught panic, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, LOG.len(), "events after a panic");
    // The store still works afterwards.
    let q = query(&["A"], &[])?;
    dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &[])],
    )
    .await
    .map_err(|e| format!("after a panic: {e:?}"))?;
    Ok(())
}

async fn dispatch_encode_error_writes_nothing<S: EventStore>(store: S) -> CaseResult {
    let command = vec![
        KitEvent::new("A", &["fine"]),
        KitEvent::new("A", &["bad\0tag"]),
    ];
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["A"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
    )
    .await;
    ensure!(
        matches!(
            outcome,
            Err(DispatchError::Encode(EncodeError::Invalid(
                ValidationError::ForbiddenCharacter { .. }
            )))
        ),
        "expected an encode error, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, 0, "events after an encode error");
    Ok(())
}

async fn read_context_folds_matching_events<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let q = query(&["A"], &[])?;
    let context = read_context(&store, &q, &Bounded { limit: 10 }, &KitCodec::default())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(context.state, 3, "folded state");
    ensure_eq!(context.events.len(), 3, "events");
    ensure_eq!(
        context.position,
        Some(positions[4]),
        "position of the last matching event, not the head"
    );
    ensure_eq!(
        context.append_condition,
        AppendCondition::fail_if_events_match(q.clone(), Some(positions[4])),
        "append condition"
    );
    let fresh = read_context(
        &store,
        &query(&["Z"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ensure_eq!(fresh.position, None, "position of an empty context");
    ensure_eq!(fresh.state, 0, "state of an empty context");
    Ok(())
}

async fn load_stream_folds_the_stream<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let loaded = load_stream(
        &store,
        &stream("seed"),
        &Bounded { limit: 10 },
        &KitCodec::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ensure_eq!(loaded.state, LOG.len(), "folded state");
    ensure_eq!(loaded.revision, Revision::Current(7), "revision");
    ensure_eq!(loaded.events.len(), LOG.len(), "events");
    let empty = load_stream(
        &store,
        &stream("none"),
        &Bounded { limit: 10 },
        &KitCodec::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ensure_eq!(
        empty.revision,
        Revision::NoEvents,
        "revision of an empty stream"
    );
    Ok(())
}

async fn stream_dispatch_revisions<S: EventStore>(store: S) -> CaseResult {
    let s = stream("account");
    for expected in 0..5u64 {
        let result = dispatch(
            &store,
            &s,
            &Bounded { limit: 10 },
            &KitCodec::default(),
            &vec![KitEvent::new("Deposited", &[])],
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        ensure_eq!(result.events[0].revision, expected, "revision");
        ensure_eq!(
            result.events[0].event.body,
            expected.to_string(),
            "events the decision saw"
        );
        ensure_eq!(
            result.append.current_revision,
            Revision::Current(expected),
            "current revision"
        );
    }
    Ok(())
}

async fn stream_dispatch_domain_error<S: EventStore>(store: S) -> CaseResult {
    let s = stream("once");
    dispatch(
        &store,
        &s,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &[])],
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    let outcome = dispatch(
        &store,
        &s,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &[])],
    )
    .await;
    ensure!(
        matches!(outcome, Err(DispatchError::Domain(LIMIT_REACHED))),
        "expected the domain error, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, 1, "events");
    Ok(())
}

async fn idempotent_dispatch_appends_once<S: EventStore>(store: S) -> CaseResult {
    let q = query(&["Paid"], &["invoice:1"])?;
    let key = uuid::Uuid::now_v7();
    let command = vec![
        KitEvent::new("Paid", &["invoice:1"]),
        KitEvent::new("Paid", &["invoice:1", "part:2"]),
    ];
    let first = factos::dispatch_with_query_idempotent(
        &store,
        &stream("invoice-1"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
        key,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    // The retry decides on a context that now holds the first attempt's events,
    // and still reports what that attempt committed instead of appending again.
    let retry = factos::dispatch_with_query_idempotent(
        &store,
        &stream("invoice-1"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
        key,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    let ids = |d: &factos::Dispatch<KitEvent>| {
        d.events
            .iter()
            .map(|e| (e.id, e.position))
            .collect::<Vec<_>>()
    };
    ensure_eq!(
        ids(&retry),
        ids(&first),
        "the retry reports the first attempt's events"
    );
    ensure_eq!(
        retry.events[0].event.body,
        "0",
        "the first attempt's payload is reported"
    );
    ensure_eq!(count(&store).await?, 2, "events after a retried dispatch");
    ensure_eq!(
        first.events[0].id,
        factos::event_id(key, 0),
        "ids derive from the key"
    );
    let other = factos::dispatch_with_query_idempotent(
        &store,
        &stream("invoice-1"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
        uuid::Uuid::now_v7(),
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(other.events[0].revision, 2, "another key appends");
    Ok(())
}

async fn idempotent_racers_append_once<S: EventStore + Clone + 'static>(store: S) -> CaseResult {
    let key = uuid::Uuid::now_v7();
    let barrier = Arc::new(Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let q = query(&["Paid"], &["invoice:2"])?;
                barrier.wait().await;
                let command = vec![KitEvent::new("Paid", &["invoice:2"])];
                loop {
                    match factos::dispatch_with_query_idempotent(
                        &store,
                        &stream("invoice-2"),
                        &q,
                        &Bounded { limit: 100 },
                        &KitCodec::default(),
                        &command,
                        key,
                    )
                    .await
                    {
                        Ok(done) => {
                            return Ok::<_, String>(
                                done.events
                                    .iter()
                                    .map(|e| (e.id, e.position))
                                    .collect::<Vec<_>>(),
                            );
                        }
                        Err(e) if e.is_retryable() => {}
                        Err(e) => return Err(format!("{e:?}")),
                    }
                }
            })
        })
        .collect();
    let mut reported = Vec::new();
    for task in tasks {
        reported.push(task.await.map_err(|e| e.to_string())??);
    }
    let stored: Vec<_> = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?
        .events
        .iter()
        .map(|e| (e.id, e.position))
        .collect();
    ensure_eq!(stored.len(), 1, "events after eight racers with one key");
    ensure_eq!(
        stored[0].0,
        factos::event_id(key, 0),
        "the stored event's id derives from the key"
    );
    for events in reported {
        ensure_eq!(
            events,
            stored,
            "every racer reports the one stored event, id and position"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- the original tests

async fn original_register_user_stream_dispatch<S: EventStore>(store: S) -> CaseResult {
    let register = vec![KitEvent::new("UserRegistered", &["username:renata"])];
    let result = dispatch(
        &store,
        &stream("user-renata"),
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &register,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(result.events.len(), 1, "recorded events");
    let recorded = &result.events[0];
    ensure_eq!(recorded.revision, 0, "revision");
    ensure_eq!(recorded.event_type.as_str(), "UserRegistered", "type");
    ensure_eq!(recorded.version, 1, "version");
    ensure_eq!(
        recorded.tags,
        Tags::parse(["username:renata"]).map_err(|e| e.to_string())?,
        "tags"
    );
    ensure_eq!(
        result.append.current_revision,
        Revision::Current(0),
        "current revision"
    );
    let effects = react_all(
        &reactor_fn(|r: &factos::Recorded<KitEvent>| vec![r.event.clone()]),
        &result.events,
    );
    ensure_eq!(
        effects,
        vec![recorded.event.clone()],
        "reacting yields the event"
    );
    Ok(())
}

async fn original_undecodable_event_of_another_type<S: EventStore>(store: S) -> CaseResult {
    store
        .append(
            &stream("foreign"),
            vec![raw(KitCodec::UNDECODABLE, &["other:1"])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let result = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["A"], &["x:1"])?,
        &Bounded { limit: 10 },
        &KitCodec::strict(),
        &vec![KitEvent::new("A", &["x:1"])],
    )
    .await
    .map_err(|e| format!("an undecodable row outside the query broke the dispatch: {e:?}"))?;
    ensure_eq!(result.events.len(), 1, "recorded events");
    Ok(())
}

async fn original_twenty_five_streams<S: EventStore>(store: S) -> CaseResult {
    let q = query(&["Joined"], &["club:1"])?;
    for i in 0..25usize {
        let result = dispatch_with_query(
            &store,
            &stream(&format!("member-{i}")),
            &q,
            &Bounded { limit: 100 },
            &KitCodec::default(),
            &vec![KitEvent::new("Joined", &["club:1"])],
        )
        .await
        .map_err(|e| format!("dispatch {i}: {e:?}"))?;
        ensure_eq!(
            result.events[0].revision,
            0,
            format!("revision of stream {i}")
        );
        ensure_eq!(
            result.events[0].event.body,
            i.to_string(),
            format!("events seen by dispatch {i}")
        );
    }
    ensure_eq!(count(&store).await?, 25, "events");
    Ok(())
}

/// Runs `attempts` concurrent dispatches (at most `parallel` at a time) on one
/// boundary with a capacity; returns (accepted, refused by the domain).
async fn ticket_race<S: EventStore + Clone + 'static>(
    store: &S,
    concert: &str,
    capacity: usize,
    attempts: usize,
    parallel: usize,
) -> Result<(usize, usize), String> {
    let q = query(&["TicketSold"], &[&format!("event:{concert}")])?;
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(attempts);
    for buyer in 0..attempts {
        let (store, q, permits) = (store.clone(), q.clone(), permits.clone());
        let tag = format!("event:{concert}");
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let command = vec![KitEvent::new(
                "TicketSold",
                &[&tag, &format!("buyer:{buyer}")],
            )];
            let buyer_stream = stream(&format!("buyer-{buyer}"));
            // A condition failure means the context moved: decide again, as an application would.
            for _ in 0..1000 {
                match dispatch_with_query(
                    &store,
                    &buyer_stream,
                    &q,
                    &Bounded { limit: capacity },
                    &KitCodec::default(),
                    &command,
                )
                .await
                {
                    Ok(_) => return Ok(true),
                    Err(DispatchError::Domain(_)) => return Ok(false),
                    Err(e) if e.is_retryable() => {}
                    Err(e) => return Err(format!("buyer {buyer}: {e:?}")),
                }
            }
            Err(format!("buyer {buyer}: too many retries"))
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    for task in tasks {
        match task.await.map_err(|e| e.to_string())? {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(e) => return Err(e),
        }
    }
    Ok((accepted, refused))
}

async fn original_tickets<S: EventStore + Clone + 'static>(store: S) -> CaseResult {
    let (accepted, refused) = ticket_race(&store, "e1", 100, 300, 128).await?;
    ensure_eq!(accepted, 100, "tickets accepted");
    ensure_eq!(refused, 200, "sold out");
    let sold = store
        .read(&query(&["TicketSold"], &["event:e1"])?, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(sold.events.len(), 100, "events stored");
    Ok(())
}

// ---------------------------------------------------------------- concurrency

/// Racers on a boundary per round.
const RACERS: usize = 16;
/// Rounds of the racers cases here (the concurrency oracle runs many more).
const RACE_ROUNDS: usize = 10;

async fn racers_on_one_boundary_one_winner<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    for round in 0..RACE_ROUNDS {
        let boundary = format!("race:{round}");
        let q = query(&[], &[&boundary])?;
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|racer| {
                let (store, q, barrier, boundary) =
                    (store.clone(), q.clone(), barrier.clone(), boundary.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let command = vec![KitEvent::new("Claimed", &[&boundary])];
                    dispatch_with_query(
                        &store,
                        &stream(&format!("racer-{racer}")),
                        &q,
                        &Bounded { limit: 1 },
                        &KitCodec::default(),
                        &command,
                    )
                    .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.map_err(|e| e.to_string())? {
                Ok(_) => winners += 1,
                Err(DispatchError::Domain(_) | DispatchError::AppendConditionFailed(_)) => {}
                Err(e) => return Err(format!("round {round}: unexpected error {e:?}")),
            }
        }
        ensure_eq!(winners, 1, format!("winners in round {round}"));
        let stored = store
            .read(&q, forwards())
            .await
            .map_err(|e| e.to_string())?;
        ensure_eq!(
            stored.events.len(),
            1,
            format!("events on the boundary in round {round}")
        );
    }
    Ok(())
}

async fn racers_on_one_stream_one_winner<S: EventStore + Clone + 'static>(store: S) -> CaseResult {
    for round in 0..RACE_ROUNDS {
        let s = stream(&format!("contested-{round}"));
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    dispatch(
                        &store,
                        &s,
                        &Bounded { limit: 1 },
                        &KitCodec::default(),
                        &vec![KitEvent::new("Claimed", &[])],
                    )
                    .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.map_err(|e| e.to_string())? {
                Ok(_) => winners += 1,
                Err(
                    DispatchError::Domain(_)
                    | DispatchError::AppendConditionFailed(ConditionFailure::StreamRevision {
                        ..
                    }),
                ) => {}
                Err(e) => return Err(format!("round {round}: unexpected error {e:?}")),
            }
        }
        ensure_eq!(winners, 1, format!("winners in round {round}"));
        let read = store.read_stream(&s).await.map_err(|e| e.to_string())?;
        ensure_eq!(
            read.revision,
            Revision::Current(0),
            format!("revision in round {round}")
        );
    }
    Ok(())
}

async fn disjoint_boundaries_never_conflict<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    const WRITERS: usize = 16;
    const DISPATCHES: usize = 10;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let boundary = format!("own:{writer}");
                let q = query(&["Step"], &[&boundary])?;
                barrier.wait().await;
                for step in 0..DISPATCHES {
                    let command = vec![KitEvent::new("Step", &[&boundary])];
                    let result = dispatch_with_query(
                        &store,
                        &stream(&format!("writer-{writer}")),
                        &q,
                        &Bounded { limit: usize::MAX },
                        &KitCodec::default(),
                        &command,
                    )
                    .await
                    .map_err(|e| format!("writer {writer}, step {step}: {e:?}"))?;
                    ensure_eq!(
                        result.events[0].event.body,
                        step.to_string(),
                        format!("writer {writer} context")
                    );
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    ensure_eq!(count(&store).await?, WRITERS * DISPATCHES, "events");
    Ok(())
}

async fn shared_stream_label_disjoint_queries<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    const WRITERS: usize = 16;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let boundary = format!("mine:{writer}");
                let q = query(&[], &[&boundary])?;
                barrier.wait().await;
                dispatch_with_query(
                    &store,
                    &stream("shared-label"),
                    &q,
                    &Bounded { limit: 1 },
                    &KitCodec::default(),
                    &vec![KitEvent::new("Done", &[&boundary])],
                )
                .await
                .map_err(|e| format!("writer {writer}: {e:?}"))?;
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let read = store
        .read_stream(&stream("shared-label"))
        .await
        .map_err(|e| e.to_string())?;
    let revisions: Vec<u64> = read.events.iter().map(|e| e.revision).collect();
    ensure_eq!(
        revisions,
        (0..WRITERS as u64).collect::<Vec<_>>(),
        "revisions of the shared stream"
    );
    Ok(())
}
