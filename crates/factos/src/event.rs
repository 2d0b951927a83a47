//! Events as the store sees them: proposed, stored, and recorded with their domain value.

use uuid::Uuid;

use crate::{EventType, Metadata, Position, StreamId, Tags};

/// An event ready to append: its id, store-visible type and tags, metadata, and
/// the opaque payload the application's [`Codec`](crate::Codec) produced.
///
/// ```
/// use factos::{EventType, NewEvent, Tags};
/// let event = NewEvent::new(EventType::new("TicketSold")?, br#"{"buyer":"renata"}"#.to_vec())
///     .with_tags(Tags::parse(["event:e1"])?);
/// assert_eq!(event.version, 1);
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id of the event (a UUIDv7 unless the application sets one).
    pub id: Uuid,
    /// Store-visible type.
    pub event_type: EventType,
    /// Schema version of the payload, for the codec's upcasting.
    pub version: u32,
    /// Store-visible tags.
    pub tags: Tags,
    /// Metadata, never matched on.
    pub metadata: Metadata,
    /// Opaque payload bytes.
    pub data: Vec<u8>,
}

impl NewEvent {
    /// A version-1 event with a fresh UUIDv7 id, no tags and no metadata.
    pub fn new(event_type: EventType, data: Vec<u8>) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type,
            version: 1,
            tags: Tags::empty(),
            metadata: Metadata::new(),
            data,
        }
    }

    /// Sets the tags.
    #[must_use]
    pub fn with_tags(mut self, tags: Tags) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the payload version.
    #[must_use]
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }
}

/// An event as stored: everything of a [`NewEvent`] plus where it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global position.
    pub position: Position,
    /// Stream label.
    pub stream: StreamId,
    /// Revision within the stream, from 0.
    pub revision: u64,
    /// Unique id.
    pub id: Uuid,
    /// Store-visible type.
    pub event_type: EventType,
    /// Payload schema version.
    pub version: u32,
    /// Store-visible tags.
    pub tags: Tags,
    /// Metadata.
    pub metadata: Metadata,
    /// Opaque payload bytes.
    pub data: Vec<u8>,
    /// When the store recorded the event: on PostgreSQL the start of the
    /// appending transaction (`now()`, to the microsecond, by the server's
    /// clock), in memory the append's wall-clock time. The same for every
    /// event of one append. Not ordered by position: a transaction that
    /// began earlier may take a later position.
    pub recorded_at: std::time::SystemTime,
}

impl StoredEvent {
    /// Whether this event matches `query`.
    pub fn matches(&self, query: &crate::Query) -> bool {
        query.matches(&self.event_type, &self.tags)
    }
}

/// A committed event with its decoded domain value: what reactors receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<E> {
    /// Unique id.
    pub id: Uuid,
    /// Stream label.
    pub stream: StreamId,
    /// Revision within the stream, from 0.
    pub revision: u64,
    /// Global position.
    pub position: Position,
    /// Store-visible type.
    pub event_type: EventType,
    /// Payload schema version.
    pub version: u32,
    /// Store-visible tags.
    pub tags: Tags,
    /// Metadata.
    pub metadata: Metadata,
    /// The domain event.
    pub event: E,
}

impl<E> Recorded<E> {
    /// Builds a recorded event from its stored row and its decoded value.
    pub fn from_stored(stored: StoredEvent, event: E) -> Self {
        Self {
            id: stored.id,
            stream: stored.stream,
            revision: stored.revision,
            position: stored.position,
            event_type: stored.event_type,
            version: stored.version,
            tags: stored.tags,
            metadata: stored.metadata,
            event,
        }
    }

    /// Whether this event matches `query`.
    pub fn matches(&self, query: &crate::Query) -> bool {
        query.matches(&self.event_type, &self.tags)
    }

    /// The same record with the domain event mapped.
    pub fn map<F, T>(self, f: F) -> Recorded<T>
    where
        F: FnOnce(E) -> T,
    {
        Recorded {
            id: self.id,
            stream: self.stream,
            revision: self.revision,
            position: self.position,
            event_type: self.event_type,
            version: self.version,
            tags: self.tags,
            metadata: self.metadata,
            event: f(self.event),
        }
    }
}

/// Whether a recorded event matches a query (the original's `matches_query`).
pub fn matches_query<E>(recorded: &Recorded<E>, query: &crate::Query) -> bool {
    recorded.matches(query)
}
