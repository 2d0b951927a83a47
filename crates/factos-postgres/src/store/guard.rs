//! Guards: how a transaction keeps a context stable until it commits (the
//! table lock, or advisory keys derived from the query and the stream).

use factos::{AppendCondition, Query, StreamId};

use crate::locks::{KeyLock, normalize};
use crate::options::LockingStrategy;
use crate::store::PostgresStore;

/// What the context of a decision is.
#[derive(Clone, Copy)]
pub(crate) enum Context<'a> {
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
        context: Context<'_>,
        extra: &[KeyLock],
    ) -> Guard {
        let keys = &self.inner.keys;
        let stream_lock = KeyLock {
            key: keys.stream(stream),
            exclusive: true,
        };
        let mut locks = match (self.inner.options.locking, context) {
            (LockingStrategy::TableLock, _) => return Guard::Table,
            (_, Context::Query(query)) => match keys.query(query) {
                Some(locks) => locks,
                None => return Guard::Table,
            },
            (_, Context::Stream) => Vec::new(),
        };
        locks.push(stream_lock);
        locks.extend_from_slice(extra);
        Guard::Keys(normalize(locks))
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
                self.guard(stream, Context::Query(query), extra)
            }
            AppendCondition::None if self.inner.options.locking == LockingStrategy::TableLock => {
                Guard::Table
            }
            AppendCondition::None => self.guard(stream, Context::Stream, extra),
        }
    }
}
