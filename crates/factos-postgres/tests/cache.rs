//! Dispatchers with their context caches on, several of them over separate
//! store instances (as in several processes) on one schema: the oracle, the
//! racers and the seed's tickets still hold under every strategy.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use factos::json::JsonCodec;
use factos::{DispatchError, Dispatcher, StreamId};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketError, TicketEvent, sale_query};
use factos_postgres::{LockingStrategy, PostgresStore, StoreOptions};
use factos_testkit::oracle::{self, OracleCodec, OracleConfig, Witness};

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
    let second = database
        .store(
            StoreOptions::default()
                .schema(first.options().schema.clone())
                .locking(locking),
        )
        .unwrap();
    (database, first, second)
}

async fn cached_oracle(locking: LockingStrategy) {
    let (_database, first, second) = two_instances(locking).await;
    let dispatchers = vec![
        Arc::new(Dispatcher::new(first, Witness, OracleCodec)),
        Arc::new(Dispatcher::new(second, Witness, OracleCodec)),
    ];
    let report = oracle::cached_decisions(dispatchers, OracleConfig::from_env()).await;
    println!("{locking:?} cached random decisions: {report}");
    assert!(report.violations.is_empty(), "{locking:?}: {report}");
    assert!(report.empty_decisions > 0, "{locking:?}: {report}");
    assert_eq!(report.contention_retries, 0, "{locking:?}: {report}");
}

async fn cached_tickets(locking: LockingStrategy) {
    let (_database, first, second) = two_instances(locking).await;
    let dispatchers = [
        Arc::new(Dispatcher::new(
            first.clone(),
            TicketDecider { capacity: 100 },
            JsonCodec::<TicketEvent>::new(),
        )),
        Arc::new(Dispatcher::new(
            second,
            TicketDecider { capacity: 100 },
            JsonCodec::<TicketEvent>::new(),
        )),
    ];
    let permits = Arc::new(tokio::sync::Semaphore::new(128));
    let query = sale_query("e1").unwrap();
    let tasks: Vec<_> = (0..300)
        .map(|buyer| {
            let (dispatcher, permits, query) = (
                dispatchers[buyer % 2].clone(),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_with_caches_passes_the_oracle() {
    cached_oracle(LockingStrategy::Scoped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_lock_with_caches_passes_the_oracle() {
    cached_oracle(LockingStrategy::TableLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_with_caches_passes_the_oracle() {
    cached_oracle(LockingStrategy::Optimistic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_with_caches_on_two_instances() {
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        cached_tickets(locking).await;
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
