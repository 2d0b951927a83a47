//! The model-based test of `Dispatcher` on PostgreSQL, under every strategy:
//! two store instances (two pools, two hot-query trackers) on one schema,
//! dispatchers with caches of 1, 2 and the default size. Every decision must
//! equal what a fresh fold of the log decides (`factos_testkit::state_machine`).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos_postgres::{LockingStrategy, StoreOptions};
use factos_testkit::state_machine::{self, MachineConfig};

async fn walk(locking: LockingStrategy) {
    let database = common::database().await;
    for seed in 1..=3 {
        let first = common::store_in(&database, StoreOptions::default().locking(locking)).await;
        let second = common::second_instance(&database, &first);
        let recorded = || common::recorded_effects(&first);
        let report = state_machine::run(
            &[first.clone(), second],
            &[1, 2, factos::DEFAULT_CACHE_ENTRIES],
            MachineConfig { steps: 150, seed },
            recorded,
        )
        .await
        .unwrap_or_else(|e| panic!("{locking:?}: {e}"));
        println!("{locking:?}, seed {seed}: {report:?}");
        assert!(
            report.empty > 0
                && report.outbox > 0
                && report.mailed > 0
                && report.narrower > 0
                && report.outbox_without_effects > 0
                && report.replayed > 0
                && report.foreign > 0
                && report.combined > 0
                && report.combined_keyed > 0
                && report.combined_outbox > 0
                && report.snapshot_loads > 0,
            "{locking:?}, seed {seed}: a kind of step was not walked: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_dispatchers_decide_as_a_fresh_fold_would() {
    walk(LockingStrategy::Scoped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_lock_dispatchers_decide_as_a_fresh_fold_would() {
    walk(LockingStrategy::TableLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_dispatchers_decide_as_a_fresh_fold_would() {
    walk(LockingStrategy::Optimistic).await;
}
