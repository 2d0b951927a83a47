//! A [`Dispatcher`] keeps, per query, the folded decision state and the
//! settled position it is current at (its context cache), so most
//! dispatches neither read their context again nor wait for a second round
//! trip.

mod batch;
mod lanes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::cache::{ContextCache, DEFAULT_CACHE_ENTRIES};
use crate::dispatch::{
    CommandProcess, Dispatch, DispatchError, DispatchOptions, DynReactor, from_decision_error,
    from_process_error, guarded, into_dispatch,
};
use crate::effect::OutboxMessage;
use crate::event_store::{DecisionError, Folded};
use crate::snapshot::{Snapshot, SnapshotKey, SnapshotPolicy, SnapshotStats};
use crate::{
    Codec, Decider, DispatchDecider, EventStore, Query, Reactor, StoreError, StoreErrorKind,
    StreamId,
};

use batch::{BatchCommand, BatchProcess, Outcome, split_commit};
use lanes::{Joined, Lanes, Leading, Reply};

/// Default most commands one combined batch holds ([`Dispatcher::with_combining`]).
pub const DEFAULT_BATCH_COMMANDS: usize = 64;

/// Where a decision starts: a state and the position it is folded to
/// (`None`: the decider's initial state, folded from nothing).
type Start<D> = (<D as Decider>::State, Option<Folded>);

/// What one dispatch returns.
type Outcomes<D> = Result<Dispatch<<D as Decider>::Event>, DispatchError<<D as Decider>::Error>>;

/// The commands waiting on one boundary: a lane per query.
type BoundaryLanes<D> = Lanes<Query, Queued<D>, Outcomes<D>>;

/// A reactor a queued outbox dispatch shares with the batch that decides it.
type SharedReactor<E> = Arc<dyn Reactor<Event = E, Effect = OutboxMessage> + Send + Sync>;

/// A command queued on its boundary, with its stream and what it adds to
/// its decision: an idempotent dispatch's key, an outbox dispatch's reactor.
struct Queued<D: Decider> {
    stream: StreamId,
    command: D::Command,
    key: Option<uuid::Uuid>,
    reactor: Option<SharedReactor<D::Event>>,
}

impl<D: Decider> Queued<D> {
    /// The command as its batch decides it.
    fn in_batch(&self) -> BatchCommand<'_, D::Command, D::Event> {
        BatchCommand {
            stream: &self.stream,
            command: &self.command,
            options: DispatchOptions {
                idempotency_key: self.key,
                reactor: self
                    .reactor
                    .as_deref()
                    .map(|r| -> &DynReactor<'_, D::Event> { r }),
                condition: None,
            },
        }
    }
}

/// Group commit of dispatches on one boundary ([`Dispatcher::with_combining`]).
struct Combining<D: Decider> {
    lanes: BoundaryLanes<D>,
    /// Commands are cloned into a lane (`D::Command: Clone`, asked only by
    /// `with_combining`).
    clone: fn(&D::Command) -> D::Command,
    /// Batches of two or more commands decided, and the commands they held.
    batches: AtomicU64,
    batched_commands: AtomicU64,
}

/// What a combining [`Dispatcher`] has batched so far
/// ([`Dispatcher::combined_batches`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CombinedBatches {
    /// Decisions made for two or more commands together.
    pub batches: u64,
    /// The commands those decisions held.
    pub commands: u64,
}

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
    combining: Option<Combining<D>>,
    snapshots: Option<Snapshots<D::State>>,
}

/// Persistent snapshots of cached states ([`Dispatcher::with_snapshots`]).
struct Snapshots<S> {
    policy: SnapshotPolicy,
    encode: fn(&S) -> Result<Vec<u8>, String>,
    decode: fn(&[u8]) -> Result<S, String>,
    loaded: AtomicU64,
    ignored: AtomicU64,
    saved: AtomicU64,
    failed: AtomicU64,
}

impl<S> Snapshots<S> {
    fn key(&self, query: &Query) -> SnapshotKey {
        SnapshotKey::new(&self.policy.decider, self.policy.state_version, query)
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
            combining: None,
            snapshots: None,
        }
    }

    /// Turns on group commit: concurrent [`dispatch_with_query`](Self::dispatch_with_query)
    /// calls on the same query (whatever their streams) form batches of at most
    /// `max_commands` (1 to [`MAX_IDS_PER_READ`](crate::store::MAX_IDS_PER_READ);
    /// [`DEFAULT_BATCH_COMMANDS`] is a good start).
    ///
    /// There is no timer: a command that finds no batch of its boundary in
    /// flight is decided at once, alone; commands that arrive while one is
    /// in flight queue and form the next batch. The batch takes the
    /// boundary's context once and decides its commands in arrival order,
    /// command k on the context plus the events of the commands accepted
    /// before it, then appends all accepted events in one append under the
    /// boundary's condition and one commit, each command's events to its own
    /// stream. Every caller gets its own
    /// outcome: its own events, revision and position, or its own refusal,
    /// encode error or caught panic (which leaves only its command out). A
    /// store failure fails every command of the batch with the same kind
    /// (and retry-safety); a failure of the batch as a whole that is not the
    /// store's (an undecodable context event, a panic in `evolve`, a batch
    /// over the store's limits) sends each command alone. Idempotent
    /// dispatches combine too, each keeping its key: a keyed command whose
    /// earlier attempt committed is replayed alone, not decided again.
    /// Outbox dispatches combine too, each command's effects recorded by its
    /// own reactor in the batch's transaction. Commands (and outbox
    /// reactors) are cloned into the queue.
    #[must_use]
    pub fn with_combining(self, max_commands: usize) -> Self
    where
        D::Command: Clone,
    {
        Self {
            combining: Some(Combining {
                // A batch looks its keyed commands up in one read by id.
                lanes: Lanes::new(max_commands.clamp(1, crate::event_store::MAX_IDS_PER_READ)),
                clone: <D::Command as Clone>::clone,
                batches: AtomicU64::new(0),
                batched_commands: AtomicU64::new(0),
            }),
            ..self
        }
    }

    /// The batches of two or more commands decided so far (all zero without
    /// [combining](Self::with_combining)).
    pub fn combined_batches(&self) -> CombinedBatches {
        self.combining
            .as_ref()
            .map_or_else(CombinedBatches::default, |c| CombinedBatches {
                batches: c.batches.load(Ordering::Relaxed),
                commands: c.batched_commands.load(Ordering::Relaxed),
            })
    }

    /// Turns on persistent snapshots ([`crate::snapshot`]): on a cache miss
    /// the dispatcher starts from the snapshot the store keeps for the
    /// query (trusted exactly like a cached state: the condition after its
    /// position proves it current), and after a commit it writes one when
    /// `policy` says so (the store may write it off the dispatch's path). A
    /// snapshot whose state fails to decode is ignored (counted in
    /// [`snapshot_stats`](Self::snapshot_stats)). The state is stored as
    /// JSON.
    #[cfg(feature = "json")]
    #[must_use]
    pub fn with_snapshots(self, policy: SnapshotPolicy) -> Self
    where
        D::State: serde::Serialize + serde::de::DeserializeOwned,
    {
        fn encode<S: serde::Serialize>(state: &S) -> Result<Vec<u8>, String> {
            serde_json::to_vec(state).map_err(|e| e.to_string())
        }
        fn decode<S: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<S, String> {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())
        }
        Self {
            snapshots: Some(Snapshots {
                policy,
                encode: encode::<D::State>,
                decode: decode::<D::State>,
                loaded: AtomicU64::new(0),
                ignored: AtomicU64::new(0),
                saved: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
            ..self
        }
    }

    /// What the dispatcher did with snapshots so far (all zero without
    /// [snapshots](Self::with_snapshots)).
    pub fn snapshot_stats(&self) -> SnapshotStats {
        let Some(s) = &self.snapshots else {
            return SnapshotStats::default();
        };
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SnapshotStats {
            loaded: get(&s.loaded),
            ignored: get(&s.ignored),
            saved: get(&s.saved),
            failed: get(&s.failed),
        }
    }

    /// Writes a snapshot of the cached state of `query` now; `false` when
    /// nothing is cached for it or snapshots are off.
    ///
    /// # Errors
    ///
    /// The state cannot be encoded, or the store refused or failed to keep it.
    pub async fn save_snapshot(&self, query: &Query) -> Result<bool, StoreError> {
        if self.snapshots.is_none() {
            return Ok(false);
        }
        let cached = self.cache().get(query);
        let Some((state, folded)) = cached else {
            return Ok(false);
        };
        self.write_snapshot(query, &state, folded).await
    }

    /// Writes `state`, folded as `folded`, as `query`'s snapshot.
    async fn write_snapshot(
        &self,
        query: &Query,
        state: &D::State,
        folded: Folded,
    ) -> Result<bool, StoreError> {
        let (Some(snapshots), Some(position)) = (&self.snapshots, folded.position) else {
            return Ok(false);
        };
        let written = match guarded::<_, D::Error>("snapshot encode", || (snapshots.encode)(state))
        {
            Ok(Ok(bytes)) => {
                let snapshot = Snapshot {
                    position,
                    events: folded.events,
                    state: bytes,
                };
                self.store
                    .save_snapshot(&snapshots.key(query), snapshot)
                    .await
            }
            Ok(Err(e)) => Err(StoreError::new(
                StoreErrorKind::Other,
                format!("cannot encode the state for a snapshot: {e}"),
            )),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Other,
                "encoding the state for a snapshot panicked",
            )),
        };
        match written {
            Ok(()) => {
                Snapshots::<D::State>::count(&snapshots.saved);
                Ok(true)
            }
            Err(e) => {
                Snapshots::<D::State>::count(&snapshots.failed);
                Err(e)
            }
        }
    }

    /// Caches `state` as `query`'s context, folded as `folded` (from
    /// `before` events before this commit), writing a snapshot first when
    /// the policy says so (a failed write is counted, not the dispatch's).
    async fn keep(&self, query: &Query, state: D::State, folded: Folded, before: usize) {
        if let Some(snapshots) = &self.snapshots
            && snapshots.policy.due(before, folded.events)
        {
            let _ = self.write_snapshot(query, &state, folded).await;
        }
        self.cache().put(query, state, folded);
    }

    /// The state of `query`'s snapshot and what it is folded from, when
    /// snapshots are on and the store keeps a decodable one.
    async fn snapshot_start(&self, query: &Query) -> Option<Start<D>> {
        let snapshots = self.snapshots.as_ref()?;
        let loaded = self.store.load_snapshot(&snapshots.key(query)).await;
        let Ok(found) = loaded else {
            Snapshots::<D::State>::count(&snapshots.ignored);
            return None;
        };
        let snapshot = found?;
        let decoded =
            guarded::<_, D::Error>("snapshot decode", || (snapshots.decode)(&snapshot.state));
        let Ok(Ok(state)) = decoded else {
            Snapshots::<D::State>::count(&snapshots.ignored);
            return None;
        };
        Snapshots::<D::State>::count(&snapshots.loaded);
        let folded = Folded {
            position: Some(snapshot.position),
            events: snapshot.events,
        };
        Some((state, Some(folded)))
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
    /// the cached context of `query` when there is one. With
    /// [combining](Self::with_combining) on, the command may be decided in a
    /// batch with others on the same query (whatever their streams).
    pub async fn dispatch_with_query(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>> {
        match &self.combining {
            Some(combining) => {
                let own = BatchCommand {
                    stream,
                    command,
                    options: DispatchOptions::default(),
                };
                self.combined_dispatch(combining, query, own, || None).await
            }
            None => {
                self.cached_dispatch(stream, query, command, DispatchOptions::default())
                    .await
            }
        }
    }

    /// A dispatch through its boundary's lane: leads a batch, or waits for
    /// an outcome or for the lead of the next batch.
    /// `shared` gives the reactor of `own`'s options as the queue keeps it.
    async fn combined_dispatch(
        &self,
        combining: &Combining<D>,
        query: &Query,
        own: BatchCommand<'_, D::Command, D::Event>,
        shared: impl FnOnce() -> Option<SharedReactor<D::Event>>,
    ) -> Outcomes<D> {
        let joined = combining.lanes.join(query, || Queued {
            stream: own.stream.clone(),
            command: (combining.clone)(own.command),
            key: own.options.idempotency_key,
            reactor: shared(),
        });
        let others = match joined {
            Joined::Lead => Vec::new(),
            Joined::Wait(mut waiting) => match waiting.reply().await {
                Ok(Reply::Done(outcome)) => return outcome,
                Ok(Reply::Lead(others)) => others,
                // The batch's leader was dropped (its caller gave up) while
                // this command was in its batch.
                Err(_) => {
                    return Err(DispatchError::Store(StoreError::new(
                        StoreErrorKind::CommitOutcomeUnknown,
                        "the dispatch leading this command's batch was dropped before it finished",
                    )));
                }
            },
        };
        let leading = Leading::new(&combining.lanes, query.clone());
        if !others.is_empty() {
            combining.batches.fetch_add(1, Ordering::Relaxed);
            let commands = u64::try_from(others.len() + 1).unwrap_or(u64::MAX);
            combining
                .batched_commands
                .fetch_add(commands, Ordering::Relaxed);
        }
        let commands: Vec<BatchCommand<'_, D::Command, D::Event>> = std::iter::once(own)
            .chain(others.iter().map(|waiter| waiter.command.in_batch()))
            .collect();
        let mut outcomes = self.decide_batch(query, commands).await.into_iter();
        let own = outcomes
            .next()
            .unwrap_or_else(|| Err(DispatchError::Store(lost_outcome())));
        for waiter in others {
            waiter.finish(
                outcomes
                    .next()
                    .unwrap_or_else(|| Err(DispatchError::Store(lost_outcome()))),
            );
        }
        drop(leading);
        own
    }

    /// Decides `commands` on `query`'s context, each with its own outcome,
    /// in order. A keyed command whose earlier attempt committed is
    /// replayed alone (as an idempotent dispatch of its own would be, not
    /// decided again on a context that now holds its events); the others
    /// are decided together.
    async fn decide_batch(
        &self,
        query: &Query,
        commands: Vec<BatchCommand<'_, D::Command, D::Event>>,
    ) -> Vec<Outcomes<D>> {
        let committed_before = match self.committed_before(&commands).await {
            Ok(found) => found,
            Err(e) => return commands.iter().map(|_| Err(store_error(&e))).collect(),
        };
        if !committed_before.contains(&true) {
            return self.decide_together(query, commands).await;
        }
        let (replays, fresh): (Vec<_>, Vec<_>) = commands
            .into_iter()
            .zip(committed_before)
            .enumerate()
            .partition(|(_, (_, committed))| *committed);
        let mut outcomes: Vec<Option<Outcomes<D>>> = Vec::new();
        outcomes.resize_with(replays.len() + fresh.len(), || None);
        for (index, (command, _)) in replays {
            outcomes[index] = Some(self.alone(query, command).await);
        }
        let (indexes, fresh): (Vec<usize>, Vec<_>) = fresh
            .into_iter()
            .map(|(index, (command, _))| (index, command))
            .unzip();
        for (index, outcome) in indexes
            .into_iter()
            .zip(self.decide_together(query, fresh).await)
        {
            outcomes[index] = Some(outcome);
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| Err(DispatchError::Store(lost_outcome()))))
            .collect()
    }

    /// For each command, whether it is keyed and its earlier attempt
    /// committed (its first planned event is stored): one lookup by id for
    /// the whole batch, none when no command is keyed. An attempt that
    /// commits after this lookup makes the batch's append collide on its
    /// ids, and the batch then sends each command alone.
    async fn committed_before(
        &self,
        commands: &[BatchCommand<'_, D::Command, D::Event>],
    ) -> Result<Vec<bool>, StoreError> {
        let firsts: Vec<Option<uuid::Uuid>> = commands
            .iter()
            .map(|c| c.options.idempotency_key.map(|key| crate::event_id(key, 0)))
            .collect();
        let ids: Vec<uuid::Uuid> = firsts.iter().flatten().copied().collect();
        if ids.is_empty() {
            return Ok(vec![false; commands.len()]);
        }
        let stored = self.store.read_by_ids(&ids).await?;
        Ok(firsts
            .iter()
            .map(|first| first.is_some_and(|id| stored.iter().any(|e| e.id == id)))
            .collect())
    }

    /// Decides `commands` on `query`'s context in one decision and one
    /// append: each command's own outcome, in order. One command alone is
    /// an ordinary cached dispatch.
    async fn decide_together(
        &self,
        query: &Query,
        commands: Vec<BatchCommand<'_, D::Command, D::Event>>,
    ) -> Vec<Outcomes<D>> {
        let Some(&first) = commands.first() else {
            return Vec::new();
        };
        crate::metrics::batch(commands.len());
        if commands.len() == 1 {
            return vec![self.alone(query, first).await];
        }
        // The initial state panicked: each command alone reports it as its own.
        let Ok((state, folded)) = self.starting_state(query).await else {
            return self.each_alone(query, &commands).await;
        };
        let mut process =
            BatchProcess::new(&self.decider, &self.codec, query, commands.clone(), state);
        let outcome = self
            .decide_from(first.stream, query, &mut process, folded)
            .await;
        let committed = match outcome {
            Ok(committed) => committed,
            Err(e) => {
                self.cache().remove(query);
                return match e {
                    // An event id of the batch is stored: a keyed command's
                    // earlier attempt committed meanwhile (or a codec reuses
                    // ids); nothing was written, and each command alone
                    // replays or gets its own conflict.
                    DecisionError::Store(e) if e.kind() == StoreErrorKind::EventIdConflict => {
                        self.each_alone(query, &commands).await
                    }
                    DecisionError::Store(e) => {
                        commands.iter().map(|_| Err(store_error(&e))).collect()
                    }
                    DecisionError::ConditionFailed(c) => commands
                        .iter()
                        .map(|_| Err(DispatchError::AppendConditionFailed(c.clone())))
                        .collect(),
                    // The context cannot be decoded, the state was lost to a
                    // panic, or the batch breaks the store's limits: each
                    // command alone gets its own answer.
                    DecisionError::Process(_) | DecisionError::Invalid(_) => {
                        self.each_alone(query, &commands).await
                    }
                };
            }
        };
        self.commit_batch(query, &commands, &mut process, &committed)
            .await
    }

    /// The cached state of `query` and what it is folded from; else its
    /// snapshot's, when snapshots are on; else the decider's initial state
    /// (no position).
    async fn starting_state(
        &self,
        query: &Query,
    ) -> Result<Start<D>, crate::dispatch::ProcessError<D::Error>> {
        let cached = self.cache().get(query);
        if let Some((state, folded)) = cached {
            return Ok((state, Some(folded)));
        }
        if let Some(start) = self.snapshot_start(query).await {
            return Ok(start);
        }
        Ok((
            guarded("decider initial state", || self.decider.initial())?,
            None,
        ))
    }

    /// Runs `process` on `query`'s context: from the cached position when
    /// the state was folded up to one, else from the start.
    async fn decide_from<P: crate::event_store::DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Option<Folded>,
    ) -> Result<crate::Committed, DecisionError<P::Error>> {
        match folded {
            Some(folded) => {
                self.store
                    .decide_with_query_after(stream, query, process, folded)
                    .await
            }
            None => self.store.decide_with_query(stream, query, process).await,
        }
    }

    /// Each command's outcome from a batch's commit, and the cache brought
    /// to the context after it.
    async fn commit_batch(
        &self,
        query: &Query,
        commands: &[BatchCommand<'_, D::Command, D::Event>],
        process: &mut BatchProcess<'_, D, C>,
        committed: &crate::Committed,
    ) -> Vec<Outcomes<D>> {
        let counts: Vec<usize> = process
            .outcomes
            .iter()
            .map(|outcome| match outcome {
                Outcome::Accepted(events) => events.len(),
                Outcome::Refused(_) => 0,
            })
            .collect();
        let streams: Vec<&StreamId> = commands.iter().map(|c| c.stream).collect();
        let Some(commits) = split_commit(committed, &streams, &counts) else {
            self.cache().remove(query);
            return counts
                .iter()
                .map(|_| Err(DispatchError::Store(lost_outcome())))
                .collect();
        };
        if committed.replayed {
            self.cache().remove(query);
        } else if let Some((state, folded)) = process.context_after(committed) {
            self.keep(query, state, folded, committed.context_events)
                .await;
        }
        std::mem::take(&mut process.outcomes)
            .into_iter()
            .zip(commits)
            .map(|(outcome, commit)| match outcome {
                Outcome::Accepted(decided) => into_dispatch(commit, decided, &self.codec),
                Outcome::Refused(e) => Err(from_process_error(e)),
            })
            .collect()
    }

    /// Every command of a batch that failed as a whole, dispatched alone in
    /// order, so each gets its own answer (nothing of the batch was written).
    async fn each_alone(
        &self,
        query: &Query,
        commands: &[BatchCommand<'_, D::Command, D::Event>],
    ) -> Vec<Outcomes<D>> {
        let mut outcomes = Vec::with_capacity(commands.len());
        for &command in commands {
            outcomes.push(self.alone(query, command).await);
        }
        outcomes
    }

    /// One command of a batch dispatched on its own (with its key and
    /// reactor, if any).
    async fn alone(
        &self,
        query: &Query,
        command: BatchCommand<'_, D::Command, D::Event>,
    ) -> Outcomes<D> {
        self.cached_dispatch(command.stream, query, command.command, command.options)
            .await
    }

    /// Like [`dispatch_with_query_idempotent`](crate::dispatch_with_query_idempotent)
    /// (event ids derive from `key`, so a retry after an unknown outcome
    /// appends nothing twice), starting from the cached context. With
    /// [combining](Self::with_combining) on, the command may be decided in a
    /// batch with others on the same query; a retry whose first attempt
    /// committed is replayed, as without combining.
    pub async fn dispatch_with_query_idempotent(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
        key: uuid::Uuid,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>> {
        match &self.combining {
            Some(combining) => {
                let own = BatchCommand {
                    stream,
                    command,
                    options: DispatchOptions::idempotent(key),
                };
                self.combined_dispatch(combining, query, own, || None).await
            }
            None => {
                self.cached_dispatch(stream, query, command, DispatchOptions::idempotent(key))
                    .await
            }
        }
    }

    /// Like [`dispatch_with_outbox`](crate::dispatch_with_outbox) (the
    /// reactor's effects are recorded in the dispatch's transaction),
    /// starting from the cached context. With [combining](Self::with_combining)
    /// on, the command may be decided in a batch with others on the same
    /// query, its effects recorded by its own reactor in the batch's
    /// transaction; a command that waits for a batch clones its reactor into
    /// the queue (hence `Clone + Send + 'static`).
    pub async fn dispatch_with_outbox<R>(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
        reactor: &R,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
    where
        R: Reactor<Event = D::Event, Effect = OutboxMessage> + Clone + Send + Sync + 'static,
    {
        crate::dispatch::require_effects(&self.store)?;
        let options = DispatchOptions::with_effects(reactor);
        match &self.combining {
            Some(combining) => {
                let own = BatchCommand {
                    stream,
                    command,
                    options,
                };
                let shared =
                    || -> Option<SharedReactor<D::Event>> { Some(Arc::new(reactor.clone())) };
                self.combined_dispatch(combining, query, own, shared).await
            }
            None => self.cached_dispatch(stream, query, command, options).await,
        }
    }

    /// The one cached dispatch behind the three entry points. A keyed
    /// command whose earlier attempt committed while it was decided is
    /// dispatched once more, and the store then replays that attempt.
    async fn cached_dispatch(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
        options: DispatchOptions<'_, D::Event>,
    ) -> Result<Dispatch<D::Event>, DispatchError<D::Error>> {
        for _ in 0..2 {
            if let Some(dispatch) = self.cached_attempt(stream, query, command, options).await? {
                return Ok(dispatch);
            }
        }
        Err(from_decision_error(DecisionError::Process(
            crate::dispatch::ProcessError::EarlierAttempt,
        )))
    }

    /// One attempt of [`cached_dispatch`](Self::cached_dispatch); `None`:
    /// a keyed command's earlier attempt was fed, try again.
    async fn cached_attempt(
        &self,
        stream: &StreamId,
        query: &Query,
        command: &D::Command,
        options: DispatchOptions<'_, D::Event>,
    ) -> Result<Option<Dispatch<D::Event>>, DispatchError<D::Error>> {
        let (state, folded) = self
            .starting_state(query)
            .await
            .map_err(from_process_error)?;
        let mut process = CommandProcess::with_state(&self.decider, &self.codec, command, state)
            .with_options(options);
        let outcome = self.decide_from(stream, query, &mut process, folded).await;
        let committed = match outcome {
            Ok(committed) => committed,
            Err(e) => {
                // The state may have been fed events whose position is not known here.
                self.cache().remove(query);
                if matches!(
                    e,
                    DecisionError::Process(crate::dispatch::ProcessError::EarlierAttempt)
                ) {
                    return Ok(None);
                }
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
            self.keep(query, state, folded, committed.context_events)
                .await;
        }
        into_dispatch(committed, decided, &self.codec).map(Some)
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

/// A store failure of a whole batch, as each of its commands reports it.
fn store_error<E>(e: &StoreError) -> DispatchError<E> {
    DispatchError::Store(StoreError::new(e.kind(), e.message()))
}

/// A command's outcome that a batch lost track of (a bug, reported rather
/// than hidden): whether it committed is unknown.
fn lost_outcome() -> StoreError {
    StoreError::new(
        StoreErrorKind::CommitOutcomeUnknown,
        "a combined batch did not account for this command's outcome",
    )
}
