//! Guards: how a transaction keeps a context stable until it commits (the
//! table lock, or advisory keys derived from the query and the stream).

use factos::{AppendCondition, Query, StoreError, StreamId};
use tokio_postgres::types::ToSql;

use crate::error::{Phase, db_error};
use crate::locks::{KeyLock, arrays, normalize};
use crate::options::LockingStrategy;
use crate::store::PostgresStore;
use crate::store::session::first_failure;

/// Where a decision's context comes from: the events a query matches, or the
/// events of the decision's stream. (The context itself, the matching events
/// folded, is [`factos::Context`].)
#[derive(Clone, Copy)]
pub(crate) enum Boundary<'a> {
    Query(&'a Query),
    Stream,
}

/// How a transaction protects a context until it commits.
pub(crate) enum Guard {
    /// `LOCK TABLE ... IN EXCLUSIVE MODE`.
    Table,
    /// `ROW EXCLUSIVE` on the table, then these advisory keys in key order.
    Keys(Vec<KeyLock>),
}

impl PostgresStore {
    /// The guard of a context: the table lock for the table-lock strategy and
    /// for queries on all events, else the query's keys (or the stream's for a
    /// stream decision) plus the stream's key plus `extra`.
    pub(crate) fn guard(
        &self,
        stream: &StreamId,
        boundary: Boundary<'_>,
        extra: &[KeyLock],
    ) -> Guard {
        let keys = &self.inner.keys;
        let stream_lock = KeyLock {
            key: keys.stream(stream),
            exclusive: true,
        };
        let mut locks = match (self.inner.options.locking, boundary) {
            (LockingStrategy::TableLock, _) => return Guard::Table,
            (_, Boundary::Query(query)) => match keys.query(query) {
                Some(locks) => locks,
                None => return Guard::Table,
            },
            (_, Boundary::Stream) => Vec::new(),
        };
        locks.push(stream_lock);
        locks.extend_from_slice(extra);
        Guard::Keys(normalize(locks))
    }

    /// The guard of a decision whose events may also go to `others` (a
    /// combined batch): its context's guard with those streams' keys too,
    /// so their revisions cannot move before the commit.
    pub(crate) fn decision_guard(
        &self,
        stream: &StreamId,
        boundary: Boundary<'_>,
        others: &[StreamId],
        up_front: &[KeyLock],
    ) -> Guard {
        if others.is_empty() {
            return self.guard(stream, boundary, up_front);
        }
        let mut extra: Vec<KeyLock> = others
            .iter()
            .map(|other| KeyLock {
                key: self.inner.keys.stream(other),
                exclusive: true,
            })
            .collect();
        extra.extend_from_slice(up_front);
        self.guard(stream, boundary, &extra)
    }

    /// The guard of a plain append: a condition's query is guarded like a
    /// decision's context; without a condition only the stream is locked.
    pub(crate) fn append_guard(
        &self,
        stream: &StreamId,
        condition: &AppendCondition,
        extra: &[KeyLock],
    ) -> Guard {
        match condition {
            AppendCondition::FailIfEventsMatch { query, .. } => {
                self.guard(stream, Boundary::Query(query), extra)
            }
            AppendCondition::None if self.inner.options.locking == LockingStrategy::TableLock => {
                Guard::Table
            }
            AppendCondition::None => self.guard(stream, Boundary::Stream, extra),
        }
    }
}

/// A guard's statement, prepared on one connection: the table lock, or the
/// table for writing and the keys in one call.
pub(crate) struct PreparedGuard {
    lock: tokio_postgres::Statement,
    /// The keys and their modes (`true`: exclusive); `None` for the table lock.
    keys: Option<(Vec<i64>, Vec<bool>)>,
}

/// What each statement that opens a transaction and takes its guard answered.
pub(crate) struct Opened {
    begin: Result<(), tokio_postgres::Error>,
    lock: Result<(), tokio_postgres::Error>,
}

impl PostgresStore {
    /// Prepares `guard`'s statement on `client` (cached per connection, so
    /// a round trip only the first time).
    pub(crate) async fn prepare_guard(
        &self,
        client: &deadpool_postgres::Object,
        guard: &Guard,
    ) -> Result<PreparedGuard, StoreError> {
        let (text, keys) = match guard {
            Guard::Table => (&self.sql().lock_table, None),
            Guard::Keys(locks) => (&self.sql().lock_for_writing, Some(arrays(locks))),
        };
        let lock = client
            .prepare_cached(text)
            .await
            .map_err(|e| db_error("cannot prepare the guard", e, Phase::BeforeCommit))?;
        Ok(PreparedGuard { lock, keys })
    }
}

impl PreparedGuard {
    /// Sends `begin` (the `BEGIN` batch) and the guard's lock, in this
    /// order: each goes out when first polled, so a caller joining this with
    /// later statements sends them all in one round trip.
    pub(crate) async fn open(&self, client: &deadpool_postgres::Object, begin: &str) -> Opened {
        let (begin, lock) = futures_util::join!(client.batch_execute(begin), async {
            match &self.keys {
                None => client.execute(&self.lock, &[]).await.map(drop),
                Some((keys, modes)) => {
                    let params: [&(dyn ToSql + Sync); 2] = [keys, modes];
                    client.execute(&self.lock, &params).await.map(drop)
                }
            }
        });
        Opened { begin, lock }
    }
}

impl Opened {
    /// Whether a statement failed without an answer from the server (the
    /// connection broke).
    pub(crate) fn connection_broke(&self) -> bool {
        [&self.begin, &self.lock]
            .into_iter()
            .any(|r| r.as_ref().is_err_and(|e| e.as_db_error().is_none()))
    }

    /// The first error, in statement order, if any.
    pub(crate) fn into_error(self) -> Option<tokio_postgres::Error> {
        [self.begin, self.lock].into_iter().find_map(Result::err)
    }

    /// The first error that is the cause, if any (see [`first_failure`]).
    pub(crate) fn failure(self) -> Option<(&'static str, tokio_postgres::Error)> {
        first_failure([
            self.begin.err().map(|e| ("cannot begin a transaction", e)),
            self.lock
                .err()
                .map(|e| ("cannot lock the context (the event table or its keys)", e)),
        ])
    }
}
