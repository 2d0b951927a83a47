//! The in-memory store records effects with the dispatch that caused them,
//! and a failing reactor takes the dispatch's events back.

#![allow(clippy::unwrap_used, clippy::panic)]

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    Decider, DispatchError, EventStore, InMemoryStore, OutboxMessage, Query, ReadOptions, Recorded,
    StreamId, Tag, Topic, dispatch_with_outbox, reactor_fn,
};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Sold {
    seat: u32,
}

impl JsonEvent for Sold {
    const EVENT_TYPES: &'static [&'static str] = &["Sold"];
    fn event_type(&self) -> &'static str {
        "Sold"
    }
    fn tags(&self) -> Vec<String> {
        vec!["show:1".to_string()]
    }
}

/// Sells two seats per command.
struct SellTwo;

impl Decider for SellTwo {
    type Command = ();
    type Event = Sold;
    type State = u32;
    type Error = String;
    fn initial(&self) -> u32 {
        0
    }
    fn decide(&self, sold: &u32, (): &()) -> Result<Vec<Sold>, String> {
        Ok(vec![Sold { seat: sold + 1 }, Sold { seat: sold + 2 }])
    }
    fn evolve(&self, sold: u32, _: &Sold) -> u32 {
        sold + 1
    }
}

async fn sell(
    store: &InMemoryStore,
    reactor: &(impl factos::Reactor<Event = Sold, Effect = OutboxMessage> + Sync),
) -> Result<factos::Dispatch<Sold>, DispatchError<String>> {
    dispatch_with_outbox(
        store,
        &StreamId::new("show-1").unwrap(),
        &Query::tagged_with_all([Tag::new("show:1").unwrap()]),
        &SellTwo,
        &JsonCodec::<Sold>::new(),
        &(),
        reactor,
    )
    .await
}

#[tokio::test]
async fn effects_name_their_events_and_a_failing_reactor_writes_nothing() {
    let store = InMemoryStore::new();
    let ticket = reactor_fn(|r: &Recorded<Sold>| {
        vec![OutboxMessage::new(
            Topic::new("ticket").unwrap(),
            r.event.seat.to_string().into_bytes(),
        )]
    });
    let first = sell(&store, &ticket).await.unwrap();
    let outbox = store.outbox();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].cause, first.events[0].position);
    assert_eq!(outbox[1].cause, first.events[1].position);
    assert_eq!(outbox[1].message.payload, b"2");

    let panicking = reactor_fn(|_: &Recorded<Sold>| -> Vec<OutboxMessage> {
        panic!("the reactor panicked on purpose")
    });
    assert!(matches!(
        sell(&store, &panicking).await,
        Err(DispatchError::Panicked { .. })
    ));
    let too_many = reactor_fn(|_: &Recorded<Sold>| {
        vec![OutboxMessage::new(Topic::new("ticket").unwrap(), Vec::new()); 501]
    });
    assert!(matches!(
        sell(&store, &too_many).await,
        Err(DispatchError::Encode(_))
    ));
    assert_eq!(store.outbox().len(), 2);
    let all = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(
        all.events.len(),
        2,
        "the failed dispatches' events were taken back"
    );
    // The log is consistent after the undo: the next dispatch continues it.
    let next = sell(&store, &ticket).await.unwrap();
    assert_eq!(next.events[0].position.get(), 3);
    assert_eq!(next.events[0].revision, 2);
    assert_eq!(store.outbox().len(), 4);
}

#[tokio::test]
async fn a_dispatcher_records_effects_and_recovers_its_cache_after_a_failing_reactor() {
    let store = InMemoryStore::new();
    let tickets = factos::Dispatcher::new(store.clone(), SellTwo, JsonCodec::<Sold>::new());
    let stream = StreamId::new("show-1").unwrap();
    let query = Query::tagged_with_all([Tag::new("show:1").unwrap()]);
    let ticket = reactor_fn(|r: &Recorded<Sold>| {
        vec![OutboxMessage::new(
            Topic::new("ticket").unwrap(),
            r.event.seat.to_string().into_bytes(),
        )]
    });
    tickets
        .dispatch_with_outbox(&stream, &query, &(), &ticket)
        .await
        .unwrap();
    let panicking = reactor_fn(|_: &Recorded<Sold>| -> Vec<OutboxMessage> {
        panic!("the reactor panicked on purpose")
    });
    assert!(matches!(
        tickets
            .dispatch_with_outbox(&stream, &query, &(), &panicking)
            .await,
        Err(DispatchError::Panicked { .. })
    ));
    // The failed dispatch left neither events nor a stale cached state: the
    // next one sells seats 3 and 4.
    let next = tickets
        .dispatch_with_outbox(&stream, &query, &(), &ticket)
        .await
        .unwrap();
    let seats: Vec<u32> = next.events.iter().map(|r| r.event.seat).collect();
    assert_eq!(seats, vec![3, 4]);
    let payloads: Vec<Vec<u8>> = store
        .outbox()
        .into_iter()
        .map(|e| e.message.payload)
        .collect();
    assert_eq!(
        payloads,
        vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec(), b"4".to_vec()]
    );
}

#[tokio::test]
async fn a_dispatcher_retry_with_the_same_key_appends_nothing_twice() {
    let store = InMemoryStore::new();
    let tickets = factos::Dispatcher::new(store.clone(), SellTwo, JsonCodec::<Sold>::new());
    let stream = StreamId::new("show-1").unwrap();
    let query = Query::tagged_with_all([Tag::new("show:1").unwrap()]);
    let key = uuid::Uuid::from_u128(7);
    let first = tickets
        .dispatch_with_query_idempotent(&stream, &query, &(), key)
        .await
        .unwrap();
    let retry = tickets
        .dispatch_with_query_idempotent(&stream, &query, &(), key)
        .await
        .unwrap();
    assert_eq!(store.len(), 2);
    let ids = |d: &factos::Dispatch<Sold>| d.events.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&retry));
    // The cache was not fed the replayed events twice: a new command sells 3 and 4.
    let next = tickets
        .dispatch_with_query_idempotent(&stream, &query, &(), uuid::Uuid::from_u128(8))
        .await
        .unwrap();
    let seats: Vec<u32> = next.events.iter().map(|r| r.event.seat).collect();
    assert_eq!(seats, vec![3, 4]);
}

/// A keyed outbox dispatch (`dispatch_with_outbox_idempotent`) retried with
/// the same key replays its first attempt: the same events, no second copy
/// of them or of their effects.
#[tokio::test]
async fn a_keyed_outbox_retry_records_its_effects_once() {
    let store = InMemoryStore::new();
    let topic = Topic::new("seats").unwrap();
    let reactor = reactor_fn(move |r: &Recorded<Sold>| {
        vec![OutboxMessage::new(
            topic.clone(),
            r.event.seat.to_string().into_bytes(),
        )]
    });
    let key = uuid::Uuid::now_v7();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let dispatch = factos::dispatch_with_outbox_idempotent(
            &store,
            &StreamId::for_request(key),
            &Query::tagged_with_all([Tag::new("show:1").unwrap()]),
            &SellTwo,
            &JsonCodec::<Sold>::new(),
            &(),
            &reactor,
            key,
        )
        .await
        .unwrap();
        ids.push(dispatch.events.iter().map(|e| e.id).collect::<Vec<_>>());
    }
    assert_eq!(
        ids[0], ids[1],
        "the retry reports the first attempt's events"
    );
    assert_eq!(store.len(), 2, "events stored");
    let payloads: Vec<Vec<u8>> = store
        .outbox()
        .into_iter()
        .map(|e| e.message.payload)
        .collect();
    assert_eq!(payloads, [b"1".to_vec(), b"2".to_vec()], "effects recorded");
}
