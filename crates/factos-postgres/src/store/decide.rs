//! Decisions: the three ways a dispatch keeps its context stable, one file
//! each, and what they share.
//!
//! - [`locked`]: [`LockingStrategy::TableLock`] and [`LockingStrategy::Scoped`]
//!   (guard, read, decide, append, commit).
//! - [`optimistic`]: [`LockingStrategy::Optimistic`] (settled read without
//!   locks, decide, then a short checked transaction).
//! - [`cached`]: the fast path of a decision on a state already folded (the
//!   context cache), falling back to [`locked`].

mod cached;
mod locked;
mod optimistic;

use factos::NewEvent;
use factos::store::{DecisionError, DecisionProcess};
use factos::{Committed, Folded};

use crate::store::PostgresStore;

impl PostgresStore {
    /// Asks the process to decide and checks the events against the limits.
    pub(crate) fn decide_checked<P: DecisionProcess>(
        &self,
        process: &mut P,
    ) -> Result<Vec<NewEvent>, DecisionError<P::Error>> {
        let events = process.decide().map_err(DecisionError::Process)?;
        self.limits()
            .check(&events)
            .map_err(DecisionError::Invalid)?;
        Ok(events)
    }
}

/// A decision's commit, with the context it was decided on.
pub(crate) fn decided_on(committed: Committed, context: Folded) -> Committed {
    Committed {
        context_position: context.position,
        context_events: context.events,
        ..committed
    }
}
