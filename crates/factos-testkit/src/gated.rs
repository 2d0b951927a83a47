//! A store wrapper that can hold decisions at a gate, so a test can make
//! dispatches queue behind one in flight (a combined batch forms from the
//! commands that arrive while a decision runs) without relying on timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use factos::store::{DecisionError, DecisionProcess, StreamEvents};
use factos::{
    AppendCondition, AppendError, Committed, EventStore, Folded, NewEvent, Query, ReadOptions,
    ReadResult, StoreError, StoredEvent, StreamId,
};
use tokio::sync::Notify;

/// `S` with a gate in front of its query decisions: after [`Gated::hold`],
/// the next decision on a query waits until [`Gated::release`]. Counts the
/// query decisions it passed on. Clones share the gate and the count.
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    held: AtomicBool,
    /// Decisions a held gate still lets through ([`Gated::let_one_through`]).
    permits: AtomicUsize,
    opened: Notify,
    decisions: AtomicUsize,
    /// Decisions at the gate, not yet through.
    waiting: AtomicUsize,
}

impl<S> Gated<S> {
    /// `inner` with an open gate.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            gate: Arc::new(Gate::default()),
        }
    }

    /// The store behind the gate.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Holds the next query decision at the gate.
    pub fn hold(&self) {
        self.gate.held.store(true, Ordering::SeqCst);
    }

    /// Lets a held decision through (and any later one).
    pub fn release(&self) {
        self.gate.held.store(false, Ordering::SeqCst);
        self.gate.opened.notify_waiters();
    }

    /// Lets one decision through a held gate (the first to come, waiting
    /// or not) and keeps holding the others.
    pub fn let_one_through(&self) {
        self.gate.permits.fetch_add(1, Ordering::SeqCst);
        self.gate.opened.notify_waiters();
    }

    /// How many query decisions reached the store.
    pub fn decisions(&self) -> usize {
        self.gate.decisions.load(Ordering::SeqCst)
    }

    /// How many query decisions wait at the gate.
    pub fn waiting(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    async fn pass(&self) {
        self.gate.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let opened = self.gate.opened.notified();
            if !self.gate.held.load(Ordering::SeqCst) || self.take_permit() {
                break;
            }
            opened.await;
        }
        self.gate.waiting.fetch_sub(1, Ordering::SeqCst);
        self.gate.decisions.fetch_add(1, Ordering::SeqCst);
    }

    fn take_permit(&self) -> bool {
        self.gate
            .permits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1))
            .is_ok()
    }
}

impl<S: EventStore> EventStore for Gated<S> {
    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult, StoreError> {
        self.inner.read(query, options).await
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<StreamEvents, StoreError> {
        self.inner.read_stream(stream).await
    }

    async fn read_by_ids(&self, ids: &[uuid::Uuid]) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_by_ids(ids).await
    }

    async fn load_snapshot(
        &self,
        key: &factos::snapshot::SnapshotKey,
    ) -> Result<Option<factos::snapshot::Snapshot>, StoreError> {
        self.inner.load_snapshot(key).await
    }

    async fn save_snapshot(
        &self,
        key: &factos::snapshot::SnapshotKey,
        snapshot: factos::snapshot::Snapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(key, snapshot).await
    }

    async fn append(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<Committed, AppendError> {
        self.inner.append(stream, events, condition).await
    }

    async fn decide_with_query<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.pass().await;
        self.inner.decide_with_query(stream, query, process).await
    }

    async fn decide_with_condition<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        condition: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.pass().await;
        self.inner
            .decide_with_condition(stream, query, condition, process)
            .await
    }

    async fn decide_with_query_after<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.pass().await;
        self.inner
            .decide_with_query_after(stream, query, process, folded)
            .await
    }

    fn internal_retries(&self) -> u64 {
        self.inner.internal_retries()
    }

    fn can_record_effects(&self) -> bool {
        self.inner.can_record_effects()
    }

    async fn decide_on_stream<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        self.inner.decide_on_stream(stream, process).await
    }
}
