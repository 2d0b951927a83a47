//! The SQLite store passes the conformance suite, the concurrency oracle
//! (one store, and several store instances on one file), the model-based
//! test and the seed's tickets race.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::Dir;
use factos_sqlite::{SqliteOptions, SqliteStore};
use factos_testkit::oracle::{self, OracleConfig, Via};
use factos_testkit::state_machine::{self, MachineConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_store_passes_the_conformance_suite() {
    let dir = Dir::new();
    factos_testkit::assert_conformance(|| dir.store()).await;
}

/// Several instances (each with its own writer and readers, as in several
/// processes) on one file.
async fn instances(dir: &Dir, count: usize) -> Vec<SqliteStore> {
    let file = dir.file();
    let mut stores = Vec::new();
    for _ in 0..count {
        stores.push(
            SqliteStore::open(&file, SqliteOptions::default())
                .await
                .unwrap(),
        );
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_store_passes_the_concurrency_oracle() {
    let dir = Dir::new();
    for count in [1, 3] {
        let stores = instances(&dir, count).await;
        let report = oracle::random_decisions(&stores, OracleConfig::from_env()).await;
        println!("{count} instances, random decisions: {report}");
        assert!(report.violations.is_empty(), "{report}");
        assert!(report.committed >= 800, "{report}");
        assert!(report.empty_decisions > 0, "{report}");
        let stores = instances(&dir, count).await;
        let report = oracle::racers(Via::Stores(stores), 16, 40).await;
        println!("{count} instances, racers: {report}");
        assert!(report.violations.is_empty(), "{report}");
        let stores = instances(&dir, count).await;
        let report = oracle::disjoint_writers(&stores[0], 16, 20).await;
        println!("disjoint: {report}");
        assert!(report.violations.is_empty(), "{report}");
        assert_eq!(report.committed, 16 * 20, "{report}");
    }
}

/// Cached dispatchers (their fast path decides on the cached state and
/// lets the writer's condition prove it current), plain and combining, on
/// two instances of one file: the random decisions and the racers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_dispatchers_on_sqlite_pass_the_oracle() {
    use std::sync::Arc;
    let dir = Dir::new();
    for combining in [None, Some(8)] {
        let stores = instances(&dir, 2).await;
        let dispatchers = stores
            .iter()
            .map(|store| {
                let d =
                    factos::Dispatcher::new(store.clone(), oracle::Witness, oracle::OracleCodec);
                Arc::new(match combining {
                    Some(n) => d.with_combining(n),
                    None => d,
                })
            })
            .collect();
        let report = oracle::cached_decisions(dispatchers, OracleConfig::from_env()).await;
        println!("combining {combining:?}, cached random decisions: {report}");
        assert!(report.violations.is_empty(), "{report}");
        assert!(report.empty_decisions > 0, "{report}");
        let stores = instances(&dir, 2).await;
        let dispatchers = stores
            .iter()
            .map(|store| {
                let d = factos::Dispatcher::new(
                    store.clone(),
                    oracle::Quota,
                    factos_testkit::model::KitCodec::default(),
                );
                Arc::new(match combining {
                    Some(n) => d.with_combining(n),
                    None => d,
                })
            })
            .collect();
        let report = oracle::racers(Via::Dispatchers(dispatchers), 16, 40).await;
        println!("combining {combining:?}, cached racers: {report}");
        assert!(report.violations.is_empty(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatchers_on_sqlite_decide_as_a_fresh_fold_would() {
    let dir = Dir::new();
    for seed in 1..=3 {
        let stores = instances(&dir, 2).await;
        // This store records no effects: the model's outbox steps are not taken.
        let report = state_machine::run(
            &stores,
            &[1, 2, factos::DEFAULT_CACHE_ENTRIES],
            MachineConfig { steps: 150, seed },
            || async { Ok(Vec::new()) },
        )
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        println!("seed {seed}: {report:?}");
        assert!(
            report.empty > 0
                && report.replayed > 0
                && report.foreign > 0
                && report.combined > 0
                && report.narrower > 0,
            "seed {seed}: a kind of step was not walked: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tickets_race_sells_exactly_the_capacity() {
    let dir = Dir::new();
    let store = dir.store().await;
    let outcome = factos_examples::tickets::run_sale(&store, "concert-1", 100, 300, 64)
        .await
        .unwrap();
    assert_eq!(outcome.accepted, 100, "{outcome:?}");
    assert_eq!(outcome.sold_out, 200, "{outcome:?}");
    assert_eq!(outcome.events_stored, 100, "{outcome:?}");
}
