//! Metrics: a known workload on a real server, then the values the
//! `metrics` facade recorded (read from a debugging recorder installed for
//! this test binary) are exactly what the workload implies.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    AppendCondition, Decider, Dispatcher, EventStore, NewEvent, OutboxMessage, Query, Recorded,
    StoredEvent, StreamId, Tag, Topic, dispatch_with_outbox, metrics as names, reactor_fn,
};
use factos_postgres::{
    EventHandler, LeasedMessage, MessageHandler, Outbox, OutboxOptions, PostgresStore,
    StoreOptions, Subscription, SubscriptionOptions,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Ticked {
    n: u32,
}

impl JsonEvent for Ticked {
    const EVENT_TYPES: &'static [&'static str] = &["Ticked"];
    fn event_type(&self) -> &'static str {
        "Ticked"
    }
    fn tags(&self) -> Vec<String> {
        vec!["counter:a".to_string()]
    }
}

/// Ticks a counter (`true`) or refuses (`false`).
struct Tick;

impl Decider for Tick {
    type Command = bool;
    type Event = Ticked;
    type State = u32;
    type Error = String;
    fn initial(&self) -> u32 {
        0
    }
    fn decide(&self, seen: &u32, tick: &bool) -> Result<Vec<Ticked>, String> {
        if *tick {
            Ok(vec![Ticked { n: seen + 1 }])
        } else {
            Err("refused".to_string())
        }
    }
    fn evolve(&self, seen: u32, _: &Ticked) -> u32 {
        seen + 1
    }
}

fn counter() -> Query {
    Query::tagged_with_all([Tag::new("counter:a").unwrap()])
}

/// The recorded values: (name, sorted labels) → value.
type Values = BTreeMap<(String, Vec<(String, String)>), DebugValue>;

fn recorded(snapshotter: &Snapshotter) -> Values {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            ((key.name().to_string(), labels), value)
        })
        .collect()
}

/// The sum of the counters named `name` whose labels include `with`.
fn count(values: &Values, name: &str, with: &[(&str, &str)]) -> u64 {
    values
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, value)| match value {
            DebugValue::Counter(c) => *c,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => panic!("{name} is a gauge"),
        })
        .sum()
}

fn gauge(values: &Values, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    values.iter().find_map(|((n, labels), value)| {
        let matches = n == name
            && with
                .iter()
                .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v));
        match value {
            DebugValue::Gauge(g) if matches => Some(g.into_inner()),
            _ => None,
        }
    })
}

/// Fails its first call, then counts.
struct FailOnce {
    failed: bool,
    handled: usize,
}

impl EventHandler for FailOnce {
    type Error = String;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), String> {
        if !self.failed {
            self.failed = true;
            return Err("first attempt fails".to_string());
        }
        self.handled += events.len();
        Ok(())
    }
}

impl MessageHandler for FailOnce {
    type Error = String;
    async fn deliver(&mut self, _: &LeasedMessage) -> Result<(), String> {
        if !self.failed {
            self.failed = true;
            return Err("first delivery fails".to_string());
        }
        self.handled += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_records_the_documented_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    names::describe();

    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    dispatches(&database, &store, &snapshotter).await;
    subscriber(&store, &snapshotter).await;
    outbox(&store, &snapshotter).await;
    caches(&store, &snapshotter).await;
}

/// Dispatches through two instances' caches, a refusal, a failed condition.
async fn dispatches(
    database: &factos_postgres::throwaway::TestDatabase,
    store: &PostgresStore,
    snapshotter: &Snapshotter,
) {
    let other = common::second_instance(database, store);
    let a = Dispatcher::new(store.clone(), Tick, JsonCodec::<Ticked>::new());
    let b = Dispatcher::new(other, Tick, JsonCodec::<Ticked>::new());
    let stream = StreamId::new("counter").unwrap();
    let query = counter();
    // A: a miss, then a hit; B: a miss (its own cache).
    a.dispatch_with_query(&stream, &query, &true).await.unwrap();
    a.dispatch_with_query(&stream, &query, &true).await.unwrap();
    b.dispatch_with_query(&stream, &query, &true).await.unwrap();
    // A's cached state is stale: its fast path's condition fails (a retry),
    // the query turns hot, the guarded path commits.
    a.dispatch_with_query(&stream, &query, &true).await.unwrap();
    // Hot: straight to the guarded path; refused there.
    a.dispatch_with_query(&stream, &query, &false)
        .await
        .unwrap_err();
    // An append whose condition fails.
    let conflicting = NewEvent::new(factos::EventType::new("Ticked").unwrap(), b"{}".to_vec());
    store
        .append(
            &stream,
            vec![conflicting],
            AppendCondition::fail_if_events_match(query.clone(), None),
        )
        .await
        .unwrap_err();

    let values = recorded(snapshotter);
    let outcome = |outcome: &str| {
        count(
            &values,
            names::DISPATCH_SECONDS,
            &[("outcome", outcome), ("strategy", "scoped")],
        )
    };
    assert_eq!(outcome("committed"), 4, "{values:#?}");
    assert_eq!(outcome("refused"), 1);
    assert_eq!(outcome("condition_failed"), 1);
    assert_eq!(
        count(
            &values,
            names::CONDITION_FAILURES,
            &[("strategy", "scoped")]
        ),
        1
    );
    assert_eq!(count(&values, names::CACHE_MISSES, &[]), 2);
    assert_eq!(count(&values, names::CACHE_HITS, &[]), 3);
    assert_eq!(count(&values, names::RETRIES, &[("strategy", "scoped")]), 1);
    assert_eq!(count(&values, names::HOT_FALLBACKS, &[]), 1);
    assert!(count(&values, names::POOL_WAIT_SECONDS, &[("store", "postgres")]) >= 6);
}

/// A subscriber whose handler fails once.
async fn subscriber(store: &PostgresStore, snapshotter: &Snapshotter) {
    // A subscriber whose handler fails once: 4 events, one failure, caught up.
    let subscription = Subscription::new(store, "metered", Query::all())
        .unwrap()
        .with_options(
            SubscriptionOptions::default()
                .handler_attempts(2)
                .retry_delay(Duration::from_millis(1)),
        )
        .unwrap();
    let mut handler = FailOnce {
        failed: false,
        handled: 0,
    };
    subscription.catch_up(&mut handler).await.unwrap();
    assert_eq!(handler.handled, 4);
    let values = recorded(snapshotter);
    let subscriber = [("subscriber", "metered")];
    assert_eq!(count(&values, names::SUBSCRIBER_EVENTS, &subscriber), 4);
    assert_eq!(
        count(&values, names::SUBSCRIBER_HANDLER_FAILURES, &subscriber),
        1
    );
    assert_eq!(
        gauge(&values, names::SUBSCRIBER_LAG_EVENTS, &subscriber),
        Some(0.0)
    );
    assert_eq!(
        gauge(&values, names::SUBSCRIBER_LAG_SECONDS, &subscriber),
        Some(0.0)
    );
}

/// An outbox message whose first delivery fails.
async fn outbox(store: &PostgresStore, snapshotter: &Snapshotter) {
    let stream = StreamId::new("counter").unwrap();
    let query = counter();
    // An outbox message whose first delivery fails.
    let mail = Topic::new("mail").unwrap();
    let reactor = reactor_fn(|_: &Recorded<Ticked>| {
        vec![OutboxMessage::new(
            Topic::new("mail").unwrap(),
            b"hi".to_vec(),
        )]
    });
    dispatch_with_outbox(
        store,
        &stream,
        &query,
        &Tick,
        &JsonCodec::<Ticked>::new(),
        &true,
        &reactor,
    )
    .await
    .unwrap();
    let outbox = Outbox::new(store, mail)
        .with_options(
            OutboxOptions::default()
                .retry_delay(Duration::from_millis(1))
                .poll_interval(Duration::from_millis(10)),
        )
        .unwrap();
    let mut handler = FailOnce {
        failed: false,
        handled: 0,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while handler.handled == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the message was not delivered"
        );
        outbox
            .run(&mut handler, tokio::time::sleep(Duration::from_millis(50)))
            .await
            .unwrap();
    }
    let values = recorded(snapshotter);
    let topic = |outcome: &'static str| {
        count(
            &values,
            names::OUTBOX_ATTEMPTS,
            &[("topic", "mail"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        (topic("failed"), topic("delivered"), topic("parked")),
        (1, 1, 0)
    );
    // The worker counts the topic's messages as it goes (once per poll
    // interval): none parked; waiting is 1 or 0 depending on when it last counted.
    assert_eq!(
        gauge(
            &values,
            names::OUTBOX_MESSAGES,
            &[("topic", "mail"), ("state", "parked")]
        ),
        Some(0.0)
    );
    assert!(
        gauge(
            &values,
            names::OUTBOX_MESSAGES,
            &[("topic", "mail"), ("state", "waiting")]
        )
        .is_some()
    );
}

/// A combining dispatcher and a cache of one context; then every name.
async fn caches(store: &PostgresStore, snapshotter: &Snapshotter) {
    let stream = StreamId::new("counter").unwrap();
    let query = counter();
    // A combining dispatcher records how many commands it decided together.
    let combining =
        Dispatcher::new(store.clone(), Tick, JsonCodec::<Ticked>::new()).with_combining(8);
    combining
        .dispatch_with_query(&stream, &query, &true)
        .await
        .unwrap();
    // A cache of one context: a second query evicts the first.
    let small =
        Dispatcher::new(store.clone(), Tick, JsonCodec::<Ticked>::new()).with_cache_entries(1);
    let other_counter = Query::tagged_with_all([Tag::new("counter:b").unwrap()]);
    small
        .dispatch_with_query(&stream, &query, &true)
        .await
        .unwrap();
    small
        .dispatch_with_query(&stream, &other_counter, &true)
        .await
        .unwrap();
    let values = recorded(snapshotter);
    assert_eq!(count(&values, names::BATCH_DECISIONS, &[]), 1);
    assert_eq!(count(&values, names::CACHE_EVICTIONS, &[]), 1);
    // Every documented name was recorded by this workload.
    let named: std::collections::BTreeSet<&str> = values.keys().map(|(n, _)| n.as_str()).collect();
    for name in names::ALL {
        assert!(
            named.contains(name),
            "{name} was not recorded by the workload"
        );
    }
}
