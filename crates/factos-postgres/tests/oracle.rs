//! Every locking strategy passes the concurrency oracle on a real server:
//! random overlapping decisions replayed against what they read, N racers
//! on one boundary with exactly one winner, and disjoint writers that never
//! see a conflict. `FACTOS_ORACLE_SOAK=<decisions>` runs a longer random
//! phase.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool};
use factos_postgres::{LockingStrategy, PostgresStore, StoreOptions};
use factos_testkit::oracle::{self, OracleConfig};

async fn passes_the_oracle(locking: LockingStrategy) {
    let database = common::database().await;
    let options = StoreOptions::default().locking(locking);

    let store = common::store_in(&database, options.clone()).await;
    let report = oracle::random_decisions(&[store], OracleConfig::from_env()).await;
    println!("{locking:?} random decisions: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");
    assert!(report.empty_decisions > 0, "{locking:?}: {report}");
    // No deadlock waits: a deadlock would surface as a contention error.
    assert_eq!(report.contention_retries, 0, "{locking:?}: {report}");

    let store = common::store_in(&database, options.clone()).await;
    let report = oracle::racers(oracle::Via::Store(store), 16, 200).await;
    println!("{locking:?} racers: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");

    let store = common::store_in(&database, options).await;
    let report = oracle::disjoint_writers(&store, 16, 20).await;
    println!("{locking:?} disjoint: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");
    assert_eq!(report.committed, 16 * 20, "{locking:?}: {report}");
    assert_eq!(
        (
            report.condition_failures,
            report.contention_retries,
            report.store_retries
        ),
        (0, 0, 0),
        "{locking:?}: {report}"
    );
}

/// The three strategies mixed on one schema (one store instance each, as
/// three processes configured differently): the random decisions and the
/// racers hold, with no contention errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_strategies_pass_the_oracle() {
    let database = common::database().await;
    for phase in ["random decisions", "racers"] {
        let first = common::store_in(&database, StoreOptions::default()).await;
        let schema = first.options().schema.clone();
        let stores: Vec<PostgresStore> = std::iter::once(first)
            .chain(
                [LockingStrategy::TableLock, LockingStrategy::Optimistic].map(|locking| {
                    database
                        .store(
                            StoreOptions::default()
                                .schema(schema.clone())
                                .locking(locking),
                        )
                        .unwrap()
                }),
            )
            .collect();
        let report = if phase == "racers" {
            oracle::racers(oracle::Via::Stores(stores), 16, 100).await
        } else {
            oracle::random_decisions(&stores, OracleConfig::from_env()).await
        };
        println!("mixed strategies, {phase}: {report}");
        assert!(report.violations.is_empty(), "{phase}: {report}");
        assert_eq!(report.contention_retries, 0, "{phase}: {report}");
    }
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

/// A database whose default isolation is REPEATABLE READ (a setting a team
/// may choose for its own code): a factos transaction that took its
/// snapshot before waiting for its keys would decide on a context from
/// before the decision it waited for. factos runs its transactions and
/// settled reads under READ COMMITTED whatever the default; every strategy
/// keeps the guarantee.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_strategy_holds_when_the_database_defaults_to_repeatable_read() {
    let database = common::database().await;
    let admin = database.store(StoreOptions::default()).unwrap();
    admin
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'repeatable read'",
            database.name()
        ))
        .await
        .unwrap();
    // The premise, on a plain connection (factos's own set their level).
    let (plain, connection) = database
        .config()
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let default: String = plain
        .query_one("SHOW transaction_isolation", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(default, "repeatable read", "the test's premise");
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        let store = common::store_in(&database, StoreOptions::default().locking(locking)).await;
        let report = oracle::racers(oracle::Via::Store(store.clone()), 16, 100).await;
        println!("{locking:?} racers under a repeatable read default: {report}");
        assert!(report.violations.is_empty(), "{locking:?}: {report}");
        let store = common::store_in(&database, StoreOptions::default().locking(locking)).await;
        let report = oracle::random_decisions(&[store], OracleConfig::from_env()).await;
        println!("{locking:?} random decisions under a repeatable read default: {report}");
        assert!(report.violations.is_empty(), "{locking:?}: {report}");
    }
    // On a pool given to the store its connections carry no factos
    // settings: each transaction names its level.
    let manager = Manager::from_config(
        database.config(),
        factos_postgres::tokio_postgres::NoTls,
        ManagerConfig::default(),
    );
    let pool = Pool::builder(manager).max_size(16).build().unwrap();
    let store = PostgresStore::new(
        pool,
        StoreOptions::default().schema(factos_postgres::SchemaName::new("own_pool").unwrap()),
    );
    store.migrate().await.unwrap();
    let report = oracle::racers(oracle::Via::Store(store), 16, 100).await;
    println!("Scoped on its own pool, racers under a repeatable read default: {report}");
    assert!(report.violations.is_empty(), "own pool: {report}");
}
