//! [`LockingStrategy::Optimistic`]: read at a settled position without
//! locks, decide, then lock, check and append in one short transaction; on a
//! conflict, catch up and decide again.

use factos::store::{DecisionError, DecisionProcess};
use factos::{AppendCondition, Committed, Folded, Position, Query, StreamId};

use crate::store::PostgresStore;
use crate::store::append::{AppendFailure, Ending, Write};
use crate::store::decide::decided_on;
use crate::store::guard::Boundary;
use crate::store::read::ForwardRead;
use crate::store::replay::replay_or_conflict;
use crate::store::retry::{Attempts, contention};
use crate::store::session::Session;

impl PostgresStore {
    /// An optimistic decision: a settled read of `query` without locks, a
    /// decision, and a short transaction that takes `condition`'s guard,
    /// checks that no event matching it appeared after the read, and
    /// appends. On a conflict it catches up on the new events matching
    /// `query` and decides again. `condition` is `query` itself but for a
    /// decision with a narrower condition ([`factos::dispatch_with_condition`]).
    pub(crate) async fn decide_optimistic<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        condition: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let mut seen_upto: i64 = 0;
        let mut fed_count = 0usize;
        let mut last_conflict = None;
        let mut attempts = Attempts::new(self.attempts());
        while attempts.next().is_some() {
            let client = self.client().await?;
            let (mark, events, _) = self
                .settled_forward_read(&client, &ForwardRead::new(query, seen_upto, None))
                .await?;
            fed_count += events.len();
            self.limits().check_context(fed_count)?;
            for event in &events {
                process.evolve(event).map_err(DecisionError::Process)?;
            }
            // Everything matching at or below the settled mark has been fed.
            seen_upto = seen_upto.max(mark);
            let context_read = Folded {
                position: u64::try_from(seen_upto).ok().and_then(Position::new),
                events: fed_count,
            };
            let decided = self.decide_checked(process)?;
            let append_condition =
                AppendCondition::fail_if_events_match(condition.clone(), context_read.position);
            let guard = self.decision_guard(
                stream,
                Boundary::Query(condition),
                process.other_streams(),
                attempts.up_front(),
            );
            let session = Session::new(client);
            let ending = Ending::after_deciding(process);
            let write = Write::decided(stream, decided, &append_condition, None, process);
            let appended = self.begin_append(&session, &guard, write, ending).await;
            if appended.is_err() {
                // Kept open for effects: nothing was appended.
                session.rollback().await;
            }
            match appended {
                Ok(committed) => {
                    let committed = decided_on(committed, context_read);
                    return self.finish_decision(session, process, committed).await;
                }
                Err(AppendFailure::IdsStored { new, stored }) => {
                    // The session's connection is idle (its pipeline
                    // committed, or the transaction kept open for effects
                    // was rolled back above): no second pooled connection
                    // for the lookup.
                    let planned = self.planned_ids(process);
                    let client = session.client()?;
                    if let Some(replayed) = self.earlier_attempt(client, stream, &planned).await? {
                        return Ok(replayed);
                    }
                    return replay_or_conflict(
                        stream,
                        &new,
                        stored,
                        |s, n, st| process.is_replay_of(s, n, st),
                        context_read,
                    )
                    .map_err(DecisionError::Store);
                }
                Err(
                    AppendFailure::KeysBusy { event_keys } | AppendFailure::IdsRaced { event_keys },
                ) => attempts.keys_busy(self, event_keys).await,
                Err(AppendFailure::Condition(c)) => {
                    self.retried();
                    last_conflict = Some(c);
                }
                Err(AppendFailure::Store(e)) => return Err(DecisionError::Store(e)),
            }
        }
        Err(last_conflict.map_or_else(
            || DecisionError::Store(contention(self.attempts())),
            DecisionError::ConditionFailed,
        ))
    }
}
