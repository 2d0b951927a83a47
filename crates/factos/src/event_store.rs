//! The store-level API every backend implements, shaped like the DCB specification,
//! plus the decision primitive that dispatch is built on.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use crate::{
    AppendCondition, NewEvent, Position, Query, Revision, StoredEvent, StreamId, ValidationError,
};

/// Default for [`StoreLimits::max_payload_bytes`]: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Default for [`StoreLimits::max_events_per_append`].
pub const DEFAULT_MAX_EVENTS_PER_APPEND: usize = 1000;
/// Default for [`StoreLimits::max_context_events`]: a decision that reads more
/// events than this fails instead of exhausting memory.
pub const DEFAULT_MAX_CONTEXT_EVENTS: usize = 1_000_000;
/// Most ids one [`EventStore::read_by_ids`] looks up.
pub const MAX_IDS_PER_READ: usize = 10_000;

/// The error of a snapshot whose state is over
/// [`MAX_SNAPSHOT_BYTES`](crate::snapshot::MAX_SNAPSHOT_BYTES) (nothing kept).
pub fn snapshot_too_large(bytes: usize) -> StoreError {
    StoreError::new(
        StoreErrorKind::Rejected,
        format!(
            "a snapshot of {bytes} bytes, more than the {} a store keeps",
            crate::snapshot::MAX_SNAPSHOT_BYTES
        ),
    )
}

/// The error of a [`EventStore::read_by_ids`] over more than
/// [`MAX_IDS_PER_READ`] ids (nothing was read).
pub fn too_many_ids(ids: usize) -> StoreError {
    StoreError::new(
        StoreErrorKind::Rejected,
        format!("{ids} ids to look up, more than the {MAX_IDS_PER_READ} one read takes"),
    )
}

/// Bounds a store enforces on every write and decision.
///
/// ```
/// let limits = factos::StoreLimits::default().with_max_payload_bytes(64 * 1024);
/// assert_eq!(limits.max_payload_bytes, 64 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Largest payload of one event, in bytes.
    pub max_payload_bytes: usize,
    /// Most events in one append or one decision.
    pub max_events_per_append: usize,
    /// Most events one context read may hold.
    pub max_context_events: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_events_per_append: DEFAULT_MAX_EVENTS_PER_APPEND,
            max_context_events: DEFAULT_MAX_CONTEXT_EVENTS,
        }
    }
}

impl StoreLimits {
    /// Sets [`StoreLimits::max_payload_bytes`].
    #[must_use]
    pub fn with_max_payload_bytes(mut self, max: usize) -> Self {
        self.max_payload_bytes = max;
        self
    }

    /// Sets [`StoreLimits::max_events_per_append`].
    #[must_use]
    pub fn with_max_events_per_append(mut self, max: usize) -> Self {
        self.max_events_per_append = max;
        self
    }

    /// Checks a batch of events against these limits, and that no event id
    /// appears twice in it (ids are unique in a store, so such a batch could
    /// never be appended; it is refused before any I/O).
    pub fn check(&self, events: &[NewEvent]) -> Result<(), ValidationError> {
        if events.len() > self.max_events_per_append {
            return Err(ValidationError::TooManyEvents {
                count: events.len(),
                max: self.max_events_per_append,
            });
        }
        if let Some(event) = events
            .iter()
            .find(|e| e.data.len() > self.max_payload_bytes)
        {
            return Err(ValidationError::PayloadTooLarge {
                len_bytes: event.data.len(),
                max_bytes: self.max_payload_bytes,
            });
        }
        let mut ids = std::collections::HashSet::with_capacity(events.len());
        if let Some(repeated) = events.iter().find(|e| !ids.insert(e.id)) {
            return Err(ValidationError::RepeatedEventId { id: repeated.id });
        }
        Ok(())
    }

    /// Checks that a context of `events` events fits
    /// [`max_context_events`](Self::max_context_events).
    pub fn check_context(&self, events: usize) -> Result<(), StoreError> {
        if events > self.max_context_events {
            return Err(StoreError::new(
                StoreErrorKind::Rejected,
                format!(
                    "the decision context holds more than {} events",
                    self.max_context_events
                ),
            ));
        }
        Ok(())
    }
}

/// What a decision state handed to
/// [`EventStore::decide_with_query_after`] was already folded from (a cached
/// context).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// The settled position the state is current at: every event matching
    /// the query at or below it was folded, and no other can appear there.
    /// `None`: nothing was folded yet.
    pub position: Option<Position>,
    /// How many context events were folded into the state; the store counts
    /// them against [`StoreLimits::max_context_events`] with the events it feeds.
    pub events: usize,
}

/// Whether `stored` are the events `new` would have appended to `stream`:
/// the same ids, in order, with the same stream, type, version, tags,
/// metadata and payload. A store replays an append (returns the stored
/// events, writes nothing) only when they are; an id stored with other
/// content is [`StoreErrorKind::EventIdConflict`].
pub fn is_same_append(stream: &StreamId, new: &[NewEvent], stored: &[StoredEvent]) -> bool {
    new.len() == stored.len()
        && new.iter().zip(stored).all(|(n, s)| {
            n.id == s.id
                && &s.stream == stream
                && n.event_type == s.event_type
                && n.version == s.version
                && n.tags == s.tags
                && n.metadata == s.metadata
                && n.data == s.data
        })
}

/// The ids a decision plans for its events ([`DecisionProcess::planned_event_id`]),
/// at most `max` of them; empty when it plans none.
pub fn planned_event_ids<P: DecisionProcess + ?Sized>(process: &P, max: usize) -> Vec<uuid::Uuid> {
    (0..max)
        .map_while(|i| process.planned_event_id(i))
        .collect()
}

/// A replay of `stored` (an earlier attempt's events, on `stream`), decided
/// on the context `context`.
pub fn replayed(stream: &StreamId, stored: Vec<StoredEvent>, context: Folded) -> Committed {
    let last = stored.last().map(|e| (e.revision, e.position));
    Committed {
        stream: stream.clone(),
        current_revision: last.map_or(Revision::NoEvents, |(r, _)| Revision::Current(r)),
        position: last.map(|(_, p)| p),
        events: stored,
        context_position: context.position,
        context_events: context.events,
        replayed: true,
        other_revisions: Vec::new(),
    }
}

/// What an earlier attempt of a decision with planned ids committed: the
/// stored events under `planned` ids, in order, if the first is stored.
/// They must be a prefix of the planned ids on `stream` (an attempt appends
/// its events together, to one stream); otherwise the ids belong to
/// something else: [`StoreErrorKind::EventIdConflict`].
pub fn earlier_attempt(
    stream: &StreamId,
    planned: &[uuid::Uuid],
    stored: Vec<StoredEvent>,
) -> Result<Option<Vec<StoredEvent>>, StoreError> {
    let Some(first) = stored.first() else {
        return Ok(None);
    };
    let prefix = stored.len() <= planned.len()
        && stored
            .iter()
            .zip(planned)
            .all(|(s, id)| s.id == *id && &s.stream == stream);
    if !prefix || planned.first() != Some(&first.id) {
        return Err(StoreError::new(
            StoreErrorKind::EventIdConflict,
            format!(
                "event id {} is already stored by another append; nothing was written",
                first.id
            ),
        ));
    }
    Ok(Some(stored))
}

/// The error of an append one of whose event ids is already stored with
/// other content (see [`is_same_append`]); `stored` names one such id.
pub fn event_id_conflict(new: &[NewEvent], stored: &[StoredEvent]) -> StoreError {
    let id = stored
        .first()
        .map(|e| e.id)
        .or_else(|| new.first().map(|e| e.id))
        .map(|id| id.to_string())
        .unwrap_or_default();
    StoreError::new(
        StoreErrorKind::EventIdConflict,
        format!("event id {id} is already stored with other content; nothing was written"),
    )
}

/// Options of a [`EventStore::read`].
///
/// ```
/// use factos::{Position, ReadOptions};
/// let newest_ten = ReadOptions::default().backwards().limit(10);
/// let since = ReadOptions::default().from(Position::new(42).unwrap());
/// # let _ = (newest_ten, since);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// First position to return (inclusive): the lowest one forwards, the highest one backwards.
    pub from: Option<Position>,
    /// Newest first.
    pub backwards: bool,
    /// Most events to return.
    pub limit: Option<usize>,
}

impl ReadOptions {
    /// Starts at `position` (inclusive).
    #[must_use]
    pub fn from(mut self, position: Position) -> Self {
        self.from = Some(position);
        self
    }

    /// Reads newest first.
    #[must_use]
    pub fn backwards(mut self) -> Self {
        self.backwards = true;
        self
    }

    /// Returns at most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// What a [`EventStore::read`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The matching events, in the requested order.
    pub events: Vec<StoredEvent>,
    /// The store's head when the read was taken: a settled position, so no event
    /// can later appear at or below it. `None` for an empty store.
    pub head: Option<Position>,
}

/// The events of one stream, in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvents {
    /// The stream.
    pub stream: StreamId,
    /// Its events.
    pub events: Vec<StoredEvent>,
    /// Its revision.
    pub revision: Revision,
}

/// What a successful append or decision committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The stream appended to.
    pub stream: StreamId,
    /// The stream's revision after the append (unchanged when nothing was appended).
    pub current_revision: Revision,
    /// The position of the last appended event; `None` when nothing was appended.
    pub position: Option<Position>,
    /// The committed events, in position order.
    pub events: Vec<StoredEvent>,
    /// For a decision: the settled position its context was read up to (no
    /// event matching its query can appear at or below it, other than those
    /// it was fed). `None` for plain appends and for a decision that was fed
    /// nothing and reports no settled position (stores may report one even
    /// then: the in-memory store reports its head, PostgreSQL's optimistic
    /// path the settled mark of its read).
    /// A decision sets it whenever it was fed an event, whether or not it
    /// appended: a cached state must carry the position it is folded up to.
    pub context_position: Option<Position>,
    /// For a decision: how many events its context held (those folded before
    /// it, see [`Folded`], plus those the store fed). 0 for plain appends.
    pub context_events: usize,
    /// The events were already in the log: an earlier attempt with the same
    /// event ids committed them (an idempotent retry after an unknown commit
    /// outcome). `events` are those stored events; nothing new was written.
    pub replayed: bool,
    /// For a decision whose events may go to [other
    /// streams](DecisionProcess::other_streams): each of those streams with
    /// its revision after the append. Empty otherwise.
    pub other_revisions: Vec<(StreamId, Revision)>,
}

/// Which condition an append failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConditionFailure {
    /// Events matching the query exist after `after`.
    EventsMatched {
        /// The condition's query.
        query: Query,
        /// The condition's position.
        after: Option<Position>,
    },
    /// The stream is no longer at the expected revision.
    StreamRevision {
        /// The stream.
        stream: StreamId,
        /// The revision the decision saw.
        expected: Revision,
    },
}

impl ConditionFailure {
    /// The failure of an [`AppendCondition`]; `None` for [`AppendCondition::None`].
    pub fn from_condition(condition: &AppendCondition) -> Option<Self> {
        match condition {
            AppendCondition::None => None,
            AppendCondition::FailIfEventsMatch { query, after } => {
                Some(ConditionFailure::EventsMatched {
                    query: query.clone(),
                    after: *after,
                })
            }
        }
    }
}

impl fmt::Display for ConditionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionFailure::EventsMatched { query, after: None } => {
                write!(f, "events matching {query} exist")
            }
            ConditionFailure::EventsMatched {
                query,
                after: Some(after),
            } => {
                write!(
                    f,
                    "events matching {query} were appended after position {after}"
                )
            }
            ConditionFailure::StreamRevision { stream, expected } => {
                write!(f, "stream {stream} is no longer at {expected}")
            }
        }
    }
}

/// What kind of store failure happened, and so whether a retry is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached or the connection broke before the
    /// commit was sent: nothing was written, retrying is safe.
    Unavailable,
    /// The connection broke while the commit was in flight: the write may or may
    /// not have landed. Retry only with the same event ids.
    CommitOutcomeUnknown,
    /// A lock wait or statement took longer than configured; nothing was written.
    Timeout,
    /// The store's schema is missing or too old (run the migration).
    Schema,
    /// A row in the store does not hold what factos wrote (corruption or a foreign writer).
    Corrupt,
    /// The store refused because of a transient concurrency failure and the
    /// retry budget ran out; nothing was written.
    Contention,
    /// The store refused the input (a limit of the database itself).
    Rejected,
    /// An event id of the append is already stored with other content (a
    /// foreign event, or a keyed command whose key was reused for another
    /// stream). Nothing was written; retrying cannot succeed.
    EventIdConflict,
    /// Anything else.
    Other,
}

/// A failure of the store itself (not of the decision or of its condition).
///
/// It never exposes a driver type; the driver's error is available as the
/// [`source`](std::error::Error::source).
///
/// ```
/// use factos::{StoreError, StoreErrorKind};
/// let error = StoreError::new(StoreErrorKind::CommitOutcomeUnknown, "connection lost during COMMIT");
/// assert!(!error.is_retry_safe());
/// assert!(StoreError::new(StoreErrorKind::Unavailable, "refused").is_retry_safe());
/// ```
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl StoreError {
    /// A store error of `kind` with a message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message, without the source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether running the same operation again cannot duplicate a write.
    pub fn is_retry_safe(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Unavailable | StoreErrorKind::Timeout | StoreErrorKind::Contention
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Why an [`EventStore::append`] failed. Nothing was written in every case.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppendError {
    /// The events break the store's limits.
    Invalid(ValidationError),
    /// The append condition failed.
    ConditionFailed(ConditionFailure),
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::Invalid(e) => write!(f, "append refused: {e}"),
            AppendError::ConditionFailed(c) => write!(f, "append condition failed: {c}"),
            AppendError::Store(e) => write!(f, "store error: {e}"),
        }
    }
}

impl StdError for AppendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            AppendError::Invalid(e) => Some(e),
            AppendError::ConditionFailed(_) => None,
            AppendError::Store(e) => Some(e),
        }
    }
}

impl From<StoreError> for AppendError {
    fn from(e: StoreError) -> Self {
        AppendError::Store(e)
    }
}

/// One decision run by a store: it feeds the context's events to [`evolve`](Self::evolve)
/// in position order, then asks [`decide`](Self::decide) for the events to append.
///
/// A store may call `evolve` with more events and `decide` again (for example
/// after a conflict, with the events that appeared since); the latest `decide`
/// is the one committed. Application code rarely implements this: the
/// [`dispatch`](crate::dispatch) functions do, over a [`Decider`](crate::Decider) and a
/// [`Codec`](crate::Codec).
pub trait DecisionProcess: Send {
    /// Why the decision failed.
    type Error: Send;
    /// Applies one event of the context.
    fn evolve(&mut self, event: &StoredEvent) -> Result<(), Self::Error>;
    /// Decides on the state built so far.
    fn decide(&mut self) -> Result<Vec<NewEvent>, Self::Error>;

    /// Whether `stored`, found in the log under the ids of the events this
    /// decision just decided (`new`, for `stream`), are this decision's own
    /// events, committed by an earlier attempt: the store then replays them
    /// (returns them, writes nothing). Otherwise the append fails with
    /// [`StoreErrorKind::EventIdConflict`]. By default only the very same
    /// append is a replay ([`is_same_append`]).
    fn is_replay_of(&self, stream: &StreamId, new: &[NewEvent], stored: &[StoredEvent]) -> bool {
        is_same_append(stream, new, stored)
    }

    /// The id this decision's `index`-th event will carry, when ids are fixed
    /// before it decides (an idempotent dispatch: they derive from its key).
    /// A store that finds the first of them stored replays the events stored
    /// under them without deciding: a retry must not decide again on a
    /// context that now holds its own first attempt's events (it could
    /// refuse, or decide other events, though the command did commit).
    /// `None` (the default): ids are known only once decided.
    fn planned_event_id(&self, index: usize) -> Option<uuid::Uuid> {
        let _ = index;
        None
    }

    /// The streams this decision's events may go to besides the one it is
    /// decided on (a combined batch: each command's events go to its own
    /// stream). A store serializes their writers with the decision's stream
    /// (it takes their locks before reading), writes each event where
    /// [`event_stream`](Self::event_stream) says, and reports their revisions
    /// in [`Committed::other_revisions`]. Default: none.
    fn other_streams(&self) -> &[StreamId] {
        &[]
    }

    /// After [`decide`](Self::decide): the stream of the `index`-th decided
    /// event, when it is one of the [other streams](Self::other_streams);
    /// `None` (the default): the decision's own stream.
    fn event_stream(&self, index: usize) -> Option<&StreamId> {
        let _ = index;
        None
    }

    /// After [`decide`](Self::decide): whether the decided events may have
    /// effects to record with them (an outbox reactor reacts to one of
    /// them). A store that [records effects](EventStore::can_record_effects)
    /// then calls [`effects`](Self::effects) after appending and before
    /// committing; when not, the effects are none and it commits as for a
    /// plain decision. Before deciding it says no.
    fn has_effects(&self) -> bool {
        false
    }

    /// The effects of the events just appended (their positions are final),
    /// to be recorded in the same transaction. An error aborts the append.
    fn effects(
        &mut self,
        appended: &[StoredEvent],
    ) -> Result<Vec<crate::effect::Effect>, Self::Error> {
        let _ = appended;
        Ok(Vec::new())
    }
}

/// Why a decision run by a store failed. Nothing was written in every case.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecisionError<E> {
    /// The decision process itself failed (domain, codec).
    Process(E),
    /// The decided events break the store's limits.
    Invalid(ValidationError),
    /// The context changed (or the stream moved) before the commit.
    ConditionFailed(ConditionFailure),
    /// The store failed.
    Store(StoreError),
}

impl<E> From<StoreError> for DecisionError<E> {
    fn from(e: StoreError) -> Self {
        DecisionError::Store(e)
    }
}

/// An event store: DCB-shaped reads and conditional appends, plus the decision
/// primitives that [`dispatch_with_query`](crate::dispatch_with_query) and
/// [`dispatch`](crate::dispatch()) use.
///
/// Every backend must pass the `factos-testkit` conformance suite.
///
/// ```
/// # use factos::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // The DCB shape: read a context, then append only if it did not change.
/// let store = InMemoryStore::new();
/// let query = Query::tagged_with_all([Tag::new("course:c1")?]);
/// let read = store.read(&query, ReadOptions::default()).await?;
/// let event = NewEvent::new(EventType::new("CourseDefined")?, b"{}".to_vec()).with_tags(Tags::parse(["course:c1"])?);
/// let condition = AppendCondition::fail_if_events_match(query.clone(), read.head);
/// store.append(&StreamId::new("course-c1")?, vec![event.clone()], condition.clone()).await?;
/// // The same condition now fails for another event: an event matching the query appeared.
/// let another = NewEvent::new(EventType::new("CourseDefined")?, b"{}".to_vec()).with_tags(Tags::parse(["course:c1"])?);
/// assert!(matches!(store.append(&StreamId::new("course-c1")?, vec![another], condition.clone()).await, Err(AppendError::ConditionFailed(_))));
/// // The very same append again is a replay: it returns what was stored and writes nothing.
/// assert!(store.append(&StreamId::new("course-c1")?, vec![event], condition).await?.replayed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait EventStore: Send + Sync {
    /// Reads the events matching `query`.
    fn read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> impl Future<Output = Result<ReadResult, StoreError>> + Send;

    /// Reads one stream's events in revision order.
    fn read_stream(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<StreamEvents, StoreError>> + Send;

    /// The stored events carrying `ids`, in the order of `ids` (ids not
    /// stored are left out): a point lookup, which says nothing about the
    /// events around them. More than [`MAX_IDS_PER_READ`] ids are refused
    /// ([`StoreErrorKind::Rejected`]). Combined keyed dispatches use it to
    /// find the commands whose earlier attempt committed.
    fn read_by_ids(
        &self,
        ids: &[uuid::Uuid],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Appends `events` to `stream` at its next revisions if `condition` holds.
    /// An empty `events` still checks the condition.
    fn append(
        &self,
        stream: &StreamId,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> impl Future<Output = Result<Committed, AppendError>> + Send;

    /// Runs a decision on the context of `query` and appends its events to
    /// `stream` only if no event matching `query` appeared after the context's
    /// last matching event. The condition is checked even when no event is decided.
    fn decide_with_query<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
    ) -> impl Future<Output = Result<Committed, DecisionError<P::Error>>> + Send;

    /// Like [`decide_with_query`](Self::decide_with_query), with an append
    /// condition narrower than the read: the decision is fed every event
    /// matching `query`, and appends only if no event matching `condition`
    /// appeared after the context it was fed (an event matching `query`
    /// alone may have, and it then decided without it). The default checks
    /// `query` itself, which is sound, only stricter: a store that can
    /// check less conflicts less (PostgreSQL does).
    fn decide_with_condition<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        condition: &Query,
        process: &mut P,
    ) -> impl Future<Output = Result<Committed, DecisionError<P::Error>>> + Send {
        let _ = condition;
        self.decide_with_query(stream, query, process)
    }

    /// Like [`decide_with_query`](Self::decide_with_query), for a process that
    /// was already fed every event matching `query` up to the settled position
    /// `folded.position` (a cached decision state). The store only feeds
    /// events after it; it may first try deciding on the state as it is,
    /// relying on the append condition to prove it current. The context limit
    /// counts `folded.events` too. `Committed::context_position` is never
    /// below `folded.position`.
    fn decide_with_query_after<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        query: &Query,
        process: &mut P,
        folded: Folded,
    ) -> impl Future<Output = Result<Committed, DecisionError<P::Error>>> + Send;

    /// How many times this store (and its clones) began an attempt again on
    /// its own since it was created: a decision or append that found a key
    /// held by another decision and backed off, a condition that failed and
    /// was decided again, a cached fast path whose condition failed or whose
    /// keys were busy (a fast-path decision refused on a possibly stale state
    /// is decided again without counting). Work on disjoint contexts never
    /// retries. Stores that never retry keep the default, 0. Clones share the
    /// count.
    fn internal_retries(&self) -> u64 {
        0
    }

    /// Whether the store records a decision's [effects](DecisionProcess::effects)
    /// atomically with its append (an outbox). Stores that do not refuse
    /// [`dispatch_with_outbox`](crate::dispatch_with_outbox) before
    /// doing anything.
    fn can_record_effects(&self) -> bool {
        false
    }

    /// The snapshot kept under `key`, if any ([`crate::snapshot`]). Stores
    /// that keep none keep the default: never one.
    fn load_snapshot(
        &self,
        key: &crate::snapshot::SnapshotKey,
    ) -> impl Future<Output = Result<Option<crate::snapshot::Snapshot>, StoreError>> + Send {
        let _ = key;
        std::future::ready(Ok(None))
    }

    /// Keeps `snapshot` under `key` unless the one kept there is folded
    /// further; it may return before the write is done (off the caller's
    /// critical path). States over [`MAX_SNAPSHOT_BYTES`](crate::snapshot::MAX_SNAPSHOT_BYTES)
    /// are refused. Stores that keep none keep the default: nothing kept.
    fn save_snapshot(
        &self,
        key: &crate::snapshot::SnapshotKey,
        snapshot: crate::snapshot::Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (key, snapshot);
        std::future::ready(Ok(()))
    }

    /// Runs a decision on one stream's events and appends to it only if the
    /// stream is still at the revision the decision saw.
    fn decide_on_stream<P: DecisionProcess>(
        &self,
        stream: &StreamId,
        process: &mut P,
    ) -> impl Future<Output = Result<Committed, DecisionError<P::Error>>> + Send;
}
