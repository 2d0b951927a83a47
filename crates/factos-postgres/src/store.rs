//! [`PostgresStore`]: the [`EventStore`](factos::EventStore) on PostgreSQL.
//!
//! The store's state lives here; each role has its own module.

use std::sync::Arc;

use deadpool_postgres::Pool;
use factos::{StoreError, StoreLimits};

use crate::connect::pooled;
use crate::error::{Phase, db_error};
use crate::locks::LockKeys;
use crate::options::StoreOptions;
use crate::sql::Statements;
use crate::store::hot::HotQueries;

mod append;
mod decide;
mod effects;
mod event_store;
mod guard;
pub(crate) mod hot;
pub(crate) mod read;
mod replay;
pub(crate) mod replica;
pub use replica::ReplicaOptions;
mod retry;
mod session;
mod snapshots;

/// A factos event store on PostgreSQL. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) inner: Arc<Inner>,
    /// Where reads and subscriptions' batches go instead of the primary
    /// ([`PostgresStore::with_replica`]).
    pub(crate) replica: Option<Arc<replica::Replica>>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    /// `BEGIN` and the transaction's settings, sent as one simple query.
    pub(crate) begin: String,
    /// The settings for statements outside a transaction (they stay on the connection).
    pub(crate) session_settings: String,
    pub(crate) sql: Statements,
    pub(crate) keys: LockKeys,
    pub(crate) options: StoreOptions,
    pub(crate) hot: HotQueries,
    /// Attempts begun again by the store itself ([`EventStore::internal_retries`]).
    pub(crate) retries: std::sync::atomic::AtomicU64,
    /// Counts commits with events; subscribers in this process wait on it.
    pub(crate) commits: tokio::sync::watch::Sender<u64>,
    /// Wakes the task that sends the coalesced `NOTIFY`.
    pub(crate) notifier: Arc<crate::wakeup::Notifier>,
    /// Opens a connection that receives notifications, when the store knows
    /// how to connect (not for a pool given to [`PostgresStore::new`]).
    pub(crate) listener: Option<crate::wakeup::Connect>,
}

impl crate::wakeup::Announce for Inner {
    async fn announce(&self) -> Result<(), StoreError> {
        let client = pooled(&self.pool, self.options.pool_wait_timeout).await?;
        client
            .batch_execute(&self.sql.notify)
            .await
            .map_err(|e| db_error("cannot announce commits", e, Phase::BeforeCommit))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.notifier.close();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.options.schema)
            .field("locking", &self.inner.options.locking)
            .field("replica", &self.replica.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The options.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The first half of the advisory key a writer holds from position
    /// allocation to commit, the second being its transaction id's low 32
    /// bits (see `DESIGN.md`, settled positions); for tests that play an
    /// in-flight writer.
    #[doc(hidden)]
    pub fn writer_class(&self) -> i32 {
        self.inner.keys.writers()
    }

    /// Wakes subscribers after a commit with events: those in this process
    /// at once, those elsewhere by a coalesced `NOTIFY`.
    pub(crate) fn committed(&self) {
        self.inner.commits.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(interval) = self.inner.options.notify_interval {
            crate::wakeup::Notifier::wake(
                &self.inner.notifier,
                Arc::downgrade(&self.inner),
                interval,
            );
        }
    }

    /// Commits of this process, for subscribers to wait on.
    pub(crate) fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    /// Opens a connection listening on the store's channel, if the store can connect.
    pub(crate) async fn listen(&self) -> Option<Result<crate::wakeup::Listening, StoreError>> {
        let connect = self.inner.listener.as_ref()?;
        Some(crate::wakeup::listen(connect, &self.inner.sql.listen).await)
    }

    pub(crate) fn keys(&self) -> &LockKeys {
        &self.inner.keys
    }

    pub(crate) fn statements(&self) -> &Statements {
        &self.inner.sql
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        pooled(&self.inner.pool, self.inner.options.pool_wait_timeout).await
    }

    pub(crate) fn sql(&self) -> &Statements {
        &self.inner.sql
    }

    pub(crate) fn limits(&self) -> &StoreLimits {
        &self.inner.options.limits
    }

    /// Counts an attempt the store begins again on its own.
    pub(crate) fn retried(&self) {
        crate::metrics::retried(self.inner.options.locking);
        self.inner
            .retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.inner.options.max_decision_attempts.max(1)
    }
}
