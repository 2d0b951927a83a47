//! The pessimistic strategies, [`LockingStrategy::TableLock`] and
//! [`LockingStrategy::Scoped`]: the guard is taken before the context is
//! read, so the decision commits on the context it read.

use factos::store::{DecisionError, DecisionProcess};
use factos::{AppendCondition, Committed, Folded, Revision, StreamId};

use crate::store::PostgresStore;
use crate::store::append::{AppendFailure, Ending, Write};
use crate::store::decide::decided_on;
use crate::store::guard::Boundary;
use crate::store::read::Read;
use crate::store::replay::IdsFound;
use crate::store::retry::{Attempts, contention};
use crate::store::session::Session;

impl PostgresStore {
    /// A pessimistic decision: guard and read (one round trip), decide,
    /// append and commit (one round trip). When another decision holds a key
    /// the events need, it starts over, catching up on new events only and
    /// taking those keys up front.
    pub(crate) async fn decide_locked<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        boundary: Boundary<'_>,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.limits().check_context(folded.events)?;
        let mut fed = folded.position;
        let mut fed_count = folded.events;
        let mut revision = Revision::NoEvents;
        let mut attempts = Attempts::new(self.attempts());
        while attempts.next().is_some() {
            let session = Session::new(self.client().await?);
            let guard = self.decision_guard(
                stream,
                boundary,
                process.other_streams(),
                attempts.up_front(),
            );
            let read = self
                .open_and_feed(
                    &session,
                    &guard,
                    Read {
                        boundary,
                        stream,
                        after: fed,
                        fed_so_far: fed_count,
                    },
                    |event| {
                        fed = Some(event.position);
                        revision = Revision::Current(event.revision);
                        process.evolve(&event).map_err(DecisionError::Process)
                    },
                )
                .await;
            fed_count = match read {
                Ok(count) => count,
                Err(e) => {
                    session.rollback().await;
                    return Err(e);
                }
            };
            let events = match self.decide_checked(process) {
                Ok(events) => events,
                Err(e) => {
                    session.rollback().await;
                    return Err(e);
                }
            };
            let ending = Ending::after_deciding(process);
            // The guard held since the read keeps every matching event either
            // at or below `fed` or after this commit: a cached state resumes there.
            let context_read = Folded {
                position: fed,
                events: fed_count,
            };
            let (condition, expected) = match boundary {
                Boundary::Query(query) => (
                    AppendCondition::fail_if_events_match(query.clone(), fed),
                    None,
                ),
                Boundary::Stream => (AppendCondition::None, Some(revision)),
            };
            let write = Write::decided(stream, events, &condition, expected, process);
            let appended = self
                .append_in_transaction(&session, &guard, write, ending)
                .await;
            match appended {
                Ok(committed) => {
                    let committed = decided_on(committed, context_read);
                    return self.finish_decision(session, process, committed).await;
                }
                Err(AppendFailure::IdsStored { new, stored }) => {
                    let found = IdsFound {
                        stream,
                        new,
                        stored,
                        context: context_read,
                    };
                    return self.replay_in_session(session, process, found).await;
                }
                // With a deferred commit the transaction is still open:
                // roll it back (a no-op when the pipeline committed).
                Err(
                    AppendFailure::KeysBusy { event_keys } | AppendFailure::IdsRaced { event_keys },
                ) => {
                    session.rollback().await;
                    attempts.keys_busy(self, event_keys).await;
                }
                Err(AppendFailure::Condition(c)) => {
                    session.rollback().await;
                    return Err(DecisionError::ConditionFailed(c));
                }
                Err(AppendFailure::Store(e)) => {
                    session.rollback().await;
                    return Err(DecisionError::Store(e));
                }
            }
        }
        Err(DecisionError::Store(contention(self.attempts())))
    }
}
