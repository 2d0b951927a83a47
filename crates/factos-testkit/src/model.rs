//! The small domain the conformance cases use: generic events whose type and
//! tags are data, a codec for them, and a few deciders.

use factos::{
    Codec, Decider, DecodeError, EncodeError, EventType, Metadata, NewEvent, StoredEvent, Tags,
};
use serde::{Deserialize, Serialize};

/// An event whose store-visible type and tags are plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitEvent {
    /// The store-visible type.
    pub event_type: String,
    /// The store-visible tags.
    pub tags: Vec<String>,
    /// Free text; deciders use it to report what they saw.
    pub body: String,
}

/// The kit's codec writes exactly these.
impl factos::states::StoreVisible for KitEvent {
    fn stored_type(&self) -> &str {
        &self.event_type
    }

    fn stored_tags(&self) -> Vec<String> {
        self.tags.clone()
    }
}

impl KitEvent {
    /// An event with an empty body.
    pub fn new(event_type: &str, tags: &[&str]) -> Self {
        Self {
            event_type: event_type.to_string(),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            body: String::new(),
        }
    }

    /// The same event with a body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
}

/// Encodes [`KitEvent`]s as JSON. Types listed in `unknown_types` decode as
/// [`DecodeError::UnknownEvent`], to model rows another application wrote.
#[derive(Debug, Clone, Default)]
pub struct KitCodec {
    /// Types this codec refuses to decode.
    pub unknown_types: Vec<String>,
}

impl KitCodec {
    /// The name of a type that [`KitCodec::default`] refuses to decode.
    pub const UNDECODABLE: &'static str = "Undecodable";

    /// A codec that refuses [`KitCodec::UNDECODABLE`].
    pub fn strict() -> Self {
        Self {
            unknown_types: vec![Self::UNDECODABLE.to_string()],
        }
    }
}

impl Codec for KitCodec {
    type Event = KitEvent;

    fn encode(&self, event: &KitEvent) -> Result<NewEvent, EncodeError> {
        let data = serde_json::to_vec(event).map_err(|e| EncodeError::Serialize(e.to_string()))?;
        Ok(
            NewEvent::new(EventType::new(event.event_type.clone())?, data)
                .with_tags(Tags::parse(event.tags.iter().cloned())?)
                .with_metadata(Metadata::new().with("source", "factos-testkit")?),
        )
    }

    fn decode(&self, stored: &StoredEvent) -> Result<KitEvent, DecodeError> {
        if self
            .unknown_types
            .iter()
            .any(|t| t == stored.event_type.as_str())
        {
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

/// Emits the command's events while fewer than `limit` events are in the
/// context; each emitted event's body is set to the context size it saw.
#[derive(Debug, Clone, Copy)]
pub struct Bounded {
    /// Most events the context may hold for the command to succeed.
    pub limit: usize,
}

/// The domain error of [`Bounded`].
pub const LIMIT_REACHED: &str = "limit reached";

impl Decider for Bounded {
    type State = usize;
    type Command = Vec<KitEvent>;
    type Event = KitEvent;
    type Error = &'static str;

    fn initial(&self) -> usize {
        0
    }

    fn decide(&self, seen: &usize, command: &Vec<KitEvent>) -> Result<Vec<KitEvent>, &'static str> {
        if *seen >= self.limit {
            return Err(LIMIT_REACHED);
        }
        Ok(command
            .iter()
            .map(|e| e.clone().with_body(seen.to_string()))
            .collect())
    }

    fn evolve(&self, seen: usize, _: &KitEvent) -> usize {
        seen + 1
    }
}

/// A decider whose `decide` panics, to check that a panic writes nothing.
#[derive(Debug, Clone, Copy)]
pub struct Panicking;

impl Decider for Panicking {
    type State = ();
    type Command = ();
    type Event = KitEvent;
    type Error = &'static str;

    fn initial(&self) {}

    #[allow(clippy::panic)]
    fn decide(&self, (): &(), (): &()) -> Result<Vec<KitEvent>, &'static str> {
        panic!("the decider panicked on purpose")
    }

    fn evolve(&self, (): (), _: &KitEvent) {}
}

/// A [`KitCodec`] that counts the rows it decodes, to check that rows
/// outside a query never reach the codec.
#[derive(Debug, Clone, Default)]
pub struct CountingCodec {
    /// The codec doing the work.
    pub inner: KitCodec,
    /// How many rows were decoded.
    pub decoded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Codec for CountingCodec {
    type Event = KitEvent;

    fn encode(&self, event: &KitEvent) -> Result<NewEvent, EncodeError> {
        self.inner.encode(event)
    }

    fn decode(&self, stored: &StoredEvent) -> Result<KitEvent, DecodeError> {
        self.decoded
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.decode(stored)
    }
}

/// Items in boxes: the state is the number of items the context holds.
/// Clones share a note of the count the last `decide` saw.
#[derive(Debug, Clone, Default)]
pub struct Shelf {
    decided_on: std::sync::Arc<std::sync::Mutex<Option<usize>>>,
}

impl Shelf {
    /// The count the last `decide` saw (taken: a second call says `None`).
    pub fn decided_on(&self) -> Option<usize> {
        self.decided_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// What a [`Shelf`] can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShelfCommand {
    /// Adds one item to the named box.
    Add(String),
    /// Appends nothing (the idempotent "already done" answer).
    Nothing,
    /// Closes the named box when it holds at least this many items; refused otherwise.
    CloseAt(String, usize),
    /// Appends nothing; the count it decided on is in [`Shelf::decided_on`].
    Count,
    /// Panics in `decide`.
    Panic,
}

impl Decider for Shelf {
    type State = usize;
    type Command = ShelfCommand;
    type Event = KitEvent;
    type Error = String;

    fn initial(&self) -> usize {
        0
    }

    fn decide(&self, items: &usize, command: &ShelfCommand) -> Result<Vec<KitEvent>, String> {
        *self
            .decided_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(*items);
        match command {
            ShelfCommand::Add(name) => Ok(vec![KitEvent::new("Item", &[&format!("box:{name}")])]),
            ShelfCommand::Nothing | ShelfCommand::Count => Ok(Vec::new()),
            ShelfCommand::CloseAt(name, at) if items >= at => {
                Ok(vec![KitEvent::new("Closed", &[&format!("box:{name}")])])
            }
            ShelfCommand::CloseAt(_, at) => Err(format!("{items} items, closing needs {at}")),
            #[allow(clippy::panic)]
            ShelfCommand::Panic => panic!("the shelf was told to panic"),
        }
    }

    fn evolve(&self, items: usize, event: &KitEvent) -> usize {
        if event.event_type == "Item" {
            items + 1
        } else {
            items
        }
    }
}
