//! Dispatchers with their context caches on, several of them over separate
//! store instances (as in several processes) on one schema: the oracle, the
//! racers (the kit's, and racers on caches brought up to date every round)
//! and the seed's tickets still hold under every strategy. Also: the cache's
//! LRU eviction, a cache of no entries, and the hot-query window.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use factos::json::JsonCodec;
use factos::{Decider, DispatchError, Dispatcher, Query, QueryItem, StreamId, dispatch_with_query};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketError, TicketEvent, sale_query};
use factos_postgres::{LockingStrategy, PostgresStore, StoreOptions};
use factos_testkit::model::{KitCodec, KitEvent};
use factos_testkit::oracle::{self, OracleCodec, OracleConfig, Quota, Via, Witness};

/// Two store instances (two pools, two caches) on one fresh schema.
async fn two_instances(
    locking: LockingStrategy,
) -> (
    factos_postgres::throwaway::TestDatabase,
    PostgresStore,
    PostgresStore,
) {
    let database = common::database().await;
    let first = common::store_in(&database, StoreOptions::default().locking(locking)).await;
    let second = common::second_instance(&database, &first);
    (database, first, second)
}

/// `dispatcher` with group commit on when `batch` is given.
fn combining<S, D, C>(dispatcher: Dispatcher<S, D, C>, batch: Option<usize>) -> Dispatcher<S, D, C>
where
    S: factos::EventStore,
    D: factos::DispatchDecider<State: Clone, Command: Clone>,
    C: factos::Codec<Event = D::Event>,
{
    match batch {
        Some(commands) => dispatcher.with_combining(commands),
        None => dispatcher,
    }
}

async fn cached_oracle(locking: LockingStrategy, batch: Option<usize>) {
    let (_database, first, second) = two_instances(locking).await;
    let dispatchers = vec![
        Arc::new(combining(
            Dispatcher::new(first, Witness, OracleCodec),
            batch,
        )),
        Arc::new(combining(
            Dispatcher::new(second, Witness, OracleCodec),
            batch,
        )),
    ];
    let report = oracle::cached_decisions(dispatchers, OracleConfig::from_env()).await;
    println!("{locking:?} cached random decisions: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");
    assert!(report.empty_decisions > 0, "{locking:?}: {report}");
    assert!(
        report.outbox_decisions > 0,
        "{locking:?}: no outbox decision"
    );
    assert_eq!(report.contention_retries, 0, "{locking:?}: {report}");
}

async fn cached_racers(locking: LockingStrategy, batch: Option<usize>) {
    let (_database, first, second) = two_instances(locking).await;
    let dispatchers = vec![
        Arc::new(combining(
            Dispatcher::new(first, Quota, KitCodec::default()),
            batch,
        )),
        Arc::new(combining(
            Dispatcher::new(second, Quota, KitCodec::default()),
            batch,
        )),
    ];
    let report = oracle::racers(Via::Dispatchers(dispatchers.clone()), 16, 40).await;
    let batched: u64 = dispatchers
        .iter()
        .map(|d| d.combined_batches().batches)
        .sum();
    println!("{locking:?} cached racers (batches of up to {batch:?}): {report}; {batched} batches");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");
    assert_eq!(report.committed, 40, "{locking:?}: one winner per round");
    if batch.is_some() {
        assert!(batched > 0, "{locking:?}: no batch formed");
    }
}

/// The seed's tickets race (capacity 100, 300 buyers, 128 at a time, each
/// buyer on its own stream) through `instances` dispatchers on separate
/// store instances.
async fn cached_tickets(locking: LockingStrategy, batch: Option<usize>, instances: usize) {
    let (_database, first, second) = two_instances(locking).await;
    let instances_of_store = [first.clone(), second];
    let dispatchers: Vec<_> = instances_of_store[..instances]
        .iter()
        .map(|store| {
            Arc::new(combining(
                Dispatcher::new(
                    store.clone(),
                    TicketDecider { capacity: 100 },
                    JsonCodec::<TicketEvent>::new(),
                ),
                batch,
            ))
        })
        .collect();
    let permits = Arc::new(tokio::sync::Semaphore::new(128));
    let query = sale_query("e1").unwrap();
    let tasks: Vec<_> = (0..300)
        .map(|buyer| {
            let (dispatcher, permits, query) = (
                dispatchers[buyer % dispatchers.len()].clone(),
                permits.clone(),
                query.clone(),
            );
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.unwrap();
                let command = BuyTicket {
                    concert: "e1".into(),
                    buyer: format!("b{buyer}"),
                };
                let stream = StreamId::new(format!("buyer-{buyer}")).unwrap();
                loop {
                    match dispatcher
                        .dispatch_with_query(&stream, &query, &command)
                        .await
                    {
                        Ok(_) => return true,
                        Err(DispatchError::Domain(TicketError::SoldOut)) => return false,
                        Err(e) if e.is_retryable() => {}
                        Err(e) => panic!("buyer {buyer}: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap());
    }
    assert_eq!(accepted, 100, "{locking:?}");
    let stored = factos::EventStore::read(&first, &query, factos::ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(stored.events.len(), 100, "{locking:?}");
    let mut buyers: Vec<_> = stored.events.iter().map(|e| e.stream.clone()).collect();
    buyers.sort();
    buyers.dedup();
    assert_eq!(
        buyers.len(),
        100,
        "{locking:?}: a buyer's stream got two tickets"
    );
    if batch.is_some() {
        let batched: u64 = dispatchers
            .iter()
            .map(|d| d.combined_batches().batches)
            .sum();
        println!(
            "{locking:?} tickets through {instances} combining dispatchers: {batched} batches"
        );
        assert!(batched > 0, "{locking:?}: no batch formed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_with_caches_passes_the_oracle() {
    cached_oracle(LockingStrategy::Scoped, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_lock_with_caches_passes_the_oracle() {
    cached_oracle(LockingStrategy::TableLock, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_with_caches_passes_the_oracle() {
    cached_oracle(LockingStrategy::Optimistic, None).await;
}

/// 16 racers through cached dispatchers on two store instances, 40 rounds:
/// exactly one winner per round and one claim more on the boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racers_with_caches_on_two_instances() {
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        cached_racers(locking, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_with_caches_on_two_instances() {
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        cached_tickets(locking, None, 2).await;
    }
}

/// Dispatchers on two store instances that start decisions from
/// persistent snapshots (one saved after every second event folded, a cache
/// of two contexts so most decisions miss it and load a snapshot) pass the
/// oracle under every strategy: a decision started from a snapshot still
/// sees every event its query matches, and its condition still guards them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_dispatchers_pass_the_oracle() {
    use factos::snapshot::SnapshotPolicy;
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        let (_database, first, second) = two_instances(locking).await;
        let dispatchers: Vec<_> = [first, second]
            .into_iter()
            .map(|store| {
                Arc::new(
                    Dispatcher::new(store, Witness, OracleCodec)
                        .with_cache_entries(2)
                        .with_snapshots(SnapshotPolicy::every("oracle", 1, 2)),
                )
            })
            .collect();
        let report = oracle::cached_decisions(dispatchers.clone(), OracleConfig::from_env()).await;
        let loads: u64 = dispatchers.iter().map(|d| d.snapshot_stats().loaded).sum();
        println!("{locking:?} snapshot random decisions: {report}, {loads} snapshot loads");
        assert!(report.violations.is_empty(), "{locking:?}: {report}");
        assert!(report.empty_decisions > 0, "{locking:?}: {report}");
        assert!(loads > 0, "{locking:?}: no snapshot was loaded");
    }
}

/// Group commit on: the oracle's random decisions, the racers and the
/// seed's tickets (through one dispatcher and through two on separate store
/// instances) hold under every strategy, and batches formed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn combining_dispatchers_keep_the_guarantee() {
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        cached_oracle(locking, Some(8)).await;
        cached_racers(locking, Some(factos::DEFAULT_BATCH_COMMANDS)).await;
        cached_tickets(locking, Some(factos::DEFAULT_BATCH_COMMANDS), 1).await;
        cached_tickets(locking, Some(factos::DEFAULT_BATCH_COMMANDS), 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_context_limit_holds_through_the_cache() {
    let database = common::database().await;
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        let limits = factos::StoreLimits {
            max_context_events: 10,
            ..factos::StoreLimits::default()
        };
        let store = common::store_in(
            &database,
            StoreOptions::default().locking(locking).limits(limits),
        )
        .await;
        factos_testkit::context_limit_through_the_cache(store, 10)
            .await
            .unwrap_or_else(|e| panic!("{locking:?}: {e}"));
    }
}

/// Counts its own calls. State: the claims seen on its boundary. `Refresh`
/// decides nothing (it brings a dispatcher's cache up to date); `Claim`
/// claims once more while fewer than `quota` claims exist.
#[derive(Clone, Default)]
struct Claims {
    decides: Arc<AtomicUsize>,
    evolves: Arc<AtomicUsize>,
}

#[derive(Clone)]
enum ClaimCommand {
    Refresh,
    Claim { tag: String, quota: usize },
}

impl Claims {
    fn calls(&self) -> (usize, usize) {
        (
            self.decides.swap(0, Ordering::SeqCst),
            self.evolves.swap(0, Ordering::SeqCst),
        )
    }
}

impl Decider for Claims {
    type State = usize;
    type Command = ClaimCommand;
    type Event = KitEvent;
    type Error = &'static str;
    fn initial(&self) -> usize {
        0
    }
    fn decide(&self, seen: &usize, command: &ClaimCommand) -> Result<Vec<KitEvent>, &'static str> {
        self.decides.fetch_add(1, Ordering::SeqCst);
        match command {
            ClaimCommand::Refresh => Ok(Vec::new()),
            ClaimCommand::Claim { quota, .. } if *seen >= *quota => Err("quota reached"),
            ClaimCommand::Claim { tag, .. } => Ok(vec![KitEvent::new("Claimed", &[tag.as_str()])]),
        }
    }
    fn evolve(&self, seen: usize, _: &KitEvent) -> usize {
        self.evolves.fetch_add(1, Ordering::SeqCst);
        seen + 1
    }
}

fn claims_on(tag: &str) -> Query {
    Query::item(QueryItem::parse(["Claimed"], [tag]).unwrap())
}

fn claim(tag: &str, quota: usize) -> ClaimCommand {
    ClaimCommand::Claim {
        tag: tag.to_string(),
        quota,
    }
}

/// Appends one claim on `tag` through `store`, behind every dispatcher's back.
async fn foreign_claim(store: &PostgresStore, tag: &str) {
    dispatch_with_query(
        store,
        &StreamId::new("foreign").unwrap(),
        &claims_on(tag),
        &Claims::default(),
        &KitCodec::default(),
        &claim(tag, usize::MAX),
    )
    .await
    .unwrap();
}

async fn claims_stored(store: &PostgresStore, tag: &str) -> usize {
    factos::EventStore::read(store, &claims_on(tag), factos::ReadOptions::default())
        .await
        .unwrap()
        .events
        .len()
}

async fn warm_racers(locking: LockingStrategy) {
    const ROUNDS: usize = 25;
    let (_database, first, second) = two_instances(locking).await;
    let decider = Claims::default();
    let dispatchers: Vec<_> = [&first, &first, &second, &second]
        .into_iter()
        .map(|store| {
            Arc::new(Dispatcher::new(
                store.clone(),
                decider.clone(),
                KitCodec::default(),
            ))
        })
        .collect();
    let query = claims_on("race:1");
    for round in 0..ROUNDS {
        // Every cache holds the context as it is now: the racers all decide
        // at once on cached states, and all but one of them are stale at commit.
        for dispatcher in &dispatchers {
            dispatcher
                .dispatch_with_query(
                    &StreamId::new("refresh").unwrap(),
                    &query,
                    &ClaimCommand::Refresh,
                )
                .await
                .unwrap();
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|racer| {
                let (dispatcher, barrier, query) = (
                    dispatchers[racer % dispatchers.len()].clone(),
                    barrier.clone(),
                    query.clone(),
                );
                tokio::spawn(async move {
                    let stream = StreamId::new(format!("racer-{racer}")).unwrap();
                    let command = claim("race:1", round + 1);
                    barrier.wait().await;
                    loop {
                        match dispatcher
                            .dispatch_with_query(&stream, &query, &command)
                            .await
                        {
                            Ok(done) => {
                                assert_eq!(done.events.len(), 1);
                                return true;
                            }
                            Err(DispatchError::Domain("quota reached")) => return false,
                            Err(e) if e.is_retryable() => {}
                            Err(e) => panic!("round {round}, racer {racer}: {e}"),
                        }
                    }
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1, "{locking:?}: round {round}");
        assert_eq!(
            claims_stored(&first, "race:1").await,
            round + 1,
            "{locking:?}: round {round}"
        );
    }
}

/// Every round, four cached dispatchers on two store instances are brought up
/// to date, then 16 racers claim through them at once with a quota one above
/// the claims so far: exactly one wins and the boundary holds one claim more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racers_on_warm_caches_have_one_winner_per_round() {
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        warm_racers(locking).await;
    }
}

/// With two entries, the least recently used context is evicted: dispatching
/// on it again folds all its events afresh (including one appended behind
/// the dispatcher's back), while a context still cached folds none, and
/// every decision counts the claims right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_context_is_evicted_and_read_afresh() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let other = database.store(store.options().clone()).unwrap();
    for (tag, claims) in [("a:1", 3), ("b:1", 5), ("c:1", 7)] {
        for _ in 0..claims {
            foreign_claim(&other, tag).await;
        }
    }
    let decider = Claims::default();
    let dispatcher =
        Dispatcher::new(store.clone(), decider.clone(), KitCodec::default()).with_cache_entries(2);
    let stream = StreamId::new("s").unwrap();
    let run = |tag: &'static str, quota: usize| {
        let (dispatcher, stream) = (&dispatcher, &stream);
        async move {
            dispatcher
                .dispatch_with_query(stream, &claims_on(tag), &claim(tag, quota))
                .await
        }
    };
    // a read afresh (3 stored) plus its own claim: 4 claims.
    run("a:1", 10).await.unwrap();
    assert_eq!(decider.calls(), (1, 3 + 1), "a, first dispatch");
    // b read afresh (5 stored) plus its own: 6 claims. Cache: a, b.
    run("b:1", 10).await.unwrap();
    assert_eq!(decider.calls(), (1, 5 + 1), "b, first dispatch");
    // a cached: only its own claim is folded (5 claims); b is now the least recently used.
    run("a:1", 10).await.unwrap();
    assert_eq!(decider.calls(), (1, 1), "a, cached");
    // c read afresh (7 stored) plus its own; b, the least recently used, is evicted.
    run("c:1", 10).await.unwrap();
    assert_eq!(decider.calls(), (1, 7 + 1), "c, first dispatch");
    // b gets a claim behind the dispatcher's back: 7 claims now.
    foreign_claim(&other, "b:1").await;
    // b was evicted: read afresh, all 7 folded; quota 7 is reached, refused.
    assert!(matches!(
        run("b:1", 7).await,
        Err(DispatchError::Domain("quota reached"))
    ));
    assert_eq!(decider.calls(), (1, 7), "b, after its eviction");
    // c is cached (b's refusal cached nothing): only its own claim is folded.
    run("c:1", 9).await.unwrap();
    assert_eq!(decider.calls(), (1, 1), "c, cached");
    // a is still cached (5 claims): quota 5 is refused without folding
    // anything; a refusal on a cached state is decided again under the guard.
    assert!(matches!(
        run("a:1", 5).await,
        Err(DispatchError::Domain("quota reached"))
    ));
    assert_eq!(decider.calls(), (2, 0), "a, cached");
    for (tag, claims) in [("a:1", 5), ("b:1", 7), ("c:1", 9)] {
        assert_eq!(claims_stored(&store, tag).await, claims, "{tag}");
    }
}

/// With no cache entries every dispatch folds its whole context afresh, and
/// a claim appended behind the dispatcher's back is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_cache_entries_every_dispatch_reads_its_context_afresh() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let other = database.store(store.options().clone()).unwrap();
    let decider = Claims::default();
    let dispatcher =
        Dispatcher::new(store.clone(), decider.clone(), KitCodec::default()).with_cache_entries(0);
    let (stream, query) = (StreamId::new("s").unwrap(), claims_on("a:1"));
    for stored in 0..3 {
        dispatcher
            .dispatch_with_query(&stream, &query, &claim("a:1", 10))
            .await
            .unwrap();
        assert_eq!(decider.calls(), (1, stored + 1), "dispatch {stored}");
    }
    foreign_claim(&other, "a:1").await;
    // 4 claims: quota 4 is reached.
    assert!(matches!(
        dispatcher
            .dispatch_with_query(&stream, &query, &claim("a:1", 4))
            .await,
        Err(DispatchError::Domain("quota reached"))
    ));
    assert_eq!(decider.calls(), (1, 4));
    dispatcher
        .dispatch_with_query(&stream, &query, &claim("a:1", 5))
        .await
        .unwrap();
    assert_eq!(decider.calls(), (1, 4 + 1));
    assert_eq!(claims_stored(&store, "a:1").await, 5);
}

/// A query whose cached fast path failed (decided on the stale state, then
/// again under the guard) is hot: the next dispatch on it goes straight to
/// the guarded path (one decision), until it cools down and the fast path is
/// tried again. Every decision counts the claims right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_whose_fast_path_failed_takes_the_guarded_path_for_a_while() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let other = database.store(store.options().clone()).unwrap();
    let decider = Claims::default();
    let dispatcher = Dispatcher::new(store.clone(), decider.clone(), KitCodec::default());
    let (stream, query) = (StreamId::new("s").unwrap(), claims_on("a:1"));
    let mut claims = 0;
    let stale_claim = async |claims: &mut usize| {
        // Behind the dispatcher's back, so its cached state is stale.
        foreign_claim(&other, "a:1").await;
        dispatcher
            .dispatch_with_query(&stream, &query, &claim("a:1", *claims + 2))
            .await
            .unwrap();
        *claims += 2;
        decider.calls()
    };
    dispatcher
        .dispatch_with_query(&stream, &query, &claim("a:1", 1))
        .await
        .unwrap();
    claims += 1;
    assert_eq!(decider.calls(), (1, 1), "read afresh");
    // Fast path on the stale state, its condition fails, decided again under
    // the guard: the foreign claim and its own are folded.
    assert_eq!(stale_claim(&mut claims).await, (2, 2), "fast path failed");
    // Hot: straight to the guarded path.
    assert_eq!(stale_claim(&mut claims).await, (1, 2), "hot");
    let start = std::time::Instant::now();
    let mut hot = 1;
    loop {
        match stale_claim(&mut claims).await {
            (1, 2) => hot += 1,
            (2, 2) => break,
            other => panic!("unexpected (decide, evolve) calls {other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still hot after 10 s"
        );
    }
    println!(
        "cooled down after {hot} guarded dispatches in {:?}",
        start.elapsed()
    );
    assert_eq!(claims_stored(&store, "a:1").await, claims);
}
