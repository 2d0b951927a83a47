//! Reads, and event rows to [`StoredEvent`]s (columns read by name).

use std::time::{Duration, SystemTime};

use factos::store::StreamEvents;
use factos::{
    EventType, Metadata, Position, Query, ReadOptions, ReadResult, Revision, StoreError,
    StoredEvent, StreamId, Tags,
};
use rusqlite::{Connection, Row, params_from_iter};

use crate::error::{corrupt, sqlite_error};
use crate::predicate::predicate;

/// The columns every event statement selects, by these names.
pub(crate) const COLUMNS: &str = "e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data, e.recorded_at";

/// Microseconds since the Unix epoch, now.
pub(crate) fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The time `micros` after the Unix epoch.
pub(crate) fn time_of(micros: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_micros(u64::try_from(micros).unwrap_or(0)))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

pub(crate) fn position(value: i64) -> Result<Position, StoreError> {
    u64::try_from(value)
        .ok()
        .and_then(Position::new)
        .ok_or_else(|| corrupt(format!("invalid position {value} in the event table")))
}

pub(crate) fn sql_position(position: Position) -> i64 {
    i64::try_from(position.get()).unwrap_or(i64::MAX)
}

/// One event row.
pub(crate) fn stored_event(row: &Row<'_>) -> Result<StoredEvent, StoreError> {
    let column = |name: &str| -> Result<rusqlite::types::Value, StoreError> {
        row.get(name)
            .map_err(|e| corrupt(format!("unexpected value in column {name}: {e}")))
    };
    let text = |name: &str| -> Result<String, StoreError> {
        match column(name)? {
            rusqlite::types::Value::Text(s) => Ok(s),
            _ => Err(corrupt(format!("column {name} is not text"))),
        }
    };
    let integer = |name: &str| -> Result<i64, StoreError> {
        match column(name)? {
            rusqlite::types::Value::Integer(n) => Ok(n),
            _ => Err(corrupt(format!("column {name} is not an integer"))),
        }
    };
    let blob = |name: &str| -> Result<Vec<u8>, StoreError> {
        match column(name)? {
            rusqlite::types::Value::Blob(b) => Ok(b),
            _ => Err(corrupt(format!("column {name} is not a blob"))),
        }
    };
    let invalid = |what: &str, e: factos::ValidationError| corrupt(format!("invalid {what}: {e}"));
    let id =
        uuid::Uuid::from_slice(&blob("id")?).map_err(|_| corrupt("an event id is not 16 bytes"))?;
    let tags: Vec<String> = serde_json::from_str(&text("tags")?)
        .map_err(|e| corrupt(format!("tags are not a JSON array of strings: {e}")))?;
    let metadata_json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text("metadata")?)
            .map_err(|e| corrupt(format!("metadata is not a JSON object: {e}")))?;
    let mut metadata = Metadata::new();
    for (key, value) in metadata_json {
        let serde_json::Value::String(value) = value else {
            return Err(corrupt(format!(
                "metadata value of {key:?} is not a string"
            )));
        };
        metadata
            .insert(key, value)
            .map_err(|e| invalid("metadata", e))?;
    }
    Ok(StoredEvent {
        position: position(integer("position")?)?,
        stream: StreamId::new(text("stream")?).map_err(|e| invalid("stream", e))?,
        revision: u64::try_from(integer("revision")?)
            .map_err(|_| corrupt("a negative revision"))?,
        id,
        event_type: EventType::new(text("type")?).map_err(|e| invalid("type", e))?,
        version: u32::try_from(integer("version")?).map_err(|_| corrupt("an invalid version"))?,
        tags: Tags::parse(tags).map_err(|e| invalid("tags", e))?,
        metadata,
        data: blob("data")?,
        recorded_at: time_of(integer("recorded_at")?),
    })
}

/// Runs `sql` with `params` and maps every row.
pub(crate) fn events(
    tx: &Connection,
    sql: &str,
    params: Vec<rusqlite::types::Value>,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut statement = tx
        .prepare_cached(sql)
        .map_err(|e| sqlite_error("cannot prepare a read", &e))?;
    let mut rows = statement
        .query(params_from_iter(params))
        .map_err(|e| sqlite_error("cannot read events", &e))?;
    let mut events = Vec::new();
    while let Some(row) = rows
        .next()
        .map_err(|e| sqlite_error("cannot read events", &e))?
    {
        events.push(stored_event(row)?);
    }
    Ok(events)
}

/// The highest position, in the transaction's snapshot.
pub(crate) fn head(tx: &Connection) -> Result<Option<Position>, StoreError> {
    let max: Option<i64> = tx
        .query_row("SELECT max(position) FROM factos_events", [], |r| r.get(0))
        .map_err(|e| sqlite_error("cannot read the head", &e))?;
    max.map(position).transpose()
}

/// A read: the matching events within `options`, and the head.
pub(crate) fn read(
    tx: &Connection,
    query: &Query,
    options: ReadOptions,
) -> Result<ReadResult, StoreError> {
    // Forwards from a position, the tag lookups start there too.
    let lower = match options.from {
        Some(from) if !options.backwards => sql_position(from).saturating_sub(1),
        _ => 0,
    };
    let (matching, mut params) = predicate(query, lower);
    let mut sql = format!("SELECT {COLUMNS} FROM factos_events e WHERE {matching}");
    if let Some(from) = options.from {
        sql.push_str(if options.backwards {
            " AND e.position <= ?"
        } else {
            " AND e.position >= ?"
        });
        params.push(rusqlite::types::Value::Integer(sql_position(from)));
    }
    sql.push_str(if options.backwards {
        " ORDER BY e.position DESC"
    } else {
        " ORDER BY e.position"
    });
    if let Some(limit) = options.limit {
        sql.push_str(" LIMIT ?");
        params.push(rusqlite::types::Value::Integer(
            i64::try_from(limit).unwrap_or(i64::MAX),
        ));
    }
    let events = events(tx, &sql, params)?;
    Ok(ReadResult {
        events,
        head: head(tx)?,
    })
}

/// The events matching `query` after `after`, and the head: a decision's
/// context (or what it missed), settled at the head.
pub(crate) fn after(
    tx: &Connection,
    query: &Query,
    after: Option<Position>,
) -> Result<(Vec<StoredEvent>, Option<Position>), StoreError> {
    let after = after.map_or(0, sql_position);
    let (matching, mut params) = predicate(query, after);
    params.push(rusqlite::types::Value::Integer(after));
    let sql = format!(
        "SELECT {COLUMNS} FROM factos_events e WHERE {matching} AND e.position > ? ORDER BY e.position"
    );
    Ok((events(tx, &sql, params)?, head(tx)?))
}

/// A stream's events after `after`, in revision order, and the head.
pub(crate) fn stream_after(
    tx: &Connection,
    stream: &StreamId,
    after: Option<Position>,
) -> Result<(Vec<StoredEvent>, Option<Position>), StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM factos_events e WHERE e.stream = ? AND e.position > ? ORDER BY e.revision"
    );
    let params = vec![
        rusqlite::types::Value::Text(stream.as_str().to_string()),
        rusqlite::types::Value::Integer(after.map_or(0, sql_position)),
    ];
    Ok((events(tx, &sql, params)?, head(tx)?))
}

/// A whole stream.
pub(crate) fn read_stream(tx: &Connection, stream: &StreamId) -> Result<StreamEvents, StoreError> {
    let (events, _) = stream_after(tx, stream, None)?;
    let revision = events
        .last()
        .map_or(Revision::NoEvents, |e| Revision::Current(e.revision));
    Ok(StreamEvents {
        stream: stream.clone(),
        events,
        revision,
    })
}

/// Ids per lookup statement (SQLite allows 32,766 parameters).
const IDS_PER_LOOKUP: usize = 500;

/// The events carrying `ids`, in the order of `ids` (missing ones left
/// out): one indexed `IN` lookup per [`IDS_PER_LOOKUP`] ids.
pub(crate) fn by_ids(tx: &Connection, ids: &[uuid::Uuid]) -> Result<Vec<StoredEvent>, StoreError> {
    let mut by_id = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_LOOKUP) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT {COLUMNS} FROM factos_events e WHERE e.id IN ({marks})");
        let params = chunk
            .iter()
            .map(|id| rusqlite::types::Value::Blob(id.as_bytes().to_vec()))
            .collect();
        for event in events(tx, &sql, params)? {
            by_id.insert(event.id, event);
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.get(id).cloned()).collect())
}
