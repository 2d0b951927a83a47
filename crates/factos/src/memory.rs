//! An in-memory event store with the same semantics and the same guarantee as
//! the database backends, for unit tests, examples and prototypes.
//!
//! Every write and every decision runs under one mutex, so decisions are
//! serialized exactly like the table-lock strategy of the PostgreSQL backend:
//! a decision's context cannot change between its read and its commit. The
//! mutex is never held across an `.await`. Reads copy the matching events out.
//!
//! Cloning an [`InMemoryStore`] shares the log, so one store can be handed to
//! many tasks.
//!
//! ```
//! use factos::{AppendCondition, EventStore, EventType, InMemoryStore, NewEvent, Query, ReadOptions, StreamId};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemoryStore::new();
//! let stream = StreamId::new("s")?;
//! let event = NewEvent::new(EventType::new("Happened")?, b"{}".to_vec());
//! store.append(&stream, vec![event], AppendCondition::None).await?;
//! let read = store.read(&Query::all(), ReadOptions::default()).await?;
//! assert_eq!(read.events.len(), 1);
//! assert_eq!(read.head.map(|p| p.get()), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::event_store::{
    AppendError, Committed, ConditionFailure, DecisionError, DecisionProcess, Folded, ReadResult,
    StoreErrorKind, StreamEvents, earlier_attempt, event_id_conflict, is_same_append,
    planned_event_ids, replayed,
};
use crate::{
    AppendCondition, EventStore, NewEvent, Position, Query, ReadOptions, Revision, StoreError,
    StoreLimits, StoredEvent, StreamId,
};

#[derive(Debug, Default)]
struct Log {
    /// `events[i].position == i + 1`.
    events: Vec<StoredEvent>,
    /// Indexes into `events` per stream, in revision order.
    streams: HashMap<StreamId, Vec<usize>>,
    /// Index into `events` per event id.
    ids: HashMap<uuid::Uuid, usize>,
    /// Effects recorded with dispatches, in order.
    outbox: Vec<crate::effect::Effect>,
    /// Snapshots of decision states, per key.
    snapshots: HashMap<crate::snapshot::SnapshotKey, crate::snapshot::Snapshot>,
}

impl Log {
    /// Takes back the last `count` events (an append whose effects failed).
    fn undo(&mut self, count: usize) {
        for _ in 0..count {
            if let Some(event) = self.events.pop() {
                self.ids.remove(&event.id);
                if let Some(indexes) = self.streams.get_mut(&event.stream) {
                    indexes.pop();
                    if indexes.is_empty() {
                        self.streams.remove(&event.stream);
                    }
                }
            }
        }
    }

    fn head(&self) -> Option<Position> {
        self.events.last().map(|e| e.position)
    }

    fn revision(&self, stream: &StreamId) -> Revision {
        match self.streams.get(stream).map(Vec::len) {
            None | Some(0) => Revision::NoEvents,
            Some(n) => Revision::Current(n as u64 - 1),
        }
    }

    fn any_match_after(&self, query: &Query, after: Option<Position>) -> bool {
        let start = after.map_or(0, |p| usize::try_from(p.get()).unwrap_or(usize::MAX));
        self.events.iter().skip(start).any(|e| e.matches(query))
    }

    fn check(&self, condition: &AppendCondition) -> Result<(), ConditionFailure> {
        match condition {
            AppendCondition::FailIfEventsMatch { query, after }
                if self.any_match_after(query, *after) =>
            {
                Err(ConditionFailure::EventsMatched {
                    query: query.clone(),
                    after: *after,
                })
            }
            _ => Ok(()),
        }
    }

    /// The stored events carrying any of these ids, in the order of `events`
    /// (ids not stored are skipped); empty when none is stored.
    fn stored_with_ids(&self, events: &[NewEvent]) -> Vec<StoredEvent> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        self.stored_with_id_list(&ids)
    }

    /// The stored events carrying these ids, in their order (ids not stored
    /// are skipped).
    fn stored_with_id_list(&self, ids: &[uuid::Uuid]) -> Vec<StoredEvent> {
        ids.iter()
            .filter_map(|id| self.ids.get(id).map(|&i| self.events[i].clone()))
            .collect()
    }

    fn append(
        &mut self,
        stream: &StreamId,
        events: Vec<NewEvent>,
    ) -> Result<Committed, StoreError> {
        let before = self.revision(stream);
        let recorded_at = std::time::SystemTime::now();
        let mut committed = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let index = self.events.len();
            let position = Position::new(index as u64 + 1)
                .ok_or_else(|| StoreError::new(StoreErrorKind::Rejected, "the log is full"))?;
            let stored = StoredEvent {
                position,
                stream: stream.clone(),
                revision: before.next() + offset as u64,
                id: event.id,
                event_type: event.event_type,
                version: event.version,
                tags: event.tags,
                metadata: event.metadata,
                data: event.data,
                recorded_at,
            };
            committed.push(stored.clone());
            self.ids.insert(stored.id, index);
            self.events.push(stored);
            self.streams.entry(stream.clone()).or_default().push(index);
        }
        Ok(Committed {
            stream: stream.clone(),
            current_revision: before.advanced_by(committed.len()),
            position: committed.last().map(|e| e.position),
            events: committed,
            context_position: None,
            context_events: 0,
            replayed: false,
            other_revisions: Vec::new(),
        })
    }

    /// Appends a decision's events, each to its stream (`stream` unless the
    /// process routes it to one of its other streams), in order: one commit
    /// whose events are all of them, with the other streams' revisions.
    fn append_routed<P: DecisionProcess + ?Sized>(
        &mut self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        process: &P,
    ) -> Result<Committed, StoreError> {
        if process.other_streams().is_empty() {
            return self.append(stream, events);
        }
        let mut committed = self.append(stream, Vec::new())?;
        for (index, event) in events.into_iter().enumerate() {
            let to = process.event_stream(index).unwrap_or(stream);
            let one = self.append(to, vec![event])?;
            if to == stream {
                committed.current_revision = one.current_revision;
            }
            committed.position = one.position;
            committed.events.extend(one.events);
        }
        committed.other_revisions = process
            .other_streams()
            .iter()
            .map(|other| (other.clone(), self.revision(other)))
            .collect();
        Ok(committed)
    }
}

/// An in-memory [`EventStore`] with the same semantics and guarantee as the
/// database backends: every write and decision runs under one mutex (never
/// held across an `.await`); clones share the log.
///
/// ```
/// # use factos::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::with_limits(StoreLimits::default().with_max_payload_bytes(4));
/// let too_big = NewEvent::new(EventType::new("Big")?, vec![0; 5]);
/// let refused = store.append(&StreamId::new("s")?, vec![too_big], AppendCondition::None).await;
/// assert!(matches!(refused, Err(AppendError::Invalid(ValidationError::PayloadTooLarge { .. }))));
/// assert!(store.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    log: Arc<Mutex<Log>>,
    limits: StoreLimits,
}

impl InMemoryStore {
    /// An empty store with default [`StoreLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with these limits.
    pub fn with_limits(limits: StoreLimits) -> Self {
        Self {
            log: Arc::default(),
            limits,
        }
    }

    /// Every effect recorded by [`dispatch_with_outbox`](crate::dispatch_with_outbox),
    /// in order (the in-memory store records them; delivering them is up to
    /// the test using it).
    pub fn outbox(&self) -> Vec<crate::effect::Effect> {
        self.lock().outbox.clone()
    }

    /// How many events the store holds.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every stored event, in position order.
    pub fn all_events(&self) -> Vec<StoredEvent> {
        self.lock().events.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // The log is only changed after every check passed and user code ran, so
        // a panic elsewhere while the lock was held cannot leave it half-written.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_now(&self, query: &Query, options: ReadOptions) -> ReadResult {
        let log = self.lock();
        let limit = options.limit.unwrap_or(usize::MAX);
        let in_range = |e: &&StoredEvent| match (options.from, options.backwards) {
            (None, _) => true,
            (Some(from), false) => e.position >= from,
            (Some(from), true) => e.position <= from,
        };
        let matching = |e: &&StoredEvent| e.matches(query);
        let events: Vec<StoredEvent> = if options.backwards {
            log.events
                .iter()
                .rev()
                .filter(in_range)
                .filter(matching)
                .take(limit)
                .cloned()
                .collect()
        } else {
            log.events
                .iter()
                .filter(in_range)
                .filter(matching)
                .take(limit)
                .cloned()
                .collect()
        };
        ReadResult {
            events,
            head: log.head(),
        }
    }

    fn decide_locked<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        scope: Scope<'_>,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.limits.check_context(folded.events)?;
        let mut log = self.lock();
        // A retry of a command that committed replays it without deciding
        // (all planned ids are derived only when the first is stored).
        if let Some(first) = process.planned_event_id(0)
            && log.ids.contains_key(&first)
        {
            let planned = planned_event_ids(process, self.limits.max_events_per_append);
            if let Some(stored) =
                earlier_attempt(stream, &planned, log.stored_with_id_list(&planned))?
            {
                return Ok(replayed(stream, stored, Folded::default()));
            }
        }
        let mut context = folded;
        let skip = folded
            .position
            .map_or(0, |p| usize::try_from(p.get()).unwrap_or(usize::MAX));
        for event in log.events.iter().skip(skip) {
            let relevant = match &scope {
                Scope::Query(query) => event.matches(query),
                Scope::Stream => &event.stream == stream,
            };
            if relevant {
                context.events += 1;
                self.limits.check_context(context.events)?;
                process.evolve(event).map_err(DecisionError::Process)?;
                context.position = Some(event.position);
            }
        }
        // Under the lock the whole log is settled: the context is current up
        // to the head, which is where a cached state of it may resume.
        let fed_up_to = context.position;
        context.position = context.position.max(log.head());
        let events = process.decide().map_err(DecisionError::Process)?;
        self.limits.check(&events).map_err(DecisionError::Invalid)?;
        let stored = log.stored_with_ids(&events);
        if !stored.is_empty() {
            if stored.len() == events.len() && process.is_replay_of(stream, &events, &stored) {
                return Ok(replayed(stream, stored, context));
            }
            return Err(DecisionError::Store(event_id_conflict(&events, &stored)));
        }
        // Under the lock nothing can have changed since the read; the check is
        // kept so the in-memory store fails exactly where a database would.
        if let Scope::Query(query) = scope {
            let condition = AppendCondition::fail_if_events_match(query.clone(), fed_up_to);
            log.check(&condition)
                .map_err(DecisionError::ConditionFailed)?;
        }
        let mut committed = log.append_routed(stream, events, process)?;
        committed.context_position = context.position;
        committed.context_events = context.events;
        if process.has_effects() {
            // Still under the lock: the events and their effects become
            // visible together, or (the reactor failed) neither does.
            match process.effects(&committed.events) {
                Ok(effects) => log.outbox.extend(effects),
                Err(e) => {
                    log.undo(committed.events.len());
                    return Err(DecisionError::Process(e));
                }
            }
        }
        Ok(committed)
    }
}

/// What a decision's context is: the events matching a query, or one stream's.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Query(&'a Query),
    Stream,
}

impl EventStore for InMemoryStore {
    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult, StoreError> {
        Ok(self.read_now(query, options))
    }

    fn can_record_effects(&self) -> bool {
        true
    }

    async fn load_snapshot(
        &self,
        key: &crate::snapshot::SnapshotKey,
    ) -> Result<Option<crate::snapshot::Snapshot>, StoreError> {
        Ok(self.lock().snapshots.get(key).cloned())
    }

    async fn save_snapshot(
        &self,
        key: &crate::snapshot::SnapshotKey,
        snapshot: crate::snapshot::Snapshot,
    ) -> Result<(), StoreError> {
        if snapshot.state.len() > crate::snapshot::MAX_SNAPSHOT_BYTES {
            return Err(crate::event_store::snapshot_too_large(snapshot.state.len()));
        }
        let mut log = self.lock();
        let kept = log
            .snapshots
            .entry(key.clone())
            .or_insert_with(|| snapshot.clone());
        if kept.position < snapshot.position {
            *kept = snapshot;
        }
        Ok(())
    }

    async fn read_by_ids(&self, ids: &[uuid::Uuid]) -> Result<Vec<StoredEvent>, StoreError> {
        if ids.len() > crate::event_store::MAX_IDS_PER_READ {
            return Err(crate::event_store::too_many_ids(ids.len()));
        }
        Ok(self.lock().stored_with_id_list(ids))
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<StreamEvents, StoreError> {
        let log = self.lock();
        let events = log
            .streams
            .get(stream)
            .map(|indexes| indexes.iter().map(|&i| log.events[i].clone()).collect())
            .unwrap_or_default();
        Ok(StreamEvents {
            stream: stream.clone(),
            events,
            revision: log.revision(stream),
        })
    }

    async fn append(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<Committed, AppendError> {
        self.limits.check(&events).map_err(AppendError::Invalid)?;
        let mut log = self.lock();
        let stored = log.stored_with_ids(&events);
        if !stored.is_empty() {
            if is_same_append(stream, &events, &stored) {
                return Ok(replayed(stream, stored, Folded::default()));
            }
            return Err(AppendError::Store(event_id_conflict(&events, &stored)));
        }
        log.check(&condition)
            .map_err(AppendError::ConditionFailed)?;
        Ok(log.append(stream, events)?)
    }

    async fn decide_with_query<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.decide_locked(stream, Scope::Query(query), process, Folded::default())
    }

    async fn decide_with_query_after<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.decide_locked(stream, Scope::Query(query), process, folded)
    }

    async fn decide_on_stream<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.decide_locked(stream, Scope::Stream, process, Folded::default())
    }
}
