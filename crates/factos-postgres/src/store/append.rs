//! The append pipeline: the condition check, the events' keys, the barrier
//! and the insert in one statement, sent with the transaction's other
//! statements in one round trip, and its result read back; and plain appends.

use factos::store::{AppendError, Committed, ConditionFailure, Folded};
use factos::{
    AppendCondition, NewEvent, Revision, StoreError, StoreErrorKind, StoredEvent, StreamId,
};
use tokio_postgres::types::ToSql;

use crate::error::{Phase, db_error, is_event_id_violation, is_stream_revision_violation};
use crate::locks::{KeyLock, arrays};
use crate::rows::{EventColumns, position, query_items, revision};
use crate::store::PostgresStore;
use crate::store::guard::Guard;
use crate::store::read::position_value;
use crate::store::replay::replay_or_conflict;
use crate::store::retry::{backoff, contention};
use crate::store::session::{Session, first_failure};

/// Why an append inside a transaction did not happen.
pub(crate) enum AppendFailure {
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

/// What an append writes and under which condition.
pub(crate) struct Write<'a> {
    pub(crate) stream: &'a StreamId,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) condition: &'a AppendCondition,
    pub(crate) expected: Option<Revision>,
    /// Commit in the same pipeline; when false the transaction stays open
    /// (effects are recorded next, then [`PostgresStore::record_and_commit`]).
    pub(crate) commit: bool,
}

impl PostgresStore {
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
    pub(crate) async fn append_and_commit(
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

    pub(crate) async fn append_with_retries(
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

/// Whether the append statement found some of the events' ids already
/// stored (and so appended nothing).
pub(crate) fn ids_stored(rows: &[tokio_postgres::Row]) -> Result<bool, StoreError> {
    let first = rows
        .first()
        .ok_or_else(|| crate::error::corrupt("the append returned no row"))?;
    first
        .try_get::<_, bool>("replayed")
        .map_err(|e| crate::error::corrupt("unexpected append result").with_source(e))
}

/// Reads the append statement's result: a failed condition or the committed
/// events (the caller has checked [`ids_stored`]).
pub(crate) fn committed_from_rows(
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
