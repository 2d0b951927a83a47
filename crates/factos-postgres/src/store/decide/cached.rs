//! The cached fast path: a decision on a state already folded up to a
//! position sends `BEGIN`, guard, checked append and `COMMIT` in one round
//! trip, and falls back to the pessimistic path when the context moved.

use factos::store::{DecisionError, DecisionProcess};
use factos::{AppendCondition, Committed, Folded, Query, StreamId};

use crate::store::PostgresStore;
use crate::store::append::{AppendFailure, Ending, Write};
use crate::store::decide::decided_on;
use crate::store::guard::Boundary;
use crate::store::session::Session;

impl PostgresStore {
    /// A decision on a state already fed up to `after`. Fast path, one round
    /// trip: decide now, then `BEGIN`, the guard, the append with the
    /// condition `FailIfEventsMatch(query, after)` and `COMMIT` go out
    /// together. If the context moved (or the decision failed on a state that
    /// may be stale), the pessimistic path catches up on the events after
    /// `after` under the guard and decides again. A query whose fast path
    /// keeps failing is hot: it goes straight to the pessimistic path for a
    /// while, so contention never turns into a retry storm.
    pub(crate) async fn decide_cached<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.limits().check_context(folded.events)?;
        // A decision that fails or breaks the limits on a state that may be
        // stale is not final: the pessimistic path decides it again on the
        // current context.
        let hot = self.inner.hot.is_hot(query);
        if hot {
            crate::metrics::hot_fallback();
        }
        if !hot
            && let Ok(decided) = process.decide()
            && self.limits().check(&decided).is_ok()
        {
            let condition = AppendCondition::fail_if_events_match(query.clone(), folded.position);
            let guard =
                self.decision_guard(stream, Boundary::Query(query), process.other_streams(), &[]);
            let session = Session::new(self.client().await?);
            let ending = Ending::after_deciding(process);
            let write = Write::decided(stream, decided, &condition, None, process);
            let appended = self.begin_append(&session, &guard, write, ending).await;
            if appended.is_err() {
                // Kept open for effects: nothing was appended.
                session.rollback().await;
            }
            match appended {
                Ok(committed) => {
                    self.inner.hot.cool(query);
                    let committed = decided_on(committed, folded);
                    return self.finish_decision(session, process, committed).await;
                }
                Err(AppendFailure::Condition(_)) => {
                    self.retried();
                    self.inner.hot.heat(query);
                }
                // Busy keys, or ids found stored by a decision on a state
                // that may be stale: the guarded path decides again (and
                // tells a replay from a conflict).
                Err(
                    AppendFailure::KeysBusy { .. }
                    | AppendFailure::IdsRaced { .. }
                    | AppendFailure::IdsStored { .. },
                ) => self.retried(),
                Err(AppendFailure::Store(e)) => return Err(DecisionError::Store(e)),
            }
        }
        self.decide_locked(stream, Boundary::Query(query), process, folded)
            .await
    }
}
