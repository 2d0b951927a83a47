//! The `Dispatcher`'s cache is used, bounded and least-recently-used: the
//! decider's own count of `evolve` calls shows which dispatches were fed
//! their context again. Also the bounds on outbox effects, exactly at and one
//! past each limit, and which store errors make a dispatch retryable.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use factos::json::{JsonCodec, JsonEvent};
use factos::outbox::{MAX_EFFECT_PAYLOAD_BYTES, MAX_EFFECTS_PER_DISPATCH};
use factos::{
    AppendCondition, Codec, Decider, DispatchError, Dispatcher, EncodeError, EventStore,
    InMemoryStore, OutboxMessage, Query, QueryItem, StoreError, StoreErrorKind, StreamId, Topic,
    ValidationError, reactor_fn,
};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Noted {
    tag: String,
}

impl JsonEvent for Noted {
    const EVENT_TYPES: &'static [&'static str] = &["Noted"];
    fn event_type(&self) -> &'static str {
        "Noted"
    }
    fn tags(&self) -> Vec<String> {
        vec![self.tag.clone()]
    }
}

/// Counts the events it folds; decides `self`'s command's events.
#[derive(Clone, Default)]
struct Counting {
    evolved: Arc<AtomicUsize>,
}

impl Counting {
    /// Evolve calls since the last call.
    fn fed(&self) -> usize {
        self.evolved.swap(0, Ordering::Relaxed)
    }
}

impl Decider for Counting {
    type State = usize;
    type Command = Vec<Noted>;
    type Event = Noted;
    type Error = String;

    fn initial(&self) -> usize {
        0
    }

    fn decide(&self, _: &usize, command: &Vec<Noted>) -> Result<Vec<Noted>, String> {
        Ok(command.clone())
    }

    fn evolve(&self, seen: usize, _: &Noted) -> usize {
        self.evolved.fetch_add(1, Ordering::Relaxed);
        seen + 1
    }
}

fn query(tag: &str) -> Query {
    Query::item(QueryItem::parse(["Noted"], [tag]).unwrap())
}

/// A store with three events for each of the tags `a`, `b` and `c`.
async fn store() -> InMemoryStore {
    let store = InMemoryStore::new();
    let codec = JsonCodec::<Noted>::new();
    for tag in ["a", "b", "c"] {
        for _ in 0..3 {
            let event = codec.encode(&Noted { tag: tag.into() }).unwrap();
            store
                .append(
                    &StreamId::new("s").unwrap(),
                    vec![event],
                    AppendCondition::None,
                )
                .await
                .unwrap();
        }
    }
    store
}

/// Dispatches an empty decision on `tag` and says how many events it was fed.
async fn fed(
    dispatcher: &Dispatcher<InMemoryStore, Counting, JsonCodec<Noted>>,
    decider: &Counting,
    tag: &str,
) -> usize {
    let _ = decider.fed();
    dispatcher
        .dispatch_with_query(&StreamId::new("s").unwrap(), &query(tag), &Vec::new())
        .await
        .unwrap();
    decider.fed()
}

#[tokio::test]
async fn a_cached_context_is_not_fed_again() {
    let decider = Counting::default();
    let dispatcher = Dispatcher::new(store().await, decider.clone(), JsonCodec::new());
    assert_eq!(
        fed(&dispatcher, &decider, "a").await,
        3,
        "the first dispatch reads the context"
    );
    assert_eq!(
        fed(&dispatcher, &decider, "a").await,
        0,
        "the second decides on the cached state"
    );
}

#[tokio::test]
async fn a_cached_context_catches_up_once_on_another_writers_event() {
    let decider = Counting::default();
    let store = store().await;
    let dispatcher = Dispatcher::new(store.clone(), decider.clone(), JsonCodec::new());
    assert_eq!(fed(&dispatcher, &decider, "a").await, 3);
    let event = JsonCodec::<Noted>::new()
        .encode(&Noted { tag: "a".into() })
        .unwrap();
    store
        .append(
            &StreamId::new("other").unwrap(),
            vec![event],
            AppendCondition::None,
        )
        .await
        .unwrap();
    assert_eq!(
        fed(&dispatcher, &decider, "a").await,
        1,
        "only the new event is fed"
    );
    assert_eq!(
        fed(&dispatcher, &decider, "a").await,
        0,
        "the cache moved to it"
    );
}

#[tokio::test]
async fn the_least_recently_used_context_is_evicted() {
    let decider = Counting::default();
    let dispatcher =
        Dispatcher::new(store().await, decider.clone(), JsonCodec::new()).with_cache_entries(2);
    let mut seen = Vec::new();
    for tag in ["a", "b", "a", "c", "a", "b"] {
        seen.push(fed(&dispatcher, &decider, tag).await);
    }
    // c evicts b (a was used after b), so a stays cached and b is read again.
    assert_eq!(seen, [3, 3, 0, 3, 0, 3]);
}

#[tokio::test]
async fn with_no_cache_entries_every_dispatch_reads_afresh() {
    let decider = Counting::default();
    let dispatcher =
        Dispatcher::new(store().await, decider.clone(), JsonCodec::new()).with_cache_entries(0);
    assert_eq!(fed(&dispatcher, &decider, "a").await, 3);
    assert_eq!(fed(&dispatcher, &decider, "a").await, 3);
}

/// A reactor making `count` messages of `len` bytes per event.
async fn dispatch_with_effects(count: usize, len: usize) -> Result<(), DispatchError<String>> {
    let store = InMemoryStore::new();
    let reactor = reactor_fn(move |_: &factos::Recorded<Noted>| {
        (0..count)
            .map(|_| OutboxMessage::new(Topic::new("t").unwrap(), vec![0; len]))
            .collect()
    });
    factos::dispatch_with_outbox(
        &store,
        &StreamId::new("s").unwrap(),
        &query("a"),
        &Counting::default(),
        &JsonCodec::new(),
        &vec![Noted { tag: "a".into() }],
        &reactor,
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn effects_are_bounded_exactly_at_their_limits() {
    dispatch_with_effects(MAX_EFFECTS_PER_DISPATCH, 1)
        .await
        .unwrap();
    assert!(matches!(
        dispatch_with_effects(MAX_EFFECTS_PER_DISPATCH + 1, 1).await,
        Err(DispatchError::Encode(EncodeError::Invalid(
            ValidationError::TooManyEffects { .. }
        )))
    ));
    dispatch_with_effects(1, MAX_EFFECT_PAYLOAD_BYTES)
        .await
        .unwrap();
    assert!(matches!(
        dispatch_with_effects(1, MAX_EFFECT_PAYLOAD_BYTES + 1).await,
        Err(DispatchError::Encode(EncodeError::Invalid(
            ValidationError::EffectTooLarge { .. }
        )))
    ));
}

#[test]
fn a_dispatch_is_retryable_after_a_retry_safe_store_error_only() {
    let store = |kind| DispatchError::<String>::Store(StoreError::new(kind, "x"));
    assert!(store(StoreErrorKind::Unavailable).is_retryable());
    assert!(store(StoreErrorKind::Timeout).is_retryable());
    assert!(!store(StoreErrorKind::CommitOutcomeUnknown).is_retryable());
    assert!(!store(StoreErrorKind::EventIdConflict).is_retryable());
    assert!(!DispatchError::Domain("no".to_string()).is_retryable());
}
