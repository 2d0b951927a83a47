//! The outbox on SQLite: effects commit with the dispatch that caused them
//! (or not at all), and workers lease, acknowledge, retry with backoff and
//! park them; workers on two store instances of one file never share a
//! message.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    Decider, DispatchError, EventStore, OutboxMessage, Query, ReadOptions, Recorded, StreamId, Tag,
    Topic, dispatch_with_outbox, reactor_fn,
};
use factos_sqlite::rusqlite;
use factos_sqlite::{
    FailOutcome, LeasedMessage, MessageHandler, Outbox, OutboxError, OutboxOptions, SqliteOptions,
    SqliteStore,
};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Registered {
    username: String,
}

impl JsonEvent for Registered {
    const EVENT_TYPES: &'static [&'static str] = &["UserRegistered"];
    fn event_type(&self) -> &'static str {
        "UserRegistered"
    }
    fn tags(&self) -> Vec<String> {
        vec![format!("username:{}", self.username)]
    }
}

/// Registers a username once.
struct Register;

impl Decider for Register {
    type Command = String;
    type Event = Registered;
    type State = bool;
    type Error = String;
    fn initial(&self) -> bool {
        false
    }
    fn decide(&self, taken: &bool, name: &String) -> Result<Vec<Registered>, String> {
        if *taken {
            Err(format!("{name} is taken"))
        } else {
            Ok(vec![Registered {
                username: name.clone(),
            }])
        }
    }
    fn evolve(&self, _: bool, _: &Registered) -> bool {
        true
    }
}

fn query(name: &str) -> Query {
    Query::tagged_with_all([Tag::new(format!("username:{name}")).unwrap()])
}

fn email(recorded: &Recorded<Registered>) -> Vec<OutboxMessage> {
    vec![OutboxMessage::new(
        Topic::new("email").unwrap(),
        recorded.event.username.clone().into_bytes(),
    )]
}

async fn register(
    store: &SqliteStore,
    name: &str,
) -> Result<factos::Dispatch<Registered>, DispatchError<String>> {
    dispatch_with_outbox(
        store,
        &StreamId::new("users").unwrap(),
        &query(name),
        &Register,
        &JsonCodec::<Registered>::new(),
        &name.to_string(),
        &reactor_fn(email),
    )
    .await
}

/// (cause, topic, payload) of every message in the outbox.
fn outbox_rows(file: &Path) -> Vec<(i64, String, Vec<u8>)> {
    let c = rusqlite::Connection::open(file).unwrap();
    let mut statement = c
        .prepare("SELECT event_position, topic, payload FROM factos_outbox ORDER BY id")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Leases until something is handed out; fails after 10 s.
async fn lease_some(outbox: &Outbox) -> Vec<LeasedMessage> {
    let start = std::time::Instant::now();
    loop {
        let leased = outbox.lease().await.unwrap();
        if !leased.is_empty() {
            return leased;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing handed out within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_commit_with_their_events_or_not_at_all() {
    let dir = common::Dir::new();
    let file = dir.file();
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    let first = register(&store, "renata").await.unwrap();
    let position = i64::try_from(first.events[0].position.get()).unwrap();
    assert_eq!(
        outbox_rows(&file),
        vec![(position, "email".to_string(), b"renata".to_vec())]
    );
    // Refused by the decider: no event, no effect.
    assert!(matches!(
        register(&store, "renata").await,
        Err(DispatchError::Domain(_))
    ));
    // A panicking reactor: neither the event nor an effect.
    let panicking = reactor_fn(|_: &Recorded<Registered>| -> Vec<OutboxMessage> {
        panic!("the reactor panicked on purpose")
    });
    let refused = dispatch_with_outbox(
        &store,
        &StreamId::new("users").unwrap(),
        &query("ana"),
        &Register,
        &JsonCodec::<Registered>::new(),
        &"ana".to_string(),
        &panicking,
    )
    .await;
    assert!(
        matches!(refused, Err(DispatchError::Panicked { .. })),
        "{refused:?}"
    );
    let events = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(events.events.len(), 1, "only renata's event");
    assert_eq!(outbox_rows(&file).len(), 1);
    // The writer that held the failed decision is usable: more dispatches
    // work, and another instance on the file is not locked out.
    register(&store, "ana").await.unwrap();
    let other = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    register(&other, "bo").await.unwrap();
    assert_eq!(outbox_rows(&file).len(), 3);
}

/// Fails each message's first `failures` attempts, then records it.
struct Flaky {
    failures: u32,
    delivered: Vec<(i64, u32)>,
}

impl MessageHandler for Flaky {
    type Error = String;
    async fn deliver(&mut self, message: &LeasedMessage) -> Result<(), String> {
        if message.attempt <= self.failures {
            return Err(format!("attempt {} fails", message.attempt));
        }
        self.delivered.push((message.id, message.attempt));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ack_retry_with_backoff_and_park() {
    let dir = common::Dir::new();
    let file = dir.file();
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        register(&store, name).await.unwrap();
    }
    let options = OutboxOptions::default()
        .retry_delay(Duration::from_millis(50))
        .max_attempts(3)
        .poll_interval(Duration::from_secs(60));
    let emails = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(options)
        .unwrap();

    // First attempt fails: retried after 50 ms, not before.
    let leased = emails.lease().await.unwrap();
    assert_eq!(leased.len(), 3);
    assert_eq!(leased[0].payload, b"a");
    let failed_at = std::time::Instant::now();
    assert_eq!(
        emails.fail(&leased[0], "smtp down").await.unwrap(),
        FailOutcome::RetryIn(Duration::from_millis(50))
    );
    for message in &leased[1..] {
        emails.ack(message).await.unwrap();
    }
    let again = lease_some(&emails).await;
    assert!(
        failed_at.elapsed() >= Duration::from_millis(50),
        "retried before its backoff, after {:?}",
        failed_at.elapsed()
    );
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (leased[0].id, 2));
    assert_eq!(again[0].last_error.as_deref(), Some("smtp down"));
    // An outdated lease cannot acknowledge.
    assert!(matches!(
        emails.ack(&leased[0]).await,
        Err(OutboxError::LeaseLost { .. })
    ));
    assert_eq!(
        emails.fail(&again[0], "smtp down").await.unwrap(),
        FailOutcome::RetryIn(Duration::from_millis(100))
    );
    let third = lease_some(&emails).await;
    assert_eq!((third[0].id, third[0].attempt), (leased[0].id, 3));
    assert_eq!(
        emails.fail(&third[0], "smtp down").await.unwrap(),
        FailOutcome::Parked
    );
    // Past the time a fourth attempt would have been due.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        emails.lease().await.unwrap().is_empty(),
        "a parked message was handed out"
    );
    assert_eq!(emails.parked().await.unwrap(), vec![leased[0].id]);
    assert!(emails.requeue(leased[0].id).await.unwrap());
    assert!(!emails.requeue(leased[0].id).await.unwrap());
    assert!(emails.parked().await.unwrap().is_empty());

    // `run` delivers it (after one more failure, woken when its backoff
    // ends) and a new message too.
    let mut flaky = Flaky {
        failures: 1,
        delivered: Vec::new(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let emails = emails.clone();
        tokio::spawn(async move {
            emails
                .run(&mut flaky, async {
                    let _ = stopped.await;
                })
                .await
                .map(|()| flaky)
        })
    };
    register(&store, "d").await.unwrap();
    let start = std::time::Instant::now();
    while !outbox_rows(&file).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stop);
    let flaky = runner.await.unwrap().unwrap();
    let attempts: Vec<u32> = flaky.delivered.iter().map(|d| d.1).collect();
    assert_eq!(attempts, vec![2, 2], "each delivered on its second attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_hands_the_message_out_again_and_workers_never_share_one() {
    let dir = common::Dir::new();
    let file = dir.file();
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    for i in 0..20 {
        register(&store, &format!("u{i}")).await.unwrap();
    }
    // Two workers on two instances of the file (as two processes).
    let other = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    let options = OutboxOptions::default()
        .batch_size(10)
        .lease(Duration::from_millis(200));
    let short = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(options.clone())
        .unwrap();
    let elsewhere = Outbox::new(&other, Topic::new("email").unwrap())
        .with_options(options)
        .unwrap();
    let (one, two) = tokio::join!(short.lease(), elsewhere.lease());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.len() + two.len(), 20);
    let mut ids: Vec<i64> = one.iter().chain(&two).map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "two workers leased the same message");
    // The first worker "dies"; the second acknowledges its own.
    for message in &two {
        elsewhere.ack(message).await.unwrap();
    }
    assert!(short.lease().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let redelivered = elsewhere.lease().await.unwrap();
    let mut again: Vec<i64> = redelivered.iter().map(|m| m.id).collect();
    again.sort_unstable();
    let mut lost: Vec<i64> = one.iter().map(|m| m.id).collect();
    lost.sort_unstable();
    assert_eq!(again, lost);
    assert!(redelivered.iter().all(|m| m.attempt == 2));
    assert!(redelivered.iter().all(|m| {
        m.last_error
            .as_deref()
            .is_some_and(|e| e.contains("lease ran out"))
    }));
    // Other topics are not touched.
    let sms = Outbox::new(&store, Topic::new("sms").unwrap());
    assert!(sms.lease().await.unwrap().is_empty());
    assert!(matches!(
        Outbox::new(&store, Topic::new("sms").unwrap())
            .with_options(OutboxOptions::default().batch_size(0)),
        Err(OutboxError::InvalidOptions(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_runs_out_counts_as_a_failed_attempt_and_parks_at_the_limit() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    register(&store, "orphan").await.unwrap();
    let lease = Duration::from_millis(100);
    let emails = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(OutboxOptions::default().max_attempts(2).lease(lease))
        .unwrap();
    // Two workers take the message in turn and die holding it.
    let first = emails.lease().await.unwrap();
    assert_eq!((first.len(), first[0].attempt), (1, 1));
    tokio::time::sleep(lease * 2).await;
    let second = emails.lease().await.unwrap();
    assert_eq!((second.len(), second[0].attempt), (1, 2));
    tokio::time::sleep(lease * 2).await;
    let third = emails.lease().await.unwrap();
    assert!(
        third.is_empty(),
        "handed out again after {} attempts: {third:?}",
        third.first().map_or(0, |m| m.attempt)
    );
    assert_eq!(emails.parked().await.unwrap(), vec![first[0].id]);
    // The worker that lost it cannot record an outcome any more.
    assert!(matches!(
        emails.ack(&second[0]).await,
        Err(OutboxError::LeaseLost { .. })
    ));
    assert!(matches!(
        emails.fail(&second[0], "late").await,
        Err(OutboxError::LeaseLost { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_box_office_example_projects_and_mails_every_sale_once() {
    let dir = common::Dir::new();
    let store = dir.store().await;
    let outcome =
        factos_examples::box_office_sqlite::run_box_office_on_sqlite(&store, "c1", 40, 120, 32)
            .await
            .unwrap();
    assert_eq!(
        (outcome.accepted, outcome.sold_out),
        (40, 80),
        "{outcome:?}"
    );
    assert_eq!(outcome.projected.sold, 40, "{outcome:?}");
    assert_eq!(outcome.emails_sent, 40, "{outcome:?}");
    assert!(outcome.email_retries > 0, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_wakes_on_a_commit_of_its_store() {
    let dir = common::Dir::new();
    let file = dir.file();
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    // A poll interval of a minute: only a commit wakes the idle worker
    // within the test.
    let emails = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(OutboxOptions::default().poll_interval(Duration::from_secs(60)))
        .unwrap();
    let mut mailer = Flaky {
        failures: 0,
        delivered: Vec::new(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(async move {
        emails
            .run(&mut mailer, async {
                let _ = stopped.await;
            })
            .await
            .map(|()| mailer)
    });
    // Let it find the empty outbox and go idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    register(&store, "late").await.unwrap();
    let start = std::time::Instant::now();
    while !outbox_rows(&file).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the commit did not wake the worker"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stop);
    let mailer = runner.await.unwrap().unwrap();
    assert_eq!(mailer.delivered.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_slower_than_the_busy_timeout_writes_nothing_and_frees_the_writer() {
    let dir = common::Dir::new();
    let file = dir.file();
    let mut options = SqliteOptions::default();
    options.busy_timeout = Duration::from_millis(200);
    let store = SqliteStore::open(&file, options).await.unwrap();
    // The writer waits for the effects while this reactor sleeps on the
    // dispatch's own thread: it gives up after the busy timeout, here raised
    // to the floor of one second.
    let slow = reactor_fn(|recorded: &Recorded<Registered>| {
        std::thread::sleep(Duration::from_millis(1500));
        email(recorded)
    });
    let outcome = dispatch_with_outbox(
        &store,
        &StreamId::new("users").unwrap(),
        &query("slow"),
        &Register,
        &JsonCodec::<Registered>::new(),
        &"slow".to_string(),
        &slow,
    )
    .await;
    assert!(
        matches!(&outcome, Err(DispatchError::Store(e)) if e.kind() == factos::StoreErrorKind::Timeout),
        "{outcome:?}"
    );
    assert!(outbox_rows(&file).is_empty());
    let events = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert!(
        events.events.is_empty(),
        "the timed-out decision's event was kept"
    );
    // The writer is free again.
    register(&store, "next").await.unwrap();
    assert_eq!(outbox_rows(&file).len(), 1);
}
