//! The writer's transaction (`BEGIN IMMEDIATE`: one writer on the file at a
//! time): check the condition and the expected revision, refuse ids already
//! stored, append each event to its stream with the tag mirror, commit.

use std::collections::HashMap;

use factos::Effect;
use factos::{
    AppendCondition, Committed, ConditionFailure, NewEvent, Position, Revision, StoreError,
    StoredEvent, StreamId,
};
use rusqlite::{Connection, params};

use crate::error::sqlite_error;
use crate::predicate::predicate;
use crate::rows::{self, micros_now, position, sql_position, time_of};

/// What to write.
pub(crate) struct Write {
    /// The decision's (or append's) stream.
    pub(crate) stream: StreamId,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) condition: AppendCondition,
    /// A stream dispatch: the revision the decision saw.
    pub(crate) expected: Option<Revision>,
    /// A decision whose events go to several streams: each event's stream.
    pub(crate) targets: Option<Vec<StreamId>>,
    /// The decision's other streams, whose revisions are reported.
    pub(crate) other_streams: Vec<StreamId>,
}

impl Write {
    pub(crate) fn plain(
        stream: StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Self {
        Self {
            stream,
            events,
            condition,
            expected: None,
            targets: None,
            other_streams: Vec::new(),
        }
    }
}

/// How the write ended. Only `Committed` wrote anything (or, from
/// [`append_open`], appended in a transaction still open).
pub(crate) enum Outcome {
    Committed(Committed),
    Failed(ConditionFailure),
    /// Events with some of the new events' ids are stored (a replay, or a
    /// conflict: the caller tells).
    IdsStored {
        new: Vec<NewEvent>,
        stored: Vec<StoredEvent>,
    },
}

/// Appends in the writer's transaction and leaves it open when it appended
/// (`Committed`: the caller records the effects and commits); rolls back
/// otherwise.
pub(crate) fn append_open(connection: &Connection, write: Write) -> Result<Outcome, StoreError> {
    begin(connection)?;
    let outcome = appended(connection, write);
    if !matches!(outcome, Ok(Outcome::Committed(_))) {
        rollback(connection);
    }
    outcome
}

/// Begins the writer's transaction (`BEGIN IMMEDIATE`: the file's write
/// lock, waiting up to the busy timeout), first ending one a cancelled
/// caller left open.
pub(crate) fn begin(connection: &Connection) -> Result<(), StoreError> {
    rollback(connection);
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| sqlite_error("cannot begin the append", &e))
}

/// Commits the writer's transaction; rolls it back when the commit fails.
pub(crate) fn commit(connection: &Connection) -> Result<(), StoreError> {
    connection.execute_batch("COMMIT").map_err(|e| {
        rollback(connection);
        sqlite_error("cannot commit the append", &e)
    })
}

/// Rolls back the open transaction, if any (nothing to report: SQLite
/// ends a transaction it cannot roll back itself).
pub(crate) fn rollback(connection: &Connection) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
}

/// Records `effects` in the open transaction (the outbox).
pub(crate) fn record_effects(
    connection: &Connection,
    effects: &[Effect],
) -> Result<(), StoreError> {
    let now = micros_now();
    let mut insert = connection
        .prepare_cached(include_str!("../sql/statements/outbox_record.sql"))
        .map_err(|e| sqlite_error("cannot prepare the outbox insert", &e))?;
    for effect in effects {
        insert
            .execute(params![
                sql_position(effect.cause),
                effect.message.topic.as_str(),
                effect.message.payload,
                now,
            ])
            .map_err(|e| sqlite_error("cannot record an effect", &e))?;
    }
    Ok(())
}

/// The write's statements, in the open transaction.
pub(crate) fn appended(tx: &Connection, write: Write) -> Result<Outcome, StoreError> {
    // Ids first: an exact retry of a conditional append whose first attempt
    // committed is a replay, though its own events now fail the condition.
    if !write.events.is_empty() {
        let ids: Vec<uuid::Uuid> = write.events.iter().map(|e| e.id).collect();
        let stored = rows::by_ids(tx, &ids)?;
        if !stored.is_empty() {
            return Ok(Outcome::IdsStored {
                new: write.events,
                stored,
            });
        }
    }
    if let Some(failure) = failed_condition(tx, &write)? {
        return Ok(Outcome::Failed(failure));
    }
    Ok(Outcome::Committed(insert(tx, write)?))
}

fn failed_condition(
    tx: &Connection,
    write: &Write,
) -> Result<Option<ConditionFailure>, StoreError> {
    if let AppendCondition::FailIfEventsMatch { query, after } = &write.condition {
        let bound = after.map_or(0, sql_position);
        let (matching, mut values) = predicate(query, bound);
        values.push(rusqlite::types::Value::Integer(bound));
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM factos_events e WHERE {matching} AND e.position > ?)"
        );
        // Cached: a boundary's decisions check the same statement text.
        let matched: bool = tx
            .prepare_cached(&sql)
            .and_then(|mut statement| {
                statement.query_row(rusqlite::params_from_iter(values), |r| r.get(0))
            })
            .map_err(|e| sqlite_error("cannot check the condition", &e))?;
        if matched {
            return Ok(Some(ConditionFailure::EventsMatched {
                query: query.clone(),
                after: *after,
            }));
        }
    }
    if let Some(expected) = write.expected
        && revision(tx, &write.stream)? != expected
    {
        return Ok(Some(ConditionFailure::StreamRevision {
            stream: write.stream.clone(),
            expected,
        }));
    }
    Ok(None)
}

/// A stream's revision in the transaction.
pub(crate) fn revision(tx: &Connection, stream: &StreamId) -> Result<Revision, StoreError> {
    let max: Option<i64> = tx
        .prepare_cached("SELECT max(revision) FROM factos_events WHERE stream = ?1")
        .and_then(|mut statement| statement.query_row([stream.as_str()], |r| r.get(0)))
        .map_err(|e| sqlite_error("cannot read the stream's revision", &e))?;
    Ok(match max.and_then(|m| u64::try_from(m).ok()) {
        Some(m) => Revision::Current(m),
        None => Revision::NoEvents,
    })
}

fn insert(tx: &Connection, write: Write) -> Result<Committed, StoreError> {
    let Write {
        stream,
        events,
        targets,
        other_streams,
        ..
    } = write;
    let mut revisions: HashMap<StreamId, Revision> = HashMap::new();
    for target in std::iter::once(&stream).chain(&other_streams) {
        revisions.insert(target.clone(), revision(tx, target)?);
    }
    let recorded = micros_now();
    let mut event_insert = tx
        .prepare_cached(
            "INSERT INTO factos_events (id, stream, revision, type, version, tags, metadata, data, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(|e| sqlite_error("cannot prepare the append", &e))?;
    let mut tag_insert = tx
        .prepare_cached("INSERT INTO factos_event_tags (tag, position) VALUES (?1, ?2)")
        .map_err(|e| sqlite_error("cannot prepare the tag mirror", &e))?;
    let mut committed = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let target = targets
            .as_ref()
            .and_then(|t| t.get(index))
            .cloned()
            .unwrap_or_else(|| stream.clone());
        let before = match revisions.get(&target) {
            Some(r) => *r,
            None => revision(tx, &target)?,
        };
        let rev = before.next();
        let tags: Vec<&str> = event.tags.iter().map(factos::Tag::as_str).collect();
        let metadata: serde_json::Map<String, serde_json::Value> = event
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let tags_json = serde_json::to_string(&tags).map_err(|e| encoding(&e))?;
        let metadata_json = serde_json::to_string(&metadata).map_err(|e| encoding(&e))?;
        event_insert
            .execute(params![
                event.id.as_bytes().as_slice(),
                target.as_str(),
                i64::try_from(rev).unwrap_or(i64::MAX),
                event.event_type.as_str(),
                event.version,
                tags_json,
                metadata_json,
                event.data,
                recorded,
            ])
            .map_err(|e| sqlite_error("cannot append", &e))?;
        let at = tx.last_insert_rowid();
        for tag in &tags {
            tag_insert
                .execute(params![tag, at])
                .map_err(|e| sqlite_error("cannot mirror a tag", &e))?;
        }
        revisions.insert(target.clone(), Revision::Current(rev));
        committed.push(StoredEvent {
            position: position(at)?,
            stream: target,
            revision: rev,
            id: event.id,
            event_type: event.event_type,
            version: event.version,
            tags: event.tags,
            metadata: event.metadata,
            data: event.data,
            recorded_at: time_of(recorded),
        });
    }
    let last: Option<Position> = committed.last().map(|e| e.position);
    Ok(Committed {
        current_revision: revisions
            .get(&stream)
            .copied()
            .unwrap_or(Revision::NoEvents),
        other_revisions: other_streams
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    revisions.get(s).copied().unwrap_or(Revision::NoEvents),
                )
            })
            .collect(),
        stream,
        position: last,
        events: committed,
        context_position: None,
        context_events: 0,
        replayed: false,
    })
}

fn encoding(e: &serde_json::Error) -> StoreError {
    StoreError::new(
        factos::StoreErrorKind::Other,
        format!("cannot encode an event's tags or metadata: {e}"),
    )
}
