//! Rows to stored events and events to statement parameters.

use factos::{
    EventType, Metadata, NewEvent, Position, Query, StoreError, StoredEvent, StreamId, Tag, Tags,
};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::corrupt;

/// Separates list elements inside one text parameter. It is a control
/// character, which no type or tag may contain.
pub(crate) const SEPARATOR: char = '\u{1f}';

/// A query's items as two parallel arrays of joined types and joined tags.
pub(crate) fn query_items(query: &Query) -> (Vec<String>, Vec<String>) {
    let join = |values: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(SEPARATOR);
            }
            out.push_str(v);
        }
        out
    };
    query
        .items()
        .iter()
        .map(|item| {
            (
                join(&mut item.types().iter().map(EventType::as_str)),
                join(&mut item.tags().iter().map(Tag::as_str)),
            )
        })
        .unzip()
}

/// The parameters of a batch of events, as parallel arrays.
pub(crate) struct EventColumns<'a> {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) types: Vec<&'a str>,
    pub(crate) versions: Vec<i32>,
    pub(crate) tags: Vec<String>,
    pub(crate) metadata: Vec<serde_json::Value>,
    pub(crate) data: Vec<&'a [u8]>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn new(events: &'a [NewEvent]) -> Result<Self, StoreError> {
        let mut columns = Self {
            ids: Vec::with_capacity(events.len()),
            types: Vec::with_capacity(events.len()),
            versions: Vec::with_capacity(events.len()),
            tags: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            data: Vec::with_capacity(events.len()),
        };
        for event in events {
            let version = i32::try_from(event.version).map_err(|_| {
                StoreError::new(
                    factos::StoreErrorKind::Rejected,
                    format!("event version {} exceeds {}", event.version, i32::MAX),
                )
            })?;
            columns.ids.push(event.id);
            columns.types.push(event.event_type.as_str());
            columns.versions.push(version);
            let mut joined = String::new();
            for (i, tag) in event.tags.iter().enumerate() {
                if i > 0 {
                    joined.push(SEPARATOR);
                }
                joined.push_str(tag.as_str());
            }
            columns.tags.push(joined);
            columns.metadata.push(serde_json::Value::Object(
                event
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                    .collect(),
            ));
            columns.data.push(&event.data);
        }
        Ok(columns)
    }
}

pub(crate) fn position(value: i64) -> Result<Position, StoreError> {
    u64::try_from(value)
        .ok()
        .and_then(Position::new)
        .ok_or_else(|| corrupt(format!("invalid position {value} in the event table")))
}

/// A position column as stored (0: none yet; a negative value, which no
/// factos writes, reads as none too).
pub(crate) fn stored_position(value: i64) -> Option<Position> {
    u64::try_from(value).ok().and_then(Position::new)
}

pub(crate) fn revision(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| corrupt(format!("invalid revision {value} in the event table")))
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    name: &str,
) -> Result<T, StoreError> {
    row.try_get(name).map_err(|e| {
        corrupt(format!("unexpected value in column {name} of an event row")).with_source(e)
    })
}

/// Builds a stored event from the columns named `position`, `id`, `stream`,
/// `revision`, `type`, `version`, `tags`, `metadata`, `data` and
/// `recorded_at` (every
/// statement that returns events selects them under these names).
pub(crate) fn stored_event(row: &Row) -> Result<StoredEvent, StoreError> {
    let invalid = |what: &str, e: factos::ValidationError| {
        corrupt(format!("invalid {what} in the event table: {e}"))
    };
    let metadata_json: serde_json::Value = column(row, "metadata")?;
    let mut metadata = Metadata::new();
    if let serde_json::Value::Object(map) = metadata_json {
        for (key, value) in map {
            let serde_json::Value::String(value) = value else {
                return Err(corrupt(format!(
                    "metadata value of {key:?} is not a string"
                )));
            };
            metadata
                .insert(key, value)
                .map_err(|e| invalid("metadata", e))?;
        }
    } else {
        return Err(corrupt("metadata is not a JSON object"));
    }
    let tags: Vec<String> = column(row, "tags")?;
    let version: i32 = column(row, "version")?;
    Ok(StoredEvent {
        position: position(column(row, "position")?)?,
        id: column(row, "id")?,
        stream: StreamId::new(column::<String>(row, "stream")?)
            .map_err(|e| invalid("stream", e))?,
        revision: revision(column(row, "revision")?)?,
        event_type: EventType::new(column::<String>(row, "type")?)
            .map_err(|e| invalid("type", e))?,
        version: u32::try_from(version)
            .map_err(|_| corrupt(format!("negative version {version}")))?,
        tags: Tags::parse(tags).map_err(|e| invalid("tags", e))?,
        metadata,
        data: column(row, "data")?,
        recorded_at: column(row, "recorded_at")?,
    })
}
