//! The append pipeline: the condition check, the events' keys, the writer's
//! own key and the insert in one statement, sent with the transaction's other
//! statements in one round trip, and its result read back; and plain appends.

use factos::store::DecisionProcess;
use factos::{
    AppendCondition, AppendError, Committed, ConditionFailure, Folded, NewEvent, Revision,
    StoreError, StoreErrorKind, StoredEvent, StreamId,
};
use tokio_postgres::types::ToSql;

use crate::error::{Phase, db_error, is_event_id_violation, is_stream_revision_violation};
use crate::locks::{KeyLock, arrays};
use crate::rows::{EventColumns, position, query_items, revision};
use crate::sql::Statements;
use crate::store::PostgresStore;
use crate::store::guard::{Guard, Opened, PreparedGuard};
use crate::store::read::position_value;
use crate::store::replay::replay_or_conflict;
use crate::store::retry::Attempts;
use crate::store::retry::contention;
use crate::store::session::Session;

/// Why an append inside a transaction did not happen. Nothing was
/// appended in any case.
pub(crate) enum AppendFailure {
    /// The condition (or the expected stream revision) failed.
    Condition(ConditionFailure),
    /// A decision holds a key these events need: roll back, then retry
    /// taking `event_keys` (all the events' keys) with the guard.
    KeysBusy {
        event_keys: Vec<KeyLock>,
    },
    /// Another attempt with the same ids committed between this statement's
    /// id check and its insert (the ids' unique index refused them): retry
    /// like [`AppendFailure::KeysBusy`]; the next attempt finds those events
    /// stored and reports them.
    IdsRaced {
        event_keys: Vec<KeyLock>,
    },
    /// Some of the events' ids are already stored. The caller decides whether
    /// `stored` (read under those ids, in the order of `new`) are its own
    /// earlier attempt's (a replay) or an id conflict.
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
    /// Set when the events go to several streams (a combined batch).
    pub(crate) routes: Option<Routes>,
}

impl<'a> Write<'a> {
    /// The write of `process`'s decided `events` on `stream`, routed to its
    /// other streams when it has any.
    pub(crate) fn decided<P: DecisionProcess + ?Sized>(
        stream: &'a StreamId,
        events: Vec<NewEvent>,
        condition: &'a AppendCondition,
        expected: Option<Revision>,
        process: &P,
    ) -> Self {
        Self {
            stream,
            routes: Routes::of(stream, process, events.len()),
            events,
            condition,
            expected,
        }
    }
}

/// Where a routed append's events go: `targets` are the decision's stream
/// and its other streams, `ordinals` each event's target (1-based, as the
/// statement's `WITH ORDINALITY`).
pub(crate) struct Routes {
    targets: Vec<StreamId>,
    ordinals: Vec<i64>,
}

impl Routes {
    /// The routes of `process`'s decided `events` on `stream`; `None` when
    /// the process writes to its stream only.
    pub(crate) fn of<P: DecisionProcess + ?Sized>(
        stream: &StreamId,
        process: &P,
        events: usize,
    ) -> Option<Self> {
        let others = process.other_streams();
        if others.is_empty() {
            return None;
        }
        let targets: Vec<StreamId> = std::iter::once(stream.clone())
            .chain(others.iter().cloned())
            .collect();
        let ordinals = (0..events)
            .map(|index| {
                let target = process
                    .event_stream(index)
                    .and_then(|to| targets.iter().position(|t| t == to))
                    .unwrap_or(0);
                i64::try_from(target + 1).unwrap_or(i64::MAX)
            })
            .collect();
        Some(Self { targets, ordinals })
    }
}

/// The parameters of `sql/statements/append.sql`, by name. [`Self::bind`]
/// lists them in placeholder order; `append_if_all` takes `$1..$12`,
/// `append_if_query` also `$13, $14`; the routed shapes take the streams as
/// `$1`, the routes as `$13`, and the condition's query after them.
pub(crate) struct AppendParams<'a> {
    /// `$1`: the stream appended to.
    stream: &'a str,
    /// Routed: `$1` the target streams' names, `$13` each event's target.
    routes: Option<(Vec<&'a str>, &'a [i64])>,
    /// `$2..$7`: the events as parallel arrays (ids, types, versions, tags
    /// joined with U+001F, metadata, data).
    events: EventColumns<'a>,
    /// `$8`: the stream revision the append expects: `NULL` for any, `-1`
    /// for a stream with no events yet.
    expected_revision: Option<i64>,
    /// `$9`: the condition's exclusive lower bound (`i64::MAX` without a
    /// condition: nothing can be after it).
    condition_after: i64,
    /// `$10`: the events' advisory keys the guard does not already hold.
    event_lock_keys: Vec<i64>,
    /// `$11`: their modes (`true`: exclusive).
    event_lock_modes: Vec<bool>,
    /// `$12`: the writer class; the writer holds (class, its transaction
    /// id's low 32 bits) from position allocation to commit.
    writers: i32,
    /// `$13`, `$14`: the condition's query as joined types and joined tags,
    /// when it is not a query on all events.
    condition_query: Option<(Vec<String>, Vec<String>)>,
}

impl<'a> AppendParams<'a> {
    /// The parameters of appending `write`'s events under `guard`. Keys the
    /// guard already holds in a mode at least as strong are left out of
    /// `$10, $11`: asking again in another mode would queue behind waiters
    /// of our own lock and fail.
    pub(crate) fn new(
        store: &PostgresStore,
        guard: &Guard,
        write: &'a Write<'_>,
        event_keys: &[KeyLock],
    ) -> Result<Self, StoreError> {
        let held = |lock: &KeyLock| match guard {
            Guard::Table => false,
            Guard::Keys(locks) => locks
                .iter()
                .any(|l| l.key == lock.key && (l.exclusive || !lock.exclusive)),
        };
        let needed: Vec<KeyLock> = event_keys.iter().filter(|l| !held(l)).copied().collect();
        let (event_lock_keys, event_lock_modes) = arrays(&needed);
        let (condition_after, condition_query) = match write.condition {
            AppendCondition::None => (i64::MAX, None),
            AppendCondition::FailIfEventsMatch { query, after } => (
                position_value(*after),
                (!query.is_all()).then(|| query_items(query)),
            ),
        };
        Ok(Self {
            stream: write.stream.as_str(),
            routes: write.routes.as_ref().map(|routes| {
                (
                    routes.targets.iter().map(StreamId::as_str).collect(),
                    routes.ordinals.as_slice(),
                )
            }),
            events: EventColumns::new(&write.events)?,
            expected_revision: write.expected.map(Revision::as_i64),
            condition_after,
            event_lock_keys,
            event_lock_modes,
            writers: store.inner.keys.writers(),
            condition_query,
        })
    }

    /// The statement these parameters are for.
    pub(crate) fn statement<'s>(&self, sql: &'s Statements) -> &'s str {
        match (self.routes.is_some(), self.condition_query.is_some()) {
            (false, true) => &sql.append_if_query,
            (false, false) => &sql.append_if_all,
            (true, true) => &sql.append_routed_if_query,
            (true, false) => &sql.append_routed_if_all,
        }
    }

    /// The parameters in placeholder order (`$1` first).
    pub(crate) fn bind(&self) -> Vec<&(dyn ToSql + Sync)> {
        let first: &(dyn ToSql + Sync) = match &self.routes {
            Some((targets, _)) => targets,
            None => &self.stream,
        };
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            first,
            &self.events.ids,
            &self.events.types,
            &self.events.versions,
            &self.events.tags,
            &self.events.metadata,
            &self.events.data,
            &self.expected_revision,
            &self.condition_after,
            &self.event_lock_keys,
            &self.event_lock_modes,
            &self.writers,
        ];
        if let Some((_, ordinals)) = &self.routes {
            params.push(ordinals);
        }
        if let Some((types, tags)) = &self.condition_query {
            params.push(types);
            params.push(tags);
        }
        params
    }
}

/// How the append statement's transaction begins.
enum Opening {
    /// `BEGIN` and the guard go out first, in the same round trip.
    Begin(PreparedGuard),
    /// The session's transaction already holds the guard.
    InTransaction,
}

/// Whether the pipeline ends with `COMMIT`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Commit,
    /// The transaction stays open: effects are recorded next, then
    /// [`PostgresStore::record_and_commit`].
    KeepOpen,
}

impl Ending {
    /// How a decision's append ends, once decided: open when its events
    /// may have effects (they are recorded before the commit), else with
    /// the commit in the same round trip.
    pub(crate) fn after_deciding<P: DecisionProcess + ?Sized>(process: &P) -> Self {
        if process.has_effects() {
            Self::KeepOpen
        } else {
            Self::Commit
        }
    }
}

/// What the append statement's first row says (read by column name).
enum Verdict {
    /// `ok` was false: a decision holds a key the events need, or a settled
    /// read took this writer's own key before it could (start over).
    KeysBusy,
    /// `replayed`: some of the events' ids are already stored.
    IdsStored,
    /// `conflict`: the condition's query matched an event after its position.
    ConditionFailed,
    /// `revision_conflict`: the stream is not at the expected revision.
    RevisionConflict,
    /// Appended on top of `current_revision` (-1: the stream had no events).
    Appended { current_revision: i64 },
}

impl PostgresStore {
    /// Begins a transaction, takes `guard`, checks `write`'s condition (and
    /// expected stream revision), takes the events' keys and its own key,
    /// appends and commits: one round trip.
    pub(crate) async fn begin_append_commit(
        &self,
        session: &Session,
        guard: &Guard,
        write: Write<'_>,
    ) -> Result<Committed, AppendFailure> {
        self.begin_append(session, guard, write, Ending::Commit)
            .await
    }

    /// Begins a transaction, takes `guard`, checks and appends `write`
    /// (one round trip), ending as `ending` says. A failure with
    /// [`Ending::KeepOpen`] leaves the transaction open: roll it back.
    pub(crate) async fn begin_append(
        &self,
        session: &Session,
        guard: &Guard,
        write: Write<'_>,
        ending: Ending,
    ) -> Result<Committed, AppendFailure> {
        let opening = Opening::Begin(self.prepare_guard(session.client()?, guard).await?);
        self.send_append(session, guard, opening, write, ending)
            .await
    }

    /// In the session's transaction, which holds `guard` since before the
    /// context was read: checks and appends, and commits in the same round
    /// trip or, with [`Ending::KeepOpen`], leaves the transaction open for
    /// the effects ([`Self::record_and_commit`] commits it).
    pub(crate) async fn append_in_transaction(
        &self,
        session: &Session,
        guard: &Guard,
        write: Write<'_>,
        ending: Ending,
    ) -> Result<Committed, AppendFailure> {
        let opening = Opening::InTransaction;
        self.send_append(session, guard, opening, write, ending)
            .await
    }

    /// The one pipeline: the opening (if any), the append statement and the
    /// `COMMIT` (if any) go out together, in this order. If a statement
    /// fails, the server answers the `COMMIT` by rolling back; if the append
    /// wrote nothing (condition, busy keys), the `COMMIT` commits nothing.
    async fn send_append(
        &self,
        session: &Session,
        guard: &Guard,
        opening: Opening,
        write: Write<'_>,
        ending: Ending,
    ) -> Result<Committed, AppendFailure> {
        let before = |what: &'static str| move |e| db_error(what, e, Phase::BeforeCommit);
        let client = session.client()?;
        let event_keys = self.inner.keys.events(&write.events);
        let params = AppendParams::new(self, guard, &write, &event_keys)?;
        let statement = client
            .prepare_cached(params.statement(self.sql()))
            .await
            .map_err(before("cannot prepare the append"))?;
        let bound = params.bind();
        session.set_open(true);
        let (opened, rows, commit) = futures_util::join!(
            async {
                match &opening {
                    Opening::Begin(guard) => Some(guard.open(client, &self.inner.begin).await),
                    Opening::InTransaction => None,
                }
            },
            client.query(&statement, &bound),
            async {
                match ending {
                    Ending::Commit => client.batch_execute("COMMIT").await,
                    Ending::KeepOpen => Ok(()),
                }
            },
        );
        drop(bound);
        drop(params);
        session.set_open(ending == Ending::KeepOpen);
        // The COMMIT went out with everything else: if the connection broke
        // (an error the server did not send), it may have committed.
        if opened.as_ref().is_some_and(Opened::connection_broke)
            || rows.as_ref().is_err_and(|e| e.as_db_error().is_none())
        {
            let e = opened
                .and_then(Opened::into_error)
                .or(commit.err())
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
        if let Some((what, e)) = opened.and_then(Opened::failure) {
            return Err(before(what)(e).into());
        }
        let rows = match rows {
            Ok(rows) => {
                commit.map_err(|e| db_error("cannot commit", e, Phase::Commit))?;
                rows
            }
            Err(e) if is_stream_revision_violation(&e) => {
                return Err(revision_conflict(&write));
            }
            Err(e) if is_event_id_violation(&e) => {
                return Err(AppendFailure::IdsRaced { event_keys });
            }
            Err(e) => return Err(before("cannot append")(e).into()),
        };
        let committed = match verdict(&rows)? {
            Verdict::KeysBusy => return Err(AppendFailure::KeysBusy { event_keys }),
            Verdict::IdsStored => {
                let stored = self.stored_with_ids(client, &write.events).await?;
                return Err(AppendFailure::IdsStored {
                    new: write.events,
                    stored,
                });
            }
            Verdict::ConditionFailed => {
                return Err(AppendFailure::Condition(
                    ConditionFailure::from_condition(write.condition).ok_or_else(|| {
                        crate::error::corrupt("a condition failed without a condition")
                    })?,
                ));
            }
            Verdict::RevisionConflict => return Err(revision_conflict(&write)),
            Verdict::Appended { current_revision } => {
                committed_from_rows(&rows, write, current_revision)?
            }
        };
        if ending == Ending::Commit && !committed.events.is_empty() {
            self.committed();
        }
        Ok(committed)
    }

    /// A plain append (no decision): guard, check, append and commit in one
    /// round trip, started over when other dispatches hold keys the events
    /// need.
    pub(crate) async fn append_with_retries(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: &AppendCondition,
    ) -> Result<Committed, AppendError> {
        let mut attempts = Attempts::new(self.attempts());
        while attempts.next().is_some() {
            let session = Session::new(self.client().await?);
            let guard = self.append_guard(stream, condition, attempts.up_front());
            let write = Write {
                stream,
                events: events.clone(),
                condition,
                expected: None,
                routes: None,
            };
            match self.begin_append_commit(&session, &guard, write).await {
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
                Err(
                    AppendFailure::KeysBusy { event_keys } | AppendFailure::IdsRaced { event_keys },
                ) => attempts.keys_busy(self, event_keys).await,
                Err(AppendFailure::Condition(c)) => return Err(AppendError::ConditionFailed(c)),
                Err(AppendFailure::Store(e)) => return Err(AppendError::Store(e)),
            }
        }
        Err(AppendError::Store(contention(self.attempts())))
    }
}

/// The failure of an append whose stream was not at the expected revision.
fn revision_conflict(write: &Write<'_>) -> AppendFailure {
    AppendFailure::Condition(ConditionFailure::StreamRevision {
        stream: write.stream.clone(),
        expected: write.expected.unwrap_or_default(),
    })
}

fn unexpected_result(e: tokio_postgres::Error) -> StoreError {
    crate::error::corrupt("unexpected append result").with_source(e)
}

/// Reads the append statement's first row, by column name.
fn verdict(rows: &[tokio_postgres::Row]) -> Result<Verdict, StoreError> {
    let first = rows
        .first()
        .ok_or_else(|| crate::error::corrupt("the append returned no row"))?;
    let flag = |column: &str| first.try_get::<_, bool>(column).map_err(unexpected_result);
    Ok(if flag("replayed")? {
        Verdict::IdsStored
    } else if !flag("ok")? {
        Verdict::KeysBusy
    } else if flag("conflict")? {
        Verdict::ConditionFailed
    } else if flag("revision_conflict")? {
        Verdict::RevisionConflict
    } else {
        Verdict::Appended {
            current_revision: first
                .try_get("current_revision")
                .map_err(unexpected_result)?,
        }
    })
}

/// The committed events of an append that wrote (one row per event, columns
/// `position`, `revision` and `recorded_at`), on top of `current_revision`.
fn committed_from_rows(
    rows: &[tokio_postgres::Row],
    write: Write<'_>,
    current_revision: i64,
) -> Result<Committed, AppendFailure> {
    let Write {
        stream,
        events,
        routes,
        ..
    } = write;
    let target = |index: usize| -> &StreamId {
        routes
            .as_ref()
            .and_then(|r| {
                let ordinal = usize::try_from(*r.ordinals.get(index)?).ok()?;
                r.targets.get(ordinal.checked_sub(1)?)
            })
            .unwrap_or(stream)
    };
    let mut committed = Vec::with_capacity(events.len());
    for (index, (row, event)) in rows.iter().zip(events).enumerate() {
        let at: Option<i64> = row.try_get("position").map_err(unexpected_result)?;
        let rev: Option<i64> = row.try_get("revision").map_err(unexpected_result)?;
        let recorded_at: Option<std::time::SystemTime> =
            row.try_get("recorded_at").map_err(unexpected_result)?;
        let (Some(at), Some(rev), Some(recorded_at)) = (at, rev, recorded_at) else {
            return Err(crate::error::corrupt("the append stored fewer events than given").into());
        };
        committed.push(StoredEvent {
            position: position(at)?,
            stream: target(index).clone(),
            revision: revision(rev)?,
            id: event.id,
            event_type: event.event_type,
            version: event.version,
            tags: event.tags,
            metadata: event.metadata,
            data: event.data,
            recorded_at,
        });
    }
    if committed.windows(2).any(|w| w[0].position >= w[1].position) {
        return Err(crate::error::corrupt("appended positions are not increasing").into());
    }
    let before = |revision_before: i64| -> Result<Revision, StoreError> {
        Ok(if revision_before < 0 {
            Revision::NoEvents
        } else {
            Revision::Current(revision(revision_before)?)
        })
    };
    let after = |to: &StreamId, revision_before: Revision| {
        revision_before.advanced_by(committed.iter().filter(|e| &e.stream == to).count())
    };
    let mut other_revisions = Vec::new();
    if let Some(routes) = &routes {
        let first = rows
            .first()
            .ok_or_else(|| crate::error::corrupt("the append returned no row"))?;
        let befores: Vec<i64> = first
            .try_get("stream_revisions")
            .map_err(unexpected_result)?;
        if befores.len() != routes.targets.len() {
            return Err(crate::error::corrupt("a routed append lost a stream's revision").into());
        }
        for (to, revision_before) in routes.targets.iter().zip(befores).skip(1) {
            other_revisions.push((to.clone(), after(to, before(revision_before)?)));
        }
    }
    Ok(Committed {
        stream: stream.clone(),
        current_revision: after(stream, before(current_revision)?),
        position: committed.last().map(|e| e.position),
        events: committed,
        context_position: None,
        context_events: 0,
        replayed: false,
        other_revisions,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use factos::{EventType, NewEvent, Tags};
    use tokio_postgres::types::private::BytesMut;

    use super::AppendParams;
    use crate::rows::EventColumns;
    use crate::sql::{SchemaName, Statements, statement_contracts};

    const ORDINALS: &[i64] = &[2];

    fn params(events: &[NewEvent], condition_query: bool, routed: bool) -> AppendParams<'_> {
        AppendParams {
            stream: "s",
            routes: routed.then(|| (vec!["s", "t"], ORDINALS)),
            events: EventColumns::new(events).unwrap(),
            expected_revision: None,
            condition_after: 0,
            event_lock_keys: vec![1],
            event_lock_modes: vec![true],
            writers: 2,
            condition_query: condition_query.then(|| (vec!["T".into()], vec![String::new()])),
        }
    }

    /// What `bind()` sends is what the chosen statement declares, for each
    /// of the four append statements: as many values as placeholders, each
    /// one encodable as the declared type (the declaration is checked
    /// against the server in `tests/statements.rs`).
    #[test]
    fn append_binds_what_its_statements_declare() {
        let schema = SchemaName::new("contract").unwrap();
        let sql = Statements::new(&schema);
        let contracts = statement_contracts(&schema);
        let events = [NewEvent::new(EventType::new("T").unwrap(), b"{}".to_vec())
            .with_tags(Tags::parse(["k:1"]).unwrap())];
        for (condition_query, routed) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            let params = params(&events, condition_query, routed);
            let text = params.statement(&sql);
            let contract = contracts.iter().find(|c| c.text == text).unwrap();
            let declared = contract.params.unwrap();
            let bound = params.bind();
            assert_eq!(bound.len(), declared.len(), "{}", contract.name);
            for (n, (value, ty)) in bound.iter().zip(declared).enumerate() {
                value
                    .to_sql_checked(ty, &mut BytesMut::new())
                    .unwrap_or_else(|e| panic!("{}: ${}: {e}", contract.name, n + 1));
            }
        }
    }
}
