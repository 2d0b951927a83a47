//! A decision whose events have effects: the writer thread appends its
//! events in the writer's transaction and hands them back; the reactor is
//! asked for their effects on the async side (it is the application's code,
//! under the dispatch's panic guard); the writer thread, waiting meanwhile,
//! records the effects in the same transaction and commits. When no effects
//! come (a reactor's error or panic, a cancelled dispatch) it rolls back:
//! nothing is written.

use factos::store::{DecisionError, DecisionProcess};
use factos::{Effect, StoreError};
use tokio::sync::oneshot;

use crate::SqliteStore;
use crate::write::{self, Outcome, Write};
use crate::writer::writer_lost;

impl SqliteStore {
    /// Writes a decision's events in the writer's transaction, with their
    /// effects when the process has any; commits, and wakes this process's
    /// subscribers and workers when it appended.
    pub(crate) async fn write_decision<P: DecisionProcess>(
        &self,
        write: Write,
        process: &mut P,
    ) -> Result<Outcome, DecisionError<P::Error>> {
        if !process.has_effects() {
            let outcome = self.append_grouped(write).await?;
            if matches!(&outcome, Outcome::Committed(c) if !c.events.is_empty()) {
                self.committed();
            }
            return Ok(outcome);
        }
        let (appended_tx, appended) = oneshot::channel::<Result<Outcome, StoreError>>();
        let (effects_tx, effects) = oneshot::channel::<Vec<Effect>>();
        let (done_tx, done) = oneshot::channel::<Result<(), StoreError>>();
        self.run_on_writer(move |c| {
            let outcome = write::append_open(c, write);
            let open = matches!(outcome, Ok(Outcome::Committed(_)));
            let _ = appended_tx.send(outcome);
            if !open {
                return;
            }
            // The writer waits for the reactor: it holds the file's write
            // lock until the effects come or the dispatch gives up.
            match effects.blocking_recv() {
                Ok(effects) => {
                    let recorded =
                        write::record_effects(c, &effects).and_then(|()| write::commit(c));
                    if recorded.is_err() {
                        write::rollback(c);
                    }
                    let _ = done_tx.send(recorded);
                }
                Err(_) => write::rollback(c),
            }
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
        effects_tx.send(effects).map_err(|_| writer_lost())?;
        done.await.map_err(|_| writer_lost())??;
        if !committed.events.is_empty() {
            self.committed();
        }
        Ok(Outcome::Committed(committed))
    }
}
