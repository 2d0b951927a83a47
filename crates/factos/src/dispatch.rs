//! Command handling over any [`EventStore`]: read a context, decide, append if
//! the context is still stable, and hand back the committed events.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::effect::{Effect, MAX_EFFECT_PAYLOAD_BYTES, MAX_EFFECTS_PER_DISPATCH, OutboxMessage};
use crate::event_store::{Committed, ConditionFailure, DecisionError, DecisionProcess};
use crate::{
    AppendCondition, Codec, Decider, DispatchDecider, EncodeError, EventStore, NewEvent, Position,
    Query, Reactor, ReadOptions, Recorded, Revision, StoreError, StoreErrorKind, StoredEvent,
    StreamId, UndecodableEvent, ValidationError,
};

/// Where a dispatch's events landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Append {
    /// The stream's revision after the dispatch (its current one when nothing was appended).
    pub current_revision: Revision,
    /// The position of the last appended event; `None` when nothing was appended.
    pub position: Option<Position>,
}

/// The result of a successful dispatch: where the events landed and the
/// committed events themselves, ready for [`react_all`](crate::react_all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch<E> {
    /// Append metadata.
    pub append: Append,
    /// The committed events, in position order.
    pub events: Vec<Recorded<E>>,
}

/// A decision context: the matching events folded into the decider's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<E, S> {
    /// The query the context was read with.
    pub query: Query,
    /// The folded state.
    pub state: S,
    /// The matching events, decoded, in position order.
    pub events: Vec<Recorded<E>>,
    /// The position of the last matching event (`None`: none matched).
    pub position: Option<Position>,
    /// `FailIfEventsMatch(query, position)`: the condition that keeps a decision
    /// on this context honest.
    pub append_condition: AppendCondition,
}

/// A stream loaded and folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedStream<E, S> {
    /// The stream.
    pub stream: StreamId,
    /// The folded state.
    pub state: S,
    /// The stream's events, decoded, in revision order.
    pub events: Vec<Recorded<E>>,
    /// The stream's revision.
    pub revision: Revision,
}

/// Why a dispatch failed. Nothing was written in every case.
///
/// ```
/// use factos::{ConditionFailure, DispatchError, Query};
/// let refused: DispatchError<&str> = DispatchError::Domain("sold out");
/// assert_eq!(refused.to_string(), "command refused: sold out");
/// assert!(!refused.is_retryable());
/// let moved: DispatchError<&str> = DispatchError::AppendConditionFailed(ConditionFailure::EventsMatched { query: Query::all(), after: None });
/// assert!(moved.is_retryable());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DispatchError<E> {
    /// The decider refused the command.
    Domain(E),
    /// The store failed; see [`StoreError::is_retry_safe`].
    Store(StoreError),
    /// The context changed between the read and the commit (or the stream moved).
    /// Dispatching again decides on the new context.
    AppendConditionFailed(ConditionFailure),
    /// A stored event of the context could not be decoded (it is named).
    Decode(Box<UndecodableEvent>),
    /// A decided event could not be encoded or breaks the limits.
    Encode(EncodeError),
    /// The decider or the codec panicked; the panic was caught and nothing was written.
    Panicked {
        /// Which part panicked.
        during: &'static str,
        /// The panic message.
        message: String,
    },
}

impl<E: fmt::Display> fmt::Display for DispatchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DispatchError::Domain(e) => write!(f, "command refused: {e}"),
            DispatchError::Store(e) => write!(f, "store error: {e}"),
            DispatchError::AppendConditionFailed(c) => {
                write!(f, "append condition failed: {c}")
            }
            DispatchError::Decode(e) => write!(f, "decode error: {e}"),
            DispatchError::Encode(e) => write!(f, "encode error: {e}"),
            DispatchError::Panicked { during, message } => {
                write!(f, "{during} panicked: {message}")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for DispatchError<E> {}

impl<E> DispatchError<E> {
    /// Whether dispatching the same command again may succeed and cannot
    /// duplicate a write: a condition failure or a retry-safe store error.
    pub fn is_retryable(&self) -> bool {
        match self {
            DispatchError::AppendConditionFailed(_) => true,
            DispatchError::Store(e) => e.is_retry_safe(),
            _ => false,
        }
    }
}

/// Why a context read failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The store failed.
    Store(StoreError),
    /// A matching event could not be decoded (it is named).
    Decode(Box<UndecodableEvent>),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Store(e) => write!(f, "store error: {e}"),
            ReadError::Decode(e) => write!(f, "decode error: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Store(e) => Some(e),
            ReadError::Decode(e) => Some(e),
        }
    }
}

/// The failures of the core's decision process.
#[derive(Debug)]
pub(crate) enum ProcessError<E> {
    Domain(E),
    Decode(Box<UndecodableEvent>),
    Encode(EncodeError),
    Panicked {
        during: &'static str,
        message: String,
    },
    /// A keyed command's earlier attempt is among the context events the
    /// store fed: it committed, and the command must be replayed, not
    /// decided again (decided again it could be refused, and its caller
    /// told "no" about a write that happened). Nothing is written; the
    /// dispatch is tried again, and the store's check for an earlier
    /// attempt then finds it.
    EarlierAttempt,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

pub(crate) fn guarded<T, E>(
    during: &'static str,
    f: impl FnOnce() -> T,
) -> Result<T, ProcessError<E>> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| ProcessError::Panicked {
        during,
        message: panic_message(&*payload),
    })
}

/// What a query dispatch adds to deciding on its context and appending: the
/// idempotency key of [`dispatch_with_query_idempotent`] and the reactor of
/// [`dispatch_with_outbox`]. The default adds neither ([`dispatch_with_query`]).
pub(crate) struct DispatchOptions<'a, E> {
    /// When set, event ids derive from it, so a retry appends the same ids.
    pub(crate) idempotency_key: Option<uuid::Uuid>,
    /// When set, the new events' effects are recorded with the append.
    pub(crate) reactor: Option<&'a DynReactor<'a, E>>,
    /// When set, the append condition is this query, narrower than the read.
    pub(crate) condition: Option<&'a Query>,
}

// Manual impls: the derives would ask `E: Clone`, `E: Copy`.
impl<E> Clone for DispatchOptions<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for DispatchOptions<'_, E> {}

impl<E> Default for DispatchOptions<'_, E> {
    fn default() -> Self {
        Self {
            idempotency_key: None,
            reactor: None,
            condition: None,
        }
    }
}

impl<'a, E> DispatchOptions<'a, E> {
    /// Event ids derive from `key`.
    pub(crate) fn idempotent(key: uuid::Uuid) -> Self {
        Self {
            idempotency_key: Some(key),
            ..Self::default()
        }
    }

    /// The new events' effects by `reactor` are recorded with the append.
    pub(crate) fn with_effects(reactor: &'a DynReactor<'a, E>) -> Self {
        Self {
            reactor: Some(reactor),
            ..Self::default()
        }
    }
}

/// The decision process the dispatch functions hand to the store: decode,
/// evolve, decide and encode, catching panics of application code.
pub(crate) struct CommandProcess<'a, D: Decider, C> {
    decider: &'a D,
    codec: &'a C,
    command: &'a D::Command,
    /// `None` only after a panic left the state unusable.
    pub(crate) state: Option<D::State>,
    pub(crate) decided: Vec<D::Event>,
    /// When set, event ids derive from it, so a retry appends the same ids.
    pub(crate) idempotency_key: Option<uuid::Uuid>,
    /// The first id the key derives, if keyed: a fed event with it is this
    /// command's earlier attempt ([`ProcessError::EarlierAttempt`]).
    first_id: Option<uuid::Uuid>,
    /// When set, the new events' effects are recorded with the append.
    pub(crate) reactor: Option<&'a (dyn Reactor<Event = D::Event, Effect = OutboxMessage> + Sync)>,
    /// After a decide: whether the reactor reacts to a decided event (asked
    /// there, under the panic guard, so a store's `has_effects` runs no
    /// application code).
    reacts: bool,
}

impl<'a, D, C> CommandProcess<'a, D, C>
where
    D: Decider,
    C: Codec<Event = D::Event>,
{
    pub(crate) fn new(
        decider: &'a D,
        codec: &'a C,
        command: &'a D::Command,
    ) -> Result<Self, ProcessError<D::Error>> {
        let state = guarded("decider initial state", || decider.initial())?;
        Ok(Self::with_state(decider, codec, command, state))
    }

    /// A process whose state was already folded (a cached context).
    pub(crate) fn with_state(
        decider: &'a D,
        codec: &'a C,
        command: &'a D::Command,
        state: D::State,
    ) -> Self {
        Self {
            decider,
            codec,
            command,
            state: Some(state),
            decided: Vec::new(),
            idempotency_key: None,
            first_id: None,
            reactor: None,
            reacts: false,
        }
    }

    /// The process with `options` (a key, a reactor) set.
    pub(crate) fn with_options(self, options: DispatchOptions<'a, D::Event>) -> Self {
        let DispatchOptions {
            idempotency_key,
            reactor,
            condition: _,
        } = options;
        Self {
            idempotency_key,
            first_id: idempotency_key.map(|key| event_id(key, 0)),
            reactor,
            ..self
        }
    }
}

/// A command's decided events and their encodings, in order.
pub(crate) type Decided<E> = (Vec<E>, Vec<NewEvent>);

/// Decides `command` on `state` and encodes the events, catching panics of
/// application code: the events and their encodings, in order.
pub(crate) fn decide_command<D, C>(
    decider: &D,
    codec: &C,
    state: &D::State,
    command: &D::Command,
) -> Result<Decided<D::Event>, ProcessError<D::Error>>
where
    D: Decider,
    C: Codec<Event = D::Event>,
{
    let events = guarded("decider decide", || decider.decide(state, command))?
        .map_err(ProcessError::Domain)?;
    let encoded = guarded("codec encode", || {
        events
            .iter()
            .map(|e| codec.encode(e))
            .collect::<Result<Vec<_>, _>>()
    })?
    .map_err(ProcessError::Encode)?;
    Ok((events, encoded))
}

/// A keyed command's events with the ids derived from its key, as an
/// idempotent dispatch of its own would write them.
pub(crate) fn with_key_ids(encoded: Vec<NewEvent>, key: Option<uuid::Uuid>) -> Vec<NewEvent> {
    match key {
        Some(key) => encoded
            .into_iter()
            .enumerate()
            .map(|(index, event)| event.with_id(event_id(key, index)))
            .collect(),
        None => encoded,
    }
}

/// Decodes `stored` and folds it into `state`, catching panics of
/// application code; a panic in `evolve` leaves `state` empty (lost).
pub(crate) fn evolve_stored<D, C>(
    decider: &D,
    codec: &C,
    state: &mut Option<D::State>,
    stored: &StoredEvent,
) -> Result<(), ProcessError<D::Error>>
where
    D: Decider,
    C: Codec<Event = D::Event>,
{
    if !codec.owns_type(&stored.event_type) {
        // Another module's event under the same tags: not this decider's to
        // fold (the append condition still counts it).
        return Ok(());
    }
    let event = guarded("codec decode", || codec.decode(stored))?
        .map_err(|e| ProcessError::Decode(Box::new(UndecodableEvent::new(stored, e))))?;
    let folded = state.take().ok_or_else(lost_state)?;
    *state = Some(guarded("decider evolve", || {
        decider.evolve(folded, &event)
    })?);
    Ok(())
}

pub(crate) fn lost_state<E>() -> ProcessError<E> {
    ProcessError::Panicked {
        during: "decider",
        message: "state lost after an earlier panic".to_string(),
    }
}

impl<D, C> DecisionProcess for CommandProcess<'_, D, C>
where
    D: DispatchDecider,
    C: Codec<Event = D::Event>,
{
    type Error = ProcessError<D::Error>;

    fn evolve(&mut self, stored: &StoredEvent) -> Result<(), Self::Error> {
        if self.first_id == Some(stored.id) {
            return Err(ProcessError::EarlierAttempt);
        }
        evolve_stored(self.decider, self.codec, &mut self.state, stored)
    }

    fn decide(&mut self) -> Result<Vec<NewEvent>, Self::Error> {
        let state = self.state.as_ref().ok_or_else(lost_state)?;
        let (events, encoded) = decide_command(self.decider, self.codec, state, self.command)?;
        self.reacts = match self.reactor {
            Some(reactor) => guarded("reactor reacts_to", || {
                events.iter().any(|e| reactor.reacts_to(e))
            })?,
            None => false,
        };
        self.decided = events;
        Ok(with_key_ids(encoded, self.idempotency_key))
    }

    fn planned_event_id(&self, index: usize) -> Option<uuid::Uuid> {
        self.idempotency_key.map(|key| event_id(key, index))
    }

    /// Under an idempotency key the ids name the command, not the content:
    /// a retry that raced its first attempt may decide on a context holding
    /// that attempt's events, yet the stored events are still this
    /// command's when they carry its planned ids, from the first, on the
    /// same stream.
    fn is_replay_of(&self, stream: &StreamId, new: &[NewEvent], stored: &[StoredEvent]) -> bool {
        match self.idempotency_key {
            Some(key) => {
                !stored.is_empty()
                    && stored
                        .iter()
                        .enumerate()
                        .all(|(index, s)| s.id == event_id(key, index) && &s.stream == stream)
            }
            None => crate::event_store::is_same_append(stream, new, stored),
        }
    }

    fn has_effects(&self) -> bool {
        self.reacts
    }

    fn effects(&mut self, appended: &[StoredEvent]) -> Result<Vec<Effect>, Self::Error> {
        let Some(reactor) = self.reactor else {
            return Ok(Vec::new());
        };
        let (decided, effects) = react_to(reactor, appended, std::mem::take(&mut self.decided));
        self.decided = decided;
        effects
    }
}

/// A reactor as a dispatch borrows it.
pub(crate) type DynReactor<'a, E> = dyn Reactor<Event = E, Effect = OutboxMessage> + Sync + 'a;

/// What [`react_to`] gives back: the command's events, and its effects.
pub(crate) type Reacted<E, X> = (Vec<E>, Result<Vec<Effect>, ProcessError<X>>);

/// The effects `reactor` gives for one command's `decided` events, just
/// appended as `appended`, within the limits of one dispatch (a panic of
/// the reactor caught); the events come back, for the dispatch's result.
pub(crate) fn react_to<E, X>(
    reactor: &DynReactor<'_, E>,
    appended: &[StoredEvent],
    decided: Vec<E>,
) -> Reacted<E, X> {
    // Recorded events hold no payload: build them from the rows' other
    // fields rather than cloning the rows whole.
    let recorded: Vec<Recorded<E>> = appended
        .iter()
        .zip(decided)
        .map(|(stored, event)| Recorded {
            id: stored.id,
            stream: stored.stream.clone(),
            revision: stored.revision,
            position: stored.position,
            event_type: stored.event_type.clone(),
            version: stored.version,
            tags: stored.tags.clone(),
            metadata: stored.metadata.clone(),
            event,
        })
        .collect();
    let effects = guarded("reactor", || {
        recorded
            .iter()
            .filter(|r| reactor.reacts_to(&r.event))
            .flat_map(|r| {
                reactor.react(r).into_iter().map(|message| Effect {
                    cause: r.position,
                    message,
                })
            })
            .collect::<Vec<_>>()
    });
    let decided = recorded.into_iter().map(|r| r.event).collect();
    (decided, effects.and_then(within_effect_limits))
}

/// `effects` when one dispatch may record them all.
pub(crate) fn within_effect_limits<X>(
    effects: Vec<Effect>,
) -> Result<Vec<Effect>, ProcessError<X>> {
    let invalid = |e| ProcessError::Encode(EncodeError::Invalid(e));
    if effects.len() > MAX_EFFECTS_PER_DISPATCH {
        return Err(invalid(ValidationError::TooManyEffects {
            count: effects.len(),
            max: MAX_EFFECTS_PER_DISPATCH,
        }));
    }
    if let Some(large) = effects
        .iter()
        .find(|e| e.message.payload.len() > MAX_EFFECT_PAYLOAD_BYTES)
    {
        return Err(invalid(ValidationError::EffectTooLarge {
            len_bytes: large.message.payload.len(),
            max_bytes: MAX_EFFECT_PAYLOAD_BYTES,
        }));
    }
    Ok(effects)
}

pub(crate) fn into_dispatch<C: Codec, X>(
    committed: Committed,
    decided: Vec<C::Event>,
    codec: &C,
) -> Result<Dispatch<C::Event>, DispatchError<X>> {
    if committed.replayed {
        // An earlier attempt with the same ids committed: report what it stored.
        let append = Append {
            current_revision: committed.current_revision,
            position: committed.position,
        };
        let events = committed
            .events
            .into_iter()
            .map(|stored| {
                let event =
                    crate::codec::decode_stored(codec, &stored).map_err(DispatchError::Decode)?;
                Ok(Recorded::from_stored(stored, event))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Dispatch { append, events });
    }
    if committed.events.len() != decided.len() {
        return Err(DispatchError::Store(StoreError::new(
            StoreErrorKind::Corrupt,
            format!(
                "the store committed {} events for {} decided",
                committed.events.len(),
                decided.len()
            ),
        )));
    }
    let events = committed
        .events
        .into_iter()
        .zip(decided)
        .map(|(stored, event)| Recorded::from_stored(stored, event))
        .collect();
    Ok(Dispatch {
        append: Append {
            current_revision: committed.current_revision,
            position: committed.position,
        },
        events,
    })
}

pub(crate) fn from_decision_error<E>(error: DecisionError<ProcessError<E>>) -> DispatchError<E> {
    match error {
        DecisionError::Process(ProcessError::Domain(e)) => DispatchError::Domain(e),
        DecisionError::Process(ProcessError::Decode(e)) => DispatchError::Decode(e),
        DecisionError::Process(ProcessError::Encode(e)) => DispatchError::Encode(e),
        DecisionError::Process(ProcessError::Panicked { during, message }) => {
            DispatchError::Panicked { during, message }
        }
        // Only when trying again met it once more (see `query_dispatch`).
        DecisionError::Process(ProcessError::EarlierAttempt) => {
            DispatchError::Store(StoreError::new(
                crate::StoreErrorKind::Contention,
                "a keyed command's earlier attempt committed while it was decided again; nothing was written, and a retry with the same key replays it",
            ))
        }
        DecisionError::Invalid(e) => DispatchError::Encode(EncodeError::Invalid(e)),
        DecisionError::ConditionFailed(c) => DispatchError::AppendConditionFailed(c),
        DecisionError::Store(e) => DispatchError::Store(e),
    }
}

pub(crate) fn from_process_error<E>(error: ProcessError<E>) -> DispatchError<E> {
    from_decision_error(DecisionError::Process(error))
}

/// Handles `command` on the context selected by `query`: reads the matching
/// events, folds them with `decider`, decides, and appends the new events to
/// `stream` only if no event matching `query` appeared since the read.
///
/// Returns the committed events so reactors can turn them into effects.
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
/// struct RegisterOnce;
/// impl Decider for RegisterOnce {
///     type State = bool; // taken?
///     type Command = String;
///     type Event = Registered;
///     type Error = String;
///     fn initial(&self) -> bool { false }
///     fn decide(&self, taken: &bool, name: &String) -> Result<Vec<Registered>, String> {
///         if *taken { Err(format!("{name} is taken")) }
///         else { Ok(vec![Registered { username: name.clone() }]) }
///     }
///     fn evolve(&self, _: bool, _: &Registered) -> bool { true }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let codec = JsonCodec::<Registered>::new();
/// let query = Query::tagged_with_all([Tag::new("username:renata")?]);
/// let stream = StreamId::new("user-1")?;
/// let first = dispatch_with_query(&store, &stream, &query, &RegisterOnce, &codec, &"renata".to_string()).await?;
/// assert_eq!(first.events.len(), 1);
/// let again = dispatch_with_query(&store, &stream, &query, &RegisterOnce, &codec, &"renata".to_string()).await;
/// assert!(matches!(again, Err(DispatchError::Domain(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn dispatch_with_query<S, D, C>(
    store: &S,
    stream: &StreamId,
    query: &Query,
    decider: &D,
    codec: &C,
    command: &D::Command,
) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
where
    S: EventStore,
    D: DispatchDecider,
    C: Codec<Event = D::Event>,
{
    query_dispatch(
        store,
        stream,
        query,
        decider,
        codec,
        command,
        DispatchOptions::default(),
    )
    .await
}

/// Like [`dispatch_with_query`], with an append condition narrower than
/// the read: the decision is fed every event matching `query`, and commits
/// only if no event matching `condition` appeared after what it read.
///
/// For an invariant that events outside `condition` cannot break: a
/// withdrawal must not overdraw, so it reads the account's deposits and
/// withdrawals but need conflict only with withdrawals (a deposit committed
/// meanwhile only makes the balance it decided on too low, never too high).
/// A decision that would be wrong without some event must have it in
/// `condition`. The read is never cached (a cached state would miss the
/// events the condition lets pass); on PostgreSQL it is the optimistic
/// path's (a settled read, then a short transaction that takes the keys of
/// `condition` and of the stream, or under the table-lock strategy the
/// table lock), under every strategy.
///
/// ```
/// # use factos::*;
/// # use factos::json::{JsonCodec, JsonEvent};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # enum Money { Deposited(i64), Withdrawn(i64) }
/// # impl JsonEvent for Money {
/// #     const EVENT_TYPES: &'static [&'static str] = &["Deposited", "Withdrawn"];
/// #     fn event_type(&self) -> &'static str {
/// #         match self { Money::Deposited(_) => "Deposited", Money::Withdrawn(_) => "Withdrawn" }
/// #     }
/// #     fn tags(&self) -> Vec<String> { vec!["account:a".into()] }
/// # }
/// # struct Withdraw;
/// # impl Decider for Withdraw {
/// #     type State = i64; type Command = i64; type Event = Money; type Error = String;
/// #     fn initial(&self) -> i64 { 0 }
/// #     fn decide(&self, balance: &i64, cents: &i64) -> Result<Vec<Money>, String> {
/// #         if balance < cents { Err(format!("the balance is {balance}")) } else { Ok(vec![Money::Withdrawn(*cents)]) }
/// #     }
/// #     fn evolve(&self, b: i64, e: &Money) -> i64 {
/// #         match e { Money::Deposited(c) => b + c, Money::Withdrawn(c) => b - c }
/// #     }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let codec = JsonCodec::<Money>::new();
/// let account = Query::tagged_with_all([Tag::new("account:a")?]);
/// let withdrawals = Query::from_items([QueryItem::parse(["Withdrawn"], ["account:a"])?]);
/// store.append(&StreamId::new("a")?, vec![Codec::encode(&codec, &Money::Deposited(100))?],
///     AppendCondition::None).await?;
/// let done = dispatch_with_condition(&store, &StreamId::new("a")?, &account, &withdrawals,
///     &Withdraw, &codec, &70).await?;
/// assert_eq!(done.events.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn dispatch_with_condition<S, D, C>(
    store: &S,
    stream: &StreamId,
    query: &Query,
    condition: &Query,
    decider: &D,
    codec: &C,
    command: &D::Command,
) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
where
    S: EventStore,
    D: DispatchDecider,
    C: Codec<Event = D::Event>,
{
    let options = DispatchOptions {
        condition: Some(condition),
        ..DispatchOptions::default()
    };
    query_dispatch(store, stream, query, decider, codec, command, options).await
}

/// The id of the `index`-th event decided under an idempotency `key`
/// (UUIDv5 in the key's namespace), the same on every retry.
pub fn event_id(key: uuid::Uuid, index: usize) -> uuid::Uuid {
    uuid::Uuid::new_v5(&key, index.to_string().as_bytes())
}

/// Like [`dispatch_with_query`], idempotent under `key`: the decided events get
/// ids derived from the key, and when an earlier attempt with the same key
/// already committed (say its COMMIT was sent but the connection broke, a
/// `CommitOutcomeUnknown`), the store appends nothing and this returns the
/// events that attempt committed. Use one key per command (a request id).
///
/// ```
/// # use factos::*;
/// # use factos::json::{JsonCodec, JsonEvent};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # struct Paid(u32);
/// # impl JsonEvent for Paid {
/// #     const EVENT_TYPES: &'static [&'static str] = &["Paid"];
/// #     fn event_type(&self) -> &'static str { "Paid" }
/// #     fn tags(&self) -> Vec<String> { vec!["invoice:i1".into()] }
/// # }
/// # struct Pay;
/// # impl Decider for Pay {
/// #     type State = (); type Command = u32; type Event = Paid; type Error = &'static str;
/// #     fn initial(&self) {}
/// #     fn decide(&self, _: &(), amount: &u32) -> Result<Vec<Paid>, &'static str> { Ok(vec![Paid(*amount)]) }
/// #     fn evolve(&self, _: (), _: &Paid) {}
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let query = Query::tagged_with_all([Tag::new("invoice:i1")?]);
/// let stream = StreamId::new("invoice-i1")?;
/// let request = uuid::Uuid::now_v7();
/// let first = dispatch_with_query_idempotent(&store, &stream, &query, &Pay, &JsonCodec::new(), &30, request).await?;
/// let retry = dispatch_with_query_idempotent(&store, &stream, &query, &Pay, &JsonCodec::new(), &30, request).await?;
/// assert_eq!(first.events[0].id, retry.events[0].id);
/// assert_eq!(store.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[allow(clippy::too_many_arguments)]
pub async fn dispatch_with_query_idempotent<S, D, C>(
    store: &S,
    stream: &StreamId,
    query: &Query,
    decider: &D,
    codec: &C,
    command: &D::Command,
    key: uuid::Uuid,
) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
where
    S: EventStore,
    D: DispatchDecider,
    C: Codec<Event = D::Event>,
{
    query_dispatch(
        store,
        stream,
        query,
        decider,
        codec,
        command,
        DispatchOptions::idempotent(key),
    )
    .await
}

/// Like [`dispatch_with_query`], and the
/// `reactor`'s effects of the new events are recorded in the same
/// transaction as the events: both commit or neither does.
///
/// The reactor runs once the append has assigned positions, before the
/// commit. It should be quick and pure (it runs while the dispatch holds its
/// context's locks); a panic in it is caught and writes nothing. Stores that
/// cannot record effects ([`EventStore::can_record_effects`]) refuse with a
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
/// let query = Query::tagged_with_all([Tag::new("username:renata")?]);
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
    D: DispatchDecider,
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
        DispatchOptions::with_effects(reactor),
    )
    .await
}

/// [`dispatch_with_outbox`], idempotent under `key` as
/// [`dispatch_with_query_idempotent`] is: a retry whose first attempt
/// committed replays that attempt's events and records no effects again
/// (the first commit holds them).
#[allow(clippy::too_many_arguments)]
pub async fn dispatch_with_outbox_idempotent<S, D, C, R>(
    store: &S,
    stream: &StreamId,
    query: &Query,
    decider: &D,
    codec: &C,
    command: &D::Command,
    reactor: &R,
    key: uuid::Uuid,
) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
where
    S: EventStore,
    D: DispatchDecider,
    C: Codec<Event = D::Event>,
    R: Reactor<Event = D::Event, Effect = OutboxMessage> + Sync,
{
    require_effects(store)?;
    let options = DispatchOptions {
        idempotency_key: Some(key),
        ..DispatchOptions::with_effects(reactor)
    };
    query_dispatch(store, stream, query, decider, codec, command, options).await
}

/// Refuses, before anything is read or written, a store that cannot record
/// effects with its appends.
pub(crate) fn require_effects<S: EventStore, E>(store: &S) -> Result<(), DispatchError<E>> {
    if store.can_record_effects() {
        Ok(())
    } else {
        Err(DispatchError::Store(StoreError::new(
            StoreErrorKind::Rejected,
            "this store cannot record effects with its appends",
        )))
    }
}

/// The one query dispatch behind [`dispatch_with_query`],
/// [`dispatch_with_query_idempotent`] and [`dispatch_with_outbox`].
pub(crate) async fn query_dispatch<S, D, C>(
    store: &S,
    stream: &StreamId,
    query: &Query,
    decider: &D,
    codec: &C,
    command: &D::Command,
    options: DispatchOptions<'_, D::Event>,
) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
where
    S: EventStore,
    D: DispatchDecider,
    C: Codec<Event = D::Event>,
{
    let mut tried_again = false;
    loop {
        let mut process = CommandProcess::new(decider, codec, command)
            .map_err(from_process_error)?
            .with_options(options);
        let outcome = match options.condition {
            Some(condition) => {
                store
                    .decide_with_condition(stream, query, condition, &mut process)
                    .await
            }
            None => store.decide_with_query(stream, query, &mut process).await,
        };
        match outcome {
            Ok(committed) => return into_dispatch(committed, process.decided, codec),
            // A keyed command's earlier attempt committed while it was
            // decided: once more, and the store replays it.
            Err(DecisionError::Process(ProcessError::EarlierAttempt)) if !tried_again => {
                tried_again = true;
            }
            Err(e) => return Err(from_decision_error(e)),
        }
    }
}

/// Handles `command` on one stream: the stream's events are the context and the
/// append expects the stream's revision to be unchanged.
///
/// A stream revision is the right boundary only when one stream really is the
/// consistency boundary; [`dispatch_with_query`] is the general form.
/// ```
/// # use factos::*;
/// # use factos::json::{JsonCodec, JsonEvent};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # struct Deposited(u32);
/// # impl JsonEvent for Deposited {
/// #     const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
/// #     fn event_type(&self) -> &'static str { "Deposited" }
/// #     fn tags(&self) -> Vec<String> { vec!["account:a1".into()] }
/// # }
/// # struct Balance;
/// # impl Decider for Balance {
/// #     type State = u32; type Command = u32; type Event = Deposited; type Error = &'static str;
/// #     fn initial(&self) -> u32 { 0 }
/// #     fn decide(&self, _: &u32, amount: &u32) -> Result<Vec<Deposited>, &'static str> { Ok(vec![Deposited(*amount)]) }
/// #     fn evolve(&self, total: u32, e: &Deposited) -> u32 { total + e.0 }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let account = StreamId::new("account-a1")?;
/// let first = dispatch(&store, &account, &Balance, &JsonCodec::new(), &10).await?;
/// let second = dispatch(&store, &account, &Balance, &JsonCodec::new(), &5).await?;
/// assert_eq!((first.events[0].revision, second.events[0].revision), (0, 1));
/// assert_eq!(second.append.current_revision, Revision::Current(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn dispatch<S, D, C>(
    store: &S,
    stream: &StreamId,
    decider: &D,
    codec: &C,
    command: &D::Command,
) -> Result<Dispatch<D::Event>, DispatchError<D::Error>>
where
    S: EventStore,
    D: DispatchDecider,
    C: Codec<Event = D::Event>,
{
    let mut process = CommandProcess::new(decider, codec, command).map_err(from_process_error)?;
    let committed = store
        .decide_on_stream(stream, &mut process)
        .await
        .map_err(from_decision_error)?;
    into_dispatch(committed, process.decided, codec)
}

/// The rows `codec` owns, decoded, in order (rows of other types passed over).
fn decode_all<C: Codec>(
    codec: &C,
    stored: Vec<StoredEvent>,
) -> Result<Vec<Recorded<C::Event>>, ReadError> {
    stored
        .into_iter()
        .filter(|row| codec.owns_type(&row.event_type))
        .map(|row| {
            let event = crate::codec::decode_stored(codec, &row).map_err(ReadError::Decode)?;
            Ok(Recorded::from_stored(row, event))
        })
        .collect()
}

/// Reads and folds the context of `query` (without deciding).
///
/// ```
/// # use factos::*;
/// # use factos::json::{JsonCodec, JsonEvent};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # struct Deposited(u32);
/// # impl JsonEvent for Deposited {
/// #     const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
/// #     fn event_type(&self) -> &'static str { "Deposited" }
/// #     fn tags(&self) -> Vec<String> { vec!["account:a1".into()] }
/// # }
/// # struct Balance;
/// # impl Decider for Balance {
/// #     type State = u32; type Command = u32; type Event = Deposited; type Error = &'static str;
/// #     fn initial(&self) -> u32 { 0 }
/// #     fn decide(&self, _: &u32, amount: &u32) -> Result<Vec<Deposited>, &'static str> { Ok(vec![Deposited(*amount)]) }
/// #     fn evolve(&self, total: u32, e: &Deposited) -> u32 { total + e.0 }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let query = Query::tagged_with_all([Tag::new("account:a1")?]);
/// dispatch_with_query(&store, &StreamId::new("s")?, &query, &Balance, &JsonCodec::new(), &7).await?;
/// let context = read_context(&store, &query, &Balance, &JsonCodec::new()).await?;
/// assert_eq!(context.state, 7);
/// assert_eq!(context.append_condition, AppendCondition::fail_if_events_match(query, context.position));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn read_context<S, D, C>(
    store: &S,
    query: &Query,
    decider: &D,
    codec: &C,
) -> Result<Context<D::Event, D::State>, ReadError>
where
    S: EventStore,
    D: Decider,
    C: Codec<Event = D::Event>,
{
    let read = store
        .read(query, ReadOptions::default())
        .await
        .map_err(ReadError::Store)?;
    // The last matching event, passed over or not: the condition counts it.
    let position = read.events.last().map(|e| e.position);
    let events = decode_all(codec, read.events)?;
    let state = crate::fold_decider(decider, events.iter().map(|r| &r.event));
    Ok(Context {
        query: query.clone(),
        state,
        events,
        position,
        append_condition: AppendCondition::fail_if_events_match(query.clone(), position),
    })
}

/// Reads and folds one stream.
///
/// ```
/// # use factos::*;
/// # use factos::json::{JsonCodec, JsonEvent};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # struct Deposited(u32);
/// # impl JsonEvent for Deposited {
/// #     const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
/// #     fn event_type(&self) -> &'static str { "Deposited" }
/// #     fn tags(&self) -> Vec<String> { vec!["account:a1".into()] }
/// # }
/// # struct Balance;
/// # impl Decider for Balance {
/// #     type State = u32; type Command = u32; type Event = Deposited; type Error = &'static str;
/// #     fn initial(&self) -> u32 { 0 }
/// #     fn decide(&self, _: &u32, amount: &u32) -> Result<Vec<Deposited>, &'static str> { Ok(vec![Deposited(*amount)]) }
/// #     fn evolve(&self, total: u32, e: &Deposited) -> u32 { total + e.0 }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let account = StreamId::new("account-a1")?;
/// dispatch(&store, &account, &Balance, &JsonCodec::new(), &3).await?;
/// let loaded = load_stream(&store, &account, &Balance, &JsonCodec::new()).await?;
/// assert_eq!((loaded.state, loaded.revision), (3, Revision::Current(0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn load_stream<S, D, C>(
    store: &S,
    stream: &StreamId,
    decider: &D,
    codec: &C,
) -> Result<LoadedStream<D::Event, D::State>, ReadError>
where
    S: EventStore,
    D: Decider,
    C: Codec<Event = D::Event>,
{
    let read = store.read_stream(stream).await.map_err(ReadError::Store)?;
    let events = decode_all(codec, read.events)?;
    let state = crate::fold_decider(decider, events.iter().map(|r| &r.event));
    Ok(LoadedStream {
        stream: read.stream,
        state,
        events,
        revision: read.revision,
    })
}
