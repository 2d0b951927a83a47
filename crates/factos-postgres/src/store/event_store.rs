//! The [`EventStore`] surface of [`PostgresStore`]: which path each call
//! takes, and its tracing span.

use factos::store::{DecisionError, DecisionProcess, StreamEvents};
use factos::{
    AppendCondition, AppendError, Committed, EventStore, Folded, NewEvent, Query, ReadOptions,
    ReadResult, StoreError, StoredEvent, StreamId,
};
use tracing::Instrument;

use crate::options::LockingStrategy;
use crate::store::PostgresStore;
use crate::store::guard::Boundary;

/// Records how a dispatch or append ended on its span.
pub(crate) fn record_outcome<T>(
    span: &tracing::Span,
    outcome: &Result<Committed, T>,
    describe: impl Fn(&T) -> &'static str,
) {
    match outcome {
        Ok(committed) => {
            span.record("outcome", "committed");
            span.record("events", committed.events.len());
            if let Some(p) = committed.position {
                span.record("position", p.get());
            }
        }
        Err(e) => {
            span.record("outcome", describe(e));
        }
    }
}

pub(crate) fn describe_decision<E>(error: &DecisionError<E>) -> &'static str {
    match error {
        DecisionError::Process(_) => "refused",
        DecisionError::Invalid(_) => "invalid",
        DecisionError::ConditionFailed(_) => "condition failed",
        DecisionError::Store(_) => "store error",
        // A kind added to the core later: the span still says it failed.
        _ => "error",
    }
}

impl EventStore for PostgresStore {
    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult, StoreError> {
        let span = tracing::debug_span!("factos.read", query = %query, events = tracing::field::Empty, head = tracing::field::Empty);
        async {
            let read = match &self.replica {
                Some(replica) => self.read_replica(replica, query, options).await?,
                None => self.read_settled(query, options).await?,
            };
            let span = tracing::Span::current();
            span.record("events", read.events.len());
            if let Some(h) = read.head {
                span.record("head", h.get());
            }
            Ok(read)
        }
        .instrument(span)
        .await
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<StreamEvents, StoreError> {
        self.read_whole_stream(stream).await
    }

    async fn load_snapshot(
        &self,
        key: &factos::snapshot::SnapshotKey,
    ) -> Result<Option<factos::snapshot::Snapshot>, StoreError> {
        self.load_snapshot_row(key).await
    }

    async fn save_snapshot(
        &self,
        key: &factos::snapshot::SnapshotKey,
        snapshot: factos::snapshot::Snapshot,
    ) -> Result<(), StoreError> {
        self.save_snapshot_later(key, snapshot)
    }

    async fn read_by_ids(&self, ids: &[uuid::Uuid]) -> Result<Vec<StoredEvent>, StoreError> {
        if ids.len() > factos::store::MAX_IDS_PER_READ {
            return Err(factos::store::too_many_ids(ids.len()));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        self.stored_with_id_list(&client, ids).await
    }

    async fn append(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<Committed, AppendError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("factos.append", stream = %stream, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let outcome = async {
            self.limits().check(&events).map_err(AppendError::Invalid)?;
            self.append_with_retries(stream, events, &condition).await
        }
        .instrument(span.clone())
        .await;
        record_outcome(&span, &outcome, |e: &AppendError| match e {
            AppendError::Invalid(_) => "invalid",
            AppendError::ConditionFailed(_) => "condition failed",
            AppendError::Store(_) => "store error",
            _ => "error",
        });
        let ended = factos::metrics::append_outcome(&outcome);
        crate::metrics::dispatched(self.inner.options.locking, "append", ended, started);
        outcome
    }

    async fn decide_with_query<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("factos.dispatch", kind = "query", stream = %stream, query = %query, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let outcome = match self.replay_before_deciding(stream, process).await {
            Ok(Some(replayed)) => Ok(replayed),
            Err(e) => Err(DecisionError::Store(e)),
            Ok(None) if self.inner.options.locking == LockingStrategy::Optimistic => {
                self.decide_optimistic(stream, query, query, process)
                    .instrument(span.clone())
                    .await
            }
            Ok(None) => {
                self.decide_locked(stream, Boundary::Query(query), process, Folded::default())
                    .instrument(span.clone())
                    .await
            }
        };
        record_outcome(&span, &outcome, describe_decision);
        let ended = factos::metrics::decision_outcome(&outcome);
        crate::metrics::dispatched(self.inner.options.locking, "query", ended, started);
        outcome
    }

    async fn decide_with_condition<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        condition: &Query,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("factos.dispatch", kind = "condition", stream = %stream, query = %query, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let outcome = match self.replay_before_deciding(stream, process).await {
            Ok(Some(replayed)) => Ok(replayed),
            Err(e) => Err(DecisionError::Store(e)),
            // Every strategy: the pessimistic ones would guard the whole read.
            Ok(None) => {
                self.decide_optimistic(stream, query, condition, process)
                    .instrument(span.clone())
                    .await
            }
        };
        record_outcome(&span, &outcome, describe_decision);
        let ended = factos::metrics::decision_outcome(&outcome);
        crate::metrics::dispatched(self.inner.options.locking, "condition", ended, started);
        outcome
    }

    async fn decide_with_query_after<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Folded,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("factos.dispatch", kind = "cached", stream = %stream, query = %query, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let outcome = match self.replay_before_deciding(stream, process).await {
            Ok(Some(replayed)) => Ok(replayed),
            Err(e) => Err(DecisionError::Store(e)),
            Ok(None) => {
                self.decide_cached(stream, query, process, folded)
                    .instrument(span.clone())
                    .await
            }
        };
        record_outcome(&span, &outcome, describe_decision);
        let ended = factos::metrics::decision_outcome(&outcome);
        crate::metrics::dispatched(self.inner.options.locking, "cached", ended, started);
        outcome
    }

    fn can_record_effects(&self) -> bool {
        true
    }

    fn internal_retries(&self) -> u64 {
        self.inner
            .retries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn decide_on_stream<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        process: &mut P,
    ) -> Result<Committed, DecisionError<P::Error>> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("factos.dispatch", kind = "stream", stream = %stream, outcome = tracing::field::Empty, events = tracing::field::Empty, position = tracing::field::Empty);
        let outcome = match self.replay_before_deciding(stream, process).await {
            Ok(Some(replayed)) => Ok(replayed),
            Err(e) => Err(DecisionError::Store(e)),
            Ok(None) => {
                self.decide_locked(stream, Boundary::Stream, process, Folded::default())
                    .instrument(span.clone())
                    .await
            }
        };
        record_outcome(&span, &outcome, describe_decision);
        let ended = factos::metrics::decision_outcome(&outcome);
        crate::metrics::dispatched(self.inner.options.locking, "stream", ended, started);
        outcome
    }
}
