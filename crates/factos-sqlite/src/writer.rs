//! The writer: one thread per store instance owns the writer connection
//! and runs its jobs in order. A write job waits for no lock: the thread
//! takes it with every write queued behind it (group commit, `group.rs`).
//! Any other work on the writer (the outbox, subscriptions, snapshots, a
//! decision that records effects) is a closure the thread runs between
//! groups. A panic in a job (an application's projection runs here) is
//! caught: its transaction is rolled back and the thread goes on; its
//! caller gets an error. The thread ends, closing the connection, when the
//! last clone of the store is dropped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use factos::{StoreError, StoreErrorKind};
use rusqlite::Connection;

use crate::group::{self, Counters, MAX_GROUP_WRITES, Pending};
use crate::write;

/// Work for the writer thread.
pub(crate) enum Job {
    /// A write, committed with the writes queued beside it.
    Write(Pending),
    /// Anything else that needs the writer connection.
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Starts the writer thread on `connection`; jobs go to the sender.
pub(crate) fn spawn(
    connection: Connection,
    counters: Arc<Counters>,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
) -> Result<Sender<Job>, StoreError> {
    let (jobs, queue) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("factos-sqlite-writer".to_string())
        .spawn(move || run(connection, &queue, &counters, &commits))
        .map_err(|e| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("cannot start the SQLite writer thread: {e}"),
            )
        })?;
    Ok(jobs)
}

/// The error of a job the writer did not finish.
pub(crate) fn writer_lost() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "the SQLite writer did not finish the work (it panicked, or the store is closing); its transaction was rolled back",
    )
}

/// Wakes the store's subscribers and outbox workers: from here, after the
/// commit, so a caller that stopped waiting does not leave them asleep.
pub(crate) fn wake(commits: &tokio::sync::watch::Sender<u64>) {
    commits.send_modify(|n| *n = n.wrapping_add(1));
}

fn run(
    mut connection: Connection,
    queue: &Receiver<Job>,
    counters: &Counters,
    commits: &tokio::sync::watch::Sender<u64>,
) {
    while let Ok(job) = queue.recv() {
        let mut next = Some(job);
        while let Some(job) = next.take() {
            next = match job {
                Job::Run(work) => {
                    guarded(&mut connection, work);
                    None
                }
                Job::Write(first) => {
                    let (group, after) = gather(first, queue);
                    let done = catch_unwind(AssertUnwindSafe(|| {
                        group::commit(&connection, group, counters, || wake(commits));
                    }));
                    if done.is_err() {
                        write::rollback(&connection);
                    }
                    after
                }
            };
        }
    }
}

/// `first` and the writes queued behind it (up to [`MAX_GROUP_WRITES`]);
/// the first other job met, kept for after the group.
fn gather(first: Pending, queue: &Receiver<Job>) -> (Vec<Pending>, Option<Job>) {
    let mut group = vec![first];
    while group.len() < MAX_GROUP_WRITES {
        match queue.try_recv() {
            Ok(Job::Write(pending)) => group.push(pending),
            Ok(other) => return (group, Some(other)),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    (group, None)
}

/// Runs `work`, rolling back what a panic in it left open.
fn guarded(connection: &mut Connection, work: Box<dyn FnOnce(&mut Connection) + Send>) {
    let done = catch_unwind(AssertUnwindSafe(|| work(connection)));
    if done.is_err() || !connection.is_autocommit() {
        // A job always ends its transactions; one left open was abandoned.
        write::rollback(connection);
    }
}
