//! Group commit: a commit costs an fsync (`synchronous = FULL`), so the
//! writes queued while the writer was busy are committed together: the
//! writer thread runs them, in arrival order, in one `BEGIN IMMEDIATE`
//! transaction, each in a savepoint of its own, and commits once.
//!
//! Each write is checked (condition, revision, ids) against the log *with*
//! the writes before it in the group, so a group that commits had exactly
//! the outcomes of the same writes run one after the other; only the fsync
//! is shared. A write whose condition fails (or whose ids are stored) rolls
//! back to its savepoint and writes nothing; the others go on. When the
//! commit fails, every write of the group gets the error, whatever its own
//! outcome was (it was judged against writes that are gone), and nothing of
//! the group was written.

use std::sync::atomic::{AtomicU64, Ordering};

use factos::{StoreError, StoreErrorKind};
use rusqlite::Connection;

use crate::SqliteStore;
use crate::write::{self, Outcome, Write};
use crate::writer::{Job, writer_lost};

/// Most writes committed in one transaction (the rest go in the next).
pub const MAX_GROUP_WRITES: usize = 64;

/// A write waiting for the writer, and where its outcome goes.
pub(crate) struct Pending {
    write: Write,
    reply: tokio::sync::oneshot::Sender<Result<Outcome, StoreError>>,
}

/// How many transactions ran how many writes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    writes: AtomicU64,
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
            .jobs
            .send(Job::Write(Pending { write, reply }))
            .map_err(|_| writer_lost())?;
        outcome.await.map_err(|_| writer_lost())?
    }

    /// How many writer transactions ran how many writes so far: more
    /// writes than transactions means commits were shared.
    pub fn group_commits(&self) -> GroupCommits {
        GroupCommits {
            transactions: self.inner.counters.transactions.load(Ordering::Relaxed),
            writes: self.inner.counters.writes.load(Ordering::Relaxed),
        }
    }
}

/// Runs `group` in one transaction and sends each write its outcome;
/// calls `on_commit` when the group committed events.
pub(crate) fn commit(
    writer: &Connection,
    group: Vec<Pending>,
    counters: &Counters,
    on_commit: impl FnOnce(),
) {
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    counters
        .writes
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    if let Err(e) = write::begin(writer) {
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
            write::appended(writer, write)
        } else {
            in_savepoint(writer, write)
        };
        done.push((reply, outcome));
    }
    let appended = done
        .iter()
        .any(|(_, outcome)| matches!(outcome, Ok(Outcome::Committed(_))));
    let committed = if writer.is_autocommit() {
        Err(rolled_back())
    } else if appended {
        write::commit(writer)
    } else {
        write::rollback(writer);
        Ok(())
    };
    if committed.is_ok() && appended {
        on_commit();
    }
    for (reply, outcome) in done {
        // When the group did not commit, even a write that appended nothing
        // was judged against the group's earlier writes, which are gone: a
        // replay or a failed condition may be false. Every write gets the
        // error; none of them wrote anything.
        let outcome = match (&committed, outcome) {
            (Err(e), Ok(_)) => Err(copy(e)),
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
    if !matches!(outcome, Ok(Outcome::Committed(_)))
        && let Err(e) = writer.execute_batch("ROLLBACK TO factos_write")
    {
        // What this write did may stay in the transaction: give the whole
        // group up rather than commit part of a failed write.
        write::rollback(writer);
        return match outcome {
            Err(own) => Err(own),
            Ok(_) => Err(crate::error::sqlite_error(
                "cannot undo a grouped write",
                &e,
            )),
        };
    }
    if let Err(e) = writer.execute_batch("RELEASE factos_write") {
        // The savepoint is gone (SQLite rolled the transaction back after
        // the write's own error, which is the one to report), and with it
        // what this write did or did not keep: give the whole group up (the
        // writes after this one see no transaction and fail, the commit
        // reports the rollback).
        write::rollback(writer);
        return match outcome {
            Err(own) => Err(own),
            Ok(_) => Err(crate::error::sqlite_error("cannot end a grouped write", &e)),
        };
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use factos::{AppendCondition, EventType, NewEvent, StreamId};

    use super::{Counters, Outcome, Pending, commit};
    use crate::write::Write;

    /// A group whose COMMIT fails: the first write appended, the second is
    /// a replay of it (its ids are stored, by the first write, in the
    /// transaction that is then rolled back). Both must fail; a replay of a
    /// write that is gone must not be acknowledged.
    #[test]
    fn a_group_whose_commit_fails_fails_every_write() {
        let dir = std::env::temp_dir().join(format!("factos-group-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("group.db");
        let mut connection = crate::connect(&path, &crate::SqliteOptions::default()).unwrap();
        crate::schema::migrate(&mut connection).unwrap();
        let stream = StreamId::new("s").unwrap();
        let event = NewEvent::new(EventType::new("A").unwrap(), b"x".to_vec());
        let (first_reply, first) = tokio::sync::oneshot::channel();
        let (second_reply, second) = tokio::sync::oneshot::channel();
        let group = vec![
            Pending {
                write: Write::plain(stream.clone(), vec![event.clone()], AppendCondition::None),
                reply: first_reply,
            },
            Pending {
                write: Write::plain(stream, vec![event], AppendCondition::None),
                reply: second_reply,
            },
        ];
        // Every COMMIT becomes a rollback.
        connection.commit_hook(Some(|| true));
        commit(&connection, group, &Counters::default(), || {
            panic!("woke subscribers after a failed commit")
        });
        let first = first.blocking_recv().unwrap();
        let second = second.blocking_recv().unwrap();
        assert!(first.is_err(), "{:?}", first.map(|_| ()));
        assert!(
            !matches!(second, Ok(Outcome::IdsStored { .. })),
            "the replay of a rolled-back write was acknowledged"
        );
        assert!(second.is_err());
        connection.commit_hook(None::<fn() -> bool>);
        let stored: i64 = connection
            .query_row("SELECT count(*) FROM factos_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
