//! The outbox: effects recorded in the transaction of the dispatch that
//! caused them.
//!
//! A [`Reactor`] turns committed events into effects after the commit; if the
//! process dies in between, the effects are lost although the events are
//! not. [`dispatch_with_outbox`] closes that gap: the reactor runs between
//! the append and the commit (the events' positions are final by then) and
//! its [`OutboxMessage`]s are stored in the same transaction, so the events
//! and their effects commit together or not at all. Workers of the store
//! (for PostgreSQL, `factos_postgres::Outbox`) then deliver them.

use crate::dispatch::query_dispatch;
use crate::{
    Codec, Decider, Dispatch, DispatchError, EventStore, Position, Query, Reactor, StoreError,
    StoreErrorKind, StreamId, Topic,
};

/// Most effects one dispatch may record.
pub const MAX_EFFECTS_PER_DISPATCH: usize = 1000;
/// Largest outbox payload, in bytes.
pub const MAX_EFFECT_PAYLOAD_BYTES: usize = 1 << 20;

/// One effect to deliver: a topic and an opaque payload.
///
/// ```
/// use factos::{OutboxMessage, Topic};
/// let message = OutboxMessage::new(Topic::new("email")?, b"{\"to\":\"renata\"}".to_vec());
/// assert_eq!(message.topic.as_str(), "email");
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// What kind of effect it is; workers take one topic.
    pub topic: Topic,
    /// The payload, opaque to the store.
    pub payload: Vec<u8>,
}

impl OutboxMessage {
    /// A message (the payload's size is checked when it is recorded).
    pub fn new(topic: Topic, payload: Vec<u8>) -> Self {
        Self { topic, payload }
    }
}

/// An effect as a store records it: the message and the event that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Position of the event whose reaction this is.
    pub cause: Position,
    /// The message.
    pub message: OutboxMessage,
}

/// Like [`dispatch_with_query`](crate::dispatch_with_query), and the
/// `reactor`'s effects of the new events are recorded in the same
/// transaction as the events: both commit or neither does.
///
/// The reactor runs once the append has assigned positions, before the
/// commit. It should be quick and pure (it runs while the dispatch holds its
/// context's locks); a panic in it is caught and writes nothing. Stores that
/// cannot record effects ([`EventStore::records_effects`]) refuse with a
/// [`StoreErrorKind::Rejected`] error before doing anything.
///
/// ```
/// # use factos::*;
/// # use factos::json::{JsonCodec, JsonEvent};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # struct Registered { username: String }
/// # impl JsonEvent for Registered {
/// #     const EVENT_TYPES: &'static [&'static str] = &["UserRegistered"];
/// #     fn event_type(&self) -> &'static str { "UserRegistered" }
/// #     fn tags(&self) -> Vec<String> { vec![format!("username:{}", self.username)] }
/// # }
/// # struct Register;
/// # impl Decider for Register {
/// #     type Command = String; type Event = Registered; type State = bool; type Error = String;
/// #     fn initial(&self) -> bool { false }
/// #     fn decide(&self, taken: &bool, name: &String) -> Result<Vec<Registered>, String> {
/// #         if *taken { Err("taken".into()) } else { Ok(vec![Registered { username: name.clone() }]) }
/// #     }
/// #     fn evolve(&self, _: bool, _: &Registered) -> bool { true }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let welcome = reactor_fn(|r: &Recorded<Registered>| {
///     vec![OutboxMessage::new(Topic::new("email").unwrap(), r.event.username.clone().into_bytes())]
/// });
/// let query = Query::tags([Tag::new("username:renata")?]);
/// dispatch_with_outbox(&store, &StreamId::new("users")?, &query, &Register,
///     &JsonCodec::<Registered>::new(), &"renata".to_string(), &welcome).await?;
/// let recorded = store.outbox();
/// assert_eq!(recorded.len(), 1);
/// assert_eq!(recorded[0].message.payload, b"renata");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn dispatch_with_outbox<S, D, C, R>(
    store: &S,
    stream: &StreamId,
    query: &Query,
    decider: &D,
    codec: &C,
    command: &D::Command,
    reactor: &R,
) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
where
    S: EventStore,
    D: Decider + Sync,
    D::State: Send,
    D::Event: Send,
    D::Command: Sync,
    D::Error: Send,
    C: Codec<Event = D::Event>,
    R: Reactor<Event = D::Event, Effect = OutboxMessage> + Sync,
{
    require_effects(store)?;
    query_dispatch(
        store,
        stream,
        query,
        decider,
        codec,
        command,
        None,
        Some(reactor),
    )
    .await
}

/// Refuses, before anything is read or written, a store that cannot record
/// effects with its appends.
pub(crate) fn require_effects<S: EventStore, E>(store: &S) -> Result<(), DispatchError<E>> {
    if store.records_effects() {
        Ok(())
    } else {
        Err(DispatchError::Store(StoreError::new(
            StoreErrorKind::Rejected,
            "this store cannot record effects with its appends",
        )))
    }
}
