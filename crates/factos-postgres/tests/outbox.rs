//! The outbox on a real server: effects commit with the dispatch that caused
//! them (or not at all), and workers lease, acknowledge, retry with backoff
//! and park them.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    Decider, DispatchError, EventStore, OutboxMessage, Query, ReadOptions, Recorded, StreamId, Tag,
    Topic, dispatch_with_outbox, reactor_fn,
};
use factos_postgres::{
    FailOutcome, LeasedMessage, LockingStrategy, MessageHandler, Outbox, OutboxError,
    OutboxOptions, PostgresStore, StoreOptions,
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
    store: &PostgresStore,
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
async fn outbox_rows(store: &PostgresStore) -> Vec<(i64, String, Vec<u8>)> {
    let client = store.pool().get().await.unwrap();
    let schema = store.options().schema.quoted();
    client
        .query(
            &format!(
                "SELECT event_position, topic, payload FROM {schema}.factos_outbox ORDER BY id"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Waits until the server's clock has passed the time message `id` is
/// due again (its retry delay or lease ran out); fails after 10 s.
async fn wait_until_due(store: &PostgresStore, id: i64) {
    let client = store.pool().get().await.unwrap();
    let schema = store.options().schema.quoted();
    let start = std::time::Instant::now();
    loop {
        let due: bool = client
            .query_one(
                &format!("SELECT now() >= available_at FROM {schema}.factos_outbox WHERE id = $1"),
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        if due {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "message {id} not due within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

async fn effects_commit_with_their_events(locking: LockingStrategy) {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default().locking(locking)).await;
    let first = register(&store, "renata").await.unwrap();
    let position = i64::try_from(first.events[0].position.get()).unwrap();
    assert_eq!(
        outbox_rows(&store).await,
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
    assert!(matches!(refused, Err(DispatchError::Panicked { .. })));
    // Too large an effect: refused whole.
    let huge = reactor_fn(|_: &Recorded<Registered>| {
        vec![OutboxMessage::new(
            Topic::new("email").unwrap(),
            vec![0; factos::outbox::MAX_EFFECT_PAYLOAD_BYTES + 1],
        )]
    });
    let refused = dispatch_with_outbox(
        &store,
        &StreamId::new("users").unwrap(),
        &query("bo"),
        &Register,
        &JsonCodec::<Registered>::new(),
        &"bo".to_string(),
        &huge,
    )
    .await;
    assert!(
        matches!(refused, Err(DispatchError::Encode(_))),
        "{refused:?}"
    );
    let events = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(events.events.len(), 1, "only renata's event");
    assert_eq!(outbox_rows(&store).await.len(), 1);
    // The connection that held the failed decisions is usable: more dispatches work.
    register(&store, "ana").await.unwrap();
    assert_eq!(outbox_rows(&store).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_effects_commit_with_their_events() {
    effects_commit_with_their_events(LockingStrategy::Scoped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_effects_commit_with_their_events() {
    effects_commit_with_their_events(LockingStrategy::Optimistic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_lock_effects_commit_with_their_events() {
    effects_commit_with_their_events(LockingStrategy::TableLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_registrations_record_one_event_and_one_effect() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (store, barrier) = (store.clone(), barrier.clone());
        racers.push(tokio::spawn(async move {
            barrier.wait().await;
            register(&store, "zoe").await
        }));
    }
    let mut won = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(done) => won.push(done),
            Err(DispatchError::Domain(refusal)) if refusal == "zoe is taken" => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won.len(), 1, "one registration wins");
    let events = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events;
    assert_eq!(events.len(), 1, "one event");
    assert_eq!(events[0].position, won[0].events[0].position);
    let position = i64::try_from(events[0].position.get()).unwrap();
    assert_eq!(
        outbox_rows(&store).await,
        vec![(position, "email".to_string(), b"zoe".to_vec())],
        "one effect, caused by that event"
    );
}

/// Fails the first `failures` deliveries of each message, then records it.
struct Flaky {
    failures: u32,
    delivered: Vec<(i64, u32)>,
}

impl MessageHandler for Flaky {
    type Error = String;
    async fn deliver(&mut self, message: &LeasedMessage) -> Result<(), String> {
        if message.attempt <= self.failures {
            return Err(format!("smtp down (attempt {})", message.attempt));
        }
        self.delivered.push((message.id, message.attempt));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ack_retry_with_backoff_and_park() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    for name in ["a", "b", "c"] {
        register(&store, name).await.unwrap();
    }
    let options = OutboxOptions::default()
        .retry_delay(Duration::from_millis(50))
        .max_attempts(3)
        .poll_interval(Duration::from_millis(10));
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
    let failed_at = std::time::Instant::now();
    assert_eq!(
        emails.fail(&again[0], "smtp down").await.unwrap(),
        FailOutcome::RetryIn(Duration::from_millis(100))
    );
    let third = lease_some(&emails).await;
    assert!(
        failed_at.elapsed() >= Duration::from_millis(100),
        "retried before its backoff, after {:?}",
        failed_at.elapsed()
    );
    assert_eq!((third[0].id, third[0].attempt), (leased[0].id, 3));
    assert_eq!(
        emails.fail(&third[0], "smtp down").await.unwrap(),
        FailOutcome::Parked
    );
    // Past the time a fourth attempt would have been due.
    wait_until_due(&store, leased[0].id).await;
    assert!(
        emails.lease().await.unwrap().is_empty(),
        "a parked message was handed out"
    );
    assert_eq!(emails.parked().await.unwrap(), vec![leased[0].id]);
    assert!(emails.requeue(leased[0].id).await.unwrap());
    assert!(emails.parked().await.unwrap().is_empty());

    // `run` delivers it (after one more failure) and new messages too.
    register(&store, "d").await.unwrap();
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
    let start = std::time::Instant::now();
    while !outbox_rows(&store).await.is_empty() {
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
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    for i in 0..20 {
        register(&store, &format!("u{i}")).await.unwrap();
    }
    let short = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(
            OutboxOptions::default()
                .batch_size(10)
                .lease(Duration::from_millis(200)),
        )
        .unwrap();
    let (one, two) = tokio::join!(short.lease(), short.lease());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.len() + two.len(), 20);
    let mut ids: Vec<i64> = one.iter().chain(&two).map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "two workers leased the same message");
    // The first worker "dies"; the second acknowledges its own.
    for message in &two {
        short.ack(message).await.unwrap();
    }
    assert!(short.lease().await.unwrap().is_empty());
    for message in &one {
        wait_until_due(&store, message.id).await;
    }
    let redelivered = short.lease().await.unwrap();
    let mut again: Vec<i64> = redelivered.iter().map(|m| m.id).collect();
    again.sort_unstable();
    let mut lost: Vec<i64> = one.iter().map(|m| m.id).collect();
    lost.sort_unstable();
    assert_eq!(again, lost);
    assert!(redelivered.iter().all(|m| m.attempt == 2));
    // Other topics are not touched.
    let other = Outbox::new(&store, Topic::new("sms").unwrap());
    assert!(other.lease().await.unwrap().is_empty());
    assert!(matches!(
        Outbox::new(&store, Topic::new("sms").unwrap())
            .with_options(OutboxOptions::default().batch_size(0)),
        Err(OutboxError::InvalidOptions(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_box_office_example_projects_and_mails_every_sale_once() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let outcome = factos_examples::box_office::run_box_office(&store, "c1", 40, 120, 32)
        .await
        .unwrap();
    assert_eq!((outcome.accepted, outcome.sold_out), (40, 80));
    assert_eq!(outcome.projected.sold, 40);
    assert_eq!(outcome.emails_sent, 40);
    let tenth = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .iter()
        .filter(|e| e.position.get() % 10 == 0)
        .count();
    assert!(tenth > 0);
    assert_eq!(
        outcome.email_retries, tenth,
        "the first attempt of every ticket at a position divisible by 10 fails once"
    );
    assert!(
        outbox_rows(&store).await.is_empty(),
        "every email acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_records_effects_on_postgres_too() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let users = factos::Dispatcher::new(store.clone(), Register, JsonCodec::<Registered>::new());
    let stream = StreamId::new("users").unwrap();
    let emails = reactor_fn(email);
    for name in ["ana", "bo"] {
        users
            .dispatch_with_outbox(&stream, &query(name), &name.to_string(), &emails)
            .await
            .unwrap();
    }
    // Cached now, and refused by the decider: no event, no effect.
    assert!(matches!(
        users
            .dispatch_with_outbox(&stream, &query("ana"), &"ana".to_string(), &emails)
            .await,
        Err(DispatchError::Domain(_))
    ));
    let rows = outbox_rows(&store).await;
    let payloads: Vec<&[u8]> = rows.iter().map(|r| r.2.as_slice()).collect();
    assert_eq!(payloads, vec![b"ana".as_slice(), b"bo".as_slice()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_runs_out_counts_as_a_failed_attempt_and_parks_at_the_limit() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    register(&store, "orphan").await.unwrap();
    let lease = Duration::from_millis(150);
    let emails = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(OutboxOptions::default().max_attempts(2).lease(lease))
        .unwrap();
    // Two workers take the message in turn and die holding it.
    let first = emails.lease().await.unwrap();
    assert_eq!((first.len(), first[0].attempt), (1, 1));
    wait_until_due(&store, first[0].id).await;
    let second = emails.lease().await.unwrap();
    assert_eq!((second.len(), second[0].attempt), (1, 2));
    assert!(
        second[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("lease ran out")),
        "{:?}",
        second[0].last_error
    );
    wait_until_due(&store, first[0].id).await;
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
}

/// Acknowledges through a connection the test terminates while the
/// acknowledgement waits for a row lock: the server never answers it.
struct AckOutcomeLost {
    database: tokio_postgres::Config,
    schema: String,
    attempts: Vec<u32>,
    terminated: Option<tokio::task::JoinHandle<bool>>,
}

impl MessageHandler for AckOutcomeLost {
    type Error = String;
    async fn deliver(&mut self, message: &LeasedMessage) -> Result<(), String> {
        self.attempts.push(message.attempt);
        if self.terminated.is_none() {
            self.terminated =
                Some(terminate_the_ack(&self.database, &self.schema, message.id).await);
        }
        Ok(())
    }
}

/// Locks message `id`, then terminates the backend whose `DELETE` of it
/// waits for that lock, and releases the lock. Resolves to whether it
/// terminated one.
async fn terminate_the_ack(
    config: &tokio_postgres::Config,
    schema: &str,
    id: i64,
) -> tokio::task::JoinHandle<bool> {
    let (blocker, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .execute(
            &format!("SELECT 1 FROM {schema}.factos_outbox WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .unwrap();
    tokio::spawn(async move {
        // Up to 30 s: on a loaded machine (the whole suite on two cores) the
        // acknowledgement can be slow to arrive. The backend to cut off is
        // the one waiting for this blocker's row lock (the lease skips
        // locked rows, so only the acknowledgement waits for it), whatever
        // its statement's text.
        for _ in 0..3000 {
            let killed: Option<bool> = blocker
                .query_opt(
                    "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))
                     HAVING count(*) > 0",
                    &[],
                )
                .await
                .unwrap()
                .map(|row| row.get(0));
            if killed == Some(true) {
                blocker.batch_execute("ROLLBACK").await.unwrap();
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_delivering_when_an_acknowledgement_outcome_is_unknown() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    register(&store, "lost-ack").await.unwrap();
    let emails = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(
            OutboxOptions::default()
                .lease(Duration::from_millis(300))
                .poll_interval(Duration::from_millis(20)),
        )
        .unwrap();
    let mut handler = AckOutcomeLost {
        database: database.config(),
        schema: store.options().schema.quoted(),
        attempts: Vec::new(),
        terminated: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(async move {
        let outcome = emails
            .run(&mut handler, async {
                let _ = stopped.await;
            })
            .await;
        (outcome, handler)
    });
    let start = std::time::Instant::now();
    while !outbox_rows(&store).await.is_empty() && !runner.is_finished() {
        assert!(start.elapsed() < Duration::from_secs(45), "not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stop);
    let (outcome, handler) = runner.await.unwrap();
    assert!(
        handler.terminated.unwrap().await.unwrap(),
        "the acknowledgement was never cut off"
    );
    assert!(outcome.is_ok(), "run stopped: {outcome:?}");
    assert_eq!(
        handler.attempts,
        vec![1, 2],
        "delivered again after the lease ran out"
    );
    assert!(outbox_rows(&store).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_postgres_timestamps_cannot_hold_are_refused_with_the_options() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let outbox = || Outbox::new(&store, Topic::new("email").unwrap());
    let forever = Duration::from_secs(u64::MAX);
    for options in [
        OutboxOptions::default().lease(forever),
        OutboxOptions::default().lease(factos_postgres::MAX_OUTBOX_DELAY + Duration::from_secs(1)),
        OutboxOptions::default().retry_delay(forever),
        OutboxOptions::default()
            .retry_delay(Duration::from_secs(3600 * 24 * 365 * 50))
            .max_retry_delay(forever),
    ] {
        let refused = outbox().with_options(options.clone());
        assert!(
            matches!(&refused, Err(OutboxError::InvalidOptions(_))),
            "{options:?}: {refused:?}"
        );
    }
    // "No cap" on the backoff is fine while the delays themselves fit.
    let uncapped = outbox()
        .with_options(OutboxOptions::default().max_retry_delay(forever))
        .unwrap();
    // The longest accepted lease and delay are ones PostgreSQL can store.
    register(&store, "patient").await.unwrap();
    let longest = outbox()
        .with_options(
            OutboxOptions::default()
                .lease(factos_postgres::MAX_OUTBOX_DELAY)
                .retry_delay(factos_postgres::MAX_OUTBOX_DELAY)
                .max_retry_delay(factos_postgres::MAX_OUTBOX_DELAY)
                .max_attempts(2),
        )
        .unwrap();
    let leased = longest.lease().await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(
        longest.fail(&leased[0], "later").await.unwrap(),
        FailOutcome::RetryIn(factos_postgres::MAX_OUTBOX_DELAY)
    );
    assert!(
        uncapped.lease().await.unwrap().is_empty(),
        "not due for a century"
    );
}

/// The server's clock, in seconds since the epoch.
async fn server_now(client: &tokio_postgres::Client) -> f64 {
    client
        .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
        .await
        .unwrap()
        .get(0)
}

/// The retry delay doubles from `retry_delay` up to `max_retry_delay` and
/// stays there: each failed attempt says so, and the server makes the
/// message due exactly that long after the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_delay_doubles_up_to_its_cap() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    register(&store, "capped").await.unwrap();
    let emails = Outbox::new(&store, Topic::new("email").unwrap())
        .with_options(
            OutboxOptions::default()
                .retry_delay(Duration::from_secs(1))
                .max_retry_delay(Duration::from_secs(3))
                .max_attempts(10),
        )
        .unwrap();
    let client = store.pool().get().await.unwrap();
    let schema = store.options().schema.quoted();
    for (attempt, delay) in [(1, 1), (2, 2), (3, 3), (4, 3), (5, 3)] {
        let leased = emails.lease().await.unwrap();
        assert_eq!(leased.len(), 1, "attempt {attempt}");
        assert_eq!(leased[0].attempt, attempt);
        let before = server_now(&client).await;
        assert_eq!(
            emails.fail(&leased[0], "down").await.unwrap(),
            FailOutcome::RetryIn(Duration::from_secs(delay)),
            "attempt {attempt}"
        );
        let after = server_now(&client).await;
        let due: f64 = client
            .query_one(
                &format!(
                    "SELECT extract(epoch FROM available_at)::float8 FROM {schema}.factos_outbox"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        #[allow(clippy::cast_precision_loss)]
        let delay = delay as f64;
        assert!(
            due - after <= delay && delay <= due - before,
            "attempt {attempt}: due {:.3} s after the failure, expected {delay} s",
            due - before
        );
        // Due now, without waiting out the delay.
        client
            .execute(
                &format!("UPDATE {schema}.factos_outbox SET available_at = now()"),
                &[],
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_outbox_dispatches_record_each_commands_effects_under_every_strategy() {
    let database = common::database().await;
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::Optimistic,
        LockingStrategy::TableLock,
    ] {
        let store = common::store_in(&database, StoreOptions::default().locking(locking)).await;
        let effects = || async {
            Ok(outbox_rows(&store)
                .await
                .into_iter()
                .map(|(cause, _, payload)| (u64::try_from(cause).unwrap(), payload))
                .collect())
        };
        factos_testkit::combined_outbox_dispatches_record_each_commands_effects(
            store.clone(),
            effects,
        )
        .await
        .unwrap_or_else(|e| panic!("{locking:?}: {e}"));
    }
}
