//! A ready codec for serde types: the payload is the event serialized as JSON.
//!
//! ```
//! use factos::json::{JsonCodec, JsonEvent};
//! use factos::Codec;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum UserEvent {
//!     UserRegistered { username: String },
//! }
//!
//! impl JsonEvent for UserEvent {
//!     const EVENT_TYPES: &'static [&'static str] = &["UserRegistered"];
//!     fn event_type(&self) -> &'static str {
//!         match self { UserEvent::UserRegistered { .. } => "UserRegistered" }
//!     }
//!     fn tags(&self) -> Vec<String> {
//!         match self { UserEvent::UserRegistered { username } => vec![format!("username:{username}")] }
//!     }
//! }
//!
//! let codec = JsonCodec::<UserEvent>::new();
//! let new_event = codec.encode(&UserEvent::UserRegistered { username: "renata".into() })?;
//! assert_eq!(new_event.event_type.as_str(), "UserRegistered");
//! assert_eq!(new_event.tags.as_slice()[0].as_str(), "username:renata");
//! # Ok::<(), factos::EncodeError>(())
//! ```

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Codec, DecodeError, EncodeError, EventType, Metadata, NewEvent, StoredEvent, Tags};

/// A domain event the [`JsonCodec`] can store.
pub trait JsonEvent: Serialize + DeserializeOwned {
    /// Every type name this event can have. A stored row of another type decodes
    /// as [`DecodeError::UnknownEvent`].
    const EVENT_TYPES: &'static [&'static str];
    /// The store-visible type of this event (one of [`Self::EVENT_TYPES`]).
    fn event_type(&self) -> &'static str;
    /// The store-visible tags of this event.
    fn tags(&self) -> Vec<String>;
    /// The payload schema version written (default 1).
    fn version(&self) -> u32 {
        1
    }
    /// Metadata to write with this event (default none).
    fn metadata(&self) -> Metadata {
        Metadata::new()
    }
}

/// A [`Codec`] that stores [`JsonEvent`]s as JSON payloads.
pub struct JsonCodec<E>(PhantomData<fn() -> E>);

impl<E> JsonCodec<E> {
    /// The codec.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<E> Default for JsonCodec<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Clone for JsonCodec<E> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<E> std::fmt::Debug for JsonCodec<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonCodec")
    }
}

impl<E: JsonEvent> Codec for JsonCodec<E> {
    type Event = E;

    fn encode(&self, event: &E) -> Result<NewEvent, EncodeError> {
        let event_type = EventType::new(event.event_type())?;
        let tags = Tags::parse(event.tags())?;
        let data = serde_json::to_vec(event).map_err(|e| EncodeError::Serialize(e.to_string()))?;
        Ok(NewEvent::new(event_type, data)
            .with_tags(tags)
            .with_version(event.version())
            .with_metadata(event.metadata()))
    }

    fn decode(&self, stored: &StoredEvent) -> Result<E, DecodeError> {
        if !E::EVENT_TYPES.contains(&stored.event_type.as_str()) {
            return Err(DecodeError::UnknownEvent {
                event_type: stored.event_type.clone(),
                version: stored.version,
            });
        }
        serde_json::from_slice(&stored.data).map_err(|e| DecodeError::InvalidData {
            event_type: stored.event_type.clone(),
            version: stored.version,
            message: e.to_string(),
        })
    }
}
