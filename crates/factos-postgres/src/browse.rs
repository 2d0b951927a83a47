//! Browsing for admin tools (`factos ui`): pages of events filtered by type,
//! tag, stream and position range, one event by position, a topic's parked
//! outbox messages with their errors, the append rate over the last
//! minutes, and the database's connections. Read-only and bounded: a page
//! holds at most [`MAX_BROWSE_PAGE`] rows.
//!
//! These are reads for people looking at the store, not for decisions: they
//! read what is committed now, with no settled-position guarantee.

use std::time::{Duration, SystemTime};

use factos::{EventType, Position, StoreError, StoreErrorKind, StoredEvent, StreamId, Tag};

use crate::error::{Phase, corrupt, db_error};
use crate::rows::stored_event;
use crate::store::PostgresStore;

/// Most rows of one page of [`PostgresStore::browse_events`] or
/// [`PostgresStore::parked_messages`].
pub const MAX_BROWSE_PAGE: usize = 500;

/// Which events a page shows. Every part is optional; positions are
/// inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventFilter {
    /// Only events of this type.
    pub event_type: Option<EventType>,
    /// Only events with this tag.
    pub tag: Option<Tag>,
    /// Only events of this stream.
    pub stream: Option<StreamId>,
    /// Only events at or after this position.
    pub from: Option<Position>,
    /// Only events at or before this position.
    pub to: Option<Position>,
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart {
    /// The newest matching events.
    Newest,
    /// The matching events just below this position (older ones).
    Before(Position),
    /// The matching events just above this position (newer ones).
    After(Position),
}

/// A parked outbox message, for admin tools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedMessage {
    /// The message's id (what `requeue` takes).
    pub id: i64,
    /// The event whose reaction it is.
    pub event_position: Position,
    /// How many times it was leased.
    pub attempts: u32,
    /// The last failure's text, as the handler gave it.
    pub error: Option<String>,
    /// When it was parked.
    pub parked_at: SystemTime,
    /// Its payload.
    pub payload: Vec<u8>,
}

fn page_rows(limit: usize) -> Result<i64, StoreError> {
    if limit == 0 || limit > MAX_BROWSE_PAGE {
        return Err(StoreError::new(
            StoreErrorKind::Rejected,
            format!("a page holds 1 to {MAX_BROWSE_PAGE} rows, not {limit}"),
        ));
    }
    Ok(i64::try_from(limit).unwrap_or(i64::MAX))
}

fn at(position: Position) -> i64 {
    i64::try_from(position.get()).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// A page of at most `limit` events matching `filter`, newest first,
    /// starting at `start`. A `limit` of 0 or above [`MAX_BROWSE_PAGE`] is
    /// [`StoreErrorKind::Rejected`].
    pub async fn browse_events(
        &self,
        filter: &EventFilter,
        start: PageStart,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = page_rows(limit)?;
        let mut low = filter.from.map_or(0, at);
        let mut high = filter.to.map_or(i64::MAX, at);
        let oldest_first = match start {
            PageStart::Newest => false,
            PageStart::Before(p) => {
                high = high.min(at(p).saturating_sub(1));
                false
            }
            PageStart::After(p) => {
                low = low.max(at(p).saturating_add(1));
                true
            }
        };
        let statement = if oldest_first {
            &self.statements().browse_oldest_first
        } else {
            &self.statements().browse_newest_first
        };
        let event_type = filter.event_type.as_ref().map(EventType::as_str);
        let tag = filter.tag.as_ref().map(Tag::as_str);
        let stream = filter.stream.as_ref().map(StreamId::as_str);
        let client = self.client().await?;
        let rows = client
            .query(
                statement,
                &[&event_type, &tag, &stream, &low, &high, &limit],
            )
            .await
            .map_err(|e| db_error("cannot browse events", e, Phase::BeforeCommit))?;
        let mut events = rows
            .iter()
            .map(stored_event)
            .collect::<Result<Vec<_>, _>>()?;
        if oldest_first {
            events.reverse();
        }
        Ok(events)
    }

    /// The event at `position`, if there is one.
    pub async fn event_at(&self, position: Position) -> Result<Option<StoredEvent>, StoreError> {
        let filter = EventFilter {
            from: Some(position),
            to: Some(position),
            ..EventFilter::default()
        };
        Ok(self
            .browse_events(&filter, PageStart::Newest, 1)
            .await?
            .pop())
    }

    /// The parked messages of `topic` with their errors, oldest first, at
    /// most `limit` (1 to [`MAX_BROWSE_PAGE`]).
    pub async fn parked_messages(
        &self,
        topic: &factos::Topic,
        limit: usize,
    ) -> Result<Vec<ParkedMessage>, StoreError> {
        let limit = page_rows(limit)?;
        let client = self.client().await?;
        let rows = client
            .query(
                &self.statements().browse_parked_messages,
                &[&topic.as_str(), &limit],
            )
            .await
            .map_err(|e| db_error("cannot list parked messages", e, Phase::BeforeCommit))?;
        rows.iter()
            .map(|row| {
                let unexpected = |e| corrupt("unexpected parked message row").with_source(e);
                let position: i64 = row.try_get("event_position").map_err(unexpected)?;
                let attempts: i32 = row.try_get("attempts").map_err(unexpected)?;
                Ok(ParkedMessage {
                    id: row.try_get("id").map_err(unexpected)?,
                    event_position: crate::rows::position(position)?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    error: row.try_get("last_error").map_err(unexpected)?,
                    parked_at: row.try_get("parked_at").map_err(unexpected)?,
                    payload: row.try_get("payload").map_err(unexpected)?,
                })
            })
            .collect()
    }

    /// Events appended per `bucket` over the last `window` (among the
    /// newest million positions), oldest bucket first, as (bucket start,
    /// events); buckets without events are left out.
    pub async fn append_rate(
        &self,
        bucket: Duration,
        window: Duration,
    ) -> Result<Vec<(SystemTime, u64)>, StoreError> {
        let bucket_s = i64::try_from(bucket.as_secs().max(1)).unwrap_or(i64::MAX);
        let window_s = i64::try_from(window.as_secs().max(1)).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                &self.statements().browse_append_rate,
                &[&bucket_s, &window_s],
            )
            .await
            .map_err(|e| db_error("cannot read the append rate", e, Phase::BeforeCommit))?;
        rows.iter()
            .map(|row| {
                let unexpected = |e| corrupt("unexpected append rate row").with_source(e);
                let start: i64 = row.try_get("bucket_start").map_err(unexpected)?;
                let events: i64 = row.try_get("events").map_err(unexpected)?;
                Ok((
                    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(start).unwrap_or(0)),
                    u64::try_from(events).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// How many connections the database has now (every client's).
    pub async fn connections(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(&self.statements().browse_connections, &[])
            .await
            .map_err(|e| db_error("cannot count connections", e, Phase::BeforeCommit))?;
        let count: i64 = row
            .try_get("connections")
            .map_err(|e| corrupt("unexpected connection count").with_source(e))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
