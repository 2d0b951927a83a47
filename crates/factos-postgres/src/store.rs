//! [`PostgresStore`]: the [`EventStore`] on PostgreSQL.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use factos::store::{
    AppendError, Committed, ConditionFailure, DecisionError, DecisionProcess, Folded, ReadResult,
    StreamEvents,
};
use factos::{
    AppendCondition, EventStore, NewEvent, Position, Query, ReadOptions, Revision, StoreError,
    StoreErrorKind, StoreLimits, StoredEvent, StreamId,
};
use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::types::ToSql;
use tracing::Instrument;

use crate::error::{
    Phase, db_error, is_event_id_violation, is_stream_revision_violation, pool_error,
};
use crate::locks::{KeyLock, LockKeys, arrays, normalize};
use crate::rows::{EventColumns, position, query_items, revision, stored_event};
use crate::sql::{SchemaName, Statements};

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

/// Options of a [`PostgresStore`].
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
    /// read's barrier) before the operation fails with
    /// [`StoreErrorKind::Timeout`]; `None`: the server's setting.
    pub lock_timeout: Option<std::time::Duration>,
    /// Longest any one statement may run before it fails with
    /// [`StoreErrorKind::Timeout`]; `None`: the server's setting.
    pub statement_timeout: Option<std::time::Duration>,
    /// After commits, wake subscribers in other processes with one `NOTIFY`
    /// at most this often (coalesced, sent outside the append transactions,
    /// so appends never queue on PostgreSQL's notification lock); `None`:
    /// never (subscribers then poll). Subscribers in this process are woken
    /// directly either way.
    pub notify_interval: Option<std::time::Duration>,
    /// Longest wait for a pooled connection (all of them busy, or a new
    /// one connecting) before the operation fails with
    /// [`StoreErrorKind::Timeout`], which is safe to retry (default
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

/// Default number of pooled connections of [`PostgresStore::connect`].
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A factos event store on PostgreSQL. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `BEGIN` and the transaction's settings, sent as one simple query.
    begin: String,
    /// The settings for statements outside a transaction (they stay on the connection).
    session_settings: String,
    sql: Statements,
    keys: LockKeys,
    options: StoreOptions,
    hot: HotQueries,
    /// Attempts begun again by the store itself ([`EventStore::internal_retries`]).
    retries: std::sync::atomic::AtomicU64,
    /// Counts commits with events; subscribers in this process wait on it.
    commits: tokio::sync::watch::Sender<u64>,
    /// Wakes the task that sends the coalesced `NOTIFY`.
    notifier: Arc<crate::wakeup::Notifier>,
    /// Opens a connection that receives notifications, when the store knows
    /// how to connect (not for a pool given to [`PostgresStore::new`]).
    listener: Option<crate::wakeup::Connect>,
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

/// A connection from `pool`, waiting at most `wait` for one (on any pool,
/// whether or not it was built with a runtime for its own timeouts).
async fn pooled(
    pool: &Pool,
    wait: std::time::Duration,
) -> Result<deadpool_postgres::Object, StoreError> {
    match tokio::time::timeout(wait, pool.get()).await {
        Ok(client) => client.map_err(pool_error),
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Timeout,
            format!(
                "no pooled PostgreSQL connection within {} ms (StoreOptions::pool_wait_timeout); \
                 nothing was written",
                wait.as_millis()
            ),
        )),
    }
}

/// Queries whose cached fast path failed recently: they take the
/// pessimistic path (lock before read) until they cool down.
#[derive(Default)]
struct HotQueries {
    until: std::sync::Mutex<std::collections::HashMap<u64, std::time::Instant>>,
}

/// How long a query stays hot after its fast path failed.
const HOT_FOR: std::time::Duration = std::time::Duration::from_millis(500);
/// Most queries remembered as hot (the map is cleared beyond it).
const MAX_HOT_QUERIES: usize = 10_000;

impl HotQueries {
    fn key(query: &Query) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        query.hash(&mut hasher);
        hasher.finish()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, std::time::Instant>> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_hot(&self, query: &Query) -> bool {
        self.lock()
            .get(&Self::key(query))
            .is_some_and(|until| *until > std::time::Instant::now())
    }

    fn heat(&self, query: &Query) {
        let mut hot = self.lock();
        if hot.len() >= MAX_HOT_QUERIES {
            hot.clear();
        }
        hot.insert(Self::key(query), std::time::Instant::now() + HOT_FOR);
    }

    fn cool(&self, query: &Query) {
        self.lock().remove(&Self::key(query));
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.options.schema)
            .field("locking", &self.inner.options.locking)
            .finish_non_exhaustive()
    }
}

/// What the context of a decision is.
#[derive(Clone, Copy)]
enum Context<'a> {
    Query(&'a Query),
    Stream,
}

/// Why an append inside a transaction did not happen.
enum AppendFailure {
    /// The condition (or the expected stream revision) failed.
    Condition(ConditionFailure),
    /// A decision holds a key these events need: roll back and retry.
    LocksBusy,
    /// Some of the events' ids are already stored: nothing was appended. The
    /// caller decides whether `stored` (read under those ids, in the order of
    /// `new`) are its own earlier attempt's (a replay) or an id conflict.
    IdsStored {
        new: Vec<NewEvent>,
        stored: Vec<StoredEvent>,
    },
    Store(StoreError),
}

impl From<StoreError> for AppendFailure {
    fn from(e: StoreError) -> Self {
        AppendFailure::Store(e)
    }
}

/// What a decision reads: its context after a position.
struct Read<'a> {
    context: Context<'a>,
    stream: &'a StreamId,
    after: Option<Position>,
    fed_so_far: usize,
}

/// What an append writes and under which condition.
struct Write<'a> {
    stream: &'a StreamId,
    events: Vec<NewEvent>,
    condition: &'a AppendCondition,
    expected: Option<Revision>,
    /// Commit in the same pipeline; when false the transaction stays open
    /// (effects are recorded next, then [`PostgresStore::record_and_commit`]).
    commit: bool,
}

/// A decision's events whose ids were found stored, and the context it decided on.
struct IdsFound<'a> {
    stream: &'a StreamId,
    new: Vec<NewEvent>,
    stored: Vec<StoredEvent>,
    context: Folded,
}

/// How a transaction protects a context until it commits.
enum Guard {
    /// `LOCK TABLE ... IN EXCLUSIVE MODE`.
    Table,
    /// `ROW EXCLUSIVE` on the table, then these advisory keys in key order.
    Keys(Vec<KeyLock>),
}

/// The settings every factos statement runs with. JIT is off: generic plans
/// of these statements carry large cost estimates on big logs, which made
/// PostgreSQL spend hundreds of milliseconds compiling queries that run in
/// microseconds. Timeouts come from the options.
fn chosen_settings(options: &StoreOptions) -> Vec<(&'static str, String)> {
    let mut chosen = vec![("jit", "off".to_string())];
    for (name, value) in [
        ("lock_timeout", options.lock_timeout),
        ("statement_timeout", options.statement_timeout),
    ] {
        if let Some(value) = value {
            chosen.push((name, format!("{}ms", value.as_millis().max(1))));
        }
    }
    chosen
}

/// How the settings reach the server, as (`BEGIN` batch for transactions,
/// batch for statements outside one). On connections factos opens itself
/// they are startup parameters (see [`with_settings`]): `BEGIN` alone and
/// nothing before reads. On a pool given to [`PostgresStore::new`] every
/// transaction sets them locally and reads set them on their session.
fn settings(options: &StoreOptions, on_connection: bool) -> (String, String) {
    if on_connection {
        return ("BEGIN".to_string(), String::new());
    }
    let chosen = chosen_settings(options);
    let begin = std::iter::once("BEGIN".to_string())
        .chain(chosen.iter().map(|(k, v)| format!("SET LOCAL {k} = '{v}'")))
        .collect::<Vec<_>>()
        .join("; ");
    let outside = chosen
        .iter()
        .map(|(k, v)| format!("SET {k} = '{v}'"))
        .collect::<Vec<_>>()
        .join("; ");
    (begin, outside)
}

/// `config` with the store's settings added to its startup options, so every
/// connection has them from the start (one statement less per transaction).
fn with_settings(
    mut config: tokio_postgres::Config,
    options: &StoreOptions,
) -> tokio_postgres::Config {
    let ours = chosen_settings(options)
        .iter()
        .map(|(k, v)| format!("-c {k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let combined = match config.get_options() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {ours}"),
        _ => ours,
    };
    config.options(&combined);
    config
}

/// A pooled connection whose transaction factos drives by hand, so BEGIN,
/// locks and reads share one round trip. Dropped while a transaction is open
/// (a cancelled future, a panic), it discards the connection rather than
/// return it to the pool mid-transaction.
struct Session {
    client: Option<deadpool_postgres::Object>,
    /// Whether a transaction may be open (atomic only so a shared borrow can set it).
    open: std::sync::atomic::AtomicBool,
}

impl Session {
    fn new(client: deadpool_postgres::Object) -> Self {
        Self {
            client: Some(client),
            open: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn client(&self) -> Result<&deadpool_postgres::Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::new(StoreErrorKind::Other, "the session has no connection"))
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ends an open transaction without writing anything.
    async fn rollback(self) {
        if let Some(client) = &self.client
            && self.open.load(std::sync::atomic::Ordering::Relaxed)
            && client.batch_execute("ROLLBACK").await.is_ok()
        {
            self.set_open(false);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if *self.open.get_mut()
            && let Some(client) = self.client.take()
        {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// The first error of a pipeline that is not "transaction aborted" (later
/// statements of a failed pipeline only report that), else the first error.
fn first_failure<const N: usize>(
    errors: [Option<(&'static str, tokio_postgres::Error)>; N],
) -> Option<(&'static str, tokio_postgres::Error)> {
    let aborted = |e: &tokio_postgres::Error| {
        e.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
    };
    let mut fallback = None;
    for (what, e) in errors.into_iter().flatten() {
        if !aborted(&e) {
            return Some((what, e));
        }
        fallback.get_or_insert((what, e));
    }
    fallback
}

/// The position bound of a read: exclusive lower bound forwards, inclusive
/// upper bound backwards.
fn bound(options: ReadOptions) -> i64 {
    let at = |p: Position| i64::try_from(p.get()).unwrap_or(i64::MAX);
    match (options.from, options.backwards) {
        (None, false) => 0,
        (None, true) => i64::MAX,
        (Some(from), false) => at(from) - 1,
        (Some(from), true) => at(from),
    }
}

fn position_value(position: Option<Position>) -> i64 {
    position.map_or(0, |p| i64::try_from(p.get()).unwrap_or(i64::MAX))
}

fn params_iter<'a>(
    params: &'a [&'a (dyn ToSql + Sync)],
) -> impl ExactSizeIterator<Item = &'a dyn ToSql> + 'a {
    params.iter().map(|p| *p as &dyn ToSql)
}

fn unexpected(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| crate::error::corrupt(format!("unexpected {what} result")).with_source(e)
}

/// A short pause before starting a decision over, growing with the attempt
/// and jittered so racing retries spread out.
async fn backoff(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 500);
    let micros = 200 * u64::from(attempt.min(20)) + jitter;
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

fn contention(attempts: u32) -> StoreError {
    StoreError::new(
        StoreErrorKind::Contention,
        format!(
            "gave up after {attempts} attempts: other dispatches kept holding keys these events need"
        ),
    )
}

impl PostgresStore {
    /// A store on an existing pool.
    ///
    /// Subscribers of such a store are woken by commits of this process and
    /// by polling, not by `NOTIFY` (the store cannot open a listening
    /// connection of its own).
    pub fn new(pool: Pool, options: StoreOptions) -> Self {
        Self::build(pool, options, None)
    }

    /// A store on `pool`; with `listener`, the pool's connections were
    /// opened by factos with the settings as startup parameters.
    fn build(pool: Pool, options: StoreOptions, listener: Option<crate::wakeup::Connect>) -> Self {
        let sql = Statements::new(&options.schema);
        let keys = LockKeys::new(&options.schema);
        let (begin, session_settings) = settings(&options, listener.is_some());
        Self {
            inner: Arc::new(Inner {
                pool,
                begin,
                session_settings,
                sql,
                keys,
                options,
                hot: HotQueries::default(),
                retries: std::sync::atomic::AtomicU64::new(0),
                commits: tokio::sync::watch::Sender::new(0),
                notifier: Arc::new(crate::wakeup::Notifier::default()),
                listener,
            }),
        }
    }

    /// A store with its own pool of at most `pool_size` connections, from a
    /// driver configuration (no TLS).
    pub fn from_config(
        config: tokio_postgres::Config,
        pool_size: usize,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let config = with_settings(config, &options);
        let listener = crate::wakeup::connector(config.clone(), tokio_postgres::NoTls);
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Self::with_manager(manager, pool_size, options, listener)
    }

    /// A store with its own pool over `manager` (plain or TLS connections).
    fn with_manager(
        manager: Manager,
        pool_size: usize,
        options: StoreOptions,
        listener: crate::wakeup::Connect,
    ) -> Result<Self, StoreError> {
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| {
                StoreError::new(StoreErrorKind::Other, "cannot build the connection pool")
                    .with_source(e)
            })?;
        Ok(Self::build(pool, options, Some(listener)))
    }

    /// A store whose connections use TLS (rustls), trusting the certificate
    /// authorities in `root_certificates_pem` (PEM, one or more). Combine with
    /// `sslmode=require` in the configuration to refuse plain connections.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), factos::StoreError> {
    /// use factos_postgres::{PostgresStore, StoreOptions};
    /// let config = "host=db.example.com user=app dbname=app sslmode=require".parse().unwrap();
    /// let ca = std::fs::read("ca.pem").unwrap();
    /// let store = PostgresStore::from_config_tls(config, 16, StoreOptions::default(), &ca)?;
    /// # Ok(()) }
    /// ```
    pub fn from_config_tls(
        config: tokio_postgres::Config,
        pool_size: usize,
        options: StoreOptions,
        root_certificates_pem: &[u8],
    ) -> Result<Self, StoreError> {
        let tls_error = |message: String| StoreError::new(StoreErrorKind::Other, message);
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls_pemfile::certs(&mut &root_certificates_pem[..]) {
            let certificate = certificate
                .map_err(|e| tls_error(format!("cannot read a root certificate: {e}")))?;
            roots
                .add(certificate)
                .map_err(|e| tls_error(format!("cannot use a root certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(tls_error(
                "no root certificate in the PEM given for TLS".to_string(),
            ));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("cannot configure TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connect = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let config = with_settings(config, &options);
        let listener = crate::wakeup::connector(config.clone(), connect.clone());
        let manager = Manager::from_config(
            config,
            connect,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Self::with_manager(manager, pool_size, options, listener)
    }

    /// A store with a pool of [`DEFAULT_POOL_SIZE`] connections to `url`
    /// (`postgresql://user:password@host/db` or `host=... dbname=...`).
    /// Connections are opened lazily: this does not reach the server. A
    /// malformed `url` is a [`StoreErrorKind::Other`] error that repeats
    /// no part of it (see [`crate::parse_connection_string`]).
    pub fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let config = crate::parse_connection_string(url)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, e.to_string()))?;
        Self::from_config(config, DEFAULT_POOL_SIZE, options)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The options.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The advisory key writers hold shared from position allocation to
    /// commit (see `DESIGN.md`); for tests that play an in-flight writer.
    #[doc(hidden)]
    pub fn barrier_key(&self) -> i64 {
        self.inner.keys.barrier()
    }

    /// Applies the settings on a session before reads, when the connection
    /// did not start with them.
    async fn session_settings(
        &self,
        client: &deadpool_postgres::ClientWrapper,
    ) -> Result<(), tokio_postgres::Error> {
        if self.inner.session_settings.is_empty() {
            Ok(())
        } else {
            client.batch_execute(&self.inner.session_settings).await
        }
    }

    /// Wakes subscribers after a commit with events: those in this process
    /// at once, those elsewhere by a coalesced `NOTIFY`.
    fn committed(&self) {
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
        Some(crate::wakeup::listen(connect, &self.inner.sql.notify_channel).await)
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

    fn sql(&self) -> &Statements {
        &self.inner.sql
    }

    fn limits(&self) -> &StoreLimits {
        &self.inner.options.limits
    }

    /// Counts an attempt the store begins again on its own.
    fn retried(&self) {
        self.inner
            .retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn attempts(&self) -> u32 {
        self.inner.options.max_decision_attempts.max(1)
    }

    /// The guard of a context: the table lock for the table-lock strategy and
    /// for queries on all events, else the query's keys (or the stream's for a
    /// stream decision) plus the stream's key plus `extra`.
    fn guard(&self, stream: &StreamId, context: Context<'_>, extra: &[KeyLock]) -> Guard {
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
    fn append_guard(
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

    /// Opens a transaction, takes `guard` and starts reading the context
    /// after `after`: one round trip (the statements are pipelined). Rows come
    /// back through `on_event`, with the context limit enforced.
    async fn open_and_feed<F, E>(
        &self,
        session: &Session,
        guard: &Guard,
        read: Read<'_>,
        mut on_event: F,
    ) -> Result<usize, DecisionError<E>>
    where
        F: FnMut(StoredEvent) -> Result<(), DecisionError<E>> + Send,
    {
        let Read {
            context,
            stream,
            after,
            fed_so_far,
        } = read;
        let fail = |what: &'static str| {
            move |e| DecisionError::Store(db_error(what, e, Phase::BeforeCommit))
        };
        let client = session.client()?;
        let (types, tags) = match context {
            Context::Query(query) => query_items(query),
            Context::Stream => (Vec::new(), Vec::new()),
        };
        let no_limit: Option<i64> = None;
        let lower = position_value(after);
        let stream_name = stream.as_str();
        let (text, params, first): (&str, Vec<&(dyn ToSql + Sync)>, usize) = match context {
            Context::Query(query) if query.is_all() => {
                (&self.sql().read_all_forwards, vec![&lower, &no_limit], 1)
            }
            Context::Query(_) => (
                &self.sql().read_query_forwards,
                vec![&types, &tags, &lower, &no_limit],
                1,
            ),
            Context::Stream => (&self.sql().read_stream_after, vec![&stream_name, &lower], 0),
        };
        let (table_text, keys, modes) = match guard {
            Guard::Table => (&self.sql().lock_table, Vec::new(), Vec::new()),
            Guard::Keys(locks) => {
                let (keys, modes) = arrays(locks);
                (&self.sql().lock_table_for_writing, keys, modes)
            }
        };
        let lock_table = client
            .prepare_cached(table_text)
            .await
            .map_err(fail("cannot prepare the table lock"))?;
        let lock_keys = client
            .prepare_cached(&self.sql().lock_keys)
            .await
            .map_err(fail("cannot prepare the key locks"))?;
        let read = client
            .prepare_cached(text)
            .await
            .map_err(fail("cannot prepare the context read"))?;
        session.set_open(true);
        let key_params: [&(dyn ToSql + Sync); 2] = [&keys, &modes];
        // Polled in this order, so sent in this order, in one round trip.
        let (begin, table, keyed, rows) = futures_util::join!(
            client.batch_execute(&self.inner.begin),
            client.execute(&lock_table, &[]),
            async {
                if keys.is_empty() {
                    Ok(0)
                } else {
                    client.execute(&lock_keys, &key_params).await
                }
            },
            client.query_raw(&read, params_iter(&params)),
        );
        // The first failure is the cause; later statements only report an aborted transaction.
        first_failure([
            begin.err().map(|e| ("cannot begin a transaction", e)),
            table.err().map(|e| ("cannot lock the event table", e)),
            keyed.err().map(|e| ("cannot lock the context's keys", e)),
        ])
        .map_or(Ok(()), |(what, e)| Err(fail(what)(e)))?;
        let rows = rows.map_err(fail("cannot read the context"))?;
        pin_mut!(rows);
        let mut count = fed_so_far;
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(fail("cannot read the context"))?
        {
            // Query reads return one (head, NULL...) row when nothing matches.
            if first == 1 && row.try_get::<_, Option<i64>>(1).ok().flatten().is_none() {
                continue;
            }
            count += 1;
            self.limits().check_context(count)?;
            on_event(stored_event(&row, first).map_err(DecisionError::Store)?)?;
        }
        Ok(count)
    }

    /// Checks `condition` (and the `expected` stream revision), takes the
    /// events' keys and the barrier, and appends, inside the caller's
    /// transaction, which holds the guard that keeps the check valid.
    /// Checks `condition` (and the `expected` stream revision), takes the
    /// events' keys and the barrier, appends and commits. With `open`, the
    /// transaction is begun and the guard taken in the same round trip first;
    /// without, the session's transaction already holds the guard.
    // One pipeline from parameters to commit; splitting it would scatter the
    // statement order that the round-trip count depends on.
    #[allow(clippy::too_many_lines)]
    async fn append_and_commit(
        &self,
        session: &Session,
        guard: &Guard,
        open: bool,
        write: Write<'_>,
    ) -> Result<Committed, AppendFailure> {
        let Write {
            stream,
            events,
            condition,
            expected,
            commit: commit_now,
        } = write;
        let columns = EventColumns::new(&events)?;
        // Keys the guard already holds in a mode at least as strong are left
        // out: asking again in another mode would queue behind waiters of our
        // own lock and fail.
        let held = |lock: &KeyLock| match guard {
            Guard::Table => false,
            Guard::Keys(locks) => locks
                .iter()
                .any(|l| l.key == lock.key && (l.exclusive || !lock.exclusive)),
        };
        let needed: Vec<KeyLock> = self
            .inner
            .keys
            .events(&events)
            .into_iter()
            .filter(|l| !held(l))
            .collect();
        let (lock_keys, lock_modes) = arrays(&needed);
        let barrier = self.inner.keys.barrier();
        let stream_name = stream.as_str();
        let expected_value: i64 = expected.map_or(-2, Revision::as_i64);
        let (after, query) = match condition {
            AppendCondition::None => (i64::MAX, None),
            AppendCondition::FailIfEventsMatch { query, after } => {
                (position_value(*after), (!query.is_all()).then_some(query))
            }
        };
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &stream_name,
            &columns.ids,
            &columns.types,
            &columns.versions,
            &columns.tags,
            &columns.metadata,
            &columns.data,
            &expected_value,
            &after,
            &lock_keys,
            &lock_modes,
            &barrier,
        ];
        let items = query.map(query_items);
        let text = if let Some((types, tags)) = &items {
            params.push(types);
            params.push(tags);
            &self.sql().append_if_query
        } else {
            &self.sql().append_if_all
        };
        let before = |what: &'static str| move |e| db_error(what, e, Phase::BeforeCommit);
        let client = session.client()?;
        let statement = client
            .prepare_cached(text)
            .await
            .map_err(before("cannot prepare the append"))?;
        let (table_text, guard_keys, guard_modes) = match guard {
            Guard::Table => (&self.sql().lock_table, Vec::new(), Vec::new()),
            Guard::Keys(locks) => {
                let (keys, modes) = arrays(locks);
                (&self.sql().lock_table_for_writing, keys, modes)
            }
        };
        let (lock_table, lock_guard_keys) = if open {
            (
                Some(
                    client
                        .prepare_cached(table_text)
                        .await
                        .map_err(before("cannot prepare the table lock"))?,
                ),
                Some(
                    client
                        .prepare_cached(&self.sql().lock_keys)
                        .await
                        .map_err(before("cannot prepare the key locks"))?,
                ),
            )
        } else {
            (None, None)
        };
        let guard_params: [&(dyn ToSql + Sync); 2] = [&guard_keys, &guard_modes];
        session.set_open(true);
        // Everything goes out together, in this order. If a statement fails,
        // the server answers the COMMIT by rolling back; if the append wrote
        // nothing (condition, busy keys), the COMMIT commits nothing.
        let (begin, table, keyed, rows, commit) = futures_util::join!(
            async {
                if open {
                    client.batch_execute(&self.inner.begin).await
                } else {
                    Ok(())
                }
            },
            async {
                match &lock_table {
                    Some(statement) => client.execute(statement, &[]).await.map(|_| ()),
                    None => Ok(()),
                }
            },
            async {
                match &lock_guard_keys {
                    Some(statement) if !guard_keys.is_empty() => {
                        client.execute(statement, &guard_params).await.map(|_| ())
                    }
                    _ => Ok(()),
                }
            },
            client.query(&statement, &params),
            async {
                if commit_now {
                    client.batch_execute("COMMIT").await
                } else {
                    Ok(())
                }
            },
        );
        session.set_open(!commit_now);
        // The COMMIT went out with everything else: if the connection broke
        // (an error the server did not send), it may have committed.
        let broken = |r: &Result<(), tokio_postgres::Error>| {
            r.as_ref().is_err_and(|e| e.as_db_error().is_none())
        };
        if broken(&begin)
            || broken(&table)
            || broken(&keyed)
            || rows.as_ref().is_err_and(|e| e.as_db_error().is_none())
        {
            let e = [begin, table, keyed, commit]
                .into_iter()
                .find_map(Result::err)
                .or(rows.err());
            return Err(match e {
                Some(e) => db_error(
                    "the connection broke while the append and its COMMIT were in flight",
                    e,
                    Phase::Commit,
                ),
                None => StoreError::new(
                    StoreErrorKind::CommitOutcomeUnknown,
                    "the connection broke during the commit",
                ),
            }
            .into());
        }
        if let Some((what, e)) = first_failure([
            begin.err().map(|e| ("cannot begin a transaction", e)),
            table.err().map(|e| ("cannot lock the event table", e)),
            keyed.err().map(|e| ("cannot lock the context's keys", e)),
        ]) {
            return Err(before(what)(e).into());
        }
        let rows = match rows {
            Ok(rows) => {
                commit.map_err(|e| db_error("cannot commit", e, Phase::Commit))?;
                rows
            }
            Err(e) if is_stream_revision_violation(&e) => {
                return Err(AppendFailure::Condition(ConditionFailure::StreamRevision {
                    stream: stream.clone(),
                    expected: expected.unwrap_or_default(),
                }));
            }
            // Another attempt with the same ids committed meanwhile: the next
            // attempt finds it and reports it.
            Err(e) if is_event_id_violation(&e) => return Err(AppendFailure::LocksBusy),
            Err(e) => return Err(before("cannot append")(e).into()),
        };
        if ids_stored(&rows)? {
            let stored = self.stored_with_ids(client, &events).await?;
            return Err(AppendFailure::IdsStored {
                new: events,
                stored,
            });
        }
        let committed = committed_from_rows(&rows, stream, events, condition, expected)?;
        if commit_now && !committed.events.is_empty() {
            self.committed();
        }
        Ok(committed)
    }

    /// The stored events carrying the ids of `events`, in their order (ids
    /// not stored are left out).
    async fn stored_with_ids(
        &self,
        client: &deadpool_postgres::Object,
        events: &[NewEvent],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        self.stored_with_id_list(client, &ids).await
    }

    /// The stored events carrying `ids`, in their order (ids not stored are
    /// left out).
    async fn stored_with_id_list(
        &self,
        client: &deadpool_postgres::Object,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let statement = client
            .prepare_cached(&self.sql().read_by_ids)
            .await
            .map_err(|e| db_error("cannot prepare the replay read", e, Phase::BeforeCommit))?;
        let rows = client
            .query(&statement, &[&ids])
            .await
            .map_err(|e| db_error("cannot read the replayed events", e, Phase::BeforeCommit))?;

        let mut found: std::collections::HashMap<uuid::Uuid, StoredEvent> = rows
            .iter()
            .map(|row| stored_event(row, 0).map(|e| (e.id, e)))
            .collect::<Result<_, _>>()?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// A pessimistic decision: guard and read (one round trip), decide,
    /// append and commit (one round trip). When another decision holds a key
    /// the events need, it starts over, catching up on new events only and
    /// taking those keys up front.
    async fn decide_locked<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        context: Context<'_>,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.limits().check_context(folded.events)?;
        let mut fed = folded.position;
        let mut fed_count = folded.events;
        let mut revision = Revision::NoEvents;
        let mut extra: Vec<KeyLock> = Vec::new();
        for attempt in 1..=self.attempts() {
            let session = Session::new(self.client().await?);
            let guard = self.guard(stream, context, &extra);
            let read = self
                .open_and_feed(
                    &session,
                    &guard,
                    Read {
                        context,
                        stream,
                        after: fed,
                        fed_so_far: fed_count,
                    },
                    |event| {
                        fed = Some(event.position);
                        revision = Revision::Current(event.revision);
                        process.evolve(&event).map_err(DecisionError::Process)
                    },
                )
                .await;
            fed_count = match read {
                Ok(count) => count,
                Err(e) => {
                    session.rollback().await;
                    return Err(e);
                }
            };
            let events = match self.decide_checked(process) {
                Ok(events) => events,
                Err(e) => {
                    session.rollback().await;
                    return Err(e);
                }
            };
            let next_extra: Vec<KeyLock> = self.inner.keys.events(&events);
            let deferred = process.records_effects();
            // The guard held since the read keeps every matching event either
            // at or below `fed` or after this commit: a cached state resumes there.
            let context_read = Folded {
                position: fed,
                events: fed_count,
            };
            let (condition, expected) = match context {
                Context::Query(query) => (
                    AppendCondition::fail_if_events_match(query.clone(), fed),
                    None,
                ),
                Context::Stream => (AppendCondition::None, Some(revision)),
            };
            match self
                .append_and_commit(
                    &session,
                    &guard,
                    false,
                    Write {
                        stream,
                        events,
                        condition: &condition,
                        expected,
                        commit: !deferred,
                    },
                )
                .await
            {
                Ok(committed) if deferred => {
                    let committed = decided_on(committed, context_read);
                    return self.record_and_commit(session, process, committed).await;
                }
                Ok(committed) => return Ok(decided_on(committed, context_read)),
                Err(AppendFailure::IdsStored { new, stored }) => {
                    let found = IdsFound {
                        stream,
                        new,
                        stored,
                        context: context_read,
                    };
                    return self.replay_in_session(session, process, found).await;
                }
                // With a deferred commit the transaction is still open:
                // roll it back (a no-op when the pipeline committed).
                Err(AppendFailure::LocksBusy) => {
                    session.rollback().await;
                    extra = next_extra;
                    self.retried();
                    backoff(attempt).await;
                }
                Err(AppendFailure::Condition(c)) => {
                    session.rollback().await;
                    return Err(DecisionError::ConditionFailed(c));
                }
                Err(AppendFailure::Store(e)) => {
                    session.rollback().await;
                    return Err(DecisionError::Store(e));
                }
            }
        }
        Err(DecisionError::Store(contention(self.attempts())))
    }

    /// Asks the process to decide and checks the events against the limits.
    fn decide_checked<P: DecisionProcess>(
        &self,
        process: &mut P,
    ) -> Result<Vec<NewEvent>, DecisionError<P::Error>> {
        let events = process.decide().map_err(DecisionError::Process)?;
        self.limits()
            .check(&events)
            .map_err(DecisionError::Invalid)?;
        Ok(events)
    }

    /// The ids a process plans for its events (an idempotent dispatch), at
    /// most one append's worth.
    fn planned_ids<P: DecisionProcess>(&self, process: &P) -> Vec<uuid::Uuid> {
        factos::store::planned_event_ids(process, self.limits().max_events_per_append)
    }

    /// What an earlier attempt with these planned ids committed, if it did:
    /// a keyed retry replays it without deciding again.
    async fn earlier_attempt(
        &self,
        client: &deadpool_postgres::Object,
        stream: &StreamId,
        planned: &[uuid::Uuid],
    ) -> Result<Option<Committed>, StoreError> {
        if planned.is_empty() {
            return Ok(None);
        }
        let stored = self.stored_with_id_list(client, planned).await?;
        Ok(factos::store::earlier_attempt(stream, planned, stored)?
            .map(|stored| factos::store::replayed(stream, stored, Folded::default())))
    }

    /// Replays a keyed decision whose command already committed, before it
    /// reads or decides anything (one lookup by id).
    async fn replay_before_deciding(
        &self,
        stream: &StreamId,
        planned: &[uuid::Uuid],
    ) -> Result<Option<Committed>, StoreError> {
        if planned.is_empty() {
            return Ok(None);
        }
        let client = self.client().await?;
        self.earlier_attempt(&client, stream, planned).await
    }

    /// Ends a locked decision whose events' ids were found stored: a replay
    /// of its own earlier attempt (committed, with its effects, if any,
    /// recorded then) or an id conflict.
    async fn replay_in_session<P: DecisionProcess>(
        &self,
        session: Session,
        process: &mut P,
        found: IdsFound<'_>,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let IdsFound {
            stream,
            new,
            stored,
            context,
        } = found;
        // A keyed retry that raced its first attempt decided on a context
        // holding that attempt's events: replay what the attempt committed,
        // whatever this decision decided.
        let planned = self.planned_ids(process);
        let resolved = match session.client() {
            Ok(client) if !planned.is_empty() => self
                .earlier_attempt(client, stream, &planned)
                .await
                .and_then(|found| {
                    found.ok_or_else(|| factos::store::event_id_conflict(&new, &stored))
                }),
            _ => replay_or_conflict(
                stream,
                &new,
                stored,
                |s, n, st| process.is_replay_of(s, n, st),
                context,
            ),
        };
        match resolved {
            Ok(replayed) if process.records_effects() => {
                self.record_and_commit(session, process, replayed).await
            }
            Ok(replayed) => Ok(replayed),
            Err(e) => {
                session.rollback().await;
                Err(DecisionError::Store(e))
            }
        }
    }

    /// Second half of a decision that records effects: the events are
    /// appended in the open transaction; the process's effects of them are
    /// inserted into the outbox and the transaction commits, in one round
    /// trip. A failing reactor rolls everything back.
    async fn record_and_commit<P: DecisionProcess>(
        &self,
        session: Session,
        process: &mut P,
        committed: Committed,
    ) -> Result<Committed, DecisionError<P::Error>> {
        // A replay found an earlier attempt's events, committed with their effects.
        let effects = if committed.replayed {
            Vec::new()
        } else {
            match process.effects(&committed.events) {
                Ok(effects) => effects,
                Err(e) => {
                    session.rollback().await;
                    return Err(DecisionError::Process(e));
                }
            }
        };
        let client = session.client()?;
        let mut causes = Vec::with_capacity(effects.len());
        let mut topics = Vec::with_capacity(effects.len());
        let mut payloads = Vec::with_capacity(effects.len());
        for effect in &effects {
            causes.push(i64::try_from(effect.cause.get()).unwrap_or(i64::MAX));
            topics.push(effect.message.topic.as_str());
            payloads.push(effect.message.payload.as_slice());
        }
        let statement = if effects.is_empty() {
            None
        } else {
            match client.prepare_cached(&self.sql().outbox_record).await {
                Ok(statement) => Some(statement),
                Err(e) => {
                    session.rollback().await;
                    return Err(DecisionError::Store(db_error(
                        "cannot prepare the outbox insert",
                        e,
                        Phase::BeforeCommit,
                    )));
                }
            }
        };
        let params: [&(dyn ToSql + Sync); 3] = [&causes, &topics, &payloads];
        let (recorded, commit) = futures_util::join!(
            async {
                match &statement {
                    Some(statement) => client.execute(statement, &params).await.map(|_| ()),
                    None => Ok(()),
                }
            },
            client.batch_execute("COMMIT"),
        );
        session.set_open(false);
        match (recorded, commit) {
            // The insert failed on the server: the COMMIT rolled back.
            (Err(e), Ok(())) if e.as_db_error().is_some() => Err(DecisionError::Store(db_error(
                "cannot record the effects",
                e,
                Phase::BeforeCommit,
            ))),
            (Err(e), _) | (Ok(()), Err(e)) => Err(DecisionError::Store(db_error(
                "cannot commit the events and their effects",
                e,
                Phase::Commit,
            ))),
            (Ok(()), Ok(())) => {
                if !committed.replayed && !committed.events.is_empty() {
                    self.committed();
                }
                Ok(committed)
            }
        }
    }

    /// A decision on a state already fed up to `after`. Fast path, one round
    /// trip: decide now, then `BEGIN`, the guard, the append with the
    /// condition `FailIfEventsMatch(query, after)` and `COMMIT` go out
    /// together. If the context moved (or the decision failed on a state that
    /// may be stale), the pessimistic path catches up on the events after
    /// `after` under the guard and decides again. A query whose fast path
    /// keeps failing is hot: it goes straight to the pessimistic path for a
    /// while, so contention never turns into a retry storm.
    async fn decide_cached<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.limits().check_context(folded.events)?;
        // A decision that fails or breaks the limits on a state that may be
        // stale is not final: the pessimistic path decides it again on the
        // current context.
        if !self.inner.hot.is_hot(query)
            && let Ok(decided) = process.decide()
            && self.limits().check(&decided).is_ok()
        {
            let condition = AppendCondition::fail_if_events_match(query.clone(), folded.position);
            let guard = self.guard(stream, Context::Query(query), &[]);
            let session = Session::new(self.client().await?);
            match self
                .append_and_commit(
                    &session,
                    &guard,
                    true,
                    Write {
                        stream,
                        events: decided,
                        condition: &condition,
                        expected: None,
                        commit: true,
                    },
                )
                .await
            {
                Ok(committed) => {
                    self.inner.hot.cool(query);
                    return Ok(decided_on(committed, folded));
                }
                Err(AppendFailure::Condition(_)) => {
                    self.retried();
                    self.inner.hot.heat(query);
                }
                // Busy keys, or ids found stored by a decision on a state
                // that may be stale: the guarded path decides again (and
                // tells a replay from a conflict).
                Err(AppendFailure::LocksBusy | AppendFailure::IdsStored { .. }) => self.retried(),
                Err(AppendFailure::Store(e)) => return Err(DecisionError::Store(e)),
            }
        }
        self.decide_locked(stream, Context::Query(query), process, folded)
            .await
    }

    /// The settled position: every position at or below it belongs to a
    /// finished transaction. Runs as its own (autocommit) statement.
    async fn settled_position(
        &self,
        client: &deadpool_postgres::Object,
    ) -> Result<i64, StoreError> {
        let statement = self.prepare_settled(client).await?;
        let row = client
            .query_one(&statement, &[&self.inner.keys.barrier()])
            .await
            .map_err(|e| db_error("cannot read the settled position", e, Phase::BeforeCommit))?;
        row.try_get(0).map_err(unexpected("settled position"))
    }

    async fn prepare_settled(
        &self,
        client: &deadpool_postgres::ClientWrapper,
    ) -> Result<tokio_postgres::Statement, StoreError> {
        client
            .prepare_cached(&self.sql().settled_position)
            .await
            .map_err(|e| {
                db_error(
                    "cannot prepare the settled position",
                    e,
                    Phase::BeforeCommit,
                )
            })
    }

    /// Reads `query` forwards after `after` at a settled position: the
    /// barrier and the read go out together (one round trip); rows above the
    /// settled mark are dropped. Returns (mark, events, head).
    pub(crate) async fn settled_forward_read(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        query: &Query,
        after: i64,
        limit: Option<i64>,
    ) -> Result<(i64, Vec<StoredEvent>, Option<Position>), StoreError> {
        let (types, tags) = query_items(query);
        let (text, params): (&str, Vec<&(dyn ToSql + Sync)>) = if query.is_all() {
            (&self.sql().read_all_forwards, vec![&after, &limit])
        } else {
            (
                &self.sql().read_query_forwards,
                vec![&types, &tags, &after, &limit],
            )
        };
        let statement = client
            .prepare_cached(text)
            .await
            .map_err(|e| db_error("cannot prepare the read", e, Phase::BeforeCommit))?;
        let settled = self.prepare_settled(client).await?;
        let barrier = self.inner.keys.barrier();
        // Both statements are prepared, so polling the barrier first sends it
        // first: the read runs after it, on a snapshot taken once every
        // in-flight writer has committed.
        let barrier_params: [&(dyn ToSql + Sync); 1] = [&barrier];
        let (_, mark, rows) = futures_util::join!(
            self.session_settings(client),
            client.query_one(&settled, &barrier_params),
            client.query(&statement, &params)
        );
        let mark: i64 = mark
            .map_err(|e| db_error("cannot read the settled position", e, Phase::BeforeCommit))?
            .try_get(0)
            .map_err(unexpected("settled position"))?;
        let rows = rows.map_err(|e| db_error("cannot read events", e, Phase::BeforeCommit))?;
        let (events, head) = read_rows(&rows, mark)?;
        Ok((mark, events, head))
    }

    /// An optimistic decision: a settled read without locks, a decision, and
    /// a short transaction that locks, checks and appends. On a conflict it
    /// catches up on the new matching events and decides again.
    async fn decide_optimistic<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let mut seen_upto: i64 = 0;
        let mut fed_count = 0usize;
        let mut extra: Vec<KeyLock> = Vec::new();
        let mut last_conflict = None;
        for attempt in 1..=self.attempts() {
            let client = self.client().await?;
            let (mark, events, _) = self
                .settled_forward_read(&client, query, seen_upto, None)
                .await?;
            fed_count += events.len();
            self.limits().check_context(fed_count)?;
            for event in &events {
                process.evolve(event).map_err(DecisionError::Process)?;
            }
            // Everything matching at or below the settled mark has been fed.
            seen_upto = seen_upto.max(mark);
            let context_read = Folded {
                position: u64::try_from(seen_upto).ok().and_then(Position::new),
                events: fed_count,
            };
            let decided = process.decide().map_err(DecisionError::Process)?;
            self.limits()
                .check(&decided)
                .map_err(DecisionError::Invalid)?;
            let next_extra = self.inner.keys.events(&decided);
            let condition =
                AppendCondition::fail_if_events_match(query.clone(), context_read.position);
            let guard = self.guard(stream, Context::Query(query), &extra);
            let session = Session::new(client);
            match self
                .append_and_commit(
                    &session,
                    &guard,
                    true,
                    Write {
                        stream,
                        events: decided,
                        condition: &condition,
                        expected: None,
                        commit: true,
                    },
                )
                .await
            {
                Ok(committed) => return Ok(decided_on(committed, context_read)),
                Err(AppendFailure::IdsStored { new, stored }) => {
                    // The session's connection is idle (its pipeline
                    // committed): no second pooled connection for the lookup.
                    let planned = self.planned_ids(process);
                    let client = session.client()?;
                    if let Some(replayed) = self.earlier_attempt(client, stream, &planned).await? {
                        return Ok(replayed);
                    }
                    return replay_or_conflict(
                        stream,
                        &new,
                        stored,
                        |s, n, st| process.is_replay_of(s, n, st),
                        context_read,
                    )
                    .map_err(DecisionError::Store);
                }
                Err(AppendFailure::LocksBusy) => {
                    extra = next_extra;
                    self.retried();
                    backoff(attempt).await;
                }
                Err(AppendFailure::Condition(c)) => {
                    self.retried();
                    last_conflict = Some(c);
                }
                Err(AppendFailure::Store(e)) => return Err(DecisionError::Store(e)),
            }
        }
        Err(last_conflict.map_or_else(
            || DecisionError::Store(contention(self.attempts())),
            DecisionError::ConditionFailed,
        ))
    }

    async fn append_with_retries(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: &AppendCondition,
    ) -> Result<Committed, AppendError> {
        let mut extra: Vec<KeyLock> = Vec::new();
        for attempt in 1..=self.attempts() {
            let session = Session::new(self.client().await?);
            let guard = self.append_guard(stream, condition, &extra);
            let next_extra = self.inner.keys.events(&events);
            match self
                .append_and_commit(
                    &session,
                    &guard,
                    true,
                    Write {
                        stream,
                        events: events.clone(),
                        condition,
                        expected: None,
                        commit: true,
                    },
                )
                .await
            {
                Ok(committed) => return Ok(committed),
                Err(AppendFailure::IdsStored { new, stored }) => {
                    return replay_or_conflict(
                        stream,
                        &new,
                        stored,
                        factos::store::is_same_append,
                        Folded::default(),
                    )
                    .map_err(AppendError::Store);
                }
                Err(AppendFailure::LocksBusy) => {
                    extra = next_extra;
                    self.retried();
                    backoff(attempt).await;
                }
                Err(AppendFailure::Condition(c)) => return Err(AppendError::ConditionFailed(c)),
                Err(AppendFailure::Store(e)) => return Err(AppendError::Store(e)),
            }
        }
        Err(AppendError::Store(contention(self.attempts())))
    }
}

/// Events and head from read rows `(head, event columns...)`, keeping only
/// events at or below the settled `mark`; the head is the last event at or
/// below it.
fn read_rows(
    rows: &[tokio_postgres::Row],
    mark: i64,
) -> Result<(Vec<StoredEvent>, Option<Position>), StoreError> {
    let mut head: Option<i64> = None;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let row_head: Option<i64> = row.try_get(0).map_err(unexpected("read"))?;
        head = row_head.map(|h| h.min(mark));
        let at: Option<i64> = row.try_get(1).map_err(unexpected("read"))?;
        if at.is_some_and(|at| at <= mark) {
            events.push(stored_event(row, 1)?);
        }
    }
    let head = head.filter(|h| *h > 0).map(position).transpose()?;
    Ok((events, head))
}

/// A decision's commit, with the context it was decided on.
fn decided_on(committed: Committed, context: Folded) -> Committed {
    Committed {
        context_position: context.position,
        context_events: context.events,
        ..committed
    }
}

/// Whether the append statement found some of the events' ids already
/// stored (and so appended nothing).
fn ids_stored(rows: &[tokio_postgres::Row]) -> Result<bool, StoreError> {
    let first = rows
        .first()
        .ok_or_else(|| crate::error::corrupt("the append returned no row"))?;
    first
        .try_get::<_, bool>("replayed")
        .map_err(|e| crate::error::corrupt("unexpected append result").with_source(e))
}

/// What a decision or append whose ids were found stored reports: a replay
/// when `stored` are all of `new` and `own` says they are its own earlier
/// attempt's, an id conflict otherwise.
fn replay_or_conflict(
    stream: &StreamId,
    new: &[NewEvent],
    stored: Vec<StoredEvent>,
    own: impl FnOnce(&StreamId, &[NewEvent], &[StoredEvent]) -> bool,
    context: Folded,
) -> Result<Committed, StoreError> {
    if stored.len() != new.len() || !own(stream, new, &stored) {
        return Err(factos::store::event_id_conflict(new, &stored));
    }
    Ok(factos::store::replayed(stream, stored, context))
}

/// Reads the append statement's result: a failed condition or the committed
/// events (the caller has checked [`ids_stored`]).
fn committed_from_rows(
    rows: &[tokio_postgres::Row],
    stream: &StreamId,
    events: Vec<NewEvent>,
    condition: &AppendCondition,
    expected: Option<Revision>,
) -> Result<Committed, AppendFailure> {
    let unexpected =
        |e: tokio_postgres::Error| crate::error::corrupt("unexpected append result").with_source(e);
    let first = rows
        .first()
        .ok_or_else(|| crate::error::corrupt("the append returned no row"))?;
    if !first.try_get::<_, bool>(0).map_err(unexpected)? {
        return Err(AppendFailure::LocksBusy);
    }
    if first.try_get::<_, bool>(1).map_err(unexpected)? {
        return Err(AppendFailure::Condition(
            ConditionFailure::from_condition(condition)
                .ok_or_else(|| crate::error::corrupt("a condition failed without a condition"))?,
        ));
    }
    if first.try_get::<_, bool>(2).map_err(unexpected)? {
        return Err(AppendFailure::Condition(ConditionFailure::StreamRevision {
            stream: stream.clone(),
            expected: expected.unwrap_or_default(),
        }));
    }
    let before: i64 = first.try_get(3).map_err(unexpected)?;
    let mut committed = Vec::with_capacity(events.len());
    for (row, event) in rows.iter().zip(events) {
        let at: Option<i64> = row.try_get(4).map_err(unexpected)?;
        let rev: Option<i64> = row.try_get(5).map_err(unexpected)?;
        let (Some(at), Some(rev)) = (at, rev) else {
            return Err(crate::error::corrupt("the append stored fewer events than given").into());
        };
        committed.push(StoredEvent {
            position: position(at)?,
            stream: stream.clone(),
            revision: revision(rev)?,
            id: event.id,
            event_type: event.event_type,
            version: event.version,
            tags: event.tags,
            metadata: event.metadata,
            data: event.data,
        });
    }
    if committed.windows(2).any(|w| w[0].position >= w[1].position) {
        return Err(crate::error::corrupt("appended positions are not increasing").into());
    }
    let previous = if before < 0 {
        Revision::NoEvents
    } else {
        Revision::Current(revision(before)?)
    };
    Ok(Committed {
        stream: stream.clone(),
        current_revision: previous.advanced_by(committed.len()),
        position: committed.last().map(|e| e.position),
        events: committed,
        context_position: None,
        context_events: 0,
        replayed: false,
    })
}

fn record_outcome<T, E>(
    span: &tracing::Span,
    outcome: &Result<Committed, T>,
    describe: impl Fn(&T) -> E,
) where
    E: std::fmt::Display,
{
    match outcome {
        Ok(committed) => {
            span.record("outcome", "committed");
            span.record("events", committed.events.len());
            if let Some(p) = committed.position {
                span.record("position", p.get());
            }
        }
        Err(e) => {
            span.record("outcome", tracing::field::display(describe(e)));
        }
    }
}

fn describe_decision<E>(error: &DecisionError<E>) -> &'static str {
    match error {
        DecisionError::Process(_) => "refused",
        DecisionError::Invalid(_) => "invalid",
        DecisionError::ConditionFailed(_) => "condition failed",
        DecisionError::Store(_) => "store error",
    }
}

impl EventStore for PostgresStore {
    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult, StoreError> {
        let span = tracing::debug_span!("factos.read", query = %query, events = tracing::field::Empty, head = tracing::field::Empty);
        async {
            let client = self.client().await?;
            let limit: Option<i64> = options.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
            let (events, head) = if options.backwards {
                // The settled mark bounds the read from above, so the limit
                // counts only settled events.
                let (_, mark) = futures_util::join!(
                    self.session_settings(&client),
                    self.settled_position(&client)
                );
                let mark = mark?;
                let upper = bound(options).min(mark);
                let (types, tags) = query_items(query);
                let (text, params): (&str, Vec<&(dyn ToSql + Sync)>) = if query.is_all() {
                    (&self.sql().read_all_backwards, vec![&upper, &limit])
                } else {
                    (
                        &self.sql().read_query_backwards,
                        vec![&types, &tags, &upper, &limit],
                    )
                };
                let statement = client
                    .prepare_cached(text)
                    .await
                    .map_err(|e| db_error("cannot prepare the read", e, Phase::BeforeCommit))?;
                let rows = client
                    .query(&statement, &params)
                    .await
                    .map_err(|e| db_error("cannot read events", e, Phase::BeforeCommit))?;
                read_rows(&rows, mark)?
            } else {
                let (_, events, head) = self
                    .settled_forward_read(&client, query, bound(options), limit)
                    .await?;
                (events, head)
            };
            let span = tracing::Span::current();
            span.record("events", events.len());
            if let Some(h) = head {
                span.record("head", h.get());
            }
            Ok(ReadResult { events, head })
        }
        .instrument(span)
        .await
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<StreamEvents, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql().read_stream)
            .await
            .map_err(|e| db_error("cannot prepare the stream read", e, Phase::BeforeCommit))?;
        let rows = client
            .query(&statement, &[&stream.as_str()])
            .await
            .map_err(|e| db_error("cannot read the stream", e, Phase::BeforeCommit))?;
        let events = rows
            .iter()
            .map(|row| stored_event(row, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let revision = events
            .last()
            .map_or(Revision::NoEvents, |e| Revision::Current(e.revision));
        Ok(StreamEvents {
            stream: stream.clone(),
            events,
            revision,
        })
    }

    async fn append(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<Committed, AppendError> {
        let span = tracing::info_span!("factos.append", stream = %stream, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let outcome = async {
            self.limits().check(&events).map_err(AppendError::Invalid)?;
            self.append_with_retries(stream, events, &condition).await
        }
        .instrument(span.clone())
        .await;
        record_outcome(&span, &outcome, |e: &AppendError| match e {
            AppendError::Invalid(_) => "invalid",
            AppendError::ConditionFailed(_) => "condition failed",
            AppendError::Store(_) => "store error",
        });
        outcome
    }

    async fn decide_with_query<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let span = tracing::info_span!("factos.dispatch", kind = "query", stream = %stream, query = %query, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let planned = self.planned_ids(process);
        let outcome = match self.replay_before_deciding(stream, &planned).await {
            Ok(Some(replayed)) => Ok(replayed),
            Err(e) => Err(DecisionError::Store(e)),
            // Effects are recorded between the append and the commit, which
            // the pessimistic path (every strategy's keys are compatible) does.
            Ok(None)
                if self.inner.options.locking == LockingStrategy::Optimistic
                    && !process.records_effects() =>
            {
                self.decide_optimistic(stream, query, process)
                    .instrument(span.clone())
                    .await
            }
            Ok(None) => {
                self.decide_locked(stream, Context::Query(query), process, Folded::default())
                    .instrument(span.clone())
                    .await
            }
        };
        record_outcome(&span, &outcome, describe_decision);
        outcome
    }

    async fn decide_with_query_after<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let span = tracing::info_span!("factos.dispatch", kind = "cached", stream = %stream, query = %query, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let planned = self.planned_ids(process);
        let outcome = match self.replay_before_deciding(stream, &planned).await {
            Ok(Some(replayed)) => Ok(replayed),
            Err(e) => Err(DecisionError::Store(e)),
            Ok(None) if process.records_effects() => {
                self.decide_locked(stream, Context::Query(query), process, folded)
                    .instrument(span.clone())
                    .await
            }
            Ok(None) => {
                self.decide_cached(stream, query, process, folded)
                    .instrument(span.clone())
                    .await
            }
        };
        record_outcome(&span, &outcome, describe_decision);
        outcome
    }

    fn records_effects(&self) -> bool {
        true
    }

    fn internal_retries(&self) -> u64 {
        self.inner
            .retries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn decide_on_stream<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let span = tracing::info_span!("factos.dispatch", kind = "stream", stream = %stream, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let planned = self.planned_ids(process);
        let outcome = match self.replay_before_deciding(stream, &planned).await {
            Ok(Some(replayed)) => Ok(replayed),
            Err(e) => Err(DecisionError::Store(e)),
            Ok(None) => {
                self.decide_locked(stream, Context::Stream, process, Folded::default())
                    .instrument(span.clone())
                    .await
            }
        };
        record_outcome(&span, &outcome, describe_decision);
        outcome
    }
}
