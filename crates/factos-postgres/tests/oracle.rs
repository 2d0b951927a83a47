//! Every locking strategy passes the concurrency oracle on a real server:
//! random overlapping decisions replayed against what they read, N racers
//! on one boundary with exactly one winner, and disjoint writers that never
//! see a conflict. `FACTOS_ORACLE_SOAK=<decisions>` runs a longer random
//! phase.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos_postgres::{LockingStrategy, StoreOptions};
use factos_testkit::oracle::{self, OracleConfig};

async fn passes_the_oracle(locking: LockingStrategy) {
    let database = common::database().await;
    let options = StoreOptions::default().locking(locking);

    let store = common::store_in(&database, options.clone()).await;
    let report = oracle::random_decisions(&store, OracleConfig::from_env()).await;
    println!("{locking:?} random decisions: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");

    let store = common::store_in(&database, options.clone()).await;
    let report = oracle::racers(oracle::Via::Store(store), 16, 200).await;
    println!("{locking:?} racers: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");

    let store = common::store_in(&database, options).await;
    let report = oracle::disjoint_writers(&store, 16, 20).await;
    println!("{locking:?} disjoint: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");
    assert_eq!(
        report.condition_failures + report.contention_retries,
        0,
        "{locking:?}: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_lock_passes_the_oracle() {
    passes_the_oracle(LockingStrategy::TableLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_locking_passes_the_oracle() {
    passes_the_oracle(LockingStrategy::Scoped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_mode_passes_the_oracle() {
    passes_the_oracle(LockingStrategy::Optimistic).await;
}
