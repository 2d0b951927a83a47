//! Reads: settled reads (the settled mark, then the read, in one round trip), the
//! context read under a guard that opens a decision's transaction, reads by
//! event id, and the read bounds.

use factos::store::{DecisionError, StreamEvents};
use factos::{
    NewEvent, Position, Query, ReadOptions, ReadResult, Revision, StoreError, StoredEvent, StreamId,
};
use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::types::ToSql;

use crate::error::{Phase, db_error};
use crate::rows::{position, query_items, stored_event};
use crate::store::PostgresStore;
use crate::store::guard::{Boundary, Guard};
use crate::store::session::Session;
use crate::subscription::PartitionFilter;

/// What a decision reads: its context after a position.
pub(crate) struct Read<'a> {
    pub(crate) boundary: Boundary<'a>,
    pub(crate) stream: &'a StreamId,
    pub(crate) after: Option<Position>,
    pub(crate) fed_so_far: usize,
}

/// The position bound of a read: exclusive lower bound forwards, inclusive
/// upper bound backwards.
pub(crate) fn bound(options: ReadOptions) -> i64 {
    let at = |p: Position| i64::try_from(p.get()).unwrap_or(i64::MAX);
    match (options.from, options.backwards) {
        (None, false) => 0,
        (None, true) => i64::MAX,
        (Some(from), false) => at(from) - 1,
        (Some(from), true) => at(from),
    }
}

pub(crate) fn position_value(position: Option<Position>) -> i64 {
    position.map_or(0, |p| i64::try_from(p.get()).unwrap_or(i64::MAX))
}

pub(crate) fn params_iter<'a>(
    params: &'a [&'a (dyn ToSql + Sync)],
) -> impl ExactSizeIterator<Item = &'a dyn ToSql> + 'a {
    params.iter().map(|p| *p as &dyn ToSql)
}

pub(crate) fn unexpected(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| crate::error::corrupt(format!("unexpected {what} result")).with_source(e)
}

impl PostgresStore {
    /// Applies the settings on a session before reads, when the connection
    /// did not start with them.
    pub(crate) async fn session_settings(
        &self,
        client: &deadpool_postgres::ClientWrapper,
    ) -> Result<(), tokio_postgres::Error> {
        if self.inner.session_settings.is_empty() {
            Ok(())
        } else {
            client.batch_execute(&self.inner.session_settings).await
        }
    }

    /// Opens a transaction, takes `guard` and starts reading the context
    /// after `after`: one round trip (the statements are pipelined). Rows come
    /// back through `on_event`, with the context limit enforced.
    pub(crate) async fn open_and_feed<F, E>(
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
            boundary,
            stream,
            after,
            fed_so_far,
        } = read;
        let fail = |what: &'static str| {
            move |e| DecisionError::Store(db_error(what, e, Phase::BeforeCommit))
        };
        let client = session.client()?;
        let (types, tags) = match boundary {
            Boundary::Query(query) => query_items(query),
            Boundary::Stream => (Vec::new(), Vec::new()),
        };
        let no_limit: Option<i64> = None;
        let lower = position_value(after);
        let stream_name = stream.as_str();
        let (text, params): (&str, Vec<&(dyn ToSql + Sync)>) = match boundary {
            Boundary::Query(query) if query.is_all() => {
                (&self.sql().read_all_forwards, vec![&lower, &no_limit])
            }
            Boundary::Query(_) => (
                &self.sql().read_query_forwards,
                vec![&types, &tags, &lower, &no_limit],
            ),
            Boundary::Stream => (&self.sql().read_stream_after, vec![&stream_name, &lower]),
        };
        let guard = self.prepare_guard(client, guard).await?;
        let read = client
            .prepare_cached(text)
            .await
            .map_err(fail("cannot prepare the context read"))?;
        session.set_open(true);
        // Polled in this order, so sent in this order, in one round trip.
        let (opened, rows) = futures_util::join!(
            guard.open(client, &self.inner.begin),
            client.query_raw(&read, params_iter(&params)),
        );
        // The first failure is the cause; later statements only report an aborted transaction.
        opened
            .failure()
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
            if row
                .try_get::<_, Option<i64>>("position")
                .ok()
                .flatten()
                .is_none()
            {
                continue;
            }
            count += 1;
            self.limits().check_context(count)?;
            on_event(stored_event(&row).map_err(DecisionError::Store)?)?;
        }
        Ok(count)
    }

    /// The stored events carrying the ids of `events`, in their order (ids
    /// not stored are left out).
    pub(crate) async fn stored_with_ids(
        &self,
        client: &deadpool_postgres::Object,
        events: &[NewEvent],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        self.stored_with_id_list(client, &ids).await
    }

    /// The stored events carrying `ids`, in their order (ids not stored are
    /// left out).
    pub(crate) async fn stored_with_id_list(
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
            .map(|row| stored_event(row).map(|e| (e.id, e)))
            .collect::<Result<_, _>>()?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The settled position: every position at or below it belongs to a
    /// finished transaction. Runs as its own (autocommit) statement.
    pub(crate) async fn settled_position(
        &self,
        client: &deadpool_postgres::Object,
    ) -> Result<i64, StoreError> {
        let statement = self.prepare_settled(client).await?;
        let row = client
            .query_one(&statement, &[&self.inner.keys.writers()])
            .await
            .map_err(|e| db_error("cannot read the settled position", e, Phase::BeforeCommit))?;
        row.try_get(0).map_err(unexpected("settled position"))
    }

    pub(crate) async fn prepare_settled(
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
    /// settled mark and the read go out together (one round trip); rows above the
    /// settled mark are dropped. Returns (mark, events, head).
    pub(crate) async fn settled_forward_read(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        read: &ForwardRead<'_>,
    ) -> Result<(i64, Vec<StoredEvent>, Option<Position>), StoreError> {
        let (text, params) = read.statement(self.sql());
        let statement = client
            .prepare_cached(text)
            .await
            .map_err(|e| db_error("cannot prepare the read", e, Phase::BeforeCommit))?;
        let settled = self.prepare_settled(client).await?;
        let writers = self.inner.keys.writers();
        // Both statements are prepared, so polling the settled mark first
        // sends it first: the read runs after it, on a snapshot taken once
        // every writer that may commit at or below the mark has finished.
        let settled_params: [&(dyn ToSql + Sync); 1] = [&writers];
        let (_, mark, rows) = futures_util::join!(
            self.session_settings(client),
            client.query_one(&settled, &settled_params),
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
}

/// A forwards read: a query after a position, with an optional limit, of
/// one partition or of all events.
pub(crate) struct ForwardRead<'a> {
    all: bool,
    types: Vec<String>,
    tags: Vec<String>,
    after: i64,
    limit: Option<i64>,
    partition: Option<&'a PartitionFilter>,
}

impl<'a> ForwardRead<'a> {
    pub(crate) fn new(query: &Query, after: i64, limit: Option<i64>) -> Self {
        let (types, tags) = query_items(query);
        Self {
            all: query.is_all(),
            types,
            tags,
            after,
            limit,
            partition: None,
        }
    }

    /// Only the events of `partition`.
    pub(crate) fn of_partition(mut self, partition: Option<&'a PartitionFilter>) -> Self {
        self.partition = partition;
        self
    }

    /// The statement's text and parameters.
    pub(crate) fn statement<'s>(
        &'s self,
        sql: &'s crate::sql::Statements,
    ) -> (&'s str, Vec<&'s (dyn ToSql + Sync)>) {
        match (self.all, self.partition) {
            (true, None) => (&sql.read_all_forwards, vec![&self.after, &self.limit]),
            (false, None) => (
                &sql.read_query_forwards,
                vec![&self.types, &self.tags, &self.after, &self.limit],
            ),
            (true, Some(p)) => (
                &sql.read_all_partition,
                vec![&self.after, &self.limit, &p.prefix, &p.index, &p.count],
            ),
            (false, Some(p)) => (
                &sql.read_query_partition,
                vec![
                    &self.types,
                    &self.tags,
                    &self.after,
                    &self.limit,
                    &p.prefix,
                    &p.index,
                    &p.count,
                ],
            ),
        }
    }
}

/// Events and head from read rows `(head, event columns...)`, keeping only
/// events at or below the settled `mark`; the head is the last event at or
/// below it.
pub(crate) fn read_rows(
    rows: &[tokio_postgres::Row],
    mark: i64,
) -> Result<(Vec<StoredEvent>, Option<Position>), StoreError> {
    let mut head: Option<i64> = None;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let row_head: Option<i64> = row.try_get("head").map_err(unexpected("read"))?;
        head = row_head.map(|h| h.min(mark));
        let at: Option<i64> = row.try_get("position").map_err(unexpected("read"))?;
        if at.is_some_and(|at| at <= mark) {
            events.push(stored_event(row)?);
        }
    }
    let head = head.filter(|h| *h > 0).map(position).transpose()?;
    Ok((events, head))
}

impl PostgresStore {
    /// The events matching `query` within `options`, at a settled position:
    /// no event at or below the reported head can still appear.
    pub(crate) async fn read_settled(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> Result<ReadResult, StoreError> {
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
            self.backward_read(&client, query, bound(options).min(mark), limit, mark)
                .await?
        } else {
            let read = ForwardRead::new(query, bound(options), limit);
            let (_, events, head) = self.settled_forward_read(&client, &read).await?;
            (events, head)
        };
        Ok(ReadResult { events, head })
    }

    /// Reads `query` backwards from `upper` (inclusive) on `client`, at most
    /// `limit` events, keeping those at or below `mark`; (events, head).
    pub(crate) async fn backward_read(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        query: &Query,
        upper: i64,
        limit: Option<i64>,
        mark: i64,
    ) -> Result<(Vec<StoredEvent>, Option<Position>), StoreError> {
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
        read_rows(&rows, mark)
    }

    /// Every event of `stream`, in revision order.
    pub(crate) async fn read_whole_stream(
        &self,
        stream: &StreamId,
    ) -> Result<StreamEvents, StoreError> {
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
            .map(stored_event)
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
}
