//! A decision whose events have effects: the writer thread appends its
//! events in the writer's transaction and hands them back; the reactor is
//! asked for their effects on the async side (it is the application's code,
//! under the dispatch's panic guard); the writer thread, waiting meanwhile,
//! records the effects in the same transaction and commits. When no effects
//! come (a reactor's error or panic, a dispatch dropped before it handed
//! them over) it rolls back: nothing is written. A dispatch dropped after
//! handing its effects over may still commit, as any dropped commit may. It
//! waits at most the busy timeout, and at least a second: a dispatch whose
//! future is kept but not polled (say, in a set of futures whose owner
//! awaits something else, perhaps a write of its own that queues behind
//! this one) gets [`StoreErrorKind::Timeout`] instead of holding the file's
//! write lock for ever, and a short busy timeout does not fail dispatches
//! whose reactor merely runs. Meanwhile the instance's other writer work
//! waits too.

use std::sync::mpsc::{RecvTimeoutError, sync_channel};

use factos::store::{DecisionError, DecisionProcess};
use factos::{Effect, StoreError, StoreErrorKind};
use tokio::sync::oneshot;

use crate::SqliteStore;
use crate::write::{self, Outcome, Write};
use crate::writer::{wake, writer_lost};

/// The shortest wait for a dispatch's effects, whatever the busy timeout.
const MIN_EFFECTS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl SqliteStore {
    /// Writes a decision's events in the writer's transaction, with their
    /// effects when the process has any, and commits (the writer thread
    /// then wakes this instance's subscribers and workers).
    pub(crate) async fn write_decision<P: DecisionProcess>(
        &self,
        write: Write,
        process: &mut P,
    ) -> Result<Outcome, DecisionError<P::Error>> {
        if !process.has_effects() {
            return Ok(self.append_grouped(write).await?);
        }
        let (appended_tx, appended) = oneshot::channel::<Result<Outcome, StoreError>>();
        let (effects_tx, effects) = sync_channel::<Vec<Effect>>(1);
        let (done_tx, done) = oneshot::channel::<Result<(), StoreError>>();
        let wait = self
            .inner
            .options
            .busy_timeout
            .clamp(MIN_EFFECTS_WAIT, crate::MAX_BUSY_TIMEOUT);
        let commits = self.inner.commits.clone();
        self.run_on_writer(move |c| {
            let outcome = write::append_open(c, write);
            let open = matches!(outcome, Ok(Outcome::Committed(_)));
            let _ = appended_tx.send(outcome);
            if !open {
                return;
            }
            // The writer holds the file's write lock until the effects come,
            // the dispatch gives up, or the wait runs out.
            let recorded = match effects.recv_timeout(wait) {
                Ok(effects) => write::record_effects(c, &effects).and_then(|()| write::commit(c)),
                Err(RecvTimeoutError::Timeout) => Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    "the dispatch did not hand its effects over within the busy timeout; nothing was written",
                )),
                Err(RecvTimeoutError::Disconnected) => Err(writer_lost()),
            };
            match &recorded {
                Ok(()) => wake(&commits),
                Err(_) => write::rollback(c),
            }
            let _ = done_tx.send(recorded);
        })?;
        let committed = match appended.await.map_err(|_| writer_lost())?? {
            Outcome::Committed(committed) => committed,
            other => return Ok(other),
        };
        // Dropping `effects_tx` (an error here, or this future dropped)
        // rolls the append back.
        let effects = process
            .effects(&committed.events)
            .map_err(DecisionError::Process)?;
        // A full channel cannot happen (one message); a closed one means the
        // writer gave up waiting: `done` says why.
        let _ = effects_tx.try_send(effects);
        done.await.map_err(|_| writer_lost())??;
        Ok(Outcome::Committed(committed))
    }
}
