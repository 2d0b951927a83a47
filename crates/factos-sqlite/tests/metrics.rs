//! Metrics on SQLite: a known workload, then the values the `metrics`
//! facade recorded (a debugging recorder installed for this test binary)
//! under `store="sqlite"`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use factos::json::{JsonCodec, JsonEvent};
use factos::outbox::{LeasedMessage, MessageHandler, OutboxOptions};
use factos::subscription::{EventHandler, SubscriptionOptions};
use factos::{
    AppendCondition, Decider, Dispatcher, EventStore, NewEvent, OutboxMessage, Query, Recorded,
    StoredEvent, StreamId, Tag, Topic, dispatch_with_outbox, metrics as names, reactor_fn,
};
use factos_sqlite::{Outbox, Subscription};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

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

/// Ticks (`true`) or refuses (`false`).
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

/// Fails its first call.
struct FailOnce(bool);

impl EventHandler for FailOnce {
    type Error = String;
    async fn handle(&mut self, _: &[StoredEvent]) -> Result<(), String> {
        let first = !self.0;
        self.0 = true;
        if first {
            Err("first attempt fails".to_string())
        } else {
            Ok(())
        }
    }
}

impl MessageHandler for FailOnce {
    type Error = String;
    async fn deliver(&mut self, _: &LeasedMessage) -> Result<(), String> {
        let first = !self.0;
        self.0 = true;
        if first {
            Err("first delivery fails".to_string())
        } else {
            Ok(())
        }
    }
}

/// A recorded value: its name, its labels, the value.
type Value = (String, Vec<(String, String)>, DebugValue);

/// The sum of the counters (or histogram samples) named `name` whose labels
/// include `with`.
fn count(snapshot: &[Value], name: &str, with: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(c) => *c,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => 0,
        })
        .sum()
}

/// Two ticks, a refusal, a failed condition, a tick with an outbox message,
/// a subscriber failing once, the message failing once.
async fn workload(store: &factos_sqlite::SqliteStore) {
    let dispatcher = Dispatcher::new(store.clone(), Tick, JsonCodec::<Ticked>::new());
    let stream = StreamId::new("counter").unwrap();
    let query = Query::tagged_with_all([Tag::new("counter:a").unwrap()]);
    dispatcher
        .dispatch_with_query(&stream, &query, &true)
        .await
        .unwrap();
    dispatcher
        .dispatch_with_query(&stream, &query, &true)
        .await
        .unwrap();
    dispatcher
        .dispatch_with_query(&stream, &query, &false)
        .await
        .unwrap_err();
    let conflicting = NewEvent::new(factos::EventType::new("Ticked").unwrap(), b"{}".to_vec());
    store
        .append(
            &stream,
            vec![conflicting],
            AppendCondition::fail_if_events_match(query.clone(), None),
        )
        .await
        .unwrap_err();
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
    let subscription = Subscription::new(store, "metered", Query::all())
        .unwrap()
        .with_options(
            SubscriptionOptions::default()
                .handler_attempts(2)
                .retry_delay(Duration::from_millis(1)),
        )
        .unwrap();
    subscription.catch_up(&mut FailOnce(false)).await.unwrap();
    let outbox = Outbox::new(store, Topic::new("mail").unwrap())
        .with_options(
            OutboxOptions::default()
                .retry_delay(Duration::from_millis(1))
                .poll_interval(Duration::from_millis(10)),
        )
        .unwrap();
    let mut handler = FailOnce(false);
    outbox
        .run(&mut handler, tokio::time::sleep(Duration::from_millis(500)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_records_the_documented_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let dir = common::Dir::new();
    workload(&dir.store().await).await;
    let snapshot: Vec<Value> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            (key.name().to_string(), labels, value)
        })
        .collect();
    let sqlite = |outcome: &str| {
        count(
            &snapshot,
            names::DISPATCH_SECONDS,
            &[
                ("store", "sqlite"),
                ("strategy", "writer"),
                ("outcome", outcome),
            ],
        )
    };
    // Two ticks and the mailed tick committed, one refusal, one failed condition.
    assert_eq!(
        (
            sqlite("committed"),
            sqlite("refused"),
            sqlite("condition_failed")
        ),
        (3, 1, 1),
        "{snapshot:#?}"
    );
    assert_eq!(
        count(&snapshot, names::CONDITION_FAILURES, &[("store", "sqlite")]),
        1
    );
    let subscriber = [("subscriber", "metered")];
    assert_eq!(count(&snapshot, names::SUBSCRIBER_EVENTS, &subscriber), 3);
    assert_eq!(
        count(&snapshot, names::SUBSCRIBER_HANDLER_FAILURES, &subscriber),
        1
    );
    let attempts = |outcome: &str| {
        count(
            &snapshot,
            names::OUTBOX_ATTEMPTS,
            &[("topic", "mail"), ("outcome", outcome)],
        )
    };
    assert_eq!((attempts("failed"), attempts("delivered")), (1, 1));
}
