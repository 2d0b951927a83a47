//! Durable subscriptions on a real server: late commits are not skipped,
//! concurrent writers' events arrive in position order, a subscriber killed
//! mid-batch loses nothing and (exactly-once helper) applies nothing twice,
//! and a standby takes over when the active instance dies.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::Collect;

use std::time::{Duration, Instant};

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StoredEvent, StreamId,
    Tag, Tags,
};
use factos_postgres::tokio_postgres::Transaction;
use factos_postgres::{
    EventHandler, PostgresStore, ProjectionHandler, StoreOptions, Subscription, SubscriptionError,
    SubscriptionOptions,
};
use tokio::sync::oneshot;

fn event(event_type: &str, tag: &str) -> NewEvent {
    NewEvent::new(EventType::new(event_type).unwrap(), b"{}".to_vec())
        .with_tags(Tags::parse([tag]).unwrap())
}

async fn append(store: &PostgresStore, stream: &str, events: Vec<NewEvent>) {
    store
        .append(
            &StreamId::new(stream).unwrap(),
            events,
            AppendCondition::None,
        )
        .await
        .unwrap();
}

/// Runs `subscription` with `handler` in a task; dropping the sender stops it.
fn spawn_run<H: EventHandler + 'static>(
    subscription: Subscription,
    mut handler: H,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), SubscriptionError>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        subscription
            .run(&mut handler, async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, task)
}

fn options(poll: Duration, batch: usize) -> SubscriptionOptions {
    SubscriptionOptions::default()
        .poll_interval(poll)
        .batch_size(batch)
        .retry_delay(Duration::from_millis(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_late_with_a_lower_position_is_not_skipped() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let seats = Query::types([EventType::new("Seat").unwrap()]);
    // Polling is slow: the subscriber reads when a commit wakes it.
    let subscription = Subscription::new(&store, "late", seats)
        .unwrap()
        .with_options(options(Duration::from_secs(30), 100))
        .unwrap();
    let collect = Collect::default();
    let (stop, task) = spawn_run(subscription, collect.clone());

    append(&store, "a", vec![event("Seat", "seat:1")]).await;
    assert_eq!(collect.wait_for(1, Duration::from_secs(10)).await, vec![1]);

    // Position 2 is allocated and held open; position 3 commits after it.
    let (slow, slow_position) = common::in_flight_writer(&store, "Seat", "seat:2").await;
    assert_eq!(slow_position, 2);
    tokio::time::timeout(
        Duration::from_secs(20),
        append(&store, "b", vec![event("Seat", "seat:3")]),
    )
    .await
    .expect("the append of 3 waited behind the subscriber's settled read");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        collect.positions(),
        vec![1],
        "3 was delivered (and checkpointed) while 2 was still in flight"
    );
    slow.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        collect.wait_for(3, Duration::from_secs(10)).await,
        vec![1, 2, 3]
    );
    drop(stop);
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_from_concurrent_writers_arrive_in_order_with_none_skipped() {
    const WRITERS: usize = 8;
    const APPENDS: usize = 250;
    const PER_APPEND: usize = 5;
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let everything = Subscription::new(&store, "all", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(200), 333))
        .unwrap();
    let writer_3 = Subscription::new(
        &store,
        "writer 3",
        Query::tagged_with_all([Tag::new("writer:3").unwrap()]),
    )
    .unwrap()
    .with_options(options(Duration::from_millis(200), 100))
    .unwrap();
    let all = Collect::default();
    let third = Collect::default();
    let (stop_all, task_all) = spawn_run(everything, all.clone());
    let (stop_third, task_third) = spawn_run(writer_3, third.clone());

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for a in 0..APPENDS {
                let events = (0..PER_APPEND)
                    .map(|_| event("Seat", &format!("writer:{w}")))
                    .collect();
                append(&store, &format!("w{w}-{a}"), events).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let total = WRITERS * APPENDS * PER_APPEND;
    let delivered = all.wait_for(total, Duration::from_secs(120)).await;
    let from_third = third
        .wait_for(APPENDS * PER_APPEND, Duration::from_secs(60))
        .await;

    let logged: Vec<u64> = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.position.get())
        .collect();
    assert_eq!(logged.len(), total);
    assert_eq!(delivered, logged, "every event, once, in position order");
    let logged_third: Vec<u64> = store
        .read(
            &Query::tagged_with_all([Tag::new("writer:3").unwrap()]),
            ReadOptions::default(),
        )
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.position.get())
        .collect();
    assert_eq!(from_third, logged_third);
    drop((stop_all, stop_third));
    task_all.await.unwrap().unwrap();
    task_third.await.unwrap().unwrap();
    let subscription = Subscription::new(&store, "all", Query::all()).unwrap();
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        factos::Position::new(*logged.last().unwrap())
    );
}

/// Records every applied position in `applied` (no key: a position applied
/// twice shows as two rows). Blocks forever in batch `stall_at` (counted
/// from 1), after saying so, until the task is killed.
struct Record {
    batches: usize,
    stall_at: Option<usize>,
    in_batch: Option<oneshot::Sender<()>>,
}

impl ProjectionHandler for Record {
    type Error = factos_postgres::tokio_postgres::Error;
    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), Self::Error> {
        self.batches += 1;
        let positions: Vec<i64> = events
            .iter()
            .map(|e| i64::try_from(e.position.get()).unwrap())
            .collect();
        tx.execute(
            "INSERT INTO applied (position) SELECT unnest($1::bigint[])",
            &[&positions],
        )
        .await?;
        if Some(self.batches) == self.stall_at {
            if let Some(say) = self.in_batch.take() {
                let _ = say.send(());
            }
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_killed_mid_batch_loses_nothing_and_applies_nothing_twice() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute("CREATE TABLE applied (position bigint NOT NULL)")
        .await
        .unwrap();
    for i in 0..100 {
        append(&store, &format!("s{i}"), vec![event("Seat", "seat:1")]).await;
    }
    let subscription = Subscription::new(&store, "projection", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(100), 10))
        .unwrap();

    // The first instance dies inside its third batch, after writing it.
    let (said, in_batch) = oneshot::channel();
    let mut dying = Record {
        batches: 0,
        stall_at: Some(3),
        in_batch: Some(said),
    };
    let first = subscription.clone();
    let task = tokio::spawn(async move {
        first
            .run_projection(&mut dying, std::future::pending())
            .await
    });
    in_batch.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        factos::Position::new(20),
        "two batches committed"
    );

    // A new instance takes over once the dead one's connection is gone.
    let mut healthy = Record {
        batches: 0,
        stall_at: None,
        in_batch: None,
    };
    let start = Instant::now();
    let handled = loop {
        match subscription.catch_up_projection(&mut healthy).await {
            Ok(handled) => break handled,
            Err(SubscriptionError::Busy) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(handled, 80);
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        factos::Position::new(100)
    );
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT position), min(position), max(position) FROM applied",
            &[],
        )
        .await
        .unwrap();
    let (rows, distinct, min, max): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((rows, distinct, min, max), (100, 100, 1, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_instance_takes_over_when_the_active_one_dies() {
    let database = common::database().await;
    // Two processes' worth: two stores (pools) on one schema.
    let store_a = common::store_in(&database, StoreOptions::default()).await;
    let store_b = database.store(store_a.options().clone()).unwrap();
    let opts = options(Duration::from_millis(100), 50);
    let on_a = Subscription::new(&store_a, "mailer", Query::all())
        .unwrap()
        .with_options(opts.clone())
        .unwrap();
    let on_b = Subscription::new(&store_b, "mailer", Query::all())
        .unwrap()
        .with_options(opts)
        .unwrap();
    let seen_a = Collect::default();
    let seen_b = Collect::default();
    let (_stop_a, task_a) = spawn_run(on_a.clone(), seen_a.clone());
    for i in 0..10 {
        append(&store_a, &format!("a{i}"), vec![event("Mail", "to:1")]).await;
    }
    seen_a.wait_for(10, Duration::from_secs(10)).await;
    let (stop_b, task_b) = spawn_run(on_b.clone(), seen_b.clone());
    for i in 0..10 {
        append(&store_b, &format!("b{i}"), vec![event("Mail", "to:1")]).await;
    }
    assert_eq!(seen_a.wait_for(20, Duration::from_secs(10)).await.len(), 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen_b.positions().is_empty(), "the standby handled events");
    assert!(matches!(
        on_b.catch_up(&mut Collect::default()).await,
        Err(SubscriptionError::Busy)
    ));
    let status = store_b.subscribers().await.unwrap();
    assert_eq!(status.len(), 1);
    assert!(status[0].active);
    assert_eq!(status[0].checkpoint, factos::Position::new(20));

    task_a.abort();
    let _ = task_a.await;
    for i in 10..30 {
        append(&store_b, &format!("b{i}"), vec![event("Mail", "to:1")]).await;
    }
    let taken_over = seen_b.wait_for(20, Duration::from_secs(10)).await;
    assert_eq!(taken_over, (21..=40).collect::<Vec<u64>>());
    assert_eq!(seen_a.positions(), (1..=20).collect::<Vec<u64>>());
    drop(stop_b);
    task_b.await.unwrap().unwrap();
    let status = store_a.subscribers().await.unwrap();
    assert!(
        !status[0].active,
        "stopped instances release the subscriber"
    );
    assert_eq!(status[0].checkpoint, factos::Position::new(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_in_another_process_wake_a_subscriber_by_notify() {
    let database = common::database().await;
    let subscriber_store = common::store_in(&database, StoreOptions::default()).await;
    let writer_store = database.store(subscriber_store.options().clone()).unwrap();
    // Polling alone would take a minute.
    let subscription = Subscription::new(&subscriber_store, "woken", Query::all())
        .unwrap()
        .with_options(options(Duration::from_secs(60), 100))
        .unwrap();
    let seen = Collect::default();
    let (stop, task) = spawn_run(subscription, seen.clone());
    // Let the subscriber catch up (nothing) and start listening.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    append(&writer_store, "w", vec![event("Mail", "to:1")]).await;
    assert_eq!(seen.wait_for(1, Duration::from_secs(10)).await, vec![1]);
    println!("woken after {:?}", start.elapsed());
    drop(stop);
    task.await.unwrap().unwrap();
}

/// Fails every batch; counts the batches it was handed.
#[derive(Default)]
struct Failing {
    handed: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Refused;
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}
impl std::error::Error for Refused {}

impl EventHandler for Failing {
    type Error = Refused;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Refused> {
        self.handed.push((
            events[0].position.get(),
            events[events.len() - 1].position.get(),
        ));
        Err(Refused)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_is_retried_then_stops_the_subscription_at_its_batch() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    for i in 0..3 {
        append(&store, &format!("s{i}"), vec![event("Seat", "seat:1")]).await;
    }
    let subscription = Subscription::new(&store, "failing", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(50), 2).handler_attempts(3))
        .unwrap();
    let mut failing = Failing::default();
    let error = subscription
        .run(&mut failing, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(
        failing.handed,
        vec![(1, 2); 3],
        "the handler saw the first batch three times, nothing else"
    );
    match error {
        SubscriptionError::Handler {
            first,
            last,
            attempts,
            ..
        } => assert_eq!((first.get(), last.get(), attempts), (1, 2, 3)),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(subscription.checkpoint().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_options_are_typed_errors() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    for name in ["", "tab\there", &"x".repeat(129)] {
        assert!(matches!(
            Subscription::new(&store, name, Query::all()),
            Err(SubscriptionError::InvalidName(_))
        ));
    }
    let subscription = Subscription::new(&store, "ok", Query::all()).unwrap();
    for bad in [
        SubscriptionOptions::default().batch_size(0),
        SubscriptionOptions::default().batch_size(10_001),
        SubscriptionOptions::default().handler_attempts(0),
        SubscriptionOptions::default().poll_interval(Duration::ZERO),
    ] {
        assert!(matches!(
            subscription.clone().with_options(bad),
            Err(SubscriptionError::InvalidOptions(_))
        ));
    }
    assert!(
        store.subscribers().await.unwrap().is_empty(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_whose_connection_is_killed_mid_batch_resumes_exactly_once() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute("CREATE TABLE applied (position bigint NOT NULL)")
        .await
        .unwrap();
    for i in 0..50 {
        append(&store, &format!("s{i}"), vec![event("Seat", "seat:1")]).await;
    }
    // One attempt per batch: a lost connection must not count as the
    // handler's failure.
    let subscription = Subscription::new(&store, "resilient", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(50), 10).handler_attempts(1))
        .unwrap();
    // The handler stalls in its second batch; meanwhile the server kills the
    // subscriber's connection (as a failover or a network cut would).
    let (said, in_batch) = oneshot::channel();
    let (resume, resumed) = tokio::sync::watch::channel(false);
    let mut handler = Stalling {
        batches: 0,
        in_batch: Some(said),
        resumed,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = {
        let subscription = subscription.clone();
        tokio::spawn(async move {
            subscription
                .run_projection(&mut handler, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    in_batch.await.unwrap();
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid <> pg_backend_pid()
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the subscriber's session holds its lock");
    resume.send(true).unwrap();
    // `run` reports nothing: it takes the lease again and finishes.
    let start = Instant::now();
    while subscription.checkpoint().await.unwrap() < factos::Position::new(50) {
        assert!(start.elapsed() < Duration::from_secs(20), "did not resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stop);
    runner.await.unwrap().unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT position) FROM applied",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (50, 50));
}

/// Records positions like [`Record`], stalling in its second batch until
/// told to resume.
struct Stalling {
    batches: usize,
    in_batch: Option<oneshot::Sender<()>>,
    resumed: tokio::sync::watch::Receiver<bool>,
}

impl ProjectionHandler for Stalling {
    type Error = factos_postgres::tokio_postgres::Error;
    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), Self::Error> {
        self.batches += 1;
        if self.batches == 2 {
            if let Some(say) = self.in_batch.take() {
                let _ = say.send(());
            }
            let _ = self.resumed.wait_for(|r| *r).await;
        }
        let positions: Vec<i64> = events
            .iter()
            .map(|e| i64::try_from(e.position.get()).unwrap())
            .collect();
        tx.execute(
            "INSERT INTO applied (position) SELECT unnest($1::bigint[])",
            &[&positions],
        )
        .await?;
        Ok(())
    }
}

/// Applies its batches into `applied`; in its first batch it gives up the
/// subscriber's session lock (as an instance whose lock went away without
/// it noticing), says so, and carries on only when told.
struct LosesItsLock {
    lost: Option<oneshot::Sender<()>>,
    carry_on: Option<oneshot::Receiver<()>>,
}

impl ProjectionHandler for LosesItsLock {
    type Error = factos_postgres::tokio_postgres::Error;
    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), Self::Error> {
        if let (Some(lost), Some(carry_on)) = (self.lost.take(), self.carry_on.take()) {
            tx.execute("SELECT pg_advisory_unlock_all()", &[]).await?;
            let _ = lost.send(());
            let _ = carry_on.await;
        }
        let positions: Vec<i64> = events
            .iter()
            .map(|e| i64::try_from(e.position.get()).unwrap())
            .collect();
        tx.execute(
            "INSERT INTO applied (position) SELECT unnest($1::bigint[])",
            &[&positions],
        )
        .await?;
        Ok(())
    }
}

/// An instance that lost its lock mid-batch while another instance took
/// the subscriber over and moved the checkpoint: its compare-and-set finds
/// the checkpoint moved, `run_projection` ends with `LeaseLost`, and none of
/// its batch's writes are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_lost_its_lock_cannot_move_the_checkpoint() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute("CREATE TABLE applied (position bigint NOT NULL)")
        .await
        .unwrap();
    for i in 0..3 {
        append(&store, &format!("s{i}"), vec![event("Seat", "seat:1")]).await;
    }
    let subscription = Subscription::new(&store, "taken-over", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(50), 10))
        .unwrap();
    let (lost, lock_lost) = oneshot::channel();
    let (carry_on, told) = oneshot::channel();
    let mut handler = LosesItsLock {
        lost: Some(lost),
        carry_on: Some(told),
    };
    let first = {
        let subscription = subscription.clone();
        tokio::spawn(async move {
            subscription
                .run_projection(&mut handler, std::future::pending())
                .await
        })
    };
    lock_lost.await.unwrap();
    // Another instance takes the subscriber and applies everything.
    let mut other = Stalling {
        batches: 0,
        in_batch: None,
        resumed: tokio::sync::watch::channel(true).1,
    };
    assert_eq!(
        subscription.catch_up_projection(&mut other).await.unwrap(),
        3
    );
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        factos::Position::new(3)
    );
    carry_on.send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first instance did not stop")
        .unwrap();
    assert!(
        matches!(outcome, Err(SubscriptionError::LeaseLost)),
        "{outcome:?}"
    );
    let applied: Vec<i64> = client
        .query("SELECT position FROM applied ORDER BY position", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied, vec![1, 2, 3], "only the other instance's writes");
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        factos::Position::new(3)
    );
}

/// With `notify_interval` 200 ms, a burst of 40 commits from 8 writers
/// yields at least one notification on the store's channel and at most one
/// per interval (plus the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_commits_is_announced_by_few_notifications() {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let interval = Duration::from_millis(200);
    let database = common::database().await;
    let store = common::store_in(
        &database,
        StoreOptions::default().notify_interval(Some(interval)),
    )
    .await;
    let channel = format!("factos_{}", store.options().schema.as_str());
    let (listener, mut connection) = database
        .config()
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await
        .unwrap();
    let received = std::sync::Arc::new(AtomicUsize::new(0));
    {
        let (received, channel) = (received.clone(), channel.clone());
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let factos_postgres::tokio_postgres::AsyncMessage::Notification(n) = message
                    && n.channel() == channel
                {
                    received.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    listener
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .unwrap();
    let start = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..5 {
                    append(
                        &store,
                        &format!("w{writer}"),
                        vec![event("Seat", &format!("seat:{n}"))],
                    )
                    .await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let burst = start.elapsed();
    // The first commit's notification goes out at once.
    while received.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "no notification");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = received.load(Ordering::SeqCst);
    let allowed = usize::try_from(start.elapsed().as_millis() / interval.as_millis()).unwrap() + 1;
    println!("{seen} notifications for 40 commits in {burst:?}");
    assert!(
        seen <= allowed,
        "{seen} notifications within {:?}, at most {allowed} expected",
        start.elapsed()
    );
}

/// Decodes every event as a `Seat` with [`factos::decode_stored`], so an
/// undecodable one fails the batch naming the event.
struct Decoding;

/// The one event the `Decoding` handler understands.
#[derive(Debug, serde::Deserialize)]
struct Seat {
    #[allow(dead_code)]
    seat: u32,
}

impl factos::Codec for Decoding {
    type Event = Seat;
    fn encode(&self, _: &Seat) -> Result<NewEvent, factos::EncodeError> {
        Err(factos::EncodeError::Serialize("read only".into()))
    }
    fn decode(&self, stored: &StoredEvent) -> Result<Seat, factos::DecodeError> {
        serde_json::from_slice(&stored.data).map_err(|e| factos::DecodeError::InvalidData {
            event_type: stored.event_type.clone(),
            version: stored.version,
            message: e.to_string(),
        })
    }
}

impl EventHandler for Decoding {
    type Error = Box<factos::UndecodableEvent>;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        for stored in events {
            factos::decode_stored(self, stored)?;
        }
        Ok(())
    }
}

/// A handler that meets an undecodable event (here `{}`, not a seat) stops
/// the subscription with an error that names the event: its position, id,
/// stream and type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_event_stops_a_subscription_naming_the_event() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let good = NewEvent::new(EventType::new("Seat").unwrap(), br#"{"seat":1}"#.to_vec());
    append(&store, "ok", vec![good]).await;
    append(&store, "poison", vec![event("Seat", "seat:2")]).await;
    let poison = store
        .read_stream(&StreamId::new("poison").unwrap())
        .await
        .unwrap()
        .events
        .remove(0);
    let subscription = Subscription::new(&store, "decoding", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(50), 10).handler_attempts(2))
        .unwrap();
    let error = subscription
        .run(&mut Decoding, std::future::pending())
        .await
        .unwrap_err();
    let said = error.to_string();
    for part in [
        format!("position {}", poison.position),
        poison.id.to_string(),
        "stream poison".to_string(),
        "type Seat".to_string(),
    ] {
        assert!(said.contains(&part), "{part:?} missing from: {said}");
    }
}

/// A booking event at version 2 (the seat a number); version 1 stored it
/// as a string.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Booking {
    Booked { seat: u32 },
}

impl factos::json::JsonEvent for Booking {
    const EVENT_TYPES: &'static [&'static str] = &["Booked"];
    fn event_type(&self) -> &'static str {
        "Booked"
    }
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Decodes with [`factos::decode_owned`] through an upcasting JSON codec
/// that passes over foreign types, and keeps what it decoded.
struct Upcasting {
    codec: factos::json::JsonCodec<Booking>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(u32, Booking)>>>,
}

impl EventHandler for Upcasting {
    type Error = Box<factos::UndecodableEvent>;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        for stored in events {
            if let Some(booking) = factos::decode_owned(&self.codec, stored)? {
                self.seen.lock().unwrap().push((stored.version, booking));
            }
        }
        Ok(())
    }
}

/// A subscriber reads events stored at an older version as the newest (a
/// seat stored as a string at version 1 arrives as a number) and passes over
/// another module's event type, with the JSON codec's options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_old_versions_upcast_and_passes_over_foreign_types() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let booked = |version: u32, data: &str| {
        NewEvent::new(EventType::new("Booked").unwrap(), data.as_bytes().to_vec())
            .with_version(version)
    };
    append(&store, "old", vec![booked(1, r#"{"Booked":{"seat":"3"}}"#)]).await;
    append(&store, "other", vec![event("AddressChanged", "seat:3")]).await;
    append(&store, "new", vec![booked(2, r#"{"Booked":{"seat":4}}"#)]).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let codec = factos::json::JsonCodec::<Booking>::new()
        .passing_over_foreign_types()
        .upcasting("Booked", 1, |mut v1| {
            let seat = v1["Booked"]["seat"]
                .as_str()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or("the seat is not a number")?;
            v1["Booked"]["seat"] = seat.into();
            Ok(v1)
        });
    let handler = Upcasting {
        codec,
        seen: seen.clone(),
    };
    let subscription = Subscription::new(&store, "upcasting", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(20), 10))
        .unwrap();
    let (stop, task) = spawn_run(subscription, handler);
    let start = Instant::now();
    while seen.lock().unwrap().len() < 2 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stop);
    task.await.unwrap().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (1, Booking::Booked { seat: 3 }),
            (2, Booking::Booked { seat: 4 })
        ]
    );
}

/// Writes each event's position into `parked_projection`, failing on the
/// position in `poison` (0: none).
struct Poisoned {
    poison: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ProjectionHandler for Poisoned {
    type Error = String;
    async fn apply(&mut self, tx: &Transaction<'_>, events: &[StoredEvent]) -> Result<(), String> {
        for event in events {
            if event.position.get() == self.poison.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(format!("poison at {}", event.position));
            }
            let position = i64::try_from(event.position.get()).unwrap();
            tx.execute(
                "INSERT INTO parked_projection (position) VALUES ($1)",
                &[&position],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The positions in `parked_projection`.
async fn projected(store: &PostgresStore) -> Vec<u64> {
    let client = store.pool().get().await.unwrap();
    client
        .query(
            "SELECT position FROM parked_projection ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap())
        .collect()
}

/// Under `PoisonPolicy::Park`, an exactly-once projection that fails on
/// one event of a batch handles the others exactly once, parks that one
/// (its error, the checkpoint past it) and goes on; a requeued parked event
/// that still fails is parked again, and once it succeeds its writes commit
/// with the parked row's removal; a dropped parked event is never handed
/// over again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_parked_and_retried_or_dropped_exactly_once() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute("CREATE TABLE parked_projection (position bigint PRIMARY KEY)")
        .await
        .unwrap();
    let events: Vec<NewEvent> = (0..6).map(|_| event("Paid", "invoice:1")).collect();
    append(&store, "invoices", events).await;
    let poison = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
    let mut handler = Poisoned {
        poison: poison.clone(),
    };
    let subscription = Subscription::new(&store, "parking", Query::all())
        .unwrap()
        .with_options(
            options(Duration::from_millis(20), 10)
                .handler_attempts(2)
                .on_poison(factos_postgres::PoisonPolicy::Park),
        )
        .unwrap();
    assert_eq!(
        subscription
            .catch_up_projection(&mut handler)
            .await
            .unwrap(),
        5
    );
    assert_eq!(projected(&store).await, vec![1, 2, 4, 5, 6]);
    assert_eq!(
        subscription
            .checkpoint()
            .await
            .unwrap()
            .map(factos::Position::get),
        Some(6)
    );
    let parked = store.parked_events("parking").await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].position.get(), 3);
    assert!(parked[0].error.contains("poison at 3"), "{parked:?}");
    assert_eq!((parked[0].attempts, parked[0].requeued), (2, false));
    // Requeued while it still fails: parked again, attempts counted.
    let third = parked[0].position;
    assert!(store.requeue_parked("parking", third).await.unwrap());
    assert_eq!(
        subscription
            .catch_up_projection(&mut handler)
            .await
            .unwrap(),
        0
    );
    let parked = store.parked_events("parking").await.unwrap();
    assert_eq!((parked[0].attempts, parked[0].requeued), (4, false));
    // Requeued once it succeeds: applied once, the parked row gone.
    poison.store(0, std::sync::atomic::Ordering::SeqCst);
    assert!(store.requeue_parked("parking", third).await.unwrap());
    assert_eq!(
        subscription
            .catch_up_projection(&mut handler)
            .await
            .unwrap(),
        1
    );
    assert_eq!(projected(&store).await, vec![1, 2, 3, 4, 5, 6]);
    assert!(store.parked_events("parking").await.unwrap().is_empty());
    // Dropped: never handed over again.
    poison.store(7, std::sync::atomic::Ordering::SeqCst);
    append(&store, "invoices", vec![event("Paid", "invoice:1")]).await;
    assert_eq!(
        subscription
            .catch_up_projection(&mut handler)
            .await
            .unwrap(),
        0
    );
    let seventh = store.parked_events("parking").await.unwrap()[0].position;
    assert!(store.drop_parked("parking", seventh).await.unwrap());
    assert!(!store.requeue_parked("parking", seventh).await.unwrap());
    poison.store(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        subscription
            .catch_up_projection(&mut handler)
            .await
            .unwrap(),
        0
    );
    assert_eq!(projected(&store).await, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        subscription
            .checkpoint()
            .await
            .unwrap()
            .map(factos::Position::get),
        Some(7)
    );
}

/// A subscriber's query is kept with its checkpoint: the same name started
/// with another query is refused (going on would skip the history of the
/// events only the new query matches) until the subscriber is reset, which
/// a running instance prevents; after the reset the new query starts from
/// the position given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_query_is_refused_until_the_subscriber_is_reset() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    append(&store, "a", (0..3).map(|_| event("A", "t:1")).collect()).await;
    append(&store, "b", (0..2).map(|_| event("B", "t:1")).collect()).await;
    let of = |event_type: &str| Query::types([EventType::new(event_type).unwrap()]);
    let first = Subscription::new(&store, "changing", of("A")).unwrap();
    assert_eq!(first.catch_up(&mut Collect::default()).await.unwrap(), 3);
    let changed = Subscription::new(&store, "changing", of("B")).unwrap();
    let refused = changed.catch_up(&mut Collect::default()).await;
    assert!(
        matches!(refused, Err(SubscriptionError::QueryChanged { ref subscriber }) if subscriber == "changing"),
        "{refused:?}"
    );
    // The same query again is fine.
    assert_eq!(first.catch_up(&mut Collect::default()).await.unwrap(), 0);
    // A running instance prevents a reset.
    let running = Subscription::new(&store, "changing", of("A"))
        .unwrap()
        .with_options(options(Duration::from_millis(20), 10))
        .unwrap();
    let (stop, task) = spawn_run(running, Collect::default());
    let start = Instant::now();
    while !store
        .subscribers()
        .await
        .unwrap()
        .iter()
        .any(|s| s.name == "changing" && s.active)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the instance never became active"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = store.reset_subscriber("changing", None).await;
    assert!(matches!(busy, Err(SubscriptionError::Busy)), "{busy:?}");
    drop(stop);
    task.await.unwrap().unwrap();
    // Reset to the start: the new query handles every event it matches.
    assert!(store.reset_subscriber("changing", None).await.unwrap());
    assert_eq!(changed.catch_up(&mut Collect::default()).await.unwrap(), 2);
    assert!(!store.reset_subscriber("nobody", None).await.unwrap());
}

/// Read your writes: a caller waits until a running subscriber has handled
/// the event it just wrote (the handler has it when the wait returns), and
/// a wait for a position nobody wrote ends at its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_waits_until_its_write_is_applied() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let subscription = Subscription::new(&store, "read-model", Query::all())
        .unwrap()
        .with_options(options(Duration::from_millis(500), 10))
        .unwrap();
    let collect = Collect::default();
    let (stop, task) = spawn_run(subscription.clone(), collect.clone());
    let written = store
        .append(
            &StreamId::new("w").unwrap(),
            vec![event("Written", "w:1")],
            AppendCondition::None,
        )
        .await
        .unwrap()
        .position
        .unwrap();
    assert!(
        subscription
            .wait_until_applied(written, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert!(
        collect.positions().contains(&written.get()),
        "{:?}",
        collect.positions()
    );
    let ahead = factos::Position::new(written.get() + 100).unwrap();
    let started = Instant::now();
    assert!(
        !subscription
            .wait_until_applied(ahead, Duration::from_millis(200))
            .await
            .unwrap()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(stop);
    task.await.unwrap().unwrap();
}
