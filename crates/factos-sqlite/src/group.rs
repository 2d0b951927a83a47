//! Group commit: a commit costs an fsync (`synchronous = FULL`), so writes
//! that arrive while the writer is busy are committed together. Each write
//! queues itself and starts a blocking task that takes the writer; the first
//! task to get it runs every queued write, in arrival order, in one
//! `BEGIN IMMEDIATE` transaction, each in a savepoint of its own, and
//! commits once. The tasks that come after find their writes done.
//!
//! Each write is checked (condition, revision, ids) against the log *with*
//! the writes before it in the group, so the group is exactly the same
//! writes run one after the other; only the fsync is shared. A write whose
//! condition fails (or whose ids are stored) rolls back to its savepoint
//! and writes nothing; the others go on. When the commit fails, every write
//! of the group that appended gets the error (nothing of it was written).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use factos::{StoreError, StoreErrorKind};
use rusqlite::Connection;

use crate::write::{self, Outcome, Write};
use crate::{Inner, SqliteStore, blocking};

/// Most writes committed in one transaction (the rest wait for the next).
pub const MAX_GROUP_WRITES: usize = 64;

/// A write waiting for the writer, and where its outcome goes.
pub(crate) struct Pending {
    write: Write,
    reply: tokio::sync::oneshot::Sender<Result<Outcome, StoreError>>,
}

/// How many transactions the writer committed for how many writes
/// ([`SqliteStore::group_commits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommits {
    /// Writer transactions that ran queued writes.
    pub transactions: u64,
    /// Writes they ran.
    pub writes: u64,
}

impl SqliteStore {
    /// Runs `write` in the writer's next transaction, with the writes
    /// queued beside it.
    pub(crate) async fn append_grouped(&self, write: Write) -> Result<Outcome, StoreError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Pending { write, reply });
        let inner = self.inner.clone();
        blocking(move || {
            commit_queued(&inner);
            Ok(())
        })
        .await?;
        outcome.await.map_err(|_| {
            StoreError::new(
                StoreErrorKind::Other,
                "the write's group ended without an outcome; nothing was written",
            )
        })?
    }

    /// How many writer transactions ran how many queued writes so far: more
    /// writes than transactions means commits were shared.
    pub fn group_commits(&self) -> GroupCommits {
        GroupCommits {
            transactions: self.inner.group_transactions.load(Ordering::Relaxed),
            writes: self.inner.group_writes.load(Ordering::Relaxed),
        }
    }
}

/// Takes the writer and runs the queued writes (up to
/// [`MAX_GROUP_WRITES`]), if any are left.
fn commit_queued(inner: &Arc<Inner>) {
    let writer = inner.writer.blocking_lock();
    let group: Vec<Pending> = {
        let mut queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let take = queue.len().min(MAX_GROUP_WRITES);
        queue.drain(..take).collect()
    };
    if group.is_empty() {
        return;
    }
    inner.group_transactions.fetch_add(1, Ordering::Relaxed);
    inner
        .group_writes
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    if let Err(e) = write::begin(&writer) {
        for pending in group {
            let _ = pending.reply.send(Err(copy(&e)));
        }
        return;
    }
    let alone = group.len() == 1;
    let mut done = Vec::with_capacity(group.len());
    for Pending { write, reply } in group {
        // Some errors (a full disk, an I/O error) make SQLite roll the
        // whole transaction back: the writes after them must not run
        // outside it, one autocommit each.
        let outcome = if writer.is_autocommit() {
            Err(rolled_back())
        } else if alone {
            write::appended(&writer, write)
        } else {
            in_savepoint(&writer, write)
        };
        done.push((reply, outcome));
    }
    let appended = done
        .iter()
        .any(|(_, outcome)| matches!(outcome, Ok(Outcome::Committed(_))));
    let committed = if writer.is_autocommit() {
        Err(rolled_back())
    } else if appended {
        write::commit(&writer)
    } else {
        write::rollback(&writer);
        Ok(())
    };
    for (reply, outcome) in done {
        let outcome = match (&committed, outcome) {
            (Err(e), Ok(Outcome::Committed(_))) => Err(copy(e)),
            (_, outcome) => outcome,
        };
        let _ = reply.send(outcome);
    }
}

/// One write of a group in a savepoint of its own, rolled back unless it
/// appended.
fn in_savepoint(writer: &Connection, write: Write) -> Result<Outcome, StoreError> {
    writer
        .execute_batch("SAVEPOINT factos_write")
        .map_err(|e| crate::error::sqlite_error("cannot begin a grouped write", &e))?;
    let outcome = write::appended(writer, write);
    if !matches!(outcome, Ok(Outcome::Committed(_))) {
        let _ = writer.execute_batch("ROLLBACK TO factos_write");
    }
    writer
        .execute_batch("RELEASE factos_write")
        .map_err(|e| crate::error::sqlite_error("cannot end a grouped write", &e))?;
    outcome
}

fn rolled_back() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "SQLite rolled the write's transaction back after an error; nothing of it was written",
    )
}

/// The same error for another write of the group.
fn copy(error: &StoreError) -> StoreError {
    StoreError::new(error.kind(), error.message().to_string())
}
