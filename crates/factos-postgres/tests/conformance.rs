//! The PostgreSQL store passes the whole conformance suite, with every
//! locking strategy.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos_postgres::{LockingStrategy, StoreOptions};

async fn passes(locking: LockingStrategy) {
    let database = common::database().await;
    factos_testkit::assert_conformance(|| {
        common::store_in(&database, StoreOptions::default().locking(locking))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_lock_passes_the_conformance_suite() {
    passes(LockingStrategy::TableLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_locking_passes_the_conformance_suite() {
    passes(LockingStrategy::Scoped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_mode_passes_the_conformance_suite() {
    passes(LockingStrategy::Optimistic).await;
}
