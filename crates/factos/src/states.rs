//! Decisions over several states, each with its own query.
//!
//! A transfer decides on two balances. Rather than one hand-made state
//! folded from both accounts' events, it composes two [`StatePart`]s: each
//! names the events it is folded from (its [`query`](StatePart::query)) and
//! is fed only those. The decision's context is the union of the parts'
//! queries ([`OverStates::query`]), so its append condition covers every
//! part: an event of either account committed after the read fails it.
//!
//! ```
//! use factos::states::{StatePart, StatesDecider, StoreVisible, over_states};
//! use factos::{EventStore, InMemoryStore, Query, StreamId, Tag, dispatch_with_query};
//! use factos::json::{JsonCodec, JsonEvent};
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! enum Bank {
//!     Deposited { account: String, cents: i64 },
//!     Moved { from: String, to: String, cents: i64 },
//! }
//! impl JsonEvent for Bank {
//!     const EVENT_TYPES: &'static [&'static str] = &["Deposited", "Moved"];
//!     fn event_type(&self) -> &'static str {
//!         match self { Bank::Deposited { .. } => "Deposited", Bank::Moved { .. } => "Moved" }
//!     }
//!     fn tags(&self) -> Vec<String> {
//!         match self {
//!             Bank::Deposited { account, .. } => vec![format!("account:{account}")],
//!             Bank::Moved { from, to, .. } => vec![format!("account:{from}"), format!("account:{to}")],
//!         }
//!     }
//! }
//!
//! /// One account's balance: fed only that account's events.
//! #[derive(Debug, Clone)]
//! struct Balance { account: String, cents: i64 }
//! impl StatePart for Balance {
//!     type Event = Bank;
//!     fn query(&self) -> Query {
//!         Query::tagged_with_all([Tag::new(format!("account:{}", self.account)).unwrap()])
//!     }
//!     fn evolve(mut self, event: &Bank) -> Self {
//!         match event {
//!             Bank::Deposited { cents, .. } => self.cents += cents,
//!             Bank::Moved { from, cents, .. } if *from == self.account => self.cents -= cents,
//!             Bank::Moved { cents, .. } => self.cents += cents,
//!         }
//!         self
//!     }
//! }
//!
//! struct Transfer;
//! impl StatesDecider for Transfer {
//!     type States = (Balance, Balance);
//!     type Command = i64;
//!     type Event = Bank;
//!     type Error = String;
//!     fn decide(&self, (from, to): &(Balance, Balance), cents: &i64) -> Result<Vec<Bank>, String> {
//!         if from.cents < *cents {
//!             return Err(format!("{} holds {}", from.account, from.cents));
//!         }
//!         Ok(vec![Bank::Moved { from: from.account.clone(), to: to.account.clone(), cents: *cents }])
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemoryStore::new();
//! let codec = JsonCodec::<Bank>::new();
//! let balance = |account: &str| Balance { account: account.into(), cents: 0 };
//! let deposit = Bank::Deposited { account: "a".into(), cents: 100 };
//! store.append(&StreamId::new("a")?, vec![factos::Codec::encode(&codec, &deposit)?],
//!     factos::AppendCondition::None).await?;
//! let transfer = over_states(Transfer, (balance("a"), balance("b")));
//! let moved = dispatch_with_query(&store, &StreamId::unique(), transfer.query(), &transfer,
//!     &codec, &60).await?;
//! assert_eq!(moved.events.len(), 1);
//! let again = dispatch_with_query(&store, &StreamId::unique(), transfer.query(), &transfer,
//!     &codec, &60).await;
//! assert!(matches!(again, Err(factos::DispatchError::Domain(e)) if e == "a holds 40"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use crate::{Decider, Query};

/// A domain event that says how it is stored: its type and tags, exactly
/// as its codec writes them. [`OverStates`] feeds an event to the parts
/// whose query matches these. Every [`JsonEvent`](crate::json::JsonEvent)
/// is one.
pub trait StoreVisible {
    /// The store-visible type.
    fn stored_type(&self) -> &str;
    /// The store-visible tags.
    fn stored_tags(&self) -> Vec<String>;
}

#[cfg(feature = "json")]
impl<T: crate::json::JsonEvent> StoreVisible for T {
    fn stored_type(&self) -> &str {
        self.event_type()
    }

    fn stored_tags(&self) -> Vec<String> {
        self.tags()
    }
}

/// One state of a decision, folded from the events of its own query only.
pub trait StatePart: Clone {
    /// The events folded.
    type Event;
    /// The events this part is folded from.
    fn query(&self) -> Query;
    /// Applies one event its query matches.
    #[must_use]
    fn evolve(self, event: &Self::Event) -> Self;
}

/// Several [`StatePart`]s side by side: tuples of up to four parts, or a
/// `Vec` of parts of one kind (a transfer to many accounts).
pub trait States: Clone {
    /// The events folded.
    type Event;
    /// Each part's query, in order.
    fn queries(&self) -> Vec<Query>;
    /// Applies `event` to the parts whose `fed` flag is set (in order).
    #[must_use]
    fn evolve_parts(self, event: &Self::Event, fed: &[bool]) -> Self;
}

impl<P: StatePart> States for Vec<P> {
    type Event = P::Event;

    fn queries(&self) -> Vec<Query> {
        self.iter().map(StatePart::query).collect()
    }

    fn evolve_parts(self, event: &Self::Event, fed: &[bool]) -> Self {
        self.into_iter()
            .zip(fed.iter().copied().chain(std::iter::repeat(false)))
            .map(|(part, fed)| if fed { part.evolve(event) } else { part })
            .collect()
    }
}

macro_rules! tuple_states {
    ($first:ident $(, $rest:ident)*; $($index:tt),+) => {
        impl<$first: StatePart $(, $rest: StatePart<Event = $first::Event>)*> States for ($first, $($rest,)*) {
            type Event = $first::Event;

            fn queries(&self) -> Vec<Query> {
                vec![$(self.$index.query()),+]
            }

            #[allow(non_snake_case)]
            fn evolve_parts(self, event: &Self::Event, fed: &[bool]) -> Self {
                let fed = |index: usize| fed.get(index).copied().unwrap_or(false);
                ($(if fed($index) { self.$index.evolve(event) } else { self.$index },)+)
            }
        }
    };
}

tuple_states!(A; 0);
tuple_states!(A, B; 0, 1);
tuple_states!(A, B, C; 0, 1, 2);
tuple_states!(A, B, C, D; 0, 1, 2, 3);

/// A decision over several states: [`over_states`] makes it a [`Decider`].
pub trait StatesDecider {
    /// The states decided on.
    type States: States<Event = Self::Event>;
    /// The request to decide on.
    type Command;
    /// The facts produced.
    type Event: StoreVisible;
    /// Why a command is refused.
    type Error;
    /// Decides on the states, each folded from its own query's events.
    /// Must be pure.
    ///
    /// # Errors
    ///
    /// The command is refused.
    fn decide(
        &self,
        states: &Self::States,
        command: &Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Error>;
}

/// A [`StatesDecider`] with the states it starts from: a [`Decider`] whose
/// context is the union of the parts' queries ([`query`](Self::query)), each
/// part fed only the events its query matches (an event several match
/// feeds each of them).
#[derive(Debug, Clone)]
pub struct OverStates<D: StatesDecider> {
    decider: D,
    initial: D::States,
    queries: Vec<Query>,
    query: Query,
}

/// Composes `decider` over its `initial` states (one value per command:
/// the states name the accounts, orders, ... the command is about). Give
/// it at least one part: the union of no queries is a query of no items,
/// which matches every event (as [`Query::from_items`] of nothing does).
pub fn over_states<D: StatesDecider>(decider: D, initial: D::States) -> OverStates<D> {
    let queries = initial.queries();
    let query = if queries.iter().any(Query::is_all) {
        Query::all()
    } else {
        Query::from_items(queries.iter().flat_map(|q| q.items().iter().cloned()))
    };
    OverStates {
        decider,
        initial,
        queries,
        query,
    }
}

impl<D: StatesDecider> OverStates<D> {
    /// The decision's context: the union of its parts' queries. Dispatch
    /// with this query.
    pub fn query(&self) -> &Query {
        &self.query
    }
}

impl<D: StatesDecider> Decider for OverStates<D> {
    type State = D::States;
    type Command = D::Command;
    type Event = D::Event;
    type Error = D::Error;

    fn initial(&self) -> D::States {
        self.initial.clone()
    }

    fn decide(&self, states: &D::States, command: &D::Command) -> Result<Vec<D::Event>, D::Error> {
        self.decider.decide(states, command)
    }

    fn evolve(&self, states: D::States, event: &D::Event) -> D::States {
        let event_type = event.stored_type();
        let tags = event.stored_tags();
        let fed: Vec<bool> = self
            .queries
            .iter()
            .map(|query| query.matches_names(event_type, &tags))
            .collect();
        states.evolve_parts(event, &fed)
    }
}
