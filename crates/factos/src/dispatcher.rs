//! A [`Dispatcher`] keeps, per query, the folded decision state and the
//! settled position it is current at (its context cache), so most
//! dispatches neither read their context again nor wait for a second round
//! trip.

use std::sync::{Mutex, PoisonError};

use crate::cache::{ContextCache, DEFAULT_CACHE_ENTRIES};
use crate::dispatch::{
    CommandProcess, Dispatch, DispatchError, DispatchOptions, from_decision_error,
    from_process_error, into_dispatch,
};
use crate::effect::OutboxMessage;
use crate::event_store::Folded;
use crate::{Codec, Decider, DispatchDecider, EventStore, Query, Reactor, StreamId};

/// A command handler bound to a store, a decider and a codec, with a cache
/// of decision contexts (on by default, [`DEFAULT_CACHE_ENTRIES`] entries).
///
/// The cache assumes the decider's `evolve` depends only on the events: use
/// one dispatcher per decider value. Several dispatchers, in one process or
/// many, may work on the same store and the same queries: each keeps its
/// own cache and the append condition keeps every one of them honest.
///
/// ```
/// # use factos::*;
/// # use factos::json::{JsonCodec, JsonEvent};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # struct Sold;
/// # impl JsonEvent for Sold {
/// #     const EVENT_TYPES: &'static [&'static str] = &["Sold"];
/// #     fn event_type(&self) -> &'static str { "Sold" }
/// #     fn tags(&self) -> Vec<String> { vec!["concert:c1".into()] }
/// # }
/// # struct Capacity(usize);
/// # impl Decider for Capacity {
/// #     type State = usize; type Command = (); type Event = Sold; type Error = &'static str;
/// #     fn initial(&self) -> usize { 0 }
/// #     fn decide(&self, n: &usize, _: &()) -> Result<Vec<Sold>, &'static str> {
/// #         if *n >= self.0 { Err("sold out") } else { Ok(vec![Sold]) } }
/// #     fn evolve(&self, n: usize, _: &Sold) -> usize { n + 1 }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dispatcher = Dispatcher::new(InMemoryStore::new(), Capacity(2), JsonCodec::<Sold>::new());
/// let query = Query::item(QueryItem::parse(["Sold"], ["concert:c1"])?);
/// let stream = StreamId::new("box-office")?;
/// dispatcher.dispatch_with_query(&stream, &query, &()).await?;
/// dispatcher.dispatch_with_query(&stream, &query, &()).await?; // decided on the cached count
/// assert!(matches!(dispatcher.dispatch_with_query(&stream, &query, &()).await, Err(DispatchError::Domain("sold out"))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Dispatcher<S, D: Decider, C> {
    store: S,
    decider: D,
    codec: C,
    cache: Mutex<ContextCache<D::State>>,
}

impl<S, D, C> std::fmt::Debug for Dispatcher<S, D, C>
where
    D: Decider,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl<S, D, C> Dispatcher<S, D, C>
where
    S: EventStore,
    D: DispatchDecider,
    D::State: Clone,
    C: Codec<Event = D::Event>,
{
    /// A dispatcher with a cache of [`DEFAULT_CACHE_ENTRIES`] contexts.
    pub fn new(store: S, decider: D, codec: C) -> Self {
        Self {
            store,
            decider,
            codec,
            cache: Mutex::new(ContextCache::new(DEFAULT_CACHE_ENTRIES)),
        }
    }

    /// Sets how many contexts are cached; 0 turns the cache off.
    #[must_use]
    pub fn with_cache_entries(self, entries: usize) -> Self {
        Self {
            cache: Mutex::new(ContextCache::new(entries)),
            ..self
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ContextCache<D::State>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Like [`dispatch_with_query`](crate::dispatch_with_query), starting from
    /// the cached context of `query` when there is one.
    pub async fn dispatch_with_query(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>> {
        self.cached_dispatch(stream, query, command, DispatchOptions::default())
            .await
    }

    /// Like [`dispatch_with_query_idempotent`](crate::dispatch_with_query_idempotent)
    /// (event ids derive from `key`, so a retry after an unknown outcome
    /// appends nothing twice), starting from the cached context.
    pub async fn dispatch_with_query_idempotent(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
        key: uuid::Uuid,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>> {
        self.cached_dispatch(stream, query, command, DispatchOptions::idempotent(key))
            .await
    }

    /// Like [`dispatch_with_outbox`](crate::dispatch_with_outbox) (the
    /// reactor's effects are recorded in the dispatch's transaction),
    /// starting from the cached context.
    pub async fn dispatch_with_outbox<R>(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
        reactor: &R,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
    where
        R: Reactor<Event = D::Event, Effect = OutboxMessage> + Sync,
    {
        crate::dispatch::require_effects(&self.store)?;
        self.cached_dispatch(
            stream,
            query,
            command,
            DispatchOptions::with_effects(reactor),
        )
        .await
    }

    /// The one cached dispatch behind the three entry points.
    async fn cached_dispatch(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
        options: DispatchOptions<'_, D::Event>,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>> {
        let cached = self.cache().get(query);
        let (mut process, outcome) = if let Some((state, folded)) = cached {
            let mut process =
                CommandProcess::with_state(&self.decider, &self.codec, command, state)
                    .with_options(options);
            let outcome = self
                .store
                .decide_with_query_after(stream, query, &mut process, folded)
                .await;
            (process, outcome)
        } else {
            let mut process = CommandProcess::new(&self.decider, &self.codec, command)
                .map_err(from_process_error)?
                .with_options(options);
            let outcome = self
                .store
                .decide_with_query(stream, query, &mut process)
                .await;
            (process, outcome)
        };
        let committed = match outcome {
            Ok(committed) => committed,
            Err(e) => {
                // The state may have been fed events whose position is not known here.
                self.cache().remove(query);
                return Err(from_decision_error(e));
            }
        };
        let decided = std::mem::take(&mut process.decided);
        if committed.replayed {
            // An earlier attempt's events came back instead of this decision's:
            // the state cannot be brought up to date from them; read it afresh next time.
            self.cache().remove(query);
        } else if let Some(mut state) = process.state.take() {
            // The state the store decided on, plus this decision's own events
            // that match the query: the context as it is right after the commit.
            let mut folded = Folded {
                position: committed.context_position,
                events: committed.context_events,
            };
            for (stored, event) in committed.events.iter().zip(&decided) {
                if stored.matches(query) {
                    state = self.decider.evolve(state, event);
                    folded.events += 1;
                }
            }
            folded.position = folded.position.max(committed.position);
            self.cache().put(query, state, folded);
        }
        into_dispatch(committed, decided, &self.codec)
    }

    /// Like [`dispatch`](crate::dispatch()) (stream revision), without the cache.
    pub async fn dispatch(
        &self,
        stream: &StreamId,
        command: &D::Command,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>> {
        crate::dispatch(&self.store, stream, &self.decider, &self.codec, command).await
    }
}
