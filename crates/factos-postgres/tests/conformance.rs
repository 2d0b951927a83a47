//! The PostgreSQL store passes the whole conformance suite.

#![allow(clippy::unwrap_used, clippy::panic)]

use factos_postgres::StoreOptions;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_lock_passes_the_conformance_suite() {
    let database = common::database().await;
    factos_testkit::assert_conformance(|| common::store_in(&database, StoreOptions::default()))
        .await;
}
