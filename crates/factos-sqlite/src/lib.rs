//! # factos-sqlite: the SQLite backend of factos
//!
//! The same model as the PostgreSQL backend in one file, without a server:
//! an append-only `factos_events` table (triggers refuse `UPDATE` and
//! `DELETE`) with its tag mirror `factos_event_tags` (a b-tree over
//! `(tag, position)`), so reads and condition checks are index lookups.
//! SQLite is bundled (no system library); the file runs in WAL mode with
//! `synchronous = FULL` by default ([`Durability`]).
//!
//! Reads run concurrently on connections of their own. Writes go through
//! one writer thread per store instance (`BEGIN IMMEDIATE`, waiting up to
//! the busy timeout for another instance or process holding the file's
//! write lock), which commits the writes queued while it was busy together
//! (one fsync for the group, each write checked as if alone: see
//! [`SqliteStore::group_commits`]), and the writer assigns positions, so
//! positions increase in commit order and every read is settled: no event
//! can appear later at or below its head.
//! A decision reads its context, decides, then in the writer's transaction
//! checks that no event matching its query (or of its stream, for a stream
//! dispatch) was committed after that head, and appends; when one was, it
//! reads the new events and decides again. All SQLite work runs off the
//! async threads (writes on the writer thread, reads in `spawn_blocking`,
//! connections closed there too): the async runtime is never blocked.
//!
//! Persistent snapshots are kept in `factos_snapshots` (the one folded
//! furthest per decider, state version and query).
//!
//! A decision dispatched with an outbox reactor records its effects in
//! `factos_outbox` in the writer's transaction that appends its events, so
//! both commit or neither does; [`Outbox`] workers deliver them. Durable
//! [`Subscription`]s hand every matching event over in position order, at
//! least once, or exactly once into the same file ([`ProjectionHandler`]:
//! the projection's writes and the checkpoint in one transaction).
//! Subscribers and workers of a store instance (and its clones) wake up on
//! its commits; those of other instances or processes on the file poll.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use factos::{AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StreamId};
//! let dir = std::env::temp_dir().join(format!("factos-doc-{}", uuid::Uuid::new_v4()));
//! std::fs::create_dir_all(&dir)?;
//! let store = factos_sqlite::SqliteStore::open(dir.join("events.db"), Default::default()).await?;
//! let event = NewEvent::new(EventType::new("Happened")?, b"{}".to_vec());
//! store.append(&StreamId::new("s")?, vec![event], AppendCondition::None).await?;
//! assert_eq!(store.read(&Query::all(), ReadOptions::default()).await?.events.len(), 1);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod decide;
mod error;
mod group;
mod open_write;
mod outbox;
mod predicate;
mod rows;
mod schema;
mod subscription;
mod write;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use factos::snapshot::{Snapshot, SnapshotKey};
use factos::store::{DecisionError, DecisionProcess, StreamEvents};
use factos::{
    AppendCondition, AppendError, Committed, EventStore, NewEvent, Query, ReadOptions, ReadResult,
    StoreError, StoreErrorKind, StoreLimits, StoredEvent, StreamId,
};
use rusqlite::{Connection, OptionalExtension};

pub use factos::outbox::{FailOutcome, LeasedMessage, MessageHandler, OutboxError, OutboxOptions};
pub use factos::subscription::{
    EventHandler, PoisonPolicy, SubscriptionError, SubscriptionOptions,
};
pub use group::{GroupCommits, MAX_GROUP_WRITES};
pub use outbox::{Outbox, OutboxTopic};
pub use rusqlite;
pub use schema::MIGRATIONS;
pub use subscription::{
    DEFAULT_SUBSCRIBER_LEASE, ProjectionHandler, SubscriberStatus, Subscription,
};

use crate::error::sqlite_error;

/// How a commit reaches the disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `FULL`: an acknowledged commit survives a power loss (the default).
    #[default]
    Full,
    /// `NORMAL`: in WAL mode an acknowledged commit survives a crash of the
    /// process, not necessarily of the machine (faster).
    Normal,
}

/// Options of a [`SqliteStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How commits reach the disk.
    pub durability: Durability,
    /// How long a writer waits for another writer (another instance or
    /// process on the file) before failing with
    /// [`StoreErrorKind::Timeout`] (default 5 s, at most an hour).
    pub busy_timeout: Duration,
    /// The store's limits (payload size, events per append, context size).
    pub limits: StoreLimits,
    /// Most attempts of one decision whose context moved meanwhile.
    pub max_decision_attempts: usize,
    /// A cap on the file's size, in pages (`PRAGMA max_page_count`; `None`:
    /// SQLite's own limit). A write past it fails with
    /// [`StoreErrorKind::Rejected`] and writes nothing, as a full disk does.
    pub max_page_count: Option<u32>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            limits: StoreLimits::default(),
            max_decision_attempts: 100,
            max_page_count: None,
        }
    }
}

/// A factos event store in one SQLite file. Clones share the writer and
/// the readers; several stores (or processes) may open one file.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    /// The writer thread's jobs (it owns the writer connection).
    jobs: std::sync::mpsc::Sender<writer::Job>,
    readers: Mutex<Vec<Connection>>,
    retries: AtomicU64,
    /// Bumped after every commit of events (by the writer thread): wakes
    /// this instance's subscribers and outbox workers.
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// Writer transactions and the writes they ran.
    counters: Arc<group::Counters>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    /// Closes the idle readers on a thread of their own: closing the
    /// file's last connection checkpoints the WAL, which must not happen on
    /// an async thread. (The writer connection closes on the writer thread
    /// when it sees the job queue end.)
    fn drop(&mut self) {
        let readers = std::mem::take(
            self.readers
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if !readers.is_empty() {
            let _ = std::thread::Builder::new()
                .name("factos-sqlite-close".to_string())
                .spawn(move || drop(readers));
        }
    }
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// Readers kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

/// The longest busy timeout used (longer ones are cut to it).
const MAX_BUSY_TIMEOUT: Duration = Duration::from_secs(3600);

impl SqliteStore {
    /// Opens (creating it if missing) the store in the file at `path` and
    /// migrates it to this factos's schema.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or is not a factos store (a typed
    /// [`StoreError`]: `Corrupt` for a file that is not a database,
    /// `Schema` for a newer schema or a changed migration).
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let opened = blocking({
            let (path, options) = (path.clone(), options.clone());
            move || {
                let mut writer = connect(&path, &options)?;
                schema::migrate(&mut writer)?;
                Ok(writer)
            }
        })
        .await?;
        let counters = Arc::new(group::Counters::default());
        let commits = Arc::new(tokio::sync::watch::Sender::new(0));
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                jobs: writer::spawn(opened, counters.clone(), commits.clone())?,
                readers: Mutex::new(Vec::new()),
                retries: AtomicU64::new(0),
                commits,
                counters,
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn limits(&self) -> &StoreLimits {
        &self.inner.options.limits
    }

    /// Runs `f` with the writer connection, on the writer thread, after
    /// the jobs already queued.
    async fn with_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.run_on_writer(move |c| {
            let _ = reply.send(f(c));
        })?;
        answer.await.map_err(|_| writer::writer_lost())?
    }

    /// Queues `work` for the writer thread.
    fn run_on_writer(
        &self,
        work: impl FnOnce(&mut Connection) + Send + 'static,
    ) -> Result<(), StoreError> {
        self.inner
            .jobs
            .send(writer::Job::Run(Box::new(work)))
            .map_err(|_| writer::writer_lost())
    }

    /// Runs `f` with a reader connection (in a read transaction, so its
    /// statements see one snapshot), on a blocking thread.
    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let taken = inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut reader = match taken {
                Some(reader) => reader,
                None => connect(&inner.path, &inner.options)?,
            };
            let outcome = {
                let tx = reader
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
                    .map_err(|e| sqlite_error("cannot begin a read", &e))?;
                let outcome = f(&tx);
                let _ = tx.rollback();
                outcome
            };
            let mut idle = inner.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(reader);
            }
            outcome
        })
        .await
    }

    fn retried(&self) {
        factos::metrics::record_retry(METRICS_STORE, METRICS_STRATEGY);
        self.inner.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Wakes this instance's subscribers and outbox workers (after a
    /// change that is not a commit of events, such as a requeued message).
    pub(crate) fn wake(&self) {
        writer::wake(&self.inner.commits);
    }

    /// A receiver that changes after every commit of events of this
    /// instance (or its clones).
    pub(crate) fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }
}

/// Opens a connection with the store's pragmas.
fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let connection =
        Connection::open(path).map_err(|e| sqlite_error("cannot open the file", &e))?;
    // Queries of different shapes each have a statement: keep more of them
    // prepared than rusqlite's default 16.
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // SQLite takes the timeout as milliseconds in an `int`.
    connection
        .busy_timeout(options.busy_timeout.min(MAX_BUSY_TIMEOUT))
        .map_err(|e| sqlite_error("cannot set the busy timeout", &e))?;
    let synchronous = match options.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| sqlite_error("cannot set the journal mode", &e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::new(
            StoreErrorKind::Rejected,
            format!(
                "the store needs a file in WAL mode, SQLite answered {mode:?} (an in-memory database cannot be shared)"
            ),
        ));
    }
    connection
        .execute_batch(&format!("PRAGMA synchronous = {synchronous};"))
        .map_err(|e| sqlite_error("cannot set the durability", &e))?;
    if let Some(pages) = options.max_page_count {
        // The pragma answers with the cap it set: read it as a query.
        connection
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(|e| sqlite_error("cannot cap the file's size", &e))?;
    }
    Ok(connection)
}

/// Runs blocking SQLite work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StoreError::new(
            StoreErrorKind::Other,
            format!("the SQLite work did not finish: {e}"),
        )
    })?
}

impl EventStore for SqliteStore {
    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult, StoreError> {
        let query = query.clone();
        self.with_reader(move |tx| rows::read(tx, &query, options))
            .await
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<StreamEvents, StoreError> {
        let stream = stream.clone();
        self.with_reader(move |tx| rows::read_stream(tx, &stream))
            .await
    }

    async fn read_by_ids(&self, ids: &[uuid::Uuid]) -> Result<Vec<StoredEvent>, StoreError> {
        if ids.len() > factos::store::MAX_IDS_PER_READ {
            return Err(factos::store::too_many_ids(ids.len()));
        }
        let ids = ids.to_vec();
        self.with_reader(move |tx| rows::by_ids(tx, &ids)).await
    }

    async fn append(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<Committed, AppendError> {
        let started = std::time::Instant::now();
        let outcome = self.append_once(stream, events, condition).await;
        record(started, "append", factos::metrics::append_outcome(&outcome));
        outcome
    }

    async fn decide_with_query<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let started = std::time::Instant::now();
        let scope = decide::Scope::Query(query.clone());
        let outcome = self
            .decide(stream, scope, process, factos::Folded::default())
            .await;
        record(
            started,
            "query",
            factos::metrics::decision_outcome(&outcome),
        );
        outcome
    }

    async fn decide_with_query_after<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: factos::Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let started = std::time::Instant::now();
        let scope = decide::Scope::Query(query.clone());
        let outcome = self.decide(stream, scope, process, folded).await;
        record(
            started,
            "cached",
            factos::metrics::decision_outcome(&outcome),
        );
        outcome
    }

    async fn decide_on_stream<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let started = std::time::Instant::now();
        let outcome = self
            .decide(
                stream,
                decide::Scope::Stream,
                process,
                factos::Folded::default(),
            )
            .await;
        record(
            started,
            "stream",
            factos::metrics::decision_outcome(&outcome),
        );
        outcome
    }

    fn can_record_effects(&self) -> bool {
        true
    }

    fn internal_retries(&self) -> u64 {
        self.inner.retries.load(Ordering::Relaxed)
    }

    async fn load_snapshot(&self, key: &SnapshotKey) -> Result<Option<Snapshot>, StoreError> {
        let key = key.clone();
        self.with_reader(move |tx| {
            let row = tx
                .query_row(
                    "SELECT position, events, state FROM factos_snapshots
                     WHERE decider = ?1 AND state_version = ?2 AND query = ?3",
                    rusqlite::params![key.decider, key.state_version, key.query],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                        ))
                    },
                )
                .optional()
                .map_err(|e| sqlite_error("cannot load the snapshot", &e))?;
            row.map(|(position, events, state)| {
                Ok(Snapshot {
                    position: rows::position(position)?,
                    events: usize::try_from(events)
                        .map_err(|_| error::corrupt("a snapshot of negative events"))?,
                    state,
                })
            })
            .transpose()
        })
        .await
    }

    async fn save_snapshot(&self, key: &SnapshotKey, snapshot: Snapshot) -> Result<(), StoreError> {
        if snapshot.state.len() > factos::snapshot::MAX_SNAPSHOT_BYTES {
            return Err(factos::store::snapshot_too_large(snapshot.state.len()));
        }
        if key.decider.is_empty() || key.decider.len() > 128 {
            return Err(StoreError::new(
                StoreErrorKind::Rejected,
                "a snapshot's decider name must be 1 to 128 bytes",
            ));
        }
        let key = key.clone();
        self.with_writer(move |c| {
            c.execute(
                "INSERT INTO factos_snapshots (decider, state_version, query, position, events, state, saved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (decider, state_version, query) DO UPDATE
                 SET position = excluded.position, events = excluded.events,
                     state = excluded.state, saved_at = excluded.saved_at
                 WHERE excluded.position > factos_snapshots.position",
                rusqlite::params![
                    key.decider,
                    key.state_version,
                    key.query,
                    rows::sql_position(snapshot.position),
                    i64::try_from(snapshot.events).unwrap_or(i64::MAX),
                    snapshot.state,
                    rows::micros_now(),
                ],
            )
            .map_err(|e| sqlite_error("cannot save the snapshot", &e))?;
            Ok(())
        })
        .await
    }
}

/// A fault `SqliteStore::verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// A stream's revisions are not 0, 1, 2, … in position order.
    Revisions {
        /// The stream.
        stream: String,
    },
    /// An event's tags and its rows in the tag mirror differ.
    Mirror {
        /// The event's position.
        position: i64,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Revisions { stream } => {
                write!(f, "stream {stream:?}: revisions are not contiguous from 0")
            }
            Self::Mirror { position } => {
                write!(f, "event {position}: its tags and the tag mirror differ")
            }
        }
    }
}

impl SqliteStore {
    /// Checks the file's invariants: every stream's revisions are 0, 1, 2,
    /// … in position order, and the tag mirror holds exactly each event's
    /// tags. SQLite's own `PRAGMA integrity_check` runs first (a failure is
    /// a `Corrupt` error).
    ///
    /// # Errors
    ///
    /// The file cannot be read, or SQLite finds it damaged.
    pub async fn verify(&self) -> Result<Vec<Fault>, StoreError> {
        self.with_reader(|tx| {
            let integrity: String = tx
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .map_err(|e| sqlite_error("cannot check the file", &e))?;
            if integrity != "ok" {
                return Err(error::corrupt(format!("SQLite integrity check: {integrity}")));
            }
            let mut faults = Vec::new();
            let mut statement = tx
                .prepare(
                    "SELECT stream FROM (
                         SELECT stream, revision,
                                row_number() OVER (PARTITION BY stream ORDER BY position) - 1 AS expected
                         FROM factos_events)
                     WHERE revision <> expected GROUP BY stream ORDER BY stream",
                )
                .map_err(|e| sqlite_error("cannot check revisions", &e))?;
            let streams = statement
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| sqlite_error("cannot check revisions", &e))?;
            for stream in streams {
                faults.push(Fault::Revisions {
                    stream: stream.map_err(|e| sqlite_error("cannot check revisions", &e))?,
                });
            }
            let mut statement = tx
                .prepare(
                    "SELECT e.position FROM factos_events e
                     WHERE (SELECT count(*) FROM json_each(e.tags))
                        <> (SELECT count(*) FROM factos_event_tags t WHERE t.position = e.position)
                        OR EXISTS (SELECT 1 FROM json_each(e.tags) j WHERE NOT EXISTS
                            (SELECT 1 FROM factos_event_tags t WHERE t.position = e.position AND t.tag = j.value))",
                )
                .map_err(|e| sqlite_error("cannot check the tag mirror", &e))?;
            let positions = statement
                .query_map([], |r| r.get::<_, i64>(0))
                .map_err(|e| sqlite_error("cannot check the tag mirror", &e))?;
            for position in positions {
                faults.push(Fault::Mirror {
                    position: position.map_err(|e| sqlite_error("cannot check the tag mirror", &e))?,
                });
            }
            Ok(faults)
        })
        .await
    }
}

/// The `store` and `strategy` labels of SQLite's metrics: one writer thread
/// per store instance decides every write.
const METRICS_STORE: &str = "sqlite";
const METRICS_STRATEGY: &str = "writer";

fn record(started: std::time::Instant, kind: &'static str, outcome: &'static str) {
    factos::metrics::record_dispatch(
        METRICS_STORE,
        METRICS_STRATEGY,
        kind,
        outcome,
        started.elapsed(),
    );
}

impl SqliteStore {
    async fn append_once(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<Committed, AppendError> {
        self.limits().check(&events).map_err(AppendError::Invalid)?;
        let write = write::Write::plain(stream.clone(), events, condition);
        match self.append_grouped(write).await? {
            write::Outcome::Committed(committed) => Ok(committed),
            write::Outcome::Failed(failure) => Err(AppendError::ConditionFailed(failure)),
            write::Outcome::IdsStored { new, stored } => {
                if stored.len() == new.len() && factos::store::is_same_append(stream, &new, &stored)
                {
                    return Ok(factos::store::replayed(
                        stream,
                        stored,
                        factos::Folded::default(),
                    ));
                }
                Err(AppendError::Store(factos::store::event_id_conflict(
                    &new, &stored,
                )))
            }
        }
    }
}
