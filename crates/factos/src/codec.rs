//! The application's codec: domain events to store rows and back.

use std::fmt;

use crate::{EventType, NewEvent, Position, Recorded, StoredEvent, StreamId, ValidationError};

/// A stored row after decoding: the row's metadata with its domain event.
pub type Decoded<E> = Recorded<E>;

/// Turns domain events into [`NewEvent`]s (type, version, tags, metadata,
/// payload bytes) and stored rows back into domain events.
///
/// The store persists bytes and query metadata only; the codec owns the format.
/// [`json::JsonCodec`](crate::json::JsonCodec) is a ready implementation.
///
/// ```
/// use factos::{Codec, DecodeError, EncodeError, EventType, NewEvent, StoredEvent};
/// /// Stores plain UTF-8 notes.
/// struct Notes;
/// impl Codec for Notes {
///     type Event = String;
///     fn encode(&self, note: &String) -> Result<NewEvent, EncodeError> {
///         Ok(NewEvent::new(EventType::new("Noted")?, note.as_bytes().to_vec()))
///     }
///     fn decode(&self, stored: &StoredEvent) -> Result<String, DecodeError> {
///         String::from_utf8(stored.data.clone()).map_err(|e| DecodeError::InvalidData {
///             event_type: stored.event_type.clone(), version: stored.version, message: e.to_string(),
///         })
///     }
/// }
/// assert_eq!(Notes.encode(&"hi".to_string())?.data, b"hi");
/// # Ok::<(), EncodeError>(())
/// ```
pub trait Codec: Send + Sync {
    /// The domain event type.
    type Event;
    /// Encodes one event for appending.
    fn encode(&self, event: &Self::Event) -> Result<NewEvent, EncodeError>;
    /// Decodes one stored row.
    fn decode(&self, stored: &StoredEvent) -> Result<Self::Event, DecodeError>;

    /// Whether events of `event_type` are this codec's own. An event of a
    /// type the codec does not own (another module's, under the same tags)
    /// is passed over: the decider is not fed it, a context read leaves it
    /// out. The append condition still counts it (it is a stored event
    /// matching the query): a foreign event appended after a decision's
    /// context makes that decision decide again, which is conservative.
    /// The default owns every type, so an unknown type is a decode error.
    fn owns_type(&self, event_type: &EventType) -> bool {
        let _ = event_type;
        true
    }
}

/// A stored event that its codec could not decode, named by where it is:
/// what dispatches, context reads and (through [`decode_stored`]) handlers
/// report, so an operator can find the event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndecodableEvent {
    /// Its position in the log.
    pub position: Position,
    /// Its id.
    pub id: uuid::Uuid,
    /// Its stream.
    pub stream: StreamId,
    /// Its revision in the stream.
    pub revision: u64,
    /// Its stored type.
    pub event_type: EventType,
    /// Its stored version.
    pub version: u32,
    /// What the codec said.
    pub error: DecodeError,
}

impl UndecodableEvent {
    /// `stored`, which failed to decode with `error`.
    pub fn new(stored: &StoredEvent, error: DecodeError) -> Self {
        Self {
            position: stored.position,
            id: stored.id,
            stream: stored.stream.clone(),
            revision: stored.revision,
            event_type: stored.event_type.clone(),
            version: stored.version,
            error,
        }
    }
}

impl fmt::Display for UndecodableEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the event at position {} (id {}, stream {}, revision {}, type {}, version {}) cannot be decoded: {}",
            self.position,
            self.id,
            self.stream,
            self.revision,
            self.event_type,
            self.version,
            self.error
        )
    }
}

impl std::error::Error for UndecodableEvent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Decodes `stored` with `codec`; a failure names the event (for event and
/// projection handlers, whose errors then say which event stopped them).
///
/// # Errors
///
/// The event and why `codec` could not decode it.
pub fn decode_stored<C: Codec + ?Sized>(
    codec: &C,
    stored: &StoredEvent,
) -> Result<C::Event, Box<UndecodableEvent>> {
    codec
        .decode(stored)
        .map_err(|e| Box::new(UndecodableEvent::new(stored, e)))
}

/// Decodes `stored` with `codec` unless its type is not the codec's own
/// ([`Codec::owns_type`]): `None` then, for a handler to pass over.
///
/// # Errors
///
/// The event and why `codec` could not decode it.
pub fn decode_owned<C: Codec + ?Sized>(
    codec: &C,
    stored: &StoredEvent,
) -> Result<Option<C::Event>, Box<UndecodableEvent>> {
    if !codec.owns_type(&stored.event_type) {
        return Ok(None);
    }
    decode_stored(codec, stored).map(Some)
}

/// Why a stored row could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The codec does not know this type (or this version of it).
    UnknownEvent {
        /// The stored type.
        event_type: EventType,
        /// The stored version.
        version: u32,
    },
    /// The type is known but the payload does not parse.
    InvalidData {
        /// The stored type.
        event_type: EventType,
        /// The stored version.
        version: u32,
        /// What the parser said.
        message: String,
    },
    /// The stored version is newer than the newest this code can read for
    /// its type: it was written by newer code (deploy it, or add the step).
    NewerVersion {
        /// The stored type.
        event_type: EventType,
        /// The stored version.
        version: u32,
        /// The newest version this code reads for the type.
        newest: u32,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownEvent {
                event_type,
                version,
            } => {
                write!(f, "unknown event type {event_type} (version {version})")
            }
            DecodeError::InvalidData {
                event_type,
                version,
                message,
            } => {
                write!(
                    f,
                    "invalid data for event type {event_type} (version {version}): {message}"
                )
            }
            DecodeError::NewerVersion {
                event_type,
                version,
                newest,
            } => write!(
                f,
                "event type {event_type} is stored at version {version}, newer than the newest this code reads ({newest})"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a domain event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A type, tag or metadata value broke the limits.
    Invalid(ValidationError),
    /// The payload could not be serialized.
    Serialize(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Invalid(e) => write!(f, "cannot encode event: {e}"),
            EncodeError::Serialize(message) => write!(f, "cannot serialize event: {message}"),
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EncodeError::Invalid(e) => Some(e),
            EncodeError::Serialize(_) => None,
        }
    }
}

impl From<ValidationError> for EncodeError {
    fn from(e: ValidationError) -> Self {
        EncodeError::Invalid(e)
    }
}
