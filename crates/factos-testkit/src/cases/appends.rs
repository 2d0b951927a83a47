//! Cases of appends and their conditions: revisions per stream from zero
//! without gaps, `FailIfEventsMatch` with and without `after` (beyond the
//! head too, and for an empty append), a failed condition writing nothing,
//! and the store limits refusing an oversized payload or too many events.

use factos::{
    AppendCondition, AppendError, EventStore, EventType, NewEvent, Position, Query, Revision,
    ValidationError,
};

use super::{LOG, count, expect_condition_failed, forwards, query, raw, seed, stream};
use crate::CaseResult;

pub(super) async fn append_unconditionally<S: EventStore>(store: S) -> CaseResult {
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

pub(super) async fn append_returns_what_is_stored<S: EventStore>(store: S) -> CaseResult {
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

pub(super) async fn append_revisions_start_at_zero_and_are_contiguous<S: EventStore>(
    store: S,
) -> CaseResult {
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

pub(super) async fn append_revisions_are_per_stream<S: EventStore>(store: S) -> CaseResult {
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

pub(super) async fn condition_without_after_fails_on_any_match<S: EventStore>(
    store: S,
) -> CaseResult {
    seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(query(&["A"], &["y:1"])?, None);
    let outcome = store
        .append(&stream("s"), vec![raw("A", &["y:1"])?], condition)
        .await;
    expect_condition_failed(outcome, "matching events exist and after is none")
}

pub(super) async fn condition_without_after_passes_without_match<S: EventStore>(
    store: S,
) -> CaseResult {
    seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(query(&["A"], &["y:2"])?, None);
    store
        .append(&stream("s"), vec![raw("A", &["y:2"])?], condition)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

pub(super) async fn condition_after_passes_without_later_match<S: EventStore>(
    store: S,
) -> CaseResult {
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

pub(super) async fn condition_after_fails_on_later_match<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let condition =
        AppendCondition::fail_if_events_match(query(&["A"], &["x:1"])?, Some(positions[3]));
    let outcome = store
        .append(&stream("s"), vec![raw("A", &["x:1"])?], condition)
        .await;
    expect_condition_failed(outcome, "a matching event exists after `after`")
}

pub(super) async fn condition_after_beyond_head_passes<S: EventStore>(store: S) -> CaseResult {
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

pub(super) async fn condition_ignores_later_non_matching_events<S: EventStore>(
    store: S,
) -> CaseResult {
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

pub(super) async fn condition_is_checked_for_empty_appends<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let condition = AppendCondition::fail_if_events_match(query(&["B"], &[])?, None);
    let outcome = store.append(&stream("s"), Vec::new(), condition).await;
    expect_condition_failed(outcome, "an empty append with a failing condition")
}

pub(super) async fn empty_append_changes_nothing<S: EventStore>(store: S) -> CaseResult {
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

pub(super) async fn failed_condition_writes_nothing<S: EventStore>(store: S) -> CaseResult {
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

pub(super) async fn oversized_payload_is_refused<S: EventStore>(store: S) -> CaseResult {
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

pub(super) async fn too_many_events_are_refused<S: EventStore>(store: S) -> CaseResult {
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
