//! A decision whose events have effects: its events are appended in the
//! writer's transaction, the reactor is asked for their effects (on the
//! async side: it is the application's code), and the effects are recorded
//! in that same transaction before it commits. The writer stays held (and
//! its transaction open) across the reactor's call; dropping the hold
//! rolls back, so a reactor's error or panic, or a cancelled dispatch,
//! writes nothing.

use std::ops::Deref;

use factos::store::{DecisionError, DecisionProcess};
use rusqlite::Connection;

use crate::write::{self, Outcome, Write};
use crate::{SqliteStore, blocking};

/// The writer, held with a transaction possibly open.
pub(crate) struct OpenWrite(tokio::sync::OwnedMutexGuard<Connection>);

impl Deref for OpenWrite {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl Drop for OpenWrite {
    /// Rolls back a transaction left open (a reactor that failed, a caller
    /// that stopped waiting); a committed one is not open any more.
    fn drop(&mut self) {
        write::rollback(&self.0);
    }
}

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
        let open = OpenWrite(self.inner.writer.clone().lock_owned().await);
        let (open, outcome) = blocking(move || {
            let outcome = write::append_open(&open, write);
            Ok((open, outcome))
        })
        .await?;
        let committed = match outcome? {
            Outcome::Committed(committed) => committed,
            other => return Ok(other),
        };
        let effects = match process.effects(&committed.events) {
            Ok(effects) => effects,
            Err(e) => {
                // The rollback (dropping the hold) on a blocking thread.
                blocking(move || {
                    drop(open);
                    Ok(())
                })
                .await?;
                return Err(DecisionError::Process(e));
            }
        };
        blocking(move || {
            write::record_effects(&open, &effects)?;
            write::commit(&open)
        })
        .await?;
        if !committed.events.is_empty() {
            self.committed();
        }
        Ok(Outcome::Committed(committed))
    }
}
