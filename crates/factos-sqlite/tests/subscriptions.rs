//! Durable subscriptions on SQLite: every matching event in position
//! order, live commits followed, exactly-once projections (the writes and
//! the checkpoint in one transaction), one active instance, takeover when
//! a holder's lease runs out, a changed query refused, reset and removal.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Position, Query, StoredEvent, StreamId,
};
use factos_sqlite::rusqlite;
use factos_sqlite::{
    EventHandler, ProjectionHandler, SqliteOptions, SqliteStore, Subscription, SubscriptionError,
    SubscriptionOptions,
};

/// A subscriber only a wake-up reaches within a test: a poll interval of a
/// minute, a lease of an hour (renewed every third of it).
fn woken_only(store: &SqliteStore, name: &str) -> Subscription {
    Subscription::new(store, name, matching())
        .unwrap()
        .with_options(SubscriptionOptions::default().poll_interval(Duration::from_secs(60)))
        .unwrap()
        .with_lease(Duration::from_secs(3600))
        .unwrap()
}

fn matching() -> Query {
    Query::types([EventType::new("Match").unwrap()])
}

/// Appends `n` events, every third of type `Match` (the rest `Other`), in
/// appends of up to 10; returns the positions of the `Match` ones.
async fn fill(store: &SqliteStore, n: usize) -> Vec<Position> {
    let mut matched = Vec::new();
    let mut left = n;
    let mut next = 0usize;
    while left > 0 {
        let take = left.min(10);
        let events: Vec<NewEvent> = (next..next + take)
            .map(|i| {
                let kind = if i % 3 == 0 { "Match" } else { "Other" };
                NewEvent::new(EventType::new(kind).unwrap(), i.to_string().into_bytes())
            })
            .collect();
        let committed = store
            .append(&StreamId::new("s").unwrap(), events, AppendCondition::None)
            .await
            .unwrap();
        matched.extend(
            committed
                .events
                .iter()
                .filter(|e| e.event_type.as_str() == "Match")
                .map(|e| e.position),
        );
        left -= take;
        next += take;
    }
    matched
}

/// Records the positions it is handed.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Position>>>);

impl Collect {
    fn seen(&self) -> Vec<Position> {
        self.0.lock().unwrap().clone()
    }
}

impl EventHandler for Collect {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        self.0
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.position));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_hands_every_matching_event_over_in_order() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    let expected = fill(&store, 250).await;
    let subscription = Subscription::new(&store, "collect", matching())
        .unwrap()
        .with_options(SubscriptionOptions::default().batch_size(7))
        .unwrap();
    let mut handler = Collect::default();
    let count = subscription.catch_up(&mut handler).await.unwrap();
    assert_eq!(count, expected.len());
    assert_eq!(handler.seen(), expected);
    // The checkpoint is at the head (the last events do not match).
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        Some(Position::new(250).unwrap())
    );
    assert_eq!(subscription.catch_up(&mut handler).await.unwrap(), 0);
    // The next catch-up starts at the checkpoint.
    let more = fill(&store, 30).await;
    assert_eq!(
        subscription.catch_up(&mut handler).await.unwrap(),
        more.len()
    );
    assert_eq!(handler.seen().len(), expected.len() + more.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_commits_as_they_happen_and_stops() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    let before = fill(&store, 20).await;
    // A poll interval of a minute and a lease of an hour (it renews every
    // third of it): only this instance's commits wake it within the test.
    let subscription = woken_only(&store, "live");
    let handler = Collect::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let (subscription, mut handler) = (subscription.clone(), handler.clone());
        tokio::spawn(async move {
            subscription
                .run(&mut handler, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let mut expected = before;
    for _ in 0..5 {
        expected.extend(fill(&store, 12).await);
        let last = *expected.last().unwrap();
        assert!(
            subscription
                .wait_until_applied(last, Duration::from_secs(10))
                .await
                .unwrap(),
            "a commit did not wake the subscriber"
        );
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(handler.seen(), expected);
    // Stopped, it released the subscriber: another instance takes it at once.
    assert_eq!(
        subscription
            .catch_up(&mut Collect::default())
            .await
            .unwrap(),
        0
    );
}

/// Counts the events it applies per type in `counts`, and fails the batch
/// holding a given position as often as told.
#[derive(Debug)]
struct CountByType {
    fail_at: Option<Position>,
    failures_left: u32,
}

impl ProjectionHandler for CountByType {
    type Error = String;
    fn apply(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), String> {
        for event in events {
            tx.execute(
                "INSERT INTO counts (type, n) VALUES (?1, 1)
                 ON CONFLICT (type) DO UPDATE SET n = n + 1",
                [event.event_type.as_str()],
            )
            .map_err(|e| e.to_string())?;
            if Some(event.position) == self.fail_at && self.failures_left > 0 {
                // After a write of this batch: the rollback must undo it.
                self.failures_left -= 1;
                return Err(format!("failing at {}", event.position));
            }
        }
        Ok(())
    }
}

/// The projection table of [`CountByType`].
const COUNTS: &str = "CREATE TABLE counts (type TEXT PRIMARY KEY, n INTEGER NOT NULL)";

fn counted(file: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(file).unwrap();
    c.query_row("SELECT coalesce(sum(n), 0) FROM counts", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_applies_each_event_exactly_once_with_its_checkpoint() {
    let dir = common::Dir::new();
    let (file, store) = dir.store_with(COUNTS).await;
    let expected = fill(&store, 300).await;
    let options = SubscriptionOptions::default()
        .batch_size(10)
        .retry_delay(Duration::from_millis(1));
    let subscription = Subscription::new(&store, "counts", matching())
        .unwrap()
        .with_options(options.clone().handler_attempts(3))
        .unwrap();
    // A batch failing twice is retried and applied once.
    let (_, handled) = subscription
        .catch_up_projection(CountByType {
            fail_at: Some(expected[15]),
            failures_left: 2,
        })
        .await
        .unwrap();
    assert_eq!(handled, expected.len());
    assert_eq!(counted(&file), i64::try_from(expected.len()).unwrap());

    // A batch that keeps failing stops the subscriber before it: neither its
    // writes nor its checkpoint commit.
    let more = fill(&store, 60).await;
    let failing = Subscription::new(&store, "counts", matching())
        .unwrap()
        .with_options(options.handler_attempts(2))
        .unwrap();
    let checkpoint = failing.checkpoint().await.unwrap();
    let outcome = failing
        .catch_up_projection(CountByType {
            fail_at: Some(more[0]),
            failures_left: u32::MAX,
        })
        .await;
    assert!(
        matches!(outcome, Err(SubscriptionError::Handler { attempts: 2, .. })),
        "{outcome:?}"
    );
    assert_eq!(failing.checkpoint().await.unwrap(), checkpoint);
    assert_eq!(counted(&file), i64::try_from(expected.len()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_holds_a_subscriber_and_a_standby_takes_over_a_dead_one() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    let first = fill(&store, 30).await;
    let lease = Duration::from_millis(300);
    let subscription = |store: &SqliteStore| {
        Subscription::new(store, "single", matching())
            .unwrap()
            .with_options(SubscriptionOptions::default().poll_interval(Duration::from_millis(20)))
            .unwrap()
            .with_lease(lease)
            .unwrap()
    };
    // The active instance: holds the subscriber until its task is aborted,
    // which (like a killed process) never releases it.
    let active = {
        let (subscription, mut handler) = (subscription(&store), Collect::default());
        tokio::spawn(async move { subscription.run(&mut handler, std::future::pending()).await })
    };
    let watcher = subscription(&store);
    assert!(
        watcher
            .wait_until_applied(*first.last().unwrap(), Duration::from_secs(10))
            .await
            .unwrap()
    );
    // A second instance (another store on the file, as another process)
    // finds it held.
    let other = SqliteStore::open(store.path(), SqliteOptions::default())
        .await
        .unwrap();
    let busy = subscription(&other).catch_up(&mut Collect::default()).await;
    assert!(matches!(busy, Err(SubscriptionError::Busy)), "{busy:?}");
    let listed = other.subscribers().await.unwrap();
    assert!(listed[0].active, "{listed:?}");
    // The holder dies; its lease runs out; the standby takes over from the
    // checkpoint and hands over only what came after it.
    active.abort();
    let _ = active.await;
    let later = fill(&store, 30).await;
    let standby = Collect::default();
    let taking_over = {
        let (subscription, mut handler) = (subscription(&other), standby.clone());
        tokio::spawn(async move {
            subscription
                .run(&mut handler, tokio::time::sleep(Duration::from_secs(3)))
                .await
        })
    };
    assert!(
        watcher
            .wait_until_applied(*later.last().unwrap(), Duration::from_secs(10))
            .await
            .unwrap(),
        "the standby did not take over"
    );
    taking_over.await.unwrap().unwrap();
    assert_eq!(standby.seen(), later);
}

/// A handler slower than the lease: another instance takes over meanwhile.
struct Slow(Duration);

impl EventHandler for Slow {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, _: &[StoredEvent]) -> Result<(), Self::Error> {
        tokio::time::sleep(self.0).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_lease_was_taken_over_cannot_move_the_checkpoint() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    fill(&store, 30).await;
    let short = Subscription::new(&store, "slow", matching())
        .unwrap()
        .with_options(SubscriptionOptions::default().poll_interval(Duration::from_millis(10)))
        .unwrap()
        .with_lease(Duration::from_millis(50))
        .unwrap();
    let slow = {
        let short = short.clone();
        tokio::spawn(async move { short.catch_up(&mut Slow(Duration::from_millis(400))).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The lease ran out while the slow handler works: another instance
    // takes over and is itself slow, so the checkpoint has not moved when
    // the first one finishes its batch.
    let taker = {
        let short = short.clone();
        tokio::spawn(async move {
            short
                .run(&mut Slow(Duration::from_secs(30)), std::future::pending())
                .await
        })
    };
    let lost = slow.await.unwrap();
    assert!(
        matches!(lost, Err(SubscriptionError::LeaseLost)),
        "{lost:?}"
    );
    assert_eq!(short.checkpoint().await.unwrap(), None);
    taker.abort();
    // Once the taker's lease ran out too, an instance handles everything.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut handler = Collect::default();
    assert_eq!(short.catch_up(&mut handler).await.unwrap(), 10);
    assert_eq!(
        short.checkpoint().await.unwrap(),
        Some(Position::new(30).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_query_is_refused_until_the_subscriber_is_reset() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    fill(&store, 9).await;
    let first = Subscription::new(&store, "q", matching()).unwrap();
    assert_eq!(first.catch_up(&mut Collect::default()).await.unwrap(), 3);
    let changed = Subscription::new(&store, "q", Query::all()).unwrap();
    let refused = changed.catch_up(&mut Collect::default()).await;
    assert!(
        matches!(refused, Err(SubscriptionError::QueryChanged { .. })),
        "{refused:?}"
    );
    assert!(store.reset_subscriber("q", 0).await.unwrap());
    assert_eq!(changed.catch_up(&mut Collect::default()).await.unwrap(), 9);
    assert!(!store.reset_subscriber("nobody", 0).await.unwrap());
    assert!(store.remove_subscriber("q").await.unwrap());
    assert!(store.subscribers().await.unwrap().is_empty());
    assert!(matches!(
        Subscription::new(&store, "", Query::all()),
        Err(SubscriptionError::InvalidName(_))
    ));
    assert!(matches!(
        Subscription::new(&store, "p", Query::all())
            .unwrap()
            .with_options(
                SubscriptionOptions::default().on_poison(factos_sqlite::PoisonPolicy::Park)
            ),
        Err(SubscriptionError::InvalidOptions(_))
    ));
}

/// Panics in the middle of its batch, after a write.
#[derive(Debug)]
struct Panicking;

impl ProjectionHandler for Panicking {
    type Error = String;
    fn apply(&mut self, tx: &rusqlite::Transaction<'_>, _: &[StoredEvent]) -> Result<(), String> {
        tx.execute("INSERT INTO counts (type, n) VALUES ('panic', 1)", [])
            .map_err(|e| e.to_string())?;
        panic!("the projection panicked on purpose")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_projection_writes_nothing_and_the_store_goes_on() {
    let dir = common::Dir::new();
    let (file, store) = dir.store_with(COUNTS).await;
    fill(&store, 9).await;
    let subscription = Subscription::new(&store, "panics", matching()).unwrap();
    let outcome = subscription.catch_up_projection(Panicking).await;
    assert!(
        matches!(outcome, Err(SubscriptionError::Store(_))),
        "{outcome:?}"
    );
    assert_eq!(counted(&file), 0, "the panicking batch's write was kept");
    assert_eq!(subscription.checkpoint().await.unwrap(), None);
    // The writer goes on: appends, and the subscriber (released) runs again.
    fill(&store, 3).await;
    let (_, handled) = subscription
        .catch_up_projection(CountByType {
            fail_at: None,
            failures_left: 0,
        })
        .await
        .unwrap();
    assert_eq!(handled, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_caller_stopped_waiting_still_wakes_the_subscriber() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    let first = fill(&store, 3).await;
    // Only a wake-up reaches it within the test: a poll interval of a
    // minute, a lease of an hour.
    let subscription = woken_only(&store, "woken");
    let running = {
        let subscription = subscription.clone();
        tokio::spawn(async move {
            subscription
                .run(&mut Collect::default(), std::future::pending())
                .await
        })
    };
    assert!(
        subscription
            .wait_until_applied(first[0], Duration::from_secs(10))
            .await
            .unwrap()
    );
    // The append's caller stops waiting right after handing the write over:
    // the write commits all the same, and the writer wakes the subscriber.
    let event = NewEvent::new(EventType::new("Match").unwrap(), b"late".to_vec());
    // Polled once (it hands the write to the writer), then dropped.
    let stream = StreamId::new("s").unwrap();
    let append = store.append(&stream, vec![event], AppendCondition::None);
    let finished = tokio::select! {
        biased;
        _ = append => true,
        () = std::future::ready(()) => false,
    };
    assert!(!finished, "the append finished in its first poll");
    let started = std::time::Instant::now();
    let position = loop {
        let head = store
            .read(&Query::all(), factos::ReadOptions::default())
            .await
            .unwrap()
            .head;
        if let Some(head) = head.filter(|h| h.get() == 4) {
            break head;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the write never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        subscription
            .wait_until_applied(position, Duration::from_secs(5))
            .await
            .unwrap(),
        "the subscriber was not woken by a commit whose caller had gone"
    );
    running.abort();
}
