//! The in-memory store passes the whole conformance suite.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_passes_the_conformance_suite() {
    factos_testkit::assert_conformance(|| async { factos::InMemoryStore::new() }).await;
}

/// The number of conformance cases, pinned: a case dropped from the list (or
/// added without updating DESIGN.md) fails here.
const CASES: usize = 81;

#[test]
fn the_suite_has_every_case_once() {
    let names = factos_testkit::case_names();
    assert_eq!(names.len(), CASES, "cases: {names:?}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "case names must be unique");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_passes_the_concurrency_oracle() {
    use factos_testkit::oracle;
    let store = factos::InMemoryStore::new();
    let report = oracle::random_decisions(&[store], oracle::OracleConfig::from_env()).await;
    println!("random decisions: {report}");
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.committed >= 800, "{report}");
    assert!(report.empty_decisions > 0, "{report}");
    assert_eq!(report.contention_retries, 0, "{report}");
    let store = factos::InMemoryStore::new();
    let report = oracle::racers(oracle::Via::Store(store), 16, 200).await;
    println!("racers: {report}");
    assert!(report.violations.is_empty(), "{report}");
    let store = factos::InMemoryStore::new();
    let report = oracle::disjoint_writers(&store, 16, 20).await;
    println!("disjoint: {report}");
    // Under its one mutex the in-memory store never fails a condition, never
    // reports contention and never retries: only the count is worth checking
    // here (the PostgreSQL oracle test asserts the three counters).
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(report.committed, 16 * 20, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_dispatchers_pass_the_concurrency_oracle() {
    use factos_testkit::oracle::{self, OracleCodec, Witness};
    let store = factos::InMemoryStore::new();
    let dispatchers = (0..2)
        .map(|_| std::sync::Arc::new(factos::Dispatcher::new(store.clone(), Witness, OracleCodec)))
        .collect();
    let report = oracle::cached_decisions(dispatchers, oracle::OracleConfig::from_env()).await;
    println!("cached random decisions: {report}");
    assert!(report.violations.is_empty(), "{report}");
    assert!(
        report.outbox_decisions > 0,
        "no outbox decision: {report:?}"
    );
    assert!(report.committed >= 800, "{report}");
    assert!(report.empty_decisions > 0, "{report}");
    assert_eq!(report.contention_retries, 0, "{report}");
    let store = factos::InMemoryStore::new();
    let dispatchers = (0..2)
        .map(|_| {
            std::sync::Arc::new(factos::Dispatcher::new(
                store.clone(),
                oracle::Quota,
                factos_testkit::model::KitCodec::default(),
            ))
        })
        .collect();
    let report = oracle::racers(oracle::Via::Dispatchers(dispatchers), 16, 200).await;
    println!("cached racers: {report}");
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_context_limit_holds_through_the_cache() {
    let limits = factos::StoreLimits {
        max_context_events: 10,
        ..factos::StoreLimits::default()
    };
    let store = factos::InMemoryStore::with_limits(limits);
    factos_testkit::context_limit_through_the_cache(store, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The model-based test of `Dispatcher` on the in-memory store: many seeds,
/// caches of 1, 2 and the default size over clones of one store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatchers_decide_as_a_fresh_fold_would() {
    use factos_testkit::state_machine::{self, MachineConfig, MachineReport};
    let mut walked = MachineReport::default();
    for seed in 1..=40 {
        let store = factos::InMemoryStore::new();
        let stores = [store.clone(), store.clone()];
        let recorded = || async {
            Ok(store
                .outbox()
                .into_iter()
                .map(|e| (e.cause.get(), e.message.payload))
                .collect())
        };
        let report = state_machine::run(
            &stores,
            &[1, 2, factos::DEFAULT_CACHE_ENTRIES],
            MachineConfig { steps: 150, seed },
            recorded,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        walked.empty += report.empty;
        walked.single += report.single;
        walked.several += report.several;
        walked.refused += report.refused;
        walked.panicked += report.panicked;
        walked.keyed += report.keyed;
        walked.replayed += report.replayed;
        walked.outbox += report.outbox;
        walked.narrower += report.narrower;
        walked.mailed += report.mailed;
        walked.outbox_without_effects += report.outbox_without_effects;
        walked.foreign += report.foreign;
        walked.combined += report.combined;
        walked.combined_keyed += report.combined_keyed;
        walked.combined_outbox += report.combined_outbox;
        walked.snapshot_loads += report.snapshot_loads;
    }
    println!("walked: {walked:?}");
    for (kind, count) in [
        ("empty", walked.empty),
        ("single", walked.single),
        ("several", walked.several),
        ("refused", walked.refused),
        ("panicked", walked.panicked),
        ("replayed", walked.replayed),
        ("outbox", walked.outbox),
        ("mailed", walked.mailed),
        ("narrower conditions", walked.narrower),
        ("outbox without effects", walked.outbox_without_effects),
        ("foreign", walked.foreign),
        ("combined", walked.combined),
        ("combined keyed", walked.combined_keyed),
        ("combined outbox", walked.combined_outbox),
        (
            "snapshot loads",
            usize::try_from(walked.snapshot_loads).unwrap_or(usize::MAX),
        ),
    ] {
        assert!(count > 0, "no {kind} step was walked: {walked:?}");
    }
}

/// Combining dispatchers (group commit) on clones of one store, as two
/// processes: the racers (16 on one boundary, one winner a round) and the
/// random decisions hold, and the racers did form batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn combining_dispatchers_pass_the_concurrency_oracle() {
    use factos_testkit::oracle::{self, OracleCodec, Witness};
    let store = factos::InMemoryStore::new();
    let dispatchers: Vec<_> = (0..2)
        .map(|_| {
            std::sync::Arc::new(
                factos::Dispatcher::new(
                    store.clone(),
                    oracle::Quota,
                    factos_testkit::model::KitCodec::default(),
                )
                .with_combining(factos::DEFAULT_BATCH_COMMANDS),
            )
        })
        .collect();
    let report = oracle::racers(oracle::Via::Dispatchers(dispatchers.clone()), 16, 200).await;
    let batched: u64 = dispatchers
        .iter()
        .map(|d| d.combined_batches().batches)
        .sum();
    println!("combining racers: {report}; {batched} batches");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(report.committed, 200, "{report}");
    assert!(
        batched > 0,
        "no batch formed: the combined path was not walked"
    );

    let store = factos::InMemoryStore::new();
    let dispatchers = (0..2)
        .map(|_| {
            std::sync::Arc::new(
                factos::Dispatcher::new(store.clone(), Witness, OracleCodec).with_combining(8),
            )
        })
        .collect();
    let report = oracle::cached_decisions(dispatchers, oracle::OracleConfig::from_env()).await;
    println!("combining random decisions: {report}");
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.committed >= 800, "{report}");
}

/// Dispatchers that start decisions from persistent snapshots (one saved
/// after every second event folded, a cache of two contexts so most
/// decisions miss it and load a snapshot) pass the concurrency oracle: a
/// snapshot's state and position stand in for the events it folded, and a
/// decision started from one still sees every event its query matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_dispatchers_pass_the_concurrency_oracle() {
    use factos::snapshot::SnapshotPolicy;
    use factos_testkit::oracle::{self, OracleCodec, Witness};
    let store = factos::InMemoryStore::new();
    let dispatchers: Vec<_> = (0..2)
        .map(|_| {
            std::sync::Arc::new(
                factos::Dispatcher::new(store.clone(), Witness, OracleCodec)
                    .with_cache_entries(2)
                    .with_snapshots(SnapshotPolicy::every("oracle", 1, 2)),
            )
        })
        .collect();
    let report =
        oracle::cached_decisions(dispatchers.clone(), oracle::OracleConfig::from_env()).await;
    let loads: u64 = dispatchers.iter().map(|d| d.snapshot_stats().loaded).sum();
    println!("snapshot random decisions: {report}, {loads} snapshot loads");
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.committed >= 800, "{report}");
    assert!(loads > 0, "no snapshot was loaded: the path was not walked");
}

/// A combining dispatcher whose leading dispatch is dropped while it waits
/// at the store (its caller gave up): the commands queued behind it still
/// lead the next batch and commit; the dropped one wrote nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_leader_hands_its_lane_on() {
    use factos_testkit::gated::Gated;
    use factos_testkit::model::{KitCodec, Shelf, ShelfCommand};
    let store = factos::InMemoryStore::new();
    let gated = Gated::new(store.clone());
    let dispatcher = factos::Dispatcher::new(gated.clone(), Shelf::default(), KitCodec::default())
        .with_combining(8);
    let query = factos::Query::item(factos::QueryItem::parse(["Item"], ["box:b"]).unwrap());
    let stream = factos::StreamId::new("shelf").unwrap();
    let add = ShelfCommand::Add("b".into());
    gated.hold();
    let mut leader = Box::pin(dispatcher.dispatch_with_query(&stream, &query, &add));
    assert!(
        futures_util::poll!(&mut leader).is_pending(),
        "the leader passed the gate"
    );
    let mut second = Box::pin(dispatcher.dispatch_with_query(&stream, &query, &add));
    let mut third = Box::pin(dispatcher.dispatch_with_query(&stream, &query, &add));
    assert!(futures_util::poll!(&mut second).is_pending());
    assert!(futures_util::poll!(&mut third).is_pending());
    drop(leader);
    gated.release();
    let (second, third) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures_util::future::join(second, third),
    )
    .await
    .expect("the queued commands were stranded behind the dropped leader");
    second.unwrap();
    third.unwrap();
    let read = factos::EventStore::read(&store, &query, factos::ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(
        read.events.len(),
        2,
        "only the two queued commands committed"
    );
    assert_eq!(
        dispatcher.combined_batches().batches,
        1,
        "the two formed one batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_outbox_dispatches_record_each_commands_effects_in_memory() {
    let store = factos::InMemoryStore::new();
    let effects = || async {
        Ok(store
            .outbox()
            .into_iter()
            .map(|e| (e.cause.get(), e.message.payload))
            .collect())
    };
    factos_testkit::combined_outbox_dispatches_record_each_commands_effects(store.clone(), effects)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
