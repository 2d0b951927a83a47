//! The options of a [`PostgresStore`](crate::PostgresStore): which locking
//! strategy, which schema, limits, timeouts and retry bounds, with their defaults.

use factos::StoreLimits;

use crate::sql::SchemaName;

/// How a dispatch keeps its context stable until it commits. Every strategy
/// keeps the same guarantee and passes the same concurrency oracle; they can
/// be mixed across processes sharing one schema. See `DESIGN.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockingStrategy {
    /// The seed's strategy: every dispatch locks the event table
    /// (`LOCK TABLE ... IN EXCLUSIVE MODE`) before it reads, checks and
    /// appends, so dispatches run one at a time. Readers are never blocked.
    TableLock,
    /// Pessimistic and scoped: a dispatch locks advisory keys derived from
    /// its query before it reads, so only dispatches whose contexts can
    /// overlap wait for each other. Queries on all events take the table lock.
    #[default]
    Scoped,
    /// Read without locks (at a settled position), decide, then a short
    /// transaction locks the query's keys, checks that nothing matching
    /// appeared, and appends. On conflict the decision catches up on the new
    /// events and decides again, at most [`StoreOptions::max_decision_attempts`] times.
    Optimistic,
}

/// Default of [`StoreOptions::max_decision_attempts`].
pub const DEFAULT_MAX_DECISION_ATTEMPTS: u32 = 16;

/// Options of a [`PostgresStore`](crate::PostgresStore).
///
/// ```
/// use factos_postgres::{SchemaName, StoreOptions};
/// let options = StoreOptions::default().schema(SchemaName::new("tenant_a")?);
/// assert_eq!(options.schema.as_str(), "tenant_a");
/// # Ok::<(), factos_postgres::InvalidSchemaName>(())
/// ```
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The schema holding the tables (default `public`). Several stores can
    /// share a database with different schemas.
    pub schema: SchemaName,
    /// Bounds on payloads, batch sizes and context sizes.
    pub limits: StoreLimits,
    /// How dispatches keep their context stable.
    pub locking: LockingStrategy,
    /// How often one dispatch may start over inside the store (an optimistic
    /// conflict, or another dispatch holding a key its events need) before it
    /// fails with a retry-safe error.
    pub max_decision_attempts: u32,
    /// Longest wait for a lock (the table lock, a context's keys, a settled
    /// read waiting for in-flight writers) before the operation fails with
    /// [`StoreErrorKind::Timeout`](factos::StoreErrorKind::Timeout); `None`: the server's setting.
    pub lock_timeout: Option<std::time::Duration>,
    /// Longest any one statement may run before it fails with
    /// [`StoreErrorKind::Timeout`](factos::StoreErrorKind::Timeout); `None`: the server's setting.
    pub statement_timeout: Option<std::time::Duration>,
    /// After commits, wake subscribers in other processes with one `NOTIFY`
    /// at most this often (coalesced, sent outside the append transactions,
    /// so appends never queue on PostgreSQL's notification lock); `None`:
    /// never (subscribers then poll). Subscribers in this process are woken
    /// directly either way.
    pub notify_interval: Option<std::time::Duration>,
    /// Longest wait for a pooled connection (all of them busy, or a new
    /// one connecting) before the operation fails with
    /// [`StoreErrorKind::Timeout`](factos::StoreErrorKind::Timeout), which is safe to retry (default
    /// [`DEFAULT_POOL_WAIT_TIMEOUT`]).
    pub pool_wait_timeout: std::time::Duration,
}

/// Default of [`StoreOptions::pool_wait_timeout`].
pub const DEFAULT_POOL_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Default of [`StoreOptions::notify_interval`].
pub const DEFAULT_NOTIFY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            schema: SchemaName::default(),
            limits: StoreLimits::default(),
            locking: LockingStrategy::default(),
            max_decision_attempts: DEFAULT_MAX_DECISION_ATTEMPTS,
            lock_timeout: None,
            statement_timeout: None,
            notify_interval: Some(DEFAULT_NOTIFY_INTERVAL),
            pool_wait_timeout: DEFAULT_POOL_WAIT_TIMEOUT,
        }
    }
}

impl StoreOptions {
    /// Sets the schema.
    #[must_use]
    pub fn schema(mut self, schema: SchemaName) -> Self {
        self.schema = schema;
        self
    }

    /// Sets the limits.
    #[must_use]
    pub fn limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`StoreOptions::max_decision_attempts`] (at least 1).
    #[must_use]
    pub fn max_decision_attempts(mut self, attempts: u32) -> Self {
        self.max_decision_attempts = attempts.max(1);
        self
    }

    /// Sets [`StoreOptions::lock_timeout`].
    #[must_use]
    pub fn lock_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Sets [`StoreOptions::statement_timeout`].
    #[must_use]
    pub fn statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Sets [`StoreOptions::notify_interval`] (`None`: no `NOTIFY`).
    #[must_use]
    pub fn notify_interval(mut self, interval: Option<std::time::Duration>) -> Self {
        self.notify_interval = interval;
        self
    }

    /// Sets [`StoreOptions::pool_wait_timeout`].
    #[must_use]
    pub fn pool_wait_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// Sets the locking strategy.
    #[must_use]
    pub fn locking(mut self, locking: LockingStrategy) -> Self {
        self.locking = locking;
        self
    }
}
