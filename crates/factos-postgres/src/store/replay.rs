//! Idempotent dispatch: a keyed decision whose command already committed is
//! replayed (its earlier attempt's events reported again), and events whose
//! ids are stored by someone else are an id conflict.

use factos::store::{DecisionError, DecisionProcess};
use factos::{Committed, Folded, NewEvent, StoreError, StoredEvent, StreamId};

use crate::store::PostgresStore;
use crate::store::session::Session;

/// A decision's events whose ids were found stored, and the context it decided on.
pub(crate) struct IdsFound<'a> {
    pub(crate) stream: &'a StreamId,
    pub(crate) new: Vec<NewEvent>,
    pub(crate) stored: Vec<StoredEvent>,
    pub(crate) context: Folded,
}

impl PostgresStore {
    /// The ids a process plans for its events (an idempotent dispatch), at
    /// most one append's worth.
    pub(crate) fn planned_ids<P: DecisionProcess>(&self, process: &P) -> Vec<uuid::Uuid> {
        factos::store::planned_event_ids(process, self.limits().max_events_per_append)
    }

    /// What an earlier attempt with these planned ids committed, if it did:
    /// a keyed retry replays it without deciding again.
    pub(crate) async fn earlier_attempt(
        &self,
        client: &deadpool_postgres::Object,
        stream: &StreamId,
        planned: &[uuid::Uuid],
    ) -> Result<Option<Committed>, StoreError> {
        if planned.is_empty() {
            return Ok(None);
        }
        let stored = self.stored_with_id_list(client, planned).await?;
        Ok(factos::store::earlier_attempt(stream, planned, stored)?
            .map(|stored| factos::store::replayed(stream, stored, Folded::default())))
    }

    /// Replays a keyed decision whose command already committed, before it
    /// reads or decides anything. A first attempt (the common case) costs
    /// one index probe for its first planned id; only when that id is stored
    /// are all planned ids derived and looked up. (Looking up every id an
    /// append could hold, 1,000 by default, took a keyed dispatch on a hot
    /// boundary from 1,082 to 370 dispatches/s at 1 client: the bench's
    /// `Scoped+cache+combining+keys`.)
    pub(crate) async fn replay_before_deciding<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        // `&mut`: held across awaits, a shared reference would ask `P: Sync`.
        process: &mut P,
    ) -> Result<Option<Committed>, StoreError> {
        let Some(first) = process.planned_event_id(0) else {
            return Ok(None);
        };
        let client = self.client().await?;
        if self
            .stored_with_id_list(&client, &[first])
            .await?
            .is_empty()
        {
            return Ok(None);
        }
        let planned = self.planned_ids(&*process);
        self.earlier_attempt(&client, stream, &planned).await
    }

    /// Ends a locked decision whose events' ids were found stored: a replay
    /// of its own earlier attempt (committed, with its effects, if any,
    /// recorded then) or an id conflict.
    pub(crate) async fn replay_in_session<P: DecisionProcess>(
        &self,
        session: Session,
        process: &mut P,
        found: IdsFound<'_>,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let IdsFound {
            stream,
            new,
            stored,
            context,
        } = found;
        // A keyed retry that raced its first attempt decided on a context
        // holding that attempt's events: replay what the attempt committed,
        // whatever this decision decided.
        let planned = self.planned_ids(process);
        let resolved = match session.client() {
            Ok(client) if !planned.is_empty() => self
                .earlier_attempt(client, stream, &planned)
                .await
                .and_then(|found| {
                    found.ok_or_else(|| factos::store::event_id_conflict(&new, &stored))
                }),
            _ => replay_or_conflict(
                stream,
                &new,
                stored,
                |s, n, st| process.is_replay_of(s, n, st),
                context,
            ),
        };
        match resolved {
            Ok(replayed) => self.finish_decision(session, process, replayed).await,
            Err(e) => {
                session.rollback().await;
                Err(DecisionError::Store(e))
            }
        }
    }
}

/// What a decision or append whose ids were found stored reports: a replay
/// when `stored` are all of `new` and `own` says they are its own earlier
/// attempt's, an id conflict otherwise.
pub(crate) fn replay_or_conflict(
    stream: &StreamId,
    new: &[NewEvent],
    stored: Vec<StoredEvent>,
    own: impl FnOnce(&StreamId, &[NewEvent], &[StoredEvent]) -> bool,
    context: Folded,
) -> Result<Committed, StoreError> {
    if stored.len() != new.len() || !own(stream, new, &stored) {
        return Err(factos::store::event_id_conflict(new, &stored));
    }
    Ok(factos::store::replayed(stream, stored, context))
}
