//! A decision: read the context (settled at the read's head), decide, and
//! in the writer's transaction append only if nothing matching the query
//! (or, on a stream, no event of the stream) was committed after that head;
//! when something was, read it and decide again.

use factos::store::{
    DecisionError, DecisionProcess, earlier_attempt, event_id_conflict, planned_event_ids, replayed,
};
use factos::{
    AppendCondition, Committed, Folded, Position, Query, Revision, StoreError, StoredEvent,
    StreamId,
};

use crate::SqliteStore;
use crate::rows;
use crate::write::{Outcome, Write};

/// What a decision's context is.
#[derive(Clone)]
pub(crate) enum Scope {
    Query(Query),
    Stream,
}

impl SqliteStore {
    pub(crate) async fn decide<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        scope: Scope,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.limits().check_context(folded.events)?;
        // Asked before any `.await`: the process is not `Sync`.
        let planned = process.planned_event_id(0).map(|first| {
            (
                first,
                planned_event_ids(process, self.limits().max_events_per_append),
            )
        });
        if let Some((first, planned)) = planned.clone()
            && let Some(replay) = self.earlier_attempt_of(stream, first, planned).await?
        {
            return Ok(replay);
        }
        let mut fed = folded.position;
        let mut context = folded;
        let mut revision = Revision::NoEvents;
        let mut last_conflict = None;
        // A cached state (a query decision folded up to a settled position):
        // decide on it as it is, and let the writer's condition prove it
        // current; a refusal or a moved context goes the read path below.
        if let (Scope::Query(_), Some(_)) = (&scope, folded.position)
            && let Ok(decided) = process.decide()
            && self.limits().check(&decided).is_ok()
        {
            let write = Self::write_of(stream, &scope, decided, folded.position, revision, process);
            match self.write_decision(write, process).await? {
                Outcome::Committed(mut committed) => {
                    committed.context_position = folded.position;
                    committed.context_events = folded.events;
                    return Ok(committed);
                }
                // Ids found stored by a decision on a state that may be
                // stale, or a moved context: decide again on a fresh read.
                Outcome::IdsStored { .. } | Outcome::Failed(_) => self.retried(),
            }
        }
        for _ in 0..self.inner.options.max_decision_attempts.max(1) {
            let (events, head) = self.context_after(stream, &scope, fed).await?;
            for event in &events {
                context.events += 1;
                self.limits().check_context(context.events)?;
                process.evolve(event).map_err(DecisionError::Process)?;
                fed = Some(event.position);
                revision = Revision::Current(event.revision);
            }
            // The read is settled at its head: nothing can appear at or
            // below it later.
            let read_up_to = fed.max(head);
            context.position = read_up_to;
            let decided = process.decide().map_err(DecisionError::Process)?;
            self.limits()
                .check(&decided)
                .map_err(DecisionError::Invalid)?;
            let write = Self::write_of(stream, &scope, decided, read_up_to, revision, process);
            match self.write_decision(write, process).await? {
                Outcome::Committed(mut committed) => {
                    committed.context_position = context.position;
                    committed.context_events = context.events;
                    return Ok(committed);
                }
                Outcome::IdsStored { new, stored } => {
                    // A keyed retry that raced its first attempt: what that
                    // attempt committed, by its planned ids, whatever this
                    // decision decided.
                    if let Some((first, planned)) = planned.clone()
                        && let Some(replay) =
                            self.earlier_attempt_of(stream, first, planned).await?
                    {
                        return Ok(replay);
                    }
                    if stored.len() == new.len() && process.is_replay_of(stream, &new, &stored) {
                        return Ok(replayed(stream, stored, context));
                    }
                    return Err(DecisionError::Store(event_id_conflict(&new, &stored)));
                }
                Outcome::Failed(failure) => {
                    self.retried();
                    fed = read_up_to;
                    last_conflict = Some(failure);
                }
            }
        }
        Err(last_conflict.map_or_else(
            || DecisionError::Store(contention()),
            DecisionError::ConditionFailed,
        ))
    }

    /// A retry of a keyed command whose first attempt committed: what that
    /// attempt committed, without deciding again. `planned`: the ids its
    /// events get, from `first`.
    async fn earlier_attempt_of(
        &self,
        stream: &StreamId,
        first: uuid::Uuid,
        planned: Vec<uuid::Uuid>,
    ) -> Result<Option<Committed>, StoreError> {
        let ids = if planned.is_empty() {
            vec![first]
        } else {
            planned.clone()
        };
        let stored = self.with_reader(move |tx| rows::by_ids(tx, &ids)).await?;
        if !stored.iter().any(|e| e.id == first) {
            return Ok(None);
        }
        Ok(earlier_attempt(stream, &planned, stored)?
            .map(|s| replayed(stream, s, Folded::default())))
    }

    /// The context's events after `after` and the head, in one snapshot.
    async fn context_after(
        &self,
        stream: &StreamId,
        scope: &Scope,
        after: Option<Position>,
    ) -> Result<(Vec<StoredEvent>, Option<Position>), StoreError> {
        match scope {
            Scope::Query(query) => {
                let query = query.clone();
                self.with_reader(move |tx| rows::after(tx, &query, after))
                    .await
            }
            Scope::Stream => {
                let stream = stream.clone();
                self.with_reader(move |tx| rows::stream_after(tx, &stream, after))
                    .await
            }
        }
    }

    fn write_of<P: DecisionProcess>(
        stream: &StreamId,
        scope: &Scope,
        events: Vec<factos::NewEvent>,
        read_up_to: Option<Position>,
        revision: Revision,
        process: &P,
    ) -> Write {
        let (condition, expected) = match scope {
            Scope::Query(query) => (
                AppendCondition::fail_if_events_match(query.clone(), read_up_to),
                None,
            ),
            Scope::Stream => (AppendCondition::None, Some(revision)),
        };
        let other_streams = process.other_streams().to_vec();
        let targets = (!other_streams.is_empty()).then(|| {
            (0..events.len())
                .map(|i| process.event_stream(i).unwrap_or(stream).clone())
                .collect()
        });
        Write {
            stream: stream.clone(),
            events,
            condition,
            expected,
            targets,
            other_streams,
        }
    }
}

fn contention() -> StoreError {
    StoreError::new(
        factos::StoreErrorKind::Contention,
        "the decision's context kept moving; nothing was written",
    )
}
