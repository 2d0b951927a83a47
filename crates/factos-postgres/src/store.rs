//! [`PostgresStore`]: the [`EventStore`] on PostgreSQL.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use factos::store::{
    AppendError, Committed, ConditionFailure, DecisionError, DecisionProcess, ReadResult,
    StreamEvents,
};
use factos::{
    AppendCondition, EventStore, NewEvent, Position, Query, ReadOptions, Revision, StoreError,
    StoreErrorKind, StoreLimits, StoredEvent, StreamId,
};
use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::types::ToSql;
use tracing::Instrument;

use crate::error::{Phase, db_error, is_stream_revision_violation, pool_error};
use crate::rows::{EventColumns, position, query_items, revision, stored_event};
use crate::sql::{SchemaName, Statements};

/// How a dispatch keeps its context stable until it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockingStrategy {
    /// The seed's strategy: every write locks the event table
    /// (`LOCK TABLE ... IN EXCLUSIVE MODE`) before it reads, checks and
    /// appends, so writers run one at a time and commit in position order.
    /// Readers are never blocked.
    #[default]
    TableLock,
}

/// Options of a [`PostgresStore`].
///
/// ```
/// use factos_postgres::{SchemaName, StoreOptions};
/// let options = StoreOptions::default().schema(SchemaName::new("tenant_a")?);
/// assert_eq!(options.schema.as_str(), "tenant_a");
/// # Ok::<(), factos_postgres::InvalidSchemaName>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// The schema holding the tables (default `public`). Several stores can
    /// share a database with different schemas.
    pub schema: SchemaName,
    /// Bounds on payloads, batch sizes and context sizes.
    pub limits: StoreLimits,
    /// How dispatches keep their context stable.
    pub locking: LockingStrategy,
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
    sql: Statements,
    options: StoreOptions,
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
    Condition(ConditionFailure),
    Store(StoreError),
}

impl From<StoreError> for AppendFailure {
    fn from(e: StoreError) -> Self {
        AppendFailure::Store(e)
    }
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

fn after_value(after: Option<Position>) -> i64 {
    after.map_or(0, |p| i64::try_from(p.get()).unwrap_or(i64::MAX))
}

fn params_iter<'a>(
    params: &'a [&'a (dyn ToSql + Sync)],
) -> impl ExactSizeIterator<Item = &'a dyn ToSql> + 'a {
    params.iter().map(|p| *p as &dyn ToSql)
}

impl PostgresStore {
    /// A store on an existing pool.
    pub fn new(pool: Pool, options: StoreOptions) -> Self {
        let sql = Statements::new(&options.schema);
        Self {
            inner: Arc::new(Inner { pool, sql, options }),
        }
    }

    /// A store with its own pool of at most `pool_size` connections, from a
    /// driver configuration (no TLS; see the crate docs for TLS).
    pub fn from_config(
        config: tokio_postgres::Config,
        pool_size: usize,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| {
                StoreError::new(StoreErrorKind::Other, "cannot build the connection pool")
                    .with_source(e)
            })?;
        Ok(Self::new(pool, options))
    }

    /// A store with a pool of [`DEFAULT_POOL_SIZE`] connections to `url`
    /// (`postgresql://user:password@host/db` or `host=... dbname=...`).
    /// Connections are opened lazily: this does not reach the server.
    pub fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::new(
                StoreErrorKind::Other,
                "malformed PostgreSQL connection string",
            )
            .with_source(e)
        })?;
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

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    fn sql(&self) -> &Statements {
        &self.inner.sql
    }

    fn limits(&self) -> &StoreLimits {
        &self.inner.options.limits
    }

    /// Streams the rows of a context read into `on_event`, enforcing the
    /// context limit. Returns how many events were read.
    async fn read_context_rows<F, E>(
        &self,
        client: &deadpool_postgres::Transaction<'_>,
        context: Context<'_>,
        stream: &StreamId,
        mut on_event: F,
    ) -> Result<(), DecisionError<E>>
    where
        F: FnMut(StoredEvent) -> Result<(), DecisionError<E>> + Send,
    {
        let before = |what: &str| {
            let what = what.to_string();
            move |e| DecisionError::Store(db_error(&what, e, Phase::BeforeCommit))
        };
        let (types, tags) = match context {
            Context::Query(query) => query_items(query),
            Context::Stream => (Vec::new(), Vec::new()),
        };
        let no_limit: Option<i64> = None;
        let lower = 0i64;
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
            Context::Stream => (&self.sql().read_stream, vec![&stream_name], 0),
        };
        let statement = client
            .prepare_cached(text)
            .await
            .map_err(before("cannot prepare the context read"))?;
        let rows = client
            .query_raw(&statement, params_iter(&params))
            .await
            .map_err(before("cannot read the context"))?;
        pin_mut!(rows);
        let mut count = 0usize;
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(before("cannot read the context"))?
        {
            // A read-all/read-query row with a NULL position is the "no match" row.
            if first == 1 && row.try_get::<_, Option<i64>>(1).ok().flatten().is_none() {
                continue;
            }
            count += 1;
            if count > self.limits().max_context_events {
                return Err(DecisionError::Store(StoreError::new(
                    StoreErrorKind::Rejected,
                    format!(
                        "the decision context holds more than {} events",
                        self.limits().max_context_events
                    ),
                )));
            }
            on_event(stored_event(&row, first).map_err(DecisionError::Store)?)?;
        }
        Ok(())
    }

    /// Checks `condition` (and `expected` stream revision) and appends `events`
    /// inside the caller's transaction, which holds the lock that keeps the
    /// check valid until commit.
    async fn append_in_transaction(
        &self,
        client: &deadpool_postgres::Transaction<'_>,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: &AppendCondition,
        expected: Option<Revision>,
    ) -> Result<Committed, AppendFailure> {
        let columns = EventColumns::new(&events)?;
        let stream_name = stream.as_str();
        let expected_value: i64 = match expected {
            None => -2,
            Some(revision) => revision.as_i64(),
        };
        let (after, query) = match condition {
            AppendCondition::None => (i64::MAX, None),
            AppendCondition::FailIfEventsMatch { query, after } => {
                (after_value(*after), (!query.is_all()).then_some(query))
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
        ];
        let items = query.map(query_items);
        let text = if let Some((types, tags)) = &items {
            params.push(types);
            params.push(tags);
            &self.sql().append_if_query
        } else {
            &self.sql().append_if_all
        };
        let statement = client
            .prepare_cached(text)
            .await
            .map_err(|e| db_error("cannot prepare the append", e, Phase::BeforeCommit))?;
        let rows = match client.query(&statement, &params).await {
            Ok(rows) => rows,
            Err(e) if is_stream_revision_violation(&e) => {
                return Err(AppendFailure::Condition(ConditionFailure::StreamRevision {
                    stream: stream.clone(),
                    expected: expected.unwrap_or_default(),
                }));
            }
            Err(e) => return Err(db_error("cannot append", e, Phase::BeforeCommit).into()),
        };
        committed_from_rows(&rows, stream, events, condition, expected)
    }

    async fn lock(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(), StoreError> {
        match self.inner.options.locking {
            LockingStrategy::TableLock => {
                let statement = transaction
                    .prepare_cached(&self.sql().lock_table)
                    .await
                    .map_err(|e| {
                        db_error("cannot prepare the table lock", e, Phase::BeforeCommit)
                    })?;
                transaction
                    .execute(&statement, &[])
                    .await
                    .map_err(|e| db_error("cannot lock the event table", e, Phase::BeforeCommit))?;
                Ok(())
            }
        }
    }

    async fn decide<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        context: Context<'_>,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let mut client = self.client().await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|e| db_error("cannot begin a transaction", e, Phase::BeforeCommit))?;
        self.lock(&transaction).await?;
        let mut last_position = None;
        let mut stream_revision = Revision::NoEvents;
        self.read_context_rows(&transaction, context, stream, |event| {
            last_position = Some(event.position);
            stream_revision = Revision::Current(event.revision);
            process.evolve(&event).map_err(DecisionError::Process)
        })
        .await?;
        let events = process.decide().map_err(DecisionError::Process)?;
        self.limits()
            .check(&events)
            .map_err(DecisionError::Invalid)?;
        let (condition, expected) = match context {
            Context::Query(query) => (
                AppendCondition::fail_if_events_match(query.clone(), last_position),
                None,
            ),
            Context::Stream => (AppendCondition::None, Some(stream_revision)),
        };
        let committed = self
            .append_in_transaction(&transaction, stream, events, &condition, expected)
            .await
            .map_err(|failure| match failure {
                AppendFailure::Condition(c) => DecisionError::ConditionFailed(c),
                AppendFailure::Store(e) => DecisionError::Store(e),
            })?;
        transaction
            .commit()
            .await
            .map_err(|e| db_error("cannot commit", e, Phase::Commit))?;
        Ok(committed)
    }
}

/// Reads the append statement's result: a failed condition, or the committed events.
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
    if first.try_get::<_, bool>(0).map_err(unexpected)? {
        return Err(AppendFailure::Condition(
            ConditionFailure::from_condition(condition)
                .ok_or_else(|| crate::error::corrupt("a condition failed without a condition"))?,
        ));
    }
    if first.try_get::<_, bool>(1).map_err(unexpected)? {
        return Err(AppendFailure::Condition(ConditionFailure::StreamRevision {
            stream: stream.clone(),
            expected: expected.unwrap_or_default(),
        }));
    }
    let before: i64 = first.try_get(2).map_err(unexpected)?;
    let mut committed = Vec::with_capacity(events.len());
    for (row, event) in rows.iter().zip(events) {
        let at: Option<i64> = row.try_get(3).map_err(unexpected)?;
        let rev: Option<i64> = row.try_get(4).map_err(unexpected)?;
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
            let bound = bound(options);
            let limit: Option<i64> = options.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
            let (types, tags) = query_items(query);
            let (text, params): (&str, Vec<&(dyn ToSql + Sync)>) =
                match (query.is_all(), options.backwards) {
                    (true, false) => (&self.sql().read_all_forwards, vec![&bound, &limit]),
                    (true, true) => (&self.sql().read_all_backwards, vec![&bound, &limit]),
                    (false, false) => (
                        &self.sql().read_query_forwards,
                        vec![&types, &tags, &bound, &limit],
                    ),
                    (false, true) => (
                        &self.sql().read_query_backwards,
                        vec![&types, &tags, &bound, &limit],
                    ),
                };
            let statement = client
                .prepare_cached(text)
                .await
                .map_err(|e| db_error("cannot prepare the read", e, Phase::BeforeCommit))?;
            let rows = client
                .query(&statement, &params)
                .await
                .map_err(|e| db_error("cannot read events", e, Phase::BeforeCommit))?;
            let mut head = None;
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let row_head: Option<i64> = row
                    .try_get(0)
                    .map_err(|e| crate::error::corrupt("unexpected read result").with_source(e))?;
                head = row_head.map(position).transpose()?;
                let at: Option<i64> = row
                    .try_get(1)
                    .map_err(|e| crate::error::corrupt("unexpected read result").with_source(e))?;
                if at.is_some() {
                    events.push(stored_event(row, 1)?);
                }
            }
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
            let mut client = self.client().await?;
            let transaction = client
                .transaction()
                .await
                .map_err(|e| db_error("cannot begin a transaction", e, Phase::BeforeCommit))?;
            self.lock(&transaction).await?;
            let committed = self
                .append_in_transaction(&transaction, stream, events, &condition, None)
                .await
                .map_err(|failure| match failure {
                    AppendFailure::Condition(c) => AppendError::ConditionFailed(c),
                    AppendFailure::Store(e) => AppendError::Store(e),
                })?;
            transaction
                .commit()
                .await
                .map_err(|e| db_error("cannot commit", e, Phase::Commit))?;
            Ok(committed)
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
        let outcome = self
            .decide(stream, Context::Query(query), process)
            .instrument(span.clone())
            .await;
        record_outcome(&span, &outcome, describe_decision);
        outcome
    }

    async fn decide_on_stream<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let span = tracing::info_span!("factos.dispatch", kind = "stream", stream = %stream, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let outcome = self
            .decide(stream, Context::Stream, process)
            .instrument(span.clone())
            .await;
        record_outcome(&span, &outcome, describe_decision);
        outcome
    }
}
