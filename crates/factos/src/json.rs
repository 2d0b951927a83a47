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

use crate::upcast::Upcasts;
use crate::{
    Codec, DecodeError, EncodeError, EventType, Metadata, NewEvent, Query, QueryItem, StoredEvent,
    Tags, ValidationError,
};

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

/// What a [`JsonCodec`] does with a stored event whose type is not one of
/// its [`JsonEvent::EVENT_TYPES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForeignTypes {
    /// A decode error ([`DecodeError::UnknownEvent`]): a query that can meet
    /// another module's events is a mistake to be told about (the default).
    #[default]
    Refuse,
    /// Passed over ([`Codec::owns_type`] is false): the decider is not fed
    /// it, the append condition still counts it.
    PassOver,
}

/// A [`Codec`] that stores [`JsonEvent`]s as JSON payloads.
///
/// Options: [`passing_over_foreign_types`](Self::passing_over_foreign_types)
/// for contexts that can meet other modules' events under the same tags, and
/// [`upcasting`](Self::upcasting) steps that read older versions of an event
/// as the current one.
///
/// ```
/// use factos::json::{JsonCodec, JsonEvent};
/// use factos::{Codec, EventType, NewEvent, StoredEvent};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum Account {
///     // Version 2 added the currency; version 1 events have none.
///     Deposited { amount: u64, currency: String },
/// }
/// impl JsonEvent for Account {
///     const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
///     fn event_type(&self) -> &'static str { "Deposited" }
///     fn tags(&self) -> Vec<String> { vec!["account:bob".into()] }
/// }
/// let codec = JsonCodec::<Account>::new()
///     .passing_over_foreign_types()
///     .upcasting("Deposited", 1, |mut v1| {
///         v1["Deposited"]["currency"] = "EUR".into();
///         Ok(v1)
///     });
/// // Encoding writes the newest version.
/// let new = codec.encode(&Account::Deposited { amount: 5, currency: "EUR".into() })?;
/// assert_eq!(new.version, 2);
/// // Another module's event under the same tag is not this codec's.
/// assert!(!codec.owns_type(&EventType::new("AddressChanged")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JsonCodec<E> {
    foreign: ForeignTypes,
    upcasts: Upcasts<serde_json::Value>,
    marker: PhantomData<fn() -> E>,
}

impl<E> JsonCodec<E> {
    /// The codec: foreign types refused, no upcasting.
    pub fn new() -> Self {
        Self {
            foreign: ForeignTypes::Refuse,
            upcasts: Upcasts::new(),
            marker: PhantomData,
        }
    }

    /// Passes over stored events whose type is not one of the event's
    /// [`EVENT_TYPES`](JsonEvent::EVENT_TYPES) ([`ForeignTypes::PassOver`]).
    #[must_use]
    pub fn passing_over_foreign_types(self) -> Self {
        Self {
            foreign: ForeignTypes::PassOver,
            ..self
        }
    }

    /// Reads `event_type` stored at version `from` through `step`, which
    /// turns its JSON payload into the payload of version `from + 1`; the
    /// steps of a type chain to its newest version (one past its highest
    /// step), which encoding then writes. A type without steps is read at
    /// whatever version it was stored with, as [`JsonEvent::version`] says
    /// to write it; with steps, a stored version past the newest is a
    /// [`DecodeError::NewerVersion`].
    #[must_use]
    pub fn upcasting(
        self,
        event_type: &str,
        from: u32,
        step: impl Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            upcasts: self.upcasts.step(event_type, from, step),
            ..self
        }
    }
}

impl<E: JsonEvent> JsonCodec<E> {
    /// The query item of the event's [`EVENT_TYPES`](JsonEvent::EVENT_TYPES)
    /// with all of `tags`: a decision's query that names its types, so the
    /// store never hands it another module's events (a tag-only query reads
    /// every type under its tags and must then refuse or pass over the
    /// foreign ones).
    ///
    /// # Errors
    ///
    /// A type or tag that is not valid.
    pub fn query_item<G: Into<String>>(
        &self,
        tags: impl IntoIterator<Item = G>,
    ) -> Result<QueryItem, ValidationError> {
        QueryItem::parse(E::EVENT_TYPES.iter().copied(), tags)
    }

    /// [`query_item`](Self::query_item) as a whole query.
    ///
    /// # Errors
    ///
    /// A type or tag that is not valid.
    pub fn query<G: Into<String>>(
        &self,
        tags: impl IntoIterator<Item = G>,
    ) -> Result<Query, ValidationError> {
        self.query_item(tags).map(Query::item)
    }
}

impl<E> Default for JsonCodec<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Clone for JsonCodec<E> {
    fn clone(&self) -> Self {
        Self {
            foreign: self.foreign,
            upcasts: self.upcasts.clone(),
            marker: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for JsonCodec<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonCodec")
            .field("foreign", &self.foreign)
            .field("upcasts", &self.upcasts)
            .finish()
    }
}

impl<E: JsonEvent> Codec for JsonCodec<E> {
    type Event = E;

    fn encode(&self, event: &E) -> Result<NewEvent, EncodeError> {
        let event_type = EventType::new(event.event_type())?;
        let tags = Tags::parse(event.tags())?;
        let data = serde_json::to_vec(event).map_err(|e| EncodeError::Serialize(e.to_string()))?;
        let version = match self.upcasts.newest(&event_type) {
            // With steps the newest version is the one written; an event
            // that says another (other than the default 1) is out of step
            // with the chain, and would be upcast again when read.
            Some(newest) if event.version() != 1 && event.version() != newest => {
                return Err(EncodeError::Serialize(format!(
                    "{event_type} says it is version {}, but its upcasting steps lead to version {newest}",
                    event.version()
                )));
            }
            Some(newest) => newest,
            None => event.version(),
        };
        Ok(NewEvent::new(event_type, data)
            .with_tags(tags)
            .with_version(version)
            .with_metadata(event.metadata()))
    }

    fn decode(&self, stored: &StoredEvent) -> Result<E, DecodeError> {
        if !E::EVENT_TYPES.contains(&stored.event_type.as_str()) {
            return Err(DecodeError::UnknownEvent {
                event_type: stored.event_type.clone(),
                version: stored.version,
            });
        }
        let invalid = |e: serde_json::Error| DecodeError::InvalidData {
            event_type: stored.event_type.clone(),
            version: stored.version,
            message: e.to_string(),
        };
        match self.upcasts.newest(&stored.event_type) {
            // At its newest (or without steps): straight from the bytes.
            None => serde_json::from_slice(&stored.data).map_err(invalid),
            Some(newest) if newest == stored.version => {
                serde_json::from_slice(&stored.data).map_err(invalid)
            }
            Some(_) => {
                let stored_value = serde_json::from_slice(&stored.data).map_err(invalid)?;
                let current =
                    self.upcasts
                        .to_newest(&stored.event_type, stored.version, stored_value)?;
                serde_json::from_value(current).map_err(invalid)
            }
        }
    }

    fn owns_type(&self, event_type: &EventType) -> bool {
        match self.foreign {
            ForeignTypes::Refuse => true,
            ForeignTypes::PassOver => E::EVENT_TYPES.contains(&event_type.as_str()),
        }
    }
}
