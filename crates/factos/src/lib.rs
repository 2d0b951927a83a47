//! # factos: context-first event sourcing
//!
//! A command handler selects the facts relevant to its decision with a
//! [`Query`] of event types and tags, folds them with a pure [`Decider`], and
//! appends new facts **only if that context is still stable**: no event matching
//! the query appeared since it was read (`FailIfEventsMatch(query, after)`).
//!
//! This crate knows no database. It holds the model, the [`EventStore`] trait
//! every backend implements, the [`dispatch_with_query`] and [`dispatch()`]
//! command handlers built on it, a serde_json codec ([`json::JsonCodec`]) and
//! an [`InMemoryStore`] for unit tests and examples. The PostgreSQL backend is
//! the `factos-postgres` crate.
//!
//! ```
//! use factos::*;
//! use factos::json::{JsonCodec, JsonEvent};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! enum TicketEvent { TicketSold { concert: String, buyer: String } }
//!
//! impl JsonEvent for TicketEvent {
//!     const EVENT_TYPES: &'static [&'static str] = &["TicketSold"];
//!     fn event_type(&self) -> &'static str { "TicketSold" }
//!     fn tags(&self) -> Vec<String> {
//!         let TicketEvent::TicketSold { concert, buyer } = self;
//!         vec![format!("concert:{concert}"), format!("buyer:{buyer}")]
//!     }
//! }
//!
//! /// Sells at most `capacity` tickets.
//! struct Tickets { capacity: usize }
//! impl Decider for Tickets {
//!     type State = usize;
//!     type Command = (String, String); // (concert, buyer)
//!     type Event = TicketEvent;
//!     type Error = &'static str;
//!     fn initial(&self) -> usize { 0 }
//!     fn decide(&self, sold: &usize, (concert, buyer): &(String, String)) -> Result<Vec<TicketEvent>, &'static str> {
//!         if *sold >= self.capacity { return Err("sold out") }
//!         Ok(vec![TicketEvent::TicketSold { concert: concert.clone(), buyer: buyer.clone() }])
//!     }
//!     fn evolve(&self, sold: usize, _: &TicketEvent) -> usize { sold + 1 }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemoryStore::new();
//! let query = Query::item(QueryItem::parse(["TicketSold"], ["concert:c1"])?);
//! let decider = Tickets { capacity: 1 };
//! let codec = JsonCodec::new();
//! let buy = |buyer: &str| (String::from("c1"), buyer.to_string());
//!
//! let sold = dispatch_with_query(&store, &StreamId::new("buyer-a")?, &query, &decider, &codec, &buy("a")).await?;
//! assert_eq!(sold.events[0].revision, 0);
//! let refused = dispatch_with_query(&store, &StreamId::new("buyer-b")?, &query, &decider, &codec, &buy("b")).await;
//! assert!(matches!(refused, Err(DispatchError::Domain("sold out"))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod cache;
mod codec;
mod decider;
mod dispatch;
mod dispatcher;
mod effect;
mod event;
mod event_store;
mod memory;
pub mod metrics;
mod names;
pub mod outbox;
mod position;
mod query;
pub mod snapshot;
pub mod states;
pub mod store;
pub mod subscription;
pub mod upcast;

#[cfg(feature = "json")]
pub mod json;

/// `#[derive(factos::Event)]` on an enum of domain events: each variant
/// declares its stored type name (`#[event(name = "...")]`, default the
/// variant's name), its payload version (`#[event(version = N)]`, 1 by
/// default) and its tags (`#[tag("key")]` on a field: the tag `key:value`). It
/// implements [`json::JsonEvent`] (so [`json::JsonCodec`] is its codec)
/// and adds a constant per variant with its type name and, per tag key,
/// `key_tag(value)` and `key_query(value)` (the events of the enum's types
/// carrying that tag). Misdeclarations (two variants of one type name, an
/// empty or over-long name, version 0) fail to compile.
///
/// ```
/// use factos::json::JsonEvent;
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, factos::Event)]
/// enum Bank {
///     #[event(name = "AccountOpened")]
///     Opened { #[tag("account")] account: String, owner: String },
///     #[event(version = 2)]
///     Deposited { #[tag("account")] account: String, cents: i64 },
///     Moved { #[tag("account")] from: String, #[tag("account")] to: String, cents: i64 },
/// }
///
/// let moved = Bank::Moved { from: "a".into(), to: "b".into(), cents: 5 };
/// assert_eq!(moved.event_type(), Bank::MOVED);
/// assert_eq!(moved.tags(), ["account:a", "account:b"]);
/// assert_eq!(Bank::Deposited { account: "a".into(), cents: 1 }.version(), 2);
/// assert_eq!(Bank::EVENT_TYPES, ["AccountOpened", "Deposited", "Moved"]);
/// let query = Bank::account_query("a")?;
/// assert!(query.matches_names("Deposited", &["account:a"]));
/// assert!(!query.matches_names("Deposited", &["account:b"]));
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[cfg(feature = "derive")]
pub use factos_macros::Event;

pub use cache::DEFAULT_CACHE_ENTRIES;
pub use codec::{
    Codec, DecodeError, Decoded, EncodeError, UndecodableEvent, decode_owned, decode_stored,
};
pub use decider::{
    Decider, DispatchDecider, FnReactor, MergedReactors, MergedViews, Reactor, View,
    compute_events, fold_decider, fold_view, merge_reactors, merge_views, react_all, reactor_fn,
};
pub use dispatch::{
    Append, Context, Dispatch, DispatchError, LoadedStream, ReadError, dispatch,
    dispatch_with_condition, dispatch_with_outbox, dispatch_with_outbox_idempotent,
    dispatch_with_query, dispatch_with_query_idempotent, event_id, load_stream, read_context,
};
pub use dispatcher::{CombinedBatches, DEFAULT_BATCH_COMMANDS, Dispatcher};
pub use effect::{Effect, OutboxMessage};
pub use event::{NewEvent, Recorded, StoredEvent, matches_query};
pub use event_store::{
    AppendError, Committed, ConditionFailure, EventStore, Folded, ReadOptions, ReadResult,
    StoreError, StoreErrorKind, StoreLimits,
};
pub use memory::InMemoryStore;
pub use names::{
    EventType, MAX_EVENT_TYPE_BYTES, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES,
    MAX_METADATA_VALUE_BYTES, MAX_STREAM_BYTES, MAX_TAG_BYTES, MAX_TAGS_PER_EVENT, MAX_TOPIC_BYTES,
    Metadata, NameKind, StreamId, Tag, Tags, Topic, ValidationError,
};
pub use position::{Position, Revision, highest_position};
pub use query::{AppendCondition, Query, QueryItem};
