//! Cases of event ids: unique in a store; an append is replayed only when the
//! stored events are that very append's.

use factos::store::{DecisionError, DecisionProcess};
use factos::{
    AppendCondition, AppendError, EventStore, NewEvent, StoreErrorKind, StoredEvent,
    ValidationError,
};

use super::{count, query, raw, stream};
use crate::CaseResult;

/// A decision that appends the given events whatever it is fed.
struct Fixed(Vec<NewEvent>);

impl DecisionProcess for Fixed {
    type Error = String;

    fn evolve(&mut self, _: &StoredEvent) -> Result<(), String> {
        Ok(())
    }

    fn decide(&mut self) -> Result<Vec<NewEvent>, String> {
        Ok(self.0.clone())
    }
}

fn is_id_conflict<T: std::fmt::Debug>(outcome: &Result<T, AppendError>) -> bool {
    matches!(outcome, Err(AppendError::Store(e)) if e.kind() == StoreErrorKind::EventIdConflict)
}

pub(super) async fn repeated_ids_in_one_append_are_refused<S: EventStore>(store: S) -> CaseResult {
    let first = raw("A", &["x:1"])?;
    let again = raw("B", &[])?.with_id(first.id);
    let refused = store
        .append(
            &stream("s"),
            vec![first.clone(), again.clone()],
            AppendCondition::None,
        )
        .await;
    ensure!(
        matches!(refused, Err(AppendError::Invalid(ValidationError::RepeatedEventId { id })) if id == first.id),
        "an append repeating an id: {refused:?}"
    );
    let q = query(&["A"], &[])?;
    let mut process = Fixed(vec![first, again]);
    let decided = store
        .decide_with_query(&stream("s"), &q, &mut process)
        .await;
    ensure!(
        matches!(
            decided,
            Err(DecisionError::Invalid(
                ValidationError::RepeatedEventId { .. }
            ))
        ),
        "a decision repeating an id: {decided:?}"
    );
    ensure_eq!(count(&store).await?, 0, "events after both refusals");
    Ok(())
}

pub(super) async fn an_id_stored_with_other_content_is_a_conflict<S: EventStore>(
    store: S,
) -> CaseResult {
    let stored = raw("A", &["x:1"])?;
    store
        .append(&stream("s"), vec![stored.clone()], AppendCondition::None)
        .await
        .map_err(|e| e.to_string())?;
    let other_data = NewEvent {
        data: b"{}".to_vec(),
        ..stored.clone()
    };
    let other_type = raw("B", &["x:1"])?.with_id(stored.id);
    for (what, batch) in [
        ("other payload", vec![other_data.clone()]),
        ("other type", vec![other_type]),
        (
            "the id second in a batch",
            vec![raw("A", &[])?, other_data.clone()],
        ),
    ] {
        let outcome = store
            .append(&stream("s"), batch, AppendCondition::None)
            .await;
        ensure!(
            is_id_conflict(&outcome),
            "{what}: expected an id conflict, got {outcome:?}"
        );
    }
    let elsewhere = store
        .append(
            &stream("other"),
            vec![stored.clone()],
            AppendCondition::None,
        )
        .await;
    ensure!(
        is_id_conflict(&elsewhere),
        "the same event on another stream: {elsewhere:?}"
    );
    let q = query(&["A"], &[])?;
    let mut process = Fixed(vec![other_data]);
    let decided = store
        .decide_with_query(&stream("s"), &q, &mut process)
        .await;
    ensure!(
        matches!(&decided, Err(DecisionError::Store(e)) if e.kind() == StoreErrorKind::EventIdConflict && !e.is_retry_safe()),
        "a decision reusing a stored id: {decided:?}"
    );
    let log = store
        .read(&factos::Query::all(), factos::ReadOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(log.events.len(), 1, "events after the conflicts");
    ensure_eq!(log.events[0].data, stored.data, "the stored payload");
    Ok(())
}

pub(super) async fn the_same_append_again_is_a_replay<S: EventStore>(store: S) -> CaseResult {
    let batch = vec![raw("A", &["x:1"])?, raw("B", &[])?];
    let first = store
        .append(&stream("s"), batch.clone(), AppendCondition::None)
        .await
        .map_err(|e| e.to_string())?;
    let again = store
        .append(&stream("s"), batch, AppendCondition::None)
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        again.replayed && !first.replayed,
        "replayed flags: {first:?} then {again:?}"
    );
    ensure_eq!(again.events, first.events, "the replayed events");
    ensure_eq!(again.position, first.position, "the replayed position");
    ensure_eq!(count(&store).await?, 2, "events after the replay");
    Ok(())
}

/// The exact retry of a conditional append whose first attempt committed
/// (its outcome unknown to the caller) is a replay: the same events, not a
/// condition failure caused by those very events.
pub(super) async fn the_same_conditional_append_again_is_a_replay<S: EventStore>(
    store: S,
) -> CaseResult {
    let batch = vec![raw("A", &["cond:1"])?];
    let condition = AppendCondition::fail_if_events_match(query(&[], &["cond:1"])?, None);
    let first = store
        .append(&stream("s"), batch.clone(), condition.clone())
        .await
        .map_err(|e| e.to_string())?;
    let again = store
        .append(&stream("s"), batch, condition)
        .await
        .map_err(|e| format!("the retry: {e:?}"))?;
    ensure!(again.replayed, "the retry was not a replay: {again:?}");
    ensure_eq!(again.events, first.events, "the replayed events");
    ensure_eq!(count(&store).await?, 1, "events after the replay");
    Ok(())
}

/// A keyed retry replays what its first attempt committed without deciding
/// again: decided again, on a context that now holds those events, the
/// command would be refused ("limit reached").
pub(super) async fn a_keyed_retry_replays_whatever_it_would_decide_now<S: EventStore>(
    store: S,
) -> CaseResult {
    use crate::model::{Bounded, KitCodec, KitEvent};
    let q = query(&["Paid"], &["invoice:3"])?;
    let command = vec![
        KitEvent::new("Paid", &["invoice:3"]),
        KitEvent::new("Paid", &["invoice:3"]),
    ];
    let key = uuid::Uuid::now_v7();
    let mut attempts = Vec::new();
    for attempt in ["first attempt", "the retry"] {
        let done = factos::dispatch_with_query_idempotent(
            &store,
            &stream("invoice-3"),
            &q,
            &Bounded { limit: 2 },
            &KitCodec::default(),
            &command,
            key,
        )
        .await
        .map_err(|e| format!("{attempt}: {e:?}"))?;
        attempts.push(done);
    }
    let (first, retry) = (&attempts[0], &attempts[1]);
    let ids = |d: &factos::Dispatch<KitEvent>| -> Vec<(uuid::Uuid, factos::Position)> {
        d.events.iter().map(|e| (e.id, e.position)).collect()
    };
    ensure_eq!(
        ids(retry),
        ids(first),
        "the retry reports the first attempt's events"
    );
    ensure_eq!(count(&store).await?, 2, "events after the retry");
    Ok(())
}
